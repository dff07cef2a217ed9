/* cuda_loader.c — the CUDA backend of a CUDA build, loaded on first GPU use.
 *
 * A CUDA build is two libraries: libmoonstep.so (the runtime, with this file where a
 * CPU-only build has cuda_stub.c) and, beside it, the plugin libmoonstep_cuda.so
 * (the kernels/ .cu files, cuBLAS, the static CUDA runtime, cuda_plugin.c): 223 MB of
 * resident memory and 84 ms of start-up (measured: README) that a process which never
 * touches a GPU no longer pays (6.8 MB, 17 ms, as a CPU-only build).
 *
 * Every CUDA entry point of the runtime is a trampoline here, generated from the lists
 * the CPU-only stubs come from (cuda_entries.h; optim/rules.h's MS_OPTIM_RULES;
 * cuda_plugin.h's MS_CUDA_HAND_ENTRIES for those the stubs write by hand). A trampoline
 * makes sure the plugin is loaded (once per process), then calls the plugin's function of
 * the same name with its own arguments (their names: $(BUILD)/cuda_args.h, generated
 * from cuda_entries.h by cuda_args.awk). While no plugin can be used, each fails
 * "<what the user called>: CUDA is not available: <why>" and ms_cuda_device_count is 0.
 *
 * Loading (ms_cuda_load, run once):
 *   1. the NVIDIA driver must load (dlopen "libcuda.so.1"); without one the plugin is not
 *      loaded at all: asking ms.cuda.is_available() there costs nothing
 *   2. this library is promoted to the global scope (dlopen of itself with RTLD_NOLOAD |
 *      RTLD_GLOBAL): the plugin's references back into the runtime, ms_fail,
 *      ms_dtype_size and ms_zo_log_reserve, bind to it. The plugin is opened RTLD_NOW |
 *      RTLD_LOCAL and linked -Bsymbolic, so that its own calls between its ms_cuda_*
 *      functions stay inside it (never through these trampolines of the same names)
 *   3. the plugin: $MOONSTEP_CUDA_PLUGIN when set, else libmoonstep_cuda.so in the
 *      directory of this library (its absolute path, taken when the library loaded)
 *   4. every entry point is resolved (dlsym) into the pointers below; one missing: refused
 *   5. the plugin's signature and struct sizes (cuda_plugin.h) must equal this library's:
 *      a plugin built from other sources is refused, never called with other arguments
 * MS_REFUSE records the reason and returns from ms_cuda_load.
 * The plugin is never unloaded. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_plugin.h"
#include "cuda_args.h"  /* generated: MS_CUDA_ARGS_<name> (argument names) */

/* ---- the plugin's functions, resolved by ms_cuda_load -------------------------------- */
#define MS_PTR_(name, ...) static __typeof__(name) *p_##name;
#define MS_PTR_OPT_(NAME, NSTATE) MS_PTR_(ms_cuda_optim_##NAME)
MS_CUDA_ENTRIES(MS_PTR_)
MS_OPTIM_RULES(MS_PTR_OPT_)
MS_CUDA_HAND_ENTRIES(MS_PTR_)
MS_PTR_(ms_cuda_device_count)
MS_PTR_(ms_cuda_check)
MS_PTR_(ms_cuda_free)
MS_PTR_(ms_cuda_plugin_signature)
MS_PTR_(ms_cuda_plugin_sizes)
MS_PTR_(ms_cuda_plugin_why)

typedef struct {
  const char *name;
  void **slot;
} ms_cuda_sym;
#define MS_SYM_(name, ...) {#name, (void **)&p_##name},
#define MS_SYM_OPT_(NAME, NSTATE) MS_SYM_(ms_cuda_optim_##NAME)
static const ms_cuda_sym ms_cuda_syms[] = {
  MS_SYM_(ms_cuda_plugin_signature) MS_SYM_(ms_cuda_plugin_sizes) MS_SYM_(ms_cuda_plugin_why)
  MS_SYM_(ms_cuda_device_count) MS_SYM_(ms_cuda_check) MS_SYM_(ms_cuda_free)
  MS_CUDA_ENTRIES(MS_SYM_) MS_OPTIM_RULES(MS_SYM_OPT_) MS_CUDA_HAND_ENTRIES(MS_SYM_)
};

/* ---- loading ------------------------------------------------------------------------- */
static pthread_once_t ms_cuda_once = PTHREAD_ONCE_INIT;
static int ms_cuda_loaded;          /* 1 once the plugin is usable */
static char ms_cuda_reason[6144];   /* why it is not, else "" */

#define MS_REFUSE(...) \
  do { snprintf(ms_cuda_reason, sizeof ms_cuda_reason, __VA_ARGS__); return; } while (0)

/* This library's absolute path, taken when it is loaded: the plugin is looked for beside
 * it at first GPU use, maybe after a chdir that would break a relative path. */
static char ms_self_path[4096];

__attribute__((constructor)) static void ms_cuda_record_self(void) {
  Dl_info self;
  if (dladdr((void *)&ms_cuda_record_self, &self) && self.dli_fname &&
      !realpath(self.dli_fname, ms_self_path))
    ms_self_path[0] = '\0';
}

static void ms_cuda_load(void) {
  /* 1. the driver (kept open: the CUDA runtime opens it again) */
  if (!dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL))
    MS_REFUSE("no NVIDIA driver on this machine (%s)", dlerror());
  /* 2. this library in the global scope, 3. where the plugin is */
  Dl_info self;
  if (!dladdr((void *)&ms_cuda_load, &self) || !self.dli_fname)
    MS_REFUSE("cannot find the path of libmoonstep.so (dladdr failed)");
  if (!dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL))
    MS_REFUSE("cannot make %s global for the CUDA plugin: %s", self.dli_fname, dlerror());
  char path[4096];
  const char *env = getenv("MOONSTEP_CUDA_PLUGIN");
  if (env && *env) {
    snprintf(path, sizeof path, "%s", env);
  } else {
    const char *me = ms_self_path[0] ? ms_self_path : self.dli_fname;
    const char *slash = strrchr(me, '/');
    int dir = slash ? (int)(slash - me + 1) : 0;
    if (snprintf(path, sizeof path, "%.*slibmoonstep_cuda.so", dir, me) >= (int)sizeof path)
      MS_REFUSE("the CUDA plugin's path is too long (%s)", me);
  }
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h)
    MS_REFUSE("cannot load the CUDA plugin %s: %s (it is built and installed beside "
              "libmoonstep.so by `make CUDA=1` and `make install`)", path, dlerror());
  /* 4. every entry point (checked before any is called), 5. the same sources */
  for (size_t i = 0; i < sizeof ms_cuda_syms / sizeof *ms_cuda_syms; i++) {
    *ms_cuda_syms[i].slot = dlsym(h, ms_cuda_syms[i].name);
    if (!*ms_cuda_syms[i].slot)
      MS_REFUSE("the CUDA plugin %s lacks %s: it was built from other sources than this "
                "libmoonstep.so (rebuild both with `make CUDA=1`)", path, ms_cuda_syms[i].name);
  }
  if (strcmp(p_ms_cuda_plugin_signature(), MS_CUDA_PLUGIN_SIGNATURE) != 0 ||
      p_ms_cuda_plugin_sizes() != ms_cuda_plugin_sizes_here())
    MS_REFUSE("the CUDA plugin %s was built from other sources than this libmoonstep.so "
              "(its entry points differ; rebuild both with `make CUDA=1`)", path);
  ms_cuda_loaded = 1;
}

/* 0 when the plugin is loaded; else fails "what: CUDA is not available: why". */
static int ms_cuda_ready(const char *what) {
  pthread_once(&ms_cuda_once, ms_cuda_load);
  if (ms_cuda_loaded) return 0;
  return ms_fail("%s: CUDA is not available: %s", what, ms_cuda_reason);
}

/* ---- the trampolines ------------------------------------------------------------------ */
#define MS_TRAMPOLINE_(name, params, what)       \
  int name params {                             \
    if (ms_cuda_ready(what) != 0) return -1;    \
    return p_##name MS_CUDA_ARGS_##name;        \
  }
MS_CUDA_ENTRIES(MS_TRAMPOLINE_)

#define MS_TRAMPOLINE_OPT_(NAME, NSTATE)                                               \
  int ms_cuda_optim_##NAME(const ms_cuda_optim_job *j, const ms_##NAME##_consts *k,     \
                           int32_t ngroups) {                                          \
    if (ms_cuda_ready(#NAME "_step") != 0) return -1;                                   \
    return p_ms_cuda_optim_##NAME(j, k, ngroups);                                       \
  }
MS_OPTIM_RULES(MS_TRAMPOLINE_OPT_)

#define MS_TRAMPOLINE_HAND_(name, params, args, what) \
  int name params {                                  \
    if (ms_cuda_ready(what) != 0) return -1;         \
    return p_##name args;                            \
  }
MS_CUDA_HAND_ENTRIES(MS_TRAMPOLINE_HAND_)

/* ---- by hand (as in cuda_stub.c) ------------------------------------------------------ */
int ms_cuda_compiled(void) { return 1; }

int ms_cuda_device_count(void) {
  pthread_once(&ms_cuda_once, ms_cuda_load);
  return ms_cuda_loaded ? p_ms_cuda_device_count() : 0;
}

int ms_cuda_check(const char *fn) {
  if (ms_cuda_ready(fn) != 0) return -1;
  return p_ms_cuda_check(fn);
}

void ms_cuda_free(void *p) {
  if (!p) return;
  pthread_once(&ms_cuda_once, ms_cuda_load);  /* done already: p came from the plugin */
  if (ms_cuda_loaded) p_ms_cuda_free(p);
}

const char *ms_cuda_why(void) {
  pthread_once(&ms_cuda_once, ms_cuda_load);
  return ms_cuda_loaded ? p_ms_cuda_plugin_why() : ms_cuda_reason;
}
