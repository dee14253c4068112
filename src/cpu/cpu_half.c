/*
 * cpu_half.c: runs of 16-bit floats to and from float32 (cpu_half.h). The
 * bfloat16 vector path does half.h's integer rounding on 16 lanes (the
 * AVX512_BF16 instruction flushes subnormals, so it would not match); the
 * float16 one uses the CPU's own conversions, which round the same way.
 */
#include "cpu_half.h"

#include "../half.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HALF_VECTOR 1
#define HALF_TARGET __attribute__((target("avx512f,avx512bw,f16c")))
#else
#define HALF_VECTOR 0
#endif

bool cpu_half_vector_available(void) {
#if HALF_VECTOR
    /* every CPU with AVX-512 has F16C (clang 14's __builtin_cpu_supports does not know its name) */
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
#else
    return false;
#endif
}

#if HALF_VECTOR
/* Returns how many leading elements it converted (a multiple of 16). */
static HALF_TARGET int64_t half_to_float_vector(tc_dtype dtype, const uint16_t *in, float *out, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(in + i));
        __m512 x = dtype == TC_BFLOAT16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
                                        : _mm512_cvtph_ps(h);
        _mm512_storeu_ps(out + i, x);
    }
    return i;
}

static HALF_TARGET int64_t float_to_half_vector(tc_dtype dtype, const float *in, uint16_t *out, int64_t n) {
    int64_t i = 0;
    const __m512i magnitude_mask = _mm512_set1_epi32(0x7fffffff), infinity = _mm512_set1_epi32(0x7f800000);
    const __m512i round_base = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1),
                  quiet = _mm512_set1_epi32(0x40);
    for (; i + 16 <= n; i += 16) {
        __m256i h;
        if (dtype == TC_BFLOAT16) {
            __m512i bits = _mm512_loadu_si512((const void *)(in + i));
            __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, magnitude_mask), infinity);
            __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), one);
            __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(round_base, odd)), 16);
            __m512i quieted = _mm512_or_si512(_mm512_srli_epi32(bits, 16), quiet);
            h = _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, quieted));
        } else {
            h = _mm512_cvtps_ph(_mm512_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        }
        _mm256_storeu_si256((__m256i *)(void *)(out + i), h);
    }
    return i;
}

#define GEMV_ROWS 4
/* cpu_float16_weight_gemv's rows [0, n) with AVX-512 and F16C: 16 depths of
 * GEMV_ROWS rows at a time, the next rows prefetched (as cpu_bgemm.c's GEMV). */
static __attribute__((target("avx512f,avx512bw,avx512vl,f16c"))) void
float16_weight_gemv_vector(int64_t n, int64_t k, const float *x, const uint16_t *w, int64_t ldw, float *y) {
    int64_t j = 0;
    for (; j + GEMV_ROWS <= n; j += GEMV_ROWS) {
        __m512 sums[GEMV_ROWS];
        for (int r = 0; r < GEMV_ROWS; r++) sums[r] = _mm512_setzero_ps();
        const uint16_t *next = j + 2 * GEMV_ROWS <= n ? w + (j + GEMV_ROWS) * ldw : NULL;
        for (int64_t i = 0; i < k; i += 16) {
            __mmask16 lanes = k - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - i)) - 1);
            __m512 xs = _mm512_maskz_loadu_ps(lanes, x + i);
            for (int r = 0; r < GEMV_ROWS; r++) {
                if (next && i % 32 == 0) _mm_prefetch((const char *)(next + r * ldw + i), _MM_HINT_T0);
                __m512 ws = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes, w + (j + r) * ldw + i));
                sums[r] = _mm512_fmadd_ps(xs, ws, sums[r]);
            }
        }
        for (int r = 0; r < GEMV_ROWS; r++) y[j + r] += _mm512_reduce_add_ps(sums[r]);
    }
    for (; j < n; j++) {
        __m512 sum = _mm512_setzero_ps();
        for (int64_t i = 0; i < k; i += 16) {
            __mmask16 lanes = k - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - i)) - 1);
            __m512 ws = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes, w + j * ldw + i));
            sum = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(lanes, x + i), ws, sum);
        }
        y[j] += _mm512_reduce_add_ps(sum);
    }
}
#endif

void cpu_float16_weight_gemv(int64_t n, int64_t k, const float *x, const uint16_t *w, int64_t ldw, float *y,
                             bool vector) {
    if (n <= 0 || k <= 0) return;
#if HALF_VECTOR
    if (vector) {
        float16_weight_gemv_vector(n, k, x, w, ldw, y);
        return;
    }
#else
    (void)vector;
#endif
    for (int64_t j = 0; j < n; j++) {
        float sum = 0.0f;
        for (int64_t i = 0; i < k; i++) sum += x[i] * tc_float16_to_float(w[j * ldw + i]);
        y[j] += sum;
    }
}

void cpu_half_to_float(tc_dtype dtype, const uint16_t *in, float *out, int64_t n, bool vector) {
    int64_t i = 0;
#if HALF_VECTOR
    if (vector) i = half_to_float_vector(dtype, in, out, n);
#else
    (void)vector;
#endif
    if (dtype == TC_BFLOAT16)
        for (; i < n; i++) out[i] = tc_bfloat16_to_float(in[i]);
    else
        for (; i < n; i++) out[i] = tc_float16_to_float(in[i]);
}

void cpu_float_to_half(tc_dtype dtype, const float *in, uint16_t *out, int64_t n, bool vector) {
    int64_t i = 0;
#if HALF_VECTOR
    if (vector) i = float_to_half_vector(dtype, in, out, n);
#else
    (void)vector;
#endif
    if (dtype == TC_BFLOAT16)
        for (; i < n; i++) out[i] = tc_float_to_bfloat16(in[i]);
    else
        for (; i < n; i++) out[i] = tc_float_to_float16(in[i]);
}
