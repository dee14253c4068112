/*
 * cuda_emulation.h: the part of CUDA that the backend's .cu sources use,
 * for compiling them as C++ and running them on the CPU (TC_CUDA_EMULATION).
 * It exists to check kernels on machines without a GPU: indexing, bounds
 * (device memory is host memory, so AddressSanitizer sees it), barriers,
 * shared memory, warp shuffles, reductions and launch arguments.
 *
 * Execution model: the blocks of a grid run one after another on the calling
 * thread; the threads of a block are fibers that run until they reach a
 * barrier (__syncthreads, a warp shuffle or vote) or return. The order in
 * which the fibers of a block run between barriers is forward (thread 0
 * first) or shuffled (a fresh permutation per phase, from a seed), chosen per
 * stream: a missing barrier gives a result that depends on the order.
 * Barrier misuse (threads waiting at different __syncthreads, or some
 * threads waiting while others have returned) fails the launch with
 * cudaErrorLaunchFailure and a message (tc_emulation::last_error_detail()).
 *
 * It does not model the GPU's memory model, timing or rounding: shared and
 * global memory are coherent at every instant, atomics cannot interleave,
 * and floating point is the host's (no TF32, no fused-multiply-add choices).
 */
#ifndef TRICYCLE_CUDA_EMULATION_H
#define TRICYCLE_CUDA_EMULATION_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <tuple>
#include <type_traits>
#include <utility>

/* ---- qualifiers ---- */

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
/* One instance per OS thread; blocks run one at a time on it, so a static
 * shared array is shared by exactly the threads of the running block. */
#define __shared__ static thread_local

/* ---- built-in vector types and variables ---- */

struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
};

static constexpr int warpSize = 32;

namespace tc_emulation {

/* Where the running fiber is in its grid. */
struct thread_position {
    uint3 thread_index;
    uint3 block_index;
    dim3 block_dim;
    dim3 grid_dim;
};

/* The position of the fiber running on this OS thread (valid inside a kernel). */
const thread_position &position();

/* Barriers: block-wide, and warp-wide exchanges (every lane of the warp that
 * exists must take part: the kernels use full masks). warp_exchange stores
 * `mine`, waits for the warp, copies every lane's value into lanes[32]
 * (0 for lanes beyond the block) and waits again. */
void sync_threads(const char *file, int line);
void warp_exchange(unsigned mask, uint64_t mine, uint64_t lanes[32], const char *what);
/* The lane of the running fiber within its warp. */
int lane_id();

/* The dynamic shared memory of the running block (`extern __shared__`). */
void *dynamic_shared();

/* A message for the last failure on this OS thread ("" when none), and
 * forgetting it once reported. */
const char *last_error_detail();
void clear_error_detail();

template <typename T> static inline uint64_t to_bits(T value) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "warp exchanges carry at most 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, &value, sizeof value);
    return bits;
}

template <typename T> static inline T from_bits(uint64_t bits) {
    T value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

/* Shuffle: lanes_of[source] where source is computed as CUDA does; a source
 * outside the caller's segment of `width` lanes gives the caller's value. */
template <typename T> static inline T shuffle(unsigned mask, T value, int kind, int argument, int width) {
    uint64_t lanes[32];
    uint64_t mine = to_bits(value);
    warp_exchange(mask, mine, lanes, "warp shuffle");
    int lane = lane_id();
    int segment = lane / width * width;
    int source;
    switch (kind) {
    case 0: source = segment + ((argument % width) + width) % width; break;           /* __shfl_sync */
    case 1: source = lane - segment < argument ? lane : lane - argument; break;        /* up */
    case 2: source = lane - segment + argument >= width ? lane : lane + argument; break; /* down */
    default: source = lane ^ argument; if (source / width != lane / width) source = lane; break; /* xor */
    }
    return from_bits<T>(lanes[source & 31]);
}

} /* namespace tc_emulation */

#define threadIdx (tc_emulation::position().thread_index)
#define blockIdx (tc_emulation::position().block_index)
#define blockDim (tc_emulation::position().block_dim)
#define gridDim (tc_emulation::position().grid_dim)

#define __syncthreads() tc_emulation::sync_threads(__FILE__, __LINE__)

static inline void __syncwarp(unsigned mask = 0xffffffffu) {
    uint64_t lanes[32];
    tc_emulation::warp_exchange(mask, 0, lanes, "__syncwarp");
}

template <typename T> static inline T __shfl_sync(unsigned mask, T value, int source_lane, int width = 32) {
    return tc_emulation::shuffle(mask, value, 0, source_lane, width);
}
template <typename T> static inline T __shfl_up_sync(unsigned mask, T value, unsigned delta, int width = 32) {
    return tc_emulation::shuffle(mask, value, 1, (int)delta, width);
}
template <typename T> static inline T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = 32) {
    return tc_emulation::shuffle(mask, value, 2, (int)delta, width);
}
template <typename T> static inline T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
    return tc_emulation::shuffle(mask, value, 3, lane_mask, width);
}

static inline unsigned __ballot_sync(unsigned mask, int predicate) {
    uint64_t lanes[32];
    tc_emulation::warp_exchange(mask, predicate != 0, lanes, "__ballot_sync");
    unsigned ballot = 0;
    for (int i = 0; i < 32; i++)
        if (lanes[i] && (mask >> i & 1u)) ballot |= 1u << i;
    return ballot;
}
static inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
static inline int __all_sync(unsigned mask, int predicate) {
    return __ballot_sync(mask, !predicate) == 0;
}

/* ---- atomics: fibers switch only at barriers, so plain updates are atomic ---- */

template <typename T> static inline T tc_emulation_atomic_add(T *address, T value) {
    T old = *address;
    *address = old + value;
    return old;
}
static inline float atomicAdd(float *address, float value) { return tc_emulation_atomic_add(address, value); }
static inline double atomicAdd(double *address, double value) { return tc_emulation_atomic_add(address, value); }
static inline int atomicAdd(int *address, int value) { return tc_emulation_atomic_add(address, value); }
static inline unsigned atomicAdd(unsigned *address, unsigned value) { return tc_emulation_atomic_add(address, value); }
static inline unsigned long long atomicAdd(unsigned long long *address, unsigned long long value) {
    return tc_emulation_atomic_add(address, value);
}
static inline int atomicMax(int *address, int value) {
    int old = *address;
    if (value > old) *address = value;
    return old;
}
static inline int atomicMin(int *address, int value) {
    int old = *address;
    if (value < old) *address = value;
    return old;
}
static inline unsigned long long atomicMin(unsigned long long *address, unsigned long long value) {
    unsigned long long old = *address;
    if (value < old) *address = value;
    return old;
}
template <typename T> static inline T atomicExch(T *address, T value) {
    T old = *address;
    *address = value;
    return old;
}
template <typename T> static inline T atomicCAS(T *address, T compare, T value) {
    T old = *address;
    if (old == compare) *address = value;
    return old;
}

/* ---- device math the host lacks (glibc has __expf and __logf) ---- */

static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float __fdividef(float x, float y) { return x / y; }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
static inline int __float_as_int(float x) { return tc_emulation::from_bits<int>(tc_emulation::to_bits(x)); }
static inline float __int_as_float(int x) { return tc_emulation::from_bits<float>(tc_emulation::to_bits(x)); }
template <typename T> static inline T __ldg(const T *address) { return *address; }

static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline long min(long a, long b) { return a < b ? a : b; }
static inline long max(long a, long b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }

/* ---- runtime API (device memory is host memory) ---- */

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorNoKernelImageForDevice = 209,
    cudaErrorLaunchFailure = 719
} cudaError_t;

typedef enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
} cudaMemcpyKind;

typedef struct tc_emulation_stream *cudaStream_t;
#define cudaStreamNonBlocking 0x01u

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    int warpSize;
    int maxThreadsPerBlock;
    int maxThreadsDim[3];
    int maxGridSize[3];
    int multiProcessorCount;
    int major;
    int minor;
};

cudaError_t cudaMalloc(void **pointer, size_t bytes);
template <typename T> static inline cudaError_t cudaMalloc(T **pointer, size_t bytes) {
    return cudaMalloc((void **)pointer, bytes);
}
cudaError_t cudaFree(void *pointer);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = 0);
cudaError_t cudaMemset(void *dst, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t stream = 0);
cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t error);
const char *cudaGetErrorName(cudaError_t error);
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *properties, int device);
cudaError_t cudaRuntimeGetVersion(int *version);
cudaError_t cudaDriverGetVersion(int *version);

namespace tc_emulation {

/* The order the fibers of a block run in, per stream. */
enum thread_order { ORDER_FORWARD = 0, ORDER_SHUFFLED = 1 };
/* Sets a stream's order; streams start with TRICYCLE_CUDA_EMULATION_ORDER
 * ("forward", "shuffled" or "shuffled:SEED"), forward when unset. */
void set_thread_order(cudaStream_t stream, thread_order order, uint64_t seed);

/* Runs body(closure) once per thread of the grid as described above; sets
 * the OS thread's last error on failure. */
typedef void (*thread_body)(void *closure);
void run_grid(const char *kernel_name, dim3 grid, dim3 block, size_t dynamic_shared_bytes, cudaStream_t stream,
              thread_body body, void *closure);

/* kernel<<<grid, block, shared, stream>>>(args...): the arguments are
 * converted to the kernel's parameter types once, as a call would, and every
 * thread gets its own copy. */
template <typename... Params, typename... Args>
static inline void launch(const char *kernel_name, void (*kernel)(Params...), dim3 grid, dim3 block,
                          size_t dynamic_shared_bytes, cudaStream_t stream, Args &&...args) {
    static_assert(sizeof...(Params) == sizeof...(Args), "kernel launched with the wrong number of arguments");
    typedef std::tuple<typename std::decay<Params>::type...> arguments;
    struct closure_type {
        void (*kernel)(Params...);
        arguments values;
    } closure{kernel, arguments(std::forward<Args>(args)...)};
    run_grid(kernel_name, grid, block, dynamic_shared_bytes, stream, [](void *pointer) {
        closure_type *c = static_cast<closure_type *>(pointer);
        arguments copy = c->values;
        std::apply(c->kernel, copy);
    }, &closure);
}

} /* namespace tc_emulation */

#endif
