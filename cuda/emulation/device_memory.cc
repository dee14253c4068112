/*
 * device_memory.cc: the emulated device's memory.
 *
 * By default a device buffer is host memory from posix_memalign, so
 * AddressSanitizer checks every kernel access against the buffer's size.
 *
 * With TRICYCLE_CUDA_EMULATION_FENCE=1, device buffers come from one reserved
 * address range that only the emulated device may touch: it is readable and
 * writable while a kernel, a copy, a memset or a GEMM runs, and inaccessible
 * otherwise. Host code that reads or writes a device pointer directly (which
 * on a GPU crashes or reads garbage, but works on emulated memory) then
 * faults; a SIGSEGV handler says so and hands over to the previous handler
 * (AddressSanitizer's prints the stack). Buffers are whole pages, so this
 * mode is for finding host accesses, and the default mode for overruns.
 *
 * The fence is one state for the process (the device is one device): device
 * work from several threads is serialised by a lock while it is enabled.
 */
#include "emulation_internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <map>
#include <mutex>

namespace tc_emulation {

namespace {

const size_t reserved_bytes = (size_t)64 << 30;

struct fenced_memory {
    std::recursive_mutex lock;
    char *base = nullptr;
    size_t used = 0;                          /* the prefix of the range handed out so far */
    int open = 0;                             /* nesting depth of device work */
    std::map<char *, size_t> live;            /* buffer -> bytes (whole pages) */
    std::multimap<size_t, char *> free_spans; /* bytes -> released buffer */
    struct sigaction previous;
};

fenced_memory *fence = nullptr;
std::once_flag fence_once;

size_t page_bytes() {
    static const size_t bytes = (size_t)sysconf(_SC_PAGESIZE);
    return bytes;
}

void write_text(const char *text) {
    ssize_t ignored = write(STDERR_FILENO, text, strlen(text));
    (void)ignored;
}

void on_fault(int signal_number, siginfo_t *info, void *context) {
    char *address = static_cast<char *>(info->si_addr);
    if (fence && address >= fence->base && address < fence->base + reserved_bytes) {
        char message[256];
        snprintf(message, sizeof message,
                 "\ncuda emulation: host code touched device memory at %p, outside any kernel, copy or GEMM "
                 "(on a GPU this crashes or reads garbage)\n",
                 (void *)address);
        write_text(message);
    }
    /* Hand over: the previous handler (AddressSanitizer's prints the stack), else the default action. */
    struct sigaction &previous = fence->previous;
    if (previous.sa_flags & SA_SIGINFO) {
        previous.sa_sigaction(signal_number, info, context);
        return;
    }
    if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(signal_number);
        return;
    }
    signal(SIGSEGV, SIG_DFL); /* the faulting access runs again and ends the process */
}

void start_fence() {
    const char *setting = getenv("TRICYCLE_CUDA_EMULATION_FENCE");
    if (!setting || strcmp(setting, "1") != 0) return;
    void *base = mmap(nullptr, reserved_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        write_text("cuda emulation: TRICYCLE_CUDA_EMULATION_FENCE=1 but the address range could not be reserved\n");
        return;
    }
    fenced_memory *state = new fenced_memory();
    state->base = static_cast<char *>(base);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &state->previous);
    fence = state;
}

bool fenced() {
    std::call_once(fence_once, start_fence);
    return fence != nullptr;
}

void set_access(char *start, size_t bytes, bool open) {
    if (bytes) mprotect(start, bytes, open ? PROT_READ | PROT_WRITE : PROT_NONE);
}

} /* namespace */

void *device_allocate(size_t bytes) {
    if (!fenced()) {
        void *pointer = nullptr;
        return posix_memalign(&pointer, 256, bytes) == 0 ? pointer : nullptr;
    }
    size_t rounded = (bytes + page_bytes() - 1) / page_bytes() * page_bytes();
    std::lock_guard<std::recursive_mutex> guard(fence->lock);
    char *buffer;
    auto reusable = fence->free_spans.find(rounded);
    if (reusable != fence->free_spans.end()) {
        buffer = reusable->second;
        fence->free_spans.erase(reusable);
    } else {
        if (fence->used + rounded > reserved_bytes) return nullptr;
        buffer = fence->base + fence->used;
        fence->used += rounded;
    }
    fence->live[buffer] = rounded;
    set_access(buffer, rounded, fence->open > 0);
    return buffer;
}

void device_free(void *pointer) {
    if (!pointer) return;
    if (!fenced()) {
        free(pointer);
        return;
    }
    std::lock_guard<std::recursive_mutex> guard(fence->lock);
    auto found = fence->live.find(static_cast<char *>(pointer));
    if (found == fence->live.end()) return;
    /* The pages go back to the system; the range is kept for a buffer of the same size. */
    madvise(found->first, found->second, MADV_DONTNEED);
    fence->free_spans.emplace(found->second, found->first);
    fence->live.erase(found);
}

device_work::device_work() {
    if (!fenced()) return;
    fence->lock.lock();
    if (fence->open++ == 0) set_access(fence->base, fence->used, true);
}

device_work::~device_work() {
    if (!fence) return;
    if (--fence->open == 0) set_access(fence->base, fence->used, false);
    fence->lock.unlock();
}

} /* namespace tc_emulation */
