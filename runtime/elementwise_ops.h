/* elementwise_ops.h — per-element formulas written once for the CPU loops
 * (elementwise_impl.h) and the CUDA kernels (kernels/elementwise.cu).
 *
 * Included once per element type with T (the C type) and SFX (a name suffix) defined;
 * MS_OPS_HD is empty in C and __device__ in CUDA. Calls such as tanh(x) resolve to the
 * type's own function: <tgmath.h> in C, the float overloads in CUDA C++. */
#ifndef MS_OPS_HD
#define MS_OPS_HD
#endif
#define MS_OPS_CAT_(a, b) a##b
#define MS_OPS_CAT(a, b) MS_OPS_CAT_(a, b)
#define MS_OPS_FN(name) MS_OPS_CAT(name, SFX)

/* GELU, tanh approximation (PyTorch approximate='tanh'):
 * y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3). */
static inline MS_OPS_HD T MS_OPS_FN(ms_gelu_tanh)(T x) {
  const T u = (T)0.79788456080286535588 * (x + (T)0.044715 * x * x * x);
  return (T)0.5 * x * ((T)1 + tanh(u));
}

/* Its derivative times g: dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx,
 * t = tanh(u), du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2). */
static inline MS_OPS_HD T MS_OPS_FN(ms_gelu_tanh_backward)(T x, T g) {
  const T k = (T)0.79788456080286535588;
  const T t = tanh(k * (x + (T)0.044715 * x * x * x));
  const T du = k * ((T)1 + (T)0.134145 * x * x);
  return g * ((T)0.5 * ((T)1 + t) + (T)0.5 * x * ((T)1 - t * t) * du);
}

#undef MS_OPS_FN
#undef MS_OPS_CAT
#undef MS_OPS_CAT_
