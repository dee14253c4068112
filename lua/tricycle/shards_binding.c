/*
 * shards_binding.c: the Lua face of token shards and batch encoding (their
 * sections of src/tricycle.h), as core.shards, plus core.wall_time.
 *
 *   shards.header(count, id_bytes) -> the 1024-byte header
 *   shards.open(path) -> a shard ("tricycle.TokenShard") with
 *     count(), id_bytes(), path(), check_ids(vocab_size),
 *     read(start, count) -> int64 [count], batch(start, rows, length) -> x, y
 *     (start: 0-based token position in the shard), close()
 *   shards.encoder(tokenizer, {threads =, eot =, id_bytes =, separator =})
 *     -> an encoder ("tricycle.BatchEncoder") with
 *     encode(blocks) -> packed ids, {documents per block}, threads(), close();
 *     a block is {data =, format = "text" | "jsonl", continues =, name =, line =, offset =}
 *   shards.find_id(packed, id_bytes, id, n) -> the 0-based position of the
 *     n-th occurrence of id in packed ids, or nil and the number found
 *   shards.count_newlines(text) -> the number of "\n" bytes in text
 *   shards.list_dir(path) -> {{name =, kind = "file" | "directory" | "other"}, ...}
 *   wall_time() -> seconds on a monotonic clock (for rates and ETAs)
 */
#include "tricycle.h"

#include "binding.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SHARD_META "tricycle.TokenShard"
#define ENCODER_META "tricycle.BatchEncoder"
#define HOLDER_META "tricycle.ShardsBuffer"

typedef struct shard_box {
    tc_token_shard *shard; /* NULL once closed */
} shard_box;

typedef struct encoder_box {
    tc_batch_encoder *encoder; /* NULL once closed */
} encoder_box;

/* A malloc'd buffer owned by the Lua stack, so that a Lua error cannot leak it. */
typedef struct holder_box {
    void *data;
} holder_box;

static int holder_gc(lua_State *L) {
    holder_box *box = luaL_checkudata(L, 1, HOLDER_META);
    free(box->data);
    box->data = NULL;
    return 0;
}

static holder_box *push_holder(lua_State *L) {
    holder_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->data = NULL;
    luaL_setmetatable(L, HOLDER_META);
    return box;
}

/* Raises the context's message as it is (no position: it names the function and the file). */
static int fail(lua_State *L) {
    binding_check(L, TC_ERROR_ARGUMENT);
    return 0;
}

/* ---- shards ---- */

static tc_token_shard *check_shard(lua_State *L, int index) {
    shard_box *box = luaL_checkudata(L, index, SHARD_META);
    if (!box->shard) luaL_argerror(L, index, "the token shard is closed");
    return box->shard;
}

static int shards_header(lua_State *L) {
    lua_Integer count = luaL_checkinteger(L, 1);
    lua_Integer id_bytes = luaL_checkinteger(L, 2);
    unsigned char header[1024];
    if (id_bytes < INT32_MIN || id_bytes > INT32_MAX) id_bytes = 0;
    if (tc_token_shard_header(tc_lua_context(L), count, (int)id_bytes, header) != TC_OK) return fail(L);
    lua_pushlstring(L, (const char *)header, sizeof header);
    return 1;
}

static int shards_open(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    shard_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->shard = NULL;
    luaL_setmetatable(L, SHARD_META);
    if (tc_token_shard_open(tc_lua_context(L), path, &box->shard) != TC_OK) return fail(L);
    return 1;
}

static int shard_count(lua_State *L) {
    lua_pushinteger(L, tc_token_shard_count(check_shard(L, 1)));
    return 1;
}

static int shard_id_bytes(lua_State *L) {
    lua_pushinteger(L, tc_token_shard_id_bytes(check_shard(L, 1)));
    return 1;
}

static int shard_path(lua_State *L) {
    lua_pushstring(L, tc_token_shard_path(check_shard(L, 1)));
    return 1;
}

static int shard_check_ids(lua_State *L) {
    tc_token_shard *shard = check_shard(L, 1);
    if (tc_token_shard_check_ids(shard, luaL_checkinteger(L, 2)) != TC_OK) return fail(L);
    return 0;
}

static int shard_read(lua_State *L) {
    tc_token_shard *shard = check_shard(L, 1);
    tc_tensor *t;
    if (tc_token_shard_read(shard, luaL_checkinteger(L, 2), luaL_checkinteger(L, 3), &t) != TC_OK) return fail(L);
    binding_push_tensor(L, t);
    return 1;
}

static int shard_batch(lua_State *L) {
    tc_token_shard *shard = check_shard(L, 1);
    tc_tensor *x, *y;
    if (tc_token_shard_batch(shard, luaL_checkinteger(L, 2), luaL_checkinteger(L, 3), luaL_checkinteger(L, 4), &x,
                             &y) != TC_OK)
        return fail(L);
    binding_push_tensor(L, x);
    binding_push_tensor(L, y);
    return 2;
}

/* __gc, __close and close(): unmaps once; tensors already read stay valid (they are copies). */
static int shard_close(lua_State *L) {
    shard_box *box = luaL_checkudata(L, 1, SHARD_META);
    tc_token_shard_close(box->shard);
    box->shard = NULL;
    return 0;
}

static int shard_tostring(lua_State *L) {
    shard_box *box = luaL_checkudata(L, 1, SHARD_META);
    if (!box->shard) {
        lua_pushliteral(L, "TokenShard(closed)");
    } else {
        lua_pushfstring(L, "TokenShard('%s', %I tokens of uint%d)", tc_token_shard_path(box->shard),
                        (lua_Integer)tc_token_shard_count(box->shard), 8 * tc_token_shard_id_bytes(box->shard));
    }
    return 1;
}

/* ---- the batch encoder ---- */

static tc_batch_encoder *check_encoder(lua_State *L, int index) {
    encoder_box *box = luaL_checkudata(L, index, ENCODER_META);
    if (!box->encoder) luaL_argerror(L, index, "the encoder is closed");
    return box->encoder;
}

static lua_Integer integer_field(lua_State *L, int table, const char *field, lua_Integer fallback, const char *fn) {
    lua_getfield(L, table, field);
    lua_Integer value = fallback;
    if (!lua_isnil(L, -1)) {
        int is_integer;
        value = lua_tointegerx(L, -1, &is_integer);
        if (!is_integer || lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "%s: %s must be an integer, got %s", fn, field, luaL_tolstring(L, -1, NULL));
    }
    lua_pop(L, 1);
    return value;
}

static int shards_encoder(lua_State *L) {
    tc_tokenizer *tok = binding_check_tokenizer(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    tc_batch_encoder_options options = {0};
    lua_Integer threads = integer_field(L, 2, "threads", 1, "batch_encoder");
    lua_Integer eot = integer_field(L, 2, "eot", -1, "batch_encoder");
    lua_Integer id_bytes = integer_field(L, 2, "id_bytes", 2, "batch_encoder");
    if (threads < 1 || threads > 1024)
        return luaL_error(L, "batch_encoder: threads must be from 1 to 1024, got %I", threads);
    if (eot < -1 || eot > INT32_MAX) return luaL_error(L, "batch_encoder: eot %I is neither -1 nor a valid id", eot);
    if (id_bytes != 2 && id_bytes != 4)
        return luaL_error(L, "batch_encoder: id_bytes must be 2 or 4, got %I", id_bytes);
    options.threads = (int)threads;
    options.eot = (int32_t)eot;
    options.id_bytes = (int)id_bytes;
    lua_getfield(L, 2, "separator");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "batch_encoder: separator must be a string, got %s", luaL_typename(L, -1));
        options.separator = lua_tolstring(L, -1, &options.separator_length);
    }
    encoder_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->encoder = NULL;
    luaL_setmetatable(L, ENCODER_META);
    if (tc_batch_encoder_new(tok, &options, &box->encoder) != TC_OK) return fail(L);
    return 1;
}

/* Reads block i (1-based) of the table at index 2 into *block; the strings stay on the stack's table. */
static void read_block(lua_State *L, lua_Integer i, tc_text_block *block) {
    if (lua_rawgeti(L, 2, i) != LUA_TTABLE)
        luaL_error(L, "batch_encode: blocks[%I] must be a table, got %s", i, luaL_typename(L, -1));
    int at = lua_gettop(L);
    lua_getfield(L, at, "data");
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "batch_encode: blocks[%I].data must be a string, got %s", i, luaL_typename(L, -1));
    block->data = lua_tolstring(L, -1, &block->length);
    lua_getfield(L, at, "format");
    const char *format = lua_isnil(L, -1) ? "text" : lua_tostring(L, -1);
    if (format && strcmp(format, "text") == 0) {
        block->format = TC_BLOCK_TEXT;
    } else if (format && strcmp(format, "jsonl") == 0) {
        block->format = TC_BLOCK_JSONL;
    } else {
        luaL_error(L, "batch_encode: blocks[%I].format must be \"text\" or \"jsonl\", got %s", i,
                   luaL_tolstring(L, -1, NULL));
    }
    lua_getfield(L, at, "continues");
    block->continues = lua_toboolean(L, -1);
    lua_getfield(L, at, "name");
    block->name = lua_isnil(L, -1) ? NULL : lua_tostring(L, -1);
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "batch_encode: blocks[%I].name must be a string, got %s", i, luaL_typename(L, -1));
    block->line = integer_field(L, at, "line", 1, "batch_encode");
    block->offset = integer_field(L, at, "offset", 0, "batch_encode");
    /* the strings stay reachable from the blocks table, so their pointers stay valid */
    lua_settop(L, at - 1);
}

static int encoder_encode(lua_State *L) {
    tc_batch_encoder *encoder = check_encoder(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    if (n < 0 || (size_t)n > SIZE_MAX / sizeof(tc_text_block)) return luaL_error(L, "batch_encode: %I blocks", n);
    tc_text_block *blocks = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *blocks, 0);
    int64_t *documents = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *documents, 0);
    for (lua_Integer i = 1; i <= n; i++) read_block(L, i, &blocks[i - 1]);
    holder_box *holder = push_holder(L);
    unsigned char *ids;
    size_t count;
    if (tc_batch_encode(encoder, blocks, (size_t)n, &ids, &count, documents) != TC_OK) return fail(L);
    holder->data = ids;
    lua_pushlstring(L, (const char *)ids, count * (size_t)tc_batch_encoder_id_bytes(encoder));
    lua_createtable(L, (int)(n < INT32_MAX ? n : 0), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_pushinteger(L, (lua_Integer)documents[i - 1]);
        lua_rawseti(L, -2, i);
    }
    return 2;
}

static int encoder_threads(lua_State *L) {
    lua_pushinteger(L, tc_batch_encoder_threads(check_encoder(L, 1)));
    return 1;
}

static int encoder_close(lua_State *L) {
    encoder_box *box = luaL_checkudata(L, 1, ENCODER_META);
    tc_batch_encoder_free(box->encoder);
    box->encoder = NULL;
    return 0;
}

/* ---- helpers ---- */

static int shards_find_id(lua_State *L) {
    size_t length;
    const unsigned char *packed = (const unsigned char *)luaL_checklstring(L, 1, &length);
    lua_Integer id_bytes = luaL_checkinteger(L, 2);
    lua_Integer id = luaL_checkinteger(L, 3);
    lua_Integer n = luaL_checkinteger(L, 4);
    if (id_bytes != 2 && id_bytes != 4) return luaL_error(L, "find_id: id_bytes must be 2 or 4, got %I", id_bytes);
    if (length % (size_t)id_bytes != 0)
        return luaL_error(L, "find_id: %I bytes are not whole ids of %I bytes", (lua_Integer)length, id_bytes);
    if (n < 1) return luaL_error(L, "find_id: n must be at least 1, got %I", n);
    size_t count = length / (size_t)id_bytes;
    lua_Integer found = 0;
    for (size_t i = 0; i < count; i++) {
        const unsigned char *p = packed + i * (size_t)id_bytes;
        uint32_t value = (uint32_t)p[0] | (uint32_t)p[1] << 8;
        if (id_bytes == 4) value |= (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        if ((lua_Integer)value == id && ++found == n) {
            lua_pushinteger(L, (lua_Integer)i);
            return 1;
        }
    }
    lua_pushnil(L);
    lua_pushinteger(L, found);
    return 2;
}

static int shards_count_newlines(lua_State *L) {
    size_t length;
    const char *s = luaL_checklstring(L, 1, &length);
    const char *end = s + length;
    lua_Integer count = 0;
    while ((s = memchr(s, '\n', (size_t)(end - s))) != NULL) {
        count++;
        s++;
    }
    lua_pushinteger(L, count);
    return 1;
}

static int shards_list_dir(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    DIR *dir = opendir(path);
    if (!dir) return luaL_error(L, "list_dir: cannot open '%s': %s", path, strerror(errno));
    lua_newtable(L);
    lua_Integer n = 0;
    int fd = dirfd(dir);
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
        const char *kind = "other";
        struct stat info;
        if (fstatat(fd, entry->d_name, &info, 0) == 0) {
            if (S_ISREG(info.st_mode)) kind = "file";
            else if (S_ISDIR(info.st_mode)) kind = "directory";
        }
        lua_createtable(L, 0, 2);
        lua_pushstring(L, entry->d_name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, kind);
        lua_setfield(L, -2, "kind");
        lua_rawseti(L, -2, ++n);
    }
    closedir(dir);
    return 1;
}

static int wall_time(lua_State *L) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    lua_pushnumber(L, (lua_Number)now.tv_sec + (lua_Number)now.tv_nsec * 1e-9);
    return 1;
}

static const luaL_Reg shard_methods[] = {
    {"count", shard_count},       {"id_bytes", shard_id_bytes}, {"path", shard_path}, {"check_ids", shard_check_ids},
    {"read", shard_read},         {"batch", shard_batch},       {"close", shard_close}, {NULL, NULL},
};

static const luaL_Reg encoder_methods[] = {
    {"encode", encoder_encode},
    {"threads", encoder_threads},
    {"close", encoder_close},
    {NULL, NULL},
};

static const luaL_Reg shards_functions[] = {
    {"header", shards_header},   {"open", shards_open},         {"encoder", shards_encoder},
    {"find_id", shards_find_id}, {"list_dir", shards_list_dir}, {"count_newlines", shards_count_newlines},
    {NULL, NULL},
};

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction close,
                      lua_CFunction tostring) {
    if (luaL_newmetatable(L, name)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, close);
        lua_setfield(L, -2, "__close");
        if (tostring) {
            lua_pushcfunction(L, tostring);
            lua_setfield(L, -2, "__tostring");
        }
    }
    lua_pop(L, 1);
}

void binding_register_shards(lua_State *L, int module_index);

void binding_register_shards(lua_State *L, int module_index) {
    if (luaL_newmetatable(L, HOLDER_META)) {
        lua_pushcfunction(L, holder_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    new_class(L, SHARD_META, shard_methods, shard_close, shard_tostring);
    new_class(L, ENCODER_META, encoder_methods, encoder_close, NULL);
    luaL_newlib(L, shards_functions);
    lua_setfield(L, module_index, "shards");
    lua_pushcfunction(L, wall_time);
    lua_setfield(L, module_index, "wall_time");
}
