/*
 * cuda_optim.cu: the optimisers' multi-tensor kernels: AdamW and SGD steps,
 * the sum of squares (global norm) and in-place scaling, grid-stride loops
 * per tensor with the element arithmetic in the parameter's dtype like
 * src/cpu/cpu_optim.c; weight decay as p -= (lr * wd) * p, like the CPU.
 * Contracts are on the slots (src/backend_slots.h).
 */
#include "cuda_kernels.h"

/* Blocks per sum-of-squares buffer. */
#define SQUARES_BLOCKS 128

template <typename T> struct adamw_coefficients {
    T b1, one_minus_b1, b2, one_minus_b2, decay, step_size, inverse_sqrt_bias2, epsilon;
};

template <typename T>
__global__ void adamw_kernel(T *param, const T *grad, T *m, T *v, int64_t n, adamw_coefficients<T> k) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        T g = grad[i];
        T mi = k.b1 * m[i] + k.one_minus_b1 * g;
        T vi = k.b2 * v[i] + k.one_minus_b2 * g * g;
        m[i] = mi;
        v[i] = vi;
        T p = param[i];
        p -= k.decay * param[i];
        p -= k.step_size * mi / (cuda_sqrt(vi) * k.inverse_sqrt_bias2 + k.epsilon);
        param[i] = p;
    }
}

template <typename T>
__global__ void sgd_kernel(T *param, const T *grad, T *buffer, int64_t n, T mu, T keep, T wd, T rate, bool nesterov) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        T g = grad[i] + wd * param[i];
        if (buffer) {
            T b = mu * buffer[i] + keep * g;
            buffer[i] = b;
            g = nesterov ? g + mu * b : b;
        }
        param[i] -= rate * g;
    }
}

/* partial[blockIdx.x] = this block's share of the sum of squares of x. */
template <typename T> __global__ void sum_squares_kernel(const T *x, int64_t n, double *partial) {
    double sum = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        sum += (double)x[i] * (double)x[i];
    sum = block_sum(sum);
    if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

/* One block: *result = the sum of n partial sums. */
__global__ void sum_partials_kernel(const double *partial, int64_t n, double *result) {
    double sum = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += partial[i];
    sum = block_sum(sum);
    if (threadIdx.x == 0) *result = sum;
}

template <typename T> __global__ void scale_kernel(T *x, int64_t n, T factor) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x[i] *= factor;
}

/* launch(type_tag<T>(), t) for each tensor t that has elements, each launch
 * checked; the dtype float32 or float64. */
template <typename F>
static tc_status each_tensor(tc_context *ctx, const char *function, tc_dtype dtype, int count,
                             const tc_step_tensor *tensors, F &&launch) {
    if (dtype != TC_FLOAT32 && dtype != TC_FLOAT64) return cuda_unsupported_dtype(ctx, function, dtype);
    for (int i = 0; i < count; i++) {
        const tc_step_tensor *t = &tensors[i];
        if (t->numel == 0) continue;
        cuda_dispatch_float(dtype, [&](auto tag) { launch(tag, t); });
        TC_TRY(cuda_check_launch(ctx, function));
    }
    return TC_OK;
}

tc_status cuda_adamw_step(tc_context *ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors, double lr,
                          double beta1, double beta2, double eps, double weight_decay) {
    cuda_stream stream = cuda_stream_of(ctx);
    return each_tensor(ctx, "adamw", dtype, count, tensors, [&](auto tag, const tc_step_tensor *t) {
        typedef typename decltype(tag)::type T;
        adamw_coefficients<T> k = {(T)beta1,
                                   (T)(1.0 - beta1),
                                   (T)beta2,
                                   (T)(1.0 - beta2),
                                   (T)(lr * weight_decay),
                                   (T)(lr / t->bias1),
                                   (T)(1.0 / sqrt(t->bias2)),
                                   (T)eps};
        TC_LAUNCH(adamw_kernel<T>, cuda_blocks_for(t->numel), CUDA_BLOCK, 0, stream, static_cast<T *>(t->param),
                  static_cast<const T *>(t->grad), static_cast<T *>(t->state[0]), static_cast<T *>(t->state[1]),
                  t->numel, k);
    });
}

tc_status cuda_sgd_step(tc_context *ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors, double lr,
                        double momentum, double dampening, bool nesterov, double weight_decay) {
    cuda_stream stream = cuda_stream_of(ctx);
    return each_tensor(ctx, "sgd", dtype, count, tensors, [&](auto tag, const tc_step_tensor *t) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(sgd_kernel<T>, cuda_blocks_for(t->numel), CUDA_BLOCK, 0, stream, static_cast<T *>(t->param),
                  static_cast<const T *>(t->grad), static_cast<T *>(t->state[0]), t->numel, (T)momentum,
                  (T)(1.0 - dampening), (T)weight_decay, (T)lr, nesterov);
    });
}

static unsigned squares_blocks(int64_t n) {
    unsigned blocks = cuda_blocks_for(n);
    return blocks > SQUARES_BLOCKS ? SQUARES_BLOCKS : blocks;
}

tc_status cuda_sum_squares(tc_context *ctx, tc_dtype dtype, int count, const void *const *x, const int64_t *sizes,
                           double *out) {
    if (dtype != TC_FLOAT32 && dtype != TC_FLOAT64) return cuda_unsupported_dtype(ctx, "sum_squares", dtype);
    *out = 0;
    int64_t slots = 0;
    for (int i = 0; i < count; i++) slots += squares_blocks(sizes[i]);
    if (slots == 0) return TC_OK;
    size_t bytes = sizeof(double) * (size_t)(slots + 1);
    double *partial = static_cast<double *>(cuda_scratch_allocate(ctx, bytes));
    if (!partial) return TC_ERROR_MEMORY;
    cuda_stream stream = cuda_stream_of(ctx);
    int64_t slot = 0;
    for (int i = 0; i < count; i++) {
        unsigned blocks = squares_blocks(sizes[i]);
        cuda_dispatch_float(dtype, [&](auto tag) {
            typedef typename decltype(tag)::type T;
            TC_LAUNCH(sum_squares_kernel<T>, blocks, CUDA_BLOCK, 0, stream, static_cast<const T *>(x[i]), sizes[i],
                      partial + slot);
        });
        slot += blocks;
    }
    TC_LAUNCH(sum_partials_kernel, 1, CUDA_BLOCK, 0, stream, partial, slots, partial + slots);
    tc_status status = cuda_check_launch(ctx, "sum_squares");
    if (status == TC_OK) status = cuda_copy_to_host(ctx, out, partial + slots, sizeof(double));
    cuda_scratch_release(ctx, partial, bytes);
    return status;
}

tc_status cuda_scale(tc_context *ctx, tc_dtype dtype, int count, void *const *x, const int64_t *sizes, double factor) {
    if (dtype != TC_FLOAT32 && dtype != TC_FLOAT64) return cuda_unsupported_dtype(ctx, "scale", dtype);
    cuda_stream stream = cuda_stream_of(ctx);
    for (int i = 0; i < count; i++) {
        if (sizes[i] == 0) continue;
        cuda_dispatch_float(dtype, [&](auto tag) {
            typedef typename decltype(tag)::type T;
            TC_LAUNCH(scale_kernel<T>, cuda_blocks_for(sizes[i]), CUDA_BLOCK, 0, stream, static_cast<T *>(x[i]),
                      sizes[i], (T)factor);
        });
        TC_TRY(cuda_check_launch(ctx, "scale"));
    }
    return TC_OK;
}
