/*
 * api_test.c: the plain C API used directly, without Lua: a context,
 * tensors, an op, backward, error statuses and messages, a host allocator
 * with a byte budget, the log callback, a custom autograd function.
 * Prints "N passed, M failed" and exits non-zero on any failure.
 */
#include "tricycle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(condition, ...)                                                                                      \
    do {                                                                                                           \
        if (!(condition)) {                                                                                        \
            printf("  line %d: ", __LINE__);                                                                      \
            printf(__VA_ARGS__);                                                                                   \
            printf("\n");                                                                                          \
            return false;                                                                                          \
        }                                                                                                          \
    } while (0)

static void run(const char *name, bool (*test)(void)) {
    bool ok = test();
    printf("%s %s\n", ok ? "pass" : "FAIL", name);
    if (ok) passed++;
    else failed++;
}

static bool near(double a, double b) { return fabs(a - b) <= 1e-9 + 1e-9 * fabs(b); }

static bool test_tensors_and_ops(void) {
    tc_context *ctx = tc_context_new();
    CHECK(ctx != NULL, "no context");
    const double values[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    tc_tensor *a = NULL, *b = NULL, *c = NULL;
    CHECK(tc_from_data(ctx, TC_FLOAT64, 2, shape, values, TC_FLOAT64, &a) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_tensor_ndim(a) == 2 && tc_tensor_shape(a)[0] == 2 && tc_tensor_shape(a)[1] == 3, "shape");
    CHECK(tc_tensor_numel(a) == 6 && tc_tensor_dtype(a) == TC_FLOAT64, "numel/dtype");
    CHECK(tc_full(ctx, TC_FLOAT64, 1, (int64_t[]){3}, 10, &b) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_binary(TC_ADD, a, b, &c) == TC_OK, "%s", tc_last_error(ctx));
    double out[6];
    CHECK(tc_copy_to_doubles(c, out, 6) == TC_OK, "%s", tc_last_error(ctx));
    for (int i = 0; i < 6; i++) CHECK(near(out[i], values[i] + 10), "add element %d: %g", i, out[i]);

    tc_tensor *t = NULL, *s = NULL;
    CHECK(tc_transpose(a, 0, 1, &t) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(!tc_tensor_is_contiguous(t), "transpose should be a view");
    double value;
    CHECK(tc_get(t, (int64_t[]){2, 1}, &value) == TC_OK && near(value, 6), "t[2][1] = %g", value);
    int dims[1] = {1};
    CHECK(tc_reduce(TC_REDUCE_SUM, a, 1, dims, false, &s) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_copy_to_doubles(s, out, 2) == TC_OK && near(out[0], 6) && near(out[1], 15), "row sums %g %g", out[0],
          out[1]);
    tc_tensor_release(a);
    tc_tensor_release(b);
    tc_tensor_release(c);
    tc_tensor_release(t);
    tc_tensor_release(s);
    CHECK(tc_memory_in_use(ctx) == 0, "%zu bytes still in use after releasing everything", tc_memory_in_use(ctx));
    tc_context_free(ctx);
    return true;
}

static bool test_backward(void) {
    tc_context *ctx = tc_context_new();
    const double values[3] = {1, -2, 3};
    tc_tensor *x = NULL, *y = NULL, *loss = NULL;
    CHECK(tc_from_data(ctx, TC_FLOAT64, 1, (int64_t[]){3}, values, TC_FLOAT64, &x) == TC_OK, "from_data");
    CHECK(tc_tensor_set_requires_grad(x, true) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_binary(TC_MUL, x, x, &y) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_tensor_grad_fn_name(y) != NULL, "y should be on the tape");
    CHECK(tc_reduce(TC_REDUCE_SUM, y, 0, NULL, false, &loss) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_backward(loss, NULL, false) == TC_OK, "%s", tc_last_error(ctx));
    tc_tensor *grad = tc_tensor_grad(x);
    CHECK(grad != NULL, "x has no gradient");
    double g[3];
    CHECK(tc_copy_to_doubles(grad, g, 3) == TC_OK, "copy grad");
    for (int i = 0; i < 3; i++) CHECK(near(g[i], 2 * values[i]), "grad %d = %g", i, g[i]);
    /* a second backward through the freed graph is a state error with a message */
    tc_status status = tc_backward(loss, NULL, false);
    CHECK(status == TC_ERROR_STATE, "second backward gave status %d", (int)status);
    CHECK(strstr(tc_last_error(ctx), "backward") != NULL, "message: %s", tc_last_error(ctx));
    tc_clear_error(ctx);
    /* backward of a non-scalar needs a gradient */
    tc_tensor_release(y);
    CHECK(tc_binary(TC_MUL, x, x, &y) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_backward(y, NULL, false) != TC_OK, "non-scalar backward without gradient succeeded");
    CHECK(strstr(tc_last_error(ctx), "backward") != NULL, "message: %s", tc_last_error(ctx));
    /* grad mode off records nothing */
    tc_set_grad_enabled(ctx, false);
    tc_tensor *z = NULL;
    CHECK(tc_binary(TC_MUL, x, x, &z) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_tensor_grad_fn_name(z) == NULL && !tc_tensor_requires_grad(z), "recorded with grad mode off");
    tc_set_grad_enabled(ctx, true);
    tc_tensor_release(z);
    tc_tensor_release(x);
    tc_tensor_release(y);
    tc_tensor_release(loss);
    tc_context_free(ctx);
    return true;
}

static bool test_errors(void) {
    tc_context *ctx = tc_context_new();
    tc_tensor *a = NULL, *b = NULL, *c = NULL;
    CHECK(tc_zeros(ctx, TC_FLOAT32, 2, (int64_t[]){2, 3}, &a) == TC_OK, "zeros");
    CHECK(tc_zeros(ctx, TC_FLOAT32, 1, (int64_t[]){4}, &b) == TC_OK, "zeros");
    tc_status status = tc_binary(TC_ADD, a, b, &c);
    CHECK(status == TC_ERROR_SHAPE, "add {2,3} + {4} gave status %d", (int)status);
    CHECK(tc_last_status(ctx) == TC_ERROR_SHAPE, "last status %d", (int)tc_last_status(ctx));
    const char *message = tc_last_error(ctx);
    CHECK(strstr(message, "add") && strstr(message, "{2, 3}") && strstr(message, "{4}"), "message: %s", message);
    tc_clear_error(ctx);
    CHECK(tc_last_status(ctx) == TC_OK && tc_last_error(ctx)[0] == '\0', "clear_error");
    status = tc_reshape(a, 2, (int64_t[]){4, 2}, &c);
    CHECK(status == TC_ERROR_SHAPE && strstr(tc_last_error(ctx), "reshape"), "reshape: %d %s", (int)status,
          tc_last_error(ctx));
    tc_tensor *ints = NULL;
    CHECK(tc_zeros(ctx, TC_INT64, 1, (int64_t[]){2}, &ints) == TC_OK, "zeros int64");
    status = tc_tensor_set_requires_grad(ints, true);
    CHECK(status != TC_OK && strstr(tc_last_error(ctx), "int64"), "requires_grad on int64: %s", tc_last_error(ctx));
    status = tc_matmul(a, a, &c);
    CHECK(status == TC_ERROR_SHAPE && strstr(tc_last_error(ctx), "matmul"), "matmul: %d %s", (int)status,
          tc_last_error(ctx));
    CHECK(tc_set_error(ctx, TC_ERROR_CALLBACK, "host says no") == TC_ERROR_CALLBACK, "set_error status");
    CHECK(strcmp(tc_last_error(ctx), "host says no") == 0, "set_error message");
    tc_tensor_release(a);
    tc_tensor_release(b);
    tc_tensor_release(ints);
    tc_context_free(ctx);
    return true;
}

typedef struct counting_allocator {
    size_t live_bytes;
    int allocations, releases;
} counting_allocator;

static void *counting_allocate(void *user, size_t bytes, size_t alignment) {
    counting_allocator *counter = user;
    size_t rounded = (bytes + alignment - 1) / alignment * alignment;
    void *p = aligned_alloc(alignment, rounded ? rounded : alignment);
    if (p) {
        counter->live_bytes += bytes;
        counter->allocations++;
    }
    return p;
}

static void counting_release(void *user, void *pointer, size_t bytes) {
    counting_allocator *counter = user;
    counter->live_bytes -= bytes;
    counter->releases++;
    free(pointer);
}

static bool test_allocator_and_budget(void) {
    counting_allocator counter = {0, 0, 0};
    tc_allocator allocator = {counting_allocate, counting_release, &counter};
    tc_context *ctx = tc_context_new_with_allocator(&allocator);
    CHECK(ctx != NULL, "no context");
    tc_tensor *a = NULL, *b = NULL, *c = NULL;
    CHECK(tc_ones(ctx, TC_FLOAT32, 1, (int64_t[]){1000}, &a) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(counter.allocations >= 1 && counter.live_bytes >= 4000, "allocator not used (%d, %zu)", counter.allocations,
          counter.live_bytes);
    CHECK(tc_memory_in_use(ctx) >= 4000, "memory_in_use %zu", tc_memory_in_use(ctx));
    tc_set_memory_budget(ctx, 6000);
    tc_status status = tc_ones(ctx, TC_FLOAT32, 1, (int64_t[]){1000}, &b);
    CHECK(status == TC_ERROR_MEMORY, "second 4000 bytes over a 6000 budget gave status %d", (int)status);
    CHECK(strstr(tc_last_error(ctx), "budget") != NULL, "message: %s", tc_last_error(ctx));
    status = tc_binary(TC_MUL, a, a, &c);
    CHECK(status == TC_ERROR_MEMORY, "an op over budget gave status %d", (int)status);
    tc_clear_error(ctx);
    tc_set_memory_budget(ctx, 0);
    CHECK(tc_binary(TC_MUL, a, a, &c) == TC_OK, "after lifting the budget: %s", tc_last_error(ctx));
    tc_tensor_release(a);
    tc_tensor_release(c);
    CHECK(counter.live_bytes == 0, "%zu bytes not given back to the host allocator", counter.live_bytes);
    CHECK(counter.allocations == counter.releases, "%d allocations, %d releases", counter.allocations,
          counter.releases);
    CHECK(tc_memory_peak(ctx) >= 8000, "peak %zu", tc_memory_peak(ctx));
    tc_context_free(ctx);
    return true;
}

typedef struct log_record {
    int count;
    tc_log_level level;
    char last[256];
} log_record;

static void record_log(void *user, tc_log_level level, const char *message) {
    log_record *record = user;
    record->count++;
    record->level = level;
    snprintf(record->last, sizeof record->last, "%s", message);
}

static bool test_log_callback(void) {
    tc_context *ctx = tc_context_new();
    log_record record = {0, TC_LOG_DEBUG, ""};
    tc_set_log_callback(ctx, record_log, &record);
    /* Ordinary work, errors included, goes to the callback if anywhere: the
     * engine itself never writes to stdout or stderr. */
    tc_tensor *a = NULL, *b = NULL;
    CHECK(tc_zeros(ctx, TC_FLOAT32, 1, (int64_t[]){3}, &a) == TC_OK, "zeros");
    CHECK(tc_reshape(a, 1, (int64_t[]){4}, &b) != TC_OK, "bad reshape succeeded");
    for (int i = 0; i < record.count; i++) CHECK(record.last[0] != '\0', "empty log message");
    tc_set_log_callback(ctx, NULL, NULL);
    int before = record.count;
    CHECK(tc_reshape(a, 1, (int64_t[]){4}, &b) != TC_OK, "bad reshape succeeded");
    CHECK(record.count == before, "a cleared callback was still called");
    tc_tensor_release(a);
    tc_context_free(ctx);
    return true;
}

/* A custom function y = 3x whose backward gives 3 * grad. */
static int custom_released;

static tc_status triple_backward(void *user, tc_tensor *grad_output, int n_inputs, tc_tensor **grad_inputs) {
    (void)user;
    if (n_inputs != 1) return TC_ERROR_ARGUMENT;
    return tc_binary_scalar(TC_MUL, grad_output, 3, false, &grad_inputs[0]);
}

static void triple_release(void *user) {
    (void)user;
    custom_released++;
}

static bool test_custom_function(void) {
    tc_context *ctx = tc_context_new();
    tc_tensor *x = NULL, *y = NULL, *recorded = NULL, *loss = NULL;
    CHECK(tc_from_data(ctx, TC_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 2}, TC_FLOAT64, &x) == TC_OK, "data");
    CHECK(tc_tensor_set_requires_grad(x, true) == TC_OK, "requires_grad");
    tc_set_grad_enabled(ctx, false);
    CHECK(tc_binary_scalar(TC_MUL, x, 3, false, &y) == TC_OK, "%s", tc_last_error(ctx));
    tc_set_grad_enabled(ctx, true);
    tc_custom_function fn = {"triple", triple_backward, triple_release, NULL};
    CHECK(tc_custom_apply(&fn, 1, &x, y, &recorded) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_reduce(TC_REDUCE_SUM, recorded, 0, NULL, false, &loss) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_backward(loss, NULL, false) == TC_OK, "%s", tc_last_error(ctx));
    double g[2];
    CHECK(tc_copy_to_doubles(tc_tensor_grad(x), g, 2) == TC_OK && near(g[0], 3) && near(g[1], 3), "grads %g %g",
          g[0], g[1]);
    tc_tensor_release(loss);
    tc_tensor_release(recorded);
    tc_tensor_release(y);
    tc_tensor_release(x);
    CHECK(custom_released == 1, "release called %d times", custom_released);
    tc_context_free(ctx);
    return true;
}

/* A scalar an integer tensor cannot hold, in-place writes into tensors that
 * require grad, and a backward whose input was overwritten: each an error. */
static bool test_scalar_and_in_place_checks(void) {
    tc_context *ctx = tc_context_new();
    tc_tensor *u = NULL, *out = NULL, *x = NULL, *w = NULL, *y = NULL, *loss = NULL;
    CHECK(tc_full(ctx, TC_UINT8, 1, (int64_t[]){2}, 7, &u) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_binary_scalar(TC_ADD, u, 300, false, &out) == TC_ERROR_ARGUMENT, "uint8 + 300 should fail");
    CHECK(strstr(tc_last_error(ctx), "add: the scalar 300 is out of the range of uint8"), "message: %s",
          tc_last_error(ctx));
    CHECK(tc_fill_(u, 2.5) == TC_ERROR_ARGUMENT && strstr(tc_last_error(ctx), "fill_: the scalar 2.5"),
          "fill_ 2.5: %s", tc_last_error(ctx));
    CHECK(tc_binary_scalar(TC_ADD, u, 200, false, &out) == TC_OK, "%s", tc_last_error(ctx));
    tc_tensor_release(out);
    out = NULL;

    /* Data converted into an integer dtype must fit it, element by element. */
    CHECK(tc_from_data(ctx, TC_UINT8, 1, (int64_t[]){3}, (double[]){0, 255, 256}, TC_FLOAT64, &out) ==
                  TC_ERROR_ARGUMENT && out == NULL,
          "256 as uint8 should fail");
    CHECK(strstr(tc_last_error(ctx), "element 2 (256, float64) does not fit uint8"), "message: %s", tc_last_error(ctx));
    CHECK(tc_from_data(ctx, TC_INT32, 1, (int64_t[]){2}, (int64_t[]){1, (int64_t)1 << 40}, TC_INT64, &out) ==
                  TC_ERROR_ARGUMENT,
          "2^40 as int32 should fail");
    CHECK(tc_from_data(ctx, TC_INT64, 1, (int64_t[]){1}, (double[]){NAN}, TC_FLOAT64, &out) == TC_ERROR_ARGUMENT,
          "NaN as int64 should fail");
    CHECK(tc_from_data(ctx, TC_INT32, 1, (int64_t[]){2}, (int64_t[]){INT32_MIN, INT32_MAX}, TC_INT64, &out) == TC_OK,
          "%s", tc_last_error(ctx));
    tc_tensor_release(out);

    CHECK(tc_from_data(ctx, TC_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 2}, TC_FLOAT64, &x) == TC_OK, "data");
    CHECK(tc_tensor_set_requires_grad(x, true) == TC_OK, "requires_grad");
    CHECK(tc_fill_(x, 0) == TC_ERROR_STATE && strstr(tc_last_error(ctx), "a leaf that requires grad"), "fill_: %s",
          tc_last_error(ctx));
    tc_set_grad_enabled(ctx, false);
    CHECK(tc_fill_(x, 1) == TC_OK, "fill_ under no-grad: %s", tc_last_error(ctx));
    tc_set_grad_enabled(ctx, true);

    CHECK(tc_full(ctx, TC_FLOAT64, 1, (int64_t[]){2}, 3, &w) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_binary(TC_MUL, x, w, &y) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_reduce(TC_REDUCE_SUM, y, 0, NULL, false, &loss) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_fill_(w, 5) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_backward(loss, NULL, false) == TC_ERROR_STATE, "backward after overwriting an input should fail");
    CHECK(strstr(tc_last_error(ctx), "backward of 'mul': its input 2"), "message: %s", tc_last_error(ctx));
    tc_tensor_release(loss);
    tc_tensor_release(y);
    tc_tensor_release(w);
    tc_tensor_release(x);
    tc_tensor_release(u);
    tc_context_free(ctx);
    return true;
}

/* The shape rule through the C API: shapes whose element or byte counts
 * overflow are refused where they are made, naming the function. */
/* tc_sort and tc_topk from C: stable order with NaN largest, k checked (a negative k reaches only the C API). */
static bool test_sort_and_topk(void) {
    tc_context *ctx = tc_context_new();
    CHECK(ctx != NULL, "no context");
    double values[6] = {2, NAN, -1, 2, 0, -0.0};
    tc_tensor *x = NULL, *v = NULL, *i = NULL, *tv = NULL, *ti = NULL;
    CHECK(tc_from_data(ctx, TC_FLOAT64, 1, (int64_t[]){6}, values, TC_FLOAT64, &x) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_sort(x, 0, false, &v, &i) == TC_OK, "%s", tc_last_error(ctx));
    int64_t order[6], expected[6] = {2, 4, 5, 0, 3, 1};
    CHECK(tc_copy_to_int64(i, order, 6) == TC_OK, "%s", tc_last_error(ctx));
    for (int e = 0; e < 6; e++) CHECK(order[e] == expected[e], "sort position %d: %lld", e, (long long)order[e]);
    CHECK(tc_topk(x, 2, -1, true, &tv, &ti) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_copy_to_int64(ti, order, 2) == TC_OK && order[0] == 1 && order[1] == 0, "topk %lld %lld",
          (long long)order[0], (long long)order[1]);
    tc_tensor *none = NULL, *no_ids = NULL;
    CHECK(tc_topk(x, -1, 0, true, &none, &no_ids) == TC_ERROR_ARGUMENT && none == NULL && no_ids == NULL,
          "a negative k must fail");
    CHECK(strstr(tc_last_error(ctx), "topk: k -1") && strstr(tc_last_error(ctx), "{6}"), "%s", tc_last_error(ctx));
    CHECK(tc_topk(x, 7, 0, true, &none, &no_ids) == TC_ERROR_ARGUMENT && none == NULL, "k past the dim must fail");
    CHECK(strstr(tc_last_error(ctx), "k 7") && strstr(tc_last_error(ctx), "size 6"), "%s", tc_last_error(ctx));
    CHECK(tc_sort(x, 1, false, &none, &no_ids) == TC_ERROR_ARGUMENT && none == NULL, "dim 1 of a 1-D x must fail");
    tc_tensor *list[] = {x, v, i, tv, ti};
    for (int e = 0; e < 5; e++) tc_tensor_release(list[e]);
    CHECK(tc_memory_in_use(ctx) == 0, "%zu bytes still in use", tc_memory_in_use(ctx));
    tc_context_free(ctx);
    return true;
}

static bool test_size_arithmetic(void) {
    tc_context *ctx = tc_context_new();
    tc_tensor *t = NULL, *v = NULL;
    int64_t wraps[2] = {(int64_t)1 << 32, (int64_t)1 << 32}, big = (int64_t)1 << 62;
    CHECK(tc_zeros(ctx, TC_FLOAT32, 1, &big, &t) == TC_ERROR_ARGUMENT, "zeros of 2^62 floats was accepted");
    CHECK(strstr(tc_last_error(ctx), "zeros") && strstr(tc_last_error(ctx), "4611686018427387904"), "%s",
          tc_last_error(ctx));
    CHECK(tc_empty(ctx, TC_UINT8, 2, wraps, &t) != TC_OK, "2^64 elements were accepted");
    CHECK(tc_check_shape(ctx, "probe", 2, wraps, TC_UINT8) != TC_OK && strstr(tc_last_error(ctx), "probe"), "%s",
          tc_last_error(ctx));
    int64_t numel = 0;
    CHECK(tc_checked_numel(ctx, "probe", 2, wraps, &numel) != TC_OK, "numel of 2^64 did not fail");
    CHECK(tc_checked_numel(ctx, "probe", 2, (int64_t[]){(int64_t)1 << 40, 0}, &numel) == TC_OK && numel == 0,
          "numel of {2^40, 0}");
    CHECK(tc_zeros(ctx, TC_FLOAT32, 1, (int64_t[]){0}, &t) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_reshape(t, 2, wraps, &v) != TC_OK && strstr(tc_last_error(ctx), "reshape"), "%s", tc_last_error(ctx));
    CHECK(tc_expand(t, 2, wraps, &v) != TC_OK, "expand to 2^64 elements was accepted");
    tc_tensor_release(t);
    CHECK(tc_ones(ctx, TC_FLOAT32, 1, (int64_t[]){3}, &t) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_narrow(t, 0, 1, INT64_MAX, &v) != TC_OK && strstr(tc_last_error(ctx), "narrow"), "%s",
          tc_last_error(ctx));
    CHECK(tc_narrow(t, 0, INT64_MAX, 1, &v) != TC_OK, "narrow from INT64_MAX was accepted");
    CHECK(tc_select(t, 0, INT64_MIN, &v) != TC_OK && tc_select(t, 0, INT64_MAX, &v) != TC_OK, "select");
    tc_tensor_release(t);
    int64_t exact = INT64_MAX - 1, read = 0;
    CHECK(tc_from_data(ctx, TC_INT64, 0, NULL, &exact, TC_INT64, &t) == TC_OK, "%s", tc_last_error(ctx));
    CHECK(tc_item_int64(t, &read) == TC_OK && read == INT64_MAX - 1, "item_int64 read %lld", (long long)read);
    tc_tensor_release(t);
    CHECK(tc_memory_in_use(ctx) == 0, "%zu bytes still in use", tc_memory_in_use(ctx));
    tc_context_free(ctx);
    return true;
}

int main(void) {
    run("tensors and ops", test_tensors_and_ops);
    run("backward", test_backward);
    run("error statuses and messages", test_errors);
    run("host allocator and byte budget", test_allocator_and_budget);
    run("log callback", test_log_callback);
    run("custom function", test_custom_function);
    run("scalar and in-place checks", test_scalar_and_in_place_checks);
    run("size arithmetic", test_size_arithmetic);
    run("sort and topk", test_sort_and_topk);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
