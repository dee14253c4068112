/*
 * cpu_optim.c: the optimisers' multi-tensor kernels: AdamW and SGD steps,
 * the sum of squares (global norm) and in-place scaling. The float64
 * element arithmetic is plain loops; float32 runs the same operations lane
 * by lane (cpu_simd.h). Contracts are on the slots (backend_slots.h);
 * these are the oracle the CUDA kernels are checked against.
 */
#include "cpu_backend.h"
#include "cpu_simd.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#include <math.h>
#include <string.h>

/* The elements of all tensors are cut into fixed spans of STEP_SPAN
 * elements (a span never crosses tensors); spans run in parallel. The
 * element arithmetic is in the parameter's dtype with coefficients prepared
 * in double. Weight decay is applied as p -= (lr * wd) * p rather than
 * p *= (1 - lr * wd): in float32 the factor 1 - lr*wd rounds to exactly 1
 * for small lr*wd, which would silently drop the decay. */

#define STEP_SPAN 8192

typedef struct span_job {
    int count;
    const tc_step_tensor *tensors;
    void *const *buffers; /* sum_squares and scale: plain buffers with sizes */
    const int64_t *sizes;
    const int64_t *first_span; /* [count + 1]: the first span of each tensor */
    double lr, beta1, beta2, eps, weight_decay, momentum, dampening, factor;
    bool nesterov;
    double *span_sums;
} span_job;

/* The tensor holding `span` (first_span is increasing) and the span's
 * first element in it. */
static int span_tensor(const span_job *job, int64_t span, int64_t *first) {
    int lo = 0, hi = job->count - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (job->first_span[mid] <= span) lo = mid;
        else hi = mid - 1;
    }
    *first = (span - job->first_span[lo]) * STEP_SPAN;
    return lo;
}

static int64_t span_size(const span_job *job, int i) {
    return job->tensors ? job->tensors[i].numel : job->sizes[i];
}

/* Fills first_span and returns the number of spans. */
static int64_t plan_spans(span_job *job, int64_t *first_span) {
    int64_t spans = 0;
    for (int i = 0; i < job->count; i++) {
        first_span[i] = spans;
        spans += (span_size(job, i) + STEP_SPAN - 1) / STEP_SPAN;
    }
    first_span[job->count] = spans;
    job->first_span = first_span;
    return spans;
}

/* The coefficients of one update in the element type (prepared in double),
 * and the update of n consecutive elements: AdamW of param, m, v from grad;
 * SGD of param and the momentum buffer (NULL without momentum). */
#define STEP_COEFFICIENTS(E, T)                                                                                      \
    typedef struct adamw_coefficients_##T {                                                                          \
        T b1, one_minus_b1, b2, one_minus_b2, decay, epsilon, step_size, inverse_sqrt_bias2;                         \
    } adamw_coefficients_##T;                                                                                        \
    typedef struct sgd_coefficients_##T {                                                                            \
        T mu, keep, wd, rate;                                                                                        \
        bool nesterov;                                                                                               \
    } sgd_coefficients_##T;
FLOAT_DTYPES(STEP_COEFFICIENTS)

/* The element arithmetic, one element at a time; the float32 versions below
 * do exactly these operations lane by lane. sqrt of a double holding a
 * float, rounded to float, is the correctly rounded float square root. */
static void adamw_range_double(const adamw_coefficients_double *c, double *param, double *m, double *v,
                               const double *grad, int64_t n) {
    for (int64_t k = 0; k < n; k++) {
        double g = grad[k];
        double mi = c->b1 * m[k] + c->one_minus_b1 * g;
        double vi = c->b2 * v[k] + c->one_minus_b2 * g * g;
        m[k] = mi;
        v[k] = vi;
        double p = param[k];
        p -= c->decay * p;
        p -= c->step_size * mi / (sqrt(vi) * c->inverse_sqrt_bias2 + c->epsilon);
        param[k] = p;
    }
}

static void sgd_range_double(const sgd_coefficients_double *c, double *param, double *buffer, const double *grad,
                             int64_t n) {
    for (int64_t k = 0; k < n; k++) {
        double g = grad[k] + c->wd * param[k];
        if (buffer) {
            double b = c->mu * buffer[k] + c->keep * g;
            buffer[k] = b;
            g = c->nesterov ? g + c->mu * b : b;
        }
        param[k] -= c->rate * g;
    }
}

/* Float32 AdamW over n elements, n a multiple of SIMD_LANES. The square
 * root needs the hardware's vector instruction (the compiler keeps sqrtf
 * scalar for errno's sake), so there is one copy per instruction set with
 * its own lanes_sqrt, picked at run time; all give the same bits. */
#define ADAMW_FLOAT_LANES(name, target, lanes_sqrt)                                                                  \
    target static void name(const adamw_coefficients_float *c, float *param, float *m, float *v, const float *grad,  \
                            int64_t n) {                                                                             \
        for (int64_t k = 0; k < n; k += SIMD_LANES) {                                                                \
            simd_f32 g = simd_load(grad + k);                                                                        \
            simd_f32 mi = c->b1 * simd_load(m + k) + c->one_minus_b1 * g;                                            \
            simd_f32 vi = c->b2 * simd_load(v + k) + c->one_minus_b2 * g * g;                                        \
            simd_store(m + k, mi);                                                                                   \
            simd_store(v + k, vi);                                                                                   \
            simd_f32 p = simd_load(param + k);                                                                       \
            p -= c->decay * p;                                                                                       \
            p -= c->step_size * mi / (lanes_sqrt(vi) * c->inverse_sqrt_bias2 + c->epsilon);                          \
            simd_store(param + k, p);                                                                                \
        }                                                                                                            \
    }

#if defined(__x86_64__) && defined(__GNUC__)

#define TARGET_AVX512F __attribute__((target("avx512f")))
#define TARGET_AVX __attribute__((target("avx")))

TARGET_AVX512F SIMD_INLINE simd_f32 lanes_sqrt_avx512f(simd_f32 x) { return (simd_f32)_mm512_sqrt_ps((__m512)x); }

TARGET_AVX SIMD_INLINE simd_f32 lanes_sqrt_avx(simd_f32 x) {
    __m256 half[2];
    memcpy(half, &x, sizeof half);
    half[0] = _mm256_sqrt_ps(half[0]);
    half[1] = _mm256_sqrt_ps(half[1]);
    memcpy(&x, half, sizeof x);
    return x;
}

SIMD_INLINE simd_f32 lanes_sqrt_sse(simd_f32 x) {
    __m128 quarter[4];
    memcpy(quarter, &x, sizeof quarter);
    for (int k = 0; k < 4; k++) quarter[k] = _mm_sqrt_ps(quarter[k]);
    memcpy(&x, quarter, sizeof x);
    return x;
}

ADAMW_FLOAT_LANES(adamw_lanes_avx512f, TARGET_AVX512F, lanes_sqrt_avx512f)
ADAMW_FLOAT_LANES(adamw_lanes_avx, TARGET_AVX, lanes_sqrt_avx)
ADAMW_FLOAT_LANES(adamw_lanes_sse, , lanes_sqrt_sse)

static void adamw_lanes_float(const adamw_coefficients_float *c, float *param, float *m, float *v,
                              const float *grad, int64_t n) {
    if (__builtin_cpu_supports("avx512f")) adamw_lanes_avx512f(c, param, m, v, grad, n);
    else if (__builtin_cpu_supports("avx")) adamw_lanes_avx(c, param, m, v, grad, n);
    else adamw_lanes_sse(c, param, m, v, grad, n);
}

#else

SIMD_INLINE simd_f32 lanes_sqrt_scalar(simd_f32 x) {
    for (int k = 0; k < SIMD_LANES; k++) x[k] = sqrtf(x[k]);
    return x;
}

ADAMW_FLOAT_LANES(adamw_lanes_float, , lanes_sqrt_scalar)

#endif

/* The last n % SIMD_LANES elements go through one padded vector. */
static void adamw_range_float(const adamw_coefficients_float *c, float *param, float *m, float *v, const float *grad,
                              int64_t n) {
    int64_t full = n - n % SIMD_LANES;
    adamw_lanes_float(c, param, m, v, grad, full);
    if (full == n) return;
    float pad[4][SIMD_LANES] = {{0}};
    size_t bytes = sizeof(float) * (size_t)(n - full);
    memcpy(pad[0], param + full, bytes);
    memcpy(pad[1], m + full, bytes);
    memcpy(pad[2], v + full, bytes);
    memcpy(pad[3], grad + full, bytes);
    adamw_lanes_float(c, pad[0], pad[1], pad[2], pad[3], SIMD_LANES);
    memcpy(param + full, pad[0], bytes);
    memcpy(m + full, pad[1], bytes);
    memcpy(v + full, pad[2], bytes);
}

/* Float32 SGD over n elements, n a multiple of SIMD_LANES. */
static SIMD_CLONES void sgd_lanes_float(const sgd_coefficients_float *c, float *param, float *buffer,
                                        const float *grad, int64_t n) {
    for (int64_t k = 0; k < n; k += SIMD_LANES) {
        simd_f32 g = simd_load(grad + k) + c->wd * simd_load(param + k);
        if (buffer) {
            simd_f32 b = c->mu * simd_load(buffer + k) + c->keep * g;
            simd_store(buffer + k, b);
            g = c->nesterov ? g + c->mu * b : b;
        }
        simd_store(param + k, simd_load(param + k) - c->rate * g);
    }
}

static void sgd_range_float(const sgd_coefficients_float *c, float *param, float *buffer, const float *grad,
                            int64_t n) {
    int64_t full = n - n % SIMD_LANES;
    sgd_lanes_float(c, param, buffer, grad, full);
    if (full == n) return;
    float pad[3][SIMD_LANES] = {{0}};
    size_t bytes = sizeof(float) * (size_t)(n - full);
    memcpy(pad[0], param + full, bytes);
    if (buffer) memcpy(pad[1], buffer + full, bytes);
    memcpy(pad[2], grad + full, bytes);
    sgd_lanes_float(c, pad[0], buffer ? pad[1] : NULL, pad[2], SIMD_LANES);
    memcpy(param + full, pad[0], bytes);
    if (buffer) memcpy(buffer + full, pad[1], bytes);
}

#define STEP_FNS(E, T)                                                                                               \
    static void adamw_spans_##T(int64_t begin, int64_t end, void *argument) {                                        \
        const span_job *job = argument;                                                                              \
        adamw_coefficients_##T c = {.b1 = (T)job->beta1, .one_minus_b1 = (T)(1.0 - job->beta1),                      \
                                    .b2 = (T)job->beta2, .one_minus_b2 = (T)(1.0 - job->beta2),                      \
                                    .decay = (T)(job->lr * job->weight_decay), .epsilon = (T)job->eps};              \
        for (int64_t span = begin; span < end; span++) {                                                             \
            int64_t first, last;                                                                                     \
            int i = span_tensor(job, span, &first);                                                                  \
            const tc_step_tensor *t = &job->tensors[i];                                                              \
            last = first + STEP_SPAN < t->numel ? first + STEP_SPAN : t->numel;                                      \
            c.step_size = (T)(job->lr / t->bias1);                                                                   \
            c.inverse_sqrt_bias2 = (T)(1.0 / sqrt(t->bias2));                                                        \
            adamw_range_##T(&c, (T *)t->param + first, (T *)t->state[0] + first, (T *)t->state[1] + first,           \
                            (const T *)t->grad + first, last - first);                                               \
        }                                                                                                            \
    }                                                                                                                \
    static void sgd_spans_##T(int64_t begin, int64_t end, void *argument) {                                          \
        const span_job *job = argument;                                                                              \
        sgd_coefficients_##T c = {.mu = (T)job->momentum, .keep = (T)(1.0 - job->dampening),                         \
                                  .wd = (T)job->weight_decay, .rate = (T)job->lr, .nesterov = job->nesterov};        \
        for (int64_t span = begin; span < end; span++) {                                                             \
            int64_t first, last;                                                                                     \
            int i = span_tensor(job, span, &first);                                                                  \
            const tc_step_tensor *t = &job->tensors[i];                                                              \
            last = first + STEP_SPAN < t->numel ? first + STEP_SPAN : t->numel;                                      \
            T *buffer = t->state[0] ? (T *)t->state[0] + first : NULL;                                               \
            sgd_range_##T(&c, (T *)t->param + first, buffer, (const T *)t->grad + first, last - first);              \
        }                                                                                                            \
    }                                                                                                                \
    static void sum_squares_spans_##T(int64_t begin, int64_t end, void *argument) {                                  \
        const span_job *job = argument;                                                                              \
        for (int64_t span = begin; span < end; span++) {                                                             \
            int64_t first, last;                                                                                     \
            int i = span_tensor(job, span, &first);                                                                  \
            last = first + STEP_SPAN < job->sizes[i] ? first + STEP_SPAN : job->sizes[i];                            \
            const T *x = job->buffers[i];                                                                            \
            double total = 0;                                                                                        \
            for (int64_t k = first; k < last; k++) total += (double)x[k] * (double)x[k];                             \
            job->span_sums[span] = total;                                                                            \
        }                                                                                                            \
    }                                                                                                                \
    static void scale_spans_##T(int64_t begin, int64_t end, void *argument) {                                        \
        const span_job *job = argument;                                                                              \
        const T f = (T)job->factor;                                                                                  \
        for (int64_t span = begin; span < end; span++) {                                                             \
            int64_t first, last;                                                                                     \
            int i = span_tensor(job, span, &first);                                                                  \
            last = first + STEP_SPAN < job->sizes[i] ? first + STEP_SPAN : job->sizes[i];                            \
            T *x = job->buffers[i];                                                                                  \
            for (int64_t k = first; k < last; k++) x[k] *= f;                                                        \
        }                                                                                                            \
    }
FLOAT_DTYPES(STEP_FNS)

/* Plans the spans of job and runs body over them in parallel; with
 * want_sums, job->span_sums gets one slot per span (the caller frees it). */
static tc_status run_spans(tc_context *ctx, span_job *job, void (*body)(int64_t, int64_t, void *), bool want_sums,
                           int64_t *span_count) {
    *span_count = 0;
    if (job->count <= 0) return TC_OK;
    int64_t *first_span = tc_malloc(ctx, sizeof(int64_t) * (size_t)(job->count + 1));
    if (!first_span) return TC_ERROR_MEMORY;
    int64_t spans = plan_spans(job, first_span);
    tc_status status = TC_OK;
    if (want_sums) {
        job->span_sums = tc_calloc(ctx, (size_t)(spans ? spans : 1), sizeof(double));
        if (!job->span_sums) status = TC_ERROR_MEMORY;
    }
    if (status == TC_OK) cpu_parallel_for(ctx, spans, 1, body, job);
    tc_free(first_span);
    *span_count = spans;
    return status;
}

tc_status cpu_adamw_step(tc_context *ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors, double lr,
                         double beta1, double beta2, double eps, double weight_decay) {
    span_job job = {.count = count, .tensors = tensors, .lr = lr, .beta1 = beta1, .beta2 = beta2, .eps = eps,
                    .weight_decay = weight_decay};
    int64_t spans;
    return run_spans(ctx, &job, dtype == TC_FLOAT32 ? adamw_spans_float : adamw_spans_double, false, &spans);
}

tc_status cpu_sgd_step(tc_context *ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors, double lr,
                       double momentum, double dampening, bool nesterov, double weight_decay) {
    span_job job = {.count = count, .tensors = tensors, .lr = lr, .momentum = momentum, .dampening = dampening,
                    .nesterov = nesterov, .weight_decay = weight_decay};
    int64_t spans;
    return run_spans(ctx, &job, dtype == TC_FLOAT32 ? sgd_spans_float : sgd_spans_double, false, &spans);
}

tc_status cpu_sum_squares(tc_context *ctx, tc_dtype dtype, int count, const void *const *x, const int64_t *sizes,
                          double *out) {
    span_job job = {.count = count, .buffers = (void *const *)x, .sizes = sizes};
    int64_t spans;
    *out = 0;
    if (count <= 0) return TC_OK;
    tc_status status =
        run_spans(ctx, &job, dtype == TC_FLOAT32 ? sum_squares_spans_float : sum_squares_spans_double, true, &spans);
    if (status != TC_OK) {
        tc_free(job.span_sums);
        return status;
    }
    double total = 0;
    for (int64_t s = 0; s < spans; s++) total += job.span_sums[s];
    tc_free(job.span_sums);
    *out = total;
    return TC_OK;
}

tc_status cpu_scale(tc_context *ctx, tc_dtype dtype, int count, void *const *x, const int64_t *sizes, double factor) {
    span_job job = {.count = count, .buffers = x, .sizes = sizes, .factor = factor};
    int64_t spans;
    return run_spans(ctx, &job, dtype == TC_FLOAT32 ? scale_spans_float : scale_spans_double, false, &spans);
}
