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
#include <stdlib.h>

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
      case MS_ARENA_SUM: LANES((double)x[k]); break;                                   \
      case MS_ARENA_SUMSQ: LANES((double)x[k] * x[k]); break;                          \
      case MS_ARENA_DOT: LANES((double)x[k] * y[k]); break;                            \
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

/* Compiled for any x86-64 and for x86-64-v3 (AVX2: 4 doubles, 8 floats a lane); the loader
 * picks one. The same bits either way: each accumulator is its own sequential sum. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ARENA_CLONES __attribute__((target_clones("default", "arch=x86-64-v3")))
#else
#define ARENA_CLONES
#endif

ARENA_CLONES static void reduce_share(void *ctx, int64_t lo, int64_t hi) {
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
  if (op < MS_ARENA_SUM || op > MS_ARENA_NONFINITE)
    return ms_fail("%s: op is %d, expected one of the MS_ARENA_* values", fn, (int)op);
  if (!out) return ms_fail("%s: argument 'out' is NULL", fn);
  MS_TRY(ms_check_float(fn, "a", a));
  if (!ms_tensor_is_contiguous(a))
    return ms_fail("%s: argument 'a' is not contiguous, expected a flat arena", fn);
  if (op == MS_ARENA_DOT) {
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

/* ---- per-slice scaling -------------------------------------------------------------- */

typedef struct {
  const double *scale;
  int32_t dtype;
  void *a;
} scale_job;

/* a[lo, hi) *= scale[s]: a piece of slice s. */
static void scale_span(const void *jv, const void *k, int32_t s, int64_t lo, int64_t hi) {
  const scale_job *j = jv;
  (void)k;
  if (j->dtype == MS_FLOAT32) {
    float *x = j->a, f = (float)j->scale[s];
    for (int64_t i = lo; i < hi; i++) x[i] *= f;
  } else {
    double *x = j->a, d = j->scale[s];
    for (int64_t i = lo; i < hi; i++) x[i] *= d;
  }
}

int ms_arena_scale(ms_tensor *a, const ms_slice_table *table, const double *scale) {
  static const char fn[] = "arena_scale";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_float(fn, "a", a));
  if (!ms_tensor_is_contiguous(a))
    return ms_fail("%s: argument 'a' is not contiguous, expected a flat arena", fn);
  if (!table) return ms_fail("%s: argument 'table' is NULL", fn);
  if (!scale) return ms_fail("%s: argument 'scale' is NULL", fn);
  int gpu = ms_device_of(a) == MS_CUDA;
  MS_TRY(ms_check_slice_table(fn, table, a->count, gpu));
  for (int32_t s = 0; s < table->nslices; s++)
    if (!isfinite(scale[s]))
      return ms_fail("%s: scale[%d] is %g, expected a finite number", fn, (int)s + 1, scale[s]);
  if (a->count == 0) return 0;
  if (gpu)
    return ms_cuda_arena_scale((float *)ms_ptr(a), a->count, table->device, table->nslices,
                               scale);
  scale_job j = {scale, a->dtype_id, ms_ptr(a)};
  ms_drive_slices(a->count, 2, table, NULL, 0, scale_span, &j);
  return 0;
}
