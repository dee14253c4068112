/*
 * cpu_random.c: Philox 4x32-10 (Salmon et al., "Parallel random numbers:
 * as easy as 1, 2, 3", SC 2011) and the kernels drawing from it. Element i
 * of a draw depends only on (seed, offset, i), so any thread count and the
 * CUDA backend give the same numbers.
 */
#include "cpu_backend.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void cpu_philox(uint64_t counter, uint64_t key, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* Uniform in [0, 1) with 24 bits (float) from one word. */
static double uniform_word(uint32_t word) { return (double)(word >> 8) * (1.0 / 16777216.0); }

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
    uint32_t words[4];
    if (!job->normal) {
        for (int64_t i = begin; i < end; i++) {
            if (i == begin || i % 4 == 0) cpu_philox(job->offset + (uint64_t)i / 4, job->seed, words);
            double u = uniform_word(words[i % 4]);
            if (job->is_float) ((float *)job->data)[i] = (float)u;
            else ((double *)job->data)[i] = u;
        }
        return;
    }
    /* Box-Muller: element i uses the pair of words (2(i%2), 2(i%2)+1) of
     * counter offset + i/2. */
    for (int64_t i = begin; i < end; i++) {
        if (i == begin || i % 2 == 0) cpu_philox(job->offset + (uint64_t)i / 2, job->seed, words);
        int pair = (int)(i % 2) * 2;
        double u1 = ((double)words[pair] + 1.0) * (1.0 / 4294967296.0); /* (0, 1] */
        double u2 = (double)words[pair + 1] * (1.0 / 4294967296.0);
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
    uint32_t words[4];
    uint8_t *keep = job->keep;
    for (int64_t i = begin; i < end; i++) {
        if (i == begin || i % 4 == 0) cpu_philox(job->offset + (uint64_t)i / 4, job->seed, words);
        keep[i] = (double)words[i % 4] * (1.0 / 4294967296.0) >= job->p;
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
