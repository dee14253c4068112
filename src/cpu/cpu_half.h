/*
 * cpu_half.h: converting runs of bfloat16 / float16 to and from float32.
 * With `vector` and a CPU that has AVX-512F and F16C (cpu_half_vector_available,
 * asked at run time) the runs go 16 lanes at a time; otherwise, and for
 * tails, through half.h's scalar conversions. Both give the same bits.
 */
#ifndef TRICYCLE_CPU_HALF_H
#define TRICYCLE_CPU_HALF_H

#include "../internal.h"

bool cpu_half_vector_available(void);
/* dtype is TC_BFLOAT16 or TC_FLOAT16. */
void cpu_half_to_float(tc_dtype dtype, const uint16_t *in, float *out, int64_t n, bool vector);
void cpu_float_to_half(tc_dtype dtype, const float *in, uint16_t *out, int64_t n, bool vector);
/* y[j] += sum_i x[i] w[j ldw + i] for j < n, w float16 bits widened exactly,
 * float32 sums: one row of activations against a float16 weight (a linear
 * layer's decoding step) without widening the weight into memory first.
 * Single-threaded. */
void cpu_float16_weight_gemv(int64_t n, int64_t k, const float *x, const uint16_t *w, int64_t ldw, float *y,
                             bool vector);

#endif
