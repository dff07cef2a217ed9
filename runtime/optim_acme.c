/* optim_acme.c — ACME's fused passes (ms_acme_pass, moonstep.h "ACME"; the per-element
 * rules: optim/acme.h; the step and its scalars: lua/moonstep/optim/ACME.lua).
 *
 * Every pass walks the arena as a list of chunks (at most MS_REDUCE_BLOCK elements, each
 * within one slice, slices in order), as runtime/arena.c's reductions do: a chunk's sums
 * are accumulated in float64 with 8 interleaved accumulators combined in a fixed order,
 * and the chunks' partials are added into their group's total in chunk order (no per-slice
 * subtotal: the same terms summed by optim/reduce.lua may differ in the last bits). Threads (or CUDA
 * blocks) only decide who computes which chunk: the sums are the same bits whatever the
 * thread count. Passes that write (MOVE, ASAM_PERTURB) write element i from element i
 * only. On the GPU the same chunks are kernels/optim_acme.cu's blocks. */
#include <stdlib.h>
#include "internal.h"
#include "optim/common.h"
#include "optim/acme.h"
#include "optim/drive.h"

/* always_inline: the element rules are inlined into every specialised loop, however many
 * (the inliner's size limits would otherwise leave calls per element in some). */
#define OPT_FN static inline MS_OPT_ALWAYS_INLINE
#define OPT_INCLUDE "optim/acme.h"
#include "optim/instances.h"

/* ---- checks ------------------------------------------------------------------------ */

static int check_hyper(const char *fn, int32_t g, const ms_acme_hyper *h) {
  const double v[12] = {h->beta1, h->beta2, h->eps,    h->bc1,   h->bc2,        h->dconst,
                        h->kappa, h->step_m, h->step_g, h->decay, h->asam_scale, h->eta};
  static const char *const names[12] = {"beta1",  "beta2",  "eps",    "bc1",
                                        "bc2",    "dconst", "kappa",  "step_m",
                                        "step_g", "decay",  "asam_scale", "eta"};
  for (int j = 0; j < 12; j++)
    if (!isfinite(v[j]))
      return ms_fail("%s: group %d: %s is %g, expected a finite number", fn, (int)g + 1,
                     names[j], v[j]);
  if (!(h->beta1 >= 0 && h->beta1 < 1 && h->beta2 >= 0 && h->beta2 < 1))
    return ms_fail("%s: group %d: betas are (%g, %g), expected each in [0, 1)", fn, (int)g + 1,
                   h->beta1, h->beta2);
  if (!(h->bc1 > 0 && h->bc2 > 0 && h->dconst > 0))
    return ms_fail("%s: group %d: bc1, bc2, dconst are (%g, %g, %g), expected each > 0", fn,
                   (int)g + 1, h->bc1, h->bc2, h->dconst);
  if (h->update < 0 || h->update > 2)
    return ms_fail("%s: group %d: update is %d, expected 0, 1 or 2", fn, (int)g + 1,
                   (int)h->update);
  if (h->guard < 0 || h->guard > 2)
    return ms_fail("%s: group %d: guard is %d, expected 0, 1 or 2", fn, (int)g + 1,
                   (int)h->guard);
  return 0;
}

/* ---- the CPU passes ------------------------------------------------------------------ */

typedef struct {
  int32_t op, flags, f64;
  const int64_t *chunks;
  const void *ks;    /* acme_k_SFX [ngroups] */
  const void *ptrs;  /* acme_ptrs_SFX */
  double *partial;   /* [nchunks][MS_ACME_NSUM] */
} acme_job;

/* acc[j][l] += terms over the chunk, element k going to lane k mod 8 (a fixed order);
 * the op and adam are chosen outside the loops, so that each loop is specialised. */
/* ivdep: element i reads and writes index i of each buffer only (no loop-carried
 * dependence), which the compiler cannot prove across the six pointers. */
#if defined(__GNUC__) && !defined(__clang__)
#define ACME_IVDEP _Pragma("GCC ivdep")
#else
#define ACME_IVDEP
#endif
#define ACME_LOOP(BODY)                                                                    \
  do {                                                                                     \
    int64_t e = 0;                                                                         \
    const int64_t m8 = cnt & ~(int64_t)7;                                                  \
    for (; e < m8; e += 8)                                                                 \
      ACME_IVDEP for (int l = 0; l < 8; l++) {                                             \
        const int64_t i = off + e + l;                                                     \
        BODY;                                                                              \
      }                                                                                    \
    for (; e < cnt; e++) {                                                                 \
      const int64_t i = off + e;                                                           \
      const int l = (int)(e & 7);                                                          \
      (void)l;                                                                             \
      BODY;                                                                                \
    }                                                                                      \
  } while (0)
/* A loop without sums (element i from element i only). */
#define ACME_EACH(BODY)                                                                    \
  do {                                                                                     \
    const int64_t end = off + cnt;                                                         \
    ACME_IVDEP for (int64_t i = off; i < end; i++) { BODY; }                               \
  } while (0)
/* MOVE's loops, specialised on adam (A), the M-update's place, nesterov and the sum; the
 * saves (W: w0, G: g0) fused into the loop of the first move (M-update first, the sum,
 * no Nesterov term: the pass that saves them), else a loop of their own before. */
#define ACME_MOVE_E(SFX, A, U, N, S, W, G)                                                 \
  acme_move_elem_##SFX(i, &q, &k, bp, y, gn, A, U, N, S, W, G)
#define ACME_MOVE_1(SFX, A, U, N, S, W, G)                                                 \
  do {                                                                                     \
    if (S) ACME_LOOP(acc[0][l] += ACME_MOVE_E(SFX, A, U, N, S, W, G));                     \
    else ACME_EACH((void)ACME_MOVE_E(SFX, A, U, N, S, W, G));                              \
  } while (0)
#define ACME_MOVE_N(SFX, A, U, S)                                                          \
  {                                                                                        \
    if (sw || sg) ACME_EACH(acme_save_elem_##SFX(i, &q, &k, sw, sg));                      \
    if (k.nesterov) ACME_MOVE_1(SFX, A, U, 1, S, 0, 0);                                    \
    else ACME_MOVE_1(SFX, A, U, 0, S, 0, 0);                                               \
  }
#define ACME_MOVE_S(SFX, A, U)                                                             \
  {                                                                                        \
    if (sum) ACME_MOVE_N(SFX, A, U, 1)                                                     \
    else ACME_MOVE_N(SFX, A, U, 0)                                                         \
  }
#define ACME_MOVE_U(SFX, A)                                                                \
  {                                                                                        \
    if (k.update == 1 && sum && !k.nesterov && sw) {                                       \
      if (sg) ACME_MOVE_1(SFX, A, 1, 0, 1, 1, 1);                                          \
      else ACME_MOVE_1(SFX, A, 1, 0, 1, 1, 0);                                             \
    } else if (k.update == 1) ACME_MOVE_S(SFX, A, 1)                                       \
    else if (k.update == 2) ACME_MOVE_S(SFX, A, 2)                                         \
    else ACME_MOVE_S(SFX, A, 0)                                                            \
  }
/* DOTS's loops, specialised on adam (A). */
#define ACME_DOTS(SFX, A)                                                                  \
  ACME_LOOP(acme_dots_elem_##SFX(i, &q, &k, A, t);                                         \
            for (int s = 0; s < 4; s++) acc[s][l] += t[s])
/* ASAM's loops, specialised on adam (A) and the slice's weight rule. */
#define ACME_ASAM(SFX, A)                                                                  \
  {                                                                                        \
    if (j->op == MS_ACME_ASAM_NORM) {                                                      \
      if (weight) ACME_LOOP(acc[0][l] += acme_asam_norm_elem_##SFX(i, &q, &k, A, 1));      \
      else ACME_LOOP(acc[0][l] += acme_asam_norm_elem_##SFX(i, &q, &k, A, 0));             \
    } else if (weight) {                                                                   \
      if (sg) ACME_EACH(acme_asam_perturb_elem_##SFX(i, &q, &k, A, 1, 1));                 \
      else ACME_EACH(acme_asam_perturb_elem_##SFX(i, &q, &k, A, 1, 0));                    \
    } else {                                                                               \
      if (sg) ACME_EACH(acme_asam_perturb_elem_##SFX(i, &q, &k, A, 0, 1));                 \
      else ACME_EACH(acme_asam_perturb_elem_##SFX(i, &q, &k, A, 0, 0));                    \
    }                                                                                      \
  }
#define ACME_CHUNK(SFX, T)                                                                 \
  MS_OPT_CLONES static void acme_chunk_##SFX(const acme_job *j, int64_t c) {                           \
    const int64_t *ch = j->chunks + MS_ACME_CHUNK * c;                                     \
    const int64_t off = ch[0], cnt = ch[1];                                                \
    const int weight = ch[3] != 0;                                                         \
    const acme_k_##SFX k = ((const acme_k_##SFX *)j->ks)[ch[2]];                           \
    const acme_ptrs_##SFX q = *(const acme_ptrs_##SFX *)j->ptrs;                           \
    const int sg = (j->flags & MS_ACME_SAVE_G0) != 0;                                      \
    /* w0 is saved only where the group moves from w (from_saved: w0 is its base) */      \
    const int sw = (j->flags & MS_ACME_SAVE_W0) != 0 && !k.from_saved;                     \
    const int sum = (j->flags & MS_ACME_SUM) != 0;                                         \
    double acc[MS_ACME_NSUM][8] = {{0}};                                                    \
    double t[4];                                                                           \
    switch (j->op) {                                                                       \
      case MS_ACME_DOTS:                                                                   \
        if (k.adam) ACME_DOTS(SFX, 1);                                                     \
        else ACME_DOTS(SFX, 0);                                                            \
        break;                                                                             \
      case MS_ACME_MOVE: {                                                                 \
        const T *bp = k.from_saved ? q.w0 : q.p, *y = q.g0 ? q.g0 : q.g;                   \
        const T *gn = k.gsel_g0 ? q.g0 : q.g;                                              \
        if (k.guard) {                                                                     \
          if (sw || sg) ACME_EACH(acme_save_elem_##SFX(i, &q, &k, sw, sg));                \
          ACME_EACH(acme_guard_elem_##SFX(i, &q, &k, bp));                                 \
        } else if (k.adam) ACME_MOVE_U(SFX, 1)                                             \
        else ACME_MOVE_U(SFX, 0)                                                           \
        break;                                                                             \
      }                                                                                    \
      default:                                                                             \
        if (k.adam) ACME_ASAM(SFX, 1)                                                      \
        else ACME_ASAM(SFX, 0)                                                             \
        break;                                                                             \
    }                                                                                      \
    for (int s = 0; s < MS_ACME_NSUM; s++) {                                               \
      const double *a = acc[s];                                                            \
      j->partial[MS_ACME_NSUM * c + s] = ((a[0] + a[1]) + (a[2] + a[3])) +                 \
                                         ((a[4] + a[5]) + (a[6] + a[7]));                  \
    }                                                                                      \
  }

ACME_CHUNK(f32, float)
ACME_CHUNK(f64, double)

static void acme_share(void *ctx, int64_t lo, int64_t hi) {
  const acme_job *j = ctx;
  for (int64_t c = lo; c < hi; c++) {
    if (j->f64) acme_chunk_f64(j, c);
    else acme_chunk_f32(j, c);
  }
}

/* ---- the entry point ----------------------------------------------------------------- */

#define PTRS(T, a)                                                                         \
  {(T *)ms_ptr((a)->param), (const T *)ms_ptr((a)->grad),                                  \
   (a)->m ? (T *)ms_ptr((a)->m) : NULL, (a)->v ? (T *)ms_ptr((a)->v) : NULL,                \
   (a)->w0 ? (T *)ms_ptr((a)->w0) : NULL, (a)->g0 ? (T *)ms_ptr((a)->g0) : NULL}

/* The chunk list and partial sums, kept per thread between calls (grown when needed). */
static _Thread_local int64_t *g_chunks;
static _Thread_local double *g_partial;
static _Thread_local int64_t g_capacity;

static int reserve(int64_t nchunks) {
  if (nchunks < 1) nchunks = 1;
  if (nchunks <= g_capacity) return 0;
  int64_t *c = realloc(g_chunks, sizeof(int64_t) * MS_ACME_CHUNK * (size_t)nchunks);
  if (!c) return -1;
  g_chunks = c;
  double *p = realloc(g_partial, sizeof(double) * MS_ACME_NSUM * (size_t)nchunks);
  if (!p) return -1;
  g_partial = p, g_capacity = nchunks;
  return 0;
}

int ms_acme_pass(int32_t op, const ms_acme_args *a, const ms_acme_hyper *h, double *out) {
  static const char fn[] = "acme_pass";
  MS_CHECK_INTERRUPT(fn);
  if (!a) return ms_fail("%s: argument 'args' is NULL", fn);
  if (!h) return ms_fail("%s: argument 'hyper' is NULL", fn);
  if (op < MS_ACME_DOTS || op > MS_ACME_ASAM_PERTURB)
    return ms_fail("%s: op is %d, expected one of the MS_ACME_* values", fn, (int)op);
  if (a->flags & ~(int32_t)(MS_ACME_SAVE_W0 | MS_ACME_SAVE_G0 | MS_ACME_SUM))
    return ms_fail("%s: flags is %d, expected a set of MS_ACME_* bits", fn, (int)a->flags);
  const ms_tensor *param = a->param;
  if (!param) return ms_fail("%s: argument 'param' is NULL", fn);
  MS_TRY(ms_check_float(fn, "param", param));
  if (!ms_tensor_is_contiguous(param))
    return ms_fail("%s: argument 'param' is not contiguous, expected the flat arena", fn);
  if (!a->grad) return ms_fail("%s: argument 'grad' is NULL", fn);
  MS_TRY(ms_optim_check_buffer(fn, "grad", a->grad, param));
  const int gpu = ms_device_of(param) == MS_CUDA;
  ms_slice one = {0, param->count, 0, MS_KIND_WEIGHT};
  ms_slice_table uniform = {&one, 1, 1, NULL};
  if (a->table) MS_TRY(ms_check_slice_table(fn, a->table, param->count, 0));
  const ms_slice_table *t = a->table ? a->table : &uniform;
  const int32_t ng = t->ngroups;
  /* the operands the op and the groups need */
  int any_adam = 0, any_saved = 0, any_gsel = 0;
  for (int32_t g = 0; g < ng; g++) {
    MS_TRY(check_hyper(fn, g, &h[g]));
    any_adam |= h[g].adam != 0;
    any_saved |= h[g].from_saved != 0;
    any_gsel |= h[g].nesterov != 0 && h[g].gsel_g0 != 0;
  }
  const int need_m = op == MS_ACME_DOTS || op == MS_ACME_MOVE;
  const int need_w0 = op == MS_ACME_ASAM_PERTURB ||
                      (op == MS_ACME_MOVE && (any_saved || (a->flags & MS_ACME_SAVE_W0)));
  const int need_g0 = (a->flags & MS_ACME_SAVE_G0) || (op == MS_ACME_MOVE && any_gsel);
  const struct { const char *name; const ms_tensor *b; int need; } ops[4] = {
      {"m", a->m, need_m}, {"v", a->v, any_adam}, {"w0", a->w0, need_w0}, {"g0", a->g0, need_g0}};
  for (int s = 0; s < 4; s++) {
    if (ops[s].b) MS_TRY(ms_optim_check_buffer(fn, ops[s].name, ops[s].b, param));
    else if (ops[s].need) return ms_fail("%s: argument '%s' is NULL, needed by this pass", fn, ops[s].name);
  }
  if ((a->w0 && (a->w0 == param || a->w0 == a->grad)) || (a->g0 && (a->g0 == param || a->g0 == a->grad)))
    return ms_fail("%s: 'w0' and 'g0' must be other tensors than 'param' and 'grad'", fn);
  const int sums = op == MS_ACME_DOTS || op == MS_ACME_ASAM_NORM ||
                   (op == MS_ACME_MOVE && (a->flags & MS_ACME_SUM));
  if (sums && !out) return ms_fail("%s: argument 'out' is NULL, needed by this pass", fn);
  /* the chunks */
  int64_t nchunks = 0;
  for (int32_t s = 0; s < t->nslices; s++)
    nchunks += (t->slices[s].count + MS_REDUCE_BLOCK - 1) / MS_REDUCE_BLOCK;
  if (reserve(nchunks) != 0)
    return ms_fail("%s: out of memory for %lld chunks", fn, (long long)nchunks);
  int64_t c = 0;
  for (int32_t s = 0; s < t->nslices; s++)
    for (int64_t o = 0; o < t->slices[s].count; o += MS_REDUCE_BLOCK, c++) {
      int64_t *q = g_chunks + MS_ACME_CHUNK * c, left = t->slices[s].count - o;
      q[0] = t->slices[s].offset + o;
      q[1] = left < MS_REDUCE_BLOCK ? left : MS_REDUCE_BLOCK;
      q[2] = t->slices[s].group;
      q[3] = a->weight_rule ? a->weight_rule[s] != 0 : 0;
    }
  int rc = 0;
  if (gpu) {
    float *ptrs[6] = {(float *)ms_ptr(param), (float *)ms_ptr(a->grad),
                      a->m ? (float *)ms_ptr(a->m) : NULL, a->v ? (float *)ms_ptr(a->v) : NULL,
                      a->w0 ? (float *)ms_ptr(a->w0) : NULL, a->g0 ? (float *)ms_ptr(a->g0) : NULL};
    rc = nchunks ? ms_cuda_acme(op, ptrs, g_chunks, nchunks, h, ng, a->flags, g_partial) : 0;
  } else {
    acme_k_f32 k32[MS_OPTIM_MAX_GROUPS];
    acme_k_f64 k64[MS_OPTIM_MAX_GROUPS];
    acme_ptrs_f32 q32 = PTRS(float, a);
    acme_ptrs_f64 q64 = PTRS(double, a);
    int f64 = param->dtype_id == MS_FLOAT64;
    for (int32_t g = 0; g < ng; g++) {
      if (f64) k64[g] = acme_k_of_f64(&h[g]);
      else k32[g] = acme_k_of_f32(&h[g]);
    }
    acme_job j = {op, a->flags, f64, g_chunks, f64 ? (const void *)k64 : (const void *)k32,
                  f64 ? (const void *)&q64 : (const void *)&q32, g_partial};
    ms_parallel_for(nchunks, param->count * 6, acme_share, &j);
  }
  if (rc == 0 && sums) {
    for (int32_t g = 0; g < MS_ACME_NSUM * ng; g++) out[g] = 0;
    for (c = 0; c < nchunks; c++) {   /* chunks in order: within a slice, slices in order */
      double *o = out + MS_ACME_NSUM * g_chunks[MS_ACME_CHUNK * c + 2];
      for (int s = 0; s < MS_ACME_NSUM; s++) o[s] += g_partial[MS_ACME_NSUM * c + s];
    }
  }
  return rc;
}
