/* check.c — the argument checks of every C entry point (ms_check_*): each validates one
 * argument and, on failure, names the function, the argument, what was given and what
 * was expected. */
#include "internal.h"

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
