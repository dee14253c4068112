/*
 * ops_norm.c: layer norm and RMS norm, forward beside backward (the
 * kernels: the layer_norm_forward and layer_norm_backward slots).
 */
#include "ops_fused.h"

#include <math.h>

/* Saved for backward: the per-row mean and 1/std ([rows] each, x's dtype,
 * float32 for a 16-bit x); x and weight are held as the node's inputs. The
 * normalised tensor is not kept: backward recomputes it from x, mean and
 * rstd. */

#define NORM_SLOTS (TC_SLOT_BIT(layer_norm_forward) | TC_SLOT_BIT(layer_norm_backward))

tc_status tc_norm_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    bool rms = node->ints[0] != 0;
    tc_tensor *x = node->inputs[0], *weight = node->inputs[1], *bias = rms ? NULL : node->inputs[2];
    int64_t cols = x->shape[x->ndim - 1], rows = cols ? tc_tensor_numel(x) / cols : 0;
    tc_tensor *g = NULL, *dx = NULL, *dweight = NULL, *dbias = NULL;
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(x, rms ? "rms_norm" : "layer_norm", TC_SLOT_BIT(layer_norm_backward), &backend));
    tc_status status = tc_prepare_grad(node, grad, &g);
    if (status == TC_OK && tc_node_input_needs_grad(node, 0)) status = tc_empty_like(x, &dx);
    if (status == TC_OK && weight && tc_node_input_needs_grad(node, 1)) status = tc_empty_like(weight, &dweight);
    if (status == TC_OK && bias && tc_node_input_needs_grad(node, 2)) status = tc_empty_like(bias, &dbias);
    if (status == TC_OK && rows > 0 && cols > 0)
        status = backend->layer_norm_backward(
            node->ctx, x->dtype, rms, tc_tensor_data_at_offset(x), weight ? tc_tensor_data_at_offset(weight) : NULL,
            tc_tensor_data_at_offset(node->saved[0]), tc_tensor_data_at_offset(node->saved[1]),
            tc_tensor_data_at_offset(g), rows, cols, dx ? tc_tensor_data_at_offset(dx) : NULL,
            dweight ? tc_tensor_data_at_offset(dweight) : NULL, dbias ? tc_tensor_data_at_offset(dbias) : NULL);
    else if (status == TC_OK) {
        if (dweight) status = tc_fill_(dweight, 0);
        if (status == TC_OK && dbias) status = tc_fill_(dbias, 0);
    }
    if (status == TC_OK) {
        grad_inputs[0] = dx;
        grad_inputs[1] = dweight;
        if (!rms) grad_inputs[2] = dbias;
    } else {
        tc_tensor *all[3] = {dx, dweight, dbias};
        tc_release_all(3, all);
    }
    tc_tensor_release(g);
    return status;
}

static tc_status check_norm_parameter(const char *function, const char *argument, const tc_tensor *x,
                                      const tc_tensor *p) {
    TC_TRY(tc_check_companion(function, argument, x, "x", p));
    int64_t cols = x->shape[x->ndim - 1];
    if (p->ndim != 1 || p->shape[0] != cols)
        return tc_fail(x->ctx, TC_ERROR_SHAPE, "%s: %s of shape %s does not match x of shape %s (expected {%lld})",
                       function, argument, TC_SHAPE(p), TC_SHAPE(x), (long long)cols);
    return TC_OK;
}

static tc_status norm_impl(const char *function, bool rms, tc_tensor *x, tc_tensor *weight, tc_tensor *bias,
                           double eps, tc_tensor **out) {
    *out = NULL;
    TC_TRY(tc_check_floating(function, "x", x));
    /* A backend whose kernels take x's 16-bit dtype reads x and parameters of
     * that dtype as they are; other mixes are widened to float32. */
    bool native_16bit = tc_backend_takes_16bit(x, NORM_SLOTS) && (!weight || weight->dtype == x->dtype) &&
                        (!bias || bias->dtype == x->dtype);
    if (!native_16bit && (tc_dtype_is_16bit(x->dtype) || (weight && tc_dtype_is_16bit(weight->dtype)) ||
                          (bias && tc_dtype_is_16bit(bias->dtype)))) { /* 16-bit x, or float32 x with 16-bit ones */
        tc_tensor *given[3] = {x, weight, bias}, *wide[3] = {NULL, NULL, NULL}, *result = NULL;
        TC_TRY(tc_check_16bit_partners(function, 3, (const char *const[]){"x", "weight", "bias"}, given));
        tc_status status = tc_widen_16bit(x, &wide[0]);
        if (status == TC_OK) status = tc_widen_16bit(weight, &wide[1]);
        if (status == TC_OK) status = tc_widen_16bit(bias, &wide[2]);
        if (status == TC_OK) status = norm_impl(function, rms, wide[0], wide[1], wide[2], eps, &result);
        tc_release_all(3, wide);
        return tc_narrow_16bit(status, result, x->dtype, out);
    }
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(x, function, NORM_SLOTS, &backend));
    if (x->ndim < 1)
        return tc_fail(x->ctx, TC_ERROR_SHAPE,
                       "%s: x must have at least 1 dim (normalised over the last), got shape %s", function,
                       TC_SHAPE(x));
    if (weight) TC_TRY(check_norm_parameter(function, "weight", x, weight));
    if (bias) TC_TRY(check_norm_parameter(function, "bias", x, bias));
    if (!(eps >= 0) || isinf(eps))
        return tc_fail(x->ctx, TC_ERROR_ARGUMENT, "%s: eps must be a finite number >= 0, got %g", function, eps);
    int64_t cols = x->shape[x->ndim - 1], rows = cols ? tc_tensor_numel(x) / cols : 0;
    tc_tensor *inputs[3] = {NULL, NULL, NULL};
    tc_tensor *mean = NULL, *rstd = NULL, *result = NULL;
    tc_status status = tc_contiguous(x, &inputs[0]);
    if (status == TC_OK && weight) status = tc_contiguous(weight, &inputs[1]);
    if (status == TC_OK && bias) status = tc_contiguous(bias, &inputs[2]);
    if (status == TC_OK) status = tc_empty_like(inputs[0], &result);
    tc_dtype statistics = native_16bit ? TC_FLOAT32 : x->dtype;
    if (status == TC_OK) status = tc_empty_shaped(inputs[0], statistics, 1, &rows, &mean);
    if (status == TC_OK) status = tc_empty_shaped(inputs[0], statistics, 1, &rows, &rstd);
    if (status == TC_OK && rows > 0 && cols > 0)
        status = backend->layer_norm_forward(
            x->ctx, x->dtype, rms, tc_tensor_data_at_offset(inputs[0]),
            inputs[1] ? tc_tensor_data_at_offset(inputs[1]) : NULL,
            inputs[2] ? tc_tensor_data_at_offset(inputs[2]) : NULL, eps, rows, cols, tc_tensor_data_at_offset(result),
            tc_tensor_data_at_offset(mean), tc_tensor_data_at_offset(rstd));
    int n_inputs = rms ? 2 : 3;
    if (status == TC_OK) /* dx and the parameter gradients read x and the weight */
        status = tc_record_op(rms ? TC_OP_RMS_NORM : TC_OP_LAYER_NORM, n_inputs, inputs, result,
                              &(tc_node_state){.n_ints = 1,
                                               .ints = {rms},
                                               .real = eps,
                                               .reads = TC_READS(0) | TC_READS(1),
                                               .saved = {mean, rstd}});
    if (status == TC_OK) {
        *out = result;
        result = NULL;
    }
    tc_tensor *all[6] = {inputs[0], inputs[1], inputs[2], mean, rstd, result};
    tc_release_all(6, all);
    return status;
}

tc_status tc_layer_norm(tc_tensor *x, tc_tensor *weight, tc_tensor *bias, double eps, tc_tensor **out) {
    return norm_impl("layer_norm", false, x, weight, bias, eps, out);
}

tc_status tc_rms_norm(tc_tensor *x, tc_tensor *weight, double eps, tc_tensor **out) {
    return norm_impl("rms_norm", true, x, weight, NULL, eps, out);
}
