/*
 * cpu_sgemm.c: our own float32 GEMM for CPUs with AVX-512, used instead of
 * the BLAS's sgemm where the CPU has AVX-512F (cpu_sgemm_available).
 *
 * Why it exists: a BLAS picks its kernels from the CPU model it recognises,
 * and a BLAS older than the CPU (or one told to, through OPENBLAS_CORETYPE)
 * runs 8-lane AVX2 kernels on a core that executes 16-lane FMAs at full
 * rate: half the speed the hardware has. This file does not depend on that
 * choice.
 *
 * The blocked scheme of GotoBLAS, with op(a) read in place: C is computed
 * in TILE_ROWS x TILE_COLUMNS tiles, each a sum over depth blocks of
 * DEPTH_BLOCK. For each depth block, a block of op(b) (DEPTH_BLOCK x
 * COLUMN_BLOCK) is packed into k-major column panels (a transposed b goes
 * through 16 x 16 register transposes); the tile kernel keeps the tile in
 * 24 vector registers, streams one b panel (32 KiB, held in L1) and
 * broadcasts op(a)'s values straight from its rows (or, transposed, its
 * columns), walking ROW_BLOCK rows at a time so they stay in L2. Packing
 * op(a) too cost more than it saved on every shape of a GPT step (measured:
 * 150-200 against 180-218 GFLOP/s on one Zen 5 core). A tile of fewer
 * rows runs a copy of the kernel made for its height; one of fewer columns
 * reads a zero-padded panel and masks its loads and stores of C.
 *
 * Every element of C is its own chain of fused multiply-adds in order of
 * k, so results do not depend on how callers split M or N between threads:
 * the same bits for any thread count.
 *
 * cpu_sgemm_packing runs the same loop with the caller's packer in place
 * of pack_b, for an op(b) that is never stored (a convolution's windows,
 * cpu_conv_same.c), and can add a bias per row of C instead of per column.
 */
#include "cpu_sgemm.h"

#include "cpu_simd.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TILE_ROWS 12
#define TILE_COLUMNS CPU_SGEMM_PANEL_COLUMNS
#define DEPTH_BLOCK CPU_SGEMM_BLOCK_DEPTH
#define ROW_BLOCK (TILE_ROWS * 12)
#define COLUMN_BLOCK CPU_SGEMM_BLOCK_COLUMNS
#define SMALL_PACK_FLOATS 4096 /* 16 KiB: 64 columns x 64 depths */

#if defined(__x86_64__) && defined(__GNUC__)

#include "cpu_avx512.h"

bool cpu_sgemm_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

/* What the kernel does with a finished tile: C = alpha * acc + beta * C
 * (C not read when beta is 0), plus bias[j] of its column or row_bias[i] of
 * its row when given (never both), and GELU(C) into gelu when given (the
 * last depth block); only the tile's first `width` columns are read or
 * written. */
typedef struct tile_merge {
    float alpha, beta;
    const float *bias;     /* at the tile's first column, or NULL */
    const float *row_bias; /* at the tile's first row, or NULL */
    float *gelu;       /* at the tile's first element (C's leading dimension), or NULL */
    __mmask16 low, high; /* the valid columns among 0-15 and 16-31 */
} tile_merge;

/* The tile of `height` rows (a compile-time constant once inlined, so the
 * sums stay in registers): c[height][columns of the masks] merged with the
 * product of op(a)'s rows (value (r, k) at a[r * a_row_step + k *
 * a_depth_step]) and a k-major column panel of TILE_COLUMNS. */
static inline __attribute__((always_inline)) AVX512 void tile_rows(int height, int64_t depth, const float *a,
                                                                   int64_t a_row_step, int64_t a_depth_step,
                                                                   const float *b_panel, float *c, int64_t ldc,
                                                                   const tile_merge *merge) {
    __m512 sum[TILE_ROWS][2];
#pragma GCC unroll 12
    for (int r = 0; r < height; r++) {
        sum[r][0] = sum[r][1] = _mm512_setzero_ps();
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0); /* the tile is merged into C at the end */
        _mm_prefetch((const char *)(c + r * ldc + 16), _MM_HINT_T0);
    }
    for (int64_t k = 0; k < depth; k++) {
        __m512 b0 = _mm512_load_ps(b_panel), b1 = _mm512_load_ps(b_panel + 16);
#pragma GCC unroll 12
        for (int r = 0; r < height; r++) {
            __m512 value = _mm512_set1_ps(a[r * a_row_step]);
            sum[r][0] = _mm512_fmadd_ps(value, b0, sum[r][0]);
            sum[r][1] = _mm512_fmadd_ps(value, b1, sum[r][1]);
        }
        a += a_depth_step;
        b_panel += TILE_COLUMNS;
    }
    __m512 alpha = _mm512_set1_ps(merge->alpha), beta = _mm512_set1_ps(merge->beta);
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (merge->bias) {
        bias0 = _mm512_maskz_loadu_ps(merge->low, merge->bias);
        bias1 = _mm512_maskz_loadu_ps(merge->high, merge->bias + 16);
    }
    bool read_c = merge->beta != 0.0f;
#pragma GCC unroll 12
    for (int r = 0; r < height; r++) {
        float *row = c + r * ldc;
        __m512 base0 = bias0, base1 = bias1;
        if (merge->row_bias) base0 = base1 = _mm512_set1_ps(merge->row_bias[r]);
        __m512 v0 = _mm512_fmadd_ps(alpha, sum[r][0], base0), v1 = _mm512_fmadd_ps(alpha, sum[r][1], base1);
        if (read_c) {
            v0 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(merge->low, row), v0);
            v1 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(merge->high, row + 16), v1);
        }
        _mm512_mask_storeu_ps(row, merge->low, v0);
        _mm512_mask_storeu_ps(row + 16, merge->high, v1);
        if (merge->gelu) {
            _mm512_mask_storeu_ps(merge->gelu + r * ldc, merge->low, (__m512)simd_gelu_tanh((simd_f32)v0));
            _mm512_mask_storeu_ps(merge->gelu + r * ldc + 16, merge->high, (__m512)simd_gelu_tanh((simd_f32)v1));
        }
    }
}

/* One tile of 1..TILE_ROWS rows, through the copy of tile_rows made for
 * that height. */
static AVX512 void tile_kernel(int height, int64_t depth, const float *a, int64_t a_row_step, int64_t a_depth_step,
                               const float *b_panel, float *c, int64_t ldc, const tile_merge *merge) {
#define TILE_CASE(h)                                                                                               \
    case h: tile_rows(h, depth, a, a_row_step, a_depth_step, b_panel, c, ldc, merge); break;
    switch (height) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
        TILE_CASE(7) TILE_CASE(8) TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12)
    default: break;
    }
#undef TILE_CASE
}

/* One column panel from a transposed b (op(b)[k][j] = b[j][k], each column
 * contiguous in k): 16 x 16 blocks transposed in registers, columns past
 * `width` and depths past `depth` as zeros. */
static AVX512 void pack_transposed_panel(const float *columns, int64_t ldb, int64_t width, int64_t depth,
                                         float *panel) {
    for (int64_t k = 0; k < depth; k += 16) {
        int64_t count = depth - k < 16 ? depth - k : 16;
        __mmask16 mask = (__mmask16)(count == 16 ? 0xffff : (1u << count) - 1);
        for (int half = 0; half < 2; half++) {
            __m512 in[16], out[16];
            for (int j = 0; j < 16; j++) {
                int64_t column = half * 16 + j;
                in[j] = column < width ? _mm512_maskz_loadu_ps(mask, columns + column * ldb + k) : _mm512_setzero_ps();
            }
            transpose_16x16(in, out);
            for (int64_t t = 0; t < count; t++) _mm512_store_ps(panel + (k + t) * TILE_COLUMNS + half * 16, out[t]);
        }
    }
}

/* Packs columns [column0, column0 + columns) of op(b) over depths [k0, k0 +
 * depth) into column panels of TILE_COLUMNS (k-major, columns past the end
 * as zeros). */
static AVX512 void pack_b(bool transpose, const float *b, int64_t ldb, int64_t column0, int64_t columns, int64_t k0,
                          int64_t depth, float *packed) {
    for (int64_t q = 0; q < columns; q += TILE_COLUMNS) {
        int64_t width = columns - q < TILE_COLUMNS ? columns - q : TILE_COLUMNS;
        float *panel = packed + q * depth;
        if (transpose) {
            pack_transposed_panel(b + (column0 + q) * ldb + k0, ldb, width, depth, panel);
        } else if (width == TILE_COLUMNS) { /* rows of b: two vectors per k */
            for (int64_t k = 0; k < depth; k++) {
                const float *source = b + (k0 + k) * ldb + column0 + q;
                _mm512_store_ps(panel + k * TILE_COLUMNS, _mm512_loadu_ps(source));
                _mm512_store_ps(panel + k * TILE_COLUMNS + 16, _mm512_loadu_ps(source + 16));
            }
        } else {
            __mmask16 low = (__mmask16)(width >= 16 ? 0xffff : (1u << width) - 1);
            __mmask16 high = (__mmask16)(width <= 16 ? 0 : (1u << (width - 16)) - 1);
            for (int64_t k = 0; k < depth; k++) {
                const float *source = b + (k0 + k) * ldb + column0 + q;
                _mm512_store_ps(panel + k * TILE_COLUMNS, _mm512_maskz_loadu_ps(low, source));
                _mm512_store_ps(panel + k * TILE_COLUMNS + 16, _mm512_maskz_loadu_ps(high, source + 16));
            }
        }
    }
}

/* C = beta * C (+ bias), for a product with nothing to sum (k == 0 or
 * alpha == 0), as BLAS does: C not read when beta is 0; then GELU(C) into
 * gelu when given (through a padded vector, the kernel's arithmetic). */
static void scale_only(int64_t m, int64_t n, float beta, const float *bias, float *c, int64_t ldc, float *gelu) {
    for (int64_t i = 0; i < m; i++) {
        float *row = c + i * ldc;
        for (int64_t j = 0; j < n; j++) {
            float base = bias ? bias[j] : 0.0f;
            row[j] = beta != 0.0f ? __builtin_fmaf(beta, row[j], base) : base;
        }
        for (int64_t j = 0; gelu && j < n; j += SIMD_LANES)
            SIMD_TAIL(row + j, gelu + i * ldc + j, n - j < SIMD_LANES ? n - j : SIMD_LANES, simd_gelu_tanh);
    }
}

static inline int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

/* Rows [0, m) of C, columns [0, columns) and depths [k0, k0 + depth) of
 * the product: op(a) read in place, op(b) from that block's packed panels
 * (column q at panels + q * depth). bias, c and gelu point at the block's
 * first column, row_bias at row 0; `first` and `last` say whether this
 * depth block is the first (beta and the biases apply) and the last (the
 * GELU is taken). */
static AVX512 void multiply_block(bool transpose_a, int64_t m, int64_t columns, int64_t k0, int64_t depth, bool first,
                                  bool last, float alpha, const float *a, int64_t lda, const float *panels, float beta,
                                  const float *bias, const float *row_bias, float *c, int64_t ldc, float *gelu) {
    /* op(a)[i][k] at a[i * row_step + k * depth_step] */
    int64_t row_step = transpose_a ? 1 : lda, depth_step = transpose_a ? lda : 1;
    for (int64_t i0 = 0; i0 < m; i0 += ROW_BLOCK) {
        int64_t rows = m - i0 < ROW_BLOCK ? m - i0 : ROW_BLOCK;
        for (int64_t q = 0; q < columns; q += TILE_COLUMNS) {
            int64_t width = columns - q < TILE_COLUMNS ? columns - q : TILE_COLUMNS;
            for (int64_t p = 0; p < rows; p += TILE_ROWS) {
                int64_t i = i0 + p, height = rows - p < TILE_ROWS ? rows - p : TILE_ROWS;
                tile_merge merge = {
                    .alpha = alpha, .beta = first ? beta : 1.0f, .bias = first && bias ? bias + q : NULL,
                    .row_bias = first && row_bias ? row_bias + i : NULL,
                    .gelu = last && gelu ? gelu + i * ldc + q : NULL,
                    .low = (__mmask16)(width >= 16 ? 0xffff : (1u << width) - 1),
                    .high = (__mmask16)(width <= 16 ? 0 : width >= 32 ? 0xffff : (1u << (width - 16)) - 1),
                };
                tile_kernel((int)height, depth, a + i * row_step + k0 * depth_step, row_step, depth_step,
                            panels + q * depth, c + i * ldc + q, ldc, &merge);
            }
        }
    }
}

int64_t cpu_sgemm_scratch_floats(int64_t n, int64_t k) {
    int64_t depth_max = k < DEPTH_BLOCK ? k : DEPTH_BLOCK;
    int64_t columns_max = round_up(n < COLUMN_BLOCK ? n : COLUMN_BLOCK, TILE_COLUMNS);
    return round_up(columns_max * (depth_max > 0 ? depth_max : 0), 16);
}

bool cpu_sgemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
               int64_t lda, const float *b, int64_t ldb, float beta, const float *bias, float *c, int64_t ldc,
               float *gelu, float *scratch) {
    if (m <= 0 || n <= 0) return true;
    if (k <= 0 || alpha == 0.0f) {
        scale_only(m, n, beta, bias, c, ldc, gelu);
        return true;
    }
    /* without scratch, small products (attention's per-head tiles) pack on
     * the stack: no allocator call for a product of a few microseconds */
    float small_panels[SMALL_PACK_FLOATS] __attribute__((aligned(64)));
    int64_t panel_floats = cpu_sgemm_scratch_floats(n, k);
    float *packed_b = scratch                              ? scratch
                      : panel_floats <= SMALL_PACK_FLOATS ? small_panels
                                                          : aligned_alloc(64, sizeof(float) * (size_t)panel_floats);
    if (!packed_b) return false;
    for (int64_t j0 = 0; j0 < n; j0 += COLUMN_BLOCK) {
        int64_t columns = n - j0 < COLUMN_BLOCK ? n - j0 : COLUMN_BLOCK;
        for (int64_t k0 = 0; k0 < k; k0 += DEPTH_BLOCK) {
            int64_t depth = k - k0 < DEPTH_BLOCK ? k - k0 : DEPTH_BLOCK;
            pack_b(transpose_b, b, ldb, j0, columns, k0, depth, packed_b);
            multiply_block(transpose_a, m, columns, k0, depth, k0 == 0, k0 + depth == k, alpha, a, lda, packed_b,
                           beta, bias ? bias + j0 : NULL, NULL, c + j0, ldc, gelu ? gelu + j0 : NULL);
        }
    }
    if (packed_b != small_panels && packed_b != scratch) free(packed_b);
    return true;
}

/* The whole of op(b) packed: depth block k0 (of `depth`) starts at k0 *
 * round_up(n, TILE_COLUMNS) floats, its column panel q at q * depth more. */
int64_t cpu_sgemm_packed_floats(int64_t n, int64_t k) { return round_up(n, TILE_COLUMNS) * (k > 0 ? k : 0); }

int64_t cpu_sgemm_panel_count(int64_t n, int64_t k) {
    return (k + DEPTH_BLOCK - 1) / DEPTH_BLOCK * ((n + TILE_COLUMNS - 1) / TILE_COLUMNS);
}

void cpu_sgemm_pack(bool transpose_b, int64_t n, int64_t k, const float *b, int64_t ldb, float *packed,
                    int64_t first_panel, int64_t end_panel) {
    int64_t panels_per_block = (n + TILE_COLUMNS - 1) / TILE_COLUMNS, width_all = round_up(n, TILE_COLUMNS);
    for (int64_t u = first_panel; u < end_panel; u++) {
        int64_t k0 = u / panels_per_block * DEPTH_BLOCK, q = u % panels_per_block * TILE_COLUMNS;
        int64_t depth = k - k0 < DEPTH_BLOCK ? k - k0 : DEPTH_BLOCK;
        int64_t columns = n - q < TILE_COLUMNS ? n - q : TILE_COLUMNS;
        pack_b(transpose_b, b, ldb, q, columns, k0, depth, packed + k0 * width_all + q * depth);
    }
}

void cpu_sgemm_packed(bool transpose_a, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                      const float *packed, float beta, const float *bias, float *c, int64_t ldc, float *gelu) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0.0f) {
        scale_only(m, n, beta, bias, c, ldc, gelu);
        return;
    }
    int64_t width_all = round_up(n, TILE_COLUMNS);
    for (int64_t k0 = 0; k0 < k; k0 += DEPTH_BLOCK) {
        int64_t depth = k - k0 < DEPTH_BLOCK ? k - k0 : DEPTH_BLOCK;
        multiply_block(transpose_a, m, n, k0, depth, k0 == 0, k0 + depth == k, alpha, a, lda, packed + k0 * width_all,
                       beta, bias, NULL, c, ldc, gelu);
    }
}

void cpu_sgemm_packing(bool transpose_a, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                       cpu_sgemm_packer *pack, const void *source, float beta, const float *row_bias, float *c,
                       int64_t ldc, float *scratch) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0.0f) {
        for (int64_t i = 0; i < m; i++) {
            float base = row_bias ? row_bias[i] : 0.0f, *row = c + i * ldc;
            for (int64_t j = 0; j < n; j++) row[j] = beta != 0.0f ? __builtin_fmaf(beta, row[j], base) : base;
        }
        return;
    }
    for (int64_t j0 = 0; j0 < n; j0 += COLUMN_BLOCK) {
        int64_t columns = n - j0 < COLUMN_BLOCK ? n - j0 : COLUMN_BLOCK;
        for (int64_t k0 = 0; k0 < k; k0 += DEPTH_BLOCK) {
            int64_t depth = k - k0 < DEPTH_BLOCK ? k - k0 : DEPTH_BLOCK;
            pack(source, j0, columns, k0, depth, scratch);
            multiply_block(transpose_a, m, columns, k0, depth, k0 == 0, k0 + depth == k, alpha, a, lda, scratch, beta,
                           NULL, row_bias, c + j0, ldc, NULL);
        }
    }
}

/* Lane l of the result is the sum of the 16 lanes of sums[l]: three rounds
 * of halving ((chunks 0+2) + (1+3) of 4 lanes, then of their halves, then
 * of single lanes), the same order for every l, so a row's sum does not
 * depend on which rows share its group. */
static AVX512 __m512 sum_lanes_16(const __m512 sums[16]) {
    __m512 halves[8], quarters[4];
    for (int p = 0; p < 8; p++) { /* rows 2p, 2p+1: 8 partial sums each */
        __m512 low = _mm512_shuffle_f32x4(sums[2 * p], sums[2 * p + 1], 0x44);
        __m512 high = _mm512_shuffle_f32x4(sums[2 * p], sums[2 * p + 1], 0xee);
        halves[p] = _mm512_add_ps(low, high);
    }
    for (int q = 0; q < 4; q++) { /* rows 4q .. 4q+3, one 128-bit lane each */
        __m512 even = _mm512_shuffle_f32x4(halves[2 * q], halves[2 * q + 1], 0x88);
        __m512 odd = _mm512_shuffle_f32x4(halves[2 * q], halves[2 * q + 1], 0xdd);
        quarters[q] = _mm512_add_ps(even, odd);
    }
    __m512 s01 = _mm512_add_ps(_mm512_unpacklo_ps(quarters[0], quarters[1]),
                               _mm512_unpackhi_ps(quarters[0], quarters[1]));
    __m512 s23 = _mm512_add_ps(_mm512_unpacklo_ps(quarters[2], quarters[3]),
                               _mm512_unpackhi_ps(quarters[2], quarters[3]));
    __m512 totals = _mm512_add_ps(
        _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(s01), _mm512_castps_pd(s23))),
        _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(s01), _mm512_castps_pd(s23))));
    /* lane 4l + j holds row 4j + l */
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    return _mm512_permutexvar_ps(order, totals);
}

/* y[i] = alpha dot(a[i, :], x) + beta y[i] for rows [0, m): sixteen rows at
 * a time, each dot in 16 lane sums (ragged end masked) added by
 * sum_lanes_16. */
static AVX512 void gemv_rows(int64_t m, int64_t n, float alpha, const float *a, int64_t lda, const float *x,
                             float beta, float *y) {
    for (int64_t i = 0; i < m; i += 16) {
        int64_t rows = m - i < 16 ? m - i : 16;
        const float *row[16];
        for (int r = 0; r < 16; r++) row[r] = a + (i + (r < rows ? r : 0)) * lda; /* missing rows reread row 0 */
        __m512 sums[16];
#pragma GCC unroll 16
        for (int r = 0; r < 16; r++) sums[r] = _mm512_setzero_ps();
        int64_t j = 0;
        for (; j + 16 <= n; j += 16) {
            __m512 xv = _mm512_loadu_ps(x + j);
#pragma GCC unroll 16
            for (int r = 0; r < 16; r++) sums[r] = _mm512_fmadd_ps(_mm512_loadu_ps(row[r] + j), xv, sums[r]);
        }
        if (j < n) {
            __mmask16 mask = first_lanes(n - j);
            __m512 xv = _mm512_maskz_loadu_ps(mask, x + j);
#pragma GCC unroll 16
            for (int r = 0; r < 16; r++)
                sums[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, row[r] + j), xv, sums[r]);
        }
        __mmask16 valid = first_lanes(rows);
        __m512 out = _mm512_mul_ps(_mm512_set1_ps(alpha), sum_lanes_16(sums));
        if (beta != 0.0f) out = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(valid, y + i), out);
        _mm512_mask_storeu_ps(y + i, valid, out);
    }
}

/* y[j] = alpha sum_i a[i, j] x[i] + beta y[j] for columns [0, n): 64
 * columns at a time, rows added in order. */
static AVX512 void gemv_columns(int64_t m, int64_t n, float alpha, const float *a, int64_t lda, const float *x,
                                float beta, float *y) {
    for (int64_t j = 0; j < n; j += 64) {
        __mmask16 mask[4];
        __m512 sum[4];
        for (int v = 0; v < 4; v++) {
            mask[v] = first_lanes(n - j - 16 * v);
            sum[v] = _mm512_setzero_ps();
        }
        for (int64_t i = 0; i < m; i++) {
            __m512 xi = _mm512_set1_ps(x[i]);
            const float *row = a + i * lda + j;
            for (int v = 0; v < 4; v++)
                sum[v] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask[v], row + 16 * v), xi, sum[v]);
        }
        for (int v = 0; v < 4; v++) {
            __m512 out = _mm512_mul_ps(_mm512_set1_ps(alpha), sum[v]);
            if (beta != 0.0f)
                out = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(mask[v], y + j + 16 * v), out);
            _mm512_mask_storeu_ps(y + j + 16 * v, mask[v], out);
        }
    }
}

void cpu_sgemv(bool transpose, int64_t m, int64_t n, float alpha, const float *a, int64_t lda, const float *x,
               float beta, float *y) {
    if (transpose)
        gemv_columns(m, n, alpha, a, lda, x, beta, y);
    else
        gemv_rows(m, n, alpha, a, lda, x, beta, y);
}

#else

bool cpu_sgemm_available(void) { return false; }

void cpu_sgemv(bool transpose, int64_t m, int64_t n, float alpha, const float *a, int64_t lda, const float *x,
               float beta, float *y) {
    (void)transpose, (void)m, (void)n, (void)alpha, (void)a, (void)lda, (void)x, (void)beta, (void)y;
}

int64_t cpu_sgemm_packed_floats(int64_t n, int64_t k) { return n * k; }

int64_t cpu_sgemm_panel_count(int64_t n, int64_t k) {
    (void)n, (void)k;
    return 0;
}

void cpu_sgemm_pack(bool transpose_b, int64_t n, int64_t k, const float *b, int64_t ldb, float *packed,
                    int64_t first_panel, int64_t end_panel) {
    (void)transpose_b, (void)n, (void)k, (void)b, (void)ldb, (void)packed, (void)first_panel, (void)end_panel;
}

void cpu_sgemm_packed(bool transpose_a, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                      const float *packed, float beta, const float *bias, float *c, int64_t ldc, float *gelu) {
    (void)transpose_a, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)packed, (void)beta;
    (void)bias, (void)c, (void)ldc, (void)gelu;
}

int64_t cpu_sgemm_scratch_floats(int64_t n, int64_t k) { return n * k; }

void cpu_sgemm_packing(bool transpose_a, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                       cpu_sgemm_packer *pack, const void *source, float beta, const float *row_bias, float *c,
                       int64_t ldc, float *scratch) {
    (void)transpose_a, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)pack, (void)source;
    (void)beta, (void)row_bias, (void)c, (void)ldc, (void)scratch;
}

bool cpu_sgemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
               int64_t lda, const float *b, int64_t ldb, float beta, const float *bias, float *c, int64_t ldc,
               float *gelu, float *scratch) {
    (void)transpose_a, (void)transpose_b, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)b;
    (void)ldb, (void)beta, (void)bias, (void)c, (void)ldc, (void)gelu, (void)scratch;
    return false;
}

#endif
