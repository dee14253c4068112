/*
 * cuda_common.h: included first by every .cu file of the CUDA backend.
 *
 * Under nvcc it brings in the CUDA runtime; compiled as plain C++ with
 * -DTC_CUDA_EMULATION it brings in the CPU emulation of the same API
 * (emulation/cuda_emulation.h), so one source serves both. Kernels use
 * standard CUDA (__global__, threadIdx, static __shared__ arrays,
 * __syncthreads, full-mask warp shuffles, atomicAdd, expf...) and launch
 * only through TC_LAUNCH, and take dynamic shared memory only through
 * TC_DYNAMIC_SHARED.
 */
#ifndef TRICYCLE_CUDA_COMMON_H
#define TRICYCLE_CUDA_COMMON_H

#ifdef TC_CUDA_EMULATION
#include "emulation/cuda_emulation.h"
#else
#include <cuda_runtime.h>
#endif

#include <stdint.h>
#include <string.h>

extern "C" {
#include "internal.h"

/* The engine functions this library calls go through the table the engine
 * handed over when it loaded the library (src/cuda_loader.c): the library
 * links no engine code, and one that calls an engine function not listed
 * here fails to link (-z defs). */
const tc_engine_functions *cuda_engine(void);
}
#define tc_fail(...) (cuda_engine()->fail(__VA_ARGS__))
#define tc_dtype_name(...) (cuda_engine()->dtype_name(__VA_ARGS__))
#define tc_dtype_size(...) (cuda_engine()->dtype_size(__VA_ARGS__))
#define tc_dtype_is_floating(...) (cuda_engine()->dtype_is_floating(__VA_ARGS__))
#define tc_unary_op_name(...) (cuda_engine()->unary_op_name(__VA_ARGS__))
#define tc_binary_op_name(...) (cuda_engine()->binary_op_name(__VA_ARGS__))
#define tc_tensor_numel(...) (cuda_engine()->tensor_numel(__VA_ARGS__))
#define tc_tensor_data_at_offset(...) (cuda_engine()->tensor_data_at_offset(__VA_ARGS__))
#define tc_same_shape(...) (cuda_engine()->same_shape(__VA_ARGS__))
#define tc_tensor_is_contiguous(...) (cuda_engine()->tensor_is_contiguous(__VA_ARGS__))
#define tc_shape_text_of(...) (cuda_engine()->shape_text_of(__VA_ARGS__))
#define tc_device_allocate(...) (cuda_engine()->device_allocate(__VA_ARGS__))
#define tc_device_release(...) (cuda_engine()->device_release(__VA_ARGS__))

/* Kernels run on the context's stream (cuda_stream_of in cuda_backend.h). */
typedef cudaStream_t cuda_stream;

/* kernel<<<grid, block, shared_bytes, stream>>>(args...). A kernel template
 * with several parameters goes through a pointer first (a comma would split
 * the macro's argument): `auto k = kernel<float, 4>; TC_LAUNCH(k, ...)`. */
#ifdef TC_CUDA_EMULATION
#define TC_LAUNCH(kernel, grid, block, shared_bytes, stream, ...)                                                  \
    tc_emulation::launch(#kernel, kernel, dim3(grid), dim3(block), (size_t)(shared_bytes), stream, __VA_ARGS__)
#else
#define TC_LAUNCH(kernel, grid, block, shared_bytes, stream, ...)                                                  \
    kernel<<<grid, block, shared_bytes, stream>>>(__VA_ARGS__)
#endif

/* `type *name`: the launch's dynamic shared memory (16-byte aligned). */
#ifdef TC_CUDA_EMULATION
#define TC_DYNAMIC_SHARED(type, name) type *name = static_cast<type *>(tc_emulation::dynamic_shared())
#else
#define TC_DYNAMIC_SHARED(type, name)                                                                              \
    extern __shared__ __align__(16) unsigned char tc_dynamic_shared_bytes[];                                      \
    type *name = reinterpret_cast<type *>(tc_dynamic_shared_bytes)
#endif

/* A tensor's layout for a kernel, passed by value: element `i` (row-major
 * over shape) of the tensor is data[offset + sum_d index_d * strides[d]],
 * where data is t->storage->data (the storage base, not the view's start). */
typedef struct cuda_strided {
    int ndim;
    int64_t shape[TC_MAX_DIMS];
    int64_t strides[TC_MAX_DIMS];
    int64_t offset;
} cuda_strided;

/* The layout of t as is (no coalescing). */
static inline cuda_strided cuda_strided_of(const tc_tensor *t) {
    cuda_strided view;
    memset(&view, 0, sizeof view);
    view.ndim = t->ndim;
    view.offset = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        view.shape[d] = t->shape[d];
        view.strides[d] = t->strides[d];
    }
    return view;
}

#endif
