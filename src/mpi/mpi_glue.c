/*
 * mpi_glue.c: libtricycle_mpi.so, the engine's only contact with MPI
 * (distributed_glue.h describes the table). Built against Open MPI's mpi.h
 * when it is installed; the engine opens it with dlopen only when a context
 * joins a world of processes.
 *
 * MPI itself is process-wide: one MPI_Init_thread per process, one
 * MPI_Finalize. The count of contexts using it is therefore this library's
 * own process-wide state (guarded by a mutex); everything else a
 * communicator needs lives in the engine's per-context state.
 *
 * Communicators are returned with MPI_ERRORS_RETURN, so that a failed call
 * comes back as a message instead of ending the process.
 */
#include "distributed_glue.h"

#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_mutex_t users_lock = PTHREAD_MUTEX_INITIALIZER;
static int users;

static int failed(int code, const char *call, char *error) {
    if (code == MPI_SUCCESS) return 0;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) snprintf(text, sizeof text, "error code %d", code);
    snprintf(error, TC_MPI_ERROR_SIZE, "%s failed: %.200s", call, text);
    return 1;
}

static MPI_Datatype datatype_of(tc_dtype dtype) {
    switch (dtype) {
    case TC_FLOAT32: return MPI_FLOAT;
    case TC_FLOAT64: return MPI_DOUBLE;
    case TC_INT32: return MPI_INT32_T;
    case TC_INT64: return MPI_INT64_T;
    default: return MPI_UINT8_T; /* uint8 and bool */
    }
}

static MPI_Op op_of(tc_collective_op op) { return op == TC_COLLECTIVE_MAX ? MPI_MAX : MPI_SUM; }

static MPI_Comm comm_of(void *comm) { return *(MPI_Comm *)comm; }

/* A heap request, since MPI_Request is an int in some MPIs, a pointer in others. */
static int new_request(void **request, char *error) {
    MPI_Request *r = malloc(sizeof *r);
    if (!r) {
        snprintf(error, TC_MPI_ERROR_SIZE, "out of memory for an MPI request");
        return 1;
    }
    *r = MPI_REQUEST_NULL;
    *request = r;
    return 0;
}

/* Frees the request after a failed start. */
static int started(int code, const char *call, void **request, char *error) {
    if (code == MPI_SUCCESS) return 0;
    free(*request);
    *request = NULL;
    return failed(code, call, error);
}

static int glue_start(bool *multiple, int *count, char *error) {
    pthread_mutex_lock(&users_lock);
    int initialized = 0, finalized = 0, code = MPI_SUCCESS;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (finalized) {
        pthread_mutex_unlock(&users_lock);
        snprintf(error, TC_MPI_ERROR_SIZE, "MPI was already finalised in this process; it cannot start again");
        return 1;
    }
    int provided = MPI_THREAD_SINGLE;
    if (!initialized) code = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
    else MPI_Query_thread(&provided);
    if (code == MPI_SUCCESS) users++;
    *count = users;
    pthread_mutex_unlock(&users_lock);
    *multiple = provided == MPI_THREAD_MULTIPLE;
    return failed(code, "MPI_Init_thread", error);
}

static int glue_stop(char *error) {
    pthread_mutex_lock(&users_lock);
    int code = MPI_SUCCESS;
    if (users > 0 && --users == 0) code = MPI_Finalize();
    pthread_mutex_unlock(&users_lock);
    return failed(code, "MPI_Finalize", error);
}

static int glue_comm_new(void **comm, int *rank, int *size, char *error) {
    MPI_Comm *c = malloc(sizeof *c);
    if (!c) {
        snprintf(error, TC_MPI_ERROR_SIZE, "out of memory for a communicator");
        return 1;
    }
    int code = MPI_Comm_dup(MPI_COMM_WORLD, c);
    if (code != MPI_SUCCESS) {
        free(c);
        return failed(code, "MPI_Comm_dup", error);
    }
    MPI_Comm_set_errhandler(*c, MPI_ERRORS_RETURN);
    MPI_Comm_rank(*c, rank);
    MPI_Comm_size(*c, size);
    *comm = c;
    return 0;
}

static void glue_comm_free(void **comm) {
    if (!*comm) return;
    MPI_Comm_free((MPI_Comm *)*comm);
    free(*comm);
    *comm = NULL;
}

static int glue_exchange(void *comm, const void *send, int bytes, void *recv, char *error) {
    return failed(MPI_Allgather(send, bytes, MPI_BYTE, recv, bytes, MPI_BYTE, comm_of(comm)), "MPI_Allgather", error);
}

static int glue_all_reduce(void *comm, const void *send, void *recv, int count, tc_dtype dtype, tc_collective_op op,
                           void **request, char *error) {
    if (new_request(request, error)) return 1;
    int code = MPI_Iallreduce(send ? send : MPI_IN_PLACE, recv, count, datatype_of(dtype), op_of(op), comm_of(comm),
                              *request);
    return started(code, "MPI_Iallreduce", request, error);
}

static int glue_reduce_scatter(void *comm, const void *send, void *recv, const int *counts, tc_dtype dtype,
                               tc_collective_op op, void **request, char *error) {
    if (new_request(request, error)) return 1;
    int code = MPI_Ireduce_scatter(send, recv, counts, datatype_of(dtype), op_of(op), comm_of(comm), *request);
    return started(code, "MPI_Ireduce_scatter", request, error);
}

static int glue_all_gather(void *comm, const void *send, int count, void *recv, const int *counts,
                           const int *displacements, tc_dtype dtype, void **request, char *error) {
    if (new_request(request, error)) return 1;
    MPI_Datatype type = datatype_of(dtype);
    int code = MPI_Iallgatherv(send, count, type, recv, counts, displacements, type, comm_of(comm), *request);
    return started(code, "MPI_Iallgatherv", request, error);
}

static int glue_broadcast(void *comm, void *data, int count, tc_dtype dtype, int root, void **request,
                          char *error) {
    if (new_request(request, error)) return 1;
    int code = MPI_Ibcast(data, count, datatype_of(dtype), root, comm_of(comm), *request);
    return started(code, "MPI_Ibcast", request, error);
}

static int glue_barrier(void *comm, void **request, char *error) {
    if (new_request(request, error)) return 1;
    return started(MPI_Ibarrier(comm_of(comm), *request), "MPI_Ibarrier", request, error);
}

/* Notices travel with one tag of their own communicator. */
#define NOTICE_TAG 7

static int glue_send(void *comm, const void *data, int bytes, int destination, void **request, char *error) {
    if (new_request(request, error)) return 1;
    int code = MPI_Isend(data, bytes, MPI_BYTE, destination, NOTICE_TAG, comm_of(comm), *request);
    return started(code, "MPI_Isend", request, error);
}

static int glue_receive_any(void *comm, void *data, int bytes, void **request, char *error) {
    if (new_request(request, error)) return 1;
    int code = MPI_Irecv(data, bytes, MPI_BYTE, MPI_ANY_SOURCE, NOTICE_TAG, comm_of(comm), *request);
    return started(code, "MPI_Irecv", request, error);
}

static int glue_test(void **request, bool *done, int *source, char *error) {
    int flag = 0;
    MPI_Status status;
    int code = MPI_Test(*request, &flag, &status);
    *done = flag != 0;
    if (code != MPI_SUCCESS) return failed(code, "MPI_Test", error);
    if (*done) {
        if (source) *source = status.MPI_SOURCE;
        free(*request);
        *request = NULL;
    }
    return 0;
}

static void glue_cancel(void **request) {
    if (!*request) return;
    MPI_Request *r = *request;
    if (*r != MPI_REQUEST_NULL) {
        MPI_Cancel(r);
        MPI_Wait(r, MPI_STATUS_IGNORE);
    }
    free(r);
    *request = NULL;
}

static int glue_host_name(char *name, int size, char *error) {
    char buffer[MPI_MAX_PROCESSOR_NAME];
    int length = 0;
    if (failed(MPI_Get_processor_name(buffer, &length), "MPI_Get_processor_name", error)) return 1;
    snprintf(name, (size_t)size, "%.*s", length, buffer);
    return 0;
}

static const tc_mpi_glue glue = {
    .version = TC_MPI_GLUE_VERSION,
    .start = glue_start,
    .stop = glue_stop,
    .comm_new = glue_comm_new,
    .comm_free = glue_comm_free,
    .exchange = glue_exchange,
    .all_reduce = glue_all_reduce,
    .reduce_scatter = glue_reduce_scatter,
    .all_gather = glue_all_gather,
    .broadcast = glue_broadcast,
    .barrier = glue_barrier,
    .send = glue_send,
    .receive_any = glue_receive_any,
    .test = glue_test,
    .cancel = glue_cancel,
    .host_name = glue_host_name,
};

const tc_mpi_glue *tricycle_mpi_glue(void);
const tc_mpi_glue *tricycle_mpi_glue(void) { return &glue; }
