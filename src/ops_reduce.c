/*
 * ops_reduce.c: sum, mean, max, min, argmax, argmin and var over any dims,
 * with keepdim; each backward beside its forward. A 16-bit x goes to the
 * reduce kernel as it is where the backend takes it (half_slots), else is
 * widened; the gradients give the widening path's bits either way.
 */
#include "internal.h"

#include <string.h>


/* Shape of x with the masked dims set to 1. */
static void kept_shape(const tc_tensor *x, uint32_t mask, int64_t *shape) {
    for (int d = 0; d < x->ndim; d++) shape[d] = (mask & (1u << d)) ? 1 : x->shape[d];
}

/* The gradient of the output, brought back to x's rank (size 1 on reduced
 * dims) so it broadcasts against x. */
static tc_status grad_with_kept_dims(tc_node *node, tc_tensor *grad, tc_tensor **out) {
    const tc_tensor *x = node->inputs[0];
    int64_t shape[TC_MAX_DIMS];
    kept_shape(x, (uint32_t)node->ints[1], shape);
    return tc_reshape(grad, x->ndim, shape, out);
}

/* g * 2 (x - mean) / (N - correction), g with x's rank. */
static tc_status var_gradient(const tc_node *node, tc_tensor *x, tc_tensor *g, tc_tensor **out) {
    tc_tensor *mean = NULL, *centered = NULL, *scaled = NULL;
    int dims[TC_MAX_DIMS], ndims = 0;
    for (int d = 0; d < x->ndim; d++)
        if (node->ints[1] & (1 << d)) dims[ndims++] = d;
    tc_status status = tc_reduce(TC_REDUCE_MEAN, x, ndims, dims, true, &mean);
    if (status == TC_OK) status = tc_binary(TC_SUB, x, mean, &centered);
    if (status == TC_OK)
        status = tc_binary_scalar(TC_MUL, centered, 2.0 / (double)(node->ints[2] - node->ints[3]), false, &scaled);
    if (status == TC_OK) status = tc_binary(TC_MUL, scaled, g, out);
    tc_tensor_release(mean);
    tc_tensor_release(centered);
    tc_tensor_release(scaled);
    return status;
}

/* A 16-bit x's: in float32, rounded once (the widening path's bits; in 16
 * bits the mean, the centering and the scaling would each round). */
static tc_status var_gradient_16bit(const tc_node *node, tc_tensor *x, tc_tensor *g, tc_tensor **out) {
    tc_tensor *wide_x = NULL, *wide_g = NULL, *wide = NULL;
    *out = NULL;
    tc_status status = tc_widen_16bit(x, &wide_x);
    if (status == TC_OK) status = tc_widen_16bit(g, &wide_g);
    if (status == TC_OK) status = var_gradient(node, wide_x, wide_g, &wide);
    tc_tensor_release(wide_x);
    tc_tensor_release(wide_g);
    return tc_narrow_16bit(status, wide, x->dtype, out);
}

tc_status tc_reduce_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    tc_reduce_op op = (tc_reduce_op)node->ints[0];
    tc_tensor *x = node->inputs[0];
    int64_t count = node->ints[2];
    tc_tensor *g = NULL, *t1 = NULL, *t2 = NULL, *t3 = NULL;
    TC_TRY(grad_with_kept_dims(node, grad, &g));
    tc_status status = TC_OK;
    switch (op) {
    case TC_REDUCE_SUM: status = tc_expand(g, x->ndim, x->shape, &t1); break;
    case TC_REDUCE_MEAN:
        if (tc_dtype_is_16bit(g->dtype)) { /* g / count in float32, rounded once: count may not fit 16 bits */
            tc_tensor *wide = NULL, *quotient = NULL;
            status = tc_widen_16bit(g, &wide);
            if (status == TC_OK) status = tc_binary_scalar(TC_DIV, wide, (double)count, false, &quotient);
            tc_tensor_release(wide);
            if (status == TC_OK) status = tc_narrow_16bit(TC_OK, quotient, g->dtype, &t2);
        } else {
            status = tc_binary_scalar(TC_DIV, g, (double)count, false, &t2);
        }
        if (status == TC_OK) status = tc_expand(t2, x->ndim, x->shape, &t1);
        break;
    case TC_REDUCE_MAX:
    case TC_REDUCE_MIN: {
        /* Ties share the gradient evenly; they are counted as int64, so that
         * g / count rounds once in any dtype. */
        tc_tensor *hits = NULL, *hit_count = NULL;
        status = tc_binary(TC_EQ, x, node->saved[0], &hits);
        if (status == TC_OK) status = tc_to_dtype(hits, grad->dtype, &t2);
        int dims[TC_MAX_DIMS], ndims = 0;
        for (int d = 0; d < x->ndim; d++)
            if (node->ints[1] & (1 << d)) dims[ndims++] = d;
        if (status == TC_OK) status = tc_reduce(TC_REDUCE_SUM, hits, ndims, dims, true, &hit_count);
        if (status == TC_OK) status = tc_binary(TC_DIV, g, hit_count, &t3);
        if (status == TC_OK) status = tc_binary(TC_MUL, t2, t3, &t1);
        tc_tensor_release(hits);
        tc_tensor_release(hit_count);
        break;
    }
    case TC_REDUCE_VAR:
        status = tc_dtype_is_16bit(x->dtype) ? var_gradient_16bit(node, x, g, &t1) : var_gradient(node, x, g, &t1);
        break;
    default:
        status =
            tc_fail(node->ctx, TC_ERROR_STATE, "backward: %s is not differentiable", tc_tape_ops[TC_OP_SUM + op].name);
    }
    tc_tensor_release(g);
    tc_tensor_release(t2);
    tc_tensor_release(t3);
    if (status == TC_OK) grad_inputs[0] = t1;
    else tc_tensor_release(t1);
    return status;
}

static tc_status reduce_impl(tc_reduce_op op, tc_tensor *x, int ndims, const int *dims, int correction,
                             bool keepdim, tc_tensor **out) {
    if (tc_dtype_is_16bit(x->dtype) && !tc_backend_takes_16bit(x, TC_SLOT_BIT(reduce))) {
        /* argmax/argmin give int64, which stays */
        tc_tensor *wide, *result = NULL;
        TC_TRY(tc_widen_16bit(x, &wide));
        tc_status status = reduce_impl(op, wide, ndims, dims, correction, keepdim, &result);
        tc_tensor_release(wide);
        *out = NULL;
        return tc_narrow_16bit(status, result, x->dtype, out);
    }
    if ((unsigned)op >= TC_REDUCE_OP_COUNT)
        return tc_fail(x->ctx, TC_ERROR_ARGUMENT, "reduce: unknown op %d", (int)op);
    const char *name = tc_tape_ops[TC_OP_SUM + op].name;
    bool arg = op == TC_REDUCE_ARGMAX || op == TC_REDUCE_ARGMIN;
    uint32_t mask = 0;
    for (int i = 0; i < ndims; i++) {
        int d;
        if (!tc_normalize_dim(dims[i], x->ndim, &d))
            return tc_fail(x->ctx, TC_ERROR_ARGUMENT, "%s: dim %d is out of range for a tensor of shape %s", name,
                           tc_dim_shown(dims[i]), TC_SHAPE(x));
        if (x->ndim) mask |= 1u << d;
    }
    if (ndims == 0) mask = x->ndim ? (1u << x->ndim) - 1 : 0;
    if (arg && ndims == 0 && x->ndim > 1) { /* over the flattened tensor */
        tc_tensor *flat;
        int64_t n = tc_tensor_numel(x);
        TC_TRY(tc_reshape(x, 1, &n, &flat));
        tc_status status = reduce_impl(op, flat, 0, NULL, correction, false, out);
        tc_tensor_release(flat);
        if (status != TC_OK || !keepdim) return status;
        int64_t ones[TC_MAX_DIMS] = {1, 1, 1, 1, 1, 1, 1, 1};
        tc_tensor *shaped;
        status = tc_reshape(*out, x->ndim, ones, &shaped);
        tc_tensor_release(*out);
        *out = status == TC_OK ? shaped : NULL;
        return status;
    }
    if (arg && __builtin_popcount(mask) > 1)
        return tc_fail(x->ctx, TC_ERROR_ARGUMENT, "%s: takes one dim (or none for the whole tensor), got %d", name,
                       ndims);
    tc_dtype dtype = x->dtype;
    if (arg) dtype = TC_INT64;
    else if ((op == TC_REDUCE_MEAN || op == TC_REDUCE_VAR) && !tc_dtype_is_floating(dtype)) dtype = TC_FLOAT32;
    else if (op == TC_REDUCE_SUM && !tc_dtype_is_floating(dtype)) dtype = TC_INT64;
    tc_tensor *input;
    tc_dtype compute_dtype = arg ? x->dtype : dtype;
    int64_t shape[TC_MAX_DIMS];
    kept_shape(x, mask, shape);
    bool extreme = op == TC_REDUCE_MAX || op == TC_REDUCE_MIN || arg;
    for (int d = 0; d < x->ndim && extreme; d++)
        if ((mask & (1u << d)) && x->shape[d] == 0 && tc_shape_numel(x->ndim, shape) > 0)
            return tc_fail(x->ctx, TC_ERROR_SHAPE, "%s: dim %d of a tensor of shape %s is empty, so it has no %s", name,
                           d + 1, TC_SHAPE(x), op == TC_REDUCE_MAX || op == TC_REDUCE_ARGMAX ? "maximum" : "minimum");
    TC_TRY(tc_check_shape(x->ctx, name, x->ndim, x->shape, compute_dtype));
    TC_TRY(tc_check_shape(x->ctx, name, x->ndim, shape, dtype));
    TC_TRY(tc_cast_if_needed(x, compute_dtype, &input));
    int64_t count = 1;
    for (int d = 0; d < x->ndim; d++)
        if (mask & (1u << d)) count *= x->shape[d];
    tc_tensor *kept = NULL;
    tc_status status = tc_empty_shaped(input, dtype, input->ndim, shape, &kept);
    if (status == TC_OK) status = tc_backend_of(input)->reduce(op, input, mask, correction, kept);
    *out = NULL;
    if (status == TC_OK) {
        if (keepdim) {
            tc_tensor_retain(kept);
            *out = kept;
        } else {
            int64_t squeezed[TC_MAX_DIMS];
            int n = 0;
            for (int d = 0; d < input->ndim; d++)
                if (!(mask & (1u << d))) squeezed[n++] = input->shape[d];
            int64_t strides[TC_MAX_DIMS];
            tc_contiguous_strides(n, squeezed, strides);
            status = tc_tensor_alias(kept, n, squeezed, strides, kept->offset, out);
        }
    }
    /* sum and mean need only x's shape; the others its values */
    bool by_value = op != TC_REDUCE_SUM && op != TC_REDUCE_MEAN;
    if (status == TC_OK && !arg)
        status = tc_record_op((tc_op_id)(TC_OP_SUM + op), 1, &input, *out,
                              &(tc_node_state){.n_ints = 4,
                                               .ints = {op, mask, count, correction},
                                               .reads = by_value ? TC_READS(0) : 0,
                                               .saved = {extreme ? kept : NULL}});
    if (status != TC_OK && *out) {
        tc_tensor_release(*out);
        *out = NULL;
    }
    tc_tensor_release(kept);
    tc_tensor_release(input);
    return status;
}

tc_status tc_reduce(tc_reduce_op op, tc_tensor *x, int ndims, const int *dims, bool keepdim, tc_tensor **out) {
    return reduce_impl(op, x, ndims, dims, 1, keepdim, out);
}

tc_status tc_var(tc_tensor *x, int ndims, const int *dims, int correction, bool keepdim, tc_tensor **out) {
    return reduce_impl(TC_REDUCE_VAR, x, ndims, dims, correction, keepdim, out);
}
