/*
 * cpu_index.c: gather / scatter-add and index-select / index-add, each
 * forward beside its backward. Operands are contiguous; indices are int64
 * and checked against the indexed dim before any work. gather, index_select
 * and index_add are split over the context's threads, each output element
 * written by one thread in a fixed order (index_add splits the columns, so
 * repeated indices add up in index order whatever the thread count);
 * scatter_add, whose targets may collide anywhere, stays on one thread.
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

/* Copies per chunk below which a second thread does not pay. */
#define GRAIN_ELEMENTS 16384

static tc_status check_ids(const tc_tensor *x, int dim, const tc_tensor *index, const char *function) {
    const int64_t *ids = tc_tensor_data_at_offset(index);
    int64_t n = tc_tensor_numel(index);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= x->shape[dim]) return bad_index(x, function, dim, ids[i]);
    return TC_OK;
}

typedef struct gather_job {
    const tc_tensor *x, *index;
    int dim;
    size_t size;
    const char *source;
    char *target;
} gather_job;

static void gather_chunk(int64_t begin, int64_t end, void *argument) {
    const gather_job *job = argument;
    for (int64_t i = begin; i < end; i++) {
        int64_t at = 0;
        gather_offsets(job->x, job->dim, job->index, "gather", i, &at); /* ids checked */
        memcpy(job->target + (size_t)i * job->size, job->source + (size_t)at * job->size, job->size);
    }
}

tc_status cpu_gather(const tc_tensor *x, int dim, const tc_tensor *index, tc_tensor *out) {
    TC_TRY(check_ids(x, dim, index, "gather"));
    gather_job job = {x, index, dim, tc_dtype_size(x->dtype), tc_tensor_data_at_offset(x),
                      tc_tensor_data_at_offset(out)};
    cpu_parallel_for(x->ctx, tc_tensor_numel(index), GRAIN_ELEMENTS / 4, gather_chunk, &job);
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

typedef struct select_job {
    const int64_t *ids;
    int64_t count, size_in, inner, outer;
    size_t row; /* bytes of one slice */
    tc_dtype dtype;
    const char *source;
    char *target;
} select_job;

/* Slices numbered o * count + j, [begin, end) of them. */
static void index_select_chunk(int64_t begin, int64_t end, void *argument) {
    const select_job *job = argument;
    for (int64_t slice = begin; slice < end; slice++) {
        int64_t o = slice / job->count, j = slice % job->count;
        memcpy(job->target + (size_t)slice * job->row,
               job->source + (size_t)(o * job->size_in + job->ids[j]) * job->row, job->row);
    }
}

tc_status cpu_index_select(const tc_tensor *x, int dim, const tc_tensor *index, tc_tensor *out) {
    int64_t outer, inner, count = tc_tensor_numel(index);
    split_at(x, dim, &outer, &inner);
    TC_TRY(check_ids(x, dim, index, "index_select"));
    select_job job = {tc_tensor_data_at_offset(index), count, x->shape[dim], inner, outer,
                      (size_t)inner * tc_dtype_size(x->dtype), x->dtype, tc_tensor_data_at_offset(x),
                      tc_tensor_data_at_offset(out)};
    int64_t grain = GRAIN_ELEMENTS / (inner > 0 ? inner : 1);
    cpu_parallel_for(x->ctx, outer * count, grain > 1 ? grain : 1, index_select_chunk, &job);
    return TC_OK;
}

/* Adds slices with columns [first, last) of each; every o, j in order. */
static void index_add_columns(const select_job *job, int64_t first, int64_t last) {
    for (int64_t o = 0; o < job->outer; o++)
        for (int64_t j = 0; j < job->count; j++) {
            int64_t to = (o * job->size_in + job->ids[j]) * job->inner, from = (o * job->count + j) * job->inner;
            if (job->dtype == TC_FLOAT32) {
                float *dst = (float *)(void *)job->target + to;
                const float *src = (const float *)(const void *)job->source + from;
                for (int64_t i = first; i < last; i++) dst[i] += src[i];
            } else {
                double *dst = (double *)(void *)job->target + to;
                const double *src = (const double *)(const void *)job->source + from;
                for (int64_t i = first; i < last; i++) dst[i] += src[i];
            }
        }
}

static void index_add_chunk(int64_t begin, int64_t end, void *argument) {
    index_add_columns(argument, begin, end);
}

tc_status cpu_index_add(tc_tensor *grad_x, int dim, const tc_tensor *index, const tc_tensor *grad) {
    int64_t outer, inner, count = tc_tensor_numel(index);
    split_at(grad_x, dim, &outer, &inner);
    TC_TRY(check_ids(grad_x, dim, index, "index_select backward"));
    select_job job = {tc_tensor_data_at_offset(index), count, grad_x->shape[dim], inner, outer, 0, grad_x->dtype,
                      tc_tensor_data_at_offset(grad), tc_tensor_data_at_offset(grad_x)};
    /* Columns split over threads: slices with the same index never race. */
    int64_t grain = GRAIN_ELEMENTS / (outer * count > 0 ? outer * count : 1);
    cpu_parallel_for(grad_x->ctx, inner, grain > 16 ? grain : 16, index_add_chunk, &job);
    return TC_OK;
}
