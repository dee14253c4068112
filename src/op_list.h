/*
 * op_list.h: every op of the engine, one row each. The rows make the op
 * enums (tricycle.h), the name tables, the tape descriptors with each op's
 * backward (ops_table.c), tc_op_at() and tc.ops(), the tensor methods the
 * Lua binding registers for element-wise ops and reductions, and the list
 * the op specs check their one row per op against. Adding an op starts
 * with a row here (docs/DEVELOPING.md has the rest of the list).
 *
 *   X(ID, "name", arity, backward, properties, "summary")
 *
 * ID makes TC_OP_<ID> (and TC_<ID> in the unary and binary lists, the
 * enums of the public element-wise API); "name" is the op as Lua users see
 * it; arity counts tensor inputs (-1: a list); backward is the function
 * that computes the inputs' gradients from a tape node (declared in
 * internal.h, defined beside the op's forward; a row naming one that is not
 * defined fails to link), or tc_no_backward for an op that puts no node of
 * its own on the tape; properties are TC_OP_* flags (tricycle.h).
 *
 * The unary, binary and reduction lists come first, in the order of their
 * public enums, so an element-wise op's TC_OP_ id is its enum value plus
 * the list's first id.
 */
#ifndef TRICYCLE_OP_LIST_H
#define TRICYCLE_OP_LIST_H

/* Shorthands for the rows. */
#define TC_OPS_MATH (TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY | TC_OP_METHOD)
#define TC_OPS_EXACT (TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS | TC_OP_METHOD)
#define TC_OPS_TEST (TC_OP_INTEGERS | TC_OP_BOOL_RESULT | TC_OP_METHOD)

#define TC_UNARY_OP_LIST(X)                                                                                          \
    X(NEG, "neg", 1, tc_unary_backward, TC_OPS_EXACT, "-x")                                                          \
    X(EXP, "exp", 1, tc_unary_backward, TC_OPS_MATH, "e^x")                                                          \
    X(LOG, "log", 1, tc_unary_backward, TC_OPS_MATH, "natural logarithm")                                            \
    X(SQRT, "sqrt", 1, tc_unary_backward, TC_OPS_MATH, "square root")                                                \
    X(ABS, "abs", 1, tc_unary_backward, TC_OPS_EXACT, "absolute value")                                              \
    X(TANH, "tanh", 1, tc_unary_backward, TC_OPS_MATH, "hyperbolic tangent")                                         \
    X(SIGMOID, "sigmoid", 1, tc_unary_backward, TC_OPS_MATH, "1 / (1 + e^-x)")                                       \
    X(RELU, "relu", 1, tc_unary_backward, TC_OPS_EXACT, "max(x, 0)")                                                 \
    X(GELU, "gelu", 1, tc_unary_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY, "x * Phi(x), exact")              \
    X(GELU_TANH, "gelu_tanh", 1, tc_unary_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY,                         \
      "GPT-2's tanh approximation of gelu (t:gelu(\"tanh\"))")                                                       \
    X(SILU, "silu", 1, tc_unary_backward, TC_OPS_MATH, "x * sigmoid(x)")                                             \
    X(SIN, "sin", 1, tc_unary_backward, TC_OPS_MATH, "sine")                                                         \
    X(COS, "cos", 1, tc_unary_backward, TC_OPS_MATH, "cosine")                                                       \
    X(RSQRT, "rsqrt", 1, tc_unary_backward, TC_OPS_MATH, "1 / sqrt(x)")                                              \
    X(SQUARE, "square", 1, tc_unary_backward, TC_OPS_EXACT, "x * x")                                                 \
    X(LOG1P, "log1p", 1, tc_unary_backward, TC_OPS_MATH, "log(1 + x), exact near 0")                                 \
    X(SOFTPLUS, "softplus", 1, tc_unary_backward, TC_OPS_MATH, "log(1 + e^x), a smooth relu")                        \
    X(SIGN, "sign", 1, tc_no_backward, TC_OP_INTEGERS | TC_OP_METHOD, "-1, 0 or 1")                                  \
    X(LOGICAL_NOT, "logical_not", 1, tc_no_backward, TC_OPS_TEST, "x == 0, as bool")                                 \
    X(FLOOR, "floor", 1, tc_unary_backward, TC_OPS_EXACT, "the largest integer <= x (zero gradient)")                \
    X(CEIL, "ceil", 1, tc_unary_backward, TC_OPS_EXACT, "the smallest integer >= x (zero gradient)")                 \
    X(ROUND, "round", 1, tc_unary_backward, TC_OPS_EXACT, "the nearest integer, halves to even (zero gradient)")     \
    X(TRUNC, "trunc", 1, tc_unary_backward, TC_OPS_EXACT, "x rounded toward zero (zero gradient)")

#define TC_BINARY_OP_LIST(X)                                                                                         \
    X(ADD, "add", 2, tc_binary_backward, TC_OPS_EXACT, "a + b, broadcasting")                                        \
    X(SUB, "sub", 2, tc_binary_backward, TC_OPS_EXACT, "a - b, broadcasting")                                        \
    X(MUL, "mul", 2, tc_binary_backward, TC_OPS_EXACT, "a * b, broadcasting")                                        \
    X(DIV, "div", 2, tc_binary_backward, TC_OPS_MATH, "a / b, broadcasting")                                         \
    X(POW, "pow", 2, tc_binary_backward, TC_OPS_MATH, "a ^ b, broadcasting")                                         \
    X(MAXIMUM, "maximum", 2, tc_binary_backward, TC_OPS_EXACT, "element-wise max of a and b")                        \
    X(MINIMUM, "minimum", 2, tc_binary_backward, TC_OPS_EXACT, "element-wise min of a and b")                        \
    X(EQ, "eq", 2, tc_no_backward, TC_OPS_TEST, "a == b, as bool")                                                   \
    X(NE, "ne", 2, tc_no_backward, TC_OPS_TEST, "a ~= b, as bool")                                                   \
    X(LT, "lt", 2, tc_no_backward, TC_OPS_TEST, "a < b, as bool")                                                    \
    X(LE, "le", 2, tc_no_backward, TC_OPS_TEST, "a <= b, as bool")                                                   \
    X(GT, "gt", 2, tc_no_backward, TC_OPS_TEST, "a > b, as bool")                                                    \
    X(GE, "ge", 2, tc_no_backward, TC_OPS_TEST, "a >= b, as bool")                                                   \
    X(LOGICAL_AND, "logical_and", 2, tc_no_backward, TC_OPS_TEST, "a and b, as bool")                                \
    X(LOGICAL_OR, "logical_or", 2, tc_no_backward, TC_OPS_TEST, "a or b, as bool")

/* The reductions' ids are TC_REDUCE_<ID>. */
#define TC_REDUCE_OP_LIST(X)                                                                                         \
    X(SUM, "sum", 1, tc_reduce_backward, TC_OPS_EXACT, "sum over dims")                                              \
    X(MEAN, "mean", 1, tc_reduce_backward, TC_OPS_MATH, "mean over dims")                                            \
    X(MAX, "max", 1, tc_reduce_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS, "max over dims (with indices)")      \
    X(MIN, "min", 1, tc_reduce_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS, "min over dims (with indices)")      \
    X(ARGMAX, "argmax", 1, tc_no_backward, TC_OP_INTEGERS | TC_OP_METHOD, "0-based index of the max along a dim")    \
    X(ARGMIN, "argmin", 1, tc_no_backward, TC_OP_INTEGERS | TC_OP_METHOD, "0-based index of the min along a dim")    \
    X(VAR, "var", 1, tc_reduce_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY, "variance over dims")

#define TC_OTHER_OP_LIST(X)                                                                                          \
    X(CLAMP, "clamp", 1, tc_clamp_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS, "x limited to [min, max]")        \
    X(WHERE, "where", 3, tc_where_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS, "cond ? a : b")                   \
    X(MASKED_FILL, "masked_fill", 2, tc_no_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS,                          \
      "x with value where mask is true (a where)")                                                                   \
    X(MATMUL, "matmul", 2, tc_matmul_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY,                              \
      "matrix product, batched and broadcast")                                                                       \
    X(EINSUM, "einsum", -1, tc_no_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY,                                 \
      "Einstein summation (diagonals, sums, matmuls and permutes)")                                                  \
    X(EINSUM_DIAGONAL, "einsum_diagonal", 1, tc_diagonal_backward,                                                   \
      TC_OP_DIFFERENTIABLE | TC_OP_VIEW | TC_OP_INTERNAL, "einsum's view of a repeated index's diagonal")            \
    X(LINEAR, "linear", 3, tc_linear_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY | TC_OP_FUSED,                \
      "x @ weight^T + bias in one GEMM")                                                                             \
    X(LINEAR_GELU, "linear_gelu", 3, tc_linear_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY | TC_OP_FUSED,      \
      "gelu_tanh(x @ weight^T + bias) in one GEMM")                                                                  \
    X(SOFTMAX, "softmax", 1, tc_softmax_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY, "softmax along a dim")    \
    X(LOG_SOFTMAX, "log_softmax", 1, tc_softmax_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY,                   \
      "log of softmax along a dim")                                                                                  \
    X(CAT, "cat", -1, tc_cat_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS, "concatenation along a dim")           \
    X(STACK, "stack", -1, tc_no_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS, "stacking along a new dim (a cat)") \
    X(GATHER, "gather", 2, tc_gather_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS,                                \
      "values picked along a dim by an index tensor")                                                                \
    X(INDEX_SELECT, "index_select", 2, tc_index_select_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS,              \
      "slices picked along a dim by a 1-D index")                                                                    \
    X(SCATTER_ADD, "scatter_add", 2, tc_scatter_add_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY,               \
      "a copy of x with src summed in along a dim at an index tensor's positions")                                   \
    X(INDEX_ADD, "index_add", 2, tc_index_add_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY,                     \
      "a copy of x with src's slices summed in along a dim at a 1-D index")                                          \
    X(SORT, "sort", 1, tc_no_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS,                                        \
      "values and 0-based int64 indices in order along a dim; stable, NaN as the largest (values: a gather)")        \
    X(TOPK, "topk", 1, tc_no_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS,                                        \
      "the k largest (or smallest) values along a dim with their indices, in order (values: a gather)")              \
    X(EMBEDDING, "embedding", 2, tc_no_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS,                              \
      "rows of a weight matrix picked by ids (an index_select)")                                                     \
    X(DROPOUT, "dropout", 1, tc_dropout_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY,                           \
      "random zeroing with rescaling")                                                                               \
    X(RESHAPE, "reshape", 1, tc_reshape_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS | TC_OP_VIEW,                \
      "same elements, new shape (view, squeeze, unsqueeze and flatten too)")                                         \
    X(TRANSPOSE, "transpose", 1, tc_no_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS | TC_OP_VIEW,                 \
      "two dims swapped (a permute)")                                                                                \
    X(PERMUTE, "permute", 1, tc_permute_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS | TC_OP_VIEW,                \
      "dims reordered")                                                                                              \
    X(NARROW, "narrow", 1, tc_slice_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS | TC_OP_VIEW,                    \
      "a range along a dim")                                                                                         \
    X(SELECT, "select", 1, tc_slice_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS | TC_OP_VIEW,                    \
      "one index along a dim, dim removed")                                                                          \
    X(EXPAND, "expand", 1, tc_expand_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS | TC_OP_VIEW,                   \
      "size-1 dims repeated")                                                                                        \
    X(CONTIGUOUS, "contiguous", 1, tc_identity_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS,                      \
      "a row-major copy when needed")                                                                                \
    X(CLONE, "clone", 1, tc_identity_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS, "a copy")                      \
    X(TO_DTYPE, "to_dtype", 1, tc_cast_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS,                              \
      "a copy in another dtype (t:to(dtype))")                                                                       \
    X(TO_DEVICE, "to_device", 1, tc_device_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTEGERS,                          \
      "a copy on another device (t:to(device))")                                                                     \
    X(CUSTOM, "custom", -1, tc_custom_backward, TC_OP_DIFFERENTIABLE | TC_OP_INTERNAL,                               \
      "a function whose backward is the caller's (tc.Function)")                                                     \
    X(LAYER_NORM, "layer_norm", 3, tc_norm_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY | TC_OP_FUSED,          \
      "layer norm over the last dim, optional weight and bias")                                                      \
    X(RMS_NORM, "rms_norm", 2, tc_norm_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY | TC_OP_FUSED,              \
      "RMS norm over the last dim, optional weight")                                                                 \
    X(ATTENTION, "attention", 1, tc_attention_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY | TC_OP_FUSED,       \
      "multi-head or grouped-query self-attention over packed qkv, causal or not")                                   \
    X(ATTENTION_CACHED, "attention_cached", 3, tc_no_backward, TC_OP_FLOAT_ONLY | TC_OP_FUSED | TC_OP_IN_PLACE,      \
      "attention of new positions over a key/value cache it extends in place (decoding)")                            \
    X(ROPE, "rope", 2, tc_rope_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY | TC_OP_FUSED,                      \
      "rotary position embedding of {B, T, H, D} or {B, H, T, D} at given positions")                                \
    X(IM2COL, "im2col", 1, tc_im2col_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY | TC_OP_FUSED,                \
      "the sliding windows of {N, C, H, W} as columns {N, C*kH*kW, L} (F.unfold)")                                   \
    X(CONV2D, "conv2d", 3, tc_conv2d_backward, TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY,                              \
      "2-D convolution, strided, padded, dilated and grouped (an im2col and a matmul; one op on the CPU at stride 1 " \
      "with the output the input's size)")                                                                           \
    X(MAX_POOL2D, "max_pool2d", 1, tc_max_pool2d_backward,                                                           \
      TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY | TC_OP_FUSED,                                                         \
      "max over windows of {N, C, H, W}; the gradient goes to each window's max")                                    \
    X(CROSS_ENTROPY, "cross_entropy", 2, tc_cross_entropy_backward,                                                  \
      TC_OP_DIFFERENTIABLE | TC_OP_FLOAT_ONLY | TC_OP_FUSED,                                                         \
      "mean softmax cross-entropy over targets not equal to ignore_index")                                           \
    X(ADAMW_STEP, "adamw_step", 4, tc_no_backward, TC_OP_FLOAT_ONLY | TC_OP_FUSED | TC_OP_IN_PLACE,                  \
      "in-place AdamW update of param, m, v")                                                                        \
    X(SGD_STEP, "sgd_step", 3, tc_no_backward, TC_OP_FLOAT_ONLY | TC_OP_FUSED | TC_OP_IN_PLACE,                      \
      "in-place SGD update with optional (Nesterov) momentum")                                                       \
    X(GLOBAL_NORM, "global_norm", -1, tc_no_backward, TC_OP_FLOAT_ONLY | TC_OP_FUSED,                                \
      "sqrt of the sum of squares over a list of tensors")                                                           \
    X(SCALE_, "scale_", 1, tc_no_backward, TC_OP_FLOAT_ONLY | TC_OP_FUSED | TC_OP_IN_PLACE,                          \
      "in-place multiplication by a number")

#define TC_OP_LIST(X) TC_UNARY_OP_LIST(X) TC_BINARY_OP_LIST(X) TC_REDUCE_OP_LIST(X) TC_OTHER_OP_LIST(X)

#endif
