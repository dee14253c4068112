/*
 * distributed_glue.h: the table of MPI calls that libtricycle_mpi.so (built
 * from src/mpi/mpi_glue.c against Open MPI's mpi.h) hands to the engine.
 * The engine never links MPI: src/distributed.c opens the library with
 * dlopen when a context joins a world of processes, and calls MPI only
 * through this table, so that a program that never asks for it loads
 * nothing of MPI.
 *
 * Every call returns 0, or another value with a message (MPI's own text,
 * naming the call) written into error[TC_MPI_ERROR_SIZE]. Counts are MPI's
 * int; the engine checks that sizes fit before calling. Communicators and
 * requests are opaque handles owned by the library.
 */
#ifndef TRICYCLE_DISTRIBUTED_GLUE_H
#define TRICYCLE_DISTRIBUTED_GLUE_H

#include "tricycle.h"

#define TC_MPI_ENTRY_POINT "tricycle_mpi_glue"
#define TC_MPI_ERROR_SIZE 256
/* Raised whenever the table changes, so an old library is refused. */
#define TC_MPI_GLUE_VERSION 1

typedef struct tc_mpi_glue {
    int version;
    /* Starts MPI for this process on first use (MPI_Init_thread, asking
     * for MPI_THREAD_MULTIPLE) and counts the users (*users, this one
     * included); *multiple says whether several threads may call MPI at
     * once. */
    int (*start)(bool *multiple, int *users, char *error);
    /* The last user finalises MPI. */
    int (*stop)(char *error);
    /* A new communicator over every process (errors returned, never fatal). */
    int (*comm_new)(void **comm, int *rank, int *size, char *error);
    void (*comm_free)(void **comm);
    /* Blocking: every rank's `bytes` bytes of send, in rank order, into recv
     * (for setting up: process ids, host names). */
    int (*exchange)(void *comm, const void *send, int bytes, void *recv, char *error);
    /* Non-blocking collectives on dtype elements; *request is completed by
     * test. op is TC_COLLECTIVE_SUM or TC_COLLECTIVE_MAX. send == NULL
     * reduces recv in place. */
    int (*all_reduce)(void *comm, const void *send, void *recv, int count, tc_dtype dtype, tc_collective_op op,
                      void **request, char *error);
    /* Rank r gets counts[r] elements of the reduction of every rank's send
     * (the segments of send in rank order) into recv. */
    int (*reduce_scatter)(void *comm, const void *send, void *recv, const int *counts, tc_dtype dtype,
                          tc_collective_op op, void **request, char *error);
    /* Every rank's count elements of send into recv at displacements[r]
     * (counts[r] of them from rank r). */
    int (*all_gather)(void *comm, const void *send, int count, void *recv, const int *counts,
                      const int *displacements, tc_dtype dtype, void **request, char *error);
    int (*broadcast)(void *comm, void *data, int count, tc_dtype dtype, int root, void **request, char *error);
    int (*barrier)(void *comm, void **request, char *error);
    /* Point to point, for the notices ranks send each other. */
    int (*send)(void *comm, const void *data, int bytes, int destination, void **request, char *error);
    int (*receive_any)(void *comm, void *data, int bytes, void **request, char *error);
    /* *done when the request completed (then it is freed and set to NULL;
     * *source is the sender of a receive). */
    int (*test)(void **request, bool *done, int *source, char *error);
    /* Cancels a pending receive and frees it. */
    void (*cancel)(void **request);
    /* This machine's name (for telling which ranks share it). */
    int (*host_name)(char *name, int size, char *error);
} tc_mpi_glue;

typedef const tc_mpi_glue *(*tc_mpi_entry_fn)(void);

#endif
