/* rules.h — the fused optimizer rules, listed once.
 *
 *   MS_OPTIM_RULES(X)   X(name, nstate) for every rule: runtime/optim.c derives from it the
 *                       entry point ms_<name>_step (moonstep.h declares it) and its CPU
 *                       loops, kernels/optim.cu its CUDA kernel and launcher
 *                       ms_cuda_optim_<name>, runtime/cuda_stub.c the stub of a CPU build.
 *
 * Adding a rule: write runtime/optim/<name>.h (the contract is in sgd.h's header), include
 * it below, add X(name, nstate) to the list, and declare ms_<name>_hyper and
 * ms_<name>_step in moonstep.h's optimizer section. nstate: how many state buffers it
 * may use (ms_optim_args.state[0 .. nstate-1]).
 *
 * Include this file with OPT_T etc. defined (see sgd.h) to instantiate the element rules
 * for one element type; without, it declares the host parts only. */
#include "optim/common.h"
#include "optim/sgd.h"
#include "optim/adam.h"
#include "optim/nadam.h"
#include "optim/rmsprop.h"
#include "optim/adagrad.h"
#include "optim/bsam.h"

#ifndef MS_OPTIM_RULES
#define MS_OPTIM_RULES(X) \
  X(sgd, 1)               \
  X(adam, 3)              \
  X(nadam, 2)             \
  X(rmsprop, 3)           \
  X(adagrad, 1)           \
  X(bsam, 4)

/* The CUDA launchers (kernels/optim.cu; stubs in cuda_stub.c): k holds ngroups constant
 * sets, in double; the launcher rounds them to float. */
#ifdef __cplusplus
extern "C" {
#endif
#define MS_OPTIM_CUDA_DECL(NAME, NSTATE)                                               \
  int ms_cuda_optim_##NAME(const ms_cuda_optim_job *j, const ms_##NAME##_consts *k,    \
                           int32_t ngroups);
MS_OPTIM_RULES(MS_OPTIM_CUDA_DECL)
#undef MS_OPTIM_CUDA_DECL
#ifdef __cplusplus
}
#endif
#endif
