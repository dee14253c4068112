/*
 * emulation_internal.h: what the emulator's own files share (streams and the
 * per-OS-thread last error); kernels never include it.
 */
#ifndef TRICYCLE_CUDA_EMULATION_INTERNAL_H
#define TRICYCLE_CUDA_EMULATION_INTERNAL_H

#include "cuda_emulation.h"

#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define TC_EMULATION_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TC_EMULATION_ASAN 1
#endif
#endif

/* A stream: the thread order of its launches and the fiber stacks it reuses. */
struct tc_emulation_stream {
    tc_emulation::thread_order order;
    uint64_t seed;
    uint64_t launches;
    std::vector<char *> stacks; /* mmap'd, each with a guard page below */
};

namespace tc_emulation {

/* Records error (and a formatted explanation) as this OS thread's last error. */
void set_error(cudaError_t error, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* Frees a stream's cached fiber stacks. */
void release_stacks(tc_emulation_stream *stream);

/* Device buffers (device_memory.cc): 256-byte aligned; NULL when out of memory. */
void *device_allocate(size_t bytes);
void device_free(void *pointer);

/* Held while the emulated device works on device memory (a kernel, a copy, a
 * memset, a GEMM): with the fence enabled, the only time that memory can be
 * touched. Nests. */
struct device_work {
    device_work();
    ~device_work();
    device_work(const device_work &) = delete;
    device_work &operator=(const device_work &) = delete;
};

} /* namespace tc_emulation */

#endif
