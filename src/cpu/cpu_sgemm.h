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
 * same bits as the element-wise op). scratch: NULL, or
 * cpu_sgemm_scratch_floats(n, k) floats, 64-byte aligned, for the packed
 * panels (without it they go on the stack when small, else to malloc). C is not read when beta is 0; a and b are not
 * read when k is 0 or alpha is 0. Call it only when cpu_sgemm_available();
 * false, with C untouched, when its packing buffers cannot be allocated
 * (or on a build without the AVX-512 code). */
bool cpu_sgemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
               int64_t lda, const float *b, int64_t ldb, float beta, const float *bias, float *c, int64_t ldc,
               float *gelu, float *scratch);
int64_t cpu_sgemm_scratch_floats(int64_t n, int64_t k);

/* Row-major matrix-vector product, single-threaded: y = alpha a x + beta y
 * for a [m, n] (y [m], x [n]), or with transpose y = alpha a^T x + beta y
 * (y [n], x [m]); y not read when beta is 0. Only when
 * cpu_sgemm_available(). */
void cpu_sgemv(bool transpose, int64_t m, int64_t n, float alpha, const float *a, int64_t lda, const float *x,
               float beta, float *y);

/* For threads sharing one packed op(b): the floats it takes, the number of
 * panels to pack (units that may be packed in parallel), packing panels
 * [first_panel, end_panel), and rows of C computed from it (a, c and gelu
 * at the caller's first row) with cpu_sgemm's contract and bits. Only when
 * cpu_sgemm_available(); `packed` 64-byte aligned. */
int64_t cpu_sgemm_packed_floats(int64_t n, int64_t k);
int64_t cpu_sgemm_panel_count(int64_t n, int64_t k);
void cpu_sgemm_pack(bool transpose_b, int64_t n, int64_t k, const float *b, int64_t ldb, float *packed,
                    int64_t first_panel, int64_t end_panel);
void cpu_sgemm_packed(bool transpose_a, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                      const float *packed, float beta, const float *bias, float *c, int64_t ldc, float *gelu);

/* The layout packed op(b) takes: panels of this many columns (zero past
 * op(b)'s last), each k-major (the panel's row k at k * this many floats);
 * and the most columns and depths packed at once (cpu_sgemm's blocks). */
#define CPU_SGEMM_PANEL_COLUMNS 32
#define CPU_SGEMM_BLOCK_COLUMNS 1024
#define CPU_SGEMM_BLOCK_DEPTH 256

/* Writes columns [column0, column0 + columns) of op(b) over depths [k0, k0 +
 * depth) into packed as column panels, panel q (columns column0 + q ..) at
 * packed + q * depth; columns <= CPU_SGEMM_BLOCK_COLUMNS, depth <=
 * CPU_SGEMM_BLOCK_DEPTH, packed 64-byte aligned. source is the packer's own
 * description of op(b). */
typedef void cpu_sgemm_packer(const void *source, int64_t column0, int64_t columns, int64_t k0, int64_t depth,
                              float *packed);

/* cpu_sgemm for an op(b) that exists only as what `pack` writes (a
 * convolution's windows, read from the image): C = alpha op(a) op(b) + beta
 * C, plus row_bias[i] on row i when not NULL; the same blocking, sums and
 * bits as cpu_sgemm with that op(b). scratch: cpu_sgemm_scratch_floats(n,
 * k) floats, 64-byte aligned. Only when cpu_sgemm_available(). */
void cpu_sgemm_packing(bool transpose_a, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                       cpu_sgemm_packer *pack, const void *source, float beta, const float *row_bias, float *c,
                       int64_t ldc, float *scratch);

#endif
