/*
 * tokenizer_train.c: BPE training (tc_bpe_train).
 */
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- BPE training -------------------------------------------------------
 *
 * The text becomes one array of symbols (token ids) with next/prev links;
 * with pre-splitting, each distinct word appears once and its symbols carry
 * the word's count as their weight. Every adjacent pair has a record with
 * its weighted count and the positions where it was seen (some of which
 * may since have changed: they are checked when used). A max-heap orders
 * (count, pair) with lazy deletion: whenever a pair's count changes during
 * a step, an entry with the new count is pushed once the step ends, and
 * entries whose count no longer matches are dropped when they surface.
 * Applying a merge visits only the positions of the merged pair and adjusts
 * the counts of the neighbouring pairs, so a step costs what it changes.
 */

typedef struct train_pair {
    int32_t left, right;
    int64_t count;
    int32_t *positions;
    size_t n_positions, capacity;
    int32_t dirty_step; /* the last step that changed count */
} train_pair;

typedef struct heap_item {
    int64_t count;
    uint64_t pair; /* pair_key(left, right): smaller wins ties */
} heap_item;

typedef struct trainer {
    int32_t *symbol; /* NO_ID once merged into the symbol on its left */
    int32_t *next, *prev;
    int32_t *weight; /* NULL: every symbol weighs 1 */
    size_t n;
    train_pair *pairs;
    size_t n_pairs, pairs_capacity;
    u64_map pair_index;
    heap_item *heap;
    size_t n_heap, heap_capacity;
    int32_t *dirty;
    size_t n_dirty, dirty_capacity;
} trainer;

static void trainer_free(trainer *t) {
    free(t->symbol);
    free(t->next);
    free(t->prev);
    free(t->weight);
    for (size_t i = 0; i < t->n_pairs; i++) free(t->pairs[i].positions);
    free(t->pairs);
    u64_map_free(&t->pair_index);
    free(t->heap);
    free(t->dirty);
}

static inline bool heap_before(const heap_item *a, const heap_item *b) {
    return a->count > b->count || (a->count == b->count && a->pair < b->pair);
}

static bool heap_push(trainer *t, heap_item item) {
    if (!reserve((void **)&t->heap, &t->heap_capacity, t->n_heap + 1, sizeof *t->heap)) return false;
    size_t i = t->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_before(&item, &t->heap[parent])) break;
        t->heap[i] = t->heap[parent];
        i = parent;
    }
    t->heap[i] = item;
    return true;
}

static void heap_pop(trainer *t) {
    heap_item last = t->heap[--t->n_heap];
    size_t n = t->n_heap, i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && heap_before(&t->heap[child + 1], &t->heap[child])) child++;
        if (!heap_before(&t->heap[child], &last)) break;
        t->heap[i] = t->heap[child];
        i = child;
    }
    if (n > 0) t->heap[i] = last;
}

/* count(left, right) += delta, remembering `position` (unless NO_ID) as a
 * place where the pair now occurs. */
static bool trainer_add(trainer *t, int32_t left, int32_t right, int64_t delta, int32_t position, int32_t step) {
    bool found;
    int32_t *slot = u64_map_slot(&t->pair_index, pair_key(left, right), &found);
    if (!slot) return false;
    if (!found) {
        if (!reserve((void **)&t->pairs, &t->pairs_capacity, t->n_pairs + 1, sizeof *t->pairs)) return false;
        *slot = (int32_t)t->n_pairs;
        t->pairs[t->n_pairs++] = (train_pair){left, right, 0, NULL, 0, 0, -2};
    }
    int32_t index = *slot;
    train_pair *p = &t->pairs[index];
    p->count += delta;
    if (position != NO_ID) {
        if (!reserve((void **)&p->positions, &p->capacity, p->n_positions + 1, sizeof *p->positions)) return false;
        p->positions[p->n_positions++] = position;
    }
    if (p->dirty_step != step) {
        p->dirty_step = step;
        if (!reserve((void **)&t->dirty, &t->dirty_capacity, t->n_dirty + 1, sizeof *t->dirty)) return false;
        t->dirty[t->n_dirty++] = index;
    }
    return true;
}

/* Pushes the new counts of the pairs changed by the step. */
static bool trainer_flush(trainer *t) {
    for (size_t i = 0; i < t->n_dirty; i++) {
        const train_pair *p = &t->pairs[t->dirty[i]];
        if (p->count > 0 && !heap_push(t, (heap_item){p->count, pair_key(p->left, p->right)})) return false;
    }
    t->n_dirty = 0;
    return true;
}

static int compare_int32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Applies merge `step` (left, right) -> id at every position where the
 * pair still occurs, left to right. */
static bool trainer_merge(trainer *t, int32_t index, int32_t id, int32_t step) {
    train_pair *best = &t->pairs[index];
    int32_t left = best->left, right = best->right;
    /* No position is added to this pair while it merges (every new pair
     * holds `id`), so its list can be taken over. */
    int32_t *positions = best->positions;
    size_t n_positions = best->n_positions;
    best->positions = NULL;
    best->n_positions = best->capacity = 0;
    bool sorted = true;
    for (size_t k = 1; k < n_positions && sorted; k++) sorted = positions[k - 1] < positions[k];
    if (!sorted) qsort(positions, n_positions, sizeof *positions, compare_int32);
    bool ok = true;
    for (size_t k = 0; k < n_positions && ok; k++) {
        if (k + PREFETCH_AHEAD < n_positions) {
            PREFETCH(&t->symbol[positions[k + PREFETCH_AHEAD]]);
            PREFETCH(&t->next[positions[k + PREFETCH_AHEAD]]);
        }
        int32_t p = positions[k];
        if (t->symbol[p] != left) continue;
        int32_t q = t->next[p];
        if (q == NO_ID || t->symbol[q] != right) continue;
        int64_t w = t->weight ? t->weight[p] : 1;
        int32_t before = t->prev[p], after = t->next[q];
        if (before != NO_ID) {
            ok = ok && trainer_add(t, t->symbol[before], left, -w, NO_ID, step);
            ok = ok && trainer_add(t, t->symbol[before], id, w, before, step);
        }
        if (after != NO_ID) {
            ok = ok && trainer_add(t, right, t->symbol[after], -w, NO_ID, step);
            ok = ok && trainer_add(t, id, t->symbol[after], w, p, step);
        }
        ok = ok && trainer_add(t, left, right, -w, NO_ID, step);
        t->symbol[p] = id;
        t->symbol[q] = NO_ID;
        t->next[p] = after;
        if (after != NO_ID) t->prev[after] = p;
    }
    free(positions);
    return ok;
}

/* Lays out the symbols: the whole text as one sequence, or each distinct
 * GPT-2 piece once with its count as weight (pieces of one byte have no
 * pairs and are left out). */
static bool trainer_layout(trainer *t, const unsigned char *s, size_t len, bool split) {
    if (!split) {
        t->n = len;
        t->symbol = malloc((len ? len : 1) * sizeof *t->symbol);
        t->next = malloc((len ? len : 1) * sizeof *t->next);
        t->prev = malloc((len ? len : 1) * sizeof *t->prev);
        if (!t->symbol || !t->next || !t->prev) return false;
        for (size_t i = 0; i < len; i++) {
            t->symbol[i] = s[i];
            t->next[i] = i + 1 < len ? (int32_t)(i + 1) : NO_ID;
            t->prev[i] = i > 0 ? (int32_t)(i - 1) : NO_ID;
        }
        return true;
    }
    bytes_map words;
    if (!bytes_map_init(&words, 1024)) return false;
    int32_t *counts = NULL;
    size_t counts_capacity = 0, total = 0;
    bool ok = true;
    for (size_t i = 0; i < len && ok;) {
        size_t end = tc_gpt2_piece_end(s, len, i);
        size_t piece = end - i;
        if (piece >= 2) {
            uint64_t hash = hash_bytes(s + i, piece);
            int32_t e = bytes_map_find(&words, s + i, piece, hash);
            if (e == NO_ID) {
                e = bytes_map_add(&words, s + i, piece, hash, 0);
                ok = e != NO_ID && reserve((void **)&counts, &counts_capacity, words.count, sizeof *counts);
                if (ok) counts[e] = 0;
                total += piece;
            }
            if (ok) counts[e]++;
        }
        i = end;
    }
    if (ok) {
        t->n = total;
        t->symbol = malloc((total ? total : 1) * sizeof *t->symbol);
        t->next = malloc((total ? total : 1) * sizeof *t->next);
        t->prev = malloc((total ? total : 1) * sizeof *t->prev);
        t->weight = malloc((total ? total : 1) * sizeof *t->weight);
        ok = t->symbol && t->next && t->prev && t->weight;
    }
    if (ok) {
        size_t at = 0;
        for (size_t e = 0; e < words.count; e++) {
            const bytes_entry *word = &words.entries[e];
            for (size_t k = 0; k < word->len; k++, at++) {
                t->symbol[at] = word->data[k];
                t->weight[at] = counts[e];
                t->next[at] = k + 1 < word->len ? (int32_t)(at + 1) : NO_ID;
                t->prev[at] = k > 0 ? (int32_t)(at - 1) : NO_ID;
            }
        }
    }
    free(counts);
    bytes_map_free(&words);
    return ok;
}

tc_status tc_bpe_train(tc_context *ctx, const char *text, size_t len, int vocab_size, bool gpt2_split,
                       tc_tokenizer **out) {
    static const char *const fn = "BPETokenizer.train";
    if (!out) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: out must not be NULL", fn);
    *out = NULL;
    if (!text && len > 0) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: text is NULL with len %zu", fn, len);
    if (len > MAX_TEXT_BYTES)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: text of %zu bytes is over the limit of %zu bytes", fn, len,
                       MAX_TEXT_BYTES);
    if (vocab_size < 256)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: vocab_size is %d, must be at least 256 (the byte tokens)", fn,
                       vocab_size);
    tc_tokenizer *tok = tc_tokenizer_create(ctx, fn, TC_TOKENIZER_BPE, gpt2_split);
    if (!tok) return TC_ERROR_MEMORY;
    trainer t;
    memset(&t, 0, sizeof t);
    const unsigned char *s = (const unsigned char *)text;
    bool ok = trainer_layout(&t, s, len, gpt2_split) && u64_map_init(&t.pair_index, 4096);
    for (size_t p = 0; p < t.n && ok; p++) {
        if (t.next[p] != NO_ID)
            ok = trainer_add(&t, t.symbol[p], t.symbol[t.next[p]], t.weight ? t.weight[p] : 1, (int32_t)p, -1);
    }
    ok = ok && trainer_flush(&t);
    size_t merges_capacity = 0;
    int32_t wanted = vocab_size - 256;
    for (int32_t step = 0; step < wanted && ok; step++) {
        int32_t best = NO_ID;
        while (t.n_heap > 0) {
            heap_item top = t.heap[0];
            heap_pop(&t);
            int32_t index = u64_map_get(&t.pair_index, top.pair);
            if (t.pairs[index].count == top.count) {
                best = index;
                break;
            }
        }
        if (best == NO_ID) break; /* no adjacent pair left */
        ok = reserve((void **)&tok->merges, &merges_capacity, 3 * ((size_t)step + 1), sizeof *tok->merges);
        if (!ok) break;
        int32_t id = 256 + step;
        tok->merges[3 * step] = t.pairs[best].left;
        tok->merges[3 * step + 1] = t.pairs[best].right;
        tok->merges[3 * step + 2] = id;
        tok->merge_count = step + 1;
        ok = trainer_merge(&t, best, id, step) && trainer_flush(&t);
    }
    trainer_free(&t);
    tc_status status = TC_OK;
    if (!ok) {
        status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory training on %zu bytes", fn, len);
    } else {
        status = tc_tokenizer_tokens_from_merges(tok, fn);
        if (status == TC_OK) status = tc_tokenizer_index(tok, fn);
    }
    if (status != TC_OK) {
        tc_tokenizer_free(tok);
        return status;
    }
    *out = tok;
    return TC_OK;
}
