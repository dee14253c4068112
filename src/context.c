/*
 * context.c: the context object, its settings, errors and logging (storage
 * memory is memory.c's). All mutable engine state lives in a tc_context;
 * there is none elsewhere, and the engine reads no environment variables:
 * hosts pass settings through the setters (the Lua binding reads the
 * TRICYCLE_* variables and calls them).
 */
#include "internal.h"

#include "block_cache.h"
#include "cpu/cpu_pool.h"
#include "cpu/cpu_bgemm.h"
#include "cpu/cpu_sgemm.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* More threads rarely pay for the small tensors of one op. */
#define DEFAULT_MAX_THREADS 16

tc_context *tc_context_new_with_allocator(const tc_allocator *allocator) {
    tc_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return NULL;
    if (allocator && allocator->allocate && allocator->release) {
        ctx->allocator = *allocator;
        ctx->custom_allocator = true;
    } else {
        ctx->allocator = tc_default_allocator;
    }
    ctx->num_threads = cpu_pool_available_processors();
    if (ctx->num_threads > DEFAULT_MAX_THREADS) ctx->num_threads = DEFAULT_MAX_THREADS;
    ctx->thread_spin_microseconds = TC_DEFAULT_THREAD_SPIN_MICROSECONDS;
    /* A host allocator sees every request and release as it happens (it may
     * account or pool them itself); only our own allocator gets the cache. */
    if (!ctx->custom_allocator) ctx->block_cache = tc_block_cache_new(); /* NULL: no reuse */
    ctx->default_device = TC_CPU;
    ctx->backends[TC_CPU] = tc_cpu_backend();
    ctx->native_sgemm = cpu_sgemm_available();
    ctx->bgemm_path = (int)cpu_bgemm_best_path();
    return ctx;
}

tc_context *tc_context_new(void) { return tc_context_new_with_allocator(NULL); }

void tc_context_free(tc_context *ctx) {
    if (!ctx) return;
    tc_distributed_release(ctx); /* first: its NCCL communicator lives on the CUDA device */
    if (ctx->cuda_release_state) ctx->cuda_release_state(ctx);
    if (ctx->cuda_library) dlclose(ctx->cuda_library);
    free(ctx->cuda_library_path);
    cpu_pool_free(ctx->cpu_pool);
    tc_memory_release_cached(ctx);
    tc_block_cache_free(ctx->block_cache, &ctx->allocator);
    free(ctx);
}

const char *tc_last_error(const tc_context *ctx) { return ctx->error; }
tc_status tc_last_status(const tc_context *ctx) { return ctx->last_status; }

void tc_clear_error(tc_context *ctx) {
    ctx->error[0] = '\0';
    ctx->last_status = TC_OK;
}

tc_status tc_set_error(tc_context *ctx, tc_status status, const char *message) {
    return tc_fail(ctx, status, "%s", message);
}

void tc_set_log_callback(tc_context *ctx, tc_log_fn fn, void *user) {
    ctx->log_fn = fn;
    ctx->log_user = user;
}

/* A new count retires the pool; the next parallel kernel starts one of the
 * new size. */
void tc_set_num_threads(tc_context *ctx, int threads) {
    if (threads < 1) threads = 1;
    if (threads == ctx->num_threads) return;
    cpu_pool_free(ctx->cpu_pool);
    ctx->cpu_pool = NULL;
    ctx->num_threads = threads;
}

struct cpu_pool *tc_context_pool(tc_context *ctx) {
    if (ctx->num_threads <= 1) return NULL;
    if (!ctx->cpu_pool) ctx->cpu_pool = cpu_pool_new(ctx->num_threads, ctx->thread_spin_microseconds * 1000);
    return ctx->cpu_pool;
}
int tc_num_threads(const tc_context *ctx) { return ctx->num_threads; }

tc_status tc_set_thread_spin(tc_context *ctx, int64_t microseconds) {
    if (microseconds < 0 || microseconds > TC_MAX_THREAD_SPIN_MICROSECONDS)
        return tc_fail(ctx, TC_ERROR_ARGUMENT,
                       "tc_set_thread_spin: the spin time must be from 0 to %d microseconds, got %lld",
                       TC_MAX_THREAD_SPIN_MICROSECONDS, (long long)microseconds);
    ctx->thread_spin_microseconds = microseconds;
    cpu_pool_set_idle_spin(ctx->cpu_pool, microseconds * 1000);
    return TC_OK;
}

int64_t tc_thread_spin(const tc_context *ctx) { return ctx->thread_spin_microseconds; }

void tc_park_threads(tc_context *ctx) { cpu_pool_park(ctx->cpu_pool); }

tc_status tc_start_threads(tc_context *ctx) {
    if (ctx->num_threads <= 1 || tc_context_pool(ctx)) return TC_OK;
    return tc_fail(ctx, TC_ERROR_STATE, "tc_start_threads: no worker thread of %d could be started",
                   ctx->num_threads - 1);
}

void tc_set_default_device(tc_context *ctx, tc_device device) { ctx->default_device = device; }
tc_device tc_default_device(const tc_context *ctx) { return ctx->default_device; }

void tc_set_native_sgemm(tc_context *ctx, bool enabled) { ctx->native_sgemm = enabled && cpu_sgemm_available(); }
bool tc_native_sgemm(const tc_context *ctx) { return ctx->native_sgemm; }

/* The CUDA settings are read when the backend starts for the context. */
static tc_status check_cuda_not_started(tc_context *ctx, const char *function) {
    if (!ctx->backends[TC_CUDA]) return TC_OK;
    return tc_fail(ctx, TC_ERROR_STATE,
                   "%s: the CUDA backend has already started for this context (set it before the first use of "
                   "the cuda device)",
                   function);
}

tc_status tc_set_cuda_library(tc_context *ctx, const char *path) {
    TC_TRY(check_cuda_not_started(ctx, "tc_set_cuda_library"));
    char *copy = NULL;
    if (path && path[0]) {
        copy = tc_malloc(ctx, strlen(path) + 1);
        if (!copy) return TC_ERROR_MEMORY;
        strcpy(copy, path);
    }
    free(ctx->cuda_library_path);
    ctx->cuda_library_path = copy;
    ctx->backend_unavailable_reason[0] = '\0'; /* the next use of the device tries this library */
    return TC_OK;
}

const char *tc_cuda_library(const tc_context *ctx) { return ctx->cuda_library_path; }

tc_status tc_set_cuda_tf32(tc_context *ctx, bool allowed) {
    if (allowed == ctx->cuda_tf32) return TC_OK;
    TC_TRY(check_cuda_not_started(ctx, "tc_set_cuda_tf32"));
    ctx->cuda_tf32 = allowed;
    return TC_OK;
}

bool tc_cuda_tf32(const tc_context *ctx) { return ctx->cuda_tf32; }

tc_status tc_set_cuda_device(tc_context *ctx, int device) {
    if (device == ctx->cuda_device) return TC_OK;
    if (device < 0)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "tc_set_cuda_device: the device index must be >= 0, got %d", device);
    TC_TRY(check_cuda_not_started(ctx, "tc_set_cuda_device"));
    ctx->cuda_device = device;
    ctx->backend_unavailable_reason[0] = '\0'; /* another device may start where this one did not */
    return TC_OK;
}

int tc_cuda_device(const tc_context *ctx) { return ctx->cuda_device; }

void tc_manual_seed(tc_context *ctx, uint64_t seed) {
    ctx->rng_seed = seed;
    ctx->rng_offset = 0;
}

void tc_rng_get_state(const tc_context *ctx, uint64_t *seed, uint64_t *offset) {
    *seed = ctx->rng_seed;
    *offset = ctx->rng_offset;
}

void tc_rng_set_state(tc_context *ctx, uint64_t seed, uint64_t offset) {
    ctx->rng_seed = seed;
    ctx->rng_offset = offset;
}

void tc_set_grad_enabled(tc_context *ctx, bool enabled) {
    if (enabled) {
        if (ctx->grad_disabled_depth > 0) ctx->grad_disabled_depth--;
    } else {
        ctx->grad_disabled_depth++;
    }
}

bool tc_is_grad_enabled(const tc_context *ctx) { return ctx->grad_disabled_depth == 0; }

tc_status tc_set_autocast(tc_context *ctx, tc_dtype dtype) {
    if (dtype != TC_BFLOAT16 && dtype != TC_FLOAT16 && dtype != TC_FLOAT32)
        return tc_fail(ctx, TC_ERROR_DTYPE, "autocast: dtype must be bfloat16, float16 or float32 (off), got %s",
                       tc_dtype_name(dtype));
    ctx->autocast = dtype;
    return TC_OK;
}

static const char *const BGEMM_PATH_NAMES[] = {"fallback", "avx512", "amx"}; /* by cpu_bgemm_path */

tc_status tc_set_bgemm_path(tc_context *ctx, const char *name) {
    for (int path = CPU_BGEMM_FALLBACK; path <= CPU_BGEMM_AMX; path++) {
        if (!name || strcmp(name, BGEMM_PATH_NAMES[path]) != 0) continue;
        int best = (int)cpu_bgemm_best_path();
        ctx->bgemm_path = path < best ? path : best;
        return TC_OK;
    }
    return tc_fail(ctx, TC_ERROR_ARGUMENT, "set_bgemm_path: path must be amx, avx512 or fallback, got '%s'",
                   name ? name : "(null)");
}

const char *tc_bgemm_path(const tc_context *ctx) { return BGEMM_PATH_NAMES[ctx->bgemm_path]; }

tc_dtype tc_autocast(const tc_context *ctx) { return ctx->autocast; }

tc_status tc_fail(tc_context *ctx, tc_status status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(ctx->error, sizeof ctx->error, format, args);
    va_end(args);
    ctx->last_status = status;
    return status;
}

void tc_log(tc_context *ctx, tc_log_level level, const char *format, ...) {
    if (!ctx->log_fn) return;
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    ctx->log_fn(ctx->log_user, level, message);
}

const char *tc_shape_string(int ndim, const int64_t *shape, char *buffer, size_t size) {
    size_t used = 0;
    used += (size_t)snprintf(buffer + used, size - used, "{");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buffer + used, size - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < size) snprintf(buffer + used, size - used, "}");
    return buffer;
}

tc_shape_text tc_shape_text_of(const tc_tensor *t) {
    tc_shape_text text;
    tc_shape_string(t->ndim, t->shape, text.text, sizeof text.text);
    return text;
}

tc_status tc_backend_for(tc_context *ctx, tc_device device, const tc_backend **backend) {
    if ((int)device < 0 || device >= TC_DEVICE_COUNT)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "unknown device %d", (int)device);
    if (device == TC_CUDA && !ctx->backends[device]) tc_load_cuda_backend(ctx);
    if (!ctx->backends[device]) {
        return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "device %s is not available: %s", tc_device_name(device),
                       ctx->backend_unavailable_reason[0] ? ctx->backend_unavailable_reason
                                                          : "the CUDA backend is not built into this installation");
    }
    *backend = ctx->backends[device];
    return TC_OK;
}

const tc_backend *tc_backend_of(const tc_tensor *t) { return t->ctx->backends[t->storage->device]; }
