/*
 * cuda_half.h: bfloat16 and float16 elements for the CUDA kernels. Each is a
 * distinct type holding its bits, read as float32 and made from a float32
 * (rounded once to nearest even) with src/half.h's functions, the very ones
 * the CPU backend uses, so both devices round alike. A double goes to float32
 * first: the bits the engine gets when a float32 kernel's result is rounded
 * to 16 bits (src/ops_half.c).
 *
 * A kernel over element type T stores T and computes in cuda_compute_t<T>
 * (float for the 16-bit types, T otherwise); the slots' 16-bit contract is
 * in src/backend_slots.h.
 */
#ifndef TRICYCLE_CUDA_HALF_H
#define TRICYCLE_CUDA_HALF_H

#include "cuda_kernels.h"

#include "../src/half.h"

#include <type_traits>

/* One 16-bit float type per format (bfloat16 when `brain`, else IEEE
 * binary16), so that kernels and conversions can be picked by type. */
template <bool brain> struct cuda_16bit_float {
    uint16_t bits;
    cuda_16bit_float() = default;
    __host__ __device__ explicit cuda_16bit_float(float x)
        : bits(brain ? tc_float_to_bfloat16(x) : tc_float_to_float16(x)) {}
    __host__ __device__ explicit cuda_16bit_float(double x) : cuda_16bit_float((float)x) {}
    __host__ __device__ operator float() const { return brain ? tc_bfloat16_to_float(bits) : tc_float16_to_float(bits); }
};
typedef cuda_16bit_float<true> cuda_bfloat16;
typedef cuda_16bit_float<false> cuda_float16;

template <typename T> struct cuda_is_16bit : std::false_type {};
template <> struct cuda_is_16bit<cuda_bfloat16> : std::true_type {};
template <> struct cuda_is_16bit<cuda_float16> : std::true_type {};

/* The type a kernel over T computes (and keeps per-row statistics) in. */
template <typename T> struct cuda_compute {
    typedef T type;
};
template <> struct cuda_compute<cuda_bfloat16> {
    typedef float type;
};
template <> struct cuda_compute<cuda_float16> {
    typedef float type;
};
template <typename T> using cuda_compute_t = typename cuda_compute<T>::type;

/* The library links no engine code (tc_dtype_is_16bit is the engine's). */
static inline bool cuda_dtype_is_16bit(tc_dtype dtype) { return dtype == TC_BFLOAT16 || dtype == TC_FLOAT16; }

/* cuda_dispatch_float's dtypes and the two 16-bit ones: for the kernels of
 * slots in the backend's half_slots. */
template <typename F> static inline bool cuda_dispatch_float_or_16bit(tc_dtype dtype, F &&f) {
    switch (dtype) {
    case TC_BFLOAT16: f(type_tag<cuda_bfloat16>()); return true;
    case TC_FLOAT16: f(type_tag<cuda_float16>()); return true;
    default: return cuda_dispatch_float(dtype, f);
    }
}

#endif
