# tricycle: `make` builds the engine and the Lua module, `make test` runs every test.
LUA ?= lua5.4
LUA_INCDIR ?= /usr/include/lua5.4
BLAS_LIBS ?= -lopenblas
CC ?= cc
BUILD ?= build
SANITIZE ?=

WARNINGS = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wcast-align -Wstrict-prototypes \
           -Wmissing-prototypes -Wwrite-strings -Wundef -Wvla -Wformat=2 -Wno-format-nonliteral
OPTIMIZE ?= -O2 -g
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -fPIC $(OPTIMIZE) $(WARNINGS) $(SANITIZE) $(CFLAGS)
LDFLAGS_ALL = $(SANITIZE) $(LDFLAGS)

ENGINE_SOURCES = $(wildcard src/*.c src/cpu/*.c)
ENGINE_OBJECTS = $(ENGINE_SOURCES:%.c=$(BUILD)/%.o)
BINDING_SOURCES = $(wildcard lua/tricycle/*.c)
BINDING_OBJECTS = $(BINDING_SOURCES:%.c=$(BUILD)/%.o)
ENGINE_LIB = $(BUILD)/libtricycle.a
ENGINE_SHARED = $(BUILD)/libtricycle.so
LUA_MODULE = $(BUILD)/lua/tricycle/core.so
C_TESTS = $(patsubst spec/c/%.c,$(BUILD)/spec/c/%,$(wildcard spec/c/*.c))
LIBS = $(BLAS_LIBS) -lm -lpthread -ldl

.PHONY: all test test-c test-lua clean install asan bench deps

all: $(ENGINE_LIB) $(ENGINE_SHARED) $(LUA_MODULE) $(C_TESTS)

$(BUILD)/%.o: %.c $(wildcard src/*.h src/cpu/*.h lua/tricycle/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -I src -I $(LUA_INCDIR) -c $< -o $@

$(ENGINE_LIB): $(ENGINE_OBJECTS)
	@mkdir -p $(dir $@)
	ar rcs $@ $^

$(ENGINE_SHARED): $(ENGINE_OBJECTS)
	$(CC) -shared -o $@ $^ $(LDFLAGS_ALL) $(LIBS)

$(LUA_MODULE): $(BINDING_OBJECTS) $(ENGINE_OBJECTS)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $^ $(LDFLAGS_ALL) $(LIBS)

$(BUILD)/spec/c/%: spec/c/%.c $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -I src -I $(LUA_INCDIR) $< -o $@ $(ENGINE_LIB) $(LDFLAGS_ALL) -llua5.4 $(LIBS)

# The specs run under Lua 5.4 whatever `lua` points to.
test: all
	@for t in $(C_TESTS); do echo "== $$t"; $$t || exit 1; done
	TRICYCLE_BUILD=$(BUILD) $(LUA) spec/run.lua $(SPEC_ARGS)

asan:
	$(MAKE) BUILD=build-asan OPTIMIZE="-O1 -g -fno-omit-frame-pointer" \
	  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined" all
	ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD=$$($(CC) -print-file-name=libasan.so) \
	  TRICYCLE_BUILD=build-asan $(LUA) spec/run.lua $(SPEC_ARGS)

bench: all
	$(LUA) bench/run.lua

clean:
	rm -rf build build-asan

# Installs the system packages a fresh Debian/Ubuntu machine lacks (root).
deps:
	.ci/install-deps
