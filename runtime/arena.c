/* arena.c — operations over a parameter arena and its slice table: the table's check,
 * deterministic reductions (norms, inner products, sums; global and per slice) and
 * per-slice scaling. Optimizers build clipping, SAM's perturbation, ACME's inner
 * products and AutoSGM's per-tensor means on these.
 *
 * Determinism: each slice is cut into chunks of MS_REDUCE_BLOCK elements; a chunk is
 * summed in float64 with 8 interleaved accumulators combined in a fixed order; the
 * chunks of a slice are summed in order, then the slices in order. Threads (or CUDA
 * blocks) only decide who computes which chunk, never the order of the additions. */
#include "internal.h"
#include "optim/drive.h"
#include "optim/common.h"
#include "optim/arena_ops.h"
#include <stdlib.h>

#define OPT_INCLUDE "optim/arena_ops.h"
#include "optim/instances.h"

int ms_check_slice_table(const char *fn, const ms_slice_table *t, int64_t n, int on_gpu) {
  if (t->nslices < 1 || !t->slices)
    return ms_fail("%s: the slice table holds %d slices, expected at least one", fn,
                   (int)t->nslices);
  if (t->ngroups < 1 || t->ngroups > MS_OPTIM_MAX_GROUPS)
    return ms_fail("%s: the slice table has %d groups, expected 1 to %d", fn, (int)t->ngroups,
                   (int)MS_OPTIM_MAX_GROUPS);
  int64_t next = 0;
  for (int32_t s = 0; s < t->nslices; s++) {
    const ms_slice *sl = &t->slices[s];
    if (sl->offset != next || sl->count < 0 || sl->count > n - next)
      return ms_fail("%s: slice %d covers [%lld, +%lld), expected it to start at %lld and "
                     "stay within the arena's %lld elements", fn, (int)s + 1,
                     (long long)sl->offset, (long long)sl->count, (long long)next,
                     (long long)n);
    if (sl->group < 0 || sl->group >= t->ngroups)
      return ms_fail("%s: slice %d is in group %d, expected 0 to %d", fn, (int)s + 1,
                     (int)sl->group, (int)t->ngroups - 1);
    next += sl->count;
  }
  if (next != n)
    return ms_fail("%s: the slices cover %lld elements, expected the arena's %lld", fn,
                   (long long)next, (long long)n);
  if (on_gpu && !t->device)
    return ms_fail("%s: the arena is on the GPU but the slice table has no device copy", fn);
  return 0;
}

/* ---- reductions --------------------------------------------------------------------- */

typedef struct {
  int32_t op;
  int32_t dtype;
  const void *a, *b;
  const int64_t *chunks;  /* [nchunks] (offset, count) */
  double *partial;
} reduce_job;

/* acc[l] += EXPR(k) over the chunk, element k going to accumulator k mod 8 (a fixed
 * order the compiler vectorises: 8 independent sums). */
#define LANES(EXPR)                                                                    \
  do {                                                                                 \
    for (; i < m; i += 8)                                                              \
      for (int l = 0; l < 8; l++) {                                                    \
        const int64_t k = i + l;                                                       \
        acc[l] += (EXPR);                                                              \
      }                                                                                \
    for (; i < cnt; i++) {                                                             \
      const int64_t k = i;                                                             \
      acc[i & 7] += (EXPR);                                                            \
    }                                                                                  \
  } while (0)

#define CHUNK_SUM(T)                                                                   \
  do {                                                                                 \
    const T *x = (const T *)j->a + off, *y = j->b ? (const T *)j->b + off : NULL;      \
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                          \
    int64_t i = 0, m = cnt & ~(int64_t)7;                                              \
    switch (j->op) {                                                                   \
      case MS_ARENA_SUM: LANES(arena_term(MS_ARENA_SUM, x[k], 0)); break;              \
      case MS_ARENA_SUMSQ: LANES(arena_term(MS_ARENA_SUMSQ, x[k], 0)); break;          \
      case MS_ARENA_DOT: LANES(arena_term(MS_ARENA_DOT, x[k], y[k])); break;           \
      case MS_ARENA_SQPROD: LANES(arena_term(MS_ARENA_SQPROD, x[k], y[k])); break;     \
      case MS_ARENA_ABSPROD: LANES(arena_term(MS_ARENA_ABSPROD, x[k], y[k])); break;   \
      case MS_ARENA_NONFINITE: { /* in T (8 floats a vector): 0, or nan */             \
        T z[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                             \
        for (; i < m; i += 8)                                                          \
          for (int l = 0; l < 8; l++) z[l] += x[i + l] * (T)0;                         \
        for (; i < cnt; i++) z[i & 7] += x[i] * (T)0;                                  \
        for (int l = 0; l < 8; l++) acc[l] = z[l];                                     \
        break;                                                                         \
      }                                                                                \
      default: /* MS_ARENA_ABSMAX, scalar; a nan wins */                               \
        for (; i < cnt; i++) {                                                         \
          double v = fabs((double)x[i]);                                               \
          if (v > acc[0] || v != v) acc[0] = acc[0] != acc[0] ? acc[0] : v;            \
        }                                                                              \
        break;                                                                         \
    }                                                                                  \
    r = j->op == MS_ARENA_ABSMAX                                                       \
            ? acc[0]                                                                   \
            : ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])); \
  } while (0)

/* MS_CLONES (internal.h): each accumulator is its own sequential sum. */

MS_CLONES static void reduce_share(void *ctx, int64_t lo, int64_t hi) {
  const reduce_job *j = ctx;
  for (int64_t c = lo; c < hi; c++) {
    int64_t off = j->chunks[2 * c], cnt = j->chunks[2 * c + 1];
    double r;
    if (j->dtype == MS_FLOAT32) CHUNK_SUM(float);
    else CHUNK_SUM(double);
    j->partial[c] = r;
  }
}

static double combine(int32_t op, double acc, double v) {
  if (op != MS_ARENA_ABSMAX) return acc + v;
  return v > acc || v != v || acc != acc ? (acc != acc ? acc : v) : acc;   /* a nan wins */
}

/* The chunk list and the partial sums, kept per thread between calls and grown when a
 * larger arena comes: the non-finite check runs every step, without allocating. */
static _Thread_local int64_t *g_chunks;
static _Thread_local double *g_partial;
static _Thread_local int64_t g_capacity;

static int reserve(int64_t nchunks, int64_t **chunks, double **partial) {
  if (nchunks < 1) nchunks = 1;
  if (nchunks > g_capacity) {
    int64_t *c = realloc(g_chunks, sizeof(int64_t) * 2 * (size_t)nchunks);
    if (!c) return -1;
    g_chunks = c;
    double *p = realloc(g_partial, sizeof(double) * (size_t)nchunks);
    if (!p) return -1;
    g_partial = p, g_capacity = nchunks;
  }
  *chunks = g_chunks, *partial = g_partial;
  return 0;
}

int ms_arena_reduce(int32_t op, const ms_tensor *a, const ms_tensor *b,
                    const ms_slice_table *table, double *out) {
  static const char fn[] = "arena_reduce";
  MS_CHECK_INTERRUPT(fn);
  if (op < MS_ARENA_SUM || op > MS_ARENA_ABSPROD)
    return ms_fail("%s: op is %d, expected one of the MS_ARENA_* values", fn, (int)op);
  if (!out) return ms_fail("%s: argument 'out' is NULL", fn);
  MS_TRY(ms_check_float(fn, "a", a));
  if (!ms_tensor_is_contiguous(a))
    return ms_fail("%s: argument 'a' is not contiguous, expected a flat arena", fn);
  if (op == MS_ARENA_DOT || op == MS_ARENA_SQPROD || op == MS_ARENA_ABSPROD) {
    MS_TRY(ms_check_same(fn, "b", b, "a", a));
    MS_TRY(ms_check_shape(fn, "b", b, a->ndim, a->sizes));
    if (!ms_tensor_is_contiguous(b))
      return ms_fail("%s: argument 'b' is not contiguous, expected a flat arena", fn);
  } else {
    b = NULL;
  }
  int64_t n = a->count;
  int gpu = ms_device_of(a) == MS_CUDA;
  ms_slice one = {0, n, 0, MS_KIND_WEIGHT};
  ms_slice_table uniform = {&one, 1, 1, NULL};
  if (table) MS_TRY(ms_check_slice_table(fn, table, n, 0));
  const ms_slice_table *t = table ? table : &uniform;
  /* the chunks: every slice cut into blocks of MS_REDUCE_BLOCK elements */
  int64_t nchunks = 0;
  for (int32_t s = 0; s < t->nslices; s++)
    nchunks += (t->slices[s].count + MS_REDUCE_BLOCK - 1) / MS_REDUCE_BLOCK;
  int64_t *chunks;
  double *partial;
  if (reserve(nchunks, &chunks, &partial) != 0)
    return ms_fail("%s: out of memory for %lld partial sums", fn, (long long)nchunks);
  int64_t c = 0;
  for (int32_t s = 0; s < t->nslices; s++)
    for (int64_t o = 0; o < t->slices[s].count; o += MS_REDUCE_BLOCK, c++) {
      chunks[2 * c] = t->slices[s].offset + o;
      int64_t left = t->slices[s].count - o;
      chunks[2 * c + 1] = left < MS_REDUCE_BLOCK ? left : MS_REDUCE_BLOCK;
    }
  int rc = 0;
  if (gpu) {
    rc = ms_cuda_arena_reduce(op, (const float *)ms_ptr(a), b ? (const float *)ms_ptr(b) : NULL,
                              chunks, nchunks, partial);
  } else {
    reduce_job j = {op, a->dtype_id, ms_ptr(a), b ? ms_ptr(b) : NULL, chunks, partial};
    ms_parallel_for(nchunks, n * (b ? 2 : 1), reduce_share, &j);
  }
  if (rc == 0) {
    double total = 0;
    c = 0;
    for (int32_t s = 0; s < t->nslices; s++) {
      double acc = 0;
      for (int64_t o = 0; o < t->slices[s].count; o += MS_REDUCE_BLOCK) acc = combine(op, acc, partial[c++]);
      if (table) out[1 + s] = acc;
      total = combine(op, total, acc);
    }
    out[0] = total;
  }
  return rc;
}

/* ---- per-slice axpby, the SAM perturbation and the arena swap ---------------------------------------- */

typedef struct {
  const double *a, *b;          /* per slice */
  const ms_perturb_slice *per;  /* per slice (perturb) */
  int32_t dtype;
  void *y;                      /* axpby: y; perturb: out */
  const void *x, *g;            /* axpby: x; perturb: w and g */
} arena_job;

/* y[lo, hi) = a y + b x: a piece of slice s, in the arena's dtype. */
#define AXPBY_SPAN(T, SFX)                                                             \
  do {                                                                                 \
    T *y = j->y, a = (T)j->a[s], b = j->x ? (T)j->b[s] : 0;                            \
    const T *x = j->x;                                                                 \
    if (x)                                                                             \
      for (int64_t i = lo; i < hi; i++) y[i] = arena_axpby_##SFX(y[i], a, x[i], b);    \
    else                                                                               \
      for (int64_t i = lo; i < hi; i++) y[i] = arena_axpby_##SFX(y[i], a, 0, 0);       \
  } while (0)

MS_CLONES static void axpby_span(const void *jv, const void *k, int32_t s, int64_t lo,
                                    int64_t hi) {
  const arena_job *j = jv;
  (void)k;
  if (j->dtype == MS_FLOAT32) AXPBY_SPAN(float, f32);
  else AXPBY_SPAN(double, f64);
}

/* The arena's dtype and device, contiguous; other (when given) the same size and kind. */
static int check_arena(const char *fn, const char *name, const ms_tensor *t,
                       const char *other_name, const ms_tensor *other) {
  MS_TRY(ms_check_float(fn, name, t));
  if (!ms_tensor_is_contiguous(t))
    return ms_fail("%s: argument '%s' is not contiguous, expected a flat arena", fn, name);
  if (other) {
    MS_TRY(ms_check_same(fn, name, t, other_name, other));
    MS_TRY(ms_check_shape(fn, name, t, other->ndim, other->sizes));
  }
  return 0;
}

int ms_arena_axpby(ms_tensor *y, const double *a, const ms_tensor *x, const double *b,
                   const ms_slice_table *table) {
  static const char fn[] = "arena_axpby";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(check_arena(fn, "y", y, NULL, NULL));
  if (x) MS_TRY(check_arena(fn, "x", x, "y", y));
  if (!a) return ms_fail("%s: argument 'a' is NULL", fn);
  if (x && !b) return ms_fail("%s: argument 'b' is NULL", fn);
  int gpu = ms_device_of(y) == MS_CUDA;
  if (table) MS_TRY(ms_check_slice_table(fn, table, y->count, gpu));
  int32_t ns = table ? table->nslices : 1;
  for (int32_t s = 0; s < ns; s++)
    if (!isfinite(a[s]) || (x && !isfinite(b[s])))
      return ms_fail("%s: the coefficients of slice %d are (%g, %g), expected finite numbers",
                     fn, (int)s + 1, a[s], x ? b[s] : 0.0);
  if (y->count == 0) return 0;
  if (gpu)
    return ms_cuda_arena_axpby((float *)ms_ptr(y), x ? (const float *)ms_ptr(x) : NULL, y->count,
                               table ? table->device : NULL, ns, a, x ? b : NULL);
  ms_slice one = {0, y->count, 0, MS_KIND_WEIGHT};
  ms_slice_table uniform = {&one, 1, 1, NULL};
  arena_job j = {a, b, NULL, y->dtype_id, ms_ptr(y), x ? ms_ptr(x) : NULL, NULL};
  ms_drive_slices(y->count, x ? 3 : 2, table ? table : &uniform, NULL, 0, axpby_span, &j);
  return 0;
}

int ms_arena_scale(ms_tensor *a, const ms_slice_table *table, const double *scale) {
  if (!table) return ms_fail("arena_scale: argument 'table' is NULL");
  return ms_arena_axpby(a, scale, NULL, NULL, table);
}

#define PERTURB_SPAN(T, SFX)                                                           \
  do {                                                                                 \
    const T *w = j->x, *g = j->g, scale = (T)j->per[s].scale, eta = (T)j->per[s].eta;  \
    T *out = j->y;                                                                     \
    const int32_t power = j->per[s].power;                                             \
    if (power == 0)                                                                    \
      for (int64_t i = lo; i < hi; i++) out[i] = arena_perturb_##SFX(w[i], g[i], scale, eta, 0); \
    else if (power == 1)                                                               \
      for (int64_t i = lo; i < hi; i++) out[i] = arena_perturb_##SFX(w[i], g[i], scale, eta, 1); \
    else                                                                               \
      for (int64_t i = lo; i < hi; i++) out[i] = arena_perturb_##SFX(w[i], g[i], scale, eta, 2); \
  } while (0)

MS_CLONES static void perturb_span(const void *jv, const void *k, int32_t s, int64_t lo,
                                      int64_t hi) {
  const arena_job *j = jv;
  (void)k;
  if (j->dtype == MS_FLOAT32) PERTURB_SPAN(float, f32);
  else PERTURB_SPAN(double, f64);
}

int ms_arena_perturb(const ms_tensor *w, const ms_tensor *g, ms_tensor *out,
                     const ms_slice_table *table, const ms_perturb_slice *per) {
  static const char fn[] = "arena_perturb";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(check_arena(fn, "w", w, NULL, NULL));
  MS_TRY(check_arena(fn, "g", g, "w", w));
  MS_TRY(check_arena(fn, "out", out, "w", w));
  if (!per) return ms_fail("%s: argument 'per' is NULL", fn);
  int gpu = ms_device_of(w) == MS_CUDA;
  if (table) MS_TRY(ms_check_slice_table(fn, table, w->count, gpu));
  int32_t ns = table ? table->nslices : 1;
  for (int32_t s = 0; s < ns; s++)
    if (!isfinite(per[s].scale) || !(per[s].eta >= 0 && per[s].eta < INFINITY) ||
        per[s].power < 0 || per[s].power > 2)
      return ms_fail("%s: slice %d has scale %g, eta %g, power %d; expected finite, eta >= 0, "
                     "power 0, 1 or 2", fn, (int)s + 1, per[s].scale, per[s].eta,
                     (int)per[s].power);
  if (w->count == 0) return 0;
  if (gpu)
    return ms_cuda_arena_perturb((const float *)ms_ptr(w), (const float *)ms_ptr(g),
                                 (float *)ms_ptr(out), w->count, table ? table->device : NULL,
                                 ns, per);
  ms_slice one = {0, w->count, 0, MS_KIND_WEIGHT};
  ms_slice_table uniform = {&one, 1, 1, NULL};
  arena_job j = {NULL, NULL, per, w->dtype_id, ms_ptr(out), ms_ptr(w), ms_ptr(g)};
  ms_drive_slices(w->count, 3, table ? table : &uniform, NULL, 0, perturb_span, &j);
  return 0;
}

int ms_arena_swap(ms_tensor *a, ms_tensor *b) {
  static const char fn[] = "arena_swap";
  MS_TRY(check_arena(fn, "a", a, NULL, NULL));
  MS_TRY(check_arena(fn, "b", b, "a", a));
  const int64_t bytes = a->count * (int64_t)ms_dtype_size(a->dtype_id);
  if (a->offset != 0 || b->offset != 0 || a->storage->nbytes != bytes ||
      b->storage->nbytes != bytes)
    return ms_fail("%s: both tensors must be the whole of their storage (a flat arena and a "
                   "copy of it), got views", fn);
  if (a->storage == b->storage) return ms_fail("%s: 'a' and 'b' share their storage", fn);
  return ms_storage_trade(a->storage, b->storage);
}

int ms_arena_untrade(const ms_tensor *a) {
  MS_TRY(check_arena("arena_untrade", "a", a, NULL, NULL));
  return ms_storage_untrade(a->storage);
}
