/* nn.c — the kernels layers need beyond elementwise ops and matmul: softmax,
 * convolution lowering (im2col / col2im) and max pooling. Each loop exists for float
 * and double (CPU gradient checks run in double); kernels/nn.cu holds the CUDA twins. */
#include "internal.h"
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
SOFTMAX_ROWS(float)
SOFTMAX_ROWS(double)

static int check_nn_pair(const char *fn, const char *out_name, const ms_tensor *out,
                         const char *in_name, const ms_tensor *in) {
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_float(fn, in_name, in));
  MS_TRY(ms_check_same(fn, out_name, out, in_name, in));
  if (!ms_tensor_is_contiguous(in) || !ms_tensor_is_contiguous(out))
    return ms_fail("%s: arguments must be contiguous ('%s' is%s, '%s' is%s)", fn, in_name,
                   ms_tensor_is_contiguous(in) ? "" : " not", out_name,
                   ms_tensor_is_contiguous(out) ? "" : " not");
  return 0;
}

int ms_softmax(ms_tensor *out, const ms_tensor *x, int32_t log_) {
  const char *fn = log_ ? "log_softmax" : "softmax";
  MS_TRY(check_nn_pair(fn, "out", out, "self", x));
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

/* ---- im2col / col2im ----------------------------------------------------------------- */
typedef struct {
  int64_t n, c, h, w;      /* input [n, c, h, w] */
  int64_t kh, kw, sh, sw, ph, pw;
  int64_t oh, ow;          /* output spatial size */
} conv_geom;

static int conv_geometry(const char *fn, const ms_tensor *x, int32_t kh, int32_t kw,
                         int32_t sh, int32_t sw, int32_t ph, int32_t pw, conv_geom *g) {
  if (x->ndim != 4)
    return ms_fail("%s: input has %d dims, expected 4 [N, C, H, W]", fn, x->ndim);
  if (kh < 1 || kw < 1 || sh < 1 || sw < 1 || ph < 0 || pw < 0)
    return ms_fail("%s: kernel %dx%d, stride %dx%d, padding %dx%d: expected kernel and stride "
                   ">= 1, padding >= 0", fn, kh, kw, sh, sw, ph, pw);
  g->n = x->sizes[0], g->c = x->sizes[1], g->h = x->sizes[2], g->w = x->sizes[3];
  g->kh = kh, g->kw = kw, g->sh = sh, g->sw = sw, g->ph = ph, g->pw = pw;
  if (g->h + 2 * ph < kh || g->w + 2 * pw < kw)
    return ms_fail("%s: kernel %dx%d is larger than the padded input %lldx%lld", fn, kh, kw,
                   (long long)(g->h + 2 * ph), (long long)(g->w + 2 * pw));
  g->oh = (g->h + 2 * ph - kh) / sh + 1;
  g->ow = (g->w + 2 * pw - kw) / sw + 1;
  return 0;
}

/* The output columns ox in [*lo, *hi) whose input column ox*sw - pw + j is inside
 * [0, w): outside them a row of cols is padding. */
static void valid_range(const conv_geom *g, int64_t j, int64_t *lo, int64_t *hi) {
  int64_t a = g->pw - j;                 /* need ox*sw >= a */
  *lo = a <= 0 ? 0 : (a + g->sw - 1) / g->sw;
  int64_t b = g->w + g->pw - j;          /* need ox*sw < b */
  *hi = b <= 0 ? 0 : (b + g->sw - 1) / g->sw;
  if (*hi > g->ow) *hi = g->ow;
  if (*lo > *hi) *lo = *hi;
}

/* Item (k, n): the L = OH*OW columns of image n in row k of cols. Inner runs over ox
 * are contiguous copies when the stride is 1. */
#define IM2COL_ITEMS(T)                                                                \
  static void im2col_items_##T(void *ctx, int64_t lo, int64_t hi) {                    \
    const conv_job *job = ctx;                                                         \
    const conv_geom *g = &job->g;                                                      \
    const int64_t L = g->oh * g->ow;                                                   \
    const T pad = (T)job->pad_value;                                                   \
    for (int64_t item = lo; item < hi; item++) {                                       \
      int64_t k = item / g->n, n = item % g->n;                                        \
      int64_t c = k / (g->kh * g->kw), i = (k / g->kw) % g->kh, j = k % g->kw;         \
      const T *x = (const T *)job->x + (n * g->c + c) * g->h * g->w;                   \
      T *col = (T *)job->cols + k * g->n * L + n * L;                                  \
      int64_t ox0, ox1;                                                                \
      valid_range(g, j, &ox0, &ox1);                                                   \
      for (int64_t oy = 0; oy < g->oh; oy++) {                                         \
        T *dst = col + oy * g->ow;                                                     \
        int64_t y = oy * g->sh - g->ph + i;                                            \
        if (y < 0 || y >= g->h) {                                                      \
          for (int64_t ox = 0; ox < g->ow; ox++) dst[ox] = pad;                        \
          continue;                                                                    \
        }                                                                              \
        const T *src = x + y * g->w - g->pw + j;                                       \
        for (int64_t ox = 0; ox < ox0; ox++) dst[ox] = pad;                            \
        if (g->sw == 1)                                                                \
          for (int64_t ox = ox0; ox < ox1; ox++) dst[ox] = src[ox];                    \
        else                                                                           \
          for (int64_t ox = ox0; ox < ox1; ox++) dst[ox] = src[ox * g->sw];            \
        for (int64_t ox = ox1; ox < g->ow; ox++) dst[ox] = pad;                        \
      }                                                                                \
    }                                                                                  \
  }

/* One input plane (n, c) per item: gather every cols entry that reads it. Planes are
 * disjoint, so threads never write the same element. */
#define COL2IM_PLANES(T)                                                               \
  static void col2im_planes_##T(void *ctx, int64_t lo, int64_t hi) {                   \
    const conv_job *job = ctx;                                                         \
    const conv_geom *g = &job->g;                                                      \
    const int64_t L = g->oh * g->ow;                                                   \
    for (int64_t p = lo; p < hi; p++) {                                                \
      int64_t n = p / g->c, c = p % g->c;                                              \
      T *x = (T *)job->x + p * g->h * g->w;                                            \
      memset(x, 0, sizeof(T) * g->h * g->w);                                          \
      for (int64_t i = 0; i < g->kh; i++)                                              \
        for (int64_t j = 0; j < g->kw; j++) {                                          \
          int64_t k = (c * g->kh + i) * g->kw + j, ox0, ox1;                           \
          const T *col = (const T *)job->cols + k * g->n * L + n * L;                  \
          valid_range(g, j, &ox0, &ox1);                                               \
          for (int64_t oy = 0; oy < g->oh; oy++) {                                     \
            int64_t y = oy * g->sh - g->ph + i;                                        \
            if (y < 0 || y >= g->h) continue;                                          \
            T *dst = x + y * g->w - g->pw + j;                                         \
            const T *src = col + oy * g->ow;                                           \
            for (int64_t ox = ox0; ox < ox1; ox++) dst[ox * g->sw] += src[ox];         \
          }                                                                            \
        }                                                                              \
    }                                                                                  \
  }

typedef struct {
  conv_geom g;
  void *x, *cols;
  double pad_value;
} conv_job;
IM2COL_ITEMS(float)
IM2COL_ITEMS(double)
COL2IM_PLANES(float)
COL2IM_PLANES(double)

static int check_cols(const char *fn, const ms_tensor *cols, const conv_geom *g) {
  int64_t want[2] = {g->c * g->kh * g->kw, g->n * g->oh * g->ow};
  return ms_check_shape(fn, "cols", cols, 2, want);
}

int ms_im2col(ms_tensor *cols, const ms_tensor *x, int32_t kh, int32_t kw, int32_t sh,
              int32_t sw, int32_t ph, int32_t pw, double pad_value) {
  static const char fn[] = "im2col";
  MS_TRY(check_nn_pair(fn, "cols", cols, "input", x));
  conv_job job = {{0}, ms_ptr(x), ms_ptr(cols), pad_value};
  MS_TRY(conv_geometry(fn, x, kh, kw, sh, sw, ph, pw, &job.g));
  MS_TRY(check_cols(fn, cols, &job.g));
  if (cols->count == 0) return 0;
  if (ms_device_of(x) == MS_CUDA) return ms_cuda_im2col(&job.g.n, job.x, job.cols, pad_value);
  int64_t items = job.g.c * kh * kw * job.g.n;
  ms_parallel_for(items, cols->count,
                  x->dtype_id == MS_FLOAT32 ? im2col_items_float : im2col_items_double, &job);
  return 0;
}

int ms_col2im(ms_tensor *x, const ms_tensor *cols, int32_t kh, int32_t kw, int32_t sh,
              int32_t sw, int32_t ph, int32_t pw) {
  static const char fn[] = "col2im";
  MS_TRY(check_nn_pair(fn, "input", x, "cols", cols));
  conv_job job = {{0}, ms_ptr(x), ms_ptr(cols), 0};
  MS_TRY(conv_geometry(fn, x, kh, kw, sh, sw, ph, pw, &job.g));
  MS_TRY(check_cols(fn, cols, &job.g));
  if (x->count == 0) return 0;
  if (ms_device_of(x) == MS_CUDA) return ms_cuda_col2im(&job.g.n, job.x, job.cols);
  ms_parallel_for(job.g.n * job.g.c, cols->count,
                  x->dtype_id == MS_FLOAT32 ? col2im_planes_float : col2im_planes_double, &job);
  return 0;
}

/* ---- max pooling ---------------------------------------------------------------------- */
typedef struct {
  conv_geom g;
  const void *x;
  void *out;
  int64_t *argmax;
  const void *gout;
  void *gin;
} pool_job;

/* Plane p: each output takes the first maximum of its window (NaN wins, as in max()). */
#define MAXPOOL_PLANES(T)                                                              \
  static void maxpool_planes_##T(void *ctx, int64_t lo, int64_t hi) {                  \
    const pool_job *job = ctx;                                                         \
    const conv_geom *g = &job->g;                                                      \
    for (int64_t p = lo; p < hi; p++) {                                                \
      const T *x = (const T *)job->x + p * g->h * g->w;                                \
      T *out = (T *)job->out + p * g->oh * g->ow;                                      \
      int64_t *am = job->argmax + p * g->oh * g->ow;                                   \
      for (int64_t oy = 0; oy < g->oh; oy++)                                           \
        for (int64_t ox = 0; ox < g->ow; ox++) {                                       \
          T best = 0;                                                                  \
          int64_t where = -1;                                                          \
          for (int64_t i = 0; i < g->kh; i++) {                                        \
            int64_t y = oy * g->sh - g->ph + i;                                        \
            if (y < 0 || y >= g->h) continue;                                          \
            for (int64_t j = 0; j < g->kw; j++) {                                      \
              int64_t xx = ox * g->sw - g->pw + j;                                     \
              if (xx < 0 || xx >= g->w) continue;                                      \
              T v = x[y * g->w + xx];                                                  \
              if (where < 0 || (best == best && !(v <= best))) best = v, where = y * g->w + xx; \
            }                                                                          \
          }                                                                            \
          out[oy * g->ow + ox] = best;                                                 \
          am[oy * g->ow + ox] = where;                                                 \
        }                                                                              \
    }                                                                                  \
  }

#define MAXPOOL_BACK_PLANES(T)                                                         \
  static void maxpool_back_planes_##T(void *ctx, int64_t lo, int64_t hi) {             \
    const pool_job *job = ctx;                                                         \
    const conv_geom *g = &job->g;                                                      \
    int64_t hw = g->h * g->w, ohw = g->oh * g->ow;                                     \
    for (int64_t p = lo; p < hi; p++) {                                                \
      T *gin = (T *)job->gin + p * hw;                                                 \
      const T *gout = (const T *)job->gout + p * ohw;                                  \
      const int64_t *am = job->argmax + p * ohw;                                       \
      memset(gin, 0, sizeof(T) * hw);                                                  \
      for (int64_t o = 0; o < ohw; o++) gin[am[o]] += gout[o];                         \
    }                                                                                  \
  }
MAXPOOL_PLANES(float)
MAXPOOL_PLANES(double)
MAXPOOL_BACK_PLANES(float)
MAXPOOL_BACK_PLANES(double)

int ms_maxpool2d(ms_tensor *out, ms_tensor *argmax, const ms_tensor *x, int32_t k,
                 int32_t stride, int32_t pad) {
  static const char fn[] = "maxpool2d";
  MS_TRY(check_nn_pair(fn, "out", out, "input", x));
  MS_TRY(ms_check_dtype(fn, "argmax", argmax, MS_INT64));
  pool_job job = {{0}, ms_ptr(x), ms_ptr(out), (int64_t *)ms_ptr(argmax), NULL, NULL};
  MS_TRY(conv_geometry(fn, x, k, k, stride, stride, pad, pad, &job.g));
  if (2 * pad > k) return ms_fail("%s: padding %d is more than half the kernel %d", fn, pad, k);
  int64_t want[4] = {job.g.n, job.g.c, job.g.oh, job.g.ow};
  MS_TRY(ms_check_shape(fn, "out", out, 4, want));
  MS_TRY(ms_check_shape(fn, "argmax", argmax, 4, want));
  if (ms_device_of(argmax) != ms_device_of(x) || !ms_tensor_is_contiguous(argmax))
    return ms_fail("%s: argument 'argmax' must be contiguous and on the input's device", fn);
  if (out->count == 0) return 0;
  if (ms_device_of(x) == MS_CUDA) return ms_cuda_maxpool2d(&job.g.n, job.x, job.out, job.argmax);
  ms_parallel_for(job.g.n * job.g.c, x->count,
                  x->dtype_id == MS_FLOAT32 ? maxpool_planes_float : maxpool_planes_double, &job);
  return 0;
}

int ms_maxpool2d_backward(ms_tensor *gin, const ms_tensor *gout, const ms_tensor *argmax) {
  static const char fn[] = "maxpool2d_backward";
  MS_TRY(check_nn_pair(fn, "grad_input", gin, "grad_output", gout));
  MS_TRY(ms_check_dtype(fn, "argmax", argmax, MS_INT64));
  MS_TRY(ms_check_shape(fn, "argmax", argmax, gout->ndim, gout->sizes));
  if (gin->ndim != 4 || gout->ndim != 4 || gin->sizes[0] != gout->sizes[0] ||
      gin->sizes[1] != gout->sizes[1])
    return ms_fail("%s: grad_input and grad_output must be [N, C, H, W] and [N, C, OH, OW]", fn);
  if (ms_device_of(argmax) != ms_device_of(gin) || !ms_tensor_is_contiguous(argmax))
    return ms_fail("%s: argument 'argmax' must be contiguous and on the gradient's device", fn);
  int64_t planes = gin->sizes[0] * gin->sizes[1], hw = gin->sizes[2] * gin->sizes[3];
  int64_t ohw = gout->sizes[2] * gout->sizes[3];
  if (gin->count == 0) return 0;
  if (ms_device_of(gin) == MS_CUDA)
    return ms_cuda_maxpool2d_backward(ms_ptr(gin), ms_ptr(gout), (const int64_t *)ms_ptr(argmax),
                                      planes, hw, ohw);
  /* argmax holds positions this module produced; still, never write outside a plane */
  const int64_t *am = (const int64_t *)ms_ptr(argmax);
  for (int64_t i = 0; i < argmax->count; i++)
    if (am[i] < 0 || am[i] >= hw)
      return ms_fail("%s: argmax holds %lld, outside a plane of %lld elements", fn,
                     (long long)am[i], (long long)hw);
  pool_job job = {{0}, NULL, NULL, (int64_t *)am, ms_ptr(gout), ms_ptr(gin)};
  job.g.h = gin->sizes[2], job.g.w = gin->sizes[3];
  job.g.oh = gout->sizes[2], job.g.ow = gout->sizes[3];
  ms_parallel_for(planes, gin->count,
                  gin->dtype_id == MS_FLOAT32 ? maxpool_back_planes_float : maxpool_back_planes_double,
                  &job);
  return 0;
}
