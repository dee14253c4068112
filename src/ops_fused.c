/*
 * ops_fused.c: the fused neural-network ops: layer norm, RMS norm,
 * multi-head self-attention, softmax cross-entropy, and the optimiser steps
 * (AdamW, SGD, global norm, in-place scaling). Each op checks its arguments
 * (errors name the function, the argument and the shapes), makes its inputs
 * contiguous, runs its kernel and records a tape entry whose backward is
 * written by hand beside it.
 *
 * The kernels are reached through tc_backend_kernels (the fused slots of
 * tc_backend, internal.h); a backend that leaves a slot empty makes the op
 * fail with TC_ERROR_UNSUPPORTED naming the device.
 */
#include "internal.h"

#include <limits.h>
#include <math.h>
#include <string.h>

/* ---- shared checks ---- */

static tc_status check_floating(const char *function, const char *argument, const tc_tensor *t) {
    if (!tc_dtype_is_floating(t->dtype))
        return tc_fail(t->ctx, TC_ERROR_DTYPE, "%s: %s must be float32 or float64, got %s of shape %s", function,
                       argument, tc_dtype_name(t->dtype), TC_SHAPE(t));
    return TC_OK;
}

/* `other` must match `like` in dtype and device (its shape is checked by the caller). */
static tc_status check_companion(const char *function, const char *argument, const tc_tensor *like,
                                 const char *like_name, const tc_tensor *other) {
    TC_TRY(tc_check_same_device(function, like, other));
    if (other->dtype != like->dtype)
        return tc_fail(like->ctx, TC_ERROR_DTYPE, "%s: %s is %s but %s is %s (they must have the same dtype)",
                       function, argument, tc_dtype_name(other->dtype), like_name, tc_dtype_name(like->dtype));
    return TC_OK;
}

/* The gradient arriving at a node, in the node's output dtype and
 * contiguous, as the kernels want it. Runs with grad mode off. */
static tc_status prepare_grad(const tc_node *node, tc_tensor *grad, tc_tensor **out) {
    tc_tensor *cast;
    TC_TRY(tc_cast_if_needed(grad, node->out_dtype, &cast));
    tc_status status = tc_contiguous(cast, out);
    tc_tensor_release(cast);
    return status;
}

/* Releases count tensors (entries may be NULL). */
static void release_all(int count, tc_tensor **tensors) {
    for (int i = 0; i < count; i++) tc_tensor_release(tensors[i]);
}

/* ---- layer norm and RMS norm ----
 * Saved for backward: the per-row mean and 1/std ([rows] each, x's dtype);
 * x and weight are held as the node's inputs. The normalised tensor is not
 * kept: backward recomputes it from x, mean and rstd. */

tc_status tc_norm_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    bool rms = node->ints[0] != 0;
    tc_tensor *x = node->inputs[0], *weight = node->inputs[1], *bias = rms ? NULL : node->inputs[2];
    int64_t cols = x->shape[x->ndim - 1], rows = cols ? tc_tensor_numel(x) / cols : 0;
    tc_tensor *g = NULL, *dx = NULL, *dweight = NULL, *dbias = NULL;
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(x, rms ? "rms_norm" : "layer_norm", TC_SLOT_BIT(layer_norm_backward), &backend));
    tc_status status = prepare_grad(node, grad, &g);
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
        release_all(3, all);
    }
    tc_tensor_release(g);
    return status;
}


static tc_status check_norm_parameter(const char *function, const char *argument, const tc_tensor *x,
                                      const tc_tensor *p) {
    TC_TRY(check_companion(function, argument, x, "x", p));
    int64_t cols = x->shape[x->ndim - 1];
    if (p->ndim != 1 || p->shape[0] != cols)
        return tc_fail(x->ctx, TC_ERROR_SHAPE, "%s: %s of shape %s does not match x of shape %s (expected {%lld})",
                       function, argument, TC_SHAPE(p), TC_SHAPE(x), (long long)cols);
    return TC_OK;
}

static tc_status norm_impl(const char *function, bool rms, tc_tensor *x, tc_tensor *weight, tc_tensor *bias,
                           double eps, tc_tensor **out) {
    *out = NULL;
    TC_TRY(check_floating(function, "x", x));
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(x, function, TC_SLOT_BIT(layer_norm_forward) | TC_SLOT_BIT(layer_norm_backward),
                              &backend));
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
    if (status == TC_OK) status = tc_empty_shaped(inputs[0], x->dtype, 1, &rows, &mean);
    if (status == TC_OK) status = tc_empty_shaped(inputs[0], x->dtype, 1, &rows, &rstd);
    if (status == TC_OK && rows > 0 && cols > 0)
        status = backend->layer_norm_forward(
            x->ctx, x->dtype, rms, tc_tensor_data_at_offset(inputs[0]),
            inputs[1] ? tc_tensor_data_at_offset(inputs[1]) : NULL,
            inputs[2] ? tc_tensor_data_at_offset(inputs[2]) : NULL, eps, rows, cols, tc_tensor_data_at_offset(result),
            tc_tensor_data_at_offset(mean), tc_tensor_data_at_offset(rstd));
    int n_inputs = rms ? 2 : 3;
    if (status == TC_OK && tc_should_record(x->ctx, n_inputs, inputs)) {
        tc_node *node;
        status = tc_record(rms ? &tc_tape_ops[TC_OP_RMS_NORM] : &tc_tape_ops[TC_OP_LAYER_NORM], n_inputs, inputs, result, &node);
        if (status == TC_OK) {
            node->ints[0] = rms;
            node->n_ints = 1;
            node->reals[0] = eps;
            tc_node_reads_input(node, 0); /* dx and the parameter gradients read x and the weight */
            if (inputs[1]) tc_node_reads_input(node, 1);
            status = tc_node_save(node, 0, mean);
        }
        if (status == TC_OK) status = tc_node_save(node, 1, rstd);
    }
    if (status == TC_OK) {
        *out = result;
        result = NULL;
    }
    tc_tensor *all[6] = {inputs[0], inputs[1], inputs[2], mean, rstd, result};
    release_all(6, all);
    return status;
}

tc_status tc_layer_norm(tc_tensor *x, tc_tensor *weight, tc_tensor *bias, double eps, tc_tensor **out) {
    return norm_impl("layer_norm", false, x, weight, bias, eps, out);
}

tc_status tc_rms_norm(tc_tensor *x, tc_tensor *weight, double eps, tc_tensor **out) {
    return norm_impl("rms_norm", true, x, weight, NULL, eps, out);
}

/* ---- attention ----
 * What is kept for backward: the row log-sum-exp of the scaled, masked
 * scores, [B, n_head, T] in qkv's dtype (flash-attention style), and the
 * output [B, T, C] (a detached alias of the result, which the next layer
 * holds anyway; backward needs rowsum(dout * out) per row); qkv is the
 * node's input. The [B, n_head, T, T] probabilities never exist: kernels
 * work on tiles of keys and recompute P = exp(S - lse) in backward. */

tc_status tc_attention_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    tc_tensor *qkv = node->inputs[0];
    int64_t batch = qkv->shape[0], time = qkv->shape[1], channels = qkv->shape[2] / 3;
    int64_t heads = node->ints[0];
    bool causal = node->ints[1] != 0;
    if (!tc_node_input_needs_grad(node, 0)) return TC_OK;
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(qkv, "attention", TC_SLOT_BIT(attention_backward), &backend));
    tc_tensor *g = NULL, *dqkv = NULL;
    tc_status status = prepare_grad(node, grad, &g);
    if (status == TC_OK) status = tc_empty_like(qkv, &dqkv);
    if (status == TC_OK && tc_tensor_numel(qkv) > 0)
        status = backend->attention_backward(
            node->ctx, qkv->dtype, tc_tensor_data_at_offset(qkv), tc_tensor_data_at_offset(node->saved[1]),
            tc_tensor_data_at_offset(node->saved[0]), tc_tensor_data_at_offset(g), batch, time, channels, heads, causal,
            tc_tensor_data_at_offset(dqkv));
    if (status == TC_OK) {
        grad_inputs[0] = dqkv;
        dqkv = NULL;
    }
    tc_tensor_release(dqkv);
    tc_tensor_release(g);
    return status;
}


tc_status tc_attention(tc_tensor *qkv, int n_head, bool causal, tc_tensor **out) {
    *out = NULL;
    TC_TRY(check_floating("attention", "qkv", qkv));
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(qkv, "attention", TC_SLOT_BIT(attention_forward) | TC_SLOT_BIT(attention_backward),
                              &backend));
    if (qkv->ndim != 3 || qkv->shape[2] % 3 != 0)
        return tc_fail(qkv->ctx, TC_ERROR_SHAPE,
                       "attention: qkv must be {B, T, 3C} (q, k, v packed on the last dim), got shape %s",
                       TC_SHAPE(qkv));
    int64_t batch = qkv->shape[0], time = qkv->shape[1], channels = qkv->shape[2] / 3;
    if (n_head < 1 || channels % n_head != 0)
        return tc_fail(qkv->ctx, TC_ERROR_ARGUMENT,
                       "attention: n_head %d does not divide C = %lld (qkv of shape %s has 3C = %lld)", n_head,
                       (long long)channels, TC_SHAPE(qkv), (long long)(3 * channels));
    if (3 * channels > INT_MAX || time > INT_MAX)
        return tc_fail(qkv->ctx, TC_ERROR_ARGUMENT, "attention: qkv of shape %s exceeds BLAS's 32-bit sizes",
                       TC_SHAPE(qkv));
    tc_tensor *input = NULL, *result = NULL, *lse = NULL;
    int64_t out_shape[3] = {batch, time, channels}, lse_shape[3] = {batch, n_head, time};
    tc_status status = tc_contiguous(qkv, &input);
    if (status == TC_OK) status = tc_empty_shaped(input, qkv->dtype, 3, out_shape, &result);
    if (status == TC_OK) status = tc_empty_shaped(input, qkv->dtype, 3, lse_shape, &lse);
    if (status == TC_OK && tc_tensor_numel(result) > 0)
        status = backend->attention_forward(qkv->ctx, qkv->dtype, tc_tensor_data_at_offset(input), batch, time,
                                            channels, n_head, causal, tc_tensor_data_at_offset(result),
                                            tc_tensor_data_at_offset(lse));
    if (status == TC_OK && tc_should_record(qkv->ctx, 1, &input)) {
        tc_node *node;
        status = tc_record(&tc_tape_ops[TC_OP_ATTENTION], 1, &input, result, &node);
        if (status == TC_OK) {
            node->ints[0] = n_head;
            node->ints[1] = causal;
            node->n_ints = 2;
            tc_node_reads_input(node, 0); /* backward recomputes the scores from qkv */
            status = tc_node_save(node, 0, lse);
        }
        if (status == TC_OK) status = tc_node_save(node, 1, result);
    }
    if (status == TC_OK) {
        *out = result;
        result = NULL;
    }
    tc_tensor_release(result);
    tc_tensor_release(lse);
    tc_tensor_release(input);
    return status;
}

/* Checks a key or value cache for tc_attention_cached: [B, n_head,
 * capacity, hd], contiguous, like qkv in dtype and device. */
static tc_status check_cache(const char *argument, const tc_tensor *qkv, const tc_tensor *cache, int n_head,
                             int64_t head_dim) {
    TC_TRY(check_companion("attention_cached", argument, qkv, "qkv", cache));
    if (cache->ndim != 4 || cache->shape[0] != qkv->shape[0] || cache->shape[1] != n_head ||
        cache->shape[3] != head_dim)
        return tc_fail(qkv->ctx, TC_ERROR_SHAPE,
                       "attention_cached: %s of shape %s does not fit qkv of shape %s with %d heads (expected {%lld, "
                       "%d, capacity, %lld})",
                       argument, TC_SHAPE(cache), TC_SHAPE(qkv), n_head, (long long)qkv->shape[0], n_head,
                       (long long)head_dim);
    if (!tc_tensor_is_contiguous(cache))
        return tc_fail(qkv->ctx, TC_ERROR_ARGUMENT,
                       "attention_cached: %s (shape %s) must be contiguous, since it is written in place", argument,
                       TC_SHAPE(cache));
    return TC_OK;
}

tc_status tc_attention_cached(tc_tensor *qkv, tc_tensor *k_cache, tc_tensor *v_cache, int64_t position, int n_head,
                              bool causal, tc_tensor **out) {
    *out = NULL;
    TC_TRY(check_floating("attention_cached", "qkv", qkv));
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(qkv, "attention_cached", TC_SLOT_BIT(attention_cached), &backend));
    if (qkv->ndim != 3 || qkv->shape[2] % 3 != 0)
        return tc_fail(qkv->ctx, TC_ERROR_SHAPE,
                       "attention_cached: qkv must be {B, T, 3C} (q, k, v packed on the last dim), got shape %s",
                       TC_SHAPE(qkv));
    int64_t batch = qkv->shape[0], time = qkv->shape[1], channels = qkv->shape[2] / 3;
    if (n_head < 1 || channels % n_head != 0)
        return tc_fail(qkv->ctx, TC_ERROR_ARGUMENT,
                       "attention_cached: n_head %d does not divide C = %lld (qkv of shape %s)", n_head,
                       (long long)channels, TC_SHAPE(qkv));
    TC_TRY(check_cache("k_cache", qkv, k_cache, n_head, channels / n_head));
    TC_TRY(check_cache("v_cache", qkv, v_cache, n_head, channels / n_head));
    int64_t capacity = k_cache->shape[2];
    if (v_cache->shape[2] != capacity)
        return tc_fail(qkv->ctx, TC_ERROR_SHAPE,
                       "attention_cached: k_cache of shape %s and v_cache of shape %s hold different numbers of "
                       "positions (%lld and %lld)",
                       TC_SHAPE(k_cache), TC_SHAPE(v_cache), (long long)capacity, (long long)v_cache->shape[2]);
    if (position < 0)
        return tc_fail(qkv->ctx, TC_ERROR_ARGUMENT,
                       "attention_cached: position %lld is negative (it counts the positions already cached, from 0)",
                       (long long)position);
    /* position + time could overflow: compared the other way round */
    if (position > capacity - time)
        return tc_fail(qkv->ctx, TC_ERROR_ARGUMENT,
                       "attention_cached: %lld cached + %lld new positions do not fit caches of %lld positions "
                       "(shapes %s and %s)",
                       (long long)position, (long long)time, (long long)capacity, TC_SHAPE(k_cache),
                       TC_SHAPE(v_cache));
    if (3 * channels > INT_MAX || capacity > INT_MAX)
        return tc_fail(qkv->ctx, TC_ERROR_ARGUMENT, "attention_cached: qkv of shape %s exceeds BLAS's 32-bit sizes",
                       TC_SHAPE(qkv));
    tc_tensor *input = NULL, *result = NULL;
    int64_t out_shape[3] = {batch, time, channels};
    tc_status status = tc_contiguous(qkv, &input);
    if (status == TC_OK) status = tc_empty_shaped(input, qkv->dtype, 3, out_shape, &result);
    if (status == TC_OK && tc_tensor_numel(result) > 0)
        status = backend->attention_cached(
            qkv->ctx, qkv->dtype, tc_tensor_data_at_offset(input), batch, time, channels, n_head, causal,
            tc_tensor_data_at_offset(k_cache), tc_tensor_data_at_offset(v_cache), capacity, position,
            tc_tensor_data_at_offset(result));
    if (status == TC_OK) {
        *out = result;
        result = NULL;
    }
    tc_tensor_release(result);
    tc_tensor_release(input);
    return status;
}

/* ---- softmax cross-entropy ----
 * Saved for backward: the row log-sum-exp [N] (logits' dtype); logits and
 * targets are held as the node's inputs; the count of kept targets is in
 * reals[0] and ignore_index in ints[0]. */

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
    TC_TRY(check_floating("cross_entropy", "logits", logits));
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(logits, "cross_entropy",
                              TC_SLOT_BIT(cross_entropy_forward) | TC_SLOT_BIT(cross_entropy_backward), &backend));
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
    if (status == TC_OK) status = tc_empty_shaped(inputs[0], logits->dtype, 1, &rows, &lse);
    if (status == TC_OK) status = tc_empty_shaped(inputs[0], logits->dtype, 0, NULL, &result);
    int64_t count = 0;
    double total = 0;
    if (status == TC_OK && rows > 0)
        status = backend->cross_entropy_forward(
            logits->ctx, logits->dtype, tc_tensor_data_at_offset(inputs[0]), targets->dtype,
            tc_tensor_data_at_offset(inputs[1]), rows, classes, ignore_index, tc_tensor_data_at_offset(lse), &total,
            &count);
    if (status == TC_OK) status = tc_fill_(result, count > 0 ? total / (double)count : 0.0);
    if (status == TC_OK && tc_should_record(logits->ctx, 1, inputs)) {
        tc_node *node;
        status = tc_record(&tc_tape_ops[TC_OP_CROSS_ENTROPY], 2, inputs, result, &node);
        if (status == TC_OK) {
            node->ints[0] = ignore_index;
            node->n_ints = 1;
            node->reals[0] = (double)count;
            tc_node_reads_input(node, 0); /* the softmax is recomputed from the logits, */
            tc_node_reads_input(node, 1); /* and the targets pick the rows' classes */
            status = tc_node_save(node, 0, lse);
        }
    }
    if (status == TC_OK) {
        *out = result;
        result = NULL;
    }
    tc_tensor *all[4] = {inputs[0], inputs[1], lse, result};
    release_all(4, all);
    return status;
}

/* ---- optimiser steps (in place, never on the tape) ---- */

/* A tensor updated in place by an optimiser: floating, CPU, contiguous, and
 * shaped like param. */
static tc_status check_state(const char *function, const char *argument, const tc_tensor *param,
                             const tc_tensor *t, bool written) {
    TC_TRY(check_companion(function, argument, param, "param", t));
    if (!tc_same_shape(t, param))
        return tc_fail(param->ctx, TC_ERROR_SHAPE, "%s: %s of shape %s does not match param of shape %s", function,
                       argument, TC_SHAPE(t), TC_SHAPE(param));
    if (written && !tc_tensor_is_contiguous(t))
        return tc_fail(param->ctx, TC_ERROR_ARGUMENT,
                       "%s: %s (shape %s) must be contiguous, since it is updated in place", function, argument,
                       TC_SHAPE(t));
    return TC_OK;
}

/* t itself (retained) when contiguous, else a copy that is not on the tape. */
static tc_status contiguous_untracked(tc_tensor *t, tc_tensor **out) {
    if (tc_tensor_is_contiguous(t)) {
        tc_tensor_retain(t);
        *out = t;
        return TC_OK;
    }
    return tc_contiguous_copy(t, out);
}

/* The checks of one AdamW tensor; fills its kernel entry and gives its
 * backend. */
static tc_status prepare_adamw(tc_tensor *param, tc_tensor *grad, tc_tensor *m, tc_tensor *v, int64_t step,
                               tc_step_tensor *entry, const tc_backend **backend) {
    const char *function = "adamw_step";
    TC_TRY(check_floating(function, "param", param));
    TC_TRY(tc_backend_kernels(param, function, TC_SLOT_BIT(adamw_step), backend));
    if (!tc_tensor_is_contiguous(param))
        return tc_fail(param->ctx, TC_ERROR_ARGUMENT, "%s: param (shape %s) must be contiguous", function,
                       TC_SHAPE(param));
    TC_TRY(check_state(function, "grad", param, grad, false));
    TC_TRY(check_state(function, "m", param, m, true));
    TC_TRY(check_state(function, "v", param, v, true));
    if (step < 1)
        return tc_fail(param->ctx, TC_ERROR_ARGUMENT, "%s: step counts from 1, got %lld", function, (long long)step);
    *entry = (tc_step_tensor){.param = tc_tensor_data_at_offset(param),
                              .grad = tc_tensor_data_at_offset(grad),
                              .state = {tc_tensor_data_at_offset(m), tc_tensor_data_at_offset(v)},
                              .numel = tc_tensor_numel(param)};
    return TC_OK;
}

static tc_status check_adamw_hyper(tc_context *ctx, double lr, double beta1, double beta2, double eps,
                                   double weight_decay) {
    if (!(lr >= 0) || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps >= 0) ||
        !(weight_decay >= 0))
        return tc_fail(ctx, TC_ERROR_ARGUMENT,
                       "adamw_step: expected lr >= 0, 0 <= beta1, beta2 < 1, eps >= 0, weight_decay >= 0; got lr "
                       "%g, beta1 %g, beta2 %g, eps %g, weight_decay %g",
                       lr, beta1, beta2, eps, weight_decay);
    return TC_OK;
}

tc_status tc_adamw_step_many(int count, tc_tensor **params, tc_tensor **grads, tc_tensor **m, tc_tensor **v,
                             const int64_t *steps, double lr, double beta1, double beta2, double eps,
                             double weight_decay) {
    if (count <= 0) return TC_OK;
    tc_context *ctx = params[0]->ctx;
    TC_TRY(check_adamw_hyper(ctx, lr, beta1, beta2, eps, weight_decay));
    tc_step_tensor *entries = tc_malloc(ctx, sizeof *entries * (size_t)count);
    tc_tensor **contiguous_grads = tc_calloc(ctx, (size_t)count, sizeof *contiguous_grads);
    if (!entries || !contiguous_grads) {
        tc_free(entries);
        tc_free(contiguous_grads);
        return tc_fail(ctx, TC_ERROR_MEMORY, "adamw_step: out of memory for %d tensors", count);
    }
    tc_status status = TC_OK;
    /* Runs of the same dtype and device go to their backend's kernel in one call. */
    int begin = 0;
    const tc_backend *backend = NULL, *run_backend = NULL;
    for (int i = 0; i < count && status == TC_OK; i++) {
        status = prepare_adamw(params[i], grads[i], m[i], v[i], steps[i], &entries[i], &backend);
        /* the update writes param and state in place: refused in grad mode, counted as writes */
        if (status == TC_OK) status = tc_inplace_begin(params[i], "adamw_step");
        if (status == TC_OK) status = tc_inplace_begin(m[i], "adamw_step");
        if (status == TC_OK) status = tc_inplace_begin(v[i], "adamw_step");
        if (status == TC_OK) status = contiguous_untracked(grads[i], &contiguous_grads[i]);
        if (status != TC_OK) break;
        entries[i].grad = tc_tensor_data_at_offset(contiguous_grads[i]);
        /* The bias corrections in double: in float32, 1 - beta2^step loses
         * most of its digits for beta2 near 1. */
        entries[i].bias1 = 1.0 - pow(beta1, (double)steps[i]);
        entries[i].bias2 = 1.0 - pow(beta2, (double)steps[i]);
        if (i > 0 && (params[i]->dtype != params[begin]->dtype ||
                      params[i]->storage->device != params[begin]->storage->device)) {
            status = run_backend->adamw_step(ctx, params[begin]->dtype, i - begin, entries + begin, lr, beta1,
                                             beta2, eps, weight_decay);
            begin = i;
        }
        if (i == begin) run_backend = backend;
    }
    if (status == TC_OK)
        status = run_backend->adamw_step(ctx, params[begin]->dtype, count - begin, entries + begin, lr, beta1, beta2,
                                         eps, weight_decay);
    release_all(count, contiguous_grads);
    tc_free(contiguous_grads);
    tc_free(entries);
    return status;
}

tc_status tc_adamw_step(tc_tensor *param, tc_tensor *grad, tc_tensor *m, tc_tensor *v, int64_t step, double lr,
                        double beta1, double beta2, double eps, double weight_decay) {
    return tc_adamw_step_many(1, &param, &grad, &m, &v, &step, lr, beta1, beta2, eps, weight_decay);
}

tc_status tc_sgd_step(tc_tensor *param, tc_tensor *grad, tc_tensor *momentum_buffer, double lr, double momentum,
                      double dampening, bool nesterov, double weight_decay) {
    const char *function = "sgd_step";
    TC_TRY(check_floating(function, "param", param));
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(param, function, TC_SLOT_BIT(sgd_step), &backend));
    if (!tc_tensor_is_contiguous(param))
        return tc_fail(param->ctx, TC_ERROR_ARGUMENT, "%s: param (shape %s) must be contiguous", function,
                       TC_SHAPE(param));
    TC_TRY(check_state(function, "grad", param, grad, false));
    if (!(lr >= 0) || !(momentum >= 0) || !(weight_decay >= 0) || !(dampening >= 0 && dampening <= 1))
        return tc_fail(param->ctx, TC_ERROR_ARGUMENT,
                       "%s: expected lr >= 0, momentum >= 0, 0 <= dampening <= 1, weight_decay >= 0; got lr %g, "
                       "momentum %g, dampening %g, weight_decay %g",
                       function, lr, momentum, dampening, weight_decay);
    if (nesterov && (momentum <= 0 || dampening != 0))
        return tc_fail(param->ctx, TC_ERROR_ARGUMENT,
                       "%s: nesterov needs momentum > 0 and dampening 0 (got momentum %g, dampening %g)", function,
                       momentum, dampening);
    if (momentum != 0) {
        if (!momentum_buffer)
            return tc_fail(param->ctx, TC_ERROR_ARGUMENT,
                           "%s: momentum %g needs a momentum buffer shaped like param %s", function, momentum,
                           TC_SHAPE(param));
        TC_TRY(check_state(function, "momentum_buffer", param, momentum_buffer, true));
    }
    TC_TRY(tc_inplace_begin(param, function));
    if (momentum != 0) TC_TRY(tc_inplace_begin(momentum_buffer, function));
    tc_tensor *g;
    TC_TRY(contiguous_untracked(grad, &g));
    tc_step_tensor entry = {.param = tc_tensor_data_at_offset(param),
                            .grad = tc_tensor_data_at_offset(g),
                            .state = {momentum != 0 ? tc_tensor_data_at_offset(momentum_buffer) : NULL, NULL},
                            .numel = tc_tensor_numel(param)};
    tc_status status =
        backend->sgd_step(param->ctx, param->dtype, 1, &entry, lr, momentum, dampening, nesterov, weight_decay);
    tc_tensor_release(g);
    return status;
}

/* Adds the sum of squares of tensors[begin .. end) (one dtype and device,
 * contiguous) to *total. */
static tc_status add_sum_squares(tc_tensor **tensors, int begin, int end, double *total) {
    tc_context *ctx = tensors[begin]->ctx;
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(tensors[begin], "global_norm", TC_SLOT_BIT(sum_squares), &backend));
    int n = end - begin;
    const void **data = tc_malloc(ctx, sizeof *data * (size_t)n);
    int64_t *sizes = tc_malloc(ctx, sizeof *sizes * (size_t)n);
    tc_status status = data && sizes ? TC_OK : tc_fail(ctx, TC_ERROR_MEMORY, "global_norm: out of memory");
    for (int i = 0; status == TC_OK && i < n; i++) {
        data[i] = tc_tensor_data_at_offset(tensors[begin + i]);
        sizes[i] = tc_tensor_numel(tensors[begin + i]);
    }
    double partial = 0;
    if (status == TC_OK)
        status = backend->sum_squares(ctx, tensors[begin]->dtype, n, data, sizes, &partial);
    *total += partial;
    tc_free(data);
    tc_free(sizes);
    return status;
}

tc_status tc_global_norm(int count, tc_tensor **tensors, double *out) {
    *out = 0;
    tc_tensor **held = NULL;
    int n = 0;
    tc_status status = TC_OK;
    for (int i = 0; i < count; i++) {
        tc_tensor *t = tensors[i];
        if (!t) continue;
        if (!held) {
            held = tc_calloc(t->ctx, (size_t)count, sizeof *held);
            if (!held) return tc_fail(t->ctx, TC_ERROR_MEMORY, "global_norm: out of memory for %d tensors", count);
        }
        if (!tc_dtype_is_floating(t->dtype)) {
            status = tc_fail(t->ctx, TC_ERROR_DTYPE, "global_norm: tensor %d must be float32 or float64, got %s %s",
                             i + 1, tc_dtype_name(t->dtype), TC_SHAPE(t));
            break;
        }
        const tc_backend *backend;
        status = tc_backend_kernels(t, "global_norm", TC_SLOT_BIT(sum_squares), &backend);
        if (status == TC_OK) status = contiguous_untracked(t, &held[n]);
        if (status != TC_OK) break;
        n++;
    }
    double total = 0;
    int begin = 0;
    for (int i = 1; status == TC_OK && i <= n; i++)
        if (i == n || held[i]->dtype != held[begin]->dtype ||
            held[i]->storage->device != held[begin]->storage->device) {
            status = add_sum_squares(held, begin, i, &total);
            begin = i;
        }
    if (held) release_all(n, held);
    tc_free(held);
    if (status == TC_OK) *out = sqrt(total);
    return status;
}

tc_status tc_scale_(tc_tensor *t, double factor) {
    TC_TRY(check_floating("scale_", "t", t));
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(t, "scale_", TC_SLOT_BIT(scale), &backend));
    TC_TRY(tc_inplace_begin(t, "scale_"));
    int64_t n = tc_tensor_numel(t);
    if (tc_tensor_is_contiguous(t)) {
        void *data = tc_tensor_data_at_offset(t);
        return backend->scale(t->ctx, t->dtype, 1, &data, &n, factor);
    }
    tc_tensor *c;
    TC_TRY(tc_contiguous_copy(t, &c));
    void *data = tc_tensor_data_at_offset(c);
    tc_status status = backend->scale(c->ctx, c->dtype, 1, &data, &n, factor);
    if (status == TC_OK) status = tc_copy_(t, c);
    tc_tensor_release(c);
    return status;
}
