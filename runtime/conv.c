/* conv.c — the geometry of 2-d window ops (checked once, here, for convolutions and
 * pooling alike) and convolution lowering: im2col / col2im with stride, dilation and
 * asymmetric zero padding. Loops for float and double (CPU gradient checks run in
 * double); kernels/conv_pool.cu holds the CUDA twins, runtime/window.h the rules both
 * share. Every size product is overflow-checked: a hostile geometry is an error. The
 * one-pass layout kernels between the convolution GEMM and the batch are conv_layout.c. */
#include "internal.h"
#include "window.h"
#include <stdlib.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
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
  const void *mask;     /* the shifted path's column masks (below), or NULL */
  const int64_t *runs;  /* with mask: tap t = i*kw + j's run a, b and offset d at 3t */
} conv_job;

/* Stride 1 with OW == W (a 'same' or 1x1 convolution): tap (i, j) of output position
 * l = oy*OW + ox reads input position l + d, d = (i*dh - pt)*W + j*dw - pl, so a whole
 * row of cols is one shifted run of the plane over the valid rows [oy0, oy1); inside
 * that run, the columns whose tap lies across the left/right edge are masked out:
 * mask[j*L + l] = all ones when ox is in ms_valid_cols(j), else 0 (an unsigned integer
 * of the dtype's width: a bit mask for the SIMD selects). */
typedef uint32_t MASK_float;
typedef uint64_t MASK_double;
static int shifted(const ms_geom *g) { return g->sh == 1 && g->sw == 1 && g->ow == g->w; }

/* The runs of tap (i, j): cols positions [*a, *b) and the input offset *d. */
static void tap_run(const ms_geom *g, int64_t i, int64_t j, int64_t *a, int64_t *b, int64_t *d) {
  int64_t oy0 = g->pt - i * g->dh, oy1 = g->h + g->pt - i * g->dh, ox0, ox1;
  if (oy0 < 0) oy0 = 0;
  if (oy1 > g->oh) oy1 = g->oh;
  ms_valid_cols(g, j, &ox0, &ox1);
  *d = (i * g->dh - g->pt) * g->w + j * g->dw - g->pl;
  if (oy1 <= oy0 || ox1 <= ox0) { *a = *b = 0; return; }
  *a = oy0 * g->ow + ox0, *b = (oy1 - 1) * g->ow + ox1;
}

#define SHIFT_MASK(T, M)                                                               \
  static void *shift_mask_##T(const ms_geom *g) {                                      \
    const int64_t L = g->oh * g->ow;                                                   \
    M *m = malloc(sizeof(M) * (size_t)(g->kw * L));                                    \
    if (!m) return NULL;                                                               \
    for (int64_t j = 0; j < g->kw; j++) {                                              \
      int64_t ox0, ox1;                                                                \
      ms_valid_cols(g, j, &ox0, &ox1);                                                 \
      for (int64_t l = 0; l < L; l++) {                                                \
        int64_t ox = l % g->ow;                                                        \
        m[j * L + l] = ox >= ox0 && ox < ox1 ? (M)-1 : 0;                              \
      }                                                                                \
    }                                                                                  \
    return m;                                                                          \
  }
SHIFT_MASK(float, uint32_t)
SHIFT_MASK(double, uint64_t)

/* The runs themselves, on non-overlapping buffers: dst = m ? src : pad, and
 * dst += m ? src : -0 (adding -0 changes no value). SSE2 selects 4 floats or 2 doubles
 * at a time (the compiler will not if-convert these loops under the default
 * -ftrapping-math); the tail and non-SSE2 builds take the same rule in C. */
#define SHIFT_RUNS(T, M, V, LD, ST, AND, OR, ANDNOT, ADD, SET1, VN)                    \
  static void run_copy_##T(T *restrict dst, const T *restrict src, const M *restrict m, \
                           int64_t n, T pad) {                                         \
    int64_t l = 0;                                                                     \
    SHIFT_SIMD(const V p = SET1(pad);                                                  \
               for (; l + VN <= n; l += VN) {                                          \
                 const V k = SHIFT_MASK_LD(V, m + l);                                  \
                 ST(dst + l, OR(AND(k, LD(src + l)), ANDNOT(k, p)));                   \
               })                                                                      \
    for (; l < n; l++) dst[l] = m[l] ? src[l] : pad;                                   \
  }                                                                                    \
  static void run_add_##T(T *restrict dst, const T *restrict src, const M *restrict m, \
                          int64_t n) {                                                 \
    int64_t l = 0;                                                                     \
    SHIFT_SIMD(const V z = SET1((T)-0.0);                                              \
               for (; l + VN <= n; l += VN) {                                          \
                 const V k = SHIFT_MASK_LD(V, m + l);                                  \
                 ST(dst + l, ADD(LD(dst + l), OR(AND(k, LD(src + l)), ANDNOT(k, z)))); \
               })                                                                      \
    for (; l < n; l++) dst[l] += m[l] ? src[l] : (T)-0.0;                              \
  }
#if defined(__SSE2__)
#define SHIFT_SIMD(...) __VA_ARGS__
#define SHIFT_MASK_LD(V, p) ((V)_mm_loadu_si128((const __m128i *)(p)))
SHIFT_RUNS(float, uint32_t, __m128, _mm_loadu_ps, _mm_storeu_ps, _mm_and_ps, _mm_or_ps,
           _mm_andnot_ps, _mm_add_ps, _mm_set1_ps, 4)
SHIFT_RUNS(double, uint64_t, __m128d, _mm_loadu_pd, _mm_storeu_pd, _mm_and_pd, _mm_or_pd,
           _mm_andnot_pd, _mm_add_pd, _mm_set1_pd, 2)
#else
#define SHIFT_SIMD(...)
SHIFT_RUNS(float, uint32_t, , , , , , , , , 4)
SHIFT_RUNS(double, uint64_t, , , , , , , , , 2)
#endif

/* The masks and runs for job (when shifted and not too large: else the row loops), or
 * an error; shift_free releases them. */
static int shift_setup(const char *fn, conv_job *job, int32_t dtype) {
  const ms_geom *g = &job->g;
  job->mask = NULL, job->runs = NULL;
  int64_t n, taps;
  if (!shifted(g) || !ms_mul_ok(g->kw, g->oh * g->ow, &n) || n > (1 << 24) ||
      !ms_mul_ok(g->kh, g->kw, &taps) || taps > (1 << 20))
    return 0;
  int64_t *runs = malloc(sizeof(int64_t) * 3 * (size_t)taps);
  job->mask = runs ? (dtype == MS_FLOAT32 ? shift_mask_float(g) : shift_mask_double(g)) : NULL;
  if (!job->mask) {
    free(runs);
    return ms_fail("%s: out of memory for a column mask of %lld elements", fn, (long long)n);
  }
  for (int64_t t = 0; t < taps; t++)
    tap_run(g, t / g->kw, t % g->kw, &runs[3 * t], &runs[3 * t + 1], &runs[3 * t + 2]);
  job->runs = runs;
  return 0;
}

static void shift_free(conv_job *job) {
  free((void *)job->mask);
  free((void *)job->runs);
}

/* Item (k, n): the L = OH*OW columns of image n in row k of cols. Inner runs over ox
 * are contiguous copies when the stride is 1. */
#define IM2COL_ITEMS(T)                                                                \
  static void im2col_items_##T(void *ctx, int64_t lo, int64_t hi) {                    \
    const conv_job *job = ctx;                                                         \
    const ms_geom *g = &job->g;                                                        \
    const int64_t L = g->oh * g->ow;                                                   \
    const T pad = (T)job->pad_value;                                                   \
    /* items k*N + n: one row k (a tap of a channel) for the images n in [n0, n1), its \
     * divisions and column range once per row */                                     \
    for (int64_t item = lo; item < hi;) {                                              \
      const int64_t k = item / g->n, n0 = item % g->n;                                 \
      const int64_t n1 = hi - item < g->n - n0 ? n0 + (hi - item) : g->n;              \
      item += n1 - n0;                                                                 \
      const int64_t c = k / (g->kh * g->kw), t = k % (g->kh * g->kw);                  \
      const int64_t i = t / g->kw, j = t % g->kw;                                      \
      int64_t ox0 = 0, ox1 = 0;                                                        \
      if (!job->mask) ms_valid_cols(g, j, &ox0, &ox1);                                 \
      for (int64_t n = n0; n < n1; n++) {                                              \
        const T *x = (const T *)job->x + (n * g->c + c) * g->h * g->w;                 \
        T *col = (T *)job->cols + k * g->n * L + n * L;                                \
        if (job->mask) {                                                               \
          const int64_t a = job->runs[3 * t], b = job->runs[3 * t + 1];                \
          const int64_t d = job->runs[3 * t + 2];                                      \
          const MASK_##T *m = (const MASK_##T *)job->mask + j * L;                     \
          for (int64_t l = 0; l < a; l++) col[l] = pad;                                \
          if (b > a) run_copy_##T(col + a, x + (a + d), m + a, b - a, pad);            \
          for (int64_t l = b; l < L; l++) col[l] = pad;                                \
          continue;                                                                    \
        }                                                                              \
        for (int64_t oy = 0; oy < g->oh; oy++) {                                       \
          T *dst = col + oy * g->ow;                                                   \
          int64_t y = oy * g->sh - g->pt + i * g->dh;                                  \
          if (y < 0 || y >= g->h) {                                                    \
            for (int64_t ox = 0; ox < g->ow; ox++) dst[ox] = pad;                      \
            continue;                                                                  \
          }                                                                            \
          const int64_t base = y * g->w - g->pl + j * g->dw;                           \
          for (int64_t ox = 0; ox < ox0; ox++) dst[ox] = pad;                          \
          if (g->sw == 1)                                                              \
            for (int64_t ox = ox0; ox < ox1; ox++) dst[ox] = x[base + ox];             \
          else                                                                         \
            for (int64_t ox = ox0; ox < ox1; ox++) dst[ox] = x[base + ox * g->sw];     \
          for (int64_t ox = ox1; ox < g->ow; ox++) dst[ox] = pad;                      \
        }                                                                              \
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
      /* items run over n fastest: consecutive items read consecutive runs of the     \
       * same cols rows (streams the prefetcher follows), x planes are the scattered side */ \
      int64_t c = p / g->n, n = p % g->n;                                              \
      T *x = (T *)job->x + (n * g->c + c) * g->h * g->w;                               \
      memset(x, 0, sizeof(T) * g->h * g->w);                                          \
      for (int64_t i = 0; i < g->kh; i++)                                              \
        for (int64_t j = 0; j < g->kw; j++) {                                          \
          int64_t k = (c * g->kh + i) * g->kw + j, ox0, ox1;                           \
          const T *col = (const T *)job->cols + k * g->n * L + n * L;                  \
          if (job->mask) {   /* adding -0 leaves every value as it is */                \
            const int64_t *r = job->runs + 3 * (i * g->kw + j);                        \
            const int64_t a = r[0], b = r[1], d = r[2];                                \
            const MASK_##T *m = (const MASK_##T *)job->mask + j * L;                   \
            if (b > a) run_add_##T(x + (a + d), col + a, m + a, b - a);                \
            continue;                                                                  \
          }                                                                            \
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
  conv_job job = {{0}, ms_ptr(x), ms_ptr(cols), pad_value, NULL, NULL};
  MS_TRY(ms_geom_init(fn, &job.g, x, win));
  MS_TRY(check_cols(fn, cols, &job.g));
  if (cols->count == 0) return 0;
  if (ms_device_of(x) == MS_CUDA)
    return ms_cuda_im2col((const int64_t *)&job.g, job.x, job.cols, pad_value);
  int64_t items = job.g.c * job.g.kh * job.g.kw * job.g.n;
  MS_TRY(shift_setup(fn, &job, x->dtype_id));
  ms_parallel_for(items, cols->count,
                  x->dtype_id == MS_FLOAT32 ? im2col_items_float : im2col_items_double, &job);
  shift_free(&job);
  return 0;
}

int ms_col2im(ms_tensor *x, const ms_tensor *cols, const ms_window2d *win) {
  static const char fn[] = "col2im";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_float_pair(fn, "input", x, "cols", cols));
  conv_job job = {{0}, ms_ptr(x), ms_ptr(cols), 0, NULL, NULL};
  MS_TRY(ms_geom_init(fn, &job.g, x, win));
  MS_TRY(check_cols(fn, cols, &job.g));
  if (x->count == 0) return 0;
  if (ms_device_of(x) == MS_CUDA) return ms_cuda_col2im((const int64_t *)&job.g, job.x, job.cols);
  if (cols->count == 0) {  /* no output positions: nothing reads x */
    memset(job.x, 0, (size_t)x->count * ms_dtype_size(x->dtype_id));
    return 0;
  }
  MS_TRY(shift_setup(fn, &job, x->dtype_id));
  ms_parallel_for(job.g.n * job.g.c, cols->count + x->count,
                  x->dtype_id == MS_FLOAT32 ? col2im_planes_float : col2im_planes_double, &job);
  shift_free(&job);
  return 0;
}
