/*
 * tensor.c: dtypes, storage, tensor lifetime and metadata, creation,
 * element access, broadcasting rules and dtype promotion.
 */
#include "internal.h"

#include "half.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- dtypes ---- */

static const struct {
    const char *name;
    size_t size;
} dtype_table[TC_DTYPE_COUNT] = {
    [TC_FLOAT32] = {"float32", 4}, [TC_FLOAT64] = {"float64", 8}, [TC_INT32] = {"int32", 4},
    [TC_INT64] = {"int64", 8},     [TC_UINT8] = {"uint8", 1},     [TC_BOOL] = {"bool", 1},
    [TC_BFLOAT16] = {"bfloat16", 2}, [TC_FLOAT16] = {"float16", 2},
};

size_t tc_dtype_size(tc_dtype dtype) { return (unsigned)dtype < TC_DTYPE_COUNT ? dtype_table[dtype].size : 0; }

const char *tc_dtype_name(tc_dtype dtype) {
    return (unsigned)dtype < TC_DTYPE_COUNT ? dtype_table[dtype].name : "unknown";
}

bool tc_dtype_from_name(const char *name, tc_dtype *dtype) {
    static const struct {
        const char *name;
        tc_dtype dtype;
    } aliases[] = {{"float32", TC_FLOAT32}, {"float", TC_FLOAT32}, {"float64", TC_FLOAT64},
                   {"double", TC_FLOAT64},  {"int32", TC_INT32},   {"int", TC_INT32},
                   {"int64", TC_INT64},     {"long", TC_INT64},    {"uint8", TC_UINT8},
                   {"byte", TC_UINT8},      {"bool", TC_BOOL},     {"bfloat16", TC_BFLOAT16},
                   {"bf16", TC_BFLOAT16},   {"float16", TC_FLOAT16}, {"half", TC_FLOAT16}};
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        if (strcmp(name, aliases[i].name) == 0) {
            *dtype = aliases[i].dtype;
            return true;
        }
    }
    return false;
}

bool tc_dtype_is_floating(tc_dtype dtype) {
    return dtype == TC_FLOAT32 || dtype == TC_FLOAT64 || tc_dtype_is_16bit(dtype);
}

bool tc_dtype_is_16bit(tc_dtype dtype) { return dtype == TC_BFLOAT16 || dtype == TC_FLOAT16; }

const char *tc_device_name(tc_device device) {
    switch (device) {
    case TC_CPU: return "cpu";
    case TC_CUDA: return "cuda";
    default: return "unknown";
    }
}

tc_dtype tc_promote_dtypes(tc_dtype a, tc_dtype b) {
    /* Rank order: bool < uint8 < int32 < int64 < float16, bfloat16 < float32 < float64; the two 16-bit
     * floats hold different ranges, so together they give float32. */
    static const int rank[TC_DTYPE_COUNT] = {
        [TC_BOOL] = 0,     [TC_UINT8] = 1,    [TC_INT32] = 2,    [TC_INT64] = 3,
        [TC_BFLOAT16] = 4, [TC_FLOAT16] = 4, [TC_FLOAT32] = 5, [TC_FLOAT64] = 6,
    };
    if (a != b && rank[a] == rank[b]) return TC_FLOAT32;
    return rank[a] >= rank[b] ? a : b;
}

/* ---- storage ---- */

static tc_status storage_new(tc_context *ctx, tc_device device, size_t nbytes, tc_storage **out) {
    const tc_backend *backend;
    TC_TRY(tc_backend_for(ctx, device, &backend));
    tc_storage *storage = tc_calloc(ctx, 1, sizeof *storage);
    if (!storage) return TC_ERROR_MEMORY;
    storage->data = tc_device_allocate(ctx, device, nbytes);
    if (!storage->data) {
        tc_free(storage);
        return ctx->last_status;
    }
    storage->refcount = 1;
    storage->ctx = ctx;
    storage->device = device;
    storage->nbytes = nbytes;
    *out = storage;
    return TC_OK;
}

static void storage_release(tc_storage *storage) {
    if (--storage->refcount > 0) return;
    if (storage->external) {
        if (storage->release_external)
            storage->release_external(storage->external_user, storage->data, storage->nbytes);
    } else {
        tc_device_release(storage->ctx, storage->device, storage->data, storage->nbytes);
    }
    tc_free(storage);
}

/* ---- lifetime and metadata ---- */

void tc_tensor_retain(tc_tensor *t) {
    if (t) t->refcount++;
}

void tc_node_release(tc_node *node); /* autograd.c */

void tc_tensor_release(tc_tensor *t) {
    if (!t || --t->refcount > 0) return;
    if (t->grad) tc_tensor_release(t->grad);
    if (t->grad_fn) tc_node_release(t->grad_fn);
    tc_grad_hook_free(t->grad_hook);
    tc_tensor_hooks_free(t->hooks);
    tc_tensor_release(t->hook_grad);
    storage_release(t->storage);
    tc_free(t);
}

tc_context *tc_tensor_context(const tc_tensor *t) { return t->ctx; }
int tc_tensor_ndim(const tc_tensor *t) { return t->ndim; }
const int64_t *tc_tensor_shape(const tc_tensor *t) { return t->shape; }
const int64_t *tc_tensor_strides(const tc_tensor *t) { return t->strides; }
int64_t tc_tensor_numel(const tc_tensor *t) { return tc_shape_numel(t->ndim, t->shape); }
tc_dtype tc_tensor_dtype(const tc_tensor *t) { return t->dtype; }
tc_device tc_tensor_device(const tc_tensor *t) { return t->storage->device; }
size_t tc_tensor_storage_bytes(const tc_tensor *t) { return t->storage->nbytes; }

void *tc_tensor_data_at_offset(const tc_tensor *t) {
    return (char *)t->storage->data + t->offset * (int64_t)tc_dtype_size(t->dtype);
}

void *tc_tensor_data(const tc_tensor *t) {
    return t->storage->device == TC_CPU ? tc_tensor_data_at_offset(t) : NULL;
}

/* An empty tensor is contiguous whatever its strides: it has no element to
 * be out of place. */
bool tc_tensor_is_contiguous(const tc_tensor *t) {
    if (tc_tensor_numel(t) == 0) return true;
    int64_t expected = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->strides[d] != expected) return false;
        expected *= t->shape[d];
    }
    return true;
}

bool tc_tensor_requires_grad(const tc_tensor *t) { return t->requires_grad; }

tc_status tc_tensor_set_requires_grad(tc_tensor *t, bool requires_grad) {
    if (requires_grad && !tc_dtype_is_floating(t->dtype))
        return tc_fail(t->ctx, TC_ERROR_DTYPE, "requires_grad: only floating tensors can require grad, got %s",
                       tc_dtype_name(t->dtype));
    if (!requires_grad && t->grad_fn)
        return tc_fail(t->ctx, TC_ERROR_STATE,
                       "requires_grad: cannot turn off requires_grad of a non-leaf tensor (use detach)");
    t->requires_grad = requires_grad;
    return TC_OK;
}

tc_tensor *tc_tensor_grad(const tc_tensor *t) { return t->grad; }

tc_status tc_tensor_set_grad(tc_tensor *t, tc_tensor *grad) {
    if (grad && !tc_same_shape(t, grad))
        return tc_fail(t->ctx, TC_ERROR_SHAPE, "grad: gradient of shape %s does not match tensor of shape %s",
                       TC_SHAPE(grad), TC_SHAPE(t));
    if (grad && grad->dtype != t->dtype)
        return tc_fail(t->ctx, TC_ERROR_DTYPE, "grad: gradient dtype %s does not match tensor dtype %s",
                       tc_dtype_name(grad->dtype), tc_dtype_name(t->dtype));
    tc_tensor_retain(grad);
    tc_tensor_release(t->grad);
    t->grad = grad;
    return TC_OK;
}

bool tc_tensor_is_leaf(const tc_tensor *t) { return t->grad_fn == NULL; }

/* ---- shapes ---- */

int64_t tc_shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

void tc_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides) {
    int64_t stride = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        strides[d] = stride;
        stride *= shape[d] > 0 ? shape[d] : 1;
    }
}

bool tc_same_shape(const tc_tensor *a, const tc_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

bool tc_normalize_dim(int dim, int ndim, int *out) {
    int d = dim < 0 ? dim + ndim : dim;
    if (d < 0 || d >= (ndim == 0 ? 1 : ndim)) return false;
    *out = d;
    return true;
}

tc_status tc_check_same_device(const char *function, const tc_tensor *a, const tc_tensor *b) {
    if (a->ctx != b->ctx)
        return tc_fail(a->ctx, TC_ERROR_ARGUMENT, "%s: tensors belong to different contexts (Lua states)",
                       function);
    if (a->storage->device != b->storage->device)
        return tc_fail(a->ctx, TC_ERROR_ARGUMENT, "%s: tensors are on different devices (%s and %s)", function,
                       tc_device_name(a->storage->device), tc_device_name(b->storage->device));
    return TC_OK;
}

tc_status tc_broadcast_shapes(tc_context *ctx, const char *function, int ndim_a, const int64_t *shape_a,
                              int ndim_b, const int64_t *shape_b, int *ndim_out, int64_t *shape_out) {
    int ndim = ndim_a > ndim_b ? ndim_a : ndim_b;
    for (int i = 0; i < ndim; i++) {
        int da = i - (ndim - ndim_a), db = i - (ndim - ndim_b);
        int64_t sa = da >= 0 ? shape_a[da] : 1, sb = db >= 0 ? shape_b[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char left[TC_SHAPE_STRING_SIZE], right[TC_SHAPE_STRING_SIZE];
            return tc_fail(ctx, TC_ERROR_SHAPE,
                           "%s: shapes %s and %s cannot be broadcast (dim %d: %lld against %lld)", function,
                           tc_shape_string(ndim_a, shape_a, left, sizeof left),
                           tc_shape_string(ndim_b, shape_b, right, sizeof right), i + 1, (long long)sa,
                           (long long)sb);
        }
        shape_out[i] = sa == 1 ? sb : sa;
    }
    *ndim_out = ndim;
    int64_t numel;
    if (tc_checked_numel(ctx, function, ndim, shape_out, &numel) != TC_OK) {
        char left[TC_SHAPE_STRING_SIZE], right[TC_SHAPE_STRING_SIZE];
        return tc_fail(ctx, TC_ERROR_SHAPE, "%s: shapes %s and %s broadcast to more than 2^63 elements", function,
                       tc_shape_string(ndim_a, shape_a, left, sizeof left),
                       tc_shape_string(ndim_b, shape_b, right, sizeof right));
    }
    return TC_OK;
}

/* ---- creation ---- */

static tc_tensor *tensor_struct(tc_context *ctx, tc_storage *storage, tc_dtype dtype) {
    tc_tensor *t = tc_calloc(ctx, 1, sizeof *t);
    if (!t) return NULL;
    t->refcount = 1;
    t->ctx = ctx;
    t->storage = storage;
    t->dtype = dtype;
    return t;
}

/* The shape rule (sizes.c) is checked here for every new tensor; callers
 * that know the op check first, so the error names it. */
/* A contiguous tensor of that shape at the start of storage, which it takes
 * over (released on failure). */
static tc_status contiguous_over(tc_context *ctx, tc_storage *storage, tc_dtype dtype, int ndim, const int64_t *shape,
                                 tc_tensor **out) {
    tc_tensor *t = tensor_struct(ctx, storage, dtype);
    if (!t) {
        storage_release(storage);
        return TC_ERROR_MEMORY;
    }
    t->ndim = ndim;
    if (ndim) memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    tc_contiguous_strides(ndim, shape, t->strides);
    *out = t;
    return TC_OK;
}

static tc_status tensor_new_named(tc_context *ctx, const char *op, tc_dtype dtype, tc_device device, int ndim,
                                  const int64_t *shape, tc_tensor **out) {
    if ((unsigned)dtype >= TC_DTYPE_COUNT) return tc_fail(ctx, TC_ERROR_DTYPE, "%s: unknown dtype %d", op, (int)dtype);
    TC_TRY(tc_check_shape(ctx, op, ndim, shape, dtype));
    size_t nbytes = (size_t)tc_shape_numel(ndim, shape) * tc_dtype_size(dtype);
    tc_storage *storage = NULL;
    TC_TRY(storage_new(ctx, device, nbytes, &storage));
    return contiguous_over(ctx, storage, dtype, ndim, shape, out);
}

tc_status tc_tensor_new(tc_context *ctx, tc_dtype dtype, tc_device device, int ndim, const int64_t *shape,
                        tc_tensor **out) {
    return tensor_new_named(ctx, "new tensor", dtype, device, ndim, shape, out);
}

tc_status tc_tensor_wrap(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, void *data,
                         size_t nbytes, void (*release)(void *user, void *data, size_t nbytes), void *user,
                         tc_tensor **out) {
    if ((unsigned)dtype >= TC_DTYPE_COUNT) return tc_fail(ctx, TC_ERROR_DTYPE, "wrap: unknown dtype %d", (int)dtype);
    TC_TRY(tc_check_shape(ctx, "wrap", ndim, shape, dtype));
    if ((size_t)tc_shape_numel(ndim, shape) * tc_dtype_size(dtype) > nbytes) {
        char text[TC_SHAPE_STRING_SIZE];
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "wrap: %zu bytes are too few for shape %s of %s", nbytes,
                       tc_shape_string(ndim, shape, text, sizeof text), tc_dtype_name(dtype));
    }
    tc_storage *storage = tc_calloc(ctx, 1, sizeof *storage);
    if (!storage) return TC_ERROR_MEMORY;
    storage->refcount = 1;
    storage->ctx = ctx;
    storage->device = TC_CPU;
    storage->data = data;
    storage->nbytes = nbytes;
    storage->external = true;
    storage->release_external = release;
    storage->external_user = user;
    return contiguous_over(ctx, storage, dtype, ndim, shape, out);
}

tc_status tc_empty_shaped(const tc_tensor *like, tc_dtype dtype, int ndim, const int64_t *shape, tc_tensor **out) {
    return tc_tensor_new(like->ctx, dtype, like->storage->device, ndim, shape, out);
}

tc_status tc_empty_like(const tc_tensor *t, tc_tensor **out) {
    return tc_tensor_new(t->ctx, t->dtype, t->storage->device, t->ndim, t->shape, out);
}

tc_status tc_zeros_like(const tc_tensor *t, tc_tensor **out) {
    TC_TRY(tc_empty_like(t, out));
    tc_status status = tc_backend_of(*out)->fill(*out, 0.0);
    if (status != TC_OK) tc_tensor_release(*out);
    return status;
}

/* Fails unless every element of a view (offset, shape, strides) lies in
 * its storage, so that no kernel can reach outside it whatever made the
 * view. */
static tc_status check_view_bounds(const tc_tensor *t, const char *op, int ndim, const int64_t *shape,
                                   const int64_t *strides, int64_t offset) {
    TC_TRY(tc_check_shape(t->ctx, op, ndim, shape, t->dtype));
    int64_t last = offset;
    bool empty = false, fits = offset >= 0;
    for (int d = 0; d < ndim && fits; d++) {
        if (shape[d] == 0) empty = true;
        int64_t reach;
        fits = strides[d] >= 0 && tc_mul_sizes(shape[d] > 0 ? shape[d] - 1 : 0, strides[d], &reach) &&
               tc_add_sizes(last, reach, &last);
    }
    if (fits && (empty || last < (int64_t)(t->storage->nbytes / tc_dtype_size(t->dtype)))) return TC_OK;
    char text[TC_SHAPE_STRING_SIZE];
    return tc_fail(t->ctx, TC_ERROR_ARGUMENT,
                   "%s: a view of shape %s at offset %lld does not fit the %zu bytes of storage of a tensor of "
                   "shape %s",
                   op, tc_shape_string(ndim, shape, text, sizeof text), (long long)offset, t->storage->nbytes,
                   TC_SHAPE(t));
}

tc_status tc_tensor_alias(const tc_tensor *t, int ndim, const int64_t *shape, const int64_t *strides,
                          int64_t offset, tc_tensor **out) {
    TC_TRY(check_view_bounds(t, "view", ndim, shape, strides, offset));
    tc_tensor *view = tensor_struct(t->ctx, t->storage, t->dtype);
    if (!view) return TC_ERROR_MEMORY;
    t->storage->refcount++;
    view->ndim = ndim;
    if (ndim) {
        memcpy(view->shape, shape, sizeof(int64_t) * (size_t)ndim);
        memcpy(view->strides, strides, sizeof(int64_t) * (size_t)ndim);
    }
    view->offset = offset;
    *out = view;
    return TC_OK;
}

tc_status tc_broadcast_view(const tc_tensor *t, int ndim, const int64_t *shape, tc_tensor **out) {
    int64_t strides[TC_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        int d = i - (ndim - t->ndim);
        strides[i] = (d < 0 || t->shape[d] == 1) ? 0 : t->strides[d];
    }
    return tc_tensor_alias(t, ndim, shape, strides, t->offset, out);
}

static tc_status filled(tc_context *ctx, const char *op, tc_dtype dtype, int ndim, const int64_t *shape,
                        double value, tc_tensor **out) {
    TC_TRY(tensor_new_named(ctx, op, dtype, ctx->default_device, ndim, shape, out));
    tc_status status = tc_backend_of(*out)->fill(*out, value);
    if (status != TC_OK) tc_tensor_release(*out);
    return status;
}

tc_status tc_empty(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, tc_tensor **out) {
    return tensor_new_named(ctx, "empty", dtype, ctx->default_device, ndim, shape, out);
}

tc_status tc_zeros(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, tc_tensor **out) {
    return filled(ctx, "zeros", dtype, ndim, shape, 0.0, out);
}

tc_status tc_ones(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, tc_tensor **out) {
    return filled(ctx, "ones", dtype, ndim, shape, 1.0, out);
}

tc_status tc_full(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, double value,
                  tc_tensor **out) {
    TC_TRY(tc_check_scalar(ctx, "full", value, dtype));
    return filled(ctx, "full", dtype, ndim, shape, value, out);
}

/* The range of an integer dtype; false for floating and bool dtypes. */
static bool integer_range(tc_dtype dtype, int64_t *min, int64_t *max) {
    switch (dtype) {
    case TC_UINT8: *min = 0; *max = UINT8_MAX; return true;
    case TC_INT32: *min = INT32_MIN; *max = INT32_MAX; return true;
    case TC_INT64: *min = INT64_MIN; *max = INT64_MAX; return true;
    default: return false;
    }
}

bool tc_dtype_holds(tc_dtype dtype, double value) {
    int64_t min, max;
    if (!integer_range(dtype, &min, &max)) return true; /* floating dtypes round; bool keeps value != 0 */
    /* (double)max + 1 is exact for uint8 and int32, and rounds to 2^63 (the
     * first double past int64's range) for int64; NaN fails every comparison. */
    return value == floor(value) && value >= (double)min && value < (double)max + 1.0;
}

tc_status tc_check_scalar(tc_context *ctx, const char *op, double value, tc_dtype dtype) {
    if (tc_dtype_holds(dtype, value)) return TC_OK;
    int64_t min = 0, max = 0;
    integer_range(dtype, &min, &max);
    if (isnan(value))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: the scalar is NaN, which a tensor of %s cannot hold", op,
                       tc_dtype_name(dtype));
    if (value != floor(value))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: the scalar %.17g is not an integer, so a %s tensor cannot hold it",
                       op, value, tc_dtype_name(dtype));
    return tc_fail(ctx, TC_ERROR_ARGUMENT,
                   "%s: the scalar %.17g is out of the range of %s (%lld to %lld); use a wider dtype", op, value,
                   tc_dtype_name(dtype), (long long)min, (long long)max);
}

static void store_double(void *data, tc_dtype dtype, int64_t i, double v) {
    switch (dtype) {
    case TC_FLOAT32: ((float *)data)[i] = (float)v; break;
    case TC_FLOAT64: ((double *)data)[i] = v; break;
    case TC_INT32: ((int32_t *)data)[i] = (int32_t)v; break;
    case TC_INT64: ((int64_t *)data)[i] = (int64_t)v; break;
    case TC_UINT8: ((uint8_t *)data)[i] = (uint8_t)v; break;
    case TC_BOOL: ((uint8_t *)data)[i] = v != 0.0; break;
    case TC_BFLOAT16: ((uint16_t *)data)[i] = tc_double_to_bfloat16(v); break;
    case TC_FLOAT16: ((uint16_t *)data)[i] = tc_double_to_float16(v); break;
    default: break;
    }
}

static double load_double(const void *data, tc_dtype dtype, int64_t i) {
    switch (dtype) {
    case TC_FLOAT32: return ((const float *)data)[i];
    case TC_FLOAT64: return ((const double *)data)[i];
    case TC_INT32: return ((const int32_t *)data)[i];
    case TC_INT64: return (double)((const int64_t *)data)[i];
    case TC_UINT8:
    case TC_BOOL: return ((const uint8_t *)data)[i];
    case TC_BFLOAT16: return tc_bfloat16_to_float(((const uint16_t *)data)[i]);
    case TC_FLOAT16: return tc_float16_to_float(((const uint16_t *)data)[i]);
    default: return 0.0;
    }
}

/* Moves a tensor filled on the host to the context's default device, when
 * that is not the CPU; the host tensor is released (and *t NULL on an error). */
static tc_status to_default_device(tc_context *ctx, tc_tensor **t) {
    if (ctx->default_device == TC_CPU) return TC_OK;
    tc_tensor *moved = NULL;
    tc_status status = tc_to_device(*t, ctx->default_device, &moved);
    tc_tensor_release(*t);
    *t = status == TC_OK ? moved : NULL;
    return status;
}

tc_status tc_arange(tc_context *ctx, tc_dtype dtype, double start, double end, double step, tc_tensor **out) {
    if (step == 0 || !isfinite(step) || !isfinite(start) || !isfinite(end))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "arange: start, end and step must be finite and step nonzero");
    double count = ceil((end - start) / step);
    if (count < 0) count = 0;
    if (count > 1e12) return tc_fail(ctx, TC_ERROR_ARGUMENT, "arange: %g elements are too many", count);
    int64_t n = (int64_t)count;
    if (n > 0 && (!tc_dtype_holds(dtype, start) || !tc_dtype_holds(dtype, step) ||
                  !tc_dtype_holds(dtype, start + (double)(n - 1) * step)))
        return tc_fail(ctx, TC_ERROR_ARGUMENT,
                       "arange: start %.17g, step %.17g and last value %.17g are not all values of %s (integers in "
                       "its range)",
                       start, step, start + (double)(n - 1) * step, tc_dtype_name(dtype));
    TC_TRY(tensor_new_named(ctx, "arange", dtype, TC_CPU, 1, &n, out));
    void *data = tc_tensor_data(*out);
    for (int64_t i = 0; i < n; i++) store_double(data, dtype, i, start + (double)i * step);
    return to_default_device(ctx, out);
}

static tc_status random_tensor(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, bool normal,
                               tc_tensor **out) {
    if (!tc_dtype_is_floating(dtype))
        return tc_fail(ctx, TC_ERROR_DTYPE, "%s: dtype must be floating (float32, float64, bfloat16, float16), got %s",
                       normal ? "randn" : "rand", tc_dtype_name(dtype));
    if (tc_dtype_is_16bit(dtype)) { /* float32 draws, rounded: the same stream as a float32 tensor's */
        tc_tensor *wide;
        TC_TRY(random_tensor(ctx, TC_FLOAT32, ndim, shape, normal, &wide));
        tc_status status = tc_cast_if_needed(wide, dtype, out);
        tc_tensor_release(wide);
        return status;
    }
    TC_TRY(tensor_new_named(ctx, normal ? "randn" : "rand", dtype, ctx->default_device, ndim, shape, out));
    int64_t n = tc_tensor_numel(*out);
    tc_status status = tc_backend_of(*out)->random(*out, normal, ctx->rng_seed, ctx->rng_offset);
    if (status != TC_OK) {
        tc_tensor_release(*out);
        return status;
    }
    /* Each Philox call yields four 32-bit words; keep streams disjoint. */
    ctx->rng_offset += (uint64_t)(n + 3) / 4 * (normal ? 2 : 1);
    return TC_OK;
}

tc_status tc_rand(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, tc_tensor **out) {
    return random_tensor(ctx, dtype, ndim, shape, false, out);
}

tc_status tc_randn(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, tc_tensor **out) {
    return random_tensor(ctx, dtype, ndim, shape, true, out);
}

tc_status tc_from_data(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, const void *data,
                       tc_dtype source_dtype, tc_tensor **out) {
    TC_TRY(tensor_new_named(ctx, "from_data", dtype, TC_CPU, ndim, shape, out));
    int64_t n = tc_tensor_numel(*out);
    if (dtype != source_dtype && source_dtype != TC_BOOL && dtype != TC_BOOL) {
        for (int64_t i = 0; i < n; i++) {
            bool holds = source_dtype == TC_INT64 && dtype == TC_INT32
                             ? ((const int64_t *)data)[i] >= INT32_MIN && ((const int64_t *)data)[i] <= INT32_MAX
                             : tc_dtype_holds(dtype, load_double(data, source_dtype, i));
            if (holds) continue;
            tc_tensor_release(*out);
            *out = NULL;
            return tc_fail(ctx, TC_ERROR_ARGUMENT,
                           "from_data: element %lld (%.17g, %s) does not fit %s: it is not an integer or out of its "
                           "range",
                           (long long)i, load_double(data, source_dtype, i), tc_dtype_name(source_dtype),
                           tc_dtype_name(dtype));
        }
    }
    void *dst = tc_tensor_data(*out);
    if (dtype == source_dtype) {
        if (n) memcpy(dst, data, (size_t)n * tc_dtype_size(dtype));
    } else if (source_dtype == TC_INT64 && dtype == TC_INT32) {
        for (int64_t i = 0; i < n; i++) ((int32_t *)dst)[i] = (int32_t)((const int64_t *)data)[i];
    } else {
        for (int64_t i = 0; i < n; i++) store_double(dst, dtype, i, load_double(data, source_dtype, i));
    }
    return to_default_device(ctx, out);
}

/* ---- element access (host) ---- */

static tc_status host_contiguous(const tc_tensor *t, tc_tensor **out) {
    tc_tensor *source = (tc_tensor *)t;
    if (t->storage->device != TC_CPU) return tc_to_device(source, TC_CPU, out);
    return tc_contiguous(source, out);
}

tc_status tc_get(const tc_tensor *t, const int64_t *index, double *value) {
    int64_t offset = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        if (index[d] < 0 || index[d] >= t->shape[d])
            return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "get: index %lld is out of range for dim %d of size %lld",
                           (long long)index[d], d + 1, (long long)t->shape[d]);
        offset += index[d] * t->strides[d];
    }
    if (t->storage->device != TC_CPU) {
        tc_tensor *host;
        TC_TRY(tc_to_device((tc_tensor *)t, TC_CPU, &host));
        int64_t linear = 0;
        for (int d = 0; d < t->ndim; d++) linear = linear * t->shape[d] + index[d];
        *value = load_double(tc_tensor_data(host), t->dtype, linear);
        tc_tensor_release(host);
        return TC_OK;
    }
    *value = load_double(t->storage->data, t->dtype, offset);
    return TC_OK;
}

tc_status tc_item(const tc_tensor *t, double *value) {
    if (tc_tensor_numel(t) != 1)
        return tc_fail(t->ctx, TC_ERROR_SHAPE, "item: the tensor must have exactly one element, it has shape %s",
                       TC_SHAPE(t));
    int64_t zeros[TC_MAX_DIMS] = {0};
    return tc_get(t, zeros, value);
}

tc_status tc_item_int64(const tc_tensor *t, int64_t *value) {
    if (tc_tensor_numel(t) != 1)
        return tc_fail(t->ctx, TC_ERROR_SHAPE, "item: the tensor must have exactly one element, it has shape %s",
                       TC_SHAPE(t));
    return tc_copy_to_int64(t, value, 1);
}

tc_status tc_copy_to_doubles(const tc_tensor *t, double *values, int64_t count) {
    int64_t n = tc_tensor_numel(t);
    if (count < n) return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "copy_to_doubles: room for %lld of %lld values",
                                  (long long)count, (long long)n);
    tc_tensor *host;
    TC_TRY(host_contiguous(t, &host));
    const void *data = tc_tensor_data(host);
    for (int64_t i = 0; i < n; i++) values[i] = load_double(data, t->dtype, i);
    tc_tensor_release(host);
    return TC_OK;
}

tc_status tc_copy_to_int64(const tc_tensor *t, int64_t *values, int64_t count) {
    int64_t n = tc_tensor_numel(t);
    if (count < n) return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "copy_to_int64: room for %lld of %lld values",
                                  (long long)count, (long long)n);
    tc_tensor *host;
    TC_TRY(host_contiguous(t, &host));
    const void *data = tc_tensor_data(host);
    for (int64_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case TC_INT64: values[i] = ((const int64_t *)data)[i]; break;
        case TC_INT32: values[i] = ((const int32_t *)data)[i]; break;
        default: { /* truncated, saturating, NaN as 0: the copy kernels' rule */
            double v = load_double(data, t->dtype, i);
            values[i] = v != v ? 0 : v <= -0x1p63 ? INT64_MIN : v >= 0x1p63 ? INT64_MAX : (int64_t)v;
            break;
        }
        }
    }
    tc_tensor_release(host);
    return TC_OK;
}

/* ---- in-place copies ---- */

tc_status tc_copy_(tc_tensor *dst, tc_tensor *src) {
    TC_TRY(tc_check_same_device("copy_", dst, src));
    int ndim;
    int64_t shape[TC_MAX_DIMS];
    TC_TRY(tc_broadcast_shapes(dst->ctx, "copy_", dst->ndim, dst->shape, src->ndim, src->shape, &ndim, shape));
    if (ndim != dst->ndim || tc_shape_numel(ndim, shape) != tc_tensor_numel(dst))
        return tc_fail(dst->ctx, TC_ERROR_SHAPE, "copy_: source of shape %s does not fit destination of shape %s",
                       TC_SHAPE(src), TC_SHAPE(dst));
    TC_TRY(tc_inplace_begin(dst, "copy_"));
    tc_tensor *view;
    TC_TRY(tc_broadcast_view(src, dst->ndim, dst->shape, &view));
    tc_status status = tc_backend_of(dst)->copy(dst, view);
    tc_tensor_release(view);
    return status;
}

tc_status tc_fill_(tc_tensor *t, double value) {
    TC_TRY(tc_check_scalar(t->ctx, "fill_", value, t->dtype));
    TC_TRY(tc_inplace_begin(t, "fill_"));
    return tc_backend_of(t)->fill(t, value);
}

tc_status tc_cast_if_needed(tc_tensor *t, tc_dtype dtype, tc_tensor **out) {
    if (t->dtype == dtype) {
        tc_tensor_retain(t);
        *out = t;
        return TC_OK;
    }
    TC_TRY(tc_empty_shaped(t, dtype, t->ndim, t->shape, out));
    tc_status status = tc_backend_of(t)->copy(*out, t);
    if (status != TC_OK) tc_tensor_release(*out);
    return status;
}

tc_status tc_contiguous_copy(const tc_tensor *t, tc_tensor **out) {
    TC_TRY(tc_empty_like(t, out));
    tc_status status = tc_backend_of(t)->copy(*out, t);
    if (status != TC_OK) tc_tensor_release(*out);
    return status;
}
