/*
 * cpu_sort.c: sort and topk along the last dim of a contiguous tensor,
 * each row on its own (rows split over the context's threads). Elements
 * become ops_math.h's sort keys paired with their positions; a pair goes
 * before another by key, then by position, so every order is total and
 * stable whatever the algorithm. A full sort is a bottom-up merge sort
 * (runs of 16 by insertion first); a topk of few elements keeps the best k
 * in a heap over one pass, then sorts those k.
 */
#include "cpu_backend.h"
#include "ops_math.h"

#include <stdlib.h>
#include <string.h>

TC_SORT_KEY_HELPERS(static inline)

typedef struct sort_pair {
    uint64_t key;
    int64_t position;
} sort_pair;

static inline bool goes_before(const sort_pair *a, const sort_pair *b) {
    return a->key < b->key || (a->key == b->key && a->position < b->position);
}

/* Rows per chunk aim at this many elements, below which a thread does not pay. */
#define GRAIN_ELEMENTS 16384
/* Sorted runs made by insertion before merging. */
#define INSERTION_RUN 16

typedef struct sort_job {
    const tc_tensor *x;
    bool descending;
    int64_t n, k;
    int64_t *indices;
    int failed; /* a chunk could not get its scratch */
} sort_job;

static void load_keys(const sort_job *job, int64_t row, sort_pair *pairs) {
    int64_t n = job->n;
    const char *base = tc_tensor_data_at_offset(job->x);
    uint64_t flip = job->descending ? UINT64_MAX : 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t key;
        switch (job->x->dtype) {
        case TC_FLOAT32: key = tc_sort_key_of_double(((const float *)base)[row * n + i]); break;
        case TC_FLOAT64: key = tc_sort_key_of_double(((const double *)base)[row * n + i]); break;
        case TC_INT32: key = tc_sort_key_of_int64(((const int32_t *)base)[row * n + i]); break;
        case TC_INT64: key = tc_sort_key_of_int64(((const int64_t *)base)[row * n + i]); break;
        default: key = ((const uint8_t *)base)[row * n + i]; break; /* uint8, bool */
        }
        pairs[i] = (sort_pair){key ^ flip, i};
    }
}

static void insertion_sort(sort_pair *pairs, int64_t n) {
    for (int64_t i = 1; i < n; i++) {
        sort_pair moving = pairs[i];
        int64_t j = i;
        for (; j > 0 && goes_before(&moving, &pairs[j - 1]); j--) pairs[j] = pairs[j - 1];
        pairs[j] = moving;
    }
}

/* Sorts pairs [n] using spare [n]; the result is in pairs. */
static void merge_sort(sort_pair *pairs, sort_pair *spare, int64_t n) {
    for (int64_t lo = 0; lo < n; lo += INSERTION_RUN)
        insertion_sort(pairs + lo, n - lo < INSERTION_RUN ? n - lo : INSERTION_RUN);
    sort_pair *from = pairs, *to = spare;
    for (int64_t width = INSERTION_RUN; width < n; width *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * width) {
            int64_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            int64_t a = lo, b = mid, out = lo;
            while (a < mid && b < hi) to[out++] = goes_before(&from[b], &from[a]) ? from[b++] : from[a++];
            while (a < mid) to[out++] = from[a++];
            while (b < hi) to[out++] = from[b++];
        }
        sort_pair *swap = from;
        from = to;
        to = swap;
    }
    if (from != pairs) memcpy(pairs, from, sizeof *pairs * (size_t)n);
}

/* heap [size] with its last element in order (the one every other goes before) at the root. */
static void sift_down(sort_pair *heap, int64_t size, int64_t at) {
    for (;;) {
        int64_t child = 2 * at + 1;
        if (child >= size) return;
        if (child + 1 < size && goes_before(&heap[child], &heap[child + 1])) child++;
        if (!goes_before(&heap[at], &heap[child])) return;
        sort_pair swap = heap[at];
        heap[at] = heap[child];
        heap[child] = swap;
        at = child;
    }
}

/* The first k of pairs [n] into best [k] (unordered), keeping the last of them at best[0]. */
static void select_first(const sort_pair *pairs, int64_t n, int64_t k, sort_pair *best) {
    memcpy(best, pairs, sizeof *best * (size_t)k);
    for (int64_t at = k / 2 - 1; at >= 0; at--) sift_down(best, k, at);
    for (int64_t i = k; i < n; i++)
        if (goes_before(&pairs[i], &best[0])) {
            best[0] = pairs[i];
            sift_down(best, k, 0);
        }
}

/* A heap pays while k is a small part of the row. */
static bool selects_with_heap(int64_t n, int64_t k) { return k < n && k <= n / 4; }

static void sort_rows(int64_t begin, int64_t end, void *argument) {
    sort_job *job = argument;
    int64_t n = job->n, k = job->k;
    sort_pair *pairs = malloc(sizeof *pairs * (size_t)(2 * n));
    if (!pairs) {
        __atomic_store_n(&job->failed, 1, __ATOMIC_RELAXED); /* any chunk may set it */
        return;
    }
    sort_pair *spare = pairs + n;
    for (int64_t row = begin; row < end; row++) {
        load_keys(job, row, pairs);
        sort_pair *sorted = pairs;
        if (selects_with_heap(n, k)) {
            select_first(pairs, n, k, spare);
            merge_sort(spare, spare + k, k);
            sorted = spare;
        } else {
            merge_sort(pairs, spare, n);
        }
        int64_t *out = job->indices + row * k;
        for (int64_t i = 0; i < k; i++) out[i] = sorted[i].position;
    }
    free(pairs);
}

tc_status cpu_sort(const tc_tensor *x, bool descending, tc_tensor *indices) {
    int64_t n = x->shape[x->ndim - 1], k = indices->shape[indices->ndim - 1];
    sort_job job = {x, descending, n, k, tc_tensor_data_at_offset(indices), 0};
    int64_t rows = tc_tensor_numel(x) / n;
    cpu_parallel_for(x->ctx, rows, GRAIN_ELEMENTS / n + 1, sort_rows, &job);
    if (job.failed) return tc_fail(x->ctx, TC_ERROR_MEMORY, "sort: out of memory for the rows' scratch");
    return TC_OK;
}
