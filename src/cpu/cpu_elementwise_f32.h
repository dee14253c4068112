/*
 * cpu_elementwise_f32.h: vectorised float32 loops for the element-wise
 * kernels (cpu_elementwise.c), over contiguous runs. Each returns false for
 * an op it has no fast loop for, touching nothing, so the caller falls back
 * to its generic loop.
 */
#ifndef TRICYCLE_CPU_ELEMENTWISE_F32_H
#define TRICYCLE_CPU_ELEMENTWISE_F32_H

#include "../internal.h"

/* y[i] = op(x[i]) for n contiguous values (x == y allowed). */
bool f32_unary_supported(tc_unary_op op);
void f32_unary(tc_unary_op op, const float *x, float *y, int64_t n);

/* dx[i] = g[i] * op'(x[i]) (some ops use y = op(x)); n contiguous values. */
bool f32_unary_backward_supported(tc_unary_op op);
void f32_unary_backward(tc_unary_op op, const float *x, const float *y, const float *g, float *dx, int64_t n);

/* out[i] = a[i] op b[i] for add, sub, mul, div; a_step / b_step are 1
 * (contiguous) or 0 (one value broadcast). */
bool f32_binary_supported(tc_binary_op op);
void f32_binary(tc_binary_op op, const float *a, int64_t a_step, const float *b, int64_t b_step, float *out,
                int64_t n);

#endif
