/* internal.h — what the runtime's .c files and the CUDA kernels share, never exported.
 *
 *   errors     ms_fail(fmt, ...) sets the thread-local message and returns -1
 *   checks     ms_check_*(fn, arg, ...) validate one argument and name it on failure
 *   iterator   ms_iter: broadcast + collapse the shapes of up to 4 operands once, so
 *              a kernel walks (inner rows x strides); used by CPU loops and handed to
 *              CUDA kernels as-is
 *   cuda       the entry points the kernels/ .cu files implement (or cuda_stub.c refuses)
 */
#ifndef MS_INTERNAL_H
#define MS_INTERNAL_H
#include "include/moonstep.h"
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors (error.c) --------------------------------------------------------------- */
int ms_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern volatile int ms_interrupt_flag;
int ms_fail_interrupted(const char *fn);
#define MS_CHECK_INTERRUPT(fn) \
  do { if (ms_interrupt_flag) return ms_fail_interrupted(fn); } while (0)
#define MS_TRY(expr) do { if ((expr) != 0) return -1; } while (0)

/* ---- checked arithmetic ------------------------------------------------------------
 * Every size, stride, offset and index computation on values a caller supplied goes
 * through these (never a bare * or + that could overflow: that is undefined behaviour).
 * Each returns 1 and stores the result when it fits, 0 on overflow. */
static inline int ms_mul_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_mul_overflow(a, b, r); }
static inline int ms_add_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_add_overflow(a, b, r); }
/* The largest element count of one tensor (2^59: times 8 bytes still fits int64 with
 * room for a header) and therefore of any contiguous stride. */
#define MS_MAX_NUMEL ((int64_t)1 << 59)
/* The 0-based position of index value v read with `base` in a dim of `size`, or -1 when
 * outside 0..size-1. Unsigned arithmetic: no overflow for any v, base (e.g. -2^63). */
#ifdef __CUDACC__
__host__ __device__
#endif
static inline int64_t ms_index_pos(int64_t v, int64_t base, int64_t size) {
  if (v < base) return -1;
  uint64_t p = (uint64_t)v - (uint64_t)base;
  return p < (uint64_t)size ? (int64_t)p : -1;
}
/* numel of a shape and the element range [lo, hi] a view (sizes, strides, offset)
 * addresses, overflow-checked; fails naming fn. lo/hi are untouched when numel is 0. */
int ms_view_extent(const char *fn, int ndim, const int64_t *sizes, const int64_t *strides,
                   int64_t offset, int64_t *numel, int64_t *lo, int64_t *hi);

/* ---- names in messages (dtype.c; ms_dtype_size is public) ------------------------------ */
/* "[2,3]" into buf (at least 160 bytes). */
const char *ms_shape_str(char *buf, int ndim, const int64_t *shape);
const char *ms_dtype_name(int32_t dtype);
const char *ms_device_name(int32_t device);

/* ---- argument checks (check.c) ----------------------------------------------------------
 * Each returns 0 or fails with a message "fn: argument 'arg' ...". */
int ms_check_tensor(const char *fn, const char *arg, const ms_tensor *t);
int ms_check_float(const char *fn, const char *arg, const ms_tensor *t);
int ms_check_dtype(const char *fn, const char *arg, const ms_tensor *t, int32_t dtype);
int ms_check_same(const char *fn, const char *arg, const ms_tensor *t,
                  const char *ref_arg, const ms_tensor *ref); /* dtype and device */
int ms_check_shape(const char *fn, const char *arg, const ms_tensor *t, int ndim,
                   const int64_t *shape);
int ms_check_dim(const char *fn, const ms_tensor *t, int32_t dim); /* 0-based, shown 1-based */
/* What every layer kernel asks of an (output, input) pair: both live, a float dtype, one
 * dtype and device, both contiguous. */
int ms_check_float_pair(const char *fn, const char *out_name, const ms_tensor *out,
                        const char *in_name, const ms_tensor *in);

static inline int ms_device_of(const ms_tensor *t) { return t->storage->device; }
static inline char *ms_ptr(const ms_tensor *t) {
  return (char *)t->storage->data + t->offset * (int64_t)ms_dtype_size(t->dtype_id);
}

/* A contiguous tensor with t's shape, dtype and device, holding t's values: a view of
 * t when t is already contiguous, else a fresh copy. Release it after use. */
int ms_contiguous(ms_tensor *out, const ms_tensor *t);
/* 1 when a and b (checked headers) share storage and their element ranges overlap;
 * with same_ok, a and b viewing exactly the same elements in the same layout (an
 * in-place elementwise op) does not count. */
int ms_overlap(const ms_tensor *a, const ms_tensor *b, int same_ok);
/* Fails "fn: argument 'out' shares memory with 'arg'" when ms_overlap(out, x, 0). */
int ms_check_no_overlap(const char *fn, const ms_tensor *out, const char *arg,
                        const ms_tensor *x);
/* the same, naming both: "argument 'aname' shares memory with 'bname'" */
int ms_check_disjoint(const char *fn, const char *aname, const ms_tensor *a, const char *bname,
                      const ms_tensor *b);
int ms_tensor_new_like(ms_tensor *out, const ms_tensor *t);

/* ---- storage ------------------------------------------------------------------------ */
int ms_storage_new(ms_storage **out, int64_t nbytes, int32_t device);
void ms_storage_decref(ms_storage *s);
/* a and b (one size) exchange their memory; called again with the same pair, they trade it
 * back (storage.c: a storage released while traded takes its own memory back first). */
int ms_storage_trade(ms_storage *a, ms_storage *b);
/* s traded back if it is traded (1), else nothing (0). */
int ms_storage_untrade(ms_storage *s);

/* ---- broadcast iterator ------------------------------------------------------------ */
enum { MS_ITER_MAX_OPS = 4 };
typedef struct ms_iter {
  int ndim;                                    /* >= 1 after collapsing */
  int nops;                                    /* operand 0 is the output */
  int64_t count;                                /* elements */
  int64_t sizes[MS_MAX_DIMS];                   /* innermost dim last */
  int64_t strides[MS_ITER_MAX_OPS][MS_MAX_DIMS]; /* elements; 0 where broadcast */
  char *data[MS_ITER_MAX_OPS];                 /* first element of each operand */
  int32_t dtype[MS_ITER_MAX_OPS];
} ms_iter;

/* ops[0] defines the shape; every other operand must broadcast to it. */
int ms_iter_init(ms_iter *it, const char *fn, const char *const *names, int nops,
                 const ms_tensor *const *ops);

/* A position inside an iterator: multi-index and per-operand element offsets. */
typedef struct ms_cursor {
  int64_t idx[MS_MAX_DIMS];
  int64_t off[MS_ITER_MAX_OPS];
} ms_cursor;

static inline void ms_cursor_seek(const ms_iter *it, ms_cursor *c, int64_t linear) {
  for (int k = 0; k < it->nops; k++) c->off[k] = 0;
  for (int d = it->ndim - 1; d >= 0; d--) {
    int64_t i = linear % it->sizes[d];
    linear /= it->sizes[d];
    c->idx[d] = i;
    for (int k = 0; k < it->nops; k++) c->off[k] += i * it->strides[k][d];
  }
}

/* Move forward by len elements, len <= what is left of the current inner row. */
static inline void ms_cursor_advance(const ms_iter *it, ms_cursor *c, int64_t len) {
  int d = it->ndim - 1;
  c->idx[d] += len;
  for (int k = 0; k < it->nops; k++) c->off[k] += len * it->strides[k][d];
  while (d > 0 && c->idx[d] == it->sizes[d]) {
    for (int k = 0; k < it->nops; k++) c->off[k] -= it->sizes[d] * it->strides[k][d];
    c->idx[d] = 0;
    d--;
    c->idx[d]++;
    for (int k = 0; k < it->nops; k++) c->off[k] += it->strides[k][d];
  }
}

/* ---- run-time dispatch ---------------------------------------------------------------- */
/* A loop marked MS_CLONES is compiled for any x86-64 and for x86-64-v3 (AVX2 + FMA); the
 * loader picks one at run time (the library is built for any x86-64, never -march=native).
 * A loop marked so must give the same bits either way: elementwise work vectorised, every
 * sum in a fixed order (C11 neither contracts nor reorders; fma, sqrt and division are
 * correctly rounded in every lane). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MS_CLONES __attribute__((target_clones("default", "arch=x86-64-v3")))
#else
#define MS_CLONES
#endif

/* ---- CPU threading (threads.c) ---------------------------------------------------------- */
#ifdef _OPENMP
#include <omp.h>
#define ms_thread_id() omp_get_thread_num()
#define ms_team_size() omp_get_num_threads()
#else
#define ms_thread_id() 0
#define ms_team_size() 1
#endif
enum { MS_PARALLEL_GRAIN = 32768 };  /* elements below which a loop stays serial */
int ms_threads_for(int64_t work);
/* Ends the guard's back-off when it is over (threads.c); called before OpenBLAS runs, so
 * that a stretch of GEMMs alone gets its threads back too. */
void ms_threads_end_backoff_if_due(void);
/* fn(ctx, lo, hi) over items [0, n) split in contiguous shares, one per thread; work
 * (in elements touched) sets the thread count, and a call below the grain runs on the
 * calling thread without entering OpenMP at all (that alone costs more than a small op). */
typedef void (*ms_range_fn)(void *ctx, int64_t lo, int64_t hi);
void ms_parallel_for(int64_t n, int64_t work, ms_range_fn fn, void *ctx);
/* The [lo, hi) share of thread `tid` of `nth` over n items. */
static inline void ms_split(int64_t n, int tid, int nth, int64_t *lo, int64_t *hi) {
  int64_t q = n / nth, r = n % nth;
  *lo = tid * q + (tid < r ? tid : r);
  *hi = *lo + q + (tid < r ? 1 : 0);
}

/* ---- CUDA backend (kernels/ .cu files, or cuda_stub.c when built without CUDA) ------------ */
int ms_cuda_check(const char *fn);  /* fails naming fn unless a GPU is usable */
void ms_cuda_free(void *p);
enum { MS_H2D, MS_D2H, MS_D2D };  /* ms_cuda_memcpy's kind */
/* The entry points, from their one list (cuda_entries.h; the stubs of a CPU-only build
 * come from the same list). Average pooling's are also declared in window.h; the
 * optimizers' are declared with their rules (runtime/optim*). */
#include "cuda_entries.h"
#define MS_CUDA_DECLARE_(name, params, what) int name params;
MS_CUDA_ENTRIES(MS_CUDA_DECLARE_)
#undef MS_CUDA_DECLARE_

#ifdef __cplusplus
}
#endif
#endif
