/*
 * lua_compat.h: lets the one binding build against Lua 5.1, LuaJIT 2.1, 5.2,
 * 5.3 and 5.4. The binding is written against 5.4's API; this header fills in
 * what older headers lack and makes 5.4's return values (the type that
 * lua_getfield & co. push) available everywhere.
 *
 * Integers: on 5.3/5.4 lua_Integer is a 64-bit integer and everything stays
 * exact. On 5.1, LuaJIT and 5.2 every number is a double, which holds each
 * integer only up to 2^53; there an integer conversion in either direction
 * (lua_tointeger, luaL_checkinteger, luaL_optinteger, lua_pushinteger) past
 * 2^53 raises an error naming the function and the value instead of rounding.
 * lua_isinteger is true there for a number with an integral value.
 */
#ifndef TRICYCLE_LUA_COMPAT_H
#define TRICYCLE_LUA_COMPAT_H

#include <lauxlib.h>
#include <lua.h>

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#if LUA_VERSION_NUM < 501 || LUA_VERSION_NUM > 504
#error "tricycle's binding supports Lua 5.1 (and LuaJIT 2.1) to 5.4"
#endif

/* Whether lua_Integer values are exact 64-bit integers (5.3, 5.4). */
#define COMPAT_EXACT_INT64 (LUA_VERSION_NUM >= 503)
/* The largest integer every Lua number holds exactly. */
#define COMPAT_EXACT_LIMIT 9007199254740992.0 /* 2^53 */

/* Searches the table at the top of the stack, and tables in it down to depth
 * levels, for the value at function; on success pushes its key (the last
 * one: "narrow" for tricycle.core.Tensor.methods.narrow) and returns true. */
static inline bool compat_find_key(lua_State *L, int function, int depth) {
    int table = lua_gettop(L);
    if (!lua_checkstack(L, 4)) return false;
    lua_pushnil(L);
    while (lua_next(L, table)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            if (lua_rawequal(L, -1, function)) {
                lua_pop(L, 1);
                return true; /* the key is on the top */
            }
            if (depth > 0 && lua_type(L, -1) == LUA_TTABLE && compat_find_key(L, function, depth - 1)) {
                lua_replace(L, table);
                lua_settop(L, table);
                return true;
            }
        }
        lua_pop(L, 1);
    }
    return false;
}

/* The name the running C function was called by, for errors raised where no
 * name is at hand. A tail call leaves no name; then the function is looked
 * up in the loaded modules (as 5.3+ does) and the tables they hold. The name
 * is left on the stack (the caller raises an error right after). */
static inline const char *compat_function_name(lua_State *L) {
    lua_Debug ar;
    if (!lua_getstack(L, 0, &ar)) return "?";
    if (lua_getinfo(L, "n", &ar) && ar.name) return ar.name;
    int top = lua_gettop(L);
    if (lua_checkstack(L, 4) && lua_getinfo(L, "f", &ar)) {
        int function = lua_gettop(L);
        lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
        if (lua_type(L, -1) == LUA_TTABLE && compat_find_key(L, function, 3)) return lua_tostring(L, -1);
    }
    lua_settop(L, top);
    return "?";
}

/* Whether the value at idx is an integer that every Lua holds exactly: a
 * Lua integer on 5.3/5.4, an integral number within 2^53 elsewhere. */
static inline bool compat_is_exact_integer(lua_State *L, int idx) {
#if COMPAT_EXACT_INT64
    return lua_isinteger(L, idx);
#else
    if (lua_type(L, idx) != LUA_TNUMBER) return false;
    lua_Number value = lua_tonumber(L, idx);
    return value == floor(value) && fabs(value) <= COMPAT_EXACT_LIMIT;
#endif
}

#ifndef LUA_OK
#define LUA_OK 0
#endif

#if LUA_VERSION_NUM < 502
#define LUA_RIDX_MAINTHREAD_KEY "tricycle.main_thread"
static inline int compat_absindex(lua_State *L, int idx) {
    return idx > 0 || idx <= LUA_REGISTRYINDEX ? idx : lua_gettop(L) + idx + 1;
}
#define lua_absindex compat_absindex
#define lua_rawlen(L, idx) lua_objlen((L), (idx))
#define luaL_len(L, idx) ((lua_Integer)lua_objlen((L), (idx)))
#endif

#if LUA_VERSION_NUM < 502 && !defined(luaL_newlib) /* PUC 5.1; LuaJIT 2.1 has these */
static inline void compat_setfuncs(lua_State *L, const luaL_Reg *functions, int upvalues) {
    luaL_checkstack(L, upvalues + 1, "too many upvalues");
    for (; functions->name; functions++) {
        for (int i = 0; i < upvalues; i++) lua_pushvalue(L, -upvalues);
        lua_pushcclosure(L, functions->func, upvalues);
        lua_setfield(L, -(upvalues + 2), functions->name);
    }
    lua_pop(L, upvalues);
}
#define luaL_setfuncs compat_setfuncs
#define luaL_newlib(L, functions) (lua_newtable(L), compat_setfuncs((L), (functions), 0))
static inline void *compat_testudata(lua_State *L, int idx, const char *name) {
    void *data = lua_touserdata(L, idx);
    if (!data || !lua_getmetatable(L, idx)) return NULL;
    luaL_getmetatable(L, name);
    bool same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same ? data : NULL;
}
#define luaL_testudata compat_testudata
static inline void compat_setmetatable(lua_State *L, const char *name) {
    luaL_getmetatable(L, name);
    lua_setmetatable(L, -2);
}
#define luaL_setmetatable compat_setmetatable
#endif

#if LUA_VERSION_NUM < 502
/* luaL_tolstring as 5.2 has it: __tostring, else a description by type. */
static inline const char *compat_tolstring(lua_State *L, int idx, size_t *length) {
    if (luaL_callmeta(L, idx, "__tostring")) {
        if (!lua_isstring(L, -1)) luaL_error(L, "'__tostring' must return a string");
    } else {
        switch (lua_type(L, idx)) {
        case LUA_TNUMBER:
        case LUA_TSTRING: lua_pushvalue(L, idx); break;
        case LUA_TBOOLEAN: lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false"); break;
        case LUA_TNIL: lua_pushliteral(L, "nil"); break;
        default: lua_pushfstring(L, "%s: %p", luaL_typename(L, idx), lua_topointer(L, idx)); break;
        }
    }
    return lua_tolstring(L, -1, length);
}
#define luaL_tolstring compat_tolstring
#endif

#if LUA_VERSION_NUM < 503
/* 5.3's lua_geti/lua_seti and the pushed type returned by the getters. */
static inline int compat_geti(lua_State *L, int idx, lua_Integer i) {
    idx = lua_absindex(L, idx);
    lua_pushnumber(L, (lua_Number)i);
    lua_gettable(L, idx);
    return lua_type(L, -1);
}
#define lua_geti compat_geti
static inline void compat_seti(lua_State *L, int idx, lua_Integer i) {
    idx = lua_absindex(L, idx);
    lua_pushnumber(L, (lua_Number)i);
    lua_insert(L, -2);
    lua_settable(L, idx);
}
#define lua_seti compat_seti
/* A macro naming itself is not expanded again: these call the real ones. */
#define lua_getfield(L, idx, key) (lua_getfield((L), (idx), (key)), lua_type((L), -1))
#define lua_rawgeti(L, idx, i) (lua_rawgeti((L), (idx), (i)), lua_type((L), -1))
#define lua_gettable(L, idx) (lua_gettable((L), (idx)), lua_type((L), -1))
#define lua_rawget(L, idx) (lua_rawget((L), (idx)), lua_type((L), -1))

/* An integral number in int64's range: what 5.3+ would read as an integer
 * (larger magnitudes, the infinities and NaN stay floats, as they are there;
 * 2^63 - 1 written in Lua is the double 2^63, such a float). */
static inline int compat_isinteger(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TNUMBER) return 0;
    lua_Number value = lua_tonumber(L, idx);
    return value == floor(value) && value >= -9223372036854775808.0 && value < 9223372036854775808.0;
}
#define lua_isinteger compat_isinteger

/* The double as the exact decimal it holds (%.0f), for errors. */
static inline const char *compat_push_exact(lua_State *L, lua_Number value) {
    char text[64];
    snprintf(text, sizeof text, "%.0f", (double)value);
    lua_pushstring(L, text);
    return lua_tostring(L, -1);
}

/* value as a lua_Integer; an error naming function (NULL: the running one)
 * past 2^53. */
static inline lua_Integer compat_checked_number(lua_State *L, lua_Number value, const char *function) {
    if (fabs(value) > COMPAT_EXACT_LIMIT) {
        if (!function) function = compat_function_name(L);
        luaL_error(L, "%s: the integer %s is past 2^53 (9007199254740992), the largest this Lua (%s) holds exactly; "
                      "use Lua 5.3 or 5.4 for larger integers",
                   function, compat_push_exact(L, value), LUA_VERSION);
    }
    return (lua_Integer)value;
}

static inline lua_Integer compat_tointeger(lua_State *L, int idx) {
    lua_Number value = lua_tonumber(L, idx);
    if (value != value) return 0;
    if (value != floor(value) && fabs(value) <= COMPAT_EXACT_LIMIT) return (lua_Integer)value;
    return compat_checked_number(L, value, NULL);
}
#undef lua_tointeger
#define lua_tointeger compat_tointeger

/* 5.3's lua_tointegerx: is_integer says whether the value is an integral number. */
static inline lua_Integer compat_tointegerx(lua_State *L, int idx, int *is_integer) {
    int integral = compat_isinteger(L, idx);
    if (is_integer) *is_integer = integral;
    return integral ? compat_tointeger(L, idx) : 0;
}
#undef lua_tointegerx
#define lua_tointegerx compat_tointegerx

/* luaL_argerror naming the function as 5.3+ does when the call left no name
 * (a tail call), so that every Lua's message says which function failed. */
static inline int compat_argerror(lua_State *L, int arg, const char *message) {
    lua_Debug ar;
    if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name) return luaL_argerror(L, arg, message);
    return luaL_error(L, "bad argument #%d to '%s' (%s)", arg, compat_function_name(L), message);
}
static inline void compat_typeerror(lua_State *L, int arg, const char *expected) {
    compat_argerror(L, arg, lua_pushfstring(L, "%s expected, got %s", expected, luaL_typename(L, arg)));
}
static inline lua_Number compat_checknumber(lua_State *L, int arg) {
    if (lua_type(L, arg) != LUA_TNUMBER && !lua_isnumber(L, arg)) compat_typeerror(L, arg, "number");
    return lua_tonumber(L, arg);
}
static inline const char *compat_checklstring(lua_State *L, int arg, size_t *length) {
    if (!lua_isstring(L, arg)) compat_typeerror(L, arg, "string");
    return lua_tolstring(L, arg, length);
}
static inline void compat_checktype(lua_State *L, int arg, int type) {
    if (lua_type(L, arg) != type) compat_typeerror(L, arg, lua_typename(L, type));
}
static inline void *compat_checkudata(lua_State *L, int arg, const char *name) {
    void *data = luaL_testudata(L, arg, name);
    if (!data) compat_typeerror(L, arg, name);
    return data;
}
#define luaL_argerror compat_argerror
#define luaL_checknumber compat_checknumber
#define luaL_optnumber(L, arg, fallback) (lua_isnoneornil((L), (arg)) ? (fallback) : compat_checknumber((L), (arg)))
#undef luaL_checkstring
#define luaL_checkstring(L, arg) compat_checklstring((L), (arg), NULL)
#define luaL_checklstring compat_checklstring
#undef luaL_optstring
#define luaL_optstring(L, arg, fallback) \
    (lua_isnoneornil((L), (arg)) ? (fallback) : compat_checklstring((L), (arg), NULL))
#define luaL_checktype compat_checktype
#define luaL_checkudata compat_checkudata

static inline lua_Integer compat_checkinteger(lua_State *L, int arg) {
    lua_Number value = compat_checknumber(L, arg);
    if (value != floor(value)) compat_argerror(L, arg, "number has no integer representation");
    if (fabs(value) > COMPAT_EXACT_LIMIT) {
        compat_push_exact(L, value);
        compat_argerror(L, arg,
                      lua_pushfstring(L, "the integer %s is past 2^53, the largest this Lua (%s) holds exactly",
                                      lua_tostring(L, -1), LUA_VERSION));
    }
    return (lua_Integer)value;
}
#define luaL_checkinteger compat_checkinteger
#define luaL_optinteger(L, arg, fallback) (lua_isnoneornil((L), (arg)) ? (fallback) : compat_checkinteger((L), (arg)))

static inline void compat_pushinteger(lua_State *L, int64_t value) {
    if (value > (int64_t)COMPAT_EXACT_LIMIT || value < -(int64_t)COMPAT_EXACT_LIMIT) {
        luaL_error(L, "%s: the integer %s is past 2^53 (9007199254740992), the largest this Lua (%s) holds exactly; "
                      "use Lua 5.3 or 5.4 for larger integers",
                   compat_function_name(L), compat_push_exact(L, (lua_Number)value), LUA_VERSION);
    }
    lua_pushnumber(L, (lua_Number)value);
}
#define lua_pushinteger compat_pushinteger

/* lua_pushfstring's %I (a lua_Integer) is 5.3's: older Luas get a formatter
 * that knows it (and %d, %s, %f, %p, %c, %% like theirs). */
static inline const char *compat_pushvfstring(lua_State *L, const char *format, va_list args) {
    luaL_Buffer buffer;
    luaL_buffinit(L, &buffer);
    for (const char *at = format; *at; at++) {
        if (*at != '%') {
            luaL_addchar(&buffer, *at);
            continue;
        }
        char text[64];
        switch (*++at) {
        case 'I': snprintf(text, sizeof text, "%lld", (long long)va_arg(args, lua_Integer)); break;
        case 'd': snprintf(text, sizeof text, "%d", va_arg(args, int)); break;
        case 'c': snprintf(text, sizeof text, "%c", (char)va_arg(args, int)); break;
        case 'f': snprintf(text, sizeof text, "%.14g", (double)va_arg(args, lua_Number)); break;
        case 'p': snprintf(text, sizeof text, "%p", va_arg(args, void *)); break;
        case 's': {
            const char *string = va_arg(args, const char *);
            luaL_addstring(&buffer, string ? string : "(null)");
            continue;
        }
        case '%': snprintf(text, sizeof text, "%%"); break;
        case '\0': luaL_addchar(&buffer, '%'); at--; continue;
        default: snprintf(text, sizeof text, "%%%c", *at); break;
        }
        luaL_addstring(&buffer, text);
    }
    luaL_pushresult(&buffer);
    return lua_tostring(L, -1);
}
static inline const char *compat_pushfstring(lua_State *L, const char *format, ...) {
    va_list args;
    va_start(args, format);
    const char *result = compat_pushvfstring(L, format, args);
    va_end(args);
    return result;
}
#define lua_pushfstring compat_pushfstring
static inline int compat_error(lua_State *L, const char *format, ...) {
    va_list args;
    va_start(args, format);
    luaL_where(L, 1);
    compat_pushvfstring(L, format, args);
    va_end(args);
    lua_concat(L, 2);
    return lua_error(L);
}
#define luaL_error compat_error
#endif

#if LUA_VERSION_NUM < 504
#define lua_newuserdatauv(L, size, user_values) lua_newuserdata((L), (size))
#endif

/* Pushes the state's main thread (5.1 has no LUA_RIDX_MAINTHREAD: there it
 * is a thread of the binding's own, made by compat_remember_main_thread). */
static inline void compat_push_main_thread(lua_State *L) {
#if LUA_VERSION_NUM >= 502
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
#else
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD_KEY);
#endif
}

static inline void compat_remember_main_thread(lua_State *L) {
#if LUA_VERSION_NUM < 502
    if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD_KEY) != LUA_TTHREAD) {
        lua_newthread(L); /* anchored in the registry, so it lives as long as the state */
        lua_setfield(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD_KEY);
    }
    lua_pop(L, 1);
#else
    (void)L;
#endif
}

#endif
