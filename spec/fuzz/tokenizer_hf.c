/*
 * tokenizer_hf.c (fuzz target): Hugging Face's tokenizer.json
 * (src/tokenizer_hf.c, tc_tokenizer_load_hf_memory, which
 * tc_tokenizer_load_hf calls after reading the file).
 *
 * The input is tokenizer.json, then optionally a NUL byte and a text to
 * encode. Each part is copied to a buffer of its own exact size, so a read
 * past the end of either is caught. A failure must carry a status and a
 * message naming the loader and the file. A tokenizer that loads encodes a
 * fixed text (with added-token look-alikes, NFC-sensitive marks and
 * SentencePiece's "▁"), the file and the text; its copy through our own
 * format must give the same ids, every id must be in range, and without
 * normalization (NFC, SentencePiece) decode_bytes must give the bytes back.
 */
#include "fuzz.h"
#include "internal.h"
#include "tokenizer_internal.h"

#define MEMORY_BUDGET ((size_t)64 << 20)
#define NAME "tokenizer.json"
static const char fixed_text[] = "Hello, world! It'S 12345 o'clock\r\n\n\tcafe\xcc\x81 \xe2\x96\x81x <s><|endoftext|> "
                                 "\xe4\xb8\xad \xf0\x9f\x98\x80 \xc2\x85\xef\xbb\xbf \xff.";

static void encode_both(tc_context *ctx, const tc_tokenizer *tok, const tc_tokenizer *copy, const char *text,
                        size_t len) {
    int32_t *ids, *copy_ids;
    size_t count, copy_count;
    FUZZ_REQUIRE(tc_tokenizer_encode(tok, text, len, &ids, &count) == TC_OK, "encode failed: %s",
                 tc_last_error(ctx));
    FUZZ_REQUIRE(tc_tokenizer_encode(copy, text, len, &copy_ids, &copy_count) == TC_OK, "encode: %s",
                 tc_last_error(ctx));
    FUZZ_REQUIRE(count == copy_count && memcmp(ids, copy_ids, count * sizeof *ids) == 0,
                 "the reloaded tokenizer encodes differently (%zu and %zu ids)", count, copy_count);
    for (size_t i = 0; i < count; i++)
        FUZZ_REQUIRE(ids[i] >= 0 && ids[i] < tc_tokenizer_vocab_size(tok), "id %d out of range", (int)ids[i]);
    char *bytes;
    size_t bytes_len;
    FUZZ_REQUIRE(tc_tokenizer_decode_bytes(tok, ids, count, &bytes, &bytes_len) == TC_OK, "decode_bytes: %s",
                 tc_last_error(ctx));
    if (!tok->nfc && !tok->sentencepiece)
        FUZZ_REQUIRE(bytes_len == len && memcmp(bytes, text, len) == 0, "decode(encode(x)) != x");
    tc_tokenizer_free_text(bytes);
    tc_tokenizer_free_ids(copy_ids);
    tc_tokenizer_free_ids(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *separator = memchr(data, 0, size);
    size_t json_len = separator ? (size_t)(separator - data) : size;
    size_t text_len = separator ? size - json_len - 1 : 0;
    char *json = fuzz_copy(data, json_len);
    char *text = fuzz_copy(separator ? separator + 1 : data, text_len);
    tc_context *ctx = fuzz_context(MEMORY_BUDGET);
    tc_tokenizer *tok;
    tc_status status = tc_tokenizer_load_hf_memory(ctx, json, json_len, NAME, &tok);
    if (status != TC_OK) {
        const char *message = tc_last_error(ctx);
        FUZZ_REQUIRE(tok == NULL, "a failed load left a tokenizer");
        FUZZ_REQUIRE(strstr(message, "tokenizer.load_hf") && (strstr(message, NAME) || status == TC_ERROR_MEMORY),
                     "the message does not name the loader and the file: %s", message);
        fuzz_expect_reported(ctx, status, "tc_tokenizer_load_hf_memory");
    } else {
        FUZZ_REQUIRE(tc_tokenizer_get_kind(tok) == TC_TOKENIZER_BPE, "not a BPE");
        char *saved;
        size_t saved_len;
        FUZZ_REQUIRE(tc_tokenizer_serialize(tok, &saved, &saved_len) == TC_OK, "serialize: %s", tc_last_error(ctx));
        tc_tokenizer *copy;
        FUZZ_REQUIRE(tc_tokenizer_deserialize(ctx, saved, saved_len, &copy) == TC_OK,
                     "the serialized form does not load: %s", tc_last_error(ctx));
        tc_tokenizer_free_text(saved);
        encode_both(ctx, tok, copy, fixed_text, sizeof fixed_text - 1);
        encode_both(ctx, tok, copy, json, json_len);
        encode_both(ctx, tok, copy, text, text_len);
        tc_tokenizer_free(copy);
        tc_tokenizer_free(tok);
    }
    tc_context_free(ctx);
    free(text);
    free(json);
    return 0;
}
