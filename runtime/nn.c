/* nn.c — softmax over the last dim, for float and double (CPU gradient checks run in
 * double); kernels/nn.cu holds the CUDA twin. Convolution lowering is in conv.c,
 * pooling in pool.c. */
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
