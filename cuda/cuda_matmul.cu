/*
 * cuda_matmul.cu: batched GEMM through cuBLAS (cublasGemmStridedBatchedEx) on
 * the context's stream. Float32 is computed in float32 unless TF32 was asked
 * for (TRICYCLE_CUDA_TF32=1); float64 in float64.
 *
 * The engine's matrices are row-major and cuBLAS's column-major: a row-major
 * C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T, so the operands
 * swap places and m and n trade.
 */
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
