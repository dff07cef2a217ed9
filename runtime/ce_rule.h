/* ce_rule.h — the cross-entropy's per-row and per-element rules (plain case: no class
 * weights, nothing ignored; label smoothing e), shared by runtime/nn.c's loops and
 * kernels/nn.cu's kernels. All in float64, rounded once by the caller. */
#ifndef MS_CE_RULE_H
#define MS_CE_RULE_H

#ifndef MS_HD
#ifdef __CUDACC__
#define MS_HD __host__ __device__ static inline
#else
#define MS_HD static inline
#endif
#endif

/* A row's loss from lse = log sum_j exp(x_j), its target's logit xt and (when e > 0) the
 * row's logit sum sx over C classes:
 *   -(1 - e) (xt - lse) - e/C (sx - C lse) */
MS_HD double ms_ce_loss(double lse, double xt, double sx, double e, double C) {
  double l = lse - xt;
  if (e > 0) l = (1 - e) * l - e / C * (sx - C * lse);
  return l;
}

/* The gradient of element (r, j) from its probability p, before the scale s:
 *   (p - e/C - hit) s, hit = 1 - e for the target class, else 0 */
MS_HD double ms_ce_grad(double p, double off, double hit, double s) {
  return (p - off - hit) * s;
}

#endif /* MS_CE_RULE_H */
