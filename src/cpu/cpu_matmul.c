/*
 * cpu_matmul.c: the CPU's one GEMM dispatcher. Every product of the CPU
 * backend comes here: the gemm slot (matmul, linear's backward), gemm_bias
 * (linear and linear_gelu), gemv (one-row linear) and, through
 * cpu_matmul_in_task, the fused kernels' products. What runs a product:
 *  - float32, when the context uses it (ctx->native_sgemm: the CPU has
 *    AVX-512 and TRICYCLE_SGEMM is not "blas"), our cpu_sgemm / cpu_sgemv
 *    (cpu_sgemm.c); otherwise, and float64 always, the BLAS (row-major
 *    cblas);
 *  - 16-bit weights with up to CPU_HALF_GEMV_ROWS rows of x (decoding):
 *    cpu_bgemv_bf16_weight or cpu_float16_weight_gemv per row over blocks
 *    of the output, the weight read as it is;
 *  - float32 under bf16 autocast (ctx->autocast), and the bf16 weights of
 *    cpu_gemm_bf16_weight: cpu_bgemm (cpu_bgemm.c) on the context's path,
 *    float32 operands rounded to bf16 as they are packed (no copy, no
 *    extra pass), sums and output float32; a one-row gemv goes there too,
 *    as a GEMM of one row, so nothing under autocast runs in float32;
 *  - float32 under float16 autocast: both operands copied rounded to
 *    float16 and widened back (float32 copies holding float16 values, as
 *    gemm_16bit's float16 path makes), then the float32 product without
 *    autocast: products exact, sums float32; gemv as a GEMM of one row;
 *  - gemm_16bit (16-bit operands, exact products summed in float32, c
 *    float32 or rounded once): bf16 operands through cpu_bgemm as they are,
 *    float16 ones widened to float32 copies for a float32 product as above
 *    without autocast;
 *  - gemm and gemm_bias: split over the context's worker pool (below), one
 *    product per chunk; gemv: split by blocks of the output, one GEMV each;
 *  - a product inside a task of the pool (the fused kernels): one product
 *    on the calling thread, except that a float32 product of one row goes
 *    to the BLAS's GEMV, which reads op(b) once where a GEMM would pack it
 *    first and takes the strided x a transposed a gives (cpu_sgemv reads a
 *    contiguous x).
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
 *
 * GEMV output blocks: each output element is one dot over the whole of x,
 * in a split that depends only on the sizes and the thread count; cpu_sgemv
 * is about 1.5x OpenBLAS's AVX2 GEMV on config B's weights.
 */
#include "cpu_matmul.h"

#include "cpu_backend.h"
#include "cpu_bgemm.h"
#include "cpu_elementwise_f32.h"
#include "cpu_half.h"
#include "cpu_sgemm.h"

#include <cblas.h>
#include <string.h>

#pragma weak openblas_set_num_threads
#pragma weak openblas_get_num_threads

void cpu_blas_single_threaded(void) {
    if (openblas_get_num_threads && openblas_set_num_threads && openblas_get_num_threads() != 1)
        openblas_set_num_threads(1);
}

/* ---- one product on the calling thread ---- */

/* c = alpha op(a) op(b) + beta c of m x n, plus bias [n] on every row
 * (with beta 0) and gelu = GELU(c) (laid out like c; float32) when they are
 * not NULL. */
typedef struct product {
    tc_dtype dtype;
    bool native; /* float32 through cpu_sgemm */
    bool bf16;   /* float32 c through cpu_bgemm on bgemm_path, a of a_type and b of b_type */
    cpu_bgemm_path bgemm_path;
    cpu_bgemm_type a_type, b_type;
    bool transpose_a, transpose_b;
    int64_t m, n, k, lda, ldb, ldc;
    double alpha, beta;
    const void *a, *b, *bias;
    void *c, *gelu;
    void *scratch;  /* cpu_sgemm's or cpu_bgemm's packing space for (n, k) (product_scratch_bytes), or NULL */
    int *failed;    /* set when cpu_bgemm could not allocate (C untouched; never redone in float32) */
} product;

/* Bytes of one element of a and of b as stored. */
static size_t a_element(const product *p) {
    return p->bf16 && p->a_type == CPU_BGEMM_BF16 ? sizeof(uint16_t) : tc_dtype_size(p->dtype);
}

static size_t b_element(const product *p) {
    return p->bf16 && p->b_type == CPU_BGEMM_BF16 ? sizeof(uint16_t) : tc_dtype_size(p->dtype);
}

static void product_run(const product *p) {
    if (p->m <= 0 || p->n <= 0) return;
    if (p->bf16) {
        if (!cpu_bgemm(p->bgemm_path, p->transpose_a, p->transpose_b, p->m, p->n, p->k, (float)p->alpha,
                       p->a_type, p->a, p->lda, p->b_type, p->b, p->ldb, (float)p->beta, p->bias, p->c, p->ldc,
                       p->gelu, p->scratch))
            __atomic_store_n(p->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    if (p->native && cpu_sgemm(p->transpose_a, p->transpose_b, p->m, p->n, p->k, (float)p->alpha, p->a, p->lda, p->b,
                               p->ldb, (float)p->beta, p->bias, p->c, p->ldc, p->gelu, p->scratch))
        return;
    enum CBLAS_TRANSPOSE ta = p->transpose_a ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = p->transpose_b ? CblasTrans : CblasNoTrans;
    double beta = p->beta;
    if (p->bias) { /* the BLAS adds to rows that start as the bias */
        size_t element = tc_dtype_size(p->dtype);
        for (int64_t i = 0; i < p->m; i++)
            memcpy((char *)p->c + (size_t)(i * p->ldc) * element, p->bias, (size_t)p->n * element);
        beta = 1.0;
    }
    if (p->dtype == TC_FLOAT32) {
        cblas_sgemm(CblasRowMajor, ta, tb, (int)p->m, (int)p->n, (int)p->k, (float)p->alpha, p->a, (int)p->lda, p->b,
                    (int)p->ldb, (float)beta, p->c, (int)p->ldc);
        for (int64_t i = 0; p->gelu && i < p->m; i++) /* the element-wise op's loop: its bits */
            f32_unary(TC_GELU_TANH, (const float *)p->c + i * p->ldc, (float *)p->gelu + i * p->ldc, p->n);
    } else
        cblas_dgemm(CblasRowMajor, ta, tb, (int)p->m, (int)p->n, (int)p->k, p->alpha, p->a, (int)p->lda, p->b,
                    (int)p->ldb, beta, p->c, (int)p->ldc);
}

/* y = alpha op(a) x + beta y for a [m, n] (op(a) = a^T when transpose), x
 * every incx elements; y not read when beta is 0. */
static void gemv_run(tc_dtype dtype, bool native, bool transpose, int64_t m, int64_t n, double alpha, const void *a,
                     int64_t lda, const void *x, int64_t incx, double beta, void *y) {
    enum CBLAS_TRANSPOSE op = transpose ? CblasTrans : CblasNoTrans;
    if (dtype == TC_FLOAT64)
        cblas_dgemv(CblasRowMajor, op, (int)m, (int)n, alpha, a, (int)lda, x, (int)incx, beta, y, 1);
    else if (native && incx == 1)
        cpu_sgemv(transpose, m, n, (float)alpha, a, lda, x, (float)beta, y);
    else
        cblas_sgemv(CblasRowMajor, op, (int)m, (int)n, (float)alpha, a, (int)lda, x, (int)incx, (float)beta, y, 1);
}

void cpu_matmul_in_task(tc_dtype dtype, bool native, bool transpose_a, bool transpose_b, int64_t m, int64_t n,
                        int64_t k, double alpha, const void *a, int64_t lda, const void *b, int64_t ldb, double beta,
                        void *c, int64_t ldc) {
    if (dtype == TC_FLOAT32 && m == 1 && k > 0) { /* c[n] = alpha op(b)^T a + beta c, a strided when transposed */
        gemv_run(dtype, false, !transpose_b, transpose_b ? n : k, transpose_b ? k : n, alpha, b, ldb, a,
                 transpose_a ? lda : 1, beta, c);
        return;
    }
    product p = {.dtype = dtype, .native = native && dtype == TC_FLOAT32, .transpose_a = transpose_a,
                 .transpose_b = transpose_b, .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc,
                 .alpha = alpha, .beta = beta, .a = a, .b = b, .c = c};
    product_run(&p);
}

/* ---- gemm and gemm_bias: products split over the pool ---- */

/* Blocks of op(a)'s rows (or op(b)'s columns) are multiples of this, the
 * height of OpenBLAS's AVX-512 micro-tiles, so no chunk gets a ragged edge
 * the whole-matrix call would not have. */
#define SPLIT_ALIGNMENT 16
/* Below this many multiply-adds per chunk the wake-up costs more than the
 * second core gives. */
#define MINIMUM_CHUNK_WORK ((int64_t)1 << 17)

typedef struct gemm_job {
    product whole; /* the first matrix's product, bias and gelu included */
    int64_t stride_a, stride_b, stride_c;
    enum { SPLIT_BATCH, SPLIT_ROWS, SPLIT_COLUMNS } split;
    int64_t units; /* what the chunks divide: matrices, or blocks of rows / columns */
    char *scratch;  /* packing space, scratch_bytes per chunk, or NULL */
    int64_t scratch_bytes;
    int failed;     /* a cpu_bgemm chunk could not allocate */
} gemm_job;

/* Packing space one chunk's product needs (0: none). */
static int64_t product_scratch_bytes(const product *p) {
    if (p->bf16) return p->bgemm_path == CPU_BGEMM_FALLBACK ? 0 : cpu_bgemm_scratch_bytes(p->n, p->k);
    return p->native ? (int64_t)sizeof(float) * cpu_sgemm_scratch_floats(p->n, p->k) : 0;
}

static void gemm_chunk(int chunk, int64_t begin, int64_t end, void *argument) {
    const gemm_job *job = argument;
    const product *whole = &job->whole;
    size_t e = tc_dtype_size(whole->dtype), ea = a_element(whole), eb = b_element(whole);
    product p = *whole;
    p.scratch = job->scratch ? job->scratch + chunk * job->scratch_bytes : NULL;
    if (job->split == SPLIT_BATCH) {
        for (int64_t i = begin; i < end; i++) {
            p.a = (const char *)whole->a + (size_t)(i * job->stride_a) * ea;
            p.b = (const char *)whole->b + (size_t)(i * job->stride_b) * eb;
            p.c = (char *)whole->c + (size_t)(i * job->stride_c) * e;
            p.gelu = whole->gelu ? (char *)whole->gelu + (size_t)(i * job->stride_c) * e : NULL;
            product_run(&p);
        }
        return;
    }
    int64_t first = begin * SPLIT_ALIGNMENT, last = end * SPLIT_ALIGNMENT;
    if (job->split == SPLIT_ROWS) {
        if (last > whole->m) last = whole->m;
        /* Rows of op(a): rows of a, or columns of a when transposed. */
        size_t c_offset = (size_t)(first * whole->ldc) * e;
        p.a = (const char *)whole->a + (size_t)(whole->transpose_a ? first : first * whole->lda) * ea;
        p.c = (char *)whole->c + c_offset;
        p.gelu = whole->gelu ? (char *)whole->gelu + c_offset : NULL;
        p.m = last - first;
    } else {
        if (last > whole->n) last = whole->n;
        /* Columns of op(b): columns of b, or rows of b when transposed. */
        p.b = (const char *)whole->b + (size_t)(whole->transpose_b ? first * whole->ldb : first) * eb;
        p.bias = whole->bias ? (const char *)whole->bias + (size_t)first * e : NULL;
        p.c = (char *)whole->c + (size_t)first * e;
        p.gelu = whole->gelu ? (char *)whole->gelu + (size_t)first * e : NULL;
        p.n = last - first;
    }
    product_run(&p);
}

/* Batches of at least one matrix per thread split over the batch (no
 * synchronisation inside a matrix); a single matrix splits over the longer
 * of op(a)'s rows and op(b)'s columns, so each chunk keeps the whole K
 * (every output element is one BLAS dot product, the same as unsplit). */
static void choose_split(gemm_job *job, int64_t batch, int threads) {
    int64_t m = job->whole.m, n = job->whole.n;
    if (batch >= threads) {
        job->split = SPLIT_BATCH;
        job->units = batch;
    } else if (m >= n) {
        job->split = SPLIT_ROWS;
        job->units = (m + SPLIT_ALIGNMENT - 1) / SPLIT_ALIGNMENT;
    } else {
        job->split = SPLIT_COLUMNS;
        job->units = (n + SPLIT_ALIGNMENT - 1) / SPLIT_ALIGNMENT;
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
    const product *whole;
    void *packed;
} shared_pack_job;

static void pack_panels(int64_t begin, int64_t end, void *argument) {
    const shared_pack_job *job = argument;
    const product *p = job->whole;
    if (p->bf16)
        cpu_bgemm_pack(p->bgemm_path, p->b_type, p->transpose_b, p->n, p->k, p->b, p->ldb, job->packed, begin, end);
    else
        cpu_sgemm_pack(p->transpose_b, p->n, p->k, p->b, p->ldb, job->packed, begin, end);
}

static void packed_rows(int64_t begin, int64_t end, void *argument) {
    const shared_pack_job *job = argument;
    const product *p = job->whole;
    int64_t first = begin * SPLIT_ALIGNMENT, last = end * SPLIT_ALIGNMENT < p->m ? end * SPLIT_ALIGNMENT : p->m;
    const void *a = (const char *)p->a + (size_t)(p->transpose_a ? first : first * p->lda) * a_element(p);
    float *gelu = p->gelu ? (float *)p->gelu + first * p->ldc : NULL;
    if (p->bf16) {
        if (!cpu_bgemm_packed(p->bgemm_path, p->a_type, p->transpose_a, last - first, p->n, p->k, (float)p->alpha, a,
                              p->lda, job->packed, (float)p->beta, p->bias, (float *)p->c + first * p->ldc, p->ldc,
                              gelu))
            __atomic_store_n(p->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    cpu_sgemm_packed(p->transpose_a, last - first, p->n, p->k, (float)p->alpha, a, p->lda, job->packed,
                     (float)p->beta, p->bias, (float *)p->c + first * p->ldc, p->ldc, gelu);
}

/* Bytes of op(b) packed once for all threads. */
static int64_t shared_pack_bytes(const product *p) {
    return p->bf16 ? cpu_bgemm_packed_bytes(p->n, p->k) : (int64_t)sizeof(float) * cpu_sgemm_packed_floats(p->n, p->k);
}

static bool shares_packing(const gemm_job *job, int64_t batch, int64_t chunks) {
    const product *p = &job->whole;
    bool packs = p->bf16 ? p->bgemm_path != CPU_BGEMM_FALLBACK : p->native;
    return packs && batch == 1 && job->split == SPLIT_ROWS && chunks > 1 && p->k > 0 && p->alpha != 0.0 &&
           shared_pack_bytes(p) >= 0 && shared_pack_bytes(p) <= (int64_t)sizeof(float) * SHARED_PACK_LIMIT;
}

static tc_status bgemm_failed(tc_context *ctx) {
    return tc_fail(ctx, TC_ERROR_MEMORY, "matmul: the bfloat16 GEMM could not allocate its packing buffers");
}

float *cpu_gemm_scratch(tc_context *ctx, size_t bytes) {
    if (bytes > ctx->gemm_scratch_bytes) {
        tc_host_release_uncached(ctx, ctx->gemm_scratch, ctx->gemm_scratch_bytes);
        ctx->gemm_scratch = tc_host_allocate(ctx, bytes);
        ctx->gemm_scratch_bytes = ctx->gemm_scratch ? bytes : 0;
        if (!ctx->gemm_scratch) return NULL;
    }
    return tc_memory_charge(ctx, TC_CPU, bytes) == TC_OK ? ctx->gemm_scratch : NULL;
}

/* Runs the job's `batch` products over the context's pool. */
static tc_status run_gemm(tc_context *ctx, gemm_job *job, int64_t batch) {
    cpu_blas_single_threaded();
    job->whole.failed = &job->failed;
    const product *p = &job->whole;
    int threads = ctx->num_threads;
    choose_split(job, batch, threads);
    int64_t work = p->m * p->n * (p->k > 0 ? p->k : 1) * batch;
    int64_t chunks = work / MINIMUM_CHUNK_WORK;
    if (chunks > threads) chunks = threads;
    int64_t grain = chunks > 1 ? job->units / chunks : job->units;
    if (grain < 1) grain = 1;
    if (!shares_packing(job, batch, chunks)) {
        /* each chunk packs into its own part of the context's packing space
         * (no fresh pages in a steady loop), sized for the columns it gets:
         * a split over columns needs 1/chunks of the whole's panels */
        product sized = *p;
        if (job->split == SPLIT_COLUMNS) {
            int64_t largest = cpu_parallel_largest_chunk(ctx, job->units, grain) * SPLIT_ALIGNMENT;
            if (largest < sized.n) sized.n = largest;
        }
        job->scratch_bytes = product_scratch_bytes(&sized);
        int64_t total = 0;
        if (job->scratch_bytes < 0 ||
            __builtin_mul_overflow(job->scratch_bytes, (int64_t)cpu_parallel_chunks(ctx, job->units, grain), &total))
            return tc_fail(ctx, TC_ERROR_ARGUMENT, "matmul: the packing space for n %lld, k %lld overflows",
                           (long long)p->n, (long long)p->k);
        size_t bytes = (size_t)total;
        job->scratch = bytes ? (char *)cpu_gemm_scratch(ctx, bytes) : NULL;
        if (bytes && !job->scratch) return tc_last_status(ctx);
        cpu_parallel_for_indexed(ctx, job->units, grain, gemm_chunk, job);
        if (job->scratch) tc_memory_discharge(ctx, bytes);
        return job->failed ? bgemm_failed(ctx) : TC_OK;
    }
    size_t bytes = (size_t)shared_pack_bytes(p);
    shared_pack_job shared = {p, tc_allocate(ctx, bytes)};
    if (!shared.packed) return tc_last_status(ctx);
    int64_t panels = p->bf16 ? cpu_bgemm_panel_count(p->n, p->k) : cpu_sgemm_panel_count(p->n, p->k);
    cpu_parallel_for(ctx, panels, panels / chunks > 0 ? panels / chunks : 1, pack_panels, &shared);
    cpu_parallel_for(ctx, job->units, grain, packed_rows, &shared);
    tc_release_memory(ctx, shared.packed, bytes);
    return job->failed ? bgemm_failed(ctx) : TC_OK;
}

/* The job of one product c = op(a) op(b) (alpha 1, beta 0, one matrix). */
static gemm_job product_job(const tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m,
                            int64_t n, int64_t k, const void *a, int64_t lda, const void *b, int64_t ldb, void *c,
                            int64_t ldc) {
    return (gemm_job){.whole = {.dtype = dtype, .native = dtype == TC_FLOAT32 && ctx->native_sgemm,
                                .bf16 = dtype == TC_FLOAT32 && ctx->autocast == TC_BFLOAT16,
                                .bgemm_path = (cpu_bgemm_path)ctx->bgemm_path, .a_type = CPU_BGEMM_F32,
                                .b_type = CPU_BGEMM_F32,
                                .transpose_a = transpose_a, .transpose_b = transpose_b, .m = m, .n = n, .k = k,
                                .lda = lda, .ldb = ldb, .ldc = ldc, .alpha = 1.0, .beta = 0.0, .a = a, .b = b,
                                .c = c}};
}

/* Elements of `count` packed rows x cols matrices, or -1 past int64. */
static int64_t packed_elements(int64_t count, int64_t rows, int64_t cols) {
    int64_t total;
    if (__builtin_mul_overflow(count, rows, &total) || __builtin_mul_overflow(total, cols, &total)) return -1;
    return total;
}

/* Float16 values (nearest even; past 65504 +-Inf) held as float32 at a time. */
#define FLOAT16_ROUNDING_RUN 256
/* Below this many elements per chunk a second thread does not pay. */
#define ROUNDING_CHUNK_ELEMENTS ((int64_t)1 << 15)

/* `count` matrices of rows x cols float32 (leading dimension ld, `stride`
 * elements apart) to copy into packed float32 ones of their values rounded
 * to float16 (leading dimension cols, rows * cols apart). */
typedef struct float16_rounding {
    const float *x;
    int64_t ld, stride, rows, cols;
    float *out;
    bool vector;
} float16_rounding;

/* Rows [begin, end) of all the matrices' rows, counted matrix after matrix. */
static void round_rows_to_float16(int64_t begin, int64_t end, void *argument) {
    const float16_rounding *job = argument;
    uint16_t run[FLOAT16_ROUNDING_RUN];
    for (int64_t row = begin; row < end; row++) {
        const float *x = job->x + row / job->rows * job->stride + row % job->rows * job->ld;
        float *out = job->out + row * job->cols;
        for (int64_t j = 0; j < job->cols; j += FLOAT16_ROUNDING_RUN) {
            int64_t length = job->cols - j < FLOAT16_ROUNDING_RUN ? job->cols - j : FLOAT16_ROUNDING_RUN;
            cpu_float_to_half(TC_FLOAT16, x + j, run, length, job->vector);
            cpu_half_to_float(TC_FLOAT16, run, out + j, length, job->vector);
        }
    }
}

static void round_matrices_to_float16(tc_context *ctx, const float *x, int64_t ld, int64_t stride, int64_t count,
                                      int64_t rows, int64_t cols, float *out) {
    float16_rounding job = {x, ld, stride, rows, cols, out, cpu_half_vector_available()};
    int64_t grain = ROUNDING_CHUNK_ELEMENTS / cols;
    cpu_parallel_for(ctx, count * rows, grain > 0 ? grain : 1, round_rows_to_float16, &job);
}

/* run_gemm for a float32 job under float16 autocast (ctx->autocast): the
 * operands go to float16-rounded float32 copies and the float32 product
 * runs on those (what gemm_16bit does for float16 operands); any other job
 * runs as it is. */
static tc_status run_gemm_autocast(tc_context *ctx, gemm_job *job, int64_t batch) {
    product *p = &job->whole;
    if (p->dtype != TC_FLOAT32 || ctx->autocast != TC_FLOAT16 || p->m <= 0 || p->n <= 0 || p->k <= 0 || batch <= 0)
        return run_gemm(ctx, job, batch);
    int64_t rows_a = p->transpose_a ? p->k : p->m, cols_a = p->transpose_a ? p->m : p->k;
    int64_t rows_b = p->transpose_b ? p->n : p->k, cols_b = p->transpose_b ? p->k : p->n;
    int64_t count_a = job->stride_a ? batch : 1, count_b = job->stride_b ? batch : 1;
    int64_t elements_a = packed_elements(count_a, rows_a, cols_a);
    int64_t elements_b = packed_elements(count_b, rows_b, cols_b);
    int64_t total = -1;
    if (elements_a >= 0 && elements_b >= 0 && !__builtin_add_overflow(elements_a, elements_b, &total) &&
        total > (int64_t)(SIZE_MAX / sizeof(float)))
        total = -1;
    if (total < 0)
        return tc_fail(ctx, TC_ERROR_ARGUMENT,
                       "matmul: autocast's float16 copies for m %lld, n %lld, k %lld, batch %lld overflow",
                       (long long)p->m, (long long)p->n, (long long)p->k, (long long)batch);
    size_t bytes = (size_t)total * sizeof(float);
    float *rounded_a = tc_allocate(ctx, bytes);
    if (!rounded_a) return tc_last_status(ctx);
    float *rounded_b = rounded_a + elements_a;
    round_matrices_to_float16(ctx, p->a, p->lda, job->stride_a, count_a, rows_a, cols_a, rounded_a);
    round_matrices_to_float16(ctx, p->b, p->ldb, job->stride_b, count_b, rows_b, cols_b, rounded_b);
    gemm_job rounded = *job;
    rounded.whole.a = rounded_a;
    rounded.whole.b = rounded_b;
    rounded.whole.lda = cols_a;
    rounded.whole.ldb = cols_b;
    rounded.stride_a = job->stride_a ? rows_a * cols_a : 0;
    rounded.stride_b = job->stride_b ? rows_b * cols_b : 0;
    tc_status status = run_gemm(ctx, &rounded, batch);
    tc_release_memory(ctx, rounded_a, bytes);
    return status;
}

tc_status cpu_gemm(tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n,
                   int64_t k, double alpha, const void *a, int64_t lda, int64_t stride_a, const void *b, int64_t ldb,
                   int64_t stride_b, double beta, void *c, int64_t ldc, int64_t stride_c, int64_t batch) {
    TC_TRY(check_gemm(ctx, dtype, m, n, k, lda, ldb, ldc));
    gemm_job job = product_job(ctx, dtype, transpose_a, transpose_b, m, n, k, a, lda, b, ldb, c, ldc);
    job.whole.alpha = alpha;
    job.whole.beta = beta;
    job.stride_a = stride_a;
    job.stride_b = stride_b;
    job.stride_c = stride_c;
    return run_gemm_autocast(ctx, &job, batch);
}

tc_status cpu_gemm_bias(tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n,
                        int64_t k, const void *a, int64_t lda, const void *b, int64_t ldb, const void *bias, void *c,
                        int64_t ldc, void *gelu) {
    TC_TRY(check_gemm(ctx, dtype, m, n, k, lda, ldb, ldc));
    if (gelu && dtype != TC_FLOAT32)
        return tc_fail(ctx, TC_ERROR_DTYPE, "linear: the fused GELU output is float32 only, got %s",
                       tc_dtype_name(dtype));
    gemm_job job = product_job(ctx, dtype, transpose_a, transpose_b, m, n, k, a, lda, b, ldb, c, ldc);
    job.whole.bias = bias;
    job.whole.gelu = gelu;
    return run_gemm_autocast(ctx, &job, 1);
}

/* ---- gemv: blocks of the output over the pool ---- */

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

/* Output blocks [begin, end) of GEMV_BLOCK elements: rows of a (no
 * transpose) or columns of a (transpose). */
static void gemv_blocks(int64_t begin, int64_t end, void *argument) {
    const gemv_job *job = argument;
    int64_t outputs = job->transpose ? job->n : job->m, inner = job->transpose ? job->m : job->n;
    int64_t first = begin * GEMV_BLOCK, last = end * GEMV_BLOCK < outputs ? end * GEMV_BLOCK : outputs;
    int64_t count = last - first;
    size_t e = tc_dtype_size(job->dtype);
    const char *a = (const char *)job->a + (size_t)(job->transpose ? first : first * job->lda) * e;
    gemv_run(job->dtype, job->native, job->transpose, job->transpose ? inner : count, job->transpose ? count : inner,
             job->alpha, a, job->lda, job->x, 1, job->beta, (char *)job->y + (size_t)first * e);
}

tc_status cpu_gemv(tc_context *ctx, tc_dtype dtype, bool transpose, int64_t m, int64_t n, double alpha, const void *a,
                   int64_t lda, const void *x, double beta, void *y) {
    if (m > INT32_MAX || n > INT32_MAX || lda > INT32_MAX)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "gemv: a dimension exceeds BLAS's 32-bit limit");
    if (dtype == TC_FLOAT32 && ctx->autocast != TC_FLOAT32) { /* y^T [1, outputs] = x^T [1, inner] op(a)^T */
        int64_t outputs = transpose ? n : m, inner = transpose ? m : n;
        gemm_job job = product_job(ctx, dtype, false, !transpose, 1, outputs, inner, x, inner, a, lda, y, outputs);
        job.whole.alpha = alpha;
        job.whole.beta = beta;
        return run_gemm_autocast(ctx, &job, 1);
    }
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

/* ---- bf16 weights: a few rows as GEMVs over blocks of the output ---- */

typedef struct half_gemv_job {
    bool bf16;                 /* cpu_bgemv_bf16_weight on path, else cpu_float16_weight_gemv */
    cpu_bgemm_path path;
    bool vector;
    int64_t m, n, k, ldx, ldw, ldc;
    const float *x;
    const uint16_t *w;
    float *c;
} half_gemv_job;

/* Output columns [begin, end) in GEMV_BLOCK units, for every row of x. */
static void half_gemv_blocks(int64_t begin, int64_t end, void *argument) {
    const half_gemv_job *job = argument;
    int64_t first = begin * GEMV_BLOCK, last = end * GEMV_BLOCK < job->n ? end * GEMV_BLOCK : job->n;
    for (int64_t r = 0; r < job->m; r++) {
        const float *x = job->x + r * job->ldx;
        const uint16_t *w = job->w + first * job->ldw;
        float *c = job->c + r * job->ldc + first;
        if (job->bf16) cpu_bgemv_bf16_weight(job->path, last - first, job->k, x, w, job->ldw, c);
        else cpu_float16_weight_gemv(last - first, job->k, x, w, job->ldw, c, job->vector);
    }
}

static tc_status half_gemv(tc_context *ctx, half_gemv_job *job) {
    int64_t block_work = GEMV_BLOCK * (job->k > 0 ? job->k : 1) * (job->m > 0 ? job->m : 1);
    int64_t grain = GEMV_CHUNK_WORK / block_work;
    cpu_parallel_for(ctx, (job->n + GEMV_BLOCK - 1) / GEMV_BLOCK, grain > 0 ? grain : 1, half_gemv_blocks, job);
    return TC_OK;
}

tc_status cpu_gemv_float16_weight(tc_context *ctx, int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                                  const uint16_t *w, int64_t ldw, float *c, int64_t ldc) {
    TC_TRY(check_gemm(ctx, TC_FLOAT32, m, n, k, ldx, ldw, ldc));
    if (m > CPU_HALF_GEMV_ROWS)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "gemv: %lld rows of x, at most %d", (long long)m, CPU_HALF_GEMV_ROWS);
    half_gemv_job job = {.bf16 = false, .vector = cpu_half_vector_available(), .m = m, .n = n, .k = k, .ldx = ldx,
                         .ldw = ldw, .ldc = ldc, .x = x, .w = w, .c = c};
    return half_gemv(ctx, &job);
}

tc_status cpu_gemm_bf16_weight(tc_context *ctx, int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                               const uint16_t *w, int64_t ldw, float *c, int64_t ldc) {
    TC_TRY(check_gemm(ctx, TC_FLOAT32, m, n, k, ldx, ldw, ldc));
    if (m <= CPU_HALF_GEMV_ROWS) { /* decoding: the weight read as it is, once per row, not packed */
        half_gemv_job job = {.bf16 = true, .path = (cpu_bgemm_path)ctx->bgemm_path, .m = m, .n = n, .k = k,
                             .ldx = ldx, .ldw = ldw, .ldc = ldc, .x = x, .w = w, .c = c};
        return half_gemv(ctx, &job);
    }
    gemm_job job = product_job(ctx, TC_FLOAT32, false, true, m, n, k, x, ldx, w, ldw, c, ldc);
    job.whole.bf16 = true;
    job.whole.b_type = CPU_BGEMM_BF16;
    job.whole.beta = 1.0;
    return run_gemm(ctx, &job, 1);
}

/* ---- gemm_16bit: bf16 through cpu_bgemm, float16 through float32 ---- */

/* `count` matrices of rows x cols (row-major, leading dimension ld, `stride`
 * elements apart) of a 16-bit dtype, to or from packed float32 (leading
 * dimension cols, rows * cols apart): only the matrices' elements are read
 * and written, never the gaps between rows. */
static void widen_matrices(tc_dtype dtype, const uint16_t *x, int64_t ld, int64_t stride, int64_t count, int64_t rows,
                           int64_t cols, float *out, bool vector) {
    for (int64_t i = 0; i < count; i++)
        for (int64_t r = 0; r < rows; r++)
            cpu_half_to_float(dtype, x + i * stride + r * ld, out + (i * rows + r) * cols, cols, vector);
}

static void narrow_matrices(tc_dtype dtype, const float *x, int64_t count, int64_t rows, int64_t cols, uint16_t *out,
                            int64_t ld, int64_t stride, bool vector) {
    for (int64_t i = 0; i < count; i++)
        for (int64_t r = 0; r < rows; r++)
            cpu_float_to_half(dtype, x + (i * rows + r) * cols, out + i * stride + r * ld, cols, vector);
}

/* Exact products summed in float32 either way: bf16 operands go to
 * cpu_bgemm as they are (its bf16 operand type, on the context's path);
 * float16 ones are widened to float32 copies for the float32 GEMM, with
 * autocast left out (the values are 16-bit already). A 16-bit c is
 * computed in a float32 copy and rounded once. */
tc_status cpu_gemm_16bit(tc_context *ctx, tc_dtype dtype, tc_dtype c_dtype, bool transpose_a, bool transpose_b,
                         int64_t m, int64_t n, int64_t k, double alpha, const void *a, int64_t lda, int64_t stride_a,
                         const void *b, int64_t ldb, int64_t stride_b, double beta, void *c, int64_t ldc,
                         int64_t stride_c, int64_t batch) {
    TC_TRY(check_gemm(ctx, TC_FLOAT32, m, n, k, lda, ldb, ldc));
    if ((dtype != TC_BFLOAT16 && dtype != TC_FLOAT16) || (c_dtype != dtype && c_dtype != TC_FLOAT32))
        return tc_fail(ctx, TC_ERROR_DTYPE, "matmul: 16-bit GEMM of %s operands into %s is not supported",
                       tc_dtype_name(dtype), tc_dtype_name(c_dtype));
    if (m == 0 || n == 0 || batch == 0) return TC_OK;
    bool bf16 = dtype == TC_BFLOAT16, wide_c = c_dtype == TC_FLOAT32;
    int64_t rows_a = transpose_a ? k : m, cols_a = transpose_a ? m : k;
    int64_t rows_b = transpose_b ? n : k, cols_b = transpose_b ? k : n;
    int64_t count_a = stride_a ? batch : 1, count_b = stride_b ? batch : 1;
    int64_t elements_a = bf16 ? 0 : packed_elements(count_a, rows_a, cols_a);
    int64_t elements_b = bf16 ? 0 : packed_elements(count_b, rows_b, cols_b);
    int64_t elements_c = wide_c ? 0 : packed_elements(batch, m, n), total = -1;
    if (elements_a >= 0 && elements_b >= 0 && elements_c >= 0 &&
        !__builtin_add_overflow(elements_a, elements_b, &total) && !__builtin_add_overflow(total, elements_c, &total) &&
        total > (int64_t)(SIZE_MAX / sizeof(float)))
        total = -1;
    if (total < 0)
        return tc_fail(ctx, TC_ERROR_ARGUMENT,
                       "matmul: the float32 copies for a 16-bit GEMM of m %lld, n %lld, k %lld, batch %lld overflow",
                       (long long)m, (long long)n, (long long)k, (long long)batch);
    size_t bytes = (size_t)total * sizeof(float);
    float *scratch = bytes ? tc_allocate(ctx, bytes) : NULL;
    if (bytes && !scratch) return tc_last_status(ctx);
    float *wide_a = scratch, *wide_b = scratch ? wide_a + elements_a : NULL;
    float *packed_c = scratch ? wide_b + elements_b : NULL;
    bool vector = cpu_half_vector_available();
    if (!wide_c && beta != 0.0) widen_matrices(c_dtype, c, ldc, stride_c, batch, m, n, packed_c, vector);
    void *target = wide_c ? c : packed_c;
    int64_t ld_target = wide_c ? ldc : n;
    gemm_job job;
    if (bf16) {
        job = product_job(ctx, TC_FLOAT32, transpose_a, transpose_b, m, n, k, a, lda, b, ldb, target, ld_target);
        job.whole.bf16 = true;
        job.whole.a_type = job.whole.b_type = CPU_BGEMM_BF16;
        job.stride_a = stride_a;
        job.stride_b = stride_b;
    } else {
        widen_matrices(dtype, a, lda, stride_a, count_a, rows_a, cols_a, wide_a, vector);
        widen_matrices(dtype, b, ldb, stride_b, count_b, rows_b, cols_b, wide_b, vector);
        job = product_job(ctx, TC_FLOAT32, transpose_a, transpose_b, m, n, k, wide_a, cols_a > 1 ? cols_a : 1, wide_b,
                          cols_b > 1 ? cols_b : 1, target, ld_target);
        job.whole.bf16 = false;
        job.stride_a = stride_a ? rows_a * cols_a : 0;
        job.stride_b = stride_b ? rows_b * cols_b : 0;
    }
    job.whole.alpha = alpha;
    job.whole.beta = beta;
    job.stride_c = wide_c ? stride_c : m * n;
    tc_status status = run_gemm(ctx, &job, batch);
    if (status == TC_OK && !wide_c) narrow_matrices(c_dtype, packed_c, batch, m, n, c, ldc, stride_c, vector);
    if (scratch) tc_release_memory(ctx, scratch, bytes);
    return status;
}
