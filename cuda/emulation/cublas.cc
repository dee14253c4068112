/*
 * cublas.cc: cuBLAS's GEMM and strided batched GEMM over OpenBLAS
 * (column-major), with cuBLAS's argument checks; 16-bit operands through
 * float32 (cublas_emulation.h).
 */
#include "cublas_emulation.h"
#include "emulation_internal.h"

#include "half.h"

#include <cblas.h>

#include <new>
#include <vector>

struct tc_emulation_cublas {
    cudaStream_t stream;
    cublasMath_t math;
};

cublasStatus_t cublasCreate(cublasHandle_t *handle) {
    *handle = new (std::nothrow) tc_emulation_cublas{nullptr, CUBLAS_DEFAULT_MATH};
    return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    int base = mode & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if (base != CUBLAS_DEFAULT_MATH && base != CUBLAS_PEDANTIC_MATH && base != CUBLAS_TF32_TENSOR_OP_MATH)
        return CUBLAS_STATUS_INVALID_VALUE;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusName(cublasStatus_t status) {
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

const char *cublasGetStatusString(cublasStatus_t status) { return cublasGetStatusName(status); }

namespace {

bool valid_operation(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T; }

bool is_16bit(cudaDataType type) { return type == CUDA_R_16BF || type == CUDA_R_16F; }

/* What a call computes: float32 or float64 data throughout, or 16-bit A
 * and B summed in float32. */
enum class gemm_kind { unsupported, single, twice, half_inputs };

gemm_kind kind_of(cudaDataType Atype, cudaDataType Btype, cudaDataType Ctype, cublasComputeType_t computeType) {
    if (Atype != Btype) return gemm_kind::unsupported;
    if (is_16bit(Atype))
        return (Ctype == Atype || Ctype == CUDA_R_32F) && computeType == CUBLAS_COMPUTE_32F ? gemm_kind::half_inputs
                                                                                            : gemm_kind::unsupported;
    if (Atype != Ctype) return gemm_kind::unsupported;
    if (Atype == CUDA_R_32F && (computeType == CUBLAS_COMPUTE_32F || computeType == CUBLAS_COMPUTE_32F_FAST_TF32))
        return gemm_kind::single;
    if (Atype == CUDA_R_64F && computeType == CUBLAS_COMPUTE_64F) return gemm_kind::twice;
    return gemm_kind::unsupported;
}

float widen(cudaDataType type, uint16_t bits) {
    return type == CUDA_R_16BF ? tc_bfloat16_to_float(bits) : tc_float16_to_float(bits);
}

uint16_t narrow(cudaDataType type, float value) {
    return type == CUDA_R_16BF ? tc_float_to_bfloat16(value) : tc_float_to_float16(value);
}

/* The rows x cols column-major matrix at x (leading dimension ld) of 16-bit
 * `type` as packed float32 (leading dimension rows): only its elements are
 * read, never the gaps between columns. */
void widen_matrix(cudaDataType type, const uint16_t *x, int rows, int cols, int ld, float *out) {
    for (int j = 0; j < cols; j++)
        for (int i = 0; i < rows; i++) out[(size_t)j * rows + i] = widen(type, x[(size_t)j * ld + i]);
}

/* C = alpha op(A) op(B) + beta C for 16-bit A and B: both widened exactly
 * (a product of two is exact in float32), multiplied and summed in float32
 * by OpenBLAS, the result written to a float32 C or rounded once into a
 * 16-bit one (whose old values are read only when beta is not 0). With
 * `reduced` (the handle allows reduced-precision reductions) a 16-bit C is
 * what a split-K reduction in the output type gives, one way cuBLAS may
 * compute it: the two halves of k summed apart, each rounded to C's type,
 * then added and rounded again. */
void gemm_16bit_inputs(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha, const uint16_t *A,
                       cudaDataType Atype, int lda, const uint16_t *B, int ldb, float beta, void *C,
                       cudaDataType Ctype, int ldc, bool reduced) {
    int rows_a = ta == CblasNoTrans ? m : k, cols_a = ta == CblasNoTrans ? k : m;
    int rows_b = tb == CblasNoTrans ? k : n, cols_b = tb == CblasNoTrans ? n : k;
    std::vector<float> a((size_t)rows_a * cols_a), b((size_t)rows_b * cols_b);
    widen_matrix(Atype, A, rows_a, cols_a, lda, a.data());
    widen_matrix(Atype, B, rows_b, cols_b, ldb, b.data());
    int packed_lda = rows_a > 1 ? rows_a : 1, packed_ldb = rows_b > 1 ? rows_b : 1;
    if (Ctype == CUDA_R_32F) {
        cblas_sgemm(CblasColMajor, ta, tb, m, n, k, alpha, a.data(), packed_lda, b.data(), packed_ldb, beta,
                    (float *)C, ldc);
        return;
    }
    uint16_t *c16 = (uint16_t *)C;
    std::vector<float> c((size_t)m * n, 0.0f);
    if (beta != 0.0f) widen_matrix(Ctype, c16, m, n, ldc, c.data());
    if (reduced && k >= 2) {
        /* the first half of k apart: op(A)'s first columns, op(B)'s first rows */
        int half = k / 2;
        const float *a_rest = a.data() + (ta == CblasNoTrans ? (size_t)half * packed_lda : (size_t)half);
        const float *b_rest = b.data() + (tb == CblasNoTrans ? (size_t)half : (size_t)half * packed_ldb);
        std::vector<float> first((size_t)m * n);
        cblas_sgemm(CblasColMajor, ta, tb, m, n, half, alpha, a.data(), packed_lda, b.data(), packed_ldb, 0.0f,
                    first.data(), m);
        cblas_sgemm(CblasColMajor, ta, tb, m, n, k - half, alpha, a_rest, packed_lda, b_rest, packed_ldb, beta,
                    c.data(), m);
        for (size_t i = 0; i < c.size(); i++)
            c[i] = widen(Ctype, narrow(Ctype, first[i])) + widen(Ctype, narrow(Ctype, c[i]));
    } else {
        cblas_sgemm(CblasColMajor, ta, tb, m, n, k, alpha, a.data(), packed_lda, b.data(), packed_ldb, beta, c.data(),
                    m);
    }
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) c16[(size_t)j * ldc + i] = narrow(Ctype, c[(size_t)j * m + i]);
}

size_t element_size(cudaDataType type) { return type == CUDA_R_64F ? 8 : is_16bit(type) ? 2 : 4; }

/* cublasGemmEx's and cublasGemmStridedBatchedEx's checks and work. */
cublasStatus_t gemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                    const void *alpha, const void *A, cudaDataType Atype, int lda, long long strideA, const void *B,
                    cudaDataType Btype, int ldb, long long strideB, const void *beta, void *C, cudaDataType Ctype,
                    int ldc, long long strideC, int batchCount, cublasComputeType_t computeType,
                    cublasGemmAlgo_t algo) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!valid_operation(transa) || !valid_operation(transb) || m < 0 || n < 0 || k < 0 || batchCount < 0 ||
        (algo != CUBLAS_GEMM_DEFAULT && algo != CUBLAS_GEMM_DEFAULT_TENSOR_OP) || !alpha || !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    int rows_a = transa == CUBLAS_OP_N ? m : k;
    int rows_b = transb == CUBLAS_OP_N ? k : n;
    if (lda < (rows_a > 1 ? rows_a : 1) || ldb < (rows_b > 1 ? rows_b : 1) || ldc < (m > 1 ? m : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    gemm_kind kind = kind_of(Atype, Btype, Ctype, computeType);
    if (kind == gemm_kind::unsupported) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m == 0 || n == 0 || batchCount == 0) return CUBLAS_STATUS_SUCCESS;
    if (!A || !B || !C) return CUBLAS_STATUS_INVALID_VALUE;
    tc_emulation::device_work work;
    CBLAS_TRANSPOSE ta = transa == CUBLAS_OP_N ? CblasNoTrans : CblasTrans;
    CBLAS_TRANSPOSE tb = transb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans;
    size_t ea = element_size(Atype), ec = element_size(Ctype);
    try {
        for (int i = 0; i < batchCount; i++) {
            const char *a = (const char *)A + (size_t)(i * strideA) * ea;
            const char *b = (const char *)B + (size_t)(i * strideB) * ea;
            char *c = (char *)C + (size_t)(i * strideC) * ec;
            if (kind == gemm_kind::single)
                cblas_sgemm(CblasColMajor, ta, tb, m, n, k, *(const float *)alpha, (const float *)a, lda,
                            (const float *)b, ldb, *(const float *)beta, (float *)c, ldc);
            else if (kind == gemm_kind::twice)
                cblas_dgemm(CblasColMajor, ta, tb, m, n, k, *(const double *)alpha, (const double *)a, lda,
                            (const double *)b, ldb, *(const double *)beta, (double *)c, ldc);
            else
                gemm_16bit_inputs(ta, tb, m, n, k, *(const float *)alpha, (const uint16_t *)a, Atype, lda,
                                  (const uint16_t *)b, ldb, *(const float *)beta, c, Ctype, ldc,
                                  !(handle->math & CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION));
        }
    } catch (const std::bad_alloc &) {
        return CUBLAS_STATUS_ALLOC_FAILED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

} /* namespace */

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    return gemm(handle, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0, beta, C, Ctype, ldc, 0, 1,
                computeType, algo);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                          int m, int n, int k, const void *alpha, const void *A, cudaDataType Atype,
                                          int lda, long long strideA, const void *B, cudaDataType Btype, int ldb,
                                          long long strideB, const void *beta, void *C, cudaDataType Ctype, int ldc,
                                          long long strideC, int batchCount, cublasComputeType_t computeType,
                                          cublasGemmAlgo_t algo) {
    return gemm(handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb, strideB, beta, C, Ctype,
                ldc, strideC, batchCount, computeType, algo);
}
