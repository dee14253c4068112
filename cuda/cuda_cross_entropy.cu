/*
 * cuda_cross_entropy.cu: softmax cross-entropy, forward beside backward:
 * the twin of src/cpu/cpu_cross_entropy.c. A block per row; the loss sum
 * and kept count are reduced over rows in a fixed order and read back.
 * Contracts are on the slots (src/backend_slots.h). Over bfloat16/float16
 * logits (T) the arithmetic is float32's (C, cuda_compute_t<T>), lse is
 * float32 and each gradient is rounded once to T.
 */
#include "cuda_half.h"

__device__ __forceinline__ int64_t target_at(bool int32_targets, const void *targets, int64_t r) {
    if (int32_targets) return static_cast<const int32_t *>(targets)[r];
    return static_cast<const int64_t *>(targets)[r];
}

/* lse per row; losses[r] = lse - logit of the target and kept[r] = 1 on
 * kept rows, 0 and 0 on ignored rows. */
template <typename T, typename C>
__global__ void cross_entropy_forward_kernel(const T *logits, bool int32_targets, const void *targets, int64_t rows,
                                             int64_t classes, int64_t ignore_index, C *lse, double *losses,
                                             double *kept) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *row = logits + r * classes;
        C max = -cuda_infinity<C>();
        for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) max = nan_max(max, (C)row[c]);
        max = block_max(max);
        double sum = 0;
        for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) sum += exp((double)((C)row[c] - max));
        double l = (double)max + log(block_sum(sum));
        if (threadIdx.x == 0) {
            lse[r] = (C)l;
            int64_t t = target_at(int32_targets, targets, r);
            bool keep = t != ignore_index;
            losses[r] = keep ? l - (double)row[t] : 0.0;
            kept[r] = keep ? 1.0 : 0.0;
        }
    }
}

/* One block: result[0] = sum of losses, result[1] = sum of kept. */
__global__ void cross_entropy_total_kernel(const double *losses, const double *kept, int64_t rows, double *result) {
    double loss = 0, count = 0;
    for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
        loss += losses[r];
        count += kept[r];
    }
    loss = block_sum(loss);
    count = block_sum(count);
    if (threadIdx.x == 0) {
        result[0] = loss;
        result[1] = count;
    }
}

template <typename T, typename C>
__global__ void cross_entropy_backward_kernel(const T *logits, bool int32_targets, const void *targets, const C *lse,
                                              int64_t rows, int64_t classes, int64_t ignore_index, double scale,
                                              T *dlogits) {
    int64_t n = rows * classes;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = e / classes, c = e % classes;
        int64_t t = target_at(int32_targets, targets, r);
        if (t == ignore_index) {
            dlogits[e] = (T)0.0f;
            continue;
        }
        C d = (C)(scale * exp((double)logits[e] - (double)lse[r]));
        dlogits[e] = c == t ? (T)((double)d - scale) : (T)d;
    }
}

tc_status cuda_cross_entropy_forward(tc_context *ctx, tc_dtype dtype, const void *logits, tc_dtype target_dtype,
                                     const void *targets, int64_t rows, int64_t classes, int64_t ignore_index,
                                     void *lse, double *loss_sum, int64_t *count) {
    if (dtype != TC_FLOAT32 && dtype != TC_FLOAT64 && !cuda_dtype_is_16bit(dtype))
        return cuda_unsupported_dtype(ctx, "cross_entropy", dtype);
    *loss_sum = 0;
    *count = 0;
    if (rows == 0) return TC_OK;
    size_t bytes = sizeof(double) * (size_t)(2 * rows + 2);
    double *scratch = static_cast<double *>(cuda_scratch_allocate(ctx, bytes));
    if (!scratch) return TC_ERROR_MEMORY;
    double *losses = scratch, *kept = scratch + rows, *result = scratch + 2 * rows;
    cuda_stream stream = cuda_stream_of(ctx);
    bool int32_targets = target_dtype == TC_INT32;
    cuda_dispatch_float_or_16bit(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        typedef cuda_compute_t<T> C;
        auto kernel = cross_entropy_forward_kernel<T, C>;
        TC_LAUNCH(kernel, cuda_rows_for(rows), cuda_row_threads(classes), 0, stream, static_cast<const T *>(logits),
                  int32_targets, targets, rows, classes, ignore_index, static_cast<C *>(lse), losses, kept);
    });
    TC_LAUNCH(cross_entropy_total_kernel, 1, CUDA_BLOCK, 0, stream, losses, kept, rows, result);
    tc_status status = cuda_check_launch(ctx, "cross_entropy");
    double host[2] = {0, 0};
    if (status == TC_OK) status = cuda_copy_to_host(ctx, host, result, sizeof host);
    cuda_scratch_release(ctx, scratch, bytes);
    *loss_sum = host[0];
    *count = (int64_t)host[1];
    return status;
}

tc_status cuda_cross_entropy_backward(tc_context *ctx, tc_dtype dtype, const void *logits, tc_dtype target_dtype,
                                      const void *targets, const void *lse, int64_t rows, int64_t classes,
                                      int64_t ignore_index, double scale, void *dlogits) {
    int64_t n = rows * classes;
    if (n == 0) return TC_OK;
    bool known = cuda_dispatch_float_or_16bit(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        typedef cuda_compute_t<T> C;
        auto kernel = cross_entropy_backward_kernel<T, C>;
        TC_LAUNCH(kernel, cuda_blocks_for(n), CUDA_BLOCK, 0, cuda_stream_of(ctx), static_cast<const T *>(logits),
                  target_dtype == TC_INT32, targets, static_cast<const C *>(lse), rows, classes, ignore_index, scale,
                  static_cast<T *>(dlogits));
    });
    if (!known) return cuda_unsupported_dtype(ctx, "cross_entropy backward", dtype);
    return cuda_check_launch(ctx, "cross_entropy backward");
}
