/*
 * tokenizer.c: the tokenizer object (tokens, merges and their lookups),
 * decoding, and the character tokenizer. The contracts are in the
 * tokenizers section of tricycle.h; tokenizer_internal.h lists the files of
 * the other phases.
 */
#include "tokenizer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tc_tokenizer_free(tc_tokenizer *tok) {
    if (!tok) return;
    free(tok->token_offset);
    free(tok->token_bytes);
    free(tok->merges);
    u64_map_free(&tok->merge_rank);
    u64_map_free(&tok->char_id);
    free(tok->special_ids);
    bytes_map_free(&tok->by_bytes);
    free(tok);
}

tc_tokenizer *tc_tokenizer_create(tc_context *ctx, const char *function, tc_tokenizer_kind kind, bool split) {
    tc_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) {
        tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory for the tokenizer", function);
        return NULL;
    }
    tok->ctx = ctx;
    tok->kind = kind;
    tok->gpt2_split = split;
    tok->pattern = split ? SPLIT_GPT2 : SPLIT_NONE;
    for (int b = 0; b < 256; b++) tok->byte_id[b] = NO_ID;
    return tok;
}

/* Whether every merge that uses a token ranks after every merge that makes
 * it, so that applying merges by rank never creates a pair of a lower rank
 * than the one being applied. */
static bool merges_monotone(const tc_tokenizer *tok) {
    int32_t *made_last = malloc((size_t)tok->vocab_size * sizeof *made_last);
    if (!made_last) return false;
    for (int32_t id = 0; id < tok->vocab_size; id++) made_last[id] = NO_ID;
    for (int32_t r = 0; r < tok->merge_count; r++) made_last[tok->merges[3 * r + 2]] = r;
    bool monotone = true;
    for (int32_t r = 0; r < tok->merge_count && monotone; r++)
        monotone = made_last[tok->merges[3 * r]] < r && made_last[tok->merges[3 * r + 1]] < r;
    free(made_last);
    return monotone;
}

/* Builds the lookup structures once tokens and merges are in place, and
 * checks what every tokenizer must satisfy; `where` starts messages. */
tc_status tc_tokenizer_index(tc_tokenizer *tok, const char *where) {
    tc_context *ctx = tok->ctx;
    if (tok->vocab_size == 0) return tc_fail(ctx, TC_ERROR_FORMAT, "%s: the vocabulary is empty", where);
    for (int32_t id = 0; id < tok->vocab_size; id++) {
        size_t len = token_length(tok, id);
        if (len == 0) return tc_fail(ctx, TC_ERROR_FORMAT, "%s: token %d is empty", where, (int)id);
        if (len == 1 && tok->byte_id[token_data(tok, id)[0]] == NO_ID) tok->byte_id[token_data(tok, id)[0]] = id;
    }
    if (tok->kind == TC_TOKENIZER_BPE) {
        for (int b = 0; b < 256; b++) {
            if (tok->byte_id[b] == NO_ID)
                return tc_fail(ctx, TC_ERROR_FORMAT,
                               "%s: no token for the byte 0x%02x (a byte-level BPE needs all 256)", where, b);
        }
        if (!u64_map_init(&tok->merge_rank, (size_t)tok->merge_count))
            return tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory for %d merges", where, (int)tok->merge_count);
        for (int32_t r = 0; r < tok->merge_count; r++) {
            const int32_t *m = &tok->merges[3 * r];
            bool found;
            int32_t *slot = u64_map_slot(&tok->merge_rank, pair_key(m[0], m[1]), &found);
            if (!slot)
                return tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory for %d merges", where, (int)tok->merge_count);
            if (found)
                return tc_fail(ctx, TC_ERROR_FORMAT, "%s: merge %d (%d %d) repeats merge %d", where, (int)r, (int)m[0],
                               (int)m[1], (int)*slot);
            *slot = r;
        }
        tok->monotone = merges_monotone(tok);
        if (tok->merge_count > 0 && !tok->monotone) {
            tc_log(ctx, TC_LOG_DEBUG, "%s: merges are not in creation order; encoding uses the general order", where);
        }
    } else {
        if (!u64_map_init(&tok->char_id, (size_t)tok->vocab_size))
            return tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory for %d characters", where, (int)tok->vocab_size);
        for (int32_t id = 0; id < tok->vocab_size; id++) {
            const unsigned char *s = token_data(tok, id);
            size_t len = token_length(tok, id);
            uint32_t cp;
            if (tc_utf8_decode(s, len, &cp) != len)
                return tc_fail(ctx, TC_ERROR_FORMAT, "%s: token %d is not a single character", where, (int)id);
            if (len == 1) {
                if (tok->byte_id[s[0]] != id)
                    return tc_fail(ctx, TC_ERROR_FORMAT, "%s: tokens %d and %d are the same character", where,
                                   (int)tok->byte_id[s[0]], (int)id);
                continue;
            }
            bool found;
            int32_t *slot = u64_map_slot(&tok->char_id, char_key(s, len), &found);
            if (!slot)
                return tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory for %d characters", where,
                               (int)tok->vocab_size);
            if (found)
                return tc_fail(ctx, TC_ERROR_FORMAT, "%s: tokens %d and %d are the same character", where, (int)*slot,
                               (int)id);
            *slot = id;
        }
    }
    return TC_OK;
}

/* Sorts the added tokens by first byte, then longest first, then id
 * (insertion sort: a few hundred at most, and no global for qsort). */
static void sort_added(tc_tokenizer *tok) {
    int32_t *ids = tok->special_ids;
    for (int32_t k = 1; k < tok->special_count; k++) {
        int32_t id = ids[k], j = k;
        unsigned first = token_data(tok, id)[0];
        size_t len = token_length(tok, id);
        while (j > 0) {
            int32_t other = ids[j - 1];
            unsigned other_first = token_data(tok, other)[0];
            size_t other_len = token_length(tok, other);
            bool after = other_first > first || (other_first == first && (other_len < len ||
                                                                          (other_len == len && other > id)));
            if (!after) break;
            ids[j] = other;
            j--;
        }
        ids[j] = id;
    }
    int32_t k = 0;
    for (int b = 0; b <= 256; b++) {
        while (b < 256 && k < tok->special_count && token_data(tok, ids[k])[0] < b) k++;
        tok->special_first[b] = b < 256 ? k : tok->special_count;
    }
}

tc_status tc_tokenizer_index_hf(tc_tokenizer *tok, const char *where) {
    tc_context *ctx = tok->ctx;
    for (int32_t k = 0; k < tok->special_count; k++) {
        if (tok->special_ids[k] < 0 || tok->special_ids[k] >= tok->vocab_size)
            return tc_fail(ctx, TC_ERROR_FORMAT, "%s: added token id %d is out of range (0..%d)", where,
                           (int)tok->special_ids[k], (int)tok->vocab_size - 1);
    }
    sort_added(tok);
    bool *is_added = calloc((size_t)tok->vocab_size, sizeof *is_added);
    if (!is_added) return tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", where);
    for (int32_t k = 0; k < tok->special_count; k++) is_added[tok->special_ids[k]] = true;
    tc_status status = TC_OK;
    if (tok->sentencepiece) {
        tok->words_at_spaces = true;
        for (int32_t id = 0; id < tok->vocab_size && tok->words_at_spaces; id++) {
            const unsigned char *s = token_data(tok, id);
            size_t len = token_length(tok, id);
            for (size_t i = 1; i < len && !is_added[id]; i++) {
                if (s[i] == ' ' && s[i - 1] != ' ') tok->words_at_spaces = false;
            }
        }
        /* the characters that start a word, beside the byte tokens */
        if (!u64_map_init(&tok->char_id, 1024)) status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", where);
        for (int32_t id = 0; id < tok->vocab_size && status == TC_OK; id++) {
            const unsigned char *s = token_data(tok, id);
            size_t len = token_length(tok, id);
            uint32_t cp;
            if (is_added[id] || (len == 1 && tok->byte_id[s[0]] == id)) continue;
            if (len > 4 || (len > 1 && tc_utf8_decode(s, len, &cp) != len)) continue;
            bool found;
            int32_t *slot = u64_map_slot(&tok->char_id, char_key(s, len), &found);
            if (!slot) status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", where);
            else if (!found) *slot = id;
        }
    }
    if (tok->ignore_merges && status == TC_OK) {
        if (!bytes_map_init(&tok->by_bytes, (size_t)tok->vocab_size))
            status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", where);
        for (int32_t id = 0; id < tok->vocab_size && status == TC_OK; id++) {
            const unsigned char *s = token_data(tok, id);
            size_t len = token_length(tok, id);
            uint64_t hash = hash_bytes(s, len);
            if (is_added[id] || bytes_map_find(&tok->by_bytes, s, len, hash) != NO_ID) continue;
            if (bytes_map_add(&tok->by_bytes, s, len, hash, id) == NO_ID)
                status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", where);
        }
    }
    free(is_added);
    return status;
}

/* Fills token_offset/token_bytes of a BPE whose ids 0..255 are the bytes and
 * whose merges produce ids 256, 257, ... in order. */
tc_status tc_tokenizer_tokens_from_merges(tc_tokenizer *tok, const char *where) {
    int32_t n = 256 + tok->merge_count;
    tok->vocab_size = n;
    tok->token_offset = malloc(((size_t)n + 1) * sizeof *tok->token_offset);
    size_t *length = malloc((size_t)n * sizeof *length);
    if (!tok->token_offset || !length) {
        free(length);
        return tc_fail(tok->ctx, TC_ERROR_MEMORY, "%s: out of memory for %d tokens", where, (int)n);
    }
    size_t total = 256;
    for (int32_t id = 0; id < n; id++) {
        length[id] = id < 256 ? 1 : length[tok->merges[3 * (id - 256)]] + length[tok->merges[3 * (id - 256) + 1]];
        if (id >= 256) total += length[id];
    }
    tok->token_bytes = malloc(total);
    if (!tok->token_bytes) {
        free(length);
        return tc_fail(tok->ctx, TC_ERROR_MEMORY, "%s: out of memory for %zu bytes of tokens", where, total);
    }
    size_t at = 0;
    for (int32_t id = 0; id < n; id++) {
        tok->token_offset[id] = at;
        if (id < 256) {
            tok->token_bytes[at] = (unsigned char)id;
        } else {
            int32_t left = tok->merges[3 * (id - 256)], right = tok->merges[3 * (id - 256) + 1];
            memcpy(tok->token_bytes + at, token_data(tok, left), length[left]);
            memcpy(tok->token_bytes + at + length[left], token_data(tok, right), length[right]);
        }
        at += length[id];
    }
    tok->token_offset[n] = at;
    free(length);
    return TC_OK;
}

int tc_tokenizer_vocab_size(const tc_tokenizer *tok) { return tok ? (int)tok->vocab_size : 0; }
tc_tokenizer_kind tc_tokenizer_get_kind(const tc_tokenizer *tok) { return tok->kind; }
bool tc_tokenizer_gpt2_split(const tc_tokenizer *tok) { return tok->gpt2_split; }
int tc_tokenizer_merge_count(const tc_tokenizer *tok) { return (int)tok->merge_count; }
tc_context *tc_tokenizer_context(const tc_tokenizer *tok) { return tok->ctx; }

const char *tc_tokenizer_kind_name(tc_tokenizer_kind kind) {
    switch (kind) {
    case TC_TOKENIZER_BPE: return "bpe";
    case TC_TOKENIZER_CHAR: return "char";
    default: return "unknown";
    }
}

tc_status tc_tokenizer_token_bytes(const tc_tokenizer *tok, int32_t id, const char **bytes, size_t *len) {
    if (!tok) return TC_ERROR_ARGUMENT;
    if (!bytes || !len)
        return tc_fail(tok->ctx, TC_ERROR_ARGUMENT, "token: bytes and len must not be NULL");
    if (id < 0 || id >= tok->vocab_size)
        return tc_fail(tok->ctx, TC_ERROR_ARGUMENT,
                       "token: id %d is out of range for a vocabulary of %d tokens", (int)id,
                       (int)tok->vocab_size);
    *bytes = (const char *)token_data(tok, id);
    *len = token_length(tok, id);
    return TC_OK;
}

int32_t tc_tokenizer_find_token(const tc_tokenizer *tok, const char *bytes, size_t len) {
    if (!tok || (!bytes && len > 0)) return NO_ID;
    for (int32_t id = 0; id < tok->vocab_size; id++) {
        if (token_length(tok, id) == len && memcmp(token_data(tok, id), bytes, len) == 0) return id;
    }
    return NO_ID;
}

/* ---- decoding ----------------------------------------------------------- */

static tc_status decode_common(const tc_tokenizer *tok, const char *fn, const int32_t *ids, size_t count, bool repair,
                               char **text, size_t *len) {
    if (!tok) return TC_ERROR_ARGUMENT;
    if (!text || !len) return tc_fail(tok->ctx, TC_ERROR_ARGUMENT, "%s: text and len must not be NULL", fn);
    *text = NULL;
    *len = 0;
    if (!ids && count > 0) return tc_fail(tok->ctx, TC_ERROR_ARGUMENT, "%s: ids is NULL with count %zu", fn, count);
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        if (ids[i] < 0 || ids[i] >= tok->vocab_size)
            return tc_fail(tok->ctx, TC_ERROR_ARGUMENT,
                           "%s: ids[%zu] = %d is out of range for a vocabulary of %d tokens (0..%d)", fn, i,
                           (int)ids[i], (int)tok->vocab_size, (int)tok->vocab_size - 1);
        total += token_length(tok, ids[i]);
    }
    unsigned char *bytes = malloc(total + 1);
    if (!bytes) return tc_fail(tok->ctx, TC_ERROR_MEMORY, "%s: out of memory for %zu bytes", fn, total + 1);
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
        size_t l = token_length(tok, ids[i]);
        memcpy(bytes + at, token_data(tok, ids[i]), l);
        at += l;
    }
    bytes[total] = 0;
    /* SentencePiece's space in front; decode_bytes keeps it, so that tokens
     * decoded one at a time (streaming) keep their spaces */
    if (repair && tok->strip_space && total > 0 && bytes[0] == ' ') {
        memmove(bytes, bytes + 1, total);
        total--;
    }
    size_t bad = total;
    if (repair) {
        for (size_t i = 0; i < total;) {
            if (bytes[i] < 0x80) {
                i++;
                continue;
            }
            uint32_t cp;
            size_t l = tc_utf8_decode(bytes + i, total - i, &cp);
            if (cp == TC_UTF8_INVALID) {
                bad = i;
                break;
            }
            i += l;
        }
    }
    if (bad < total) {
        /* Each invalid subpart (at least one byte) becomes three bytes. */
        if (total > (SIZE_MAX - 1) / 3) {
            free(bytes);
            return tc_fail(tok->ctx, TC_ERROR_MEMORY, "%s: out of memory", fn);
        }
        unsigned char *fixed = malloc(3 * total + 1);
        if (!fixed) {
            free(bytes);
            return tc_fail(tok->ctx, TC_ERROR_MEMORY, "%s: out of memory for %zu bytes", fn, 3 * total + 1);
        }
        memcpy(fixed, bytes, bad);
        size_t o = bad;
        for (size_t i = bad; i < total;) {
            uint32_t cp;
            size_t l = tc_utf8_decode(bytes + i, total - i, &cp);
            if (cp == TC_UTF8_INVALID) {
                l = tc_utf8_invalid_span(bytes + i, total - i);
                o += tc_utf8_encode(0xFFFD, fixed + o);
            } else {
                memcpy(fixed + o, bytes + i, l);
                o += l;
            }
            i += l;
        }
        fixed[o] = 0;
        free(bytes);
        bytes = fixed;
        total = o;
    }
    *text = (char *)bytes;
    *len = total;
    return TC_OK;
}

tc_status tc_tokenizer_decode(const tc_tokenizer *tok, const int32_t *ids, size_t count, char **text, size_t *len) {
    return decode_common(tok, "decode", ids, count, true, text, len);
}

tc_status tc_tokenizer_decode_bytes(const tc_tokenizer *tok, const int32_t *ids, size_t count, char **bytes,
                                    size_t *len) {
    return decode_common(tok, "decode_bytes", ids, count, false, bytes, len);
}

void tc_tokenizer_free_text(char *text) { free(text); }

/* ---- character tokenizer ------------------------------------------------ */

typedef struct char_unit {
    unsigned char bytes[4];
    uint32_t len;
} char_unit;

static int compare_units(const void *a, const void *b) {
    const char_unit *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->bytes, y->bytes, n);
    if (c != 0) return c;
    return (x->len > y->len) - (x->len < y->len);
}

tc_status tc_char_tokenizer_new(tc_context *ctx, const char *text, size_t len, tc_tokenizer **out) {
    static const char *const fn = "CharTokenizer.new";
    if (!out) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: out must not be NULL", fn);
    *out = NULL;
    if (!text && len > 0) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: text is NULL with len %zu", fn, len);
    if (len == 0) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: text is empty, so there are no characters", fn);
    const unsigned char *s = (const unsigned char *)text;
    bool seen_byte[256] = {false};
    u64_map seen;
    if (!u64_map_init(&seen, 256)) return tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", fn);
    char_unit *units = NULL;
    size_t n_units = 0, capacity = 0;
    bool ok = true;
    for (size_t i = 0; i < len && ok;) {
        uint32_t cp;
        size_t l = s[i] < 0x80 ? 1 : tc_utf8_decode(s + i, len - i, &cp);
        bool fresh;
        if (l == 1) {
            fresh = !seen_byte[s[i]];
            seen_byte[s[i]] = true;
        } else {
            bool found;
            int32_t *slot = u64_map_slot(&seen, char_key(s + i, l), &found);
            ok = slot != NULL;
            fresh = ok && !found;
        }
        if (ok && fresh) {
            ok = reserve((void **)&units, &capacity, n_units + 1, sizeof *units);
            if (ok) {
                memset(&units[n_units], 0, sizeof units[n_units]);
                memcpy(units[n_units].bytes, s + i, l);
                units[n_units++].len = (uint32_t)l;
            }
        }
        i += l;
    }
    u64_map_free(&seen);
    tc_tokenizer *tok = ok ? tc_tokenizer_create(ctx, fn, TC_TOKENIZER_CHAR, false) : NULL;
    if (!tok) {
        free(units);
        return ok ? TC_ERROR_MEMORY : tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", fn);
    }
    qsort(units, n_units, sizeof *units, compare_units);
    tok->vocab_size = (int32_t)n_units;
    tok->token_offset = malloc((n_units + 1) * sizeof *tok->token_offset);
    tok->token_bytes = malloc(4 * n_units);
    tc_status status = TC_OK;
    if (!tok->token_offset || !tok->token_bytes) {
        status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory for %zu characters", fn, n_units);
    } else {
        size_t at = 0;
        for (size_t u = 0; u < n_units; u++) {
            tok->token_offset[u] = at;
            memcpy(tok->token_bytes + at, units[u].bytes, units[u].len);
            at += units[u].len;
        }
        tok->token_offset[n_units] = at;
        status = tc_tokenizer_index(tok, fn);
    }
    free(units);
    if (status != TC_OK) {
        tc_tokenizer_free(tok);
        return status;
    }
    *out = tok;
    return TC_OK;
}
