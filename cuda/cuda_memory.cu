/*
 * cuda_memory.cu: device memory for a context (a cache of blocks by size,
 * reused in stream order, so steady training allocates nothing from the
 * driver), and the helpers every kernel file uses to check CUDA calls and
 * read results back. The engine counts the memory (the budget, the bytes in
 * use, the peak: src/memory.c); the blocks come from here.
 */
#include "cuda_state.h"

#if defined(TC_CUDA_EMULATION) && defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(pointer, bytes) ASAN_POISON_MEMORY_REGION(pointer, bytes)
#define UNPOISON(pointer, bytes) ASAN_UNPOISON_MEMORY_REGION(pointer, bytes)
#else
#define POISON(pointer, bytes) ((void)(pointer), (void)(bytes))
#define UNPOISON(pointer, bytes) ((void)(pointer), (void)(bytes))
#endif

/* Block sizes: multiples of 512 bytes, then of 1/16th to 1/8th of the size,
 * so rounding wastes at most an eighth. */
static size_t block_size_for(size_t bytes) {
    size_t step = 512;
    while (step * 16 < bytes) step *= 2;
    size_t rounded = (bytes + step - 1) / step * step;
    return rounded ? rounded : step;
}

/* Gives every cached block back to the driver, once the stream's queued
 * work (which may still use them) has finished. */
static void free_cached_blocks(cuda_state *state) {
    if (state->free_blocks.empty()) return;
    if (state->stream) cudaStreamSynchronize(state->stream);
    for (auto &entry : state->free_blocks)
        for (void *block : entry.second) {
            UNPOISON(block, entry.first);
            cudaFree(block);
        }
    state->free_blocks.clear();
    state->cached_bytes = 0;
}

extern "C" void cuda_release_cache(tc_context *ctx) { free_cached_blocks(cuda_state_of(ctx)); }

extern "C" void *cuda_allocate(tc_context *ctx, size_t bytes) {
    cuda_state *state = cuda_state_of(ctx);
    size_t size = block_size_for(bytes);
    void *block = NULL;
    auto cached = state->free_blocks.find(size);
    if (cached != state->free_blocks.end() && !cached->second.empty()) {
        block = cached->second.back();
        cached->second.pop_back();
        state->cached_bytes -= size;
        UNPOISON(block, bytes); /* the rounding slack stays poisoned */
    } else {
        cudaError_t error = cudaMalloc(&block, size);
        if (error != cudaSuccess) {
            cudaGetLastError(); /* an allocation failure is not sticky; clear it */
            free_cached_blocks(state);
            error = cudaMalloc(&block, size);
        }
        if (error != cudaSuccess) {
            cudaGetLastError();
            tc_fail(ctx, TC_ERROR_MEMORY, "out of memory on cuda: could not allocate %zu bytes (%s)", bytes,
                    cudaGetErrorString(error));
            return NULL;
        }
        POISON(block, size);
        UNPOISON(block, bytes);
    }
    return block;
}

/* Later work on the context's one stream runs after the work that used the
 * block, so it can be handed out again at once. */
extern "C" void cuda_release(tc_context *ctx, void *data, size_t bytes) {
    if (!data) return;
    cuda_state *state = cuda_state_of(ctx);
    size_t size = block_size_for(bytes);
    POISON(data, size);
    state->free_blocks[size].push_back(data);
    state->cached_bytes += size;
}

extern "C" void *cuda_scratch_allocate(tc_context *ctx, size_t bytes) {
    return tc_device_allocate(ctx, TC_CUDA, bytes);
}

extern "C" void cuda_scratch_release(tc_context *ctx, void *data, size_t bytes) {
    tc_device_release(ctx, TC_CUDA, data, bytes);
}

extern "C" cuda_stream cuda_stream_of(tc_context *ctx) { return cuda_state_of(ctx)->stream; }

extern "C" bool cuda_allow_tf32(tc_context *ctx) { return cuda_state_of(ctx)->allow_tf32; }

extern "C" tc_status cuda_check(tc_context *ctx, cudaError_t error, const char *what) {
    if (error == cudaSuccess) return TC_OK;
    const char *detail = "";
#ifdef TC_CUDA_EMULATION
    detail = tc_emulation::last_error_detail();
#endif
    tc_status status = error == cudaErrorMemoryAllocation ? TC_ERROR_MEMORY : TC_ERROR_STATE;
    tc_fail(ctx, status, "%s: %s (%s)%s%s", what, cudaGetErrorString(error), cudaGetErrorName(error),
            detail[0] ? ": " : "", detail);
#ifdef TC_CUDA_EMULATION
    tc_emulation::clear_error_detail();
#endif
    return status;
}

extern "C" tc_status cuda_check_launch(tc_context *ctx, const char *what) {
    return cuda_check(ctx, cudaGetLastError(), what);
}

extern "C" tc_status cuda_copy_to_host(tc_context *ctx, void *host, const void *device, size_t bytes) {
    cudaStream_t stream = cuda_stream_of(ctx);
    TC_TRY(cuda_check(ctx, cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream), "copy to host"));
    return cuda_check(ctx, cudaStreamSynchronize(stream), "copy to host");
}
