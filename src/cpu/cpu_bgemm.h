/*
 * cpu_bgemm.h: the bfloat16 GEMM of cpu_bgemm.c: float32 C from bfloat16
 * operands (raw uint16_t bf16 bits), or float32 operands rounded to bf16 on
 * the way in, so a linear layer's forward (x W^T) and both backward
 * products (dY W, dY^T X) can take float32 activations and gradients
 * beside bf16 weights without a conversion pass.
 */
#ifndef TRICYCLE_CPU_BGEMM_H
#define TRICYCLE_CPU_BGEMM_H

#include <stdbool.h>
#include <stdint.h>

/* How an operand is stored: bf16 bits (uint16_t), or float32 that the GEMM
 * rounds to bf16 (to nearest even) as it reads it. */
typedef enum cpu_bgemm_type { CPU_BGEMM_BF16, CPU_BGEMM_F32 } cpu_bgemm_type;

/* What runs a product, slowest first: op(a) and op(b) widened to float32
 * and multiplied by the BLAS; VDPBF16PS (AVX512_BF16); AMX tiles
 * (TDPBF16PS, AMX_BF16 with the kernel's permission for tile data). */
typedef enum cpu_bgemm_path { CPU_BGEMM_FALLBACK, CPU_BGEMM_AVX512, CPU_BGEMM_AMX } cpu_bgemm_path;

/* The fastest path this CPU (and kernel) can run; asks the kernel for AMX
 * tile data permission (arch_prctl, once per process in effect). */
cpu_bgemm_path cpu_bgemm_best_path(void);

/* cpu_bgemm_best_path(), capped by the environment's TRICYCLE_BGEMM:
 * "fallback" or "avx512" (no AMX): what a context decides once, when it is
 * made. */
cpu_bgemm_path cpu_bgemm_choose_path(void);

/* Row-major C[m,n] = alpha op(a)[m,k] op(b)[k,n] + beta C (+ bias[j] on
 * column j when bias is not NULL), single-threaded; op transposes when
 * asked, as in cblas_sgemm; a and b are of a_type and b_type, their leading
 * dimensions counted in elements. When gelu is not NULL it also gets GPT-2's
 * tanh GELU of each element of the result (leading dimension ldc). C is not
 * read when beta is 0; a and b are not read when k is 0 or alpha is 0.
 * path: one the CPU has (cpu_bgemm_best_path() or below, as a context
 * keeps; not checked again per call, as for cpu_bgemm_packed). The fallback
 * rounds float32 input to bf16 before widening, so every path multiplies
 * the same values (sums differ by float32 rounding). scratch: NULL, or
 * cpu_bgemm_scratch_bytes(n, k) bytes, 64-byte aligned, for the packed
 * blocks. False, with C untouched, when a buffer cannot be allocated. */
bool cpu_bgemm(cpu_bgemm_path path, bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
               cpu_bgemm_type a_type, const void *a, int64_t lda, cpu_bgemm_type b_type, const void *b, int64_t ldb,
               float beta, const float *bias, float *c, int64_t ldc, float *gelu, void *scratch);
int64_t cpu_bgemm_scratch_bytes(int64_t n, int64_t k);

/* For threads sharing one packed op(b) (path CPU_BGEMM_AVX512 or
 * CPU_BGEMM_AMX, one the CPU has; the same path for packing and
 * multiplying): its size in bytes, the number of panels to pack (units that
 * may be packed in parallel), packing panels [first_panel, end_panel), and
 * rows of C computed from it (a, c and gelu at the caller's first row) with
 * cpu_bgemm's contract and bits; false when cpu_bgemm_packed cannot
 * allocate its op(a) block (C untouched). `packed` 64-byte aligned; the
 * size is -1 when it does not fit an int64_t (or n or k is negative). */
int64_t cpu_bgemm_packed_bytes(int64_t n, int64_t k);
int64_t cpu_bgemm_panel_count(int64_t n, int64_t k);
void cpu_bgemm_pack(cpu_bgemm_path path, cpu_bgemm_type b_type, bool transpose_b, int64_t n, int64_t k, const void *b,
                    int64_t ldb, void *packed, int64_t first_panel, int64_t end_panel);
bool cpu_bgemm_packed(cpu_bgemm_path path, cpu_bgemm_type a_type, bool transpose_a, int64_t m, int64_t n, int64_t k,
                      float alpha, const void *a, int64_t lda, const void *packed, float beta, const float *bias,
                      float *c, int64_t ldc, float *gelu);

/* y[j] += sum_i bf16(x[i]) w[j ldw + i] for j < n, float32 sums: one row
 * of activations against n rows of a bf16 weight (a linear layer's decoding
 * step), with cpu_bgemm's precision and without its packing, which a single
 * row does not repay. Single-threaded; path as cpu_bgemm's. */
void cpu_bgemv_bf16_weight(cpu_bgemm_path path, int64_t n, int64_t k, const float *x, const uint16_t *w, int64_t ldw,
                           float *y);

/* float32 -> bf16 bits, rounded to nearest even as VCVTNE2PS2BF16 does
 * (NaN stays a quiet NaN), and back (exact). */
uint16_t cpu_bf16_from_float(float x);
float cpu_float_from_bf16(uint16_t bits);

#endif
