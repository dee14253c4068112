/*
 * safetensors_test.c: the JSON reader/writer and the safetensors reader and
 * writer, from C: round trips of every dtype, a file written by hand, the
 * validation errors, atomic replacement, tensors outliving their file
 * handle, loading from memory, and a small fuzz (truncations and byte flips of a valid file must
 * load or fail cleanly; run under AddressSanitizer by `make asan`).
 */
#include "internal.h"
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures = 0;
static int checks = 0;

#define CHECK(condition, ...)                                                                                      \
    do {                                                                                                           \
        checks++;                                                                                                  \
        if (!(condition)) {                                                                                        \
            failures++;                                                                                            \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #condition);                          \
            fprintf(stderr, __VA_ARGS__);                                                                          \
            fprintf(stderr, "\n");                                                                                 \
        }                                                                                                          \
    } while (0)

static char directory[256];

static void path_in(char *out, size_t size, const char *name) { snprintf(out, size, "%s/%s", directory, name); }

static void write_bytes(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    if (size && fwrite(data, 1, size, f) != size) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

static unsigned char *read_bytes(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc((size_t)n + 1);
    if (n && fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return data;
}

/* A safetensors file from a header text and a data section. */
static void write_safetensors(const char *path, const char *header, const void *data, size_t data_size) {
    size_t n = strlen(header);
    size_t total = 8 + n + data_size;
    unsigned char *bytes = malloc(total);
    for (int i = 0; i < 8; i++) bytes[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(bytes + 8, header, n);
    if (data_size) memcpy(bytes + 8 + n, data, data_size);
    write_bytes(path, bytes, total);
    free(bytes);
}

/* ---- JSON ---- */

static void test_json(void) {
    char error[256];
    tc_json *v;
    const char *text = "{\"a\": [1, -2, 3.5, 1e3, true, false, null], "
                       "\"s\": \"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\","
                       " \"big\": 9223372036854775807, \"small\": -9223372036854775808, \"over\": 9223372036854775808}";
    CHECK(tc_json_parse(text, strlen(text), 0, &v, error, sizeof error), "parse failed: %s", error);
    if (v) {
        const tc_json *a = tc_json_get(v, "a");
        CHECK(a && a->type == TC_JSON_ARRAY && a->as.array.count == 7, "array");
        if (a && a->as.array.count == 7) {
            CHECK(a->as.array.items[0].type == TC_JSON_INTEGER && a->as.array.items[0].as.integer == 1, "1");
            CHECK(a->as.array.items[1].type == TC_JSON_INTEGER && a->as.array.items[1].as.integer == -2, "-2");
            CHECK(a->as.array.items[2].type == TC_JSON_DOUBLE && a->as.array.items[2].as.number == 3.5, "3.5");
            CHECK(a->as.array.items[3].type == TC_JSON_DOUBLE && a->as.array.items[3].as.number == 1000.0, "1e3");
            CHECK(a->as.array.items[4].type == TC_JSON_BOOL && a->as.array.items[4].as.boolean, "true");
            CHECK(a->as.array.items[6].type == TC_JSON_NULL, "null");
        }
        const tc_json *s = tc_json_get(v, "s");
        const char expected[] = "q\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80";
        CHECK(s && s->type == TC_JSON_STRING && s->as.string.length == sizeof expected - 1 &&
                  memcmp(s->as.string.data, expected, sizeof expected - 1) == 0,
              "escapes decode to the expected UTF-8");
        const tc_json *big = tc_json_get(v, "big"), *small = tc_json_get(v, "small"), *over = tc_json_get(v, "over");
        CHECK(big && big->type == TC_JSON_INTEGER && big->as.integer == INT64_MAX, "int64 max");
        CHECK(small && small->type == TC_JSON_INTEGER && small->as.integer == INT64_MIN, "int64 min");
        CHECK(over && over->type == TC_JSON_DOUBLE && over->as.number == 9223372036854775808.0, "overflow to double");
        /* Writer round trip: compact text parses back to the same values. */
        tc_json_buffer b;
        tc_json_buffer_init(&b);
        tc_json_append_value(&b, v);
        tc_json *again;
        CHECK(tc_json_parse(b.data, b.length, 0, &again, error, sizeof error), "reparse: %s", error);
        if (again) {
            const tc_json *s2 = tc_json_get(again, "s");
            CHECK(s2 && s2->as.string.length == s->as.string.length &&
                      memcmp(s2->as.string.data, s->as.string.data, s->as.string.length) == 0,
                  "string survives writing");
            CHECK(tc_json_get(again, "a")->as.array.items[2].type == TC_JSON_DOUBLE, "3.5 stays a double");
            tc_json_free(again);
        }
        tc_json_buffer_free(&b);
        tc_json_free(v);
    }
    /* Doubles print short and read back exactly; integral doubles keep ".0". */
    const double samples[] = {0.1, 1.0 / 3.0, 1e300, -2.5e-308, 3.0, 123456789.0, 5e-324};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        tc_json_buffer b;
        tc_json_buffer_init(&b);
        tc_json_append_double(&b, samples[i]);
        CHECK(tc_json_parse(b.data, b.length, 0, &v, error, sizeof error), "double text %s: %s", b.data, error);
        if (v) {
            CHECK(v->type == TC_JSON_DOUBLE && v->as.number == samples[i], "double %.17g came back as %s",
                  samples[i], b.data);
            tc_json_free(v);
        }
        tc_json_buffer_free(&b);
    }
    /* Each bad text fails with the byte offset of the problem. */
    static const struct {
        const char *text;
        const char *message;
    } bad[] = {
        {"[1, 2,]", "at byte 6"},
        {"{\"a\": 1,}", "at byte 8"},
        {"[01]", "leading zeros"},
        {"\"\\ud800\"", "not followed by a low"},
        {"\"\\udc00\"", "lone low surrogate"},
        {"\"\\ud800\\u0041\"", "not a low one"},
        {"\"\\x\"", "invalid escape"},
        {"\"a\nb\"", "control character"},
        {"\"\xff\"", "invalid UTF-8"},
        {"\"\xed\xa0\x80\"", "invalid UTF-8"},
        {"{\"k\": 1, \"k\": 2}", "duplicate key"},
        {"[1] 2", "end of the text"},
        {"", "expected a value"},
        {"tru", "expected a value"},
        {"[1.]", "after the decimal point"},
        {"[1e]", "in the exponent"},
        {"{\"a\" 1}", "':'"},
        {"\"abc", "unterminated string"},
        {"// c\n1", "at byte 0"},
        {"'a'", "at byte 0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool ok = tc_json_parse(bad[i].text, strlen(bad[i].text), 0, &v, error, sizeof error);
        CHECK(!ok && v == NULL, "'%s' should not parse", bad[i].text);
        CHECK(strstr(error, bad[i].message) != NULL, "'%s': message '%s' lacks '%s'", bad[i].text, error,
              bad[i].message);
        if (ok) tc_json_free(v);
    }
    /* Depth limit: deep nesting fails cleanly rather than exhausting the stack. */
    size_t deep = 100000;
    char *nested = malloc(deep * 2);
    memset(nested, '[', deep);
    memset(nested + deep, ']', deep);
    CHECK(!tc_json_parse(nested, deep * 2, 0, &v, error, sizeof error) && strstr(error, "nesting deeper"),
          "deep nesting: %s", error);
    CHECK(tc_json_parse(nested + deep - 10, 20, 0, &v, error, sizeof error), "10 levels parse: %s", error);
    tc_json_free(v);
    free(nested);
    /* Many keys: the duplicate check scales. */
    tc_json_buffer b;
    tc_json_buffer_init(&b);
    tc_json_append_raw(&b, "{", 1);
    for (int i = 0; i < 20000; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "%s\"k%d\":%d", i ? "," : "", i, i);
        tc_json_append_raw(&b, key, (size_t)n);
    }
    tc_json_append_raw(&b, ",\"k77\":0}", 9);
    CHECK(!tc_json_parse(b.data, b.length, 0, &v, error, sizeof error) && strstr(error, "duplicate key \"k77\""),
          "duplicate among many: %s", error);
    tc_json_buffer_free(&b);
    /* NUL bytes inside the range are data, not an end. */
    CHECK(tc_json_parse("\"a\\u0000b\"", 10, 0, &v, error, sizeof error) && v->as.string.length == 3,
          "\\u0000 keeps the string length");
    tc_json_free(v);
    CHECK(!tc_json_parse("\"a\0b\"", 5, 0, &v, error, sizeof error), "a raw NUL is a control character");
}

/* tc_json_parse_with: what a reader of a format built on JSON gets to word
 * its own messages: the kind of problem, where, and the string it is in. */
static void test_json_options(void) {
    static const struct {
        const char *text;
        tc_json_problem problem;
        size_t offset, string_offset;
        const char *message;
    } bad[] = {
        {"", TC_JSON_ENDS_EARLY, 0, SIZE_MAX, "expected a value"},
        {"{\"a\": 1", TC_JSON_ENDS_EARLY, 7, SIZE_MAX, "',' or '}'"},
        {"[\"abc", TC_JSON_ENDS_EARLY, 1, 1, "unterminated string"},
        {"[1] 2", TC_JSON_TRAILING_TEXT, 4, SIZE_MAX, "the end of the text after the value, found '2'"},
        {"[\"a\xff" "b\"]", TC_JSON_INVALID_UTF8, 3, 1, "invalid UTF-8"},
        {"[1,]", TC_JSON_MALFORMED, 3, SIZE_MAX, "expected a value"},
        {"{\"k\": 1, \"k\": 2}", TC_JSON_MALFORMED, 14, SIZE_MAX, "duplicate key \"k\""},
        {"[\"x\\ud800\"]", TC_JSON_MALFORMED, 3, 1, "\\uD800 is a high surrogate without a low surrogate"},
        {"[\"x\\ud800\\u0041\"]", TC_JSON_MALFORMED, 3, 1, "it is followed by \\u0041, not a low one"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tc_json *v = NULL;
        tc_json_error e;
        bool ok = tc_json_parse_with(bad[i].text, strlen(bad[i].text), NULL, &v, &e);
        CHECK(!ok && v == NULL, "'%s' should not parse", bad[i].text);
        if (ok) {
            tc_json_free(v);
            continue;
        }
        CHECK(e.problem == bad[i].problem && e.offset == bad[i].offset && e.string_offset == bad[i].string_offset,
              "'%s': problem %d at %zu in the string at %zu", bad[i].text, (int)e.problem, e.offset, e.string_offset);
        CHECK(strstr(e.message, bad[i].message) != NULL && strstr(e.message, "at byte") == NULL,
              "'%s': message '%s' lacks '%s'", bad[i].text, e.message, bad[i].message);
    }
    /* Keys keep where they start; a caller that checks keys itself may allow them twice. */
    const char *text = "{\"k\": 1,\n  \"k\": 2, \"\\u00e9\": 3}";
    const tc_json_options allow = {0, true};
    tc_json *v = NULL;
    CHECK(tc_json_parse_with(text, strlen(text), &allow, &v, NULL) && v->as.object.count == 3,
          "duplicate keys when allowed");
    if (v && v->as.object.count == 3) {
        CHECK(v->as.object.members[0].key_offset == 1 && v->as.object.members[1].key_offset == 11 &&
                  v->as.object.members[2].key_offset == 19,
              "key offsets %zu %zu %zu", v->as.object.members[0].key_offset, v->as.object.members[1].key_offset,
              v->as.object.members[2].key_offset);
        CHECK(v->as.object.members[1].value.as.integer == 2 && strcmp(v->as.object.members[2].key, "\xc3\xa9") == 0,
              "values and decoded keys");
    }
    tc_json_free(v);
    v = NULL;
    CHECK(!tc_json_parse_with(text, strlen(text), NULL, &v, NULL) && v == NULL, "duplicate keys by default");
    /* The depth limit is an option too; a NULL error is allowed. */
    const tc_json_options shallow = {1, false};
    tc_json_error e;
    CHECK(!tc_json_parse_with("[[1]]", 5, &shallow, &v, &e) && strstr(e.message, "nesting deeper than 1"),
          "max_depth 1");
    CHECK(tc_json_parse_with("[1]", 3, &shallow, &v, &e), "one level with max_depth 1: %s", e.message);
    tc_json_free(v);
    CHECK(!tc_json_parse_with("[", 1, NULL, &v, NULL) && v == NULL, "no error to fill");
}

/* ---- safetensors ---- */

static tc_tensor *make(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, const void *data) {
    tc_tensor *t = NULL;
    tc_status status = tc_from_data(ctx, dtype, ndim, shape, data, dtype, &t);
    if (status != TC_OK) {
        fprintf(stderr, "from_data: %s\n", tc_last_error(ctx));
        exit(1);
    }
    return t;
}

static bool same_tensor(const tc_tensor *a, const tc_tensor *b) {
    if (tc_tensor_dtype(a) != tc_tensor_dtype(b) || tc_tensor_ndim(a) != tc_tensor_ndim(b)) return false;
    for (int d = 0; d < tc_tensor_ndim(a); d++)
        if (tc_tensor_shape(a)[d] != tc_tensor_shape(b)[d]) return false;
    size_t bytes = (size_t)tc_tensor_numel(a) * tc_dtype_size(tc_tensor_dtype(a));
    return bytes == 0 || memcmp(tc_tensor_data(a), tc_tensor_data(b), bytes) == 0;
}

static void test_round_trip(tc_context *ctx) {
    char path[512];
    path_in(path, sizeof path, "all.safetensors");
    const float f32[6] = {1.5f, -2.25f, 3.0f, INFINITY, -0.0f, 1e-30f};
    const double f64[3] = {1.0 / 3.0, -1e300, 2.0};
    const int32_t i32[4] = {INT32_MIN, -1, 0, INT32_MAX};
    const int64_t i64[2] = {INT64_MIN, INT64_MAX};
    const uint8_t u8[5] = {0, 1, 127, 128, 255};
    const uint8_t boolean[3] = {1, 0, 1};
    const float scalar = 42.0f;
    int64_t s23[] = {2, 3}, s3[] = {3}, s221[] = {2, 2, 1}, s2[] = {2}, s5[] = {5}, s03[] = {0, 3};
    tc_tensor *tensors[] = {
        make(ctx, TC_FLOAT32, 2, s23, f32), make(ctx, TC_FLOAT64, 1, s3, f64), make(ctx, TC_INT32, 3, s221, i32),
        make(ctx, TC_INT64, 1, s2, i64),    make(ctx, TC_UINT8, 1, s5, u8),   make(ctx, TC_BOOL, 1, s3, boolean),
        make(ctx, TC_FLOAT32, 0, NULL, &scalar), make(ctx, TC_FLOAT32, 2, s03, NULL),
    };
    /* Names out of order, one with characters JSON must escape. */
    const char *names[] = {"w\"eight\n", "d", "c.int", "b", "a_u8", "mask", "scalar", "empty"};
    int count = (int)(sizeof tensors / sizeof tensors[0]);
    const char *metadata = "{\"format\": \"pt\", \"note\": \"caf\\u00e9\"}";
    CHECK(tc_safetensors_save(ctx, path, count, names, tensors, metadata) == TC_OK, "save: %s", tc_last_error(ctx));

    /* The bytes: header length, header padded to 8, data in name order. */
    size_t size;
    unsigned char *bytes = read_bytes(path, &size);
    CHECK(bytes != NULL, "read back");
    if (bytes) {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--) n = (n << 8) | bytes[i];
        CHECK(n % 8 == 0, "header length %llu is a multiple of 8", (unsigned long long)n);
        CHECK(bytes[8] == '{', "header starts with {");
        /* Name order a_u8, b, c.int, d, empty, mask, scalar, w"eight: a_u8's bytes come first. */
        CHECK(memcmp(bytes + 8 + n, u8, 5) == 0, "first data bytes are a_u8's");
        CHECK(memcmp(bytes + 8 + n + 5, i64, 16) == 0, "then b's");
        CHECK(size == 8 + n + 5 + 16 + 16 + 24 + 0 + 3 + 4 + 24, "file size %zu", size);
        free(bytes);
    }

    tc_safetensors_file *file;
    CHECK(tc_safetensors_load(ctx, path, &file) == TC_OK, "load: %s", tc_last_error(ctx));
    if (!file) return;
    CHECK(tc_safetensors_count(file) == count, "count %d", tc_safetensors_count(file));
    CHECK(strcmp(tc_safetensors_name(file, 0), "a_u8") == 0, "names sorted: %s", tc_safetensors_name(file, 0));
    CHECK(tc_safetensors_name(file, count) == NULL, "name past the end is NULL");
    const char *meta = tc_safetensors_metadata(file);
    CHECK(meta && strcmp(meta, "{\"format\":\"pt\",\"note\":\"caf\xc3\xa9\"}") == 0, "metadata %s", meta);
    tc_tensor *loaded[8] = {0};
    for (int i = 0; i < count; i++) {
        CHECK(tc_safetensors_get_by_name(file, names[i], &loaded[i]) == TC_OK, "get %s: %s", names[i],
              tc_last_error(ctx));
        if (loaded[i]) CHECK(same_tensor(loaded[i], tensors[i]), "%s round-trips", names[i]);
    }
    tc_tensor *missing = NULL;
    CHECK(tc_safetensors_get_by_name(file, "nope", &missing) == TC_ERROR_ARGUMENT &&
              strstr(tc_last_error(ctx), "no tensor named 'nope'"),
          "missing name: %s", tc_last_error(ctx));
    tc_safetensors_close(file);
    /* The tensors outlive the handle; writes to them stay in memory. */
    float *data = tc_tensor_data(loaded[0]);
    CHECK(data[0] == 1.5f, "value readable after close");
    data[0] = 99.0f;
    tc_safetensors_file *again;
    CHECK(tc_safetensors_load(ctx, path, &again) == TC_OK, "reload");
    if (again) {
        tc_tensor *w;
        CHECK(tc_safetensors_get_by_name(again, names[0], &w) == TC_OK, "get again");
        CHECK(((float *)tc_tensor_data(w))[0] == 1.5f, "the file did not change under a write to a loaded tensor");
        tc_tensor_release(w);
        tc_safetensors_close(again);
    }
    /* Overwriting the file (atomically) leaves earlier tensors intact. */
    CHECK(tc_safetensors_save(ctx, path, 1, names + 1, tensors + 1, NULL) == TC_OK, "overwrite");
    CHECK(((float *)tc_tensor_data(loaded[0]))[1] == -2.25f, "old mapping still readable after replace");
    CHECK(tc_safetensors_load(ctx, path, &again) == TC_OK && tc_safetensors_count(again) == 1 &&
              tc_safetensors_metadata(again) == NULL,
          "replaced file has one tensor, no metadata");
    tc_safetensors_close(again);
    for (int i = 0; i < count; i++) {
        tc_tensor_release(loaded[i]);
        tc_tensor_release(tensors[i]);
    }
}

static void test_views_and_save_errors(tc_context *ctx) {
    char path[512];
    path_in(path, sizeof path, "views.safetensors");
    const float values[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[] = {2, 3};
    tc_tensor *t = make(ctx, TC_FLOAT32, 2, shape, values), *tt;
    CHECK(tc_transpose(t, 0, 1, &tt) == TC_OK, "transpose");
    const char *name = "t";
    CHECK(tc_safetensors_save(ctx, path, 1, &name, &tt, NULL) == TC_OK, "save a view: %s", tc_last_error(ctx));
    tc_safetensors_file *file;
    tc_tensor *back = NULL;
    CHECK(tc_safetensors_load(ctx, path, &file) == TC_OK && tc_safetensors_get(file, 0, &back) == TC_OK,
          "load view");
    if (back) {
        const float expected[6] = {1, 4, 2, 5, 3, 6};
        CHECK(tc_tensor_shape(back)[0] == 3 && memcmp(tc_tensor_data(back), expected, sizeof expected) == 0,
              "a transposed view is written in its logical order");
        tc_tensor_release(back);
    }
    tc_safetensors_close(file);

    tc_tensor *pair[2] = {t, t};
    const char *twice[2] = {"x", "x"};
    CHECK(tc_safetensors_save(ctx, path, 2, twice, pair, NULL) == TC_ERROR_ARGUMENT &&
              strstr(tc_last_error(ctx), "used twice"),
          "duplicate names: %s", tc_last_error(ctx));
    const char *reserved = "__metadata__";
    CHECK(tc_safetensors_save(ctx, path, 1, &reserved, &t, NULL) == TC_ERROR_ARGUMENT, "reserved name");
    const char *empty = "";
    CHECK(tc_safetensors_save(ctx, path, 1, &empty, &t, NULL) == TC_ERROR_ARGUMENT, "empty name");
    CHECK(tc_safetensors_save(ctx, path, 1, &name, &t, "{\"a\": 1}") == TC_ERROR_ARGUMENT &&
              strstr(tc_last_error(ctx), "must be a string"),
          "numeric metadata: %s", tc_last_error(ctx));
    CHECK(tc_safetensors_save(ctx, path, 1, &name, &t, "[\"a\"]") == TC_ERROR_ARGUMENT, "array metadata");
    CHECK(tc_safetensors_save(ctx, path, 1, &name, &t, "{bad") == TC_ERROR_ARGUMENT &&
              strstr(tc_last_error(ctx), "not valid JSON"),
          "bad metadata: %s", tc_last_error(ctx));
    /* After all those failures the earlier file is still the good one. */
    CHECK(tc_safetensors_load(ctx, path, &file) == TC_OK && tc_safetensors_count(file) == 1, "old file intact");
    tc_safetensors_close(file);
    /* No save at all: zero tensors is a valid, empty file. */
    char empty_path[512];
    path_in(empty_path, sizeof empty_path, "none.safetensors");
    CHECK(tc_safetensors_save(ctx, empty_path, 0, NULL, NULL, NULL) == TC_OK, "save nothing");
    CHECK(tc_safetensors_load(ctx, empty_path, &file) == TC_OK && tc_safetensors_count(file) == 0, "load nothing");
    tc_safetensors_close(file);
    /* An unwritable place: an error naming it, and no temporary left. */
    char bad_path[512];
    path_in(bad_path, sizeof bad_path, "no/such/dir/x.safetensors");
    CHECK(tc_safetensors_save(ctx, bad_path, 1, &name, &t, NULL) == TC_ERROR_IO &&
              strstr(tc_last_error(ctx), "no/such/dir/x.safetensors"),
          "unwritable: %s", tc_last_error(ctx));
    tc_tensor_release(tt);
    tc_tensor_release(t);
}

static void test_hand_written(tc_context *ctx) {
    char path[512];
    path_in(path, sizeof path, "hand.safetensors");
    /* U8 [3] then F32 [2] at offset 3: misaligned, so it must be copied. And
     * F16 / BF16 that load as float16 / bfloat16. The header is not padded. */
    unsigned char data[3 + 8 + 4 + 4];
    data[0] = 7;
    data[1] = 8;
    data[2] = 9;
    float two[2] = {0.5f, -4.0f};
    memcpy(data + 3, two, 8);
    const uint16_t halves[2] = {0x3C00, 0xC100};  /* 1.0, -2.5 */
    const uint16_t bfloats[2] = {0x3F80, 0x4049}; /* 1.0, 3.140625 */
    memcpy(data + 11, halves, 4);
    memcpy(data + 15, bfloats, 4);
    write_safetensors(path,
                      "{\"bytes\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                      "\"floats\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[3,11]},"
                      "\"half\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[11,15]},"
                      "\"brain\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[15,19],\"extra\":1}}",
                      data, sizeof data);
    tc_safetensors_file *file;
    CHECK(tc_safetensors_load(ctx, path, &file) == TC_OK, "hand-written load: %s", tc_last_error(ctx));
    if (!file) return;
    tc_tensor *t;
    CHECK(tc_safetensors_get_by_name(file, "floats", &t) == TC_OK, "floats");
    CHECK(((uintptr_t)tc_tensor_data(t) % 4) == 0, "misaligned data was copied to aligned memory");
    CHECK(((float *)tc_tensor_data(t))[0] == 0.5f && ((float *)tc_tensor_data(t))[1] == -4.0f, "float values");
    tc_tensor_release(t);
    CHECK(tc_safetensors_get_by_name(file, "bytes", &t) == TC_OK && ((uint8_t *)tc_tensor_data(t))[2] == 9, "bytes");
    tc_tensor_release(t);
    /* F16 and BF16 load as such, their bits unchanged */
    CHECK(tc_safetensors_get_by_name(file, "half", &t) == TC_OK && tc_tensor_dtype(t) == TC_FLOAT16 &&
              memcmp(tc_tensor_data(t), halves, sizeof halves) == 0,
          "F16 as float16");
    double values[2] = {0, 0};
    CHECK(t && tc_copy_to_doubles(t, values, 2) == TC_OK && values[0] == 1.0 && values[1] == -2.5, "F16 values");
    tc_tensor_release(t);
    CHECK(tc_safetensors_get_by_name(file, "brain", &t) == TC_OK && tc_tensor_ndim(t) == 2 &&
              tc_tensor_dtype(t) == TC_BFLOAT16 && memcmp(tc_tensor_data(t), bfloats, sizeof bfloats) == 0,
          "BF16 as bfloat16");
    CHECK(t && tc_copy_to_doubles(t, values, 2) == TC_OK && values[1] == 3.140625, "BF16 values");
    tc_tensor_release(t);
    tc_safetensors_close(file);
}

/* tc_safetensors_load_memory reads a file's bytes as tc_safetensors_load
 * reads the file; it keeps its own copy, so the tensors outlive both the
 * handle and the caller's buffer. */
static void test_from_memory(tc_context *ctx) {
    char path[512];
    path_in(path, sizeof path, "memory.safetensors");
    const double values[4] = {1.0, -2.5, 1e300, 0.0};
    const uint8_t bytes3[3] = {7, 8, 9};
    int64_t s22[] = {2, 2}, s3[] = {3};
    tc_tensor *tensors[] = {make(ctx, TC_FLOAT64, 2, s22, values), make(ctx, TC_UINT8, 1, s3, bytes3)};
    const char *names[] = {"w", "b"};
    CHECK(tc_safetensors_save(ctx, path, 2, names, tensors, "{\"k\":\"v\"}") == TC_OK, "save: %s",
          tc_last_error(ctx));
    size_t size = 0;
    unsigned char *bytes = read_bytes(path, &size);
    CHECK(bytes != NULL, "read back");
    if (!bytes) return;
    tc_safetensors_file *file = NULL;
    CHECK(tc_safetensors_load_memory(ctx, "in memory", bytes, size, &file) == TC_OK, "load: %s", tc_last_error(ctx));
    memset(bytes, 0, size);
    free(bytes);
    if (file) {
        CHECK(tc_safetensors_count(file) == 2 && strcmp(tc_safetensors_name(file, 0), "b") == 0, "listing");
        CHECK(tc_safetensors_metadata(file) && strcmp(tc_safetensors_metadata(file), "{\"k\":\"v\"}") == 0,
              "metadata %s", tc_safetensors_metadata(file));
        tc_tensor *w = NULL, *b = NULL;
        CHECK(tc_safetensors_get_by_name(file, "w", &w) == TC_OK && tc_safetensors_get_by_name(file, "b", &b) == TC_OK,
              "get: %s", tc_last_error(ctx));
        tc_safetensors_close(file);
        if (w) CHECK(same_tensor(w, tensors[0]), "w from memory");
        if (b) CHECK(same_tensor(b, tensors[1]), "b from memory");
        tc_tensor_release(w);
        tc_tensor_release(b);
    }
    /* Errors name the name given; short input is refused before any read. */
    const unsigned char short_input[5] = {1, 0, 0, 0, 0};
    CHECK(tc_safetensors_load_memory(ctx, "in memory", short_input, 5, &file) == TC_ERROR_FORMAT && file == NULL &&
              strstr(tc_last_error(ctx), "'in memory': the file is 5 bytes, too short"),
          "short: %s", tc_last_error(ctx));
    CHECK(tc_safetensors_load_memory(ctx, "in memory", NULL, 0, &file) == TC_ERROR_FORMAT && file == NULL,
          "empty: %s", tc_last_error(ctx));
    tc_tensor_release(tensors[0]);
    tc_tensor_release(tensors[1]);
    unlink(path);
}

/* Each corrupt header fails to load with a message naming the path and the
 * problem. */
static void test_corrupt(tc_context *ctx) {
    char path[512];
    path_in(path, sizeof path, "bad.safetensors");
    unsigned char data[16] = {0};
    static const struct {
        const char *header;
        size_t data_size;
        const char *message;
    } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", 8, "not valid JSON"},
        {"[1]", 8, "does not start with"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 8, "outside the data section"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "end before they begin"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 16, "needs 12 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         16, "overlap"},
        {"{\"a\":{\"dtype\":\"F31\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype \"F31\" is not supported"},
        {"{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "\"dtype\""},
        {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "\"dtype\" is missing"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "shape entry 1"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, "\"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
         "tensor 'a': shape {4294967296, 4294967296} is too large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,0],\"data_offsets\":[0,0]}}", 0,
         "tensor 'a': shape {4611686018427387904, 0} is too large"},
        {"{\"a\":{\"dtype\":\"I64\",\"shape\":[3037000500,3037000500],\"data_offsets\":[0,8]}}", 8,
         "too large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 8, "dims"},
        {"{\"a\":5}", 8, "expected an object"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "must be a string"},
        {"{\"__metadata__\":[]}", 0, "must be an object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[4,8]}}",
         8, "duplicate key \"a\""},
        {"{\"\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 8, "empty name"},
        {"{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 8, "NUL"},
        {"  {}", 0, "does not start with '{'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_safetensors(path, cases[i].header, data, cases[i].data_size);
        tc_safetensors_file *file = (tc_safetensors_file *)1;
        tc_status status = tc_safetensors_load(ctx, path, &file);
        CHECK(status == TC_ERROR_FORMAT || status == TC_ERROR_UNSUPPORTED, "case %zu loads (status %d)", i,
              (int)status);
        CHECK(file == NULL, "case %zu: no handle on failure", i);
        CHECK(strstr(tc_last_error(ctx), path) && strstr(tc_last_error(ctx), cases[i].message),
              "case %zu: '%s' lacks the path or '%s'", i, tc_last_error(ctx), cases[i].message);
        if (status == TC_OK) tc_safetensors_close(file);
    }
    /* A header length beyond the file; a file shorter than 8 bytes; no file. */
    unsigned char huge[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{', '}'};
    write_bytes(path, huge, sizeof huge);
    tc_safetensors_file *file;
    CHECK(tc_safetensors_load(ctx, path, &file) == TC_ERROR_FORMAT && strstr(tc_last_error(ctx), "exceeds"),
          "header length too large: %s", tc_last_error(ctx));
    write_bytes(path, huge, 5);
    CHECK(tc_safetensors_load(ctx, path, &file) == TC_ERROR_FORMAT && strstr(tc_last_error(ctx), "too short"),
          "tiny file: %s", tc_last_error(ctx));
    write_bytes(path, huge, 0);
    CHECK(tc_safetensors_load(ctx, path, &file) == TC_ERROR_FORMAT, "empty file");
    char missing[512];
    path_in(missing, sizeof missing, "missing.safetensors");
    CHECK(tc_safetensors_load(ctx, missing, &file) == TC_ERROR_IO && strstr(tc_last_error(ctx), missing),
          "missing file: %s", tc_last_error(ctx));
    CHECK(tc_safetensors_load(ctx, directory, &file) == TC_ERROR_IO, "a directory is not a file");
    /* BOOL bytes other than 0/1 fail when the tensor is taken. */
    unsigned char flags[3] = {0, 1, 2};
    write_safetensors(path, "{\"m\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,3]}}", flags, 3);
    CHECK(tc_safetensors_load(ctx, path, &file) == TC_OK, "bool file loads");
    tc_tensor *t = NULL;
    CHECK(tc_safetensors_get(file, 0, &t) == TC_ERROR_FORMAT && strstr(tc_last_error(ctx), "BOOL element 2"),
          "bad bool: %s", tc_last_error(ctx));
    CHECK(tc_safetensors_get(file, 5, &t) == TC_ERROR_ARGUMENT, "index out of range");
    tc_safetensors_close(file);
}

/* ---- fuzz ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next_random(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_fuzz(tc_context *ctx) {
    char good[512], path[512];
    path_in(good, sizeof good, "fuzz_source.safetensors");
    path_in(path, sizeof path, "fuzz.safetensors");
    const float f[6] = {1, 2, 3, 4, 5, 6};
    const int64_t l[2] = {7, 8};
    const uint8_t b[3] = {1, 0, 1};
    int64_t s23[] = {2, 3}, s2[] = {2}, s3[] = {3};
    tc_tensor *tensors[3] = {make(ctx, TC_FLOAT32, 2, s23, f), make(ctx, TC_INT64, 1, s2, l),
                             make(ctx, TC_BOOL, 1, s3, b)};
    const char *names[3] = {"weight", "ids", "mask"};
    CHECK(tc_safetensors_save(ctx, good, 3, names, tensors, "{\"k\":\"v\"}") == TC_OK, "fuzz source");
    for (int i = 0; i < 3; i++) tc_tensor_release(tensors[i]);
    size_t size;
    unsigned char *original = read_bytes(good, &size);
    unsigned char *bytes = malloc(size);
    uint64_t header_length = 0;
    for (int i = 7; i >= 0; i--) header_length = (header_length << 8) | original[i];
    int loaded = 0, rejected = 0;
    for (int round = 0; round < 3000; round++) {
        memcpy(bytes, original, size);
        size_t n = size;
        uint64_t r = next_random();
        if (r % 3 == 0) {
            n = (size_t)(next_random() % size);
        } else if (r % 3 == 1) {
            /* Rewrite digits of the header: shapes and offsets that still
             * parse, for the validator rather than the JSON reader. */
            int edits = 1 + (int)(next_random() % 3);
            for (int k = 0; k < edits; k++) {
                size_t at = 8 + (size_t)(next_random() % (size - 8));
                for (size_t probe = 0; probe < size; probe++, at = at + 1 < size ? at + 1 : 8)
                    if (bytes[at] >= '0' && bytes[at] <= '9' && at < 8 + header_length) {
                        bytes[at] = (unsigned char)('0' + next_random() % 10);
                        break;
                    }
            }
        } else {
            int flips = 1 + (int)(next_random() % 4);
            for (int k = 0; k < flips; k++) {
                /* Mostly in the length and header, where parsing happens. */
                size_t at = next_random() % 4 ? (size_t)(next_random() % (size < 200 ? size : 200))
                                              : (size_t)(next_random() % size);
                if (next_random() % 2) bytes[at] ^= (unsigned char)(1u << (next_random() % 8));
                else bytes[at] = (unsigned char)next_random();
            }
        }
        write_bytes(path, bytes, n);
        tc_safetensors_file *file = NULL;
        tc_status status = tc_safetensors_load(ctx, path, &file);
        if (status != TC_OK) {
            rejected++;
            CHECK(file == NULL && tc_last_error(ctx)[0], "round %d: failure without message", round);
            continue;
        }
        loaded++;
        for (int i = 0; i < tc_safetensors_count(file); i++) {
            tc_tensor *t = NULL;
            if (tc_safetensors_get(file, i, &t) != TC_OK) continue;
            /* Touch every byte: out-of-bounds reads would show under ASan. */
            size_t nbytes = (size_t)tc_tensor_numel(t) * tc_dtype_size(tc_tensor_dtype(t));
            volatile unsigned sum = 0;
            for (size_t k = 0; k < nbytes; k++) sum += ((unsigned char *)tc_tensor_data(t))[k];
            (void)sum;
            tc_tensor_release(t);
        }
        (void)tc_safetensors_metadata(file);
        tc_safetensors_close(file);
    }
    CHECK(loaded > 0 && rejected > 0, "fuzz exercised both outcomes (%d loaded, %d rejected)", loaded, rejected);
    printf("fuzz: %d mutated files loaded, %d rejected with an error\n", loaded, rejected);
    free(bytes);
    free(original);
}

int main(void) {
    snprintf(directory, sizeof directory, "/tmp/tricycle_safetensors_XXXXXX");
    if (!mkdtemp(directory)) {
        perror("mkdtemp");
        return 1;
    }
    tc_context *ctx = tc_context_new();
    test_json();
    test_json_options();
    test_round_trip(ctx);
    test_views_and_save_errors(ctx);
    test_hand_written(ctx);
    test_corrupt(ctx);
    test_from_memory(ctx);
    test_fuzz(ctx);
    tc_context_free(ctx);
    char command[600];
    snprintf(command, sizeof command, "rm -rf '%s'", directory);
    if (system(command) != 0) fprintf(stderr, "could not remove %s\n", directory);
    printf("safetensors_test: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
