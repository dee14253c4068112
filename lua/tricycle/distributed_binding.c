/*
 * distributed_binding.c: the Lua face of the distributed section of
 * src/tricycle.h, as core.distributed (lua/tricycle/distributed.lua checks
 * the options and is what users call):
 *
 *   init{use_mpi =, mpi_library =, timeout =}, is_initialized(), rank(),
 *   world_size(), local_rank(), local_size(), backend(), failure(),
 *   abort(message), shutdown()
 *   all_reduce(t, op, async), broadcast(t, root, async),
 *   all_gather(t, out, counts, async), reduce_scatter(t, out, op, counts, async)
 *     op: "sum" | "avg" | "max"; counts: nil or a list of per-rank element
 *     counts; async true returns a handle ("tricycle.Collective") with
 *     wait() and is_done(), else they wait and return nothing
 *   barrier(), stats() -> table, reset_stats()
 */
#include "tricycle.h"

#include "binding.h"

#include <stdlib.h>
#include <string.h>

#define COLLECTIVE_META "tricycle.Collective"

typedef struct collective_box {
    tc_collective *collective; /* NULL once waited for */
} collective_box;

static tc_collective_op check_op(lua_State *L, int idx, const char *function) {
    const char *name = luaL_checkstring(L, idx);
    if (strcmp(name, "sum") == 0) return TC_COLLECTIVE_SUM;
    if (strcmp(name, "avg") == 0) return TC_COLLECTIVE_AVG;
    if (strcmp(name, "max") == 0) return TC_COLLECTIVE_MAX;
    luaL_error(L, "%s: unknown op '%s' (sum, avg, max)", function, name);
    return TC_COLLECTIVE_SUM;
}

/* Either pushes a handle for the running collective or nothing. */
static int finish_call(lua_State *L, tc_status status, tc_collective *pending, bool async, const char *function) {
    if (status != TC_OK) tc_collective_free(pending);
    binding_check_in(L, status, function);
    if (!async) return 0;
    collective_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->collective = pending;
    luaL_setmetatable(L, COLLECTIVE_META);
    return 1;
}

/* counts at idx (nil or a list of world_size integers) into a malloc'd
 * array kept alive by a userdata pushed on the stack; NULL for nil. */
static int64_t *check_counts(lua_State *L, int idx, const char *function) {
    if (lua_isnoneornil(L, idx)) return NULL;
    if (!lua_istable(L, idx)) {
        luaL_error(L, "%s: counts must be a list of element counts, one per rank, got %s", function,
                   luaL_typename(L, idx));
        return NULL;
    }
    int world = tc_distributed_world_size(tc_lua_context(L));
    lua_Integer length = luaL_len(L, idx);
    if (length != world)
        luaL_error(L, "%s: counts has %I entries; the world has %d ranks", function, length, world);
    int64_t *counts = lua_newuserdatauv(L, sizeof *counts * (size_t)world, 0);
    for (int r = 0; r < world; r++) {
        lua_geti(L, idx, r + 1);
        if (!lua_isinteger(L, -1))
            luaL_error(L, "%s: counts[%d] must be an integer, got %s", function, r + 1, luaL_typename(L, -1));
        counts[r] = lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    return counts;
}

static int l_init(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    tc_distributed_options options;
    memset(&options, 0, sizeof options);
    lua_getfield(L, 1, "use_mpi");
    options.use_mpi = lua_toboolean(L, -1);
    lua_getfield(L, 1, "mpi_library");
    options.mpi_library = lua_tostring(L, -1);
    lua_getfield(L, 1, "timeout");
    options.timeout = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 0;
    binding_check_in(L, tc_distributed_init(tc_lua_context(L), &options), "distributed.init");
    return 0;
}

static int l_is_initialized(lua_State *L) {
    lua_pushboolean(L, tc_distributed_is_initialized(tc_lua_context(L)));
    return 1;
}

static int l_rank(lua_State *L) {
    lua_pushinteger(L, tc_distributed_rank(tc_lua_context(L)));
    return 1;
}

static int l_world_size(lua_State *L) {
    lua_pushinteger(L, tc_distributed_world_size(tc_lua_context(L)));
    return 1;
}

static int l_local_rank(lua_State *L) {
    lua_pushinteger(L, tc_distributed_local_rank(tc_lua_context(L)));
    return 1;
}

static int l_local_size(lua_State *L) {
    lua_pushinteger(L, tc_distributed_local_size(tc_lua_context(L)));
    return 1;
}

static int l_backend(lua_State *L) {
    const char *name = tc_distributed_backend(tc_lua_context(L));
    if (name) lua_pushstring(L, name);
    else lua_pushnil(L);
    return 1;
}

static int l_failure(lua_State *L) {
    const char *failure = tc_distributed_failure(tc_lua_context(L));
    if (failure) lua_pushstring(L, failure);
    else lua_pushnil(L);
    return 1;
}

static int l_abort(lua_State *L) {
    const char *message = luaL_optstring(L, 1, "");
    binding_check_in(L, tc_distributed_abort(tc_lua_context(L), message), "distributed.abort");
    return 0;
}

static int l_shutdown(lua_State *L) {
    binding_check_in(L, tc_distributed_shutdown(tc_lua_context(L)), "distributed.shutdown");
    return 0;
}

static int l_all_reduce(lua_State *L) {
    tc_tensor *t = binding_check_tensor(L, 1, "all_reduce");
    tc_collective_op op = check_op(L, 2, "all_reduce");
    bool async = lua_toboolean(L, 3);
    tc_collective *pending = NULL;
    tc_status status = tc_all_reduce(t, op, async ? &pending : NULL);
    return finish_call(L, status, pending, async, "all_reduce");
}

static int l_broadcast(lua_State *L) {
    tc_tensor *t = binding_check_tensor(L, 1, "broadcast");
    lua_Integer root = luaL_checkinteger(L, 2);
    if (root < 0 || root > 1 << 30) return luaL_error(L, "broadcast: root %I is not a rank", root);
    bool async = lua_toboolean(L, 3);
    tc_collective *pending = NULL;
    tc_status status = tc_broadcast(t, (int)root, async ? &pending : NULL);
    return finish_call(L, status, pending, async, "broadcast");
}

static int l_all_gather(lua_State *L) {
    tc_tensor *t = binding_check_tensor(L, 1, "all_gather");
    tc_tensor *out = binding_check_tensor(L, 2, "all_gather");
    int64_t *counts = check_counts(L, 3, "all_gather");
    bool async = lua_toboolean(L, 4);
    tc_collective *pending = NULL;
    tc_status status = tc_all_gather(t, counts, out, async ? &pending : NULL);
    return finish_call(L, status, pending, async, "all_gather");
}

static int l_reduce_scatter(lua_State *L) {
    tc_tensor *t = binding_check_tensor(L, 1, "reduce_scatter");
    tc_tensor *out = binding_check_tensor(L, 2, "reduce_scatter");
    tc_collective_op op = check_op(L, 3, "reduce_scatter");
    int64_t *counts = check_counts(L, 4, "reduce_scatter");
    bool async = lua_toboolean(L, 5);
    tc_collective *pending = NULL;
    tc_status status = tc_reduce_scatter(t, counts, op, out, async ? &pending : NULL);
    return finish_call(L, status, pending, async, "reduce_scatter");
}

static int l_barrier(lua_State *L) {
    binding_check_in(L, tc_barrier(tc_lua_context(L)), "barrier");
    return 0;
}

static int l_stats(lua_State *L) {
    tc_distributed_stats stats;
    tc_distributed_get_stats(tc_lua_context(L), &stats);
    lua_createtable(L, 0, 8);
    const struct {
        const char *name;
        int64_t value;
    } counters[] = {
        {"all_reduce", stats.all_reduce},         {"broadcast", stats.broadcast}, {"all_gather", stats.all_gather},
        {"reduce_scatter", stats.reduce_scatter}, {"barrier", stats.barrier},     {"bytes", stats.bytes},
        {"nccl", stats.nccl},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        lua_pushinteger(L, (lua_Integer)counters[i].value);
        lua_setfield(L, -2, counters[i].name);
    }
    lua_pushnumber(L, stats.wait_seconds);
    lua_setfield(L, -2, "wait_seconds");
    return 1;
}

static int l_reset_stats(lua_State *L) {
    tc_distributed_reset_stats(tc_lua_context(L));
    return 0;
}

/* ---- handles of running collectives ---- */

static collective_box *check_box(lua_State *L, const char *method) {
    collective_box *box = luaL_testudata(L, 1, COLLECTIVE_META);
    if (!box) luaL_error(L, "Collective:%s: call it as handle:%s(), got a %s", method, method, luaL_typename(L, 1));
    return box;
}

/* Waits; a second wait returns at once (the outcome was reported). */
static int collective_wait(lua_State *L) {
    collective_box *box = check_box(L, "wait");
    if (!box->collective) return 0;
    tc_status status = tc_collective_wait(box->collective);
    tc_collective_free(box->collective);
    box->collective = NULL;
    binding_check(L, status);
    return 0;
}

static int collective_is_done(lua_State *L) {
    collective_box *box = check_box(L, "is_done");
    if (!box->collective) {
        lua_pushboolean(L, true);
        return 1;
    }
    bool done = false;
    tc_status status = tc_collective_test(box->collective, &done);
    binding_check(L, status);
    lua_pushboolean(L, done);
    return 1;
}

static int collective_gc(lua_State *L) {
    collective_box *box = luaL_checkudata(L, 1, COLLECTIVE_META);
    tc_collective_free(box->collective);
    box->collective = NULL;
    return 0;
}

static const luaL_Reg collective_methods[] = {
    {"wait", collective_wait},
    {"is_done", collective_is_done},
    {NULL, NULL},
};

static const luaL_Reg distributed_functions[] = {
    {"init", l_init},
    {"is_initialized", l_is_initialized},
    {"rank", l_rank},
    {"world_size", l_world_size},
    {"local_rank", l_local_rank},
    {"local_size", l_local_size},
    {"backend", l_backend},
    {"failure", l_failure},
    {"abort", l_abort},
    {"shutdown", l_shutdown},
    {"all_reduce", l_all_reduce},
    {"broadcast", l_broadcast},
    {"all_gather", l_all_gather},
    {"reduce_scatter", l_reduce_scatter},
    {"barrier", l_barrier},
    {"stats", l_stats},
    {"reset_stats", l_reset_stats},
    {NULL, NULL},
};

void binding_register_distributed(lua_State *L, int module_index);

void binding_register_distributed(lua_State *L, int module_index) {
    if (luaL_newmetatable(L, COLLECTIVE_META)) {
        luaL_newlib(L, collective_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, collective_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushstring(L, COLLECTIVE_META);
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
    luaL_newlib(L, distributed_functions);
    lua_setfield(L, module_index, "distributed");
}
