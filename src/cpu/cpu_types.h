/*
 * cpu_types.h: X-macros that instantiate a kernel once per dtype.
 * DTYPE_CASES(M) expands M(enum, C type) for every dtype; the float-only and
 * integer variants restrict it.
 */
#ifndef TRICYCLE_CPU_TYPES_H
#define TRICYCLE_CPU_TYPES_H

#include <stdint.h>

typedef uint8_t tc_bool_t;

#define FLOAT_DTYPES(M) M(TC_FLOAT32, float) M(TC_FLOAT64, double)
#define INTEGER_DTYPES(M) M(TC_INT32, int32_t) M(TC_INT64, int64_t) M(TC_UINT8, uint8_t)
#define ALL_DTYPES(M) FLOAT_DTYPES(M) INTEGER_DTYPES(M) M(TC_BOOL, tc_bool_t)

/* A second copy for use inside an expansion of ALL_DTYPES (macros do not recurse). */
#define ALL_DTYPES_NESTED(M)                                                                                       \
    M(TC_FLOAT32, float) M(TC_FLOAT64, double) M(TC_INT32, int32_t) M(TC_INT64, int64_t) M(TC_UINT8, uint8_t)     \
    M(TC_BOOL, tc_bool_t)

#define ELEMENT(T, pointer, stride, i) (*(T *)((pointer) + (i) * (stride)))

#endif
