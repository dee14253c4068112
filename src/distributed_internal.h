/*
 * distributed_internal.h: what the two halves of tc.distributed share: the
 * world (distributed_world.c: joining, notices, watching the ranks, leaving)
 * and its collectives (distributed.c: MPI stages and NCCL).
 */
#ifndef TRICYCLE_DISTRIBUTED_INTERNAL_H
#define TRICYCLE_DISTRIBUTED_INTERNAL_H

#include "internal.h"

#include "distributed_glue.h"

#define FAILURE_SIZE 512
/* A collective's message: its name, then the failure. */
#define MESSAGE_SIZE 640
#define NOTICE_TEXT 496
#define HOST_NAME_SIZE 64
/* Collective stages: stage s of every collective runs on communicator s. */
#define MAX_STAGES 2
/* How often a waiting rank checks that its machine's other ranks exist. */
#define LIVENESS_SECONDS 0.1
/* A rank found gone is given this long for what it sent to arrive. */
#define GONE_GRACE_SECONDS 0.5
/* How long notices may take to leave. */
#define NOTICE_SEND_SECONDS 2.0

enum notice_kind { NOTICE_FAILED = 1, NOTICE_LEFT = 2 };

typedef struct notice {
    int32_t kind;
    int32_t rank;
    int64_t collectives; /* collectives the sender had started */
    char text[NOTICE_TEXT];
} notice;

/* What the ranks tell each other when they join. */
typedef struct peer {
    int32_t pid;
    char host[HOST_NAME_SIZE];
} peer;

typedef enum collective_kind { ALL_REDUCE, BROADCAST, ALL_GATHER, REDUCE_SCATTER, BARRIER } collective_kind;
extern const char *const tc_collective_kind_names[];

struct tc_collective {
    tc_context *ctx;
    tc_collective *next; /* the context's running collectives, in start order */
    collective_kind kind;
    int64_t sequence; /* 1-based among the context's collectives */
    tc_collective_op op;
    int root;
    int stages;       /* MPI stages to run */
    int started;      /* stages started so far */
    void *request;    /* MPI request or CUDA event of the stage running, NULL between stages */
    bool nccl;
    bool done;
    bool freed;     /* the caller let go of the handle */
    bool abandoned; /* given up with a request in flight: its buffers are never released */
    bool detached;  /* its world was shut down while the caller held it */
    tc_status status;
    char message[MESSAGE_SIZE];
    tc_tensor *target;  /* written in place (all_reduce, broadcast), held */
    tc_tensor *buffer;  /* the contiguous data sent: target itself, or a copy of it / of the input */
    tc_tensor *out;     /* all_gather, reduce_scatter: the caller's output, held */
    tc_tensor *segment; /* a sum over MPI: this rank's reduced segment */
    int *counts;        /* MPI stages: per rank, then the displacements */
    int64_t *counts64;  /* NCCL: per rank */
};

struct tc_distributed {
    const tc_mpi_glue *mpi; /* NULL: a world of one without MPI */
    bool mpi_started;
    void *comms[MAX_STAGES];
    void *control;
    int rank, world, local_rank, local_size;
    double timeout;
    peer *peers;
    int64_t *left_after;  /* per rank: collectives it had started when it left, -1 while it is in */
    double *gone_since;   /* per rank: when its process was found missing, 0 while it exists */
    double last_liveness; /* when the processes were last checked */
    bool broken;
    char failure[FAILURE_SIZE];
    int64_t collectives;
    tc_collective *head, *tail;
    void *notice_request;
    notice incoming;
    const tc_cuda_collectives *cuda;
    void *nccl_comm;
    tc_distributed_stats stats;
};

/* distributed_world.c: the world's state, failure and members. */
double tc_distributed_now(void);
/* Marks the world broken (the first reason stays) and fails every running
 * collective with it; their requests are left in flight. */
void tc_distributed_break(struct tc_distributed *d, const char *format, ...) __attribute__((format(printf, 2, 3)));
void tc_distributed_check_notices(struct tc_distributed *d);
/* Breaks the world when a rank on this machine ended without a word
 * (its process is gone), or left before starting collective c. */
void tc_distributed_check_ranks(struct tc_distributed *d, const tc_collective *c, double t);
/* Sleeps a little longer each time, up to a millisecond: a wait does not
 * spin on a core the other ranks of the machine are computing on. */
void tc_distributed_back_off(int *rounds);

/* distributed.c: collectives. */
void tc_collective_finish(tc_collective *c, tc_status status, const char *message);
void tc_collective_release_tensors(tc_collective *c);
void tc_collective_wait_for(tc_collective *c);
tc_status tc_distributed_not_joined(tc_context *ctx, const char *function);

#endif
