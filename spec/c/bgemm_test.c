/*
 * bgemm_test.c: the bfloat16 GEMM of cpu/cpu_bgemm.c on each of its paths
 * (AMX tiles, VDPBF16PS, float32 through the BLAS), against the float64
 * reference of gemm_check.h on the bf16-rounded operands, over random shapes that
 * cover ragged tiles, odd depths, several depth, row and column blocks, both
 * transposes, padded leading dimensions, alpha, beta, a bias and every mix
 * of bf16 and float32 operands. Tolerance: 4 (k + 2) float32 roundings
 * (2^-24) of the sum of the terms' magnitudes (alpha's products, the bias
 * and beta C; the products of two bf16 values are exact in float32, only
 * the sums round). Also: C is not read
 * when beta is 0, k == 0 and alpha == 0 read neither operand, splitting the
 * product into row or column blocks or sharing one packed op(b) keeps the
 * bits, the GELU output has the bits of the element-wise op, float32
 * operands give the bits of their bf16 rounding by cpu_bf16_from_float,
 * TRICYCLE_BGEMM caps the path chosen, and packed sizes past int64_t are -1.
 * Every path the CPU has is tested (AMX tiles, VDPBF16PS, the fallback), or
 * those up to TRICYCLE_BGEMM's cap.
 */
#include "cpu/cpu_bgemm.h"
#include "cpu/cpu_elementwise_f32.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gemm_check.h"

/* An operand: `count` elements of `type`, and the same values as float32
 * (bf16-rounded), for the reference. */
typedef struct operand {
    cpu_bgemm_type type;
    void *data;
    float *rounded;
} operand;

static operand random_operand(cpu_bgemm_type type, int64_t count) {
    operand x = {.type = type, .rounded = random_floats(count)};
    if (type == CPU_BGEMM_F32) {
        x.data = random_floats(count);
        for (int64_t i = 0; i < count; i++)
            x.rounded[i] = cpu_float_from_bf16(cpu_bf16_from_float(((float *)x.data)[i]));
    } else {
        uint16_t *bits = malloc(sizeof(uint16_t) * (size_t)(count > 0 ? count : 1));
        for (int64_t i = 0; i < count; i++) {
            bits[i] = cpu_bf16_from_float(x.rounded[i]);
            x.rounded[i] = cpu_float_from_bf16(bits[i]);
        }
        x.data = bits;
    }
    return x;
}

/* A pointer `elements` elements into an operand's data. */
static const void *at(const operand *x, int64_t elements) {
    return (const char *)x->data + (size_t)elements * (x->type == CPU_BGEMM_BF16 ? 2 : 4);
}

/* The geometry with the operands' rounded values (values.a, values.b) for
 * the reference, and the operands the GEMM reads. */
typedef struct product {
    gemm_values values;
    operand a, b;
} product;

static product random_product(int64_t m, int64_t n, int64_t k) {
    product p = {.values = random_geometry(m, n, k)};
    p.a = random_operand(below(2) ? CPU_BGEMM_F32 : CPU_BGEMM_BF16, gemm_a_count(&p.values));
    p.b = random_operand(below(2) ? CPU_BGEMM_F32 : CPU_BGEMM_BF16, gemm_b_count(&p.values));
    p.values.a = p.a.rounded;
    p.values.b = p.b.rounded;
    p.values.bias = below(2) ? random_floats(n) : NULL;
    return p;
}

static void free_product(product *p) {
    free(p->a.data);
    free(p->a.rounded);
    free(p->b.data);
    free(p->b.rounded);
    free(p->values.bias);
}

/* The reference check, naming the operands' types beside `what`. */
static void check_product(const product *p, const float *c_in, const float *c_out, const char *what) {
    char label[64];
    snprintf(label, sizeof label, "%s types %d %d", what, p->a.type, p->b.type);
    check_against_reference(&p->values, c_in, c_out, label);
}

static const char *const path_names[] = {"fallback", "avx512", "amx"};

static bool run(cpu_bgemm_path path, const product *p, float *c, float *gelu) {
    const gemm_values *v = &p->values;
    return cpu_bgemm(path, v->transpose_a, v->transpose_b, v->m, v->n, v->k, v->alpha, p->a.type, p->a.data, v->lda,
                     p->b.type, p->b.data, v->ldb, v->beta, v->bias, c, v->ldc, gelu, NULL);
}

/* The GELU output of a run has the bits of the element-wise GELU of its C. */
static void check_gelu(const gemm_values *v, const float *c, const float *gelu, const char *what) {
    float *expected = malloc(sizeof(float) * (size_t)(v->m * v->ldc));
    for (int64_t i = 0; i < v->m; i++) f32_unary(TC_GELU_TANH, c + i * v->ldc, expected + i * v->ldc, v->n);
    bool same = true;
    for (int64_t i = 0; i < v->m; i++)
        same &= memcmp(gelu + i * v->ldc, expected + i * v->ldc, sizeof(float) * (size_t)v->n) == 0;
    CHECK(same, "%s: GELU output differs from the element-wise op (m %lld n %lld k %lld)", what, (long long)v->m,
          (long long)v->n, (long long)v->k);
    free(expected);
}

/* Both paths on random shapes, each against the reference; every third
 * also with the GELU output. */
static void random_shapes(cpu_bgemm_path best) {
    for (int trial = 0; trial < 300; trial++) {
        int64_t m = 1 + below(60), n = 1 + below(80), k = 1 + below(300);
        if (trial % 50 == 0) { /* several row, column and depth blocks */
            m = 150 + below(100);
            n = 1030 + below(60);
            k = 1030 + below(40);
        }
        product p = random_product(m, n, k);
        float *c_in = random_floats(m * p.values.ldc);
        for (cpu_bgemm_path path = CPU_BGEMM_FALLBACK; path <= best; path++) {
            const char *what = path_names[path];
            float *c = copy_floats(c_in, m * p.values.ldc);
            float *gelu = trial % 3 == 0 ? random_floats(m * p.values.ldc) : NULL;
            CHECK(run(path, &p, c, gelu), "%s cpu_bgemm failed", what);
            check_product(&p, c_in, c, what);
            if (gelu) check_gelu(&p.values, c, gelu, what);
            free(c);
            free(gelu);
        }
        free(c_in);
        free_product(&p);
    }
}

/* beta == 0: C's old contents (NaN here) are not read; k == 0 and
 * alpha == 0: C = beta C + bias without reading a or b (NaN there). */
static void special_cases(cpu_bgemm_path best) {
    for (cpu_bgemm_path path = CPU_BGEMM_FALLBACK; path <= best; path++) {
        product p = random_product(13, 33, 17);
        p.values.beta = 0.0f;
        int64_t size = p.values.m * p.values.ldc;
        float *c_in = malloc(sizeof(float) * (size_t)size);
        for (int64_t i = 0; i < size; i++) c_in[i] = NAN;
        float *c = copy_floats(c_in, size);
        CHECK(run(path, &p, c, NULL), "cpu_bgemm failed");
        check_product(&p, c_in, c, path_names[path]);
        for (int variant = 0; variant < 2; variant++) {
            product q = p;
            q.values.beta = 0.5f;
            if (variant == 0) q.values.k = 0; else q.values.alpha = 0.0f;
            float nan_operand = NAN;
            q.a.data = q.b.data = &nan_operand; /* must not be read */
            q.a.type = q.b.type = CPU_BGEMM_F32;
            q.values.lda = q.values.ldb = 1;
            for (int64_t i = 0; i < size; i++) c[i] = c_in[i] = uniform();
            float *gelu = random_floats(size);
            CHECK(run(path, &q, c, gelu), "cpu_bgemm failed");
            bool right = true;
            for (int64_t i = 0; i < q.values.m; i++)
                for (int64_t j = 0; j < q.values.n; j++) {
                    float expected = 0.5f * c_in[i * q.values.ldc + j] + (q.values.bias ? q.values.bias[j] : 0.0f);
                    right &= fabsf(c[i * q.values.ldc + j] - expected) <= 1e-6f;
                }
            CHECK(right, "%s, %s: C must be beta C + bias", path_names[path],
                  variant == 0 ? "k 0" : "alpha 0");
            check_gelu(&q.values, c, gelu, "nothing to sum");
            free(gelu);
        }
        free(c);
        free(c_in);
        free_product(&p);
    }
}

/* Row blocks and column blocks computed separately (as threads do) give the
 * bits of the whole product. */
static void split_invariance(cpu_bgemm_path path) {
    for (int trial = 0; trial < 20; trial++) {
        int64_t m = 20 + below(100), n = 40 + below(100), k = 1 + below(1200);
        product p = random_product(m, n, k);
        int64_t size = m * p.values.ldc;
        float *c_in = random_floats(size), *whole = copy_floats(c_in, size), *parts = copy_floats(c_in, size);
        CHECK(run(path, &p, whole, NULL), "cpu_bgemm failed");
        bool by_rows = trial % 2 == 0;
        int64_t extent = by_rows ? m : n, cut = 16 * (1 + below(extent / 16 > 1 ? extent / 16 - 1 : 1));
        if (cut >= extent) cut = extent / 2;
        for (int part = 0; part < 2; part++) {
            product q = p;
            int64_t first = part ? cut : 0;
            float *c = parts;
            if (by_rows) {
                q.values.m = part ? m - cut : cut;
                q.a.data = (void *)at(&p.a, p.values.transpose_a ? first : first * p.values.lda);
                c = parts + first * p.values.ldc;
            } else {
                q.values.n = part ? n - cut : cut;
                q.b.data = (void *)at(&p.b, p.values.transpose_b ? first * p.values.ldb : first);
                q.values.bias = p.values.bias ? p.values.bias + first : NULL;
                c = parts + first;
            }
            CHECK(run(path, &q, c, NULL), "cpu_bgemm failed");
        }
        CHECK(memcmp(whole, parts, sizeof(float) * (size_t)size) == 0,
              "%s: split by %s at %lld (m %lld n %lld k %lld) changed the bits", path_names[path],
              by_rows ? "rows" : "columns",
              (long long)cut, (long long)m, (long long)n, (long long)k);
        free(c_in);
        free(whole);
        free(parts);
        free_product(&p);
    }
}

/* op(b) packed once (in two halves of its panels, as two threads would)
 * and rows of C computed from it in two parts give the bits of cpu_bgemm. */
static void shared_packing(cpu_bgemm_path path) {
    for (int trial = 0; trial < 20; trial++) {
        int64_t m = 2 + below(150), n = 1 + below(300), k = 1 + below(1300);
        product p = random_product(m, n, k);
        int64_t size = m * p.values.ldc;
        float *c_in = random_floats(size), *whole = copy_floats(c_in, size), *parts = copy_floats(c_in, size);
        float *gelu_whole = calloc((size_t)size, sizeof(float)), *gelu_parts = calloc((size_t)size, sizeof(float));
        CHECK(run(path, &p, whole, gelu_whole), "cpu_bgemm failed");
        void *packed = aligned_alloc(64, (size_t)cpu_bgemm_packed_bytes(n, k));
        int64_t panels = cpu_bgemm_panel_count(n, k), half_panels = panels / 2;
        const gemm_values *v = &p.values;
        cpu_bgemm_pack(path, p.b.type, v->transpose_b, n, k, p.b.data, v->ldb, packed, half_panels, panels);
        cpu_bgemm_pack(path, p.b.type, v->transpose_b, n, k, p.b.data, v->ldb, packed, 0, half_panels);
        int64_t cut = m / 2;
        for (int part = 0; part < 2; part++) {
            int64_t first = part ? cut : 0, rows = part ? m - cut : cut;
            const void *a = at(&p.a, v->transpose_a ? first : first * v->lda);
            CHECK(cpu_bgemm_packed(path, p.a.type, v->transpose_a, rows, n, k, v->alpha, a, v->lda, packed, v->beta,
                                   v->bias, parts + first * v->ldc, v->ldc, gelu_parts + first * v->ldc),
                  "cpu_bgemm_packed failed");
        }
        CHECK(memcmp(whole, parts, sizeof(float) * (size_t)size) == 0 &&
                  memcmp(gelu_whole, gelu_parts, sizeof(float) * (size_t)size) == 0,
              "%s: shared packing changed the bits (m %lld n %lld k %lld)", path_names[path], (long long)m,
              (long long)n, (long long)k);
        free(packed);
        free(c_in);
        free(whole);
        free(parts);
        free(gelu_whole);
        free(gelu_parts);
        free_product(&p);
    }
}

/* float32 operands rounded while packing (VCVTNE2PS2BF16) give the bits of
 * the same operands rounded first by cpu_bf16_from_float: random values,
 * ties of the rounding (both directions), subnormals (to signed zero) and
 * values that round up to infinity. */
static void conversion_matches(cpu_bgemm_path path) {
    cpu_bgemm_type kinds[2] = {CPU_BGEMM_F32, CPU_BGEMM_BF16};
    for (int trial = 0; trial < 8; trial++) {
        int64_t m = 5 + below(30), n = 5 + below(70), k = 1 + below(90);
        bool ta = trial & 1, tb = trial & 2;
        float *a = random_floats(m * k), *b = random_floats(k * n);
        for (int64_t i = 0; i < m * k; i += 7) { /* specials among ordinary values */
            uint32_t special[4] = {0x3f808000u, 0x3f818000u, 0x00400000u | (uint32_t)(i & 1) << 31, 0x7f7fffffu};
            memcpy(&a[i], &special[i % 4], sizeof(float));
        }
        uint16_t *a_bits = malloc(sizeof(uint16_t) * (size_t)(m * k));
        uint16_t *b_bits = malloc(sizeof(uint16_t) * (size_t)(k * n));
        for (int64_t i = 0; i < m * k; i++) a_bits[i] = cpu_bf16_from_float(a[i]);
        for (int64_t i = 0; i < k * n; i++) b_bits[i] = cpu_bf16_from_float(b[i]);
        size_t bytes = sizeof(float) * (size_t)(m * n);
        float *c[2] = {malloc(bytes), malloc(bytes)};
        for (int kind = 0; kind < 2; kind++)
            CHECK(cpu_bgemm(path, ta, tb, m, n, k, 1.0f, kinds[kind], kind ? (const void *)a_bits : a, ta ? m : k,
                            kinds[kind], kind ? (const void *)b_bits : b, tb ? k : n, 0.0f, NULL, c[kind], n, NULL,
                            NULL),
                  "cpu_bgemm failed");
        CHECK(memcmp(c[0], c[1], bytes) == 0, "%s: float32 operands (ta %d tb %d) differ from their bf16 rounding",
              path_names[path], ta, tb);
        free(a);
        free(b);
        free(a_bits);
        free(b_bits);
        free(c[0]);
        free(c[1]);
    }
    uint16_t tie_down = cpu_bf16_from_float(1.0f + 0x1p-8f), tie_up = cpu_bf16_from_float(1.0f + 3 * 0x1p-8f);
    CHECK(tie_down == 0x3f80 && tie_up == 0x3f82, "ties round to even: got %04x %04x", tie_down, tie_up);
    CHECK(cpu_bf16_from_float(-1e-39f) == 0x8000 && cpu_bf16_from_float(3.4e38f) == 0x7f80 &&
              (cpu_bf16_from_float(NAN) & 0x7fc0) == 0x7fc0,
          "subnormal, overflow and NaN conversions");
}

/* TRICYCLE_BGEMM=fallback turns the native paths off, =avx512 the AMX
 * path; anything else leaves the CPU's best. */
static void environment_switch(cpu_bgemm_path best) {
    setenv("TRICYCLE_BGEMM", "fallback", 1);
    CHECK(cpu_bgemm_choose_path() == CPU_BGEMM_FALLBACK, "TRICYCLE_BGEMM=fallback must choose the fallback");
    setenv("TRICYCLE_BGEMM", "avx512", 1);
    CHECK(cpu_bgemm_choose_path() == (best < CPU_BGEMM_AVX512 ? best : CPU_BGEMM_AVX512),
          "TRICYCLE_BGEMM=avx512 must leave out AMX only");
    setenv("TRICYCLE_BGEMM", "other", 1);
    CHECK(cpu_bgemm_choose_path() == best, "another TRICYCLE_BGEMM must leave the CPU's best");
    unsetenv("TRICYCLE_BGEMM");
    CHECK(cpu_bgemm_choose_path() == best, "without TRICYCLE_BGEMM the CPU decides");
}

/* Packed sizes: exact for ordinary shapes, -1 (not a wrapped value) past
 * int64_t and for negative sizes. */
static void packed_sizes(void) {
    CHECK(cpu_bgemm_packed_bytes(33, 3) == 4 * 64 * 16, "packed bytes of 33 x 3: %lld",
          (long long)cpu_bgemm_packed_bytes(33, 3));
    CHECK(cpu_bgemm_packed_bytes(INT32_MAX, INT32_MAX) == -1, "2^31 x 2^31 must not fit");
    CHECK(cpu_bgemm_packed_bytes(INT64_MAX, 1) == -1 && cpu_bgemm_packed_bytes(1, INT64_MAX) == -1,
          "INT64_MAX must not fit");
    CHECK(cpu_bgemm_packed_bytes(-1, 4) == -1, "negative n");
}

int main(void) {
    gemm_seed(0x2545f4914f6cdd1du);
    /* TRICYCLE_BGEMM caps the paths tested, so a run can test what a CPU without AMX or AVX512_BF16 would */
    cpu_bgemm_path best = cpu_bgemm_best_path(), tested = cpu_bgemm_choose_path();
    printf("bgemm_test: paths tested: fallback%s%s\n", tested >= CPU_BGEMM_AVX512 ? ", avx512" : "",
           tested >= CPU_BGEMM_AMX ? ", amx" : "");
    random_shapes(tested);
    special_cases(tested);
    for (cpu_bgemm_path path = CPU_BGEMM_AVX512; path <= tested; path++) {
        split_invariance(path);
        shared_packing(path);
        conversion_matches(path);
    }
    environment_switch(best);
    packed_sizes();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
