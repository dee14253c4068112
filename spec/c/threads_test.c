/*
 * threads_test.c: two Lua states on two threads, each loading tricycle and
 * fitting y = 2x (or y = -3x) by gradient steps at the same time. Each state
 * has its own engine context (RNG, grad mode, memory), so the runs must not
 * disturb each other: both converge, and a seeded computation gives the same
 * numbers in both states. Run from the repository root; TRICYCLE_BUILD names
 * the build folder (default "build").
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct job {
    double slope;  /* the slope to fit */
    double fitted; /* the result */
    double seeded; /* sum of a seeded randn draw, to compare across states */
    int ok;
    char error[512];
} job;

static const char *const script =
    "local slope = ...\n"
    "local tc = require('tricycle')\n"
    "tc.manual_seed(7)\n"
    "local seeded = tc.randn({1000}, {dtype = 'float64'}):sum():item()\n"
    "tc.manual_seed(slope > 0 and 1 or 2)\n"
    "local w = tc.zeros({1}, {dtype = 'float64', requires_grad = true})\n"
    "for step = 1, 300 do\n"
    "  local x = tc.randn({64}, {dtype = 'float64'})\n"
    "  local y = x * slope\n"
    "  local loss = ((x * w - y) ^ 2):mean()\n"
    "  loss:backward()\n"
    "  tc.no_grad(function() w:copy_(w - w.grad * 0.1) end)\n"
    "  w.grad = nil\n"
    "  assert(tc.is_grad_enabled(), 'grad mode leaked')\n"
    "end\n"
    "return w:item(), seeded\n";

static void *run_job(void *argument) {
    job *work = argument;
    lua_State *L = luaL_newstate();
    if (!L) {
        snprintf(work->error, sizeof work->error, "could not create a Lua state");
        return NULL;
    }
    luaL_openlibs(L);
    const char *build = getenv("TRICYCLE_BUILD");
    if (!build || !build[0]) build = "build";
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/lua/?.so", build);
    lua_setfield(L, -2, "cpath");
    lua_pushstring(L, "lua/?.lua;lua/?/init.lua");
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    if (luaL_loadstring(L, script) != LUA_OK) {
        snprintf(work->error, sizeof work->error, "load: %s", lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }
    lua_pushnumber(L, work->slope);
    if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
        snprintf(work->error, sizeof work->error, "run: %s", lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }
    work->fitted = lua_tonumber(L, -2);
    work->seeded = lua_tonumber(L, -1);
    work->ok = 1;
    lua_close(L);
    return NULL;
}

int main(void) {
    job jobs[2] = {{.slope = 2.0}, {.slope = -3.0}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        if (pthread_create(&threads[i], NULL, run_job, &jobs[i]) != 0) {
            printf("FAIL could not start thread %d\n", i + 1);
            return 1;
        }
    }
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);

    int passed = 0, failed = 0;
    for (int i = 0; i < 2; i++) {
        bool good = jobs[i].ok && fabs(jobs[i].fitted - jobs[i].slope) < 1e-3;
        if (good) {
            printf("pass thread %d fits slope %g (got %.6f)\n", i + 1, jobs[i].slope, jobs[i].fitted);
            passed++;
        } else {
            printf("FAIL thread %d fits slope %g: %s (got %.6f)\n", i + 1, jobs[i].slope,
                   jobs[i].ok ? "did not converge" : jobs[i].error, jobs[i].fitted);
            failed++;
        }
    }
    if (jobs[0].ok && jobs[1].ok && jobs[0].seeded == jobs[1].seeded && jobs[0].seeded != 0) {
        printf("pass the same seed gives the same numbers in both states (%.6f)\n", jobs[0].seeded);
        passed++;
    } else {
        printf("FAIL seeded draws differ across states: %.17g and %.17g\n", jobs[0].seeded, jobs[1].seeded);
        failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
