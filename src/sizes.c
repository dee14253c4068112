/*
 * sizes.c: the one place where sizes are multiplied and added.
 *
 * Every tensor's shape obeys one rule, checked when the tensor (or a view of
 * it) is made: each size is at least 0, and the product of the sizes, with a
 * size of 0 counted as 1, times the element size fits in int64. Element
 * counts, contiguous strides, byte counts and offsets inside such a tensor
 * then cannot overflow, so kernels and loops need no checks of their own.
 */
#include "internal.h"

bool tc_mul_sizes(int64_t a, int64_t b, int64_t *out) {
    if (a < 0 || b < 0) return false;
    return !__builtin_mul_overflow(a, b, out);
}

bool tc_add_sizes(int64_t a, int64_t b, int64_t *out) {
    if (a < 0 || b < 0) return false;
    return !__builtin_add_overflow(a, b, out);
}

/* The product of the sizes with 0 counted as 1: the span of the contiguous
 * layout; false when it overflows. */
static bool shape_span(int ndim, const int64_t *shape, int64_t *span) {
    int64_t product = 1;
    for (int i = 0; i < ndim; i++)
        if (!tc_mul_sizes(product, shape[i] > 0 ? shape[i] : 1, &product)) return false;
    *span = product;
    return true;
}

tc_status tc_check_shape(tc_context *ctx, const char *op, int ndim, const int64_t *shape, tc_dtype dtype) {
    if (ndim < 0 || ndim > TC_MAX_DIMS)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: tensors have 0 to %d dims, got %d", op, TC_MAX_DIMS, ndim);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: size %lld of dim %d is negative", op, (long long)shape[i],
                           i + 1);
    int64_t span, bytes;
    if (!shape_span(ndim, shape, &span) || !tc_mul_sizes(span, (int64_t)tc_dtype_size(dtype), &bytes)) {
        char text[TC_SHAPE_STRING_SIZE];
        return tc_fail(ctx, TC_ERROR_ARGUMENT,
                       "%s: shape %s is too large: its %s elements would need 2^63 bytes or more", op,
                       tc_shape_string(ndim, shape, text, sizeof text), tc_dtype_name(dtype));
    }
    return TC_OK;
}

tc_status tc_checked_numel(tc_context *ctx, const char *op, int ndim, const int64_t *shape, int64_t *numel) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (!tc_mul_sizes(n, shape[i], &n)) {
            char text[TC_SHAPE_STRING_SIZE];
            return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: shape %s has more than 2^63 elements", op,
                           tc_shape_string(ndim, shape, text, sizeof text));
        }
    }
    *numel = n;
    return TC_OK;
}
