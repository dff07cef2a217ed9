/* optim/sgd.h — SGD with momentum, dampening, Nesterov, weight decay, maximize
 * (torch.optim.SGD), the rule shared by optim.c's loops and optim.cu's kernel.
 *
 * The contract of a rule header runtime/optim/<name>.h:
 *   host part (once, guarded):
 *     ms_<name>_consts                 the step's constants in double
 *     <name>_consts(fn, h, step, k)    checks one group's hyper-parameters (errors name
 *                                      fn and the field) and derives its constants
 *     <name>_needs(h)                  bit s set: the group uses state[s]
 *     <name>_state_names[]             names of the state buffers, for errors
 *   template part (OPT_T defined, see optim/common.h):
 *     <name>_k_SFX, <name>_k_of_SFX()  the constants rounded to T, once
 *     <name>_elem_SFX(i, q, k)         the update of element i of the operands q
 *
 * Float32 faithfulness: constants are derived in double and rounded to T once; the
 * element rule does what torch.optim's single-tensor step does in T, operation for
 * operation, with a fused multiply-add where ATen's CPU kernels fuse one:
 *   x.add(y, alpha=a) -> fma(y, a, x);  x.mul_(b).add_(y, alpha=a) -> fma(y, a, x * b). */
#ifndef MS_OPTIM_SGD_H
#define MS_OPTIM_SGD_H
#include "moonstep.h"

typedef struct {
  double wd, mu, omdamp, neg_lr;   /* weight_decay, momentum, 1 - dampening, -lr */
  int32_t nesterov, first, maximize, momentum;
} ms_sgd_consts;

static const char *const sgd_state_names[] = {"momentum_buffer"};

#ifndef __CUDACC__
static inline int sgd_consts(const char *fn, const ms_sgd_hyper *h, int64_t step,
                             ms_sgd_consts *k) {
  (void)step;
  MS_TRY(ms_check_hyper(fn, "lr", h->lr, 0, INFINITY));
  MS_TRY(ms_check_hyper(fn, "momentum", h->momentum, 0, INFINITY));
  MS_TRY(ms_check_hyper(fn, "dampening", h->dampening, 0, 1));
  MS_TRY(ms_check_hyper(fn, "weight_decay", h->weight_decay, 0, INFINITY));
  if (h->nesterov && (h->momentum <= 0 || h->dampening != 0))
    return ms_fail("%s: nesterov needs momentum > 0 and dampening = 0, got %g and %g", fn,
                   h->momentum, h->dampening);
  k->wd = h->weight_decay, k->mu = h->momentum, k->omdamp = 1.0 - h->dampening;
  k->neg_lr = -h->lr;
  k->nesterov = h->nesterov != 0, k->first = h->first != 0, k->maximize = h->maximize != 0;
  k->momentum = h->momentum != 0;
  return 0;
}
#endif
static inline unsigned sgd_needs(const ms_sgd_hyper *h) { return h->momentum != 0 ? 1u : 0u; }
#endif /* MS_OPTIM_SGD_H */

#ifdef OPT_T
typedef struct { OPT_T wd, mu, omdamp, neg_lr; int32_t nesterov, first, maximize, momentum; }
  OPT_NAME(sgd_k_);

OPT_FN OPT_NAME(sgd_k_) OPT_NAME(sgd_k_of_)(const ms_sgd_consts *k) {
  OPT_NAME(sgd_k_) c = {(OPT_T)k->wd, (OPT_T)k->mu, (OPT_T)k->omdamp, (OPT_T)k->neg_lr,
                        k->nesterov, k->first, k->maximize, k->momentum};
  return c;
}

OPT_FN void OPT_NAME(sgd_elem_)(int64_t i, const OPT_NAME(opt_ptrs_) *q,
                                const OPT_NAME(sgd_k_) *k) {
  OPT_T p = q->p[i];
  OPT_T d = k->maximize ? -q->g[i] : q->g[i];
  if (k->wd != 0) d = OPT_FMA(p, k->wd, d);                  /* d.add(param, alpha=wd) */
  if (k->momentum) {
    OPT_T b = k->first ? d : OPT_FMA(d, k->omdamp, q->s[0][i] * k->mu);
    q->s[0][i] = b;
    d = k->nesterov ? OPT_FMA(b, k->mu, d) : b;              /* d.add(buf, alpha=mu) */
  }
  q->p[i] = OPT_FMA(d, k->neg_lr, p);                        /* param.add_(d, alpha=-lr) */
}
#endif /* OPT_T */
