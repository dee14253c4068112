/*
 * ops_index.c: ops over many tensors (cat, stack) and indexing (gather,
 * index_select, embedding), each backward beside its forward. Index tensors
 * are int32 or int64 and 0-based; the kernels get them as contiguous int64
 * and report any index out of range, naming its value.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

/* The gradient arriving at a node in the node's output dtype, contiguous. */
static tc_status contiguous_grad(const tc_node *node, tc_tensor *grad, tc_tensor **out) {
    tc_tensor *cast;
    TC_TRY(tc_cast_if_needed(grad, node->out_dtype, &cast));
    tc_status status = tc_contiguous(cast, out);
    tc_tensor_release(cast);
    return status;
}

/* A contiguous int64 copy of an int32 or int64 index (the index itself,
 * retained, when it already is one). */
static tc_status index_as_int64(const char *function, const char *argument, tc_tensor *index, tc_tensor **out) {
    if (index->dtype != TC_INT32 && index->dtype != TC_INT64)
        return tc_fail(index->ctx, TC_ERROR_DTYPE, "%s: %s must be int32 or int64, got %s of shape %s", function,
                       argument, tc_dtype_name(index->dtype), TC_SHAPE(index));
    if (index->dtype == TC_INT64) {
        if (tc_tensor_is_contiguous(index)) {
            tc_tensor_retain(index);
            *out = index;
            return TC_OK;
        }
        return tc_contiguous_copy(index, out);
    }
    return tc_cast_if_needed(index, TC_INT64, out);
}

/* ---- cat and stack ---- */

/* Each input's gradient is its slice of the output's gradient along dim. */
tc_status tc_cat_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    int dim = (int)node->ints[0];
    int64_t start = 0;
    for (int i = 0; i < node->n_inputs; i++) {
        int64_t length = node->inputs[i]->shape[dim];
        if (tc_node_input_needs_grad(node, i)) TC_TRY(tc_narrow(grad, dim, start, length, &grad_inputs[i]));
        start += length;
    }
    return TC_OK;
}


/* The context of the first tensor in the list, or NULL when there is none. */
static tc_context *list_context(int count, tc_tensor **tensors) {
    for (int i = 0; i < count; i++)
        if (tensors[i]) return tensors[i]->ctx;
    return NULL;
}

/* Checks a list of tensors: present and on one device. */
static tc_status check_list(const char *function, int count, tc_tensor **tensors) {
    tc_context *ctx = tensors ? list_context(count, tensors) : NULL;
    if (count <= 0 || !ctx)
        return ctx ? tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: no tensors given", function)
                   : TC_ERROR_ARGUMENT; /* no tensor, so no context to report through */
    for (int i = 0; i < count; i++) {
        if (!tensors[i])
            return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: tensor %d of %d is missing", function, i + 1, count);
        if (i > 0) TC_TRY(tc_check_same_device(function, tensors[0], tensors[i]));
    }
    return TC_OK;
}

tc_status tc_cat(int count, tc_tensor **tensors, int dim, tc_tensor **out) {
    *out = NULL;
    TC_TRY(check_list("cat", count, tensors));
    const tc_tensor *first = tensors[0];
    tc_context *ctx = first->ctx;
    if (first->ndim == 0)
        return tc_fail(ctx, TC_ERROR_SHAPE, "cat: tensors must have at least 1 dim, tensor 1 is 0-dim");
    int d;
    if (!tc_normalize_dim(dim, first->ndim, &d))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "cat: dim %d is out of range for tensors of shape %s", tc_dim_shown(dim),
                       TC_SHAPE(first));
    int64_t shape[TC_MAX_DIMS];
    memcpy(shape, first->shape, sizeof shape);
    shape[d] = 0;
    tc_dtype dtype = first->dtype;
    for (int i = 0; i < count; i++) {
        const tc_tensor *t = tensors[i];
        if (t->ndim != first->ndim)
            return tc_fail(ctx, TC_ERROR_SHAPE,
                           "cat: tensor %d has shape %s but tensor 1 has shape %s (all need the same number of dims)",
                           i + 1, TC_SHAPE(t), TC_SHAPE(first));
        for (int e = 0; e < t->ndim; e++)
            if (e != d && t->shape[e] != first->shape[e])
                return tc_fail(ctx, TC_ERROR_SHAPE,
                               "cat: tensor %d of shape %s does not match tensor 1 of shape %s in dim %d (only dim "
                               "%d may differ)",
                               i + 1, TC_SHAPE(t), TC_SHAPE(first), e + 1, d + 1);
        if (!tc_add_sizes(shape[d], t->shape[d], &shape[d]))
            return tc_fail(ctx, TC_ERROR_SHAPE, "cat: the sizes of dim %d add up to more than 2^63 (tensor %d)", d + 1,
                           i + 1);
        dtype = tc_promote_dtypes(dtype, t->dtype);
    }
    tc_tensor **inputs = tc_calloc(ctx, (size_t)count, sizeof *inputs);
    if (!inputs) return TC_ERROR_MEMORY;
    tc_tensor *result = NULL;
    tc_status status = tc_empty_shaped(first, dtype, first->ndim, shape, &result);
    int64_t start = 0;
    for (int i = 0; i < count && status == TC_OK; i++) {
        status = tc_to_dtype(tensors[i], dtype, &inputs[i]);
        tc_tensor *slice = NULL;
        if (status == TC_OK)
            status = tc_tensor_alias(result, result->ndim, inputs[i]->shape, result->strides,
                                     result->offset + start * result->strides[d], &slice);
        if (status == TC_OK && tc_tensor_numel(slice) > 0) status = tc_backend_of(result)->copy(slice, inputs[i]);
        tc_tensor_release(slice);
        if (status == TC_OK) start += inputs[i]->shape[d];
    }
    if (status == TC_OK)
        status = tc_record_op(TC_OP_CAT, count, inputs, result, &(tc_node_state){.n_ints = 1, .ints = {d}});
    if (status == TC_OK) {
        *out = result;
        result = NULL;
    }
    tc_tensor_release(result);
    for (int i = 0; i < count; i++)
        tc_tensor_release(inputs[i]);
    tc_free(inputs);
    return status;
}

tc_status tc_stack(int count, tc_tensor **tensors, int dim, tc_tensor **out) {
    *out = NULL;
    TC_TRY(check_list("stack", count, tensors));
    const tc_tensor *first = tensors[0];
    tc_context *ctx = first->ctx;
    for (int i = 1; i < count; i++)
        if (!tc_same_shape(tensors[i], first))
            return tc_fail(ctx, TC_ERROR_SHAPE,
                           "stack: tensor %d has shape %s but tensor 1 has shape %s (all must have the same shape)",
                           i + 1, TC_SHAPE(tensors[i]), TC_SHAPE(first));
    if (first->ndim >= TC_MAX_DIMS)
        return tc_fail(ctx, TC_ERROR_SHAPE, "stack: tensors of shape %s already have the most dims (%d)",
                       TC_SHAPE(first), TC_MAX_DIMS);
    int d;
    if (!tc_normalize_dim(dim, first->ndim + 1, &d))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "stack: dim %d is out of range for stacking tensors of shape %s",
                       tc_dim_shown(dim), TC_SHAPE(first));
    tc_tensor **expanded = tc_calloc(ctx, (size_t)count, sizeof *expanded);
    if (!expanded) return TC_ERROR_MEMORY;
    tc_status status = TC_OK;
    for (int i = 0; i < count && status == TC_OK; i++)
        status = tc_unsqueeze(tensors[i], d, &expanded[i]);
    if (status == TC_OK) status = tc_cat(count, expanded, d, out);
    for (int i = 0; i < count; i++)
        tc_tensor_release(expanded[i]);
    tc_free(expanded);
    return status;
}

/* ---- gather ----
 * Saved: the int64 index; ints: dim. */

/* The gradient of a gather along the node's dim (ints[0]) by its saved
 * index: zeros of x's shape, into which scatter_add (by_element) or
 * index_add sums grad. */
static tc_status indexed_grad(tc_node *node, tc_tensor *grad, bool by_element, tc_tensor **grad_inputs) {
    int dim = (int)node->ints[0];
    tc_dtype dtype = node->inputs[0]->dtype;
    tc_tensor *g = NULL, *grad_x = NULL;
    TC_TRY(contiguous_grad(node, grad, &g));
    if (tc_dtype_is_16bit(dtype)) { /* the sums run in float32, rounded once below */
        tc_tensor *wide = NULL;
        tc_status cast = tc_cast_if_needed(g, TC_FLOAT32, &wide);
        tc_tensor_release(g);
        TC_TRY(cast);
        g = wide;
    }
    tc_status status = tc_empty_shaped(g, g->dtype, node->inputs[0]->ndim, node->inputs[0]->shape, &grad_x);
    if (status == TC_OK) status = tc_fill_(grad_x, 0.0);
    const tc_backend *backend = tc_backend_of(g);
    if (status == TC_OK && tc_tensor_numel(g) > 0)
        status = by_element ? backend->scatter_add(grad_x, dim, node->saved[0], g)
                            : backend->index_add(grad_x, dim, node->saved[0], g);
    tc_tensor_release(g);
    if (status == TC_OK && grad_x->dtype != dtype) {
        tc_tensor *narrow = NULL;
        status = tc_cast_if_needed(grad_x, dtype, &narrow);
        tc_tensor_release(grad_x);
        grad_x = narrow;
    }
    if (status != TC_OK) {
        tc_tensor_release(grad_x);
        return status;
    }
    grad_inputs[0] = grad_x;
    return TC_OK;
}

tc_status tc_gather_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    return indexed_grad(node, grad, true, grad_inputs);
}

/* A 0-dim x and index are gathered as 1-D tensors of one element. */
static tc_status gather_scalar(tc_tensor *x, tc_tensor *index, tc_tensor **out) {
    int64_t one = 1;
    tc_tensor *x1 = NULL, *index1 = NULL, *picked = NULL;
    tc_status status = tc_reshape(x, 1, &one, &x1);
    if (status == TC_OK) status = tc_reshape(index, 1, &one, &index1);
    if (status == TC_OK) status = tc_gather(x1, 0, index1, &picked);
    if (status == TC_OK) status = tc_reshape(picked, 0, NULL, out);
    tc_tensor_release(x1);
    tc_tensor_release(index1);
    tc_tensor_release(picked);
    return status;
}

tc_status tc_gather(tc_tensor *x, int dim, tc_tensor *index, tc_tensor **out) {
    *out = NULL;
    TC_TRY(tc_check_same_device("gather", x, index));
    tc_context *ctx = x->ctx;
    if (index->dtype != TC_INT32 && index->dtype != TC_INT64)
        return tc_fail(ctx, TC_ERROR_DTYPE, "gather: index must be int32 or int64, got %s of shape %s",
                       tc_dtype_name(index->dtype), TC_SHAPE(index));
    if (index->ndim != x->ndim)
        return tc_fail(ctx, TC_ERROR_SHAPE, "gather: index of shape %s must have as many dims as x of shape %s",
                       TC_SHAPE(index), TC_SHAPE(x));
    int d;
    if (!tc_normalize_dim(dim, x->ndim > 0 ? x->ndim : 1, &d))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "gather: dim %d is out of range for x of shape %s", tc_dim_shown(dim),
                       TC_SHAPE(x));
    if (x->ndim == 0) return gather_scalar(x, index, out);
    for (int e = 0; e < x->ndim; e++)
        if (e != d && index->shape[e] > x->shape[e])
            return tc_fail(ctx, TC_ERROR_SHAPE,
                           "gather: index of shape %s is larger than x of shape %s in dim %d (only dim %d, the "
                           "gathered one, may be larger)",
                           TC_SHAPE(index), TC_SHAPE(x), e + 1, d + 1);
    tc_tensor *input = NULL, *ids = NULL, *result = NULL;
    tc_status status = tc_contiguous(x, &input);
    if (status == TC_OK) status = index_as_int64("gather", "index", index, &ids);
    if (status == TC_OK) status = tc_empty_shaped(input, input->dtype, ids->ndim, ids->shape, &result);
    if (status == TC_OK && tc_tensor_numel(ids) > 0) status = tc_backend_of(input)->gather(input, d, ids, result);
    if (status == TC_OK)
        status = tc_record_op(TC_OP_GATHER, 1, &input, result,
                              &(tc_node_state){.n_ints = 1, .ints = {d}, .saved = {ids}});
    if (status == TC_OK) {
        *out = result;
        result = NULL;
    }
    tc_tensor_release(result);
    tc_tensor_release(ids);
    tc_tensor_release(input);
    return status;
}

/* ---- index_select ----
 * Saved: the 1-D int64 index; ints: dim. */

tc_status tc_index_select_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    return indexed_grad(node, grad, false, grad_inputs);
}

tc_status tc_index_select(tc_tensor *x, int dim, tc_tensor *index, tc_tensor **out) {
    *out = NULL;
    TC_TRY(tc_check_same_device("index_select", x, index));
    tc_context *ctx = x->ctx;
    if (index->dtype != TC_INT32 && index->dtype != TC_INT64)
        return tc_fail(ctx, TC_ERROR_DTYPE, "index_select: index must be int32 or int64, got %s of shape %s",
                       tc_dtype_name(index->dtype), TC_SHAPE(index));
    if (index->ndim > 1)
        return tc_fail(ctx, TC_ERROR_SHAPE, "index_select: index must be 1-D, got shape %s", TC_SHAPE(index));
    if (x->ndim == 0)
        return tc_fail(ctx, TC_ERROR_SHAPE, "index_select: x must have at least 1 dim, got a 0-dim tensor");
    int d;
    if (!tc_normalize_dim(dim, x->ndim, &d))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "index_select: dim %d is out of range for x of shape %s",
                       tc_dim_shown(dim), TC_SHAPE(x));
    int64_t count = tc_tensor_numel(index), shape[TC_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[d] = count;
    tc_tensor *input = NULL, *ids = NULL, *flat = NULL, *result = NULL;
    tc_status status = tc_contiguous(x, &input);
    if (status == TC_OK) status = index_as_int64("index_select", "index", index, &ids);
    if (status == TC_OK) status = tc_tensor_alias(ids, 1, &count, (const int64_t[]){1}, ids->offset, &flat);
    if (status == TC_OK) status = tc_empty_shaped(input, input->dtype, input->ndim, shape, &result);
    /* An empty result has nothing to copy (its slices may be many, each of 0 bytes). */
    if (status == TC_OK && tc_tensor_numel(result) > 0)
        status = tc_backend_of(input)->index_select(input, d, flat, result);
    if (status == TC_OK)
        status = tc_record_op(TC_OP_INDEX_SELECT, 1, &input, result,
                              &(tc_node_state){.n_ints = 1, .ints = {d}, .saved = {flat}});
    if (status == TC_OK) {
        *out = result;
        result = NULL;
    }
    tc_tensor_release(result);
    tc_tensor_release(flat);
    tc_tensor_release(ids);
    tc_tensor_release(input);
    return status;
}

/* ---- embedding ---- */

/* On the CPU, names the first id outside [0, rows) before any work. */
static tc_status check_ids(const tc_tensor *weight, const tc_tensor *ids) {
    const int64_t *values = tc_tensor_data(ids);
    if (!values) return TC_OK; /* on a device: the kernel checks */
    int64_t n = tc_tensor_numel(ids), rows = weight->shape[0];
    for (int64_t i = 0; i < n; i++)
        if (values[i] < 0 || values[i] >= rows)
            return tc_fail(weight->ctx, TC_ERROR_ARGUMENT,
                           "embedding: id %lld (element %lld of ids) is out of range for a weight of shape %s (ids "
                           "are 0-based, below %lld)",
                           (long long)values[i], (long long)i + 1, TC_SHAPE(weight), (long long)rows);
    return TC_OK;
}

tc_status tc_embedding(tc_tensor *weight, tc_tensor *ids, tc_tensor **out) {
    *out = NULL;
    TC_TRY(tc_check_same_device("embedding", weight, ids));
    tc_context *ctx = weight->ctx;
    if (weight->ndim != 2)
        return tc_fail(ctx, TC_ERROR_SHAPE, "embedding: weight must be 2-D [n, d], got shape %s", TC_SHAPE(weight));
    if (ids->dtype != TC_INT32 && ids->dtype != TC_INT64)
        return tc_fail(ctx, TC_ERROR_DTYPE, "embedding: ids must be int32 or int64, got %s of shape %s",
                       tc_dtype_name(ids->dtype), TC_SHAPE(ids));
    if (ids->ndim >= TC_MAX_DIMS)
        return tc_fail(ctx, TC_ERROR_SHAPE, "embedding: ids of shape %s have too many dims (at most %d)", TC_SHAPE(ids),
                       TC_MAX_DIMS - 1);
    int64_t n = tc_tensor_numel(ids), shape[TC_MAX_DIMS];
    memcpy(shape, ids->shape, sizeof(int64_t) * (size_t)ids->ndim);
    shape[ids->ndim] = weight->shape[1];
    tc_tensor *flat_ids = NULL, *flat = NULL, *rows = NULL;
    tc_status status = index_as_int64("embedding", "ids", ids, &flat_ids);
    if (status == TC_OK) status = check_ids(weight, flat_ids);
    if (status == TC_OK) status = tc_reshape(flat_ids, 1, &n, &flat);
    if (status == TC_OK) status = tc_index_select(weight, 0, flat, &rows);
    if (status == TC_OK) status = tc_reshape(rows, ids->ndim + 1, shape, out);
    tc_tensor_release(rows);
    tc_tensor_release(flat);
    tc_tensor_release(flat_ids);
    return status;
}

/* ---- scatter_add, index_add ----
 * Out of place: a copy of x into which src is summed at the positions an
 * index names. Float32 and float64 (the kernels are the gradients' sums of
 * gather and index_select). Saved: the int64 index; ints: dim. */

/* Names the first id outside [0, size) before any kernel runs, on every
 * device (a device index is read back), with the op's name. */
static tc_status check_index_range(const char *function, const tc_tensor *x, int dim, const tc_tensor *ids) {
    int64_t n = tc_tensor_numel(ids), size = x->shape[dim];
    if (n == 0) return TC_OK;
    /* ids is a valid int64 tensor: n * 8 bytes fits */
    int64_t *values = tc_malloc(x->ctx, (size_t)n * sizeof(int64_t));
    if (!values) return TC_ERROR_MEMORY;
    tc_status status = tc_copy_to_int64(ids, values, n);
    for (int64_t i = 0; i < n && status == TC_OK; i++)
        if (values[i] < 0 || values[i] >= size)
            status = tc_fail(x->ctx, TC_ERROR_ARGUMENT,
                             "%s: index %lld (element %lld of index) is out of range for dim %d of size %lld (x of "
                             "shape %s; indices are 0-based)",
                             function, (long long)values[i], (long long)i + 1, dim + 1, (long long)size, TC_SHAPE(x));
    tc_free(values);
    return status;
}

/* The checks both ops share: devices, dtypes, a dim of x. */
static tc_status check_summed_into(const char *function, tc_tensor *x, int dim, tc_tensor *index, tc_tensor *src,
                                   int *d) {
    TC_TRY(tc_check_same_device(function, x, index));
    TC_TRY(tc_check_same_device(function, x, src));
    tc_context *ctx = x->ctx;
    if (x->dtype != TC_FLOAT32 && x->dtype != TC_FLOAT64)
        return tc_fail(ctx, TC_ERROR_DTYPE, "%s: x must be float32, float64, bfloat16 or float16, got %s",
                       function, tc_dtype_name(x->dtype));
    if (src->dtype != x->dtype)
        return tc_fail(ctx, TC_ERROR_DTYPE, "%s: src must have x's dtype %s, got %s", function,
                       tc_dtype_name(x->dtype), tc_dtype_name(src->dtype));
    if (index->dtype != TC_INT32 && index->dtype != TC_INT64)
        return tc_fail(ctx, TC_ERROR_DTYPE, "%s: index must be int32 or int64, got %s of shape %s", function,
                       tc_dtype_name(index->dtype), TC_SHAPE(index));
    if (x->ndim == 0)
        return tc_fail(ctx, TC_ERROR_SHAPE, "%s: x must have at least 1 dim, got a 0-dim tensor", function);
    if (!tc_normalize_dim(dim, x->ndim, d))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: dim %d is out of range for x of shape %s", function,
                       tc_dim_shown(dim), TC_SHAPE(x));
    return TC_OK;
}

/* out = a contiguous copy of x with src summed in by the backend's
 * scatter_add (by_element) or index_add, recorded as op id. */
static tc_status summed_into(tc_op_id id, tc_tensor *x, int d, tc_tensor *ids, tc_tensor *src, bool by_element,
                             tc_tensor **out) {
    tc_tensor *result = NULL, *values = NULL;
    tc_status status = tc_contiguous_copy(x, &result);
    if (status == TC_OK) status = tc_contiguous(src, &values);
    const tc_backend *backend = tc_backend_of(x);
    if (status == TC_OK && tc_tensor_numel(values) > 0)
        status = by_element ? backend->scatter_add(result, d, ids, values) : backend->index_add(result, d, ids, values);
    tc_tensor *inputs[2] = {x, src};
    if (status == TC_OK)
        status = tc_record_op(id, 2, inputs, result, &(tc_node_state){.n_ints = 1, .ints = {d}, .saved = {ids}});
    if (status == TC_OK) {
        *out = result;
        result = NULL;
    }
    tc_tensor_release(result);
    tc_tensor_release(values);
    return status;
}

/* grad_x is grad; grad_src is grad picked at the index (gather or
 * index_select by the saved index along the saved dim). */
static tc_status summed_into_backward(tc_node *node, tc_tensor *grad, bool by_element, tc_tensor **grad_inputs) {
    tc_tensor *g = NULL;
    TC_TRY(contiguous_grad(node, grad, &g));
    tc_status status = TC_OK;
    int dim = (int)node->ints[0];
    tc_tensor *index = (tc_tensor *)node->saved[0];
    if (tc_node_input_needs_grad(node, 1))
        status = by_element ? tc_gather(g, dim, index, &grad_inputs[1])
                            : tc_index_select(g, dim, index, &grad_inputs[1]);
    if (status == TC_OK && tc_node_input_needs_grad(node, 0)) {
        tc_tensor_retain(g);
        grad_inputs[0] = g;
    }
    tc_tensor_release(g);
    return status;
}

tc_status tc_scatter_add_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    return summed_into_backward(node, grad, true, grad_inputs);
}

tc_status tc_index_add_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    return summed_into_backward(node, grad, false, grad_inputs);
}

/* scatter_add or index_add of 16-bit x and src: computed in float32, rounded once. */
static tc_status summed_into_16bit(bool by_element, tc_tensor *x, int dim, tc_tensor *index, tc_tensor *src,
                                   tc_tensor **out) {
    const char *function = by_element ? "scatter_add" : "index_add";
    if (src->dtype != x->dtype)
        return tc_fail(x->ctx, TC_ERROR_DTYPE, "%s: src must have x's dtype %s, got %s", function,
                       tc_dtype_name(x->dtype), tc_dtype_name(src->dtype));
    tc_tensor *wide[2] = {NULL, NULL}, *result = NULL;
    tc_status status = tc_widen_16bit(x, &wide[0]);
    if (status == TC_OK) status = tc_widen_16bit(src, &wide[1]);
    if (status == TC_OK)
        status = by_element ? tc_scatter_add(wide[0], dim, index, wide[1], &result)
                            : tc_index_add(wide[0], dim, index, wide[1], &result);
    tc_tensor_release(wide[0]);
    tc_tensor_release(wide[1]);
    return tc_narrow_16bit(status, result, x->dtype, out);
}

tc_status tc_scatter_add(tc_tensor *x, int dim, tc_tensor *index, tc_tensor *src, tc_tensor **out) {
    *out = NULL;
    if (tc_dtype_is_16bit(x->dtype)) return summed_into_16bit(true, x, dim, index, src, out);
    int d;
    TC_TRY(check_summed_into("scatter_add", x, dim, index, src, &d));
    tc_context *ctx = x->ctx;
    if (index->ndim != x->ndim || !tc_same_shape(index, src))
        return tc_fail(ctx, TC_ERROR_SHAPE,
                       "scatter_add: index of shape %s and src of shape %s must have one shape, with as many dims as "
                       "x of shape %s",
                       TC_SHAPE(index), TC_SHAPE(src), TC_SHAPE(x));
    for (int e = 0; e < x->ndim; e++)
        if (e != d && index->shape[e] > x->shape[e])
            return tc_fail(ctx, TC_ERROR_SHAPE,
                           "scatter_add: index of shape %s is larger than x of shape %s in dim %d (only dim %d, the "
                           "indexed one, may be larger)",
                           TC_SHAPE(index), TC_SHAPE(x), e + 1, d + 1);
    tc_tensor *ids = NULL;
    tc_status status = index_as_int64("scatter_add", "index", index, &ids);
    if (status == TC_OK) status = check_index_range("scatter_add", x, d, ids);
    if (status == TC_OK) status = summed_into(TC_OP_SCATTER_ADD, x, d, ids, src, true, out);
    tc_tensor_release(ids);
    return status;
}

tc_status tc_index_add(tc_tensor *x, int dim, tc_tensor *index, tc_tensor *src, tc_tensor **out) {
    *out = NULL;
    if (tc_dtype_is_16bit(x->dtype)) return summed_into_16bit(false, x, dim, index, src, out);
    int d;
    TC_TRY(check_summed_into("index_add", x, dim, index, src, &d));
    tc_context *ctx = x->ctx;
    if (index->ndim > 1)
        return tc_fail(ctx, TC_ERROR_SHAPE, "index_add: index must be 1-D, got shape %s", TC_SHAPE(index));
    int64_t count = tc_tensor_numel(index);
    bool fits = src->ndim == x->ndim;
    for (int e = 0; fits && e < x->ndim; e++)
        fits = src->shape[e] == (e == d ? count : x->shape[e]);
    if (!fits)
        return tc_fail(ctx, TC_ERROR_SHAPE,
                       "index_add: src of shape %s must be x's shape %s with dim %d of size %lld (the index's length)",
                       TC_SHAPE(src), TC_SHAPE(x), d + 1, (long long)count);
    tc_tensor *ids = NULL, *flat = NULL;
    tc_status status = index_as_int64("index_add", "index", index, &ids);
    if (status == TC_OK) status = tc_tensor_alias(ids, 1, &count, (const int64_t[]){1}, ids->offset, &flat);
    if (status == TC_OK) status = check_index_range("index_add", x, d, flat);
    if (status == TC_OK) status = summed_into(TC_OP_INDEX_ADD, x, d, flat, src, false, out);
    tc_tensor_release(flat);
    tc_tensor_release(ids);
    return status;
}
