/*
 * cuda_loader.c: finds and loads the CUDA backend library the first time a
 * context asks for the cuda device. The engine never links CUDA: the
 * library (cuda/, built by `make cuda`) is opened with dlopen, and when it
 * cannot be used the reason is kept in the context for the error messages
 * and tc.cuda.is_available().
 *
 * Where the library is looked for: the path tc_set_cuda_library gave (e.g.
 * the emulated build; the Lua binding passes TRICYCLE_CUDA_LIBRARY), else
 * libtricycle_cuda.so next to the module holding the engine (core.so),
 * loaded only when the NVIDIA driver's library is there, else the system's
 * library path.
 *
 * The library links no engine code of its own: its entry point gets
 * tc_engine_functions, the engine functions it calls.
 */
#include "internal.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CUDA_LIBRARY_NAME "libtricycle_cuda.so"

/* Long paths are cut to the reason's size. */
static void set_reason(tc_context *ctx, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void set_reason(tc_context *ctx, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(ctx->backend_unavailable_reason, sizeof ctx->backend_unavailable_reason, format, args);
    va_end(args);
}

/* The path of libtricycle_cuda.so beside the file this code was loaded from. */
static bool library_beside_engine(char *path, size_t size) {
    Dl_info info;
    if (!dladdr((void *)tc_load_cuda_backend, &info) || !info.dli_fname) return false;
    const char *slash = strrchr(info.dli_fname, '/');
    if (!slash) return false;
    int written = snprintf(path, size, "%.*s/%s", (int)(slash - info.dli_fname), info.dli_fname, CUDA_LIBRARY_NAME);
    return written > 0 && (size_t)written < size && access(path, F_OK) == 0;
}

/* Whether the NVIDIA driver's library can be opened. Without it the
 * backend cannot start, and loading it anyway would map the CUDA runtime
 * and cuBLAS (measured: 186 MB more resident memory for a training run
 * that then falls back to the CPU), so the reason is given without. */
static bool driver_present(tc_context *ctx) {
    void *driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (!driver) {
        set_reason(ctx, "no usable NVIDIA driver (libcuda.so.1 cannot be loaded)");
        return false;
    }
    dlclose(driver);
    return true;
}

/* RTLD_NODELETE: the CUDA runtime inside must outlive every context. */
static void *open_library(tc_context *ctx) {
    const int flags = RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE;
    const char *chosen = ctx->cuda_library_path;
    char beside[4096];
    if (!chosen) {
        chosen = library_beside_engine(beside, sizeof beside) ? beside : NULL;
        /* a library named by tc_set_cuda_library (the emulated build) may
         * not need the driver; ours beside the engine does */
        if (chosen && !driver_present(ctx)) return NULL;
    }
    void *library = dlopen(chosen ? chosen : CUDA_LIBRARY_NAME, flags);
    if (library) return library;
    const char *error = dlerror();
    if (chosen)
        set_reason(ctx, "the CUDA backend library could not be loaded: %s", error ? error : chosen);
    else
        set_reason(ctx, "no CUDA backend library (%s is not installed; build it with `make cuda` on a machine with "
                        "the CUDA toolkit)",
                   CUDA_LIBRARY_NAME);
    return NULL;
}

/* The fields of TC_BACKEND_ABI must not spill into each other. */
_Static_assert(sizeof(tc_tensor) < (1 << 20) && sizeof(tc_context) < (1 << 20) && sizeof(tc_backend) < (1 << 12) &&
                   sizeof(tc_engine_functions) < (1 << 12),
               "a structure outgrew its field of TC_BACKEND_ABI");

#define TC_ENGINE_FUNCTION_ENTRY(name) .name = tc_##name,
static const tc_engine_functions engine_functions = {TC_ENGINE_FUNCTIONS(TC_ENGINE_FUNCTION_ENTRY)};
#undef TC_ENGINE_FUNCTION_ENTRY

void tc_load_cuda_backend(tc_context *ctx) {
    if (ctx->backends[TC_CUDA] || ctx->backend_unavailable_reason[0]) return;
    void *library = open_library(ctx);
    if (!library) return;
    tc_cuda_entry_fn entry;
    *(void **)&entry = dlsym(library, TC_CUDA_ENTRY_POINT);
    if (!entry) {
        set_reason(ctx, "the CUDA backend library has no entry point %s", TC_CUDA_ENTRY_POINT);
        dlclose(library);
        return;
    }
    char reason[sizeof ctx->backend_unavailable_reason];
    reason[0] = '\0';
    const tc_backend *backend = entry(ctx, TC_BACKEND_ABI, reason, sizeof reason, &engine_functions);
    if (!backend) {
        set_reason(ctx, "%s", reason[0] ? reason : "the CUDA backend library refused to start");
        if (ctx->cuda_release_state) ctx->cuda_release_state(ctx);
        ctx->cuda_release_state = NULL;
        dlclose(library);
        return;
    }
    ctx->cuda_library = library;
    ctx->backends[TC_CUDA] = backend;
}
