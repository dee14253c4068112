/*
 * cpu_softmax.c: softmax and log-softmax over one dim of a contiguous
 * tensor, with their backward, written side by side. Rows are split over
 * the context's threads (one thread per row, so results do not depend on
 * the thread count); float32 rows along the last dim use the vector exp.
 */
#include "cpu_backend.h"
#include "cpu_simd.h"

#include <math.h>
#include <tgmath.h>

static void split_at(const tc_tensor *t, int dim, int64_t *outer, int64_t *size, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < dim; d++) *outer *= t->shape[d];
    for (int d = dim + 1; d < t->ndim; d++) *inner *= t->shape[d];
    *size = t->ndim ? t->shape[dim] : 1;
}

/* Elements per chunk below which a second thread does not pay. */
#define GRAIN_ELEMENTS 8192

/* y = e^(x - max) over a contiguous float row; returns the sum in double. */
static SIMD_CLONES double exp_shifted_row(const float *x, float max, float *y, int64_t n) {
    simd_f32 shift = simd_splat(max);
    int64_t i = 0;
    for (; i + SIMD_LANES <= n; i += SIMD_LANES) simd_store(y + i, simd_exp(simd_load(x + i) - shift));
    if (i < n) {
        float tail[SIMD_LANES];
        for (int64_t j = 0; j < SIMD_LANES; j++) tail[j] = i + j < n ? x[i + j] : max;
        simd_store(tail, simd_exp(simd_load(tail) - shift));
        memcpy(y + i, tail, (size_t)(n - i) * sizeof(float));
    }
    double sum = 0;
    for (int64_t j = 0; j < n; j++) sum += (double)y[j];
    return sum;
}

static void softmax_row_float(const float *in, float *result, int64_t size, bool log_result) {
    float max = -INFINITY;
    for (int64_t i = 0; i < size; i++)
        if (in[i] > max || in[i] != in[i]) max = in[i];
    if (max == -INFINITY) max = 0;
    double sum = exp_shifted_row(in, max, result, size);
    if (log_result) {
        float log_sum = (float)log(sum);
        for (int64_t i = 0; i < size; i++) result[i] = in[i] - max - log_sum;
    } else {
        float scale = (float)(1.0 / sum);
        for (int64_t i = 0; i < size; i++) result[i] *= scale;
    }
}

/* Rows are numbered o * inner + j; [begin, end) of them. */
#define SOFTMAX_FN(E, T)                                                                                           \
    static void softmax_##T(const T *x, T *y, int64_t begin, int64_t end, int64_t size, int64_t inner,            \
                            bool log_result) {                                                                     \
        for (int64_t row = begin; row < end; row++) {                                                              \
            int64_t o = row / inner, j = row % inner;                                                              \
                const T *in = x + o * size * inner + j;                                                            \
                T *result = y + o * size * inner + j;                                                              \
                if (E == TC_FLOAT32 && inner == 1) {                                                               \
                    softmax_row_float((const float *)(const void *)in, (float *)(void *)result, size, log_result); \
                    continue;                                                                                      \
                }                                                                                                  \
                T max = -INFINITY;                                                                                 \
                for (int64_t i = 0; i < size; i++)                                                                 \
                    if (in[i * inner] > max || in[i * inner] != in[i * inner]) max = in[i * inner];                \
                if (max == -INFINITY) max = 0;                                                                     \
                double sum = 0;                                                                                    \
                for (int64_t i = 0; i < size; i++) sum += (double)exp(in[i * inner] - max);                        \
                if (log_result) {                                                                                  \
                    T log_sum = (T)log(sum);                                                                       \
                    for (int64_t i = 0; i < size; i++) result[i * inner] = in[i * inner] - max - log_sum;          \
                } else {                                                                                           \
                    T scale = (T)(1.0 / sum);                                                                      \
                    for (int64_t i = 0; i < size; i++) result[i * inner] = exp(in[i * inner] - max) * scale;       \
                }                                                                                                  \
            }                                                                                                      \
    }                                                                                                              \
    /* softmax: dx = y * (g - sum(g*y)); log-softmax: dx = g - exp(y) * sum(g). */                               \
    static void softmax_backward_##T(const T *y, const T *g, T *dx, int64_t begin, int64_t end, int64_t size,      \
                                     int64_t inner, bool log_result) {                                             \
        for (int64_t row = begin; row < end; row++) {                                                              \
            int64_t o = row / inner, j = row % inner;                                                              \
                int64_t base = o * size * inner + j;                                                               \
                double dot = 0;                                                                                    \
                for (int64_t i = 0; i < size; i++)                                                                 \
                    dot += log_result ? (double)g[base + i * inner]                                                \
                                      : (double)g[base + i * inner] * (double)y[base + i * inner];                 \
                for (int64_t i = 0; i < size; i++) {                                                               \
                    int64_t at = base + i * inner;                                                                 \
                    dx[at] = log_result ? g[at] - exp(y[at]) * (T)dot : y[at] * (g[at] - (T)dot);                  \
                }                                                                                                  \
            }                                                                                                      \
    }
FLOAT_DTYPES(SOFTMAX_FN)

typedef struct softmax_job {
    bool is_float, log, backward;
    const void *x, *grad; /* x is y for the backward */
    void *out;
    int64_t size, inner;
} softmax_job;

static void softmax_chunk(int64_t begin, int64_t end, void *argument) {
    const softmax_job *job = argument;
    if (job->backward && job->is_float)
        softmax_backward_float(job->x, job->grad, job->out, begin, end, job->size, job->inner, job->log);
    else if (job->backward)
        softmax_backward_double(job->x, job->grad, job->out, begin, end, job->size, job->inner, job->log);
    else if (job->is_float)
        softmax_float(job->x, job->out, begin, end, job->size, job->inner, job->log);
    else
        softmax_double(job->x, job->out, begin, end, job->size, job->inner, job->log);
}

static void run_softmax(tc_context *ctx, softmax_job *job, int64_t outer) {
    int64_t grain = GRAIN_ELEMENTS / (job->size > 0 ? job->size : 1);
    cpu_parallel_for(ctx, outer * job->inner, grain > 1 ? grain : 1, softmax_chunk, job);
}

tc_status cpu_softmax(const tc_tensor *x, int dim, bool log, tc_tensor *out) {
    int64_t outer, size, inner;
    split_at(x, dim, &outer, &size, &inner);
    softmax_job job = {x->dtype == TC_FLOAT32, log, false, tc_tensor_data_at_offset(x), NULL,
                       tc_tensor_data_at_offset(out), size, inner};
    run_softmax(x->ctx, &job, outer);
    return TC_OK;
}

tc_status cpu_softmax_backward(const tc_tensor *y, const tc_tensor *grad, int dim, bool log, tc_tensor *grad_x) {
    int64_t outer, size, inner;
    split_at(y, dim, &outer, &size, &inner);
    softmax_job job = {y->dtype == TC_FLOAT32, log, true, tc_tensor_data_at_offset(y), tc_tensor_data_at_offset(grad),
                       tc_tensor_data_at_offset(grad_x), size, inner};
    run_softmax(y->ctx, &job, outer);
    return TC_OK;
}
