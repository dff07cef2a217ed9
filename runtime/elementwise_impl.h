/* elementwise_impl.h — the CPU loops of elementwise.c for one element type.
 *
 * Included once per type with T (the C type) and SFX (a name suffix) defined; defines
 * unary_row_<SFX>, binary_row_<SFX>, ternary_row_<SFX>, elementwise_range_<SFX>,
 * elementwise_job_<SFX>, elementwise_share_<SFX> and elementwise_<SFX> (for float:
 * unary_row__f32, ..., elementwise__f32). The switches are generated from the op list
 * (include/moonstep_elementwise.h): case MS_<ID> computes MS_FORMULA_<ID> of
 * elementwise_ops.h.
 *
 * Each op has its own loop so that the compiler can vectorise it; the contiguous case
 * (all inner strides 1) is separate from the strided one for the same reason, and
 * so is the in-place case (o == x): there gcc's runtime overlap check between o and x
 * would fail and fall back to scalar code, so that loop names only one pointer.
 * x, y, z: inputs; o: output; s*: inner strides in elements; n: row length. */

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)
#include "elementwise_ops.h"

/* One row of a unary op: o[i] = EXPR(v) with v = x[i]. */
#define MAP1(EXPR)                                                                 \
  if (o == x && so == 1 && sx == 1) {                                              \
    for (int64_t i = 0; i < n; i++) { T v = o[i]; o[i] = (EXPR); }                 \
  } else if (so == 1 && sx == 1) {                                                 \
    for (int64_t i = 0; i < n; i++) { T v = x[i]; o[i] = (EXPR); }                 \
  } else {                                                                         \
    for (int64_t i = 0; i < n; i++) { T v = x[i * sx]; o[i * so] = (EXPR); }       \
  }                                                                                \
  break;

static void FN(unary_row_)(int op, T *o, int64_t so, const T *x, int64_t sx, int64_t n,
                           T a, T b) {
  switch (op) {
#define MS_EW_CASE(id, ...) case MS_##id: MAP1(MS_FORMULA_##id)
    MS_UNARY_OPS(MS_EW_CASE)
#undef MS_EW_CASE
  }
}

/* One row of a binary op: o[i] = EXPR(u, v) with u = x[i], v = y[i]. The common
 * broadcast case (y a scalar or a broadcast row: sy == 0) gets its own loop. */
#define MAP2(EXPR)                                                                      \
  if (o == x && so == 1 && sx == 1 && sy == 1) {                                        \
    for (int64_t i = 0; i < n; i++) { T u = o[i], v = y[i]; o[i] = (EXPR); }            \
  } else if (o == x && so == 1 && sx == 1 && sy == 0) {                                 \
    const T v = y[0];                                                                   \
    for (int64_t i = 0; i < n; i++) { T u = o[i]; o[i] = (EXPR); }                      \
  } else if (so == 1 && sx == 1 && sy == 1) {                                           \
    for (int64_t i = 0; i < n; i++) { T u = x[i], v = y[i]; o[i] = (EXPR); }            \
  } else if (so == 1 && sx == 1 && sy == 0) {                                           \
    const T v = y[0];                                                                   \
    for (int64_t i = 0; i < n; i++) { T u = x[i]; o[i] = (EXPR); }                      \
  } else {                                                                              \
    for (int64_t i = 0; i < n; i++) {                                                   \
      T u = x[i * sx], v = y[i * sy];                                                   \
      o[i * so] = (EXPR);                                                               \
    }                                                                                   \
  }                                                                                     \
  break;

static void FN(binary_row_)(int op, T *o, int64_t so, const T *x, int64_t sx, const T *y,
                            int64_t sy, int64_t n, T alpha) {
  switch (op) {
#define MS_EW_CASE(id, ...) case MS_##id: MAP2(MS_FORMULA_##id)
    MS_BINARY_OPS(MS_EW_CASE)
#undef MS_EW_CASE
  }
}

/* One row of a ternary op: o[i] = EXPR(u, v, w). */
#define MAP3(EXPR)                                                                       \
  if (o == x && so == 1 && sx == 1 && sy == 1 && sz == 1) {                              \
    for (int64_t i = 0; i < n; i++) {                                                    \
      T u = o[i], v = y[i], w = z[i]; (void)w; o[i] = (EXPR);                            \
    }                                                                                    \
  } else if (so == 1 && sx == 1 && sy == 1 && sz == 1) {                                 \
    for (int64_t i = 0; i < n; i++) { T u = x[i], v = y[i], w = z[i]; (void)w; o[i] = (EXPR); } \
  } else {                                                                               \
    for (int64_t i = 0; i < n; i++) {                                                    \
      T u = x[i * sx], v = y[i * sy], w = z[i * sz]; (void)w;                            \
      o[i * so] = (EXPR);                                                                \
    }                                                                                    \
  }                                                                                      \
  break;

static void FN(ternary_row_)(int op, T *o, int64_t so, const T *x, int64_t sx,
                             const T *y, int64_t sy, const T *z, int64_t sz, int64_t n,
                             T alpha) {
  switch (op) {
#define MS_EW_CASE(id, ...) case MS_##id: MAP3(MS_FORMULA_##id)
    MS_TERNARY_OPS(MS_EW_CASE)
#undef MS_EW_CASE
  }
}

/* Elements [lo, hi) of the iterator, one inner run at a time. */
static void FN(elementwise_range_)(const ms_iter *it, int arity, int op, double a, double b,
                                   int64_t lo, int64_t hi) {
  const int last = it->ndim - 1;
  const int64_t inner = it->sizes[last];
  const int64_t so = it->strides[0][last], sx = it->strides[1][last];
  const int64_t sy = arity > 1 ? it->strides[2][last] : 0;
  const int64_t sz = arity > 2 ? it->strides[3][last] : 0;
  ms_cursor c;
  ms_cursor_seek(it, &c, lo);
  for (int64_t i = lo; i < hi;) {
    int64_t n = inner - c.idx[last];
    if (n > hi - i) n = hi - i;
    T *o = (T *)it->data[0] + c.off[0];
    const T *x = (const T *)it->data[1] + c.off[1];
    if (arity == 1) {
      FN(unary_row_)(op, o, so, x, sx, n, (T)a, (T)b);
    } else if (arity == 2) {
      FN(binary_row_)(op, o, so, x, sx, (const T *)it->data[2] + c.off[2], sy, n, (T)a);
    } else {
      FN(ternary_row_)(op, o, so, x, sx, (const T *)it->data[2] + c.off[2], sy,
                       (const T *)it->data[3] + c.off[3], sz, n, (T)a);
    }
    i += n;
    if (i < hi) ms_cursor_advance(it, &c, n);
  }
}

typedef struct {
  const ms_iter *it;
  int arity, op;
  double a, b;
} FN(elementwise_job_);

static void FN(elementwise_share_)(void *ctx, int64_t lo, int64_t hi) {
  const FN(elementwise_job_) *j = ctx;
  FN(elementwise_range_)(j->it, j->arity, j->op, j->a, j->b, lo, hi);
}

static void FN(elementwise_)(const ms_iter *it, int arity, int op, double a, double b) {
  FN(elementwise_job_) job = {it, arity, op, a, b};
  ms_parallel_for(it->count, it->count, FN(elementwise_share_), &job);
}

#undef MAP1
#undef MAP2
#undef MAP3
#undef FN
#undef CAT
#undef CAT_
