/*
 * cuda_kernels_test.c: what of the CUDA backend's kernel slots the Lua API
 * cannot reach, against the CPU backend's slots on the same inputs (the
 * ops themselves, forward and backward, are the op list's:
 * spec/op_cases.lua, run on the device by spec/cuda_emulation_spec.lua):
 *   - combinations the engine refuses or converts before a slot is called:
 *     neg of bool, sub of bool, div of integers into an integer result,
 *     clamp of bool and of integers with fractional bounds, max and min
 *     over several dims, a float-only map given integers;
 *   - unary backward under a broadcast (stride 0) upstream gradient;
 *   - scatter_add and index_add given a bad index (their forwards check the
 *     indices first);
 *   - Philox draws for an explicit seed and offset;
 *   - sgd and scale over several tensors in one call (the Lua API passes one);
 *   - the statistics a forward saves for its backward: layer norm's mean and
 *     rstd, attention's and cross-entropy's row log-sum-exp and the kept-row
 *     count.
 * Exactly where the two compute the same formula element by element, within
 * a small tolerance where sums are ordered differently.
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

static const tc_dtype float_dtypes[] = {TC_FLOAT32, TC_FLOAT64};
#define COUNT(array) ((int)(sizeof(array) / sizeof((array)[0])))

/* Values every dtype holds exactly, without negative numbers for uint8. */
static double low_for(tc_dtype dtype) { return dtype == TC_UINT8 ? 0.0 : -3.0; }

/* ---- what the engine refuses or converts before a slot ---- */

/* neg of bool (the engine says to use logical_not), a float-only map given
 * integers (the engine promotes them to float32 first). */
static void test_unary(void) {
    int64_t shape[2] = {6, 50};
    pair x = transposed_pair(TC_BOOL, 6, 50, 20, 0.0, 1.0), out = zeros_pair(TC_BOOL, 2, shape);
    expect_ok("neg bool", cpu->unary(TC_NEG, x.cpu, out.cpu), gpu->unary(TC_NEG, x.gpu, out.gpu));
    expect_same("neg bool", out, EXACT);
    release_pair(out);
    release_pair(x);
    /* Float-only maps refuse integer tensors rather than leave garbage. */
    x = random_pair(TC_INT32, 2, shape, 3, -3.0, 3.0);
    out = zeros_pair(TC_INT32, 2, shape);
    CHECK(gpu->unary(TC_EXP, x.gpu, out.gpu) == TC_ERROR_DTYPE, "exp of int32 on cuda should fail");
    CHECK(strstr(tc_last_error(ctx), "int32") != NULL, "the message names the dtype: %s", tc_last_error(ctx));
    release_pair(out);
    release_pair(x);
}

/* Integer division into an integer result (the engine divides integers in
 * float32) and sub of bool (an error in the engine), on a transposed and a
 * broadcast operand. */
static void test_binary(void) {
    char what[128];
    int64_t shape[2] = {7, 40};
    const tc_dtype dtypes[] = {TC_INT32, TC_INT64, TC_UINT8, TC_BOOL};
    for (int d = 0; d < COUNT(dtypes); d++)
        for (int k = 0; k < 2; k++) {
            tc_dtype dtype = dtypes[d];
            tc_binary_op op = k == 0 ? TC_DIV : TC_SUB;
            if (op == TC_SUB && dtype != TC_BOOL) continue;
            pair a = transposed_pair(dtype, 7, 40, 80 + (unsigned)k, low_for(dtype), 3.0);
            pair b = broadcast_pair(dtype, 7, 40, 100 + (unsigned)k, low_for(dtype), 3.0);
            pair out = zeros_pair(dtype, 2, shape);
            snprintf(what, sizeof what, "%s %s", tc_binary_op_name(op), tc_dtype_name(dtype));
            expect_ok(what, cpu->binary(op, a.cpu, b.cpu, out.cpu), gpu->binary(op, a.gpu, b.gpu, out.gpu));
            expect_same(what, out, EXACT);
            release_pair(out);
            release_pair(b);
            release_pair(a);
        }
}

/* Clamp of bool (an error in the engine) and of integers with fractional
 * bounds (the engine clamps in float32 then); NaN stands for no bound. */
static void test_clamp(void) {
    char what[128];
    int64_t shape[2] = {5, 30};
    double bounds[3][2] = {{-1.0, 1.0}, {NAN, 0.5}, {0.5, NAN}};
    const tc_dtype dtypes[] = {TC_INT32, TC_INT64, TC_BOOL};
    for (int d = 0; d < COUNT(dtypes); d++)
        for (int k = dtypes[d] == TC_BOOL ? 0 : 1; k < 3; k++) {
            tc_dtype dtype = dtypes[d];
            double min = bounds[k][0], max = bounds[k][1];
            pair x = transposed_pair(dtype, 5, 30, 120 + (unsigned)k, low_for(dtype), 3.0);
            pair out = zeros_pair(dtype, 2, shape);
            snprintf(what, sizeof what, "clamp(%g, %g) %s", min, max, tc_dtype_name(dtype));
            expect_ok(what, cpu->clamp(x.cpu, min, max, out.cpu), gpu->clamp(x.gpu, min, max, out.gpu));
            expect_same(what, out, EXACT);
            release_pair(out);
            release_pair(x);
        }
}

/* max and min over dims 1 and 3 at once (the engine's reductions with
 * indices take one dim or all): x [2, 300, 3], contiguous or a permuted
 * view of [3, 300, 2], in quarters (ties are common), floats with NaNs. */
static void test_reduce(void) {
    char what[160];
    uint32_t mask = (1u << 0) | (1u << 2);
    tc_dtype dtypes[] = {TC_FLOAT32, TC_FLOAT64, TC_INT32, TC_INT64, TC_UINT8};
    tc_reduce_op ops[] = {TC_REDUCE_MAX, TC_REDUCE_MIN};
    for (int d = 0; d < COUNT(dtypes); d++)
        for (int permuted = 0; permuted < 2; permuted++) {
            tc_dtype dtype = dtypes[d];
            bool floating = tc_dtype_is_floating(dtype);
            int64_t shape[3] = {2, 300, 3}, base_shape[3] = {3, 300, 2}, strides[3] = {1, 2, 600};
            int64_t n = 2 * 300 * 3, out_shape[3] = {1, 300, 1};
            double *values = random_values(floating ? TC_FLOAT64 : dtype, n, 140 + (unsigned)d, low_for(dtype), 3.0);
            if (floating) {
                for (int64_t i = 0; i < n; i++) values[i] = round(values[i] * 4.0) / 4.0;
                values[7] = NAN;
                values[1234] = NAN;
            }
            pair base = pair_from(dtype, 3, permuted ? base_shape : shape, values);
            free(values);
            pair x = permuted ? view_pair(base, 3, shape, strides, 0) : view_pair(base, 3, shape, base.cpu->strides, 0);
            for (int k = 0; k < COUNT(ops); k++) {
                pair out = zeros_pair(dtype, 3, out_shape);
                snprintf(what, sizeof what, "%s of %s%s over dims 1 and 3", k == 0 ? "max" : "min",
                         tc_dtype_name(dtype), permuted ? " (permuted)" : "");
                expect_ok(what, cpu->reduce(ops[k], x.cpu, mask, 0, out.cpu),
                          gpu->reduce(ops[k], x.gpu, mask, 0, out.gpu));
                expect_same(what, out, EXACT);
                release_pair(out);
            }
            release_pair(x);
            release_pair(base);
        }
}

/* ---- unary backward under a broadcast upstream gradient ---- */

static bool positive_domain(tc_unary_op op) { return op == TC_LOG || op == TC_SQRT || op == TC_RSQRT; }

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

/* ---- backward indexing given a bad index ---- */

/* Both devices fail alike on a bad index. */
static void expect_same_failure(const char *what, tc_status cpu_status, tc_status gpu_status, const char *cpu_message) {
    CHECK(cpu_status == TC_ERROR_ARGUMENT && gpu_status == TC_ERROR_ARGUMENT, "%s: statuses %d and %d", what,
          cpu_status, gpu_status);
    CHECK(strcmp(cpu_message, tc_last_error(ctx)) == 0, "%s: messages differ:\n  cpu:  %s\n  cuda: %s", what,
          cpu_message, tc_last_error(ctx));
}

static void test_bad_indices(void) {
    char message[TC_ERROR_CAPACITY];
    double gather_index[3] = {0, 6, 2};
    int64_t index_shape[3] = {1, 3, 1}, small_shape[3] = {1, 6, 1};
    pair bad = pair_from(TC_INT64, 3, index_shape, gather_index);
    pair x = random_pair(TC_FLOAT32, 3, small_shape, 183, -1.0, 1.0), grad = zeros_pair(TC_FLOAT32, 3, index_shape);
    tc_status cpu_status = cpu->scatter_add(x.cpu, 1, bad.cpu, grad.cpu);
    snprintf(message, sizeof message, "%s", tc_last_error(ctx));
    expect_same_failure("scatter_add with index 6 of 6", cpu_status, gpu->scatter_add(x.gpu, 1, bad.gpu, grad.gpu),
                        message);
    release_pair(grad);
    release_pair(x);
    release_pair(bad);

    double select_index[2] = {1, -1};
    int64_t bad_shape[1] = {2}, x_shape[2] = {4, 3}, grad_shape[2] = {2, 3};
    bad = pair_from(TC_INT64, 1, bad_shape, select_index);
    x = random_pair(TC_FLOAT64, 2, x_shape, 193, -1.0, 1.0);
    grad = zeros_pair(TC_FLOAT64, 2, grad_shape);
    cpu_status = cpu->index_add(x.cpu, 0, bad.cpu, grad.cpu);
    snprintf(message, sizeof message, "%s", tc_last_error(ctx));
    expect_same_failure("index_add with index -1", cpu_status, gpu->index_add(x.gpu, 0, bad.gpu, grad.gpu), message);
    release_pair(grad);
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
        snprintf(what, sizeof what, "dropout %s at seed 99, offset 5", tc_dtype_name(dtype));
        expect_ok(what, cpu->dropout(x.cpu, 0.3, 99, 5, mask.cpu, out.cpu),
                  gpu->dropout(x.gpu, 0.3, 99, 5, mask.gpu, out.gpu));
        expect_same(what, mask, EXACT);
        expect_same(what, out, EXACT);
        release_pair(out);
        release_pair(mask);
        release_pair(x);
    }
}

/* ---- what a forward saves for its backward ---- */

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
                pair none = {NULL, NULL};
                pair w = affine ? random_pair(dtype, 1, col_shape, 212, 0.5, 1.5) : none;
                pair b = affine && !rms ? random_pair(dtype, 1, col_shape, 213, -1.0, 1.0) : none;
                pair out = zeros_pair(dtype, 2, shape), mean = zeros_pair(dtype, 1, row_shape);
                pair rstd = zeros_pair(dtype, 1, row_shape);
                snprintf(what, sizeof what, "%s%s %s: mean and rstd", rms ? "rms_norm" : "layer_norm",
                         affine ? " (affine)" : "", tc_dtype_name(dtype));
                expect_ok(what,
                          cpu->layer_norm_forward(ctx, dtype, rms, on_cpu(x), on_cpu(w), on_cpu(b), 1e-5, rows, cols,
                                                  on_cpu(out), on_cpu(mean), on_cpu(rstd)),
                          gpu->layer_norm_forward(ctx, dtype, rms, on_gpu(x), on_gpu(w), on_gpu(b), 1e-5, rows, cols,
                                                  on_gpu(out), on_gpu(mean), on_gpu(rstd)));
                expect_same(what, mean, tolerance_for(dtype));
                expect_same(what, rstd, tolerance_for(dtype));
                pair all[] = {x, w, b, out, mean, rstd};
                for (int i = 0; i < COUNT(all); i++) release_pair(all[i]);
            }
}

static void test_attention(void) {
    char what[128];
    /* {B, T, H, KV, hd}: T = 70 spans two tiles of 64 keys; hd = 4 is below a
     * warp; the last two group query heads (KV = 2 of 4, and multi-query). */
    int64_t sizes[4][5] = {{2, 70, 3, 3, 4}, {1, 5, 2, 2, 8}, {2, 70, 4, 2, 4}, {1, 5, 4, 1, 8}};
    for (int d = 0; d < COUNT(float_dtypes); d++)
        for (int s = 0; s < COUNT(sizes); s++)
            for (int causal = 0; causal < 2; causal++) {
                tc_dtype dtype = float_dtypes[d];
                int64_t B = sizes[s][0], T = sizes[s][1], H = sizes[s][2], KV = sizes[s][3], hd = sizes[s][4];
                int64_t qkv_shape[3] = {B, T, (H + 2 * KV) * hd}, out_shape[3] = {B, T, H * hd};
                int64_t lse_shape[3] = {B, H, T};
                pair qkv = random_pair(dtype, 3, qkv_shape, 220 + (unsigned)s, -2.0, 2.0);
                pair out = zeros_pair(dtype, 3, out_shape), lse = zeros_pair(dtype, 3, lse_shape);
                snprintf(what, sizeof what, "attention B%lld T%lld H%lld KV%lld hd%lld%s %s: lse", (long long)B,
                         (long long)T, (long long)H, (long long)KV, (long long)hd, causal ? " causal" : "",
                         tc_dtype_name(dtype));
                expect_ok(what,
                          cpu->attention_forward(ctx, dtype, on_cpu(qkv), B, T, H, KV, hd, causal, on_cpu(out),
                                                 on_cpu(lse)),
                          gpu->attention_forward(ctx, dtype, on_gpu(qkv), B, T, H, KV, hd, causal, on_gpu(out),
                                                 on_gpu(lse)));
                expect_same(what, lse, 10 * tolerance_for(dtype));
                pair all[] = {qkv, out, lse};
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
            pair lse = zeros_pair(dtype, 1, row_shape);
            double cpu_loss = 0, gpu_loss = 0;
            int64_t cpu_count = 0, gpu_count = 0;
            snprintf(what, sizeof what, "cross_entropy %s, %s targets: lse and count", tc_dtype_name(dtype),
                     tc_dtype_name(target_dtypes[t]));
            expect_ok(what,
                      cpu->cross_entropy_forward(ctx, dtype, on_cpu(logits), target_dtypes[t], on_cpu(targets), rows,
                                                 classes, -100, on_cpu(lse), &cpu_loss, &cpu_count),
                      gpu->cross_entropy_forward(ctx, dtype, on_gpu(logits), target_dtypes[t], on_gpu(targets), rows,
                                                 classes, -100, on_gpu(lse), &gpu_loss, &gpu_count));
            expect_same(what, lse, tolerance_for(dtype));
            CHECK(cpu_count == 7 && gpu_count == 7, "%s: kept %lld and %lld rows, not 7", what, (long long)cpu_count,
                  (long long)gpu_count);
            pair all[] = {targets, logits, lse};
            for (int i = 0; i < COUNT(all); i++) release_pair(all[i]);
        }
}

/* ---- optimiser slots over several tensors in one call ---- */

static void test_optimizers(void) {
    char what[128];
    int64_t sizes[2] = {1000, 7};
    for (int d = 0; d < COUNT(float_dtypes); d++) {
        tc_dtype dtype = float_dtypes[d];
        /* SGD (plain, momentum, nesterov) on two tensors. */
        for (int kind = 1; kind < 4; kind++) {
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
            snprintf(what, sizeof what, "%s %s over two tensors", names[kind], tc_dtype_name(dtype));
            expect_ok(what, cpu->sgd_step(ctx, dtype, 2, cpu_steps, 1e-2, kind == 1 ? 0.0 : 0.9, 0.1, kind == 3, 0.01),
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
        /* Scale over three buffers, one empty. */
        int64_t lengths[3] = {1000, 0, 33};
        pair buffers[3];
        const void *cpu_x[3], *gpu_x[3];
        for (int i = 0; i < 3; i++) {
            buffers[i] = random_pair(dtype, 1, &lengths[i], 250 + (unsigned)i, -2.0, 2.0);
            cpu_x[i] = on_cpu(buffers[i]);
            gpu_x[i] = on_gpu(buffers[i]);
        }
        snprintf(what, sizeof what, "scale %s over three buffers", tc_dtype_name(dtype));
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
    {"unary", test_unary},
    {"binary", test_binary},
    {"clamp", test_clamp},
    {"reduce", test_reduce},
    {"unary_backward", test_unary_backward},
    {"bad_indices", test_bad_indices},
    {"random", test_random},
    {"layer_norm", test_layer_norm},
    {"attention", test_attention},
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
