/* sort.c — sort, topk and cumsum along one dim (CPU only for now).
 *
 * Each op views a contiguous x as [outer, size, inner] and works on the outer * inner
 * lines of `size` elements along the middle dim, independently: the threads share whole
 * lines, so the results are the same bits on any thread count.
 *
 * Order (PyTorch's): NaN is greater than every number (last ascending, first descending);
 * equal values keep their input order (a stable merge sort). topk is the first k of that
 * order. cumsum of a float line adds in float64 in order and rounds each prefix once to
 * the dtype (what PyTorch's CPU kernel does); int64 adds with wrap-around. */
#include "internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared checks ------------------------------------------------------------------- */
static int line_geometry(const ms_tensor *x, int32_t dim, int64_t *outer, int64_t *size,
                         int64_t *inner) {
  *size = x->sizes[dim];
  *outer = 1;
  *inner = 1;
  for (int d = 0; d < dim; d++) *outer *= x->sizes[d];
  for (int d = dim + 1; d < x->ndim; d++) *inner *= x->sizes[d];
  return 0;
}

static int check_cpu(const char *fn, const ms_tensor *x) {
  if (ms_device_of(x) == MS_CUDA)
    return ms_fail("%s: argument 'self' is on cuda, expected a CPU tensor (no CUDA kernel yet; "
                   "move it with :to('cpu'))", fn);
  return 0;
}

/* out: contiguous, dtype, the shape of x with dim's size replaced by len, on the CPU,
 * not sharing memory with x. */
static int check_out(const char *fn, const char *name, const ms_tensor *out, const ms_tensor *x,
                     int32_t dim, int64_t len, int32_t dtype) {
  MS_TRY(ms_check_tensor(fn, name, out));
  MS_TRY(ms_check_dtype(fn, name, out, dtype));
  int64_t shape[MS_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++) shape[d] = d == dim ? len : x->sizes[d];
  MS_TRY(ms_check_shape(fn, name, out, x->ndim, shape));
  if (ms_device_of(out) != MS_CPU)
    return ms_fail("%s: argument '%s' is on %s, expected the CPU", fn, name,
                   ms_device_name(ms_device_of(out)));
  if (!ms_tensor_is_contiguous(out))
    return ms_fail("%s: argument '%s' is not contiguous, expected a contiguous tensor", fn, name);
  return ms_check_no_overlap(fn, out, "self", x);
}

/* ---- sort / topk --------------------------------------------------------------------- */
typedef struct {
  const char *x;       /* contiguous input */
  char *values;        /* [outer, k, inner] of x's dtype */
  int64_t *indices;    /* [outer, k, inner] */
  int32_t dtype;
  int64_t size, inner, k, base;
  int descending;
  int oom;             /* set when a thread could not get its line buffers */
} sort_job;

/* before(a, b): a goes strictly before b. NaN counts as the largest value. */
#define LESS_F(a, b) (!isnan(a) && (isnan(b) || (a) < (b)))
#define LESS_I(a, b) ((a) < (b))

/* One line: vals[0..n) gathered, idx sorted stably by vals (insertion sort on runs of
 * RUN, then bottom-up merges between idx and tmp), then the first k written out. */
enum { RUN = 16 };
#define SORT_LINES(T, LESS)                                                                \
  static void sort_lines_##T(const sort_job *j, int64_t lo, int64_t hi, T *vals,           \
                             int64_t *idx, int64_t *tmp) {                                 \
    const int64_t n = j->size, inner = j->inner, k = j->k;                                 \
    const int desc = j->descending;                                                        \
    const T *x = (const T *)j->x;                                                          \
    T *vout = (T *)j->values;                                                              \
    for (int64_t line = lo; line < hi; line++) {                                           \
      int64_t o = line / inner, i = line % inner;                                          \
      const T *src = x + o * n * inner + i;                                                \
      for (int64_t e = 0; e < n; e++) { vals[e] = src[e * inner]; idx[e] = e; }            \
      for (int64_t r0 = 0; r0 < n; r0 += RUN) {                                            \
        int64_t r1 = r0 + RUN < n ? r0 + RUN : n;                                          \
        for (int64_t a = r0 + 1; a < r1; a++) {                                            \
          int64_t v = idx[a], b = a;                                                       \
          while (b > r0 && (desc ? LESS(vals[idx[b - 1]], vals[v])                         \
                                 : LESS(vals[v], vals[idx[b - 1]]))) {                     \
            idx[b] = idx[b - 1];                                                           \
            b--;                                                                           \
          }                                                                                \
          idx[b] = v;                                                                      \
        }                                                                                  \
      }                                                                                    \
      int64_t *from = idx, *to = tmp;                                                      \
      for (int64_t w = RUN; w < n; w *= 2) {                                               \
        for (int64_t s = 0; s < n; s += 2 * w) {                                           \
          int64_t m = s + w < n ? s + w : n, e2 = s + 2 * w < n ? s + 2 * w : n;           \
          int64_t p = s, q = m, d = s;                                                     \
          while (p < m && q < e2) {                                                        \
            /* take the right one only when it goes strictly before the left one */       \
            int right = desc ? LESS(vals[from[p]], vals[from[q]])                          \
                             : LESS(vals[from[q]], vals[from[p]]);                         \
            to[d++] = right ? from[q++] : from[p++];                                       \
          }                                                                                \
          while (p < m) to[d++] = from[p++];                                               \
          while (q < e2) to[d++] = from[q++];                                              \
        }                                                                                  \
        int64_t *t = from; from = to; to = t;                                              \
      }                                                                                    \
      T *vo = vout + o * k * inner + i;                                                    \
      int64_t *io = j->indices + o * k * inner + i;                                        \
      for (int64_t e = 0; e < k; e++) {                                                    \
        vo[e * inner] = vals[from[e]];                                                     \
        io[e * inner] = from[e] + j->base;                                                 \
      }                                                                                    \
    }                                                                                      \
  }
SORT_LINES(float, LESS_F)
SORT_LINES(double, LESS_F)
SORT_LINES(int64_t, LESS_I)
SORT_LINES(uint8_t, LESS_I)

/* topk with a small k: one pass keeping the best k so far in order (idx[0..m)). An element
 * enters only when it goes strictly before the current k-th, after every kept element it
 * does not go strictly before: equal values stay in input order, so the result is the
 * first k of the stable sort, in O(n) for most inputs (O(n k) at worst, hence k small). */
enum { SELECT_MAX = 32 };
#define SELECT_LINES(T, LESS)                                                              \
  static void select_lines_##T(const sort_job *j, int64_t lo, int64_t hi, int64_t *idx) {  \
    const int64_t n = j->size, inner = j->inner, k = j->k;                                 \
    const int desc = j->descending;                                                        \
    const T *x = (const T *)j->x;                                                          \
    T *vout = (T *)j->values;                                                              \
    for (int64_t line = lo; line < hi; line++) {                                           \
      int64_t o = line / inner, i = line % inner, m = 0;                                   \
      const T *src = x + o * n * inner + i;                                                \
      for (int64_t e = 0; e < n; e++) {                                                    \
        T v = src[e * inner];                                                              \
        if (m == k) {                                                                      \
          T last = src[idx[k - 1] * inner];                                                \
          if (!(desc ? LESS(last, v) : LESS(v, last))) continue;                           \
          m--;                                                                             \
        }                                                                                  \
        int64_t b = m;                                                                     \
        while (b > 0) {                                                                    \
          T w = src[idx[b - 1] * inner];                                                   \
          if (!(desc ? LESS(w, v) : LESS(v, w))) break;                                    \
          idx[b] = idx[b - 1];                                                             \
          b--;                                                                             \
        }                                                                                  \
        idx[b] = e;                                                                        \
        m++;                                                                               \
      }                                                                                    \
      T *vo = vout + o * k * inner + i;                                                    \
      int64_t *io = j->indices + o * k * inner + i;                                        \
      for (int64_t e = 0; e < k; e++) {                                                    \
        vo[e * inner] = src[idx[e] * inner];                                               \
        io[e * inner] = idx[e] + j->base;                                                  \
      }                                                                                    \
    }                                                                                      \
  }
SELECT_LINES(float, LESS_F)
SELECT_LINES(double, LESS_F)
SELECT_LINES(int64_t, LESS_I)
SELECT_LINES(uint8_t, LESS_I)

static void select_share(void *ctx, int64_t lo, int64_t hi) {
  sort_job *j = ctx;
  int64_t idx[SELECT_MAX];
  switch (j->dtype) {
    case MS_FLOAT32: select_lines_float(j, lo, hi, idx); break;
    case MS_FLOAT64: select_lines_double(j, lo, hi, idx); break;
    case MS_INT64: select_lines_int64_t(j, lo, hi, idx); break;
    default: select_lines_uint8_t(j, lo, hi, idx); break;
  }
}

static void sort_share(void *ctx, int64_t lo, int64_t hi) {
  sort_job *j = ctx;
  int es = ms_dtype_size(j->dtype);
  size_t n = (size_t)j->size;
  char *buf = malloc(n * (size_t)es + 2 * n * sizeof(int64_t) + 1);
  if (!buf) { __atomic_store_n(&j->oom, 1, __ATOMIC_RELAXED); return; }
  int64_t *idx = (int64_t *)buf, *tmp = idx + n;
  void *vals = tmp + n;
  switch (j->dtype) {
    case MS_FLOAT32: sort_lines_float(j, lo, hi, vals, idx, tmp); break;
    case MS_FLOAT64: sort_lines_double(j, lo, hi, vals, idx, tmp); break;
    case MS_INT64: sort_lines_int64_t(j, lo, hi, vals, idx, tmp); break;
    default: sort_lines_uint8_t(j, lo, hi, vals, idx, tmp); break;
  }
  free(buf);
}

/* values/indices: x's shape with dim's size k (k = size for a full sort). */
static int sort_k(const char *fn, ms_tensor *values, ms_tensor *indices, const ms_tensor *x,
                  int32_t dim, int64_t k, int32_t descending, int64_t base) {
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_tensor(fn, "self", x));
  MS_TRY(check_cpu(fn, x));
  MS_TRY(ms_check_dim(fn, x, dim));
  int64_t outer, size, inner;
  line_geometry(x, dim, &outer, &size, &inner);
  if (k < 0 || k > size)
    return ms_fail("%s: argument 'k' is %lld, expected 0..%lld (the size of dim %d)", fn,
                   (long long)k, (long long)size, dim + 1);
  MS_TRY(check_out(fn, "values", values, x, dim, k, x->dtype_id));
  MS_TRY(check_out(fn, "indices", indices, x, dim, k, MS_INT64));
  MS_TRY(ms_check_disjoint(fn, "values", values, "indices", indices));
  if (k == 0 || outer * inner == 0) return 0;
  ms_tensor xc;
  MS_TRY(ms_contiguous(&xc, x));
  sort_job job = {ms_ptr(&xc), ms_ptr(values), (int64_t *)ms_ptr(indices), x->dtype_id,
                  size, inner, k, base, descending != 0, 0};
  int64_t logn = 1;
  while (((int64_t)1 << logn) < size) logn++;
  if (k <= SELECT_MAX && k < size)   /* a small topk: one pass, no line buffers */
    ms_parallel_for(outer * inner, x->count, select_share, &job);
  else
    ms_parallel_for(outer * inner, x->count * logn, sort_share, &job);
  ms_tensor_release(&xc);
  if (job.oom)
    return ms_fail("%s: out of memory for the line buffers (%lld elements)", fn, (long long)size);
  return 0;
}

int ms_sort(ms_tensor *values, ms_tensor *indices, const ms_tensor *x, int32_t dim,
            int32_t descending, int64_t base) {
  MS_TRY(ms_check_tensor("sort", "self", x));
  MS_TRY(ms_check_dim("sort", x, dim));
  return sort_k("sort", values, indices, x, dim, x->sizes[dim], descending, base);
}

int ms_topk(ms_tensor *values, ms_tensor *indices, const ms_tensor *x, int32_t dim, int64_t k,
            int32_t largest, int64_t base) {
  return sort_k("topk", values, indices, x, dim, k, largest, base);
}

/* ---- cumsum -------------------------------------------------------------------------- */
typedef struct {
  const char *x;
  char *out;
  int32_t dtype;
  int64_t size, inner;
} cum_job;

#define CUM_LINES(T, ACC)                                                                  \
  static void cum_lines_##T(const cum_job *j, int64_t lo, int64_t hi) {                    \
    const int64_t n = j->size, inner = j->inner;                                           \
    const T *x = (const T *)j->x;                                                          \
    T *out = (T *)j->out;                                                                  \
    for (int64_t line = lo; line < hi; line++) {                                           \
      int64_t o = line / inner, i = line % inner, base = o * n * inner + i;                \
      ACC acc = 0;                                                                         \
      for (int64_t e = 0; e < n; e++) {                                                    \
        acc = acc + (ACC)x[base + e * inner];                                              \
        out[base + e * inner] = (T)acc;                                                    \
      }                                                                                    \
    }                                                                                      \
  }
CUM_LINES(float, double)
CUM_LINES(double, double)
CUM_LINES(int64_t, uint64_t) /* wraps around like PyTorch's, without signed overflow */

static void cum_share(void *ctx, int64_t lo, int64_t hi) {
  const cum_job *j = ctx;
  switch (j->dtype) {
    case MS_FLOAT32: cum_lines_float(j, lo, hi); break;
    case MS_FLOAT64: cum_lines_double(j, lo, hi); break;
    default: cum_lines_int64_t(j, lo, hi); break;
  }
}

int ms_cumsum(ms_tensor *out, const ms_tensor *x, int32_t dim) {
  const char *fn = "cumsum";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_tensor(fn, "self", x));
  MS_TRY(check_cpu(fn, x));
  if (x->dtype_id == MS_UINT8)
    return ms_fail("%s: argument 'self' is uint8, expected float32, float64 or int64", fn);
  MS_TRY(ms_check_dim(fn, x, dim));
  int64_t outer, size, inner;
  line_geometry(x, dim, &outer, &size, &inner);
  MS_TRY(check_out(fn, "out", out, x, dim, size, x->dtype_id));
  if (x->count == 0) return 0;
  ms_tensor xc;
  MS_TRY(ms_contiguous(&xc, x));
  cum_job job = {ms_ptr(&xc), ms_ptr(out), x->dtype_id, size, inner};
  ms_parallel_for(outer * inner, x->count, cum_share, &job);
  ms_tensor_release(&xc);
  return 0;
}
