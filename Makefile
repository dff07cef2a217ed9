# moonstep — build, test, demo, bench.
#
#   make              libmoonstep.so into build/ (CUDA too when nvcc is found, or CUDA=1: the GPU
#                     code goes into the plugin libmoonstep_cuda.so beside it, loaded on first GPU use)
#   make test         install missing Debian packages, build, run every test
#   make demo         install, build, run the demo script
#   make bench        run the benchmarks (scripts/bench/)
#   make asan         a CPU-only build with -fsanitize=address,undefined in build-asan/
#   make test-asan    the test suite against that build
#   make fuzz-api N=100000 SEED=1       random misuse of the Lua API (fuzz-api-asan: sanitized)
#   make gpu-check    on a GPU machine: every spec with GPU cases, then the GPU benchmarks
#   make emu-zo-check the CUDA zo kernels on a host emulation, against the CPU (no GPU)
#   CUDA=0 forces a CPU-only build; CUDA=1 insists on CUDA.
#   make install PREFIX=/usr/local [DESTDIR=]   install the built library (and a CUDA build's plugin
#                     beside it), the Lua package, the C headers and bin/moonstep (LUADIR, LIBDIR,
#                     INCDIR, BINDIR override the places)
#   make uninstall PREFIX=/usr/local [DESTDIR=] remove what install put there

BUILD    ?= build
CC       ?= gcc
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA     ?= $(if $(NVCC),1,0)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))

# CFLAGS/LDFLAGS are the caller's (optimisation, sanitizers); MS_* are always used.
CFLAGS   ?= -O3
LDFLAGS  ?=
MS_CFLAGS := -std=c11 -D_GNU_SOURCE -fno-math-errno -ffp-contract=off -fPIC -fopenmp -Wall -Wextra \
             -Iruntime -Iruntime/include $(CFLAGS)
# OpenBLAS's OpenMP build, so that GEMMs and moonstep's kernels share one thread pool
# (two pools spinning against each other cost a quarter of a CNN step on 2 cores).
OPENBLAS_DIR ?= /usr/lib/x86_64-linux-gnu/openblas-openmp
LDLIBS   := -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas -lz -lm -fopenmp

C_SRCS   := $(filter-out runtime/cuda_stub.c runtime/cuda_loader.c runtime/cuda_plugin.c,$(wildcard runtime/*.c))
CU_SRCS  := $(wildcard kernels/*.cu)
HEADERS  := $(wildcard runtime/*.h runtime/optim/*.h runtime/include/*.h kernels/*.cuh)

ifeq ($(CUDA),1)
  ifeq ($(NVCC),)
    $(error CUDA=1 but nvcc was not found; install the CUDA toolkit or use CUDA=0)
  endif
  # Two libraries (runtime/cuda_loader.c): libmoonstep.so, whose CUDA entry points are
  # trampolines, loads the plugin libmoonstep_cuda.so (the kernels, cuBLAS, cudart) from
  # beside itself on first GPU use: a process that never uses a GPU maps none of it.
  OBJS    := $(C_SRCS:runtime/%.c=$(BUILD)/%.o) $(BUILD)/cuda_loader.o
  PLUGIN  := $(BUILD)/libmoonstep_cuda.so
  PLUGIN_OBJS := $(CU_SRCS:kernels/%.cu=$(BUILD)/cu_%.o) $(BUILD)/cuda_plugin.o
  # sm_90 machine code plus PTX so newer GPUs can JIT it; cudart static so the plugin
  # loads on machines without the CUDA runtime. --fmad=false: no contraction of
  # a * b + c into an fma (C11 does not contract either), so the rules shared with the C
  # loops round the same on both; explicit fmaf() calls stay fused.
  NVFLAGS := -O3 --fmad=false -std=c++17 -Xcompiler -fPIC -Iruntime -Iruntime/include \
             -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
  LDLIBS  += -ldl -lpthread
  # -Bsymbolic: the plugin's calls between its own ms_cuda_* functions stay inside it
  # (libmoonstep.so, made global when it loads the plugin, has trampolines of those names)
  PLUGIN_LDLIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart_static \
             -ldl -lrt -lpthread -lstdc++
else
  OBJS    := $(C_SRCS:runtime/%.c=$(BUILD)/%.o) $(BUILD)/cuda_stub.o
  PLUGIN  :=
endif

# -z nodelete: LuaJIT may unload the library at exit before the last tensor finalisers
# (which call into it) have run.
LIB := $(BUILD)/libmoonstep.so

# The MPI plugin libmoonstep_mpi.so (ms.dist's collectives, runtime/mpi/dist_mpi.c),
# built with mpicc when Open MPI is installed; loaded only by a process an MPI launcher
# started (a plain run never maps MPI).
MPICC ?= $(shell command -v mpicc 2>/dev/null)
MPI_PLUGIN := $(if $(MPICC),$(BUILD)/libmoonstep_mpi.so,)
# With CUDA=1 and NCCL installed, the NCCL plugin libmoonstep_nccl.so (ms.dist's
# collectives on CUDA tensors, runtime/mpi/dist_nccl.c); without it CUDA tensors go
# through host copies.
ifeq ($(CUDA),1)
  MPI_PLUGIN += $(if $(wildcard $(CUDA_HOME)/include/nccl.h),$(BUILD)/libmoonstep_nccl.so,)
endif

.PHONY: all deps test test-asan asan demo bench gpu-check emu-zo-check fuzz fuzz-api fuzz-api-asan clean install uninstall
all: $(LIB) $(PLUGIN) $(MPI_PLUGIN)

$(LIB): $(OBJS)
	$(CC) -shared -Wl,-z,nodelete $(LDFLAGS) -o $@ $(OBJS) $(LDLIBS)

$(BUILD)/%.o: runtime/%.c $(HEADERS) | $(BUILD)
	$(CC) $(MS_CFLAGS) -c $< -o $@

$(BUILD)/cu_%.o: kernels/%.cu $(HEADERS) | $(BUILD)
	$(NVCC) $(NVFLAGS) -c $< -o $@

# The CUDA plugin (CUDA=1): its objects, and the trampolines' argument names, generated
# from the entry point list (runtime/cuda_args.awk).
ifeq ($(CUDA),1)
$(PLUGIN): $(PLUGIN_OBJS)
	$(CC) -shared -Wl,-z,nodelete -Wl,-Bsymbolic $(LDFLAGS) -o $@ $(PLUGIN_OBJS) $(PLUGIN_LDLIBS)

$(BUILD)/cuda_plugin.o: runtime/cuda_plugin.c $(HEADERS) | $(BUILD)
	$(CC) $(MS_CFLAGS) -I$(CUDA_HOME)/include -c $< -o $@

$(BUILD)/cuda_args.h: runtime/cuda_entries.h runtime/cuda_args.awk | $(BUILD)
	printf '#include "cuda_entries.h"\nMS_CUDA_ENTRIES(MS_CUDA_ARGS_OF)\n' | \
	  $(CC) -E -P -Iruntime '-DMS_CUDA_ARGS_OF(name,params,what)=@ name params' -x c - | \
	  awk -f runtime/cuda_args.awk > $@.tmp && mv $@.tmp $@

$(BUILD)/cuda_loader.o: runtime/cuda_loader.c $(BUILD)/cuda_args.h $(HEADERS) | $(BUILD)
	$(CC) $(MS_CFLAGS) -I$(BUILD) -c $< -o $@
endif

$(BUILD)/libmoonstep_mpi.so: runtime/mpi/dist_mpi.c runtime/mpi/plugin_error.h runtime/include/moonstep_dist.h | $(BUILD)
	$(MPICC) -std=c11 -D_GNU_SOURCE -pthread -fPIC -Wall -Wextra -Iruntime/include $(CFLAGS) -shared $(LDFLAGS) -o $@ $<

$(BUILD)/libmoonstep_nccl.so: runtime/mpi/dist_nccl.c runtime/mpi/plugin_error.h runtime/include/moonstep_nccl.h | $(BUILD)
	$(CC) -std=c11 -D_GNU_SOURCE -fPIC -Wall -Wextra -Iruntime/include -I$(CUDA_HOME)/include $(CFLAGS) -shared \
	  $(LDFLAGS) -o $@ $< -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lnccl -lcudart

$(BUILD):
	mkdir -p $@

deps:
	@scripts/install-deps.sh

test: deps
	@$(MAKE) --no-print-directory all
	@scripts/run-tests.sh

asan:
	@$(MAKE) --no-print-directory BUILD=build-asan CUDA=0 \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" all

test-asan: deps asan
	@MOONSTEP_LIB=build-asan/libmoonstep.so MOONSTEP_ASAN=1 scripts/run-tests.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@bin/moonstep scripts/demo.lua

# One short run on a GPU machine: the specs that hold GPU cases (CPU parity of every op,
# layer, loss and optimizer step; Philox bits) against a CUDA build, then the GPU parts of
# the benchmarks. Fails where no GPU is usable rather than reporting skips as a pass.
GPU_SPECS := tests/cuda_spec.lua tests/optim_float32_spec.lua tests/nn_conv_pool_spec.lua \
             tests/nn_layers_spec.lua tests/checkpoint_spec.lua tests/errors_spec.lua \
             tests/optim_contract_spec.lua tests/optim_engine_spec.lua tests/optim_classics_spec.lua \
             tests/optim_autosgm_spec.lua tests/optim_chain_spec.lua tests/optim_sam_spec.lua \
             tests/optim_bsam_spec.lua tests/optim_acme_spec.lua tests/optim_acme_protocol_spec.lua \
             tests/optim_lbfgs_spec.lua tests/optim_lbfgs_protocol_spec.lua \
             tests/zo_runtime_spec.lua tests/linalg_spec.lua tests/nn_batched_spec.lua \
             tests/optim_spsa_spec.lua tests/tensor_sort_spec.lua tests/autograd_spec.lua \
             tests/autograd_elementwise_spec.lua tests/autograd_reduce_spec.lua \
             tests/autograd_shape_spec.lua tests/autograd_nn_spec.lua
gpu-check: deps
	@$(MAKE) --no-print-directory CUDA=1 all $(BUILD)/libbaseline.so
	@bin/moonstep -e 'if not ms.cuda.is_available() then io.stderr:write("gpu-check: no usable GPU\n"); os.exit(1) end'
	@scripts/run-tests.sh $(GPU_SPECS)
	@MOONSTEP_GPU_ONLY=1 bin/moonstep scripts/bench/core.lua
	@MOONSTEP_GPU_ONLY=1 bin/moonstep scripts/bench/train.lua
	@MOONSTEP_GPU_ONLY=1 bin/moonstep scripts/bench/optim.lua
	@MOONSTEP_GPU_ONLY=1 bin/moonstep scripts/bench/twopass.lua
	@MOONSTEP_GPU_ONLY=1 bin/moonstep scripts/bench/zo.lua
	@bin/moonstep scripts/gpu_zo_check.lua

# The CUDA zo kernels run on a host emulation (no GPU needed; g++): every zo op CPU vs
# "GPU" bit for bit (scripts/cuda_emu/build.sh, scripts/gpu_zo_check.lua). About a minute.
emu-zo-check: deps
	@$(MAKE) --no-print-directory CUDA=0 BUILD=build-emu all
	@bash scripts/cuda_emu/build.sh build-emu
	@MOONSTEP_CUDA_EMU=1 MOONSTEP_LIB=build-emu-emu/libmoonstep.so bin/moonstep scripts/gpu_zo_check.lua --quick

# The benchmark's competitor: plain C loops built with the library's own flags.
$(BUILD)/libbaseline.so: scripts/bench/baseline.c | $(BUILD)
	$(CC) $(MS_CFLAGS) -shared -o $@ $<

bench: deps
	@$(MAKE) --no-print-directory all $(BUILD)/libbaseline.so
	@bin/moonstep scripts/bench/core.lua
	@bin/moonstep scripts/bench/train.lua
	@bin/moonstep scripts/bench/kernels.lua
	@bin/moonstep scripts/bench/optim.lua
	@bin/moonstep scripts/bench/autograd.lua
	@bin/moonstep scripts/bench/twopass.lua
	@bin/moonstep scripts/bench/zo.lua --quick
	@bin/moonstep scripts/bench/dist.lua

# Fuzz the checkpoint loader with libFuzzer (clang); FUZZ_SECONDS of fuzzing, new
# interesting inputs are added to tests/fuzz/corpus (which the test suite replays).
FUZZ_SECONDS ?= 60
$(BUILD)/checkpoint_fuzz: tests/fuzz/checkpoint_fuzz.c $(C_SRCS) runtime/cuda_stub.c $(HEADERS) | $(BUILD)
	clang -g -O1 -std=c11 -D_GNU_SOURCE -fopenmp -fsanitize=fuzzer,address,undefined \
	  -Iruntime -Iruntime/include tests/fuzz/checkpoint_fuzz.c $(C_SRCS) runtime/cuda_stub.c \
	  -o $@ -lz -lopenblas -lm

fuzz: deps $(BUILD)/checkpoint_fuzz
	mkdir -p $(BUILD)/fuzz-new
	$(BUILD)/checkpoint_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -artifact_prefix=tests/fuzz/corpus/crash- $(BUILD)/fuzz-new tests/fuzz/corpus

# Seeded random misuse of the whole public Lua API (tests/fuzz/api_misuse.lua): N calls,
# fails on any process death (each is reported with a one-line reproducer) and prints the
# share of unclear error messages. fuzz-api-asan runs it against the sanitizer build.
N    ?= 100000
SEED ?= 1
fuzz-api: deps
	@$(MAKE) --no-print-directory all
	@MOONSTEP_LIB=$${MOONSTEP_LIB:-$(BUILD)/libmoonstep.so} bin/moonstep tests/fuzz/api_misuse.lua --seed $(SEED) --calls $(N)

fuzz-api-asan: deps asan
	@MOONSTEP_LIB=build-asan/libmoonstep.so \
	  LD_PRELOAD="$$(gcc -print-file-name=libasan.so):$$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1" \
	  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
	  bin/moonstep tests/fuzz/api_misuse.lua --seed $(SEED) --calls $(N)

clean:
	rm -rf build build-asan

# Installation. An installed moonstep needs no source tree: core.lua finds the headers and
# the library through moonstep/config.lua, written here with the final paths (DESTDIR is
# only a staging root). install takes $(BUILD)/libmoonstep.so as it is (built first only
# when missing: run `make` after changing the sources). LuaRocks (moonstep-scm-1.rockspec)
# passes PREFIX, LUADIR, LIBDIR and BINDIR.
# The directories reach the recipes as environment variables (MS_*), never pasted into
# shell text: a PREFIX with spaces, quotes or & installs as it is (a $ is make's own).
# uninstall removes exactly the files install writes (the package's files as this tree
# lists them, config.lua, the headers, the library, bin/moonstep) and then the directories
# install made that are left empty: files of others, in those directories too, stay.
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
LIBDIR  ?= $(PREFIX)/lib/moonstep
LUADIR  ?= $(PREFIX)/share/lua/5.1
INCDIR  ?= $(PREFIX)/include/moonstep
INSTALL_HEADERS := $(notdir $(wildcard runtime/include/*.h))

install uninstall: export MS_DEST := $(DESTDIR)
install uninstall: export MS_BINDIR := $(BINDIR)
install uninstall: export MS_LIBDIR := $(LIBDIR)
install uninstall: export MS_LUADIR := $(LUADIR)
install uninstall: export MS_INCDIR := $(INCDIR)
install uninstall: export MS_LIB := $(LIB)

# the directories must be absolute (config.lua and bin/moonstep record them)
MS_CHECK_DIRS = @for v in "$$MS_BINDIR" "$$MS_LIBDIR" "$$MS_LUADIR" "$$MS_INCDIR"; do \
	  case "$$v" in /*) ;; *) echo "make $@: '$$v' is not an absolute directory (PREFIX, BINDIR, LIBDIR, LUADIR, INCDIR)" >&2; exit 2;; esac; \
	  case "$$v" in *']==]'*) echo "make $@: '$$v' contains ]==]" >&2; exit 2;; esac; \
	done

install: $(if $(wildcard $(LIB)),,$(LIB))
	$(MS_CHECK_DIRS)
	install -d "$$MS_DEST$$MS_LIBDIR" "$$MS_DEST$$MS_INCDIR" "$$MS_DEST$$MS_BINDIR" "$$MS_DEST$$MS_LUADIR/moonstep"
	install -m 755 "$$MS_LIB" "$$MS_DEST$$MS_LIBDIR/libmoonstep.so"
	@# a CUDA build's plugin goes beside the library (where the library looks for it)
	if grep -qF libmoonstep_cuda.so "$$MS_LIB"; then \
	  install -m 755 "$${MS_LIB%/*}/libmoonstep_cuda.so" "$$MS_DEST$$MS_LIBDIR/libmoonstep_cuda.so"; fi
	@# the MPI and NCCL plugins likewise, when they were built
	for p in libmoonstep_mpi.so libmoonstep_nccl.so; do \
	  if [ -f "$${MS_LIB%/*}/$$p" ]; then install -m 755 "$${MS_LIB%/*}/$$p" "$$MS_DEST$$MS_LIBDIR/$$p" || exit 1; fi; done
	cd runtime/include && install -m 644 $(INSTALL_HEADERS) "$$MS_DEST$$MS_INCDIR/"
	cd lua && find moonstep -type f -name '*.lua' ! -path moonstep/config.lua | sort | \
	  while read -r f; do install -D -m 644 "$$f" "$$MS_DEST$$MS_LUADIR/$$f" || exit 1; done
	printf '%s\n' '-- moonstep/config.lua: written by `make install`; where core.lua finds the installed parts.' \
	  "return { include = [==[$$MS_INCDIR]==], lib = [==[$$MS_LIBDIR/libmoonstep.so]==] }" \
	  > "$$MS_DEST$$MS_LUADIR/moonstep/config.lua"
	awk 'BEGIN { n = split(ENVIRON["MS_LUADIR"], p, "\047"); d = p[1]; for (i = 2; i <= n; i++) d = d "\047\\\047\047" p[i] } \
	     /^installed_luadir=\047\047/ { sub(/^installed_luadir=\047\047/, ""); print "installed_luadir=\047" d "\047" $$0; next } { print }' \
	  bin/moonstep > "$$MS_DEST$$MS_BINDIR/moonstep"
	chmod 755 "$$MS_DEST$$MS_BINDIR/moonstep"

uninstall:
	$(MS_CHECK_DIRS)
	rm -f "$$MS_DEST$$MS_BINDIR/moonstep" "$$MS_DEST$$MS_LIBDIR/libmoonstep.so" "$$MS_DEST$$MS_LIBDIR/libmoonstep_cuda.so" \
	  "$$MS_DEST$$MS_LIBDIR/libmoonstep_mpi.so" "$$MS_DEST$$MS_LIBDIR/libmoonstep_nccl.so" \
	  "$$MS_DEST$$MS_LUADIR/moonstep/config.lua"
	cd "$$MS_DEST$$MS_INCDIR" 2>/dev/null && rm -f $(INSTALL_HEADERS) || true
	cd lua && find moonstep -type f -name '*.lua' ! -path moonstep/config.lua | \
	  while read -r f; do rm -f "$$MS_DEST$$MS_LUADIR/$$f"; done
	@cd lua && find moonstep -type d | sort -r | \
	  while read -r d; do rmdir "$$MS_DEST$$MS_LUADIR/$$d" 2>/dev/null || true; done
	@for d in "$$MS_INCDIR" "$$MS_LIBDIR"; do \
	  case "$$d" in */moonstep) rmdir "$$MS_DEST$$d" 2>/dev/null || true;; esac; done
