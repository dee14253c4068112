/*
 * cuda_rope.cu: the rotary position embedding's rotation, the twin of
 * src/cpu/cpu_rope.c (the contract is on the rope slot,
 * src/backend_slots.h): one thread per pair, rotating it by the table's
 * angle, which the engine computed for both backends. Over bfloat16/float16
 * x (T) the table stays float32 (C, cuda_compute_t<T>), the rotation is
 * float32's and each result is rounded once to T.
 */
#include "cuda_half.h"

template <typename T, typename C>
__global__ void rope_kernel(const T *x, const C *table, T *out, int64_t pairs, int64_t before, int64_t time,
                            int64_t after, int64_t dim, int64_t table_batch, bool interleaved, bool inverse) {
    int64_t half = dim / 2, stride = interleaved ? 1 : half, step = interleaved ? 2 : 1;
    for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < pairs; p += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = p / half, i = p - r * half;
        int64_t t = r / after % time, b = r / (after * time * before);
        const C *angle = table + (((table_batch > 1 ? b : 0) * time + t) * half + i) * 2;
        C cosine = angle[0], sine = inverse ? -angle[1] : angle[1];
        const T *row = x + r * dim;
        C first = (C)row[i * step], second = (C)row[i * step + stride];
        out[r * dim + i * step] = (T)(first * cosine - second * sine);
        out[r * dim + i * step + stride] = (T)(first * sine + second * cosine);
    }
}

extern "C" tc_status cuda_rope(tc_context *ctx, tc_dtype dtype, const void *x, const void *table, int64_t batch,
                               int64_t before, int64_t time, int64_t after, int64_t dim, int64_t table_batch,
                               bool interleaved, bool inverse, void *out) {
    int64_t pairs = batch * before * time * after * (dim / 2);
    if (pairs == 0) return TC_OK;
    bool known = cuda_dispatch_float_or_16bit(dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        typedef cuda_compute_t<T> C;
        auto kernel = rope_kernel<T, C>;
        TC_LAUNCH(kernel, cuda_blocks_for(pairs), CUDA_BLOCK, 0, cuda_stream_of(ctx), static_cast<const T *>(x),
                  static_cast<const C *>(table), static_cast<T *>(out), pairs, before, time, after, dim, table_batch,
                  interleaved, inverse);
    });
    if (!known) return tc_fail(ctx, TC_ERROR_DTYPE, "rope: dtype %s is not supported", tc_dtype_name(dtype));
    return cuda_check_launch(ctx, "rope");
}
