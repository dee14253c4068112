/*
 * cpu_reduce.c: reductions over any set of dims. The reduced dims are moved
 * last and made contiguous so every output element reduces one run;
 * floating sums accumulate in double.
 */
#include "cpu_backend.h"

#include <math.h>

typedef struct reduce_job {
    tc_reduce_op op;
    int correction;
} reduce_job;

#define REDUCE_FN(E, T)                                                                                            \
    static void reduce_runs_##T(const reduce_job *job, const T *x, int64_t runs, int64_t length, void *out) {     \
        for (int64_t r = 0; r < runs; r++) {                                                                       \
            const T *run = x + r * length;                                                                         \
            switch (job->op) {                                                                                     \
            case TC_REDUCE_SUM:                                                                                    \
            case TC_REDUCE_MEAN: {                                                                                 \
                double sum = 0;                                                                                    \
                for (int64_t i = 0; i < length; i++) sum += (double)run[i];                                        \
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
    reduce_job job = {op, correction};
    const void *data = tc_tensor_data_at_offset(packed);
    void *result = tc_tensor_data_at_offset(out); /* out is contiguous */
    switch (x->dtype) {
#define REDUCE_CASE(E, T)                                                                                          \
    case E: reduce_runs_##T(&job, data, runs, length, result); break;
        ALL_DTYPES(REDUCE_CASE)
#undef REDUCE_CASE
    default: status = tc_fail(x->ctx, TC_ERROR_DTYPE, "reduce: unknown dtype");
    }
    tc_tensor_release(packed);
    return status;
}
