/*
 * bgemm_bench: the engine's bfloat16 GEMM (src/cpu/cpu_bgemm.c) beside its
 * float32 GEMM (src/cpu/cpu_sgemm.c) on given shapes, timed side by side:
 * each repeat runs every implementation once, in turn, so load from other
 * processes falls on all of them alike. Implementations:
 *
 *   sgemm        cpu_sgemm, float32 A and B
 *   avx512       cpu_bgemm's VDPBF16PS path, bf16 A and B
 *   amx          cpu_bgemm's AMX path (TDPBF16PS), bf16 A and B
 *   amx f32a     the AMX path with float32 A rounded while packing, bf16 B:
 *                a linear layer under autocast (float32 activations, bf16
 *                weights)
 *
 * A path this CPU lacks is left out (its column empty).
 *
 * OpenBLAS's cblas_sbgemm is not timed: Debian 12's OpenBLAS 0.3.21 declares
 * it in cblas.h but its libopenblas does not export it (built without
 * BUILD_BFLOAT16).
 *
 * With THREADS > 1 each product is split over this program's threads as
 * tc.matmul's pool splits one matrix (16-aligned blocks of op(A)'s rows, or
 * of op(B)'s columns when wider), each block a separate call that packs its
 * own op(B).
 *
 *   bgemm_bench THREADS REPS LABEL=M,K,N,TA,TB...
 *               C[M,N] = op(A)[M,K] op(B)[K,N]; TA/TB `n` (as stored) or
 *               `t` (transposed); LABEL names the row
 *
 * Prints a Markdown table: per shape the median of REPS timed runs (after
 * one untimed run) of each implementation as GFLOP/s (2 M N K over the
 * median time), and each bf16 rate over sgemm's. After the timed runs, 256
 * sampled elements of each C are checked against a float64 dot product (of
 * the bf16-rounded operands for the bf16 GEMMs), within 4 sqrt(K) float32
 * roundings of the sum of the terms' magnitudes (a random walk of rounding
 * errors; a skipped block of K shows as much more). Exit status: 0; 1 out of
 * memory; 2 bad arguments; 3 no AVX512_BF16 (or no AVX-512F) on this CPU;
 * 4 a wrong product. Not part of the engine; `make bgemm-bench` builds it
 * and writes bench/results/bgemm.md.
 */
#include "cpu/cpu_bgemm.h"
#include "cpu/cpu_sgemm.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_bench.h"

#define EXIT_UNAVAILABLE 3
#define EXIT_WRONG 4
#define IMPLEMENTATIONS 4
#define MAX_THREADS 64

/* What each implementation runs: sgemm (path unused), or cpu_bgemm on a
 * path with A of a type. */
static const struct {
    const char *name;
    bool bf16;
    cpu_bgemm_path path;
    cpu_bgemm_type a_type;
} implementations[IMPLEMENTATIONS] = {
    {"sgemm", false, CPU_BGEMM_FALLBACK, CPU_BGEMM_F32},
    {"avx512", true, CPU_BGEMM_AVX512, CPU_BGEMM_BF16},
    {"amx", true, CPU_BGEMM_AMX, CPU_BGEMM_BF16},
    {"amx f32a", true, CPU_BGEMM_AMX, CPU_BGEMM_F32},
};

typedef struct {
    char label[64];
    int m, k, n;
    bool ta, tb;
} gemm_shape;

/* One product to run: its shape, operands and which implementation. */
typedef struct {
    const gemm_shape *shape;
    int implementation; /* an index of `implementations` */
    const float *a, *b;
    const uint16_t *a_bits, *b_bits;
    float *c;
} gemm_work;

/* Parses "LABEL=M,K,N,TA,TB"; returns 0 on success. */
static int parse_shape(const char *text, gemm_shape *shape) {
    const char *equals = strchr(text, '=');
    if (!equals || equals == text || (size_t)(equals - text) >= sizeof shape->label) return -1;
    memcpy(shape->label, text, (size_t)(equals - text));
    shape->label[equals - text] = '\0';
    int used = parse_product(equals + 1, &shape->m, &shape->k, &shape->n, &shape->ta, &shape->tb);
    return used < 0 || equals[1 + used] != '\0' ? -1 : 0;
}

static int lead_a(const gemm_shape *s) { return s->ta ? s->m : s->k; }
static int lead_b(const gemm_shape *s) { return s->tb ? s->k : s->n; }

/* One block of the product: rows [first, last) of op(A) when by_rows, else
 * columns [first, last) of op(B). */
static bool run_block(const gemm_work *w, bool by_rows, int64_t first, int64_t last) {
    const gemm_shape *s = w->shape;
    int64_t lda = lead_a(s), ldb = lead_b(s);
    int64_t a_offset = by_rows ? (s->ta ? first : first * lda) : 0;
    int64_t b_offset = by_rows ? 0 : (s->tb ? first * ldb : first);
    int64_t m = by_rows ? last - first : s->m, n = by_rows ? s->n : last - first;
    float *c = w->c + (by_rows ? first * s->n : first);
    if (!implementations[w->implementation].bf16)
        return cpu_sgemm(s->ta, s->tb, m, n, s->k, 1.0f, w->a + a_offset, lda, w->b + b_offset, ldb, 0.0f, NULL, c,
                         s->n, NULL, NULL);
    bool f32a = implementations[w->implementation].a_type == CPU_BGEMM_F32;
    return cpu_bgemm(implementations[w->implementation].path, s->ta, s->tb, m, n, s->k, 1.0f,
                     f32a ? CPU_BGEMM_F32 : CPU_BGEMM_BF16,
                     f32a ? (const void *)(w->a + a_offset) : (const void *)(w->a_bits + a_offset), lda,
                     CPU_BGEMM_BF16, w->b_bits + b_offset, ldb, 0.0f, NULL, c, s->n, NULL, NULL);
}

/* Chunk `index` of `parts`: a 16-aligned block of the longer of op(A)'s
 * rows and op(B)'s columns. */
static bool run_chunk(const void *work, int parts, int index) {
    const gemm_work *w = work;
    bool by_rows = w->shape->m >= w->shape->n;
    int64_t first, last;
    aligned_block(by_rows ? w->shape->m : w->shape->n, parts, index, &first, &last);
    return first >= last || run_block(w, by_rows, first, last);
}

static uint16_t *to_bf16(const float *x, size_t count) {
    size_t bytes = (count * sizeof(uint16_t) + 4095) / 4096 * 4096;
    uint16_t *bits = aligned_alloc(4096, bytes);
    for (size_t i = 0; bits && i < count; i++) bits[i] = cpu_bf16_from_float(x[i]);
    return bits;
}

static float bf16_rounded(float x) { return cpu_float_from_bf16(cpu_bf16_from_float(x)); }

/* Whether 256 sampled elements of C match a float64 dot product of the
 * operands (bf16-rounded when `rounded`), relative to the sum of the terms'
 * magnitudes. */
static bool product_checks(const gemm_work *w, bool rounded) {
    const gemm_shape *s = w->shape;
    unsigned seed = 777u;
    for (int sample = 0; sample < 256; sample++) {
        size_t row = (next_seed(&seed) >> 4) % (unsigned)s->m;
        size_t column = (next_seed(&seed) >> 4) % (unsigned)s->n;
        double magnitude;
        double sum = reference_element(w->a, w->b, s->ta, s->tb, s->m, s->k, s->n, row, column,
                                       rounded ? bf16_rounded : NULL, &magnitude);
        double error = w->c[row * (size_t)s->n + column] - sum;
        if (error < 0) error = -error;
        if (error > 4.0 * sqrt((double)s->k) * 0x1p-24 * magnitude + 1e-6) return false;
    }
    return true;
}

/* Times one shape and prints its row. Returns 0, 1 out of memory, or
 * EXIT_WRONG. */
static int bench_shape(gemm_pool *pool, const gemm_shape *s, int reps, double *times, const bool *present) {
    unsigned seed = 12345u;
    size_t size_a = (size_t)s->m * s->k, size_b = (size_t)s->k * s->n, size_c = (size_t)s->m * s->n;
    float *a = random_floats(size_a, &seed), *b = random_floats(size_b, &seed);
    uint16_t *a_bits = a ? to_bf16(a, size_a) : NULL, *b_bits = b ? to_bf16(b, size_b) : NULL;
    float *c[IMPLEMENTATIONS];
    bool ran = a && b && a_bits && b_bits;
    for (int i = 0; i < IMPLEMENTATIONS; i++) {
        c[i] = random_floats(size_c, &seed);
        ran &= c[i] != NULL;
    }
    gemm_work work[IMPLEMENTATIONS];
    for (int i = 0; i < IMPLEMENTATIONS; i++) work[i] = (gemm_work){s, i, a, b, a_bits, b_bits, c[i]};
    for (int i = 0; i < IMPLEMENTATIONS && ran; i++) ran = !present[i] || pool_run(pool, &work[i]); /* warm-up */
    for (int r = 0; r < reps && ran; r++)
        for (int i = 0; i < IMPLEMENTATIONS && ran; i++) {
            if (!present[i]) continue;
            double start = now_seconds();
            ran = pool_run(pool, &work[i]);
            times[i * reps + r] = now_seconds() - start;
        }
    int status = ran ? 0 : 1;
    for (int i = 0; i < IMPLEMENTATIONS && status == 0; i++)
        if (present[i] && !product_checks(&work[i], implementations[i].bf16)) {
            fprintf(stderr, "bgemm_bench: %s computed a wrong product for %s\n", implementations[i].name, s->label);
            status = EXIT_WRONG;
        }
    if (status == 0) {
        double flops = 2.0 * s->m * s->n * s->k, rate[IMPLEMENTATIONS];
        for (int i = 0; i < IMPLEMENTATIONS; i++)
            rate[i] = present[i] ? flops / sort_and_median(times + i * reps, reps) * 1e-9 : 0;
        printf("| %s | %d,%d,%d,%c,%c | %.1f |", s->label, s->m, s->k, s->n, s->ta ? 't' : 'n', s->tb ? 't' : 'n',
               rate[0]);
        for (int i = 1; i < IMPLEMENTATIONS; i++)
            if (present[i]) printf(" %.1f (%.2fx) |", rate[i], rate[i] / rate[0]);
            else printf(" |");
        printf("\n");
        fflush(stdout);
    }
    free(a);
    free(b);
    free(a_bits);
    free(b_bits);
    for (int i = 0; i < IMPLEMENTATIONS; i++) free(c[i]);
    return status;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s THREADS REPS LABEL=M,K,N,TA,TB...\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[1]), reps = atoi(argv[2]);
    if (threads < 1 || threads > MAX_THREADS || reps < 1) {
        fprintf(stderr, "bgemm_bench: THREADS must be 1..%d and REPS positive, got '%s' and '%s'\n", MAX_THREADS,
                argv[1], argv[2]);
        return 2;
    }
    cpu_bgemm_path best = cpu_bgemm_best_path();
    if (best < CPU_BGEMM_AVX512 || !cpu_sgemm_available()) {
        fprintf(stderr, "bgemm_bench: this CPU lacks AVX512_BF16 (or AVX-512F): nothing to time\n");
        return EXIT_UNAVAILABLE;
    }
    double *times = malloc(sizeof(double) * (size_t)reps * IMPLEMENTATIONS);
    gemm_pool pool;
    if (!times || pool_start(&pool, threads, run_chunk) != 0) {
        fprintf(stderr, "bgemm_bench: could not set up %d thread(s)\n", threads);
        return 1;
    }
    bool present[IMPLEMENTATIONS];
    printf("| product | M,K,N,TA,TB |");
    for (int i = 0; i < IMPLEMENTATIONS; i++) {
        present[i] = !implementations[i].bf16 || implementations[i].path <= best;
        printf(" %s GFLOP/s%s |", implementations[i].name, i ? " (/ sgemm)" : "");
    }
    printf("\n|---|---|---:|---:|---:|---:|\n");
    int status = 0;
    for (int i = 3; i < argc && status == 0; i++) {
        gemm_shape shape;
        if (parse_shape(argv[i], &shape) != 0) {
            fprintf(stderr, "bgemm_bench: shape '%s' is not LABEL=M,K,N,TA,TB (TA/TB n or t)\n", argv[i]);
            status = 2;
        } else {
            status = bench_shape(&pool, &shape, reps, times, present);
            if (status == 1) fprintf(stderr, "bgemm_bench: out of memory for %s\n", argv[i]);
        }
    }
    pool_stop(&pool);
    free(times);
    return status;
}
