/*
 * cuda_backend.cu: the CUDA backend's table and the entry point the engine
 * finds with dlsym (src/cuda_loader.c). Starting the backend for a context
 * checks that a device can actually run our code (driver, device, a kernel
 * image for its architecture) and makes the context's stream, cuBLAS handle
 * and memory cache.
 *
 * The table's slots call the kernel files' cuda_<slot> functions; those are
 * weak, and a slot whose kernel file is missing fails with a message. Copies
 * between the host and the device are done here; cuda_copy does the copies
 * within the device.
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

static tc_status missing_kernel(tc_context *ctx, const char *slot) {
    return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "%s: not implemented on cuda yet (no CUDA kernel in this build)", slot);
}

/* A slot that forwards to cuda_<slot> when the kernel file is linked in. */
#define FORWARD(slot, ctx_of, parameters, arguments)                                                                \
    static tc_status table_##slot parameters {                                                                     \
        if (!cuda_##slot) return missing_kernel(ctx_of, #slot);                                                     \
        return cuda_##slot arguments;                                                                              \
    }

static bool is_contiguous(const tc_tensor *t) {
    int64_t expected = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->strides[d] != expected) return false;
        expected *= t->shape[d];
    }
    return true;
}

/* Host <-> device transfers take contiguous tensors of one dtype and shape
 * (tc_to_device makes them so); anything else runs on the device. */
static tc_status table_copy(tc_tensor *dst, const tc_tensor *src) {
    bool dst_on_device = dst->storage->device == TC_CUDA, src_on_device = src->storage->device == TC_CUDA;
    if (dst_on_device && src_on_device) {
        if (!cuda_copy) return missing_kernel(dst->ctx, "copy");
        return cuda_copy(dst, src);
    }
    tc_context *ctx = dst->ctx;
    if (dst->dtype != src->dtype || !tc_same_shape(dst, src) || !is_contiguous(dst) || !is_contiguous(src))
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

FORWARD(fill, t->ctx, (tc_tensor * t, double value), (t, value))
FORWARD(unary, x->ctx, (tc_unary_op op, const tc_tensor *x, tc_tensor *out), (op, x, out))
FORWARD(unary_backward, x->ctx,
        (tc_unary_op op, const tc_tensor *x, const tc_tensor *y, const tc_tensor *grad, tc_tensor *grad_x),
        (op, x, y, grad, grad_x))
FORWARD(binary, a->ctx, (tc_binary_op op, const tc_tensor *a, const tc_tensor *b, tc_tensor *out), (op, a, b, out))
FORWARD(clamp, x->ctx, (const tc_tensor *x, double min, double max, tc_tensor *out), (x, min, max, out))
FORWARD(where, out->ctx, (const tc_tensor *cond, const tc_tensor *a, const tc_tensor *b, tc_tensor *out),
        (cond, a, b, out))
FORWARD(reduce, x->ctx, (tc_reduce_op op, const tc_tensor *x, uint32_t mask, int correction, tc_tensor *out),
        (op, x, mask, correction, out))
FORWARD(gemm, ctx,
        (tc_context * ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k,
         double alpha, const void *a, int64_t lda, int64_t stride_a, const void *b, int64_t ldb, int64_t stride_b,
         double beta, void *c, int64_t ldc, int64_t stride_c, int64_t batch),
        (ctx, dtype, transpose_a, transpose_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc,
         stride_c, batch))
FORWARD(gemm_bias, ctx,
        (tc_context * ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k,
         const void *a, int64_t lda, const void *b, int64_t ldb, const void *bias, void *c, int64_t ldc, void *gelu),
        (ctx, dtype, transpose_a, transpose_b, m, n, k, a, lda, b, ldb, bias, c, ldc, gelu))
FORWARD(softmax, x->ctx, (const tc_tensor *x, int dim, bool log, tc_tensor *out), (x, dim, log, out))
FORWARD(softmax_backward, y->ctx, (const tc_tensor *y, const tc_tensor *grad, int dim, bool log, tc_tensor *grad_x),
        (y, grad, dim, log, grad_x))
FORWARD(gather, x->ctx, (const tc_tensor *x, int dim, const tc_tensor *index, tc_tensor *out), (x, dim, index, out))
FORWARD(scatter_add, grad_x->ctx, (tc_tensor * grad_x, int dim, const tc_tensor *index, const tc_tensor *grad),
        (grad_x, dim, index, grad))
FORWARD(index_select, x->ctx, (const tc_tensor *x, int dim, const tc_tensor *index, tc_tensor *out),
        (x, dim, index, out))
FORWARD(index_add, grad_x->ctx, (tc_tensor * grad_x, int dim, const tc_tensor *index, const tc_tensor *grad),
        (grad_x, dim, index, grad))
FORWARD(random, out->ctx, (tc_tensor * out, bool normal, uint64_t seed, uint64_t offset), (out, normal, seed, offset))
FORWARD(dropout, x->ctx,
        (const tc_tensor *x, double p, uint64_t seed, uint64_t offset, tc_tensor *mask, tc_tensor *out),
        (x, p, seed, offset, mask, out))
FORWARD(layer_norm_forward, ctx,
        (tc_context * ctx, tc_dtype dtype, bool rms, const void *x, const void *weight, const void *bias, double eps,
         int64_t rows, int64_t cols, void *out, void *mean, void *rstd),
        (ctx, dtype, rms, x, weight, bias, eps, rows, cols, out, mean, rstd))
FORWARD(layer_norm_backward, ctx,
        (tc_context * ctx, tc_dtype dtype, bool rms, const void *x, const void *weight, const void *mean,
         const void *rstd, const void *dout, int64_t rows, int64_t cols, void *dx, void *dweight, void *dbias),
        (ctx, dtype, rms, x, weight, mean, rstd, dout, rows, cols, dx, dweight, dbias))
FORWARD(attention_forward, ctx,
        (tc_context * ctx, tc_dtype dtype, const void *qkv, int64_t batch, int64_t time, int64_t channels,
         int64_t n_head, bool causal, void *out, void *lse),
        (ctx, dtype, qkv, batch, time, channels, n_head, causal, out, lse))
FORWARD(attention_backward, ctx,
        (tc_context * ctx, tc_dtype dtype, const void *qkv, const void *out, const void *lse, const void *dout,
         int64_t batch, int64_t time, int64_t channels, int64_t n_head, bool causal, void *dqkv),
        (ctx, dtype, qkv, out, lse, dout, batch, time, channels, n_head, causal, dqkv))
FORWARD(attention_cached, ctx,
        (tc_context * ctx, tc_dtype dtype, const void *qkv, int64_t batch, int64_t time, int64_t channels,
         int64_t n_head, bool causal, void *k_cache, void *v_cache, int64_t capacity, int64_t position, void *out),
        (ctx, dtype, qkv, batch, time, channels, n_head, causal, k_cache, v_cache, capacity, position, out))
FORWARD(cross_entropy_forward, ctx,
        (tc_context * ctx, tc_dtype dtype, const void *logits, tc_dtype target_dtype, const void *targets,
         int64_t rows, int64_t classes, int64_t ignore_index, void *lse, double *loss_sum, int64_t *count),
        (ctx, dtype, logits, target_dtype, targets, rows, classes, ignore_index, lse, loss_sum, count))
FORWARD(cross_entropy_backward, ctx,
        (tc_context * ctx, tc_dtype dtype, const void *logits, tc_dtype target_dtype, const void *targets,
         const void *lse, int64_t rows, int64_t classes, int64_t ignore_index, double scale, void *dlogits),
        (ctx, dtype, logits, target_dtype, targets, lse, rows, classes, ignore_index, scale, dlogits))
FORWARD(adamw_step, ctx,
        (tc_context * ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors, double lr, double beta1,
         double beta2, double eps, double weight_decay),
        (ctx, dtype, count, tensors, lr, beta1, beta2, eps, weight_decay))
FORWARD(sgd_step, ctx,
        (tc_context * ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors, double lr, double momentum,
         double dampening, bool nesterov, double weight_decay),
        (ctx, dtype, count, tensors, lr, momentum, dampening, nesterov, weight_decay))
FORWARD(sum_squares, ctx,
        (tc_context * ctx, tc_dtype dtype, int count, const void *const *x, const int64_t *sizes, double *out),
        (ctx, dtype, count, x, sizes, out))
FORWARD(scale, ctx, (tc_context * ctx, tc_dtype dtype, int count, void *const *x, const int64_t *sizes, double factor),
        (ctx, dtype, count, x, sizes, factor))

static tc_backend make_table() {
    tc_backend table;
    memset(&table, 0, sizeof table);
#ifdef TC_CUDA_EMULATION
    table.name = "cuda (emulated on the CPU)";
#else
    table.name = "cuda";
#endif
    table.device = TC_CUDA;
    table.allocate = cuda_block_allocate;
    table.release = cuda_block_release;
    table.copy = table_copy;
    table.fill = table_fill;
    table.unary = table_unary;
    table.unary_backward = table_unary_backward;
    table.binary = table_binary;
    table.clamp = table_clamp;
    table.where = table_where;
    table.reduce = table_reduce;
    table.gemm = table_gemm;
    table.gemm_bias = table_gemm_bias;
    table.softmax = table_softmax;
    table.softmax_backward = table_softmax_backward;
    table.gather = table_gather;
    table.scatter_add = table_scatter_add;
    table.index_select = table_index_select;
    table.index_add = table_index_add;
    table.random = table_random;
    table.dropout = table_dropout;
    table.layer_norm_forward = table_layer_norm_forward;
    table.layer_norm_backward = table_layer_norm_backward;
    table.attention_forward = table_attention_forward;
    table.attention_backward = table_attention_backward;
    table.attention_cached = table_attention_cached;
    table.cross_entropy_forward = table_cross_entropy_forward;
    table.cross_entropy_backward = table_cross_entropy_backward;
    table.adamw_step = table_adamw_step;
    table.sgd_step = table_sgd_step;
    table.sum_squares = table_sum_squares;
    table.scale = table_scale;
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
    if (status == CUBLAS_STATUS_SUCCESS)
        status = cublasSetMathMode(state->cublas, state->allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
    if (status != CUBLAS_STATUS_SUCCESS) {
        say(reason, reason_size, "cuBLAS could not be started: %s", cublasGetStatusString(status));
        return NULL;
    }
    return cuda_table();
}
