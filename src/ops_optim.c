/*
 * ops_optim.c: the optimisers' fused steps, in place and never on the
 * tape: AdamW over many tensors at once, SGD, the global norm and in-place
 * scaling (the kernels: the adamw_step, sgd_step, sum_squares and scale
 * slots).
 */
#include "ops_fused.h"

#include <math.h>

/* A tensor updated in place by an optimiser: floating, CPU, contiguous, and
 * shaped like param. */
static tc_status check_state(const char *function, const char *argument, const tc_tensor *param,
                             const tc_tensor *t, bool written) {
    TC_TRY(tc_check_companion(function, argument, param, "param", t));
    if (!tc_same_shape(t, param))
        return tc_fail(param->ctx, TC_ERROR_SHAPE, "%s: %s of shape %s does not match param of shape %s", function,
                       argument, TC_SHAPE(t), TC_SHAPE(param));
    if (written && !tc_tensor_is_contiguous(t))
        return tc_fail(param->ctx, TC_ERROR_ARGUMENT,
                       "%s: %s (shape %s) must be contiguous, since it is updated in place", function, argument,
                       TC_SHAPE(t));
    return TC_OK;
}

/* t itself (retained) when contiguous, else a copy that is not on the tape. */
static tc_status contiguous_untracked(tc_tensor *t, tc_tensor **out) {
    if (tc_tensor_is_contiguous(t)) {
        tc_tensor_retain(t);
        *out = t;
        return TC_OK;
    }
    return tc_contiguous_copy(t, out);
}

/* The checks of one AdamW tensor; fills its kernel entry and gives its
 * backend. */
static tc_status prepare_adamw(tc_tensor *param, tc_tensor *grad, tc_tensor *m, tc_tensor *v, int64_t step,
                               tc_step_tensor *entry, const tc_backend **backend) {
    const char *function = "adamw_step";
    TC_TRY(tc_check_floating(function, "param", param));
    TC_TRY(tc_backend_kernels(param, function, TC_SLOT_BIT(adamw_step), backend));
    if (!tc_tensor_is_contiguous(param))
        return tc_fail(param->ctx, TC_ERROR_ARGUMENT, "%s: param (shape %s) must be contiguous", function,
                       TC_SHAPE(param));
    TC_TRY(check_state(function, "grad", param, grad, false));
    TC_TRY(check_state(function, "m", param, m, true));
    TC_TRY(check_state(function, "v", param, v, true));
    if (step < 1)
        return tc_fail(param->ctx, TC_ERROR_ARGUMENT, "%s: step counts from 1, got %lld", function, (long long)step);
    *entry = (tc_step_tensor){.param = tc_tensor_data_at_offset(param),
                              .grad = tc_tensor_data_at_offset(grad),
                              .state = {tc_tensor_data_at_offset(m), tc_tensor_data_at_offset(v)},
                              .numel = tc_tensor_numel(param)};
    return TC_OK;
}

static tc_status check_adamw_hyper(tc_context *ctx, double lr, double beta1, double beta2, double eps,
                                   double weight_decay) {
    if (!(lr >= 0) || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps >= 0) ||
        !(weight_decay >= 0))
        return tc_fail(ctx, TC_ERROR_ARGUMENT,
                       "adamw_step: expected lr >= 0, 0 <= beta1, beta2 < 1, eps >= 0, weight_decay >= 0; got lr "
                       "%g, beta1 %g, beta2 %g, eps %g, weight_decay %g",
                       lr, beta1, beta2, eps, weight_decay);
    return TC_OK;
}

tc_status tc_adamw_step_many(int count, tc_tensor **params, tc_tensor **grads, tc_tensor **m, tc_tensor **v,
                             const int64_t *steps, double lr, double beta1, double beta2, double eps,
                             double weight_decay) {
    if (count <= 0) return TC_OK;
    tc_context *ctx = params[0]->ctx;
    TC_TRY(check_adamw_hyper(ctx, lr, beta1, beta2, eps, weight_decay));
    tc_step_tensor *entries = tc_malloc(ctx, sizeof *entries * (size_t)count);
    tc_tensor **contiguous_grads = tc_calloc(ctx, (size_t)count, sizeof *contiguous_grads);
    if (!entries || !contiguous_grads) {
        tc_free(entries);
        tc_free(contiguous_grads);
        return tc_fail(ctx, TC_ERROR_MEMORY, "adamw_step: out of memory for %d tensors", count);
    }
    tc_status status = TC_OK;
    /* Runs of the same dtype and device go to their backend's kernel in one call. */
    int begin = 0;
    const tc_backend *backend = NULL, *run_backend = NULL;
    for (int i = 0; i < count && status == TC_OK; i++) {
        status = prepare_adamw(params[i], grads[i], m[i], v[i], steps[i], &entries[i], &backend);
        /* the update writes param and state in place: refused in grad mode, counted as writes */
        if (status == TC_OK) status = tc_inplace_begin(params[i], "adamw_step");
        if (status == TC_OK) status = tc_inplace_begin(m[i], "adamw_step");
        if (status == TC_OK) status = tc_inplace_begin(v[i], "adamw_step");
        if (status == TC_OK) status = contiguous_untracked(grads[i], &contiguous_grads[i]);
        if (status != TC_OK) break;
        entries[i].grad = tc_tensor_data_at_offset(contiguous_grads[i]);
        /* The bias corrections in double: in float32, 1 - beta2^step loses
         * most of its digits for beta2 near 1. */
        entries[i].bias1 = 1.0 - pow(beta1, (double)steps[i]);
        entries[i].bias2 = 1.0 - pow(beta2, (double)steps[i]);
        if (i > 0 && (params[i]->dtype != params[begin]->dtype ||
                      params[i]->storage->device != params[begin]->storage->device)) {
            status = run_backend->adamw_step(ctx, params[begin]->dtype, i - begin, entries + begin, lr, beta1,
                                             beta2, eps, weight_decay);
            begin = i;
        }
        if (i == begin) run_backend = backend;
    }
    if (status == TC_OK)
        status = run_backend->adamw_step(ctx, params[begin]->dtype, count - begin, entries + begin, lr, beta1, beta2,
                                         eps, weight_decay);
    tc_release_all(count, contiguous_grads);
    tc_free(contiguous_grads);
    tc_free(entries);
    return status;
}

tc_status tc_adamw_step(tc_tensor *param, tc_tensor *grad, tc_tensor *m, tc_tensor *v, int64_t step, double lr,
                        double beta1, double beta2, double eps, double weight_decay) {
    return tc_adamw_step_many(1, &param, &grad, &m, &v, &step, lr, beta1, beta2, eps, weight_decay);
}

tc_status tc_sgd_step(tc_tensor *param, tc_tensor *grad, tc_tensor *momentum_buffer, double lr, double momentum,
                      double dampening, bool nesterov, double weight_decay) {
    const char *function = "sgd_step";
    TC_TRY(tc_check_floating(function, "param", param));
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(param, function, TC_SLOT_BIT(sgd_step), &backend));
    if (!tc_tensor_is_contiguous(param))
        return tc_fail(param->ctx, TC_ERROR_ARGUMENT, "%s: param (shape %s) must be contiguous", function,
                       TC_SHAPE(param));
    TC_TRY(check_state(function, "grad", param, grad, false));
    if (!(lr >= 0) || !(momentum >= 0) || !(weight_decay >= 0) || !(dampening >= 0 && dampening <= 1))
        return tc_fail(param->ctx, TC_ERROR_ARGUMENT,
                       "%s: expected lr >= 0, momentum >= 0, 0 <= dampening <= 1, weight_decay >= 0; got lr %g, "
                       "momentum %g, dampening %g, weight_decay %g",
                       function, lr, momentum, dampening, weight_decay);
    if (nesterov && (momentum <= 0 || dampening != 0))
        return tc_fail(param->ctx, TC_ERROR_ARGUMENT,
                       "%s: nesterov needs momentum > 0 and dampening 0 (got momentum %g, dampening %g)", function,
                       momentum, dampening);
    if (momentum != 0) {
        if (!momentum_buffer)
            return tc_fail(param->ctx, TC_ERROR_ARGUMENT,
                           "%s: momentum %g needs a momentum buffer shaped like param %s", function, momentum,
                           TC_SHAPE(param));
        TC_TRY(check_state(function, "momentum_buffer", param, momentum_buffer, true));
    }
    TC_TRY(tc_inplace_begin(param, function));
    if (momentum != 0) TC_TRY(tc_inplace_begin(momentum_buffer, function));
    tc_tensor *g;
    TC_TRY(contiguous_untracked(grad, &g));
    tc_step_tensor entry = {.param = tc_tensor_data_at_offset(param),
                            .grad = tc_tensor_data_at_offset(g),
                            .state = {momentum != 0 ? tc_tensor_data_at_offset(momentum_buffer) : NULL, NULL},
                            .numel = tc_tensor_numel(param)};
    tc_status status =
        backend->sgd_step(param->ctx, param->dtype, 1, &entry, lr, momentum, dampening, nesterov, weight_decay);
    tc_tensor_release(g);
    return status;
}

/* Adds the sum of squares of tensors[begin .. end) (one dtype and device,
 * contiguous) to *total. */
static tc_status add_sum_squares(tc_tensor **tensors, int begin, int end, double *total) {
    tc_context *ctx = tensors[begin]->ctx;
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(tensors[begin], "global_norm", TC_SLOT_BIT(sum_squares), &backend));
    int n = end - begin;
    const void **data = tc_malloc(ctx, sizeof *data * (size_t)n);
    int64_t *sizes = tc_malloc(ctx, sizeof *sizes * (size_t)n);
    tc_status status = data && sizes ? TC_OK : tc_fail(ctx, TC_ERROR_MEMORY, "global_norm: out of memory");
    for (int i = 0; status == TC_OK && i < n; i++) {
        data[i] = tc_tensor_data_at_offset(tensors[begin + i]);
        sizes[i] = tc_tensor_numel(tensors[begin + i]);
    }
    double partial = 0;
    if (status == TC_OK)
        status = backend->sum_squares(ctx, tensors[begin]->dtype, n, data, sizes, &partial);
    *total += partial;
    tc_free(data);
    tc_free(sizes);
    return status;
}

tc_status tc_global_norm(int count, tc_tensor **tensors, double *out) {
    *out = 0;
    tc_tensor **held = NULL;
    int n = 0;
    tc_status status = TC_OK;
    for (int i = 0; i < count; i++) {
        tc_tensor *t = tensors[i];
        if (!t) continue;
        if (!held) {
            held = tc_calloc(t->ctx, (size_t)count, sizeof *held);
            if (!held) return tc_fail(t->ctx, TC_ERROR_MEMORY, "global_norm: out of memory for %d tensors", count);
        }
        if (!tc_dtype_is_floating(t->dtype)) {
            status = tc_fail(t->ctx, TC_ERROR_DTYPE, "global_norm: tensor %d must be float32 or float64, got %s %s",
                             i + 1, tc_dtype_name(t->dtype), TC_SHAPE(t));
            break;
        }
        const tc_backend *backend;
        status = tc_backend_kernels(t, "global_norm", TC_SLOT_BIT(sum_squares), &backend);
        if (status == TC_OK) status = contiguous_untracked(t, &held[n]);
        if (status != TC_OK) break;
        n++;
    }
    double total = 0;
    int begin = 0;
    for (int i = 1; status == TC_OK && i <= n; i++)
        if (i == n || held[i]->dtype != held[begin]->dtype ||
            held[i]->storage->device != held[begin]->storage->device) {
            status = add_sum_squares(held, begin, i, &total);
            begin = i;
        }
    if (held) tc_release_all(n, held);
    tc_free(held);
    if (status == TC_OK) *out = sqrt(total);
    return status;
}

tc_status tc_scale_(tc_tensor *t, double factor) {
    TC_TRY(tc_check_floating("scale_", "t", t));
    const tc_backend *backend;
    TC_TRY(tc_backend_kernels(t, "scale_", TC_SLOT_BIT(scale), &backend));
    TC_TRY(tc_inplace_begin(t, "scale_"));
    int64_t n = tc_tensor_numel(t);
    if (tc_tensor_is_contiguous(t)) {
        void *data = tc_tensor_data_at_offset(t);
        return backend->scale(t->ctx, t->dtype, 1, &data, &n, factor);
    }
    tc_tensor *c;
    TC_TRY(tc_contiguous_copy(t, &c));
    void *data = tc_tensor_data_at_offset(c);
    tc_status status = backend->scale(c->ctx, c->dtype, 1, &data, &n, factor);
    if (status == TC_OK) status = tc_copy_(t, c);
    tc_tensor_release(c);
    return status;
}
