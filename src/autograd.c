/*
 * autograd.c: the tape. Each differentiable op result holds the node that
 * made it; a node holds its inputs. backward() orders the nodes reachable
 * from the root topologically and runs their backward functions in C,
 * summing gradients into each input. Saved tensors are freed as soon as a
 * node has run unless the graph is retained. A leaf with a gradient hook
 * has it called as soon as the last node of the backward that feeds it has
 * run (data-parallel training sends gradients while the backward goes on).
 */
#include "internal.h"

#include <string.h>

void tc_node_release(tc_node *node);

static void node_free_saved(tc_node *node) {
    for (int i = 0; i < TC_NODE_MAX_SAVED; i++) {
        tc_tensor_release(node->saved[i]);
        node->saved[i] = NULL;
    }
    if (node->release_extra && node->extra) node->release_extra(node->extra);
    node->extra = NULL;
    node->release_extra = NULL;
}

void tc_node_release(tc_node *node) {
    if (!node || --node->refcount > 0) return;
    /* Deep chains (long RNN-like graphs) release iteratively through inputs
     * whose refcount drops to zero one at a time; recursion depth equals
     * the graph depth, which the tape's users keep modest. */
    node_free_saved(node);
    for (int i = 0; i < node->n_inputs; i++) tc_tensor_release(node->inputs[i]);
    tc_tensor_release(node->pending_grad);
    tc_tensor_hooks_free(node->hooks);
    tc_free(node->input_versions); /* the allocation that holds the inputs too */
    tc_free(node);
}

/* ---- gradient hooks ---- */

struct tc_grad_hook {
    tc_grad_hook_fn fn;
    void (*release)(void *user);
    void *user;
    /* Bookkeeping of one backward (the context's backward_mark when set):
     * the nodes still to run that feed the leaf, and whether any gave it a
     * gradient. */
    uint64_t mark;
    int pending;
    bool received;
};

void tc_grad_hook_free(struct tc_grad_hook *hook) {
    if (!hook) return;
    if (hook->release) hook->release(hook->user);
    tc_free(hook);
}

tc_status tc_tensor_set_grad_hook(tc_tensor *t, tc_grad_hook_fn fn, void (*release)(void *user), void *user) {
    struct tc_grad_hook *hook = NULL;
    if (fn) {
        if (t->grad_fn) {
            if (release) release(user);
            return tc_fail(t->ctx, TC_ERROR_STATE,
                           "set_grad_hook: the tensor (shape %s) is the result of '%s', not a leaf; only leaves "
                           "keep a gradient",
                           TC_SHAPE(t), t->grad_fn->op->name);
        }
        hook = tc_calloc(t->ctx, 1, sizeof *hook);
        if (!hook) {
            if (release) release(user);
            return TC_ERROR_MEMORY;
        }
        hook->fn = fn;
        hook->release = release;
        hook->user = user;
    }
    struct tc_grad_hook *previous = t->grad_hook;
    t->grad_hook = hook;
    tc_grad_hook_free(previous);
    return TC_OK;
}

bool tc_tensor_has_grad_hook(const tc_tensor *t) { return t->grad_hook != NULL; }

void tc_tensor_move_grad_hook(tc_tensor *from, tc_tensor *to) {
    if (from == to || !from->grad_hook) return;
    tc_grad_hook_free(to->grad_hook);
    to->grad_hook = from->grad_hook;
    from->grad_hook = NULL;
}

struct tc_tensor_hook {
    uint64_t id;
    tc_tensor_hook_fn fn;
    void (*release)(void *user);
    void *user;
    struct tc_tensor_hook *next;
};

void tc_tensor_hooks_free(struct tc_tensor_hook *hooks) {
    while (hooks) {
        struct tc_tensor_hook *next = hooks->next;
        if (hooks->release) hooks->release(hooks->user);
        tc_free(hooks);
        hooks = next;
    }
}

/* Where t's hooks live: on a leaf itself, on a non-leaf's node. */
static struct tc_tensor_hook **hook_list(tc_tensor *t) { return t->grad_fn ? &t->grad_fn->hooks : &t->hooks; }

tc_status tc_tensor_add_hook(tc_tensor *t, tc_tensor_hook_fn fn, void (*release)(void *user), void *user,
                             uint64_t *id) {
    if (!t->requires_grad)
        return tc_fail(t->ctx, TC_ERROR_STATE,
                       "register_hook: the tensor (shape %s) does not require grad, so no backward reaches it",
                       TC_SHAPE(t));
    struct tc_tensor_hook *hook = tc_calloc(t->ctx, 1, sizeof *hook);
    if (!hook) return TC_ERROR_MEMORY;
    hook->id = ++t->ctx->last_hook_id;
    hook->fn = fn;
    hook->release = release;
    hook->user = user;
    struct tc_tensor_hook **link = hook_list(t);
    while (*link) link = &(*link)->next;
    *link = hook;
    *id = hook->id;
    return TC_OK;
}

bool tc_tensor_remove_hook(tc_tensor *t, uint64_t id) {
    for (struct tc_tensor_hook **link = hook_list(t); *link; link = &(*link)->next) {
        struct tc_tensor_hook *hook = *link;
        if (hook->id == id) {
            *link = hook->next;
            hook->next = NULL;
            tc_tensor_hooks_free(hook);
            return true;
        }
    }
    return false;
}

/* Runs hooks in order on *grad (an owned reference), each on the result of
 * the one before; *grad ends as the final gradient (still owned). */
static tc_status run_tensor_hooks(const struct tc_tensor_hook *hooks, tc_tensor **grad) {
    for (const struct tc_tensor_hook *hook = hooks; hook; hook = hook->next) {
        tc_tensor *replacement = NULL;
        tc_context *ctx = (*grad)->ctx;
        TC_TRY(hook->fn(hook->user, *grad, &replacement));
        if (!replacement) continue;
        if (!tc_same_shape(replacement, *grad)) {
            tc_status status = tc_fail(ctx, TC_ERROR_SHAPE,
                                       "register_hook: a hook returned a gradient of shape %s for one of shape %s",
                                       TC_SHAPE(replacement), TC_SHAPE(*grad));
            tc_tensor_release(replacement);
            return status;
        }
        tc_tensor *cast = NULL;
        tc_status status = tc_check_same_device("register_hook", *grad, replacement);
        if (status == TC_OK) status = tc_cast_if_needed(replacement, (*grad)->dtype, &cast);
        tc_tensor_release(replacement);
        if (status != TC_OK) return status;
        tc_tensor_release(*grad);
        *grad = cast;
    }
    return TC_OK;
}

/* A leaf's hook takes part in this backward when it requires grad. */
static struct tc_grad_hook *hook_of(const tc_tensor *input) {
    return input && !input->grad_fn && input->requires_grad ? input->grad_hook : NULL;
}

/* Counts, for each hooked leaf, the nodes of this backward that feed it
 * (once per input slot, as run_node passes them one by one). */
static void count_hook_feeds(tc_node *const *nodes, int count, uint64_t mark) {
    for (int n = 0; n < count; n++) {
        const tc_node *node = nodes[n];
        for (int i = 0; i < node->n_inputs; i++) {
            struct tc_grad_hook *hook = hook_of(node->inputs[i]);
            if (!hook) continue;
            if (hook->mark != mark) {
                hook->mark = mark;
                hook->pending = 0;
                hook->received = false;
            }
            hook->pending++;
        }
    }
}

/* After node ran (or was skipped): its leaves are one feed nearer final. */
static tc_status pass_hooked_leaves(const tc_node *node, uint64_t mark) {
    for (int i = 0; i < node->n_inputs; i++) {
        tc_tensor *leaf = node->inputs[i];
        struct tc_grad_hook *hook = hook_of(leaf);
        if (!hook || hook->mark != mark || hook->pending <= 0) continue;
        if (--hook->pending == 0 && hook->received) {
            tc_status status = hook->fn(hook->user, leaf);
            if (status != TC_OK) {
                if (node->ctx->last_status == TC_OK)
                    tc_fail(node->ctx, status, "backward: the gradient hook of a leaf (shape %s) failed",
                            TC_SHAPE(leaf));
                return status;
            }
        }
    }
    return TC_OK;
}

bool tc_should_record(tc_context *ctx, int n, tc_tensor *const *inputs) {
    if (ctx->grad_disabled_depth > 0) return false;
    for (int i = 0; i < n; i++)
        if (inputs[i] && inputs[i]->requires_grad) return true;
    return false;
}

tc_status tc_record(const tc_op *op, int n, tc_tensor *const *inputs, tc_tensor *out, tc_node **node_out) {
    tc_context *ctx = out->ctx;
    tc_node *node = tc_calloc(ctx, 1, sizeof *node);
    if (!node) return TC_ERROR_MEMORY;
    /* One allocation: the inputs' storage versions, then the inputs. */
    node->input_versions = tc_calloc(ctx, (size_t)n, sizeof *node->input_versions + sizeof *node->inputs);
    if (!node->input_versions) {
        tc_free(node);
        return TC_ERROR_MEMORY;
    }
    node->inputs = (tc_tensor **)(void *)(node->input_versions + n);
    node->refcount = 1;
    node->op = op;
    node->ctx = ctx;
    node->autocast = ctx->autocast;
    node->n_inputs = n;
    for (int i = 0; i < n; i++) {
        node->inputs[i] = inputs[i];
        tc_tensor_retain(inputs[i]);
    }
    node->out_ndim = out->ndim;
    memcpy(node->out_shape, out->shape, sizeof out->shape);
    node->out_dtype = out->dtype;
    if (out->grad_fn) tc_node_release(out->grad_fn);
    out->grad_fn = node;
    out->requires_grad = true;
    if (node_out) *node_out = node;
    return TC_OK;
}

tc_status tc_record_op(tc_op_id id, int n, tc_tensor *const *inputs, tc_tensor *out, const tc_node_state *state) {
    if (!tc_should_record(out->ctx, n, inputs)) return TC_OK;
    tc_node *node;
    TC_TRY(tc_record(&tc_tape_ops[id], n, inputs, out, &node));
    node->n_ints = state->n_ints;
    memcpy(node->ints, state->ints, sizeof state->ints);
    node->reals[0] = state->real;
    for (int i = 0; i < n; i++)
        if (state->reads & TC_READS(i)) tc_node_reads_input(node, i);
    for (int slot = 0; slot < 3; slot++)
        if (state->saved[slot]) TC_TRY(tc_node_save(node, slot, state->saved[slot]));
    return TC_OK;
}

tc_status tc_node_save(tc_node *node, int slot, const tc_tensor *t) {
    tc_tensor *alias;
    TC_TRY(tc_tensor_alias(t, t->ndim, t->shape, t->strides, t->offset, &alias));
    tc_tensor_release(node->saved[slot]);
    node->saved[slot] = alias;
    node->saved_versions[slot] = t->storage->version;
    return TC_OK;
}

void tc_node_reads_input(tc_node *node, int index) {
    const tc_tensor *input = node->inputs[index];
    if (input) node->input_versions[index] = input->storage->version + 1;
}

tc_status tc_inplace_begin(tc_tensor *t, const char *op) {
    if (t->requires_grad && t->ctx->grad_disabled_depth == 0) {
        if (!t->grad_fn)
            return tc_fail(t->ctx, TC_ERROR_STATE,
                           "%s: a leaf that requires grad is used in an in-place operation; wrap it in tc.no_grad",
                           op);
        return tc_fail(t->ctx, TC_ERROR_STATE,
                       "%s: the tensor is the result of '%s' and requires grad; in-place operations are not "
                       "recorded, so its gradient would be wrong: use an out-of-place op, or wrap it in tc.no_grad",
                       op, t->grad_fn->op->name);
    }
    t->storage->version++;
    return TC_OK;
}

/* Fails when a tensor the node will read (saved, or an input) was written
 * in place since the forward: its gradient would be computed from the new
 * values. */
static tc_status check_versions(const tc_node *node) {
    for (int i = 0; i < TC_NODE_MAX_SAVED; i++) {
        const tc_tensor *t = node->saved[i];
        if (t && t->storage->version != node->saved_versions[i])
            return tc_fail(node->ctx, TC_ERROR_STATE,
                           "backward of '%s': a tensor it saved (shape %s) was modified by an in-place operation "
                           "after the forward (version %llu, saved at version %llu); change it after backward, or "
                           "change a clone",
                           node->op->name, TC_SHAPE(t), (unsigned long long)t->storage->version,
                           (unsigned long long)node->saved_versions[i]);
    }
    for (int i = 0; i < node->n_inputs; i++) {
        const tc_tensor *t = node->inputs[i];
        if (t && node->input_versions[i] && t->storage->version + 1 != node->input_versions[i])
            return tc_fail(node->ctx, TC_ERROR_STATE,
                           "backward of '%s': its input %d (shape %s) was modified by an in-place operation after "
                           "the forward (version %llu, saved at version %llu); change it after backward, or change "
                           "a clone",
                           node->op->name, i + 1, TC_SHAPE(t), (unsigned long long)t->storage->version,
                           (unsigned long long)node->input_versions[i] - 1);
    }
    return TC_OK;
}

bool tc_node_input_needs_grad(const tc_node *node, int index) {
    const tc_tensor *input = node->inputs[index];
    return input && input->requires_grad;
}

const char *tc_tensor_grad_fn_name(const tc_tensor *t) { return t->grad_fn ? t->grad_fn->op->name : NULL; }

tc_status tc_sum_to_shape(tc_tensor *grad, int ndim, const int64_t *shape, tc_tensor **out) {
    int lead = grad->ndim - ndim;
    int dims[TC_MAX_DIMS], ndims = 0;
    bool any = false;
    for (int d = 0; d < grad->ndim; d++) {
        int s = d - lead;
        if (s < 0 || (shape[s] == 1 && grad->shape[d] != 1)) {
            dims[ndims++] = d;
            any = true;
        }
    }
    if (!any) {
        tc_tensor_retain(grad);
        *out = grad;
        return TC_OK;
    }
    tc_tensor *summed;
    TC_TRY(tc_reduce(TC_REDUCE_SUM, grad, ndims, dims, true, &summed));
    tc_status status = tc_reshape(summed, ndim, shape, out);
    tc_tensor_release(summed);
    return status;
}

tc_status tc_accumulate(tc_tensor **accumulator, tc_tensor *grad) {
    if (!*accumulator) {
        tc_tensor_retain(grad);
        *accumulator = grad;
        return TC_OK;
    }
    tc_tensor *sum;
    TC_TRY(tc_binary(TC_ADD, *accumulator, grad, &sum));
    tc_tensor_release(*accumulator);
    *accumulator = sum;
    return TC_OK;
}

/* Collects nodes reachable from root in reverse topological order (root
 * first), iteratively so that deep graphs cannot overflow the C stack. */
typedef struct node_list {
    tc_node **items;
    int count, capacity;
} node_list;

static tc_status list_push(tc_context *ctx, node_list *list, tc_node *node) {
    if (list->count == list->capacity) {
        int capacity = list->capacity ? list->capacity * 2 : 64;
        tc_node **items = tc_malloc(ctx, sizeof *items * (size_t)capacity);
        if (!items) return TC_ERROR_MEMORY;
        if (list->items) memcpy(items, list->items, sizeof *items * (size_t)list->count);
        tc_free(list->items);
        list->items = items;
        list->capacity = capacity;
    }
    list->items[list->count++] = node;
    return TC_OK;
}

static tc_status topological_order(tc_context *ctx, tc_node *root, node_list *order) {
    uint64_t mark = ++ctx->backward_mark;
    node_list stack = {0};
    tc_status status = TC_OK;
    /* Count, for each node, how many consumers in this graph feed it. */
    root->visit_mark = mark;
    root->dependencies = 0;
    if ((status = list_push(ctx, &stack, root)) != TC_OK) goto done;
    while (stack.count) {
        tc_node *node = stack.items[--stack.count];
        for (int i = 0; i < node->n_inputs; i++) {
            tc_node *next = node->inputs[i] ? node->inputs[i]->grad_fn : NULL;
            if (!next) continue;
            if (next->visit_mark != mark) {
                next->visit_mark = mark;
                next->dependencies = 0;
                if ((status = list_push(ctx, &stack, next)) != TC_OK) goto done;
            }
            next->dependencies++;
        }
    }
    /* Kahn's algorithm: a node runs once every consumer has passed its grad. */
    if ((status = list_push(ctx, &stack, root)) != TC_OK) goto done;
    while (stack.count) {
        tc_node *node = stack.items[--stack.count];
        if ((status = list_push(ctx, order, node)) != TC_OK) goto done;
        for (int i = 0; i < node->n_inputs; i++) {
            tc_node *next = node->inputs[i] ? node->inputs[i]->grad_fn : NULL;
            if (next && --next->dependencies == 0)
                if ((status = list_push(ctx, &stack, next)) != TC_OK) goto done;
        }
    }
done:
    tc_free(stack.items);
    return status;
}

/* Whether g (held once by the backward's outputs, and by `cast` when that
 * is g itself) is the only view of a whole, contiguous, engine-owned
 * storage outside the tape: a leaf can keep it as its gradient. */
static bool sole_owner(const tc_tensor *g, const tc_tensor *cast) {
    int holders = cast == g ? 2 : 1;
    return cast == g && g->refcount == holders && g->storage->refcount == 1 && !g->storage->external &&
           g->offset == 0 && !g->grad_fn && !g->requires_grad && tc_tensor_is_contiguous(g);
}

/* tc_grad's targets: the tensors whose gradients are gathered in grads
 * instead of the leaves' grad fields. */
typedef struct grad_capture {
    int count;
    tc_tensor *const *inputs;
    tc_tensor **grads;
} grad_capture;

/* Gives a leaf its gradient g of one backward (already in its dtype): into
 * the capture's slots under tc_grad, else into its grad. */
static tc_status deliver_to_leaf(tc_tensor *leaf, tc_tensor *g, tc_tensor *cast, grad_capture *capture) {
    tc_status status = TC_OK;
    if (capture) {
        for (int k = 0; status == TC_OK && k < capture->count; k++)
            if (capture->inputs[k] == leaf) status = tc_accumulate(&capture->grads[k], cast);
        return status;
    }
    /* Leaves keep their own buffer so that later in-place updates cannot
     * alias a gradient of some other tensor: a fresh gradient nothing else
     * holds is kept as it is, anything else is copied. */
    if (!leaf->grad && sole_owner(g, cast)) {
        tc_tensor_retain(g);
        leaf->grad = g;
    } else if (!leaf->grad) {
        tc_tensor *copy;
        status = tc_contiguous_copy(cast, &copy);
        if (status == TC_OK) leaf->grad = copy;
    } else {
        status = tc_accumulate(&leaf->grad, cast);
    }
    if (status == TC_OK && leaf->grad_hook) leaf->grad_hook->received = true;
    return status;
}

/* The leaves with hooks that got a gradient in this backward (in
 * hook_grad): their hooks run once every node has run. */
typedef struct leaf_list {
    tc_tensor **items;
    int count, capacity;
} leaf_list;

static tc_status defer_to_hooks(tc_tensor *leaf, tc_tensor *cast, leaf_list *deferred) {
    if (!leaf->hook_grad) {
        if (deferred->count == deferred->capacity) {
            int capacity = deferred->capacity ? deferred->capacity * 2 : 8;
            tc_tensor **items = tc_malloc(leaf->ctx, sizeof *items * (size_t)capacity);
            if (!items) return TC_ERROR_MEMORY;
            if (deferred->items) memcpy(items, deferred->items, sizeof *items * (size_t)deferred->count);
            tc_free(deferred->items);
            deferred->items = items;
            deferred->capacity = capacity;
        }
        deferred->items[deferred->count++] = leaf;
    }
    return tc_accumulate(&leaf->hook_grad, cast);
}

/* Runs each deferred leaf's hooks on its gathered gradient and delivers the
 * result, then its grad_hook (which waited for it); always empties the list. */
static tc_status finish_hooked_leaves(leaf_list *deferred, grad_capture *capture, tc_status status) {
    for (int i = 0; i < deferred->count; i++) {
        tc_tensor *leaf = deferred->items[i];
        tc_tensor *g = leaf->hook_grad;
        leaf->hook_grad = NULL;
        if (status == TC_OK) status = run_tensor_hooks(leaf->hooks, &g);
        if (status == TC_OK) {
            /* a hook's result may be held by its caller: a new grad is always a copy (no g for sole_owner) */
            status = deliver_to_leaf(leaf, NULL, g, capture);
            if (status == TC_OK && !capture && leaf->grad_hook)
                status = leaf->grad_hook->fn(leaf->grad_hook->user, leaf);
        }
        tc_tensor_release(g);
    }
    tc_free(deferred->items);
    *deferred = (leaf_list){0};
    return status;
}

static tc_status run_node(tc_node *node, bool retain_graph, grad_capture *capture, leaf_list *deferred) {
    tc_context *ctx = node->ctx;
    tc_tensor *grad = node->pending_grad;
    node->pending_grad = NULL;
    if (!grad) return TC_OK; /* no path from the root reaches this node */
    if (node->hooks && !node->released) {
        tc_status status = run_tensor_hooks(node->hooks, &grad);
        if (status != TC_OK) {
            tc_tensor_release(grad);
            return status;
        }
    }
    if (capture) /* the whole gradient of a non-leaf target has arrived once its node runs */
        for (int k = 0; k < capture->count; k++)
            if (capture->inputs[k]->grad_fn == node) {
                tc_status status = tc_accumulate(&capture->grads[k], grad);
                if (status != TC_OK) {
                    tc_tensor_release(grad);
                    return status;
                }
            }
    if (node->released) {
        tc_tensor_release(grad);
        return tc_fail(ctx, TC_ERROR_STATE,
                       "backward: the graph through '%s' was already freed by an earlier backward; "
                       "pass retain_graph = true to the first backward to run it twice",
                       node->op->name);
    }
    tc_status checked = check_versions(node);
    if (checked != TC_OK) {
        tc_tensor_release(grad);
        return checked;
    }
    tc_tensor *stack_grads[8] = {0};
    tc_tensor **grad_inputs = stack_grads;
    if (node->n_inputs > 8) {
        grad_inputs = tc_calloc(ctx, (size_t)node->n_inputs, sizeof *grad_inputs);
        if (!grad_inputs) {
            tc_tensor_release(grad);
            return TC_ERROR_MEMORY;
        }
    }
    tc_dtype autocast = ctx->autocast; /* the node's products in the precision its forward had */
    ctx->autocast = node->autocast;
    tc_status status = node->op->backward(node, grad, grad_inputs);
    ctx->autocast = autocast;
    tc_tensor_release(grad);
    for (int i = 0; i < node->n_inputs; i++) {
        tc_tensor *input = node->inputs[i];
        tc_tensor *g = grad_inputs[i];
        if (!g) continue;
        if (status == TC_OK && input->requires_grad) {
            if (!tc_same_shape(g, input)) {
                status = tc_fail(ctx, TC_ERROR_SHAPE, "backward of '%s': gradient %d has shape %s, input has %s",
                                 node->op->name, i + 1, TC_SHAPE(g), TC_SHAPE(input));
            } else if (input->grad_fn) {
                status = tc_accumulate(&input->grad_fn->pending_grad, g);
            } else {
                tc_tensor *cast = NULL;
                status = tc_cast_if_needed(g, input->dtype, &cast);
                if (status == TC_OK)
                    status = input->hooks ? defer_to_hooks(input, cast, deferred)
                                          : deliver_to_leaf(input, g, cast, capture);
                tc_tensor_release(cast);
            }
        }
        tc_tensor_release(g);
    }
    if (grad_inputs != stack_grads) tc_free(grad_inputs);
    if (!retain_graph) {
        node_free_saved(node);
        node->released = true;
    }
    return status;
}

static tc_status run_backward(tc_tensor *t, tc_tensor *grad, bool retain_graph, grad_capture *capture) {
    tc_context *ctx = t->ctx;
    if (!t->requires_grad)
        return tc_fail(ctx, TC_ERROR_STATE,
                       "backward: the tensor does not require grad (no input required grad, or grad mode was off)");
    tc_tensor *seed;
    if (grad) {
        if (!tc_same_shape(grad, t))
            return tc_fail(ctx, TC_ERROR_SHAPE, "backward: gradient of shape %s does not match tensor of shape %s",
                           TC_SHAPE(grad), TC_SHAPE(t));
        TC_TRY(tc_check_same_device("backward", t, grad));
        if (!tc_dtype_is_floating(grad->dtype))
            return tc_fail(ctx, TC_ERROR_DTYPE,
                           "backward: the gradient (shape %s) must be float32 or float64, got %s (the tensor is %s)",
                           TC_SHAPE(grad), tc_dtype_name(grad->dtype), tc_dtype_name(t->dtype));
        TC_TRY(tc_cast_if_needed(grad, t->dtype, &seed));
    } else {
        if (tc_tensor_numel(t) != 1)
            return tc_fail(ctx, TC_ERROR_SHAPE,
                           "backward: a tensor of shape %s is not a scalar; pass a gradient of its shape",
                           TC_SHAPE(t));
        TC_TRY(tc_tensor_new(ctx, t->dtype, t->storage->device, t->ndim, t->shape, &seed));
        tc_status status = tc_fill_(seed, 1.0);
        if (status != TC_OK) {
            tc_tensor_release(seed);
            return status;
        }
    }
    if (!t->grad_fn && (capture || t->hooks)) { /* a leaf: the seed through its hooks, to grad or the capture */
        leaf_list deferred = {0};
        tc_status status = defer_to_hooks(t, seed, &deferred);
        tc_tensor_release(seed);
        tc_set_grad_enabled(ctx, false);
        status = finish_hooked_leaves(&deferred, capture, status);
        tc_set_grad_enabled(ctx, true);
        return status;
    }
    if (!t->grad_fn) { /* a leaf: its gradient is the seed itself */
        tc_status status = tc_accumulate(&t->grad, seed);
        tc_tensor_release(seed);
        if (status == TC_OK && t->grad_hook) {
            tc_set_grad_enabled(ctx, false);
            status = t->grad_hook->fn(t->grad_hook->user, t);
            tc_set_grad_enabled(ctx, true);
        }
        return status;
    }
    node_list order = {0};
    tc_status status = topological_order(ctx, t->grad_fn, &order);
    if (status == TC_OK) {
        uint64_t mark = ctx->backward_mark;
        if (!capture) count_hook_feeds(order.items, order.count, mark);
        tc_tensor_release(t->grad_fn->pending_grad);
        t->grad_fn->pending_grad = seed;
        seed = NULL;
        leaf_list deferred = {0};
        tc_set_grad_enabled(ctx, false);
        for (int i = 0; i < order.count && status == TC_OK; i++) {
            status = run_node(order.items[i], retain_graph, capture, &deferred);
            if (status == TC_OK && !capture) status = pass_hooked_leaves(order.items[i], mark);
        }
        status = finish_hooked_leaves(&deferred, capture, status);
        tc_set_grad_enabled(ctx, true);
        /* After a failure, drop the gradients still in flight. */
        for (int i = 0; i < order.count; i++) {
            tc_tensor_release(order.items[i]->pending_grad);
            order.items[i]->pending_grad = NULL;
        }
    }
    tc_tensor_release(seed);
    tc_free(order.items);
    return status;
}

tc_status tc_backward(tc_tensor *t, tc_tensor *grad, bool retain_graph) {
    return run_backward(t, grad, retain_graph, NULL);
}

tc_status tc_grad(tc_tensor *t, tc_tensor *grad, int n_inputs, tc_tensor *const *inputs, bool retain_graph,
                  tc_tensor **grads) {
    tc_context *ctx = t->ctx;
    for (int k = 0; k < n_inputs; k++) {
        grads[k] = NULL;
        if (!inputs[k]->requires_grad)
            return tc_fail(ctx, TC_ERROR_STATE, "grad: input %d (shape %s) does not require grad", k + 1,
                           TC_SHAPE(inputs[k]));
    }
    grad_capture capture = {n_inputs, inputs, grads};
    tc_status status = run_backward(t, grad, retain_graph, &capture);
    /* Each gradient handed out is the caller's own: one that the tape or
     * the caller's seed may share is copied. */
    for (int k = 0; status == TC_OK && k < n_inputs; k++) {
        tc_tensor *g = grads[k];
        if (g && (g->refcount != 1 || g->storage->refcount != 1 || g->storage->external || g->offset != 0 ||
                  !tc_tensor_is_contiguous(g))) {
            tc_tensor *copy;
            status = tc_contiguous_copy(g, &copy);
            if (status == TC_OK) {
                tc_tensor_release(g);
                grads[k] = copy;
            }
        }
    }
    if (status != TC_OK)
        for (int k = 0; k < n_inputs; k++) {
            tc_tensor_release(grads[k]);
            grads[k] = NULL;
        }
    return status;
}

/* ---- user-defined functions ---- */

typedef struct custom_state {
    tc_custom_function fn;
} custom_state;

static void custom_release(void *extra) {
    custom_state *state = extra;
    if (state->fn.release) state->fn.release(state->fn.user);
    tc_free(state);
}

/* A gradient from a user's backward must be one the input can take: its
 * shape, dtype and device. Another dtype is refused rather than converted,
 * so that a backward computing in the wrong precision (or an integer one)
 * is noticed where it happens. */
static tc_status check_custom_gradient(const tc_node *node, const char *name, int i, const tc_tensor *g) {
    const tc_tensor *input = node->inputs[i];
    if (!tc_same_shape(g, input))
        return tc_fail(node->ctx, TC_ERROR_SHAPE,
                       "backward of custom function '%s': the gradient for input %d has shape %s, expected %s (the "
                       "input's shape)",
                       name, i + 1, TC_SHAPE(g), TC_SHAPE(input));
    if (g->dtype != input->dtype)
        return tc_fail(node->ctx, TC_ERROR_DTYPE,
                       "backward of custom function '%s': the gradient for input %d (shape %s) has dtype %s, expected "
                       "%s (the input's dtype)",
                       name, i + 1, TC_SHAPE(g), tc_dtype_name(g->dtype), tc_dtype_name(input->dtype));
    if (g->storage->device != input->storage->device)
        return tc_fail(node->ctx, TC_ERROR_ARGUMENT,
                       "backward of custom function '%s': the gradient for input %d (shape %s) is on %s, expected %s "
                       "(the input's device)",
                       name, i + 1, TC_SHAPE(g), tc_device_name(g->storage->device),
                       tc_device_name(input->storage->device));
    return TC_OK;
}

tc_status tc_custom_backward(tc_node *node, tc_tensor *grad_output, tc_tensor **grad_inputs) {
    custom_state *state = node->extra;
    tc_status status = state->fn.backward(state->fn.user, grad_output, node->n_inputs, grad_inputs);
    if (status != TC_OK && node->ctx->last_status == TC_OK)
        tc_fail(node->ctx, status, "backward of custom function '%s' failed", state->fn.name);
    /* gradients for inputs that need none are dropped unread, as for built-in ops */
    for (int i = 0; i < node->n_inputs && status == TC_OK; i++)
        if (grad_inputs[i] && tc_node_input_needs_grad(node, i))
            status = check_custom_gradient(node, state->fn.name, i, grad_inputs[i]);
    return status;
}


tc_status tc_custom_apply(const tc_custom_function *fn, int n_inputs, tc_tensor **inputs, tc_tensor *output,
                          tc_tensor **out) {
    tc_context *ctx = output->ctx;
    if (!fn || !fn->backward) return tc_fail(ctx, TC_ERROR_ARGUMENT, "custom function: a backward is required");
    for (int i = 0; i < n_inputs; i++) TC_TRY(tc_check_same_device("custom function", inputs[i], output));
    TC_TRY(tc_tensor_alias(output, output->ndim, output->shape, output->strides, output->offset, out));
    if (!tc_should_record(ctx, n_inputs, inputs)) {
        if (fn->release) fn->release(fn->user);
        return TC_OK;
    }
    custom_state *state = tc_malloc(ctx, sizeof *state);
    if (!state) {
        tc_tensor_release(*out);
        return TC_ERROR_MEMORY;
    }
    state->fn = *fn;
    tc_node *node;
    tc_status status = tc_record(&tc_tape_ops[TC_OP_CUSTOM], n_inputs, inputs, *out, &node);
    if (status != TC_OK) {
        custom_release(state);
        tc_tensor_release(*out);
        return status;
    }
    node->extra = state;
    node->release_extra = custom_release;
    return TC_OK;
}
