/* conv_layout.c — the convolution GEMM's output and gradient between its layout [O, N*L]
 * (L = OH*OW) and the batch's [N, O, L], one pass each, CPU only (the GPU composes copy_,
 * add_ and sum): ms_conv2d_output (transpose + bias) and ms_conv2d_grad_output (transpose
 * + bias gradient). Used by lua/moonstep/nn/Conv2d.lua. */
#include "internal.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ---- the GEMM's output and gradient in the batch layout ---------------------------------
 * Forward: y [N, O, L] = Y [O, N*L] read as [O, N, L] and transposed, plus bias[o]; one
 * pass. Backward: G [O, N*L] = g [N, O, L] transposed, and gbias[o] += the sum of its
 * row; one pass (each o a work item: its G row and its bias entry are its own). */
typedef struct {
  int64_t n, o, l;
  const void *src, *bias;
  void *dst, *gbias;
} layout_job;

#define CONV_OUT_ITEMS(T)                                                              \
  static void conv_out_items_##T(void *ctx, int64_t lo, int64_t hi) {                  \
    const layout_job *job = ctx;                                                       \
    const int64_t L = job->l;                                                          \
    for (int64_t item = lo; item < hi; item++) {    /* item = n*O + o: y's row order */ \
      const int64_t n = item / job->o, o = item % job->o;                              \
      const T *src = (const T *)job->src + (o * job->n + n) * L;                       \
      T *dst = (T *)job->dst + item * L;                                               \
      const T b = job->bias ? ((const T *)job->bias)[o] : (T)0;                        \
      for (int64_t l = 0; l < L; l++) dst[l] = src[l] + b;                             \
    }                                                                                  \
  }

/* One row: dst = src, and its sum in float64 (not g:sum's order: a float64 bias gradient
 * can differ from it in the last bits) into 4 partial sums
 * (float: SSE2, 4 floats widened to 2 + 2 doubles a step; the tail in C). */
static double grad_row_float(float *restrict dst, const float *restrict src, int64_t L) {
  int64_t l = 0;
  double sum = 0;
#if defined(__SSE2__)
  __m128d a = _mm_setzero_pd(), b = _mm_setzero_pd();
  for (; l + 4 <= L; l += 4) {
    const __m128 v = _mm_loadu_ps(src + l);
    _mm_storeu_ps(dst + l, v);
    a = _mm_add_pd(a, _mm_cvtps_pd(v));
    b = _mm_add_pd(b, _mm_cvtps_pd(_mm_movehl_ps(v, v)));
  }
  double part[4];
  _mm_storeu_pd(part, a);
  _mm_storeu_pd(part + 2, b);
  sum = (part[0] + part[1]) + (part[2] + part[3]);
#endif
  for (; l < L; l++) dst[l] = src[l], sum += src[l];
  return sum;
}

static double grad_row_double(double *restrict dst, const double *restrict src, int64_t L) {
  double part[4] = {0};
  int64_t l = 0;
  for (; l + 4 <= L; l += 4)
    for (int k = 0; k < 4; k++) dst[l + k] = src[l + k], part[k] += src[l + k];
  for (; l < L; l++) dst[l] = src[l], part[0] += src[l];
  return (part[0] + part[1]) + (part[2] + part[3]);
}

#define CONV_GRAD_ITEMS(T)                                                             \
  static void conv_grad_items_##T(void *ctx, int64_t lo, int64_t hi) {                 \
    const layout_job *job = ctx;                                                       \
    const int64_t L = job->l;                                                          \
    for (int64_t o = lo; o < hi; o++) {                                                \
      double total = 0;                                                                \
      for (int64_t n = 0; n < job->n; n++)                                             \
        total += grad_row_##T((T *)job->dst + (o * job->n + n) * L,                    \
                              (const T *)job->src + (n * job->o + o) * L, L);          \
      if (job->gbias) ((T *)job->gbias)[o] += (T)total;                                \
    }                                                                                  \
  }
/* defines conv_out_items_float, conv_out_items_double, conv_grad_items_float,
 * conv_grad_items_double */
CONV_OUT_ITEMS(float)
CONV_OUT_ITEMS(double)
CONV_GRAD_ITEMS(float)
CONV_GRAD_ITEMS(double)

/* batch [N, O, L] and gemm [O, N*L] on the CPU, bias NULL or [O], all of one dtype. */
static int check_layout(const char *fn, const char *bname, const ms_tensor *batch,
                        const char *gname, const ms_tensor *gemm, const char *biasname,
                        const ms_tensor *bias) {
  MS_TRY(ms_check_float_pair(fn, bname, batch, gname, gemm));
  if (batch->ndim != 3)
    return ms_fail("%s: argument '%s' has %d dims, expected 3 [N, O, L]", fn, bname, batch->ndim);
  int64_t want[2] = {batch->sizes[1], batch->sizes[0] * batch->sizes[2]};
  MS_TRY(ms_check_shape(fn, gname, gemm, 2, want));
  if (ms_device_of(batch) != MS_CPU)
    return ms_fail("%s: argument '%s' is on %s, expected the CPU (no CUDA path: use copy_ and "
                   "add_ there)", fn, bname, ms_device_name(ms_device_of(batch)));
  MS_TRY(ms_check_disjoint(fn, bname, batch, gname, gemm));
  if (bias) {
    MS_TRY(ms_check_same(fn, biasname, bias, bname, batch));
    MS_TRY(ms_check_shape(fn, biasname, bias, 1, &batch->sizes[1]));
    if (!ms_tensor_is_contiguous(bias))
      return ms_fail("%s: argument '%s' is not contiguous, expected a contiguous tensor", fn,
                     biasname);
    MS_TRY(ms_check_disjoint(fn, biasname, bias, bname, batch));
    MS_TRY(ms_check_disjoint(fn, biasname, bias, gname, gemm));
  }
  return 0;
}

int ms_conv2d_output(ms_tensor *y, const ms_tensor *Y, const ms_tensor *bias) {
  static const char fn[] = "conv2d_output";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(check_layout(fn, "y", y, "Y", Y, "bias", bias));
  if (y->count == 0) return 0;
  layout_job job = {y->sizes[0], y->sizes[1], y->sizes[2], ms_ptr(Y), bias ? ms_ptr(bias) : NULL,
                    ms_ptr(y), NULL};
  ms_parallel_for(job.n * job.o, 2 * y->count,
                  y->dtype_id == MS_FLOAT32 ? conv_out_items_float : conv_out_items_double, &job);
  return 0;
}

int ms_conv2d_grad_output(ms_tensor *G, ms_tensor *gbias, const ms_tensor *g) {
  static const char fn[] = "conv2d_grad_output";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(check_layout(fn, "g", g, "G", G, "grad_bias", gbias));
  if (g->count == 0) return 0;
  layout_job job = {g->sizes[0], g->sizes[1], g->sizes[2], ms_ptr(g), NULL, ms_ptr(G),
                    gbias ? ms_ptr(gbias) : NULL};
  ms_parallel_for(job.o, 2 * g->count,
                  g->dtype_id == MS_FLOAT32 ? conv_grad_items_float : conv_grad_items_double, &job);
  return 0;
}
