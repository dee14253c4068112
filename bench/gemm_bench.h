/*
 * gemm_bench.h: what the GEMM benches (sgemm_bench.c, bgemm_bench.c) share:
 * the clock and the median of the timed runs, page-aligned random operands,
 * the split of a product into 16-aligned blocks over a pool of threads (as
 * tc.matmul's pool splits it) and the float64 dot product sampled elements
 * of C are checked against. Included by one .c file per program.
 */
#ifndef TRICYCLE_BENCH_GEMM_BENCH_H
#define TRICYCLE_BENCH_GEMM_BENCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Row and column blocks of a split product are multiples of this, as in
 * src/cpu/cpu_matmul.c. */
#define SPLIT_ALIGNMENT 16

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts the times (times[0] is then the best) and returns their median. */
static double sort_and_median(double *times, int count) {
    qsort(times, (size_t)count, sizeof *times, compare_doubles);
    return count % 2 ? times[count / 2] : 0.5 * (times[count / 2 - 1] + times[count / 2]);
}

/* Parses "M,K,N,TA,TB" at the start of text (TA/TB `n` as stored or `t`
 * transposed, sizes positive); returns the characters read, or -1. */
static int parse_product(const char *text, int *m, int *k, int *n, bool *ta, bool *tb) {
    char a = 0, b = 0;
    int used = 0;
    if (sscanf(text, "%d,%d,%d,%c,%c%n", m, k, n, &a, &b, &used) != 5) return -1;
    if (*m <= 0 || *k <= 0 || *n <= 0) return -1;
    if ((a != 'n' && a != 't') || (b != 'n' && b != 't')) return -1;
    *ta = a == 't';
    *tb = b == 't';
    return used;
}

/* The benches' random stream (a linear congruential generator): cheap, and
 * the same operands on every run. */
static unsigned next_seed(unsigned *seed) { return *seed = *seed * 1664525u + 1013904223u; }

/* Page-aligned floats in [-0.5, 0.5), or NULL: tensors of a megabyte or
 * more get page-aligned storage from the Lua binding (mmap), so the raw
 * programs see operands aligned as tc.matmul's are. */
static float *random_floats(size_t count, unsigned *seed) {
    size_t bytes = (count * sizeof(float) + 4095) / 4096 * 4096;
    float *data = aligned_alloc(4096, bytes);
    for (size_t i = 0; data && i < count; i++) data[i] = (float)(next_seed(seed) >> 8) / 16777216.0f - 0.5f;
    return data;
}

/* Units [begin, end) of `units` split in `parts` near-equal contiguous ranges. */
static void chunk_range(int64_t units, int parts, int index, int64_t *begin, int64_t *end) {
    *begin = units * index / parts;
    *end = units * (index + 1) / parts;
}

/* Part `index` of `parts` of [0, extent) in SPLIT_ALIGNMENT-aligned blocks:
 * [*first, *last), empty when there are more parts than blocks. */
static void aligned_block(int64_t extent, int parts, int index, int64_t *first, int64_t *last) {
    int64_t begin, end;
    chunk_range((extent + SPLIT_ALIGNMENT - 1) / SPLIT_ALIGNMENT, parts, index, &begin, &end);
    *first = begin * SPLIT_ALIGNMENT;
    *last = end * SPLIT_ALIGNMENT < extent ? end * SPLIT_ALIGNMENT : extent;
}

/* Row `row` of op(A) times column `column` of op(B) (A is M x K, B is K x N
 * as stored, transposed when ta/tb) in float64, each value through `round`
 * when it is given; *magnitude gets the sum of the terms' magnitudes. */
static double reference_element(const float *a, const float *b, bool ta, bool tb, int m, int k, int n, size_t row,
                                size_t column, float (*round)(float), double *magnitude) {
    double sum = 0.0;
    *magnitude = 0.0;
    for (size_t p = 0; p < (size_t)k; p++) {
        float x = ta ? a[p * (size_t)m + row] : a[row * (size_t)k + p];
        float y = tb ? b[column * (size_t)k + p] : b[p * (size_t)n + column];
        if (round) {
            x = round(x);
            y = round(y);
        }
        double term = (double)x * y;
        sum += term;
        *magnitude += term < 0 ? -term : term;
    }
    return sum;
}

/* Computes chunk `index` of `parts` of a product; false when it could not
 * allocate. */
typedef bool gemm_chunk_runner(const void *work, int parts, int index);

typedef struct gemm_worker {
    struct gemm_pool *pool;
    int index;
} gemm_worker;

/* Workers 1..count-1 run chunk i of the current work between two barrier
 * waits; the calling thread runs chunk 0. */
typedef struct gemm_pool {
    int count;
    gemm_chunk_runner *run_chunk;
    pthread_t *threads;
    gemm_worker *workers;
    bool *failed; /* per chunk: its run failed */
    pthread_barrier_t start, done;
    const void *work; /* NULL tells the workers to exit */
} gemm_pool;

static void *pool_worker(void *argument) {
    gemm_worker *worker = argument;
    gemm_pool *pool = worker->pool;
    for (;;) {
        pthread_barrier_wait(&pool->start);
        if (!pool->work) return NULL;
        pool->failed[worker->index] = !pool->run_chunk(pool->work, pool->count, worker->index);
        pthread_barrier_wait(&pool->done);
    }
}

/* Starts count-1 workers (none for one thread); returns 0 on success. On a
 * failure the program is to exit, which ends the workers already waiting. */
static int pool_start(gemm_pool *pool, int count, gemm_chunk_runner *run_chunk) {
    *pool = (gemm_pool){.count = count, .run_chunk = run_chunk};
    if (count == 1) return 0;
    pool->threads = calloc((size_t)count, sizeof *pool->threads);
    pool->workers = calloc((size_t)count, sizeof *pool->workers);
    pool->failed = calloc((size_t)count, sizeof *pool->failed);
    if (!pool->threads || !pool->workers || !pool->failed) return -1;
    pthread_barrier_init(&pool->start, NULL, (unsigned)count);
    pthread_barrier_init(&pool->done, NULL, (unsigned)count);
    for (int i = 1; i < count; i++) {
        pool->workers[i] = (gemm_worker){pool, i};
        if (pthread_create(&pool->threads[i], NULL, pool_worker, &pool->workers[i]) != 0) return -1;
    }
    return 0;
}

/* Runs the work's chunks on the pool's threads; false when one failed. */
static bool pool_run(gemm_pool *pool, const void *work) {
    if (pool->count == 1) return pool->run_chunk(work, 1, 0);
    pool->work = work;
    pthread_barrier_wait(&pool->start);
    pool->failed[0] = !pool->run_chunk(work, pool->count, 0);
    pthread_barrier_wait(&pool->done);
    for (int i = 0; i < pool->count; i++)
        if (pool->failed[i]) return false;
    return true;
}

static void pool_stop(gemm_pool *pool) {
    if (pool->count == 1) return;
    pool->work = NULL;
    pthread_barrier_wait(&pool->start);
    for (int i = 1; i < pool->count; i++) pthread_join(pool->threads[i], NULL);
    pthread_barrier_destroy(&pool->start);
    pthread_barrier_destroy(&pool->done);
    free(pool->threads);
    free(pool->workers);
    free(pool->failed);
}

#endif
