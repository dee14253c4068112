/*
 * cuda_matmul.cu: batched GEMM through cuBLAS (cublasGemmStridedBatchedEx) on
 * the context's stream. Float32 is computed in float32 unless TF32 was asked
 * for (tc_set_cuda_tf32; TRICYCLE_CUDA_TF32=1 from Lua); float64 in float64.
 *
 * The engine's matrices are row-major and cuBLAS's column-major: a row-major
 * C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T, so the operands
 * swap places and m and n trade.
 *
 * The linear layer's GEMM (cuda_gemm_bias, the twin of cpu_gemm_bias) is
 * cuBLAS writing the product, then one pass adding the bias and taking the
 * GELU: the output is written once by cuBLAS and once by the epilogue,
 * where copying the bias in first, a GEMM with beta 1 and a separate GELU
 * would touch it five times.
 */
#include "cuda_kernels.h"
#include "cuda_state.h"

#include <limits.h>

static bool fits_int(int64_t value) { return value >= 0 && value <= INT_MAX; }

extern "C" tc_status cuda_gemm(tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m,
                               int64_t n, int64_t k, double alpha, const void *a, int64_t lda, int64_t stride_a,
                               const void *b, int64_t ldb, int64_t stride_b, double beta, void *c, int64_t ldc,
                               int64_t stride_c, int64_t batch) {
    if (!fits_int(m) || !fits_int(n) || !fits_int(k) || !fits_int(lda) || !fits_int(ldb) || !fits_int(ldc) ||
        !fits_int(batch))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "matmul: a dimension exceeds cuBLAS's 32-bit limit");
    if (m == 0 || n == 0 || batch == 0) return TC_OK;
    cuda_state *state = cuda_state_of(ctx);
    cublasOperation_t first = transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t second = transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    float alpha32 = (float)alpha, beta32 = (float)beta;
    const void *alpha_pointer, *beta_pointer;
    cudaDataType type;
    cublasComputeType_t compute;
    if (dtype == TC_FLOAT32) {
        type = CUDA_R_32F;
        compute = state->allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
        alpha_pointer = &alpha32;
        beta_pointer = &beta32;
    } else if (dtype == TC_FLOAT64) {
        type = CUDA_R_64F;
        compute = CUBLAS_COMPUTE_64F;
        alpha_pointer = &alpha;
        beta_pointer = &beta;
    } else {
        return tc_fail(ctx, TC_ERROR_DTYPE, "matmul: dtype %s is not supported (float32 or float64)",
                       tc_dtype_name(dtype));
    }
    cublasStatus_t status = cublasGemmStridedBatchedEx(
        state->cublas, first, second, (int)n, (int)m, (int)k, alpha_pointer, b, type, (int)ldb, (long long)stride_b,
        a, type, (int)lda, (long long)stride_a, beta_pointer, c, type, (int)ldc, (long long)stride_c, (int)batch,
        compute, CUBLAS_GEMM_DEFAULT);
    if (status != CUBLAS_STATUS_SUCCESS)
        return tc_fail(ctx, TC_ERROR_STATE,
                       "matmul: cuBLAS failed with %s (m %lld, n %lld, k %lld, lda %lld, ldb %lld, ldc %lld, batch "
                       "%lld)",
                       cublasGetStatusString(status), (long long)m, (long long)n, (long long)k, (long long)lda,
                       (long long)ldb, (long long)ldc, (long long)batch);
    return TC_OK;
}

/* A matrix-vector product as a GEMM of one column, for which cuBLAS picks
 * its matrix-vector kernels: y = alpha op(a) x + beta y, a [m, n] row-major. */
extern "C" tc_status cuda_gemv(tc_context *ctx, tc_dtype dtype, bool transpose, int64_t m, int64_t n, double alpha,
                               const void *a, int64_t lda, const void *x, double beta, void *y) {
    int64_t rows = transpose ? n : m, inner = transpose ? m : n;
    return cuda_gemm(ctx, dtype, transpose, false, rows, 1, inner, alpha, a, lda, 0, x, 1, 0, beta, y, 1, 0, 1);
}

/* c[i, j] += bias[j] (bias may be NULL) and, when gelu is not NULL,
 * gelu[i, j] = GELU_tanh(c[i, j]), over m rows of n (leading dimension ldc
 * for both). */
template <typename T>
__global__ void bias_gelu_epilogue_kernel(T *c, int64_t ldc, const T *bias, T *gelu, int64_t m, int64_t n) {
    int64_t total = m * n;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t row = i / n, column = i - row * n;
        int64_t at = row * ldc + column;
        T value = c[at];
        if (bias) {
            value += bias[column];
            c[at] = value;
        }
        if (gelu) gelu[at] = cuda_gelu_tanh(value);
    }
}

extern "C" tc_status cuda_gemm_bias(tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m,
                                    int64_t n, int64_t k, const void *a, int64_t lda, const void *b, int64_t ldb,
                                    const void *bias, void *c, int64_t ldc, void *gelu) {
    if (gelu && dtype != TC_FLOAT32)
        return tc_fail(ctx, TC_ERROR_DTYPE, "linear: the fused GELU output is float32 only, got %s",
                       tc_dtype_name(dtype));
    TC_TRY(cuda_gemm(ctx, dtype, transpose_a, transpose_b, m, n, k, 1.0, a, lda, 0, b, ldb, 0, 0.0, c, ldc, 0, 1));
    if (m == 0 || n == 0 || (!bias && !gelu)) return TC_OK;
    bool known = cuda_dispatch_float(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(bias_gelu_epilogue_kernel<T>, cuda_blocks_for(m * n), CUDA_BLOCK, 0, cuda_stream_of(ctx),
                  static_cast<T *>(c), ldc, static_cast<const T *>(bias), static_cast<T *>(gelu), m, n);
    });
    if (!known) return tc_fail(ctx, TC_ERROR_DTYPE, "linear: unknown dtype");
    return cuda_check_launch(ctx, "linear");
}
