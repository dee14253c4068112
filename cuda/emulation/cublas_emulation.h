/*
 * cublas_emulation.h: the cuBLAS calls the backend makes, over OpenBLAS, for
 * the emulated build, with the real API's names, enum values and signatures
 * (cublas_api.h, library_types.h; spec/cuda_spec.lua compares them with the
 * toolkit's headers when it is installed). Arguments are checked as cuBLAS
 * checks them (leading dimensions, types, compute types, handle), so a wrong
 * call fails here the way it would on a GPU. TF32 is accepted but computed
 * in full float32. 16-bit operands (CUDA_R_16BF, CUDA_R_16F) are widened to
 * float32 exactly, multiplied and summed in float32 and, for a 16-bit C,
 * rounded once to nearest even with src/half.h's functions: the precision
 * of cuBLAS's CUBLAS_COMPUTE_32F on tensor cores, up to the order of the sums.
 */
#ifndef TRICYCLE_CUBLAS_EMULATION_H
#define TRICYCLE_CUBLAS_EMULATION_H

#include "cuda_emulation.h"

typedef struct tc_emulation_cublas *cublasHandle_t;

typedef enum cublasStatus_t {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_ARCH_MISMATCH = 8,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_INTERNAL_ERROR = 14,
    CUBLAS_STATUS_NOT_SUPPORTED = 15
} cublasStatus_t;

typedef enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;

typedef enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_64F = 1, CUDA_R_16F = 2, CUDA_R_16BF = 14 } cudaDataType;

typedef enum cublasComputeType_t {
    CUBLAS_COMPUTE_16F = 64,
    CUBLAS_COMPUTE_32F = 68,
    CUBLAS_COMPUTE_64F = 70,
    CUBLAS_COMPUTE_32F_FAST_TF32 = 77
} cublasComputeType_t;

typedef enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1, CUBLAS_GEMM_DEFAULT_TENSOR_OP = 99 } cublasGemmAlgo_t;

/* A mode, or'd with CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION: without
 * that flag cuBLAS may reduce split-K partial sums of a 16-bit C in C's
 * type, and the emulation then does (cublas.cc), so a backend that forgets
 * the flag differs from the CPU. */
typedef enum cublasMath_t {
    CUBLAS_DEFAULT_MATH = 0,
    CUBLAS_PEDANTIC_MATH = 2,
    CUBLAS_TF32_TENSOR_OP_MATH = 3,
    CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION = 16
} cublasMath_t;

cublasStatus_t cublasCreate(cublasHandle_t *handle);
cublasStatus_t cublasDestroy(cublasHandle_t handle);
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream);
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode);
const char *cublasGetStatusName(cublasStatus_t status);
const char *cublasGetStatusString(cublasStatus_t status);

/* Column-major C = alpha op(A) op(B) + beta C; alpha and beta are host
 * scalars of the compute type (float for 32F, double for 64F). Types: A, B
 * and C all CUDA_R_32F (CUBLAS_COMPUTE_32F or _FAST_TF32) or all CUDA_R_64F
 * (CUBLAS_COMPUTE_64F); or A and B both CUDA_R_16BF (or both CUDA_R_16F)
 * with C of the same type or CUDA_R_32F, CUBLAS_COMPUTE_32F. Any other
 * combination is CUBLAS_STATUS_NOT_SUPPORTED. Algorithms: the default ones. */
cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo);
/* The same for batchCount products, matrix i at A + i strideA (in elements)
 * and likewise for B and C. */
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                          int m, int n, int k, const void *alpha, const void *A, cudaDataType Atype,
                                          int lda, long long strideA, const void *B, cudaDataType Btype, int ldb,
                                          long long strideB, const void *beta, void *C, cudaDataType Ctype, int ldc,
                                          long long strideC, int batchCount, cublasComputeType_t computeType,
                                          cublasGemmAlgo_t algo);

#endif
