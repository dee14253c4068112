/*
 * cpu_rows.h: row helpers the fused kernels share (cpu_norm.c,
 * cpu_attention.c, cpu_cross_entropy.c): lane sums in a fixed order, the
 * ragged end of a row in one vector, exp(x - shift) over a row, and the
 * grain of their parallel loops.
 *
 * The float32 rows keep a row's ragged end in one masked vector: lanes at
 * and past the row's visible count are computed on whatever the tile holds
 * there and then replaced (by the running max, or by 0), so a row costs
 * whole-vector work only. Where the vector would run past the tile row
 * (keys not a multiple of SIMD_LANES) it goes through a padded copy. The
 * results are those of the element-by-element definitions: the max is
 * exact in any order, and the sum is in a fixed order (lane partials, then
 * lanes_tree_sum).
 */
#ifndef TRICYCLE_CPU_ROWS_H
#define TRICYCLE_CPU_ROWS_H

#include "cpu_simd.h"

#include <math.h>
#include <string.h>

/* v's lanes rearranged: lane k gets lane index[k] (constants). */
#ifdef __clang__
#define LANES_SHUFFLE(v, ...) __builtin_shufflevector(v, v, __VA_ARGS__)
#else
#define LANES_SHUFFLE(v, ...) __builtin_shuffle(v, (simd_i32){__VA_ARGS__})
#endif

/* The lanes of v summed pairwise (lane k of the lower half plus lane k of
 * the upper half, then the same on the quarters, ...): a fixed order,
 * shorter than a chain. */
SIMD_INLINE float lanes_tree_sum(simd_f32 v) {
    v += LANES_SHUFFLE(v, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
    v += LANES_SHUFFLE(v, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7);
    v += LANES_SHUFFLE(v, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
    v += LANES_SHUFFLE(v, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    return v[0];
}

/* x[i] = exp(x[i] - shift) for i < n; returns the sum of the new values,
 * in order. */
static inline double exp_shift_double(double *x, int64_t n, double shift) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = exp(x[i] - shift);
        sum += x[i];
    }
    return sum;
}

/* A grain giving chunks of about `work` multiply-adds when one item costs
 * `item_cost`. */
static inline int64_t grain_for(int64_t item_cost, int64_t work) {
    int64_t grain = work / (item_cost > 0 ? item_cost : 1);
    return grain > 0 ? grain : 1;
}

/* Multiply-adds per chunk of the row loops. */
#define CHUNK_WORK ((int64_t)1 << 15)

/* Lane k holds k. */
static const simd_i32 lane_index = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* The vector of the `count` (< SIMD_LANES) floats at x; lanes from `count`
 * on are unspecified. `room` is how many floats may be read at x. */
SIMD_INLINE simd_f32 load_ragged(const float *x, int64_t count, int64_t room) {
    if (room >= SIMD_LANES) return simd_load(x);
    float padded[SIMD_LANES] = {0};
    memcpy(padded, x, sizeof(float) * (size_t)count);
    return simd_load(padded);
}

/* Stores the first `count` (< SIMD_LANES) lanes of v at x, and the others
 * too (v holds zeros there) when `room` floats may be written. Returns how
 * many floats it wrote. */
SIMD_INLINE int64_t store_ragged(float *x, simd_f32 v, int64_t count, int64_t room) {
    if (room >= SIMD_LANES) {
        simd_store(x, v);
        return SIMD_LANES;
    }
    float padded[SIMD_LANES];
    simd_store(padded, v);
    memcpy(x, padded, sizeof(float) * (size_t)count);
    return count;
}

/* x[0 .. n) = 0, in whole vectors where they fit. */
SIMD_INLINE void clear_floats(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + SIMD_LANES <= n; i += SIMD_LANES) simd_store(x + i, simd_splat(0.0f));
    for (; i < n; i++) x[i] = 0;
}

/* row[j] = exp(row[j] - shift) for j < n, 0 for n <= j < keys; returns the
 * lane partial sums of the new values. */
SIMD_INLINE simd_f32 row_exp_shift(float *row, int64_t n, int64_t keys, float shift) {
    simd_f32 total = {0};
    int64_t i = 0;
    for (; i + SIMD_LANES <= n; i += SIMD_LANES) {
        simd_f32 e = simd_exp(simd_load(row + i) - shift);
        simd_store(row + i, e);
        total += e;
    }
    if (i < n) {
        simd_f32 e = simd_exp(load_ragged(row + i, n - i, keys - i) - shift);
        e = simd_select(lane_index < (int32_t)(n - i), e, simd_splat(0.0f));
        total += e;
        i += store_ragged(row + i, e, n - i, keys - i);
    }
    clear_floats(row + i, keys - i);
    return total;
}

#endif
