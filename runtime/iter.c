/* iter.c — broadcasting and dimension collapsing for elementwise kernels.
 *
 * Operand 0 (the output) fixes the iteration shape; each other operand is aligned to
 * it from the right, and a dim of size 1 (or a missing leading dim) gets stride 0.
 * Then dims of size 1 are dropped and neighbours that are contiguous with each other
 * in every operand are merged, so a contiguous op becomes one flat run. The iteration
 * order is row-major over operand 0's shape (nothing is permuted). */
#include "internal.h"

int ms_iter_init(ms_iter *it, const char *fn, const char *const *names, int nops,
                 const ms_tensor *const *ops) {
  const ms_tensor *out = ops[0];
  int nd = out->ndim;
  int64_t shape[MS_MAX_DIMS], stride[MS_ITER_MAX_OPS][MS_MAX_DIMS];
  for (int d = 0; d < nd; d++) shape[d] = out->sizes[d];
  for (int d = 0; d < nd; d++)
    if (out->strides[d] == 0 && out->sizes[d] > 1)
      return ms_fail("%s: argument '%s' is an expanded view (stride 0 in dim %d), expected a "
                     "tensor whose elements are distinct memory (use :clone())", fn, names[0],
                     d + 1);
  for (int k = 0; k < nops; k++) {
    const ms_tensor *t = ops[k];
    if (k > 0 && ms_device_of(t) != ms_device_of(out))
      return ms_fail("%s: argument '%s' is on %s but '%s' is on %s, expected both on one "
                     "device", fn, names[k], ms_device_name(ms_device_of(t)), names[0],
                     ms_device_name(ms_device_of(out)));
    if (t->ndim > nd) goto mismatch;
    for (int d = 0; d < nd; d++) {
      int td = d - (nd - t->ndim);  /* t's dim aligned with out's dim d, or < 0 */
      if (td < 0) { stride[k][d] = 0; continue; }
      if (t->sizes[td] == shape[d]) stride[k][d] = t->strides[td];
      else if (t->sizes[td] == 1) stride[k][d] = 0;
      else goto mismatch;
    }
    it->data[k] = ms_ptr(t);
    it->dtype[k] = t->dtype_id;
    continue;
  mismatch: {
      char a[160], b[160];
      return ms_fail("%s: argument '%s' of shape %s cannot be broadcast to shape %s of '%s'",
                     fn, names[k], ms_shape_str(a, t->ndim, t->sizes),
                     ms_shape_str(b, nd, shape), names[0]);
    }
  }
  /* Drop size-1 dims, merge contiguous neighbours. */
  int n = 0;
  for (int d = 0; d < nd; d++) {
    if (shape[d] == 1) continue;
    int merge = n > 0;
    for (int k = 0; merge && k < nops; k++)
      merge = it->strides[k][n - 1] == stride[k][d] * shape[d];
    if (merge) {
      it->sizes[n - 1] *= shape[d];
      for (int k = 0; k < nops; k++) it->strides[k][n - 1] = stride[k][d];
    } else {
      it->sizes[n] = shape[d];
      for (int k = 0; k < nops; k++) it->strides[k][n] = stride[k][d];
      n++;
    }
  }
  if (n == 0) {  /* a single element */
    it->sizes[0] = 1;
    for (int k = 0; k < nops; k++) it->strides[k][0] = 1;
    n = 1;
  }
  it->ndim = n;
  it->nops = nops;
  it->count = out->count;
  return 0;
}
