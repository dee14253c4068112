/*
 * half.h: scalar conversions between float32 and the 16-bit floats,
 * bfloat16 (float32's top half) and IEEE binary16. Float to 16-bit rounds to
 * nearest even; NaN stays a (quiet) NaN with its sign, values past the
 * largest finite become Inf; binary16 keeps its subnormals. These are the
 * reference the vector paths (src/cpu/cpu_half.c) must match bit for bit;
 * the CUDA copy kernels (cuda/cuda_elementwise.cu) call these same functions
 * on the device, so both backends round alike.
 */
#ifndef TRICYCLE_HALF_H
#define TRICYCLE_HALF_H

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define TC_HALF_FN static inline __host__ __device__
#else
#define TC_HALF_FN static inline
#endif

TC_HALF_FN uint32_t tc_float_bits(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    return bits;
}

TC_HALF_FN float tc_bits_float(uint32_t bits) {
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

TC_HALF_FN float tc_bfloat16_to_float(uint16_t h) { return tc_bits_float((uint32_t)h << 16); }

TC_HALF_FN uint16_t tc_float_to_bfloat16(float x) {
    uint32_t bits = tc_float_bits(x);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x0040u); /* quiet NaN */
    bits += 0x7fffu + ((bits >> 16) & 1u); /* ties to even; a carry into the exponent gives Inf */
    return (uint16_t)(bits >> 16);
}

TC_HALF_FN float tc_float16_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
    if (exponent == 0x1f) /* Inf, or a NaN made quiet */
        return tc_bits_float(sign | 0x7f800000u | (mantissa ? 0x400000u | (mantissa << 13) : 0u));
    if (exponent == 0) { /* zero and subnormals: mantissa * 2^-24, exact in float32 */
        float magnitude = (float)mantissa * 0x1p-24f;
        return sign ? -magnitude : magnitude;
    }
    return tc_bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

TC_HALF_FN uint16_t tc_float_to_float16(float x) {
    uint32_t bits = tc_float_bits(x);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu)); /* NaN */
    if (magnitude >= 0x47800000u) return (uint16_t)(sign | 0x7c00u); /* >= 65536 (and Inf): Inf */
    if (magnitude < 0x38800000u) { /* below 2^-14: a subnormal or zero, in units of 2^-24 */
        if (magnitude < 0x33000000u) return sign; /* below 2^-25: rounds to zero */
        uint32_t exponent = magnitude >> 23, mantissa = (magnitude & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - exponent; /* value = mantissa * 2^(exponent - 150); units of 2^-24 */
        uint32_t result = mantissa >> shift, rest = mantissa & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rest > half || (rest == half && (result & 1u))) result++;
        return (uint16_t)(sign | result);
    }
    uint32_t rebased = magnitude - 0x38000000u; /* exponent - 112: the binary16 exponent in place */
    rebased += 0xfffu + ((rebased >> 13) & 1u); /* ties to even; a carry past 65504 gives 0x7c00, Inf */
    return (uint16_t)(sign | (rebased >> 13));
}

/* double to float rounding to odd: an inexact result gets its last bit set,
 * so rounding it again to fewer bits (below) rounds as the double would. */
TC_HALF_FN float tc_double_to_float_odd(double x) {
    float f = (float)x;
    if ((double)f == x || x != x) return f;
    uint32_t bits = tc_float_bits(f);
    if ((double)f > x ? x > 0 : x < 0) bits--; /* rounded away from zero: step back toward it */
    return tc_bits_float(bits | 1u);
}

TC_HALF_FN uint16_t tc_double_to_bfloat16(double x) { return tc_float_to_bfloat16(tc_double_to_float_odd(x)); }
TC_HALF_FN uint16_t tc_double_to_float16(double x) { return tc_float_to_float16(tc_double_to_float_odd(x)); }

#endif
