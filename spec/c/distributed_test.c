/*
 * distributed_test.c: the distributed section of the C API in a world of
 * one (no MPI): joining and leaving, every collective's local result and
 * argument checks, pending handles, the counters, the failure a context
 * gets after abort, several contexts on several threads at once; and the
 * tape's gradient hooks: called once per backward when a leaf's gradient
 * is final (after every use of the leaf), not for a leaf the backward does
 * not reach, moved with tc_tensor_move_grad_hook, and a failing hook stops
 * the backward. With `--mpi LIBRARY` under mpirun: two contexts of each
 * process join through MPI and run collectives on two threads at once
 * (spec/distributed_spec.lua runs it, and several ranks of Lua).
 */
#include "check.h"
#include "tricycle.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static bool has(const char *text, const char *fragment) { return text && strstr(text, fragment) != NULL; }

static tc_tensor *vector(tc_context *ctx, int64_t n, const float *values) {
    tc_tensor *t = NULL;
    tc_from_data(ctx, TC_FLOAT32, 1, &n, values, TC_FLOAT32, &t);
    return t;
}

static float at(const tc_tensor *t, int64_t i) {
    double value = 0;
    tc_get(t, &i, &value);
    return (float)value;
}

static void test_world_of_one(void) {
    tc_context *ctx = tc_context_new();
    CHECK(!tc_distributed_is_initialized(ctx), "a new context has not joined");
    CHECK(tc_distributed_rank(ctx) == 0 && tc_distributed_world_size(ctx) == 1, "rank 0 of 1 before init");
    float values[4] = {1, 2, 3, 4};
    tc_tensor *t = vector(ctx, 4, values);
    CHECK(tc_all_reduce(t, TC_COLLECTIVE_SUM, NULL) == TC_ERROR_STATE, "a collective before init fails");
    CHECK(has(tc_last_error(ctx), "all_reduce") && has(tc_last_error(ctx), "has not joined"),
          "the message names the op and says why: %s", tc_last_error(ctx));

    tc_distributed_options options = {.use_mpi = false, .mpi_library = NULL, .timeout = 0};
    CHECK(tc_distributed_init(ctx, &options) == TC_OK, "init without MPI: %s", tc_last_error(ctx));
    CHECK(tc_distributed_is_initialized(ctx), "joined");
    CHECK(strcmp(tc_distributed_backend(ctx), "local") == 0, "the backend is local");
    CHECK(tc_distributed_local_rank(ctx) == 0 && tc_distributed_local_size(ctx) == 1, "local rank 0 of 1");
    CHECK(tc_distributed_init(ctx, &options) == TC_ERROR_STATE && has(tc_last_error(ctx), "already joined"),
          "a second init fails: %s", tc_last_error(ctx));

    CHECK(tc_all_reduce(t, TC_COLLECTIVE_AVG, NULL) == TC_OK, "avg of one: %s", tc_last_error(ctx));
    CHECK(at(t, 0) == 1 && at(t, 3) == 4, "the average over one rank is the tensor");
    CHECK(tc_all_reduce(t, TC_COLLECTIVE_MAX, NULL) == TC_OK && at(t, 2) == 3, "max of one");
    CHECK(tc_broadcast(t, 0, NULL) == TC_OK && at(t, 1) == 2, "broadcast from 0");
    CHECK(tc_broadcast(t, 1, NULL) == TC_ERROR_ARGUMENT && has(tc_last_error(ctx), "root 1"),
          "root 1 is not a rank: %s", tc_last_error(ctx));

    /* a non-contiguous tensor is reduced in place through a copy */
    tc_tensor *matrix = NULL, *transposed = NULL;
    int64_t shape[2] = {2, 2};
    tc_from_data(ctx, TC_FLOAT32, 2, shape, values, TC_FLOAT32, &matrix);
    tc_transpose(matrix, 0, 1, &transposed);
    CHECK(tc_all_reduce(transposed, TC_COLLECTIVE_SUM, NULL) == TC_OK, "a transposed view: %s", tc_last_error(ctx));
    int64_t index[2] = {0, 1};
    double value = 0;
    tc_get(transposed, index, &value);
    CHECK(value == 3, "the view keeps its values, got %g", value);

    tc_tensor *gathered = NULL;
    tc_empty(ctx, TC_FLOAT32, 1, (int64_t[]){4}, &gathered);
    CHECK(tc_all_gather(t, NULL, gathered, NULL) == TC_OK && at(gathered, 3) == 4, "all_gather of one: %s",
          tc_last_error(ctx));
    tc_tensor *wrong = NULL;
    tc_empty(ctx, TC_FLOAT32, 1, (int64_t[]){5}, &wrong);
    CHECK(tc_all_gather(t, NULL, wrong, NULL) == TC_ERROR_SHAPE && has(tc_last_error(ctx), "expected 4"),
          "out of the wrong size: %s", tc_last_error(ctx));
    int64_t counts[1] = {3};
    CHECK(tc_all_gather(t, counts, gathered, NULL) == TC_ERROR_SHAPE && has(tc_last_error(ctx), "counts[1]"),
          "counts that do not match this rank's tensor: %s", tc_last_error(ctx));
    int64_t negative[1] = {-1};
    CHECK(tc_reduce_scatter(t, negative, TC_COLLECTIVE_SUM, gathered, NULL) == TC_ERROR_ARGUMENT &&
              has(tc_last_error(ctx), "-1"),
          "a negative count: %s", tc_last_error(ctx));
    tc_tensor *scattered = NULL;
    tc_empty(ctx, TC_FLOAT32, 1, (int64_t[]){4}, &scattered);
    CHECK(tc_reduce_scatter(t, NULL, TC_COLLECTIVE_SUM, scattered, NULL) == TC_OK && at(scattered, 2) == 3,
          "reduce_scatter of one: %s", tc_last_error(ctx));

    tc_tensor *integers = NULL;
    tc_zeros(ctx, TC_INT64, 1, (int64_t[]){2}, &integers);
    CHECK(tc_all_reduce(integers, TC_COLLECTIVE_AVG, NULL) == TC_ERROR_DTYPE && has(tc_last_error(ctx), "avg"),
          "avg of integers is refused: %s", tc_last_error(ctx));
    tc_tensor *flags = NULL;
    tc_zeros(ctx, TC_BOOL, 1, (int64_t[]){2}, &flags);
    CHECK(tc_all_reduce(flags, TC_COLLECTIVE_SUM, NULL) == TC_ERROR_DTYPE && has(tc_last_error(ctx), "bool"),
          "a sum of bools is refused: %s", tc_last_error(ctx));
    CHECK(tc_all_reduce(flags, TC_COLLECTIVE_MAX, NULL) == TC_OK, "max of bools is a logical or");

    /* a leaf that requires grad is not written in place in grad mode */
    tc_tensor *leaf = NULL;
    tc_ones(ctx, TC_FLOAT32, 1, (int64_t[]){2}, &leaf);
    tc_tensor_set_requires_grad(leaf, true);
    CHECK(tc_all_reduce(leaf, TC_COLLECTIVE_SUM, NULL) == TC_ERROR_STATE && has(tc_last_error(ctx), "all_reduce"),
          "an in-place collective on a leaf in grad mode: %s", tc_last_error(ctx));

    tc_collective *pending = NULL;
    CHECK(tc_all_reduce(t, TC_COLLECTIVE_SUM, &pending) == TC_OK && pending, "a pending all_reduce");
    bool done = false;
    CHECK(tc_collective_test(pending, &done) == TC_OK && done, "a world of one finishes at once");
    CHECK(tc_collective_wait(pending) == TC_OK, "waiting again is fine");
    tc_collective_free(pending);
    CHECK(tc_barrier(ctx) == TC_OK, "barrier");

    tc_distributed_stats stats;
    tc_distributed_get_stats(ctx, &stats);
    CHECK(stats.all_reduce == 5 && stats.broadcast == 1 && stats.all_gather == 1 && stats.reduce_scatter == 1 &&
              stats.barrier == 1,
          "counted: %lld all_reduce, %lld broadcast, %lld all_gather, %lld reduce_scatter, %lld barrier",
          (long long)stats.all_reduce, (long long)stats.broadcast, (long long)stats.all_gather,
          (long long)stats.reduce_scatter, (long long)stats.barrier);
    CHECK(stats.nccl == 0, "no NCCL on the CPU");
    tc_distributed_reset_stats(ctx);
    tc_distributed_get_stats(ctx, &stats);
    CHECK(stats.all_reduce == 0 && stats.bytes == 0, "reset");

    /* abort breaks the world: later collectives fail with its message */
    CHECK(tc_distributed_abort(ctx, "out of data") == TC_OK, "abort");
    CHECK(has(tc_distributed_failure(ctx), "rank 0 stopped: out of data"), "the failure: %s",
          tc_distributed_failure(ctx));
    CHECK(tc_all_reduce(t, TC_COLLECTIVE_SUM, NULL) == TC_ERROR_STATE &&
              has(tc_last_error(ctx), "all_reduce: rank 0 stopped: out of data"),
          "a collective after abort: %s", tc_last_error(ctx));
    CHECK(tc_distributed_shutdown(ctx) == TC_OK, "a world of one leaves: %s", tc_last_error(ctx));
    CHECK(!tc_distributed_is_initialized(ctx), "left");
    CHECK(tc_distributed_init(ctx, NULL) == TC_OK, "joins again: %s", tc_last_error(ctx));
    options.timeout = -1;
    tc_distributed_shutdown(ctx);
    CHECK(tc_distributed_init(ctx, &options) == TC_ERROR_ARGUMENT && has(tc_last_error(ctx), "timeout"),
          "a negative timeout: %s", tc_last_error(ctx));
    options.timeout = 0;
    options.use_mpi = true;
    options.mpi_library = "/nonexistent/libtricycle_mpi.so";
    CHECK(tc_distributed_init(ctx, &options) == TC_ERROR_UNSUPPORTED && has(tc_last_error(ctx), "MPI cannot be used"),
          "a missing MPI library says why: %s", tc_last_error(ctx));
    CHECK(!tc_distributed_is_initialized(ctx), "a failed init leaves the context out");

    /* a pending collective outlives its context's world */
    CHECK(tc_distributed_init(ctx, NULL) == TC_OK, "init");
    CHECK(tc_all_reduce(t, TC_COLLECTIVE_SUM, &pending) == TC_OK, "pending");
    tc_distributed_shutdown(ctx);
    CHECK(tc_collective_wait(pending) == TC_OK, "a finished collective stays finished after shutdown");
    tc_collective_free(pending);

    tc_tensor *all[] = {t, matrix, transposed, gathered, wrong, scattered, integers, flags, leaf};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tc_tensor_release(all[i]);
    tc_context_free(ctx);
}

/* ---- several contexts on several threads ---- */

static void *thread_job(void *argument) {
    int *ok = argument;
    tc_context *ctx = tc_context_new();
    *ok = ctx && tc_distributed_init(ctx, NULL) == TC_OK;
    for (int i = 0; i < 200 && *ok; i++) {
        tc_tensor *t = NULL;
        *ok = tc_full(ctx, TC_FLOAT32, 1, (int64_t[]){64}, i, &t) == TC_OK &&
              tc_all_reduce(t, TC_COLLECTIVE_AVG, NULL) == TC_OK && at(t, 63) == (float)i;
        tc_tensor_release(t);
    }
    tc_context_free(ctx); /* leaves the world too */
    return NULL;
}

static void test_threads(void) {
    pthread_t threads[3];
    int ok[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) pthread_create(&threads[i], NULL, thread_job, &ok[i]);
    for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
    CHECK(ok[0] && ok[1] && ok[2], "three contexts on three threads: %d %d %d", ok[0], ok[1], ok[2]);
}

/* ---- gradient hooks ---- */

typedef struct hook_record {
    int calls;
    double grad_at_call; /* the gradient's first element when called */
    bool fail;
    int released;
} hook_record;

static tc_status record_hook(void *user, tc_tensor *leaf) {
    hook_record *record = user;
    record->calls++;
    int64_t zero = 0;
    record->grad_at_call = 0;
    tc_get(tc_tensor_grad(leaf), &zero, &record->grad_at_call);
    if (record->fail) return tc_set_error(tc_tensor_context(leaf), TC_ERROR_CALLBACK, "the hook says no");
    return TC_OK;
}

static void release_record(void *user) { ((hook_record *)user)->released++; }

static void test_hooks(void) {
    tc_context *ctx = tc_context_new();
    tc_tensor *w = NULL, *unused = NULL;
    tc_full(ctx, TC_FLOAT64, 1, (int64_t[]){3}, 2.0, &w);
    tc_full(ctx, TC_FLOAT64, 1, (int64_t[]){3}, 1.0, &unused);
    tc_tensor_set_requires_grad(w, true);
    tc_tensor_set_requires_grad(unused, true);
    hook_record used_record = {0}, unused_record = {0};
    CHECK(tc_tensor_set_grad_hook(w, record_hook, release_record, &used_record) == TC_OK, "set a hook");
    CHECK(tc_tensor_set_grad_hook(unused, record_hook, release_record, &unused_record) == TC_OK, "set another");
    CHECK(tc_tensor_has_grad_hook(w), "w has a hook");

    /* loss = sum(w * w) + sum(w * 3): w feeds three inputs of two nodes; its
     * gradient 2w + 3 = 7 is final only after both have run */
    tc_tensor *square = NULL, *scaled = NULL, *sum_a = NULL, *sum_b = NULL, *loss = NULL;
    tc_binary(TC_MUL, w, w, &square);
    tc_binary_scalar(TC_MUL, w, 3.0, false, &scaled);
    tc_reduce(TC_REDUCE_SUM, square, 0, NULL, false, &sum_a);
    tc_reduce(TC_REDUCE_SUM, scaled, 0, NULL, false, &sum_b);
    tc_binary(TC_ADD, sum_a, sum_b, &loss);
    CHECK(tc_backward(loss, NULL, true) == TC_OK, "backward: %s", tc_last_error(ctx));
    CHECK(used_record.calls == 1, "the hook ran once, got %d", used_record.calls);
    CHECK(used_record.grad_at_call == 7.0, "with the final gradient 2w + 3 = 7, got %g", used_record.grad_at_call);
    CHECK(unused_record.calls == 0, "a leaf the backward does not reach gets no call");
    CHECK(tc_backward(loss, NULL, false) == TC_OK, "a second backward: %s", tc_last_error(ctx));
    CHECK(used_record.calls == 2 && used_record.grad_at_call == 14.0,
          "once more, with the accumulated gradient: %d calls, %g", used_record.calls, used_record.grad_at_call);

    /* a leaf as the root: its gradient is the seed */
    tc_tensor *scalar = NULL;
    tc_full(ctx, TC_FLOAT64, 0, NULL, 5.0, &scalar);
    tc_tensor_set_requires_grad(scalar, true);
    hook_record root_record = {0};
    tc_tensor_set_grad_hook(scalar, record_hook, NULL, &root_record);
    CHECK(tc_backward(scalar, NULL, false) == TC_OK && root_record.calls == 1 && root_record.grad_at_call == 1.0,
          "a leaf as the root: %d calls, %g", root_record.calls, root_record.grad_at_call);

    /* a failing hook stops the backward with its message */
    tc_tensor *again = NULL;
    tc_binary(TC_MUL, w, w, &again);
    tc_tensor *again_sum = NULL;
    tc_reduce(TC_REDUCE_SUM, again, 0, NULL, false, &again_sum);
    used_record.fail = true;
    CHECK(tc_backward(again_sum, NULL, false) == TC_ERROR_CALLBACK && has(tc_last_error(ctx), "the hook says no"),
          "a failing hook: %s", tc_last_error(ctx));
    CHECK(tc_is_grad_enabled(ctx), "grad mode is back on after the failed backward");
    used_record.fail = false;

    /* moving and replacing */
    tc_tensor *replacement = NULL;
    tc_zeros(ctx, TC_FLOAT64, 1, (int64_t[]){3}, &replacement);
    tc_tensor_move_grad_hook(w, replacement);
    CHECK(!tc_tensor_has_grad_hook(w) && tc_tensor_has_grad_hook(replacement), "the hook moved");
    CHECK(tc_tensor_set_grad_hook(replacement, NULL, NULL, NULL) == TC_OK && used_record.released == 1,
          "removing a hook releases it once");
    CHECK(tc_tensor_set_grad_hook(square, record_hook, NULL, NULL) == TC_ERROR_STATE &&
              has(tc_last_error(ctx), "not a leaf"),
          "an op's result takes no hook: %s", tc_last_error(ctx));

    tc_tensor *all[] = {square, scaled, sum_a, sum_b, loss, again, again_sum, replacement, scalar, w};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tc_tensor_release(all[i]);
    CHECK(unused_record.released == 0, "a hook lives as long as its tensor");
    tc_tensor_release(unused);
    CHECK(unused_record.released == 1, "freeing the tensor releases its hook");
    tc_context_free(ctx);
}

/* ---- under mpirun: two contexts of one process, used on two threads at once ---- */

typedef struct mpi_job {
    tc_context *ctx;
    float expected;
    int ok;
} mpi_job;

static void *mpi_thread_job(void *argument) {
    mpi_job *job = argument;
    int rank = tc_distributed_rank(job->ctx);
    job->ok = 1;
    for (int i = 0; i < 100 && job->ok; i++) {
        tc_tensor *t = NULL;
        job->ok = tc_full(job->ctx, TC_FLOAT32, 1, (int64_t[]){1000}, rank + 1 + job->expected, &t) == TC_OK &&
                  tc_all_reduce(t, TC_COLLECTIVE_SUM, NULL) == TC_OK;
        int world = tc_distributed_world_size(job->ctx);
        float sum = (float)(world * (world + 1) / 2) + job->expected * (float)world;
        if (job->ok && at(t, 999) != sum) job->ok = 0;
        tc_tensor_release(t);
    }
    return NULL;
}

/* Contexts join in the same order on every process (communicators are
 * made collectively); their collectives then run on two threads at once. */
static void test_mpi_threads(const char *library) {
    tc_distributed_options options = {.use_mpi = true, .mpi_library = library, .timeout = 60};
    mpi_job jobs[2] = {{tc_context_new(), 0, 0}, {tc_context_new(), 100, 0}};
    for (int i = 0; i < 2; i++)
        CHECK(tc_distributed_init(jobs[i].ctx, &options) == TC_OK, "context %d joins: %s", i,
              tc_last_error(jobs[i].ctx));
    CHECK(strcmp(tc_distributed_backend(jobs[0].ctx), "mpi") == 0, "over MPI");
    CHECK(tc_distributed_world_size(jobs[0].ctx) >= 2, "several ranks (run under mpirun -np 2 or more)");
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) pthread_create(&threads[i], NULL, mpi_thread_job, &jobs[i]);
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    CHECK(jobs[0].ok && jobs[1].ok, "both contexts' sums on two threads at once: %d %d", jobs[0].ok, jobs[1].ok);
    for (int i = 0; i < 2; i++) {
        CHECK(tc_distributed_shutdown(jobs[i].ctx) == TC_OK, "context %d leaves: %s", i, tc_last_error(jobs[i].ctx));
        tc_context_free(jobs[i].ctx);
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--mpi") == 0) {
        test_mpi_threads(argv[2]);
        printf("distributed_test --mpi: %d passed, %d failed\n", passed, failed);
        return failed ? 1 : 0;
    }
    test_world_of_one();
    test_threads();
    test_hooks();
    printf("distributed_test: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
