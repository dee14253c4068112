/*
 * cpu_avx512.h: what the AVX-512 kernels share (cpu_sgemm.c,
 * cpu_conv_same.c, cpu_bgemm.c): the target attribute their functions
 * carry (the library is built for any x86-64 and calls them only where the
 * CPU has AVX-512F), lane masks and a 16 x 16 transpose in registers.
 * x86-64 GCC or Clang only.
 */
#ifndef TRICYCLE_CPU_AVX512_H
#define TRICYCLE_CPU_AVX512_H

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,fma")))

/* Mask of the first `count` lanes (none below 0, all 16 from 16). */
static inline __mmask16 first_lanes(int64_t count) {
    return (__mmask16)(count >= 16 ? 0xffff : count <= 0 ? 0 : (1u << count) - 1);
}

/* out[t] = (in[0][t], ..., in[15][t]). */
static inline AVX512 void transpose_16x16(const __m512 in[16], __m512 out[16]) {
    __m512 pairs[16];
    for (int i = 0; i < 16; i += 2) {
        pairs[i] = _mm512_unpacklo_ps(in[i], in[i + 1]);
        pairs[i + 1] = _mm512_unpackhi_ps(in[i], in[i + 1]);
    }
    /* quads[4g + s], 128-bit lane L: rows 4g..4g+3 at column 4L + s */
    __m512 quads[16];
    for (int g = 0; g < 4; g++) {
        __m512d low = _mm512_castps_pd(pairs[4 * g]), high = _mm512_castps_pd(pairs[4 * g + 1]);
        __m512d low2 = _mm512_castps_pd(pairs[4 * g + 2]), high2 = _mm512_castps_pd(pairs[4 * g + 3]);
        quads[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(low, low2));
        quads[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(low, low2));
        quads[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(high, high2));
        quads[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(high, high2));
    }
    for (int s = 0; s < 4; s++) {
        __m512 even01 = _mm512_shuffle_f32x4(quads[s], quads[4 + s], 0x88);
        __m512 odd01 = _mm512_shuffle_f32x4(quads[s], quads[4 + s], 0xdd);
        __m512 even23 = _mm512_shuffle_f32x4(quads[8 + s], quads[12 + s], 0x88);
        __m512 odd23 = _mm512_shuffle_f32x4(quads[8 + s], quads[12 + s], 0xdd);
        out[s] = _mm512_shuffle_f32x4(even01, even23, 0x88);
        out[8 + s] = _mm512_shuffle_f32x4(even01, even23, 0xdd);
        out[4 + s] = _mm512_shuffle_f32x4(odd01, odd23, 0x88);
        out[12 + s] = _mm512_shuffle_f32x4(odd01, odd23, 0xdd);
    }
}

#endif

#endif
