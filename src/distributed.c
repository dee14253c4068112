/*
 * distributed.c: a context's world of processes and the collectives on its
 * tensors (tricycle.h states the contract).
 *
 * MPI is reached only through libtricycle_mpi.so (distributed_glue.h),
 * opened when a context joins with use_mpi; NCCL only through the CUDA
 * library's collectives table (cuda/cuda_distributed.cu). Everything a
 * world needs is in the context's tc_distributed: three communicators of its
 * own (two for the stages of collectives, one for notices), the ranks'
 * process ids and hosts, and the collectives still running.
 *
 * Collectives are non-blocking underneath and moved along by every call
 * that waits or tests (MPI progresses only inside its calls). A sum over
 * MPI runs in two stages, a reduce-scatter (each element summed once, by
 * the rank owning its segment) then an all-gather of the segments, so every
 * rank gets the same bits whatever MPI's algorithms. Stage s of every
 * collective runs on communicator s and starts only after stage s of every
 * earlier collective started: MPI matches collectives by their order on a
 * communicator, and that order is then the order the ranks called them in.
 *
 * While waiting, a rank reads the notices of the others (one failed, one
 * left) and checks that the processes of its machine's other ranks still
 * exist, so that a wait that cannot end fails with a message naming the
 * rank instead of hanging.
 */
#include "internal.h"

#include "distributed_glue.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MPI_LIBRARY_NAME "libtricycle_mpi.so"
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
static const char *const kind_names[] = {"all_reduce", "broadcast", "all_gather", "reduce_scatter", "barrier"};

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

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- the world's failure ---- */

static void finish(tc_collective *c, tc_status status, const char *message);

/* Marks the world broken (the first reason stays) and fails every running
 * collective with it; their requests are left in flight. */
static void break_world(struct tc_distributed *d, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void break_world(struct tc_distributed *d, const char *format, ...) {
    if (!d->broken) {
        va_list args;
        va_start(args, format);
        vsnprintf(d->failure, sizeof d->failure, format, args);
        va_end(args);
        d->broken = true;
    }
    for (tc_collective *c = d->head; c; c = c->next) {
        if (c->done) continue;
        if (c->request) c->abandoned = true;
        char message[MESSAGE_SIZE];
        snprintf(message, sizeof message, "%s: %s", kind_names[c->kind], d->failure);
        finish(c, TC_ERROR_STATE, message);
    }
}

/* ---- notices ---- */

static void post_notice_receive(struct tc_distributed *d) {
    char error[TC_MPI_ERROR_SIZE];
    if (d->mpi->receive_any(d->control, &d->incoming, (int)sizeof d->incoming, &d->notice_request, error))
        break_world(d, "waiting for the other ranks' notices failed: %s", error);
}

static void handle_notice(struct tc_distributed *d, int source) {
    notice *n = &d->incoming;
    n->text[NOTICE_TEXT - 1] = '\0';
    int rank = n->rank >= 0 && n->rank < d->world ? n->rank : source;
    if (n->kind == NOTICE_FAILED)
        break_world(d, "rank %d stopped: %s", rank, n->text[0] ? n->text : "(no reason given)");
    else if (n->kind == NOTICE_LEFT && d->left_after[rank] < 0)
        d->left_after[rank] = n->collectives >= 0 ? n->collectives : 0;
}

static void check_notices(struct tc_distributed *d) {
    char error[TC_MPI_ERROR_SIZE];
    while (d->notice_request) {
        bool done = false;
        int source = -1;
        if (d->mpi->test(&d->notice_request, &done, &source, error)) {
            break_world(d, "reading the other ranks' notices failed: %s", error);
            return;
        }
        if (!done) return;
        handle_notice(d, source);
        post_notice_receive(d);
    }
}

/* Sends a notice to every other rank and waits a little for it to leave.
 * The notice is heap memory that is kept (leaked) if a send is still in
 * flight when the wait ends. */
static void send_notice(tc_context *ctx, struct tc_distributed *d, int kind, const char *text) {
    if (!d->mpi || d->world < 2) return;
    notice *n = tc_calloc(ctx, 1, sizeof *n);
    void **requests = tc_calloc(ctx, (size_t)d->world, sizeof *requests);
    if (!n || !requests) {
        tc_free(n);
        tc_free(requests);
        return;
    }
    n->kind = kind;
    n->rank = d->rank;
    n->collectives = d->collectives;
    snprintf(n->text, sizeof n->text, "%s", text ? text : "");
    char error[TC_MPI_ERROR_SIZE];
    for (int r = 0; r < d->world; r++)
        if (r != d->rank && d->mpi->send(d->control, n, (int)sizeof *n, r, &requests[r], error)) requests[r] = NULL;
    double deadline = now() + NOTICE_SEND_SECONDS;
    bool pending = true;
    while (pending && now() < deadline) {
        pending = false;
        for (int r = 0; r < d->world; r++) {
            if (!requests[r]) continue;
            bool done = false;
            if (d->mpi->test(&requests[r], &done, NULL, error)) requests[r] = NULL; /* given up */
            else if (!done) pending = true;
        }
        if (pending) {
            check_notices(d); /* the receiving side may need this rank to move along */
            nanosleep(&(struct timespec){0, 200000}, NULL);
        }
    }
    if (pending) return; /* n and requests stay with MPI */
    tc_free(requests);
    tc_free(n);
}

/* ---- watching the other ranks ---- */

static bool same_host(const struct tc_distributed *d, int r) {
    return strncmp(d->peers[r].host, d->peers[d->rank].host, HOST_NAME_SIZE) == 0;
}

/* Breaks the world when a rank on this machine ended without a word
 * (its process is gone), or left before starting collective c. */
static void check_ranks(struct tc_distributed *d, const tc_collective *c, double t) {
    for (int r = 0; r < d->world && !d->broken; r++) {
        if (r == d->rank) continue;
        if (d->left_after[r] >= 0) {
            if (c && d->left_after[r] < c->sequence)
                break_world(d,
                            "rank %d left the world after %lld collectives, without starting collective #%lld "
                            "(%s): the ranks did not run the same collectives (its program ended early?)",
                            r, (long long)d->left_after[r], (long long)c->sequence, kind_names[c->kind]);
            continue;
        }
        if (t - d->last_liveness < LIVENESS_SECONDS || !same_host(d, r)) continue;
        if (kill((pid_t)d->peers[r].pid, 0) == 0 || errno != ESRCH) {
            d->gone_since[r] = 0;
        } else if (d->gone_since[r] == 0) {
            d->gone_since[r] = t;
        } else if (t - d->gone_since[r] >= GONE_GRACE_SECONDS) {
            break_world(d, "rank %d (process %d on %s) ended without a word while rank %d waited for it%s", r,
                        (int)d->peers[r].pid, d->peers[r].host, d->rank, c ? "" : " to leave");
        }
    }
    if (t - d->last_liveness >= LIVENESS_SECONDS) d->last_liveness = t;
}

/* Sleeps a little longer each time, up to a millisecond: a wait does not
 * spin on a core the other ranks of the machine are computing on. */
static void back_off(int *rounds) {
    (*rounds)++;
    if (*rounds < 64) return;
    long ns = 10000L << (*rounds < 70 ? *rounds - 64 : 6);
    if (ns > 1000000L) ns = 1000000L;
    nanosleep(&(struct timespec){0, ns}, NULL);
}

/* ---- running collectives ---- */

static void release_tensors(tc_collective *c) {
    if (c->abandoned) return; /* MPI or NCCL may still write into them */
    tc_tensor_release(c->target);
    tc_tensor_release(c->buffer);
    tc_tensor_release(c->out);
    tc_tensor_release(c->segment);
    c->target = c->buffer = c->out = c->segment = NULL;
}

static void finish(tc_collective *c, tc_status status, const char *message) {
    c->done = true;
    c->status = status;
    if (status != TC_OK) snprintf(c->message, sizeof c->message, "%s", message ? message : "failed");
    release_tensors(c);
}

static void *data_of(tc_tensor *t) { return t ? tc_tensor_data_at_offset(t) : NULL; }

static tc_status scale_by_world(struct tc_distributed *d, tc_tensor *t) {
    if (!t || d->world == 1) return TC_OK;
    void *data = data_of(t);
    int64_t n = tc_tensor_numel(t);
    if (n == 0) return TC_OK;
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(t, "all_reduce", TC_SLOT_BIT(scale), &backend));
    return backend->scale(t->ctx, t->dtype, 1, &data, &n, 1.0 / d->world);
}

/* The whole collective's result is in place: the average's division, the
 * copy back into a target that was not contiguous. */
static void complete(tc_collective *c) {
    struct tc_distributed *d = c->ctx->distributed;
    tc_status status = TC_OK;
    if (c->op == TC_COLLECTIVE_AVG && !c->nccl) {
        if (c->kind == REDUCE_SCATTER) status = scale_by_world(d, c->out);
        else if (c->kind == ALL_REDUCE && !c->segment) status = scale_by_world(d, c->buffer);
    }
    if (status == TC_OK && c->target && c->buffer && c->buffer != c->target) status = tc_copy_(c->target, c->buffer);
    char message[FAILURE_SIZE];
    if (status != TC_OK) snprintf(message, sizeof message, "%s", tc_last_error(c->ctx));
    finish(c, status, message);
}

static tc_status start_stage(tc_collective *c) {
    struct tc_distributed *d = c->ctx->distributed;
    const tc_mpi_glue *mpi = d->mpi;
    void *comm = d->comms[c->started];
    tc_dtype dtype = c->buffer ? c->buffer->dtype : TC_UINT8;
    int count = c->buffer ? (int)tc_tensor_numel(c->buffer) : 0;
    int *counts = c->counts, *displacements = c->counts ? c->counts + d->world : NULL;
    tc_collective_op reduce = c->op == TC_COLLECTIVE_MAX ? TC_COLLECTIVE_MAX : TC_COLLECTIVE_SUM;
    char error[TC_MPI_ERROR_SIZE];
    int failed = 0;
    switch (c->kind) {
    case ALL_REDUCE:
        if (!c->segment)
            failed = mpi->all_reduce(comm, NULL, data_of(c->buffer), count, dtype, reduce, &c->request, error);
        else if (c->started == 0)
            failed = mpi->reduce_scatter(comm, data_of(c->buffer), data_of(c->segment), counts, dtype, reduce,
                                         &c->request, error);
        else
            failed = mpi->all_gather(comm, data_of(c->segment), counts[d->rank], data_of(c->buffer), counts,
                                     displacements, dtype, &c->request, error);
        break;
    case BROADCAST:
        failed = mpi->broadcast(comm, data_of(c->buffer), count, dtype, c->root, &c->request, error);
        break;
    case ALL_GATHER:
        failed = mpi->all_gather(comm, data_of(c->buffer), count, data_of(c->out), counts, displacements, dtype,
                                 &c->request, error);
        break;
    case REDUCE_SCATTER:
        failed = mpi->reduce_scatter(comm, data_of(c->buffer), data_of(c->out), counts, dtype, reduce, &c->request,
                                     error);
        break;
    case BARRIER: failed = mpi->barrier(comm, &c->request, error); break;
    }
    c->started++;
    if (failed) {
        c->request = NULL;
        break_world(d, "MPI failed on rank %d: %s", d->rank, error);
        return TC_ERROR_STATE;
    }
    return TC_OK;
}

/* A finished stage: the segment of a sum is averaged before it is sent on. */
static tc_status stage_done(tc_collective *c) {
    struct tc_distributed *d = c->ctx->distributed;
    if (c->kind == ALL_REDUCE && c->segment && c->started == 1 && c->op == TC_COLLECTIVE_AVG)
        return scale_by_world(d, c->segment);
    return TC_OK;
}

/* Tests the request of c's running stage; false when it is still running. */
static bool poll_request(tc_collective *c) {
    struct tc_distributed *d = c->ctx->distributed;
    bool done = false;
    if (c->nccl) {
        if (d->cuda->test(c->ctx, d->nccl_comm, &c->request, &done) != TC_OK) {
            c->abandoned = true;
            break_world(d, "NCCL failed on rank %d: %s", d->rank, tc_last_error(c->ctx));
            return true;
        }
        return done;
    }
    char error[TC_MPI_ERROR_SIZE];
    if (d->mpi->test(&c->request, &done, NULL, error)) {
        c->abandoned = true;
        break_world(d, "MPI failed on rank %d: %s", d->rank, error);
        return true;
    }
    return done;
}

static void unlink_finished(struct tc_distributed *d) {
    tc_collective **link = &d->head, *last = NULL;
    while (*link) {
        tc_collective *c = *link;
        if (c->done && c->freed) {
            *link = c->next;
            tc_free(c->counts);
            tc_free(c->counts64);
            tc_free(c);
        } else {
            last = c;
            link = &c->next;
        }
    }
    d->tail = last;
}

/* Moves every running collective along, starting stages in order. */
static void progress(struct tc_distributed *d) {
    int allowed = MAX_STAGES; /* stages the earlier collectives have all started */
    for (tc_collective *c = d->head; c; c = c->next) {
        while (!c->done) {
            if (c->request) {
                if (!poll_request(c)) break;
                if (c->done) break;
                if (stage_done(c) != TC_OK) {
                    break_world(d, "rank %d failed between the stages of a %s: %s", d->rank, kind_names[c->kind],
                                tc_last_error(c->ctx));
                    break;
                }
            }
            if (c->started == c->stages) {
                complete(c);
                break;
            }
            if (c->nccl || c->started + 1 > allowed) break;
            if (start_stage(c) != TC_OK) break;
        }
        if (!c->done && !c->nccl && c->started < allowed) allowed = c->started;
    }
    unlink_finished(d);
}

static tc_status report(tc_collective *c) {
    if (c->status == TC_OK) return TC_OK;
    return tc_fail(c->ctx, c->status, "%s", c->message);
}

static void wait_for(tc_collective *c) {
    struct tc_distributed *d = c->ctx->distributed;
    double started = now();
    int rounds = 0;
    while (!c->done) {
        progress(d);
        if (c->done) break;
        check_notices(d);
        double t = now();
        check_ranks(d, c, t);
        if (!c->done && d->timeout > 0 && t - started > d->timeout)
            break_world(d,
                        "rank %d waited %g s (the timeout) for the other ranks in collective #%lld (%s); they "
                        "did not all start it",
                        d->rank, d->timeout, (long long)c->sequence, kind_names[c->kind]);
        if (!c->done) back_off(&rounds);
    }
    d->stats.wait_seconds += now() - started;
}

tc_status tc_collective_wait(tc_collective *c) {
    if (!c->done) wait_for(c);
    return report(c);
}

tc_status tc_collective_test(tc_collective *c, bool *done) {
    struct tc_distributed *d = c->ctx->distributed;
    if (!c->done) {
        progress(d);
        if (!c->done) {
            check_notices(d);
            check_ranks(d, c, now());
        }
    }
    *done = c->done;
    return c->done ? report(c) : TC_OK;
}

void tc_collective_free(tc_collective *c) {
    if (!c) return;
    c->freed = true;
    if (c->detached) {
        tc_free(c->counts);
        tc_free(c->counts64);
        tc_free(c);
        return;
    }
    unlink_finished(c->ctx->distributed);
}

/* ---- making collectives ---- */

static tc_status not_joined(tc_context *ctx, const char *function) {
    return tc_fail(ctx, TC_ERROR_STATE,
                   "%s: this context has not joined a world of processes (call tc_distributed_init first; "
                   "tc.distributed.init() in Lua)",
                   function);
}

static tc_status check_joined(const char *function, const tc_tensor *t) {
    return t->ctx->distributed ? TC_OK : not_joined(t->ctx, function);
}

static tc_status check_op(const char *function, const tc_tensor *t, tc_collective_op op) {
    if (op != TC_COLLECTIVE_SUM && op != TC_COLLECTIVE_AVG && op != TC_COLLECTIVE_MAX)
        return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "%s: unknown op %d (sum, avg or max)", function, (int)op);
    if (op == TC_COLLECTIVE_AVG && !tc_dtype_is_floating(t->dtype))
        return tc_fail(t->ctx, TC_ERROR_DTYPE,
                       "%s: op avg needs a float32 or float64 tensor, got %s (shape %s); use sum and divide", function,
                       tc_dtype_name(t->dtype), TC_SHAPE(t));
    if (op == TC_COLLECTIVE_SUM && t->dtype == TC_BOOL)
        return tc_fail(t->ctx, TC_ERROR_DTYPE,
                       "%s: op sum on a bool tensor (shape %s) is not defined; use max (a logical or)", function,
                       TC_SHAPE(t));
    return TC_OK;
}

static tc_status check_out(const char *function, const tc_tensor *t, const tc_tensor *out, int64_t expected) {
    TC_TRY(tc_check_same_device(function, t, out));
    if (out->dtype != t->dtype)
        return tc_fail(t->ctx, TC_ERROR_DTYPE, "%s: out has dtype %s, the tensor %s", function,
                       tc_dtype_name(out->dtype), tc_dtype_name(t->dtype));
    if (!tc_tensor_is_contiguous(out))
        return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "%s: out (shape %s) must be contiguous", function, TC_SHAPE(out));
    if (tc_tensor_numel(out) != expected)
        return tc_fail(t->ctx, TC_ERROR_SHAPE, "%s: out (shape %s) holds %lld elements, expected %lld", function,
                       TC_SHAPE(out), (long long)tc_tensor_numel(out), (long long)expected);
    return TC_OK;
}

/* Per-rank counts given (or NULL: `each` for every rank), checked; *total
 * is their sum. */
static tc_status check_counts(tc_context *ctx, const char *function, const int64_t *counts, int64_t each,
                              int world, int64_t *total) {
    int64_t sum = 0;
    for (int r = 0; r < world; r++) {
        int64_t n = counts ? counts[r] : each;
        if (n < 0)
            return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: counts[%d] is %lld; counts must be >= 0", function, r + 1,
                           (long long)n);
        if (!tc_add_sizes(sum, n, &sum))
            return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: the counts add up past the largest tensor size", function);
    }
    *total = sum;
    return TC_OK;
}

/* MPI counts are ints: every count, and the displacements (their sums). */
static tc_status check_fits_mpi(tc_context *ctx, const char *function, int64_t total) {
    if (total <= INT_MAX) return TC_OK;
    return tc_fail(ctx, TC_ERROR_ARGUMENT,
                   "%s: %lld elements are more than MPI's %d in one call; send the tensor in parts", function,
                   (long long)total, INT_MAX);
}

/* A contiguous tensor over the same elements: t itself (retained), or a copy. */
static tc_status contiguous_buffer(tc_tensor *t, tc_tensor **out) {
    if (tc_tensor_is_contiguous(t)) {
        tc_tensor_retain(t);
        *out = t;
        return TC_OK;
    }
    return tc_contiguous_copy(t, out);
}

static tc_collective *new_collective(tc_context *ctx, collective_kind kind) {
    tc_collective *c = tc_calloc(ctx, 1, sizeof *c);
    if (!c) return NULL;
    c->ctx = ctx;
    c->kind = kind;
    c->stages = 1;
    return c;
}

static void count_started(struct tc_distributed *d, const tc_collective *c, const tc_tensor *t) {
    int64_t *counters[] = {&d->stats.all_reduce, &d->stats.broadcast, &d->stats.all_gather, &d->stats.reduce_scatter,
                           &d->stats.barrier};
    (*counters[c->kind])++;
    if (t) d->stats.bytes += tc_tensor_numel(t) * (int64_t)tc_dtype_size(t->dtype);
    if (c->nccl) d->stats.nccl++;
}

static tc_status start_nccl(tc_collective *c);
static tc_status nccl_ready(tc_context *ctx, struct tc_distributed *d, const char *function, bool *use);

/* Runs c: locally at once in a world without MPI, else queued and started;
 * then waited for (pending NULL) or handed to the caller. The tensors c
 * holds are released when it finishes, c itself when it finished and the
 * caller let go of it. */
static tc_status launch(tc_collective *c, const tc_tensor *counted, tc_collective **pending) {
    tc_context *ctx = c->ctx;
    struct tc_distributed *d = ctx->distributed;
    c->sequence = ++d->collectives;
    count_started(d, c, counted);
    if (d->broken) {
        char message[MESSAGE_SIZE];
        snprintf(message, sizeof message, "%s: %s", kind_names[c->kind], d->failure);
        finish(c, TC_ERROR_STATE, message);
    } else if (c->nccl) {
        tc_status status = start_nccl(c);
        if (status != TC_OK) {
            char message[FAILURE_SIZE];
            snprintf(message, sizeof message, "%s", tc_last_error(ctx));
            finish(c, status, message);
        }
    } else if (!d->mpi) {
        complete(c);
    }
    if (d->tail) d->tail->next = c;
    else d->head = c;
    d->tail = c;
    if (!c->done) progress(d);
    if (pending) {
        *pending = c;
        return c->done ? report(c) : TC_OK;
    }
    tc_status status = tc_collective_wait(c);
    tc_collective_free(c);
    return status;
}

/* Frees a collective that never started. */
static tc_status drop(tc_collective *c, tc_status status) {
    release_tensors(c);
    tc_free(c->counts);
    tc_free(c->counts64);
    tc_free(c);
    return status;
}

/* The counts (and displacements) MPI's stages use, or the NCCL counts. */
static tc_status set_counts(tc_collective *c, const int64_t *counts, int64_t each) {
    int world = c->ctx->distributed->world;
    if (c->nccl) {
        c->counts64 = tc_calloc(c->ctx, (size_t)world, sizeof *c->counts64);
        if (!c->counts64) return TC_ERROR_MEMORY;
        for (int r = 0; r < world; r++) c->counts64[r] = counts ? counts[r] : each;
        return TC_OK;
    }
    c->counts = tc_calloc(c->ctx, (size_t)world * 2, sizeof *c->counts);
    if (!c->counts) return TC_ERROR_MEMORY;
    int64_t displacement = 0;
    for (int r = 0; r < world; r++) {
        int64_t n = counts ? counts[r] : each;
        c->counts[r] = (int)n;
        c->counts[world + r] = (int)displacement;
        displacement += n;
    }
    return TC_OK;
}

/* Whether collectives on t go through NCCL (CUDA tensors; a world of one
 * without NCCL copies locally). */
static tc_status route(tc_tensor *t, const char *function, bool *nccl) {
    *nccl = false;
    if (t->storage->device != TC_CUDA) return TC_OK;
    return nccl_ready(t->ctx, t->ctx->distributed, function, nccl);
}

tc_status tc_all_reduce(tc_tensor *t, tc_collective_op op, tc_collective **pending) {
    if (pending) *pending = NULL;
    TC_TRY(check_joined("all_reduce", t));
    TC_TRY(check_op("all_reduce", t, op));
    struct tc_distributed *d = t->ctx->distributed;
    int64_t n = tc_tensor_numel(t);
    bool nccl;
    TC_TRY(route(t, "all_reduce", &nccl));
    if (!nccl && d->mpi) TC_TRY(check_fits_mpi(t->ctx, "all_reduce", n));
    TC_TRY(tc_inplace_begin(t, "all_reduce"));
    tc_collective *c = new_collective(t->ctx, ALL_REDUCE);
    if (!c) return TC_ERROR_MEMORY;
    c->op = op;
    c->nccl = nccl;
    tc_tensor_retain(t);
    c->target = t;
    tc_status status = contiguous_buffer(t, &c->buffer);
    if (status == TC_OK && !nccl && d->mpi && op != TC_COLLECTIVE_MAX && tc_dtype_is_floating(t->dtype)) {
        /* a sum in two stages: segment r (n / world elements, the first
         * n % world ranks one more) is summed by rank r alone */
        int64_t *per_rank = tc_calloc(t->ctx, (size_t)d->world, sizeof *per_rank);
        if (!per_rank) status = TC_ERROR_MEMORY;
        for (int r = 0; status == TC_OK && r < d->world; r++) per_rank[r] = n / d->world + (r < n % d->world);
        if (status == TC_OK) status = set_counts(c, per_rank, 0);
        if (status == TC_OK)
            status = tc_tensor_new(t->ctx, t->dtype, TC_CPU, 1, &per_rank[d->rank], &c->segment);
        tc_free(per_rank);
        c->stages = 2;
    }
    if (status != TC_OK) return drop(c, status);
    return launch(c, t, pending);
}

tc_status tc_broadcast(tc_tensor *t, int root, tc_collective **pending) {
    if (pending) *pending = NULL;
    TC_TRY(check_joined("broadcast", t));
    struct tc_distributed *d = t->ctx->distributed;
    if (root < 0 || root >= d->world)
        return tc_fail(t->ctx, TC_ERROR_ARGUMENT, "broadcast: root %d is not a rank of this world of %d (0 to %d)",
                       root, d->world, d->world - 1);
    bool nccl;
    TC_TRY(route(t, "broadcast", &nccl));
    if (!nccl && d->mpi) TC_TRY(check_fits_mpi(t->ctx, "broadcast", tc_tensor_numel(t)));
    TC_TRY(tc_inplace_begin(t, "broadcast"));
    tc_collective *c = new_collective(t->ctx, BROADCAST);
    if (!c) return TC_ERROR_MEMORY;
    c->root = root;
    c->nccl = nccl;
    tc_tensor_retain(t);
    c->target = t;
    tc_status status = contiguous_buffer(t, &c->buffer);
    if (status != TC_OK) return drop(c, status);
    return launch(c, t, pending);
}

tc_status tc_all_gather(tc_tensor *t, const int64_t *counts, tc_tensor *out, tc_collective **pending) {
    if (pending) *pending = NULL;
    TC_TRY(check_joined("all_gather", t));
    struct tc_distributed *d = t->ctx->distributed;
    int64_t n = tc_tensor_numel(t), total;
    TC_TRY(check_counts(t->ctx, "all_gather", counts, n, d->world, &total));
    if (counts && counts[d->rank] != n)
        return tc_fail(t->ctx, TC_ERROR_SHAPE,
                       "all_gather: the tensor (shape %s) holds %lld elements but counts[%d] (this rank's) is %lld",
                       TC_SHAPE(t), (long long)n, d->rank + 1, (long long)counts[d->rank]);
    TC_TRY(check_out("all_gather", t, out, total));
    bool nccl;
    TC_TRY(route(t, "all_gather", &nccl));
    if (!nccl && d->mpi) TC_TRY(check_fits_mpi(t->ctx, "all_gather", total));
    TC_TRY(tc_inplace_begin(out, "all_gather"));
    tc_collective *c = new_collective(t->ctx, ALL_GATHER);
    if (!c) return TC_ERROR_MEMORY;
    c->nccl = nccl;
    tc_tensor_retain(out);
    c->out = out;
    tc_status status = contiguous_buffer(t, &c->buffer);
    if (status == TC_OK) status = set_counts(c, counts, n);
    if (status == TC_OK && !d->mpi && !nccl) { /* a world of one: out = t */
        tc_tensor *flat = NULL;
        status = tc_tensor_alias(c->buffer, 1, &n, (int64_t[]){1}, c->buffer->offset, &flat);
        tc_tensor *flat_out = NULL;
        if (status == TC_OK) status = tc_tensor_alias(out, 1, &n, (int64_t[]){1}, out->offset, &flat_out);
        if (status == TC_OK) status = tc_copy_(flat_out, flat);
        tc_tensor_release(flat);
        tc_tensor_release(flat_out);
    }
    if (status != TC_OK) return drop(c, status);
    return launch(c, t, pending);
}

tc_status tc_reduce_scatter(tc_tensor *t, const int64_t *counts, tc_collective_op op, tc_tensor *out,
                            tc_collective **pending) {
    if (pending) *pending = NULL;
    TC_TRY(check_joined("reduce_scatter", t));
    TC_TRY(check_op("reduce_scatter", t, op));
    struct tc_distributed *d = t->ctx->distributed;
    int64_t n = tc_tensor_numel(t), total;
    if (!counts && n % d->world != 0)
        return tc_fail(t->ctx, TC_ERROR_SHAPE,
                       "reduce_scatter: the tensor (shape %s) holds %lld elements, which %d ranks cannot share "
                       "equally; give counts",
                       TC_SHAPE(t), (long long)n, d->world);
    int64_t each = n / d->world;
    TC_TRY(check_counts(t->ctx, "reduce_scatter", counts, each, d->world, &total));
    if (total != n)
        return tc_fail(t->ctx, TC_ERROR_SHAPE,
                       "reduce_scatter: the counts add up to %lld but the tensor (shape %s) holds %lld elements",
                       (long long)total, TC_SHAPE(t), (long long)n);
    TC_TRY(check_out("reduce_scatter", t, out, counts ? counts[d->rank] : each));
    bool nccl;
    TC_TRY(route(t, "reduce_scatter", &nccl));
    if (!nccl && d->mpi) TC_TRY(check_fits_mpi(t->ctx, "reduce_scatter", n));
    TC_TRY(tc_inplace_begin(out, "reduce_scatter"));
    tc_collective *c = new_collective(t->ctx, REDUCE_SCATTER);
    if (!c) return TC_ERROR_MEMORY;
    c->op = op;
    c->nccl = nccl;
    tc_tensor_retain(out);
    c->out = out;
    tc_status status = contiguous_buffer(t, &c->buffer);
    if (status == TC_OK) status = set_counts(c, counts, each);
    if (status == TC_OK && !d->mpi && !nccl) { /* a world of one: out = t */
        tc_tensor *flat = NULL, *flat_out = NULL;
        status = tc_tensor_alias(c->buffer, 1, &n, (int64_t[]){1}, c->buffer->offset, &flat);
        if (status == TC_OK) status = tc_tensor_alias(out, 1, &n, (int64_t[]){1}, out->offset, &flat_out);
        if (status == TC_OK) status = tc_copy_(flat_out, flat);
        tc_tensor_release(flat);
        tc_tensor_release(flat_out);
    }
    if (status != TC_OK) return drop(c, status);
    return launch(c, t, pending);
}

tc_status tc_barrier(tc_context *ctx) {
    if (!ctx->distributed) return not_joined(ctx, "barrier");
    tc_collective *c = new_collective(ctx, BARRIER);
    if (!c) return TC_ERROR_MEMORY;
    return launch(c, NULL, NULL);
}

/* ---- NCCL (CUDA tensors) ---- */

/* A one-byte flag per rank, summed: how many ranks could not. */
static tc_status agree(tc_context *ctx, const char *function, bool ok, int64_t *failures) {
    tc_tensor *flag;
    int64_t one = 1;
    TC_TRY(tc_tensor_new(ctx, TC_INT64, TC_CPU, 1, &one, &flag));
    *(int64_t *)tc_tensor_data(flag) = ok ? 0 : 1;
    tc_status status = tc_all_reduce(flag, TC_COLLECTIVE_SUM, NULL);
    if (status == TC_OK) *failures = *(int64_t *)tc_tensor_data(flag);
    tc_tensor_release(flag);
    if (status != TC_OK) {
        char message[TC_ERROR_CAPACITY];
        snprintf(message, sizeof message, "%s", tc_last_error(ctx));
        return tc_fail(ctx, status, "%s: the ranks could not agree on starting NCCL: %s", function, message);
    }
    return TC_OK;
}

/* Makes the context's NCCL communicator on first use. Every rank learns
 * whether every other could load NCCL before any waits in NCCL's own
 * start (which would wait for ever for a rank that never comes); rank 0's
 * id reaches the others over MPI. *use is false in a world of one where
 * NCCL cannot run (collectives there copy locally). */
static tc_status nccl_ready(tc_context *ctx, struct tc_distributed *d, const char *function, bool *use) {
    *use = false;
    if (d->nccl_comm) {
        *use = true;
        return TC_OK;
    }
    if (d->broken) return TC_OK; /* launch reports the failure */
    char reason[512] = "";
    if (!d->cuda) {
        tc_cuda_collectives_fn entry = NULL;
        if (ctx->cuda_library) *(void **)&entry = dlsym(ctx->cuda_library, TC_CUDA_COLLECTIVES_ENTRY_POINT);
        const tc_cuda_collectives *table = entry ? entry() : NULL;
        if (table && table->abi == TC_BACKEND_ABI) d->cuda = table;
        else snprintf(reason, sizeof reason, "the CUDA backend library has no NCCL collectives (rebuild it)");
    }
    if (d->cuda) {
        tc_status status;
        unsigned char id[TC_NCCL_ID_BYTES];
        memset(id, 0, sizeof id);
        bool loaded = d->cuda->available(ctx) == TC_OK && (d->rank != 0 || d->cuda->unique_id(ctx, id) == TC_OK);
        if (!loaded) snprintf(reason, sizeof reason, "%s", tc_last_error(ctx));
        if (d->world == 1) {
            if (!loaded) return TC_OK; /* a world of one copies locally */
            status = d->cuda->comm_new(ctx, id, 1, 0, &d->nccl_comm);
            if (status != TC_OK) return tc_fail(ctx, status, "%s: %s", function, tc_last_error(ctx));
            *use = true;
            return TC_OK;
        }
        int64_t failures = 0;
        TC_TRY(agree(ctx, function, loaded, &failures));
        if (failures > 0)
            return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "%s: NCCL cannot be used for CUDA tensors: %s", function,
                           loaded ? "another rank could not start it" : reason);
        tc_tensor *shared;
        int64_t size = TC_NCCL_ID_BYTES;
        TC_TRY(tc_tensor_new(ctx, TC_UINT8, TC_CPU, 1, &size, &shared));
        memcpy(tc_tensor_data(shared), id, sizeof id);
        status = tc_broadcast(shared, 0, NULL);
        if (status == TC_OK) memcpy(id, tc_tensor_data(shared), sizeof id);
        tc_tensor_release(shared);
        TC_TRY(status);
        status = d->cuda->comm_new(ctx, id, d->world, d->rank, &d->nccl_comm);
        if (status != TC_OK) {
            char message[FAILURE_SIZE];
            snprintf(message, sizeof message, "%s", tc_last_error(ctx));
            break_world(d, "NCCL could not start on rank %d: %s", d->rank, message);
            return tc_fail(ctx, status, "%s: %s", function, d->failure);
        }
        *use = true;
        return TC_OK;
    }
    if (d->world == 1) return TC_OK;
    return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "%s: NCCL cannot be used for CUDA tensors: %s", function, reason);
}

static tc_status start_nccl(tc_collective *c) {
    tc_context *ctx = c->ctx;
    c->started = 1;
    struct tc_distributed *d = ctx->distributed;
    const tc_cuda_collectives *cuda = d->cuda;
    int64_t n = c->buffer ? tc_tensor_numel(c->buffer) : 0;
    switch (c->kind) {
    case ALL_REDUCE:
        return cuda->all_reduce(ctx, d->nccl_comm, data_of(c->buffer), n, c->buffer->dtype, c->op, &c->request);
    case BROADCAST:
        return cuda->broadcast(ctx, d->nccl_comm, data_of(c->buffer), n, c->buffer->dtype, c->root, &c->request);
    case ALL_GATHER:
        return cuda->all_gather(ctx, d->nccl_comm, data_of(c->buffer), data_of(c->out), c->counts64, c->buffer->dtype,
                                &c->request);
    case REDUCE_SCATTER:
        return cuda->reduce_scatter(ctx, d->nccl_comm, data_of(c->buffer), data_of(c->out), c->counts64,
                                    c->buffer->dtype, c->op, &c->request);
    case BARRIER: break;
    }
    return tc_fail(ctx, TC_ERROR_STATE, "%s: not a collective NCCL runs", kind_names[c->kind]);
}

/* ---- joining and leaving ---- */

/* The path of libtricycle_mpi.so beside the file this code was loaded from. */
static bool library_beside_engine(char *path, size_t size) {
    Dl_info info;
    if (!dladdr((void *)tc_distributed_init, &info) || !info.dli_fname) return false;
    const char *slash = strrchr(info.dli_fname, '/');
    if (!slash) return false;
    int written = snprintf(path, size, "%.*s/%s", (int)(slash - info.dli_fname), info.dli_fname, MPI_LIBRARY_NAME);
    return written > 0 && (size_t)written < size && access(path, F_OK) == 0;
}

/* RTLD_NODELETE: MPI cannot start again in a process once finalised, and
 * its threads outlive the context. */
static tc_status open_glue(tc_context *ctx, const char *path, const tc_mpi_glue **glue) {
    char beside[4096];
    const char *chosen = path && path[0] ? path : library_beside_engine(beside, sizeof beside) ? beside : NULL;
    void *library = dlopen(chosen ? chosen : MPI_LIBRARY_NAME, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!library) {
        const char *error = dlerror();
        if (chosen)
            return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "distributed.init: MPI cannot be used: %s",
                           error ? error : chosen);
        return tc_fail(ctx, TC_ERROR_UNSUPPORTED,
                       "distributed.init: MPI cannot be used: %s is not installed (it is built beside core.so when "
                       "Open MPI's mpi.h is found: apt-get install libopenmpi-dev openmpi-bin, then make)",
                       MPI_LIBRARY_NAME);
    }
    tc_mpi_entry_fn entry;
    *(void **)&entry = dlsym(library, TC_MPI_ENTRY_POINT);
    const tc_mpi_glue *table = entry ? entry() : NULL;
    if (!table || table->version != TC_MPI_GLUE_VERSION)
        return tc_fail(ctx, TC_ERROR_UNSUPPORTED,
                       "distributed.init: MPI cannot be used: %s is not a library of this engine's version (rebuild "
                       "it with the engine)",
                       chosen ? chosen : MPI_LIBRARY_NAME);
    *glue = table;
    return TC_OK;
}

static void free_state(tc_context *ctx, struct tc_distributed *d, bool keep_mpi) {
    for (tc_collective *c = d->head, *next; c; c = next) {
        next = c->next;
        bool finished = c->done;
        if (!finished) c->abandoned = c->abandoned || c->request != NULL;
        release_tensors(c);
        if (!c->freed) {
            /* the caller still holds it: it stays, finished (or failed), detached from the world */
            c->done = true;
            c->detached = true;
            c->next = NULL;
            if (!finished) {
                c->status = TC_ERROR_STATE;
                snprintf(c->message, sizeof c->message, "%s: the context left its world before it finished",
                         kind_names[c->kind]);
            }
            continue;
        }
        tc_free(c->counts);
        tc_free(c->counts64);
        tc_free(c);
    }
    if (d->nccl_comm) d->cuda->comm_free(ctx, d->nccl_comm, d->broken);
    if (d->mpi && !keep_mpi) {
        d->mpi->cancel(&d->notice_request);
        d->mpi->comm_free(&d->control);
        for (int s = 0; s < MAX_STAGES; s++) d->mpi->comm_free(&d->comms[s]);
        char error[TC_MPI_ERROR_SIZE];
        if (d->mpi_started) d->mpi->stop(error);
    }
    tc_free(d->peers);
    tc_free(d->left_after);
    tc_free(d->gone_since);
    tc_free(d);
}

static tc_status join_mpi(tc_context *ctx, struct tc_distributed *d, const char *library) {
    TC_TRY(open_glue(ctx, library, &d->mpi));
    char error[TC_MPI_ERROR_SIZE];
    bool multiple = false;
    int users = 0;
    if (d->mpi->start(&multiple, &users, error))
        return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "distributed.init: MPI cannot be used: %s", error);
    d->mpi_started = true;
    if (users > 1 && !multiple)
        return tc_fail(ctx, TC_ERROR_UNSUPPORTED,
                       "distributed.init: another context of this process already uses MPI, and this MPI cannot be "
                       "called from several threads at once (no MPI_THREAD_MULTIPLE)");
    int size = 0;
    for (int s = 0; s < MAX_STAGES; s++)
        if (d->mpi->comm_new(&d->comms[s], &d->rank, &size, error))
            return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "distributed.init: %s", error);
    if (d->mpi->comm_new(&d->control, &d->rank, &size, error))
        return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "distributed.init: %s", error);
    d->world = size;
    d->peers = tc_calloc(ctx, (size_t)size, sizeof *d->peers);
    d->left_after = tc_calloc(ctx, (size_t)size, sizeof *d->left_after);
    d->gone_since = tc_calloc(ctx, (size_t)size, sizeof *d->gone_since);
    if (!d->peers || !d->left_after || !d->gone_since) return TC_ERROR_MEMORY;
    peer self;
    memset(&self, 0, sizeof self);
    self.pid = (int32_t)getpid();
    if (d->mpi->host_name(self.host, (int)sizeof self.host, error))
        return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "distributed.init: %s", error);
    if (d->mpi->exchange(d->comms[0], &self, (int)sizeof self, d->peers, error))
        return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "distributed.init: %s", error);
    d->local_rank = 0;
    d->local_size = 0;
    for (int r = 0; r < size; r++) {
        d->left_after[r] = -1;
        if (!same_host(d, r)) continue;
        d->local_size++;
        if (r < d->rank) d->local_rank++;
    }
    post_notice_receive(d);
    if (d->broken) return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "distributed.init: %s", d->failure);
    return TC_OK;
}

tc_status tc_distributed_init(tc_context *ctx, const tc_distributed_options *options) {
    struct tc_distributed *joined = ctx->distributed;
    if (joined)
        return tc_fail(ctx, TC_ERROR_STATE,
                       "distributed.init: this context already joined a world (rank %d of %d); shut it down first",
                       joined->rank, joined->world);
    tc_distributed_options defaults;
    memset(&defaults, 0, sizeof defaults);
    if (!options) options = &defaults;
    if (!(options->timeout >= 0) || isinf(options->timeout))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "distributed.init: timeout must be a finite number of seconds >= 0, "
                       "got %g", options->timeout);
    struct tc_distributed *d = tc_calloc(ctx, 1, sizeof *d);
    if (!d) return TC_ERROR_MEMORY;
    d->world = 1;
    d->local_size = 1;
    d->timeout = options->timeout;
    if (options->use_mpi) {
        tc_status status = join_mpi(ctx, d, options->mpi_library);
        if (status != TC_OK) {
            char message[TC_ERROR_CAPACITY];
            snprintf(message, sizeof message, "%s", tc_last_error(ctx));
            free_state(ctx, d, false);
            return tc_fail(ctx, status, "%s", message);
        }
    }
    ctx->distributed = d;
    if (!ctx->backends[TC_CUDA]) ctx->cuda_device = d->local_rank; /* one device per rank of the machine */
    return TC_OK;
}

bool tc_distributed_is_initialized(const tc_context *ctx) { return ctx->distributed != NULL; }
int tc_distributed_rank(const tc_context *ctx) { return ctx->distributed ? ctx->distributed->rank : 0; }
int tc_distributed_world_size(const tc_context *ctx) { return ctx->distributed ? ctx->distributed->world : 1; }
int tc_distributed_local_rank(const tc_context *ctx) { return ctx->distributed ? ctx->distributed->local_rank : 0; }
int tc_distributed_local_size(const tc_context *ctx) { return ctx->distributed ? ctx->distributed->local_size : 1; }

const char *tc_distributed_backend(const tc_context *ctx) {
    if (!ctx->distributed) return NULL;
    return ctx->distributed->mpi ? "mpi" : "local";
}

const char *tc_distributed_failure(const tc_context *ctx) {
    return ctx->distributed && ctx->distributed->broken ? ctx->distributed->failure : NULL;
}

tc_status tc_distributed_abort(tc_context *ctx, const char *message) {
    struct tc_distributed *d = ctx->distributed;
    if (!d) return not_joined(ctx, "distributed.abort");
    if (d->broken) return TC_OK; /* the others already know, or stopped first */
    send_notice(ctx, d, NOTICE_FAILED, message);
    break_world(d, "rank %d stopped: %s", d->rank, message && message[0] ? message : "(no reason given)");
    return TC_OK;
}

/* Waits for the collectives still running, then for every other rank to
 * leave; false when the world broke meanwhile. */
static bool leave(tc_context *ctx, struct tc_distributed *d) {
    while (!d->broken) { /* the collectives still running (wait_for may free finished ones) */
        tc_collective *running = d->head;
        while (running && running->done) running = running->next;
        if (!running) break;
        wait_for(running);
    }
    send_notice(ctx, d, NOTICE_LEFT, NULL);
    bool everyone = false;
    int rounds = 0;
    double started = now();
    while (!d->broken && !everyone) {
        check_notices(d);
        double t = now();
        check_ranks(d, NULL, t);
        everyone = true;
        for (int r = 0; r < d->world; r++)
            if (r != d->rank && d->left_after[r] < 0) everyone = false;
        if (!everyone && !d->broken && d->timeout > 0 && t - started > d->timeout)
            break_world(d, "rank %d waited %g s (the timeout) for the other ranks to leave", d->rank, d->timeout);
        if (!everyone) back_off(&rounds);
    }
    return !d->broken;
}

tc_status tc_distributed_shutdown(tc_context *ctx) {
    struct tc_distributed *d = ctx->distributed;
    if (!d) return TC_OK;
    bool clean = true;
    if (d->mpi) clean = leave(ctx, d);
    char failure[FAILURE_SIZE];
    snprintf(failure, sizeof failure, "%s", d->failure);
    /* A broken world keeps MPI as it is: finalising would wait for ranks
     * that will not come; the launcher ends the job. */
    free_state(ctx, d, !clean);
    ctx->distributed = NULL;
    if (!clean)
        return tc_fail(ctx, TC_ERROR_STATE, "distributed.shutdown: the world broke: %s", failure);
    return TC_OK;
}

void tc_distributed_release(tc_context *ctx) {
    if (!ctx->distributed) return;
    tc_distributed_shutdown(ctx);
    tc_clear_error(ctx);
}

void tc_distributed_get_stats(const tc_context *ctx, tc_distributed_stats *out) {
    if (ctx->distributed) *out = ctx->distributed->stats;
    else memset(out, 0, sizeof *out);
}

void tc_distributed_reset_stats(tc_context *ctx) {
    if (ctx->distributed) memset(&ctx->distributed->stats, 0, sizeof ctx->distributed->stats);
}
