/*
 * cpu_iterate.c: coalescing strided iteration over several tensors, and
 * the static split of a loop over the context's worker pool.
 */
#include "cpu_iterate.h"

#include "cpu_pool.h"

#include <string.h>

/* The operands' dims with size-1 dims dropped and neighbours that are
 * contiguous for every operand merged; strides in bytes. */
typedef struct walk_plan {
    int n_operands;
    int ndim;
    int64_t numel;
    int64_t shape[TC_MAX_DIMS];
    int64_t strides[CPU_MAX_OPERANDS][TC_MAX_DIMS];
    char *pointers[CPU_MAX_OPERANDS];
    cpu_inner_fn inner;
    void *state;
} walk_plan;

static void plan_walk(walk_plan *plan, int n_operands, const tc_tensor *const *operands) {
    const tc_tensor *shape_of = operands[0];
    int ndim = 0;
    plan->n_operands = n_operands;
    plan->numel = tc_tensor_numel(shape_of);
    for (int d = 0; d < shape_of->ndim; d++) {
        if (shape_of->shape[d] == 1) continue;
        plan->shape[ndim] = shape_of->shape[d];
        for (int k = 0; k < n_operands; k++)
            plan->strides[k][ndim] = operands[k]->strides[d] * (int64_t)tc_dtype_size(operands[k]->dtype);
        if (ndim > 0) {
            bool mergeable = true;
            for (int k = 0; k < n_operands; k++)
                if (plan->strides[k][ndim - 1] != plan->strides[k][ndim] * plan->shape[ndim]) mergeable = false;
            if (mergeable) {
                plan->shape[ndim - 1] *= plan->shape[ndim];
                for (int k = 0; k < n_operands; k++) plan->strides[k][ndim - 1] = plan->strides[k][ndim];
                continue;
            }
        }
        ndim++;
    }
    if (ndim == 0) { /* a single element */
        plan->shape[0] = 1;
        for (int k = 0; k < n_operands; k++) plan->strides[k][0] = 0;
        ndim = 1;
    }
    plan->ndim = ndim;
    for (int k = 0; k < n_operands; k++) plan->pointers[k] = tc_tensor_data_at_offset(operands[k]);
}

/* Runs the inner function over elements [begin, end) in row-major order of
 * the plan's shape, one call per (piece of a) innermost run. */
static void walk_range(int64_t begin, int64_t end, void *argument) {
    const walk_plan *plan = argument;
    int last = plan->ndim - 1, n = plan->n_operands;
    int64_t counter[TC_MAX_DIMS];
    int64_t remaining = begin;
    for (int d = last; d >= 0; d--) {
        counter[d] = remaining % plan->shape[d];
        remaining /= plan->shape[d];
    }
    int64_t inner_strides[CPU_MAX_OPERANDS];
    for (int k = 0; k < n; k++) inner_strides[k] = plan->strides[k][last];
    char *current[CPU_MAX_OPERANDS];
    int64_t position = begin;
    while (position < end) {
        for (int k = 0; k < n; k++) {
            current[k] = plan->pointers[k];
            for (int d = 0; d <= last; d++) current[k] += counter[d] * plan->strides[k][d];
        }
        int64_t run = plan->shape[last] - counter[last];
        if (run > end - position) run = end - position;
        plan->inner(run, current, inner_strides, plan->state);
        position += run;
        counter[last] += run;
        for (int d = last; d > 0 && counter[d] == plan->shape[d]; d--) {
            counter[d] = 0;
            counter[d - 1]++;
        }
    }
}

void cpu_for_each(int n_operands, const tc_tensor *const *operands, cpu_inner_fn inner, void *state) {
    walk_plan plan;
    plan_walk(&plan, n_operands, operands);
    plan.inner = inner;
    plan.state = state;
    if (plan.numel > 0) walk_range(0, plan.numel, &plan);
}

void cpu_for_each_parallel(int n_operands, const tc_tensor *const *operands, int64_t grain, cpu_inner_fn inner,
                           void *state) {
    walk_plan plan;
    plan_walk(&plan, n_operands, operands);
    plan.inner = inner;
    plan.state = state;
    if (plan.numel > 0) cpu_parallel_for(operands[0]->ctx, plan.numel, grain, walk_range, &plan);
}

typedef struct parallel_job {
    int64_t count;
    int chunks;
    void (*body)(int64_t begin, int64_t end, void *state);
    void (*indexed_body)(int chunk, int64_t begin, int64_t end, void *state); /* used when body is NULL */
    void *state;
} parallel_job;

/* Chunk boundaries are multiples of CHUNK_ALIGNMENT elements (when the
 * count allows), so threads do not share the cache lines of their edges. */
#define CHUNK_ALIGNMENT 16

static void run_chunk(int index, void *argument) {
    const parallel_job *job = argument;
    int64_t begin = job->count * index / job->chunks, end = job->count * (index + 1) / job->chunks;
    if (job->count >= CHUNK_ALIGNMENT * job->chunks) {
        begin -= begin % CHUNK_ALIGNMENT;
        if (index + 1 < job->chunks) end -= end % CHUNK_ALIGNMENT;
    }
    if (begin >= end) return;
    if (job->body)
        job->body(begin, end, job->state);
    else
        job->indexed_body(index, begin, end, job->state);
}

int cpu_parallel_chunks(tc_context *ctx, int64_t count, int64_t grain) {
    if (grain < 1) grain = 1;
    if (count / grain < 2 || ctx->num_threads < 2 || cpu_pool_running(ctx->cpu_pool)) return 1;
    struct cpu_pool *pool = tc_context_pool(ctx);
    int64_t chunks = count / grain, threads = cpu_pool_threads(pool);
    return (int)(chunks < threads ? chunks : threads);
}

int64_t cpu_parallel_largest_chunk(tc_context *ctx, int64_t count, int64_t grain) {
    parallel_job job = {count, cpu_parallel_chunks(ctx, count, grain), NULL, NULL, NULL};
    int64_t largest = 0;
    for (int index = 0; index < job.chunks; index++) {
        int64_t begin = job.count * index / job.chunks, end = job.count * (index + 1) / job.chunks;
        if (job.count >= CHUNK_ALIGNMENT * job.chunks) { /* as run_chunk moves the edges */
            begin -= begin % CHUNK_ALIGNMENT;
            if (index + 1 < job.chunks) end -= end % CHUNK_ALIGNMENT;
        }
        if (end - begin > largest) largest = end - begin;
    }
    return largest;
}

void cpu_parallel_for(tc_context *ctx, int64_t count, int64_t grain,
                      void (*body)(int64_t begin, int64_t end, void *state), void *state) {
    if (count <= 0) return;
    int chunks = cpu_parallel_chunks(ctx, count, grain);
    if (chunks <= 1) {
        body(0, count, state);
        return;
    }
    parallel_job job = {count, chunks, body, NULL, state};
    cpu_pool_run(ctx->cpu_pool, chunks, run_chunk, &job);
}

void cpu_parallel_for_indexed(tc_context *ctx, int64_t count, int64_t grain,
                              void (*body)(int chunk, int64_t begin, int64_t end, void *state), void *state) {
    if (count <= 0) return;
    int chunks = cpu_parallel_chunks(ctx, count, grain);
    if (chunks <= 1) {
        body(0, 0, count, state);
        return;
    }
    parallel_job job = {count, chunks, NULL, body, state};
    cpu_pool_run(ctx->cpu_pool, chunks, run_chunk, &job);
}
