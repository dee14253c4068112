/*
 * tokenizer.c (fuzz target): the tokenizer text format (src/tokenizer_files.c,
 * tc_tokenizer_deserialize), then the loaded tokenizer at work.
 *
 * A failure must carry a status and a message naming the call and the text
 * (`<text>:LINE`, or `'<text>'` for what is checked once the whole is read).
 * A tokenizer that loads must serialize to text that loads again and
 * serializes to the same text. It then encodes a fixed short text
 * and the input itself: a BPE encodes anything, a character tokenizer may
 * refuse a character it lacks (with a message); what encodes must decode
 * (tc_tokenizer_decode_bytes) to exactly the bytes encoded, and
 * tc_tokenizer_decode must give valid UTF-8. Ids read from the input,
 * in range or not, are decoded too; token_bytes is asked for every id and
 * the two just outside.
 */
#include "fuzz.h"
#include "internal.h"
#include "json.h"

#define MEMORY_BUDGET ((size_t)64 << 20)
static const char fixed_text[] = "Hello, world! It's 12 o'clock\n\tcaf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xff.";

/* Line by line checks name `<text>:LINE`; the checks of the whole tokenizer
 * once read (a character token that is two characters, say) name `'<text>'`. */
static void expect_load_failure(tc_context *ctx, tc_status status) {
    FUZZ_REQUIRE(strstr(tc_last_error(ctx), "tokenizer.deserialize: <text>:") ||
                     strstr(tc_last_error(ctx), "tokenizer.deserialize: '<text>': "),
                 "the message does not name the call and the text: %s", tc_last_error(ctx));
    fuzz_expect_reported(ctx, status, "tc_tokenizer_deserialize");
}

/* Encodes text; what encodes must decode to the same bytes. */
static void encode_decode(tc_context *ctx, const tc_tokenizer *tok, const char *text, size_t len) {
    int32_t *ids;
    size_t count;
    tc_status status = tc_tokenizer_encode(tok, text, len, &ids, &count);
    if (status != TC_OK) {
        FUZZ_REQUIRE(tc_tokenizer_get_kind(tok) == TC_TOKENIZER_CHAR, "a BPE failed to encode: %s",
                     tc_last_error(ctx));
        fuzz_expect_reported(ctx, status, "tc_tokenizer_encode");
        return;
    }
    FUZZ_REQUIRE(ids, "no ids array");
    FUZZ_REQUIRE(count <= len, "%zu ids for %zu bytes", count, len);
    int vocab = tc_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < count; i++) FUZZ_REQUIRE(ids[i] >= 0 && ids[i] < vocab, "id %d of %d", ids[i], vocab);
    char *bytes;
    size_t bytes_len;
    status = tc_tokenizer_decode_bytes(tok, ids, count, &bytes, &bytes_len);
    FUZZ_REQUIRE(status == TC_OK, "decoding encoded ids failed: %s", tc_last_error(ctx));
    FUZZ_REQUIRE(bytes_len == len && memcmp(bytes, text, len) == 0, "decode(encode(x)) != x (%zu bytes, %zu back)",
                 len, bytes_len);
    tc_tokenizer_free_text(bytes);
    char *decoded;
    size_t decoded_len;
    status = tc_tokenizer_decode(tok, ids, count, &decoded, &decoded_len);
    FUZZ_REQUIRE(status == TC_OK, "decoding encoded ids failed: %s", tc_last_error(ctx));
    FUZZ_REQUIRE(decoded[decoded_len] == '\0' && tc_json_valid_utf8(decoded, decoded_len), "decode gave bad UTF-8");
    if (tc_json_valid_utf8(text, len))
        FUZZ_REQUIRE(decoded_len == len && memcmp(decoded, text, len) == 0, "decode changed valid UTF-8");
    tc_tokenizer_free_text(decoded);
    tc_tokenizer_free_ids(ids);
}

/* Ids straight from the input: in range they decode, out of range they fail. */
static void decode_raw_ids(tc_context *ctx, const tc_tokenizer *tok, const uint8_t *data, size_t size) {
    size_t count = size / 4 > 64 ? 64 : size / 4;
    int32_t ids[64];
    bool valid = true;
    for (size_t i = 0; i < count; i++) {
        memcpy(&ids[i], data + 4 * i, 4);
        if (ids[i] < 0 || ids[i] >= tc_tokenizer_vocab_size(tok)) valid = false;
    }
    char *text;
    size_t len;
    tc_status status = tc_tokenizer_decode(tok, ids, count, &text, &len);
    FUZZ_REQUIRE((status == TC_OK) == valid, "decoding ids %s", valid ? "in range failed" : "out of range passed");
    if (status == TC_OK) {
        FUZZ_REQUIRE(tc_json_valid_utf8(text, len), "decode gave bad UTF-8");
        tc_tokenizer_free_text(text);
    } else {
        fuzz_expect_reported(ctx, status, "tc_tokenizer_decode");
    }
}

static void check_tokens(tc_context *ctx, const tc_tokenizer *tok) {
    int vocab = tc_tokenizer_vocab_size(tok);
    FUZZ_REQUIRE(vocab > 0, "vocab %d", vocab);
    for (int32_t id = -1; id <= vocab; id++) {
        const char *bytes;
        size_t len;
        tc_status status = tc_tokenizer_token_bytes(tok, id, &bytes, &len);
        if (id < 0 || id == vocab) {
            FUZZ_REQUIRE(status != TC_OK, "token_bytes(%d) of %d tokens passed", id, vocab);
            fuzz_expect_reported(ctx, status, "tc_tokenizer_token_bytes");
        } else {
            FUZZ_REQUIRE(status == TC_OK && len > 0, "token %d: %s", id, tc_last_error(ctx));
            volatile char first = bytes[0], last = bytes[len - 1];
            (void)first;
            (void)last;
        }
    }
}

/* Serialize, load again, serialize: the same text. */
static void check_round_trip(tc_context *ctx, const tc_tokenizer *tok) {
    char *text;
    size_t len;
    FUZZ_REQUIRE(tc_tokenizer_serialize(tok, &text, &len) == TC_OK, "serialize: %s", tc_last_error(ctx));
    tc_tokenizer *again;
    FUZZ_REQUIRE(tc_tokenizer_deserialize(ctx, text, len, &again) == TC_OK, "the serialized form does not load: %s",
                 tc_last_error(ctx));
    char *text2;
    size_t len2;
    FUZZ_REQUIRE(tc_tokenizer_serialize(again, &text2, &len2) == TC_OK, "serialize: %s", tc_last_error(ctx));
    FUZZ_REQUIRE(len == len2 && memcmp(text, text2, len) == 0, "serializing a reloaded tokenizer differs");
    tc_tokenizer_free_text(text2);
    tc_tokenizer_free(again);
    tc_tokenizer_free_text(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tc_context *ctx = fuzz_context(MEMORY_BUDGET);
    tc_tokenizer *tok;
    tc_status status = tc_tokenizer_deserialize(ctx, (const char *)data, size, &tok);
    if (status != TC_OK) {
        FUZZ_REQUIRE(tok == NULL, "a failed load left a tokenizer");
        expect_load_failure(ctx, status);
        tc_context_free(ctx);
        return 0;
    }
    check_tokens(ctx, tok);
    check_round_trip(ctx, tok);
    encode_decode(ctx, tok, fixed_text, sizeof fixed_text - 1);
    encode_decode(ctx, tok, (const char *)data, size);
    decode_raw_ids(ctx, tok, data, size);
    tc_tokenizer_free(tok);
    tc_context_free(ctx);
    return 0;
}
