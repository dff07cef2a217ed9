/* philox.h — Philox4x32-10 and the value conversions, shared by gcc and nvcc.
 *
 * Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC'11). Four 32-bit
 * counter words and two key words map to four 32-bit outputs; element i of a fill
 * uses counter (i/4 low, i/4 high, stream low, stream high), key (seed low, seed
 * high) and output word i%4, so a value depends only on (seed, stream, i).
 * The float conversions use explicitly rounded operations (no fused multiply-add),
 * so uniform, Rademacher and Bernoulli values are bit-identical on CPU and GPU. */
#ifndef MS_PHILOX_H
#define MS_PHILOX_H
#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define MS_HD __host__ __device__ __forceinline__
#else
#define MS_HD static inline
#endif

MS_HD void ms_philox_block(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                           uint32_t k1, uint32_t out[4]) {
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0;
    uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

/* The four words for the block holding element i. */
MS_HD void ms_philox_at(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]) {
  ms_philox_block((uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                  (uint32_t)(stream >> 32), (uint32_t)seed, (uint32_t)(seed >> 32), out);
}

/* [0, 1) from the top 24 bits: exact in float32. */
MS_HD float ms_u01f(uint32_t w) { return (float)(w >> 8) * 5.9604644775390625e-8f; }
/* (0, 1] for logarithms. */
MS_HD float ms_u01f_open(uint32_t w) { return (float)((w >> 8) + 1) * 5.9604644775390625e-8f; }
/* [0, 1) with 53 bits from two words, for float64. */
MS_HD double ms_u01d(uint32_t hi, uint32_t lo) {
  return (double)(((uint64_t)(hi >> 5) << 26) | (lo >> 6)) * 1.1102230246251565e-16;
}

/* a + (b - a) u, each step rounded on its own (no fused multiply-add on either side;
 * gcc does not contract across statements under -std=c11). */
MS_HD float ms_affinef(float a, float b, float u) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, __fmul_rn(__fsub_rn(b, a), u));
#else
  float d = b - a, s = d * u;
  return a + s;
#endif
}

/* The value of element j (0..3) of a block of words w, for one distribution
 * (enum ms_dist). Box-Muller for normal: words (0,1) feed elements 0 and 1, words
 * (2,3) elements 2 and 3; even elements take r cos(theta), odd ones r sin(theta). */
MS_HD float ms_rng_value_f32(const uint32_t w[4], int j, int dist, float a, float b) {
  switch (dist) {
    case 0: return ms_affinef(a, b, ms_u01f(w[j]));  /* uniform [a, b) */
    case 1: {                                          /* normal (a, b^2) */
      int p = j & 2;
      float r = sqrtf(-2.0f * logf(ms_u01f_open(w[p])));
      float th = 6.2831853071795864f * ms_u01f(w[p + 1]);
      return a + b * ((j & 1) ? r * sinf(th) : r * cosf(th));
    }
    case 2: return (w[j] >> 31) ? 1.0f : -1.0f;        /* Rademacher */
    default: return ms_u01f(w[j]) < a ? 1.0f : 0.0f;   /* Bernoulli(a) */
  }
}

MS_HD double ms_rng_value_f64(const uint32_t w[4], int j, int dist, double a, double b) {
  switch (dist) {
    case 0: return a + (b - a) * ms_u01d(w[j], w[j ^ 1]);
    case 1: {
      int p = j & 2;
      double r = sqrt(-2.0 * log(1.0 - ms_u01d(w[p], w[p + 1])));
      double th = 6.283185307179586 * ms_u01d(w[p + 1], w[p]);
      return a + b * ((j & 1) ? r * sin(th) : r * cos(th));
    }
    case 2: return (w[j] >> 31) ? 1.0 : -1.0;
    default: return ms_u01f(w[j]) < a ? 1.0 : 0.0;
  }
}

#endif
