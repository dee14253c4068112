/*
 * cuda_softmax.cu: softmax and log-softmax over one dim of a contiguous
 * tensor, with their backward side by side: the twin of
 * src/cpu/cpu_softmax.c (same formulas, sums of exponentials in double,
 * NaN-propagating maxima, an all -inf row treated as max 0).
 *
 * The tensor is [outer, size, inner] around the dim. When inner is 1 (the
 * usual last-dim case) each row is contiguous and gets a block that reduces
 * it cooperatively; otherwise each (outer, inner) column gets a thread that
 * walks it in order, neighbouring threads reading neighbouring columns.
 *
 * Over bfloat16/float16 (T) the arithmetic is float32's (C, cuda_compute_t<T>)
 * on the widened values, and each result is rounded once to T.
 */
#include "cuda_half.h"

/* ---- kernels ---- */

/* The row maximum as the softmax uses it: NaN if any, 0 for an all -inf
 * (or empty) row so that exp(x - max) stays defined. */
template <typename T> __device__ __forceinline__ T usable_max(T max) { return max == -cuda_infinity<T>() ? (T)0 : max; }

template <typename T, typename C>
__device__ __forceinline__ void write_softmax(const T *in, T *result, int64_t size, int64_t stride, int64_t begin,
                                              int64_t step, C max, double sum, bool log_result) {
    if (log_result) {
        C log_sum = (C)log(sum);
        for (int64_t i = begin; i < size; i += step) result[i * stride] = (T)((C)in[i * stride] - max - log_sum);
    } else {
        C scale = (C)(1.0 / sum);
        for (int64_t i = begin; i < size; i += step)
            result[i * stride] = (T)(cuda_exp((C)in[i * stride] - max) * scale);
    }
}

/* One block per contiguous row. */
template <typename T>
__global__ void softmax_rows_kernel(const T *x, T *y, int64_t rows, int64_t size, bool log_result) {
    typedef cuda_compute_t<T> C;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *in = x + r * size;
        C max = -cuda_infinity<C>();
        for (int64_t i = threadIdx.x; i < size; i += blockDim.x) max = nan_max(max, (C)in[i]);
        max = usable_max(block_max(max));
        double sum = 0;
        for (int64_t i = threadIdx.x; i < size; i += blockDim.x) sum += (double)cuda_exp((C)in[i] - max);
        sum = block_sum(sum);
        write_softmax(in, y + r * size, size, 1, threadIdx.x, blockDim.x, max, sum, log_result);
    }
}

/* One thread per strided column (inner > 1). */
template <typename T>
__global__ void softmax_columns_kernel(const T *x, T *y, int64_t outer, int64_t size, int64_t inner,
                                       bool log_result) {
    typedef cuda_compute_t<T> C;
    int64_t columns = outer * inner;
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < columns;
         c += (int64_t)gridDim.x * blockDim.x) {
        int64_t base = c / inner * size * inner + c % inner;
        const T *in = x + base;
        C max = -cuda_infinity<C>();
        for (int64_t i = 0; i < size; i++) max = nan_max(max, (C)in[i * inner]);
        max = usable_max(max);
        double sum = 0;
        for (int64_t i = 0; i < size; i++) sum += (double)cuda_exp((C)in[i * inner] - max);
        write_softmax(in, y + base, size, inner, 0, 1, max, sum, log_result);
    }
}

/* softmax: dx = y * (g - sum(g*y)); log-softmax: dx = g - exp(y) * sum(g). */
template <typename T>
__device__ __forceinline__ double softmax_dot(const T *y, const T *g, int64_t size, int64_t stride, int64_t begin,
                                              int64_t step, bool log_result) {
    double dot = 0;
    for (int64_t i = begin; i < size; i += step)
        dot += log_result ? (double)g[i * stride] : (double)g[i * stride] * (double)y[i * stride];
    return dot;
}

template <typename T>
__device__ __forceinline__ void write_softmax_backward(const T *y, const T *g, T *dx, int64_t size, int64_t stride,
                                                       int64_t begin, int64_t step, double dot, bool log_result) {
    typedef cuda_compute_t<T> C;
    C d = (C)dot;
    for (int64_t i = begin; i < size; i += step) {
        int64_t at = i * stride;
        C yi = (C)y[at], gi = (C)g[at];
        dx[at] = (T)(log_result ? gi - cuda_exp(yi) * d : yi * (gi - d));
    }
}

template <typename T>
__global__ void softmax_backward_rows_kernel(const T *y, const T *g, T *dx, int64_t rows, int64_t size,
                                             bool log_result) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        int64_t base = r * size;
        double dot = block_sum(softmax_dot(y + base, g + base, size, 1, threadIdx.x, blockDim.x, log_result));
        write_softmax_backward(y + base, g + base, dx + base, size, 1, threadIdx.x, blockDim.x, dot, log_result);
    }
}

template <typename T>
__global__ void softmax_backward_columns_kernel(const T *y, const T *g, T *dx, int64_t outer, int64_t size,
                                                int64_t inner, bool log_result) {
    int64_t columns = outer * inner;
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < columns;
         c += (int64_t)gridDim.x * blockDim.x) {
        int64_t base = c / inner * size * inner + c % inner;
        double dot = softmax_dot(y + base, g + base, size, inner, 0, 1, log_result);
        write_softmax_backward(y + base, g + base, dx + base, size, inner, 0, 1, dot, log_result);
    }
}

/* ---- launchers ---- */

static void split_at(const tc_tensor *t, int dim, int64_t *outer, int64_t *size, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < dim; d++) *outer *= t->shape[d];
    for (int d = dim + 1; d < t->ndim; d++) *inner *= t->shape[d];
    *size = t->ndim ? t->shape[dim] : 1;
}

/* Threads for a block per row: enough warps to cover the row, at most CUDA_BLOCK. */
static unsigned row_threads(int64_t size) {
    int64_t threads = (size + CUDA_WARP - 1) / CUDA_WARP * CUDA_WARP;
    if (threads < CUDA_WARP) threads = CUDA_WARP;
    return (unsigned)(threads > CUDA_BLOCK ? CUDA_BLOCK : threads);
}

template <typename T> static T *data_at(const tc_tensor *t) {
    return static_cast<T *>(t->storage->data) + t->offset;
}

tc_status cuda_softmax(const tc_tensor *x, int dim, bool log, tc_tensor *out) {
    int64_t outer, size, inner;
    split_at(x, dim, &outer, &size, &inner);
    const char *name = log ? "log_softmax" : "softmax";
    if (outer * size * inner == 0) return TC_OK;
    cuda_stream stream = cuda_stream_of(x->ctx);
    bool known = cuda_dispatch_float_or_16bit(x->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        if (inner == 1)
            TC_LAUNCH(softmax_rows_kernel<T>, cuda_rows_for(outer), row_threads(size), 0, stream, data_at<T>(x),
                      data_at<T>(out), outer, size, log);
        else
            TC_LAUNCH(softmax_columns_kernel<T>, cuda_blocks_for(outer * inner), CUDA_BLOCK, 0, stream, data_at<T>(x),
                      data_at<T>(out), outer, size, inner, log);
    });
    if (!known)
        return tc_fail(x->ctx, TC_ERROR_DTYPE, "%s: dtype %s is not supported (float32 or float64)", name,
                       tc_dtype_name(x->dtype));
    return cuda_check_launch(x->ctx, name);
}

tc_status cuda_softmax_backward(const tc_tensor *y, const tc_tensor *grad, int dim, bool log, tc_tensor *grad_x) {
    int64_t outer, size, inner;
    split_at(y, dim, &outer, &size, &inner);
    const char *name = log ? "log_softmax backward" : "softmax backward";
    if (outer * size * inner == 0) return TC_OK;
    cuda_stream stream = cuda_stream_of(y->ctx);
    bool known = cuda_dispatch_float_or_16bit(y->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        if (inner == 1)
            TC_LAUNCH(softmax_backward_rows_kernel<T>, cuda_rows_for(outer), row_threads(size), 0, stream,
                      data_at<T>(y), data_at<T>(grad), data_at<T>(grad_x), outer, size, log);
        else
            TC_LAUNCH(softmax_backward_columns_kernel<T>, cuda_blocks_for(outer * inner), CUDA_BLOCK, 0, stream,
                      data_at<T>(y), data_at<T>(grad), data_at<T>(grad_x), outer, size, inner, log);
    });
    if (!known)
        return tc_fail(y->ctx, TC_ERROR_DTYPE, "%s: dtype %s is not supported (float32 or float64)", name,
                       tc_dtype_name(y->dtype));
    return cuda_check_launch(y->ctx, name);
}
