/*
 * cuda_conv.cu: im2col and col2im, the twins of src/cpu/cpu_conv.c (the
 * contract is on the slots, src/backend_slots.h; the layout on
 * tc_conv_geometry, src/internal.h). im2col: one thread per column entry.
 * col2im: one thread per input element, gathering the entries that read it
 * in a fixed order, so no atomics and the same sum every run. Max pooling:
 * one thread per output; its backward, one thread per input element adding
 * the gradients of the windows whose argmax it is, in the same way.
 * Over bfloat16/float16 (T) the sums are float32's (C, cuda_compute_t<T>),
 * rounded once to T, and the maxima are compared as float32: the bits of the
 * float32 kernels on the widened values, rounded.
 */
#include "cuda_half.h"

template <typename T>
__global__ void im2col_kernel(tc_conv_geometry g, const T *x, T pad, T *cols, int64_t total) {
    int64_t window = g.kernel[0] * g.kernel[1], length = g.out_height * g.out_width;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t column = e % length, row = e / length;
        if (g.batch_last) {
            /* row is (c, i, j) * batch + n here: back to the image-major (n, c, i, j) */
            int64_t n = row % g.batch;
            row = n * g.channels * window + row / g.batch;
        }
        int64_t oh = column / g.out_width, ow = column % g.out_width;
        int64_t j = row % g.kernel[1], i = row / g.kernel[1] % g.kernel[0], plane = row / window;
        int64_t ih = oh * g.stride[0] - g.padding[0] + i * g.dilation[0];
        int64_t iw = ow * g.stride[1] - g.padding[1] + j * g.dilation[1];
        bool inside = ih >= 0 && ih < g.height && iw >= 0 && iw < g.width;
        cols[e] = inside ? x[(plane * g.height + ih) * g.width + iw] : pad;
    }
}

template <typename T, typename C>
__global__ void col2im_kernel(tc_conv_geometry g, const T *cols, T *x, int64_t total) {
    int64_t window = g.kernel[0] * g.kernel[1], length = g.out_height * g.out_width;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t iw = e % g.width, ih = e / g.width % g.height, plane = e / (g.width * g.height);
        C sum = 0;
        for (int64_t i = 0; i < g.kernel[0]; i++) {
            int64_t top = ih + g.padding[0] - i * g.dilation[0];
            if (top < 0 || top % g.stride[0] != 0 || top / g.stride[0] >= g.out_height) continue;
            for (int64_t j = 0; j < g.kernel[1]; j++) {
                int64_t left = iw + g.padding[1] - j * g.dilation[1];
                if (left < 0 || left % g.stride[1] != 0 || left / g.stride[1] >= g.out_width) continue;
                int64_t row = plane * window + i * g.kernel[1] + j;
                if (g.batch_last) row = row % (g.channels * window) * g.batch + plane / g.channels;
                sum += (C)cols[row * length + top / g.stride[0] * g.out_width + left / g.stride[1]];
            }
        }
        x[e] = (T)sum;
    }
}

extern "C" tc_status cuda_im2col(tc_context *ctx, tc_dtype dtype, const tc_conv_geometry *geometry, const void *x,
                                 double pad_value, void *cols) {
    const tc_conv_geometry &g = *geometry;
    int64_t total = g.batch * g.channels * g.kernel[0] * g.kernel[1] * g.out_height * g.out_width;
    if (total == 0) return TC_OK;
    bool known = cuda_dispatch_float_or_16bit(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(im2col_kernel<T>, cuda_blocks_for(total), CUDA_BLOCK, 0, cuda_stream_of(ctx), g,
                  static_cast<const T *>(x), static_cast<T>(pad_value), static_cast<T *>(cols), total);
    });
    if (!known) return cuda_unsupported_dtype(ctx, "im2col", dtype);
    return cuda_check_launch(ctx, "im2col");
}

extern "C" tc_status cuda_col2im(tc_context *ctx, tc_dtype dtype, const tc_conv_geometry *geometry, const void *cols,
                                 void *x) {
    const tc_conv_geometry &g = *geometry;
    int64_t total = g.batch * g.channels * g.height * g.width;
    if (total == 0) return TC_OK;
    bool known = cuda_dispatch_float_or_16bit(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        auto kernel = col2im_kernel<T, cuda_compute_t<T>>;
        TC_LAUNCH(kernel, cuda_blocks_for(total), CUDA_BLOCK, 0, cuda_stream_of(ctx), g,
                  static_cast<const T *>(cols), static_cast<T *>(x), total);
    });
    if (!known) return cuda_unsupported_dtype(ctx, "col2im", dtype);
    return cuda_check_launch(ctx, "col2im");
}

template <typename T, typename C>
__global__ void max_pool_kernel(tc_conv_geometry g, const T *x, T *out, int64_t *indices, int64_t total) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t ow = e % g.out_width, oh = e / g.out_width % g.out_height, plane = e / (g.out_width * g.out_height);
        const T *image = x + plane * g.height * g.width;
        C best = -(C)INFINITY;
        int64_t where = -1;
        for (int64_t i = 0; i < g.kernel[0]; i++) {
            int64_t ih = oh * g.stride[0] - g.padding[0] + i * g.dilation[0];
            if (ih < 0 || ih >= g.height) continue;
            for (int64_t j = 0; j < g.kernel[1]; j++) {
                int64_t iw = ow * g.stride[1] - g.padding[1] + j * g.dilation[1];
                if (iw < 0 || iw >= g.width) continue;
                C v = (C)image[ih * g.width + iw];
                if (where < 0 || v > best || (isnan(v) && !isnan(best))) {
                    best = v;
                    where = ih * g.width + iw;
                }
            }
        }
        out[e] = (T)best;
        indices[e] = where;
    }
}

template <typename T, typename C>
__global__ void max_pool_backward_kernel(tc_conv_geometry g, const T *grad, const int64_t *indices, T *dx,
                                         int64_t total) {
    int64_t length = g.out_height * g.out_width;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t iw = e % g.width, ih = e / g.width % g.height, plane = e / (g.width * g.height);
        int64_t here = ih * g.width + iw;
        C sum = 0;
        for (int64_t i = 0; i < g.kernel[0]; i++) {
            int64_t top = ih + g.padding[0] - i * g.dilation[0];
            if (top < 0 || top % g.stride[0] != 0 || top / g.stride[0] >= g.out_height) continue;
            for (int64_t j = 0; j < g.kernel[1]; j++) {
                int64_t left = iw + g.padding[1] - j * g.dilation[1];
                if (left < 0 || left % g.stride[1] != 0 || left / g.stride[1] >= g.out_width) continue;
                int64_t o = plane * length + top / g.stride[0] * g.out_width + left / g.stride[1];
                if (indices[o] == here) sum += (C)grad[o];
            }
        }
        dx[e] = (T)sum;
    }
}

extern "C" tc_status cuda_max_pool2d(tc_context *ctx, tc_dtype dtype, const tc_conv_geometry *geometry,
                                     const void *x, void *out, int64_t *indices) {
    const tc_conv_geometry &g = *geometry;
    int64_t total = g.batch * g.channels * g.out_height * g.out_width;
    if (total == 0) return TC_OK;
    bool known = cuda_dispatch_float_or_16bit(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        auto kernel = max_pool_kernel<T, cuda_compute_t<T>>;
        TC_LAUNCH(kernel, cuda_blocks_for(total), CUDA_BLOCK, 0, cuda_stream_of(ctx), g,
                  static_cast<const T *>(x), static_cast<T *>(out), indices, total);
    });
    if (!known) return cuda_unsupported_dtype(ctx, "max_pool2d", dtype);
    return cuda_check_launch(ctx, "max_pool2d");
}

extern "C" tc_status cuda_max_pool2d_backward(tc_context *ctx, tc_dtype dtype, const tc_conv_geometry *geometry,
                                              const void *grad, const int64_t *indices, void *dx) {
    const tc_conv_geometry &g = *geometry;
    int64_t total = g.batch * g.channels * g.height * g.width;
    if (total == 0) return TC_OK;
    bool known = cuda_dispatch_float_or_16bit(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        auto kernel = max_pool_backward_kernel<T, cuda_compute_t<T>>;
        TC_LAUNCH(kernel, cuda_blocks_for(total), CUDA_BLOCK, 0, cuda_stream_of(ctx), g,
                  static_cast<const T *>(grad), indices, static_cast<T *>(dx), total);
    });
    if (!known) return cuda_unsupported_dtype(ctx, "max_pool2d", dtype);
    return cuda_check_launch(ctx, "max_pool2d");
}
