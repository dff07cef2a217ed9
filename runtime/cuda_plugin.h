/* cuda_plugin.h — what libmoonstep.so (runtime/cuda_loader.c) and the CUDA plugin
 * libmoonstep_cuda.so (the kernels/ .cu files and runtime/cuda_plugin.c) of a CUDA build agree on.
 *
 * The plugin defines every CUDA entry point under its own name: those of cuda_entries.h,
 * ms_cuda_optim_NAME of optim/rules.h, the hand-written ones below (MS_CUDA_HAND_ENTRIES)
 * and ms_cuda_compiled, ms_cuda_device_count, ms_cuda_check, ms_cuda_free (device.cu).
 * It calls back into libmoonstep.so only for ms_fail, ms_dtype_size and ms_zo_log_reserve
 * (tests/cuda_lazy_spec.lua checks its undefined symbols).
 *
 * Besides, the plugin's own three (cuda_plugin.c):
 *   ms_cuda_plugin_signature()  MS_CUDA_PLUGIN_SIGNATURE as the plugin was compiled: the
 *                               loader refuses a plugin whose entry points differ
 *   ms_cuda_plugin_sizes()      ms_cuda_plugin_sizes_here() likewise (the structs passed)
 *   ms_cuda_plugin_why()        "" when a GPU is usable, else why not (the CUDA runtime's
 *                               error), for ms_cuda_why */
#ifndef MS_CUDA_PLUGIN_H
#define MS_CUDA_PLUGIN_H
#include "internal.h"
#include "window.h"
#include "optim/rules.h"
#include "optim/autosgm.h"
#include "optim/zo.h"

/* The entry points the stubs of cuda_stub.c's optimizer block write by hand:
 * X(name, (parameters), (argument names), "what the user called"); their prototypes are
 * in optim/common.h and optim/autosgm.h (the trampolines are checked against them). */
#define MS_CUDA_HAND_ENTRIES(X)                                                            \
  X(ms_cuda_arena_reduce,                                                                  \
    (int32_t op, const float *a, const float *b, const int64_t *chunks, int64_t nchunks,  \
     double *partial),                                                                     \
    (op, a, b, chunks, nchunks, partial), "arena_reduce")                                  \
  X(ms_cuda_arena_axpby,                                                                   \
    (float *y, const float *x, int64_t n, const int64_t *table, int32_t nslices,          \
     const double *a, const double *b),                                                    \
    (y, x, n, table, nslices, a, b), "arena_axpby")                                        \
  X(ms_cuda_arena_perturb,                                                                 \
    (const float *w, const float *g, float *out, int64_t n, const int64_t *table,         \
     int32_t nslices, const ms_perturb_slice *per),                                        \
    (w, g, out, n, table, nslices, per), "arena_perturb")                                  \
  X(ms_cuda_autosgm,                                                                       \
    (const ms_cuda_optim_job *j, const ms_autosgm_consts *k, int32_t ngroups, int phase,  \
     float *q, float *scratch, const double *a_slice),                                     \
    (j, k, ngroups, phase, q, scratch, a_slice), "autosgm_step")

/* The signature: every entry point's name and parameters as written. */
#define MS_CUDA_SIG_(name, params, ...) #name #params ";"
#define MS_CUDA_SIG_OPT_(NAME, NSTATE) "ms_cuda_optim_" #NAME "(ms_" #NAME "_consts);"
#define MS_CUDA_PLUGIN_SIGNATURE                                                           \
  MS_CUDA_ENTRIES(MS_CUDA_SIG_) MS_OPTIM_RULES(MS_CUDA_SIG_OPT_)                           \
  MS_CUDA_HAND_ENTRIES(MS_CUDA_SIG_)
/* The sizes of the structs they pass, and the ABI version, in one number. */
#define MS_CUDA_SIZE_OPT_(NAME, NSTATE) sizeof(ms_##NAME##_consts),
static inline uint64_t ms_cuda_plugin_sizes_here(void) {
  const size_t sizes[] = {sizeof(ms_iter), sizeof(ms_geom), sizeof(ms_zo_dir), sizeof(ms_zo_log),
                          sizeof(ms_acme_hyper), sizeof(ms_cuda_optim_job),
                          sizeof(ms_perturb_slice), sizeof(ms_autosgm_consts),
                          MS_OPTIM_RULES(MS_CUDA_SIZE_OPT_)};
  uint64_t h = MS_ABI_VERSION;
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) h = h * 1000003u + sizes[i];
  return h;
}

#ifdef __cplusplus
extern "C" {
#endif
const char *ms_cuda_plugin_signature(void);
uint64_t ms_cuda_plugin_sizes(void);
const char *ms_cuda_plugin_why(void);
#ifdef __cplusplus
}
#endif
#endif
