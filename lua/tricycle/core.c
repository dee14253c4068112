/*
 * core.c: the `tricycle.core` Lua module: one engine context per Lua state,
 * tensor userdata, creation functions, autograd entry points and the memory
 * accounting that lets Lua's collector see native memory.
 *
 * Positions seen from Lua (dims, narrow/select starts) are 1-based, negative
 * counting from the end; integer data (ids, indices, argmax results) are
 * 0-based. The conversion happens here and nowhere else.
 */
#include "binding.h"

#include <lualib.h>
#include <limits.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CONTEXT_KEY "tricycle.context"
#define BACKWARD_END_KEY "tricycle.backward_end"

/* Per-state binding data, owned by a userdata in the registry. */
typedef struct binding_state {
    tc_context *ctx;
    size_t collect_threshold; /* collect when native memory passes this */
    size_t collect_floor;     /* the least collect_threshold may be (tc_lua_set_collect_floor) */
    lua_State *active;        /* the thread running backward, for Lua functions on the tape */
    lua_Integer backwards;       /* backwards begun so far */
    lua_Integer backward_serial; /* the number of the one running, while active */
    int log_ref;
} binding_state;

static int state_gc(lua_State *L) {
    /* Not luaL_checkudata: registry[CONTEXT_KEY] holds this userdata, not
     * its metatable, so that check fails and the context would never be
     * freed (nor its cached storage released). */
    binding_state *state = lua_touserdata(L, 1);
    if (state->ctx) tc_context_free(state->ctx);
    state->ctx = NULL;
    return 0;
}

/* The environment's engine settings, read when a Lua state makes its
 * context: TRICYCLE_SGEMM=blas keeps float32 GEMMs on the BLAS (to
 * compare), TRICYCLE_CUDA_LIBRARY names the CUDA backend library to load
 * (the emulated build, for one), TRICYCLE_CUDA_TF32 (not empty, not 0) lets
 * float32 matmuls on cuda use TF32, TRICYCLE_BGEMM=avx512|fallback caps the
 * bf16 GEMM's path (another value: the fastest). */
static tc_status apply_environment(tc_context *ctx) {
    const char *sgemm = getenv("TRICYCLE_SGEMM");
    if (sgemm && strcmp(sgemm, "blas") == 0) tc_set_native_sgemm(ctx, false);
    const char *bgemm = getenv("TRICYCLE_BGEMM");
    if (bgemm && (strcmp(bgemm, "avx512") == 0 || strcmp(bgemm, "fallback") == 0)) tc_set_bgemm_path(ctx, bgemm);
    const char *library = getenv("TRICYCLE_CUDA_LIBRARY");
    tc_status status = library && library[0] ? tc_set_cuda_library(ctx, library) : TC_OK;
    const char *tf32 = getenv("TRICYCLE_CUDA_TF32");
    if (status == TC_OK && tf32 && tf32[0] && strcmp(tf32, "0") != 0) status = tc_set_cuda_tf32(ctx, true);
    return status;
}

static binding_state *get_state(lua_State *L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, CONTEXT_KEY) == LUA_TUSERDATA) {
        binding_state *state = lua_touserdata(L, -1);
        lua_pop(L, 1);
        return state;
    }
    lua_pop(L, 1);
    binding_state *state = lua_newuserdatauv(L, sizeof *state, 0);
    memset(state, 0, sizeof *state);
    state->log_ref = LUA_NOREF;
    state->ctx = tc_context_new();
    if (!state->ctx) luaL_error(L, "tricycle: could not create the engine context (out of memory)");
    state->collect_floor = TC_LUA_DEFAULT_COLLECT_FLOOR;
    state->collect_threshold = TC_LUA_DEFAULT_COLLECT_FLOOR;
    if (luaL_newmetatable(L, CONTEXT_KEY)) {
        lua_pushcfunction(L, state_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, CONTEXT_KEY);
    if (apply_environment(state->ctx) != TC_OK)
        luaL_error(L, "tricycle: the environment's settings could not be applied: %s", tc_last_error(state->ctx));
    return state;
}

tc_context *tc_lua_context(lua_State *L) { return get_state(L)->ctx; }

/* The next threshold after a collection left in_use bytes alive. */
static size_t next_collect_threshold(const binding_state *state, size_t in_use) {
    size_t next = in_use + in_use / 4;
    return next > state->collect_floor ? next : state->collect_floor;
}

/* A new floor counts at once: a lower one must not wait for the collection
 * that the old, higher threshold would have started. */
void tc_lua_set_collect_floor(lua_State *L, size_t bytes) {
    binding_state *state = get_state(L);
    state->collect_floor = bytes;
    state->collect_threshold = next_collect_threshold(state, tc_memory_in_use(state->ctx));
}

size_t tc_lua_collect_floor(lua_State *L) { return get_state(L)->collect_floor; }

void binding_check(lua_State *L, tc_status status) {
    if (status == TC_OK) return;
    tc_context *ctx = tc_lua_context(L);
    const char *message = tc_last_error(ctx);
    lua_pushstring(L, message[0] ? message : "tricycle: operation failed");
    tc_clear_error(ctx);
    lua_error(L);
}

void binding_check_in(lua_State *L, tc_status status, const char *function) {
    if (status == TC_OK) return;
    tc_context *ctx = tc_lua_context(L);
    const char *message = tc_last_error(ctx);
    size_t length = strlen(function);
    if (strncmp(message, function, length) == 0 && message[length] == ':') binding_check(L, status);
    lua_pushfstring(L, "%s: %s", function, message[0] ? message : "operation failed");
    tc_clear_error(ctx);
    lua_error(L);
}

/* ---- tensor userdata ---- */

void binding_push_tensor(lua_State *L, tc_tensor *t) {
    binding_state *state = get_state(L);
    /* Native memory is invisible to Lua's collector: when it has grown past
     * the threshold since the last collection, collect now, then set the
     * next threshold to 1.25 times what survived (at least the floor). Twice
     * what survived let a GPT-2-sized training loop hold as much garbage as
     * live storage, reach fresh pages for it every step, and be 8% slower on
     * a config-B step. */
    size_t in_use = tc_memory_in_use(state->ctx);
    if (in_use > state->collect_threshold) {
        lua_gc(L, LUA_GCCOLLECT, 0);
        state->collect_threshold = next_collect_threshold(state, tc_memory_in_use(state->ctx));
    }
    lua_tensor *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->tensor = t;
    luaL_setmetatable(L, TENSOR_METATABLE);
}

tc_tensor *binding_test_tensor(lua_State *L, int idx) {
    lua_tensor *box = luaL_testudata(L, idx, TENSOR_METATABLE);
    return box ? box->tensor : NULL;
}

tc_tensor *binding_check_tensor(lua_State *L, int idx, const char *function) {
    lua_tensor *box = luaL_testudata(L, idx, TENSOR_METATABLE);
    if (!box) {
        luaL_error(L, "%s: argument %d must be a tensor, got %s", function, idx, luaL_typename(L, idx));
        return NULL;
    }
    if (!box->tensor) {
        luaL_error(L, "%s: argument %d is a tensor that was closed (t:free() or <close>)", function, idx);
        return NULL;
    }
    return box->tensor;
}

tc_tensor *binding_tensor_or_scalar(lua_State *L, int idx, tc_tensor *like, const char *function) {
    if (lua_type(L, idx) == LUA_TNUMBER || lua_type(L, idx) == LUA_TBOOLEAN) {
        double value = lua_type(L, idx) == LUA_TBOOLEAN ? lua_toboolean(L, idx) : lua_tonumber(L, idx);
        tc_dtype dtype = tc_tensor_dtype(like);
        if (!tc_dtype_is_floating(dtype) && value != floor(value)) dtype = TC_FLOAT32;
        binding_check(L, tc_check_scalar(tc_lua_context(L), function, value, dtype));
        tc_tensor *t;
        binding_check(L, tc_empty(tc_lua_context(L), dtype, 0, NULL, &t));
        tc_status status = tc_fill_(t, value);
        if (status == TC_OK && tc_tensor_device(like) != TC_CPU) {
            tc_tensor *moved;
            status = tc_to_device(t, tc_tensor_device(like), &moved);
            tc_tensor_release(t);
            t = moved;
        }
        binding_check(L, status);
        return t;
    }
    tc_tensor *t = binding_check_tensor(L, idx, function);
    tc_tensor_retain(t);
    return t;
}

int binding_check_dim(lua_State *L, int idx, const char *function) {
    if (!lua_isinteger(L, idx)) {
        luaL_error(L, "%s: argument %d (dim) must be an integer, got %s", function, idx, luaL_typename(L, idx));
        return 0;
    }
    lua_Integer dim = lua_tointeger(L, idx);
    if (dim == 0) luaL_error(L, "%s: dim 0 does not exist; dims are 1-based (negative count from the end)", function);
    if (dim > 64 || dim < -64) luaL_error(L, "%s: dim %d is out of range", function, (int)dim);
    return dim > 0 ? (int)dim - 1 : (int)dim;
}

lua_Integer binding_list_length(lua_State *L, int idx, bool honour_len) {
    idx = lua_absindex(L, idx);
    lua_Integer n = honour_len ? luaL_len(L, idx) : (lua_Integer)lua_rawlen(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TNUMBER) continue;
        lua_Number key = lua_tonumber(L, -1);
        /* (keys past the largest list a table can hold are not list entries) */
        if (key > (lua_Number)n && key == floor(key) && key <= (lua_Number)INT32_MAX) n = (lua_Integer)key;
    }
    return n;
}

int binding_check_shape(lua_State *L, int idx, int64_t *shape, const char *function) {
    int n = 0;
    if (lua_istable(L, idx)) {
        lua_Integer length = binding_list_length(L, idx, true);
        if (length > TC_MAX_DIMS)
            luaL_error(L, "%s: a shape has at most %d dims, got %I", function, TC_MAX_DIMS, length);
        n = (int)length;
        for (int i = 0; i < n; i++) {
            lua_geti(L, idx, i + 1);
            if (!lua_isinteger(L, -1))
                luaL_error(L, "%s: shape entry %d must be an integer, got %s", function, i + 1, luaL_typename(L, -1));
            shape[i] = lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
        return n;
    }
    int top = lua_gettop(L);
    for (int i = idx; i <= top && lua_type(L, i) == LUA_TNUMBER; i++) {
        if (n == TC_MAX_DIMS) luaL_error(L, "%s: a shape has at most %d dims", function, TC_MAX_DIMS);
        if (!lua_isinteger(L, i)) luaL_error(L, "%s: size %d must be an integer", function, n + 1);
        shape[n++] = lua_tointeger(L, i);
    }
    return n;
}

tc_dtype binding_opt_dtype(lua_State *L, int idx, const char *field, tc_dtype fallback, const char *function) {
    if (idx == 0 || !lua_istable(L, idx)) return fallback;
    tc_dtype dtype = fallback;
    if (lua_getfield(L, idx, field) == LUA_TSTRING) {
        const char *name = lua_tostring(L, -1);
        if (!tc_dtype_from_name(name, &dtype))
            luaL_error(L, "%s: unknown dtype '%s' (float32, float64, int32, int64, uint8, bool)", function, name);
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "%s: option %s must be a string, got %s", function, field, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return dtype;
}

/* Index of the options table: the last argument when it is a table and not
 * the shape itself. */
static int options_index(lua_State *L, int first) {
    int top = lua_gettop(L);
    return top >= first && lua_istable(L, top) && (top > first || !lua_isinteger(L, -1)) ? top : 0;
}

/* Fails when the options table at idx (0: none) holds a key not in allowed
 * (NULL-terminated), naming the key and listing the valid ones, so that a
 * misspelt option is not silently ignored. */
static void check_option_keys(lua_State *L, int idx, const char *function, const char *const *allowed) {
    if (idx == 0) return;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1); /* the value */
        bool known = false;
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *key = lua_tostring(L, -1);
            for (int i = 0; allowed[i] && !known; i++) known = strcmp(key, allowed[i]) == 0;
        }
        if (!known) {
            luaL_Buffer valid;
            luaL_buffinit(L, &valid);
            for (int i = 0; allowed[i]; i++) {
                if (i) luaL_addstring(&valid, ", ");
                luaL_addstring(&valid, allowed[i]);
            }
            luaL_pushresult(&valid);
            if (lua_type(L, -2) == LUA_TSTRING)
                luaL_error(L, "%s: unknown option '%s' (valid: %s)", function, lua_tostring(L, -2),
                           lua_tostring(L, -1));
            luaL_error(L, "%s: unknown option key of type %s (valid: %s)", function, luaL_typename(L, -2),
                       lua_tostring(L, -1));
        }
    }
}

/* The options of every tensor-creating function. */
static const char *const creation_options[] = {"dtype", "requires_grad", NULL};

static void apply_requires_grad(lua_State *L, tc_tensor *t, int options) {
    if (options && lua_getfield(L, options, "requires_grad") != LUA_TNIL) {
        bool requires = lua_toboolean(L, -1);
        lua_pop(L, 1);
        binding_check(L, tc_tensor_set_requires_grad(t, requires));
        return;
    }
    if (options) lua_pop(L, 1);
}

/* ---- creation ---- */

typedef enum { CREATE_EMPTY, CREATE_ZEROS, CREATE_ONES, CREATE_RAND, CREATE_RANDN } create_kind;

static int create(lua_State *L, create_kind kind, const char *function) {
    int64_t shape[TC_MAX_DIMS];
    int options = 0;
    int ndim;
    if (lua_istable(L, 1)) {
        ndim = binding_check_shape(L, 1, shape, function);
        options = lua_istable(L, 2) ? 2 : 0;
    } else {
        ndim = binding_check_shape(L, 1, shape, function);
        int top = lua_gettop(L);
        options = top > ndim && lua_istable(L, top) ? top : 0;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0) luaL_error(L, "%s: size %d is negative (%I)", function, i + 1, (lua_Integer)shape[i]);
    check_option_keys(L, options, function, creation_options);
    tc_dtype dtype = binding_opt_dtype(L, options, "dtype", TC_FLOAT32, function);
    tc_context *ctx = tc_lua_context(L);
    tc_tensor *t = NULL;
    tc_status status;
    switch (kind) {
    case CREATE_EMPTY: status = tc_empty(ctx, dtype, ndim, shape, &t); break;
    case CREATE_ZEROS: status = tc_zeros(ctx, dtype, ndim, shape, &t); break;
    case CREATE_ONES: status = tc_ones(ctx, dtype, ndim, shape, &t); break;
    case CREATE_RAND: status = tc_rand(ctx, dtype, ndim, shape, &t); break;
    default: status = tc_randn(ctx, dtype, ndim, shape, &t); break;
    }
    binding_check_in(L, status, function);
    binding_push_tensor(L, t);
    apply_requires_grad(L, t, options);
    return 1;
}

static int l_empty(lua_State *L) { return create(L, CREATE_EMPTY, "empty"); }
static int l_zeros(lua_State *L) { return create(L, CREATE_ZEROS, "zeros"); }
static int l_ones(lua_State *L) { return create(L, CREATE_ONES, "ones"); }
static int l_rand(lua_State *L) { return create(L, CREATE_RAND, "rand"); }
static int l_randn(lua_State *L) { return create(L, CREATE_RANDN, "randn"); }

static int l_full(lua_State *L) {
    int64_t shape[TC_MAX_DIMS];
    luaL_checktype(L, 1, LUA_TTABLE);
    int ndim = binding_check_shape(L, 1, shape, "full");
    double value = luaL_checknumber(L, 2);
    int options = lua_istable(L, 3) ? 3 : 0;
    check_option_keys(L, options, "full", creation_options);
    tc_dtype dtype = binding_opt_dtype(L, options, "dtype", TC_FLOAT32, "full");
    tc_tensor *t;
    tc_context *ctx = tc_lua_context(L);
    if (dtype == TC_INT64 && lua_isinteger(L, 2)) { /* exact past 2^53, where a double rounds */
        int64_t exact = lua_tointeger(L, 2);
        tc_tensor *scalar;
        binding_check_in(L, tc_from_data(ctx, TC_INT64, 0, NULL, &exact, TC_INT64, &scalar), "full");
        tc_status status = tc_empty(ctx, dtype, ndim, shape, &t);
        if (status == TC_OK) {
            status = tc_copy_(t, scalar);
            if (status != TC_OK) tc_tensor_release(t);
        }
        tc_tensor_release(scalar);
        binding_check_in(L, status, "full");
    } else {
        binding_check_in(L, tc_full(ctx, dtype, ndim, shape, value, &t), "full");
    }
    binding_push_tensor(L, t);
    apply_requires_grad(L, t, options);
    return 1;
}

/* arange(end), arange(start, end), arange(start, end, step), each with an
 * optional options table last. Default dtype: int64 when every bound is an
 * integer, float32 otherwise. */
static int l_arange(lua_State *L) {
    int options = options_index(L, 2);
    check_option_keys(L, options, "arange", creation_options);
    int count = options ? options - 1 : lua_gettop(L);
    double start = 0, end, step = 1;
    bool integral = true;
    for (int i = 1; i <= count; i++) {
        luaL_checknumber(L, i);
        if (!lua_isinteger(L, i)) integral = false;
    }
    if (count == 1) end = lua_tonumber(L, 1);
    else if (count >= 2) {
        start = lua_tonumber(L, 1);
        end = lua_tonumber(L, 2);
        if (count >= 3) step = lua_tonumber(L, 3);
    } else return luaL_error(L, "arange: expects (end), (start, end) or (start, end, step)");
    tc_dtype dtype = binding_opt_dtype(L, options, "dtype", integral ? TC_INT64 : TC_FLOAT32, "arange");
    tc_tensor *t;
    binding_check_in(L, tc_arange(tc_lua_context(L), dtype, start, end, step, &t), "arange");
    binding_push_tensor(L, t);
    apply_requires_grad(L, t, options);
    return 1;
}

/* Walks nested tables to find the shape, then fills values row-major. */
static void nested_shape(lua_State *L, int idx, int depth, int *ndim, int64_t *shape, bool *has_bool) {
    if (depth >= TC_MAX_DIMS) luaL_error(L, "tensor: data nests deeper than %d levels", TC_MAX_DIMS);
    lua_Integer n = binding_list_length(L, idx, true);
    shape[depth] = n;
    *ndim = depth + 1;
    if (n == 0) return;
    int type = lua_geti(L, idx, 1);
    if (type == LUA_TTABLE) nested_shape(L, lua_gettop(L), depth + 1, ndim, shape, has_bool);
    else if (type == LUA_TBOOLEAN) *has_bool = true;
    lua_pop(L, 1);
}

/* Where nested_fill puts the entries: doubles, or (for int64 tensors, so
 * that integers past 2^53 stay exact) int64 values, with the position of the
 * first float entry that is not an int64 value. */
typedef struct entries {
    double *reals;
    int64_t *integers;
    int64_t first_bad;
    double bad_value;
} entries;

static void nested_fill(lua_State *L, int idx, int depth, int ndim, const int64_t *shape, entries *values,
                        int64_t *position) {
    lua_Integer n = binding_list_length(L, idx, true);
    if (n != shape[depth]) {
        luaL_error(L, "tensor: ragged data: a list at depth %d has %d entries where %d were expected", depth + 1,
                   (int)n, (int)shape[depth]);
    }
    for (lua_Integer i = 1; i <= n; i++) {
        int type = lua_geti(L, idx, i);
        if (depth + 1 < ndim) {
            if (type != LUA_TTABLE)
                luaL_error(L, "tensor: ragged data: entry %d at depth %d is a %s, expected a list", (int)i, depth + 1,
                           lua_typename(L, type));
            nested_fill(L, lua_gettop(L), depth + 1, ndim, shape, values, position);
        } else if (type == LUA_TNUMBER || type == LUA_TBOOLEAN) {
            double real = type == LUA_TBOOLEAN ? lua_toboolean(L, -1) : lua_tonumber(L, -1);
            if (!values->integers) {
                values->reals[*position] = real;
            } else if (lua_isinteger(L, -1)) {
                values->integers[*position] = lua_tointeger(L, -1);
            } else {
                if (!tc_dtype_holds(TC_INT64, real) && values->first_bad < 0) {
                    values->first_bad = *position;
                    values->bad_value = real;
                }
                values->integers[*position] = tc_dtype_holds(TC_INT64, real) ? (int64_t)real : 0;
            }
            (*position)++;
        } else {
            luaL_error(L, "tensor: entry %d at depth %d is a %s, expected a number", (int)i, depth + 1,
                       lua_typename(L, type));
        }
        lua_pop(L, 1);
    }
}

/* Raises an error naming entry i (as t[i][j]...), whose value a tensor of
 * dtype cannot hold: a fraction, NaN or a value out of an integer range. */
static void entry_error(lua_State *L, int64_t i, double value, int ndim, const int64_t *shape, tc_dtype dtype) {
    char position[TC_MAX_DIMS * 24 + 1] = "";
    size_t used = 0;
    int64_t rest = i;
    for (int d = ndim - 1; d >= 0; d--) {
        char step[24];
        int length = snprintf(step, sizeof step, "[%lld]", (long long)(rest % shape[d] + 1));
        memmove(position + length, position, used + 1);
        memcpy(position, step, (size_t)length);
        used += (size_t)length;
        rest /= shape[d];
    }
    luaL_error(L, "tensor: entry %s is %f, which dtype %s cannot hold (%s)", position, (lua_Number)value,
               tc_dtype_name(dtype), value != floor(value) ? "not an integer" : "out of its range");
}

static void check_entries_fit(lua_State *L, const entries *values, int ndim, const int64_t *shape, int64_t numel,
                              tc_dtype dtype) {
    if (values->integers) {
        if (values->first_bad >= 0) entry_error(L, values->first_bad, values->bad_value, ndim, shape, dtype);
        return;
    }
    for (int64_t i = 0; i < numel; i++)
        if (!tc_dtype_holds(dtype, values->reals[i])) entry_error(L, i, values->reals[i], ndim, shape, dtype);
}

static int l_tensor(lua_State *L) {
    tc_context *ctx = tc_lua_context(L);
    int options = lua_istable(L, 2) ? 2 : 0;
    check_option_keys(L, options, "tensor", creation_options);
    tc_tensor *t;
    if (lua_type(L, 1) == LUA_TNUMBER || lua_type(L, 1) == LUA_TBOOLEAN) {
        double value = lua_type(L, 1) == LUA_TBOOLEAN ? lua_toboolean(L, 1) : lua_tonumber(L, 1);
        tc_dtype dtype = binding_opt_dtype(L, options, "dtype", lua_type(L, 1) == LUA_TBOOLEAN ? TC_BOOL : TC_FLOAT32,
                                           "tensor");
        if (dtype == TC_INT64 && lua_isinteger(L, 1)) {
            int64_t exact = lua_tointeger(L, 1);
            binding_check_in(L, tc_from_data(ctx, dtype, 0, NULL, &exact, TC_INT64, &t), "tensor");
        } else {
            binding_check_in(L, tc_full(ctx, dtype, 0, NULL, value, &t), "tensor");
        }
    } else if (binding_test_tensor(L, 1)) {
        tc_tensor *source = binding_check_tensor(L, 1, "tensor");
        tc_dtype dtype = binding_opt_dtype(L, options, "dtype", tc_tensor_dtype(source), "tensor");
        tc_tensor *detached, *cast;
        binding_check(L, tc_detach(source, &detached));
        tc_status status = tc_to_dtype(detached, dtype, &cast);
        tc_tensor_release(detached);
        binding_check(L, status);
        status = tc_clone(cast, &t);
        tc_tensor_release(cast);
        binding_check(L, status);
    } else {
        if (!lua_istable(L, 1))
            return luaL_error(L, "tensor: argument 1 must be a number, a (nested) table or a tensor, got %s",
                              luaL_typename(L, 1));
        int ndim = 0;
        int64_t shape[TC_MAX_DIMS];
        bool has_bool = false;
        nested_shape(L, 1, 0, &ndim, shape, &has_bool);
        tc_dtype dtype = binding_opt_dtype(L, options, "dtype", has_bool ? TC_BOOL : TC_FLOAT32, "tensor");
        /* The shape is read from the first entry at each depth, before the
         * rest is checked, so lists that repeat one table can claim any size. */
        binding_check(L, tc_check_shape(ctx, "tensor", ndim, shape, TC_FLOAT64));
        int64_t numel;
        binding_check(L, tc_checked_numel(ctx, "tensor", ndim, shape, &numel));
        void *buffer = lua_newuserdatauv(L, sizeof(double) * (size_t)(numel ? numel : 1), 0);
        entries values = {NULL, NULL, -1, 0.0};
        if (dtype == TC_INT64) values.integers = buffer;
        else values.reals = buffer;
        int64_t position = 0;
        nested_fill(L, 1, 0, ndim, shape, &values, &position);
        check_entries_fit(L, &values, ndim, shape, numel, dtype);
        binding_check_in(L, tc_from_data(ctx, dtype, ndim, shape, buffer, values.integers ? TC_INT64 : TC_FLOAT64, &t),
                         "tensor");
        lua_pop(L, 1);
    }
    binding_push_tensor(L, t);
    apply_requires_grad(L, t, options);
    return 1;
}

/* from_string(bytes, dtype, shape): a tensor over a copy of packed
 * little-endian data (used by file loaders written in Lua). */
static int l_from_bytes(lua_State *L) {
    size_t length;
    const char *bytes = luaL_checklstring(L, 1, &length);
    tc_dtype dtype;
    if (!tc_dtype_from_name(luaL_checkstring(L, 2), &dtype)) return luaL_argerror(L, 2, "unknown dtype");
    int64_t shape[TC_MAX_DIMS];
    luaL_checktype(L, 3, LUA_TTABLE);
    int ndim = binding_check_shape(L, 3, shape, "from_bytes");
    tc_context *ctx = tc_lua_context(L);
    binding_check(L, tc_check_shape(ctx, "from_bytes", ndim, shape, dtype));
    int64_t numel;
    binding_check(L, tc_checked_numel(ctx, "from_bytes", ndim, shape, &numel));
    if ((size_t)numel * tc_dtype_size(dtype) != length)
        return luaL_error(L, "from_bytes: %I bytes do not hold %I elements of %s", (lua_Integer)length,
                          (lua_Integer)numel, tc_dtype_name(dtype));
    tc_tensor *t;
    binding_check_in(L, tc_from_data(ctx, dtype, ndim, shape, bytes, dtype, &t), "from_bytes");
    binding_push_tensor(L, t);
    return 1;
}

/* ---- context-wide settings ---- */

static int l_manual_seed(lua_State *L) {
    tc_manual_seed(tc_lua_context(L), (uint64_t)luaL_checkinteger(L, 1));
    return 0;
}

static int l_rng_state(lua_State *L) {
    uint64_t seed, offset;
    tc_rng_get_state(tc_lua_context(L), &seed, &offset);
    lua_pushinteger(L, (lua_Integer)seed);
    lua_pushinteger(L, (lua_Integer)offset);
    return 2;
}

static int l_set_rng_state(lua_State *L) {
    tc_rng_set_state(tc_lua_context(L), (uint64_t)luaL_checkinteger(L, 1), (uint64_t)luaL_checkinteger(L, 2));
    return 0;
}

/* uniform_below(seed, counter, n): a uniform integer in [0, n) from the
 * SplitMix64 finaliser over (seed, counter), in 64-bit unsigned arithmetic
 * (wrapping modulo 2^64), the same on every Lua; tricycle.data's shuffles. */
static int l_uniform_below(lua_State *L) {
    uint64_t seed = (uint64_t)luaL_checkinteger(L, 1), counter = (uint64_t)luaL_checkinteger(L, 2);
    lua_Integer n = luaL_checkinteger(L, 3);
    if (n < 1) return luaL_error(L, "uniform_below: n must be at least 1, got %I", n);
    uint64_t z = seed * 0x9E3779B97F4A7C15u + (counter + 1) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    z ^= z >> 31;
    lua_pushinteger(L, (lua_Integer)((z >> 2) % (uint64_t)n));
    return 1;
}

/* Sets grad mode to the given value, whatever it was (the engine counts
 * nested disables; Lua code saves and restores the boolean instead, so a
 * restore to false inside a no_grad block must not disable once more). */
static int l_set_grad_enabled(lua_State *L) {
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    tc_context *ctx = tc_lua_context(L);
    if (lua_toboolean(L, 1)) {
        while (!tc_is_grad_enabled(ctx)) tc_set_grad_enabled(ctx, true);
    } else if (tc_is_grad_enabled(ctx)) {
        tc_set_grad_enabled(ctx, false);
    }
    return 0;
}

static int l_is_grad_enabled(lua_State *L) {
    lua_pushboolean(L, tc_is_grad_enabled(tc_lua_context(L)));
    return 1;
}

/* The context's autocast dtype by name ("bfloat16", "float16", or "float32": off). */
static int l_set_autocast(lua_State *L) {
    tc_context *ctx = tc_lua_context(L);
    const char *name = luaL_checkstring(L, 1);
    tc_dtype dtype;
    if (!tc_dtype_from_name(name, &dtype))
        return luaL_error(L, "autocast: unknown dtype '%s' (bfloat16, float16, or float32 for off)", name);
    binding_check(L, tc_set_autocast(ctx, dtype));
    return 0;
}

static int l_bgemm_path(lua_State *L) {
    lua_pushstring(L, tc_bgemm_path(tc_lua_context(L)));
    return 1;
}

static int l_autocast(lua_State *L) {
    lua_pushstring(L, tc_dtype_name(tc_autocast(tc_lua_context(L))));
    return 1;
}

static int l_memory(lua_State *L) {
    if (lua_gettop(L) != 0) return luaL_error(L, "memory: takes no arguments");
    tc_context *ctx = tc_lua_context(L);
    lua_pushinteger(L, (lua_Integer)tc_memory_in_use(ctx));
    lua_pushinteger(L, (lua_Integer)tc_memory_peak(ctx));
    lua_pushinteger(L, (lua_Integer)tc_memory_cached(ctx));
    return 3;
}

static int l_release_cached_memory(lua_State *L) {
    if (lua_gettop(L) != 0) return luaL_error(L, "release_cached_memory: takes no arguments");
    tc_memory_release_cached(tc_lua_context(L));
    return 0;
}

/* More threads than this is a mistake (each is a system thread). */
#define MAX_THREADS 1024

static int l_set_num_threads(lua_State *L) {
    if (!lua_isinteger(L, 1))
        return luaL_error(L, "set_num_threads: the count must be an integer, got %s", luaL_typename(L, 1));
    lua_Integer threads = lua_tointeger(L, 1);
    if (threads < 1 || threads > MAX_THREADS)
        return luaL_error(L, "set_num_threads: the count must be from 1 to %d, got %I", MAX_THREADS, threads);
    tc_set_num_threads(tc_lua_context(L), (int)threads);
    return 0;
}

static int l_num_threads(lua_State *L) {
    lua_pushinteger(L, tc_num_threads(tc_lua_context(L)));
    return 1;
}

/* A byte count from Lua: a non-negative integer (0 often meaning "none"). */
static size_t check_bytes(lua_State *L, int idx, const char *function, const char *what) {
    if (!lua_isinteger(L, idx))
        luaL_error(L, "%s: %s must be an integer number of bytes, got %s", function, what,
                   lua_type(L, idx) == LUA_TNUMBER ? "a float" : luaL_typename(L, idx));
    lua_Integer bytes = lua_tointeger(L, idx);
    if (bytes < 0) luaL_error(L, "%s: %s must be >= 0 bytes, got %I", function, what, bytes);
    if ((uint64_t)bytes > SIZE_MAX) luaL_error(L, "%s: %s of %I bytes is too large", function, what, bytes);
    return (size_t)bytes;
}

/* A byte count to Lua: an integer when every Lua holds it exactly (a C
 * host may have set SIZE_MAX, which a float approximates). */
static void push_bytes(lua_State *L, size_t bytes) {
    if (bytes <= ((size_t)1 << 53)) lua_pushinteger(L, (lua_Integer)bytes);
    else lua_pushnumber(L, (lua_Number)bytes);
}

static int l_set_memory_budget(lua_State *L) {
    tc_set_memory_budget(tc_lua_context(L), check_bytes(L, 1, "set_memory_budget", "the budget"));
    return 0;
}

static int l_memory_budget(lua_State *L) {
    push_bytes(L, tc_memory_budget(tc_lua_context(L)));
    return 1;
}

static int l_set_collect_floor(lua_State *L) {
    tc_lua_set_collect_floor(L, check_bytes(L, 1, "set_collect_floor", "the floor"));
    return 0;
}

static int l_collect_floor(lua_State *L) {
    push_bytes(L, tc_lua_collect_floor(L));
    return 1;
}

static int l_set_thread_spin(lua_State *L) {
    if (!lua_isinteger(L, 1))
        return luaL_error(L, "set_thread_spin: the spin time must be an integer number of microseconds, got %s",
                          lua_type(L, 1) == LUA_TNUMBER ? "a float" : luaL_typename(L, 1));
    lua_Integer microseconds = lua_tointeger(L, 1);
    if (microseconds < 0 || microseconds > TC_MAX_THREAD_SPIN_MICROSECONDS)
        return luaL_error(L, "set_thread_spin: the spin time must be from 0 to %d microseconds, got %I",
                          TC_MAX_THREAD_SPIN_MICROSECONDS, microseconds);
    binding_check(L, tc_set_thread_spin(tc_lua_context(L), (int64_t)microseconds));
    return 0;
}

static int l_thread_spin(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)tc_thread_spin(tc_lua_context(L)));
    return 1;
}

static int l_park_threads(lua_State *L) {
    tc_park_threads(tc_lua_context(L));
    return 0;
}

static int l_start_threads(lua_State *L) {
    binding_check(L, tc_start_threads(tc_lua_context(L)));
    return 0;
}

static int l_ops(lua_State *L) {
    int n = tc_op_count();
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        const tc_op_info *info = tc_op_at(i);
        lua_createtable(L, 0, 12);
        lua_pushstring(L, info->name);
        lua_setfield(L, -2, "name");
        lua_pushinteger(L, info->arity);
        lua_setfield(L, -2, "arity");
        lua_pushboolean(L, info->differentiable);
        lua_setfield(L, -2, "differentiable");
        lua_pushstring(L, info->summary);
        lua_setfield(L, -2, "summary");
        static const struct {
            unsigned flag;
            const char *name;
        } properties[] = {
            {TC_OP_FLOAT_ONLY, "float_only"}, {TC_OP_INTEGERS, "integers"}, {TC_OP_BOOL_RESULT, "bool_result"},
            {TC_OP_VIEW, "view"},             {TC_OP_IN_PLACE, "in_place"}, {TC_OP_FUSED, "fused"},
            {TC_OP_METHOD, "method"},         {TC_OP_INTERNAL, "internal"},
        };
        for (size_t p = 0; p < sizeof properties / sizeof properties[0]; p++) {
            lua_pushboolean(L, (info->properties & properties[p].flag) != 0);
            lua_setfield(L, -2, properties[p].name);
        }
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static void log_to_lua(void *user, tc_log_level level, const char *message) {
    lua_State *L = user;
    binding_state *state = get_state(L);
    if (state->log_ref == LUA_NOREF) return;
    static const char *const names[] = {"debug", "info", "warning", "error"};
    lua_rawgeti(L, LUA_REGISTRYINDEX, state->log_ref);
    lua_pushstring(L, names[level]);
    lua_pushstring(L, message);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);
}

static int l_set_log_callback(lua_State *L) {
    binding_state *state = get_state(L);
    luaL_unref(L, LUA_REGISTRYINDEX, state->log_ref);
    state->log_ref = LUA_NOREF;
    if (lua_isfunction(L, 1)) {
        lua_pushvalue(L, 1);
        state->log_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        compat_push_main_thread(L);
        tc_set_log_callback(state->ctx, log_to_lua, lua_tothread(L, -1));
        lua_pop(L, 1);
    } else {
        tc_set_log_callback(state->ctx, NULL, NULL);
    }
    return 0;
}

/* ---- autograd ---- */

/* Runs the functions on_backward_end queued during the backward that just
 * ended (the list at the top of the stack, popped), in order; an error in
 * one is raised after the list is dropped. */
static void run_backward_end(lua_State *L) {
    int list = lua_gettop(L);
    lua_Integer count = luaL_len(L, list);
    for (lua_Integer i = 1; i <= count; i++) {
        lua_geti(L, list, i);
        lua_call(L, 0, 0);
    }
    lua_settop(L, list - 1);
}

static int l_backward(lua_State *L) {
    static const char *const allowed[] = {"retain_graph", NULL};
    tc_tensor *t = binding_check_tensor(L, 1, "backward");
    tc_tensor *grad = lua_isnoneornil(L, 2) ? NULL : binding_check_tensor(L, 2, "backward");
    bool retain = false;
    if (!lua_isnoneornil(L, 3)) {
        if (!lua_istable(L, 3))
            return luaL_error(L, "backward: argument 3 (options) must be a table, got %s", luaL_typename(L, 3));
        check_option_keys(L, 3, "backward", allowed);
        int type = lua_getfield(L, 3, "retain_graph");
        if (type != LUA_TNIL && type != LUA_TBOOLEAN)
            return luaL_error(L, "backward: option retain_graph must be a boolean, got %s", lua_typename(L, type));
        retain = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    binding_state *state = get_state(L);
    /* a fresh list for this backward's on_backward_end; the outer one
     * (a backward inside a hook) is put back after */
    lua_getfield(L, LUA_REGISTRYINDEX, BACKWARD_END_KEY);
    int outer = lua_gettop(L);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, BACKWARD_END_KEY);
    lua_State *previous = state->active;
    lua_Integer previous_serial = state->backward_serial;
    state->active = L;
    state->backward_serial = ++state->backwards;
    tc_status status = tc_backward(t, grad, retain);
    state->active = previous;
    state->backward_serial = previous_serial; /* back in the outer backward, if any */
    lua_pushvalue(L, outer);
    lua_setfield(L, LUA_REGISTRYINDEX, BACKWARD_END_KEY);
    binding_check(L, status);
    run_backward_end(L);
    return 0;
}

/* grad(t, grad_or_nil, {inputs...}, retain_graph): a list with the gradient
 * of t for each input (false where no path reaches it); no grad field
 * changes. tricycle.autograd.grad checks the arguments first. */
static int l_grad(lua_State *L) {
    tc_tensor *t = binding_check_tensor(L, 1, "grad");
    tc_tensor *grad = lua_isnoneornil(L, 2) ? NULL : binding_check_tensor(L, 2, "grad");
    luaL_checktype(L, 3, LUA_TTABLE);
    bool retain = lua_toboolean(L, 4);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 3);
    if (n < 1 || n > INT_MAX / (lua_Integer)sizeof(tc_tensor *))
        return luaL_error(L, "grad: inputs must be a list of 1 or more tensors, got %d", (int)n);
    /* userdata: freed by the collector even when an error unwinds */
    tc_tensor **inputs = lua_newuserdata(L, sizeof *inputs * (size_t)n * 2);
    tc_tensor **grads = inputs + n;
    for (lua_Integer k = 1; k <= n; k++) {
        lua_rawgeti(L, 3, k);
        inputs[k - 1] = binding_check_tensor(L, -1, "grad");
        lua_pop(L, 1);
    }
    binding_state *state = get_state(L);
    lua_getfield(L, LUA_REGISTRYINDEX, BACKWARD_END_KEY);
    int outer = lua_gettop(L);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, BACKWARD_END_KEY);
    lua_State *previous = state->active;
    lua_Integer previous_serial = state->backward_serial;
    state->active = L;
    state->backward_serial = ++state->backwards;
    tc_status status = tc_grad(t, grad, (int)n, inputs, retain, grads);
    state->active = previous;
    state->backward_serial = previous_serial;
    lua_pushvalue(L, outer);
    lua_setfield(L, LUA_REGISTRYINDEX, BACKWARD_END_KEY);
    binding_check(L, status);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer k = 1; k <= n; k++) {
        tc_tensor *g = grads[k - 1];
        grads[k - 1] = NULL;
        if (g) {
            binding_push_tensor(L, g);
        } else {
            lua_pushboolean(L, 0);
        }
        lua_rawseti(L, -2, k);
    }
    return 1;
}

/* on_backward_end(fn): runs fn once the backward now running has ended
 * (after its gradient hooks), for work that needs every gradient. */
static int l_on_backward_end(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (lua_getfield(L, LUA_REGISTRYINDEX, BACKWARD_END_KEY) != LUA_TTABLE || !get_state(L)->active)
        return luaL_error(L, "on_backward_end: no backward is running (call it from a gradient hook)");
    lua_pushvalue(L, 1);
    lua_seti(L, -2, luaL_len(L, -2) + 1);
    return 0;
}

/* backward_serial(): the number of the backward now running (each has its
 * own), or nil outside a backward: tells a hook which backward it is in. */
static int l_backward_serial(lua_State *L) {
    binding_state *state = get_state(L);
    if (state->active) lua_pushinteger(L, state->backward_serial);
    else lua_pushnil(L);
    return 1;
}

/* A Lua function the engine calls during a backward (a gradient hook or a
 * tc.Function's backward), held in the registry until it is released. */
typedef struct lua_callback {
    binding_state *state;
    lua_State *main;
    int function_ref;
} lua_callback;

/* Holds the function at `index` for `callback`; its calls run on the main
 * thread when no backward is running (the creating coroutine may be dead). */
static void hold_lua_callback(lua_State *L, lua_callback *callback, int index) {
    callback->state = get_state(L);
    compat_push_main_thread(L);
    callback->main = lua_tothread(L, -1);
    lua_pop(L, 1);
    lua_pushvalue(L, index);
    callback->function_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static void unhold_lua_callback(lua_callback *callback) {
    luaL_unref(callback->main, LUA_REGISTRYINDEX, callback->function_ref);
}

static lua_State *lua_callback_thread(const lua_callback *callback) {
    return callback->state->active ? callback->state->active : callback->main;
}

/* Calls the callback on L with `tensor`, keeping `results` results (or
 * LUA_MULTRET) and room for `stack_needed` values. On an error the stack is
 * as before and the context's error names `caller`. */
static tc_status call_lua_callback(const lua_callback *callback, lua_State *L, tc_tensor *tensor, int stack_needed,
                                   int results, const char *caller) {
    tc_context *ctx = callback->state->ctx;
    int top = lua_gettop(L);
    char message[768];
    if (!lua_checkstack(L, stack_needed)) {
        snprintf(message, sizeof message, "%s could not be called: no Lua stack space", caller);
        return tc_set_error(ctx, TC_ERROR_MEMORY, message);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, callback->function_ref);
    tc_tensor_retain(tensor);
    binding_push_tensor(L, tensor);
    if (lua_pcall(L, 1, results, 0) != LUA_OK) {
        snprintf(message, sizeof message, "%s raised an error: %s", caller, lua_tostring(L, -1));
        lua_settop(L, top);
        return tc_set_error(ctx, TC_ERROR_CALLBACK, message);
    }
    return TC_OK;
}

/* A leaf's gradient hook (tc_tensor_set_grad_hook): called with the leaf
 * during the backward that made its gradient final. */
static tc_status call_grad_hook(void *user, tc_tensor *leaf) {
    lua_callback *hook = user;
    lua_State *L = lua_callback_thread(hook);
    int top = lua_gettop(L);
    tc_status status = call_lua_callback(hook, L, leaf, 3, 0, "backward: a gradient hook");
    lua_settop(L, top);
    return status;
}

static void release_lua_callback(void *user) {
    lua_callback *callback = user;
    unhold_lua_callback(callback);
    free(callback);
}

/* t:on_grad_ready(fn): fn(t) runs in each backward once t's gradient is
 * final in it; nil removes it. One per tensor (a new one replaces it). */
static int l_on_grad_ready(lua_State *L) {
    tc_tensor *t = binding_check_tensor(L, 1, "on_grad_ready");
    if (lua_isnoneornil(L, 2)) {
        binding_check(L, tc_tensor_set_grad_hook(t, NULL, NULL, NULL));
        return 0;
    }
    if (!lua_isfunction(L, 2))
        return luaL_error(L, "on_grad_ready: argument 2 must be a function (or nil to remove the hook), got %s",
                          luaL_typename(L, 2));
    if (!tc_tensor_is_leaf(t))
        return luaL_error(L, "on_grad_ready: the tensor is the result of '%s', not a leaf; only leaves keep a gradient",
                          tc_tensor_grad_fn_name(t));
    if (!tc_tensor_requires_grad(t))
        return luaL_error(L, "on_grad_ready: the tensor does not require grad, so no backward gives it a gradient");
    lua_callback *hook = calloc(1, sizeof *hook);
    if (!hook) return luaL_error(L, "on_grad_ready: out of memory");
    hold_lua_callback(L, hook, 2);
    binding_check(L, tc_tensor_set_grad_hook(t, call_grad_hook, release_lua_callback, hook));
    return 0;
}

/* A tensor's gradient hook (tc_tensor_add_hook): called with the gradient;
 * a tensor it returns replaces it. */
static tc_status call_tensor_hook(void *user, tc_tensor *grad, tc_tensor **replacement) {
    lua_callback *hook = user;
    lua_State *L = lua_callback_thread(hook);
    int top = lua_gettop(L);
    tc_status status = call_lua_callback(hook, L, grad, 3, 1, "backward: a hook from register_hook");
    if (status != TC_OK) return status;
    if (!lua_isnil(L, -1)) {
        tc_tensor *result = binding_test_tensor(L, -1);
        if (!result) {
            char message[256];
            snprintf(message, sizeof message,
                     "backward: a hook from register_hook must return a tensor or nothing, got a %s",
                     luaL_typename(L, -1));
            lua_settop(L, top);
            return tc_set_error(hook->state->ctx, TC_ERROR_CALLBACK, message);
        }
        tc_tensor_retain(result);
        *replacement = result;
    }
    lua_settop(L, top);
    return TC_OK;
}

/* core.register_hook(t, fn): adds fn as a hook of t; returns its id for
 * core.remove_hook(t, id). */
static int l_register_hook(lua_State *L) {
    tc_tensor *t = binding_check_tensor(L, 1, "register_hook");
    if (!lua_isfunction(L, 2))
        return luaL_error(L, "register_hook: argument 1 must be a function of the gradient, got %s",
                          luaL_typename(L, 2));
    lua_callback *hook = calloc(1, sizeof *hook);
    if (!hook) return luaL_error(L, "register_hook: out of memory");
    hold_lua_callback(L, hook, 2);
    uint64_t id = 0;
    tc_status status = tc_tensor_add_hook(t, call_tensor_hook, release_lua_callback, hook, &id);
    if (status != TC_OK) release_lua_callback(hook);
    binding_check(L, status);
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

static int l_remove_hook(lua_State *L) {
    tc_tensor *t = binding_check_tensor(L, 1, "remove_hook");
    lua_Integer id = luaL_checkinteger(L, 2);
    lua_pushboolean(L, tc_tensor_remove_hook(t, (uint64_t)id));
    return 1;
}

static int l_set_cuda_device(lua_State *L) {
    if (!lua_isinteger(L, 1))
        return luaL_error(L, "set_cuda_device: the device index must be an integer, got %s", luaL_typename(L, 1));
    lua_Integer device = lua_tointeger(L, 1);
    if (device < 0 || device > 1 << 20)
        return luaL_error(L, "set_cuda_device: the device index must be >= 0 (0-based), got %I", device);
    binding_check(L, tc_set_cuda_device(tc_lua_context(L), (int)device));
    return 0;
}

static int l_cuda_device(lua_State *L) {
    lua_pushinteger(L, tc_cuda_device(tc_lua_context(L)));
    return 1;
}

/* A Lua function on the tape: its backward is a Lua function called with
 * the output's gradient, returning one gradient (or nil) per input. */
typedef struct lua_function_node {
    lua_callback backward;
    int n_inputs;
    char name[64];
} lua_function_node;

static tc_status lua_function_backward(void *user, tc_tensor *grad_output, int n_inputs, tc_tensor **grad_inputs) {
    lua_function_node *fn = user;
    lua_State *L = lua_callback_thread(&fn->backward);
    tc_context *ctx = fn->backward.state->ctx;
    int top = lua_gettop(L);
    char caller[96];
    snprintf(caller, sizeof caller, "backward of '%s'", fn->name);
    tc_status called = call_lua_callback(&fn->backward, L, grad_output, n_inputs + 2, LUA_MULTRET, caller);
    if (called != TC_OK) return called;
    /* Fewer results than inputs leave the rest nil (no gradient); more
     * means the backward does not match the inputs it was recorded with. */
    int returned = lua_gettop(L) - top;
    if (returned > n_inputs) {
        char message[256];
        snprintf(message, sizeof message,
                 "backward of '%s' returned %d gradients for %d tensor inputs (one, or nil, per input)", fn->name,
                 returned, n_inputs);
        tc_status status = tc_set_error(ctx, TC_ERROR_CALLBACK, message);
        lua_settop(L, top);
        return status;
    }
    lua_settop(L, top + n_inputs);
    for (int i = 0; i < n_inputs; i++) {
        int idx = top + 1 + i;
        if (lua_isnil(L, idx)) continue;
        tc_tensor *g = binding_test_tensor(L, idx);
        if (!g) {
            for (int j = 0; j < i; j++) {
                tc_tensor_release(grad_inputs[j]);
                grad_inputs[j] = NULL;
            }
            char message[256];
            snprintf(message, sizeof message, "backward of '%s' returned a %s for input %d, expected a tensor or nil",
                     fn->name, luaL_typename(L, idx), i + 1);
            tc_status status = tc_set_error(ctx, TC_ERROR_CALLBACK, message);
            lua_settop(L, top);
            return status;
        }
        tc_tensor_retain(g);
        grad_inputs[i] = g;
    }
    lua_settop(L, top);
    return TC_OK;
}

static void lua_function_release(void *user) {
    lua_function_node *fn = user;
    unhold_lua_callback(&fn->backward);
    free(fn);
}

/* custom_apply(name, inputs, output, backward): output recorded on the tape
 * as a function of inputs. */
static int l_custom_apply(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    tc_tensor *output = binding_check_tensor(L, 3, "Function");
    luaL_checktype(L, 4, LUA_TFUNCTION);
    int n = (int)luaL_len(L, 2);
    if (n > 64) return luaL_error(L, "Function '%s': at most 64 inputs", name);
    tc_tensor *inputs[64];
    for (int i = 0; i < n; i++) {
        lua_geti(L, 2, i + 1);
        inputs[i] = binding_test_tensor(L, -1);
        if (!inputs[i]) return luaL_error(L, "Function '%s': input %d is not a tensor", name, i + 1);
        lua_pop(L, 1);
    }
    lua_function_node *fn = calloc(1, sizeof *fn);
    if (!fn) return luaL_error(L, "Function '%s': out of memory", name);
    hold_lua_callback(L, &fn->backward, 4);
    fn->n_inputs = n;
    snprintf(fn->name, sizeof fn->name, "%s", name);
    tc_custom_function spec = {fn->name, lua_function_backward, lua_function_release, fn};
    tc_tensor *out;
    binding_check(L, tc_custom_apply(&spec, n, inputs, output, &out));
    binding_push_tensor(L, out);
    return 1;
}

/* ---- module ---- */

static const luaL_Reg module_functions[] = {
    {"tensor", l_tensor},
    {"empty", l_empty},
    {"zeros", l_zeros},
    {"ones", l_ones},
    {"full", l_full},
    {"arange", l_arange},
    {"rand", l_rand},
    {"randn", l_randn},
    {"from_bytes", l_from_bytes},
    {"manual_seed", l_manual_seed},
    {"uniform_below", l_uniform_below},
    {"rng_state", l_rng_state},
    {"set_rng_state", l_set_rng_state},
    {"set_grad_enabled", l_set_grad_enabled},
    {"is_grad_enabled", l_is_grad_enabled},
    {"set_autocast", l_set_autocast},
    {"autocast", l_autocast},
    {"bgemm_path", l_bgemm_path},
    {"memory", l_memory},
    {"release_cached_memory", l_release_cached_memory},
    {"set_num_threads", l_set_num_threads},
    {"num_threads", l_num_threads},
    {"set_memory_budget", l_set_memory_budget},
    {"memory_budget", l_memory_budget},
    {"set_collect_floor", l_set_collect_floor},
    {"collect_floor", l_collect_floor},
    {"set_thread_spin", l_set_thread_spin},
    {"thread_spin", l_thread_spin},
    {"start_threads", l_start_threads},
    {"park_threads", l_park_threads},
    {"ops", l_ops},
    {"set_log_callback", l_set_log_callback},
    {"backward", l_backward},
    {"grad", l_grad},
    {"register_hook", l_register_hook},
    {"remove_hook", l_remove_hook},
    {"on_backward_end", l_on_backward_end},
    {"backward_serial", l_backward_serial},
    {"custom_apply", l_custom_apply},
    {"set_cuda_device", l_set_cuda_device},
    {"cuda_device", l_cuda_device},
    {NULL, NULL},
};

/* Optional parts of the binding register themselves here when linked in. */
int tc_lua_open_tokenizer(lua_State *L) __attribute__((weak));
void binding_register_fused(lua_State *L, int module_index) __attribute__((weak));
void binding_register_io(lua_State *L, int module_index) __attribute__((weak));
void binding_register_shards(lua_State *L, int module_index) __attribute__((weak));
void binding_register_distributed(lua_State *L, int module_index) __attribute__((weak));

int luaopen_tricycle_core(lua_State *L) {
    compat_remember_main_thread(L);
    get_state(L);
    luaL_newlib(L, module_functions);
    int module = lua_gettop(L);
    luaL_newmetatable(L, TENSOR_METATABLE);
    int metatable = lua_gettop(L);
    lua_newtable(L); /* methods */
    int methods = lua_gettop(L);
    binding_register_ops(L, methods, module);
    lua_pushvalue(L, methods);
    lua_setfield(L, metatable, "methods");
    lua_pushcfunction(L, l_on_grad_ready);
    lua_setfield(L, methods, "on_grad_ready");
    lua_getfield(L, metatable, "__gc");
    lua_setfield(L, methods, "free");
    lua_pushvalue(L, metatable);
    lua_setfield(L, module, "Tensor");
    lua_settop(L, module);
    if (binding_register_fused) binding_register_fused(L, module);
    if (binding_register_io) binding_register_io(L, module);
    if (binding_register_shards) binding_register_shards(L, module);
    if (binding_register_distributed) binding_register_distributed(L, module);
    lua_settop(L, module);
    if (tc_lua_open_tokenizer) {
        tc_lua_open_tokenizer(L);
        /* not "tokenizer": tricycle.tokenizer is the Lua module built on this table */
        lua_setfield(L, module, "tokenizer_core");
    }
    return 1;
}
