/*
 * cpu_pool.c: persistent workers for one context, woken per job.
 *
 * A job is published by writing its fields, then `claim` (the job's
 * generation in the high 32 bits, the next unclaimed task in the low ones),
 * then bumping `generation`. Workers wait for the bump, spinning for the
 * pool's idle spin time (0: not at all) and then sleeping on `wake`; the
 * caller and the woken
 * workers then claim tasks one at a time with a compare-and-swap that also
 * checks the generation, so a worker that wakes late can never take a task
 * of a later job. Which thread runs a task does not change what the task
 * computes (its range is fixed by its index), so results stay the same bits
 * while a descheduled worker cannot hold the caller up: on a busy machine
 * the caller simply runs the tasks nobody has claimed. The caller waits for
 * `completed` to reach n_tasks the same way (spin for CALLER_SPIN_NANOSECONDS,
 * then sleep on `done`).
 * The sleepers / flags are sequentially consistent atomics, so a waker
 * either sees the sleeper's mark and signals under the mutex, or the
 * sleeper sees the new value before it blocks: no wake-up can be lost.
 */
#include "cpu_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* The caller waits for the tasks of a job it runs itself: they end within
 * microseconds, so it spins that long before it sleeps. */
#define CALLER_SPIN_NANOSECONDS 100000

typedef struct worker {
    cpu_pool *pool;
    int index;
} worker;

struct cpu_pool {
    int n_workers;
    pthread_t *threads;
    worker *workers;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    pthread_cond_t done;
    atomic_uint_fast64_t generation;
    atomic_int sleeping_workers;
    atomic_uint_fast64_t claim; /* generation << 32 | next task */
    atomic_int completed;
    atomic_bool caller_sleeping;
    atomic_bool stopping;
    atomic_int_fast64_t idle_spin_nanoseconds; /* how long a worker spins for the next job before it sleeps */
    atomic_bool parked; /* no job is coming soon: spinning workers go to sleep (cpu_pool_park) */
    bool running; /* touched only by the driving thread and its tasks */
    /* The job being run, valid from a generation bump to its completion. */
    cpu_pool_task task;
    void *state;
    atomic_int n_tasks; /* atomic: a late worker may read it while the next job is set up */
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_nanoseconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until generation differs from seen or the spin time is over;
 * returns the generation observed. */
static uint64_t spin_for_generation(cpu_pool *pool, uint64_t seen) {
    int64_t spin = atomic_load_explicit(&pool->idle_spin_nanoseconds, memory_order_relaxed);
    if (spin <= 0) return atomic_load_explicit(&pool->generation, memory_order_acquire);
    int64_t start = now_nanoseconds();
    for (;;) {
        for (int i = 0; i < 64; i++) {
            uint64_t g = atomic_load_explicit(&pool->generation, memory_order_acquire);
            if (g != seen) return g;
            cpu_relax();
        }
        if (now_nanoseconds() - start > spin || atomic_load_explicit(&pool->parked, memory_order_relaxed))
            return seen;
    }
}

static uint64_t wait_for_job(cpu_pool *pool, uint64_t seen) {
    uint64_t g = spin_for_generation(pool, seen);
    if (g != seen) return g;
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add(&pool->sleeping_workers, 1);
    while ((g = atomic_load(&pool->generation)) == seen) pthread_cond_wait(&pool->wake, &pool->mutex);
    atomic_fetch_sub(&pool->sleeping_workers, 1);
    pthread_mutex_unlock(&pool->mutex);
    return g;
}

/* Claims the next task of job `generation`; -1 when none is left (or the
 * job is over). */
static int claim_task(cpu_pool *pool, uint64_t generation) {
    uint64_t current = atomic_load(&pool->claim);
    for (;;) {
        if (current >> 32 != (generation & 0xffffffffu)) return -1;
        int index = (int)(current & 0xffffffffu);
        if (index >= atomic_load_explicit(&pool->n_tasks, memory_order_relaxed)) return -1;
        if (atomic_compare_exchange_weak(&pool->claim, &current, current + 1)) return index;
    }
}

/* Runs claimed tasks of job `generation` until none is left. */
static void run_tasks(cpu_pool *pool, uint64_t generation, bool is_caller) {
    for (int index; (index = claim_task(pool, generation)) >= 0;) {
        pool->task(index, pool->state);
        if (atomic_fetch_add(&pool->completed, 1) + 1 == atomic_load(&pool->n_tasks) && !is_caller &&
            atomic_load(&pool->caller_sleeping)) {
            pthread_mutex_lock(&pool->mutex);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->mutex);
        }
    }
}

static void *worker_main(void *argument) {
    worker *self = argument;
    cpu_pool *pool = self->pool;
    uint64_t seen = 0;
    for (;;) {
        seen = wait_for_job(pool, seen);
        if (atomic_load(&pool->stopping)) return NULL;
        run_tasks(pool, seen, false);
    }
}

/* Publishes a generation bump and wakes the sleepers. */
static void bump_generation(cpu_pool *pool) {
    atomic_fetch_add(&pool->generation, 1);
    if (atomic_load(&pool->sleeping_workers) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
}

static void wait_for_workers(cpu_pool *pool) {
    int64_t start = now_nanoseconds();
    int n_tasks = atomic_load(&pool->n_tasks);
    while (atomic_load_explicit(&pool->completed, memory_order_acquire) < n_tasks) {
        for (int i = 0; i < 64; i++) cpu_relax();
        if (now_nanoseconds() - start > CALLER_SPIN_NANOSECONDS) break;
    }
    if (atomic_load(&pool->completed) == n_tasks) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->caller_sleeping, true);
    while (atomic_load(&pool->completed) < n_tasks) pthread_cond_wait(&pool->done, &pool->mutex);
    atomic_store(&pool->caller_sleeping, false);
    pthread_mutex_unlock(&pool->mutex);
}

cpu_pool *cpu_pool_new(int threads, int64_t idle_spin_nanoseconds) {
    if (threads < 2) return NULL;
    cpu_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->threads = calloc((size_t)threads - 1, sizeof *pool->threads);
    pool->workers = calloc((size_t)threads - 1, sizeof *pool->workers);
    if (!pool->threads || !pool->workers) {
        free(pool->threads);
        free(pool->workers);
        free(pool);
        return NULL;
    }
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->sleeping_workers, 0);
    atomic_init(&pool->claim, 0);
    atomic_init(&pool->n_tasks, 0);
    atomic_init(&pool->completed, 0);
    atomic_init(&pool->caller_sleeping, false);
    atomic_init(&pool->stopping, false);
    atomic_init(&pool->idle_spin_nanoseconds, idle_spin_nanoseconds);
    atomic_init(&pool->parked, false);
    for (int i = 0; i < threads - 1; i++) {
        pool->workers[i] = (worker){pool, i + 1};
        if (pthread_create(&pool->threads[i], NULL, worker_main, &pool->workers[i]) != 0) break;
        pool->n_workers++;
    }
    if (pool->n_workers == 0) {
        cpu_pool_free(pool);
        return NULL;
    }
    return pool;
}

void cpu_pool_free(cpu_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stopping, true);
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add(&pool->generation, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 0; i < pool->n_workers; i++) pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    free(pool->threads);
    free(pool->workers);
    free(pool);
}

void cpu_pool_park(cpu_pool *pool) {
    if (pool) atomic_store_explicit(&pool->parked, true, memory_order_relaxed);
}

void cpu_pool_set_idle_spin(cpu_pool *pool, int64_t nanoseconds) {
    if (pool) atomic_store_explicit(&pool->idle_spin_nanoseconds, nanoseconds, memory_order_relaxed);
}

int cpu_pool_threads(const cpu_pool *pool) { return pool ? pool->n_workers + 1 : 1; }

void cpu_pool_run(cpu_pool *pool, int n_tasks, cpu_pool_task task, void *state) {
    if (!pool || n_tasks <= 1 || pool->running) {
        for (int i = 0; i < n_tasks; i++) task(i, state);
        return;
    }
    if (n_tasks > pool->n_workers + 1) n_tasks = pool->n_workers + 1;
    pool->running = true;
    atomic_store_explicit(&pool->parked, false, memory_order_relaxed);
    pool->task = task;
    pool->state = state;
    atomic_store(&pool->n_tasks, n_tasks);
    atomic_store(&pool->completed, 0);
    uint64_t generation = atomic_load(&pool->generation) + 1;
    atomic_store(&pool->claim, (generation & 0xffffffffu) << 32);
    bump_generation(pool);
    run_tasks(pool, generation, true);
    wait_for_workers(pool);
    pool->running = false;
}

bool cpu_pool_running(const cpu_pool *pool) { return pool && pool->running; }

int cpu_pool_available_processors(void) {
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (int)online : 1;
}
