/*
 * cpu_matmul.c: batched GEMM through OpenBLAS (row-major cblas).
 */
#include "cpu_backend.h"

#include <cblas.h>

tc_status cpu_gemm(tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n,
                   int64_t k, double alpha, const void *a, int64_t lda, int64_t stride_a, const void *b, int64_t ldb,
                   int64_t stride_b, double beta, void *c, int64_t ldc, int64_t stride_c, int64_t batch) {
    if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX || lda > INT32_MAX || ldb > INT32_MAX || ldc > INT32_MAX)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "matmul: a dimension exceeds BLAS's 32-bit limit");
    enum CBLAS_TRANSPOSE ta = transpose_a ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = transpose_b ? CblasTrans : CblasNoTrans;
    for (int64_t i = 0; i < batch; i++) {
        if (dtype == TC_FLOAT32) {
            cblas_sgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, (float)alpha, (const float *)a + i * stride_a,
                        (int)lda, (const float *)b + i * stride_b, (int)ldb, (float)beta, (float *)c + i * stride_c,
                        (int)ldc);
        } else if (dtype == TC_FLOAT64) {
            cblas_dgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, alpha, (const double *)a + i * stride_a,
                        (int)lda, (const double *)b + i * stride_b, (int)ldb, beta, (double *)c + i * stride_c,
                        (int)ldc);
        } else {
            return tc_fail(ctx, TC_ERROR_DTYPE, "matmul: dtype %s is not supported (float32 or float64)",
                           tc_dtype_name(dtype));
        }
    }
    return TC_OK;
}
