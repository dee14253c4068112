/*
 * cpu_simd.h: float32 math on 16-lane vectors for the hot loops of the CPU
 * kernels. Written with GCC/Clang vector extensions, so the same source
 * compiles to AVX-512 (one zmm per vector), AVX2 (two ymm) or SSE2 (four
 * xmm): a loop function marked SIMD_CLONES gets one copy per target and the
 * best one is chosen when the library loads, so one build runs on any
 * x86-64. Every operation is plain IEEE arithmetic in a fixed order (no FMA
 * contraction under -std=c11), so all copies give the same bits, and a
 * lane's result depends only on its input: chunking and tails do not change
 * results.
 *
 * Accuracy against double-precision libm, measured by
 * spec/c/vector_math_test.c over every 331st float bit pattern (13 million
 * inputs, both signs, subnormal to Inf), max error in float ulps of the
 * exact result: exp 0.98, tanh 1.26, sigmoid 2.56, silu 3.08, gelu_tanh
 * 2.7 per unit of its condition number 1 + |2u| (the float rounding of its
 * argument, which any float evaluation has); results below 2^-100 within
 * 0.9 x 2^-123. NaN gives NaN; +-Inf and overflow give the function's
 * limits (exp: +Inf and 0, tanh: +-1, sigmoid: 1 and 0).
 *
 * Usage (a kernel file):
 *     static SIMD_CLONES void exp_run(const float *x, float *y, int64_t n) {
 *         int64_t i = 0;
 *         for (; i + SIMD_LANES <= n; i += SIMD_LANES) simd_store(y + i, simd_exp(simd_load(x + i)));
 *         SIMD_TAIL(x + i, y + i, n - i, simd_exp);
 *     }
 */
#ifndef TRICYCLE_CPU_SIMD_H
#define TRICYCLE_CPU_SIMD_H

#include "../ops_math.h"

#include <stdint.h>
#include <string.h>

#define SIMD_LANES 16

/* The helpers below are always inlined, so no vector crosses a call and the
 * note about the 64-byte vector ABI does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float simd_f32 __attribute__((vector_size(64)));
typedef int32_t simd_i32 __attribute__((vector_size(64)));

/* One copy of the marked function per instruction set, picked at load time
 * (x86-64 Linux with GCC's function multiversioning; elsewhere one copy for
 * the compiler's target). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SIMD_CLONES
#endif

#define SIMD_INLINE static inline __attribute__((always_inline))

SIMD_INLINE simd_f32 simd_load(const float *p) {
    simd_f32 v;
    memcpy(&v, p, sizeof v);
    return v;
}

SIMD_INLINE void simd_store(float *p, simd_f32 v) { memcpy(p, &v, sizeof v); }

SIMD_INLINE simd_f32 simd_splat(float x) { return (simd_f32){0} + x; }

SIMD_INLINE simd_i32 simd_bits(simd_f32 v) {
    simd_i32 bits;
    memcpy(&bits, &v, sizeof bits);
    return bits;
}

SIMD_INLINE simd_f32 simd_from_bits(simd_i32 bits) {
    simd_f32 v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* mask ? a : b, lane by lane (mask lanes are 0 or -1, as comparisons give). */
SIMD_INLINE simd_f32 simd_select(simd_i32 mask, simd_f32 a, simd_f32 b) {
    return simd_from_bits((mask & simd_bits(a)) | (~mask & simd_bits(b)));
}

SIMD_INLINE simd_f32 simd_abs(simd_f32 x) { return simd_from_bits(simd_bits(x) & 0x7fffffff); }

/* |magnitude| with the sign of sign. */
SIMD_INLINE simd_f32 simd_copysign(simd_f32 magnitude, simd_f32 sign) {
    return simd_from_bits((simd_bits(magnitude) & 0x7fffffff) | (simd_bits(sign) & (int32_t)0x80000000));
}

/* e^x: Cody-Waite reduction x = n ln2 + r (|r| <= ln2/2, n*ln2_hi exact),
 * Cephes' degree-6 polynomial for e^r, and 2^n applied as two halves so
 * results down to the smallest subnormal come out right. Overflow gives
 * +Inf, underflow 0. */
SIMD_INLINE simd_f32 simd_exp(simd_f32 x) {
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    x = simd_select(x > 89.0f, simd_splat(89.0f), x);
    x = simd_select(x < -104.0f, simd_splat(-104.0f), x);
    simd_f32 shifted = x * 1.44269504088896341f + magic;
    simd_f32 n = shifted - magic;
    simd_i32 exponent = simd_bits(shifted) - simd_bits(simd_splat(magic)); /* n as an integer */
    simd_f32 r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    simd_f32 p = simd_splat(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* NaN lanes: exponent is garbage, p is NaN, and so is the product. */
    simd_i32 half = exponent >> 1;
    simd_f32 scale1 = simd_from_bits((half + 127) << 23);
    simd_f32 scale2 = simd_from_bits((exponent - half + 127) << 23);
    return p * scale1 * scale2;
}

/* tanh: Cephes' odd polynomial below 0.625, 1 - 2 / (e^2|x| + 1) above,
 * with x's sign. */
SIMD_INLINE simd_f32 simd_tanh(simd_f32 x) {
    simd_f32 a = simd_abs(x);
    simd_f32 z = x * x;
    simd_f32 p = simd_splat(-5.70498872745e-3f);
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    simd_f32 small = x + x * z * p;
    simd_f32 large = 1.0f - 2.0f / (simd_exp(a + a) + 1.0f);
    return simd_copysign(simd_select(a < 0.625f, small, large), x);
}

/* The simd math kit of ops_math.h: the element-wise formulas over vectors,
 * with the exp and tanh above. Its helpers (simd_sigmoid, simd_silu,
 * simd_gelu_tanh and their slopes) are the same formulas every backend
 * computes; see there for the forms and why. */
#define simd_real simd_f32
#define simd_const(c) simd_splat((float)(c))
#define simd_fabs simd_abs
#define simd_fn SIMD_INLINE
TC_MATH_HELPERS(simd)

/* Applies f to the n (< SIMD_LANES) values at x, writing y, through a
 * padded vector so tails get the same arithmetic as full vectors. */
#define SIMD_TAIL(x, y, n, f)                                                                                      \
    do {                                                                                                           \
        if ((n) > 0) {                                                                                             \
            float simd_tail_[SIMD_LANES] = {0};                                                                    \
            memcpy(simd_tail_, (x), (size_t)(n) * sizeof(float));                                                  \
            simd_store(simd_tail_, f(simd_load(simd_tail_)));                                                      \
            memcpy((y), simd_tail_, (size_t)(n) * sizeof(float));                                                  \
        }                                                                                                          \
    } while (0)

#endif
