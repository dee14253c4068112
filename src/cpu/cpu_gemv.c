/*
 * cpu_gemv.c: matrix-vector products, split over the context's threads by
 * blocks of the output (rows of op(a)); each output element is one dot over
 * the whole of x, in a split that depends only on the sizes and the thread
 * count. Float32 uses cpu_sgemv (AVX-512, about 1.5x OpenBLAS's AVX2 GEMV
 * on config B's weights) when the context uses cpu_sgemm, else the BLAS. Used for one-row products (decoding),
 * where a GEMM would spend most of its time packing the matrix.
 */
#include "cpu_fused.h"

#include "cpu_backend.h"

#include "cpu_iterate.h"

#include "cpu_sgemm.h"

#include <cblas.h>

/* Output blocks are multiples of this many elements. */
#define GEMV_BLOCK 64
/* Below this many multiply-adds per chunk a second thread does not pay. */
#define GEMV_CHUNK_WORK ((int64_t)1 << 16)

typedef struct gemv_job {
    tc_dtype dtype;
    bool transpose;
    bool native; /* float32 through cpu_sgemv */
    int64_t m, n, lda;
    double alpha, beta;
    const void *a, *x;
    void *y;
} gemv_job;

/* Output blocks [begin, end) of GEMV_BLOCK elements. */
static void gemv_blocks(int64_t begin, int64_t end, void *argument) {
    const gemv_job *job = argument;
    int64_t outputs = job->transpose ? job->n : job->m, inner = job->transpose ? job->m : job->n;
    int64_t first = begin * GEMV_BLOCK, last = end * GEMV_BLOCK < outputs ? end * GEMV_BLOCK : outputs;
    int64_t count = last - first;
    /* Rows of a (no transpose) or columns of a (transpose) first .. last-1. */
    int64_t offset = job->transpose ? first : first * job->lda;
    if (job->dtype == TC_FLOAT32) {
        const float *a = (const float *)job->a + offset;
        float *y = (float *)job->y + first;
        if (job->native)
            cpu_sgemv(job->transpose, job->transpose ? inner : count, job->transpose ? count : inner,
                      (float)job->alpha, a, job->lda, job->x, (float)job->beta, y);
        else if (job->transpose)
            cblas_sgemv(CblasRowMajor, CblasTrans, (int)inner, (int)count, (float)job->alpha, a, (int)job->lda,
                        job->x, 1, (float)job->beta, y, 1);
        else
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)count, (int)inner, (float)job->alpha, a, (int)job->lda,
                        job->x, 1, (float)job->beta, y, 1);
    } else {
        const double *a = (const double *)job->a + offset;
        double *y = (double *)job->y + first;
        if (job->transpose)
            cblas_dgemv(CblasRowMajor, CblasTrans, (int)inner, (int)count, job->alpha, a, (int)job->lda, job->x, 1,
                        job->beta, y, 1);
        else
            cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)count, (int)inner, job->alpha, a, (int)job->lda, job->x, 1,
                        job->beta, y, 1);
    }
}

tc_status cpu_gemv(tc_context *ctx, tc_dtype dtype, bool transpose, int64_t m, int64_t n, double alpha, const void *a,
                   int64_t lda, const void *x, double beta, void *y) {
    if (m > INT32_MAX || n > INT32_MAX || lda > INT32_MAX)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "gemv: a dimension exceeds BLAS's 32-bit limit");
    cpu_blas_single_threaded();
    gemv_job job = {.dtype = dtype, .transpose = transpose, .native = dtype == TC_FLOAT32 && ctx->native_sgemm,
                    .m = m, .n = n, .lda = lda, .alpha = alpha, .beta = beta, .a = a, .x = x, .y = y};
    int64_t outputs = transpose ? n : m, inner = transpose ? m : n;
    int64_t blocks = (outputs + GEMV_BLOCK - 1) / GEMV_BLOCK;
    int64_t block_work = GEMV_BLOCK * (inner > 0 ? inner : 1);
    int64_t grain = GEMV_CHUNK_WORK / block_work;
    cpu_parallel_for(ctx, blocks, grain > 0 ? grain : 1, gemv_blocks, &job);
    return TC_OK;
}
