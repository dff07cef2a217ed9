/* optim/adam.h — Adam and AdamW with amsgrad and maximize (torch.optim.Adam, AdamW), the
 * rule shared by optim.c's loops and optim.cu's kernel (contract: optim/sgd.h).
 * State: s[0] exp_avg, s[1] exp_avg_sq, s[2] max_exp_avg_sq (amsgrad only).
 * ATen roundings: x.addcmul_(y, y, value=s) -> fma(s * y, y, x);
 * x.addcdiv_(y, z, value=s) -> x + s * y / z. */
#ifndef MS_OPTIM_ADAM_H
#define MS_OPTIM_ADAM_H
#include "moonstep.h"

/* Adam: l2 = weight_decay, decay = 1; AdamW: l2 = 0, decay = 1 - lr weight_decay. */
typedef struct {
  double l2, decay;
  double b1, omb1;   /* beta1, 1 - beta1 */
  double b2, omb2;   /* beta2, 1 - beta2 */
  double bc2_sqrt;   /* sqrt(1 - beta2^step) */
  double eps;
  double neg_step;   /* -lr / (1 - beta1^step) */
  int32_t amsgrad, maximize;
} ms_adam_consts;

static const char *const adam_state_names[] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};

#ifndef __CUDACC__
static inline int adam_consts(const char *fn, const ms_adam_hyper *h, int64_t step,
                              ms_adam_consts *k) {
  MS_TRY(ms_check_hyper(fn, "lr", h->lr, 0, INFINITY));
  MS_TRY(ms_check_hyper(fn, "beta1", h->beta1, 0, 1));
  MS_TRY(ms_check_hyper(fn, "beta2", h->beta2, 0, 1));
  if (h->beta1 >= 1 || h->beta2 >= 1)
    return ms_fail("%s: betas are (%g, %g), expected each in [0, 1)", fn, h->beta1, h->beta2);
  MS_TRY(ms_check_hyper(fn, "weight_decay", h->weight_decay, 0, INFINITY));
  if (!(h->eps > 0 && h->eps < INFINITY))
    return ms_fail("%s: eps is %g, expected a finite number > 0", fn, h->eps);
  /* As torch.optim.Adam: bias corrections, step size and 1 - lr wd in double. */
  double bc1 = 1 - pow(h->beta1, (double)step), bc2 = 1 - pow(h->beta2, (double)step);
  k->l2 = h->decoupled ? 0.0 : h->weight_decay;
  k->decay = h->decoupled ? 1 - h->lr * h->weight_decay : 1.0;
  k->b1 = h->beta1, k->omb1 = 1 - h->beta1, k->b2 = h->beta2, k->omb2 = 1 - h->beta2;
  k->bc2_sqrt = sqrt(bc2), k->eps = h->eps, k->neg_step = -(h->lr / bc1);
  k->amsgrad = h->amsgrad != 0, k->maximize = h->maximize != 0;
  return 0;
}
#endif
static inline unsigned adam_needs(const ms_adam_hyper *h) { return h->amsgrad ? 7u : 3u; }

/* CPU loops with the loop-invariant choices (L2 weight decay, amsgrad, maximize) hoisted:
 * one branch-free, vectorised loop per combination (used by optim.c). */
#define ADAM_CASE(L, A, X)                                                               \
  case (L) | (A) << 1 | (X) << 2:                                                        \
    OPT_NAME(adam_run_)(q, k, lo, hi, L, A, X);                                          \
    break;
#endif /* MS_OPTIM_ADAM_H */

#ifdef OPT_T
typedef struct {
  OPT_T l2, decay, b1, omb1, b2, omb2, bc2_sqrt, eps, neg_step;
  int32_t amsgrad, maximize;
} OPT_NAME(adam_k_);

OPT_FN OPT_NAME(adam_k_) OPT_NAME(adam_k_of_)(const ms_adam_consts *k) {
  OPT_NAME(adam_k_) c = {(OPT_T)k->l2,   (OPT_T)k->decay, (OPT_T)k->b1,
                         (OPT_T)k->omb1, (OPT_T)k->b2,    (OPT_T)k->omb2,
                         (OPT_T)k->bc2_sqrt, (OPT_T)k->eps, (OPT_T)k->neg_step,
                         k->amsgrad, k->maximize};
  return c;
}

/* The rule, its choices as arguments: l2 (k->l2 != 0), ams (amsgrad), max (maximize). */
MS_OPT_ALWAYS_INLINE OPT_FN void OPT_NAME(adam_apply_)(int64_t i,
                                                         const OPT_NAME(opt_ptrs_) *q,
                                                         const OPT_NAME(adam_k_) *k, int l2,
                                                         int ams, int max) {
  OPT_T g = max ? -q->g[i] : q->g[i];
  OPT_T x = q->p[i] * k->decay;                              /* AdamW: param.mul_(1 - lr wd) */
  OPT_T d = l2 ? OPT_FMA(x, k->l2, g) : g;                   /* grad.add(param, alpha=wd) */
  OPT_T m = OPT_FMA(d, k->omb1, q->s[0][i] * k->b1);         /* exp_avg */
  OPT_T v = OPT_FMA(k->omb2 * d, d, q->s[1][i] * k->b2);     /* exp_avg_sq */
  q->s[0][i] = m;
  q->s[1][i] = v;
  if (ams) {                                                 /* torch.maximum(vmax, v) */
    OPT_T vmax = q->s[2][i];
    v = vmax > v || vmax != vmax ? vmax : v;
    q->s[2][i] = v;
  }
  OPT_T denom = OPT_SQRT(v) / k->bc2_sqrt + k->eps;          /* (v.sqrt() / bc2_sqrt).add_(eps) */
  q->p[i] = x + k->neg_step * m / denom;                     /* addcdiv_(m, denom, -step) */
}

OPT_FN void OPT_NAME(adam_elem_)(int64_t i, const OPT_NAME(opt_ptrs_) *q,
                                 const OPT_NAME(adam_k_) *k) {
  OPT_NAME(adam_apply_)(i, q, k, k->l2 != 0, k->amsgrad, k->maximize);
}

#ifndef __CUDACC__
/* CPU: elements [lo, hi) with the choices given as literals (one loop per combination). */
MS_OPT_ALWAYS_INLINE static inline void OPT_NAME(adam_run_)(const OPT_NAME(opt_ptrs_) *qp,
                                                              const OPT_NAME(adam_k_) *kp,
                                                              int64_t lo, int64_t hi, int l2,
                                                              int ams, int max) {
  const OPT_NAME(opt_ptrs_) q = *qp;
  const OPT_NAME(adam_k_) k = *kp;
  for (int64_t i = lo; i < hi; i++) OPT_NAME(adam_apply_)(i, &q, &k, l2, ams, max);
}

/* CPU: the loop for k's choices (optim.c's span; compiled once per CPU target there). */
MS_OPT_ALWAYS_INLINE static inline void OPT_NAME(adam_loop_)(const OPT_NAME(opt_ptrs_) *q,
                                                               const OPT_NAME(adam_k_) *k,
                                                               int64_t lo, int64_t hi) {
  switch ((k->l2 != 0) | (k->amsgrad != 0) << 1 | (k->maximize != 0) << 2) {
    ADAM_CASE(0, 0, 0) ADAM_CASE(1, 0, 0) ADAM_CASE(0, 1, 0) ADAM_CASE(1, 1, 0)
    ADAM_CASE(0, 0, 1) ADAM_CASE(1, 0, 1) ADAM_CASE(0, 1, 1) ADAM_CASE(1, 1, 1)
    default: break;   /* every code is listed above */
  }
}
#endif
#endif /* OPT_T */
