/* pool.c — 2-d max and average pooling (PyTorch's semantics: dilation and ceil_mode for
 * max, count_include_pad and divisor_override for average), forward and backward.
 * The window rules live in window.h, shared with the CUDA twins (kernels/conv_pool.cu);
 * the geometry is checked by conv.c's ms_geom_init. One input plane per work item.
 * Interior outputs (every tap inside the input) skip the bounds checks, a row at a time
 * (float: 4 outputs per SSE2 step when the stride across is 1 or 2); borders apply the
 * window.h rule per output. Results are bit for bit those of the rule: same taps, same
 * order, same arithmetic. */
#include "internal.h"
#include "window.h"
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef struct {
  ms_geom g;
  const void *x;
  void *out;
  int64_t *argmax;
} pool_job;

/* ---- max pooling ---------------------------------------------------------------------- */
/* The rule is window.h's ms_maxpool_at (taps in row-major order, the first maximum wins,
 * NaN wins, padding never does). Interior outputs, whose every tap lies in the input,
 * take it without bounds checks: best starts at tap 0 (at < 0 there), and each later
 * tap replaces it when best is not NaN and the tap is not <= best. Written with
 * selects, not branches: random data makes the comparisons unpredictable. Borders
 * (and rows whose taps leave the input) take ms_maxpool_at itself. */
#define MAXPOOL_TAKE(T, v, off)                                                        \
  do {                                                                                 \
    T v_ = (v);                                                                        \
    int take_ = (best == best) & !(v_ <= best);                                        \
    best = take_ ? v_ : best;                                                          \
    at = take_ ? (off) : at;                                                           \
  } while (0)

/* Float, stride 1 or 2 across: interior outputs [ox, ox1) of a row 4 at a time in SSE2
 * lanes (the same rule lane by lane; tap offsets as int32, checked by the caller).
 * Returns the first output not done (ox1 unless the row has fewer than 4). */
#if defined(__SSE2__)
static inline __m128 maxpool_load4(const float *p, int64_t sw) {
  if (sw == 1) return _mm_loadu_ps(p);
  /* p[0], p[2], p[4], p[6]: never reads past the last lane's tap */
  return _mm_shuffle_ps(_mm_loadu_ps(p), _mm_loadu_ps(p + 3), _MM_SHUFFLE(3, 1, 2, 0));
}

static int64_t maxpool_row_sse(const ms_geom *g, const float *x, float *o, int64_t *a,
                               int64_t base, int64_t ox, int64_t ox1) {
  const int64_t sw = g->sw;
  const __m128i zero = _mm_setzero_si128();
  const int64_t ox0 = ox;
  for (; ox < ox1; ox += 4) {
    /* a last partial block redoes the row's last 4 (same values) when the row has 4 */
    if (ox + 4 > ox1) {
      if (ox1 - ox0 < 4) break;
      ox = ox1 - 4;
    }
    const int64_t t = base + ox * sw;
    const float *r = x + t;
    __m128 best = maxpool_load4(r, sw);
    __m128i off = zero;
    for (int64_t i = 0; i < g->kh; i++)
      for (int64_t j = i == 0; j < g->kw; j++) {
        const int32_t d = (int32_t)(i * g->dh * g->w + j * g->dw);
        const __m128 v = maxpool_load4(r + d, sw);
        const __m128 take = _mm_and_ps(_mm_cmpord_ps(best, best), _mm_cmpnle_ps(v, best));
        best = _mm_or_ps(_mm_and_ps(take, v), _mm_andnot_ps(take, best));
        const __m128i ti = _mm_castps_si128(take);
        off = _mm_or_si128(_mm_and_si128(ti, _mm_set1_epi32(d)), _mm_andnot_si128(ti, off));
      }
    _mm_storeu_ps(o + ox, best);
    _mm_storeu_si128((__m128i *)(a + ox),
                     _mm_add_epi64(_mm_unpacklo_epi32(off, zero), _mm_set_epi64x(t + sw, t)));
    _mm_storeu_si128((__m128i *)(a + ox + 2), _mm_add_epi64(_mm_unpackhi_epi32(off, zero),
                                                            _mm_set_epi64x(t + 3 * sw, t + 2 * sw)));
  }
  return ox;
}
#define MAXPOOL_SSE(T) (sizeof(T) == sizeof(float) && (g->sw == 1 || g->sw == 2))
#define MAXPOOL_ROW_SSE(g, x, o, a, base, ox, ox1) \
  maxpool_row_sse(g, (const float *)(x), (float *)(o), a, base, ox, ox1)
#else
#define MAXPOOL_SSE(T) 0
#define MAXPOOL_ROW_SSE(g, x, o, a, base, ox, ox1) (ox)
#endif

#define MAXPOOL_PLANES(T)                                                              \
  static void maxpool_planes_##T(void *ctx, int64_t lo, int64_t hi) {                  \
    const pool_job *job = ctx;                                                         \
    const ms_geom *g = &job->g;                                                        \
    const int64_t W = g->w, ohw = g->oh * g->ow, sw = g->sw, dw = g->dw, dh = g->dh;   \
    const int64_t kh = g->kh, kw = g->kw;                                              \
    int64_t xlo, xhi, t0, t1;                                                          \
    ms_valid_cols(g, 0, &xlo, &t1);           /* tap 0 starts last */                  \
    ms_valid_cols(g, kw - 1, &t0, &xhi);      /* tap kw-1 ends first */                \
    if (xhi < xlo) xhi = xlo;                                                          \
    const int two = kh == 2 && kw == 2 && dh == 1 && dw == 1;                          \
    /* the furthest tap from tap (0, 0), for the int32 offsets of the SSE2 rows */     \
    const int64_t span = (kh - 1) * dh * W + (kw - 1) * dw;                            \
    const int sse = MAXPOOL_SSE(T) && span < INT32_MAX;                                \
    for (int64_t p = lo; p < hi; p++) {                                                \
      const T *x = (const T *)job->x + p * g->h * W;                                   \
      T *out = (T *)job->out + p * ohw;                                                \
      int64_t *am = job->argmax + p * ohw;                                             \
      for (int64_t oy = 0; oy < g->oh; oy++) {                                         \
        T *o = out + oy * g->ow;                                                       \
        int64_t *a = am + oy * g->ow;                                                  \
        const int64_t y0 = oy * g->sh - g->pt;                                         \
        int64_t ilo = xlo, ihi = xhi;                                                  \
        if (y0 < 0 || y0 + (kh - 1) * dh >= g->h) ilo = ihi = g->ow; /* border row */   \
        for (int64_t ox = 0; ox < ilo; ox++) o[ox] = ms_maxpool_at_##T(g, x, oy, ox, &a[ox]); \
        const int64_t base = y0 * W - g->pl; /* + ox*sw: tap (0, 0) of output ox */    \
        if (sse) ilo = MAXPOOL_ROW_SSE(g, x, o, a, base, ilo, ihi);                    \
        if (two) {                                                                     \
          for (int64_t ox = ilo; ox < ihi; ox++) {                                     \
            const int64_t t = base + ox * sw;                                          \
            const T *r = x + t;                                                        \
            T best = r[0];                                                             \
            int64_t at = t;                                                            \
            MAXPOOL_TAKE(T, r[1], t + 1);                                              \
            MAXPOOL_TAKE(T, r[W], t + W);                                              \
            MAXPOOL_TAKE(T, r[W + 1], t + W + 1);                                      \
            o[ox] = best, a[ox] = at;                                                  \
          }                                                                            \
        } else {                                                                       \
          for (int64_t ox = ilo; ox < ihi; ox++) {                                     \
            const int64_t t = base + ox * sw;                                          \
            T best = x[t];                                                             \
            int64_t at = t;                                                            \
            for (int64_t i = 0; i < kh; i++)                                           \
              for (int64_t j = i == 0; j < kw; j++) {                                  \
                const int64_t off = t + i * dh * W + j * dw;                           \
                MAXPOOL_TAKE(T, x[off], off);                                          \
              }                                                                        \
            o[ox] = best, a[ox] = at;                                                  \
          }                                                                            \
        }                                                                              \
        for (int64_t ox = ihi; ox < g->ow; ox++) o[ox] = ms_maxpool_at_##T(g, x, oy, ox, &a[ox]); \
      }                                                                                \
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
  int bad;            /* set when argmax holds a position outside a plane (skipped) */
} maxback_job;

/* Plane p: zero, then each gradient added at its window's argmax (-1: no element). The
 * argmax values are this module's, still never written outside the plane: one
 * unsigned compare checks both ends, and a bad one is reported after the loop. */
#define MAXPOOL_BACK_PLANES(T)                                                         \
  static void maxpool_back_planes_##T(void *ctx, int64_t lo, int64_t hi) {             \
    maxback_job *job = ctx;                                                            \
    const uint64_t hw = (uint64_t)job->hw;                                             \
    int bad = 0;                                                                       \
    for (int64_t p = lo; p < hi; p++) {                                                \
      T *gin = (T *)job->gin + p * job->hw;                                            \
      const T *gout = (const T *)job->gout + p * job->ohw;                             \
      const int64_t *am = job->argmax + p * job->ohw;                                  \
      memset(gin, 0, sizeof(T) * job->hw);                                             \
      for (int64_t o = 0; o < job->ohw; o++) {                                         \
        const int64_t a = am[o];                                                       \
        if ((uint64_t)a < hw) gin[a] += gout[o];                                       \
        else bad |= a != -1;                                                           \
      }                                                                                \
    }                                                                                  \
    if (bad) __atomic_store_n(&job->bad, 1, __ATOMIC_RELAXED);                         \
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
  maxback_job job = {hw, ohw, (const int64_t *)ms_ptr(argmax), ms_ptr(gout), ms_ptr(gin), 0};
  ms_parallel_for(planes, gin->count + gout->count,
                  gin->dtype_id == MS_FLOAT32 ? maxpool_back_planes_float : maxpool_back_planes_double,
                  &job);
  if (job.bad) {  /* find one for the message */
    const int64_t *am = job.argmax;
    int64_t i = 0;
    while (i < argmax->count - 1 && am[i] >= -1 && am[i] < hw) i++;
    return ms_fail("%s: argument 'argmax' holds %lld, expected -1 or 0..%lld (a position in "
                   "a plane)", fn, (long long)am[i], (long long)hw - 1);
  }
  return 0;
}

/* ---- average pooling ------------------------------------------------------------------ */
typedef struct {
  ms_geom g;
  const void *src;  /* forward: x; backward: gout */
  void *dst;        /* forward: out; backward: gin */
} avg_job;

/* Forward, plane p: each output is its window's sum (in double, taps in row-major
 * order) over the divisor. Interior outputs (the window inside the input: divisor
 * kh*kw or the override) are summed a row of outputs at a time, tap by tap, into
 * double accumulators, the same additions in the same order; borders per output. */
#define AVG_CHUNK 256
#define AVGPOOL_AT(T)                                                                  \
  static inline T avgpool_at_##T(const ms_geom *g, const T *x, int64_t oy, int64_t ox) { \
    int64_t y0, y1, x0, x1;                                                            \
    int64_t div = ms_avg_window(g, oy, ox, &y0, &y1, &x0, &x1);                        \
    double s = 0;                                                                      \
    for (int64_t y = y0; y < y1; y++)                                                  \
      for (int64_t xx = x0; xx < x1; xx++) s += x[y * g->w + xx];                      \
    return div ? (T)(s / (double)div) : (T)0;                                          \
  }

/* The interior columns [*xlo, *xhi) of average pooling (dilation 1) and the divisor *div
 * there; avg_row_inside says whether a row is inside. */
static void avg_interior(const ms_geom *g, int64_t *xlo, int64_t *xhi, double *div) {
  int64_t t0, t1;
  ms_valid_cols(g, 0, xlo, &t1);
  ms_valid_cols(g, g->kw - 1, &t0, xhi);
  if (*xhi < *xlo) *xhi = *xlo;
  *div = (double)(g->divisor ? g->divisor : g->kh * g->kw);
}
static int avg_row_inside(const ms_geom *g, int64_t oy) {
  int64_t ys = oy * g->sh - g->pt;
  return ys >= 0 && ys + g->kh <= g->h;
}

/* Float, stride 1 or 2 across: interior outputs [ox, ox1) of row oy 4 at a time, the
 * sums in two double lanes each (the same additions, division and rounding as the C
 * loop, lane by lane). Returns the first output not done (ox1 unless fewer than 4). */
#if defined(__SSE2__)
static int64_t avgpool_row_sse(const ms_geom *g, const float *x, float *o, int64_t oy,
                               int64_t ox, int64_t ox1, double div) {
  const int64_t sw = g->sw, ox0 = ox;
  const __m128d d = _mm_set1_pd(div);
  for (; ox < ox1; ox += 4) {
    if (ox + 4 > ox1) {   /* as maxpool_row_sse: redo the last 4 */
      if (ox1 - ox0 < 4) break;
      ox = ox1 - 4;
    }
    const float *r = x + (oy * g->sh - g->pt) * g->w + ox * sw - g->pl;
    __m128d lo = _mm_setzero_pd(), hi = _mm_setzero_pd();
    for (int64_t i = 0; i < g->kh; i++)
      for (int64_t j = 0; j < g->kw; j++) {
        const __m128 v = maxpool_load4(r + i * g->w + j, sw);
        lo = _mm_add_pd(lo, _mm_cvtps_pd(v));
        hi = _mm_add_pd(hi, _mm_cvtps_pd(_mm_movehl_ps(v, v)));
      }
    _mm_storeu_ps(o + ox, _mm_movelh_ps(_mm_cvtpd_ps(_mm_div_pd(lo, d)),
                                        _mm_cvtpd_ps(_mm_div_pd(hi, d))));
  }
  return ox;
}
#define AVGPOOL_ROW_SSE(g, x, o, oy, ox, ox1, div) \
  avgpool_row_sse(g, (const float *)(x), (float *)(o), oy, ox, ox1, div)
#else
#define AVGPOOL_ROW_SSE(g, x, o, oy, ox, ox1, div) (ox)
#endif

#define AVGPOOL_PLANES(T)                                                              \
  static void avgpool_planes_##T(void *ctx, int64_t lo, int64_t hi) {                  \
    const avg_job *job = ctx;                                                          \
    const ms_geom *g = &job->g;                                                        \
    const int64_t W = g->w, sw = g->sw;                                                \
    int64_t xlo, xhi;                                                                  \
    double div;                                                                        \
    avg_interior(g, &xlo, &xhi, &div);                                                 \
    const int sse = MAXPOOL_SSE(T);                                                    \
    double acc[AVG_CHUNK];                                                             \
    for (int64_t p = lo; p < hi; p++) {                                                \
      const T *x = (const T *)job->src + p * g->h * W;                                 \
      T *out = (T *)job->dst + p * g->oh * g->ow;                                      \
      for (int64_t oy = 0; oy < g->oh; oy++) {                                         \
        T *o = out + oy * g->ow;                                                       \
        int64_t ilo = xlo, ihi = xhi;                                                  \
        if (!avg_row_inside(g, oy)) ilo = ihi = g->ow;                                 \
        for (int64_t ox = 0; ox < ilo; ox++) o[ox] = avgpool_at_##T(g, x, oy, ox);     \
        if (sse) ilo = AVGPOOL_ROW_SSE(g, x, o, oy, ilo, ihi, div);                    \
        for (int64_t c0 = ilo; c0 < ihi; c0 += AVG_CHUNK) {                            \
          const int64_t n = ihi - c0 < AVG_CHUNK ? ihi - c0 : AVG_CHUNK;               \
          for (int64_t q = 0; q < n; q++) acc[q] = 0;                                  \
          for (int64_t i = 0; i < g->kh; i++)                                          \
            for (int64_t j = 0; j < g->kw; j++) {                                      \
              const T *r = x + (oy * g->sh - g->pt + i) * W + c0 * sw - g->pl + j;     \
              if (sw == 1)                                                             \
                for (int64_t q = 0; q < n; q++) acc[q] += r[q];                        \
              else                                                                     \
                for (int64_t q = 0; q < n; q++) acc[q] += r[q * sw];                   \
            }                                                                          \
          for (int64_t q = 0; q < n; q++) o[c0 + q] = (T)(acc[q] / div);               \
        }                                                                              \
        for (int64_t ox = ihi; ox < g->ow; ox++) o[ox] = avgpool_at_##T(g, x, oy, ox); \
      }                                                                                \
    }                                                                                  \
  }

/* Backward, plane p: each output's gradient over the divisor, added to its window, in
 * output order. Interior outputs a row at a time: taps j in descending order, so that
 * each input element still receives its additions in ascending ox (bit for bit the
 * per-output order, windows overlapping or not); left borders before, right after. */
#define AVGPOOL_BACK_AT(T)                                                             \
  static inline void avgpool_back_at_##T(const ms_geom *g, T *gin, T go, int64_t oy,   \
                                         int64_t ox) {                                 \
    int64_t y0, y1, x0, x1;                                                            \
    int64_t div = ms_avg_window(g, oy, ox, &y0, &y1, &x0, &x1);                        \
    if (!div) return;                                                                  \
    T v = (T)((double)go / (double)div);                                               \
    for (int64_t y = y0; y < y1; y++)                                                  \
      for (int64_t xx = x0; xx < x1; xx++) gin[y * g->w + xx] += v;                    \
  }

#define AVGPOOL_BACK_PLANES(T)                                                         \
  static void avgpool_back_planes_##T(void *ctx, int64_t lo, int64_t hi) {             \
    const avg_job *job = ctx;                                                          \
    const ms_geom *g = &job->g;                                                        \
    const int64_t W = g->w, sw = g->sw;                                                \
    int64_t xlo, xhi;                                                                  \
    double div;                                                                        \
    avg_interior(g, &xlo, &xhi, &div);                                                 \
    T v[AVG_CHUNK];                                                                    \
    for (int64_t p = lo; p < hi; p++) {                                                \
      const T *gout = (const T *)job->src + p * g->oh * g->ow;                         \
      T *gin = (T *)job->dst + p * g->h * W;                                           \
      memset(gin, 0, sizeof(T) * g->h * W);                                            \
      for (int64_t oy = 0; oy < g->oh; oy++) {                                         \
        const T *go = gout + oy * g->ow;                                               \
        int64_t ilo = xlo, ihi = xhi;                                                  \
        if (!avg_row_inside(g, oy)) ilo = ihi = g->ow;                                 \
        for (int64_t ox = 0; ox < ilo; ox++) avgpool_back_at_##T(g, gin, go[ox], oy, ox); \
        for (int64_t c0 = ilo; c0 < ihi; c0 += AVG_CHUNK) {                            \
          const int64_t n = ihi - c0 < AVG_CHUNK ? ihi - c0 : AVG_CHUNK;               \
          for (int64_t q = 0; q < n; q++) v[q] = (T)((double)go[c0 + q] / div);        \
          for (int64_t i = 0; i < g->kh; i++)                                          \
            for (int64_t j = g->kw - 1; j >= 0; j--) {                                 \
              T *r = gin + (oy * g->sh - g->pt + i) * W + c0 * sw - g->pl + j;         \
              if (sw == 1)                                                             \
                for (int64_t q = 0; q < n; q++) r[q] += v[q];                          \
              else                                                                     \
                for (int64_t q = 0; q < n; q++) r[q * sw] += v[q];                     \
            }                                                                          \
        }                                                                              \
        for (int64_t ox = ihi; ox < g->ow; ox++) avgpool_back_at_##T(g, gin, go[ox], oy, ox); \
      }                                                                                \
    }                                                                                  \
  }
/* defines avgpool_planes_float, avgpool_planes_double, avgpool_back_planes_float,
 * avgpool_back_planes_double (and their per-output helpers) */
AVGPOOL_AT(float)
AVGPOOL_AT(double)
AVGPOOL_BACK_AT(float)
AVGPOOL_BACK_AT(double)
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
