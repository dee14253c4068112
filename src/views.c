/*
 * views.c: ops that share storage (reshape, transpose, narrow, expand, ...)
 * and the copies beside them (contiguous, clone, detach, casts, devices),
 * each with its backward.
 */
#include "internal.h"

#include <string.h>

/* ---- backward functions shared by several views ---- */

/* The gradient of any op that only re-labels elements in row-major order. */
tc_status tc_reshape_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    const tc_tensor *input = node->inputs[0];
    return tc_reshape(grad, input->ndim, input->shape, &grad_inputs[0]);
}

tc_status tc_identity_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    (void)node;
    tc_tensor_retain(grad);
    grad_inputs[0] = grad;
    return TC_OK;
}


static tc_status finish_view(tc_tensor *input, const tc_op *op, tc_tensor *out, tc_node **node) {
    if (node) *node = NULL;
    if (!tc_should_record(input->ctx, 1, &input)) return TC_OK;
    tc_status status = tc_record(op, 1, &input, out, node);
    if (status != TC_OK) tc_tensor_release(out);
    return status;
}

/* ---- reshape and view ---- */

static tc_status infer_shape(tc_tensor *t, const char *function, int ndim, const int64_t *shape, int64_t *resolved) {
    if (ndim < 0 || ndim > TC_MAX_DIMS)
        return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "%s: a shape has 0 to %d dims, got %d", function, TC_MAX_DIMS,
                       ndim);
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == -1) {
            if (infer >= 0)
                return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "%s: only one size may be -1", function);
            infer = i;
        } else if (shape[i] < 0) {
            return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "%s: size %lld of dim %d is negative", function,
                           (long long)shape[i], i + 1);
        } else if (!tc_mul_sizes(known, shape[i], &known)) {
            char wanted[TC_SHAPE_STRING_SIZE];
            return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "%s: shape %s has more than 2^63 elements", function,
                           tc_shape_string(ndim, shape, wanted, sizeof wanted));
        }
        resolved[i] = shape[i];
    }
    int64_t numel = tc_tensor_numel(t);
    if (infer >= 0) {
        if (known == 0 || numel % known != 0) goto mismatch;
        resolved[infer] = numel / known;
    } else if (known != numel) {
        goto mismatch;
    }
    return tc_check_shape(t->ctx, function, ndim, resolved, t->dtype);
mismatch : {
    char wanted[TC_SHAPE_STRING_SIZE];
    return tc_fail(t->ctx, TC_ERROR_SHAPE, "%s: shape %s does not fit a tensor of shape %s (%lld elements)",
                   function, tc_shape_string(ndim, shape, wanted, sizeof wanted), TC_SHAPE(t), (long long)numel);
}
}

/* Strides for viewing t as `shape` without a copy, if its layout allows:
 * walk the old dims from the last, cutting them into chunks that are
 * contiguous among themselves, and give each chunk's elements to new dims. */
static bool view_strides(const tc_tensor *t, int ndim, const int64_t *shape, int64_t *strides) {
    if (tc_tensor_is_contiguous(t) || tc_tensor_numel(t) == 0) {
        tc_contiguous_strides(ndim, shape, strides);
        return true;
    }
    int view_d = ndim - 1;
    int64_t chunk_stride = t->strides[t->ndim - 1];
    int64_t tensor_count = 1, view_count = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        tensor_count *= t->shape[d];
        bool chunk_ends = d == 0 || (t->shape[d - 1] != 1 && t->strides[d - 1] != tensor_count * chunk_stride);
        if (!chunk_ends) continue;
        while (view_d >= 0 && (view_count < tensor_count || shape[view_d] == 1)) {
            strides[view_d] = view_count * chunk_stride;
            view_count *= shape[view_d];
            view_d--;
        }
        if (view_count != tensor_count) return false;
        if (d > 0) {
            chunk_stride = t->strides[d - 1];
            tensor_count = 1;
            view_count = 1;
        }
    }
    return view_d == -1;
}

static tc_status reshape_impl(tc_tensor *t, const char *function, bool allow_copy, int ndim, const int64_t *shape,
                              tc_tensor **out) {
    int64_t resolved[TC_MAX_DIMS], strides[TC_MAX_DIMS];
    TC_TRY(infer_shape(t, function, ndim, shape, resolved));
    if (view_strides(t, ndim, resolved, strides)) {
        TC_TRY(tc_tensor_alias(t, ndim, resolved, strides, t->offset, out));
        return finish_view(t, &tc_tape_ops[TC_OP_RESHAPE], *out, NULL);
    }
    if (!allow_copy)
        return tc_fail(t->ctx, TC_ERROR_SHAPE,
                       "%s: a tensor of shape %s with these strides cannot be viewed as another shape; "
                       "use reshape or contiguous first",
                       function, TC_SHAPE(t));
    tc_tensor *copy;
    TC_TRY(tc_contiguous(t, &copy));
    tc_status status = reshape_impl(copy, function, false, ndim, resolved, out);
    tc_tensor_release(copy);
    return status;
}

tc_status tc_reshape(tc_tensor *t, int ndim, const int64_t *shape, tc_tensor **out) {
    return reshape_impl(t, "reshape", true, ndim, shape, out);
}

tc_status tc_view(tc_tensor *t, int ndim, const int64_t *shape, tc_tensor **out) {
    return reshape_impl(t, "view", false, ndim, shape, out);
}

tc_status tc_flatten(tc_tensor *t, int start_dim, int end_dim, tc_tensor **out) {
    int start, end;
    if (t->ndim == 0) return tc_reshape(t, 1, (int64_t[]){1}, out);
    if (!tc_normalize_dim(start_dim, t->ndim, &start) || !tc_normalize_dim(end_dim, t->ndim, &end) || start > end)
        return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "flatten: dims %d..%d are out of range for a tensor of shape %s",
                       tc_dim_shown(start_dim), tc_dim_shown(end_dim), TC_SHAPE(t));
    int64_t shape[TC_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < start; d++) shape[n++] = t->shape[d];
    int64_t merged = 1;
    for (int d = start; d <= end; d++) merged *= t->shape[d];
    shape[n++] = merged;
    for (int d = end + 1; d < t->ndim; d++) shape[n++] = t->shape[d];
    return tc_reshape(t, n, shape, out);
}

tc_status tc_squeeze(tc_tensor *t, int dim, tc_tensor **out) {
    int d;
    if (!tc_normalize_dim(dim, t->ndim, &d) || t->ndim == 0)
        return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "squeeze: dim %d is out of range for a tensor of shape %s",
                       tc_dim_shown(dim), TC_SHAPE(t));
    if (t->shape[d] != 1) return tc_reshape(t, t->ndim, t->shape, out);
    int64_t shape[TC_MAX_DIMS];
    int n = 0;
    for (int i = 0; i < t->ndim; i++)
        if (i != d) shape[n++] = t->shape[i];
    return tc_reshape(t, n, shape, out);
}

tc_status tc_unsqueeze(tc_tensor *t, int dim, tc_tensor **out) {
    int d;
    if (t->ndim >= TC_MAX_DIMS)
        return tc_fail(t->ctx, TC_ERROR_ARGUMENT,
                       "unsqueeze: a tensor of shape %s already has %d dims, the most a tensor can have", TC_SHAPE(t),
                       TC_MAX_DIMS);
    if (!tc_normalize_dim(dim, t->ndim + 1, &d))
        return tc_fail(t->ctx, TC_ERROR_ARGUMENT,
                       "unsqueeze: dim %d is out of range for a tensor of shape %s (valid: %d to %d)",
                       tc_dim_shown(dim), TC_SHAPE(t), -(t->ndim + 1), t->ndim + 1);
    int64_t shape[TC_MAX_DIMS];
    int n = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (i == d) shape[n++] = 1;
        shape[n++] = t->shape[i];
    }
    if (d == t->ndim) shape[n++] = 1;
    return tc_reshape(t, n, shape, out);
}

/* ---- permutations ---- */

tc_status tc_permute_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    int inverse[TC_MAX_DIMS];
    for (int i = 0; i < node->n_ints; i++) inverse[node->ints[i]] = i;
    return tc_permute(grad, node->n_ints, inverse, &grad_inputs[0]);
}


tc_status tc_permute(tc_tensor *t, int ndim, const int *dims, tc_tensor **out) {
    if (ndim != t->ndim)
        return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "permute: %d dims given for a tensor of shape %s", ndim,
                       TC_SHAPE(t));
    int64_t shape[TC_MAX_DIMS], strides[TC_MAX_DIMS];
    int order[TC_MAX_DIMS];
    bool seen[TC_MAX_DIMS] = {false};
    for (int i = 0; i < ndim; i++) {
        int d;
        if (!tc_normalize_dim(dims[i], ndim, &d))
            return tc_fail(t->ctx, TC_ERROR_ARGUMENT,
                           "permute: dim %d (entry %d) is out of range for a tensor of shape %s", tc_dim_shown(dims[i]),
                           i + 1, TC_SHAPE(t));
        if (seen[d])
            return tc_fail(t->ctx, TC_ERROR_ARGUMENT,
                           "permute: dim %d appears twice (entry %d); dims must be a permutation of the %d dims of a "
                           "tensor of shape %s",
                           d + 1, i + 1, ndim, TC_SHAPE(t));
        seen[d] = true;
        order[i] = d;
        shape[i] = t->shape[d];
        strides[i] = t->strides[d];
    }
    TC_TRY(tc_tensor_alias(t, ndim, shape, strides, t->offset, out));
    tc_node *node;
    TC_TRY(finish_view(t, &tc_tape_ops[TC_OP_PERMUTE], *out, &node));
    if (node) {
        node->n_ints = ndim;
        for (int i = 0; i < ndim; i++) node->ints[i] = order[i];
    }
    return TC_OK;
}

tc_status tc_transpose(tc_tensor *t, int dim0, int dim1, tc_tensor **out) {
    int a, b;
    if (t->ndim == 0) return tc_reshape(t, 0, NULL, out);
    if (!tc_normalize_dim(dim0, t->ndim, &a) || !tc_normalize_dim(dim1, t->ndim, &b))
        return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "transpose: dims %d and %d are out of range for shape %s",
                       tc_dim_shown(dim0), tc_dim_shown(dim1), TC_SHAPE(t));
    int order[TC_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) order[i] = i;
    order[a] = b;
    order[b] = a;
    return tc_permute(t, t->ndim, order, out);
}

/* ---- narrow and select ---- */

/* grad_input = zeros shaped like the input with grad written into the slice
 * that narrow/select took (ints: dim, start, length, squeeze flag). */
tc_status tc_slice_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    const tc_tensor *input = node->inputs[0];
    int dim = (int)node->ints[0];
    tc_tensor *zeros, *slice;
    TC_TRY(tc_tensor_new(grad->ctx, grad->dtype, grad->storage->device, input->ndim, input->shape, &zeros));
    tc_status status = tc_fill_(zeros, 0.0);
    if (status != TC_OK) goto fail;
    int64_t strides[TC_MAX_DIMS];
    tc_contiguous_strides(zeros->ndim, zeros->shape, strides);
    int64_t shape[TC_MAX_DIMS];
    memcpy(shape, zeros->shape, sizeof shape);
    shape[dim] = node->ints[2];
    status = tc_tensor_alias(zeros, zeros->ndim, shape, strides, node->ints[1] * strides[dim], &slice);
    if (status != TC_OK) goto fail;
    status = tc_copy_(slice, grad); /* a selected grad broadcasts over the size-1 dim */
    if (status != TC_OK && node->ints[3]) {
        tc_tensor *expanded;
        tc_clear_error(grad->ctx);
        status = tc_unsqueeze(grad, dim, &expanded);
        if (status == TC_OK) {
            status = tc_copy_(slice, expanded);
            tc_tensor_release(expanded);
        }
    }
    tc_tensor_release(slice);
    if (status != TC_OK) goto fail;
    grad_inputs[0] = zeros;
    return TC_OK;
fail:
    tc_tensor_release(zeros);
    return status;
}


tc_status tc_narrow(tc_tensor *t, int dim, int64_t start, int64_t length, tc_tensor **out) {
    int d;
    if (t->ndim == 0 || !tc_normalize_dim(dim, t->ndim, &d))
        return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "narrow: dim %d is out of range for a tensor of shape %s",
                       tc_dim_shown(dim), TC_SHAPE(t));
    int64_t end;
    if (!tc_add_sizes(start, length, &end) || end > t->shape[d])
        return tc_fail(t->ctx, TC_ERROR_ARGUMENT,
                       "narrow: start %lld and length %lld do not fit dim %d of size %lld (shape %s)",
                       (long long)start + (start >= 0 && start < INT64_MAX), (long long)length, d + 1,
                       (long long)t->shape[d], TC_SHAPE(t));
    int64_t shape[TC_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[d] = length;
    TC_TRY(tc_tensor_alias(t, t->ndim, shape, t->strides, t->offset + start * t->strides[d], out));
    tc_node *node;
    TC_TRY(finish_view(t, &tc_tape_ops[TC_OP_NARROW], *out, &node));
    if (node) {
        node->ints[0] = d;
        node->ints[1] = start;
        node->ints[2] = length;
        node->ints[3] = 0;
    }
    return TC_OK;
}

tc_status tc_select(tc_tensor *t, int dim, int64_t index, tc_tensor **out) {
    int d;
    if (t->ndim == 0 || !tc_normalize_dim(dim, t->ndim, &d))
        return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "select: dim %d is out of range for a tensor of shape %s",
                       tc_dim_shown(dim), TC_SHAPE(t));
    /* Messages count dims and positions from 1, as the Lua side does. */
    int64_t requested = index;
    if (index < 0) index += t->shape[d];
    if (index < 0 || index >= t->shape[d])
        return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "select: index %lld is out of range for dim %d of size %lld",
                       (long long)requested + (requested >= 0 && requested < INT64_MAX), d + 1, (long long)t->shape[d]);
    int64_t shape[TC_MAX_DIMS], strides[TC_MAX_DIMS];
    int n = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (i == d) continue;
        shape[n] = t->shape[i];
        strides[n++] = t->strides[i];
    }
    TC_TRY(tc_tensor_alias(t, n, shape, strides, t->offset + index * t->strides[d], out));
    tc_node *node;
    TC_TRY(finish_view(t, &tc_tape_ops[TC_OP_SELECT], *out, &node));
    if (node) {
        node->ints[0] = d;
        node->ints[1] = index;
        node->ints[2] = 1;
        node->ints[3] = 1;
    }
    return TC_OK;
}

/* ---- expand ---- */

tc_status tc_expand_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    const tc_tensor *input = node->inputs[0];
    return tc_sum_to_shape(grad, input->ndim, input->shape, &grad_inputs[0]);
}


tc_status tc_expand(tc_tensor *t, int ndim, const int64_t *shape, tc_tensor **out) {
    if (ndim < t->ndim || ndim > TC_MAX_DIMS)
        return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "expand: %d sizes given for a tensor of shape %s", ndim,
                       TC_SHAPE(t));
    int64_t resolved[TC_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        int d = i - (ndim - t->ndim);
        int64_t have = d >= 0 ? t->shape[d] : 1;
        int64_t want = shape[i] == -1 && d >= 0 ? have : shape[i];
        if (want < 0 || (have != 1 && have != want)) {
            char wanted[TC_SHAPE_STRING_SIZE];
            return tc_fail(t->ctx, TC_ERROR_SHAPE, "expand: a tensor of shape %s cannot expand to %s (dim %d)",
                           TC_SHAPE(t), tc_shape_string(ndim, shape, wanted, sizeof wanted), i + 1);
        }
        resolved[i] = want;
    }
    TC_TRY(tc_check_shape(t->ctx, "expand", ndim, resolved, t->dtype));
    TC_TRY(tc_broadcast_view(t, ndim, resolved, out));
    return finish_view(t, &tc_tape_ops[TC_OP_EXPAND], *out, NULL);
}

/* ---- copies ---- */

tc_status tc_contiguous(tc_tensor *t, tc_tensor **out) {
    if (tc_tensor_is_contiguous(t)) {
        tc_tensor_retain(t);
        *out = t;
        return TC_OK;
    }
    TC_TRY(tc_contiguous_copy(t, out));
    return finish_view(t, &tc_tape_ops[TC_OP_CONTIGUOUS], *out, NULL);
}

tc_status tc_clone(tc_tensor *t, tc_tensor **out) {
    TC_TRY(tc_contiguous_copy(t, out));
    return finish_view(t, &tc_tape_ops[TC_OP_CLONE], *out, NULL);
}

tc_status tc_detach(tc_tensor *t, tc_tensor **out) {
    return tc_tensor_alias(t, t->ndim, t->shape, t->strides, t->offset, out);
}

tc_status tc_cast_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    return tc_to_dtype(grad, node->inputs[0]->dtype, &grad_inputs[0]);
}


tc_status tc_to_dtype(tc_tensor *t, tc_dtype dtype, tc_tensor **out) {
    if ((unsigned)dtype >= TC_DTYPE_COUNT) return tc_fail(t->ctx, TC_ERROR_DTYPE, "to: unknown dtype %d", (int)dtype);
    if (t->dtype == dtype) {
        tc_tensor_retain(t);
        *out = t;
        return TC_OK;
    }
    TC_TRY(tc_cast_if_needed(t, dtype, out));
    if (!tc_dtype_is_floating(dtype)) return TC_OK;
    return finish_view(t, &tc_tape_ops[TC_OP_TO_DTYPE], *out, NULL);
}

tc_status tc_device_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    return tc_to_device(grad, node->inputs[0]->storage->device, &grad_inputs[0]);
}


/* Copies between host and device go through the device backend's copy,
 * which accepts one host operand. */
tc_status tc_to_device(tc_tensor *t, tc_device device, tc_tensor **out) {
    if (t->storage->device == device) {
        tc_tensor_retain(t);
        *out = t;
        return TC_OK;
    }
    const tc_backend *target;
    TC_TRY(tc_backend_for(t->ctx, device, &target));
    tc_tensor *source;
    TC_TRY(tc_contiguous_copy(t, &source));
    tc_status status = tc_tensor_new(t->ctx, t->dtype, device, t->ndim, t->shape, out);
    if (status == TC_OK) {
        const tc_backend *device_side = device == TC_CPU ? tc_backend_of(source) : target;
        status = device_side->copy(*out, source);
        if (status != TC_OK) tc_tensor_release(*out);
    }
    tc_tensor_release(source);
    if (status != TC_OK) return status;
    return finish_view(t, &tc_tape_ops[TC_OP_TO_DEVICE], *out, NULL);
}
