/*
 * memory.c: storage memory. One place counts it for every device (the
 * budget, the bytes in use and their peak), and the engine's own allocator
 * keeps the policy that holds a training loop's memory flat and its steps
 * free of system calls: large blocks mapped and unmapped directly, freed
 * blocks cached by size class for reuse (block_cache.h). A host's allocator
 * (tc_context_new_with_allocator) sees every request and release instead.
 */
#include "internal.h"

#include "block_cache.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

/* Through malloc, freed large blocks stay in the heap (glibc raises its mmap
 * threshold after the first frees): a loop that drops 8 MiB tensors would
 * keep hundreds of MiB resident, and an embedding host's heap would hold
 * activations' blocks between its own objects, where freeing them returns
 * nothing. Blocks from this size up are mapped and unmapped directly (the
 * block cache keeps a loop's from being remapped each step). */
#define MAPPED_BYTES ((size_t)64 << 10)

static void *default_allocate(void *user, size_t bytes, size_t alignment) {
    (void)user;
    if (bytes >= MAPPED_BYTES && alignment <= 4096) {
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
    }
    if (bytes > SIZE_MAX - alignment) return NULL;
    size_t rounded = (bytes + alignment - 1) / alignment * alignment;
    return aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
}

/* bytes is what was asked of default_allocate, which tells how it was made. */
static void default_release(void *user, void *pointer, size_t bytes) {
    (void)user;
    if (!pointer) return;
    if (bytes < MAPPED_BYTES) free(pointer);
    else munmap(pointer, bytes);
}

const tc_allocator tc_default_allocator = {default_allocate, default_release, NULL};

void tc_set_memory_budget(tc_context *ctx, size_t bytes) { ctx->memory_budget = bytes; }
size_t tc_memory_budget(const tc_context *ctx) { return ctx->memory_budget; }
size_t tc_memory_in_use(const tc_context *ctx) { return ctx->memory_in_use; }
size_t tc_memory_peak(const tc_context *ctx) { return ctx->memory_peak; }

/* TC_OK when bytes more fit the budget, else the error. */
static tc_status check_budget(tc_context *ctx, tc_device device, size_t bytes) {
    size_t budget = ctx->memory_budget;
    if (budget && (bytes > budget || ctx->memory_in_use > budget - bytes))
        return tc_fail(ctx, TC_ERROR_MEMORY, "out of memory budget: %zu bytes asked%s%s, %zu of %zu in use", bytes,
                       device == TC_CPU ? "" : " on ", device == TC_CPU ? "" : tc_device_name(device),
                       ctx->memory_in_use, budget);
    return TC_OK;
}

static void count_in_use(tc_context *ctx, size_t bytes) {
    ctx->memory_in_use += bytes;
    if (ctx->memory_in_use > ctx->memory_peak) ctx->memory_peak = ctx->memory_in_use;
}

tc_status tc_memory_charge(tc_context *ctx, tc_device device, size_t bytes) {
    TC_TRY(check_budget(ctx, device, bytes));
    count_in_use(ctx, bytes);
    return TC_OK;
}

void tc_memory_discharge(tc_context *ctx, size_t bytes) { ctx->memory_in_use -= bytes; }

void *tc_device_allocate(tc_context *ctx, tc_device device, size_t bytes) {
    if (check_budget(ctx, device, bytes) != TC_OK) return NULL;
    const tc_backend *backend = (int)device >= 0 && device < TC_DEVICE_COUNT ? ctx->backends[device] : NULL;
    if (!backend) {
        tc_fail(ctx, TC_ERROR_STATE, "allocating %zu bytes on device %d, which has not started", bytes, (int)device);
        return NULL;
    }
    void *data = backend->allocate(ctx, bytes);
    if (!data) return NULL;
    count_in_use(ctx, bytes);
    return data;
}

void tc_device_release(tc_context *ctx, tc_device device, void *data, size_t bytes) {
    if (!data) return;
    ctx->memory_in_use -= bytes;
    ctx->backends[device]->release(ctx, data, bytes);
}

void *tc_allocate(tc_context *ctx, size_t bytes) { return tc_device_allocate(ctx, TC_CPU, bytes); }
void tc_release_memory(tc_context *ctx, void *data, size_t bytes) { tc_device_release(ctx, TC_CPU, data, bytes); }

void *tc_host_allocate(tc_context *ctx, size_t bytes) {
    tc_block_cache_decay(ctx->block_cache, &ctx->allocator);
    void *data = ctx->block_cache ? tc_block_cache_take(ctx->block_cache, bytes) : NULL;
    size_t asked = ctx->block_cache ? tc_block_cache_rounded(bytes) : bytes;
    if (!data) data = ctx->allocator.allocate(ctx->allocator.user, asked, TC_ALIGNMENT);
    if (!data && tc_block_cache_bytes(ctx->block_cache) > 0) {
        tc_block_cache_flush(ctx->block_cache, &ctx->allocator);
        data = ctx->allocator.allocate(ctx->allocator.user, asked, TC_ALIGNMENT);
    }
    if (!data) tc_fail(ctx, TC_ERROR_MEMORY, "out of memory: could not allocate %zu bytes", bytes);
    return data;
}

void tc_host_release_uncached(tc_context *ctx, void *data, size_t bytes) {
    if (!data) return;
    ctx->allocator.release(ctx->allocator.user, data, ctx->block_cache ? tc_block_cache_rounded(bytes) : bytes);
}

void tc_memory_release_cached(tc_context *ctx) {
    if (ctx->gemm_scratch) {
        tc_host_release_uncached(ctx, ctx->gemm_scratch, ctx->gemm_scratch_bytes);
        ctx->gemm_scratch = NULL;
        ctx->gemm_scratch_bytes = 0;
    }
    if (ctx->block_cache) tc_block_cache_flush(ctx->block_cache, &ctx->allocator);
}

size_t tc_memory_cached(const tc_context *ctx) {
    return tc_block_cache_bytes(ctx->block_cache) + ctx->gemm_scratch_bytes;
}

void tc_host_release(tc_context *ctx, void *data, size_t bytes) {
    if (!ctx->block_cache) {
        ctx->allocator.release(ctx->allocator.user, data, bytes);
        return;
    }
    if (tc_block_cache_put(ctx->block_cache, data, bytes, tc_block_cache_limit(ctx->memory_peak))) return;
    ctx->allocator.release(ctx->allocator.user, data, tc_block_cache_rounded(bytes));
}

void *tc_malloc(tc_context *ctx, size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) tc_fail(ctx, TC_ERROR_MEMORY, "out of memory: could not allocate %zu bytes", bytes);
    return p;
}

void *tc_calloc(tc_context *ctx, size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) tc_fail(ctx, TC_ERROR_MEMORY, "out of memory: could not allocate %zu x %zu bytes", count, size);
    return p;
}

void tc_free(void *p) { free(p); }
