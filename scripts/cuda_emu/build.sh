#!/bin/bash
# scripts/cuda_emu/build.sh BUILD — a libmoonstep whose "GPU" is a host emulation of
# kernels/zo.cu, for machines without one (`make emu-zo-check`): each CUDA block runs as
# blockDim.x std::threads with a barrier for __syncthreads, the grid capped at 3 blocks so the
# grid-stride loops run; __fadd_rn & co give the GPU's canonical NaN; "device" memory is host
# memory; every other CUDA entry is cuda_stub.c's. Needs the C objects of BUILD (CUDA=0) and g++.
# Output: BUILD-emu/libmoonstep.so (run scripts/gpu_zo_check.lua against it).
set -e
BUILD=${1:?usage: build.sh BUILD}
S=scripts/cuda_emu; W=$BUILD-emu/obj
mkdir -p $W
EMU="-std=c++17 -O2 -fPIC -ffp-contract=off -Wall -Wextra -Wno-unknown-pragmas -D__CUDACC__ -D__CUDA_ARCH__=900 -I$S/inc -Iruntime -Iruntime/include -Ikernels"
# kernel<<<grid, MS_BLOCK>>>(args) -> emu_launch(grid, MS_BLOCK, [&]{ kernel(args); })
perl -0pe 's/(\w+)<<<(.*?),\s*MS_BLOCK>>>\((.*?)\);/emu_launch($2, MS_BLOCK, [&]{ $1($3); });/gs' kernels/zo.cu > $W/zo_emu.cpp
g++ $EMU -c $W/zo_emu.cpp -o $W/zo_emu.o
g++ $EMU -c $S/emu_device.cpp -o $W/emu_device.o
# -z muldefs: the first definition wins (the emulation's over cuda_stub.o's)
g++ -shared -Wl,-z,nodelete -Wl,-z,muldefs -o $BUILD-emu/libmoonstep.so $W/zo_emu.o $W/emu_device.o \
  $(ls $BUILD/*.o) -L/usr/lib/x86_64-linux-gnu/openblas-openmp \
  -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -lz -lm -fopenmp -lpthread
