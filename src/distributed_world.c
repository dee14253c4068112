/*
 * distributed_world.c: a context's world of processes: joining it over MPI
 * (libtricycle_mpi.so, opened here), the notices ranks send each other (one
 * failed, one left), watching that the processes of this machine's other
 * ranks still exist, and leaving. distributed.c runs the collectives.
 */
#include "distributed_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MPI_LIBRARY_NAME "libtricycle_mpi.so"

double tc_distributed_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- the world's failure ---- */

void tc_distributed_break(struct tc_distributed *d, const char *format, ...) {
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
        snprintf(message, sizeof message, "%s: %s", tc_collective_kind_names[c->kind], d->failure);
        tc_collective_finish(c, TC_ERROR_STATE, message);
    }
}

/* ---- notices ---- */

static void post_notice_receive(struct tc_distributed *d) {
    char error[TC_MPI_ERROR_SIZE];
    if (d->mpi->receive_any(d->control, &d->incoming, (int)sizeof d->incoming, &d->notice_request, error))
        tc_distributed_break(d, "waiting for the other ranks' notices failed: %s", error);
}

static void handle_notice(struct tc_distributed *d, int source) {
    notice *n = &d->incoming;
    n->text[NOTICE_TEXT - 1] = '\0';
    int rank = n->rank >= 0 && n->rank < d->world ? n->rank : source;
    if (n->kind == NOTICE_FAILED)
        tc_distributed_break(d, "rank %d stopped: %s", rank, n->text[0] ? n->text : "(no reason given)");
    else if (n->kind == NOTICE_LEFT && d->left_after[rank] < 0)
        d->left_after[rank] = n->collectives >= 0 ? n->collectives : 0;
}

void tc_distributed_check_notices(struct tc_distributed *d) {
    char error[TC_MPI_ERROR_SIZE];
    while (d->notice_request) {
        bool done = false;
        int source = -1;
        if (d->mpi->test(&d->notice_request, &done, &source, error)) {
            tc_distributed_break(d, "reading the other ranks' notices failed: %s", error);
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
    double deadline = tc_distributed_now() + NOTICE_SEND_SECONDS;
    bool pending = true;
    while (pending && tc_distributed_now() < deadline) {
        pending = false;
        for (int r = 0; r < d->world; r++) {
            if (!requests[r]) continue;
            bool done = false;
            if (d->mpi->test(&requests[r], &done, NULL, error)) requests[r] = NULL; /* given up */
            else if (!done) pending = true;
        }
        if (pending) {
            tc_distributed_check_notices(d); /* the receiving side may need this rank to move along */
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

void tc_distributed_check_ranks(struct tc_distributed *d, const tc_collective *c, double t) {
    for (int r = 0; r < d->world && !d->broken; r++) {
        if (r == d->rank) continue;
        if (d->left_after[r] >= 0) {
            if (c && d->left_after[r] < c->sequence)
                tc_distributed_break(d,
                            "rank %d left the world after %lld collectives, without starting collective #%lld "
                            "(%s): the ranks did not run the same collectives (its program ended early?)",
                            r, (long long)d->left_after[r], (long long)c->sequence, tc_collective_kind_names[c->kind]);
            continue;
        }
        if (t - d->last_liveness < LIVENESS_SECONDS || !same_host(d, r)) continue;
        if (kill((pid_t)d->peers[r].pid, 0) == 0 || errno != ESRCH) {
            d->gone_since[r] = 0;
        } else if (d->gone_since[r] == 0) {
            d->gone_since[r] = t;
        } else if (t - d->gone_since[r] >= GONE_GRACE_SECONDS) {
            tc_distributed_break(d, "rank %d (process %d on %s) ended without a word while rank %d waited for it%s", r,
                        (int)d->peers[r].pid, d->peers[r].host, d->rank, c ? "" : " to leave");
        }
    }
    if (t - d->last_liveness >= LIVENESS_SECONDS) d->last_liveness = t;
}

void tc_distributed_back_off(int *rounds) {
    (*rounds)++;
    if (*rounds < 64) return;
    long ns = 10000L << (*rounds < 70 ? *rounds - 64 : 6);
    if (ns > 1000000L) ns = 1000000L;
    nanosleep(&(struct timespec){0, ns}, NULL);
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
        tc_collective_release_tensors(c);
        if (!c->freed) {
            /* the caller still holds it: it stays, finished (or failed), detached from the world */
            c->done = true;
            c->detached = true;
            c->next = NULL;
            if (!finished) {
                c->status = TC_ERROR_STATE;
                snprintf(c->message, sizeof c->message, "%s: the context left its world before it finished",
                         tc_collective_kind_names[c->kind]);
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
    if (!d) return tc_distributed_not_joined(ctx, "distributed.abort");
    if (d->broken) return TC_OK; /* the others already know, or stopped first */
    send_notice(ctx, d, NOTICE_FAILED, message);
    tc_distributed_break(d, "rank %d stopped: %s", d->rank, message && message[0] ? message : "(no reason given)");
    return TC_OK;
}

/* Waits for the collectives still running, then for every other rank to
 * leave; false when the world broke meanwhile. */
static bool leave(tc_context *ctx, struct tc_distributed *d) {
    while (!d->broken) { /* the collectives still running (tc_collective_wait_for may free finished ones) */
        tc_collective *running = d->head;
        while (running && running->done) running = running->next;
        if (!running) break;
        tc_collective_wait_for(running);
    }
    send_notice(ctx, d, NOTICE_LEFT, NULL);
    bool everyone = false;
    int rounds = 0;
    double started = tc_distributed_now();
    while (!d->broken && !everyone) {
        tc_distributed_check_notices(d);
        double t = tc_distributed_now();
        tc_distributed_check_ranks(d, NULL, t);
        everyone = true;
        for (int r = 0; r < d->world; r++)
            if (r != d->rank && d->left_after[r] < 0) everyone = false;
        if (!everyone && !d->broken && d->timeout > 0 && t - started > d->timeout)
            tc_distributed_break(d, "rank %d waited %g s (the timeout) for the other ranks to leave", d->rank,
                                 d->timeout);
        if (!everyone) tc_distributed_back_off(&rounds);
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
