/*
 * cpu_matmul.c: batched GEMM, split over the context's worker pool. Each
 * chunk runs our AVX-512 float32 GEMM (cpu_sgemm.c) when the context uses
 * it (ctx->native_sgemm: the CPU has AVX-512 and TRICYCLE_SGEMM is not
 * "blas"), else the BLAS (row-major cblas); float64 always uses the BLAS.
 *
 * One pool runs on the cores, never two: OpenBLAS is kept single-threaded
 * and the context's pool calls it once per chunk, over the batch when there
 * are enough matrices, else over row blocks of op(a) (or column blocks of
 * op(b) when the output is wide and short). Measured on the 2-core AVX-512
 * machine (OpenBLAS 0.3.21), 2 threads, the 15 GEMM shapes of a config A
 * and config B GPT step (forward, both backward products, attention
 * batches), sum of per-shape medians: this split 199 ms against 349 ms for
 * OpenBLAS's own threads (our pool asleep), e.g. [2048x384]@[384x1536]
 * 27 ms against 52, [1024x128]@[128x384] 1.3 against 2.7; on a loaded
 * machine, three alternated runs gave 422/642, 690/957 and 771/819 ms.
 * OpenBLAS's pool also spins in sched_yield after each call, which took a
 * core from everything else (16% of a step's time). OpenBLAS's thread count
 * is process-wide: every context sets the same value (1), so contexts on
 * several threads cannot undo one another, and each context's parallelism
 * is its own pool's. When the BLAS is not OpenBLAS the weak symbols are
 * absent and nothing is set.
 */
#include "cpu_backend.h"

#include "cpu_elementwise_f32.h"
#include "cpu_sgemm.h"

#include <cblas.h>
#include <string.h>

#pragma weak openblas_set_num_threads
#pragma weak openblas_get_num_threads

void cpu_blas_single_threaded(void) {
    if (openblas_get_num_threads && openblas_set_num_threads && openblas_get_num_threads() != 1)
        openblas_set_num_threads(1);
}

/* Blocks of op(a)'s rows (or op(b)'s columns) are multiples of this, the
 * height of OpenBLAS's AVX-512 micro-tiles, so no chunk gets a ragged edge
 * the whole-matrix call would not have. */
#define SPLIT_ALIGNMENT 16
/* Below this many multiply-adds per chunk the wake-up costs more than the
 * second core gives. */
#define MINIMUM_CHUNK_WORK ((int64_t)1 << 17)

typedef struct gemm_job {
    tc_dtype dtype;
    bool native; /* float32 through cpu_sgemm */
    enum CBLAS_TRANSPOSE ta, tb;
    int64_t m, n, k, lda, ldb, ldc, stride_a, stride_b, stride_c;
    double alpha, beta;
    const char *a, *b;
    const char *bias; /* [n], added to every row of c (beta 0), or NULL */
    char *gelu;       /* GELU(c), laid out like c, or NULL (float32 with cpu_sgemm only) */
    char *c;
    size_t element;
    enum { SPLIT_BATCH, SPLIT_ROWS, SPLIT_COLUMNS } split;
    int64_t units; /* what the chunks divide: matrices, or blocks of rows / columns */
    float *scratch;          /* cpu_sgemm's packing space, scratch_floats per chunk, or NULL */
    int64_t scratch_floats;
} gemm_job;

/* One product of m rows and n columns; bias and gelu (when the job has
 * them) are at the block's first column and element. */
static void gemm_one(const gemm_job *job, const char *a, const char *b, const char *bias, char *c, char *gelu,
                     int64_t m, int64_t n, float *scratch) {
    if (m <= 0 || n <= 0) return;
    if (job->native && cpu_sgemm(job->ta == CblasTrans, job->tb == CblasTrans, m, n, job->k, (float)job->alpha,
                                 (const float *)a, job->lda, (const float *)b, job->ldb, (float)job->beta,
                                 (const float *)bias, (float *)c, job->ldc, (float *)gelu, scratch))
        return;
    double beta = job->beta;
    if (bias) { /* the BLAS adds to rows that start as the bias */
        for (int64_t i = 0; i < m; i++)
            memcpy(c + (size_t)(i * job->ldc) * job->element, bias, (size_t)n * job->element);
        beta = 1.0;
    }
    if (job->dtype == TC_FLOAT32) {
        cblas_sgemm(CblasRowMajor, job->ta, job->tb, (int)m, (int)n, (int)job->k, (float)job->alpha,
                    (const float *)a, (int)job->lda, (const float *)b, (int)job->ldb, (float)beta, (float *)c,
                    (int)job->ldc);
        for (int64_t i = 0; gelu && i < m; i++) /* the element-wise op's loop: its bits */
            f32_unary(TC_GELU_TANH, (const float *)c + i * job->ldc, (float *)gelu + i * job->ldc, n);
    } else
        cblas_dgemm(CblasRowMajor, job->ta, job->tb, (int)m, (int)n, (int)job->k, job->alpha, (const double *)a,
                    (int)job->lda, (const double *)b, (int)job->ldb, beta, (double *)c, (int)job->ldc);
}

static void gemm_chunk(int chunk, int64_t begin, int64_t end, void *argument) {
    const gemm_job *job = argument;
    size_t e = job->element;
    float *scratch = job->scratch ? job->scratch + chunk * job->scratch_floats : NULL;
    if (job->split == SPLIT_BATCH) {
        for (int64_t i = begin; i < end; i++)
            gemm_one(job, job->a + (size_t)(i * job->stride_a) * e, job->b + (size_t)(i * job->stride_b) * e,
                     job->bias, job->c + (size_t)(i * job->stride_c) * e,
                     job->gelu ? job->gelu + (size_t)(i * job->stride_c) * e : NULL, job->m, job->n, scratch);
        return;
    }
    int64_t first = begin * SPLIT_ALIGNMENT, last = end * SPLIT_ALIGNMENT;
    if (job->split == SPLIT_ROWS) {
        if (last > job->m) last = job->m;
        /* Rows of op(a): rows of a, or columns of a when transposed. */
        size_t a_offset = (size_t)(job->ta == CblasNoTrans ? first * job->lda : first) * e;
        size_t c_offset = (size_t)(first * job->ldc) * e;
        gemm_one(job, job->a + a_offset, job->b, job->bias, job->c + c_offset, job->gelu ? job->gelu + c_offset : NULL,
                 last - first, job->n, scratch);
    } else {
        if (last > job->n) last = job->n;
        /* Columns of op(b): columns of b, or rows of b when transposed. */
        size_t b_offset = (size_t)(job->tb == CblasNoTrans ? first : first * job->ldb) * e;
        gemm_one(job, job->a, job->b + b_offset, job->bias ? job->bias + (size_t)first * e : NULL,
                 job->c + (size_t)first * e, job->gelu ? job->gelu + (size_t)first * e : NULL, job->m, last - first,
                 scratch);
    }
}

/* Batches of at least one matrix per thread split over the batch (no
 * synchronisation inside a matrix); a single matrix splits over the longer
 * of op(a)'s rows and op(b)'s columns, so each chunk keeps the whole K
 * (every output element is one BLAS dot product, the same as unsplit). */
static void choose_split(gemm_job *job, int64_t batch, int threads) {
    if (batch >= threads) {
        job->split = SPLIT_BATCH;
        job->units = batch;
    } else if (job->m >= job->n) {
        job->split = SPLIT_ROWS;
        job->units = (job->m + SPLIT_ALIGNMENT - 1) / SPLIT_ALIGNMENT;
    } else {
        job->split = SPLIT_COLUMNS;
        job->units = (job->n + SPLIT_ALIGNMENT - 1) / SPLIT_ALIGNMENT;
    }
}

static tc_status check_gemm(tc_context *ctx, tc_dtype dtype, int64_t m, int64_t n, int64_t k, int64_t lda,
                            int64_t ldb, int64_t ldc) {
    if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX || lda > INT32_MAX || ldb > INT32_MAX || ldc > INT32_MAX)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "matmul: a dimension exceeds BLAS's 32-bit limit");
    if (dtype != TC_FLOAT32 && dtype != TC_FLOAT64)
        return tc_fail(ctx, TC_ERROR_DTYPE, "matmul: dtype %s is not supported (float32 or float64)",
                       tc_dtype_name(dtype));
    return TC_OK;
}

/* One matrix split over rows with cpu_sgemm: op(b) is packed once, its
 * panels shared out between the threads, then each thread multiplies its
 * rows from the shared panels (instead of every chunk packing all of op(b)
 * for itself). Up to this many floats of packed op(b). */
#define SHARED_PACK_LIMIT ((int64_t)1 << 23)

typedef struct shared_pack_job {
    const gemm_job *gemm;
    float *packed;
} shared_pack_job;

static void pack_panels(int64_t begin, int64_t end, void *argument) {
    const shared_pack_job *job = argument;
    const gemm_job *g = job->gemm;
    cpu_sgemm_pack(g->tb == CblasTrans, g->n, g->k, (const float *)g->b, g->ldb, job->packed, begin, end);
}

static void packed_rows(int64_t begin, int64_t end, void *argument) {
    const shared_pack_job *job = argument;
    const gemm_job *g = job->gemm;
    int64_t first = begin * SPLIT_ALIGNMENT, last = end * SPLIT_ALIGNMENT < g->m ? end * SPLIT_ALIGNMENT : g->m;
    const float *a = (const float *)g->a + (g->ta == CblasNoTrans ? first * g->lda : first);
    float *gelu = g->gelu ? (float *)g->gelu + first * g->ldc : NULL;
    cpu_sgemm_packed(g->ta == CblasTrans, last - first, g->n, g->k, (float)g->alpha, a, g->lda, job->packed,
                     (float)g->beta, (const float *)g->bias, (float *)g->c + first * g->ldc, g->ldc, gelu);
}

static bool shares_packing(const gemm_job *job, int64_t batch, int64_t chunks) {
    return job->native && batch == 1 && job->split == SPLIT_ROWS && chunks > 1 && job->k > 0 && job->alpha != 0.0 &&
           cpu_sgemm_packed_floats(job->n, job->k) <= SHARED_PACK_LIMIT;
}

/* Runs the job's `batch` products over the context's pool. */
static tc_status run_gemm(tc_context *ctx, gemm_job *job, int64_t batch) {
    cpu_blas_single_threaded();
    int threads = ctx->num_threads;
    choose_split(job, batch, threads);
    int64_t work = job->m * job->n * (job->k > 0 ? job->k : 1) * batch;
    int64_t chunks = work / MINIMUM_CHUNK_WORK;
    if (chunks > threads) chunks = threads;
    int64_t grain = chunks > 1 ? job->units / chunks : job->units;
    if (grain < 1) grain = 1;
    if (!shares_packing(job, batch, chunks)) {
        /* each chunk packs into its own scratch, from the context's cache
         * (no fresh pages in a steady loop) */
        size_t bytes = 0;
        if (job->native) {
            job->scratch_floats = cpu_sgemm_scratch_floats(job->n, job->k);
            bytes = sizeof(float) * (size_t)(job->scratch_floats * cpu_parallel_chunks(ctx, job->units, grain));
            job->scratch = bytes ? tc_allocate(ctx, bytes) : NULL;
            if (bytes && !job->scratch) return tc_last_status(ctx);
        }
        cpu_parallel_for_indexed(ctx, job->units, grain, gemm_chunk, job);
        if (job->scratch) tc_release_memory(ctx, job->scratch, bytes);
        return TC_OK;
    }
    size_t bytes = sizeof(float) * (size_t)cpu_sgemm_packed_floats(job->n, job->k);
    shared_pack_job shared = {job, tc_allocate(ctx, bytes)};
    if (!shared.packed) return tc_last_status(ctx);
    int64_t panels = cpu_sgemm_panel_count(job->n, job->k);
    cpu_parallel_for(ctx, panels, panels / chunks > 0 ? panels / chunks : 1, pack_panels, &shared);
    cpu_parallel_for(ctx, job->units, grain, packed_rows, &shared);
    tc_release_memory(ctx, shared.packed, bytes);
    return TC_OK;
}

/* The job of one product c = op(a) op(b) (alpha 1, beta 0, one matrix). */
static gemm_job product_job(const tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m,
                            int64_t n, int64_t k, const void *a, int64_t lda, const void *b, int64_t ldb, void *c,
                            int64_t ldc) {
    return (gemm_job){
        .dtype = dtype,
        .native = dtype == TC_FLOAT32 && ctx->native_sgemm,
        .ta = transpose_a ? CblasTrans : CblasNoTrans,
        .tb = transpose_b ? CblasTrans : CblasNoTrans,
        .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc,
        .alpha = 1.0, .beta = 0.0, .a = a, .b = b, .c = c,
        .element = tc_dtype_size(dtype),
    };
}

tc_status cpu_gemm(tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n,
                   int64_t k, double alpha, const void *a, int64_t lda, int64_t stride_a, const void *b, int64_t ldb,
                   int64_t stride_b, double beta, void *c, int64_t ldc, int64_t stride_c, int64_t batch) {
    TC_TRY(check_gemm(ctx, dtype, m, n, k, lda, ldb, ldc));
    gemm_job job = product_job(ctx, dtype, transpose_a, transpose_b, m, n, k, a, lda, b, ldb, c, ldc);
    job.alpha = alpha;
    job.beta = beta;
    job.stride_a = stride_a;
    job.stride_b = stride_b;
    job.stride_c = stride_c;
    return run_gemm(ctx, &job, batch);
}

tc_status cpu_gemm_bias(tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n,
                        int64_t k, const void *a, int64_t lda, const void *b, int64_t ldb, const void *bias, void *c,
                        int64_t ldc, void *gelu) {
    TC_TRY(check_gemm(ctx, dtype, m, n, k, lda, ldb, ldc));
    if (gelu && dtype != TC_FLOAT32)
        return tc_fail(ctx, TC_ERROR_DTYPE, "linear: the fused GELU output is float32 only, got %s",
                       tc_dtype_name(dtype));
    gemm_job job = product_job(ctx, dtype, transpose_a, transpose_b, m, n, k, a, lda, b, ldb, c, ldc);
    job.bias = bias;
    job.gelu = gelu;
    return run_gemm(ctx, &job, 1);
}
