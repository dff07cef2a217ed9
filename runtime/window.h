/* window.h — 2-d window ops (convolution lowering, max and average pooling): their
 * geometry and the per-element rules, written once for the CPU loops (conv.c, pool.c)
 * and the CUDA kernels (kernels/conv_pool.cu). Functions are MS_HD: host and device.
 *
 * Geometry (PyTorch's): an output position (oy, ox) reads the input rows
 *   y = oy*sh - pt + i*dh, i in [0, kh)   (columns likewise with sw, pl, dw, kw)
 * positions outside [0, h) x [0, w) are padding. The output size is
 *   oh = floor((h + pt + pb - dh*(kh - 1) - 1) / sh) + 1
 * or, with ceil_mode, the ceiling, less one if the last window would start past the
 * input and its top padding (PyTorch's rule: every window starts inside them). */
#ifndef MS_WINDOW_H
#define MS_WINDOW_H
#include <math.h>
#include <stdint.h>
#include "include/moonstep.h"

#ifdef __CUDACC__
#define MS_HD __host__ __device__ static inline
#else
#define MS_HD static inline
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* What a kernel needs: the input planes' sizes and the window, all int64 so that the
 * struct crosses to the CUDA side as a plain array (the ms_cuda_* geom pointers). */
typedef struct ms_geom {
  int64_t n, c, h, w;          /* input [n, c, h, w] */
  int64_t kh, kw, sh, sw, dh, dw;
  int64_t pt, pb, pl, pr;      /* padding top, bottom, left, right */
  int64_t oh, ow;              /* output size */
  int64_t count_include_pad;   /* average pooling: padding counts in the divisor */
  int64_t divisor;             /* average pooling: a fixed divisor, or 0 */
} ms_geom;

/* Validate win against an input of h x w (overflow-checked) and fill win->oh, win->ow.
 * fn names the caller in the message. Defined in conv.c. */
int ms_window_check(const char *fn, ms_window2d *win, int64_t h, int64_t w);
/* x [N, C, H, W] (contiguous float) and win -> g; fails like ms_window_check. */
int ms_geom_init(const char *fn, ms_geom *g, const ms_tensor *x, const ms_window2d *win);

/* ---- per-element rules ------------------------------------------------------------ */

/* The output columns ox in [*lo, *hi) whose input column ox*sw - pl + j*dw lies in
 * [0, w): outside that range, column tap j of an output row reads padding. */
MS_HD void ms_valid_cols(const ms_geom *g, int64_t j, int64_t *lo, int64_t *hi) {
  int64_t a = g->pl - j * g->dw;        /* need ox*sw >= a */
  *lo = a <= 0 ? 0 : (a + g->sw - 1) / g->sw;
  int64_t b = g->w + g->pl - j * g->dw; /* need ox*sw < b */
  *hi = b <= 0 ? 0 : (b + g->sw - 1) / g->sw;
  if (*hi > g->ow) *hi = g->ow;
  if (*lo > *hi) *lo = *hi;
}

/* im2col: the input offset inside plane (n, c) that cols row k = (c*kh + i)*kw + j,
 * output position l = oy*OW + ox reads, or -1 for padding. */
MS_HD int64_t ms_im2col_source(const ms_geom *g, int64_t k, int64_t l) {
  int64_t i = (k / g->kw) % g->kh, j = k % g->kw;
  int64_t y = (l / g->ow) * g->sh - g->pt + i * g->dh;
  int64_t x = (l % g->ow) * g->sw - g->pl + j * g->dw;
  return (y >= 0 && y < g->h && x >= 0 && x < g->w) ? y * g->w + x : -1;
}

/* The adjoint (col2im): the output o in [0, osize) whose tap t reads input position
 * pos, i.e. o*s - p + t*d == pos, or -1 when there is none. */
MS_HD int64_t ms_tap_output(int64_t pos, int64_t t, int64_t s, int64_t p, int64_t d,
                            int64_t osize) {
  int64_t q = pos + p - t * d;
  if (q < 0 || q % s) return -1;
  q /= s;
  return q < osize ? q : -1;
}

/* Average pooling: output (oy, ox) averages rows [*y0, *y1) and columns [*x0, *x1) of
 * the input; returns the divisor. PyTorch's rule: the window is cut at the end of the
 * bottom/right padding (ceil_mode may run past it), its size there is the
 * count_include_pad divisor; otherwise the divisor counts input elements only. */
MS_HD int64_t ms_avg_window(const ms_geom *g, int64_t oy, int64_t ox, int64_t *y0,
                            int64_t *y1, int64_t *x0, int64_t *x1) {
  int64_t ys = oy * g->sh - g->pt, xs = ox * g->sw - g->pl;
  int64_t ye = ys + g->kh, xe = xs + g->kw;
  if (ye > g->h + g->pb) ye = g->h + g->pb;
  if (xe > g->w + g->pr) xe = g->w + g->pr;
  int64_t padded = (ye - ys) * (xe - xs);
  *y0 = ys < 0 ? 0 : ys, *x0 = xs < 0 ? 0 : xs;
  *y1 = ye > g->h ? g->h : ye, *x1 = xe > g->w ? g->w : xe;
  if (*y1 < *y0) *y1 = *y0;
  if (*x1 < *x0) *x1 = *x0;
  if (g->divisor) return g->divisor;
  return g->count_include_pad ? padded : (*y1 - *y0) * (*x1 - *x0);
}

/* Max pooling of output (oy, ox) over plane x: the first maximum of the window (NaN
 * wins, as max() does; padding never does). *where: its offset h*W + w in the plane,
 * or -1 when the window holds no input element (the output is then -inf). */
#define MS_MAXPOOL_AT(T)                                                                \
  MS_HD T ms_maxpool_at_##T(const ms_geom *g, const T *x, int64_t oy, int64_t ox,       \
                            int64_t *where) {                                           \
    T best = -(T)INFINITY;                                                           \
    int64_t at = -1;                                                                    \
    for (int64_t i = 0; i < g->kh; i++) {                                               \
      int64_t y = oy * g->sh - g->pt + i * g->dh;                                       \
      if (y < 0 || y >= g->h) continue;                                                 \
      for (int64_t j = 0; j < g->kw; j++) {                                             \
        int64_t xx = ox * g->sw - g->pl + j * g->dw;                                    \
        if (xx < 0 || xx >= g->w) continue;                                             \
        T v = x[y * g->w + xx];                                                         \
        if (at < 0 || (best == best && !(v <= best))) best = v, at = y * g->w + xx;     \
      }                                                                                 \
    }                                                                                   \
    *where = at;                                                                        \
    return best;                                                                        \
  }
/* defines ms_maxpool_at_float and, in C only, ms_maxpool_at_double */
MS_MAXPOOL_AT(float)
#ifndef __CUDACC__
MS_MAXPOOL_AT(double)
#endif

/* CUDA twins (kernels/conv_pool.cu, geom points at an ms_geom) are declared in
 * internal.h from the list in cuda_entries.h. */

#ifdef __cplusplus
}
#endif

#endif
