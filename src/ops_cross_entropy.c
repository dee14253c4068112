/*
 * ops_cross_entropy.c: softmax cross-entropy, forward beside backward (the
 * kernels: the cross_entropy_forward and cross_entropy_backward slots).
 */
#include "ops_fused.h"

/* Saved for backward: the row log-sum-exp [N] (logits' dtype, float32 for
 * 16-bit logits); logits and targets are held as the node's inputs; the
 * count of kept targets is in reals[0] and ignore_index in ints[0]. */

#define CROSS_ENTROPY_SLOTS (TC_SLOT_BIT(cross_entropy_forward) | TC_SLOT_BIT(cross_entropy_backward))

tc_status tc_cross_entropy_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    tc_tensor *logits = node->inputs[0], *targets = node->inputs[1];
    if (!tc_node_input_needs_grad(node, 0)) return TC_OK;
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(logits, "cross_entropy", TC_SLOT_BIT(cross_entropy_backward), &backend));
    int64_t classes = logits->shape[logits->ndim - 1], rows = tc_tensor_numel(targets);
    double count = node->reals[0], g;
    TC_TRY(tc_item(grad, &g));
    tc_tensor *dlogits;
    TC_TRY(tc_empty_like(logits, &dlogits));
    /* With every target ignored the loss is the constant 0: zero gradients. */
    double scale = count > 0 ? g / count : 0.0;
    tc_status status = TC_OK;
    if (rows > 0)
        status = backend->cross_entropy_backward(
            node->ctx, logits->dtype, tc_tensor_data_at_offset(logits), targets->dtype,
            tc_tensor_data_at_offset(targets), tc_tensor_data_at_offset(node->saved[0]), rows, classes, node->ints[0],
            scale, tc_tensor_data_at_offset(dlogits));
    if (status != TC_OK) {
        tc_tensor_release(dlogits);
        return status;
    }
    grad_inputs[0] = dlogits;
    return TC_OK;
}

static tc_status check_targets(const tc_tensor *logits, tc_tensor *device_targets, int64_t ignore_index) {
    int64_t classes = logits->shape[logits->ndim - 1], n = tc_tensor_numel(device_targets);
    tc_tensor *targets;
    TC_TRY(tc_to_device(device_targets, TC_CPU, &targets));
    tc_status status = TC_OK;
    const void *data = tc_tensor_data_at_offset(targets);
    for (int64_t i = 0; i < n; i++) {
        int64_t t = targets->dtype == TC_INT32 ? (int64_t)((const int32_t *)data)[i] : ((const int64_t *)data)[i];
        if (t != ignore_index && (t < 0 || t >= classes)) {
            status = tc_fail(logits->ctx, TC_ERROR_ARGUMENT,
                           "cross_entropy: target %lld (at flat position %lld of targets) is out of range for "
                           "V = %lld classes (expected 0..%lld, or ignore_index %lld)",
                           (long long)t, (long long)i, (long long)classes, (long long)(classes - 1),
                           (long long)ignore_index);
            break;
        }
    }
    tc_tensor_release(targets);
    return status;
}

tc_status tc_cross_entropy(tc_tensor *logits, tc_tensor *targets, int64_t ignore_index, tc_tensor **out) {
    *out = NULL;
    TC_TRY(tc_check_floating("cross_entropy", "logits", logits));
    /* 16-bit logits are widened to float32 unless the backend's kernels take them. */
    bool native_16bit = tc_backend_takes_16bit(logits, CROSS_ENTROPY_SLOTS);
    if (tc_dtype_is_16bit(logits->dtype) && !native_16bit) {
        tc_tensor *wide, *result = NULL;
        TC_TRY(tc_widen_16bit(logits, &wide));
        tc_status status = tc_cross_entropy(wide, targets, ignore_index, &result);
        tc_tensor_release(wide);
        return tc_narrow_16bit(status, result, logits->dtype, out);
    }
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(logits, "cross_entropy", CROSS_ENTROPY_SLOTS, &backend));
    TC_TRY(tc_check_same_device("cross_entropy", logits, targets));
    if (targets->dtype != TC_INT32 && targets->dtype != TC_INT64)
        return tc_fail(logits->ctx, TC_ERROR_DTYPE,
                       "cross_entropy: targets must be int32 or int64 class ids (0-based), got %s of shape %s",
                       tc_dtype_name(targets->dtype), TC_SHAPE(targets));
    bool shapes_match = logits->ndim >= 1 && targets->ndim == logits->ndim - 1;
    for (int d = 0; shapes_match && d < targets->ndim; d++) shapes_match = targets->shape[d] == logits->shape[d];
    if (!shapes_match) {
        char expected[TC_SHAPE_STRING_SIZE];
        tc_shape_string(logits->ndim ? logits->ndim - 1 : 0, logits->shape, expected, sizeof expected);
        return tc_fail(logits->ctx, TC_ERROR_SHAPE,
                       "cross_entropy: logits of shape %s and targets of shape %s do not fit (logits are {..., V}; "
                       "targets should be %s)",
                       TC_SHAPE(logits), TC_SHAPE(targets), logits->ndim ? expected : "logits with >= 1 dim");
    }
    int64_t classes = logits->shape[logits->ndim - 1], rows = tc_tensor_numel(targets);
    if (classes < 1 && rows > 0)
        return tc_fail(logits->ctx, TC_ERROR_SHAPE, "cross_entropy: logits of shape %s have no classes (V = 0)",
                       TC_SHAPE(logits));
    tc_tensor *inputs[2] = {NULL, NULL};
    tc_tensor *lse = NULL, *result = NULL;
    tc_status status = tc_contiguous(logits, &inputs[0]);
    if (status == TC_OK) status = tc_contiguous(targets, &inputs[1]);
    if (status == TC_OK) status = check_targets(logits, inputs[1], ignore_index);
    tc_dtype lse_dtype = native_16bit ? TC_FLOAT32 : logits->dtype;
    if (status == TC_OK) status = tc_empty_shaped(inputs[0], lse_dtype, 1, &rows, &lse);
    if (status == TC_OK) status = tc_empty_shaped(inputs[0], logits->dtype, 0, NULL, &result);
    int64_t count = 0;
    double total = 0;
    if (status == TC_OK && rows > 0)
        status = backend->cross_entropy_forward(
            logits->ctx, logits->dtype, tc_tensor_data_at_offset(inputs[0]), targets->dtype,
            tc_tensor_data_at_offset(inputs[1]), rows, classes, ignore_index, tc_tensor_data_at_offset(lse), &total,
            &count);
    double loss = count > 0 ? total / (double)count : 0.0;
    /* A 16-bit loss is the float32 loss rounded once, as the widening path gives it. */
    if (native_16bit) loss = (double)(float)loss;
    if (status == TC_OK) status = tc_fill_(result, loss);
    /* The softmax is recomputed from the logits, and the targets pick the rows' classes. */
    if (status == TC_OK)
        status = tc_record_op(TC_OP_CROSS_ENTROPY, 2, inputs, result,
                              &(tc_node_state){.n_ints = 1,
                                               .ints = {ignore_index},
                                               .real = (double)count,
                                               .reads = TC_READS(0) | TC_READS(1),
                                               .saved = {lse}});
    if (status == TC_OK) {
        *out = result;
        result = NULL;
    }
    tc_tensor *all[4] = {inputs[0], inputs[1], lse, result};
    tc_release_all(4, all);
    return status;
}
