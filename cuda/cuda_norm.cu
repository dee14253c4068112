/*
 * cuda_norm.cu: layer norm and RMS norm, forward beside backward: the twin
 * of src/cpu/cpu_norm.c, whose results they reproduce (statistics in
 * double). A block per row; the weight and bias gradients are column sums
 * over rows, done in fixed row chunks then summed in order, so they are
 * deterministic without atomics. Contracts are on the slots
 * (src/backend_slots.h). Over bfloat16/float16 (T) every value is computed as
 * over float32 and rounded once to T; the statistics (S, cuda_compute_t<T>)
 * stay float32, as the float32 kernel keeps them.
 */
#include "cuda_half.h"

/* Row chunks for the column sums. */
#define NORM_CHUNKS 64

template <typename T, typename S>
__global__ void layer_norm_forward_kernel(bool rms, const T *x, const T *w, const T *b, double eps, int64_t rows,
                                          int64_t cols, T *out, S *mean_out, S *rstd_out) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *row = x + r * cols;
        T *y = out + r * cols;
        double mean = 0;
        if (!rms) {
            double sum = 0;
            for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sum += (double)row[c];
            mean = block_sum(sum) / (double)cols;
        }
        double var = 0; /* the mean square about `mean` (0 for RMS norm) */
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            double d = (double)row[c] - mean;
            var += d * d;
        }
        double rstd = 1.0 / sqrt(block_sum(var) / (double)cols + eps);
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            double v = ((double)row[c] - mean) * rstd;
            if (w) v *= (double)w[c];
            if (b) v += (double)b[c];
            y[c] = (T)v;
        }
        if (threadIdx.x == 0) {
            mean_out[r] = (S)mean;
            rstd_out[r] = (S)rstd;
        }
    }
}

/* With xhat = (x - mean) * rstd and g = dout * w:
 * layer norm: dx = rstd * (g - mean(g) - xhat * mean(g * xhat));
 * RMS norm:   dx = rstd * (g - xhat * mean(g * xhat)). */
template <typename T, typename S>
__global__ void layer_norm_backward_dx_kernel(bool rms, const T *x, const T *w, const S *mean, const S *rstd,
                                              const T *dout, int64_t rows, int64_t cols, T *dx) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *row = x + r * cols, *g = dout + r * cols;
        double mu = rms ? 0.0 : (double)mean[r], rs = (double)rstd[r];
        double sum_g = 0, sum_g_xhat = 0;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            double xhat = ((double)row[c] - mu) * rs;
            double gc = (double)g[c] * (w ? (double)w[c] : 1.0);
            sum_g += gc;
            sum_g_xhat += gc * xhat;
        }
        sum_g = block_sum(sum_g);
        sum_g_xhat = block_sum(sum_g_xhat);
        double mean_g = rms ? 0.0 : sum_g / (double)cols, mean_g_xhat = sum_g_xhat / (double)cols;
        T *d = dx + r * cols;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            double xhat = ((double)row[c] - mu) * rs;
            double gc = (double)g[c] * (w ? (double)w[c] : 1.0);
            d[c] = (T)(rs * (gc - mean_g - xhat * mean_g_xhat));
        }
    }
}

/* Partial column sums of dout * xhat and dout over rows chunk*chunk_rows ..
 * +chunk_rows, one thread per (chunk, column). */
template <typename T, typename S>
__global__ void layer_norm_columns_kernel(bool rms, const T *x, const S *mean, const S *rstd, const T *dout,
                                          int64_t rows, int64_t cols, int64_t chunk_rows, int64_t chunks,
                                          double *partial_w, double *partial_b) {
    int64_t items = chunks * cols;
    for (int64_t item = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; item < items;
         item += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = item % cols, chunk = item / cols;
        int64_t end = (chunk + 1) * chunk_rows < rows ? (chunk + 1) * chunk_rows : rows;
        double sum_w = 0, sum_b = 0;
        for (int64_t r = chunk * chunk_rows; r < end; r++) {
            double xhat = ((double)x[r * cols + c] - (rms ? 0.0 : (double)mean[r])) * (double)rstd[r];
            double g = (double)dout[r * cols + c];
            sum_w += g * xhat;
            sum_b += g;
        }
        partial_w[item] = sum_w;
        partial_b[item] = sum_b;
    }
}

/* dweight and dbias (either may be NULL): the chunks' partial sums in order. */
template <typename T>
__global__ void layer_norm_columns_finish_kernel(const double *partial_w, const double *partial_b, int64_t cols,
                                                 int64_t chunks, T *dw, T *db) {
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < cols; c += (int64_t)gridDim.x * blockDim.x) {
        double sum_w = 0, sum_b = 0;
        for (int64_t chunk = 0; chunk < chunks; chunk++) {
            sum_w += partial_w[chunk * cols + c];
            sum_b += partial_b[chunk * cols + c];
        }
        if (dw) dw[c] = (T)sum_w;
        if (db) db[c] = (T)sum_b;
    }
}

tc_status cuda_layer_norm_forward(tc_context *ctx, tc_dtype dtype, bool rms, const void *x, const void *weight,
                                  const void *bias, double eps, int64_t rows, int64_t cols, void *out, void *mean,
                                  void *rstd) {
    if (rows == 0) return TC_OK;
    bool known = cuda_dispatch_float_or_16bit(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        typedef cuda_compute_t<T> S;
        auto kernel = layer_norm_forward_kernel<T, S>;
        TC_LAUNCH(kernel, cuda_rows_for(rows), cuda_row_threads(cols), 0, cuda_stream_of(ctx), rms,
                  static_cast<const T *>(x), static_cast<const T *>(weight), static_cast<const T *>(bias), eps, rows,
                  cols, static_cast<T *>(out), static_cast<S *>(mean), static_cast<S *>(rstd));
    });
    if (!known) return cuda_unsupported_dtype(ctx, "layer_norm", dtype);
    return cuda_check_launch(ctx, rms ? "rms_norm" : "layer_norm");
}

tc_status cuda_layer_norm_backward(tc_context *ctx, tc_dtype dtype, bool rms, const void *x, const void *weight,
                                   const void *mean, const void *rstd, const void *dout, int64_t rows, int64_t cols,
                                   void *dx, void *dweight, void *dbias) {
    const char *name = rms ? "rms_norm backward" : "layer_norm backward";
    if (dtype != TC_FLOAT32 && dtype != TC_FLOAT64 && !cuda_dtype_is_16bit(dtype))
        return cuda_unsupported_dtype(ctx, name, dtype);
    cuda_stream stream = cuda_stream_of(ctx);
    if (dx && rows > 0) {
        cuda_dispatch_float_or_16bit(dtype, [&](auto tag) {
            typedef typename decltype(tag)::type T;
            typedef cuda_compute_t<T> S;
            auto kernel = layer_norm_backward_dx_kernel<T, S>;
            TC_LAUNCH(kernel, cuda_rows_for(rows), cuda_row_threads(cols), 0, stream, rms, static_cast<const T *>(x),
                      static_cast<const T *>(weight), static_cast<const S *>(mean), static_cast<const S *>(rstd),
                      static_cast<const T *>(dout), rows, cols, static_cast<T *>(dx));
        });
        TC_TRY(cuda_check_launch(ctx, name));
    }
    if ((!dweight && !dbias) || cols == 0) return TC_OK;
    int64_t chunks = rows < NORM_CHUNKS ? (rows > 0 ? rows : 1) : NORM_CHUNKS;
    int64_t chunk_rows = (rows + chunks - 1) / chunks;
    size_t bytes = sizeof(double) * 2 * (size_t)(chunks * cols);
    double *partial = static_cast<double *>(cuda_scratch_allocate(ctx, bytes));
    if (!partial) return TC_ERROR_MEMORY;
    cuda_dispatch_float_or_16bit(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        typedef cuda_compute_t<T> S;
        auto kernel = layer_norm_columns_kernel<T, S>;
        TC_LAUNCH(kernel, cuda_blocks_for(chunks * cols), CUDA_BLOCK, 0, stream, rms, static_cast<const T *>(x),
                  static_cast<const S *>(mean), static_cast<const S *>(rstd), static_cast<const T *>(dout), rows, cols,
                  chunk_rows, chunks, partial, partial + chunks * cols);
        TC_LAUNCH(layer_norm_columns_finish_kernel<T>, cuda_blocks_for(cols), CUDA_BLOCK, 0, stream, partial,
                  partial + chunks * cols, cols, chunks, static_cast<T *>(dweight), static_cast<T *>(dbias));
    });
    tc_status status = cuda_check_launch(ctx, name);
    cuda_scratch_release(ctx, partial, bytes);
    return status;
}
