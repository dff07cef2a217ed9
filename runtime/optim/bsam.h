/* optim/bsam.h — Bayesian SAM (Möllenhoff & Khan, "SAM as an optimal relaxation of Bayes";
 * the official build_bsam_optimizer of team-approx-bayes/bayesian-sam), the rule shared by
 * optim.c's loops and optim.cu's kernel (contract: optim/sgd.h). lua/moonstep/optim/BSAM.lua
 * drives it.
 *
 * One step of BSAM is three fused passes over the arena around two gradient evaluations;
 * h->phase selects the pass (the same in every group). s is the precision (state[0]):
 *   phase 0, noise:   mean = p;  p = p + sqrt(1 / (N s)) z          z: in the grad operand
 *                     (the step's standard-normal draw; sample() reuses this phase)
 *   phase 1, ascent:  gs = sqrt(s g^2);  p = mean + rho g / s        g: pass 1's gradient
 *                                                                    (at the noisy point)
 *   phase 2, update:  m = b1 m + (1 - b1) (g + wd mean)              g: pass 2's gradient
 *                     p = mean - lr m / s                            (s before its update)
 *                     s = b2 s + (1 - b2) (gs + damping + wd)
 * The operations are the official code's, in its order (no fma): float32 rounds as its
 * float32 arrays do. State: s[0] precision, s[1] momentum (g_m), s[2] mean (the saved
 * weights: scratch), s[3] gs (sqrt(s) |g| of pass 1: scratch). */
#ifndef MS_OPTIM_BSAM_H
#define MS_OPTIM_BSAM_H
#include "moonstep.h"

typedef struct {
  double lr, b1, omb1, b2, omb2, wd, rho, damping, n;   /* n: num_data */
  int32_t phase;
} ms_bsam_consts;

static const char *const bsam_state_names[] = {"precision", "momentum", "mean", "gs"};

#ifndef __CUDACC__
static inline int bsam_consts(const char *fn, const ms_bsam_hyper *h, int64_t step,
                              ms_bsam_consts *k) {
  (void)step;
  MS_TRY(ms_check_hyper(fn, "lr", h->lr, 0, INFINITY));
  MS_TRY(ms_check_hyper(fn, "beta1", h->beta1, 0, 1));
  MS_TRY(ms_check_hyper(fn, "beta2", h->beta2, 0, 1));
  if (h->beta1 >= 1 || h->beta2 >= 1)
    return ms_fail("%s: betas are (%g, %g), expected each in [0, 1)", fn, h->beta1, h->beta2);
  MS_TRY(ms_check_hyper(fn, "weight_decay", h->weight_decay, 0, INFINITY));
  MS_TRY(ms_check_hyper(fn, "rho", h->rho, 0, INFINITY));
  MS_TRY(ms_check_hyper(fn, "damping", h->damping, 0, INFINITY));
  if (!(h->num_data > 0 && h->num_data < INFINITY))
    return ms_fail("%s: num_data is %g, expected a finite number > 0", fn, h->num_data);
  if (h->phase < 0 || h->phase > 2)
    return ms_fail("%s: phase is %d, expected 0 (noise), 1 (ascent) or 2 (update)", fn,
                   (int)h->phase);
  k->lr = h->lr, k->b1 = h->beta1, k->omb1 = 1 - h->beta1;
  k->b2 = h->beta2, k->omb2 = 1 - h->beta2;
  k->wd = h->weight_decay, k->rho = h->rho, k->damping = h->damping, k->n = h->num_data;
  k->phase = h->phase;
  return 0;
}
#endif
/* phase 0: precision, mean; 1: + gs; 2: + momentum */
static inline unsigned bsam_needs(const ms_bsam_hyper *h) {
  return h->phase == 0 ? 5u : h->phase == 1 ? 13u : 15u;
}
#endif /* MS_OPTIM_BSAM_H */

#ifdef OPT_T
typedef struct {
  OPT_T lr, b1, omb1, b2, omb2, wd, rho, damping, n;
  int32_t phase;
} OPT_NAME(bsam_k_);

OPT_FN OPT_NAME(bsam_k_) OPT_NAME(bsam_k_of_)(const ms_bsam_consts *k) {
  OPT_NAME(bsam_k_) c = {(OPT_T)k->lr,  (OPT_T)k->b1,   (OPT_T)k->omb1,
                         (OPT_T)k->b2,  (OPT_T)k->omb2, (OPT_T)k->wd,
                         (OPT_T)k->rho, (OPT_T)k->damping, (OPT_T)k->n, k->phase};
  return c;
}

OPT_FN void OPT_NAME(bsam_elem_)(int64_t i, const OPT_NAME(opt_ptrs_) *q,
                                 const OPT_NAME(bsam_k_) *k) {
  const OPT_T s = q->s[0][i];
  if (k->phase == 0) {                     /* theta = mu + sqrt(1 / (N s)) z */
    const OPT_T w = q->p[i];
    q->s[2][i] = w;
    q->p[i] = w + OPT_SQRT((OPT_T)1 / (k->n * s)) * q->g[i];
  } else if (k->phase == 1) {              /* w_adv = mu + rho g / s, from the mean */
    const OPT_T g = q->g[i];
    q->s[3][i] = OPT_SQRT(s * (g * g));
    q->p[i] = q->s[2][i] + k->rho * g / s;
  } else {                                 /* momentum, mean, then precision */
    const OPT_T w = q->s[2][i];
    const OPT_T m = k->b1 * q->s[1][i] + k->omb1 * (q->g[i] + k->wd * w);
    q->s[1][i] = m;
    q->p[i] = w - k->lr * m / s;
    q->s[0][i] = k->b2 * s + k->omb2 * (q->s[3][i] + k->damping + k->wd);
  }
}
#ifndef __CUDACC__
OPT_GENERIC_LOOP(bsam)   /* the CPU loop: the element rule per element */
#endif
#endif /* OPT_T */
