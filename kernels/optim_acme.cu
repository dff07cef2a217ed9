// optim_acme.cu — the CUDA twin of runtime/optim_acme.c: ACME's fused passes (DOTS, MOVE,
// ASAM_NORM, ASAM_PERTURB) over a float32 arena, the element rules of runtime/optim/acme.h
// (shared with the C loops), the constants derived in double by the host (ACME.lua) and
// rounded to float here. One block per chunk of the host's chunk list (offset, count,
// group, weight_rule; at most MS_REDUCE_BLOCK elements within one slice): a chunk's four
// sums are accumulated in float64 per thread and combined by a fixed tree, so the partial
// sums are the same bits every run; the host adds them in chunk order.
#include "common.cuh"
#include "optim/common.h"
#include "optim/acme.h"

#define OPT_FN static __host__ __device__ __forceinline__
#define OPT_T float
#define OPT_SFX f32
#define OPT_FMA fmaf
#define OPT_SQRT sqrtf
#include "optim/acme.h"   // (with optim/common.h's template part)

struct acme_pack { acme_k_f32 k[MS_OPTIM_MAX_GROUPS]; };

__global__ void acme_kernel(int32_t op, acme_ptrs_f32 q, const int64_t *chunks, acme_pack pack,
                            int32_t flags, double *partial) {
  __shared__ double sh[MS_ACME_NSUM][MS_BLOCK];
  const int64_t *ch = chunks + MS_ACME_CHUNK * (int64_t)blockIdx.x;
  const int64_t off = ch[0], cnt = ch[1];
  const acme_k_f32 *k = &pack.k[ch[2]];
  const int weight = ch[3] != 0, adam = k->adam != 0;
  // w0 is saved only where the group moves from w (from_saved: w0 is its base)
  const int sw = (flags & MS_ACME_SAVE_W0) != 0 && !k->from_saved;
  const int sg = (flags & MS_ACME_SAVE_G0) != 0;
  const int sum = (flags & MS_ACME_SUM) != 0;
  const float *bp = k->from_saved ? q.w0 : q.p, *y = q.g0 ? q.g0 : q.g;
  const float *gn = k->gsel_g0 ? q.g0 : q.g;
  double acc[MS_ACME_NSUM] = {0, 0, 0, 0};
  for (int64_t e = threadIdx.x; e < cnt; e += blockDim.x) {
    const int64_t i = off + e;
    if (op == MS_ACME_DOTS) {
      double t[4];
      acme_dots_elem_f32(i, &q, k, adam, t);
      for (int s = 0; s < 4; s++) acc[s] += t[s];
    } else if (op == MS_ACME_MOVE) {
      if (k->guard) {
        acme_save_elem_f32(i, &q, k, sw, sg);
        acme_guard_elem_f32(i, &q, k, bp);
      } else {   // (the saves inside the move: the C loops fuse them in the trial move only)
        acc[0] += acme_move_elem_f32(i, &q, k, bp, y, gn, adam, k->update, k->nesterov, sum, sw,
                                     sg);
      }
    } else if (op == MS_ACME_ASAM_NORM) {
      acc[0] += acme_asam_norm_elem_f32(i, &q, k, adam, weight);
    } else {
      acme_asam_perturb_elem_f32(i, &q, k, adam, weight, sg);
    }
  }
  for (int s = 0; s < MS_ACME_NSUM; s++) sh[s][threadIdx.x] = acc[s];
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {   // a fixed tree: same bits every run
    if ((int)threadIdx.x < w)
      for (int s = 0; s < MS_ACME_NSUM; s++) sh[s][threadIdx.x] += sh[s][threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0)
    for (int s = 0; s < MS_ACME_NSUM; s++) partial[MS_ACME_NSUM * (int64_t)blockIdx.x + s] = sh[s][0];
}

extern "C" int ms_cuda_acme(int32_t op, float *const *ptrs, const int64_t *chunks, int64_t nchunks,
                            const ms_acme_hyper *h, int32_t ngroups, int32_t flags,
                            double *partial) {
  static const char fn[] = "ACME.step";
  if (nchunks == 0) return 0;
  if (nchunks > 2147483647LL) return ms_fail("%s: %lld chunks, too many", fn, (long long)nchunks);
  if (ngroups < 1 || ngroups > MS_OPTIM_MAX_GROUPS)
    return ms_fail("%s: %d groups, expected 1 to %d", fn, (int)ngroups, (int)MS_OPTIM_MAX_GROUPS);
  acme_pack pack;
  for (int32_t g = 0; g < ngroups; g++) pack.k[g] = acme_k_of_f32(&h[g]);
  acme_ptrs_f32 q;
  q.p = ptrs[0], q.g = ptrs[1], q.m = ptrs[2], q.v = ptrs[3], q.w0 = ptrs[4], q.g0 = ptrs[5];
  // the chunk list, then the partial sums, in the runtime's grow-only workspace (device.cu)
  void *ws;
  const int64_t chunk_bytes = (int64_t)sizeof(int64_t) * MS_ACME_CHUNK * nchunks;
  MS_TRY(ms_cuda_workspace(&ws, chunk_bytes + (int64_t)sizeof(double) * MS_ACME_NSUM * nchunks));
  int64_t *d_chunks = (int64_t *)ws;
  double *d_partial = (double *)((char *)ws + chunk_bytes);
  cudaError_t e = cudaMemcpy(d_chunks, chunks, chunk_bytes, cudaMemcpyHostToDevice);
  if (e == cudaSuccess) {
    acme_kernel<<<(unsigned)nchunks, MS_BLOCK>>>(op, q, d_chunks, pack, flags, d_partial);
    e = cudaGetLastError();
  }
  if (e == cudaSuccess)   // (synchronises: the sums, and the workspace is free again)
    e = cudaMemcpy(partial, d_partial, sizeof(double) * MS_ACME_NSUM * nchunks,
                   cudaMemcpyDeviceToHost);
  MS_CUDA_TRY(fn, e);
  return 0;
}
