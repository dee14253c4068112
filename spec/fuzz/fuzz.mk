# spec/fuzz/fuzz.mk: the libFuzzer targets (included by the Makefile; docs/DEVELOPING.md, "Fuzzing").
#
#   make fuzz              builds the targets, writes the seed corpora, runs each target FUZZ_SECONDS
#                          (default 60); fails on any crash, leak, hang or sanitizer report
#   make fuzz FUZZ_TARGETS=json            only the targets named (spec/fuzz/<name>.c)
#   make fuzz FUZZ_ARGS=-runs=10000000     more libFuzzer options (these come after the defaults)
#   make fuzz-build        only the binaries: build-fuzz/bin/<name>
#   make fuzz-corpus       only the seed files the project's own writers make: build-fuzz/corpus/<name>/
#   make fuzz-regressions  only the committed reproducers spec/fuzz/regressions/<name>/*, each run once
#
# The engine (and, for the checkpoint target, the Lua binding) is compiled again with clang, coverage
# instrumentation, ASan and UBSan in build-fuzz/obj/. A run reads build-fuzz/corpus/<name>/ (where it
# also keeps the new inputs it finds), the committed seeds spec/fuzz/seeds/<name>/ and reproducers
# spec/fuzz/regressions/<name>/, and writes a crashing input to build-fuzz/artifacts/<name>/ and its
# log to build-fuzz/logs/<name>.log.
FUZZ_CC ?= clang
FUZZ_BUILD = build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_ARGS ?=
FUZZ_ALL = $(patsubst spec/fuzz/%.c,%,$(wildcard spec/fuzz/*.c))
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=undefined
# The project's warnings, less clang's -Wcast-align, which flags every char * to float * cast on x86
# (gcc's flags them only on targets that need alignment).
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer $(WARNINGS) -Wno-cast-align $(FUZZ_SANITIZE)
FUZZ_ENGINE_OBJECTS = $(ENGINE_SOURCES:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_BINDING_OBJECTS = $(BINDING_SOURCES:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_ENGINE_LIB = $(FUZZ_BUILD)/libtricycle_fuzz.a

# The longest input each target is given, and its dictionary (spec/fuzz/dicts/, optional).
FUZZ_MAX_LEN_safetensors = 8192
FUZZ_MAX_LEN_tokenizer = 16384
FUZZ_MAX_LEN_gpt2 = 8192
FUZZ_MAX_LEN_tokenizer_hf = 16384
FUZZ_MAX_LEN_json = 4096
FUZZ_MAX_LEN_checkpoint = 4096
FUZZ_MAX_LEN_shapes = 512
FUZZ_DICT_safetensors = spec/fuzz/dicts/json.dict
FUZZ_DICT_gpt2 = spec/fuzz/dicts/json.dict
FUZZ_DICT_tokenizer_hf = spec/fuzz/dicts/tokenizer_hf.dict
FUZZ_DICT_json = spec/fuzz/dicts/json.dict
FUZZ_DICT_checkpoint = spec/fuzz/dicts/checkpoint.dict
FUZZ_DICT_tokenizer = spec/fuzz/dicts/tokenizer.dict

# One job each, no BLAS threads; -timeout makes a hang a failure; leaks are checked (the default).
FUZZ_ENV = OPENBLAS_NUM_THREADS=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
FUZZ_OPTIONS = -timeout=20 -rss_limit_mb=2048 -print_final_stats=1

.PHONY: fuzz fuzz-build fuzz-corpus fuzz-regressions clean-fuzz

fuzz-build: $(addprefix $(FUZZ_BUILD)/bin/,$(FUZZ_TARGETS))

# clang 14 refuses a 64-byte vector passed between functions built for different instruction sets,
# which these files do (into always-inline helpers, which gcc accepts). Built for AVX-512 as a whole
# they compile; their code runs only where the CPU has AVX-512 (the native sgemm checks) or in the
# fused kernels, which no target calls.
FUZZ_AVX512_FILES = cpu_sgemm cpu_bgemm cpu_norm cpu_attention cpu_cross_entropy cpu_optim
$(patsubst %,$(FUZZ_BUILD)/obj/src/cpu/%.o,$(FUZZ_AVX512_FILES)): FUZZ_FILE_FLAGS = -mavx512f
$(FUZZ_BUILD)/obj/%.o: %.c $(wildcard src/*.h src/unicode/*.h src/cpu/*.h lua/tricycle/*.h)
	@mkdir -p $(dir $@)
	$(say) FUZZCC $<
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_FILE_FLAGS) -fsanitize=fuzzer-no-link -I src -I $(LUA_INCDIR) -c $< -o $@

$(FUZZ_ENGINE_LIB): $(FUZZ_ENGINE_OBJECTS)
	$(say) AR $@
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

# The binding registers its parts through weak symbols, so its objects are linked whole, not from an archive.
$(FUZZ_BUILD)/bin/checkpoint: FUZZ_EXTRA = $(FUZZ_BINDING_OBJECTS) -llua5.4
$(FUZZ_BUILD)/bin/checkpoint: $(FUZZ_BINDING_OBJECTS)
$(FUZZ_BUILD)/bin/%: spec/fuzz/%.c spec/fuzz/fuzz.h $(FUZZ_ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(say) FUZZLD $@
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -I src -I $(LUA_INCDIR) -DFUZZ_LUA_DIR='"$(CURDIR)/lua"' \
	  $< -o $@ $(FUZZ_EXTRA) $(FUZZ_ENGINE_LIB) $(LIBS)

# Seed files from the project's own writers (through the gcc build of the Lua module).
fuzz-corpus: $(LUA_MODULE)
	$(Q)TRICYCLE_BUILD=$(BUILD) $(LUA) spec/fuzz/make_corpus.lua $(FUZZ_BUILD)/corpus

# Runs every target even after one fails, then fails naming them.
fuzz: fuzz-build fuzz-corpus
	@mkdir -p $(FUZZ_BUILD)/logs; rm -f $(FUZZ_BUILD)/failed
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_run,$(t)))
	@if [ -s $(FUZZ_BUILD)/failed ]; then echo "fuzz: FAILED: $$(cat $(FUZZ_BUILD)/failed | tr '\n' ' ')"; \
	  echo "(inputs in $(FUZZ_BUILD)/artifacts/, logs in $(FUZZ_BUILD)/logs/)"; exit 1; fi
	@echo "fuzz: $(words $(FUZZ_TARGETS)) targets ran $(FUZZ_SECONDS)s each without a finding"

define fuzz_run
	@echo "== fuzz $(1): $(FUZZ_SECONDS)s"
	@mkdir -p $(FUZZ_BUILD)/corpus/$(1) $(FUZZ_BUILD)/artifacts/$(1)
	@$(FUZZ_ENV) $(FUZZ_BUILD)/bin/$(1) $(FUZZ_OPTIONS) -max_total_time=$(FUZZ_SECONDS) \
	  -max_len=$(FUZZ_MAX_LEN_$(1)) $(if $(FUZZ_DICT_$(1)),-dict=$(FUZZ_DICT_$(1))) \
	  -artifact_prefix=$(FUZZ_BUILD)/artifacts/$(1)/ $(FUZZ_ARGS) \
	  $(FUZZ_BUILD)/corpus/$(1) $(wildcard spec/fuzz/seeds/$(1) spec/fuzz/regressions/$(1)) \
	  > $(FUZZ_BUILD)/logs/$(1).log 2>&1 \
	  && grep -aE '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)' $(FUZZ_BUILD)/logs/$(1).log \
	  || { tail -n 60 $(FUZZ_BUILD)/logs/$(1).log; echo $(1) >> $(FUZZ_BUILD)/failed; }

endef

# Only the committed reproducers (spec/fuzz/regressions/<name>/), each run once: a quick check that
# what was found once stays fixed. make fuzz runs them too, before fuzzing.
fuzz-regressions: fuzz-build
	@status=0; for t in $(FUZZ_TARGETS); do [ -d spec/fuzz/regressions/$$t ] || continue; \
	  for f in spec/fuzz/regressions/$$t/*; do \
	    if $(FUZZ_ENV) $(FUZZ_BUILD)/bin/$$t $$f > $(FUZZ_BUILD)/regression.log 2>&1; then echo "ok      $$f"; \
	    else echo "FAILED  $$f"; grep -aE 'ERROR|runtime error|invariant' $(FUZZ_BUILD)/regression.log | head -n 2; \
	      status=1; fi; done; done; exit $$status

clean-fuzz:
	rm -rf $(FUZZ_BUILD)
