/*
 * gpt2.c (fuzz target): GPT-2's vocab.json and merges.txt (src/tokenizer_gpt2.c,
 * tc_tokenizer_load_gpt2_memory, which tc_tokenizer_load_gpt2 calls after
 * reading the two files).
 *
 * The input is vocab.json, a NUL byte, then merges.txt (no NUL: an empty
 * merges.txt). Each part is copied to a buffer of its own exact size, so a
 * read past the end of either is caught. A failure must carry a status and
 * a message naming the loader and the file. A tokenizer that loads encodes
 * a fixed short text and both parts of the input; decode_bytes must give
 * the bytes back exactly, and the same tokenizer written in the project's
 * own format and read back must encode them to the same ids.
 */
#include "fuzz.h"
#include "internal.h"

#define MEMORY_BUDGET ((size_t)64 << 20)
#define VOCAB_NAME "vocab.json"
#define MERGES_NAME "merges.txt"
static const char fixed_text[] = "Hello, world! It's 12 o'clock\n\tcaf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xff.";

/* Encodes text with tok and with its reloaded copy: the same ids, and the
 * ids decode to text. */
static void encode_both(tc_context *ctx, const tc_tokenizer *tok, const tc_tokenizer *copy, const char *text,
                        size_t len) {
    int32_t *ids, *copy_ids;
    size_t count, copy_count;
    FUZZ_REQUIRE(tc_tokenizer_encode(tok, text, len, &ids, &count) == TC_OK, "a GPT-2 BPE failed to encode: %s",
                 tc_last_error(ctx));
    FUZZ_REQUIRE(tc_tokenizer_encode(copy, text, len, &copy_ids, &copy_count) == TC_OK, "encode: %s",
                 tc_last_error(ctx));
    FUZZ_REQUIRE(count == copy_count && memcmp(ids, copy_ids, count * sizeof *ids) == 0,
                 "the reloaded tokenizer encodes differently (%zu and %zu ids)", count, copy_count);
    char *bytes;
    size_t bytes_len;
    FUZZ_REQUIRE(tc_tokenizer_decode_bytes(tok, ids, count, &bytes, &bytes_len) == TC_OK, "decode_bytes: %s",
                 tc_last_error(ctx));
    FUZZ_REQUIRE(bytes_len == len && memcmp(bytes, text, len) == 0, "decode(encode(x)) != x");
    tc_tokenizer_free_text(bytes);
    tc_tokenizer_free_ids(copy_ids);
    tc_tokenizer_free_ids(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *separator = memchr(data, 0, size);
    size_t vocab_len = separator ? (size_t)(separator - data) : size;
    size_t merges_len = separator ? size - vocab_len - 1 : 0;
    char *vocab = fuzz_copy(data, vocab_len);
    char *merges = fuzz_copy(separator ? separator + 1 : data, merges_len);
    tc_context *ctx = fuzz_context(MEMORY_BUDGET);
    tc_tokenizer *tok;
    tc_status status =
        tc_tokenizer_load_gpt2_memory(ctx, vocab, vocab_len, VOCAB_NAME, merges, merges_len, MERGES_NAME, &tok);
    if (status != TC_OK) {
        const char *message = tc_last_error(ctx);
        FUZZ_REQUIRE(tok == NULL, "a failed load left a tokenizer");
        FUZZ_REQUIRE(strstr(message, "BPETokenizer.load_gpt2") &&
                         (strstr(message, VOCAB_NAME) || strstr(message, MERGES_NAME)),
                     "the message does not name the loader and the file: %s", message);
        fuzz_expect_reported(ctx, status, "tc_tokenizer_load_gpt2_memory");
    } else {
        FUZZ_REQUIRE(tc_tokenizer_gpt2_split(tok) && tc_tokenizer_get_kind(tok) == TC_TOKENIZER_BPE,
                     "not a GPT-2 BPE");
        char *text;
        size_t len;
        FUZZ_REQUIRE(tc_tokenizer_serialize(tok, &text, &len) == TC_OK, "serialize: %s", tc_last_error(ctx));
        tc_tokenizer *copy;
        FUZZ_REQUIRE(tc_tokenizer_deserialize(ctx, text, len, &copy) == TC_OK, "the serialized form does not load: %s",
                     tc_last_error(ctx));
        tc_tokenizer_free_text(text);
        encode_both(ctx, tok, copy, fixed_text, sizeof fixed_text - 1);
        encode_both(ctx, tok, copy, vocab, vocab_len);
        encode_both(ctx, tok, copy, merges, merges_len);
        tc_tokenizer_free(copy);
        tc_tokenizer_free(tok);
    }
    tc_context_free(ctx);
    free(merges);
    free(vocab);
    return 0;
}
