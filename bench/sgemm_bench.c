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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_bench.h"

#define EXIT_UNAVAILABLE 3
#define EXIT_WRONG 4
/* Untimed runs first, as many as bench/matmul_line.lua's warm-up calls, so
 * both are timed after the same number of products. */
#define WARM_UP_RUNS 3

typedef struct {
    int m, k, n, batch;
    bool ta, tb;
} gemm_shape;

/* One timed product: the shape and its operands. */
typedef struct {
    const gemm_shape *shape;
    const float *a, *b;
    float *c;
} gemm_work;

/* Parses "M,K,N,TA,TB,BATCH"; returns 0 on success. */
static int parse_shape(const char *text, gemm_shape *shape) {
    int used = parse_product(text, &shape->m, &shape->k, &shape->n, &shape->ta, &shape->tb), more = 0;
    if (used < 0 || sscanf(text + used, ",%d%n", &shape->batch, &more) != 1 || text[used + more] != '\0') return -1;
    return shape->batch > 0 ? 0 : -1;
}

static size_t size_a(const gemm_shape *s) { return (size_t)s->m * s->k; }
static size_t size_b(const gemm_shape *s) { return (size_t)s->k * s->n; }
static size_t size_c(const gemm_shape *s) { return (size_t)s->m * s->n; }
static int lead_a(const gemm_shape *s) { return s->ta ? s->m : s->k; }
static int lead_b(const gemm_shape *s) { return s->tb ? s->k : s->n; }

/* One pass over the batch through OpenBLAS: C_i = op(A_i) op(B_i). */
static void openblas_batch(const gemm_work *w) {
    const gemm_shape *s = w->shape;
    enum CBLAS_TRANSPOSE ta = s->ta ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = s->tb ? CblasTrans : CblasNoTrans;
    for (int i = 0; i < s->batch; i++)
        cblas_sgemm(CblasRowMajor, ta, tb, s->m, s->n, s->k, 1.0f, w->a + i * size_a(s), lead_a(s),
                    w->b + i * size_b(s), lead_b(s), 0.0f, w->c + i * size_c(s), s->n);
}

/* Chunk `index` of `parts` of the batch through cpu_sgemm, split as
 * tc.matmul splits it: whole matrices when the batch has one per part, else
 * 16-aligned blocks of op(A)'s rows (or of op(B)'s columns when wider). */
static bool tricycle_chunk(const void *work, int parts, int index) {
    const gemm_work *w = work;
    const gemm_shape *s = w->shape;
    bool ta = s->ta, tb = s->tb;
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
    int64_t first, last;
    aligned_block(by_rows ? s->m : s->n, parts, index, &first, &last);
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

/* One timed pass, through cpu_sgemm on the pool or through OpenBLAS when
 * pool is NULL; false when cpu_sgemm ran out of memory. */
static bool run_batch(gemm_pool *pool, const gemm_work *w) {
    if (pool) return pool_run(pool, w);
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
        size_t i = (next_seed(&seed) >> 4) % (size_t)s->batch;
        size_t row = (next_seed(&seed) >> 4) % (unsigned)s->m;
        size_t column = (next_seed(&seed) >> 4) % (unsigned)s->n;
        double magnitude;
        double sum = reference_element(w->a + i * size_a(s), w->b + i * size_b(s), s->ta, s->tb, s->m, s->k, s->n,
                                       row, column, NULL, &magnitude);
        double error = w->c[i * size_c(s) + row * (size_t)s->n + column] - sum;
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
        double median = sort_and_median(times, reps);
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
    double *times = malloc((size_t)reps * sizeof *times);
    if (!times || (native && pool_start(&pool, threads, tricycle_chunk) != 0)) {
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
    return status;
}
