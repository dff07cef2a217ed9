/* baseline.c — the competitor of scripts/bench/core.lua: plain C loops over float
 * arrays, compiled with the same flags as libmoonstep (make bench builds it). What a
 * hand-written loop achieves is the bandwidth moonstep's elementwise ops should reach.
 * nth: OpenMP threads; arrays of n floats. */
#include <stdint.h>

void bl_add(float *o, const float *a, const float *b, int64_t n, int nth) {
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t i = 0; i < n; i++) o[i] = a[i] + b[i];
}

void bl_mul(float *o, const float *a, const float *b, int64_t n, int nth) {
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t i = 0; i < n; i++) o[i] = a[i] * b[i];
}

/* y += alpha * x */
void bl_axpy(float *y, float alpha, const float *x, int64_t n, int nth) {
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}
