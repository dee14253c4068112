/*
 * cpu_reduce.c: reductions over any set of dims. The reduced dims are moved
 * last and made contiguous so every output element reduces one run; when
 * they are the leading dims of a contiguous tensor (a bias gradient: sum
 * over rows) sums run down the columns instead, without the copy. Floating
 * sums accumulate in double. Outputs are split over the context's threads
 * and each output is reduced by one thread in a fixed order, so results do
 * not depend on the thread count.
 */
#include "cpu_backend.h"
#include "cpu_simd.h"

#include <math.h>

typedef double double8 __attribute__((vector_size(64)));
typedef float float8 __attribute__((vector_size(32)));

/* Elements per chunk below which a second thread does not pay. */
#define GRAIN_ELEMENTS 16384

/* Sum of n contiguous floats in double: 16 running lane sums, added up in
 * a fixed order at the end. */
static SIMD_CLONES double sum_floats(const float *x, int64_t n) {
    double8 low = {0}, high = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        float8 a, b;
        memcpy(&a, x + i, sizeof a);
        memcpy(&b, x + i + 8, sizeof b);
        low += __builtin_convertvector(a, double8);
        high += __builtin_convertvector(b, double8);
    }
    double total = 0;
    for (int lane = 0; lane < 8; lane++) total += low[lane] + high[lane];
    for (; i < n; i++) total += (double)x[i];
    return total;
}

static double sum_doubles(const double *x, int64_t n) {
    double total = 0;
    for (int64_t i = 0; i < n; i++) total += x[i];
    return total;
}

/* An integer sum wraps around as two's complement, exactly (the op layer
 * sums integers as int64, so the result is the int64 sum modulo 2^64): the
 * values are added as uint64, where C defines the wrap-around, and
 * converted back. In double it would lose digits past 2^53, and the
 * conversion back of a sum past the range would be undefined. */
typedef struct reduce_job {
    tc_reduce_op op;
    int correction;
} reduce_job;

#define REDUCE_FN(E, T)                                                                                            \
    static void reduce_runs_##T(const reduce_job *job, const T *x, int64_t begin, int64_t end, int64_t length,    \
                                void *out) {                                                                       \
        for (int64_t r = begin; r < end; r++) {                                                                    \
            const T *run = x + r * length;                                                                         \
            switch (job->op) {                                                                                     \
            case TC_REDUCE_SUM:                                                                                    \
            case TC_REDUCE_MEAN: {                                                                                 \
                if (E != TC_FLOAT32 && E != TC_FLOAT64) { /* integers: see above */                               \
                    uint64_t total = 0;                                                                            \
                    for (int64_t i = 0; i < length; i++) total += (uint64_t)run[i];                                \
                    ((T *)out)[r] = (T)total;                                                                      \
                    break;                                                                                         \
                }                                                                                                  \
                double sum = E == TC_FLOAT32 ? sum_floats((const float *)(const void *)run, length)                \
                                             : sum_doubles((const double *)(const void *)run, length);             \
                if (job->op == TC_REDUCE_MEAN) sum /= (double)length;                                              \
                ((T *)out)[r] = (T)sum;                                                                            \
                break;                                                                                             \
            }                                                                                                      \
            case TC_REDUCE_VAR: {                                                                                  \
                double mean = 0, squares = 0;                                                                      \
                for (int64_t i = 0; i < length; i++) mean += (double)run[i];                                       \
                mean /= (double)length;                                                                            \
                for (int64_t i = 0; i < length; i++) squares += ((double)run[i] - mean) * ((double)run[i] - mean); \
                double denominator = (double)(length - job->correction);                                           \
                ((T *)out)[r] = (T)(denominator > 0 ? squares / denominator : NAN);                                \
                break;                                                                                             \
            }                                                                                                      \
            case TC_REDUCE_MAX:                                                                                    \
            case TC_REDUCE_MIN: {                                                                                  \
                T best = run[0];                                                                                   \
                bool is_max = job->op == TC_REDUCE_MAX;                                                            \
                for (int64_t i = 1; i < length; i++) {                                                             \
                    T v = run[i];                                                                                  \
                    if (best != best) break; /* NaN propagates */                                                  \
                    if (v != v || (is_max ? v > best : v < best)) best = v;                                        \
                }                                                                                                  \
                ((T *)out)[r] = best;                                                                              \
                break;                                                                                             \
            }                                                                                                      \
            case TC_REDUCE_ARGMAX:                                                                                 \
            case TC_REDUCE_ARGMIN: {                                                                               \
                int64_t best_index = 0;                                                                            \
                T best = run[0];                                                                                   \
                bool is_max = job->op == TC_REDUCE_ARGMAX;                                                         \
                for (int64_t i = 1; i < length && best == best; i++) {                                             \
                    T v = run[i];                                                                                  \
                    if (v != v || (is_max ? v > best : v < best)) {                                                \
                        best = v;                                                                                  \
                        best_index = i;                                                                            \
                    }                                                                                              \
                }                                                                                                  \
                ((int64_t *)out)[r] = best_index;                                                                  \
                break;                                                                                             \
            }                                                                                                      \
            default: break;                                                                                        \
            }                                                                                                      \
        }                                                                                                          \
    }
ALL_DTYPES(REDUCE_FN)

typedef struct runs_job {
    reduce_job job;
    tc_dtype dtype;
    const void *x;
    int64_t length;
    void *out;
} runs_job;

static void reduce_runs_chunk(int64_t begin, int64_t end, void *argument) {
    const runs_job *work = argument;
    switch (work->dtype) {
#define RUNS_CASE(E, T)                                                                                            \
    case E: reduce_runs_##T(&work->job, work->x, begin, end, work->length, work->out); break;
        ALL_DTYPES(RUNS_CASE)
#undef RUNS_CASE
    default: break;
    }
}

/* ---- sums down the columns of a contiguous [rows, cols] ---- */

#define COLUMN_BLOCK 64

typedef struct columns_job {
    tc_dtype dtype;
    const void *x;
    int64_t rows, cols;
    bool mean;
    void *out;
} columns_job;

/* Columns [begin, end): each column's rows are added in order in double. */
static SIMD_CLONES void column_sums_float(const float *x, int64_t rows, int64_t cols, int64_t begin, int64_t end,
                                          bool mean, float *out) {
    for (int64_t first = begin; first < end; first += COLUMN_BLOCK) {
        int64_t width = end - first < COLUMN_BLOCK ? end - first : COLUMN_BLOCK;
        double8 sums[COLUMN_BLOCK / 8];
        double tail[COLUMN_BLOCK];
        memset(sums, 0, sizeof sums);
        memset(tail, 0, sizeof tail);
        int64_t vectors = width / 8;
        for (int64_t r = 0; r < rows; r++) {
            const float *row = x + r * cols + first;
            for (int64_t v = 0; v < vectors; v++) {
                float8 values;
                memcpy(&values, row + v * 8, sizeof values);
                sums[v] += __builtin_convertvector(values, double8);
            }
            for (int64_t j = vectors * 8; j < width; j++) tail[j] += (double)row[j];
        }
        for (int64_t j = 0; j < width; j++) {
            double sum = j < vectors * 8 ? sums[j / 8][j % 8] : tail[j];
            out[first + j] = (float)(mean ? sum / (double)rows : sum);
        }
    }
}

static void column_sums_double(const double *x, int64_t rows, int64_t cols, int64_t begin, int64_t end, bool mean,
                               double *out) {
    for (int64_t first = begin; first < end; first += COLUMN_BLOCK) {
        int64_t width = end - first < COLUMN_BLOCK ? end - first : COLUMN_BLOCK;
        double sums[COLUMN_BLOCK] = {0};
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < width; j++) sums[j] += x[r * cols + first + j];
        for (int64_t j = 0; j < width; j++) out[first + j] = mean ? sums[j] / (double)rows : sums[j];
    }
}

static void column_sums_chunk(int64_t begin, int64_t end, void *argument) {
    const columns_job *work = argument;
    if (work->dtype == TC_FLOAT32)
        column_sums_float(work->x, work->rows, work->cols, begin, end, work->mean, work->out);
    else
        column_sums_double(work->x, work->rows, work->cols, begin, end, work->mean, work->out);
}

/* True when x is contiguous and the reduced dims are exactly its leading
 * ones: then it is [rows, cols] with the rows reduced. */
static bool leading_dims_reduced(const tc_tensor *x, uint32_t mask, int64_t *rows, int64_t *cols) {
    if (!tc_tensor_is_contiguous(x)) return false;
    int d = 0;
    *rows = 1;
    *cols = 1;
    while (d < x->ndim && (mask & (1u << d))) *rows *= x->shape[d++];
    if (d == 0) return false;
    for (; d < x->ndim; d++) {
        if (mask & (1u << d)) return false;
        *cols *= x->shape[d];
    }
    return *cols > 1;
}

tc_status cpu_reduce(tc_reduce_op op, const tc_tensor *x, uint32_t mask, int correction, tc_tensor *out) {
    /* A view of x with kept dims first, reduced dims last. */
    int64_t shape[TC_MAX_DIMS], strides[TC_MAX_DIMS];
    int n = 0;
    int64_t runs = 1, length = 1;
    for (int d = 0; d < x->ndim; d++)
        if (!(mask & (1u << d))) {
            shape[n] = x->shape[d];
            strides[n++] = x->strides[d];
            runs *= x->shape[d];
        }
    for (int d = 0; d < x->ndim; d++)
        if (mask & (1u << d)) {
            shape[n] = x->shape[d];
            strides[n++] = x->strides[d];
            length *= x->shape[d];
        }
    if (runs == 0) return TC_OK;
    if (length == 0) {
        if (op == TC_REDUCE_SUM) return cpu_fill(out, 0.0);
        if (op == TC_REDUCE_MEAN || op == TC_REDUCE_VAR) return cpu_fill(out, NAN);
        return tc_fail(x->ctx, TC_ERROR_SHAPE, "%s: cannot reduce over an empty dim (shape %s)",
                       op == TC_REDUCE_MAX || op == TC_REDUCE_ARGMAX ? "max" : "min", TC_SHAPE(x));
    }
    int64_t rows, cols;
    if ((op == TC_REDUCE_SUM || op == TC_REDUCE_MEAN) && tc_dtype_is_floating(x->dtype) &&
        leading_dims_reduced(x, mask, &rows, &cols)) {
        columns_job work = {x->dtype, tc_tensor_data_at_offset(x), rows, cols, op == TC_REDUCE_MEAN,
                            tc_tensor_data_at_offset(out)};
        int64_t grain = GRAIN_ELEMENTS / rows > COLUMN_BLOCK ? GRAIN_ELEMENTS / rows : COLUMN_BLOCK;
        cpu_parallel_for(x->ctx, cols, grain, column_sums_chunk, &work);
        return TC_OK;
    }
    tc_tensor *permuted, *packed;
    TC_TRY(tc_tensor_alias(x, n, shape, strides, x->offset, &permuted));
    tc_status status = TC_OK;
    if (tc_tensor_is_contiguous(permuted)) {
        packed = permuted;
    } else {
        status = tc_tensor_new(x->ctx, x->dtype, TC_CPU, n, shape, &packed);
        if (status == TC_OK) status = cpu_copy(packed, permuted);
        tc_tensor_release(permuted);
        if (status != TC_OK) return status;
    }
    /* out is contiguous */
    runs_job work = {{op, correction}, x->dtype, tc_tensor_data_at_offset(packed), length,
                     tc_tensor_data_at_offset(out)};
    int64_t grain = GRAIN_ELEMENTS / length > 1 ? GRAIN_ELEMENTS / length : 1;
    cpu_parallel_for(x->ctx, runs, grain, reduce_runs_chunk, &work);
    tc_tensor_release(packed);
    return status;
}
