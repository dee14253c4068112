/*
 * autocast_test.c: autocast is a setting of one context. Two contexts on
 * two threads multiply the same float32 matrices at the same time, one
 * under autocast and one not: the first must give the product of the
 * operands rounded to bf16 (float32 sums), the second the float32 product
 * exactly as a context that never saw autocast gives it. Also the
 * setting's errors and that the tape keeps it (bf16 or float16) for
 * backward.
 */
#include "../../src/cpu/cpu_bgemm.h"
#include "../../src/half.h"
#include "../../src/tricycle.h"
#include "check.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#define ROWS 24
#define INNER 96
#define COLUMNS 40
#define REPEATS 20

static float x_values[ROWS * INNER], w_values[COLUMNS * INNER];

/* The product x w^T in float64 of operands rounded (or not) to bf16. */
static void reference(bool rounded, double *out) {
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < COLUMNS; j++) {
            double sum = 0;
            for (int k = 0; k < INNER; k++) {
                float x = x_values[i * INNER + k], w = w_values[j * INNER + k];
                if (rounded) {
                    x = cpu_float_from_bf16(cpu_bf16_from_float(x));
                    w = cpu_float_from_bf16(cpu_bf16_from_float(w));
                }
                sum += (double)x * w;
            }
            out[i * COLUMNS + j] = sum;
        }
}

typedef struct job {
    bool autocast;
    bool ok;
    double out[ROWS * COLUMNS];
} job;

static void *run_job(void *argument) {
    job *j = argument;
    tc_context *ctx = tc_context_new();
    j->ok = ctx && tc_set_autocast(ctx, j->autocast ? TC_BFLOAT16 : TC_FLOAT32) == TC_OK;
    for (int r = 0; r < REPEATS && j->ok; r++) {
        tc_tensor *x = NULL, *w = NULL, *y = NULL;
        j->ok = tc_from_data(ctx, TC_FLOAT32, 2, (int64_t[]){ROWS, INNER}, x_values, TC_FLOAT32, &x) == TC_OK &&
                tc_from_data(ctx, TC_FLOAT32, 2, (int64_t[]){COLUMNS, INNER}, w_values, TC_FLOAT32, &w) == TC_OK &&
                tc_linear(x, w, NULL, &y) == TC_OK && tc_copy_to_doubles(y, j->out, ROWS * COLUMNS) == TC_OK;
        tc_tensor_release(x);
        tc_tensor_release(w);
        tc_tensor_release(y);
    }
    tc_context_free(ctx);
    return NULL;
}

static double max_difference(const double *a, const double *b) {
    double worst = 0;
    for (int i = 0; i < ROWS * COLUMNS; i++) worst = fmax(worst, fabs(a[i] - b[i]));
    return worst;
}

static void test_contexts_on_threads(void) {
    static job jobs[3] = {{.autocast = true}, {.autocast = false}, {.autocast = false}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&threads[i], NULL, run_job, &jobs[i]) == 0, "thread %d", i);
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    run_job(&jobs[2]); /* alone: the float32 bits to expect */
    CHECK(jobs[0].ok && jobs[1].ok && jobs[2].ok, "a context failed");
    static double rounded[ROWS * COLUMNS], exact[ROWS * COLUMNS];
    reference(true, rounded);
    reference(false, exact);
    CHECK(max_difference(jobs[0].out, rounded) < 1e-4, "autocast against rounded operands: %g",
          max_difference(jobs[0].out, rounded));
    CHECK(max_difference(jobs[0].out, exact) > 1e-3, "autocast gave float32's product: %g",
          max_difference(jobs[0].out, exact));
    CHECK(memcmp(jobs[1].out, jobs[2].out, sizeof jobs[1].out) == 0,
          "the float32 context beside an autocast one changed its bits");
}

static void test_setting(void) {
    tc_context *ctx = tc_context_new();
    CHECK(tc_autocast(ctx) == TC_FLOAT32, "off by default");
    CHECK(tc_set_autocast(ctx, TC_FLOAT64) == TC_ERROR_DTYPE && strstr(tc_last_error(ctx), "float64"),
          "float64: %s", tc_last_error(ctx));
    CHECK(tc_set_autocast(ctx, TC_INT64) == TC_ERROR_DTYPE && strstr(tc_last_error(ctx), "int64") &&
              strstr(tc_last_error(ctx), "float16"),
          "int64: %s", tc_last_error(ctx));
    CHECK(tc_autocast(ctx) == TC_FLOAT32, "a refused setting changed it");
    CHECK(tc_set_bgemm_path(ctx, "tpu") == TC_ERROR_ARGUMENT && strstr(tc_last_error(ctx), "'tpu'"), "path: %s",
          tc_last_error(ctx));
    CHECK(tc_set_bgemm_path(ctx, "fallback") == TC_OK && strcmp(tc_bgemm_path(ctx), "fallback") == 0, "fallback");
    CHECK(tc_set_bgemm_path(ctx, "amx") == TC_OK && strcmp(tc_bgemm_path(ctx), "fallback") != 0, "amx: %s",
          tc_bgemm_path(ctx));
    CHECK(tc_set_autocast(ctx, TC_FLOAT16) == TC_OK && tc_autocast(ctx) == TC_FLOAT16, "float16");
    CHECK(tc_set_autocast(ctx, TC_BFLOAT16) == TC_OK && tc_autocast(ctx) == TC_BFLOAT16, "bfloat16");
    tc_context_free(ctx);
}

/* Recorded under autocast(dtype), run after it is off: dx[i][k] = sum over
 * j of w[j][k] rounded to dtype all the same. */
static void test_backward_keeps(tc_dtype dtype) {
    tc_context *ctx = tc_context_new();
    CHECK(tc_set_autocast(ctx, dtype) == TC_OK, "%s", tc_last_error(ctx));
    tc_tensor *x = NULL, *w = NULL, *y = NULL, *g = NULL;
    CHECK(tc_from_data(ctx, TC_FLOAT32, 2, (int64_t[]){ROWS, INNER}, x_values, TC_FLOAT32, &x) == TC_OK, "x");
    CHECK(tc_from_data(ctx, TC_FLOAT32, 2, (int64_t[]){COLUMNS, INNER}, w_values, TC_FLOAT32, &w) == TC_OK, "w");
    tc_tensor_set_requires_grad(x, true);
    CHECK(tc_linear(x, w, NULL, &y) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_set_autocast(ctx, TC_FLOAT32) == TC_OK, "off");
    CHECK(tc_full(ctx, TC_FLOAT32, 2, (int64_t[]){ROWS, COLUMNS}, 1.0, &g) == TC_OK, "g");
    CHECK(tc_backward(y, g, false) == TC_OK, "%s", tc_last_error(ctx));
    double dx[ROWS * INNER];
    CHECK(tc_copy_to_doubles(tc_tensor_grad(x), dx, ROWS * INNER) == TC_OK, "dx");
    double worst = 0, from_float32 = 0;
    for (int k = 0; k < INNER; k++) {
        double sum = 0, exact = 0;
        for (int j = 0; j < COLUMNS; j++) {
            float value = w_values[j * INNER + k];
            sum += dtype == TC_BFLOAT16 ? tc_bfloat16_to_float(tc_float_to_bfloat16(value))
                                        : tc_float16_to_float(tc_float_to_float16(value));
            exact += value;
        }
        worst = fmax(worst, fabs(dx[k] - sum));
        from_float32 = fmax(from_float32, fabs(dx[k] - exact));
    }
    CHECK(worst < 2e-5, "backward of a %s autocast linear: %g from the rounded sums", tc_dtype_name(dtype), worst);
    CHECK(from_float32 > 5e-5, "backward of a %s autocast linear gave float32's sums", tc_dtype_name(dtype));
    CHECK(tc_autocast(ctx) == TC_FLOAT32, "backward left autocast on");
    tc_tensor_release(x);
    tc_tensor_release(w);
    tc_tensor_release(y);
    tc_tensor_release(g);
    tc_context_free(ctx);
}

/* Uniform in [-0.5, 0.5) from a linear congruential sequence. */
static float next_value(unsigned *state) {
    *state = *state * 1103515245u + 12345u;
    return (float)(*state >> 8) / 16777216.0f - 0.5f;
}

int main(void) {
    unsigned state = 12345;
    for (int i = 0; i < ROWS * INNER; i++) x_values[i] = next_value(&state);
    for (int i = 0; i < COLUMNS * INNER; i++) w_values[i] = next_value(&state);
    test_contexts_on_threads();
    test_setting();
    test_backward_keeps(TC_BFLOAT16);
    test_backward_keeps(TC_FLOAT16);
    printf("autocast_test: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
