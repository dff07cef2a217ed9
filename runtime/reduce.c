/* reduce.c — sum, mean, max, min, argmax, argmin, p-norm and variance, over all
 * elements or along one dim. Accumulation is in float64 whatever the input type.
 *
 * Both forms view a contiguous x as [outer, size, inner] and reduce the middle dim
 * ("all" is outer = inner = 1 and splits the span into fixed blocks shared by the
 * threads: the same bits on any thread count). */
#include "internal.h"
#include <math.h>
#include <stdlib.h>

static const char *const reduce_names[MS_REDUCE_COUNT] = {
  "sum", "mean", "max", "min", "argmax", "argmin", "norm", "var"};

/* Partial result over one strided span of a reduction. */
typedef struct {
  double acc;     /* sum, sum of |x|^p, best value, or sum of squared deviations */
  int64_t index;  /* position of the best value within the span (arg ops) */
  int64_t count;
} partial;

#define SPAN_LOOP(T)                                                                     \
  do {                                                                                   \
    const T *x = (const T *)xv;                                                          \
    switch (op) {                                                                        \
      case MS_SUM: case MS_MEAN:                                                         \
        if (stride == 1) for (int64_t i = 0; i < n; i++) acc += x[i];                    \
        else for (int64_t i = 0; i < n; i++) acc += x[i * stride];                       \
        break;                                                                           \
      case MS_VAR:                                                                       \
        for (int64_t i = 0; i < n; i++) { double d = x[i * stride] - mean; acc += d * d; } \
        break;                                                                           \
      case MS_NORM:                                                                      \
        if (p == 2) for (int64_t i = 0; i < n; i++) { double v = x[i * stride]; acc += v * v; } \
        else if (p == 1) for (int64_t i = 0; i < n; i++) acc += fabs((double)x[i * stride]); \
        else if (isinf(p)) for (int64_t i = 0; i < n; i++) {                            \
          double v = fabs((double)x[i * stride]); if (!(v <= acc)) acc = v; }            \
        else if (p == 0) for (int64_t i = 0; i < n; i++) acc += x[i * stride] != 0;      \
        else for (int64_t i = 0; i < n; i++) acc += pow(fabs((double)x[i * stride]), p); \
        break;                                                                           \
      case MS_RMAX: case MS_ARGMAX:                                                      \
        for (int64_t i = 0; i < n; i++) {                                                \
          double v = x[i * stride];                                                      \
          if (acc == acc && !(v <= acc)) { acc = v; best = i; } }                        \
        break;                                                                           \
      default: /* MS_RMIN, MS_ARGMIN */                                                  \
        for (int64_t i = 0; i < n; i++) {                                                \
          double v = x[i * stride];                                                      \
          if (acc == acc && !(v >= acc)) { acc = v; best = i; } }                        \
        break;                                                                           \
    }                                                                                    \
  } while (0)

static partial reduce_span(const void *xv, int32_t dtype, int64_t n, int64_t stride, int op,
                           double p, double mean) {
  double acc = 0;
  int64_t best = 0;
  if (op == MS_RMAX || op == MS_ARGMAX) acc = -INFINITY;
  if (op == MS_RMIN || op == MS_ARGMIN) acc = INFINITY;
  if (dtype == MS_FLOAT32) SPAN_LOOP(float);
  else SPAN_LOOP(double);
  partial r = {acc, best, n};
  return r;
}

/* Combine b (covering later elements) into a. */
static void combine(partial *a, partial b, int op, double p) {
  switch (op) {
    case MS_RMAX: case MS_ARGMAX:
      if (a->acc == a->acc && !(b.acc <= a->acc)) { a->acc = b.acc; a->index = a->count + b.index; }
      break;
    case MS_RMIN: case MS_ARGMIN:
      if (a->acc == a->acc && !(b.acc >= a->acc)) { a->acc = b.acc; a->index = a->count + b.index; }
      break;
    case MS_NORM:
      if (isinf(p)) { if (!(b.acc <= a->acc)) a->acc = b.acc; }
      else a->acc += b.acc;
      break;
    default: a->acc += b.acc;
  }
  a->count += b.count;
}

static double finish(partial r, int op, double p, int64_t n) {
  switch (op) {
    case MS_MEAN: return r.acc / (double)n;
    case MS_ARGMAX: case MS_ARGMIN: return (double)r.index;
    case MS_NORM:
      if (p == 2) return sqrt(r.acc);
      if (p == 1 || p == 0 || isinf(p)) return r.acc;
      return pow(r.acc, 1.0 / p);
    case MS_VAR: return n - p > 0 ? r.acc / ((double)n - p) : NAN;
    default: return r.acc;
  }
}

/* A whole contiguous span of n elements, in blocks of REDUCE_BLOCK whose partials are
 * combined in block order: the same bits on any number of threads (threads take
 * contiguous runs of blocks). */
enum { REDUCE_BLOCK = 1 << 16, REDUCE_STACK = 64 };

typedef struct {
  const char *base;
  int32_t dtype;
  int es, op;
  int64_t n;
  double p, mean;
  partial *parts;
} span_job;

static partial reduce_block(const span_job *j, int64_t b) {
  int64_t lo = b * REDUCE_BLOCK, len = j->n - lo < REDUCE_BLOCK ? j->n - lo : REDUCE_BLOCK;
  return reduce_span(j->base + lo * j->es, j->dtype, len, 1, j->op, j->p, j->mean);
}

static void span_share(void *ctx, int64_t lo, int64_t hi) {
  const span_job *j = ctx;
  for (int64_t b = lo; b < hi; b++) j->parts[b] = reduce_block(j, b);
}

static partial reduce_parallel(const char *base, int32_t dtype, int64_t n, int op, double p,
                               double mean) {
  int64_t nb = (n + REDUCE_BLOCK - 1) / REDUCE_BLOCK;
  if (nb <= 1) return reduce_span(base, dtype, n, 1, op, p, mean);
  partial stack[REDUCE_STACK];
  span_job j = {base, dtype, ms_dtype_size(dtype), op, n, p, mean, NULL};
  if (ms_threads_for(n) > 1)
    j.parts = nb <= REDUCE_STACK ? stack : malloc(sizeof(partial) * (size_t)nb);
  partial r;
  if (j.parts) {   /* partials on the threads, combined here */
    ms_parallel_for(nb, n, span_share, &j);
    r = j.parts[0];
    for (int64_t b = 1; b < nb; b++) combine(&r, j.parts[b], op, p);
    if (j.parts != stack) free(j.parts);
  } else {         /* one thread (or no memory for the partials): the same blocks in turn */
    r = reduce_block(&j, 0);
    for (int64_t b = 1; b < nb; b++) combine(&r, reduce_block(&j, b), op, p);
  }
  return r;
}

static int check_op(const char *fn, int op, const ms_tensor *x) {
  if (op < 0 || op >= MS_REDUCE_COUNT)
    return ms_fail("%s: argument 'op' is %d, expected 0..%d (enum ms_reduce_op)", fn, op,
                   MS_REDUCE_COUNT - 1);
  MS_TRY(ms_check_float(reduce_names[op], "self", x));
  if (x->count == 0 && op != MS_SUM && op != MS_NORM)
    return ms_fail("%s: argument 'self' is empty, expected at least one element",
                   reduce_names[op]);
  return 0;
}

int ms_reduce_all(const ms_tensor *x, int32_t op, double param, double *value) {
  MS_TRY(check_op("reduce_all", op, x));
  const char *fn = reduce_names[op];
  MS_CHECK_INTERRUPT(fn);
  ms_tensor xc;
  MS_TRY(ms_contiguous(&xc, x));
  int rc = 0;
  int64_t n = x->count;
  if (n == 0) {
    *value = 0;
  } else if (ms_device_of(x) == MS_CUDA) {
    rc = ms_cuda_reduce((const float *)ms_ptr(&xc), 1, n, 1, op, param, value, NULL,
                        MS_FLOAT64, 0);
  } else {
    double mean = 0;
    if (op == MS_VAR) mean = reduce_parallel(ms_ptr(&xc), x->dtype_id, n, MS_SUM, 0, 0).acc / n;
    partial r = reduce_parallel(ms_ptr(&xc), x->dtype_id, n, op, param, mean);
    *value = finish(r, op, param, n);
  }
  ms_tensor_release(&xc);
  return rc;
}

/* Outputs [lo, hi) of a reduction along one dim: x is [outer, size, inner]. */
typedef struct {
  const char *x;
  int32_t dtype;
  int64_t size, inner;
  int op;
  double param;
  int64_t base;
  ms_tensor *out;
} dim_job;

static void reduce_dim_share(void *ctx, int64_t lo, int64_t hi) {
  const dim_job *j = ctx;
  int es = ms_dtype_size(j->dtype);
  int arg = j->op == MS_ARGMAX || j->op == MS_ARGMIN;
  for (int64_t k = lo; k < hi; k++) {
    int64_t o = k / j->inner, i = k % j->inner;
    const char *start = j->x + (o * j->size * j->inner + i) * es;
    double mean = 0;
    if (j->op == MS_VAR)
      mean = reduce_span(start, j->dtype, j->size, j->inner, MS_SUM, 0, 0).acc / j->size;
    partial r = reduce_span(start, j->dtype, j->size, j->inner, j->op, j->param, mean);
    double v = finish(r, j->op, j->param, j->size);
    if (arg) ((int64_t *)ms_ptr(j->out))[k] = (int64_t)v + j->base;
    else if (j->out->dtype_id == MS_FLOAT32) ((float *)ms_ptr(j->out))[k] = (float)v;
    else ((double *)ms_ptr(j->out))[k] = v;
  }
}

int ms_reduce_dim(ms_tensor *out, const ms_tensor *x, int32_t dim, int32_t op, double param,
                  int64_t base) {
  MS_TRY(check_op("reduce_dim", op, x));
  const char *fn = reduce_names[op];
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_dim(fn, x, dim));
  int arg = op == MS_ARGMAX || op == MS_ARGMIN;
  int32_t want = arg ? MS_INT64 : x->dtype_id;
  MS_TRY(ms_check_dtype(fn, "out", out, want));
  if (ms_device_of(out) != ms_device_of(x))
    return ms_fail("%s: argument 'out' is on %s but 'self' is on %s, expected one device", fn,
                   ms_device_name(ms_device_of(out)), ms_device_name(ms_device_of(x)));
  int64_t size = x->sizes[dim], outer = 1, inner = 1;
  for (int d = 0; d < dim; d++) outer *= x->sizes[d];
  for (int d = dim + 1; d < x->ndim; d++) inner *= x->sizes[d];
  if (out->count != outer * inner || !ms_tensor_is_contiguous(out))
    return ms_fail("%s: argument 'out' has %lld elements%s, expected a contiguous tensor of "
                   "%lld", fn, (long long)out->count,
                   ms_tensor_is_contiguous(out) ? "" : " (not contiguous)",
                   (long long)(outer * inner));
  MS_TRY(ms_check_no_overlap(fn, out, "self", x));
  if (out->count == 0) return 0;
  if (size == 0 && op != MS_SUM && op != MS_NORM)
    return ms_fail("%s: dimension %d is empty, expected at least one element", fn, dim + 1);
  ms_tensor xc;
  MS_TRY(ms_contiguous(&xc, x));
  int rc = 0;
  if (ms_device_of(x) == MS_CUDA) {
    rc = ms_cuda_reduce((const float *)ms_ptr(&xc), outer, size, inner, op, param, NULL,
                        ms_ptr(out), out->dtype_id, base);
  } else {
    dim_job job = {ms_ptr(&xc), x->dtype_id, size, inner, op, param, base, out};
    ms_parallel_for(outer * inner, outer * inner * size, reduce_dim_share, &job);
  }
  ms_tensor_release(&xc);
  return rc;
}

/* ---- bias gradients: gb[k] += the sum of g over every dim but one ---------------------- */
/* g contiguous, viewed as [outer, size, inner] around that dim; gb has `size` elements.
 * Each sum accumulates in float64 in the order (o, i) and is rounded once before it is
 * added: with inner = 1 (a Linear's g [N, out]) exactly what g:sum(1) then gb:add_()
 * give, in one pass over g and without the temporary. */
typedef struct {
  const char *g;
  char *gb;
  int64_t outer, size, inner;
} bias_job;

enum { BIAS_BLOCK = 256 };  /* columns summed at once, one float64 accumulator each */

/* MS_CLONES (internal.h): vectorised across columns, each column's sum sequential. */

/* bias_cols: inner == 1, a block of columns at a time over the rows in order;
 * bias_planes: inner > 1, one k at a time over its outer contiguous spans. */
#define BIAS_SUMS(T)                                                                   \
  MS_CLONES static void bias_cols_##T(void *ctx, int64_t lo, int64_t hi) {           \
    const bias_job *j = ctx;                                                           \
    const T *g = (const T *)j->g;                                                      \
    T *gb = (T *)j->gb;                                                                \
    double acc[BIAS_BLOCK];                                                            \
    for (int64_t c0 = lo; c0 < hi; c0 += BIAS_BLOCK) {                                 \
      int64_t w = hi - c0 < BIAS_BLOCK ? hi - c0 : BIAS_BLOCK;                         \
      for (int64_t k = 0; k < w; k++) acc[k] = 0;                                      \
      for (int64_t i = 0; i < j->outer; i++) {                                         \
        const T *row = g + i * j->size + c0;                                           \
        for (int64_t k = 0; k < w; k++) acc[k] += row[k];                              \
      }                                                                                \
      for (int64_t k = 0; k < w; k++) gb[c0 + k] = gb[c0 + k] + (T)acc[k];             \
    }                                                                                  \
  }                                                                                    \
  MS_CLONES static void bias_planes_##T(void *ctx, int64_t lo, int64_t hi) {         \
    const bias_job *j = ctx;                                                           \
    const T *g = (const T *)j->g;                                                      \
    T *gb = (T *)j->gb;                                                                \
    for (int64_t k = lo; k < hi; k++) {                                                \
      double acc = 0;                                                                  \
      for (int64_t o = 0; o < j->outer; o++) {                                         \
        const T *p = g + (o * j->size + k) * j->inner;                                 \
        for (int64_t i = 0; i < j->inner; i++) acc += p[i];                            \
      }                                                                                \
      gb[k] = gb[k] + (T)acc;                                                          \
    }                                                                                  \
  }
/* defines bias_cols_float, bias_planes_float, bias_cols_double, bias_planes_double */
BIAS_SUMS(float)
BIAS_SUMS(double)

int ms_bias_grad(ms_tensor *gb, const ms_tensor *g, int32_t dim) {
  const char *fn = "bias_grad";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_float(fn, "g", g));
  MS_TRY(ms_check_same(fn, "out", gb, "g", g));
  MS_TRY(ms_check_dim(fn, g, dim));
  int64_t size = g->sizes[dim], outer = 1, inner = 1;
  for (int d = 0; d < dim; d++) outer *= g->sizes[d];
  for (int d = dim + 1; d < g->ndim; d++) inner *= g->sizes[d];
  if (gb->count != size || !ms_tensor_is_contiguous(gb))
    return ms_fail("%s: argument 'out' has %lld elements%s, expected a contiguous tensor of "
                   "%lld (the size of dim %d of 'g')", fn, (long long)gb->count,
                   ms_tensor_is_contiguous(gb) ? "" : " (not contiguous)", (long long)size,
                   dim + 1);
  MS_TRY(ms_check_no_overlap(fn, gb, "g", g));
  if (size == 0 || g->count == 0) return 0;
  ms_tensor gc;
  MS_TRY(ms_contiguous(&gc, g));
  int rc = 0;
  if (ms_device_of(g) == MS_CUDA) {
    rc = ms_cuda_bias_grad(ms_ptr(gb), ms_ptr(&gc), outer, size, inner);
  } else {
    bias_job job = {ms_ptr(&gc), ms_ptr(gb), outer, size, inner};
    int f32 = g->dtype_id == MS_FLOAT32;
    ms_range_fn f = inner == 1 ? (f32 ? bias_cols_float : bias_cols_double)
                               : (f32 ? bias_planes_float : bias_planes_double);
    ms_parallel_for(size, g->count, f, &job);
  }
  ms_tensor_release(&gc);
  return rc;
}
