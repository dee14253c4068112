# tricycle: `make` builds the engine and the Lua module, `make test` runs every test.
# `make V=1` shows the full compiler command lines.
# LUA picks the Lua the module is built for and the specs run under: lua5.4 (the default), lua5.3,
# lua5.2, lua5.1 or luajit (2.1). Lua 5.4's module is build/lua/tricycle/core.so; each other Lua's
# is build/<LUA>/tricycle/core.so (build/luajit/tricycle/core.so, ...). The engine is shared.
LUA ?= lua5.4
LUA_NAME := $(notdir $(LUA))
LUA_NAMES = lua5.1 luajit lua5.2 lua5.3 lua5.4
ifeq ($(LUA_NAME),luajit)
  LUA_INCDIR ?= /usr/include/luajit-2.1
else ifneq ($(filter lua5.1 lua5.2 lua5.3,$(LUA_NAME)),)
  LUA_INCDIR ?= /usr/include/$(LUA_NAME)
else
  LUA_INCDIR ?= /usr/include/lua5.4
endif
# The C tests embed Lua 5.4 whichever Lua the module is built for.
C_TEST_LUA_INCDIR ?= /usr/include/lua5.4
BLAS_LIBS ?= -lopenblas
CC ?= cc
LIBFLAG ?= -shared
BUILD ?= build
SANITIZE ?=
# Warnings are errors in development; a packager may build with WERROR= .
WERROR ?= -Werror

# Where `make install` puts the Lua module (luarocks passes its own).
PREFIX ?= /usr/local
INST_LIBDIR ?= $(PREFIX)/lib/lua/5.4
INST_LUADIR ?= $(PREFIX)/share/lua/5.4

# The tests find the dataset through TRICYCLE_DATA; default to ../shared/data when it exists.
ifeq ($(origin TRICYCLE_DATA),undefined)
  ifneq ($(wildcard ../shared/data),)
    TRICYCLE_DATA := $(abspath ../shared/data)
  endif
endif
ifdef TRICYCLE_DATA
  export TRICYCLE_DATA
endif

ifeq ($(V),1)
  Q =
  say = @true
else
  Q = @
  say = @printf '  %-6s %s\n'
endif

WARNINGS = -Wall -Wextra $(WERROR) -Wshadow -Wpointer-arith -Wcast-align -Wstrict-prototypes \
           -Wmissing-prototypes -Wwrite-strings -Wundef -Wvla -Wformat=2 -Wno-format-nonliteral
OPTIMIZE ?= -O2 -g
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -fPIC $(OPTIMIZE) $(WARNINGS) $(SANITIZE) $(CFLAGS)
LDFLAGS_ALL = $(SANITIZE) $(LDFLAGS)

ENGINE_SOURCES = $(wildcard src/*.c src/cpu/*.c)
ENGINE_OBJECTS = $(ENGINE_SOURCES:%.c=$(BUILD)/%.o)
BINDING_SOURCES = $(wildcard lua/tricycle/*.c)
LUA_MODULE_DIR = $(BUILD)/$(if $(filter lua5.1 lua5.2 lua5.3 luajit,$(LUA_NAME)),$(LUA_NAME),lua)
BINDING_OBJECTS = $(BINDING_SOURCES:lua/%.c=$(LUA_MODULE_DIR)/%.o)
ENGINE_LIB = $(BUILD)/libtricycle.a
ENGINE_SHARED = $(BUILD)/libtricycle.so
LUA_MODULE = $(LUA_MODULE_DIR)/tricycle/core.so
C_TESTS = $(patsubst spec/c/%.c,$(BUILD)/spec/c/%,$(wildcard spec/c/*.c))
HOST_EXAMPLE = $(BUILD)/examples/host/host
LIBS = $(BLAS_LIBS) -lm -lpthread -ldl

# The MPI glue (src/mpi/), libtricycle_mpi.so beside core.so, which the engine
# opens only when a context joins a world of processes: built when Open MPI's
# mpicc is found (WITH_MPI=0 leaves it out, WITH_MPI=1 requires it). Its
# headers are system headers to our warnings; -z defs makes a missing MPI
# symbol a link error instead of a library that cannot load.
WITH_MPI ?= auto
MPICC ?= $(shell command -v mpicc 2>/dev/null)
MPI_CFLAGS ?= $(if $(MPICC),$(patsubst -I%,-isystem %,$(shell $(MPICC) --showme:compile 2>/dev/null)))
MPI_LDFLAGS ?= $(if $(MPICC),$(shell $(MPICC) --showme:link 2>/dev/null))
MPI_LIB = $(BUILD)/lua/tricycle/libtricycle_mpi.so
ifeq ($(WITH_MPI),auto)
  BUILD_MPI := $(if $(MPI_LDFLAGS),1,0)
else
  BUILD_MPI := $(WITH_MPI)
endif
ifeq ($(BUILD_MPI)$(MPI_LDFLAGS),1)
  $(error WITH_MPI=1 but mpicc was not found: install libopenmpi-dev or set MPICC=/path/to/mpicc)
endif

.DEFAULT_GOAL := all
# The CUDA backend: `make cuda`, `make cuda-emulated`, `make test-cuda` (see cuda/cuda.mk).
include cuda/cuda.mk
# The fuzzers (clang, libFuzzer): `make fuzz`, `make fuzz FUZZ_TARGETS=json` (see spec/fuzz/fuzz.mk).
include spec/fuzz/fuzz.mk

.PHONY: all module test test-c test-lua test-distributed clean install asan bench deps cuda cuda-emulated cuda-kernels \
        test-cuda test-gpu lua-all test-luajit test-luajit-if-installed test-luas test-smoke-luas examples-host luajit-module test-hosts

# The CUDA backend and the MPI glue are built once, in $(BUILD)/lua/tricycle/; another Lua's module
# finds them through links beside it (the engine looks for them beside core.so).
SIDE_LIBS = $(if $(filter 1,$(BUILD_CUDA)),$(CUDA_LIB)) $(if $(filter 1,$(BUILD_MPI)),$(MPI_LIB))
SIDE_LINKS = $(if $(filter $(BUILD)/lua,$(LUA_MODULE_DIR)),,$(patsubst $(BUILD)/lua/%,$(LUA_MODULE_DIR)/%,$(SIDE_LIBS)))
# The C host example embeds Lua 5.4: built with the 5.4 module only.
HOST_EXAMPLES = $(if $(filter $(BUILD)/lua,$(LUA_MODULE_DIR)),$(HOST_EXAMPLE))

all: $(ENGINE_LIB) $(ENGINE_SHARED) $(LUA_MODULE) $(C_TESTS) $(SIDE_LIBS) $(SIDE_LINKS) $(HOST_EXAMPLES)

# Only what `require("tricycle")` needs (the rockspec builds this; WITH_CUDA=1 adds the CUDA backend,
# and the MPI glue comes along when mpicc is found).
module: $(LUA_MODULE) $(if $(filter 1,$(WITH_CUDA)),$(CUDA_LIB)) $(if $(filter 1,$(BUILD_MPI)),$(MPI_LIB))

# The module for every supported Lua (each needs its -dev package): build/lua5.1/tricycle/core.so,
# build/luajit/..., build/lua5.2/..., build/lua5.3/... and build/lua/tricycle/core.so for 5.4.
lua-all:
	$(Q)for lua in $(LUA_NAMES); do $(MAKE) --no-print-directory LUA=$$lua module || exit 1; done

$(LUA_MODULE_DIR)/tricycle/lib%.so: $(BUILD)/lua/tricycle/lib%.so
	@mkdir -p $(dir $@)
	$(Q)ln -sf ../../lua/tricycle/$(notdir $<) $@

$(BUILD)/%.o: %.c $(wildcard src/*.h src/unicode/*.h src/cpu/*.h lua/tricycle/*.h)
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)$(CC) $(CFLAGS_ALL) -I src -I $(C_TEST_LUA_INCDIR) -c $< -o $@

# The binding, against the headers of the Lua it is built for.
$(LUA_MODULE_DIR)/%.o: lua/%.c $(wildcard src/*.h lua/tricycle/*.h)
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)$(CC) $(CFLAGS_ALL) -I src -I $(LUA_INCDIR) -c $< -o $@

$(ENGINE_LIB): $(ENGINE_OBJECTS)
	@mkdir -p $(dir $@)
	$(say) AR $@
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

$(ENGINE_SHARED): $(ENGINE_OBJECTS)
	$(say) LD $@
	$(Q)$(CC) $(LIBFLAG) -o $@ $^ $(LDFLAGS_ALL) $(LIBS)

$(LUA_MODULE): $(BINDING_OBJECTS) $(ENGINE_OBJECTS)
	@mkdir -p $(dir $@)
	$(say) LD $@
	$(Q)$(CC) $(LIBFLAG) -o $@ $^ $(LDFLAGS_ALL) $(LIBS)

$(MPI_LIB): src/mpi/mpi_glue.c src/distributed_glue.h src/tricycle.h src/op_list.h
	@mkdir -p $(dir $@)
	$(say) CCLD $@
	$(Q)$(CC) $(CFLAGS_ALL) $(LIBFLAG) -I src $(MPI_CFLAGS) $< -o $@ $(LDFLAGS_ALL) $(MPI_LDFLAGS) -lpthread -Wl,-z,defs

$(BUILD)/spec/c/%: spec/c/%.c $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(say) CCLD $@
	$(Q)$(CC) $(CFLAGS_ALL) -I src -I $(C_TEST_LUA_INCDIR) $< -o $@ $(ENGINE_LIB) $(LDFLAGS_ALL) -llua5.4 $(LIBS)
$(BUILD)/spec/c/sgemm_test $(BUILD)/spec/c/bgemm_test: spec/c/gemm_check.h
$(BUILD)/spec/c/shards_test $(BUILD)/spec/c/tokenizer_test: spec/c/check_calls.h

# A C program embedding Lua 5.4 with the module linked in statically (examples/host/host.c);
# it finds the Lua modules and examples/host/frame.lua in this source tree (TRICYCLE_ROOT overrides).
examples-host: $(HOST_EXAMPLE)

$(HOST_EXAMPLE): examples/host/host.c $(BUILD)/lua/tricycle/core.so
	@mkdir -p $(dir $@)
	$(say) CCLD $@
	$(Q)$(CC) $(CFLAGS_ALL) -I src -I lua/tricycle -I $(C_TEST_LUA_INCDIR) -DTRICYCLE_SOURCE_ROOT='"$(CURDIR)"' $< \
	  -o $@ $(BINDING_SOURCES:lua/%.c=$(BUILD)/lua/%.o) $(ENGINE_LIB) $(LDFLAGS_ALL) -llua5.4 $(LIBS)

# The Neovim and LÖVE examples (spec/nvim_spec.lua, spec/love_spec.lua) run on LuaJIT: `make test` builds
# its module too when LuaJIT's headers are installed (else those specs are pending, saying why).
# `make test-hosts` runs just the host specs (C host, Neovim, LÖVE).
HOST_LUAJIT_MODULE = $(if $(and $(filter $(BUILD)/lua,$(LUA_MODULE_DIR)),$(wildcard /usr/include/luajit-2.1/lua.h)),\
  luajit-module)
HOST_SPECS = spec/hosts_spec.lua spec/host_example_spec.lua spec/nvim_spec.lua spec/love_spec.lua
luajit-module:
	$(Q)$(MAKE) --no-print-directory LUA=luajit module

test-hosts: all luajit-module
	TRICYCLE_BUILD=$(BUILD) $(LUA) spec/run.lua $(HOST_SPECS)

# The specs run under $(LUA) (Lua 5.4 by default, whatever `lua` points to); spec/run.lua picks the module
# built for the Lua running it.
RUN_C_TESTS = @for t in $(C_TESTS); do echo "== $$t"; $$t || exit 1; done
RUN_SPECS = TRICYCLE_BUILD=$(BUILD) $(LUA) spec/run.lua $(SPEC_ARGS)

test: all $(HOST_LUAJIT_MODULE)
	$(RUN_C_TESTS)
	$(RUN_SPECS)
	$(Q)$(MAKE) --no-print-directory test-luajit-if-installed
	$(Q)$(MAKE) --no-print-directory test-smoke-luas

# The whole spec suite under LuaJIT 2.1 (its module in build/luajit/).
test-luajit:
	$(Q)$(MAKE) --no-print-directory LUA=luajit all
	TRICYCLE_BUILD=$(BUILD) luajit spec/run.lua $(SPEC_ARGS)

# `make test`'s LuaJIT suite: skipped with a notice when LuaJIT or its headers are missing.
test-luajit-if-installed:
	$(Q)if ! command -v luajit > /dev/null 2>&1 || [ ! -f /usr/include/luajit-2.1/lua.h ]; then \
	  echo "== the spec suite under LuaJIT: skipped (luajit or its headers are not installed)"; \
	else echo "== the spec suite under LuaJIT"; $(MAKE) --no-print-directory test-luajit || exit 1; fi

# The smoke spec (tensors, autograd, a GPT training step, generation, a checkpoint round trip) under
# Lua 5.1, 5.2 and 5.3, each with its own module; `make test` runs it after the 5.4 and LuaJIT suites. A
# Lua whose interpreter or headers are missing is skipped with a notice (.ci/install-deps installs them all).
SMOKE_LUAS = lua5.1 lua5.2 lua5.3
test-smoke-luas:
	$(Q)for lua in $(SMOKE_LUAS); do \
	  incdir=/usr/include/$$lua; [ $$lua = luajit ] && incdir=/usr/include/luajit-2.1; \
	  if ! command -v $$lua > /dev/null 2>&1 || [ ! -f $$incdir/lua.h ]; then \
	    echo "== smoke spec under $$lua: skipped ($$lua or its headers are not installed)"; continue; fi; \
	  $(MAKE) --no-print-directory LUA=$$lua WITH_CUDA=0 module || exit 1; \
	  echo "== smoke spec under $$lua"; TRICYCLE_BUILD=$(BUILD) $$lua spec/run.lua spec/smoke/smoke_spec.lua || exit 1; \
	done

# The smoke spec under 5.1, 5.2 and 5.3, then the whole suite under LuaJIT.
test-luas: test-smoke-luas test-luajit

test-c: all
	$(RUN_C_TESTS)

test-lua: all
	$(RUN_SPECS)

# The multi-process specs (several ranks under mpirun): a missing MPI fails them instead of leaving them pending.
test-distributed: all
	TRICYCLE_REQUIRE_MPI=1 TRICYCLE_BUILD=$(BUILD) $(LUA) spec/run.lua spec/distributed_spec.lua

# The whole suite (C tests and specs) under AddressSanitizer and UBSan, in build-asan/.
# Lua itself is not instrumented, so the ASan runtime is preloaded for the specs;
# curl hangs with it preloaded, so the specs' downloads run curl without it.
ASAN_ENV = ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
asan:
	$(Q)$(MAKE) --no-print-directory BUILD=build-asan WITH_CUDA=0 OPTIMIZE="-O1 -g -fno-omit-frame-pointer" \
	  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined" all
	@for t in $(patsubst $(BUILD)/%,build-asan/%,$(C_TESTS)); do echo "== $$t"; $(ASAN_ENV) $$t || exit 1; done
	@mkdir -p build-asan/bin
	@printf '#!/bin/sh\nexec env -u LD_PRELOAD "$$(PATH=%s command -v curl)" "$$@"\n' "$$PATH" > build-asan/bin/curl
	@chmod +x build-asan/bin/curl
	$(ASAN_ENV) LD_PRELOAD=$$($(CC) -print-file-name=libasan.so) PATH="$(CURDIR)/build-asan/bin:$$PATH" \
	  TRICYCLE_BUILD=build-asan $(LUA) spec/run.lua $(SPEC_ARGS)

# Every bench/*_bench.lua in turn, or the ones named: make bench BENCHES=bench/x_bench.lua
# bench/gpt_bench.lua times raw OpenBLAS through $(SGEMM_BENCH); BENCH_QUICK=1 makes it short.
BENCHES ?= $(wildcard bench/*_bench.lua)
SGEMM_BENCH = $(BUILD)/bench/sgemm_bench
bench: all $(SGEMM_BENCH)
	@for b in $(BENCHES); do echo "== $$b"; TRICYCLE_BUILD=$(BUILD) $(LUA) $$b || exit 1; done

# sgemm_bench times OpenBLAS and the engine's own cpu_sgemm, so it links the engine library.
$(SGEMM_BENCH): bench/sgemm_bench.c bench/gemm_bench.h $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(say) CCLD $@
	$(Q)$(CC) $(CFLAGS_ALL) -I src $< -o $@ $(ENGINE_LIB) $(LDFLAGS_ALL) $(LIBS)

# bgemm_bench: the bf16 GEMM (cpu_bgemm) beside cpu_sgemm on the linear layers of bench/common.lua's
# configs B and C at 1 and 2 threads; `make bgemm-bench` writes bench/results/bgemm.md (BGEMM_REPS repeats).
BGEMM_BENCH = $(BUILD)/bench/bgemm_bench
BGEMM_REPS ?= 7
$(BGEMM_BENCH): bench/bgemm_bench.c bench/gemm_bench.h $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(say) CCLD $@
	$(Q)$(CC) $(CFLAGS_ALL) -I src $< -o $@ $(ENGINE_LIB) $(LDFLAGS_ALL) $(LIBS)

.PHONY: bgemm-bench
bgemm-bench: $(BGEMM_BENCH)
	$(Q)sh bench/bgemm_report.sh $(BGEMM_BENCH) $(BGEMM_REPS) > bench/results/bgemm.md.tmp
	$(Q)mv bench/results/bgemm.md.tmp bench/results/bgemm.md

# Installs the Lua module: core.so into INST_LIBDIR/tricycle, every Lua file under
# lua/tricycle/ (subfolders included) into INST_LUADIR/tricycle.
install: $(LUA_MODULE) $(if $(filter 1,$(BUILD_MPI)),$(MPI_LIB))
	install -d $(DESTDIR)$(INST_LIBDIR)/tricycle $(DESTDIR)$(INST_LUADIR)/tricycle
	install -m 755 $(LUA_MODULE) $(DESTDIR)$(INST_LIBDIR)/tricycle/core.so
	if [ -f $(CUDA_LIB) ]; then install -m 755 $(CUDA_LIB) $(DESTDIR)$(INST_LIBDIR)/tricycle/libtricycle_cuda.so; fi
	if [ -f $(MPI_LIB) ]; then install -m 755 $(MPI_LIB) $(DESTDIR)$(INST_LIBDIR)/tricycle/libtricycle_mpi.so; fi
	cd lua && find tricycle -name '*.lua' | while read -r file; do \
	  install -D -m 644 "$$file" "$(DESTDIR)$(INST_LUADIR)/$$file" || exit 1; done

clean:
	rm -rf build build-asan build-fuzz

# Installs the system packages a fresh Debian/Ubuntu machine lacks (root).
deps:
	bash .ci/install-deps
