// optim.cu — the CUDA twins of runtime/optim.c and runtime/arena.c: one kernel launch per
// optimizer step over the arena, the element rules of runtime/optim/<rule>.h (shared with
// the C loops), the constants derived in double by the host and rounded to float here.
// A thread finds its element's group by a binary search over the slice table's offsets
// in device memory (skipped when there is one slice).
#include "common.cuh"
#include "slices.cuh"
#include "optim/rules.h"

#define OPT_FN static __host__ __device__ __forceinline__
#define OPT_T float
#define OPT_SFX f32
#define OPT_FMA fmaf
#define OPT_SQRT sqrtf
#include "optim/rules.h"
#include "optim/arena_ops.h"

// For each rule NAME: NAME_consts_pack (its float constants for every group, passed by
// value), NAME_kernel and the launcher ms_cuda_optim_NAME.
#define OPT_CUDA_RULE(NAME, NSTATE)                                                   \
  struct NAME##_consts_pack { NAME##_k_f32 k[MS_OPTIM_MAX_GROUPS]; };                 \
  __global__ void NAME##_kernel(opt_ptrs_f32 q, int64_t n, const int64_t *table,      \
                                int32_t nslices, NAME##_consts_pack pack) {           \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;          \
         i += (int64_t)gridDim.x * blockDim.x) {                                      \
      const int32_t g = ms_group_of(table, nslices, ms_slice_of(table, nslices, i));  \
      NAME##_elem_f32(i, &q, &pack.k[g]);                                             \
    }                                                                                 \
  }                                                                                   \
  extern "C" int ms_cuda_optim_##NAME(const ms_cuda_optim_job *j,                     \
                                      const ms_##NAME##_consts *k, int32_t ngroups) {  \
    NAME##_consts_pack pack;                                                          \
    for (int32_t g = 0; g < ngroups; g++) pack.k[g] = NAME##_k_of_f32(&k[g]);         \
    opt_ptrs_f32 q;                                                                   \
    q.p = j->p, q.g = j->g;                                                           \
    for (int s = 0; s < MS_OPTIM_NSTATE; s++) q.s[s] = j->s[s];                       \
    NAME##_kernel<<<ms_grid(j->n), MS_BLOCK>>>(q, j->n, j->table, j->nslices, pack);  \
    MS_CUDA_LAUNCHED(#NAME "_step");                                                  \
    return 0;                                                                         \
  }
MS_OPTIM_RULES(OPT_CUDA_RULE)

// ---- arena reductions: one block per chunk, float64 accumulation ----------------------

__global__ void arena_reduce_kernel(int32_t op, const float *a, const float *b,
                                    const int64_t *chunks, double *partial) {
  __shared__ double sh[MS_BLOCK];
  const int64_t off = chunks[2 * blockIdx.x], cnt = chunks[2 * blockIdx.x + 1];
  double acc = 0;
  for (int64_t i = threadIdx.x; i < cnt; i += blockDim.x) {
    double x = a[off + i];
    if (op == MS_ARENA_ABSMAX) { double v = fabs(x); if (!(v <= acc)) acc = v; }
    else acc += arena_term(op, x, b ? (double)b[off + i] : 0.0);
  }
  sh[threadIdx.x] = acc;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {   // a fixed tree: same bits every run
    if ((int)threadIdx.x < w) {
      double u = sh[threadIdx.x], v = sh[threadIdx.x + w];
      sh[threadIdx.x] = op == MS_ARENA_ABSMAX ? (v <= u ? u : v) : u + v;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}

// The reductions' device scratch: the runtime's grow-only workspace (device.cu), laid out
// as the chunk list (2 int64 a chunk) then ndoubles doubles (partial sums, or the per-slice
// coefficients of axpby / perturb). Kernels and copies run in order on the one stream, so
// a later call cannot overwrite what a pending kernel still reads.
static int scratch(int64_t nchunks, int64_t nbytes, int64_t **chunks, void **rest) {
  void *ws;
  MS_TRY(ms_cuda_workspace(&ws, (int64_t)sizeof(int64_t) * 2 * nchunks + nbytes));
  *chunks = (int64_t *)ws;
  *rest = (char *)ws + sizeof(int64_t) * 2 * nchunks;
  return 0;
}

extern "C" int ms_cuda_arena_reduce(int32_t op, const float *a, const float *b,
                                    const int64_t *chunks, int64_t nchunks, double *partial) {
  static const char fn[] = "arena_reduce";
  if (nchunks == 0) return 0;
  if (nchunks > 2147483647LL) return ms_fail("%s: %lld chunks, too many", fn, (long long)nchunks);
  int64_t *d_chunks;
  void *d_partial;
  MS_TRY(scratch(nchunks, (int64_t)sizeof(double) * nchunks, &d_chunks, &d_partial));
  cudaError_t e = cudaMemcpy(d_chunks, chunks, sizeof(int64_t) * 2 * nchunks, cudaMemcpyHostToDevice);
  if (e == cudaSuccess) {
    arena_reduce_kernel<<<(unsigned)nchunks, MS_BLOCK>>>(op, a, b, d_chunks, (double *)d_partial);
    e = cudaGetLastError();
  }
  if (e == cudaSuccess)
    e = cudaMemcpy(partial, d_partial, sizeof(double) * nchunks, cudaMemcpyDeviceToHost);
  MS_CUDA_TRY(fn, e);
  return 0;
}

// y = a y + b x per slice (x NULL: y = a y); the coefficients in the device scratch:
// c[s] = a, c[nslices + s] = b.
__global__ void arena_axpby_kernel(float *y, const float *x, int64_t n, const int64_t *table,
                                   int32_t nslices, const double *c) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int32_t s = table ? ms_slice_of(table, nslices, i) : 0;
    const float a = (float)c[s], b = x ? (float)c[nslices + s] : 0.0f;
    y[i] = arena_axpby_f32(y[i], a, x ? x[i] : 0.0f, b);
  }
}

extern "C" int ms_cuda_arena_axpby(float *y, const float *x, int64_t n, const int64_t *table,
                                   int32_t nslices, const double *a, const double *b) {
  static const char fn[] = "arena_axpby";
  int64_t *unused;
  void *ws;
  MS_TRY(scratch(0, (int64_t)sizeof(double) * 2 * nslices, &unused, &ws));
  double *c = (double *)ws;
  cudaError_t e = cudaMemcpy(c, a, sizeof(double) * nslices, cudaMemcpyHostToDevice);
  if (e == cudaSuccess && x)
    e = cudaMemcpy(c + nslices, b, sizeof(double) * nslices, cudaMemcpyHostToDevice);
  if (e == cudaSuccess) {
    arena_axpby_kernel<<<ms_grid(n), MS_BLOCK>>>(y, x, n, table, nslices, c);
    e = cudaGetLastError();
  }
  MS_CUDA_TRY(fn, e);
  return 0;
}

// out = w + (t^power g) scale per slice: per[s], copied as it is into the device scratch.
__global__ void arena_perturb_kernel(const float *w, const float *g, float *out, int64_t n,
                                     const int64_t *table, int32_t nslices,
                                     const ms_perturb_slice *per) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    const ms_perturb_slice p = per[table ? ms_slice_of(table, nslices, i) : 0];
    out[i] = arena_perturb_f32(w[i], g[i], (float)p.scale, (float)p.eta, p.power);
  }
}

extern "C" int ms_cuda_arena_perturb(const float *w, const float *g, float *out, int64_t n,
                                     const int64_t *table, int32_t nslices,
                                     const ms_perturb_slice *per) {
  static const char fn[] = "arena_perturb";
  int64_t *unused;
  void *ws;
  MS_TRY(scratch(0, (int64_t)sizeof(ms_perturb_slice) * nslices, &unused, &ws));
  cudaError_t e = cudaMemcpy(ws, per, sizeof(ms_perturb_slice) * nslices, cudaMemcpyHostToDevice);
  if (e == cudaSuccess) {
    arena_perturb_kernel<<<ms_grid(n), MS_BLOCK>>>(w, g, out, n, table, nslices,
                                                   (const ms_perturb_slice *)ws);
    e = cudaGetLastError();
  }
  MS_CUDA_TRY(fn, e);
  return 0;
}
