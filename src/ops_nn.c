/*
 * ops_nn.c: softmax, log-softmax and dropout, each backward beside its
 * forward. The kernels run on contiguous inputs through the backend table.
 */
#include "internal.h"

static tc_status check_floating(const char *function, const tc_tensor *x) {
    if (!tc_dtype_is_floating(x->dtype))
        return tc_fail(x->ctx, TC_ERROR_DTYPE, "%s: x must be float32 or float64, got %s of shape %s", function,
                       tc_dtype_name(x->dtype), TC_SHAPE(x));
    return TC_OK;
}

/* The gradient arriving at a node in the node's output dtype, contiguous. */
static tc_status contiguous_grad(const tc_node *node, tc_tensor *grad, tc_tensor **out) {
    tc_tensor *cast;
    TC_TRY(tc_cast_if_needed(grad, node->out_dtype, &cast));
    tc_status status = tc_contiguous(cast, out);
    tc_tensor_release(cast);
    return status;
}

/* ---- softmax and log-softmax ----
 * Saved: the output y (both backward formulas are written in terms of y);
 * ints: dim, log flag. A backend whose softmax slots take x's 16-bit dtype
 * runs on x as it is: the backward then reads y rounded to 16 bits, where
 * the widening path (other backends) keeps its float32 y, so the two
 * gradients differ by that rounding. */

#define SOFTMAX_SLOTS (TC_SLOT_BIT(softmax) | TC_SLOT_BIT(softmax_backward))

tc_status tc_softmax_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    int dim = (int)node->ints[0];
    bool log = node->ints[1] != 0;
    tc_tensor *g = NULL, *grad_x = NULL;
    TC_TRY(contiguous_grad(node, grad, &g));
    tc_status status = tc_empty_like(g, &grad_x);
    if (status == TC_OK && tc_tensor_numel(g) > 0)
        status = tc_backend_of(g)->softmax_backward(node->saved[0], g, dim, log, grad_x);
    tc_tensor_release(g);
    if (status != TC_OK) {
        tc_tensor_release(grad_x);
        return status;
    }
    grad_inputs[0] = grad_x;
    return TC_OK;
}


static tc_status softmax_impl(const char *function, bool log, tc_tensor *x, int dim, tc_tensor **out) {
    *out = NULL;
    TC_TRY(check_floating(function, x));
    if (tc_dtype_is_16bit(x->dtype) && !tc_backend_takes_16bit(x, SOFTMAX_SLOTS)) {
        tc_tensor *wide, *result = NULL;
        TC_TRY(tc_widen_16bit(x, &wide));
        tc_status status = softmax_impl(function, log, wide, dim, &result);
        tc_tensor_release(wide);
        return tc_narrow_16bit(status, result, x->dtype, out);
    }
    int d;
    if (!tc_normalize_dim(dim, x->ndim > 0 ? x->ndim : 1, &d))
        return tc_fail(x->ctx, TC_ERROR_ARGUMENT, "%s: dim %d is out of range for a tensor of shape %s", function,
                       tc_dim_shown(dim), TC_SHAPE(x));
    tc_tensor *input = NULL, *result = NULL;
    tc_status status = tc_contiguous(x, &input);
    if (status == TC_OK) status = tc_empty_like(input, &result);
    if (status == TC_OK && tc_tensor_numel(input) > 0) status = tc_backend_of(input)->softmax(input, d, log, result);
    if (status == TC_OK)
        status = tc_record_op(log ? TC_OP_LOG_SOFTMAX : TC_OP_SOFTMAX, 1, &input, result,
                              &(tc_node_state){.n_ints = 2, .ints = {d, log}, .saved = {result}});
    if (status == TC_OK) {
        *out = result;
        result = NULL;
    }
    tc_tensor_release(result);
    tc_tensor_release(input);
    return status;
}

tc_status tc_softmax(tc_tensor *x, int dim, tc_tensor **out) { return softmax_impl("softmax", false, x, dim, out); }

tc_status tc_log_softmax(tc_tensor *x, int dim, tc_tensor **out) {
    return softmax_impl("log_softmax", true, x, dim, out);
}

/* ---- dropout ----
 * Saved: the uint8 keep mask; reals[0]: p. With p == 1 nothing is kept and
 * the gradient is zero. */

tc_status tc_dropout_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    double p = node->reals[0];
    tc_tensor *g = NULL, *keep = NULL, *kept = NULL;
    TC_TRY(tc_cast_if_needed(grad, node->out_dtype, &g));
    tc_status status;
    if (p >= 1.0) {
        status = tc_zeros_like(g, &grad_inputs[0]);
    } else {
        status = tc_cast_if_needed(node->saved[0], g->dtype, &keep);
        if (status == TC_OK) status = tc_binary(TC_MUL, g, keep, &kept);
        if (status == TC_OK) status = tc_binary_scalar(TC_MUL, kept, 1.0 / (1.0 - p), false, &grad_inputs[0]);
    }
    tc_tensor_release(g);
    tc_tensor_release(keep);
    tc_tensor_release(kept);
    return status;
}


tc_status tc_dropout(tc_tensor *x, double p, bool training, tc_tensor **out) {
    *out = NULL;
    TC_TRY(check_floating("dropout", x));
    if (tc_dtype_is_16bit(x->dtype) && training && p != 0.0) { /* the float32 mask stream, rounded once */
        tc_tensor *wide, *result = NULL;
        TC_TRY(tc_widen_16bit(x, &wide));
        tc_status status = tc_dropout(wide, p, training, &result);
        tc_tensor_release(wide);
        return tc_narrow_16bit(status, result, x->dtype, out);
    }
    if (!(p >= 0.0 && p <= 1.0)) return tc_fail(x->ctx, TC_ERROR_ARGUMENT, "dropout: p must be in [0, 1], got %g", p);
    if (!training || p == 0.0) {
        tc_tensor_retain(x);
        *out = x;
        return TC_OK;
    }
    tc_context *ctx = x->ctx;
    int64_t n = tc_tensor_numel(x);
    tc_tensor *input = NULL, *mask = NULL, *result = NULL;
    tc_status status = tc_contiguous(x, &input);
    if (status == TC_OK) status = tc_empty_shaped(input, TC_UINT8, input->ndim, input->shape, &mask);
    if (status == TC_OK) status = tc_empty_like(input, &result);
    if (status == TC_OK && p >= 1.0) {
        status = tc_fill_(result, 0.0);
        if (status == TC_OK) status = tc_fill_(mask, 0.0);
    } else if (status == TC_OK && n > 0) {
        status = tc_backend_of(input)->dropout(input, p, ctx->rng_seed, ctx->rng_offset, mask, result);
        if (status == TC_OK) ctx->rng_offset += (uint64_t)(n + 3) / 4;
    }
    if (status == TC_OK)
        status = tc_record_op(TC_OP_DROPOUT, 1, &input, result, &(tc_node_state){.real = p, .saved = {mask}});
    if (status == TC_OK) {
        *out = result;
        result = NULL;
    }
    tc_tensor_release(result);
    tc_tensor_release(mask);
    tc_tensor_release(input);
    return status;
}
