/*
 * cuda_backend.h: the host entry points of the CUDA backend. The backend
 * fills every slot of src/backend_slots.h with its kernel cuda_<slot>,
 * declared here from the slot list with its slot's type; the table
 * (cuda_backend.cu) is made from the same list, so a new slot needs no line
 * here, and a kernel not written fails the library's link (the kernels are
 * hidden symbols, so the link must find every one).
 *
 * The kernels cuda_<slot> live in cuda/cuda_<op>.cu, named like the CPU
 * backend's src/cpu/cpu_<op>.c: cuda_elementwise.cu, cuda_reduce.cu,
 * cuda_matmul.cu, cuda_softmax.cu, cuda_index.cu, cuda_sort.cu, cuda_random.cu, and the
 * fused kernels' cuda_norm.cu, cuda_attention.cu (with
 * cuda_attention_tiled.cu), cuda_cross_entropy.cu and cuda_optim.cu.
 *
 * Conventions for the kernel files:
 *  - every launch goes on cuda_stream_of(ctx) through TC_LAUNCH, followed by
 *    `TC_TRY(cuda_check_launch(ctx, "op name"))`;
 *  - scratch device memory comes from cuda_scratch_allocate / cuda_scratch_release (the
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
void *cuda_scratch_allocate(tc_context *ctx, size_t bytes);
/* Returns memory to the cache; work queued on the stream may still use it. */
void cuda_scratch_release(tc_context *ctx, void *data, size_t bytes);
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

/* Hidden: the library's own link must find every kernel (an undefined
 * hidden symbol is a link error), and only the entry point is exported. */
#define CUDA_KERNEL __attribute__((visibility("hidden")))
#define CUDA_DECLARE_KERNEL(name, kind, result, parameters) CUDA_KERNEL tc_slot_##name cuda_##name;
TC_BACKEND_SLOTS(CUDA_DECLARE_KERNEL)
#undef CUDA_DECLARE_KERNEL

/* Copies within the device (cuda_elementwise.cu); the copy slot's
 * cuda_copy (cuda_backend.cu) also moves contiguous tensors
 * between the host and the device. */
CUDA_KERNEL tc_slot_copy cuda_copy_within;

} /* extern "C" */

#endif
