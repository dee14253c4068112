/*
 * cpu_iterate.h: walking several same-shaped strided tensors at once.
 * operands[0] gives the shape; the others must have it too (broadcast views
 * carry stride 0). Dims are coalesced so the inner function sees the
 * longest runs possible; pointers and strides are in bytes.
 */
#ifndef TRICYCLE_CPU_ITERATE_H
#define TRICYCLE_CPU_ITERATE_H

#include "../internal.h"

#define CPU_MAX_OPERANDS 4

typedef void (*cpu_inner_fn)(int64_t count, char **pointers, const int64_t *strides, void *state);

void cpu_for_each(int n_operands, const tc_tensor *const *operands, cpu_inner_fn inner, void *state);

/* Splits [0, count) into chunks over the context's threads and runs
 * body(begin, end, state) on each; runs inline for small counts. */
void cpu_parallel_for(tc_context *ctx, int64_t count, int64_t grain, void (*body)(int64_t begin, int64_t end, void *state),
                      void *state);

#endif
