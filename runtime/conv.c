/* conv.c — the geometry of 2-d window ops (checked once, here, for convolutions and
 * pooling alike) and convolution lowering: im2col / col2im with stride, dilation and
 * asymmetric zero padding. Loops for float and double (CPU gradient checks run in
 * double); kernels/conv_pool.cu holds the CUDA twins, runtime/window.h the rules both
 * share. Every size product is overflow-checked: a hostile geometry is an error. */
#include "internal.h"
#include "window.h"
#include <string.h>

/* ---- geometry ----------------------------------------------------------------------- */

/* One spatial dimension: the kernel's span, the padded size and the output size, or 0
 * when an intermediate overflows int64. */
static int window_dim(int64_t size, int64_t k, int64_t s, int64_t d, int64_t p0, int64_t p1,
                      int64_t ceil_mode, int64_t *span, int64_t *padded, int64_t *out) {
  int64_t num;
  if (!ms_mul_ok(d, k - 1, span) || !ms_add_ok(*span, 1, span)) return 0;
  if (!ms_add_ok(size, p0, padded) || !ms_add_ok(*padded, p1, padded)) return 0;
  if (*padded < *span) { *out = 0; return 1; }
  num = *padded - *span;
  if (ceil_mode && !ms_add_ok(num, s - 1, &num)) return 0;
  *out = num / s + 1;
  /* ceil_mode: the last window must start inside the input or its top/left padding */
  if (ceil_mode && (*out - 1) * s >= size + p0) (*out)--;
  return 1;
}

int ms_window_check(const char *fn, ms_window2d *win, int64_t h, int64_t w) {
  const ms_window2d *v = win;
  if (v->kh < 1 || v->kw < 1)
    return ms_fail("%s: kernel size %lldx%lld, expected >= 1", fn, (long long)v->kh, (long long)v->kw);
  if (v->sh < 1 || v->sw < 1)
    return ms_fail("%s: stride %lldx%lld, expected >= 1", fn, (long long)v->sh, (long long)v->sw);
  if (v->dh < 1 || v->dw < 1)
    return ms_fail("%s: dilation %lldx%lld, expected >= 1", fn, (long long)v->dh, (long long)v->dw);
  if (v->pt < 0 || v->pb < 0 || v->pl < 0 || v->pr < 0)
    return ms_fail("%s: padding (top %lld, bottom %lld, left %lld, right %lld), expected >= 0",
                   fn, (long long)v->pt, (long long)v->pb, (long long)v->pl, (long long)v->pr);
  if (v->ceil_mode != 0 && v->ceil_mode != 1)
    return ms_fail("%s: ceil_mode %lld, expected 0 or 1", fn, (long long)v->ceil_mode);
  if (h < 0 || w < 0)
    return ms_fail("%s: input size %lldx%lld, expected >= 0", fn, (long long)h, (long long)w);
  int64_t span_h, span_w, ph, pw, oh, ow;
  if (!window_dim(h, v->kh, v->sh, v->dh, v->pt, v->pb, v->ceil_mode, &span_h, &ph, &oh) ||
      !window_dim(w, v->kw, v->sw, v->dw, v->pl, v->pr, v->ceil_mode, &span_w, &pw, &ow))
    return ms_fail("%s: input %lldx%lld with kernel %lldx%lld, dilation %lldx%lld, padding "
                   "%lld/%lld x %lld/%lld: the window geometry overflows int64", fn,
                   (long long)h, (long long)w, (long long)v->kh, (long long)v->kw,
                   (long long)v->dh, (long long)v->dw, (long long)v->pt, (long long)v->pb,
                   (long long)v->pl, (long long)v->pr);
  if (oh < 1 || ow < 1)
    return ms_fail("%s: kernel %lldx%lld (dilation %lldx%lld, spanning %lldx%lld) is larger than "
                   "the padded input %lldx%lld (input %lldx%lld, padding %lld/%lld x %lld/%lld): "
                   "the output would be empty", fn, (long long)v->kh, (long long)v->kw,
                   (long long)v->dh, (long long)v->dw, (long long)span_h, (long long)span_w,
                   (long long)ph, (long long)pw, (long long)h, (long long)w, (long long)v->pt,
                   (long long)v->pb, (long long)v->pl, (long long)v->pr);
  int64_t l;
  if (!ms_mul_ok(oh, ow, &l))
    return ms_fail("%s: input %lldx%lld with stride %lldx%lld and padding %lld/%lld x %lld/%lld "
                   "gives an output of %lldx%lld: too many elements (overflows int64)", fn,
                   (long long)h, (long long)w, (long long)v->sh, (long long)v->sw,
                   (long long)v->pt, (long long)v->pb, (long long)v->pl, (long long)v->pr,
                   (long long)oh, (long long)ow);
  win->oh = oh, win->ow = ow;
  return 0;
}

int ms_window2d_out(ms_window2d *win, int64_t h, int64_t w) {
  if (!win) return ms_fail("window2d: argument 'win' is NULL");
  return ms_window_check("window2d", win, h, w);
}

int ms_geom_init(const char *fn, ms_geom *g, const ms_tensor *x, const ms_window2d *win) {
  if (!win) return ms_fail("%s: argument 'win' is NULL", fn);
  if (x->ndim != 4)
    return ms_fail("%s: input has %d dims, expected 4 [N, C, H, W]", fn, x->ndim);
  ms_window2d v = *win;
  MS_TRY(ms_window_check(fn, &v, x->sizes[2], x->sizes[3]));
  memset(g, 0, sizeof *g);
  g->n = x->sizes[0], g->c = x->sizes[1], g->h = x->sizes[2], g->w = x->sizes[3];
  g->kh = v.kh, g->kw = v.kw, g->sh = v.sh, g->sw = v.sw, g->dh = v.dh, g->dw = v.dw;
  g->pt = v.pt, g->pb = v.pb, g->pl = v.pl, g->pr = v.pr, g->oh = v.oh, g->ow = v.ow;
  /* products the kernels form: C*kh*kw rows by N*OH*OW columns, planes N*C */
  int64_t t;
  if (!ms_mul_ok(g->c, g->kh, &t) || !ms_mul_ok(t, g->kw, &t) || !ms_mul_ok(g->oh, g->ow, &t) ||
      !ms_mul_ok(t, g->n, &t) || !ms_mul_ok(g->n, g->c, &t))
    return ms_fail("%s: input [%lld, %lld, %lld, %lld] with kernel %lldx%lld: sizes overflow int64",
                   fn, (long long)g->n, (long long)g->c, (long long)g->h, (long long)g->w,
                   (long long)g->kh, (long long)g->kw);
  return 0;
}

/* ---- im2col / col2im ----------------------------------------------------------------- */
typedef struct {
  ms_geom g;
  void *x, *cols;
  double pad_value;
} conv_job;

/* Item (k, n): the L = OH*OW columns of image n in row k of cols. Inner runs over ox
 * are contiguous copies when the stride is 1. */
#define IM2COL_ITEMS(T)                                                                \
  static void im2col_items_##T(void *ctx, int64_t lo, int64_t hi) {                    \
    const conv_job *job = ctx;                                                         \
    const ms_geom *g = &job->g;                                                        \
    const int64_t L = g->oh * g->ow;                                                   \
    const T pad = (T)job->pad_value;                                                   \
    for (int64_t item = lo; item < hi; item++) {                                       \
      int64_t k = item / g->n, n = item % g->n;                                        \
      int64_t c = k / (g->kh * g->kw), i = (k / g->kw) % g->kh, j = k % g->kw;         \
      const T *x = (const T *)job->x + (n * g->c + c) * g->h * g->w;                   \
      T *col = (T *)job->cols + k * g->n * L + n * L;                                  \
      int64_t ox0, ox1;                                                                \
      ms_valid_cols(g, j, &ox0, &ox1);                                                 \
      for (int64_t oy = 0; oy < g->oh; oy++) {                                         \
        T *dst = col + oy * g->ow;                                                     \
        int64_t y = oy * g->sh - g->pt + i * g->dh;                                    \
        if (y < 0 || y >= g->h) {                                                      \
          for (int64_t ox = 0; ox < g->ow; ox++) dst[ox] = pad;                        \
          continue;                                                                    \
        }                                                                              \
        const int64_t base = y * g->w - g->pl + j * g->dw;                             \
        for (int64_t ox = 0; ox < ox0; ox++) dst[ox] = pad;                            \
        if (g->sw == 1)                                                                \
          for (int64_t ox = ox0; ox < ox1; ox++) dst[ox] = x[base + ox];               \
        else                                                                           \
          for (int64_t ox = ox0; ox < ox1; ox++) dst[ox] = x[base + ox * g->sw];       \
        for (int64_t ox = ox1; ox < g->ow; ox++) dst[ox] = pad;                        \
      }                                                                                \
    }                                                                                  \
  }

/* One input plane (n, c) per item: gather every cols entry that reads it. Planes are
 * disjoint, so threads never write the same element. */
#define COL2IM_PLANES(T)                                                               \
  static void col2im_planes_##T(void *ctx, int64_t lo, int64_t hi) {                   \
    const conv_job *job = ctx;                                                         \
    const ms_geom *g = &job->g;                                                        \
    const int64_t L = g->oh * g->ow;                                                   \
    for (int64_t p = lo; p < hi; p++) {                                                \
      int64_t n = p / g->c, c = p % g->c;                                              \
      T *x = (T *)job->x + p * g->h * g->w;                                            \
      memset(x, 0, sizeof(T) * g->h * g->w);                                          \
      for (int64_t i = 0; i < g->kh; i++)                                              \
        for (int64_t j = 0; j < g->kw; j++) {                                          \
          int64_t k = (c * g->kh + i) * g->kw + j, ox0, ox1;                           \
          const T *col = (const T *)job->cols + k * g->n * L + n * L;                  \
          ms_valid_cols(g, j, &ox0, &ox1);                                             \
          for (int64_t oy = 0; oy < g->oh; oy++) {                                     \
            int64_t y = oy * g->sh - g->pt + i * g->dh;                                \
            if (y < 0 || y >= g->h) continue;                                          \
            const int64_t base = y * g->w - g->pl + j * g->dw;                         \
            const T *src = col + oy * g->ow;                                           \
            for (int64_t ox = ox0; ox < ox1; ox++) x[base + ox * g->sw] += src[ox];    \
          }                                                                            \
        }                                                                              \
    }                                                                                  \
  }

/* defines im2col_items_float, im2col_items_double, col2im_planes_float,
 * col2im_planes_double */
IM2COL_ITEMS(float)
IM2COL_ITEMS(double)
COL2IM_PLANES(float)
COL2IM_PLANES(double)

static int check_cols(const char *fn, const ms_tensor *cols, const ms_geom *g) {
  int64_t want[2] = {g->c * g->kh * g->kw, g->n * g->oh * g->ow};
  return ms_check_shape(fn, "cols", cols, 2, want);
}

int ms_im2col(ms_tensor *cols, const ms_tensor *x, const ms_window2d *win, double pad_value) {
  static const char fn[] = "im2col";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_float_pair(fn, "cols", cols, "input", x));
  conv_job job = {{0}, ms_ptr(x), ms_ptr(cols), pad_value};
  MS_TRY(ms_geom_init(fn, &job.g, x, win));
  MS_TRY(check_cols(fn, cols, &job.g));
  if (cols->count == 0) return 0;
  if (ms_device_of(x) == MS_CUDA)
    return ms_cuda_im2col((const int64_t *)&job.g, job.x, job.cols, pad_value);
  int64_t items = job.g.c * job.g.kh * job.g.kw * job.g.n;
  ms_parallel_for(items, cols->count,
                  x->dtype_id == MS_FLOAT32 ? im2col_items_float : im2col_items_double, &job);
  return 0;
}

int ms_col2im(ms_tensor *x, const ms_tensor *cols, const ms_window2d *win) {
  static const char fn[] = "col2im";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_float_pair(fn, "input", x, "cols", cols));
  conv_job job = {{0}, ms_ptr(x), ms_ptr(cols), 0};
  MS_TRY(ms_geom_init(fn, &job.g, x, win));
  MS_TRY(check_cols(fn, cols, &job.g));
  if (x->count == 0) return 0;
  if (ms_device_of(x) == MS_CUDA) return ms_cuda_col2im((const int64_t *)&job.g, job.x, job.cols);
  if (cols->count == 0) {  /* no output positions: nothing reads x */
    memset(job.x, 0, (size_t)x->count * ms_dtype_size(x->dtype_id));
    return 0;
  }
  ms_parallel_for(job.g.n * job.g.c, cols->count + x->count,
                  x->dtype_id == MS_FLOAT32 ? col2im_planes_float : col2im_planes_double, &job);
  return 0;
}
