/*
 * tokenizer_binding.c: the Lua face of the tokenizers (the tokenizers section of src/tricycle.h).
 *
 * tc_lua_open_tokenizer leaves a table of functions on the stack:
 *   train(text, {vocab_size = N, gpt2_split = false}), char(text),
 *   load(path), load_gpt2(vocab_json_path, merges_txt_path), load_hf(tokenizer_json_path), deserialize(text)
 * each returning a tokenizer userdata ("tricycle.Tokenizer") with methods
 *   encode(text) -> {id, ...}        0-based integer ids
 *   encode_packed(text) -> string    the ids as native-endian int32s
 *   decode(ids) -> string            ids: a table of 0-based integers
 *   decode_bytes(ids) -> string      the same without UTF-8 repair
 *   token(id) -> string              the bytes of one token
 *   token_id(bytes) -> id | nil      the lowest id of a token with these bytes
 *   save(path), serialize() -> string (what save writes),
 *   vocab_size(), merge_count(), kind() -> "bpe" | "char",
 *   gpt2_split() -> boolean, close()
 * and split_incomplete_utf8(bytes) -> complete, tail, for streaming decoded
 * bytes (src/utf8.h decides what a character cut short is).
 * Errors raise Lua errors with the engine's message.
 */
#include "tricycle.h"

#include "binding.h"
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

#define TOKENIZER_META "tricycle.Tokenizer"
#define BUFFER_META "tricycle.TokenizerBuffer"

typedef struct tokenizer_box {
    tc_tokenizer *tok; /* NULL once closed */
} tokenizer_box;

/* A malloc'd buffer owned by the Lua stack until it is released, so that a
 * Lua error (out of memory while building a result) cannot leak it. */
typedef struct buffer_box {
    void *data;
} buffer_box;

static int buffer_gc(lua_State *L) {
    buffer_box *box = luaL_checkudata(L, 1, BUFFER_META);
    free(box->data);
    box->data = NULL;
    return 0;
}

static buffer_box *push_buffer_box(lua_State *L) {
    buffer_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->data = NULL;
    luaL_setmetatable(L, BUFFER_META);
    return box;
}

static int fail(lua_State *L, tc_context *ctx) { return luaL_error(L, "%s", tc_last_error(ctx)); }

static tokenizer_box *check_box(lua_State *L, int index) { return luaL_checkudata(L, index, TOKENIZER_META); }

static tc_tokenizer *check_tokenizer(lua_State *L, int index) {
    tokenizer_box *box = check_box(L, index);
    if (!box->tok) luaL_argerror(L, index, "the tokenizer is closed");
    return box->tok;
}

tc_tokenizer *binding_check_tokenizer(lua_State *L, int index) { return check_tokenizer(L, index); }

/* Pushes a new, empty tokenizer userdata; fill its tok afterwards. */
static tokenizer_box *push_box(lua_State *L) {
    tokenizer_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->tok = NULL;
    luaL_setmetatable(L, TOKENIZER_META);
    return box;
}

/* ---- constructors ---- */

static int tokenizer_train(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "vocab_size");
    int is_integer;
    lua_Integer vocab_size = lua_tointegerx(L, -1, &is_integer);
    if (!is_integer) return luaL_argerror(L, 2, "options.vocab_size must be an integer (at least 256)");
    if (vocab_size < 256 || vocab_size > INT32_MAX)
        return luaL_argerror(
            L, 2,
            lua_pushfstring(L, "options.vocab_size is %I, must be from 256 to %I", vocab_size, (lua_Integer)INT32_MAX));
    lua_getfield(L, 2, "gpt2_split");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) return luaL_argerror(L, 2, "options.gpt2_split must be a boolean");
    bool split = lua_toboolean(L, -1);
    lua_pop(L, 2);
    tc_context *ctx = tc_lua_context(L);
    tokenizer_box *box = push_box(L);
    if (tc_bpe_train(ctx, text, len, (int)vocab_size, split, &box->tok) != TC_OK) return fail(L, ctx);
    return 1;
}

static int tokenizer_char(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    tc_context *ctx = tc_lua_context(L);
    tokenizer_box *box = push_box(L);
    if (tc_char_tokenizer_new(ctx, text, len, &box->tok) != TC_OK) return fail(L, ctx);
    return 1;
}

static int tokenizer_load(lua_State *L) {
    const char *path = binding_check_path(L, 1, "tokenizer.load");
    tc_context *ctx = tc_lua_context(L);
    tokenizer_box *box = push_box(L);
    if (tc_tokenizer_load(ctx, path, &box->tok) != TC_OK) return fail(L, ctx);
    return 1;
}

static int tokenizer_load_gpt2(lua_State *L) {
    const char *vocab = binding_check_path(L, 1, "BPETokenizer.load_gpt2");
    const char *merges = binding_check_path(L, 2, "BPETokenizer.load_gpt2");
    tc_context *ctx = tc_lua_context(L);
    tokenizer_box *box = push_box(L);
    if (tc_tokenizer_load_gpt2(ctx, vocab, merges, &box->tok) != TC_OK) return fail(L, ctx);
    return 1;
}

static int tokenizer_load_hf(lua_State *L) {
    const char *path = binding_check_path(L, 1, "tokenizer.load_hf");
    tc_context *ctx = tc_lua_context(L);
    tokenizer_box *box = push_box(L);
    if (tc_tokenizer_load_hf(ctx, path, &box->tok) != TC_OK) return fail(L, ctx);
    return 1;
}

static int tokenizer_deserialize(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    tc_context *ctx = tc_lua_context(L);
    tokenizer_box *box = push_box(L);
    if (tc_tokenizer_deserialize(ctx, text, len, &box->tok) != TC_OK) return fail(L, ctx);
    return 1;
}

/* ---- methods ---- */

/* Encodes argument 2; the ids stay owned by a buffer box pushed on the stack. */
static int32_t *encode_arg(lua_State *L, tc_tokenizer *tok, size_t *count) {
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    buffer_box *box = push_buffer_box(L);
    int32_t *ids;
    if (tc_tokenizer_encode(tok, text, len, &ids, count) != TC_OK) fail(L, tc_tokenizer_context(tok));
    box->data = ids;
    return ids;
}

static int method_encode(lua_State *L) {
    tc_tokenizer *tok = check_tokenizer(L, 1);
    size_t count;
    const int32_t *ids = encode_arg(L, tok, &count);
    if (count > (size_t)INT32_MAX)
        return luaL_error(L, "encode: %I ids are too many for a Lua table", (lua_Integer)count);
    lua_createtable(L, (int)count, 0);
    for (size_t i = 0; i < count; i++) {
        lua_pushinteger(L, ids[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int method_encode_packed(lua_State *L) {
    tc_tokenizer *tok = check_tokenizer(L, 1);
    size_t count;
    const int32_t *ids = encode_arg(L, tok, &count);
    lua_pushlstring(L, (const char *)ids, count * sizeof *ids);
    return 1;
}

/* Raises "function: what must be an integer, got VALUE" for the number or
 * other value at idx. */
static int not_an_integer(lua_State *L, int idx, const char *function, const char *what) {
    if (lua_type(L, idx) == LUA_TNUMBER)
        return luaL_error(L, "%s: %s must be an integer, got %s", function, what, lua_tostring(L, idx));
    return luaL_error(L, "%s: %s must be an integer, got %s", function, what, luaL_typename(L, idx));
}

/* Reads the ids table at argument 2 (its raw length: a __len cannot make
 * it claim more entries than it holds) into a buffer box pushed on the
 * stack; every id must lie in 0 .. vocab_size - 1. Positions in messages
 * are Lua's, from 1. */
static const int32_t *ids_arg(lua_State *L, const tc_tokenizer *tok, const char *function, size_t *count) {
    if (!lua_istable(L, 2))
        luaL_error(L, "%s: argument 1 (ids) must be a table of integers, got %s", function, luaL_typename(L, 2));
    size_t n = (size_t)binding_list_length(L, 2, false);
    if (n > (size_t)INT32_MAX) luaL_error(L, "%s: %I ids are too many", function, (lua_Integer)n);
    buffer_box *box = push_buffer_box(L);
    box->data = malloc((n > 0 ? n : 1) * sizeof(int32_t));
    if (!box->data) luaL_error(L, "%s: out of memory for %I ids", function, (lua_Integer)n);
    int32_t *ids = box->data;
    int32_t vocab_size = tc_tokenizer_vocab_size(tok);
    for (size_t i = 1; i <= n; i++) {
        int type = lua_rawgeti(L, 2, (lua_Integer)i);
        int is_integer;
        lua_Integer v = lua_tointegerx(L, -1, &is_integer);
        if (type != LUA_TNUMBER || !is_integer) {
            char what[48];
            snprintf(what, sizeof what, "ids[%zu]", i);
            not_an_integer(L, -1, function, what);
        }
        if (v < 0 || v >= vocab_size)
            luaL_error(L, "%s: ids[%I] = %I is out of range for a vocabulary of %d tokens (0..%d)", function,
                       (lua_Integer)i, v, (int)vocab_size, (int)vocab_size - 1);
        ids[i - 1] = (int32_t)v;
        lua_pop(L, 1);
    }
    *count = n;
    return ids;
}

static int decode_with(lua_State *L, bool repair) {
    tc_tokenizer *tok = check_tokenizer(L, 1);
    size_t count;
    const int32_t *ids = ids_arg(L, tok, repair ? "decode" : "decode_bytes", &count);
    buffer_box *text_box = push_buffer_box(L);
    char *text;
    size_t len;
    tc_status status = repair ? tc_tokenizer_decode(tok, ids, count, &text, &len)
                              : tc_tokenizer_decode_bytes(tok, ids, count, &text, &len);
    if (status != TC_OK) return fail(L, tc_tokenizer_context(tok));
    text_box->data = text;
    lua_pushlstring(L, text, len);
    return 1;
}

static int method_decode(lua_State *L) { return decode_with(L, true); }
static int method_decode_bytes(lua_State *L) { return decode_with(L, false); }

static int method_token(lua_State *L) {
    tc_tokenizer *tok = check_tokenizer(L, 1);
    int is_integer;
    lua_Integer id = lua_tointegerx(L, 2, &is_integer);
    if (lua_type(L, 2) != LUA_TNUMBER || !is_integer) return not_an_integer(L, 2, "token", "id");
    if (id < 0 || id >= tc_tokenizer_vocab_size(tok))
        return luaL_error(L, "token: id %I is out of range for a vocabulary of %d tokens (0..%d)", id,
                          tc_tokenizer_vocab_size(tok), tc_tokenizer_vocab_size(tok) - 1);
    const char *bytes;
    size_t len;
    if (tc_tokenizer_token_bytes(tok, (int32_t)id, &bytes, &len) != TC_OK) return fail(L, tc_tokenizer_context(tok));
    lua_pushlstring(L, bytes, len);
    return 1;
}

static int method_save(lua_State *L) {
    tc_tokenizer *tok = check_tokenizer(L, 1);
    const char *path = binding_check_path(L, 2, "save");
    if (tc_tokenizer_save(tok, path) != TC_OK) return fail(L, tc_tokenizer_context(tok));
    return 0;
}

static int method_serialize(lua_State *L) {
    tc_tokenizer *tok = check_tokenizer(L, 1);
    buffer_box *box = push_buffer_box(L);
    char *text;
    size_t len;
    if (tc_tokenizer_serialize(tok, &text, &len) != TC_OK) return fail(L, tc_tokenizer_context(tok));
    box->data = text;
    lua_pushlstring(L, text, len);
    return 1;
}

static int method_token_id(lua_State *L) {
    tc_tokenizer *tok = check_tokenizer(L, 1);
    size_t len;
    const char *bytes = luaL_checklstring(L, 2, &len);
    int32_t id = tc_tokenizer_find_token(tok, bytes, len);
    if (id < 0) {
        lua_pushnil(L);
    } else {
        lua_pushinteger(L, id);
    }
    return 1;
}

static int method_vocab_size(lua_State *L) {
    lua_pushinteger(L, tc_tokenizer_vocab_size(check_tokenizer(L, 1)));
    return 1;
}

static int method_merge_count(lua_State *L) {
    lua_pushinteger(L, tc_tokenizer_merge_count(check_tokenizer(L, 1)));
    return 1;
}

static int method_kind(lua_State *L) {
    lua_pushstring(L, tc_tokenizer_kind_name(tc_tokenizer_get_kind(check_tokenizer(L, 1))));
    return 1;
}

static int method_gpt2_split(lua_State *L) {
    lua_pushboolean(L, tc_tokenizer_gpt2_split(check_tokenizer(L, 1)));
    return 1;
}

/* __gc, __close and close(): frees once; later calls do nothing. */
static int method_close(lua_State *L) {
    tokenizer_box *box = check_box(L, 1);
    tc_tokenizer_free(box->tok);
    box->tok = NULL;
    return 0;
}

static int method_tostring(lua_State *L) {
    tokenizer_box *box = check_box(L, 1);
    if (!box->tok) {
        lua_pushliteral(L, "Tokenizer(closed)");
    } else {
        lua_pushfstring(L, "Tokenizer(%s, vocab_size=%d%s)", tc_tokenizer_kind_name(tc_tokenizer_get_kind(box->tok)),
                        tc_tokenizer_vocab_size(box->tok), tc_tokenizer_gpt2_split(box->tok) ? ", gpt2_split" : "");
    }
    return 1;
}

/* bytes -> the bytes up to a last character cut short, and that character's
 * bytes ("" when the bytes end on a whole character, or on bytes that can
 * never become one, which are not held back). */
static int tokenizer_split_incomplete_utf8(lua_State *L) {
    size_t len;
    const char *bytes = luaL_checklstring(L, 1, &len);
    size_t tail = tc_utf8_incomplete_tail((const unsigned char *)bytes, len);
    lua_pushlstring(L, bytes, len - tail);
    lua_pushlstring(L, bytes + len - tail, tail);
    return 2;
}

static const luaL_Reg tokenizer_methods[] = {
    {"encode", method_encode},
    {"encode_packed", method_encode_packed},
    {"decode", method_decode},
    {"decode_bytes", method_decode_bytes},
    {"token", method_token},
    {"token_id", method_token_id},
    {"save", method_save},
    {"serialize", method_serialize},
    {"vocab_size", method_vocab_size},
    {"merge_count", method_merge_count},
    {"kind", method_kind},
    {"gpt2_split", method_gpt2_split},
    {"close", method_close},
    {NULL, NULL},
};

static const luaL_Reg tokenizer_functions[] = {
    {"train", tokenizer_train},
    {"char", tokenizer_char},
    {"load", tokenizer_load},
    {"load_gpt2", tokenizer_load_gpt2},
    {"load_hf", tokenizer_load_hf},
    {"deserialize", tokenizer_deserialize},
    {"split_incomplete_utf8", tokenizer_split_incomplete_utf8},
    {NULL, NULL},
};

int tc_lua_open_tokenizer(lua_State *L) {
    if (luaL_newmetatable(L, BUFFER_META)) {
        lua_pushcfunction(L, buffer_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, TOKENIZER_META)) {
        luaL_newlib(L, tokenizer_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, method_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, method_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, method_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    luaL_newlib(L, tokenizer_functions);
    return 1;
}
