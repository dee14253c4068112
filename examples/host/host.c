/*
 * host.c: a C program embedding Lua 5.4 with the tricycle module linked in
 * statically, the way a game or an editor would. It loads a small GPT
 * (examples/host/frame.lua), runs one forward pass per simulated frame at a
 * fixed cadence, sleeping between frames (a step of Lua's collector runs
 * there), and prints what a host cares about: the frame-time distribution,
 * resident memory against the model's tensor bytes (--memory-detail: where
 * it is), and the CPU time the worker threads used while the host slept. A
 * frame whose Lua call fails (--bad-frame asks for an input of the wrong
 * shape) is reported and the next frame runs.
 *
 *   make examples-host && build/examples/host/host --frames 300
 *   build/examples/host/host --defaults    (the engine's defaults: spin, 64 MiB floor, no warm-up)
 *   build/examples/host/host --memory-detail
 *
 * Built by `make examples-host`; docs/HOSTS.md explains each control.
 */
#include "tricycle.h"
#include "tricycle_lua.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdint.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef TRICYCLE_SOURCE_ROOT
#define TRICYCLE_SOURCE_ROOT "."
#endif

/* The first frames are reported apart: the distribution a player feels is
 * that of the frames after them. */
#define FIRST_FRAMES 10

typedef struct host_options {
    int frames;
    double cadence_ms;
    int threads;        /* 0: the engine's choice */
    long long spin_us;  /* the workers' idle spin */
    long long floor_bytes;
    long long budget_bytes;
    int warmup_frames;  /* run at load time, not timed */
    long long warmup_ms; /* ... and for at least this long after the start (see below) */
    int bad_frame;      /* 1-based frame given a bad input; 0: none */
    bool park;          /* tc_park_threads after each frame */
    bool gc_step;       /* a step of Lua's collector after each frame, while the host would sleep */
    bool memory_detail; /* where the resident memory is, after loading and after the frames */
    const char *checkpoint;
    const char *root;
} host_options;

static void usage(FILE *out) {
    fprintf(out,
            "usage: host [--frames N] [--cadence-ms MS] [--threads N] [--spin US] [--floor BYTES]\n"
            "            [--budget BYTES] [--warmup N] [--warmup-ms MS] [--bad-frame K] [--checkpoint PATH]\n"
            "            [--root DIR] [--no-park] [--no-gc-step] [--memory-detail] [--defaults]\n"
            "  --defaults keeps the engine's defaults (64 MiB collector floor, no budget, no warm-up,\n"
            "  no parking of the workers and no collector step after a frame) to compare; later options still apply.\n"
            "  --memory-detail prints where the resident memory is at the start, after loading and after\n"
            "  the frames.\n");
}

static bool parse_integer(const char *text, long long low, long long high, long long *value) {
    char *end;
    errno = 0;
    long long parsed = strtoll(text, &end, 10);
    if (errno || end == text || *end || parsed < low || parsed > high) return false;
    *value = parsed;
    return true;
}

/* Fills options from argv; false (with a message) on a bad one. */
static bool parse_options(int argc, char **argv, host_options *options) {
    *options = (host_options){.frames = 300, .cadence_ms = 16.6, .spin_us = TC_DEFAULT_THREAD_SPIN_MICROSECONDS,
                              .park = true, .gc_step = true, .floor_bytes = 4 << 20,
                              .budget_bytes = 256 << 20, .warmup_frames = 3, .warmup_ms = 150};
    options->root = getenv("TRICYCLE_ROOT") ? getenv("TRICYCLE_ROOT") : TRICYCLE_SOURCE_ROOT;
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        if (strcmp(name, "--defaults") == 0) {
            options->spin_us = TC_DEFAULT_THREAD_SPIN_MICROSECONDS;
            options->floor_bytes = (long long)TC_LUA_DEFAULT_COLLECT_FLOOR;
            options->budget_bytes = 0;
            options->warmup_frames = 0;
            options->warmup_ms = 0;
            options->park = false;
            options->gc_step = false;
            continue;
        }
        if (strcmp(name, "--no-gc-step") == 0) {
            options->gc_step = false;
            continue;
        }
        if (strcmp(name, "--no-park") == 0) {
            options->park = false;
            continue;
        }
        if (strcmp(name, "--memory-detail") == 0) {
            options->memory_detail = true;
            continue;
        }
        if (strcmp(name, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "host: %s needs a value\n", name);
            return false;
        }
        const char *text = argv[++i];
        long long value = 0;
        bool ok = true;
        if (strcmp(name, "--frames") == 0) {
            ok = parse_integer(text, 1, 1000000, &value);
            options->frames = (int)value;
        } else if (strcmp(name, "--cadence-ms") == 0) {
            char *end;
            options->cadence_ms = strtod(text, &end);
            ok = end != text && !*end && options->cadence_ms >= 0 && options->cadence_ms <= 1000;
        } else if (strcmp(name, "--threads") == 0) {
            ok = parse_integer(text, 0, 1024, &value);
            options->threads = (int)value;
        } else if (strcmp(name, "--spin") == 0) {
            ok = parse_integer(text, 0, TC_MAX_THREAD_SPIN_MICROSECONDS, &options->spin_us);
        } else if (strcmp(name, "--floor") == 0) {
            ok = parse_integer(text, 0, INT64_MAX, &options->floor_bytes);
        } else if (strcmp(name, "--budget") == 0) {
            ok = parse_integer(text, 0, INT64_MAX, &options->budget_bytes);
        } else if (strcmp(name, "--warmup") == 0) {
            ok = parse_integer(text, 0, 1000, &value);
            options->warmup_frames = (int)value;
        } else if (strcmp(name, "--warmup-ms") == 0) {
            ok = parse_integer(text, 0, 60000, &options->warmup_ms);
        } else if (strcmp(name, "--bad-frame") == 0) {
            ok = parse_integer(text, 0, 1000000, &value);
            options->bad_frame = (int)value;
        } else if (strcmp(name, "--checkpoint") == 0) {
            options->checkpoint = text;
        } else if (strcmp(name, "--root") == 0) {
            options->root = text;
        } else {
            fprintf(stderr, "host: unknown option %s\n", name);
            usage(stderr);
            return false;
        }
        if (!ok) {
            fprintf(stderr, "host: bad value for %s: '%s'\n", name, text);
            return false;
        }
    }
    return true;
}

/* CPU time of the calling thread: a frame's wall time far above it was
 * spent waiting (preempted by other processes, or for a worker). */
static int64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Involuntary context switches of the calling thread so far. */
static long preemptions(void) {
    struct rusage usage;
    return getrusage(RUSAGE_THREAD, &usage) == 0 ? usage.ru_nivcsw : 0;
}

/* Page faults of the process so far (fresh memory touched for the first time). */
static long page_faults(void) {
    struct rusage usage;
    return getrusage(RUSAGE_SELF, &usage) == 0 ? usage.ru_minflt + usage.ru_majflt : 0;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* VmRSS of this process in bytes, 0 when unreadable. */
static long long resident_bytes(void) {
    FILE *file = fopen("/proc/self/status", "r");
    if (!file) return 0;
    char line[256];
    long long kb = 0;
    while (fgets(line, sizeof line, file))
        if (sscanf(line, "VmRSS: %lld kB", &kb) == 1) break;
    fclose(file);
    return kb * 1024;
}

/* Resident bytes of this process by kind of mapping, from /proc/self/smaps. */
typedef struct resident_parts {
    long long heap;          /* the main malloc heap: Lua's objects, small storage blocks */
    long long arenas;        /* the malloc arenas of other threads (64 MiB-aligned reservations) */
    long long stacks;        /* the main thread's and the 8 MiB stacks of the others */
    long long anonymous;     /* other anonymous memory: mapped storage blocks, large mallocs */
    long long files;         /* code and data of the program and its libraries */
} resident_parts;

#define ARENA_ALIGNMENT (64ull << 20) /* glibc's HEAP_MAX_SIZE on 64-bit systems */
#define THREAD_STACK_BYTES (8ull << 20)

static void read_resident_parts(resident_parts *parts) {
    *parts = (resident_parts){0};
    FILE *file = fopen("/proc/self/smaps", "r");
    if (!file) return;
    char line[512], name[256] = "";
    unsigned long long start = 0, end = 0;
    while (fgets(line, sizeof line, file)) {
        unsigned long long low, high;
        long long kb;
        char mapping[256] = "";
        if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %255s", &low, &high, mapping) >= 2) {
            start = low, end = high;
            snprintf(name, sizeof name, "%s", mapping);
        } else if (sscanf(line, "Rss: %lld kB", &kb) == 1) {
            long long bytes = kb * 1024;
            if (strcmp(name, "[heap]") == 0) parts->heap += bytes;
            else if (strcmp(name, "[stack]") == 0 || (!name[0] && end - start == THREAD_STACK_BYTES))
                parts->stacks += bytes;
            else if (!name[0] && start % ARENA_ALIGNMENT == 0) parts->arenas += bytes;
            else if (!name[0]) parts->anonymous += bytes;
            else parts->files += bytes;
        }
    }
    fclose(file);
}

/* Where the resident memory is (--memory-detail); L and ctx are NULL before the Lua state exists. */
static void print_memory_detail(const char *when, lua_State *L, tc_context *ctx) {
    const double MiB = 1024.0 * 1024.0;
    resident_parts parts;
    read_resident_parts(&parts);
    printf("memory %s: resident %.2f MiB: main heap %.2f, other threads' arenas %.2f, stacks %.2f, "
           "other anonymous %.2f, files %.2f\n",
           when, (double)resident_bytes() / MiB, (double)parts.heap / MiB, (double)parts.arenas / MiB,
           (double)parts.stacks / MiB, (double)parts.anonymous / MiB, (double)parts.files / MiB);
    if (!L) return;
    struct mallinfo2 heap = mallinfo2();
    printf("memory %s: malloc: arenas %.2f MiB (in use %.2f, free %.2f), mapped %.2f MiB in %zu blocks; "
           "storage in use %.2f MiB, kept for reuse %.2f MiB; Lua heap %.2f MiB\n",
           when, (double)heap.arena / MiB, (double)heap.uordblks / MiB, (double)heap.fordblks / MiB,
           (double)heap.hblkhd / MiB, heap.hblks, (double)tc_memory_in_use(ctx) / MiB,
           (double)tc_memory_cached(ctx) / MiB, (double)lua_gc(L, LUA_GCCOUNT, 0) / 1024.0);
}

/* The threads other than the main one (the engine's workers, and the
 * BLAS's own, which the engine keeps idle): CPU time used while the host
 * slept, per thread. */
#define MAX_TRACKED_THREADS 64
typedef struct thread_times {
    int n;
    long tid[MAX_TRACKED_THREADS];
    int64_t on_cpu_ns[MAX_TRACKED_THREADS];
} thread_times;

/* Reads each thread's CPU time so far (nanoseconds, from
 * /proc/self/task/<tid>/schedstat) into times; returns their sum. */
static int64_t read_thread_times(thread_times *times) {
    times->n = 0;
    DIR *tasks = opendir("/proc/self/task");
    if (!tasks) return 0;
    int64_t total = 0;
    long self = (long)getpid();
    for (struct dirent *entry; (entry = readdir(tasks)) && times->n < MAX_TRACKED_THREADS;) {
        long tid = strtol(entry->d_name, NULL, 10);
        if (entry->d_name[0] == '.' || tid == self) continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", entry->d_name);
        FILE *file = fopen(path, "r");
        if (!file) continue; /* the thread ended meanwhile */
        long long on_cpu = 0;
        if (fscanf(file, "%lld", &on_cpu) == 1) {
            times->tid[times->n] = tid;
            times->on_cpu_ns[times->n++] = on_cpu;
            total += on_cpu;
        }
        fclose(file);
    }
    closedir(tasks);
    return total;
}

/* Adds each thread's CPU time between before and after to idle (by tid). */
static void add_idle_times(thread_times *idle, const thread_times *before, const thread_times *after) {
    for (int i = 0; i < after->n; i++) {
        int64_t used = after->on_cpu_ns[i];
        for (int j = 0; j < before->n; j++)
            if (before->tid[j] == after->tid[i]) used -= before->on_cpu_ns[j];
        int slot = 0;
        while (slot < idle->n && idle->tid[slot] != after->tid[i]) slot++;
        if (slot == idle->n) {
            if (idle->n == MAX_TRACKED_THREADS) continue;
            idle->tid[idle->n] = after->tid[i];
            idle->on_cpu_ns[idle->n++] = 0;
        }
        idle->on_cpu_ns[slot] += used;
    }
}

static void sleep_until(int64_t deadline_ns) {
    struct timespec ts = {(time_t)(deadline_ns / 1000000000), (long)(deadline_ns % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-th quantile (0..1) of sorted[0..n-1], nearest rank. */
static double quantile(const double *sorted, int n, double q) {
    int rank = (int)(q * n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

static void print_distribution(const char *label, double *times, int n) {
    if (n == 0) return;
    qsort(times, (size_t)n, sizeof *times, compare_doubles);
    double median = quantile(times, n, 0.5);
    printf("%s: frames %d  median %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms  p99/median %.2f\n", label, n,
           median, quantile(times, n, 0.9), quantile(times, n, 0.99), times[n - 1],
           median > 0 ? quantile(times, n, 0.99) / median : 0);
}

/* package.path gains the source tree's lua/ folder, so require("tricycle")
 * finds the Lua modules; package.cpath is emptied, so no core.so on the
 * system can stand in for the module linked into this program. */
static void set_paths(lua_State *L, const char *root) {
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;", root, root);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
}

static int traceback(lua_State *L) {
    luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1;
}

/* Calls the function below nargs arguments on the stack, leaving its first
 * result; false (the message printed) when it raised an error. */
static bool call(lua_State *L, int nargs, const char *what) {
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    int status = lua_pcall(L, nargs, 1, base);
    lua_remove(L, base);
    if (status != LUA_OK) {
        printf("%s failed: %s\n", what, lua_tostring(L, -1));
        lua_pop(L, 1);
        return false;
    }
    return true;
}

int main(int argc, char **argv) {
    host_options options;
    if (!parse_options(argc, argv, &options)) return 2;
    int64_t program_start = now_ns();
    long long rss_at_start = resident_bytes();
    if (options.memory_detail) print_memory_detail("at start", NULL, NULL);

    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "host: could not create a Lua state\n");
        return 1;
    }
    luaL_openlibs(L);
    /* The module linked into this program, registered under the name the
     * Lua modules require; nothing is loaded from disk but Lua files. */
    luaL_requiref(L, "tricycle.core", luaopen_tricycle_core, 0);
    lua_pop(L, 1);
    set_paths(L, options.root);

    /* The host's controls, straight on the Lua state's engine context. */
    tc_context *ctx = tc_lua_context(L);
    if (options.threads > 0) tc_set_num_threads(ctx, options.threads);
    if (tc_set_thread_spin(ctx, options.spin_us) != TC_OK || tc_start_threads(ctx) != TC_OK) {
        fprintf(stderr, "host: %s\n", tc_last_error(ctx));
        lua_close(L);
        return 1;
    }
    tc_set_memory_budget(ctx, (size_t)options.budget_bytes);
    tc_lua_set_collect_floor(L, (size_t)options.floor_bytes);

    /* frame, info = dofile(root .. "/examples/host/frame.lua")({checkpoint = ...}) */
    char script[4096];
    snprintf(script, sizeof script, "%s/examples/host/frame.lua", options.root);
    int frame_ref = LUA_NOREF;
    bool loaded = luaL_loadfile(L, script) == LUA_OK;
    if (!loaded) {
        printf("loading %s failed: %s\n", script, lua_tostring(L, -1));
    } else if ((loaded = call(L, 0, "frame.lua"))) {
        lua_createtable(L, 0, 1);
        if (options.checkpoint) {
            lua_pushstring(L, options.checkpoint);
            lua_setfield(L, -2, "checkpoint");
        }
        int base = lua_gettop(L) - 2;
        lua_pushcfunction(L, traceback);
        lua_insert(L, base + 1);
        loaded = lua_pcall(L, 1, 2, base + 1) == LUA_OK;
        lua_remove(L, base + 1);
        if (!loaded) printf("loading the model failed: %s\n", lua_tostring(L, -1));
    }
    if (!loaded) {
        lua_close(L);
        return 1;
    }
    lua_getfield(L, -1, "tensor_bytes");
    long long tensor_bytes = (long long)lua_tointeger(L, -1);
    lua_getfield(L, -2, "parameters");
    long long parameters = (long long)lua_tointeger(L, -1);
    lua_getfield(L, -3, "source");
    printf("model: %s, %lld parameters, %lld tensor bytes\n", lua_tostring(L, -1), parameters, tensor_bytes);
    lua_getfield(L, -4, "context_length");
    int n_tokens = (int)lua_tointeger(L, -1);
    lua_pop(L, 5); /* the info table and its fields */
    frame_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    printf("settings: threads %d, spin %lld us, %s, collector floor %lld bytes, budget %lld bytes, "
           "warm-up %d frames and %lld ms, %s\n",
           tc_num_threads(ctx), (long long)tc_thread_spin(ctx), options.park ? "parked after each frame" : "no parking",
           (long long)tc_lua_collect_floor(L), (long long)tc_memory_budget(ctx), options.warmup_frames,
           options.warmup_ms, options.gc_step ? "a collector step after each frame" : "no collector step");

    /* Warm-up at load time: the first passes fault in the blocks the
     * allocator keeps and reach the collector's steady state. It also lasts
     * past OpenBLAS's start: its thread, made when the library loads, spins
     * on a core for its first ~65 ms (the engine never gives it work). */
    for (int i = 0; i < options.warmup_frames || now_ns() - program_start < options.warmup_ms * 1000000; i++) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, frame_ref);
        lua_pushinteger(L, n_tokens);
        if (!call(L, 1, "warm-up frame")) break;
        lua_pop(L, 1);
    }
    /* What loading and warming up left behind goes back to the system: the
     * garbage, the storage the engine kept for reuse, and the heap's free
     * tail. The frames then refill only what one frame needs. */
    lua_gc(L, LUA_GCCOLLECT, 0);
    tc_memory_release_cached(ctx);
    malloc_trim(0);
    long long rss_after_load = resident_bytes();
    if (options.memory_detail) print_memory_detail("after load", L, ctx);

    double *times = calloc((size_t)options.frames, sizeof *times);
    double *cpu_times = calloc((size_t)options.frames, sizeof *cpu_times);
    if (!times || !cpu_times) {
        free(times);
        free(cpu_times);
        lua_close(L);
        return 1;
    }
    int n_times = 0, first_frames = 0, failures = 0, ran_after_failure = 0, preempted_frames = 0;
    long faults[2] = {0, 0}; /* during the first frames, during the later ones */
    int64_t gc_step_ns = 0, idle_worker_ns = 0, idle_wall_ns = 0, busy_worker_ns = 0, idle_worker_later_ns = 0,
            idle_wall_later_ns = 0;
    thread_times before_sleep, after_sleep, idle_by_thread = {0};
    long long rss_most = rss_after_load;
    int64_t cadence_ns = (int64_t)(options.cadence_ms * 1e6);
    int64_t next_frame = now_ns();
    for (int frame = 1; frame <= options.frames; frame++) {
        int64_t worker_before_sleep = read_thread_times(&before_sleep), sleep_start = now_ns();
        sleep_until(next_frame);
        int64_t start = now_ns(), worker_at_start = read_thread_times(&after_sleep);
        idle_worker_ns += worker_at_start - worker_before_sleep;
        if (frame > FIRST_FRAMES) { /* past OpenBLAS's spin after it loads (docs/HOSTS.md) */
            add_idle_times(&idle_by_thread, &before_sleep, &after_sleep);
            idle_worker_later_ns += worker_at_start - worker_before_sleep;
            idle_wall_later_ns += start - sleep_start;
        }
        idle_wall_ns += start - sleep_start;
        next_frame += cadence_ns;
        if (next_frame < start) next_frame = start; /* a late frame does not make the next ones hurry */

        bool bad = frame == options.bad_frame;
        lua_rawgeti(L, LUA_REGISTRYINDEX, frame_ref);
        lua_pushinteger(L, bad ? n_tokens + 1 : n_tokens); /* one token past the context: a wrong shape */
        char what[64];
        snprintf(what, sizeof what, "frame %d", frame);
        long preemptions_before = preemptions(), faults_before = page_faults();
        int64_t cpu_start = thread_cpu_ns();
        start = now_ns();
        bool ok = call(L, 1, what);
        double elapsed_ms = (double)(now_ns() - start) / 1e6;
        double cpu_ms = (double)(thread_cpu_ns() - cpu_start) / 1e6;
        bool preempted = preemptions() != preemptions_before;
        if (options.park) tc_park_threads(ctx); /* the workers sleep until the next frame */
        if (options.gc_step) {
            /* Lua's own garbage (a frame's tensor handles and tables) is
             * collected a step at a time in the idle time, not left to pile
             * up until the collector's pause lets it run */
            int64_t step_start = now_ns();
            lua_gc(L, LUA_GCSTEP, 0);
            gc_step_ns += now_ns() - step_start;
        }
        faults[frame <= FIRST_FRAMES ? 0 : 1] += page_faults() - faults_before;
        busy_worker_ns += read_thread_times(&after_sleep) - worker_at_start;
        if (!ok) {
            failures++;
            continue;
        }
        lua_pop(L, 1);
        if (failures > 0) ran_after_failure++;
        if (frame <= FIRST_FRAMES) first_frames++;
        else if (preempted) preempted_frames++;
        cpu_times[n_times] = cpu_ms;
        times[n_times++] = elapsed_ms;
        long long rss = resident_bytes();
        if (rss > rss_most) rss_most = rss;
    }

    printf("frames run: %d, failed: %d, run after a failure: %d\n", n_times, failures, ran_after_failure);
    print_distribution("first frames", times, first_frames);
    print_distribution("later frames", times + first_frames, n_times - first_frames);
    print_distribution("later frames, main thread's CPU time", cpu_times + first_frames, n_times - first_frames);
    printf("later frames preempted (an involuntary context switch during the frame): %d\n", preempted_frames);
    printf("page faults: %ld in the first %d frames, %ld in the later ones\n", faults[0], FIRST_FRAMES, faults[1]);
    const double MiB = 1024.0 * 1024.0;
    printf("resident: %.1f MiB at start, %.1f MiB after load, %.1f MiB at most; model tensors %.1f MiB; "
           "growth over the start %.2fx the tensors\n",
           (double)rss_at_start / MiB, (double)rss_after_load / MiB, (double)rss_most / MiB,
           (double)tensor_bytes / MiB,
           tensor_bytes > 0 ? (double)(rss_most - rss_at_start) / (double)tensor_bytes : 0);
    printf("storage in use %.1f MiB, peak %.1f MiB, kept for reuse %.1f MiB (freed blocks, GEMM packing space); "
           "Lua heap %.1f MiB\n", (double)tc_memory_in_use(ctx) / MiB, (double)tc_memory_peak(ctx) / MiB,
           (double)tc_memory_cached(ctx) / MiB, (double)lua_gc(L, LUA_GCCOUNT, 0) / 1024.0);
    if (options.gc_step)
        printf("collector steps after the frames: %.3f ms each on average\n",
               (double)gc_step_ns / 1e6 / options.frames);
    printf("worker CPU: %.3f ms while the host slept %.1f ms (%.3f%% of a core), %.1f ms during frames\n",
           (double)idle_worker_ns / 1e6, (double)idle_wall_ns / 1e6,
           idle_wall_ns > 0 ? 100.0 * (double)idle_worker_ns / (double)idle_wall_ns : 0,
           (double)busy_worker_ns / 1e6);
    printf("worker CPU while the host slept after the first %d frames: %.3f ms in %.1f ms (%.3f%% of a core); "
           "by thread:", FIRST_FRAMES, (double)idle_worker_later_ns / 1e6, (double)idle_wall_later_ns / 1e6,
           idle_wall_later_ns > 0 ? 100.0 * (double)idle_worker_later_ns / (double)idle_wall_later_ns : 0);
    for (int i = 0; i < idle_by_thread.n; i++)
        printf(" %ld: %.3f ms", idle_by_thread.tid[i], (double)idle_by_thread.on_cpu_ns[i] / 1e6);
    printf("\n");
    if (options.memory_detail) print_memory_detail("after the frames", L, ctx);
    free(times);
    free(cpu_times);
    luaL_unref(L, LUA_REGISTRYINDEX, frame_ref);
    lua_close(L);
    return failures > 0 && ran_after_failure == 0 && options.bad_frame < options.frames ? 1 : 0;
}
