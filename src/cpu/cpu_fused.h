/*
 * cpu_fused.h: CPU kernels of the fused neural-network ops (layer norm, RMS
 * norm, attention, cross-entropy, optimiser steps), forward and backward
 * side by side.
 *
 * ops_fused.c calls these directly for now; the CUDA backend will get slots
 * for them in tc_backend (internal.h) with the same contracts, and these
 * become the CPU entries of those slots.
 *
 * Contracts shared by every kernel: `dtype` is TC_FLOAT32 or TC_FLOAT64 and
 * names the element type of every floating pointer argument; all arrays are
 * contiguous, row-major and already validated by the caller; scratch memory
 * is passed in, so kernels never allocate and cannot fail.
 */
#ifndef TRICYCLE_CPU_FUSED_H
#define TRICYCLE_CPU_FUSED_H

#include "internal.h"

/* Normalises each of `rows` rows of `cols` values: layer norm when !rms
 * (y = (x - mean) * rstd * w + b), RMS norm when rms (y = x * rstd * w, mean
 * written as 0). weight and bias may be NULL. mean and rstd get one value per
 * row, for the backward. */
void cpu_layer_norm_forward(tc_dtype dtype, bool rms, const void *x, const void *weight, const void *bias,
                            double eps, int64_t rows, int64_t cols, void *out, void *mean, void *rstd);
/* Gradients from dout: dx (overwritten), dweight and dbias (overwritten,
 * summed over rows). Any of dx, dweight, dbias may be NULL (not wanted).
 * column_scratch holds 2 * cols doubles. */
void cpu_layer_norm_backward(tc_dtype dtype, bool rms, const void *x, const void *weight, const void *mean,
                             const void *rstd, const void *dout, int64_t rows, int64_t cols, void *dx, void *dweight,
                             void *dbias, double *column_scratch);

/* Multi-head self-attention over packed qkv [B, T, 3C] (q, k, v on the last
 * dim, head h at columns h*hd .. h*hd+hd-1 of each), out [B, T, C] with the
 * heads merged, lse [B, n_head, T] the log-sum-exp of each row of scaled
 * scores. scores is scratch of T*T elements. */
void cpu_attention_forward(tc_dtype dtype, const void *qkv, int64_t batch, int64_t time, int64_t channels,
                           int64_t n_head, bool causal, void *out, void *lse, void *scores);
/* dqkv [B, T, 3C] (overwritten) from dout [B, T, C], recomputing the
 * probabilities from qkv and lse. scratch holds 2*T*T elements. */
void cpu_attention_backward(tc_dtype dtype, const void *qkv, const void *lse, const void *dout, int64_t batch,
                            int64_t time, int64_t channels, int64_t n_head, bool causal, void *dqkv, void *scratch);

/* Softmax cross-entropy over rows of logits [rows, classes]. targets are
 * int32 or int64 (target_dtype), already checked to lie in [0, classes) or to
 * equal ignore_index. Writes lse per row and returns the loss summed over
 * rows that are not ignored (in double), and their number in *count. */
double cpu_cross_entropy_forward(tc_dtype dtype, const void *logits, tc_dtype target_dtype, const void *targets,
                                 int64_t rows, int64_t classes, int64_t ignore_index, void *lse, int64_t *count);
/* dlogits = scale * (softmax - onehot) on kept rows, 0 on ignored rows. */
void cpu_cross_entropy_backward(tc_dtype dtype, const void *logits, tc_dtype target_dtype, const void *targets,
                                const void *lse, int64_t rows, int64_t classes, int64_t ignore_index, double scale,
                                void *dlogits);

/* AdamW on n elements, in place on param, m and v. bias1 and bias2 are
 * 1 - beta^step, computed in double by the caller. */
void cpu_adamw_step(tc_dtype dtype, void *param, const void *grad, void *m, void *v, int64_t n, double lr,
                    double beta1, double beta2, double eps, double weight_decay, double bias1, double bias2);
/* SGD with optional momentum (buffer may be NULL when momentum is 0). */
void cpu_sgd_step(tc_dtype dtype, void *param, const void *grad, void *buffer, int64_t n, double lr, double momentum,
                  double dampening, bool nesterov, double weight_decay);
/* Sum of squares, accumulated in double. */
double cpu_sum_squares(tc_dtype dtype, const void *x, int64_t n);
/* x *= factor, in place. */
void cpu_scale(tc_dtype dtype, void *x, int64_t n, double factor);

#endif
