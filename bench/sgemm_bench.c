/*
 * sgemm_bench: GFLOP/s of raw OpenBLAS cblas_sgemm (row-major) on given GEMM
 * shapes, the ceiling that bench/gpt_bench.lua compares tc's matmul and the
 * model FLOP rate against. Not part of the engine; built by `make bench`.
 *
 *   sgemm_bench THREADS REPS SHAPE...
 *   SHAPE = M,K,N,TA,TB,BATCH   C[M,N] = op(A)[M,K] op(B)[K,N], BATCH times,
 *                               TA/TB `n` (as stored) or `t` (transposed)
 *
 * Prints one JSON line per shape: the best and the median time of REPS timed
 * runs after one warm-up run, and 2*M*N*K*BATCH over each as GFLOP/s
 * (`gflops` from the best: load from other processes only ever slows a run).
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int m, k, n, batch;
    char ta, tb;
} gemm_shape;

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

/* 64-byte aligned floats filled with small values in [-0.5, 0.5). */
static float *random_floats(size_t count, unsigned *seed) {
    size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
    float *data = aligned_alloc(64, bytes);
    if (!data) return NULL;
    for (size_t i = 0; i < count; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        data[i] = (float)(*seed >> 8) / 16777216.0f - 0.5f;
    }
    return data;
}

/* One pass over the batch: C_i = op(A_i) op(B_i). */
static void run_batch(const gemm_shape *s, const float *a, const float *b, float *c) {
    enum CBLAS_TRANSPOSE ta = s->ta == 't' ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = s->tb == 't' ? CblasTrans : CblasNoTrans;
    int lda = s->ta == 't' ? s->m : s->k;
    int ldb = s->tb == 't' ? s->k : s->n;
    size_t size_a = (size_t)s->m * s->k, size_b = (size_t)s->k * s->n, size_c = (size_t)s->m * s->n;
    for (int i = 0; i < s->batch; i++)
        cblas_sgemm(CblasRowMajor, ta, tb, s->m, s->n, s->k, 1.0f, a + i * size_a, lda, b + i * size_b, ldb, 0.0f,
                    c + i * size_c, s->n);
}

/* Times one shape and prints its JSON line; returns 0, or -1 when out of memory. */
static int bench_shape(const char *text, const gemm_shape *s, int reps, double *times) {
    unsigned seed = 12345u;
    size_t batch = (size_t)s->batch;
    float *a = random_floats(batch * s->m * s->k, &seed);
    float *b = random_floats(batch * s->k * s->n, &seed);
    float *c = random_floats(batch * s->m * s->n, &seed);
    int status = -1;
    if (a && b && c) {
        run_batch(s, a, b, c);
        for (int r = 0; r < reps; r++) {
            double start = now_seconds();
            run_batch(s, a, b, c);
            times[r] = now_seconds() - start;
        }
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
    if (argc < 4) {
        fprintf(stderr, "usage: %s THREADS REPS M,K,N,TA,TB,BATCH...\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[1]), reps = atoi(argv[2]);
    if (threads < 1 || reps < 1) {
        fprintf(stderr, "sgemm_bench: THREADS and REPS must be positive, got '%s' and '%s'\n", argv[1], argv[2]);
        return 2;
    }
    openblas_set_num_threads(threads);
    double *times = malloc((size_t)reps * sizeof *times);
    if (!times) return 1;
    int status = 0;
    for (int i = 3; i < argc && status == 0; i++) {
        gemm_shape shape;
        if (parse_shape(argv[i], &shape) != 0) {
            fprintf(stderr, "sgemm_bench: shape '%s' is not M,K,N,TA,TB,BATCH (TA/TB n or t)\n", argv[i]);
            status = 2;
        } else if (bench_shape(argv[i], &shape, reps, times) != 0) {
            fprintf(stderr, "sgemm_bench: out of memory for shape %s\n", argv[i]);
            status = 1;
        }
    }
    free(times);
    return status;
}
