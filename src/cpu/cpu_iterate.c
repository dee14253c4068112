/*
 * cpu_iterate.c: coalescing strided iteration over several tensors.
 */
#include "cpu_iterate.h"

#include <string.h>

void cpu_for_each(int n_operands, const tc_tensor *const *operands, cpu_inner_fn inner, void *state) {
    const tc_tensor *shape_of = operands[0];
    int64_t shape[TC_MAX_DIMS], strides[CPU_MAX_OPERANDS][TC_MAX_DIMS];
    char *pointers[CPU_MAX_OPERANDS];
    int ndim = 0;
    if (tc_tensor_numel(shape_of) == 0) return;
    /* Drop size-1 dims, then merge neighbours that are contiguous for all. */
    for (int d = 0; d < shape_of->ndim; d++) {
        if (shape_of->shape[d] == 1) continue;
        shape[ndim] = shape_of->shape[d];
        for (int k = 0; k < n_operands; k++)
            strides[k][ndim] = operands[k]->strides[d] * (int64_t)tc_dtype_size(operands[k]->dtype);
        if (ndim > 0) {
            bool mergeable = true;
            for (int k = 0; k < n_operands; k++)
                if (strides[k][ndim - 1] != strides[k][ndim] * shape[ndim]) mergeable = false;
            if (mergeable) {
                shape[ndim - 1] *= shape[ndim];
                for (int k = 0; k < n_operands; k++) strides[k][ndim - 1] = strides[k][ndim];
                continue;
            }
        }
        ndim++;
    }
    for (int k = 0; k < n_operands; k++) pointers[k] = tc_tensor_data_at_offset(operands[k]);
    if (ndim == 0) {
        int64_t zero[CPU_MAX_OPERANDS] = {0};
        inner(1, pointers, zero, state);
        return;
    }
    int64_t inner_strides[CPU_MAX_OPERANDS];
    for (int k = 0; k < n_operands; k++) inner_strides[k] = strides[k][ndim - 1];
    int64_t counter[TC_MAX_DIMS] = {0};
    int64_t outer = 1;
    for (int d = 0; d < ndim - 1; d++) outer *= shape[d];
    char *current[CPU_MAX_OPERANDS];
    for (int64_t o = 0; o < outer; o++) {
        memcpy(current, pointers, sizeof current);
        for (int d = 0; d < ndim - 1; d++)
            for (int k = 0; k < n_operands; k++) current[k] += counter[d] * strides[k][d];
        inner(shape[ndim - 1], current, inner_strides, state);
        for (int d = ndim - 2; d >= 0; d--) {
            if (++counter[d] < shape[d]) break;
            counter[d] = 0;
        }
    }
}

void cpu_parallel_for(tc_context *ctx, int64_t count, int64_t grain, void (*body)(int64_t begin, int64_t end, void *state),
                      void *state) {
    (void)ctx;
    (void)grain;
    if (count > 0) body(0, count, state);
}
