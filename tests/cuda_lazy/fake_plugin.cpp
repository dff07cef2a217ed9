// fake_plugin.cpp — a stand-in for libmoonstep_cuda.so (tests/cuda_lazy_spec.lua): every
// entry point of the plugin interface (runtime/cuda_plugin.h) records the arguments it
// receives, in their order, and returns 40 + their count. ms_fake_log() returns the record.
// FAKE_OTHER_SOURCES=1 in the environment: it claims other sources (the loader must refuse it).
// Built with -I<build dir> (cuda_args.h) -Iruntime -Iruntime/include.
#include <cstdlib>
#include "cuda_plugin.h"
#include "cuda_args.h"
#include "record.hpp"

static std::string log_;
template <class... A> static int rec(const char *name, A... a) {
  log_ += ms_rec(name, a...) + "\n";
  return 40 + (int)sizeof...(A);
}
// rec_of("name") (a, b): records name(a, b)
struct rec_of {
  const char *name;
  template <class... A> int operator()(A... a) const { return rec(name, a...); }
};

#define FAKE_(name, params, what) int name params { return rec_of{#name} MS_CUDA_ARGS_##name; }
MS_CUDA_ENTRIES(FAKE_)
#define FAKE_OPT_(NAME, NSTATE)                                                          \
  int ms_cuda_optim_##NAME(const ms_cuda_optim_job *j, const ms_##NAME##_consts *k,       \
                           int32_t ngroups) {                                            \
    return rec("ms_cuda_optim_" #NAME, j, k, ngroups);                                   \
  }
MS_OPTIM_RULES(FAKE_OPT_)
#define FAKE_HAND_(name, params, args, what) int name params { return rec_of{#name} args; }
MS_CUDA_HAND_ENTRIES(FAKE_HAND_)

extern "C" {
int ms_cuda_compiled(void) { return 1; }
int ms_cuda_device_count(void) { return 3; }
int ms_cuda_check(const char *fn) { return rec("ms_cuda_check", fn); }
void ms_cuda_free(void *p) { rec("ms_cuda_free", p); }
const char *ms_cuda_plugin_signature(void) {
  return std::getenv("FAKE_OTHER_SOURCES") ? "other sources" : MS_CUDA_PLUGIN_SIGNATURE;
}
uint64_t ms_cuda_plugin_sizes(void) { return ms_cuda_plugin_sizes_here(); }
const char *ms_cuda_plugin_why(void) { return ""; }
const char *ms_fake_log(void) { return log_.c_str(); }
}
