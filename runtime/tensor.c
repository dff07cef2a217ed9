/* tensor.c — storage, tensor headers, views, element access, copy and fill.
 *
 * Storage is refcounted; a tensor header holds one reference. Views share storage and
 * are validated so that every element they can address lies inside it. */
#include "internal.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- storage ------------------------------------------------------------------------ */
/* On the CPU the header and the data are one allocation: [header | pad to 64 | data],
 * 64-byte aligned (whole cache lines, aligned vector loads); one malloc per tensor
 * keeps small ops cheap. On the GPU the header is host memory, the data device memory. */
enum { MS_HEADER_BYTES = 64 };
_Static_assert(sizeof(ms_storage) + sizeof(void *) <= MS_HEADER_BYTES, "header fits its slot");

/* ---- the CPU block cache: free lists of released blocks, keyed by exact size ----------
 * A cached block's header slot links it into its list (the word after ms_storage). */
enum { CACHE_MIN = 64 << 10, CACHE_SLOTS = 256 };
static const int64_t CACHE_CAP = (int64_t)1 << 30;
typedef struct { int64_t nbytes; void *head; } cache_slot;
static cache_slot cache[CACHE_SLOTS];
static int64_t cache_bytes = 0;

static void **link_of(void *block) { return (void **)((char *)block + sizeof(ms_storage)); }

static void *cache_take(int64_t nbytes) {
  for (int i = 0; i < CACHE_SLOTS; i++)
    if (cache[i].nbytes == nbytes && cache[i].head) {
      void *b = cache[i].head;
      cache[i].head = *link_of(b);
      cache_bytes -= nbytes;
      return b;
    }
  return NULL;
}

static int cache_put(void *block, int64_t nbytes) {
#ifdef __SANITIZE_ADDRESS__
  (void)block;  /* sanitizer builds free every block, so a use after free is caught */
  return 0;
#endif
  if (nbytes < CACHE_MIN || cache_bytes + nbytes > CACHE_CAP) return 0;
  int slot = -1;
  for (int i = 0; i < CACHE_SLOTS && slot < 0; i++)
    if (cache[i].nbytes == nbytes) slot = i;
  for (int i = 0; i < CACHE_SLOTS && slot < 0; i++)
    if (!cache[i].head) slot = i, cache[i].nbytes = nbytes;
  if (slot < 0) return 0;
  *link_of(block) = cache[slot].head;
  cache[slot].head = block;
  cache_bytes += nbytes;
  return 1;
}

int64_t ms_cpu_cache_bytes(void) { return cache_bytes; }

void ms_cpu_cache_clear(void) {
  for (int i = 0; i < CACHE_SLOTS; i++) {
    while (cache[i].head) {
      void *b = cache[i].head;
      cache[i].head = *link_of(b);
      free(b);
    }
    cache[i].nbytes = 0;
  }
  cache_bytes = 0;
}

int ms_storage_new(ms_storage **out, int64_t nbytes, int32_t device) {
  ms_storage *s;
  if (device == MS_CPU) {
    void *block = nbytes >= CACHE_MIN ? cache_take(nbytes) : NULL;
    if (!block && ((uint64_t)nbytes > (uint64_t)INT64_MAX - MS_HEADER_BYTES ||
                   posix_memalign(&block, 64, (size_t)(MS_HEADER_BYTES + nbytes)) != 0)) {
      ms_cpu_cache_clear();  /* memory held by the cache may be what is missing */
      if (posix_memalign(&block, 64, (size_t)(MS_HEADER_BYTES + nbytes)) != 0)
        return ms_fail("out of memory: cannot allocate %lld bytes on cpu", (long long)nbytes);
    }
    s = block;
    s->data = nbytes > 0 ? (char *)block + MS_HEADER_BYTES : NULL;
  } else {
    s = malloc(sizeof *s);
    if (!s) return ms_fail("out of memory allocating a storage header");
    s->data = NULL;
    if (nbytes > 0 && ms_cuda_malloc(&s->data, nbytes) != 0) {
      free(s);
      return -1;
    }
  }
  s->nbytes = nbytes;
  s->device = device;
  s->refcount = 1;
  *out = s;
  return 0;
}

void ms_storage_decref(ms_storage *s) {
  if (!s || --s->refcount > 0) return;
  if (s->device != MS_CPU) {
    ms_cuda_free(s->data);
    free(s);
  } else if (!cache_put(s, s->nbytes)) {
    free(s);
  }
}

/* ---- tensors ------------------------------------------------------------------------- */
static int check_shape_arg(const char *fn, int32_t ndim, const int64_t *shape,
                           int64_t *numel) {
  if (ndim < 0 || ndim > MS_MAX_DIMS)
    return ms_fail("%s: %d dimensions given, expected 0 to %d", fn, ndim, MS_MAX_DIMS);
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0)
      return ms_fail("%s: size of dimension %d is %lld, expected >= 0", fn, d + 1,
                     (long long)shape[d]);
    if (shape[d] > 0 && n > INT64_MAX / 16 / shape[d])
      return ms_fail("%s: shape has more than 2^59 elements, too large to allocate", fn);
    n *= shape[d];
  }
  *numel = n;
  return 0;
}

int ms_tensor_empty(ms_tensor *t, int32_t ndim, const int64_t *shape, int32_t dtype,
                    int32_t device) {
  static const char fn[] = "empty";
  int64_t numel = 0;
  MS_TRY(check_shape_arg(fn, ndim, shape, &numel));
  if (ms_dtype_size(dtype) == 0)
    return ms_fail("%s: dtype %d is unknown, expected float32, float64, int64 or uint8", fn,
                   dtype);
  if (device != MS_CPU && device != MS_CUDA)
    return ms_fail("%s: device %d is unknown, expected cpu or cuda", fn, device);
  if (device == MS_CUDA) MS_TRY(ms_cuda_check(fn));
  memset(t, 0, sizeof *t);
  MS_TRY(ms_storage_new(&t->storage, numel * ms_dtype_size(dtype), device));
  t->ndim = ndim;
  t->dtype_id = dtype;
  t->count = numel;
  int64_t stride = 1;
  for (int d = ndim - 1; d >= 0; d--) {
    t->sizes[d] = shape[d];
    t->strides[d] = stride;
    stride *= shape[d];
  }
  return 0;
}

int ms_tensor_view(ms_tensor *t, const ms_tensor *base, int32_t ndim,
                   const int64_t *shape, const int64_t *stride, int64_t offset) {
  static const char fn[] = "view";
  int64_t numel = 0;
  MS_TRY(ms_check_tensor(fn, "base", base));
  MS_TRY(check_shape_arg(fn, ndim, shape, &numel));
  if (numel > 0) {
    /* The addressable range [lo, hi] must lie inside the storage. */
    int64_t lo = offset, hi = offset;
    for (int d = 0; d < ndim; d++) {
      int64_t span = (shape[d] - 1) * stride[d];
      if (span < 0) lo += span; else hi += span;
    }
    int64_t cap = base->storage->nbytes / ms_dtype_size(base->dtype_id);
    if (lo < 0 || hi >= cap)
      return ms_fail("%s: view reaches elements %lld..%lld of a storage of %lld elements, "
                     "expected indices inside it", fn, (long long)lo, (long long)hi,
                     (long long)cap);
  }
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

int ms_tensor_is_contiguous(const ms_tensor *t) {
  int64_t expect = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    if (t->sizes[d] != 1 && t->strides[d] != expect) return 0;
    expect *= t->sizes[d];
  }
  return 1;
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

int ms_get(const ms_tensor *t, const int64_t *index, double *value) {
  int64_t off = 0;
  MS_TRY(element_offset("get", t, index, &off));
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
/* dst[i] = (TD)src[i] along one inner row. */
#define COPY_ROW(TD, TS)                                                          \
  do {                                                                            \
    TD *o = (TD *)it.data[0] + c.off[0];                                          \
    const TS *x = (const TS *)it.data[1] + c.off[1];                              \
    if (s0 == 1 && s1 == 1) for (int64_t i = 0; i < len; i++) o[i] = (TD)x[i];    \
    else for (int64_t i = 0; i < len; i++) o[i * s0] = (TD)x[i * s1];             \
  } while (0)
#define COPY_FROM(TD)                                              \
  switch (it.dtype[1]) {                                           \
    case MS_FLOAT32: COPY_ROW(TD, float); break;                   \
    case MS_FLOAT64: COPY_ROW(TD, double); break;                  \
    case MS_INT64: COPY_ROW(TD, int64_t); break;                   \
    default: COPY_ROW(TD, uint8_t); break;                         \
  }

static void copy_share(void *ctx, int64_t lo, int64_t hi) {
  const ms_iter it = *(const ms_iter *)ctx;
  int64_t s0 = it.strides[0][it.ndim - 1], s1 = it.strides[1][it.ndim - 1];
  int64_t inner = it.sizes[it.ndim - 1];
  ms_cursor c;
  ms_cursor_seek(&it, &c, lo);
  for (int64_t i = lo; i < hi;) {
    int64_t len = inner - c.idx[it.ndim - 1];
    if (len > hi - i) len = hi - i;
    switch (it.dtype[0]) {
      case MS_FLOAT32: COPY_FROM(float); break;
      case MS_FLOAT64: COPY_FROM(double); break;
      case MS_INT64: COPY_FROM(int64_t); break;
      default: COPY_FROM(uint8_t); break;
    }
    i += len;
    if (i < hi) ms_cursor_advance(&it, &c, len);
  }
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
  ms_iter it;
  MS_TRY(ms_iter_init(&it, fn, names, 2, ops));
  if (ms_device_of(dst) == MS_CUDA) return ms_cuda_copy(&it);
  ms_parallel_for(it.count, it.count, copy_share, &it);
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

static void fill_share(void *ctx, int64_t lo, int64_t hi) {
  const fill_job *job = ctx;
  const ms_iter *it = job->it;
  int64_t inner = it->sizes[it->ndim - 1], s0 = it->strides[0][it->ndim - 1];
  ms_cursor c;
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
