/*
 * ops_table.c: the list of ops the engine provides. Docs and the
 * gradient-check specs are driven from it: a differentiable op that is not
 * covered by a gradient check fails the spec that walks this table.
 */
#include "internal.h"

static const tc_op_info op_table[] = {
    {"neg", 1, true, "-x"},
    {"exp", 1, true, "e^x"},
    {"log", 1, true, "natural logarithm"},
    {"sqrt", 1, true, "square root"},
    {"abs", 1, true, "absolute value"},
    {"tanh", 1, true, "hyperbolic tangent"},
    {"sigmoid", 1, true, "1 / (1 + e^-x)"},
    {"relu", 1, true, "max(x, 0)"},
    {"gelu", 1, true, "x * Phi(x), exact"},
    {"gelu_tanh", 1, true, "GPT-2's tanh approximation of gelu"},
    {"silu", 1, true, "x * sigmoid(x)"},
    {"sin", 1, true, "sine"},
    {"cos", 1, true, "cosine"},
    {"rsqrt", 1, true, "1 / sqrt(x)"},
    {"square", 1, true, "x * x"},
    {"sign", 1, false, "-1, 0 or 1"},
    {"logical_not", 1, false, "x == 0, as bool"},
    {"add", 2, true, "a + b, broadcasting"},
    {"sub", 2, true, "a - b, broadcasting"},
    {"mul", 2, true, "a * b, broadcasting"},
    {"div", 2, true, "a / b, broadcasting"},
    {"pow", 2, true, "a ^ b, broadcasting"},
    {"maximum", 2, true, "element-wise max of a and b"},
    {"minimum", 2, true, "element-wise min of a and b"},
    {"eq", 2, false, "a == b, as bool"},
    {"ne", 2, false, "a ~= b, as bool"},
    {"lt", 2, false, "a < b, as bool"},
    {"le", 2, false, "a <= b, as bool"},
    {"gt", 2, false, "a > b, as bool"},
    {"ge", 2, false, "a >= b, as bool"},
    {"logical_and", 2, false, "a and b, as bool"},
    {"logical_or", 2, false, "a or b, as bool"},
    {"clamp", 1, true, "x limited to [min, max]"},
    {"where", 3, true, "cond ? a : b"},
    {"masked_fill", 2, true, "x with value where mask is true"},
    {"sum", 1, true, "sum over dims"},
    {"mean", 1, true, "mean over dims"},
    {"max", 1, true, "max over dims"},
    {"min", 1, true, "min over dims"},
    {"argmax", 1, false, "0-based index of the max along a dim"},
    {"argmin", 1, false, "0-based index of the min along a dim"},
    {"var", 1, true, "variance over dims"},
    {"matmul", 2, true, "matrix product, batched and broadcast"},
    {"einsum", -1, true, "Einstein summation"},
    {"softmax", 1, true, "softmax along a dim"},
    {"log_softmax", 1, true, "log of softmax along a dim"},
    {"cat", -1, true, "concatenation along a dim"},
    {"stack", -1, true, "stacking along a new dim"},
    {"gather", 2, true, "values picked along a dim by an index tensor"},
    {"index_select", 2, true, "slices picked along a dim by a 1-D index"},
    {"embedding", 2, true, "rows of a weight matrix picked by ids"},
    {"dropout", 1, true, "random zeroing with rescaling"},
    {"reshape", 1, true, "same elements, new shape"},
    {"transpose", 1, true, "two dims swapped (a view)"},
    {"permute", 1, true, "dims reordered (a view)"},
    {"narrow", 1, true, "a range along a dim (a view)"},
    {"select", 1, true, "one index along a dim, dim removed (a view)"},
    {"expand", 1, true, "size-1 dims repeated (a view)"},
    {"contiguous", 1, true, "a row-major copy when needed"},
    {"clone", 1, true, "a copy"},
    {"to_dtype", 1, true, "a copy in another dtype"},
};

int tc_op_count(void) { return (int)(sizeof op_table / sizeof op_table[0]); }

const tc_op_info *tc_op_at(int index) {
    return index >= 0 && index < tc_op_count() ? &op_table[index] : NULL;
}
