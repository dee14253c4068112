/*
 * cpu_softmax.c: softmax and log-softmax over one dim of a contiguous
 * tensor, with their backward, written side by side.
 */
#include "cpu_backend.h"

#include <math.h>
#include <tgmath.h>

static void split_at(const tc_tensor *t, int dim, int64_t *outer, int64_t *size, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < dim; d++) *outer *= t->shape[d];
    for (int d = dim + 1; d < t->ndim; d++) *inner *= t->shape[d];
    *size = t->ndim ? t->shape[dim] : 1;
}

#define SOFTMAX_FN(E, T)                                                                                           \
    static void softmax_##T(const T *x, T *y, int64_t outer, int64_t size, int64_t inner, bool log_result) {      \
        for (int64_t o = 0; o < outer; o++)                                                                        \
            for (int64_t j = 0; j < inner; j++) {                                                                  \
                const T *in = x + o * size * inner + j;                                                            \
                T *result = y + o * size * inner + j;                                                              \
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
    static void softmax_backward_##T(const T *y, const T *g, T *dx, int64_t outer, int64_t size, int64_t inner,   \
                                     bool log_result) {                                                            \
        for (int64_t o = 0; o < outer; o++)                                                                        \
            for (int64_t j = 0; j < inner; j++) {                                                                  \
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

tc_status cpu_softmax(const tc_tensor *x, int dim, bool log, tc_tensor *out) {
    int64_t outer, size, inner;
    split_at(x, dim, &outer, &size, &inner);
    if (x->dtype == TC_FLOAT32)
        softmax_float(tc_tensor_data_at_offset(x), tc_tensor_data_at_offset(out), outer, size, inner, log);
    else
        softmax_double(tc_tensor_data_at_offset(x), tc_tensor_data_at_offset(out), outer, size, inner, log);
    return TC_OK;
}

tc_status cpu_softmax_backward(const tc_tensor *y, const tc_tensor *grad, int dim, bool log, tc_tensor *grad_x) {
    int64_t outer, size, inner;
    split_at(y, dim, &outer, &size, &inner);
    if (y->dtype == TC_FLOAT32)
        softmax_backward_float(tc_tensor_data_at_offset(y), tc_tensor_data_at_offset(grad),
                               tc_tensor_data_at_offset(grad_x), outer, size, inner, log);
    else
        softmax_backward_double(tc_tensor_data_at_offset(y), tc_tensor_data_at_offset(grad),
                                tc_tensor_data_at_offset(grad_x), outer, size, inner, log);
    return TC_OK;
}
