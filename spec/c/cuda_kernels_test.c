/*
 * cuda_kernels_test.c: every kernel slot of the CUDA backend against the CPU
 * backend's, on the same random inputs. Each call is made through both
 * backend tables (internal.h) and the results compared: exactly where the
 * two compute the same formula element by element (copies, integer ops,
 * Philox draws), within a small tolerance where sums are ordered
 * differently. Layouts include broadcast (stride 0) and transposed views;
 * reductions and softmax take each of their kernel paths; attention spans
 * several key tiles; indices include out-of-range ones. Backward kernels
 * are checked against the CPU's backward kernels, which the other specs
 * check against finite differences.
 *
 * Runs when the CUDA backend loads (a GPU, or TRICYCLE_CUDA_LIBRARY naming
 * the emulated build; TRICYCLE_CUDA_EMULATION_ORDER picks the thread order);
 * otherwise it says why and passes. Arguments name the groups to run (all
 * by default). Prints one line per failure and ends with "N passed, M failed".
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define EXACT 0.0

static tc_context *ctx;
static const tc_backend *cpu, *gpu;

/* The same tensor on both devices. */
typedef struct pair {
    tc_tensor *cpu, *gpu;
} pair;

/* Relative tolerance for results whose sums are ordered differently. */
static double tolerance_for(tc_dtype dtype) {
    return dtype == TC_FLOAT32 ? 2e-6 : dtype == TC_FLOAT64 ? 1e-13 : EXACT;
}

/* Deterministic values in [low, high); integral (floored) for integer
 * dtypes, 0/1 for bool. */
static double *random_values(tc_dtype dtype, int64_t n, unsigned seed, double low, double high) {
    double *values = malloc(sizeof(double) * (size_t)(n ? n : 1));
    unsigned long long state = seed * 2654435761ull + 1;
    for (int64_t i = 0; i < n; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        double v = low + (high - low) * ((double)(state >> 11) / (double)(1ull << 53));
        if (dtype == TC_BOOL) v = v > 0.5 * (low + high);
        else if (!tc_dtype_is_floating(dtype)) v = floor(v);
        values[i] = v;
    }
    return values;
}

static pair pair_from(tc_dtype dtype, int ndim, const int64_t *shape, const double *values) {
    pair p = {NULL, NULL};
    if (tc_from_data(ctx, dtype, ndim, shape, values, TC_FLOAT64, &p.cpu) != TC_OK ||
        tc_to_device(p.cpu, TC_CUDA, &p.gpu) != TC_OK) {
        failed++;
        printf("FAIL: making a %s tensor: %s\n", tc_dtype_name(dtype), tc_last_error(ctx));
    }
    return p;
}

static pair random_pair(tc_dtype dtype, int ndim, const int64_t *shape, unsigned seed, double low, double high) {
    double *values = random_values(dtype, tc_shape_numel(ndim, shape), seed, low, high);
    pair p = pair_from(dtype, ndim, shape, values);
    free(values);
    return p;
}

/* Zero-filled on both devices. */
static pair zeros_pair(tc_dtype dtype, int ndim, const int64_t *shape) {
    pair p = {NULL, NULL};
    if (tc_tensor_new(ctx, dtype, TC_CPU, ndim, shape, &p.cpu) != TC_OK || cpu->fill(p.cpu, 0.0) != TC_OK ||
        tc_tensor_new(ctx, dtype, TC_CUDA, ndim, shape, &p.gpu) != TC_OK || gpu->fill(p.gpu, 0.0) != TC_OK) {
        failed++;
        printf("FAIL: making zeros: %s\n", tc_last_error(ctx));
    }
    return p;
}

static pair view_pair(pair p, int ndim, const int64_t *shape, const int64_t *strides, int64_t offset) {
    pair v = {NULL, NULL};
    if (tc_tensor_alias(p.cpu, ndim, shape, strides, offset, &v.cpu) != TC_OK ||
        tc_tensor_alias(p.gpu, ndim, shape, strides, offset, &v.gpu) != TC_OK)
        failed++;
    return v;
}

static void release_pair(pair p) {
    tc_tensor_release(p.cpu);
    tc_tensor_release(p.gpu);
}

/* Both copies' elements (row-major, as doubles) agree within tolerance
 * relative to 1 + |cpu value|; NaN matches NaN, infinity the same infinity. */
static void expect_same(const char *what, pair p, double tolerance) {
    int64_t n = tc_tensor_numel(p.cpu);
    double *a = malloc(sizeof(double) * (size_t)(n ? n : 1)), *b = malloc(sizeof(double) * (size_t)(n ? n : 1));
    tc_tensor *host = NULL;
    if (tc_copy_to_doubles(p.cpu, a, n) != TC_OK || tc_to_device(p.gpu, TC_CPU, &host) != TC_OK ||
        tc_copy_to_doubles(host, b, n) != TC_OK) {
        CHECK(false, "%s: reading the results: %s", what, tc_last_error(ctx));
    } else {
        double worst = 0;
        int64_t at = -1;
        for (int64_t i = 0; i < n; i++) {
            double e = a[i] == b[i] || (isnan(a[i]) && isnan(b[i])) ? 0.0 : fabs(a[i] - b[i]) / (1.0 + fabs(a[i]));
            if (isnan(e)) e = INFINITY;
            if (e > worst) {
                worst = e;
                at = i;
            }
        }
        CHECK(worst <= tolerance, "%s: cpu and cuda differ by %g at element %lld (%.17g vs %.17g)", what, worst,
              (long long)at, at >= 0 ? a[at] : 0.0, at >= 0 ? b[at] : 0.0);
    }
    tc_tensor_release(host);
    free(a);
    free(b);
}

static void expect_ok(const char *what, tc_status cpu_status, tc_status gpu_status) {
    CHECK(cpu_status == TC_OK && gpu_status == TC_OK, "%s: cpu status %d, cuda status %d: %s", what, cpu_status,
          gpu_status, tc_last_error(ctx));
}

/* The transpose of a fresh [cols, rows] tensor, seen as [rows, cols]. */
static pair transposed_pair(tc_dtype dtype, int64_t rows, int64_t cols, unsigned seed, double low, double high) {
    int64_t base_shape[2] = {cols, rows}, shape[2] = {rows, cols}, strides[2] = {1, rows};
    pair base = random_pair(dtype, 2, base_shape, seed, low, high);
    pair view = view_pair(base, 2, shape, strides, 0);
    release_pair(base);
    return view;
}

/* A fresh [cols] tensor broadcast to [rows, cols]. */
static pair broadcast_pair(tc_dtype dtype, int64_t rows, int64_t cols, unsigned seed, double low, double high) {
    int64_t base_shape[1] = {cols}, shape[2] = {rows, cols}, strides[2] = {0, 1};
    pair base = random_pair(dtype, 1, base_shape, seed, low, high);
    pair view = view_pair(base, 2, shape, strides, 0);
    release_pair(base);
    return view;
}

static const tc_dtype all_dtypes[] = {TC_FLOAT32, TC_FLOAT64, TC_INT32, TC_INT64, TC_UINT8, TC_BOOL};
static const tc_dtype float_dtypes[] = {TC_FLOAT32, TC_FLOAT64};
#define COUNT(array) ((int)(sizeof(array) / sizeof((array)[0])))

/* Values every dtype holds exactly, without negative numbers for uint8. */
static double low_for(tc_dtype dtype) { return dtype == TC_UINT8 ? 0.0 : -3.0; }

/* ---- element-wise ---- */

static void test_copy(void) {
    char what[128];
    for (int s = 0; s < COUNT(all_dtypes); s++)
        for (int d = 0; d < COUNT(all_dtypes); d++) {
            tc_dtype from = all_dtypes[s], to = all_dtypes[d];
            double low = from == TC_UINT8 || to == TC_UINT8 ? 0.0 : -3.0;
            int64_t shape[2] = {4, 5}, base_shape[2] = {5, 4}, strides[2] = {1, 4};
            pair sources[3] = {transposed_pair(from, 4, 5, 11, low, 3.0), broadcast_pair(from, 4, 5, 12, low, 3.0),
                               random_pair(from, 2, shape, 13, low, 3.0)};
            const char *layouts[3] = {"transposed source", "broadcast source", "transposed destination"};
            for (int layout = 0; layout < 3; layout++) {
                pair base = zeros_pair(to, 2, layout == 2 ? base_shape : shape);
                pair dst = layout == 2 ? view_pair(base, 2, shape, strides, 0) : view_pair(base, 2, shape,
                                                                                           base.cpu->strides, 0);
                snprintf(what, sizeof what, "copy %s -> %s, %s", tc_dtype_name(from), tc_dtype_name(to),
                         layouts[layout]);
                expect_ok(what, cpu->copy(dst.cpu, sources[layout].cpu), gpu->copy(dst.gpu, sources[layout].gpu));
                expect_same(what, base, EXACT);
                release_pair(dst);
                release_pair(base);
            }
            for (int i = 0; i < 3; i++) release_pair(sources[i]);
        }
}

static void test_fill(void) {
    char what[128];
    for (int d = 0; d < COUNT(all_dtypes); d++) {
        tc_dtype dtype = all_dtypes[d];
        int64_t base_shape[2] = {4, 6}, shape[2] = {4, 3}, strides[2] = {6, 2};
        pair base = zeros_pair(dtype, 2, base_shape);
        pair every_other = view_pair(base, 2, shape, strides, 1);
        double value = dtype == TC_UINT8 ? 7.0 : dtype == TC_BOOL ? 0.25 : -2.5;
        snprintf(what, sizeof what, "fill %s", tc_dtype_name(dtype));
        expect_ok(what, cpu->fill(every_other.cpu, value), gpu->fill(every_other.gpu, value));
        expect_same(what, base, EXACT);
        release_pair(every_other);
        release_pair(base);
    }
}

static bool positive_domain(tc_unary_op op) { return op == TC_LOG || op == TC_SQRT || op == TC_RSQRT; }

static bool integer_unary(tc_unary_op op) {
    return op == TC_NEG || op == TC_ABS || op == TC_RELU || op == TC_SQUARE || op == TC_SIGN || op == TC_LOGICAL_NOT;
}

static void test_unary(void) {
    char what[128];
    int64_t shape[2] = {6, 50};
    for (int d = 0; d < COUNT(all_dtypes); d++) {
        tc_dtype dtype = all_dtypes[d];
        for (int op = 0; op < TC_UNARY_OP_COUNT; op++) {
            bool floating = tc_dtype_is_floating(dtype);
            if (!floating && !integer_unary((tc_unary_op)op)) continue;
            double low = positive_domain((tc_unary_op)op) ? 0.1 : floating ? -2.0 : low_for(dtype);
            pair x = transposed_pair(dtype, 6, 50, 20 + (unsigned)op, low, 3.0);
            pair out = zeros_pair(dtype, 2, shape);
            snprintf(what, sizeof what, "%s %s", tc_unary_op_name((tc_unary_op)op), tc_dtype_name(dtype));
            expect_ok(what, cpu->unary((tc_unary_op)op, x.cpu, out.cpu), gpu->unary((tc_unary_op)op, x.gpu, out.gpu));
            expect_same(what, out, floating ? 1e-6 : EXACT);
            release_pair(out);
            release_pair(x);
        }
    }
    /* Float-only maps refuse integer tensors rather than leave garbage. */
    pair x = random_pair(TC_INT32, 2, shape, 3, -3.0, 3.0), out = zeros_pair(TC_INT32, 2, shape);
    CHECK(gpu->unary(TC_EXP, x.gpu, out.gpu) == TC_ERROR_DTYPE, "exp of int32 on cuda should fail");
    CHECK(strstr(tc_last_error(ctx), "int32") != NULL, "the message names the dtype: %s", tc_last_error(ctx));
    release_pair(out);
    release_pair(x);
}

static void test_unary_backward(void) {
    char what[128];
    int64_t shape[2] = {6, 50};
    for (int d = 0; d < COUNT(float_dtypes); d++) {
        tc_dtype dtype = float_dtypes[d];
        for (int op = 0; op < TC_UNARY_OP_COUNT; op++) {
            double low = positive_domain((tc_unary_op)op) ? 0.1 : -2.0;
            pair x = transposed_pair(dtype, 6, 50, 40 + (unsigned)op, low, 3.0);
            pair y = zeros_pair(dtype, 2, shape), grad_x = zeros_pair(dtype, 2, shape);
            pair grad = broadcast_pair(dtype, 6, 50, 60 + (unsigned)op, -1.0, 1.0);
            snprintf(what, sizeof what, "%s backward %s", tc_unary_op_name((tc_unary_op)op), tc_dtype_name(dtype));
            expect_ok(what, cpu->unary((tc_unary_op)op, x.cpu, y.cpu), gpu->unary((tc_unary_op)op, x.gpu, y.gpu));
            expect_ok(what, cpu->unary_backward((tc_unary_op)op, x.cpu, y.cpu, grad.cpu, grad_x.cpu),
                      gpu->unary_backward((tc_unary_op)op, x.gpu, y.gpu, grad.gpu, grad_x.gpu));
            expect_same(what, grad_x, 1e-6);
            release_pair(grad);
            release_pair(grad_x);
            release_pair(y);
            release_pair(x);
        }
    }
}

static bool is_comparison(tc_binary_op op) { return op >= TC_EQ && op <= TC_LOGICAL_OR; }

static void test_binary(void) {
    char what[128];
    int64_t shape[2] = {7, 40};
    for (int d = 0; d < COUNT(all_dtypes); d++) {
        tc_dtype dtype = all_dtypes[d];
        bool floating = tc_dtype_is_floating(dtype);
        for (int op = 0; op < TC_BINARY_OP_COUNT; op++) {
            if (op == TC_POW && !floating) continue;
            double low = op == TC_POW ? 0.1 : floating ? -2.0 : low_for(dtype);
            pair a = transposed_pair(dtype, 7, 40, 80 + (unsigned)op, low, 3.0);
            pair b = broadcast_pair(dtype, 7, 40, 100 + (unsigned)op, op == TC_POW ? -2.0 : low, 3.0);
            pair out = zeros_pair(is_comparison((tc_binary_op)op) ? TC_BOOL : dtype, 2, shape);
            snprintf(what, sizeof what, "%s %s", tc_binary_op_name((tc_binary_op)op), tc_dtype_name(dtype));
            expect_ok(what, cpu->binary((tc_binary_op)op, a.cpu, b.cpu, out.cpu),
                      gpu->binary((tc_binary_op)op, a.gpu, b.gpu, out.gpu));
            expect_same(what, out, floating ? 1e-6 : EXACT);
            release_pair(out);
            release_pair(b);
            release_pair(a);
        }
    }
}

/* Maximum and minimum with NaN on either side, and comparisons of NaN. */
static void test_binary_nan(void) {
    char what[128];
    int64_t shape[1] = {4};
    double a_values[4] = {NAN, 1.0, NAN, -2.0}, b_values[4] = {1.0, NAN, NAN, -2.0};
    tc_binary_op ops[4] = {TC_MAXIMUM, TC_MINIMUM, TC_EQ, TC_LT};
    for (int d = 0; d < COUNT(float_dtypes); d++)
        for (int k = 0; k < 4; k++) {
            pair a = pair_from(float_dtypes[d], 1, shape, a_values), b = pair_from(float_dtypes[d], 1, shape, b_values);
            pair out = zeros_pair(is_comparison(ops[k]) ? TC_BOOL : float_dtypes[d], 1, shape);
            snprintf(what, sizeof what, "%s with NaN %s", tc_binary_op_name(ops[k]), tc_dtype_name(float_dtypes[d]));
            expect_ok(what, cpu->binary(ops[k], a.cpu, b.cpu, out.cpu), gpu->binary(ops[k], a.gpu, b.gpu, out.gpu));
            expect_same(what, out, EXACT);
            release_pair(out);
            release_pair(b);
            release_pair(a);
        }
}

static void test_clamp_where(void) {
    char what[128];
    int64_t shape[2] = {5, 30};
    double bounds[3][2] = {{-1.0, 1.0}, {NAN, 0.5}, {0.5, NAN}};
    for (int d = 0; d < COUNT(all_dtypes); d++) {
        tc_dtype dtype = all_dtypes[d];
        for (int k = 0; k < 3; k++) {
            double min = bounds[k][0], max = bounds[k][1];
            if (dtype == TC_UINT8) {
                min = isnan(min) ? min : 1.0;
                max = isnan(max) ? max : 2.0;
            }
            pair x = transposed_pair(dtype, 5, 30, 120 + (unsigned)k, low_for(dtype), 3.0);
            pair out = zeros_pair(dtype, 2, shape);
            snprintf(what, sizeof what, "clamp(%g, %g) %s", min, max, tc_dtype_name(dtype));
            expect_ok(what, cpu->clamp(x.cpu, min, max, out.cpu), gpu->clamp(x.gpu, min, max, out.gpu));
            expect_same(what, out, EXACT);
            release_pair(out);
            release_pair(x);
        }
        pair cond = broadcast_pair(TC_BOOL, 5, 30, 130, 0.0, 1.0);
        pair a = transposed_pair(dtype, 5, 30, 131, low_for(dtype), 3.0);
        pair b = random_pair(dtype, 2, shape, 132, low_for(dtype), 3.0);
        pair out = zeros_pair(dtype, 2, shape);
        snprintf(what, sizeof what, "where %s", tc_dtype_name(dtype));
        expect_ok(what, cpu->where(cond.cpu, a.cpu, b.cpu, out.cpu), gpu->where(cond.gpu, a.gpu, b.gpu, out.gpu));
        expect_same(what, out, EXACT);
        release_pair(out);
        release_pair(b);
        release_pair(a);
        release_pair(cond);
    }
}

/* ---- reductions ---- */

static const char *reduce_names[] = {"sum", "mean", "max", "min", "argmax", "argmin", "var"};

/* x [2, 300, 3] (contiguous, or a permuted view of [3, 300, 2]) reduced
 * over several dim sets: long runs take the block-per-output kernel, short
 * or strided ones the thread-per-output kernel. Values are quarters, so
 * max/min ties are common; floats get a few NaNs in some runs. */
static void test_reduce(void) {
    char what[160];
    uint32_t masks[] = {1u << 1, 1u << 2, 1u << 0, (1u << 0) | (1u << 2), 7u};
    tc_dtype dtypes[] = {TC_FLOAT32, TC_FLOAT64, TC_INT32, TC_INT64, TC_UINT8};
    for (int d = 0; d < COUNT(dtypes); d++)
        for (int permuted = 0; permuted < 2; permuted++) {
            tc_dtype dtype = dtypes[d];
            bool floating = tc_dtype_is_floating(dtype);
            int64_t shape[3] = {2, 300, 3}, base_shape[3] = {3, 300, 2}, strides[3] = {1, 2, 600};
            int64_t n = 2 * 300 * 3;
            double *values = random_values(floating ? TC_FLOAT64 : dtype, n, 140 + (unsigned)d, low_for(dtype), 3.0);
            if (floating) {
                for (int64_t i = 0; i < n; i++) values[i] = round(values[i] * 4.0) / 4.0;
                values[7] = NAN;
                values[1234] = NAN;
                values[1500] = NAN;
            }
            pair base = pair_from(dtype, 3, permuted ? base_shape : shape, values);
            free(values);
            pair x = permuted ? view_pair(base, 3, shape, strides, 0) : view_pair(base, 3, shape, base.cpu->strides, 0);
            for (int m = 0; m < COUNT(masks); m++)
                for (int op = 0; op < TC_REDUCE_OP_COUNT; op++)
                    for (int correction = 0; correction < (op == TC_REDUCE_VAR ? 2 : 1); correction++) {
                        bool arg = op == TC_REDUCE_ARGMAX || op == TC_REDUCE_ARGMIN;
                        if (arg && (masks[m] & (masks[m] - 1))) continue; /* one dim only */
                        if (!floating && (op == TC_REDUCE_MEAN || op == TC_REDUCE_VAR)) continue;
                        int64_t out_shape[3];
                        for (int k = 0; k < 3; k++) out_shape[k] = (masks[m] >> k & 1u) ? 1 : shape[k];
                        pair out = zeros_pair(arg ? TC_INT64 : dtype, 3, out_shape);
                        snprintf(what, sizeof what, "%s (correction %d) of %s%s over mask %u", reduce_names[op],
                                 correction, tc_dtype_name(dtype), permuted ? " (permuted)" : "", masks[m]);
                        expect_ok(what, cpu->reduce((tc_reduce_op)op, x.cpu, masks[m], correction, out.cpu),
                                  gpu->reduce((tc_reduce_op)op, x.gpu, masks[m], correction, out.gpu));
                        expect_same(what, out, op == TC_REDUCE_VAR || op == TC_REDUCE_MEAN || op == TC_REDUCE_SUM
                                                   ? tolerance_for(dtype)
                                                   : EXACT);
                        release_pair(out);
                    }
            release_pair(x);
            release_pair(base);
        }
    /* An empty reduced dim: sums are 0, maxima fail on both devices. */
    int64_t empty_shape[2] = {3, 0}, out_shape[2] = {3, 1};
    pair x = zeros_pair(TC_FLOAT32, 2, empty_shape), out = zeros_pair(TC_FLOAT32, 2, out_shape);
    expect_ok("sum over an empty dim", cpu->reduce(TC_REDUCE_SUM, x.cpu, 2u, 0, out.cpu),
              gpu->reduce(TC_REDUCE_SUM, x.gpu, 2u, 0, out.gpu));
    expect_same("sum over an empty dim", out, EXACT);
    CHECK(gpu->reduce(TC_REDUCE_MAX, x.gpu, 2u, 0, out.gpu) == TC_ERROR_SHAPE, "max over an empty dim fails");
    release_pair(out);
    release_pair(x);
}

/* ---- softmax ---- */

static void test_softmax(void) {
    char what[128];
    for (int d = 0; d < COUNT(float_dtypes); d++)
        for (int log_result = 0; log_result < 2; log_result++)
            for (int last = 0; last < 2; last++) {
                tc_dtype dtype = float_dtypes[d];
                /* last dim: rows of 300 (a block each); dim 1 of [4, 7, 30]: columns. */
                int64_t shape[3] = {4, last ? 5 : 7, last ? 300 : 30};
                int dim = last ? 2 : 1;
                int64_t n = shape[0] * shape[1] * shape[2];
                double *values = random_values(dtype, n, 160 + (unsigned)d, -4.0, 4.0);
                values[3] = -INFINITY;
                pair x = pair_from(dtype, 3, shape, values);
                free(values);
                pair y = zeros_pair(dtype, 3, shape), grad_x = zeros_pair(dtype, 3, shape);
                pair grad = random_pair(dtype, 3, shape, 170, -1.0, 1.0);
                snprintf(what, sizeof what, "%s over dim %d of %s", log_result ? "log_softmax" : "softmax", dim,
                         tc_dtype_name(dtype));
                expect_ok(what, cpu->softmax(x.cpu, dim, log_result, y.cpu),
                          gpu->softmax(x.gpu, dim, log_result, y.gpu));
                expect_same(what, y, tolerance_for(dtype));
                /* Both backwards from the CPU's y, so only the backward differs. */
                tc_tensor *y_on_gpu = NULL;
                CHECK(tc_to_device(y.cpu, TC_CUDA, &y_on_gpu) == TC_OK, "moving y: %s", tc_last_error(ctx));
                strncat(what, " backward", sizeof what - strlen(what) - 1);
                expect_ok(what, cpu->softmax_backward(y.cpu, grad.cpu, dim, log_result, grad_x.cpu),
                          gpu->softmax_backward(y_on_gpu, grad.gpu, dim, log_result, grad_x.gpu));
                expect_same(what, grad_x, tolerance_for(dtype));
                tc_tensor_release(y_on_gpu);
                release_pair(grad);
                release_pair(grad_x);
                release_pair(y);
                release_pair(x);
            }
}

/* ---- indexing ---- */

/* Both devices fail alike on a bad index. */
static void expect_same_failure(const char *what, tc_status cpu_status, tc_status gpu_status, const char *cpu_message) {
    CHECK(cpu_status == TC_ERROR_ARGUMENT && gpu_status == TC_ERROR_ARGUMENT, "%s: statuses %d and %d", what,
          cpu_status, gpu_status);
    CHECK(strcmp(cpu_message, tc_last_error(ctx)) == 0, "%s: messages differ:\n  cpu:  %s\n  cuda: %s", what,
          cpu_message, tc_last_error(ctx));
}

static void test_gather_scatter(void) {
    char what[128], message[TC_ERROR_CAPACITY];
    int64_t x_shape[3] = {5, 6, 7}, index_shape[3] = {5, 4, 7};
    tc_dtype dtypes[] = {TC_FLOAT32, TC_FLOAT64, TC_INT32, TC_UINT8};
    pair index = random_pair(TC_INT64, 3, index_shape, 180, 0.0, 6.0);
    for (int d = 0; d < COUNT(dtypes); d++) {
        tc_dtype dtype = dtypes[d];
        pair x = random_pair(dtype, 3, x_shape, 181, low_for(dtype), 3.0), out = zeros_pair(dtype, 3, index_shape);
        snprintf(what, sizeof what, "gather %s", tc_dtype_name(dtype));
        expect_ok(what, cpu->gather(x.cpu, 1, index.cpu, out.cpu), gpu->gather(x.gpu, 1, index.gpu, out.gpu));
        expect_same(what, out, EXACT);
        release_pair(out);
        release_pair(x);
        if (!tc_dtype_is_floating(dtype)) continue;
        pair grad = random_pair(dtype, 3, index_shape, 182, -1.0, 1.0), grad_x = zeros_pair(dtype, 3, x_shape);
        snprintf(what, sizeof what, "scatter_add %s", tc_dtype_name(dtype));
        expect_ok(what, cpu->scatter_add(grad_x.cpu, 1, index.cpu, grad.cpu),
                  gpu->scatter_add(grad_x.gpu, 1, index.gpu, grad.gpu));
        expect_same(what, grad_x, tolerance_for(dtype));
        release_pair(grad_x);
        release_pair(grad);
    }
    release_pair(index);
    double bad_values[3] = {0, 6, 2};
    int64_t bad_shape[3] = {1, 3, 1}, out_shape[3] = {1, 3, 1}, small_shape[3] = {1, 6, 1};
    pair bad = pair_from(TC_INT64, 3, bad_shape, bad_values);
    pair x = random_pair(TC_FLOAT32, 3, small_shape, 183, -1.0, 1.0), out = zeros_pair(TC_FLOAT32, 3, out_shape);
    tc_status cpu_status = cpu->gather(x.cpu, 1, bad.cpu, out.cpu);
    snprintf(message, sizeof message, "%s", tc_last_error(ctx));
    expect_same_failure("gather with index 6 of 6", cpu_status, gpu->gather(x.gpu, 1, bad.gpu, out.gpu), message);
    cpu_status = cpu->scatter_add(x.cpu, 1, bad.cpu, out.cpu);
    snprintf(message, sizeof message, "%s", tc_last_error(ctx));
    expect_same_failure("scatter_add with index 6 of 6", cpu_status, gpu->scatter_add(x.gpu, 1, bad.gpu, out.gpu),
                        message);
    release_pair(out);
    release_pair(x);
    release_pair(bad);
}

static void test_index_select_add(void) {
    char what[128], message[TC_ERROR_CAPACITY];
    int64_t x_shape[3] = {5, 6, 7}, index_shape[1] = {9};
    tc_dtype dtypes[] = {TC_FLOAT32, TC_FLOAT64, TC_INT64, TC_BOOL};
    pair index = random_pair(TC_INT64, 1, index_shape, 190, 0.0, 6.0); /* 9 draws from 6: repeats */
    for (int d = 0; d < COUNT(dtypes); d++)
        for (int dim = 0; dim < 3; dim += 2) {
            tc_dtype dtype = dtypes[d];
            int64_t x_dims[3] = {x_shape[0], x_shape[1], x_shape[2]}, o_dims[3] = {x_shape[0], x_shape[1], x_shape[2]};
            x_dims[dim] = 6;
            o_dims[dim] = 9;
            pair x = random_pair(dtype, 3, x_dims, 191, low_for(dtype), 3.0), out = zeros_pair(dtype, 3, o_dims);
            snprintf(what, sizeof what, "index_select %s along dim %d", tc_dtype_name(dtype), dim);
            expect_ok(what, cpu->index_select(x.cpu, dim, index.cpu, out.cpu),
                      gpu->index_select(x.gpu, dim, index.gpu, out.gpu));
            expect_same(what, out, EXACT);
            release_pair(out);
            release_pair(x);
            if (!tc_dtype_is_floating(dtype)) continue;
            pair grad = random_pair(dtype, 3, o_dims, 192, -1.0, 1.0), grad_x = zeros_pair(dtype, 3, x_dims);
            snprintf(what, sizeof what, "index_add %s along dim %d", tc_dtype_name(dtype), dim);
            expect_ok(what, cpu->index_add(grad_x.cpu, dim, index.cpu, grad.cpu),
                      gpu->index_add(grad_x.gpu, dim, index.gpu, grad.gpu));
            expect_same(what, grad_x, tolerance_for(dtype));
            release_pair(grad_x);
            release_pair(grad);
        }
    release_pair(index);
    double bad_values[2] = {1, -1};
    int64_t bad_shape[1] = {2}, small_shape[2] = {4, 3}, small_out[2] = {2, 3};
    pair bad = pair_from(TC_INT64, 1, bad_shape, bad_values);
    pair x = random_pair(TC_FLOAT64, 2, small_shape, 193, -1.0, 1.0), out = zeros_pair(TC_FLOAT64, 2, small_out);
    tc_status cpu_status = cpu->index_select(x.cpu, 0, bad.cpu, out.cpu);
    snprintf(message, sizeof message, "%s", tc_last_error(ctx));
    expect_same_failure("index_select with index -1", cpu_status, gpu->index_select(x.gpu, 0, bad.gpu, out.gpu),
                        message);
    cpu_status = cpu->index_add(x.cpu, 0, bad.cpu, out.cpu);
    snprintf(message, sizeof message, "%s", tc_last_error(ctx));
    expect_same_failure("index_add with index -1", cpu_status, gpu->index_add(x.gpu, 0, bad.gpu, out.gpu), message);
    release_pair(out);
    release_pair(x);
    release_pair(bad);
}

/* ---- random ---- */

static void test_random(void) {
    char what[128];
    int64_t shape[1] = {1001}; /* not a multiple of 4 or 2 */
    for (int d = 0; d < COUNT(float_dtypes); d++) {
        tc_dtype dtype = float_dtypes[d];
        for (int normal = 0; normal < 2; normal++) {
            pair out = zeros_pair(dtype, 1, shape);
            snprintf(what, sizeof what, "%s %s", normal ? "normal" : "uniform", tc_dtype_name(dtype));
            expect_ok(what, cpu->random(out.cpu, normal, 1234, 77), gpu->random(out.gpu, normal, 1234, 77));
            /* Normals go through the device's double log and cos. */
            expect_same(what, out, normal ? tolerance_for(dtype) : EXACT);
            release_pair(out);
        }
        pair x = random_pair(dtype, 1, shape, 200, -1.0, 1.0);
        pair mask = zeros_pair(TC_BOOL, 1, shape), out = zeros_pair(dtype, 1, shape);
        snprintf(what, sizeof what, "dropout %s", tc_dtype_name(dtype));
        expect_ok(what, cpu->dropout(x.cpu, 0.3, 99, 5, mask.cpu, out.cpu),
                  gpu->dropout(x.gpu, 0.3, 99, 5, mask.gpu, out.gpu));
        expect_same(what, mask, EXACT);
        expect_same(what, out, EXACT);
        release_pair(out);
        release_pair(mask);
        release_pair(x);
    }
}

/* ---- fused kernels ---- */

static void *on_cpu(pair p) { return p.cpu ? tc_tensor_data_at_offset(p.cpu) : NULL; }
static void *on_gpu(pair p) { return p.gpu ? tc_tensor_data_at_offset(p.gpu) : NULL; }

static void test_layer_norm(void) {
    char what[128];
    int64_t rows = 7, cols = 300, shape[2] = {7, 300}, row_shape[1] = {7}, col_shape[1] = {300};
    for (int d = 0; d < COUNT(float_dtypes); d++)
        for (int rms = 0; rms < 2; rms++)
            for (int affine = 0; affine < 2; affine++) {
                tc_dtype dtype = float_dtypes[d];
                pair x = random_pair(dtype, 2, shape, 210, -2.0, 3.0);
                pair dout = random_pair(dtype, 2, shape, 211, -1.0, 1.0);
                pair none = {NULL, NULL};
                pair w = affine ? random_pair(dtype, 1, col_shape, 212, 0.5, 1.5) : none;
                pair b = affine && !rms ? random_pair(dtype, 1, col_shape, 213, -1.0, 1.0) : none;
                pair out = zeros_pair(dtype, 2, shape), mean = zeros_pair(dtype, 1, row_shape);
                pair rstd = zeros_pair(dtype, 1, row_shape), dx = zeros_pair(dtype, 2, shape);
                pair dw = zeros_pair(dtype, 1, col_shape), db = zeros_pair(dtype, 1, col_shape);
                snprintf(what, sizeof what, "%s%s %s", rms ? "rms_norm" : "layer_norm", affine ? " (affine)" : "",
                         tc_dtype_name(dtype));
                expect_ok(what,
                          cpu->layer_norm_forward(ctx, dtype, rms, on_cpu(x), on_cpu(w), on_cpu(b), 1e-5, rows, cols,
                                                  on_cpu(out), on_cpu(mean), on_cpu(rstd)),
                          gpu->layer_norm_forward(ctx, dtype, rms, on_gpu(x), on_gpu(w), on_gpu(b), 1e-5, rows, cols,
                                                  on_gpu(out), on_gpu(mean), on_gpu(rstd)));
                expect_same(what, out, tolerance_for(dtype));
                expect_same(what, mean, tolerance_for(dtype));
                expect_same(what, rstd, tolerance_for(dtype));
                strncat(what, " backward", sizeof what - strlen(what) - 1);
                expect_ok(what,
                          cpu->layer_norm_backward(ctx, dtype, rms, on_cpu(x), on_cpu(w), on_cpu(mean), on_cpu(rstd),
                                                   on_cpu(dout), rows, cols, on_cpu(dx), on_cpu(dw),
                                                   affine ? on_cpu(db) : NULL),
                          gpu->layer_norm_backward(ctx, dtype, rms, on_gpu(x), on_gpu(w), on_gpu(mean), on_gpu(rstd),
                                                   on_gpu(dout), rows, cols, on_gpu(dx), on_gpu(dw),
                                                   affine ? on_gpu(db) : NULL));
                expect_same(what, dx, tolerance_for(dtype));
                expect_same(what, dw, tolerance_for(dtype));
                expect_same(what, db, tolerance_for(dtype));
                pair all[] = {x, dout, w, b, out, mean, rstd, dx, dw, db};
                for (int i = 0; i < COUNT(all); i++) release_pair(all[i]);
            }
}

static void test_attention(void) {
    char what[128];
    /* T = 70 spans two tiles of 64 keys; hd = 4 is below a warp. */
    int64_t sizes[2][4] = {{2, 70, 12, 3}, {1, 5, 16, 2}};
    for (int d = 0; d < COUNT(float_dtypes); d++)
        for (int s = 0; s < 2; s++)
            for (int causal = 0; causal < 2; causal++) {
                tc_dtype dtype = float_dtypes[d];
                int64_t B = sizes[s][0], T = sizes[s][1], C = sizes[s][2], H = sizes[s][3];
                int64_t qkv_shape[3] = {B, T, 3 * C}, out_shape[3] = {B, T, C}, lse_shape[3] = {B, H, T};
                pair qkv = random_pair(dtype, 3, qkv_shape, 220 + (unsigned)s, -2.0, 2.0);
                pair dout = random_pair(dtype, 3, out_shape, 222, -1.0, 1.0);
                pair out = zeros_pair(dtype, 3, out_shape), lse = zeros_pair(dtype, 3, lse_shape);
                pair dqkv = zeros_pair(dtype, 3, qkv_shape);
                snprintf(what, sizeof what, "attention B%lld T%lld C%lld H%lld%s %s", (long long)B, (long long)T,
                         (long long)C, (long long)H, causal ? " causal" : "", tc_dtype_name(dtype));
                expect_ok(what,
                          cpu->attention_forward(ctx, dtype, on_cpu(qkv), B, T, C, H, causal, on_cpu(out), on_cpu(lse)),
                          gpu->attention_forward(ctx, dtype, on_gpu(qkv), B, T, C, H, causal, on_gpu(out),
                                                 on_gpu(lse)));
                expect_same(what, out, 10 * tolerance_for(dtype));
                expect_same(what, lse, 10 * tolerance_for(dtype));
                strncat(what, " backward", sizeof what - strlen(what) - 1);
                expect_ok(what,
                          cpu->attention_backward(ctx, dtype, on_cpu(qkv), on_cpu(out), on_cpu(lse), on_cpu(dout), B,
                                                  T, C, H, causal, on_cpu(dqkv)),
                          gpu->attention_backward(ctx, dtype, on_gpu(qkv), on_gpu(out), on_gpu(lse), on_gpu(dout), B,
                                                  T, C, H, causal, on_gpu(dqkv)));
                expect_same(what, dqkv, 10 * tolerance_for(dtype));
                pair all[] = {qkv, dout, out, lse, dqkv};
                for (int i = 0; i < COUNT(all); i++) release_pair(all[i]);
            }
}

/* Decoding with caches must give the rows full causal attention gives:
 * a prompt of 5 positions in one call, then one position per call. The CPU
 * backend has no cached attention, so the oracle is the CPU's forward. */
static void test_attention_cached(void) {
    char what[128];
    int64_t B = 2, T = 9, C = 12, H = 3, hd = 4, capacity = 11, prompt = 5;
    for (int d = 0; d < COUNT(float_dtypes); d++)
        for (int causal = 0; causal < 2; causal++) {
            tc_dtype dtype = float_dtypes[d];
            int64_t qkv_shape[3] = {B, T, 3 * C}, out_shape[3] = {B, T, C}, lse_shape[3] = {B, H, T};
            int64_t cache_shape[4] = {B, H, capacity, hd};
            double *values = random_values(dtype, B * T * 3 * C, 260, -2.0, 2.0);
            pair full = pair_from(dtype, 3, qkv_shape, values);
            pair expected = zeros_pair(dtype, 3, out_shape), lse = zeros_pair(dtype, 3, lse_shape);
            pair k_cache = zeros_pair(dtype, 4, cache_shape), v_cache = zeros_pair(dtype, 4, cache_shape);
            CHECK(cpu->attention_forward(ctx, dtype, on_cpu(full), B, T, C, H, causal, on_cpu(expected), on_cpu(lse)) ==
                      TC_OK,
                  "attention forward: %s", tc_last_error(ctx));
            /* A non-causal step sees only what is cached so far, so only
             * the single call over all T positions matches the full result. */
            int64_t first = causal ? prompt : T;
            for (int64_t start = 0; start < T; start = start == 0 ? first : start + 1) {
                int64_t steps = start == 0 ? first : 1;
                int64_t step_shape[3] = {B, steps, 3 * C}, step_out_shape[3] = {B, steps, C};
                double *step_values = malloc(sizeof(double) * (size_t)(B * steps * 3 * C));
                for (int64_t b = 0; b < B; b++)
                    memcpy(step_values + b * steps * 3 * C, values + (b * T + start) * 3 * C,
                           sizeof(double) * (size_t)(steps * 3 * C));
                pair qkv = pair_from(dtype, 3, step_shape, step_values);
                free(step_values);
                pair out = zeros_pair(dtype, 3, step_out_shape);
                snprintf(what, sizeof what, "attention_cached%s positions %lld..%lld %s", causal ? " causal" : "",
                         (long long)start, (long long)(start + steps - 1), tc_dtype_name(dtype));
                CHECK(gpu->attention_cached(ctx, dtype, on_gpu(qkv), B, steps, C, H, causal, on_gpu(k_cache),
                                            on_gpu(v_cache), capacity, start, on_gpu(out)) == TC_OK,
                      "%s: %s", what, tc_last_error(ctx));
                /* Compare with the same rows of the full forward. */
                tc_tensor *rows = NULL, *host = NULL;
                int64_t row_strides[3] = {T * C, C, 1};
                double *a = malloc(sizeof(double) * (size_t)(B * steps * C));
                double *b_values = malloc(sizeof(double) * (size_t)(B * steps * C));
                if (tc_tensor_alias(expected.cpu, 3, step_out_shape, row_strides, start * C, &rows) == TC_OK &&
                    tc_copy_to_doubles(rows, a, B * steps * C) == TC_OK &&
                    tc_to_device(out.gpu, TC_CPU, &host) == TC_OK &&
                    tc_copy_to_doubles(host, b_values, B * steps * C) == TC_OK) {
                    double worst = 0;
                    for (int64_t i = 0; i < B * steps * C; i++) {
                        double e = fabs(a[i] - b_values[i]) / (1.0 + fabs(a[i]));
                        worst = isnan(e) ? INFINITY : e > worst ? e : worst;
                    }
                    CHECK(worst <= 10 * tolerance_for(dtype), "%s: differs from full attention by %g", what, worst);
                } else {
                    CHECK(false, "%s: reading results: %s", what, tc_last_error(ctx));
                }
                free(a);
                free(b_values);
                tc_tensor_release(host);
                tc_tensor_release(rows);
                release_pair(out);
                release_pair(qkv);
            }
            /* The caches hold every position's keys and values, head-major. */
            tc_tensor *host_k = NULL;
            double *cached = malloc(sizeof(double) * (size_t)(B * H * capacity * hd));
            bool read = tc_to_device(k_cache.gpu, TC_CPU, &host_k) == TC_OK &&
                        tc_copy_to_doubles(host_k, cached, B * H * capacity * hd) == TC_OK;
            double worst = read ? 0 : INFINITY;
            for (int64_t b = 0; read && b < B; b++)
                for (int64_t h = 0; h < H; h++)
                    for (int64_t t = 0; t < T; t++)
                        for (int64_t i = 0; i < hd; i++) {
                            double want = values[(b * T + t) * 3 * C + C + h * hd + i];
                            if (dtype == TC_FLOAT32) want = (float)want;
                            double e = fabs(cached[((b * H + h) * capacity + t) * hd + i] - want);
                            if (e > worst) worst = e;
                        }
            CHECK(worst == 0, "attention_cached %s: k_cache differs from qkv's keys by %g", tc_dtype_name(dtype),
                  worst);
            free(cached);
            tc_tensor_release(host_k);
            free(values);
            pair all[] = {full, expected, lse, k_cache, v_cache};
            for (int i = 0; i < COUNT(all); i++) release_pair(all[i]);
        }
}

static void test_cross_entropy(void) {
    char what[128];
    int64_t rows = 9, classes = 300, shape[2] = {9, 300}, row_shape[1] = {9};
    tc_dtype target_dtypes[2] = {TC_INT64, TC_INT32};
    for (int d = 0; d < COUNT(float_dtypes); d++)
        for (int t = 0; t < 2; t++) {
            tc_dtype dtype = float_dtypes[d];
            double *ids = random_values(TC_INT64, rows, 230 + (unsigned)t, 0.0, (double)classes);
            ids[2] = -100;
            ids[5] = -100;
            pair targets = pair_from(target_dtypes[t], 1, row_shape, ids);
            free(ids);
            pair logits = random_pair(dtype, 2, shape, 232, -5.0, 5.0);
            pair lse = zeros_pair(dtype, 1, row_shape), dlogits = zeros_pair(dtype, 2, shape);
            double cpu_loss = 0, gpu_loss = 0;
            int64_t cpu_count = 0, gpu_count = 0;
            snprintf(what, sizeof what, "cross_entropy %s, %s targets", tc_dtype_name(dtype),
                     tc_dtype_name(target_dtypes[t]));
            expect_ok(what,
                      cpu->cross_entropy_forward(ctx, dtype, on_cpu(logits), target_dtypes[t], on_cpu(targets), rows,
                                                 classes, -100, on_cpu(lse), &cpu_loss, &cpu_count),
                      gpu->cross_entropy_forward(ctx, dtype, on_gpu(logits), target_dtypes[t], on_gpu(targets), rows,
                                                 classes, -100, on_gpu(lse), &gpu_loss, &gpu_count));
            expect_same(what, lse, tolerance_for(dtype));
            CHECK(cpu_count == 7 && gpu_count == 7, "%s: kept %lld and %lld rows, not 7", what, (long long)cpu_count,
                  (long long)gpu_count);
            CHECK(fabs(cpu_loss - gpu_loss) <= tolerance_for(dtype) * (1 + fabs(cpu_loss)), "%s: loss %.17g vs %.17g",
                  what, cpu_loss, gpu_loss);
            strncat(what, " backward", sizeof what - strlen(what) - 1);
            expect_ok(what,
                      cpu->cross_entropy_backward(ctx, dtype, on_cpu(logits), target_dtypes[t], on_cpu(targets),
                                                  on_cpu(lse), rows, classes, -100, 1.0 / 7.0, on_cpu(dlogits)),
                      gpu->cross_entropy_backward(ctx, dtype, on_gpu(logits), target_dtypes[t], on_gpu(targets),
                                                  on_gpu(lse), rows, classes, -100, 1.0 / 7.0, on_gpu(dlogits)));
            expect_same(what, dlogits, tolerance_for(dtype));
            pair all[] = {targets, logits, lse, dlogits};
            for (int i = 0; i < COUNT(all); i++) release_pair(all[i]);
        }
}

static void test_optimizers(void) {
    char what[128];
    int64_t sizes[2] = {1000, 7};
    for (int d = 0; d < COUNT(float_dtypes); d++) {
        tc_dtype dtype = float_dtypes[d];
        /* AdamW and SGD (plain, momentum, nesterov) on two tensors each. */
        for (int kind = 0; kind < 4; kind++) {
            pair param[2], grad[2], state0[2], state1[2];
            tc_step_tensor cpu_steps[2], gpu_steps[2];
            for (int i = 0; i < 2; i++) {
                param[i] = random_pair(dtype, 1, &sizes[i], 240 + (unsigned)i, -1.0, 1.0);
                grad[i] = random_pair(dtype, 1, &sizes[i], 242 + (unsigned)i, -1.0, 1.0);
                state0[i] = random_pair(dtype, 1, &sizes[i], 244 + (unsigned)i, -0.1, 0.1);
                state1[i] = random_pair(dtype, 1, &sizes[i], 246 + (unsigned)i, 0.0, 0.01);
                double bias1 = 1 - pow(0.9, 3 + i), bias2 = 1 - pow(0.999, 3 + i);
                bool buffer = kind != 1;
                cpu_steps[i] = (tc_step_tensor){on_cpu(param[i]), on_cpu(grad[i]),
                                                {buffer ? on_cpu(state0[i]) : NULL, on_cpu(state1[i])}, sizes[i],
                                                bias1, bias2};
                gpu_steps[i] = (tc_step_tensor){on_gpu(param[i]), on_gpu(grad[i]),
                                                {buffer ? on_gpu(state0[i]) : NULL, on_gpu(state1[i])}, sizes[i],
                                                bias1, bias2};
            }
            const char *names[4] = {"adamw", "sgd", "sgd momentum", "sgd nesterov"};
            snprintf(what, sizeof what, "%s %s", names[kind], tc_dtype_name(dtype));
            if (kind == 0)
                expect_ok(what, cpu->adamw_step(ctx, dtype, 2, cpu_steps, 1e-2, 0.9, 0.999, 1e-8, 0.1),
                          gpu->adamw_step(ctx, dtype, 2, gpu_steps, 1e-2, 0.9, 0.999, 1e-8, 0.1));
            else
                expect_ok(what,
                          cpu->sgd_step(ctx, dtype, 2, cpu_steps, 1e-2, kind == 1 ? 0.0 : 0.9, 0.1, kind == 3, 0.01),
                          gpu->sgd_step(ctx, dtype, 2, gpu_steps, 1e-2, kind == 1 ? 0.0 : 0.9, 0.1, kind == 3, 0.01));
            for (int i = 0; i < 2; i++) {
                expect_same(what, param[i], tolerance_for(dtype));
                expect_same(what, state0[i], tolerance_for(dtype));
                expect_same(what, state1[i], tolerance_for(dtype));
                release_pair(param[i]);
                release_pair(grad[i]);
                release_pair(state0[i]);
                release_pair(state1[i]);
            }
        }
        /* Sum of squares and scale over three buffers, one empty. */
        int64_t lengths[3] = {1000, 0, 33};
        pair buffers[3];
        const void *cpu_x[3], *gpu_x[3];
        for (int i = 0; i < 3; i++) {
            buffers[i] = random_pair(dtype, 1, &lengths[i], 250 + (unsigned)i, -2.0, 2.0);
            cpu_x[i] = on_cpu(buffers[i]);
            gpu_x[i] = on_gpu(buffers[i]);
        }
        double cpu_total = -1, gpu_total = -2;
        snprintf(what, sizeof what, "sum_squares %s", tc_dtype_name(dtype));
        expect_ok(what, cpu->sum_squares(ctx, dtype, 3, cpu_x, lengths, &cpu_total),
                  gpu->sum_squares(ctx, dtype, 3, gpu_x, lengths, &gpu_total));
        CHECK(fabs(cpu_total - gpu_total) <= 1e-12 * cpu_total, "%s: %.17g vs %.17g", what, cpu_total, gpu_total);
        snprintf(what, sizeof what, "scale %s", tc_dtype_name(dtype));
        expect_ok(what, cpu->scale(ctx, dtype, 3, (void *const *)cpu_x, lengths, 0.37),
                  gpu->scale(ctx, dtype, 3, (void *const *)gpu_x, lengths, 0.37));
        for (int i = 0; i < 3; i++) {
            expect_same(what, buffers[i], EXACT);
            release_pair(buffers[i]);
        }
    }
}

/* Every group, or only those named on the command line. */
static const struct {
    const char *name;
    void (*run)(void);
} groups[] = {
    {"copy", test_copy},
    {"fill", test_fill},
    {"unary", test_unary},
    {"unary_backward", test_unary_backward},
    {"binary", test_binary},
    {"binary_nan", test_binary_nan},
    {"clamp_where", test_clamp_where},
    {"reduce", test_reduce},
    {"softmax", test_softmax},
    {"gather_scatter", test_gather_scatter},
    {"index_select_add", test_index_select_add},
    {"random", test_random},
    {"layer_norm", test_layer_norm},
    {"attention", test_attention},
    {"attention_cached", test_attention_cached},
    {"cross_entropy", test_cross_entropy},
    {"optimizers", test_optimizers},
};

static bool wanted(const char *name, int argc, char **argv) {
    if (argc < 2) return true;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return true;
    return false;
}

int main(int argc, char **argv) {
    ctx = tc_context_new();
    if (!ctx || tc_set_cuda_library(ctx, getenv("TRICYCLE_CUDA_LIBRARY")) != TC_OK) return 1;
    cpu = tc_cpu_backend();
    if (tc_backend_for(ctx, TC_CUDA, &gpu) != TC_OK) {
        printf("cuda_kernels_test: skipped, no CUDA backend: %s\n0 passed, 0 failed\n", tc_last_error(ctx));
        tc_context_free(ctx);
        return 0;
    }
    printf("cuda_kernels_test: backend \"%s\"\n", gpu->name);
    for (int g = 0; g < COUNT(groups); g++)
        if (wanted(groups[g].name, argc, argv)) groups[g].run();
    tc_context_free(ctx);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
