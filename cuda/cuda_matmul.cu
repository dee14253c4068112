/*
 * cuda_matmul.cu: GEMMs through cuBLAS (cublasGemmEx for one matrix,
 * cublasGemmStridedBatchedEx for a batch) on the context's stream. Float32
 * is computed in float32 unless TF32 was asked for (tc_set_cuda_tf32;
 * TRICYCLE_CUDA_TF32=1 from Lua); float64 in float64.
 *
 * 16-bit operands (gemm_16bit) go to cuBLAS as they are, CUDA_R_16BF or
 * CUDA_R_16F with CUBLAS_COMPUTE_32F: tensor cores on sm_80 and later,
 * exact products summed in float32, C float32 or rounded once to the
 * operands' dtype by cuBLAS. Under autocast (ctx->autocast: bf16 or
 * float16) a float32 product rounds both operands to the autocast dtype
 * first, one conversion kernel each into scratch (half.h's rounding, the
 * CPU's bits; float16 past 65504 is +-Inf), then takes the same 16-bit GEMM
 * (CUDA_R_16BF or CUDA_R_16F, CUBLAS_COMPUTE_32F) with a float32 C: what
 * the CPU computes under that autocast, up to the order of the sums. The
 * copies' rows are padded to 8 elements (16 bytes), so their
 * leading dimensions and the scratch's 256-byte alignment fit the tensor
 * cores' fastest kernels whatever the shapes; a 16-bit tensor read in place
 * may have any leading dimension and 2-byte alignment, which cuBLAS accepts
 * (with other kernels when the fast ones' 16-byte alignment is not met).
 * Scalars alpha and beta are host floats (the handle's default pointer
 * mode), of the compute type.
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

#include "../src/half.h"

#include <limits.h>

static bool fits_int(int64_t value) { return value >= 0 && value <= INT_MAX; }

/* Row-major c = alpha op(a) op(b) + beta c for `batch` matrices, one cuBLAS
 * call; alpha and beta point at host scalars of the compute type. */
static tc_status cublas_product(tc_context *ctx, cudaDataType ab_type, cudaDataType c_type,
                                cublasComputeType_t compute, const void *alpha, const void *beta, bool transpose_a,
                                bool transpose_b, int64_t m, int64_t n, int64_t k, const void *a, int64_t lda,
                                int64_t stride_a, const void *b, int64_t ldb, int64_t stride_b, void *c, int64_t ldc,
                                int64_t stride_c, int64_t batch) {
    if (!fits_int(m) || !fits_int(n) || !fits_int(k) || !fits_int(lda) || !fits_int(ldb) || !fits_int(ldc) ||
        !fits_int(batch))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "matmul: a dimension exceeds cuBLAS's 32-bit limit");
    if (m == 0 || n == 0 || batch == 0) return TC_OK;
    cublasHandle_t handle = cuda_state_of(ctx)->cublas;
    cublasOperation_t first = transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t second = transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasStatus_t status =
        batch == 1 ? cublasGemmEx(handle, first, second, (int)n, (int)m, (int)k, alpha, b, ab_type, (int)ldb, a,
                                  ab_type, (int)lda, beta, c, c_type, (int)ldc, compute, CUBLAS_GEMM_DEFAULT)
                   : cublasGemmStridedBatchedEx(handle, first, second, (int)n, (int)m, (int)k, alpha, b, ab_type,
                                                (int)ldb, (long long)stride_b, a, ab_type, (int)lda,
                                                (long long)stride_a, beta, c, c_type, (int)ldc, (long long)stride_c,
                                                (int)batch, compute, CUBLAS_GEMM_DEFAULT);
    if (status != CUBLAS_STATUS_SUCCESS)
        return tc_fail(ctx, TC_ERROR_STATE,
                       "matmul: cuBLAS failed with %s (m %lld, n %lld, k %lld, lda %lld, ldb %lld, ldc %lld, batch "
                       "%lld)",
                       cublasGetStatusString(status), (long long)m, (long long)n, (long long)k, (long long)lda,
                       (long long)ldb, (long long)ldc, (long long)batch);
    return TC_OK;
}

/* `count` row-major float32 matrices of rows x cols (leading dimension ld,
 * `stride` apart) rounded to bf16 (float16 when `float16`) into packed ones
 * (leading dimension out_ld, rows * out_ld apart); the padding columns are
 * not written. */
__global__ void round_to_16bit_kernel(const float *x, int64_t ld, int64_t stride, int64_t rows, int64_t cols,
                                      int64_t count, bool float16, uint16_t *out, int64_t out_ld) {
    int64_t per_matrix = rows * cols, total = count * per_matrix;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t matrix = i / per_matrix, rest = i - matrix * per_matrix;
        int64_t row = rest / cols, column = rest - row * cols;
        float value = x[matrix * stride + row * ld + column];
        out[(matrix * rows + row) * out_ld + column] =
            float16 ? tc_float_to_float16(value) : tc_float_to_bfloat16(value);
    }
}

/* A float32 operand's 16-bit copy in scratch: its matrices as gemm reads
 * them (rows x cols stored, each; none empty), one copy when the batch
 * shares one (stride 0). */
typedef struct rounded_operand {
    uint16_t *data;
    size_t bytes;
    int64_t ld, stride;
} rounded_operand;

static tc_status round_operand(tc_context *ctx, tc_dtype dtype, const void *x, int64_t ld, int64_t stride,
                               int64_t rows, int64_t cols, int64_t batch, rounded_operand *out) {
    int64_t count = stride ? batch : 1, elements = 0;
    out->ld = (cols + 7) / 8 * 8;
    out->stride = stride ? rows * out->ld : 0;
    if (__builtin_mul_overflow(count, rows, &elements) || __builtin_mul_overflow(elements, out->ld, &elements) ||
        elements > (int64_t)(SIZE_MAX / sizeof(uint16_t)))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "matmul: autocast's %s copy of %lld matrices of %lld x %lld overflows",
                       tc_dtype_name(dtype), (long long)count, (long long)rows, (long long)cols);
    out->bytes = (size_t)elements * sizeof(uint16_t);
    out->data = static_cast<uint16_t *>(cuda_scratch_allocate(ctx, out->bytes));
    if (!out->data) return TC_ERROR_MEMORY;
    TC_LAUNCH(round_to_16bit_kernel, cuda_blocks_for(count * rows * cols), CUDA_BLOCK, 0, cuda_stream_of(ctx),
              static_cast<const float *>(x), ld, stride, rows, cols, count, dtype == TC_FLOAT16, out->data, out->ld);
    return cuda_check_launch(ctx, "matmul");
}

/* A float32 product under autocast: both operands rounded to copies of the
 * autocast dtype (TC_BFLOAT16 or TC_FLOAT16), then that 16-bit GEMM into
 * float32 c. */
static tc_status autocast_gemm(tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m,
                               int64_t n, int64_t k, float alpha, const void *a, int64_t lda, int64_t stride_a,
                               const void *b, int64_t ldb, int64_t stride_b, float beta, void *c, int64_t ldc,
                               int64_t stride_c, int64_t batch) {
    rounded_operand left = {NULL, 0, 0, 0}, right = {NULL, 0, 0, 0};
    tc_status status =
        round_operand(ctx, dtype, a, lda, stride_a, transpose_a ? k : m, transpose_a ? m : k, batch, &left);
    if (status == TC_OK)
        status = round_operand(ctx, dtype, b, ldb, stride_b, transpose_b ? n : k, transpose_b ? k : n, batch, &right);
    if (status == TC_OK)
        status = cublas_product(ctx, dtype == TC_FLOAT16 ? CUDA_R_16F : CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F,
                                &alpha, &beta, transpose_a, transpose_b, m, n, k, left.data, left.ld, left.stride,
                                right.data, right.ld, right.stride, c, ldc, stride_c, batch);
    /* the stream orders the GEMM before any later use of the blocks */
    if (left.data) cuda_scratch_release(ctx, left.data, left.bytes);
    if (right.data) cuda_scratch_release(ctx, right.data, right.bytes);
    return status;
}

extern "C" tc_status cuda_gemm(tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m,
                               int64_t n, int64_t k, double alpha, const void *a, int64_t lda, int64_t stride_a,
                               const void *b, int64_t ldb, int64_t stride_b, double beta, void *c, int64_t ldc,
                               int64_t stride_c, int64_t batch) {
    if (!fits_int(m) || !fits_int(n) || !fits_int(k) || !fits_int(lda) || !fits_int(ldb) || !fits_int(ldc) ||
        !fits_int(batch))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "matmul: a dimension exceeds cuBLAS's 32-bit limit");
    if (m == 0 || n == 0 || batch == 0) return TC_OK;
    float alpha32 = (float)alpha, beta32 = (float)beta;
    if (dtype == TC_FLOAT32 && ctx->autocast != TC_FLOAT32 && k > 0)
        return autocast_gemm(ctx, ctx->autocast, transpose_a, transpose_b, m, n, k, alpha32, a, lda, stride_a, b, ldb,
                             stride_b, beta32, c, ldc, stride_c, batch);
    if (dtype == TC_FLOAT32)
        return cublas_product(ctx, CUDA_R_32F, CUDA_R_32F,
                              cuda_state_of(ctx)->allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
                              &alpha32, &beta32, transpose_a, transpose_b, m, n, k, a, lda, stride_a, b, ldb,
                              stride_b, c, ldc, stride_c, batch);
    if (dtype == TC_FLOAT64)
        return cublas_product(ctx, CUDA_R_64F, CUDA_R_64F, CUBLAS_COMPUTE_64F, &alpha, &beta, transpose_a,
                              transpose_b, m, n, k, a, lda, stride_a, b, ldb, stride_b, c, ldc, stride_c, batch);
    return tc_fail(ctx, TC_ERROR_DTYPE, "matmul: dtype %s is not supported (float32 or float64)", tc_dtype_name(dtype));
}

static bool cublas_16bit_type(tc_dtype dtype, cudaDataType *type) {
    if (dtype == TC_BFLOAT16) *type = CUDA_R_16BF;
    else if (dtype == TC_FLOAT16) *type = CUDA_R_16F;
    else return false;
    return true;
}

extern "C" tc_status cuda_gemm_16bit(tc_context *ctx, tc_dtype dtype, tc_dtype c_dtype, bool transpose_a,
                                     bool transpose_b, int64_t m, int64_t n, int64_t k, double alpha, const void *a,
                                     int64_t lda, int64_t stride_a, const void *b, int64_t ldb, int64_t stride_b,
                                     double beta, void *c, int64_t ldc, int64_t stride_c, int64_t batch) {
    cudaDataType ab_type = CUDA_R_32F, c_type = CUDA_R_32F;
    if (!cublas_16bit_type(dtype, &ab_type) || (c_dtype != dtype && c_dtype != TC_FLOAT32))
        return tc_fail(ctx, TC_ERROR_DTYPE, "matmul: 16-bit GEMM of %s operands into %s is not supported",
                       tc_dtype_name(dtype), tc_dtype_name(c_dtype));
    if (c_dtype == dtype) c_type = ab_type;
    float alpha32 = (float)alpha, beta32 = (float)beta;
    return cublas_product(ctx, ab_type, c_type, CUBLAS_COMPUTE_32F, &alpha32, &beta32, transpose_a, transpose_b, m, n,
                          k, a, lda, stride_a, b, ldb, stride_b, c, ldc, stride_c, batch);
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
