/*
 * cpu_fused.c: CPU kernels of the fused neural-network ops, each forward
 * beside its backward. Plain loops (and OpenBLAS for attention's matrix
 * products); reductions accumulate in double. Every kernel is written once
 * as a macro over the element type and instantiated for float and double.
 *
 * Contracts are in cpu_fused.h. The CUDA backend will get kernel slots with
 * the same contracts; these are the oracle those kernels are checked against.
 */
#include "cpu_fused.h"

#include "cpu_types.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Row-major GEMM with the BLAS argument order, one name per element type so
 * the macros below can paste it. Sizes were checked against INT_MAX. */
static void gemm_float(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, double alpha,
                       const float *a, int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, (float)alpha, a, (int)lda, b, (int)ldb, 0.0f, c, (int)ldc);
}

static void gemm_double(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, double alpha,
                        const double *a, int64_t lda, const double *b, int64_t ldb, double *c, int64_t ldc) {
    cblas_dgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, 0.0, c, (int)ldc);
}

static int64_t target_at(tc_dtype dtype, const void *targets, int64_t i) {
    return dtype == TC_INT32 ? (int64_t)((const int32_t *)targets)[i] : ((const int64_t *)targets)[i];
}

/* ---- layer norm and RMS norm ---- */

#define LAYER_NORM_FNS(E, T)                                                                                       \
    static void layer_norm_forward_##T(bool rms, const T *x, const T *w, const T *b, double eps, int64_t rows,     \
                                       int64_t cols, T *out, T *mean_out, T *rstd_out) {                           \
        for (int64_t r = 0; r < rows; r++) {                                                                       \
            const T *row = x + r * cols;                                                                           \
            T *y = out + r * cols;                                                                                 \
            double mean = 0;                                                                                       \
            if (!rms) {                                                                                            \
                for (int64_t c = 0; c < cols; c++) mean += (double)row[c];                                         \
                mean /= (double)cols;                                                                              \
            }                                                                                                      \
            double var = 0; /* the mean square about `mean` (0 for RMS norm) */                                   \
            for (int64_t c = 0; c < cols; c++) {                                                                   \
                double d = (double)row[c] - mean;                                                                  \
                var += d * d;                                                                                      \
            }                                                                                                      \
            double rstd = 1.0 / sqrt(var / (double)cols + eps);                                                    \
            for (int64_t c = 0; c < cols; c++) {                                                                   \
                double v = ((double)row[c] - mean) * rstd;                                                         \
                if (w) v *= (double)w[c];                                                                          \
                if (b) v += (double)b[c];                                                                          \
                y[c] = (T)v;                                                                                       \
            }                                                                                                      \
            mean_out[r] = (T)mean;                                                                                 \
            rstd_out[r] = (T)rstd;                                                                                 \
        }                                                                                                          \
    }                                                                                                              \
    /* With xhat = (x - mean) * rstd and g = dout * w:                                                             \
     * layer norm: dx = rstd * (g - mean(g) - xhat * mean(g * xhat));                                              \
     * RMS norm:   dx = rstd * (g - xhat * mean(g * xhat)). */                                                     \
    static void layer_norm_backward_##T(bool rms, const T *x, const T *w, const T *mean, const T *rstd,            \
                                        const T *dout, int64_t rows, int64_t cols, T *dx, T *dw, T *db,            \
                                        double *scratch) {                                                         \
        double *sum_w = scratch, *sum_b = scratch + cols;                                                          \
        memset(scratch, 0, sizeof(double) * 2 * (size_t)cols);                                                     \
        for (int64_t r = 0; r < rows; r++) {                                                                       \
            const T *row = x + r * cols, *g = dout + r * cols;                                                     \
            double mu = rms ? 0.0 : (double)mean[r], rs = (double)rstd[r];                                         \
            double sum_g = 0, sum_g_xhat = 0;                                                                      \
            for (int64_t c = 0; c < cols; c++) {                                                                   \
                double xhat = ((double)row[c] - mu) * rs;                                                          \
                double gc = (double)g[c] * (w ? (double)w[c] : 1.0);                                               \
                sum_g += gc;                                                                                       \
                sum_g_xhat += gc * xhat;                                                                           \
                sum_w[c] += (double)g[c] * xhat;                                                                   \
                sum_b[c] += (double)g[c];                                                                          \
            }                                                                                                      \
            if (!dx) continue;                                                                                     \
            double mean_g = rms ? 0.0 : sum_g / (double)cols, mean_g_xhat = sum_g_xhat / (double)cols;             \
            T *d = dx + r * cols;                                                                                  \
            for (int64_t c = 0; c < cols; c++) {                                                                   \
                double xhat = ((double)row[c] - mu) * rs;                                                          \
                double gc = (double)g[c] * (w ? (double)w[c] : 1.0);                                               \
                d[c] = (T)(rs * (gc - mean_g - xhat * mean_g_xhat));                                               \
            }                                                                                                      \
        }                                                                                                          \
        if (dw)                                                                                                    \
            for (int64_t c = 0; c < cols; c++) dw[c] = (T)sum_w[c];                                                \
        if (db)                                                                                                    \
            for (int64_t c = 0; c < cols; c++) db[c] = (T)sum_b[c];                                                \
    }
FLOAT_DTYPES(LAYER_NORM_FNS)

void cpu_layer_norm_forward(tc_dtype dtype, bool rms, const void *x, const void *weight, const void *bias,
                            double eps, int64_t rows, int64_t cols, void *out, void *mean, void *rstd) {
    if (dtype == TC_FLOAT32) layer_norm_forward_float(rms, x, weight, bias, eps, rows, cols, out, mean, rstd);
    else layer_norm_forward_double(rms, x, weight, bias, eps, rows, cols, out, mean, rstd);
}

void cpu_layer_norm_backward(tc_dtype dtype, bool rms, const void *x, const void *weight, const void *mean,
                             const void *rstd, const void *dout, int64_t rows, int64_t cols, void *dx, void *dweight,
                             void *dbias, double *column_scratch) {
    if (dtype == TC_FLOAT32)
        layer_norm_backward_float(rms, x, weight, mean, rstd, dout, rows, cols, dx, dweight, dbias, column_scratch);
    else
        layer_norm_backward_double(rms, x, weight, mean, rstd, dout, rows, cols, dx, dweight, dbias, column_scratch);
}

/* ---- attention ----
 * Per (batch, head): S = scale * Q K^T (one GEMM reading q and k in place
 * inside qkv, leading dimension 3C), row softmax with the causal mask
 * applied by never reading above the diagonal, O = P V (one GEMM writing the
 * head's columns of out, leading dimension C). Only the row log-sum-exp is
 * kept; backward recomputes P = exp(S - lse) exactly as forward made it. */

#define ATTENTION_FNS(E, T)                                                                                        \
    static void attention_forward_##T(const T *qkv, int64_t batch, int64_t time, int64_t channels, int64_t heads,  \
                                      bool causal, T *out, T *lse, T *s) {                                         \
        int64_t hd = channels / heads, ld = 3 * channels;                                                          \
        double scale = 1.0 / sqrt((double)hd);                                                                     \
        for (int64_t b = 0; b < batch; b++)                                                                        \
            for (int64_t h = 0; h < heads; h++) {                                                                  \
                const T *q = qkv + b * time * ld + h * hd, *k = q + channels, *v = q + 2 * channels;               \
                gemm_##T(false, true, time, time, hd, scale, q, ld, k, ld, s, time);                               \
                T *l = lse + (b * heads + h) * time;                                                               \
                for (int64_t i = 0; i < time; i++) {                                                               \
                    T *row = s + i * time;                                                                         \
                    int64_t n = causal ? i + 1 : time;                                                             \
                    T max = row[0];                                                                                \
                    for (int64_t j = 1; j < n; j++)                                                                \
                        if (row[j] > max) max = row[j];                                                            \
                    double sum = 0;                                                                                \
                    for (int64_t j = 0; j < n; j++) sum += exp((double)(row[j] - max));                            \
                    double inverse = 1.0 / sum;                                                                    \
                    for (int64_t j = 0; j < n; j++) row[j] = (T)(exp((double)(row[j] - max)) * inverse);           \
                    for (int64_t j = n; j < time; j++) row[j] = 0;                                                 \
                    l[i] = (T)((double)max + log(sum));                                                            \
                }                                                                                                  \
                gemm_##T(false, false, time, hd, time, 1.0, s, time, v, ld, out + b * time * channels + h * hd,    \
                         channels);                                                                                \
            }                                                                                                      \
    }                                                                                                              \
    /* dV = P^T dO; dP = dO V^T; dS = P * (dP - rowsum(P * dP));                                                   \
     * dQ = scale * dS K; dK = scale * dS^T Q. */                                                                  \
    static void attention_backward_##T(const T *qkv, const T *lse, const T *dout, int64_t batch, int64_t time,     \
                                       int64_t channels, int64_t heads, bool causal, T *dqkv, T *scratch) {        \
        int64_t hd = channels / heads, ld = 3 * channels;                                                          \
        double scale = 1.0 / sqrt((double)hd);                                                                     \
        T *p = scratch, *dp = scratch + time * time;                                                               \
        for (int64_t b = 0; b < batch; b++)                                                                        \
            for (int64_t h = 0; h < heads; h++) {                                                                  \
                const T *q = qkv + b * time * ld + h * hd, *k = q + channels, *v = q + 2 * channels;               \
                const T *g = dout + b * time * channels + h * hd;                                                  \
                T *dq = dqkv + b * time * ld + h * hd, *dk = dq + channels, *dv = dq + 2 * channels;               \
                const T *l = lse + (b * heads + h) * time;                                                         \
                gemm_##T(false, true, time, time, hd, scale, q, ld, k, ld, p, time);                               \
                for (int64_t i = 0; i < time; i++) {                                                               \
                    T *row = p + i * time;                                                                         \
                    int64_t n = causal ? i + 1 : time;                                                             \
                    for (int64_t j = 0; j < n; j++) row[j] = (T)exp((double)(row[j] - l[i]));                      \
                    for (int64_t j = n; j < time; j++) row[j] = 0;                                                 \
                }                                                                                                  \
                gemm_##T(true, false, time, hd, time, 1.0, p, time, g, channels, dv, ld);                          \
                gemm_##T(false, true, time, time, hd, 1.0, g, channels, v, ld, dp, time);                          \
                for (int64_t i = 0; i < time; i++) {                                                               \
                    T *pr = p + i * time, *dr = dp + i * time;                                                     \
                    int64_t n = causal ? i + 1 : time;                                                             \
                    double dot = 0;                                                                                \
                    for (int64_t j = 0; j < n; j++) dot += (double)pr[j] * (double)dr[j];                          \
                    for (int64_t j = 0; j < n; j++) dr[j] = (T)((double)pr[j] * ((double)dr[j] - dot));            \
                    for (int64_t j = n; j < time; j++) dr[j] = 0;                                                  \
                }                                                                                                  \
                gemm_##T(false, false, time, hd, time, scale, dp, time, k, ld, dq, ld);                            \
                gemm_##T(true, false, time, hd, time, scale, dp, time, q, ld, dk, ld);                             \
            }                                                                                                      \
    }
FLOAT_DTYPES(ATTENTION_FNS)

void cpu_attention_forward(tc_dtype dtype, const void *qkv, int64_t batch, int64_t time, int64_t channels,
                           int64_t n_head, bool causal, void *out, void *lse, void *scores) {
    if (dtype == TC_FLOAT32) attention_forward_float(qkv, batch, time, channels, n_head, causal, out, lse, scores);
    else attention_forward_double(qkv, batch, time, channels, n_head, causal, out, lse, scores);
}

void cpu_attention_backward(tc_dtype dtype, const void *qkv, const void *lse, const void *dout, int64_t batch,
                            int64_t time, int64_t channels, int64_t n_head, bool causal, void *dqkv, void *scratch) {
    if (dtype == TC_FLOAT32)
        attention_backward_float(qkv, lse, dout, batch, time, channels, n_head, causal, dqkv, scratch);
    else attention_backward_double(qkv, lse, dout, batch, time, channels, n_head, causal, dqkv, scratch);
}

/* ---- softmax cross-entropy ---- */

#define CROSS_ENTROPY_FNS(E, T)                                                                                    \
    static double cross_entropy_forward_##T(const T *logits, tc_dtype target_dtype, const void *targets,           \
                                            int64_t rows, int64_t classes, int64_t ignore_index, T *lse,           \
                                            int64_t *count) {                                                      \
        double total = 0;                                                                                          \
        int64_t kept = 0;                                                                                          \
        for (int64_t r = 0; r < rows; r++) {                                                                       \
            const T *row = logits + r * classes;                                                                   \
            T max = row[0];                                                                                        \
            for (int64_t c = 1; c < classes; c++)                                                                  \
                if (row[c] > max) max = row[c];                                                                    \
            double sum = 0;                                                                                        \
            for (int64_t c = 0; c < classes; c++) sum += exp((double)(row[c] - max));                              \
            double l = (double)max + log(sum);                                                                     \
            lse[r] = (T)l;                                                                                         \
            int64_t t = target_at(target_dtype, targets, r);                                                       \
            if (t == ignore_index) continue;                                                                       \
            total += l - (double)row[t];                                                                           \
            kept++;                                                                                                \
        }                                                                                                          \
        *count = kept;                                                                                             \
        return total;                                                                                              \
    }                                                                                                              \
    static void cross_entropy_backward_##T(const T *logits, tc_dtype target_dtype, const void *targets,           \
                                           const T *lse, int64_t rows, int64_t classes, int64_t ignore_index,      \
                                           double scale, T *dlogits) {                                             \
        for (int64_t r = 0; r < rows; r++) {                                                                       \
            const T *row = logits + r * classes;                                                                   \
            T *d = dlogits + r * classes;                                                                          \
            int64_t t = target_at(target_dtype, targets, r);                                                       \
            if (t == ignore_index) {                                                                               \
                memset(d, 0, sizeof(T) * (size_t)classes);                                                         \
                continue;                                                                                          \
            }                                                                                                      \
            double l = (double)lse[r];                                                                             \
            for (int64_t c = 0; c < classes; c++) d[c] = (T)(scale * exp((double)row[c] - l));                     \
            d[t] = (T)((double)d[t] - scale);                                                                      \
        }                                                                                                          \
    }
FLOAT_DTYPES(CROSS_ENTROPY_FNS)

double cpu_cross_entropy_forward(tc_dtype dtype, const void *logits, tc_dtype target_dtype, const void *targets,
                                 int64_t rows, int64_t classes, int64_t ignore_index, void *lse, int64_t *count) {
    if (dtype == TC_FLOAT32)
        return cross_entropy_forward_float(logits, target_dtype, targets, rows, classes, ignore_index, lse, count);
    return cross_entropy_forward_double(logits, target_dtype, targets, rows, classes, ignore_index, lse, count);
}

void cpu_cross_entropy_backward(tc_dtype dtype, const void *logits, tc_dtype target_dtype, const void *targets,
                                const void *lse, int64_t rows, int64_t classes, int64_t ignore_index, double scale,
                                void *dlogits) {
    if (dtype == TC_FLOAT32)
        cross_entropy_backward_float(logits, target_dtype, targets, lse, rows, classes, ignore_index, scale, dlogits);
    else
        cross_entropy_backward_double(logits, target_dtype, targets, lse, rows, classes, ignore_index, scale,
                                      dlogits);
}

/* ---- optimiser steps ----
 * Element arithmetic is in the parameter's dtype with coefficients prepared
 * in double. Weight decay is applied as p -= (lr * wd) * p rather than
 * p *= (1 - lr * wd): in float32 the factor 1 - lr*wd rounds to exactly 1
 * for small lr*wd, which would silently drop the decay. */

#define OPTIMIZER_FNS(E, T)                                                                                        \
    static void adamw_step_##T(T *param, const T *grad, T *m, T *v, int64_t n, double lr, double beta1,           \
                               double beta2, double eps, double weight_decay, double bias1, double bias2) {        \
        const T b1 = (T)beta1, one_minus_b1 = (T)(1.0 - beta1);                                                    \
        const T b2 = (T)beta2, one_minus_b2 = (T)(1.0 - beta2);                                                    \
        const T decay = (T)(lr * weight_decay), step_size = (T)(lr / bias1);                                       \
        const T inverse_sqrt_bias2 = (T)(1.0 / sqrt(bias2)), epsilon = (T)eps;                                     \
        for (int64_t i = 0; i < n; i++) {                                                                          \
            T g = grad[i];                                                                                         \
            T mi = b1 * m[i] + one_minus_b1 * g;                                                                   \
            T vi = b2 * v[i] + one_minus_b2 * g * g;                                                               \
            m[i] = mi;                                                                                             \
            v[i] = vi;                                                                                             \
            T p = param[i];                                                                                        \
            p -= decay * param[i];                                                                                 \
            p -= step_size * mi / ((T)sqrt(vi) * inverse_sqrt_bias2 + epsilon);                                    \
            param[i] = p;                                                                                          \
        }                                                                                                          \
    }                                                                                                              \
    static void sgd_step_##T(T *param, const T *grad, T *buffer, int64_t n, double lr, double momentum,           \
                             double dampening, bool nesterov, double weight_decay) {                               \
        const T mu = (T)momentum, keep = (T)(1.0 - dampening), wd = (T)weight_decay, rate = (T)lr;                 \
        for (int64_t i = 0; i < n; i++) {                                                                          \
            T g = grad[i] + wd * param[i];                                                                         \
            if (buffer) {                                                                                          \
                T b = mu * buffer[i] + keep * g;                                                                   \
                buffer[i] = b;                                                                                     \
                g = nesterov ? g + mu * b : b;                                                                     \
            }                                                                                                      \
            param[i] -= rate * g;                                                                                  \
        }                                                                                                          \
    }                                                                                                              \
    static double sum_squares_##T(const T *x, int64_t n) {                                                         \
        double total = 0;                                                                                          \
        for (int64_t i = 0; i < n; i++) total += (double)x[i] * (double)x[i];                                      \
        return total;                                                                                              \
    }                                                                                                              \
    static void scale_##T(T *x, int64_t n, double factor) {                                                        \
        const T f = (T)factor;                                                                                     \
        for (int64_t i = 0; i < n; i++) x[i] *= f;                                                                 \
    }
FLOAT_DTYPES(OPTIMIZER_FNS)

void cpu_adamw_step(tc_dtype dtype, void *param, const void *grad, void *m, void *v, int64_t n, double lr,
                    double beta1, double beta2, double eps, double weight_decay, double bias1, double bias2) {
    if (dtype == TC_FLOAT32) adamw_step_float(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, bias1, bias2);
    else adamw_step_double(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, bias1, bias2);
}

void cpu_sgd_step(tc_dtype dtype, void *param, const void *grad, void *buffer, int64_t n, double lr, double momentum,
                  double dampening, bool nesterov, double weight_decay) {
    if (dtype == TC_FLOAT32) sgd_step_float(param, grad, buffer, n, lr, momentum, dampening, nesterov, weight_decay);
    else sgd_step_double(param, grad, buffer, n, lr, momentum, dampening, nesterov, weight_decay);
}

double cpu_sum_squares(tc_dtype dtype, const void *x, int64_t n) {
    return dtype == TC_FLOAT32 ? sum_squares_float(x, n) : sum_squares_double(x, n);
}

void cpu_scale(tc_dtype dtype, void *x, int64_t n, double factor) {
    if (dtype == TC_FLOAT32) scale_float(x, n, factor);
    else scale_double(x, n, factor);
}
