/* elementwise_ops.h — per-element formulas written once for the CPU loops
 * (elementwise_impl.h) and the CUDA kernels (kernels/elementwise.cu).
 *
 * MS_FORMULA_<ID> is the formula of op MS_<ID> of the one op list
 * (include/moonstep_elementwise.h): an expression in the operands the switch has in
 * scope (unary: v, scalars a, b; binary: u, v, alpha; ternary: u, v, w, alpha) and T,
 * the element type. Calls such as tanh(x) resolve to the type's own function:
 * <tgmath.h> in C, the float overloads in CUDA C++.
 *
 * Included once per element type with T (the C type) and SFX (a name suffix) defined:
 * each inclusion also instantiates the helper functions below for that type (named
 * <helper>_f32 / <helper>_f64: ms_gelu_tanh_f32, ms_gelu_tanh_backward_f32, ...).
 * MS_OPS_HD is empty in C and __device__ in CUDA. */
#ifndef MS_OPS_HD
#define MS_OPS_HD
#endif

#ifndef MS_ELEMENTWISE_FORMULAS
#define MS_ELEMENTWISE_FORMULAS
#define MS_EW_CAT_(a, b) a##b
#define MS_EW_CAT(a, b) MS_EW_CAT_(a, b)
/* A helper of this file for the element type in force where the formula expands. */
#define MS_EW_FN(name) MS_EW_CAT(name, SFX)

/* sqrt(1/2) and 1/sqrt(2 pi) */
#define MS_EW_SQRT1_2 0.70710678118654752440
#define MS_EW_INV_SQRT_2PI 0.39894228040143267794

/* unary: out = f(v; a, b) */
#define MS_FORMULA_NEG (-v)
#define MS_FORMULA_ABS (v < 0 ? -v : v)
#define MS_FORMULA_EXP (exp(v))
#define MS_FORMULA_LOG (log(v))
#define MS_FORMULA_SQRT (sqrt(v))
#define MS_FORMULA_RSQRT ((T)1 / sqrt(v))
#define MS_FORMULA_TANH (tanh(v))
#define MS_FORMULA_SIGMOID ((T)1 / ((T)1 + exp(-v)))
#define MS_FORMULA_RELU (v > 0 ? v : (T)0)
#define MS_FORMULA_SIGN ((T)((v > 0) - (v < 0)))
#define MS_FORMULA_SQUARE (v * v)
#define MS_FORMULA_RECIP ((T)1 / v)
#define MS_FORMULA_CLAMP (v < a ? a : (v > b ? b : v))
#define MS_FORMULA_ADD_SCALAR (v + a)
#define MS_FORMULA_MUL_SCALAR (v * a)
#define MS_FORMULA_SQRT_AFFINE (sqrt(v) * a + b)   /* two roundings: no fma (C11 does not contract) */
#define MS_FORMULA_POW_SCALAR (a == (T)2 ? v * v : pow(v, a))
#define MS_FORMULA_RSUB_SCALAR (a - v)
#define MS_FORMULA_RDIV_SCALAR (a / v)
#define MS_FORMULA_RPOW_SCALAR (pow(a, v))
#define MS_FORMULA_MAX_SCALAR (v > a || v != v ? v : a) /* NaN propagates */
#define MS_FORMULA_MIN_SCALAR (v < a || v != v ? v : a)
#define MS_FORMULA_EQ_SCALAR ((T)(v == a))
#define MS_FORMULA_NE_SCALAR ((T)(v != a))
#define MS_FORMULA_LT_SCALAR ((T)(v < a))
#define MS_FORMULA_LE_SCALAR ((T)(v <= a))
#define MS_FORMULA_GT_SCALAR ((T)(v > a))
#define MS_FORMULA_GE_SCALAR ((T)(v >= a))
#define MS_FORMULA_ERF (erf(v))
#define MS_FORMULA_GELU ((T)0.5 * v * ((T)1 + erf(v * (T)MS_EW_SQRT1_2)))
#define MS_FORMULA_LEAKY_RELU (v > 0 ? v : a * v)
#define MS_FORMULA_GELU_TANH (MS_EW_FN(ms_gelu_tanh)(v))

/* binary: out = f(u, v; alpha) */
#define MS_FORMULA_ADD (u + alpha * v)
#define MS_FORMULA_SUB (u - alpha * v)
#define MS_FORMULA_MUL (u * v)
#define MS_FORMULA_DIV (u / v)
#define MS_FORMULA_POW (pow(u, v))
#define MS_FORMULA_MAX (u > v || u != u ? u : v) /* NaN propagates */
#define MS_FORMULA_MIN (u < v || u != u ? u : v)
#define MS_FORMULA_EQ ((T)(u == v))
#define MS_FORMULA_NE ((T)(u != v))
#define MS_FORMULA_LT ((T)(u < v))
#define MS_FORMULA_LE ((T)(u <= v))
#define MS_FORMULA_GT ((T)(u > v))
#define MS_FORMULA_GE ((T)(u >= v))
#define MS_FORMULA_RELU_BACKWARD (u > 0 ? v : (T)0)
#define MS_FORMULA_LEAKY_RELU_BACKWARD (u > 0 ? v : alpha * v)
#define MS_FORMULA_TANH_BACKWARD (v * ((T)1 - u * u))
#define MS_FORMULA_SIGMOID_BACKWARD (v * u * ((T)1 - u))
#define MS_FORMULA_GELU_BACKWARD                                                    \
  (v * ((T)0.5 * ((T)1 + erf(u * (T)MS_EW_SQRT1_2)) +                               \
        u * exp((T)-0.5 * u * u) * (T)MS_EW_INV_SQRT_2PI))
#define MS_FORMULA_GELU_TANH_BACKWARD (MS_EW_FN(ms_gelu_tanh_backward)(u, v))

/* ternary: out = f(u, v, w; alpha) */
#define MS_FORMULA_ADDCMUL (u + alpha * v * w)
#define MS_FORMULA_ADDCDIV (u + alpha * v / w)
#define MS_FORMULA_WHERE (u != 0 ? v : w)
#define MS_FORMULA_LERP (u + alpha * (v - u))
#define MS_FORMULA_LERP_WEIGHT (u + w * (v - u))
#endif /* MS_ELEMENTWISE_FORMULAS */

/* ---- helpers, one instantiation per element type ---------------------------------- */

/* GELU, tanh approximation (PyTorch approximate='tanh'):
 * y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3). */
static inline MS_OPS_HD T MS_EW_FN(ms_gelu_tanh)(T x) {
  const T u = (T)0.79788456080286535588 * (x + (T)0.044715 * x * x * x);
  return (T)0.5 * x * ((T)1 + tanh(u));
}

/* Its derivative times g: dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx,
 * t = tanh(u), du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2). */
static inline MS_OPS_HD T MS_EW_FN(ms_gelu_tanh_backward)(T x, T g) {
  const T k = (T)0.79788456080286535588;
  const T t = tanh(k * (x + (T)0.044715 * x * x * x));
  const T du = k * ((T)1 + (T)0.134145 * x * x);
  return g * ((T)0.5 * ((T)1 + t) + (T)0.5 * x * ((T)1 - t * t) * du);
}
