/*
 * cuda_attention.cu: multi-head self-attention, forward beside backward,
 * and the cached forward of decoding: the twin of src/cpu/cpu_attention.c.
 * Heads of up to 128 dimensions go to the tiled kernels
 * (cuda_attention_tiled.cu); the rest here, a block per query row (forward,
 * dq) or key row (dk, dv), keys or queries taken in tiles of one per thread
 * with an online softmax; no T x T matrix exists anywhere. Backward uses
 * D_i = dout_i . out_i. Cached attention (decoding) writes the new keys and
 * values into the caches, then runs the forward's row routine over the
 * cached positions. Contracts are on the slots (src/backend_slots.h).
 *
 * A kernel over storage type T computes in C = cuda_compute_t<T>: bfloat16
 * and float16 qkv, out, dout and dqkv (CUDA_HALF_SLOTS) are read as float32,
 * shared memory, lse and D hold float32, and each result is rounded once.
 */
#include "cuda_attention_tiled.h"
#include "cuda_half.h"

#define ATTENTION_THREADS 64

/* ---- kernels ----
 * Row r of the B*H*T query rows (B*KV*T key rows) is (b, h, i) with i
 * fastest; heads live in qkv as attention_layout says. A key row walks the
 * query heads of its group in turn, so dk and dv have one writer. */

template <typename C, typename A, typename B> __device__ __forceinline__ C dot(const A *a, const B *b, int64_t n) {
    C sum = 0;
    for (int64_t d = 0; d < n; d++) sum += (C)a[d] * (C)b[d];
    return sum;
}

/* One query row against keys 0 .. n-1 (key j at keys + j*key_stride, its
 * value at values + j*key_stride), by the whole block. Online softmax: per
 * tile of blockDim keys, the running sum l and the accumulator are rescaled
 * by exp(m - m_new); out = acc / l. Returns lse = m + log(l) (in every
 * thread). shared holds hd + hd + blockDim elements; q_row is copied in. */
template <typename T, typename C = cuda_compute_t<T>>
__device__ __forceinline__ double attend_row(const T *q_row, const T *keys, const T *values, int64_t key_stride,
                                             int64_t n, int64_t hd, C scale, C *shared, T *out_row) {
    C *q = shared, *acc = shared + hd, *p = shared + 2 * hd;
    __syncthreads(); /* the block's previous row is done with shared */
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
        q[d] = (C)q_row[d];
        acc[d] = 0;
    }
    __syncthreads();
    C m = -cuda_infinity<C>();
    double l = 0;
    for (int64_t j0 = 0; j0 < n; j0 += blockDim.x) {
        int64_t j = j0 + threadIdx.x;
        C s = j < n ? dot<C>(q, keys + j * key_stride, hd) * scale : -cuda_infinity<C>();
        C m_new = nan_max(m, block_max(s));
        C e = j < n ? cuda_exp(s - m_new) : (C)0;
        p[threadIdx.x] = e;
        double tile_sum = block_sum((double)e); /* also publishes p */
        C correction = m == -cuda_infinity<C>() ? (C)0 : cuda_exp(m - m_new);
        l = l * (double)correction + tile_sum;
        int64_t count = n - j0 < (int64_t)blockDim.x ? n - j0 : (int64_t)blockDim.x;
        for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
            C a = acc[d] * correction;
            for (int64_t t = 0; t < count; t++) a += p[t] * (C)values[(j0 + t) * key_stride + d];
            acc[d] = a;
        }
        __syncthreads(); /* p is rewritten by the next tile */
        m = m_new;
    }
    C inverse = (C)(1.0 / l);
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) out_row[d] = T(acc[d] * inverse);
    return (double)m + log(l);
}

/* A block per query row of qkv; keys and values from qkv too. */
template <typename T>
__global__ void attention_forward_kernel(const T *qkv, attention_layout shape, bool causal, cuda_compute_t<T> scale,
                                         T *out, cuda_compute_t<T> *lse) {
    typedef cuda_compute_t<T> C;
    TC_DYNAMIC_SHARED(C, shared);
    int64_t time = shape.time, heads = shape.heads, hd = shape.hd, ld = shape.ld, channels = shape.channels;
    int64_t rows = shape.batch * heads * time;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        int64_t i = row % time, h = row / time % heads, b = row / time / heads;
        const T *keys = qkv + b * time * ld + channels + h / shape.group * hd;
        double row_lse = attend_row(qkv + (b * time + i) * ld + h * hd, keys, keys + shape.kv_heads * hd, ld,
                                    causal ? i + 1 : time, hd, scale, shared, out + (b * time + i) * channels + h * hd);
        if (threadIdx.x == 0) lse[row] = (C)row_lse;
    }
}

/* Copies the new keys and values of qkv into the caches [B, KV, capacity,
 * hd] at positions position .. position+T-1. */
template <typename T>
__global__ void cache_write_kernel(const T *qkv, attention_layout shape, T *k_cache, T *v_cache, int64_t capacity,
                                   int64_t position) {
    int64_t hd = shape.hd, width = shape.kv_heads * hd, time = shape.time, n = shape.batch * time * width;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = e % width, t = e / width % time, b = e / width / time;
        int64_t at = ((b * shape.kv_heads + c / hd) * capacity + position + t) * hd + c % hd;
        const T *row = qkv + (b * time + t) * shape.ld + shape.channels;
        k_cache[at] = row[c];
        v_cache[at] = row[width + c];
    }
}

/* A block per new query row, attending to the cached positions it sees. */
template <typename T>
__global__ void attention_cached_kernel(const T *qkv, attention_layout shape, bool causal, const T *k_cache,
                                        const T *v_cache, int64_t capacity, int64_t position, T scale, T *out) {
    TC_DYNAMIC_SHARED(T, shared);
    int64_t time = shape.time, heads = shape.heads, hd = shape.hd, rows = shape.batch * heads * time;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        int64_t i = row % time, h = row / time % heads, b = row / time / heads;
        int64_t head = (b * shape.kv_heads + h / shape.group) * capacity * hd;
        attend_row(qkv + (b * time + i) * shape.ld + h * hd, k_cache + head, v_cache + head, hd,
                   causal ? position + i + 1 : position + time, hd, scale, shared,
                   out + (b * time + i) * shape.channels + h * hd);
    }
}

/* D[row] = dout_i . out_i for each (b, h, i): the rowsum of P * dP. */
template <typename T>
__global__ void attention_rowdot_kernel(const T *out, const T *dout, attention_layout shape,
                                        cuda_compute_t<T> *rowdot) {
    int64_t time = shape.time, heads = shape.heads, hd = shape.hd, channels = shape.channels;
    int64_t rows = shape.batch * heads * time;
    for (int64_t row = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; row < rows;
         row += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = row % time, h = row / time % heads, b = row / time / heads;
        int64_t at = (b * time + i) * channels + h * hd;
        rowdot[row] = dot<cuda_compute_t<T>>(out + at, dout + at, hd);
    }
}

/* dq_i = scale * sum_j P_ij (dP_ij - D_i) k_j with P_ij = exp(s_ij - lse_i),
 * dP_ij = dout_i . v_j. Shared: q[hd], g[hd] (dout_i), acc[hd], ds[blockDim]. */
template <typename T, typename C = cuda_compute_t<T>>
__global__ void attention_backward_query_kernel(const T *qkv, const C *lse, const C *rowdot, const T *dout,
                                                attention_layout shape, bool causal, C scale, T *dqkv) {
    TC_DYNAMIC_SHARED(C, shared);
    int64_t time = shape.time, heads = shape.heads, hd = shape.hd, ld = shape.ld, channels = shape.channels;
    int64_t rows = shape.batch * heads * time;
    C *q = shared, *g = shared + hd, *acc = shared + 2 * hd, *ds = shared + 3 * hd;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        int64_t i = row % time, h = row / time % heads, b = row / time / heads;
        const T *keys = qkv + b * time * ld + channels + h / shape.group * hd, *values = keys + shape.kv_heads * hd;
        __syncthreads();
        for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
            q[d] = (C)qkv[(b * time + i) * ld + h * hd + d];
            g[d] = (C)dout[(b * time + i) * channels + h * hd + d];
            acc[d] = 0;
        }
        __syncthreads();
        int64_t n = causal ? i + 1 : time;
        C row_lse = lse[row], row_dot = rowdot[row];
        for (int64_t j0 = 0; j0 < n; j0 += blockDim.x) {
            int64_t j = j0 + threadIdx.x;
            C value = 0;
            if (j < n) {
                C p = cuda_exp(dot<C>(q, keys + j * ld, hd) * scale - row_lse);
                value = p * (dot<C>(g, values + j * ld, hd) - row_dot);
            }
            ds[threadIdx.x] = value;
            __syncthreads();
            int64_t count = n - j0 < (int64_t)blockDim.x ? n - j0 : (int64_t)blockDim.x;
            for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
                C a = acc[d];
                for (int64_t t = 0; t < count; t++) a += ds[t] * (C)keys[(j0 + t) * ld + d];
                acc[d] = a;
            }
            __syncthreads();
        }
        for (int64_t d = threadIdx.x; d < hd; d += blockDim.x)
            dqkv[(b * time + i) * ld + h * hd + d] = T(acc[d] * scale);
    }
}

/* For key row j of k/v head kv: dv_j = sum_i P_ij dout_i, dk_j = scale *
 * sum_i P_ij (dP_ij - D_i) q_i over the queries of the group's heads that
 * see j, head by head. Shared: k[hd], v[hd], acc_k[hd], acc_v[hd],
 * p[blockDim], ds[blockDim]. */
template <typename T, typename C = cuda_compute_t<T>>
__global__ void attention_backward_key_kernel(const T *qkv, const C *lse, const C *rowdot, const T *dout,
                                              attention_layout shape, bool causal, C scale, T *dqkv) {
    TC_DYNAMIC_SHARED(C, shared);
    int64_t time = shape.time, kv_heads = shape.kv_heads, hd = shape.hd, ld = shape.ld, channels = shape.channels;
    int64_t rows = shape.batch * kv_heads * time;
    C *k = shared, *v = shared + hd, *acc_k = shared + 2 * hd, *acc_v = shared + 3 * hd;
    C *p = shared + 4 * hd, *ds = p + blockDim.x;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        int64_t j = row % time, kv = row / time % kv_heads, b = row / time / kv_heads;
        T *dk = dqkv + (b * time + j) * ld + channels + kv * hd, *dv = dk + kv_heads * hd;
        __syncthreads();
        for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
            k[d] = (C)qkv[(b * time + j) * ld + channels + kv * hd + d];
            v[d] = (C)qkv[(b * time + j) * ld + channels + (kv_heads + kv) * hd + d];
            acc_k[d] = 0;
            acc_v[d] = 0;
        }
        __syncthreads();
        for (int64_t h = kv * shape.group; h < (kv + 1) * shape.group; h++) {
            const T *queries = qkv + b * time * ld + h * hd;
            const T *grads = dout + b * time * channels + h * hd;
            const C *head_lse = lse + (b * shape.heads + h) * time, *head_dot = rowdot + (b * shape.heads + h) * time;
            for (int64_t i0 = causal ? j : 0; i0 < time; i0 += blockDim.x) {
                int64_t i = i0 + threadIdx.x;
                C probability = 0, value = 0;
                if (i < time) {
                    probability = cuda_exp(dot<C>(queries + i * ld, k, hd) * scale - head_lse[i]);
                    value = probability * (dot<C>(grads + i * channels, v, hd) - head_dot[i]);
                }
                p[threadIdx.x] = probability;
                ds[threadIdx.x] = value;
                __syncthreads();
                int64_t count = time - i0 < (int64_t)blockDim.x ? time - i0 : (int64_t)blockDim.x;
                for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
                    C a_k = acc_k[d], a_v = acc_v[d];
                    for (int64_t t = 0; t < count; t++) {
                        a_k += ds[t] * (C)queries[(i0 + t) * ld + d];
                        a_v += p[t] * (C)grads[(i0 + t) * channels + d];
                    }
                    acc_k[d] = a_k;
                    acc_v[d] = a_v;
                }
                __syncthreads();
            }
        }
        for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
            dk[d] = T(acc_k[d] * scale);
            dv[d] = T(acc_v[d]);
        }
    }
}

/* ---- launchers ---- */

tc_status cuda_attention_forward(tc_context *ctx, tc_dtype dtype, const void *qkv, int64_t batch, int64_t time,
                                 int64_t n_head, int64_t n_kv_head, int64_t head_dim, bool causal, void *out,
                                 void *lse) {
    int64_t rows = batch * n_head * time, hd = head_dim;
    if (rows == 0) return TC_OK;
    attention_layout shape = attention_layout_of(batch, time, n_head, n_kv_head, head_dim);
    double scale = 1.0 / sqrt((double)hd);
    if (cuda_attention_tiled_fits(dtype, hd)) {
        cuda_attention_tiled_forward(ctx, dtype, qkv, shape, causal, scale, out, lse);
        return cuda_check_launch(ctx, "attention");
    }
    bool known = cuda_dispatch_float_or_16bit(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        typedef cuda_compute_t<T> C;
        size_t shared = sizeof(C) * (size_t)(2 * hd + ATTENTION_THREADS);
        TC_LAUNCH(attention_forward_kernel<T>, cuda_rows_for(rows), ATTENTION_THREADS, shared, cuda_stream_of(ctx),
                  static_cast<const T *>(qkv), shape, causal, (C)scale, static_cast<T *>(out), static_cast<C *>(lse));
    });
    if (!known) return cuda_unsupported_dtype(ctx, "attention", dtype);
    return cuda_check_launch(ctx, "attention");
}

tc_status cuda_attention_cached(tc_context *ctx, tc_dtype dtype, const void *qkv, int64_t batch, int64_t time,
                                int64_t n_head, int64_t n_kv_head, int64_t head_dim, bool causal, void *k_cache,
                                void *v_cache, int64_t capacity, int64_t position, void *out) {
    int64_t rows = batch * n_head * time, hd = head_dim;
    if (rows == 0) return TC_OK;
    attention_layout shape = attention_layout_of(batch, time, n_head, n_kv_head, head_dim);
    double scale = 1.0 / sqrt((double)hd);
    cuda_stream stream = cuda_stream_of(ctx);
    bool known = cuda_dispatch_float(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(cache_write_kernel<T>, cuda_blocks_for(batch * time * n_kv_head * hd), CUDA_BLOCK, 0, stream,
                  static_cast<const T *>(qkv), shape, static_cast<T *>(k_cache), static_cast<T *>(v_cache), capacity,
                  position);
        TC_LAUNCH(attention_cached_kernel<T>, cuda_rows_for(rows), ATTENTION_THREADS,
                  sizeof(T) * (size_t)(2 * hd + ATTENTION_THREADS), stream, static_cast<const T *>(qkv), shape,
                  causal, static_cast<const T *>(k_cache), static_cast<const T *>(v_cache), capacity, position,
                  (T)scale, static_cast<T *>(out));
    });
    if (!known) return cuda_unsupported_dtype(ctx, "attention_cached", dtype);
    return cuda_check_launch(ctx, "attention_cached");
}

tc_status cuda_attention_backward(tc_context *ctx, tc_dtype dtype, const void *qkv, const void *out, const void *lse,
                                  const void *dout, int64_t batch, int64_t time, int64_t n_head, int64_t n_kv_head,
                                  int64_t head_dim, bool causal, void *dqkv) {
    int64_t rows = batch * n_head * time, hd = head_dim;
    if (dtype != TC_FLOAT32 && dtype != TC_FLOAT64 && !cuda_dtype_is_16bit(dtype))
        return cuda_unsupported_dtype(ctx, "attention backward", dtype);
    if (rows == 0) return TC_OK;
    attention_layout shape = attention_layout_of(batch, time, n_head, n_kv_head, head_dim);
    double scale = 1.0 / sqrt((double)hd);
    /* D per row, in the compute type (float32 for 16-bit data) */
    size_t bytes = (dtype == TC_FLOAT64 ? sizeof(double) : sizeof(float)) * (size_t)rows;
    void *rowdot = cuda_scratch_allocate(ctx, bytes);
    if (!rowdot) return TC_ERROR_MEMORY;
    cuda_stream stream = cuda_stream_of(ctx);
    cuda_dispatch_float_or_16bit(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        typedef cuda_compute_t<T> C;
        const T *q = static_cast<const T *>(qkv), *g = static_cast<const T *>(dout);
        const C *l = static_cast<const C *>(lse);
        C *D = static_cast<C *>(rowdot);
        T *dq = static_cast<T *>(dqkv);
        TC_LAUNCH(attention_rowdot_kernel<T>, cuda_blocks_for(rows), CUDA_BLOCK, 0, stream,
                  static_cast<const T *>(out), g, shape, D);
        if (cuda_attention_tiled_fits(dtype, hd)) {
            cuda_attention_tiled_backward(ctx, dtype, qkv, lse, rowdot, dout, shape, causal, scale, dqkv);
            return;
        }
        TC_LAUNCH(attention_backward_query_kernel<T>, cuda_rows_for(rows), ATTENTION_THREADS,
                  sizeof(C) * (size_t)(3 * hd + ATTENTION_THREADS), stream, q, l, D, g, shape, causal, (C)scale, dq);
        TC_LAUNCH(attention_backward_key_kernel<T>, cuda_rows_for(batch * n_kv_head * time), ATTENTION_THREADS,
                  sizeof(C) * (size_t)(4 * hd + 2 * ATTENTION_THREADS), stream, q, l, D, g, shape, causal, (C)scale,
                  dq);
    });
    tc_status status = cuda_check_launch(ctx, "attention backward");
    cuda_scratch_release(ctx, rowdot, bytes);
    return status;
}
