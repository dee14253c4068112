/*
 * ops_linalg.c: matrix products.
 *
 * tc_matmul follows torch.matmul: 1-D operands are promoted to matrices
 * (a row for a, a column for b) and the added dim is removed again, batch
 * dims broadcast. The backend's batched gemm reads each operand in place
 * when its matrices are row-major or column-major and its batch dims
 * collapse to one stride (0 for a broadcast operand); otherwise the operand
 * is made contiguous first. Two operands of one 16-bit dtype go to the
 * backend's gemm_16bit (float32 sums, the product rounded once); a float32
 * product runs in bf16 under autocast inside the backend's gemm.
 *
 * tc_einsum lowers an equation to differentiable pieces: a diagonal view for
 * indices repeated within an operand, sums for indices no longer needed,
 * then pairwise contractions from left to right (permute + reshape into
 * [batch, m, k] x [batch, k, n] and tc_matmul, or a broadcast product when
 * nothing is summed), and a final permute into the output order. Its
 * gradient is the gradient of those pieces.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

/* ---- matmul ---- */

/* The layout gemm reads one operand with. */
typedef struct gemm_operand {
    tc_tensor *view; /* broadcast to batch + [rows, cols]; owned */
    bool transpose;  /* the matrices are column-major: gemm reads them transposed */
    int64_t leading; /* lda or ldb */
    int64_t batch_stride;
} gemm_operand;

/* Whether the last two dims of v can be read by gemm without a copy: row-major
 * (strides (ld, 1)) or column-major (strides (1, ld)) with ld large enough for
 * BLAS. Size-1 dims may have any stride. */
static bool matrix_layout(const tc_tensor *v, bool *transpose, int64_t *leading) {
    int n = v->ndim;
    int64_t rows = v->shape[n - 2], cols = v->shape[n - 1];
    int64_t row_stride = v->strides[n - 2], col_stride = v->strides[n - 1];
    int64_t row_major_min = cols > 1 ? cols : 1, column_major_min = rows > 1 ? rows : 1;
    if ((cols == 1 || col_stride == 1) && (rows == 1 || row_stride >= row_major_min)) {
        *transpose = false;
        *leading = rows == 1 ? row_major_min : row_stride;
        return true;
    }
    if ((rows == 1 || row_stride == 1) && (cols == 1 || col_stride >= column_major_min)) {
        *transpose = true;
        *leading = cols == 1 ? column_major_min : col_stride;
        return true;
    }
    return false;
}

/* Whether the first batch_dims dims of v step through memory by one stride
 * (the stride of the flattened batch); size-1 dims are ignored, and a fully
 * broadcast batch gives stride 0. */
static bool collapsed_batch_stride(const tc_tensor *v, int batch_dims, int64_t *stride) {
    int64_t expected = -1;
    *stride = 0;
    for (int d = batch_dims - 1; d >= 0; d--) {
        if (v->shape[d] == 1) continue;
        if (expected < 0)
            *stride = v->strides[d];
        else if (v->strides[d] != expected)
            return false;
        expected = v->strides[d] * v->shape[d];
    }
    return true;
}

static bool gemm_ready(tc_tensor *v, gemm_operand *operand) {
    if (!matrix_layout(v, &operand->transpose, &operand->leading)) return false;
    if (!collapsed_batch_stride(v, v->ndim - 2, &operand->batch_stride)) return false;
    operand->view = v;
    return true;
}

/* Broadcasts t (at least 2-D) to shape (batch + t's matrix dims) in a layout
 * gemm can read: t itself when possible, else a contiguous copy of t, else a
 * contiguous copy of the broadcast (for batch dims broadcast in a pattern no
 * single stride describes). Not on the tape. */
static tc_status prepare_gemm_operand(tc_tensor *t, int ndim, const int64_t *shape, gemm_operand *operand) {
    tc_tensor *view, *copy;
    TC_TRY(tc_broadcast_view(t, ndim, shape, &view));
    if (gemm_ready(view, operand)) return TC_OK;
    tc_tensor_release(view);
    if (!tc_tensor_is_contiguous(t)) {
        TC_TRY(tc_contiguous_copy(t, &copy));
        tc_status status = tc_broadcast_view(copy, ndim, shape, &view);
        tc_tensor_release(copy);
        TC_TRY(status);
        if (gemm_ready(view, operand)) return TC_OK;
        tc_tensor_release(view);
    }
    TC_TRY(tc_broadcast_view(t, ndim, shape, &view));
    tc_status status = tc_contiguous_copy(view, &copy);
    tc_tensor_release(view);
    TC_TRY(status);
    if (gemm_ready(copy, operand)) return TC_OK;
    tc_tensor_release(copy);
    return tc_fail(t->ctx, TC_ERROR_STATE, "matmul: could not lay out an operand of shape %s for gemm", TC_SHAPE(t));
}

/* A view of t as a matrix stack: a 1-D t becomes [1, k] (as_row) or [k, 1]. */
static tc_status as_matrices(const tc_tensor *t, bool as_row, tc_tensor **out) {
    if (t->ndim >= 2) return tc_tensor_alias(t, t->ndim, t->shape, t->strides, t->offset, out);
    int64_t shape[2], strides[2];
    if (as_row) {
        shape[0] = 1;
        shape[1] = t->shape[0];
        strides[0] = t->shape[0] * t->strides[0];
        strides[1] = t->strides[0];
    } else {
        shape[0] = t->shape[0];
        shape[1] = 1;
        strides[0] = t->strides[0];
        strides[1] = 1;
    }
    return tc_tensor_alias(t, 2, shape, strides, t->offset, out);
}

/* out = a @ b for matrix stacks a [..., m, k] and b [..., k, n] of one dtype
 * whose batch dims broadcast to batch_shape; out is contiguous with
 * batch_shape + [m, n] elements (its own shape may lack the dims of 1-D
 * operands), of their dtype or, for 16-bit ones, float32 (the backend's
 * gemm_16bit). */
static tc_status run_gemm(tc_tensor *a, tc_tensor *b, int batch_dims, const int64_t *batch_shape, tc_tensor *out) {
    int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1], n = b->shape[b->ndim - 1];
    int64_t batch = tc_shape_numel(batch_dims, batch_shape);
    if (batch == 0 || m == 0 || n == 0) return TC_OK;
    if (k == 0) return tc_fill_(out, 0.0);
    int64_t shape_a[TC_MAX_DIMS], shape_b[TC_MAX_DIMS];
    memcpy(shape_a, batch_shape, sizeof(int64_t) * (size_t)batch_dims);
    memcpy(shape_b, batch_shape, sizeof(int64_t) * (size_t)batch_dims);
    shape_a[batch_dims] = m;
    shape_a[batch_dims + 1] = k;
    shape_b[batch_dims] = k;
    shape_b[batch_dims + 1] = n;
    gemm_operand left = {0}, right = {0};
    TC_TRY(prepare_gemm_operand(a, batch_dims + 2, shape_a, &left));
    tc_status status = prepare_gemm_operand(b, batch_dims + 2, shape_b, &right);
    const tc_backend *backend = tc_backend_of(out);
    const void *left_data = tc_tensor_data_at_offset(left.view);
    const void *right_data = status == TC_OK ? tc_tensor_data_at_offset(right.view) : NULL;
    if (status == TC_OK && tc_dtype_is_16bit(a->dtype))
        status = backend->gemm_16bit(out->ctx, a->dtype, out->dtype, left.transpose, right.transpose, m, n, k, 1.0,
                                     left_data, left.leading, left.batch_stride, right_data, right.leading,
                                     right.batch_stride, 0.0, tc_tensor_data_at_offset(out), n, m * n, batch);
    else if (status == TC_OK)
        status = backend->gemm(out->ctx, out->dtype, left.transpose, right.transpose, m, n, k, 1.0, left_data,
                               left.leading, left.batch_stride, right_data, right.leading, right.batch_stride, 0.0,
                               tc_tensor_data_at_offset(out), n, m * n, batch);
    tc_tensor_release(left.view);
    tc_tensor_release(right.view);
    return status;
}

static tc_status matmul_impl(tc_tensor *a, tc_tensor *b, bool wide, tc_tensor **out);

/* x @ y (`batch` matrices), the gradient of an operand whose matrix stack is
 * target before it is summed over the batch dims target was broadcast
 * along: a 16-bit product to be summed stays float32 until the sum, rounded
 * once (as when the operands are widened). */
static tc_status gradient_product(tc_tensor *x, tc_tensor *y, int64_t batch, const tc_tensor *target,
                                  tc_tensor **out) {
    bool summed = batch != tc_shape_numel(target->ndim - 2, target->shape);
    bool wide = summed && tc_dtype_is_16bit(tc_promote_dtypes(x->dtype, y->dtype));
    tc_tensor *product = NULL, *sum = NULL;
    TC_TRY(matmul_impl(x, y, wide, &product));
    tc_status status = tc_sum_to_shape(product, target->ndim, target->shape, &sum);
    tc_tensor_release(product);
    if (status == TC_OK && wide) return tc_narrow_16bit(status, sum, target->dtype, out);
    if (status == TC_OK) *out = sum;
    return status;
}

/* grad_a = grad @ b^T and grad_b = a^T @ grad on the promoted matrix stacks,
 * summed over the batch dims the operand was broadcast along, then given the
 * operand's own shape back. */
tc_status tc_matmul_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    tc_tensor *a = node->inputs[0], *b = node->inputs[1];
    tc_tensor *a2 = NULL, *b2 = NULL, *g = NULL, *g2 = NULL, *flipped = NULL, *summed = NULL;
    int64_t shape[TC_MAX_DIMS];
    int batch_dims = grad->ndim - (a->ndim >= 2) - (b->ndim >= 2);
    memcpy(shape, grad->shape, sizeof(int64_t) * (size_t)batch_dims);
    shape[batch_dims] = a->ndim >= 2 ? a->shape[a->ndim - 2] : 1;
    shape[batch_dims + 1] = b->ndim >= 2 ? b->shape[b->ndim - 1] : 1;
    int64_t batch = tc_shape_numel(batch_dims, shape);
    tc_status status = tc_cast_if_needed(grad, node->out_dtype, &g);
    if (status == TC_OK) status = tc_reshape(g, batch_dims + 2, shape, &g2);
    if (status == TC_OK) status = as_matrices(a, true, &a2);
    if (status == TC_OK) status = as_matrices(b, false, &b2);
    if (status == TC_OK && tc_node_input_needs_grad(node, 0)) {
        status = tc_transpose(b2, -1, -2, &flipped);
        if (status == TC_OK) status = gradient_product(g2, flipped, batch, a2, &summed);
        if (status == TC_OK) status = tc_reshape(summed, a->ndim, a->shape, &grad_inputs[0]);
        tc_tensor_release(flipped);
        tc_tensor_release(summed);
        flipped = summed = NULL;
    }
    if (status == TC_OK && tc_node_input_needs_grad(node, 1)) {
        status = tc_transpose(a2, -1, -2, &flipped);
        if (status == TC_OK) status = gradient_product(flipped, g2, batch, b2, &summed);
        if (status == TC_OK) status = tc_reshape(summed, b->ndim, b->shape, &grad_inputs[1]);
        tc_tensor_release(flipped);
        tc_tensor_release(summed);
    }
    tc_tensor_release(a2);
    tc_tensor_release(b2);
    tc_tensor_release(g);
    tc_tensor_release(g2);
    return status;
}


static tc_status check_matmul_operand(const char *name, const tc_tensor *t) {
    if (!tc_dtype_is_floating(t->dtype))
        return tc_fail(t->ctx, TC_ERROR_DTYPE, "matmul: %s must be float32 or float64, got %s of shape %s", name,
                       tc_dtype_name(t->dtype), TC_SHAPE(t));
    if (t->ndim == 0)
        return tc_fail(t->ctx, TC_ERROR_SHAPE, "matmul: %s must have at least 1 dim, got a 0-dim tensor", name);
    return TC_OK;
}

/* a @ b; with wide, the product of two 16-bit operands is float32 (not
 * rounded). 16-bit operands go to the backend's gemm_16bit, or without it
 * are widened (on the tape) for its float32 gemm. */
static tc_status matmul_impl(tc_tensor *a, tc_tensor *b, bool wide, tc_tensor **out) {
    *out = NULL;
    TC_TRY(tc_check_same_device("matmul", a, b));
    TC_TRY(check_matmul_operand("a", a));
    TC_TRY(check_matmul_operand("b", b));
    tc_context *ctx = a->ctx;
    int64_t k_a = a->shape[a->ndim - 1], k_b = b->ndim >= 2 ? b->shape[b->ndim - 2] : b->shape[0];
    if (k_a != k_b)
        return tc_fail(ctx, TC_ERROR_SHAPE,
                       "matmul: shapes %s and %s do not align (the last dim of a has size %lld, the %s dim of b "
                       "has size %lld)",
                       TC_SHAPE(a), TC_SHAPE(b), (long long)k_a, b->ndim >= 2 ? "second-to-last" : "only",
                       (long long)k_b);
    /* Broadcast batch dims: those before the last two of each operand. */
    int batch_a = a->ndim > 2 ? a->ndim - 2 : 0, batch_b = b->ndim > 2 ? b->ndim - 2 : 0;
    int batch_dims = batch_a > batch_b ? batch_a : batch_b;
    int64_t batch_shape[TC_MAX_DIMS];
    for (int i = 0; i < batch_dims; i++) {
        int da = i - (batch_dims - batch_a), db = i - (batch_dims - batch_b);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1)
            return tc_fail(ctx, TC_ERROR_SHAPE,
                           "matmul: the batch dims of shapes %s and %s do not broadcast (batch dim %d: %lld "
                           "against %lld)",
                           TC_SHAPE(a), TC_SHAPE(b), i + 1, (long long)sa, (long long)sb);
        batch_shape[i] = sa == 1 ? sb : sa;
    }
    int64_t out_shape[TC_MAX_DIMS];
    int out_ndim = batch_dims;
    memcpy(out_shape, batch_shape, sizeof(int64_t) * (size_t)batch_dims);
    if (a->ndim >= 2) out_shape[out_ndim++] = a->shape[a->ndim - 2];
    if (b->ndim >= 2) out_shape[out_ndim++] = b->shape[b->ndim - 1];

    tc_dtype dtype = tc_promote_dtypes(a->dtype, b->dtype);
    bool half = tc_dtype_is_16bit(dtype);
    if (half && !tc_backend_supports(tc_backend_of(a), TC_SLOT_gemm_16bit)) {
        /* float32 products of the widened operands, rounded once at the end */
        tc_tensor *wide_a = NULL, *wide_b = NULL, *product = NULL;
        tc_status status = tc_widen_16bit(a, &wide_a);
        if (status == TC_OK) status = tc_widen_16bit(b, &wide_b);
        if (status == TC_OK) status = tc_matmul(wide_a, wide_b, &product);
        tc_tensor_release(wide_a);
        tc_tensor_release(wide_b);
        if (wide) {
            if (status == TC_OK) *out = product;
            return status;
        }
        return tc_narrow_16bit(status, product, dtype, out);
    }
    tc_tensor *ca = NULL, *cb = NULL, *a2 = NULL, *b2 = NULL, *result = NULL;
    tc_status status = tc_to_dtype(a, dtype, &ca);
    if (status == TC_OK) status = tc_to_dtype(b, dtype, &cb);
    if (status == TC_OK) status = as_matrices(ca, true, &a2);
    if (status == TC_OK) status = as_matrices(cb, false, &b2);
    if (status == TC_OK)
        status = tc_empty_shaped(ca, half && wide ? TC_FLOAT32 : dtype, out_ndim, out_shape, &result);
    if (status == TC_OK) status = run_gemm(a2, b2, batch_dims, batch_shape, result);
    tc_tensor *inputs[2] = {ca, cb};
    if (status == TC_OK) /* da reads b, db reads a */
        status = tc_record_op(TC_OP_MATMUL, 2, inputs, result, &(tc_node_state){.reads = TC_READS(0) | TC_READS(1)});
    if (status == TC_OK) {
        *out = result;
        result = NULL;
    }
    tc_tensor_release(result);
    tc_tensor_release(a2);
    tc_tensor_release(b2);
    tc_tensor_release(ca);
    tc_tensor_release(cb);
    return status;
}

tc_status tc_matmul(tc_tensor *a, tc_tensor *b, tc_tensor **out) { return matmul_impl(a, b, false, out); }

/* ---- einsum: parsing ----
 * Indices are labels: 'A'..'Z' are 0..25 and 'a'..'z' 26..51 (so label order
 * is ASCII order), and the dims under '...' get labels from 52 on, aligned
 * to the right across operands as in broadcasting. */

#define EINSUM_LETTERS 52
#define EINSUM_LABELS (EINSUM_LETTERS + TC_MAX_DIMS)

typedef struct einsum_subscript {
    const char *text; /* inside the equation, for messages */
    int text_length;
    int n_letters;
    int letters[TC_MAX_DIMS];
    int ellipsis_at; /* letters before the '...', or -1 without one */
} einsum_subscript;

typedef struct einsum_plan {
    tc_context *ctx;
    const char *equation;
    int count;
    einsum_subscript *inputs;
    int ellipsis_dims; /* the most dims any operand has under '...' */
    int64_t sizes[EINSUM_LABELS];
    int size_from[EINSUM_LABELS]; /* the operand that set the size, -1 for an unused label */
    int last_use[EINSUM_LABELS];  /* the last operand holding the label, -1 for none */
    int n_output;
    int output[TC_MAX_DIMS];
    uint64_t output_mask;
} einsum_plan;

static int letter_label(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return 26 + (c - 'a');
    return -1;
}

static char label_letter(int label) { return (char)(label < 26 ? 'A' + label : 'a' + (label - 26)); }

static uint64_t label_bit(int label) { return (uint64_t)1 << label; }

/* Reads the subscript in text[0 .. length); `what` names it in messages. */
static tc_status parse_subscript(const einsum_plan *plan, const char *text, int length, const char *what,
                                 einsum_subscript *subscript) {
    subscript->text = text;
    subscript->text_length = length;
    subscript->n_letters = 0;
    subscript->ellipsis_at = -1;
    for (int i = 0; i < length; i++) {
        char c = text[i];
        if (c == ' ') continue;
        if (c == '.') {
            if (i + 2 >= length || text[i + 1] != '.' || text[i + 2] != '.')
                return tc_fail(plan->ctx, TC_ERROR_ARGUMENT,
                               "einsum '%s': a '.' in %s is not part of an ellipsis '...'", plan->equation, what);
            if (subscript->ellipsis_at >= 0)
                return tc_fail(plan->ctx, TC_ERROR_ARGUMENT, "einsum '%s': %s has more than one '...'", plan->equation,
                               what);
            subscript->ellipsis_at = subscript->n_letters;
            i += 2;
            continue;
        }
        int label = letter_label(c);
        if (label < 0)
            return tc_fail(plan->ctx, TC_ERROR_ARGUMENT,
                           "einsum '%s': '%c' in %s is not an index (indices are letters, plus '...')", plan->equation,
                           c, what);
        if (subscript->n_letters == TC_MAX_DIMS)
            return tc_fail(plan->ctx, TC_ERROR_ARGUMENT, "einsum '%s': %s names more than %d dims", plan->equation,
                           what, TC_MAX_DIMS);
        subscript->letters[subscript->n_letters++] = label;
    }
    return TC_OK;
}

/* The label of each dim of operand i (whose subscript fits its ndim). */
static void operand_labels(const einsum_plan *plan, int i, int ndim, int *labels) {
    const einsum_subscript *s = &plan->inputs[i];
    if (s->ellipsis_at < 0) {
        memcpy(labels, s->letters, sizeof(int) * (size_t)s->n_letters);
        return;
    }
    int under = ndim - s->n_letters, n = 0;
    for (int j = 0; j < s->ellipsis_at; j++)
        labels[n++] = s->letters[j];
    for (int j = 0; j < under; j++)
        labels[n++] = EINSUM_LETTERS + plan->ellipsis_dims - under + j;
    for (int j = s->ellipsis_at; j < s->n_letters; j++)
        labels[n++] = s->letters[j];
}

/* Splits the equation into subscripts, checks them against the operands
 * (dims, dtypes, devices, index sizes) and settles the output labels. */
static tc_status plan_einsum(einsum_plan *plan, tc_tensor **operands) {
    const char *eq = plan->equation;
    tc_context *ctx = plan->ctx;
    const char *arrow = strstr(eq, "->");
    int inputs_length = arrow ? (int)(arrow - eq) : (int)strlen(eq);
    int n_subscripts = 1;
    for (int i = 0; i < inputs_length; i++)
        n_subscripts += eq[i] == ',';
    if (n_subscripts != plan->count)
        return tc_fail(ctx, TC_ERROR_ARGUMENT,
                       "einsum '%s': the equation has %d operand subscript%s but %d operand%s given", eq, n_subscripts,
                       n_subscripts == 1 ? "" : "s", plan->count, plan->count == 1 ? " was" : "s were");
    const char *begin = eq;
    for (int i = 0; i < plan->count; i++) {
        const char *end = begin;
        while (end < eq + inputs_length && *end != ',')
            end++;
        char what[32];
        snprintf(what, sizeof what, "operand %d", i + 1);
        TC_TRY(parse_subscript(plan, begin, (int)(end - begin), what, &plan->inputs[i]));
        begin = end + 1;
    }
    /* Dims, dtypes and devices of the operands. */
    plan->ellipsis_dims = 0;
    for (int i = 0; i < plan->count; i++) {
        const einsum_subscript *s = &plan->inputs[i];
        const tc_tensor *t = operands[i];
        if (i > 0) TC_TRY(tc_check_same_device("einsum", operands[0], t));
        if (!tc_dtype_is_floating(t->dtype))
            return tc_fail(ctx, TC_ERROR_DTYPE, "einsum '%s': operand %d must be float32 or float64, got %s", eq, i + 1,
                           tc_dtype_name(t->dtype));
        if (s->ellipsis_at < 0 && t->ndim != s->n_letters)
            return tc_fail(ctx, TC_ERROR_SHAPE, "einsum '%s': operand %d has %d dims but its subscript '%.*s' names %d",
                           eq, i + 1, t->ndim, s->text_length, s->text, s->n_letters);
        if (s->ellipsis_at >= 0 && t->ndim < s->n_letters)
            return tc_fail(ctx, TC_ERROR_SHAPE,
                           "einsum '%s': operand %d has %d dims but its subscript '%.*s' names at least %d", eq, i + 1,
                           t->ndim, s->text_length, s->text, s->n_letters);
        if (s->ellipsis_at >= 0 && t->ndim - s->n_letters > plan->ellipsis_dims)
            plan->ellipsis_dims = t->ndim - s->n_letters;
    }
    /* Index sizes: equal within an operand, equal or 1 across operands. */
    int occurrences[EINSUM_LABELS] = {0};
    for (int l = 0; l < EINSUM_LABELS; l++) {
        plan->sizes[l] = 1;
        plan->size_from[l] = -1;
        plan->last_use[l] = -1;
    }
    for (int i = 0; i < plan->count; i++) {
        const tc_tensor *t = operands[i];
        int labels[TC_MAX_DIMS];
        operand_labels(plan, i, t->ndim, labels);
        for (int d = 0; d < t->ndim; d++) {
            int l = labels[d];
            int64_t size = t->shape[d];
            occurrences[l]++;
            for (int e = 0; e < d; e++)
                if (labels[e] == l && t->shape[e] != size)
                    return tc_fail(ctx, TC_ERROR_SHAPE,
                                   "einsum '%s': operand %d of shape %s repeats index '%c' over dims of sizes %lld "
                                   "and %lld",
                                   eq, i + 1, TC_SHAPE(t), label_letter(l), (long long)t->shape[e], (long long)size);
            plan->last_use[l] = i;
            if (plan->size_from[l] < 0 || plan->sizes[l] == 1) {
                if (plan->size_from[l] < 0 || size != 1) {
                    plan->sizes[l] = size;
                    plan->size_from[l] = i;
                }
            } else if (size != 1 && size != plan->sizes[l]) {
                if (l < EINSUM_LETTERS)
                    return tc_fail(ctx, TC_ERROR_SHAPE,
                                   "einsum '%s': index '%c' has size %lld in operand %d but %lld in operand %d", eq,
                                   label_letter(l), (long long)plan->sizes[l], plan->size_from[l] + 1, (long long)size,
                                   i + 1);
                return tc_fail(ctx, TC_ERROR_SHAPE,
                               "einsum '%s': the dims under '...' do not broadcast (size %lld in operand %d against "
                               "%lld in operand %d)",
                               eq, (long long)plan->sizes[l], plan->size_from[l] + 1, (long long)size, i + 1);
            }
        }
    }
    /* The output: explicit after '->', else the '...' dims then the indices
     * seen exactly once, in alphabetical (ASCII) order. */
    int n_output = 0, output[EINSUM_LABELS];
    if (arrow) {
        einsum_subscript result;
        TC_TRY(parse_subscript(plan, arrow + 2, (int)strlen(arrow + 2), "the output", &result));
        for (int j = 0; j <= result.n_letters; j++) {
            if (j == result.ellipsis_at)
                for (int e = 0; e < plan->ellipsis_dims; e++)
                    output[n_output++] = EINSUM_LETTERS + e;
            if (j == result.n_letters) break;
            int l = result.letters[j];
            if (!occurrences[l])
                return tc_fail(ctx, TC_ERROR_ARGUMENT, "einsum '%s': output index '%c' appears in no operand", eq,
                               label_letter(l));
            for (int e = 0; e < j; e++)
                if (result.letters[e] == l)
                    return tc_fail(ctx, TC_ERROR_ARGUMENT, "einsum '%s': output index '%c' appears more than once", eq,
                                   label_letter(l));
            output[n_output++] = l;
        }
    } else {
        for (int e = 0; e < plan->ellipsis_dims; e++)
            output[n_output++] = EINSUM_LETTERS + e;
        for (int l = 0; l < EINSUM_LETTERS; l++)
            if (occurrences[l] == 1) output[n_output++] = l;
    }
    if (n_output > TC_MAX_DIMS)
        return tc_fail(ctx, TC_ERROR_SHAPE, "einsum '%s': the output would have %d dims (at most %d)", eq, n_output,
                       TC_MAX_DIMS);
    plan->n_output = n_output;
    plan->output_mask = 0;
    for (int j = 0; j < n_output; j++) {
        plan->output[j] = output[j];
        plan->output_mask |= label_bit(output[j]);
    }
    return TC_OK;
}

/* ---- einsum: diagonals ---- */

/* Writes grad into the diagonal of zeros shaped like the input; node->ints[d]
 * is the output dim that input dim d was folded into. */
tc_status tc_diagonal_backward(tc_node *node, tc_tensor *grad, tc_tensor **grad_inputs) {
    const tc_tensor *input = node->inputs[0];
    tc_tensor *zeros = NULL, *diagonal = NULL;
    TC_TRY(tc_tensor_new(grad->ctx, grad->dtype, grad->storage->device, input->ndim, input->shape, &zeros));
    tc_status status = tc_fill_(zeros, 0.0);
    int64_t strides[TC_MAX_DIMS] = {0};
    for (int d = 0; d < input->ndim; d++)
        strides[node->ints[d]] += zeros->strides[d];
    if (status == TC_OK) status = tc_tensor_alias(zeros, grad->ndim, grad->shape, strides, 0, &diagonal);
    if (status == TC_OK) status = tc_copy_(diagonal, grad);
    tc_tensor_release(diagonal);
    if (status != TC_OK) {
        tc_tensor_release(zeros);
        return status;
    }
    grad_inputs[0] = zeros;
    return TC_OK;
}


/* An operand with each repeated label folded into one dim (a strided view
 * over the diagonal: the strides of the repeated dims add up); labels gets
 * the labels of the result. t itself, retained, when nothing repeats. */
static tc_status take_diagonals(tc_tensor *t, const int *dim_labels, int *labels, int *ndim, tc_tensor **out) {
    int64_t shape[TC_MAX_DIMS], strides[TC_MAX_DIMS];
    int64_t target[TC_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < t->ndim; d++) {
        int found = -1;
        for (int e = 0; e < n; e++)
            if (labels[e] == dim_labels[d]) found = e;
        if (found >= 0) {
            strides[found] += t->strides[d];
            target[d] = found;
            continue;
        }
        labels[n] = dim_labels[d];
        shape[n] = t->shape[d];
        strides[n] = t->strides[d];
        target[d] = n++;
    }
    *ndim = n;
    if (n == t->ndim) {
        tc_tensor_retain(t);
        *out = t;
        return TC_OK;
    }
    TC_TRY(tc_tensor_alias(t, n, shape, strides, t->offset, out));
    if (!tc_should_record(t->ctx, 1, &t)) return TC_OK;
    tc_node *node;
    tc_status status = tc_record(&tc_tape_ops[TC_OP_EINSUM_DIAGONAL], 1, &t, *out, &node);
    if (status != TC_OK) {
        tc_tensor_release(*out);
        *out = NULL;
        return status;
    }
    for (int d = 0; d < t->ndim; d++)
        node->ints[d] = target[d];
    node->n_ints = t->ndim;
    return TC_OK;
}

/* ---- einsum: terms and contractions ---- */

/* A tensor with one label per dim (no repeats). */
typedef struct einsum_term {
    tc_tensor *tensor; /* owned */
    int labels[TC_MAX_DIMS];
} einsum_term;

static int term_find(const einsum_term *term, int label) {
    for (int d = 0; d < term->tensor->ndim; d++)
        if (term->labels[d] == label) return d;
    return -1;
}

static uint64_t term_mask(const einsum_term *term) {
    uint64_t mask = 0;
    for (int d = 0; d < term->tensor->ndim; d++)
        mask |= label_bit(term->labels[d]);
    return mask;
}

static void term_replace(einsum_term *term, tc_tensor *tensor) {
    tc_tensor_release(term->tensor);
    term->tensor = tensor;
}

/* Sums the dims whose labels are in mask. */
static tc_status term_sum(einsum_term *term, uint64_t mask) {
    int dims[TC_MAX_DIMS], n = 0, kept = 0;
    for (int d = 0; d < term->tensor->ndim; d++) {
        if (mask & label_bit(term->labels[d]))
            dims[n++] = d;
        else
            term->labels[kept++] = term->labels[d];
    }
    if (n == 0) return TC_OK;
    tc_tensor *summed;
    TC_TRY(tc_reduce(TC_REDUCE_SUM, term->tensor, n, dims, false, &summed));
    term_replace(term, summed);
    return TC_OK;
}

/* Removes dim d, which has size 1. */
static tc_status term_drop(einsum_term *term, int d) {
    const tc_tensor *t = term->tensor;
    int64_t shape[TC_MAX_DIMS];
    int n = 0;
    for (int e = 0; e < t->ndim; e++) {
        if (e == d) continue;
        shape[n] = t->shape[e];
        term->labels[n++] = term->labels[e];
    }
    tc_tensor *dropped;
    TC_TRY(tc_reshape(term->tensor, n, shape, &dropped));
    term_replace(term, dropped);
    return TC_OK;
}

/* Permutes the term's dims into `order` (labels) and flattens them into the
 * groups given by group_sizes (counts of consecutive dims per group). */
static tc_status term_grouped(const einsum_term *term, const int *order, int n_groups, const int *group_sizes,
                              tc_tensor **out) {
    const tc_tensor *t = term->tensor;
    int dims[TC_MAX_DIMS];
    for (int j = 0; j < t->ndim; j++)
        dims[j] = term_find(term, order[j]);
    int64_t shape[3];
    int j = 0;
    for (int g = 0; g < n_groups; g++) {
        shape[g] = 1;
        for (int e = 0; e < group_sizes[g]; e++)
            shape[g] *= t->shape[dims[j++]];
    }
    tc_tensor *permuted;
    TC_TRY(tc_permute(term->tensor, t->ndim, dims, &permuted));
    tc_status status = tc_reshape(permuted, n_groups, shape, out);
    tc_tensor_release(permuted);
    return status;
}

/* Contracts a and b into result, keeping the labels in keep and summing the
 * others. Both terms are consumed. A shared label of size 1 on one side and
 * n on the other broadcasts: it is dropped from the size-1 side. */
static tc_status contract_pair(const einsum_plan *plan, einsum_term *a, einsum_term *b, uint64_t keep,
                               einsum_term *result) {
    for (int d = 0; d < a->tensor->ndim; d++) {
        int e = term_find(b, a->labels[d]);
        if (e < 0 || a->tensor->shape[d] == b->tensor->shape[e]) continue;
        if (a->tensor->shape[d] == 1) {
            TC_TRY(term_drop(a, d));
            d--;
        } else {
            TC_TRY(term_drop(b, e));
        }
    }
    uint64_t mask_a = term_mask(a), mask_b = term_mask(b);
    TC_TRY(term_sum(a, mask_a & ~mask_b & ~keep));
    TC_TRY(term_sum(b, mask_b & ~mask_a & ~keep));
    /* [batch, left, summed] for a and [batch, summed, right] for b. */
    int batch[TC_MAX_DIMS], left[TC_MAX_DIMS], summed[TC_MAX_DIMS], right[TC_MAX_DIMS];
    int n_batch = 0, n_left = 0, n_summed = 0, n_right = 0;
    for (int d = 0; d < a->tensor->ndim; d++) {
        int l = a->labels[d];
        if (term_find(b, l) < 0)
            left[n_left++] = l;
        else if (keep & label_bit(l))
            batch[n_batch++] = l;
        else
            summed[n_summed++] = l;
    }
    for (int d = 0; d < b->tensor->ndim; d++)
        if (term_find(a, b->labels[d]) < 0) right[n_right++] = b->labels[d];
    int n_result = n_batch + n_left + n_right;
    if (n_result > TC_MAX_DIMS)
        return tc_fail(plan->ctx, TC_ERROR_SHAPE,
                       "einsum '%s': an intermediate result would have %d dims (at most %d); reorder the operands",
                       plan->equation, n_result, TC_MAX_DIMS);
    int order_a[TC_MAX_DIMS], order_b[TC_MAX_DIMS], n = 0;
    for (int j = 0; j < n_batch; j++)
        order_a[n++] = batch[j];
    for (int j = 0; j < n_left; j++)
        order_a[n++] = left[j];
    for (int j = 0; j < n_summed; j++)
        order_a[n++] = summed[j];
    n = 0;
    for (int j = 0; j < n_batch; j++)
        order_b[n++] = batch[j];
    for (int j = 0; j < n_summed; j++)
        order_b[n++] = summed[j];
    for (int j = 0; j < n_right; j++)
        order_b[n++] = right[j];
    tc_tensor *lhs = NULL, *rhs = NULL, *product = NULL, *shaped = NULL;
    tc_status status;
    if (n_summed == 0) { /* nothing to sum: a broadcast product [B, M, 1] * [B, 1, N] */
        int groups_a[3] = {n_batch, n_left, 0}, groups_b[3] = {n_batch, 0, n_right};
        status = term_grouped(a, order_a, 3, groups_a, &lhs);
        if (status == TC_OK) status = term_grouped(b, order_b, 3, groups_b, &rhs);
        if (status == TC_OK) status = tc_binary(TC_MUL, lhs, rhs, &product);
    } else {
        int groups_a[3] = {n_batch, n_left, n_summed}, groups_b[3] = {n_batch, n_summed, n_right};
        status = term_grouped(a, order_a, 3, groups_a, &lhs);
        if (status == TC_OK) status = term_grouped(b, order_b, 3, groups_b, &rhs);
        if (status == TC_OK) status = tc_matmul(lhs, rhs, &product);
    }
    int64_t shape[TC_MAX_DIMS];
    n = 0;
    for (int j = 0; j < n_batch; j++) {
        result->labels[n] = batch[j];
        shape[n++] = a->tensor->shape[term_find(a, batch[j])];
    }
    for (int j = 0; j < n_left; j++) {
        result->labels[n] = left[j];
        shape[n++] = a->tensor->shape[term_find(a, left[j])];
    }
    for (int j = 0; j < n_right; j++) {
        result->labels[n] = right[j];
        shape[n++] = b->tensor->shape[term_find(b, right[j])];
    }
    if (status == TC_OK) status = tc_reshape(product, n_result, shape, &shaped);
    if (status == TC_OK) result->tensor = shaped;
    tc_tensor_release(lhs);
    tc_tensor_release(rhs);
    tc_tensor_release(product);
    return status;
}

/* Operand i as a term: its labels, diagonals taken. */
static tc_status operand_term(const einsum_plan *plan, int i, tc_tensor *t, einsum_term *term) {
    int dim_labels[TC_MAX_DIMS], ndim;
    operand_labels(plan, i, t->ndim, dim_labels);
    return take_diagonals(t, dim_labels, term->labels, &ndim, &term->tensor);
}

tc_status tc_einsum(const char *equation, int count, tc_tensor **operands, tc_tensor **out) {
    *out = NULL;
    if (count <= 0 || !operands) return TC_ERROR_ARGUMENT; /* no tensor, so no context to report through */
    for (int i = 0; i < count; i++)
        if (!operands[i]) {
            tc_context *ctx = NULL;
            for (int j = 0; j < count && !ctx; j++)
                ctx = operands[j] ? operands[j]->ctx : NULL;
            return ctx ? tc_fail(ctx, TC_ERROR_ARGUMENT, "einsum: operand %d is missing", i + 1) : TC_ERROR_ARGUMENT;
        }
    tc_context *ctx = operands[0]->ctx;
    if (!equation) return tc_fail(ctx, TC_ERROR_ARGUMENT, "einsum: the equation is missing");
    einsum_plan plan = {.ctx = ctx, .equation = equation, .count = count};
    plan.inputs = tc_malloc(ctx, sizeof *plan.inputs * (size_t)count);
    if (!plan.inputs) return TC_ERROR_MEMORY;
    tc_status status = plan_einsum(&plan, operands);
    einsum_term result = {0}, next = {0};
    if (status == TC_OK) status = operand_term(&plan, 0, operands[0], &result);
    for (int i = 1; i < count && status == TC_OK; i++) {
        /* Keep what the output or a later operand needs. */
        uint64_t keep = plan.output_mask;
        for (int l = 0; l < EINSUM_LABELS; l++)
            if (plan.last_use[l] > i) keep |= label_bit(l);
        status = operand_term(&plan, i, operands[i], &next);
        einsum_term combined = {0};
        if (status == TC_OK) status = contract_pair(&plan, &result, &next, keep, &combined);
        tc_tensor_release(result.tensor);
        tc_tensor_release(next.tensor);
        next.tensor = NULL;
        result = combined;
    }
    if (status == TC_OK) status = term_sum(&result, ~plan.output_mask);
    if (status == TC_OK) {
        int dims[TC_MAX_DIMS];
        for (int j = 0; j < plan.n_output; j++)
            dims[j] = term_find(&result, plan.output[j]);
        status = tc_permute(result.tensor, plan.n_output, dims, out);
    }
    tc_tensor_release(result.tensor);
    tc_free(plan.inputs);
    return status;
}
