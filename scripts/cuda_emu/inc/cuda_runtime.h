// A host emulation of the bits of the CUDA runtime kernels/zo.cu uses: each CUDA block runs
// as blockDim.x std::threads with a barrier for __syncthreads; the GPU's arithmetic is modelled
// by __fadd_rn & co returning the canonical NaN 0x7fffffff for any NaN result (as the GPU does).
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <pthread.h>
#include <thread>
#include <vector>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
typedef int cudaError_t;
enum { cudaSuccess = 0 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
static inline cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind) {
  memcpy(d, s, n);
  return 0;
}
static inline cudaError_t cudaGetLastError(void) { return 0; }
static inline const char *cudaGetErrorString(cudaError_t) { return "emulated error"; }
struct emu_dim { unsigned x, y, z; };
extern thread_local emu_dim threadIdx, blockIdx;
extern emu_dim blockDim, gridDim;
extern pthread_barrier_t emu_barrier;
extern int emu_grid_cap;
static inline void __syncthreads(void) { pthread_barrier_wait(&emu_barrier); }
static inline uint32_t __float_as_uint(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline float emu_canon(float r) { return r != r ? __uint_as_float(0x7fffffffu) : r; }
static inline float __fadd_rn(float a, float b) { volatile float r = a + b; return emu_canon(r); }
static inline float __fsub_rn(float a, float b) { volatile float r = a - b; return emu_canon(r); }
static inline float __fmul_rn(float a, float b) { volatile float r = a * b; return emu_canon(r); }
static inline float __fdiv_rn(float a, float b) { volatile float r = a / b; return emu_canon(r); }
static inline float __fsqrt_rn(float a) { volatile float r = sqrtf(a); return emu_canon(r); }
template <class F> void emu_launch(long grid, int block, F f) {
  if (grid < 1 || block < 1) { fprintf(stderr, "emu: bad launch %ld x %d\n", grid, block); abort(); }
  const long g = grid < emu_grid_cap ? grid : emu_grid_cap;   // grid-stride loops do the rest
  blockDim.x = block, gridDim.x = (unsigned)g;
  for (long b = 0; b < g; b++) {
    pthread_barrier_init(&emu_barrier, NULL, block);
    std::vector<std::thread> ts;
    for (int t = 0; t < block; t++)
      ts.emplace_back([&, b, t] { threadIdx.x = t; blockIdx.x = (unsigned)b; f(); });
    for (auto &t : ts) t.join();
    pthread_barrier_destroy(&emu_barrier);
  }
}
