/*
 * ops_rope.c: rotary position embedding, forward beside backward (the
 * kernel: the rope slot). The angles are computed here, once, in double:
 * a table of (cos, sin) per position and pair that both backends read, so
 * they rotate by the same numbers; the backward rotates the gradient back
 * with the same table.
 */
#include "ops_fused.h"

#include <math.h>

/* node: inputs {x}; saved[0] the table; ints: time dim, interleaved. */

/* A backend whose rope kernel takes x's 16-bit dtype rotates x as it is,
 * with the float32 table the widening path would use; other backends widen
 * a 16-bit x to float32. */
static bool rope_takes_16bit(const tc_tensor *x) { return tc_backend_takes_16bit(x, TC_SLOT_BIT(rope)); }

/* The kernel over x (contiguous, [B, T, H, D] or [B, H, T, D]) into out. */
static tc_status rotate(const tc_backend *backend, const tc_tensor *x, const tc_tensor *table, int time_dim,
                        bool interleaved, bool inverse, tc_tensor *out) {
    int64_t batch = x->shape[0], time = x->shape[time_dim], dim = x->shape[3];
    int64_t before = time_dim == 1 ? 1 : x->shape[1], after = time_dim == 1 ? x->shape[2] : 1;
    if (tc_tensor_numel(x) == 0) return TC_OK;
    return backend->rope(x->ctx, x->dtype, tc_tensor_data_at_offset(x), tc_tensor_data_at_offset(table), batch,
                         before, time, after, dim, table->shape[0], interleaved, inverse,
                         tc_tensor_data_at_offset(out));
}

tc_status tc_rope_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    const tc_tensor *x = node->inputs[0];
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(x, "rope", TC_SLOT_BIT(rope), &backend));
    tc_tensor *g = NULL, *dx = NULL;
    tc_status status = tc_prepare_grad(node, grad, &g);
    if (status == TC_OK) status = tc_empty_like(g, &dx);
    if (status == TC_OK) status = rotate(backend, g, node->saved[0], (int)node->ints[0], node->ints[1], true, dx);
    tc_tensor_release(g);
    if (status != TC_OK) {
        tc_tensor_release(dx);
        return status;
    }
    grad_inputs[0] = dx;
    return TC_OK;
}

/* The (cos, sin) table [table_batch, T, D/2, 2] in x's dtype (float32 for a
 * 16-bit x) on x's device, from the positions (int32 or int64, [T] or
 * [B, T]). */
static tc_status angle_table(const tc_tensor *x, const tc_tensor *positions, int time_dim, double base,
                             tc_tensor **out) {
    int64_t time = x->shape[time_dim], half = x->shape[3] / 2;
    int64_t table_batch = positions->ndim == 2 ? positions->shape[0] : 1, count = table_batch * time;
    int64_t *at = tc_malloc(x->ctx, sizeof *at * (size_t)(count ? count : 1));
    double *values = tc_malloc(x->ctx, sizeof *values * (size_t)(count * half * 2 + 1));
    if (!at || !values) {
        tc_free(at);
        tc_free(values);
        return tc_fail(x->ctx, TC_ERROR_MEMORY, "rope: out of memory for the angles of %lld positions",
                       (long long)count);
    }
    tc_status status = tc_copy_to_int64(positions, at, count);
    for (int64_t p = 0; p < count && status == TC_OK; p++) {
        for (int64_t i = 0; i < half; i++) {
            double angle = (double)at[p] * pow(base, -2.0 * (double)i / (double)(2 * half));
            values[(p * half + i) * 2] = cos(angle);
            values[(p * half + i) * 2 + 1] = sin(angle);
        }
    }
    tc_tensor *host = NULL;
    int64_t shape[4] = {table_batch, time, half, 2};
    tc_dtype dtype = tc_dtype_is_16bit(x->dtype) ? TC_FLOAT32 : x->dtype;
    if (status == TC_OK) status = tc_from_data(x->ctx, dtype, 4, shape, values, TC_FLOAT64, &host);
    if (status == TC_OK) {
        status = tc_to_device(host, x->storage->device, out);
        tc_tensor_release(host);
    }
    tc_free(at);
    tc_free(values);
    return status;
}

static tc_status check_positions(const tc_tensor *x, const tc_tensor *positions, int time_dim) {
    if (positions->ctx != x->ctx)
        return tc_fail(x->ctx, TC_ERROR_ARGUMENT, "rope: positions belong to another context (Lua state)");
    if (positions->dtype != TC_INT32 && positions->dtype != TC_INT64)
        return tc_fail(x->ctx, TC_ERROR_DTYPE, "rope: positions must be int32 or int64, got %s",
                       tc_dtype_name(positions->dtype));
    int64_t time = x->shape[time_dim];
    bool fits = positions->ndim == 1 ? positions->shape[0] == time
                                     : positions->ndim == 2 && positions->shape[0] == x->shape[0] &&
                                           positions->shape[1] == time;
    if (!fits)
        return tc_fail(x->ctx, TC_ERROR_SHAPE,
                       "rope: positions of shape %s do not fit x of shape %s (expected {%lld} or {%lld, %lld}: one "
                       "per step of dim %d)",
                       TC_SHAPE(positions), TC_SHAPE(x), (long long)time, (long long)x->shape[0], (long long)time,
                       time_dim + 1);
    return TC_OK;
}

tc_status tc_rope(tc_tensor *x, tc_tensor *positions, int time_dim, double base, bool interleaved, tc_tensor **out) {
    *out = NULL;
    TC_TRY(tc_check_floating("rope", "x", x));
    if (tc_dtype_is_16bit(x->dtype) && !rope_takes_16bit(x)) {
        tc_tensor *wide, *result = NULL;
        TC_TRY(tc_widen_16bit(x, &wide));
        tc_status status = tc_rope(wide, positions, time_dim, base, interleaved, &result);
        tc_tensor_release(wide);
        return tc_narrow_16bit(status, result, x->dtype, out);
    }
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(x, "rope", TC_SLOT_BIT(rope), &backend));
    if (x->ndim != 4 || x->shape[3] % 2 != 0)
        return tc_fail(x->ctx, TC_ERROR_SHAPE,
                       "rope: x must be {B, T, H, D} or {B, H, T, D} with an even head size D, got shape %s",
                       TC_SHAPE(x));
    if (time_dim != 1 && time_dim != 2)
        return tc_fail(x->ctx, TC_ERROR_ARGUMENT,
                       "rope: the time dim must be 2 ({B, T, H, D}) or 3 ({B, H, T, D}), got %d", time_dim + 1);
    if (!(base > 0) || isinf(base))
        return tc_fail(x->ctx, TC_ERROR_ARGUMENT, "rope: base must be a finite number > 0, got %g", base);
    TC_TRY(check_positions(x, positions, time_dim));
    tc_tensor *input = NULL, *table = NULL, *result = NULL;
    tc_status status = angle_table(x, positions, time_dim, base, &table);
    if (status == TC_OK) status = tc_contiguous(x, &input);
    if (status == TC_OK) status = tc_empty_like(input, &result);
    if (status == TC_OK) status = rotate(backend, input, table, time_dim, interleaved, false, result);
    if (status == TC_OK)
        status = tc_record_op(TC_OP_ROPE, 1, &input, result,
                              &(tc_node_state){.n_ints = 2, .ints = {time_dim, interleaved}, .saved = {table}});
    if (status == TC_OK) {
        *out = result;
        result = NULL;
    }
    tc_tensor_release(result);
    tc_tensor_release(table);
    tc_tensor_release(input);
    return status;
}
