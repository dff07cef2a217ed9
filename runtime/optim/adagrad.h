/* optim/adagrad.h — Adagrad (torch.optim.Adagrad: lr_decay, weight_decay,
 * initial_accumulator_value, eps, maximize; dense gradients), the rule shared by optim.c's
 * loops and optim.cu's kernel (contract: optim/sgd.h).
 *
 *   g = maximize ? -g : g;  g += wd p
 *   sum = (step 1 ? initial_accumulator_value : sum) + g^2
 *   p -= lr / (1 + (step - 1) lr_decay) g / (sqrt(sum) + eps)
 *
 * The sum starts at initial_accumulator_value (PyTorch fills it when the state is created;
 * here the first step reads the value instead of the buffer, so one buffer serves groups
 * with different initial values). ATen roundings: x.add(y, alpha=a) -> fma(y, a, x);
 * x.addcmul_(y, y, value=1) -> fma(y, y, x); x.addcdiv_(y, z, value=s) -> x + s * y / z.
 * State: s[0] sum. */
#ifndef MS_OPTIM_ADAGRAD_H
#define MS_OPTIM_ADAGRAD_H
#include "moonstep.h"

typedef struct {
  double wd, init, eps, neg_clr;   /* weight_decay, initial_accumulator_value, eps,
                                      -lr / (1 + (step - 1) lr_decay) */
  int32_t first, maximize;         /* first: step 1 */
} ms_adagrad_consts;

static const char *const adagrad_state_names[] = {"sum"};

#ifndef __CUDACC__
static inline int adagrad_consts(const char *fn, const ms_adagrad_hyper *h, int64_t step,
                                 ms_adagrad_consts *k) {
  MS_TRY(ms_check_hyper(fn, "lr", h->lr, 0, INFINITY));
  MS_TRY(ms_check_hyper(fn, "lr_decay", h->lr_decay, 0, INFINITY));
  MS_TRY(ms_check_hyper(fn, "weight_decay", h->weight_decay, 0, INFINITY));
  MS_TRY(ms_check_hyper(fn, "initial_accumulator_value", h->initial_accumulator_value, 0,
                        INFINITY));
  MS_TRY(ms_check_hyper(fn, "eps", h->eps, 0, INFINITY));
  /* As torch.optim.Adagrad: clr = lr / (1 + (step - 1) lr_decay), in double. */
  k->wd = h->weight_decay, k->init = h->initial_accumulator_value, k->eps = h->eps;
  k->neg_clr = -(h->lr / (1 + ((double)step - 1) * h->lr_decay));
  k->first = step == 1, k->maximize = h->maximize != 0;
  return 0;
}
#endif
static inline unsigned adagrad_needs(const ms_adagrad_hyper *h) { (void)h; return 1u; }
#endif /* MS_OPTIM_ADAGRAD_H */

#ifdef OPT_T
typedef struct {
  OPT_T wd, init, eps, neg_clr;
  int32_t first, maximize;
} OPT_NAME(adagrad_k_);

OPT_FN OPT_NAME(adagrad_k_) OPT_NAME(adagrad_k_of_)(const ms_adagrad_consts *k) {
  OPT_NAME(adagrad_k_) c = {(OPT_T)k->wd, (OPT_T)k->init, (OPT_T)k->eps, (OPT_T)k->neg_clr,
                            k->first, k->maximize};
  return c;
}

OPT_FN void OPT_NAME(adagrad_elem_)(int64_t i, const OPT_NAME(opt_ptrs_) *q,
                                    const OPT_NAME(adagrad_k_) *k) {
  OPT_T p = q->p[i];
  OPT_T g = k->maximize ? -q->g[i] : q->g[i];
  if (k->wd != 0) g = OPT_FMA(p, k->wd, g);                  /* grad.add(param, alpha=wd) */
  OPT_T s = OPT_FMA(g, g, k->first ? k->init : q->s[0][i]);  /* sum.addcmul_(g, g, value=1) */
  q->s[0][i] = s;
  q->p[i] = p + k->neg_clr * g / (OPT_SQRT(s) + k->eps);     /* addcdiv_(g, std, -clr) */
}
#ifndef __CUDACC__
OPT_GENERIC_LOOP(adagrad)   /* the CPU loop: the element rule per element */
#endif
#endif /* OPT_T */
