/*
 * json.c (fuzz target): the strict JSON reader and the writer (src/json.c).
 *
 * The input is parsed as one JSON text. A failure must come with "at byte
 * N: ..." inside the input. A success is walked (every string NUL-terminated
 * and valid UTF-8, every key found by tc_json_get, offsets inside the input),
 * written back compactly, and the writing must parse again to the same tree
 * (non-finite doubles, which JSON cannot hold, are written as null) and
 * write to the same text. Finally the input as a string value: the writer
 * escapes it, and the reader gives the same bytes back exactly when they are
 * valid UTF-8 and fails otherwise.
 */
#include "json.h"
#include "fuzz.h"

#include <math.h>

static void walk(const tc_json *value, size_t size, int depth) {
    FUZZ_REQUIRE(depth <= TC_JSON_DEFAULT_DEPTH + 1, "nesting %d passed the limit", depth);
    FUZZ_REQUIRE(value->offset < size, "offset %zu outside the %zu-byte text", value->offset, size);
    switch (value->type) {
    case TC_JSON_NULL:
    case TC_JSON_BOOL:
    case TC_JSON_INTEGER:
    case TC_JSON_DOUBLE: break;
    case TC_JSON_STRING:
        FUZZ_REQUIRE(value->as.string.data[value->as.string.length] == '\0', "string not NUL-terminated");
        FUZZ_REQUIRE(tc_json_valid_utf8(value->as.string.data, value->as.string.length), "string is not UTF-8");
        break;
    case TC_JSON_ARRAY:
        for (size_t i = 0; i < value->as.array.count; i++) walk(&value->as.array.items[i], size, depth + 1);
        break;
    case TC_JSON_OBJECT:
        for (size_t i = 0; i < value->as.object.count; i++) {
            const tc_json_member *m = &value->as.object.members[i];
            FUZZ_REQUIRE(m->key[m->key_length] == '\0', "key not NUL-terminated");
            FUZZ_REQUIRE(tc_json_valid_utf8(m->key, m->key_length), "key is not UTF-8");
            /* Keys are unique, so lookup finds this member (unless the key
             * holds a NUL byte, which a C-string lookup cannot name). */
            if (strlen(m->key) == m->key_length)
                FUZZ_REQUIRE(tc_json_get(value, m->key) == &m->value, "tc_json_get misses key \"%s\"", m->key);
            walk(&m->value, size, depth + 1);
        }
        break;
    default: FUZZ_REQUIRE(false, "unknown type %d", (int)value->type);
    }
}

/* Equal trees, where the first may hold non-finite doubles that the second,
 * read back from the writing, holds as null. */
static bool same_value(const tc_json *a, const tc_json *b) {
    if (a->type == TC_JSON_DOUBLE && !isfinite(a->as.number)) return b->type == TC_JSON_NULL;
    if (a->type != b->type) return false;
    switch (a->type) {
    case TC_JSON_NULL: return true;
    case TC_JSON_BOOL: return a->as.boolean == b->as.boolean;
    case TC_JSON_INTEGER: return a->as.integer == b->as.integer;
    case TC_JSON_DOUBLE:
        return a->as.number == b->as.number && signbit(a->as.number) == signbit(b->as.number);
    case TC_JSON_STRING:
        return a->as.string.length == b->as.string.length &&
               memcmp(a->as.string.data, b->as.string.data, a->as.string.length) == 0;
    case TC_JSON_ARRAY:
        if (a->as.array.count != b->as.array.count) return false;
        for (size_t i = 0; i < a->as.array.count; i++)
            if (!same_value(&a->as.array.items[i], &b->as.array.items[i])) return false;
        return true;
    case TC_JSON_OBJECT:
        if (a->as.object.count != b->as.object.count) return false;
        for (size_t i = 0; i < a->as.object.count; i++) {
            const tc_json_member *x = &a->as.object.members[i], *y = &b->as.object.members[i];
            if (x->key_length != y->key_length || memcmp(x->key, y->key, x->key_length) != 0) return false;
            if (!same_value(&x->value, &y->value)) return false;
        }
        return true;
    }
    return false;
}

static void check_error(const char *error, size_t size) {
    unsigned long long at;
    FUZZ_REQUIRE(sscanf(error, "at byte %llu: ", &at) == 1, "error without its offset: %s", error);
    FUZZ_REQUIRE(at <= size, "error offset %llu past the %zu-byte text: %s", at, size, error);
    FUZZ_REQUIRE(strlen(error) > strlen("at byte 0: "), "error without a description: %s", error);
}

static void round_trip(const tc_json *tree) {
    tc_json_buffer first;
    tc_json_buffer_init(&first);
    tc_json_append_value(&first, tree);
    FUZZ_REQUIRE(!first.failed && first.data, "writing failed");
    char error[256];
    tc_json *again;
    FUZZ_REQUIRE(tc_json_parse(first.data, first.length, 0, &again, error, sizeof error),
                 "the writing does not parse: %s\n%s", error, first.data);
    FUZZ_REQUIRE(same_value(tree, again), "the writing reads back as another value:\n%s", first.data);
    tc_json_buffer second;
    tc_json_buffer_init(&second);
    tc_json_append_value(&second, again);
    FUZZ_REQUIRE(!second.failed && second.length == first.length && memcmp(first.data, second.data, first.length) == 0,
                 "writing again differs:\n%s\n%s", first.data, second.data ? second.data : "(failed)");
    tc_json_buffer_free(&second);
    tc_json_free(again);
    tc_json_buffer_free(&first);
}

/* The input as a string value: the writer's escaping against the reader. */
static void string_round_trip(const char *text, size_t size) {
    tc_json_buffer quoted;
    tc_json_buffer_init(&quoted);
    tc_json_append_string(&quoted, text, size);
    FUZZ_REQUIRE(!quoted.failed && quoted.data, "writing a string failed");
    char error[256];
    tc_json *back;
    bool parsed = tc_json_parse(quoted.data, quoted.length, 0, &back, error, sizeof error);
    bool valid = tc_json_valid_utf8(text, size);
    FUZZ_REQUIRE(parsed == valid, "a quoted string of %s bytes %s: %s", valid ? "UTF-8" : "non-UTF-8",
                 parsed ? "parses" : "does not parse", parsed ? "" : error);
    if (parsed) {
        FUZZ_REQUIRE(back->type == TC_JSON_STRING && back->as.string.length == size &&
                         memcmp(back->as.string.data, text, size) == 0,
                     "a quoted string reads back changed");
        tc_json_free(back);
    } else {
        check_error(error, quoted.length);
    }
    tc_json_buffer_free(&quoted);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    char error[256];
    tc_json *tree;
    if (!tc_json_parse(text, size, 0, &tree, error, sizeof error)) {
        FUZZ_REQUIRE(tree == NULL, "a failed parse left a tree");
        check_error(error, size);
    } else {
        walk(tree, size, 0);
        round_trip(tree);
        tc_json_free(tree);
    }
    string_round_trip(text, size);
    return 0;
}
