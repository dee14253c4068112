/*
 * cpu_fused.h: CPU kernels of the fused neural-network ops (layer norm, RMS
 * norm, attention, cross-entropy, optimiser steps), forward and backward
 * side by side. Each is the CPU entry of the tc_backend slot of the same
 * name (internal.h), whose comment states its contract; ops_fused.c calls
 * them through tc_backend_of. They are also the oracle the CUDA kernels are
 * checked against.
 */
#ifndef TRICYCLE_CPU_FUSED_H
#define TRICYCLE_CPU_FUSED_H

#include "../internal.h"

/* The gemv slot (cpu_gemv.c). */
tc_status cpu_gemv(tc_context *ctx, tc_dtype dtype, bool transpose, int64_t m, int64_t n, double alpha, const void *a,
                   int64_t lda, const void *x, double beta, void *y);

tc_status cpu_layer_norm_forward(tc_context *ctx, tc_dtype dtype, bool rms, const void *x, const void *weight,
                                 const void *bias, double eps, int64_t rows, int64_t cols, void *out, void *mean,
                                 void *rstd);
tc_status cpu_layer_norm_backward(tc_context *ctx, tc_dtype dtype, bool rms, const void *x, const void *weight,
                                  const void *mean, const void *rstd, const void *dout, int64_t rows, int64_t cols,
                                  void *dx, void *dweight, void *dbias);

tc_status cpu_attention_forward(tc_context *ctx, tc_dtype dtype, const void *qkv, int64_t batch, int64_t time,
                                int64_t channels, int64_t n_head, bool causal, void *out, void *lse);
tc_status cpu_attention_backward(tc_context *ctx, tc_dtype dtype, const void *qkv, const void *out, const void *lse,
                                 const void *dout, int64_t batch, int64_t time, int64_t channels, int64_t n_head,
                                 bool causal, void *dqkv);
tc_status cpu_attention_cached(tc_context *ctx, tc_dtype dtype, const void *qkv, int64_t batch, int64_t time,
                               int64_t channels, int64_t n_head, bool causal, void *k_cache, void *v_cache,
                               int64_t capacity, int64_t position, void *out);

tc_status cpu_cross_entropy_forward(tc_context *ctx, tc_dtype dtype, const void *logits, tc_dtype target_dtype,
                                    const void *targets, int64_t rows, int64_t classes, int64_t ignore_index,
                                    void *lse, double *loss_sum, int64_t *count);
tc_status cpu_cross_entropy_backward(tc_context *ctx, tc_dtype dtype, const void *logits, tc_dtype target_dtype,
                                     const void *targets, const void *lse, int64_t rows, int64_t classes,
                                     int64_t ignore_index, double scale, void *dlogits);

tc_status cpu_adamw_step(tc_context *ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors, double lr,
                         double beta1, double beta2, double eps, double weight_decay);
tc_status cpu_sgd_step(tc_context *ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors, double lr,
                       double momentum, double dampening, bool nesterov, double weight_decay);
tc_status cpu_sum_squares(tc_context *ctx, tc_dtype dtype, int count, const void *const *x, const int64_t *sizes,
                          double *out);
tc_status cpu_scale(tc_context *ctx, tc_dtype dtype, int count, void *const *x, const int64_t *sizes, double factor);

#endif
