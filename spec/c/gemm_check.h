/*
 * gemm_check.h: what the GEMM tests (sgemm_test.c, bgemm_test.c) share: a
 * seeded random stream, random products (transposes, padded leading
 * dimensions, alpha, beta) and the float64 reference C is checked against.
 * Included after check.h by one .c file per program.
 */
#ifndef TRICYCLE_SPEC_GEMM_CHECK_H
#define TRICYCLE_SPEC_GEMM_CHECK_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* xorshift64; each program seeds it (gemm_seed) so its draws stay its own. */
static uint64_t random_state = 1;

static void gemm_seed(uint64_t seed) { random_state = seed; }

static uint64_t next_random(void) {
    random_state ^= random_state << 13;
    random_state ^= random_state >> 7;
    random_state ^= random_state << 17;
    return random_state;
}

static float uniform(void) { return (float)((double)(next_random() >> 11) / 9007199254740992.0) - 0.5f; }

static int64_t below(int64_t n) { return (int64_t)(next_random() % (uint64_t)n); }

static float *random_floats(int64_t n) {
    float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) x[i] = uniform();
    return x;
}

static float *copy_floats(const float *x, int64_t n) {
    float *y = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    memcpy(y, x, sizeof(float) * (size_t)n);
    return y;
}

/* C = alpha op(a) op(b) + beta C + bias as the reference sees it: a and b
 * are the operands' values as float32 (the bf16 GEMM's after rounding). */
typedef struct gemm_values {
    bool transpose_a, transpose_b;
    int64_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
    float *a, *b, *bias;
} gemm_values;

/* A random geometry for an m x n x k product: transposes, leading
 * dimensions padded by up to 2, alpha and beta; no operands yet. */
static gemm_values random_geometry(int64_t m, int64_t n, int64_t k) {
    gemm_values p = {.transpose_a = below(2), .transpose_b = below(2), .m = m, .n = n, .k = k};
    p.lda = (p.transpose_a ? m : k) + below(3);
    p.ldb = (p.transpose_b ? k : n) + below(3);
    p.ldc = n + below(3);
    if (p.lda < 1) p.lda = 1;
    if (p.ldb < 1) p.ldb = 1;
    p.alpha = below(3) == 0 ? 1.0f : 0.75f;
    p.beta = (float[]){0.0f, 1.0f, 0.5f}[below(3)];
    return p;
}

/* How many stored elements op(a) and op(b) span. */
static int64_t gemm_a_count(const gemm_values *p) { return (p->transpose_a ? p->k : p->m) * p->lda; }
static int64_t gemm_b_count(const gemm_values *p) { return (p->transpose_b ? p->n : p->k) * p->ldb; }

/* Checks c_out against the product in float64, and that the padding of C's
 * rows is untouched. Tolerance: 4 (k + 2) float32 roundings of the sum of
 * the terms' magnitudes, with the bias and beta C as terms of their own
 * (the kernels add them in separate roundings). */
static void check_against_reference(const gemm_values *p, const float *c_in, const float *c_out, const char *what) {
    double worst = 0;
    for (int64_t i = 0; i < p->m; i++)
        for (int64_t j = 0; j < p->n; j++) {
            double sum = 0, magnitude = 0;
            for (int64_t k = 0; k < p->k; k++) {
                double x = p->transpose_a ? p->a[k * p->lda + i] : p->a[i * p->lda + k];
                double y = p->transpose_b ? p->b[j * p->ldb + k] : p->b[k * p->ldb + j];
                sum += x * y;
                magnitude += fabs(x * y);
            }
            double bias = p->bias ? p->bias[j] : 0.0;
            double scaled = p->beta != 0.0f ? p->beta * (double)c_in[i * p->ldc + j] : 0;
            double expected = p->alpha * sum + bias + scaled;
            double terms = fabs(p->alpha) * magnitude + fabs(bias) + fabs(scaled);
            double bound = 4.0 * (double)(p->k + 2) * 0x1p-24 * terms + 1e-30;
            double error = fabs((double)c_out[i * p->ldc + j] - expected) / bound;
            if (!(error <= worst)) worst = error; /* NaN counts as the worst */
        }
    CHECK(worst <= 1.0, "%s: m %lld n %lld k %lld ta %d tb %d: error %.3g of the bound", what, (long long)p->m,
          (long long)p->n, (long long)p->k, p->transpose_a, p->transpose_b, worst);
    for (int64_t i = 0; i < p->m; i++)
        for (int64_t j = p->n; j < p->ldc; j++)
            CHECK(memcmp(&c_out[i * p->ldc + j], &c_in[i * p->ldc + j], sizeof(float)) == 0,
                  "%s: padding of row %lld changed", what, (long long)i);
}

#endif
