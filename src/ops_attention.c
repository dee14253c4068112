/*
 * ops_attention.c: multi-head (and grouped-query) self-attention over
 * packed qkv, forward
 * beside backward, and the cached forward of decoding (the kernels: the
 * attention_forward, attention_backward and attention_cached slots).
 */
#include "ops_fused.h"

#include <limits.h>

/* What is kept for backward: the row log-sum-exp of the scaled, masked
 * scores, [B, n_head, T] in qkv's dtype (float32 for 16-bit qkv, which the
 * kernels take as it is where the backend's half_slots hold both attention
 * slots; elsewhere it is widened) (flash-attention style), and the
 * output [B, T, C] (a detached alias of the result, which the next layer
 * holds anyway; backward needs rowsum(dout * out) per row); qkv is the
 * node's input. The [B, n_head, T, T] probabilities never exist: kernels
 * work on tiles of keys and recompute P = exp(S - lse) in backward. */

tc_status tc_attention_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    tc_tensor *qkv = node->inputs[0];
    int64_t batch = qkv->shape[0], time = qkv->shape[1];
    int64_t heads = node->ints[0], kv_heads = node->ints[2];
    int64_t head_dim = qkv->shape[2] / (heads + 2 * kv_heads);
    bool causal = node->ints[1] != 0;
    if (!tc_node_input_needs_grad(node, 0)) return TC_OK;
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(qkv, "attention", TC_SLOT_BIT(attention_backward), &backend));
    tc_tensor *g = NULL, *dqkv = NULL;
    tc_status status = tc_prepare_grad(node, grad, &g);
    if (status == TC_OK) status = tc_empty_like(qkv, &dqkv);
    if (status == TC_OK && tc_tensor_numel(qkv) > 0)
        status = backend->attention_backward(
            node->ctx, qkv->dtype, tc_tensor_data_at_offset(qkv), tc_tensor_data_at_offset(node->saved[1]),
            tc_tensor_data_at_offset(node->saved[0]), tc_tensor_data_at_offset(g), batch, time, heads, kv_heads,
            head_dim, causal, tc_tensor_data_at_offset(dqkv));
    if (status == TC_OK) {
        grad_inputs[0] = dqkv;
        dqkv = NULL;
    }
    tc_tensor_release(dqkv);
    tc_tensor_release(g);
    return status;
}

/* qkv must be {B, T, (H + 2 KV) hd} (q, k, v packed on the last dim), the
 * number of k/v heads KV dividing the number of query heads H; *head_dim
 * gets hd. With KV = H the messages speak of the plain {B, T, 3C}. */
static tc_status check_qkv(const char *function, const tc_tensor *qkv, int n_head, int n_kv_head,
                           int64_t *head_dim) {
    if (n_head < 1)
        return tc_fail(qkv->ctx, TC_ERROR_ARGUMENT, "%s: n_head %d must be >= 1 (qkv of shape %s)", function, n_head,
                       TC_SHAPE(qkv));
    if (n_kv_head < 1 || n_kv_head > n_head || n_head % n_kv_head != 0)
        return tc_fail(qkv->ctx, TC_ERROR_ARGUMENT, "%s: n_kv_head %d must divide n_head %d (qkv of shape %s)",
                       function, n_kv_head, n_head, TC_SHAPE(qkv));
    int64_t width = qkv->ndim == 3 ? qkv->shape[2] : 0, groups = (int64_t)n_head + 2 * n_kv_head;
    if (n_kv_head == n_head) {
        if (qkv->ndim != 3 || width % 3 != 0)
            return tc_fail(qkv->ctx, TC_ERROR_SHAPE,
                           "%s: qkv must be {B, T, 3C} (q, k, v packed on the last dim), got shape %s", function,
                           TC_SHAPE(qkv));
        if ((width / 3) % n_head != 0)
            return tc_fail(qkv->ctx, TC_ERROR_ARGUMENT,
                           "%s: n_head %d does not divide C = %lld (qkv of shape %s has 3C = %lld)", function,
                           n_head, (long long)(width / 3), TC_SHAPE(qkv), (long long)width);
    } else if (qkv->ndim != 3 || width % groups != 0) {
        return tc_fail(qkv->ctx, TC_ERROR_SHAPE,
                       "%s: qkv must be {B, T, (n_head + 2 n_kv_head) * head_dim} = {B, T, %lld * head_dim} for "
                       "n_head %d and n_kv_head %d (q, k, v packed on the last dim), got shape %s",
                       function, (long long)groups, n_head, n_kv_head, TC_SHAPE(qkv));
    }
    *head_dim = width / groups;
    return TC_OK;
}

static tc_status attention_impl(tc_tensor *qkv, int n_head, int n_kv_head, bool causal, tc_tensor **out);

/* Under autocast the products read qkv rounded to the autocast dtype and sum
 * in float32, as the GEMMs do: the kernels get the rounded values widened
 * back and give a float32 output. The round trip is two differentiable
 * conversions, so the gradient is rounded once on its way back to qkv. */
static tc_status attention_autocast(tc_tensor *qkv, int n_head, int n_kv_head, bool causal, tc_tensor **out) {
    tc_tensor *narrow = NULL, *rounded = NULL;
    tc_status status = tc_to_dtype(qkv, qkv->ctx->autocast, &narrow);
    if (status == TC_OK) status = tc_to_dtype(narrow, TC_FLOAT32, &rounded);
    if (status == TC_OK) status = attention_impl(rounded, n_head, n_kv_head, causal, out);
    tc_tensor_release(rounded);
    tc_tensor_release(narrow);
    return status;
}

tc_status tc_attention(tc_tensor *qkv, int n_head, int n_kv_head, bool causal, tc_tensor **out) {
    *out = NULL;
    TC_TRY(tc_check_floating("attention", "qkv", qkv));
    if (qkv->dtype == TC_FLOAT32 && qkv->ctx->autocast != TC_FLOAT32) {
        int64_t head_dim; /* shapes checked before any copy is made */
        TC_TRY(check_qkv("attention", qkv, n_head, n_kv_head, &head_dim));
        return attention_autocast(qkv, n_head, n_kv_head, causal, out);
    }
    return attention_impl(qkv, n_head, n_kv_head, causal, out);
}

static tc_status attention_impl(tc_tensor *qkv, int n_head, int n_kv_head, bool causal, tc_tensor **out) {
    uint64_t slots = TC_SLOT_BIT(attention_forward) | TC_SLOT_BIT(attention_backward);
    if (tc_dtype_is_16bit(qkv->dtype) && !tc_backend_takes_16bit(qkv, slots)) {
        tc_tensor *wide, *result = NULL;
        TC_TRY(tc_widen_16bit(qkv, &wide));
        tc_status status = attention_impl(wide, n_head, n_kv_head, causal, &result);
        tc_tensor_release(wide);
        return tc_narrow_16bit(status, result, qkv->dtype, out);
    }
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(qkv, "attention", slots, &backend));
    int64_t head_dim;
    TC_TRY(check_qkv("attention", qkv, n_head, n_kv_head, &head_dim));
    int64_t batch = qkv->shape[0], time = qkv->shape[1], channels = n_head * head_dim;
    if (qkv->shape[2] > INT_MAX || time > INT_MAX)
        return tc_fail(qkv->ctx, TC_ERROR_ARGUMENT, "attention: qkv of shape %s exceeds BLAS's 32-bit sizes",
                       TC_SHAPE(qkv));
    tc_tensor *input = NULL, *result = NULL, *lse = NULL;
    int64_t out_shape[3] = {batch, time, channels}, lse_shape[3] = {batch, n_head, time};
    tc_status status = tc_contiguous(qkv, &input);
    if (status == TC_OK) status = tc_empty_shaped(input, qkv->dtype, 3, out_shape, &result);
    tc_dtype lse_dtype = tc_dtype_is_16bit(qkv->dtype) ? TC_FLOAT32 : qkv->dtype;
    if (status == TC_OK) status = tc_empty_shaped(input, lse_dtype, 3, lse_shape, &lse);
    if (status == TC_OK && tc_tensor_numel(result) > 0)
        status = backend->attention_forward(qkv->ctx, qkv->dtype, tc_tensor_data_at_offset(input), batch, time,
                                            n_head, n_kv_head, head_dim, causal, tc_tensor_data_at_offset(result),
                                            tc_tensor_data_at_offset(lse));
    /* backward recomputes the scores from qkv */
    if (status == TC_OK)
        status = tc_record_op(TC_OP_ATTENTION, 1, &input, result,
                              &(tc_node_state){.n_ints = 3, .ints = {n_head, causal, n_kv_head}, .reads = TC_READS(0),
                                               .saved = {lse, result}});
    if (status == TC_OK) {
        *out = result;
        result = NULL;
    }
    tc_tensor_release(result);
    tc_tensor_release(lse);
    tc_tensor_release(input);
    return status;
}

/* Checks a key or value cache for tc_attention_cached: [B, n_kv_head,
 * capacity, hd], contiguous, like qkv in dtype and device. */
static tc_status check_cache(const char *argument, const tc_tensor *qkv, const tc_tensor *cache, int n_kv_head,
                             int64_t head_dim) {
    TC_TRY(tc_check_companion("attention_cached", argument, qkv, "qkv", cache));
    if (cache->ndim != 4 || cache->shape[0] != qkv->shape[0] || cache->shape[1] != n_kv_head ||
        cache->shape[3] != head_dim)
        return tc_fail(qkv->ctx, TC_ERROR_SHAPE,
                       "attention_cached: %s of shape %s does not fit qkv of shape %s with %d key/value heads "
                       "(expected {%lld, %d, capacity, %lld})",
                       argument, TC_SHAPE(cache), TC_SHAPE(qkv), n_kv_head, (long long)qkv->shape[0], n_kv_head,
                       (long long)head_dim);
    if (!tc_tensor_is_contiguous(cache))
        return tc_fail(qkv->ctx, TC_ERROR_ARGUMENT,
                       "attention_cached: %s (shape %s) must be contiguous, since it is written in place", argument,
                       TC_SHAPE(cache));
    return TC_OK;
}

tc_status tc_attention_cached(tc_tensor *qkv, tc_tensor *k_cache, tc_tensor *v_cache, int64_t position, int n_head,
                              int n_kv_head, bool causal, tc_tensor **out) {
    *out = NULL;
    TC_TRY(tc_check_floating("attention_cached", "qkv", qkv));
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(qkv, "attention_cached", TC_SLOT_BIT(attention_cached), &backend));
    int64_t head_dim;
    TC_TRY(check_qkv("attention_cached", qkv, n_head, n_kv_head, &head_dim));
    int64_t batch = qkv->shape[0], time = qkv->shape[1], channels = n_head * head_dim;
    TC_TRY(check_cache("k_cache", qkv, k_cache, n_kv_head, head_dim));
    TC_TRY(check_cache("v_cache", qkv, v_cache, n_kv_head, head_dim));
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
    if (qkv->shape[2] > INT_MAX || capacity > INT_MAX)
        return tc_fail(qkv->ctx, TC_ERROR_ARGUMENT, "attention_cached: qkv of shape %s exceeds BLAS's 32-bit sizes",
                       TC_SHAPE(qkv));
    tc_tensor *input = NULL, *result = NULL;
    int64_t out_shape[3] = {batch, time, channels};
    tc_status status = tc_contiguous(qkv, &input);
    if (status == TC_OK) status = tc_empty_shaped(input, qkv->dtype, 3, out_shape, &result);
    if (status == TC_OK && tc_tensor_numel(result) > 0)
        status = backend->attention_cached(
            qkv->ctx, qkv->dtype, tc_tensor_data_at_offset(input), batch, time, n_head, n_kv_head, head_dim,
            causal, tc_tensor_data_at_offset(k_cache), tc_tensor_data_at_offset(v_cache), capacity, position,
            tc_tensor_data_at_offset(result));
    if (status == TC_OK) {
        *out = result;
        result = NULL;
    }
    tc_tensor_release(result);
    tc_tensor_release(input);
    return status;
}
