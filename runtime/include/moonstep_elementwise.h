/* moonstep_elementwise.h — THE list of elementwise ops (part of the public ABI).
 *
 * Everything about an op's identity is derived from these three X-macro lists:
 *   - the C enums ms_unary_op / ms_binary_op / ms_ternary_op (below; op id = position),
 *   - the op names in the runtime's error messages (runtime/elementwise.c),
 *   - the CPU switch (runtime/elementwise_impl.h) and the CUDA switch
 *     (kernels/elementwise.cu), each case MS_<ID> computing MS_FORMULA_<ID>,
 *   - the FFI constants C.MS_<ID> and the list core.elementwise in Lua
 *     (lua/moonstep/core.lua parses this file's text: the FFI cannot expand macros),
 *     and the plain Tensor methods t:name() / t:name_() of the METHOD unary ops.
 * Adding an op: one line here (append at the end of its list, so that existing ids stay
 * stable) plus its formula MS_FORMULA_<ID> in runtime/elementwise_ops.h, shared by the
 * CPU and the CUDA loops. tests/layout_spec.lua checks the lists against the library.
 *
 * Format (core.lua parses it, keep it): one X(...) per line, continued with '\'.
 *   X(ID, "name", LUA)  ID: the enum constant is MS_<ID>; "name": the user-facing name
 *   (message prefix; for METHOD ops also the Tensor method); LUA: METHOD (Tensor gets
 *   t:name() and t:name_()) or CUSTOM (the Lua side wraps it itself). Binary and
 *   ternary entries have no LUA column. Comments: the math, for the reader.
 * Formulas read the operands as: unary v (x) with scalars a, b; binary u (a), v (b)
 * with alpha; ternary u (a), v (b), w (c) with alpha. */
#ifndef MOONSTEP_ELEMENTWISE_H
#define MOONSTEP_ELEMENTWISE_H

/* out = f(x; a, b) */
#define MS_UNARY_OPS(X)                                                              \
  X(NEG, "neg", METHOD)                                                              \
  X(ABS, "abs", METHOD)                                                              \
  X(EXP, "exp", METHOD)                                                              \
  X(LOG, "log", METHOD)                                                              \
  X(SQRT, "sqrt", METHOD)                                                            \
  X(RSQRT, "rsqrt", METHOD)                                                          \
  X(TANH, "tanh", METHOD)                                                            \
  X(SIGMOID, "sigmoid", METHOD)                                                      \
  X(RELU, "relu", METHOD)                                                            \
  X(SIGN, "sign", METHOD)                                                            \
  X(SQUARE, "square", METHOD)                                                        \
  X(RECIP, "reciprocal", METHOD)                                                     \
  X(CLAMP, "clamp", CUSTOM)        /* min(max(x, a), b) */                           \
  X(ADD_SCALAR, "add", CUSTOM)     /* x + a */                                       \
  X(MUL_SCALAR, "mul", CUSTOM)     /* x * a */                                       \
  X(POW_SCALAR, "pow", CUSTOM)     /* x ^ a */                                       \
  X(RSUB_SCALAR, "sub", CUSTOM)    /* a - x */                                       \
  X(RDIV_SCALAR, "div", CUSTOM)    /* a / x */                                       \
  X(RPOW_SCALAR, "pow", CUSTOM)    /* a ^ x */                                       \
  X(MAX_SCALAR, "max", CUSTOM)                                                       \
  X(MIN_SCALAR, "min", CUSTOM)                                                       \
  X(EQ_SCALAR, "eq", CUSTOM)       /* comparisons: 1.0 or 0.0 in out's dtype */      \
  X(NE_SCALAR, "ne", CUSTOM)                                                         \
  X(LT_SCALAR, "lt", CUSTOM)                                                         \
  X(LE_SCALAR, "le", CUSTOM)                                                         \
  X(GT_SCALAR, "gt", CUSTOM)                                                         \
  X(GE_SCALAR, "ge", CUSTOM)                                                         \
  X(ERF, "erf", METHOD)                                                              \
  X(GELU, "gelu", CUSTOM)          /* x * Phi(x), the exact (erf) form */            \
  X(LEAKY_RELU, "leaky_relu", CUSTOM) /* x > 0 ? x : a * x */                        \
  X(GELU_TANH, "gelu", CUSTOM)     /* approximate='tanh': 0.5 x (1 + tanh(u(x))) */ \
  X(SQRT_AFFINE, "sqrt_affine", CUSTOM) /* sqrt(x) * a + b (Adam's denominator) */

/* out = f(a, b; alpha) */
#define MS_BINARY_OPS(X)                                                             \
  X(ADD, "add")                    /* a + alpha * b (axpy when out aliases a) */     \
  X(SUB, "sub")                    /* a - alpha * b */                               \
  X(MUL, "mul")                                                                      \
  X(DIV, "div")                                                                      \
  X(POW, "pow")                                                                      \
  X(MAX, "max")                                                                      \
  X(MIN, "min")                                                                      \
  X(EQ, "eq")                      /* comparisons: 1.0 or 0.0 in out's dtype */      \
  X(NE, "ne")                                                                        \
  X(LT, "lt")                                                                        \
  X(LE, "le")                                                                        \
  X(GT, "gt")                                                                        \
  X(GE, "ge")                                                                        \
  /* activation gradients: a = the forward input x (or output y), b = gradOutput g */ \
  X(RELU_BACKWARD, "relu_backward")              /* x > 0 ? g : 0 */                 \
  X(LEAKY_RELU_BACKWARD, "leaky_relu_backward")  /* x > 0 ? g : alpha * g */         \
  X(TANH_BACKWARD, "tanh_backward")              /* g * (1 - y^2) */                 \
  X(SIGMOID_BACKWARD, "sigmoid_backward")        /* g * y * (1 - y) */               \
  X(GELU_BACKWARD, "gelu_backward")              /* g * (Phi(x) + x phi(x)) */       \
  X(GELU_TANH_BACKWARD, "gelu_backward")         /* g * d/dx of MS_GELU_TANH at x */

/* out = f(a, b, c; alpha) */
#define MS_TERNARY_OPS(X)                                                            \
  X(ADDCMUL, "addcmul")            /* a + alpha * b * c */                           \
  X(ADDCDIV, "addcdiv")            /* a + alpha * b / c */                           \
  X(WHERE, "where")                /* a != 0 ? b : c */                              \
  X(LERP, "lerp")                  /* a + alpha * (b - a); c unused */               \
  X(LERP_WEIGHT, "lerp")           /* a + c * (b - a): lerp with a tensor weight c */

/* The enums: MS_<ID> = its position in the list, then MS_<ARITY>_COUNT. */
#define MS_ELEMENTWISE_ENUM_(id, ...) MS_##id,
enum ms_unary_op { MS_UNARY_OPS(MS_ELEMENTWISE_ENUM_) MS_UNARY_COUNT };
enum ms_binary_op { MS_BINARY_OPS(MS_ELEMENTWISE_ENUM_) MS_BINARY_COUNT };
enum ms_ternary_op { MS_TERNARY_OPS(MS_ELEMENTWISE_ENUM_) MS_TERNARY_COUNT };
#undef MS_ELEMENTWISE_ENUM_

#endif
