/*
 * elementwise_layout_test.c: every unary op of op_list.h gives the same
 * bits whatever the layout of its input: forward, and backward for the
 * differentiable ones, float32 and float64, on a contiguous input, its
 * transpose (strided) and a narrowed slice. The CPU's float32 vector loops
 * take contiguous runs and pack strided ones, so both must run the same
 * formula (ops_math.h). Inputs cover both tails, zeros, infinities and NaN.
 */
#include "tricycle.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define ROWS 37
#define COLS 53

static double input_value(int64_t i, bool positive) {
    static const double specials[] = {0.0, -0.0, 1.0, -1.0, INFINITY, -INFINITY, NAN, 1e-40, -1e-40, 20.0, -20.0,
                                      88.7, -88.7, 1e30, -1e30, 0.625, -0.625};
    int64_t count = (int64_t)(sizeof specials / sizeof specials[0]);
    double v;
    if (i < count) {
        v = specials[i];
    } else {
        uint64_t state = (uint64_t)i * 6364136223846793005ull + 1442695040888963407ull;
        state ^= state >> 29;
        state *= 0xbf58476d1ce4e5b9ull;
        state ^= state >> 32;
        double unit = (double)(state >> 11) / 9007199254740992.0; /* [0, 1) */
        v = (unit * 2 - 1) * (i % 3 == 0 ? 30.0 : i % 3 == 1 ? 4.0 : 1.0);
    }
    return positive ? fabs(v) + 1e-3 : v;
}

/* The values of t as doubles (exact for float32), or NULL after a failure. */
static double *values_of(tc_tensor *t, int64_t n) {
    double *values = malloc((size_t)n * sizeof(double));
    if (values && tc_copy_to_doubles(t, values, n) == TC_OK) return values;
    free(values);
    return NULL;
}

/* op(x) and, when differentiable, the gradient at x of sum(grad * op(x)),
 * for x the `layout` view (0 contiguous, 1 transposed, 2 narrowed) of a
 * leaf holding the values of `source` in its element order; results in
 * the source's (rows, columns) order. */
static bool run_layout(tc_context *ctx, tc_unary_op op, tc_dtype dtype, bool differentiable, int layout,
                       const double *source, const double *grad_values, double **forward, double **backward) {
    int64_t rows = ROWS, cols = layout == 2 ? COLS - 10 : COLS, n = rows * cols;
    double *leaf_values = malloc((size_t)(ROWS * COLS) * sizeof(double));
    if (!leaf_values) return false;
    /* The leaf holds source[r][c] at (r, c), (c, r) or (r, c + 5). */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            double v = source[r * cols + c];
            if (layout == 1) leaf_values[c * ROWS + r] = v;
            else if (layout == 2) leaf_values[r * COLS + c + 5] = v;
            else leaf_values[r * COLS + c] = v;
        }
    if (layout == 2)
        for (int64_t r = 0; r < ROWS; r++)
            for (int64_t c = 0; c < COLS; c++)
                if (c < 5 || c >= cols + 5) leaf_values[r * COLS + c] = 0.5;
    int64_t leaf_shape[2] = {layout == 1 ? COLS : ROWS, layout == 1 ? ROWS : COLS};
    tc_tensor *leaf = NULL, *x = NULL, *y = NULL, *grad = NULL, *out = NULL;
    bool ok = tc_from_data(ctx, dtype, 2, leaf_shape, leaf_values, TC_FLOAT64, &leaf) == TC_OK;
    free(leaf_values);
    if (ok && differentiable) ok = tc_tensor_set_requires_grad(leaf, true) == TC_OK;
    if (ok && layout == 1) ok = tc_transpose(leaf, 0, 1, &x) == TC_OK;
    if (ok && layout == 2) ok = tc_narrow(leaf, 1, 5, cols, &x) == TC_OK;
    if (ok && layout == 0) {
        x = leaf;
        tc_tensor_retain(x);
    }
    if (ok) ok = tc_unary(op, x, &y) == TC_OK;
    if (ok) ok = (*forward = values_of(y, n)) != NULL;
    if (ok && differentiable) {
        ok = tc_from_data(ctx, dtype, 2, (int64_t[]){rows, cols}, grad_values, TC_FLOAT64, &grad) == TC_OK &&
             tc_backward(y, grad, false) == TC_OK;
        tc_tensor *leaf_grad = ok ? tc_tensor_grad(leaf) : NULL;
        tc_tensor *view = NULL;
        if (leaf_grad && layout == 1) ok = tc_transpose(leaf_grad, 0, 1, &view) == TC_OK;
        else if (leaf_grad && layout == 2) ok = tc_narrow(leaf_grad, 1, 5, cols, &view) == TC_OK;
        else if (leaf_grad) tc_tensor_retain(view = leaf_grad);
        else ok = false;
        if (ok) ok = tc_contiguous(view, &out) == TC_OK && (*backward = values_of(out, n)) != NULL;
        tc_tensor_release(view);
    }
    CHECK(ok, "%s %s layout %d: %s", tc_unary_op_name(op), tc_dtype_name(dtype), layout, tc_last_error(ctx));
    tc_tensor_release(out);
    tc_tensor_release(grad);
    tc_tensor_release(y);
    tc_tensor_release(x);
    tc_tensor_release(leaf);
    return ok;
}

/* The first element whose bits differ, or -1. */
static int64_t first_difference(const double *a, const double *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(double)) != 0 && !(isnan(a[i]) && isnan(b[i]))) return i;
    return -1;
}

static void check_op(tc_context *ctx, tc_unary_op op, tc_dtype dtype) {
    const tc_op_info *info = tc_op_at(TC_OP_NEG + (int)op);
    bool differentiable = info->differentiable;
    bool positive = op == TC_LOG || op == TC_SQRT || op == TC_RSQRT;
    double *results[3][2] = {{NULL}};
    for (int layout = 0; layout < 3; layout++) {
        int64_t cols = layout == 2 ? COLS - 10 : COLS;
        double source[ROWS * COLS], grad_values[ROWS * COLS];
        for (int64_t i = 0; i < ROWS * cols; i++) {
            int64_t r = i / cols, c = i % cols; /* the element of the contiguous run at (r, c) */
            source[i] = input_value(r * COLS + c, positive);
            grad_values[i] = input_value(ROWS * COLS + r * COLS + c, false) / 30.0;
        }
        if (!run_layout(ctx, op, dtype, differentiable, layout, source, grad_values, &results[layout][0],
                        &results[layout][1]))
            goto done;
    }
    for (int layout = 1; layout < 3; layout++) {
        int64_t cols = layout == 2 ? COLS - 10 : COLS;
        for (int pass = 0; pass < (differentiable ? 2 : 1); pass++) {
            /* The contiguous run's values at the narrowed columns. */
            double expected[ROWS * COLS];
            for (int64_t r = 0; r < ROWS; r++)
                for (int64_t c = 0; c < cols; c++) expected[r * cols + c] = results[0][pass][r * COLS + c];
            int64_t at = first_difference(results[layout][pass], expected, ROWS * cols);
            CHECK(at < 0, "%s %s %s: layout %s differs at %lld: %.17g, contiguous %.17g", tc_unary_op_name(op),
                  tc_dtype_name(dtype), pass ? "backward" : "forward", layout == 1 ? "transposed" : "narrowed",
                  (long long)at, at < 0 ? 0.0 : results[layout][pass][at], at < 0 ? 0.0 : expected[at]);
        }
    }
done:
    for (int layout = 0; layout < 3; layout++) {
        free(results[layout][0]);
        free(results[layout][1]);
    }
}

int main(void) {
    tc_context *ctx = tc_context_new();
    if (!ctx) return 1;
    tc_dtype dtypes[2] = {TC_FLOAT32, TC_FLOAT64};
    for (int d = 0; d < 2; d++)
        for (int op = 0; op < TC_UNARY_OP_COUNT; op++) check_op(ctx, (tc_unary_op)op, dtypes[d]);
    tc_context_free(ctx);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
