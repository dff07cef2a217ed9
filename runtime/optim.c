/* optim.c — fused optimizer steps over the parameter arena (kernels/optim.cu mirrors
 * them). Each is one pass reading and writing every array once; the per-element
 * update is written out in the header (include/moonstep.h). */
#include "internal.h"
#include <math.h>

/* All operands: float, contiguous, same shape, dtype and device as param. */
static int check_state(const char *fn, const ms_tensor *param, const char *const *names,
                       const ms_tensor *const *ts, int n) {
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_float(fn, "param", param));
  if (!ms_tensor_is_contiguous(param))
    return ms_fail("%s: argument 'param' is not contiguous, expected the flat arena", fn);
  for (int k = 0; k < n; k++) {
    MS_TRY(ms_check_same(fn, names[k], ts[k], "param", param));
    MS_TRY(ms_check_shape(fn, names[k], ts[k], param->ndim, param->sizes));
    if (!ms_tensor_is_contiguous(ts[k]))
      return ms_fail("%s: argument '%s' is not contiguous, expected a flat tensor", fn, names[k]);
  }
  return 0;
}

typedef struct {
  void *p, *buf;
  const void *g;
  double lr, mu, damp, wd;
  int nesterov, first;
} sgd_job;

#define SGD_SHARE(T)                                                                   \
  static void sgd_share_##T(void *ctx, int64_t lo, int64_t hi) {                       \
    const sgd_job *j = ctx;                                                            \
    T *p = j->p, *buf = j->buf;                                                        \
    const T *g = j->g;                                                                 \
    const T lr = (T)j->lr, mu = (T)j->mu, damp = (T)(1 - j->damp), wd = (T)j->wd;      \
    for (int64_t i = lo; i < hi; i++) {                                                \
      T d = g[i] + wd * p[i];                                                          \
      if (buf) {                                                                       \
        T b = j->first ? d : mu * buf[i] + damp * d;                                   \
        buf[i] = b;                                                                    \
        d = j->nesterov ? d + mu * b : b;                                              \
      }                                                                                \
      p[i] -= lr * d;                                                                  \
    }                                                                                  \
  }
SGD_SHARE(float)
SGD_SHARE(double)

int ms_sgd_step(ms_tensor *param, const ms_tensor *grad, ms_tensor *buf, double lr,
                double momentum, double dampening, double weight_decay, int32_t nesterov,
                int32_t first) {
  static const char fn[] = "sgd_step";
  const char *names[2] = {"grad", "momentum_buffer"};
  const ms_tensor *ts[2] = {grad, buf};
  if (momentum != 0 && !buf)
    return ms_fail("%s: momentum is %g but no momentum buffer was given", fn, momentum);
  MS_TRY(check_state(fn, param, names, ts, buf ? 2 : 1));
  if (momentum == 0) buf = NULL;
  int64_t n = param->count;
  if (ms_device_of(param) == MS_CUDA)
    return ms_cuda_sgd((float *)ms_ptr(param), (const float *)ms_ptr(grad),
                       buf ? (float *)ms_ptr(buf) : NULL, n, (float)lr, (float)momentum,
                       (float)dampening, (float)weight_decay, nesterov, first);
  sgd_job job = {ms_ptr(param), buf ? ms_ptr(buf) : NULL, ms_ptr(grad), lr, momentum,
                 dampening, weight_decay, nesterov, first};
  ms_parallel_for(n, n * 3, param->dtype_id == MS_FLOAT32 ? sgd_share_float : sgd_share_double,
                  &job);
  return 0;
}

typedef struct {
  void *p, *m, *v;
  const void *g;
  double lr, b1, b2, eps, wd, bc1, bc2;
  int decoupled;
} adam_job;

#define ADAM_SHARE(T)                                                                  \
  static void adam_share_##T(void *ctx, int64_t lo, int64_t hi) {                      \
    const adam_job *j = ctx;                                                           \
    T *p = j->p, *m = j->m, *v = j->v;                                                 \
    const T *g = j->g;                                                                 \
    const T b1 = (T)j->b1, b2 = (T)j->b2, eps = (T)j->eps, wd = (T)j->wd;              \
    const T step = (T)(j->lr / j->bc1), rbc2 = (T)(1 / sqrt(j->bc2));                  \
    const T decay = j->decoupled ? (T)(1 - j->lr * j->wd) : (T)1;                      \
    const T l2 = j->decoupled ? (T)0 : wd;                                             \
    for (int64_t i = lo; i < hi; i++) {                                                \
      T d = g[i] + l2 * p[i];                                                          \
      T mi = b1 * m[i] + (1 - b1) * d;                                                 \
      T vi = b2 * v[i] + (1 - b2) * d * d;                                             \
      m[i] = mi, v[i] = vi;                                                            \
      p[i] = p[i] * decay - step * mi / (sqrt(vi) * rbc2 + eps);                       \
    }                                                                                  \
  }
ADAM_SHARE(float)
ADAM_SHARE(double)

int ms_adam_step(ms_tensor *param, const ms_tensor *grad, ms_tensor *m, ms_tensor *v,
                 double lr, double beta1, double beta2, double eps, double weight_decay,
                 int32_t decoupled, int64_t step) {
  static const char fn[] = "adam_step";
  const char *names[3] = {"grad", "exp_avg", "exp_avg_sq"};
  const ms_tensor *ts[3] = {grad, m, v};
  MS_TRY(check_state(fn, param, names, ts, 3));
  if (step < 1) return ms_fail("%s: step is %lld, expected >= 1", fn, (long long)step);
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1))
    return ms_fail("%s: betas are (%g, %g), expected each in [0, 1)", fn, beta1, beta2);
  double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);
  int64_t n = param->count;
  if (ms_device_of(param) == MS_CUDA)
    return ms_cuda_adam((float *)ms_ptr(param), (const float *)ms_ptr(grad), (float *)ms_ptr(m),
                        (float *)ms_ptr(v), n, (float)lr, (float)beta1, (float)beta2,
                        (float)eps, (float)weight_decay, decoupled, (float)bc1, (float)bc2);
  adam_job job = {ms_ptr(param), ms_ptr(m), ms_ptr(v), ms_ptr(grad), lr, beta1, beta2, eps,
                  weight_decay, bc1, bc2, decoupled};
  ms_parallel_for(n, n * 8, param->dtype_id == MS_FLOAT32 ? adam_share_float : adam_share_double,
                  &job);
  return 0;
}
