/*
 * ops_fused.c: the checks and helpers the fused ops share (ops_fused.h).
 */
#include "ops_fused.h"

tc_status tc_check_floating(const char *function, const char *argument, const tc_tensor *t) {
    if (!tc_dtype_is_floating(t->dtype))
        return tc_fail(t->ctx, TC_ERROR_DTYPE, "%s: %s must be float32 or float64, got %s of shape %s", function,
                       argument, tc_dtype_name(t->dtype), TC_SHAPE(t));
    return TC_OK;
}

tc_status tc_check_companion(const char *function, const char *argument, const tc_tensor *like,
                             const char *like_name, const tc_tensor *other) {
    if (other->ctx == like->ctx && other->storage->device != like->storage->device)
        return tc_fail(like->ctx, TC_ERROR_ARGUMENT, "%s: %s is on %s but %s is on %s (they must be on one device)",
                       function, argument, tc_device_name(other->storage->device), like_name,
                       tc_device_name(like->storage->device));
    TC_TRY(tc_check_same_device(function, like, other));
    if (other->dtype != like->dtype)
        return tc_fail(like->ctx, TC_ERROR_DTYPE, "%s: %s is %s but %s is %s (they must have the same dtype)",
                       function, argument, tc_dtype_name(other->dtype), like_name, tc_dtype_name(like->dtype));
    return TC_OK;
}

tc_status tc_prepare_grad(const tc_node *node, tc_tensor *grad, tc_tensor **out) {
    tc_tensor *cast;
    TC_TRY(tc_cast_if_needed(grad, node->out_dtype, &cast));
    tc_status status = tc_contiguous(cast, out);
    tc_tensor_release(cast);
    return status;
}

void tc_release_all(int count, tc_tensor **tensors) {
    for (int i = 0; i < count; i++) tc_tensor_release(tensors[i]);
}
