/*
 * cpu_rope.c: the rotary position embedding's rotation (the contract is on
 * the rope slot, backend_slots.h). Rows of `dim` values are independent;
 * threads take ranges of them. The angles come in the table, so this and
 * the CUDA kernel rotate by the same numbers.
 */
#include "cpu_backend.h"
#include "cpu_iterate.h"

typedef struct rope_job {
    const void *x, *table;
    void *out;
    int64_t before, time, after, dim, table_batch;
    bool interleaved, inverse;
} rope_job;

/* Row r of [batch, before, time, after] is rotated with the table's row for
 * its batch (when the table has one per batch) and its time step. */
#define ROPE_ROWS(T)                                                                                                 \
    static void rope_rows_##T(int64_t begin, int64_t end, void *argument) {                                          \
        const rope_job *job = argument;                                                                              \
        int64_t half = job->dim / 2, stride = job->interleaved ? 1 : half, step = job->interleaved ? 2 : 1;          \
        T sign = job->inverse ? (T)-1 : (T)1;                                                                        \
        for (int64_t r = begin; r < end; r++) {                                                                      \
            int64_t t = r / job->after % job->time, b = r / (job->after * job->time * job->before);                  \
            const T *angles = (const T *)job->table + ((job->table_batch > 1 ? b : 0) * job->time + t) * half * 2;   \
            const T *row = (const T *)job->x + r * job->dim;                                                         \
            T *y = (T *)job->out + r * job->dim;                                                                     \
            for (int64_t i = 0; i < half; i++) {                                                                     \
                T cosine = angles[2 * i], sine = sign * angles[2 * i + 1];                                           \
                T first = row[i * step], second = row[i * step + stride];                                            \
                y[i * step] = first * cosine - second * sine;                                                        \
                y[i * step + stride] = first * sine + second * cosine;                                               \
            }                                                                                                        \
        }                                                                                                            \
    }
ROPE_ROWS(float)
ROPE_ROWS(double)

tc_status cpu_rope(tc_context *ctx, tc_dtype dtype, const void *x, const void *table, int64_t batch, int64_t before,
                   int64_t time, int64_t after, int64_t dim, int64_t table_batch, bool interleaved, bool inverse,
                   void *out) {
    rope_job job = {x, table, out, before, time, after, dim, table_batch, interleaved, inverse};
    int64_t rows = batch * before * time * after;
    int64_t grain = dim > 0 ? 32768 / dim + 1 : rows;
    cpu_parallel_for(ctx, rows, grain, dtype == TC_FLOAT32 ? rope_rows_float : rope_rows_double, &job);
    return TC_OK;
}
