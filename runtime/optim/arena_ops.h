/* optim/arena_ops.h — the per-element rules of the arena operations the multi-pass
 * optimizers compose (runtime/arena.c runs them as C loops, kernels/optim.cu as CUDA
 * kernels). Template part: include with OPT_T, OPT_SFX, OPT_FN defined (optim/instances.h).
 *
 *   arena_axpby:    y <- a y + b x                     (GSAM's decomposition, LookSAM's g_v
 *                                                      and reuse direction, accumulation)
 *   arena_perturb:  w <- w + (t^power g) scale,  t = |w| + eta, power 0, 1 or 2
 *                   (the SAM family's ascent step in all of the spec's forms: power 0 SAM,
 *                   2 with eta 0 ASAM as davda54/kozistr, 2 with eta the official ASAM,
 *                   1 big_vision's GSAM). The order of the products is PyTorch's
 *                   (e = w.pow(2) * g * scale; w += e).
 *   arena_sqprod:   a^2 b^2   and   arena_absprod: a^2 |b|   (terms of ||(|w| + eta) g||^2) */
#ifdef OPT_T
#define ARENA_CAT_(a, b) a##b
#define ARENA_CAT(a, b) ARENA_CAT_(a, b)
OPT_FN OPT_T ARENA_CAT(arena_axpby_, OPT_SFX)(OPT_T y, OPT_T a, OPT_T x, OPT_T b) {
  return a * y + b * x;
}

OPT_FN OPT_T ARENA_CAT(arena_perturb_, OPT_SFX)(OPT_T w, OPT_T g, OPT_T scale, OPT_T eta, int32_t power) {
  const OPT_T t = (w < 0 ? -w : w) + eta;
  const OPT_T f = power == 0 ? (OPT_T)1 : power == 1 ? t : t * t;
  return w + (f * g) * scale;
}
#undef ARENA_CAT
#undef ARENA_CAT_
#endif /* OPT_T */

#ifndef MS_ARENA_OPS_H
#define MS_ARENA_OPS_H
/* Per-element terms of the reductions, in float64 (shared by the C chunks and the CUDA
 * blocks of runtime/arena.c and kernels/optim.cu). */
#ifdef __CUDACC__
#define ARENA_TERM_FN static __host__ __device__ __forceinline__
#else
#define ARENA_TERM_FN static inline
#endif
ARENA_TERM_FN double arena_term(int32_t op, double x, double y) {
  switch (op) {
    case MS_ARENA_SUM: return x;
    case MS_ARENA_SUMSQ: return x * x;
    case MS_ARENA_DOT: return x * y;
    case MS_ARENA_NONFINITE: return x * 0.0;
    case MS_ARENA_SQPROD: return (x * x) * (y * y);
    default: return (x * x) * (y < 0 ? -y : y);   /* MS_ARENA_ABSPROD */
  }
}
#endif
