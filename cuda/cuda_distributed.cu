/*
 * cuda_distributed.cu: collectives on device memory through NCCL, for the
 * engine's src/distributed.c (the table tc_cuda_collectives in
 * src/internal.h, found with dlsym under TC_CUDA_COLLECTIVES_ENTRY_POINT).
 *
 * NCCL is opened with dlopen the first time a context asks for it
 * (libnccl.so.2: the toolkit's, found through this library's run path, or
 * the system's), so the backend loads and runs without it; the reason it
 * cannot be opened is the error. NCCL's own declarations are repeated here
 * (their values are NCCL's stable ABI) and checked against nccl.h when the
 * toolkit has it.
 *
 * A communicator has a stream of its own. An operation waits for the work
 * already queued on the context's stream (an event), runs on the
 * communicator's stream, and records an event that `test` polls; compute
 * queued meanwhile on the context's stream runs alongside. A finished
 * event makes the context's stream wait for it before it is freed.
 *
 * The emulated build (TC_CUDA_EMULATION) cannot run NCCL, which needs
 * NVIDIA GPUs: every call fails saying so.
 */
#include "cuda_backend.h"

#include <dlfcn.h>
#include <new>
#include <stdio.h>

#if !defined(TC_CUDA_EMULATION) && defined(__has_include)
#if __has_include(<nccl.h>)
#include <nccl.h>
#define TC_HAVE_NCCL_HEADER 1
#endif
#endif

namespace {

/* NCCL's ABI, as nccl.h declares it. */
typedef struct nccl_comm_opaque *nccl_comm;
typedef struct {
    char internal[TC_NCCL_ID_BYTES];
} nccl_unique_id;
typedef int nccl_result;
enum { NCCL_OK = 0 };
enum { NCCL_INT8 = 0, NCCL_UINT8 = 1, NCCL_INT32 = 2, NCCL_INT64 = 4, NCCL_FLOAT32 = 7, NCCL_FLOAT64 = 8 };
enum { NCCL_SUM = 0, NCCL_MAX = 2, NCCL_AVG = 4 };
/* ncclAvg came with NCCL 2.10. */
const int NCCL_AVG_VERSION = 21000;

#ifdef TC_HAVE_NCCL_HEADER
static_assert(sizeof(nccl_unique_id) == sizeof(ncclUniqueId), "ncclUniqueId");
static_assert(NCCL_UINT8 == (int)ncclUint8 && NCCL_INT32 == (int)ncclInt32 && NCCL_INT64 == (int)ncclInt64 &&
                  NCCL_FLOAT32 == (int)ncclFloat32 && NCCL_FLOAT64 == (int)ncclFloat64,
              "ncclDataType_t");
static_assert(NCCL_SUM == (int)ncclSum && NCCL_MAX == (int)ncclMax && NCCL_AVG == (int)ncclAvg, "ncclRedOp_t");
static_assert(NCCL_OK == (int)ncclSuccess, "ncclResult_t");
#endif

#ifndef TC_CUDA_EMULATION
int nccl_type(tc_dtype dtype) {
    switch (dtype) {
    case TC_FLOAT32: return NCCL_FLOAT32;
    case TC_FLOAT64: return NCCL_FLOAT64;
    case TC_INT32: return NCCL_INT32;
    case TC_INT64: return NCCL_INT64;
    default: return NCCL_UINT8; /* uint8 and bool */
    }
}

int nccl_op(tc_collective_op op) {
    return op == TC_COLLECTIVE_AVG ? NCCL_AVG : op == TC_COLLECTIVE_MAX ? NCCL_MAX : NCCL_SUM;
}
#endif

} // namespace

#ifdef TC_CUDA_EMULATION

static tc_status emulated(tc_context *ctx) {
    return tc_fail(ctx, TC_ERROR_UNSUPPORTED,
                   "NCCL cannot run in the emulated CUDA backend (it needs NVIDIA GPUs; the emulation runs the "
                   "kernels on the CPU)");
}

static tc_status available(tc_context *ctx) { return emulated(ctx); }
static tc_status unique_id(tc_context *ctx, unsigned char *) { return emulated(ctx); }
static tc_status comm_new(tc_context *ctx, const unsigned char *, int, int, void **) { return emulated(ctx); }
static void comm_free(tc_context *, void *, bool) {}
static tc_status all_reduce(tc_context *ctx, void *, void *, int64_t, tc_dtype, tc_collective_op, void **) {
    return emulated(ctx);
}
static tc_status broadcast(tc_context *ctx, void *, void *, int64_t, tc_dtype, int, void **) { return emulated(ctx); }
static tc_status all_gather(tc_context *ctx, void *, const void *, void *, const int64_t *, tc_dtype, void **) {
    return emulated(ctx);
}
static tc_status reduce_scatter(tc_context *ctx, void *, const void *, void *, const int64_t *, tc_dtype,
                                tc_collective_op, void **) {
    return emulated(ctx);
}
static tc_status test(tc_context *ctx, void *, void **, bool *) { return emulated(ctx); }

#else

namespace {

struct nccl_library {
    bool loaded;
    char reason[256];
    int version;
    nccl_result (*get_unique_id)(nccl_unique_id *);
    nccl_result (*comm_init_rank)(nccl_comm *, int, nccl_unique_id, int);
    nccl_result (*comm_destroy)(nccl_comm);
    nccl_result (*comm_abort)(nccl_comm);
    nccl_result (*comm_get_async_error)(nccl_comm, nccl_result *);
    const char *(*get_error_string)(nccl_result);
    nccl_result (*get_version)(int *);
    nccl_result (*all_reduce)(const void *, void *, size_t, int, int, nccl_comm, cudaStream_t);
    nccl_result (*broadcast)(const void *, void *, size_t, int, int, nccl_comm, cudaStream_t);
    nccl_result (*reduce)(const void *, void *, size_t, int, int, int, nccl_comm, cudaStream_t);
    nccl_result (*all_gather)(const void *, void *, size_t, int, nccl_comm, cudaStream_t);
    nccl_result (*reduce_scatter)(const void *, void *, size_t, int, int, nccl_comm, cudaStream_t);
    nccl_result (*group_start)(void);
    nccl_result (*group_end)(void);
};

template <typename F> bool find(void *handle, const char *name, F *function, nccl_library *library) {
    *reinterpret_cast<void **>(function) = dlsym(handle, name);
    if (*function) return true;
    snprintf(library->reason, sizeof library->reason, "libnccl.so.2 has no %s", name);
    return false;
}

/* Opened once per process (the library is never closed: communicators of
 * any context may use it). */
nccl_library load_nccl() {
    nccl_library library;
    memset(&library, 0, sizeof library);
    void *handle = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!handle) {
        const char *error = dlerror();
        snprintf(library.reason, sizeof library.reason,
                 "NCCL cannot be loaded (%s); it comes with the CUDA toolkit or the libnccl2 package",
                 error ? error : "libnccl.so.2");
        return library;
    }
    bool ok = find(handle, "ncclGetUniqueId", &library.get_unique_id, &library) &&
              find(handle, "ncclCommInitRank", &library.comm_init_rank, &library) &&
              find(handle, "ncclCommDestroy", &library.comm_destroy, &library) &&
              find(handle, "ncclCommAbort", &library.comm_abort, &library) &&
              find(handle, "ncclCommGetAsyncError", &library.comm_get_async_error, &library) &&
              find(handle, "ncclGetErrorString", &library.get_error_string, &library) &&
              find(handle, "ncclGetVersion", &library.get_version, &library) &&
              find(handle, "ncclAllReduce", &library.all_reduce, &library) &&
              find(handle, "ncclBroadcast", &library.broadcast, &library) &&
              find(handle, "ncclReduce", &library.reduce, &library) &&
              find(handle, "ncclAllGather", &library.all_gather, &library) &&
              find(handle, "ncclReduceScatter", &library.reduce_scatter, &library) &&
              find(handle, "ncclGroupStart", &library.group_start, &library) &&
              find(handle, "ncclGroupEnd", &library.group_end, &library);
    if (!ok) return library;
    if (library.get_version(&library.version) != NCCL_OK || library.version < NCCL_AVG_VERSION) {
        snprintf(library.reason, sizeof library.reason, "NCCL %d is too old: 2.10 or later is needed (ncclAvg)",
                 library.version);
        return library;
    }
    library.loaded = true;
    return library;
}

const nccl_library &nccl() {
    static const nccl_library library = load_nccl(); /* C++ makes this once, thread-safely */
    return library;
}

struct communicator {
    nccl_comm comm;
    cudaStream_t stream;
    int world, rank;
};

tc_status nccl_check(tc_context *ctx, nccl_result result, const char *what) {
    if (result == NCCL_OK) return TC_OK;
    return tc_fail(ctx, TC_ERROR_STATE, "%s: NCCL failed: %s (%d)", what, nccl().get_error_string(result), result);
}

tc_status nccl_available(tc_context *ctx) {
    if (nccl().loaded) return TC_OK;
    return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "%s", nccl().reason);
}

/* The communicator's stream waits for the work already on the context's. */
tc_status follow_context(tc_context *ctx, communicator *c) {
    cudaEvent_t ready;
    TC_TRY(cuda_check(ctx, cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "NCCL collective"));
    cudaError_t error = cudaEventRecord(ready, cuda_stream_of(ctx));
    if (error == cudaSuccess) error = cudaStreamWaitEvent(c->stream, ready, 0);
    cudaEventDestroy(ready); /* freed once it has passed */
    return cuda_check(ctx, error, "NCCL collective");
}

tc_status record_done(tc_context *ctx, communicator *c, void **event) {
    cudaEvent_t done;
    TC_TRY(cuda_check(ctx, cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "NCCL collective"));
    cudaError_t error = cudaEventRecord(done, c->stream);
    if (error != cudaSuccess) {
        cudaEventDestroy(done);
        return cuda_check(ctx, error, "NCCL collective");
    }
    *event = done;
    return TC_OK;
}

/* A whole NCCL call (or group) between follow_context and record_done. */
template <typename Body> tc_status enqueue(tc_context *ctx, void *comm, const char *what, void **event, Body body) {
    TC_TRY(nccl_available(ctx));
    communicator *c = static_cast<communicator *>(comm);
    TC_TRY(follow_context(ctx, c));
    TC_TRY(nccl_check(ctx, body(c), what));
    return record_done(ctx, c, event);
}

bool equal_counts(const int64_t *counts, int world) {
    for (int r = 1; r < world; r++)
        if (counts[r] != counts[0]) return false;
    return true;
}

} // namespace

static tc_status available(tc_context *ctx) { return nccl_available(ctx); }

static tc_status unique_id(tc_context *ctx, unsigned char *id) {
    TC_TRY(nccl_available(ctx));
    nccl_unique_id unique;
    TC_TRY(nccl_check(ctx, nccl().get_unique_id(&unique), "ncclGetUniqueId"));
    memcpy(id, unique.internal, sizeof unique.internal);
    return TC_OK;
}

static tc_status comm_new(tc_context *ctx, const unsigned char *id, int world, int rank, void **out) {
    TC_TRY(nccl_available(ctx));
    communicator *c = new (std::nothrow) communicator();
    if (!c) return tc_fail(ctx, TC_ERROR_MEMORY, "NCCL: out of memory for a communicator");
    tc_status status = cuda_check(ctx, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "NCCL stream");
    if (status != TC_OK) {
        delete c;
        return status;
    }
    c->world = world;
    c->rank = rank;
    nccl_unique_id unique;
    memcpy(unique.internal, id, sizeof unique.internal);
    status = nccl_check(ctx, nccl().comm_init_rank(&c->comm, world, unique, rank), "ncclCommInitRank");
    if (status != TC_OK) {
        cudaStreamDestroy(c->stream);
        delete c;
        return status;
    }
    *out = c;
    return TC_OK;
}

static void comm_free(tc_context *ctx, void *comm, bool abort) {
    (void)ctx;
    communicator *c = static_cast<communicator *>(comm);
    if (!c) return;
    if (abort) {
        nccl().comm_abort(c->comm);
    } else {
        cudaStreamSynchronize(c->stream);
        nccl().comm_destroy(c->comm);
    }
    cudaStreamDestroy(c->stream);
    delete c;
}

static tc_status all_reduce(tc_context *ctx, void *comm, void *data, int64_t count, tc_dtype dtype,
                            tc_collective_op op, void **event) {
    return enqueue(ctx, comm, "ncclAllReduce", event, [&](communicator *c) {
        return nccl().all_reduce(data, data, (size_t)count, nccl_type(dtype), nccl_op(op), c->comm, c->stream);
    });
}

static tc_status broadcast(tc_context *ctx, void *comm, void *data, int64_t count, tc_dtype dtype, int root,
                           void **event) {
    return enqueue(ctx, comm, "ncclBroadcast", event, [&](communicator *c) {
        return nccl().broadcast(data, data, (size_t)count, nccl_type(dtype), root, c->comm, c->stream);
    });
}

/* Equal counts: one ncclAllGather; otherwise each rank's segment is
 * broadcast from it, in one group. */
static tc_status all_gather(tc_context *ctx, void *comm, const void *send, void *recv, const int64_t *counts,
                            tc_dtype dtype, void **event) {
    size_t element = tc_dtype_size(dtype);
    return enqueue(ctx, comm, "ncclAllGather", event, [&](communicator *c) {
        if (equal_counts(counts, c->world))
            return nccl().all_gather(send, recv, (size_t)counts[0], nccl_type(dtype), c->comm, c->stream);
        nccl_result result = nccl().group_start();
        size_t displacement = 0;
        for (int r = 0; r < c->world && result == NCCL_OK; r++) {
            char *segment = static_cast<char *>(recv) + displacement * element;
            result = nccl().broadcast(r == c->rank ? send : segment, segment, (size_t)counts[r], nccl_type(dtype), r,
                                      c->comm, c->stream);
            displacement += (size_t)counts[r];
        }
        nccl_result ended = nccl().group_end();
        return result != NCCL_OK ? result : ended;
    });
}

/* Equal counts: one ncclReduceScatter; otherwise each segment is reduced
 * onto its rank, in one group. */
static tc_status reduce_scatter(tc_context *ctx, void *comm, const void *send, void *recv, const int64_t *counts,
                                tc_dtype dtype, tc_collective_op op, void **event) {
    size_t element = tc_dtype_size(dtype);
    return enqueue(ctx, comm, "ncclReduceScatter", event, [&](communicator *c) {
        if (equal_counts(counts, c->world))
            return nccl().reduce_scatter(send, recv, (size_t)counts[0], nccl_type(dtype), nccl_op(op), c->comm,
                                         c->stream);
        nccl_result result = nccl().group_start();
        size_t displacement = 0;
        for (int r = 0; r < c->world && result == NCCL_OK; r++) {
            const char *segment = static_cast<const char *>(send) + displacement * element;
            result = nccl().reduce(segment, recv, (size_t)counts[r], nccl_type(dtype), nccl_op(op), r, c->comm,
                                   c->stream);
            displacement += (size_t)counts[r];
        }
        nccl_result ended = nccl().group_end();
        return result != NCCL_OK ? result : ended;
    });
}

static tc_status test(tc_context *ctx, void *comm, void **event, bool *done) {
    communicator *c = static_cast<communicator *>(comm);
    cudaEvent_t e = static_cast<cudaEvent_t>(*event);
    *done = false;
    cudaError_t error = cudaEventQuery(e);
    if (error == cudaErrorNotReady) {
        cudaGetLastError();
        nccl_result async = NCCL_OK;
        nccl().comm_get_async_error(c->comm, &async);
        return nccl_check(ctx, async, "NCCL collective");
    }
    if (error == cudaSuccess) error = cudaStreamWaitEvent(cuda_stream_of(ctx), e, 0);
    cudaEventDestroy(e);
    *event = NULL;
    *done = true;
    return cuda_check(ctx, error, "NCCL collective");
}

#endif

static const tc_cuda_collectives collectives = {
    TC_BACKEND_ABI, available,  unique_id,      comm_new, comm_free,
    all_reduce,     broadcast,  all_gather,     reduce_scatter, test,
};

extern "C" __attribute__((visibility("default"))) const tc_cuda_collectives *tricycle_cuda_collectives(void) {
    return &collectives;
}
