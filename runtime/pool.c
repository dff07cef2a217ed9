/* pool.c — 2-d max and average pooling (PyTorch's semantics: dilation and ceil_mode for
 * max, count_include_pad and divisor_override for average), forward and backward.
 * The window rules live in window.h, shared with the CUDA twins (kernels/conv_pool.cu);
 * the geometry is checked by conv.c's ms_geom_init. One input plane per work item. */
#include "internal.h"
#include "window.h"
#include <string.h>

typedef struct {
  ms_geom g;
  const void *x;
  void *out;
  int64_t *argmax;
} pool_job;

/* ---- max pooling ---------------------------------------------------------------------- */
#define MAXPOOL_PLANES(T)                                                              \
  static void maxpool_planes_##T(void *ctx, int64_t lo, int64_t hi) {                  \
    const pool_job *job = ctx;                                                         \
    const ms_geom *g = &job->g;                                                        \
    const int64_t ohw = g->oh * g->ow;                                                 \
    for (int64_t p = lo; p < hi; p++) {                                                \
      const T *x = (const T *)job->x + p * g->h * g->w;                                \
      T *out = (T *)job->out + p * ohw;                                                \
      int64_t *am = job->argmax + p * ohw;                                             \
      for (int64_t oy = 0; oy < g->oh; oy++)                                           \
        for (int64_t ox = 0; ox < g->ow; ox++)                                         \
          out[oy * g->ow + ox] = ms_maxpool_at_##T(g, x, oy, ox, &am[oy * g->ow + ox]); \
    }                                                                                  \
  }
/* defines maxpool_planes_float, maxpool_planes_double */
MAXPOOL_PLANES(float)
MAXPOOL_PLANES(double)

int ms_maxpool2d(ms_tensor *out, ms_tensor *argmax, const ms_tensor *x, const ms_window2d *win) {
  static const char fn[] = "maxpool2d";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_float_pair(fn, "out", out, "input", x));
  MS_TRY(ms_check_dtype(fn, "argmax", argmax, MS_INT64));
  pool_job job = {{0}, ms_ptr(x), ms_ptr(out), (int64_t *)ms_ptr(argmax)};
  MS_TRY(ms_geom_init(fn, &job.g, x, win));
  int64_t want[4] = {job.g.n, job.g.c, job.g.oh, job.g.ow};
  MS_TRY(ms_check_shape(fn, "out", out, 4, want));
  MS_TRY(ms_check_shape(fn, "argmax", argmax, 4, want));
  if (ms_device_of(argmax) != ms_device_of(x) || !ms_tensor_is_contiguous(argmax))
    return ms_fail("%s: argument 'argmax' must be contiguous and on the input's device", fn);
  if (out->count == 0) return 0;
  if (ms_device_of(x) == MS_CUDA)
    return ms_cuda_maxpool2d((const int64_t *)&job.g, job.x, job.out, job.argmax);
  ms_parallel_for(job.g.n * job.g.c, x->count + out->count * job.g.kh * job.g.kw,
                  x->dtype_id == MS_FLOAT32 ? maxpool_planes_float : maxpool_planes_double, &job);
  return 0;
}

typedef struct {
  int64_t hw, ohw;
  const int64_t *argmax;
  const void *gout;
  void *gin;
} maxback_job;

/* Plane p: zero, then each gradient added at its window's argmax (-1: no element). */
#define MAXPOOL_BACK_PLANES(T)                                                         \
  static void maxpool_back_planes_##T(void *ctx, int64_t lo, int64_t hi) {             \
    const maxback_job *job = ctx;                                                      \
    for (int64_t p = lo; p < hi; p++) {                                                \
      T *gin = (T *)job->gin + p * job->hw;                                            \
      const T *gout = (const T *)job->gout + p * job->ohw;                             \
      const int64_t *am = job->argmax + p * job->ohw;                                  \
      memset(gin, 0, sizeof(T) * job->hw);                                             \
      for (int64_t o = 0; o < job->ohw; o++)                                           \
        if (am[o] >= 0) gin[am[o]] += gout[o];                                         \
    }                                                                                  \
  }
/* defines maxpool_back_planes_float, maxpool_back_planes_double */
MAXPOOL_BACK_PLANES(float)
MAXPOOL_BACK_PLANES(double)

int ms_maxpool2d_backward(ms_tensor *gin, const ms_tensor *gout, const ms_tensor *argmax) {
  static const char fn[] = "maxpool2d_backward";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_float_pair(fn, "grad_input", gin, "grad_output", gout));
  MS_TRY(ms_check_tensor(fn, "argmax", argmax));
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
    if (am[i] < -1 || am[i] >= hw)
      return ms_fail("%s: argmax holds %lld, outside a plane of %lld elements", fn,
                     (long long)am[i], (long long)hw);
  maxback_job job = {hw, ohw, am, ms_ptr(gout), ms_ptr(gin)};
  ms_parallel_for(planes, gin->count + gout->count,
                  gin->dtype_id == MS_FLOAT32 ? maxpool_back_planes_float : maxpool_back_planes_double,
                  &job);
  return 0;
}

/* ---- average pooling ------------------------------------------------------------------ */
typedef struct {
  ms_geom g;
  const void *src;  /* forward: x; backward: gout */
  void *dst;        /* forward: out; backward: gin */
} avg_job;

/* Forward, plane p: each output is its window's sum (in double) over the divisor. */
#define AVGPOOL_PLANES(T)                                                              \
  static void avgpool_planes_##T(void *ctx, int64_t lo, int64_t hi) {                  \
    const avg_job *job = ctx;                                                          \
    const ms_geom *g = &job->g;                                                        \
    for (int64_t p = lo; p < hi; p++) {                                                \
      const T *x = (const T *)job->src + p * g->h * g->w;                              \
      T *out = (T *)job->dst + p * g->oh * g->ow;                                      \
      for (int64_t oy = 0; oy < g->oh; oy++)                                           \
        for (int64_t ox = 0; ox < g->ow; ox++) {                                       \
          int64_t y0, y1, x0, x1;                                                      \
          int64_t div = ms_avg_window(g, oy, ox, &y0, &y1, &x0, &x1);                  \
          double s = 0;                                                                \
          for (int64_t y = y0; y < y1; y++)                                            \
            for (int64_t xx = x0; xx < x1; xx++) s += x[y * g->w + xx];                \
          out[oy * g->ow + ox] = div ? (T)(s / (double)div) : (T)0;                    \
        }                                                                              \
    }                                                                                  \
  }

/* Backward, plane p: each output's gradient over the divisor, added to its window. */
#define AVGPOOL_BACK_PLANES(T)                                                         \
  static void avgpool_back_planes_##T(void *ctx, int64_t lo, int64_t hi) {             \
    const avg_job *job = ctx;                                                          \
    const ms_geom *g = &job->g;                                                        \
    for (int64_t p = lo; p < hi; p++) {                                                \
      const T *gout = (const T *)job->src + p * g->oh * g->ow;                         \
      T *gin = (T *)job->dst + p * g->h * g->w;                                        \
      memset(gin, 0, sizeof(T) * g->h * g->w);                                        \
      for (int64_t oy = 0; oy < g->oh; oy++)                                           \
        for (int64_t ox = 0; ox < g->ow; ox++) {                                       \
          int64_t y0, y1, x0, x1;                                                      \
          int64_t div = ms_avg_window(g, oy, ox, &y0, &y1, &x0, &x1);                  \
          if (!div) continue;                                                          \
          T v = (T)((double)gout[oy * g->ow + ox] / (double)div);                      \
          for (int64_t y = y0; y < y1; y++)                                            \
            for (int64_t xx = x0; xx < x1; xx++) gin[y * g->w + xx] += v;              \
        }                                                                              \
    }                                                                                  \
  }
/* defines avgpool_planes_float, avgpool_planes_double, avgpool_back_planes_float,
 * avgpool_back_planes_double */
AVGPOOL_PLANES(float)
AVGPOOL_PLANES(double)
AVGPOOL_BACK_PLANES(float)
AVGPOOL_BACK_PLANES(double)

/* Average pooling has no dilation; the divisor and count_include_pad go in g. */
static int avg_geom(const char *fn, ms_geom *g, const ms_tensor *x, const ms_window2d *win,
                    int32_t count_include_pad, int64_t divisor) {
  if (!win) return ms_fail("%s: argument 'win' is NULL", fn);
  if (win->dh != 1 || win->dw != 1)
    return ms_fail("%s: dilation %lldx%lld, expected 1x1 (average pooling has none)", fn,
                   (long long)win->dh, (long long)win->dw);
  if (count_include_pad != 0 && count_include_pad != 1)
    return ms_fail("%s: count_include_pad %d, expected 0 or 1", fn, (int)count_include_pad);
  MS_TRY(ms_geom_init(fn, g, x, win));
  g->count_include_pad = count_include_pad, g->divisor = divisor;
  return 0;
}

int ms_avgpool2d(ms_tensor *out, const ms_tensor *x, const ms_window2d *win,
                 int32_t count_include_pad, int64_t divisor) {
  static const char fn[] = "avgpool2d";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_float_pair(fn, "out", out, "input", x));
  avg_job job = {{0}, ms_ptr(x), ms_ptr(out)};
  MS_TRY(avg_geom(fn, &job.g, x, win, count_include_pad, divisor));
  int64_t want[4] = {job.g.n, job.g.c, job.g.oh, job.g.ow};
  MS_TRY(ms_check_shape(fn, "out", out, 4, want));
  if (out->count == 0) return 0;
  if (ms_device_of(x) == MS_CUDA) return ms_cuda_avgpool2d((const int64_t *)&job.g, job.src, job.dst);
  ms_parallel_for(job.g.n * job.g.c, x->count + out->count * job.g.kh * job.g.kw,
                  x->dtype_id == MS_FLOAT32 ? avgpool_planes_float : avgpool_planes_double, &job);
  return 0;
}

int ms_avgpool2d_backward(ms_tensor *gin, const ms_tensor *gout, const ms_window2d *win,
                          int32_t count_include_pad, int64_t divisor) {
  static const char fn[] = "avgpool2d_backward";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_float_pair(fn, "grad_input", gin, "grad_output", gout));
  avg_job job = {{0}, ms_ptr(gout), ms_ptr(gin)};
  MS_TRY(avg_geom(fn, &job.g, gin, win, count_include_pad, divisor));
  int64_t want[4] = {job.g.n, job.g.c, job.g.oh, job.g.ow};
  MS_TRY(ms_check_shape(fn, "grad_output", gout, 4, want));
  if (gin->count == 0) return 0;
  if (ms_device_of(gin) == MS_CUDA)
    return ms_cuda_avgpool2d_backward((const int64_t *)&job.g, job.dst, job.src);
  ms_parallel_for(job.g.n * job.g.c, gin->count + gout->count * job.g.kh * job.g.kw,
                  gin->dtype_id == MS_FLOAT32 ? avgpool_back_planes_float
                                              : avgpool_back_planes_double, &job);
  return 0;
}
