/* cuda_stub.c — the CUDA backend of a library built without CUDA: no device exists,
 * and every device entry point fails with a message that says how to get one. (A CUDA
 * build has runtime/cuda_loader.c instead: the same entry points, loading the plugin.)
 *
 * The stubs are generated from the list of entry points (cuda_entries.h), which also
 * declares their prototypes (internal.h): the compiler checks each stub against them.
 * Defines every entry of MS_CUDA_ENTRIES (from the list); then by hand ms_cuda_compiled,
 * ms_cuda_device_count, ms_cuda_why, ms_cuda_check, ms_cuda_free; then the optimizer
 * block at the end (the hand-written entries cuda_plugin.h lists as MS_CUDA_HAND_ENTRIES). */
#include "internal.h"
#include "window.h"

static int no_cuda(const char *fn) {
  return ms_fail("%s: CUDA is not available: this moonstep was built without CUDA "
                 "(rebuild with `make CUDA=1` where nvcc is installed)", fn);
}

/* A stub ignores its parameters. */
#pragma GCC diagnostic ignored "-Wunused-parameter"
#define MS_CUDA_STUB_(name, params, what) \
  int name params { return no_cuda(what); }
MS_CUDA_ENTRIES(MS_CUDA_STUB_)
#undef MS_CUDA_STUB_

int ms_cuda_compiled(void) { return 0; }
int ms_cuda_device_count(void) { return 0; }
const char *ms_cuda_why(void) {
  return "this moonstep was built without CUDA (rebuild with `make CUDA=1` where nvcc is installed)";
}
int ms_cuda_check(const char *fn) { return no_cuda(fn); }
void ms_cuda_free(void *p) { (void)p; }

/* ==== OPTIMIZER BLOCK: the optimizer engine's stubs (runtime/optim*), written by hand,
 * not from cuda_entries.h ==================================================== */
#include "optim/rules.h"
/* ---- optimizer engine (runtime/optim/rules.h lists the rules) ---- */
/* defines ms_cuda_optim_NAME for every rule NAME */
#define OPT_CUDA_STUB(NAME, NSTATE)                                                    \
  int ms_cuda_optim_##NAME(const ms_cuda_optim_job *j, const ms_##NAME##_consts *k,     \
                           int32_t ngroups) {                                          \
    (void)j, (void)k, (void)ngroups;                                                   \
    return no_cuda(#NAME "_step");                                                     \
  }
MS_OPTIM_RULES(OPT_CUDA_STUB)
int ms_cuda_arena_reduce(int32_t op, const float *a, const float *b, const int64_t *chunks,
                         int64_t nchunks, double *partial) {
  (void)op, (void)a, (void)b, (void)chunks, (void)nchunks, (void)partial;
  return no_cuda("arena_reduce");
}
int ms_cuda_arena_axpby(float *y, const float *x, int64_t n, const int64_t *table,
                        int32_t nslices, const double *a, const double *b) {
  (void)y, (void)x, (void)n, (void)table, (void)nslices, (void)a, (void)b;
  return no_cuda("arena_axpby");
}
int ms_cuda_arena_perturb(const float *w, const float *g, float *out, int64_t n,
                          const int64_t *table, int32_t nslices, const ms_perturb_slice *per) {
  (void)w, (void)g, (void)out, (void)n, (void)table, (void)nslices, (void)per;
  return no_cuda("arena_perturb");
}
#include "optim/autosgm.h"
int ms_cuda_autosgm(const ms_cuda_optim_job *j, const ms_autosgm_consts *k, int32_t ngroups,
                    int phase, float *q, float *scratch, const double *a_slice) {
  (void)j, (void)k, (void)ngroups, (void)phase, (void)q, (void)scratch, (void)a_slice;
  return no_cuda("autosgm_step");
}
/* ==== END OF THE OPTIMIZER BLOCK ==== */
