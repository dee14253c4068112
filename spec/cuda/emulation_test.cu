/*
 * emulation_test.cu: tests of the CUDA emulation itself (cuda/emulation/),
 * with small kernels whose right answers are known on the host.
 *
 *  - correct kernels (shared-memory and warp-shuffle reductions, scans,
 *    votes, atomics, dynamic shared memory) match the host in forward and
 *    shuffled thread order;
 *  - planted bugs are caught: a block reduction missing the __syncthreads
 *    after its stores (wrong in forward order), a reduction by the last
 *    thread missing the same barrier (right in forward order, wrong in a
 *    shuffled one: why both orders run), divergent barriers and bad launch
 *    configurations (launch errors);
 *  - the cuBLAS shim matches a naive product and refuses bad arguments; on
 *    16-bit operands (GemmEx and GemmStridedBatchedEx, CUDA_R_16BF and
 *    CUDA_R_16F, every transpose, C float32 or 16-bit) it gives the exact
 *    product rounded once, leaves C's gaps alone, and refuses the type
 *    combinations cuBLAS does not have; without
 *    CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION it reduces split-K
 *    halves in the 16-bit output type, as cuBLAS may.
 *
 * `emulation_test out-of-bounds` runs a kernel reading past its buffer and
 * must be stopped by AddressSanitizer, and `emulation_test host-reads-device`
 * reads device memory on the host and must be stopped by the fence
 * (TRICYCLE_CUDA_EMULATION_FENCE=1); make test-cuda checks both.
 * Compiled by nvcc instead, the correct kernels run on a GPU.
 */
#include "cuda_common.h"

#ifdef TC_CUDA_EMULATION
#include "emulation/cublas_emulation.h"
#include "half.h"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

static int failures = 0;

static void check(bool ok, const char *what, const char *order) {
    printf("%s %s (%s)\n", ok ? "ok  " : "FAIL", what, order);
    if (!ok) failures++;
}

/* ---- kernels ---- */

#define THREADS 128

/* Each block sums its THREADS values: stores, barrier, tree. */
__global__ void block_sum(const float *x, float *sums) {
    __shared__ float partial[THREADS];
    unsigned t = threadIdx.x;
    partial[t] = x[blockIdx.x * THREADS + t];
    __syncthreads();
    for (unsigned stride = THREADS / 2; stride > 0; stride /= 2) {
        if (t < stride) partial[t] += partial[t + stride];
        __syncthreads();
    }
    if (t == 0) sums[blockIdx.x] = partial[0];
}

/* Planted bug: no barrier between the stores and the tree. */
__global__ void block_sum_missing_barrier(const float *x, float *sums) {
    __shared__ float partial[THREADS];
    unsigned t = threadIdx.x;
    partial[t] = x[blockIdx.x * THREADS + t];
    for (unsigned stride = THREADS / 2; stride > 0; stride /= 2) {
        if (t < stride) partial[t] += partial[t + stride];
        __syncthreads();
    }
    if (t == 0) sums[blockIdx.x] = partial[0];
}

/* The last thread adds every store: right with the barrier. */
__global__ void last_thread_sum(const float *x, float *sums) {
    __shared__ float values[THREADS];
    unsigned t = threadIdx.x;
    values[t] = x[blockIdx.x * THREADS + t];
    __syncthreads();
    if (t == THREADS - 1) {
        float total = 0;
        for (int i = 0; i < THREADS; i++) total += values[i];
        sums[blockIdx.x] = total;
    }
}

/* Planted bug: without the barrier, forward order still works (the last
 * thread runs last), a shuffled order does not. */
__global__ void last_thread_sum_missing_barrier(const float *x, float *sums) {
    __shared__ float values[THREADS];
    unsigned t = threadIdx.x;
    values[t] = x[blockIdx.x * THREADS + t];
    if (t == THREADS - 1) {
        float total = 0;
        for (int i = 0; i < THREADS; i++) total += values[i];
        sums[blockIdx.x] = total;
    }
}

/* Warp operations: xor and down reductions, broadcast, inclusive scan, ballot. */
__global__ void warp_ops(const int *x, int *xor_sum, int *down_sum, int *broadcast, int *scan, unsigned *ballot) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    int value = x[i];
    int a = value, b = value, s = value;
    for (int mask = 16; mask > 0; mask /= 2) a += __shfl_xor_sync(0xffffffffu, a, mask);
    for (int delta = 16; delta > 0; delta /= 2) b += __shfl_down_sync(0xffffffffu, b, delta);
    for (int delta = 1; delta < 32; delta *= 2) {
        int other = __shfl_up_sync(0xffffffffu, s, delta);
        if ((int)(threadIdx.x % 32) >= delta) s += other;
    }
    xor_sum[i] = a;
    if (threadIdx.x % 32 == 0) down_sum[i / 32] = b;
    broadcast[i] = __shfl_sync(0xffffffffu, value, 5);
    scan[i] = s;
    unsigned vote = __ballot_sync(0xffffffffu, value % 2 != 0);
    if (threadIdx.x % 32 == 0) ballot[i / 32] = vote;
}

/* Every thread adds into one total. */
__global__ void atomic_total(const float *x, float *total, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) atomicAdd(total, x[i]);
}

/* Reverses each block's chunk through dynamic shared memory. */
__global__ void reverse_chunks(const double *x, double *y) {
    TC_DYNAMIC_SHARED(double, chunk);
    unsigned t = threadIdx.x, n = blockDim.x;
    chunk[t] = x[blockIdx.x * n + t];
    __syncthreads();
    y[blockIdx.x * n + t] = chunk[n - 1 - t];
}

/* Planted misuses of barriers. */
__global__ void barrier_in_branch(float *x) {
    if (threadIdx.x < 16) __syncthreads();
    x[threadIdx.x] = 1;
}

__global__ void barrier_after_return(float *x, int n) {
    int i = threadIdx.x;
    if (i >= n) return;
    x[i] = 1;
    __syncthreads();
}

__global__ void barrier_per_branch(float *x) {
    if (threadIdx.x % 2) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    x[threadIdx.x] = 1;
}

__global__ void read_past_end(const float *x, float *y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) y[0] += x[i]; /* the planted bug: <= */
}

/* ---- host side ---- */

template <typename T> static T *to_device(const std::vector<T> &host) {
    T *device = NULL;
    cudaMalloc(&device, host.size() * sizeof(T));
    cudaMemcpy(device, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
    return device;
}

template <typename T> static std::vector<T> to_host(const T *device, size_t n) {
    std::vector<T> host(n);
    cudaMemcpy(host.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost);
    return host;
}

static std::vector<float> random_floats(size_t n, unsigned seed) {
    std::vector<float> values(n);
    srand(seed);
    for (size_t i = 0; i < n; i++) values[i] = (float)(rand() % 2001 - 1000) / 256.0f; /* sums are exact */
    return values;
}

typedef void (*sum_kernel)(const float *, float *);

/* Whether `kernel` gives every block's exact sum. */
static bool sums_match(sum_kernel kernel, const char *name, cudaStream_t stream) {
    const int blocks = 6;
    std::vector<float> x = random_floats(blocks * THREADS, 7);
    float *dx = to_device(x), *dsums = NULL;
    cudaMalloc(&dsums, blocks * sizeof(float));
    TC_LAUNCH(kernel, blocks, THREADS, 0, stream, dx, dsums);
    bool ok = cudaGetLastError() == cudaSuccess;
    std::vector<float> sums = to_host(dsums, blocks);
    for (int b = 0; b < blocks; b++) {
        float expected = 0;
        for (int i = 0; i < THREADS; i++) expected += x[b * THREADS + i];
        if (sums[b] != expected) ok = false;
    }
    cudaFree(dx);
    cudaFree(dsums);
    (void)name;
    return ok;
}

static void test_correct_kernels(cudaStream_t stream, const char *order) {
    check(sums_match(block_sum, "block_sum", stream), "shared-memory block reduction", order);
    check(sums_match(last_thread_sum, "last_thread_sum", stream), "reduction by the last thread", order);

    const int n = 4 * 64;
    std::vector<int> x(n);
    for (int i = 0; i < n; i++) x[i] = (i * 37 + 11) % 23 - 9;
    int *dx = to_device(x), *dxor, *ddown, *dbroadcast, *dscan;
    unsigned *dballot;
    cudaMalloc(&dxor, n * sizeof(int));
    cudaMalloc(&ddown, n / 32 * sizeof(int));
    cudaMalloc(&dbroadcast, n * sizeof(int));
    cudaMalloc(&dscan, n * sizeof(int));
    cudaMalloc(&dballot, n / 32 * sizeof(unsigned));
    TC_LAUNCH(warp_ops, 4, 64, 0, stream, dx, dxor, ddown, dbroadcast, dscan, dballot);
    bool launched = cudaGetLastError() == cudaSuccess;
    std::vector<int> xor_sum = to_host(dxor, n), down_sum = to_host(ddown, n / 32), broadcast = to_host(dbroadcast, n),
                     scan = to_host(dscan, n);
    std::vector<unsigned> ballot = to_host(dballot, n / 32);
    bool reductions = launched, broadcasts = launched, scans = launched, votes = launched;
    for (int w = 0; w < n / 32; w++) {
        int total = 0, running = 0;
        unsigned odd = 0;
        for (int l = 0; l < 32; l++) {
            total += x[w * 32 + l];
            if (x[w * 32 + l] % 2 != 0) odd |= 1u << l;
        }
        for (int l = 0; l < 32; l++) {
            running += x[w * 32 + l];
            if (xor_sum[w * 32 + l] != total) reductions = false;
            if (broadcast[w * 32 + l] != x[w * 32 + 5]) broadcasts = false;
            if (scan[w * 32 + l] != running) scans = false;
        }
        if (down_sum[w] != total) reductions = false;
        if (ballot[w] != odd) votes = false;
    }
    check(reductions, "warp reductions (__shfl_xor_sync, __shfl_down_sync)", order);
    check(broadcasts, "warp broadcast (__shfl_sync)", order);
    check(scans, "warp inclusive scan (__shfl_up_sync)", order);
    check(votes, "warp vote (__ballot_sync)", order);
    cudaFree(dx);
    cudaFree(dxor);
    cudaFree(ddown);
    cudaFree(dbroadcast);
    cudaFree(dscan);
    cudaFree(dballot);

    std::vector<float> values = random_floats(1000, 3);
    float *dvalues = to_device(values), *dtotal;
    cudaMalloc(&dtotal, sizeof(float));
    cudaMemset(dtotal, 0, sizeof(float));
    TC_LAUNCH(atomic_total, 8, 128, 0, stream, dvalues, dtotal, 1000);
    float expected = 0;
    for (float v : values) expected += v;
    check(cudaGetLastError() == cudaSuccess && to_host(dtotal, 1)[0] == expected, "atomicAdd across blocks", order);
    cudaFree(dvalues);
    cudaFree(dtotal);

    std::vector<double> chunks(3 * 96);
    for (size_t i = 0; i < chunks.size(); i++) chunks[i] = (double)i;
    double *dchunks = to_device(chunks), *dreversed;
    cudaMalloc(&dreversed, chunks.size() * sizeof(double));
    TC_LAUNCH(reverse_chunks, 3, 96, 96 * sizeof(double), stream, dchunks, dreversed);
    std::vector<double> reversed = to_host(dreversed, chunks.size());
    bool reverse_ok = cudaGetLastError() == cudaSuccess;
    for (int b = 0; b < 3; b++)
        for (int t = 0; t < 96; t++)
            if (reversed[b * 96 + t] != chunks[b * 96 + 95 - t]) reverse_ok = false;
    check(reverse_ok, "dynamic shared memory", order);
    cudaFree(dchunks);
    cudaFree(dreversed);
}

#ifdef TC_CUDA_EMULATION

/* Launches kernel and expects a launch error whose message names `words`. */
template <typename... Args>
static bool launch_fails(void (*kernel)(Args...), dim3 grid, dim3 block, cudaStream_t stream, cudaError_t expected,
                         const char *words, Args... args) {
    tc_emulation::launch("planted", kernel, grid, block, 0, stream, args...);
    cudaError_t error = cudaGetLastError();
    const char *detail = tc_emulation::last_error_detail();
    bool ok = error == expected && strstr(detail, words) != NULL;
    if (!ok) printf("     got %s: %s\n", cudaGetErrorName(error), detail);
    tc_emulation::clear_error_detail();
    return ok;
}

static void test_planted_bugs(cudaStream_t forward, cudaStream_t shuffled) {
    check(!sums_match(block_sum_missing_barrier, "block_sum_missing_barrier", forward),
          "missing __syncthreads in a tree reduction is caught", "forward");
    check(!sums_match(block_sum_missing_barrier, "block_sum_missing_barrier", shuffled),
          "missing __syncthreads in a tree reduction is caught", "shuffled");
    check(sums_match(last_thread_sum_missing_barrier, "last_thread_sum_missing_barrier", forward),
          "missing __syncthreads before the last thread's sum is hidden", "forward");
    check(!sums_match(last_thread_sum_missing_barrier, "last_thread_sum_missing_barrier", shuffled),
          "missing __syncthreads before the last thread's sum is caught", "shuffled");

    float *buffer;
    cudaMalloc(&buffer, 64 * sizeof(float));
    cudaStream_t streams[2] = {forward, shuffled};
    const char *names[2] = {"forward", "shuffled"};
    for (int s = 0; s < 2; s++) {
        check(launch_fails(barrier_in_branch, dim3(1), dim3(64), streams[s], cudaErrorLaunchFailure,
                           "divergent __syncthreads", buffer),
              "__syncthreads inside a branch fails the launch", names[s]);
        check(launch_fails(barrier_after_return, dim3(1), dim3(64), streams[s], cudaErrorLaunchFailure,
                           "divergent __syncthreads", buffer, 40),
              "__syncthreads after an early return fails the launch", names[s]);
        check(launch_fails(barrier_per_branch, dim3(1), dim3(64), streams[s], cudaErrorLaunchFailure,
                           "different __syncthreads", buffer),
              "threads at different __syncthreads fail the launch", names[s]);
        check(launch_fails(barrier_in_branch, dim3(1), dim3(2048), streams[s], cudaErrorInvalidConfiguration,
                           "invalid launch configuration", buffer),
              "a block of 2048 threads is refused", names[s]);
        check(launch_fails(barrier_in_branch, dim3(0), dim3(32), streams[s], cudaErrorInvalidConfiguration,
                           "invalid launch configuration", buffer),
              "an empty grid is refused", names[s]);
    }
    cudaFree(buffer);
}

/* Naive column-major reference. */
static void reference_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
                           const float *b, int ldb, float beta, float *c, int ldc) {
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double total = 0;
            for (int p = 0; p < k; p++)
                total += (double)(ta ? a[p + i * lda] : a[i + p * lda]) * (tb ? b[j + p * ldb] : b[p + j * ldb]);
            c[i + j * ldc] = (float)(alpha * total + beta * c[i + j * ldc]);
        }
}

static void test_cublas_shim(void) {
    cublasHandle_t handle;
    check(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS, "cublasCreate", "-");
    const int m = 5, n = 4, k = 3, batch = 2;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = ta ? k + 1 : m + 2, ldb = tb ? n : k, ldc = m + 1;
            int a_cols = ta ? m : k, b_cols = tb ? k : n;
            std::vector<float> a = random_floats((size_t)lda * a_cols * batch, 11),
                               b = random_floats((size_t)ldb * b_cols * batch, 12),
                               c = random_floats((size_t)ldc * n * batch, 13);
            std::vector<float> expected = c;
            float alpha = 0.5f, beta = 2.0f;
            for (int i = 0; i < batch; i++)
                reference_gemm(ta, tb, m, n, k, alpha, a.data() + i * lda * a_cols, lda, b.data() + i * ldb * b_cols,
                               ldb, beta, expected.data() + i * ldc * n, ldc);
            cublasStatus_t status = cublasGemmStridedBatchedEx(
                handle, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, a.data(),
                CUDA_R_32F, lda, (long long)lda * a_cols, b.data(), CUDA_R_32F, ldb, (long long)ldb * b_cols, &beta,
                c.data(), CUDA_R_32F, ldc, (long long)ldc * n, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            double worst = 0;
            for (size_t i = 0; i < c.size(); i++) worst = fmax(worst, fabs(c[i] - expected[i]));
            char what[96];
            snprintf(what, sizeof what, "cuBLAS shim gemm (transa %d, transb %d)", ta, tb);
            check(status == CUBLAS_STATUS_SUCCESS && worst < 1e-4, what, "-");
        }
    float one = 1, data[64] = {0};
    check(cublasGemmStridedBatchedEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, data, CUDA_R_32F, 3, 0, data,
                                     CUDA_R_32F, 4, 0, &one, data, CUDA_R_32F, 4, 0, 1, CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_INVALID_VALUE,
          "cuBLAS shim refuses lda < m", "-");
    check(cublasGemmStridedBatchedEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, data, CUDA_R_32F, 4, 0, data,
                                     CUDA_R_32F, 4, 0, &one, data, CUDA_R_32F, 4, 0, 1, CUBLAS_COMPUTE_64F,
                                     CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_NOT_SUPPORTED,
          "cuBLAS shim refuses float32 data with a float64 compute type", "-");
    cublasDestroy(handle);
}

/* Values n/16 with |n| <= 64 are exact in both 16-bit formats; products of
 * two and sums of a few are exact in float32, so a 16-bit result must be
 * the one rounding of the exact value. */
static uint16_t exact_16bit(cudaDataType type, int value) {
    float x = (float)value / 16.0f;
    return type == CUDA_R_16BF ? tc_float_to_bfloat16(x) : tc_float_to_float16(x);
}

/* GemmEx or (batch > 1) GemmStridedBatchedEx on 16-bit A and B into a C of
 * c_type, against the exact product rounded once; C's rows past m (the gap
 * of ldc) must keep their bits. */
static bool gemm_16bit_matches(cublasHandle_t handle, cudaDataType type, cudaDataType c_type, bool ta, bool tb,
                               int batch) {
    const int m = 5, n = 4, k = 7;
    int lda = ta ? k + 1 : m + 2, ldb = tb ? n + 3 : k, ldc = m + 1;
    int a_cols = ta ? m : k, b_cols = tb ? k : n;
    long long stride_a = (long long)lda * a_cols, stride_b = (long long)ldb * b_cols, stride_c = (long long)ldc * n;
    std::vector<uint16_t> a((size_t)stride_a * batch), b((size_t)stride_b * batch);
    std::vector<int> a_values(a.size()), b_values(b.size()), c_values((size_t)stride_c * batch);
    srand(21);
    for (size_t i = 0; i < a.size(); i++) a[i] = exact_16bit(type, a_values[i] = rand() % 129 - 64);
    for (size_t i = 0; i < b.size(); i++) b[i] = exact_16bit(type, b_values[i] = rand() % 129 - 64);
    for (size_t i = 0; i < c_values.size(); i++) c_values[i] = rand() % 129 - 64;
    bool wide = c_type == CUDA_R_32F;
    std::vector<float> c32(c_values.size());
    std::vector<uint16_t> c16(c_values.size());
    const uint16_t gap = 0x1234;
    for (size_t i = 0; i < c_values.size(); i++) {
        c32[i] = (float)c_values[i] / 16.0f;
        c16[i] = (int)(i % ldc) < m ? exact_16bit(type, c_values[i]) : gap;
    }
    float alpha = 2.0f, beta = 0.5f;
    void *c = wide ? (void *)c32.data() : (void *)c16.data();
    cublasOperation_t op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasStatus_t status =
        batch == 1 ? cublasGemmEx(handle, op_a, op_b, m, n, k, &alpha, a.data(), type, lda, b.data(), type, ldb,
                                  &beta, c, c_type, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT_TENSOR_OP)
                   : cublasGemmStridedBatchedEx(handle, op_a, op_b, m, n, k, &alpha, a.data(), type, lda, stride_a,
                                                b.data(), type, ldb, stride_b, &beta, c, c_type, ldc, stride_c, batch,
                                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (status != CUBLAS_STATUS_SUCCESS) return false;
    for (int matrix = 0; matrix < batch; matrix++)
        for (int j = 0; j < n; j++)
            for (int i = 0; i < ldc; i++) {
                size_t at = (size_t)(matrix * stride_c + (long long)j * ldc + i);
                if (i >= m) {
                    if (!wide && c16[at] != gap) return false;
                    continue;
                }
                long long total = 0; /* in units of 2^-8 */
                for (int p = 0; p < k; p++) {
                    size_t ai = (size_t)(matrix * stride_a + (ta ? (long long)i * lda + p : (long long)p * lda + i));
                    size_t bi = (size_t)(matrix * stride_b + (tb ? (long long)p * ldb + j : (long long)j * ldb + p));
                    total += (long long)a_values[ai] * b_values[bi];
                }
                float exact = (float)(2.0 * (double)total / 256.0 + 0.5 * c_values[at] / 16.0);
                uint16_t rounded = type == CUDA_R_16BF ? tc_float_to_bfloat16(exact) : tc_float_to_float16(exact);
                if (wide ? c32[at] != exact : c16[at] != rounded) return false;
            }
    return true;
}

/* The bf16 product of [1, 2^-8, 2^-8, 0] and ones into a bf16 C, with or
 * without reduced-precision reductions allowed: the exact sum 1 + 2^-7 is a
 * bf16, but the first half's 1 + 2^-8 (half of bf16's ulp at 1) rounds to 1
 * (a tie, to even), so a split-K reduction in bf16 gives 1. */
static float reduction_result(cublasHandle_t handle, bool disallow) {
    uint16_t quarter_ulp = tc_float_to_bfloat16(0x1p-8f), b[4], c = 0;
    uint16_t a[4] = {exact_16bit(CUDA_R_16BF, 16), quarter_ulp, quarter_ulp, 0};
    for (int i = 0; i < 4; i++) b[i] = exact_16bit(CUDA_R_16BF, 16);
    float one = 1, zero = 0;
    int mode = CUBLAS_DEFAULT_MATH | (disallow ? CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION : 0);
    if (cublasSetMathMode(handle, (cublasMath_t)mode) != CUBLAS_STATUS_SUCCESS ||
        cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 4, &one, a, CUDA_R_16BF, 1, b, CUDA_R_16BF, 4, &zero, &c,
                     CUDA_R_16BF, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
        return -1;
    return tc_bfloat16_to_float(c);
}

static void test_cublas_16bit(void) {
    cublasHandle_t handle;
    cublasCreate(&handle);
    check(reduction_result(handle, false) == 1.0f && reduction_result(handle, true) == 1.0f + 0x1p-7f,
          "cuBLAS shim reduces split-K halves in bf16 unless CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION", "-");
    check(cublasSetMathMode(handle, (cublasMath_t)(CUBLAS_TF32_TENSOR_OP_MATH |
                                                   CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)) ==
                  CUBLAS_STATUS_SUCCESS &&
              cublasSetMathMode(handle, (cublasMath_t)5) == CUBLAS_STATUS_INVALID_VALUE,
          "cuBLAS shim takes a math mode with the reduction flag and refuses an unknown one", "-");
    cublasSetMathMode(handle, CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION); /* exact results below */
    const cudaDataType types[2] = {CUDA_R_16BF, CUDA_R_16F};
    for (int t = 0; t < 2; t++)
        for (int wide = 0; wide < 2; wide++)
            for (int transposes = 0; transposes < 4; transposes++)
                for (int batch = 1; batch <= 3; batch += 2) {
                    bool ta = transposes & 1, tb = transposes >> 1;
                    char what[128];
                    snprintf(what, sizeof what, "cuBLAS shim %s on %s into %s (transa %d, transb %d, batch %d)",
                             batch == 1 ? "GemmEx" : "GemmStridedBatchedEx", t ? "CUDA_R_16F" : "CUDA_R_16BF",
                             wide ? "CUDA_R_32F" : "the same", ta, tb, batch);
                    check(gemm_16bit_matches(handle, types[t], wide ? CUDA_R_32F : types[t], ta, tb, batch), what,
                          "-");
                }
    float one = 1;
    uint16_t data[64] = {0};
    struct {
        cudaDataType a, b, c;
        cublasComputeType_t compute;
        const char *what;
    } refused[] = {
        {CUDA_R_16BF, CUDA_R_16F, CUDA_R_32F, CUBLAS_COMPUTE_32F, "bf16 A with an f16 B"},
        {CUDA_R_16BF, CUDA_R_16BF, CUDA_R_16F, CUBLAS_COMPUTE_32F, "bf16 operands into an f16 C"},
        {CUDA_R_16F, CUDA_R_16F, CUDA_R_64F, CUBLAS_COMPUTE_32F, "f16 operands into a float64 C"},
        {CUDA_R_16BF, CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32, "bf16 operands with a TF32 compute type"},
        {CUDA_R_16F, CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_16F, "f16 operands with a 16-bit compute type"},
        {CUDA_R_32F, CUDA_R_32F, CUDA_R_16BF, CUBLAS_COMPUTE_32F, "float32 operands into a bf16 C"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char what[128];
        snprintf(what, sizeof what, "cuBLAS shim refuses %s (CUBLAS_STATUS_NOT_SUPPORTED)", refused[i].what);
        check(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, data, refused[i].a, 4, data, refused[i].b,
                           4, &one, data, refused[i].c, 4, refused[i].compute,
                           CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_NOT_SUPPORTED,
              what, "-");
    }
    cublasStatus_t short_lda = cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, 4, 4, 4, &one, data, CUDA_R_16BF, 3,
                                            data, CUDA_R_16BF, 4, &one, data, CUDA_R_32F, 4, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT);
    check(short_lda == CUBLAS_STATUS_INVALID_VALUE, "cuBLAS shim refuses a bf16 lda < k for a transposed A", "-");
    cublasDestroy(handle);
}

static int out_of_bounds(void) {
    std::vector<float> x(100, 1.0f);
    float *dx = to_device(x), *dy;
    cudaMalloc(&dy, sizeof(float));
    TC_LAUNCH(read_past_end, 1, 128, 0, (cudaStream_t)0, dx, dy, 100);
    printf("read_past_end finished: the out-of-bounds read went unnoticed\n");
    return 0;
}

/* A host read of device memory: fine on emulated memory unless the fence
 * (TRICYCLE_CUDA_EMULATION_FENCE=1) is on, a crash or garbage on a GPU. */
static int host_reads_device(void) {
    std::vector<float> x(100, 1.0f);
    float *dx = to_device(x);
    volatile float value = dx[3];
    printf("the host read %g from device memory unnoticed\n", (double)value);
    return 0;
}

#endif

int main(int argc, char **argv) {
#ifdef TC_CUDA_EMULATION
    if (argc > 1 && strcmp(argv[1], "out-of-bounds") == 0) return out_of_bounds();
    if (argc > 1 && strcmp(argv[1], "host-reads-device") == 0) return host_reads_device();
    cudaStream_t forward, shuffled;
    cudaStreamCreate(&forward);
    cudaStreamCreate(&shuffled);
    tc_emulation::set_thread_order(forward, tc_emulation::ORDER_FORWARD, 0);
    tc_emulation::set_thread_order(shuffled, tc_emulation::ORDER_SHUFFLED, 12345);
    test_correct_kernels(forward, "forward");
    test_correct_kernels(shuffled, "shuffled");
    test_planted_bugs(forward, shuffled);
    test_cublas_shim();
    test_cublas_16bit();
    cudaStreamDestroy(forward);
    cudaStreamDestroy(shuffled);
#else
    (void)argc;
    (void)argv;
    cudaStream_t stream;
    cudaStreamCreate(&stream);
    test_correct_kernels(stream, "gpu");
    cudaStreamDestroy(stream);
#endif
    printf("%s: %d failure%s\n", failures ? "FAILED" : "passed", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
