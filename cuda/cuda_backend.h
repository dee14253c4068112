/*
 * cuda_backend.h: the host entry points of the CUDA backend. CUDA_KERNELS
 * lists the kernel of every slot the backend fills (src/backend_slots.h);
 * the kernels are declared from it with their slot's type, and the table
 * (cuda_backend.cu) is made from it, checked when it compiles: every
 * required slot is there, none twice, each kernel of its slot's exact type,
 * and a kernel listed but not written fails the library's link. The
 * optional slots left out (gemv: linear's one-row products use gemm) are
 * NULL, and the engine's tc_backend_supports sees it.
 *
 * The kernels cuda_<slot> live in cuda/cuda_<op>.cu, named like the CPU
 * backend's src/cpu/cpu_<op>.c: cuda_elementwise.cu, cuda_reduce.cu,
 * cuda_matmul.cu, cuda_softmax.cu, cuda_index.cu, cuda_random.cu, and the
 * fused kernels' cuda_norm.cu, cuda_attention.cu (with
 * cuda_attention_tiled.cu), cuda_cross_entropy.cu and cuda_optim.cu.
 *
 * Conventions for the kernel files:
 *  - every launch goes on cuda_stream_of(ctx) through TC_LAUNCH, followed by
 *    `TC_TRY(cuda_check_launch(ctx, "op name"))`;
 *  - scratch device memory comes from cuda_allocate / cuda_release (the
 *    context's caching allocator), never cudaMalloc;
 *  - results the host needs (a loss, a count) are copied with
 *    cuda_copy_to_host, which waits for the stream.
 */
#ifndef TRICYCLE_CUDA_BACKEND_H
#define TRICYCLE_CUDA_BACKEND_H

#include "cuda_common.h"

extern "C" {

/* ---- the context's device state (cuda_backend.cu) ---- */

/* Device memory from the context's cache, counted by the engine like
 * storage; NULL (with the context's error set) when the device is out of
 * memory or the budget is spent. */
void *cuda_allocate(tc_context *ctx, size_t bytes);
/* Returns memory to the cache; work queued on the stream may still use it. */
void cuda_release(tc_context *ctx, void *data, size_t bytes);
/* The context's stream: all of its work is ordered on it. */
cuda_stream cuda_stream_of(tc_context *ctx);
/* TC_OK, or the error recorded as "what: cudaErrorName: description". */
tc_status cuda_check(tc_context *ctx, cudaError_t error, const char *what);
/* cuda_check of the last launch (cudaGetLastError). */
tc_status cuda_check_launch(tc_context *ctx, const char *what);
/* Copies bytes from device memory to the host after the stream's work. */
tc_status cuda_copy_to_host(tc_context *ctx, void *host, const void *device, size_t bytes);
/* Whether matmuls may use TF32 (tc_set_cuda_tf32 before the backend
 * started for the context); float32 matmuls are exact-float32 otherwise. */
bool cuda_allow_tf32(tc_context *ctx);

/* ---- the slots ---- */

/* X(slot, kernel) for every slot the backend fills. */
#define CUDA_KERNELS(X)                                                                                              \
    X(allocate, cuda_block_allocate)                                                                                 \
    X(release, cuda_block_release)                                                                                   \
    X(copy, cuda_copy_or_transfer)                                                                                   \
    X(fill, cuda_fill)                                                                                               \
    X(unary, cuda_unary)                                                                                             \
    X(unary_backward, cuda_unary_backward)                                                                           \
    X(binary, cuda_binary)                                                                                           \
    X(clamp, cuda_clamp)                                                                                             \
    X(where, cuda_where)                                                                                             \
    X(reduce, cuda_reduce)                                                                                           \
    X(gemm, cuda_gemm)                                                                                               \
    X(gemm_bias, cuda_gemm_bias)                                                                                     \
    X(softmax, cuda_softmax)                                                                                         \
    X(softmax_backward, cuda_softmax_backward)                                                                       \
    X(gather, cuda_gather)                                                                                           \
    X(scatter_add, cuda_scatter_add)                                                                                 \
    X(index_select, cuda_index_select)                                                                               \
    X(index_add, cuda_index_add)                                                                                     \
    X(random, cuda_random)                                                                                           \
    X(dropout, cuda_dropout)                                                                                         \
    X(layer_norm_forward, cuda_layer_norm_forward)                                                                   \
    X(layer_norm_backward, cuda_layer_norm_backward)                                                                 \
    X(attention_forward, cuda_attention_forward)                                                                     \
    X(attention_backward, cuda_attention_backward)                                                                   \
    X(attention_cached, cuda_attention_cached)                                                                       \
    X(cross_entropy_forward, cuda_cross_entropy_forward)                                                             \
    X(cross_entropy_backward, cuda_cross_entropy_backward)                                                           \
    X(adamw_step, cuda_adamw_step)                                                                                   \
    X(sgd_step, cuda_sgd_step)                                                                                       \
    X(sum_squares, cuda_sum_squares)                                                                                 \
    X(scale, cuda_scale)

/* Hidden: the library's own link must find every kernel (an undefined
 * hidden symbol is a link error), and only the entry point is exported. */
#define CUDA_KERNEL __attribute__((visibility("hidden")))
#define CUDA_DECLARE_KERNEL(slot, kernel) CUDA_KERNEL tc_slot_##slot kernel;
CUDA_KERNELS(CUDA_DECLARE_KERNEL)
#undef CUDA_DECLARE_KERNEL

/* Copies within the device (cuda_elementwise.cu); the copy slot's
 * cuda_copy_or_transfer (cuda_backend.cu) also moves contiguous tensors
 * between the host and the device. */
CUDA_KERNEL tc_slot_copy cuda_copy;

} /* extern "C" */

#endif
