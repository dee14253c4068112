/*
 * cuda_attention_tiled.h: the tiled attention kernels (cuda_attention_tiled.cu)
 * that cuda_attention.cu's slots use when they fit; the row kernels of
 * cuda_attention.cu take the rest.
 */
#ifndef TRICYCLE_CUDA_ATTENTION_TILED_H
#define TRICYCLE_CUDA_ATTENTION_TILED_H

#include "cuda_backend.h"

/* Where heads live in packed qkv [B, T, (H + 2 KV) hd] (backend_slots.h):
 * row t of q head h at t*ld + h*hd, of k/v head j at t*ld + channels + j*hd
 * and t*ld + channels + KV*hd + j*hd; q head h reads k/v head h / group.
 * out and dout rows are `channels` = H hd wide. */
struct attention_layout {
    int64_t batch, time, heads, kv_heads, hd, group, channels, ld;
};

static inline attention_layout attention_layout_of(int64_t batch, int64_t time, int64_t heads, int64_t kv_heads,
                                                   int64_t hd) {
    return attention_layout{batch,           time,       heads, kv_heads, hd, heads / kv_heads,
                            heads * hd, (heads + 2 * kv_heads) * hd};
}

/* Whether the tiled kernels take heads of hd dimensions in dtype (float32,
 * float64 or a 16-bit dtype, whose tiles are float32): hd at most 128 and
 * the tiles within 48 KiB of shared memory. */
bool cuda_attention_tiled_fits(tc_dtype dtype, int64_t hd);

/* Launches the forward (out, and lse per (b, h, i) row) on the context's
 * stream; the caller checks the launch. */
void cuda_attention_tiled_forward(tc_context *ctx, tc_dtype dtype, const void *qkv, attention_layout shape,
                                  bool causal, double scale, void *out, void *lse);

/* Launches dq, then dk and dv, into dqkv, given lse and rowdot (D per row). */
void cuda_attention_tiled_backward(tc_context *ctx, tc_dtype dtype, const void *qkv, const void *lse,
                                   const void *rowdot, const void *dout, attention_layout shape, bool causal,
                                   double scale, void *dqkv);

#endif
