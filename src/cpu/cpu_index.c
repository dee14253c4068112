/*
 * cpu_index.c: gather / scatter-add and index-select / index-add, each
 * forward beside its backward. Operands are contiguous; indices are int64
 * and checked against the indexed dim.
 */
#include "cpu_backend.h"

#include <string.h>

static tc_status bad_index(const tc_tensor *x, const char *function, int dim, int64_t index) {
    return tc_fail(x->ctx, TC_ERROR_ARGUMENT, "%s: index %lld is out of range for dim %d of size %lld (shape %s)",
                   function, (long long)index, dim + 1, (long long)x->shape[dim], TC_SHAPE(x));
}

static void split_at(const tc_tensor *t, int dim, int64_t *outer, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < dim; d++) *outer *= t->shape[d];
    for (int d = dim + 1; d < t->ndim; d++) *inner *= t->shape[d];
}

/* Offsets into x for each element of index, for gather and scatter_add. */
static tc_status gather_offsets(const tc_tensor *x, int dim, const tc_tensor *index, const char *function,
                                int64_t position, int64_t *offset) {
    const int64_t *ids = tc_tensor_data_at_offset(index);
    int64_t remaining = position, at = 0;
    for (int d = index->ndim - 1; d >= 0; d--) {
        int64_t coordinate = remaining % index->shape[d];
        remaining /= index->shape[d];
        if (d == dim) {
            int64_t id = ids[position];
            if (id < 0 || id >= x->shape[dim]) return bad_index(x, function, dim, id);
            coordinate = id;
        }
        at += coordinate * x->strides[d];
    }
    *offset = at;
    return TC_OK;
}

tc_status cpu_gather(const tc_tensor *x, int dim, const tc_tensor *index, tc_tensor *out) {
    int64_t n = tc_tensor_numel(index);
    size_t size = tc_dtype_size(x->dtype);
    const char *source = tc_tensor_data_at_offset(x);
    char *target = tc_tensor_data_at_offset(out);
    for (int64_t i = 0; i < n; i++) {
        int64_t at;
        TC_TRY(gather_offsets(x, dim, index, "gather", i, &at));
        memcpy(target + (size_t)i * size, source + (size_t)at * size, size);
    }
    return TC_OK;
}

tc_status cpu_scatter_add(tc_tensor *grad_x, int dim, const tc_tensor *index, const tc_tensor *grad) {
    int64_t n = tc_tensor_numel(index);
    for (int64_t i = 0; i < n; i++) {
        int64_t at;
        TC_TRY(gather_offsets(grad_x, dim, index, "gather backward", i, &at));
        if (grad_x->dtype == TC_FLOAT32)
            ((float *)tc_tensor_data_at_offset(grad_x))[at] += ((const float *)tc_tensor_data_at_offset(grad))[i];
        else
            ((double *)tc_tensor_data_at_offset(grad_x))[at] += ((const double *)tc_tensor_data_at_offset(grad))[i];
    }
    return TC_OK;
}

tc_status cpu_index_select(const tc_tensor *x, int dim, const tc_tensor *index, tc_tensor *out) {
    int64_t outer, inner, count = tc_tensor_numel(index), size_in = x->shape[dim];
    split_at(x, dim, &outer, &inner);
    const int64_t *ids = tc_tensor_data_at_offset(index);
    size_t row = (size_t)inner * tc_dtype_size(x->dtype);
    const char *source = tc_tensor_data_at_offset(x);
    char *target = tc_tensor_data_at_offset(out);
    for (int64_t j = 0; j < count; j++)
        if (ids[j] < 0 || ids[j] >= size_in) return bad_index(x, "index_select", dim, ids[j]);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < count; j++)
            memcpy(target + (size_t)(o * count + j) * row, source + (size_t)(o * size_in + ids[j]) * row, row);
    return TC_OK;
}

tc_status cpu_index_add(tc_tensor *grad_x, int dim, const tc_tensor *index, const tc_tensor *grad) {
    int64_t outer, inner, count = tc_tensor_numel(index), size_in = grad_x->shape[dim];
    split_at(grad_x, dim, &outer, &inner);
    const int64_t *ids = tc_tensor_data_at_offset(index);
    for (int64_t j = 0; j < count; j++)
        if (ids[j] < 0 || ids[j] >= size_in) return bad_index(grad_x, "index_select backward", dim, ids[j]);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < count; j++) {
            int64_t to = (o * size_in + ids[j]) * inner, from = (o * count + j) * inner;
            if (grad_x->dtype == TC_FLOAT32) {
                float *dst = (float *)tc_tensor_data_at_offset(grad_x) + to;
                const float *src = (const float *)tc_tensor_data_at_offset(grad) + from;
                for (int64_t i = 0; i < inner; i++) dst[i] += src[i];
            } else {
                double *dst = (double *)tc_tensor_data_at_offset(grad_x) + to;
                const double *src = (const double *)tc_tensor_data_at_offset(grad) + from;
                for (int64_t i = 0; i < inner; i++) dst[i] += src[i];
            }
        }
    return TC_OK;
}
