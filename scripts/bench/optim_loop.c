/* optim_loop.c — the competitor of scripts/bench/optim.lua: each optimizer update as the
 * plain float loop a programmer would write, compiled by the benchmark at run time with
 * -O3 -march=x86-64-v3 -fno-math-errno (AVX2 + FMA). Each loop does the same operations,
 * in the same order and rounding, as moonstep's element rule (runtime/optim/), so its
 * results equal moonstep's and its speed is what the fused step should reach.
 * The constants come rounded to float, as the runtime rounds them. nth: OpenMP threads. */
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Adam without weight decay (torch.optim.Adam defaults):
 *   m = fma(g, 1-b1, m b1); v = fma((1-b2) g, g, v b2);
 *   p = p + neg_step m / (sqrt(v) / bc2_sqrt + eps) */
void ol_adam(float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
             int64_t n, float b1, float omb1, float b2, float omb2, float bc2_sqrt, float eps,
             float neg_step, int nth) {
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float d = g[i];
    float mi = fmaf(d, omb1, m[i] * b1);
    float vi = fmaf(omb2 * d, d, v[i] * b2);
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] + neg_step * mi / denom;
  }
}

/* AdamW: the same after the decoupled decay x = p (1 - lr wd). */
void ol_adamw(float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
              int64_t n, float decay, float b1, float omb1, float b2, float omb2, float bc2_sqrt,
              float eps, float neg_step, int nth) {
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float x = p[i] * decay;
    float d = g[i];
    float mi = fmaf(d, omb1, m[i] * b1);
    float vi = fmaf(omb2 * d, d, v[i] * b2);
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = x + neg_step * mi / denom;
  }
}

/* SGD with momentum (no dampening, nesterov or weight decay), after the first step:
 *   b = fma(g, 1 - dampening, b mu); p = fma(b, -lr, p) */
void ol_sgd_momentum(float *restrict p, const float *restrict g, float *restrict buf, int64_t n,
                     float mu, float omdamp, float neg_lr, int nth) {
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float b = fmaf(g[i], omdamp, buf[i] * mu);
    buf[i] = b;
    p[i] = fmaf(b, neg_lr, p[i]);
  }
}

/* zero_grad: each thread clears its share. */
void ol_zero(float *g, int64_t n, int nth) {
#pragma omp parallel num_threads(nth)
  {
#ifdef _OPENMP
    extern int omp_get_thread_num(void), omp_get_num_threads(void);
    int64_t t = omp_get_thread_num(), k = omp_get_num_threads();
#else
    int64_t t = 0, k = 1;
#endif
    int64_t lo = n * t / k, hi = n * (t + 1) / k;
    memset(g + lo, 0, (size_t)(hi - lo) * sizeof(float));
  }
}
