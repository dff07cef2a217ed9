/* optim_autosgm.c — the AutoSGM step (rule: optim/autosgm.h), a driver of its own because
 * the per-layer numerators need a per-slice mean between two passes:
 *   single pass: groups with a constant numerator (num_lrc 0/1, or aoptlr off) and
 *                per_layer 0 groups (element-wise Q in aux->q);
 *   per-layer:   pass 1 writes each element's estimate c to aux->scratch and updates the
 *                estimator's state; ms_arena_reduce sums c per slice (deterministic);
 *                the host smooths Q_s = 0.1 Q_s + 0.9 mean_s (aux->q_slice, one per
 *                slice); pass 2 recomputes the denominator (same bits) and updates.
 * Structure (aoptlr, num_lrc, per_layer) may differ between groups: each slice runs the
 * mode of its group. On the GPU the same passes are kernels/optim_autosgm.cu. */
#include <stdlib.h>
/* FP operations do not trap here (the default environment): lets the compiler compute
 * both arms of the rule's selects and vectorise; the results are the same bits. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "internal.h"
#include "optim/common.h"
#include "optim/autosgm.h"
#include "optim/drive.h"

/* The rule's element functions, for float (_f32) and double (_f64). */
#define OPT_INCLUDE "optim/autosgm.h"
#include "optim/instances.h"

static int autosgm_consts(const char *fn, const ms_autosgm_hyper *h, int64_t step,
                          ms_autosgm_consts *k) {
  MS_TRY(ms_check_hyper(fn, "lr_init", h->lr_init, 0, INFINITY));
  MS_TRY(ms_check_hyper(fn, "beta_n", h->beta_n, 0, 1));
  MS_TRY(ms_check_hyper(fn, "beta_a", h->beta_a, 0, 1));
  MS_TRY(ms_check_hyper(fn, "beta_i", h->beta_i, 0, 1));
  MS_TRY(ms_check_hyper(fn, "eta_i", h->eta_i, 0, 1));
  MS_TRY(ms_check_hyper(fn, "weight_decay", h->weight_decay, 0, INFINITY));
  MS_TRY(ms_check_hyper(fn, "cf", h->cf, 0, INFINITY));
  if (h->beta_n >= 1 || h->beta_a >= 1 || h->beta_i >= 1)
    return ms_fail("%s: beta_n, beta_a, beta_i are (%g, %g, %g), expected each in [0, 1)", fn,
                   h->beta_n, h->beta_a, h->beta_i);
  if (!(h->gamma_i < 1 && h->gamma_i > -INFINITY))
    return ms_fail("%s: gamma_i is %g, expected a finite number < 1", fn, h->gamma_i);
  if (!(h->eps > 0 && h->eps < INFINITY))
    return ms_fail("%s: eps is %g, expected a finite number > 0", fn, h->eps);
  if (!(h->window > -INFINITY && h->window < INFINITY))
    return ms_fail("%s: window is %g, expected a finite number", fn, h->window);
  if (h->num_lrc < 0 || h->num_lrc > 4)
    return ms_fail("%s: num_lrc is %d, expected 0 to 4", fn, (int)h->num_lrc);
  if (h->wd_level != 0 && h->wd_level != 1)
    return ms_fail("%s: wd_level is %d, expected 0 or 1", fn, (int)h->wd_level);
  if (h->compat & ~(int32_t)(MS_AUTOSGM_SCALED_W | MS_AUTOSGM_LRC2_UNCLIPPED |
                             MS_AUTOSGM_MAXIMIZE_FLIPS_DECAY | MS_AUTOSGM_NUDGE_ZEROS))
    return ms_fail("%s: compat is %d, expected a set of MS_AUTOSGM_* bits", fn, (int)h->compat);
  double t = (double)step;
  k->wd = h->weight_decay;
  k->wd0 = h->weight_decay != 0 && h->wd_level == 0;
  k->wd1 = h->weight_decay != 0 && h->wd_level == 1;
  /* the moment filter reuses the smoothing filter's input gain eta_i (0: 1 - pole) */
  k->b_a = h->beta_a;
  k->eta_a = h->eta_i != 0 ? h->eta_i : 1 - h->beta_a;
  k->dbA = h->debias ? ((1 - h->beta_a) / k->eta_a) / (1 - pow(h->beta_a, t)) : 1;
  k->eps = h->eps;
  k->eps_in = h->repeat_eps ? h->eps : 0;
  k->b_i = h->beta_i, k->gam = h->gamma_i, k->omg = 1 - h->gamma_i;
  k->eta_i = h->eta_i != 0 ? h->eta_i : 1 - h->beta_i;
  k->dbI = h->debias ? ((1 - h->beta_i) / k->eta_i) / (1 - pow(h->beta_i, t)) : 1;
  k->eta_w = (1 - h->beta_i) / (1 - h->gamma_i);
  k->mu = h->lr_init, k->b_n = h->beta_n, k->omb_n = 1 - h->beta_n, k->cf = h->cf;
  k->F = h->window;
  k->nudge = step == 1 && (h->compat & MS_AUTOSGM_NUDGE_ZEROS) ? h->eps : 0;
  k->aoptlr = h->aoptlr != 0;
  /* num_lrc 1 is the reference's: its estimator is a dead branch, a = mu as for 0 */
  k->lrc = k->aoptlr && h->num_lrc >= 2 ? h->num_lrc : 0;
  int flip = (h->compat & MS_AUTOSGM_MAXIMIZE_FLIPS_DECAY) != 0;
  k->neg_in = h->maximize && !flip;
  k->neg_out = h->maximize && flip;
  k->scaled_w = (h->compat & MS_AUTOSGM_SCALED_W) != 0;
  k->clip2 = (h->compat & MS_AUTOSGM_LRC2_UNCLIPPED) == 0;
  k->perl = k->lrc >= 2 && h->per_layer != 0;
  return 0;
}

/* ---- the CPU passes --------------------------------------------------------------- */

typedef struct {
  const ms_slice_table *t;
  const void *ks;          /* autosgm_k_SFX [ngroups] */
  const void *ptrs;        /* opt_ptrs_SFX */
  void *aux;               /* T*: Q (single pass) and scratch (pass 1), by group */
  void *scratch;
  const double *a_slice;   /* pass 2: the numerator of each slice */
  int phase, f64;          /* phase 0: single pass and pass 1; 2: pass 2 */
} asgm_job;

/* The loops of slice s over [lo, hi), one per estimator, aoptlr and gamma (constants
 * of each loop: the compiler drops the others' code and vectorises). */
/* ivdep: element i reads and writes index i of each buffer only (no loop-carried
 * dependence), which the compiler cannot prove across the 9 pointers. */
#if defined(__GNUC__) && !defined(__clang__)
#define ASGM_IVDEP _Pragma("GCC ivdep")
#else
#define ASGM_IVDEP
#endif
#define ASGM_LOOP(body) ASGM_IVDEP for (int64_t i = lo; i < hi; i++) body
#define ASGM_ELEM_LRC(SFX, DIVG)                                                          \
  switch (k.lrc) {                                                                       \
    case 2: ASGM_LOOP(autosgm_elem_##SFX(i, &q, aux, &k, 2, 1, DIVG)); break;            \
    case 3: ASGM_LOOP(autosgm_elem_##SFX(i, &q, aux, &k, 3, 1, DIVG)); break;            \
    case 4: ASGM_LOOP(autosgm_elem_##SFX(i, &q, aux, &k, 4, 1, DIVG)); break;            \
    default: ASGM_LOOP(autosgm_elem_##SFX(i, &q, aux, &k, 0, 1, DIVG)); break;           \
  }
#define ASGM_SPAN(SFX, T)                                                                \
  OPT_CLONES static void asgm_span_##SFX(const asgm_job *j, int32_t s, int64_t lo,       \
                                         int64_t hi) {                                   \
    const int32_t grp = j->t->slices[s].group;                                           \
    const autosgm_k_##SFX k = ((const autosgm_k_##SFX *)j->ks)[grp];                     \
    const opt_ptrs_##SFX q = *(const opt_ptrs_##SFX *)j->ptrs;                           \
    if (j->phase == 0 && k.nudge != 0) ASGM_LOOP(autosgm_nudge_##SFX(i, &q, &k));        \
    if (!k.perl) {                                                                       \
      T *aux = (T *)j->aux;                                                              \
      if (j->phase != 0) return;                                                         \
      if (!k.aoptlr) {                                                                   \
        if (k.divg) ASGM_LOOP(autosgm_elem_##SFX(i, &q, aux, &k, 0, 0, 1));              \
        else ASGM_LOOP(autosgm_elem_##SFX(i, &q, aux, &k, 0, 0, 0));                     \
      } else if (k.divg) {                                                               \
        ASGM_ELEM_LRC(SFX, 1)                                                            \
      } else {                                                                           \
        ASGM_ELEM_LRC(SFX, 0)                                                            \
      }                                                                                  \
    } else if (j->phase == 0) {                                                          \
      T *c = (T *)j->scratch;                                                            \
      switch (k.lrc) {                                                                   \
        case 2: ASGM_LOOP(autosgm_est_pass_##SFX(i, &q, c, &k, 2)); break;               \
        case 3: ASGM_LOOP(autosgm_est_pass_##SFX(i, &q, c, &k, 3)); break;               \
        default: ASGM_LOOP(autosgm_est_pass_##SFX(i, &q, c, &k, 4)); break;              \
      }                                                                                  \
    } else {                                                                             \
      const T a = (T)j->a_slice[s];                                                      \
      if (k.divg) ASGM_LOOP(autosgm_apply_pass_##SFX(i, &q, &k, a, 1));                  \
      else ASGM_LOOP(autosgm_apply_pass_##SFX(i, &q, &k, a, 0));                         \
    }                                                                                    \
  }

#define OPT_CLONES MS_OPT_CLONES
ASGM_SPAN(f32, float)
ASGM_SPAN(f64, double)

/* The driver's span (optim/drive.h): slice s's piece [lo, hi), in the arena's type. */
static void asgm_span(const void *job, const void *k, int32_t s, int64_t lo, int64_t hi) {
  const asgm_job *j = (const asgm_job *)job;
  (void)k;   /* each slice reads its group's constants itself */
  if (j->f64) asgm_span_f64(j, s, lo, hi);
  else asgm_span_f32(j, s, lo, hi);
}

/* ---- the entry point ------------------------------------------------------------- */

/* The aux operands the groups' numerators need (the rest: ms_optim_operands). */
static int check_aux(const char *fn, const ms_optim_args *a, const ms_autosgm_aux *x,
                     int any_elem_q, int any_perl) {
  if ((any_elem_q || any_perl) && !x)
    return ms_fail("%s: argument 'aux' is NULL, needed by num_lrc 2-4", fn);
  if (any_elem_q) {
    if (!x->q) return ms_fail("%s: aux.q is NULL, needed by per_layer 0 with num_lrc 2-4", fn);
    MS_TRY(ms_optim_check_buffer(fn, "aux.q", x->q, a->param));
  }
  if (any_perl) {
    if (!x->scratch || !x->q_slice)
      return ms_fail("%s: aux.scratch and aux.q_slice are needed by per_layer 1 with num_lrc 2-4",
                     fn);
    MS_TRY(ms_optim_check_buffer(fn, "aux.scratch", x->scratch, a->param));
  }
  return 0;
}

#define PTRS(T, a, x) MS_OPT_PTRS(T, a)

/* Q_s = 0.1 Q_s + 0.9 mean_s in the arena's dtype, for the per-layer slices. */
static void smooth_slices(const ms_slice_table *t, const ms_autosgm_consts *k,
                          const double *sums, double *q_slice, int f64) {
  for (int32_t s = 0; s < t->nslices; s++) {
    if (!k[t->slices[s].group].perl || t->slices[s].count == 0) continue;
    double mean = sums[1 + s] / (double)t->slices[s].count;
    if (f64) {
      q_slice[s] = q_slice[s] * 0.1 + (1 - 0.1) * mean;
    } else {
      float qf = (float)q_slice[s] * 0.1f + (float)(1 - 0.1) * (float)mean;
      q_slice[s] = qf;
    }
  }
}

int ms_autosgm_step(const ms_optim_args *a, const ms_autosgm_hyper *h, const ms_autosgm_aux *x) {
  static const char fn[] = "autosgm_step";
  ms_optim_plan p;
  MS_TRY(ms_optim_begin(fn, a, h, &p));
  const int32_t ng = p.ngroups;
  ms_autosgm_consts kd[MS_OPTIM_MAX_GROUPS];
  unsigned need = 0;
  int any_elem_q = 0, any_perl = 0;
  for (int32_t g = 0; g < ng; g++) {
    char who[64];
    ms_optim_group_name(who, sizeof who, fn, g, ng);
    MS_TRY(autosgm_consts(who, &h[g], a->step, &kd[g]));
    need |= autosgm_needs_of(kd[g].aoptlr, kd[g].lrc);
    any_perl |= kd[g].perl;
    any_elem_q |= kd[g].lrc >= 2 && !kd[g].perl;
  }
  MS_TRY(ms_optim_operands(fn, a, need, MS_OPTIM_NSTATE, autosgm_state_names, &p));
  MS_TRY(check_aux(fn, a, x, any_elem_q, any_perl));
  int64_t n = a->param->count;
  if (n == 0) return 0;
  const ms_slice_table *t = p.t;
  double *sums = NULL;
  if (any_perl) {
    sums = malloc(sizeof(double) * ((size_t)t->nslices + 1));
    if (!sums) return ms_fail("%s: out of memory for %d slice sums", fn, (int)t->nslices);
  }
  int f64 = a->param->dtype_id == MS_FLOAT64, rc = 0;
  if (ms_device_of(a->param) == MS_CUDA) {
    ms_cuda_optim_job j = ms_optim_cuda_job(a, &p);
    float *q = any_elem_q ? (float *)ms_ptr(x->q) : NULL;
    float *c = any_perl ? (float *)ms_ptr(x->scratch) : NULL;
    rc = ms_cuda_autosgm(&j, kd, ng, 0, q, c, NULL);
    if (rc == 0 && any_perl) rc = ms_arena_reduce(MS_ARENA_SUM, x->scratch, NULL, t, sums);
    if (rc == 0 && any_perl) {
      smooth_slices(t, kd, sums, x->q_slice, 0);
      rc = ms_cuda_autosgm(&j, kd, ng, 2, q, c, x->q_slice);
    }
    free(sums);
    return rc;
  }
  asgm_job j = {t, NULL, NULL, any_elem_q ? ms_ptr(x->q) : NULL,
                any_perl ? ms_ptr(x->scratch) : NULL, NULL, 0, f64};
  autosgm_k_f32 k32[MS_OPTIM_MAX_GROUPS];
  autosgm_k_f64 k64[MS_OPTIM_MAX_GROUPS];
  opt_ptrs_f32 q32 = PTRS(float, a, x);
  opt_ptrs_f64 q64 = PTRS(double, a, x);
  if (f64) {
    for (int32_t g = 0; g < ng; g++) k64[g] = autosgm_k_of_f64(&kd[g]);
    j.ks = k64, j.ptrs = &q64;
  } else {
    for (int32_t g = 0; g < ng; g++) k32[g] = autosgm_k_of_f32(&kd[g]);
    j.ks = k32, j.ptrs = &q32;
  }
  const int64_t cost = 8;  /* elements touched per arena element, about */
  ms_drive_slices(n, cost, t, NULL, 0, asgm_span, &j);
  if (any_perl) {
    rc = ms_arena_reduce(MS_ARENA_SUM, x->scratch, NULL, t, sums);
    if (rc == 0) {
      smooth_slices(t, kd, sums, x->q_slice, f64);
      j.phase = 2, j.a_slice = x->q_slice;
      ms_drive_slices(n, cost, t, NULL, 0, asgm_span, &j);
    }
  }
  free(sums);
  return rc;
}
