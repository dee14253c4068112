/*
 * cpu_bgemm.c: a bfloat16 GEMM with float32 accumulation and output, on
 * the fastest of three paths the CPU has (cpu_bgemm_best_path):
 *  - AMX (AMX_BF16, Linux's permission for tile data): TDPBF16PS on tiles,
 *    a 32 x 32 block of C in four 16 x 16 float32 tiles;
 *  - AVX512_BF16: VDPBF16PS, a two-term bf16 dot product added to each of
 *    16 float32 lanes, a 12 x 32 block of C in 24 registers;
 *  - the fallback: op(a) and op(b) widened to float32 and the BLAS's sgemm.
 * Why AMX: on the Xeon this was written on (AVX512_BF16 and AMX), VDPBF16PS
 * retires about a quarter as many instructions per second as a 512-bit FMA
 * (1.9 against 7.5 G/s, 24 independent chains), so its GEMM reaches only
 * about half of cpu_sgemm's rate (bench/results/bgemm.md) despite doing
 * twice the multiply-adds per instruction; the tiles run 3-4x cpu_sgemm.
 *
 * The blocked scheme of cpu_sgemm.c (GotoBLAS): for each block of
 * COLUMN_BLOCK columns and DEPTH_BLOCK depths, op(b) is packed into column
 * panels of TILE_COLUMNS, each depth pair (k, k+1) of a column one 32-bit
 * bf16 pair: the layout both VDPBF16PS and an AMX b tile want (an odd depth
 * padded with a zero; on the AMX path the pairs padded to 16, a tile row).
 * Unlike cpu_sgemm, op(a) is packed too, a row block at a time (as pairs
 * across 12 rows for VDPBF16PS, which broadcasts one pair of a row; as
 * 16-row tiles of 16 pairs for AMX), because op(a) as stored has neither
 * layout unless untransposed bf16; the packing is also where float32 input
 * is rounded to bf16 (VCVTNE2PS2BF16), so autocast needs no separate pass.
 *
 * Every element of C is one chain of sums in order of k on a given path,
 * so results do not depend on how callers split M or N between threads.
 */
#include "cpu_bgemm.h"

#include "cpu_elementwise_f32.h"
#include "cpu_simd.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#define TILE_ROWS 12
#define TILE_COLUMNS 32
#define DEPTH_BLOCK 512 /* even: a depth block never splits a pair */
#define ROW_BLOCK (TILE_ROWS * 12)
#define COLUMN_BLOCK (TILE_COLUMNS * 32)

static inline int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }
static inline int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }

uint16_t cpu_bf16_from_float(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u); /* quiet NaN */
    if ((bits & 0x7f800000u) == 0) return (uint16_t)((bits >> 16) & 0x8000u);       /* subnormal: signed zero */
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

float cpu_float_from_bf16(uint16_t bits) {
    uint32_t wide = (uint32_t)bits << 16;
    float x;
    memcpy(&x, &wide, sizeof x);
    return x;
}

cpu_bgemm_path cpu_bgemm_choose_path(void) {
    cpu_bgemm_path best = cpu_bgemm_best_path();
    const char *choice = getenv("TRICYCLE_BGEMM");
    if (choice && strcmp(choice, "fallback") == 0) return CPU_BGEMM_FALLBACK;
    if (choice && strcmp(choice, "avx512") == 0 && best > CPU_BGEMM_AVX512) return CPU_BGEMM_AVX512;
    return best;
}

/* ---- the fallback: float32 through the BLAS ---- */

/* op(x)[r][col] of an operand as float32 (bf16-rounded when float32). */
static float operand_value(cpu_bgemm_type type, const void *x, int64_t ld, bool transpose, int64_t r, int64_t col) {
    int64_t at = transpose ? col * ld + r : r * ld + col;
    if (type == CPU_BGEMM_BF16) return cpu_float_from_bf16(((const uint16_t *)x)[at]);
    return cpu_float_from_bf16(cpu_bf16_from_float(((const float *)x)[at]));
}

/* op(x) [rows, columns] widened into a fresh row-major float32 buffer, or
 * NULL when out of memory (or its size overflows). */
static float *widen(cpu_bgemm_type type, const void *x, int64_t ld, bool transpose, int64_t rows, int64_t columns) {
    size_t count;
    if (__builtin_mul_overflow((size_t)rows, (size_t)columns, &count) ||
        __builtin_mul_overflow(count, sizeof(float), &count))
        return NULL;
    float *wide = malloc(count ? count : 1);
    if (!wide) return NULL;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t col = 0; col < columns; col++)
            wide[r * columns + col] = operand_value(type, x, ld, transpose, r, col);
    return wide;
}

static bool fallback(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
                     cpu_bgemm_type a_type, const void *a, int64_t lda, cpu_bgemm_type b_type, const void *b,
                     int64_t ldb, float beta, const float *bias, float *c, int64_t ldc, float *gelu) {
    bool product = k > 0 && alpha != 0.0f;
    float *wide_a = product ? widen(a_type, a, lda, transpose_a, m, k) : NULL;
    float *wide_b = product ? widen(b_type, b, ldb, transpose_b, k, n) : NULL;
    if (product && (!wide_a || !wide_b)) {
        free(wide_a);
        free(wide_b);
        return false;
    }
    /* beta C + bias first (C not read when beta is 0), then the product is added to it */
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            float base = bias ? bias[j] : 0.0f;
            c[i * ldc + j] = beta != 0.0f ? __builtin_fmaf(beta, c[i * ldc + j], base) : base;
        }
    if (product)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, alpha, wide_a, (int)k, wide_b,
                    (int)n, 1.0f, c, (int)ldc);
    for (int64_t i = 0; gelu && i < m; i++) f32_unary(TC_GELU_TANH, c + i * ldc, gelu + i * ldc, n);
    free(wide_a);
    free(wide_b);
    return true;
}

/* Depth pairs per AMX tile row (64 bytes); an AMX panel's pairs are padded
 * with zeros to a multiple. */
#define AMX_PAIRS 16

/* The pairs a packed panel of `depth` depths holds on a path. */
static int64_t panel_pairs(cpu_bgemm_path path, int64_t depth) {
    return path == CPU_BGEMM_AMX ? round_up((depth + 1) / 2, AMX_PAIRS) : (depth + 1) / 2;
}

/* The packed op(b) of a whole product: depth block k0 starts at k0 / 2 *
 * round_up(n, TILE_COLUMNS) pairs (every earlier block is full and a
 * multiple of AMX_PAIRS pairs), its column panel q at q * panel_pairs
 * more. */
int64_t cpu_bgemm_packed_bytes(int64_t n, int64_t k) {
    int64_t bytes;
    if (n < 0 || k < 0 || n > INT64_MAX / 2 || k > INT64_MAX / 2 ||
        __builtin_mul_overflow(4 * round_up(n, TILE_COLUMNS), round_up((k + 1) / 2, AMX_PAIRS), &bytes))
        return -1;
    return bytes;
}

int64_t cpu_bgemm_panel_count(int64_t n, int64_t k) {
    return (k + DEPTH_BLOCK - 1) / DEPTH_BLOCK * ((n + TILE_COLUMNS - 1) / TILE_COLUMNS);
}

/* Rows of op(a) per packed block on the AMX path: 4 tiles of 16 rows. */
#define AMX_ROW_BLOCK 128
/* The larger of the two paths' op(a) blocks (ROW_BLOCK or AMX_ROW_BLOCK x
 * DEPTH_BLOCK), in pairs of bf16. */
#define A_BLOCK_PAIRS ((int64_t)(ROW_BLOCK > AMX_ROW_BLOCK ? ROW_BLOCK : AMX_ROW_BLOCK) * DEPTH_BLOCK / 2)

int64_t cpu_bgemm_scratch_bytes(int64_t n, int64_t k) {
    int64_t pairs = round_up((min64(k > 0 ? k : 0, DEPTH_BLOCK) + 1) / 2, AMX_PAIRS);
    return 4 * (round_up(min64(n > 0 ? n : 0, COLUMN_BLOCK), TILE_COLUMNS) * pairs + A_BLOCK_PAIRS);
}

#if defined(__x86_64__) && defined(__GNUC__)

#include "cpu_avx512.h"

#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BF16 __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl,avx512dq,fma")))

static bool avx512_bf16_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
}

/* Mask of the first `count` lanes (any count; clamped to 0..32). */
static inline __mmask32 lanes32(int64_t count) {
    return (__mmask32)(count >= 32 ? 0xffffffffu : count <= 0 ? 0 : (1u << count) - 1);
}

/* The `count` (<= 32) consecutive elements at x[0..] as 32 bf16, zeros past
 * count. */
static inline __attribute__((always_inline)) BF16 __m512i load_bf16_32(cpu_bgemm_type type, const void *x,
                                                                          int64_t count) {
    if (type == CPU_BGEMM_BF16) return _mm512_maskz_loadu_epi16(lanes32(count), x);
    const float *f = x;
    __m512 low = _mm512_maskz_loadu_ps(first_lanes(count), f);
    __m512 high = _mm512_maskz_loadu_ps(first_lanes(count - 16), f + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(high, low);
}

/* The bf16 pairs (even[j], odd[j]) for j 0-15 (*low) and 16-31 (*high). */
static inline __attribute__((always_inline)) BF16 void interleave(__m512i even, __m512i odd, __m512i *low,
                                                                   __m512i *high) {
    const __m512i low_order = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38,
                                               6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    const __m512i high_order = _mm512_add_epi16(low_order, _mm512_set1_epi16(16));
    *low = _mm512_permutex2var_epi16(even, low_order, odd);
    *high = _mm512_permutex2var_epi16(even, high_order, odd);
}

/* cpu_avx512.h's 16 x 16 transpose on 32-bit lanes (pairs of bf16). */
static BF16 void transpose_lanes(const __m512i in[16], __m512i out[16]) {
    __m512 rows[16], columns[16];
    for (int i = 0; i < 16; i++) rows[i] = _mm512_castsi512_ps(in[i]);
    transpose_16x16(rows, columns);
    for (int i = 0; i < 16; i++) out[i] = _mm512_castps_si512(columns[i]);
}

/* Element size of an operand type, in bytes. */
static inline size_t type_size(cpu_bgemm_type type) { return type == CPU_BGEMM_BF16 ? 2 : 4; }

/* A pointer `elements` elements past x. */
static inline const void *advance(cpu_bgemm_type type, const void *x, int64_t elements) {
    return (const char *)x + (size_t)elements * type_size(type);
}

/*
 * Packing. A "pair panel" of width W holds, for each depth pair p, W 32-bit
 * lanes (lane w: the pair of line w at depths 2p, 2p+1), lanes past the
 * operand's lines and the odd depth past the end as zeros. Two layouts of
 * the source:
 *  - lines across (op(b) untransposed, op(a) transposed): depth d is the
 *    contiguous row x[d * ld ..], line w at offset w; pairs come from
 *    interleaving rows 2p and 2p + 1;
 *  - lines down (op(b) transposed, op(a) untransposed): line w is the
 *    contiguous row x[w * ld ..] over depth; 32 depths of 16 lines are
 *    16 x 16 pairs, transposed in registers.
 */

/* Lines across: `lines` (<= 32) lines from x (at the block's first depth)
 * over `depth` depths into a panel of `width` (12 or 32) lanes. */
static BF16 void pack_across(cpu_bgemm_type type, const void *x, int64_t ld, int64_t lines, int64_t depth,
                             int width, uint32_t *panel) {
    __mmask16 store_low = first_lanes(width), store_high = first_lanes(width - 16);
    for (int64_t d = 0; d < depth; d += 2) {
        __m512i even = load_bf16_32(type, advance(type, x, d * ld), lines);
        __m512i odd = d + 1 < depth ? load_bf16_32(type, advance(type, x, (d + 1) * ld), lines)
                                    : _mm512_setzero_si512();
        __m512i low, high;
        interleave(even, odd, &low, &high);
        uint32_t *out = panel + d / 2 * width;
        _mm512_mask_storeu_epi32(out, store_low, low);
        if (width > 16) _mm512_mask_storeu_epi32(out + 16, store_high, high);
    }
}

/* Lines down: `lines` (<= 32) lines from x (at the block's first depth)
 * over `depth` depths into a panel of `width` (12 or 32) lanes. */
static BF16 void pack_down(cpu_bgemm_type type, const void *x, int64_t ld, int64_t lines, int64_t depth, int width,
                           uint32_t *panel) {
    int64_t pairs = (depth + 1) / 2;
    for (int64_t d = 0; d < depth; d += 32) {
        int64_t count = min64(depth - d, 32), pair0 = d / 2, pair_count = min64(pairs - pair0, 16);
        for (int half = 0; half * 16 < width; half++) {
            __m512i in[16], out[16];
            for (int w = 0; w < 16; w++) {
                int64_t line = half * 16 + w;
                in[w] = line < lines ? load_bf16_32(type, advance(type, x, line * ld + d), count)
                                     : _mm512_setzero_si512();
            }
            transpose_lanes(in, out);
            __mmask16 store = first_lanes(width - half * 16);
            for (int64_t t = 0; t < pair_count; t++)
                _mm512_mask_storeu_epi32(panel + (pair0 + t) * width + half * 16, store, out[t]);
        }
    }
}

/* Columns [column0, column0 + columns) of op(b) over depths [k0, k0 +
 * depth) into column panels of TILE_COLUMNS (panel q at packed + q *
 * padded_pairs; the pairs past the depth's as zeros). */
static BF16 void pack_b(cpu_bgemm_type type, bool transpose, const void *b, int64_t ldb, int64_t column0,
                        int64_t columns, int64_t k0, int64_t depth, int64_t padded_pairs, uint32_t *packed) {
    int64_t pairs = (depth + 1) / 2;
    for (int64_t q = 0; q < columns; q += TILE_COLUMNS) {
        int64_t lines = min64(columns - q, TILE_COLUMNS);
        uint32_t *panel = packed + q * padded_pairs;
        if (transpose)
            pack_down(type, advance(type, b, (column0 + q) * ldb + k0), ldb, lines, depth, TILE_COLUMNS, panel);
        else
            pack_across(type, advance(type, b, k0 * ldb + column0 + q), ldb, lines, depth, TILE_COLUMNS, panel);
        memset(panel + pairs * TILE_COLUMNS, 0, sizeof(uint32_t) * (size_t)((padded_pairs - pairs) * TILE_COLUMNS));
    }
}

/* Rows [row0, row0 + rows) of op(a) over depths [k0, k0 + depth) into row
 * tiles of TILE_ROWS (tile t at packed + t * pairs * TILE_ROWS). */
static BF16 void pack_a(cpu_bgemm_type type, bool transpose, const void *a, int64_t lda, int64_t row0, int64_t rows,
                        int64_t k0, int64_t depth, uint32_t *packed) {
    int64_t pairs = (depth + 1) / 2;
    for (int64_t p = 0; p < rows; p += TILE_ROWS) {
        int64_t lines = min64(rows - p, TILE_ROWS);
        uint32_t *tile = packed + p / TILE_ROWS * pairs * TILE_ROWS;
        if (transpose)
            pack_across(type, advance(type, a, k0 * lda + row0 + p), lda, lines, depth, TILE_ROWS, tile);
        else
            pack_down(type, advance(type, a, (row0 + p) * lda + k0), lda, lines, depth, TILE_ROWS, tile);
    }
}

/* What the kernel does with a finished tile: C = alpha * acc + beta * C
 * (C not read when beta is 0), plus bias[j] of its column when bias is
 * given, and GELU(C) into gelu when given (the last depth block); only the
 * tile's first `width` columns are read or written. */
typedef struct tile_merge {
    float alpha, beta;
    const float *bias; /* at the tile's first column, or NULL */
    float *gelu;       /* at the tile's first element (C's leading dimension), or NULL */
    __mmask16 low, high; /* the valid columns among 0-15 and 16-31 */
} tile_merge;

/* The tile's bias vectors (zeros without a bias). */
static inline __attribute__((always_inline)) BF16 void merge_bias(const tile_merge *merge, __m512 *bias0,
                                                                  __m512 *bias1) {
    *bias0 = merge->bias ? _mm512_maskz_loadu_ps(merge->low, merge->bias) : _mm512_setzero_ps();
    *bias1 = merge->bias ? _mm512_maskz_loadu_ps(merge->high, merge->bias + 16) : _mm512_setzero_ps();
}

/* Row r of a tile (sums of columns 0-15 and 16-31) merged into C. */
static inline __attribute__((always_inline)) BF16 void merge_row(const tile_merge *merge, __m512 alpha, __m512 beta,
                                                                 __m512 bias0, __m512 bias1, __m512 sum0,
                                                                 __m512 sum1, float *c, int64_t ldc, int r) {
    float *row = c + r * ldc;
    __m512 v0 = _mm512_fmadd_ps(alpha, sum0, bias0), v1 = _mm512_fmadd_ps(alpha, sum1, bias1);
    if (merge->beta != 0.0f) {
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

/* The tile of `height` rows (a compile-time constant once inlined, so the
 * sums stay in registers): c[height][columns of the masks] merged with the
 * product of a packed a tile and a b panel over `pairs` depth pairs. */
static inline __attribute__((always_inline)) BF16 void tile_rows(int height, int64_t pairs, const uint32_t *a_tile,
                                                                 const uint32_t *b_panel, float *c, int64_t ldc,
                                                                 const tile_merge *merge) {
    __m512 sum[TILE_ROWS][2];
#pragma GCC unroll 12
    for (int r = 0; r < height; r++) {
        sum[r][0] = sum[r][1] = _mm512_setzero_ps();
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0); /* the tile is merged into C at the end */
        _mm_prefetch((const char *)(c + r * ldc + 16), _MM_HINT_T0);
    }
    for (int64_t p = 0; p < pairs; p++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(b_panel), b1 = (__m512bh)_mm512_load_si512(b_panel + 16);
#pragma GCC unroll 12
        for (int r = 0; r < height; r++) {
            __m512bh value = (__m512bh)_mm512_set1_epi32((int)a_tile[r]);
            sum[r][0] = _mm512_dpbf16_ps(sum[r][0], value, b0);
            sum[r][1] = _mm512_dpbf16_ps(sum[r][1], value, b1);
        }
        a_tile += TILE_ROWS;
        b_panel += TILE_COLUMNS;
    }
    __m512 alpha = _mm512_set1_ps(merge->alpha), beta = _mm512_set1_ps(merge->beta), bias0, bias1;
    merge_bias(merge, &bias0, &bias1);
#pragma GCC unroll 12
    for (int r = 0; r < height; r++) merge_row(merge, alpha, beta, bias0, bias1, sum[r][0], sum[r][1], c, ldc, r);
}

/* One tile of 1..TILE_ROWS rows, through the copy of tile_rows made for
 * that height. */
static BF16 void tile_kernel(int height, int64_t pairs, const uint32_t *a_tile, const uint32_t *b_panel, float *c,
                             int64_t ldc, const tile_merge *merge) {
#define TILE_CASE(h)                                                                                               \
    case h: tile_rows(h, pairs, a_tile, b_panel, c, ldc, merge); break;
    switch (height) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
        TILE_CASE(7) TILE_CASE(8) TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12)
    default: break;
    }
#undef TILE_CASE
}

/* C = beta * C (+ bias), for a product with nothing to sum (k == 0 or
 * alpha == 0): C not read when beta is 0; then GELU(C) into gelu. */
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

/* Rows [0, m) of C, columns [0, columns) and depths [k0, k0 + depth) of
 * the product, op(b) from that block's packed panels (column q at panels +
 * q * pairs), op(a) packed here ROW_BLOCK rows at a time into a_block.
 * bias, c and gelu point at the block's first column; `first` and `last`
 * say whether this depth block is the first (beta and bias apply) and the
 * last (the GELU is taken). */
static BF16 void multiply_block(cpu_bgemm_type a_type, bool transpose_a, int64_t m, int64_t columns, int64_t k0,
                                int64_t depth, bool first, bool last, float alpha, const void *a, int64_t lda,
                                const uint32_t *panels, uint32_t *a_block, float beta, const float *bias, float *c,
                                int64_t ldc, float *gelu) {
    int64_t pairs = (depth + 1) / 2;
    for (int64_t i0 = 0; i0 < m; i0 += ROW_BLOCK) {
        int64_t rows = min64(m - i0, ROW_BLOCK);
        pack_a(a_type, transpose_a, a, lda, i0, rows, k0, depth, a_block);
        for (int64_t q = 0; q < columns; q += TILE_COLUMNS) {
            int64_t width = min64(columns - q, TILE_COLUMNS);
            for (int64_t p = 0; p < rows; p += TILE_ROWS) {
                int64_t i = i0 + p, height = min64(rows - p, TILE_ROWS);
                tile_merge merge = {
                    .alpha = alpha, .beta = first ? beta : 1.0f, .bias = first && bias ? bias + q : NULL,
                    .gelu = last && gelu ? gelu + i * ldc + q : NULL,
                    .low = first_lanes(width), .high = first_lanes(width - 16),
                };
                tile_kernel((int)height, pairs, a_block + p / TILE_ROWS * pairs * TILE_ROWS, panels + q * pairs,
                            c + i * ldc + q, ldc, &merge);
            }
        }
    }
}

/* ---- the AMX path: TDPBF16PS on tiles ---- */

#define AMX __attribute__((target("amx-tile,amx-bf16,avx512bf16,avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

/* CPUID leaf 7 EDX: AMX-BF16 (bit 22) and AMX-TILE (bit 24); XCR0 bits 17
 * and 18: the OS saves tile state; then Linux's permission to use it. */
static bool amx_available(void) {
    unsigned eax, ebx, ecx, edx, xcr0_low, xcr0_high;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || !(edx & (1u << 22)) || !(edx & (1u << 24))) return false;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 27))) return false; /* OSXSAVE */
    __asm__("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
    if ((xcr0_low & (3u << 17)) != (3u << 17)) return false;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

cpu_bgemm_path cpu_bgemm_best_path(void) {
    if (!avx512_bf16_available()) return CPU_BGEMM_FALLBACK;
    return amx_available() ? CPU_BGEMM_AMX : CPU_BGEMM_AVX512;
}

/* The one tile layout of this file: tiles 0-3 the 32 x 32 float32 sums
 * (16 x 16 each), 4-5 two 16-row tiles of op(a) (16 pairs a row), 6-7 two
 * 16-column tiles of a b panel (16 pair rows): every tile 16 rows of 64
 * bytes. The 64-byte configuration: palette at byte 0, bytes per row of
 * tile t at 16 + 2t, its rows at 48 + t. LDTILECFG is written out here
 * because GCC 12's _tile_loadconfig tells the compiler it reads only 8 bytes
 * (so the stores of the rest were dropped). */
static AMX void amx_configure(void) {
    uint8_t config[64] __attribute__((aligned(64))) = {1};
    for (int t = 0; t < 8; t++) {
        config[16 + 2 * t] = 64;
        config[48 + t] = 16;
    }
    __asm__ volatile("ldtilecfg %0" : : "m"(*(const uint8_t(*)[64])config));
}

/* Rows [row0, row0 + rows) of op(a) over depths [k0, k0 + depth) into AMX
 * tiles: 16-row tile t, chunk c of AMX_PAIRS pairs at packed + (t * chunks
 * + c) * 256, row r's 16 pairs contiguous; rows up to a multiple of 32 and
 * pairs past the depth as zeros. */
static AMX void pack_a_amx(cpu_bgemm_type type, bool transpose, const void *a, int64_t lda, int64_t row0,
                           int64_t rows, int64_t k0, int64_t depth, uint32_t *packed) {
    int64_t chunks = panel_pairs(CPU_BGEMM_AMX, depth) / AMX_PAIRS, tiles = round_up(rows, 32) / 16;
    for (int64_t t = 0; t < tiles; t++) {
        int64_t lines = min64(rows - t * 16, 16); /* may be <= 0: a tile of zeros */
        for (int64_t chunk = 0; chunk < chunks; chunk++) {
            int64_t d = chunk * 2 * AMX_PAIRS, count = min64(depth - d, 2 * AMX_PAIRS);
            __m512i row_pairs[16];
            if (!transpose) { /* each row contiguous in depth: its 16 pairs are 32 consecutive values */
                for (int r = 0; r < 16; r++)
                    row_pairs[r] = r < lines ? load_bf16_32(type, advance(type, a, (row0 + t * 16 + r) * lda + k0 + d),
                                                            count)
                                             : _mm512_setzero_si512();
            } else { /* each depth a contiguous row across op(a)'s rows: pairs by interleaving, then transpose */
                __m512i pair_rows[16], unused;
                for (int p = 0; p < 16; p++) {
                    int64_t even_depth = d + 2 * p;
                    __m512i even = lines > 0 && even_depth < depth
                                       ? load_bf16_32(type, advance(type, a, (k0 + even_depth) * lda + row0 + t * 16),
                                                      lines)
                                       : _mm512_setzero_si512();
                    __m512i odd = lines > 0 && even_depth + 1 < depth
                                      ? load_bf16_32(type,
                                                     advance(type, a, (k0 + even_depth + 1) * lda + row0 + t * 16),
                                                     lines)
                                      : _mm512_setzero_si512();
                    interleave(even, odd, &pair_rows[p], &unused);
                }
                transpose_lanes(pair_rows, row_pairs);
            }
            uint32_t *out = packed + (t * chunks + chunk) * 256;
            for (int r = 0; r < 16; r++) _mm512_store_si512(out + r * 16, row_pairs[r]);
        }
    }
}

/* A 32 x 32 tile of sums over `chunks` chunks: op(a)'s tiles at a0 and a1
 * (rows 0-15, 16-31), a b panel; into sums (row-major, 32 floats a row). */
static AMX void amx_tile(int64_t chunks, const uint32_t *a0, const uint32_t *a1, const uint32_t *b_panel,
                         float *sums) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t chunk = 0; chunk < chunks; chunk++) {
        const uint32_t *b = b_panel + chunk * AMX_PAIRS * TILE_COLUMNS;
        _tile_loadd(4, a0 + chunk * 256, 64);
        _tile_loadd(5, a1 + chunk * 256, 64);
        _tile_loadd(6, b, TILE_COLUMNS * 4);
        _tile_loadd(7, b + 16, TILE_COLUMNS * 4);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, sums, 128);
    _tile_stored(1, sums + 16, 128);
    _tile_stored(2, sums + 16 * 32, 128);
    _tile_stored(3, sums + 16 * 32 + 16, 128);
}

/* multiply_block on the AMX path (tiles configured): op(a) packed
 * AMX_ROW_BLOCK rows at a time, 32 x 32 tiles of C. */
static AMX void multiply_block_amx(cpu_bgemm_type a_type, bool transpose_a, int64_t m, int64_t columns, int64_t k0,
                                   int64_t depth, bool first, bool last, float alpha, const void *a, int64_t lda,
                                   const uint32_t *panels, uint32_t *a_block, float beta, const float *bias,
                                   float *c, int64_t ldc, float *gelu) {
    int64_t pairs = panel_pairs(CPU_BGEMM_AMX, depth), chunks = pairs / AMX_PAIRS;
    float sums[32 * 32] __attribute__((aligned(64)));
    __m512 alpha_v = _mm512_set1_ps(alpha);
    for (int64_t i0 = 0; i0 < m; i0 += AMX_ROW_BLOCK) {
        int64_t rows = min64(m - i0, AMX_ROW_BLOCK);
        pack_a_amx(a_type, transpose_a, a, lda, i0, rows, k0, depth, a_block);
        for (int64_t q = 0; q < columns; q += TILE_COLUMNS) {
            int64_t width = min64(columns - q, TILE_COLUMNS);
            for (int64_t p = 0; p < rows; p += 32) {
                int64_t i = i0 + p, height = min64(rows - p, 32);
                const uint32_t *a0 = a_block + p / 16 * chunks * 256;
                amx_tile(chunks, a0, a0 + chunks * 256, panels + q * pairs, sums);
                tile_merge merge = {
                    .alpha = alpha, .beta = first ? beta : 1.0f, .bias = first && bias ? bias + q : NULL,
                    .gelu = last && gelu ? gelu + i * ldc + q : NULL,
                    .low = first_lanes(width), .high = first_lanes(width - 16),
                };
                __m512 beta_v = _mm512_set1_ps(merge.beta), bias0, bias1;
                merge_bias(&merge, &bias0, &bias1);
                for (int r = 0; r < height; r++)
                    merge_row(&merge, alpha_v, beta_v, bias0, bias1, _mm512_load_ps(sums + r * 32),
                              _mm512_load_ps(sums + r * 32 + 16), c + i * ldc + q, ldc, r);
            }
        }
    }
}

/* One depth block of either path. */
static BF16 void multiply_block_on(cpu_bgemm_path path, cpu_bgemm_type a_type, bool transpose_a, int64_t m,
                                   int64_t columns, int64_t k0, int64_t depth, bool first, bool last, float alpha,
                                   const void *a, int64_t lda, const uint32_t *panels, uint32_t *a_block, float beta,
                                   const float *bias, float *c, int64_t ldc, float *gelu) {
    if (path == CPU_BGEMM_AMX)
        multiply_block_amx(a_type, transpose_a, m, columns, k0, depth, first, last, alpha, a, lda, panels, a_block,
                           beta, bias, c, ldc, gelu);
    else
        multiply_block(a_type, transpose_a, m, columns, k0, depth, first, last, alpha, a, lda, panels, a_block, beta,
                       bias, c, ldc, gelu);
}

/* Tile registers hold state of this thread: configured on entry, released
 * on exit, so nothing leaks to the caller. */
static AMX void amx_begin(cpu_bgemm_path path) {
    if (path == CPU_BGEMM_AMX) amx_configure();
}
static AMX void amx_end(cpu_bgemm_path path) {
    if (path == CPU_BGEMM_AMX) _tile_release();
}

/* The whole product on the AMX or the VDPBF16PS path, blocks of op(a) and
 * op(b) packed into scratch (cpu_bgemm_scratch_bytes). */
static BF16 void native(cpu_bgemm_path path, bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k,
                        float alpha, cpu_bgemm_type a_type, const void *a, int64_t lda, cpu_bgemm_type b_type,
                        const void *b, int64_t ldb, float beta, const float *bias, float *c, int64_t ldc, float *gelu,
                        uint32_t *scratch) {
    uint32_t *a_block = scratch, *packed_b = scratch + A_BLOCK_PAIRS;
    amx_begin(path);
    for (int64_t j0 = 0; j0 < n; j0 += COLUMN_BLOCK) {
        int64_t columns = min64(n - j0, COLUMN_BLOCK);
        for (int64_t k0 = 0; k0 < k; k0 += DEPTH_BLOCK) {
            int64_t depth = min64(k - k0, DEPTH_BLOCK);
            pack_b(b_type, transpose_b, b, ldb, j0, columns, k0, depth, panel_pairs(path, depth), packed_b);
            multiply_block_on(path, a_type, transpose_a, m, columns, k0, depth, k0 == 0, k0 + depth == k, alpha, a,
                              lda, packed_b, a_block, beta, bias ? bias + j0 : NULL, c + j0, ldc,
                              gelu ? gelu + j0 : NULL);
        }
    }
    amx_end(path);
}

/* The caller's path, one this CPU has (cpu_bgemm.h): asking the CPU again
 * for every product (CPUID, XGETBV and a system call) cost about 35 us a
 * call on this project's machine, more than a 128 x 64 x 128 product. */
static cpu_bgemm_path usable_path(cpu_bgemm_path asked) { return asked; }

void cpu_bgemm_pack(cpu_bgemm_path path, cpu_bgemm_type b_type, bool transpose_b, int64_t n, int64_t k, const void *b,
                    int64_t ldb, void *packed, int64_t first_panel, int64_t end_panel) {
    int64_t panels_per_block = (n + TILE_COLUMNS - 1) / TILE_COLUMNS, width_all = round_up(n, TILE_COLUMNS);
    for (int64_t u = first_panel; u < end_panel; u++) {
        int64_t k0 = u / panels_per_block * DEPTH_BLOCK, q = u % panels_per_block * TILE_COLUMNS;
        int64_t depth = min64(k - k0, DEPTH_BLOCK), columns = min64(n - q, TILE_COLUMNS);
        int64_t pairs = panel_pairs(path, depth);
        pack_b(b_type, transpose_b, b, ldb, q, columns, k0, depth, pairs,
               (uint32_t *)packed + k0 / 2 * width_all + q * pairs);
    }
}

bool cpu_bgemm_packed(cpu_bgemm_path path, cpu_bgemm_type a_type, bool transpose_a, int64_t m, int64_t n, int64_t k,
                      float alpha, const void *a, int64_t lda, const void *packed, float beta, const float *bias,
                      float *c, int64_t ldc, float *gelu) {
    if (m <= 0 || n <= 0) return true;
    if (k <= 0 || alpha == 0.0f) {
        scale_only(m, n, beta, bias, c, ldc, gelu);
        return true;
    }
    uint32_t *a_block = aligned_alloc(64, sizeof(uint32_t) * (size_t)A_BLOCK_PAIRS);
    if (!a_block) return false;
    int64_t width_all = round_up(n, TILE_COLUMNS);
    amx_begin(path);
    for (int64_t k0 = 0; k0 < k; k0 += DEPTH_BLOCK) {
        int64_t depth = min64(k - k0, DEPTH_BLOCK);
        multiply_block_on(path, a_type, transpose_a, m, n, k0, depth, k0 == 0, k0 + depth == k, alpha, a, lda,
                          (const uint32_t *)packed + k0 / 2 * width_all, a_block, beta, bias, c, ldc, gelu);
    }
    amx_end(path);
    free(a_block);
    return true;
}

/* y[j] += bf16(x) . w[j] for GEMV_ROWS rows of w at a time: each
 * 32-element chunk of x is rounded once and meets every row, so the pass is
 * bound by reading w, half the bytes of a float32 weight. The next rows are
 * prefetched line by line as these are read: rows of a few KiB are too short
 * for the hardware's stream detection (the vocabulary head, 50257 rows of
 * 768, took 9.8 ms without, 6.6 ms with, at 1 thread). */
#define GEMV_ROWS 4
static BF16 void gemv_native(int64_t n, int64_t k, const float *x, const uint16_t *w, int64_t ldw, float *y) {
    int64_t j = 0;
    for (; j + GEMV_ROWS <= n; j += GEMV_ROWS) {
        __m512 sums[GEMV_ROWS];
        for (int r = 0; r < GEMV_ROWS; r++) sums[r] = _mm512_setzero_ps();
        const uint16_t *next = j + 2 * GEMV_ROWS <= n ? w + (j + GEMV_ROWS) * ldw : NULL;
        for (int64_t i = 0; i < k; i += 32) {
            __m512bh xs = (__m512bh)load_bf16_32(CPU_BGEMM_F32, x + i, k - i);
            for (int r = 0; r < GEMV_ROWS; r++) {
                if (next) _mm_prefetch((const char *)(next + r * ldw + i), _MM_HINT_T0);
                sums[r] = _mm512_dpbf16_ps(sums[r], xs,
                                           (__m512bh)load_bf16_32(CPU_BGEMM_BF16, w + (j + r) * ldw + i, k - i));
            }
        }
        for (int r = 0; r < GEMV_ROWS; r++) y[j + r] += _mm512_reduce_add_ps(sums[r]);
    }
    for (; j < n; j++) {
        __m512 sum = _mm512_setzero_ps();
        for (int64_t i = 0; i < k; i += 32)
            sum = _mm512_dpbf16_ps(sum, (__m512bh)load_bf16_32(CPU_BGEMM_F32, x + i, k - i),
                                   (__m512bh)load_bf16_32(CPU_BGEMM_BF16, w + j * ldw + i, k - i));
        y[j] += _mm512_reduce_add_ps(sum);
    }
}

#else

cpu_bgemm_path cpu_bgemm_best_path(void) { return CPU_BGEMM_FALLBACK; }

static cpu_bgemm_path usable_path(cpu_bgemm_path asked) {
    (void)asked;
    return CPU_BGEMM_FALLBACK;
}

static void native(cpu_bgemm_path path, bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k,
                   float alpha, cpu_bgemm_type a_type, const void *a, int64_t lda, cpu_bgemm_type b_type,
                   const void *b, int64_t ldb, float beta, const float *bias, float *c, int64_t ldc, float *gelu,
                   uint32_t *scratch) {
    (void)path, (void)transpose_a, (void)transpose_b, (void)m, (void)n, (void)k, (void)alpha, (void)a_type, (void)a;
    (void)lda, (void)b_type, (void)b, (void)ldb, (void)beta, (void)bias, (void)c, (void)ldc, (void)gelu;
    (void)scratch;
}

static void scale_only(int64_t m, int64_t n, float beta, const float *bias, float *c, int64_t ldc, float *gelu) {
    (void)m, (void)n, (void)beta, (void)bias, (void)c, (void)ldc, (void)gelu;
}

void cpu_bgemm_pack(cpu_bgemm_path path, cpu_bgemm_type b_type, bool transpose_b, int64_t n, int64_t k, const void *b,
                    int64_t ldb, void *packed, int64_t first_panel, int64_t end_panel) {
    (void)path, (void)b_type, (void)transpose_b, (void)n, (void)k, (void)b, (void)ldb, (void)packed;
    (void)first_panel, (void)end_panel;
}

bool cpu_bgemm_packed(cpu_bgemm_path path, cpu_bgemm_type a_type, bool transpose_a, int64_t m, int64_t n, int64_t k,
                      float alpha, const void *a, int64_t lda, const void *packed, float beta, const float *bias,
                      float *c, int64_t ldc, float *gelu) {
    (void)path, (void)a_type, (void)transpose_a, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda;
    (void)packed, (void)beta, (void)bias, (void)c, (void)ldc, (void)gelu;
    return false;
}

static void gemv_native(int64_t n, int64_t k, const float *x, const uint16_t *w, int64_t ldw, float *y) {
    (void)n, (void)k, (void)x, (void)w, (void)ldw, (void)y;
}

#endif

bool cpu_bgemm(cpu_bgemm_path path, bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
               cpu_bgemm_type a_type, const void *a, int64_t lda, cpu_bgemm_type b_type, const void *b, int64_t ldb,
               float beta, const float *bias, float *c, int64_t ldc, float *gelu, void *scratch) {
    if (m <= 0 || n <= 0) return true;
    path = usable_path(path);
    if (path == CPU_BGEMM_FALLBACK)
        return fallback(transpose_a, transpose_b, m, n, k, alpha, a_type, a, lda, b_type, b, ldb, beta, bias, c, ldc,
                        gelu);
    if (k <= 0 || alpha == 0.0f) {
        scale_only(m, n, beta, bias, c, ldc, gelu);
        return true;
    }
    uint32_t *blocks = scratch ? scratch : aligned_alloc(64, (size_t)cpu_bgemm_scratch_bytes(n, k));
    if (!blocks) return false;
    native(path, transpose_a, transpose_b, m, n, k, alpha, a_type, a, lda, b_type, b, ldb, beta, bias, c, ldc, gelu,
           blocks);
    if (blocks != scratch) free(blocks);
    return true;
}

void cpu_bgemv_bf16_weight(cpu_bgemm_path path, int64_t n, int64_t k, const float *x, const uint16_t *w, int64_t ldw,
                           float *y) {
    if (n <= 0 || k <= 0) return;
    if (usable_path(path) != CPU_BGEMM_FALLBACK) {
        gemv_native(n, k, x, w, ldw, y);
        return;
    }
    for (int64_t j = 0; j < n; j++) {
        float sum = 0.0f;
        for (int64_t i = 0; i < k; i++)
            sum += cpu_float_from_bf16(cpu_bf16_from_float(x[i])) * cpu_float_from_bf16(w[j * ldw + i]);
        y[j] += sum;
    }
}
