/*
 * scheduler.cc: runs a grid on the CPU. Blocks run one after another on the
 * calling OS thread; within a block every CUDA thread is a fiber (ucontext)
 * that runs until it reaches a barrier or returns. When no fiber can run,
 * the scheduler releases a warp whose every lane waits at a warp exchange,
 * else the block when every thread waits at the same __syncthreads, else it
 * fails the launch: threads waiting at different barriers, or waiting while
 * others have returned, would hang or misbehave on a GPU.
 *
 * The fibers of a block run in forward order or, per phase, in a shuffled
 * order drawn from the stream's seed; blocks likewise.
 */
#include "emulation_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#ifdef TC_EMULATION_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

/* Switching fibers: on x86-64 a few instructions that save the callee-saved
 * registers and the floating-point control words on the old stack and
 * restore them from the new one (swapcontext would also make a system call
 * per switch for the signal mask, which dominated the running time);
 * elsewhere ucontext. */
#if defined(__x86_64__)
#define TC_EMULATION_FAST_SWITCH 1
extern "C" void tc_emulation_switch(void **save_stack_pointer, void *next_stack_pointer);
__asm__(".text\n"
        ".p2align 4\n"
        ".hidden tc_emulation_switch\n"
        ".globl tc_emulation_switch\n"
        ".type tc_emulation_switch, @function\n"
        "tc_emulation_switch:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    subq $8, %rsp\n"
        "    stmxcsr (%rsp)\n"
        "    fnstcw 4(%rsp)\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    ldmxcsr (%rsp)\n"
        "    fldcw 4(%rsp)\n"
        "    addq $8, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size tc_emulation_switch, .-tc_emulation_switch\n");
#endif

namespace tc_emulation {

namespace {

#ifdef TC_EMULATION_ASAN
const size_t stack_bytes = 512 * 1024;
#else
const size_t stack_bytes = 128 * 1024;
#endif

enum fiber_state { RUNNABLE, AT_BLOCK_BARRIER, AT_WARP_BARRIER, EXITED };

struct fiber {
#ifdef TC_EMULATION_FAST_SWITCH
    void *stack_pointer;
#else
    ucontext_t context;
#endif
    char *stack;
    fiber_state state;
    thread_position position;
    const char *barrier_file;
    int barrier_line;
    const char *warp_what;
    unsigned warp_mask;
    uint64_t exchange;
    void *fake_stack;
};

/* One block being run. */
struct block_run {
    const char *kernel_name;
    std::vector<fiber> fibers;
    int threads;
#ifdef TC_EMULATION_FAST_SWITCH
    void *scheduler_stack_pointer;
#else
    ucontext_t scheduler;
#endif
    void *scheduler_fake_stack;
    const void *scheduler_stack_bottom;
    size_t scheduler_stack_size;
    fiber *current;
    thread_body body;
    void *closure;
    void *dynamic_shared;
};

thread_local block_run *active_run;

uint64_t split_mix(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

template <typename T> void shuffle_in_place(std::vector<T> &items, uint64_t *rng) {
    for (size_t i = items.size(); i > 1; i--) {
        size_t j = (size_t)(split_mix(rng) % i);
        std::swap(items[i - 1], items[j]);
    }
}

void switch_to_fiber(block_run *run, fiber *f) {
    run->current = f;
#ifdef TC_EMULATION_ASAN
    __sanitizer_start_switch_fiber(&run->scheduler_fake_stack, f->stack, stack_bytes);
#endif
#ifdef TC_EMULATION_FAST_SWITCH
    tc_emulation_switch(&run->scheduler_stack_pointer, f->stack_pointer);
#else
    swapcontext(&run->scheduler, &f->context);
#endif
#ifdef TC_EMULATION_ASAN
    __sanitizer_finish_switch_fiber(run->scheduler_fake_stack, nullptr, nullptr);
#endif
}

void switch_to_scheduler(block_run *run, fiber *f, bool exiting) {
#ifdef TC_EMULATION_ASAN
    __sanitizer_start_switch_fiber(exiting ? nullptr : &f->fake_stack, run->scheduler_stack_bottom,
                                   run->scheduler_stack_size);
#else
    (void)exiting;
#endif
#ifdef TC_EMULATION_FAST_SWITCH
    tc_emulation_switch(&f->stack_pointer, run->scheduler_stack_pointer);
#else
    swapcontext(&f->context, &run->scheduler);
#endif
#ifdef TC_EMULATION_ASAN
    __sanitizer_finish_switch_fiber(f->fake_stack, &run->scheduler_stack_bottom, &run->scheduler_stack_size);
#endif
}

void fiber_main() {
    block_run *run = active_run;
#ifdef TC_EMULATION_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &run->scheduler_stack_bottom, &run->scheduler_stack_size);
#endif
    run->body(run->closure);
    fiber *self = run->current;
    self->state = EXITED;
    switch_to_scheduler(run, self, true);
}

char *new_stack() {
    long page = sysconf(_SC_PAGESIZE);
    void *memory = mmap(nullptr, stack_bytes + (size_t)page, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (memory == MAP_FAILED) return nullptr;
    mprotect(memory, (size_t)page, PROT_NONE); /* a stack overflow faults instead of corrupting */
    return static_cast<char *>(memory) + page;
}

void free_stack(char *stack) {
    long page = sysconf(_SC_PAGESIZE);
    munmap(stack - page, stack_bytes + (size_t)page);
}

bool prepare_stacks(tc_emulation_stream *stream, int threads) {
    while ((int)stream->stacks.size() < threads) {
        char *stack = new_stack();
        if (!stack) return false;
        stream->stacks.push_back(stack);
    }
    return true;
}

const char *state_name(const fiber &f) {
    switch (f.state) {
    case RUNNABLE: return "running";
    case AT_BLOCK_BARRIER: return "waiting at __syncthreads";
    case AT_WARP_BARRIER: return f.warp_what;
    default: return "returned";
    }
}

void describe_thread(const fiber &f, char *text, size_t size) {
    const uint3 &t = f.position.thread_index;
    if (f.state == AT_BLOCK_BARRIER)
        snprintf(text, size, "thread (%u,%u,%u) waits at __syncthreads (%s:%d)", t.x, t.y, t.z, f.barrier_file,
                 f.barrier_line);
    else
        snprintf(text, size, "thread (%u,%u,%u) is %s", t.x, t.y, t.z, state_name(f));
}

/* Fails the launch: block and the two threads that disagree. */
bool fail_block(block_run *run, const char *problem, const fiber &a, const fiber &b) {
    char first[160], second[160];
    describe_thread(a, first, sizeof first);
    describe_thread(b, second, sizeof second);
    const uint3 &block = a.position.block_index;
    set_error(cudaErrorLaunchFailure, "%s: %s in block (%u,%u,%u): %s, but %s", run->kernel_name, problem, block.x,
              block.y, block.z, first, second);
    return false;
}

/* Releases warps whose every lane waits at a warp exchange; false with the
 * launch failed when a warp cannot proceed. */
bool release_warps(block_run *run, bool *released) {
    for (int base = 0; base < run->threads; base += 32) {
        int end = base + 32 < run->threads ? base + 32 : run->threads;
        int waiting = 0, exited = -1, other = -1;
        for (int i = base; i < end; i++) {
            if (run->fibers[i].state == AT_WARP_BARRIER) waiting++;
            else if (run->fibers[i].state == EXITED) exited = i;
            else other = i;
        }
        if (waiting == 0) continue;
        int first = base;
        while (run->fibers[first].state != AT_WARP_BARRIER) first++;
        if (exited >= 0)
            return fail_block(run, "a warp exchange misses a lane", run->fibers[first], run->fibers[exited]);
        if (other >= 0) continue; /* some lanes wait at __syncthreads: a deadlock unless resolved elsewhere */
        unsigned lanes = end - base == 32 ? 0xffffffffu : (1u << (end - base)) - 1u;
        for (int i = base; i < end; i++) {
            const fiber &f = run->fibers[i];
            if (strcmp(f.warp_what, run->fibers[first].warp_what) != 0)
                return fail_block(run, "lanes of a warp are in different warp operations", run->fibers[first], f);
            if ((f.warp_mask & lanes) != lanes) {
                const uint3 &t = f.position.thread_index;
                set_error(cudaErrorLaunchFailure,
                          "%s: %s with mask 0x%08x at thread (%u,%u,%u) leaves out lanes of its warp (0x%08x): "
                          "the kernels use full masks",
                          run->kernel_name, f.warp_what, f.warp_mask, t.x, t.y, t.z, lanes);
                return false;
            }
        }
        for (int i = base; i < end; i++) run->fibers[i].state = RUNNABLE;
        *released = true;
    }
    return true;
}

/* Releases the block from a __syncthreads every thread waits at; false with
 * the launch failed when the barrier is divergent or nothing can proceed. */
bool release_block(block_run *run) {
    int waiting = -1, exited = -1, stuck = -1;
    for (int i = 0; i < run->threads; i++) {
        const fiber &f = run->fibers[i];
        if (f.state == AT_BLOCK_BARRIER) {
            if (waiting < 0) waiting = i;
            else if (f.barrier_line != run->fibers[waiting].barrier_line ||
                     strcmp(f.barrier_file, run->fibers[waiting].barrier_file) != 0)
                return fail_block(run, "threads wait at different __syncthreads", run->fibers[waiting], f);
        } else if (f.state == EXITED) {
            exited = i;
        } else {
            stuck = i;
        }
    }
    if (stuck >= 0 && waiting >= 0)
        return fail_block(run, "deadlock between a warp exchange and __syncthreads", run->fibers[waiting],
                          run->fibers[stuck]);
    if (stuck >= 0) {
        set_error(cudaErrorLaunchFailure, "%s: a warp exchange can never complete", run->kernel_name);
        return false;
    }
    if (exited >= 0)
        return fail_block(run, "divergent __syncthreads (some threads returned before it)", run->fibers[waiting],
                          run->fibers[exited]);
    for (int i = 0; i < run->threads; i++) run->fibers[i].state = RUNNABLE;
    return true;
}

/* Points f's context at fiber_main on its own stack (kept apart from the
 * loops above it: getcontext returns twice as far as the compiler knows). */
__attribute__((noinline)) void start_context(fiber *f) {
#ifdef TC_EMULATION_FAST_SWITCH
    /* The frame tc_emulation_switch pops: control words, six registers, and
     * fiber_main as the return address, entered as if called (rsp = 8 mod 16). */
    uint64_t *top = reinterpret_cast<uint64_t *>(reinterpret_cast<uintptr_t>(f->stack + stack_bytes) & ~(uintptr_t)15);
    uint64_t *sp = top;
    *--sp = 0; /* fiber_main's return address: it never returns */
    *--sp = reinterpret_cast<uint64_t>(&fiber_main);
    for (int i = 0; i < 6; i++) *--sp = 0;
    uint32_t mxcsr;
    uint16_t control;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(control));
    *--sp = (uint64_t)mxcsr | (uint64_t)control << 32;
    f->stack_pointer = sp;
#else
    getcontext(&f->context);
    f->context.uc_stack.ss_sp = f->stack;
    f->context.uc_stack.ss_size = stack_bytes;
    f->context.uc_link = nullptr;
    makecontext(&f->context, fiber_main, 0);
#endif
}

/* Runs one block to completion; false with the launch failed otherwise. */
bool run_block(block_run *run, tc_emulation_stream *stream, uint3 block_index, dim3 grid, dim3 block,
               uint64_t *rng) {
    int index = 0;
    for (unsigned z = 0; z < block.z; z++)
        for (unsigned y = 0; y < block.y; y++)
            for (unsigned x = 0; x < block.x; x++, index++) {
                fiber &f = run->fibers[index];
                f.stack = stream->stacks[index];
                f.state = RUNNABLE;
                f.position.thread_index = uint3{x, y, z};
                f.position.block_index = block_index;
                f.position.block_dim = block;
                f.position.grid_dim = grid;
                f.fake_stack = nullptr;
#ifdef TC_EMULATION_ASAN
                ASAN_UNPOISON_MEMORY_REGION(f.stack, stack_bytes); /* a failed launch may leave frames poisoned */
#endif
                start_context(&f);
            }
    std::vector<int> order(run->threads);
    for (int i = 0; i < run->threads; i++) order[i] = i;
    for (;;) {
        if (stream->order == ORDER_SHUFFLED) shuffle_in_place(order, rng);
        bool all_exited = true;
        for (int i : order) {
            if (run->fibers[i].state == RUNNABLE) switch_to_fiber(run, &run->fibers[i]);
            if (run->fibers[i].state != EXITED) all_exited = false;
        }
        if (all_exited) return true;
        bool released = false;
        if (!release_warps(run, &released)) return false;
        if (released) continue;
        if (!release_block(run)) return false;
    }
}

bool check_configuration(const char *kernel_name, dim3 grid, dim3 block, size_t dynamic_shared_bytes) {
    uint64_t threads = (uint64_t)block.x * block.y * block.z;
    if (threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 ||
        grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
        set_error(cudaErrorInvalidConfiguration,
                  "%s: invalid launch configuration: grid (%u,%u,%u), block (%u,%u,%u) (at most 1024 threads, "
                  "grid.y and grid.z at most 65535, none 0)",
                  kernel_name, grid.x, grid.y, grid.z, block.x, block.y, block.z);
        return false;
    }
    if (dynamic_shared_bytes > 48 * 1024) {
        set_error(cudaErrorInvalidValue, "%s: %zu bytes of dynamic shared memory (at most 48 KiB without opting in)",
                  kernel_name, dynamic_shared_bytes);
        return false;
    }
    return true;
}

} /* namespace */

const thread_position &position() { return active_run->current->position; }

int lane_id() {
    const thread_position &p = active_run->current->position;
    unsigned linear = p.thread_index.x + p.block_dim.x * (p.thread_index.y + p.block_dim.y * p.thread_index.z);
    return (int)(linear % 32);
}

void *dynamic_shared() { return active_run->dynamic_shared; }

void sync_threads(const char *file, int line) {
    block_run *run = active_run;
    fiber *self = run->current;
    self->state = AT_BLOCK_BARRIER;
    self->barrier_file = file;
    self->barrier_line = line;
    switch_to_scheduler(run, self, false);
}

void warp_exchange(unsigned mask, uint64_t mine, uint64_t lanes[32], const char *what) {
    block_run *run = active_run;
    fiber *self = run->current;
    self->exchange = mine;
    self->warp_mask = mask;
    self->warp_what = what;
    self->state = AT_WARP_BARRIER;
    switch_to_scheduler(run, self, false);
    int linear = (int)(self - run->fibers.data());
    int base = linear / 32 * 32;
    for (int i = 0; i < 32; i++) lanes[i] = base + i < run->threads ? run->fibers[base + i].exchange : 0;
    /* Nobody may overwrite its value before every lane has read. */
    self->state = AT_WARP_BARRIER;
    switch_to_scheduler(run, self, false);
}

void run_grid(const char *kernel_name, dim3 grid, dim3 block, size_t dynamic_shared_bytes, cudaStream_t stream,
              thread_body body, void *closure) {
    if (!check_configuration(kernel_name, grid, block, dynamic_shared_bytes)) return;
    tc_emulation_stream default_stream{ORDER_FORWARD, 0, 0, {}};
    tc_emulation_stream *s = stream ? stream : &default_stream;
    uint64_t rng = s->seed ^ (0x5851f42d4c957f2dull * ++s->launches);
    block_run run{};
    run.kernel_name = kernel_name;
    run.threads = (int)(block.x * block.y * block.z);
    run.fibers.resize(run.threads);
    run.body = body;
    run.closure = closure;
    if (!prepare_stacks(s, run.threads)) {
        set_error(cudaErrorMemoryAllocation, "%s: no memory for %d fiber stacks", kernel_name, run.threads);
        release_stacks(&default_stream);
        return;
    }
    uint64_t blocks = (uint64_t)grid.x * grid.y * grid.z;
    std::vector<uint64_t> block_order;
    bool shuffle_blocks = s->order == ORDER_SHUFFLED && blocks <= (1u << 22);
    if (shuffle_blocks) {
        block_order.resize(blocks);
        for (uint64_t i = 0; i < blocks; i++) block_order[i] = i;
        shuffle_in_place(block_order, &rng);
    }
    device_work work;
    block_run *outer = active_run;
    active_run = &run;
    for (uint64_t i = 0; i < blocks; i++) {
        uint64_t linear = shuffle_blocks ? block_order[i] : i;
        uint3 index{(unsigned)(linear % grid.x), (unsigned)(linear / grid.x % grid.y),
                    (unsigned)(linear / grid.x / grid.y)};
        /* Uninitialised dynamic shared memory reads as NaN; its exact size lets ASan see overruns. */
        run.dynamic_shared = malloc(dynamic_shared_bytes ? dynamic_shared_bytes : 1);
        if (!run.dynamic_shared) {
            set_error(cudaErrorMemoryAllocation, "%s: no memory for shared memory", kernel_name);
            break;
        }
        memset(run.dynamic_shared, 0xff, dynamic_shared_bytes);
        bool ok = run_block(&run, s, index, grid, block, &rng);
        free(run.dynamic_shared);
        if (!ok) break;
    }
    active_run = outer;
    release_stacks(&default_stream);
}

void release_stacks(tc_emulation_stream *stream) {
    for (char *stack : stream->stacks) free_stack(stack);
    stream->stacks.clear();
}

} /* namespace tc_emulation */
