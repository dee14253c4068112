/*
 * cpu_pool.h: the worker threads of one context. A pool runs one job at a
 * time: n_tasks calls of task(index, state), each index run once, by
 * whichever thread (the caller or a worker) claims it first; a task's work
 * must depend only on its index, so results do not depend on who ran it.
 * Workers spin for a short while after a job (the idle spin time: during a
 * training step the next job usually follows within microseconds), then
 * sleep on a condition variable, so an idle pool costs nothing and never
 * competes with another pool for cores; a host that calls in once per frame
 * sets the spin to 0 so that workers sleep at once. Only the
 * thread that drives the context may start jobs.
 */
#ifndef TRICYCLE_CPU_POOL_H
#define TRICYCLE_CPU_POOL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct cpu_pool cpu_pool;

typedef void (*cpu_pool_task)(int index, void *state);

/* A pool with threads - 1 workers (started here) that spin for
 * idle_spin_nanoseconds after each job (0: sleep at once); NULL when out of
 * memory or when no thread could be started. */
cpu_pool *cpu_pool_new(int threads, int64_t idle_spin_nanoseconds);

/* Changes the idle spin time; workers already spinning finish their spin
 * with the old one. NULL is ignored. */
void cpu_pool_set_idle_spin(cpu_pool *pool, int64_t nanoseconds);

/* Joins the workers and frees the pool; NULL is ignored. */
void cpu_pool_free(cpu_pool *pool);

/* Tells the workers that no job follows soon (a host's frame is over):
 * those spinning stop and sleep at once; the next job clears it, so the
 * spin still bridges the gaps between that job and the ones after it. NULL
 * is ignored. */
void cpu_pool_park(cpu_pool *pool);

/* The number of threads a job can use (workers + the caller). */
int cpu_pool_threads(const cpu_pool *pool);

/* Runs task(0..n_tasks-1) and returns when all are done. n_tasks is at most
 * cpu_pool_threads(pool). A call made while a job runs (from inside a task)
 * runs its tasks inline, in order. */
void cpu_pool_run(cpu_pool *pool, int n_tasks, cpu_pool_task task, void *state);

/* True while a job runs (so a call from inside a task would run inline). */
bool cpu_pool_running(const cpu_pool *pool);

/* The processors this process may run on, at least 1. */
int cpu_pool_available_processors(void);

#endif
