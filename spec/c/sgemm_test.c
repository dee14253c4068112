/*
 * sgemm_test.c: the AVX-512 float32 GEMM of cpu/cpu_sgemm.c against the
 * float64 reference of gemm_check.h, over random shapes that cover ragged
 * tiles and several depth, row and column blocks, both transposes, padded
 * leading dimensions, alpha, beta and a bias. Also: C is not read when beta
 * is 0 (NaN there must not leak), k == 0 and alpha == 0 only scale C, and
 * a product split into row or column blocks gives the same bits as the
 * whole (what makes results independent of the thread count); the GELU
 * output has the bits of the element-wise GELU of C; and cpu_sgemv the
 * same way. Prints why and passes when the CPU has no AVX-512.
 */
#include "cpu/cpu_elementwise_f32.h"
#include "cpu/cpu_sgemm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gemm_check.h"

/* The operands are float32, so the reference reads them as they are. */
typedef gemm_values product;

static product random_product(int64_t m, int64_t n, int64_t k) {
    product p = random_geometry(m, n, k);
    p.a = random_floats(gemm_a_count(&p));
    p.b = random_floats(gemm_b_count(&p));
    p.bias = below(2) ? random_floats(n) : NULL;
    return p;
}

static void free_product(product *p) {
    free(p->a);
    free(p->b);
    free(p->bias);
}

static bool run(const product *p, float *c) {
    return cpu_sgemm(p->transpose_a, p->transpose_b, p->m, p->n, p->k, p->alpha, p->a, p->lda, p->b, p->ldb, p->beta,
                     p->bias, c, p->ldc, NULL, NULL);
}

/* The same product with the GELU output: C as without it, and the GELU of
 * C with the bits of the element-wise op. */
static void check_gelu_output(const product *p, const float *c_in, const float *c_plain) {
    size_t bytes = sizeof(float) * (size_t)(p->m * p->ldc);
    float *c = malloc(bytes), *gelu = malloc(bytes), *expected = malloc(bytes);
    memcpy(c, c_in, bytes);
    for (int64_t i = 0; i < p->m * p->ldc; i++) gelu[i] = expected[i] = -7.0f;
    CHECK(cpu_sgemm(p->transpose_a, p->transpose_b, p->m, p->n, p->k, p->alpha, p->a, p->lda, p->b, p->ldb, p->beta,
                    p->bias, c, p->ldc, gelu, NULL),
          "cpu_sgemm failed");
    CHECK(memcmp(c, c_plain, bytes) == 0, "asking for the GELU changed C (m %lld n %lld k %lld)", (long long)p->m,
          (long long)p->n, (long long)p->k);
    for (int64_t i = 0; i < p->m; i++) f32_unary(TC_GELU_TANH, c + i * p->ldc, expected + i * p->ldc, p->n);
    CHECK(memcmp(gelu, expected, bytes) == 0, "GELU output differs from the element-wise op (m %lld n %lld k %lld)",
          (long long)p->m, (long long)p->n, (long long)p->k);
    free(c);
    free(gelu);
    free(expected);
}

static void random_shapes(void) {
    for (int trial = 0; trial < 300; trial++) {
        int64_t m = 1 + below(60), n = 1 + below(80), k = 1 + below(300);
        if (trial % 40 == 0) { /* several row, column and depth blocks */
            m = 150 + below(200);
            n = 1030 + below(100);
            k = 520 + below(40);
        }
        product p = random_product(m, n, k);
        float *c_in = random_floats(m * p.ldc), *c = copy_floats(c_in, m * p.ldc);
        CHECK(run(&p, c), "cpu_sgemm failed");
        check_against_reference(&p, c_in, c, "random shape");
        if (trial % 3 == 0) check_gelu_output(&p, c_in, c);
        free(c_in);
        free(c);
        free_product(&p);
    }
}

/* beta == 0: C's old contents (NaN here) are not read; k == 0 and
 * alpha == 0: C = beta C + bias without reading a or b (NaN there). */
static void special_cases(void) {
    product p = random_product(13, 33, 17);
    p.beta = 0.0f;
    float *c = malloc(sizeof(float) * (size_t)(p.m * p.ldc));
    for (int64_t i = 0; i < p.m * p.ldc; i++) c[i] = NAN;
    float *c_in = malloc(sizeof(float) * (size_t)(p.m * p.ldc));
    memcpy(c_in, c, sizeof(float) * (size_t)(p.m * p.ldc));
    CHECK(run(&p, c), "cpu_sgemm failed");
    check_against_reference(&p, c_in, c, "beta 0 over NaN");
    for (int64_t i = 0; i < p.m; i++)
        for (int64_t j = 0; j < p.n; j++) CHECK(!isnan(c[i * p.ldc + j]), "NaN leaked from C with beta 0");

    for (int variant = 0; variant < 2; variant++) {
        product q = p;
        q.beta = 0.5f;
        if (variant == 0) q.k = 0; else q.alpha = 0.0f;
        float nan_operand = NAN;
        q.a = q.b = &nan_operand; /* must not be read */
        q.lda = q.ldb = 1;
        for (int64_t i = 0; i < q.m * q.ldc; i++) c[i] = c_in[i] = uniform();
        float *plain = malloc(sizeof(float) * (size_t)(q.m * q.ldc));
        memcpy(plain, c, sizeof(float) * (size_t)(q.m * q.ldc));
        CHECK(run(&q, plain), "cpu_sgemm failed");
        check_gelu_output(&q, c_in, plain);
        free(plain);
        CHECK(run(&q, c), "cpu_sgemm failed");
        for (int64_t i = 0; i < q.m; i++)
            for (int64_t j = 0; j < q.n; j++) {
                float expected = 0.5f * c_in[i * q.ldc + j] + (q.bias ? q.bias[j] : 0.0f);
                CHECK(fabsf(c[i * q.ldc + j] - expected) <= 1e-6f, "%s: C must be beta C + bias",
                      variant == 0 ? "k 0" : "alpha 0");
            }
    }
    free(c);
    free(c_in);
    free_product(&p);
}

/* Row blocks and column blocks computed separately (as threads do) give the
 * bits of the whole product. */
static void split_invariance(void) {
    for (int trial = 0; trial < 20; trial++) {
        int64_t m = 20 + below(100), n = 40 + below(100), k = 1 + below(600);
        product p = random_product(m, n, k);
        size_t bytes = sizeof(float) * (size_t)(m * p.ldc);
        float *c_in = random_floats(m * p.ldc), *whole = copy_floats(c_in, m * p.ldc);
        float *parts = copy_floats(c_in, m * p.ldc);
        CHECK(run(&p, whole), "cpu_sgemm failed");
        bool by_rows = trial % 2 == 0;
        int64_t cut = 16 * (1 + below((by_rows ? m : n) / 16 > 1 ? (by_rows ? m : n) / 16 - 1 : 1));
        if (cut >= (by_rows ? m : n)) cut = (by_rows ? m : n) / 2;
        for (int part = 0; part < 2; part++) {
            product q = p;
            float *c = parts;
            if (by_rows) {
                int64_t first = part ? cut : 0;
                q.m = part ? m - cut : cut;
                q.a = p.transpose_a ? p.a + first : p.a + first * p.lda;
                c = parts + first * p.ldc;
            } else {
                int64_t first = part ? cut : 0;
                q.n = part ? n - cut : cut;
                q.b = p.transpose_b ? p.b + first * p.ldb : p.b + first;
                q.bias = p.bias ? p.bias + first : NULL;
                c = parts + first;
            }
            CHECK(run(&q, c), "cpu_sgemm failed");
        }
        CHECK(memcmp(whole, parts, bytes) == 0, "split by %s at %lld (m %lld n %lld k %lld) changed the bits",
              by_rows ? "rows" : "columns", (long long)cut, (long long)m, (long long)n, (long long)k);
        free(c_in);
        free(whole);
        free(parts);
        free_product(&p);
    }
}

/* op(b) packed once (in two halves of its panels, as two threads would)
 * and rows of C computed from it in two parts give the bits of cpu_sgemm. */
static void shared_packing(void) {
    for (int trial = 0; trial < 20; trial++) {
        int64_t m = 2 + below(150), n = 1 + below(300), k = 1 + below(700);
        product p = random_product(m, n, k);
        size_t bytes = sizeof(float) * (size_t)(m * p.ldc);
        float *c_in = random_floats(m * p.ldc), *whole = malloc(bytes), *parts = malloc(bytes);
        float *gelu_whole = malloc(bytes), *gelu_parts = malloc(bytes);
        memcpy(whole, c_in, bytes);
        memcpy(parts, c_in, bytes);
        memset(gelu_whole, 0, bytes);
        memset(gelu_parts, 0, bytes);
        CHECK(cpu_sgemm(p.transpose_a, p.transpose_b, m, n, k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, p.bias, whole,
                        p.ldc, gelu_whole, NULL),
              "cpu_sgemm failed");
        float *packed = aligned_alloc(64, sizeof(float) * (size_t)cpu_sgemm_packed_floats(n, k));
        int64_t panels = cpu_sgemm_panel_count(n, k), half_panels = panels / 2;
        cpu_sgemm_pack(p.transpose_b, n, k, p.b, p.ldb, packed, half_panels, panels);
        cpu_sgemm_pack(p.transpose_b, n, k, p.b, p.ldb, packed, 0, half_panels);
        int64_t cut = m / 2;
        for (int part = 0; part < 2; part++) {
            int64_t first = part ? cut : 0, rows = part ? m - cut : cut;
            const float *a = p.transpose_a ? p.a + first : p.a + first * p.lda;
            cpu_sgemm_packed(p.transpose_a, rows, n, k, p.alpha, a, p.lda, packed, p.beta, p.bias,
                             parts + first * p.ldc, p.ldc, gelu_parts + first * p.ldc);
        }
        CHECK(memcmp(whole, parts, bytes) == 0 && memcmp(gelu_whole, gelu_parts, bytes) == 0,
              "shared packing changed the bits (m %lld n %lld k %lld)", (long long)m, (long long)n, (long long)k);
        free(packed);
        free(c_in);
        free(whole);
        free(parts);
        free(gelu_whole);
        free(gelu_parts);
        free_product(&p);
    }
}

/* cpu_sgemv against float64, both layouts, with alpha and beta (NaN in y
 * with beta 0 must not leak), and blocks of outputs computed apart (as
 * threads do) giving the whole's bits. */
static void matrix_vector(void) {
    for (int trial = 0; trial < 200; trial++) {
        bool transpose = below(2);
        int64_t m = 1 + below(300), n = 1 + below(300), lda = n + below(3);
        float alpha = below(2) ? 1.0f : 0.75f, beta = (float[]){0.0f, 1.0f, 0.5f}[below(3)];
        int64_t outputs = transpose ? n : m, inner = transpose ? m : n;
        float *a = random_floats(m * lda), *x = random_floats(inner), *y_in = random_floats(outputs);
        float *y = malloc(sizeof(float) * (size_t)outputs), *parts = malloc(sizeof(float) * (size_t)outputs);
        for (int64_t i = 0; i < outputs; i++) {
            y[i] = parts[i] = beta == 0.0f ? NAN : y_in[i];
            if (beta == 0.0f) y_in[i] = 0.0f;
        }
        cpu_sgemv(transpose, m, n, alpha, a, lda, x, beta, y);
        double worst = 0;
        for (int64_t o = 0; o < outputs; o++) {
            double sum = 0, magnitude = 0;
            for (int64_t i = 0; i < inner; i++) {
                double term = (double)(transpose ? a[i * lda + o] : a[o * lda + i]) * (double)x[i];
                sum += term;
                magnitude += fabs(term);
            }
            double base = beta * (double)y_in[o], expected = alpha * sum + base;
            double bound = 4.0 * (double)(inner + 2) * 0x1p-24 * (fabs(alpha) * magnitude + fabs(base)) + 1e-30;
            double error = fabs((double)y[o] - expected) / bound;
            if (!(error <= worst)) worst = error;
        }
        CHECK(worst <= 1.0, "gemv m %lld n %lld transpose %d: error %.3g of the bound", (long long)m, (long long)n,
              transpose, worst);
        int64_t cut = outputs > 64 ? 64 * (1 + below(outputs / 64)) : outputs / 2;
        if (cut >= outputs) cut = outputs / 2;
        if (transpose) {
            cpu_sgemv(true, m, cut, alpha, a, lda, x, beta, parts);
            cpu_sgemv(true, m, n - cut, alpha, a + cut, lda, x, beta, parts + cut);
        } else {
            cpu_sgemv(false, cut, n, alpha, a, lda, x, beta, parts);
            cpu_sgemv(false, m - cut, n, alpha, a + cut * lda, lda, x, beta, parts + cut);
        }
        CHECK(memcmp(y, parts, sizeof(float) * (size_t)outputs) == 0, "gemv split at %lld changed the bits",
              (long long)cut);
        free(a);
        free(x);
        free(y_in);
        free(y);
        free(parts);
    }
}

int main(void) {
    gemm_seed(0x9e3779b97f4a7c15u);
    if (!cpu_sgemm_available()) {
        printf("sgemm_test: this CPU has no AVX-512; the BLAS serves float32 GEMMs (nothing to test)\n");
        return 0;
    }
    random_shapes();
    special_cases();
    split_invariance();
    shared_packing();
    matrix_vector();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
