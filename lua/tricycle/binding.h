/*
 * binding.h: what the Lua binding's files share. The binding is thin: it
 * checks Lua arguments, converts 1-based dims to the engine's 0-based ones,
 * calls the C API and turns failures into Lua errors.
 */
#ifndef TRICYCLE_BINDING_H
#define TRICYCLE_BINDING_H

#include "tricycle.h"
#include "tricycle_lua.h"

#include "lua_compat.h"

#define TENSOR_METATABLE "tricycle.Tensor"

typedef struct lua_tensor {
    tc_tensor *tensor; /* NULL once closed */
} lua_tensor;

/* Raises the context's last error as a Lua error unless status is TC_OK. */
void binding_check(lua_State *L, tc_status status);
/* The same, with "function: " in front of a message that does not start
 * with it (an inner op's error, or one that names no op, such as running out
 * of memory), so the error says which call failed. */
void binding_check_in(lua_State *L, tc_status status, const char *function);

/* Pushes a new userdata owning t (the caller's reference moves into it);
 * may run a garbage collection step sized by native memory. */
void binding_push_tensor(lua_State *L, tc_tensor *t);
/* The tensor at idx; a Lua error naming function and argument otherwise. */
tc_tensor *binding_check_tensor(lua_State *L, int idx, const char *function);
tc_tensor *binding_test_tensor(lua_State *L, int idx);

/* A tensor from a tensor or a number argument (a number becomes a 0-dim
 * tensor like `like`); returns an owned reference. */
tc_tensor *binding_tensor_or_scalar(lua_State *L, int idx, tc_tensor *like, const char *function);

/* Reads a Lua dim (1-based, negative from the end) as a 0-based engine dim;
 * negative values pass through for the engine to resolve. */
int binding_check_dim(lua_State *L, int idx, const char *function);
/* Reads a shape given as a table or as numbers from idx on. */
int binding_check_shape(lua_State *L, int idx, int64_t *shape, const char *function);
/* The length of the list at idx (its __len's when honour_len, else the raw
 * one), counting on to its largest positive integral key: `#` may stop at a
 * nil inside (LuaJIT: #{1, nil, 3} is 1), which would drop what follows
 * instead of naming the nil. */
lua_Integer binding_list_length(lua_State *L, int idx, bool honour_len);
/* The path string at idx; a Lua error naming function when it is not a
 * string, is empty or holds a NUL byte (C would cut it there). */
const char *binding_check_path(lua_State *L, int idx, const char *function);
/* The options table at idx (0 when absent); raises an error for a key that is
 * not in `allowed` (NULL-terminated). */
int binding_check_options(lua_State *L, int idx, const char *function, const char *const *allowed);
tc_dtype binding_opt_dtype(lua_State *L, int idx, const char *field, tc_dtype fallback, const char *function);

void binding_register_ops(lua_State *L, int methods_index, int module_index);
int tc_lua_open_tokenizer(lua_State *L);
/* The open tokenizer at index (a Lua error otherwise), for other binding files. */
tc_tokenizer *binding_check_tokenizer(lua_State *L, int index);

#endif
