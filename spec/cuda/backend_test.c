/*
 * backend_test.c: what of the CUDA backend the Lua specs cannot reach, run
 * against whichever library TRICYCLE_CUDA_LIBRARY names (the emulated one in
 * `make test-cuda`): rand and randn made on the device equal the CPU's for
 * the same seed (one Philox stream for both), the device's memory is counted
 * and given back (the caching allocator), the memory budget holds on the
 * device, each context gets its own backend state, the CUDA settings are
 * refused once the backend started, and a library built for other
 * structures is refused.
 */
#include "internal.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

static void check(bool ok, const char *what) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) failures++;
}

/* rand or randn of n float64 values made on `device` after seeding, copied to the host. */
static bool random_values(tc_context *ctx, tc_device device, bool normal, int64_t n, double *values) {
    tc_manual_seed(ctx, 42);
    tc_set_default_device(ctx, device);
    tc_tensor *t = NULL;
    int64_t shape[1] = {n};
    tc_status status = normal ? tc_randn(ctx, TC_FLOAT64, 1, shape, &t) : tc_rand(ctx, TC_FLOAT64, 1, shape, &t);
    tc_set_default_device(ctx, TC_CPU);
    if (status != TC_OK) {
        printf("     %s\n", tc_last_error(ctx));
        return false;
    }
    bool ok = tc_tensor_device(t) == device && tc_copy_to_doubles(t, values, n) == TC_OK;
    tc_tensor_release(t);
    return ok;
}

static void test_random(tc_context *ctx) {
    enum { n = 1001 };
    static double host[n], device[n];
    for (int normal = 0; normal < 2; normal++) {
        bool ok = random_values(ctx, TC_CPU, normal, n, host) && random_values(ctx, TC_CUDA, normal, n, device);
        double worst = 0;
        for (int i = 0; ok && i < n; i++) worst = fmax(worst, fabs(host[i] - device[i]));
        check(ok && worst < 1e-12, normal ? "randn on cuda equals the CPU's for one seed"
                                          : "rand on cuda equals the CPU's for one seed");
    }
}

/* arange and from_data fill on the host and move to the default device:
 * the values arrive there, and the host tensor is not kept. */
static void test_host_filled_on_device(tc_context *ctx) {
    size_t before = tc_memory_in_use(ctx);
    tc_set_default_device(ctx, TC_CUDA);
    tc_tensor *range = NULL, *given = NULL;
    const double values[3] = {1.5, -2, 4};
    int64_t shape[1] = {3};
    bool made = tc_arange(ctx, TC_FLOAT64, 0, 5, 1, &range) == TC_OK &&
                tc_from_data(ctx, TC_FLOAT32, 1, shape, values, TC_FLOAT64, &given) == TC_OK;
    tc_set_default_device(ctx, TC_CPU);
    double got_range[5] = {0}, got_given[3] = {0};
    bool ok = made && tc_tensor_device(range) == TC_CUDA && tc_tensor_device(given) == TC_CUDA &&
              tc_copy_to_doubles(range, got_range, 5) == TC_OK && tc_copy_to_doubles(given, got_given, 3) == TC_OK;
    for (int i = 0; ok && i < 5; i++) ok = got_range[i] == i;
    for (int i = 0; ok && i < 3; i++) ok = got_given[i] == values[i];
    check(ok, "arange and from_data with cuda the default device make cuda tensors of their values");
    tc_tensor_release(range);
    tc_tensor_release(given);
    check(tc_memory_in_use(ctx) == before, "arange and from_data on cuda leave nothing allocated once released");
}

static void test_memory(tc_context *ctx) {
    size_t before = tc_memory_in_use(ctx);
    int64_t shape[2] = {100, 37};
    tc_tensor *host = NULL, *on_device = NULL, *again = NULL;
    bool ok = tc_ones(ctx, TC_FLOAT32, 2, shape, &host) == TC_OK;
    size_t host_bytes = tc_memory_in_use(ctx) - before;
    ok = ok && tc_to_device(host, TC_CUDA, &on_device) == TC_OK;
    check(ok && tc_memory_in_use(ctx) - before == 2 * host_bytes, "device memory is counted like host memory");
    void *block = ok ? tc_tensor_data(on_device) : NULL;
    tc_tensor_release(on_device);
    check(tc_memory_in_use(ctx) - before == host_bytes, "released device memory is given back");
    ok = tc_to_device(host, TC_CUDA, &again) == TC_OK;
    check(ok && tc_tensor_data(again) == block && tc_memory_in_use(ctx) - before == 2 * host_bytes,
          "the released block serves the next allocation of its size");
    tc_tensor_release(again);

    tc_set_memory_budget(ctx, tc_memory_in_use(ctx) + 1000);
    tc_status status = tc_to_device(host, TC_CUDA, &again);
    check(status == TC_ERROR_MEMORY && strstr(tc_last_error(ctx), "budget") != NULL,
          "the memory budget holds on the device");
    tc_set_memory_budget(ctx, 0);
    tc_clear_error(ctx);
    tc_tensor_release(host);
    check(tc_memory_in_use(ctx) == before, "everything is given back");
}

/* A context loading the library TRICYCLE_CUDA_LIBRARY names (the engine
 * reads no environment; the Lua binding does the same). */
static tc_context *new_context(void) {
    tc_context *ctx = tc_context_new();
    if (ctx && tc_set_cuda_library(ctx, getenv("TRICYCLE_CUDA_LIBRARY")) != TC_OK) {
        tc_context_free(ctx);
        return NULL;
    }
    return ctx;
}

static void test_contexts(void) {
    tc_context *a = new_context(), *b = new_context();
    int64_t shape[1] = {8};
    tc_tensor *x = NULL, *y = NULL, *xa = NULL, *yb = NULL;
    bool ok = tc_full(a, TC_FLOAT64, 1, shape, 2.0, &x) == TC_OK && tc_full(b, TC_FLOAT64, 1, shape, 3.0, &y) == TC_OK;
    ok = ok && tc_to_device(x, TC_CUDA, &xa) == TC_OK && tc_to_device(y, TC_CUDA, &yb) == TC_OK;
    double va = 0, vb = 0;
    int64_t index[1] = {7};
    ok = ok && tc_get(xa, index, &va) == TC_OK && tc_get(yb, index, &vb) == TC_OK;
    check(ok && va == 2.0 && vb == 3.0, "two contexts use the device side by side");
    tc_tensor_release(xa);
    tc_tensor_release(yb);
    tc_tensor_release(x);
    tc_tensor_release(y);
    tc_context_free(a);
    tc_context_free(b);
}

/* The settings read when the backend starts cannot change after it. */
static void test_settings(tc_context *ctx) {
    const char *library = tc_cuda_library(ctx);
    tc_status status = tc_set_cuda_library(ctx, "/elsewhere/libtricycle_cuda.so");
    check(status == TC_ERROR_STATE && strstr(tc_last_error(ctx), "tc_set_cuda_library: the CUDA backend has already "
                                                                 "started") != NULL &&
              tc_cuda_library(ctx) == library,
          "tc_set_cuda_library after the backend started is refused");
    tc_clear_error(ctx);
    status = tc_set_cuda_tf32(ctx, !tc_cuda_tf32(ctx));
    check(status == TC_ERROR_STATE && strstr(tc_last_error(ctx), "tc_set_cuda_tf32") != NULL,
          "tc_set_cuda_tf32 after the backend started is refused");
    tc_clear_error(ctx);
    check(tc_set_cuda_tf32(ctx, tc_cuda_tf32(ctx)) == TC_OK, "setting tf32 to what it is stays allowed");
}

/* A failed load is kept as the reason, and a new library path clears it. */
static void test_library_path(const char *library) {
    tc_context *ctx = tc_context_new();
    tc_tensor *x = NULL, *moved = NULL;
    bool ok = ctx && tc_set_cuda_library(ctx, "/nonexistent/libtricycle_cuda.so") == TC_OK &&
              tc_zeros(ctx, TC_FLOAT32, 1, (int64_t[]){2}, &x) == TC_OK;
    tc_status status = ok ? tc_to_device(x, TC_CUDA, &moved) : TC_ERROR_STATE;
    check(ok && status == TC_ERROR_UNSUPPORTED && strstr(tc_last_error(ctx), "/nonexistent/") != NULL,
          "a library that cannot be loaded is named");
    ok = ok && tc_set_cuda_library(ctx, library) == TC_OK && tc_to_device(x, TC_CUDA, &moved) == TC_OK;
    check(ok && tc_tensor_device(moved) == TC_CUDA, "setting another library path tries again");
    tc_tensor_release(moved);
    tc_tensor_release(x);
    tc_context_free(ctx);
}

/* The entry point refuses an engine of other structures before using it. */
static void test_abi(const char *library) {
    void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    tc_cuda_entry_fn entry = NULL;
    if (handle) *(void **)&entry = dlsym(handle, TC_CUDA_ENTRY_POINT);
    char reason[256] = "";
    tc_context *ctx = tc_context_new();
    const tc_backend *backend = entry ? entry(ctx, TC_BACKEND_ABI + 1, reason, sizeof reason, NULL) : NULL;
    check(entry && !backend && strstr(reason, "built for another version of the engine") != NULL,
          "a library built for other structures is refused");
    tc_context_free(ctx);
    if (handle) dlclose(handle);
}

int main(void) {
    tc_context *ctx = new_context();
    tc_tensor *probe = NULL;
    int64_t shape[1] = {1};
    if (tc_zeros(ctx, TC_FLOAT32, 1, shape, &probe) != TC_OK) return 1;
    tc_tensor *moved = NULL;
    if (tc_to_device(probe, TC_CUDA, &moved) != TC_OK) {
        printf("skipped: %s (set TRICYCLE_CUDA_LIBRARY to the emulated build)\n", tc_last_error(ctx));
        tc_tensor_release(probe);
        tc_context_free(ctx);
        return 0;
    }
    tc_tensor_release(moved);
    tc_tensor_release(probe);
    test_random(ctx);
    test_host_filled_on_device(ctx);
    test_memory(ctx);
    test_contexts();
    test_settings(ctx);
    tc_context_free(ctx);
    const char *library = getenv("TRICYCLE_CUDA_LIBRARY");
    if (library && library[0]) {
        test_library_path(library);
        test_abi(library);
    }
    printf("%s: %d failure%s\n", failures ? "FAILED" : "passed", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
