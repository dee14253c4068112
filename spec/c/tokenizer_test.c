/*
 * tokenizer_test.c: tests of the tokenizer C API (the tokenizers section of src/tricycle.h).
 *
 * Prints one line per failed check and a closing `N passed, M failed` line;
 * exits non-zero when a check fails. Tiny Shakespeare is read from
 * $TRICYCLE_DATA/tinyshakespeare.txt (default ../shared/data, relative to
 * the repository root); the checks on it are skipped when it is missing.
 */
#include "tricycle.h"

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_calls.h"

static int skipped;
static char temp_dir[256];

static bool ids_equal(const int32_t *ids, size_t count, const int32_t *want, size_t want_count) {
    return count == want_count && (count == 0 || memcmp(ids, want, count * sizeof *ids) == 0);
}

#define CHECK_IDS(ids, count, ...)                                                                                     \
    do {                                                                                                               \
        const int32_t want_[] = {__VA_ARGS__};                                                                         \
        if (!CHECK(ids_equal((ids), (count), want_, sizeof want_ / sizeof want_[0]))) print_ids((ids), (count));       \
    } while (0)

static void print_ids(const int32_t *ids, size_t count) {
    printf("     got %zu ids:", count);
    for (size_t i = 0; i < count && i < 40; i++) printf(" %d", (int)ids[i]);
    printf("\n");
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t capacity = 1 << 16, n = 0;
    char *data = malloc(capacity);
    size_t got;
    while (data && (got = fread(data + n, 1, capacity - n, f)) > 0) {
        n += got;
        if (n == capacity) {
            char *bigger = realloc(data, capacity *= 2);
            if (!bigger) free(data);
            data = bigger;
        }
    }
    fclose(f);
    *len = n;
    return data;
}

static void write_all(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        printf("cannot write %s\n", path);
        exit(2);
    }
    fwrite(data, 1, len, f);
    fclose(f);
}

static const char *temp_path(const char *name) {
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", temp_dir, name);
    return p;
}

/* Encodes text; the ids are freed by the caller. */
static int32_t *encode(tc_context *ctx, tc_tokenizer *tok, const char *text, size_t *count) {
    int32_t *ids = NULL;
    *count = 0;
    if (!CHECK_OK(ctx, tc_tokenizer_encode(tok, text, strlen(text), &ids, count))) return NULL;
    return ids;
}

static bool token_is(tc_tokenizer *tok, int32_t id, const char *want) {
    const char *bytes;
    size_t len;
    if (tc_tokenizer_token_bytes(tok, id, &bytes, &len) != TC_OK) return false;
    return len == strlen(want) && memcmp(bytes, want, len) == 0;
}

/* Decodes ids and compares with want (len bytes). */
static bool decodes_to(tc_context *ctx, tc_tokenizer *tok, const int32_t *ids, size_t count, const char *want,
                       size_t want_len) {
    char *text = NULL;
    size_t len = 0;
    if (!CHECK_OK(ctx, tc_tokenizer_decode(tok, ids, count, &text, &len))) return false;
    bool same = len == want_len && memcmp(text, want, len) == 0 && text[len] == '\0';
    tc_tokenizer_free_text(text);
    return same;
}

/* ---- BPE training, worked by hand --------------------------------------- */

static void test_golden_basic(tc_context *ctx) {
    /* "aaabdaaabac" (a=97 b=98 c=99 d=100), no pre-splitting.
     * Pairs: (a,a) x4, (a,b) x2, (b,d) (d,a) (b,a) (a,c) x1.
     *   merge 0: (97,97) -> 256, left to right: 256 a b d 256 a b a c
     * Pairs: (256,a) x2, (a,b) x2, others x1; the tie goes to the smaller
     * pair, (97,98) before (256,97):
     *   merge 1: (97,98) -> 257: 256 257 d 256 257 a c
     *   merge 2: (256,257) -> 258: 258 d 258 a c            ("aaab")
     * Now every pair occurs once: (258,100) (100,258) (258,97) (97,99):
     *   merge 3: (97,99) -> 259: 258 d 258 259               ("ac")
     *   merge 4: (100,258) -> 260: 258 260 259                ("daaab") */
    const char *text = "aaabdaaabac";
    tc_tokenizer *tok = NULL;
    if (!CHECK_OK(ctx, tc_bpe_train(ctx, text, strlen(text), 259, false, &tok))) return;
    CHECK(tc_tokenizer_vocab_size(tok) == 259);
    CHECK(tc_tokenizer_merge_count(tok) == 3);
    CHECK(tc_tokenizer_get_kind(tok) == TC_TOKENIZER_BPE);
    CHECK(!tc_tokenizer_gpt2_split(tok));
    CHECK(token_is(tok, 97, "a") && token_is(tok, 256, "aa") && token_is(tok, 257, "ab") && token_is(tok, 258, "aaab"));
    size_t count;
    int32_t *ids = encode(ctx, tok, text, &count);
    CHECK_IDS(ids, count, 258, 100, 258, 97, 99);
    CHECK(decodes_to(ctx, tok, ids, count, text, strlen(text)));
    tc_tokenizer_free_ids(ids);
    /* Unseen text still encodes, merges by rank: "aab" -> (a,a) first. */
    ids = encode(ctx, tok, "aabxaaab", &count);
    CHECK_IDS(ids, count, 256, 98, 120, 258);
    tc_tokenizer_free_ids(ids);
    tc_tokenizer_free(tok);

    if (!CHECK_OK(ctx, tc_bpe_train(ctx, text, strlen(text), 261, false, &tok))) return;
    CHECK(token_is(tok, 259, "ac") && token_is(tok, 260, "daaab"));
    ids = encode(ctx, tok, text, &count);
    CHECK_IDS(ids, count, 258, 260, 259);
    tc_tokenizer_free_ids(ids);
    tc_tokenizer_free(tok);
}

static void test_golden_overlap(tc_context *ctx) {
    /* "aaaa": (a,a) occurs 3 times (overlapping), merge 0: (97,97) -> 256.
     * Applied left to right: "aaaa" -> 256 256, "aaa" -> 256 a,
     * "aaaaa" -> 256 256 a. */
    tc_tokenizer *tok = NULL;
    if (!CHECK_OK(ctx, tc_bpe_train(ctx, "aaaa", 4, 257, false, &tok))) return;
    size_t count;
    int32_t *ids = encode(ctx, tok, "aaaa", &count);
    CHECK_IDS(ids, count, 256, 256);
    tc_tokenizer_free_ids(ids);
    ids = encode(ctx, tok, "aaa", &count);
    CHECK_IDS(ids, count, 256, 97);
    tc_tokenizer_free_ids(ids);
    ids = encode(ctx, tok, "aaaaa", &count);
    CHECK_IDS(ids, count, 256, 256, 97);
    tc_tokenizer_free_ids(ids);
    /* A long run goes through the encoder's path for long sequences. */
    char run[201];
    memset(run, 'a', 200);
    run[200] = 0;
    ids = encode(ctx, tok, run, &count);
    CHECK(count == 100);
    bool all = ids != NULL;
    for (size_t i = 0; i < count && all; i++) all = ids[i] == 256;
    CHECK(all);
    tc_tokenizer_free_ids(ids);
    tc_tokenizer_free(tok);
}

static void test_golden_split(tc_context *ctx) {
    /* "hello hello" with GPT-2 pre-splitting: the words "hello" and " hello",
     * once each; merges stay inside words.
     * Pairs: (h,e) (e,l) (l,l) (l,o) x2, (32,h) x1.
     *   merge 0: (101,108) -> 256 "el"    (smallest of the pairs seen twice)
     *   h 256 l o | 32 h 256 l o: (104,256) (256,108) (108,111) x2
     *   merge 1: (104,256) -> 257 "hel"
     *   merge 2: (108,111) -> 258 "lo"
     *   merge 3: (257,258) -> 259 "hello"
     *   merge 4: (32,259) -> 260 " hello"
     * Then no pair is left, so training stops at 261 tokens. */
    const char *text = "hello hello";
    tc_tokenizer *tok = NULL;
    if (!CHECK_OK(ctx, tc_bpe_train(ctx, text, strlen(text), 1000, true, &tok))) return;
    CHECK(tc_tokenizer_vocab_size(tok) == 261);
    CHECK(tc_tokenizer_gpt2_split(tok));
    CHECK(token_is(tok, 256, "el") && token_is(tok, 257, "hel") && token_is(tok, 258, "lo") &&
          token_is(tok, 259, "hello") && token_is(tok, 260, " hello"));
    size_t count;
    int32_t *ids = encode(ctx, tok, text, &count);
    CHECK_IDS(ids, count, 259, 260);
    tc_tokenizer_free_ids(ids);
    /* "hellohello" is one word: no merge joins the two halves. */
    ids = encode(ctx, tok, "hellohello", &count);
    CHECK_IDS(ids, count, 259, 259);
    tc_tokenizer_free_ids(ids);
    tc_tokenizer_free(tok);

    /* Without pre-splitting the space is merged too, down to one token. */
    if (!CHECK_OK(ctx, tc_bpe_train(ctx, text, strlen(text), 1000, false, &tok))) return;
    ids = encode(ctx, tok, text, &count);
    CHECK(count == 1 && token_is(tok, ids[0], text));
    tc_tokenizer_free_ids(ids);
    tc_tokenizer_free(tok);
}

static void test_split_pieces(tc_context *ctx) {
    /* With vocab 256 (no merges) the pieces are invisible, so train on the
     * text itself with room for every merge: each piece ends as one token
     * and the tokens show where the pieces are. */
    const char *text = "I'm   here,  they'll say 42x\tok\n\n";
    tc_tokenizer *tok = NULL;
    if (!CHECK_OK(ctx, tc_bpe_train(ctx, text, strlen(text), 100000, true, &tok))) return;
    size_t count;
    int32_t *ids = encode(ctx, tok, text, &count);
    const char *want[] = {"I", "'m", "  ", " here", ",", " ", " they", "'ll", " say", " 42", "x", "\t", "ok", "\n\n"};
    bool same = ids && count == sizeof want / sizeof want[0];
    for (size_t i = 0; same && i < count; i++) same = token_is(tok, ids[i], want[i]);
    if (!CHECK(same) && ids) {
        for (size_t i = 0; i < count; i++) {
            const char *b;
            size_t l;
            tc_tokenizer_token_bytes(tok, ids[i], &b, &l);
            printf("     piece %zu: [%.*s]\n", i, (int)l, b);
        }
    }
    tc_tokenizer_free_ids(ids);
    tc_tokenizer_free(tok);
}

/* ---- files and data ------------------------------------------------------ */

static char *shakespeare(size_t *len) {
    const char *dir = getenv("TRICYCLE_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/tinyshakespeare.txt", dir && *dir ? dir : "../shared/data");
    char *text = read_all(path, len);
    if (!text) {
        printf("skip: %s is missing\n", path);
        skipped++;
    }
    return text;
}

static bool round_trips(tc_context *ctx, tc_tokenizer *tok, const char *text, size_t len, size_t *count_out) {
    int32_t *ids = NULL;
    size_t count = 0;
    if (!CHECK_OK(ctx, tc_tokenizer_encode(tok, text, len, &ids, &count))) return false;
    bool ok = decodes_to(ctx, tok, ids, count, text, len);
    if (count_out) *count_out = count;
    tc_tokenizer_free_ids(ids);
    return ok;
}

static bool same_tokenizer(tc_tokenizer *a, tc_tokenizer *b) {
    if (tc_tokenizer_vocab_size(a) != tc_tokenizer_vocab_size(b) ||
        tc_tokenizer_get_kind(a) != tc_tokenizer_get_kind(b) ||
        tc_tokenizer_gpt2_split(a) != tc_tokenizer_gpt2_split(b) ||
        tc_tokenizer_merge_count(a) != tc_tokenizer_merge_count(b))
        return false;
    for (int32_t id = 0; id < tc_tokenizer_vocab_size(a); id++) {
        const char *x, *y;
        size_t lx, ly;
        if (tc_tokenizer_token_bytes(a, id, &x, &lx) || tc_tokenizer_token_bytes(b, id, &y, &ly)) return false;
        if (lx != ly || memcmp(x, y, lx) != 0) return false;
    }
    return true;
}

static bool files_equal(const char *p, const char *q) {
    size_t lp, lq;
    char *a = read_all(p, &lp), *b = read_all(q, &lq);
    bool same = a && b && lp == lq && memcmp(a, b, lp) == 0;
    free(a);
    free(b);
    return same;
}

static void test_shakespeare(tc_context *ctx) {
    size_t len;
    char *text = shakespeare(&len);
    if (!text) return;
    for (int split = 0; split < 2; split++) {
        tc_tokenizer *tok = NULL, *again = NULL;
        if (!CHECK_OK(ctx, tc_bpe_train(ctx, text, len, 1024, split, &tok))) continue;
        CHECK(tc_tokenizer_vocab_size(tok) == 1024);
        size_t count = 0;
        CHECK(round_trips(ctx, tok, text, len, &count));
        CHECK(count > len / 4 && count < len / 2); /* vocab 1024 compresses English 2-4x */
        /* Deterministic: a second training gives the same merges. */
        if (CHECK_OK(ctx, tc_bpe_train(ctx, text, len, 1024, split, &again))) CHECK(same_tokenizer(tok, again));
        tc_tokenizer_free(again);
        /* Saved and loaded, it is the same tokenizer and saves the same file. */
        const char *path = temp_path("shakespeare.tok"), *path2 = temp_path("shakespeare2.tok");
        tc_tokenizer *loaded = NULL;
        if (CHECK_OK(ctx, tc_tokenizer_save(tok, path)) && CHECK_OK(ctx, tc_tokenizer_load(ctx, path, &loaded))) {
            CHECK(same_tokenizer(tok, loaded));
            int32_t *a = NULL, *b = NULL;
            size_t ca = 0, cb = 0;
            CHECK_OK(ctx, tc_tokenizer_encode(tok, text, 100000, &a, &ca));
            CHECK_OK(ctx, tc_tokenizer_encode(loaded, text, 100000, &b, &cb));
            CHECK(a && b && ids_equal(a, ca, b, cb));
            tc_tokenizer_free_ids(a);
            tc_tokenizer_free_ids(b);
            CHECK(CHECK_OK(ctx, tc_tokenizer_save(loaded, path2)) && files_equal(path, path2));
            /* The in-memory form is the file's text. */
            char *serialized = NULL;
            size_t serialized_len = 0, file_len = 0;
            char *file = read_all(path, &file_len);
            tc_tokenizer *from_text = NULL;
            if (CHECK_OK(ctx, tc_tokenizer_serialize(tok, &serialized, &serialized_len))) {
                CHECK(file && file_len == serialized_len && memcmp(file, serialized, file_len) == 0);
                if (CHECK_OK(ctx, tc_tokenizer_deserialize(ctx, serialized, serialized_len, &from_text)))
                    CHECK(same_tokenizer(tok, from_text));
            }
            tc_tokenizer_free(from_text);
            tc_tokenizer_free_text(serialized);
            free(file);
        }
        tc_tokenizer_free(loaded);
        tc_tokenizer_free(tok);
        unlink(path);
        unlink(path2);
    }
    tc_tokenizer *chars = NULL;
    if (CHECK_OK(ctx, tc_char_tokenizer_new(ctx, text, len, &chars))) {
        CHECK(tc_tokenizer_vocab_size(chars) == 65);
        size_t count = 0;
        CHECK(round_trips(ctx, chars, text, len, &count));
        CHECK(count == len);
    }
    tc_tokenizer_free(chars);
    free(text);
}

static void test_save_load_odd_bytes(tc_context *ctx) {
    /* Quotes, backslashes, control bytes, NUL, invalid UTF-8 and real UTF-8
     * all survive the text format. */
    static const char text[] =
        "say \"hi\"\\ \"hi\"\\ \x01\x01 \x00\x00 \xff\xfe\xff\xfe \xc3\xa9t\xc3\xa9 \xe2\x82 \xe2\x82\n\n";
    size_t len = sizeof text - 1;
    tc_tokenizer *tok = NULL, *loaded = NULL;
    if (!CHECK_OK(ctx, tc_bpe_train(ctx, text, len, 400, false, &tok))) return;
    const char *path = temp_path("odd.tok");
    if (CHECK_OK(ctx, tc_tokenizer_save(tok, path)) && CHECK_OK(ctx, tc_tokenizer_load(ctx, path, &loaded))) {
        CHECK(same_tokenizer(tok, loaded));
        int32_t *ids = NULL;
        size_t count = 0;
        char *bytes = NULL;
        size_t blen = 0;
        CHECK_OK(ctx, tc_tokenizer_encode(loaded, text, len, &ids, &count));
        CHECK(CHECK_OK(ctx, tc_tokenizer_decode_bytes(loaded, ids, count, &bytes, &blen)) && blen == len &&
              memcmp(bytes, text, len) == 0);
        tc_tokenizer_free_text(bytes);
        tc_tokenizer_free_ids(ids);
    }
    tc_tokenizer_free(loaded);
    tc_tokenizer_free(tok);

    /* A character tokenizer saves and loads too. */
    const char *chars_text = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac \xf0\x9f\x98\x80";
    if (!CHECK_OK(ctx, tc_char_tokenizer_new(ctx, chars_text, strlen(chars_text), &tok))) return;
    loaded = NULL;
    if (CHECK_OK(ctx, tc_tokenizer_save(tok, path)) && CHECK_OK(ctx, tc_tokenizer_load(ctx, path, &loaded))) {
        CHECK(same_tokenizer(tok, loaded));
        CHECK(tc_tokenizer_get_kind(loaded) == TC_TOKENIZER_CHAR);
        CHECK(round_trips(ctx, loaded, chars_text, strlen(chars_text), NULL));
    }
    tc_tokenizer_free(loaded);
    tc_tokenizer_free(tok);
    unlink(path);
}

static void test_bad_tokenizer_files(tc_context *ctx) {
    tc_tokenizer *tok = NULL;
    const char *missing = temp_path("does-not-exist.tok");
    CHECK_FAILS(ctx, tc_tokenizer_load(ctx, missing, &tok), TC_ERROR_IO, "tokenizer.load", missing);
    CHECK(tok == NULL);

    const char *path = temp_path("bad.tok");
    struct {
        const char *content;
        const char *fragment;
    } cases[] = {
        {"hello\n", ":1: not a tokenizer file"},
        {"tricycle-tokenizer 1\nkind bpx\n", ":2: expected `kind bpe`"},
        {"tricycle-tokenizer 1\nkind char\nsplit none\ntokens 2\n0 \"a\"\n", ":5: the file ends after 1 of 2 tokens"},
        {"tricycle-tokenizer 1\nkind char\nsplit none\ntokens 2\n0 \"a\"\n1 \"b\n",
         ":6: token 1 lacks its closing quote"},
        {"tricycle-tokenizer 1\nkind char\nsplit none\ntokens 1\n0 \"\\q\"\n", ":5: bad escape"},
        {"tricycle-tokenizer 1\nkind char\nsplit none\ntokens 2\n0 \"a\"\n2 \"b\"\n", ":6: expected token 1"},
        {"tricycle-tokenizer 1\nkind char\nsplit none\ntokens 2\n0 \"a\"\n1 \"a\"\nmerges 0\nend\n",
         "tokens 0 and 1 are the same character"},
        {"tricycle-tokenizer 1\nkind char\nsplit none\ntokens 1\n0 \"ab\"\nmerges 0\nend\n",
         "token 0 is not a single character"},
        {"tricycle-tokenizer 1\nkind char\nsplit none\ntokens 1\n0 \"a\"\nmerges 0\n", ":6: expected `end`"},
        {"tricycle-tokenizer 1\nkind char\nsplit none\ntokens 1\n0 \"a\"\nmerges 0\nend\nmore\n",
         ":8: unexpected text after `end`"},
        {"tricycle-tokenizer 1\nkind bpe\nsplit none\ntokens 1\n0 \"a\"\nmerges 0\nend\n",
         "no token for the byte 0x00"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_all(path, cases[i].content, strlen(cases[i].content));
        tok = NULL;
        CHECK_FAILS(ctx, tc_tokenizer_load(ctx, path, &tok), TC_ERROR_FORMAT, path, cases[i].fragment);
        CHECK(tok == NULL);
    }

    /* The in-memory form reports lines the same way. */
    const char *text = "tricycle-tokenizer 1\nkind bpe\nsplit gpt2\ntokens x\n";
    CHECK_FAILS(ctx, tc_tokenizer_deserialize(ctx, text, strlen(text), &tok), TC_ERROR_FORMAT,
                "tokenizer.deserialize: <text>:4: expected `tokens N`");

    /* Damage a real file: truncate it, break a merge. */
    if (!CHECK_OK(ctx, tc_bpe_train(ctx, "aaabdaaabac", 11, 259, false, &tok))) return;
    CHECK_OK(ctx, tc_tokenizer_save(tok, path));
    tc_tokenizer_free(tok);
    size_t len;
    char *good = read_all(path, &len);
    if (!CHECK(good != NULL)) return;
    write_all(path, good, len / 2);
    tok = NULL;
    CHECK_FAILS(ctx, tc_tokenizer_load(ctx, path, &tok), TC_ERROR_FORMAT, path);
    char *merge = strstr(good, "\n256 257 258\n"); /* the line of merge 2 */
    if (CHECK(merge != NULL)) {
        memcpy(merge + 1, "256 098 258", 11);
        write_all(path, good, len);
        CHECK_FAILS(ctx, tc_tokenizer_load(ctx, path, &tok), TC_ERROR_FORMAT,
                    "merge 2: token 258 is not token 256 followed by token 98");
        memcpy(merge + 1, "256 257 999", 11);
        write_all(path, good, len);
        CHECK_FAILS(ctx, tc_tokenizer_load(ctx, path, &tok), TC_ERROR_FORMAT, "merge 2 names token 999");
    }
    free(good);
    unlink(path);

    /* Saving into a missing directory fails and names the path. */
    tc_tokenizer *small = NULL;
    if (CHECK_OK(ctx, tc_char_tokenizer_new(ctx, "ab", 2, &small))) {
        const char *nowhere = temp_path("no/such/dir/x.tok");
        CHECK_FAILS(ctx, tc_tokenizer_save(small, nowhere), TC_ERROR_IO, nowhere);
    }
    tc_tokenizer_free(small);
}

/* ---- GPT-2 files ------------------------------------------------------- */

/* GPT-2's id for a single byte in its vocab.json: the printable bytes first,
 * in byte order, then the rest. */
static bool gpt2_printable(int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); }

static int gpt2_byte_id(int byte) {
    int id = 0;
    for (int b = 0; b < 256; b++)
        if (gpt2_printable(b)) {
            if (b == byte) return id;
            id++;
        }
    for (int b = 0; b < 256; b++)
        if (!gpt2_printable(b)) {
            if (b == byte) return id;
            id++;
        }
    return -1;
}

/* Writes the JSON key for a byte in GPT-2's alphabet, as \uXXXX. */
static int gpt2_byte_key(int byte, char *out) {
    int cp = byte;
    if (!gpt2_printable(byte)) cp = 256 + gpt2_byte_id(byte) - 188; /* 188 printable bytes come first */
    if (byte == '"' || byte == '\\') return sprintf(out, "\"\\%c\"", byte);
    return sprintf(out, "\"\\u%04x\"", cp);
}

/* The 256 byte tokens plus extra entries (each `"key": id`), as vocab.json. */
static void write_vocab(const char *path, const char *extra) {
    char *json = malloc(16384);
    size_t n = 0;
    n += (size_t)sprintf(json + n, "{\n");
    for (int b = 0; b < 256; b++) {
        /* Some keys as escapes, some as raw text, as GPT-2's files mix both. */
        if (b >= 'a' && b <= 'z') {
            n += (size_t)sprintf(json + n, "  \"%c\": %d,\n", b, gpt2_byte_id(b));
        } else {
            n += (size_t)sprintf(json + n, "  ");
            n += (size_t)gpt2_byte_key(b, json + n);
            n += (size_t)sprintf(json + n, ": %d,\n", gpt2_byte_id(b));
        }
    }
    n += (size_t)sprintf(json + n, "%s\n}\n", extra);
    write_all(path, json, n);
    free(json);
}

static void test_gpt2(tc_context *ctx) {
    const char *vocab = temp_path("vocab.json"), *merges = temp_path("merges.txt");
    /* U+0120 (written Ġ in the files) is GPT-2's character for the space
     * byte. Merges in rank order: "Ġ t", "h e", "Ġt he", "Ġ a". */
    write_vocab(vocab, "  \"\\u0120t\": 256,\n  \"he\": 257,\n  \"\xc4\xa0the\": 258,\n  \"\\u0120a\": 259,\n"
                       "  \"<|endoftext|>\": 260");
    const char *merge_text = "#version: 0.2\n\xc4\xa0 t\nh e\n\xc4\xa0t he\n\xc4\xa0 a\n";
    write_all(merges, merge_text, strlen(merge_text));
    tc_tokenizer *tok = NULL;
    if (!CHECK_OK(ctx, tc_tokenizer_load_gpt2(ctx, vocab, merges, &tok))) return;
    CHECK(tc_tokenizer_vocab_size(tok) == 261);
    CHECK(tc_tokenizer_merge_count(tok) == 4);
    CHECK(tc_tokenizer_gpt2_split(tok));
    CHECK(token_is(tok, 258, " the") && token_is(tok, 260, "<|endoftext|>") && token_is(tok, gpt2_byte_id(' '), " "));
    /* The same texts from memory (the path-based loader reads the files and
     * calls this): the same tokenizer; errors name the names given. */
    size_t vocab_len, merges_len;
    char *vocab_text = read_all(vocab, &vocab_len), *merges_text = read_all(merges, &merges_len);
    tc_tokenizer *from_memory = NULL;
    if (vocab_text && merges_text &&
        CHECK_OK(ctx, tc_tokenizer_load_gpt2_memory(ctx, vocab_text, vocab_len, "v.json", merges_text, merges_len,
                                                    "m.txt", &from_memory)))
        CHECK(same_tokenizer(tok, from_memory));
    tc_tokenizer_free(from_memory);
    CHECK_FAILS(ctx,
                tc_tokenizer_load_gpt2_memory(ctx, vocab_text, vocab_len, "v.json", "x y\n", 4, "m.txt",
                                              &from_memory),
                TC_ERROR_FORMAT, "m.txt:1: the merged token \"xy\" is not in the vocabulary");
    CHECK(from_memory == NULL);
    CHECK_FAILS(ctx, tc_tokenizer_load_gpt2_memory(ctx, NULL, 0, "v.json", NULL, 0, "m.txt", &from_memory),
                TC_ERROR_FORMAT, "v.json:1:1: the file ends where '{'");
    CHECK(from_memory == NULL);
    free(vocab_text);
    free(merges_text);
    /* " the cat": pieces " the" and " cat". " the" = Ġ t h e: rank 0 (Ġ t)
     * first, then rank 1 (h e), then rank 2 (Ġt he) -> 258. " cat" has no
     * ranked pair but (Ġ a)? No: its pairs are (Ġ c) (c a) (a t) -> bytes. */
    size_t count;
    int32_t *ids = encode(ctx, tok, " the cat", &count);
    CHECK_IDS(ids, count, 258, gpt2_byte_id(' '), gpt2_byte_id('c'), gpt2_byte_id('a'), gpt2_byte_id('t'));
    tc_tokenizer_free_ids(ids);
    /* "the a": "the" (t h e: (h e) -> 257), " a" (Ġ a -> 259). */
    ids = encode(ctx, tok, "the a", &count);
    CHECK_IDS(ids, count, gpt2_byte_id('t'), 257, 259);
    if (ids) CHECK(decodes_to(ctx, tok, ids, count, "the a", 5));
    tc_tokenizer_free_ids(ids);
    /* The special token decodes but plain text never produces it. */
    const int32_t eot[] = {258, 260};
    CHECK(decodes_to(ctx, tok, eot, 2, " the<|endoftext|>", 17));
    ids = encode(ctx, tok, "<|endoftext|>", &count);
    CHECK(ids && count > 1);
    tc_tokenizer_free_ids(ids);
    /* Saved in the tricycle format, it loads back the same. */
    const char *path = temp_path("gpt2.tok");
    tc_tokenizer *loaded = NULL;
    if (CHECK_OK(ctx, tc_tokenizer_save(tok, path)) && CHECK_OK(ctx, tc_tokenizer_load(ctx, path, &loaded))) {
        CHECK(same_tokenizer(tok, loaded));
        ids = encode(ctx, loaded, " the cat", &count);
        CHECK(ids && count == 5 && ids[0] == 258);
        tc_tokenizer_free_ids(ids);
    }
    tc_tokenizer_free(loaded);
    tc_tokenizer_free(tok);
    unlink(path);

    /* Bad files: each fails with a message naming the file and place. */
    const char *missing = temp_path("missing.json");
    CHECK_FAILS(ctx, tc_tokenizer_load_gpt2(ctx, missing, merges, &tok), TC_ERROR_IO, missing);
    struct {
        const char *extra;  /* appended to the byte tokens */
        const char *merges; /* merges.txt */
        tc_status status;
        const char *fragment;
        bool in_merges; /* the message names merges.txt rather than vocab.json */
    } cases[] = {
        {"  \"\\u0120t\": 255", "#version: 0.2\n", TC_ERROR_FORMAT, ":258:3: id 255 is used twice (also at line",
         false},
        {"  \"\\u0120t\": 257", "#version: 0.2\n", TC_ERROR_FORMAT, "id 256 is missing", false},
        {"  \"\\u0120t\": 256, \"\\u0120t\": 257", "#version: 0.2\n", TC_ERROR_FORMAT,
         "token with id 257 repeats the token with id 256", false},
        {"  \"\\u0120t\": -1", "", TC_ERROR_FORMAT, "must not be negative", false},
        {"  \"\\u0120t\": 2.5", "", TC_ERROR_FORMAT, "not an integer", false},
        {"  \"\\ud83d\\ude00\": 256", "", TC_ERROR_FORMAT, "holds U+1F600, which is not in GPT-2's byte alphabet",
         false},
        {"  \"\\ud83d\": 256", "", TC_ERROR_FORMAT, ":258:4: \\uD83D is a high surrogate without a low surrogate",
         false},
        {"  \"\\ude00\": 256", "", TC_ERROR_FORMAT, "low surrogate", false},
        {"  \"\\u01\": 256", "", TC_ERROR_FORMAT, "four hex digits", false},
        {"  \"\\u0120t\" 256", "", TC_ERROR_FORMAT, ":258:13: expected ':'", false},
        {"  \"\\u0120t\": 256,\n  \"he\": 257", "#version: 0.2\n\xc4\xa0 t\nh e\nh  e\n", TC_ERROR_FORMAT,
         ":4: expected a merge `LEFT RIGHT`", true},
        {"  \"\\u0120t\": 256", "#version: 0.2\n\xc4\xa0 t\nx yz\n", TC_ERROR_FORMAT,
         ":3: token \"yz\" is not in the vocabulary", true},
        {"  \"\\u0120t\": 256", "#version: 0.2\n\xc4\xa0 t\nx y\n", TC_ERROR_FORMAT,
         ":3: the merged token \"xy\" is not in the vocabulary", true},
        {"  \"\\u0120t\": 256", "#version: 0.2\n\xc4\xa0 t\n\xc4\xa0 t\n", TC_ERROR_FORMAT,
         ":3: merge '\xc4\xa0 t' repeats line 2", true},
        {"  \"\\u0120t\": 256", "#version: 0.2\n\xe4\xb8\xad t\n", TC_ERROR_FORMAT, "holds U+4E2D", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_vocab(vocab, cases[i].extra);
        write_all(merges, cases[i].merges, strlen(cases[i].merges));
        tok = NULL;
        CHECK_FAILS(ctx, tc_tokenizer_load_gpt2(ctx, vocab, merges, &tok), cases[i].status,
                    cases[i].in_merges ? merges : vocab, cases[i].fragment);
        CHECK(tok == NULL);
    }
    /* Truncated vocab.json, at every length: always an error, never a crash. */
    write_vocab(vocab, "  \"\\u0120t\": 256");
    size_t len;
    char *json = read_all(vocab, &len);
    write_all(merges, "#version: 0.2\n\xc4\xa0 t\n", 15);
    bool all_fail = json != NULL;
    for (size_t cut = 0; json && cut + 2 < len; cut += 7) {
        write_all(vocab, json, cut);
        tok = NULL;
        tc_status status = tc_tokenizer_load_gpt2(ctx, vocab, merges, &tok);
        if (status != TC_ERROR_FORMAT || tok || !strstr(tc_last_error(ctx), vocab)) {
            all_fail = false;
            printf("     cut at %zu: status %d, %s\n", cut, (int)status, tc_last_error(ctx));
            break;
        }
        tc_tokenizer_free(tok);
    }
    CHECK(all_fail);
    free(json);
    /* A vocabulary without every byte cannot be a byte-level BPE. */
    write_all(vocab, "{\"a\": 0, \"b\": 1}", 16);
    write_all(merges, "#version: 0.2\n", 14);
    CHECK_FAILS(ctx, tc_tokenizer_load_gpt2(ctx, vocab, merges, &tok), TC_ERROR_FORMAT, vocab,
                "no token for the byte 0x00");
    unlink(vocab);
    unlink(merges);
}

/* ---- decoding -------------------------------------------------------------- */

static void test_decode(tc_context *ctx) {
    tc_tokenizer *tok = NULL;
    if (!CHECK_OK(ctx, tc_bpe_train(ctx, "abab", 4, 257, false, &tok))) return;
    /* Out-of-range ids are an error naming the position and value. */
    const int32_t bad[] = {97, 257};
    char *text = NULL;
    size_t len = 0;
    CHECK_FAILS(ctx, tc_tokenizer_decode(tok, bad, 2, &text, &len), TC_ERROR_ARGUMENT, "decode",
                "ids[1] = 257", "257 tokens");
    CHECK(text == NULL);
    const int32_t negative[] = {-1};
    CHECK_FAILS(ctx, tc_tokenizer_decode(tok, negative, 1, &text, &len), TC_ERROR_ARGUMENT, "ids[0] = -1");
    /* Nothing decodes to the empty string. */
    CHECK(decodes_to(ctx, tok, NULL, 0, "", 0));
    /* Cut UTF-8 becomes U+FFFD (EF BF BD), one per maximal invalid part. */
    const int32_t e_acute[] = {0xC3, 0xA9};
    CHECK(decodes_to(ctx, tok, e_acute, 2, "\xc3\xa9", 2));
    CHECK(decodes_to(ctx, tok, e_acute, 1, "\xef\xbf\xbd", 3));
    const int32_t cut_euro[] = {'x', 0xE2, 0x82, 'y'};
    CHECK(decodes_to(ctx, tok, cut_euro, 4, "x\xef\xbf\xbdy", 5));
    const int32_t cut_end[] = {0xF0, 0x9F, 0x98};
    CHECK(decodes_to(ctx, tok, cut_end, 3, "\xef\xbf\xbd", 3));
    const int32_t surrogate[] = {0xED, 0xA0, 0x80};
    CHECK(decodes_to(ctx, tok, surrogate, 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9));
    const int32_t stray[] = {0x80, 'a', 0xFF};
    CHECK(decodes_to(ctx, tok, stray, 3,
                     "\xef\xbf\xbd"
                     "a\xef\xbf\xbd",
                     7));
    const int32_t emoji[] = {0xF0, 0x9F, 0x98, 0x80, 256};
    CHECK(decodes_to(ctx, tok, emoji, 5,
                     "\xf0\x9f\x98\x80"
                     "ab",
                     6));
    /* The raw form keeps the bytes. */
    char *bytes = NULL;
    if (CHECK_OK(ctx, tc_tokenizer_decode_bytes(tok, cut_euro, 4, &bytes, &len)))
        CHECK(len == 4 && memcmp(bytes, "x\xe2\x82y", 4) == 0);
    tc_tokenizer_free_text(bytes);
    /* Empty text encodes to no ids (and a buffer that can be freed). */
    int32_t *ids = NULL;
    size_t count = 99;
    CHECK(CHECK_OK(ctx, tc_tokenizer_encode(tok, "", 0, &ids, &count)) && count == 0 && ids != NULL);
    tc_tokenizer_free_ids(ids);
    const char *out_of_range;
    size_t out_len;
    CHECK_FAILS(ctx, tc_tokenizer_token_bytes(tok, 300, &out_of_range, &out_len), TC_ERROR_ARGUMENT, "id 300");
    tc_tokenizer_free(tok);
}

/* ---- character tokenizer -------------------------------------------------- */

static void test_char(tc_context *ctx) {
    tc_tokenizer *tok = NULL;
    if (!CHECK_OK(ctx, tc_char_tokenizer_new(ctx, "hello", 5, &tok))) return;
    /* Sorted distinct characters: e=0 h=1 l=2 o=3. */
    CHECK(tc_tokenizer_vocab_size(tok) == 4);
    CHECK(tc_tokenizer_get_kind(tok) == TC_TOKENIZER_CHAR);
    CHECK(strcmp(tc_tokenizer_kind_name(tc_tokenizer_get_kind(tok)), "char") == 0);
    size_t count;
    int32_t *ids = encode(ctx, tok, "hello", &count);
    CHECK_IDS(ids, count, 1, 0, 2, 2, 3);
    tc_tokenizer_free_ids(ids);
    int32_t *none = NULL;
    CHECK_FAILS(ctx, tc_tokenizer_encode(tok, "hellz", 5, &none, &count), TC_ERROR_ARGUMENT, "'z'", "byte offset 4");
    CHECK(none == NULL);
    tc_tokenizer_free(tok);

    /* Multi-byte characters are single tokens, ordered by code point:
     * ' ' d h l o r w U+00E9 U+00F6 U+20AC. */
    const char *text = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac";
    if (!CHECK_OK(ctx, tc_char_tokenizer_new(ctx, text, strlen(text), &tok))) return;
    CHECK(tc_tokenizer_vocab_size(tok) == 10);
    CHECK(token_is(tok, 0, " ") && token_is(tok, 7, "\xc3\xa9") && token_is(tok, 9, "\xe2\x82\xac"));
    ids = encode(ctx, tok, "\xe2\x82\xac \xc3\xb6", &count);
    CHECK_IDS(ids, count, 9, 0, 8);
    tc_tokenizer_free_ids(ids);
    CHECK(round_trips(ctx, tok, text, strlen(text), NULL));
    CHECK_FAILS(ctx, tc_tokenizer_encode(tok, "h\xc3\xbc", 3, &none, &count), TC_ERROR_ARGUMENT, "U+00FC",
                "byte offset 1");
    tc_tokenizer_free(tok);
    CHECK_FAILS(ctx, tc_char_tokenizer_new(ctx, "", 0, &tok), TC_ERROR_ARGUMENT, "CharTokenizer.new", "empty");
}

static void test_arguments(tc_context *ctx) {
    tc_tokenizer *tok = NULL;
    CHECK_FAILS(ctx, tc_bpe_train(ctx, "abc", 3, 100, false, &tok), TC_ERROR_ARGUMENT, "BPETokenizer.train",
                "vocab_size is 100");
    CHECK(tok == NULL);
    CHECK_FAILS(ctx, tc_bpe_train(ctx, NULL, 3, 300, false, &tok), TC_ERROR_ARGUMENT, "text is NULL");
    /* Training on nothing leaves the byte vocabulary. */
    if (CHECK_OK(ctx, tc_bpe_train(ctx, "", 0, 300, true, &tok))) CHECK(tc_tokenizer_vocab_size(tok) == 256);
    tc_tokenizer_free(tok);
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(temp_dir, sizeof temp_dir, "%s/tricycle-tokenizer-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(temp_dir)) {
        printf("cannot make a temporary directory\n");
        return 2;
    }
    tc_context *ctx = tc_context_new();
    if (!ctx) return 2;
    test_golden_basic(ctx);
    test_golden_overlap(ctx);
    test_golden_split(ctx);
    test_split_pieces(ctx);
    test_decode(ctx);
    test_char(ctx);
    test_arguments(ctx);
    test_save_load_odd_bytes(ctx);
    test_bad_tokenizer_files(ctx);
    test_gpt2(ctx);
    test_shakespeare(ctx);
    tc_context_free(ctx);
    rmdir(temp_dir);
    if (skipped)
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    else
        printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
