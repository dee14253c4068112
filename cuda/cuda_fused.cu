/*
 * cuda_fused.cu: CUDA kernels of the fused neural-network ops, each forward
 * beside its backward: the twin of src/cpu/cpu_fused.c, whose results they
 * reproduce (statistics and sums in double where the CPU keeps double).
 * Contracts are in tc_backend (src/internal.h).
 *
 * - Layer / RMS norm: a block per row; the weight and bias gradients are
 *   column sums over rows, done in fixed row chunks then summed in order,
 *   so they are deterministic without atomics.
 * - Attention: tiled kernels (cuda_attention_tiled.cu) for head dimensions
 *   up to 128; otherwise a block per query row (forward, dq) or key row
 *   (dk, dv), keys or queries taken in tiles of one per thread with an online
 *   softmax; no T x T matrix exists anywhere. Backward uses D_i = dout_i . out_i.
 *   Cached attention (decoding) writes the new keys and values into the
 *   caches, then runs the forward's row routine over the cached positions.
 * - Cross-entropy: a block per row; the loss sum and kept count are reduced
 *   over rows in a fixed order and read back.
 * - Optimiser steps, sum of squares, scale: grid-stride loops per tensor,
 *   element arithmetic in the parameter's dtype like the CPU.
 */
#include "cuda_attention_tiled.h"
#include "cuda_kernels.h"

#define ATTENTION_THREADS 64
/* Row chunks for the norm's column sums, and blocks per sum-of-squares buffer. */
#define NORM_CHUNKS 64
#define SQUARES_BLOCKS 128


/* ---- layer norm and RMS norm: kernels ---- */

template <typename T>
__global__ void layer_norm_forward_kernel(bool rms, const T *x, const T *w, const T *b, double eps, int64_t rows,
                                          int64_t cols, T *out, T *mean_out, T *rstd_out) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *row = x + r * cols;
        T *y = out + r * cols;
        double mean = 0;
        if (!rms) {
            double sum = 0;
            for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sum += (double)row[c];
            mean = block_sum(sum) / (double)cols;
        }
        double var = 0; /* the mean square about `mean` (0 for RMS norm) */
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            double d = (double)row[c] - mean;
            var += d * d;
        }
        double rstd = 1.0 / sqrt(block_sum(var) / (double)cols + eps);
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            double v = ((double)row[c] - mean) * rstd;
            if (w) v *= (double)w[c];
            if (b) v += (double)b[c];
            y[c] = (T)v;
        }
        if (threadIdx.x == 0) {
            mean_out[r] = (T)mean;
            rstd_out[r] = (T)rstd;
        }
    }
}

/* With xhat = (x - mean) * rstd and g = dout * w:
 * layer norm: dx = rstd * (g - mean(g) - xhat * mean(g * xhat));
 * RMS norm:   dx = rstd * (g - xhat * mean(g * xhat)). */
template <typename T>
__global__ void layer_norm_backward_dx_kernel(bool rms, const T *x, const T *w, const T *mean, const T *rstd,
                                              const T *dout, int64_t rows, int64_t cols, T *dx) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *row = x + r * cols, *g = dout + r * cols;
        double mu = rms ? 0.0 : (double)mean[r], rs = (double)rstd[r];
        double sum_g = 0, sum_g_xhat = 0;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            double xhat = ((double)row[c] - mu) * rs;
            double gc = (double)g[c] * (w ? (double)w[c] : 1.0);
            sum_g += gc;
            sum_g_xhat += gc * xhat;
        }
        sum_g = block_sum(sum_g);
        sum_g_xhat = block_sum(sum_g_xhat);
        double mean_g = rms ? 0.0 : sum_g / (double)cols, mean_g_xhat = sum_g_xhat / (double)cols;
        T *d = dx + r * cols;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            double xhat = ((double)row[c] - mu) * rs;
            double gc = (double)g[c] * (w ? (double)w[c] : 1.0);
            d[c] = (T)(rs * (gc - mean_g - xhat * mean_g_xhat));
        }
    }
}

/* Partial column sums of dout * xhat and dout over rows chunk*chunk_rows ..
 * +chunk_rows, one thread per (chunk, column). */
template <typename T>
__global__ void layer_norm_columns_kernel(bool rms, const T *x, const T *mean, const T *rstd, const T *dout,
                                          int64_t rows, int64_t cols, int64_t chunk_rows, int64_t chunks,
                                          double *partial_w, double *partial_b) {
    int64_t items = chunks * cols;
    for (int64_t item = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; item < items;
         item += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = item % cols, chunk = item / cols;
        int64_t end = (chunk + 1) * chunk_rows < rows ? (chunk + 1) * chunk_rows : rows;
        double sum_w = 0, sum_b = 0;
        for (int64_t r = chunk * chunk_rows; r < end; r++) {
            double xhat = ((double)x[r * cols + c] - (rms ? 0.0 : (double)mean[r])) * (double)rstd[r];
            double g = (double)dout[r * cols + c];
            sum_w += g * xhat;
            sum_b += g;
        }
        partial_w[item] = sum_w;
        partial_b[item] = sum_b;
    }
}

/* dweight and dbias (either may be NULL): the chunks' partial sums in order. */
template <typename T>
__global__ void layer_norm_columns_finish_kernel(const double *partial_w, const double *partial_b, int64_t cols,
                                                 int64_t chunks, T *dw, T *db) {
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < cols; c += (int64_t)gridDim.x * blockDim.x) {
        double sum_w = 0, sum_b = 0;
        for (int64_t chunk = 0; chunk < chunks; chunk++) {
            sum_w += partial_w[chunk * cols + c];
            sum_b += partial_b[chunk * cols + c];
        }
        if (dw) dw[c] = (T)sum_w;
        if (db) db[c] = (T)sum_b;
    }
}

/* ---- attention: kernels ----
 * Row r of the B*H*T query (or key) rows is (b, h, i) with i fastest. Row i
 * of head h's q is at qkv + (b*T + i)*3C + h*hd, its k at +C, its v at +2C. */

template <typename T> __device__ __forceinline__ T dot(const T *a, const T *b, int64_t n) {
    T sum = 0;
    for (int64_t d = 0; d < n; d++) sum += a[d] * b[d];
    return sum;
}

/* One query row against keys 0 .. n-1 (key j at keys + j*key_stride, its
 * value at values + j*key_stride), by the whole block. Online softmax: per
 * tile of blockDim keys, the running sum l and the accumulator are rescaled
 * by exp(m - m_new); out = acc / l. Returns lse = m + log(l) (in every
 * thread). shared holds hd + hd + blockDim elements; q_row is copied in. */
template <typename T>
__device__ __forceinline__ double attend_row(const T *q_row, const T *keys, const T *values, int64_t key_stride,
                                             int64_t n, int64_t hd, T scale, T *shared, T *out_row) {
    T *q = shared, *acc = shared + hd, *p = shared + 2 * hd;
    __syncthreads(); /* the block's previous row is done with shared */
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
        q[d] = q_row[d];
        acc[d] = 0;
    }
    __syncthreads();
    T m = -cuda_infinity<T>();
    double l = 0;
    for (int64_t j0 = 0; j0 < n; j0 += blockDim.x) {
        int64_t j = j0 + threadIdx.x;
        T s = j < n ? dot(q, keys + j * key_stride, hd) * scale : -cuda_infinity<T>();
        T m_new = nan_max(m, block_max(s));
        T e = j < n ? cuda_exp(s - m_new) : (T)0;
        p[threadIdx.x] = e;
        double tile_sum = block_sum((double)e); /* also publishes p */
        T correction = m == -cuda_infinity<T>() ? (T)0 : cuda_exp(m - m_new);
        l = l * (double)correction + tile_sum;
        int64_t count = n - j0 < (int64_t)blockDim.x ? n - j0 : (int64_t)blockDim.x;
        for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
            T a = acc[d] * correction;
            for (int64_t t = 0; t < count; t++) a += p[t] * values[(j0 + t) * key_stride + d];
            acc[d] = a;
        }
        __syncthreads(); /* p is rewritten by the next tile */
        m = m_new;
    }
    T inverse = (T)(1.0 / l);
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) out_row[d] = acc[d] * inverse;
    return (double)m + log(l);
}

/* A block per query row of qkv; keys and values from qkv too. */
template <typename T>
__global__ void attention_forward_kernel(const T *qkv, int64_t batch, int64_t time, int64_t channels, int64_t heads,
                                         bool causal, T scale, T *out, T *lse) {
    TC_DYNAMIC_SHARED(T, shared);
    int64_t hd = channels / heads, ld = 3 * channels, rows = batch * heads * time;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        int64_t i = row % time, h = row / time % heads, b = row / time / heads;
        const T *keys = qkv + b * time * ld + channels + h * hd;
        double row_lse = attend_row(qkv + (b * time + i) * ld + h * hd, keys, keys + channels, ld,
                                    causal ? i + 1 : time, hd, scale, shared, out + (b * time + i) * channels + h * hd);
        if (threadIdx.x == 0) lse[row] = (T)row_lse;
    }
}

/* Copies the new keys and values of qkv into the caches [B, H, capacity, hd]
 * at positions position .. position+T-1. */
template <typename T>
__global__ void cache_write_kernel(const T *qkv, int64_t batch, int64_t time, int64_t channels, int64_t heads,
                                   T *k_cache, T *v_cache, int64_t capacity, int64_t position) {
    int64_t hd = channels / heads, n = batch * time * channels;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = e % channels, t = e / channels % time, b = e / channels / time;
        int64_t at = ((b * heads + c / hd) * capacity + position + t) * hd + c % hd;
        k_cache[at] = qkv[(b * time + t) * 3 * channels + channels + c];
        v_cache[at] = qkv[(b * time + t) * 3 * channels + 2 * channels + c];
    }
}

/* A block per new query row, attending to the cached positions it sees. */
template <typename T>
__global__ void attention_cached_kernel(const T *qkv, int64_t batch, int64_t time, int64_t channels, int64_t heads,
                                        bool causal, const T *k_cache, const T *v_cache, int64_t capacity,
                                        int64_t position, T scale, T *out) {
    TC_DYNAMIC_SHARED(T, shared);
    int64_t hd = channels / heads, rows = batch * heads * time;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        int64_t i = row % time, h = row / time % heads, b = row / time / heads;
        int64_t head = (b * heads + h) * capacity * hd;
        attend_row(qkv + (b * time + i) * 3 * channels + h * hd, k_cache + head, v_cache + head, hd,
                   causal ? position + i + 1 : position + time, hd, scale, shared,
                   out + (b * time + i) * channels + h * hd);
    }
}

/* D[row] = dout_i . out_i for each (b, h, i): the rowsum of P * dP. */
template <typename T>
__global__ void attention_rowdot_kernel(const T *out, const T *dout, int64_t batch, int64_t time, int64_t channels,
                                        int64_t heads, T *rowdot) {
    int64_t hd = channels / heads, rows = batch * heads * time;
    for (int64_t row = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; row < rows;
         row += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = row % time, h = row / time % heads, b = row / time / heads;
        int64_t at = (b * time + i) * channels + h * hd;
        rowdot[row] = dot(out + at, dout + at, hd);
    }
}

/* dq_i = scale * sum_j P_ij (dP_ij - D_i) k_j with P_ij = exp(s_ij - lse_i),
 * dP_ij = dout_i . v_j. Shared: q[hd], g[hd] (dout_i), acc[hd], ds[blockDim]. */
template <typename T>
__global__ void attention_backward_query_kernel(const T *qkv, const T *lse, const T *rowdot, const T *dout,
                                                int64_t batch, int64_t time, int64_t channels, int64_t heads,
                                                bool causal, T scale, T *dqkv) {
    TC_DYNAMIC_SHARED(T, shared);
    int64_t hd = channels / heads, ld = 3 * channels, rows = batch * heads * time;
    T *q = shared, *g = shared + hd, *acc = shared + 2 * hd, *ds = shared + 3 * hd;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        int64_t i = row % time, h = row / time % heads, b = row / time / heads;
        const T *keys = qkv + b * time * ld + channels + h * hd, *values = keys + channels;
        __syncthreads();
        for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
            q[d] = qkv[(b * time + i) * ld + h * hd + d];
            g[d] = dout[(b * time + i) * channels + h * hd + d];
            acc[d] = 0;
        }
        __syncthreads();
        int64_t n = causal ? i + 1 : time;
        T row_lse = lse[row], row_dot = rowdot[row];
        for (int64_t j0 = 0; j0 < n; j0 += blockDim.x) {
            int64_t j = j0 + threadIdx.x;
            T value = 0;
            if (j < n) {
                T p = cuda_exp(dot(q, keys + j * ld, hd) * scale - row_lse);
                value = p * (dot(g, values + j * ld, hd) - row_dot);
            }
            ds[threadIdx.x] = value;
            __syncthreads();
            int64_t count = n - j0 < (int64_t)blockDim.x ? n - j0 : (int64_t)blockDim.x;
            for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
                T a = acc[d];
                for (int64_t t = 0; t < count; t++) a += ds[t] * keys[(j0 + t) * ld + d];
                acc[d] = a;
            }
            __syncthreads();
        }
        for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) dqkv[(b * time + i) * ld + h * hd + d] = acc[d] * scale;
    }
}

/* For key row j: dv_j = sum_i P_ij dout_i, dk_j = scale * sum_i P_ij (dP_ij -
 * D_i) q_i over the queries that see j. Shared: k[hd], v[hd], acc_k[hd],
 * acc_v[hd], p[blockDim], ds[blockDim]. */
template <typename T>
__global__ void attention_backward_key_kernel(const T *qkv, const T *lse, const T *rowdot, const T *dout,
                                              int64_t batch, int64_t time, int64_t channels, int64_t heads,
                                              bool causal, T scale, T *dqkv) {
    TC_DYNAMIC_SHARED(T, shared);
    int64_t hd = channels / heads, ld = 3 * channels, rows = batch * heads * time;
    T *k = shared, *v = shared + hd, *acc_k = shared + 2 * hd, *acc_v = shared + 3 * hd;
    T *p = shared + 4 * hd, *ds = p + blockDim.x;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        int64_t j = row % time, h = row / time % heads, b = row / time / heads;
        const T *queries = qkv + b * time * ld + h * hd;
        const T *grads = dout + b * time * channels + h * hd;
        const T *head_lse = lse + (b * heads + h) * time, *head_dot = rowdot + (b * heads + h) * time;
        __syncthreads();
        for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
            k[d] = qkv[(b * time + j) * ld + channels + h * hd + d];
            v[d] = qkv[(b * time + j) * ld + 2 * channels + h * hd + d];
            acc_k[d] = 0;
            acc_v[d] = 0;
        }
        __syncthreads();
        for (int64_t i0 = causal ? j : 0; i0 < time; i0 += blockDim.x) {
            int64_t i = i0 + threadIdx.x;
            T probability = 0, value = 0;
            if (i < time) {
                probability = cuda_exp(dot(queries + i * ld, k, hd) * scale - head_lse[i]);
                value = probability * (dot(grads + i * channels, v, hd) - head_dot[i]);
            }
            p[threadIdx.x] = probability;
            ds[threadIdx.x] = value;
            __syncthreads();
            int64_t count = time - i0 < (int64_t)blockDim.x ? time - i0 : (int64_t)blockDim.x;
            for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
                T a_k = acc_k[d], a_v = acc_v[d];
                for (int64_t t = 0; t < count; t++) {
                    a_k += ds[t] * queries[(i0 + t) * ld + d];
                    a_v += p[t] * grads[(i0 + t) * channels + d];
                }
                acc_k[d] = a_k;
                acc_v[d] = a_v;
            }
            __syncthreads();
        }
        for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
            dqkv[(b * time + j) * ld + channels + h * hd + d] = acc_k[d] * scale;
            dqkv[(b * time + j) * ld + 2 * channels + h * hd + d] = acc_v[d];
        }
    }
}

/* ---- softmax cross-entropy: kernels ---- */

__device__ __forceinline__ int64_t target_at(bool int32_targets, const void *targets, int64_t r) {
    if (int32_targets) return static_cast<const int32_t *>(targets)[r];
    return static_cast<const int64_t *>(targets)[r];
}

/* lse per row; losses[r] = lse - logit of the target and kept[r] = 1 on
 * kept rows, 0 and 0 on ignored rows. */
template <typename T>
__global__ void cross_entropy_forward_kernel(const T *logits, bool int32_targets, const void *targets, int64_t rows,
                                             int64_t classes, int64_t ignore_index, T *lse, double *losses,
                                             double *kept) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *row = logits + r * classes;
        T max = -cuda_infinity<T>();
        for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) max = nan_max(max, row[c]);
        max = block_max(max);
        double sum = 0;
        for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) sum += exp((double)(row[c] - max));
        double l = (double)max + log(block_sum(sum));
        if (threadIdx.x == 0) {
            lse[r] = (T)l;
            int64_t t = target_at(int32_targets, targets, r);
            bool keep = t != ignore_index;
            losses[r] = keep ? l - (double)row[t] : 0.0;
            kept[r] = keep ? 1.0 : 0.0;
        }
    }
}

/* One block: result[0] = sum of losses, result[1] = sum of kept. */
__global__ void cross_entropy_total_kernel(const double *losses, const double *kept, int64_t rows, double *result) {
    double loss = 0, count = 0;
    for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
        loss += losses[r];
        count += kept[r];
    }
    loss = block_sum(loss);
    count = block_sum(count);
    if (threadIdx.x == 0) {
        result[0] = loss;
        result[1] = count;
    }
}

template <typename T>
__global__ void cross_entropy_backward_kernel(const T *logits, bool int32_targets, const void *targets, const T *lse,
                                              int64_t rows, int64_t classes, int64_t ignore_index, double scale,
                                              T *dlogits) {
    int64_t n = rows * classes;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = e / classes, c = e % classes;
        int64_t t = target_at(int32_targets, targets, r);
        if (t == ignore_index) {
            dlogits[e] = (T)0;
            continue;
        }
        T d = (T)(scale * exp((double)logits[e] - (double)lse[r]));
        dlogits[e] = c == t ? (T)((double)d - scale) : d;
    }
}

/* ---- optimiser steps, sum of squares, scale: kernels ----
 * Weight decay as p -= (lr * wd) * p, like the CPU (see cpu_fused.c). */

template <typename T> struct adamw_coefficients {
    T b1, one_minus_b1, b2, one_minus_b2, decay, step_size, inverse_sqrt_bias2, epsilon;
};

template <typename T>
__global__ void adamw_kernel(T *param, const T *grad, T *m, T *v, int64_t n, adamw_coefficients<T> k) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        T g = grad[i];
        T mi = k.b1 * m[i] + k.one_minus_b1 * g;
        T vi = k.b2 * v[i] + k.one_minus_b2 * g * g;
        m[i] = mi;
        v[i] = vi;
        T p = param[i];
        p -= k.decay * param[i];
        p -= k.step_size * mi / (cuda_sqrt(vi) * k.inverse_sqrt_bias2 + k.epsilon);
        param[i] = p;
    }
}

template <typename T>
__global__ void sgd_kernel(T *param, const T *grad, T *buffer, int64_t n, T mu, T keep, T wd, T rate, bool nesterov) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        T g = grad[i] + wd * param[i];
        if (buffer) {
            T b = mu * buffer[i] + keep * g;
            buffer[i] = b;
            g = nesterov ? g + mu * b : b;
        }
        param[i] -= rate * g;
    }
}

/* partial[blockIdx.x] = this block's share of the sum of squares of x. */
template <typename T> __global__ void sum_squares_kernel(const T *x, int64_t n, double *partial) {
    double sum = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        sum += (double)x[i] * (double)x[i];
    sum = block_sum(sum);
    if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

/* One block: *result = the sum of n partial sums. */
__global__ void sum_partials_kernel(const double *partial, int64_t n, double *result) {
    double sum = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += partial[i];
    sum = block_sum(sum);
    if (threadIdx.x == 0) *result = sum;
}

template <typename T> __global__ void scale_kernel(T *x, int64_t n, T factor) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x[i] *= factor;
}

/* ---- launchers ---- */

static tc_status unsupported_dtype(tc_context *ctx, const char *function, tc_dtype dtype) {
    return tc_fail(ctx, TC_ERROR_DTYPE, "%s: dtype %s is not supported (float32 or float64)", function,
                   tc_dtype_name(dtype));
}

/* Threads for a block per row: enough warps to cover the row, at most CUDA_BLOCK. */
static unsigned row_threads(int64_t size) {
    int64_t threads = (size + CUDA_WARP - 1) / CUDA_WARP * CUDA_WARP;
    if (threads < CUDA_WARP) threads = CUDA_WARP;
    return (unsigned)(threads > CUDA_BLOCK ? CUDA_BLOCK : threads);
}

tc_status cuda_layer_norm_forward(tc_context *ctx, tc_dtype dtype, bool rms, const void *x, const void *weight,
                                  const void *bias, double eps, int64_t rows, int64_t cols, void *out, void *mean,
                                  void *rstd) {
    if (rows == 0) return TC_OK;
    bool known = cuda_dispatch_float(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(layer_norm_forward_kernel<T>, cuda_rows_for(rows), row_threads(cols), 0, cuda_stream_of(ctx), rms,
                  static_cast<const T *>(x), static_cast<const T *>(weight), static_cast<const T *>(bias), eps, rows,
                  cols, static_cast<T *>(out), static_cast<T *>(mean), static_cast<T *>(rstd));
    });
    if (!known) return unsupported_dtype(ctx, "layer_norm", dtype);
    return cuda_check_launch(ctx, rms ? "rms_norm" : "layer_norm");
}

tc_status cuda_layer_norm_backward(tc_context *ctx, tc_dtype dtype, bool rms, const void *x, const void *weight,
                                   const void *mean, const void *rstd, const void *dout, int64_t rows, int64_t cols,
                                   void *dx, void *dweight, void *dbias) {
    const char *name = rms ? "rms_norm backward" : "layer_norm backward";
    if (dtype != TC_FLOAT32 && dtype != TC_FLOAT64) return unsupported_dtype(ctx, name, dtype);
    cuda_stream stream = cuda_stream_of(ctx);
    if (dx && rows > 0) {
        cuda_dispatch_float(dtype, [&](auto tag) {
            typedef typename decltype(tag)::type T;
            TC_LAUNCH(layer_norm_backward_dx_kernel<T>, cuda_rows_for(rows), row_threads(cols), 0, stream, rms,
                      static_cast<const T *>(x), static_cast<const T *>(weight), static_cast<const T *>(mean),
                      static_cast<const T *>(rstd), static_cast<const T *>(dout), rows, cols, static_cast<T *>(dx));
        });
        TC_TRY(cuda_check_launch(ctx, name));
    }
    if ((!dweight && !dbias) || cols == 0) return TC_OK;
    int64_t chunks = rows < NORM_CHUNKS ? (rows > 0 ? rows : 1) : NORM_CHUNKS;
    int64_t chunk_rows = (rows + chunks - 1) / chunks;
    size_t bytes = sizeof(double) * 2 * (size_t)(chunks * cols);
    double *partial = static_cast<double *>(cuda_allocate(ctx, bytes));
    if (!partial) return TC_ERROR_MEMORY;
    cuda_dispatch_float(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(layer_norm_columns_kernel<T>, cuda_blocks_for(chunks * cols), CUDA_BLOCK, 0, stream, rms,
                  static_cast<const T *>(x), static_cast<const T *>(mean), static_cast<const T *>(rstd),
                  static_cast<const T *>(dout), rows, cols, chunk_rows, chunks, partial, partial + chunks * cols);
        TC_LAUNCH(layer_norm_columns_finish_kernel<T>, cuda_blocks_for(cols), CUDA_BLOCK, 0, stream, partial,
                  partial + chunks * cols, cols, chunks, static_cast<T *>(dweight), static_cast<T *>(dbias));
    });
    tc_status status = cuda_check_launch(ctx, name);
    cuda_release(ctx, partial, bytes);
    return status;
}

tc_status cuda_attention_forward(tc_context *ctx, tc_dtype dtype, const void *qkv, int64_t batch, int64_t time,
                                 int64_t channels, int64_t n_head, bool causal, void *out, void *lse) {
    int64_t rows = batch * n_head * time, hd = channels / n_head;
    if (rows == 0) return TC_OK;
    double scale = 1.0 / sqrt((double)hd);
    if (cuda_attention_tiled_fits(dtype, hd)) {
        cuda_attention_tiled_forward(ctx, dtype, qkv, batch, time, channels, n_head, causal, scale, out, lse);
        return cuda_check_launch(ctx, "attention");
    }
    bool known = cuda_dispatch_float(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        size_t shared = sizeof(T) * (size_t)(2 * hd + ATTENTION_THREADS);
        TC_LAUNCH(attention_forward_kernel<T>, cuda_rows_for(rows), ATTENTION_THREADS, shared, cuda_stream_of(ctx),
                  static_cast<const T *>(qkv), batch, time, channels, n_head, causal, (T)scale,
                  static_cast<T *>(out), static_cast<T *>(lse));
    });
    if (!known) return unsupported_dtype(ctx, "attention", dtype);
    return cuda_check_launch(ctx, "attention");
}

tc_status cuda_attention_cached(tc_context *ctx, tc_dtype dtype, const void *qkv, int64_t batch, int64_t time,
                                int64_t channels, int64_t n_head, bool causal, void *k_cache, void *v_cache,
                                int64_t capacity, int64_t position, void *out) {
    int64_t rows = batch * n_head * time, hd = channels / n_head;
    if (rows == 0) return TC_OK;
    double scale = 1.0 / sqrt((double)hd);
    cuda_stream stream = cuda_stream_of(ctx);
    bool known = cuda_dispatch_float(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(cache_write_kernel<T>, cuda_blocks_for(batch * time * channels), CUDA_BLOCK, 0, stream,
                  static_cast<const T *>(qkv), batch, time, channels, n_head, static_cast<T *>(k_cache),
                  static_cast<T *>(v_cache), capacity, position);
        TC_LAUNCH(attention_cached_kernel<T>, cuda_rows_for(rows), ATTENTION_THREADS,
                  sizeof(T) * (size_t)(2 * hd + ATTENTION_THREADS), stream, static_cast<const T *>(qkv), batch, time,
                  channels, n_head, causal, static_cast<const T *>(k_cache), static_cast<const T *>(v_cache),
                  capacity, position, (T)scale, static_cast<T *>(out));
    });
    if (!known) return unsupported_dtype(ctx, "attention_cached", dtype);
    return cuda_check_launch(ctx, "attention_cached");
}

tc_status cuda_attention_backward(tc_context *ctx, tc_dtype dtype, const void *qkv, const void *out, const void *lse,
                                  const void *dout, int64_t batch, int64_t time, int64_t channels, int64_t n_head,
                                  bool causal, void *dqkv) {
    int64_t rows = batch * n_head * time, hd = channels / n_head;
    if (dtype != TC_FLOAT32 && dtype != TC_FLOAT64) return unsupported_dtype(ctx, "attention backward", dtype);
    if (rows == 0) return TC_OK;
    double scale = 1.0 / sqrt((double)hd);
    size_t bytes = tc_dtype_size(dtype) * (size_t)rows;
    void *rowdot = cuda_allocate(ctx, bytes);
    if (!rowdot) return TC_ERROR_MEMORY;
    cuda_stream stream = cuda_stream_of(ctx);
    cuda_dispatch_float(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        const T *q = static_cast<const T *>(qkv), *l = static_cast<const T *>(lse), *g = static_cast<const T *>(dout);
        T *D = static_cast<T *>(rowdot), *dq = static_cast<T *>(dqkv);
        TC_LAUNCH(attention_rowdot_kernel<T>, cuda_blocks_for(rows), CUDA_BLOCK, 0, stream,
                  static_cast<const T *>(out), g, batch, time, channels, n_head, D);
        if (cuda_attention_tiled_fits(dtype, hd)) {
            cuda_attention_tiled_backward(ctx, dtype, qkv, lse, rowdot, dout, batch, time, channels, n_head, causal,
                                          scale, dqkv);
            return;
        }
        TC_LAUNCH(attention_backward_query_kernel<T>, cuda_rows_for(rows), ATTENTION_THREADS,
                  sizeof(T) * (size_t)(3 * hd + ATTENTION_THREADS), stream, q, l, D, g, batch, time, channels, n_head,
                  causal, (T)scale, dq);
        TC_LAUNCH(attention_backward_key_kernel<T>, cuda_rows_for(rows), ATTENTION_THREADS,
                  sizeof(T) * (size_t)(4 * hd + 2 * ATTENTION_THREADS), stream, q, l, D, g, batch, time, channels,
                  n_head, causal, (T)scale, dq);
    });
    tc_status status = cuda_check_launch(ctx, "attention backward");
    cuda_release(ctx, rowdot, bytes);
    return status;
}

tc_status cuda_cross_entropy_forward(tc_context *ctx, tc_dtype dtype, const void *logits, tc_dtype target_dtype,
                                     const void *targets, int64_t rows, int64_t classes, int64_t ignore_index,
                                     void *lse, double *loss_sum, int64_t *count) {
    if (dtype != TC_FLOAT32 && dtype != TC_FLOAT64) return unsupported_dtype(ctx, "cross_entropy", dtype);
    *loss_sum = 0;
    *count = 0;
    if (rows == 0) return TC_OK;
    size_t bytes = sizeof(double) * (size_t)(2 * rows + 2);
    double *scratch = static_cast<double *>(cuda_allocate(ctx, bytes));
    if (!scratch) return TC_ERROR_MEMORY;
    double *losses = scratch, *kept = scratch + rows, *result = scratch + 2 * rows;
    cuda_stream stream = cuda_stream_of(ctx);
    bool int32_targets = target_dtype == TC_INT32;
    cuda_dispatch_float(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(cross_entropy_forward_kernel<T>, cuda_rows_for(rows), row_threads(classes), 0, stream,
                  static_cast<const T *>(logits), int32_targets, targets, rows, classes, ignore_index,
                  static_cast<T *>(lse), losses, kept);
    });
    TC_LAUNCH(cross_entropy_total_kernel, 1, CUDA_BLOCK, 0, stream, losses, kept, rows, result);
    tc_status status = cuda_check_launch(ctx, "cross_entropy");
    double host[2] = {0, 0};
    if (status == TC_OK) status = cuda_copy_to_host(ctx, host, result, sizeof host);
    cuda_release(ctx, scratch, bytes);
    *loss_sum = host[0];
    *count = (int64_t)host[1];
    return status;
}

tc_status cuda_cross_entropy_backward(tc_context *ctx, tc_dtype dtype, const void *logits, tc_dtype target_dtype,
                                      const void *targets, const void *lse, int64_t rows, int64_t classes,
                                      int64_t ignore_index, double scale, void *dlogits) {
    int64_t n = rows * classes;
    if (n == 0) return TC_OK;
    bool known = cuda_dispatch_float(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(cross_entropy_backward_kernel<T>, cuda_blocks_for(n), CUDA_BLOCK, 0, cuda_stream_of(ctx),
                  static_cast<const T *>(logits), target_dtype == TC_INT32, targets, static_cast<const T *>(lse),
                  rows, classes, ignore_index, scale, static_cast<T *>(dlogits));
    });
    if (!known) return unsupported_dtype(ctx, "cross_entropy backward", dtype);
    return cuda_check_launch(ctx, "cross_entropy backward");
}

tc_status cuda_adamw_step(tc_context *ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors, double lr,
                          double beta1, double beta2, double eps, double weight_decay) {
    if (dtype != TC_FLOAT32 && dtype != TC_FLOAT64) return unsupported_dtype(ctx, "adamw", dtype);
    cuda_stream stream = cuda_stream_of(ctx);
    for (int i = 0; i < count; i++) {
        const tc_step_tensor *t = &tensors[i];
        if (t->numel == 0) continue;
        cuda_dispatch_float(dtype, [&](auto tag) {
            typedef typename decltype(tag)::type T;
            adamw_coefficients<T> k = {(T)beta1,
                                       (T)(1.0 - beta1),
                                       (T)beta2,
                                       (T)(1.0 - beta2),
                                       (T)(lr * weight_decay),
                                       (T)(lr / t->bias1),
                                       (T)(1.0 / sqrt(t->bias2)),
                                       (T)eps};
            TC_LAUNCH(adamw_kernel<T>, cuda_blocks_for(t->numel), CUDA_BLOCK, 0, stream, static_cast<T *>(t->param),
                      static_cast<const T *>(t->grad), static_cast<T *>(t->state[0]), static_cast<T *>(t->state[1]),
                      t->numel, k);
        });
        TC_TRY(cuda_check_launch(ctx, "adamw"));
    }
    return TC_OK;
}

tc_status cuda_sgd_step(tc_context *ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors, double lr,
                        double momentum, double dampening, bool nesterov, double weight_decay) {
    if (dtype != TC_FLOAT32 && dtype != TC_FLOAT64) return unsupported_dtype(ctx, "sgd", dtype);
    cuda_stream stream = cuda_stream_of(ctx);
    for (int i = 0; i < count; i++) {
        const tc_step_tensor *t = &tensors[i];
        if (t->numel == 0) continue;
        cuda_dispatch_float(dtype, [&](auto tag) {
            typedef typename decltype(tag)::type T;
            TC_LAUNCH(sgd_kernel<T>, cuda_blocks_for(t->numel), CUDA_BLOCK, 0, stream, static_cast<T *>(t->param),
                      static_cast<const T *>(t->grad), static_cast<T *>(t->state[0]), t->numel, (T)momentum,
                      (T)(1.0 - dampening), (T)weight_decay, (T)lr, nesterov);
        });
        TC_TRY(cuda_check_launch(ctx, "sgd"));
    }
    return TC_OK;
}

static unsigned squares_blocks(int64_t n) {
    unsigned blocks = cuda_blocks_for(n);
    return blocks > SQUARES_BLOCKS ? SQUARES_BLOCKS : blocks;
}

tc_status cuda_sum_squares(tc_context *ctx, tc_dtype dtype, int count, const void *const *x, const int64_t *sizes,
                           double *out) {
    if (dtype != TC_FLOAT32 && dtype != TC_FLOAT64) return unsupported_dtype(ctx, "sum_squares", dtype);
    *out = 0;
    int64_t slots = 0;
    for (int i = 0; i < count; i++) slots += squares_blocks(sizes[i]);
    if (slots == 0) return TC_OK;
    size_t bytes = sizeof(double) * (size_t)(slots + 1);
    double *partial = static_cast<double *>(cuda_allocate(ctx, bytes));
    if (!partial) return TC_ERROR_MEMORY;
    cuda_stream stream = cuda_stream_of(ctx);
    int64_t slot = 0;
    for (int i = 0; i < count; i++) {
        unsigned blocks = squares_blocks(sizes[i]);
        cuda_dispatch_float(dtype, [&](auto tag) {
            typedef typename decltype(tag)::type T;
            TC_LAUNCH(sum_squares_kernel<T>, blocks, CUDA_BLOCK, 0, stream, static_cast<const T *>(x[i]), sizes[i],
                      partial + slot);
        });
        slot += blocks;
    }
    TC_LAUNCH(sum_partials_kernel, 1, CUDA_BLOCK, 0, stream, partial, slots, partial + slots);
    tc_status status = cuda_check_launch(ctx, "sum_squares");
    if (status == TC_OK) status = cuda_copy_to_host(ctx, out, partial + slots, sizeof(double));
    cuda_release(ctx, partial, bytes);
    return status;
}

tc_status cuda_scale(tc_context *ctx, tc_dtype dtype, int count, void *const *x, const int64_t *sizes, double factor) {
    if (dtype != TC_FLOAT32 && dtype != TC_FLOAT64) return unsupported_dtype(ctx, "scale", dtype);
    cuda_stream stream = cuda_stream_of(ctx);
    for (int i = 0; i < count; i++) {
        if (sizes[i] == 0) continue;
        cuda_dispatch_float(dtype, [&](auto tag) {
            typedef typename decltype(tag)::type T;
            TC_LAUNCH(scale_kernel<T>, cuda_blocks_for(sizes[i]), CUDA_BLOCK, 0, stream, static_cast<T *>(x[i]),
                      sizes[i], (T)factor);
        });
        TC_TRY(cuda_check_launch(ctx, "scale"));
    }
    return TC_OK;
}
