/*
 * fused_test.c: the fused ops through the public C API: attention and
 * cross-entropy (and layer norm, linear, linear + GELU, AdamW) against plain C references, their
 * gradients against central finite differences in float64, ignore_index,
 * the all-ignored case and the error messages for bad inputs.
 * Prints one line per failure and ends with "N passed, M failed".
 */
#include "tricycle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Deterministic values in [-1, 1). */
static void fill_values(double *values, int64_t n, unsigned seed) {
    unsigned long long state = seed;
    for (int64_t i = 0; i < n; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        values[i] = (double)(state >> 11) / (double)(1ull << 52) - 1.0;
    }
}

static tc_tensor *tensor_of(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, const double *values) {
    tc_tensor *t = NULL;
    if (tc_from_data(ctx, dtype, ndim, shape, values, TC_FLOAT64, &t) != TC_OK) {
        printf("FAIL: tc_from_data: %s\n", tc_last_error(ctx));
        failed++;
        return NULL;
    }
    return t;
}

static int64_t numel_of(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

static double max_relative_error(const double *actual, const double *expected, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(actual[i] - expected[i]) / (1.0 + fabs(expected[i]));
        if (!(e <= worst)) worst = e; /* NaN counts as worst */
    }
    return worst;
}

/* ---- references ---- */

static void attention_reference(const double *qkv, int64_t B, int64_t T, int64_t C, int64_t H, int causal,
                                double *out) {
    int64_t hd = C / H;
    double *p = malloc(sizeof(double) * (size_t)T);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < T; i++) {
                const double *q = qkv + (b * T + i) * 3 * C + h * hd;
                int64_t last = causal ? i : T - 1;
                double max = -INFINITY, total = 0;
                for (int64_t j = 0; j <= last; j++) {
                    const double *k = qkv + (b * T + j) * 3 * C + C + h * hd;
                    double s = 0;
                    for (int64_t d = 0; d < hd; d++) s += q[d] * k[d];
                    p[j] = s / sqrt((double)hd);
                    if (p[j] > max) max = p[j];
                }
                for (int64_t j = 0; j <= last; j++) total += (p[j] = exp(p[j] - max));
                for (int64_t d = 0; d < hd; d++) {
                    double acc = 0;
                    for (int64_t j = 0; j <= last; j++)
                        acc += p[j] / total * qkv[(b * T + j) * 3 * C + 2 * C + h * hd + d];
                    out[(b * T + i) * C + h * hd + d] = acc;
                }
            }
    free(p);
}

static double cross_entropy_reference(const double *logits, const int64_t *targets, int64_t N, int64_t V,
                                      int64_t ignore_index) {
    double total = 0;
    int64_t count = 0;
    for (int64_t r = 0; r < N; r++) {
        if (targets[r] == ignore_index) continue;
        double max = -INFINITY, sum = 0;
        for (int64_t c = 0; c < V; c++)
            if (logits[r * V + c] > max) max = logits[r * V + c];
        for (int64_t c = 0; c < V; c++) sum += exp(logits[r * V + c] - max);
        total += max + log(sum) - logits[r * V + targets[r]];
        count++;
    }
    return count ? total / (double)count : 0.0;
}

/* ---- finite differences ----
 * An op of one differentiable float64 input; `extra` carries the rest. */
typedef tc_status (*unary_op_fn)(tc_tensor *x, void *extra, tc_tensor **out);

/* sum(op(x) * weights) for x given by values (grad mode off). */
static double weighted_loss(tc_context *ctx, unary_op_fn op, void *extra, int ndim, const int64_t *shape,
                            const double *values, const double *weights) {
    tc_tensor *x = tensor_of(ctx, TC_FLOAT64, ndim, shape, values), *y = NULL;
    if (!x) return NAN;
    double loss = NAN;
    if (op(x, extra, &y) == TC_OK) {
        int64_t n = tc_tensor_numel(y);
        double *out = malloc(sizeof(double) * (size_t)(n ? n : 1));
        if (tc_copy_to_doubles(y, out, n) == TC_OK) {
            loss = 0;
            for (int64_t i = 0; i < n; i++) loss += out[i] * weights[i];
        }
        free(out);
    }
    tc_tensor_release(y);
    tc_tensor_release(x);
    return loss;
}

/* Returns the worst relative error between the tape's gradient and central
 * differences, or INFINITY when something failed. */
static double gradcheck(tc_context *ctx, const char *what, unary_op_fn op, void *extra, int ndim,
                        const int64_t *shape, double *values) {
    tc_tensor *x = tensor_of(ctx, TC_FLOAT64, ndim, shape, values), *y = NULL;
    if (!x) return INFINITY;
    tc_tensor_set_requires_grad(x, true);
    double result = INFINITY;
    if (op(x, extra, &y) != TC_OK) {
        printf("FAIL %s: forward: %s\n", what, tc_last_error(ctx));
        tc_tensor_release(x);
        return INFINITY;
    }
    int64_t n_out = tc_tensor_numel(y), n_in = numel_of(ndim, shape);
    double *weights = malloc(sizeof(double) * (size_t)n_out);
    double *analytic = malloc(sizeof(double) * (size_t)n_in), *numeric = malloc(sizeof(double) * (size_t)n_in);
    fill_values(weights, n_out, 99);
    tc_tensor *seed = tensor_of(ctx, TC_FLOAT64, tc_tensor_ndim(y), tc_tensor_shape(y), weights);
    if (seed && tc_backward(y, seed, false) == TC_OK && tc_tensor_grad(x) &&
        tc_copy_to_doubles(tc_tensor_grad(x), analytic, n_in) == TC_OK) {
        const double h = 1e-6;
        tc_set_grad_enabled(ctx, false);
        for (int64_t i = 0; i < n_in; i++) {
            double original = values[i];
            values[i] = original + h;
            double plus = weighted_loss(ctx, op, extra, ndim, shape, values, weights);
            values[i] = original - h;
            double minus = weighted_loss(ctx, op, extra, ndim, shape, values, weights);
            values[i] = original;
            numeric[i] = (plus - minus) / (2 * h);
        }
        tc_set_grad_enabled(ctx, true);
        result = max_relative_error(analytic, numeric, n_in);
    } else {
        printf("FAIL %s: backward: %s\n", what, tc_last_error(ctx));
    }
    tc_tensor_release(seed);
    tc_tensor_release(y);
    tc_tensor_release(x);
    free(weights);
    free(analytic);
    free(numeric);
    return result;
}

/* ---- attention ---- */

typedef struct attention_args {
    int n_head;
    bool causal;
} attention_args;

static tc_status attention_op(tc_tensor *x, void *extra, tc_tensor **out) {
    const attention_args *args = extra;
    return tc_attention(x, args->n_head, args->n_head, args->causal, out);
}

static void test_attention(tc_context *ctx) {
    enum { B = 2, T = 3, C = 4, H = 2 };
    int64_t shape[3] = {B, T, 3 * C};
    double qkv[B * T * 3 * C], expected[B * T * C], actual[B * T * C];
    fill_values(qkv, B * T * 3 * C, 1);
    for (int causal = 1; causal >= 0; causal--) {
        attention_reference(qkv, B, T, C, H, causal, expected);
        for (int d = 0; d < 2; d++) {
            tc_dtype dtype = d ? TC_FLOAT32 : TC_FLOAT64;
            tc_tensor *x = tensor_of(ctx, dtype, 3, shape, qkv), *y = NULL;
            tc_status status = tc_attention(x, H, H, causal, &y);
            CHECK(status == TC_OK, "attention: %s", tc_last_error(ctx));
            if (status == TC_OK) {
                CHECK(tc_tensor_ndim(y) == 3 && tc_tensor_shape(y)[2] == C, "attention output shape");
                tc_copy_to_doubles(y, actual, B * T * C);
                double error = max_relative_error(actual, expected, B * T * C);
                CHECK(error < (d ? 1e-5 : 1e-12), "attention forward (%s, causal %d): error %g", tc_dtype_name(dtype),
                      causal, error);
            }
            tc_tensor_release(y);
            tc_tensor_release(x);
        }
        attention_args args = {H, causal};
        double error = gradcheck(ctx, "attention", attention_op, &args, 3, shape, qkv);
        CHECK(error < 1e-6, "attention gradient (causal %d): error %g", causal, error);
    }
    /* a longer sequence with one and with three heads */
    {
        enum { T2 = 9, C2 = 6 };
        int64_t shape2[3] = {1, T2, 3 * C2};
        double values[T2 * 3 * C2];
        fill_values(values, T2 * 3 * C2, 5);
        for (int heads = 1; heads <= 3; heads += 2) {
            attention_args args = {heads, true};
            double error = gradcheck(ctx, "attention", attention_op, &args, 3, shape2, values);
            CHECK(error < 1e-6, "attention gradient (T 9, %d heads): error %g", heads, error);
        }
    }
    /* longer than one query block of the kernel (64 rows): several tiles */
    {
        enum { T3 = 70, C3 = 4 };
        int64_t shape3[3] = {1, T3, 3 * C3};
        double *values = malloc(sizeof(double) * T3 * 3 * C3);
        fill_values(values, T3 * 3 * C3, 7);
        for (int causal = 1; causal >= 0; causal--) {
            attention_args args = {2, causal};
            double error = gradcheck(ctx, "attention", attention_op, &args, 3, shape3, values);
            CHECK(error < 1e-6, "attention gradient (T 70, causal %d): error %g", causal, error);
        }
        free(values);
    }
    /* errors */
    {
        int64_t bad[3] = {B, T, 10};
        tc_tensor *x = NULL, *y = NULL;
        tc_zeros(ctx, TC_FLOAT32, 3, bad, &x);
        CHECK(tc_attention(x, H, H, true, &y) == TC_ERROR_SHAPE && y == NULL, "attention accepted {2, 3, 10}");
        CHECK(strstr(tc_last_error(ctx), "attention: qkv must be {B, T, 3C}") &&
                  strstr(tc_last_error(ctx), "{2, 3, 10}"),
              "attention shape message: %s", tc_last_error(ctx));
        tc_tensor_release(x);
        tc_zeros(ctx, TC_FLOAT32, 3, shape, &x);
        CHECK(tc_attention(x, 3, 3, true, &y) == TC_ERROR_ARGUMENT, "attention accepted 3 heads for C 4");
        CHECK(strstr(tc_last_error(ctx), "n_head 3 does not divide C = 4") != NULL, "message: %s",
              tc_last_error(ctx));
        tc_tensor_release(x);
        tc_zeros(ctx, TC_INT64, 3, shape, &x);
        CHECK(tc_attention(x, H, H, true, &y) == TC_ERROR_DTYPE, "attention accepted int64");
        tc_tensor_release(x);
        /* grouped queries: qkv {B, T, (n_head + 2 n_kv_head) head_dim} */
        int64_t grouped[3] = {B, T, 20};
        tc_zeros(ctx, TC_FLOAT32, 3, grouped, &x);
        CHECK(tc_attention(x, 4, 3, true, &y) == TC_ERROR_ARGUMENT && y == NULL, "attention accepted 3 k/v heads of 4");
        CHECK(strstr(tc_last_error(ctx), "n_kv_head 3 must divide n_head 4") != NULL, "message: %s",
              tc_last_error(ctx));
        CHECK(tc_attention(x, 0, 1, true, &y) == TC_ERROR_ARGUMENT, "attention accepted 0 heads");
        CHECK(strstr(tc_last_error(ctx), "n_head 0 must be >= 1") != NULL, "message: %s", tc_last_error(ctx));
        CHECK(tc_attention(x, 4, 2, true, &y) == TC_ERROR_SHAPE, "attention accepted width 20 for 4 + 2 * 2 heads");
        CHECK(strstr(tc_last_error(ctx), "{B, T, 8 * head_dim}") && strstr(tc_last_error(ctx), "{2, 3, 20}"),
              "message: %s", tc_last_error(ctx));
        tc_tensor_release(x);
        grouped[2] = 18; /* 4 query heads and 1 k/v head of 3 */
        tc_zeros(ctx, TC_FLOAT32, 3, grouped, &x);
        CHECK(tc_attention(x, 4, 1, true, &y) == TC_OK && y && tc_tensor_shape(y)[2] == 12, "grouped attention: %s",
              tc_last_error(ctx));
        tc_tensor_release(y);
        tc_tensor_release(x);
    }
}

/* ---- cross-entropy ---- */

typedef struct cross_entropy_args {
    tc_tensor *targets;
    int64_t ignore_index;
} cross_entropy_args;

static tc_status cross_entropy_op(tc_tensor *x, void *extra, tc_tensor **out) {
    const cross_entropy_args *args = extra;
    return tc_cross_entropy(x, args->targets, args->ignore_index, out);
}

static void test_cross_entropy(tc_context *ctx) {
    enum { N = 6, V = 5 };
    int64_t shape[2] = {N, V}, target_shape[1] = {N};
    double logits[N * V];
    fill_values(logits, N * V, 2);
    const int64_t target_sets[3][N] = {
        {0, 4, 2, 1, 3, 3},
        {0, -100, 2, -100, 3, 3},
        {-100, -100, -100, -100, -100, -100},
    };
    for (int set = 0; set < 3; set++) {
        tc_tensor *targets = NULL;
        tc_from_data(ctx, TC_INT64, 1, target_shape, target_sets[set], TC_INT64, &targets);
        double expected = cross_entropy_reference(logits, target_sets[set], N, V, -100);
        for (int d = 0; d < 2; d++) {
            tc_dtype dtype = d ? TC_FLOAT32 : TC_FLOAT64;
            tc_tensor *x = tensor_of(ctx, dtype, 2, shape, logits), *loss = NULL;
            tc_status status = tc_cross_entropy(x, targets, -100, &loss);
            CHECK(status == TC_OK, "cross_entropy: %s", tc_last_error(ctx));
            double value = NAN;
            if (status == TC_OK) {
                CHECK(tc_tensor_ndim(loss) == 0, "cross_entropy gives a 0-dim tensor");
                tc_item(loss, &value);
            }
            CHECK(fabs(value - expected) < (d ? 1e-6 : 1e-12), "cross_entropy (set %d, %s): %.12g, expected %.12g",
                  set, tc_dtype_name(dtype), value, expected);
            tc_tensor_release(loss);
            tc_tensor_release(x);
        }
        cross_entropy_args args = {targets, -100};
        double error = gradcheck(ctx, "cross_entropy", cross_entropy_op, &args, 2, shape, logits);
        CHECK(error < 1e-6, "cross_entropy gradient (set %d): error %g", set, error);
        tc_tensor_release(targets);
    }
    /* all ignored: loss 0, gradient exactly zero (no NaN) */
    {
        tc_tensor *targets = NULL, *x = tensor_of(ctx, TC_FLOAT32, 2, shape, logits), *loss = NULL;
        tc_from_data(ctx, TC_INT64, 1, target_shape, target_sets[2], TC_INT64, &targets);
        tc_tensor_set_requires_grad(x, true);
        double value = NAN, grad[N * V];
        CHECK(tc_cross_entropy(x, targets, -100, &loss) == TC_OK, "%s", tc_last_error(ctx));
        tc_item(loss, &value);
        CHECK(value == 0.0, "all-ignored loss is %g", value);
        CHECK(tc_backward(loss, NULL, false) == TC_OK, "%s", tc_last_error(ctx));
        bool zero = tc_tensor_grad(x) && tc_copy_to_doubles(tc_tensor_grad(x), grad, N * V) == TC_OK;
        for (int i = 0; zero && i < N * V; i++) zero = grad[i] == 0.0;
        CHECK(zero, "all-ignored gradient is not exactly zero");
        tc_tensor_release(loss);
        tc_tensor_release(x);
        tc_tensor_release(targets);
    }
    /* int32 targets and 3-D logits */
    {
        int64_t shape3[3] = {2, 3, V}, target_shape2[2] = {2, 3};
        const int32_t targets32[N] = {0, 4, 2, 1, 3, 3};
        tc_tensor *targets = NULL, *x = tensor_of(ctx, TC_FLOAT64, 3, shape3, logits), *loss = NULL;
        tc_from_data(ctx, TC_INT32, 2, target_shape2, targets32, TC_INT32, &targets);
        double value = NAN;
        CHECK(tc_cross_entropy(x, targets, -100, &loss) == TC_OK, "%s", tc_last_error(ctx));
        if (loss) tc_item(loss, &value);
        double expected = cross_entropy_reference(logits, target_sets[0], N, V, -100);
        CHECK(fabs(value - expected) < 1e-12, "3-D logits with int32 targets: %g, expected %g", value, expected);
        tc_tensor_release(loss);
        tc_tensor_release(x);
        tc_tensor_release(targets);
    }
    /* errors */
    {
        const int64_t bad[N] = {0, 1, 5, 1, 1, 1};
        tc_tensor *targets = NULL, *x = tensor_of(ctx, TC_FLOAT32, 2, shape, logits), *loss = NULL;
        tc_from_data(ctx, TC_INT64, 1, target_shape, bad, TC_INT64, &targets);
        CHECK(tc_cross_entropy(x, targets, -100, &loss) == TC_ERROR_ARGUMENT && !loss, "out-of-range target taken");
        CHECK(strstr(tc_last_error(ctx), "target 5") && strstr(tc_last_error(ctx), "V = 5"), "message: %s",
              tc_last_error(ctx));
        tc_tensor_release(targets);
        int64_t short_shape[1] = {3};
        tc_zeros(ctx, TC_INT64, 1, short_shape, &targets);
        CHECK(tc_cross_entropy(x, targets, -100, &loss) == TC_ERROR_SHAPE, "mismatched targets taken");
        CHECK(strstr(tc_last_error(ctx), "logits of shape {6, 5} and targets of shape {3}") != NULL, "message: %s",
              tc_last_error(ctx));
        tc_tensor_release(targets);
        tc_zeros(ctx, TC_FLOAT32, 1, target_shape, &targets);
        CHECK(tc_cross_entropy(x, targets, -100, &loss) == TC_ERROR_DTYPE, "float targets taken");
        tc_tensor_release(targets);
        tc_tensor_release(x);
    }
}

/* ---- layer norm ---- */

static tc_status layer_norm_op(tc_tensor *x, void *extra, tc_tensor **out) {
    tc_tensor **parameters = extra;
    return tc_layer_norm(x, parameters[0], parameters[1], 1e-5, out);
}

static void test_layer_norm(tc_context *ctx) {
    int64_t shape[3] = {2, 3, 4}, c_shape[1] = {4};
    double x[24], w[4], b[4];
    fill_values(x, 24, 3);
    fill_values(w, 4, 4);
    fill_values(b, 4, 5);
    tc_tensor *parameters[2] = {tensor_of(ctx, TC_FLOAT64, 1, c_shape, w), tensor_of(ctx, TC_FLOAT64, 1, c_shape, b)};
    double error = gradcheck(ctx, "layer_norm", layer_norm_op, parameters, 3, shape, x);
    CHECK(error < 1e-6, "layer_norm gradient of x: error %g", error);
    tc_tensor_release(parameters[0]);
    tc_tensor_release(parameters[1]);
}

/* ---- linear and linear + GELU ---- */

typedef struct linear_args {
    tc_tensor *other; /* the weight when x varies, x when the weight varies */
    tc_tensor *bias;
    bool gelu, vary_weight;
} linear_args;

static tc_status linear_op(tc_tensor *t, void *extra, tc_tensor **out) {
    const linear_args *args = extra;
    tc_tensor *x = args->vary_weight ? args->other : t, *w = args->vary_weight ? t : args->other;
    return args->gelu ? tc_linear_gelu(x, w, args->bias, out) : tc_linear(x, w, args->bias, out);
}

static void test_linear(tc_context *ctx) {
    enum { ROWS = 6, IN = 5, OUT = 4 };
    int64_t x_shape[3] = {2, ROWS / 2, IN}, w_shape[2] = {OUT, IN}, b_shape[1] = {OUT};
    double x[ROWS * IN], w[OUT * IN], b[OUT];
    fill_values(x, ROWS * IN, 11);
    fill_values(w, OUT * IN, 12);
    fill_values(b, OUT, 13);
    tc_tensor *xt = tensor_of(ctx, TC_FLOAT64, 3, x_shape, x), *wt = tensor_of(ctx, TC_FLOAT64, 2, w_shape, w);
    tc_tensor *bt = tensor_of(ctx, TC_FLOAT64, 1, b_shape, b);
    for (int gelu = 0; gelu <= 1; gelu++) {
        /* forward against a plain loop */
        tc_tensor *y = NULL;
        CHECK(linear_op(xt, &(linear_args){wt, bt, gelu, false}, &y) == TC_OK, "linear: %s", tc_last_error(ctx));
        double actual[ROWS * OUT], expected[ROWS * OUT];
        if (y && tc_copy_to_doubles(y, actual, ROWS * OUT) == TC_OK) {
            for (int r = 0; r < ROWS; r++)
                for (int o = 0; o < OUT; o++) {
                    double h = b[o];
                    for (int i = 0; i < IN; i++) h += x[r * IN + i] * w[o * IN + i];
                    expected[r * OUT + o] =
                        gelu ? 0.5 * h * (1 + tanh(0.7978845608028654 * (h + 0.044715 * h * h * h))) : h;
                }
            double error = max_relative_error(actual, expected, ROWS * OUT);
            CHECK(error < 1e-12, "linear forward (gelu %d): error %g", gelu, error);
        }
        tc_tensor_release(y);
        double error = gradcheck(ctx, "linear x", linear_op, &(linear_args){wt, bt, gelu, false}, 3, x_shape, x);
        CHECK(error < 1e-6, "linear gradient of x (gelu %d): error %g", gelu, error);
        error = gradcheck(ctx, "linear weight", linear_op, &(linear_args){xt, bt, gelu, true}, 2, w_shape, w);
        CHECK(error < 1e-6, "linear gradient of weight (gelu %d): error %g", gelu, error);
    }
    /* a weight of the wrong shape names both shapes */
    {
        tc_tensor *y = NULL;
        CHECK(tc_linear(bt, wt, NULL, &y) == TC_ERROR_SHAPE && !y, "linear accepted {4} @ {4, 5}^T");
        CHECK(strstr(tc_last_error(ctx), "x of shape {4} does not end in in_features 5") &&
                  strstr(tc_last_error(ctx), "weight of shape {4, 5}"),
              "message: %s", tc_last_error(ctx));
    }
    tc_tensor_release(xt);
    tc_tensor_release(wt);
    tc_tensor_release(bt);
}

/* ---- AdamW ---- */

static void test_adamw(tc_context *ctx) {
    int64_t shape[1] = {4};
    const double p0[4] = {1, 1, 1, 1}, g[4] = {1e-3, -1e-3, 2e-3, 0};
    tc_tensor *p = NULL, *grad = NULL, *m = NULL, *v = NULL;
    tc_from_data(ctx, TC_FLOAT32, 1, shape, p0, TC_FLOAT64, &p);
    tc_from_data(ctx, TC_FLOAT32, 1, shape, g, TC_FLOAT64, &grad);
    tc_zeros(ctx, TC_FLOAT32, 1, shape, &m);
    tc_zeros(ctx, TC_FLOAT32, 1, shape, &v);
    CHECK(tc_adamw_step(p, grad, m, v, 1, 1e-6, 0.9, 0.999, 1e-8, 0.0) == TC_OK, "%s", tc_last_error(ctx));
    double after[4];
    tc_copy_to_doubles(p, after, 4);
    CHECK(after[0] < 1 && after[1] > 1 && after[2] < 1 && after[3] == 1,
          "float32 AdamW with lr 1e-6 did not move the parameter: %.9g %.9g %.9g %.9g", after[0], after[1], after[2],
          after[3]);
    CHECK(tc_adamw_step(p, grad, m, v, 0, 1e-3, 0.9, 0.999, 1e-8, 0.0) == TC_ERROR_ARGUMENT, "step 0 accepted");
    tc_tensor_release(p);
    tc_tensor_release(grad);
    tc_tensor_release(m);
    tc_tensor_release(v);
}

int main(void) {
    tc_context *ctx = tc_context_new();
    if (!ctx) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    test_attention(ctx);
    test_cross_entropy(ctx);
    test_layer_norm(ctx);
    test_linear(ctx);
    test_adamw(ctx);
    CHECK(tc_memory_in_use(ctx) == 0, "%zu bytes of tensor storage still in use", tc_memory_in_use(ctx));
    tc_context_free(ctx);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
