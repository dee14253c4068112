/*
 * cpu_fused.c: CPU kernels of the fused neural-network ops, each forward
 * beside its backward. Every kernel is written once as a macro over the
 * element type and instantiated for float and double; float32 hot loops use
 * the vector math of cpu_simd.h (exp, tanh), float64 uses libm and serves
 * the gradient checks.
 *
 * Parallel work goes through cpu_parallel_for in chunks that write disjoint
 * outputs; every reduction across chunks (layer-norm parameter gradients,
 * losses, sums of squares) is made over fixed blocks that depend only on the
 * sizes, and summed in block order, so results are the same bits for any
 * thread count.
 *
 * Contracts are on the tc_backend slots (internal.h). These are the oracle
 * the CUDA kernels are checked against.
 */
#include "cpu_fused.h"

#include "cpu_backend.h"

#include "cpu_iterate.h"
#include "cpu_types.h"
#include "cpu_simd.h"
#include "cpu_sgemm.h"

#include <cblas.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Row-major GEMM with the BLAS argument order, one name per element type so
 * the macros below can paste it; `native` takes float32 through cpu_sgemm
 * (the context's choice). One row (decoding's single query) is a
 * matrix-vector product: the BLAS's GEMV reads op(b) once, where a GEMM
 * would pack it first. Sizes were checked against INT_MAX. */
static void gemm_float(bool native, bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k,
                       double alpha, const float *a, int64_t lda, const float *b, int64_t ldb, double beta, float *c,
                       int64_t ldc) {
    if (m == 1 && k > 0) { /* c[n] = alpha op(b)^T a + beta c, a strided when transposed */
        cblas_sgemv(CblasRowMajor, transpose_b ? CblasNoTrans : CblasTrans, (int)(transpose_b ? n : k),
                    (int)(transpose_b ? k : n), (float)alpha, b, (int)ldb, a, transpose_a ? (int)lda : 1, (float)beta,
                    c, 1);
        return;
    }
    if (native && cpu_sgemm(transpose_a, transpose_b, m, n, k, (float)alpha, a, lda, b, ldb, (float)beta, NULL, c, ldc,
                            NULL, NULL))
        return;
    cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, (float)alpha, a, (int)lda, b, (int)ldb, (float)beta, c, (int)ldc);
}

static void gemm_double(bool native, bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k,
                        double alpha, const double *a, int64_t lda, const double *b, int64_t ldb, double beta,
                        double *c, int64_t ldc) {
    (void)native;
    cblas_dgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* v's lanes rearranged: lane k gets lane index[k] (constants). */
#ifdef __clang__
#define LANES_SHUFFLE(v, ...) __builtin_shufflevector(v, v, __VA_ARGS__)
#else
#define LANES_SHUFFLE(v, ...) __builtin_shuffle(v, (simd_i32){__VA_ARGS__})
#endif

/* The lanes of v summed pairwise (lane k of the lower half plus lane k of
 * the upper half, then the same on the quarters, ...): a fixed order,
 * shorter than a chain. */
SIMD_INLINE float lanes_tree_sum(simd_f32 v) {
    v += LANES_SHUFFLE(v, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
    v += LANES_SHUFFLE(v, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7);
    v += LANES_SHUFFLE(v, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
    v += LANES_SHUFFLE(v, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    return v[0];
}

static double exp_shift_double(double *x, int64_t n, double shift) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = exp(x[i] - shift);
        sum += x[i];
    }
    return sum;
}

static int64_t target_at(tc_dtype dtype, const void *targets, int64_t i) {
    return dtype == TC_INT32 ? (int64_t)((const int32_t *)targets)[i] : ((const int64_t *)targets)[i];
}

/* A grain giving chunks of about `work` multiply-adds when one item costs
 * `item_cost`. */
static int64_t grain_for(int64_t item_cost, int64_t work) {
    int64_t grain = work / (item_cost > 0 ? item_cost : 1);
    return grain > 0 ? grain : 1;
}

#define CHUNK_WORK ((int64_t)1 << 15)

/* ---- layer norm and RMS norm ----
 * Rows are independent; the parameter gradients are summed over blocks of
 * norm_block_rows(rows) rows (partials in double), then over blocks in
 * order. */

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

#define LAYER_NORM_FNS(E, T)                                                                                       \
    static void layer_norm_forward_rows_##T(int64_t begin, int64_t end, void *argument) {                          \
        const norm_job *job = argument;                                                                            \
        const T *w = job->weight, *b = job->bias;                                                                  \
        int64_t cols = job->cols;                                                                                  \
        for (int64_t r = begin; r < end; r++) {                                                                    \
            const T *row = (const T *)job->x + r * cols;                                                           \
            T *y = (T *)job->out + r * cols;                                                                       \
            double mean = 0;                                                                                       \
            if (!job->rms) {                                                                                       \
                for (int64_t c = 0; c < cols; c++) mean += (double)row[c];                                         \
                mean /= (double)cols;                                                                              \
            }                                                                                                      \
            double var = 0; /* the mean square about `mean` (0 for RMS norm) */                                   \
            for (int64_t c = 0; c < cols; c++) {                                                                   \
                double d = (double)row[c] - mean;                                                                  \
                var += d * d;                                                                                      \
            }                                                                                                      \
            double rstd = 1.0 / sqrt(var / (double)cols + job->eps);                                               \
            for (int64_t c = 0; c < cols; c++) {                                                                   \
                double v = ((double)row[c] - mean) * rstd;                                                         \
                if (w) v *= (double)w[c];                                                                          \
                if (b) v += (double)b[c];                                                                          \
                y[c] = (T)v;                                                                                       \
            }                                                                                                      \
            ((T *)job->mean)[r] = (T)mean;                                                                         \
            ((T *)job->rstd)[r] = (T)rstd;                                                                         \
        }                                                                                                          \
    }                                                                                                              \
    /* With xhat = (x - mean) * rstd and g = dout * w:                                                             \
     * layer norm: dx = rstd * (g - mean(g) - xhat * mean(g * xhat));                                              \
     * RMS norm:   dx = rstd * (g - xhat * mean(g * xhat)).                                                        \
     * Items are blocks of rows; block i sums its rows' dweight and dbias                                         \
     * terms into partials[i]. */                                                                                  \
    static void layer_norm_backward_blocks_##T(int64_t begin, int64_t end, void *argument) {                       \
        const norm_job *job = argument;                                                                            \
        const T *w = job->weight, *mean = job->mean_in, *rstd = job->rstd_in;                                      \
        int64_t cols = job->cols;                                                                                  \
        for (int64_t block = begin; block < end; block++) {                                                        \
            double *sum_w = job->partials + block * 2 * cols, *sum_b = sum_w + cols;                               \
            memset(sum_w, 0, sizeof(double) * 2 * (size_t)cols);                                                   \
            int64_t first = block * job->block_rows, last = first + job->block_rows;                               \
            if (last > job->rows) last = job->rows;                                                                \
            for (int64_t r = first; r < last; r++) {                                                               \
                const T *row = (const T *)job->x + r * cols, *g = (const T *)job->dout + r * cols;                 \
                double mu = job->rms ? 0.0 : (double)mean[r], rs = (double)rstd[r];                                \
                double total_g = 0, total_g_xhat = 0;                                                              \
                for (int64_t c = 0; c < cols; c++) {                                                               \
                    double xhat = ((double)row[c] - mu) * rs;                                                      \
                    double gc = (double)g[c] * (w ? (double)w[c] : 1.0);                                           \
                    total_g += gc;                                                                                 \
                    total_g_xhat += gc * xhat;                                                                     \
                    sum_w[c] += (double)g[c] * xhat;                                                               \
                    sum_b[c] += (double)g[c];                                                                      \
                }                                                                                                  \
                if (!job->dx) continue;                                                                            \
                double mean_g = job->rms ? 0.0 : total_g / (double)cols;                                           \
                double mean_g_xhat = total_g_xhat / (double)cols;                                                  \
                T *d = (T *)job->dx + r * cols;                                                                    \
                for (int64_t c = 0; c < cols; c++) {                                                               \
                    double xhat = ((double)row[c] - mu) * rs;                                                      \
                    double gc = (double)g[c] * (w ? (double)w[c] : 1.0);                                           \
                    d[c] = (T)(rs * (gc - mean_g - xhat * mean_g_xhat));                                           \
                }                                                                                                  \
            }                                                                                                      \
        }                                                                                                          \
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

/* ---- attention ----
 * One task per (batch, head), in parallel; each walks its queries in blocks
 * of ATTENTION_BLOCK rows. For a block, S = scale * Q_blk K^T covers only
 * the keys the block can see (causal: up to its last row's position), so
 * the blocks above the diagonal are never computed; rows are softmaxed in
 * place and O_blk = P V. Both products are small GEMMs reading q, k, v in
 * place (leading dimension 3C, or hd for a cache). What a task holds is one
 * ATTENTION_BLOCK x T_k tile (two in backward); what outlives the forward is
 * the row log-sum-exp. Backward recomputes each tile's P = exp(S - lse) and
 * uses D = rowsum(dO * O) from the saved output:
 * dV += P^T dO, dP = dO V^T, dS = P * (dP - D), dQ = scale dS K,
 * dK += scale dS^T Q. */

#define ATTENTION_BLOCK 64

/* Where one head's rows live and how many keys each query row sees. */
typedef struct attention_job {
    const void *qkv;
    const void *out_in, *lse_in, *dout;
    void *out, *lse, *dqkv;
    void *k_cache, *v_cache;
    int64_t batch, heads, head_dim, channels;
    int64_t queries, keys, capacity, position;
    bool causal, cached;
    bool native; /* float32 GEMMs through cpu_sgemm */
    int failed; /* a task could not get its scratch */
} attention_job;

/* Keys visible to query row i: all, or those up to its position. */
static int64_t visible_keys(const attention_job *job, int64_t i) {
    if (!job->causal) return job->keys;
    int64_t n = i + 1 + (job->keys - job->queries);
    return n < job->keys ? n : job->keys;
}

/* The row work of a tile of `rows` rows of `keys` scores; row r sees
 * first_visible + r keys when causal, all otherwise. Float32 versions are
 * vectorised (ragged ends go through a padded vector), float64 versions
 * are plain loops. */

/* Each row: softmax over its visible keys in place, 0 beyond; row_lse gets
 * max + log(sum). */
static void softmax_rows_double(double *s, int64_t rows, int64_t keys, int64_t first_visible, bool causal,
                                double *row_lse) {
    for (int64_t r = 0; r < rows; r++) {
        double *row = s + r * keys;
        int64_t n = causal ? first_visible + r : keys;
        double max = row[0];
        for (int64_t j = 1; j < n; j++)
            if (row[j] > max) max = row[j];
        double sum = exp_shift_double(row, n, max), inverse = 1.0 / sum;
        for (int64_t j = 0; j < n; j++) row[j] *= inverse;
        for (int64_t j = n; j < keys; j++) row[j] = 0;
        row_lse[r] = max + log(sum);
    }
}

/* Each row: p = exp(s - lse) over its visible keys, 0 beyond. */
static void probability_rows_double(double *s, int64_t rows, int64_t keys, int64_t first_visible, bool causal,
                                    const double *lse) {
    for (int64_t r = 0; r < rows; r++) {
        double *row = s + r * keys;
        int64_t n = causal ? first_visible + r : keys;
        exp_shift_double(row, n, lse[r]);
        for (int64_t j = n; j < keys; j++) row[j] = 0;
    }
}

/* dS = P * (dP - D), row by row, into dp. */
static void softmax_grad_rows_double(const double *p, double *dp, int64_t rows, int64_t keys, const double *row_d) {
    for (int64_t i = 0; i < rows * keys; i++) dp[i] = p[i] * (dp[i] - row_d[i / keys]);
}

/* The float32 rows keep a row's ragged end in one masked vector: lanes at
 * and past the row's visible count are computed on whatever the tile holds
 * there and then replaced (by the running max, or by 0), so a row costs
 * whole-vector work only. Where the vector would run past the tile row
 * (keys not a multiple of SIMD_LANES) it goes through a padded copy. The
 * results are those of the element-by-element definitions: the max is
 * exact in any order, and the sum is in a fixed order (lane partials, then
 * lanes_tree_sum). */

static const simd_i32 lane_index = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* The vector of the `count` (< SIMD_LANES) floats at x; lanes from `count`
 * on are unspecified. `room` is how many floats may be read at x. */
SIMD_INLINE simd_f32 load_ragged(const float *x, int64_t count, int64_t room) {
    if (room >= SIMD_LANES) return simd_load(x);
    float padded[SIMD_LANES] = {0};
    memcpy(padded, x, sizeof(float) * (size_t)count);
    return simd_load(padded);
}

/* Stores the first `count` (< SIMD_LANES) lanes of v at x, and the others
 * too (v holds zeros there) when `room` floats may be written. Returns how
 * many floats it wrote. */
SIMD_INLINE int64_t store_ragged(float *x, simd_f32 v, int64_t count, int64_t room) {
    if (room >= SIMD_LANES) {
        simd_store(x, v);
        return SIMD_LANES;
    }
    float padded[SIMD_LANES];
    simd_store(padded, v);
    memcpy(x, padded, sizeof(float) * (size_t)count);
    return count;
}

/* x[0 .. n) = 0, in whole vectors where they fit. */
SIMD_INLINE void clear_floats(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + SIMD_LANES <= n; i += SIMD_LANES) simd_store(x + i, simd_splat(0.0f));
    for (; i < n; i++) x[i] = 0;
}

/* The largest lane of v, pairwise like lanes_tree_sum: a NaN in lane 0
 * wins, NaNs elsewhere lose, as in a scan from lane 0 with `>`. */
SIMD_INLINE float lanes_max(simd_f32 v) {
    simd_f32 h = LANES_SHUFFLE(v, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
    v = simd_select(h > v, h, v);
    h = LANES_SHUFFLE(v, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7);
    v = simd_select(h > v, h, v);
    h = LANES_SHUFFLE(v, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
    v = simd_select(h > v, h, v);
    h = LANES_SHUFFLE(v, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    v = simd_select(h > v, h, v);
    return v[0];
}

/* Lane partial maxima of row[0 .. n), 1 <= n <= keys: every lane is row[0]
 * or a larger element, so lanes_max gives the row's max (NaN when row[0]
 * is). */
SIMD_INLINE simd_f32 row_max_lanes(const float *row, int64_t n, int64_t keys) {
    simd_f32 best = simd_splat(row[0]);
    int64_t i = 0;
    for (; i + SIMD_LANES <= n; i += SIMD_LANES) {
        simd_f32 v = simd_load(row + i);
        best = simd_select(v > best, v, best);
    }
    if (i < n) {
        simd_f32 v = load_ragged(row + i, n - i, keys - i);
        best = simd_select((lane_index < (int32_t)(n - i)) & (v > best), v, best);
    }
    return best;
}

/* row[j] = exp(row[j] - shift) for j < n, 0 for n <= j < keys; returns the
 * lane partial sums of the new values. */
SIMD_INLINE simd_f32 row_exp_shift(float *row, int64_t n, int64_t keys, float shift) {
    simd_f32 total = {0};
    int64_t i = 0;
    for (; i + SIMD_LANES <= n; i += SIMD_LANES) {
        simd_f32 e = simd_exp(simd_load(row + i) - shift);
        simd_store(row + i, e);
        total += e;
    }
    if (i < n) {
        simd_f32 e = simd_exp(load_ragged(row + i, n - i, keys - i) - shift);
        e = simd_select(lane_index < (int32_t)(n - i), e, simd_splat(0.0f));
        total += e;
        i += store_ragged(row + i, e, n - i, keys - i);
    }
    clear_floats(row + i, keys - i);
    return total;
}

/* x[i] = exp(x[i] - shift) for i < n; returns the sum of the new values
 * (lane partials, then the lanes pairwise). */
static SIMD_CLONES double exp_shift_float(float *x, int64_t n, double shift) {
    return (double)lanes_tree_sum(row_exp_shift(x, n, n, (float)shift));
}

/* row[0 .. n) *= factor, past which the row is already 0 (row_exp_shift). */
SIMD_INLINE void row_scale(float *row, int64_t n, int64_t keys, float factor) {
    int64_t i = 0;
    for (; i + SIMD_LANES <= n; i += SIMD_LANES) simd_store(row + i, simd_load(row + i) * factor);
    if (i < n) {
        simd_f32 v = simd_select(lane_index < (int32_t)(n - i), load_ragged(row + i, n - i, keys - i) * factor,
                                 simd_splat(0.0f));
        store_ragged(row + i, v, n - i, keys - i);
    }
}

/* Rows go in groups, each step over the whole group before the next
 * (maxima, exponentials, scaling, then the logs), so that the rows' short
 * dependent chains overlap and the libm calls come together. */
#define SOFTMAX_GROUP 16

static SIMD_CLONES void softmax_rows_float(float *s, int64_t rows, int64_t keys, int64_t first_visible, bool causal,
                                           float *row_lse) {
    for (int64_t r0 = 0; r0 < rows; r0 += SOFTMAX_GROUP) {
        int64_t group = rows - r0 < SOFTMAX_GROUP ? rows - r0 : SOFTMAX_GROUP;
        int64_t n = causal ? first_visible + r0 : keys; /* visible keys of the group's first row */
        float *first = s + r0 * keys, max[SOFTMAX_GROUP], sum[SOFTMAX_GROUP];
        for (int64_t r = 0; r < group; r++)
            max[r] = lanes_max(row_max_lanes(first + r * keys, causal ? n + r : n, keys));
        for (int64_t r = 0; r < group; r++)
            sum[r] = lanes_tree_sum(row_exp_shift(first + r * keys, causal ? n + r : n, keys, max[r]));
        for (int64_t r = 0; r < group; r++)
            row_scale(first + r * keys, causal ? n + r : n, keys, (float)(1.0 / (double)sum[r]));
        for (int64_t r = 0; r < group; r++) row_lse[r0 + r] = (float)((double)max[r] + log((double)sum[r]));
    }
}

static SIMD_CLONES void probability_rows_float(float *s, int64_t rows, int64_t keys, int64_t first_visible,
                                               bool causal, const float *lse) {
    for (int64_t r = 0; r < rows; r++) {
        int64_t n = causal ? first_visible + r : keys;
        row_exp_shift(s + r * keys, n, keys, lse[r]);
    }
}

static SIMD_CLONES void softmax_grad_rows_float(const float *p, float *dp, int64_t rows, int64_t keys,
                                                const float *row_d) {
    for (int64_t r = 0; r < rows; r++) {
        const float *pr = p + r * keys;
        float *dr = dp + r * keys, d = row_d[r];
        int64_t j = 0;
        for (; j + SIMD_LANES <= keys; j += SIMD_LANES)
            simd_store(dr + j, simd_load(pr + j) * (simd_load(dr + j) - d));
        for (; j < keys; j++) dr[j] = pr[j] * (dr[j] - d);
    }
}

/* out[r] = the dot product of rows r of a and b (leading dimension ld,
 * `cols` long), summed in double in order of the columns (float products
 * are exact in double). Four rows go together so that their chains of
 * additions overlap; each row's order is unchanged. */
#define ROW_DOTS(T, ATTRIBUTES)                                                                                    \
    static ATTRIBUTES void row_dots_##T(const T *a, const T *b, int64_t ld, int64_t rows, int64_t cols, T *out) {  \
        int64_t r = 0;                                                                                             \
        for (; r + 4 <= rows; r += 4) {                                                                            \
            const T *a0 = a + r * ld, *a1 = a0 + ld, *a2 = a1 + ld, *a3 = a2 + ld;                                 \
            const T *b0 = b + r * ld, *b1 = b0 + ld, *b2 = b1 + ld, *b3 = b2 + ld;                                 \
            double d0 = 0, d1 = 0, d2 = 0, d3 = 0;                                                                 \
            for (int64_t c = 0; c < cols; c++) {                                                                   \
                d0 += (double)a0[c] * (double)b0[c];                                                               \
                d1 += (double)a1[c] * (double)b1[c];                                                               \
                d2 += (double)a2[c] * (double)b2[c];                                                               \
                d3 += (double)a3[c] * (double)b3[c];                                                               \
            }                                                                                                      \
            out[r] = (T)d0;                                                                                        \
            out[r + 1] = (T)d1;                                                                                    \
            out[r + 2] = (T)d2;                                                                                    \
            out[r + 3] = (T)d3;                                                                                    \
        }                                                                                                          \
        for (; r < rows; r++) {                                                                                    \
            double d = 0;                                                                                          \
            for (int64_t c = 0; c < cols; c++) d += (double)a[r * ld + c] * (double)b[r * ld + c];                 \
            out[r] = (T)d;                                                                                         \
        }                                                                                                          \
    }
ROW_DOTS(float, SIMD_CLONES)
ROW_DOTS(double, )

/* x[r * ld + c] = 0 for r < rows, c < cols. */
static void clear_rows_double(double *x, int64_t rows, int64_t cols, int64_t ld) {
    for (int64_t r = 0; r < rows; r++) memset(x + r * ld, 0, sizeof(double) * (size_t)cols);
}

static SIMD_CLONES void clear_rows_float(float *x, int64_t rows, int64_t cols, int64_t ld) {
    for (int64_t r = 0; r < rows; r++) clear_floats(x + r * ld, cols);
}

#define ATTENTION_FNS(E, T)                                                                                        \
    /* Pointers of head h of batch b: q rows, k and v rows with their leading                                      \
     * dimension (the packed qkv, or the cache). */                                                                \
    static void head_pointers_##T(const attention_job *job, int64_t b, int64_t h, const T **q, const T **k,        \
                                  const T **v, int64_t *kv_ld) {                                                   \
        int64_t hd = job->head_dim, ld = 3 * job->channels;                                                        \
        *q = (const T *)job->qkv + b * job->queries * ld + h * hd;                                                 \
        if (job->cached) {                                                                                         \
            int64_t head = (b * job->heads + h) * job->capacity * hd;                                              \
            *k = (const T *)job->k_cache + head;                                                                   \
            *v = (const T *)job->v_cache + head;                                                                   \
            *kv_ld = hd;                                                                                           \
        } else {                                                                                                   \
            *k = *q + job->channels;                                                                               \
            *v = *q + 2 * job->channels;                                                                           \
            *kv_ld = ld;                                                                                           \
        }                                                                                                          \
    }                                                                                                              \
    static void attention_forward_heads_##T(int64_t begin, int64_t end, void *argument) {                          \
        attention_job *job = argument;                                                                             \
        int64_t hd = job->head_dim, ld = 3 * job->channels, C = job->channels;                                     \
        double scale = 1.0 / sqrt((double)hd);                                                                     \
        int64_t block = job->queries < ATTENTION_BLOCK ? job->queries : ATTENTION_BLOCK;                           \
        T *s = malloc(sizeof(T) * (size_t)(block * job->keys + block));                                            \
        if (!s) {                                                                                                  \
            __atomic_store_n(&job->failed, 1, __ATOMIC_RELAXED); /* any chunk may set it */                      \
            return;                                                                                                \
        }                                                                                                          \
        T *row_lse = s + block * job->keys;                                                                        \
        for (int64_t task = begin; task < end; task++) {                                                           \
            int64_t b = task / job->heads, h = task % job->heads;                                                  \
            const T *q, *k, *v;                                                                                    \
            int64_t kv_ld;                                                                                         \
            head_pointers_##T(job, b, h, &q, &k, &v, &kv_ld);                                                      \
            T *o = (T *)job->out + b * job->queries * C + h * hd;                                                  \
            T *lse = job->lse ? (T *)job->lse + (b * job->heads + h) * job->queries : NULL;                        \
            for (int64_t i0 = 0; i0 < job->queries; i0 += block) {                                                 \
                int64_t rows = job->queries - i0 < block ? job->queries - i0 : block;                              \
                int64_t keys = visible_keys(job, i0 + rows - 1);                                                   \
                gemm_##T(job->native, false, true, rows, keys, hd, scale, q + i0 * ld, ld, k, kv_ld, 0.0, s, keys);    \
                softmax_rows_##T(s, rows, keys, visible_keys(job, i0), job->causal, row_lse);                      \
                if (lse) memcpy(lse + i0, row_lse, sizeof(T) * (size_t)rows);                                      \
                gemm_##T(job->native, false, false, rows, hd, keys, 1.0, s, keys, v, kv_ld, 0.0, o + i0 * C, C);       \
            }                                                                                                      \
        }                                                                                                          \
        free(s);                                                                                                   \
    }                                                                                                              \
    static void attention_backward_heads_##T(int64_t begin, int64_t end, void *argument) {                         \
        attention_job *job = argument;                                                                             \
        int64_t hd = job->head_dim, ld = 3 * job->channels, C = job->channels, t_all = job->queries;               \
        double scale = 1.0 / sqrt((double)hd);                                                                     \
        int64_t block = t_all < ATTENTION_BLOCK ? t_all : ATTENTION_BLOCK;                                         \
        T *p = malloc(sizeof(T) * (size_t)(2 * block * t_all + block));                                            \
        if (!p) {                                                                                                  \
            __atomic_store_n(&job->failed, 1, __ATOMIC_RELAXED); /* any chunk may set it */                      \
            return;                                                                                                \
        }                                                                                                          \
        T *dp = p + block * t_all, *row_d = dp + block * t_all;                                                    \
        for (int64_t task = begin; task < end; task++) {                                                           \
            int64_t b = task / job->heads, h = task % job->heads;                                                  \
            const T *q, *k, *v;                                                                                    \
            int64_t kv_ld;                                                                                         \
            head_pointers_##T(job, b, h, &q, &k, &v, &kv_ld);                                                      \
            const T *o = (const T *)job->out_in + b * t_all * C + h * hd;                                          \
            const T *g = (const T *)job->dout + b * t_all * C + h * hd;                                            \
            const T *lse = (const T *)job->lse_in + (b * job->heads + h) * t_all;                                  \
            T *dq = (T *)job->dqkv + b * t_all * ld + h * hd, *dk = dq + C, *dv = dq + 2 * C;                      \
            clear_rows_##T(dk, t_all, hd, ld);                                                                     \
            clear_rows_##T(dv, t_all, hd, ld);                                                                     \
            for (int64_t i0 = 0; i0 < t_all; i0 += block) {                                                        \
                int64_t rows = t_all - i0 < block ? t_all - i0 : block;                                            \
                int64_t keys = visible_keys(job, i0 + rows - 1);                                                   \
                gemm_##T(job->native, false, true, rows, keys, hd, scale, q + i0 * ld, ld, k, kv_ld, 0.0, p, keys);    \
                probability_rows_##T(p, rows, keys, visible_keys(job, i0), job->causal, lse + i0);                 \
                row_dots_##T(g + i0 * C, o + i0 * C, C, rows, hd, row_d);                                         \
                gemm_##T(job->native, true, false, keys, hd, rows, 1.0, p, keys, g + i0 * C, C, 1.0, dv, ld);          \
                gemm_##T(job->native, false, true, rows, keys, hd, 1.0, g + i0 * C, C, v, kv_ld, 0.0, dp, keys);       \
                softmax_grad_rows_##T(p, dp, rows, keys, row_d);                                                   \
                gemm_##T(job->native, false, false, rows, hd, keys, scale, dp, keys, k, kv_ld, 0.0, dq + i0 * ld, ld); \
                gemm_##T(job->native, true, false, keys, hd, rows, scale, dp, keys, q + i0 * ld, ld, 1.0, dk, ld);     \
            }                                                                                                      \
        }                                                                                                          \
        free(p);                                                                                                   \
    }                                                                                                              \
    /* Copies the new keys and values of one (batch, head) into the cache. */                                      \
    static void cache_write_heads_##T(int64_t begin, int64_t end, void *argument) {                                \
        attention_job *job = argument;                                                                             \
        int64_t hd = job->head_dim, ld = 3 * job->channels;                                                        \
        for (int64_t task = begin; task < end; task++) {                                                           \
            int64_t b = task / job->heads, h = task % job->heads;                                                  \
            const T *source = (const T *)job->qkv + b * job->queries * ld + h * hd;                                \
            int64_t head = ((b * job->heads + h) * job->capacity + job->position) * hd;                            \
            T *k = (T *)job->k_cache + head, *v = (T *)job->v_cache + head;                                        \
            for (int64_t t = 0; t < job->queries; t++) {                                                           \
                memcpy(k + t * hd, source + t * ld + job->channels, sizeof(T) * (size_t)hd);                       \
                memcpy(v + t * hd, source + t * ld + 2 * job->channels, sizeof(T) * (size_t)hd);                   \
            }                                                                                                      \
        }                                                                                                          \
    }
FLOAT_DTYPES(ATTENTION_FNS)

static tc_status attention_run(tc_context *ctx, attention_job *job, void (*body)(int64_t, int64_t, void *),
                               int64_t cost_per_head) {
    cpu_blas_single_threaded();
    job->native = ctx->native_sgemm;
    cpu_parallel_for(ctx, job->batch * job->heads, grain_for(cost_per_head, 4 * CHUNK_WORK), body, job);
    if (job->failed) return tc_fail(ctx, TC_ERROR_MEMORY, "attention: out of memory for a scratch tile");
    return TC_OK;
}

tc_status cpu_attention_forward(tc_context *ctx, tc_dtype dtype, const void *qkv, int64_t batch, int64_t time,
                                int64_t channels, int64_t n_head, bool causal, void *out, void *lse) {
    attention_job job = {.qkv = qkv, .out = out, .lse = lse, .batch = batch, .heads = n_head,
                         .head_dim = channels / n_head, .channels = channels, .queries = time, .keys = time,
                         .causal = causal};
    return attention_run(ctx, &job,
                         dtype == TC_FLOAT32 ? attention_forward_heads_float : attention_forward_heads_double,
                         time * time * channels / n_head);
}

tc_status cpu_attention_backward(tc_context *ctx, tc_dtype dtype, const void *qkv, const void *out, const void *lse,
                                 const void *dout, int64_t batch, int64_t time, int64_t channels, int64_t n_head,
                                 bool causal, void *dqkv) {
    attention_job job = {.qkv = qkv, .out_in = out, .lse_in = lse, .dout = dout, .dqkv = dqkv, .batch = batch,
                         .heads = n_head, .head_dim = channels / n_head, .channels = channels, .queries = time,
                         .keys = time, .causal = causal};
    return attention_run(ctx, &job,
                         dtype == TC_FLOAT32 ? attention_backward_heads_float : attention_backward_heads_double,
                         3 * time * time * channels / n_head);
}

tc_status cpu_attention_cached(tc_context *ctx, tc_dtype dtype, const void *qkv, int64_t batch, int64_t time,
                               int64_t channels, int64_t n_head, bool causal, void *k_cache, void *v_cache,
                               int64_t capacity, int64_t position, void *out) {
    attention_job job = {.qkv = qkv, .out = out, .k_cache = k_cache, .v_cache = v_cache, .batch = batch,
                         .heads = n_head, .head_dim = channels / n_head, .channels = channels, .queries = time,
                         .keys = position + time, .capacity = capacity, .position = position, .causal = causal,
                         .cached = true};
    cpu_parallel_for(ctx, batch * n_head, grain_for(time * channels / n_head, CHUNK_WORK),
                     dtype == TC_FLOAT32 ? cache_write_heads_float : cache_write_heads_double, &job);
    return attention_run(ctx, &job,
                         dtype == TC_FLOAT32 ? attention_forward_heads_float : attention_forward_heads_double,
                         time * (position + time) * channels / n_head);
}

/* ---- softmax cross-entropy ----
 * Rows are independent; the forward writes each row's loss (0 for an
 * ignored row) to a double scratch, summed in row order afterwards. */

typedef struct cross_entropy_job {
    const void *logits, *targets, *lse_in;
    tc_dtype target_dtype;
    int64_t classes, ignore_index;
    double scale;
    void *lse, *dlogits;
    double *row_loss;
    int failed;
} cross_entropy_job;

#define CROSS_ENTROPY_FNS(E, T)                                                                                    \
    static void cross_entropy_forward_rows_##T(int64_t begin, int64_t end, void *argument) {                       \
        cross_entropy_job *job = argument;                                                                         \
        int64_t classes = job->classes;                                                                            \
        T *buffer = malloc(sizeof(T) * (size_t)classes);                                                           \
        if (!buffer) {                                                                                             \
            __atomic_store_n(&job->failed, 1, __ATOMIC_RELAXED); /* any chunk may set it */                      \
            return;                                                                                                \
        }                                                                                                          \
        for (int64_t r = begin; r < end; r++) {                                                                    \
            const T *row = (const T *)job->logits + r * classes;                                                   \
            T max = row[0];                                                                                        \
            for (int64_t c = 1; c < classes; c++)                                                                  \
                if (row[c] > max) max = row[c];                                                                    \
            memcpy(buffer, row, sizeof(T) * (size_t)classes);                                                      \
            double l = (double)max + log(exp_shift_##T(buffer, classes, (double)max));                             \
            ((T *)job->lse)[r] = (T)l;                                                                             \
            int64_t t = target_at(job->target_dtype, job->targets, r);                                             \
            job->row_loss[r] = t == job->ignore_index ? 0.0 : l - (double)row[t];                                  \
        }                                                                                                          \
        free(buffer);                                                                                              \
    }                                                                                                              \
    static void cross_entropy_backward_rows_##T(int64_t begin, int64_t end, void *argument) {                      \
        cross_entropy_job *job = argument;                                                                         \
        int64_t classes = job->classes;                                                                            \
        for (int64_t r = begin; r < end; r++) {                                                                    \
            const T *row = (const T *)job->logits + r * classes;                                                   \
            T *d = (T *)job->dlogits + r * classes;                                                                \
            int64_t t = target_at(job->target_dtype, job->targets, r);                                             \
            if (t == job->ignore_index) {                                                                          \
                memset(d, 0, sizeof(T) * (size_t)classes);                                                         \
                continue;                                                                                          \
            }                                                                                                      \
            memcpy(d, row, sizeof(T) * (size_t)classes);                                                           \
            exp_shift_##T(d, classes, (double)((const T *)job->lse_in)[r]);                                        \
            T scale = (T)job->scale;                                                                               \
            for (int64_t c = 0; c < classes; c++) d[c] *= scale;                                                   \
            d[t] = (T)((double)d[t] - job->scale);                                                                 \
        }                                                                                                          \
    }
FLOAT_DTYPES(CROSS_ENTROPY_FNS)

tc_status cpu_cross_entropy_forward(tc_context *ctx, tc_dtype dtype, const void *logits, tc_dtype target_dtype,
                                    const void *targets, int64_t rows, int64_t classes, int64_t ignore_index,
                                    void *lse, double *loss_sum, int64_t *count) {
    double *row_loss = tc_malloc(ctx, sizeof(double) * (size_t)rows);
    if (!row_loss) return TC_ERROR_MEMORY;
    cross_entropy_job job = {.logits = logits, .targets = targets, .target_dtype = target_dtype, .classes = classes,
                             .ignore_index = ignore_index, .lse = lse, .row_loss = row_loss};
    cpu_parallel_for(ctx, rows, grain_for(4 * classes, CHUNK_WORK),
                     dtype == TC_FLOAT32 ? cross_entropy_forward_rows_float : cross_entropy_forward_rows_double, &job);
    double total = 0;
    int64_t kept = 0;
    for (int64_t r = 0; r < rows; r++) {
        total += row_loss[r];
        kept += target_at(target_dtype, targets, r) != ignore_index;
    }
    tc_free(row_loss);
    if (job.failed) return tc_fail(ctx, TC_ERROR_MEMORY, "cross_entropy: out of memory for a row buffer");
    *loss_sum = total;
    *count = kept;
    return TC_OK;
}

tc_status cpu_cross_entropy_backward(tc_context *ctx, tc_dtype dtype, const void *logits, tc_dtype target_dtype,
                                     const void *targets, const void *lse, int64_t rows, int64_t classes,
                                     int64_t ignore_index, double scale, void *dlogits) {
    cross_entropy_job job = {.logits = logits, .targets = targets, .lse_in = lse, .target_dtype = target_dtype,
                             .classes = classes, .ignore_index = ignore_index, .scale = scale, .dlogits = dlogits};
    cpu_parallel_for(ctx, rows, grain_for(4 * classes, CHUNK_WORK),
                     dtype == TC_FLOAT32 ? cross_entropy_backward_rows_float : cross_entropy_backward_rows_double,
                     &job);
    return TC_OK;
}

/* ---- multi-tensor steps ----
 * The elements of all tensors are cut into fixed spans of STEP_SPAN
 * elements (a span never crosses tensors); spans run in parallel. The
 * element arithmetic is in the parameter's dtype with coefficients prepared
 * in double. Weight decay is applied as p -= (lr * wd) * p rather than
 * p *= (1 - lr * wd): in float32 the factor 1 - lr*wd rounds to exactly 1
 * for small lr*wd, which would silently drop the decay. */

#define STEP_SPAN 8192

typedef struct span_job {
    int count;
    const tc_step_tensor *tensors;
    void *const *buffers; /* sum_squares and scale: plain buffers with sizes */
    const int64_t *sizes;
    const int64_t *first_span; /* [count + 1]: the first span of each tensor */
    double lr, beta1, beta2, eps, weight_decay, momentum, dampening, factor;
    bool nesterov;
    double *span_sums;
} span_job;

/* The tensor holding `span` (first_span is increasing) and the span's
 * first element in it. */
static int span_tensor(const span_job *job, int64_t span, int64_t *first) {
    int lo = 0, hi = job->count - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (job->first_span[mid] <= span) lo = mid;
        else hi = mid - 1;
    }
    *first = (span - job->first_span[lo]) * STEP_SPAN;
    return lo;
}

static int64_t span_size(const span_job *job, int i) {
    return job->tensors ? job->tensors[i].numel : job->sizes[i];
}

/* Fills first_span and returns the number of spans. */
static int64_t plan_spans(span_job *job, int64_t *first_span) {
    int64_t spans = 0;
    for (int i = 0; i < job->count; i++) {
        first_span[i] = spans;
        spans += (span_size(job, i) + STEP_SPAN - 1) / STEP_SPAN;
    }
    first_span[job->count] = spans;
    job->first_span = first_span;
    return spans;
}

/* The coefficients of one update in the element type (prepared in double),
 * and the update of n consecutive elements: AdamW of param, m, v from grad;
 * SGD of param and the momentum buffer (NULL without momentum). */
#define STEP_COEFFICIENTS(E, T)                                                                                    \
    typedef struct adamw_coefficients_##T {                                                                        \
        T b1, one_minus_b1, b2, one_minus_b2, decay, epsilon, step_size, inverse_sqrt_bias2;                       \
    } adamw_coefficients_##T;                                                                                      \
    typedef struct sgd_coefficients_##T {                                                                          \
        T mu, keep, wd, rate;                                                                                      \
        bool nesterov;                                                                                             \
    } sgd_coefficients_##T;
FLOAT_DTYPES(STEP_COEFFICIENTS)

/* The element arithmetic, one element at a time; the float32 versions below
 * do exactly these operations lane by lane. sqrt of a double holding a
 * float, rounded to float, is the correctly rounded float square root. */
static void adamw_range_double(const adamw_coefficients_double *c, double *param, double *m, double *v,
                               const double *grad, int64_t n) {
    for (int64_t k = 0; k < n; k++) {
        double g = grad[k];
        double mi = c->b1 * m[k] + c->one_minus_b1 * g;
        double vi = c->b2 * v[k] + c->one_minus_b2 * g * g;
        m[k] = mi;
        v[k] = vi;
        double p = param[k];
        p -= c->decay * p;
        p -= c->step_size * mi / (sqrt(vi) * c->inverse_sqrt_bias2 + c->epsilon);
        param[k] = p;
    }
}

static void sgd_range_double(const sgd_coefficients_double *c, double *param, double *buffer, const double *grad,
                             int64_t n) {
    for (int64_t k = 0; k < n; k++) {
        double g = grad[k] + c->wd * param[k];
        if (buffer) {
            double b = c->mu * buffer[k] + c->keep * g;
            buffer[k] = b;
            g = c->nesterov ? g + c->mu * b : b;
        }
        param[k] -= c->rate * g;
    }
}

/* Float32 AdamW over n elements, n a multiple of SIMD_LANES. The square
 * root needs the hardware's vector instruction (the compiler keeps sqrtf
 * scalar for errno's sake), so there is one copy per instruction set with
 * its own lanes_sqrt, picked at run time; all give the same bits. */
#define ADAMW_FLOAT_LANES(name, target, lanes_sqrt)                                                                \
    target static void name(const adamw_coefficients_float *c, float *param, float *m, float *v, const float *grad, \
                            int64_t n) {                                                                           \
        for (int64_t k = 0; k < n; k += SIMD_LANES) {                                                              \
            simd_f32 g = simd_load(grad + k);                                                                      \
            simd_f32 mi = c->b1 * simd_load(m + k) + c->one_minus_b1 * g;                                          \
            simd_f32 vi = c->b2 * simd_load(v + k) + c->one_minus_b2 * g * g;                                      \
            simd_store(m + k, mi);                                                                                 \
            simd_store(v + k, vi);                                                                                 \
            simd_f32 p = simd_load(param + k);                                                                     \
            p -= c->decay * p;                                                                                     \
            p -= c->step_size * mi / (lanes_sqrt(vi) * c->inverse_sqrt_bias2 + c->epsilon);                        \
            simd_store(param + k, p);                                                                              \
        }                                                                                                          \
    }

#if defined(__x86_64__) && defined(__GNUC__)

#define TARGET_AVX512F __attribute__((target("avx512f")))
#define TARGET_AVX __attribute__((target("avx")))

TARGET_AVX512F SIMD_INLINE simd_f32 lanes_sqrt_avx512f(simd_f32 x) { return (simd_f32)_mm512_sqrt_ps((__m512)x); }

TARGET_AVX SIMD_INLINE simd_f32 lanes_sqrt_avx(simd_f32 x) {
    __m256 half[2];
    memcpy(half, &x, sizeof half);
    half[0] = _mm256_sqrt_ps(half[0]);
    half[1] = _mm256_sqrt_ps(half[1]);
    memcpy(&x, half, sizeof x);
    return x;
}

SIMD_INLINE simd_f32 lanes_sqrt_sse(simd_f32 x) {
    __m128 quarter[4];
    memcpy(quarter, &x, sizeof quarter);
    for (int k = 0; k < 4; k++) quarter[k] = _mm_sqrt_ps(quarter[k]);
    memcpy(&x, quarter, sizeof x);
    return x;
}

ADAMW_FLOAT_LANES(adamw_lanes_avx512f, TARGET_AVX512F, lanes_sqrt_avx512f)
ADAMW_FLOAT_LANES(adamw_lanes_avx, TARGET_AVX, lanes_sqrt_avx)
ADAMW_FLOAT_LANES(adamw_lanes_sse, , lanes_sqrt_sse)

static void adamw_lanes_float(const adamw_coefficients_float *c, float *param, float *m, float *v,
                              const float *grad, int64_t n) {
    if (__builtin_cpu_supports("avx512f")) adamw_lanes_avx512f(c, param, m, v, grad, n);
    else if (__builtin_cpu_supports("avx")) adamw_lanes_avx(c, param, m, v, grad, n);
    else adamw_lanes_sse(c, param, m, v, grad, n);
}

#else

SIMD_INLINE simd_f32 lanes_sqrt_scalar(simd_f32 x) {
    for (int k = 0; k < SIMD_LANES; k++) x[k] = sqrtf(x[k]);
    return x;
}

ADAMW_FLOAT_LANES(adamw_lanes_float, , lanes_sqrt_scalar)

#endif

/* The last n % SIMD_LANES elements go through one padded vector. */
static void adamw_range_float(const adamw_coefficients_float *c, float *param, float *m, float *v, const float *grad,
                              int64_t n) {
    int64_t full = n - n % SIMD_LANES;
    adamw_lanes_float(c, param, m, v, grad, full);
    if (full == n) return;
    float pad[4][SIMD_LANES] = {{0}};
    size_t bytes = sizeof(float) * (size_t)(n - full);
    memcpy(pad[0], param + full, bytes);
    memcpy(pad[1], m + full, bytes);
    memcpy(pad[2], v + full, bytes);
    memcpy(pad[3], grad + full, bytes);
    adamw_lanes_float(c, pad[0], pad[1], pad[2], pad[3], SIMD_LANES);
    memcpy(param + full, pad[0], bytes);
    memcpy(m + full, pad[1], bytes);
    memcpy(v + full, pad[2], bytes);
}

/* Float32 SGD over n elements, n a multiple of SIMD_LANES. */
static SIMD_CLONES void sgd_lanes_float(const sgd_coefficients_float *c, float *param, float *buffer,
                                        const float *grad, int64_t n) {
    for (int64_t k = 0; k < n; k += SIMD_LANES) {
        simd_f32 g = simd_load(grad + k) + c->wd * simd_load(param + k);
        if (buffer) {
            simd_f32 b = c->mu * simd_load(buffer + k) + c->keep * g;
            simd_store(buffer + k, b);
            g = c->nesterov ? g + c->mu * b : b;
        }
        simd_store(param + k, simd_load(param + k) - c->rate * g);
    }
}

static void sgd_range_float(const sgd_coefficients_float *c, float *param, float *buffer, const float *grad,
                            int64_t n) {
    int64_t full = n - n % SIMD_LANES;
    sgd_lanes_float(c, param, buffer, grad, full);
    if (full == n) return;
    float pad[3][SIMD_LANES] = {{0}};
    size_t bytes = sizeof(float) * (size_t)(n - full);
    memcpy(pad[0], param + full, bytes);
    if (buffer) memcpy(pad[1], buffer + full, bytes);
    memcpy(pad[2], grad + full, bytes);
    sgd_lanes_float(c, pad[0], buffer ? pad[1] : NULL, pad[2], SIMD_LANES);
    memcpy(param + full, pad[0], bytes);
    if (buffer) memcpy(buffer + full, pad[1], bytes);
}

#define STEP_FNS(E, T)                                                                                             \
    static void adamw_spans_##T(int64_t begin, int64_t end, void *argument) {                                      \
        const span_job *job = argument;                                                                            \
        adamw_coefficients_##T c = {.b1 = (T)job->beta1, .one_minus_b1 = (T)(1.0 - job->beta1),                    \
                                    .b2 = (T)job->beta2, .one_minus_b2 = (T)(1.0 - job->beta2),                    \
                                    .decay = (T)(job->lr * job->weight_decay), .epsilon = (T)job->eps};            \
        for (int64_t span = begin; span < end; span++) {                                                           \
            int64_t first, last;                                                                                   \
            int i = span_tensor(job, span, &first);                                                                \
            const tc_step_tensor *t = &job->tensors[i];                                                            \
            last = first + STEP_SPAN < t->numel ? first + STEP_SPAN : t->numel;                                    \
            c.step_size = (T)(job->lr / t->bias1);                                                                 \
            c.inverse_sqrt_bias2 = (T)(1.0 / sqrt(t->bias2));                                                      \
            adamw_range_##T(&c, (T *)t->param + first, (T *)t->state[0] + first, (T *)t->state[1] + first,         \
                            (const T *)t->grad + first, last - first);                                             \
        }                                                                                                          \
    }                                                                                                              \
    static void sgd_spans_##T(int64_t begin, int64_t end, void *argument) {                                        \
        const span_job *job = argument;                                                                            \
        sgd_coefficients_##T c = {.mu = (T)job->momentum, .keep = (T)(1.0 - job->dampening),                      \
                                  .wd = (T)job->weight_decay, .rate = (T)job->lr, .nesterov = job->nesterov};      \
        for (int64_t span = begin; span < end; span++) {                                                           \
            int64_t first, last;                                                                                   \
            int i = span_tensor(job, span, &first);                                                                \
            const tc_step_tensor *t = &job->tensors[i];                                                            \
            last = first + STEP_SPAN < t->numel ? first + STEP_SPAN : t->numel;                                    \
            T *buffer = t->state[0] ? (T *)t->state[0] + first : NULL;                                             \
            sgd_range_##T(&c, (T *)t->param + first, buffer, (const T *)t->grad + first, last - first);            \
        }                                                                                                          \
    }                                                                                                              \
    static void sum_squares_spans_##T(int64_t begin, int64_t end, void *argument) {                                \
        const span_job *job = argument;                                                                            \
        for (int64_t span = begin; span < end; span++) {                                                           \
            int64_t first, last;                                                                                   \
            int i = span_tensor(job, span, &first);                                                                \
            last = first + STEP_SPAN < job->sizes[i] ? first + STEP_SPAN : job->sizes[i];                          \
            const T *x = job->buffers[i];                                                                          \
            double total = 0;                                                                                      \
            for (int64_t k = first; k < last; k++) total += (double)x[k] * (double)x[k];                           \
            job->span_sums[span] = total;                                                                          \
        }                                                                                                          \
    }                                                                                                              \
    static void scale_spans_##T(int64_t begin, int64_t end, void *argument) {                                      \
        const span_job *job = argument;                                                                            \
        const T f = (T)job->factor;                                                                                \
        for (int64_t span = begin; span < end; span++) {                                                           \
            int64_t first, last;                                                                                   \
            int i = span_tensor(job, span, &first);                                                                \
            last = first + STEP_SPAN < job->sizes[i] ? first + STEP_SPAN : job->sizes[i];                          \
            T *x = job->buffers[i];                                                                                \
            for (int64_t k = first; k < last; k++) x[k] *= f;                                                      \
        }                                                                                                          \
    }
FLOAT_DTYPES(STEP_FNS)

/* Plans the spans of job and runs body over them in parallel; with
 * want_sums, job->span_sums gets one slot per span (the caller frees it). */
static tc_status run_spans(tc_context *ctx, span_job *job, void (*body)(int64_t, int64_t, void *), bool want_sums,
                           int64_t *span_count) {
    *span_count = 0;
    if (job->count <= 0) return TC_OK;
    int64_t *first_span = tc_malloc(ctx, sizeof(int64_t) * (size_t)(job->count + 1));
    if (!first_span) return TC_ERROR_MEMORY;
    int64_t spans = plan_spans(job, first_span);
    tc_status status = TC_OK;
    if (want_sums) {
        job->span_sums = tc_calloc(ctx, (size_t)(spans ? spans : 1), sizeof(double));
        if (!job->span_sums) status = TC_ERROR_MEMORY;
    }
    if (status == TC_OK) cpu_parallel_for(ctx, spans, 1, body, job);
    tc_free(first_span);
    *span_count = spans;
    return status;
}

tc_status cpu_adamw_step(tc_context *ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors, double lr,
                         double beta1, double beta2, double eps, double weight_decay) {
    span_job job = {.count = count, .tensors = tensors, .lr = lr, .beta1 = beta1, .beta2 = beta2, .eps = eps,
                    .weight_decay = weight_decay};
    int64_t spans;
    return run_spans(ctx, &job, dtype == TC_FLOAT32 ? adamw_spans_float : adamw_spans_double, false, &spans);
}

tc_status cpu_sgd_step(tc_context *ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors, double lr,
                       double momentum, double dampening, bool nesterov, double weight_decay) {
    span_job job = {.count = count, .tensors = tensors, .lr = lr, .momentum = momentum, .dampening = dampening,
                    .nesterov = nesterov, .weight_decay = weight_decay};
    int64_t spans;
    return run_spans(ctx, &job, dtype == TC_FLOAT32 ? sgd_spans_float : sgd_spans_double, false, &spans);
}

tc_status cpu_sum_squares(tc_context *ctx, tc_dtype dtype, int count, const void *const *x, const int64_t *sizes,
                          double *out) {
    span_job job = {.count = count, .buffers = (void *const *)x, .sizes = sizes};
    int64_t spans;
    *out = 0;
    if (count <= 0) return TC_OK;
    tc_status status =
        run_spans(ctx, &job, dtype == TC_FLOAT32 ? sum_squares_spans_float : sum_squares_spans_double, true, &spans);
    if (status != TC_OK) {
        tc_free(job.span_sums);
        return status;
    }
    double total = 0;
    for (int64_t s = 0; s < spans; s++) total += job.span_sums[s];
    tc_free(job.span_sums);
    *out = total;
    return TC_OK;
}

tc_status cpu_scale(tc_context *ctx, tc_dtype dtype, int count, void *const *x, const int64_t *sizes, double factor) {
    span_job job = {.count = count, .buffers = x, .sizes = sizes, .factor = factor};
    int64_t spans;
    return run_spans(ctx, &job, dtype == TC_FLOAT32 ? scale_spans_float : scale_spans_double, false, &spans);
}
