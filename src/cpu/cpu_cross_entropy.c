/*
 * cpu_cross_entropy.c: softmax cross-entropy, forward beside backward,
 * written once as a macro over the element type (the float32 exponentials
 * vectorised, cpu_rows.h). Rows are independent; the forward writes each
 * row's loss (0 for an ignored row) to a double scratch, summed in row
 * order afterwards, so results are the same bits for any thread count.
 * Contracts are on the slots (backend_slots.h); these are the oracle the
 * CUDA kernels are checked against.
 */
#include "cpu_backend.h"
#include "cpu_rows.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int64_t target_at(tc_dtype dtype, const void *targets, int64_t i) {
    return dtype == TC_INT32 ? (int64_t)((const int32_t *)targets)[i] : ((const int64_t *)targets)[i];
}

/* x[i] = exp(x[i] - shift) for i < n; returns the sum of the new values
 * (lane partials, then the lanes pairwise). */
static SIMD_CLONES double exp_shift_float(float *x, int64_t n, double shift) {
    return (double)lanes_tree_sum(row_exp_shift(x, n, n, (float)shift));
}

typedef struct cross_entropy_job {
    const void *logits, *targets, *lse_in;
    tc_dtype target_dtype;
    int64_t classes, ignore_index;
    double scale;
    void *lse, *dlogits;
    double *row_loss;
    int failed;
} cross_entropy_job;

#define CROSS_ENTROPY_FNS(E, T)                                                                                      \
    static void cross_entropy_forward_rows_##T(int64_t begin, int64_t end, void *argument) {                         \
        cross_entropy_job *job = argument;                                                                           \
        int64_t classes = job->classes;                                                                              \
        T *buffer = malloc(sizeof(T) * (size_t)classes);                                                             \
        if (!buffer) {                                                                                               \
            __atomic_store_n(&job->failed, 1, __ATOMIC_RELAXED); /* any chunk may set it */                          \
            return;                                                                                                  \
        }                                                                                                            \
        for (int64_t r = begin; r < end; r++) {                                                                      \
            const T *row = (const T *)job->logits + r * classes;                                                     \
            T max = row[0];                                                                                          \
            for (int64_t c = 1; c < classes; c++)                                                                    \
                if (row[c] > max) max = row[c];                                                                      \
            memcpy(buffer, row, sizeof(T) * (size_t)classes);                                                        \
            double l = (double)max + log(exp_shift_##T(buffer, classes, (double)max));                               \
            ((T *)job->lse)[r] = (T)l;                                                                               \
            int64_t t = target_at(job->target_dtype, job->targets, r);                                               \
            job->row_loss[r] = t == job->ignore_index ? 0.0 : l - (double)row[t];                                    \
        }                                                                                                            \
        free(buffer);                                                                                                \
    }                                                                                                                \
    static void cross_entropy_backward_rows_##T(int64_t begin, int64_t end, void *argument) {                        \
        cross_entropy_job *job = argument;                                                                           \
        int64_t classes = job->classes;                                                                              \
        for (int64_t r = begin; r < end; r++) {                                                                      \
            const T *row = (const T *)job->logits + r * classes;                                                     \
            T *d = (T *)job->dlogits + r * classes;                                                                  \
            int64_t t = target_at(job->target_dtype, job->targets, r);                                               \
            if (t == job->ignore_index) {                                                                            \
                memset(d, 0, sizeof(T) * (size_t)classes);                                                           \
                continue;                                                                                            \
            }                                                                                                        \
            memcpy(d, row, sizeof(T) * (size_t)classes);                                                             \
            exp_shift_##T(d, classes, (double)((const T *)job->lse_in)[r]);                                          \
            T scale = (T)job->scale;                                                                                 \
            for (int64_t c = 0; c < classes; c++) d[c] *= scale;                                                     \
            d[t] = (T)((double)d[t] - job->scale);                                                                   \
        }                                                                                                            \
    }
FLOAT_DTYPES(CROSS_ENTROPY_FNS)

tc_status cpu_cross_entropy_forward(tc_context *ctx, tc_dtype dtype, const void *logits, tc_dtype target_dtype,
                                    const void *targets, int64_t rows, int64_t classes, int64_t ignore_index,
                                    void *lse, double *loss_sum, int64_t *count) {
    double *row_loss = tc_malloc(ctx, sizeof(double) * (size_t)rows);
    if (!row_loss) return TC_ERROR_MEMORY;
    cross_entropy_job job = {.logits = logits, .targets = targets, .target_dtype = target_dtype, .classes = classes,
                             .ignore_index = ignore_index, .lse = lse, .row_loss = row_loss};
    cpu_parallel_for(ctx, rows, grain_for(4 * classes, CHUNK_WORK),
                     dtype == TC_FLOAT32 ? cross_entropy_forward_rows_float : cross_entropy_forward_rows_double, &job);
    double total = 0;
    int64_t kept = 0;
    for (int64_t r = 0; r < rows; r++) {
        total += row_loss[r];
        kept += target_at(target_dtype, targets, r) != ignore_index;
    }
    tc_free(row_loss);
    if (job.failed) return tc_fail(ctx, TC_ERROR_MEMORY, "cross_entropy: out of memory for a row buffer");
    *loss_sum = total;
    *count = kept;
    return TC_OK;
}

tc_status cpu_cross_entropy_backward(tc_context *ctx, tc_dtype dtype, const void *logits, tc_dtype target_dtype,
                                     const void *targets, const void *lse, int64_t rows, int64_t classes,
                                     int64_t ignore_index, double scale, void *dlogits) {
    cross_entropy_job job = {.logits = logits, .targets = targets, .lse_in = lse, .target_dtype = target_dtype,
                             .classes = classes, .ignore_index = ignore_index, .scale = scale, .dlogits = dlogits};
    cpu_parallel_for(ctx, rows, grain_for(4 * classes, CHUNK_WORK),
                     dtype == TC_FLOAT32 ? cross_entropy_backward_rows_float : cross_entropy_backward_rows_double,
                     &job);
    return TC_OK;
}
