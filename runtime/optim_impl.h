/* optim_impl.h — the per-element rules of the fused optimizer steps, written once for
 * the C loops of optim.c (float and double) and the CUDA kernels of kernels/optim.cu.
 *
 * Float32 faithfulness: the host computes every derived constant (1 - beta, the bias
 * corrections, the step size, 1 - lr wd, 1 - dampening) in double and rounds each to the
 * element type once (never `1 - b` in float: 1 - 0.999f is 0.00099998713). The element
 * rule then does what torch.optim's single-tensor step does in that type, operation for
 * operation, with a fused multiply-add wherever ATen's CPU kernels fuse one:
 *   x.add(y, alpha=a)         fma(y, a, x)
 *   x.mul_(b).add_(y, alpha=a) fma(y, a, x * b)
 *   x.addcmul_(y, y, value=s) fma(s * y, y, x)
 *   x.addcdiv_(y, z, value=s) x + s * y / z
 *
 * The first part (constants and the CUDA entry points) is plain C, included once. The
 * second part is a template: include this file again with
 *   OPT_T    the element type            OPT_SFX   a name suffix (f32, f64)
 *   OPT_FMA  fused multiply-add of T     OPT_SQRT  square root of T
 *   OPT_FN   the qualifiers of the functions (static inline / __host__ __device__ ...)
 * defined; it defines adam_k_SFX / sgd_k_SFX (the constants rounded to T), their
 * conversion from the double ones, and adam_elem_SFX / sgd_elem_SFX. */
#ifndef MS_OPTIM_IMPL_H
#define MS_OPTIM_IMPL_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/* One Adam/AdamW step, in double. torch.optim.Adam: l2 = weight_decay, decay = 1;
 * AdamW: l2 = 0, decay = 1 - lr weight_decay. */
typedef struct {
  double l2, decay;
  double b1, omb1;   /* beta1, 1 - beta1 */
  double b2, omb2;   /* beta2, 1 - beta2 */
  double bc2_sqrt;   /* sqrt(1 - beta2^t) */
  double eps;
  double neg_step;   /* -lr / (1 - beta1^t) */
} ms_adam_consts;

/* One SGD step, in double. first: the momentum buffer starts as the gradient. */
typedef struct {
  double wd, mu, omdamp, neg_lr;   /* weight_decay, momentum, 1 - dampening, -lr */
  int32_t nesterov, first;
} ms_sgd_consts;

/* kernels/optim.cu (float32 arena on the GPU). buf may be NULL (no momentum). */
int ms_cuda_sgd_step(float *p, const float *g, float *buf, int64_t n, const ms_sgd_consts *k);
int ms_cuda_adam_step(float *p, const float *g, float *m, float *v, int64_t n,
                      const ms_adam_consts *k);

#ifdef __cplusplus
}
#endif
#endif /* MS_OPTIM_IMPL_H */

/* ---- template part ------------------------------------------------------------------ */
#ifdef OPT_T
#define OPT_CAT_(a, b) a##b
#define OPT_CAT(a, b) OPT_CAT_(a, b)
#define OPT_NAME(name) OPT_CAT(name, OPT_SFX)

typedef struct { OPT_T l2, decay, b1, omb1, b2, omb2, bc2_sqrt, eps, neg_step; } OPT_NAME(adam_k_);
typedef struct { OPT_T wd, mu, omdamp, neg_lr; int32_t nesterov, first; } OPT_NAME(sgd_k_);

OPT_FN OPT_NAME(adam_k_) OPT_NAME(adam_k_of_)(const ms_adam_consts *k) {
  OPT_NAME(adam_k_) c = {(OPT_T)k->l2,   (OPT_T)k->decay, (OPT_T)k->b1,
                         (OPT_T)k->omb1, (OPT_T)k->b2,    (OPT_T)k->omb2,
                         (OPT_T)k->bc2_sqrt, (OPT_T)k->eps, (OPT_T)k->neg_step};
  return c;
}

OPT_FN OPT_NAME(sgd_k_) OPT_NAME(sgd_k_of_)(const ms_sgd_consts *k) {
  OPT_NAME(sgd_k_) c = {(OPT_T)k->wd, (OPT_T)k->mu, (OPT_T)k->omdamp, (OPT_T)k->neg_lr,
                        k->nesterov, k->first};
  return c;
}

/* Adam / AdamW on one element: p, m (exp_avg), v (exp_avg_sq) in place, g the gradient. */
OPT_FN void OPT_NAME(adam_elem_)(OPT_T *p, OPT_T *m, OPT_T *v, OPT_T g,
                                 const OPT_NAME(adam_k_) *k) {
  OPT_T x = *p * k->decay;                                   /* AdamW: param.mul_(1 - lr wd) */
  OPT_T d = k->l2 != 0 ? OPT_FMA(x, k->l2, g) : g;           /* grad.add(param, alpha=wd) */
  OPT_T mi = OPT_FMA(d, k->omb1, *m * k->b1);                /* exp_avg */
  OPT_T vi = OPT_FMA(k->omb2 * d, d, *v * k->b2);            /* exp_avg_sq */
  OPT_T denom = OPT_SQRT(vi) / k->bc2_sqrt + k->eps;         /* (v.sqrt() / bc2_sqrt).add_(eps) */
  *m = mi;
  *v = vi;
  *p = x + k->neg_step * mi / denom;                         /* addcdiv_(m, denom, -step) */
}

/* SGD on one element; buf is NULL without momentum. */
OPT_FN void OPT_NAME(sgd_elem_)(OPT_T *p, OPT_T *buf, OPT_T g, const OPT_NAME(sgd_k_) *k) {
  OPT_T d = k->wd != 0 ? OPT_FMA(*p, k->wd, g) : g;          /* grad.add(param, alpha=wd) */
  if (buf) {
    OPT_T b = k->first ? d : OPT_FMA(d, k->omdamp, *buf * k->mu);
    *buf = b;
    d = k->nesterov ? OPT_FMA(b, k->mu, d) : b;              /* d.add(buf, alpha=mu) */
  }
  *p = OPT_FMA(d, k->neg_lr, *p);                            /* param.add_(d, alpha=-lr) */
}

#undef OPT_NAME
#undef OPT_CAT
#undef OPT_CAT_
#endif /* OPT_T */
