/* optim_operands.c — what every fused optimizer step checks and sets up before its pass,
 * shared by the generated entry points (optim.c) and AutoSGM's driver (optim_autosgm.c):
 * the arguments, the group count, the operands (param, grad, state buffers) and the slice
 * table the step is driven with (a one-slice table when the caller gave none). */
#include <stdio.h>
#include "internal.h"
#include "optim/drive.h"

int ms_optim_begin(const char *fn, const ms_optim_args *a, const void *h, ms_optim_plan *p) {
  if (!a) return ms_fail("%s: argument 'args' is NULL", fn);
  if (!h) return ms_fail("%s: argument 'hyper' is NULL", fn);
  p->ngroups = a->table ? a->table->ngroups : 1;
  if (p->ngroups < 1 || p->ngroups > MS_OPTIM_MAX_GROUPS)
    return ms_fail("%s: the slice table has %d groups, expected 1 to %d", fn, (int)p->ngroups,
                   (int)MS_OPTIM_MAX_GROUPS);
  return 0;
}

const char *ms_optim_group_name(char *buf, size_t size, const char *fn, int32_t g,
                                int32_t ngroups) {
  if (ngroups > 1) snprintf(buf, size, "%s (group %d)", fn, (int)g + 1);
  else snprintf(buf, size, "%s", fn);
  return buf;
}

int ms_optim_check_buffer(const char *fn, const char *name, const ms_tensor *b,
                          const ms_tensor *param) {
  MS_TRY(ms_check_same(fn, name, b, "param", param));
  MS_TRY(ms_check_shape(fn, name, b, param->ndim, param->sizes));
  if (!ms_tensor_is_contiguous(b))
    return ms_fail("%s: argument '%s' is not contiguous, expected a flat tensor like the arena",
                   fn, name);
  return 0;
}

int ms_optim_operands(const char *fn, const ms_optim_args *a, unsigned need, int nstate,
                      const char *const *names, ms_optim_plan *p) {
  MS_CHECK_INTERRUPT(fn);
  const ms_tensor *param = a->param;
  MS_TRY(ms_check_float(fn, "param", param));
  if (!ms_tensor_is_contiguous(param))
    return ms_fail("%s: argument 'param' is not contiguous, expected the flat arena", fn);
  MS_TRY(ms_optim_check_buffer(fn, "grad", a->grad, param));
  for (int s = 0; s < MS_OPTIM_NSTATE; s++) {
    const ms_tensor *b = a->state[s];
    if (s >= nstate) {
      if (b) return ms_fail("%s: state[%d] is given but the rule has %d state buffers", fn, s,
                            nstate);
    } else if (b) {
      MS_TRY(ms_optim_check_buffer(fn, names[s], b, param));
    } else if (need & (1u << s)) {
      return ms_fail("%s: state buffer '%s' (state[%d]) is missing", fn, names[s], s);
    }
  }
  if (a->step < 1) return ms_fail("%s: step is %lld, expected >= 1", fn, (long long)a->step);
  if (a->table) {
    MS_TRY(ms_check_slice_table(fn, a->table, param->count, ms_device_of(param) == MS_CUDA));
    p->t = a->table;
  } else {
    p->one.offset = 0, p->one.count = param->count, p->one.group = 0;
    p->one.kind = MS_KIND_WEIGHT;
    p->uniform.slices = &p->one, p->uniform.nslices = 1, p->uniform.ngroups = 1;
    p->uniform.device = NULL;
    p->t = &p->uniform;
  }
  return 0;
}

ms_cuda_optim_job ms_optim_cuda_job(const ms_optim_args *a, const ms_optim_plan *p) {
  ms_cuda_optim_job j = {(float *)ms_ptr(a->param), (const float *)ms_ptr(a->grad), {0},
                         a->param->count, a->table ? p->t->device : NULL, p->t->nslices};
  for (int s = 0; s < MS_OPTIM_NSTATE; s++)
    j.s[s] = a->state[s] ? (float *)ms_ptr(a->state[s]) : NULL;
  return j;
}
