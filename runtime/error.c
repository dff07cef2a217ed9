/* error.c — the thread-local error message, argument checks, threads and Ctrl-C.
 *
 * Every failing entry point calls ms_fail(), which formats the message that
 * ms_last_error() returns until the next failure on the same thread. */
#include "internal.h"
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static _Thread_local char ms_error_buf[1024] = "no error";

const char *ms_last_error(void) { return ms_error_buf; }
int ms_abi_version(void) { return MS_ABI_VERSION; }

int ms_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ms_error_buf, sizeof ms_error_buf, fmt, ap);
  va_end(ap);
  return -1;
}

/* ---- Ctrl-C ------------------------------------------------------------------------
 * Only a flag is set in the handler (async-signal-safe); ops fail on entry while it
 * is set, which unwinds a running Lua computation as an ordinary error. */
volatile int ms_interrupt_flag = 0;
static struct sigaction ms_old_sigint;
static int ms_sigint_installed = 0;

/* The flag counts presses not yet handled. A Lua loop that calls no op and runs
 * JIT-compiled (where debug hooks never fire) cannot see it, so the third pending
 * press falls back to the default action and ends the process. */
static void ms_on_sigint(int sig) {
  if (++ms_interrupt_flag >= 3) {
    signal(sig, SIG_DFL);
    raise(sig);
  }
}

void ms_sigint_install(void) {
  if (ms_sigint_installed) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = ms_on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &ms_old_sigint);
  ms_sigint_installed = 1;
}

void ms_sigint_uninstall(void) {
  if (!ms_sigint_installed) return;
  sigaction(SIGINT, &ms_old_sigint, NULL);
  ms_sigint_installed = 0;
}

int ms_interrupt_pending(void) { return ms_interrupt_flag; }
void ms_interrupt_clear(void) { ms_interrupt_flag = 0; }

int ms_fail_interrupted(const char *fn) {
  ms_interrupt_flag = 0;
  return ms_fail("%s: interrupted (Ctrl-C)", fn);
}

/* ---- threads ------------------------------------------------------------------------ */
void openblas_set_num_threads(int);

int ms_num_threads(void) {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void ms_set_num_threads(int n) {
  if (n < 1) n = 1;
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  openblas_set_num_threads(n);
}

int ms_threads_for(int64_t work) {
  if (work < MS_PARALLEL_GRAIN) return 1;
  int nth = ms_num_threads();
  int64_t most = work / (MS_PARALLEL_GRAIN / 2);
  return most < nth ? (int)most : nth;
}

void ms_parallel_for(int64_t n, int64_t work, ms_range_fn fn, void *ctx) {
  int nth = ms_threads_for(work);
  if (nth > n) nth = n > 0 ? (int)n : 1;
  if (nth == 1) {
    fn(ctx, 0, n);
    return;
  }
#pragma omp parallel num_threads(nth)
  {
    int64_t lo, hi;
    ms_split(n, ms_thread_id(), nth, &lo, &hi);
    fn(ctx, lo, hi);
  }
}

/* ---- names and checks ----------------------------------------------------------------- */
const char *ms_dtype_name(int32_t dtype) {
  switch (dtype) {
    case MS_FLOAT32: return "float32";
    case MS_FLOAT64: return "float64";
    case MS_INT64: return "int64";
    case MS_UINT8: return "uint8";
    default: return "unknown dtype";
  }
}

const char *ms_device_name(int32_t device) {
  return device == MS_CPU ? "cpu" : device == MS_CUDA ? "cuda" : "unknown device";
}

int ms_dtype_size(int32_t dtype) {
  switch (dtype) {
    case MS_FLOAT32: return 4;
    case MS_FLOAT64: return 8;
    case MS_INT64: return 8;
    case MS_UINT8: return 1;
    default: return 0;
  }
}

const char *ms_shape_str(char *buf, int ndim, const int64_t *shape) {
  int n = sprintf(buf, "[");
  for (int d = 0; d < ndim && n < 140; d++)
    n += sprintf(buf + n, d ? ",%lld" : "%lld", (long long)shape[d]);
  sprintf(buf + n, "]");
  return buf;
}

/* Every C entry point checks its tensors here: live, and a header that is consistent
 * (rank, dtype, device, count = product of sizes) and addresses only elements inside
 * its storage, so a hand-built or corrupted header is an error, never a wild access. */
int ms_check_tensor(const char *fn, const char *arg, const ms_tensor *t) {
  if (!t) return ms_fail("%s: argument '%s' is NULL, expected a tensor", fn, arg);
  if (!t->storage)
    return ms_fail("%s: argument '%s' was freed (used after :free()), expected a live tensor",
                   fn, arg);
  if (t->ndim < 0 || t->ndim > MS_MAX_DIMS || ms_dtype_size(t->dtype_id) == 0 ||
      (t->storage->device != MS_CPU && t->storage->device != MS_CUDA) ||
      t->storage->nbytes < 0)
    return ms_fail("%s: argument '%s' has a corrupt header (%d dims, dtype %d), expected a "
                   "tensor made by moonstep", fn, arg, t->ndim, t->dtype_id);
  int64_t numel = 0, lo = 0, hi = 0;
  MS_TRY(ms_view_extent(fn, t->ndim, t->sizes, t->strides, t->offset, &numel, &lo, &hi));
  int64_t cap = t->storage->nbytes / ms_dtype_size(t->dtype_id);
  if (numel != t->count || t->offset < 0 || (numel > 0 && (lo < 0 || hi >= cap)))
    return ms_fail("%s: argument '%s' has a corrupt header (count %lld, elements %lld..%lld "
                   "of a storage of %lld), expected a tensor made by moonstep", fn, arg,
                   (long long)t->count, (long long)lo, (long long)hi, (long long)cap);
  return 0;
}

int ms_check_float(const char *fn, const char *arg, const ms_tensor *t) {
  MS_TRY(ms_check_tensor(fn, arg, t));
  if (t->dtype_id != MS_FLOAT32 && t->dtype_id != MS_FLOAT64)
    return ms_fail("%s: argument '%s' has dtype %s, expected float32 or float64", fn, arg,
                   ms_dtype_name(t->dtype_id));
  if (t->dtype_id == MS_FLOAT64 && ms_device_of(t) != MS_CPU)
    return ms_fail("%s: argument '%s' is float64 on %s, float64 math is CPU-only", fn, arg,
                   ms_device_name(ms_device_of(t)));
  return 0;
}

int ms_check_dtype(const char *fn, const char *arg, const ms_tensor *t, int32_t dtype) {
  MS_TRY(ms_check_tensor(fn, arg, t));
  if (t->dtype_id != dtype)
    return ms_fail("%s: argument '%s' has dtype %s, expected %s", fn, arg,
                   ms_dtype_name(t->dtype_id), ms_dtype_name(dtype));
  return 0;
}

int ms_check_same(const char *fn, const char *arg, const ms_tensor *t, const char *ref_arg,
                  const ms_tensor *ref) {
  MS_TRY(ms_check_tensor(fn, arg, t));
  if (ms_device_of(t) != ms_device_of(ref))
    return ms_fail("%s: argument '%s' is on %s but '%s' is on %s, expected both on one device",
                   fn, arg, ms_device_name(ms_device_of(t)), ref_arg,
                   ms_device_name(ms_device_of(ref)));
  if (t->dtype_id != ref->dtype_id)
    return ms_fail("%s: argument '%s' has dtype %s but '%s' has %s, expected the same dtype",
                   fn, arg, ms_dtype_name(t->dtype_id), ref_arg, ms_dtype_name(ref->dtype_id));
  return 0;
}

int ms_check_float_pair(const char *fn, const char *out_name, const ms_tensor *out,
                        const char *in_name, const ms_tensor *in) {
  MS_TRY(ms_check_tensor(fn, in_name, in));
  MS_TRY(ms_check_float(fn, in_name, in));
  MS_TRY(ms_check_same(fn, out_name, out, in_name, in));
  if (!ms_tensor_is_contiguous(in) || !ms_tensor_is_contiguous(out))
    return ms_fail("%s: arguments must be contiguous ('%s' is%s, '%s' is%s)", fn, in_name,
                   ms_tensor_is_contiguous(in) ? "" : " not", out_name,
                   ms_tensor_is_contiguous(out) ? "" : " not");
  return 0;
}

int ms_check_dim(const char *fn, const ms_tensor *t, int32_t dim) {
  if (dim < 0 || dim >= t->ndim)
    return ms_fail("%s: dim %d out of range for a tensor of %d dims (expected 1..%d)", fn,
                   dim + 1, t->ndim, t->ndim);
  return 0;
}

int ms_check_shape(const char *fn, const char *arg, const ms_tensor *t, int ndim,
                   const int64_t *shape) {
  int same = t->ndim == ndim;
  for (int d = 0; same && d < ndim; d++) same = t->sizes[d] == shape[d];
  if (!same) {
    char a[160], b[160];
    return ms_fail("%s: argument '%s' has shape %s, expected %s", fn, arg,
                   ms_shape_str(a, t->ndim, t->sizes), ms_shape_str(b, ndim, shape));
  }
  return 0;
}
