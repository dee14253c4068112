/*
 * cpu_matmul.h: the CPU's one GEMM dispatcher (cpu_matmul.c) as the fused
 * kernels use it, from inside tasks of the context's pool. The gemm,
 * gemm_bias and gemv slots are its other entries (cpu_backend.h).
 */
#ifndef TRICYCLE_CPU_MATMUL_H
#define TRICYCLE_CPU_MATMUL_H

#include "../internal.h"

/* Keeps OpenBLAS to one thread per call (the policy explained in
 * cpu_matmul.c); call it before any BLAS call made from the context's
 * parallel chunks. */
void cpu_blas_single_threaded(void);

/* c = alpha op(a) op(b) + beta c for one row-major matrix, on the calling
 * thread; `native` is the context's native_sgemm (ignored for float64).
 * Sizes were checked against INT_MAX. */
void cpu_matmul_in_task(tc_dtype dtype, bool native, bool transpose_a, bool transpose_b, int64_t m, int64_t n,
                        int64_t k, double alpha, const void *a, int64_t lda, const void *b, int64_t ldb, double beta,
                        void *c, int64_t ldc);

/* The context's packing space (ctx->gemm_scratch) of at least `bytes`,
 * 64-byte aligned, counted as in use (under the budget) until
 * tc_memory_discharge(ctx, bytes); NULL with the error set when it cannot
 * grow or the budget is spent. Only the thread running ops calls it, never
 * a chunk. */
float *cpu_gemm_scratch(tc_context *ctx, size_t bytes);

/* c [m, n] += x [m, k] @ w^T for a bf16 weight w [n, k] (row-major, rows
 * ldw apart): x rounded to bf16 as it is packed, sums float32 (cpu_bgemm),
 * split over the pool. Linear's path for bf16 weights. */
tc_status cpu_gemm_bf16_weight(tc_context *ctx, int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                               const uint16_t *w, int64_t ldw, float *c, int64_t ldc);

/* c [m, n] += x [m, k] @ w^T for a float16 weight w [n, k] and at most
 * CPU_HALF_GEMV_ROWS rows of x (decoding): the weight widened as it is read,
 * float32 sums, split over the pool by blocks of the output. */
#define CPU_HALF_GEMV_ROWS 4
tc_status cpu_gemv_float16_weight(tc_context *ctx, int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                                  const uint16_t *w, int64_t ldw, float *c, int64_t ldc);

#endif
