/* optim/nadam.h — NAdam with PyTorch >= 2.0 semantics (torch.optim.NAdam's single-tensor
 * step of 2.x), L2 or decoupled weight decay (NAdamW); the rule shared by optim.c's loops
 * and optim.cu's kernel (contract: optim/sgd.h).
 *
 *   mu_t = beta1 (1 - 0.5 0.96^(t momentum_decay)), mu_product = prod_{i <= t} mu_i
 *   decoupled: p *= 1 - lr wd;  otherwise g += wd p
 *   m = lerp(m, g, 1 - beta1); v = beta2 v + (1 - beta2) g^2
 *   denom = sqrt(v / (1 - beta2^t)) + eps
 *   p += -lr (1 - mu_t) / (1 - mu_product) g / denom
 *   p += -lr mu_{t+1} / (1 - mu_product mu_{t+1}) m / denom
 * PyTorch 1.13's single-tensor NAdam used mu_product mu_t mu_{t+1} in the last line (mu_t
 * counted twice) and m = beta1 m + (1 - beta1) g: 2.x fixed the first and moved to lerp.
 *
 * mu_product is state, not a derived constant: PyTorch keeps it as a 0-dim tensor in the
 * default dtype, updated by mu_product *= mu_t (float32: rounded at every step). The
 * optimizer (lua/moonstep/optim/NAdam.lua) keeps it the same way in the arena's dtype and
 * passes it in the hyper-parameters, already multiplied by this step's mu_t; the step sizes
 * are then computed from it in double, as PyTorch does from mu_product.item().
 *
 * ATen roundings: lerp(m, g, w) -> fma(w, g - m, m) if |w| < 0.5 else fma(w - 1, g - m, g);
 * x.mul_(b).addcmul_(y, y, value=s) -> fma(s * y, y, x * b); x.div(c) with c a Python
 * number divides by c rounded to T; x.addcdiv_(y, z, value=s) -> x + s * y / z.
 * State: s[0] exp_avg, s[1] exp_avg_sq. */
#ifndef MS_OPTIM_NADAM_H
#define MS_OPTIM_NADAM_H
#include "moonstep.h"

typedef struct {
  double l2, decay;        /* L2: weight_decay, 1; decoupled: 0, 1 - lr weight_decay */
  double omb1;             /* 1 - beta1, the lerp weight */
  double b2, omb2;         /* beta2, 1 - beta2 */
  double bc2;              /* 1 - beta2^step */
  double eps;
  double step_g, step_m;   /* -lr (1 - mu) / (1 - mu_product),
                              -lr mu_next / (1 - mu_product mu_next) */
} ms_nadam_consts;

static const char *const nadam_state_names[] = {"exp_avg", "exp_avg_sq"};

#ifndef __CUDACC__
static inline int nadam_consts(const char *fn, const ms_nadam_hyper *h, int64_t step,
                               ms_nadam_consts *k) {
  MS_TRY(ms_check_hyper(fn, "lr", h->lr, 0, INFINITY));
  MS_TRY(ms_check_hyper(fn, "beta1", h->beta1, 0, 1));
  MS_TRY(ms_check_hyper(fn, "beta2", h->beta2, 0, 1));
  if (h->beta1 >= 1 || h->beta2 >= 1)
    return ms_fail("%s: betas are (%g, %g), expected each in [0, 1)", fn, h->beta1, h->beta2);
  MS_TRY(ms_check_hyper(fn, "eps", h->eps, 0, INFINITY));
  MS_TRY(ms_check_hyper(fn, "weight_decay", h->weight_decay, 0, INFINITY));
  MS_TRY(ms_check_hyper(fn, "momentum_decay", h->momentum_decay, 0, INFINITY));
  if (!(h->mu_product >= 0 && h->mu_product < 1))
    return ms_fail("%s: mu_product is %g, expected a number in [0, 1)", fn, h->mu_product);
  /* As PyTorch 2.x, in double from the step (a float there, exact) and mu_product. */
  double t = (double)step;
  double mu = h->beta1 * (1.0 - 0.5 * pow(0.96, t * h->momentum_decay));
  double mu_next = h->beta1 * (1.0 - 0.5 * pow(0.96, (t + 1) * h->momentum_decay));
  int dec = h->decoupled && h->weight_decay != 0;
  k->l2 = dec ? 0.0 : h->weight_decay;
  k->decay = dec ? 1 - h->lr * h->weight_decay : 1.0;
  k->omb1 = 1 - h->beta1, k->b2 = h->beta2, k->omb2 = 1 - h->beta2;
  k->bc2 = 1 - pow(h->beta2, t), k->eps = h->eps;
  k->step_g = -h->lr * (1.0 - mu) / (1.0 - h->mu_product);
  k->step_m = (-h->lr * mu_next) / (1.0 - h->mu_product * mu_next);
  return 0;
}
#endif
static inline unsigned nadam_needs(const ms_nadam_hyper *h) { (void)h; return 3u; }
#endif /* MS_OPTIM_NADAM_H */

#ifdef OPT_T
typedef struct {
  OPT_T l2, decay, w, wm1, b2, omb2, bc2, eps, step_g, step_m;
  int32_t small;   /* |w| < 0.5: lerp from m, else from g */
} OPT_NAME(nadam_k_);

OPT_FN OPT_NAME(nadam_k_) OPT_NAME(nadam_k_of_)(const ms_nadam_consts *k) {
  OPT_T w = (OPT_T)k->omb1;
  OPT_NAME(nadam_k_) c = {(OPT_T)k->l2, (OPT_T)k->decay, w, w - (OPT_T)1, (OPT_T)k->b2,
                          (OPT_T)k->omb2, (OPT_T)k->bc2, (OPT_T)k->eps, (OPT_T)k->step_g,
                          (OPT_T)k->step_m, (w < (OPT_T)0.5 && w > (OPT_T)-0.5)};
  return c;
}

OPT_FN void OPT_NAME(nadam_elem_)(int64_t i, const OPT_NAME(opt_ptrs_) *q,
                                  const OPT_NAME(nadam_k_) *k) {
  OPT_T p = q->p[i] * k->decay;                              /* param.mul_(1 - lr wd) */
  OPT_T g = k->l2 != 0 ? OPT_FMA(p, k->l2, q->g[i]) : q->g[i]; /* grad.add(param, alpha=wd) */
  OPT_T m = q->s[0][i], d = g - m;                           /* exp_avg.lerp_(grad, 1 - b1) */
  m = k->small ? OPT_FMA(k->w, d, m) : OPT_FMA(k->wm1, d, g);
  OPT_T v = OPT_FMA(k->omb2 * g, g, q->s[1][i] * k->b2);     /* exp_avg_sq */
  OPT_T denom = OPT_SQRT(v / k->bc2) + k->eps;               /* v.div(bc2).sqrt().add_(eps) */
  q->s[0][i] = m;
  q->s[1][i] = v;
  p = p + k->step_g * g / denom;                             /* addcdiv_(grad, denom, .) */
  q->p[i] = p + k->step_m * m / denom;                       /* addcdiv_(exp_avg, denom, .) */
}
#ifndef __CUDACC__
OPT_GENERIC_LOOP(nadam)   /* the CPU loop: the element rule per element */
#endif
#endif /* OPT_T */
