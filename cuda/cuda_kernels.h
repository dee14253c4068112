/*
 * cuda_kernels.h: what the kernel files of the CUDA backend share: launch
 * geometry, strided indexing over several same-shaped operands, warp and
 * block reductions, type-generic math, and the switch from a tc_dtype to a
 * C++ type that instantiates a kernel per dtype.
 *
 * Everything here is standard CUDA C++ so that it also compiles as C++ for
 * the CPU through the emulation header (cuda_common.h). Block reductions
 * assume blockDim.x is a multiple of 32 (every launcher here uses
 * CUDA_BLOCK or a multiple of 32), so full-mask shuffles are always legal.
 */
#ifndef TRICYCLE_CUDA_KERNELS_H
#define TRICYCLE_CUDA_KERNELS_H

#include "cuda_backend.h"
#include "ops_math.h"

#include <math.h>
#include <stdint.h>
#include <type_traits>

#define CUDA_BLOCK 256
#define CUDA_WARP 32
#define CUDA_FULL_MASK 0xffffffffu
/* Grid-stride loops need no more blocks than keep the device busy. */
#define CUDA_MAX_BLOCKS 1024

/* Blocks of CUDA_BLOCK threads for n independent items, capped. */
static inline unsigned cuda_blocks_for(int64_t n) {
    int64_t blocks = (n + CUDA_BLOCK - 1) / CUDA_BLOCK;
    if (blocks < 1) blocks = 1;
    return (unsigned)(blocks > CUDA_MAX_BLOCKS ? CUDA_MAX_BLOCKS : blocks);
}

/* Blocks for one block per item (rows, output elements), capped. */
static inline unsigned cuda_rows_for(int64_t rows) {
    if (rows < 1) return 1;
    return (unsigned)(rows > 65535 ? 65535 : rows);
}

/* Threads for a block per row: enough warps to cover the row, at most CUDA_BLOCK. */
static inline unsigned cuda_row_threads(int64_t size) {
    int64_t threads = (size + CUDA_WARP - 1) / CUDA_WARP * CUDA_WARP;
    if (threads < CUDA_WARP) threads = CUDA_WARP;
    return (unsigned)(threads > CUDA_BLOCK ? CUDA_BLOCK : threads);
}

/* The error of a floating-point kernel given another dtype. */
static inline tc_status cuda_unsupported_dtype(tc_context *ctx, const char *function, tc_dtype dtype) {
    return tc_fail(ctx, TC_ERROR_DTYPE, "%s: dtype %s is not supported (float32 or float64)", function,
                   tc_dtype_name(dtype));
}

/* ---- the dtype switch ----
 * `f(type_tag<T>())` runs with T the element type of dtype; bool data are
 * bytes holding 0 or 1, like the CPU backend's tc_bool_t. */

template <typename T> struct type_tag {
    typedef T type;
};

template <typename F> static inline bool cuda_dispatch_float(tc_dtype dtype, F &&f) {
    switch (dtype) {
    case TC_FLOAT32: f(type_tag<float>()); return true;
    case TC_FLOAT64: f(type_tag<double>()); return true;
    default: return false;
    }
}

template <typename F> static inline bool cuda_dispatch_all(tc_dtype dtype, F &&f) {
    switch (dtype) {
    case TC_FLOAT32: f(type_tag<float>()); return true;
    case TC_FLOAT64: f(type_tag<double>()); return true;
    case TC_INT32: f(type_tag<int32_t>()); return true;
    case TC_INT64: f(type_tag<int64_t>()); return true;
    case TC_UINT8:
    case TC_BOOL: f(type_tag<uint8_t>()); return true;
    default: return false;
    }
}

/* ---- strided operands ----
 * Several tensors of one shape (broadcast views carry stride 0) become
 * cuda_strided views whose dims are coalesced together: size-1 dims
 * dropped, neighbours merged where every operand is contiguous across
 * them, so the common contiguous case has one dim and no division. */

static inline void cuda_coalesce(int n_operands, const tc_tensor *const *operands, cuda_strided *views) {
    const tc_tensor *shape_of = operands[0];
    int ndim = 0;
    for (int k = 0; k < n_operands; k++) {
        views[k].ndim = 0;
        views[k].offset = operands[k]->offset;
    }
    for (int d = 0; d < shape_of->ndim; d++) {
        int64_t size = shape_of->shape[d];
        if (size == 1) continue;
        bool mergeable = ndim > 0;
        for (int k = 0; k < n_operands && mergeable; k++)
            if (views[k].strides[ndim - 1] != operands[k]->strides[d] * size) mergeable = false;
        if (mergeable) {
            for (int k = 0; k < n_operands; k++) {
                views[k].shape[ndim - 1] *= size;
                views[k].strides[ndim - 1] = operands[k]->strides[d];
            }
            continue;
        }
        for (int k = 0; k < n_operands; k++) {
            views[k].shape[ndim] = size;
            views[k].strides[ndim] = operands[k]->strides[d];
        }
        ndim++;
    }
    if (ndim == 0) { /* a single element */
        for (int k = 0; k < n_operands; k++) {
            views[k].shape[0] = 1;
            views[k].strides[0] = 0;
        }
        ndim = 1;
    }
    for (int k = 0; k < n_operands; k++) views[k].ndim = ndim;
}

/* The element offset of linear index i (row-major over view's shape). The
 * loop is unrolled over TC_MAX_DIMS so the view's arrays are indexed by
 * constants and stay in parameter space. */
__device__ __forceinline__ int64_t cuda_offset(const cuda_strided &view, int64_t i) {
    if (view.ndim == 1) return view.offset + i * view.strides[0];
    int64_t at = view.offset;
#pragma unroll
    for (int d = TC_MAX_DIMS - 1; d >= 0; d--) {
        if (d >= view.ndim) continue;
        int64_t size = view.shape[d];
        at += (i % size) * view.strides[d];
        i /= size;
    }
    return at;
}

/* ---- type-generic math (float and double) ---- */

/* cuda_exp, cuda_log, ...: the device library's function for each of
 * ops_math.h's TC_MATH_LIBRARY, overloaded for float and double. */
#define CUDA_LIBRARY_FUNCTIONS(name)                                                                               \
    __device__ __forceinline__ float cuda_##name(float x) { return name##f(x); }                                   \
    __device__ __forceinline__ double cuda_##name(double x) { return name(x); }
TC_MATH_LIBRARY(CUDA_LIBRARY_FUNCTIONS)

/* sin and cos without the device library's reduction of huge arguments,
 * whose table lives in local memory (the build rejects local memory): x =
 * k*pi + r with pi in two parts and fused multiply-adds (r exact to about
 * 1e-16 for |x| below 2^40), then sinpi/cospi of r/pi on |r| <= pi/2,
 * negated for odd k. Float results are computed in double and rounded. */
#define CUDA_PI_HIGH 3.141592653589793116
#define CUDA_PI_LOW 1.2246467991473532e-16
#define CUDA_INVERSE_PI 0.31830988618379067154

#ifdef TC_CUDA_EMULATION
/* The host's libm has no sinpi/cospi; these agree with it to an ulp. */
static inline double sinpi(double x) { return sin(CUDA_PI_HIGH * x); }
static inline double cospi(double x) { return cos(CUDA_PI_HIGH * x); }
#endif

/* r in [-pi/2, pi/2] and whether k is odd, for x = k*pi + r. */
__device__ __forceinline__ double reduce_by_pi(double x, bool *odd) {
    double k = rint(x * CUDA_INVERSE_PI);
    *odd = k - 2.0 * floor(k * 0.5) != 0.0;
    return fma(-k, CUDA_PI_LOW, fma(-k, CUDA_PI_HIGH, x));
}

__device__ __forceinline__ double cuda_sin(double x) {
    bool odd;
    double s = sinpi(reduce_by_pi(x, &odd) * CUDA_INVERSE_PI);
    return odd ? -s : s;
}
__device__ __forceinline__ double cuda_cos(double x) {
    bool odd;
    double c = cospi(reduce_by_pi(x, &odd) * CUDA_INVERSE_PI);
    return odd ? -c : c;
}
__device__ __forceinline__ float cuda_sin(float x) { return (float)cuda_sin((double)x); }
__device__ __forceinline__ float cuda_cos(float x) { return (float)cuda_cos((double)x); }
__device__ __forceinline__ float cuda_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double cuda_pow(double x, double y) { return pow(x, y); }

template <typename T> __device__ __forceinline__ T cuda_infinity() { return (T)INFINITY; }

/* The cuda math kit of ops_math.h: its element-wise formulas over T (float
 * or double, the kernel's template parameter), with the functions above.
 * Its helpers (cuda_sigmoid, cuda_silu, cuda_gelu_tanh and their slopes)
 * are the same formulas as the CPU's; cuda_gelu_tanh also serves the GEMM
 * epilogue, so linear_gelu gives linear-then-gelu_tanh's bits. */
#define cuda_real T
#define cuda_const(c) ((T)(c))
#define cuda_select(m, a, b) ((m) ? (a) : (b))
#define cuda_fn template <typename T> __device__ __forceinline__
TC_MATH_HELPERS(cuda)
/* Exact GELU is evaluated in double, as on the CPU (in float, erfc's
 * argument rounding alone costs about 2 z^2 ulps). */
#define cuda_wide cuda_double
#define cuda_double_real double
#define cuda_double_const(c) ((double)(c))
#define cuda_double_exp cuda_exp
#define cuda_double_erfc cuda_erfc

/* ---- reductions ----
 * Warp reductions leave the result in every lane; block reductions in
 * every thread. A block reduction may be called repeatedly in one kernel:
 * it synchronises before reusing its shared slots. */

template <typename T> __device__ __forceinline__ T warp_sum(T value) {
#pragma unroll
    for (int lane_mask = CUDA_WARP / 2; lane_mask > 0; lane_mask >>= 1)
        value += __shfl_xor_sync(CUDA_FULL_MASK, value, lane_mask);
    return value;
}

template <typename T> __device__ __forceinline__ T warp_max(T value) {
#pragma unroll
    for (int lane_mask = CUDA_WARP / 2; lane_mask > 0; lane_mask >>= 1) {
        T other = __shfl_xor_sync(CUDA_FULL_MASK, value, lane_mask);
        value = (other > value || other != other) ? other : value;
    }
    return value;
}

template <typename T> __device__ T block_sum(T value) {
    __shared__ T partial[CUDA_WARP];
    int lane = threadIdx.x % CUDA_WARP, warp = threadIdx.x / CUDA_WARP;
    int warps = blockDim.x / CUDA_WARP;
    value = warp_sum(value);
    __syncthreads(); /* a previous call may still be reading partial */
    if (lane == 0) partial[warp] = value;
    __syncthreads();
    value = lane < warps ? partial[lane] : (T)0;
    return warp_sum(value);
}

/* The larger of a and b, NaN when either is NaN (first NaN wins). */
template <typename T> __device__ __forceinline__ T nan_max(T a, T b) { return (b > a || b != b) ? b : a; }

/* Maxima propagate NaN, like the CPU's row maxima. */
template <typename T> __device__ T block_max(T value) {
    __shared__ T partial[CUDA_WARP];
    int lane = threadIdx.x % CUDA_WARP, warp = threadIdx.x / CUDA_WARP;
    int warps = blockDim.x / CUDA_WARP;
    value = warp_max(value);
    __syncthreads();
    if (lane == 0) partial[warp] = value;
    __syncthreads();
    value = lane < warps ? partial[lane] : -cuda_infinity<T>();
    return warp_max(value);
}

#endif
