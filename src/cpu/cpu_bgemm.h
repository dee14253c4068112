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

/* True when this CPU has AVX512_BF16 (VDPBF16PS), which the native path
 * needs. */
bool cpu_bgemm_native_available(void);

/* cpu_bgemm_native_available(), unless the environment's TRICYCLE_BGEMM is
 * "fallback": what a context decides once, when it is made. */
bool cpu_bgemm_choose_native(void);

/* Row-major C[m,n] = alpha op(a)[m,k] op(b)[k,n] + beta C (+ bias[j] on
 * column j when bias is not NULL), single-threaded; op transposes when
 * asked, as in cblas_sgemm; a and b are of a_type and b_type, their leading
 * dimensions counted in elements. When gelu is not NULL it also gets GPT-2's
 * tanh GELU of each element of the result (leading dimension ldc). C is not
 * read when beta is 0; a and b are not read when k is 0 or alpha is 0.
 * native: VDPBF16PS (only when cpu_bgemm_native_available()); otherwise
 * op(a) and op(b) are widened to float32 (after rounding float32 input to
 * bf16, so both paths multiply the same values) and multiplied by the
 * BLAS. scratch: NULL, or cpu_bgemm_scratch_bytes(n, k) bytes, 64-byte
 * aligned, for the native path's packed blocks. False, with C untouched,
 * when a buffer cannot be allocated. */
bool cpu_bgemm(bool native, bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
               cpu_bgemm_type a_type, const void *a, int64_t lda, cpu_bgemm_type b_type, const void *b, int64_t ldb,
               float beta, const float *bias, float *c, int64_t ldc, float *gelu, void *scratch);
int64_t cpu_bgemm_scratch_bytes(int64_t n, int64_t k);

/* For threads sharing one packed op(b) (native path only): its size in
 * bytes, the number of panels to pack (units that may be packed in
 * parallel), packing panels [first_panel, end_panel), and rows of C computed
 * from it (a, c and gelu at the caller's first row) with cpu_bgemm's
 * contract and bits; false when cpu_bgemm_packed cannot allocate its
 * op(a) block (C untouched). `packed` 64-byte aligned. */
int64_t cpu_bgemm_packed_bytes(int64_t n, int64_t k);
int64_t cpu_bgemm_panel_count(int64_t n, int64_t k);
void cpu_bgemm_pack(cpu_bgemm_type b_type, bool transpose_b, int64_t n, int64_t k, const void *b, int64_t ldb,
                    void *packed, int64_t first_panel, int64_t end_panel);
bool cpu_bgemm_packed(cpu_bgemm_type a_type, bool transpose_a, int64_t m, int64_t n, int64_t k, float alpha,
                      const void *a, int64_t lda, const void *packed, float beta, const float *bias, float *c,
                      int64_t ldc, float *gelu);

/* float32 -> bf16 bits, rounded to nearest even as VCVTNE2PS2BF16 does
 * (NaN stays a quiet NaN), and back (exact). */
uint16_t cpu_bf16_from_float(float x);
float cpu_float_from_bf16(uint16_t bits);

#endif
