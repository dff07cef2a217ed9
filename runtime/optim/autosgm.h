/* optim/autosgm.h — AutoSGM (somefunAgba/autosgm v2, commit 07b5e79; the exact spec is
 * ../shared/reference/acme_autosgm.md section 2), the per-element rule shared by
 * runtime/optim_autosgm.c's loops and kernels/optim_autosgm.cu's kernels.
 *
 * Per element, with w = p[i], g = grad[i] (the reference's order of operations):
 *   wd = lambda w;  wd_level 0: g += wd
 *   moment (aoptlr): y = s_var + eta_a g^2, s_var = beta_a y, d = sqrt(y dbA + eps_in) + eps
 *   smoothing:       x = eta_i g, y = (s_sm + x) / (1 - gamma), s_sm = beta_i (s_sm + x) - gamma x,
 *                    v = y dbI / d;  wd_level 1: v += (1 - beta_i) / (1 - gamma) wd
 *   numerator a:     mu (num_lrc 0, 1, or aoptlr off), else c from the estimators below,
 *                    smoothed Q = 0.1 Q + 0.9 c per element (per_layer 0), or per slice of
 *                    the mean of c (per_layer 1: a second pass, see optim_autosgm.c)
 *   p = w - (F v) a                         (F: the window's value at this step)
 * Estimators, x = w g/d, all EMAs un-debiased with pole beta_n (b below, ob = 1 - b):
 *   2: P = b P + ob mu (w^2 + (g/d)^2); c = min(P, mu) (unclipped per element with the compat bit)
 *   3: W = b (W + ob w^2) [the stored, b-scaled state; unscaled EMA without the compat bit];
 *      m = mu / (1 + W); xm = |x| + eps; M' = M + ob xm, M = b M'; h = x/xm min(xm, cf M');
 *      A' = A + m h, A = b A'; c = clamp(|A'|, tukey(d) m, m (1 + W)^2)
 *   4: W = b W + ob w^2; m = mu / (1 + W); xb = b xb + ob x; dl = |x - xb| + eps;
 *      s2 = b s2 + ob dl^2; h = x/dl min(dl, sqrt(s2) + eps); A = b A + m h;
 *      c = clamp(|A|, tukey(d) m, m (1 + W)^2)
 *   tukey(d) = (1 - u^2)^2 u, u = min(d, 1).
 * State: s[0] smoothing filter, s[1] moment filter (aoptlr), s[2..5] the estimator's
 * (2: P; 3: W, M, A; 4: W, xb, s2, A); the element-wise Q and the per-slice scratch are
 * the aux operand of ms_autosgm_step. */
/* common.h first, outside the guard: its template part (opt_ptrs_SFX) is instantiated
 * with this header's. */
#include "optim/common.h"
#ifndef MS_OPTIM_AUTOSGM_H
#define MS_OPTIM_AUTOSGM_H
#include "moonstep.h"

/* One group's constants of the step, in double. */
typedef struct {
  double wd;                  /* lambda */
  double eta_a, b_a, dbA;     /* moment filter: input gain, pole, debias factor (1: off) */
  double eps_in, eps;         /* eps inside the sqrt (repeat_eps, else 0) and outside */
  double eta_i, b_i, gam, omg, dbI;  /* smoothing: input gain, pole, zero, 1 - zero, debias */
  double eta_w;               /* decoupled decay gain (1 - beta_i) / (1 - gamma_i) */
  double mu, b_n, omb_n, cf;  /* numerator: trust-region constant, pole, 1 - pole, Markov cap */
  double F;                   /* the window's value */
  double nudge;               /* eps on the first step with compat nudge_zeros, else 0 */
  int32_t wd0, wd1;           /* coupled (level 0) / decoupled (level 1) decay active */
  int32_t aoptlr, lrc;        /* lrc: the estimator in use (0: a = mu) */
  int32_t neg_in, neg_out;    /* maximize: negate g on input / v on output (compat) */
  int32_t scaled_w, clip2;    /* compat: num_lrc 3's b-scaled W; num_lrc 2 per element clipped */
  int32_t perl;               /* the numerator is a per-slice mean: two passes */
} ms_autosgm_consts;

static const char *const autosgm_state_names[] = {"smooth", "moment", "est1", "est2", "est3",
                                                  "est4"};

/* The state buffers the estimator num_lrc (0 .. 4) needs: bit s = state[s]. */
static inline unsigned autosgm_needs_of(int32_t aoptlr, int32_t lrc) {
  if (!aoptlr) return 1u;
  return lrc == 2 ? 7u : lrc == 3 ? 31u : lrc == 4 ? 63u : 3u;
}
/* The CUDA passes (kernels/optim_autosgm.cu; stub in cuda_stub.c), float32. phase 0: the
 * single pass of the slices whose group is not per-layer (q: the element-wise Q) and pass
 * 1 of the others (c into scratch); phase 2: pass 2 of the per-layer slices with
 * a_slice[s] (host, one per slice). */
#ifdef __cplusplus
extern "C"
#endif
int ms_cuda_autosgm(const ms_cuda_optim_job *j, const ms_autosgm_consts *k, int32_t ngroups,
                    int phase, float *q, float *scratch, const double *a_slice);
#endif /* MS_OPTIM_AUTOSGM_H */

#ifdef OPT_T
/* The constants in T. Branch-free forms of the flags, so that the loops vectorise with
 * the same bits: sg_in/sg_out = -1 or 1 (an exact negation), c0 = 1 with coupled decay
 * (g + 1 wd), c1 = eta_w with decoupled decay (v + eta_w wd); 0 otherwise (adds a zero). */
typedef struct {
  OPT_T wd, eta_a, b_a, dbA, eps_in, eps, eta_i, b_i, gam, omg, dbI, mu, b_n, omb_n, cf, F, nudge,
      q_keep, q_in, sg_in, sg_out, c0, c1;
  int32_t aoptlr, lrc, scaled_w, clip2, perl, divg;
} OPT_NAME(autosgm_k_);

OPT_FN OPT_NAME(autosgm_k_) OPT_NAME(autosgm_k_of_)(const ms_autosgm_consts *k) {
  OPT_NAME(autosgm_k_) c = {
      (OPT_T)k->wd,    (OPT_T)k->eta_a, (OPT_T)k->b_a,   (OPT_T)k->dbA,   (OPT_T)k->eps_in,
      (OPT_T)k->eps,   (OPT_T)k->eta_i, (OPT_T)k->b_i,   (OPT_T)k->gam,   (OPT_T)k->omg,
      (OPT_T)k->dbI,   (OPT_T)k->mu,    (OPT_T)k->b_n,   (OPT_T)k->omb_n, (OPT_T)k->cf,
      (OPT_T)k->F,     (OPT_T)k->nudge, (OPT_T)0.1,      (OPT_T)(1 - 0.1),
      (OPT_T)(k->neg_in ? -1 : 1),      (OPT_T)(k->neg_out ? -1 : 1),
      (OPT_T)(k->wd0 ? 1 : 0),          k->wd1 ? (OPT_T)k->eta_w : (OPT_T)0,
      k->aoptlr,       k->lrc,          k->scaled_w,     k->clip2,        k->perl,
      (OPT_T)k->omg != (OPT_T)1};
  return c;
}

/* compat nudge_zeros, on the first step before anything else reads p[i]: |p| < eps becomes
 * p + eps (the reference's master copy). Its own loop: a conditional add would keep the
 * main loops from vectorising. */
OPT_FN void OPT_NAME(autosgm_nudge_)(int64_t i, const OPT_NAME(opt_ptrs_) *q,
                                     const OPT_NAME(autosgm_k_) *k) {
  OPT_T w = q->p[i];
  if ((w < 0 ? -w : w) < k->nudge) q->p[i] = w + k->nudge;
}

/* The operands of element i before any write: w, the gradient
 * with coupled decay, wd, and d with the moment filter's next state svar (aopt: aoptlr;
 * without, d = 1). */
typedef struct { OPT_T w, g, wd, d, svar; } OPT_NAME(autosgm_in_);

OPT_FN OPT_NAME(autosgm_in_) OPT_NAME(autosgm_prep_)(int64_t i, const OPT_NAME(opt_ptrs_) *q,
                                                     const OPT_NAME(autosgm_k_) *k, int aopt) {
  OPT_NAME(autosgm_in_) r;
  OPT_T w = q->p[i];
  OPT_T g = q->g[i] * k->sg_in;
  OPT_T wd = k->wd * w;
  g = g + k->c0 * wd;
  OPT_T d = 1, sv = 0;
  if (aopt) {
    OPT_T y = q->s[1][i] + k->eta_a * (g * g);
    sv = k->b_a * y;
    y = y * k->dbA + k->eps_in;
    d = OPT_SQRT(y) + k->eps;
  }
  r.w = w, r.g = g, r.wd = wd, r.d = d, r.svar = sv;
  return r;
}

OPT_FN OPT_T OPT_NAME(autosgm_clamp_)(OPT_T x, OPT_T lo, OPT_T hi) {
  x = x < lo ? lo : x;   /* torch.clamp: min(max(x, lo), hi) */
  return x > hi ? hi : x;
}

/* The estimator's raw value c of element i (updates state[2..5]); lrc 2, 3 or 4. */
OPT_FN OPT_T OPT_NAME(autosgm_est_)(int64_t i, const OPT_NAME(opt_ptrs_) *q,
                                    const OPT_NAME(autosgm_k_) *k,
                                    const OPT_NAME(autosgm_in_) *r, int32_t lrc,
                                    int32_t per_layer) {
  OPT_T w = r->w, gn = r->g / r->d, b = k->b_n, ob = k->omb_n;
  if (lrc == 2) {
    OPT_T P = q->s[2][i] * b + ob * ((w * w + gn * gn) * k->mu);
    q->s[2][i] = P;
    return per_layer || k->clip2 ? (P < k->mu ? P : k->mu) : P;
  }
  OPT_T u = r->d < 1 ? r->d : 1;
  OPT_T tk = (1 - u * u);
  tk = tk * tk * u;
  OPT_T x = w * gn, W, m, out;
  if (lrc == 3) {
    OPT_T Wy = q->s[2][i] + ob * (w * w);
    OPT_T Ws = b * Wy;
    q->s[2][i] = Ws;
    W = k->scaled_w ? Ws : Wy;
    m = k->mu / (1 + W);
    OPT_T xm = (x < 0 ? -x : x) + k->eps;
    OPT_T My = q->s[3][i] + ob * xm;
    q->s[3][i] = b * My;
    OPT_T cap = k->cf * My;
    OPT_T h = (x / xm) * (xm < cap ? xm : cap);
    OPT_T Ay = q->s[4][i] + m * h;
    q->s[4][i] = b * Ay;
    out = Ay < 0 ? -Ay : Ay;
  } else {
    W = q->s[2][i] * b + ob * (w * w);
    q->s[2][i] = W;
    m = k->mu / (1 + W);
    OPT_T xb = q->s[3][i] * b + ob * x;
    q->s[3][i] = xb;
    OPT_T dx = x - xb;
    OPT_T dl = (dx < 0 ? -dx : dx) + k->eps;
    OPT_T s2 = q->s[4][i] * b + ob * (dl * dl);
    q->s[4][i] = s2;
    OPT_T sd = OPT_SQRT(s2) + k->eps;
    OPT_T h = (x / dl) * (dl < sd ? dl : sd);
    OPT_T A = q->s[5][i] * b + m * h;
    q->s[5][i] = A;
    out = A < 0 ? -A : A;
  }
  return OPT_NAME(autosgm_clamp_)(out, tk * m, m * ((1 + W) * (1 + W)));
}

/* The smoothing filter and the update of element i with numerator a (writes p, s[0] and,
 * with aopt, s[1]); divg: gamma != 0 (else the division by 1 - gamma = 1 is skipped). */
OPT_FN void OPT_NAME(autosgm_apply_)(int64_t i, const OPT_NAME(opt_ptrs_) *q,
                                     const OPT_NAME(autosgm_k_) *k,
                                     const OPT_NAME(autosgm_in_) *r, OPT_T a, int aopt,
                                     int divg) {
  OPT_T x = k->eta_i * r->g;
  OPT_T sy = q->s[0][i] + x;
  OPT_T y = divg ? sy / k->omg : sy;
  q->s[0][i] = k->b_i * sy - k->gam * x;
  if (aopt) q->s[1][i] = r->svar;
  OPT_T v = (y * k->dbI) / r->d;
  v = v + k->c1 * r->wd;
  v = v * k->sg_out;
  q->p[i] = r->w - (k->F * v) * a;
}

/* One element in a single pass: a = mu (lrc 0), or the element-wise Q (aux) of the
 * estimator lrc (per_layer 0). lrc, aopt, divg: constants of the caller's loop. */
OPT_FN void OPT_NAME(autosgm_elem_)(int64_t i, const OPT_NAME(opt_ptrs_) *q, OPT_T *aux,
                                    const OPT_NAME(autosgm_k_) *k, int32_t lrc, int aopt,
                                    int divg) {
  OPT_NAME(autosgm_in_) r = OPT_NAME(autosgm_prep_)(i, q, k, aopt);
  OPT_T a = k->mu;
  if (lrc >= 2) {
    OPT_T c = OPT_NAME(autosgm_est_)(i, q, k, &r, lrc, 0);
    a = aux[i] * k->q_keep + k->q_in * c;
    aux[i] = a;
  }
  OPT_NAME(autosgm_apply_)(i, q, k, &r, a, aopt, divg);
}

/* Per-layer pass 1: the estimator's c into scratch (nothing else written but s[2..5]). */
OPT_FN void OPT_NAME(autosgm_est_pass_)(int64_t i, const OPT_NAME(opt_ptrs_) *q, OPT_T *scratch,
                                        const OPT_NAME(autosgm_k_) *k, int32_t lrc) {
  OPT_NAME(autosgm_in_) r = OPT_NAME(autosgm_prep_)(i, q, k, 1);
  scratch[i] = OPT_NAME(autosgm_est_)(i, q, k, &r, lrc, 1);
}

/* Per-layer pass 2: the update with the slice's numerator a (prep recomputed, same bits). */
OPT_FN void OPT_NAME(autosgm_apply_pass_)(int64_t i, const OPT_NAME(opt_ptrs_) *q,
                                          const OPT_NAME(autosgm_k_) *k, OPT_T a, int divg) {
  OPT_NAME(autosgm_in_) r = OPT_NAME(autosgm_prep_)(i, q, k, 1);
  OPT_NAME(autosgm_apply_)(i, q, k, &r, a, 1, divg);
}
#endif /* OPT_T */
