/* optim.c — fused optimizer steps over the parameter arena (kernels/optim.cu mirrors
 * them). Each is one pass reading and writing every array once. The per-element rules
 * live in optim_impl.h, shared with the CUDA kernels; here the host computes the derived
 * constants of a step in double. */
#include "internal.h"
#include "optim_impl.h"
#include <math.h>

#define OPT_FN static inline
#define OPT_T float
#define OPT_SFX f32
#define OPT_FMA fmaf
#define OPT_SQRT sqrtf
#include "optim_impl.h"
#undef OPT_T
#undef OPT_SFX
#undef OPT_FMA
#undef OPT_SQRT
#define OPT_T double
#define OPT_SFX f64
#define OPT_FMA fma
#define OPT_SQRT sqrt
#include "optim_impl.h"
#undef OPT_T
#undef OPT_SFX
#undef OPT_FMA
#undef OPT_SQRT

/* The rules use fma() to round like ATen's fused kernels. Each loop is compiled twice,
 * for any x86-64 (fma() is a libm call there) and for CPUs with FMA instructions (one
 * instruction, vectorised); the loader picks one. Same results either way. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define OPT_CLONES __attribute__((target_clones("default", "fma")))
#else
#define OPT_CLONES
#endif

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
  const ms_sgd_consts *k;
} sgd_job;

#define SGD_SHARE(T, SFX)                                                              \
  OPT_CLONES static void sgd_share_##SFX(void *ctx, int64_t lo, int64_t hi) {          \
    const sgd_job *j = ctx;                                                            \
    T *p = j->p, *buf = j->buf;                                                        \
    const T *g = j->g;                                                                 \
    const sgd_k_##SFX k = sgd_k_of_##SFX(j->k);                                        \
    if (buf)                                                                           \
      for (int64_t i = lo; i < hi; i++) sgd_elem_##SFX(p + i, buf + i, g[i], &k);      \
    else                                                                               \
      for (int64_t i = lo; i < hi; i++) sgd_elem_##SFX(p + i, NULL, g[i], &k);         \
  }
SGD_SHARE(float, f32)
SGD_SHARE(double, f64)

int ms_sgd_step(ms_tensor *param, const ms_tensor *grad, ms_tensor *buf, double lr,
                double momentum, double dampening, double weight_decay, int32_t nesterov,
                int32_t first) {
  static const char fn[] = "sgd_step";
  const char *names[2] = {"grad", "momentum_buffer"};
  const ms_tensor *ts[2] = {grad, buf};
  if (!(lr >= 0 && lr < INFINITY && momentum >= 0 && momentum < INFINITY &&
        dampening >= 0 && dampening <= 1 && weight_decay >= 0 && weight_decay < INFINITY))
    return ms_fail("%s: lr %g, momentum %g, dampening %g, weight_decay %g: expected finite "
                   "values >= 0, dampening <= 1", fn, lr, momentum, dampening, weight_decay);
  if (nesterov && (momentum <= 0 || dampening != 0))
    return ms_fail("%s: nesterov needs momentum > 0 and dampening = 0, got %g and %g", fn,
                   momentum, dampening);
  if (momentum != 0 && !buf)
    return ms_fail("%s: momentum is %g but no momentum buffer was given", fn, momentum);
  MS_TRY(check_state(fn, param, names, ts, buf ? 2 : 1));
  if (momentum == 0) buf = NULL;
  const ms_sgd_consts k = {weight_decay, momentum, 1.0 - dampening, -lr, nesterov != 0,
                           first != 0};
  int64_t n = param->count;
  if (ms_device_of(param) == MS_CUDA)
    return ms_cuda_sgd_step((float *)ms_ptr(param), (const float *)ms_ptr(grad),
                            buf ? (float *)ms_ptr(buf) : NULL, n, &k);
  sgd_job job = {ms_ptr(param), buf ? ms_ptr(buf) : NULL, ms_ptr(grad), &k};
  ms_parallel_for(n, n * 3, param->dtype_id == MS_FLOAT32 ? sgd_share_f32 : sgd_share_f64,
                  &job);
  return 0;
}

typedef struct {
  void *p, *m, *v;
  const void *g;
  const ms_adam_consts *k;
} adam_job;

#define ADAM_SHARE(T, SFX)                                                             \
  OPT_CLONES static void adam_share_##SFX(void *ctx, int64_t lo, int64_t hi) {         \
    const adam_job *j = ctx;                                                           \
    T *p = j->p, *m = j->m, *v = j->v;                                                 \
    const T *g = j->g;                                                                 \
    const adam_k_##SFX k = adam_k_of_##SFX(j->k);                                      \
    for (int64_t i = lo; i < hi; i++) adam_elem_##SFX(p + i, m + i, v + i, g[i], &k);  \
  }
ADAM_SHARE(float, f32)
ADAM_SHARE(double, f64)

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
  if (!(lr >= 0 && lr < INFINITY && eps > 0 && eps < INFINITY && weight_decay >= 0 &&
        weight_decay < INFINITY))
    return ms_fail("%s: lr %g, eps %g, weight_decay %g: expected finite values, lr >= 0, "
                   "eps > 0, weight_decay >= 0", fn, lr, eps, weight_decay);
  /* As torch.optim.Adam: bias corrections, step size and 1 - lr wd in double. */
  double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);
  const ms_adam_consts k = {
      .l2 = decoupled ? 0.0 : weight_decay,
      .decay = decoupled ? 1 - lr * weight_decay : 1.0,
      .b1 = beta1, .omb1 = 1 - beta1, .b2 = beta2, .omb2 = 1 - beta2,
      .bc2_sqrt = sqrt(bc2), .eps = eps, .neg_step = -(lr / bc1)};
  int64_t n = param->count;
  if (ms_device_of(param) == MS_CUDA)
    return ms_cuda_adam_step((float *)ms_ptr(param), (const float *)ms_ptr(grad),
                             (float *)ms_ptr(m), (float *)ms_ptr(v), n, &k);
  adam_job job = {ms_ptr(param), ms_ptr(m), ms_ptr(v), ms_ptr(grad), &k};
  ms_parallel_for(n, n * 8, param->dtype_id == MS_FLOAT32 ? adam_share_f32 : adam_share_f64,
                  &job);
  return 0;
}
