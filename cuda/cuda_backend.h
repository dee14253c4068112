/*
 * cuda_backend.h: the host entry points of the CUDA backend. Each cuda_<slot>
 * has exactly the signature and contract of its slot in tc_backend
 * (src/internal.h) and lives in cuda/cuda_<op>.cu, named like the CPU
 * backend's src/cpu/cpu_<op>.c.
 *
 * The entry points are weak: a kernel file not written yet leaves its slots
 * NULL, and the table (cuda_backend.cu) then fails that op with
 * TC_ERROR_UNSUPPORTED naming it, instead of crashing.
 *
 * Conventions for the kernel files:
 *  - every launch goes on cuda_stream_of(ctx) through TC_LAUNCH, followed by
 *    `TC_TRY(cuda_check_launch(ctx, "op name"))`;
 *  - scratch device memory comes from cuda_allocate / cuda_release (the
 *    context's caching allocator), never cudaMalloc;
 *  - results the host needs (a loss, a count) are copied with
 *    cuda_copy_to_host, which waits for the stream.
 */
#ifndef TRICYCLE_CUDA_BACKEND_H
#define TRICYCLE_CUDA_BACKEND_H

#include "cuda_common.h"

#define TC_CUDA_OPTIONAL __attribute__((weak))

extern "C" {

/* ---- the context's device state (cuda_backend.cu) ---- */

/* Device memory from the context's cache, counted by the engine like
 * storage; NULL (with the context's error set) when the device is out of
 * memory or the budget is spent. */
void *cuda_allocate(tc_context *ctx, size_t bytes);
/* Returns memory to the cache; work queued on the stream may still use it. */
void cuda_release(tc_context *ctx, void *data, size_t bytes);
/* The context's stream: all of its work is ordered on it. */
cuda_stream cuda_stream_of(tc_context *ctx);
/* TC_OK, or the error recorded as "what: cudaErrorName: description". */
tc_status cuda_check(tc_context *ctx, cudaError_t error, const char *what);
/* cuda_check of the last launch (cudaGetLastError). */
tc_status cuda_check_launch(tc_context *ctx, const char *what);
/* Copies bytes from device memory to the host after the stream's work. */
tc_status cuda_copy_to_host(tc_context *ctx, void *host, const void *device, size_t bytes);
/* Whether matmuls may use TF32 (tc_set_cuda_tf32 before the backend
 * started for the context); float32 matmuls are exact-float32 otherwise. */
bool cuda_allow_tf32(tc_context *ctx);

/* ---- the slots (cuda/cuda_<op>.cu) ---- */

/* Device-to-device only (the table handles host <-> device transfers). */
TC_CUDA_OPTIONAL tc_status cuda_copy(tc_tensor *dst, const tc_tensor *src);
TC_CUDA_OPTIONAL tc_status cuda_fill(tc_tensor *t, double value);
TC_CUDA_OPTIONAL tc_status cuda_unary(tc_unary_op op, const tc_tensor *x, tc_tensor *out);
TC_CUDA_OPTIONAL tc_status cuda_unary_backward(tc_unary_op op, const tc_tensor *x, const tc_tensor *y,
                                               const tc_tensor *grad, tc_tensor *grad_x);
TC_CUDA_OPTIONAL tc_status cuda_binary(tc_binary_op op, const tc_tensor *a, const tc_tensor *b, tc_tensor *out);
TC_CUDA_OPTIONAL tc_status cuda_clamp(const tc_tensor *x, double min, double max, tc_tensor *out);
TC_CUDA_OPTIONAL tc_status cuda_where(const tc_tensor *cond, const tc_tensor *a, const tc_tensor *b, tc_tensor *out);
TC_CUDA_OPTIONAL tc_status cuda_reduce(tc_reduce_op op, const tc_tensor *x, uint32_t mask, int correction,
                                       tc_tensor *out);
TC_CUDA_OPTIONAL tc_status cuda_gemm(tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m,
                                     int64_t n, int64_t k, double alpha, const void *a, int64_t lda,
                                     int64_t stride_a, const void *b, int64_t ldb, int64_t stride_b, double beta,
                                     void *c, int64_t ldc, int64_t stride_c, int64_t batch);
TC_CUDA_OPTIONAL tc_status cuda_gemm_bias(tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b,
                                          int64_t m, int64_t n, int64_t k, const void *a, int64_t lda, const void *b,
                                          int64_t ldb, const void *bias, void *c, int64_t ldc, void *gelu);
TC_CUDA_OPTIONAL tc_status cuda_softmax(const tc_tensor *x, int dim, bool log, tc_tensor *out);
TC_CUDA_OPTIONAL tc_status cuda_softmax_backward(const tc_tensor *y, const tc_tensor *grad, int dim, bool log,
                                                 tc_tensor *grad_x);
TC_CUDA_OPTIONAL tc_status cuda_gather(const tc_tensor *x, int dim, const tc_tensor *index, tc_tensor *out);
TC_CUDA_OPTIONAL tc_status cuda_scatter_add(tc_tensor *grad_x, int dim, const tc_tensor *index,
                                            const tc_tensor *grad);
TC_CUDA_OPTIONAL tc_status cuda_index_select(const tc_tensor *x, int dim, const tc_tensor *index, tc_tensor *out);
TC_CUDA_OPTIONAL tc_status cuda_index_add(tc_tensor *grad_x, int dim, const tc_tensor *index,
                                          const tc_tensor *grad);
TC_CUDA_OPTIONAL tc_status cuda_random(tc_tensor *out, bool normal, uint64_t seed, uint64_t offset);
TC_CUDA_OPTIONAL tc_status cuda_dropout(const tc_tensor *x, double p, uint64_t seed, uint64_t offset,
                                        tc_tensor *mask, tc_tensor *out);

/* fused kernels */
TC_CUDA_OPTIONAL tc_status cuda_layer_norm_forward(tc_context *ctx, tc_dtype dtype, bool rms, const void *x,
                                                   const void *weight, const void *bias, double eps, int64_t rows,
                                                   int64_t cols, void *out, void *mean, void *rstd);
TC_CUDA_OPTIONAL tc_status cuda_layer_norm_backward(tc_context *ctx, tc_dtype dtype, bool rms, const void *x,
                                                    const void *weight, const void *mean, const void *rstd,
                                                    const void *dout, int64_t rows, int64_t cols, void *dx,
                                                    void *dweight, void *dbias);
TC_CUDA_OPTIONAL tc_status cuda_attention_forward(tc_context *ctx, tc_dtype dtype, const void *qkv, int64_t batch,
                                                  int64_t time, int64_t channels, int64_t n_head, bool causal,
                                                  void *out, void *lse);
TC_CUDA_OPTIONAL tc_status cuda_attention_backward(tc_context *ctx, tc_dtype dtype, const void *qkv,
                                                   const void *out, const void *lse, const void *dout,
                                                   int64_t batch, int64_t time, int64_t channels, int64_t n_head,
                                                   bool causal, void *dqkv);
TC_CUDA_OPTIONAL tc_status cuda_attention_cached(tc_context *ctx, tc_dtype dtype, const void *qkv, int64_t batch,
                                                 int64_t time, int64_t channels, int64_t n_head, bool causal,
                                                 void *k_cache, void *v_cache, int64_t capacity, int64_t position,
                                                 void *out);
TC_CUDA_OPTIONAL tc_status cuda_cross_entropy_forward(tc_context *ctx, tc_dtype dtype, const void *logits,
                                                      tc_dtype target_dtype, const void *targets, int64_t rows,
                                                      int64_t classes, int64_t ignore_index, void *lse,
                                                      double *loss_sum, int64_t *count);
TC_CUDA_OPTIONAL tc_status cuda_cross_entropy_backward(tc_context *ctx, tc_dtype dtype, const void *logits,
                                                       tc_dtype target_dtype, const void *targets, const void *lse,
                                                       int64_t rows, int64_t classes, int64_t ignore_index,
                                                       double scale, void *dlogits);
TC_CUDA_OPTIONAL tc_status cuda_adamw_step(tc_context *ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors,
                                           double lr, double beta1, double beta2, double eps, double weight_decay);
TC_CUDA_OPTIONAL tc_status cuda_sgd_step(tc_context *ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors,
                                         double lr, double momentum, double dampening, bool nesterov,
                                         double weight_decay);
TC_CUDA_OPTIONAL tc_status cuda_sum_squares(tc_context *ctx, tc_dtype dtype, int count, const void *const *x,
                                            const int64_t *sizes, double *out);
TC_CUDA_OPTIONAL tc_status cuda_scale(tc_context *ctx, tc_dtype dtype, int count, void *const *x,
                                      const int64_t *sizes, double factor);

} /* extern "C" */

#endif
