/*
 * cpu_random.c: the kernels drawing from Philox 4x32-10 (philox.h, shared
 * with cuda_random.cu). Element i of a draw depends only on (seed, offset,
 * i), so any thread count and the CUDA backend give the same numbers:
 * uniforms and dropout use word i%4 of counter offset + i/4, normals the
 * words 2(i%2) and 2(i%2)+1 of counter offset + i/2.
 */
#include "cpu_backend.h"
#include "../philox.h"

#include <math.h>

/* Draws are split over the context's threads in element ranges; a range
 * starting inside a counter's group of words regenerates that group. */
#define GRAIN_ELEMENTS 8192

typedef struct random_job {
    bool normal, is_float;
    uint64_t seed, offset;
    void *data;
    /* dropout */
    const void *x;
    uint8_t *keep;
    double p;
} random_job;

static void random_chunk(int64_t begin, int64_t end, void *argument) {
    const random_job *job = argument;
    tc_philox_words words = {{0}};
    if (!job->normal) {
        for (int64_t i = begin; i < end; i++) {
            if (i == begin || i % 4 == 0) words = tc_philox(job->offset + (uint64_t)i / 4, job->seed);
            double u = tc_philox_uniform(words.word[i % 4]);
            if (job->is_float) ((float *)job->data)[i] = (float)u;
            else ((double *)job->data)[i] = u;
        }
        return;
    }
    /* Box-Muller on the pair of words (2(i%2), 2(i%2)+1). */
    for (int64_t i = begin; i < end; i++) {
        if (i == begin || i % 2 == 0) words = tc_philox(job->offset + (uint64_t)i / 2, job->seed);
        int pair = (int)(i % 2) * 2;
        double u1 = tc_philox_unit_nonzero(words.word[pair]);
        double u2 = tc_philox_unit(words.word[pair + 1]);
        double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        if (job->is_float) ((float *)job->data)[i] = (float)z;
        else ((double *)job->data)[i] = z;
    }
}

tc_status cpu_random(tc_tensor *out, bool normal, uint64_t seed, uint64_t offset) {
    random_job job = {.normal = normal, .is_float = out->dtype == TC_FLOAT32, .seed = seed, .offset = offset,
                      .data = tc_tensor_data_at_offset(out)};
    cpu_parallel_for(out->ctx, tc_tensor_numel(out), GRAIN_ELEMENTS, random_chunk, &job);
    return TC_OK;
}

static void dropout_chunk(int64_t begin, int64_t end, void *argument) {
    const random_job *job = argument;
    tc_philox_words words = {{0}};
    uint8_t *keep = job->keep;
    for (int64_t i = begin; i < end; i++) {
        if (i == begin || i % 4 == 0) words = tc_philox(job->offset + (uint64_t)i / 4, job->seed);
        keep[i] = tc_philox_unit(words.word[i % 4]) >= job->p;
    }
    double scale = 1.0 / (1.0 - job->p);
    if (job->is_float) {
        const float *in = job->x;
        float *o = job->data;
        float s = (float)scale;
        for (int64_t i = begin; i < end; i++) o[i] = keep[i] ? in[i] * s : 0.0f;
    } else {
        const double *in = job->x;
        double *o = job->data;
        for (int64_t i = begin; i < end; i++) o[i] = keep[i] ? in[i] * scale : 0.0;
    }
}

tc_status cpu_dropout(const tc_tensor *x, double p, uint64_t seed, uint64_t offset, tc_tensor *mask, tc_tensor *out) {
    random_job job = {.is_float = x->dtype == TC_FLOAT32, .seed = seed, .offset = offset,
                      .data = tc_tensor_data_at_offset(out), .x = tc_tensor_data_at_offset(x),
                      .keep = tc_tensor_data_at_offset(mask), .p = p};
    cpu_parallel_for(x->ctx, tc_tensor_numel(x), GRAIN_ELEMENTS, dropout_chunk, &job);
    return TC_OK;
}
