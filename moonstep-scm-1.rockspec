-- moonstep-scm-1.rockspec — LuaRocks build of moonstep from a source checkout (LuaJIT, Lua 5.1 ABI):
--
--   luarocks --lua-version 5.1 make moonstep-scm-1.rockspec                      # system tree (root)
--   luarocks --lua-version 5.1 make --tree ~/.luarocks moonstep-scm-1.rockspec   # a tree of yours
--   eval "$(luarocks --lua-version 5.1 path --tree ~/.luarocks)"; ~/.luarocks/bin/moonstep
--
-- It runs `make` (libmoonstep.so into build/; CUDA too when nvcc is found: CUDA=0 in the
-- environment forces a CPU-only build) and then `make install` with the rock's directories:
-- the Lua package into LUADIR, libmoonstep.so into LIBDIR, bin/moonstep into BINDIR and the
-- C headers (which moonstep.core reads for the FFI declarations) into PREFIX/include/moonstep.
--
-- External dependencies (Debian package names; `scripts/install-deps.sh` installs them):
--   luajit                    the interpreter (moonstep binds its C core through LuaJIT's FFI;
--                             PUC Lua 5.1 cannot run it)
--   libopenblas-openmp-dev    OpenBLAS, the OpenMP build (the Makefile links
--                             /usr/lib/x86_64-linux-gnu/openblas-openmp; OPENBLAS_DIR overrides)
--   zlib1g-dev                zlib (gzip data files, checkpoints)
--   build-essential           gcc and make
-- Optional: libreadline (the REPL's line editing), gnuplot-nox (plots),
-- dataset-fashion-mnist (the examples and the demo), the CUDA toolkit (a GPU build).
rockspec_format = '3.0'
package = 'moonstep'
version = 'scm-1'

-- `luarocks make` builds the checkout it is run in; the URL is where a published copy
-- would be fetched from (`luarocks install`), to be set when the repository is published.
source = {
  url = 'git+https://github.com/moonstep/moonstep.git',
}

description = {
  summary = 'A Lua-scriptable optimization runtime: tensors, nn, optimizers over a C/CUDA core',
  detailed = [[
moonstep is a C core (tensors, random numbers, kernels on the CPU with OpenBLAS and
OpenMP, on NVIDIA GPUs with CUDA) bound to LuaJIT through its FFI: layers and losses
(ms.nn), optimizers from SGD and Adam to the SAM family, ACME, LBFGS and SPSA (ms.optim),
schedules, data sets, checkpoints, an experiment runner and a REPL (bin/moonstep).
]],
  -- the repository has no licence file yet: 'UNLICENSED' (npm's word for "no licence
  -- granted") until its owners choose one
  license = 'UNLICENSED',
  labels = { 'optimization', 'machine-learning', 'luajit', 'ffi', 'tensor' },
}

dependencies = {
  'lua ~> 5.1',   -- LuaJIT (see above): it reports itself as Lua 5.1
}

external_dependencies = {
  OPENBLAS = { library = 'openblas' },
  ZLIB = { header = 'zlib.h', library = 'z' },
}

build = {
  type = 'make',
  -- the project's optimisation level (the Makefile adds -fPIC, -fopenmp, its warnings and
  -- -ffp-contract=off, which the numerics rely on)
  build_variables = {
    CFLAGS = '$(CFLAGS) -O3',   -- LuaRocks' flags, then -O3 (the last -O wins)
  },
  install_variables = {
    PREFIX = '$(PREFIX)',
    LUADIR = '$(LUADIR)',
    LIBDIR = '$(LIBDIR)',
    BINDIR = '$(BINDIR)',
  },
}
