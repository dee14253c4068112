/*
 * cpu_sgemm.h: the float32 GEMM of cpu_sgemm.c (AVX-512 CPUs).
 */
#ifndef TRICYCLE_CPU_SGEMM_H
#define TRICYCLE_CPU_SGEMM_H

#include <stdbool.h>
#include <stdint.h>

/* True when this CPU can run cpu_sgemm. */
bool cpu_sgemm_available(void);

/* Row-major C[m,n] = alpha op(a)[m,k] op(b)[k,n] + beta C (+ bias[j] on
 * column j when bias is not NULL), single-threaded; op transposes when
 * asked, as in cblas_sgemm. When gelu is not NULL it also gets GPT-2's tanh
 * GELU of each element of the result (the same leading dimension ldc; the
 * same bits as the element-wise op). C is not read when beta is 0; a and b are not
 * read when k is 0 or alpha is 0. Call it only when cpu_sgemm_available();
 * false, with C untouched, when its packing buffers cannot be allocated
 * (or on a build without the AVX-512 code). */
bool cpu_sgemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
               int64_t lda, const float *b, int64_t ldb, float beta, const float *bias, float *c, int64_t ldc,
               float *gelu);

#endif
