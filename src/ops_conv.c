/*
 * ops_conv.c: im2col (the windows of an image as columns, forward beside
 * its backward, col2im; the kernels: the im2col and col2im slots) and
 * conv2d, made of im2col and one batched matmul, so that its gradients come
 * from theirs and every backend with a GEMM and the two slots has it, and
 * max_pool2d (forward beside backward; the kernels: the max_pool2d slots),
 * which keeps each window's argmax for its backward. Average pooling is
 * composed from im2col in Lua (lua/tricycle/conv.lua).
 *
 * On the CPU, a float32 conv2d at stride 1 whose output has the input's
 * size (3x3 with padding 1 and its kind; one group; images not too small
 * for the weight, cpu_conv_same_applies) is one op instead, with
 * its own backward (tc_conv2d_backward): cpu/cpu_conv_same.c reads the
 * windows straight into the GEMM's panels, so the columns are never
 * written, the bias is added as the output is, and the first layer's
 * unneeded input gradient is not computed.
 *
 * On a backend whose im2col and col2im take 16 bits and which has
 * gemm_16bit (CUDA), conv2d of x, weight and bias of one 16-bit dtype is one
 * op too (conv2d_16bit): 16-bit columns, float32 products, rounded once.
 */
#include "ops_fused.h"

#include "cpu/cpu_conv_same.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* node: inputs {x}; ints: kernel, stride, padding and dilation, each pair
 * packed as height << 32 | width (each fits 31 bits); real: 1 when the
 * columns are batch_last. */

static int64_t pack_pair(const int64_t pair[2]) { return (int64_t)((uint64_t)pair[0] << 32 | (uint64_t)pair[1]); }

static void unpack_pair(int64_t packed, int64_t pair[2]) {
    pair[0] = (int64_t)((uint64_t)packed >> 32);
    pair[1] = (int64_t)((uint64_t)packed & 0xffffffffu);
}

static tc_status check_pair(tc_context *ctx, const char *op, const char *name, const int64_t pair[2],
                            int64_t minimum) {
    for (int i = 0; i < 2; i++)
        if (pair[i] < minimum || pair[i] > INT32_MAX)
            return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: %s must be in [%lld, 2^31 - 1] on both sides, got {%lld, %lld}",
                           op, name, (long long)minimum, (long long)pair[0], (long long)pair[1]);
    return TC_OK;
}

/* The geometry of x [N, C, H, W]'s windows, every size checked. */
static tc_status make_geometry(const char *op, const tc_tensor *x, const int64_t kernel[2], const int64_t stride[2],
                               const int64_t padding[2], const int64_t dilation[2], tc_conv_geometry *g) {
    tc_context *ctx = x->ctx;
    if (x->ndim != 4)
        return tc_fail(ctx, TC_ERROR_SHAPE, "%s: x must be {N, C, H, W} (4 dims), got shape %s", op, TC_SHAPE(x));
    TC_TRY(check_pair(ctx, op, "kernel_size", kernel, 1));
    TC_TRY(check_pair(ctx, op, "stride", stride, 1));
    TC_TRY(check_pair(ctx, op, "padding", padding, 0));
    TC_TRY(check_pair(ctx, op, "dilation", dilation, 1));
    *g = (tc_conv_geometry){.batch = x->shape[0], .channels = x->shape[1], .height = x->shape[2],
                            .width = x->shape[3]};
    int64_t out[2];
    for (int i = 0; i < 2; i++) {
        int64_t padded, span;
        g->kernel[i] = kernel[i];
        g->stride[i] = stride[i];
        g->padding[i] = padding[i];
        g->dilation[i] = dilation[i];
        /* span = dilation * (kernel - 1) + 1 <= 2^62; padded = in + 2 * padding. */
        span = dilation[i] * (kernel[i] - 1) + 1;
        if (!tc_add_sizes(x->shape[2 + i], 2 * padding[i], &padded))
            return tc_fail(ctx, TC_ERROR_SHAPE, "%s: the padded input overflows int64 (shape %s, padding %lld)", op,
                           TC_SHAPE(x), (long long)padding[i]);
        if (span > padded)
            return tc_fail(ctx, TC_ERROR_SHAPE,
                           "%s: the kernel {%lld, %lld} (dilation {%lld, %lld}) is larger than the padded input "
                           "{%lld, %lld} (x of shape %s, padding {%lld, %lld})",
                           op, (long long)kernel[0], (long long)kernel[1], (long long)dilation[0],
                           (long long)dilation[1], (long long)(x->shape[2] + 2 * padding[0]),
                           (long long)(x->shape[3] + 2 * padding[1]), TC_SHAPE(x), (long long)padding[0],
                           (long long)padding[1]);
        out[i] = (padded - span) / stride[i] + 1;
    }
    g->out_height = out[0];
    g->out_width = out[1];
    return TC_OK;
}

/* The columns' shape {N, C*kH*kW, oH*oW} (batch_last: {C*kH*kW, N*oH*oW}),
 * overflow-checked. */
static tc_status columns_shape(const char *op, const tc_tensor *x, const tc_conv_geometry *g, int64_t shape[3]) {
    int64_t window, rows, length;
    if (!tc_mul_sizes(g->kernel[0], g->kernel[1], &window) || !tc_mul_sizes(g->channels, window, &rows) ||
        !tc_mul_sizes(g->out_height, g->out_width, &length))
        return tc_fail(x->ctx, TC_ERROR_SHAPE,
                       "%s: the columns of x of shape %s with kernel {%lld, %lld} overflow int64", op, TC_SHAPE(x),
                       (long long)g->kernel[0], (long long)g->kernel[1]);
    if (g->batch_last) {
        if (!tc_mul_sizes(g->batch, length, &length))
            return tc_fail(x->ctx, TC_ERROR_SHAPE, "%s: the columns of x of shape %s overflow int64", op, TC_SHAPE(x));
        shape[0] = rows;
        shape[1] = length;
    } else {
        shape[0] = g->batch;
        shape[1] = rows;
        shape[2] = length;
    }
    /* the whole, even of an empty batch, must be a valid shape */
    return tc_check_shape(x->ctx, op, g->batch_last ? 2 : 3, shape, x->dtype);
}

/* The geometry an im2col or max_pool2d node recorded (its input's shape, the
 * packed pairs), valid since the forward checked it. */
static tc_conv_geometry node_geometry(const tc_node *node) {
    const tc_tensor *x = node->inputs[0];
    tc_conv_geometry g = {.batch = x->shape[0], .channels = x->shape[1], .height = x->shape[2],
                          .width = x->shape[3]};
    unpack_pair(node->ints[0], g.kernel);
    unpack_pair(node->ints[1], g.stride);
    unpack_pair(node->ints[2], g.padding);
    unpack_pair(node->ints[3], g.dilation);
    g.out_height = (g.height + 2 * g.padding[0] - g.dilation[0] * (g.kernel[0] - 1) - 1) / g.stride[0] + 1;
    g.out_width = (g.width + 2 * g.padding[1] - g.dilation[1] * (g.kernel[1] - 1) - 1) / g.stride[1] + 1;
    g.batch_last = node->reals[0] > 0;
    return g;
}

static tc_node_state pairs_state(const int64_t kernel[2], const int64_t stride[2], const int64_t padding[2],
                                 const int64_t dilation[2]) {
    return (tc_node_state){.n_ints = 4,
                           .ints = {pack_pair(kernel), pack_pair(stride), pack_pair(padding), pack_pair(dilation)}};
}

/* A backend taking 16-bit tensors in both slots (half_slots) gets 16-bit x
 * and columns as they are; else they are widened to float32 and the result
 * rounded once (src/ops_half.c). */
#define IM2COL_SLOTS (TC_SLOT_BIT(im2col) | TC_SLOT_BIT(col2im))

tc_status tc_im2col_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    const tc_tensor *x = node->inputs[0];
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(x, "im2col", TC_SLOT_BIT(col2im), &backend));
    tc_conv_geometry g = node_geometry(node);
    tc_tensor *g_cols = NULL, *dx = NULL;
    tc_status status = tc_prepare_grad(node, grad, &g_cols);
    if (status == TC_OK) status = tc_empty_shaped(g_cols, g_cols->dtype, 4, x->shape, &dx);
    if (status == TC_OK && tc_tensor_numel(dx) > 0)
        status = backend->col2im(x->ctx, dx->dtype, &g, tc_tensor_data_at_offset(g_cols), tc_tensor_data_at_offset(dx));
    tc_tensor_release(g_cols);
    if (status != TC_OK) {
        tc_tensor_release(dx);
        return status;
    }
    grad_inputs[0] = dx;
    return TC_OK;
}

static tc_status im2col(const char *op, tc_tensor *x, const int64_t kernel[2], const int64_t stride[2],
                        const int64_t padding[2], const int64_t dilation[2], double pad_value, bool batch_last,
                        tc_tensor **out) {
    *out = NULL;
    TC_TRY(tc_check_floating(op, "x", x));
    tc_conv_geometry g;
    int64_t shape[3];
    TC_TRY(make_geometry(op, x, kernel, stride, padding, dilation, &g));
    g.batch_last = batch_last;
    TC_TRY(columns_shape(op, x, &g, shape));
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(x, op, IM2COL_SLOTS, &backend));
    tc_tensor *input = NULL, *result = NULL;
    tc_status status = tc_contiguous(x, &input);
    if (status == TC_OK) status = tc_empty_shaped(input, input->dtype, batch_last ? 2 : 3, shape, &result);
    if (status == TC_OK && tc_tensor_numel(result) > 0)
        status = backend->im2col(x->ctx, x->dtype, &g, tc_tensor_data_at_offset(input), pad_value,
                                 tc_tensor_data_at_offset(result));
    if (status == TC_OK) {
        tc_node_state state = pairs_state(kernel, stride, padding, dilation);
        state.real = batch_last ? 1.0 : 0.0;
        status = tc_record_op(TC_OP_IM2COL, 1, &input, result, &state);
    }
    tc_tensor_release(input);
    if (status != TC_OK) {
        tc_tensor_release(result);
        return status;
    }
    *out = result;
    return TC_OK;
}

tc_status tc_im2col(tc_tensor *x, const int64_t kernel[2], const int64_t stride[2], const int64_t padding[2],
                    const int64_t dilation[2], double pad_value, bool batch_last, tc_tensor **out) {
    if (isnan(pad_value)) {
        *out = NULL;
        return tc_fail(x->ctx, TC_ERROR_ARGUMENT, "im2col: pad_value must not be NaN");
    }
    if (tc_dtype_is_16bit(x->dtype) && !tc_backend_takes_16bit(x, IM2COL_SLOTS)) {
        tc_tensor *wide = NULL, *result = NULL;
        TC_TRY(tc_widen_16bit(x, &wide));
        tc_status status = im2col("im2col", wide, kernel, stride, padding, dilation, pad_value, batch_last, &result);
        tc_tensor_release(wide);
        return tc_narrow_16bit(status, result, x->dtype, out);
    }
    return im2col("im2col", x, kernel, stride, padding, dilation, pad_value, batch_last, out);
}

static tc_status check_conv2d(tc_tensor *x, tc_tensor *weight, tc_tensor *bias, int64_t groups) {
    tc_context *ctx = x->ctx;
    TC_TRY(tc_check_floating("conv2d", "x", x));
    TC_TRY(tc_check_companion("conv2d", "weight", x, "x", weight));
    if (x->ndim != 4)
        return tc_fail(ctx, TC_ERROR_SHAPE, "conv2d: x must be {N, C, H, W} (4 dims), got shape %s", TC_SHAPE(x));
    if (weight->ndim != 4)
        return tc_fail(ctx, TC_ERROR_SHAPE, "conv2d: weight must be {O, C / groups, kH, kW} (4 dims), got shape %s",
                       TC_SHAPE(weight));
    if (groups < 1 || groups > INT32_MAX)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "conv2d: groups must be in [1, 2^31 - 1], got %lld", (long long)groups);
    int64_t channels = x->shape[1], outputs = weight->shape[0];
    if (channels % groups != 0 || outputs % groups != 0)
        return tc_fail(ctx, TC_ERROR_SHAPE,
                       "conv2d: groups (%lld) must divide the input channels (%lld, x of shape %s) and the output "
                       "channels (%lld, weight of shape %s)",
                       (long long)groups, (long long)channels, TC_SHAPE(x), (long long)outputs, TC_SHAPE(weight));
    if (weight->shape[1] != channels / groups)
        return tc_fail(ctx, TC_ERROR_SHAPE,
                       "conv2d: weight of shape %s does not fit x of shape %s: its dim 2 must be C / groups = %lld",
                       TC_SHAPE(weight), TC_SHAPE(x), (long long)(channels / groups));
    if (bias) {
        TC_TRY(tc_check_companion("conv2d", "bias", x, "x", bias));
        if (bias->ndim != 1 || bias->shape[0] != outputs)
            return tc_fail(ctx, TC_ERROR_SHAPE, "conv2d: bias must be {%lld} (one per output channel), got shape %s",
                           (long long)outputs, TC_SHAPE(bias));
    }
    return TC_OK;
}

/* ---- conv2d ---- */

/* A failure inside conv2d's parts (an allocation past the budget, a
 * product) reported as conv2d's. */
static tc_status conv2d_failed(tc_context *ctx, tc_status status) {
    const char *message = tc_last_error(ctx);
    if (strncmp(message, "conv2d:", 7) == 0) return status;
    char reason[TC_ERROR_CAPACITY];
    snprintf(reason, sizeof reason, "%s", message);
    return tc_fail(ctx, status, "conv2d: %s", reason);
}

/* node (the CPU's direct path; conv2d_16bit's, below, has its own layout
 * and backward): inputs {x, weight, bias or none}, contiguous; ints as
 * im2col's. */

static tc_status conv2d_16bit_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs);

tc_status tc_conv2d_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    if (tc_dtype_is_16bit(node->inputs[0]->dtype)) return conv2d_16bit_backward(node, grad, grad_inputs);
    tc_tensor *dy = NULL, *grads[3] = {NULL, NULL, NULL};
    tc_conv_geometry g = node_geometry(node);
    tc_status status = tc_prepare_grad(node, grad, &dy);
    for (int i = 0; i < node->n_inputs && status == TC_OK; i++) {
        const tc_tensor *input = node->inputs[i];
        if (tc_node_input_needs_grad(node, i))
            status = tc_empty_shaped(input, TC_FLOAT32, input->ndim, input->shape, &grads[i]);
    }
    if (status == TC_OK)
        status = cpu_conv_same_backward(node->ctx, &g, node->inputs[1]->shape[0],
                                        tc_tensor_data_at_offset(node->inputs[0]),
                                        tc_tensor_data_at_offset(node->inputs[1]), tc_tensor_data_at_offset(dy),
                                        grads[0] ? tc_tensor_data_at_offset(grads[0]) : NULL,
                                        grads[1] ? tc_tensor_data_at_offset(grads[1]) : NULL,
                                        grads[2] ? tc_tensor_data_at_offset(grads[2]) : NULL);
    tc_tensor_release(dy);
    if (status != TC_OK) {
        tc_release_all(3, grads);
        return conv2d_failed(node->ctx, status);
    }
    for (int i = 0; i < node->n_inputs; i++) grad_inputs[i] = grads[i];
    return TC_OK;
}

/* The CPU's direct convolution (cpu/cpu_conv_same.h), for a geometry it
 * applies to. */
static tc_status conv2d_same(tc_tensor *x, tc_tensor *weight, tc_tensor *bias, const tc_conv_geometry *g,
                             tc_tensor **out) {
    tc_tensor *inputs[3] = {NULL, NULL, NULL}, *y = NULL;
    int64_t outputs = weight->shape[0], shape[4] = {g->batch, outputs, g->height, g->width};
    tc_status status = tc_contiguous(x, &inputs[0]);
    if (status == TC_OK) status = tc_contiguous(weight, &inputs[1]);
    if (status == TC_OK && bias) status = tc_contiguous(bias, &inputs[2]);
    if (status == TC_OK) status = tc_empty_shaped(x, TC_FLOAT32, 4, shape, &y);
    if (status == TC_OK)
        status = cpu_conv_same_forward(x->ctx, g, outputs, tc_tensor_data_at_offset(inputs[0]),
                                       tc_tensor_data_at_offset(inputs[1]),
                                       bias ? tc_tensor_data_at_offset(inputs[2]) : NULL, tc_tensor_data_at_offset(y));
    if (status == TC_OK) { /* dx needs the weight, dW x */
        tc_node_state state = pairs_state(g->kernel, g->stride, g->padding, g->dilation);
        state.reads = TC_READS(0) | TC_READS(1);
        status = tc_record_op(TC_OP_CONV2D, bias ? 3 : 2, inputs, y, &state);
    }
    tc_release_all(3, inputs);
    if (status != TC_OK) {
        tc_tensor_release(y);
        return conv2d_failed(x->ctx, status);
    }
    *out = y;
    return TC_OK;
}

/* 16-bit conv2d (x, weight and bias of one 16-bit dtype) on a backend whose
 * im2col and col2im take 16 bits and which has gemm_16bit: 16-bit columns,
 * their products summed in float32, the bias added in float32 and the
 * result rounded once, so no float32 copy of x, the weight or the columns
 * is made. The widening path's values up to the GEMM's order of summation.
 * node: inputs {x, weight, bias or none}, contiguous; ints as im2col's; real
 * the groups. The backward's products are float32 too: dx's columns stay
 * float32 for col2im, dW and the bias's gradient are rounded once. */
static bool conv2d_takes_16bit(const tc_tensor *x, const tc_tensor *weight, const tc_tensor *bias) {
    return tc_backend_takes_16bit(x, IM2COL_SLOTS) && tc_backend_supports(tc_backend_of(x), TC_SLOT_gemm_16bit) &&
           weight->dtype == x->dtype && (!bias || bias->dtype == x->dtype);
}

/* c[i] = op(a[i]) op(b[i]) for each of `groups` contiguous matrices of 16-bit
 * a and b, into float32 c; an empty sum gives zeros. */
static tc_status grouped_gemm_16bit(const tc_backend *backend, tc_dtype dtype, bool transpose_a, bool transpose_b,
                                    int64_t groups, int64_t m, int64_t n, int64_t k, const void *a, const void *b,
                                    tc_tensor *c) {
    if (tc_tensor_numel(c) == 0) return TC_OK;
    if (k == 0) return tc_fill_(c, 0.0);
    return backend->gemm_16bit(c->ctx, dtype, TC_FLOAT32, transpose_a, transpose_b, m, n, k, 1.0, a,
                               transpose_a ? m : k, m * k, b, transpose_b ? k : n, k * n, 0.0,
                               tc_tensor_data_at_offset(c), n, m * n, groups);
}

/* x's 16-bit columns {C*kH*kW, N*oH*oW} (batch_last geometry g). */
static tc_status columns_16bit(const tc_backend *backend, tc_tensor *x, const tc_conv_geometry *g,
                               const int64_t shape[2], tc_tensor **out) {
    TC_TRY(tc_empty_shaped(x, x->dtype, 2, shape, out));
    if (tc_tensor_numel(*out) == 0) return TC_OK;
    return backend->im2col(x->ctx, x->dtype, g, tc_tensor_data_at_offset(x), 0.0, tc_tensor_data_at_offset(*out));
}

static tc_status conv2d_16bit(tc_tensor *x, tc_tensor *weight, tc_tensor *bias, tc_conv_geometry *g, int64_t groups,
                              tc_tensor **out) {
    tc_context *ctx = x->ctx;
    const tc_backend *backend = tc_backend_of(x);
    int64_t shape[3];
    g->batch_last = true;
    TC_TRY(columns_shape("conv2d", x, g, shape));
    int64_t outputs = weight->shape[0], rows = shape[0] / groups, length = shape[1];
    tc_tensor *inputs[3] = {NULL, NULL, NULL}, *cols = NULL, *product = NULL, *planes = NULL, *ordered = NULL,
              *wide = NULL, *wide_bias = NULL, *b = NULL, *sum = NULL, *y = NULL;
    tc_status status = tc_contiguous(x, &inputs[0]);
    if (status == TC_OK) status = tc_contiguous(weight, &inputs[1]);
    if (status == TC_OK && bias) status = tc_contiguous(bias, &inputs[2]);
    tc_set_grad_enabled(ctx, false); /* the parts are not on the tape; the node below is */
    if (status == TC_OK) status = columns_16bit(backend, inputs[0], g, shape, &cols);
    if (status == TC_OK)
        status = tc_empty_shaped(x, TC_FLOAT32, 3, (const int64_t[]){groups, outputs / groups, length}, &product);
    if (status == TC_OK)
        status = grouped_gemm_16bit(backend, x->dtype, false, false, groups, outputs / groups, length, rows,
                                    tc_tensor_data_at_offset(inputs[1]), tc_tensor_data_at_offset(cols), product);
    if (status == TC_OK)
        status =
            tc_reshape(product, 3, (const int64_t[]){outputs, g->batch, g->out_height * g->out_width}, &planes);
    if (status == TC_OK) status = tc_transpose(planes, 0, 1, &ordered);
    if (status == TC_OK)
        status = tc_reshape(ordered, 4, (const int64_t[]){g->batch, outputs, g->out_height, g->out_width}, &wide);
    if (status == TC_OK && bias) {
        status = tc_to_dtype(inputs[2], TC_FLOAT32, &wide_bias);
        if (status == TC_OK) status = tc_reshape(wide_bias, 4, (const int64_t[]){1, outputs, 1, 1}, &b);
        if (status == TC_OK) status = tc_binary(TC_ADD, wide, b, &sum);
    }
    if (status == TC_OK) status = tc_to_dtype(sum ? sum : wide, x->dtype, &y);
    tc_set_grad_enabled(ctx, true);
    if (status == TC_OK) { /* dx needs the weight, dW x */
        tc_node_state state = pairs_state(g->kernel, g->stride, g->padding, g->dilation);
        state.real = (double)groups;
        state.reads = TC_READS(0) | TC_READS(1);
        status = tc_record_op(TC_OP_CONV2D, bias ? 3 : 2, inputs, y, &state);
    }
    tc_tensor *temporaries[] = {inputs[0], inputs[1], inputs[2], cols, product, planes, ordered, wide, wide_bias, b,
                                sum};
    tc_release_all(11, temporaries);
    if (status != TC_OK) {
        tc_tensor_release(y);
        return conv2d_failed(ctx, status);
    }
    *out = y;
    return TC_OK;
}

static tc_status conv2d_16bit_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    tc_context *ctx = node->ctx;
    tc_tensor *x = node->inputs[0], *weight = node->inputs[1];
    tc_dtype dtype = x->dtype;
    const tc_backend *backend = tc_backend_of(x);
    tc_conv_geometry g = node_geometry(node);
    g.batch_last = true;
    int64_t groups = (int64_t)node->reals[0], outputs = weight->shape[0], per_group = outputs / groups;
    int64_t rows = weight->shape[1] * g.kernel[0] * g.kernel[1], plane = g.out_height * g.out_width;
    int64_t length = g.batch * plane, cols_shape[2] = {rows * groups, length};
    tc_tensor *dy = NULL, *flat = NULL, *flipped = NULL, *dyt = NULL, *dcols = NULL, *dx = NULL, *cols = NULL,
              *dw = NULL, *dw_narrow = NULL, *wide_dyt = NULL, *db = NULL, *grads[3] = {NULL, NULL, NULL};
    /* dy as {O, N*oH*oW}, each group's rows one matrix */
    tc_status status = tc_prepare_grad(node, grad, &dy);
    if (status == TC_OK) status = tc_reshape(dy, 3, (const int64_t[]){g.batch, outputs, plane}, &flat);
    if (status == TC_OK) status = tc_transpose(flat, 0, 1, &flipped);
    if (status == TC_OK) status = tc_contiguous(flipped, &dyt);
    if (status == TC_OK && tc_node_input_needs_grad(node, 0)) {
        status = tc_empty_shaped(x, TC_FLOAT32, 2, cols_shape, &dcols);
        if (status == TC_OK)
            status = grouped_gemm_16bit(backend, dtype, true, false, groups, rows, length, per_group,
                                        tc_tensor_data_at_offset(weight), tc_tensor_data_at_offset(dyt), dcols);
        if (status == TC_OK) status = tc_empty_shaped(x, TC_FLOAT32, 4, x->shape, &dx);
        if (status == TC_OK && tc_tensor_numel(dx) > 0)
            status =
                backend->col2im(ctx, TC_FLOAT32, &g, tc_tensor_data_at_offset(dcols), tc_tensor_data_at_offset(dx));
        if (status == TC_OK) status = tc_to_dtype(dx, dtype, &grads[0]);
    }
    if (status == TC_OK && tc_node_input_needs_grad(node, 1)) {
        status = columns_16bit(backend, x, &g, cols_shape, &cols);
        if (status == TC_OK)
            status = tc_empty_shaped(x, TC_FLOAT32, 3, (const int64_t[]){groups, per_group, rows}, &dw);
        if (status == TC_OK)
            status = grouped_gemm_16bit(backend, dtype, false, true, groups, per_group, rows, length,
                                        tc_tensor_data_at_offset(dyt), tc_tensor_data_at_offset(cols), dw);
        if (status == TC_OK) status = tc_to_dtype(dw, dtype, &dw_narrow);
        if (status == TC_OK) status = tc_reshape(dw_narrow, 4, weight->shape, &grads[1]);
    }
    if (status == TC_OK && node->n_inputs == 3 && tc_node_input_needs_grad(node, 2)) {
        status = tc_to_dtype(dyt, TC_FLOAT32, &wide_dyt);
        if (status == TC_OK) status = tc_reduce(TC_REDUCE_SUM, wide_dyt, 2, (const int[]){1, 2}, false, &db);
        if (status == TC_OK) status = tc_to_dtype(db, dtype, &grads[2]);
    }
    tc_tensor *temporaries[] = {dy, flat, flipped, dyt, dcols, dx, cols, dw, dw_narrow, wide_dyt, db};
    tc_release_all(11, temporaries);
    if (status != TC_OK) {
        tc_release_all(3, grads);
        return conv2d_failed(ctx, status);
    }
    for (int i = 0; i < node->n_inputs; i++) grad_inputs[i] = grads[i];
    return TC_OK;
}

/* A 1x1 kernel with stride 1 and no padding needs no im2col: its columns
 * are x's planes, channel by channel (a transposed copy of x). */
static bool is_pointwise(const tc_tensor *weight, const int64_t stride[2], const int64_t padding[2]) {
    return weight->shape[2] == 1 && weight->shape[3] == 1 && stride[0] == 1 && stride[1] == 1 && padding[0] == 0 &&
           padding[1] == 0;
}

tc_status tc_conv2d(tc_tensor *x, tc_tensor *weight, tc_tensor *bias, const int64_t stride[2],
                    const int64_t padding[2], const int64_t dilation[2], int64_t groups, tc_tensor **out) {
    *out = NULL;
    if (tc_dtype_is_16bit(x->dtype) && conv2d_takes_16bit(x, weight, bias)) {
        TC_TRY(check_conv2d(x, weight, bias, groups));
        const int64_t kernel[2] = {weight->shape[2], weight->shape[3]};
        tc_conv_geometry g;
        TC_TRY(make_geometry("conv2d", x, kernel, stride, padding, dilation, &g));
        return conv2d_16bit(x, weight, bias, &g, groups, out);
    }
    if (tc_dtype_is_16bit(x->dtype) || tc_dtype_is_16bit(weight->dtype) || (bias && tc_dtype_is_16bit(bias->dtype))) {
        /* 16-bit x, or float32 x with 16-bit parameters: computed in float32, rounded once */
        tc_tensor *given[3] = {x, weight, bias}, *wide[3] = {NULL, NULL, NULL}, *result = NULL;
        TC_TRY(tc_check_16bit_partners("conv2d", 3, (const char *const[]){"x", "weight", "bias"}, given));
        tc_status status = tc_widen_16bit(x, &wide[0]);
        if (status == TC_OK) status = tc_widen_16bit(weight, &wide[1]);
        if (status == TC_OK) status = tc_widen_16bit(bias, &wide[2]);
        if (status == TC_OK) status = tc_conv2d(wide[0], wide[1], wide[2], stride, padding, dilation, groups, &result);
        tc_release_all(3, wide);
        return tc_narrow_16bit(status, result, x->dtype, out);
    }
    TC_TRY(check_conv2d(x, weight, bias, groups));
    const int64_t kernel[2] = {weight->shape[2], weight->shape[3]};
    tc_conv_geometry g;
    int64_t shape[3];
    TC_TRY(make_geometry("conv2d", x, kernel, stride, padding, dilation, &g));
    if (x->storage->device == TC_CPU && x->dtype == TC_FLOAT32 && groups == 1 &&
        cpu_conv_same_applies(x->ctx, &g, weight->shape[0]))
        return conv2d_same(x, weight, bias, &g, out);
    g.batch_last = true;
    TC_TRY(columns_shape("conv2d", x, &g, shape));
    /* cols {C*kH*kW, N*L} (batch_last): one GEMM per group over the whole batch,
     * {G, O/G, C/G*kH*kW} @ {G, C/G*kH*kW, N*L}, whose backward is one GEMM per
     * group for each gradient too; the result {O, N, L} is then put in order. */
    int64_t n = g.batch, rows = shape[0] / groups, length = g.out_height * g.out_width, outputs = weight->shape[0];
    tc_tensor *planes = NULL, *cols = NULL, *grouped = NULL, *w = NULL, *product = NULL, *y = NULL, *b = NULL,
              *result = NULL;
    tc_status status;
    if (is_pointwise(weight, stride, padding)) {
        /* {N, C, H*W} -> {C, N, H*W}: the columns of a 1x1 kernel */
        status = tc_reshape(x, 3, (const int64_t[]){n, g.channels, length}, &planes);
        if (status == TC_OK) status = tc_transpose(planes, 0, 1, &y);
        if (status == TC_OK) status = tc_reshape(y, 2, shape, &cols);
        tc_tensor_release(y);
        y = NULL;
    } else {
        status = im2col("conv2d", x, kernel, stride, padding, dilation, 0.0, true, &cols);
    }
    if (status == TC_OK) status = tc_reshape(cols, 3, (const int64_t[]){groups, rows, n * length}, &grouped);
    if (status == TC_OK)
        status = tc_reshape(weight, 3, (const int64_t[]){groups, outputs / groups, rows}, &w);
    if (status == TC_OK) status = tc_matmul(w, grouped, &product);
    if (status == TC_OK) {
        tc_release_all(1, &planes);
        planes = NULL;
        status = tc_reshape(product, 3, (const int64_t[]){outputs, n, length}, &planes);
    }
    if (status == TC_OK) {
        tc_tensor *ordered = NULL;
        status = tc_transpose(planes, 0, 1, &ordered);
        if (status == TC_OK)
            status = tc_reshape(ordered, 4, (const int64_t[]){n, outputs, g.out_height, g.out_width}, &y);
        tc_tensor_release(ordered);
    }
    if (status == TC_OK && bias) {
        status = tc_reshape(bias, 4, (const int64_t[]){1, outputs, 1, 1}, &b);
        if (status == TC_OK) status = tc_binary(TC_ADD, y, b, &result);
    } else if (status == TC_OK) {
        result = y;
        y = NULL;
    }
    tc_tensor *temporaries[] = {planes, cols, grouped, w, product, y, b};
    tc_release_all(7, temporaries);
    if (status != TC_OK) {
        tc_tensor_release(result);
        return conv2d_failed(x->ctx, status);
    }
    *out = result;
    return TC_OK;
}

/* ---- max pooling ---- */

/* node: inputs {x}; ints as im2col's; saved[0] the int64 indices of the maxima.
 * 16-bit x: as im2col's, with these slots. */

#define MAX_POOL2D_SLOTS (TC_SLOT_BIT(max_pool2d) | TC_SLOT_BIT(max_pool2d_backward))

tc_status tc_max_pool2d_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    const tc_tensor *x = node->inputs[0], *indices = node->saved[0];
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(x, "max_pool2d", TC_SLOT_BIT(max_pool2d_backward), &backend));
    tc_conv_geometry g = node_geometry(node);
    tc_tensor *g_out = NULL, *dx = NULL;
    tc_status status = tc_prepare_grad(node, grad, &g_out);
    if (status == TC_OK) status = tc_empty_shaped(g_out, g_out->dtype, 4, x->shape, &dx);
    if (status == TC_OK && tc_tensor_numel(dx) > 0)
        status = backend->max_pool2d_backward(x->ctx, dx->dtype, &g, tc_tensor_data_at_offset(g_out),
                                              tc_tensor_data_at_offset(indices), tc_tensor_data_at_offset(dx));
    tc_tensor_release(g_out);
    if (status != TC_OK) {
        tc_tensor_release(dx);
        return status;
    }
    grad_inputs[0] = dx;
    return TC_OK;
}

tc_status tc_max_pool2d(tc_tensor *x, const int64_t kernel[2], const int64_t stride[2], const int64_t padding[2],
                        const int64_t dilation[2], tc_tensor **out) {
    *out = NULL;
    TC_TRY(tc_check_floating("max_pool2d", "x", x));
    if (tc_dtype_is_16bit(x->dtype) && !tc_backend_takes_16bit(x, MAX_POOL2D_SLOTS)) {
        tc_tensor *wide = NULL, *result = NULL;
        TC_TRY(tc_widen_16bit(x, &wide));
        tc_status status = tc_max_pool2d(wide, kernel, stride, padding, dilation, &result);
        tc_tensor_release(wide);
        return tc_narrow_16bit(status, result, x->dtype, out);
    }
    tc_conv_geometry g;
    TC_TRY(make_geometry("max_pool2d", x, kernel, stride, padding, dilation, &g));
    if (2 * padding[0] > kernel[0] || 2 * padding[1] > kernel[1])
        return tc_fail(x->ctx, TC_ERROR_ARGUMENT,
                       "max_pool2d: padding {%lld, %lld} must be at most half the kernel_size {%lld, %lld}",
                       (long long)padding[0], (long long)padding[1], (long long)kernel[0], (long long)kernel[1]);
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(x, "max_pool2d", MAX_POOL2D_SLOTS, &backend));
    int64_t shape[4] = {g.batch, g.channels, g.out_height, g.out_width};
    tc_tensor *input = NULL, *result = NULL, *indices = NULL;
    tc_status status = tc_contiguous(x, &input);
    if (status == TC_OK) status = tc_empty_shaped(input, input->dtype, 4, shape, &result);
    if (status == TC_OK) status = tc_empty_shaped(input, TC_INT64, 4, shape, &indices);
    if (status == TC_OK && tc_tensor_numel(result) > 0)
        status = backend->max_pool2d(x->ctx, x->dtype, &g, tc_tensor_data_at_offset(input),
                                     tc_tensor_data_at_offset(result), tc_tensor_data_at_offset(indices));
    if (status == TC_OK) {
        tc_node_state state = pairs_state(kernel, stride, padding, dilation);
        state.saved[0] = indices;
        status = tc_record_op(TC_OP_MAX_POOL2D, 1, &input, result, &state);
    }
    tc_tensor_release(input);
    tc_tensor_release(indices);
    if (status != TC_OK) {
        tc_tensor_release(result);
        return status;
    }
    *out = result;
    return TC_OK;
}
