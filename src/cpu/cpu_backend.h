/*
 * cpu_backend.h: the CPU kernels that fill the CPU backend table. Each
 * kernel has the contract of its slot in tc_backend (internal.h).
 */
#ifndef TRICYCLE_CPU_BACKEND_H
#define TRICYCLE_CPU_BACKEND_H

#include "cpu_iterate.h"
#include "cpu_types.h"

tc_status cpu_copy(tc_tensor *dst, const tc_tensor *src);
tc_status cpu_fill(tc_tensor *t, double value);
tc_status cpu_unary(tc_unary_op op, const tc_tensor *x, tc_tensor *out);
tc_status cpu_unary_backward(tc_unary_op op, const tc_tensor *x, const tc_tensor *y, const tc_tensor *grad,
                             tc_tensor *grad_x);
tc_status cpu_binary(tc_binary_op op, const tc_tensor *a, const tc_tensor *b, tc_tensor *out);
tc_status cpu_clamp(const tc_tensor *x, double min, double max, tc_tensor *out);
tc_status cpu_where(const tc_tensor *cond, const tc_tensor *a, const tc_tensor *b, tc_tensor *out);
tc_status cpu_reduce(tc_reduce_op op, const tc_tensor *x, uint32_t mask, int correction, tc_tensor *out);
/* Keeps OpenBLAS to one thread per call (the policy explained in
 * cpu_matmul.c); call it before any BLAS call made from the context's
 * parallel chunks. */
void cpu_blas_single_threaded(void);
tc_status cpu_gemm(tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n,
                   int64_t k, double alpha, const void *a, int64_t lda, int64_t stride_a, const void *b, int64_t ldb,
                   int64_t stride_b, double beta, void *c, int64_t ldc, int64_t stride_c, int64_t batch);
tc_status cpu_gemm_bias(tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n,
                        int64_t k, const void *a, int64_t lda, const void *b, int64_t ldb, const void *bias, void *c,
                        int64_t ldc, void *gelu);
tc_status cpu_softmax(const tc_tensor *x, int dim, bool log, tc_tensor *out);
tc_status cpu_softmax_backward(const tc_tensor *y, const tc_tensor *grad, int dim, bool log, tc_tensor *grad_x);
tc_status cpu_gather(const tc_tensor *x, int dim, const tc_tensor *index, tc_tensor *out);
tc_status cpu_scatter_add(tc_tensor *grad_x, int dim, const tc_tensor *index, const tc_tensor *grad);
tc_status cpu_index_select(const tc_tensor *x, int dim, const tc_tensor *index, tc_tensor *out);
tc_status cpu_index_add(tc_tensor *grad_x, int dim, const tc_tensor *index, const tc_tensor *grad);
tc_status cpu_random(tc_tensor *out, bool normal, uint64_t seed, uint64_t offset);
tc_status cpu_dropout(const tc_tensor *x, double p, uint64_t seed, uint64_t offset, tc_tensor *mask, tc_tensor *out);

#endif
