/*
 * tokenizer_internal.h: what the tokenizer's files share (a private header).
 *
 *   tokenizer.c              the object: tokens, merges, lookups, decoding, the character tokenizer
 *   tokenizer_pretokenize.c  GPT-2's split pattern and its character classes
 *   tokenizer_train.c        BPE training
 *   tokenizer_encode.c       BPE and character encoding
 *   tokenizer_files.c        our tokenizer file: save, load, serialize, deserialize
 *   tokenizer_gpt2.c         GPT-2's vocab.json and merges.txt
 *   tokenizer_hf.c           Hugging Face's tokenizer.json
 *   tokenizer_sections.c     added tokens, NFC and SentencePiece's spaces before BPE
 *   tokenizer_nfc.c          Unicode normalization form C (tables in unicode/nfc.h)
 *   (tokenizer_batch.c       encoding on threads, through the public API only)
 *
 * Inside, a tokenizer is a table of tokens (byte strings, by id) and, for
 * BPE, a list of merges in rank order, each `left right -> result`. The
 * single-byte tokens are found through byte_id, the merges through a hash
 * map keyed by the (left, right) pair.
 */
#ifndef TRICYCLE_TOKENIZER_INTERNAL_H
#define TRICYCLE_TOKENIZER_INTERNAL_H

#include "tricycle.h"

#include "internal.h"
#include "tokenizer_maps.h"
#include "utf8.h"

/* Texts and token counts are indexed with int32 inside the algorithms. */
#define MAX_TEXT_BYTES ((size_t)INT32_MAX - 1)

/* Long sequences visit symbols all over the text; asking for them a few
 * steps ahead hides most of the memory latency. */
#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(address) __builtin_prefetch(address)
#else
#define PREFETCH(address) ((void)(address))
#endif
#define PREFETCH_AHEAD 8

/* The split patterns of byte-level BPE (tokenizer_pretokenize.c). */
typedef enum split_pattern { SPLIT_NONE = 0, SPLIT_GPT2, SPLIT_LLAMA3, SPLIT_QWEN2 } split_pattern;

struct tc_tokenizer {
    tc_context *ctx;
    tc_tokenizer_kind kind;
    bool gpt2_split;     /* pattern == SPLIT_GPT2 */
    split_pattern pattern;
    /* Hugging Face's pipelines (tokenizer_hf.c); all false for our own. */
    bool nfc;           /* sections are NFC-normalized first */
    bool sentencepiece; /* a section is one word of characters after " " is prepended; bytes are the fallback */
    bool ignore_merges; /* a piece that is a whole token is that token */
    bool merge_each;    /* merges one at a time by (rank, position), for any table */
    bool strip_space;   /* tc_tokenizer_decode drops one leading space */
    bool words_at_spaces; /* SentencePiece: no token holds a space after another byte, so merges never
                           * cross the start of a run of spaces and words can be cut there */
    int32_t special_count;
    int32_t *special_ids; /* added tokens, matched in the text before anything else, sorted by first
                           * byte, then longest first; */
    int32_t special_first[257]; /* those starting with byte b are special_ids[special_first[b] .. [b + 1]) */
    bytes_map by_bytes;   /* ignore_merges: token bytes -> id */
    int32_t vocab_size;
    size_t *token_offset; /* vocab_size + 1 offsets into token_bytes */
    unsigned char *token_bytes;
    int32_t byte_id[256]; /* id of each single-byte token, NO_ID when none */
    int32_t merge_count;
    int32_t *merges;    /* merge_count triples (left, right, result) in rank order */
    u64_map merge_rank; /* pair_key(left, right) -> rank */
    u64_map char_id;    /* character tokenizers: packed multi-byte character -> id */
    bool monotone;      /* every merge using a token ranks after every merge making it */
};

static inline size_t token_length(const tc_tokenizer *tok, int32_t id) {
    return tok->token_offset[id + 1] - tok->token_offset[id];
}

static inline const unsigned char *token_data(const tc_tokenizer *tok, int32_t id) {
    return tok->token_bytes + tok->token_offset[id];
}

/* A multi-byte character packed into a map key (its bytes and length). */
static inline uint64_t char_key(const unsigned char *s, size_t len) {
    uint64_t key = (uint64_t)len << 32;
    for (size_t k = 0; k < len; k++) key |= (uint64_t)s[k] << (8 * k);
    return key;
}

/* A new tokenizer without tokens; NULL (the error set) when out of memory. */
tc_tokenizer *tc_tokenizer_create(tc_context *ctx, const char *function, tc_tokenizer_kind kind, bool split);
/* Builds the lookup structures once tokens and merges are in place, and
 * checks what every tokenizer must satisfy; `where` starts messages. */
tc_status tc_tokenizer_index(tc_tokenizer *tok, const char *where);
/* Fills the tokens of a BPE whose ids 0..255 are the bytes and whose merges
 * produce ids 256, 257, ... in order. */
tc_status tc_tokenizer_tokens_from_merges(tc_tokenizer *tok, const char *where);

/* The piece matcher of a split pattern (not SPLIT_NONE). */
typedef size_t (*piece_end_fn)(const unsigned char *s, size_t n, size_t i);
piece_end_fn tc_piece_end_for(split_pattern pattern);
const char *tc_split_pattern_name(split_pattern pattern);

/* Builds what the Hugging Face options need once tokens are indexed:
 * the SentencePiece character map, the ignore_merges map, the added tokens'
 * order; `where` starts messages. */
tc_status tc_tokenizer_index_hf(tc_tokenizer *tok, const char *where);

/* NFC of s[0..n) into a fresh buffer (*out, *out_len; freed with free);
 * bytes that are not UTF-8 pass through. False when out of memory. */
bool tc_nfc(const unsigned char *s, size_t n, unsigned char **out, size_t *out_len);

typedef struct id_buffer {
    int32_t *ids;
    size_t count, capacity;
} id_buffer;

static inline bool id_buffer_reserve(id_buffer *b, size_t more) {
    return more <= SIZE_MAX - b->count && reserve((void **)&b->ids, &b->capacity, b->count + more, sizeof *b->ids);
}

/* What encoding keeps between the sections of one text (the word cache and
 * the merge buffers); NULL when out of memory. */
typedef struct encode_state encode_state;
encode_state *tc_encode_state_new(void);
void tc_encode_state_free(encode_state *st);
/* Encodes one section (no added token in it, already normalized) with the
 * tokenizer's BPE, appending to out; false when out of memory. */
bool tc_encode_section(const tc_tokenizer *tok, encode_state *st, const unsigned char *s, size_t len,
                       id_buffer *out);
/* Encodes a text of a tokenizer with added tokens or normalization
 * (tokenizer_sections.c). */
tc_status tc_encode_sections(const tc_tokenizer *tok, const unsigned char *s, size_t len, id_buffer *out);

/* End of the GPT-2 piece that starts at s[i] (i < n). Called once a piece:
 * hidden, so that it is called directly, not through the shared library's
 * table of exported functions. */
__attribute__((visibility("hidden"))) size_t tc_gpt2_piece_end(const unsigned char *s, size_t n, size_t i);

/* GPT-2 writes each byte as one character (tokenizer_gpt2.c): byte_of maps
 * the characters below GPT2_ALPHABET_END to bytes (-1: none). */
#define GPT2_ALPHABET_END 0x144
void tc_gpt2_alphabet(int16_t byte_of[GPT2_ALPHABET_END]);
/* A token written so (UTF-8) as bytes into out (which may be s), or only
 * counted when out is NULL; false with the offending character in *bad. */
bool tc_gpt2_token_bytes(const int16_t byte_of[GPT2_ALPHABET_END], const unsigned char *s, size_t len,
                         unsigned char *out, size_t *out_len, uint32_t *bad);

/* Reads a whole regular file (no FIFO, device or directory; at most
 * MAX_TEXT_BYTES); the buffer gets a NUL after the data. */
tc_status tc_tokenizer_read_file(tc_context *ctx, const char *fn, const char *path, unsigned char **data,
                                 size_t *len);
/* Makes a tokenizer from the text of a file named `name`; errors name fn. */
typedef tc_status (*tc_tokenizer_parse_fn)(tc_context *ctx, const char *fn, const char *text, size_t len,
                                           const char *name, tc_tokenizer **out);
/* What every loader of one file does: out checked and cleared, the file
 * read whole (tc_tokenizer_read_file), parsed, the text freed. */
tc_status tc_tokenizer_load_file(tc_context *ctx, const char *fn, const char *path, tc_tokenizer_parse_fn parse,
                                 tc_tokenizer **out);
/* A parser's last step: on status TC_OK the tokenizer is indexed (its
 * errors name fn and the text's name) and handed to *out; otherwise, or
 * when indexing fails, it is freed. Returns the status. */
tc_status tc_tokenizer_finish(tc_tokenizer *tok, tc_status status, const char *fn, const char *name,
                              tc_tokenizer **out);

/* Lines of a buffer, numbered from 1, without the line break ("\n" or
 * "\r\n"). */
typedef struct line_reader {
    const unsigned char *data;
    size_t len, at;
    int line;
} line_reader;

static inline bool next_line(line_reader *r, const unsigned char **start, size_t *len) {
    if (r->at >= r->len) return false;
    const unsigned char *s = r->data + r->at;
    const unsigned char *nl = memchr(s, '\n', r->len - r->at);
    size_t l = nl ? (size_t)(nl - s) : r->len - r->at;
    r->at += l + (nl ? 1 : 0);
    r->line++;
    if (l > 0 && s[l - 1] == '\r') l--;
    *start = s;
    *len = l;
    return true;
}

#endif
