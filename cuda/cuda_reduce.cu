/*
 * cuda_reduce.cu: reductions over any set of dims, the twin of
 * src/cpu/cpu_reduce.c. x is seen as two strided views: the kept dims
 * (one output element each, in row-major order, so the contiguous output
 * is indexed directly) and the reduced dims (one run per output element).
 *
 * Two kernels share the element rules: one thread per output element
 * (reading neighbouring runs side by side, for runs that are strided in
 * memory such as a sum over the batch dim), or one block per output element
 * (long contiguous runs). Sums accumulate in double as on the CPU, integer
 * sums in unsigned 64-bit, wrapping around; max, min and their arg versions
 * keep (value, index) pairs with the CPU's rules: the first NaN wins, then
 * the extreme value, ties to the lowest index, so the answer does not
 * depend on the order the pairs are combined in.
 *
 * bfloat16 and float16 x (CUDA_HALF_SLOTS): elements are read as float32
 * (cuda_compute_t), sums still in double, and the result rounded once to x's
 * dtype through float32, the bits of widening x and reducing in float32.
 */
#include "cuda_half.h"

/* Runs at least this long, contiguous or few, get a block each. */
#define BLOCK_RUN_LENGTH 256
#define FEW_RUNS 2048

/* ---- kernels ---- */

/* Whether (value, index) should replace (best, best_index); index < 0
 * marks "no element yet". */
template <typename T>
__device__ __forceinline__ bool replaces(T value, int64_t index, T best, int64_t best_index, bool is_max) {
    if (index < 0) return false;
    if (best_index < 0) return true;
    if constexpr (std::is_floating_point<T>::value) {
        bool value_nan = value != value, best_nan = best != best;
        if (best_nan) return value_nan && index < best_index;
        if (value_nan) return true;
    }
    if (value == best) return index < best_index;
    return is_max ? value > best : value < best;
}

/* Shuffles a value of any element type through a type the shuffle has. */
template <typename T> __device__ __forceinline__ T shuffle_xor(T value, int lane_mask) {
    if constexpr (sizeof(T) < sizeof(int)) return (T)__shfl_xor_sync(CUDA_FULL_MASK, (int)value, lane_mask);
    else if constexpr (std::is_same<T, int64_t>::value)
        return (T)__shfl_xor_sync(CUDA_FULL_MASK, (long long)value, lane_mask);
    else return __shfl_xor_sync(CUDA_FULL_MASK, value, lane_mask);
}

/* The best pair of the block, left in every thread. */
template <typename T> __device__ void block_best(T &best, int64_t &best_index, bool is_max) {
    __shared__ T values[CUDA_WARP];
    __shared__ int64_t indices[CUDA_WARP];
    int lane = threadIdx.x % CUDA_WARP, warp = threadIdx.x / CUDA_WARP, warps = blockDim.x / CUDA_WARP;
    for (int round = 0; round < 2; round++) {
#pragma unroll
        for (int lane_mask = CUDA_WARP / 2; lane_mask > 0; lane_mask >>= 1) {
            T value = shuffle_xor(best, lane_mask);
            int64_t index = shuffle_xor(best_index, lane_mask);
            if (replaces(value, index, best, best_index, is_max)) {
                best = value;
                best_index = index;
            }
        }
        if (round == 1) break;
        __syncthreads();
        if (lane == 0) {
            values[warp] = best;
            indices[warp] = best_index;
        }
        __syncthreads();
        best = lane < warps ? values[lane] : (T)0;
        best_index = lane < warps ? indices[lane] : -1;
    }
}

template <typename T>
__device__ __forceinline__ double run_sum(const T *x, const cuda_strided &run, int64_t base, int64_t begin,
                                          int64_t step, int64_t length) {
    double sum = 0;
    for (int64_t i = begin; i < length; i += step) sum += (double)(cuda_compute_t<T>)x[base + cuda_offset(run, i)];
    return sum;
}

/* An integer sum wraps around as two's complement, exactly: added as
 * unsigned 64-bit values, where the wrap-around is defined, as
 * cpu_reduce.c does (the op layer sums integers as int64). */
template <typename T>
__device__ __forceinline__ unsigned long long run_sum_wrapping(const T *x, const cuda_strided &run, int64_t base,
                                                               int64_t begin, int64_t step, int64_t length) {
    unsigned long long sum = 0;
    for (int64_t i = begin; i < length; i += step) sum += (unsigned long long)x[base + cuda_offset(run, i)];
    return sum;
}

template <typename T>
__device__ __forceinline__ double run_squares(const T *x, const cuda_strided &run, int64_t base, int64_t begin,
                                              int64_t step, int64_t length, double mean) {
    double squares = 0;
    for (int64_t i = begin; i < length; i += step) {
        double d = (double)(cuda_compute_t<T>)x[base + cuda_offset(run, i)] - mean;
        squares += d * d;
    }
    return squares;
}

template <typename T>
__device__ __forceinline__ void run_best(const T *x, const cuda_strided &run, int64_t base, int64_t begin,
                                         int64_t step, int64_t length, bool is_max, cuda_compute_t<T> &best,
                                         int64_t &best_index) {
    for (int64_t i = begin; i < length; i += step) {
        cuda_compute_t<T> value = (cuda_compute_t<T>)x[base + cuda_offset(run, i)];
        if (replaces(value, i, best, best_index, is_max)) {
            best = value;
            best_index = i;
        }
    }
}

static __device__ __forceinline__ double variance_of(double squares, int64_t length, int correction) {
    double denominator = (double)(length - correction);
    return denominator > 0 ? squares / denominator : (double)NAN;
}

/* One thread per output element, each reducing its run in order (the
 * CPU's order, so sums agree to the bit). */
template <typename T>
__global__ void reduce_by_thread_kernel(tc_reduce_op op, int correction, const T *x, cuda_strided kept,
                                        cuda_strided run, int64_t runs, int64_t length, void *out) {
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < runs; r += (int64_t)gridDim.x * blockDim.x) {
        int64_t base = cuda_offset(kept, r);
        if constexpr (std::is_integral<T>::value) {
            if (op == TC_REDUCE_SUM) {
                static_cast<T *>(out)[r] = (T)run_sum_wrapping(x, run, base, 0, 1, length);
                continue;
            }
        }
        if (op == TC_REDUCE_SUM || op == TC_REDUCE_MEAN) {
            double sum = run_sum(x, run, base, 0, 1, length);
            static_cast<T *>(out)[r] = (T)(op == TC_REDUCE_MEAN ? sum / (double)length : sum);
        } else if (op == TC_REDUCE_VAR) {
            double mean = run_sum(x, run, base, 0, 1, length) / (double)length;
            double squares = run_squares(x, run, base, 0, 1, length, mean);
            static_cast<T *>(out)[r] = (T)variance_of(squares, length, correction);
        } else {
            bool is_max = op == TC_REDUCE_MAX || op == TC_REDUCE_ARGMAX;
            cuda_compute_t<T> best = 0;
            int64_t best_index = -1;
            run_best(x, run, base, 0, 1, length, is_max, best, best_index);
            if (op == TC_REDUCE_ARGMAX || op == TC_REDUCE_ARGMIN) static_cast<int64_t *>(out)[r] = best_index;
            else static_cast<T *>(out)[r] = T(best);
        }
    }
}

/* One block per output element; threads stride over the run. */
template <typename T>
__global__ void reduce_by_block_kernel(tc_reduce_op op, int correction, const T *x, cuda_strided kept,
                                       cuda_strided run, int64_t runs, int64_t length, void *out) {
    for (int64_t r = blockIdx.x; r < runs; r += gridDim.x) {
        int64_t base = cuda_offset(kept, r);
        if constexpr (std::is_integral<T>::value) {
            if (op == TC_REDUCE_SUM) {
                unsigned long long sum = block_sum(run_sum_wrapping(x, run, base, threadIdx.x, blockDim.x, length));
                if (threadIdx.x == 0) static_cast<T *>(out)[r] = (T)sum;
                continue;
            }
        }
        if (op == TC_REDUCE_SUM || op == TC_REDUCE_MEAN || op == TC_REDUCE_VAR) {
            double sum = block_sum(run_sum(x, run, base, threadIdx.x, blockDim.x, length));
            double value = op == TC_REDUCE_SUM ? sum : sum / (double)length;
            if (op == TC_REDUCE_VAR)
                value = variance_of(block_sum(run_squares(x, run, base, threadIdx.x, blockDim.x, length, value)),
                                    length, correction);
            if (threadIdx.x == 0) static_cast<T *>(out)[r] = (T)value;
        } else {
            bool is_max = op == TC_REDUCE_MAX || op == TC_REDUCE_ARGMAX;
            cuda_compute_t<T> best = 0;
            int64_t best_index = -1;
            run_best(x, run, base, threadIdx.x, blockDim.x, length, is_max, best, best_index);
            block_best(best, best_index, is_max);
            if (threadIdx.x == 0) {
                if (op == TC_REDUCE_ARGMAX || op == TC_REDUCE_ARGMIN) static_cast<int64_t *>(out)[r] = best_index;
                else static_cast<T *>(out)[r] = T(best);
            }
        }
    }
}

/* ---- launchers ---- */

/* The view of x over the dims whose mask bit equals `reduced`, neighbours
 * merged where x is contiguous across them; its element count in *count. */
static cuda_strided dims_view(const tc_tensor *x, uint32_t mask, bool reduced, int64_t *count) {
    cuda_strided view;
    view.ndim = 0;
    view.offset = 0;
    *count = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (((mask >> d) & 1u) != (reduced ? 1u : 0u) || x->shape[d] == 1) continue;
        *count *= x->shape[d];
        int n = view.ndim;
        if (n > 0 && view.strides[n - 1] == x->strides[d] * x->shape[d]) {
            view.shape[n - 1] *= x->shape[d];
            view.strides[n - 1] = x->strides[d];
        } else {
            view.shape[n] = x->shape[d];
            view.strides[n] = x->strides[d];
            view.ndim = n + 1;
        }
    }
    if (view.ndim == 0) {
        view.ndim = 1;
        view.shape[0] = 1;
        view.strides[0] = 0;
    }
    return view;
}

/* cuda_dispatch_all's dtypes and the two 16-bit ones. */
template <typename F> static bool dispatch_reducible(tc_dtype dtype, F &&f) {
    switch (dtype) {
    case TC_BFLOAT16: f(type_tag<cuda_bfloat16>()); return true;
    case TC_FLOAT16: f(type_tag<cuda_float16>()); return true;
    default: return cuda_dispatch_all(dtype, f);
    }
}

static const char *reduce_name(tc_reduce_op op) {
    switch (op) {
    case TC_REDUCE_SUM: return "sum";
    case TC_REDUCE_MEAN: return "mean";
    case TC_REDUCE_MAX: return "max";
    case TC_REDUCE_MIN: return "min";
    case TC_REDUCE_ARGMAX: return "argmax";
    case TC_REDUCE_ARGMIN: return "argmin";
    case TC_REDUCE_VAR: return "var";
    default: return "reduce";
    }
}

tc_status cuda_reduce(tc_reduce_op op, const tc_tensor *x, uint32_t mask, int correction, tc_tensor *out) {
    int64_t runs, length;
    cuda_strided kept = dims_view(x, mask, false, &runs);
    cuda_strided run = dims_view(x, mask, true, &length);
    if (runs == 0) return TC_OK;
    if (length == 0) {
        if (op == TC_REDUCE_SUM) return cuda_fill(out, 0.0);
        if (op == TC_REDUCE_MEAN || op == TC_REDUCE_VAR) return cuda_fill(out, NAN);
        return tc_fail(x->ctx, TC_ERROR_SHAPE, "%s: cannot reduce over an empty dim (shape %s)",
                       op == TC_REDUCE_MAX || op == TC_REDUCE_ARGMAX ? "max" : "min", TC_SHAPE(x));
    }
    kept.offset = x->offset;
    bool by_block = length >= BLOCK_RUN_LENGTH && (run.strides[run.ndim - 1] == 1 || runs < FEW_RUNS);
    cuda_stream stream = cuda_stream_of(x->ctx);
    size_t out_size = op == TC_REDUCE_ARGMAX || op == TC_REDUCE_ARGMIN ? sizeof(int64_t) : tc_dtype_size(x->dtype);
    void *result = static_cast<char *>(out->storage->data) + out->offset * (int64_t)out_size;
    bool known = dispatch_reducible(x->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        const T *data = static_cast<const T *>(x->storage->data);
        if (by_block)
            TC_LAUNCH(reduce_by_block_kernel<T>, cuda_rows_for(runs), CUDA_BLOCK, 0, stream, op, correction, data,
                      kept, run, runs, length, result);
        else
            TC_LAUNCH(reduce_by_thread_kernel<T>, cuda_blocks_for(runs), CUDA_BLOCK, 0, stream, op, correction, data,
                      kept, run, runs, length, result);
    });
    if (!known) return tc_fail(x->ctx, TC_ERROR_DTYPE, "%s: unknown dtype", reduce_name(op));
    return cuda_check_launch(x->ctx, reduce_name(op));
}
