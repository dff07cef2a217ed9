// common.cuh — what every .cu file of the CUDA backend shares.
//
//   MS_CUDA_TRY(fn, expr)   turn a cudaError_t into ms_fail("fn: CUDA error ...")
//   ms_iter_offsets()       the per-operand element offsets of linear index i in an
//                           iterator built by runtime/iter.c (same walk as the CPU)
//   ms_grid(n)              a grid size for grid-stride loops over n items
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>
#include "internal.h"

#define MS_CUDA_TRY(fn, expr)                                                          \
  do {                                                                                 \
    cudaError_t ms_err_ = (expr);                                                      \
    if (ms_err_ != cudaSuccess)                                                        \
      return ms_fail("%s: CUDA error: %s (%s:%d)", fn, cudaGetErrorString(ms_err_),    \
                     __FILE__, __LINE__);                                              \
  } while (0)

// Launch check: a bad launch configuration is reported at once; faults inside a
// kernel surface at the next synchronising call.
#define MS_CUDA_LAUNCHED(fn) MS_CUDA_TRY(fn, cudaGetLastError())

static const int MS_BLOCK = 256;

static inline int ms_grid(int64_t n) {
  int64_t g = (n + MS_BLOCK - 1) / MS_BLOCK;
  const int64_t cap = 65535LL * 32;  // grid-stride loops cover the rest
  return (int)(g < 1 ? 1 : g > cap ? cap : g);
}

// Offsets of element i for the first `nops` operands.
template <int NOPS>
__device__ __forceinline__ void ms_iter_offsets(const ms_iter &it, int64_t i, int64_t *off) {
#pragma unroll
  for (int k = 0; k < NOPS; k++) off[k] = 0;
  if (it.ndim == 1) {
#pragma unroll
    for (int k = 0; k < NOPS; k++) off[k] = i * it.strides[k][0];
    return;
  }
  for (int d = it.ndim - 1; d >= 0; d--) {
    int64_t idx = i % it.sizes[d];
    i /= it.sizes[d];
#pragma unroll
    for (int k = 0; k < NOPS; k++) off[k] += idx * it.strides[k][d];
  }
}

// Scratch device memory reused across calls (grow-only), for reduction partials
// and error flags. Single host thread, like the rest of the runtime.
extern "C" int ms_cuda_workspace(void **p, int64_t nbytes);
