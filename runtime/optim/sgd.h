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
 *   CPU only (#ifndef __CUDACC__):
 *     <name>_loop_SFX(q, k, lo, hi)    elements [lo, hi), the loop optim.c runs: either
 *                                      OPT_GENERIC_LOOP(<name>) (the element rule per
 *                                      element), or, for speed, the loop-invariant flags
 *                                      of k hoisted (one vectorisable loop per
 *                                      combination, as below).
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

/* CPU loops with the loop-invariant choices hoisted (used by optim.c): each combination of
 * (weight decay, momentum, first, nesterov, maximize) is its own branch-free loop, which
 * the compiler vectorises. Nesterov and first only matter with momentum. */
#define SGD_CASE(W, M, F, N, X)                                                          \
  case (W) | (M) << 1 | (F) << 2 | (N) << 3 | (X) << 4:                                 \
    OPT_NAME(sgd_run_)(q, k, lo, hi, W, M, F, N, X);                                     \
    break;
#define SGD_CASES(X)                                                                     \
  SGD_CASE(0, 0, 0, 0, X) SGD_CASE(1, 0, 0, 0, X) SGD_CASE(0, 1, 0, 0, X)                \
  SGD_CASE(1, 1, 0, 0, X) SGD_CASE(0, 1, 1, 0, X) SGD_CASE(1, 1, 1, 0, X)                \
  SGD_CASE(0, 1, 0, 1, X) SGD_CASE(1, 1, 0, 1, X) SGD_CASE(0, 1, 1, 1, X)                \
  SGD_CASE(1, 1, 1, 1, X)
#endif /* MS_OPTIM_SGD_H */

#ifdef OPT_T
typedef struct { OPT_T wd, mu, omdamp, neg_lr; int32_t nesterov, first, maximize, momentum; }
  OPT_NAME(sgd_k_);

OPT_FN OPT_NAME(sgd_k_) OPT_NAME(sgd_k_of_)(const ms_sgd_consts *k) {
  OPT_NAME(sgd_k_) c = {(OPT_T)k->wd, (OPT_T)k->mu, (OPT_T)k->omdamp, (OPT_T)k->neg_lr,
                        k->nesterov, k->first, k->maximize, k->momentum};
  return c;
}

/* The rule, its choices as arguments: wd (weight decay != 0), mom (momentum != 0), first
 * (the buffer starts as d), nest (Nesterov), max (maximize). */
MS_OPT_ALWAYS_INLINE OPT_FN void OPT_NAME(sgd_apply_)(int64_t i, const OPT_NAME(opt_ptrs_) *q,
                                                      const OPT_NAME(sgd_k_) *k, int wd,
                                                      int mom, int first, int nest, int max) {
  OPT_T p = q->p[i];
  OPT_T d = max ? -q->g[i] : q->g[i];
  if (wd) d = OPT_FMA(p, k->wd, d);                          /* d.add(param, alpha=wd) */
  if (mom) {
    OPT_T b = first ? d : OPT_FMA(d, k->omdamp, q->s[0][i] * k->mu);
    q->s[0][i] = b;
    d = nest ? OPT_FMA(b, k->mu, d) : b;                     /* d.add(buf, alpha=mu) */
  }
  q->p[i] = OPT_FMA(d, k->neg_lr, p);                        /* param.add_(d, alpha=-lr) */
}

OPT_FN void OPT_NAME(sgd_elem_)(int64_t i, const OPT_NAME(opt_ptrs_) *q,
                                const OPT_NAME(sgd_k_) *k) {
  OPT_NAME(sgd_apply_)(i, q, k, k->wd != 0, k->momentum, k->first, k->nesterov, k->maximize);
}

#ifndef __CUDACC__
/* CPU: elements [lo, hi) with the choices given as literals (one loop per combination). */
MS_OPT_ALWAYS_INLINE static inline void OPT_NAME(sgd_run_)(const OPT_NAME(opt_ptrs_) *qp,
                                                           const OPT_NAME(sgd_k_) *kp,
                                                           int64_t lo, int64_t hi, int wd,
                                                           int mom, int first, int nest,
                                                           int max) {
  const OPT_NAME(opt_ptrs_) q = *qp;
  const OPT_NAME(sgd_k_) k = *kp;
  for (int64_t i = lo; i < hi; i++) OPT_NAME(sgd_apply_)(i, &q, &k, wd, mom, first, nest, max);
}

/* CPU: the loop for k's choices (optim.c's span; compiled once per CPU target there). */
MS_OPT_ALWAYS_INLINE static inline void OPT_NAME(sgd_loop_)(const OPT_NAME(opt_ptrs_) *q,
                                                            const OPT_NAME(sgd_k_) *k,
                                                            int64_t lo, int64_t hi) {
  int mom = k->momentum != 0;
  int code = (k->wd != 0) | mom << 1 | (mom && k->first) << 2 | (mom && k->nesterov) << 3 |
             (k->maximize != 0) << 4;
  switch (code) {
    SGD_CASES(0)
    SGD_CASES(1)
    default: break;   /* every code is listed above */
  }
}
#endif
#endif /* OPT_T */
