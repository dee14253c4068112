/*
 * checkpoint.c (fuzz target): how a checkpoint's metadata is read.
 *
 * lua/tricycle/checkpoint.lua keeps everything but the tensors as JSON in
 * the "tricycle.checkpoint" metadata of a safetensors file; checkpoint.load
 * gets it through core.load (the safetensors reader, fuzzed by its own
 * target), decodes it with core.json_decode (src/json.c through the
 * binding's conversion to Lua values), checks the record and swaps the
 * {"__tensor__": name} references for tensors, in Lua.
 *
 * This target embeds Lua 5.4 with the binding (compiled with the fuzzing
 * instrumentation) preloaded as tricycle.core, and loads the real module
 * from lua/. The input is the metadata text: core.load is replaced by a
 * function that returns a fixed set of tensors and {"tricycle.checkpoint" =
 * input}. checkpoint.load runs on it, then checkpoint.restore (which sets
 * the RNG from the record's rng), in a protected call: a Lua error is an
 * expected outcome, only a crash or a sanitizer report is a finding. The
 * Lua lines that run feed libFuzzer's coverage (count_line).
 */
#include "fuzz.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

int luaopen_tricycle_core(lua_State *L);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#ifndef FUZZ_LUA_DIR
#define FUZZ_LUA_DIR "lua"
#endif

/* Returns the function that loads and restores a checkpoint from metadata text. */
static const char setup[] =
    "local core = require('tricycle.core')\n"
    "local checkpoint = require('tricycle.checkpoint')\n"
    "local tensors = {\n"
    "  ['model.weight'] = core.tensor({{1, 2, 3}, {4, 5, 6}}),\n"
    "  ['model.bias'] = core.tensor({0.5, -0.5}),\n"
    "  ['optimizer.tensors.m'] = core.tensor({{0, 0, 0}, {0, 0, 0}}),\n"
    "  ['extra.x'] = core.tensor({7}),\n"
    "  tokenizer = core.from_bytes('tricycle', 'uint8', {8}),\n"
    "}\n"
    "local metadata = {}\n"
    "core.load = function() return tensors, metadata end\n"
    "return function(text)\n"
    "  metadata['tricycle.checkpoint'] = text\n"
    "  local state = checkpoint.load('fuzz.checkpoint')\n"
    "  checkpoint.restore(state, {})\n"
    "end\n";

static lua_State *L;
static int load_and_restore; /* registry reference to the function setup returns */

/* libFuzzer sees the coverage of compiled code only; the Lua lines that run
 * count in its extra counters, so inputs reaching new lines of
 * checkpoint.lua are kept too. */
#define LINE_COUNTERS 4096
__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t line_counters[LINE_COUNTERS];

static void count_line(lua_State *state, lua_Debug *ar) {
    if (!lua_getinfo(state, "S", ar)) return;
    /* Sources are interned strings: their address names the chunk. */
    size_t slot = ((uintptr_t)ar->source * 31u + (size_t)ar->currentline) % LINE_COUNTERS;
    if (line_counters[slot] < 255) line_counters[slot]++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    L = luaL_newstate();
    FUZZ_REQUIRE(L, "no Lua state");
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_pushstring(L, FUZZ_LUA_DIR "/?.lua;" FUZZ_LUA_DIR "/?/init.lua");
    lua_setfield(L, -2, "path");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_tricycle_core);
    lua_setfield(L, -2, "tricycle.core");
    lua_pop(L, 2);
    FUZZ_REQUIRE(luaL_loadbuffer(L, setup, sizeof setup - 1, "=checkpoint fuzz setup") == LUA_OK &&
                     lua_pcall(L, 0, 1, 0) == LUA_OK,
                 "setup failed: %s", lua_tostring(L, -1));
    load_and_restore = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_sethook(L, count_line, LUA_MASKLINE, 0);
    /* A record as checkpoint.save writes it must load, or every input would
     * only exercise the error path. */
    static const char record[] = "{\"parts\":{\"model\":{\"weight\":{\"__tensor__\":\"model.weight\"}}},"
                                 "\"rng\":[1,2],\"step\":3,\"tokenizer\":true,\"version\":1}";
    lua_rawgeti(L, LUA_REGISTRYINDEX, load_and_restore);
    lua_pushstring(L, record);
    FUZZ_REQUIRE(lua_pcall(L, 1, 0, 0) == LUA_OK, "a valid record fails: %s", lua_tostring(L, -1));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, load_and_restore);
    lua_pushlstring(L, (const char *)data, size);
    (void)lua_pcall(L, 1, 0, 0); /* a Lua error is fine */
    lua_settop(L, 0);
    return 0;
}
