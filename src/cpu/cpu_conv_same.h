/*
 * cpu_conv_same.h: float32 convolution without columns (cpu_conv_same.c)
 * for the geometry most layers have: stride 1 with the output the input's
 * size (3x3 with padding 1, 5x5 with 2, 1x1 with 0; any dilation that
 * keeps the size), one group, images of 16 positions or more. ops_conv.c
 * takes it for CPU tensors.
 */
#ifndef TRICYCLE_CPU_CONV_SAME_H
#define TRICYCLE_CPU_CONV_SAME_H

#include "../internal.h"

/* True when the kernels below compute this geometry with `outputs`
 * channels out, in this context, and are expected to be faster than
 * im2col and a matmul: its float32 products go through cpu_sgemm (not the
 * BLAS, not autocast's bf16 GEMM), the stride is 1, the output is the
 * input's size, every size is positive and fits int32 lanes, and the
 * images are not too small for their weight (cpu_conv_same.c says why). */
bool cpu_conv_same_applies(const tc_context *ctx, const tc_conv_geometry *g, int64_t outputs);

/* y [N, O, H, W] = x [N, C, H, W] (*) weight [O, C, kH, kW] + bias [O] (NULL:
 * none), all contiguous, for a geometry cpu_conv_same_applies to (its
 * batch_last is ignored); O = outputs > 0. */
tc_status cpu_conv_same_forward(tc_context *ctx, const tc_conv_geometry *g, int64_t outputs, const float *x,
                                const float *weight, const float *bias, float *y);

/* The gradients of that convolution from dy [N, O, H, W]: dx (x's shape),
 * dweight (weight's) and dbias [O], each overwritten, each NULL when not
 * wanted. */
tc_status cpu_conv_same_backward(tc_context *ctx, const tc_conv_geometry *g, int64_t outputs, const float *x,
                                 const float *weight, const float *dy, float *dx, float *dweight, float *dbias);

#endif
