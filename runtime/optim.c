/* optim.c — the fused optimizer steps: one entry point per rule of optim/rules.h,
 * ms_<name>_step(args, hyper[ngroups]). Each checks its operands and every group's
 * hyper-parameters, derives the constants of the step in double (the rule's
 * <name>_consts), then runs one pass over the arena: the CPU loops below through
 * optim/drive.h, or the CUDA kernel of kernels/optim.cu (one launch). */
#include <stdio.h>
#include "internal.h"
#include "optim/rules.h"
#include "optim/drive.h"

/* The element rules, instantiated for float (…_f32) and double (…_f64). */
#define OPT_INCLUDE "optim/rules.h"
#include "optim/instances.h"

/* The rules use fma() to round like ATen's fused kernels. Each loop below is compiled for
 * any x86-64 (fma() is a libm call there) and for x86-64-v3 (MS_OPT_CLONES, optim/common.h:
 * AVX2 + FMA, 8 float lanes); the loader picks one at run time. Same results either way. */
#define OPT_CLONES MS_OPT_CLONES

/* The operands shared by every rule: param, grad, state buffers, dtype and device alike,
 * contiguous, of the arena's shape; `need` (a bit per state slot, from every group) says
 * which buffers must be given. Fills *uniform when a->table is NULL and returns the
 * table to drive with in *t. */
static int check_operands(const char *fn, const ms_optim_args *a, unsigned need, int nstate,
                          const char *const *names, ms_slice *one, ms_slice_table *uniform,
                          const ms_slice_table **t) {
  MS_CHECK_INTERRUPT(fn);
  if (!a) return ms_fail("%s: argument 'args' is NULL", fn);
  const ms_tensor *param = a->param;
  MS_TRY(ms_check_float(fn, "param", param));
  if (!ms_tensor_is_contiguous(param))
    return ms_fail("%s: argument 'param' is not contiguous, expected the flat arena", fn);
  MS_TRY(ms_check_same(fn, "grad", a->grad, "param", param));
  MS_TRY(ms_check_shape(fn, "grad", a->grad, param->ndim, param->sizes));
  if (!ms_tensor_is_contiguous(a->grad))
    return ms_fail("%s: argument 'grad' is not contiguous, expected a flat tensor", fn);
  for (int s = 0; s < MS_OPTIM_NSTATE; s++) {
    const ms_tensor *b = a->state[s];
    if (s >= nstate) {
      if (b) return ms_fail("%s: state[%d] is given but the rule has %d state buffers", fn, s,
                            nstate);
      continue;
    }
    if (!b) {
      if (need & (1u << s))
        return ms_fail("%s: state buffer '%s' (state[%d]) is missing", fn, names[s], s);
      continue;
    }
    MS_TRY(ms_check_same(fn, names[s], b, "param", param));
    MS_TRY(ms_check_shape(fn, names[s], b, param->ndim, param->sizes));
    if (!ms_tensor_is_contiguous(b))
      return ms_fail("%s: state buffer '%s' is not contiguous, expected a flat tensor", fn,
                     names[s]);
  }
  if (a->step < 1) return ms_fail("%s: step is %lld, expected >= 1", fn, (long long)a->step);
  if (a->table) {
    MS_TRY(ms_check_slice_table(fn, a->table, param->count, ms_device_of(param) == MS_CUDA));
    *t = a->table;
  } else {
    one->offset = 0, one->count = param->count, one->group = 0, one->kind = MS_KIND_WEIGHT;
    uniform->slices = one, uniform->nslices = 1, uniform->ngroups = 1, uniform->device = NULL;
    *t = uniform;
  }
  return 0;
}

static ms_cuda_optim_job cuda_job(const ms_optim_args *a, const ms_slice_table *t) {
  ms_cuda_optim_job j = {(float *)ms_ptr(a->param), (const float *)ms_ptr(a->grad), {0},
                         a->param->count, a->table ? t->device : NULL, t->nslices};
  for (int s = 0; s < MS_OPTIM_NSTATE; s++)
    j.s[s] = a->state[s] ? (float *)ms_ptr(a->state[s]) : NULL;
  return j;
}

/* For each rule NAME this defines the span loops NAME_span_f32 / NAME_span_f64 and the
 * entry point ms_NAME_step (e.g. sgd_span_f32, sgd_span_f64, ms_sgd_step). */
#define OPT_RULE(NAME, NSTATE)                                                         \
  OPT_CLONES static void NAME##_span_f32(const void *job, const void *kv, int64_t lo,   \
                                         int64_t hi) {                                 \
    NAME##_loop_f32((const opt_ptrs_f32 *)job, (const NAME##_k_f32 *)kv, lo, hi);        \
  }                                                                                    \
  OPT_CLONES static void NAME##_span_f64(const void *job, const void *kv, int64_t lo,   \
                                         int64_t hi) {                                 \
    NAME##_loop_f64((const opt_ptrs_f64 *)job, (const NAME##_k_f64 *)kv, lo, hi);        \
  }                                                                                    \
  int ms_##NAME##_step(const ms_optim_args *a, const ms_##NAME##_hyper *h) {           \
    static const char fn[] = #NAME "_step";                                            \
    ms_slice one;                                                                      \
    ms_slice_table uniform;                                                            \
    const ms_slice_table *t;                                                           \
    if (!h) return ms_fail("%s: argument 'hyper' is NULL", fn);                        \
    int32_t ng = a && a->table ? a->table->ngroups : 1;                                \
    if (ng < 1 || ng > MS_OPTIM_MAX_GROUPS)                                            \
      return ms_fail("%s: the slice table has %d groups, expected 1 to %d", fn, (int)ng, \
                     (int)MS_OPTIM_MAX_GROUPS);                                        \
    ms_##NAME##_consts kd[MS_OPTIM_MAX_GROUPS];                                        \
    unsigned need = 0;                                                                 \
    for (int32_t g = 0; g < ng; g++) {                                                 \
      char who[64];                                                                    \
      snprintf(who, sizeof who, ng > 1 ? "%s (group %d)" : "%s", fn, (int)g + 1);      \
      MS_TRY(NAME##_consts(who, &h[g], a ? a->step : 0, &kd[g]));                      \
      need |= NAME##_needs(&h[g]);                                                     \
    }                                                                                  \
    MS_TRY(check_operands(fn, a, need, NSTATE, NAME##_state_names, &one, &uniform, &t)); \
    int64_t n = a->param->count;                                                       \
    if (n == 0) return 0;                                                              \
    if (ms_device_of(a->param) == MS_CUDA) {                                           \
      ms_cuda_optim_job j = cuda_job(a, t);                                            \
      return ms_cuda_optim_##NAME(&j, kd, ng);                                         \
    }                                                                                  \
    if (a->param->dtype_id == MS_FLOAT32) {                                            \
      NAME##_k_f32 k[MS_OPTIM_MAX_GROUPS];                                             \
      for (int32_t g = 0; g < ng; g++) k[g] = NAME##_k_of_f32(&kd[g]);                 \
      opt_ptrs_f32 q = MS_OPT_PTRS(float, a);                                          \
      ms_drive_slices(n, 2 + NSTATE, t, k, sizeof k[0],                                \
                      NAME##_span_f32, &q);                         \
    } else {                                                                           \
      NAME##_k_f64 k[MS_OPTIM_MAX_GROUPS];                                             \
      for (int32_t g = 0; g < ng; g++) k[g] = NAME##_k_of_f64(&kd[g]);                 \
      opt_ptrs_f64 q = MS_OPT_PTRS(double, a);                                         \
      ms_drive_slices(n, 2 + NSTATE, t, k, sizeof k[0],                                \
                      NAME##_span_f64, &q);                         \
    }                                                                                  \
    return 0;                                                                          \
  }
MS_OPTIM_RULES(OPT_RULE)
