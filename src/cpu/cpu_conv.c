/*
 * cpu_conv.c: im2col and col2im (the contract is on the slots,
 * backend_slots.h; the layout on tc_conv_geometry, internal.h). im2col's
 * threads take ranges of column rows (one channel and kernel offset of one
 * image each); col2im's take whole input planes, each summing its rows in a
 * fixed order, so the result does not depend on the thread count. Along a
 * row, the output positions whose input lies inside x form one range,
 * computed once: stride-1 rows are then a plain copy. Max pooling's threads
 * take whole planes too: its backward adds each gradient at its window's
 * argmax, and overlapping windows of a plane stay on one thread.
 */
#include "cpu_backend.h"
#include "cpu_iterate.h"

#include <math.h>
#include <string.h>

typedef struct conv_job {
    const tc_conv_geometry *g;
    const void *from;
    void *to;
    double pad_value;
    int64_t *argmax;             /* max pooling's forward writes each window's */
    const int64_t *argmax_read; /* and its backward reads them */
} conv_job;

/* The output positions o in [0, count) whose input o * stride + offset lies in
 * [0, size): [*first, *last). */
static void inside_range(int64_t offset, int64_t stride, int64_t size, int64_t count, int64_t *first,
                         int64_t *last) {
    int64_t lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    int64_t hi = size - offset <= 0 ? 0 : (size - offset - 1) / stride + 1;
    if (hi > count) hi = count;
    if (lo > hi) lo = hi;
    *first = lo;
    *last = hi;
}

/* The start of column row r = (n, c, i, j) of the image-major order. */
static int64_t column_row_offset(const tc_conv_geometry *g, int64_t r, int64_t window, int64_t length) {
    if (!g->batch_last) return r * length;
    int64_t rows = g->channels * window;
    return (r % rows * g->batch + r / rows) * length;
}

/* The geometry is copied to locals (the stores through T * could alias it
 * for the compiler); stride-1 rows are sweeps of contiguous runs, which
 * vectorise, rather than calls to memcpy for runs of a few elements. */
#define CONV_KERNELS(T)                                                                                              \
    static void im2col_rows_##T(int64_t begin, int64_t end, void *argument) {                                        \
        const conv_job *job = argument;                                                                              \
        const tc_conv_geometry g = *job->g;                                                                          \
        const int64_t window = g.kernel[0] * g.kernel[1], length = g.out_height * g.out_width;                       \
        const int64_t out_width = g.out_width, stride = g.stride[1];                                                 \
        const T pad = (T)job->pad_value;                                                                             \
        for (int64_t r = begin; r < end; r++) {                                                                      \
            int64_t j = r % g.kernel[1], i = r / g.kernel[1] % g.kernel[0], plane = r / window;                      \
            const T *x = (const T *)job->from + plane * g.height * g.width;                                          \
            T *row = (T *)job->to + column_row_offset(&g, r, window, length);                                        \
            int64_t column_offset = j * g.dilation[1] - g.padding[1], first, last;                                   \
            inside_range(column_offset, stride, g.width, out_width, &first, &last);                                  \
            for (int64_t oh = 0; oh < g.out_height; oh++, row += out_width) {                                        \
                int64_t ih = oh * g.stride[0] - g.padding[0] + i * g.dilation[0];                                    \
                if (ih < 0 || ih >= g.height) {                                                                      \
                    for (int64_t ow = 0; ow < out_width; ow++) row[ow] = pad;                                        \
                    continue;                                                                                        \
                }                                                                                                    \
                const T *line = x + ih * g.width;                                                                    \
                for (int64_t ow = 0; ow < first; ow++) row[ow] = pad;                                                \
                if (stride == 1) {                                                                                   \
                    const T *source = line + (first + column_offset);                                                \
                    for (int64_t q = 0; q < last - first; q++) row[first + q] = source[q];                           \
                } else {                                                                                             \
                    for (int64_t ow = first; ow < last; ow++) row[ow] = line[ow * stride + column_offset];           \
                }                                                                                                    \
                for (int64_t ow = last; ow < out_width; ow++) row[ow] = pad;                                         \
            }                                                                                                        \
        }                                                                                                            \
    }                                                                                                                \
    static void col2im_planes_##T(int64_t begin, int64_t end, void *argument) {                                      \
        const conv_job *job = argument;                                                                              \
        const tc_conv_geometry g = *job->g;                                                                          \
        const int64_t window = g.kernel[0] * g.kernel[1], length = g.out_height * g.out_width;                       \
        const int64_t out_width = g.out_width, stride = g.stride[1];                                                 \
        for (int64_t plane = begin; plane < end; plane++) {                                                          \
            T *x = (T *)job->to + plane * g.height * g.width;                                                        \
            memset(x, 0, sizeof(T) * (size_t)(g.height * g.width));                                                  \
            for (int64_t k = 0; k < window; k++) {                                                                   \
                int64_t i = k / g.kernel[1], j = k % g.kernel[1];                                                    \
                const T *row = (const T *)job->from + column_row_offset(&g, plane * window + k, window, length);     \
                int64_t column_offset = j * g.dilation[1] - g.padding[1], first, last;                               \
                inside_range(column_offset, stride, g.width, out_width, &first, &last);                              \
                for (int64_t oh = 0; oh < g.out_height; oh++, row += out_width) {                                    \
                    int64_t ih = oh * g.stride[0] - g.padding[0] + i * g.dilation[0];                                \
                    if (ih < 0 || ih >= g.height) continue;                                                          \
                    T *line = x + ih * g.width;                                                                      \
                    if (stride == 1) {                                                                               \
                        T *target = line + (first + column_offset);                                                  \
                        for (int64_t q = 0; q < last - first; q++) target[q] += row[first + q];                      \
                    } else {                                                                                         \
                        for (int64_t ow = first; ow < last; ow++) line[ow * stride + column_offset] += row[ow];      \
                    }                                                                                                \
                }                                                                                                    \
            }                                                                                                        \
        }                                                                                                            \
    }
CONV_KERNELS(float)
CONV_KERNELS(double)

tc_status cpu_im2col(tc_context *ctx, tc_dtype dtype, const tc_conv_geometry *geometry, const void *x,
                     double pad_value, void *cols) {
    conv_job job = {geometry, x, cols, pad_value, NULL, NULL};
    int64_t rows = geometry->batch * geometry->channels * geometry->kernel[0] * geometry->kernel[1];
    int64_t length = geometry->out_height * geometry->out_width;
    cpu_parallel_for(ctx, rows, 16384 / (length + 1) + 1, dtype == TC_FLOAT32 ? im2col_rows_float : im2col_rows_double,
                     &job);
    return TC_OK;
}

tc_status cpu_col2im(tc_context *ctx, tc_dtype dtype, const tc_conv_geometry *geometry, const void *cols, void *x) {
    conv_job job = {geometry, cols, x, 0.0, NULL, NULL};
    int64_t planes = geometry->batch * geometry->channels;
    int64_t work = geometry->kernel[0] * geometry->kernel[1] * geometry->out_height * geometry->out_width;
    cpu_parallel_for(ctx, planes, 16384 / (work + 1) + 1,
                     dtype == TC_FLOAT32 ? col2im_planes_float : col2im_planes_double, &job);
    return TC_OK;
}

/* Max pooling: each output's window in registers, the elements in
 * row-major order so ties go to the first; windows wholly inside the image
 * (all of them without padding) skip the bounds checks. */
#define POOL_KERNELS(T)                                                                                              \
    static void max_pool_planes_##T(int64_t begin, int64_t end, void *argument) {                                    \
        const conv_job *job = argument;                                                                              \
        /* locals: the stores through int64_t *argmax could alias the geometry */                                    \
        const tc_conv_geometry g = *job->g;                                                                          \
        const int64_t length = g.out_height * g.out_width, width = g.width, height = g.height;                       \
        const int64_t span_h = (g.kernel[0] - 1) * g.dilation[0], span_w = (g.kernel[1] - 1) * g.dilation[1];        \
        for (int64_t plane = begin; plane < end; plane++) {                                                          \
            const T *x = (const T *)job->from + plane * height * width;                                              \
            T *out = (T *)job->to + plane * length;                                                                  \
            int64_t *at = job->argmax + plane * length;                                                              \
            for (int64_t oh = 0; oh < g.out_height; oh++) {                                                          \
                int64_t top = oh * g.stride[0] - g.padding[0];                                                       \
                for (int64_t ow = 0; ow < g.out_width; ow++) {                                                       \
                    int64_t left = ow * g.stride[1] - g.padding[1];                                                  \
                    bool inside = top >= 0 && top + span_h < height && left >= 0 && left + span_w < width;           \
                    T best = -(T)INFINITY;                                                                           \
                    int64_t where = -1;                                                                              \
                    for (int64_t i = 0; i < g.kernel[0]; i++) {                                                      \
                        int64_t ih = top + i * g.dilation[0];                                                        \
                        if (!inside && (ih < 0 || ih >= height)) continue;                                           \
                        for (int64_t j = 0; j < g.kernel[1]; j++) {                                                  \
                            int64_t iw = left + j * g.dilation[1];                                                   \
                            if (!inside && (iw < 0 || iw >= width)) continue;                                        \
                            T v = x[ih * width + iw];                                                                \
                            bool take = (v > best) | (where < 0) | (isnan(v) & !isnan(best));                        \
                            best = take ? v : best;                                                                  \
                            where = take ? ih * width + iw : where;                                                  \
                        }                                                                                            \
                    }                                                                                                \
                    out[oh * g.out_width + ow] = best;                                                               \
                    at[oh * g.out_width + ow] = where;                                                               \
                }                                                                                                    \
            }                                                                                                        \
        }                                                                                                            \
    }                                                                                                                \
    static void max_pool_backward_planes_##T(int64_t begin, int64_t end, void *argument) {                           \
        const conv_job *job = argument;                                                                              \
        const tc_conv_geometry *g = job->g;                                                                          \
        int64_t length = g->out_height * g->out_width, size = g->height * g->width;                                  \
        for (int64_t plane = begin; plane < end; plane++) {                                                          \
            T *dx = (T *)job->to + plane * size;                                                                     \
            const T *grad = (const T *)job->from + plane * length;                                                   \
            const int64_t *at = job->argmax_read + plane * length;                                                   \
            memset(dx, 0, sizeof(T) * (size_t)size);                                                                 \
            for (int64_t o = 0; o < length; o++) dx[at[o]] += grad[o];                                               \
        }                                                                                                            \
    }
POOL_KERNELS(float)
POOL_KERNELS(double)

tc_status cpu_max_pool2d(tc_context *ctx, tc_dtype dtype, const tc_conv_geometry *geometry, const void *x, void *out,
                         int64_t *indices) {
    conv_job job = {geometry, x, out, 0.0, indices, NULL};
    int64_t planes = geometry->batch * geometry->channels;
    int64_t work = geometry->kernel[0] * geometry->kernel[1] * geometry->out_height * geometry->out_width;
    cpu_parallel_for(ctx, planes, 16384 / (work + 1) + 1,
                     dtype == TC_FLOAT32 ? max_pool_planes_float : max_pool_planes_double, &job);
    return TC_OK;
}

tc_status cpu_max_pool2d_backward(tc_context *ctx, tc_dtype dtype, const tc_conv_geometry *geometry,
                                  const void *grad, const int64_t *indices, void *dx) {
    conv_job job = {geometry, grad, dx, 0.0, NULL, indices};
    int64_t planes = geometry->batch * geometry->channels;
    cpu_parallel_for(ctx, planes, 16384 / (geometry->height * geometry->width + 1) + 1,
                     dtype == TC_FLOAT32 ? max_pool_backward_planes_float : max_pool_backward_planes_double, &job);
    return TC_OK;
}
