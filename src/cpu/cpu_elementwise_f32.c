/*
 * cpu_elementwise_f32.c: the float32 fast loops of the element-wise
 * kernels, on 16-lane vectors (cpu_simd.h), one copy per instruction set.
 * The transcendental ops use the vector exp / tanh / sigmoid of cpu_simd.h
 * (a few ulps, see there) instead of libm; the rest is exact IEEE
 * arithmetic, the same bits as the scalar loops.
 */
#include "cpu_elementwise_f32.h"

#include "cpu_simd.h"

#include <math.h>

#define SQRT_2_OVER_PI 0.7978845608f
#define GELU_CUBIC_SCALED 0.0356774081f /* sqrt(2/pi) * 0.044715 */

SIMD_INLINE simd_f32 neg_v(simd_f32 x) { return -x; }
SIMD_INLINE simd_f32 abs_v(simd_f32 x) { return simd_abs(x); }
SIMD_INLINE simd_f32 relu_v(simd_f32 x) { return simd_select(x > 0.0f, x, simd_splat(0.0f)); }
SIMD_INLINE simd_f32 square_v(simd_f32 x) { return x * x; }

bool f32_unary_supported(tc_unary_op op) {
    switch (op) {
    case TC_NEG: case TC_ABS: case TC_RELU: case TC_SQUARE: case TC_EXP: case TC_TANH: case TC_SIGMOID:
    case TC_GELU_TANH: case TC_SILU: return true;
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
    case TC_NEG: UNARY_LOOP(neg_v); break;
    case TC_ABS: UNARY_LOOP(abs_v); break;
    case TC_RELU: UNARY_LOOP(relu_v); break;
    case TC_SQUARE: UNARY_LOOP(square_v); break;
    case TC_EXP: UNARY_LOOP(simd_exp); break;
    case TC_TANH: UNARY_LOOP(simd_tanh); break;
    case TC_SIGMOID: UNARY_LOOP(simd_sigmoid); break;
    case TC_GELU_TANH: UNARY_LOOP(simd_gelu_tanh); break;
    case TC_SILU: UNARY_LOOP(simd_silu); break;
    default: break;
    }
}

bool f32_unary_backward_supported(tc_unary_op op) {
    switch (op) {
    case TC_NEG: case TC_EXP: case TC_TANH: case TC_SIGMOID: case TC_RELU: case TC_GELU_TANH: case TC_SILU:
    case TC_SQUARE: return true;
    default: return false;
    }
}

/* The derivative factor of each op, from x and y = op(x). */
SIMD_INLINE simd_f32 derivative(tc_unary_op op, simd_f32 x, simd_f32 y) {
    switch (op) {
    case TC_NEG: return simd_splat(-1.0f);
    case TC_EXP: return y;
    case TC_TANH: return 1.0f - y * y;
    case TC_SIGMOID: return y * (1.0f - y);
    case TC_RELU: return simd_select(x > 0.0f, simd_splat(1.0f), simd_splat(0.0f));
    case TC_SQUARE: return x + x;
    case TC_SILU: {
        simd_f32 s = simd_sigmoid(x);
        return s * (1.0f + x * (1.0f - s));
    }
    case TC_GELU_TANH: {
        /* With s = sigmoid(2u): (1 + tanh u) / 2 = s and (1 - tanh^2 u) / 2 = 2 s (1 - s). */
        simd_f32 x2 = x * x;
        simd_f32 u = x * (SQRT_2_OVER_PI + GELU_CUBIC_SCALED * x2);
        simd_f32 du = SQRT_2_OVER_PI + (3.0f * GELU_CUBIC_SCALED) * x2;
        simd_f32 s = simd_sigmoid(u + u);
        return s + 2.0f * x * s * (1.0f - s) * du;
    }
    default: return simd_splat(0.0f);
    }
}

SIMD_INLINE void backward_tail(tc_unary_op op, const float *x, const float *y, const float *g, float *dx,
                               int64_t n) {
    float xs[SIMD_LANES] = {0}, ys[SIMD_LANES] = {0}, gs[SIMD_LANES] = {0}, out[SIMD_LANES];
    memcpy(xs, x, (size_t)n * sizeof(float));
    memcpy(ys, y, (size_t)n * sizeof(float));
    memcpy(gs, g, (size_t)n * sizeof(float));
    simd_store(out, simd_load(gs) * derivative(op, simd_load(xs), simd_load(ys)));
    memcpy(dx, out, (size_t)n * sizeof(float));
}

#define BACKWARD_LOOP(OP)                                                                                          \
    do {                                                                                                           \
        int64_t i = 0;                                                                                             \
        for (; i + SIMD_LANES <= n; i += SIMD_LANES)                                                               \
            simd_store(dx + i, simd_load(g + i) * derivative(OP, simd_load(x + i), simd_load(y + i)));             \
        if (i < n) backward_tail(OP, x + i, y + i, g + i, dx + i, n - i);                                          \
    } while (0)

SIMD_CLONES void f32_unary_backward(tc_unary_op op, const float *x, const float *y, const float *g, float *dx,
                                    int64_t n) {
    /* One loop per op, so the switch inside derivative() folds away. */
    switch (op) {
    case TC_NEG: BACKWARD_LOOP(TC_NEG); break;
    case TC_EXP: BACKWARD_LOOP(TC_EXP); break;
    case TC_TANH: BACKWARD_LOOP(TC_TANH); break;
    case TC_SIGMOID: BACKWARD_LOOP(TC_SIGMOID); break;
    case TC_RELU: BACKWARD_LOOP(TC_RELU); break;
    case TC_SQUARE: BACKWARD_LOOP(TC_SQUARE); break;
    case TC_SILU: BACKWARD_LOOP(TC_SILU); break;
    case TC_GELU_TANH: BACKWARD_LOOP(TC_GELU_TANH); break;
    default: break;
    }
}

bool f32_binary_supported(tc_binary_op op) { return op == TC_ADD || op == TC_SUB || op == TC_MUL || op == TC_DIV; }

/* a and b each a run of values (step 1) or one value repeated (step 0);
 * VECTOR combines va and vb, SCALAR sa and sb, the same way. */
#define BINARY_LOOP(VECTOR, SCALAR)                                                                                \
    do {                                                                                                           \
        int64_t i = 0;                                                                                             \
        simd_f32 a_splat = simd_splat(a[0]), b_splat = simd_splat(b[0]);                                           \
        for (; i + SIMD_LANES <= n; i += SIMD_LANES) {                                                             \
            simd_f32 va = a_step ? simd_load(a + i) : a_splat;                                                     \
            simd_f32 vb = b_step ? simd_load(b + i) : b_splat;                                                     \
            simd_store(out + i, VECTOR);                                                                           \
        }                                                                                                          \
        for (; i < n; i++) {                                                                                       \
            float sa = a[i * a_step], sb = b[i * b_step];                                                          \
            out[i] = SCALAR;                                                                                       \
        }                                                                                                          \
    } while (0)

SIMD_CLONES void f32_binary(tc_binary_op op, const float *a, int64_t a_step, const float *b, int64_t b_step,
                            float *out, int64_t n) {
    if (n <= 0) return;
    switch (op) {
    case TC_ADD: BINARY_LOOP(va + vb, sa + sb); break;
    case TC_SUB: BINARY_LOOP(va - vb, sa - sb); break;
    case TC_MUL: BINARY_LOOP(va * vb, sa * sb); break;
    case TC_DIV: BINARY_LOOP(va / vb, sa / sb); break;
    default: break;
    }
}
