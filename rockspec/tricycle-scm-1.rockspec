-- `luarocks --lua-version=5.4 make rockspec/tricycle-scm-1.rockspec`, run from the
-- repository root, builds the working tree (source.url is not fetched) and installs
-- tricycle.core (C) and the tricycle.* Lua modules: the Makefile's install rule copies
-- every lua/tricycle/**/*.lua (tricycle.cli.args and the like included), so there is no
-- module list here to keep. Needs liblua5.4-dev and OpenBLAS; no other rock (the
-- argument parser is tricycle.cli.args, not the argparse rock, which an offline
-- `luarocks make` could not fetch).
-- `WITH_CUDA=1 luarocks --lua-version=5.4 make rockspec/tricycle-scm-1.rockspec` also
-- builds the CUDA backend (needs nvcc; NVCC=/path/to/nvcc when it is not on the PATH
-- or in /usr/local/cuda) and installs it beside tricycle.core, where it is found at
-- run time; without it the cuda device reports that no backend library is installed.
-- When Open MPI's mpicc is found, libtricycle_mpi.so (tc.distributed's MPI glue) is built
-- and installed beside tricycle.core too; without it tc.distributed.init says so under mpirun.
rockspec_format = "3.0"
package = "tricycle"
version = "scm-1"

source = {
  url = "git+file:///work/main",
  branch = "main",
}

description = {
  summary = "Tensors, autograd and neural networks for Lua 5.1-5.4 and LuaJIT, on a C engine",
  detailed = [[
tricycle is a deep learning library: a C engine (tensors, a tape-based
autograd, CPU kernels over OpenBLAS, an optional CUDA backend) with a thin
Lua 5.4 binding and plain-Lua modules for layers, optimisers and data.
]],
  license = "MIT",
  labels = { "deep-learning", "tensor", "autograd" },
}

-- One binding for Lua 5.1, LuaJIT 2.1 (through luarocks' 5.1 tree), 5.2, 5.3 and 5.4: luarocks passes
-- the headers of the Lua it installs for as LUA_INCDIR (`luarocks --lua-version=5.1 make ...`).
dependencies = {
  "lua >= 5.1, < 5.5",
}

external_dependencies = {
  OPENBLAS = { library = "openblas" },
}

build = {
  type = "make",
  build_target = "module",
  build_variables = {
    CC = "$(CC)",
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    BLAS_LIBS = "-L$(OPENBLAS_LIBDIR) -lopenblas",
    BUILD = "build/rock",
    WERROR = "",
  },
  install_target = "install",
  install_variables = {
    BUILD = "build/rock",
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
  },
}
