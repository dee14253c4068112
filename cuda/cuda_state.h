/*
 * cuda_state.h: the CUDA backend's per-context state (ctx->cuda_state):
 * the stream every operation of the context is ordered on, the cuBLAS
 * handle bound to it, and the cache of device blocks. Shared by
 * cuda_backend.cu and cuda_matmul.cu only.
 */
#ifndef TRICYCLE_CUDA_STATE_H
#define TRICYCLE_CUDA_STATE_H

#include "cuda_backend.h"

#ifdef TC_CUDA_EMULATION
#include "emulation/cublas_emulation.h"
#else
#include <cublas_v2.h>
#endif

#include <map>
#include <vector>

struct cuda_state {
    cudaStream_t stream;
    cublasHandle_t cublas;
    bool allow_tf32;
    /* Released blocks by their rounded size, ready for reuse. */
    std::map<size_t, std::vector<void *>> free_blocks;
    size_t cached_bytes;
};

/* Frees the cached blocks (cuda_memory.cu). */
extern "C" void cuda_release_cache(tc_context *ctx);
/* The backend table's allocate and release (cuda_allocate, cuda_release in
 * cuda_memory.cu) give blocks from the cache or the driver, not counted
 * (the engine counts them). */

static inline cuda_state *cuda_state_of(tc_context *ctx) { return static_cast<cuda_state *>(ctx->cuda_state); }

#endif
