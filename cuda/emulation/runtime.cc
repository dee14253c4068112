/*
 * runtime.cc: the CUDA runtime calls the backend makes, over host memory.
 * One emulated device; device pointers are host pointers (device_memory.cc).
 */
#include "emulation_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <new>

namespace tc_emulation {

namespace {

thread_local cudaError_t last_error = cudaSuccess;
thread_local char last_detail[1024];

/* TRICYCLE_CUDA_EMULATION_ORDER: "forward" (default), "shuffled" or "shuffled:SEED". */
void order_from_environment(tc_emulation_stream *stream) {
    stream->order = ORDER_FORWARD;
    stream->seed = 0;
    const char *text = getenv("TRICYCLE_CUDA_EMULATION_ORDER");
    if (!text || strncmp(text, "shuffled", 8) != 0) return;
    stream->order = ORDER_SHUFFLED;
    stream->seed = text[8] == ':' ? strtoull(text + 9, nullptr, 10) : 1;
}

} /* namespace */

void set_error(cudaError_t error, const char *format, ...) {
    last_error = error;
    va_list args;
    va_start(args, format);
    vsnprintf(last_detail, sizeof last_detail, format, args);
    va_end(args);
}

const char *last_error_detail() { return last_detail; }

void clear_error_detail() { last_detail[0] = '\0'; }

void set_thread_order(cudaStream_t stream, thread_order order, uint64_t seed) {
    stream->order = order;
    stream->seed = seed;
}

} /* namespace tc_emulation */

using tc_emulation::set_error;

cudaError_t cudaMalloc(void **pointer, size_t bytes) {
    *pointer = nullptr;
    if (bytes == 0) return cudaSuccess;
    *pointer = tc_emulation::device_allocate(bytes);
    if (!*pointer) {
        set_error(cudaErrorMemoryAllocation, "cudaMalloc: out of memory for %zu bytes", bytes);
        return cudaErrorMemoryAllocation;
    }
    return cudaSuccess;
}

cudaError_t cudaFree(void *pointer) {
    tc_emulation::device_free(pointer);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    (void)kind;
    tc_emulation::device_work work;
    if (bytes) memcpy(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
    (void)stream;
    return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemset(void *dst, int value, size_t bytes) {
    tc_emulation::device_work work;
    if (bytes) memset(dst, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t stream) {
    (void)stream;
    return cudaMemset(dst, value, bytes);
}

cudaError_t cudaStreamCreate(cudaStream_t *stream) { return cudaStreamCreateWithFlags(stream, 0); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags) {
    (void)flags;
    tc_emulation_stream *s = new (std::nothrow) tc_emulation_stream();
    if (!s) return cudaErrorMemoryAllocation;
    tc_emulation::order_from_environment(s);
    *stream = s;
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    if (!stream) return cudaSuccess;
    tc_emulation::release_stacks(stream);
    delete stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    (void)stream;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

cudaError_t cudaGetLastError(void) {
    cudaError_t error = tc_emulation::last_error;
    tc_emulation::last_error = cudaSuccess;
    return error;
}

cudaError_t cudaPeekAtLastError(void) { return tc_emulation::last_error; }

const char *cudaGetErrorName(cudaError_t error) {
    switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoKernelImageForDevice: return "cudaErrorNoKernelImageForDevice";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t error) {
    switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoKernelImageForDevice: return "no kernel image is available for execution on the device";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    }
    return "unknown error";
}

cudaError_t cudaGetDeviceCount(int *count) {
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device) {
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidDevice; }

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *properties, int device) {
    if (device != 0) return cudaErrorInvalidDevice;
    memset(properties, 0, sizeof *properties);
    snprintf(properties->name, sizeof properties->name, "tricycle CUDA emulation (CPU)");
    properties->totalGlobalMem = (size_t)16 << 30;
    properties->sharedMemPerBlock = 48 * 1024;
    properties->warpSize = 32;
    properties->maxThreadsPerBlock = 1024;
    properties->maxThreadsDim[0] = properties->maxThreadsDim[1] = 1024;
    properties->maxThreadsDim[2] = 64;
    properties->maxGridSize[0] = 2147483647;
    properties->maxGridSize[1] = properties->maxGridSize[2] = 65535;
    properties->multiProcessorCount = 4;
    properties->major = 9;
    properties->minor = 0;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *version) {
    *version = 13000;
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *version) {
    *version = 13000;
    return cudaSuccess;
}
