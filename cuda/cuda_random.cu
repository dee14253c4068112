/*
 * cuda_random.cu: the kernels drawing from Philox 4x32-10 (src/philox.h),
 * the twin of src/cpu/cpu_random.c with the same generator, counter layout
 * and conversions, so a seeded draw gives the same numbers on both
 * devices: uniforms and dropout masks bit for bit; normals through the
 * device's double log, sqrt and cos, which may differ from the host's in
 * the last bit of a float64.
 *
 * Element i of a draw uses counter offset + i/4 (word i%4) for uniforms and
 * dropout, counter offset + i/2 (words 2(i%2), 2(i%2)+1) for normals, under
 * key = seed. Each thread computes one counter's block of words.
 */
#include "cuda_kernels.h"
#include "philox.h"

/* ---- kernels ---- */

template <typename T> __global__ void uniform_kernel(T *out, int64_t n, uint64_t seed, uint64_t offset) {
    int64_t counters = (n + 3) / 4;
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < counters;
         c += (int64_t)gridDim.x * blockDim.x) {
        tc_philox_words words = tc_philox(offset + (uint64_t)c, seed);
#pragma unroll
        for (int w = 0; w < 4; w++)
            if (c * 4 + w < n) out[c * 4 + w] = (T)tc_philox_uniform(words.word[w]);
    }
}

/* Box-Muller on each pair of words, in double. */
template <typename T> __global__ void normal_kernel(T *out, int64_t n, uint64_t seed, uint64_t offset) {
    int64_t counters = (n + 1) / 2;
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < counters;
         c += (int64_t)gridDim.x * blockDim.x) {
        tc_philox_words words = tc_philox(offset + (uint64_t)c, seed);
#pragma unroll
        for (int pair = 0; pair < 2; pair++) {
            if (c * 2 + pair >= n) break;
            double u1 = tc_philox_unit_nonzero(words.word[2 * pair]);
            double u2 = tc_philox_unit(words.word[2 * pair + 1]);
            /* cos(2 pi u2) as cospi(2 u2): the same argument (doubling is exact)
             * without the device's local-memory reduction of large ones. */
            out[c * 2 + pair] = (T)(sqrt(-2.0 * log(u1)) * cospi(2.0 * u2));
        }
    }
}

template <typename T>
__global__ void dropout_kernel(const T *x, double p, T scale, uint64_t seed, uint64_t offset, uint8_t *mask, T *out,
                               int64_t n) {
    int64_t counters = (n + 3) / 4;
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < counters;
         c += (int64_t)gridDim.x * blockDim.x) {
        tc_philox_words words = tc_philox(offset + (uint64_t)c, seed);
#pragma unroll
        for (int w = 0; w < 4; w++) {
            int64_t i = c * 4 + w;
            if (i >= n) break;
            bool keep = tc_philox_unit(words.word[w]) >= p;
            mask[i] = keep;
            out[i] = keep ? x[i] * scale : (T)0;
        }
    }
}

/* ---- launchers ---- */

template <typename T> static T *data_at(const tc_tensor *t) {
    return static_cast<T *>(t->storage->data) + t->offset;
}

tc_status cuda_random(tc_tensor *out, bool normal, uint64_t seed, uint64_t offset) {
    int64_t n = tc_tensor_numel(out);
    if (n == 0) return TC_OK;
    cuda_stream stream = cuda_stream_of(out->ctx);
    bool known = cuda_dispatch_float(out->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        if (normal)
            TC_LAUNCH(normal_kernel<T>, cuda_blocks_for((n + 1) / 2), CUDA_BLOCK, 0, stream, data_at<T>(out), n, seed,
                      offset);
        else
            TC_LAUNCH(uniform_kernel<T>, cuda_blocks_for((n + 3) / 4), CUDA_BLOCK, 0, stream, data_at<T>(out), n,
                      seed, offset);
    });
    if (!known)
        return tc_fail(out->ctx, TC_ERROR_DTYPE, "random: dtype %s is not supported (float32 or float64)",
                       tc_dtype_name(out->dtype));
    return cuda_check_launch(out->ctx, normal ? "randn" : "rand");
}

tc_status cuda_dropout(const tc_tensor *x, double p, uint64_t seed, uint64_t offset, tc_tensor *mask,
                       tc_tensor *out) {
    int64_t n = tc_tensor_numel(x);
    if (n == 0) return TC_OK;
    double scale = 1.0 / (1.0 - p);
    bool known = cuda_dispatch_float(x->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(dropout_kernel<T>, cuda_blocks_for((n + 3) / 4), CUDA_BLOCK, 0, cuda_stream_of(x->ctx),
                  data_at<T>(x), p, (T)scale, seed, offset, data_at<uint8_t>(mask), data_at<T>(out), n);
    });
    if (!known)
        return tc_fail(x->ctx, TC_ERROR_DTYPE, "dropout: dtype %s is not supported (float32 or float64)",
                       tc_dtype_name(x->dtype));
    return cuda_check_launch(x->ctx, "dropout");
}
