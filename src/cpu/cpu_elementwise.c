/*
 * cpu_elementwise.c: CPU kernels for copies, fills, unary and binary maps,
 * clamp and where, split over the context's threads (cpu_for_each_parallel:
 * each thread takes a static range of elements, so results do not depend on
 * the thread count). The maps' formulas are ops_math.h's; float32 ops with
 * a vector loop (cpu_elementwise_f32.c) take it, on contiguous runs or
 * packed ones, and the generic loops below handle the rest.
 */
#include "cpu_backend.h"
#include "cpu_elementwise_f32.h"
#include "cpu_half.h"
#include "../half.h"
#include "../ops_math.h"

#include <math.h>
#include <string.h>

/* Elements per chunk below which a second thread does not pay: loads and
 * stores (copy, arithmetic), and transcendental maps. */
#define GRAIN_SIMPLE 32768
#define GRAIN_MATH 4096

/* ---- copy with conversion ---- */

/* A floating value into an integer dtype saturates (ops_math.h's
 * tc_float_to_*); integer to integer conversions wrap, as C defines them. */
#define FLOAT_TO(DST_T, x)                                                                                         \
    _Generic((DST_T)0, int32_t: tc_float_to_int32((double)(x)), int64_t: tc_float_to_int64((double)(x)),          \
             uint8_t: tc_float_to_uint8((double)(x)), default: (DST_T)(x))
#define CONVERT(DST_T, x) _Generic((x), float: FLOAT_TO(DST_T, x), double: FLOAT_TO(DST_T, x), default: (DST_T)(x))

#define COPY_FROM(DST_T, SRC_T)                                                                                    \
    for (int64_t i = 0; i < n; i++) ELEMENT(DST_T, p[0], s[0], i) = CONVERT(DST_T, ELEMENT(SRC_T, p[1], s[1], i));

#define COPY_SOURCE_CASE(SRC_ENUM, SRC_T)                                                                          \
    case SRC_ENUM: COPY_FROM(DST_T_, SRC_T) break;

#define COPY_DEST_FN(DST_ENUM, DST_T)                                                                              \
    static void copy_to_##DST_T(int64_t n, char **p, const int64_t *s, void *state) {                             \
        tc_dtype source = *(const tc_dtype *)state;                                                                \
        typedef DST_T DST_T_;                                                                                      \
        switch (source) {                                                                                          \
            ALL_DTYPES_NESTED(COPY_SOURCE_CASE)                                                                    \
        default: break;                                                                                            \
        }                                                                                                          \
    }
ALL_DTYPES(COPY_DEST_FN)

/* Converting into bool must give 0/1, not truncation. */
static void copy_to_bool(int64_t n, char **p, const int64_t *s, void *state) {
    tc_dtype source = *(const tc_dtype *)state;
    for (int64_t i = 0; i < n; i++) {
        bool value = false;
        switch (source) {
#define BOOL_SOURCE(E, T)                                                                                          \
    case E: value = ELEMENT(T, p[1], s[1], i) != 0; break;
            ALL_DTYPES(BOOL_SOURCE)
#undef BOOL_SOURCE
        default: break;
        }
        ELEMENT(tc_bool_t, p[0], s[0], i) = value;
    }
}

/* Same dtype: contiguous runs are memcpy'd. */
static void copy_same(int64_t n, char **p, const int64_t *s, void *state) {
    size_t size = *(const size_t *)state;
    if (s[0] == (int64_t)size && s[1] == (int64_t)size) {
        memcpy(p[0], p[1], (size_t)n * size);
        return;
    }
    for (int64_t i = 0; i < n; i++) memcpy(p[0] + i * s[0], p[1] + i * s[1], size);
}

/* Copies touching a 16-bit float go through float32, which holds every
 * bfloat16 and float16 exactly (wider sources are rounded to odd first, so
 * the one rounding to 16 bits is right): contiguous float32 runs convert on
 * the vector path when the CPU has it, anything else one element at a time. */
typedef struct half_copy {
    tc_dtype dst, src;
    bool vector;
} half_copy;

static float load_as_float(const char *p, tc_dtype dtype) {
    switch (dtype) {
    case TC_FLOAT32: return *(const float *)(const void *)p;
    case TC_FLOAT64: return tc_double_to_float_odd(*(const double *)(const void *)p); /* one rounding in all */
    case TC_INT32: return tc_double_to_float_odd(*(const int32_t *)(const void *)p);
    case TC_INT64: return tc_double_to_float_odd((double)*(const int64_t *)(const void *)p);
    case TC_UINT8:
    case TC_BOOL: return *(const uint8_t *)p;
    case TC_BFLOAT16: return tc_bfloat16_to_float(*(const uint16_t *)(const void *)p);
    case TC_FLOAT16: return tc_float16_to_float(*(const uint16_t *)(const void *)p);
    default: return 0.0f;
    }
}

static void store_from_float(char *p, tc_dtype dtype, float x) {
    switch (dtype) {
    case TC_FLOAT32: *(float *)(void *)p = x; break;
    case TC_FLOAT64: *(double *)(void *)p = x; break;
    case TC_INT32: *(int32_t *)(void *)p = tc_float_to_int32(x); break;
    case TC_INT64: *(int64_t *)(void *)p = tc_float_to_int64(x); break;
    case TC_UINT8: *(uint8_t *)p = tc_float_to_uint8(x); break;
    case TC_BOOL: *(uint8_t *)p = x != 0.0f; break;
    case TC_BFLOAT16: *(uint16_t *)(void *)p = tc_float_to_bfloat16(x); break;
    case TC_FLOAT16: *(uint16_t *)(void *)p = tc_float_to_float16(x); break;
    default: break;
    }
}

static void copy_half(int64_t n, char **p, const int64_t *s, void *state) {
    const half_copy *copy = state;
    if (tc_dtype_is_16bit(copy->src) && copy->dst == TC_FLOAT32 && s[0] == 4 && s[1] == 2) {
        cpu_half_to_float(copy->src, (const uint16_t *)(const void *)p[1], (float *)(void *)p[0], n, copy->vector);
        return;
    }
    if (tc_dtype_is_16bit(copy->dst) && copy->src == TC_FLOAT32 && s[0] == 2 && s[1] == 4) {
        cpu_float_to_half(copy->dst, (const float *)(const void *)p[1], (uint16_t *)(void *)p[0], n, copy->vector);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        store_from_float(p[0] + i * s[0], copy->dst, load_as_float(p[1] + i * s[1], copy->src));
}

tc_status cpu_copy(tc_tensor *dst, const tc_tensor *src) {
    const tc_tensor *operands[2] = {dst, src};
    tc_dtype source = src->dtype;
    if (source != dst->dtype && (tc_dtype_is_16bit(source) || tc_dtype_is_16bit(dst->dtype))) {
        half_copy copy = {dst->dtype, source, cpu_half_vector_available()};
        cpu_for_each_parallel(2, operands, GRAIN_SIMPLE, copy_half, &copy);
        return TC_OK;
    }
    if (source == dst->dtype) {
        size_t size = tc_dtype_size(source);
        cpu_for_each_parallel(2, operands, GRAIN_SIMPLE, copy_same, &size);
        return TC_OK;
    }
    cpu_inner_fn inner = NULL;
    switch (dst->dtype) {
    case TC_FLOAT32: inner = copy_to_float; break;
    case TC_FLOAT64: inner = copy_to_double; break;
    case TC_INT32: inner = copy_to_int32_t; break;
    case TC_INT64: inner = copy_to_int64_t; break;
    case TC_UINT8: inner = copy_to_uint8_t; break;
    case TC_BOOL: inner = copy_to_bool; break;
    default: return tc_fail(dst->ctx, TC_ERROR_DTYPE, "copy: unknown dtype");
    }
    (void)copy_to_tc_bool_t;
    cpu_for_each_parallel(2, operands, GRAIN_SIMPLE, inner, &source);
    return TC_OK;
}

/* ---- fill ---- */

#define FILL_FN(E, T)                                                                                              \
    static void fill_##T(int64_t n, char **p, const int64_t *s, void *state) {                                    \
        T value = (T)(*(const double *)state);                                                                     \
        for (int64_t i = 0; i < n; i++) ELEMENT(T, p[0], s[0], i) = value;                                         \
    }
ALL_DTYPES(FILL_FN)

static void fill_half(int64_t n, char **p, const int64_t *s, void *state) {
    uint16_t value = *(const uint16_t *)state;
    for (int64_t i = 0; i < n; i++) ELEMENT(uint16_t, p[0], s[0], i) = value;
}

tc_status cpu_fill(tc_tensor *t, double value) {
    const tc_tensor *operands[1] = {t};
    cpu_inner_fn inner = NULL;
    if (tc_dtype_is_16bit(t->dtype)) {
        uint16_t bits = t->dtype == TC_BFLOAT16 ? tc_double_to_bfloat16(value) : tc_double_to_float16(value);
        cpu_for_each_parallel(1, operands, GRAIN_SIMPLE, fill_half, &bits);
        return TC_OK;
    }
    if (t->dtype == TC_BOOL) value = value != 0.0;
    switch (t->dtype) {
#define FILL_CASE(E, T)                                                                                            \
    case E: inner = fill_##T; break;
        ALL_DTYPES(FILL_CASE)
#undef FILL_CASE
    default: return tc_fail(t->ctx, TC_ERROR_DTYPE, "fill: unknown dtype");
    }
    cpu_for_each_parallel(1, operands, GRAIN_SIMPLE, inner, &value);
    return TC_OK;
}

/* ---- unary maps ----
 * One loop per op and dtype, from ops_math.h's formulas: the float and
 * double kits for every op of op_list.h, the integer formulas of
 * TC_MATH_INTEGER_UNARY for int32, int64 and uint8 (bool data are uint8
 * holding 0 or 1). Each loop converts its formula's value to the dtype,
 * and a table [op][dtype] finds it (NULL where the dtype lacks the op). */

/* LOOP(NAME_<dtype>, C type, ...) for the integer dtypes (the float and
 * double loops differ in their kit too, so callers spell them out). */
#define INTEGER_LOOPS(LOOP, NAME, ...)                                                                             \
    LOOP(NAME##_int32, int32_t, __VA_ARGS__)                                                                       \
    LOOP(NAME##_int64, int64_t, __VA_ARGS__) LOOP(NAME##_uint8, uint8_t, __VA_ARGS__)
/* The table entries of op ID's loops NAME_<dtype>. */
#define FLOAT_ENTRIES(ID, NAME) [TC_##ID][TC_FLOAT32] = NAME##_float, [TC_##ID][TC_FLOAT64] = NAME##_double,
#define INTEGER_ENTRIES(ID, NAME)                                                                                  \
    [TC_##ID][TC_INT32] = NAME##_int32, [TC_##ID][TC_INT64] = NAME##_int64, [TC_##ID][TC_UINT8] = NAME##_uint8,    \
    [TC_##ID][TC_BOOL] = NAME##_uint8,

#define UNARY_LOOP(NAME, T, EXPR)                                                                                  \
    static void NAME(int64_t n, char **p, const int64_t *s, void *state) {                                        \
        (void)state;                                                                                               \
        for (int64_t i = 0; i < n; i++) {                                                                          \
            T x = ELEMENT(T, p[1], s[1], i);                                                                       \
            ELEMENT(T, p[0], s[0], i) = (T)(EXPR);                                                                 \
        }                                                                                                          \
    }
#define UNARY_FLOAT_LOOPS(ID, name, arity, backward, properties, summary)                                          \
    UNARY_LOOP(unary_##ID##_float, float, TC_MATH_##ID(float, x))                                                  \
    UNARY_LOOP(unary_##ID##_double, double, TC_MATH_##ID(double, x))
TC_UNARY_OP_LIST(UNARY_FLOAT_LOOPS)
#define UNARY_INTEGER_LOOPS(ID, formula) INTEGER_LOOPS(UNARY_LOOP, unary_##ID, formula(integer, x))
TC_MATH_INTEGER_UNARY(UNARY_INTEGER_LOOPS)

#define UNARY_FLOAT_ENTRIES(ID, name, arity, backward, properties, summary) FLOAT_ENTRIES(ID, unary_##ID)
#define UNARY_INTEGER_ENTRIES(ID, formula) INTEGER_ENTRIES(ID, unary_##ID)
static const cpu_inner_fn unary_loops[TC_UNARY_OP_COUNT][TC_DTYPE_COUNT] = {
    TC_UNARY_OP_LIST(UNARY_FLOAT_ENTRIES) TC_MATH_INTEGER_UNARY(UNARY_INTEGER_ENTRIES)};

/* loops[op][t's dtype] of a table of count ops, or a failure naming the op
 * (the op layer sends no op a dtype lacks, so it is a bug elsewhere). */
static tc_status find_loop(const cpu_inner_fn (*loops)[TC_DTYPE_COUNT], int count, int op, const char *name,
                           const tc_tensor *t, cpu_inner_fn *inner) {
    *inner = op >= 0 && op < count && (unsigned)t->dtype < TC_DTYPE_COUNT ? loops[op][t->dtype] : NULL;
    if (!*inner)
        return tc_fail(t->ctx, TC_ERROR_DTYPE, "%s: dtype %s is not supported", name, tc_dtype_name(t->dtype));
    return TC_OK;
}

/* Runs of up to this many strided values are packed for the vector loops. */
#define PACK 256

/* float32 through the vector loop: in place on contiguous runs, packed
 * into a buffer otherwise. */
static void unary_float_vector(int64_t n, char **p, const int64_t *s, void *state) {
    tc_unary_op op = *(const tc_unary_op *)state;
    if (s[0] == sizeof(float) && s[1] == sizeof(float)) {
        f32_unary(op, (const float *)p[1], (float *)p[0], n);
        return;
    }
    float buffer[PACK];
    for (int64_t start = 0; start < n; start += PACK) {
        int64_t m = n - start < PACK ? n - start : PACK;
        for (int64_t i = 0; i < m; i++) buffer[i] = ELEMENT(float, p[1], s[1], start + i);
        f32_unary(op, buffer, buffer, m);
        for (int64_t i = 0; i < m; i++) ELEMENT(float, p[0], s[0], start + i) = buffer[i];
    }
}

/* The ops integer dtypes have are the cheap ones per element; the others
 * (transcendental) pay a second thread on smaller chunks. */
static int64_t unary_grain(tc_unary_op op) {
    return (TC_MATH_UNARY_INTEGERS >> op) & 1 ? GRAIN_SIMPLE : GRAIN_MATH;
}

tc_status cpu_unary(tc_unary_op op, const tc_tensor *x, tc_tensor *out) {
    const tc_tensor *operands[2] = {out, x};
    cpu_inner_fn inner;
    TC_TRY(find_loop(unary_loops, TC_UNARY_OP_COUNT, (int)op, tc_unary_op_name(op), x, &inner));
    if (x->dtype == TC_FLOAT32 && f32_unary_supported(op)) inner = unary_float_vector;
    cpu_for_each_parallel(2, operands, unary_grain(op), inner, &op);
    return TC_OK;
}

/* ---- unary derivatives: grad_x = g * f'(x), using y = f(x) ---- */

#define DERIVATIVE_LOOP(NAME, T, EXPR)                                                                             \
    static void NAME(int64_t n, char **p, const int64_t *s, void *state) {                                        \
        (void)state;                                                                                               \
        for (int64_t i = 0; i < n; i++) {                                                                          \
            T x = ELEMENT(T, p[1], s[1], i);                                                                       \
            T y = ELEMENT(T, p[2], s[2], i);                                                                       \
            T g = ELEMENT(T, p[3], s[3], i);                                                                       \
            (void)x;                                                                                               \
            (void)y;                                                                                               \
            (void)g;                                                                                               \
            ELEMENT(T, p[0], s[0], i) = (T)(EXPR);                                                                 \
        }                                                                                                          \
    }
#define DERIVATIVE_LOOPS(ID, name, arity, backward, properties, summary)                                           \
    DERIVATIVE_LOOP(derivative_##ID##_float, float, TC_MATH_##ID##_GRAD(float, x, y, g))                           \
    DERIVATIVE_LOOP(derivative_##ID##_double, double, TC_MATH_##ID##_GRAD(double, x, y, g))
TC_UNARY_OP_LIST(DERIVATIVE_LOOPS)

#define DERIVATIVE_ENTRIES(ID, name, arity, backward, properties, summary)                                         \
    [TC_##ID] = {derivative_##ID##_float, derivative_##ID##_double},
static const cpu_inner_fn derivative_loops[TC_UNARY_OP_COUNT][2] = {TC_UNARY_OP_LIST(DERIVATIVE_ENTRIES)};

/* float32 through the vector loop: in place on contiguous runs, packed
 * into buffers otherwise, so a strided input gives the same bits. */
static void unary_backward_float_vector(int64_t n, char **p, const int64_t *s, void *state) {
    tc_unary_op op = *(const tc_unary_op *)state;
    if (s[0] == sizeof(float) && s[1] == sizeof(float) && s[2] == sizeof(float) && s[3] == sizeof(float)) {
        f32_unary_backward(op, (const float *)p[1], (const float *)p[2], (const float *)p[3], (float *)p[0], n);
        return;
    }
    float buffer[4][PACK];
    for (int64_t start = 0; start < n; start += PACK) {
        int64_t m = n - start < PACK ? n - start : PACK;
        for (int k = 1; k < 4; k++)
            for (int64_t i = 0; i < m; i++) buffer[k][i] = ELEMENT(float, p[k], s[k], start + i);
        f32_unary_backward(op, buffer[1], buffer[2], buffer[3], buffer[0], m);
        for (int64_t i = 0; i < m; i++) ELEMENT(float, p[0], s[0], start + i) = buffer[0][i];
    }
}

tc_status cpu_unary_backward(tc_unary_op op, const tc_tensor *x, const tc_tensor *y, const tc_tensor *grad,
                             tc_tensor *grad_x) {
    const tc_tensor *operands[4] = {grad_x, x, y, grad};
    if ((unsigned)op >= TC_UNARY_OP_COUNT || !tc_dtype_is_floating(x->dtype))
        return tc_fail(grad_x->ctx, TC_ERROR_DTYPE, "%s backward: dtype %s is not supported (float32 or float64)",
                       tc_unary_op_name(op), tc_dtype_name(x->dtype));
    cpu_inner_fn inner = derivative_loops[op][x->dtype == TC_FLOAT64];
    if (x->dtype == TC_FLOAT32 && f32_unary_supported(op)) inner = unary_backward_float_vector;
    cpu_for_each_parallel(4, operands, unary_grain(op), inner, &op);
    return TC_OK;
}

/* ---- binary maps ----
 * One loop per op and dtype, as for unary maps; comparisons and logic
 * store bool. */

#define BINARY_LOOP(NAME, T, EXPR, bool_result)                                                                    \
    static void NAME(int64_t n, char **p, const int64_t *s, void *state) {                                        \
        (void)state;                                                                                               \
        for (int64_t i = 0; i < n; i++) {                                                                          \
            T a = ELEMENT(T, p[1], s[1], i);                                                                       \
            T b = ELEMENT(T, p[2], s[2], i);                                                                       \
            if (bool_result) ELEMENT(tc_bool_t, p[0], s[0], i) = (tc_bool_t)(EXPR);                                \
            else ELEMENT(T, p[0], s[0], i) = (T)(EXPR);                                                            \
        }                                                                                                          \
    }
#define BINARY_FLOAT_LOOPS(ID, name, arity, backward, properties, summary)                                         \
    BINARY_LOOP(binary_##ID##_float, float, TC_MATH_##ID(float, a, b), (properties) & TC_OP_BOOL_RESULT)           \
    BINARY_LOOP(binary_##ID##_double, double, TC_MATH_##ID(double, a, b), (properties) & TC_OP_BOOL_RESULT)
/* (The mask is made from op_list.h's rows, so it cannot be used inside them.) */
#define BOOL_RESULT(ID) ((TC_MATH_BINARY_BOOL_RESULTS >> TC_##ID) & 1)
TC_BINARY_OP_LIST(BINARY_FLOAT_LOOPS)
#define BINARY_INTEGER_LOOPS(ID, formula)                                                                          \
    INTEGER_LOOPS(BINARY_LOOP, binary_##ID, formula(integer, a, b), BOOL_RESULT(ID))
TC_MATH_INTEGER_BINARY(BINARY_INTEGER_LOOPS)

/* (Bool arithmetic reaches here as logic: see tc_binary.) */
#define BINARY_FLOAT_ENTRIES(ID, name, arity, backward, properties, summary) FLOAT_ENTRIES(ID, binary_##ID)
#define BINARY_INTEGER_ENTRIES(ID, formula) INTEGER_ENTRIES(ID, binary_##ID)
static const cpu_inner_fn binary_loops[TC_BINARY_OP_COUNT][TC_DTYPE_COUNT] = {
    TC_BINARY_OP_LIST(BINARY_FLOAT_ENTRIES) TC_MATH_INTEGER_BINARY(BINARY_INTEGER_ENTRIES)};

/* float32 arithmetic through the vector loop when out is contiguous and
 * each input is contiguous or one broadcast value. */
static void binary_float_vector(int64_t n, char **p, const int64_t *s, void *state) {
    tc_binary_op op = *(const tc_binary_op *)state;
    const int64_t size = sizeof(float);
    if (s[0] == size && (s[1] == size || s[1] == 0) && (s[2] == size || s[2] == 0)) {
        f32_binary(op, (const float *)p[1], s[1] / size, (const float *)p[2], s[2] / size, (float *)p[0], n);
        return;
    }
    binary_loops[op][TC_FLOAT32](n, p, s, state);
}

tc_status cpu_binary(tc_binary_op op, const tc_tensor *a, const tc_tensor *b, tc_tensor *out) {
    const tc_tensor *operands[3] = {out, a, b};
    cpu_inner_fn inner;
    TC_TRY(find_loop(binary_loops, TC_BINARY_OP_COUNT, (int)op, tc_binary_op_name(op), a, &inner));
    if (a->dtype == TC_FLOAT32 && f32_binary_supported(op)) {
        cpu_for_each_parallel(3, operands, GRAIN_SIMPLE, binary_float_vector, &op);
        return TC_OK;
    }
    cpu_for_each_parallel(3, operands, op == TC_POW ? GRAIN_MATH : GRAIN_SIMPLE, inner, &op);
    return TC_OK;
}

/* ---- clamp and where ---- */

typedef struct clamp_bounds {
    double min, max;
} clamp_bounds;

#define CLAMP_FN(E, T)                                                                                             \
    static void clamp_##T(int64_t n, char **p, const int64_t *s, void *state) {                                   \
        const clamp_bounds *bounds = state;                                                                        \
        bool has_min = !isnan(bounds->min), has_max = !isnan(bounds->max);                                         \
        for (int64_t i = 0; i < n; i++) {                                                                          \
            T x = ELEMENT(T, p[1], s[1], i);                                                                       \
            if (has_min && x < (T)bounds->min) x = (T)bounds->min;                                                 \
            if (has_max && x > (T)bounds->max) x = (T)bounds->max;                                                 \
            ELEMENT(T, p[0], s[0], i) = x;                                                                         \
        }                                                                                                          \
    }
ALL_DTYPES(CLAMP_FN)

tc_status cpu_clamp(const tc_tensor *x, double min, double max, tc_tensor *out) {
    const tc_tensor *operands[2] = {out, x};
    clamp_bounds bounds = {min, max};
    cpu_inner_fn inner = NULL;
    switch (x->dtype) {
#define CLAMP_CASE(E, T)                                                                                           \
    case E: inner = clamp_##T; break;
        ALL_DTYPES(CLAMP_CASE)
#undef CLAMP_CASE
    default: return tc_fail(out->ctx, TC_ERROR_DTYPE, "clamp: unknown dtype");
    }
    cpu_for_each_parallel(2, operands, GRAIN_SIMPLE, inner, &bounds);
    return TC_OK;
}

#define WHERE_FN(E, T)                                                                                             \
    static void where_##T(int64_t n, char **p, const int64_t *s, void *state) {                                   \
        (void)state;                                                                                               \
        for (int64_t i = 0; i < n; i++)                                                                            \
            ELEMENT(T, p[0], s[0], i) =                                                                            \
                ELEMENT(uint8_t, p[1], s[1], i) ? ELEMENT(T, p[2], s[2], i) : ELEMENT(T, p[3], s[3], i);           \
    }
ALL_DTYPES(WHERE_FN)

tc_status cpu_where(const tc_tensor *cond, const tc_tensor *a, const tc_tensor *b, tc_tensor *out) {
    const tc_tensor *operands[4] = {out, cond, a, b};
    cpu_inner_fn inner = NULL;
    switch (out->dtype) {
#define WHERE_CASE(E, T)                                                                                           \
    case E: inner = where_##T; break;
        ALL_DTYPES(WHERE_CASE)
#undef WHERE_CASE
    default: return tc_fail(out->ctx, TC_ERROR_DTYPE, "where: unknown dtype");
    }
    cpu_for_each_parallel(4, operands, GRAIN_SIMPLE, inner, NULL);
    return TC_OK;
}
