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

#ifdef __CUDACC__
MS_HD float ms_affinef(float a, float b, float u) {
  return __fadd_rn(a, __fmul_rn(__fsub_rn(b, a), u));
}
#else
MS_HD float ms_affinef(float a, float b, float u) {
  float d = b - a, s = d * u;  /* separate statements: no contraction under -std=c11 */
  return a + s;
}
#endif

#endif
