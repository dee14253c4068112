/*
 * optim_bits_test.c: the AdamW and SGD steps bit for bit against plain
 * scalar loops, in float32 and float64, over random values of many
 * magnitudes (zeros, subnormals, signed zeros included), tensor sizes that
 * leave ragged ends and cross span boundaries, several hyper-parameter sets
 * (with and without weight decay, bias corrections of steps 1 to 1000), and
 * one and two threads. The references spell out the element arithmetic the
 * kernels promise: coefficients prepared in double and rounded to the
 * element type, every operation in the element type, in this order.
 * Prints one line per failure and ends with "N passed, M failed".
 */
#include "tricycle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static unsigned long long random_state = 12345;

static unsigned long long next_random(void) {
    random_state = random_state * 6364136223846793005ull + 1442695040888963407ull;
    return random_state >> 11;
}

/* A value in (-2^8, 2^8) scaled by 2^-e for e up to 140 (so float32
 * subnormals and underflow appear), with exact zeros of both signs now and
 * then. */
static double random_value(void) {
    unsigned long long r = next_random();
    if (r % 50 == 0) return (r / 50) % 2 ? 0.0 : -0.0;
    double unit = (double)(next_random() >> 1) / (double)(1ull << 52) - 1.0;
    return ldexp(unit, 8 - (int)(next_random() % 149));
}

#define TENSORS 7
static const int64_t sizes[TENSORS] = {1, 15, 16, 17, 8192, 8197, 20003};
static const int64_t steps[TENSORS] = {1, 2, 7, 1, 1000, 3, 10};

typedef struct adamw_case {
    double lr, beta1, beta2, eps, weight_decay;
} adamw_case;

static const adamw_case adamw_cases[] = {
    {1e-3, 0.9, 0.999, 1e-8, 0.0},
    {1e-3, 0.9, 0.99, 1e-8, 0.1},
    {0.02, 0.8, 0.9, 1e-6, 0.5},
    {3e-4, 0.0, 0.0, 0.0, 0.01},
};

typedef struct sgd_case {
    double lr, momentum, dampening, weight_decay;
    bool nesterov;
} sgd_case;

static const sgd_case sgd_cases[] = {
    {0.1, 0.0, 0.0, 0.0, false}, {0.01, 0.0, 0.0, 0.05, false}, {0.1, 0.9, 0.0, 0.0, false},
    {0.05, 0.9, 0.1, 0.01, false}, {0.1, 0.9, 0.0, 0.01, true},
};

/* The reference AdamW and SGD in the element type T. */
#define REFERENCES(T, SQRT)                                                                                        \
    static void adamw_reference_##T(const adamw_case *c, int64_t step, T *p, T *m, T *v, const T *g, int64_t n) { \
        const T b1 = (T)c->beta1, one_minus_b1 = (T)(1.0 - c->beta1);                                             \
        const T b2 = (T)c->beta2, one_minus_b2 = (T)(1.0 - c->beta2);                                              \
        const T decay = (T)(c->lr * c->weight_decay), epsilon = (T)c->eps;                                         \
        const double bias1 = 1.0 - pow(c->beta1, (double)step), bias2 = 1.0 - pow(c->beta2, (double)step);        \
        const T step_size = (T)(c->lr / bias1), inverse_sqrt_bias2 = (T)(1.0 / sqrt(bias2));                       \
        for (int64_t k = 0; k < n; k++) {                                                                          \
            T mi = b1 * m[k] + one_minus_b1 * g[k];                                                                \
            T vi = b2 * v[k] + one_minus_b2 * g[k] * g[k];                                                         \
            m[k] = mi;                                                                                             \
            v[k] = vi;                                                                                             \
            T decayed = p[k] - decay * p[k];                                                                       \
            p[k] = decayed - step_size * mi / (SQRT(vi) * inverse_sqrt_bias2 + epsilon);                           \
        }                                                                                                          \
    }                                                                                                              \
    static void sgd_reference_##T(const sgd_case *c, T *p, T *buffer, const T *grad, int64_t n) {                  \
        const T mu = (T)c->momentum, keep = (T)(1.0 - c->dampening), wd = (T)c->weight_decay, rate = (T)c->lr;     \
        for (int64_t k = 0; k < n; k++) {                                                                          \
            T g = grad[k] + wd * p[k];                                                                             \
            if (buffer) {                                                                                          \
                buffer[k] = mu * buffer[k] + keep * g;                                                             \
                g = c->nesterov ? g + mu * buffer[k] : buffer[k];                                                  \
            }                                                                                                      \
            p[k] = p[k] - rate * g;                                                                                \
        }                                                                                                          \
    }
REFERENCES(float, sqrtf)
REFERENCES(double, sqrt)

/* Fills raw (numel elements of dtype) with random values; nonnegative when
 * asked (the second moment). */
static void fill(tc_dtype dtype, void *raw, int64_t numel, bool nonnegative) {
    for (int64_t k = 0; k < numel; k++) {
        double x = random_value();
        if (nonnegative) x = fabs(x);
        if (dtype == TC_FLOAT32) ((float *)raw)[k] = (float)x;
        else ((double *)raw)[k] = x;
    }
}

static size_t element_size(tc_dtype dtype) { return dtype == TC_FLOAT32 ? sizeof(float) : sizeof(double); }

/* New tensors of every size, filled; `copies` gets a private copy of the
 * starting values. Returns false (after a FAIL line) if one could not be
 * made. */
static bool make_tensors(tc_context *ctx, tc_dtype dtype, tc_tensor **tensors, void **copies, bool nonnegative) {
    for (int i = 0; i < TENSORS; i++) {
        tensors[i] = NULL;
        copies[i] = NULL;
    }
    for (int i = 0; i < TENSORS; i++) {
        if (tc_empty(ctx, dtype, 1, &sizes[i], &tensors[i]) != TC_OK) {
            CHECK(false, "tc_empty: %s", tc_last_error(ctx));
            return false;
        }
        size_t bytes = element_size(dtype) * (size_t)sizes[i];
        fill(dtype, tc_tensor_data(tensors[i]), sizes[i], nonnegative);
        copies[i] = malloc(bytes);
        if (!copies[i]) {
            CHECK(false, "out of memory");
            return false;
        }
        memcpy(copies[i], tc_tensor_data(tensors[i]), bytes);
    }
    return true;
}

static void free_tensors(tc_tensor **tensors, void **copies) {
    for (int i = 0; i < TENSORS; i++) {
        tc_tensor_release(tensors[i]);
        free(copies[i]);
    }
}

/* The first element of `count` elements whose bits differ, or -1. */
static int64_t first_difference(tc_dtype dtype, const void *a, const void *b, int64_t count) {
    size_t size = element_size(dtype);
    for (int64_t k = 0; k < count; k++)
        if (memcmp((const char *)a + k * size, (const char *)b + k * size, size)) return k;
    return -1;
}

static void check_same_bits(tc_dtype dtype, const char *what, const char *name, int c, int threads, int i,
                            tc_tensor *actual, const void *expected) {
    int64_t k = first_difference(dtype, tc_tensor_data(actual), expected, sizes[i]);
    CHECK(k < 0, "%s %s (case %d, %d threads, size %lld): element %lld differs from the scalar loop", what, name, c,
          threads, (long long)sizes[i], (long long)k);
}

static void test_adamw(tc_context *ctx, tc_dtype dtype, int threads) {
    tc_set_num_threads(ctx, threads);
    for (int c = 0; c < (int)(sizeof adamw_cases / sizeof adamw_cases[0]); c++) {
        tc_tensor *p[TENSORS], *g[TENSORS], *m[TENSORS], *v[TENSORS];
        void *p0[TENSORS], *g0[TENSORS], *m0[TENSORS], *v0[TENSORS];
        bool made = make_tensors(ctx, dtype, p, p0, false) & make_tensors(ctx, dtype, g, g0, false) &
                    make_tensors(ctx, dtype, m, m0, false) & make_tensors(ctx, dtype, v, v0, true);
        if (made) {
            const adamw_case *a = &adamw_cases[c];
            tc_status status =
                tc_adamw_step_many(TENSORS, p, g, m, v, steps, a->lr, a->beta1, a->beta2, a->eps, a->weight_decay);
            CHECK(status == TC_OK, "adamw_step_many: %s", tc_last_error(ctx));
            for (int i = 0; i < TENSORS && status == TC_OK; i++) {
                if (dtype == TC_FLOAT32)
                    adamw_reference_float(a, steps[i], p0[i], m0[i], v0[i], g0[i], sizes[i]);
                else
                    adamw_reference_double(a, steps[i], p0[i], m0[i], v0[i], g0[i], sizes[i]);
                check_same_bits(dtype, "adamw", "param", c, threads, i, p[i], p0[i]);
                check_same_bits(dtype, "adamw", "m", c, threads, i, m[i], m0[i]);
                check_same_bits(dtype, "adamw", "v", c, threads, i, v[i], v0[i]);
            }
        }
        free_tensors(p, p0);
        free_tensors(g, g0);
        free_tensors(m, m0);
        free_tensors(v, v0);
    }
}

static void test_sgd(tc_context *ctx, tc_dtype dtype, int threads) {
    tc_set_num_threads(ctx, threads);
    for (int c = 0; c < (int)(sizeof sgd_cases / sizeof sgd_cases[0]); c++) {
        const sgd_case *s = &sgd_cases[c];
        tc_tensor *p[TENSORS], *g[TENSORS], *b[TENSORS];
        void *p0[TENSORS], *g0[TENSORS], *b0[TENSORS];
        bool made = make_tensors(ctx, dtype, p, p0, false) & make_tensors(ctx, dtype, g, g0, false) &
                    make_tensors(ctx, dtype, b, b0, false);
        for (int i = 0; i < TENSORS && made; i++) {
            bool momentum = s->momentum != 0;
            tc_status status =
                tc_sgd_step(p[i], g[i], momentum ? b[i] : NULL, s->lr, s->momentum, s->dampening, s->nesterov,
                            s->weight_decay);
            CHECK(status == TC_OK, "sgd_step: %s", tc_last_error(ctx));
            if (status != TC_OK) break;
            if (dtype == TC_FLOAT32) sgd_reference_float(s, p0[i], momentum ? b0[i] : NULL, g0[i], sizes[i]);
            else sgd_reference_double(s, p0[i], momentum ? b0[i] : NULL, g0[i], sizes[i]);
            check_same_bits(dtype, "sgd", "param", c, threads, i, p[i], p0[i]);
            check_same_bits(dtype, "sgd", "momentum buffer", c, threads, i, b[i], b0[i]);
        }
        free_tensors(p, p0);
        free_tensors(g, g0);
        free_tensors(b, b0);
    }
}

int main(void) {
    tc_context *ctx = tc_context_new();
    if (!ctx) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    const tc_dtype dtypes[2] = {TC_FLOAT32, TC_FLOAT64};
    for (int d = 0; d < 2; d++) {
        for (int threads = 1; threads <= 2; threads++) {
            test_adamw(ctx, dtypes[d], threads);
            test_sgd(ctx, dtypes[d], threads);
        }
    }
    tc_context_free(ctx);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
