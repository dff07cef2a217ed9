// zo.cu — the CUDA twins of runtime/zo.c and runtime/zo_move.c (float32 arenas; float64
// arenas on the GPU are refused before dispatch, ms_check_float): the direction rule of
// runtime/optim/zo.h, so a direction has the CPU's bits. Fill and estimate: a thread takes a
// quad of 4 consecutive global elements (one Philox block for gaussian and
// segmented_uniform; one word of a block for rademacher). Move and MeZO's update: a CUDA
// block takes a log chunk (MS_ZO_CHUNK elements), a thread ZO_PER consecutive elements of
// it, combined with the arena the way the C loops do (same operations in the same order,
// each rounded on its own: optim/zo.h's element rules, never contracted into an fma
// whatever nvcc's --fmad says). A log put back is decoded chunk by chunk into shared memory
// (one thread reads the stream); a log written is counted first (bytes and entries per
// chunk, the previous entry's position by a max-scan over the threads), the counts scanned
// on the host, then every entry written at its place: per chunk the CPU's bytes.
#include <stdlib.h>
#include <string.h>
#include "common.cuh"
#include "slices.cuh"
#include "optim/zo.h"

static const int ZO_PER = MS_ZO_CHUNK / MS_BLOCK;   // elements a thread in the chunk passes
static_assert(MS_ZO_CHUNK % MS_BLOCK == 0, "a chunk is whole threads' spans");
static_assert(ZO_PER % 4 == 0 && 32 % ZO_PER == 0,
              "a thread's span: whole quads within one rademacher word (and a 32-bit mask)");
static_assert(MS_ZO_CHUNK * (1 + 4) + MS_BLOCK * 8 <= 48 * 1024, "static shared memory");

// ---- float arithmetic the CPU's way: the element rules of optim/zo.h (MS_ZO_ON, MS_ZO_OFF,
// MS_ZO_SUM, MS_ZO_MEZO and their MS_ZO_ADD/SUB/MUL/INV), which on the device round each
// operation on its own and give x86's NaN results.

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

__global__ void zo_fill_kernel(float *out, const float *w, int64_t n, int64_t rows,
                               ms_zo_dir d, int64_t offset) {
  const int64_t q0 = offset / 4, nq = (offset + n + 3) / 4 - q0;
  const float s = (float)d.scale;
  const uint32_t index0 = d.index;
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < nq * rows;
       t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t row = t / nq, tq = t % nq;   // row k: direction index + k
    d.index = index0 + (uint32_t)row;
    float u[4];
    zo_quad(d, (uint64_t)(q0 + tq), u);
    for (int k = 0; k < 4; k++) {
      const int64_t i = 4 * (q0 + tq) + k - offset;   // index into the row
      if (i < 0 || i >= n) continue;
      out[row * n + i] = w ? MS_ZO_ON(w[i], s, u[k]) : MS_ZO_MUL(s, u[k]);
    }
  }
}

extern "C" int ms_cuda_zo_fill(float *out, const float *w, int64_t n, int64_t rows,
                               const ms_zo_dir *dir, int64_t offset) {
  if (n <= 0 || rows <= 0) return 0;   // (the caller returns first; nq = 0 would divide by 0)
  zo_fill_kernel<<<ms_grid(rows * ((n + 7) / 4)), MS_BLOCK>>>(out, w, n, rows, *dir, offset);
  MS_CUDA_LAUNCHED(w ? "zo_perturb" : "zo_fill");
  return 0;
}

// ---- the log, chunk by chunk ---------------------------------------------------------------

struct zo_log_in {            // a log put back (buf NULL: none)
  const uint8_t *buf;
  const int64_t *off;
  const int32_t *cnt;
};

// The put-back table of chunk c in shared memory: kind 0 (none), 1 (val: a delta), 2 (val:
// the original bits). Every thread of the block calls it.
__device__ __forceinline__ void zo_decode_chunk(const zo_log_in &in, int64_t c, uint8_t *kind,
                                                uint32_t *val) {
  __syncthreads();   // the previous chunk's table is read no more
  for (int k = threadIdx.x; k < MS_ZO_CHUNK; k += blockDim.x) kind[k] = 0;
  __syncthreads();
  if (threadIdx.x == 0) {
    const uint8_t *p = in.buf + in.off[c];
    int pos = -1;
    for (int32_t e = 0, m = in.cnt[c]; e < m; e++) {
      int gap, delta;
      uint64_t b = 0;
      p += ms_zo_get(p, &gap, &delta, &b, 0);
      pos += gap + 1;
      kind[pos] = delta ? 1 : 2;
      val[pos] = delta ? (uint32_t)delta : (uint32_t)b;
    }
  }
  __syncthreads();
}

// The base values of the thread's ZO_PER elements of chunk c (from the position e0 in the
// chunk): w less `from` (uf: its u), the log put back. Elements past n: 0.
__device__ __forceinline__ void zo_chunk_base(const float *w, int64_t n, int64_t c, int e0,
                                              int has_from, float sf, const float *uf,
                                              int has_in, const uint8_t *kind,
                                              const uint32_t *val, float *base) {
  for (int k = 0; k < ZO_PER; k++) {
    const int64_t i = c * MS_ZO_CHUNK + e0 + k;
    float b = i < n ? (has_from ? MS_ZO_OFF(w[i], sf, uf[k]) : w[i]) : 0.0f;
    if (has_in && kind[e0 + k])
      b = kind[e0 + k] == 1 ? __uint_as_float(__float_as_uint(b) + val[e0 + k])
                            : __uint_as_float(val[e0 + k]);
    base[k] = b;
  }
}

// u of direction d at the thread's ZO_PER elements from global element j0 (a multiple of
// ZO_PER: for rademacher, bits of one word of one Philox block).
__device__ __forceinline__ void zo_span(const ms_zo_dir &d, int64_t j0, float *u) {
  if (d.dist == MS_ZO_RADEMACHER) {
    uint32_t w[4];
    ms_zo_words(d.seed, (uint32_t)d.step, d.index, (uint64_t)j0 >> 7, w);
    const uint32_t word = w[(j0 >> 5) & 3];
    const int b = (int)(j0 & 31);
    for (int k = 0; k < ZO_PER; k++) u[k] = ms_zo_rad(word, b + k);
    return;
  }
  for (int k = 0; k < ZO_PER; k += 4) zo_quad(d, (uint64_t)((j0 + k) / 4), u + k);
}

// Exclusive scan (sum, or max when is_max) of v over the block's threads, in a fixed order.
__device__ __forceinline__ int64_t zo_block_scan(int64_t *sh, int64_t v, int is_max,
                                                 int64_t *total) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = 1; s < MS_BLOCK; s *= 2) {
    const int64_t t = (int)threadIdx.x >= s ? sh[threadIdx.x - s] : (is_max ? -1 : 0);
    __syncthreads();
    sh[threadIdx.x] = is_max ? (t > sh[threadIdx.x] ? t : sh[threadIdx.x]) : sh[threadIdx.x] + t;
    __syncthreads();
  }
  const int64_t excl = threadIdx.x ? sh[threadIdx.x - 1] : (is_max ? -1 : 0);
  *total = sh[MS_BLOCK - 1];
  __syncthreads();
  return excl;
}

// ---- move -----------------------------------------------------------------------------------

struct zo_move_args {
  float *w;
  int64_t n;
  ms_zo_dir from, to;
  int has_from, has_to, same;    // same: from and to one direction (generated once)
  zo_log_in in;
};

struct zo_log_out {            // a log written: its stream, per-chunk offsets and counts
  uint8_t *buf;
  int64_t *off;
  int32_t *cnt;
};

// phase 0: move without a log; 1: count per chunk (w untouched): out.off[c] = its bytes,
// out.cnt[c] = its entries; 2: move and write the entries at out.off[c] (now scanned).
__global__ void zo_move_kernel(zo_move_args a, int phase, zo_log_out out) {
  __shared__ uint8_t kind[MS_ZO_CHUNK];
  __shared__ uint32_t val[MS_ZO_CHUNK];
  __shared__ int64_t sh[MS_BLOCK];
  const int64_t nchunks = (a.n + MS_ZO_CHUNK - 1) / MS_ZO_CHUNK;
  const int e0 = (int)threadIdx.x * ZO_PER;
  for (int64_t c = blockIdx.x; c < nchunks; c += gridDim.x) {
    const int64_t j0 = c * MS_ZO_CHUNK + e0;
    if (a.in.buf) zo_decode_chunk(a.in, c, kind, val);
    float uf[ZO_PER], ub[ZO_PER], base[ZO_PER];
    if (a.has_from) zo_span(a.from, j0, uf);
    if (a.has_to && !a.same) zo_span(a.to, j0, ub);
    const float *ut = a.same ? uf : ub;
    zo_chunk_base(a.w, a.n, c, e0, a.has_from, (float)a.from.scale, uf, a.in.buf != NULL, kind,
                  val, base);
    const float st = (float)a.to.scale;
    float nw[ZO_PER];
    int delta[ZO_PER];
    int last = -1, bytes = 0, cnt = 0;
    uint32_t logged = 0;   // bit k: element k logged
    for (int k = 0; k < ZO_PER; k++) {
      nw[k] = base[k], delta[k] = 0;
      if (!a.has_to || j0 + k >= a.n) continue;
      const float d = MS_ZO_MUL(st, ut[k]);   // as the C loop: nw = bs + d, logged when
      nw[k] = MS_ZO_ADD(base[k], d);          // fl(nw - d) != bs bitwise
      if (phase == 0) continue;
      const uint32_t r = __float_as_uint(MS_ZO_SUB(nw[k], d)), b = __float_as_uint(base[k]);
      if (r == b) continue;
      delta[k] = ms_zo_delta(b, r, 0);
      logged |= 1u << k, last = e0 + k, cnt++;
    }
    if (phase != 1)
      for (int k = 0; k < ZO_PER; k++)
        if (j0 + k < a.n) a.w[j0 + k] = nw[k];
    if (phase == 0) continue;
    int64_t tot;
    int prev = (int)zo_block_scan(sh, last, 1, &tot);   // the chunk's entry before ours
    for (int k = 0, p = prev; k < ZO_PER; k++)
      if (logged >> k & 1) bytes += ms_zo_entry_bytes(e0 + k - p - 1, delta[k], 0), p = e0 + k;
    int64_t ctot, btot;
    const int64_t cexcl = zo_block_scan(sh, cnt, 0, &ctot);
    const int64_t bexcl = zo_block_scan(sh, bytes, 0, &btot);
    (void)cexcl;
    if (phase == 1) {
      if (threadIdx.x == 0) out.off[c] = btot, out.cnt[c] = (int32_t)ctot;
      continue;
    }
    uint8_t *q = out.buf + out.off[c] + bexcl;
    for (int k = 0, p = prev; k < ZO_PER; k++)
      if (logged >> k & 1) {
        q += ms_zo_put(q, e0 + k - p - 1, delta[k], __float_as_uint(base[k]), 0);
        p = e0 + k;
      }
  }
}

static void zo_log_in_of(const ms_zo_log *in, zo_log_in *li) {
  li->buf = NULL, li->off = NULL, li->cnt = NULL;
  if (in && in->count > 0 && in->nseg > 0)
    li->buf = in->seg[0].buf, li->off = in->chunk_off, li->cnt = in->chunk_cnt;
}

static int zo_chunk_grid(int64_t nchunks) {   // one block a chunk, grid-stride past the cap
  return (int)(nchunks < 1 ? 1 : nchunks < 65535LL * 32 ? nchunks : 65535LL * 32);
}

extern "C" int ms_cuda_zo_move(float *w, int64_t n, const ms_zo_dir *from, const ms_zo_log *in,
                               const ms_zo_dir *to, ms_zo_log *out) {
  static const char fn[] = "zo_move";
  zo_move_args a;
  memset(&a, 0, sizeof a);
  a.w = w, a.n = n, a.has_from = from != NULL, a.has_to = to != NULL;
  if (from) a.from = *from;
  if (to) a.to = *to;
  a.same = from && to && from->seed == to->seed && from->step == to->step &&
           from->index == to->index && from->dist == to->dist;
  zo_log_in_of(in, &a.in);
  if (n <= 0 || (!from && !to && !a.in.buf)) return 0;   // nothing to do (as the C path)
  zo_log_out lo;
  memset(&lo, 0, sizeof lo);
  const int64_t nchunks = (n + MS_ZO_CHUNK - 1) / MS_ZO_CHUNK;
  const int grid = zo_chunk_grid(nchunks);
  if (!out) {
    zo_move_kernel<<<grid, MS_BLOCK>>>(a, 0, lo);
    MS_CUDA_LAUNCHED(fn);
    return 0;
  }
  MS_TRY(ms_zo_log_reserve(fn, out, nchunks, 1, 0, MS_CUDA));
  lo.off = out->chunk_off, lo.cnt = out->chunk_cnt;
  zo_move_kernel<<<grid, MS_BLOCK>>>(a, 1, lo);
  MS_CUDA_LAUNCHED(fn);
  int64_t *off = (int64_t *)malloc(sizeof(int64_t) * (size_t)nchunks);
  int32_t *cnt = (int32_t *)malloc(sizeof(int32_t) * (size_t)nchunks);
  if (!off || !cnt) {
    free(off), free(cnt);
    return ms_fail("%s: out of memory for %lld chunk counts", fn, (long long)nchunks);
  }
  cudaError_t e = cudaMemcpy(off, lo.off, sizeof(int64_t) * nchunks, cudaMemcpyDeviceToHost);
  if (e == cudaSuccess)
    e = cudaMemcpy(cnt, lo.cnt, sizeof(int32_t) * nchunks, cudaMemcpyDeviceToHost);
  int64_t bytes = 0, total = 0;
  for (int64_t c = 0; e == cudaSuccess && c < nchunks; c++) {
    const int64_t b = off[c];
    off[c] = bytes, bytes += b, total += cnt[c];
  }
  if (e == cudaSuccess)
    e = cudaMemcpy(lo.off, off, sizeof(int64_t) * nchunks, cudaMemcpyHostToDevice);
  free(off), free(cnt);
  MS_CUDA_TRY(fn, e);
  // the stream's room (the chunk arrays, as large as needed already, are kept)
  MS_TRY(ms_zo_log_reserve(fn, out, nchunks, 1, bytes, MS_CUDA));
  lo.buf = out->seg[0].buf;
  zo_move_kernel<<<grid, MS_BLOCK>>>(a, 2, lo);
  MS_CUDA_LAUNCHED(fn);
  out->count = total;
  out->seg[0].lo = 0, out->seg[0].hi = nchunks, out->seg[0].len = bytes, out->seg[0].count = total;
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
    for (int k = 0; k < 4; k++) acc[k] = MS_ZO_SUM(acc[k], c, divide ? MS_ZO_INV(u[k]) : u[k]);
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
      if (i < n) g[i] = beta == 0 ? acc[k] : MS_ZO_ADD(MS_ZO_MUL(b, g[i]), acc[k]);
    }
  }
}

// One CUDA block a chunk: base = w less `from` with the log put back, then
// w = base - lr_s (acc + wd_s base) (as the C loop: same operations, same order).
__global__ void zo_mezo_kernel(float *w, int64_t n, ms_zo_dir from, int has_from, zo_log_in in,
                               int same, const ms_zo_dir *dirs, const double *coef,
                               int32_t ndirs, const int64_t *table, int32_t nslices,
                               const double *lr, const double *wd) {
  __shared__ uint8_t kind[MS_ZO_CHUNK];
  __shared__ uint32_t val[MS_ZO_CHUNK];
  const int64_t nchunks = (n + MS_ZO_CHUNK - 1) / MS_ZO_CHUNK;
  const int e0 = (int)threadIdx.x * ZO_PER;
  for (int64_t c = blockIdx.x; c < nchunks; c += gridDim.x) {
    const int64_t j0 = c * MS_ZO_CHUNK + e0;
    if (in.buf) zo_decode_chunk(in, c, kind, val);
    float uf[ZO_PER], u[ZO_PER], base[ZO_PER], acc[ZO_PER];
    if (has_from) zo_span(from, j0, uf);
    zo_chunk_base(w, n, c, e0, has_from, (float)from.scale, uf, in.buf != NULL, kind, val, base);
    for (int k = 0; k < ZO_PER; k++) acc[k] = 0.0f;
    for (int32_t i = 0; i < ndirs; i++) {
      const float *ui = u;
      if (i == same) ui = uf;
      else zo_span(dirs[i], j0, u);
      const float cf = (float)coef[i];
      for (int k = 0; k < ZO_PER; k++) acc[k] = MS_ZO_SUM(acc[k], cf, ui[k]);
    }
    for (int k = 0; k < ZO_PER; k++) {
      const int64_t i = j0 + k;
      if (i >= n) continue;
      const int32_t grp = ms_group_of(table, nslices, ms_slice_of(table, nslices, i));
      const float l = (float)lr[grp], d = (float)wd[grp];
      w[i] = MS_ZO_MEZO(base[k], l, acc[k], d);
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
  if (n <= 0) return 0;
  ms_zo_dir *d;
  double *rest;
  MS_TRY(zo_upload(fn, dirs, coef, ndirs, NULL, NULL, 0, &d, &rest));
  zo_estimate_kernel<<<ms_grid((n + 3) / 4), MS_BLOCK>>>(g, n, d, rest, ndirs, divide, beta);
  MS_CUDA_LAUNCHED(fn);
  return 0;
}

extern "C" int ms_cuda_zo_mezo(float *w, int64_t n, const ms_zo_dir *from, const ms_zo_log *in,
                               const ms_zo_dir *dirs, const double *coef, int32_t ndirs,
                               const int64_t *table, int32_t nslices, const double *lr,
                               const double *wd, int32_t ngroups) {
  static const char fn[] = "zo_mezo_update";
  if (n <= 0) return 0;
  ms_zo_dir *d;
  double *rest;
  MS_TRY(zo_upload(fn, dirs, coef, ndirs, lr, wd, ngroups, &d, &rest));
  ms_zo_dir f;
  memset(&f, 0, sizeof f);
  int same = -1;
  if (from) {
    f = *from;
    for (int32_t i = 0; i < ndirs && same < 0; i++)
      if (dirs[i].seed == f.seed && dirs[i].step == f.step && dirs[i].index == f.index &&
          dirs[i].dist == f.dist)
        same = i;
  }
  zo_log_in li;
  zo_log_in_of(in, &li);
  const int64_t nchunks = (n + MS_ZO_CHUNK - 1) / MS_ZO_CHUNK;
  zo_mezo_kernel<<<zo_chunk_grid(nchunks), MS_BLOCK>>>(w, n, f, from != NULL, li, same, d, rest,
                                                       ndirs, table, nslices, rest + ndirs,
                                                       rest + ndirs + ngroups);
  MS_CUDA_LAUNCHED(fn);
  return 0;
}
