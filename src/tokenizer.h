/*
 * tokenizer.h: the tokenizers section of the public C API (byte-level BPE,
 * GPT-2 files, and a character-level tokenizer).
 *
 * A tokenizer is immutable once made and belongs to the context it was made
 * with: errors are reported there, so like its context it is used by one
 * thread at a time. Token ids are 0-based int32. Buffers that a call
 * returns are owned by the caller and released with the matching
 * tc_tokenizer_free_* function.
 *
 * Byte-level BPE: a token is a byte string. A trained tokenizer has the 256
 * single bytes as ids 0..255 and merge number r (0-based, in training order)
 * as id 256 + r. Encoding applies the merges by rank (lowest first, all
 * occurrences of one merge left to right before the next), so any bytes can
 * be encoded, and tc_tokenizer_decode_bytes gives them back exactly
 * (tc_tokenizer_decode too, when they are valid UTF-8).
 *
 * GPT-2 pre-splitting: with it, text is first cut into pieces by GPT-2's
 * pattern
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * and merges never cross pieces. \p{L}, \p{N} and \s follow the Unicode
 * tables (letters, numbers, White_Space). A byte that is not part of valid
 * UTF-8 counts as one character that is neither letter, number nor space.
 * Without it, training and encoding treat the whole text as one sequence.
 */
#ifndef TRICYCLE_TOKENIZER_H
#define TRICYCLE_TOKENIZER_H

#include "tricycle.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tc_tokenizer tc_tokenizer;

typedef enum tc_tokenizer_kind {
    TC_TOKENIZER_BPE = 0, /* byte-level BPE (trained, loaded or GPT-2) */
    TC_TOKENIZER_CHAR     /* one token per character of a fixed alphabet */
} tc_tokenizer_kind;

/* Trains a byte-level BPE on text until it has vocab_size tokens (>= 256).
 * Each step merges the most frequent adjacent pair; ties go to the smallest
 * pair (first id, then second id). Training stops early, with a smaller
 * vocabulary, when no adjacent pair is left. Deterministic. text may hold
 * any bytes; len must be below 2^31. */
tc_status tc_bpe_train(tc_context *ctx, const char *text, size_t len, int vocab_size, bool gpt2_split,
                       tc_tokenizer **out);

/* A character tokenizer whose vocabulary is the distinct characters of text
 * (UTF-8 sequences; a byte outside valid UTF-8 is a character of its own),
 * sorted by code point: id i is the i-th smallest. text must not be empty. */
tc_status tc_char_tokenizer_new(tc_context *ctx, const char *text, size_t len, tc_tokenizer **out);

/* Loads GPT-2's vocab.json (token string -> id, the strings written with
 * GPT-2's byte-to-character mapping) and merges.txt (an optional `#version`
 * first line, then one merge `left right` per line, in rank order). The
 * result pre-splits like GPT-2 and encodes exactly as GPT-2's tokenizer does
 * on ordinary text (special tokens such as <|endoftext|> are decodable but
 * never produced by encoding). Errors name the file, line and column. */
tc_status tc_tokenizer_load_gpt2(tc_context *ctx, const char *vocab_json_path, const char *merges_txt_path,
                                 tc_tokenizer **out);

/* Writes a tokenizer to a text file (tokens and merges, one per line) that
 * tc_tokenizer_load reads back exactly. Writes a temporary file beside path
 * and renames it over path, so a failed save leaves path untouched. */
tc_status tc_tokenizer_save(const tc_tokenizer *tok, const char *path);
tc_status tc_tokenizer_load(tc_context *ctx, const char *path, tc_tokenizer **out);
/* The same text form in memory (for embedding in checkpoints): *text is a
 * fresh NUL-terminated buffer of *len bytes, freed with
 * tc_tokenizer_free_text; errors name the line as `<text>:LINE`. */
tc_status tc_tokenizer_serialize(const tc_tokenizer *tok, char **text, size_t *len);
tc_status tc_tokenizer_deserialize(tc_context *ctx, const char *text, size_t len, tc_tokenizer **out);

void tc_tokenizer_free(tc_tokenizer *tok);

/* Encodes len bytes of text (len below 2^31). *ids is a fresh array of *count ids (possibly
 * zero ids, never NULL on success); free it with tc_tokenizer_free_ids.
 * BPE never fails on content; a character tokenizer fails on a character
 * outside its vocabulary, naming it and its byte offset. */
tc_status tc_tokenizer_encode(const tc_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *count);
void tc_tokenizer_free_ids(int32_t *ids);

/* Decodes ids to text. *text is a fresh NUL-terminated buffer of *len bytes
 * (the NUL not counted); free it with tc_tokenizer_free_text. Byte sequences
 * that are not valid UTF-8 (a multi-byte character cut between tokens, say)
 * become U+FFFD, one per maximal invalid subpart, never an error. An id
 * outside 0..vocab_size-1 is an error naming its position and value. */
tc_status tc_tokenizer_decode(const tc_tokenizer *tok, const int32_t *ids, size_t count, char **text, size_t *len);
/* Same, but returns the tokens' bytes as they are, without UTF-8 repair. */
tc_status tc_tokenizer_decode_bytes(const tc_tokenizer *tok, const int32_t *ids, size_t count, char **bytes,
                                    size_t *len);
void tc_tokenizer_free_text(char *text);

int tc_tokenizer_vocab_size(const tc_tokenizer *tok);
tc_tokenizer_kind tc_tokenizer_get_kind(const tc_tokenizer *tok);
/* "bpe" or "char". */
const char *tc_tokenizer_kind_name(tc_tokenizer_kind kind);
/* Whether the tokenizer pre-splits text with the GPT-2 pattern. */
bool tc_tokenizer_gpt2_split(const tc_tokenizer *tok);
/* Number of merges (0 for a character tokenizer). */
int tc_tokenizer_merge_count(const tc_tokenizer *tok);
/* The bytes of token id (borrowed; valid while tok lives). */
tc_status tc_tokenizer_token_bytes(const tc_tokenizer *tok, int32_t id, const char **bytes, size_t *len);
tc_context *tc_tokenizer_context(const tc_tokenizer *tok);

#ifdef __cplusplus
}
#endif

#endif
