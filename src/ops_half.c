/*
 * ops_half.c: how ops run on bfloat16 and float16 tensors. The kernels
 * compute in float32 only; an op given 16-bit inputs widens them to float32
 * through tc_to_dtype (differentiable, so autograd needs nothing more),
 * computes, and rounds its floating result once to the 16-bit dtype. Ops
 * with no such path refuse 16-bit tensors by name (tc_refuse_16bit). Where
 * the backend's kernels take 16-bit data (its half_slots, backend_slots.h),
 * ops call them directly instead, with the same bits.
 */
#include "internal.h"

tc_status tc_widen_16bit(tc_tensor *t, tc_tensor **out) {
    if (!t || !tc_dtype_is_16bit(t->dtype)) {
        tc_tensor_retain(t);
        *out = t;
        return TC_OK;
    }
    return tc_to_dtype(t, TC_FLOAT32, out);
}

tc_status tc_narrow_16bit(tc_status status, tc_tensor *wide, tc_dtype dtype, tc_tensor **out) {
    *out = NULL;
    if (status != TC_OK || wide->dtype != TC_FLOAT32 || !tc_dtype_is_16bit(dtype)) {
        if (status == TC_OK) *out = wide;
        else tc_tensor_release(wide);
        return status;
    }
    status = tc_to_dtype(wide, dtype, out);
    tc_tensor_release(wide);
    return status;
}

tc_status tc_check_16bit_partners(const char *function, int n, const char *const *names, tc_tensor *const *tensors) {
    int half = -1, other = -1;
    for (int i = 0; i < n; i++) {
        if (!tensors[i]) continue;
        if (tc_dtype_is_16bit(tensors[i]->dtype)) half = half < 0 ? i : half;
        else if (tensors[i]->dtype != TC_FLOAT32) other = other < 0 ? i : other;
    }
    if (half < 0 || other < 0) return TC_OK;
    return tc_fail(tensors[half]->ctx, TC_ERROR_DTYPE,
                   "%s: %s is %s and %s is %s; 16-bit tensors go with float32 or 16-bit ones (convert first)",
                   function, names[half], tc_dtype_name(tensors[half]->dtype), names[other],
                   tc_dtype_name(tensors[other]->dtype));
}

tc_status tc_refuse_16bit(const char *op, const tc_tensor *t) {
    if (!tc_dtype_is_16bit(t->dtype)) return TC_OK;
    return tc_fail(t->ctx, TC_ERROR_DTYPE,
                   "%s: no %s path (tensor of shape %s); convert with :float() first "
                   "(docs/API.md lists the 16-bit ops)",
                   op, tc_dtype_name(t->dtype), TC_SHAPE(t));
}
