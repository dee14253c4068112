/*
 * half_test.c: the conversions between float32 (and float64) and the 16-bit
 * floats. Every bfloat16 and float16 bit pattern to float32, and every
 * 13th float32 bit pattern (330 million, both signs, subnormals to NaN) to
 * each, on the vector path (when the CPU has it) against half.h's scalar
 * reference, bit for bit; the scalar reference on values whose rounding is
 * known (ties to even, overflow to Inf, float16 subnormals, quiet NaNs); the
 * float64 conversion's single rounding; and copies through the engine.
 */
#include "cpu/cpu_half.h"
#include "half.h"
#include "tricycle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"

#define BLOCK 4096
#define STEP 13

static const char *name_of(tc_dtype dtype) { return dtype == TC_BFLOAT16 ? "bfloat16" : "float16"; }

/* Both directions on both paths, over every 16-bit pattern and a sweep of float32 patterns. */
static void check_paths(tc_dtype dtype, bool vector) {
    static uint16_t halves[65536], back[BLOCK];
    static float floats[65536], inputs[BLOCK];
    for (uint32_t h = 0; h < 65536; h++) halves[h] = (uint16_t)h;
    cpu_half_to_float(dtype, halves, floats, 65536, vector);
    int wrong = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float want = dtype == TC_BFLOAT16 ? tc_bfloat16_to_float((uint16_t)h) : tc_float16_to_float((uint16_t)h);
        if (tc_float_bits(floats[h]) != tc_float_bits(want) && wrong++ < 3)
            printf("  %s %04x -> %08x, expected %08x\n", name_of(dtype), h, tc_float_bits(floats[h]),
                   tc_float_bits(want));
    }
    CHECK(wrong == 0, "%s to float32 (%s path): %d patterns differ", name_of(dtype), vector ? "vector" : "scalar",
          wrong);
    wrong = 0;
    int filled = 0;
    for (uint64_t bits = 0; bits <= 0xffffffffu; bits += STEP) {
        inputs[filled++] = tc_bits_float((uint32_t)bits);
        if (filled < BLOCK - 3 && bits + STEP <= 0xffffffffu) continue;
        cpu_float_to_half(dtype, inputs, back, filled, vector); /* filled is not always a multiple of 16: tails */
        for (int i = 0; i < filled; i++) {
            uint16_t want = dtype == TC_BFLOAT16 ? tc_float_to_bfloat16(inputs[i]) : tc_float_to_float16(inputs[i]);
            if (back[i] != want && wrong++ < 3)
                printf("  float32 %08x -> %s %04x, expected %04x\n", tc_float_bits(inputs[i]), name_of(dtype),
                       back[i], want);
        }
        filled = 0;
    }
    CHECK(wrong == 0, "float32 to %s (%s path): %d patterns differ", name_of(dtype), vector ? "vector" : "scalar",
          wrong);
}

static void check_known_values(void) {
    /* bfloat16: ties to even, overflow, NaN */
    CHECK(tc_float_to_bfloat16(1.0f + 0x1p-8f) == 0x3f80, "1 + 2^-8 ties to even: 1");
    CHECK(tc_float_to_bfloat16(1.0f + 0x3p-8f) == 0x3f82, "1 + 3 x 2^-8 ties to even: 1 + 2^-6");
    CHECK(tc_float_to_bfloat16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81, "just above the tie rounds up");
    CHECK(tc_float_to_bfloat16(3.3895313892515355e38f) == 0x7f7f, "the largest bfloat16 stays");
    CHECK(tc_float_to_bfloat16(3.40282347e38f) == 0x7f80, "FLT_MAX rounds to Inf");
    CHECK(tc_float_to_bfloat16(-INFINITY) == 0xff80, "-Inf");
    CHECK(tc_float_to_bfloat16(tc_bits_float(0x7f800001u)) == 0x7fc0, "a signalling NaN becomes quiet");
    CHECK(tc_float_to_bfloat16(tc_bits_float(0xffc00000u)) == 0xffc0, "NaN keeps its sign");
    CHECK(tc_float_to_bfloat16(tc_bits_float(0x00008000u)) == 0x0000, "a subnormal tie to even: 0");
    CHECK(tc_float_to_bfloat16(tc_bits_float(0x00018000u)) == 0x0002, "a subnormal tie to even: up");
    /* float16 */
    CHECK(tc_float_to_float16(1.0f) == 0x3c00, "1");
    CHECK(tc_float_to_float16(65504.0f) == 0x7bff, "65504, the largest float16");
    CHECK(tc_float_to_float16(65519.0f) == 0x7bff, "65519 rounds down to 65504");
    CHECK(tc_float_to_float16(65520.0f) == 0x7c00, "65520 ties to even: Inf");
    CHECK(tc_float_to_float16(1e10f) == 0x7c00, "overflow gives Inf");
    CHECK(tc_float_to_float16(0x1p-24f) == 0x0001, "2^-24, the smallest subnormal");
    CHECK(tc_float_to_float16(0x1p-25f) == 0x0000, "2^-25 ties to even: 0");
    CHECK(tc_float_to_float16(0x3p-26f) == 0x0001, "3 x 2^-26 rounds up to 2^-24");
    CHECK(tc_float_to_float16(0x3p-25f) == 0x0002, "3 x 2^-25 ties to even: 2^-23");
    CHECK(tc_float_to_float16(0x1.ffcp-15f) == 0x0400, "the largest subnormal's tie carries into 2^-14");
    CHECK(tc_float_to_float16(-0.0f) == 0x8000, "-0");
    CHECK(tc_float_to_float16(tc_bits_float(0x7f800001u)) == 0x7e00, "a signalling NaN becomes quiet");
    CHECK(tc_float16_to_float(0x0001) == 0x1p-24f, "subnormal 0x0001 is 2^-24");
    CHECK(tc_float16_to_float(0x7c00) == INFINITY, "0x7c00 is Inf");
    CHECK(isnan(tc_float16_to_float(0x7c01)) && (tc_float_bits(tc_float16_to_float(0x7c01)) & 0x400000u),
          "0x7c01 is a quiet NaN");
    /* float64 rounds once: through float32 first, 1 + 2^-8 + 2^-40 would tie and go down */
    CHECK(tc_double_to_bfloat16(1.0 + 0x1p-8 + 0x1p-40) == 0x3f81, "double 1 + 2^-8 + 2^-40 rounds up");
    CHECK(tc_double_to_bfloat16(1.0 + 0x1p-8 - 0x1p-40) == 0x3f80, "double 1 + 2^-8 - 2^-40 rounds down");
    CHECK(tc_double_to_float16(1.0 + 0x1p-11 + 0x1p-40) == 0x3c01, "float16: double above a tie rounds up");
    CHECK(tc_double_to_float16(-(1.0 + 0x1p-11 + 0x1p-40)) == 0xbc01, "and its negative");
    CHECK(tc_double_to_bfloat16(1e300) == 0x7f80, "a double past float32 gives Inf");
    CHECK(tc_double_to_float16(1e-300) == 0x0000, "a tiny double gives 0");
}

/* Copies through the engine: float64 -> bfloat16 rounds once; int64 -> float16 and back. */
static void check_engine(void) {
    tc_context *ctx = tc_context_new();
    const double values[3] = {1.0 + 0x1p-8 + 0x1p-40, -65520.0, 0x1p-25 * 3};
    int64_t shape[1] = {3};
    tc_tensor *b = NULL, *h = NULL;
    CHECK(tc_from_data(ctx, TC_BFLOAT16, 1, shape, values, TC_FLOAT64, &b) == TC_OK, "from_data bfloat16");
    CHECK(tc_from_data(ctx, TC_FLOAT16, 1, shape, values, TC_FLOAT64, &h) == TC_OK, "from_data float16");
    if (b && h) {
        const uint16_t *bits = tc_tensor_data(b), *hbits = tc_tensor_data(h);
        CHECK(bits[0] == 0x3f81 && bits[1] == 0xc780, "bfloat16 from float64: %04x %04x", bits[0], bits[1]);
        CHECK(hbits[1] == 0xfc00 && hbits[2] == 0x0002, "float16 from float64: %04x %04x", hbits[1], hbits[2]);
        tc_tensor *wide = NULL;
        CHECK(tc_to_dtype(h, TC_FLOAT64, &wide) == TC_OK, "float16 to float64");
        double back[3] = {0};
        if (wide) CHECK(tc_copy_to_doubles(wide, back, 3) == TC_OK && back[1] == -INFINITY && back[2] == 0x1p-23,
                        "float16 back to float64: %g %g", back[1], back[2]);
        tc_tensor_release(wide);
    }
    tc_tensor_release(b);
    tc_tensor_release(h);
    tc_context_free(ctx);
}

/* cpu_float16_weight_gemv against a float64 sum of the widened weight, for
 * depths and row counts around its 16-lane and 4-row steps; y starts at 1
 * (the sums are added). */
static void check_float16_gemv(bool vector) {
    enum { MAX_N = 11, MAX_K = 70 };
    static uint16_t w[MAX_N * MAX_K];
    static float x[MAX_K], y[MAX_N];
    unsigned seed = 7;
    int wrong = 0;
    const int depths[] = {1, 15, 16, 17, 33, 70}, counts[] = {1, 3, 4, 5, 8, 11};
    for (int a = 0; a < 6; a++) {
        for (int b = 0; b < 6; b++) {
            int k = depths[a], n = counts[b];
            for (int i = 0; i < k; i++) {
                seed = seed * 1103515245u + 12345u;
                x[i] = (float)((int)(seed >> 16) % 2001 - 1000) / 250.0f;
            }
            for (int i = 0; i < n * k; i++) {
                seed = seed * 1103515245u + 12345u;
                w[i] = tc_float_to_float16((float)((int)(seed >> 16) % 2001 - 1000) / 300.0f);
            }
            for (int j = 0; j < n; j++) y[j] = 1.0f;
            cpu_float16_weight_gemv(n, k, x, w, k, y, vector);
            for (int j = 0; j < n; j++) {
                double want = 1.0, size = 1.0;
                for (int i = 0; i < k; i++) {
                    double term = (double)x[i] * tc_float16_to_float(w[j * k + i]);
                    want += term;
                    size += fabs(term);
                }
                if (fabs(y[j] - want) > 1e-6 * size && wrong++ < 3)
                    printf("  float16 gemv (%s) k %d n %d row %d: %.9g, expected %.9g\n", vector ? "vector" : "scalar",
                           k, n, j, y[j], want);
            }
        }
    }
    CHECK(wrong == 0, "float16-weight GEMV (%s path): %d sums differ", vector ? "vector" : "scalar", wrong);
}

int main(void) {
    bool vector = cpu_half_vector_available();
    printf("half_test: vector path %s\n", vector ? "available (AVX-512F, F16C)" : "not available: scalar only");
    check_known_values();
    for (int k = 0; k < 2; k++) {
        tc_dtype dtype = k == 0 ? TC_BFLOAT16 : TC_FLOAT16;
        check_paths(dtype, false);
        if (vector) check_paths(dtype, true);
    }
    check_float16_gemv(false);
    if (vector) check_float16_gemv(true);
    check_engine();
    printf("half_test: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
