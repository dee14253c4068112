/*
 * ops_sort.c: sort and topk along a dim. The backend's sort kernel gives
 * the int64 positions, in order, along the last dim of a contiguous copy
 * with the dim moved last; the values are a gather of x by those indices,
 * so the tape holds gather's node and the gradient scatters back through
 * the indices. Every dtype sorts (16-bit ones through a float32 copy of
 * their keys); the order is stable, NaN the largest (first when
 * descending) and -0 equal to 0.
 */
#include "internal.h"

/* The first k (all when k < 0) along dim of x in order, and their indices. */
static tc_status sort_along(const char *function, tc_tensor *x, int dim, int64_t k, bool descending,
                            tc_tensor **values, tc_tensor **indices) {
    *values = NULL;
    *indices = NULL;
    tc_context *ctx = x->ctx;
    int d;
    if (!tc_normalize_dim(dim, x->ndim > 0 ? x->ndim : 1, &d))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: dim %d is out of range for x of shape %s", function,
                       tc_dim_shown(dim), TC_SHAPE(x));
    int64_t size = x->ndim > 0 ? x->shape[d] : 1;
    if (k > size)
        return tc_fail(ctx, TC_ERROR_ARGUMENT,
                       "%s: k %lld is out of range for dim %d of size %lld (shape %s; 0 to %lld)", function,
                       (long long)k, d + 1, (long long)size, TC_SHAPE(x), (long long)size);
    if (x->ndim == 0) { /* as one element in 1-D; sort gives 0-dim results back, topk 1-D ones */
        int64_t one = 1;
        tc_tensor *x1 = NULL, *v1 = NULL, *i1 = NULL;
        tc_status status = tc_reshape(x, 1, &one, &x1);
        if (status == TC_OK) status = sort_along(function, x1, 0, k, descending, &v1, &i1);
        if (status == TC_OK && k < 0) status = tc_reshape(v1, 0, NULL, values);
        if (status == TC_OK && k < 0) status = tc_reshape(i1, 0, NULL, indices);
        if (status == TC_OK && k >= 0) {
            *values = v1;
            *indices = i1;
            v1 = i1 = NULL;
        }
        if (status != TC_OK) {
            tc_tensor_release(*values);
            *values = NULL;
        }
        tc_tensor_release(x1);
        tc_tensor_release(v1);
        tc_tensor_release(i1);
        return status;
    }
    if (tc_dtype_is_16bit(x->dtype)) {
        /* widening is exact and keeps the order: the positions come from a
         * float32 copy, the values from x itself */
        tc_tensor *detached = NULL, *wide = NULL, *wide_values = NULL, *ids = NULL;
        tc_status status = tc_detach(x, &detached);
        if (status == TC_OK) status = tc_to_dtype(detached, TC_FLOAT32, &wide);
        if (status == TC_OK) status = sort_along(function, wide, dim, k, descending, &wide_values, &ids);
        if (status == TC_OK) status = tc_gather(x, d, ids, values);
        if (status == TC_OK) {
            *indices = ids;
            ids = NULL;
        }
        tc_tensor_release(detached);
        tc_tensor_release(wide);
        tc_tensor_release(wide_values);
        tc_tensor_release(ids);
        return status;
    }
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(x, function, TC_SLOT_BIT(sort), &backend));
    int last = x->ndim - 1;
    int64_t shape[TC_MAX_DIMS];
    tc_tensor *detached = NULL, *moved = NULL, *rows = NULL, *positions = NULL, *back = NULL, *ids = NULL;
    tc_status status = tc_detach(x, &detached);
    if (status == TC_OK) status = tc_transpose(detached, d, last, &moved);
    if (status == TC_OK) status = tc_contiguous(moved, &rows);
    if (status == TC_OK) {
        for (int e = 0; e < x->ndim; e++) shape[e] = rows->shape[e];
        shape[last] = k < 0 ? size : k;
        status = tc_empty_shaped(rows, TC_INT64, x->ndim, shape, &positions);
    }
    if (status == TC_OK && tc_tensor_numel(positions) > 0) status = backend->sort(rows, descending, positions);
    if (status == TC_OK) status = tc_transpose(positions, d, last, &back);
    if (status == TC_OK) status = tc_contiguous(back, &ids);
    if (status == TC_OK) status = tc_gather(x, d, ids, values);
    if (status == TC_OK) {
        *indices = ids;
        ids = NULL;
    }
    tc_tensor_release(ids);
    tc_tensor_release(back);
    tc_tensor_release(positions);
    tc_tensor_release(rows);
    tc_tensor_release(moved);
    tc_tensor_release(detached);
    return status;
}

tc_status tc_sort(tc_tensor *x, int dim, bool descending, tc_tensor **values, tc_tensor **indices) {
    return sort_along("sort", x, dim, -1, descending, values, indices);
}

tc_status tc_topk(tc_tensor *x, int64_t k, int dim, bool largest, tc_tensor **values, tc_tensor **indices) {
    if (k < 0) {
        *values = NULL;
        *indices = NULL;
        return tc_fail(x->ctx, TC_ERROR_ARGUMENT,
                       "topk: k %lld is out of range (it must be 0 or more) for x of shape %s", (long long)k,
                       TC_SHAPE(x));
    }
    return sort_along("topk", x, dim, k, largest, values, indices);
}
