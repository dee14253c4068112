/*
 * sgemm_bench: GFLOP/s of a raw float32 GEMM on given shapes, the ceiling
 * that bench/gpt_bench.lua compares tc's matmul and the model FLOP rate
 * against. Two implementations, chosen by the first argument:
 *
 *   openblas  OpenBLAS's cblas_sgemm (row-major), threaded by OpenBLAS itself
 *             (openblas_set_num_threads); its kernels are the ones OpenBLAS
 *             picks for this CPU, or OPENBLAS_CORETYPE's when that is set
 *   tricycle  the engine's own cpu_sgemm (src/cpu/cpu_sgemm.c, AVX-512),
 *             which is single-threaded: with THREADS > 1 this program splits
 *             each product over its own threads the way tc.matmul's pool
 *             does (over the batch, else over 16-aligned blocks of rows or
 *             columns), with no allocation or tensor bookkeeping
 *
 * Not part of the engine; built by `make bench`.
 *
 *   sgemm_bench openblas|tricycle THREADS REPS SHAPE...
 *   SHAPE = M,K,N,TA,TB,BATCH   C[M,N] = op(A)[M,K] op(B)[K,N], BATCH times,
 *                               TA/TB `n` (as stored) or `t` (transposed)
 *
 * Prints one JSON line per shape: the best and the median time of REPS timed
 * runs after WARM_UP_RUNS untimed ones, and 2*M*N*K*BATCH over each as GFLOP/s
 * (`gflops` from the best: load from other processes only ever slows a run).
 * After the timed runs, 256 sampled elements of C are checked against a
 * float64 dot product. Exit status: 0; 1 out of memory; 2 bad arguments;
 * 3 (nothing timed) `tricycle` on a CPU without AVX-512
 * (cpu_sgemm_available() false); 4 a wrong product.
 */
#include "cpu/cpu_sgemm.h"

#include <cblas.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_UNAVAILABLE 3
#define EXIT_WRONG 4
/* Untimed runs first, as many as bench/matmul_line.lua's warm-up calls, so
 * both are timed after the same number of products. */
#define WARM_UP_RUNS 3
/* Row and column blocks of a split product are multiples of this, as in
 * src/cpu/cpu_matmul.c. */
#define SPLIT_ALIGNMENT 16

typedef struct {
    int m, k, n, batch;
    char ta, tb;
} gemm_shape;

/* One timed product: the shape and its operands. */
typedef struct {
    const gemm_shape *shape;
    const float *a, *b;
    float *c;
} gemm_work;

/* The threads of `tricycle` mode: worker i (1..count-1) runs chunk i of the
 * current work between two barrier waits; the main thread runs chunk 0. */
typedef struct {
    int count;
    pthread_t *threads;
    bool *failed; /* per chunk: cpu_sgemm could not allocate its buffers */
    pthread_barrier_t start, done;
    const gemm_work *work; /* NULL tells the workers to exit */
} gemm_pool;

typedef struct {
    gemm_pool *pool;
    int index;
} worker_arg;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Parses "M,K,N,TA,TB,BATCH"; returns 0 on success. */
static int parse_shape(const char *text, gemm_shape *shape) {
    char ta = 0, tb = 0;
    int used = 0;
    if (sscanf(text, "%d,%d,%d,%c,%c,%d%n", &shape->m, &shape->k, &shape->n, &ta, &tb, &shape->batch, &used) != 6 ||
        text[used] != '\0')
        return -1;
    if (shape->m <= 0 || shape->k <= 0 || shape->n <= 0 || shape->batch <= 0) return -1;
    if ((ta != 'n' && ta != 't') || (tb != 'n' && tb != 't')) return -1;
    shape->ta = ta;
    shape->tb = tb;
    return 0;
}

/* Page-aligned floats filled with small values in [-0.5, 0.5): tensors of
 * a megabyte or more get page-aligned storage from the Lua binding (mmap),
 * so the raw programs see operands aligned as tc.matmul's are. */
static float *random_floats(size_t count, unsigned *seed) {
    size_t bytes = (count * sizeof(float) + 4095) / 4096 * 4096;
    float *data = aligned_alloc(4096, bytes);
    if (!data) return NULL;
    for (size_t i = 0; i < count; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        data[i] = (float)(*seed >> 8) / 16777216.0f - 0.5f;
    }
    return data;
}

static size_t size_a(const gemm_shape *s) { return (size_t)s->m * s->k; }
static size_t size_b(const gemm_shape *s) { return (size_t)s->k * s->n; }
static size_t size_c(const gemm_shape *s) { return (size_t)s->m * s->n; }
static int lead_a(const gemm_shape *s) { return s->ta == 't' ? s->m : s->k; }
static int lead_b(const gemm_shape *s) { return s->tb == 't' ? s->k : s->n; }

/* One pass over the batch through OpenBLAS: C_i = op(A_i) op(B_i). */
static void openblas_batch(const gemm_work *w) {
    const gemm_shape *s = w->shape;
    enum CBLAS_TRANSPOSE ta = s->ta == 't' ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = s->tb == 't' ? CblasTrans : CblasNoTrans;
    for (int i = 0; i < s->batch; i++)
        cblas_sgemm(CblasRowMajor, ta, tb, s->m, s->n, s->k, 1.0f, w->a + i * size_a(s), lead_a(s),
                    w->b + i * size_b(s), lead_b(s), 0.0f, w->c + i * size_c(s), s->n);
}

/* Units [begin, end) of `units` split in `parts` near-equal contiguous ranges. */
static void chunk_range(int64_t units, int parts, int index, int64_t *begin, int64_t *end) {
    *begin = units * index / parts;
    *end = units * (index + 1) / parts;
}

/* Chunk `index` of `parts` of the batch through cpu_sgemm, split as
 * tc.matmul splits it: whole matrices when the batch has one per part, else
 * 16-aligned blocks of op(A)'s rows (or of op(B)'s columns when wider). */
static bool tricycle_chunk(const gemm_work *w, int parts, int index) {
    const gemm_shape *s = w->shape;
    bool ta = s->ta == 't', tb = s->tb == 't';
    int64_t lda = lead_a(s), ldb = lead_b(s), begin, end;
    bool ok = true;
    if (s->batch >= parts) {
        chunk_range(s->batch, parts, index, &begin, &end);
        for (int64_t i = begin; i < end; i++)
            ok &= cpu_sgemm(ta, tb, s->m, s->n, s->k, 1.0f, w->a + i * size_a(s), lda, w->b + i * size_b(s), ldb,
                            0.0f, NULL, w->c + i * size_c(s), s->n, NULL, NULL);
        return ok;
    }
    bool by_rows = s->m >= s->n;
    int64_t extent = by_rows ? s->m : s->n;
    chunk_range((extent + SPLIT_ALIGNMENT - 1) / SPLIT_ALIGNMENT, parts, index, &begin, &end);
    int64_t first = begin * SPLIT_ALIGNMENT, last = end * SPLIT_ALIGNMENT < extent ? end * SPLIT_ALIGNMENT : extent;
    if (first >= last) return true;
    for (int64_t i = 0; i < s->batch; i++) {
        const float *a = w->a + i * size_a(s), *b = w->b + i * size_b(s);
        float *c = w->c + i * size_c(s);
        if (by_rows)
            ok &= cpu_sgemm(ta, tb, last - first, s->n, s->k, 1.0f, a + (ta ? first : first * lda), lda, b, ldb,
                            0.0f, NULL, c + first * s->n, s->n, NULL, NULL);
        else
            ok &= cpu_sgemm(ta, tb, s->m, last - first, s->k, 1.0f, a, lda, b + (tb ? first * ldb : first), ldb,
                            0.0f, NULL, c + first, s->n, NULL, NULL);
    }
    return ok;
}

static void *pool_worker(void *argument) {
    worker_arg *arg = argument;
    gemm_pool *pool = arg->pool;
    for (;;) {
        pthread_barrier_wait(&pool->start);
        if (!pool->work) return NULL;
        pool->failed[arg->index] = !tricycle_chunk(pool->work, pool->count, arg->index);
        pthread_barrier_wait(&pool->done);
    }
}

/* One pass over the batch through cpu_sgemm on the pool's threads; false
 * when a chunk could not allocate its packing buffers. */
static bool tricycle_batch(gemm_pool *pool, const gemm_work *w) {
    if (pool->count == 1) return tricycle_chunk(w, 1, 0);
    pool->work = w;
    pthread_barrier_wait(&pool->start);
    pool->failed[0] = !tricycle_chunk(w, pool->count, 0);
    pthread_barrier_wait(&pool->done);
    for (int i = 0; i < pool->count; i++)
        if (pool->failed[i]) return false;
    return true;
}

/* Starts count-1 workers (none for one thread); returns 0 on success. */
static int pool_start(gemm_pool *pool, worker_arg *args, int count) {
    pool->count = count;
    pool->threads = NULL;
    if (count == 1) return 0;
    pool->threads = calloc((size_t)count, sizeof *pool->threads);
    pool->failed = calloc((size_t)count, sizeof *pool->failed);
    if (!pool->threads || !pool->failed) return -1;
    pthread_barrier_init(&pool->start, NULL, (unsigned)count);
    pthread_barrier_init(&pool->done, NULL, (unsigned)count);
    for (int i = 1; i < count; i++) {
        args[i].pool = pool;
        args[i].index = i;
        if (pthread_create(&pool->threads[i], NULL, pool_worker, &args[i]) != 0) {
            fprintf(stderr, "sgemm_bench: could not start thread %d\n", i);
            return -1; /* main returns, which ends the workers already waiting */
        }
    }
    return 0;
}

static void pool_stop(gemm_pool *pool) {
    if (pool->count == 1) return;
    pool->work = NULL;
    pthread_barrier_wait(&pool->start);
    for (int i = 1; i < pool->count; i++) pthread_join(pool->threads[i], NULL);
    pthread_barrier_destroy(&pool->start);
    pthread_barrier_destroy(&pool->done);
    free(pool->threads);
    free(pool->failed);
}

/* One timed pass; false when cpu_sgemm ran out of memory. */
static bool run_batch(gemm_pool *pool, const gemm_work *w) {
    if (pool) return tricycle_batch(pool, w);
    openblas_batch(w);
    return true;
}

/* Whether sampled elements of the last pass's C match a float64 dot product
 * (relative to the sum of the terms' magnitudes): a split or a kernel that
 * skipped work would otherwise show up as a fast rate. */
static bool product_checks(const gemm_work *w) {
    const gemm_shape *s = w->shape;
    unsigned seed = 777u;
    for (int sample = 0; sample < 256; sample++) {
        seed = seed * 1664525u + 1013904223u;
        size_t i = (seed >> 4) % (size_t)s->batch;
        seed = seed * 1664525u + 1013904223u;
        int row = (int)((seed >> 4) % (unsigned)s->m);
        seed = seed * 1664525u + 1013904223u;
        int column = (int)((seed >> 4) % (unsigned)s->n);
        const float *a = w->a + i * size_a(s), *b = w->b + i * size_b(s);
        double sum = 0.0, magnitude = 0.0;
        for (int p = 0; p < s->k; p++) {
            double x = s->ta == 't' ? a[(size_t)p * s->m + row] : a[(size_t)row * s->k + p];
            double y = s->tb == 't' ? b[(size_t)column * s->k + p] : b[(size_t)p * s->n + column];
            sum += x * y;
            magnitude += x * y < 0 ? -x * y : x * y;
        }
        double error = w->c[i * size_c(s) + (size_t)row * s->n + column] - sum;
        if (error < 0) error = -error;
        if (error > 1e-5 * magnitude + 1e-6) return false;
    }
    return true;
}

/* Times one shape and prints its JSON line; pool is NULL for OpenBLAS.
 * Returns 0, -1 when out of memory, -2 when the product was wrong. */
static int bench_shape(const char *text, const gemm_shape *s, gemm_pool *pool, int reps, double *times) {
    unsigned seed = 12345u;
    size_t batch = (size_t)s->batch;
    float *a = random_floats(batch * size_a(s), &seed);
    float *b = random_floats(batch * size_b(s), &seed);
    float *c = random_floats(batch * size_c(s), &seed);
    int status = -1;
    gemm_work work = {s, a, b, c};
    bool ran = a && b && c;
    for (int r = 0; r < WARM_UP_RUNS && ran; r++) ran = run_batch(pool, &work);
    for (int r = 0; r < reps && ran; r++) {
        double start = now_seconds();
        ran = run_batch(pool, &work);
        times[r] = now_seconds() - start;
    }
    if (ran && !product_checks(&work)) {
        fprintf(stderr, "sgemm_bench: %s computed a wrong product for shape %s\n",
                pool ? "cpu_sgemm" : "OpenBLAS", text);
        status = -2;
    } else if (ran) {
        qsort(times, (size_t)reps, sizeof *times, compare_doubles);
        double median = reps % 2 ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
        double flops = 2.0 * s->m * s->n * s->k * s->batch;
        printf("{\"shape\":\"%s\",\"ms_best\":%.4f,\"ms_median\":%.4f,\"gflops\":%.2f,\"gflops_median\":%.2f}\n",
               text, times[0] * 1e3, median * 1e3, flops / times[0] * 1e-9, flops / median * 1e-9);
        fflush(stdout);
        status = 0;
    }
    free(a);
    free(b);
    free(c);
    return status;
}

int main(int argc, char **argv) {
    if (argc < 5 || (strcmp(argv[1], "openblas") != 0 && strcmp(argv[1], "tricycle") != 0)) {
        fprintf(stderr, "usage: %s openblas|tricycle THREADS REPS M,K,N,TA,TB,BATCH...\n", argv[0]);
        return 2;
    }
    bool native = strcmp(argv[1], "tricycle") == 0;
    int threads = atoi(argv[2]), reps = atoi(argv[3]);
    if (threads < 1 || reps < 1) {
        fprintf(stderr, "sgemm_bench: THREADS and REPS must be positive, got '%s' and '%s'\n", argv[2], argv[3]);
        return 2;
    }
    if (native && !cpu_sgemm_available()) {
        fprintf(stderr, "sgemm_bench: cpu_sgemm needs AVX-512F, which this CPU lacks\n");
        return EXIT_UNAVAILABLE;
    }
    gemm_pool pool;
    worker_arg *args = calloc((size_t)threads, sizeof *args);
    double *times = malloc((size_t)reps * sizeof *times);
    if (!args || !times || (native && pool_start(&pool, args, threads) != 0)) {
        fprintf(stderr, "sgemm_bench: could not set up %d thread(s)\n", threads);
        return 1;
    }
    if (!native) openblas_set_num_threads(threads);
    int status = 0;
    for (int i = 4; i < argc && status == 0; i++) {
        gemm_shape shape;
        if (parse_shape(argv[i], &shape) != 0) {
            fprintf(stderr, "sgemm_bench: shape '%s' is not M,K,N,TA,TB,BATCH (TA/TB n or t)\n", argv[i]);
            status = 2;
        } else {
            int result = bench_shape(argv[i], &shape, native ? &pool : NULL, reps, times);
            if (result == -1)
                fprintf(stderr, "sgemm_bench: out of memory for shape %s (%s)\n", argv[i],
                        native ? "operands or cpu_sgemm's packing buffers" : "operands");
            status = result == 0 ? 0 : result == -1 ? 1 : EXIT_WRONG;
        }
    }
    if (native) pool_stop(&pool);
    free(times);
    free(args);
    return status;
}
