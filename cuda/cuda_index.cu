/*
 * cuda_index.cu: gather / scatter-add and index-select / index-add, each
 * forward beside its backward: the twin of src/cpu/cpu_index.c. Operands
 * are contiguous; indices are int64 and checked against the indexed dim
 * first (one small kernel and a read-back), so a bad index fails the call
 * with the CPU's message and nothing is written. The backward kernels add
 * with atomics, since an index may repeat.
 */
#include "cuda_kernels.h"

/* ---- kernels ---- */

/* *first = the lowest position of an id outside [0, limit) (left as is,
 * all ones, when there is none): the id the CPU backend reports. */
__global__ void check_ids_kernel(const int64_t *ids, int64_t n, int64_t limit, unsigned long long *first) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t id = ids[i];
        if (id < 0 || id >= limit) atomicMin(first, (unsigned long long)i);
    }
}

/* Element i of index (row-major over `where`'s shape) addresses x at
 * offset(where, i) + ids[i] * dim_stride: `where` carries x's strides with
 * 0 on the indexed dim. Elements are moved as same-sized words. */
template <typename W>
__global__ void gather_kernel(const W *x, cuda_strided where, int64_t dim_stride, const int64_t *ids, W *out,
                              int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = x[cuda_offset(where, i) + ids[i] * dim_stride];
}

template <typename T>
__global__ void scatter_add_kernel(T *grad_x, cuda_strided where, int64_t dim_stride, const int64_t *ids,
                                   const T *grad, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        atomicAdd(&grad_x[cuda_offset(where, i) + ids[i] * dim_stride], grad[i]);
}

/* out [outer, count, inner] = x [outer, size_in, inner] at ids along the middle. */
template <typename W>
__global__ void index_select_kernel(const W *x, const int64_t *ids, W *out, int64_t count, int64_t size_in,
                                    int64_t inner, int64_t n) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t k = e % inner, row = e / inner, j = row % count, o = row / count;
        out[e] = x[(o * size_in + ids[j]) * inner + k];
    }
}

template <typename T>
__global__ void index_add_kernel(T *grad_x, const int64_t *ids, const T *grad, int64_t count, int64_t size_in,
                                 int64_t inner, int64_t n) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t k = e % inner, row = e / inner, j = row % count, o = row / count;
        atomicAdd(&grad_x[(o * size_in + ids[j]) * inner + k], grad[e]);
    }
}

/* ---- launchers ---- */

template <typename T> static T *data_at(const tc_tensor *t) {
    return static_cast<T *>(t->storage->data) + t->offset;
}

/* Fails like the CPU backend when an id of index lies outside x's dim,
 * naming the first such id. */
static tc_status check_ids(const tc_tensor *x, const char *function, int dim, const tc_tensor *index) {
    tc_context *ctx = x->ctx;
    int64_t n = tc_tensor_numel(index);
    if (n == 0) return TC_OK;
    unsigned long long *first =
        static_cast<unsigned long long *>(cuda_scratch_allocate(ctx, sizeof(unsigned long long)));
    if (!first) return TC_ERROR_MEMORY;
    unsigned long long position = 0;
    tc_status status = cuda_check(ctx, cudaMemsetAsync(first, 0xff, sizeof *first, cuda_stream_of(ctx)), function);
    if (status == TC_OK) {
        TC_LAUNCH(check_ids_kernel, cuda_blocks_for(n), CUDA_BLOCK, 0, cuda_stream_of(ctx), data_at<int64_t>(index),
                  n, x->shape[dim], first);
        status = cuda_check_launch(ctx, function);
    }
    if (status == TC_OK) status = cuda_copy_to_host(ctx, &position, first, sizeof position);
    cuda_scratch_release(ctx, first, sizeof(unsigned long long));
    if (status != TC_OK || position == ~0ull) return status;
    int64_t id = 0;
    TC_TRY(cuda_copy_to_host(ctx, &id, data_at<int64_t>(index) + position, sizeof id));
    return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: index %lld is out of range for dim %d of size %lld (shape %s)",
                   function, (long long)id, dim + 1, (long long)x->shape[dim], TC_SHAPE(x));
}

/* index's shape with x's strides, 0 on dim (see gather_kernel). */
static cuda_strided gather_view(const tc_tensor *x, int dim, const tc_tensor *index) {
    cuda_strided where = cuda_strided_of(index);
    for (int d = 0; d < index->ndim; d++) where.strides[d] = d == dim ? 0 : x->strides[d];
    where.offset = x->offset;
    return where;
}

/* Calls f(type_tag<W>()) with W a word as wide as one element of dtype
 * (2 bytes: bfloat16 and float16, moved as their bits). */
template <typename F> static bool dispatch_word(tc_dtype dtype, F &&f) {
    switch (tc_dtype_size(dtype)) {
    case 1: f(type_tag<uint8_t>()); return true;
    case 2: f(type_tag<uint16_t>()); return true;
    case 4: f(type_tag<uint32_t>()); return true;
    case 8: f(type_tag<uint64_t>()); return true;
    default: return false;
    }
}

tc_status cuda_gather(const tc_tensor *x, int dim, const tc_tensor *index, tc_tensor *out) {
    TC_TRY(check_ids(x, "gather", dim, index));
    int64_t n = tc_tensor_numel(index);
    if (n == 0) return TC_OK;
    cuda_strided where = gather_view(x, dim, index);
    bool known = dispatch_word(x->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type W;
        TC_LAUNCH(gather_kernel<W>, cuda_blocks_for(n), CUDA_BLOCK, 0, cuda_stream_of(x->ctx),
                  static_cast<const W *>(x->storage->data), where, x->strides[dim], data_at<int64_t>(index),
                  data_at<W>(out), n);
    });
    if (!known) return tc_fail(x->ctx, TC_ERROR_DTYPE, "gather: unknown dtype");
    return cuda_check_launch(x->ctx, "gather");
}

tc_status cuda_scatter_add(tc_tensor *grad_x, int dim, const tc_tensor *index, const tc_tensor *grad) {
    TC_TRY(check_ids(grad_x, "gather backward", dim, index));
    int64_t n = tc_tensor_numel(index);
    if (n == 0) return TC_OK;
    cuda_strided where = gather_view(grad_x, dim, index);
    bool known = cuda_dispatch_float(grad_x->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(scatter_add_kernel<T>, cuda_blocks_for(n), CUDA_BLOCK, 0, cuda_stream_of(grad_x->ctx),
                  static_cast<T *>(grad_x->storage->data), where, grad_x->strides[dim], data_at<int64_t>(index),
                  data_at<T>(grad), n);
    });
    if (!known)
        return tc_fail(grad_x->ctx, TC_ERROR_DTYPE, "gather backward: dtype %s is not supported (float32 or float64)",
                       tc_dtype_name(grad_x->dtype));
    return cuda_check_launch(grad_x->ctx, "gather backward");
}

static void split_at(const tc_tensor *t, int dim, int64_t *outer, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < dim; d++) *outer *= t->shape[d];
    for (int d = dim + 1; d < t->ndim; d++) *inner *= t->shape[d];
}

tc_status cuda_index_select(const tc_tensor *x, int dim, const tc_tensor *index, tc_tensor *out) {
    TC_TRY(check_ids(x, "index_select", dim, index));
    int64_t outer, inner, count = tc_tensor_numel(index);
    split_at(x, dim, &outer, &inner);
    int64_t n = outer * count * inner;
    if (n == 0) return TC_OK;
    bool known = dispatch_word(x->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type W;
        TC_LAUNCH(index_select_kernel<W>, cuda_blocks_for(n), CUDA_BLOCK, 0, cuda_stream_of(x->ctx), data_at<W>(x),
                  data_at<int64_t>(index), data_at<W>(out), count, x->shape[dim], inner, n);
    });
    if (!known) return tc_fail(x->ctx, TC_ERROR_DTYPE, "index_select: unknown dtype");
    return cuda_check_launch(x->ctx, "index_select");
}

tc_status cuda_index_add(tc_tensor *grad_x, int dim, const tc_tensor *index, const tc_tensor *grad) {
    TC_TRY(check_ids(grad_x, "index_select backward", dim, index));
    int64_t outer, inner, count = tc_tensor_numel(index);
    split_at(grad_x, dim, &outer, &inner);
    int64_t n = outer * count * inner;
    if (n == 0) return TC_OK;
    bool known = cuda_dispatch_float(grad_x->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(index_add_kernel<T>, cuda_blocks_for(n), CUDA_BLOCK, 0, cuda_stream_of(grad_x->ctx),
                  data_at<T>(grad_x), data_at<int64_t>(index), data_at<T>(grad), count, grad_x->shape[dim], inner, n);
    });
    if (!known)
        return tc_fail(grad_x->ctx, TC_ERROR_DTYPE,
                       "index_select backward: dtype %s is not supported (float32 or float64)",
                       tc_dtype_name(grad_x->dtype));
    return cuda_check_launch(grad_x->ctx, "index_select backward");
}
