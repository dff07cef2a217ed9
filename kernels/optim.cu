// optim.cu — the CUDA twins of runtime/optim.c: one kernel per step over the arena.
// The per-element rules are runtime/optim_impl.h's, shared with the C loops; the host
// (optim.c) computes the step's constants in double, rounded to float once here.
#include "common.cuh"
#include "optim_impl.h"

#define OPT_FN static __host__ __device__ __forceinline__
#define OPT_T float
#define OPT_SFX f32
#define OPT_FMA fmaf
#define OPT_SQRT sqrtf
#include "optim_impl.h"

__global__ void sgd_kernel(float *p, const float *g, float *buf, int64_t n, sgd_k_f32 k) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    sgd_elem_f32(p + i, buf ? buf + i : NULL, g[i], &k);
}

__global__ void adam_kernel(float *p, const float *g, float *m, float *v, int64_t n,
                            adam_k_f32 k) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    adam_elem_f32(p + i, m + i, v + i, g[i], &k);
}

extern "C" {

int ms_cuda_sgd_step(float *p, const float *g, float *buf, int64_t n, const ms_sgd_consts *k) {
  sgd_kernel<<<ms_grid(n), MS_BLOCK>>>(p, g, buf, n, sgd_k_of_f32(k));
  MS_CUDA_LAUNCHED("sgd_step");
  return 0;
}

int ms_cuda_adam_step(float *p, const float *g, float *m, float *v, int64_t n,
                      const ms_adam_consts *k) {
  adam_kernel<<<ms_grid(n), MS_BLOCK>>>(p, g, m, v, n, adam_k_of_f32(k));
  MS_CUDA_LAUNCHED("adam_step");
  return 0;
}

}  // extern "C"
