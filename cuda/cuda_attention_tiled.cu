/*
 * cuda_attention_tiled.cu: attention's forward and backward in tiles, for
 * head dimensions up to 128. The row kernels of cuda_attention.cu give a block
 * one query and re-read every key and value for it, with each thread reading
 * a whole key row (strided across the warp); here a block takes 32 rows of
 * one (batch, head) (queries for the forward and dq, keys for dk and dv), 4
 * per warp, and walks the other side in tiles of 32 rows staged in shared
 * memory by coalesced loads, so each key and value is read once per 32
 * queries instead of once per query.
 *
 * Within a warp, lane t computes the score against the tile's row t; the
 * accumulators live in registers, lane d holding dimensions d, d + 32, ...;
 * probabilities pass from score lanes to accumulator lanes by shuffles.
 * Every branch around a shuffle or barrier depends on the row or the tile
 * only, never on the lane, so whole warps take it. The maths is the row
 * kernels' (online softmax, lse saved, D = rowsum(dout * out) from
 * attention_rowdot_kernel); sums run in another order, so results agree with
 * the CPU within rounding, not bit for bit. With grouped queries a key
 * block walks the query heads of its k/v head in turn, so dk and dv have
 * one writer.
 *
 * bfloat16 and float16 qkv, out, dout and dqkv are read and written as they
 * are; tiles, registers, lse and D hold float32 (C = cuda_compute_t<T>), so a
 * 16-bit tile takes float32's shared memory.
 */
#include "cuda_attention_tiled.h"
#include "cuda_half.h"

#define TILE 32 /* rows per tile: one per lane */
#define TILE_WARPS 8
#define ROWS_PER_WARP (TILE / TILE_WARPS)
#define LANE_DIMS 4 /* head dimensions per lane: at most 128 in all */
#define TILED_THREADS (TILE_WARPS * CUDA_WARP)
#define TILED_SHARED_LIMIT (48 * 1024)

/* Rows start .. start+31 of a [*, ld] matrix into shared [32][stride], rows
 * at or past limit as zeros; consecutive threads read consecutive elements. */
template <typename C, typename T>
__device__ __forceinline__ void stage_rows(C *tile, int64_t stride, const T *base, int64_t ld, int64_t start,
                                           int64_t limit, int64_t hd) {
    for (int64_t e = threadIdx.x; e < TILE * hd; e += blockDim.x) {
        int64_t r = e / hd, d = e - r * hd;
        tile[r * stride + d] = start + r < limit ? (C)base[(start + r) * ld + d] : (C)0;
    }
}

/* Keys and values of rows j0 .. j0+31 of a k/v head (key row j at
 * key_head + j*ld, its value at value_head + j*ld) into their shared tiles,
 * between barriers: the previous tile is no longer read before, the new one
 * is whole after. */
template <typename C, typename T>
__device__ __forceinline__ void stage_keys_values(C *keys, C *values, int64_t stride, const T *key_head,
                                                  const T *value_head, int64_t ld, int64_t j0, int64_t time,
                                                  int64_t hd) {
    __syncthreads();
    stage_rows(keys, stride, key_head, ld, j0, time, hd);
    stage_rows(values, stride, value_head, ld, j0, time, hd);
    __syncthreads();
}

/* The keys the queries of a tile see: up to the tile's end when causal. */
__device__ __forceinline__ int64_t keys_seen(int64_t tile, int64_t time, bool causal) {
    return causal && (tile + 1) * TILE < time ? (tile + 1) * TILE : time;
}

/* a . tile row (a in global memory, read by every lane alike). */
template <typename C, typename T> __device__ __forceinline__ C dot_row(const T *a, const C *tile_row, int64_t hd) {
    C sum = 0;
    for (int64_t d = 0; d < hd; d++) sum += (C)a[d] * tile_row[d];
    return sum;
}

/* (b, h, tile) of a block number, tiles fastest. */
struct tile_position {
    int64_t b, h, tile;
};
__device__ __forceinline__ tile_position position_of(int64_t block, int64_t heads, int64_t tiles) {
    return tile_position{block / tiles / heads, block / tiles % heads, block % tiles};
}

/* ---- forward ---- */

/* out and lse for the 32 queries of a block; shared: keys and values [32][hd+1]. */
template <typename T, typename C = cuda_compute_t<T>>
__global__ void attention_forward_tiled_kernel(const T *qkv, attention_layout shape, bool causal, C scale, T *out,
                                               C *lse) {
    TC_DYNAMIC_SHARED(C, shared);
    int64_t time = shape.time, heads = shape.heads, channels = shape.channels;
    int64_t hd = shape.hd, ld = shape.ld, stride = hd + 1;
    C *keys = shared, *values = shared + TILE * stride;
    int lane = threadIdx.x % CUDA_WARP, warp = threadIdx.x / CUDA_WARP;
    int64_t tiles = (time + TILE - 1) / TILE, blocks = shape.batch * heads * tiles;
    for (int64_t block = blockIdx.x; block < blocks; block += gridDim.x) {
        tile_position at = position_of(block, heads, tiles);
        const T *head = qkv + at.b * time * ld + at.h * hd;
        const T *key_head = qkv + at.b * time * ld + channels + at.h / shape.group * hd;
        int64_t first = at.tile * TILE + warp * ROWS_PER_WARP;
        C m[ROWS_PER_WARP], l[ROWS_PER_WARP], acc[ROWS_PER_WARP][LANE_DIMS];
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; r++) {
            m[r] = -cuda_infinity<C>();
            l[r] = 0;
#pragma unroll
            for (int u = 0; u < LANE_DIMS; u++) acc[r][u] = 0;
        }
        int64_t key_end = keys_seen(at.tile, time, causal);
        for (int64_t j0 = 0; j0 < key_end; j0 += TILE) {
            stage_keys_values(keys, values, stride, key_head, key_head + shape.kv_heads * hd, ld, j0, time, hd);
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; r++) {
                int64_t i = first + r, visible = causal ? i + 1 : time;
                if (i >= time || j0 >= visible) continue;
                C s = -cuda_infinity<C>();
                if (j0 + lane < visible) s = dot_row(head + i * ld, keys + lane * stride, hd) * scale;
                C m_new = nan_max(m[r], warp_max(s));
                C p = j0 + lane < visible ? cuda_exp(s - m_new) : (C)0;
                C correction = m[r] == -cuda_infinity<C>() ? (C)0 : cuda_exp(m[r] - m_new);
                l[r] = l[r] * correction + p; /* this lane's share; summed over the warp at the end */
#pragma unroll
                for (int u = 0; u < LANE_DIMS; u++) acc[r][u] *= correction;
                int count = visible - j0 < TILE ? (int)(visible - j0) : TILE;
                for (int t = 0; t < count; t++) {
                    C weight = __shfl_sync(CUDA_FULL_MASK, p, t);
#pragma unroll
                    for (int u = 0; u < LANE_DIMS; u++) {
                        int64_t d = lane + u * CUDA_WARP;
                        if (d < hd) acc[r][u] += weight * values[t * stride + d];
                    }
                }
                m[r] = m_new;
            }
        }
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; r++) {
            int64_t i = first + r;
            if (i >= time) continue;
            C total = warp_sum(l[r]);
            C inverse = (C)1 / total;
            T *out_row = out + (at.b * time + i) * channels + at.h * hd;
#pragma unroll
            for (int u = 0; u < LANE_DIMS; u++) {
                int64_t d = lane + u * CUDA_WARP;
                if (d < hd) out_row[d] = T(acc[r][u] * inverse);
            }
            if (lane == 0) lse[(at.b * heads + at.h) * time + i] = m[r] + cuda_log(total);
        }
    }
}

/* ---- backward ---- */

/* dq_i = scale * sum_j P_ij (dP_ij - D_i) k_j for the block's 32 queries,
 * P_ij = exp(s_ij - lse_i), dP_ij = dout_i . v_j. Shared: keys and values
 * [32][hd+1]. */
template <typename T, typename C = cuda_compute_t<T>>
__global__ void attention_backward_query_tiled_kernel(const T *qkv, const C *lse, const C *rowdot, const T *dout,
                                                      attention_layout shape, bool causal, C scale, T *dqkv) {
    TC_DYNAMIC_SHARED(C, shared);
    int64_t time = shape.time, heads = shape.heads, channels = shape.channels;
    int64_t hd = shape.hd, ld = shape.ld, stride = hd + 1;
    C *keys = shared, *values = shared + TILE * stride;
    int lane = threadIdx.x % CUDA_WARP, warp = threadIdx.x / CUDA_WARP;
    int64_t tiles = (time + TILE - 1) / TILE, blocks = shape.batch * heads * tiles;
    for (int64_t block = blockIdx.x; block < blocks; block += gridDim.x) {
        tile_position at = position_of(block, heads, tiles);
        const T *head = qkv + at.b * time * ld + at.h * hd;
        const T *key_head = qkv + at.b * time * ld + channels + at.h / shape.group * hd;
        const T *grads = dout + at.b * time * channels + at.h * hd;
        int64_t rows = (at.b * heads + at.h) * time, first = at.tile * TILE + warp * ROWS_PER_WARP;
        C acc[ROWS_PER_WARP][LANE_DIMS];
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; r++)
#pragma unroll
            for (int u = 0; u < LANE_DIMS; u++) acc[r][u] = 0;
        int64_t key_end = keys_seen(at.tile, time, causal);
        for (int64_t j0 = 0; j0 < key_end; j0 += TILE) {
            stage_keys_values(keys, values, stride, key_head, key_head + shape.kv_heads * hd, ld, j0, time, hd);
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; r++) {
                int64_t i = first + r, visible = causal ? i + 1 : time;
                if (i >= time || j0 >= visible) continue;
                C ds = 0;
                if (j0 + lane < visible) {
                    C p = cuda_exp(dot_row(head + i * ld, keys + lane * stride, hd) * scale - lse[rows + i]);
                    ds = p * (dot_row(grads + i * channels, values + lane * stride, hd) - rowdot[rows + i]);
                }
                int count = visible - j0 < TILE ? (int)(visible - j0) : TILE;
                for (int t = 0; t < count; t++) {
                    C weight = __shfl_sync(CUDA_FULL_MASK, ds, t);
#pragma unroll
                    for (int u = 0; u < LANE_DIMS; u++) {
                        int64_t d = lane + u * CUDA_WARP;
                        if (d < hd) acc[r][u] += weight * keys[t * stride + d];
                    }
                }
            }
        }
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; r++) {
            int64_t i = first + r;
            if (i >= time) continue;
            T *dq = dqkv + (at.b * time + i) * ld + at.h * hd;
#pragma unroll
            for (int u = 0; u < LANE_DIMS; u++) {
                int64_t d = lane + u * CUDA_WARP;
                if (d < hd) dq[d] = T(acc[r][u] * scale);
            }
        }
    }
}

/* For the block's 32 keys j of k/v head kv: dv_j = sum_i P_ij dout_i and
 * dk_j = scale * sum_i P_ij (dP_ij - D_i) q_i over the queries of the heads
 * of its group that see j, head by head. Shared: queries and dout rows
 * [32][hd+1], then the tile's lse and D. */
template <typename T, typename C = cuda_compute_t<T>>
__global__ void attention_backward_key_tiled_kernel(const T *qkv, const C *lse, const C *rowdot, const T *dout,
                                                    attention_layout shape, bool causal, C scale, T *dqkv) {
    TC_DYNAMIC_SHARED(C, shared);
    int64_t time = shape.time, channels = shape.channels, hd = shape.hd, ld = shape.ld, stride = hd + 1;
    C *queries = shared, *grads = shared + TILE * stride, *tile_lse = shared + 2 * TILE * stride;
    C *tile_dot = tile_lse + TILE;
    int lane = threadIdx.x % CUDA_WARP, warp = threadIdx.x / CUDA_WARP;
    int64_t tiles = (time + TILE - 1) / TILE, blocks = shape.batch * shape.kv_heads * tiles;
    for (int64_t block = blockIdx.x; block < blocks; block += gridDim.x) {
        tile_position at = position_of(block, shape.kv_heads, tiles); /* at.h: the k/v head */
        const T *key_head = qkv + at.b * time * ld + channels + at.h * hd;
        const T *value_head = key_head + shape.kv_heads * hd;
        int64_t first = at.tile * TILE + warp * ROWS_PER_WARP;
        C acc_k[ROWS_PER_WARP][LANE_DIMS], acc_v[ROWS_PER_WARP][LANE_DIMS];
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; r++)
#pragma unroll
            for (int u = 0; u < LANE_DIMS; u++) acc_k[r][u] = acc_v[r][u] = 0;
        for (int64_t h = at.h * shape.group; h < (at.h + 1) * shape.group; h++) {
            const T *head = qkv + at.b * time * ld + h * hd;
            const T *head_grads = dout + at.b * time * channels + h * hd;
            int64_t rows = (at.b * shape.heads + h) * time;
            /* Causal: queries before the block's first key see none of its keys. */
            for (int64_t i0 = causal ? at.tile * TILE : 0; i0 < time; i0 += TILE) {
                __syncthreads();
                stage_rows(queries, stride, head, ld, i0, time, hd);
                stage_rows(grads, stride, head_grads, channels, i0, time, hd);
                for (int64_t t = threadIdx.x; t < TILE; t += blockDim.x) {
                    tile_lse[t] = i0 + t < time ? lse[rows + i0 + t] : (C)0;
                    tile_dot[t] = i0 + t < time ? rowdot[rows + i0 + t] : (C)0;
                }
                __syncthreads();
                int count = time - i0 < TILE ? (int)(time - i0) : TILE;
#pragma unroll
                for (int r = 0; r < ROWS_PER_WARP; r++) {
                    int64_t j = first + r;
                    if (j >= time || (causal && i0 + TILE <= j)) continue;
                    int64_t i = i0 + lane;
                    C p = 0, ds = 0;
                    if (i < time && (!causal || i >= j)) {
                        p = cuda_exp(dot_row(key_head + j * ld, queries + lane * stride, hd) * scale - tile_lse[lane]);
                        ds = p * (dot_row(value_head + j * ld, grads + lane * stride, hd) - tile_dot[lane]);
                    }
                    for (int t = 0; t < count; t++) {
                        C weight_v = __shfl_sync(CUDA_FULL_MASK, p, t);
                        C weight_k = __shfl_sync(CUDA_FULL_MASK, ds, t);
#pragma unroll
                        for (int u = 0; u < LANE_DIMS; u++) {
                            int64_t d = lane + u * CUDA_WARP;
                            if (d < hd) {
                                acc_v[r][u] += weight_v * grads[t * stride + d];
                                acc_k[r][u] += weight_k * queries[t * stride + d];
                            }
                        }
                    }
                }
            }
        }
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; r++) {
            int64_t j = first + r;
            if (j >= time) continue;
            T *dk = dqkv + (at.b * time + j) * ld + channels + at.h * hd, *dv = dk + shape.kv_heads * hd;
#pragma unroll
            for (int u = 0; u < LANE_DIMS; u++) {
                int64_t d = lane + u * CUDA_WARP;
                if (d < hd) {
                    dk[d] = T(acc_k[r][u] * scale);
                    dv[d] = T(acc_v[r][u]);
                }
            }
        }
    }
}

/* ---- launchers ---- */

/* Shared bytes of the key kernel, the largest of the three. */
static size_t tiled_shared_bytes(size_t element, int64_t hd) {
    return element * (size_t)(2 * TILE * (hd + 1) + 2 * TILE);
}

bool cuda_attention_tiled_fits(tc_dtype dtype, int64_t hd) {
    size_t element = dtype == TC_FLOAT64 ? sizeof(double) : sizeof(float); /* the tiles' compute type */
    return hd >= 1 && hd <= LANE_DIMS * CUDA_WARP && tiled_shared_bytes(element, hd) <= TILED_SHARED_LIMIT;
}

static unsigned tiled_blocks(int64_t batch, int64_t heads, int64_t time) {
    return cuda_rows_for(batch * heads * ((time + TILE - 1) / TILE));
}

void cuda_attention_tiled_forward(tc_context *ctx, tc_dtype dtype, const void *qkv, attention_layout shape,
                                  bool causal, double scale, void *out, void *lse) {
    cuda_dispatch_float_or_16bit(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        typedef cuda_compute_t<T> C;
        TC_LAUNCH(attention_forward_tiled_kernel<T>, tiled_blocks(shape.batch, shape.heads, shape.time),
                  TILED_THREADS, sizeof(C) * (size_t)(2 * TILE * (shape.hd + 1)), cuda_stream_of(ctx),
                  static_cast<const T *>(qkv), shape, causal, (C)scale, static_cast<T *>(out), static_cast<C *>(lse));
    });
}

void cuda_attention_tiled_backward(tc_context *ctx, tc_dtype dtype, const void *qkv, const void *lse,
                                   const void *rowdot, const void *dout, attention_layout shape, bool causal,
                                   double scale, void *dqkv) {
    cuda_stream stream = cuda_stream_of(ctx);
    cuda_dispatch_float_or_16bit(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        typedef cuda_compute_t<T> C;
        const T *q = static_cast<const T *>(qkv), *g = static_cast<const T *>(dout);
        const C *l = static_cast<const C *>(lse), *D = static_cast<const C *>(rowdot);
        T *dq = static_cast<T *>(dqkv);
        TC_LAUNCH(attention_backward_query_tiled_kernel<T>, tiled_blocks(shape.batch, shape.heads, shape.time),
                  TILED_THREADS, sizeof(C) * (size_t)(2 * TILE * (shape.hd + 1)), stream, q, l, D, g, shape, causal,
                  (C)scale, dq);
        TC_LAUNCH(attention_backward_key_tiled_kernel<T>, tiled_blocks(shape.batch, shape.kv_heads, shape.time),
                  TILED_THREADS, tiled_shared_bytes(sizeof(C), shape.hd), stream, q, l, D, g, shape, causal, (C)scale,
                  dq);
    });
}
