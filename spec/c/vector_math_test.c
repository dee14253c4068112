/*
 * vector_math_test.c: the float32 vector math of cpu/cpu_simd.h against
 * double-precision libm. Sweeps every 331st float bit pattern (both signs,
 * subnormals to Inf, about 13 million inputs) plus special values, and
 * prints the largest error of each function in float ulps of the exact
 * result, and apart from it the absolute error of results below 2^-100
 * (in units of 2^-123, the float spacing there). Fails when a function
 * exceeds its documented bound or mishandles NaN, +-Inf or signed zeros.
 */
#include "cpu/cpu_simd.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"

typedef enum { FN_EXP, FN_TANH, FN_SIGMOID, FN_SILU, FN_GELU_TANH, FN_COUNT } function;
static const char *const names[FN_COUNT] = {"exp", "tanh", "sigmoid", "silu", "gelu_tanh"};
/* Documented bounds, in ulps. For gelu_tanh the bound is per unit of the
 * condition number 1 + |2u|: its argument 2u = 2 sqrt(2/pi) (x + 0.044715
 * x^3) is rounded in float (as in any float evaluation), and e^2u turns
 * that rounding into |2u| ulps of relative error. */
static const double bounds[FN_COUNT] = {1.5, 2.5, 3.0, 3.5, 3.0};
/* Results below TINY may come from a subnormal e^-|x| (which has fewer
 * bits) times |x|, so their absolute error is bounded instead, in units of
 * TINY_UNIT (the float spacing at TINY), per unit of the condition number. */
#define TINY 0x1p-100
#define TINY_UNIT 0x1p-123
#define TINY_BOUND 1.0

static double condition(function f, double x) {
    return f == FN_GELU_TANH ? 1.0 + fabs(2.0 * 0.7978845608028654 * (x + 0.044715 * x * x * x)) : 1.0;
}

static double reference(function f, double x) {
    switch (f) {
    case FN_EXP: return exp(x);
    case FN_TANH: return tanh(x);
    case FN_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case FN_SILU: return x / (1.0 + exp(-x));
    /* 0.5 (1 + tanh(u)) = 1 / (1 + e^-2u), which double evaluates without cancellation. */
    case FN_GELU_TANH: return x / (1.0 + exp(-2.0 * 0.7978845608028654 * (x + 0.044715 * x * x * x)));
    default: return NAN;
    }
}

static SIMD_CLONES void evaluate(function f, const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i += SIMD_LANES) {
        simd_f32 v = simd_load(x + i);
        switch (f) {
        case FN_EXP: v = simd_exp(v); break;
        case FN_TANH: v = simd_tanh(v); break;
        case FN_SIGMOID: v = simd_sigmoid(v); break;
        case FN_SILU: v = simd_silu(v); break;
        case FN_GELU_TANH: v = simd_gelu_tanh(v); break;
        default: break;
        }
        simd_store(y + i, v);
    }
}

/* |got - exact| in ulps of exact as a float (subnormal spacing below FLT_MIN). */
static double ulp_error(float got, double exact) {
    if (isinf(exact) || fabs(exact) > FLT_MAX) {
        return (isinf(got) && signbit(got) == signbit(exact)) || fabs(got) == FLT_MAX ? 0 : INFINITY;
    }
    double magnitude = fabs(exact) < FLT_MIN ? FLT_MIN : fabs(exact);
    int exponent;
    frexp(magnitude, &exponent);
    double ulp = ldexp(1.0, exponent - 24);
    return fabs((double)got - exact) / ulp;
}

#define BLOCK 4096
#define STEP 331

int main(void) {
    static float inputs[BLOCK], outputs[BLOCK];
    double worst[FN_COUNT] = {0}, worst_subnormal[FN_COUNT] = {0};
    float worst_at[FN_COUNT] = {0};
    uint64_t count = 0;
    for (function f = 0; f < FN_COUNT; f++) {
        int filled = 0;
        for (uint64_t bits = 0; bits <= 0xffffffffu; bits += STEP) {
            uint32_t word = (uint32_t)bits;
            float x;
            memcpy(&x, &word, sizeof x);
            if (isnan(x)) continue;
            inputs[filled++] = x;
            if (filled < BLOCK && bits + STEP <= 0xffffffffu) continue;
            while (filled % SIMD_LANES) inputs[filled++] = 0.0f;
            evaluate(f, inputs, outputs, filled);
            for (int i = 0; i < filled; i++) {
                double exact = reference(f, inputs[i]);
                if (fabs(exact) < TINY && exact != 0) {
                    double error = fabs((double)outputs[i] - exact) / TINY_UNIT / condition(f, inputs[i]);
                    if (error > worst_subnormal[f]) worst_subnormal[f] = error;
                    continue;
                }
                double error = ulp_error(outputs[i], exact) / condition(f, inputs[i]);
                if (error > worst[f]) {
                    worst[f] = error;
                    worst_at[f] = inputs[i];
                }
            }
            if (f == 0) count += (uint64_t)filled;
            filled = 0;
        }
        printf("%-10s max error %.3f ulp%s (at x = %.9g); results below 2^-100 within %.3f x 2^-123\n", names[f],
               worst[f], f == FN_GELU_TANH ? " per unit of 1 + |2u|" : "", worst_at[f], worst_subnormal[f]);
        CHECK(worst[f] <= bounds[f], "%s: %.3f ulp exceeds the bound %.1f", names[f], worst[f], bounds[f]);
        CHECK(worst_subnormal[f] <= TINY_BOUND, "%s: tiny results off by %.3f x 2^-123", names[f],
              worst_subnormal[f]);
    }
    printf("(%llu inputs per function)\n", (unsigned long long)count);

    /* Special values. */
    float special[SIMD_LANES] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 88.72f, 89.5f, -103.5f,
                                -110.0f, 1e-30f, -1e-30f, 20.0f, -20.0f, FLT_MAX, -FLT_MAX, 1e-45f};
    float y[SIMD_LANES];
    evaluate(FN_EXP, special, y, SIMD_LANES);
    CHECK(isnan(y[0]), "exp(NaN) = %g", y[0]);
    CHECK(isinf(y[1]) && y[1] > 0, "exp(Inf) = %g", y[1]);
    CHECK(y[2] == 0.0f, "exp(-Inf) = %g", y[2]);
    CHECK(y[3] == 1.0f && y[4] == 1.0f, "exp(+-0) = %g %g", y[3], y[4]);
    CHECK(isinf(y[6]) && isinf(y[13]), "exp overflow = %g %g", y[6], y[13]);
    CHECK(y[8] == 0.0f && y[14] == 0.0f, "exp underflow = %g %g", y[8], y[14]);
    evaluate(FN_TANH, special, y, SIMD_LANES);
    CHECK(isnan(y[0]), "tanh(NaN) = %g", y[0]);
    CHECK(y[1] == 1.0f && y[2] == -1.0f, "tanh(+-Inf) = %g %g", y[1], y[2]);
    CHECK(y[3] == 0.0f && !signbit(y[3]) && y[4] == 0.0f && signbit(y[4]), "tanh(+-0) = %g %g", y[3], y[4]);
    CHECK(y[9] == 1e-30f && y[10] == -1e-30f, "tanh(tiny) = %g %g", y[9], y[10]);
    CHECK(y[13] == 1.0f && y[14] == -1.0f, "tanh(+-FLT_MAX) = %g %g", y[13], y[14]);
    evaluate(FN_SIGMOID, special, y, SIMD_LANES);
    CHECK(isnan(y[0]), "sigmoid(NaN) = %g", y[0]);
    CHECK(y[1] == 1.0f && y[2] == 0.0f, "sigmoid(+-Inf) = %g %g", y[1], y[2]);
    CHECK(y[3] == 0.5f && y[4] == 0.5f, "sigmoid(+-0) = %g %g", y[3], y[4]);
    evaluate(FN_SILU, special, y, SIMD_LANES);
    CHECK(isnan(y[0]), "silu(NaN) = %g", y[0]);
    CHECK(isinf(y[1]) && y[1] > 0, "silu(Inf) = %g", y[1]);
    evaluate(FN_GELU_TANH, special, y, SIMD_LANES);
    CHECK(isnan(y[0]), "gelu_tanh(NaN) = %g", y[0]);
    CHECK(y[11] == 20.0f && y[12] == 0.0f, "gelu_tanh(+-20) = %g %g", y[11], y[12]);

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
