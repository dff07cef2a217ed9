/* nn.c — softmax over the last dim, for float and double (CPU gradient checks run in
 * double); kernels/nn.cu holds the CUDA twin. Convolution lowering is in conv.c,
 * pooling in pool.c. */
#include "internal.h"
#include "ce_rule.h"
#include <math.h>
#include <string.h>

/* ---- softmax ---------------------------------------------------------------------- */
/* Row r of [rows, classes]: subtract the max, exponentiate, normalise (or take logs). */
#define SOFTMAX_ROWS(T)                                                           \
  static void softmax_rows_##T(void *ctx, int64_t lo, int64_t hi) {               \
    const softmax_job *j = ctx;                                                   \
    for (int64_t r = lo; r < hi; r++) {                                           \
      const T *x = (const T *)j->x + r * j->classes;                              \
      T *y = (T *)j->y + r * j->classes;                                          \
      T mx = x[0];                                                                \
      for (int64_t c = 1; c < j->classes; c++) mx = x[c] > mx ? x[c] : mx;        \
      double sum = 0;                                                             \
      for (int64_t c = 0; c < j->classes; c++) sum += exp((double)(x[c] - mx));   \
      if (j->log_) {                                                              \
        T lse = (T)log(sum) + mx;                                                 \
        for (int64_t c = 0; c < j->classes; c++) y[c] = x[c] - lse;               \
      } else {                                                                    \
        for (int64_t c = 0; c < j->classes; c++)                                  \
          y[c] = (T)(exp((double)(x[c] - mx)) / sum);                             \
      }                                                                           \
    }                                                                             \
  }

typedef struct {
  const void *x;
  void *y;
  int64_t classes;
  int log_;
} softmax_job;
/* defines softmax_rows_float, softmax_rows_double */
SOFTMAX_ROWS(float)
SOFTMAX_ROWS(double)

int ms_softmax(ms_tensor *out, const ms_tensor *x, int32_t log_) {
  const char *fn = log_ ? "log_softmax" : "softmax";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_float_pair(fn, "out", out, "self", x));
  MS_TRY(ms_check_shape(fn, "out", out, x->ndim, x->sizes));
  if (x->ndim < 1) return ms_fail("%s: argument 'self' is a scalar, expected at least 1 dim", fn);
  int64_t classes = x->sizes[x->ndim - 1];
  if (x->count == 0) return 0;
  int64_t rows = x->count / classes;
  if (ms_device_of(x) == MS_CUDA) return ms_cuda_softmax(ms_ptr(out), ms_ptr(x), rows, classes, log_);
  softmax_job job = {ms_ptr(x), ms_ptr(out), classes, log_};
  ms_parallel_for(rows, x->count * 4,
                  x->dtype_id == MS_FLOAT32 ? softmax_rows_float : softmax_rows_double, &job);
  return 0;
}

/* ---- cross-entropy, the plain case (no class weights, nothing ignored) ----------------- */
/* exp(x) for x <= 0 in float (Cephes' expf: Cody-Waite reduction, degree-5 polynomial;
 * within 1.4 ulp of exp on [-87, 0]); x < -87 gives 0 (exp(-87) = 1.6e-38: the results
 * below it, normal down to -87.34 and subnormal after, are flushed),
 * NaN stays NaN. Selects are integer masks on the bits and n is read from the bits of
 * x log2(e) + 1.5 * 2^23, so that a loop over a row vectorises (no branch, no float
 * compare, which GCC will not if-convert under -ftrapping-math). */
static inline float expf_nonpos(float x) {
  uint32_t b;
  memcpy(&b, &x, sizeof b);
  uint32_t small = -(uint32_t)(b > 0xC2AE0000u);              /* x < -87, -inf, -NaN */
  uint32_t nan = -(uint32_t)((b & 0x7FFFFFFFu) > 0x7F800000u); /* x is NaN */
  uint32_t cb = (b & ~small) | (0xC2AE0000u & small);          /* x clamped to -87 */
  float xc;
  memcpy(&xc, &cb, sizeof xc);
  float z = xc * 1.44269504088896341f + 12582912.0f;
  float n = z - 12582912.0f;
  uint32_t u;
  memcpy(&u, &z, sizeof u);
  u = (u - 0x4B400000u + 127u) << 23;
  float scale;
  memcpy(&scale, &u, sizeof scale);
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float q = 1.9875691500e-4f;
  q = q * r + 1.3981999507e-3f;
  q = q * r + 8.3334519073e-3f;
  q = q * r + 4.1665795894e-2f;
  q = q * r + 1.6666665459e-1f;
  q = q * r + 5.0000001201e-1f;
  float y = (q * (r * r) + r + 1.0f) * scale;
  uint32_t yb;
  memcpy(&yb, &y, sizeof yb);
  yb = (yb & ~(small | nan)) | (b & nan);
  memcpy(&y, &yb, sizeof y);
  return y;
}

/* Forward, row r of x [rows, classes] with target t (0-based, checked): the max m, the
 * exponentials e_j = exp(x_j - m) (float: expf_nonpos; double: exp), their float64 sum S,
 * p = softmax(x) = e / S stored for the backward, lse = m + log S and
 *   loss_r = -(1 - e) (x_t - lse) - e/C (sum_j x_j - C lse)     (float64, rounded once).
 * Backward: g[r, j] = ((p[r, j] - e/C) - (1 - e) [j = t]) * (scale * row_scale[r]),
 * rounded once: no exponential, one pass over p (the rules: ce_rule.h). */

typedef struct {
  const void *x;
  void *prob, *losses, *g;
  const void *row_scale;      /* [rows] of T, or NULL */
  const int64_t *target;
  int64_t classes, base;
  double e, scale;
} ce_job;

/* The max and the float64 sum of a row in 8 interleaved lanes (a fixed order, so that the
 * loops vectorise and give the same bits in every clone and for any thread count). */
#define ROW_REDUCE(T)                                                                    \
  static inline T row_max_##T(const T *x, int64_t n) {                                   \
    T m[8];                                                                              \
    for (int k = 0; k < 8; k++) m[k] = x[0];                                             \
    int64_t c = 0;                                                                       \
    for (; c + 8 <= n; c += 8)                                                           \
      for (int k = 0; k < 8; k++) m[k] = x[c + k] > m[k] ? x[c + k] : m[k];              \
    T mx = m[0];                                                                         \
    for (int k = 1; k < 8; k++) mx = m[k] > mx ? m[k] : mx;                              \
    for (; c < n; c++) mx = x[c] > mx ? x[c] : mx;                                       \
    return mx;                                                                           \
  }                                                                                      \
  static inline double row_sum_##T(const T *x, int64_t n) {                              \
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                              \
    int64_t c = 0;                                                                       \
    for (; c + 8 <= n; c += 8)                                                           \
      for (int k = 0; k < 8; k++) a[k] += x[c + k];                                      \
    double s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));        \
    for (; c < n; c++) s += x[c];                                                        \
    return s;                                                                            \
  }
ROW_REDUCE(float)
ROW_REDUCE(double)

#define CE_ROWS(T, EXP)                                                                  \
  MS_CLONES static void ce_forward_##T(void *ctx, int64_t lo, int64_t hi) {              \
    const ce_job *j = ctx;                                                               \
    const int64_t C = j->classes;                                                        \
    for (int64_t r = lo; r < hi; r++) {                                                  \
      const T *x = (const T *)j->x + r * C;                                              \
      T *p = (T *)j->prob + r * C;                                                       \
      T mx = row_max_##T(x, C);                                                          \
      for (int64_t c = 0; c < C; c++) p[c] = (T)EXP(x[c] - mx);                          \
      double sum = row_sum_##T(p, C);                                                    \
      double inv = 1 / sum;                                                              \
      for (int64_t c = 0; c < C; c++) p[c] = (T)(p[c] * inv);                            \
      double lse = (double)mx + log(sum);                                                \
      double sx = j->e > 0 ? row_sum_##T(x, C) : 0;                                      \
      ((T *)j->losses)[r] =                                                              \
          (T)ms_ce_loss(lse, (double)x[j->target[r] - j->base], sx, j->e, (double)C);    \
    }                                                                                    \
  }                                                                                      \
  MS_CLONES static void ce_backward_##T(void *ctx, int64_t lo, int64_t hi) {             \
    const ce_job *j = ctx;                                                               \
    const int64_t C = j->classes;                                                        \
    const double off = j->e / (double)C, hit = 1 - j->e;                                 \
    for (int64_t r = lo; r < hi; r++) {                                                  \
      const T *p = (const T *)j->prob + r * C;                                           \
      T *g = (T *)j->g + r * C;                                                          \
      double s = j->scale;                                                               \
      if (j->row_scale) s *= (double)((const T *)j->row_scale)[r];                       \
      int64_t t = j->target[r] - j->base;                                                \
      T gt = (T)ms_ce_grad((double)p[t], off, hit, s);  /* before g may overwrite p */   \
      for (int64_t c = 0; c < C; c++) g[c] = (T)ms_ce_grad((double)p[c], off, 0, s);      \
      g[t] = gt;                                                                         \
    }                                                                                    \
  }
/* defines ce_forward_float, ce_backward_float, ce_forward_double, ce_backward_double */
CE_ROWS(float, expf_nonpos)
CE_ROWS(double, exp)

/* Checks x [rows, classes] (float) and target [rows] (int64): contiguous, one device;
 * sets *rows and *classes. */
static int ce_check(const char *fn, const ms_tensor *x, const ms_tensor *target,
                    int64_t *rows, int64_t *classes) {
  MS_TRY(ms_check_float(fn, "self", x));
  MS_TRY(ms_check_dtype(fn, "target", target, MS_INT64));
  if (ms_device_of(target) != ms_device_of(x))
    return ms_fail("%s: argument 'target' is on %s but 'self' is on %s, expected one device",
                   fn, ms_device_name(ms_device_of(target)), ms_device_name(ms_device_of(x)));
  if (x->ndim != 2 || target->count != x->sizes[0] || x->sizes[1] < 1) {
    char a[160], b[160];
    return ms_fail("%s: argument 'self' has shape %s and 'target' %s, expected [rows, classes] "
                   "(classes >= 1) and [rows]", fn, ms_shape_str(a, x->ndim, x->sizes),
                   ms_shape_str(b, target->ndim, target->sizes));
  }
  if (!ms_tensor_is_contiguous(x) || !ms_tensor_is_contiguous(target))
    return ms_fail("%s: argument '%s' is not contiguous, expected a contiguous tensor", fn,
                   ms_tensor_is_contiguous(x) ? "target" : "self");
  *rows = x->sizes[0];
  *classes = x->sizes[1];
  return 0;
}

/* The first row whose target is not a class (0-based), or -1. */
static int64_t ce_first_bad(const int64_t *t, int64_t rows, int64_t base, int64_t classes) {
  for (int64_t r = 0; r < rows; r++)
    if (ms_index_pos(t[r], base, classes) < 0) return r;
  return -1;
}

static int ce_bad_target(const char *fn, int64_t target, int64_t row, int64_t base,
                         int64_t classes) {
  return ms_fail("%s: target %lld in row %lld (0-based) is not a class: expected %lld..%lld",
                 fn, (long long)target, (long long)row, (long long)base,
                 (long long)(base + classes - 1));
}

int ms_cross_entropy(ms_tensor *prob, ms_tensor *losses, const ms_tensor *x,
                     const ms_tensor *target, int64_t base, double smoothing, double *total,
                     int64_t *bad) {
  const char *fn = "cross_entropy";
  MS_CHECK_INTERRUPT(fn);
  int64_t rows, classes;
  MS_TRY(ce_check(fn, x, target, &rows, &classes));
  MS_TRY(ms_check_float_pair(fn, "prob", prob, "self", x));
  MS_TRY(ms_check_shape(fn, "prob", prob, 2, x->sizes));
  MS_TRY(ms_check_float_pair(fn, "losses", losses, "self", x));
  if (losses->count != rows)
    return ms_fail("%s: argument 'losses' has %lld elements, expected %lld (one per row)", fn,
                   (long long)losses->count, (long long)rows);
  if (!(smoothing >= 0 && smoothing <= 1))
    return ms_fail("%s: argument 'smoothing' is %g, expected a number in [0, 1]", fn, smoothing);
  MS_TRY(ms_check_disjoint(fn, "prob", prob, "self", x));
  MS_TRY(ms_check_disjoint(fn, "losses", losses, "self", x));
  MS_TRY(ms_check_disjoint(fn, "losses", losses, "prob", prob));
  if (bad) *bad = -1;
  if (total) *total = 0;
  if (rows == 0) return 0;
  const int64_t *t = (const int64_t *)ms_ptr(target);
  int64_t first;
  if (ms_device_of(x) == MS_CUDA) {
    MS_TRY(ms_cuda_cross_entropy(ms_ptr(prob), ms_ptr(losses), ms_ptr(x), t, rows, classes,
                                 base, smoothing, total, &first));
  } else {
    first = ce_first_bad(t, rows, base, classes);
  }
  if (first >= 0) {
    if (bad) return *bad = first, 0;
    int64_t v;   /* the target, read from where it lives */
    if (ms_device_of(x) == MS_CUDA) MS_TRY(ms_cuda_memcpy(&v, t + first, sizeof v, MS_D2H));
    else v = t[first];
    return ce_bad_target(fn, v, first, base, classes);
  }
  if (ms_device_of(x) == MS_CUDA) return 0;
  ce_job job = {ms_ptr(x), ms_ptr(prob), ms_ptr(losses), NULL, NULL, t, classes, base,
                smoothing, 1};
  int f32 = x->dtype_id == MS_FLOAT32;
  ms_parallel_for(rows, x->count * 8, f32 ? ce_forward_float : ce_forward_double, &job);
  if (total) {  /* in row order: the same sum for any thread count */
    double s = 0;
    if (f32) for (int64_t r = 0; r < rows; r++) s += ((const float *)ms_ptr(losses))[r];
    else for (int64_t r = 0; r < rows; r++) s += ((const double *)ms_ptr(losses))[r];
    *total = s;
  }
  return 0;
}

int ms_cross_entropy_backward(ms_tensor *g, const ms_tensor *prob, const ms_tensor *target,
                              int64_t base, double smoothing, double scale,
                              const ms_tensor *row_scale) {
  const char *fn = "cross_entropy_backward";
  MS_CHECK_INTERRUPT(fn);
  int64_t rows, classes;
  MS_TRY(ce_check(fn, prob, target, &rows, &classes));
  MS_TRY(ms_check_float_pair(fn, "out", g, "prob", prob));
  MS_TRY(ms_check_shape(fn, "out", g, 2, prob->sizes));
  if (row_scale) {
    MS_TRY(ms_check_float_pair(fn, "row_scale", row_scale, "prob", prob));
    if (row_scale->count != rows)
      return ms_fail("%s: argument 'row_scale' has %lld elements, expected %lld (one per row)",
                     fn, (long long)row_scale->count, (long long)rows);
    MS_TRY(ms_check_disjoint(fn, "out", g, "row_scale", row_scale));
  }
  if (!(smoothing >= 0 && smoothing <= 1))
    return ms_fail("%s: argument 'smoothing' is %g, expected a number in [0, 1]", fn, smoothing);
  if (ms_overlap(g, prob, 1))  /* out = prob itself (in place) is fine */
    return ms_fail("%s: argument 'out' partly overlaps 'prob', expected prob itself or a "
                   "separate tensor", fn);
  if (rows == 0) return 0;
  if (ms_device_of(prob) == MS_CUDA)
    return ms_cuda_cross_entropy_backward(ms_ptr(g), ms_ptr(prob),
                                          (const int64_t *)ms_ptr(target), rows, classes, base,
                                          smoothing, scale,
                                          row_scale ? ms_ptr(row_scale) : NULL);
  const int64_t *t = (const int64_t *)ms_ptr(target);
  const int64_t first = ce_first_bad(t, rows, base, classes);
  if (first >= 0) return ce_bad_target(fn, t[first], first, base, classes);
  ce_job job = {NULL, (void *)ms_ptr(prob), NULL, ms_ptr(g),
                row_scale ? ms_ptr(row_scale) : NULL, t, classes, base, smoothing, scale};
  ms_parallel_for(rows, prob->count * 8,
                  prob->dtype_id == MS_FLOAT32 ? ce_backward_float : ce_backward_double, &job);
  return 0;
}
