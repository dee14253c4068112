# cuda/cuda.mk: building and checking the CUDA backend (included by the Makefile).
#
#   make cuda           the backend library with nvcc: $(BUILD)/lua/tricycle/libtricycle_cuda.so
#   make cuda-kernels   lists the kernels in its fat binary per architecture; fails when one is missing
#   make cuda-emulated  the same sources as C++ on the CPU: $(BUILD)/cuda-emulated/libtricycle_cuda_emulated.so
#   make test-cuda      the emulation tests and specs under ASan, in forward and shuffled thread order,
#                       and once with device memory fenced from the host
#   make test-gpu       the specs tagged gpu with the real library (needs a GPU; they skip without one)
#
# WITH_CUDA=1 requires nvcc, WITH_CUDA=0 never builds the real library; by
# default `make` builds it when nvcc is found (on the PATH or in /usr/local/cuda).
WITH_CUDA ?= auto
NVCC ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_LIB = $(BUILD)/lua/tricycle/libtricycle_cuda.so
ifeq ($(WITH_CUDA),auto)
  BUILD_CUDA := $(if $(NVCC),1,0)
else
  BUILD_CUDA := $(WITH_CUDA)
endif
ifeq ($(WITH_CUDA)$(NVCC),1)
  $(error WITH_CUDA=1 but nvcc was not found: install the CUDA toolkit or set NVCC=/path/to/nvcc)
endif

CUDA_SOURCES = $(wildcard cuda/*.cu)
CUDA_HEADERS = $(wildcard cuda/*.h src/*.h)
CUDA_OBJECTS = $(CUDA_SOURCES:%.cu=$(BUILD)/%.o)
# sm_80 and sm_90 machine code, plus compute_90 PTX for later GPUs.
CUDA_GENCODE = -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
               -gencode arch=compute_90,code=compute_90
CUDA_ARCHS = sm_80 sm_90
# Warnings are errors for the host and device compilers alike; a register
# spill is a ptxas warning (-warn-spills) and so an error too.
NVCC_FLAGS = -std=c++17 -O3 -lineinfo $(CUDA_GENCODE) -Werror all-warnings \
             -Xptxas -warn-spills,-Werror \
             -Xcompiler -fPIC,-Wall,-Wextra,-Wno-unknown-pragmas$(if $(WERROR),$(comma)-Werror) \
             -I src -I cuda
comma := ,
space := $(subst ,, )

cuda:
	@if [ -z "$(NVCC)" ]; then echo "make cuda: nvcc not found (install the CUDA toolkit or set NVCC=)"; exit 1; fi
	$(Q)$(MAKE) --no-print-directory BUILD_CUDA=1 $(CUDA_LIB)

$(BUILD)/cuda/%.o: cuda/%.cu $(CUDA_HEADERS)
	@mkdir -p $(dir $@)
	$(say) NVCC $<
	$(Q)$(NVCC) $(NVCC_FLAGS) -c $< -o $@

# The engine is not linked in: the library calls the engine that loads it
# through the table of functions it is handed (cuda_common.h). -z defs makes
# a call to any other engine function a link error instead of a library that
# cannot load.
CUDA_LINK_CHECK = -z defs
$(CUDA_LIB): $(CUDA_OBJECTS)
	@mkdir -p $(dir $@)
	$(say) NVLD $@
	$(Q)$(NVCC) -shared $(CUDA_GENCODE) -o $@ $(CUDA_OBJECTS) -Xlinker $(subst $(space),$(comma),$(CUDA_LINK_CHECK)) \
	  -Xlinker -rpath,$(CUDA_HOME)/lib64 -L$(CUDA_HOME)/lib64 -lcublas -lm -lpthread -ldl

# Every __global__ function in cuda/*.cu must be in the fat binary for each
# architecture. The fat binary is read by cuda/fatbin_kernels.c, since not
# every toolkit installation has cuobjdump.
FATBIN_KERNELS = $(BUILD)/cuda/fatbin_kernels
cuda-kernels: cuda $(FATBIN_KERNELS)
	$(Q)sh cuda/list_kernels.sh $(CUDA_LIB) $(FATBIN_KERNELS) $(CUDA_ARCHS)

$(FATBIN_KERNELS): cuda/fatbin_kernels.c
	@mkdir -p $(dir $@)
	$(say) CCLD $@
	$(Q)$(CC) $(CFLAGS_ALL) $< -o $@

# ---- the emulated build: the same .cu sources as C++ for the CPU ----

CUDA_EMULATED_DIR = $(BUILD)/cuda-emulated
CUDA_EMULATED_LIB = $(CUDA_EMULATED_DIR)/libtricycle_cuda_emulated.so
EMULATION_SOURCES = $(wildcard cuda/emulation/*.cc)
EMULATION_HEADERS = $(wildcard cuda/emulation/*.h)
CUDA_EMULATED_OBJECTS = $(CUDA_SOURCES:cuda/%.cu=$(CUDA_EMULATED_DIR)/%.o) \
                        $(EMULATION_SOURCES:cuda/emulation/%.cc=$(CUDA_EMULATED_DIR)/emulation/%.o)
CXX_EMULATION = $(CXX) -std=c++17 -D_GNU_SOURCE -DTC_CUDA_EMULATION -fPIC $(OPTIMIZE) -Wall -Wextra $(WERROR) \
                -Wshadow -Wpointer-arith -Wno-unknown-pragmas $(SANITIZE) $(CXXFLAGS) -I src -I cuda
EMULATION_TEST = $(CUDA_EMULATED_DIR)/emulation_test
BACKEND_TEST = $(CUDA_EMULATED_DIR)/backend_test

cuda-emulated: $(CUDA_EMULATED_LIB) $(EMULATION_TEST) $(BACKEND_TEST)

$(CUDA_EMULATED_DIR)/%.o: cuda/%.cu $(CUDA_HEADERS) $(EMULATION_HEADERS)
	@mkdir -p $(dir $@)
	$(say) CXX $<
	$(Q)$(CXX_EMULATION) -x c++ -c $< -o $@

$(CUDA_EMULATED_DIR)/emulation/%.o: cuda/emulation/%.cc $(EMULATION_HEADERS)
	@mkdir -p $(dir $@)
	$(say) CXX $<
	$(Q)$(CXX_EMULATION) -c $< -o $@

# Linked like the real library: no engine code (the BLAS is the emulated cuBLAS's).
$(CUDA_EMULATED_LIB): $(CUDA_EMULATED_OBJECTS)
	$(say) LD $@
	$(Q)$(CXX) -shared -o $@ $(CUDA_EMULATED_OBJECTS) -Wl,$(subst $(space),$(comma),$(CUDA_LINK_CHECK)) \
	  $(LDFLAGS_ALL) $(LIBS)

# The emulator's own test: correct kernels pass in both orders, planted bugs are caught.
$(EMULATION_TEST): spec/cuda/emulation_test.cu $(CUDA_HEADERS) $(EMULATION_HEADERS) \
                   $(filter $(CUDA_EMULATED_DIR)/emulation/%,$(CUDA_EMULATED_OBJECTS))
	@mkdir -p $(dir $@)
	$(say) CXXLD $@
	$(Q)$(CXX_EMULATION) -x c++ spec/cuda/emulation_test.cu -x none \
	  $(filter $(CUDA_EMULATED_DIR)/emulation/%,$(CUDA_EMULATED_OBJECTS)) -o $@ $(LDFLAGS_ALL) $(LIBS)

# What the Lua specs cannot reach (device rand/randn, memory accounting), against
# the library TRICYCLE_CUDA_LIBRARY names.
$(BACKEND_TEST): spec/cuda/backend_test.c $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(say) CCLD $@
	$(Q)$(CC) $(CFLAGS_ALL) -I src $< -o $@ $(ENGINE_LIB) $(LDFLAGS_ALL) $(LIBS)

# ---- tests ----

# Under ASan (the engine, the emulated backend and the tests), in both thread orders.
CUDA_ASAN_BUILD ?= $(if $(filter build,$(BUILD)),build-asan,$(BUILD)-asan)
CUDA_SHUFFLE_SEED ?= 20261130
CUDA_SPECS ?= spec/cuda_emulation_spec.lua spec/distributed_cuda_spec.lua spec/cuda_half_rows_spec.lua \
              spec/cuda_half_kernels_spec.lua spec/cuda_half_conv_spec.lua
test-cuda:
	$(Q)$(MAKE) --no-print-directory BUILD=$(CUDA_ASAN_BUILD) WITH_CUDA=0 \
	  OPTIMIZE="-O1 -g -fno-omit-frame-pointer" \
	  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  $(CUDA_ASAN_BUILD)/lua/tricycle/core.so $(CUDA_ASAN_BUILD)/cuda-emulated/libtricycle_cuda_emulated.so \
	  $(CUDA_ASAN_BUILD)/cuda-emulated/emulation_test $(CUDA_ASAN_BUILD)/cuda-emulated/backend_test \
	  $(if $(wildcard spec/c/cuda_kernels_test.c),$(CUDA_ASAN_BUILD)/spec/c/cuda_kernels_test)
	$(ASAN_ENV) $(CUDA_ASAN_BUILD)/cuda-emulated/emulation_test
	@for order in forward shuffled:$(CUDA_SHUFFLE_SEED); do \
	  for test in $(CUDA_ASAN_BUILD)/cuda-emulated/backend_test \
	              $(if $(wildcard spec/c/cuda_kernels_test.c),$(CUDA_ASAN_BUILD)/spec/c/cuda_kernels_test); do \
	    echo "== $$test (thread order $$order)"; \
	    $(ASAN_ENV) TRICYCLE_CUDA_EMULATION_ORDER=$$order \
	      TRICYCLE_CUDA_LIBRARY=$(CURDIR)/$(CUDA_ASAN_BUILD)/cuda-emulated/libtricycle_cuda_emulated.so \
	      $$test || exit 1; \
	  done; \
	done
	@echo "== a kernel reading past its buffer is stopped by AddressSanitizer"
	@log=$(CUDA_ASAN_BUILD)/cuda-emulated/out-of-bounds.log; \
	if $(ASAN_ENV) $(CUDA_ASAN_BUILD)/cuda-emulated/emulation_test out-of-bounds > $$log 2>&1; then \
	  echo "FAIL: the out-of-bounds read was not caught"; exit 1; fi; \
	if grep -q "heap-buffer-overflow" $$log && grep -q "read_past_end" $$log; then echo "ok   caught in read_past_end"; \
	else echo "FAIL: no AddressSanitizer report naming the kernel"; cat $$log; exit 1; fi
	@echo "== host code reading device memory is stopped by the fence"
	@log=$(CUDA_ASAN_BUILD)/cuda-emulated/host-reads-device.log; \
	if $(ASAN_ENV) TRICYCLE_CUDA_EMULATION_FENCE=1 $(CUDA_ASAN_BUILD)/cuda-emulated/emulation_test host-reads-device \
	  > $$log 2>&1; then echo "FAIL: the host read of device memory was not caught"; cat $$log; exit 1; fi; \
	if grep -q "host code touched device memory" $$log; then echo "ok   caught"; \
	else echo "FAIL: no report of the host access"; cat $$log; exit 1; fi
	@for mode in forward shuffled:$(CUDA_SHUFFLE_SEED) fenced; do \
	  case $$mode in fenced) order=forward; fence=1; label="forward, device memory fenced";; \
	                 *) order=$$mode; fence=0; label=$$mode;; esac; \
	  echo "== $(CUDA_SPECS) (thread order $$label)"; \
	  $(ASAN_ENV) LD_PRELOAD=$$($(CC) -print-file-name=libasan.so) TRICYCLE_CUDA_EMULATION_ORDER=$$order \
	    TRICYCLE_CUDA_EMULATION_FENCE=$$fence \
	    TRICYCLE_CUDA_LIBRARY=$(CURDIR)/$(CUDA_ASAN_BUILD)/cuda-emulated/libtricycle_cuda_emulated.so \
	    TRICYCLE_BUILD=$(CUDA_ASAN_BUILD) $(LUA) spec/run.lua $(CUDA_SPECS) || exit 1; \
	done

# On a machine with a GPU, one command: the emulator's test kernels built by
# nvcc, every kernel against the CPU backend, and the timed training step,
# all with the real library (found next to core.so).
GPU_TEST = $(BUILD)/cuda/gpu_test
test-gpu: all cuda $(GPU_TEST)
	env -u TRICYCLE_CUDA_LIBRARY TRICYCLE_BUILD=$(BUILD) $(LUA) spec/run.lua spec/cuda_gpu_spec.lua \
	  spec/cuda_emulation_spec.lua spec/cuda_spec.lua spec/distributed_cuda_spec.lua spec/cuda_half_rows_spec.lua \
	  spec/cuda_half_kernels_spec.lua spec/cuda_half_conv_spec.lua

$(GPU_TEST): spec/cuda/emulation_test.cu $(CUDA_HEADERS)
	@mkdir -p $(dir $@)
	$(say) NVCC $<
	$(Q)$(NVCC) $(NVCC_FLAGS) $< -o $@
