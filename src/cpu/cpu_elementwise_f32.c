/*
 * cpu_elementwise_f32.c: the float32 fast loops of the element-wise
 * kernels, on 16-lane vectors (cpu_simd.h), one copy per instruction set,
 * for the ops ops_math.h lists in TC_MATH_VECTOR_UNARY and _BINARY, with
 * its formulas over the simd kit. The transcendental ops use the vector exp
 * and tanh of cpu_simd.h (a few ulps, see there) instead of libm; the rest
 * is exact IEEE arithmetic, the same bits as the scalar loops.
 */
#include "cpu_elementwise_f32.h"

#include "cpu_simd.h"

/* One value function and one derivative function per op. */
#define VECTOR_FUNCTIONS(ID)                                                                                       \
    SIMD_INLINE simd_f32 value_##ID(simd_f32 x) { return TC_MATH_##ID(simd, x); }                                  \
    SIMD_INLINE simd_f32 grad_##ID(simd_f32 x, simd_f32 y, simd_f32 g) {                                           \
        (void)x, (void)y;                                                                                          \
        return TC_MATH_##ID##_GRAD(simd, x, y, g);                                                                 \
    }
TC_MATH_VECTOR_UNARY(VECTOR_FUNCTIONS)

bool f32_unary_supported(tc_unary_op op) {
    switch (op) {
#define SUPPORTED_CASE(ID) case TC_##ID:
        TC_MATH_VECTOR_UNARY(SUPPORTED_CASE) return true;
    default: return false;
    }
}

#define UNARY_LOOP(F)                                                                                              \
    do {                                                                                                           \
        int64_t i = 0;                                                                                             \
        for (; i + SIMD_LANES <= n; i += SIMD_LANES) simd_store(y + i, F(simd_load(x + i)));                       \
        SIMD_TAIL(x + i, y + i, n - i, F);                                                                         \
    } while (0)

SIMD_CLONES void f32_unary(tc_unary_op op, const float *x, float *y, int64_t n) {
    switch (op) {
#define UNARY_CASE(ID)                                                                                             \
    case TC_##ID: UNARY_LOOP(value_##ID); break;
        TC_MATH_VECTOR_UNARY(UNARY_CASE)
    default: break;
    }
}

/* The last n (< SIMD_LANES) values, through zero-padded vectors so they get
 * the same arithmetic as full ones. */
#define BACKWARD_TAIL(F)                                                                                           \
    do {                                                                                                           \
        float xs[SIMD_LANES] = {0}, ys[SIMD_LANES] = {0}, gs[SIMD_LANES] = {0}, out[SIMD_LANES];                   \
        memcpy(xs, x + i, (size_t)(n - i) * sizeof(float));                                                        \
        memcpy(ys, y + i, (size_t)(n - i) * sizeof(float));                                                        \
        memcpy(gs, g + i, (size_t)(n - i) * sizeof(float));                                                        \
        simd_store(out, F(simd_load(xs), simd_load(ys), simd_load(gs)));                                           \
        memcpy(dx + i, out, (size_t)(n - i) * sizeof(float));                                                      \
    } while (0)

#define BACKWARD_LOOP(F)                                                                                           \
    do {                                                                                                           \
        int64_t i = 0;                                                                                             \
        for (; i + SIMD_LANES <= n; i += SIMD_LANES)                                                               \
            simd_store(dx + i, F(simd_load(x + i), simd_load(y + i), simd_load(g + i)));                           \
        if (i < n) BACKWARD_TAIL(F);                                                                               \
    } while (0)

SIMD_CLONES void f32_unary_backward(tc_unary_op op, const float *x, const float *y, const float *g, float *dx,
                                    int64_t n) {
    switch (op) {
#define BACKWARD_CASE(ID)                                                                                          \
    case TC_##ID: BACKWARD_LOOP(grad_##ID); break;
        TC_MATH_VECTOR_UNARY(BACKWARD_CASE)
    default: break;
    }
}

bool f32_binary_supported(tc_binary_op op) {
    switch (op) {
        TC_MATH_VECTOR_BINARY(SUPPORTED_CASE) return true;
    default: return false;
    }
}

/* a and b each a run of values (step 1) or one value repeated (step 0);
 * the simd kit combines whole vectors, the float kit the last values. */
#define BINARY_LOOP(ID)                                                                                            \
    do {                                                                                                           \
        int64_t i = 0;                                                                                             \
        simd_f32 a_splat = simd_splat(a[0]), b_splat = simd_splat(b[0]);                                           \
        for (; i + SIMD_LANES <= n; i += SIMD_LANES) {                                                             \
            simd_f32 va = a_step ? simd_load(a + i) : a_splat;                                                     \
            simd_f32 vb = b_step ? simd_load(b + i) : b_splat;                                                     \
            simd_store(out + i, TC_MATH_##ID(simd, va, vb));                                                       \
        }                                                                                                          \
        for (; i < n; i++) out[i] = TC_MATH_##ID(float, a[i * a_step], b[i * b_step]);                             \
    } while (0)

SIMD_CLONES void f32_binary(tc_binary_op op, const float *a, int64_t a_step, const float *b, int64_t b_step,
                            float *out, int64_t n) {
    if (n <= 0) return;
    switch (op) {
#define BINARY_CASE(ID)                                                                                            \
    case TC_##ID: BINARY_LOOP(ID); break;
        TC_MATH_VECTOR_BINARY(BINARY_CASE)
    default: break;
    }
}
