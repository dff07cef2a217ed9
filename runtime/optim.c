/* optim.c — the fused optimizer steps: one entry point per rule of optim/rules.h,
 * ms_<name>_step(args, hyper[ngroups]). Each checks its operands and every group's
 * hyper-parameters, derives the constants of the step in double (the rule's
 * <name>_consts), then runs one pass over the arena: the CPU loops below through
 * optim/drive.h, or the CUDA kernel of kernels/optim.cu (one launch). */
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

/* For each rule NAME this defines the span loops NAME_span_f32 / NAME_span_f64 and the
 * entry point ms_NAME_step (e.g. sgd_span_f32, sgd_span_f64, ms_sgd_step). */
#define OPT_RULE(NAME, NSTATE)                                                         \
  OPT_CLONES static void NAME##_span_f32(const void *job, const void *kv, int32_t s,     \
                                         int64_t lo, int64_t hi) {                     \
    (void)s;                                                                           \
    NAME##_loop_f32((const opt_ptrs_f32 *)job, (const NAME##_k_f32 *)kv, lo, hi);        \
  }                                                                                    \
  OPT_CLONES static void NAME##_span_f64(const void *job, const void *kv, int32_t s,     \
                                         int64_t lo, int64_t hi) {                     \
    (void)s;                                                                           \
    NAME##_loop_f64((const opt_ptrs_f64 *)job, (const NAME##_k_f64 *)kv, lo, hi);        \
  }                                                                                    \
  int ms_##NAME##_step(const ms_optim_args *a, const ms_##NAME##_hyper *h) {           \
    static const char fn[] = #NAME "_step";                                            \
    ms_optim_plan p;                                                                   \
    MS_TRY(ms_optim_begin(fn, a, h, &p));                                              \
    const int32_t ng = p.ngroups;                                                      \
    ms_##NAME##_consts kd[MS_OPTIM_MAX_GROUPS];                                        \
    unsigned need = 0;                                                                 \
    for (int32_t g = 0; g < ng; g++) {                                                 \
      char who[64];                                                                    \
      ms_optim_group_name(who, sizeof who, fn, g, ng);                                 \
      MS_TRY(NAME##_consts(who, &h[g], a->step, &kd[g]));                              \
      need |= NAME##_needs(&h[g]);                                                     \
    }                                                                                  \
    MS_TRY(ms_optim_operands(fn, a, need, NSTATE, NAME##_state_names, &p));           \
    int64_t n = a->param->count;                                                       \
    if (n == 0) return 0;                                                              \
    if (ms_device_of(a->param) == MS_CUDA) {                                           \
      ms_cuda_optim_job j = ms_optim_cuda_job(a, &p);                                  \
      return ms_cuda_optim_##NAME(&j, kd, ng);                                         \
    }                                                                                  \
    if (a->param->dtype_id == MS_FLOAT32) {                                            \
      NAME##_k_f32 k[MS_OPTIM_MAX_GROUPS];                                             \
      for (int32_t g = 0; g < ng; g++) k[g] = NAME##_k_of_f32(&kd[g]);                 \
      opt_ptrs_f32 q = MS_OPT_PTRS(float, a);                                          \
      ms_drive_slices(n, 2 + NSTATE, p.t, k, sizeof k[0],                              \
                      NAME##_span_f32, &q);                         \
    } else {                                                                           \
      NAME##_k_f64 k[MS_OPTIM_MAX_GROUPS];                                             \
      for (int32_t g = 0; g < ng; g++) k[g] = NAME##_k_of_f64(&kd[g]);                 \
      opt_ptrs_f64 q = MS_OPT_PTRS(double, a);                                         \
      ms_drive_slices(n, 2 + NSTATE, p.t, k, sizeof k[0],                              \
                      NAME##_span_f64, &q);                         \
    }                                                                                  \
    return 0;                                                                          \
  }
MS_OPTIM_RULES(OPT_RULE)
