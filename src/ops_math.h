/*
 * ops_math.h: the element-wise math of op_list.h's unary and binary ops,
 * written once and compiled for every backend (as ggml's ggml-common.h
 * is): as C by the CPU's generic loops (float and double) and its float32
 * vector loops (cpu_simd.h), as CUDA C++ by the CUDA kernels and as C++ by
 * their emulation. The kernels expand these formulas from op_list.h's rows,
 * so an op without its formulas here does not compile, and no kernel file
 * names an op's math.
 *
 * Float formulas are macros over a math kit K, a name prefix that says
 * what the formula computes with:
 *   K##_real                    the value type (float, double, simd_f32, T)
 *   K##_const(c)                the number c as a K##_real
 *   K##_select(m, a, b)         m ? a : b, m a comparison of K##_real values
 *   K##_exp, _log, _sqrt, _tanh, _sin, _cos, _fabs, _erfc, _pow
 *                               the math functions of K##_real
 *   K##_fn                      how TC_MATH_HELPERS declares its functions
 *   K##_wide                    the kit exact GELU is evaluated in
 * The kits: `float` and `double` (below; C), `simd` (cpu_simd.h: its exp
 * and tanh, so only the ops of TC_MATH_VECTOR_UNARY/_BINARY), `cuda`
 * (cuda_kernels.h; K##_real is the kernel's T) and `integer` (below: the
 * select and constants of the integer formulas). TC_MATH_HELPERS(K) makes
 * the kit's functions that need temporaries: K##_sigmoid, K##_silu,
 * K##_silu_slope, K##_gelu_tanh and K##_gelu_tanh_slope.
 *
 * For each unary op ID:
 *   TC_MATH_<ID>(K, x)             its value
 *   TC_MATH_<ID>_GRAD(K, x, y, g)  g * f'(x), from x, y = f(x) and the
 *                                  incoming gradient g
 * and for each binary op TC_MATH_<ID>(K, a, b). Binary ops' derivatives
 * are compositions of tensor ops (ops_elementwise.c), not kernels. Integer
 * dtypes use the formulas TC_MATH_INTEGER_UNARY/_BINARY name, with the
 * kit `integer`; the ops with TC_OP_INTEGERS must be there (checked below).
 *
 * One form per op for every path: the float32 vector loops' forms are the
 * formulas, so CPU float32 results keep their bits and the other paths
 * (float64, strided float32, CUDA) compute the same expressions with their
 * own exp and tanh. Sigmoid is 1 / (1 + e^-|x|) with x's side chosen, so
 * neither tail loses precision; GELU-tanh is x sigmoid(2u) rather than
 * x/2 (1 + tanh u), the same function without the cancellation of 1 +
 * tanh u for negative x, and the GEMM epilogues (cpu_sgemm.c, cuda
 * matmul) take the same helper, so linear_gelu gives linear-then-GELU's
 * bits. Exact GELU goes through erfc (no cancellation for negative x), in
 * double for float32 data (float_wide, cuda_wide) as the CPU always did.
 *
 * A new unary op, after its row in op_list.h: TC_MATH_<ID> and _GRAD here
 * (a math library function they need that no kit has goes into
 * TC_MATH_LIBRARY); a row in TC_MATH_INTEGER_UNARY if it has
 * TC_OP_INTEGERS; in TC_MATH_VECTOR_UNARY if the simd kit can compute it.
 * The CPU and CUDA kernels then have it, forward and backward.
 */
#ifndef TRICYCLE_OPS_MATH_H
#define TRICYCLE_OPS_MATH_H

#include "tricycle.h"

#include <stdint.h>

/* Plain functions shared by the C and CUDA code. */
#if defined(__CUDACC__) || defined(TC_CUDA_EMULATION)
#define TC_MATH_FN __host__ __device__ __forceinline__
#else
#define TC_MATH_FN static inline
#endif

#ifdef __cplusplus
#define TC_MATH_STATIC_ASSERT(condition, message) static_assert(condition, message)
#else
#define TC_MATH_STATIC_ASSERT(condition, message) _Static_assert(condition, message)
#endif

#define TC_MATH_SQRT_HALF 0.70710678118654752440
#define TC_MATH_INV_SQRT_2PI 0.39894228040143267794
#define TC_MATH_SQRT_2_OVER_PI 0.79788456080286535588
/* sqrt(2/pi) * 0.044715, GELU-tanh's cubic coefficient inside u. */
#define TC_MATH_GELU_CUBIC (TC_MATH_SQRT_2_OVER_PI * 0.044715)

/* F(W, args...) with W, a kit name made by pasting, expanded first. */
#define TC_MATH_IN_KIT(F, W, ...) F(W, __VA_ARGS__)

/* ---- the helpers of each kit ----
 * GELU-tanh: u = sqrt(2/pi) (x + 0.044715 x^3), value x sigmoid(2u); with
 * s = sigmoid(2u), (1 + tanh u) / 2 = s and (1 - tanh^2 u) / 2 = 2 s (1 - s),
 * so the slope is s + 2 x s (1 - s) du/dx. */
#define TC_MATH_HELPERS(K)                                                                                         \
    K##_fn K##_real K##_sigmoid(K##_real x) {                                                                      \
        K##_real e = K##_exp(-K##_fabs(x));                                                                        \
        K##_real s = K##_const(1) / (K##_const(1) + e);                                                            \
        return K##_select(x >= K##_const(0), s, e * s);                                                            \
    }                                                                                                              \
    K##_fn K##_real K##_silu(K##_real x) { return x * K##_sigmoid(x); }                                            \
    K##_fn K##_real K##_silu_slope(K##_real x) {                                                                   \
        K##_real s = K##_sigmoid(x);                                                                               \
        return s * (K##_const(1) + x * (K##_const(1) - s));                                                        \
    }                                                                                                              \
    K##_fn K##_real K##_gelu_tanh(K##_real x) {                                                                    \
        K##_real u = x * (K##_const(TC_MATH_SQRT_2_OVER_PI) + K##_const(TC_MATH_GELU_CUBIC) * (x * x));             \
        return x * K##_sigmoid(u + u);                                                                             \
    }                                                                                                              \
    K##_fn K##_real K##_gelu_tanh_slope(K##_real x) {                                                              \
        K##_real x2 = x * x;                                                                                       \
        K##_real u = x * (K##_const(TC_MATH_SQRT_2_OVER_PI) + K##_const(TC_MATH_GELU_CUBIC) * x2);                  \
        K##_real du = K##_const(TC_MATH_SQRT_2_OVER_PI) + K##_const(3) * K##_const(TC_MATH_GELU_CUBIC) * x2;        \
        K##_real s = K##_sigmoid(u + u);                                                                           \
        return s + K##_const(2) * x * s * (K##_const(1) - s) * du;                                                 \
    }

/* ---- unary ops: value and g * f'(x) ---- */

#define TC_MATH_NEG(K, x) (-(x))
#define TC_MATH_NEG_GRAD(K, x, y, g) ((g) * K##_const(-1))

#define TC_MATH_EXP(K, x) K##_exp(x)
#define TC_MATH_EXP_GRAD(K, x, y, g) ((g) * (y))

#define TC_MATH_LOG(K, x) K##_log(x)
#define TC_MATH_LOG_GRAD(K, x, y, g) ((g) / (x))

#define TC_MATH_SQRT(K, x) K##_sqrt(x)
#define TC_MATH_SQRT_GRAD(K, x, y, g) ((g) * K##_const(0.5) / (y))

#define TC_MATH_ABS(K, x) K##_fabs(x)
#define TC_MATH_ABS_GRAD(K, x, y, g) ((g) * TC_MATH_SIGN(K, x))

#define TC_MATH_TANH(K, x) K##_tanh(x)
#define TC_MATH_TANH_GRAD(K, x, y, g) ((g) * (K##_const(1) - (y) * (y)))

#define TC_MATH_SIGMOID(K, x) K##_sigmoid(x)
#define TC_MATH_SIGMOID_GRAD(K, x, y, g) ((g) * ((y) * (K##_const(1) - (y))))

#define TC_MATH_RELU(K, x) K##_select((x) > K##_const(0), (x), K##_const(0))
/* The gradient passes where x > 0 and is 0 elsewhere, whatever it is (an
 * infinite or NaN gradient there does not become NaN), as in PyTorch. */
#define TC_MATH_RELU_GRAD(K, x, y, g) K##_select((x) > K##_const(0), (g), K##_const(0))

/* x Phi(x) = x/2 erfc(-x / sqrt 2); the slope Phi(x) + x phi(x). */
#define TC_MATH_GELU(K, x) TC_MATH_IN_KIT(TC_MATH_GELU_IN, K##_wide, x)
#define TC_MATH_GELU_GRAD(K, x, y, g) TC_MATH_IN_KIT(TC_MATH_GELU_GRAD_IN, K##_wide, x, g)
#define TC_MATH_GELU_IN(W, x) (W##_const(0.5) * (W##_real)(x) * W##_erfc(-(W##_real)(x) * W##_const(TC_MATH_SQRT_HALF)))
#define TC_MATH_GELU_GRAD_IN(W, x, g)                                                                              \
    ((W##_real)(g) * (W##_const(0.5) * W##_erfc(-(W##_real)(x) * W##_const(TC_MATH_SQRT_HALF)) +                  \
                      (W##_real)(x) * W##_const(TC_MATH_INV_SQRT_2PI) *                                            \
                          W##_exp(-W##_const(0.5) * (W##_real)(x) * (W##_real)(x))))

#define TC_MATH_GELU_TANH(K, x) K##_gelu_tanh(x)
#define TC_MATH_GELU_TANH_GRAD(K, x, y, g) ((g) * K##_gelu_tanh_slope(x))

#define TC_MATH_SILU(K, x) K##_silu(x)
#define TC_MATH_SILU_GRAD(K, x, y, g) ((g) * K##_silu_slope(x))

#define TC_MATH_SIN(K, x) K##_sin(x)
#define TC_MATH_SIN_GRAD(K, x, y, g) ((g) * K##_cos(x))

#define TC_MATH_COS(K, x) K##_cos(x)
#define TC_MATH_COS_GRAD(K, x, y, g) (-(g) * K##_sin(x))

#define TC_MATH_RSQRT(K, x) (K##_const(1) / K##_sqrt(x))
#define TC_MATH_RSQRT_GRAD(K, x, y, g) (-K##_const(0.5) * (g) * (y) * (y) * (y))

#define TC_MATH_SQUARE(K, x) ((x) * (x))
#define TC_MATH_SQUARE_GRAD(K, x, y, g) ((g) * ((x) + (x)))

#define TC_MATH_LOG1P(K, x) K##_log1p(x)
#define TC_MATH_LOG1P_GRAD(K, x, y, g) ((g) / (K##_const(1) + (x)))

/* log(1 + e^x) as max(x, 0) + log1p(e^-|x|): e^x cannot overflow for large
 * x, nor lose the small values of negative x; the slope is sigmoid(x). */
#define TC_MATH_SOFTPLUS(K, x)                                                                                     \
    (K##_select((x) > K##_const(0), (x), K##_const(0)) + K##_log1p(K##_exp(-K##_fabs(x))))
#define TC_MATH_SOFTPLUS_GRAD(K, x, y, g) ((g) * K##_sigmoid(x))

/* -1, 0 or 1; NaN gives 0. Not differentiable (zero almost everywhere). */
#define TC_MATH_SIGN(K, x)                                                                                         \
    K##_select((x) > K##_const(0), K##_const(1), K##_select((x) < K##_const(0), K##_const(-1), K##_const(0)))
#define TC_MATH_SIGN_GRAD(K, x, y, g) K##_const(0)

/* 1 where x == 0, else 0 (the op layer makes it bool). Not differentiable. */
#define TC_MATH_LOGICAL_NOT(K, x) K##_select((x) == K##_const(0), K##_const(1), K##_const(0))
#define TC_MATH_LOGICAL_NOT_GRAD(K, x, y, g) K##_const(0)

/* Integers nearby: floor, ceil, round (halves to even: rint in the default
 * rounding mode, as PyTorch) and trunc. Their gradient is zero, as
 * PyTorch's: constant almost everywhere. Integer dtypes keep x. */
#define TC_MATH_FLOOR(K, x) K##_floor(x)
#define TC_MATH_FLOOR_GRAD(K, x, y, g) K##_const(0)
#define TC_MATH_CEIL(K, x) K##_ceil(x)
#define TC_MATH_CEIL_GRAD(K, x, y, g) K##_const(0)
#define TC_MATH_ROUND(K, x) K##_rint(x)
#define TC_MATH_ROUND_GRAD(K, x, y, g) K##_const(0)
#define TC_MATH_TRUNC(K, x) K##_trunc(x)
#define TC_MATH_TRUNC_GRAD(K, x, y, g) K##_const(0)

/* ---- binary ops ----
 * Comparisons and logic give 0 or 1 (the kernels store them as bool).
 * maximum and minimum propagate a NaN in a. */

#define TC_MATH_ADD(K, a, b) ((a) + (b))
#define TC_MATH_SUB(K, a, b) ((a) - (b))
#define TC_MATH_MUL(K, a, b) ((a) * (b))
#define TC_MATH_DIV(K, a, b) ((a) / (b))
#define TC_MATH_POW(K, a, b) K##_pow(a, b)
#define TC_MATH_MAXIMUM(K, a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))
#define TC_MATH_MINIMUM(K, a, b) (((a) < (b) || (a) != (a)) ? (a) : (b))
#define TC_MATH_EQ(K, a, b) ((a) == (b))
#define TC_MATH_NE(K, a, b) ((a) != (b))
#define TC_MATH_LT(K, a, b) ((a) < (b))
#define TC_MATH_LE(K, a, b) ((a) <= (b))
#define TC_MATH_GT(K, a, b) ((a) > (b))
#define TC_MATH_GE(K, a, b) ((a) >= (b))
#define TC_MATH_LOGICAL_AND(K, a, b) ((a) != 0 && (b) != 0)
#define TC_MATH_LOGICAL_OR(K, a, b) ((a) != 0 || (b) != 0)

/* ---- integer dtypes ----
 * Integer arithmetic wraps around as two's complement (as in PyTorch): it
 * is computed in uint64_t, where C and C++ define the wrap-around, and the
 * kernel converts the result to its N-bit dtype, which keeps the low N
 * bits (GCC, Clang and nvcc define the conversion so) - those of the exact
 * result modulo 2^N, as the low bits of a sum, difference or product do
 * not depend on the higher ones. Signed overflow would be undefined:
 * -INT64_MIN, INT32_MAX + 1. The helpers take int64_t, which holds every
 * integer dtype, so no comparison is of an unsigned value with 0. */

#define integer_const(c) (c)
#define integer_select(m, a, b) ((m) ? (a) : (b))

#define TC_WRAP_ADD(a, b) ((uint64_t)(a) + (uint64_t)(b))
#define TC_WRAP_SUB(a, b) ((uint64_t)(a) - (uint64_t)(b))
#define TC_WRAP_MUL(a, b) ((uint64_t)(a) * (uint64_t)(b))
#define TC_WRAP_NEG(a) ((uint64_t)0 - (uint64_t)(a))

/* |x|; the most negative value is its own absolute value, as its negation wraps. */
TC_MATH_FN uint64_t tc_wrap_abs(int64_t x) { return x < 0 ? TC_WRAP_NEG(x) : (uint64_t)x; }

TC_MATH_FN int tc_integer_sign(int64_t x) { return (x > 0) - (x < 0); }

/* Integer division is made a float op by the op layer; were it not, it
 * would still be defined: by zero it gives 0, and the most negative value
 * divided by -1 wraps to itself. */
TC_MATH_FN uint64_t tc_wrap_div(int64_t a, int64_t b) {
    return b == 0 ? 0 : b == -1 ? TC_WRAP_NEG(a) : (uint64_t)(a / b);
}

#define TC_MATH_NEG_INTEGER(K, x) TC_WRAP_NEG(x)
#define TC_MATH_ABS_INTEGER(K, x) tc_wrap_abs(x)
#define TC_MATH_SQUARE_INTEGER(K, x) TC_WRAP_MUL(x, x)
#define TC_MATH_SIGN_INTEGER(K, x) tc_integer_sign(x)
#define TC_MATH_INTEGER_SAME(K, x) (x)
#define TC_MATH_ADD_INTEGER(K, a, b) TC_WRAP_ADD(a, b)
#define TC_MATH_SUB_INTEGER(K, a, b) TC_WRAP_SUB(a, b)
#define TC_MATH_MUL_INTEGER(K, a, b) TC_WRAP_MUL(a, b)
#define TC_MATH_DIV_INTEGER(K, a, b) tc_wrap_div(a, b)
#define TC_MATH_MAXIMUM_INTEGER(K, a, b) ((a) > (b) ? (a) : (b))
#define TC_MATH_MINIMUM_INTEGER(K, a, b) ((a) < (b) ? (a) : (b))

/* X(ID, formula): the ops integer (and bool) dtypes compute, and how. */
#define TC_MATH_INTEGER_UNARY(X)                                                                                   \
    X(NEG, TC_MATH_NEG_INTEGER) X(ABS, TC_MATH_ABS_INTEGER) X(RELU, TC_MATH_RELU)                                  \
    X(SQUARE, TC_MATH_SQUARE_INTEGER) X(SIGN, TC_MATH_SIGN_INTEGER) X(LOGICAL_NOT, TC_MATH_LOGICAL_NOT)            \
    X(FLOOR, TC_MATH_INTEGER_SAME) X(CEIL, TC_MATH_INTEGER_SAME) X(ROUND, TC_MATH_INTEGER_SAME)                    \
    X(TRUNC, TC_MATH_INTEGER_SAME)
#define TC_MATH_INTEGER_BINARY(X)                                                                                  \
    X(ADD, TC_MATH_ADD_INTEGER) X(SUB, TC_MATH_SUB_INTEGER) X(MUL, TC_MATH_MUL_INTEGER)                            \
    X(DIV, TC_MATH_DIV_INTEGER) X(MAXIMUM, TC_MATH_MAXIMUM_INTEGER) X(MINIMUM, TC_MATH_MINIMUM_INTEGER)            \
    X(EQ, TC_MATH_EQ) X(NE, TC_MATH_NE) X(LT, TC_MATH_LT) X(LE, TC_MATH_LE) X(GT, TC_MATH_GT) X(GE, TC_MATH_GE)     \
    X(LOGICAL_AND, TC_MATH_LOGICAL_AND) X(LOGICAL_OR, TC_MATH_LOGICAL_OR)

/* X(ID): the ops the float32 vector loops run (their formulas use only
 * what the simd kit has); the others take the generic loops. */
#define TC_MATH_VECTOR_UNARY(X)                                                                                    \
    X(NEG) X(ABS) X(RELU) X(SQUARE) X(EXP) X(TANH) X(SIGMOID) X(GELU_TANH) X(SILU)
#define TC_MATH_VECTOR_BINARY(X) X(ADD) X(SUB) X(MUL) X(DIV)

/* ---- op properties as constant masks (bit TC_<ID>) ---- */

#define TC_MATH_BIT(ID, ...) | (1ull << TC_##ID)
#define TC_MATH_INTEGERS_BIT(ID, name, arity, backward, properties, summary)                                       \
    | (((properties) & TC_OP_INTEGERS) ? 1ull << TC_##ID : 0ull)
#define TC_MATH_BOOL_RESULT_BIT(ID, name, arity, backward, properties, summary)                                    \
    | (((properties) & TC_OP_BOOL_RESULT) ? 1ull << TC_##ID : 0ull)

/* The unary ops integer dtypes have: also the ones cheap enough per
 * element to split work coarsely. */
#define TC_MATH_UNARY_INTEGERS (0ull TC_UNARY_OP_LIST(TC_MATH_INTEGERS_BIT))
#define TC_MATH_BINARY_INTEGERS (0ull TC_BINARY_OP_LIST(TC_MATH_INTEGERS_BIT))
/* The binary ops whose result is bool. */
#define TC_MATH_BINARY_BOOL_RESULTS (0ull TC_BINARY_OP_LIST(TC_MATH_BOOL_RESULT_BIT))

TC_MATH_STATIC_ASSERT(TC_UNARY_OP_COUNT <= 64 && TC_BINARY_OP_COUNT <= 64, "the op masks have 64 bits");
TC_MATH_STATIC_ASSERT((TC_MATH_UNARY_INTEGERS & ~(0ull TC_MATH_INTEGER_UNARY(TC_MATH_BIT))) == 0,
                      "every unary op with TC_OP_INTEGERS has a formula in TC_MATH_INTEGER_UNARY");
TC_MATH_STATIC_ASSERT((TC_MATH_BINARY_INTEGERS & ~(0ull TC_MATH_INTEGER_BINARY(TC_MATH_BIT))) == 0,
                      "every binary op with TC_OP_INTEGERS has a formula in TC_MATH_INTEGER_BINARY");

/* ---- conversions ----
 * A floating value as an integer dtype: truncated toward zero, saturating
 * at the type's range, NaN as 0 (C leaves out-of-range conversions
 * undefined, and the GPU and the host differ). Integer to integer
 * conversions wrap, as the language defines them. */

TC_MATH_FN int32_t tc_float_to_int32(double v) {
    return v != v ? 0 : v <= -2147483648.0 ? INT32_MIN : v >= 2147483647.0 ? INT32_MAX : (int32_t)v;
}
TC_MATH_FN int64_t tc_float_to_int64(double v) {
    return v != v ? 0 : v <= -9223372036854775808.0 ? INT64_MIN : v >= 9223372036854775808.0 ? INT64_MAX : (int64_t)v;
}
TC_MATH_FN uint8_t tc_float_to_uint8(double v) { return v != v || v <= 0.0 ? 0 : v >= 255.0 ? 255 : (uint8_t)v; }

/* ---- the C kits: libm's float and double functions ---- */

/* The functions every kit but simd takes from the math library: X(name)
 * for name(double) and name##f(float), wrapped as float_<name> and
 * double_<name> below and as cuda_<name> by cuda_kernels.h. sin, cos and
 * pow each kit provides itself. */
#define TC_MATH_LIBRARY(X) X(exp) X(log) X(log1p) X(sqrt) X(tanh) X(erfc) X(fabs) X(floor) X(ceil) X(rint) X(trunc)

#ifndef __cplusplus
#include <math.h>

#define TC_MATH_C_FUNCTIONS(name)                                                                                  \
    static inline float float_##name(float x) { return name##f(x); }                                               \
    static inline double double_##name(double x) { return name(x); }
TC_MATH_LIBRARY(TC_MATH_C_FUNCTIONS)
TC_MATH_C_FUNCTIONS(sin)
TC_MATH_C_FUNCTIONS(cos)
static inline float float_pow(float a, float b) { return powf(a, b); }
static inline double double_pow(double a, double b) { return pow(a, b); }

#define float_real float
#define float_const(c) ((float)(c))
#define float_select(m, a, b) ((m) ? (a) : (b))
#define float_fn static inline
#define float_wide double

#define double_real double
#define double_const(c) ((double)(c))
#define double_select(m, a, b) ((m) ? (a) : (b))
#define double_fn static inline
#define double_wide double

TC_MATH_HELPERS(float)
TC_MATH_HELPERS(double)
#endif

/* Sort keys (sort and topk on every backend): an element as a uint64 whose
 * unsigned order is the ascending sort order, so kernels compare integers
 * only. Floats (float32 widened exactly) map -0 to 0, so the two tie, and
 * every NaN to the largest key; descending order is the complement, which
 * puts NaN first. Ties are broken by position by the kernels (stable).
 * FN declares the functions (static inline, or __device__ for CUDA). */
#define TC_SORT_KEY_HELPERS(FN)                                                                                      \
    FN uint64_t tc_sort_key_of_double(double v) {                                                                    \
        union {                                                                                                      \
            double value;                                                                                            \
            uint64_t bits;                                                                                           \
        } word;                                                                                                      \
        if (v != v) return UINT64_MAX;                                                                               \
        word.value = v == 0 ? 0.0 : v;                                                                               \
        return word.bits >> 63 ? ~word.bits : word.bits | UINT64_C(0x8000000000000000);                             \
    }                                                                                                                \
    FN uint64_t tc_sort_key_of_int64(int64_t v) { return (uint64_t)v ^ UINT64_C(0x8000000000000000); }

#endif
