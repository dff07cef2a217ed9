// zo.cu — the CUDA twins of runtime/zo.c and runtime/zo_move.c (float32 arenas): the
// direction rule of runtime/optim/zo.h, so a direction has the CPU's bits. A thread takes
// a quad of 4 consecutive global elements (one Philox block for gaussian and
// segmented_uniform; one word of a block for rademacher) and combines them with the arena
// the way the C loops do (same operations in the same order; --fmad=false: no contraction).
// The exact-restore log (compact and full entries, optim/zo.h) is written in two passes:
// count both per chunk of ZO_CHUNK elements, scan the counts on the host, then write every
// entry at its scanned place (ascending).
#include <stdlib.h>
#include <string.h>
#include "common.cuh"
#include "slices.cuh"
#include "optim/zo.h"

static const int ZO_CHUNK = 4 * MS_BLOCK;   // elements per CUDA block in the move passes

// u of the 4 elements 4q .. 4q + 3 of direction d.
__device__ __forceinline__ void zo_quad(const ms_zo_dir &d, uint64_t q, float u[4]) {
  uint32_t w[4];
  if (d.dist == MS_ZO_RADEMACHER) {
    const uint64_t j = 4 * q;
    ms_zo_words(d.seed, (uint32_t)d.step, d.index, j >> 7, w);
    const uint32_t word = w[(j >> 5) & 3];
    const int b = (int)(j & 31);
    for (int k = 0; k < 4; k++) u[k] = ms_zo_rad(word, b + k);
    return;
  }
  ms_zo_words(d.seed, (uint32_t)d.step, d.index, q, w);
  if (d.dist == MS_ZO_SEGMENTED) {
    for (int k = 0; k < 4; k++) u[k] = ms_zo_seg(w[k]);
    return;
  }
  ms_zo_gauss2(w[0], w[1], &u[0], &u[1]);
  ms_zo_gauss2(w[2], w[3], &u[2], &u[3]);
}

// ---- fill and perturb ---------------------------------------------------------------------

__global__ void zo_fill_kernel(float *out, const float *w, int64_t n, ms_zo_dir d,
                               int64_t offset) {
  const int64_t q0 = offset / 4, nq = (offset + n + 3) / 4 - q0;
  const float s = (float)d.scale;
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < nq;
       t += (int64_t)gridDim.x * blockDim.x) {
    float u[4];
    zo_quad(d, (uint64_t)(q0 + t), u);
    for (int k = 0; k < 4; k++) {
      const int64_t i = 4 * (q0 + t) + k - offset;   // index into out
      if (i < 0 || i >= n) continue;
      out[i] = w ? w[i] + s * u[k] : s * u[k];
    }
  }
}

extern "C" int ms_cuda_zo_fill(float *out, const float *w, int64_t n, const ms_zo_dir *dir,
                               int64_t offset) {
  zo_fill_kernel<<<ms_grid((n + 7) / 4), MS_BLOCK>>>(out, w, n, *dir, offset);
  MS_CUDA_LAUNCHED(w ? "zo_perturb" : "zo_fill");
  return 0;
}

// ---- move -----------------------------------------------------------------------------------

struct zo_move_args {
  float *w;
  int64_t n;
  ms_zo_dir from, to;
  int has_from, has_to, small;   // small: indices fit 32 bits (compact entries allowed)
  const uint32_t *in_idx;        // the log put back: compact entries ...
  const int8_t *in_delta;
  int64_t in_count;
  const int64_t *in_xidx;        // ... and full ones
  const uint64_t *in_xbits;
  int64_t in_xcount;
};

// The first position of a sorted list at or after v.
template <typename I>
__device__ __forceinline__ int64_t zo_lower_bound(const I *a, int64_t n, int64_t v) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if ((int64_t)a[mid] < v) lo = mid + 1; else hi = mid;
  }
  return lo;
}

// Quad q: the base values (the log put back) and the perturbed values; kind[k] = 0 (not
// logged), 1 (a compact entry, delta[k]) or 2 (a full entry). Returns the two counts.
__device__ __forceinline__ void zo_move_quad(const zo_move_args &a, int64_t q, float base[4],
                                             float nw[4], int kind[4], int delta[4],
                                             int *ccount, int *xcount) {
  float uf[4], ut[4];
  if (a.has_from) zo_quad(a.from, (uint64_t)q, uf);
  if (a.has_to) zo_quad(a.to, (uint64_t)q, ut);
  const float sf = (float)a.from.scale, st = (float)a.to.scale;
  for (int k = 0; k < 4; k++) {
    const int64_t i = 4 * q + k;
    base[k] = i < a.n ? (a.has_from ? a.w[i] - sf * uf[k] : a.w[i]) : 0.0f;
  }
  if (a.in_count)
    for (int64_t p = zo_lower_bound(a.in_idx, a.in_count, 4 * q);
         p < a.in_count && (int64_t)a.in_idx[p] < 4 * q + 4; p++) {
      const int k = (int)((int64_t)a.in_idx[p] - 4 * q);
      base[k] = __uint_as_float(__float_as_uint(base[k]) + (uint32_t)(int32_t)a.in_delta[p]);
    }
  if (a.in_xcount)
    for (int64_t p = zo_lower_bound(a.in_xidx, a.in_xcount, 4 * q);
         p < a.in_xcount && a.in_xidx[p] < 4 * q + 4; p++)
      base[a.in_xidx[p] - 4 * q] = __uint_as_float((uint32_t)a.in_xbits[p]);
  *ccount = 0, *xcount = 0;
  for (int k = 0; k < 4; k++) {
    kind[k] = 0, delta[k] = 0;
    if (4 * q + k >= a.n) { nw[k] = 0; continue; }
    if (!a.has_to) { nw[k] = base[k]; continue; }
    const float d = st * ut[k];
    nw[k] = base[k] + d;
    const uint32_t r = __float_as_uint(nw[k] - d), b = __float_as_uint(base[k]);
    if (r == b) continue;
    delta[k] = ms_zo_delta(b, r, 0, a.small);
    kind[k] = delta[k] ? 1 : 2;
    if (delta[k]) ++*ccount; else ++*xcount;
  }
}

// Inclusive scan of v over the block's threads (a fixed order), in sh.
__device__ __forceinline__ void zo_block_scan(int64_t *sh, int64_t v) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = 1; s < MS_BLOCK; s *= 2) {
    const int64_t t = (int)threadIdx.x >= s ? sh[threadIdx.x - s] : 0;
    __syncthreads();
    sh[threadIdx.x] += t;
    __syncthreads();
  }
}

// phase 0: move without a log; 1: count per chunk (w untouched): chunk[2c] compact,
// chunk[2c + 1] full entries; 2: move and write the entries at chunk's scanned offsets.
__global__ void zo_move_kernel(zo_move_args a, int phase, int64_t *chunk, ms_zo_log out) {
  __shared__ int64_t sc[MS_BLOCK], sx[MS_BLOCK];
  const int64_t nchunks = (a.n + ZO_CHUNK - 1) / ZO_CHUNK;
  for (int64_t c = blockIdx.x; c < nchunks; c += gridDim.x) {
    const int64_t q = c * (ZO_CHUNK / 4) + threadIdx.x;
    float base[4], nw[4];
    int kind[4] = {0, 0, 0, 0}, delta[4] = {0, 0, 0, 0}, cc = 0, xc = 0;
    if (4 * q < a.n) zo_move_quad(a, q, base, nw, kind, delta, &cc, &xc);
    if (phase != 1)
      for (int k = 0; k < 4; k++)
        if (4 * q + k < a.n) a.w[4 * q + k] = nw[k];
    if (phase == 0) continue;
    zo_block_scan(sc, cc);
    zo_block_scan(sx, xc);
    if (phase == 1) {
      if (threadIdx.x == MS_BLOCK - 1) chunk[2 * c] = sc[MS_BLOCK - 1], chunk[2 * c + 1] = sx[MS_BLOCK - 1];
    } else {
      int64_t at = chunk[2 * c] + sc[threadIdx.x] - cc, xat = chunk[2 * c + 1] + sx[threadIdx.x] - xc;
      for (int k = 0; k < 4; k++) {
        if (kind[k] == 1) out.idx[at] = (uint32_t)(4 * q + k), out.delta[at] = (int8_t)delta[k], at++;
        if (kind[k] == 2) out.xidx[xat] = 4 * q + k, out.xbits[xat] = __float_as_uint(base[k]), xat++;
      }
    }
    __syncthreads();
  }
}

extern "C" int ms_cuda_zo_move(float *w, int64_t n, const ms_zo_dir *from, const ms_zo_log *in,
                               const ms_zo_dir *to, ms_zo_log *out) {
  static const char fn[] = "zo_move";
  zo_move_args a;
  memset(&a, 0, sizeof a);
  a.w = w, a.n = n, a.has_from = from != NULL, a.has_to = to != NULL;
  a.small = n <= ((int64_t)1 << 32);
  if (from) a.from = *from;
  if (to) a.to = *to;
  if (in) {
    a.in_idx = in->idx, a.in_delta = in->delta, a.in_count = in->count;
    a.in_xidx = in->xidx, a.in_xbits = in->xbits, a.in_xcount = in->xcount;
  }
  ms_zo_log none;
  memset(&none, 0, sizeof none);
  const int64_t nchunks = (n + ZO_CHUNK - 1) / ZO_CHUNK;
  const int grid = (int)(nchunks < 65535LL * 32 ? nchunks : 65535LL * 32);
  if (!out) {
    zo_move_kernel<<<grid, MS_BLOCK>>>(a, 0, NULL, none);
    MS_CUDA_LAUNCHED(fn);
    return 0;
  }
  void *ws;
  MS_TRY(ms_cuda_workspace(&ws, (int64_t)sizeof(int64_t) * 2 * nchunks));
  int64_t *chunk = (int64_t *)ws;
  zo_move_kernel<<<grid, MS_BLOCK>>>(a, 1, chunk, none);
  MS_CUDA_LAUNCHED(fn);
  int64_t *host = (int64_t *)malloc(sizeof(int64_t) * 2 * (size_t)nchunks);
  if (!host) return ms_fail("%s: out of memory for %lld chunk counts", fn, (long long)nchunks);
  cudaError_t e = cudaMemcpy(host, chunk, sizeof(int64_t) * 2 * nchunks, cudaMemcpyDeviceToHost);
  int64_t total = 0, xtotal = 0;
  for (int64_t c = 0; e == cudaSuccess && c < nchunks; c++) {
    const int64_t v = host[2 * c], x = host[2 * c + 1];
    host[2 * c] = total, host[2 * c + 1] = xtotal;
    total += v, xtotal += x;
  }
  if (e == cudaSuccess)
    e = cudaMemcpy(chunk, host, sizeof(int64_t) * 2 * nchunks, cudaMemcpyHostToDevice);
  free(host);
  MS_CUDA_TRY(fn, e);
  MS_TRY(ms_zo_log_reserve(fn, out, total, xtotal, MS_CUDA));
  zo_move_kernel<<<grid, MS_BLOCK>>>(a, 2, chunk, *out);
  MS_CUDA_LAUNCHED(fn);
  out->count = total, out->xcount = xtotal;
  return 0;
}

// ---- estimate and MeZO's update -------------------------------------------------------------

// acc[k] = sum_i coef_i W(u_i) for quad q, i in order (as the C loops).
__device__ __forceinline__ void zo_dir_sum(const ms_zo_dir *dirs, const double *coef,
                                           int32_t ndirs, int divide, int64_t q, float acc[4]) {
  for (int k = 0; k < 4; k++) acc[k] = 0.0f;
  for (int32_t i = 0; i < ndirs; i++) {
    float u[4];
    zo_quad(dirs[i], (uint64_t)q, u);
    const float c = (float)coef[i];
    for (int k = 0; k < 4; k++) acc[k] = acc[k] + c * (divide ? __fdiv_rn(1.0f, u[k]) : u[k]);
  }
}

__global__ void zo_estimate_kernel(float *g, int64_t n, const ms_zo_dir *dirs,
                                   const double *coef, int32_t ndirs, int divide, double beta) {
  const float b = (float)beta;
  for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; 4 * q < n;
       q += (int64_t)gridDim.x * blockDim.x) {
    float acc[4];
    zo_dir_sum(dirs, coef, ndirs, divide, q, acc);
    for (int k = 0; k < 4; k++) {
      const int64_t i = 4 * q + k;
      if (i < n) g[i] = beta == 0 ? acc[k] : b * g[i] + acc[k];
    }
  }
}

__global__ void zo_mezo_kernel(float *w, int64_t n, const ms_zo_dir *dirs, const double *coef,
                               int32_t ndirs, const int64_t *table, int32_t nslices,
                               const double *lr, const double *wd) {
  for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; 4 * q < n;
       q += (int64_t)gridDim.x * blockDim.x) {
    float acc[4];
    zo_dir_sum(dirs, coef, ndirs, 0, q, acc);
    for (int k = 0; k < 4; k++) {
      const int64_t i = 4 * q + k;
      if (i >= n) continue;
      const int32_t grp = ms_group_of(table, nslices, ms_slice_of(table, nslices, i));
      const float l = (float)lr[grp], d = (float)wd[grp];
      w[i] = w[i] - l * (acc[k] + d * w[i]);
    }
  }
}

// dirs, coef (and lr, wd) into the device workspace: 32-byte directions, then doubles.
static int zo_upload(const char *fn, const ms_zo_dir *dirs, const double *coef, int32_t ndirs,
                     const double *lr, const double *wd, int32_t ngroups, ms_zo_dir **d_dirs,
                     double **d_rest) {
  const int64_t nd = (int64_t)sizeof(ms_zo_dir) * ndirs;
  const int64_t nrest = (int64_t)sizeof(double) * (ndirs + 2 * (int64_t)ngroups);
  void *ws;
  MS_TRY(ms_cuda_workspace(&ws, nd + nrest));
  *d_dirs = (ms_zo_dir *)ws;
  *d_rest = (double *)((char *)ws + nd);
  cudaError_t e = cudaMemcpy(*d_dirs, dirs, nd, cudaMemcpyHostToDevice);
  if (e == cudaSuccess)
    e = cudaMemcpy(*d_rest, coef, sizeof(double) * ndirs, cudaMemcpyHostToDevice);
  if (e == cudaSuccess && ngroups)
    e = cudaMemcpy(*d_rest + ndirs, lr, sizeof(double) * ngroups, cudaMemcpyHostToDevice);
  if (e == cudaSuccess && ngroups)
    e = cudaMemcpy(*d_rest + ndirs + ngroups, wd, sizeof(double) * ngroups, cudaMemcpyHostToDevice);
  MS_CUDA_TRY(fn, e);
  return 0;
}

extern "C" int ms_cuda_zo_estimate(float *g, int64_t n, const ms_zo_dir *dirs, const double *coef,
                                   int32_t ndirs, int32_t divide, double beta) {
  static const char fn[] = "zo_estimate";
  ms_zo_dir *d;
  double *rest;
  MS_TRY(zo_upload(fn, dirs, coef, ndirs, NULL, NULL, 0, &d, &rest));
  zo_estimate_kernel<<<ms_grid((n + 3) / 4), MS_BLOCK>>>(g, n, d, rest, ndirs, divide, beta);
  MS_CUDA_LAUNCHED(fn);
  return 0;
}

extern "C" int ms_cuda_zo_mezo(float *w, int64_t n, const ms_zo_dir *dirs, const double *coef,
                               int32_t ndirs, const int64_t *table, int32_t nslices,
                               const double *lr, const double *wd, int32_t ngroups) {
  static const char fn[] = "zo_mezo_update";
  ms_zo_dir *d;
  double *rest;
  MS_TRY(zo_upload(fn, dirs, coef, ndirs, lr, wd, ngroups, &d, &rest));
  zo_mezo_kernel<<<ms_grid((n + 3) / 4), MS_BLOCK>>>(w, n, d, rest, ndirs, table, nslices,
                                                     rest + ndirs, rest + ndirs + ngroups);
  MS_CUDA_LAUNCHED(fn);
  return 0;
}
