/*
 * attention_rows_test.c: float32 attention (forward and the qkv gradient)
 * against float64 over sequence lengths that give every ragged case of the
 * vectorised row kernels: key counts below, at and past multiples of 16,
 * partial groups of rows, several query blocks of 64; causal and not; head
 * sizes 2 and 32. The float64 path itself is checked by finite differences
 * in fused_test.c. Also: float32 results are the same bits with one and
 * with two threads.
 * Prints one line per failure and ends with "N passed, M failed".
 */
#include "tricycle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Deterministic values in [-scale, scale). */
static void fill_values(double *values, int64_t n, unsigned seed, double scale) {
    unsigned long long state = seed;
    for (int64_t i = 0; i < n; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        values[i] = scale * ((double)(state >> 11) / (double)(1ull << 52) - 1.0);
    }
}

/* Worst |actual - expected| / (1 + |expected|) (NaN counts as worst). */
static double max_relative_error(const double *actual, const double *expected, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(actual[i] - expected[i]) / (1.0 + fabs(expected[i]));
        if (!(e <= worst)) worst = e;
    }
    return worst;
}

typedef struct attention_result {
    double *out, *grad;     /* as doubles */
    void *out_raw, *grad_raw; /* the tensors' own bytes */
    size_t out_bytes, grad_bytes;
} attention_result;

static void result_free(attention_result *r) {
    free(r->out);
    free(r->grad);
    free(r->out_raw);
    free(r->grad_raw);
    memset(r, 0, sizeof *r);
}

/* Forward of qkv {B, T, 3C} and backward of sum(out * weights); false
 * (after a FAIL line) if a call failed. */
static bool run_attention(tc_context *ctx, tc_dtype dtype, int64_t B, int64_t T, int64_t C, int64_t H, bool causal,
                          const double *qkv, const double *weights, attention_result *result) {
    int64_t shape[3] = {B, T, 3 * C}, out_shape[3] = {B, T, C};
    int64_t n_in = B * T * 3 * C, n_out = B * T * C;
    tc_tensor *x = NULL, *y = NULL, *seed = NULL;
    bool ok = tc_from_data(ctx, dtype, 3, shape, qkv, TC_FLOAT64, &x) == TC_OK &&
              tc_tensor_set_requires_grad(x, true) == TC_OK && tc_attention(x, H, H, causal, &y) == TC_OK &&
              tc_from_data(ctx, dtype, 3, out_shape, weights, TC_FLOAT64, &seed) == TC_OK &&
              tc_backward(y, seed, false) == TC_OK && tc_tensor_grad(x);
    CHECK(ok, "attention (%s, T %lld, C %lld, %lld heads): %s", tc_dtype_name(dtype), (long long)T, (long long)C,
          (long long)H, tc_last_error(ctx));
    if (ok) {
        size_t size = dtype == TC_FLOAT32 ? sizeof(float) : sizeof(double);
        result->out = malloc(sizeof(double) * (size_t)n_out);
        result->grad = malloc(sizeof(double) * (size_t)n_in);
        result->out_bytes = size * (size_t)n_out;
        result->grad_bytes = size * (size_t)n_in;
        result->out_raw = malloc(result->out_bytes);
        result->grad_raw = malloc(result->grad_bytes);
        ok = result->out && result->grad && result->out_raw && result->grad_raw &&
             tc_copy_to_doubles(y, result->out, n_out) == TC_OK &&
             tc_copy_to_doubles(tc_tensor_grad(x), result->grad, n_in) == TC_OK;
        CHECK(ok, "reading the attention results back");
        if (ok) {
            memcpy(result->out_raw, tc_tensor_data(y), result->out_bytes);
            memcpy(result->grad_raw, tc_tensor_data(tc_tensor_grad(x)), result->grad_bytes);
        }
    }
    tc_tensor_release(seed);
    tc_tensor_release(y);
    tc_tensor_release(x);
    return ok;
}

static void test_shape(tc_context *ctx, int64_t T, int64_t C, int64_t H, bool causal) {
    const int64_t B = 2;
    int64_t n_in = B * T * 3 * C, n_out = B * T * C;
    double *qkv = malloc(sizeof(double) * (size_t)n_in), *weights = malloc(sizeof(double) * (size_t)n_out);
    if (!qkv || !weights) {
        CHECK(false, "out of memory");
        free(qkv);
        free(weights);
        return;
    }
    /* scores of a few units, so rows have both dominant and tiny weights */
    fill_values(qkv, n_in, (unsigned)(T * 131 + C), 2.0);
    fill_values(weights, n_out, (unsigned)(T * 17 + C + 3), 1.0);
    attention_result reference = {0}, one = {0}, two = {0};
    tc_set_num_threads(ctx, 1);
    if (run_attention(ctx, TC_FLOAT64, B, T, C, H, causal, qkv, weights, &reference) &&
        run_attention(ctx, TC_FLOAT32, B, T, C, H, causal, qkv, weights, &one)) {
        double out_error = max_relative_error(one.out, reference.out, n_out);
        double grad_error = max_relative_error(one.grad, reference.grad, n_in);
        CHECK(out_error < 1e-5, "float32 attention forward (T %lld, C %lld, %lld heads, causal %d): error %g",
              (long long)T, (long long)C, (long long)H, causal, out_error);
        CHECK(grad_error < 1e-5, "float32 attention gradient (T %lld, C %lld, %lld heads, causal %d): error %g",
              (long long)T, (long long)C, (long long)H, causal, grad_error);
        tc_set_num_threads(ctx, 2);
        if (run_attention(ctx, TC_FLOAT32, B, T, C, H, causal, qkv, weights, &two)) {
            CHECK(!memcmp(one.out_raw, two.out_raw, one.out_bytes) &&
                      !memcmp(one.grad_raw, two.grad_raw, one.grad_bytes),
                  "float32 attention (T %lld, causal %d) differs between one and two threads", (long long)T, causal);
        }
    }
    result_free(&reference);
    result_free(&one);
    result_free(&two);
    free(qkv);
    free(weights);
}

int main(void) {
    tc_context *ctx = tc_context_new();
    if (!ctx) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    const int64_t lengths[] = {1, 5, 15, 16, 17, 31, 33, 64, 65, 100};
    const int64_t widths[][2] = {{4, 2}, {64, 2}}; /* channels, heads */
    for (size_t t = 0; t < sizeof lengths / sizeof lengths[0]; t++)
        for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++)
            for (int causal = 1; causal >= 0; causal--) test_shape(ctx, lengths[t], widths[w][0], widths[w][1], causal);
    tc_context_free(ctx);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
