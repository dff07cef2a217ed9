/* optim/rmsprop.h — RMSprop (torch.optim.RMSprop: alpha, eps, weight_decay, momentum,
 * centered, maximize), the rule shared by optim.c's loops and optim.cu's kernel
 * (contract: optim/sgd.h).
 *
 *   g = maximize ? -g : g;  g += wd p
 *   v = alpha v + (1 - alpha) g^2
 *   centered: a = alpha a + (1 - alpha) g, avg = sqrt(v - a^2) + eps; else avg = sqrt(v) + eps
 *   momentum > 0: buf = momentum buf + g / avg, p -= lr buf;  else p -= lr g / avg
 *
 * ATen roundings (PyTorch 1.13's single-tensor step, the fixtures' reference):
 * x.add(y, alpha=a) -> fma(y, a, x); x.mul_(b).addcmul_(y, y, value=s) -> fma(s * y, y, x * b);
 * x.mul_(b).add_(y, alpha=a) -> fma(y, a, x * b); x.addcmul(y, y, value=-1) -> fma(-y, y, x);
 * x.mul_(b).addcdiv_(y, z) -> x * b + y / z; x.addcdiv_(y, z, value=s) -> x + s * y / z.
 * (PyTorch >= 2.0 updates the centered average with lerp_: same value, other roundings.)
 * State: s[0] square_avg, s[1] momentum_buffer (momentum > 0), s[2] grad_avg (centered). */
#ifndef MS_OPTIM_RMSPROP_H
#define MS_OPTIM_RMSPROP_H
#include "moonstep.h"

typedef struct {
  double wd, alpha, oma, eps, mu, neg_lr;   /* weight_decay, alpha, 1 - alpha, eps,
                                               momentum, -lr */
  int32_t centered, maximize;
} ms_rmsprop_consts;

static const char *const rmsprop_state_names[] = {"square_avg", "momentum_buffer", "grad_avg"};

#ifndef __CUDACC__
static inline int rmsprop_consts(const char *fn, const ms_rmsprop_hyper *h, int64_t step,
                                 ms_rmsprop_consts *k) {
  (void)step;
  MS_TRY(ms_check_hyper(fn, "lr", h->lr, 0, INFINITY));
  MS_TRY(ms_check_hyper(fn, "alpha", h->alpha, 0, 1));
  MS_TRY(ms_check_hyper(fn, "eps", h->eps, 0, INFINITY));
  MS_TRY(ms_check_hyper(fn, "weight_decay", h->weight_decay, 0, INFINITY));
  MS_TRY(ms_check_hyper(fn, "momentum", h->momentum, 0, INFINITY));
  k->wd = h->weight_decay, k->alpha = h->alpha, k->oma = 1 - h->alpha, k->eps = h->eps;
  k->mu = h->momentum, k->neg_lr = -h->lr;
  k->centered = h->centered != 0, k->maximize = h->maximize != 0;
  return 0;
}
#endif
static inline unsigned rmsprop_needs(const ms_rmsprop_hyper *h) {
  return 1u | (h->momentum > 0 ? 2u : 0u) | (h->centered ? 4u : 0u);
}
/* The eight loops with maximize = X / 8 (rmsprop_loop_SFX's switch). */
#define RMSPROP_CASE(C)                                                                  \
  case (C):                                                                              \
    OPT_NAME(rmsprop_run_)(q, k, lo, hi, (C) & 1, (C) >> 1 & 1, (C) >> 2 & 1, (C) >> 3);  \
    break;
#define RMSPROP_CASES(X)                                                                 \
  RMSPROP_CASE((X) + 0) RMSPROP_CASE((X) + 1) RMSPROP_CASE((X) + 2) RMSPROP_CASE((X) + 3) \
  RMSPROP_CASE((X) + 4) RMSPROP_CASE((X) + 5) RMSPROP_CASE((X) + 6) RMSPROP_CASE((X) + 7)
#endif /* MS_OPTIM_RMSPROP_H */

#ifdef OPT_T
/* buf * momentum + grad / avg is two roundings in ATen; nvcc (--fmad=true, its default)
 * would fuse the product into the sum: __fmul_rn is never contracted. */
#ifndef RMSPROP_MUL
#ifdef __CUDA_ARCH__
#define RMSPROP_MUL(a, b) __fmul_rn(a, b)
#else
#define RMSPROP_MUL(a, b) ((a) * (b))
#endif
#endif
typedef struct {
  OPT_T wd, alpha, oma, eps, mu, neg_lr;
  int32_t centered, maximize;
} OPT_NAME(rmsprop_k_);

OPT_FN OPT_NAME(rmsprop_k_) OPT_NAME(rmsprop_k_of_)(const ms_rmsprop_consts *k) {
  OPT_NAME(rmsprop_k_) c = {(OPT_T)k->wd, (OPT_T)k->alpha, (OPT_T)k->oma, (OPT_T)k->eps,
                            (OPT_T)k->mu, (OPT_T)k->neg_lr, k->centered, k->maximize};
  return c;
}

/* The rule, its choices as arguments: wd (weight_decay != 0), cen (centered), mom
 * (momentum != 0), max (maximize). */
MS_OPT_ALWAYS_INLINE OPT_FN void OPT_NAME(rmsprop_apply_)(int64_t i,
                                                            const OPT_NAME(opt_ptrs_) *q,
                                                            const OPT_NAME(rmsprop_k_) *k,
                                                            int wd, int cen, int mom, int max) {
  OPT_T p = q->p[i];
  OPT_T g = max ? -q->g[i] : q->g[i];
  if (wd) g = OPT_FMA(p, k->wd, g);                          /* grad.add(param, alpha=wd) */
  OPT_T v = OPT_FMA(k->oma * g, g, q->s[0][i] * k->alpha);   /* square_avg */
  q->s[0][i] = v;
  if (cen) {
    OPT_T a = OPT_FMA(g, k->oma, q->s[2][i] * k->alpha);     /* grad_avg */
    q->s[2][i] = a;
    v = OPT_FMA(-a, a, v);                                   /* addcmul(a, a, value=-1) */
  }
  OPT_T avg = OPT_SQRT(v) + k->eps;                          /* .sqrt().add_(eps) */
  if (mom) {
    OPT_T b = RMSPROP_MUL(q->s[1][i], k->mu);                /* buf.mul_(momentum) */
    b = b + g / avg;                                         /*    .addcdiv_(grad, avg) */
    q->s[1][i] = b;
    q->p[i] = OPT_FMA(b, k->neg_lr, p);                      /* param.add_(buf, alpha=-lr) */
  } else {
    q->p[i] = p + k->neg_lr * g / avg;                       /* addcdiv_(grad, avg, -lr) */
  }
}

OPT_FN void OPT_NAME(rmsprop_elem_)(int64_t i, const OPT_NAME(opt_ptrs_) *q,
                                    const OPT_NAME(rmsprop_k_) *k) {
  OPT_NAME(rmsprop_apply_)(i, q, k, k->wd != 0, k->centered, k->mu != 0, k->maximize);
}

#ifndef __CUDACC__
/* CPU: elements [lo, hi) with the choices given as literals (one branch-free, vectorisable
 * loop per combination), and rmsprop_loop_SFX, which picks the loop for k's choices (for
 * optim.c's table of hoisted spans, like adam_loop_SFX). */
MS_OPT_ALWAYS_INLINE static inline void OPT_NAME(rmsprop_run_)(
    const OPT_NAME(opt_ptrs_) *qp, const OPT_NAME(rmsprop_k_) *kp, int64_t lo, int64_t hi,
    int wd, int cen, int mom, int max) {
  const OPT_NAME(opt_ptrs_) q = *qp;
  const OPT_NAME(rmsprop_k_) k = *kp;
  for (int64_t i = lo; i < hi; i++) OPT_NAME(rmsprop_apply_)(i, &q, &k, wd, cen, mom, max);
}

MS_OPT_ALWAYS_INLINE static inline void OPT_NAME(rmsprop_loop_)(
    const OPT_NAME(opt_ptrs_) *q, const OPT_NAME(rmsprop_k_) *k, int64_t lo, int64_t hi) {
  switch ((k->wd != 0) | (k->centered != 0) << 1 | (k->mu != 0) << 2 | (k->maximize != 0) << 3) {
    RMSPROP_CASES(0) RMSPROP_CASES(8)
    default: break;   /* every code is listed above */
  }
}
#endif
#endif /* OPT_T */
