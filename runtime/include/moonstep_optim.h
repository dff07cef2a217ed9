/* moonstep_optim.h — the optimizers' half of moonstep's C ABI (the rest: moonstep.h, whose
 * conventions hold here too: 0 on success, else -1 and ms_last_error()). The fused steps of
 * the optimizer engine and their per-group hyper-parameters, the arena operations and
 * reductions of the multi-pass optimizers, and the zeroth-order directions (SPSA).
 * LuaJIT binds the MS_CDEF block below after moonstep.h's (lua/moonstep/core.lua): it must
 * stay FFI-parseable (no macros, no preprocessor lines inside it). */
#ifndef MOONSTEP_OPTIM_H
#define MOONSTEP_OPTIM_H
#include "moonstep.h"
#ifdef __cplusplus
extern "C" {
#endif

/* MS_CDEF_BEGIN */
/* ---- the optimizer engine: fused steps and arena reductions ------------------------------
 * An optimizer updates the parameter arena (flat, contiguous, float32 or float64) from its
 * gradient arena in one pass, one kernel launch on the GPU. The arena is cut into slices
 * (one per parameter tensor); each slice belongs to a parameter group, and each group has
 * its own hyper-parameters. The per-element rules live in runtime/optim/<rule>.h, written
 * once for the C loops and the CUDA kernels; each rule derives its constants (1 - beta,
 * bias corrections, step sizes) in double on the host, once per group per step, and
 * rounds as torch.optim does in the arena's dtype: float32 runs reproduce PyTorch's
 * float32 trajectories. */
enum { MS_KIND_WEIGHT = 0, MS_KIND_BIAS = 1, MS_KIND_NORM = 2 };
enum { MS_OPTIM_MAX_GROUPS = 32 };

/* One slice of the arena: elements [offset, offset + count), 0-based. */
typedef struct ms_slice {
  int64_t offset, count;
  int32_t group;   /* its parameter group, 0-based, < the table's ngroups */
  int32_t kind;    /* MS_KIND_* (weight-decay masks and per-tensor rules read it) */
} ms_slice;

/* The slice table: sorted by offset, disjoint, covering the whole arena. */
typedef struct ms_slice_table {
  const ms_slice *slices;  /* host memory, nslices entries */
  int32_t nslices;         /* >= 1 */
  int32_t ngroups;         /* 1 .. MS_OPTIM_MAX_GROUPS */
  const int64_t *device;   /* GPU arenas: the table in device memory, int64
                              [2 nslices + 1] = offsets of the slices and the arena's
                              end, then their groups; NULL for CPU arenas */
} ms_slice_table;

/* The operands of one fused step. */
typedef struct ms_optim_args {
  ms_tensor *param;             /* the flat arena [n] */
  const ms_tensor *grad;        /* its gradient: same dtype, device and shape */
  ms_tensor *state[6];          /* the rule's buffers, like param; NULL where unused */
  const ms_slice_table *table;  /* NULL: uniform (one slice, group 0) */
  int64_t step;                 /* the step being taken, >= 1 */
} ms_optim_args;

/* Hyper-parameters of one group, as the user gave them (the rule derives the rest).
 * Values must be finite; the step functions check each and name it. */

/* SGD (torch.optim.SGD): d = g (-g if maximize) + wd p; with momentum (state[0] = buf):
 * buf = (step 1 ? d : mu buf + (1 - dampening) d), d = nesterov ? d + mu buf : buf;
 * p -= lr d. lr, momentum, weight_decay >= 0, dampening in [0, 1]; nesterov needs
 * momentum > 0 and dampening 0. Every group with momentum > 0 needs state[0]; the
 * buffer starts as the gradient at the group's first step with momentum (first = 1). */
typedef struct ms_sgd_hyper {
  double lr, momentum, dampening, weight_decay;
  int32_t nesterov, maximize, first;
} ms_sgd_hyper;
int ms_sgd_step(const ms_optim_args *a, const ms_sgd_hyper *h);

/* Adam / AdamW (torch.optim.Adam, AdamW): g (-g if maximize); decoupled = 0: g += wd p;
 * decoupled = 1: p *= 1 - lr wd; m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2;
 * amsgrad: vmax = max(vmax, v), used for v below;
 * p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), bc_i = 1 - b_i^step.
 * state: [0] m, [1] v, [2] vmax (amsgrad only). */
typedef struct ms_adam_hyper {
  double lr, beta1, beta2, eps, weight_decay;
  int32_t decoupled, amsgrad, maximize;
} ms_adam_hyper;
int ms_adam_step(const ms_optim_args *a, const ms_adam_hyper *h);

/* AutoSGM (somefunAgba/autosgm v2; the rule and its formulas: runtime/optim/autosgm.h).
 * window: the lr window's value F_t at this step (1 without one). num_lrc 1 is the
 * reference's (a = lr_init, as 0). compat: MS_AUTOSGM_* bits reproducing the reference's
 * quirks. state: [0] smoothing filter, [1] moment filter (aoptlr), [2..5] the numerator
 * estimator's (num_lrc 2: 1 buffer, 3: 3, 4: 4). aux: num_lrc 2-4 with per_layer 0 need
 * q (the element-wise numerator, like param); with per_layer 1, scratch (like param) and
 * q_slice (host, one double per slice: the per-slice numerator, updated by the step). */
enum {
  MS_AUTOSGM_SCALED_W = 1,              /* num_lrc 3 uses the beta_n-scaled E[w^2] */
  MS_AUTOSGM_LRC2_UNCLIPPED = 2,        /* num_lrc 2, per_layer 0: P not clipped at lr_init */
  MS_AUTOSGM_MAXIMIZE_FLIPS_DECAY = 4,  /* maximize negates the update, decay included */
  MS_AUTOSGM_NUDGE_ZEROS = 8            /* step 1: |p| < eps becomes p + eps */
};
typedef struct ms_autosgm_hyper {
  double lr_init, beta_n, beta_a, beta_i, gamma_i, eta_i, weight_decay, eps, cf, window;
  int32_t aoptlr, num_lrc, debias, repeat_eps, wd_level, per_layer, maximize, compat;
} ms_autosgm_hyper;
typedef struct ms_autosgm_aux {
  ms_tensor *q, *scratch;
  double *q_slice;
} ms_autosgm_aux;
int ms_autosgm_step(const ms_optim_args *a, const ms_autosgm_hyper *h, const ms_autosgm_aux *x);

/* ACME (ignasi00/acme, ICASSP 2025): the fused passes its step composes (the step and its
 * scalars: lua/moonstep/optim/ACME.lua; per-element formulas: runtime/optim/acme.h). Per
 * group, D(v) = (sqrt(v / bc2) + eps) bc1 with adam, else the constant dconst.
 *   MS_ACME_DOTS          out[4 g + j], j = 0..2: sums over group g of (m g)/D, (m m)/D and
 *                         (g g)/D (out[4 g + 3] = 0); v is read, not written
 *   MS_ACME_MOVE          update 1: the M-update m = b1 m + (1 - b1) kappa g, v = b2 v +
 *                         (1 - b2) (kappa g)^2 (adam) first; then, with D of that v,
 *                         w = base + step_m m/D [+ step_g gn/D when nesterov; gn = g0 if
 *                         gsel_g0 else g], w *= decay; base = w0 if from_saved else w;
 *                         update 2: the M-update after the move; guard 1: w = base,
 *                         m *= 1 - beta1, nothing else; guard 2: w = base only.
 *                         MS_ACME_SUM: out[4 g] = sum of (m y)/D with the moved m and D,
 *                         y = g0 if given else g
 *   MS_ACME_ASAM_NORM     out[4 g] = sum of (gh T)^2: gh = g / D (adam) or g, T = |w| + eta
 *                         on the slices with weight_rule[s] != 0, else 1
 *   MS_ACME_ASAM_PERTURB  w0 = w, then w += (gh T) T asam_scale
 * flags: MS_ACME_SAVE_W0 (MOVE: w0 = w first, in groups without from_saved),
 * MS_ACME_SAVE_G0 (MOVE, PERTURB: g0 = g first), MS_ACME_SUM. Quotients by D are products
 * with 1/D. Each term is computed in the arena's dtype and summed in float64 in
 * a fixed order (chunks of MS_REDUCE_BLOCK within each slice, slices in order): the same
 * bits whatever the thread count. */
enum ms_acme_op { MS_ACME_DOTS = 0, MS_ACME_MOVE = 1, MS_ACME_ASAM_NORM = 2, MS_ACME_ASAM_PERTURB = 3 };
enum { MS_ACME_SAVE_W0 = 1, MS_ACME_SAVE_G0 = 2, MS_ACME_SUM = 4 };
typedef struct ms_acme_hyper {
  double beta1, beta2, eps, bc1, bc2, dconst, kappa, step_m, step_g, decay, asam_scale, eta;
  int32_t adam, update, nesterov, gsel_g0, guard, from_saved;
} ms_acme_hyper;
typedef struct ms_acme_args {
  ms_tensor *param;
  const ms_tensor *grad;
  ms_tensor *m, *v, *w0, *g0;   /* like param; v: groups with adam; w0, g0: as the op needs */
  const ms_slice_table *table;  /* NULL: one slice, group 0 */
  const int32_t *weight_rule;   /* per slice (ASAM's T), NULL: none */
  int32_t flags;
} ms_acme_args;
int ms_acme_pass(int32_t op, const ms_acme_args *a, const ms_acme_hyper *h, double *out);

/* NAdam (PyTorch >= 2.0's torch.optim.NAdam): decoupled = 0: g += wd p; decoupled = 1:
 * p *= 1 - lr wd (NAdamW); mu_t = beta1 (1 - 0.5 0.96^(t momentum_decay));
 * m = lerp(m, g, 1 - beta1), v = beta2 v + (1 - beta2) g^2,
 * denom = sqrt(v / (1 - beta2^t)) + eps; p -= lr (1 - mu_t) / (1 - mu_product) g / denom
 * + lr mu_{t+1} / (1 - mu_product mu_{t+1}) m / denom. mu_product: prod_{i <= t} mu_i, kept
 * by the caller in the arena's dtype (PyTorch keeps it in the default dtype), in [0, 1).
 * state: [0] m, [1] v. */
typedef struct ms_nadam_hyper {
  double lr, beta1, beta2, eps, weight_decay, momentum_decay, mu_product;
  int32_t decoupled;
} ms_nadam_hyper;
int ms_nadam_step(const ms_optim_args *a, const ms_nadam_hyper *h);

/* RMSprop (torch.optim.RMSprop): g (-g if maximize) + wd p; v = alpha v + (1 - alpha) g^2;
 * centered: a = alpha a + (1 - alpha) g, avg = sqrt(v - a^2) + eps, else sqrt(v) + eps;
 * momentum > 0: buf = momentum buf + g / avg, p -= lr buf; else p -= lr g / avg.
 * alpha in [0, 1]; lr, eps, weight_decay, momentum >= 0.
 * state: [0] square_avg, [1] momentum_buffer (momentum > 0), [2] grad_avg (centered). */
typedef struct ms_rmsprop_hyper {
  double lr, alpha, eps, weight_decay, momentum;
  int32_t centered, maximize;
} ms_rmsprop_hyper;
int ms_rmsprop_step(const ms_optim_args *a, const ms_rmsprop_hyper *h);

/* Adagrad (torch.optim.Adagrad, dense): g (-g if maximize) + wd p;
 * sum = (step 1 ? initial_accumulator_value : sum) + g^2;
 * p -= lr / (1 + (step - 1) lr_decay) g / (sqrt(sum) + eps). Every value >= 0.
 * state: [0] sum. */
typedef struct ms_adagrad_hyper {
  double lr, lr_decay, weight_decay, initial_accumulator_value, eps;
  int32_t maximize;
} ms_adagrad_hyper;
int ms_adagrad_step(const ms_optim_args *a, const ms_adagrad_hyper *h);

/* BSAM (official Bayesian SAM, team-approx-bayes/bayesian-sam): one rule, three phases
 * (the fused passes of a step; formulas in runtime/optim/bsam.h). phase 0: state[2] = p,
 * p += sqrt(1 / (num_data s)) z with z in grad; 1: state[3] = sqrt(s g^2),
 * p = state[2] + rho g / s; 2: m = b1 m + (1 - b1) (g + wd state[2]),
 * p = state[2] - lr m / s, s = b2 s + (1 - b2) (state[3] + damping + wd).
 * state: [0] s (precision), [1] m, [2] the saved mean, [3] gs. */
typedef struct ms_bsam_hyper {
  double lr, beta1, beta2, weight_decay, rho, damping, num_data;
  int32_t phase;
} ms_bsam_hyper;
int ms_bsam_step(const ms_optim_args *a, const ms_bsam_hyper *h);

/* Deterministic reductions over an arena: fixed blocks of MS_REDUCE_BLOCK elements within
 * each slice, each block accumulated in float64, the blocks of a slice summed in order, the
 * slices summed in order: the same bits whatever the thread count (and on the GPU, whose
 * blocks are the same). out[0] = over the arena; out[1 + s] = over slice s when table is
 * not NULL (out then holds table->nslices + 1 values). b is used by MS_ARENA_DOT only. */
enum { MS_REDUCE_BLOCK = 4096 };
enum ms_arena_op {
  MS_ARENA_SUM, MS_ARENA_SUMSQ, MS_ARENA_DOT, MS_ARENA_ABSMAX,
  MS_ARENA_NONFINITE,  /* sum of a * 0: 0 when every element is finite, else nan */
  MS_ARENA_SQPROD,     /* sum of a^2 b^2 (||w g||^2 of the adaptive SAM forms) */
  MS_ARENA_ABSPROD     /* sum of a^2 |b| (with SQPROD and SUMSQ: ||(|w| + eta) g||^2) */
};
int ms_arena_reduce(int32_t op, const ms_tensor *a, const ms_tensor *b,
                    const ms_slice_table *table, double *out);
/* a[slice s] *= scale[s] for every slice s of the table (scale: nslices finite values). */
int ms_arena_scale(ms_tensor *a, const ms_slice_table *table, const double *scale);
/* y[slice s] = a[s] y + b[s] x for every slice s of the table (table NULL: one slice, a[0],
 * b[0]); x NULL: y = a[s] y. x and y: flat arenas of one dtype, device and size; the
 * coefficients finite, rounded to the arena's dtype. */
int ms_arena_axpby(ms_tensor *y, const double *a, const ms_tensor *x, const double *b,
                   const ms_slice_table *table);
/* The SAM family's ascent step, per slice s of the table (NULL: one slice, per[0]):
 * out = w + (t^power g) scale with t = |w| + eta, power 0, 1 or 2 (runtime/optim/
 * arena_ops.h); out may be w itself. */
typedef struct ms_perturb_slice {
  double scale, eta;
  int32_t power;
} ms_perturb_slice;
int ms_arena_perturb(const ms_tensor *w, const ms_tensor *g, ms_tensor *out,
                     const ms_slice_table *table, const ms_perturb_slice *per);
/* Exchange the contents of two whole arenas (same dtype, device and size, each the whole of
 * its storage) by trading their storages' memory: O(1), every view of either follows; the
 * same call again trades it back. The SAM family evaluates pass 2 at a perturbed copy this
 * way and comes back bit-exactly. A storage released while traded takes its memory back. */
int ms_arena_swap(ms_tensor *a, ms_tensor *b);
/* a's storage traded back to its own memory if it is traded (returns 1), else 0. */
int ms_arena_untrade(const ms_tensor *a);

/* ---- zeroth-order directions (runtime/zo.c, zo_move.c; rule: runtime/optim/zo.h) ------
 * u = direction `index` of step `step` under `seed`, element j = the global arena index:
 * Philox4x32-10, key (seed low, seed high), counter (block low, block high, index, step).
 * rademacher: 128 elements a block, word (j/32)%4, bit j%32 (+1 set, -1 clear);
 * segmented_uniform: 4 a block, word w = j%4, +-(2^23 + (w >> 9)) 2^-24 (+ when w & 1);
 * gaussian: 4 a block, Box-Muller on words (0,1) and (2,3) with moonstep's own log, sin
 * and cos (same bits on CPU and GPU). u is float32; the perturbation of element j is
 * d = fl(scale u) in the arena's dtype, and w' = fl(w + d). */
enum ms_zo_dist { MS_ZO_RADEMACHER = 0, MS_ZO_GAUSSIAN = 1, MS_ZO_SEGMENTED = 2 };
typedef struct ms_zo_dir {
  uint64_t seed;    /* the run's seed */
  uint64_t step;    /* k, < 2^32 */
  uint32_t index;   /* i, the direction within step k */
  int32_t dist;     /* enum ms_zo_dist */
  double scale;     /* d = fl(scale u); 0 = no perturbation */
} ms_zo_dir;
/* out[j] = fl(dir.scale u(offset + j)), out contiguous (row-major j), float32/float64.
 * A 2-D out [r, d] holds r directions: row k is direction dir.index + k (< 2^32) at elements
 * offset .. offset + d - 1 (one pass for r directions). */
int ms_zo_fill(ms_tensor *out, const ms_zo_dir *dir, int64_t offset);
/* out[j] = fl(w[j] + d(offset + j)); out may be w itself (in place, no log). */
int ms_zo_perturb(ms_tensor *out, const ms_tensor *w, const ms_zo_dir *dir, int64_t offset);
/* The exact-restore log of an in-place perturbation: for the elements whose subtraction
 * of the perturbation would not give them back, how to get the original bits: per chunk of
 * 4096 elements a byte stream of (gap, difference in units in the last place) entries,
 * about 2 bytes an entry (the original value in full for the rare others). Opaque; owns
 * host or device memory (that of the last arena it logged). */
typedef struct ms_zo_log ms_zo_log;
ms_zo_log *ms_zo_log_new(void);
void ms_zo_log_free(ms_zo_log *log);
int64_t ms_zo_log_count(const ms_zo_log *log);   /* entries held */
int64_t ms_zo_log_bytes(const ms_zo_log *log);   /* memory held (capacity) */
/* One pass over the arena w (contiguous): base = fl(w - d_from) (from NULL or scale 0:
 * base = w), the entries of log `in` put back exactly; then w = fl(base + d_to) (to NULL
 * or scale 0: w = base). With `out` (cleared first, in != out), every element with
 * fl(w - d_to) != base (bitwise) is logged there. So move(NULL -> +h u, out A);
 * move(+h u, A -> -h u, out B); move(-h u, B -> NULL) gives w back bit for bit. */
int ms_zo_move(ms_tensor *w, const ms_zo_dir *from, const ms_zo_log *in,
               const ms_zo_dir *to, ms_zo_log *out);
/* g[j] = beta g[j] + sum_i coef[i] W(u_i(j)) (i in order, in g's dtype); W(u) = u, or 1/u
 * when divide (rademacher and segmented_uniform only). dirs[i].scale is ignored; beta 0:
 * g is not read. */
int ms_zo_estimate(ms_tensor *g, const ms_zo_dir *dirs, const double *coef, int32_t n,
                   int32_t divide, double beta);
/* MeZO's fused update, in one pass with the last restore: base = w with `from` taken off
 * exactly as ms_zo_move(w, from, in, NULL, NULL) does (from NULL or scale 0, in NULL:
 * base = w), then w[j] = base[j] - lr_s (sum_i coef[i] u_i(j) + wd_s base[j]), lr_s and wd_s
 * those of the group of j's slice (table NULL: lr[0], wd[0]). A `from` equal to one of
 * dirs (scale aside) is generated once. */
int ms_zo_mezo_update(ms_tensor *w, const ms_zo_dir *from, const ms_zo_log *in,
                      const ms_zo_dir *dirs, const double *coef, int32_t n,
                      const ms_slice_table *table, const double *lr, const double *wd);

/* MS_CDEF_END */
#ifdef __cplusplus
}
#endif
#endif
