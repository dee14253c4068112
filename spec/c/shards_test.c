/*
 * shards_test.c: tests of token shards and batch encoding (their sections of
 * src/tricycle.h): the header's bytes, reading shards written byte by byte,
 * every malformed shard refused with its path, batch encoding equal to
 * encoding each document alone, and the errors that name file and line.
 *
 * Prints one line per failed check and a closing `N passed, M failed` line;
 * exits non-zero when a check fails.
 */
#include "tricycle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_calls.h"

static char temp_dir[256];

static void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8), p[2] = (unsigned char)(v >> 16),
    p[3] = (unsigned char)(v >> 24);
}

/* Writes llm.c's layout by hand: 256 int32 (magic, version, count, zeros), then the ids. */
static void write_shard(const char *path, uint32_t magic, uint32_t version, uint32_t count, const uint32_t *ids,
                        size_t n, int id_bytes) {
    unsigned char header[1024] = {0};
    put32(header, magic);
    put32(header + 4, version);
    put32(header + 8, count);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(header, 1, sizeof header, f);
    for (size_t i = 0; i < n; i++) {
        unsigned char b[4];
        put32(b, ids[i]);
        fwrite(b, 1, (size_t)id_bytes, f);
    }
    fclose(f);
}

static void temp_path(char *out, size_t size, const char *name) { snprintf(out, size, "%s/%s", temp_dir, name); }

static void test_header(tc_context *ctx) {
    unsigned char h[1024];
    memset(h, 0xAB, sizeof h);
    CHECK_OK(ctx, tc_token_shard_header(ctx, 70000, 2, h));
    CHECK(h[0] == 0x88 && h[1] == 0xD8 && h[2] == 0x34 && h[3] == 0x01); /* 20240520 little-endian */
    CHECK(h[4] == 1 && h[5] == 0 && h[6] == 0 && h[7] == 0);
    CHECK(h[8] == 0x70 && h[9] == 0x11 && h[10] == 0x01 && h[11] == 0); /* 70000 */
    bool zeros = true;
    for (int i = 12; i < 1024; i++) zeros = zeros && h[i] == 0;
    CHECK(zeros);
    CHECK_OK(ctx, tc_token_shard_header(ctx, 5, 4, h));
    CHECK(h[0] == 0xA1 && h[1] == 0xD9 && h[2] == 0x34 && h[3] == 0x01); /* 20240801 */
    CHECK(h[4] == 7);
    CHECK_FAILS(ctx, tc_token_shard_header(ctx, -1, 2, h), TC_ERROR_ARGUMENT, "token_shard_header", "-1");
    CHECK_FAILS(ctx, tc_token_shard_header(ctx, (int64_t)1 << 31, 2, h), TC_ERROR_ARGUMENT, "2147483648");
    CHECK_FAILS(ctx, tc_token_shard_header(ctx, 1, 3, h), TC_ERROR_ARGUMENT, "id_bytes", "3");
}

static void test_read(tc_context *ctx) {
    char path[512];
    temp_path(path, sizeof path, "a.bin");
    uint32_t ids[10] = {50256, 1, 2, 3, 65535, 5, 6, 7, 8, 9};
    write_shard(path, 20240520, 1, 10, ids, 10, 2);
    tc_token_shard *shard = NULL;
    if (!CHECK_OK(ctx, tc_token_shard_open(ctx, path, &shard))) return;
    CHECK(tc_token_shard_count(shard) == 10);
    CHECK(tc_token_shard_id_bytes(shard) == 2);
    CHECK(strcmp(tc_token_shard_path(shard), path) == 0);
    tc_tensor *x = NULL, *y = NULL;
    if (CHECK_OK(ctx, tc_token_shard_batch(shard, 1, 2, 4, &x, &y))) {
        const int64_t *xs = tc_tensor_data(x), *ys = tc_tensor_data(y);
        CHECK(tc_tensor_dtype(x) == TC_INT64 && tc_tensor_ndim(x) == 2 && tc_tensor_shape(x)[0] == 2 &&
              tc_tensor_shape(x)[1] == 4);
        bool same = true;
        for (int i = 0; i < 8; i++) same = same && xs[i] == (int64_t)ids[1 + i] && ys[i] == (int64_t)ids[2 + i];
        CHECK(same);
        tc_tensor_release(x);
        tc_tensor_release(y);
    }
    /* the last batch that fits uses every id; one more token does not fit */
    if (CHECK_OK(ctx, tc_token_shard_batch(shard, 0, 3, 3, &x, &y))) {
        CHECK(((const int64_t *)tc_tensor_data(y))[8] == 9);
        tc_tensor_release(x);
        tc_tensor_release(y);
    }
    CHECK_FAILS(ctx, tc_token_shard_batch(shard, 1, 3, 3, &x, &y), TC_ERROR_ARGUMENT, "token_shard_batch", path,
                "10 tokens");
    CHECK_FAILS(ctx, tc_token_shard_batch(shard, -1, 1, 1, &x, &y), TC_ERROR_ARGUMENT, "-1");
    CHECK_FAILS(ctx, tc_token_shard_batch(shard, 0, INT64_MAX, 2, &x, &y), TC_ERROR_ARGUMENT, "overflow");
    CHECK_FAILS(ctx, tc_token_shard_batch(shard, 0, 0, 2, &x, &y), TC_ERROR_ARGUMENT, "positive");
    tc_tensor *t = NULL;
    if (CHECK_OK(ctx, tc_token_shard_read(shard, 4, 2, &t))) {
        CHECK(((const int64_t *)tc_tensor_data(t))[0] == 65535);
        tc_tensor_release(t);
    }
    CHECK_FAILS(ctx, tc_token_shard_read(shard, INT64_MAX, 2, &t), TC_ERROR_ARGUMENT, "token_shard_read");
    CHECK_OK(ctx, tc_token_shard_check_ids(shard, 65536));
    CHECK_FAILS(ctx, tc_token_shard_check_ids(shard, 50257), TC_ERROR_FORMAT, path, "token 4", "id 65535", "50257");
    CHECK_FAILS(ctx, tc_token_shard_check_ids(shard, 0), TC_ERROR_ARGUMENT, "vocab_size");
    tc_token_shard_close(shard);

    /* the uint32 variant */
    uint32_t wide[3] = {100000, 7, 4000000000u};
    write_shard(path, 20240801, 7, 3, wide, 3, 4);
    if (CHECK_OK(ctx, tc_token_shard_open(ctx, path, &shard))) {
        CHECK(tc_token_shard_id_bytes(shard) == 4);
        if (CHECK_OK(ctx, tc_token_shard_read(shard, 0, 3, &t))) {
            const int64_t *v = tc_tensor_data(t);
            CHECK(v[0] == 100000 && v[1] == 7 && v[2] == 4000000000);
            tc_tensor_release(t);
        }
        CHECK_FAILS(ctx, tc_token_shard_check_ids(shard, 100000), TC_ERROR_FORMAT, "token 0", "id 100000");
        tc_token_shard_close(shard);
    }
    /* an empty shard is a valid file */
    write_shard(path, 20240520, 1, 0, NULL, 0, 2);
    if (CHECK_OK(ctx, tc_token_shard_open(ctx, path, &shard))) {
        CHECK(tc_token_shard_count(shard) == 0);
        CHECK_OK(ctx, tc_token_shard_check_ids(shard, 1));
        tc_token_shard_close(shard);
    }
    unlink(path);
}

static void test_bad_shards(tc_context *ctx) {
    char path[512];
    temp_path(path, sizeof path, "bad.bin");
    uint32_t ids[4] = {1, 2, 3, 4};
    tc_token_shard *shard = NULL;
    write_shard(path, 20240521, 1, 4, ids, 4, 2);
    CHECK_FAILS(ctx, tc_token_shard_open(ctx, path, &shard), TC_ERROR_FORMAT, path, "not a token shard",
                "magic 20240521");
    write_shard(path, 20240520, 2, 4, ids, 4, 2);
    CHECK_FAILS(ctx, tc_token_shard_open(ctx, path, &shard), TC_ERROR_FORMAT, path, "unknown version 2");
    write_shard(path, 20240801, 1, 4, ids, 4, 4);
    CHECK_FAILS(ctx, tc_token_shard_open(ctx, path, &shard), TC_ERROR_FORMAT, path, "unknown version 1");
    write_shard(path, 20240520, 1, 5, ids, 4, 2);
    CHECK_FAILS(ctx, tc_token_shard_open(ctx, path, &shard), TC_ERROR_FORMAT, path, "says 5 tokens", "8 bytes");
    write_shard(path, 20240520, 1, 3, ids, 4, 2);
    CHECK_FAILS(ctx, tc_token_shard_open(ctx, path, &shard), TC_ERROR_FORMAT, path, "says 3 tokens");
    write_shard(path, 20240520, 1, 0xFFFFFFFFu, ids, 4, 2);
    CHECK_FAILS(ctx, tc_token_shard_open(ctx, path, &shard), TC_ERROR_FORMAT, path, "-1 tokens");
    /* a uint16 shard read as the uint32 layout would have half the size: refused */
    write_shard(path, 20240801, 7, 4, ids, 4, 2);
    CHECK_FAILS(ctx, tc_token_shard_open(ctx, path, &shard), TC_ERROR_FORMAT, path, "uint32");
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite("short", 1, 5, f);
        fclose(f);
    }
    CHECK_FAILS(ctx, tc_token_shard_open(ctx, path, &shard), TC_ERROR_FORMAT, path, "5 bytes", "1024-byte header");
    unlink(path);
    CHECK_FAILS(ctx, tc_token_shard_open(ctx, path, &shard), TC_ERROR_IO, path, "No such file");
    CHECK_FAILS(ctx, tc_token_shard_open(ctx, temp_dir, &shard), TC_ERROR_IO, temp_dir, "not a regular file");
    CHECK_FAILS(ctx, tc_token_shard_open(ctx, "", &shard), TC_ERROR_ARGUMENT, "path is empty");
    CHECK(shard == NULL);
}

/* Little-endian uint16 i of a packed buffer. */
static int id16(const unsigned char *p, size_t i) { return p[2 * i] | p[2 * i + 1] << 8; }

static void test_encode(tc_context *ctx) {
    const char *corpus = "The quick brown fox jumps over the lazy dog.\n\nA second document, with words.\n\n"
                         "Third: the fox again.\n\nLast one, no separator at its end";
    tc_tokenizer *tok = NULL;
    if (!CHECK_OK(ctx, tc_bpe_train(ctx, corpus, strlen(corpus), 300, true, &tok))) return;
    int32_t eot = tc_tokenizer_vocab_size(tok);
    /* reference: each document alone after the end-of-text id */
    int32_t reference[1024];
    size_t reference_count = 0;
    const char *start = corpus;
    int documents = 0;
    while (*start) {
        const char *sep = strstr(start, "\n\n");
        size_t length = sep ? (size_t)(sep + 2 - start) : strlen(start);
        int32_t *ids;
        size_t count;
        if (!CHECK_OK(ctx, tc_tokenizer_encode(tok, start, length, &ids, &count))) break;
        reference[reference_count++] = eot;
        for (size_t i = 0; i < count && reference_count < 1024; i++) reference[reference_count++] = ids[i];
        tc_tokenizer_free_ids(ids);
        documents++;
        start += length;
    }
    for (int threads = 1; threads <= 3; threads++) {
        tc_batch_encoder_options options = {threads, eot, 2, "\n\n", 2};
        tc_batch_encoder *enc = NULL;
        if (!CHECK_OK(ctx, tc_batch_encoder_new(tok, &options, &enc))) continue;
        CHECK(tc_batch_encoder_threads(enc) == threads && tc_batch_encoder_id_bytes(enc) == 2);
        /* the corpus in blocks that end after a separator */
        const char *cut1 = strstr(corpus, "\n\n") + 2;
        const char *cut2 = strstr(cut1, "\n\n") + 2;
        tc_text_block blocks[3] = {
            {corpus, (size_t)(cut1 - corpus), TC_BLOCK_TEXT, false, "corpus.txt", 1, 0},
            {cut1, (size_t)(cut2 - cut1), TC_BLOCK_TEXT, false, "corpus.txt", 3, cut1 - corpus},
            {cut2, strlen(cut2), TC_BLOCK_TEXT, false, "corpus.txt", 5, cut2 - corpus},
        };
        unsigned char *packed = NULL;
        size_t count = 0;
        int64_t per_block[3] = {0, 0, 0};
        if (CHECK_OK(ctx, tc_batch_encode(enc, blocks, 3, &packed, &count, per_block))) {
            CHECK(count == reference_count);
            bool same = count == reference_count;
            for (size_t i = 0; same && i < count; i++) same = id16(packed, i) == reference[i];
            CHECK(same);
            CHECK(per_block[0] == 1 && per_block[1] == 1 && per_block[2] == 2);
            tc_batch_encode_free(packed);
        }
        tc_batch_encoder_free(enc);
    }

    /* a long document cut after a newline between two non-spaces, the second part continuing it */
    const char *text = "alpha beta\ngamma delta";
    tc_batch_encoder_options whole_options = {2, eot, 4, NULL, 0};
    tc_batch_encoder *enc = NULL;
    if (CHECK_OK(ctx, tc_batch_encoder_new(tok, &whole_options, &enc))) {
        tc_text_block one = {text, strlen(text), TC_BLOCK_TEXT, false, "t", 1, 0};
        tc_text_block two[2] = {{text, 11, TC_BLOCK_TEXT, false, "t", 1, 0},
                                {text + 11, strlen(text) - 11, TC_BLOCK_TEXT, true, "t", 2, 11}};
        unsigned char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        int64_t docs[2];
        if (CHECK_OK(ctx, tc_batch_encode(enc, &one, 1, &a, &na, NULL)) &&
            CHECK_OK(ctx, tc_batch_encode(enc, two, 2, &b, &nb, docs))) {
            CHECK(na == nb && memcmp(a, b, na * 4) == 0);
            CHECK(docs[0] == 1 && docs[1] == 0);
            CHECK((uint32_t)(a[0] | a[1] << 8) == (uint32_t)eot); /* 4-byte ids, little-endian */
        }
        tc_batch_encode_free(a);
        tc_batch_encode_free(b);

        /* JSON Lines: a document per record, blank lines skipped, \r\n accepted */
        const char *jsonl = "{\"text\": \"The fox.\", \"id\": 1}\r\n\n  \n{\"meta\": 2, \"text\": \"A dog.\"}\n";
        tc_text_block lines = {jsonl, strlen(jsonl), TC_BLOCK_JSONL, false, "docs.jsonl", 1, 0};
        if (CHECK_OK(ctx, tc_batch_encode(enc, &lines, 1, &a, &na, docs))) {
            CHECK(docs[0] == 2);
            int32_t *ids;
            size_t n1, n2;
            tc_tokenizer_encode(tok, "The fox.", 8, &ids, &n1);
            tc_tokenizer_free_ids(ids);
            tc_tokenizer_encode(tok, "A dog.", 6, &ids, &n2);
            tc_tokenizer_free_ids(ids);
            CHECK(na == n1 + n2 + 2);
            tc_batch_encode_free(a);
        }

        /* errors name the file, the line and the byte offset; the first failing block in order wins */
        const char *bad_utf8 = "fine line\nbad \xC3\x28 byte\n";
        tc_text_block bad[2] = {{"ok", 2, TC_BLOCK_TEXT, false, "first.txt", 1, 0},
                                {bad_utf8, strlen(bad_utf8), TC_BLOCK_TEXT, false, "second.txt", 7, 100}};
        CHECK_FAILS(ctx, tc_batch_encode(enc, bad, 2, &a, &na, NULL), TC_ERROR_FORMAT, "second.txt", "line 8",
                    "invalid UTF-8", "0xC3", "byte offset 114");
        const char *surrogate = "\xED\xA0\x80";
        tc_text_block s = {surrogate, 3, TC_BLOCK_TEXT, false, "s.txt", 1, 0};
        CHECK_FAILS(ctx, tc_batch_encode(enc, &s, 1, &a, &na, NULL), TC_ERROR_FORMAT, "s.txt", "0xED");
        const char *overlong = "\xC0\xAF";
        tc_text_block o = {overlong, 2, TC_BLOCK_TEXT, false, "o.txt", 1, 0};
        CHECK_FAILS(ctx, tc_batch_encode(enc, &o, 1, &a, &na, NULL), TC_ERROR_FORMAT, "o.txt", "0xC0");
        const char *cut = "ab\xE2\x82";
        tc_text_block c = {cut, 4, TC_BLOCK_TEXT, false, "c.txt", 1, 0};
        CHECK_FAILS(ctx, tc_batch_encode(enc, &c, 1, &a, &na, NULL), TC_ERROR_FORMAT, "c.txt", "byte offset 2");
        const char *no_text = "{\"text\": \"a\"}\n{\"body\": \"b\"}\n";
        tc_text_block n = {no_text, strlen(no_text), TC_BLOCK_JSONL, false, "n.jsonl", 1, 0};
        CHECK_FAILS(ctx, tc_batch_encode(enc, &n, 1, &a, &na, NULL), TC_ERROR_FORMAT, "n.jsonl", "line 2",
                    "no \"text\"");
        const char *number = "{\"text\": 5}";
        tc_text_block m = {number, strlen(number), TC_BLOCK_JSONL, false, "m.jsonl", 4, 0};
        CHECK_FAILS(ctx, tc_batch_encode(enc, &m, 1, &a, &na, NULL), TC_ERROR_FORMAT, "m.jsonl", "line 4",
                    "not a string");
        const char *broken = "{\"text\": \"a\"";
        tc_text_block j = {broken, strlen(broken), TC_BLOCK_JSONL, false, "j.jsonl", 1, 0};
        CHECK_FAILS(ctx, tc_batch_encode(enc, &j, 1, &a, &na, NULL), TC_ERROR_FORMAT, "j.jsonl", "not valid JSON");
        const char *array = "[1, 2]";
        tc_text_block r = {array, strlen(array), TC_BLOCK_JSONL, false, "r.jsonl", 1, 0};
        CHECK_FAILS(ctx, tc_batch_encode(enc, &r, 1, &a, &na, NULL), TC_ERROR_FORMAT, "r.jsonl", "array");
        /* nothing to encode is fine */
        if (CHECK_OK(ctx, tc_batch_encode(enc, NULL, 0, &a, &na, NULL))) {
            CHECK(na == 0 && a != NULL);
            tc_batch_encode_free(a);
        }
        tc_batch_encoder_free(enc);
    }

    tc_batch_encoder_options bad_options = {0, eot, 2, NULL, 0};
    CHECK_FAILS(ctx, tc_batch_encoder_new(tok, &bad_options, &enc), TC_ERROR_ARGUMENT, "threads", "0");
    bad_options = (tc_batch_encoder_options){1, eot, 3, NULL, 0};
    CHECK_FAILS(ctx, tc_batch_encoder_new(tok, &bad_options, &enc), TC_ERROR_ARGUMENT, "id_bytes", "3");
    bad_options = (tc_batch_encoder_options){1, 65536, 2, NULL, 0};
    CHECK_FAILS(ctx, tc_batch_encoder_new(tok, &bad_options, &enc), TC_ERROR_ARGUMENT, "eot 65536");
    bad_options = (tc_batch_encoder_options){1, -2, 2, NULL, 0};
    CHECK_FAILS(ctx, tc_batch_encoder_new(tok, &bad_options, &enc), TC_ERROR_ARGUMENT, "eot -2");
    bad_options = (tc_batch_encoder_options){1, eot, 2, NULL, 3};
    CHECK_FAILS(ctx, tc_batch_encoder_new(tok, &bad_options, &enc), TC_ERROR_ARGUMENT, "separator");
    tc_tokenizer_free(tok);
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(temp_dir, sizeof temp_dir, "%s/tricycle-shards-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(temp_dir)) {
        printf("cannot make a temporary directory\n");
        return 2;
    }
    tc_context *ctx = tc_context_new();
    if (!ctx) return 2;
    test_header(ctx);
    test_read(ctx);
    test_bad_shards(ctx);
    test_encode(ctx);
    tc_context_free(ctx);
    rmdir(temp_dir);
    printf("shards_test: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
