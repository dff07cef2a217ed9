// optim_autosgm.cu — the CUDA passes of the AutoSGM step (runtime/optim_autosgm.c drives
// them; the element rule is runtime/optim/autosgm.h, shared with the C loops), float32.
//   phase 0: slices of groups without a per-layer numerator take their whole step
//            (q: the element-wise Q of per_layer 0); per-layer slices run pass 1 (their
//            estimate c into scratch);
//   phase 2: per-layer slices run pass 2 with their slice's numerator a_slice[s].
// Between the two the host sums c per slice (ms_arena_reduce, deterministic) and smooths
// Q. A thread finds its element's slice by a binary search over the device slice table.
#include "common.cuh"
#include "slices.cuh"
#include "optim/common.h"
#include "optim/autosgm.h"

#define OPT_FN static __host__ __device__ __forceinline__
#define OPT_T float
#define OPT_SFX f32
#define OPT_FMA fmaf
#define OPT_SQRT sqrtf
#include "optim/autosgm.h"   // (with optim/common.h's template part)

struct autosgm_pack { autosgm_k_f32 k[MS_OPTIM_MAX_GROUPS]; };

__global__ void autosgm_kernel(opt_ptrs_f32 q, int64_t n, const int64_t *table, int32_t nslices,
                               autosgm_pack pack, int phase, float *qbuf, float *scratch,
                               const float *a_slice) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int32_t s = ms_slice_of(table, nslices, i);
    const int32_t grp = ms_group_of(table, nslices, s);
    const autosgm_k_f32 *k = &pack.k[grp];
    if (phase == 0 && k->nudge != 0) autosgm_nudge_f32(i, &q, k);
    if (!k->perl) {
      if (phase == 0) autosgm_elem_f32(i, &q, qbuf, k, k->lrc, k->aoptlr, k->divg);
    } else if (phase == 0) {
      autosgm_est_pass_f32(i, &q, scratch, k, k->lrc);
    } else {
      autosgm_apply_pass_f32(i, &q, k, a_slice[s], k->divg);
    }
  }
}

extern "C" int ms_cuda_autosgm(const ms_cuda_optim_job *j, const ms_autosgm_consts *k,
                               int32_t ngroups, int phase, float *q, float *scratch,
                               const double *a_slice) {
  static const char fn[] = "autosgm_step";
  autosgm_pack pack;
  for (int32_t g = 0; g < ngroups; g++) pack.k[g] = autosgm_k_of_f32(&k[g]);
  opt_ptrs_f32 p;
  p.p = j->p, p.g = j->g;
  for (int s = 0; s < MS_OPTIM_NSTATE; s++) p.s[s] = j->s[s];
  float *host = NULL, *dev = NULL;
  cudaError_t e = cudaSuccess;
  if (phase == 2) {  // the per-slice numerators, rounded to float, on the device
    host = (float *)malloc(sizeof(float) * j->nslices);
    if (!host) return ms_fail("%s: out of memory", fn);
    for (int32_t s = 0; s < j->nslices; s++) host[s] = (float)a_slice[s];
    e = cudaMalloc((void **)&dev, sizeof(float) * j->nslices);
    if (e == cudaSuccess)
      e = cudaMemcpy(dev, host, sizeof(float) * j->nslices, cudaMemcpyHostToDevice);
  }
  if (e == cudaSuccess) {
    autosgm_kernel<<<ms_grid(j->n), MS_BLOCK>>>(p, j->n, j->table, j->nslices, pack, phase, q,
                                                scratch, dev);
    e = cudaGetLastError();
  }
  if (phase == 2) {
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    cudaFree(dev);
    free(host);
  }
  MS_CUDA_TRY(fn, e);
  return 0;
}
