/*
 * ops_elementwise.c: unary and binary maps, clamp, where and masked_fill:
 * argument checks, dtype promotion, broadcasting, and each op's backward
 * beside its forward. 16-bit operands go to the kernels as they are where the
 * backend takes them (UNARY_16BIT_SLOTS below), else are widened.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

const char *tc_unary_op_name(tc_unary_op op) {
    return (unsigned)op < TC_UNARY_OP_COUNT ? tc_tape_ops[TC_OP_NEG + op].name : "unknown";
}

const char *tc_binary_op_name(tc_binary_op op) {
    return (unsigned)op < TC_BINARY_OP_COUNT ? tc_tape_ops[TC_OP_ADD + op].name : "unknown";
}

/* A backend whose kernels of these slots take 16-bit tensors (half_slots)
 * runs the op on them directly when every floating operand has the one 16-bit
 * dtype; otherwise 16-bit operands are widened to float32 and the result
 * rounded once (ops_half.c). Both give the same bits (backend_slots.h). */
#define UNARY_16BIT_SLOTS (TC_SLOT_BIT(unary) | TC_SLOT_BIT(unary_backward))

/* ---- small helpers used by backward functions ---- */

static tc_status scalar_like(const tc_tensor *t, double value, tc_tensor **out) {
    TC_TRY(tc_tensor_new(t->ctx, t->dtype, t->storage->device, 0, NULL, out));
    tc_status status = tc_fill_(*out, value);
    if (status != TC_OK) tc_tensor_release(*out);
    return status;
}

/* out = sum_to_shape(value, shape of input index) and release value. */
static tc_status reduce_into(tc_node *node, int index, tc_tensor *value, tc_tensor **grad_inputs) {
    const tc_tensor *input = node->inputs[index];
    tc_status status = tc_sum_to_shape(value, input->ndim, input->shape, &grad_inputs[index]);
    tc_tensor_release(value);
    return status;
}

/* ---- unary ---- */

static bool unary_is_float_only(tc_unary_op op) {
    return (tc_op_at(TC_OP_NEG + op)->properties & TC_OP_FLOAT_ONLY) != 0;
}

tc_status tc_unary_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    tc_unary_op op = (tc_unary_op)node->ints[0];
    const tc_tensor *x = node->inputs[0];
    tc_tensor *grad_x;
    TC_TRY(tc_empty_like(grad, &grad_x));
    tc_status status = tc_backend_of(grad)->unary_backward(op, x, node->saved[0], grad, grad_x);
    if (status != TC_OK) {
        tc_tensor_release(grad_x);
        return status;
    }
    grad_inputs[0] = grad_x;
    return TC_OK;
}

tc_status tc_unary(tc_unary_op op, tc_tensor *x, tc_tensor **out) {
    if ((unsigned)op >= TC_UNARY_OP_COUNT) return tc_fail(x->ctx, TC_ERROR_ARGUMENT, "unary: unknown op %d", (int)op);
    if (tc_dtype_is_16bit(x->dtype) && !tc_backend_takes_16bit(x, UNARY_16BIT_SLOTS)) {
        tc_tensor *wide, *result = NULL;
        TC_TRY(tc_widen_16bit(x, &wide));
        tc_status status = tc_unary(op, wide, &result);
        tc_tensor_release(wide);
        return tc_narrow_16bit(status, result, x->dtype, out);
    }
    tc_tensor *input;
    tc_dtype dtype = x->dtype;
    if (unary_is_float_only(op) && !tc_dtype_is_floating(dtype)) dtype = TC_FLOAT32;
    if (op == TC_NEG && dtype == TC_BOOL)
        return tc_fail(x->ctx, TC_ERROR_DTYPE, "neg: a bool tensor cannot be negated (use logical_not)");
    TC_TRY(tc_cast_if_needed(x, dtype, &input));
    tc_dtype out_dtype = op == TC_LOGICAL_NOT ? TC_BOOL : dtype;
    tc_status status = tc_empty_shaped(input, dtype, input->ndim, input->shape, out);
    if (status == TC_OK) status = tc_backend_of(input)->unary(op, input, *out);
    if (status == TC_OK && out_dtype != dtype) {
        tc_tensor *converted;
        status = tc_cast_if_needed(*out, out_dtype, &converted);
        tc_tensor_release(*out);
        *out = status == TC_OK ? converted : NULL;
    }
    if (status == TC_OK && op != TC_SIGN && op != TC_LOGICAL_NOT)
        status = tc_record_op((tc_op_id)(TC_OP_NEG + op), 1, &input, *out,
                              &(tc_node_state){.n_ints = 1, .ints = {op}, .reads = TC_READS(0), .saved = {*out}});
    if (status != TC_OK && *out) {
        tc_tensor_release(*out);
        *out = NULL;
    }
    tc_tensor_release(input);
    return status;
}

/* ---- binary ---- */

static bool binary_is_differentiable(tc_binary_op op) {
    return (tc_op_at(TC_OP_ADD + op)->properties & TC_OP_DIFFERENTIABLE) != 0;
}

/* The gradients of a op b from its operands, its result `saved` (div and
 * pow) and grad, all of one dtype; node gives the inputs' shapes. */
static tc_status binary_gradients(tc_node *node, tc_binary_op op, tc_tensor *a, tc_tensor *b, tc_tensor *saved,
                                  tc_tensor *grad, tc_tensor **grad_inputs) {
    bool need_a = tc_node_input_needs_grad(node, 0), need_b = tc_node_input_needs_grad(node, 1);
    tc_tensor *value = NULL, *t1 = NULL, *t2 = NULL;
    tc_status status = TC_OK;
    switch (op) {
    case TC_ADD:
    case TC_SUB:
        if (need_a) {
            tc_tensor_retain(grad);
            TC_TRY(reduce_into(node, 0, grad, grad_inputs));
        }
        if (need_b) {
            if (op == TC_SUB) TC_TRY(tc_unary(TC_NEG, grad, &value));
            else {
                tc_tensor_retain(grad);
                value = grad;
            }
            TC_TRY(reduce_into(node, 1, value, grad_inputs));
        }
        return TC_OK;
    case TC_MUL:
        if (need_a) {
            TC_TRY(tc_binary(TC_MUL, grad, b, &value));
            TC_TRY(reduce_into(node, 0, value, grad_inputs));
        }
        if (need_b) {
            TC_TRY(tc_binary(TC_MUL, grad, a, &value));
            TC_TRY(reduce_into(node, 1, value, grad_inputs));
        }
        return TC_OK;
    case TC_DIV:
        if (need_a) {
            TC_TRY(tc_binary(TC_DIV, grad, b, &value));
            TC_TRY(reduce_into(node, 0, value, grad_inputs));
        }
        if (need_b) { /* -g * out / b */
            status = tc_binary(TC_MUL, grad, saved, &t1);
            if (status == TC_OK) status = tc_binary(TC_DIV, t1, b, &t2);
            if (status == TC_OK) status = tc_unary(TC_NEG, t2, &value);
            if (status == TC_OK) status = reduce_into(node, 1, value, grad_inputs);
        }
        break;
    case TC_POW:
        if (need_a) { /* g * b * a^(b-1) */
            tc_tensor *one;
            status = scalar_like(b, 1.0, &one);
            if (status == TC_OK) {
                status = tc_binary(TC_SUB, b, one, &t1);
                tc_tensor_release(one);
            }
            if (status == TC_OK) status = tc_binary(TC_POW, a, t1, &t2);
            tc_tensor_release(t1);
            t1 = NULL;
            if (status == TC_OK) status = tc_binary(TC_MUL, t2, b, &t1);
            tc_tensor_release(t2);
            t2 = NULL;
            if (status == TC_OK) status = tc_binary(TC_MUL, t1, grad, &value);
            tc_tensor_release(t1);
            t1 = NULL;
            if (status == TC_OK) status = reduce_into(node, 0, value, grad_inputs);
        }
        if (status == TC_OK && need_b) { /* g * out * log(a) */
            status = tc_unary(TC_LOG, a, &t1);
            if (status == TC_OK) status = tc_binary(TC_MUL, t1, saved, &t2);
            if (status == TC_OK) status = tc_binary(TC_MUL, t2, grad, &value);
            if (status == TC_OK) status = reduce_into(node, 1, value, grad_inputs);
        }
        break;
    case TC_MAXIMUM:
    case TC_MINIMUM: {
        /* The winner takes the gradient; ties split it evenly. */
        tc_tensor *wins_a = NULL, *ties = NULL, *half = NULL, *weight = NULL, *zero = NULL, *float_a = NULL;
        status = tc_binary(op == TC_MAXIMUM ? TC_GT : TC_LT, a, b, &wins_a);
        if (status == TC_OK) status = tc_binary(TC_EQ, a, b, &ties);
        if (status == TC_OK) status = tc_cast_if_needed(wins_a, grad->dtype, &float_a);
        if (status == TC_OK) status = scalar_like(grad, 0.5, &half);
        if (status == TC_OK) status = tc_where(ties, half, float_a, &weight); /* weight of a */
        if (status == TC_OK && need_a) {
            status = tc_binary(TC_MUL, grad, weight, &value);
            if (status == TC_OK) status = reduce_into(node, 0, value, grad_inputs);
        }
        if (status == TC_OK && need_b) {
            status = scalar_like(grad, 1.0, &zero);
            if (status == TC_OK) status = tc_binary(TC_SUB, zero, weight, &t1);
            if (status == TC_OK) status = tc_binary(TC_MUL, grad, t1, &value);
            if (status == TC_OK) status = reduce_into(node, 1, value, grad_inputs);
        }
        tc_tensor_release(wins_a);
        tc_tensor_release(ties);
        tc_tensor_release(half);
        tc_tensor_release(weight);
        tc_tensor_release(zero);
        tc_tensor_release(float_a);
        break;
    }
    default: return tc_fail(node->ctx, TC_ERROR_STATE, "backward: %s is not differentiable", tc_binary_op_name(op));
    }
    tc_tensor_release(t1);
    tc_tensor_release(t2);
    return status;
}

/* Whether input `index` needs a gradient that sums grad over broadcast dims. */
static bool sums_over_broadcast(const tc_node *node, int index, const tc_tensor *grad) {
    const tc_tensor *input = node->inputs[index];
    if (!tc_node_input_needs_grad(node, index)) return false;
    if (input->ndim != grad->ndim) return true;
    for (int d = 0; d < grad->ndim; d++)
        if (input->shape[d] != grad->shape[d]) return true;
    return false;
}

tc_status tc_binary_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    tc_binary_op op = (tc_binary_op)node->ints[0];
    tc_tensor *a = node->inputs[0], *b = node->inputs[1];
    /* A 16-bit op that ran natively: div's and pow's gradients chain several
     * products, and the others' products summed over broadcast dims would each
     * round in 16 bits before the sum, so these are computed in float32 and
     * rounded once, the bits of the widening path (ops_half.c). add's and
     * sub's gradients are grad itself; a single product rounds once anyway. */
    bool in_float32 = tc_dtype_is_16bit(grad->dtype) && op != TC_ADD && op != TC_SUB &&
                      (op == TC_DIV || op == TC_POW || sums_over_broadcast(node, 0, grad) ||
                       sums_over_broadcast(node, 1, grad));
    if (!in_float32) return binary_gradients(node, op, a, b, node->saved[0], grad, grad_inputs);
    tc_tensor *wide[4] = {NULL, NULL, NULL, NULL}, *narrow_inputs[2] = {a, b};
    tc_tensor *sources[3] = {a, b, grad};
    tc_status status = TC_OK;
    for (int i = 0; i < 3 && status == TC_OK; i++) status = tc_widen_16bit(sources[i], &wide[i]);
    /* div's and pow's result again in float32, as the widening path saves it
     * (not the rounded one). */
    if (status == TC_OK && (op == TC_DIV || op == TC_POW)) status = tc_binary(op, wide[0], wide[1], &wide[3]);
    if (status == TC_OK) status = binary_gradients(node, op, wide[0], wide[1], wide[3], wide[2], grad_inputs);
    for (int i = 0; i < 2 && status == TC_OK; i++) {
        if (!grad_inputs[i]) continue;
        tc_tensor *wide_grad = grad_inputs[i];
        grad_inputs[i] = NULL;
        status = tc_narrow_16bit(TC_OK, wide_grad, narrow_inputs[i]->dtype, &grad_inputs[i]);
    }
    for (int i = 0; i < 4; i++) tc_tensor_release(wide[i]);
    return status;
}

tc_status tc_binary(tc_binary_op op, tc_tensor *a, tc_tensor *b, tc_tensor **out) {
    if ((unsigned)op >= TC_BINARY_OP_COUNT)
        return tc_fail(a->ctx, TC_ERROR_ARGUMENT, "binary: unknown op %d", (int)op);
    const char *name = tc_binary_op_name(op);
    TC_TRY(tc_check_same_device(name, a, b));
    tc_dtype dtype = tc_promote_dtypes(a->dtype, b->dtype);
    if (tc_dtype_is_16bit(dtype) &&
        !(a->dtype == dtype && b->dtype == dtype && tc_backend_takes_16bit(a, TC_SLOT_BIT(binary)))) {
        tc_tensor *wide_a = NULL, *wide_b = NULL, *result = NULL;
        tc_status status = tc_widen_16bit(a, &wide_a);
        if (status == TC_OK) status = tc_widen_16bit(b, &wide_b);
        if (status == TC_OK) status = tc_binary(op, wide_a, wide_b, &result);
        tc_tensor_release(wide_a);
        tc_tensor_release(wide_b);
        *out = NULL;
        return tc_narrow_16bit(status, result, dtype, out);
    }
    if ((op == TC_DIV || op == TC_POW) && !tc_dtype_is_floating(dtype)) dtype = TC_FLOAT32;
    if ((op == TC_SUB) && dtype == TC_BOOL)
        return tc_fail(a->ctx, TC_ERROR_DTYPE, "sub: bool tensors cannot be subtracted (use logical ops)");
    /* bool arithmetic is logic, as in PyTorch: + and maximum are or, * and
     * minimum are and; the sum 1 + 1 would leave a 2 in a bool tensor. */
    if (dtype == TC_BOOL && (op == TC_ADD || op == TC_MAXIMUM)) op = TC_LOGICAL_OR;
    if (dtype == TC_BOOL && (op == TC_MUL || op == TC_MINIMUM)) op = TC_LOGICAL_AND;
    int ndim;
    int64_t shape[TC_MAX_DIMS];
    TC_TRY(tc_broadcast_shapes(a->ctx, name, a->ndim, a->shape, b->ndim, b->shape, &ndim, shape));
    tc_tensor *ca = NULL, *cb = NULL, *va = NULL, *vb = NULL;
    *out = NULL;
    tc_status status = tc_to_dtype(a, dtype, &ca);
    if (status == TC_OK) status = tc_to_dtype(b, dtype, &cb);
    if (status == TC_OK) status = tc_broadcast_view(ca, ndim, shape, &va);
    if (status == TC_OK) status = tc_broadcast_view(cb, ndim, shape, &vb);
    bool comparison = !binary_is_differentiable(op);
    if (status == TC_OK) status = tc_empty_shaped(ca, comparison ? TC_BOOL : dtype, ndim, shape, out);
    if (status == TC_OK) status = tc_backend_of(ca)->binary(op, va, vb, *out);
    tc_tensor *inputs[2] = {ca, cb};
    /* Only add's and sub's gradients do not depend on the operands. */
    bool reads = op != TC_ADD && op != TC_SUB, saves_out = op == TC_DIV || op == TC_POW;
    if (status == TC_OK && !comparison)
        status = tc_record_op((tc_op_id)(TC_OP_ADD + op), 2, inputs, *out,
                              &(tc_node_state){.n_ints = 1,
                                               .ints = {op},
                                               .reads = reads ? TC_READS(0) | TC_READS(1) : 0,
                                               .saved = {saves_out ? *out : NULL}});
    if (status != TC_OK && *out) {
        tc_tensor_release(*out);
        *out = NULL;
    }
    tc_tensor_release(ca);
    tc_tensor_release(cb);
    tc_tensor_release(va);
    tc_tensor_release(vb);
    return status;
}

tc_status tc_binary_scalar(tc_binary_op op, tc_tensor *t, double value, bool scalar_first, tc_tensor **out) {
    tc_dtype dtype = t->dtype;
    if (!tc_dtype_is_floating(dtype) && value != floor(value)) dtype = TC_FLOAT32;
    /* bool arithmetic counts in int64; so does comparing a bool with a value that is not 0 or 1 */
    if (dtype == TC_BOOL && (op <= TC_MINIMUM || (value != 0.0 && value != 1.0))) dtype = TC_INT64;
    /* an integer tensor keeps its dtype: a value it cannot hold is an error, not a silent wrap */
    TC_TRY(tc_check_scalar(t->ctx, tc_binary_op_name(op), value, dtype));
    tc_tensor *scalar;
    TC_TRY(tc_tensor_new(t->ctx, dtype, t->storage->device, 0, NULL, &scalar));
    tc_status status = tc_fill_(scalar, value);
    if (status == TC_OK) status = scalar_first ? tc_binary(op, scalar, t, out) : tc_binary(op, t, scalar, out);
    tc_tensor_release(scalar);
    return status;
}

/* ---- clamp ---- */

tc_status tc_clamp_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    /* The gradient passes where the input was inside [min, max]. */
    tc_tensor *inside, *zero, *value;
    TC_TRY(tc_binary(TC_EQ, node->saved[0], node->inputs[0], &inside));
    tc_status status = scalar_like(grad, 0.0, &zero);
    if (status == TC_OK) {
        status = tc_where(inside, grad, zero, &value);
        tc_tensor_release(zero);
        if (status == TC_OK) grad_inputs[0] = value;
    }
    tc_tensor_release(inside);
    return status;
}


static bool is_fraction(double bound) { return !isnan(bound) && !isinf(bound) && bound != floor(bound); }

tc_status tc_clamp(tc_tensor *x, double min, double max, tc_tensor **out) {
    *out = NULL;
    if (tc_dtype_is_16bit(x->dtype) && !tc_backend_takes_16bit(x, TC_SLOT_BIT(clamp))) {
        tc_tensor *wide, *result = NULL;
        TC_TRY(tc_widen_16bit(x, &wide));
        tc_status status = tc_clamp(wide, min, max, &result);
        tc_tensor_release(wide);
        return tc_narrow_16bit(status, result, x->dtype, out);
    }
    if (!isnan(min) && !isnan(max) && min > max)
        return tc_fail(x->ctx, TC_ERROR_ARGUMENT, "clamp: min %g is greater than max %g", min, max);
    if (x->dtype == TC_BOOL)
        return tc_fail(x->ctx, TC_ERROR_DTYPE, "clamp: a bool tensor (shape %s) cannot be clamped; convert it first",
                       TC_SHAPE(x));
    if (!tc_dtype_is_floating(x->dtype)) {
        /* An integer tensor with a fractional bound is clamped as float32,
         * as `t + 0.5` is added; an infinite bound on the open side is no
         * bound; any other bound must fit the dtype (the kernels convert
         * it to the element type). */
        if (is_fraction(min) || is_fraction(max)) {
            tc_tensor *promoted;
            TC_TRY(tc_to_dtype(x, TC_FLOAT32, &promoted));
            tc_status status = tc_clamp(promoted, min, max, out);
            tc_tensor_release(promoted);
            return status;
        }
        if (isinf(min) && min < 0) min = NAN;
        if (isinf(max) && max > 0) max = NAN;
        if (!isnan(min)) TC_TRY(tc_check_scalar(x->ctx, "clamp", min, x->dtype));
        if (!isnan(max)) TC_TRY(tc_check_scalar(x->ctx, "clamp", max, x->dtype));
    }
    TC_TRY(tc_empty_like(x, out));
    tc_status status = tc_backend_of(x)->clamp(x, min, max, *out);
    if (status == TC_OK)
        status = tc_record_op(TC_OP_CLAMP, 1, &x, *out, &(tc_node_state){.reads = TC_READS(0), .saved = {*out}});
    if (status != TC_OK) {
        tc_tensor_release(*out);
        *out = NULL;
    }
    return status;
}

/* ---- where and masked_fill ---- */

tc_status tc_where_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    tc_tensor *cond = node->inputs[0], *zero, *value;
    TC_TRY(scalar_like(grad, 0.0, &zero));
    tc_status status = TC_OK;
    if (tc_node_input_needs_grad(node, 1)) {
        status = tc_where(cond, grad, zero, &value);
        if (status == TC_OK) status = reduce_into(node, 1, value, grad_inputs);
    }
    if (status == TC_OK && tc_node_input_needs_grad(node, 2)) {
        status = tc_where(cond, zero, grad, &value);
        if (status == TC_OK) status = reduce_into(node, 2, value, grad_inputs);
    }
    tc_tensor_release(zero);
    return status;
}


tc_status tc_where(tc_tensor *cond, tc_tensor *a, tc_tensor *b, tc_tensor **out) {
    TC_TRY(tc_check_same_device("where", cond, a));
    TC_TRY(tc_check_same_device("where", a, b));
    if (cond->dtype != TC_BOOL && cond->dtype != TC_UINT8)
        return tc_fail(a->ctx, TC_ERROR_DTYPE, "where: the condition must be bool or uint8, got %s",
                       tc_dtype_name(cond->dtype));
    int ndim;
    int64_t shape[TC_MAX_DIMS];
    TC_TRY(tc_broadcast_shapes(a->ctx, "where", a->ndim, a->shape, b->ndim, b->shape, &ndim, shape));
    tc_dtype promoted = tc_promote_dtypes(a->dtype, b->dtype);
    if (tc_dtype_is_16bit(promoted) &&
        !(a->dtype == promoted && b->dtype == promoted && tc_backend_takes_16bit(a, TC_SLOT_BIT(where)))) {
        tc_tensor *wide_a = NULL, *wide_b = NULL, *result = NULL;
        tc_status status = tc_widen_16bit(a, &wide_a);
        if (status == TC_OK) status = tc_widen_16bit(b, &wide_b);
        if (status == TC_OK) status = tc_where(cond, wide_a, wide_b, &result);
        tc_tensor_release(wide_a);
        tc_tensor_release(wide_b);
        *out = NULL;
        return tc_narrow_16bit(status, result, promoted, out);
    }
    TC_TRY(tc_broadcast_shapes(a->ctx, "where", cond->ndim, cond->shape, ndim, shape, &ndim, shape));
    tc_dtype dtype = tc_promote_dtypes(a->dtype, b->dtype);
    tc_tensor *ca = NULL, *cb = NULL, *vc = NULL, *va = NULL, *vb = NULL;
    *out = NULL;
    tc_status status = tc_to_dtype(a, dtype, &ca);
    if (status == TC_OK) status = tc_to_dtype(b, dtype, &cb);
    if (status == TC_OK) status = tc_broadcast_view(cond, ndim, shape, &vc);
    if (status == TC_OK) status = tc_broadcast_view(ca, ndim, shape, &va);
    if (status == TC_OK) status = tc_broadcast_view(cb, ndim, shape, &vb);
    if (status == TC_OK) status = tc_empty_shaped(ca, dtype, ndim, shape, out);
    if (status == TC_OK) status = tc_backend_of(ca)->where(vc, va, vb, *out);
    tc_tensor *inputs[3] = {cond, ca, cb};
    if (status == TC_OK) /* the condition routes the gradient */
        status = tc_record_op(TC_OP_WHERE, 3, inputs, *out, &(tc_node_state){.reads = TC_READS(0)});
    if (status != TC_OK && *out) {
        tc_tensor_release(*out);
        *out = NULL;
    }
    tc_tensor_release(ca);
    tc_tensor_release(cb);
    tc_tensor_release(vc);
    tc_tensor_release(va);
    tc_tensor_release(vb);
    return status;
}

tc_status tc_masked_fill(tc_tensor *x, tc_tensor *mask, double value, tc_tensor **out) {
    if (mask->dtype != TC_BOOL && mask->dtype != TC_UINT8)
        return tc_fail(x->ctx, TC_ERROR_DTYPE, "masked_fill: the mask must be bool or uint8, got %s",
                       tc_dtype_name(mask->dtype));
    int ndim;
    int64_t shape[TC_MAX_DIMS];
    TC_TRY(tc_broadcast_shapes(x->ctx, "masked_fill", x->ndim, x->shape, mask->ndim, mask->shape, &ndim, shape));
    if (ndim != x->ndim || tc_shape_numel(ndim, shape) != tc_tensor_numel(x))
        return tc_fail(x->ctx, TC_ERROR_SHAPE, "masked_fill: a mask of shape %s does not broadcast to shape %s",
                       TC_SHAPE(mask), TC_SHAPE(x));
    tc_tensor *fill;
    TC_TRY(tc_check_scalar(x->ctx, "masked_fill", value, x->dtype));
    TC_TRY(scalar_like(x, value, &fill));
    tc_status status = tc_where(mask, fill, x, out);
    tc_tensor_release(fill);
    return status;
}
