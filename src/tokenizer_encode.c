/*
 * tokenizer_encode.c: encoding text into ids, for BPE (the whole text as
 * one sequence, or GPT-2's pieces one at a time) and character tokenizers.
 */
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

/* Above this many distinct words the encoder stops caching new ones. */
#define WORD_CACHE_LIMIT (1u << 20)
/* Words up to this many symbols are merged by a plain scan, longer ones
 * through linked symbols and a queue of positions by rank. */
#define SMALL_WORD 32

/* ---- BPE encoding -------------------------------------------------------
 *
 * Within one sequence the merges apply by rank: the lowest-ranked pair
 * present merges at all its occurrences, left to right, then the next (as
 * GPT-2's tokenizer does). Short words do this with a plain scan. Long
 * sequences become linked symbols, and the positions of their pairs wait in
 * one list per rank, visited in rank order (a merge only creates pairs of
 * higher ranks in a table where tokens are made before they are used, as in
 * every trained one); other tables use a min-heap keyed by (rank, position).
 * Positions are checked when visited, since the pair there may have changed.
 */

typedef struct bpe_symbol {
    int32_t id; /* NO_ID once merged into the symbol on its left */
    int32_t next, prev;
} bpe_symbol;

/* A block of positions waiting in one rank's list (one cache line). */
#define BLOCK_POSITIONS 14
typedef struct bpe_block {
    int32_t next; /* the block after this one in its list, NO_ID at the end */
    int32_t count;
    int32_t position[BLOCK_POSITIONS];
} bpe_block;

typedef struct bpe_work {
    bpe_symbol *symbols;
    size_t symbols_capacity;
    uint32_t *round;
    size_t round_capacity;
    /* General order: a min-heap of (rank << 32 | position). */
    uint64_t *heap;
    size_t heap_capacity;
    /* Monotone order: one list of blocks per rank, first and last block by
     * rank (NO_ID when empty; emptied again before a call returns). */
    int32_t *first_block, *last_block;
    bpe_block *blocks;
    size_t blocks_capacity, n_blocks;
} bpe_work;

static void bpe_work_free(bpe_work *w) {
    free(w->symbols);
    free(w->round);
    free(w->heap);
    free(w->first_block);
    free(w->last_block);
    free(w->blocks);
}

static inline int32_t merge_rank(const tc_tokenizer *tok, int32_t left, int32_t right) {
    return u64_map_get(&tok->merge_rank, pair_key(left, right));
}

static size_t bpe_merge_small(const tc_tokenizer *tok, int32_t *ids, size_t n) {
    int32_t ranks[SMALL_WORD];
    for (size_t i = 0; i + 1 < n; i++) ranks[i] = merge_rank(tok, ids[i], ids[i + 1]);
    while (n >= 2) {
        int32_t best = INT32_MAX;
        size_t first = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            if (ranks[i] != NO_ID && ranks[i] < best) {
                best = ranks[i];
                first = i;
            }
        }
        if (best == INT32_MAX) break;
        int32_t id = tok->merges[3 * best + 2];
        size_t out = 0;
        for (size_t i = 0; i < n;) {
            /* merge_each: only the leftmost, since the pairs it makes may rank lower */
            if (i + 1 < n && ranks[i] == best && (!tok->merge_each || i == first)) {
                ids[out++] = id;
                i += 2;
            } else {
                ids[out++] = ids[i++];
            }
        }
        n = out;
        for (size_t i = 0; i + 1 < n; i++) ranks[i] = merge_rank(tok, ids[i], ids[i + 1]);
    }
    return n;
}

static inline void min_heap_push(uint64_t *heap, size_t *n, uint64_t key) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (heap[parent] <= key) break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = key;
}

static inline void min_heap_sift_down(uint64_t *heap, size_t n, size_t i) {
    uint64_t key = heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && heap[child + 1] < heap[child]) child++;
        if (heap[child] >= key) break;
        heap[i] = heap[child];
        i = child;
    }
    heap[i] = key;
}

static inline uint64_t min_heap_pop(uint64_t *heap, size_t *n) {
    uint64_t top = heap[0];
    heap[0] = heap[--(*n)];
    if (*n > 0) min_heap_sift_down(heap, *n, 0);
    return top;
}

/* Merges the pair at p, if (left, right) is still there, into id; returns
 * whether it did. */
static inline bool bpe_merge_at(bpe_symbol *sym, int32_t p, int32_t left, int32_t right, int32_t id) {
    if (sym[p].id != left) return false;
    int32_t q = sym[p].next;
    if (q == NO_ID || sym[q].id != right) return false;
    int32_t after = sym[q].next;
    sym[p].id = id;
    sym[q].id = NO_ID;
    sym[p].next = after;
    if (after != NO_ID) sym[after].prev = p;
    return true;
}

/* Heap order, for any merge table. */
static bool bpe_merge_heap(const tc_tokenizer *tok, size_t n, bpe_work *w) {
    /* Each merge pushes at most two entries and removes a symbol, so 3n bounds the heap. */
    if (!reserve((void **)&w->heap, &w->heap_capacity, 3 * n, sizeof *w->heap)) return false;
    bpe_symbol *sym = w->symbols;
    uint64_t *heap = w->heap;
    uint32_t *round = w->round;
    size_t n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t r = merge_rank(tok, sym[i].id, sym[i + 1].id);
        if (r != NO_ID) heap[n_heap++] = (uint64_t)r << 32 | i;
    }
    for (size_t i = n_heap / 2; i-- > 0;) min_heap_sift_down(heap, n_heap, i);
    while (n_heap > 0) {
        /* A whole rank at once, so pairs it creates wait for the next round;
         * with merge_each one position at a time, so a pair it creates that
         * ranks lower goes first (Hugging Face's order). */
        uint32_t rank = (uint32_t)(heap[0] >> 32);
        size_t n_round = 0;
        do {
            round[n_round++] = (uint32_t)min_heap_pop(heap, &n_heap);
        } while (!tok->merge_each && n_heap > 0 && (uint32_t)(heap[0] >> 32) == rank);
        int32_t left = tok->merges[3 * rank], right = tok->merges[3 * rank + 1], id = tok->merges[3 * rank + 2];
        for (size_t k = 0; k < n_round; k++) {
            int32_t p = (int32_t)round[k];
            if (!bpe_merge_at(sym, p, left, right, id)) continue;
            int32_t before = sym[p].prev, after = sym[p].next;
            if (before != NO_ID) {
                int32_t r = merge_rank(tok, sym[before].id, id);
                if (r != NO_ID) min_heap_push(heap, &n_heap, (uint64_t)r << 32 | (uint32_t)before);
            }
            if (after != NO_ID) {
                int32_t r = merge_rank(tok, id, sym[after].id);
                if (r != NO_ID) min_heap_push(heap, &n_heap, (uint64_t)r << 32 | (uint32_t)p);
            }
        }
    }
    return true;
}

static inline bool bucket_push(bpe_work *w, int32_t rank, int32_t position) {
    int32_t last = w->last_block[rank];
    if (last == NO_ID || w->blocks[last].count == BLOCK_POSITIONS) {
        if (!reserve((void **)&w->blocks, &w->blocks_capacity, w->n_blocks + 1, sizeof *w->blocks)) return false;
        int32_t fresh = (int32_t)w->n_blocks++;
        w->blocks[fresh].next = NO_ID;
        w->blocks[fresh].count = 0;
        if (last == NO_ID) {
            w->first_block[rank] = fresh;
        } else {
            w->blocks[last].next = fresh;
        }
        w->last_block[rank] = last = fresh;
    }
    bpe_block *b = &w->blocks[last];
    b->position[b->count++] = position;
    return true;
}

static int compare_uint32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Rank order through one list per rank, for merge tables where every pair a
 * merge creates has a higher rank than the merge (tok->monotone): ranks then
 * come up in increasing order and each list is complete when reached. The
 * occurrences of a pair of two different tokens cannot overlap, so only
 * pairs like (x, x) need their positions in increasing order. */
static bool bpe_merge_buckets(const tc_tokenizer *tok, size_t n, bpe_work *w) {
    if (!w->first_block) {
        w->first_block = malloc((size_t)tok->merge_count * sizeof *w->first_block);
        w->last_block = malloc((size_t)tok->merge_count * sizeof *w->last_block);
        if (!w->first_block || !w->last_block) return false;
        for (int32_t r = 0; r < tok->merge_count; r++) w->first_block[r] = w->last_block[r] = NO_ID;
    }
    bpe_symbol *sym = w->symbols;
    uint32_t *round = w->round;
    int32_t low = INT32_MAX, high = -1;
    w->n_blocks = 0;
    bool ok = reserve((void **)&w->blocks, &w->blocks_capacity, n / 4 + 16, sizeof *w->blocks);
    for (size_t i = 0; i + 1 < n && ok; i++) {
        int32_t r = merge_rank(tok, sym[i].id, sym[i + 1].id);
        if (r == NO_ID) continue;
        ok = bucket_push(w, r, (int32_t)i);
        if (r < low) low = r;
        if (r > high) high = r;
    }
    for (int32_t rank = low; rank <= high && ok; rank++) {
        if (w->first_block[rank] == NO_ID) continue;
        size_t n_round = 0;
        for (int32_t b = w->first_block[rank]; b != NO_ID; b = w->blocks[b].next) {
            memcpy(round + n_round, w->blocks[b].position, (size_t)w->blocks[b].count * sizeof *round);
            n_round += (size_t)w->blocks[b].count;
        }
        w->first_block[rank] = w->last_block[rank] = NO_ID;
        int32_t left = tok->merges[3 * rank], right = tok->merges[3 * rank + 1], id = tok->merges[3 * rank + 2];
        if (left == right) {
            bool sorted = true;
            for (size_t k = 1; k < n_round && sorted; k++) sorted = round[k - 1] < round[k];
            if (!sorted) qsort(round, n_round, sizeof *round, compare_uint32);
        }
        for (size_t k = 0; k < n_round && ok; k++) {
            if (k + PREFETCH_AHEAD < n_round) PREFETCH(&sym[round[k + PREFETCH_AHEAD]]);
            int32_t p = (int32_t)round[k];
            if (!bpe_merge_at(sym, p, left, right, id)) continue;
            int32_t before = sym[p].prev, after = sym[p].next;
            if (before != NO_ID) {
                int32_t r = merge_rank(tok, sym[before].id, id);
                if (r != NO_ID) {
                    ok = bucket_push(w, r, before);
                    if (r > high) high = r;
                }
            }
            if (after != NO_ID && ok) {
                int32_t r = merge_rank(tok, id, sym[after].id);
                if (r != NO_ID) {
                    ok = bucket_push(w, r, p);
                    if (r > high) high = r;
                }
            }
        }
    }
    if (!ok) { /* leave the lists empty for the next call */
        for (int32_t r = 0; r < tok->merge_count; r++) w->first_block[r] = w->last_block[r] = NO_ID;
    }
    return ok;
}

/* Merges ids[0..n) in place; returns the new count, or SIZE_MAX when out of
 * memory. n < 2^31. */
static size_t bpe_merge(const tc_tokenizer *tok, int32_t *ids, size_t n, bpe_work *w) {
    if (n <= SMALL_WORD) return bpe_merge_small(tok, ids, n);
    /* Every round holds distinct positions (a pair, once changed, never
     * comes back at the same place), so n bounds it. */
    if (!reserve((void **)&w->symbols, &w->symbols_capacity, n, sizeof *w->symbols) ||
        !reserve((void **)&w->round, &w->round_capacity, n, sizeof *w->round))
        return SIZE_MAX;
    bpe_symbol *sym = w->symbols;
    for (size_t i = 0; i < n; i++) {
        sym[i].id = ids[i];
        sym[i].next = i + 1 < n ? (int32_t)(i + 1) : NO_ID;
        sym[i].prev = i > 0 ? (int32_t)(i - 1) : NO_ID;
    }
    bool ok = tok->monotone ? bpe_merge_buckets(tok, n, w) : bpe_merge_heap(tok, n, w);
    if (!ok) return SIZE_MAX;
    size_t out = 0;
    for (int32_t p = 0; p != NO_ID; p = sym[p].next) ids[out++] = sym[p].id;
    return out;
}

struct encode_state {
    bytes_map cache; /* piece bytes -> offset in pool (the text's own bytes are the keys) */
    bool cache_ready;
    id_buffer pool; /* per cached piece: count, then ids */
    id_buffer word;
    bpe_work w;
};

encode_state *tc_encode_state_new(void) { return calloc(1, sizeof(encode_state)); }

void tc_encode_state_free(encode_state *st) {
    if (!st) return;
    if (st->cache_ready) bytes_map_free(&st->cache);
    free(st->pool.ids);
    free(st->word.ids);
    bpe_work_free(&st->w);
    free(st);
}

/* Merges the symbols in st->word and appends the result to out. */
static bool merge_word(const tc_tokenizer *tok, encode_state *st, id_buffer *out) {
    if (st->word.count == 0) return true; /* an empty text */
    size_t n = bpe_merge(tok, st->word.ids, st->word.count, &st->w);
    if (n == SIZE_MAX || !id_buffer_reserve(out, n)) return false;
    memcpy(out->ids + out->count, st->word.ids, n * sizeof *st->word.ids);
    out->count += n;
    return true;
}

/* The whole section as one sequence of bytes. */
static bool encode_bytes_whole(const tc_tokenizer *tok, encode_state *st, const unsigned char *s, size_t len,
                               id_buffer *out) {
    st->word.count = 0;
    if (!id_buffer_reserve(&st->word, len)) return false;
    for (size_t i = 0; i < len; i++) st->word.ids[i] = tok->byte_id[s[i]];
    st->word.count = len;
    return merge_word(tok, st, out);
}

/* SentencePiece: the section (spaces already written as " ") is one word
 * whose symbols are characters, or the byte tokens of a character that is
 * not a token (byte fallback). */
static bool encode_characters_whole(const tc_tokenizer *tok, encode_state *st, const unsigned char *s, size_t len,
                                    id_buffer *out) {
    st->word.count = 0;
    if (!id_buffer_reserve(&st->word, len)) return false;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t l = s[i] < 0x80 ? 1 : tc_utf8_decode(s + i, len - i, &cp);
        int32_t id = u64_map_get(&tok->char_id, char_key(s + i, l));
        if (id != NO_ID) {
            st->word.ids[n++] = id;
        } else {
            for (size_t k = 0; k < l; k++) st->word.ids[n++] = tok->byte_id[s[i + k]];
        }
        i += l;
    }
    st->word.count = n;
    return merge_word(tok, st, out);
}

/* SentencePiece's words when they can be cut: from a run of spaces to the
 * next one. */
static size_t space_word_end(const unsigned char *s, size_t n, size_t i) {
    while (i < n && s[i] == ' ') i++;
    while (i < n && s[i] != ' ') i++;
    return i;
}

/* Pre-split encoding: each piece is merged once and its ids cached (the
 * cache lives for one text, keyed by the bytes of the text itself). */
static bool encode_pieces(const tc_tokenizer *tok, encode_state *st, const unsigned char *s, size_t len,
                          id_buffer *out) {
    if (!st->cache_ready) {
        if (!bytes_map_init(&st->cache, 4096)) return false;
        st->cache_ready = true;
    }
    piece_end_fn piece_end = tok->sentencepiece ? space_word_end : tc_piece_end_for(tok->pattern);
    bool ok = id_buffer_reserve(out, len / 3 + 16);
    for (size_t i = 0; i < len && ok;) {
        size_t end = tok->pattern == SPLIT_GPT2 ? tc_gpt2_piece_end(s, len, i) : piece_end(s, len, i);
        size_t piece = end - i;
        if (piece == 1 && !tok->sentencepiece) {
            ok = id_buffer_reserve(out, 1);
            if (ok) out->ids[out->count++] = tok->byte_id[s[i]];
            i = end;
            continue;
        }
        uint64_t hash = hash_bytes(s + i, piece);
        int32_t e = bytes_map_find(&st->cache, s + i, piece, hash);
        if (e != NO_ID) {
            const int32_t *cached = st->pool.ids + st->cache.entries[e].value;
            size_t n = (size_t)cached[0];
            ok = id_buffer_reserve(out, n);
            if (ok) {
                memcpy(out->ids + out->count, cached + 1, n * sizeof *cached);
                out->count += n;
            }
            i = end;
            continue;
        }
        size_t before = out->count;
        int32_t whole = tok->ignore_merges ? bytes_map_find(&tok->by_bytes, s + i, piece, hash) : NO_ID;
        if (whole != NO_ID) {
            ok = id_buffer_reserve(out, 1);
            if (ok) out->ids[out->count++] = tok->by_bytes.entries[whole].value;
        } else if (tok->sentencepiece) {
            ok = encode_characters_whole(tok, st, s + i, piece, out);
        } else {
            st->word.count = 0;
            ok = id_buffer_reserve(&st->word, piece);
            if (!ok) break;
            for (size_t k = 0; k < piece; k++) st->word.ids[k] = tok->byte_id[s[i + k]];
            st->word.count = piece;
            ok = merge_word(tok, st, out);
        }
        size_t n = out->count - before;
        if (ok && st->cache.count < WORD_CACHE_LIMIT && st->pool.count + n + 1 <= (size_t)INT32_MAX) {
            ok = id_buffer_reserve(&st->pool, n + 1) &&
                 bytes_map_add(&st->cache, s + i, piece, hash, (int32_t)st->pool.count) != NO_ID;
            if (ok) {
                st->pool.ids[st->pool.count] = (int32_t)n;
                memcpy(st->pool.ids + st->pool.count + 1, out->ids + before, n * sizeof *out->ids);
                st->pool.count += n + 1;
            }
        }
        i = end;
    }
    return ok;
}

bool tc_encode_section(const tc_tokenizer *tok, encode_state *st, const unsigned char *s, size_t len,
                       id_buffer *out) {
    if (tok->sentencepiece && !tok->words_at_spaces) return encode_characters_whole(tok, st, s, len, out);
    if (tok->sentencepiece) return encode_pieces(tok, st, s, len, out);
    if (tok->pattern != SPLIT_NONE) return encode_pieces(tok, st, s, len, out);
    return encode_bytes_whole(tok, st, s, len, out);
}

static tc_status encode_chars(const tc_tokenizer *tok, const unsigned char *s, size_t len, id_buffer *out) {
    if (!id_buffer_reserve(out, len))
        return tc_fail(tok->ctx, TC_ERROR_MEMORY, "encode: out of memory for %zu ids", len);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int32_t id;
        size_t l = 1;
        uint32_t cp = s[i];
        if (s[i] < 0x80) {
            id = tok->byte_id[s[i]];
        } else {
            l = tc_utf8_decode(s + i, len - i, &cp);
            id = l == 1 ? tok->byte_id[s[i]] : u64_map_get(&tok->char_id, char_key(s + i, l));
        }
        if (id == NO_ID) {
            if (cp == TC_UTF8_INVALID)
                return tc_fail(tok->ctx, TC_ERROR_ARGUMENT,
                               "encode: byte 0x%02x at byte offset %zu is not in the vocabulary", s[i], i);
            if (cp >= 0x20 && cp != 0x7F)
                return tc_fail(tok->ctx, TC_ERROR_ARGUMENT,
                               "encode: character '%.*s' (U+%04X) at byte offset %zu is not in the "
                               "vocabulary",
                               (int)l, (const char *)s + i, (unsigned)cp, i);
            return tc_fail(tok->ctx, TC_ERROR_ARGUMENT,
                           "encode: character U+%04X at byte offset %zu is not in the vocabulary",
                           (unsigned)cp, i);
        }
        out->ids[n++] = id;
        i += l;
    }
    out->count = n;
    return TC_OK;
}

tc_status tc_tokenizer_encode(const tc_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *count) {
    if (!tok) return TC_ERROR_ARGUMENT;
    if (!ids || !count)
        return tc_fail(tok->ctx, TC_ERROR_ARGUMENT, "encode: ids and count must not be NULL");
    *ids = NULL;
    *count = 0;
    if (!text && len > 0)
        return tc_fail(tok->ctx, TC_ERROR_ARGUMENT, "encode: text is NULL with len %zu", len);
    if (len > MAX_TEXT_BYTES)
        return tc_fail(tok->ctx, TC_ERROR_ARGUMENT,
                       "encode: text of %zu bytes is over the limit of %zu bytes", len, MAX_TEXT_BYTES);
    const unsigned char *s = (const unsigned char *)text;
    id_buffer out = {NULL, 0, 0};
    tc_status status;
    if (tok->kind == TC_TOKENIZER_CHAR) {
        status = encode_chars(tok, s, len, &out);
    } else if (tok->special_count > 0 || tok->nfc || tok->sentencepiece) {
        status = tc_encode_sections(tok, s, len, &out);
    } else {
        encode_state *st = tc_encode_state_new();
        status = st && tc_encode_section(tok, st, s, len, &out)
                     ? TC_OK
                     : tc_fail(tok->ctx, TC_ERROR_MEMORY, "encode: out of memory encoding %zu bytes", len);
        tc_encode_state_free(st);
    }
    if (status == TC_OK && !out.ids) {
        out.ids = malloc(sizeof *out.ids);
        if (!out.ids) status = tc_fail(tok->ctx, TC_ERROR_MEMORY, "encode: out of memory");
    }
    if (status != TC_OK) {
        free(out.ids);
        return status;
    }
    if (out.count > 0 && out.capacity > out.count + out.count / 4) {
        int32_t *smaller = realloc(out.ids, out.count * sizeof *out.ids);
        if (smaller) out.ids = smaller;
    }
    *ids = out.ids;
    *count = out.count;
    return TC_OK;
}

void tc_tokenizer_free_ids(int32_t *ids) { free(ids); }
