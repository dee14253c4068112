/*
 * tricycle_lua.h: what a C program embedding Lua needs to link the module in
 * statically and steer it (examples/host/ is one such program, docs/HOSTS.md
 * the guide). Register the module with
 *
 *     luaL_requiref(L, "tricycle.core", luaopen_tricycle_core, 0);
 *
 * and put lua/ on package.path for the Lua parts (`require("tricycle")`).
 * The engine's settings (threads, memory budget, idle spin) are the C API's,
 * on tc_lua_context(L); the collector's pacing is the binding's own.
 */
#ifndef TRICYCLE_LUA_H
#define TRICYCLE_LUA_H

#include "tricycle.h"

#include <lua.h>

int luaopen_tricycle_core(lua_State *L);

/* The context of this Lua state, created on first use. */
tc_context *tc_lua_context(lua_State *L);

/* Tensor storage is invisible to Lua's collector, so the binding runs a full
 * collection when storage in use passes max(floor, 1.25 × what survived the
 * last collection). The floor (TC_LUA_DEFAULT_COLLECT_FLOOR unless set)
 * bounds the garbage a program can hold: a host with a small model lowers it
 * to keep its resident memory near the model's size. */
#define TC_LUA_DEFAULT_COLLECT_FLOOR ((size_t)64 << 20)
void tc_lua_set_collect_floor(lua_State *L, size_t bytes);
size_t tc_lua_collect_floor(lua_State *L);

#endif
