/*
 * ops_test.c: matmul, einsum, softmax, log_softmax, dropout, cat, stack,
 * gather, index_select and embedding through the public C API: forward
 * values against plain loops in double precision (float64 and float32),
 * gradients against central finite differences in float64, and the status
 * and message of bad inputs. Prints one line per failure and ends with
 * "N passed, M failed".
 */
#include "tricycle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define MAX_INPUTS 4
#define MAX_VALUES 65536

/* ---- helpers ---- */

/* Deterministic values in [-1, 1). */
static void fill_values(double *values, int64_t n, unsigned seed) {
    unsigned long long state = seed * 2654435761ull + 1;
    for (int64_t i = 0; i < n; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        values[i] = (double)(state >> 11) / (double)(1ull << 52) - 1.0;
    }
}

static int64_t numel_of(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
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

static tc_tensor *index_of(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, const int64_t *ids) {
    tc_tensor *t = NULL;
    if (tc_from_data(ctx, dtype, ndim, shape, ids, TC_INT64, &t) != TC_OK) {
        printf("FAIL: tc_from_data (index): %s\n", tc_last_error(ctx));
        failed++;
        return NULL;
    }
    return t;
}

static bool same_shape(const tc_tensor *t, int ndim, const int64_t *shape) {
    if (tc_tensor_ndim(t) != ndim) return false;
    for (int i = 0; i < ndim; i++)
        if (tc_tensor_shape(t)[i] != shape[i]) return false;
    return true;
}

static const char *shape_text(int ndim, const int64_t *shape) {
    static char buffers[2][128];
    static int which;
    char *text = buffers[which ^= 1];
    int used = snprintf(text, 128, "{");
    for (int i = 0; i < ndim; i++)
        used += snprintf(text + used, (size_t)(128 - used), i ? ", %lld" : "%lld", (long long)shape[i]);
    snprintf(text + used, (size_t)(128 - used), "}");
    return text;
}

static double max_relative_error(const double *actual, const double *expected, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(actual[i] - expected[i]) / (1.0 + fabs(expected[i]));
        if (!(e <= worst)) worst = e; /* NaN counts as worst */
    }
    return worst;
}

/* values[i] of a row-major array of `shape` at a multi-index, where dims of
 * size 1 broadcast (their index is ignored). */
static int64_t broadcast_offset(int ndim, const int64_t *shape, const int64_t *index) {
    int64_t offset = 0;
    for (int d = 0; d < ndim; d++)
        offset = offset * shape[d] + (shape[d] == 1 ? 0 : index[d]);
    return offset;
}

/* Swaps the last two dims of a row-major array (shape is the source's). */
static void swap_last_two(int ndim, const int64_t *shape, const double *source, double *target) {
    int64_t rows = shape[ndim - 2], cols = shape[ndim - 1], batch = numel_of(ndim - 2, shape);
    for (int64_t b = 0; b < batch; b++)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                target[b * rows * cols + c * rows + r] = source[b * rows * cols + r * cols + c];
}

/* ---- the harness ----
 * An op under test takes its differentiable inputs (contiguous leaves,
 * which it may view first) and `extra`; a reference computes the same from
 * the leaves' values. */

typedef tc_status (*forward_fn)(tc_tensor **inputs, int count, const void *extra, tc_tensor **out);
typedef void (*reference_fn)(double **values, const int *ndims, const int64_t (*shapes)[TC_MAX_DIMS], const void *extra,
                             int *out_ndim, int64_t *out_shape, double *out);

typedef struct op_case {
    const char *name;
    forward_fn forward;
    reference_fn reference;
    const void *extra;
    int count;
    int ndims[MAX_INPUTS];
    int64_t shapes[MAX_INPUTS][TC_MAX_DIMS];
} op_case;

static double **case_values(const op_case *c, unsigned seed) {
    double **values = calloc(MAX_INPUTS, sizeof *values);
    for (int i = 0; i < c->count; i++) {
        int64_t n = numel_of(c->ndims[i], c->shapes[i]);
        values[i] = malloc(sizeof(double) * (size_t)(n ? n : 1));
        fill_values(values[i], n, seed + 17u * (unsigned)i);
    }
    return values;
}

static void free_values(double **values) {
    for (int i = 0; i < MAX_INPUTS; i++)
        free(values[i]);
    free(values);
}

/* Runs the op in dtype and compares with the reference. */
static void check_forward(tc_context *ctx, const op_case *c, tc_dtype dtype) {
    double **values = case_values(c, 7);
    tc_tensor *inputs[MAX_INPUTS] = {0}, *y = NULL;
    for (int i = 0; i < c->count; i++)
        inputs[i] = tensor_of(ctx, dtype, c->ndims[i], c->shapes[i], values[i]);
    tc_status status = c->forward(inputs, c->count, c->extra, &y);
    CHECK(status == TC_OK, "%s (%s): forward failed: %s", c->name, tc_dtype_name(dtype), tc_last_error(ctx));
    if (status == TC_OK) {
        int out_ndim = 0;
        int64_t out_shape[TC_MAX_DIMS];
        double *expected = calloc(MAX_VALUES, sizeof(double));
        c->reference(values, c->ndims, c->shapes, c->extra, &out_ndim, out_shape, expected);
        CHECK(same_shape(y, out_ndim, out_shape), "%s (%s): shape %s, expected %s", c->name, tc_dtype_name(dtype),
              shape_text(tc_tensor_ndim(y), tc_tensor_shape(y)), shape_text(out_ndim, out_shape));
        CHECK(tc_tensor_dtype(y) == dtype, "%s: result dtype %s, expected %s", c->name,
              tc_dtype_name(tc_tensor_dtype(y)), tc_dtype_name(dtype));
        if (same_shape(y, out_ndim, out_shape)) {
            int64_t n = tc_tensor_numel(y);
            double *actual = malloc(sizeof(double) * (size_t)(n ? n : 1));
            tc_copy_to_doubles(y, actual, n);
            double error = max_relative_error(actual, expected, n);
            double tolerance = dtype == TC_FLOAT64 ? 1e-12 : 1e-5;
            CHECK(error <= tolerance, "%s (%s): values off by %g", c->name, tc_dtype_name(dtype), error);
            free(actual);
        }
        free(expected);
    }
    tc_tensor_release(y);
    for (int i = 0; i < c->count; i++)
        tc_tensor_release(inputs[i]);
    free_values(values);
}

/* sum(op(inputs) * weights) with grad mode off. */
static double weighted_loss(tc_context *ctx, const op_case *c, tc_tensor **inputs, const double *weights,
                            int64_t n_weights) {
    tc_tensor *y = NULL;
    double loss = NAN;
    tc_set_grad_enabled(ctx, false);
    if (c->forward(inputs, c->count, c->extra, &y) == TC_OK && tc_tensor_numel(y) == n_weights) {
        double *out = malloc(sizeof(double) * (size_t)(n_weights ? n_weights : 1));
        if (tc_copy_to_doubles(y, out, n_weights) == TC_OK) {
            loss = 0;
            for (int64_t i = 0; i < n_weights; i++)
                loss += out[i] * weights[i];
        }
        free(out);
    }
    tc_set_grad_enabled(ctx, true);
    tc_tensor_release(y);
    return loss;
}

/* Tape gradients of every input against central differences (float64,
 * h = 1e-6), with a random gradient flowing into the output. */
static void check_gradients(tc_context *ctx, const op_case *c) {
    double **values = case_values(c, 11);
    tc_tensor *inputs[MAX_INPUTS] = {0}, *y = NULL, *seed = NULL;
    for (int i = 0; i < c->count; i++) {
        inputs[i] = tensor_of(ctx, TC_FLOAT64, c->ndims[i], c->shapes[i], values[i]);
        tc_tensor_set_requires_grad(inputs[i], true);
    }
    tc_status status = c->forward(inputs, c->count, c->extra, &y);
    CHECK(status == TC_OK, "%s: forward for the gradient failed: %s", c->name, tc_last_error(ctx));
    if (status != TC_OK) goto done;
    int64_t n_out = tc_tensor_numel(y);
    double *weights = malloc(sizeof(double) * (size_t)(n_out ? n_out : 1));
    fill_values(weights, n_out, 99);
    seed = tensor_of(ctx, TC_FLOAT64, tc_tensor_ndim(y), tc_tensor_shape(y), weights);
    status = tc_backward(y, seed, false);
    CHECK(status == TC_OK, "%s: backward failed: %s", c->name, tc_last_error(ctx));
    for (int i = 0; i < c->count && status == TC_OK; i++) {
        int64_t n = numel_of(c->ndims[i], c->shapes[i]);
        double *analytic = calloc((size_t)(n ? n : 1), sizeof(double));
        double *numeric = calloc((size_t)(n ? n : 1), sizeof(double));
        tc_tensor *grad = tc_tensor_grad(inputs[i]);
        CHECK(grad != NULL, "%s: input %d got no gradient", c->name, i + 1);
        if (grad) {
            CHECK(same_shape(grad, c->ndims[i], c->shapes[i]), "%s: gradient %d has shape %s", c->name, i + 1,
                  shape_text(tc_tensor_ndim(grad), tc_tensor_shape(grad)));
            tc_copy_to_doubles(grad, analytic, n);
        }
        double *data = tc_tensor_data(inputs[i]);
        const double h = 1e-6;
        for (int64_t j = 0; j < n; j++) {
            double original = data[j];
            data[j] = original + h;
            double plus = weighted_loss(ctx, c, inputs, weights, n_out);
            data[j] = original - h;
            double minus = weighted_loss(ctx, c, inputs, weights, n_out);
            data[j] = original;
            numeric[j] = (plus - minus) / (2 * h);
        }
        double error = max_relative_error(analytic, numeric, n);
        CHECK(error <= 1e-6, "%s: gradient of input %d off by %g", c->name, i + 1, error);
        free(analytic);
        free(numeric);
    }
    free(weights);
done:
    tc_tensor_release(seed);
    tc_tensor_release(y);
    for (int i = 0; i < c->count; i++)
        tc_tensor_release(inputs[i]);
    free_values(values);
}

/* The gradient of sum(op(inputs)) reaches the op as a broadcast (stride-0)
 * tensor; it must give the same input gradients as a contiguous tensor of
 * ones. */
static void check_sum_gradient(tc_context *ctx, const op_case *c) {
    double **values = case_values(c, 13);
    double *grads[2][MAX_INPUTS] = {{0}};
    for (int way = 0; way < 2; way++) {
        tc_tensor *inputs[MAX_INPUTS] = {0}, *y = NULL, *total = NULL, *ones = NULL;
        for (int i = 0; i < c->count; i++) {
            inputs[i] = tensor_of(ctx, TC_FLOAT64, c->ndims[i], c->shapes[i], values[i]);
            tc_tensor_set_requires_grad(inputs[i], true);
        }
        tc_status status = c->forward(inputs, c->count, c->extra, &y);
        if (status == TC_OK && way == 0) {
            status = tc_reduce(TC_REDUCE_SUM, y, 0, NULL, false, &total);
            if (status == TC_OK) status = tc_backward(total, NULL, false);
        } else if (status == TC_OK) {
            status = tc_ones(ctx, TC_FLOAT64, tc_tensor_ndim(y), tc_tensor_shape(y), &ones);
            if (status == TC_OK) status = tc_backward(y, ones, false);
        }
        CHECK(status == TC_OK, "%s: backward from %s: %s", c->name, way ? "ones" : "sum", tc_last_error(ctx));
        for (int i = 0; i < c->count && status == TC_OK; i++) {
            int64_t n = numel_of(c->ndims[i], c->shapes[i]);
            grads[way][i] = calloc((size_t)(n ? n : 1), sizeof(double));
            if (tc_tensor_grad(inputs[i])) tc_copy_to_doubles(tc_tensor_grad(inputs[i]), grads[way][i], n);
        }
        tc_tensor_release(ones);
        tc_tensor_release(total);
        tc_tensor_release(y);
        for (int i = 0; i < c->count; i++)
            tc_tensor_release(inputs[i]);
    }
    for (int i = 0; i < c->count; i++) {
        if (grads[0][i] && grads[1][i]) {
            int64_t n = numel_of(c->ndims[i], c->shapes[i]);
            double error = max_relative_error(grads[0][i], grads[1][i], n);
            CHECK(error <= 1e-13, "%s: the gradient through sum differs by %g for input %d", c->name, error, i + 1);
        }
        free(grads[0][i]);
        free(grads[1][i]);
    }
    free_values(values);
}

static void check_case(tc_context *ctx, const op_case *c) {
    check_forward(ctx, c, TC_FLOAT64);
    check_forward(ctx, c, TC_FLOAT32);
    check_gradients(ctx, c);
    check_sum_gradient(ctx, c);
}

/* The call failed with `want`, left *out NULL, and the message names the
 * function (and holds `detail` when given). */
static void expect_error(tc_context *ctx, const char *what, tc_status got, tc_tensor *out, tc_status want,
                         const char *function, const char *detail) {
    const char *message = tc_last_error(ctx);
    CHECK(got == want, "%s: status %d, expected %d (%s)", what, (int)got, (int)want, message);
    CHECK(out == NULL, "%s: an output was returned on failure", what);
    CHECK(strncmp(message, function, strlen(function)) == 0, "%s: message '%s' does not start with '%s'", what, message,
          function);
    if (detail) CHECK(strstr(message, detail) != NULL, "%s: message '%s' lacks '%s'", what, message, detail);
    tc_tensor_release(out);
    tc_clear_error(ctx);
}

/* ---- matmul ---- */

typedef struct matmul_args {
    bool transpose_a, transpose_b; /* the leaf holds the operand with its last two dims swapped */
} matmul_args;

static tc_status matmul_forward(tc_tensor **inputs, int count, const void *extra, tc_tensor **out) {
    (void)count;
    const matmul_args *args = extra;
    tc_tensor *a = inputs[0], *b = inputs[1];
    tc_status status = TC_OK;
    if (args->transpose_a) status = tc_transpose(inputs[0], -1, -2, &a);
    if (status == TC_OK && args->transpose_b) status = tc_transpose(inputs[1], -1, -2, &b);
    if (status == TC_OK) status = tc_matmul(a, b, out);
    if (args->transpose_a) tc_tensor_release(a);
    if (args->transpose_b) tc_tensor_release(b);
    return status;
}

static void matmul_reference(double **values, const int *ndims, const int64_t (*shapes)[TC_MAX_DIMS], const void *extra,
                             int *out_ndim, int64_t *out_shape, double *out) {
    const matmul_args *args = extra;
    int na = ndims[0], nb = ndims[1];
    int64_t sa[TC_MAX_DIMS], sb[TC_MAX_DIMS];
    memcpy(sa, shapes[0], sizeof sa);
    memcpy(sb, shapes[1], sizeof sb);
    const double *a = values[0], *b = values[1];
    double *swapped_a = NULL, *swapped_b = NULL;
    if (args->transpose_a) {
        swapped_a = malloc(sizeof(double) * (size_t)numel_of(na, sa));
        swap_last_two(na, sa, a, swapped_a);
        int64_t t = sa[na - 1];
        sa[na - 1] = sa[na - 2];
        sa[na - 2] = t;
        a = swapped_a;
    }
    if (args->transpose_b) {
        swapped_b = malloc(sizeof(double) * (size_t)numel_of(nb, sb));
        swap_last_two(nb, sb, b, swapped_b);
        int64_t t = sb[nb - 1];
        sb[nb - 1] = sb[nb - 2];
        sb[nb - 2] = t;
        b = swapped_b;
    }
    /* Promote 1-D operands to matrices. */
    int64_t pa[TC_MAX_DIMS], pb[TC_MAX_DIMS];
    int ma = na, mb = nb;
    if (na == 1) {
        pa[0] = 1;
        pa[1] = sa[0];
        ma = 2;
    } else {
        memcpy(pa, sa, sizeof pa);
    }
    if (nb == 1) {
        pb[0] = sb[0];
        pb[1] = 1;
        mb = 2;
    } else {
        memcpy(pb, sb, sizeof pb);
    }
    int batch_a = ma - 2, batch_b = mb - 2, batch = batch_a > batch_b ? batch_a : batch_b;
    int64_t batch_shape[TC_MAX_DIMS];
    for (int i = 0; i < batch; i++) {
        int da = i - (batch - batch_a), db = i - (batch - batch_b);
        int64_t x = da >= 0 ? pa[da] : 1, y = db >= 0 ? pb[db] : 1;
        batch_shape[i] = x == 1 ? y : x;
    }
    int64_t m = pa[ma - 2], k = pa[ma - 1], n = pb[mb - 1];
    *out_ndim = 0;
    for (int i = 0; i < batch; i++)
        out_shape[(*out_ndim)++] = batch_shape[i];
    if (na > 1) out_shape[(*out_ndim)++] = m;
    if (nb > 1) out_shape[(*out_ndim)++] = n;
    int64_t batches = numel_of(batch, batch_shape);
    for (int64_t flat = 0; flat < batches; flat++) {
        int64_t index[TC_MAX_DIMS], rest = flat;
        for (int i = batch - 1; i >= 0; i--) {
            index[i] = rest % batch_shape[i];
            rest /= batch_shape[i];
        }
        int64_t ia[TC_MAX_DIMS] = {0}, ib[TC_MAX_DIMS] = {0};
        for (int i = 0; i < batch_a; i++)
            ia[i] = index[i + batch - batch_a];
        for (int i = 0; i < batch_b; i++)
            ib[i] = index[i + batch - batch_b];
        int64_t base_a = broadcast_offset(batch_a, pa, ia) * m * k, base_b = broadcast_offset(batch_b, pb, ib) * k * n;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double sum = 0;
                for (int64_t p = 0; p < k; p++)
                    sum += a[base_a + i * k + p] * b[base_b + p * n + j];
                out[(flat * m + i) * n + j] = sum;
            }
    }
    free(swapped_a);
    free(swapped_b);
}

static void test_matmul(tc_context *ctx) {
    static const matmul_args plain = {false, false}, ta = {true, false}, tb = {false, true}, both = {true, true};
    const op_case cases[] = {
        {"matmul {3,4}x{4,5}", matmul_forward, matmul_reference, &plain, 2, {2, 2}, {{3, 4}, {4, 5}}},
        {"matmul dot {4}x{4}", matmul_forward, matmul_reference, &plain, 2, {1, 1}, {{4}, {4}}},
        {"matmul {4}x{4,5}", matmul_forward, matmul_reference, &plain, 2, {1, 2}, {{4}, {4, 5}}},
        {"matmul {3,4}x{4}", matmul_forward, matmul_reference, &plain, 2, {2, 1}, {{3, 4}, {4}}},
        {"matmul {2,3,4}x{4,5}", matmul_forward, matmul_reference, &plain, 2, {3, 2}, {{2, 3, 4}, {4, 5}}},
        {"matmul {3,4}x{2,4,5}", matmul_forward, matmul_reference, &plain, 2, {2, 3}, {{3, 4}, {2, 4, 5}}},
        {"matmul {4}x{2,4,5}", matmul_forward, matmul_reference, &plain, 2, {1, 3}, {{4}, {2, 4, 5}}},
        {"matmul {2,3,4}x{4}", matmul_forward, matmul_reference, &plain, 2, {3, 1}, {{2, 3, 4}, {4}}},
        {"matmul broadcast {2,1,3,4}x{5,4,2}",
         matmul_forward,
         matmul_reference,
         &plain,
         2,
         {4, 3},
         {{2, 1, 3, 4}, {5, 4, 2}}},
        {"matmul broadcast {2,1,3,4}x{1,3,4,2}",
         matmul_forward,
         matmul_reference,
         &plain,
         2,
         {4, 4},
         {{2, 1, 3, 4}, {1, 3, 4, 2}}},
        {"matmul a^T {3,4}x{4,5}", matmul_forward, matmul_reference, &ta, 2, {2, 2}, {{4, 3}, {4, 5}}},
        {"matmul b^T {3,4}x{4,5}", matmul_forward, matmul_reference, &tb, 2, {2, 2}, {{3, 4}, {5, 4}}},
        {"matmul a^T b^T batched", matmul_forward, matmul_reference, &both, 2, {3, 3}, {{2, 4, 3}, {2, 5, 4}}},
        {"matmul b^T broadcast", matmul_forward, matmul_reference, &tb, 2, {4, 3}, {{3, 1, 2, 4}, {2, 3, 4}}},
        {"matmul 1x1 matrices", matmul_forward, matmul_reference, &both, 2, {2, 2}, {{1, 1}, {1, 1}}},
        {"matmul column times row", matmul_forward, matmul_reference, &plain, 2, {2, 2}, {{3, 1}, {1, 4}}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(ctx, &cases[i]);

    /* Operands whose batch dims need a copy: a permuted batch and an
     * expanded (stride-0) batch of b. */
    int64_t shape_a[4] = {3, 2, 4, 5}, shape_b[3] = {1, 5, 2};
    double va[120], vb[10];
    fill_values(va, 120, 3);
    fill_values(vb, 10, 4);
    tc_tensor *a = tensor_of(ctx, TC_FLOAT64, 4, shape_a, va), *b = tensor_of(ctx, TC_FLOAT64, 3, shape_b, vb);
    tc_tensor *pa = NULL, *eb = NULL, *y = NULL, *ca = NULL, *cb = NULL, *expected = NULL;
    tc_status status = tc_permute(a, 4, (const int[]){1, 0, 2, 3}, &pa); /* {2, 3, 4, 5}, batch not collapsible */
    if (status == TC_OK) status = tc_expand(b, 3, (const int64_t[]){3, 5, 2}, &eb);
    if (status == TC_OK) status = tc_matmul(pa, eb, &y);
    if (status == TC_OK) status = tc_contiguous(pa, &ca);
    if (status == TC_OK) status = tc_contiguous(eb, &cb);
    if (status == TC_OK) status = tc_matmul(ca, cb, &expected);
    CHECK(status == TC_OK, "matmul with permuted/expanded batch: %s", tc_last_error(ctx));
    if (status == TC_OK) {
        double got[48], want[48];
        tc_copy_to_doubles(y, got, 48);
        tc_copy_to_doubles(expected, want, 48);
        CHECK(same_shape(y, 4, (const int64_t[]){2, 3, 4, 2}) && max_relative_error(got, want, 48) < 1e-14,
              "matmul with permuted/expanded batch differs from the contiguous result by %g",
              max_relative_error(got, want, 48));
    }
    tc_tensor *released[] = {a, b, pa, eb, y, ca, cb, expected};
    for (size_t i = 0; i < sizeof released / sizeof released[0]; i++)
        tc_tensor_release(released[i]);

    /* Empty products: k == 0 gives zeros, m == 0 an empty result. */
    tc_tensor *e1 = NULL, *e2 = NULL, *z = NULL;
    tc_zeros(ctx, TC_FLOAT32, 2, (const int64_t[]){3, 0}, &e1);
    tc_zeros(ctx, TC_FLOAT32, 2, (const int64_t[]){0, 2}, &e2);
    status = tc_matmul(e1, e2, &z);
    CHECK(status == TC_OK && same_shape(z, 2, (const int64_t[]){3, 2}), "matmul with k = 0: %s", tc_last_error(ctx));
    if (status == TC_OK) {
        double got[6] = {1, 1, 1, 1, 1, 1};
        tc_copy_to_doubles(z, got, 6);
        bool zeros = true;
        for (int i = 0; i < 6; i++)
            zeros = zeros && got[i] == 0;
        CHECK(zeros, "matmul with k = 0 is not all zeros");
    }
    tc_tensor_release(z);
    z = NULL;
    status = tc_matmul(e2, e1 == NULL ? e2 : e2, &z); /* {0,2} x {0,2}: misaligned */
    expect_error(ctx, "matmul misaligned empty", status, z, TC_ERROR_SHAPE, "matmul", NULL);
    tc_tensor_release(e1);
    tc_tensor_release(e2);

    /* Mixed float32 and float64 promote to float64. */
    tc_tensor *f = NULL, *d = NULL, *mixed = NULL;
    tc_ones(ctx, TC_FLOAT32, 2, (const int64_t[]){2, 3}, &f);
    tc_ones(ctx, TC_FLOAT64, 2, (const int64_t[]){3, 2}, &d);
    status = tc_matmul(f, d, &mixed);
    CHECK(status == TC_OK && tc_tensor_dtype(mixed) == TC_FLOAT64, "matmul float32 x float64 gives float64");
    tc_tensor_release(mixed);
    tc_tensor_release(f);
    tc_tensor_release(d);

    /* Bad inputs. */
    tc_tensor *m23 = NULL, *m45 = NULL, *scalar = NULL, *ints = NULL, *b234 = NULL, *b334 = NULL, *out = NULL;
    tc_ones(ctx, TC_FLOAT32, 2, (const int64_t[]){2, 3}, &m23);
    tc_ones(ctx, TC_FLOAT32, 2, (const int64_t[]){4, 5}, &m45);
    tc_ones(ctx, TC_FLOAT32, 0, NULL, &scalar);
    tc_ones(ctx, TC_INT64, 2, (const int64_t[]){3, 2}, &ints);
    tc_ones(ctx, TC_FLOAT32, 3, (const int64_t[]){2, 3, 4}, &b234);
    tc_ones(ctx, TC_FLOAT32, 3, (const int64_t[]){3, 4, 4}, &b334);
    status = tc_matmul(m23, m45, &out);
    expect_error(ctx, "matmul {2,3}x{4,5}", status, out, TC_ERROR_SHAPE, "matmul",
                 "shapes {2, 3} and {4, 5} do not align");
    out = NULL;
    status = tc_matmul(scalar, m23, &out);
    expect_error(ctx, "matmul 0-dim", status, out, TC_ERROR_SHAPE, "matmul", "at least 1 dim");
    out = NULL;
    status = tc_matmul(m23, ints, &out);
    expect_error(ctx, "matmul int64", status, out, TC_ERROR_DTYPE, "matmul", "int64");
    out = NULL;
    status = tc_matmul(b234, b334, &out);
    expect_error(ctx, "matmul batch mismatch", status, out, TC_ERROR_SHAPE, "matmul", "batch");
    tc_tensor *bad[] = {m23, m45, scalar, ints, b234, b334};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        tc_tensor_release(bad[i]);
}

/* ---- einsum ---- */

typedef struct einsum_args {
    const char *equation;  /* handed to tc_einsum */
    const char *reference; /* the same with explicit letters only, for the reference loops */
} einsum_args;

static tc_status einsum_forward(tc_tensor **inputs, int count, const void *extra, tc_tensor **out) {
    const einsum_args *args = extra;
    return tc_einsum(args->equation, count, inputs, out);
}

/* Plain loops over every assignment of the indices; dims of size 1
 * broadcast against the index's size elsewhere. */
static void einsum_reference(double **values, const int *ndims, const int64_t (*shapes)[TC_MAX_DIMS], const void *extra,
                             int *out_ndim, int64_t *out_shape, double *out) {
    const char *eq = ((const einsum_args *)extra)->reference;
    char subscripts[MAX_INPUTS][TC_MAX_DIMS + 1] = {{0}}, output[TC_MAX_DIMS + 1] = {0};
    int count = 0, length = 0;
    const char *p = eq;
    for (; *p && *p != '-'; p++) {
        if (*p == ',') {
            count++;
            length = 0;
        } else {
            subscripts[count][length++] = *p;
        }
    }
    count++;
    if (*p == '-') strcpy(output, p + 2);
    int64_t sizes[128];
    for (int i = 0; i < 128; i++)
        sizes[i] = -1;
    for (int i = 0; i < count; i++)
        for (int d = 0; d < ndims[i]; d++) {
            int c = subscripts[i][d];
            if (sizes[c] < 0 || sizes[c] == 1) sizes[c] = shapes[i][d];
        }
    char letters[64];
    int n_letters = 0;
    for (int c = 0; c < 128; c++)
        if (sizes[c] >= 0) letters[n_letters++] = (char)c;
    *out_ndim = (int)strlen(output);
    for (int j = 0; j < *out_ndim; j++)
        out_shape[j] = sizes[(int)output[j]];
    int64_t n_out = numel_of(*out_ndim, out_shape);
    for (int64_t i = 0; i < n_out; i++)
        out[i] = 0;
    int64_t value[128] = {0};
    for (;;) {
        double product = 1;
        for (int i = 0; i < count; i++) {
            int64_t index[TC_MAX_DIMS];
            for (int d = 0; d < ndims[i]; d++)
                index[d] = value[(int)subscripts[i][d]];
            product *= values[i][broadcast_offset(ndims[i], shapes[i], index)];
        }
        int64_t at = 0;
        for (int j = 0; j < *out_ndim; j++)
            at = at * out_shape[j] + value[(int)output[j]];
        out[at] += product;
        int l = n_letters - 1;
        for (; l >= 0; l--) {
            int c = letters[l];
            if (++value[c] < sizes[c]) break;
            value[c] = 0;
        }
        if (l < 0) break;
    }
}

static void test_einsum(tc_context *ctx) {
    static const einsum_args matmul = {"ij,jk->ik", "ij,jk->ik"}, batched = {"bij,bjk->bik", "bij,bjk->bik"},
                             diagonal = {"ii->i", "ii->i"}, trace = {"ii", "ii->"}, dot = {"i,i->", "i,i->"},
                             transpose = {"ij->ji", "ij->ji"}, ellipsis = {"...ij,...jk->...ik", "xyij,yjk->xyik"},
                             chain = {"ij,jk,kl->il", "ij,jk,kl->il"},
                             attention = {"bhqd,bhkd->bhqk", "bhqd,bhkd->bhqk"}, implicit = {"ij,jk", "ij,jk->ik"},
                             outer = {"i,j->ij", "i,j->ij"}, sum_all = {"ij->", "ij->"},
                             hadamard = {"ij,ij->ij", "ij,ij->ij"}, spaced = {" ij , jk -> ki ", "ij,jk->ki"},
                             broadcast_one = {"ij,jk->ik", "ij,jk->ik"},
                             batch_diagonal = {"bii,bj->bij", "bii,bj->bij"},
                             three_way = {"bi,bj,bk->bijk", "bi,bj,bk->bijk"}, private_sum = {"ij,kl->ik", "ij,kl->ik"},
                             upper = {"Ab,bC->CA", "Ab,bC->CA"}, ellipsis_only = {"...->...", "xy->xy"},
                             ellipsis_sum = {"i...->i", "ixy->i"};
    const op_case cases[] = {
        {"einsum ij,jk->ik", einsum_forward, einsum_reference, &matmul, 2, {2, 2}, {{3, 4}, {4, 5}}},
        {"einsum bij,bjk->bik", einsum_forward, einsum_reference, &batched, 2, {3, 3}, {{2, 3, 4}, {2, 4, 2}}},
        {"einsum ii->i", einsum_forward, einsum_reference, &diagonal, 1, {2}, {{4, 4}}},
        {"einsum ii", einsum_forward, einsum_reference, &trace, 1, {2}, {{4, 4}}},
        {"einsum i,i->", einsum_forward, einsum_reference, &dot, 2, {1, 1}, {{5}, {5}}},
        {"einsum ij->ji", einsum_forward, einsum_reference, &transpose, 1, {2}, {{3, 4}}},
        {"einsum ...ij,...jk->...ik",
         einsum_forward,
         einsum_reference,
         &ellipsis,
         2,
         {4, 3},
         {{2, 1, 3, 4}, {5, 4, 2}}},
        {"einsum ij,jk,kl->il", einsum_forward, einsum_reference, &chain, 3, {2, 2, 2}, {{2, 3}, {3, 4}, {4, 2}}},
        {"einsum bhqd,bhkd->bhqk",
         einsum_forward,
         einsum_reference,
         &attention,
         2,
         {4, 4},
         {{2, 2, 3, 4}, {2, 2, 5, 4}}},
        {"einsum ij,jk (implicit)", einsum_forward, einsum_reference, &implicit, 2, {2, 2}, {{2, 3}, {3, 2}}},
        {"einsum i,j->ij", einsum_forward, einsum_reference, &outer, 2, {1, 1}, {{3}, {4}}},
        {"einsum ij->", einsum_forward, einsum_reference, &sum_all, 1, {2}, {{3, 4}}},
        {"einsum ij,ij->ij", einsum_forward, einsum_reference, &hadamard, 2, {2, 2}, {{3, 4}, {3, 4}}},
        {"einsum with spaces", einsum_forward, einsum_reference, &spaced, 2, {2, 2}, {{3, 4}, {4, 2}}},
        {"einsum size-1 broadcast", einsum_forward, einsum_reference, &broadcast_one, 2, {2, 2}, {{3, 1}, {4, 2}}},
        {"einsum bii,bj->bij", einsum_forward, einsum_reference, &batch_diagonal, 2, {3, 2}, {{2, 3, 3}, {2, 4}}},
        {"einsum bi,bj,bk->bijk", einsum_forward, einsum_reference, &three_way, 3, {2, 2, 2}, {{2, 3}, {2, 2}, {2, 4}}},
        {"einsum ij,kl->ik", einsum_forward, einsum_reference, &private_sum, 2, {2, 2}, {{2, 3}, {4, 5}}},
        {"einsum Ab,bC->CA", einsum_forward, einsum_reference, &upper, 2, {2, 2}, {{2, 3}, {3, 4}}},
        {"einsum ...->...", einsum_forward, einsum_reference, &ellipsis_only, 1, {2}, {{2, 3}}},
        {"einsum i...->i", einsum_forward, einsum_reference, &ellipsis_sum, 1, {3}, {{2, 3, 4}}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(ctx, &cases[i]);

    /* Non-contiguous operands: a transposed view as the first operand. */
    int64_t shape[2] = {4, 3};
    double values[12], reference[12];
    fill_values(values, 12, 5);
    tc_tensor *x = tensor_of(ctx, TC_FLOAT64, 2, shape, values), *xt = NULL, *y = NULL, *ones = NULL;
    tc_ones(ctx, TC_FLOAT64, 1, (const int64_t[]){4}, &ones);
    tc_status status = tc_transpose(x, 0, 1, &xt);
    tc_tensor *pair[2] = {xt, ones};
    if (status == TC_OK) status = tc_einsum("ij,j->i", 2, pair, &y);
    CHECK(status == TC_OK, "einsum on a transposed view: %s", tc_last_error(ctx));
    if (status == TC_OK) {
        double got[3];
        for (int i = 0; i < 3; i++)
            reference[i] = values[i] + values[3 + i] + values[6 + i] + values[9 + i];
        tc_copy_to_doubles(y, got, 3);
        CHECK(max_relative_error(got, reference, 3) < 1e-14, "einsum on a transposed view: wrong values");
    }
    tc_tensor_release(y);
    tc_tensor_release(xt);
    tc_tensor_release(ones);
    tc_tensor_release(x);

    /* Bad equations. */
    tc_tensor *m34 = NULL, *m345 = NULL, *m35 = NULL, *m33 = NULL, *ints = NULL, *out = NULL;
    tc_ones(ctx, TC_FLOAT32, 2, (const int64_t[]){3, 4}, &m34);
    tc_ones(ctx, TC_FLOAT32, 3, (const int64_t[]){3, 4, 5}, &m345);
    tc_ones(ctx, TC_FLOAT32, 2, (const int64_t[]){3, 5}, &m35);
    tc_ones(ctx, TC_FLOAT32, 2, (const int64_t[]){2, 3}, &m33);
    tc_ones(ctx, TC_INT32, 2, (const int64_t[]){4, 4}, &ints);
    tc_tensor *args1[2] = {m34, m345};
    status = tc_einsum("ij,jk->ik", 2, args1, &out);
    expect_error(ctx, "einsum dims", status, out, TC_ERROR_SHAPE,
                 "einsum 'ij,jk->ik': operand 2 has 3 dims but its subscript 'jk' names 2", NULL);
    out = NULL;
    tc_tensor *args2[2] = {m34, m35};
    status = tc_einsum("ij,jk->ik", 2, args2, &out);
    expect_error(ctx, "einsum sizes", status, out, TC_ERROR_SHAPE, "einsum 'ij,jk->ik'",
                 "index 'j' has size 4 in operand 1 but 3 in operand 2");
    out = NULL;
    status = tc_einsum("ij->ik", 1, args2, &out);
    expect_error(ctx, "einsum output index", status, out, TC_ERROR_ARGUMENT, "einsum 'ij->ik'", "'k'");
    out = NULL;
    status = tc_einsum("ij->ii", 1, args2, &out);
    expect_error(ctx, "einsum repeated output", status, out, TC_ERROR_ARGUMENT, "einsum 'ij->ii'", "more than once");
    out = NULL;
    status = tc_einsum("ij,jk->ik", 1, args2, &out);
    expect_error(ctx, "einsum count", status, out, TC_ERROR_ARGUMENT, "einsum 'ij,jk->ik'", "2 operand subscripts");
    out = NULL;
    status = tc_einsum("i1->i", 1, args2, &out);
    expect_error(ctx, "einsum bad char", status, out, TC_ERROR_ARGUMENT, "einsum 'i1->i'", "'1'");
    out = NULL;
    status = tc_einsum("i..j->ij", 1, args2, &out);
    expect_error(ctx, "einsum bad ellipsis", status, out, TC_ERROR_ARGUMENT, "einsum 'i..j->ij'", "'...'");
    out = NULL;
    status = tc_einsum("...i...->i", 1, args2, &out);
    expect_error(ctx, "einsum two ellipses", status, out, TC_ERROR_ARGUMENT, "einsum", "more than one '...'");
    out = NULL;
    tc_tensor *args3[1] = {m33};
    status = tc_einsum("ii->i", 1, args3, &out);
    expect_error(ctx, "einsum diagonal sizes", status, out, TC_ERROR_SHAPE, "einsum 'ii->i'", "repeats index 'i'");
    out = NULL;
    tc_tensor *args4[1] = {ints};
    status = tc_einsum("ii->i", 1, args4, &out);
    expect_error(ctx, "einsum int32", status, out, TC_ERROR_DTYPE, "einsum 'ii->i'", "int32");
    out = NULL;
    status = tc_einsum("ab...->ab", 1, args3, &out); /* no dims under '...' is fine */
    CHECK(status == TC_OK && same_shape(out, 2, (const int64_t[]){2, 3}), "einsum 'ab...->ab' on {2, 3}: %s",
          tc_last_error(ctx));
    tc_tensor_release(out);
    out = NULL;
    tc_tensor *args5[1] = {m34};
    status = tc_einsum("...ijk->...", 1, args5, &out);
    expect_error(ctx, "einsum ellipsis too few dims", status, out, TC_ERROR_SHAPE, "einsum '...ijk->...'",
                 "operand 1 has 2 dims but its subscript '...ijk' names at least 3");
    tc_tensor *bad[] = {m34, m345, m35, m33, ints};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        tc_tensor_release(bad[i]);
}

/* ---- softmax and log_softmax ---- */

typedef struct softmax_args {
    int dim;
    bool log;
    bool transposed; /* the leaf is {b, a} and the op sees its transpose */
} softmax_args;

static tc_status softmax_forward(tc_tensor **inputs, int count, const void *extra, tc_tensor **out) {
    (void)count;
    const softmax_args *args = extra;
    tc_tensor *x = inputs[0];
    if (args->transposed) {
        tc_status status = tc_transpose(inputs[0], 0, 1, &x);
        if (status != TC_OK) return status;
    }
    tc_status status = args->log ? tc_log_softmax(x, args->dim, out) : tc_softmax(x, args->dim, out);
    if (args->transposed) tc_tensor_release(x);
    return status;
}

static void softmax_reference(double **values, const int *ndims, const int64_t (*shapes)[TC_MAX_DIMS],
                              const void *extra, int *out_ndim, int64_t *out_shape, double *out) {
    const softmax_args *args = extra;
    int ndim = ndims[0];
    int64_t shape[TC_MAX_DIMS];
    memcpy(shape, shapes[0], sizeof shape);
    const double *x = values[0];
    double *swapped = NULL;
    if (args->transposed) {
        swapped = malloc(sizeof(double) * (size_t)numel_of(ndim, shape));
        swap_last_two(ndim, shape, x, swapped);
        int64_t t = shape[0];
        shape[0] = shape[1];
        shape[1] = t;
        x = swapped;
    }
    int d = args->dim < 0 ? args->dim + ndim : args->dim;
    int64_t outer = numel_of(d, shape), size = shape[d], inner = numel_of(ndim - d - 1, shape + d + 1);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const double *row = x + o * size * inner + j;
            double *result = out + o * size * inner + j;
            double max = -INFINITY, sum = 0;
            for (int64_t i = 0; i < size; i++)
                max = fmax(max, row[i * inner]);
            for (int64_t i = 0; i < size; i++)
                sum += exp(row[i * inner] - max);
            for (int64_t i = 0; i < size; i++)
                result[i * inner] = args->log ? row[i * inner] - max - log(sum) : exp(row[i * inner] - max) / sum;
        }
    *out_ndim = ndim;
    memcpy(out_shape, shape, sizeof shape);
    free(swapped);
}

static void test_softmax(tc_context *ctx) {
    static const softmax_args dim0 = {0, false, false}, last = {-1, false, false}, middle = {1, false, false},
                              log0 = {0, true, false}, log_last = {-1, true, false}, log_middle = {1, true, false},
                              transposed = {-1, false, true}, log_transposed = {0, true, true};
    const op_case cases[] = {
        {"softmax dim 0", softmax_forward, softmax_reference, &dim0, 1, {3}, {{3, 4, 2}}},
        {"softmax dim -1", softmax_forward, softmax_reference, &last, 1, {3}, {{3, 4, 2}}},
        {"softmax dim 1", softmax_forward, softmax_reference, &middle, 1, {3}, {{3, 4, 2}}},
        {"log_softmax dim 0", softmax_forward, softmax_reference, &log0, 1, {3}, {{3, 4, 2}}},
        {"log_softmax dim -1", softmax_forward, softmax_reference, &log_last, 1, {3}, {{3, 4, 2}}},
        {"log_softmax dim 1", softmax_forward, softmax_reference, &log_middle, 1, {3}, {{3, 4, 2}}},
        {"softmax of a transposed view", softmax_forward, softmax_reference, &transposed, 1, {2}, {{4, 3}}},
        {"log_softmax of a transposed view", softmax_forward, softmax_reference, &log_transposed, 1, {2}, {{4, 3}}},
        {"softmax 1-D", softmax_forward, softmax_reference, &last, 1, {1}, {{6}}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(ctx, &cases[i]);

    /* Large inputs stay finite; a 0-dim softmax is 1. */
    double big[3] = {1000, 1001, 1002}, got[3];
    tc_tensor *x = tensor_of(ctx, TC_FLOAT32, 1, (const int64_t[]){3}, big), *y = NULL, *s = NULL, *sy = NULL;
    tc_status status = tc_log_softmax(x, 0, &y);
    CHECK(status == TC_OK, "log_softmax of large values: %s", tc_last_error(ctx));
    if (status == TC_OK) {
        tc_copy_to_doubles(y, got, 3);
        CHECK(fabs(got[2] - (-log(1 + exp(-1.0) + exp(-2.0)))) < 1e-5, "log_softmax of large values: %g", got[2]);
    }
    tc_full(ctx, TC_FLOAT64, 0, NULL, 3.5, &s);
    status = tc_softmax(s, -1, &sy);
    double one = 0;
    if (status == TC_OK) tc_item(sy, &one);
    CHECK(status == TC_OK && one == 1.0 && tc_tensor_ndim(sy) == 0, "softmax of a 0-dim tensor: %s",
          tc_last_error(ctx));
    tc_tensor_release(sy);
    tc_tensor_release(s);
    tc_tensor_release(y);

    tc_tensor *ints = NULL, *out = NULL;
    tc_ones(ctx, TC_INT64, 2, (const int64_t[]){2, 3}, &ints);
    status = tc_softmax(ints, 0, &out);
    expect_error(ctx, "softmax int64", status, out, TC_ERROR_DTYPE, "softmax", "int64");
    out = NULL;
    tc_tensor *m = NULL;
    tc_ones(ctx, TC_FLOAT32, 2, (const int64_t[]){2, 3}, &m);
    status = tc_softmax(m, 2, &out);
    expect_error(ctx, "softmax dim 2 of 2", status, out, TC_ERROR_ARGUMENT, "softmax", "dim 3 is out of range");
    out = NULL;
    status = tc_log_softmax(m, -3, &out);
    expect_error(ctx, "log_softmax dim -3", status, out, TC_ERROR_ARGUMENT, "log_softmax", "out of range");
    tc_tensor_release(m);
    tc_tensor_release(ints);
    tc_tensor_release(x);
}

/* ---- dropout ---- */

typedef struct dropout_args {
    double p;
    uint64_t seed;
} dropout_args;

/* The RNG is reset before each call so every evaluation draws one mask. */
static tc_status dropout_forward(tc_tensor **inputs, int count, const void *extra, tc_tensor **out) {
    (void)count;
    const dropout_args *args = extra;
    tc_rng_set_state(tc_tensor_context(inputs[0]), args->seed, 0);
    return tc_dropout(inputs[0], args->p, true, out);
}

static void test_dropout(tc_context *ctx) {
    /* The identity when not training or p == 0: x itself, no RNG use. */
    tc_tensor *x = NULL, *y = NULL;
    uint64_t seed, offset, offset_after;
    tc_ones(ctx, TC_FLOAT32, 2, (const int64_t[]){4, 5}, &x);
    tc_manual_seed(ctx, 5);
    tc_status status = tc_dropout(x, 0.5, false, &y);
    CHECK(status == TC_OK && y == x, "dropout when not training returns x");
    tc_tensor_release(y);
    status = tc_dropout(x, 0.0, true, &y);
    CHECK(status == TC_OK && y == x, "dropout with p = 0 returns x");
    tc_tensor_release(y);
    tc_rng_get_state(ctx, &seed, &offset);
    CHECK(seed == 5 && offset == 0, "the identity dropout used the RNG");
    tc_tensor_release(x);

    /* Mask statistics and scaling, in both dtypes; the offset advances by
     * (numel + 3) / 4. */
    enum { N = 20001 };
    static double kept[N];
    for (int d = 0; d < 2; d++) {
        tc_dtype dtype = d ? TC_FLOAT32 : TC_FLOAT64;
        const double p = 0.3;
        tc_tensor *ones = NULL, *first = NULL, *second = NULL, *third = NULL;
        tc_ones(ctx, dtype, 1, (const int64_t[]){N}, &ones);
        tc_manual_seed(ctx, 1234);
        status = tc_dropout(ones, p, true, &first);
        tc_rng_get_state(ctx, &seed, &offset_after);
        CHECK(status == TC_OK, "dropout (%s): %s", tc_dtype_name(dtype), tc_last_error(ctx));
        if (status != TC_OK) continue;
        CHECK(offset_after == (N + 3) / 4, "dropout advanced the offset to %llu, expected %d",
              (unsigned long long)offset_after, (N + 3) / 4);
        tc_copy_to_doubles(first, kept, N);
        int zeros = 0;
        bool scaled = true;
        double scale = dtype == TC_FLOAT32 ? (double)(float)(1.0 / (1.0 - p)) : 1.0 / (1.0 - p);
        for (int i = 0; i < N; i++) {
            if (kept[i] == 0)
                zeros++;
            else if (kept[i] != scale)
                scaled = false;
        }
        double fraction = (double)zeros / N;
        CHECK(fabs(fraction - p) < 0.015, "dropout (%s) zeroed %.4f of the elements, expected about %.2f",
              tc_dtype_name(dtype), fraction, p);
        CHECK(scaled, "dropout (%s) kept values are not scaled by 1/(1-p)", tc_dtype_name(dtype));
        /* The same seed gives the same mask; the next draw another one. */
        tc_manual_seed(ctx, 1234);
        status = tc_dropout(ones, p, true, &second);
        if (status == TC_OK) status = tc_dropout(ones, p, true, &third);
        CHECK(status == TC_OK, "dropout again: %s", tc_last_error(ctx));
        if (status == TC_OK) {
            static double again[N], next[N];
            tc_copy_to_doubles(second, again, N);
            tc_copy_to_doubles(third, next, N);
            CHECK(memcmp(kept, again, sizeof kept) == 0, "dropout with the same seed drew another mask");
            CHECK(memcmp(kept, next, sizeof kept) != 0, "two dropout draws in a row gave the same mask");
        }
        tc_tensor_release(ones);
        tc_tensor_release(first);
        tc_tensor_release(second);
        tc_tensor_release(third);
    }

    /* The gradient is mask / (1 - p). */
    double values[64], out[64], grad[64];
    fill_values(values, 64, 8);
    x = tensor_of(ctx, TC_FLOAT64, 2, (const int64_t[]){8, 8}, values);
    tc_tensor_set_requires_grad(x, true);
    tc_manual_seed(ctx, 77);
    status = tc_dropout(x, 0.4, true, &y);
    tc_tensor *seed_grad = NULL;
    tc_ones(ctx, TC_FLOAT64, 2, (const int64_t[]){8, 8}, &seed_grad);
    if (status == TC_OK) status = tc_backward(y, seed_grad, false);
    CHECK(status == TC_OK && tc_tensor_grad(x), "dropout backward: %s", tc_last_error(ctx));
    if (status == TC_OK && tc_tensor_grad(x)) {
        tc_copy_to_doubles(y, out, 64);
        tc_copy_to_doubles(tc_tensor_grad(x), grad, 64);
        bool right = true;
        for (int i = 0; i < 64; i++) {
            double mask = out[i] != 0 ? 1.0 : 0.0;
            if (fabs(grad[i] - mask / 0.6) > 1e-15) right = false;
            if (mask && fabs(out[i] - values[i] / 0.6) > 1e-15) right = false;
        }
        CHECK(right, "dropout gradient is not mask / (1 - p)");
    }
    tc_tensor_release(seed_grad);
    tc_tensor_release(y);
    tc_tensor_release(x);

    static const dropout_args half = {0.5, 99}, most = {0.9, 3};
    const op_case cases[] = {
        {"dropout p = 0.5", dropout_forward, NULL, &half, 1, {2}, {{5, 6}}},
        {"dropout p = 0.9", dropout_forward, NULL, &most, 1, {1}, {{40}}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_gradients(ctx, &cases[i]);

    /* p == 1 drops everything, with a zero gradient. */
    x = tensor_of(ctx, TC_FLOAT64, 2, (const int64_t[]){8, 8}, values);
    tc_tensor_set_requires_grad(x, true);
    status = tc_dropout(x, 1.0, true, &y);
    if (status == TC_OK) status = tc_reduce(TC_REDUCE_SUM, y, 0, NULL, false, &seed_grad);
    if (status == TC_OK) status = tc_backward(seed_grad, NULL, false);
    CHECK(status == TC_OK, "dropout with p = 1: %s", tc_last_error(ctx));
    if (status == TC_OK) {
        tc_copy_to_doubles(y, out, 64);
        tc_copy_to_doubles(tc_tensor_grad(x), grad, 64);
        bool zeros = true;
        for (int i = 0; i < 64; i++)
            zeros = zeros && out[i] == 0 && grad[i] == 0;
        CHECK(zeros, "dropout with p = 1 is not all zeros (or its gradient is not)");
    }
    tc_tensor_release(seed_grad);
    tc_tensor_release(y);
    tc_tensor_release(x);

    tc_tensor *f = NULL, *ints = NULL;
    y = NULL;
    tc_ones(ctx, TC_FLOAT32, 1, (const int64_t[]){4}, &f);
    tc_ones(ctx, TC_INT32, 1, (const int64_t[]){4}, &ints);
    status = tc_dropout(f, 1.5, true, &y);
    expect_error(ctx, "dropout p = 1.5", status, y, TC_ERROR_ARGUMENT, "dropout", "1.5");
    y = NULL;
    status = tc_dropout(f, -0.1, true, &y);
    expect_error(ctx, "dropout p = -0.1", status, y, TC_ERROR_ARGUMENT, "dropout", "-0.1");
    y = NULL;
    status = tc_dropout(f, NAN, true, &y);
    expect_error(ctx, "dropout p = nan", status, y, TC_ERROR_ARGUMENT, "dropout", NULL);
    y = NULL;
    status = tc_dropout(ints, 0.5, true, &y);
    expect_error(ctx, "dropout int32", status, y, TC_ERROR_DTYPE, "dropout", "int32");
    tc_tensor_release(f);
    tc_tensor_release(ints);
}

/* ---- cat and stack ---- */

typedef struct list_args {
    int dim;
} list_args;

static tc_status cat_forward(tc_tensor **inputs, int count, const void *extra, tc_tensor **out) {
    return tc_cat(count, inputs, ((const list_args *)extra)->dim, out);
}

static tc_status stack_forward(tc_tensor **inputs, int count, const void *extra, tc_tensor **out) {
    return tc_stack(count, inputs, ((const list_args *)extra)->dim, out);
}

/* Counts the inputs from the shapes: unused slots have ndim 0. */
static int list_count(const int *ndims) {
    int count = 0;
    while (count < MAX_INPUTS && ndims[count] > 0)
        count++;
    return count;
}

static void cat_reference(double **values, const int *ndims, const int64_t (*shapes)[TC_MAX_DIMS], const void *extra,
                          int *out_ndim, int64_t *out_shape, double *out) {
    int count = list_count(ndims), ndim = ndims[0];
    int dim = ((const list_args *)extra)->dim, d = dim < 0 ? dim + ndim : dim;
    memcpy(out_shape, shapes[0], sizeof(int64_t) * TC_MAX_DIMS);
    out_shape[d] = 0;
    for (int i = 0; i < count; i++)
        out_shape[d] += shapes[i][d];
    *out_ndim = ndim;
    int64_t outer = numel_of(d, out_shape), inner = numel_of(ndim - d - 1, out_shape + d + 1), start = 0;
    for (int i = 0; i < count; i++) {
        int64_t size = shapes[i][d];
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < size * inner; j++)
                out[(o * out_shape[d] + start) * inner + j] = values[i][o * size * inner + j];
        start += size;
    }
}

static void stack_reference(double **values, const int *ndims, const int64_t (*shapes)[TC_MAX_DIMS], const void *extra,
                            int *out_ndim, int64_t *out_shape, double *out) {
    int count = list_count(ndims), ndim = ndims[0];
    int dim = ((const list_args *)extra)->dim, d = dim < 0 ? dim + ndim + 1 : dim;
    *out_ndim = ndim + 1;
    for (int e = 0, f = 0; e <= ndim; e++)
        out_shape[e] = e == d ? count : shapes[0][f++];
    int64_t outer = numel_of(d, shapes[0]), inner = numel_of(ndim - d, shapes[0] + d);
    for (int i = 0; i < count; i++)
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < inner; j++)
                out[(o * count + i) * inner + j] = values[i][o * inner + j];
}

static void test_cat_stack(tc_context *ctx) {
    static const list_args d0 = {0}, d1 = {1}, d2 = {2}, last = {-1};
    const op_case cases[] = {
        {"cat dim 0", cat_forward, cat_reference, &d0, 3, {2, 2, 2}, {{2, 3}, {4, 3}, {1, 3}}},
        {"cat dim 1", cat_forward, cat_reference, &d1, 3, {3, 3, 3}, {{2, 1, 4}, {2, 3, 4}, {2, 2, 4}}},
        {"cat dim -1", cat_forward, cat_reference, &last, 3, {3, 3, 3}, {{2, 3, 1}, {2, 3, 2}, {2, 3, 3}}},
        {"cat with an empty input", cat_forward, cat_reference, &d1, 3, {2, 2, 2}, {{2, 3}, {2, 0}, {2, 2}}},
        {"stack dim 0", stack_forward, stack_reference, &d0, 3, {2, 2, 2}, {{2, 3}, {2, 3}, {2, 3}}},
        {"stack dim 1", stack_forward, stack_reference, &d1, 3, {2, 2, 2}, {{2, 3}, {2, 3}, {2, 3}}},
        {"stack dim 2", stack_forward, stack_reference, &d2, 3, {2, 2, 2}, {{2, 3}, {2, 3}, {2, 3}}},
        {"stack dim -1", stack_forward, stack_reference, &last, 3, {1, 1, 1}, {{4}, {4}, {4}}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(ctx, &cases[i]);

    /* Dtype promotion, and a transposed (non-contiguous) input. */
    tc_tensor *f = NULL, *d = NULL, *i64 = NULL, *out = NULL, *t = NULL;
    double values[6] = {1, 2, 3, 4, 5, 6};
    f = tensor_of(ctx, TC_FLOAT32, 2, (const int64_t[]){2, 3}, values);
    d = tensor_of(ctx, TC_FLOAT64, 2, (const int64_t[]){2, 3}, values);
    i64 = tensor_of(ctx, TC_INT64, 2, (const int64_t[]){2, 3}, values);
    tc_tensor *mixed[3] = {f, d, i64};
    tc_status status = tc_cat(3, mixed, 0, &out);
    CHECK(status == TC_OK && tc_tensor_dtype(out) == TC_FLOAT64, "cat of float32, float64, int64 gives float64");
    tc_tensor_release(out);
    out = NULL;
    tc_tensor *ints_and_float[2] = {i64, f};
    status = tc_stack(2, ints_and_float, 0, &out);
    CHECK(status == TC_OK && tc_tensor_dtype(out) == TC_FLOAT32, "stack of int64 and float32 gives float32");
    tc_tensor_release(out);
    out = NULL;
    status = tc_transpose(d, 0, 1, &t);
    tc_tensor *with_view[2] = {t, t};
    if (status == TC_OK) status = tc_cat(2, with_view, 1, &out);
    CHECK(status == TC_OK && same_shape(out, 2, (const int64_t[]){3, 4}), "cat of transposed views: %s",
          tc_last_error(ctx));
    if (status == TC_OK) {
        double got[12], want[12] = {1, 4, 1, 4, 2, 5, 2, 5, 3, 6, 3, 6};
        tc_copy_to_doubles(out, got, 12);
        CHECK(memcmp(got, want, sizeof got) == 0, "cat of transposed views: wrong values");
    }
    tc_tensor_release(out);
    tc_tensor_release(t);

    /* Bad inputs. */
    tc_tensor *m24 = NULL, *v3 = NULL, *scalar = NULL;
    tc_ones(ctx, TC_FLOAT32, 2, (const int64_t[]){2, 4}, &m24);
    tc_ones(ctx, TC_FLOAT32, 1, (const int64_t[]){3}, &v3);
    tc_ones(ctx, TC_FLOAT32, 0, NULL, &scalar);
    tc_tensor *ndim_mismatch[2] = {f, v3}, *size_mismatch[3] = {f, d, m24}, *scalars[2] = {scalar, scalar};
    out = NULL;
    status = tc_cat(2, ndim_mismatch, 0, &out);
    expect_error(ctx, "cat ndim mismatch", status, out, TC_ERROR_SHAPE, "cat", "tensor 2 has shape {3}");
    out = NULL;
    status = tc_cat(3, size_mismatch, 0, &out);
    expect_error(ctx, "cat size mismatch", status, out, TC_ERROR_SHAPE, "cat", "tensor 3 of shape {2, 4}");
    out = NULL;
    status = tc_cat(2, mixed, 2, &out);
    expect_error(ctx, "cat dim out of range", status, out, TC_ERROR_ARGUMENT, "cat", "dim 3 is out of range");
    out = NULL;
    status = tc_cat(2, scalars, 0, &out);
    expect_error(ctx, "cat of 0-dim", status, out, TC_ERROR_SHAPE, "cat", "0-dim");
    out = NULL;
    status = tc_cat(0, mixed, 0, &out);
    CHECK(status == TC_ERROR_ARGUMENT && out == NULL, "cat of no tensors: status %d", (int)status);
    tc_clear_error(ctx);
    out = NULL;
    status = tc_stack(3, size_mismatch, 0, &out);
    expect_error(ctx, "stack shape mismatch", status, out, TC_ERROR_SHAPE, "stack", "tensor 3 has shape {2, 4}");
    out = NULL;
    status = tc_stack(2, mixed, 3, &out);
    expect_error(ctx, "stack dim out of range", status, out, TC_ERROR_ARGUMENT, "stack", "out of range");
    tc_tensor *all[] = {f, d, i64, m24, v3, scalar};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tc_tensor_release(all[i]);
}

/* ---- gather, index_select, embedding ---- */

typedef struct index_args {
    int dim;
    tc_tensor *index; /* int32 or int64, made by the test */
    int ndim;         /* of the index */
    int64_t shape[TC_MAX_DIMS];
    int64_t ids[64];
    bool transposed; /* the 2-D leaf is {b, a} and the op sees its transpose */
} index_args;

static tc_status gather_forward(tc_tensor **inputs, int count, const void *extra, tc_tensor **out) {
    (void)count;
    const index_args *args = extra;
    tc_tensor *x = inputs[0];
    if (args->transposed) {
        tc_status status = tc_transpose(inputs[0], 0, 1, &x);
        if (status != TC_OK) return status;
    }
    tc_status status = tc_gather(x, args->dim, args->index, out);
    if (args->transposed) tc_tensor_release(x);
    return status;
}

static tc_status index_select_forward(tc_tensor **inputs, int count, const void *extra, tc_tensor **out) {
    (void)count;
    const index_args *args = extra;
    tc_tensor *x = inputs[0];
    if (args->transposed) {
        tc_status status = tc_transpose(inputs[0], 0, 1, &x);
        if (status != TC_OK) return status;
    }
    tc_status status = tc_index_select(x, args->dim, args->index, out);
    if (args->transposed) tc_tensor_release(x);
    return status;
}

static tc_status embedding_forward(tc_tensor **inputs, int count, const void *extra, tc_tensor **out) {
    (void)count;
    return tc_embedding(inputs[0], ((const index_args *)extra)->index, out);
}

/* The leaf's values as the op sees them (transposed when asked). */
static const double *logical_input(const index_args *args, const double *values, int ndim, const int64_t *leaf_shape,
                                   int64_t *shape, double **scratch) {
    memcpy(shape, leaf_shape, sizeof(int64_t) * TC_MAX_DIMS);
    *scratch = NULL;
    if (!args->transposed) return values;
    *scratch = malloc(sizeof(double) * (size_t)numel_of(ndim, shape));
    swap_last_two(ndim, leaf_shape, values, *scratch);
    shape[0] = leaf_shape[1];
    shape[1] = leaf_shape[0];
    return *scratch;
}

static void gather_reference(double **values, const int *ndims, const int64_t (*shapes)[TC_MAX_DIMS], const void *extra,
                             int *out_ndim, int64_t *out_shape, double *out) {
    const index_args *args = extra;
    int ndim = ndims[0], d = args->dim < 0 ? args->dim + ndim : args->dim;
    int64_t shape[TC_MAX_DIMS];
    double *scratch;
    const double *x = logical_input(args, values[0], ndim, shapes[0], shape, &scratch);
    *out_ndim = args->ndim;
    memcpy(out_shape, args->shape, sizeof args->shape);
    int64_t n = numel_of(args->ndim, args->shape);
    for (int64_t i = 0; i < n; i++) {
        int64_t rest = i, at = 0, stride = 1;
        for (int e = ndim - 1; e >= 0; e--) {
            int64_t coordinate = rest % args->shape[e];
            rest /= args->shape[e];
            if (e == d) coordinate = args->ids[i];
            at += coordinate * stride;
            stride *= shape[e];
        }
        out[i] = x[at];
    }
    free(scratch);
}

static void index_select_reference(double **values, const int *ndims, const int64_t (*shapes)[TC_MAX_DIMS],
                                   const void *extra, int *out_ndim, int64_t *out_shape, double *out) {
    const index_args *args = extra;
    int ndim = ndims[0], d = args->dim < 0 ? args->dim + ndim : args->dim;
    int64_t shape[TC_MAX_DIMS];
    double *scratch;
    const double *x = logical_input(args, values[0], ndim, shapes[0], shape, &scratch);
    int64_t count = numel_of(args->ndim, args->shape);
    *out_ndim = ndim;
    memcpy(out_shape, shape, sizeof shape);
    out_shape[d] = count;
    int64_t outer = numel_of(d, shape), inner = numel_of(ndim - d - 1, shape + d + 1);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < count; j++)
            for (int64_t k = 0; k < inner; k++)
                out[(o * count + j) * inner + k] = x[(o * shape[d] + args->ids[j]) * inner + k];
    free(scratch);
}

static void embedding_reference(double **values, const int *ndims, const int64_t (*shapes)[TC_MAX_DIMS],
                                const void *extra, int *out_ndim, int64_t *out_shape, double *out) {
    (void)ndims;
    const index_args *args = extra;
    int64_t width = shapes[0][1], n = numel_of(args->ndim, args->shape);
    *out_ndim = args->ndim + 1;
    memcpy(out_shape, args->shape, sizeof(int64_t) * (size_t)args->ndim);
    out_shape[args->ndim] = width;
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < width; k++)
            out[i * width + k] = values[0][args->ids[i] * width + k];
}

static void make_index(tc_context *ctx, index_args *args, tc_dtype dtype) {
    args->index = index_of(ctx, dtype, args->ndim, args->shape, args->ids);
}

static void test_indexing(tc_context *ctx) {
    index_args gather0 = {0, NULL, 2, {2, 4}, {0, 2, 2, 1, 2, 2, 0, 0}, false};
    index_args gather1 = {1, NULL, 2, {3, 2}, {3, 3, 0, 1, 2, 2}, false};
    index_args gather_last = {-1,   NULL, 3, {2, 2, 5}, {0, 3, 3, 1, 2, 1, 1, 1, 0, 0, 3, 2, 2, 2, 2, 0, 1, 2, 3, 0},
                              false};
    index_args gather_view = {0, NULL, 2, {5, 2}, {1, 0, 3, 3, 0, 0, 2, 1, 3, 3}, true};
    index_args select0 = {0, NULL, 1, {5}, {3, 0, 3, 3, 1}, false};
    index_args select1 = {1, NULL, 1, {3}, {2, 2, 0}, false};
    index_args select_last = {-1, NULL, 1, {2}, {1, 1}, false};
    index_args select_view = {0, NULL, 1, {3}, {3, 0, 3}, true};
    index_args select_empty = {1, NULL, 1, {0}, {0}, false};
    index_args embed2d = {0, NULL, 2, {2, 3}, {4, 0, 4, 1, 1, 4}, false};
    index_args embed1d = {0, NULL, 1, {4}, {2, 3, 2, 0}, false};
    index_args embed0d = {0, NULL, 0, {0}, {3}, false};
    make_index(ctx, &gather0, TC_INT64);
    make_index(ctx, &gather1, TC_INT32);
    make_index(ctx, &gather_last, TC_INT64);
    make_index(ctx, &gather_view, TC_INT32);
    make_index(ctx, &select0, TC_INT64);
    make_index(ctx, &select1, TC_INT32);
    make_index(ctx, &select_last, TC_INT64);
    make_index(ctx, &select_view, TC_INT64);
    make_index(ctx, &select_empty, TC_INT64);
    make_index(ctx, &embed2d, TC_INT64);
    make_index(ctx, &embed1d, TC_INT32);
    make_index(ctx, &embed0d, TC_INT64);
    const op_case cases[] = {
        {"gather dim 0, repeated indices", gather_forward, gather_reference, &gather0, 1, {2}, {{3, 4}}},
        {"gather dim 1, int32, smaller index", gather_forward, gather_reference, &gather1, 1, {2}, {{3, 4}}},
        {"gather dim -1, index longer than x", gather_forward, gather_reference, &gather_last, 1, {3}, {{2, 3, 4}}},
        {"gather on a transposed view", gather_forward, gather_reference, &gather_view, 1, {2}, {{3, 4}}},
        {"index_select dim 0, repeated indices",
         index_select_forward,
         index_select_reference,
         &select0,
         1,
         {2},
         {{4, 3}}},
        {"index_select dim 1, int32", index_select_forward, index_select_reference, &select1, 1, {2}, {{4, 3}}},
        {"index_select dim -1", index_select_forward, index_select_reference, &select_last, 1, {3}, {{2, 3, 4}}},
        {"index_select on a transposed view",
         index_select_forward,
         index_select_reference,
         &select_view,
         1,
         {2},
         {{3, 4}}},
        {"index_select with an empty index",
         index_select_forward,
         index_select_reference,
         &select_empty,
         1,
         {2},
         {{4, 3}}},
        {"embedding ids {2, 3}", embedding_forward, embedding_reference, &embed2d, 1, {2}, {{5, 3}}},
        {"embedding int32 ids {4}", embedding_forward, embedding_reference, &embed1d, 1, {2}, {{5, 3}}},
        {"embedding 0-dim id", embedding_forward, embedding_reference, &embed0d, 1, {2}, {{5, 3}}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(ctx, &cases[i]);

    /* Repeated indices accumulate: the gradient of sum(x[index]) counts them. */
    tc_tensor *x = NULL, *picked = NULL, *total = NULL;
    tc_zeros(ctx, TC_FLOAT64, 2, (const int64_t[]){4, 3}, &x);
    tc_tensor_set_requires_grad(x, true);
    tc_status status = tc_index_select(x, 0, select0.index, &picked);
    if (status == TC_OK) status = tc_reduce(TC_REDUCE_SUM, picked, 0, NULL, false, &total);
    if (status == TC_OK) status = tc_backward(total, NULL, false);
    CHECK(status == TC_OK, "index_select accumulation: %s", tc_last_error(ctx));
    if (status == TC_OK) {
        double grad[12];
        tc_copy_to_doubles(tc_tensor_grad(x), grad, 12);
        CHECK(grad[0] == 1 && grad[3] == 1 && grad[6] == 0 && grad[9] == 3 && grad[11] == 3,
              "index_select gradient does not count repeated indices: %g %g %g %g", grad[0], grad[3], grad[6], grad[9]);
    }
    tc_tensor_release(total);
    tc_tensor_release(picked);
    tc_tensor_release(x);

    /* Bad inputs. */
    tc_tensor *m34 = NULL, *v5 = NULL, *findex = NULL, *big = NULL, *negative = NULL, *wide = NULL, *out = NULL;
    tc_ones(ctx, TC_FLOAT32, 2, (const int64_t[]){3, 4}, &m34);
    tc_ones(ctx, TC_FLOAT32, 1, (const int64_t[]){5}, &v5);
    tc_zeros(ctx, TC_FLOAT32, 2, (const int64_t[]){2, 4}, &findex);
    big = index_of(ctx, TC_INT64, 2, (const int64_t[]){1, 2}, (const int64_t[]){0, 7});
    negative = index_of(ctx, TC_INT32, 2, (const int64_t[]){1, 2}, (const int64_t[]){-1, 0});
    wide = index_of(ctx, TC_INT64, 2, (const int64_t[]){1, 5}, (const int64_t[]){0, 0, 0, 0, 0});
    status = tc_gather(m34, 0, findex, &out);
    expect_error(ctx, "gather float index", status, out, TC_ERROR_DTYPE, "gather", "float32");
    out = NULL;
    status = tc_gather(m34, 0, select0.index, &out);
    expect_error(ctx, "gather 1-D index", status, out, TC_ERROR_SHAPE, "gather", "as many dims");
    out = NULL;
    status = tc_gather(m34, 0, wide, &out);
    expect_error(ctx, "gather index too wide", status, out, TC_ERROR_SHAPE, "gather", "larger than x");
    out = NULL;
    status = tc_gather(m34, 1, big, &out);
    expect_error(ctx, "gather index 7", status, out, TC_ERROR_ARGUMENT, "gather", "index 7 is out of range");
    out = NULL;
    status = tc_gather(m34, 0, negative, &out);
    expect_error(ctx, "gather index -1", status, out, TC_ERROR_ARGUMENT, "gather", "index -1 is out of range");
    out = NULL;
    status = tc_gather(m34, 2, big, &out);
    expect_error(ctx, "gather dim 2", status, out, TC_ERROR_ARGUMENT, "gather", "out of range");
    out = NULL;
    status = tc_index_select(m34, 0, big, &out);
    expect_error(ctx, "index_select 2-D index", status, out, TC_ERROR_SHAPE, "index_select", "1-D");
    out = NULL;
    status = tc_index_select(m34, 0, v5, &out);
    expect_error(ctx, "index_select float index", status, out, TC_ERROR_DTYPE, "index_select", "float32");
    out = NULL;
    status = tc_index_select(m34, 0, select0.index, &out); /* ids up to 3 in a dim of size 3 */
    expect_error(ctx, "index_select index 3", status, out, TC_ERROR_ARGUMENT, "index_select",
                 "index 3 is out of range");
    out = NULL;
    status = tc_index_select(m34, -3, select1.index, &out);
    expect_error(ctx, "index_select dim -3", status, out, TC_ERROR_ARGUMENT, "index_select", "out of range");
    out = NULL;
    status = tc_embedding(v5, embed1d.index, &out);
    expect_error(ctx, "embedding 1-D weight", status, out, TC_ERROR_SHAPE, "embedding", "2-D");
    out = NULL;
    status = tc_embedding(m34, findex, &out);
    expect_error(ctx, "embedding float ids", status, out, TC_ERROR_DTYPE, "embedding", "float32 of shape {2, 4}");
    out = NULL;
    status = tc_embedding(m34, embed1d.index, &out); /* id 3 in a weight of 3 rows */
    expect_error(ctx, "embedding id 3", status, out, TC_ERROR_ARGUMENT, "embedding", "id 3");
    tc_tensor *all[] = {m34,
                        v5,
                        findex,
                        big,
                        negative,
                        wide,
                        gather0.index,
                        gather1.index,
                        gather_last.index,
                        gather_view.index,
                        select0.index,
                        select1.index,
                        select_last.index,
                        select_view.index,
                        select_empty.index,
                        embed2d.index,
                        embed1d.index,
                        embed0d.index};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tc_tensor_release(all[i]);
}

/* ---- operands read in place, tape entries ---- */

/* Bytes allocated beyond what was in use while running the op: the peak of
 * a fresh context, so nothing before can hide it. */
static void test_in_place_operands(void) {
    tc_context *ctx = tc_context_new();
    double *values = malloc(sizeof(double) * 256 * 256);
    fill_values(values, 256 * 256, 21);
    tc_tensor *a = tensor_of(ctx, TC_FLOAT64, 2, (const int64_t[]){256, 256}, values);
    tc_tensor *b = tensor_of(ctx, TC_FLOAT64, 3, (const int64_t[]){4, 256, 64}, values);
    tc_tensor *at = NULL, *bt = NULL, *y = NULL;
    size_t before = tc_memory_in_use(ctx);
    tc_status status = tc_transpose(a, 0, 1, &at);
    if (status == TC_OK) status = tc_transpose(b, 1, 2, &bt); /* {4, 64, 256}, column-major matrices */
    if (status == TC_OK) status = tc_matmul(bt, at, &y);      /* a^T broadcast over the batch: stride 0 */
    CHECK(status == TC_OK, "matmul of transposed operands: %s", tc_last_error(ctx));
    size_t output = 4 * 64 * 256 * sizeof(double);
    CHECK(tc_memory_peak(ctx) <= before + output,
          "matmul of transposed operands allocated %zu bytes, the output is %zu", tc_memory_peak(ctx) - before, output);
    tc_tensor_release(y);
    tc_tensor_release(bt);
    tc_tensor_release(at);
    tc_tensor_release(b);
    tc_tensor_release(a);
    tc_context_free(ctx);

    /* einsum 'bhqd,bhkd->bhqk': permutes and reshapes are views, one output. */
    ctx = tc_context_new();
    tc_tensor *q = tensor_of(ctx, TC_FLOAT64, 4, (const int64_t[]){2, 4, 64, 32}, values);
    tc_tensor *k = tensor_of(ctx, TC_FLOAT64, 4, (const int64_t[]){2, 4, 64, 32}, values + 100);
    tc_tensor *operands[2] = {q, k};
    before = tc_memory_in_use(ctx);
    status = tc_einsum("bhqd,bhkd->bhqk", 2, operands, &y);
    CHECK(status == TC_OK, "einsum bhqd,bhkd->bhqk: %s", tc_last_error(ctx));
    output = 2 * 4 * 64 * 64 * sizeof(double);
    CHECK(tc_memory_peak(ctx) <= before + output, "einsum bhqd,bhkd->bhqk allocated %zu bytes, the output is %zu",
          tc_memory_peak(ctx) - before, output);
    tc_tensor_release(y);
    tc_tensor_release(q);
    tc_tensor_release(k);
    tc_context_free(ctx);
    free(values);
}

/* The op's result (*t, read after the call that set it) came from `name` on the tape. */
static void expect_grad_fn(tc_context *ctx, const char *what, tc_status status, tc_tensor **t, const char *name) {
    const char *got = status == TC_OK ? tc_tensor_grad_fn_name(*t) : NULL;
    CHECK(got && strcmp(got, name) == 0, "%s: grad_fn is %s, expected %s (%s)", what, got ? got : "none", name,
          status == TC_OK ? "" : tc_last_error(ctx));
    tc_tensor_release(*t);
    *t = NULL;
}

static void test_tape_names(tc_context *ctx) {
    tc_tensor *x = NULL, *y = NULL, *ids = NULL;
    tc_ones(ctx, TC_FLOAT32, 2, (const int64_t[]){3, 3}, &x);
    tc_tensor_set_requires_grad(x, true);
    ids = index_of(ctx, TC_INT64, 2, (const int64_t[]){1, 3}, (const int64_t[]){0, 2, 1});
    expect_grad_fn(ctx, "matmul", tc_matmul(x, x, &y), &y, "matmul");
    expect_grad_fn(ctx, "softmax", tc_softmax(x, 1, &y), &y, "softmax");
    expect_grad_fn(ctx, "log_softmax", tc_log_softmax(x, 0, &y), &y, "log_softmax");
    expect_grad_fn(ctx, "dropout", tc_dropout(x, 0.5, true, &y), &y, "dropout");
    tc_tensor *list[3] = {x, x, x};
    expect_grad_fn(ctx, "cat", tc_cat(3, list, 0, &y), &y, "cat");
    expect_grad_fn(ctx, "gather", tc_gather(x, 0, ids, &y), &y, "gather");
    tc_tensor *row = NULL;
    tc_reshape(ids, 1, (const int64_t[]){3}, &row);
    expect_grad_fn(ctx, "index_select", tc_index_select(x, 1, row, &y), &y, "index_select");
    tc_tensor *operands[1] = {x};
    expect_grad_fn(ctx, "einsum diagonal", tc_einsum("ii->i", 1, operands, &y), &y, "permute");
    tc_set_grad_enabled(ctx, false);
    tc_status status = tc_matmul(x, x, &y);
    CHECK(status == TC_OK && !tc_tensor_requires_grad(y), "matmul with grad mode off records nothing");
    tc_tensor_release(y);
    tc_set_grad_enabled(ctx, true);
    y = NULL;
    status = tc_einsum("i", 0, operands, &y);
    CHECK(status == TC_ERROR_ARGUMENT && y == NULL, "einsum of no operands: status %d", (int)status);
    tc_tensor_release(row);
    tc_tensor_release(ids);
    tc_tensor_release(x);
}

int main(void) {
    tc_context *ctx = tc_context_new();
    if (!ctx) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    test_in_place_operands();
    test_tape_names(ctx);
    test_matmul(ctx);
    test_einsum(ctx);
    test_softmax(ctx);
    test_dropout(ctx);
    test_cat_stack(ctx);
    test_indexing(ctx);
    CHECK(tc_memory_in_use(ctx) == 0, "%zu bytes of tensor storage are still in use at the end", tc_memory_in_use(ctx));
    tc_context_free(ctx);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
