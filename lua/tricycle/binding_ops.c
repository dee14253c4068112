/*
 * binding_ops.c: tensor methods and metamethods, and the module-level ops
 * (cat, stack, einsum, where, embedding). Each function checks its Lua
 * arguments, converts 1-based dims, calls the engine and pushes the result.
 */
#include "binding.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static tc_tensor *self(lua_State *L, const char *function) { return binding_check_tensor(L, 1, function); }

/* Takes the result by address: C leaves the order of argument evaluation
 * open, so the call that fills *out must not race a read of it. */
static int push_result(lua_State *L, const char *function, tc_status status, tc_tensor **out) {
    binding_check_in(L, status, function);
    binding_push_tensor(L, *out);
    return 1;
}

/* ---- metadata ---- */

static int push_shape(lua_State *L, tc_tensor *t) {
    int ndim = tc_tensor_ndim(t);
    const int64_t *shape = tc_tensor_shape(t);
    lua_createtable(L, ndim, 0);
    for (int i = 0; i < ndim; i++) {
        lua_pushinteger(L, shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int m_dim(lua_State *L) {
    lua_pushinteger(L, tc_tensor_ndim(self(L, "dim")));
    return 1;
}

static int m_numel(lua_State *L) {
    lua_pushinteger(L, tc_tensor_numel(self(L, "numel")));
    return 1;
}

static int m_size(lua_State *L) {
    tc_tensor *t = self(L, "size");
    if (lua_isnoneornil(L, 2)) return push_shape(L, t);
    int dim = binding_check_dim(L, 2, "size");
    int ndim = tc_tensor_ndim(t);
    int d = dim < 0 ? dim + ndim : dim;
    if (d < 0 || d >= ndim)
        return luaL_error(L, "size: dim %d is out of range for a tensor with %d dims", (int)lua_tointeger(L, 2), ndim);
    lua_pushinteger(L, tc_tensor_shape(t)[d]);
    return 1;
}

static int m_stride(lua_State *L) {
    tc_tensor *t = self(L, "stride");
    int ndim = tc_tensor_ndim(t);
    lua_createtable(L, ndim, 0);
    for (int i = 0; i < ndim; i++) {
        lua_pushinteger(L, tc_tensor_strides(t)[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int m_is_contiguous(lua_State *L) {
    lua_pushboolean(L, tc_tensor_is_contiguous(self(L, "is_contiguous")));
    return 1;
}

static void push_number(lua_State *L, tc_dtype dtype, double value) {
    if (dtype == TC_BOOL) lua_pushboolean(L, value != 0);
    else if (tc_dtype_is_floating(dtype)) lua_pushnumber(L, value);
    else lua_pushinteger(L, (lua_Integer)value);
}

static bool is_integer_dtype(tc_dtype dtype) { return dtype == TC_INT64 || dtype == TC_INT32 || dtype == TC_UINT8; }

/* An integer element is read as int64, not through a double: int64 values
 * past 2^53 would be rounded, and 2^63 - 1 would round out of range. */
static int m_item(lua_State *L) {
    tc_tensor *t = self(L, "item");
    double value;
    if (is_integer_dtype(tc_tensor_dtype(t)) && tc_tensor_numel(t) == 1) {
        int64_t integer;
        binding_check(L, tc_item_int64(t, &integer));
        lua_pushinteger(L, (lua_Integer)integer);
        return 1;
    }
    binding_check(L, tc_item(t, &value));
    push_number(L, tc_tensor_dtype(t), value);
    return 1;
}

/* Nested tables totable makes beyond the element count: an empty tensor
 * with a huge leading size would otherwise build one table per row. */
#define TOTABLE_EMPTY_TABLES ((int64_t)1 << 24)

static void build_table(lua_State *L, tc_dtype dtype, const int64_t *shape, int ndim, int depth, const double *values,
                        const int64_t *integers, int64_t *position) {
    lua_createtable(L, (int)shape[depth], 0);
    for (int64_t i = 0; i < shape[depth]; i++) {
        if (depth + 1 < ndim) {
            build_table(L, dtype, shape, ndim, depth + 1, values, integers, position);
        } else if (integers) {
            lua_pushinteger(L, integers[(*position)++]);
        } else {
            push_number(L, dtype, values[(*position)++]);
        }
        lua_rawseti(L, -2, i + 1);
    }
}

static int m_totable(lua_State *L) {
    tc_tensor *t = self(L, "totable");
    int64_t n = tc_tensor_numel(t);
    tc_dtype dtype = tc_tensor_dtype(t);
    if (tc_tensor_ndim(t) == 0) return m_item(L);
    int64_t tables = 1, rows = 1;
    for (int d = 0; d + 1 < tc_tensor_ndim(t); d++) {
        rows *= tc_tensor_shape(t)[d]; /* a prefix of a valid shape: within its span */
        if (__builtin_add_overflow(tables, rows, &tables) || tables > TOTABLE_EMPTY_TABLES + n)
            return luaL_error(L, "totable: a tensor of %I elements whose leading dims hold more than %I rows would "
                                 "need too many nested tables",
                              (lua_Integer)n, (lua_Integer)TOTABLE_EMPTY_TABLES);
    }
    bool integral = is_integer_dtype(dtype);
    void *buffer = lua_newuserdatauv(L, sizeof(double) * (size_t)(n ? n : 1), 0);
    if (integral) binding_check(L, tc_copy_to_int64(t, buffer, n));
    else binding_check(L, tc_copy_to_doubles(t, buffer, n));
    int64_t position = 0;
    build_table(L, dtype, tc_tensor_shape(t), tc_tensor_ndim(t), 0, integral ? NULL : buffer,
                integral ? buffer : NULL, &position);
    return 1;
}

/* Raw contiguous bytes of the tensor, for writers. */
static int m_tobytes(lua_State *L) {
    tc_tensor *t = self(L, "tobytes"), *c;
    tc_tensor *host;
    binding_check(L, tc_to_device(t, TC_CPU, &host));
    tc_status status = tc_contiguous(host, &c);
    tc_tensor_release(host);
    binding_check(L, status);
    lua_pushlstring(L, tc_tensor_data(c), (size_t)tc_tensor_numel(c) * tc_dtype_size(tc_tensor_dtype(c)));
    tc_tensor_release(c);
    return 1;
}

/* ---- element-wise ---- */

/* Whether the number at idx is a Lua integer past 2^53 (where a double
 * cannot hold every integer) and `t` is int64: the engine takes scalars as
 * doubles, which would round it (t + (2^53 + 1) would add 2^53), so the
 * callers pass it as a 0-dim int64 tensor instead. */
static bool needs_exact_int64(lua_State *L, int idx, const tc_tensor *t) {
    if (!lua_isinteger(L, idx) || tc_tensor_dtype(t) != TC_INT64) return false;
    lua_Integer number = lua_tointeger(L, idx), limit = (lua_Integer)1 << 53;
    return number > limit || number < -limit;
}

/* The Lua integer at idx as a 0-dim int64 tensor on t's device, from its
 * bits (an owned reference). */
static tc_status exact_int64(lua_State *L, int idx, const tc_tensor *t, tc_tensor **out) {
    int64_t bits = (int64_t)lua_tointeger(L, idx);
    tc_tensor *scalar;
    tc_status created = tc_from_data(tc_tensor_context(t), TC_INT64, 0, NULL, &bits, TC_INT64, &scalar);
    if (created != TC_OK) return created;
    if (tc_tensor_device(t) == TC_CPU) {
        *out = scalar;
        return TC_OK;
    }
    tc_status status = tc_to_device(scalar, tc_tensor_device(t), out);
    tc_tensor_release(scalar);
    return status;
}

static int binary_exact_int64(lua_State *L, tc_binary_op op, tc_tensor *t, int number_index, bool number_first) {
    tc_tensor *scalar, *out = NULL;
    binding_check(L, exact_int64(L, number_index, t, &scalar));
    tc_status status = number_first ? tc_binary(op, scalar, t, &out) : tc_binary(op, t, scalar, &out);
    tc_tensor_release(scalar);
    return push_result(L, tc_binary_op_name(op), status, &out);
}

static int binary(lua_State *L, tc_binary_op op) {
    const char *name = tc_binary_op_name(op);
    tc_tensor *a_tensor = binding_test_tensor(L, 1), *b_tensor = binding_test_tensor(L, 2);
    tc_tensor *out;
    if (!a_tensor && !b_tensor) {
        binding_check_tensor(L, 1, name);
    }
    if (a_tensor && b_tensor) return push_result(L, name, tc_binary(op, a_tensor, b_tensor, &out), &out);
    int number_index = a_tensor ? 2 : 1;
    if (lua_type(L, number_index) != LUA_TNUMBER && lua_type(L, number_index) != LUA_TBOOLEAN) {
        if (luaL_testudata(L, number_index, TENSOR_METATABLE))
            binding_check_tensor(L, number_index, name); /* closed tensor */
        return luaL_error(L, "%s: argument %d must be a tensor or a number, got %s", name, number_index,
                          luaL_typename(L, number_index));
    }
    double value = lua_type(L, number_index) == LUA_TBOOLEAN ? lua_toboolean(L, number_index)
                                                              : lua_tonumber(L, number_index);
    tc_tensor *t = a_tensor ? a_tensor : b_tensor;
    if (!a_tensor) binding_check_tensor(L, 2, name);
    else binding_check_tensor(L, 1, name);
    if (needs_exact_int64(L, number_index, t)) return binary_exact_int64(L, op, t, number_index, a_tensor == NULL);
    return push_result(L, name, tc_binary_scalar(op, t, value, a_tensor == NULL, &out), &out);
}

/* The methods op_list.h marks TC_OP_METHOD, one closure per op: its enum
 * value is the upvalue. */
static int binary_method(lua_State *L) { return binary(L, (tc_binary_op)lua_tointeger(L, lua_upvalueindex(1))); }

static int unary(lua_State *L, tc_unary_op op) {
    tc_tensor *out;
    return push_result(L, tc_unary_op_name(op), tc_unary(op, self(L, tc_unary_op_name(op)), &out), &out);
}

/* A unary method takes the tensor alone: an argument would be ignored (t:round(2) is not round to 2 decimals).
 * Lua calls __unm (neg) with the operand twice. */
static int unary_method(lua_State *L) {
    tc_unary_op op = (tc_unary_op)lua_tointeger(L, lua_upvalueindex(1));
    if (lua_gettop(L) > 1 && !(lua_gettop(L) == 2 && lua_rawequal(L, 1, 2)))
        return luaL_error(L, "%s: takes no argument besides the tensor, got %d more (argument 2 a %s)",
                          tc_unary_op_name(op), lua_gettop(L) - 1, luaL_typename(L, 2));
    return unary(L, op);
}

/* gelu() is exact; gelu("tanh") is GPT-2's approximation. */
static int m_gelu(lua_State *L) {
    const char *approximate = luaL_optstring(L, 2, "none");
    if (strcmp(approximate, "tanh") == 0) return unary(L, TC_GELU_TANH);
    if (strcmp(approximate, "none") != 0)
        return luaL_error(L, "gelu: approximate must be \"none\" or \"tanh\", got \"%s\"", approximate);
    return unary(L, TC_GELU);
}

/* A bound of clamp: nil for none. NaN is refused: the engine reads it as
 * "no bound", which a NaN computed by mistake must not silently become. */
static double clamp_bound(lua_State *L, int idx, const char *name) {
    if (lua_isnoneornil(L, idx)) return NAN;
    if (lua_type(L, idx) != LUA_TNUMBER)
        luaL_error(L, "clamp: %s must be a number or nil, got %s", name, luaL_typename(L, idx));
    double bound = lua_tonumber(L, idx);
    if (isnan(bound)) luaL_error(L, "clamp: %s is NaN (give nil for no bound)", name);
    return bound;
}

static int m_clamp(lua_State *L) {
    tc_tensor *t = self(L, "clamp"), *out;
    double min = clamp_bound(L, 2, "min"), max = clamp_bound(L, 3, "max");
    return push_result(L, "clamp", tc_clamp(t, min, max, &out), &out);
}

static int m_masked_fill(lua_State *L) {
    tc_tensor *t = self(L, "masked_fill"), *out;
    tc_tensor *mask = binding_check_tensor(L, 2, "masked_fill");
    double value = luaL_checknumber(L, 3);
    if (!needs_exact_int64(L, 3, t)) return push_result(L, "masked_fill", tc_masked_fill(t, mask, value, &out), &out);
    /* masked_fill with 0 checks the mask as for any value; where puts the
     * exact value in (see needs_exact_int64) */
    tc_tensor *checked, *scalar = NULL;
    binding_check(L, tc_masked_fill(t, mask, 0, &checked));
    tc_status status = exact_int64(L, 3, t, &scalar);
    if (status == TC_OK) status = tc_where(mask, scalar, checked, &out);
    tc_tensor_release(checked);
    tc_tensor_release(scalar);
    return push_result(L, "masked_fill", status, &out);
}

/* where(cond, a, b): a and b may be numbers. */
static int f_where(lua_State *L) {
    tc_tensor *cond = binding_check_tensor(L, 1, "where");
    tc_tensor *like = binding_test_tensor(L, 2) ? binding_test_tensor(L, 2) : binding_test_tensor(L, 3);
    if (!like) return luaL_error(L, "where: at least one of arguments 2 and 3 must be a tensor");
    tc_tensor *a = binding_tensor_or_scalar(L, 2, like, "where");
    tc_tensor *b = binding_tensor_or_scalar(L, 3, like, "where");
    tc_tensor *out;
    tc_status status = tc_where(cond, a, b, &out);
    tc_tensor_release(a);
    tc_tensor_release(b);
    return push_result(L, "where", status, &out);
}

/* ---- reductions ---- */

/* Reads dims from a number, a table of numbers, or nil (all dims). */
static int read_dims(lua_State *L, int idx, int *dims, const char *function) {
    if (lua_isnoneornil(L, idx)) return 0;
    if (lua_istable(L, idx)) {
        int n = (int)luaL_len(L, idx);
        if (n > TC_MAX_DIMS) luaL_error(L, "%s: at most %d dims", function, TC_MAX_DIMS);
        for (int i = 0; i < n; i++) {
            lua_geti(L, idx, i + 1);
            dims[i] = binding_check_dim(L, lua_gettop(L), function);
            lua_pop(L, 1);
        }
        if (n == 0) luaL_error(L, "%s: the list of dims is empty", function);
        return n;
    }
    dims[0] = binding_check_dim(L, idx, function);
    return 1;
}

static int reduce(lua_State *L, tc_reduce_op op, const char *name) {
    tc_tensor *t = self(L, name), *out;
    int dims[TC_MAX_DIMS];
    int n = read_dims(L, 2, dims, name);
    bool keepdim = lua_toboolean(L, 3);
    return push_result(L, name, tc_reduce(op, t, n, dims, keepdim, &out), &out);
}

static int reduce_method(lua_State *L) {
    tc_reduce_op op = (tc_reduce_op)lua_tointeger(L, lua_upvalueindex(1));
    return reduce(L, op, tc_op_at(TC_OP_SUM + op)->name);
}

/* max()/min() give the value; with a dim they also give the 0-based indices. */
static int extreme(lua_State *L, tc_reduce_op op, tc_reduce_op arg_op, const char *name) {
    if (lua_isnoneornil(L, 2)) return reduce(L, op, name);
    if (binding_test_tensor(L, 2)) return binary(L, op == TC_REDUCE_MAX ? TC_MAXIMUM : TC_MINIMUM);
    /* Fix the arguments at self, dim, keepdim: the values pushed by the first
     * reduce must not be read as the second one's keepdim. */
    lua_settop(L, 3);
    if (lua_istable(L, 2) && luaL_len(L, 2) > 1)
        return luaL_error(L, "%s: over a dim it gives values and indices, so it takes one dim, got %I", name,
                          (lua_Integer)luaL_len(L, 2));
    reduce(L, op, name);
    reduce(L, arg_op, name);
    return 2;
}

static int m_max(lua_State *L) { return extreme(L, TC_REDUCE_MAX, TC_REDUCE_ARGMAX, "max"); }
static int m_min(lua_State *L) { return extreme(L, TC_REDUCE_MIN, TC_REDUCE_ARGMIN, "min"); }

/* The options table at idx (0 when absent); raises an error for a key that is
 * not in `allowed` (NULL-terminated). */
int binding_check_options(lua_State *L, int idx, const char *function, const char *const *allowed) {
    if (lua_isnoneornil(L, idx)) return 0;
    if (!lua_istable(L, idx))
        luaL_error(L, "%s: argument %d (options) must be a table, got %s", function, idx, luaL_typename(L, idx));
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        bool known = false;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (const char *const *name = allowed; *name && !known; name++)
                known = strcmp(*name, lua_tostring(L, -1)) == 0;
        if (!known) {
            luaL_Buffer names;
            luaL_buffinit(L, &names);
            for (const char *const *name = allowed; *name; name++) {
                if (name != allowed) luaL_addstring(&names, ", ");
                luaL_addstring(&names, *name);
            }
            luaL_pushresult(&names);
            const char *key = luaL_tolstring(L, -2, NULL);
            luaL_error(L, "%s: unknown option '%s' (valid: %s)", function, key, lua_tostring(L, -2));
        }
    }
    return idx;
}

/* var(dims, {correction = 1, keepdim = false}) or var(dims, keepdim): correction an integer from 0 to INT_MAX,
 * keepdim a boolean. */
static int m_var(lua_State *L) {
    tc_tensor *t = self(L, "var"), *out;
    int dims[TC_MAX_DIMS];
    int n = read_dims(L, 2, dims, "var");
    int correction = 1;
    bool keepdim = false;
    static const char *const var_options[] = {"correction", "keepdim", NULL};
    if (lua_istable(L, 3)) {
        binding_check_options(L, 3, "var", var_options);
        if (lua_getfield(L, 3, "correction") != LUA_TNIL) {
            lua_Integer value = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : -1;
            if (value < 0 || value > INT_MAX)
                return luaL_error(L, "var: correction must be an integer from 0 to %d, got %s", INT_MAX,
                                  luaL_tolstring(L, -1, NULL));
            correction = (int)value;
        }
        int keepdim_type = lua_getfield(L, 3, "keepdim");
        if (keepdim_type != LUA_TNIL && keepdim_type != LUA_TBOOLEAN)
            return luaL_error(L, "var: keepdim must be a boolean, got %s", luaL_typename(L, -1));
        keepdim = lua_toboolean(L, -1);
        lua_pop(L, 2);
    } else if (!lua_isnoneornil(L, 3) && !lua_isboolean(L, 3)) {
        return luaL_error(L, "var: argument 3 must be an options table {correction =, keepdim =} or keepdim, got %s",
                          luaL_typename(L, 3));
    } else {
        keepdim = lua_toboolean(L, 3);
    }
    return push_result(L, "var", tc_var(t, n, dims, correction, keepdim, &out), &out);
}

/* ---- linear algebra and nn ---- */

static int m_matmul(lua_State *L) {
    tc_tensor *a = self(L, "matmul"), *b = binding_check_tensor(L, 2, "matmul"), *out;
    return push_result(L, "matmul", tc_matmul(a, b, &out), &out);
}

static int m_softmax(lua_State *L) {
    tc_tensor *t = self(L, "softmax"), *out;
    return push_result(L, "softmax", tc_softmax(t, binding_check_dim(L, 2, "softmax"), &out), &out);
}

static int m_log_softmax(lua_State *L) {
    tc_tensor *t = self(L, "log_softmax"), *out;
    return push_result(L, "log_softmax", tc_log_softmax(t, binding_check_dim(L, 2, "log_softmax"), &out), &out);
}

static int m_dropout(lua_State *L) {
    tc_tensor *t = self(L, "dropout"), *out;
    double p = luaL_checknumber(L, 2);
    bool training = lua_isnoneornil(L, 3) ? true : lua_toboolean(L, 3);
    return push_result(L, "dropout", tc_dropout(t, p, training, &out), &out);
}

/* einsum(equation, t1, t2, ...) or einsum(equation, {t1, t2, ...}) */
static int f_einsum(lua_State *L) {
    const char *equation = luaL_checkstring(L, 1);
    tc_tensor *operands[32];
    int n = 0;
    if (lua_istable(L, 2)) {
        n = (int)luaL_len(L, 2);
        if (n > 32) return luaL_error(L, "einsum: at most 32 operands");
        for (int i = 0; i < n; i++) {
            lua_geti(L, 2, i + 1);
            operands[i] = binding_check_tensor(L, lua_gettop(L), "einsum");
            lua_pop(L, 1);
        }
    } else {
        n = lua_gettop(L) - 1;
        if (n > 32) return luaL_error(L, "einsum: at most 32 operands");
        for (int i = 0; i < n; i++) operands[i] = binding_check_tensor(L, i + 2, "einsum");
    }
    if (n == 0) return luaL_error(L, "einsum: no operands for equation '%s'", equation);
    tc_tensor *out;
    return push_result(L, "einsum", tc_einsum(equation, n, operands, &out), &out);
}

static int list_of_tensors(lua_State *L, int idx, tc_tensor **tensors, int capacity, const char *function) {
    luaL_checktype(L, idx, LUA_TTABLE);
    int n = (int)luaL_len(L, idx);
    if (n == 0) luaL_error(L, "%s: the list of tensors is empty", function);
    if (n > capacity) luaL_error(L, "%s: at most %d tensors", function, capacity);
    for (int i = 0; i < n; i++) {
        lua_geti(L, idx, i + 1);
        tc_tensor *t = binding_test_tensor(L, -1);
        if (!t)
            luaL_error(L, "%s: entry %d of the list is a %s, expected a tensor", function, i + 1, luaL_typename(L, -1));
        tensors[i] = t;
        lua_pop(L, 1);
    }
    return n;
}

static int f_cat(lua_State *L) {
    tc_tensor *tensors[256], *out;
    int n = list_of_tensors(L, 1, tensors, 256, "cat");
    int dim = lua_isnoneornil(L, 2) ? 0 : binding_check_dim(L, 2, "cat");
    return push_result(L, "cat", tc_cat(n, tensors, dim, &out), &out);
}

static int f_stack(lua_State *L) {
    tc_tensor *tensors[256], *out;
    int n = list_of_tensors(L, 1, tensors, 256, "stack");
    int dim = lua_isnoneornil(L, 2) ? 0 : binding_check_dim(L, 2, "stack");
    return push_result(L, "stack", tc_stack(n, tensors, dim, &out), &out);
}

static int f_embedding(lua_State *L) {
    tc_tensor *weight = binding_check_tensor(L, 1, "embedding"), *ids = binding_check_tensor(L, 2, "embedding"), *out;
    return push_result(L, "embedding", tc_embedding(weight, ids, &out), &out);
}

static int m_gather(lua_State *L) {
    tc_tensor *t = self(L, "gather"), *out;
    int dim = binding_check_dim(L, 2, "gather");
    tc_tensor *index = binding_check_tensor(L, 3, "gather");
    return push_result(L, "gather", tc_gather(t, dim, index, &out), &out);
}

static int m_index_select(lua_State *L) {
    tc_tensor *t = self(L, "index_select"), *out;
    int dim = binding_check_dim(L, 2, "index_select");
    tc_tensor *index = binding_check_tensor(L, 3, "index_select");
    return push_result(L, "index_select", tc_index_select(t, dim, index, &out), &out);
}

/* t:scatter_add(dim, index, src) and t:index_add(dim, index, src) (index_add's alpha is tricycle.lua's). */
static int summed_into(lua_State *L, const char *name,
                       tc_status (*op)(tc_tensor *, int, tc_tensor *, tc_tensor *, tc_tensor **)) {
    tc_tensor *t = self(L, name), *out;
    int dim = binding_check_dim(L, 2, name);
    tc_tensor *index = binding_check_tensor(L, 3, name);
    tc_tensor *src = binding_check_tensor(L, 4, name);
    return push_result(L, name, op(t, dim, index, src, &out), &out);
}

static int m_scatter_add(lua_State *L) { return summed_into(L, "scatter_add", tc_scatter_add); }
static int m_index_add(lua_State *L) { return summed_into(L, "index_add", tc_index_add); }

/* t:sort(dim, descending) and t:topk(k, dim, largest): the engine's, under tricycle.selection's methods, which
 * read the options tables and return values, indices. */
static int push_pair(lua_State *L, const char *function, tc_status status, tc_tensor **values, tc_tensor **indices) {
    binding_check_in(L, status, function);
    binding_push_tensor(L, *values);
    binding_push_tensor(L, *indices);
    return 2;
}

static int m_sort(lua_State *L) {
    tc_tensor *t = self(L, "sort"), *values, *indices;
    int dim = binding_check_dim(L, 2, "sort");
    bool descending = lua_toboolean(L, 3);
    return push_pair(L, "sort", tc_sort(t, dim, descending, &values, &indices), &values, &indices);
}

static int m_topk(lua_State *L) {
    tc_tensor *t = self(L, "topk"), *values, *indices;
    lua_Integer k = luaL_checkinteger(L, 2);
    int dim = binding_check_dim(L, 3, "topk");
    bool largest = lua_toboolean(L, 4);
    return push_pair(L, "topk", tc_topk(t, (int64_t)k, dim, largest, &values, &indices), &values, &indices);
}

/* ---- views ---- */

static int m_reshape(lua_State *L) {
    tc_tensor *t = self(L, "reshape"), *out;
    int64_t shape[TC_MAX_DIMS];
    int n = binding_check_shape(L, 2, shape, "reshape");
    return push_result(L, "reshape", tc_reshape(t, n, shape, &out), &out);
}

static int m_view(lua_State *L) {
    tc_tensor *t = self(L, "view"), *out;
    int64_t shape[TC_MAX_DIMS];
    int n = binding_check_shape(L, 2, shape, "view");
    return push_result(L, "view", tc_view(t, n, shape, &out), &out);
}

static int m_expand(lua_State *L) {
    tc_tensor *t = self(L, "expand"), *out;
    int64_t shape[TC_MAX_DIMS];
    int n = binding_check_shape(L, 2, shape, "expand");
    return push_result(L, "expand", tc_expand(t, n, shape, &out), &out);
}

static int m_transpose(lua_State *L) {
    tc_tensor *t = self(L, "transpose"), *out;
    int a = lua_isnoneornil(L, 2) ? -2 : binding_check_dim(L, 2, "transpose");
    int b = lua_isnoneornil(L, 3) ? -1 : binding_check_dim(L, 3, "transpose");
    return push_result(L, "transpose", tc_transpose(t, a, b, &out), &out);
}

static int m_permute(lua_State *L) {
    tc_tensor *t = self(L, "permute"), *out;
    int dims[TC_MAX_DIMS], n = 0;
    if (lua_istable(L, 2)) {
        n = read_dims(L, 2, dims, "permute");
    } else {
        for (int i = 2; i <= lua_gettop(L) && n < TC_MAX_DIMS; i++) dims[n++] = binding_check_dim(L, i, "permute");
    }
    return push_result(L, "permute", tc_permute(t, n, dims, &out), &out);
}

/* narrow(dim, start, length): start is 1-based (negative from the end). */
static int m_narrow(lua_State *L) {
    tc_tensor *t = self(L, "narrow"), *out;
    int dim = binding_check_dim(L, 2, "narrow");
    lua_Integer start = luaL_checkinteger(L, 3), length = luaL_checkinteger(L, 4);
    int d = dim < 0 ? dim + tc_tensor_ndim(t) : dim;
    if (start == 0) return luaL_error(L, "narrow: start 0 does not exist; positions are 1-based");
    if (start < 0 && d >= 0 && d < tc_tensor_ndim(t)) start += tc_tensor_shape(t)[d] + 1;
    return push_result(L, "narrow", tc_narrow(t, dim, start - 1, length, &out), &out);
}

/* select(dim, index): index is 1-based (negative from the end). */
static int m_select(lua_State *L) {
    tc_tensor *t = self(L, "select"), *out;
    int dim = binding_check_dim(L, 2, "select");
    lua_Integer index = luaL_checkinteger(L, 3);
    if (index == 0) return luaL_error(L, "select: index 0 does not exist; positions are 1-based");
    return push_result(L, "select", tc_select(t, dim, index > 0 ? index - 1 : index, &out), &out);
}

static int m_squeeze(lua_State *L) {
    tc_tensor *t = self(L, "squeeze"), *out;
    if (!lua_isnoneornil(L, 2))
        return push_result(L, "squeeze", tc_squeeze(t, binding_check_dim(L, 2, "squeeze"), &out), &out);
    int64_t shape[TC_MAX_DIMS];
    int n = 0;
    for (int i = 0; i < tc_tensor_ndim(t); i++)
        if (tc_tensor_shape(t)[i] != 1) shape[n++] = tc_tensor_shape(t)[i];
    return push_result(L, "squeeze", tc_reshape(t, n, shape, &out), &out);
}

static int m_unsqueeze(lua_State *L) {
    tc_tensor *t = self(L, "unsqueeze"), *out;
    return push_result(L, "unsqueeze", tc_unsqueeze(t, binding_check_dim(L, 2, "unsqueeze"), &out), &out);
}

static int m_flatten(lua_State *L) {
    tc_tensor *t = self(L, "flatten"), *out;
    int start = lua_isnoneornil(L, 2) ? 0 : binding_check_dim(L, 2, "flatten");
    int end = lua_isnoneornil(L, 3) ? -1 : binding_check_dim(L, 3, "flatten");
    return push_result(L, "flatten", tc_flatten(t, start, end, &out), &out);
}

static int m_contiguous(lua_State *L) {
    tc_tensor *t = self(L, "contiguous"), *out;
    return push_result(L, "contiguous", tc_contiguous(t, &out), &out);
}

static int m_clone(lua_State *L) {
    tc_tensor *t = self(L, "clone"), *out;
    return push_result(L, "clone", tc_clone(t, &out), &out);
}

static int m_detach(lua_State *L) {
    tc_tensor *t = self(L, "detach"), *out;
    return push_result(L, "detach", tc_detach(t, &out), &out);
}

/* to(dtype) or to(device) */
static int m_to(lua_State *L) {
    tc_tensor *t = self(L, "to"), *out;
    if (lua_type(L, 2) != LUA_TSTRING)
        return luaL_error(L, "to: expects a dtype or device name (\"float64\", \"cuda\", ...), got %s",
                          luaL_typename(L, 2));
    const char *target = lua_tostring(L, 2);
    tc_dtype dtype;
    if (tc_dtype_from_name(target, &dtype)) return push_result(L, "to", tc_to_dtype(t, dtype, &out), &out);
    if (strcmp(target, "cpu") == 0) return push_result(L, "to", tc_to_device(t, TC_CPU, &out), &out);
    if (strcmp(target, "cuda") == 0) return push_result(L, "to", tc_to_device(t, TC_CUDA, &out), &out);
    return luaL_error(L, "to: '%s' is neither a dtype nor a device (cpu, cuda)", target);
}

/* ---- autograd and in-place updates ---- */

static int m_zero_grad(lua_State *L) {
    binding_check(L, tc_tensor_set_grad(self(L, "zero_grad"), NULL));
    return 0;
}

static int m_requires_grad_(lua_State *L) {
    tc_tensor *t = self(L, "requires_grad_");
    binding_check(L, tc_tensor_set_requires_grad(t, lua_isnoneornil(L, 2) ? true : lua_toboolean(L, 2)));
    lua_settop(L, 1);
    return 1;
}

static int m_copy_(lua_State *L) {
    tc_tensor *t = self(L, "copy_");
    binding_check(L, tc_copy_(t, binding_check_tensor(L, 2, "copy_")));
    lua_settop(L, 1);
    return 1;
}

static int m_fill_(lua_State *L) {
    tc_tensor *t = self(L, "fill_");
    double value = luaL_checknumber(L, 2);
    if (!needs_exact_int64(L, 2, t)) {
        binding_check(L, tc_fill_(t, value));
    } else { /* copied from an exact 0-dim tensor (see needs_exact_int64) */
        tc_tensor *scalar;
        binding_check(L, exact_int64(L, 2, t, &scalar));
        tc_status status = tc_copy_(t, scalar);
        tc_tensor_release(scalar);
        binding_check(L, status);
    }
    lua_settop(L, 1);
    return 1;
}

static int m_storage_bytes(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)tc_tensor_storage_bytes(self(L, "storage_bytes")));
    return 1;
}

/* ---- metamethods ---- */

/* __gc, __close and t:free(): releases the tensor's reference now, on every
 * Lua (free is the plain form of 5.4's `local t <close> = ...`); a later use
 * is an error saying the tensor was closed, a second free does nothing. */
static int mm_gc(lua_State *L) {
    lua_tensor *box = luaL_checkudata(L, 1, TENSOR_METATABLE);
    tc_tensor_release(box->tensor);
    box->tensor = NULL;
    return 0;
}

static int mm_len(lua_State *L) {
    tc_tensor *t = self(L, "#");
    if (tc_tensor_ndim(t) == 0) return luaL_error(L, "#: a 0-dim tensor has no length");
    lua_pushinteger(L, tc_tensor_shape(t)[0]);
    return 1;
}

static int field(lua_State *L, tc_tensor *t, const char *key) {
    if (strcmp(key, "shape") == 0) return push_shape(L, t);
    if (strcmp(key, "dtype") == 0) {
        lua_pushstring(L, tc_dtype_name(tc_tensor_dtype(t)));
        return 1;
    }
    if (strcmp(key, "device") == 0) {
        lua_pushstring(L, tc_device_name(tc_tensor_device(t)));
        return 1;
    }
    if (strcmp(key, "requires_grad") == 0) {
        lua_pushboolean(L, tc_tensor_requires_grad(t));
        return 1;
    }
    if (strcmp(key, "grad") == 0) {
        tc_tensor *grad = tc_tensor_grad(t);
        if (!grad) {
            lua_pushnil(L);
            return 1;
        }
        tc_tensor_retain(grad);
        binding_push_tensor(L, grad);
        return 1;
    }
    if (strcmp(key, "is_leaf") == 0) {
        lua_pushboolean(L, tc_tensor_is_leaf(t));
        return 1;
    }
    if (strcmp(key, "grad_fn") == 0) {
        const char *name = tc_tensor_grad_fn_name(t);
        if (name) lua_pushstring(L, name);
        else lua_pushnil(L);
        return 1;
    }
    if (strcmp(key, "ndim") == 0) {
        lua_pushinteger(L, tc_tensor_ndim(t));
        return 1;
    }
    if (strcmp(key, "data") == 0) { /* as t:detach() */
        tc_tensor *out;
        return push_result(L, "data", tc_detach(t, &out), &out);
    }
    /* not a field: the methods table's own __index, where the Lua library
     * installs the methods it loads on first use */
    lua_pushstring(L, key);
    lua_gettable(L, lua_upvalueindex(1));
    return 1;
}

/* Calls the tensor metatable's field `handler` (set by tricycle.selection:
 * Torch7 ranges and masks) with the metamethod's `arguments` arguments and
 * returns its `results`. */
static int index_handler(lua_State *L, const char *handler, int arguments, int results) {
    if (!lua_getmetatable(L, 1) || lua_getfield(L, -1, handler) != LUA_TFUNCTION)
        return luaL_error(L, "tensor: cannot index a tensor with a %s", luaL_typename(L, 2));
    for (int i = 1; i <= arguments; i++)
        lua_pushvalue(L, i);
    lua_call(L, arguments, results);
    return results;
}

/* t.key: methods first, then fields; t[i] selects along the first dim. */
static int mm_index(lua_State *L) {
    if (lua_type(L, 2) == LUA_TSTRING) {
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
        lua_pop(L, 1);
        lua_tensor *box = luaL_checkudata(L, 1, TENSOR_METATABLE);
        if (!box->tensor) return luaL_error(L, "tensor: field '%s' of a tensor that was closed", lua_tostring(L, 2));
        return field(L, box->tensor, lua_tostring(L, 2));
    }
    if (lua_isinteger(L, 2)) {
        tc_tensor *t = self(L, "[]"), *out;
        lua_Integer index = lua_tointeger(L, 2);
        if (tc_tensor_ndim(t) == 0) return luaL_error(L, "[]: a 0-dim tensor cannot be indexed");
        if (index == 0) return luaL_error(L, "[]: index 0 does not exist; positions are 1-based");
        return push_result(L, "[]", tc_select(t, 0, index > 0 ? index - 1 : index, &out), &out);
    }
    if (lua_type(L, 2) == LUA_TTABLE || lua_type(L, 2) == LUA_TUSERDATA) return index_handler(L, "__index_by", 2, 1);
    return luaL_error(L, "tensor: cannot index a tensor with a %s", luaL_typename(L, 2));
}

/* t.data = source, PyTorch's `.data` assignment: the Lua object t then
 * holds source's values (sharing its storage), dtype, device and shape. It
 * keeps its identity and requires_grad, so whoever holds it (an optimiser,
 * another module) sees the change, and drops its gradient. Only a leaf's:
 * an op's result belongs to its graph. */
static int set_data(lua_State *L) {
    lua_tensor *box = luaL_checkudata(L, 1, TENSOR_METATABLE);
    tc_tensor *t = box->tensor;
    tc_tensor *source = binding_check_tensor(L, 3, "data");
    if (!tc_tensor_is_leaf(t))
        return luaL_error(L, "data: only a leaf tensor's data can be replaced (this one is the result of '%s')",
                          tc_tensor_grad_fn_name(t));
    bool requires_grad = tc_tensor_requires_grad(t);
    if (requires_grad && !tc_dtype_is_floating(tc_tensor_dtype(source)))
        return luaL_error(L, "data: a tensor that requires grad holds float32 or float64 data, got %s",
                          tc_dtype_name(tc_tensor_dtype(source)));
    tc_tensor *replacement;
    binding_check(L, tc_detach(source, &replacement));
    tc_status status = tc_tensor_set_requires_grad(replacement, requires_grad);
    if (status != TC_OK) {
        tc_tensor_release(replacement);
        binding_check(L, status);
    }
    tc_tensor_move_grad_hook(t, replacement); /* the hook belongs to the Lua object, which stays */
    box->tensor = replacement;
    tc_tensor_release(t);
    return 0;
}

static int mm_newindex(lua_State *L) {
    tc_tensor *t = self(L, "tensor");
    if (lua_type(L, 2) != LUA_TSTRING) return index_handler(L, "__newindex_by", 3, 0);
    const char *key = luaL_checkstring(L, 2);
    if (strcmp(key, "data") == 0) return set_data(L);
    if (strcmp(key, "grad") == 0) {
        tc_tensor *grad = lua_isnil(L, 3) ? NULL : binding_check_tensor(L, 3, "grad");
        binding_check(L, tc_tensor_set_grad(t, grad));
        return 0;
    }
    if (strcmp(key, "requires_grad") == 0) {
        binding_check(L, tc_tensor_set_requires_grad(t, lua_toboolean(L, 3)));
        return 0;
    }
    return luaL_error(L, "tensor: field '%s' cannot be assigned (only data, grad and requires_grad)", key);
}

static int mm_tostring_plain(lua_State *L) {
    lua_tensor *box = luaL_checkudata(L, 1, TENSOR_METATABLE);
    if (!box->tensor) {
        lua_pushstring(L, "tensor(closed)");
        return 1;
    }
    char shape[128];
    size_t used = 0;
    for (int i = 0; i < tc_tensor_ndim(box->tensor) && used < sizeof shape; i++)
        used += (size_t)snprintf(shape + used, sizeof shape - used, i ? ", %lld" : "%lld",
                                 (long long)tc_tensor_shape(box->tensor)[i]);
    if (!used) shape[0] = '\0';
    lua_pushfstring(L, "tensor(shape={%s}, dtype=%s)", shape, tc_dtype_name(tc_tensor_dtype(box->tensor)));
    return 1;
}

static const luaL_Reg methods[] = {
    {"dim", m_dim},
    {"numel", m_numel},
    {"size", m_size},
    {"stride", m_stride},
    {"is_contiguous", m_is_contiguous},
    {"item", m_item},
    {"totable", m_totable},
    {"tobytes", m_tobytes},
    {"gelu", m_gelu},
    {"clamp", m_clamp},
    {"masked_fill", m_masked_fill},
    {"max", m_max},
    {"min", m_min},
    {"var", m_var},
    {"matmul", m_matmul},
    {"softmax", m_softmax},
    {"log_softmax", m_log_softmax},
    {"dropout", m_dropout},
    {"gather", m_gather},
    {"index_select", m_index_select},
    {"scatter_add", m_scatter_add},
    {"index_add", m_index_add},
    {"sort", m_sort},
    {"topk", m_topk},
    {"reshape", m_reshape},
    {"view", m_view},
    {"expand", m_expand},
    {"transpose", m_transpose},
    {"permute", m_permute},
    {"narrow", m_narrow},
    {"select", m_select},
    {"squeeze", m_squeeze},
    {"unsqueeze", m_unsqueeze},
    {"flatten", m_flatten},
    {"contiguous", m_contiguous},
    {"clone", m_clone},
    {"detach", m_detach},
    {"to", m_to},
    {"zero_grad", m_zero_grad},
    {"requires_grad_", m_requires_grad_},
    {"copy_", m_copy_},
    {"fill_", m_fill_},
    {"storage_bytes", m_storage_bytes},
    {NULL, NULL},
};

static const luaL_Reg module_ops[] = {
    {"where", f_where},   {"einsum", f_einsum}, {"cat", f_cat},
    {"stack", f_stack},   {"embedding", f_embedding}, {NULL, NULL},
};

void binding_register_ops(lua_State *L, int methods_index, int module_index) {
    lua_pushvalue(L, methods_index);
    luaL_setfuncs(L, methods, 0);
    for (int id = 0; id < tc_op_count(); id++) {
        const tc_op_info *op = tc_op_at(id);
        if (!(op->properties & TC_OP_METHOD)) continue;
        lua_CFunction method = id < TC_OP_ADD ? unary_method : id < TC_OP_SUM ? binary_method : reduce_method;
        lua_pushinteger(L, id < TC_OP_ADD ? id : id < TC_OP_SUM ? id - TC_OP_ADD : id - TC_OP_SUM);
        lua_pushcclosure(L, method, 1);
        lua_setfield(L, -2, op->name);
    }
    lua_pop(L, 1);
    lua_pushvalue(L, module_index);
    luaL_setfuncs(L, module_ops, 0);
    lua_pop(L, 1);
    /* The metatable is on the stack just below the methods table. */
    int metatable = methods_index - 1;
    static const luaL_Reg metamethods[] = {
        {"__len", mm_len},           {"__gc", mm_gc}, {"__close", mm_gc}, {"__newindex", mm_newindex},
        {"__tostring", mm_tostring_plain}, {NULL, NULL},
    };
    static const char *const operators[][2] = {
        {"__add", "add"}, {"__sub", "sub"}, {"__mul", "mul"}, {"__div", "div"}, {"__pow", "pow"}, {"__unm", "neg"},
    };
    lua_pushvalue(L, metatable);
    luaL_setfuncs(L, metamethods, 0);
    for (size_t i = 0; i < sizeof operators / sizeof operators[0]; i++) {
        lua_getfield(L, methods_index, operators[i][1]);
        lua_setfield(L, -2, operators[i][0]);
    }
    lua_pushvalue(L, methods_index);
    lua_pushcclosure(L, mm_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
