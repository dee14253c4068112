/*
 * cpu_attention.c: multi-head self-attention, forward beside backward,
 * and the cached forward of decoding. Kernels are written once as a macro
 * over the element type; float32 rows are vectorised (cpu_simd.h,
 * cpu_rows.h), float64 rows are plain loops and serve the gradient checks.
 * The products go through the one GEMM dispatcher (cpu_matmul.c). Tasks
 * write disjoint outputs, so results are the same bits for any thread
 * count. Contracts are on the slots (backend_slots.h); these are the
 * oracle the CUDA kernels are checked against.
 */
#include "cpu_backend.h"
#include "cpu_rows.h"
#include "cpu_matmul.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One task per (batch, head), in parallel; each walks its queries in blocks
 * of ATTENTION_BLOCK rows. For a block, S = scale * Q_blk K^T covers only
 * the keys the block can see (causal: up to its last row's position), so
 * the blocks above the diagonal are never computed; rows are softmaxed in
 * place and O_blk = P V. Both products are small GEMMs reading q, k, v in
 * place (leading dimension (H + 2 KV) hd, or hd for a cache). With grouped
 * queries, q head h reads k/v head h / (H / KV); backward runs one task per
 * (batch, k/v head), its group's q heads in turn, so dk and dv have one
 * writer and the sums keep their order for any thread count. What a task holds is one
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
    int64_t batch, heads, kv_heads, head_dim;
    int64_t channels, ld; /* out's width H hd; qkv's (H + 2 KV) hd */
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
#define ROW_DOTS(T, ATTRIBUTES)                                                                                      \
    static ATTRIBUTES void row_dots_##T(const T *a, const T *b, int64_t ld, int64_t rows, int64_t cols, T *out) {    \
        int64_t r = 0;                                                                                               \
        for (; r + 4 <= rows; r += 4) {                                                                              \
            const T *a0 = a + r * ld, *a1 = a0 + ld, *a2 = a1 + ld, *a3 = a2 + ld;                                   \
            const T *b0 = b + r * ld, *b1 = b0 + ld, *b2 = b1 + ld, *b3 = b2 + ld;                                   \
            double d0 = 0, d1 = 0, d2 = 0, d3 = 0;                                                                   \
            for (int64_t c = 0; c < cols; c++) {                                                                     \
                d0 += (double)a0[c] * (double)b0[c];                                                                 \
                d1 += (double)a1[c] * (double)b1[c];                                                                 \
                d2 += (double)a2[c] * (double)b2[c];                                                                 \
                d3 += (double)a3[c] * (double)b3[c];                                                                 \
            }                                                                                                        \
            out[r] = (T)d0;                                                                                          \
            out[r + 1] = (T)d1;                                                                                      \
            out[r + 2] = (T)d2;                                                                                      \
            out[r + 3] = (T)d3;                                                                                      \
        }                                                                                                            \
        for (; r < rows; r++) {                                                                                      \
            double d = 0;                                                                                            \
            for (int64_t c = 0; c < cols; c++) d += (double)a[r * ld + c] * (double)b[r * ld + c];                   \
            out[r] = (T)d;                                                                                           \
        }                                                                                                            \
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

#define ATTENTION_FNS(E, T)                                                                                          \
    /* Pointers of head h of batch b: q rows, k and v rows with their leading                                        \
     * dimension (the packed qkv, or the cache). */                                                                  \
    static void head_pointers_##T(const attention_job *job, int64_t b, int64_t h, const T **q, const T **k,          \
                                  const T **v, int64_t *kv_ld) {                                                     \
        int64_t hd = job->head_dim, ld = job->ld, kv = h / (job->heads / job->kv_heads);                             \
        const T *row = (const T *)job->qkv + b * job->queries * ld;                                                  \
        *q = row + h * hd;                                                                                           \
        if (job->cached) {                                                                                           \
            int64_t head = (b * job->kv_heads + kv) * job->capacity * hd;                                            \
            *k = (const T *)job->k_cache + head;                                                                     \
            *v = (const T *)job->v_cache + head;                                                                     \
            *kv_ld = hd;                                                                                             \
        } else {                                                                                                     \
            *k = row + job->channels + kv * hd;                                                                      \
            *v = row + job->channels + (job->kv_heads + kv) * hd;                                                    \
            *kv_ld = ld;                                                                                             \
        }                                                                                                            \
    }                                                                                                                \
    static void attention_forward_heads_##T(int64_t begin, int64_t end, void *argument) {                            \
        attention_job *job = argument;                                                                               \
        int64_t hd = job->head_dim, ld = job->ld, C = job->channels;                                                 \
        double scale = 1.0 / sqrt((double)hd);                                                                       \
        int64_t block = job->queries < ATTENTION_BLOCK ? job->queries : ATTENTION_BLOCK;                             \
        T *s = malloc(sizeof(T) * (size_t)(block * job->keys + block));                                              \
        if (!s) {                                                                                                    \
            __atomic_store_n(&job->failed, 1, __ATOMIC_RELAXED); /* any chunk may set it */                          \
            return;                                                                                                  \
        }                                                                                                            \
        T *row_lse = s + block * job->keys;                                                                          \
        for (int64_t task = begin; task < end; task++) {                                                             \
            int64_t b = task / job->heads, h = task % job->heads;                                                    \
            const T *q, *k, *v;                                                                                      \
            int64_t kv_ld;                                                                                           \
            head_pointers_##T(job, b, h, &q, &k, &v, &kv_ld);                                                        \
            T *o = (T *)job->out + b * job->queries * C + h * hd;                                                    \
            T *lse = job->lse ? (T *)job->lse + (b * job->heads + h) * job->queries : NULL;                          \
            for (int64_t i0 = 0; i0 < job->queries; i0 += block) {                                                   \
                int64_t rows = job->queries - i0 < block ? job->queries - i0 : block;                                \
                int64_t keys = visible_keys(job, i0 + rows - 1);                                                     \
                cpu_matmul_in_task(E, job->native, false, true, rows, keys, hd, scale, q + i0 * ld, ld, k,           \
                                   kv_ld, 0.0, s, keys);                                                             \
                softmax_rows_##T(s, rows, keys, visible_keys(job, i0), job->causal, row_lse);                        \
                if (lse) memcpy(lse + i0, row_lse, sizeof(T) * (size_t)rows);                                        \
                cpu_matmul_in_task(E, job->native, false, false, rows, hd, keys, 1.0, s, keys, v, kv_ld, 0.0,        \
                                   o + i0 * C, C);                                                                   \
            }                                                                                                        \
        }                                                                                                            \
        free(s);                                                                                                     \
    }                                                                                                                \
    static void attention_backward_heads_##T(int64_t begin, int64_t end, void *argument) {                           \
        attention_job *job = argument;                                                                               \
        int64_t hd = job->head_dim, ld = job->ld, C = job->channels, t_all = job->queries;                           \
        int64_t group = job->heads / job->kv_heads;                                                                  \
        double scale = 1.0 / sqrt((double)hd);                                                                       \
        int64_t block = t_all < ATTENTION_BLOCK ? t_all : ATTENTION_BLOCK;                                           \
        T *p = malloc(sizeof(T) * (size_t)(2 * block * t_all + block));                                              \
        if (!p) {                                                                                                    \
            __atomic_store_n(&job->failed, 1, __ATOMIC_RELAXED); /* any chunk may set it */                          \
            return;                                                                                                  \
        }                                                                                                            \
        T *dp = p + block * t_all, *row_d = dp + block * t_all;                                                      \
        for (int64_t task = begin; task < end; task++) {                                                             \
            int64_t b = task / job->kv_heads, kv = task % job->kv_heads;                                             \
            T *dk = (T *)job->dqkv + b * t_all * ld + C + kv * hd, *dv = dk + job->kv_heads * hd;                    \
            clear_rows_##T(dk, t_all, hd, ld);                                                                       \
            clear_rows_##T(dv, t_all, hd, ld);                                                                       \
            for (int64_t h = kv * group; h < (kv + 1) * group; h++) {                                                \
                const T *q, *k, *v;                                                                                  \
                int64_t kv_ld;                                                                                       \
                head_pointers_##T(job, b, h, &q, &k, &v, &kv_ld);                                                    \
                const T *o = (const T *)job->out_in + b * t_all * C + h * hd;                                        \
                const T *g = (const T *)job->dout + b * t_all * C + h * hd;                                          \
                const T *lse = (const T *)job->lse_in + (b * job->heads + h) * t_all;                                \
                T *dq = (T *)job->dqkv + b * t_all * ld + h * hd;                                                    \
                for (int64_t i0 = 0; i0 < t_all; i0 += block) {                                                     \
                    int64_t rows = t_all - i0 < block ? t_all - i0 : block;                                          \
                    int64_t keys = visible_keys(job, i0 + rows - 1);                                                 \
                    cpu_matmul_in_task(E, job->native, false, true, rows, keys, hd, scale, q + i0 * ld, ld, k,       \
                                       kv_ld, 0.0, p, keys);                                                         \
                    probability_rows_##T(p, rows, keys, visible_keys(job, i0), job->causal, lse + i0);               \
                    row_dots_##T(g + i0 * C, o + i0 * C, C, rows, hd, row_d);                                        \
                    cpu_matmul_in_task(E, job->native, true, false, keys, hd, rows, 1.0, p, keys, g + i0 * C, C,     \
                                       1.0, dv, ld);                                                                 \
                    cpu_matmul_in_task(E, job->native, false, true, rows, keys, hd, 1.0, g + i0 * C, C, v, kv_ld,    \
                                       0.0, dp, keys);                                                               \
                    softmax_grad_rows_##T(p, dp, rows, keys, row_d);                                                 \
                    cpu_matmul_in_task(E, job->native, false, false, rows, hd, keys, scale, dp, keys, k, kv_ld,      \
                                       0.0, dq + i0 * ld, ld);                                                       \
                    cpu_matmul_in_task(E, job->native, true, false, keys, hd, rows, scale, dp, keys, q + i0 * ld,    \
                                       ld, 1.0, dk, ld);                                                             \
                }                                                                                                    \
            }                                                                                                        \
        }                                                                                                            \
        free(p);                                                                                                     \
    }                                                                                                                \
    /* Copies the new keys and values of one (batch, k/v head) into the cache. */                                    \
    static void cache_write_heads_##T(int64_t begin, int64_t end, void *argument) {                                  \
        attention_job *job = argument;                                                                               \
        int64_t hd = job->head_dim, ld = job->ld;                                                                    \
        for (int64_t task = begin; task < end; task++) {                                                             \
            int64_t b = task / job->kv_heads, kv = task % job->kv_heads;                                             \
            const T *source = (const T *)job->qkv + b * job->queries * ld + job->channels + kv * hd;                 \
            int64_t head = ((b * job->kv_heads + kv) * job->capacity + job->position) * hd;                          \
            T *k = (T *)job->k_cache + head, *v = (T *)job->v_cache + head;                                          \
            for (int64_t t = 0; t < job->queries; t++) {                                                             \
                memcpy(k + t * hd, source + t * ld, sizeof(T) * (size_t)hd);                                         \
                memcpy(v + t * hd, source + t * ld + job->kv_heads * hd, sizeof(T) * (size_t)hd);                    \
            }                                                                                                        \
        }                                                                                                            \
    }
FLOAT_DTYPES(ATTENTION_FNS)

static tc_status attention_run(tc_context *ctx, attention_job *job, int64_t tasks,
                               void (*body)(int64_t, int64_t, void *), int64_t cost_per_task) {
    cpu_blas_single_threaded();
    job->native = ctx->native_sgemm;
    cpu_parallel_for(ctx, tasks, grain_for(cost_per_task, 4 * CHUNK_WORK), body, job);
    if (job->failed) return tc_fail(ctx, TC_ERROR_MEMORY, "attention: out of memory for a scratch tile");
    return TC_OK;
}

tc_status cpu_attention_forward(tc_context *ctx, tc_dtype dtype, const void *qkv, int64_t batch, int64_t time,
                                int64_t n_head, int64_t n_kv_head, int64_t head_dim, bool causal, void *out,
                                void *lse) {
    attention_job job = {.qkv = qkv, .out = out, .lse = lse, .batch = batch, .heads = n_head, .kv_heads = n_kv_head,
                         .head_dim = head_dim, .channels = n_head * head_dim,
                         .ld = (n_head + 2 * n_kv_head) * head_dim, .queries = time, .keys = time, .causal = causal};
    return attention_run(ctx, &job, batch * n_head,
                         dtype == TC_FLOAT32 ? attention_forward_heads_float : attention_forward_heads_double,
                         time * time * head_dim);
}

tc_status cpu_attention_backward(tc_context *ctx, tc_dtype dtype, const void *qkv, const void *out, const void *lse,
                                 const void *dout, int64_t batch, int64_t time, int64_t n_head, int64_t n_kv_head,
                                 int64_t head_dim, bool causal, void *dqkv) {
    attention_job job = {.qkv = qkv, .out_in = out, .lse_in = lse, .dout = dout, .dqkv = dqkv, .batch = batch,
                         .heads = n_head, .kv_heads = n_kv_head, .head_dim = head_dim, .channels = n_head * head_dim,
                         .ld = (n_head + 2 * n_kv_head) * head_dim, .queries = time, .keys = time, .causal = causal};
    return attention_run(ctx, &job, batch * n_kv_head,
                         dtype == TC_FLOAT32 ? attention_backward_heads_float : attention_backward_heads_double,
                         3 * time * time * head_dim * (n_head / n_kv_head));
}

tc_status cpu_attention_cached(tc_context *ctx, tc_dtype dtype, const void *qkv, int64_t batch, int64_t time,
                               int64_t n_head, int64_t n_kv_head, int64_t head_dim, bool causal, void *k_cache,
                               void *v_cache, int64_t capacity, int64_t position, void *out) {
    attention_job job = {.qkv = qkv, .out = out, .k_cache = k_cache, .v_cache = v_cache, .batch = batch,
                         .heads = n_head, .kv_heads = n_kv_head, .head_dim = head_dim, .channels = n_head * head_dim,
                         .ld = (n_head + 2 * n_kv_head) * head_dim, .queries = time, .keys = position + time,
                         .capacity = capacity, .position = position, .causal = causal, .cached = true};
    cpu_parallel_for(ctx, batch * n_kv_head, grain_for(time * head_dim, CHUNK_WORK),
                     dtype == TC_FLOAT32 ? cache_write_heads_float : cache_write_heads_double, &job);
    return attention_run(ctx, &job, batch * n_head,
                         dtype == TC_FLOAT32 ? attention_forward_heads_float : attention_forward_heads_double,
                         time * (position + time) * head_dim);
}
