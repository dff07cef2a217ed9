/* zo.c — the zeroth-order directions on the CPU (and the dispatch to kernels/zo.cu):
 * materialize (fill), perturb, estimate and MeZO's fused update; the exact-restore move
 * is in zo_move.c. The direction rule is optim/zo.h's.
 *
 * The loops work on aligned blocks of ZO_B global elements: a block's directions are
 * generated into a small buffer (the Philox words of many blocks at once, zo_rad.c's
 * zo_philox_words: AVX-512 when the CPU has it, else a loop the compiler vectorizes), then a
 * plain vectorizable loop combines them with the arena.
 * Rademacher directions take zo_rad.c's paths instead: Philox batches of (direction,
 * 128-block) lanes, the sign bits selecting +-c (fill and perturb a row span at a time,
 * the sums of all directions a chunk at a time). Threads take whole blocks, and
 * every element's value depends only on its own inputs: the result is the same for any
 * thread count. */
#include "internal.h"
#include "optim/zo.h"
#include "optim/drive.h"
#include "zo_rad.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- generation --------------------------------------------------------------------- */

/* Box-Muller over np pairs (a[p], b[p]) -> z[2p], z[2p + 1]. */
ZO_CLONES static void gauss_lanes(int np, const uint32_t *a, const uint32_t *b, float *z0,
                                  float *z1) {
  for (int p = 0; p < np; p++) ms_zo_gauss2(a[p], b[p], &z0[p], &z1[p]);
}

void zo_gen(const ms_zo_dir *d, int64_t base, int a, int b, float *u) {
  if (d->dist == MS_ZO_RADEMACHER) {
    zo_rad_gen(d, base, a, b, u);
    return;
  }
  const int first = a >> 2, m = ((b + 3) >> 2) - first;   /* word blocks covering [a, b) */
  uint32_t w[4][128];
  zo_philox_words(d, (uint64_t)(base >> 2) + (uint64_t)first, m, w);
  float *v = u + 4 * first;
  if (d->dist == MS_ZO_SEGMENTED) {
    for (int l = 0; l < m; l++)
      for (int q = 0; q < 4; q++) v[4 * l + q] = ms_zo_seg(w[q][l]);
    return;
  }
  float z[4][128];   /* z[0]: words (0,1) cos, z[1]: sin; z[2], z[3]: words (2,3) */
  gauss_lanes(m, w[0], w[1], z[0], z[1]);
  gauss_lanes(m, w[2], w[3], z[2], z[3]);
  for (int l = 0; l < m; l++)
    for (int q = 0; q < 4; q++) v[4 * l + q] = z[q][l];
}

/* ---- checks ------------------------------------------------------------------------- */

static const char *const dist_names[] = {"rademacher", "gaussian", "segmented_uniform"};

int zo_check_dir(const char *fn, const char *arg, const ms_zo_dir *d) {
  if (!d) return ms_fail("%s: argument '%s' is NULL, expected a direction", fn, arg);
  if (d->dist < 0 || d->dist > MS_ZO_SEGMENTED)
    return ms_fail("%s: %s.dist is %d, expected 0 (rademacher), 1 (gaussian) or 2 "
                   "(segmented_uniform)", fn, arg, (int)d->dist);
  if (d->step >= ((uint64_t)1 << 32))
    return ms_fail("%s: %s.step is %llu, expected < 2^32", fn, arg,
                   (unsigned long long)d->step);
  if (!isfinite(d->scale))
    return ms_fail("%s: %s.scale is %g, expected a finite number", fn, arg, d->scale);
  return 0;
}

int zo_check_arena(const char *fn, const char *arg, const ms_tensor *t) {
  MS_TRY(ms_check_float(fn, arg, t));
  if (!ms_tensor_is_contiguous(t))
    return ms_fail("%s: argument '%s' is not contiguous, expected a contiguous tensor", fn, arg);
  return 0;
}

static int check_offset(const char *fn, int64_t offset, int64_t n) {
  if (offset < 0 || offset > MS_MAX_NUMEL - n)
    return ms_fail("%s: offset is %lld, expected 0 <= offset <= 2^59 - %lld", fn,
                   (long long)offset, (long long)n);
  return 0;
}

/* ---- fill and perturb ---------------------------------------------------------------- */

typedef struct {
  const ms_zo_dir *d;
  int32_t dtype;
  void *out;
  const void *w;       /* NULL: fill */
  int64_t offset, n;   /* global index of out[0] (of each row), elements (a row) */
  int64_t nblk;        /* blocks a row; rows: out holds rows of n, row r direction index + r */
} fill_job;

#define FILL_SPAN(T, ST)                                                               \
  do {                                                                                 \
    T *o = (T *)j->out;                                                                \
    const T *w = (const T *)j->w;                                                      \
    const int64_t at = base - j->offset;      /* out[at + k] is global element base + k */ \
    const ST s = (ST)j->d->scale;                                                      \
    if (w)                                                                             \
      for (int k = a; k < b; k++) o[at + k] = MS_ZO_ON(w[at + k], s, (ST)u[k]);                \
    else                                                                               \
      for (int k = a; k < b; k++) o[at + k] = MS_ZO_MUL(s, (ST)u[k]);                            \
  } while (0)

/* Rademacher: the blocks [lo, hi) as one span a row (zo_rad.c). */
static void fill_rad(const fill_job *jj, int64_t lo, int64_t hi) {
  const int64_t first = jj->offset / ZO_B, end = jj->offset + jj->n;
  for (int64_t it = lo; it < hi;) {
    const int64_t row = it / jj->nblk, b0 = it % jj->nblk;
    const int64_t b1 = jj->nblk - b0 < hi - it ? jj->nblk : b0 + (hi - it);
    const int64_t g0 = (first + b0) * ZO_B, g1 = (first + b1) * ZO_B;
    const int64_t s0 = g0 > jj->offset ? g0 : jj->offset, s1 = g1 < end ? g1 : end;
    const int64_t at = row * jj->n + (s0 - jj->offset);   /* out[at] is element s0 */
    ms_zo_dir d = *jj->d;
    d.index += (uint32_t)row;
    if (jj->dtype == MS_FLOAT32)
      zo_rad_span_f32(&d, s0, s1 - s0, (float *)jj->out + at,
                      jj->w ? (const float *)jj->w + at : NULL);
    else
      zo_rad_span_f64(&d, s0, s1 - s0, (double *)jj->out + at,
                      jj->w ? (const double *)jj->w + at : NULL);
    it += b1 - b0;
  }
}

ZO_CLONES static void fill_share(void *ctx, int64_t lo, int64_t hi) {
  const fill_job *jj = ctx;
  if (jj->d->dist == MS_ZO_RADEMACHER) return fill_rad(jj, lo, hi);
  const int64_t first = jj->offset / ZO_B, end = jj->offset + jj->n;
  const size_t esz = jj->dtype == MS_FLOAT32 ? sizeof(float) : sizeof(double);
  float u[ZO_B];
  for (int64_t it = lo; it < hi; it++) {
    const int64_t row = it / jj->nblk, blk = first + it % jj->nblk;
    ms_zo_dir d = *jj->d;
    d.index += (uint32_t)row;
    fill_job rj = *jj;
    rj.d = &d, rj.out = (char *)jj->out + (size_t)(row * jj->n) * esz;
    const fill_job *j = &rj;
    const int64_t base = blk * ZO_B;
    const int a = base < j->offset ? (int)(j->offset - base) : 0;
    const int b = end - base < ZO_B ? (int)(end - base) : ZO_B;
    zo_gen(j->d, base, a, b, u);
    if (j->dtype == MS_FLOAT32) FILL_SPAN(float, float);
    else FILL_SPAN(double, double);
  }
}

int64_t zo_cost(int32_t dist) { return dist == MS_ZO_GAUSSIAN ? 16 : dist == MS_ZO_SEGMENTED ? 6 : 2; }

static int fill_or_perturb(const char *fn, ms_tensor *out, const ms_tensor *w,
                           const ms_zo_dir *d, int64_t offset) {
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(zo_check_arena(fn, "out", out));
  if (w) {
    MS_TRY(zo_check_arena(fn, "w", w));
    MS_TRY(ms_check_same(fn, "out", out, "w", w));
    MS_TRY(ms_check_shape(fn, "out", out, w->ndim, w->sizes));
    if (ms_overlap(out, w, 1))
      return ms_fail("%s: argument 'out' partly overlaps 'w', expected w itself or separate "
                     "memory", fn);
  }
  MS_TRY(zo_check_dir(fn, "dir", d));
  /* fill of a 2-D [r, n]: row k is direction index + k, elements offset .. offset + n - 1 */
  const int64_t rows = !w && out->ndim == 2 ? out->sizes[0] : 1;
  const int64_t n = rows ? out->count / rows : 0;
  MS_TRY(check_offset(fn, offset, n));
  if (rows > 1 && (uint64_t)d->index + (uint64_t)(rows - 1) >= ((uint64_t)1 << 32))
    return ms_fail("%s: dir.index %u and %lld rows need direction indices up to %llu, expected "
                   "< 2^32", fn, (unsigned)d->index, (long long)rows,
                   (unsigned long long)d->index + (unsigned long long)(rows - 1));
  if (out->count == 0) return 0;
  if (w && d->scale == 0) return ms_ptr(out) == ms_ptr(w) ? 0 : ms_copy(out, w);
  if (ms_device_of(out) == MS_CUDA)
    return ms_cuda_zo_fill((float *)ms_ptr(out), w ? (const float *)ms_ptr(w) : NULL, n, rows,
                           d, offset);
  const int64_t nblk = (offset + n - 1) / ZO_B - offset / ZO_B + 1;
  fill_job j = {d, out->dtype_id, ms_ptr(out), w ? ms_ptr(w) : NULL, offset, n, nblk};
  ms_parallel_for(rows * nblk, rows * n * zo_cost(d->dist), fill_share, &j);
  return 0;
}

int ms_zo_fill(ms_tensor *out, const ms_zo_dir *dir, int64_t offset) {
  return fill_or_perturb("zo_fill", out, NULL, dir, offset);
}

int ms_zo_perturb(ms_tensor *out, const ms_tensor *w, const ms_zo_dir *dir, int64_t offset) {
  if (!w) return ms_fail("zo_perturb: argument 'w' is NULL, expected a tensor");
  return fill_or_perturb("zo_perturb", out, w, dir, offset);
}

/* ---- estimate and MeZO's update ------------------------------------------------------ */

typedef struct {
  const ms_zo_dir *dirs;
  const double *coef;
  int32_t ndirs, divide, dtype;
  double beta;
  void *x;                      /* g, or w */
  int64_t n;
  const ms_slice_table *table;  /* mezo */
  const double *lr, *wd;        /* mezo, per group */
  const ms_zo_dir *from;        /* mezo: the perturbation on w (NULL: none) ... */
  const ms_zo_log *in;          /* ... and its log (NULL: none) */
  int32_t same;                 /* mezo: the i of dirs[i] == from (generated once), or -1 */
  int32_t rad;                  /* every dirs[i] rademacher: zo_rad_sum, a chunk at a time */
} sum_job;

/* The sums of a chunk (rademacher), in the arena's dtype. */
typedef union { float f32[MS_ZO_CHUNK]; double f64[MS_ZO_CHUNK]; } chunk_sums;

/* acc[k] = sum_i coef_i W(u_i) for k in [a, b), in T, i in order. (All rademacher: zo_rad.c's
 * zo_rad_sum gives these same sums for a whole chunk at once.) */
#define DIR_SUM(T)                                                                     \
  do {                                                                                 \
    for (int k = a; k < b; k++) acc[k] = 0;                                            \
    for (int32_t i = 0; i < j->ndirs; i++) {                                           \
      const float *ui = u;                                                             \
      if (i == j->same) ui = uf;                                                       \
      else zo_gen(&j->dirs[i], base, a, b, u);                                         \
      const T c = (T)j->coef[i];                                                       \
      if (j->divide)                                                                   \
        for (int k = a; k < b; k++) acc[k] = MS_ZO_SUM(acc[k], c, MS_ZO_INV((T)ui[k]));           \
      else                                                                             \
        for (int k = a; k < b; k++) acc[k] = MS_ZO_SUM(acc[k], c, (T)ui[k]);                    \
    }                                                                                  \
  } while (0)

/* g[base + k] = beta g[base + k] + acc[k] for k in [a, b) (beta 0: g not read). */
#define ESTIMATE_STORE(T)                                                              \
  do {                                                                                 \
    T *g = (T *)j->x;                                                                  \
    const T beta = (T)j->beta;                                                         \
    if (j->beta == 0)                                                                  \
      for (int k = a; k < b; k++) g[base + k] = acc[k];                                \
    else                                                                               \
      for (int k = a; k < b; k++) g[base + k] = MS_ZO_ADD(MS_ZO_MUL(beta, g[base + k]), acc[k]);           \
  } while (0)

#define ESTIMATE_SPAN(T)                                                               \
  do {                                                                                 \
    T acc[ZO_B];                                                                       \
    DIR_SUM(T);                                                                        \
    ESTIMATE_STORE(T);                                                                 \
  } while (0)

/* Rademacher: up to a chunk of blocks summed at once (zo_rad.c). */
#define ESTIMATE_RAD(T, SFX)                                                           \
  do {                                                                                 \
    T *acc = sums.SFX;                                                                 \
    zo_rad_sum_##SFX(j->dirs, j->coef, j->ndirs, base, b, acc);                        \
    ESTIMATE_STORE(T);                                                                 \
  } while (0)

ZO_CLONES static void estimate_share(void *ctx, int64_t lo, int64_t hi) {
  const sum_job *j = ctx;
  if (j->rad) {
    chunk_sums sums;
    for (int64_t blk = lo; blk < hi; blk += MS_ZO_CHUNK / ZO_B) {
      const int64_t base = blk * ZO_B, e = hi * ZO_B < base + MS_ZO_CHUNK ? hi * ZO_B
                                                                          : base + MS_ZO_CHUNK;
      const int a = 0, b = (int)((e < j->n ? e : j->n) - base);   /* elements [base, e) */
      if (j->dtype == MS_FLOAT32) ESTIMATE_RAD(float, f32);
      else ESTIMATE_RAD(double, f64);
    }
    return;
  }
  float u[ZO_B], *uf = NULL;
  for (int64_t blk = lo; blk < hi; blk++) {
    const int64_t base = blk * ZO_B;
    const int a = 0, b = j->n - base < ZO_B ? (int)(j->n - base) : ZO_B;
    if (j->dtype == MS_FLOAT32) ESTIMATE_SPAN(float);
    else ESTIMATE_SPAN(double);
  }
}

static int32_t all_rad(const ms_zo_dir *dirs, int32_t n) {
  for (int32_t i = 0; i < n; i++)
    if (dirs[i].dist != MS_ZO_RADEMACHER) return 0;
  return 1;
}

static int check_dirs(const char *fn, const ms_zo_dir *dirs, const double *coef, int32_t n) {
  if (n < 1) return ms_fail("%s: n is %d, expected at least one direction", fn, (int)n);
  if (!dirs) return ms_fail("%s: argument 'dirs' is NULL, expected %d directions", fn, (int)n);
  if (!coef) return ms_fail("%s: argument 'coef' is NULL, expected %d numbers", fn, (int)n);
  for (int32_t i = 0; i < n; i++) {
    char arg[32];
    snprintf(arg, sizeof arg, "dirs[%d]", (int)i + 1);
    MS_TRY(zo_check_dir(fn, arg, &dirs[i]));
    if (!isfinite(coef[i]))
      return ms_fail("%s: coef[%d] is %g, expected a finite number", fn, (int)i + 1, coef[i]);
  }
  return 0;
}

int ms_zo_estimate(ms_tensor *g, const ms_zo_dir *dirs, const double *coef, int32_t n,
                   int32_t divide, double beta) {
  static const char fn[] = "zo_estimate";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(zo_check_arena(fn, "g", g));
  MS_TRY(check_dirs(fn, dirs, coef, n));
  if (!isfinite(beta)) return ms_fail("%s: beta is %g, expected a finite number", fn, beta);
  if (divide)
    for (int32_t i = 0; i < n; i++)
      if (dirs[i].dist == MS_ZO_GAUSSIAN)
        return ms_fail("%s: dirs[%d] is %s, but the divide form (1/u) needs |u| bounded away "
                       "from 0: use rademacher or segmented_uniform, or divide = false", fn,
                       (int)i + 1, dist_names[dirs[i].dist]);
  if (g->count == 0) return 0;
  if (ms_device_of(g) == MS_CUDA)
    return ms_cuda_zo_estimate((float *)ms_ptr(g), g->count, dirs, coef, n, divide != 0, beta);
  sum_job j = {dirs, coef, n, divide != 0, g->dtype_id, beta, ms_ptr(g), g->count, NULL, NULL,
               NULL, NULL, NULL, -1, all_rad(dirs, n)};
  int64_t cost = 0;
  for (int32_t i = 0; i < n; i++) cost += zo_cost(dirs[i].dist);
  ms_parallel_for((g->count + ZO_B - 1) / ZO_B, g->count * cost, estimate_share, &j);
  return 0;
}

/* base = w less `from` with the log put back (bs; w itself when neither), then
 * w = base - lr_s (acc + wd_s base) over the slice pieces of the block. */
#define MEZO_SPAN(T, SFX)                                                              \
  do {                                                                                 \
    T accb[ZO_B], *acc = j->rad ? sums.SFX + at : accb;                                \
    T *w = (T *)j->x + base, bsb[ZO_B], *bs = w;                                       \
    if (j->from) {                                                                     \
      const T sf = (T)j->from->scale;                                                  \
      bs = bsb;                                                                        \
      for (int k = 0; k < b; k++) bs[k] = MS_ZO_OFF(w[k], sf, (T)uf[k]);                        \
    } else if (dec.pos < at + b) {                                                     \
      bs = bsb;                                                                        \
      for (int k = 0; k < b; k++) bs[k] = w[k];                                        \
    }                                                                                  \
    ZO_PUT_BACK(T, SFX, dec, bs, at, at + b);                                          \
    if (!j->rad) DIR_SUM(T);                                                           \
    for (int32_t s = ms_slice_at(t, base); s < t->nslices; s++) {                      \
      const ms_slice *sl = &t->slices[s];                                              \
      if (sl->offset >= base + b) break;                                               \
      const int p = sl->offset > base ? (int)(sl->offset - base) : 0;                  \
      const int64_t e64 = sl->offset + sl->count - base;                               \
      const int q = e64 < b ? (int)e64 : b;                                            \
      const T lr = (T)j->lr[sl->group], wd = (T)j->wd[sl->group];                      \
      for (int k = p; k < q; k++) w[k] = MS_ZO_MEZO(bs[k], lr, acc[k], wd);           \
    }                                                                                  \
  } while (0)

/* Chunks [lo, hi) (the log's chunks: its entries are read chunk by chunk). */
ZO_CLONES static void mezo_share(void *ctx, int64_t lo, int64_t hi) {
  const sum_job *j = ctx;
  const ms_slice_table *t = j->table;
  const int wide = j->dtype != MS_FLOAT32;
  const int rad_from = j->from && j->from->dist == MS_ZO_RADEMACHER;
  float u[ZO_B], ufb[ZO_B], ufc[MS_ZO_CHUNK];   /* from's u: a block, or the chunk (rad) */
  chunk_sums sums;
  for (int64_t c = lo; c < hi; c++) {
    const int64_t c0 = c * MS_ZO_CHUNK;
    const int nel = j->n - c0 < MS_ZO_CHUNK ? (int)(j->n - c0) : MS_ZO_CHUNK;
    zo_dec dec;
    zo_dec_start(&dec, j->in, c, wide);
    if (j->rad && !wide) zo_rad_sum_f32(j->dirs, j->coef, j->ndirs, c0, nel, sums.f32);
    if (j->rad && wide) zo_rad_sum_f64(j->dirs, j->coef, j->ndirs, c0, nel, sums.f64);
    if (rad_from) zo_rad_gen(j->from, c0, 0, nel, ufc);
    for (int at = 0; at < nel; at += ZO_B) {
      const int64_t base = c0 + at;
      const int a = 0, b = nel - at < ZO_B ? nel - at : ZO_B;
      const float *uf = rad_from ? ufc + at : ufb;
      if (j->from && !rad_from) zo_gen(j->from, base, 0, b, ufb);
      if (!wide) MEZO_SPAN(float, f32);
      else MEZO_SPAN(double, f64);
    }
  }
}

int ms_zo_mezo_update(ms_tensor *w, const ms_zo_dir *from, const ms_zo_log *in,
                      const ms_zo_dir *dirs, const double *coef, int32_t n,
                      const ms_slice_table *table, const double *lr, const double *wd) {
  static const char fn[] = "zo_mezo_update";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(zo_check_arena(fn, "w", w));
  if (from) MS_TRY(zo_check_dir(fn, "from", from));
  MS_TRY(zo_check_log_in(fn, in, w));
  MS_TRY(check_dirs(fn, dirs, coef, n));
  if (!lr || !wd) return ms_fail("%s: argument '%s' is NULL, expected one number per group", fn,
                                 lr ? "wd" : "lr");
  const int gpu = ms_device_of(w) == MS_CUDA;
  if (table) MS_TRY(ms_check_slice_table(fn, table, w->count, gpu));
  const int32_t ng = table ? table->ngroups : 1;
  for (int32_t g = 0; g < ng; g++)
    if (!isfinite(lr[g]) || !isfinite(wd[g]))
      return ms_fail("%s: group %d has lr %g and wd %g, expected finite numbers", fn, (int)g + 1,
                     lr[g], wd[g]);
  if (w->count == 0) return 0;
  if (from && from->scale == 0) from = NULL;
  if (in && in->count == 0) in = NULL;
  int32_t same = -1;
  for (int32_t i = 0; from && i < n && same < 0; i++)
    if (zo_same_dir(from, &dirs[i])) same = i;
  if (gpu)
    return ms_cuda_zo_mezo((float *)ms_ptr(w), w->count, from, in, dirs, coef, n,
                           table ? table->device : NULL, table ? table->nslices : 1, lr, wd, ng);
  ms_slice one = {0, w->count, 0, MS_KIND_WEIGHT};
  ms_slice_table uniform = {&one, 1, 1, NULL};
  sum_job j = {dirs, coef, n, 0, w->dtype_id, 0, ms_ptr(w), w->count, table ? table : &uniform,
               lr, wd, from, in, same, all_rad(dirs, n)};
  int64_t cost = 2 + (from ? zo_cost(from->dist) : 0);
  for (int32_t i = 0; i < n; i++) cost += i == same ? 0 : zo_cost(dirs[i].dist);
  ms_parallel_for((w->count + MS_ZO_CHUNK - 1) / MS_ZO_CHUNK, w->count * cost, mezo_share, &j);
  return 0;
}
