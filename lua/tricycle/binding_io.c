/*
 * binding_io.c: files from Lua. Adds to `tricycle.core`:
 *   save(path, {name = tensor, ...}, metadata_or_nil)   safetensors, atomic
 *   load(path) -> {name = tensor, ...}, metadata         (metadata: {} if none)
 *   safetensors_open(path) -> handle with :keys(), :get(name), :metadata(),
 *                             :close() (also a to-be-closed value)
 *   json_encode(value) -> text, json_decode(text) -> value
 *   json_line(record, fn?) -> text, json_lines(text, fn?, name?) -> {record, ...}
 *                                               JSON Lines (tricycle.cli's logs)
 *   read_file(path, max_bytes?, fn?) -> text    a whole regular file
 *   write_file(path, text, fn?)                 atomic replacement
 *   append_file(path, text, fn?)                to a regular file
 *   file_kind(path) -> "file" | "directory" | "fifo" | ... | nil
 * (fn names the Lua function that calls, in messages.) Every file the Lua
 * modules read or write goes through these and the engine's files.c, so
 * they share its rules: regular files only, never blocking on a FIFO, and
 * atomic saves that keep modes and follow links.
 *
 * Loaded tensors are read into memory of their own (see io_safetensors.c).
 */
#include "binding.h"
#include "internal.h"
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_METATABLE "tricycle.SafetensorsFile"
#define JSON_TREE_METATABLE "tricycle.JsonTree"
#define BYTES_METATABLE "tricycle.FileBytes"
#define JSON_DEPTH 128

void binding_register_io(lua_State *L, int module_index);

/* ---- JSON <-> Lua ---- */

typedef struct json_encoder {
    tc_json_buffer buffer;
    bool non_finite_as_null; /* JSON Lines logs: a diverged loss is kept as null, not refused */
    char path[256]; /* where in the value we are, for messages */
    char error[512];
} json_encoder;

static void path_append(char *path, size_t size, const char *format, const char *key, lua_Integer index) {
    size_t n = strlen(path);
    if (n >= size - 1) return;
    if (key) snprintf(path + n, size - n, format, key);
    else snprintf(path + n, size - n, format, (long long)index);
}

/* A key of a Lua table being encoded (alive as a key of the table). */
typedef struct key_text {
    const char *text;
    size_t length;
} key_text;

/* Byte order, a prefix first: keys may hold NUL bytes. */
static int compare_keys(const void *a, const void *b) {
    const key_text *x = a, *y = b;
    int c = memcmp(x->text, y->text, x->length < y->length ? x->length : y->length);
    if (c) return c;
    return x->length < y->length ? -1 : x->length > y->length;
}

static bool encode_value(lua_State *L, json_encoder *e, int idx, int depth);

static bool encode_error(json_encoder *e, const char *what) {
    snprintf(e->error, sizeof e->error, "%s (at %s)", what, e->path[0] ? e->path : "the top level");
    return false;
}

static bool encode_table(lua_State *L, json_encoder *e, int idx, int depth) {
    if (depth > JSON_DEPTH) return encode_error(e, "tables nest too deeply (a cycle?)");
    if (!lua_checkstack(L, 8)) return encode_error(e, "out of Lua stack");
    lua_Integer count = 0, max_index = 0;
    bool all_integer = true, all_string = true;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        count++;
        if (lua_type(L, -2) == LUA_TNUMBER && lua_isinteger(L, -2)) {
            all_string = false;
            lua_Integer k = lua_tointeger(L, -2);
            if (k < 1) all_integer = false;
            else if (k > max_index) max_index = k;
        } else if (lua_type(L, -2) == LUA_TSTRING) {
            all_integer = false;
        } else {
            all_integer = all_string = false;
        }
        lua_pop(L, 1);
    }
    size_t mark = strlen(e->path);
    if (count == 0) {
        tc_json_append_raw(&e->buffer, "{}", 2);
        return true;
    }
    if (all_integer && max_index == count) {
        tc_json_append_raw(&e->buffer, "[", 1);
        for (lua_Integer i = 1; i <= count; i++) {
            if (i > 1) tc_json_append_raw(&e->buffer, ",", 1);
            lua_rawgeti(L, idx, i);
            path_append(e->path, sizeof e->path, "[%lld]", NULL, i);
            bool ok = encode_value(L, e, lua_gettop(L), depth + 1);
            e->path[mark] = '\0';
            lua_pop(L, 1);
            if (!ok) return false;
        }
        tc_json_append_raw(&e->buffer, "]", 1);
        return true;
    }
    if (!all_string) {
        return encode_error(e, all_integer ? "a sparse array (integer keys that are not 1..n) has no JSON form"
                                           : "a table mixing key types (or with non-string keys) has no JSON form");
    }
    /* Objects are written with sorted keys, so equal tables give equal text. */
    key_text *keys = malloc(sizeof *keys * (size_t)count);
    if (!keys) return encode_error(e, "out of memory");
    lua_Integer n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        keys[n].text = lua_tolstring(L, -2, &keys[n].length); /* the key stays alive in the table */
        n++;
        lua_pop(L, 1);
    }
    qsort(keys, (size_t)n, sizeof *keys, compare_keys);
    bool ok = true;
    tc_json_append_raw(&e->buffer, "{", 1);
    for (lua_Integer i = 0; i < n && ok; i++) {
        if (i) tc_json_append_raw(&e->buffer, ",", 1);
        if (!tc_json_valid_utf8(keys[i].text, keys[i].length)) {
            ok = encode_error(e, "a key that is not valid UTF-8 has no JSON form");
            break;
        }
        tc_json_append_string(&e->buffer, keys[i].text, keys[i].length);
        tc_json_append_raw(&e->buffer, ":", 1);
        lua_pushlstring(L, keys[i].text, keys[i].length);
        lua_rawget(L, idx);
        path_append(e->path, sizeof e->path, mark ? ".%s" : "%s", keys[i].text, 0);
        ok = encode_value(L, e, lua_gettop(L), depth + 1);
        if (ok) e->path[mark] = '\0';
        lua_pop(L, 1);
    }
    free(keys);
    if (ok) tc_json_append_raw(&e->buffer, "}", 1);
    return ok;
}

static bool encode_value(lua_State *L, json_encoder *e, int idx, int depth) {
    switch (lua_type(L, idx)) {
    case LUA_TNIL: tc_json_append_raw(&e->buffer, "null", 4); return true;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx)) tc_json_append_raw(&e->buffer, "true", 4);
        else tc_json_append_raw(&e->buffer, "false", 5);
        return true;
    case LUA_TNUMBER:
        if (compat_is_exact_integer(L, idx)) { /* a float past 2^53 on Luas without integers */
            tc_json_append_integer(&e->buffer, lua_tointeger(L, idx));
        } else {
            double value = lua_tonumber(L, idx);
            if (isfinite(value)) tc_json_append_double(&e->buffer, value);
            else if (e->non_finite_as_null) tc_json_append_raw(&e->buffer, "null", 4);
            else return encode_error(e, "a number that is not finite has no JSON form");
        }
        return true;
    case LUA_TSTRING: {
        size_t length;
        const char *text = lua_tolstring(L, idx, &length);
        if (!tc_json_valid_utf8(text, length))
            return encode_error(e, "a string that is not valid UTF-8 has no JSON form (store bytes as a tensor)");
        tc_json_append_string(&e->buffer, text, length);
        return true;
    }
    case LUA_TTABLE: return encode_table(L, e, idx, depth);
    default: {
        char what[64];
        snprintf(what, sizeof what, "a %s has no JSON form", luaL_typename(L, idx));
        return encode_error(e, what);
    }
    }
}

/* Encodes the value at idx and pushes the text; raises "function: ..." on
 * values with no JSON form. */
static void push_json(lua_State *L, int idx, const char *function, bool non_finite_as_null) {
    json_encoder *e = malloc(sizeof *e);
    if (!e) luaL_error(L, "%s: out of memory", function);
    tc_json_buffer_init(&e->buffer);
    e->non_finite_as_null = non_finite_as_null;
    e->path[0] = '\0';
    e->error[0] = '\0';
    bool ok = encode_value(L, e, lua_absindex(L, idx), 0);
    if (ok && e->buffer.failed) ok = encode_error(e, "out of memory");
    if (!ok) {
        char message[600];
        snprintf(message, sizeof message, "%s: %s", function, e->error);
        tc_json_buffer_free(&e->buffer);
        free(e);
        luaL_error(L, "%s", message);
        return;
    }
    lua_pushlstring(L, e->buffer.data ? e->buffer.data : "", e->buffer.length);
    tc_json_buffer_free(&e->buffer);
    free(e);
}

static void push_json_value(lua_State *L, const tc_json *value) {
    luaL_checkstack(L, 4, "json_decode: nesting too deep");
    switch (value->type) {
    case TC_JSON_NULL: lua_pushnil(L); break;
    case TC_JSON_BOOL: lua_pushboolean(L, value->as.boolean); break;
    case TC_JSON_INTEGER: lua_pushinteger(L, (lua_Integer)value->as.integer); break;
    case TC_JSON_DOUBLE: lua_pushnumber(L, value->as.number); break;
    case TC_JSON_STRING: lua_pushlstring(L, value->as.string.data, value->as.string.length); break;
    case TC_JSON_ARRAY:
        lua_createtable(L, value->as.array.count > INT32_MAX ? 0 : (int)value->as.array.count, 0);
        for (size_t i = 0; i < value->as.array.count; i++) {
            push_json_value(L, &value->as.array.items[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    case TC_JSON_OBJECT:
        lua_createtable(L, 0, value->as.object.count > INT32_MAX ? 0 : (int)value->as.object.count);
        for (size_t i = 0; i < value->as.object.count; i++) {
            const tc_json_member *m = &value->as.object.members[i];
            lua_pushlstring(L, m->key, m->key_length);
            push_json_value(L, &m->value);
            lua_rawset(L, -3);
        }
        break;
    }
}

typedef struct json_tree_box {
    tc_json *tree;
} json_tree_box;

static int json_tree_gc(lua_State *L) {
    json_tree_box *box = luaL_checkudata(L, 1, JSON_TREE_METATABLE);
    tc_json_free(box->tree);
    box->tree = NULL;
    return 0;
}

/* Parses text and pushes the Lua value (the tree is held by a collectable
 * box while converting, so a Lua error cannot leak it). */
static void push_decoded(lua_State *L, const char *text, size_t length, const char *function, const char *what) {
    json_tree_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->tree = NULL;
    luaL_setmetatable(L, JSON_TREE_METATABLE);
    char error[256];
    if (!tc_json_parse(text, length, JSON_DEPTH, &box->tree, error, sizeof error))
        luaL_error(L, "%s: %s is not valid JSON: %s", function, what, error);
    push_json_value(L, box->tree);
    tc_json_free(box->tree);
    box->tree = NULL;
    lua_remove(L, -2);
}

static int l_json_encode(lua_State *L) {
    luaL_checkany(L, 1);
    push_json(L, 1, "json_encode", false);
    return 1;
}

static int l_json_decode(lua_State *L) {
    size_t length;
    const char *text = luaL_checklstring(L, 1, &length);
    push_decoded(L, text, length, "json_decode", "the text");
    return 1;
}

/* ---- JSON Lines: one record (an object) per line ---- */

/* The optional function name at idx (for messages), or fallback. */
static const char *opt_function(lua_State *L, int idx, const char *fallback) {
    return lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : fallback;
}

/* A record as one line (without its newline). Unlike json_encode, a number
 * that is not finite is written as null: the log of a run whose loss went to
 * NaN keeps that line instead of stopping the run. */
static int l_json_line(lua_State *L) {
    const char *function = opt_function(L, 2, "json_line");
    if (!lua_istable(L, 1))
        return luaL_error(L, "%s: argument 1 (record) must be a table, got %s", function, luaL_typename(L, 1));
    push_json(L, 1, function, true);
    if (lua_tostring(L, -1)[0] != '{')
        return luaL_error(L, "%s: argument 1 (record) must be a table with string keys (a JSON object), got a list",
                          function);
    return 1;
}

static bool is_json_blank(const char *text, size_t length) {
    for (size_t i = 0; i < length; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r') return false;
    return true;
}

/* The records of JSON Lines text, in order; blank lines are skipped and
 * messages name the line. A last line without its newline that does not
 * parse is left out: every writer ends its lines, so it is an append cut
 * short (a full disk, a crash), which a resumed run then rewrites. */
static int l_json_lines(lua_State *L) {
    size_t length;
    const char *text = luaL_checklstring(L, 1, &length);
    const char *function = opt_function(L, 2, "json_lines");
    const char *name = lua_type(L, 3) == LUA_TSTRING ? lua_tostring(L, 3) : "the text";
    lua_settop(L, 3);
    lua_newtable(L);
    json_tree_box *box = lua_newuserdatauv(L, sizeof *box, 0); /* frees a tree that an error leaves */
    box->tree = NULL;
    luaL_setmetatable(L, JSON_TREE_METATABLE);
    lua_Integer count = 0, line = 0;
    size_t start = 0;
    while (start < length) {
        const char *newline = memchr(text + start, '\n', length - start);
        size_t end = newline ? (size_t)(newline - text) : length;
        line++;
        if (!is_json_blank(text + start, end - start)) {
            char error[256];
            if (!tc_json_parse(text + start, end - start, JSON_DEPTH, &box->tree, error, sizeof error)) {
                if (!newline) break;
                return luaL_error(L, "%s: %s line %I is not valid JSON: %s", function, name, line, error);
            }
            if (box->tree->type != TC_JSON_OBJECT) {
                const char *type = tc_json_type_name(box->tree->type);
                tc_json_free(box->tree);
                box->tree = NULL;
                return luaL_error(L, "%s: %s line %I holds %s, not a record (a JSON object)", function, name, line,
                                  type);
            }
            push_json_value(L, box->tree);
            tc_json_free(box->tree);
            box->tree = NULL;
            lua_rawseti(L, 4, ++count);
        }
        start = end + 1;
    }
    lua_settop(L, 4);
    return 1;
}

/* ---- paths and plain files ---- */

/* Pushes s as a quoted Lua-style literal: printable ASCII as is, "\0" for
 * NUL, \ddd for other bytes. */
static void push_quoted(lua_State *L, const char *s, size_t length) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addchar(&b, '"');
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            luaL_addchar(&b, '\\');
            luaL_addchar(&b, (char)c);
        } else if (c >= 0x20 && c < 0x7f) {
            luaL_addchar(&b, (char)c);
        } else {
            char escape[8];
            snprintf(escape, sizeof escape, "\\%u", (unsigned)c);
            luaL_addstring(&b, escape);
        }
    }
    luaL_addchar(&b, '"');
    luaL_pushresult(&b);
}

const char *binding_check_path(lua_State *L, int idx, const char *function) {
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "%s: argument %d (path) must be a string, got %s", function, idx, luaL_typename(L, idx));
    size_t length;
    const char *path = lua_tolstring(L, idx, &length);
    size_t nul = strlen(path);
    if (nul != length) {
        push_quoted(L, path, length);
        luaL_error(L, "%s: argument %d (path) %s has a NUL byte at position %d", function, idx, lua_tostring(L, -1),
                   (int)nul + 1);
    }
    if (length == 0) luaL_error(L, "%s: argument %d (path) is empty", function, idx);
    return path;
}

typedef struct bytes_box {
    char *data;
} bytes_box;

static int bytes_box_gc(lua_State *L) {
    bytes_box *box = luaL_checkudata(L, 1, BYTES_METATABLE);
    free(box->data);
    box->data = NULL;
    return 0;
}

static int l_read_file(lua_State *L) {
    const char *function = opt_function(L, 3, "read_file");
    const char *path = binding_check_path(L, 1, function);
    lua_Integer max_bytes = PTRDIFF_MAX;
    if (!lua_isnoneornil(L, 2)) {
        int is_integer;
        max_bytes = lua_tointegerx(L, 2, &is_integer);
        if (!is_integer || max_bytes < 0)
            luaL_error(L, "%s: max_bytes must be a non-negative integer, got %s", function, luaL_tolstring(L, 2, NULL));
    }
    bytes_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->data = NULL;
    luaL_setmetatable(L, BYTES_METATABLE);
    size_t size;
    binding_check(L, tc_file_read_all(tc_lua_context(L), function, path, (size_t)max_bytes, &box->data, &size));
    lua_pushlstring(L, box->data, size);
    free(box->data);
    box->data = NULL;
    return 1;
}

static int l_write_file(lua_State *L) {
    const char *function = opt_function(L, 3, "write_file");
    const char *path = binding_check_path(L, 1, function);
    if (lua_type(L, 2) != LUA_TSTRING)
        luaL_error(L, "%s: argument 2 (text) must be a string, got %s", function, luaL_typename(L, 2));
    size_t size;
    const char *text = lua_tolstring(L, 2, &size);
    binding_check(L, tc_file_write_bytes_atomic(tc_lua_context(L), function, path, text, size));
    return 0;
}

static int l_append_file(lua_State *L) {
    const char *function = opt_function(L, 3, "append_file");
    const char *path = binding_check_path(L, 1, function);
    if (lua_type(L, 2) != LUA_TSTRING)
        luaL_error(L, "%s: argument 2 (text) must be a string, got %s", function, luaL_typename(L, 2));
    size_t size;
    const char *text = lua_tolstring(L, 2, &size);
    binding_check(L, tc_file_append(tc_lua_context(L), function, path, text, size));
    return 0;
}

static int l_file_kind(lua_State *L) {
    const char *kind = tc_file_kind(binding_check_path(L, 1, opt_function(L, 2, "file_kind")));
    if (kind) lua_pushstring(L, kind);
    else lua_pushnil(L);
    return 1;
}

/* ---- safetensors ---- */

typedef struct file_box {
    tc_safetensors_file *file;
} file_box;

static int file_close(lua_State *L) {
    file_box *box = luaL_checkudata(L, 1, FILE_METATABLE);
    tc_safetensors_close(box->file);
    box->file = NULL;
    return 0;
}

static tc_safetensors_file *check_open_file(lua_State *L, int idx, const char *function) {
    file_box *box = luaL_checkudata(L, idx, FILE_METATABLE);
    if (!box->file) luaL_error(L, "%s: the safetensors file was closed", function);
    return box->file;
}

/* Opens path into a new handle userdata left on the stack. */
static tc_safetensors_file *push_opened(lua_State *L, const char *path) {
    file_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->file = NULL;
    luaL_setmetatable(L, FILE_METATABLE);
    binding_check(L, tc_safetensors_load(tc_lua_context(L), path, &box->file));
    return box->file;
}

/* Pushes the metadata as a table of strings ({} when the file has none). */
static void push_metadata(lua_State *L, tc_safetensors_file *file) {
    const char *json = tc_safetensors_metadata(file);
    if (!json) lua_newtable(L);
    else push_decoded(L, json, strlen(json), "load", "the metadata");
}

static int l_load(lua_State *L) {
    const char *path = binding_check_path(L, 1, "load");
    tc_safetensors_file *file = push_opened(L, path);
    int handle = lua_gettop(L);
    int count = tc_safetensors_count(file);
    lua_createtable(L, 0, count);
    for (int i = 0; i < count; i++) {
        tc_tensor *t;
        binding_check(L, tc_safetensors_get(file, i, &t));
        binding_push_tensor(L, t);
        lua_setfield(L, -2, tc_safetensors_name(file, i));
    }
    push_metadata(L, file);
    lua_pushcfunction(L, file_close);
    lua_pushvalue(L, handle);
    lua_call(L, 1, 0);
    return 2;
}

/* Reads {name = string|number} metadata at idx into JSON text; nil -> no
 * metadata. Leaves the text (or nothing) on the stack; returns it. */
static const char *metadata_json(lua_State *L, int idx) {
    if (lua_isnoneornil(L, idx)) return NULL;
    if (!lua_istable(L, idx))
        luaL_error(L, "save: argument 3 (metadata) must be a table of strings or nil, got %s", luaL_typename(L, idx));
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "save: argument 3 (metadata): keys must be strings, got %s", luaL_typename(L, -2));
        int type = lua_type(L, -1);
        if (type != LUA_TSTRING && type != LUA_TNUMBER)
            luaL_error(L, "save: argument 3 (metadata): value of '%s' must be a string (or number), got %s",
                       lua_tostring(L, -2), luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    /* Numbers become their Lua text: safetensors metadata holds strings. */
    lua_newtable(L);
    int copy = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        if (lua_type(L, -1) == LUA_TNUMBER) {
            luaL_tolstring(L, -1, NULL);
            lua_remove(L, -2);
        }
        lua_rawset(L, copy);
    }
    push_json(L, copy, "save: argument 3 (metadata)", false);
    lua_remove(L, copy);
    return lua_tostring(L, -1);
}

static int l_save(lua_State *L) {
    const char *path = binding_check_path(L, 1, "save");
    lua_settop(L, 3); /* scratch values go above the arguments */
    if (!lua_istable(L, 2))
        return luaL_error(L, "save: argument 2 must be a table {name = tensor, ...}, got %s", luaL_typename(L, 2));
    int count = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return luaL_error(L, "save: argument 2: keys must be strings (tensor names), got a %s key",
                              luaL_typename(L, -2));
        size_t length;
        const char *name = lua_tolstring(L, -2, &length);
        if (strlen(name) != length) {
            push_quoted(L, name, length);
            return luaL_error(L, "save: tensor name %s has a NUL byte at position %d", lua_tostring(L, -1),
                              (int)strlen(name) + 1);
        }
        if (!binding_test_tensor(L, -1)) {
            if (luaL_testudata(L, -1, TENSOR_METATABLE))
                return luaL_error(L, "save: tensor '%s' was closed (used after <close>)", lua_tostring(L, -2));
            return luaL_error(L, "save: value of '%s' must be a tensor, got %s", lua_tostring(L, -2),
                              luaL_typename(L, -1));
        }
        if (count == INT32_MAX) return luaL_error(L, "save: too many tensors");
        count++;
        lua_pop(L, 1);
    }
    const char **names = lua_newuserdatauv(L, sizeof *names * (size_t)(count ? count : 1), 0);
    tc_tensor **tensors = lua_newuserdatauv(L, sizeof *tensors * (size_t)(count ? count : 1), 0);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        names[n] = lua_tostring(L, -2); /* alive as a key of argument 2 */
        tensors[n] = binding_test_tensor(L, -1);
        n++;
        lua_pop(L, 1);
    }
    const char *metadata = metadata_json(L, 3);
    binding_check(L, tc_safetensors_save(tc_lua_context(L), path, n, names, tensors, metadata));
    return 0;
}

static int l_safetensors_open(lua_State *L) {
    push_opened(L, binding_check_path(L, 1, "open"));
    return 1;
}

static int file_keys(lua_State *L) {
    tc_safetensors_file *file = check_open_file(L, 1, "keys");
    int count = tc_safetensors_count(file);
    lua_createtable(L, count, 0);
    for (int i = 0; i < count; i++) {
        lua_pushstring(L, tc_safetensors_name(file, i));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* The name at idx; NULL when it holds a NUL byte (no tensor has one). */
static const char *check_tensor_name(lua_State *L, int idx) {
    size_t length;
    const char *name = luaL_checklstring(L, idx, &length);
    return strlen(name) == length ? name : NULL;
}

static int file_get(lua_State *L) {
    tc_safetensors_file *file = check_open_file(L, 1, "get");
    const char *name = check_tensor_name(L, 2);
    if (!name) {
        size_t length;
        const char *text = lua_tolstring(L, 2, &length);
        push_quoted(L, text, length);
        return luaL_error(L, "get: no tensor named %s (names have no NUL byte)", lua_tostring(L, -1));
    }
    tc_tensor *t;
    binding_check(L, tc_safetensors_get_by_name(file, name, &t));
    binding_push_tensor(L, t);
    return 1;
}

static int file_has(lua_State *L) {
    tc_safetensors_file *file = check_open_file(L, 1, "has");
    const char *name = check_tensor_name(L, 2);
    lua_pushboolean(L, name && tc_safetensors_find(file, name) >= 0);
    return 1;
}

static int file_metadata(lua_State *L) {
    push_metadata(L, check_open_file(L, 1, "metadata"));
    return 1;
}

static int file_len(lua_State *L) {
    lua_pushinteger(L, tc_safetensors_count(check_open_file(L, 1, "#")));
    return 1;
}

static int file_tostring(lua_State *L) {
    file_box *box = luaL_checkudata(L, 1, FILE_METATABLE);
    if (box->file) lua_pushfstring(L, "SafetensorsFile(%d tensors)", tc_safetensors_count(box->file));
    else lua_pushliteral(L, "SafetensorsFile(closed)");
    return 1;
}

static const luaL_Reg file_methods[] = {
    {"keys", file_keys}, {"get", file_get},     {"has", file_has},
    {"metadata", file_metadata}, {"close", file_close}, {NULL, NULL},
};

static const luaL_Reg io_functions[] = {
    {"save", l_save},
    {"load", l_load},
    {"safetensors_open", l_safetensors_open},
    {"json_encode", l_json_encode},
    {"json_decode", l_json_decode},
    {"json_line", l_json_line},
    {"json_lines", l_json_lines},
    {"read_file", l_read_file},
    {"write_file", l_write_file},
    {"append_file", l_append_file},
    {"file_kind", l_file_kind},
    {NULL, NULL},
};

void binding_register_io(lua_State *L, int module_index) {
    if (luaL_newmetatable(L, FILE_METATABLE)) {
        lua_newtable(L);
        luaL_setfuncs(L, file_methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, file_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, file_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, file_len);
        lua_setfield(L, -2, "__len");
        lua_pushcfunction(L, file_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, JSON_TREE_METATABLE)) {
        lua_pushcfunction(L, json_tree_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, BYTES_METATABLE)) {
        lua_pushcfunction(L, bytes_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushvalue(L, module_index);
    luaL_setfuncs(L, io_functions, 0);
    lua_pop(L, 1);
}
