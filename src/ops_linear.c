/*
 * ops_linear.c: the linear layer as one differentiable op, optionally with
 * the tanh GELU after it (the transformer's MLP input).
 *
 * Forward: one GEMM x @ W^T with the bias added, and for float32 the GELU
 * taken, as each output tile is written (the backend's gemm_bias); without
 * that slot, out rows that start as the bias (a broadcast copy), a GEMM
 * adding to them, and the GELU as its own pass. Backward, with
 * dh = grad (times gelu'(h) with the activation): dx = dh @ W, dW = dh^T @ x
 * and db = ones^T @ dh, each one GEMM reading its operands in place
 * (transposes are GEMM flags). Saved for backward: nothing for the plain
 * linear (x, W, b are the node's inputs); with GELU the pre-activation h and
 * the output (a detached alias), both [rows, out].
 *
 * 16-bit x, W (and b) of one dtype, on a backend with gemm_16bit (tensor
 * cores on CUDA), stay 16-bit: the GEMM sums in float32 into a float32 h
 * that starts as the bias, the GELU is taken in float32, and the output is
 * rounded once, as when everything is widened; the node saves the float32
 * h and GELU(h). Its backward's products read 16-bit operands (dh rounded
 * to the dtype after gelu') and round each gradient once. Other 16-bit
 * combinations are widened (linear_16bit).
 */
#include "internal.h"

#include "cpu/cpu_matmul.h"

#include <string.h>

/* How gemm reads W^T [in, out] from a weight [out, in] laid out row-major
 * (strides (ld, 1): transposed) or column-major (strides (1, ld)); false
 * when it is neither and needs a copy. */
static bool weight_layout(const tc_tensor *w, bool *transpose, int64_t *leading) {
    int64_t rows = w->shape[0], cols = w->shape[1];
    if ((cols == 1 || w->strides[1] == 1) && (rows == 1 || w->strides[0] >= cols)) {
        *transpose = true;
        *leading = rows == 1 ? (cols > 1 ? cols : 1) : w->strides[0];
        return true;
    }
    if ((rows == 1 || w->strides[0] == 1) && (cols == 1 || w->strides[1] >= rows)) {
        *transpose = false;
        *leading = cols == 1 ? (rows > 1 ? rows : 1) : w->strides[1];
        return true;
    }
    return false;
}

/* w itself (retained) when gemm can read it, else a contiguous copy (not on
 * the tape); sets the layout. */
static tc_status readable_weight(tc_tensor *w, tc_tensor **out, bool *transpose, int64_t *leading) {
    if (weight_layout(w, transpose, leading)) {
        tc_tensor_retain(w);
        *out = w;
        return TC_OK;
    }
    TC_TRY(tc_contiguous_copy(w, out));
    weight_layout(*out, transpose, leading);
    return TC_OK;
}

/* One product c [m, n] = op(a) op(b) in dtype: gemm, or for a 16-bit dtype
 * gemm_16bit (float32 sums, c rounded once). */
static tc_status linear_gemm(tc_context *ctx, const tc_backend *backend, tc_dtype dtype, bool transpose_a,
                             bool transpose_b, int64_t m, int64_t n, int64_t k, const void *a, int64_t lda,
                             const void *b, int64_t ldb, void *c, int64_t ldc) {
    if (tc_dtype_is_16bit(dtype))
        return backend->gemm_16bit(ctx, dtype, dtype, transpose_a, transpose_b, m, n, k, 1.0, a, lda, 0, b, ldb, 0,
                                   0.0, c, ldc, 0, 1);
    return backend->gemm(ctx, dtype, transpose_a, transpose_b, m, n, k, 1.0, a, lda, 0, b, ldb, 0, 0.0, c, ldc, 0, 1);
}

/* dh = gelu'(h) * g in float32 from the saved float32 h and GELU(h), rounded
 * to g's dtype (16-bit: the backward's products read 16-bit operands). */
static tc_status gelu_gradient(const tc_backend *backend, const tc_node *node, tc_tensor *g, tc_tensor **dh) {
    tc_tensor *wide = NULL, *product = NULL;
    tc_status status = tc_cast_if_needed(g, node->saved[0]->dtype, &wide);
    if (status == TC_OK) status = tc_empty_like(wide, &product);
    if (status == TC_OK) status = backend->unary_backward(TC_GELU_TANH, node->saved[0], node->saved[1], wide, product);
    if (status == TC_OK) status = tc_cast_if_needed(product, g->dtype, dh);
    tc_tensor_release(product);
    tc_tensor_release(wide);
    return status;
}

/* ---- backward ---- */

tc_status tc_linear_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    tc_tensor *x = node->inputs[0], *w = node->inputs[1], *b = node->n_inputs > 2 ? node->inputs[2] : NULL;
    bool gelu = node->ints[0] != 0;
    int64_t out_features = w->shape[0], in_features = w->shape[1];
    int64_t rows = tc_shape_numel(x->ndim - 1, x->shape);
    const tc_backend *backend = tc_backend_of(x);
    tc_context *ctx = node->ctx;
    tc_dtype dtype = x->dtype;
    if (tc_dtype_is_16bit(dtype) && !tc_backend_supports(backend, TC_SLOT_gemm_16bit))
        return tc_fail(ctx, TC_ERROR_UNSUPPORTED,
                       "%s: not supported on %s (its backend has no %s kernel; tensor of shape %s)", node->op->name,
                       tc_device_name(x->storage->device), tc_backend_slot_name(TC_SLOT_gemm_16bit), TC_SHAPE(x));
    tc_tensor *cast = NULL, *g = NULL, *dh = NULL, *weight = NULL, *ones = NULL;
    tc_tensor *dx = NULL, *dw = NULL, *db = NULL;
    bool transpose_w = false;
    int64_t ldw = 0;
    tc_status status = tc_cast_if_needed(grad, dtype, &cast);
    if (status == TC_OK) status = tc_contiguous(cast, &g);
    if (status == TC_OK && gelu) {
        status = gelu_gradient(backend, node, g, &dh);
    } else if (status == TC_OK) {
        tc_tensor_retain(g);
        dh = g;
    }
    const void *dh_data = status == TC_OK ? tc_tensor_data_at_offset(dh) : NULL;
    bool empty = rows == 0 || out_features == 0 || in_features == 0; /* a GEMM with nothing to sum */
    if (status == TC_OK && tc_node_input_needs_grad(node, 0)) {
        status = readable_weight(w, &weight, &transpose_w, &ldw);
        if (status == TC_OK) status = tc_empty_like(x, &dx);
        /* dx [rows, in] = dh [rows, out] @ W [out, in] */
        if (status == TC_OK && !empty)
            status = linear_gemm(ctx, backend, dtype, false, !transpose_w, rows, in_features, out_features, dh_data,
                                 out_features, tc_tensor_data_at_offset(weight), ldw, tc_tensor_data_at_offset(dx),
                                 in_features);
        else if (status == TC_OK) status = tc_fill_(dx, 0.0);
    }
    if (status == TC_OK && tc_node_input_needs_grad(node, 1)) {
        int64_t shape[2] = {out_features, in_features};
        status = tc_empty_shaped(x, dtype, 2, shape, &dw);
        /* dW [out, in] = dh^T [out, rows] @ x [rows, in] */
        if (status == TC_OK && !empty)
            status = linear_gemm(ctx, backend, dtype, true, false, out_features, in_features, rows, dh_data,
                                 out_features, tc_tensor_data_at_offset(x), in_features, tc_tensor_data_at_offset(dw),
                                 in_features);
        else if (status == TC_OK) status = tc_fill_(dw, 0.0);
    }
    if (status == TC_OK && b && tc_node_input_needs_grad(node, 2)) {
        status = tc_empty_shaped(x, dtype, 1, &out_features, &db);
        if (status == TC_OK) status = tc_empty_shaped(x, dtype, 1, &rows, &ones);
        if (status == TC_OK && rows > 0) status = tc_fill_(ones, 1.0);
        /* db [1, out] = ones [1, rows] @ dh [rows, out] */
        if (status == TC_OK && rows > 0 && out_features > 0)
            status = linear_gemm(ctx, backend, dtype, false, false, 1, out_features, rows,
                                 tc_tensor_data_at_offset(ones), rows, dh_data, out_features,
                                 tc_tensor_data_at_offset(db), out_features);
        else if (status == TC_OK) status = tc_fill_(db, 0.0);
    }
    if (status == TC_OK) {
        grad_inputs[0] = dx;
        grad_inputs[1] = dw;
        if (b) grad_inputs[2] = db;
    } else {
        tc_tensor_release(dx);
        tc_tensor_release(dw);
        tc_tensor_release(db);
    }
    tc_tensor_release(ones);
    tc_tensor_release(weight);
    tc_tensor_release(dh);
    tc_tensor_release(g);
    tc_tensor_release(cast);
    return status;
}


/* ---- forward ---- */

static tc_status check_linear_shapes(const char *function, const tc_tensor *x, const tc_tensor *w,
                                     const tc_tensor *b);

/* Dtypes and devices, then check_linear_shapes. */
static tc_status check_linear(const char *function, const tc_tensor *x, const tc_tensor *w, const tc_tensor *b) {
    if (!tc_dtype_is_floating(x->dtype))
        return tc_fail(x->ctx, TC_ERROR_DTYPE, "%s: x must be float32 or float64, got %s of shape %s", function,
                       tc_dtype_name(x->dtype), TC_SHAPE(x));
    TC_TRY(tc_check_same_device(function, x, w));
    if (b) TC_TRY(tc_check_same_device(function, x, b));
    if (w->dtype != x->dtype || (b && b->dtype != x->dtype))
        return tc_fail(x->ctx, TC_ERROR_DTYPE, "%s: x is %s, weight %s%s%s (they must have one dtype)", function,
                       tc_dtype_name(x->dtype), tc_dtype_name(w->dtype), b ? ", bias " : "",
                       b ? tc_dtype_name(b->dtype) : "");
    return check_linear_shapes(function, x, w, b);
}

static tc_status check_linear_shapes(const char *function, const tc_tensor *x, const tc_tensor *w,
                                     const tc_tensor *b) {
    if (w->ndim != 2)
        return tc_fail(x->ctx, TC_ERROR_SHAPE, "%s: weight must be [out, in], got shape %s", function, TC_SHAPE(w));
    if (x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1])
        return tc_fail(x->ctx, TC_ERROR_SHAPE,
                       "%s: x of shape %s does not end in in_features %lld (weight of shape %s is [out, in])",
                       function, TC_SHAPE(x), (long long)w->shape[1], TC_SHAPE(w));
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return tc_fail(x->ctx, TC_ERROR_SHAPE,
                       "%s: bias of shape %s does not match weight of shape %s (expected {%lld})", function,
                       TC_SHAPE(b), TC_SHAPE(w), (long long)w->shape[0]);
    if (w->shape[0] > INT32_MAX || w->shape[1] > INT32_MAX || tc_shape_numel(x->ndim - 1, x->shape) > INT32_MAX)
        return tc_fail(x->ctx, TC_ERROR_ARGUMENT,
                       "%s: x of shape %s and weight of shape %s exceed BLAS's 32-bit sizes", function, TC_SHAPE(x),
                       TC_SHAPE(w));
    return TC_OK;
}

/* pre's rows start as the bias b (converted to pre's dtype), or 0 without one. */
static tc_status start_with_bias(const tc_backend *backend, tc_tensor *b, tc_tensor *pre) {
    if (!b) return tc_fill_(pre, 0.0);
    tc_tensor *bias_rows = NULL;
    tc_status status = tc_broadcast_view(b, pre->ndim, pre->shape, &bias_rows);
    if (status == TC_OK) status = backend->copy(pre, bias_rows);
    tc_tensor_release(bias_rows);
    return status;
}

/* pre [rows, out] = xc [rows, in] @ W^T (+ b), and activated = GELU(pre)
 * when activated is given. With the backend's gemm_bias, one GEMM writes
 * pre, adding the bias if any (and, for float32, writing the GELU), as it
 * writes each tile (pre is never zero-filled first); else pre
 * starts as the bias rows (a broadcast copy), the GEMM (or, for one row,
 * GEMV) adds with beta = 1, and the GELU is its own pass. */
static tc_status affine_rows(tc_context *ctx, const tc_backend *backend, tc_tensor *xc, tc_tensor *weight,
                             bool transpose_w, int64_t ldw, tc_tensor *b, int64_t rows, tc_tensor *pre,
                             tc_tensor *activated) {
    int64_t out_features = pre->shape[pre->ndim - 1], in_features = xc->shape[xc->ndim - 1];
    const void *x_data = tc_tensor_data_at_offset(xc), *w_data = tc_tensor_data_at_offset(weight);
    void *pre_data = tc_tensor_data_at_offset(pre);
    bool empty = rows == 0 || out_features == 0 || in_features == 0;
    bool fused_gelu = activated && xc->dtype == TC_FLOAT32;
    if (!empty && rows > 1 && tc_backend_supports(backend, TC_SLOT_gemm_bias)) {
        tc_tensor *bias = NULL;
        tc_status status = b ? tc_contiguous(b, &bias) : TC_OK;
        if (status == TC_OK)
            status = backend->gemm_bias(ctx, xc->dtype, false, transpose_w, rows, out_features, in_features, x_data,
                                        in_features, w_data, ldw, bias ? tc_tensor_data_at_offset(bias) : NULL,
                                        pre_data, out_features,
                                        fused_gelu ? tc_tensor_data_at_offset(activated) : NULL);
        tc_tensor_release(bias);
        if (status == TC_OK && activated && !fused_gelu) status = backend->unary(TC_GELU_TANH, pre, activated);
        return status;
    }
    TC_TRY(start_with_bias(backend, b, pre));
    /* one row (decoding), through the backend's GEMV when it has one: y = W x + y, W^T's layout read as is */
    if (!empty && rows == 1 && tc_backend_supports(backend, TC_SLOT_gemv))
        TC_TRY(backend->gemv(ctx, xc->dtype, !transpose_w, transpose_w ? out_features : in_features,
                             transpose_w ? in_features : out_features, 1.0, w_data, ldw, x_data, 1.0, pre_data));
    else if (!empty)
        TC_TRY(backend->gemm(ctx, xc->dtype, false, transpose_w, rows, out_features, in_features, 1.0, x_data,
                             in_features, 0, w_data, ldw, 0, 1.0, pre_data, out_features, 0, 1));
    if (activated && rows > 0 && out_features > 0) return backend->unary(TC_GELU_TANH, pre, activated);
    return TC_OK;
}

/* affine_rows for 16-bit xc and W (b of their dtype or NULL) into a float32
 * pre and activated: pre starts as the bias and the 16-bit GEMM adds to it. */
static tc_status affine_rows_16bit(tc_context *ctx, const tc_backend *backend, tc_tensor *xc, tc_tensor *weight,
                                   bool transpose_w, int64_t ldw, tc_tensor *b, int64_t rows, tc_tensor *pre,
                                   tc_tensor *activated) {
    int64_t out_features = pre->shape[pre->ndim - 1], in_features = xc->shape[xc->ndim - 1];
    TC_TRY(start_with_bias(backend, b, pre));
    if (rows > 0 && out_features > 0 && in_features > 0)
        TC_TRY(backend->gemm_16bit(ctx, xc->dtype, TC_FLOAT32, false, transpose_w, rows, out_features, in_features,
                                   1.0, tc_tensor_data_at_offset(xc), in_features, 0,
                                   tc_tensor_data_at_offset(weight), ldw, 0, 1.0, tc_tensor_data_at_offset(pre),
                                   out_features, 0, 1));
    if (activated && rows > 0 && out_features > 0) return backend->unary(TC_GELU_TANH, pre, activated);
    return TC_OK;
}

static tc_status linear_impl(const char *function, bool gelu, tc_tensor *x, tc_tensor *w, tc_tensor *b,
                             tc_tensor **out);

/* Output features whose 16-bit weight rows are widened at a time: the
 * float32 scratch is WEIGHT_BLOCK_ROWS x in_features, never the whole weight. */
#define WEIGHT_BLOCK_ROWS 256

/* pre [rows, out] = xc [rows, in] @ W^T + b for float32 x and a 16-bit W
 * (b float32 or NULL). A bf16 W goes to a bf16 GEMM as it is, x rounded to
 * bf16 (float32 sums: autocast's precision): on the CPU while the bf16 GEMM
 * packs it (a few rows, decoding, as GEMVs that read W as it is), on
 * another device into a bf16 copy for gemm_16bit. A float16 W on the CPU
 * with a few rows goes to a GEMV that widens it as it reads; otherwise W is
 * widened a block of output rows at a time and each block is one float32
 * GEMM writing its columns of pre (x keeps float32's range, which float16
 * lacks). */
static tc_status affine_rows_16bit_weight(tc_context *ctx, const tc_backend *backend, tc_tensor *xc, tc_tensor *w,
                                          tc_tensor *b, int64_t rows, tc_tensor *pre) {
    int64_t out_features = w->shape[0], in_features = w->shape[1];
    TC_TRY(start_with_bias(backend, b, pre));
    if (rows == 0 || in_features == 0) return TC_OK;
    float *pre_data = tc_tensor_data_at_offset(pre);
    if (w->dtype == TC_BFLOAT16 && (w->storage->device == TC_CPU || tc_backend_supports(backend, TC_SLOT_gemm_16bit))) {
        tc_tensor *wc = NULL, *rounded = NULL;
        tc_status status = tc_contiguous(w, &wc);
        if (status == TC_OK && w->storage->device == TC_CPU)
            status = cpu_gemm_bf16_weight(ctx, rows, out_features, in_features, tc_tensor_data_at_offset(xc),
                                          in_features, tc_tensor_data_at_offset(wc), in_features, pre_data,
                                          out_features);
        else if (status == TC_OK) {
            status = tc_to_dtype(xc, TC_BFLOAT16, &rounded);
            if (status == TC_OK)
                status = backend->gemm_16bit(ctx, TC_BFLOAT16, TC_FLOAT32, false, true, rows, out_features,
                                             in_features, 1.0, tc_tensor_data_at_offset(rounded), in_features, 0,
                                             tc_tensor_data_at_offset(wc), in_features, 0, 1.0, pre_data,
                                             out_features, 0, 1);
        }
        tc_tensor_release(rounded);
        tc_tensor_release(wc);
        return status;
    }
    /* Under float16 autocast x is read rounded to float16: the blocks' GEMMs do that, the GEMV would not. */
    if (w->dtype == TC_FLOAT16 && w->storage->device == TC_CPU && rows <= CPU_HALF_GEMV_ROWS &&
        ctx->autocast != TC_FLOAT16) {
        tc_tensor *wc = NULL;
        TC_TRY(tc_contiguous(w, &wc));
        tc_status status = cpu_gemv_float16_weight(ctx, rows, out_features, in_features, tc_tensor_data_at_offset(xc),
                                                   in_features, tc_tensor_data_at_offset(wc), in_features, pre_data,
                                                   out_features);
        tc_tensor_release(wc);
        return status;
    }
    for (int64_t first = 0; first < out_features; first += WEIGHT_BLOCK_ROWS) {
        int64_t count = out_features - first < WEIGHT_BLOCK_ROWS ? out_features - first : WEIGHT_BLOCK_ROWS;
        tc_tensor *slice = NULL, *block = NULL;
        tc_status status = tc_narrow(w, 0, first, count, &slice);
        if (status == TC_OK) status = tc_cast_if_needed(slice, TC_FLOAT32, &block); /* contiguous [count, in] */
        if (status == TC_OK)
            status = backend->gemm(ctx, TC_FLOAT32, false, true, rows, count, in_features, 1.0,
                                   tc_tensor_data_at_offset(xc), in_features, 0, tc_tensor_data_at_offset(block),
                                   in_features, 0, 1.0, pre_data + first, out_features, 0, 1);
        tc_tensor_release(slice);
        tc_tensor_release(block);
        TC_TRY(status);
    }
    return TC_OK;
}

/* linear with a 16-bit operand that does not run in 16 bits (runs_in_16bit).
 * Inference with float32 x reads the 16-bit weight as it is
 * (affine_rows_16bit_weight); anything else (dtypes that differ, float32 x
 * with a tape to record) widens the operands, runs the float32 op and
 * rounds the result to x's dtype, differentiably. */
static tc_status linear_16bit(const char *function, bool gelu, tc_tensor *x, tc_tensor *w, tc_tensor *b,
                              tc_tensor **out) {
    tc_tensor *inputs[3] = {x, w, b};
    if (!tc_dtype_is_floating(x->dtype)) return check_linear(function, x, w, b); /* names x's dtype */
    TC_TRY(tc_check_16bit_partners(function, 3, (const char *const[]){"x", "weight", "bias"}, inputs));
    if (x->dtype == TC_FLOAT32 && tc_dtype_is_16bit(w->dtype) && !(b && b->dtype != w->dtype) &&
        !tc_should_record(x->ctx, b ? 3 : 2, inputs)) {
        TC_TRY(tc_check_same_device(function, x, w));
        if (b) TC_TRY(tc_check_same_device(function, x, b));
        TC_TRY(check_linear_shapes(function, x, w, b));
        const tc_backend *backend = tc_backend_of(x);
        int64_t rows = tc_shape_numel(x->ndim - 1, x->shape), shape[TC_MAX_DIMS];
        memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
        shape[x->ndim - 1] = w->shape[0];
        tc_tensor *xc = NULL, *wide_b = NULL, *pre = NULL;
        tc_status status = tc_contiguous(x, &xc);
        if (status == TC_OK) status = tc_widen_16bit(b, &wide_b);
        if (status == TC_OK) status = tc_empty_shaped(x, TC_FLOAT32, x->ndim, shape, &pre);
        if (status == TC_OK) status = affine_rows_16bit_weight(x->ctx, backend, xc, w, wide_b, rows, pre);
        if (status == TC_OK && gelu) status = tc_unary(TC_GELU_TANH, pre, out);
        else if (status == TC_OK) tc_tensor_retain(*out = pre);
        tc_tensor_release(xc);
        tc_tensor_release(wide_b);
        tc_tensor_release(pre);
        return status;
    }
    tc_tensor *wide[3] = {NULL, NULL, NULL}, *result = NULL;
    tc_status status = tc_widen_16bit(x, &wide[0]);
    if (status == TC_OK) status = tc_widen_16bit(w, &wide[1]);
    if (status == TC_OK) status = tc_widen_16bit(b, &wide[2]);
    if (status == TC_OK) status = linear_impl(function, gelu, wide[0], wide[1], wide[2], &result);
    for (int i = 0; i < 3; i++) tc_tensor_release(wide[i]);
    return tc_narrow_16bit(status, result, x->dtype, out);
}

/* Whether x, W and b (or none) share one 16-bit dtype on a backend with
 * gemm_16bit: linear then runs on them as they are. */
static bool runs_in_16bit(const tc_tensor *x, const tc_tensor *w, const tc_tensor *b) {
    return tc_dtype_is_16bit(x->dtype) && w->dtype == x->dtype && (!b || b->dtype == x->dtype) &&
           w->storage->device == x->storage->device && (!b || b->storage->device == x->storage->device) &&
           tc_backend_supports(tc_backend_of(x), TC_SLOT_gemm_16bit);
}

static tc_status linear_impl(const char *function, bool gelu, tc_tensor *x, tc_tensor *w, tc_tensor *b,
                             tc_tensor **out) {
    *out = NULL;
    bool half = runs_in_16bit(x, w, b);
    if (!half && (tc_dtype_is_16bit(x->dtype) || tc_dtype_is_16bit(w->dtype) || (b && tc_dtype_is_16bit(b->dtype))))
        return linear_16bit(function, gelu, x, w, b, out);
    TC_TRY(check_linear(function, x, w, b));
    const tc_backend *backend = tc_backend_of(x);
    int64_t out_features = w->shape[0];
    int64_t rows = tc_shape_numel(x->ndim - 1, x->shape);
    int64_t shape[TC_MAX_DIMS];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    shape[x->ndim - 1] = out_features;
    tc_tensor *xc = NULL, *weight = NULL, *pre = NULL, *activated = NULL, *result = NULL;
    bool transpose_w = false;
    int64_t ldw = 0;
    tc_status status = tc_contiguous(x, &xc);
    if (status == TC_OK) status = readable_weight(w, &weight, &transpose_w, &ldw);
    if (status == TC_OK) status = tc_empty_shaped(x, half ? TC_FLOAT32 : x->dtype, x->ndim, shape, &pre);
    if (status == TC_OK && gelu) status = tc_empty_like(pre, &activated);
    if (status == TC_OK && half)
        status = affine_rows_16bit(x->ctx, backend, xc, weight, transpose_w, ldw, b, rows, pre, activated);
    else if (status == TC_OK)
        status = affine_rows(x->ctx, backend, xc, weight, transpose_w, ldw, b, rows, pre, activated);
    if (status == TC_OK && half) { /* the float32 result rounded once */
        status = tc_empty_shaped(x, x->dtype, x->ndim, shape, &result);
        if (status == TC_OK) status = backend->copy(result, gelu ? activated : pre);
    } else if (status == TC_OK) {
        tc_tensor_retain(result = gelu ? activated : pre);
    }
    tc_tensor *inputs[3] = {xc, w, b};
    int n_inputs = b ? 3 : 2;
    if (status == TC_OK) /* dweight needs x, dx needs weight */
        status = tc_record_op(gelu ? TC_OP_LINEAR_GELU : TC_OP_LINEAR, n_inputs, inputs, result,
                              &(tc_node_state){.n_ints = 1,
                                               .ints = {gelu},
                                               .reads = TC_READS(0) | TC_READS(1),
                                               .saved = {gelu ? pre : NULL, gelu ? activated : NULL}});
    if (status == TC_OK) {
        *out = result;
        result = NULL;
    }
    tc_tensor_release(result);
    tc_tensor_release(activated);
    tc_tensor_release(pre);
    tc_tensor_release(weight);
    tc_tensor_release(xc);
    return status;
}

tc_status tc_linear(tc_tensor *x, tc_tensor *weight, tc_tensor *bias, tc_tensor **out) {
    return linear_impl("linear", false, x, weight, bias, out);
}

tc_status tc_linear_gelu(tc_tensor *x, tc_tensor *weight, tc_tensor *bias, tc_tensor **out) {
    return linear_impl("linear_gelu", true, x, weight, bias, out);
}
