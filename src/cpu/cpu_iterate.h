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

/* cpu_for_each split over the context's threads (the context of
 * operands[0]) in chunks of at least `grain` elements. The inner function
 * may run on several threads at once, on disjoint elements. */
void cpu_for_each_parallel(int n_operands, const tc_tensor *const *operands, int64_t grain, cpu_inner_fn inner,
                           void *state);

/* How many chunks cpu_parallel_for splits [0, count) into: at most the
 * thread count and count / grain, at least 1. Depends only on the arguments
 * and the context's thread count. */
int cpu_parallel_chunks(tc_context *ctx, int64_t count, int64_t grain);

/* The most elements of [0, count) one of those chunks gets (count when
 * there is one chunk): per-chunk scratch is sized for it. */
int64_t cpu_parallel_largest_chunk(tc_context *ctx, int64_t count, int64_t grain);

/* Splits [0, count) into cpu_parallel_chunks(ctx, count, grain) static
 * chunks (boundaries on multiples of 16 when count allows) and runs
 * body(begin, end, state) on each, one per thread; inline when there is one
 * chunk or when called from inside a chunk. Returns when all are done. The
 * split depends only on count, grain and the thread count, so a kernel
 * whose chunks write disjoint outputs gives the same bits every run. */
void cpu_parallel_for(tc_context *ctx, int64_t count, int64_t grain,
                      void (*body)(int64_t begin, int64_t end, void *state), void *state);

/* cpu_parallel_for whose body also gets its chunk's index, in [0,
 * cpu_parallel_chunks(ctx, count, grain)) as asked just before: for
 * per-chunk scratch the caller allocates. */
void cpu_parallel_for_indexed(tc_context *ctx, int64_t count, int64_t grain,
                              void (*body)(int chunk, int64_t begin, int64_t end, void *state), void *state);

#endif
