/*
 * parallel_test.c: the context's worker pool and the kernels split over it.
 * cpu_parallel_for covers every index once, nests inline and survives
 * thread-count changes; destroying a context joins its workers; the block
 * cache hands freed storage back, and a default context gives large blocks
 * back to the system; and every parallel kernel gives the same
 * bits with 1, 2 and 3 threads, and agrees with a double-precision
 * reference computed here.
 */
#include "block_cache.h"
#include "cpu/cpu_iterate.h"
#include "internal.h"

#include <dirent.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int passed = 0, failed = 0;

#define CHECK(condition, ...)                                                                                      \
    do {                                                                                                           \
        if (!(condition)) {                                                                                        \
            printf("  line %d: ", __LINE__);                                                                       \
            printf(__VA_ARGS__);                                                                                   \
            printf("\n");                                                                                          \
            return false;                                                                                          \
        }                                                                                                          \
    } while (0)

#define TRY(expression) CHECK((expression) == TC_OK, "%s: %s", #expression, tc_last_error(ctx))

static void run(const char *name, bool (*test)(void)) {
    bool ok = test();
    printf("%s %s\n", ok ? "pass" : "FAIL", name);
    if (ok) passed++;
    else failed++;
}

/* ---- the pool ---- */

#define COVER_COUNT 100003

typedef struct cover_state {
    atomic_int hits[COVER_COUNT];
    atomic_int chunks;
    tc_context *ctx;
    atomic_int nested_chunks;
} cover_state;

static void cover_body(int64_t begin, int64_t end, void *argument) {
    cover_state *state = argument;
    atomic_fetch_add(&state->chunks, 1);
    for (int64_t i = begin; i < end; i++) atomic_fetch_add(&state->hits[i], 1);
}

static void nested_inner(int64_t begin, int64_t end, void *argument) {
    (void)begin;
    (void)end;
    atomic_fetch_add(&((cover_state *)argument)->nested_chunks, 1);
}

static void nested_body(int64_t begin, int64_t end, void *argument) {
    cover_state *state = argument;
    cover_body(begin, end, argument);
    cpu_parallel_for(state->ctx, 1000000, 1, nested_inner, argument); /* runs inline: one chunk */
}

static bool test_parallel_for_covers_once(void) {
    static cover_state state;
    tc_context *ctx = tc_context_new();
    CHECK(ctx, "no context");
    state.ctx = ctx;
    const int threads[] = {1, 2, 3, 5, 2};
    const int64_t counts[] = {0, 1, 15, 16, 17, 1000, COVER_COUNT};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        tc_set_num_threads(ctx, threads[t]);
        CHECK(tc_num_threads(ctx) == threads[t], "num_threads %d", tc_num_threads(ctx));
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++)
            for (int64_t grain = 1; grain <= 4096; grain *= 64) {
                memset(&state.hits, 0, sizeof state.hits);
                atomic_store(&state.chunks, 0);
                cpu_parallel_for(ctx, counts[c], grain, cover_body, &state);
                for (int64_t i = 0; i < counts[c]; i++)
                    CHECK(state.hits[i] == 1, "threads %d count %lld grain %lld: index %lld hit %d times", threads[t],
                          (long long)counts[c], (long long)grain, (long long)i, state.hits[i]);
                int expected = cpu_parallel_chunks(ctx, counts[c], grain);
                CHECK(counts[c] == 0 || atomic_load(&state.chunks) <= expected, "%d chunks, expected at most %d",
                      atomic_load(&state.chunks), expected);
                CHECK(expected <= threads[t] && (counts[c] < 2 * grain || threads[t] == 1 || expected > 1),
                      "threads %d count %lld grain %lld: %d chunks", threads[t], (long long)counts[c],
                      (long long)grain, expected);
            }
    }
    tc_set_num_threads(ctx, 3);
    atomic_store(&state.nested_chunks, 0);
    atomic_store(&state.chunks, 0);
    cpu_parallel_for(ctx, 3000, 1, nested_body, &state);
    CHECK(atomic_load(&state.nested_chunks) == atomic_load(&state.chunks),
          "nested calls: %d inner chunks for %d outer chunks (want one each)", atomic_load(&state.nested_chunks),
          atomic_load(&state.chunks));
    tc_context_free(ctx);
    return true;
}

static int thread_count(void) {
    DIR *dir = opendir("/proc/self/task");
    if (!dir) return -1;
    int count = 0;
    for (struct dirent *entry; (entry = readdir(dir)) != NULL;)
        if (entry->d_name[0] != '.') count++;
    closedir(dir);
    return count;
}

static void nothing(int64_t begin, int64_t end, void *argument) {
    (void)begin;
    (void)end;
    (void)argument;
}

/* The thread count once it has held still for 50 ms (at most 2 s): a first
 * context sets the BLAS's thread count, whose pool may retire a thread a
 * moment later. */
static int settled_thread_count(void) {
    int count = thread_count();
    for (int tries = 0; tries < 40; tries++) {
        struct timespec pause = {0, 50 * 1000 * 1000};
        nanosleep(&pause, NULL);
        int again = thread_count();
        if (again == count) break;
        count = again;
    }
    return count;
}

static bool test_workers_start_lazily_and_join(void) {
    tc_context_free(tc_context_new());
    int before = settled_thread_count();
    if (before < 0) return true; /* no /proc here */
    tc_context *a = tc_context_new(), *b = tc_context_new();
    CHECK(a && b, "no context");
    tc_set_num_threads(a, 4);
    tc_set_num_threads(b, 3);
    CHECK(thread_count() == before, "workers started before any parallel work: %d -> %d", before, thread_count());
    cpu_parallel_for(a, 1 << 20, 1, nothing, NULL);
    cpu_parallel_for(b, 1 << 20, 1, nothing, NULL);
    CHECK(thread_count() == before + 3 + 2, "two pools of 4 and 3 threads: %d -> %d threads", before,
          thread_count());
    tc_set_num_threads(a, 2);
    CHECK(thread_count() == before + 2, "changing the count retires the pool: %d", thread_count());
    tc_context_free(a);
    tc_context_free(b);
    CHECK(thread_count() == before, "workers left after the contexts were freed: %d -> %d", before,
          thread_count());
    return true;
}

/* ---- the block cache ---- */

static bool test_block_cache_reuses_storage(void) {
    tc_context *ctx = tc_context_new();
    CHECK(ctx, "no context");
    tc_tensor *a = NULL, *b = NULL;
    TRY(tc_zeros(ctx, TC_FLOAT32, 1, (int64_t[]){300000}, &a));
    void *first = tc_tensor_data(a);
    CHECK(tc_memory_in_use(ctx) == 1200000, "in use %zu", tc_memory_in_use(ctx));
    tc_tensor_release(a);
    CHECK(tc_memory_in_use(ctx) == 0, "in use after release %zu", tc_memory_in_use(ctx));
    TRY(tc_zeros(ctx, TC_FLOAT32, 1, (int64_t[]){299990}, &b)); /* same size class */
#ifndef __SANITIZE_ADDRESS__ /* no cache under AddressSanitizer (it must see every free) */
    CHECK(tc_tensor_data(b) == first, "a freed block of the same class was not reused");
#else
    (void)first;
#endif
    double value = -1;
    TRY(tc_get(b, (int64_t[]){299989}, &value));
    CHECK(value == 0, "reused block not zeroed by zeros(): %g", value);
    CHECK(tc_memory_in_use(ctx) == 1199960, "in use counts the asked bytes: %zu", tc_memory_in_use(ctx));
    tc_tensor_release(b);
    /* The budget still counts what is in use, not what is cached. */
    tc_set_memory_budget(ctx, 1300000);
    TRY(tc_zeros(ctx, TC_FLOAT32, 1, (int64_t[]){320000}, &a));
    tc_tensor_release(a);
    tc_context_free(ctx);
    return true;
}

/* A product split over columns packs each chunk's columns into one kept
 * block sized for the chunk: counted as in use during a product (under the
 * budget), as kept for reuse between them, freed by
 * tc_memory_release_cached. */
static bool test_gemm_packing_space(void) {
    tc_context *ctx = tc_context_new();
    CHECK(ctx, "no context");
    tc_set_num_threads(ctx, 2);
    tc_tensor *a = NULL, *w = NULL, *c = NULL;
    TRY(tc_zeros(ctx, TC_FLOAT32, 2, (int64_t[]){64, 128}, &a));
    TRY(tc_zeros(ctx, TC_FLOAT32, 2, (int64_t[]){128, 512}, &w));
    size_t operands = tc_memory_in_use(ctx);
    TRY(tc_matmul(a, w, &c));
    size_t result = 64 * 512 * sizeof(float);
    CHECK(tc_memory_in_use(ctx) == operands + result, "in use after the product: %zu", tc_memory_in_use(ctx));
    if (ctx->native_sgemm) {
        /* two chunks of 256 columns, each packing 256 x 128 floats */
        CHECK(ctx->gemm_scratch_bytes == 2 * 256 * 128 * sizeof(float), "packing space %zu", ctx->gemm_scratch_bytes);
        CHECK(tc_memory_cached(ctx) >= ctx->gemm_scratch_bytes, "kept %zu", tc_memory_cached(ctx));
        tc_tensor_release(c);
        c = NULL;
        tc_set_memory_budget(ctx, operands + result + 1000);
        CHECK(tc_matmul(a, w, &c) == TC_ERROR_MEMORY, "the packing space passed the budget");
        CHECK(strstr(tc_last_error(ctx), "out of memory budget: 262144 bytes asked"), "message: %s",
              tc_last_error(ctx));
        CHECK(tc_memory_in_use(ctx) == operands, "in use after the refused product: %zu", tc_memory_in_use(ctx));
        tc_set_memory_budget(ctx, 0);
    }
    tc_tensor_release(c);
    tc_memory_release_cached(ctx);
    CHECK(tc_memory_cached(ctx) == 0 && ctx->gemm_scratch_bytes == 0, "kept after the release: %zu",
          tc_memory_cached(ctx));
    tc_tensor_release(a);
    tc_tensor_release(w);
    tc_context_free(ctx);
    return true;
}

#ifndef __SANITIZE_ADDRESS__ /* its shadow memory says nothing about ours */
/* Resident memory in bytes (VmRSS), or -1 when /proc cannot be read. */
static long long resident_bytes(void) {
    FILE *file = fopen("/proc/self/status", "r");
    if (!file) return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof line, file))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtoll(line + 6, NULL, 10);
    fclose(file);
    return kb < 0 ? -1 : kb * 1024;
}

/* A C host's context has the engine's allocator: large blocks are mapped
 * and, past the cache's limit, given back to the system. Cycling through
 * tensors of 1 to 24 MiB (at most 48 MiB in use) stays within the cache's
 * 64 MiB of that; through aligned_alloc, glibc kept the freed blocks in its
 * heap and resident memory grew by 180-220 MiB. */
static bool test_default_context_gives_memory_back(void) {
    tc_context *ctx = tc_context_new();
    CHECK(ctx, "no context");
    long long start = resident_bytes(), peak = start;
    if (start < 0) {
        tc_context_free(ctx);
        return true;
    }
    for (int i = 0; i < 48; i++) {
        int64_t n = (int64_t)262144 * (1 + (i * 7919) % 24);
        tc_tensor *a = NULL, *b = NULL;
        TRY(tc_full(ctx, TC_FLOAT32, 1, &n, 1.5, &a));
        TRY(tc_binary_scalar(TC_MUL, a, 2.0, false, &b));
        tc_tensor_release(a);
        tc_tensor_release(b);
        long long now = resident_bytes();
        if (now > peak) peak = now;
    }
    tc_context_free(ctx);
    CHECK(peak - start < 100ll << 20, "resident memory grew by %.1f MiB", (double)(peak - start) / (1 << 20));
    return true;
}
#else
static bool test_default_context_gives_memory_back(void) { return true; }
#endif

static int released_blocks = 0;

static void *plain_allocate(void *user, size_t bytes, size_t alignment) {
    (void)user;
    return aligned_alloc(alignment, bytes);
}

static void counted_release(void *user, void *pointer, size_t bytes) {
    (void)user;
    (void)bytes;
    released_blocks++;
    free(pointer);
}

static void sleep_seconds(double seconds) {
    struct timespec pause = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&pause, NULL);
}

static bool test_block_cache_decays(void) {
    const tc_allocator allocator = {plain_allocate, counted_release, NULL};
    tc_block_cache *cache = tc_block_cache_new();
    CHECK(cache, "no cache");
    size_t bytes = tc_block_cache_rounded(100000);
    void *idle = plain_allocate(NULL, bytes, 64), *busy = plain_allocate(NULL, bytes, 64);
    tc_block_cache_decay(cache, &allocator); /* starts the first period */
    CHECK(tc_block_cache_put(cache, idle, 100000, 1 << 20), "not cached");
    CHECK(tc_block_cache_put(cache, busy, 100000, 1 << 20), "not cached");
    released_blocks = 0;
    sleep_seconds(TC_BLOCK_CACHE_DECAY_SECONDS + 0.2);
    /* Second period: one block is taken and given back (used), one idles. */
    tc_block_cache_decay(cache, &allocator);
    void *taken = tc_block_cache_take(cache, 100000);
    CHECK(taken == busy, "the newest block comes first");
    CHECK(tc_block_cache_put(cache, taken, 100000, 1 << 20), "not cached");
    CHECK(released_blocks == 0, "released %d blocks after one period", released_blocks);
    sleep_seconds(TC_BLOCK_CACHE_DECAY_SECONDS + 0.2);
    tc_block_cache_decay(cache, &allocator);
    CHECK(released_blocks == 1, "released %d blocks; want the idle one", released_blocks);
    CHECK(tc_block_cache_bytes(cache) == bytes, "cache holds %zu bytes", tc_block_cache_bytes(cache));
    /* The used block sat about one period before it was taken: the next period is twice that. */
    int64_t period = tc_block_cache_period_seconds(cache);
    CHECK(period >= 2 * TC_BLOCK_CACHE_DECAY_SECONDS && period <= 2 * TC_BLOCK_CACHE_DECAY_SECONDS + 2,
          "the next period lasts %lld s", (long long)period);
    CHECK(tc_block_cache_take(cache, 100000) == busy, "the used block was not kept");
    free(busy);
    tc_block_cache_free(cache, &allocator);
    return true;
}

/* ---- kernels: same bits for any thread count, and right ---- */

#define ROWS 300
#define COLS 517
#define IDS 1000
#define RANDOM_COUNT 100003
#define MAX_RESULTS 48

typedef struct results {
    int count;
    int64_t sizes[MAX_RESULTS];
    double *values[MAX_RESULTS];
    const char *names[MAX_RESULTS];
} results;

static float input_value(int64_t i) {
    uint64_t state = (uint64_t)i * 6364136223846793005ull + 1442695040888963407ull;
    state ^= state >> 29;
    state *= 0xbf58476d1ce4e5b9ull;
    state ^= state >> 32;
    return (float)((double)(state >> 11) / 9007199254740992.0 * 16.0 - 8.0); /* [-8, 8) */
}

static bool keep(tc_context *ctx, results *r, const char *name, tc_tensor *t) {
    CHECK(t != NULL, "%s: no result: %s", name, tc_last_error(ctx));
    CHECK(r->count < MAX_RESULTS, "too many results");
    int64_t n = tc_tensor_numel(t);
    double *values = malloc((size_t)n * sizeof(double));
    CHECK(values, "out of memory");
    CHECK(tc_copy_to_doubles(t, values, n) == TC_OK, "%s: %s", name, tc_last_error(ctx));
    r->names[r->count] = name;
    r->sizes[r->count] = n;
    r->values[r->count++] = values;
    tc_tensor_release(t);
    return true;
}

static const tc_unary_op unary_ops[] = {TC_EXP, TC_TANH, TC_SIGMOID, TC_GELU_TANH, TC_SILU, TC_GELU, TC_RELU};
#define UNARY_COUNT (sizeof unary_ops / sizeof unary_ops[0])

/* Runs every parallel kernel on fixed inputs with `threads` threads. */
static bool run_kernels(int threads, results *r, float *x_values) {
    tc_context *ctx = tc_context_new();
    CHECK(ctx, "no context");
    tc_set_num_threads(ctx, threads);
    tc_manual_seed(ctx, 1234);
    for (int64_t i = 0; i < ROWS * COLS; i++) x_values[i] = input_value(i);
    int64_t ids[IDS];
    for (int i = 0; i < IDS; i++) ids[i] = (i * 7919) % 97; /* repeats */
    tc_tensor *x = NULL, *xt = NULL, *bias = NULL, *index = NULL, *t = NULL, *u = NULL, *w = NULL;
    TRY(tc_from_data(ctx, TC_FLOAT32, 2, (int64_t[]){ROWS, COLS}, x_values, TC_FLOAT32, &x));
    TRY(tc_transpose(x, 0, 1, &xt));
    TRY(tc_from_data(ctx, TC_FLOAT32, 1, (int64_t[]){COLS}, x_values + 1000, TC_FLOAT32, &bias));
    TRY(tc_from_data(ctx, TC_INT64, 1, (int64_t[]){IDS}, ids, TC_INT64, &index));
    for (size_t k = 0; k < UNARY_COUNT; k++) {
        TRY(tc_unary(unary_ops[k], x, &t));
        if (!keep(ctx, r, tc_unary_op_name(unary_ops[k]), t)) return false;
        TRY(tc_unary(unary_ops[k], xt, &t)); /* strided input */
        if (!keep(ctx, r, "strided unary", t)) return false;
        /* Gradient of sum(op(x)): op'(x). */
        tc_tensor *leaf = NULL, *y = NULL, *total = NULL;
        TRY(tc_detach(x, &leaf));
        TRY(tc_tensor_set_requires_grad(leaf, true));
        TRY(tc_unary(unary_ops[k], leaf, &y));
        TRY(tc_reduce(TC_REDUCE_SUM, y, 0, NULL, false, &total));
        TRY(tc_backward(total, NULL, false));
        tc_tensor *grad = tc_tensor_grad(leaf);
        tc_tensor_retain(grad);
        if (!keep(ctx, r, "unary gradient", grad)) return false;
        tc_tensor_release(total);
        tc_tensor_release(y);
        tc_tensor_release(leaf);
    }
    TRY(tc_binary(TC_ADD, x, bias, &t));
    if (!keep(ctx, r, "add broadcast", t)) return false;
    TRY(tc_binary(TC_MUL, xt, xt, &t));
    if (!keep(ctx, r, "mul strided", t)) return false;
    TRY(tc_binary_scalar(TC_DIV, x, 3.0, false, &t));
    if (!keep(ctx, r, "div scalar", t)) return false;
    TRY(tc_binary(TC_MAXIMUM, x, bias, &t));
    if (!keep(ctx, r, "maximum", t)) return false;
    TRY(tc_contiguous(xt, &t));
    if (!keep(ctx, r, "copy strided", t)) return false;
    TRY(tc_to_dtype(x, TC_FLOAT64, &t));
    if (!keep(ctx, r, "convert", t)) return false;
    TRY(tc_clamp(x, -1.0, 2.0, &t));
    if (!keep(ctx, r, "clamp", t)) return false;
    TRY(tc_reduce(TC_REDUCE_SUM, x, 1, (int[]){0}, false, &t));
    if (!keep(ctx, r, "sum over rows", t)) return false;
    TRY(tc_reduce(TC_REDUCE_SUM, x, 1, (int[]){1}, false, &t));
    if (!keep(ctx, r, "sum over columns", t)) return false;
    TRY(tc_reduce(TC_REDUCE_MEAN, xt, 1, (int[]){0}, false, &t));
    if (!keep(ctx, r, "mean strided", t)) return false;
    TRY(tc_reduce(TC_REDUCE_MAX, x, 1, (int[]){1}, false, &t));
    if (!keep(ctx, r, "max", t)) return false;
    TRY(tc_reduce(TC_REDUCE_SUM, x, 0, NULL, false, &t));
    if (!keep(ctx, r, "sum all", t)) return false;
    TRY(tc_softmax(x, -1, &t));
    if (!keep(ctx, r, "softmax last dim", t)) return false;
    TRY(tc_log_softmax(x, 0, &t));
    if (!keep(ctx, r, "log_softmax first dim", t)) return false;
    /* Embedding forward and backward (index_add with repeated ids). */
    TRY(tc_detach(x, &w));
    TRY(tc_tensor_set_requires_grad(w, true));
    TRY(tc_embedding(w, index, &t));
    TRY(tc_unary(TC_SQUARE, t, &u));
    tc_tensor *total = NULL;
    TRY(tc_reduce(TC_REDUCE_SUM, u, 0, NULL, false, &total));
    TRY(tc_backward(total, NULL, false));
    if (!keep(ctx, r, "embedding", t)) return false;
    tc_tensor *grad = tc_tensor_grad(w);
    tc_tensor_retain(grad);
    if (!keep(ctx, r, "embedding gradient", grad)) return false;
    tc_tensor_release(u);
    tc_tensor_release(total);
    tc_tensor_release(w);
    TRY(tc_randn(ctx, TC_FLOAT32, 1, (int64_t[]){RANDOM_COUNT}, &t));
    if (!keep(ctx, r, "randn", t)) return false;
    TRY(tc_rand(ctx, TC_FLOAT64, 1, (int64_t[]){RANDOM_COUNT}, &t));
    if (!keep(ctx, r, "rand", t)) return false;
    TRY(tc_dropout(x, 0.3, true, &t));
    if (!keep(ctx, r, "dropout", t)) return false;
    TRY(tc_matmul(x, xt, &t));
    if (!keep(ctx, r, "matmul", t)) return false;
    tc_tensor_release(x);
    tc_tensor_release(xt);
    tc_tensor_release(bias);
    tc_tensor_release(index);
    tc_context_free(ctx);
    return true;
}

static double unary_reference(tc_unary_op op, double x) {
    switch (op) {
    case TC_EXP: return exp(x);
    case TC_TANH: return tanh(x);
    case TC_SIGMOID: return 1 / (1 + exp(-x));
    case TC_GELU_TANH: return x / (1 + exp(-2 * 0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case TC_SILU: return x / (1 + exp(-x));
    case TC_GELU: return 0.5 * x * erfc(-x / sqrt(2.0));
    case TC_RELU: return x > 0 ? x : 0;
    default: return NAN;
    }
}

static double unary_derivative(tc_unary_op op, double x) {
    double h = 1e-6 * (fabs(x) > 1 ? fabs(x) : 1);
    return (unary_reference(op, x + h) - unary_reference(op, x - h)) / (2 * h);
}

static bool close_to(double got, double want, double relative, double absolute) {
    return fabs(got - want) <= absolute + relative * fabs(want);
}

static bool test_kernels_same_bits_for_any_thread_count(void) {
    static float x[ROWS * COLS];
    results runs[3];
    memset(runs, 0, sizeof runs);
    for (int t = 0; t < 3; t++)
        if (!run_kernels(t + 1, &runs[t], x)) return false;
    for (int t = 1; t < 3; t++) {
        CHECK(runs[t].count == runs[0].count, "result counts differ");
        for (int k = 0; k < runs[0].count; k++)
            CHECK(runs[t].sizes[k] == runs[0].sizes[k] &&
                      memcmp(runs[t].values[k], runs[0].values[k], (size_t)runs[0].sizes[k] * sizeof(double)) == 0,
                  "%s: %d threads differ from 1 thread", runs[0].names[k], t + 1);
    }
    /* References, from the 1-thread run. */
    const results *r = &runs[0];
    int k = 0;
    for (size_t op = 0; op < UNARY_COUNT; op++, k += 3) {
        for (int64_t i = 0; i < ROWS * COLS; i++) {
            double want = unary_reference(unary_ops[op], x[i]);
            /* gelu_tanh: e^2u turns the float rounding of 2u into |2u| ulps (see cpu_simd.h). */
            double condition = unary_ops[op] == TC_GELU_TANH
                                   ? 1 + fabs(2 * 0.7978845608028654 * (x[i] + 0.044715 * x[i] * x[i] * x[i]))
                                   : 1;
            CHECK(close_to(r->values[k][i], want, 4e-7 * condition, 1e-37), "%s(%.9g) = %.9g, want %.9g", r->names[k],
                  x[i], r->values[k][i], want);
            int64_t row = i / COLS, col = i % COLS; /* xt[col][row] */
            CHECK(r->values[k + 1][col * ROWS + row] == r->values[k][i], "%s: strided input differs at %lld",
                  r->names[k], (long long)i);
            double slope = unary_derivative(unary_ops[op], x[i]);
            if (unary_ops[op] == TC_RELU && fabs(x[i]) < 1e-5) continue; /* the kink */
            CHECK(close_to(r->values[k + 2][i], slope, 1e-4, 1e-6), "%s'(%.9g) = %.9g, want %.9g", r->names[k],
                  x[i], r->values[k + 2][i], slope);
        }
    }
    const float *bias = x + 1000;
    for (int64_t i = 0; i < ROWS * COLS; i++) {
        int64_t row = i / COLS, col = i % COLS;
        CHECK(r->values[k][i] == (double)(x[i] + bias[col]), "add at %lld", (long long)i);
        CHECK(r->values[k + 1][col * ROWS + row] == (double)(x[i] * x[i]), "mul at %lld", (long long)i);
        CHECK(r->values[k + 2][i] == (double)(x[i] / 3.0f), "div at %lld", (long long)i);
        CHECK(r->values[k + 3][i] == (double)(x[i] > bias[col] ? x[i] : bias[col]), "maximum at %lld",
              (long long)i);
        CHECK(r->values[k + 4][col * ROWS + row] == (double)x[i], "copy at %lld", (long long)i);
        CHECK(r->values[k + 5][i] == (double)x[i], "convert at %lld", (long long)i);
        CHECK(r->values[k + 6][i] == (x[i] < -1 ? -1 : x[i] > 2 ? 2 : (double)x[i]), "clamp at %lld", (long long)i);
    }
    k += 7;
    double total = 0;
    for (int64_t col = 0; col < COLS; col++) {
        double sum = 0;
        for (int64_t row = 0; row < ROWS; row++) sum += x[row * COLS + col];
        CHECK(close_to(r->values[k][col], sum, 1e-6, 1e-5), "sum over rows, column %lld: %g vs %g", (long long)col,
              r->values[k][col], sum);
    }
    for (int64_t row = 0; row < ROWS; row++) {
        double sum = 0, max = -INFINITY;
        for (int64_t col = 0; col < COLS; col++) {
            sum += x[row * COLS + col];
            if (x[row * COLS + col] > max) max = x[row * COLS + col];
        }
        total += sum;
        CHECK(close_to(r->values[k + 1][row], sum, 1e-6, 1e-5), "sum over columns, row %lld", (long long)row);
        CHECK(close_to(r->values[k + 2][row], sum / COLS, 1e-6, 1e-7), "mean of strided rows, row %lld",
              (long long)row);
        CHECK(r->values[k + 3][row] == max, "max of row %lld", (long long)row);
        double normaliser = 0;
        for (int64_t col = 0; col < COLS; col++) normaliser += exp(x[row * COLS + col] - max);
        for (int64_t col = 0; col < COLS; col++) {
            double want = exp(x[row * COLS + col] - max) / normaliser;
            CHECK(close_to(r->values[k + 5][row * COLS + col], want, 1e-6, 1e-12), "softmax at %lld, %lld",
                  (long long)row, (long long)col);
        }
    }
    CHECK(close_to(r->values[k + 4][0], total, 1e-6, 1e-3), "sum of all: %g vs %g", r->values[k + 4][0], total);
    for (int64_t col = 0; col < COLS; col++) {
        double max = -INFINITY, normaliser = 0;
        for (int64_t row = 0; row < ROWS; row++)
            if (x[row * COLS + col] > max) max = x[row * COLS + col];
        for (int64_t row = 0; row < ROWS; row++) normaliser += exp(x[row * COLS + col] - max);
        for (int64_t row = 0; row < ROWS; row++) {
            double want = x[row * COLS + col] - max - log(normaliser);
            CHECK(close_to(r->values[k + 6][row * COLS + col], want, 1e-6, 1e-5), "log_softmax at %lld, %lld",
                  (long long)row, (long long)col);
        }
    }
    k += 7;
    static double expected_grad[ROWS * COLS];
    memset(expected_grad, 0, sizeof expected_grad);
    for (int j = 0; j < IDS; j++) {
        int64_t id = (j * 7919) % 97;
        for (int64_t col = 0; col < COLS; col++) {
            CHECK(r->values[k][j * COLS + col] == x[id * COLS + col], "embedding row %d", j);
            expected_grad[id * COLS + col] += 2.0 * x[id * COLS + col];
        }
    }
    for (int64_t i = 0; i < ROWS * COLS; i++)
        CHECK(close_to(r->values[k + 1][i], expected_grad[i], 1e-5, 1e-4), "embedding gradient at %lld: %g vs %g",
              (long long)i, r->values[k + 1][i], expected_grad[i]);
    k += 2;
    double mean = 0, squares = 0;
    for (int64_t i = 0; i < RANDOM_COUNT; i++) {
        mean += r->values[k][i];
        squares += r->values[k][i] * r->values[k][i];
    }
    mean /= RANDOM_COUNT;
    CHECK(fabs(mean) < 0.02 && fabs(squares / RANDOM_COUNT - 1) < 0.03, "randn mean %g, second moment %g", mean,
          squares / RANDOM_COUNT);
    mean = 0;
    for (int64_t i = 0; i < RANDOM_COUNT; i++) mean += r->values[k + 1][i];
    CHECK(fabs(mean / RANDOM_COUNT - 0.5) < 0.01, "rand mean %g", mean / RANDOM_COUNT);
    int64_t dropped = 0;
    for (int64_t i = 0; i < ROWS * COLS; i++) {
        double value = r->values[k + 2][i];
        if (value == 0) dropped++;
        else CHECK(value == (double)(x[i] * (float)(1.0 / 0.7)), "dropout kept value at %lld", (long long)i);
    }
    CHECK(fabs((double)dropped / (ROWS * COLS) - 0.3) < 0.01, "dropout dropped %lld", (long long)dropped);
    k += 3;
    for (int64_t row = 0; row < ROWS; row += 37)
        for (int64_t other = 0; other < ROWS; other += 41) {
            double dot = 0;
            for (int64_t col = 0; col < COLS; col++) dot += (double)x[row * COLS + col] * x[other * COLS + col];
            CHECK(close_to(r->values[k][row * ROWS + other], dot, 1e-5, 1e-3), "matmul at %lld, %lld",
                  (long long)row, (long long)other);
        }
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < runs[t].count; i++) free(runs[t].values[i]);
    return true;
}

int main(void) {
    run("cpu_parallel_for covers every index once, nests inline", test_parallel_for_covers_once);
    run("workers start lazily and are joined", test_workers_start_lazily_and_join);
    run("the block cache reuses freed storage", test_block_cache_reuses_storage);
    run("the block cache releases blocks left unused for a period", test_block_cache_decays);
    run("GEMM packing space is sized for a chunk, kept between products, released", test_gemm_packing_space);
    run("a default context gives large blocks back to the system", test_default_context_gives_memory_back);
    run("kernels give the same bits for 1, 2, 3 threads and match references",
        test_kernels_same_bits_for_any_thread_count);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
