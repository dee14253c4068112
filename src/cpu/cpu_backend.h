/*
 * cpu_backend.h: the CPU kernels that fill the CPU backend table, one per
 * slot (backend_slots.h), declared with the slot's type as cpu_<slot>. The
 * CPU fills every slot, optional ones included: it is the reference the
 * other backends are checked against. Where they are: cpu_backend.c
 * (memory), cpu_elementwise.c (copy, fill, unary, binary, clamp, where),
 * cpu_reduce.c, cpu_matmul.c (gemm, gemm_bias, gemv, gemm_16bit),
 * cpu_softmax.c, cpu_index.c, cpu_sort.c, cpu_random.c, and the fused
 * kernels' cpu_norm.c, cpu_attention.c, cpu_cross_entropy.c and cpu_optim.c.
 */
#ifndef TRICYCLE_CPU_BACKEND_H
#define TRICYCLE_CPU_BACKEND_H

#include "cpu_iterate.h"
#include "cpu_types.h"

/* Hidden: a kernel declared but not written fails the engine's link (an
 * undefined hidden symbol cannot wait for the loader). */
#define CPU_DECLARE_KERNEL(name, kind, result, parameters)                                                           \
    __attribute__((visibility("hidden"))) tc_slot_##name cpu_##name;
TC_BACKEND_SLOTS(CPU_DECLARE_KERNEL)
#undef CPU_DECLARE_KERNEL

#endif
