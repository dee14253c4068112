/*
 * distributed.c: the collectives on a context's tensors (tricycle.h states
 * the contract); distributed_world.c holds the world they run in.
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
#include "distributed_internal.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const char *const tc_collective_kind_names[] = {"all_reduce", "broadcast", "all_gather", "reduce_scatter", "barrier"};

/* ---- running collectives ---- */

void tc_collective_release_tensors(tc_collective *c) {
    if (c->abandoned) return; /* MPI or NCCL may still write into them */
    tc_tensor_release(c->target);
    tc_tensor_release(c->buffer);
    tc_tensor_release(c->out);
    tc_tensor_release(c->segment);
    c->target = c->buffer = c->out = c->segment = NULL;
}

void tc_collective_finish(tc_collective *c, tc_status status, const char *message) {
    c->done = true;
    c->status = status;
    if (status != TC_OK) snprintf(c->message, sizeof c->message, "%s", message ? message : "failed");
    tc_collective_release_tensors(c);
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
    tc_collective_finish(c, status, message);
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
        tc_distributed_break(d, "MPI failed on rank %d: %s", d->rank, error);
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
            tc_distributed_break(d, "NCCL failed on rank %d: %s", d->rank, tc_last_error(c->ctx));
            return true;
        }
        return done;
    }
    char error[TC_MPI_ERROR_SIZE];
    if (d->mpi->test(&c->request, &done, NULL, error)) {
        c->abandoned = true;
        tc_distributed_break(d, "MPI failed on rank %d: %s", d->rank, error);
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
                    tc_distributed_break(d, "rank %d failed between the stages of a %s: %s", d->rank,
                                         tc_collective_kind_names[c->kind], tc_last_error(c->ctx));
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

void tc_collective_wait_for(tc_collective *c) {
    struct tc_distributed *d = c->ctx->distributed;
    double started = tc_distributed_now();
    int rounds = 0;
    while (!c->done) {
        progress(d);
        if (c->done) break;
        tc_distributed_check_notices(d);
        double t = tc_distributed_now();
        tc_distributed_check_ranks(d, c, t);
        if (!c->done && d->timeout > 0 && t - started > d->timeout)
            tc_distributed_break(d,
                        "rank %d waited %g s (the timeout) for the other ranks in collective #%lld (%s); they "
                        "did not all start it",
                        d->rank, d->timeout, (long long)c->sequence, tc_collective_kind_names[c->kind]);
        if (!c->done) tc_distributed_back_off(&rounds);
    }
    d->stats.wait_seconds += tc_distributed_now() - started;
}

tc_status tc_collective_wait(tc_collective *c) {
    if (!c->done) tc_collective_wait_for(c);
    return report(c);
}

tc_status tc_collective_test(tc_collective *c, bool *done) {
    struct tc_distributed *d = c->ctx->distributed;
    if (!c->done) {
        progress(d);
        if (!c->done) {
            tc_distributed_check_notices(d);
            tc_distributed_check_ranks(d, c, tc_distributed_now());
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

tc_status tc_distributed_not_joined(tc_context *ctx, const char *function) {
    return tc_fail(ctx, TC_ERROR_STATE,
                   "%s: this context has not joined a world of processes (call tc_distributed_init first; "
                   "tc.distributed.init() in Lua)",
                   function);
}

static tc_status check_joined(const char *function, const tc_tensor *t) {
    return t->ctx->distributed ? TC_OK : tc_distributed_not_joined(t->ctx, function);
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
        snprintf(message, sizeof message, "%s: %s", tc_collective_kind_names[c->kind], d->failure);
        tc_collective_finish(c, TC_ERROR_STATE, message);
    } else if (c->nccl) {
        tc_status status = start_nccl(c);
        if (status != TC_OK) {
            char message[FAILURE_SIZE];
            snprintf(message, sizeof message, "%s", tc_last_error(ctx));
            tc_collective_finish(c, status, message);
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
    tc_collective_release_tensors(c);
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

/* Starts all_gather or reduce_scatter c of t into out (held until it
 * finishes); in a world of one, out is a copy of t. */
static tc_status launch_into(tc_collective *c, bool nccl, tc_tensor *t, const int64_t *counts, int64_t each,
                             tc_tensor *out, tc_collective **pending) {
    c->nccl = nccl;
    tc_tensor_retain(out);
    c->out = out;
    tc_status status = contiguous_buffer(t, &c->buffer);
    if (status == TC_OK) status = set_counts(c, counts, each);
    if (status == TC_OK && !t->ctx->distributed->mpi && !nccl) {
        int64_t n = tc_tensor_numel(t);
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
    return launch_into(c, nccl, t, counts, n, out, pending);
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
    return launch_into(c, nccl, t, counts, each, out, pending);
}

tc_status tc_barrier(tc_context *ctx) {
    if (!ctx->distributed) return tc_distributed_not_joined(ctx, "barrier");
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
            tc_distributed_break(d, "NCCL could not start on rank %d: %s", d->rank, message);
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
    return tc_fail(ctx, TC_ERROR_STATE, "%s: not a collective NCCL runs", tc_collective_kind_names[c->kind]);
}
