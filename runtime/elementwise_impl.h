/* elementwise_impl.h — the CPU loops of elementwise.c for one element type.
 *
 * Included once per type with T (the C type) and SFX (a name suffix) defined. Each op
 * has its own loop so that the compiler can vectorise it; the contiguous case
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
    case MS_NEG: MAP1(-v)
    case MS_ABS: MAP1(v < 0 ? -v : v)
    case MS_EXP: MAP1(exp(v))
    case MS_LOG: MAP1(log(v))
    case MS_SQRT: MAP1(sqrt(v))
    case MS_RSQRT: MAP1((T)1 / sqrt(v))
    case MS_TANH: MAP1(tanh(v))
    case MS_SIGMOID: MAP1((T)1 / ((T)1 + exp(-v)))
    case MS_RELU: MAP1(v > 0 ? v : (T)0)
    case MS_SIGN: MAP1((T)((v > 0) - (v < 0)))
    case MS_SQUARE: MAP1(v * v)
    case MS_RECIP: MAP1((T)1 / v)
    case MS_CLAMP: MAP1(v < a ? a : (v > b ? b : v))
    case MS_ADD_SCALAR: MAP1(v + a)
    case MS_MUL_SCALAR: MAP1(v * a)
    case MS_POW_SCALAR: MAP1(a == (T)2 ? v * v : pow(v, a))
    case MS_RSUB_SCALAR: MAP1(a - v)
    case MS_RDIV_SCALAR: MAP1(a / v)
    case MS_RPOW_SCALAR: MAP1(pow(a, v))
    case MS_MAX_SCALAR: MAP1(v > a || v != v ? v : a)
    case MS_MIN_SCALAR: MAP1(v < a || v != v ? v : a)
    case MS_EQ_SCALAR: MAP1((T)(v == a))
    case MS_NE_SCALAR: MAP1((T)(v != a))
    case MS_LT_SCALAR: MAP1((T)(v < a))
    case MS_LE_SCALAR: MAP1((T)(v <= a))
    case MS_GT_SCALAR: MAP1((T)(v > a))
    case MS_GE_SCALAR: MAP1((T)(v >= a))
    case MS_ERF: MAP1(erf(v))
    case MS_GELU: MAP1((T)0.5 * v * ((T)1 + erf(v * (T)M_SQRT1_2)))
    case MS_LEAKY_RELU: MAP1(v > 0 ? v : a * v)
    case MS_GELU_TANH: MAP1(FN(ms_gelu_tanh)(v))
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
    case MS_ADD: MAP2(u + alpha * v)
    case MS_SUB: MAP2(u - alpha * v)
    case MS_MUL: MAP2(u * v)
    case MS_DIV: MAP2(u / v)
    case MS_POW: MAP2(pow(u, v))
    case MS_MAX: MAP2(u > v || u != u ? u : v)
    case MS_MIN: MAP2(u < v || u != u ? u : v)
    case MS_EQ: MAP2((T)(u == v))
    case MS_NE: MAP2((T)(u != v))
    case MS_LT: MAP2((T)(u < v))
    case MS_LE: MAP2((T)(u <= v))
    case MS_GT: MAP2((T)(u > v))
    case MS_GE: MAP2((T)(u >= v))
    case MS_RELU_BACKWARD: MAP2(u > 0 ? v : (T)0)
    case MS_LEAKY_RELU_BACKWARD: MAP2(u > 0 ? v : alpha * v)
    case MS_TANH_BACKWARD: MAP2(v * ((T)1 - u * u))
    case MS_SIGMOID_BACKWARD: MAP2(v * u * ((T)1 - u))
    case MS_GELU_BACKWARD:
      MAP2(v * ((T)0.5 * ((T)1 + erf(u * (T)M_SQRT1_2)) +
                u * exp((T)-0.5 * u * u) * (T)0.39894228040143267794))
    case MS_GELU_TANH_BACKWARD: MAP2(FN(ms_gelu_tanh_backward)(u, v))
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
    case MS_ADDCMUL: MAP3(u + alpha * v * w)
    case MS_ADDCDIV: MAP3(u + alpha * v / w)
    case MS_WHERE: MAP3(u != 0 ? v : w)
    case MS_LERP: MAP3(u + alpha * (v - u))
    case MS_LERP_WEIGHT: MAP3(u + w * (v - u))
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
