/* tensor.c — tensor headers, views, element access, copy and fill.
 *
 * Storage (storage.c) is refcounted; a tensor header holds one reference. Views share
 * storage and are validated so that every element they can address lies inside it,
 * with overflow-checked arithmetic. */
#include "internal.h"
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- tensors ------------------------------------------------------------------------- */
/* ndim and sizes of a new shape: 0..8 dims, sizes >= 0, and the product of the
 * non-zero sizes at most MS_MAX_NUMEL, so that numel, every contiguous stride and the
 * byte count fit an int64 even when another size is 0. */
static int check_shape_arg(const char *fn, int32_t ndim, const int64_t *shape,
                           int64_t *numel) {
  if (ndim < 0 || ndim > MS_MAX_DIMS)
    return ms_fail("%s: %d dimensions given, expected 0 to %d", fn, ndim, MS_MAX_DIMS);
  if (ndim > 0 && !shape) return ms_fail("%s: shape is NULL, expected %d sizes", fn, ndim);
  int64_t n = 1, nonzero = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0)
      return ms_fail("%s: size of dimension %d is %lld, expected >= 0", fn, d + 1,
                     (long long)shape[d]);
    if (shape[d] > 0 && (!ms_mul_ok(nonzero, shape[d], &nonzero) || nonzero > MS_MAX_NUMEL))
      return ms_fail("%s: shape has more than 2^59 elements, too large to allocate", fn);
    n *= shape[d];  /* <= nonzero: cannot overflow */
  }
  *numel = n;
  return 0;
}

int ms_view_extent(const char *fn, int ndim, const int64_t *sizes, const int64_t *strides,
                   int64_t offset, int64_t *numel, int64_t *lo, int64_t *hi) {
  MS_TRY(check_shape_arg(fn, ndim, sizes, numel));
  if (*numel == 0) return 0;
  int64_t l = offset, h = offset;
  for (int d = 0; d < ndim; d++) {
    int64_t span;
    if (!ms_mul_ok(sizes[d] - 1, strides[d], &span) ||
        !ms_add_ok(span < 0 ? l : h, span, span < 0 ? &l : &h))
      return ms_fail("%s: view of size %lld and stride %lld in dimension %d reaches past "
                     "2^63 elements, expected a view inside its storage", fn,
                     (long long)sizes[d], (long long)strides[d], d + 1);
  }
  *lo = l, *hi = h;
  return 0;
}

int ms_tensor_empty(ms_tensor *t, int32_t ndim, const int64_t *shape, int32_t dtype,
                    int32_t device) {
  static const char fn[] = "empty";
  int64_t numel = 0;
  if (!t) return ms_fail("%s: argument 'out' is NULL, expected a tensor header", fn);
  MS_TRY(check_shape_arg(fn, ndim, shape, &numel));
  if (ms_dtype_size(dtype) == 0)
    return ms_fail("%s: dtype %d is unknown, expected float32, float64, int64 or uint8", fn,
                   dtype);
  if (device != MS_CPU && device != MS_CUDA)
    return ms_fail("%s: device %d is unknown, expected cpu or cuda", fn, device);
  if (device == MS_CUDA) MS_TRY(ms_cuda_check(fn));
  ms_storage *s;
  MS_TRY(ms_storage_new(&s, numel * ms_dtype_size(dtype), device));
  memset(t, 0, sizeof *t);
  t->storage = s;
  t->ndim = ndim;
  t->dtype_id = dtype;
  t->count = numel;
  int64_t stride = 1;
  for (int d = ndim - 1; d >= 0; d--) {
    t->sizes[d] = shape[d];
    t->strides[d] = stride;
    if (shape[d] > 0) stride *= shape[d];  /* product of non-zero sizes: checked above */
  }
  return 0;
}

int ms_tensor_view(ms_tensor *t, const ms_tensor *base, int32_t ndim,
                   const int64_t *shape, const int64_t *stride, int64_t offset) {
  static const char fn[] = "view";
  int64_t numel = 0, lo = 0, hi = 0;
  if (!t) return ms_fail("%s: argument 'out' is NULL, expected a tensor header", fn);
  MS_TRY(ms_check_tensor(fn, "base", base));
  if (ndim > 0 && !stride) return ms_fail("%s: stride is NULL, expected %d strides", fn, ndim);
  MS_TRY(ms_view_extent(fn, ndim, shape, stride, offset, &numel, &lo, &hi));
  int64_t cap = base->storage->nbytes / ms_dtype_size(base->dtype_id);
  if (offset < 0 || offset > cap)
    return ms_fail("%s: offset %lld is outside a storage of %lld elements", fn,
                   (long long)offset, (long long)cap);
  /* The addressable range [lo, hi] must lie inside the storage. */
  if (numel > 0 && (lo < 0 || hi >= cap))
    return ms_fail("%s: view reaches elements %lld..%lld of a storage of %lld elements, "
                   "expected indices inside it", fn, (long long)lo, (long long)hi,
                   (long long)cap);
  ms_storage *s = base->storage;  /* read before writing t: t may be base */
  int32_t dtype = base->dtype_id;
  memset(t, 0, sizeof *t);
  t->storage = s;
  t->storage->refcount++;
  t->offset = offset;
  t->ndim = ndim;
  t->dtype_id = dtype;
  t->count = numel;
  for (int d = 0; d < ndim; d++) {
    t->sizes[d] = shape[d];
    t->strides[d] = stride[d];
  }
  return 0;
}

void ms_tensor_release(ms_tensor *t) {
  if (!t) return;
  ms_storage_decref(t->storage);
  t->storage = NULL;
}

/* Row-major with no gaps. A tensor with no elements touches no memory, so any strides
 * count as contiguous (as in PyTorch): views of it, like view(), must not be refused. */
int ms_tensor_check(const ms_tensor *t) { return ms_check_tensor("tensor", "self", t); }

int ms_tensor_is_contiguous(const ms_tensor *t) {
  if (t->count == 0) return 1;
  int64_t expect = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    if (t->sizes[d] != 1 && t->strides[d] != expect) return 0;
    expect *= t->sizes[d];
  }
  return 1;
}

int ms_overlap(const ms_tensor *a, const ms_tensor *b, int same_ok) {
  if (a->storage != b->storage || a->count == 0 || b->count == 0) return 0;
  if (same_ok && a->offset == b->offset && a->ndim == b->ndim) {
    int same = 1;
    for (int d = 0; same && d < a->ndim; d++)
      same = a->sizes[d] == b->sizes[d] && a->strides[d] == b->strides[d];
    if (same) return 0;
  }
  int64_t n, alo = 0, ahi = 0, blo = 0, bhi = 0;  /* checked headers: cannot fail */
  if (ms_view_extent("overlap", a->ndim, a->sizes, a->strides, a->offset, &n, &alo, &ahi) ||
      ms_view_extent("overlap", b->ndim, b->sizes, b->strides, b->offset, &n, &blo, &bhi))
    return 1;
  return alo <= bhi && blo <= ahi;
}

int ms_check_disjoint(const char *fn, const char *aname, const ms_tensor *a, const char *bname,
                      const ms_tensor *b) {
  if (ms_overlap(a, b, 0))
    return ms_fail("%s: argument '%s' shares memory with '%s', expected a separate tensor",
                   fn, aname, bname);
  return 0;
}

int ms_check_no_overlap(const char *fn, const ms_tensor *out, const char *arg,
                        const ms_tensor *x) {
  return ms_check_disjoint(fn, "out", out, arg, x);
}

int ms_tensor_new_like(ms_tensor *out, const ms_tensor *t) {
  return ms_tensor_empty(out, t->ndim, t->sizes, t->dtype_id, ms_device_of(t));
}

int ms_contiguous(ms_tensor *out, const ms_tensor *t) {
  if (ms_tensor_is_contiguous(t)) {
    return ms_tensor_view(out, t, t->ndim, t->sizes, t->strides, t->offset);
  }
  MS_TRY(ms_tensor_new_like(out, t));
  if (ms_copy(out, t) != 0) {
    ms_tensor_release(out);
    return -1;
  }
  return 0;
}

/* ---- element access ----------------------------------------------------------------- */
static int element_offset(const char *fn, const ms_tensor *t, const int64_t *index,
                          int64_t *off) {
  MS_TRY(ms_check_tensor(fn, "self", t));
  int64_t o = t->offset;
  for (int d = 0; d < t->ndim; d++) {
    if (index[d] < 0 || index[d] >= t->sizes[d])
      return ms_fail("%s: index %lld out of range for dimension %d of size %lld "
                     "(expected 1..%lld)", fn, (long long)index[d] + 1, d + 1,
                     (long long)t->sizes[d], (long long)t->sizes[d]);
    o += index[d] * t->strides[d];
  }
  *off = o;
  return 0;
}

static double load_as_double(const void *p, int32_t dtype) {
  switch (dtype) {
    case MS_FLOAT32: return *(const float *)p;
    case MS_FLOAT64: return *(const double *)p;
    case MS_INT64: return (double)*(const int64_t *)p;
    default: return *(const uint8_t *)p;
  }
}

static void store_double(void *p, int32_t dtype, double v) {
  switch (dtype) {
    case MS_FLOAT32: *(float *)p = (float)v; break;
    case MS_FLOAT64: *(double *)p = v; break;
    case MS_INT64: *(int64_t *)p = (int64_t)v; break;
    default: *(uint8_t *)p = (uint8_t)v; break;
  }
}

/* A value stored into an integer dtype must be integral and in range (a C cast of an
 * out-of-range double is undefined behaviour, and a silent wrap a wrong result). */
static int int_in(double v, double lo, double hi) { return v >= lo && v < hi && v == floor(v); }
static int check_value(const char *fn, const char *what, int32_t dtype, double v) {
  if (dtype == MS_INT64 && !int_in(v, -0x1p63, 0x1p63))
    return ms_fail("%s: %s %.17g is not an integer in -2^63..2^63-1, expected one for an "
                   "int64 tensor", fn, what, v);
  if (dtype == MS_UINT8 && !int_in(v, 0, 256))
    return ms_fail("%s: %s %.17g is not an integer in 0..255, expected one for a uint8 tensor",
                   fn, what, v);
  return 0;
}

int ms_get(const ms_tensor *t, const int64_t *index, double *value) {
  int64_t off = 0;
  MS_TRY(element_offset("get", t, index, &off));
  if (!value) return ms_fail("get: argument 'value' is NULL");
  int es = ms_dtype_size(t->dtype_id);
  char buf[8];
  const char *p = (const char *)t->storage->data + off * es;
  if (ms_device_of(t) == MS_CUDA) {
    MS_TRY(ms_cuda_memcpy(buf, p, es, MS_D2H));
    p = buf;
  }
  *value = load_as_double(p, t->dtype_id);
  return 0;
}

int ms_set(ms_tensor *t, const int64_t *index, double value) {
  int64_t off = 0;
  MS_TRY(element_offset("set", t, index, &off));
  MS_TRY(check_value("set", "value", t->dtype_id, value));
  int es = ms_dtype_size(t->dtype_id);
  char *p = (char *)t->storage->data + off * es;
  if (ms_device_of(t) == MS_CUDA) {
    char buf[8];
    store_double(buf, t->dtype_id, value);
    return ms_cuda_memcpy(p, buf, es, MS_H2D);
  }
  store_double(p, t->dtype_id, value);
  return 0;
}

/* ---- copy ------------------------------------------------------------------------------ */
/* dst[i] = (TD)src[i] along one inner row. A conversion into an integer dtype checks
 * the range first (a C cast of an out-of-range value is undefined behaviour): values
 * outside it are stored as 0 and raise the job's flag, and ms_copy then fails. */
#define COPY_ROW(TD, TS)                                                          \
  do {                                                                            \
    TD *o = (TD *)it.data[0] + c.off[0];                                          \
    const TS *x = (const TS *)it.data[1] + c.off[1];                              \
    if (s0 == 1 && s1 == 1) for (int64_t i = 0; i < len; i++) o[i] = (TD)x[i];    \
    else for (int64_t i = 0; i < len; i++) o[i * s0] = (TD)x[i * s1];             \
  } while (0)
#define COPY_ROW_CHECKED(TD, TS, LO, HI)                                          \
  do {                                                                            \
    TD *o = (TD *)it.data[0] + c.off[0];                                          \
    const TS *x = (const TS *)it.data[1] + c.off[1];                              \
    for (int64_t i = 0; i < len; i++) {                                           \
      TS v = x[i * s1];                                                           \
      if (v >= (LO) && v < (HI)) o[i * s0] = (TD)v;                               \
      else { o[i * s0] = 0; bad = 1; }                                            \
    }                                                                             \
  } while (0)
#define COPY_FROM(TD)                                              \
  switch (it.dtype[1]) {                                           \
    case MS_FLOAT32: COPY_ROW(TD, float); break;                   \
    case MS_FLOAT64: COPY_ROW(TD, double); break;                  \
    case MS_INT64: COPY_ROW(TD, int64_t); break;                   \
    default: COPY_ROW(TD, uint8_t); break;                         \
  }

typedef struct {
  ms_iter it;
  int bad;  /* set by any thread that met a value out of the target's range */
} copy_job;

static void copy_share(void *ctx, int64_t lo, int64_t hi) {
  copy_job *job = ctx;
  const ms_iter it = job->it;
  int64_t s0 = it.strides[0][it.ndim - 1], s1 = it.strides[1][it.ndim - 1];
  int64_t inner = it.sizes[it.ndim - 1];
  int bad = 0;
  ms_cursor c;
  ms_cursor_seek(&it, &c, lo);
  for (int64_t i = lo; i < hi;) {
    int64_t len = inner - c.idx[it.ndim - 1];
    if (len > hi - i) len = hi - i;
    switch (it.dtype[0]) {
      case MS_FLOAT32: COPY_FROM(float); break;
      case MS_FLOAT64: COPY_FROM(double); break;
      case MS_INT64:
        switch (it.dtype[1]) {  /* truncation toward zero, as PyTorch's .long() */
          case MS_FLOAT32: COPY_ROW_CHECKED(int64_t, float, -0x1p63f, 0x1p63f); break;
          case MS_FLOAT64: COPY_ROW_CHECKED(int64_t, double, -0x1p63, 0x1p63); break;
          case MS_INT64: COPY_ROW(int64_t, int64_t); break;
          default: COPY_ROW(int64_t, uint8_t); break;
        }
        break;
      default:
        switch (it.dtype[1]) {
          case MS_FLOAT32: COPY_ROW_CHECKED(uint8_t, float, 0.0f, 256.0f); break;
          case MS_FLOAT64: COPY_ROW_CHECKED(uint8_t, double, 0.0, 256.0); break;
          case MS_INT64: COPY_ROW_CHECKED(uint8_t, int64_t, 0, 256); break;
          default: COPY_ROW(uint8_t, uint8_t); break;
        }
        break;
    }
    i += len;
    if (i < hi) ms_cursor_advance(&it, &c, len);
  }
  if (bad) __atomic_store_n(&job->bad, 1, __ATOMIC_RELAXED);
}

/* Copy between devices: stage through a contiguous tensor on each side. */
static int copy_across(ms_tensor *dst, const ms_tensor *src) {
  ms_tensor host = {0}, dev = {0};
  int rc = -1;
  if (ms_device_of(dst) == MS_CUDA) {  /* cpu -> cuda */
    if (ms_tensor_empty(&host, dst->ndim, dst->sizes, dst->dtype_id, MS_CPU) ||
        ms_copy(&host, src))
      goto done;
    if (ms_tensor_is_contiguous(dst)) {
      rc = ms_cuda_memcpy(ms_ptr(dst), host.storage->data, host.storage->nbytes, MS_H2D);
      goto done;
    }
    if (ms_tensor_new_like(&dev, dst) ||
        ms_cuda_memcpy(dev.storage->data, host.storage->data, host.storage->nbytes, MS_H2D))
      goto done;
    rc = ms_copy(dst, &dev);
  } else {  /* cuda -> cpu */
    if (ms_contiguous(&dev, src) ||
        ms_tensor_empty(&host, src->ndim, src->sizes, src->dtype_id, MS_CPU) ||
        ms_cuda_memcpy(host.storage->data, ms_ptr(&dev), host.storage->nbytes, MS_D2H))
      goto done;
    rc = ms_copy(dst, &host);
  }
done:
  ms_tensor_release(&host);
  ms_tensor_release(&dev);
  return rc;
}

int ms_copy(ms_tensor *dst, const ms_tensor *src) {
  static const char fn[] = "copy_";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_tensor(fn, "self", dst));
  MS_TRY(ms_check_tensor(fn, "src", src));
  if (dst->count == 0) return 0;
  if (ms_overlap(dst, src, 0) && !(dst->offset == src->offset && dst->dtype_id == src->dtype_id &&
                                   ms_tensor_is_contiguous(dst) && ms_tensor_is_contiguous(src))) {
    /* src and dst share memory (t:copy_(t:t())): read all of src before writing */
    ms_tensor tmp;
    MS_TRY(ms_tensor_new_like(&tmp, src));
    int rc = ms_copy(&tmp, src);
    if (rc == 0) rc = ms_copy(dst, &tmp);
    ms_tensor_release(&tmp);
    return rc;
  }
  if (ms_device_of(dst) != ms_device_of(src)) {
    if (ms_device_of(dst) == MS_CUDA || ms_device_of(src) == MS_CUDA)
      MS_TRY(ms_cuda_check(fn));
    return copy_across(dst, src);
  }
  /* Same dtype, both contiguous, same shape (no broadcast): one memcpy. */
  int same_shape = dst->ndim == src->ndim;
  for (int d = 0; same_shape && d < dst->ndim; d++) same_shape = dst->sizes[d] == src->sizes[d];
  if (dst->dtype_id == src->dtype_id && same_shape && ms_tensor_is_contiguous(dst) &&
      ms_tensor_is_contiguous(src)) {
    int64_t nbytes = dst->count * ms_dtype_size(dst->dtype_id);
    if (ms_device_of(dst) == MS_CUDA) return ms_cuda_memcpy(ms_ptr(dst), ms_ptr(src), nbytes, MS_D2D);
    memmove(ms_ptr(dst), ms_ptr(src), (size_t)nbytes);
    return 0;
  }
  const ms_tensor *ops[2] = {dst, src};
  const char *names[2] = {"self", "src"};
  copy_job job;
  job.bad = 0;
  MS_TRY(ms_iter_init(&job.it, fn, names, 2, ops));
  if (ms_device_of(dst) == MS_CUDA) return ms_cuda_copy(&job.it);
  ms_parallel_for(job.it.count, job.it.count, copy_share, &job);
  if (job.bad)
    return ms_fail("%s: a value of 'src' (%s) is NaN or outside the range of %s, expected "
                   "values that fit the target dtype", fn, ms_dtype_name(src->dtype_id),
                   ms_dtype_name(dst->dtype_id));
  return 0;
}

/* ---- fill and arange ----------------------------------------------------------------
 * Both write start + (row-major element number) * step; fill is step 0. The iterator
 * of a single operand keeps row-major order, so its linear index is that number. */
typedef struct {
  const ms_iter *it;
  double start, step;
} fill_job;

#define FILL_ROW(T)                                                                \
  do {                                                                             \
    T *o = (T *)it->data[0] + c.off[0];                                            \
    for (int64_t j = 0; j < len; j++) o[j * s0] = (T)(job->start + (double)(i + j) * job->step); \
  } while (0)

/* fill (step 0) of a row: one value stored len times; zero bits are a memset, a unit
 * stride a plain store loop (vectorised). The value is start + 0.0, as the affine rule
 * gives (so a fill with -0.0 stores +0.0, as it always has). */
#define FILL_CONST(T)                                                              \
  do {                                                                             \
    T *o = (T *)it->data[0] + c.off[0];                                            \
    if (s0 == 1) {                                                                 \
      const T v = (T)(job->start + 0.0);                                           \
      T zero;                                                                      \
      memset(&zero, 0, sizeof zero);                                               \
      if (memcmp(&v, &zero, sizeof v) == 0)                                        \
        memset(o, 0, (size_t)len * sizeof(T));                                     \
      else                                                                         \
        for (int64_t j = 0; j < len; j++) o[j] = v;                                \
    } else {                                                                       \
      const T v = (T)(job->start + 0.0);                                           \
      for (int64_t j = 0; j < len; j++) o[j * s0] = v;                             \
    }                                                                              \
  } while (0)

static void fill_share(void *ctx, int64_t lo, int64_t hi) {
  const fill_job *job = ctx;
  const ms_iter *it = job->it;
  int64_t inner = it->sizes[it->ndim - 1], s0 = it->strides[0][it->ndim - 1];
  ms_cursor c;
  if (job->step == 0) {   /* fill_, zero_: no per-element arithmetic */
    ms_cursor_seek(it, &c, lo);
    for (int64_t i = lo; i < hi;) {
      int64_t len = inner - c.idx[it->ndim - 1];
      if (len > hi - i) len = hi - i;
      switch (it->dtype[0]) {
        case MS_FLOAT32: FILL_CONST(float); break;
        case MS_FLOAT64: FILL_CONST(double); break;
        case MS_INT64: FILL_CONST(int64_t); break;
        default: FILL_CONST(uint8_t); break;
      }
      i += len;
      if (i < hi) ms_cursor_advance(it, &c, len);
    }
    return;
  }
  ms_cursor_seek(it, &c, lo);
  for (int64_t i = lo; i < hi;) {
    int64_t len = inner - c.idx[it->ndim - 1];
    if (len > hi - i) len = hi - i;
    switch (it->dtype[0]) {
      case MS_FLOAT32: FILL_ROW(float); break;
      case MS_FLOAT64: FILL_ROW(double); break;
      case MS_INT64: FILL_ROW(int64_t); break;
      default: FILL_ROW(uint8_t); break;
    }
    i += len;
    if (i < hi) ms_cursor_advance(it, &c, len);
  }
}

static int fill_affine(const char *fn, ms_tensor *t, double start, double step) {
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_tensor(fn, "self", t));
  if (t->count == 0) return 0;
  if (t->dtype_id == MS_INT64 || t->dtype_id == MS_UINT8) {
    /* integral endpoints and step keep every value integral and in range */
    MS_TRY(check_value(fn, step == 0 ? "value" : "start", t->dtype_id, start));
    if (step != 0) {
      MS_TRY(check_value(fn, "step", t->dtype_id == MS_UINT8 && step < 0 ? MS_INT64 : t->dtype_id,
                         step));
      MS_TRY(check_value(fn, "last value", t->dtype_id, start + (double)(t->count - 1) * step));
    }
  }
  const ms_tensor *ops[1] = {t};
  const char *names[1] = {"self"};
  ms_iter it;
  MS_TRY(ms_iter_init(&it, fn, names, 1, ops));
  if (ms_device_of(t) == MS_CUDA)
    return step == 0 ? ms_cuda_fill(&it, start) : ms_cuda_arange(&it, start, step);
  fill_job job = {&it, start, step};
  ms_parallel_for(it.count, it.count, fill_share, &job);
  return 0;
}

int ms_fill(ms_tensor *t, double value) { return fill_affine("fill_", t, value, 0); }
int ms_arange(ms_tensor *t, double start, double step) {
  return fill_affine("arange", t, start, step);
}
