/*
 * cuda_backend.cu: the CUDA backend's table and the entry point the engine
 * finds with dlsym (src/cuda_loader.c). Starting the backend for a context
 * checks that a device can actually run our code (driver, device, a kernel
 * image for its architecture) and makes the context's stream, cuBLAS handle
 * and memory cache.
 *
 * The table has a kernel cuda_<slot> for every slot of the slot list. Copies between the host and the
 * device are done here; cuda_copy_within does the copies within the device.
 *
 * The engine's functions are reached through the table the entry point gets
 * (cuda_engine; cuda_common.h sends their names there).
 */
#include "cuda_state.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <atomic>
#include <new>

/* ---- the engine ---- */

/* Every engine that loads this library hands over the same functions (the
 * ABI check admits only the structures they were built for); the first one
 * is kept. The module holding it is pinned, since this library, never
 * unloaded, keeps calling into it after that engine's Lua state has closed. */
static std::atomic<const tc_engine_functions *> engine_functions;

static void keep_engine(const tc_engine_functions *engine) {
    const tc_engine_functions *none = NULL;
    if (!engine_functions.compare_exchange_strong(none, engine)) return;
    Dl_info info;
    /* A NULL return (the engine linked into the program) is fine: the
     * program is never unloaded. */
    if (dladdr(static_cast<const void *>(engine), &info) && info.dli_fname)
        (void)dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
}

extern "C" const tc_engine_functions *cuda_engine(void) { return engine_functions.load(std::memory_order_acquire); }

/* ---- the table ---- */

/* Host <-> device transfers take contiguous tensors of one dtype and shape
 * (tc_to_device makes them so); anything else runs on the device. */
tc_status cuda_copy(tc_tensor *dst, const tc_tensor *src) {
    bool dst_on_device = dst->storage->device == TC_CUDA, src_on_device = src->storage->device == TC_CUDA;
    if (dst_on_device && src_on_device) return cuda_copy_within(dst, src);
    tc_context *ctx = dst->ctx;
    if (dst->dtype != src->dtype || !tc_same_shape(dst, src) || !tc_tensor_is_contiguous(dst) ||
        !tc_tensor_is_contiguous(src))
        return tc_fail(ctx, TC_ERROR_UNSUPPORTED,
                       "copy between cpu and cuda: both tensors must be contiguous with one dtype and shape "
                       "(got %s %s and %s %s)",
                       tc_dtype_name(dst->dtype), TC_SHAPE(dst), tc_dtype_name(src->dtype), TC_SHAPE(src));
    size_t bytes = (size_t)tc_tensor_numel(dst) * tc_dtype_size(dst->dtype);
    if (bytes == 0) return TC_OK;
    void *to = tc_tensor_data_at_offset(dst);
    const void *from = tc_tensor_data_at_offset(src);
    if (!dst_on_device) return cuda_copy_to_host(ctx, to, from, bytes);
    cudaStream_t stream = cuda_stream_of(ctx);
    TC_TRY(cuda_check(ctx, cudaMemcpyAsync(to, from, bytes, cudaMemcpyHostToDevice, stream), "copy to cuda"));
    /* The host buffer may be freed as soon as we return. */
    return cuda_check(ctx, cudaStreamSynchronize(stream), "copy to cuda");
}

/* The slots whose kernels take bfloat16 and float16 as well (the 16-bit
 * contract in src/backend_slots.h). */
#define CUDA_HALF_SLOTS                                                                                              \
    (TC_SLOT_BIT(unary) | TC_SLOT_BIT(unary_backward) | TC_SLOT_BIT(binary) | TC_SLOT_BIT(clamp) |                   \
     TC_SLOT_BIT(where) | TC_SLOT_BIT(reduce) | TC_SLOT_BIT(attention_forward) | TC_SLOT_BIT(attention_backward) |    \
     TC_SLOT_BIT(layer_norm_forward) | TC_SLOT_BIT(layer_norm_backward) | TC_SLOT_BIT(softmax) |                      \
     TC_SLOT_BIT(softmax_backward) | TC_SLOT_BIT(cross_entropy_forward) | TC_SLOT_BIT(cross_entropy_backward) |       \
     TC_SLOT_BIT(rope) | TC_SLOT_BIT(im2col) | TC_SLOT_BIT(col2im) | TC_SLOT_BIT(max_pool2d) |                      \
     TC_SLOT_BIT(max_pool2d_backward))

static tc_backend make_table() {
    tc_backend table;
    memset(&table, 0, sizeof table);
#ifdef TC_CUDA_EMULATION
    table.name = "cuda (emulated on the CPU)";
#else
    table.name = "cuda";
#endif
    table.device = TC_CUDA;
    table.half_slots = CUDA_HALF_SLOTS;
#define CUDA_TABLE_ENTRY(name, kind, result, parameters) table.name = &cuda_##name;
    TC_BACKEND_SLOTS(CUDA_TABLE_ENTRY)
#undef CUDA_TABLE_ENTRY
    return table;
}

/* Constant once made (C++ guarantees one thread-safe initialisation). */
static const tc_backend *cuda_table() {
    static const tc_backend table = make_table();
    return &table;
}

/* ---- starting the backend for a context ---- */

static __global__ void probe_kernel(int *flag) { *flag = 42; }

static void release_state(tc_context *ctx) {
    cuda_state *state = cuda_state_of(ctx);
    if (!state) return;
    if (state->stream) cudaStreamSynchronize(state->stream);
    cuda_release_cache(ctx);
    if (state->cublas) cublasDestroy(state->cublas);
    if (state->stream) cudaStreamDestroy(state->stream);
    delete state;
    ctx->cuda_state = NULL;
}

static void say(char *reason, size_t size, const char *format, ...) __attribute__((format(printf, 3, 4)));
static void say(char *reason, size_t size, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(reason, size, format, args);
    va_end(args);
}

/* Whether a driver and a device are there; the reason when not. */
static bool probe_device(char *reason, size_t size) {
    int count = 0;
    cudaError_t error = cudaGetDeviceCount(&count);
    cudaGetLastError(); /* a failed query is not an error of later calls */
    if (error == cudaErrorInsufficientDriver) {
        say(reason, size, "no usable NVIDIA driver (%s)", cudaGetErrorString(error));
        return false;
    }
    if (error == cudaErrorNoDevice || (error == cudaSuccess && count == 0)) {
        say(reason, size, "no CUDA device (%s)", cudaGetErrorString(cudaErrorNoDevice));
        return false;
    }
    if (error != cudaSuccess) {
        say(reason, size, "the CUDA driver could not be queried: %s (%s)", cudaGetErrorString(error),
            cudaGetErrorName(error));
        return false;
    }
    return true;
}

/* Whether device 0 runs this library's kernels: a tiny kernel is launched
 * and its result read back; "no kernel image" means the GPU's architecture
 * is neither compiled for nor reachable from the PTX. */
static bool probe_kernel_image(cudaStream_t stream, char *reason, size_t size) {
    int *flag = NULL, value = 0;
    cudaError_t error = cudaMalloc(&flag, sizeof *flag);
    if (error == cudaSuccess) {
        TC_LAUNCH(probe_kernel, 1, 1, 0, stream, flag);
        error = cudaGetLastError();
        if (error == cudaSuccess) error = cudaMemcpyAsync(&value, flag, sizeof value, cudaMemcpyDeviceToHost, stream);
        if (error == cudaSuccess) error = cudaStreamSynchronize(stream);
        cudaFree(flag);
    }
    if (error == cudaErrorNoKernelImageForDevice) {
        cudaDeviceProp properties;
        memset(&properties, 0, sizeof properties);
        cudaGetDeviceProperties(&properties, 0);
        say(reason, size,
            "no kernel image for this GPU (%s, compute capability %d.%d): the backend is built for sm_80, sm_90 "
            "and compute_90 PTX",
            properties.name, properties.major, properties.minor);
        return false;
    }
    if (error != cudaSuccess || value != 42) {
        say(reason, size, "a test kernel failed on the CUDA device: %s (%s)", cudaGetErrorString(error),
            cudaGetErrorName(error));
        return false;
    }
    return true;
}

/* The entry point: the table for ctx, or NULL with the reason. */
extern "C" __attribute__((visibility("default"))) const tc_backend *
tricycle_cuda_backend(tc_context *ctx, uint64_t abi, char *reason, size_t reason_size,
                      const tc_engine_functions *engine) {
    if (abi != TC_BACKEND_ABI) {
        say(reason, reason_size,
            "the CUDA backend library was built for another version of the engine (rebuild it with the engine)");
        return NULL;
    }
    keep_engine(engine);
    cuda_state *state = new (std::nothrow) cuda_state();
    if (!state) {
        say(reason, reason_size, "out of memory starting the CUDA backend");
        return NULL;
    }
    ctx->cuda_state = state;
    ctx->cuda_release_state = release_state;
    state->allow_tf32 = ctx->cuda_tf32;
    if (!probe_device(reason, reason_size)) return NULL;
    int devices = 0;
    cudaGetDeviceCount(&devices);
    if (ctx->cuda_device >= devices) {
        say(reason, reason_size, "the context asks for CUDA device %d (tc_set_cuda_device; one device per local rank) "
            "but this machine has %d", ctx->cuda_device, devices);
        return NULL;
    }
    cudaError_t error = cudaSetDevice(ctx->cuda_device);
    if (error == cudaSuccess) error = cudaStreamCreateWithFlags(&state->stream, cudaStreamNonBlocking);
    if (error != cudaSuccess) {
        state->stream = NULL;
        cudaGetLastError();
        say(reason, reason_size, "the CUDA device could not be started: %s (%s)", cudaGetErrorString(error),
            cudaGetErrorName(error));
        return NULL;
    }
    if (!probe_kernel_image(state->stream, reason, reason_size)) return NULL;
    cublasStatus_t status = cublasCreate(&state->cublas);
    if (status == CUBLAS_STATUS_SUCCESS) status = cublasSetStream(state->cublas, state->stream);
    /* 16-bit results are float32 sums rounded once: no split-K reduction in the output type */
    int math = (state->allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH) |
               CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if (status == CUBLAS_STATUS_SUCCESS) status = cublasSetMathMode(state->cublas, (cublasMath_t)math);
    if (status != CUBLAS_STATUS_SUCCESS) {
        say(reason, reason_size, "cuBLAS could not be started: %s", cublasGetStatusString(status));
        return NULL;
    }
    return cuda_table();
}
