/*
 * shapes.c (fuzz target): the engine's shape arithmetic through the C API.
 *
 * The input is a program: each step is an opcode byte and its operands,
 * read from the following bytes (0 once the input runs out). Tensors live in
 * 8 slots, 4 of them filled at the start (float32 [2, 3, 4], int64 [5]
 * 0..4, a 0-dim float64, float32 [0, 3]); a step reads its operands from
 * slots and writes its result into one. Sizes and positions are mostly small
 * (0..6, -6..6) and otherwise drawn from the edges: 2^31 - 1, 2^31, 2^32,
 * 2^62, 2^63 - 1, INT64_MIN, -1, ... ; ndim runs from -1 to 9.
 *
 * Covered: creation (empty, zeros, ones, full, rand, randn, arange with
 * odd bounds and steps) with any shape; tc_from_data (from each source
 * dtype); reshape and view (with -1); expand; narrow (huge start and
 * length); select; permute; transpose; squeeze; unsqueeze; flatten;
 * tc_reduce (every op, any dims, keepdim); cat and stack of 0 to 4
 * tensors; broadcasting binary ops; matmul; index_select and gather with
 * index tensors of arbitrary values; tc_get at arbitrary indices;
 * contiguous; clone.
 *
 * Each call must either succeed or fail with a status equal to the
 * context's and a non-empty message (cat and stack of no tensors have no
 * context to report to: they must only fail). A tensor it gives must have
 * 0 to 8 dims, sizes >= 0 whose product is its numel, and storage that
 * holds every element its strides and offset reach (the first and last are
 * read). The
 * context has a 1 MiB memory budget, so a huge tensor fails cleanly rather
 * than exhausting the machine, and exact-size storage (fuzz.h), so a kernel
 * that steps outside it is caught. Reductions and matmuls whose work (not
 * their output) would be large are skipped, so that a slow but correct
 * computation over a huge broadcast view is not taken for a hang. At the
 * end, with every tensor released, no storage may remain.
 * TRICYCLE_FUZZ_TRACE=1 prints each call and its outcome.
 */
#include "fuzz.h"
#include "internal.h"

#include <math.h>

#define MEMORY_BUDGET ((size_t)1 << 20)
#define WORK_LIMIT ((int64_t)1 << 22)
#define SLOTS 8
#define MAX_ARGS 16 /* room for any ndim the decoder gives (-1 .. 9) */
#define MAX_STEPS 64

typedef struct program {
    const uint8_t *data;
    size_t size, at;
    tc_context *ctx;
    tc_tensor *slots[SLOTS];
} program;

static uint8_t next_byte(program *p) { return p->at < p->size ? p->data[p->at++] : 0; }

static const int64_t edge_sizes[32] = {
    -1, -2, -7, INT64_MIN, INT64_MIN + 1, -((int64_t)1 << 31), -((int64_t)1 << 32),
    INT32_MAX, (int64_t)1 << 31, ((int64_t)1 << 31) + 1, ((int64_t)1 << 32) - 1, (int64_t)1 << 32,
    ((int64_t)1 << 32) + 1, (int64_t)1 << 62, ((int64_t)1 << 62) + 1, ((int64_t)1 << 62) - 1, INT64_MAX,
    INT64_MAX - 1, (int64_t)1 << 61, (int64_t)1 << 40,
    (int64_t)1 << 21, /* cubed: 2^63 */
    3037000499,       /* squared: just under 2^63 */
    3037000500,       /* squared: just over */
    (int64_t)1 << 20, (int64_t)1 << 16, 65535, 1000, 255, 17, 16, 8, 7,
};

static int64_t next_size(program *p) {
    uint8_t b = next_byte(p);
    return b < 224 ? b % 7 : edge_sizes[b - 224];
}

static const int edge_dims[16] = {INT32_MIN, INT32_MIN + 1, INT32_MAX, INT32_MAX - 1, -100, 100, -9, 9,
                                  -8,        8,             -10,       10,            -16,  16,  -7, 7};

static int next_dim(program *p) {
    uint8_t b = next_byte(p);
    return b < 240 ? (int)(b % 13) - 6 : edge_dims[b - 240];
}

static int next_ndim(program *p) {
    uint8_t b = next_byte(p);
    return b == 255 ? -1 : b % 10;
}

static const double edge_reals[16] = {0, 1, -1, 0.5, -2.5, 3, 1e-300, 1e18, -1e18, 4294967296.0,
                                      9007199254740993.0, 1e308, HUGE_VAL, -HUGE_VAL, NAN, 100};

static double next_real(program *p) { return edge_reals[next_byte(p) % 16]; }

static tc_dtype next_dtype(program *p) { return (tc_dtype)(next_byte(p) % TC_DTYPE_COUNT); }

/* The tensor in the slot a byte names, or NULL when that slot is empty. */
static tc_tensor *next_tensor(program *p) { return p->slots[next_byte(p) % SLOTS]; }

static void next_shape(program *p, int ndim, int64_t *shape) {
    for (int d = 0; d < MAX_ARGS; d++) shape[d] = d < ndim ? next_size(p) : 0;
}

/* Product of the sizes, or -1 when one is negative or it overflows. */
static int64_t shape_product(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        if (!tc_mul_sizes(n, shape[d], &n)) return -1;
    return n;
}

/* A successful call's tensor: well-formed, and its storage holds it. */
static void check_tensor(const tc_tensor *t, const char *call) {
    FUZZ_REQUIRE(t, "%s succeeded without a tensor", call);
    FUZZ_REQUIRE(t->ndim >= 0 && t->ndim <= TC_MAX_DIMS, "%s: ndim %d", call, t->ndim);
    FUZZ_REQUIRE(t->dtype >= 0 && t->dtype < TC_DTYPE_COUNT, "%s: dtype %d", call, (int)t->dtype);
    for (int d = 0; d < t->ndim; d++) FUZZ_REQUIRE(t->shape[d] >= 0, "%s: size %lld", call, (long long)t->shape[d]);
    int64_t numel = shape_product(t->ndim, t->shape);
    FUZZ_REQUIRE(numel >= 0, "%s: the shape %s overflows", call, TC_SHAPE(t));
    FUZZ_REQUIRE(numel == tc_tensor_numel(t), "%s: numel %lld but shape %s", call, (long long)tc_tensor_numel(t),
                 TC_SHAPE(t));
    FUZZ_REQUIRE(t->storage && t->storage->device == TC_CPU, "%s: no host storage", call);
    if (numel == 0) return;
    /* The lowest and highest element the strides reach, in elements. */
    int64_t low = t->offset, high = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        int64_t reach;
        FUZZ_REQUIRE(!__builtin_mul_overflow(t->shape[d] - 1, t->strides[d], &reach), "%s: stride %lld of size %lld",
                     call, (long long)t->strides[d], (long long)t->shape[d]);
        FUZZ_REQUIRE(!__builtin_add_overflow(reach < 0 ? low : high, reach, reach < 0 ? &low : &high),
                     "%s: the reach of shape %s overflows", call, TC_SHAPE(t));
    }
    size_t element = tc_dtype_size(t->dtype);
    FUZZ_REQUIRE(low >= 0 && (uint64_t)high < t->storage->nbytes / element,
                 "%s: shape %s, offset %lld reaches elements %lld..%lld of a storage of %zu bytes (%s)", call,
                 TC_SHAPE(t), (long long)t->offset, (long long)low, (long long)high, t->storage->nbytes,
                 tc_dtype_name(t->dtype));
    const unsigned char *base = t->storage->data;
    volatile unsigned char first = base[(size_t)low * element], last = base[(size_t)high * element + element - 1];
    (void)first;
    (void)last;
}

/* TRICYCLE_FUZZ_TRACE=1 prints every call and its outcome (to read a
 * reproducer: build-fuzz/bin/shapes FILE). */
static bool tracing(void) {
    static int trace = -1;
    if (trace < 0) trace = getenv("TRICYCLE_FUZZ_TRACE") != NULL;
    return trace;
}

static void trace(program *p, tc_status status, const tc_tensor *result, const char *call) {
    if (!tracing()) return;
    if (status != TC_OK) fprintf(stderr, "%s: error %d: %s\n", call, (int)status, tc_last_error(p->ctx));
    else if (result) fprintf(stderr, "%s: %s %s\n", call, tc_dtype_name(result->dtype), TC_SHAPE(result));
    else fprintf(stderr, "%s: ok\n", call);
}

/* Checks a call's outcome; a result goes into the slot a byte names. */
static void finish(program *p, tc_status status, tc_tensor *result, const char *call) {
    trace(p, status, result, call);
    if (status != TC_OK) {
        fuzz_expect_reported(p->ctx, status, call);
        return;
    }
    check_tensor(result, call);
    int slot = next_byte(p) % SLOTS;
    tc_tensor_release(p->slots[slot]);
    p->slots[slot] = result;
}

static void step_create(program *p) {
    int kind = next_byte(p) % 7;
    tc_dtype dtype = next_dtype(p);
    int ndim = next_ndim(p);
    int64_t shape[MAX_ARGS];
    next_shape(p, ndim, shape);
    tc_tensor *t = NULL;
    tc_status status;
    switch (kind) {
    case 0: status = tc_empty(p->ctx, dtype, ndim, shape, &t); break;
    case 1: status = tc_zeros(p->ctx, dtype, ndim, shape, &t); break;
    case 2: status = tc_ones(p->ctx, dtype, ndim, shape, &t); break;
    case 3: status = tc_full(p->ctx, dtype, ndim, shape, next_real(p), &t); break;
    case 4: status = tc_rand(p->ctx, dtype, ndim, shape, &t); break;
    case 5: status = tc_randn(p->ctx, dtype, ndim, shape, &t); break;
    default: {
        double start = next_real(p), end = next_real(p), step = next_real(p);
        status = tc_arange(p->ctx, dtype, start, end, step, &t);
    }
    }
    finish(p, status, t, "create");
}

/* tc_from_data from values in the input; only called when the engine must
 * refuse the shape before reading, or when the buffer holds every element
 * (a heap buffer of exactly that size, so reading past it is caught). */
static void step_from_data(program *p) {
    tc_dtype dtype = next_dtype(p), source = next_dtype(p);
    int ndim = next_ndim(p);
    int64_t shape[MAX_ARGS];
    next_shape(p, ndim, shape);
    enum { MAX_ELEMENTS = 256 };
    int64_t numel = ndim >= 0 && ndim <= TC_MAX_DIMS ? shape_product(ndim, shape) : -1;
    int64_t bytes;
    bool over_budget = numel >= 0 && (!tc_mul_sizes(numel, (int64_t)tc_dtype_size(dtype), &bytes) ||
                                      bytes > (int64_t)MEMORY_BUDGET);
    if (numel > MAX_ELEMENTS && !over_budget) return;
    size_t count = numel >= 0 && numel <= MAX_ELEMENTS ? (size_t)numel : 0;
    size_t element = tc_dtype_size(source);
    unsigned char *values = malloc(count * element + 1);
    FUZZ_REQUIRE(values, "out of memory");
    for (size_t i = 0; i < count * element; i++) values[i] = next_byte(p);
    if (source == TC_BOOL)
        for (size_t i = 0; i < count; i++) values[i] &= 1; /* a bool holds 0 or 1 */
    tc_tensor *t = NULL;
    tc_status status = tc_from_data(p->ctx, dtype, ndim, shape, values, source, &t);
    free(values);
    finish(p, status, t, "tc_from_data");
}

/* An int64 (or int32) index tensor of the given shape with values from the
 * input: small ones, in range or just outside, and the edges. */
static tc_tensor *make_index(program *p, int ndim, const int64_t *shape) {
    int64_t numel = shape_product(ndim, shape);
    if (numel < 0 || numel > 4096) return NULL;
    bool narrow = next_byte(p) & 1;
    int64_t *values = malloc((size_t)(numel ? numel : 1) * sizeof *values);
    int32_t *narrowed = malloc((size_t)(numel ? numel : 1) * sizeof *narrowed);
    FUZZ_REQUIRE(values && narrowed, "out of memory");
    for (int64_t i = 0; i < numel; i++) {
        uint8_t b = next_byte(p);
        values[i] = b < 192 ? (int64_t)(b % 9) - 2 : edge_sizes[b % 32];
        narrowed[i] = values[i] < INT32_MIN ? INT32_MIN : values[i] > INT32_MAX ? INT32_MAX : (int32_t)values[i];
    }
    tc_tensor *index = NULL;
    tc_status status = narrow ? tc_from_data(p->ctx, TC_INT32, ndim, shape, narrowed, TC_INT32, &index)
                              : tc_from_data(p->ctx, TC_INT64, ndim, shape, values, TC_INT64, &index);
    free(narrowed);
    free(values);
    if (status != TC_OK) {
        fuzz_expect_reported(p->ctx, status, "tc_from_data (an index)");
        return NULL;
    }
    return index;
}

static void step_view(program *p, int kind) {
    tc_tensor *t = next_tensor(p);
    if (!t) return;
    tc_tensor *out = NULL;
    tc_status status;
    const char *call;
    int64_t shape[MAX_ARGS];
    switch (kind) {
    case 0:
    case 1: {
        int ndim = next_ndim(p);
        next_shape(p, ndim, shape);
        int infer = next_byte(p) % 12; /* an entry (if any) made -1 */
        if (infer < ndim) shape[infer] = -1;
        call = kind ? "tc_view" : "tc_reshape";
        status = kind ? tc_view(t, ndim, shape, &out) : tc_reshape(t, ndim, shape, &out);
        break;
    }
    case 2: {
        int ndim = next_ndim(p);
        next_shape(p, ndim, shape);
        call = "tc_expand";
        status = tc_expand(t, ndim, shape, &out);
        break;
    }
    case 3: {
        int dim = next_dim(p);
        int64_t start = next_size(p), length = next_size(p);
        call = "tc_narrow";
        status = tc_narrow(t, dim, start, length, &out);
        break;
    }
    case 4: {
        int dim = next_dim(p);
        call = "tc_select";
        status = tc_select(t, dim, next_size(p), &out);
        break;
    }
    case 5: {
        int ndim = next_ndim(p), dims[MAX_ARGS];
        for (int d = 0; d < MAX_ARGS; d++) dims[d] = next_dim(p);
        call = "tc_permute";
        status = tc_permute(t, ndim, dims, &out);
        break;
    }
    case 6: {
        int dim0 = next_dim(p), dim1 = next_dim(p);
        call = "tc_transpose";
        status = tc_transpose(t, dim0, dim1, &out);
        break;
    }
    case 7:
        call = "tc_squeeze";
        status = tc_squeeze(t, next_dim(p), &out);
        break;
    case 8:
        call = "tc_unsqueeze";
        status = tc_unsqueeze(t, next_dim(p), &out);
        break;
    default: {
        int start = next_dim(p), end = next_dim(p);
        call = "tc_flatten";
        status = tc_flatten(t, start, end, &out);
    }
    }
    finish(p, status, out, call);
}

static void step_reduce(program *p) {
    tc_tensor *x = next_tensor(p);
    if (!x) return;
    tc_reduce_op op = (tc_reduce_op)(next_byte(p) % TC_REDUCE_OP_COUNT);
    int ndims = next_byte(p) % 11 - 1, dims[MAX_ARGS];
    for (int d = 0; d < MAX_ARGS; d++) dims[d] = next_dim(p);
    bool keepdim = next_byte(p) & 1;
    if (tc_tensor_numel(x) > WORK_LIMIT) return;
    tc_tensor *out = NULL;
    finish(p, tc_reduce(op, x, ndims, dims, keepdim, &out), out, "tc_reduce");
}

static tc_tensor **pick_many(program *p, int count, tc_tensor **tensors) {
    for (int i = 0; i < count; i++) {
        tensors[i] = next_tensor(p);
        if (!tensors[i]) return NULL;
    }
    return tensors;
}

static void step_cat_stack(program *p, bool stack) {
    int count = next_byte(p) % 5;
    tc_tensor *tensors[4];
    if (!pick_many(p, count, tensors)) return;
    int dim = next_dim(p);
    tc_tensor *out = NULL;
    tc_status status = stack ? tc_stack(count, tensors, dim, &out) : tc_cat(count, tensors, dim, &out);
    if (count == 0) { /* no tensor, so no context to hold a message */
        FUZZ_REQUIRE(status != TC_OK, "%s of no tensors succeeded", stack ? "tc_stack" : "tc_cat");
        return;
    }
    finish(p, status, out, stack ? "tc_stack" : "tc_cat");
}

static void step_binary(program *p) {
    tc_binary_op op = (tc_binary_op)(next_byte(p) % TC_BINARY_OP_COUNT);
    tc_tensor *a = next_tensor(p), *b = next_tensor(p);
    if (!a || !b) return;
    tc_tensor *out = NULL;
    finish(p, tc_binary(op, a, b, &out), out, "tc_binary");
}

/* Whether a matmul would compute a lot for an output small enough to
 * allocate: m*n*k per batch over the larger batch (an upper bound of the
 * broadcast one), when the shapes fit. */
static bool matmul_too_slow(const tc_tensor *a, const tc_tensor *b) {
    if (a->ndim == 0 || b->ndim == 0) return false;
    int64_t k = a->shape[a->ndim - 1];
    int64_t m = a->ndim >= 2 ? a->shape[a->ndim - 2] : 1;
    int64_t n = b->ndim >= 2 ? b->shape[b->ndim - 1] : 1;
    if (k == 0 || m == 0 || n == 0) return false;
    /* k is a's; b's may differ (the call then fails), so its product is checked. */
    int64_t a_matrix, b_matrix;
    if (!tc_mul_sizes(m, k, &a_matrix) || !tc_mul_sizes(k, n, &b_matrix)) return false;
    int64_t batch_a = tc_tensor_numel(a) / a_matrix, batch_b = tc_tensor_numel(b) / b_matrix;
    int64_t batch = batch_a > batch_b ? batch_a : batch_b, out_numel, work;
    if (!tc_mul_sizes(batch, m, &out_numel) || !tc_mul_sizes(out_numel, n, &out_numel)) return false;
    if (out_numel > (int64_t)(MEMORY_BUDGET / tc_dtype_size(a->dtype))) return false; /* fails to allocate */
    return !tc_mul_sizes(out_numel, k, &work) || work > WORK_LIMIT;
}

static void step_matmul(program *p) {
    tc_tensor *a = next_tensor(p), *b = next_tensor(p);
    if (!a || !b || matmul_too_slow(a, b)) return;
    tc_tensor *out = NULL;
    finish(p, tc_matmul(a, b, &out), out, "tc_matmul");
}

static void step_index(program *p, bool gather) {
    tc_tensor *x = next_tensor(p);
    if (!x) return;
    int dim = next_dim(p);
    int ndim = gather ? next_byte(p) % 5 : 1;
    int64_t shape[MAX_ARGS];
    for (int d = 0; d < MAX_ARGS; d++) shape[d] = d < ndim ? next_byte(p) % 4 : 0;
    tc_tensor *index = make_index(p, ndim, shape);
    if (!index) return;
    tc_tensor *out = NULL;
    tc_status status = gather ? tc_gather(x, dim, index, &out) : tc_index_select(x, dim, index, &out);
    tc_tensor_release(index);
    finish(p, status, out, gather ? "tc_gather" : "tc_index_select");
}

static void step_get(program *p) {
    tc_tensor *t = next_tensor(p);
    if (!t) return;
    int64_t index[MAX_ARGS];
    for (int d = 0; d < MAX_ARGS; d++) {
        uint8_t b = next_byte(p);
        index[d] = b < 192 ? (int64_t)(b % 9) - 2 : edge_sizes[b % 32];
    }
    double value;
    tc_status status = tc_get(t, index, &value);
    trace(p, status, NULL, "tc_get");
    if (status != TC_OK) fuzz_expect_reported(p->ctx, status, "tc_get");
}

static void step_copy(program *p, bool clone) {
    tc_tensor *t = next_tensor(p);
    if (!t) return;
    tc_tensor *out = NULL;
    tc_status status = clone ? tc_clone(t, &out) : tc_contiguous(t, &out);
    if (status == TC_OK) FUZZ_REQUIRE(tc_tensor_is_contiguous(out), "a contiguous copy is not contiguous");
    finish(p, status, out, clone ? "tc_clone" : "tc_contiguous");
}

static void start(program *p) {
    float values[24];
    for (int i = 0; i < 24; i++) values[i] = (float)i;
    int64_t numbers[5] = {0, 1, 2, 3, 4};
    double scalar = 2.5;
    FUZZ_REQUIRE(tc_from_data(p->ctx, TC_FLOAT32, 3, (int64_t[]){2, 3, 4}, values, TC_FLOAT32, &p->slots[0]) == TC_OK &&
                     tc_from_data(p->ctx, TC_INT64, 1, (int64_t[]){5}, numbers, TC_INT64, &p->slots[1]) == TC_OK &&
                     tc_from_data(p->ctx, TC_FLOAT64, 0, NULL, &scalar, TC_FLOAT64, &p->slots[2]) == TC_OK &&
                     tc_zeros(p->ctx, TC_FLOAT32, 2, (int64_t[]){0, 3}, &p->slots[3]) == TC_OK,
                 "the starting tensors: %s", tc_last_error(p->ctx));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    program p = {data, size, 0, fuzz_context(MEMORY_BUDGET), {NULL}};
    start(&p);
    for (int steps = 0; steps < MAX_STEPS && p.at < p.size; steps++) {
        switch (next_byte(&p) % 24) {
        case 0:
        case 1: step_create(&p); break;
        case 2: step_from_data(&p); break;
        case 3: step_view(&p, 0); break;
        case 4: step_view(&p, 1); break;
        case 5: step_view(&p, 2); break;
        case 6: step_view(&p, 3); break;
        case 7: step_view(&p, 4); break;
        case 8: step_view(&p, 5); break;
        case 9: step_view(&p, 6); break;
        case 10: step_view(&p, 7); break;
        case 11: step_view(&p, 8); break;
        case 12: step_view(&p, 9); break;
        case 13: step_reduce(&p); break;
        case 14: step_cat_stack(&p, false); break;
        case 15: step_cat_stack(&p, true); break;
        case 16:
        case 17: step_binary(&p); break;
        case 18: step_matmul(&p); break;
        case 19: step_index(&p, false); break;
        case 20: step_index(&p, true); break;
        case 21: step_get(&p); break;
        case 22: step_copy(&p, false); break;
        default: step_copy(&p, true); break;
        }
    }
    for (int i = 0; i < SLOTS; i++) tc_tensor_release(p.slots[i]);
    FUZZ_REQUIRE(tc_memory_in_use(p.ctx) == 0, "%zu bytes of storage left after releasing every tensor",
                 tc_memory_in_use(p.ctx));
    tc_context_free(p.ctx);
    return 0;
}
