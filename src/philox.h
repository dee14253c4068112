/*
 * philox.h: Philox 4x32-10 (Salmon et al., "Parallel random numbers: as
 * easy as 1, 2, 3", SC 2011) and the conversions of its words into
 * numbers, compiled as C by the CPU backend (cpu_random.c) and as CUDA
 * C++ by the CUDA one (cuda_random.cu), so a seeded draw gives the same
 * numbers on both. A counter and a key give four words, independently of
 * any other counter: element i of a draw depends only on (seed, offset,
 * i), whatever the threads.
 */
#ifndef TRICYCLE_PHILOX_H
#define TRICYCLE_PHILOX_H

#include "ops_math.h" /* TC_MATH_FN */

#include <stdint.h>

#define TC_PHILOX_M0 0xD2511F53u
#define TC_PHILOX_M1 0xCD9E8D57u
#define TC_PHILOX_W0 0x9E3779B9u
#define TC_PHILOX_W1 0xBB67AE85u

#ifdef __CUDACC__
#define TC_PHILOX_UNROLL _Pragma("unroll")
#else
#define TC_PHILOX_UNROLL
#endif

typedef struct tc_philox_words {
    uint32_t word[4];
} tc_philox_words;

/* The four words of counter (as the low two of the four 32-bit counter
 * words; the high two are 0) under key, after ten rounds. */
TC_MATH_FN tc_philox_words tc_philox(uint64_t counter, uint64_t key) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    TC_PHILOX_UNROLL
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)TC_PHILOX_M0 * c0, p1 = (uint64_t)TC_PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += TC_PHILOX_W0;
        k1 += TC_PHILOX_W1;
    }
    tc_philox_words out = {{c0, c1, c2, c3}};
    return out;
}

/* Uniform in [0, 1) with 24 bits (exact in float) from one word. */
TC_MATH_FN double tc_philox_uniform(uint32_t word) { return (double)(word >> 8) * (1.0 / 16777216.0); }

/* word / 2^32, in [0, 1): dropout's draw and Box-Muller's angle. */
TC_MATH_FN double tc_philox_unit(uint32_t word) { return (double)word * (1.0 / 4294967296.0); }

/* (word + 1) / 2^32, in (0, 1]: Box-Muller's radius, whose log must be finite. */
TC_MATH_FN double tc_philox_unit_nonzero(uint32_t word) { return ((double)word + 1.0) * (1.0 / 4294967296.0); }

#endif
