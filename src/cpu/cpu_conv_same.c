/*
 * cpu_conv_same.c: float32 convolution at stride 1 whose output has the
 * input's size, forward and backward, with no columns in memory: each
 * product is cpu_sgemm_packing, whose packer reads the windows straight
 * from the image into the GEMM's panels (im2col's columns never exist, so
 * no 35 MB written and read back per step of a small CNN, and no col2im).
 *  - forward, per image: y_n [O, L] = W [O, R] @ cols(x_n) [R, L] + bias
 *    (added as each tile is written), R = C kH kW, L = H W;
 *  - dx, per image: the same product with dy_n for x_n and the flipped
 *    weight W' [C, O kH kW], W'[c][o, i, j] = W[o][c][kH-1-i, kW-1-j]: at
 *    stride 1 with the output the input's size the adjoint of the windows
 *    is the same windows (the padding d (k - 1) - p equals p) read with the
 *    kernel turned round;
 *  - dW [O, R] = the sum over images of dy_n [O, L] @ cols(x_n)^T, image
 *    after image (beta 1 from the second), op(b) = cols^T packed through
 *    16 x 16 transposes;
 *  - db [O] = the sum of dy over images and positions, in double.
 * Window row r = (c, i, j) reads output position (oh, ow) from input (oh +
 * i d - p, ow + j d - p): one shift of plane c, valid for a rectangle of
 * output positions (a tap); lanes outside it read nothing and give 0, the
 * padding.
 * Threads: the forward and dx take (image, block of output positions)
 * units; dW takes its column panels, or its rows when it has few panels;
 * db its rows. Every element of a result is computed the same way whatever
 * the split, so the bits do not depend on the thread count.
 */
#include "cpu_conv_same.h"

#include "cpu_avx512.h"
#include "cpu_iterate.h"
#include "cpu_matmul.h"
#include "cpu_sgemm.h"

#include <stdint.h>
#include <stdio.h>

/* Each image is its own product here (columns: its positions), so images
 * of few positions lose what the columns cost: a panel of 32 columns
 * computes 32 whatever the image has, and each image reads the whole
 * weight (forward, dx) and merges into the whole of dW (from memory once
 * they outgrow the caches). Measured on the 2-core AVX-512 machine, 3x3
 * convolutions of 32 images, forward and backward, against the general
 * path (medians of 6 on a loaded machine; the close cases best of 20): 1x1
 * and 2x2 images up to 5 times slower from 128 channels on; 4x4 faster to
 * 128 channels (1.6 ms against 3.7 at 64), as fast at 256 (25 ms both, a
 * 2.4 MB weight), 1.5 times slower at 512; at 512 channels (a 9.4 MB
 * weight) 6x6 slower (195 ms against 170: its 36 positions take 64
 * columns), 7x7 faster (208 against 226: 49 in 64); 8x8 and 14x14 faster
 * at every width. So: 16 positions or more, and either a weight of at most
 * 2^20 elements or at most a third more columns than positions. */
#define FEWEST_POSITIONS 16
#define LARGEST_WEIGHT ((int64_t)1 << 20)

bool cpu_conv_same_applies(const tc_context *ctx, const tc_conv_geometry *g, int64_t outputs) {
    if (!ctx->native_sgemm || ctx->autocast != TC_FLOAT32 || g->stride[0] != 1 || g->stride[1] != 1 ||
        g->out_height != g->height || g->out_width != g->width || g->batch <= 0 || g->channels <= 0 ||
        outputs <= 0 || g->height <= 0 || g->width <= 0 || g->height > INT32_MAX || g->width > INT32_MAX)
        return false;
    int64_t positions = g->height * g->width, weight = outputs * g->channels * g->kernel[0] * g->kernel[1];
    int64_t columns = (positions + CPU_SGEMM_PANEL_COLUMNS - 1) / CPU_SGEMM_PANEL_COLUMNS * CPU_SGEMM_PANEL_COLUMNS;
    return positions >= FEWEST_POSITIONS && (weight <= LARGEST_WEIGHT || columns - positions <= positions / 3);
}

#if defined(__x86_64__) && defined(__GNUC__)

#define PANEL CPU_SGEMM_PANEL_COLUMNS
/* Output positions per unit of the forward and dx: cpu_sgemm_packing's
 * column block, so each unit packs its windows once per depth block. */
#define UNIT_POSITIONS CPU_SGEMM_BLOCK_COLUMNS
/* Below this many multiply-adds per chunk a second thread does not pay. */
#define MINIMUM_CHUNK_WORK ((int64_t)1 << 17)

/* One image's windows as op(b): image [channels][H * W]; the product's
 * column 0 is output position `first` (pack_windows) or window row `first`
 * (pack_windows_transposed). */
typedef struct windows {
    const float *image;
    const tc_conv_geometry *g;
    int64_t first;
} windows;

/* Window row (c, i, j) as a shift: output position (oh, ow) reads element
 * oh * W + ow + offset of the image when row_first <= oh < row_last and
 * column_first <= ow < column_last, else nothing (0). */
typedef struct tap {
    int64_t offset;
    int32_t row_first, row_last, column_first, column_last;
} tap;

static int32_t clamp_size(int64_t value, int64_t size) {
    return (int32_t)(value < 0 ? 0 : value > size ? size : value);
}

/* Offsets lie within +-padding (at most 2^31 - 1) of 0. */
static inline tap tap_of(const tc_conv_geometry *g, int64_t c, int64_t i, int64_t j) {
    int64_t down = i * g->dilation[0] - g->padding[0], right = j * g->dilation[1] - g->padding[1];
    return (tap){.offset = c * g->height * g->width + down * g->width + right,
                 .row_first = clamp_size(-down, g->height), .row_last = clamp_size(g->height - down, g->height),
                 .column_first = clamp_size(-right, g->width),
                 .column_last = clamp_size(g->width - right, g->width)};
}

/* (c, i, j) of window row r. */
static void window_row(const tc_conv_geometry *g, int64_t r, int64_t *c, int64_t *i, int64_t *j) {
    int64_t window = g->kernel[0] * g->kernel[1];
    *c = r / window;
    *i = r % window / g->kernel[1];
    *j = r % g->kernel[1];
}

/* (c, i, j) moved on to the next window row. */
static void next_window_row(const tc_conv_geometry *g, int64_t *c, int64_t *i, int64_t *j) {
    if (++*j < g->kernel[1]) return;
    *j = 0;
    if (++*i < g->kernel[0]) return;
    *i = 0;
    ++*c;
}

/* The most positions a packer call covers (columns or depths), a whole
 * number of panels. */
#define MOST_POSITIONS CPU_SGEMM_BLOCK_COLUMNS
TC_STATIC_ASSERT(CPU_SGEMM_BLOCK_COLUMNS >= CPU_SGEMM_BLOCK_DEPTH && MOST_POSITIONS % PANEL == 0,
                 "the packers' position arrays hold a block of columns or depths");

/* The output rows and columns of positions first .. first + count - 1,
 * then row -1 (inside no tap) up to the next multiple of a panel. */
static void positions(int64_t first, int64_t count, int64_t width, int32_t *rows, int32_t *columns) {
    int64_t row = first / width, column = first % width, padded = (count + PANEL - 1) / PANEL * PANEL;
    for (int64_t p = 0; p < padded; p++) {
        rows[p] = p < count ? (int32_t)row : -1;
        columns[p] = (int32_t)column;
        if (++column == width) {
            column = 0;
            row++;
        }
    }
}

/* The lanes whose position (rows, columns at p) the tap reads. */
static inline AVX512 __mmask16 inside(const tap *t, const int32_t *rows, const int32_t *columns, int64_t p) {
    __m512i row = _mm512_loadu_si512(rows + p), column = _mm512_loadu_si512(columns + p);
    __mmask16 mask = _mm512_cmpge_epi32_mask(row, _mm512_set1_epi32(t->row_first));
    mask = _mm512_mask_cmplt_epi32_mask(mask, row, _mm512_set1_epi32(t->row_last));
    mask = _mm512_mask_cmpge_epi32_mask(mask, column, _mm512_set1_epi32(t->column_first));
    return _mm512_mask_cmplt_epi32_mask(mask, column, _mm512_set1_epi32(t->column_last));
}

/* The 16 floats at image + offset in the lanes of mask, 0 in the others.
 * Where the mask is clear the address may lie outside the image: a masked
 * load does not touch those lanes, and the address is made in integers, so
 * no out-of-range pointer exists. */
static inline AVX512 __m512 load_lanes(const float *image, int64_t offset, __mmask16 mask) {
    return _mm512_maskz_loadu_ps(mask, (const void *)((uintptr_t)image + (uintptr_t)offset * sizeof(float)));
}

/* op(b)[k][j] = cols[k][first + j]: panel row k = (c, i, j) is 32 output
 * positions read through that tap. Tap by tap (i, j): its masks once per
 * panel, then its row of every channel in the depth block. */
static AVX512 void pack_windows(const void *source, int64_t column0, int64_t columns, int64_t k0, int64_t depth,
                                float *packed) {
    const windows *w = source;
    const tc_conv_geometry *g = w->g;
    const int64_t window = g->kernel[0] * g->kernel[1], plane = g->height * g->width, first = w->first + column0;
    int32_t rows[MOST_POSITIONS], cols[MOST_POSITIONS];
    positions(first, columns, g->width, rows, cols);
    for (int64_t i = 0, j = 0, ij = 0; ij < window; ij++) {
        int64_t c = k0 <= ij ? 0 : (k0 - ij + window - 1) / window, k_first = c * window + ij;
        if (k_first < k0 + depth) {
            tap t = tap_of(g, c, i, j);
            for (int64_t q = 0; q < columns; q += PANEL) {
                __mmask16 low = inside(&t, rows, cols, q), high = inside(&t, rows, cols, q + 16);
                float *panel = packed + q * depth;
                int64_t offset = first + q + t.offset;
                for (int64_t k = k_first; k < k0 + depth; k += window, offset += plane) {
                    float *row = panel + (k - k0) * PANEL;
                    _mm512_store_ps(row, load_lanes(w->image, offset, low));
                    _mm512_store_ps(row + 16, load_lanes(w->image, offset + 16, high));
                }
            }
        }
        if (++j == g->kernel[1]) {
            j = 0;
            i++;
        }
    }
}

/* op(b)[k][j] = cols[first + j][k]: window rows as the product's columns,
 * output positions as its depth; 16 positions of 16 taps are loaded, then
 * transposed in registers. */
static AVX512 void pack_windows_transposed(const void *source, int64_t column0, int64_t columns, int64_t k0,
                                           int64_t depth, float *packed) {
    const windows *w = source;
    const tc_conv_geometry *g = w->g;
    int32_t rows[MOST_POSITIONS], cols[MOST_POSITIONS];
    positions(k0, depth, g->width, rows, cols);
    int64_t c, i, j;
    window_row(g, w->first + column0, &c, &i, &j);
    for (int64_t q = 0; q < columns; q += PANEL) {
        int64_t count = columns - q < PANEL ? columns - q : PANEL;
        tap taps[PANEL];
        for (int64_t t = 0; t < PANEL; t++) {
            taps[t] = t < count ? tap_of(g, c, i, j) : (tap){0, 0, 0, 0, 0};
            if (t < count) next_window_row(g, &c, &i, &j);
        }
        float *panel = packed + q * depth;
        for (int64_t k = 0; k < depth; k += 16) {
            int64_t lanes = depth - k < 16 ? depth - k : 16;
            for (int half = 0; half < 2; half++) {
                __m512 in[16], out[16];
                if (16 * half >= count) { /* columns past the end: zeros */
                    for (int64_t u = 0; u < lanes; u++)
                        _mm512_store_ps(panel + (k + u) * PANEL + 16 * half, _mm512_setzero_ps());
                    continue;
                }
                for (int t = 0; t < 16; t++) {
                    const tap *tp = &taps[16 * half + t];
                    in[t] = load_lanes(w->image, k0 + k + tp->offset, inside(tp, rows, cols, k));
                }
                transpose_16x16(in, out);
                for (int64_t u = 0; u < lanes; u++) _mm512_store_ps(panel + (k + u) * PANEL + 16 * half, out[u]);
            }
        }
    }
}

/* Rounds a product of sizes down to INT64_MAX instead of overflowing: only
 * for choosing chunk sizes. */
static int64_t saturating_product(int64_t a, int64_t b) {
    int64_t product;
    return __builtin_mul_overflow(a, b, &product) ? INT64_MAX : product;
}

/* The failed allocation's error (the budget's or the system's), naming the
 * op and what was asked for. */
static tc_status allocation_failed(tc_context *ctx, const char *what) {
    char reason[TC_ERROR_CAPACITY];
    snprintf(reason, sizeof reason, "%s", tc_last_error(ctx));
    return tc_fail(ctx, tc_last_status(ctx), "conv2d: %s: %s", what, reason);
}

/* The context's packing space (cpu_gemm_scratch), or NULL with the error. */
static float *packing_space(tc_context *ctx, size_t bytes) {
    float *space = cpu_gemm_scratch(ctx, bytes);
    if (!space) allocation_failed(ctx, "the GEMM's packing space");
    return space;
}

/* out_n [rows, L] = a [rows, depth] @ cols(source_n) (+ row_bias) for every
 * image n: the forward (a = W, source = x) and dx (a = W', source = dy). */
typedef struct product_job {
    const tc_conv_geometry *g;
    int64_t rows, depth, source_channels, units_per_image;
    const float *a, *source, *row_bias;
    float *out, *scratch;
    int64_t scratch_floats; /* per chunk */
} product_job;

static void product_units(int chunk, int64_t begin, int64_t end, void *argument) {
    const product_job *job = argument;
    const int64_t length = job->g->height * job->g->width;
    float *scratch = job->scratch + chunk * job->scratch_floats;
    for (int64_t u = begin; u < end; u++) {
        int64_t n = u / job->units_per_image, first = u % job->units_per_image * UNIT_POSITIONS;
        int64_t columns = length - first < UNIT_POSITIONS ? length - first : UNIT_POSITIONS;
        windows w = {job->source + n * job->source_channels * length, job->g, first};
        cpu_sgemm_packing(false, job->rows, columns, job->depth, 1.0f, job->a, job->depth, pack_windows, &w, 0.0f,
                          job->row_bias, job->out + n * job->rows * length + first, length, scratch);
    }
}

static tc_status run_products(tc_context *ctx, product_job *job) {
    const int64_t length = job->g->height * job->g->width;
    const int64_t unit = length < UNIT_POSITIONS ? length : UNIT_POSITIONS;
    job->units_per_image = (length + UNIT_POSITIONS - 1) / UNIT_POSITIONS;
    int64_t units = job->g->batch * job->units_per_image; /* at most x's element count */
    int64_t grain = MINIMUM_CHUNK_WORK / saturating_product(saturating_product(job->rows, job->depth), unit) + 1;
    job->scratch_floats = cpu_sgemm_scratch_floats(unit, job->depth);
    size_t bytes = sizeof(float) * (size_t)job->scratch_floats * (size_t)cpu_parallel_chunks(ctx, units, grain);
    job->scratch = packing_space(ctx, bytes);
    if (!job->scratch) return tc_last_status(ctx);
    cpu_parallel_for_indexed(ctx, units, grain, product_units, job);
    tc_memory_discharge(ctx, bytes);
    return TC_OK;
}

tc_status cpu_conv_same_forward(tc_context *ctx, const tc_conv_geometry *g, int64_t outputs, const float *x,
                                const float *weight, const float *bias, float *y) {
    product_job job = {.g = g, .rows = outputs, .depth = g->channels * g->kernel[0] * g->kernel[1],
                       .source_channels = g->channels, .a = weight, .source = x, .row_bias = bias, .out = y};
    return run_products(ctx, &job);
}

/* dW [O, R] += dy_n [O, L] @ cols(x_n)^T over the images in order, each
 * chunk for its columns [column0, column0 + columns) and rows [row0, row0 +
 * rows) of dW. */
typedef struct weight_job {
    const tc_conv_geometry *g;
    int64_t outputs, window_rows;
    bool by_panels; /* units are dW's column panels, else its rows */
    const float *x, *dy;
    float *dweight, *scratch;
    int64_t scratch_floats;
} weight_job;

static void weight_units(int chunk, int64_t begin, int64_t end, void *argument) {
    const weight_job *job = argument;
    const tc_conv_geometry *g = job->g;
    const int64_t length = g->height * g->width, width = job->window_rows;
    int64_t row0 = 0, rows = job->outputs, column0 = 0, columns = width;
    if (job->by_panels) {
        column0 = begin * PANEL;
        columns = (end * PANEL < width ? end * PANEL : width) - column0;
    } else {
        row0 = begin;
        rows = end - begin;
    }
    float *scratch = job->scratch + chunk * job->scratch_floats;
    for (int64_t n = 0; n < g->batch; n++) {
        windows w = {job->x + n * g->channels * length, g, column0};
        cpu_sgemm_packing(false, rows, columns, length, 1.0f, job->dy + (n * job->outputs + row0) * length, length,
                          pack_windows_transposed, &w, n == 0 ? 0.0f : 1.0f, NULL,
                          job->dweight + row0 * width + column0, width, scratch);
    }
}

static tc_status weight_gradient(tc_context *ctx, const tc_conv_geometry *g, int64_t outputs, const float *x,
                                 const float *dy, float *dweight) {
    const int64_t length = g->height * g->width;
    weight_job job = {.g = g, .outputs = outputs, .window_rows = g->channels * g->kernel[0] * g->kernel[1],
                      .x = x, .dy = dy, .dweight = dweight};
    int64_t panels = (job.window_rows + PANEL - 1) / PANEL;
    job.by_panels = panels >= 2 * (int64_t)ctx->num_threads;
    int64_t units = job.by_panels ? panels : outputs;
    int64_t unit_work = saturating_product(saturating_product(g->batch, length),
                                           job.by_panels ? saturating_product(outputs, PANEL) : job.window_rows);
    int64_t grain = MINIMUM_CHUNK_WORK / unit_work + 1;
    int64_t widest = job.by_panels ? cpu_parallel_largest_chunk(ctx, units, grain) * PANEL : job.window_rows;
    job.scratch_floats = cpu_sgemm_scratch_floats(widest, length);
    size_t bytes = sizeof(float) * (size_t)job.scratch_floats * (size_t)cpu_parallel_chunks(ctx, units, grain);
    job.scratch = packing_space(ctx, bytes);
    if (!job.scratch) return tc_last_status(ctx);
    cpu_parallel_for_indexed(ctx, units, grain, weight_units, &job);
    tc_memory_discharge(ctx, bytes);
    return TC_OK;
}

typedef struct bias_job {
    int64_t batch, outputs, length;
    const float *dy;
    float *dbias;
} bias_job;

/* db[o] = the sum of dy[n][o][l] over n then l, 16 lanes of double. */
static AVX512 void bias_rows(int64_t begin, int64_t end, void *argument) {
    const bias_job *job = argument;
    for (int64_t o = begin; o < end; o++) {
        __m512d low = _mm512_setzero_pd(), high = _mm512_setzero_pd();
        for (int64_t n = 0; n < job->batch; n++) {
            const float *row = job->dy + (n * job->outputs + o) * job->length;
            for (int64_t l = 0; l < job->length; l += 16) {
                __m512 v = _mm512_maskz_loadu_ps(first_lanes(job->length - l), row + l);
                low = _mm512_add_pd(low, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
                high = _mm512_add_pd(high, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
            }
        }
        job->dbias[o] = (float)_mm512_reduce_add_pd(_mm512_add_pd(low, high));
    }
}

tc_status cpu_conv_same_backward(tc_context *ctx, const tc_conv_geometry *g, int64_t outputs, const float *x,
                                 const float *weight, const float *dy, float *dx, float *dweight, float *dbias) {
    const int64_t window = g->kernel[0] * g->kernel[1], length = g->height * g->width;
    if (dbias) {
        bias_job job = {g->batch, outputs, length, dy, dbias};
        cpu_parallel_for(ctx, outputs, MINIMUM_CHUNK_WORK / saturating_product(g->batch, length) + 1, bias_rows,
                         &job);
    }
    if (dweight) TC_TRY(weight_gradient(ctx, g, outputs, x, dy, dweight));
    if (!dx) return TC_OK;
    /* W' [C, O * window], within the weight's own size */
    size_t bytes = sizeof(float) * (size_t)(outputs * g->channels * window);
    float *flipped = tc_allocate(ctx, bytes);
    if (!flipped) return allocation_failed(ctx, "the flipped weight for dx");
    for (int64_t o = 0; o < outputs; o++)
        for (int64_t c = 0; c < g->channels; c++)
            for (int64_t ij = 0; ij < window; ij++)
                flipped[(c * outputs + o) * window + ij] = weight[(o * g->channels + c) * window + window - 1 - ij];
    product_job job = {.g = g, .rows = g->channels, .depth = outputs * window, .source_channels = outputs,
                       .a = flipped, .source = dy, .row_bias = NULL, .out = dx};
    tc_status status = run_products(ctx, &job);
    tc_release_memory(ctx, flipped, bytes);
    return status;
}

#else

tc_status cpu_conv_same_forward(tc_context *ctx, const tc_conv_geometry *g, int64_t outputs, const float *x,
                                const float *weight, const float *bias, float *y) {
    (void)g, (void)outputs, (void)x, (void)weight, (void)bias, (void)y;
    return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "conv2d: the direct convolution needs an x86-64 CPU with AVX-512");
}

tc_status cpu_conv_same_backward(tc_context *ctx, const tc_conv_geometry *g, int64_t outputs, const float *x,
                                 const float *weight, const float *dy, float *dx, float *dweight, float *dbias) {
    (void)g, (void)outputs, (void)x, (void)weight, (void)dy, (void)dx, (void)dweight, (void)dbias;
    return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "conv2d: the direct convolution needs an x86-64 CPU with AVX-512");
}

#endif
