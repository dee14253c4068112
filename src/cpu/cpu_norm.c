/*
 * cpu_norm.c: layer norm and RMS norm, forward beside backward. Each
 * kernel is written once as a macro over the element type for float64
 * (plain loops in double, serving the gradient checks) and once for
 * float32, vectorised (cpu_simd.h). Rows are independent; the parameter
 * gradients are summed over fixed blocks of rows (below), so results are
 * the same bits for any thread count. Contracts are on the slots
 * (backend_slots.h); these are the oracle the CUDA kernels are checked
 * against.
 */
#include "cpu_backend.h"
#include "cpu_rows.h"

#include <math.h>
#include <string.h>

/* The parameter gradients are summed over blocks of norm_block_rows(rows)
 * rows (partials in double), then over blocks in order. */

static int64_t norm_block_rows(int64_t rows) {
    int64_t block = (rows + 63) / 64;
    return block < 32 ? 32 : block;
}

typedef struct norm_job {
    bool rms;
    const void *x, *weight, *bias, *mean_in, *rstd_in, *dout;
    double eps;
    int64_t rows, cols, block_rows;
    void *out, *mean, *rstd, *dx;
    double *partials; /* [blocks][2 * cols]: dweight then dbias sums */
} norm_job;

#define LAYER_NORM_FNS(E, T)                                                                                         \
    static void layer_norm_forward_rows_##T(int64_t begin, int64_t end, void *argument) {                            \
        const norm_job *job = argument;                                                                              \
        const T *w = job->weight, *b = job->bias;                                                                    \
        int64_t cols = job->cols;                                                                                    \
        for (int64_t r = begin; r < end; r++) {                                                                      \
            const T *row = (const T *)job->x + r * cols;                                                             \
            T *y = (T *)job->out + r * cols;                                                                         \
            double mean = 0;                                                                                         \
            if (!job->rms) {                                                                                         \
                for (int64_t c = 0; c < cols; c++) mean += (double)row[c];                                           \
                mean /= (double)cols;                                                                                \
            }                                                                                                        \
            double var = 0; /* the mean square about `mean` (0 for RMS norm) */                                      \
            for (int64_t c = 0; c < cols; c++) {                                                                     \
                double d = (double)row[c] - mean;                                                                    \
                var += d * d;                                                                                        \
            }                                                                                                        \
            double rstd = 1.0 / sqrt(var / (double)cols + job->eps);                                                 \
            for (int64_t c = 0; c < cols; c++) {                                                                     \
                double v = ((double)row[c] - mean) * rstd;                                                           \
                if (w) v *= (double)w[c];                                                                            \
                if (b) v += (double)b[c];                                                                            \
                y[c] = (T)v;                                                                                         \
            }                                                                                                        \
            ((T *)job->mean)[r] = (T)mean;                                                                           \
            ((T *)job->rstd)[r] = (T)rstd;                                                                           \
        }                                                                                                            \
    }                                                                                                                \
    /* With xhat = (x - mean) * rstd and g = dout * w:                                                               \
     * layer norm: dx = rstd * (g - mean(g) - xhat * mean(g * xhat));                                                \
     * RMS norm:   dx = rstd * (g - xhat * mean(g * xhat)).                                                          \
     * Items are blocks of rows; block i sums its rows' dweight and dbias                                            \
     * terms into partials[i]. */                                                                                    \
    static void layer_norm_backward_blocks_##T(int64_t begin, int64_t end, void *argument) {                         \
        const norm_job *job = argument;                                                                              \
        const T *w = job->weight, *mean = job->mean_in, *rstd = job->rstd_in;                                        \
        int64_t cols = job->cols;                                                                                    \
        for (int64_t block = begin; block < end; block++) {                                                          \
            double *sum_w = job->partials + block * 2 * cols, *sum_b = sum_w + cols;                                 \
            memset(sum_w, 0, sizeof(double) * 2 * (size_t)cols);                                                     \
            int64_t first = block * job->block_rows, last = first + job->block_rows;                                 \
            if (last > job->rows) last = job->rows;                                                                  \
            for (int64_t r = first; r < last; r++) {                                                                 \
                const T *row = (const T *)job->x + r * cols, *g = (const T *)job->dout + r * cols;                   \
                double mu = job->rms ? 0.0 : (double)mean[r], rs = (double)rstd[r];                                  \
                double total_g = 0, total_g_xhat = 0;                                                                \
                for (int64_t c = 0; c < cols; c++) {                                                                 \
                    double xhat = ((double)row[c] - mu) * rs;                                                        \
                    double gc = (double)g[c] * (w ? (double)w[c] : 1.0);                                             \
                    total_g += gc;                                                                                   \
                    total_g_xhat += gc * xhat;                                                                       \
                    sum_w[c] += (double)g[c] * xhat;                                                                 \
                    sum_b[c] += (double)g[c];                                                                        \
                }                                                                                                    \
                if (!job->dx) continue;                                                                              \
                double mean_g = job->rms ? 0.0 : total_g / (double)cols;                                             \
                double mean_g_xhat = total_g_xhat / (double)cols;                                                    \
                T *d = (T *)job->dx + r * cols;                                                                      \
                for (int64_t c = 0; c < cols; c++) {                                                                 \
                    double xhat = ((double)row[c] - mu) * rs;                                                        \
                    double gc = (double)g[c] * (w ? (double)w[c] : 1.0);                                             \
                    d[c] = (T)(rs * (gc - mean_g - xhat * mean_g_xhat));                                             \
                }                                                                                                    \
            }                                                                                                        \
        }                                                                                                            \
    }
LAYER_NORM_FNS(TC_FLOAT64, double)

/* The float32 rows, vectorised: lane partial sums (then the lanes in
 * order, in double), the element arithmetic in float. The parameter
 * gradient partials of a block are float (partials holds 2 * cols floats
 * per block in its double-sized slots). */

/* Sum of the lanes of v, in order, in double. */
SIMD_INLINE double lanes_sum(simd_f32 v) {
    double sum = 0;
    for (int k = 0; k < SIMD_LANES; k++) sum += (double)v[k];
    return sum;
}

static SIMD_CLONES void layer_norm_forward_rows_float(int64_t begin, int64_t end, void *argument) {
    const norm_job *job = argument;
    const float *w = job->weight, *b = job->bias;
    int64_t cols = job->cols, full = cols - cols % SIMD_LANES;
    for (int64_t r = begin; r < end; r++) {
        const float *row = (const float *)job->x + r * cols;
        float *y = (float *)job->out + r * cols;
        int64_t c;
        float mean = 0;
        if (!job->rms) {
            simd_f32 acc = {0};
            double tail = 0;
            for (c = 0; c < full; c += SIMD_LANES) acc += simd_load(row + c);
            for (; c < cols; c++) tail += (double)row[c];
            mean = (float)((lanes_sum(acc) + tail) / (double)cols);
        }
        simd_f32 acc = {0};
        double tail = 0;
        for (c = 0; c < full; c += SIMD_LANES) {
            simd_f32 d = simd_load(row + c) - mean;
            acc += d * d;
        }
        for (; c < cols; c++) {
            float d = row[c] - mean;
            tail += (double)(d * d);
        }
        float rstd = (float)(1.0 / sqrt((lanes_sum(acc) + tail) / (double)cols + job->eps));
        for (c = 0; c < full; c += SIMD_LANES) {
            simd_f32 v = (simd_load(row + c) - mean) * rstd;
            if (w) v *= simd_load(w + c);
            if (b) v += simd_load(b + c);
            simd_store(y + c, v);
        }
        for (; c < cols; c++) {
            float v = (row[c] - mean) * rstd;
            if (w) v *= w[c];
            if (b) v += b[c];
            y[c] = v;
        }
        ((float *)job->mean)[r] = mean;
        ((float *)job->rstd)[r] = rstd;
    }
}

static SIMD_CLONES void layer_norm_backward_blocks_float(int64_t begin, int64_t end, void *argument) {
    const norm_job *job = argument;
    const float *w = job->weight, *mean = job->mean_in, *rstd = job->rstd_in;
    int64_t cols = job->cols, full = cols - cols % SIMD_LANES;
    const simd_f32 ones = simd_splat(1.0f);
    for (int64_t block = begin; block < end; block++) {
        float *sum_w = (float *)(job->partials + block * 2 * cols), *sum_b = sum_w + cols;
        memset(sum_w, 0, sizeof(float) * 2 * (size_t)cols);
        int64_t first = block * job->block_rows, last = first + job->block_rows;
        if (last > job->rows) last = job->rows;
        for (int64_t r = first; r < last; r++) {
            const float *row = (const float *)job->x + r * cols, *g = (const float *)job->dout + r * cols;
            float mu = job->rms ? 0.0f : mean[r], rs = rstd[r];
            simd_f32 acc_g = {0}, acc_gx = {0};
            double tail_g = 0, tail_gx = 0;
            int64_t c;
            for (c = 0; c < full; c += SIMD_LANES) {
                simd_f32 xhat = (simd_load(row + c) - mu) * rs, gv = simd_load(g + c);
                simd_f32 gw = gv * (w ? simd_load(w + c) : ones);
                acc_g += gw;
                acc_gx += gw * xhat;
                simd_store(sum_w + c, simd_load(sum_w + c) + gv * xhat);
                simd_store(sum_b + c, simd_load(sum_b + c) + gv);
            }
            for (; c < cols; c++) {
                float xhat = (row[c] - mu) * rs, gw = g[c] * (w ? w[c] : 1.0f);
                tail_g += (double)gw;
                tail_gx += (double)(gw * xhat);
                sum_w[c] += g[c] * xhat;
                sum_b[c] += g[c];
            }
            if (!job->dx) continue;
            float mean_g = job->rms ? 0.0f : (float)((lanes_sum(acc_g) + tail_g) / (double)cols);
            float mean_gx = (float)((lanes_sum(acc_gx) + tail_gx) / (double)cols);
            float *d = (float *)job->dx + r * cols;
            for (c = 0; c < full; c += SIMD_LANES) {
                simd_f32 xhat = (simd_load(row + c) - mu) * rs;
                simd_f32 gw = simd_load(g + c) * (w ? simd_load(w + c) : ones);
                simd_store(d + c, rs * (gw - mean_g - xhat * mean_gx));
            }
            for (; c < cols; c++) {
                float xhat = (row[c] - mu) * rs, gw = g[c] * (w ? w[c] : 1.0f);
                d[c] = rs * (gw - mean_g - xhat * mean_gx);
            }
        }
    }
}

tc_status cpu_layer_norm_forward(tc_context *ctx, tc_dtype dtype, bool rms, const void *x, const void *weight,
                                 const void *bias, double eps, int64_t rows, int64_t cols, void *out, void *mean,
                                 void *rstd) {
    norm_job job = {.rms = rms, .x = x, .weight = weight, .bias = bias, .eps = eps, .rows = rows, .cols = cols,
                    .out = out, .mean = mean, .rstd = rstd};
    cpu_parallel_for(ctx, rows, grain_for(3 * cols, CHUNK_WORK),
                     dtype == TC_FLOAT32 ? layer_norm_forward_rows_float : layer_norm_forward_rows_double, &job);
    return TC_OK;
}

tc_status cpu_layer_norm_backward(tc_context *ctx, tc_dtype dtype, bool rms, const void *x, const void *weight,
                                  const void *mean, const void *rstd, const void *dout, int64_t rows, int64_t cols,
                                  void *dx, void *dweight, void *dbias) {
    int64_t block_rows = norm_block_rows(rows), blocks = (rows + block_rows - 1) / block_rows;
    double *partials = tc_malloc(ctx, sizeof(double) * 2 * (size_t)(cols * blocks));
    if (!partials) return TC_ERROR_MEMORY;
    norm_job job = {.rms = rms, .x = x, .weight = weight, .mean_in = mean, .rstd_in = rstd, .dout = dout,
                    .rows = rows, .cols = cols, .block_rows = block_rows, .dx = dx, .partials = partials};
    cpu_parallel_for(ctx, blocks, 1,
                     dtype == TC_FLOAT32 ? layer_norm_backward_blocks_float : layer_norm_backward_blocks_double, &job);
    for (int64_t c = 0; c < cols; c++) {
        double sum_w = 0, sum_b = 0;
        for (int64_t block = 0; block < blocks; block++) {
            const double *slots = partials + block * 2 * cols;
            if (dtype == TC_FLOAT32) {
                sum_w += (double)((const float *)slots)[c];
                sum_b += (double)((const float *)slots)[cols + c];
            } else {
                sum_w += slots[c];
                sum_b += slots[cols + c];
            }
        }
        if (dtype == TC_FLOAT32) {
            if (dweight) ((float *)dweight)[c] = (float)sum_w;
            if (dbias) ((float *)dbias)[c] = (float)sum_b;
        } else {
            if (dweight) ((double *)dweight)[c] = sum_w;
            if (dbias) ((double *)dbias)[c] = sum_b;
        }
    }
    tc_free(partials);
    return TC_OK;
}
