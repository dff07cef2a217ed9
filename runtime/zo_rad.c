/* zo_rad.c — the Rademacher fast paths of the zeroth-order CPU loops (zo.c).
 *
 * A Rademacher direction spends one Philox block on 128 elements (optim/zo.h), so the
 * Philox work is small but only vectorizes across blocks: these loops generate the words
 * of up to ZO_LANES (direction, 128-block) lanes at once, then turn each sign bit into +-c
 * by a select. u = +-1 makes c * u = +-c exactly (and 1/u = u), so MS_ZO_SUM(a, c, u) is
 * MS_ZO_ADD(a, +-c) and MS_ZO_ON(w, s, u) is MS_ZO_ADD(w, +-s) (optim/zo.h's rules): the
 * results are the bits of zo.c's general loops, summed in the same order. */
#include "zo_rad.h"

enum { ZO_LANES = 128 };   /* Philox lanes a batch: 128 blocks = 16384 elements */

/* The counter and key words of a batch of lanes; after philox(), c[q][l] = word q of lane l. */
typedef struct {
  uint32_t c[4][ZO_LANES], k0[ZO_LANES], k1[ZO_LANES];
} lanes;

/* Lane l: direction d, block blk (elements 128 blk .. 128 blk + 127). */
static inline void lane_set(lanes *L, int l, const ms_zo_dir *d, uint64_t blk) {
  L->c[0][l] = (uint32_t)blk, L->c[1][l] = (uint32_t)(blk >> 32);
  L->c[2][l] = d->index, L->c[3][l] = (uint32_t)d->step;
  L->k0[l] = (uint32_t)d->seed, L->k1[l] = (uint32_t)(d->seed >> 32);
}

/* Philox4x32-10 (philox.h's rounds) of lanes [0, m), plain C: a lane at a time, which the
 * compiler vectorizes across lanes (the 10 rounds unrolled). Used without AVX-512, and for
 * fewer than 16 lanes (one vector's 10 rounds are a latency chain; scalar lanes overlap). */
static inline void philox_c(lanes *L, int m) {
  for (int l = 0; l < m; l++) {
    uint32_t c0 = L->c[0][l], c1 = L->c[1][l], c2 = L->c[2][l], c3 = L->c[3][l];
    uint32_t k0 = L->k0[l], k1 = L->k1[l];
    for (int r = 0; r < 10; r++) {
      const uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
      const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
      c1 = (uint32_t)p1, c3 = (uint32_t)p0, c0 = n0, c2 = n2;
      k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
    }
    L->c[0][l] = c0, L->c[1][l] = c1, L->c[2][l] = c2, L->c[3][l] = c3;
  }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define ZO_AVX512 1
/* The same, 16 lanes a vector with AVX-512F. gcc vectorizes philox_c's 32 x 32 -> 64-bit
 * products with vpmullq (3 uops) around widenings; here each product is two vpmuludq (even
 * and odd lanes) and two permutes gather the high and low halves. */
__attribute__((target("avx512f"))) static void philox_avx512(lanes *L, int m) {
  const __m512i m0 = _mm512_set1_epi64(0xD2511F53), m1 = _mm512_set1_epi64(0xCD9E8D57);
  const __m512i w0 = _mm512_set1_epi32((int)0x9E3779B9u);
  const __m512i w1 = _mm512_set1_epi32((int)0xBB67AE85u);
  /* dword j of a half: even j from the even lanes' product e, odd j from the odd ones' o */
  const __m512i hi = _mm512_setr_epi32(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
  const __m512i lo = _mm512_setr_epi32(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
  for (int l = 0; l < m; l += 16) {
    const __mmask16 k = m - l >= 16 ? 0xffff : (__mmask16)((1u << (m - l)) - 1);
    __m512i c0 = _mm512_maskz_loadu_epi32(k, L->c[0] + l);
    __m512i c1 = _mm512_maskz_loadu_epi32(k, L->c[1] + l);
    __m512i c2 = _mm512_maskz_loadu_epi32(k, L->c[2] + l);
    __m512i c3 = _mm512_maskz_loadu_epi32(k, L->c[3] + l);
    __m512i k0 = _mm512_maskz_loadu_epi32(k, L->k0 + l);
    __m512i k1 = _mm512_maskz_loadu_epi32(k, L->k1 + l);
    for (int r = 0; r < 10; r++) {
      const __m512i e0 = _mm512_mul_epu32(c0, m0);
      const __m512i o0 = _mm512_mul_epu32(_mm512_srli_epi64(c0, 32), m0);
      const __m512i e1 = _mm512_mul_epu32(c2, m1);
      const __m512i o1 = _mm512_mul_epu32(_mm512_srli_epi64(c2, 32), m1);
      const __m512i h0 = _mm512_permutex2var_epi32(e0, hi, o0);
      const __m512i h1 = _mm512_permutex2var_epi32(e1, hi, o1);
      c0 = _mm512_ternarylogic_epi32(h1, c1, k0, 0x96);   /* h1 ^ c1 ^ k0 */
      c1 = _mm512_permutex2var_epi32(e1, lo, o1);
      c2 = _mm512_ternarylogic_epi32(h0, c3, k1, 0x96);   /* h0 ^ c3 ^ k1 */
      c3 = _mm512_permutex2var_epi32(e0, lo, o0);
      k0 = _mm512_add_epi32(k0, w0), k1 = _mm512_add_epi32(k1, w1);
    }
    _mm512_mask_storeu_epi32(L->c[0] + l, k, c0), _mm512_mask_storeu_epi32(L->c[1] + l, k, c1);
    _mm512_mask_storeu_epi32(L->c[2] + l, k, c2), _mm512_mask_storeu_epi32(L->c[3] + l, k, c3);
  }
}
#endif

static inline void philox(lanes *L, int m) {
#ifdef ZO_AVX512
  if (m >= 16 && __builtin_cpu_supports("avx512f")) return philox_avx512(L, m);
#endif
  philox_c(L, m);
}

/* The words of m <= 128 consecutive Philox blocks from blk0 of direction d (the gaussian and
 * segmented-uniform directions: 4 elements a block; zo.c's zo_gen): out[q][l] = word q of
 * block blk0 + l, through the fastest Philox this CPU has. */
ZO_CLONES void zo_philox_words(const ms_zo_dir *d, uint64_t blk0, int m, uint32_t out[4][128]) {
  lanes L;
  for (int l = 0; l < m; l++) lane_set(&L, l, d, blk0 + (uint64_t)l);
  philox(&L, m);
  for (int q = 0; q < 4; q++)
    for (int l = 0; l < m; l++) out[q][l] = L.c[q][l];
}

/* v with its sign flipped when bit t of x is set: +-v without a branch (a shift, an xor). */
static inline float flip_f32(float v, uint32_t x, int t) {
  return ms_zo_float(ms_zo_bits(v) ^ ((x << (31 - t)) & 0x80000000u));
}
static inline double flip_f64(double v, uint32_t x, int t) {
  return from_f64(bits_f64(v) ^ (((uint64_t)x << (63 - t)) & 0x8000000000000000ull));
}

/* ---- u itself (zo_gen's rademacher path) --------------------------------------------- */

ZO_CLONES void zo_rad_gen(const ms_zo_dir *d, int64_t base, int a, int b, float *u) {
  const int p0 = a >> 7, m = ((b - 1) >> 7) - p0 + 1;   /* the blocks covering [a, b) */
  lanes L;
  for (int l = 0; l < m; l++) lane_set(&L, l, d, (uint64_t)(base >> 7) + (uint64_t)(p0 + l));
  philox(&L, m);
  for (int l = 0; l < m; l++)
    for (int q = 0; q < 4; q++) {
      const uint32_t x = L.c[q][l];
      float *v = u + 128 * (p0 + l) + 32 * q;
      for (int t = 0; t < 32; t++) v[t] = flip_f32(-1.0f, x, t);
    }
}

/* ---- the sum of many directions (estimate, MeZO's update) ----------------------------- */

/* A tile: MB 128-blocks from b0 by every direction, in batches of up to ZO_LANES / MB
 * directions (one Philox call each, lane ii MB + p: direction i0 + ii, block b0 + p) taken
 * in i order, so every sum is in i order. a: the 128 sums of a block, kept in registers. */
#define RAD_TILE(T, SFX, MB)                                                           \
  do {                                                                                 \
    const int gm = ZO_LANES / (MB);                                                    \
    for (int32_t i0 = 0; i0 < n; i0 += gm) {                                           \
      const int m = n - i0 < gm ? (int)(n - i0) : gm;   /* directions this batch */    \
      for (int ii = 0; ii < m; ii++) {                                                 \
        nc[ii] = -(T)coef[i0 + ii];   /* c u for u = -1 (bit clear); bit set: c */     \
        for (int p = 0; p < (MB); p++)                                                 \
          lane_set(&L, ii * (MB) + p, &dirs[i0 + ii], blk0 + (uint64_t)(b0 + p));      \
      }                                                                                \
      philox(&L, m * (MB));                                                            \
      for (int p = 0; p < (MB); p++) {                                                 \
        T a[128], *ap = acc + 128 * (b0 + p);                                          \
        for (int q = 0; q < 4; q++) {   /* the batch's first direction: 0 or ap, + */  \
          const uint32_t x = L.c[q][p];                                                \
          for (int t = 0; t < 32; t++)                                                 \
            a[32 * q + t] = MS_ZO_ADD((i0 ? ap[32 * q + t] : 0), flip_##SFX(nc[0], x, t));       \
        }                                                                              \
        for (int ii = 1; ii < m; ii++)                                                 \
          for (int q = 0; q < 4; q++) {                                                \
            const uint32_t x = L.c[q][ii * (MB) + p];                                  \
            for (int t = 0; t < 32; t++)                                               \
              a[32 * q + t] = MS_ZO_ADD(a[32 * q + t], flip_##SFX(nc[ii], x, t));                \
          }                                                                            \
        for (int k = 0; k < 128; k++) ap[k] = a[k];                                    \
      }                                                                                \
    }                                                                                  \
  } while (0)

/* Tiles of 4 blocks by 32 directions when there are many (4, a constant, lets the compiler
 * unroll the block loops), of up to 128 blocks for few (one direction: 128 blocks a batch). */
#define RAD_SUM(T, SFX)                                                                \
  do {                                                                                 \
    const int nb = (int)((nel + 127) >> 7), g = n < 32 ? (int)n : 32;                  \
    const int tb = ZO_LANES / g < nb ? ZO_LANES / g : nb;   /* blocks a tile */        \
    const uint64_t blk0 = (uint64_t)(base >> 7);                                       \
    lanes L;                                                                           \
    T nc[ZO_LANES];                                                                    \
    for (int b0 = 0; b0 < nb; b0 += tb) {                                              \
      const int mb = nb - b0 < tb ? nb - b0 : tb;                                      \
      if (mb == 4) RAD_TILE(T, SFX, 4);                                                \
      else RAD_TILE(T, SFX, mb);                                                       \
    }                                                                                  \
  } while (0)

ZO_CLONES void zo_rad_sum_f32(const ms_zo_dir *dirs, const double *coef, int32_t n,
                              int64_t base, int64_t nel, float *acc) {
  RAD_SUM(float, f32);
}

ZO_CLONES void zo_rad_sum_f64(const ms_zo_dir *dirs, const double *coef, int32_t n,
                              int64_t base, int64_t nel, double *acc) {
  RAD_SUM(double, f64);
}

/* ---- a span of one direction (fill, perturb) ------------------------------------------ */

/* Batches of ZO_LANES blocks; out[e0 + t] is element t of block blk0 + l. Whole blocks take
 * the 32-bit word loops, the span's partial first and last blocks go element by element. */
#define RAD_SPAN(T, SFX)                                                               \
  do {                                                                                 \
    const T ns = -(T)d->scale;   /* s u for u = -1 (bit clear); bit set: s */          \
    const int64_t last = (g0 + n - 1) >> 7;                                            \
    lanes L;                                                                           \
    for (int64_t blk0 = g0 >> 7; n > 0 && blk0 <= last; blk0 += ZO_LANES) {            \
      const int m = last - blk0 + 1 < ZO_LANES ? (int)(last - blk0 + 1) : ZO_LANES;    \
      for (int l = 0; l < m; l++) lane_set(&L, l, d, (uint64_t)(blk0 + l));            \
      philox(&L, m);                                                                   \
      for (int l = 0; l < m; l++) {                                                    \
        const int64_t e0 = (blk0 + l) * 128 - g0;                                      \
        const int a = e0 < 0 ? (int)-e0 : 0, b = n - e0 < 128 ? (int)(n - e0) : 128;   \
        if (a == 0 && b == 128 && w) {                                                 \
          T *o = out + e0;                                                             \
          const T *v = w + e0;                                                         \
          for (int q = 0; q < 4; q++)                                                  \
            for (int t = 0; t < 32; t++)                                               \
              o[32 * q + t] = MS_ZO_ADD(v[32 * q + t], flip_##SFX(ns, L.c[q][l], t));            \
        } else if (a == 0 && b == 128) {                                               \
          T *o = out + e0;                                                             \
          for (int q = 0; q < 4; q++)                                                  \
            for (int t = 0; t < 32; t++) o[32 * q + t] = flip_##SFX(ns, L.c[q][l], t); \
        } else {                                                                       \
          for (int t = a; t < b; t++) {                                                \
            const T dv = flip_##SFX(ns, L.c[t >> 5][l], t & 31);                       \
            out[e0 + t] = w ? MS_ZO_ADD(w[e0 + t], dv) : dv;                                     \
          }                                                                            \
        }                                                                              \
      }                                                                                \
    }                                                                                  \
  } while (0)

ZO_CLONES void zo_rad_span_f32(const ms_zo_dir *d, int64_t g0, int64_t n, float *out,
                               const float *w) {
  RAD_SPAN(float, f32);
}

ZO_CLONES void zo_rad_span_f64(const ms_zo_dir *d, int64_t g0, int64_t n, double *out,
                               const double *w) {
  RAD_SPAN(double, f64);
}
