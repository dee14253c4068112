/*
 * cpu_elementwise.c: CPU kernels for copies, fills, unary and binary maps,
 * clamp and where, split over the context's threads (cpu_for_each_parallel:
 * each thread takes a static range of elements, so results do not depend on
 * the thread count). float32 ops with a vector loop (cpu_elementwise_f32.c)
 * take it on contiguous runs; the generic loops below handle the rest, with
 * floating math through <tgmath.h> so float data use the float functions.
 */
#include "cpu_backend.h"
#include "cpu_elementwise_f32.h"

#include <string.h>

#include <math.h>
#include <tgmath.h>

/* Generic integer kernels test signs that unsigned types cannot have. */
#pragma GCC diagnostic ignored "-Wtype-limits"

/* Elements per chunk below which a second thread does not pay: loads and
 * stores (copy, arithmetic), and transcendental maps. */
#define GRAIN_SIMPLE 32768
#define GRAIN_MATH 4096

/* ---- copy with conversion ---- */

/* A floating value as an integer type: truncated toward zero, saturating at
 * the type's range, NaN as 0 (C leaves out-of-range conversions undefined;
 * cuda_elementwise.cu's copy_value follows the same rules). Integer to
 * integer conversions wrap, as C defines them. */
static inline int32_t float_to_int32(double v) {
    return v != v ? 0 : v <= -2147483648.0 ? INT32_MIN : v >= 2147483647.0 ? INT32_MAX : (int32_t)v;
}
static inline int64_t float_to_int64(double v) {
    return v != v ? 0 : v <= -9223372036854775808.0 ? INT64_MIN : v >= 9223372036854775808.0 ? INT64_MAX : (int64_t)v;
}
static inline uint8_t float_to_uint8(double v) { return v != v || v <= 0.0 ? 0 : v >= 255.0 ? 255 : (uint8_t)v; }

#define FLOAT_TO(DST_T, x)                                                                                         \
    _Generic((DST_T)0, int32_t: float_to_int32((double)(x)), int64_t: float_to_int64((double)(x)),                \
             uint8_t: float_to_uint8((double)(x)), default: (DST_T)(x))
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
            ALL_DTYPES_NESTED(COPY_SOURCE_CASE)                                                                           \
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

tc_status cpu_copy(tc_tensor *dst, const tc_tensor *src) {
    const tc_tensor *operands[2] = {dst, src};
    tc_dtype source = src->dtype;
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

tc_status cpu_fill(tc_tensor *t, double value) {
    const tc_tensor *operands[1] = {t};
    cpu_inner_fn inner = NULL;
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

/* ---- unary maps ---- */

#define SQRT_HALF 0.70710678118654752440
#define SQRT_2_OVER_PI 0.79788456080286535588
#define INV_SQRT_2PI 0.39894228040143267794
#define GELU_CUBIC 0.044715

#define MAP(T, EXPR)                                                                                               \
    for (int64_t i = 0; i < n; i++) {                                                                              \
        T x = ELEMENT(T, p[1], s[1], i);                                                                           \
        ELEMENT(T, p[0], s[0], i) = (T)(EXPR);                                                                     \
    }                                                                                                              \
    break;

#define UNARY_FLOAT_FN(E, T)                                                                                       \
    static void unary_##T(int64_t n, char **p, const int64_t *s, void *state) {                                   \
        const T one = 1;                                                                                           \
        switch (*(const tc_unary_op *)state) {                                                                     \
        case TC_NEG: MAP(T, -x)                                                                                    \
        case TC_EXP: MAP(T, exp(x))                                                                                \
        case TC_LOG: MAP(T, log(x))                                                                                \
        case TC_SQRT: MAP(T, sqrt(x))                                                                              \
        case TC_ABS: MAP(T, fabs(x))                                                                               \
        case TC_TANH: MAP(T, tanh(x))                                                                              \
        case TC_SIGMOID: MAP(T, one / (one + exp(-x)))                                                             \
        case TC_RELU: MAP(T, x > 0 ? x : (T)0)                                                                     \
        case TC_GELU: MAP(T, 0.5 * (double)x * erfc(-(double)x * SQRT_HALF))                                      \
        case TC_GELU_TANH: /* (1 + tanh u) / 2 = 1 / (1 + e^-2u), without the cancellation */                   \
            MAP(T, x / (one + exp((T)(-2 * SQRT_2_OVER_PI) * (x + (T)GELU_CUBIC * x * x * x))))                    \
        case TC_SILU: MAP(T, x / (one + exp(-x)))                                                                  \
        case TC_SIN: MAP(T, sin(x))                                                                                \
        case TC_COS: MAP(T, cos(x))                                                                                \
        case TC_RSQRT: MAP(T, one / sqrt(x))                                                                       \
        case TC_SQUARE: MAP(T, x * x)                                                                              \
        case TC_SIGN: MAP(T, (x > 0) - (x < 0))                                                                    \
        case TC_LOGICAL_NOT: MAP(T, x == 0)                                                                        \
        default: break;                                                                                            \
        }                                                                                                          \
    }
FLOAT_DTYPES(UNARY_FLOAT_FN)

/* Integer arithmetic wraps around as two's complement (as in PyTorch):
 * signed values are computed in the unsigned type of the same width, where
 * C defines the wrap-around, and converted back (GCC defines that
 * conversion as reduction modulo 2^N). Signed overflow would be undefined:
 * -INT64_MIN, INT32_MAX + 1. uint8 arithmetic runs in int and is
 * converted back, which wraps too. cuda_elementwise.cu's wrap_* follow the
 * same rules. */
#define WRAPPING(x) _Generic((x), int32_t: (uint32_t)(x), int64_t: (uint64_t)(x), default: (x))
#define WRAP_ADD(T, a, b) ((T)(WRAPPING(a) + WRAPPING(b)))
#define WRAP_SUB(T, a, b) ((T)(WRAPPING(a) - WRAPPING(b)))
#define WRAP_MUL(T, a, b) ((T)(WRAPPING(a) * WRAPPING(b)))
#define WRAP_NEG(T, a) ((T)(0u - WRAPPING(a)))

/* Integer dtypes support the ops that stay integral; abs of the most
 * negative value is itself, as its negation wraps. */
#define UNARY_INTEGER_FN(E, T)                                                                                     \
    static void unary_##T(int64_t n, char **p, const int64_t *s, void *state) {                                   \
        switch (*(const tc_unary_op *)state) {                                                                     \
        case TC_NEG: MAP(T, WRAP_NEG(T, x))                                                                        \
        case TC_ABS: MAP(T, x < 0 ? WRAP_NEG(T, x) : x)                                                            \
        case TC_RELU: MAP(T, x > 0 ? x : 0)                                                                        \
        case TC_SQUARE: MAP(T, WRAP_MUL(T, x, x))                                                                  \
        case TC_SIGN: MAP(T, (x > 0) - (x < 0))                                                                    \
        case TC_LOGICAL_NOT: MAP(T, x == 0)                                                                        \
        default: break;                                                                                            \
        }                                                                                                          \
    }
INTEGER_DTYPES(UNARY_INTEGER_FN)
UNARY_INTEGER_FN(TC_BOOL, tc_bool_t)

static cpu_inner_fn unary_inner(tc_dtype dtype) {
    switch (dtype) {
#define UNARY_CASE(E, T)                                                                                           \
    case E: return unary_##T;
        ALL_DTYPES(UNARY_CASE)
#undef UNARY_CASE
    default: return NULL;
    }
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

static bool is_transcendental(tc_unary_op op) {
    return op != TC_NEG && op != TC_ABS && op != TC_RELU && op != TC_SQUARE && op != TC_SIGN &&
           op != TC_LOGICAL_NOT;
}

tc_status cpu_unary(tc_unary_op op, const tc_tensor *x, tc_tensor *out) {
    const tc_tensor *operands[2] = {out, x};
    bool vector = x->dtype == TC_FLOAT32 && f32_unary_supported(op);
    cpu_for_each_parallel(2, operands, is_transcendental(op) ? GRAIN_MATH : GRAIN_SIMPLE,
                          vector ? unary_float_vector : unary_inner(x->dtype), &op);
    return TC_OK;
}

/* ---- unary derivatives: grad_x = grad * f'(x), using y = f(x) ---- */

#define DERIVE(T, EXPR)                                                                                            \
    for (int64_t i = 0; i < n; i++) {                                                                              \
        T x = ELEMENT(T, p[1], s[1], i);                                                                           \
        T y = ELEMENT(T, p[2], s[2], i);                                                                           \
        T g = ELEMENT(T, p[3], s[3], i);                                                                           \
        (void)x;                                                                                                   \
        (void)y;                                                                                                   \
        (void)g;                                                                                                   \
        ELEMENT(T, p[0], s[0], i) = (T)(EXPR);                                                                     \
    }                                                                                                              \
    break;

#define UNARY_BACKWARD_FN(E, T)                                                                                    \
    static void unary_backward_##T(int64_t n, char **p, const int64_t *s, void *state) {                          \
        const T one = 1, half = (T)0.5;                                                                            \
        switch (*(const tc_unary_op *)state) {                                                                     \
        case TC_NEG: DERIVE(T, -g)                                                                                 \
        case TC_EXP: DERIVE(T, g * y)                                                                              \
        case TC_LOG: DERIVE(T, g / x)                                                                              \
        case TC_SQRT: DERIVE(T, g * half / y)                                                                      \
        case TC_ABS: DERIVE(T, g * (T)((x > 0) - (x < 0)))                                                         \
        case TC_TANH: DERIVE(T, g * (one - y * y))                                                                 \
        case TC_SIGMOID: DERIVE(T, g * y * (one - y))                                                              \
        case TC_RELU: DERIVE(T, x > 0 ? g : (T)0)                                                                  \
        case TC_GELU:                                                                                              \
            DERIVE(T, (double)g * (0.5 * erfc(-(double)x * SQRT_HALF) +                                            \
                                   (double)x * INV_SQRT_2PI * exp(-0.5 * (double)x * (double)x)))                  \
        case TC_GELU_TANH:                                                                                         \
            for (int64_t i = 0; i < n; i++) {                                                                      \
                T x = ELEMENT(T, p[1], s[1], i);                                                                   \
                T g = ELEMENT(T, p[3], s[3], i);                                                                   \
                T u = (T)SQRT_2_OVER_PI * (x + (T)GELU_CUBIC * x * x * x);                                         \
                T t = tanh(u);                                                                                     \
                T du = (T)SQRT_2_OVER_PI * (one + (T)(3 * GELU_CUBIC) * x * x);                                    \
                ELEMENT(T, p[0], s[0], i) = g * (half * (one + t) + half * x * (one - t * t) * du);                \
            }                                                                                                      \
            break;                                                                                                 \
        case TC_SILU:                                                                                              \
            for (int64_t i = 0; i < n; i++) {                                                                      \
                T x = ELEMENT(T, p[1], s[1], i);                                                                   \
                T g = ELEMENT(T, p[3], s[3], i);                                                                   \
                T sig = one / (one + exp(-x));                                                                     \
                ELEMENT(T, p[0], s[0], i) = g * sig * (one + x * (one - sig));                                     \
            }                                                                                                      \
            break;                                                                                                 \
        case TC_SIN: DERIVE(T, g * cos(x))                                                                         \
        case TC_COS: DERIVE(T, -g * sin(x))                                                                        \
        case TC_RSQRT: DERIVE(T, -half * g * y * y * y)                                                            \
        case TC_SQUARE: DERIVE(T, 2 * g * x)                                                                       \
        default: DERIVE(T, 0)                                                                                      \
        }                                                                                                          \
    }
FLOAT_DTYPES(UNARY_BACKWARD_FN)

/* float32 through the vector loop on contiguous runs, the generic loop on
 * strided ones (backward operands are almost always fresh and contiguous). */
static void unary_backward_float_vector(int64_t n, char **p, const int64_t *s, void *state) {
    tc_unary_op op = *(const tc_unary_op *)state;
    if (s[0] == sizeof(float) && s[1] == sizeof(float) && s[2] == sizeof(float) && s[3] == sizeof(float)) {
        f32_unary_backward(op, (const float *)p[1], (const float *)p[2], (const float *)p[3], (float *)p[0], n);
        return;
    }
    unary_backward_float(n, p, s, state);
}

tc_status cpu_unary_backward(tc_unary_op op, const tc_tensor *x, const tc_tensor *y, const tc_tensor *grad,
                             tc_tensor *grad_x) {
    const tc_tensor *operands[4] = {grad_x, x, y, grad};
    cpu_inner_fn inner = x->dtype == TC_FLOAT32 ? unary_backward_float : unary_backward_double;
    if (x->dtype == TC_FLOAT32 && f32_unary_backward_supported(op)) inner = unary_backward_float_vector;
    cpu_for_each_parallel(4, operands, is_transcendental(op) ? GRAIN_MATH : GRAIN_SIMPLE, inner, &op);
    return TC_OK;
}

/* ---- binary maps ---- */

#define COMBINE(T, OUT_T, EXPR)                                                                                    \
    for (int64_t i = 0; i < n; i++) {                                                                              \
        T a = ELEMENT(T, p[1], s[1], i);                                                                           \
        T b = ELEMENT(T, p[2], s[2], i);                                                                           \
        ELEMENT(OUT_T, p[0], s[0], i) = (OUT_T)(EXPR);                                                             \
    }                                                                                                              \
    break;

#define COMPARISON_CASES(T)                                                                                        \
    case TC_EQ: COMBINE(T, tc_bool_t, a == b)                                                                      \
    case TC_NE: COMBINE(T, tc_bool_t, a != b)                                                                      \
    case TC_LT: COMBINE(T, tc_bool_t, a < b)                                                                       \
    case TC_LE: COMBINE(T, tc_bool_t, a <= b)                                                                      \
    case TC_GT: COMBINE(T, tc_bool_t, a > b)                                                                       \
    case TC_GE: COMBINE(T, tc_bool_t, a >= b)                                                                      \
    case TC_LOGICAL_AND: COMBINE(T, tc_bool_t, a != 0 && b != 0)                                                   \
    case TC_LOGICAL_OR: COMBINE(T, tc_bool_t, a != 0 || b != 0)

#define BINARY_FLOAT_FN(E, T)                                                                                      \
    static void binary_##T(int64_t n, char **p, const int64_t *s, void *state) {                                  \
        switch (*(const tc_binary_op *)state) {                                                                    \
        case TC_ADD: COMBINE(T, T, a + b)                                                                          \
        case TC_SUB: COMBINE(T, T, a - b)                                                                          \
        case TC_MUL: COMBINE(T, T, a * b)                                                                          \
        case TC_DIV: COMBINE(T, T, a / b)                                                                          \
        case TC_POW: COMBINE(T, T, pow(a, b))                                                                      \
        case TC_MAXIMUM: COMBINE(T, T, (a > b || a != a) ? a : b)                                                  \
        case TC_MINIMUM: COMBINE(T, T, (a < b || a != a) ? a : b)                                                  \
            COMPARISON_CASES(T)                                                                                    \
        default: break;                                                                                            \
        }                                                                                                          \
    }
FLOAT_DTYPES(BINARY_FLOAT_FN)

/* Integer division and powers are turned into float ops by the op layer;
 * were they not, a division would still be defined: by zero it gives 0,
 * and the most negative value divided by -1 wraps to itself. */
#define BINARY_INTEGER_FN(E, T)                                                                                    \
    static void binary_##T(int64_t n, char **p, const int64_t *s, void *state) {                                  \
        switch (*(const tc_binary_op *)state) {                                                                    \
        case TC_ADD: COMBINE(T, T, WRAP_ADD(T, a, b))                                                              \
        case TC_SUB: COMBINE(T, T, WRAP_SUB(T, a, b))                                                              \
        case TC_MUL: COMBINE(T, T, WRAP_MUL(T, a, b))                                                              \
        case TC_DIV: COMBINE(T, T, b == 0 ? 0 : b == -1 ? WRAP_NEG(T, a) : a / b)                                 \
        case TC_MAXIMUM: COMBINE(T, T, a > b ? a : b)                                                              \
        case TC_MINIMUM: COMBINE(T, T, a < b ? a : b)                                                              \
            COMPARISON_CASES(T)                                                                                    \
        default: break;                                                                                            \
        }                                                                                                          \
    }
INTEGER_DTYPES(BINARY_INTEGER_FN)
BINARY_INTEGER_FN(TC_BOOL, tc_bool_t) /* only logic reaches it: see tc_binary */

/* float32 arithmetic through the vector loop when out is contiguous and
 * each input is contiguous or one broadcast value. */
static void binary_float_vector(int64_t n, char **p, const int64_t *s, void *state) {
    const int64_t size = sizeof(float);
    if (s[0] == size && (s[1] == size || s[1] == 0) && (s[2] == size || s[2] == 0)) {
        f32_binary(*(const tc_binary_op *)state, (const float *)p[1], s[1] / size, (const float *)p[2],
                   s[2] / size, (float *)p[0], n);
        return;
    }
    binary_float(n, p, s, state);
}

tc_status cpu_binary(tc_binary_op op, const tc_tensor *a, const tc_tensor *b, tc_tensor *out) {
    const tc_tensor *operands[3] = {out, a, b};
    cpu_inner_fn inner = NULL;
    if (a->dtype == TC_FLOAT32 && f32_binary_supported(op)) {
        cpu_for_each_parallel(3, operands, GRAIN_SIMPLE, binary_float_vector, &op);
        return TC_OK;
    }
    switch (a->dtype) {
#define BINARY_CASE(E, T)                                                                                          \
    case E: inner = binary_##T; break;
        ALL_DTYPES(BINARY_CASE)
#undef BINARY_CASE
    default: return tc_fail(out->ctx, TC_ERROR_DTYPE, "binary: unknown dtype");
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
