/*
 * cpu_backend.c: the CPU backend table, made from the slot list: every
 * slot gets its cpu_<slot> kernel (cpu_backend.h). Constant: it holds no
 * state.
 */
#include "cpu_backend.h"

void *cpu_allocate(tc_context *ctx, size_t bytes) { return tc_host_allocate(ctx, bytes); }
void cpu_release(tc_context *ctx, void *data, size_t bytes) { tc_host_release(ctx, data, bytes); }

#define CPU_ENTRY(name, kind, result, parameters) TC_BACKEND_ENTRY(name, cpu_##name)
static const tc_backend cpu_backend_table = {.name = "cpu", .device = TC_CPU, TC_BACKEND_SLOTS(CPU_ENTRY)};
#undef CPU_ENTRY

const tc_backend *tc_cpu_backend(void) { return &cpu_backend_table; }
