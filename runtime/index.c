/* index.c — index_select and gather for every dtype (elements are moved as bytes),
 * and index_add (float; the backward of index_select, e.g. for embeddings).
 *
 * Index tensors are int64 and read with a base (Lua passes 1): a value v selects
 * position v - base; anything outside 0..size-1 is an error naming the value. */
#include "internal.h"
#include <string.h>

static int bad_index(const char *fn, int64_t v, int64_t base, int dim, int64_t size) {
  int64_t hi = 0;
  if (size == 0)
    return ms_fail("%s: index %lld is out of range for dimension %d of size 0 (it has no "
                   "entries)", fn, (long long)v, dim + 1);
  if (!ms_add_ok(size - 1, base, &hi)) hi = INT64_MAX;
  return ms_fail("%s: index %lld is out of range for dimension %d of size %lld (expected "
                 "%lld..%lld)", fn, (long long)v, dim + 1, (long long)size, (long long)base,
                 (long long)hi);
}

/* Rows [lo, hi) of out viewed as [outer * nidx, inner]: each a memcpy of one row. */
typedef struct {
  const char *src;
  char *dst;
  const int64_t *idx;
  size_t row;  /* bytes */
  int64_t size, nidx, base;
} select_job;

static void select_share(void *ctx, int64_t lo, int64_t hi) {
  const select_job *j = ctx;
  for (int64_t r = lo; r < hi; r++) {
    int64_t o = r / j->nidx, k = r % j->nidx;
    /* every index was validated: ms_index_pos is >= 0 */
    int64_t pos = ms_index_pos(j->idx[k], j->base, j->size);
    memcpy(j->dst + r * j->row, j->src + (o * j->size + pos) * j->row, j->row);
  }
}

/* What index_select and gather both require of their arguments. */
static int check_index_args(const char *fn, const ms_tensor *out, const ms_tensor *x,
                            int32_t dim, const ms_tensor *index) {
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_tensor(fn, "self", x));
  MS_TRY(ms_check_same(fn, "out", out, "self", x));
  MS_TRY(ms_check_dtype(fn, "index", index, MS_INT64));
  if (ms_device_of(index) != ms_device_of(x))
    return ms_fail("%s: argument 'index' is on %s but 'self' is on %s, expected one device",
                   fn, ms_device_name(ms_device_of(index)), ms_device_name(ms_device_of(x)));
  return ms_check_dim(fn, x, dim);
}

int ms_index_select(ms_tensor *out, const ms_tensor *x, int32_t dim, const ms_tensor *index,
                    int64_t base) {
  static const char fn[] = "index_select";
  MS_TRY(check_index_args(fn, out, x, dim, index));
  if (index->ndim != 1)
    return ms_fail("%s: argument 'index' has %d dims, expected a 1-D tensor", fn, index->ndim);
  int64_t want[MS_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++) want[d] = d == dim ? index->count : x->sizes[d];
  MS_TRY(ms_check_shape(fn, "out", out, x->ndim, want));
  MS_TRY(ms_check_no_overlap(fn, out, "self", x));
  MS_TRY(ms_check_no_overlap(fn, out, "index", index));
  if (!ms_tensor_is_contiguous(out))
    return ms_fail("%s: argument 'out' is not contiguous, expected a contiguous tensor", fn);
  if (out->count == 0) return 0;
  int64_t size = x->sizes[dim], outer = 1, inner = 1, nidx = index->count;
  for (int d = 0; d < dim; d++) outer *= x->sizes[d];
  for (int d = dim + 1; d < x->ndim; d++) inner *= x->sizes[d];
  ms_tensor xc, ic;
  MS_TRY(ms_contiguous(&xc, x));
  if (ms_contiguous(&ic, index)) { ms_tensor_release(&xc); return -1; }
  const int64_t *idx = (const int64_t *)ms_ptr(&ic);
  int es = ms_dtype_size(x->dtype_id);
  int rc = 0;
  if (ms_device_of(x) == MS_CUDA) {
    int64_t bad = 0;
    rc = ms_cuda_index_select((float *)ms_ptr(out), (const float *)ms_ptr(&xc), idx, outer,
                              size, inner, nidx, base, es, &bad);
    if (rc == 1) rc = bad_index(fn, bad, base, dim, size);
  } else {
    for (int64_t j = 0; j < nidx; j++)
      if (ms_index_pos(idx[j], base, size) < 0) {
        rc = bad_index(fn, idx[j], base, dim, size);
        break;
      }
    if (rc == 0) {
      select_job job = {ms_ptr(&xc), ms_ptr(out), idx, (size_t)(inner * es), size, nidx, base};
      ms_parallel_for(outer * nidx, out->count, select_share, &job);
    }
  }
  ms_tensor_release(&xc);
  ms_tensor_release(&ic);
  return rc;
}

/* Move one element of es bytes. */
static inline void move_elem(char *dst, const char *src, int es) {
  switch (es) {
    case 1: *(uint8_t *)dst = *(const uint8_t *)src; break;
    case 4: *(uint32_t *)dst = *(const uint32_t *)src; break;
    default: *(uint64_t *)dst = *(const uint64_t *)src; break;
  }
}

int ms_gather(ms_tensor *out, const ms_tensor *x, int32_t dim, const ms_tensor *index,
              int64_t base) {
  static const char fn[] = "gather";
  MS_TRY(check_index_args(fn, out, x, dim, index));
  char s1[160], s2[160];
  if (index->ndim != x->ndim)
    return ms_fail("%s: argument 'index' has %d dims, expected %d (as many as 'self')", fn,
                   index->ndim, x->ndim);
  for (int d = 0; d < x->ndim; d++)
    if (d != dim && index->sizes[d] > x->sizes[d])
      return ms_fail("%s: argument 'index' has shape %s, expected at most %s outside dim %d",
                     fn, ms_shape_str(s1, index->ndim, index->sizes),
                     ms_shape_str(s2, x->ndim, x->sizes), dim + 1);
  MS_TRY(ms_check_shape(fn, "out", out, index->ndim, index->sizes));
  MS_TRY(ms_check_no_overlap(fn, out, "self", x));
  MS_TRY(ms_check_no_overlap(fn, out, "index", index));
  if (out->count == 0) return 0;
  /* x seen with index's shape and stride 0 along dim: the iterator then gives the
   * offset of x[.., 0, ..] and the index value adds index * stride[dim]. */
  ms_tensor xv = *x;
  for (int d = 0; d < x->ndim; d++) xv.sizes[d] = index->sizes[d];
  xv.strides[dim] = 0;
  xv.count = index->count;
  const ms_tensor *ops[3] = {out, index, &xv};
  const char *names[3] = {"out", "index", "self"};
  ms_iter it;
  MS_TRY(ms_iter_init(&it, fn, names, 3, ops));
  int64_t size = x->sizes[dim], sdim = x->strides[dim];
  if (ms_device_of(x) == MS_CUDA) {
    int64_t bad = 0;
    int rc = ms_cuda_gather(&it, dim, size, sdim, base, &bad);
    return rc == 1 ? bad_index(fn, bad, base, dim, size) : rc;
  }
  int es = ms_dtype_size(x->dtype_id);
  int last = it.ndim - 1;
  int64_t inner = it.sizes[last];
  int failed = 0;
  int64_t bad = 0;
  ms_cursor c;
  ms_cursor_seek(&it, &c, 0);
  for (int64_t i = 0; i < it.count && !failed;) {
    for (int64_t j = 0; j < inner - c.idx[last]; j++) {
      int64_t v = ((const int64_t *)it.data[1])[c.off[1] + j * it.strides[1][last]];
      int64_t pos = ms_index_pos(v, base, size);
      if (pos < 0) { failed = 1; bad = v; break; }
      move_elem(it.data[0] + (c.off[0] + j * it.strides[0][last]) * es,
                it.data[2] + (c.off[2] + j * it.strides[2][last] + pos * sdim) * es, es);
    }
    int64_t len = inner - c.idx[last];
    i += len;
    if (i < it.count) ms_cursor_advance(&it, &c, len);
  }
  return failed ? bad_index(fn, bad, base, dim, size) : 0;
}

/* ---- index_add ----------------------------------------------------------------------- */
int ms_index_add(ms_tensor *out, int32_t dim, const ms_tensor *index, const ms_tensor *src,
                 int64_t base) {
  static const char fn[] = "index_add_";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_float(fn, "source", src));
  MS_TRY(ms_check_same(fn, "self", out, "source", src));
  if (!ms_tensor_is_contiguous(out) || !ms_tensor_is_contiguous(src))
    return ms_fail("%s: 'self' and 'source' must be contiguous", fn);
  MS_TRY(ms_check_dtype(fn, "index", index, MS_INT64));
  if (ms_device_of(index) != ms_device_of(out))
    return ms_fail("%s: argument 'index' is on %s but 'self' is on %s, expected one device",
                   fn, ms_device_name(ms_device_of(index)), ms_device_name(ms_device_of(out)));
  MS_TRY(ms_check_dim(fn, out, dim));
  if (index->ndim != 1 || !ms_tensor_is_contiguous(index))
    return ms_fail("%s: argument 'index' must be a contiguous 1-D tensor (has %d dims)", fn,
                   index->ndim);
  int64_t want[MS_MAX_DIMS];
  for (int d = 0; d < out->ndim; d++) want[d] = d == dim ? index->count : out->sizes[d];
  MS_TRY(ms_check_shape(fn, "source", src, out->ndim, want));
  MS_TRY(ms_check_no_overlap(fn, out, "source", src));
  MS_TRY(ms_check_no_overlap(fn, out, "index", index));
  int64_t size = out->sizes[dim], outer = 1, inner = 1, nidx = index->count;
  for (int d = 0; d < dim; d++) outer *= out->sizes[d];
  for (int d = dim + 1; d < out->ndim; d++) inner *= out->sizes[d];
  const int64_t *idx = (const int64_t *)ms_ptr(index);
  if (ms_device_of(out) == MS_CUDA) {
    int64_t bad = 0;
    int rc = ms_cuda_index_add(ms_ptr(out), ms_ptr(src), idx, outer, size, inner, nidx, base, &bad);
    return rc == 1 ? bad_index(fn, bad, base, dim, size) : rc;
  }
  for (int64_t j = 0; j < nidx; j++)
    if (ms_index_pos(idx[j], base, size) < 0) return bad_index(fn, idx[j], base, dim, size);
  /* Serial over index entries (repeats accumulate in order), vector over inner. */
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < nidx; j++) {
      int64_t row = o * size + ms_index_pos(idx[j], base, size), srow = o * nidx + j;
      if (out->dtype_id == MS_FLOAT32) {
        float *d = (float *)ms_ptr(out) + row * inner;
        const float *s = (const float *)ms_ptr(src) + srow * inner;
        for (int64_t i = 0; i < inner; i++) d[i] += s[i];
      } else {
        double *d = (double *)ms_ptr(out) + row * inner;
        const double *s = (const double *)ms_ptr(src) + srow * inner;
        for (int64_t i = 0; i < inner; i++) d[i] += s[i];
      }
    }
  return 0;
}
