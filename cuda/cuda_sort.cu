/*
 * cuda_sort.cu: sort and topk along the last dim of a contiguous tensor,
 * the twin of src/cpu/cpu_sort.c, with the same keys (ops_math.h) and the
 * same total order: by key, then by position. One kernel writes each
 * element's key; then each element's place in its row is its rank, the
 * count of the row's elements that go before it, counted by a block
 * against tiles of the row's keys staged in shared memory. O(n^2) compares
 * per row of n, all in parallel: simple and exact, fast for rows up to a
 * few thousand; longer rows want a merge or radix sort.
 */
#include "cuda_kernels.h"

TC_SORT_KEY_HELPERS(static __device__ __forceinline__)

static __device__ __forceinline__ uint64_t sort_key(float v) { return tc_sort_key_of_double(v); }
static __device__ __forceinline__ uint64_t sort_key(double v) { return tc_sort_key_of_double(v); }
static __device__ __forceinline__ uint64_t sort_key(int32_t v) { return tc_sort_key_of_int64(v); }
static __device__ __forceinline__ uint64_t sort_key(int64_t v) { return tc_sort_key_of_int64(v); }
static __device__ __forceinline__ uint64_t sort_key(uint8_t v) { return v; }

/* Keys compared per tile, one per thread of the block. */
#define SORT_TILE CUDA_BLOCK

template <typename T> __global__ void sort_keys_kernel(const T *x, uint64_t flip, uint64_t *keys, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        keys[i] = sort_key(x[i]) ^ flip;
}

/* Blocks of SORT_TILE threads, each block a run of SORT_TILE positions of one row; every thread of a block
 * reaches every barrier (the loops are uniform over the block). */
__global__ void sort_rank_kernel(const uint64_t *keys, int64_t rows, int64_t n, int64_t k, int64_t *indices) {
    __shared__ uint64_t tile[SORT_TILE];
    int64_t runs = (n + SORT_TILE - 1) / SORT_TILE;
    for (int64_t run = blockIdx.x; run < rows * runs; run += gridDim.x) {
        int64_t row = run / runs, i = (run % runs) * SORT_TILE + threadIdx.x;
        const uint64_t *row_keys = keys + row * n;
        uint64_t key = i < n ? row_keys[i] : 0;
        int64_t rank = 0;
        for (int64_t start = 0; start < n; start += SORT_TILE) {
            __syncthreads(); /* the previous tile is done with */
            if (start + threadIdx.x < n) tile[threadIdx.x] = row_keys[start + threadIdx.x];
            __syncthreads();
            int64_t count = n - start < SORT_TILE ? n - start : SORT_TILE;
            for (int64_t j = 0; j < count; j++) {
                uint64_t other = tile[j];
                rank += other < key || (other == key && start + j < i);
            }
        }
        if (i < n && rank < k) indices[row * k + rank] = i;
    }
}

tc_status cuda_sort(const tc_tensor *x, bool descending, tc_tensor *indices) {
    tc_context *ctx = x->ctx;
    int64_t total = tc_tensor_numel(x), n = x->shape[x->ndim - 1], k = indices->shape[indices->ndim - 1];
    int64_t rows = total / n;
    size_t bytes = sizeof(uint64_t) * (size_t)total;
    uint64_t *keys = static_cast<uint64_t *>(cuda_scratch_allocate(ctx, bytes));
    if (!keys) return TC_ERROR_MEMORY;
    uint64_t flip = descending ? ~0ull : 0;
    bool known = cuda_dispatch_all(x->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(sort_keys_kernel<T>, cuda_blocks_for(total), CUDA_BLOCK, 0, cuda_stream_of(ctx),
                  static_cast<const T *>(x->storage->data) + x->offset, flip, keys, total);
    });
    tc_status status = known ? cuda_check_launch(ctx, "sort")
                             : tc_fail(ctx, TC_ERROR_DTYPE, "sort: dtype %s is not supported", tc_dtype_name(x->dtype));
    if (status == TC_OK) {
        int64_t runs = rows * ((n + SORT_TILE - 1) / SORT_TILE);
        unsigned blocks = runs > 65535 ? 65535u : (unsigned)runs;
        TC_LAUNCH(sort_rank_kernel, blocks, SORT_TILE, 0, cuda_stream_of(ctx), keys, rows, n, k,
                  static_cast<int64_t *>(indices->storage->data) + indices->offset);
        status = cuda_check_launch(ctx, "sort");
    }
    cuda_scratch_release(ctx, keys, bytes);
    return status;
}
