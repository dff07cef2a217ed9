/* optim/acme.h — ACME's per-element arithmetic (ignasi00/acme, ICASSP 2025; the spec is
 * ../shared/reference/acme_autosgm.md section 1), shared by runtime/optim_acme.c's loops
 * and kernels/optim_acme.cu's kernels. The passes (moonstep.h, "ACME"):
 *   DOTS      (m g)/D, (m m)/D, (g g)/D, (m g0)/D        the limiter's and the line model's
 *   MOVE      [M-update] w = base + step_m m/D [+ step_g gn/D]; w *= decay [M-update]
 *   ASAM      gh = g/D (adam) or g; T = |w| + eta (weight tensors) or 1;
 *             norm terms (gh T)^2; perturbation w += (gh T) T c
 * D(v) = (sqrt(v / bc2) + eps) bc1 with adam, else the constant dconst. Every constant is
 * derived in double by the host and rounded to T here; each operation rounds in T in the
 * reference's order (PyTorch's foreach ops):
 *   M-update   gr = g kappa; m = m b1 + (1 - b1) gr; v = v b2 + ((1 - b2) gr) gr
 *   D          ((sqrt(v (1 / bc2))) + eps) bc1
 *   move       w = base + step_m (m r); w = w + step_g (gn r); w = w decay
 *   terms      (x y) r, widened to double (the sums are float64)
 * with r = 1 / D (one division per element: the reference divides by D each time, which
 * is the same value to a rounding in T). */
/* common.h first, outside the guard: its template part is instantiated with this one's. */
#include "optim/common.h"
#ifndef MS_OPTIM_ACME_H
#define MS_OPTIM_ACME_H
#include "moonstep.h"
/* The chunk list of a pass: 4 int64 per chunk, (offset, count, group, weight_rule), each
 * chunk within one slice and at most MS_REDUCE_BLOCK elements, slices in order. */
enum { MS_ACME_CHUNK = 4, MS_ACME_NSUM = 4 };
#endif /* MS_OPTIM_ACME_H */

#ifdef OPT_T
typedef struct {
  OPT_T b1, omb1, b2, omb2, bc1, rbc2, eps, dconst, rdconst, kappa, step_m, step_g, decay, c, eta;
  int32_t adam, update, nesterov, gsel_g0, guard, from_saved;
} OPT_NAME(acme_k_);

OPT_FN OPT_NAME(acme_k_) OPT_NAME(acme_k_of_)(const ms_acme_hyper *h) {
  OPT_NAME(acme_k_) k;
  k.b1 = (OPT_T)h->beta1, k.omb1 = (OPT_T)(1 - h->beta1);
  k.b2 = (OPT_T)h->beta2, k.omb2 = (OPT_T)(1 - h->beta2);
  k.bc1 = (OPT_T)h->bc1, k.rbc2 = (OPT_T)(1 / h->bc2), k.eps = (OPT_T)h->eps;
  k.dconst = (OPT_T)h->dconst, k.rdconst = (OPT_T)1 / k.dconst, k.kappa = (OPT_T)h->kappa;
  k.step_m = (OPT_T)h->step_m, k.step_g = (OPT_T)h->step_g, k.decay = (OPT_T)h->decay;
  k.c = (OPT_T)h->asam_scale, k.eta = (OPT_T)h->eta;
  k.adam = h->adam, k.update = h->update, k.nesterov = h->nesterov;
  k.gsel_g0 = h->gsel_g0, k.guard = h->guard, k.from_saved = h->from_saved;
  return k;
}

/* The operands: element i of each (v, w0, g0 NULL where the pass does not use them). */
typedef struct {
  OPT_T *p;
  const OPT_T *g;
  OPT_T *m, *v, *w0, *g0;
} OPT_NAME(acme_ptrs_);

/* The denominator (adam: a literal at the call sites, so that loops specialise). */
OPT_FN OPT_T OPT_NAME(acme_den_)(OPT_T v, const OPT_NAME(acme_k_) *k, int adam) {
  if (!adam) return k->dconst;
  OPT_T r = OPT_SQRT(v * k->rbc2);
  r = r + k->eps;
  return r * k->bc1;
}

/* 1 / D: every quotient by D below is a product with it (one division per element;
 * the reference divides each time: the same value to a rounding or two in T). */
OPT_FN OPT_T OPT_NAME(acme_rden_)(OPT_T v, const OPT_NAME(acme_k_) *k, int adam) {
  if (!adam) return k->rdconst;
  return (OPT_T)1 / OPT_NAME(acme_den_)(v, k, adam);
}

/* The M-update of m (and v with adam) with gradient g. */
OPT_FN void OPT_NAME(acme_mupdate_)(OPT_T *m, OPT_T *v, OPT_T g, const OPT_NAME(acme_k_) *k,
                                     int adam) {
  const OPT_T gr = g * k->kappa;
  OPT_T mm = *m * k->b1;
  *m = mm + k->omb1 * gr;
  if (adam) {
    OPT_T vv = *v * k->b2;
    *v = vv + (k->omb2 * gr) * gr;
  }
}

/* DOTS: the three terms of element i (slot 3 of the sums is MOVE's; adam is a literal at
 * the C call sites). */
OPT_FN void OPT_NAME(acme_dots_elem_)(int64_t i, const OPT_NAME(acme_ptrs_) *q,
                                       const OPT_NAME(acme_k_) *k, int adam, double t[4]) {
  const OPT_T m = q->m[i], g = q->g[i];
  const OPT_T r = OPT_NAME(acme_rden_)(adam ? q->v[i] : (OPT_T)0, k, adam);
  t[0] = (double)((m * g) * r);
  t[1] = (double)((m * m) * r);
  t[2] = (double)((g * g) * r);
  t[3] = 0.0;
}

/* MOVE, the saves first (flags of the pass; w0 only when the group does not move from it). */
OPT_FN void OPT_NAME(acme_save_elem_)(int64_t i, const OPT_NAME(acme_ptrs_) *q,
                                       const OPT_NAME(acme_k_) *k, int save_w0, int save_g0) {
  if (save_w0 && !k->from_saved) q->w0[i] = q->p[i];
  if (save_g0) q->g0[i] = q->g[i];
}

/* MOVE, a group under the reference's non-finite guard: back to the base (w0, or w
 * itself), momentum shrunk (guard 1) or left (guard 2: a group the guard already shrank). */
OPT_FN void OPT_NAME(acme_guard_elem_)(int64_t i, const OPT_NAME(acme_ptrs_) *q,
                                        const OPT_NAME(acme_k_) *k, const OPT_T *bp) {
  q->p[i] = bp[i];
  if (k->guard == 1) q->m[i] = q->m[i] * k->omb1;
}

/* MOVE: element i from base bp[i] (w0 or w). upd 1: the M-update first, 2: after the
 * move; nest: the Nesterov term with gn[i]; sum: returns (m y)/D with the moved m and D
 * (else 0); sw, sg: the saves of the pass fused in (w0 = the base w, g0 = g: sw only where
 * the group moves from w itself, so bp is p). adam, upd, nest, sum, sw and sg are literals
 * at the C call sites (specialised loops). */
OPT_FN double OPT_NAME(acme_move_elem_)(int64_t i, const OPT_NAME(acme_ptrs_) *q,
                                         const OPT_NAME(acme_k_) *k, const OPT_T *bp,
                                         const OPT_T *y, const OPT_T *gn, int adam, int upd,
                                         int nest, int sum, int sw, int sg) {
  const OPT_T g = q->g[i];
  OPT_T m = q->m[i], v = adam ? q->v[i] : (OPT_T)0;
  const OPT_T base = bp[i];
  if (sw) q->w0[i] = base;
  if (sg) q->g0[i] = g;
  if (upd == 1) {
    OPT_NAME(acme_mupdate_)(&m, &v, g, k, adam);
    q->m[i] = m;
    if (adam) q->v[i] = v;
  }
  const OPT_T r = OPT_NAME(acme_rden_)(v, k, adam);
  OPT_T w = base + k->step_m * (m * r);
  if (nest) w = w + k->step_g * ((sg ? g : gn[i]) * r);
  w = w * k->decay;
  const double term = sum ? (double)((m * (sg ? g : y[i])) * r) : 0.0;
  if (upd == 2) {
    OPT_NAME(acme_mupdate_)(&m, &v, g, k, adam);
    q->m[i] = m;
    if (adam) q->v[i] = v;
  }
  q->p[i] = w;
  return term;
}

/* ASAM's direction of element i: gh T (weight: the slice's weight_rule). */
OPT_FN OPT_T OPT_NAME(acme_asam_dir_)(int64_t i, const OPT_NAME(acme_ptrs_) *q,
                                       const OPT_NAME(acme_k_) *k, int adam, int weight,
                                       OPT_T *t) {
  OPT_T gh = q->g[i];
  if (adam) gh = gh / OPT_NAME(acme_den_)(q->v[i], k, adam);
  *t = 1;
  if (weight) {
    const OPT_T w = q->p[i];
    *t = (w < 0 ? -w : w) + k->eta;
    gh = gh * *t;
  }
  return gh;
}

/* ASAM_NORM: the term (gh T)^2 of element i. */
OPT_FN double OPT_NAME(acme_asam_norm_elem_)(int64_t i, const OPT_NAME(acme_ptrs_) *q,
                                              const OPT_NAME(acme_k_) *k, int adam, int weight) {
  OPT_T t;
  const double d = (double)OPT_NAME(acme_asam_dir_)(i, q, k, adam, weight, &t);
  return d * d;
}

/* ASAM_PERTURB: w0 = w (g0 = g), w += ((gh T) T) c. */
OPT_FN void OPT_NAME(acme_asam_perturb_elem_)(int64_t i, const OPT_NAME(acme_ptrs_) *q,
                                               const OPT_NAME(acme_k_) *k, int adam, int weight,
                                               int save_g0) {
  OPT_T t;
  OPT_T e = OPT_NAME(acme_asam_dir_)(i, q, k, adam, weight, &t);
  const OPT_T w = q->p[i];
  q->w0[i] = w;
  if (save_g0) q->g0[i] = q->g[i];
  if (weight) e = e * t;
  e = e * k->c;
  q->p[i] = w + e;
}
#endif /* OPT_T */
