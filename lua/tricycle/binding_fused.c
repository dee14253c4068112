/*
 * binding_fused.c: the fused neural-network ops in the `tricycle.core`
 * module table: tc.layer_norm, tc.rms_norm, tc.attention, tc.cross_entropy,
 * tc.attention_cached, tc.sample_logits, tc.linear, tc.linear_gelu,
 * tc.adamw_step, tc.adamw_steps, tc.sgd_step, tc.global_norm, tc.scale_,
 * tc.im2col, tc.conv2d and tc.max_pool2d. Each function
 * checks its Lua arguments, reads its options table (unknown keys are an
 * error, so a misspelt option is not silently ignored), calls the engine and
 * pushes the result.
 */
#include "binding.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void binding_register_fused(lua_State *L, int module_index);

/* ---- arguments and options ---- */

/* A tensor or nil at idx (NULL for nil). */
static tc_tensor *opt_tensor(lua_State *L, int idx, const char *function) {
    if (lua_isnoneornil(L, idx)) return NULL;
    return binding_check_tensor(L, idx, function);
}

static double opt_number_field(lua_State *L, int options, const char *field, double fallback, const char *function) {
    if (!options) return fallback;
    double value = fallback;
    int type = lua_getfield(L, options, field);
    if (type == LUA_TNUMBER) value = lua_tonumber(L, -1);
    else if (type != LUA_TNIL)
        luaL_error(L, "%s: option %s must be a number, got %s", function, field, luaL_typename(L, -1));
    lua_pop(L, 1);
    return value;
}

static lua_Integer opt_integer_field(lua_State *L, int options, const char *field, lua_Integer fallback,
                                     bool required, const char *function) {
    lua_Integer value = fallback;
    int type = options ? lua_getfield(L, options, field) : LUA_TNIL;
    if (type == LUA_TNIL && required) luaL_error(L, "%s: option %s is required", function, field);
    if (type != LUA_TNIL && !lua_isinteger(L, -1))
        luaL_error(L, "%s: option %s must be an integer, got %s", function, field,
                   type == LUA_TNUMBER ? "a number with a fraction" : luaL_typename(L, -1));
    if (type != LUA_TNIL) value = lua_tointeger(L, -1);
    if (options) lua_pop(L, 1);
    return value;
}

static bool opt_boolean_field(lua_State *L, int options, const char *field, bool fallback, const char *function) {
    if (!options) return fallback;
    bool value = fallback;
    int type = lua_getfield(L, options, field);
    if (type == LUA_TBOOLEAN) value = lua_toboolean(L, -1);
    else if (type != LUA_TNIL)
        luaL_error(L, "%s: option %s must be a boolean, got %s", function, field, luaL_typename(L, -1));
    lua_pop(L, 1);
    return value;
}

/* An integer argument; anything else (a fraction, NaN, a string) is an
 * error naming the function, the argument and what was given. */
static lua_Integer check_integer_argument(lua_State *L, int idx, const char *argument, const char *function) {
    if (lua_isinteger(L, idx)) return lua_tointeger(L, idx);
    if (lua_type(L, idx) == LUA_TNUMBER)
        luaL_error(L, "%s: argument %d (%s) must be an integer, got %f", function, idx, argument, lua_tonumber(L, idx));
    luaL_error(L, "%s: argument %d (%s) must be an integer, got %s", function, idx, argument, luaL_typename(L, idx));
    return 0;
}

static int push_result(lua_State *L, tc_status status, tc_tensor **out) {
    binding_check(L, status);
    binding_push_tensor(L, *out);
    return 1;
}

/* ---- ops ---- */

/* tc.layer_norm(x, weight, bias, eps): weight and bias may be nil; eps 1e-5. */
static int l_layer_norm(lua_State *L) {
    tc_tensor *x = binding_check_tensor(L, 1, "layer_norm");
    tc_tensor *weight = opt_tensor(L, 2, "layer_norm"), *bias = opt_tensor(L, 3, "layer_norm");
    double eps = luaL_optnumber(L, 4, 1e-5);
    tc_tensor *out = NULL;
    return push_result(L, tc_layer_norm(x, weight, bias, eps, &out), &out);
}

/* tc.rms_norm(x, weight, eps): weight may be nil; eps 1e-5. */
static int l_rms_norm(lua_State *L) {
    tc_tensor *x = binding_check_tensor(L, 1, "rms_norm");
    tc_tensor *weight = opt_tensor(L, 2, "rms_norm");
    double eps = luaL_optnumber(L, 3, 1e-5);
    tc_tensor *out = NULL;
    return push_result(L, tc_rms_norm(x, weight, eps, &out), &out);
}

/* The n_kv_head option of tc.attention and tc.attention_cached: n_head
 * when absent; the engine checks that it divides n_head. */
static int opt_kv_heads(lua_State *L, int options, lua_Integer n_head, const char *function) {
    lua_Integer n_kv_head = opt_integer_field(L, options, "n_kv_head", n_head, false, function);
    if (n_kv_head < 1 || n_kv_head > n_head)
        return luaL_error(L, "%s: n_kv_head must be between 1 and n_head %I, got %I", function, n_head, n_kv_head);
    return (int)n_kv_head;
}

/* tc.attention(qkv, n_head, {causal = true, n_kv_head = n_head}). */
static int l_attention(lua_State *L) {
    static const char *const allowed[] = {"causal", "n_kv_head", NULL};
    tc_tensor *qkv = binding_check_tensor(L, 1, "attention");
    if (!lua_isinteger(L, 2))
        return luaL_error(L, "attention: argument 2 (n_head) must be an integer, got %s", luaL_typename(L, 2));
    lua_Integer n_head = lua_tointeger(L, 2);
    if (n_head < 1 || n_head > 1 << 20) return luaL_error(L, "attention: n_head must be >= 1, got %d", (int)n_head);
    int options = binding_check_options(L, 3, "attention", allowed);
    bool causal = opt_boolean_field(L, options, "causal", true, "attention");
    int n_kv_head = opt_kv_heads(L, options, n_head, "attention");
    tc_tensor *out = NULL;
    return push_result(L, tc_attention(qkv, (int)n_head, n_kv_head, causal, &out), &out);
}

/* tc.rope(x, positions, {base = 10000, time_dim = 2, interleaved = false}):
 * x {B, T, H, D} (time_dim 2) or {B, H, T, D} (time_dim 3). */
static int l_rope(lua_State *L) {
    static const char *const allowed[] = {"base", "time_dim", "interleaved", NULL};
    tc_tensor *x = binding_check_tensor(L, 1, "rope"), *positions = binding_check_tensor(L, 2, "rope");
    int options = binding_check_options(L, 3, "rope", allowed);
    double base = opt_number_field(L, options, "base", 10000.0, "rope");
    lua_Integer time_dim = opt_integer_field(L, options, "time_dim", 2, false, "rope");
    if (time_dim != 2 && time_dim != 3)
        return luaL_error(L, "rope: time_dim must be 2 ({B, T, H, D}) or 3 ({B, H, T, D}), got %I", time_dim);
    bool interleaved = opt_boolean_field(L, options, "interleaved", false, "rope");
    tc_tensor *out = NULL;
    return push_result(L, tc_rope(x, positions, (int)time_dim - 1, base, interleaved, &out), &out);
}

/* tc.linear(x, weight, bias_or_nil): x [..., in] @ weight^T + bias, weight
 * [out, in]; one op on the tape. */
static int l_linear(lua_State *L) {
    tc_tensor *x = binding_check_tensor(L, 1, "linear"), *weight = binding_check_tensor(L, 2, "linear");
    tc_tensor *bias = opt_tensor(L, 3, "linear");
    tc_tensor *out = NULL;
    return push_result(L, tc_linear(x, weight, bias, &out), &out);
}

/* tc.linear_gelu(x, weight, bias_or_nil): the tanh GELU of tc.linear, one op. */
static int l_linear_gelu(lua_State *L) {
    tc_tensor *x = binding_check_tensor(L, 1, "linear_gelu"), *weight = binding_check_tensor(L, 2, "linear_gelu");
    tc_tensor *bias = opt_tensor(L, 3, "linear_gelu");
    tc_tensor *out = NULL;
    return push_result(L, tc_linear_gelu(x, weight, bias, &out), &out);
}

/* tc.attention_cached(qkv, k_cache, v_cache, position, n_head, {causal =
 * true, n_kv_head = n_head}): writes the new keys and values into the
 * caches at `position` (0-based count of cached positions) and attends;
 * not recorded. */
static int l_attention_cached(lua_State *L) {
    static const char *const allowed[] = {"causal", "n_kv_head", NULL};
    const char *function = "attention_cached";
    tc_tensor *qkv = binding_check_tensor(L, 1, function);
    tc_tensor *k_cache = binding_check_tensor(L, 2, function), *v_cache = binding_check_tensor(L, 3, function);
    lua_Integer position = check_integer_argument(L, 4, "position", function);
    lua_Integer n_head = check_integer_argument(L, 5, "n_head", function);
    if (n_head < 1 || n_head > 1 << 20)
        return luaL_error(L, "%s: n_head must be between 1 and %d, got %I", function, 1 << 20, n_head);
    int options = binding_check_options(L, 6, function, allowed);
    bool causal = opt_boolean_field(L, options, "causal", true, function);
    int n_kv_head = opt_kv_heads(L, options, n_head, function);
    tc_tensor *out = NULL;
    return push_result(L, tc_attention_cached(qkv, k_cache, v_cache, position, (int)n_head, n_kv_head, causal, &out),
                       &out);
}

/* ---- sampling ----
 * The rules of tricycle.generate's candidates/sample, on a logits tensor:
 * candidates sorted by logit (ties: lower id first), temperature, top-k,
 * then top-p; the same arithmetic in the same order, so the same id comes
 * out for the same uniform number. */

typedef struct scored_id {
    double logit;
    int64_t id;
} scored_id;

static int by_logit_then_id(const void *a, const void *b) {
    const scored_id *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* tc.sample_logits(logits, u, temperature, top_k, top_p) -> 0-based id;
 * temperature defaults to 1, top_k and top_p to off (nil). */
/* An optional number argument (nil: fallback) that is finite. */
static double opt_finite_argument(lua_State *L, int idx, const char *argument, double fallback) {
    if (lua_isnoneornil(L, idx)) return fallback;
    if (lua_type(L, idx) != LUA_TNUMBER)
        luaL_error(L, "sample_logits: argument %d (%s) must be a number, got %s", idx, argument, luaL_typename(L, idx));
    double value = lua_tonumber(L, idx);
    if (!isfinite(value)) luaL_error(L, "sample_logits: %s must be finite, got %f", argument, value);
    return value;
}

static int l_sample_logits(lua_State *L) {
    tc_tensor *logits = binding_check_tensor(L, 1, "sample_logits");
    if (lua_isnoneornil(L, 2)) return luaL_error(L, "sample_logits: argument 2 (u) is required");
    double u = opt_finite_argument(L, 2, "u", 0), temperature = opt_finite_argument(L, 3, "temperature", 1.0);
    lua_Integer top_k = lua_isnoneornil(L, 4) ? 0 : check_integer_argument(L, 4, "top_k", "sample_logits");
    double top_p = opt_finite_argument(L, 5, "top_p", 1.0);
    /* NaN compares false with every bound: each range is checked as it must hold */
    if (!(u >= 0 && u < 1)) return luaL_error(L, "sample_logits: u must be in [0, 1), got %f", u);
    if (!(temperature >= 0)) return luaL_error(L, "sample_logits: temperature must be >= 0, got %f", temperature);
    if (top_k < 0) return luaL_error(L, "sample_logits: top_k must be >= 0 (0 is off), got %I", top_k);
    if (!(top_p > 0 && top_p <= 1)) return luaL_error(L, "sample_logits: top_p must be in (0, 1], got %f", top_p);
    int64_t n = tc_tensor_numel(logits);
    if (n < 1) return luaL_error(L, "generate: empty logits");
    /* One userdata for both buffers, so that an error cannot leak them. */
    double *values = lua_newuserdatauv(L, (size_t)n * (sizeof(double) + sizeof(scored_id)), 0);
    scored_id *order = (scored_id *)(values + n);
    binding_check(L, tc_copy_to_doubles(logits, values, n));
    /* NaN or +inf would make the ordering inconsistent (qsort's comparator
     * must be) and the weights NaN; -inf is a token never drawn. */
    bool finite = false;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(values[i]) || values[i] == INFINITY)
            return luaL_error(L, "generate: logit of id %I is %f; logits must not be NaN or +inf",
                              (lua_Integer)i, values[i]);
        finite = finite || values[i] != -INFINITY;
    }
    if (!finite) return luaL_error(L, "generate: every logit is -inf; there is nothing to draw");
    if (temperature <= 0 || top_k == 1) {
        int64_t best = 0;
        for (int64_t i = 1; i < n; i++)
            if (values[i] > values[best]) best = i;
        lua_pushinteger(L, best);
        return 1;
    }
    for (int64_t i = 0; i < n; i++) order[i] = (scored_id){values[i], i};
    qsort(order, (size_t)n, sizeof *order, by_logit_then_id);
    int64_t keep = top_k > 0 && top_k < n ? top_k : n;
    double top = order[0].logit, total = 0;
    for (int64_t r = 0; r < keep; r++) {
        order[r].logit = exp((order[r].logit - top) / temperature); /* now the weight */
        total += order[r].logit;
    }
    if (top_p < 1) {
        double cumulative = 0;
        int64_t cut = keep;
        for (int64_t r = 0; r < keep; r++) {
            cumulative += order[r].logit / total;
            if (cumulative >= top_p) {
                cut = r + 1;
                break;
            }
        }
        keep = cut;
        total = 0;
        for (int64_t r = 0; r < keep; r++) total += order[r].logit;
    }
    if (keep == 1) {
        lua_pushinteger(L, order[0].id);
        return 1;
    }
    double cumulative = 0;
    for (int64_t r = 0; r < keep; r++) {
        cumulative += order[r].logit / total;
        if (u < cumulative) {
            lua_pushinteger(L, order[r].id);
            return 1;
        }
    }
    lua_pushinteger(L, order[keep - 1].id);
    return 1;
}

/* tc.cross_entropy(logits, targets, {ignore_index = -100}): logits [..., V],
 * targets [...] of 0-based class ids; returns the mean loss (0-dim). */
static int l_cross_entropy(lua_State *L) {
    static const char *const allowed[] = {"ignore_index", NULL};
    tc_tensor *logits = binding_check_tensor(L, 1, "cross_entropy");
    tc_tensor *targets = binding_check_tensor(L, 2, "cross_entropy");
    int options = binding_check_options(L, 3, "cross_entropy", allowed);
    lua_Integer ignore_index = opt_integer_field(L, options, "ignore_index", -100, false, "cross_entropy");
    tc_tensor *out = NULL;
    return push_result(L, tc_cross_entropy(logits, targets, ignore_index, &out), &out);
}

/* tc.adamw_step(param, grad, m, v, {step =, lr =, beta1 =, beta2 =, eps =,
 * weight_decay =}) updates param, m and v in place; step is required and
 * counts from 1; defaults lr 1e-3, betas 0.9 and 0.999, eps 1e-8,
 * weight_decay 0.01 (PyTorch's). Returns param. */
static int l_adamw_step(lua_State *L) {
    static const char *const allowed[] = {"step", "lr", "beta1", "beta2", "eps", "weight_decay", NULL};
    const char *function = "adamw_step";
    tc_tensor *param = binding_check_tensor(L, 1, function), *grad = binding_check_tensor(L, 2, function);
    tc_tensor *m = binding_check_tensor(L, 3, function), *v = binding_check_tensor(L, 4, function);
    if (lua_isnoneornil(L, 5)) return luaL_error(L, "%s: argument 5 (options with step) is required", function);
    int options = binding_check_options(L, 5, function, allowed);
    lua_Integer step = opt_integer_field(L, options, "step", 0, true, function);
    double lr = opt_number_field(L, options, "lr", 1e-3, function);
    double beta1 = opt_number_field(L, options, "beta1", 0.9, function);
    double beta2 = opt_number_field(L, options, "beta2", 0.999, function);
    double eps = opt_number_field(L, options, "eps", 1e-8, function);
    double weight_decay = opt_number_field(L, options, "weight_decay", 0.01, function);
    binding_check(L, tc_adamw_step(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay));
    lua_settop(L, 1);
    return 1;
}

/* Reads entry i (1-based) of the list at idx as a tensor. */
static tc_tensor *list_tensor(lua_State *L, int idx, lua_Integer i, const char *function, const char *list) {
    lua_geti(L, idx, i);
    tc_tensor *t = binding_test_tensor(L, -1);
    if (!t)
        luaL_error(L, "%s: entry %d of %s must be a tensor, got %s", function, (int)i, list, luaL_typename(L, -1));
    lua_pop(L, 1);
    return t;
}

/* tc.adamw_steps(params, grads, ms, vs, steps, {lr =, beta1 =, beta2 =, eps =,
 * weight_decay =}): tc.adamw_step over lists of equal length in one call
 * (steps: a list of integers, one per parameter). */
static int l_adamw_steps(lua_State *L) {
    static const char *const allowed[] = {"lr", "beta1", "beta2", "eps", "weight_decay", NULL};
    static const char *const lists[] = {"params", "grads", "ms", "vs", "steps"};
    const char *function = "adamw_steps";
    for (int a = 1; a <= 5; a++) luaL_checktype(L, a, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    if (n > 1 << 24) return luaL_error(L, "%s: too many parameters (%d)", function, (int)n);
    for (int a = 2; a <= 5; a++)
        if (luaL_len(L, a) != n)
            return luaL_error(L, "%s: %s has %d entries but params has %d", function, lists[a - 1],
                              (int)luaL_len(L, a), (int)n);
    int options = binding_check_options(L, 6, function, allowed);
    double lr = opt_number_field(L, options, "lr", 1e-3, function);
    double beta1 = opt_number_field(L, options, "beta1", 0.9, function);
    double beta2 = opt_number_field(L, options, "beta2", 0.999, function);
    double eps = opt_number_field(L, options, "eps", 1e-8, function);
    double weight_decay = opt_number_field(L, options, "weight_decay", 0.01, function);
    size_t count = (size_t)(n ? n : 1);
    /* One userdata buffer, so that an error below cannot leak it. */
    tc_tensor **tensors = lua_newuserdatauv(L, count * (4 * sizeof(tc_tensor *) + sizeof(int64_t)), 0);
    int64_t *steps = (int64_t *)(tensors + 4 * count);
    for (lua_Integer i = 1; i <= n; i++) {
        for (int a = 0; a < 4; a++)
            tensors[(size_t)a * count + (size_t)(i - 1)] = list_tensor(L, a + 1, i, function, lists[a]);
        lua_geti(L, 5, i);
        if (!lua_isinteger(L, -1))
            return luaL_error(L, "%s: entry %d of steps must be an integer, got %s", function, (int)i,
                              luaL_typename(L, -1));
        steps[i - 1] = lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    binding_check(L, tc_adamw_step_many((int)n, tensors, tensors + count, tensors + 2 * count, tensors + 3 * count,
                                        steps, lr, beta1, beta2, eps, weight_decay));
    return 0;
}

/* tc.sgd_step(param, grad, momentum_buffer_or_nil, {lr =, momentum = 0,
 * dampening = 0, nesterov = false, weight_decay = 0}); lr is required. The
 * momentum buffer starts at zeros. Returns param. */
static int l_sgd_step(lua_State *L) {
    static const char *const allowed[] = {"lr", "momentum", "dampening", "nesterov", "weight_decay", NULL};
    const char *function = "sgd_step";
    tc_tensor *param = binding_check_tensor(L, 1, function), *grad = binding_check_tensor(L, 2, function);
    tc_tensor *buffer = opt_tensor(L, 3, function);
    if (lua_isnoneornil(L, 4)) return luaL_error(L, "%s: argument 4 (options with lr) is required", function);
    int options = binding_check_options(L, 4, function, allowed);
    lua_getfield(L, options, "lr");
    if (lua_isnil(L, -1)) return luaL_error(L, "%s: option lr is required", function);
    lua_pop(L, 1);
    double lr = opt_number_field(L, options, "lr", 0, function);
    double momentum = opt_number_field(L, options, "momentum", 0, function);
    double dampening = opt_number_field(L, options, "dampening", 0, function);
    bool nesterov = opt_boolean_field(L, options, "nesterov", false, function);
    double weight_decay = opt_number_field(L, options, "weight_decay", 0, function);
    binding_check(L, tc_sgd_step(param, grad, buffer, lr, momentum, dampening, nesterov, weight_decay));
    lua_settop(L, 1);
    return 1;
}

/* tc.global_norm({t1, t2, ...}) -> number: sqrt of the sum of squares of
 * every element, in double. */
static int l_global_norm(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    if (n < 0 || n > 1 << 24) return luaL_error(L, "global_norm: expected a list of tensors, got %d entries", (int)n);
    /* A userdata buffer, so that an error below cannot leak it. */
    tc_tensor **tensors = lua_newuserdatauv(L, sizeof *tensors * (size_t)(n ? n : 1), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        tc_tensor *t = binding_test_tensor(L, -1);
        if (!t)
            return luaL_error(L, "global_norm: entry %d of the list must be a tensor, got %s", (int)i,
                              luaL_typename(L, -1));
        tensors[i - 1] = t;
        lua_pop(L, 1);
    }
    double norm;
    binding_check(L, tc_global_norm((int)n, tensors, &norm));
    lua_pushnumber(L, norm);
    return 1;
}

/* tc.scale_(t, factor): t *= factor in place; returns t. */
static int l_scale_(lua_State *L) {
    tc_tensor *t = binding_check_tensor(L, 1, "scale_");
    if (lua_type(L, 2) != LUA_TNUMBER)
        return luaL_error(L, "scale_: argument 2 (factor) must be a number, got %s", luaL_typename(L, 2));
    double factor = lua_tonumber(L, 2);
    /* every element would become NaN (or inf and NaN): a factor computed by mistake */
    if (!isfinite(factor)) return luaL_error(L, "scale_: factor must be finite, got %f", factor);
    binding_check(L, tc_scale_(t, factor));
    lua_settop(L, 1);
    return 1;
}

/* An option that is one integer for both sides or a list {height, width}
 * (the engine checks the ranges). */
static void opt_pair_field(lua_State *L, int options, const char *field, lua_Integer fallback, bool required,
                           const char *function, int64_t pair[2]) {
    int type = options ? lua_getfield(L, options, field) : LUA_TNIL;
    if (type == LUA_TNIL) {
        if (options) lua_pop(L, 1);
        if (required) luaL_error(L, "%s: option %s is required", function, field);
        pair[0] = pair[1] = fallback;
        return;
    }
    if (lua_isinteger(L, -1)) {
        pair[0] = pair[1] = lua_tointeger(L, -1);
    } else if (type == LUA_TTABLE && lua_rawlen(L, -1) == 2) {
        for (int i = 0; i < 2; i++) {
            lua_rawgeti(L, -1, i + 1);
            if (!lua_isinteger(L, -1))
                luaL_error(L, "%s: option %s must be an integer or a list {height, width} of integers, entry %d is %s",
                           function, field, i + 1, lua_type(L, -1) == LUA_TNUMBER ? "a number with a fraction"
                                                                                   : luaL_typename(L, -1));
            pair[i] = lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
    } else {
        luaL_error(L, "%s: option %s must be an integer or a list {height, width} of integers, got %s", function,
                   field, type == LUA_TNUMBER ? "a number with a fraction"
                          : type == LUA_TTABLE ? "a table whose length is not 2" : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
}

/* tc.im2col(x, {kernel_size =, stride = 1, padding = 0, dilation = 1, pad_value = 0, batch_last = false}) */
static int l_im2col(lua_State *L) {
    static const char *const allowed[] = {"kernel_size", "stride", "padding", "dilation", "pad_value", "batch_last",
                                          NULL};
    tc_tensor *x = binding_check_tensor(L, 1, "im2col");
    int options = binding_check_options(L, 2, "im2col", allowed);
    int64_t kernel[2], stride[2], padding[2], dilation[2];
    opt_pair_field(L, options, "kernel_size", 0, true, "im2col", kernel);
    opt_pair_field(L, options, "stride", 1, false, "im2col", stride);
    opt_pair_field(L, options, "padding", 0, false, "im2col", padding);
    opt_pair_field(L, options, "dilation", 1, false, "im2col", dilation);
    double pad_value = opt_number_field(L, options, "pad_value", 0.0, "im2col");
    bool batch_last = opt_boolean_field(L, options, "batch_last", false, "im2col");
    tc_tensor *out = NULL;
    return push_result(L, tc_im2col(x, kernel, stride, padding, dilation, pad_value, batch_last, &out), &out);
}

/* tc.conv2d(x, weight, bias or nil, {stride = 1, padding = 0, dilation = 1, groups = 1}) */
static int l_conv2d(lua_State *L) {
    static const char *const allowed[] = {"stride", "padding", "dilation", "groups", NULL};
    tc_tensor *x = binding_check_tensor(L, 1, "conv2d"), *weight = binding_check_tensor(L, 2, "conv2d");
    tc_tensor *bias = opt_tensor(L, 3, "conv2d");
    int options = binding_check_options(L, 4, "conv2d", allowed);
    int64_t stride[2], padding[2], dilation[2];
    opt_pair_field(L, options, "stride", 1, false, "conv2d", stride);
    opt_pair_field(L, options, "padding", 0, false, "conv2d", padding);
    opt_pair_field(L, options, "dilation", 1, false, "conv2d", dilation);
    lua_Integer groups = opt_integer_field(L, options, "groups", 1, false, "conv2d");
    tc_tensor *out = NULL;
    return push_result(L, tc_conv2d(x, weight, bias, stride, padding, dilation, groups, &out), &out);
}

/* tc.max_pool2d(x, {kernel_size =, stride = kernel_size, padding = 0, dilation = 1}) */
static int l_max_pool2d(lua_State *L) {
    static const char *const allowed[] = {"kernel_size", "stride", "padding", "dilation", NULL};
    tc_tensor *x = binding_check_tensor(L, 1, "max_pool2d");
    int options = binding_check_options(L, 2, "max_pool2d", allowed);
    int64_t kernel[2], stride[2], padding[2], dilation[2];
    opt_pair_field(L, options, "kernel_size", 0, true, "max_pool2d", kernel);
    opt_pair_field(L, options, "stride", 0, false, "max_pool2d", stride);
    if (options && lua_getfield(L, options, "stride") == LUA_TNIL) memcpy(stride, kernel, sizeof stride);
    if (options) lua_pop(L, 1);
    opt_pair_field(L, options, "padding", 0, false, "max_pool2d", padding);
    opt_pair_field(L, options, "dilation", 1, false, "max_pool2d", dilation);
    tc_tensor *out = NULL;
    return push_result(L, tc_max_pool2d(x, kernel, stride, padding, dilation, &out), &out);
}

static const luaL_Reg fused_functions[] = {
    {"layer_norm", l_layer_norm},       {"rms_norm", l_rms_norm},     {"attention", l_attention},
    {"cross_entropy", l_cross_entropy}, {"adamw_step", l_adamw_step}, {"sgd_step", l_sgd_step},
    {"global_norm", l_global_norm},     {"scale_", l_scale_},         {"linear", l_linear},
    {"linear_gelu", l_linear_gelu},     {"adamw_steps", l_adamw_steps}, {"attention_cached", l_attention_cached},
    {"sample_logits", l_sample_logits}, {"rope", l_rope},         {"im2col", l_im2col},
    {"conv2d", l_conv2d},               {"max_pool2d", l_max_pool2d}, {NULL, NULL},
};

void binding_register_fused(lua_State *L, int module_index) {
    lua_pushvalue(L, module_index);
    luaL_setfuncs(L, fused_functions, 0);
    lua_pop(L, 1);
}
