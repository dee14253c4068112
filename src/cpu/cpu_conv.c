/*
 * cpu_conv.c: im2col and col2im (the contract is on the slots,
 * backend_slots.h; the layout on tc_conv_geometry, internal.h). im2col's
 * threads take ranges of column rows (one channel and kernel offset of one
 * image each); col2im's take whole input planes, each summing its rows in a
 * fixed order, so the result does not depend on the thread count. Along a
 * row, the output positions whose input lies inside x form one range,
 * computed once: stride-1 rows are then a plain copy. Stride 1 with the
 * output the input's size (3x3 with padding 1) goes faster still: a column
 * row is one shifted copy of its plane (memcpy, then the padding at the
 * edges), and col2im adds whole shifted planes 16 lanes at a time. Max
 * pooling's threads take whole planes too: its backward adds each gradient
 * at its window's argmax, and overlapping windows of a plane stay on one
 * thread; 2x2 windows at stride 2 go 16 at a time.
 */
#include "cpu_backend.h"
#include "cpu_iterate.h"
#include "cpu_simd.h"

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

/* "Same" stride-1 geometry: output position o = oh * W + ow of a column row
 * reads input o + shift of its plane, so the row is one shifted copy of the
 * plane whose out-of-image positions (whole rows at the top and bottom, a
 * few columns at the sides) are then set to the padding. The width bound
 * keeps column numbers in int32 lanes. */
static bool is_shifted_copy(const tc_conv_geometry *g) {
    return g->stride[0] == 1 && g->stride[1] == 1 && g->out_height == g->height && g->out_width == g->width &&
           g->width < ((int64_t)1 << 30);
}

/* Kernel offset (i, j) as a shift: output rows [row_first, row_last) and
 * columns [column_first, column_last) read inside the input, at row
 * oh + row_offset and column ow + column_offset. */
typedef struct shifted_view {
    int64_t shift, row_offset, column_offset, row_first, row_last, column_first, column_last;
} shifted_view;

static shifted_view shifted_view_of(const tc_conv_geometry *g, int64_t i, int64_t j) {
    shifted_view v;
    v.row_offset = i * g->dilation[0] - g->padding[0];
    v.column_offset = j * g->dilation[1] - g->padding[1];
    v.shift = v.row_offset * g->width + v.column_offset;
    inside_range(v.row_offset, 1, g->height, g->out_height, &v.row_first, &v.row_last);
    inside_range(v.column_offset, 1, g->width, g->out_width, &v.column_first, &v.column_last);
    return v;
}

/* x[q] += row[q - shift] over the plane positions q that an inside output
 * position reads, 16 lanes at a time across row ends: the lanes of other
 * columns add -0.0, which leaves every value (NaN and -0.0 included) as it
 * was. The range is clipped so that row is read only within its length. */
SIMD_INLINE void add_shifted_float(float *x, const float *row, const tc_conv_geometry *g, const shifted_view *v) {
    const int64_t width = g->width, length = g->out_height * g->out_width;
    const int64_t keep_first = v->column_first + v->column_offset, keep_last = v->column_last + v->column_offset;
    int64_t q = (v->row_first + v->row_offset) * width, end = (v->row_last + v->row_offset) * width;
    if (q < v->shift) q = v->shift;
    if (end > length + v->shift) end = length + v->shift;
    const simd_i32 widths = (simd_i32){0} + (int32_t)width, firsts = (simd_i32){0} + (int32_t)keep_first,
                   lasts = (simd_i32){0} + (int32_t)keep_last;
    const simd_i32 negative_zero = simd_bits(simd_splat(-0.0f));
    /* each lane's column, advanced by 16 and wrapped (several times for rows narrower than 16) */
    simd_i32 columns;
    for (int lane = 0; lane < SIMD_LANES; lane++) columns[lane] = (int32_t)((q + lane) % width);
    const int32_t step = (int32_t)(SIMD_LANES % width);
    for (; q + SIMD_LANES <= end; q += SIMD_LANES) {
        /* all ones where first <= column < last: the sign bits of both differences clear */
        simd_i32 keep = ~(((columns - firsts) | (lasts - 1 - columns)) >> 31);
        simd_i32 added = (simd_bits(simd_load(row + (q - v->shift))) & keep) | (~keep & negative_zero);
        simd_store(x + q, simd_load(x + q) + simd_from_bits(added));
        columns += step;
        columns -= (columns >= widths) & widths;
    }
    for (; q < end; q++) {
        int64_t c = q % width;
        if (c >= keep_first && c < keep_last) x[q] += row[q - v->shift];
    }
}

/* The column row of (i, j) for one plane x, as a shifted copy. */
#define IM2COL_SHIFTED(T)                                                                                            \
    static void im2col_shifted_##T(T *row, const T *x, const tc_conv_geometry *g, const shifted_view *v, T pad) {    \
        const int64_t width = g->width, length = g->out_height * g->out_width;                                       \
        int64_t first = v->row_first * width, last = v->row_last * width;                                            \
        if (first < -v->shift) first = -v->shift;                                                                    \
        if (last > length - v->shift) last = length - v->shift;                                                      \
        if (first > length) first = length; /* no inside row */                                                     \
        if (last < first) last = first;                                                                              \
        for (int64_t o = 0; o < first; o++) row[o] = pad;                                                            \
        if (last > first) memcpy(row + first, x + (first + v->shift), sizeof(T) * (size_t)(last - first));          \
        for (int64_t o = last; o < length; o++) row[o] = pad;                                                        \
        for (int64_t oh = v->row_first; oh < v->row_last; oh++) {                                                    \
            T *line = row + oh * width;                                                                              \
            for (int64_t ow = 0; ow < v->column_first; ow++) line[ow] = pad;                                         \
            for (int64_t ow = v->column_last; ow < width; ow++) line[ow] = pad;                                      \
        }                                                                                                            \
    }
IM2COL_SHIFTED(float)
IM2COL_SHIFTED(double)

static void add_shifted_double(double *x, const double *row, const tc_conv_geometry *g, const shifted_view *v) {
    const int64_t width = g->width;
    for (int64_t oh = v->row_first; oh < v->row_last; oh++) {
        double *target = x + (oh + v->row_offset) * width + v->column_offset;
        const double *source = row + oh * width;
        for (int64_t ow = v->column_first; ow < v->column_last; ow++) target[ow] += source[ow];
    }
}

/* The geometry is copied to locals (the stores through T * could alias it
 * for the compiler); stride-1 rows are sweeps of contiguous runs, which
 * vectorise, rather than calls to memcpy for runs of a few elements. */
#define CONV_KERNELS(T, CLONES)                                                                                      \
    static void im2col_rows_##T(int64_t begin, int64_t end, void *argument) {                                        \
        const conv_job *job = argument;                                                                              \
        const tc_conv_geometry g = *job->g;                                                                          \
        const int64_t window = g.kernel[0] * g.kernel[1], length = g.out_height * g.out_width;                       \
        const int64_t out_width = g.out_width, stride = g.stride[1];                                                 \
        const T pad = (T)job->pad_value;                                                                             \
        const bool shifted = is_shifted_copy(&g);                                                                    \
        for (int64_t r = begin; r < end; r++) {                                                                      \
            int64_t j = r % g.kernel[1], i = r / g.kernel[1] % g.kernel[0], plane = r / window;                      \
            const T *x = (const T *)job->from + plane * g.height * g.width;                                          \
            T *row = (T *)job->to + column_row_offset(&g, r, window, length);                                        \
            if (shifted) {                                                                                           \
                shifted_view v = shifted_view_of(&g, i, j);                                                          \
                im2col_shifted_##T(row, x, &g, &v, pad);                                                             \
                continue;                                                                                            \
            }                                                                                                        \
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
    static CLONES void col2im_planes_##T(int64_t begin, int64_t end, void *argument) {                               \
        const conv_job *job = argument;                                                                              \
        const tc_conv_geometry g = *job->g;                                                                          \
        const int64_t window = g.kernel[0] * g.kernel[1], length = g.out_height * g.out_width;                       \
        const int64_t out_width = g.out_width, stride = g.stride[1];                                                 \
        const bool shifted = is_shifted_copy(&g);                                                                    \
        for (int64_t plane = begin; plane < end; plane++) {                                                          \
            T *x = (T *)job->to + plane * g.height * g.width;                                                        \
            memset(x, 0, sizeof(T) * (size_t)(g.height * g.width));                                                  \
            for (int64_t k = 0; k < window; k++) {                                                                   \
                int64_t i = k / g.kernel[1], j = k % g.kernel[1];                                                    \
                const T *row = (const T *)job->from + column_row_offset(&g, plane * window + k, window, length);     \
                if (shifted) {                                                                                       \
                    shifted_view v = shifted_view_of(&g, i, j);                                                      \
                    add_shifted_##T(x, row, &g, &v);                                                                 \
                    continue;                                                                                        \
                }                                                                                                    \
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
CONV_KERNELS(float, SIMD_CLONES)
CONV_KERNELS(double, )

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

/* 2x2 windows at stride 2 without padding or dilation, the usual pooling:
 * every window lies inside, so its four elements are compared unrolled. */
static bool is_halving(const tc_conv_geometry *g) {
    return g->kernel[0] == 2 && g->kernel[1] == 2 && g->stride[0] == 2 && g->stride[1] == 2 && g->padding[0] == 0 &&
           g->padding[1] == 0 && g->dilation[0] == 1 && g->dilation[1] == 1;
}

/* One window's max and its place, in the general loop's order and ties
 * (below): the first element starts, a later one wins when greater or when
 * it is NaN and the best is not. */
#define MAX_POOL_WINDOW(T)                                                                                           \
    SIMD_INLINE void max_pool_window_##T(const T *x, int64_t place, int64_t width, T *out, int64_t *at) {            \
        T best = x[place];                                                                                           \
        int64_t where = place;                                                                                       \
        const int64_t places[3] = {place + 1, place + width, place + width + 1};                                     \
        for (int k = 0; k < 3; k++) {                                                                                \
            T v = x[places[k]];                                                                                      \
            bool take = (v > best) | (isnan(v) & !isnan(best));                                                      \
            best = take ? v : best;                                                                                  \
            where = take ? places[k] : where;                                                                        \
        }                                                                                                            \
        *out = best;                                                                                                 \
        *at = where;                                                                                                 \
    }
MAX_POOL_WINDOW(float)
MAX_POOL_WINDOW(double)

/* 16 windows at once, the same rule lane by lane: lanes 0-7 are the windows
 * whose upper rows are first[0, 16), places first_place + 2 * lane; lanes
 * 8-15 those of second[0, 16). The NaN masks are sign bits of a difference,
 * not comparisons: GCC 12 splits an OR of two vector comparisons into one
 * scalar compare per lane, in the AVX-512 clone too. The three steps are
 * unrolled for the same reason (a loop counter in the mask arithmetic). */
/* Lanes 0, 2, ..., 30 (EVEN_LANES) or 1, 3, ..., 31 (ODD_LANES) of a then b. */
#ifdef __clang__
#define EVEN_LANES(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#define ODD_LANES(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31)
#else
#define EVEN_LANES(a, b) __builtin_shuffle(a, b, even)
#define ODD_LANES(a, b) __builtin_shuffle(a, b, odd)
#endif

#define MAX_POOL_BLOCK(first, second, first_place, second_place, out, at)                                            \
    do {                                                                                                             \
        const float *upper_first_ = (first), *upper_second_ = (second);                                              \
        simd_f32 a_ = simd_load(upper_first_), b_ = simd_load(upper_second_);                                        \
        simd_f32 c_ = simd_load(upper_first_ + width), d_ = simd_load(upper_second_ + width);                        \
        simd_f32 best_ = EVEN_LANES(a_, b_);                                                                         \
        const simd_f32 candidates_[3] = {ODD_LANES(a_, b_), EVEN_LANES(c_, d_), ODD_LANES(c_, d_)};                  \
        simd_i32 code_ = {0}; /* 0 to 3: the window's element in row-major order */                                  \
        _Pragma("GCC unroll 3") for (int k_ = 0; k_ < 3; k_++) {                                                     \
            simd_f32 v_ = candidates_[k_];                                                                           \
            simd_i32 nan_v_ = (0x7f800000 - (simd_bits(v_) & 0x7fffffff)) >> 31;                                     \
            simd_i32 nan_best_ = (0x7f800000 - (simd_bits(best_) & 0x7fffffff)) >> 31;                               \
            simd_i32 take_ = (v_ > best_) | (nan_v_ & ~nan_best_);                                                   \
            best_ = simd_select(take_, v_, best_);                                                                   \
            code_ = (take_ & (k_ + 1)) | (~take_ & code_);                                                           \
        }                                                                                                            \
        simd_store((out), best_);                                                                                    \
        half_i32 halves_[2];                                                                                         \
        memcpy(halves_, &code_, sizeof halves_);                                                                     \
        for (int half_ = 0; half_ < 2; half_++) {                                                                    \
            half_i64 c64_ = __builtin_convertvector(halves_[half_], half_i64);                                       \
            half_i64 places_ = steps + (half_ ? (second_place) : (first_place)) + (c64_ & 1) + (c64_ >> 1) * width;  \
            memcpy((at) + 8 * half_, &places_, sizeof places_);                                                      \
        }                                                                                                            \
    } while (0)

static void max_pool_halving_double(const double *x, double *out, int64_t *at, const tc_conv_geometry *g) {
    for (int64_t oh = 0; oh < g->out_height; oh++)
        for (int64_t ow = 0; ow < g->out_width; ow++)
            max_pool_window_double(x, 2 * oh * g->width + 2 * ow, g->width, out + oh * g->out_width + ow,
                                   at + oh * g->out_width + ow);
}

/* Rows of 16 or more outputs go 16 at a time, rows of 8 two at a time. */
static SIMD_CLONES void max_pool_halving_float(const float *x, float *out, int64_t *at, const tc_conv_geometry *g) {
    typedef int32_t half_i32 __attribute__((vector_size(32)));
    typedef int64_t half_i64 __attribute__((vector_size(64)));
    const simd_i32 even = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30}, odd = even + 1;
    (void)even; /* read by EVEN_LANES and ODD_LANES under gcc only */
    (void)odd;
    const half_i64 steps = {0, 2, 4, 6, 8, 10, 12, 14};
    const int64_t width = g->width, out_width = g->out_width;
    int64_t oh = 0;
    if (out_width == 8)
        for (; oh + 2 <= g->out_height; oh += 2) {
            int64_t place = 2 * oh * width;
            MAX_POOL_BLOCK(x + place, x + place + 2 * width, place, place + 2 * width, out + oh * out_width,
                           at + oh * out_width);
        }
    for (; oh < g->out_height; oh++) {
        int64_t ow = 0, top = 2 * oh * width;
        for (; ow + SIMD_LANES <= out_width; ow += SIMD_LANES)
            MAX_POOL_BLOCK(x + top + 2 * ow, x + top + 2 * ow + 16, top + 2 * ow, top + 2 * ow + 16,
                           out + oh * out_width + ow, at + oh * out_width + ow);
        for (; ow < out_width; ow++)
            max_pool_window_float(x, top + 2 * ow, width, out + oh * out_width + ow, at + oh * out_width + ow);
    }
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
        const bool halving = is_halving(&g);                                                                         \
        for (int64_t plane = begin; plane < end; plane++) {                                                          \
            const T *x = (const T *)job->from + plane * height * width;                                              \
            T *out = (T *)job->to + plane * length;                                                                  \
            int64_t *at = job->argmax + plane * length;                                                              \
            if (halving) {                                                                                           \
                max_pool_halving_##T(x, out, at, &g);                                                                \
                continue;                                                                                            \
            }                                                                                                        \
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
