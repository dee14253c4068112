/*
 * backend_test.c: the backend interface (src/backend_slots.h, internal.h).
 * The CPU table fills every slot and the slot ids name the list's slots. A
 * backend without the optional slots (the CPU table with them cleared, put
 * in a context's place) makes every fused op fail with "<op>: not
 * supported on cpu" naming the missing kernel, in the forward and in a
 * backward whose tape was made with the full table, instead of calling
 * NULL; linear and linear_gelu fall back to gemm there and give the full
 * table's results; 16-bit linear and matmul are widened for gemm there and
 * agree with gemm_16bit's within one 16-bit ulp, and a 16-bit linear's
 * backward there refuses. That a table missing a required slot does not
 * compile is checked by spec/backend_spec.lua.
 * Prints one line per failure and ends with "N passed, M failed".
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* A tensor of deterministic values in [-1, 1), or NULL (a failure counted). */
static tc_tensor *random_tensor(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, unsigned seed) {
    int64_t n = tc_shape_numel(ndim, shape);
    double *values = malloc(sizeof(double) * (size_t)(n ? n : 1));
    unsigned long long state = seed;
    for (int64_t i = 0; i < n; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        values[i] = (double)(state >> 11) / (double)(1ull << 52) - 1.0;
    }
    tc_tensor *t = NULL;
    tc_status status = tc_from_data(ctx, dtype, ndim, shape, values, TC_FLOAT64, &t);
    CHECK(status == TC_OK, "tc_from_data: %s", tc_last_error(ctx));
    free(values);
    return t;
}

/* The CPU table with every optional slot left empty. */
static tc_backend without_optional_slots(void) {
    tc_backend table = *tc_cpu_backend();
#define CLEAR_OPTIONAL(name, kind, result, parameters)                                                             \
    if (!TC_SLOT_KIND_##kind) table.name = NULL;
    TC_BACKEND_SLOTS(CLEAR_OPTIONAL)
#undef CLEAR_OPTIONAL
    return table;
}

static void expect_unsupported(tc_context *ctx, const char *what, tc_status status, const char *op,
                               const char *slot) {
    char expected[160];
    snprintf(expected, sizeof expected, "%s: not supported on cpu (its backend has no %s kernel; tensor of shape {",
             op, slot);
    CHECK(status == TC_ERROR_UNSUPPORTED && strstr(tc_last_error(ctx), expected), "%s: status %d, \"%s\" (expected %s)",
          what, status, tc_last_error(ctx), expected);
}

static void test_slot_list(void) {
    const tc_backend *cpu = tc_cpu_backend();
    tc_backend stripped = without_optional_slots();
    int optional = 0;
    for (int s = 0; s < TC_SLOT_COUNT; s++) {
        tc_backend_slot slot = (tc_backend_slot)s;
        const char *name = tc_backend_slot_name(slot);
        bool required = (TC_REQUIRED_SLOTS >> s & 1) != 0;
        optional += !required;
        CHECK(tc_backend_supports(cpu, slot), "the cpu table lacks %s", name);
        CHECK(tc_backend_supports(&stripped, slot) == required, "%s: supported %d without the optional slots", name,
              tc_backend_supports(&stripped, slot));
        CHECK(name[0] != '\0' && strchr(name, ' ') == NULL, "slot %d is named \"%s\"", s, name);
        for (int other = 0; other < s; other++)
            CHECK(strcmp(name, tc_backend_slot_name((tc_backend_slot)other)) != 0, "two slots are named %s", name);
    }
    CHECK(optional > 0 && optional < TC_SLOT_COUNT, "%d optional slots of %d", optional, TC_SLOT_COUNT);
    CHECK(strcmp(tc_backend_slot_name(TC_SLOT_gemv), "gemv") == 0, "TC_SLOT_gemv is named %s",
          tc_backend_slot_name(TC_SLOT_gemv));
    CHECK(strcmp(tc_backend_slot_name(TC_SLOT_COUNT), "(no such slot)") == 0, "past the end: %s",
          tc_backend_slot_name(TC_SLOT_COUNT));
    CHECK((TC_REQUIRED_SLOTS & TC_SLOT_BIT(copy)) && !(TC_REQUIRED_SLOTS & TC_SLOT_BIT(attention_forward)),
          "required slots %llx", (unsigned long long)TC_REQUIRED_SLOTS);
}

/* Every fused op, on a context whose CPU backend lacks the optional slots. */
static void test_forward_refused(tc_context *ctx) {
    int64_t shape[3] = {1, 2, 6}, cache_shape[4] = {1, 2, 4, 1}, rows[1] = {2}, logits_shape[2] = {2, 3};
    tc_tensor *x = random_tensor(ctx, TC_FLOAT32, 2, logits_shape, 1);
    tc_tensor *qkv = random_tensor(ctx, TC_FLOAT32, 3, shape, 2);
    tc_tensor *k_cache = random_tensor(ctx, TC_FLOAT32, 4, cache_shape, 3);
    tc_tensor *v_cache = random_tensor(ctx, TC_FLOAT32, 4, cache_shape, 4);
    tc_tensor *grad = random_tensor(ctx, TC_FLOAT32, 2, logits_shape, 5);
    tc_tensor *m = NULL, *v = NULL, *targets = NULL, *out = NULL;
    int64_t ids[2] = {0, 2};
    if (tc_zeros(ctx, TC_FLOAT32, 2, logits_shape, &m) != TC_OK ||
        tc_zeros(ctx, TC_FLOAT32, 2, logits_shape, &v) != TC_OK ||
        tc_from_data(ctx, TC_INT64, 1, rows, ids, TC_INT64, &targets) != TC_OK || !x || !qkv || !k_cache ||
        !v_cache || !grad) {
        CHECK(false, "inputs: %s", tc_last_error(ctx));
    } else {
        const tc_backend *full = ctx->backends[TC_CPU];
        tc_backend stripped = without_optional_slots();
        ctx->backends[TC_CPU] = &stripped;
        expect_unsupported(ctx, "layer_norm", tc_layer_norm(x, NULL, NULL, 1e-5, &out), "layer_norm",
                           "layer_norm_forward");
        CHECK(out == NULL, "layer_norm gave a result");
        expect_unsupported(ctx, "rms_norm", tc_rms_norm(x, NULL, 1e-5, &out), "rms_norm", "layer_norm_forward");
        expect_unsupported(ctx, "attention", tc_attention(qkv, 2, 2, true, &out), "attention", "attention_forward");
        expect_unsupported(ctx, "attention_cached", tc_attention_cached(qkv, k_cache, v_cache, 0, 2, 2, true, &out),
                           "attention_cached", "attention_cached");
        expect_unsupported(ctx, "cross_entropy", tc_cross_entropy(x, targets, -100, &out), "cross_entropy",
                           "cross_entropy_forward");
        CHECK(out == NULL, "an op gave a result");
        expect_unsupported(ctx, "adamw_step", tc_adamw_step(x, grad, m, v, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0),
                           "adamw_step", "adamw_step");
        expect_unsupported(ctx, "sgd_step", tc_sgd_step(x, grad, NULL, 1e-3, 0.0, 0.0, false, 0.0), "sgd_step",
                           "sgd_step");
        double norm = -1;
        tc_tensor *list[2] = {x, grad};
        expect_unsupported(ctx, "global_norm", tc_global_norm(2, list, &norm), "global_norm", "sum_squares");
        expect_unsupported(ctx, "scale_", tc_scale_(x, 2.0), "scale_", "scale");
        ctx->backends[TC_CPU] = full;
        /* with the full table again the same calls run */
        CHECK(tc_global_norm(2, list, &norm) == TC_OK && norm > 0, "global_norm afterwards: %s", tc_last_error(ctx));
        CHECK(tc_attention(qkv, 2, 2, true, &out) == TC_OK, "attention afterwards: %s", tc_last_error(ctx));
        tc_tensor_release(out);
    }
    tc_tensor *all[8] = {x, qkv, k_cache, v_cache, grad, m, v, targets};
    for (int i = 0; i < 8; i++) tc_tensor_release(all[i]);
}

typedef tc_status (*unary_fused_fn)(tc_context *ctx, tc_tensor *x, tc_tensor **out);

static tc_status run_layer_norm(tc_context *ctx, tc_tensor *x, tc_tensor **out) {
    (void)ctx;
    return tc_layer_norm(x, NULL, NULL, 1e-5, out);
}

static tc_status run_attention(tc_context *ctx, tc_tensor *x, tc_tensor **out) {
    (void)ctx;
    return tc_attention(x, 2, 2, true, out);
}

static tc_status run_cross_entropy(tc_context *ctx, tc_tensor *x, tc_tensor **out) {
    int64_t rows = x->shape[0] * x->shape[1], ids[2] = {1, 0};
    tc_tensor *targets = NULL, *flat = NULL;
    int64_t flat_shape[2] = {rows, x->shape[2]};
    tc_status status = tc_from_data(ctx, TC_INT64, 1, &rows, ids, TC_INT64, &targets);
    if (status == TC_OK) status = tc_reshape(x, 2, flat_shape, &flat);
    if (status == TC_OK) status = tc_cross_entropy(flat, targets, -100, out);
    tc_tensor_release(flat);
    tc_tensor_release(targets);
    return status;
}

/* The tape is made with the full table; the backward runs without the
 * optional slots and must refuse. */
static void test_backward_refused(tc_context *ctx, const char *op, unary_fused_fn forward, const char *slot) {
    int64_t shape[3] = {1, 2, 6};
    tc_tensor *x = random_tensor(ctx, TC_FLOAT64, 3, shape, 7), *y = NULL;
    if (!x) return;
    tc_tensor_set_requires_grad(x, true);
    tc_status status = forward(ctx, x, &y);
    CHECK(status == TC_OK, "%s forward: %s", op, tc_last_error(ctx));
    if (status == TC_OK) {
        tc_tensor *seed = NULL;
        CHECK(tc_full(ctx, TC_FLOAT64, tc_tensor_ndim(y), tc_tensor_shape(y), 1.0, &seed) == TC_OK, "seed: %s",
              tc_last_error(ctx));
        const tc_backend *full = ctx->backends[TC_CPU];
        tc_backend stripped = without_optional_slots();
        ctx->backends[TC_CPU] = &stripped;
        expect_unsupported(ctx, op, tc_backward(y, seed, true), op, slot);
        ctx->backends[TC_CPU] = full;
        CHECK(tc_backward(y, seed, false) == TC_OK && tc_tensor_grad(x), "%s backward afterwards: %s", op,
              tc_last_error(ctx));
        tc_tensor_release(seed);
    }
    tc_tensor_release(y);
    tc_tensor_release(x);
}

/* out on the stripped table against out on the full one. */
static double linear_difference(tc_context *ctx, tc_dtype dtype, bool gelu, bool with_bias, int64_t rows) {
    int64_t x_shape[2] = {rows, 40}, w_shape[2] = {24, 40}, b_shape[1] = {24};
    tc_tensor *x = random_tensor(ctx, dtype, 2, x_shape, 11), *w = random_tensor(ctx, dtype, 2, w_shape, 12);
    tc_tensor *b = with_bias ? random_tensor(ctx, dtype, 1, b_shape, 13) : NULL, *expected = NULL, *actual = NULL;
    double worst = INFINITY;
    const tc_backend *full = ctx->backends[TC_CPU];
    tc_backend stripped = without_optional_slots();
    tc_status status = (gelu ? tc_linear_gelu : tc_linear)(x, w, b, &expected);
    ctx->backends[TC_CPU] = &stripped;
    if (status == TC_OK) status = (gelu ? tc_linear_gelu : tc_linear)(x, w, b, &actual);
    ctx->backends[TC_CPU] = full;
    CHECK(status == TC_OK, "linear without the optional slots: %s", tc_last_error(ctx));
    if (status == TC_OK) {
        int64_t n = rows * 24;
        double *e = malloc(sizeof(double) * (size_t)n), *a = malloc(sizeof(double) * (size_t)n);
        if (tc_copy_to_doubles(expected, e, n) == TC_OK && tc_copy_to_doubles(actual, a, n) == TC_OK) {
            worst = 0;
            for (int64_t i = 0; i < n; i++) {
                double d = fabs(e[i] - a[i]) / (1 + fabs(e[i]));
                if (!(d <= worst)) worst = d;
            }
        }
        free(e);
        free(a);
    }
    tc_tensor *all[5] = {x, w, b, expected, actual};
    for (int i = 0; i < 5; i++) tc_tensor_release(all[i]);
    return worst;
}

static void test_linear_fallbacks(tc_context *ctx) {
    for (int dtype = 0; dtype < 2; dtype++)
        for (int gelu = 0; gelu < 2; gelu++)
            for (int with_bias = 0; with_bias < 2; with_bias++)
                for (int64_t rows = 1; rows <= 5; rows += 4) {
                    tc_dtype type = dtype ? TC_FLOAT64 : TC_FLOAT32;
                    double worst = linear_difference(ctx, type, gelu, with_bias, rows);
                    CHECK(worst <= (dtype ? 1e-13 : 1e-5), "linear%s %s bias %d rows %lld: gemm differs by %g",
                          gelu ? "_gelu" : "", tc_dtype_name(type), with_bias, (long long)rows, worst);
                }
}

/* 16-bit linear_gelu and matmul without the optional slots (operands widened
 * for gemm) against the full table (gemm_16bit): float32 sums in another
 * order, each rounded once to the dtype, so within one 16-bit ulp. */
static void test_16bit_fallbacks(tc_context *ctx) {
    const tc_dtype dtypes[2] = {TC_BFLOAT16, TC_FLOAT16};
    int64_t x_shape[3] = {3, 5, 40}, w_shape[2] = {24, 40}, b_shape[1] = {24};
    for (int d = 0; d < 2; d++) {
        tc_dtype dtype = dtypes[d];
        double ulp = dtype == TC_BFLOAT16 ? 0x1p-7 : 0x1p-10;
        tc_tensor *x = random_tensor(ctx, dtype, 3, x_shape, 21), *w = random_tensor(ctx, dtype, 2, w_shape, 22);
        tc_tensor *b = random_tensor(ctx, dtype, 1, b_shape, 23), *wt = NULL, *results[2][2] = {{NULL}};
        const tc_backend *full = ctx->backends[TC_CPU];
        tc_backend stripped = without_optional_slots();
        tc_status status = x && w && b ? tc_transpose(w, 0, 1, &wt) : TC_ERROR_STATE;
        for (int table = 0; table < 2 && status == TC_OK; table++) {
            ctx->backends[TC_CPU] = table ? &stripped : full;
            status = tc_linear_gelu(x, w, b, &results[table][0]);
            if (status == TC_OK) status = tc_matmul(x, wt, &results[table][1]);
            ctx->backends[TC_CPU] = full;
        }
        CHECK(status == TC_OK, "%s linear_gelu and matmul: %s", tc_dtype_name(dtype), tc_last_error(ctx));
        for (int r = 0; r < 2 && status == TC_OK; r++) {
            int64_t n = tc_tensor_numel(results[0][r]);
            double *e = malloc(sizeof(double) * (size_t)n), *a = malloc(sizeof(double) * (size_t)n), worst = 0;
            CHECK(tc_tensor_dtype(results[1][r]) == dtype && tc_tensor_dtype(results[0][r]) == dtype,
                  "%s results are %s and %s", tc_dtype_name(dtype), tc_dtype_name(tc_tensor_dtype(results[0][r])),
                  tc_dtype_name(tc_tensor_dtype(results[1][r])));
            if (tc_copy_to_doubles(results[0][r], e, n) == TC_OK && tc_copy_to_doubles(results[1][r], a, n) == TC_OK)
                for (int64_t i = 0; i < n; i++) {
                    double off = fabs(e[i] - a[i]) / (1 + fabs(e[i]));
                    if (!(off <= worst)) worst = off;
                }
            CHECK(worst <= ulp, "%s %s: the widened path differs by %g", tc_dtype_name(dtype),
                  r ? "matmul" : "linear_gelu", worst);
            free(e);
            free(a);
        }
        /* a 16-bit linear recorded with gemm_16bit cannot run its backward without it */
        tc_tensor *xg = NULL, *y = NULL, *seed = NULL;
        if (status == TC_OK) status = tc_contiguous_copy(x, &xg);
        if (status == TC_OK) {
            tc_tensor_set_requires_grad(xg, true);
            status = tc_linear(xg, w, b, &y);
        }
        if (status == TC_OK) status = tc_full(ctx, dtype, tc_tensor_ndim(y), tc_tensor_shape(y), 1.0, &seed);
        CHECK(status == TC_OK, "%s linear with grad: %s", tc_dtype_name(dtype), tc_last_error(ctx));
        if (status == TC_OK) {
            ctx->backends[TC_CPU] = &stripped;
            expect_unsupported(ctx, "16-bit linear backward", tc_backward(y, seed, true), "linear", "gemm_16bit");
            ctx->backends[TC_CPU] = full;
            CHECK(tc_backward(y, seed, false) == TC_OK && tc_tensor_grad(xg), "%s linear backward afterwards: %s",
                  tc_dtype_name(dtype), tc_last_error(ctx));
        }
        tc_tensor *all[11] = {x, w, b, wt, results[0][0], results[0][1], results[1][0], results[1][1], xg, y, seed};
        for (int i = 0; i < 11; i++) tc_tensor_release(all[i]);
    }
}

int main(void) {
    tc_context *ctx = tc_context_new();
    if (!ctx) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    test_slot_list();
    test_forward_refused(ctx);
    test_backward_refused(ctx, "layer_norm", run_layer_norm, "layer_norm_backward");
    test_backward_refused(ctx, "attention", run_attention, "attention_backward");
    test_backward_refused(ctx, "cross_entropy", run_cross_entropy, "cross_entropy_backward");
    test_linear_fallbacks(ctx);
    test_16bit_fallbacks(ctx);
    CHECK(tc_memory_in_use(ctx) == 0, "%zu bytes of tensor storage still in use", tc_memory_in_use(ctx));
    tc_context_free(ctx);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
