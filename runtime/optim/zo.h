/* optim/zo.h — the zeroth-order directions: u(seed, step, index, dist, j), shared by the C
 * loops of runtime/zo.c and the CUDA kernels of kernels/zo.cu (gcc and nvcc compile this
 * same code, so a direction has the same bits on CPU and GPU).
 *
 * Philox4x32-10 (philox.h) with key = (seed low, seed high) and counter =
 * (block low, block high, index, step low); j is the element's global arena index.
 *   rademacher         128 elements a block: word (j / 32) % 4, bit j % 32: set +1, else -1
 *   segmented_uniform  4 a block, word w = j % 4: magnitude (2^23 + (w >> 9)) 2^-24 in
 *                      [0.5, 1) (24 bits: exact in float32); sign + when (w & 1)
 *   gaussian           4 a block, Box-Muller on words (0, 1) -> elements 0 (r cos), 1 (r sin),
 *                      (2, 3) -> 2, 3; r = sqrt(-2 log u1), u1 = ((w0 >> 8) + 1) 2^-24,
 *                      theta = 2 pi (w1 >> 8) 2^-24. log, sin and cos are moonstep's own
 *                      (below): float operations each rounded on its own (__fadd_rn /
 *                      __fmul_rn on the device, plain float operations in C11, which neither
 *                      contracts nor reorders), no libm: same bits everywhere, about 1e-7
 *                      relative error. */
#ifndef MS_OPTIM_ZO_H
#define MS_OPTIM_ZO_H
#include <stdint.h>
#include "internal.h"
#include "philox.h"

enum { MS_ZO_RAD_BLOCK = 128, MS_ZO_WORD_BLOCK = 4 };

/* ---- explicitly rounded float operations ------------------------------------------ */
#ifdef __CUDA_ARCH__
MS_HD float ms_zo_add(float a, float b) { return __fadd_rn(a, b); }
MS_HD float ms_zo_sub(float a, float b) { return __fsub_rn(a, b); }
MS_HD float ms_zo_mul(float a, float b) { return __fmul_rn(a, b); }
MS_HD float ms_zo_div(float a, float b) { return __fdiv_rn(a, b); }
MS_HD float ms_zo_sqrt(float a) { return __fsqrt_rn(a); }
MS_HD uint32_t ms_zo_bits(float a) { return __float_as_uint(a); }
MS_HD float ms_zo_float(uint32_t b) { return __uint_as_float(b); }
#else
MS_HD float ms_zo_add(float a, float b) { return a + b; }
MS_HD float ms_zo_sub(float a, float b) { return a - b; }
MS_HD float ms_zo_mul(float a, float b) { return a * b; }
MS_HD float ms_zo_div(float a, float b) { return a / b; }
MS_HD float ms_zo_sqrt(float a) { return __builtin_sqrtf(a); }   /* IEEE: correctly rounded */
MS_HD uint32_t ms_zo_bits(float a) { union { float f; uint32_t u; } c; c.f = a; return c.u; }
MS_HD float ms_zo_float(uint32_t b) { union { float f; uint32_t u; } c; c.u = b; return c.f; }
#endif

/* ---- the per-element arithmetic of the zo ops, written once for the C loops (float and
 * double: plain operators, which C11 never contracts) and the CUDA kernels (float: each
 * operation rounded on its own, __fadd_rn etc., never an fma, and with x86's NaN results:
 * a NaN operand comes back quieted with its sign and payload, an invalid operation gives
 * x86's default NaN 0xffc00000 — the GPU's own canonical NaN would change a NaN weight's
 * bits and the log). d = fl(s u) is the perturbation of an element:
 *   MS_ZO_ON(w, s, u)   w + d         perturb, the move's next perturbation (fill: s u)
 *   MS_ZO_OFF(w, s, u)  w - d         the move's previous perturbation, MeZO's `from`
 *   MS_ZO_SUM(a, c, v)  a + c v       estimate and MeZO: the directions' sum (i in order;
 *                                     v = u, or MS_ZO_INV(u) for the divide form)
 *   MS_ZO_MEZO(b, lr, a, wd)  b - lr (a + wd b)     MeZO's update of base b */
#ifdef __CUDA_ARCH__
MS_HD float ms_zo_x86_nan(float r, float a, float b) {
  if (r == r) return r;
  if (a != a) return __uint_as_float(__float_as_uint(a) | 0x400000u);
  if (b != b) return __uint_as_float(__float_as_uint(b) | 0x400000u);
  return __uint_as_float(0xffc00000u);
}
#define MS_ZO_ADD(a, b) ms_zo_x86_nan(ms_zo_add(a, b), a, b)
#define MS_ZO_SUB(a, b) ms_zo_x86_nan(ms_zo_sub(a, b), a, b)
#define MS_ZO_MUL(a, b) ms_zo_x86_nan(ms_zo_mul(a, b), a, b)
#define MS_ZO_INV(u) ms_zo_x86_nan(ms_zo_div(1.0f, u), 1.0f, u)
#else
#define MS_ZO_ADD(a, b) ((a) + (b))
#define MS_ZO_SUB(a, b) ((a) - (b))
#define MS_ZO_MUL(a, b) ((a) * (b))
#define MS_ZO_INV(u) (1 / (u))
#endif
#define MS_ZO_ON(w, s, u) MS_ZO_ADD(w, MS_ZO_MUL(s, u))
#define MS_ZO_OFF(w, s, u) MS_ZO_SUB(w, MS_ZO_MUL(s, u))
#define MS_ZO_SUM(a, c, v) MS_ZO_ADD(a, MS_ZO_MUL(c, v))
#define MS_ZO_MEZO(b, lr, a, wd) MS_ZO_SUB(b, MS_ZO_MUL(lr, MS_ZO_ADD(a, MS_ZO_MUL(wd, b))))

/* The four words of Philox block `block` of direction (seed, step, index). */
MS_HD void ms_zo_words(uint64_t seed, uint32_t step, uint32_t index, uint64_t block,
                       uint32_t w[4]) {
  ms_philox_block((uint32_t)block, (uint32_t)(block >> 32), index, step, (uint32_t)seed,
                  (uint32_t)(seed >> 32), w);
}

/* rademacher: bit b of a word */
MS_HD float ms_zo_rad(uint32_t word, int b) { return (word >> b) & 1u ? 1.0f : -1.0f; }

/* segmented uniform: +-(2^23 + (w >> 9)) 2^-24 in [0.5, 1), exact in float32 (24 bits) */
MS_HD float ms_zo_seg(uint32_t w) {
  const float mag = ms_zo_mul((float)(0x800000u + (w >> 9)), 5.9604644775390625e-8f);
  return ms_zo_float(ms_zo_bits(mag) | ((~w & 1u) << 31));
}

/* log x for x a positive normal float: x = m 2^e, m in [sqrt(1/2), sqrt(2)),
 * log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, odd series to s^9. */
MS_HD float ms_zo_logf(float x) {
  const uint32_t b = ms_zo_bits(x);
  const uint32_t mant = b & 0x7fffffu;
  const uint32_t up = mant > 0x3504f3u ? 1u : 0u;          /* m >= sqrt(2): halve it */
  const int32_t e = (int32_t)(b >> 23) - 127 + (int32_t)up;
  const float m = ms_zo_float(mant | (up ? 0x3f000000u : 0x3f800000u));
  const float f = ms_zo_sub(m, 1.0f);                       /* exact (Sterbenz) */
  const float s = ms_zo_div(f, ms_zo_add(m, 1.0f));
  const float z = ms_zo_mul(s, s);
  float p = ms_zo_add(0.2857142984867095947265625f, ms_zo_mul(z, 0.2222222238779067993164062f));
  p = ms_zo_add(0.4000000059604644775390625f, ms_zo_mul(z, p));
  p = ms_zo_add(0.666666686534881591796875f, ms_zo_mul(z, p));
  const float lm = ms_zo_add(ms_zo_mul(2.0f, s), ms_zo_mul(ms_zo_mul(s, z), p));
  const float ef = (float)e;
  /* ln 2 = hi + lo, hi with 16 significant bits: e hi is exact */
  return ms_zo_add(ms_zo_mul(ef, 0.693145751953125f),
                   ms_zo_add(ms_zo_mul(ef, 1.428606765330187045037746429443359375e-6f), lm));
}

/* sin and cos of 2 pi t, t = n 2^-24 with n = word >> 8: the quadrant and the reduced
 * angle come from integer arithmetic (exact), then polynomials on [-pi/4, pi/4]. */
MS_HD void ms_zo_sincos(uint32_t word, float *sn, float *cs) {
  const int32_t n = (int32_t)(word >> 8);
  const int32_t q = (n + (1 << 21)) >> 22;                   /* round(4 t), 0..4 */
  const float ph = ms_zo_mul((float)(n - (q << 22)), 3.7450702829239800e-7f); /* pi/2 2^-22 */
  const float p2 = ms_zo_mul(ph, ph);
  float sp = ms_zo_add(-1.98412698412698412698e-4f, ms_zo_mul(p2, 2.75573192239858906526e-6f));
  sp = ms_zo_add(8.33333333333333333333e-3f, ms_zo_mul(p2, sp));
  sp = ms_zo_add(-1.66666666666666666667e-1f, ms_zo_mul(p2, sp));
  const float s = ms_zo_add(ph, ms_zo_mul(ms_zo_mul(ph, p2), sp));
  float cp = ms_zo_add(2.48015873015873015873e-5f, ms_zo_mul(p2, -2.75573192239858906526e-7f));
  cp = ms_zo_add(-1.38888888888888888889e-3f, ms_zo_mul(p2, cp));
  cp = ms_zo_add(4.16666666666666666667e-2f, ms_zo_mul(p2, cp));
  cp = ms_zo_add(-0.5f, ms_zo_mul(p2, cp));
  const float c = ms_zo_add(1.0f, ms_zo_mul(p2, cp));
  /* theta = q pi/2 + ph: q 1 -> (sin, cos) = (c, -s), 2 -> (-s, -c), 3 -> (-c, s) */
  const uint32_t sb = ms_zo_bits((q & 1) ? c : s), cb = ms_zo_bits((q & 1) ? s : c);
  *sn = ms_zo_float(sb ^ ((uint32_t)(q & 2) << 30));
  *cs = ms_zo_float(cb ^ ((uint32_t)((q + 1) & 2) << 30));
}

/* Box-Muller on two words: z0 = r cos theta, z1 = r sin theta. */
MS_HD void ms_zo_gauss2(uint32_t a, uint32_t b, float *z0, float *z1) {
  const float u1 = ms_zo_mul((float)((a >> 8) + 1u), 5.9604644775390625e-8f);
  const float r = ms_zo_sqrt(ms_zo_mul(-2.0f, ms_zo_logf(u1)));
  float s, c;
  ms_zo_sincos(b, &s, &c);
  *z0 = ms_zo_mul(r, c);
  *z1 = ms_zo_mul(r, s);
}

/* Element k (0..3) of a word block, for the 4-a-block distributions. */
MS_HD float ms_zo_word_value(const uint32_t w[4], int k, int32_t dist) {
  if (dist == 2) return ms_zo_seg(w[k]);                     /* MS_ZO_SEGMENTED */
  float z0, z1;
  ms_zo_gauss2(w[k & 2], w[(k & 2) + 1], &z0, &z1);
  return (k & 1) ? z1 : z0;
}

/* u at global element j: the definition every path must agree with. */
MS_HD float ms_zo_u(uint64_t seed, uint32_t step, uint32_t index, int32_t dist, uint64_t j) {
  uint32_t w[4];
  if (dist == 0) {                                           /* MS_ZO_RADEMACHER */
    ms_zo_words(seed, step, index, j >> 7, w);
    return ms_zo_rad(w[(j >> 5) & 3], (int)(j & 31));
  }
  ms_zo_words(seed, step, index, j >> 2, w);
  return ms_zo_word_value(w, (int)(j & 3), dist);
}

/* ---- the exact-restore log (runtime/zo_move.c owns it, kernels/zo.cu fills it) -------
 * An entry says how to get an element's original value b back from r = fl(w - d), what
 * subtraction gives. The arena is cut into chunks of MS_ZO_CHUNK elements (aligned to the
 * global index); a chunk's entries, ascending, are one byte stream:
 *   gap      positions skipped since the previous entry of the chunk (or the chunk's start):
 *            one byte when < 128, else two (low 7 bits | 0x80, then gap >> 7);
 *   delta    one byte, bits(b) - bits(r) as int8 (never 0: a logged element differs);
 *            0 is the escape: the original bits follow (4 bytes float32, 8 float64, LE).
 * Most entries are 2 bytes. Per chunk the log keeps where its stream starts (within its
 * segment: the CPU threads write one segment each, the GPU one) and its entry count, so a
 * restore decodes the chunks in parallel. */
enum { MS_ZO_CHUNK = 4096 };
#ifdef __cplusplus
extern "C" {
#endif
typedef struct ms_zo_segment {
  int64_t lo, hi;      /* the chunks [lo, hi) it holds (lo == hi: unused) */
  uint8_t *buf;        /* on the log's device */
  int64_t len, cap, count;
  int32_t oom;
} ms_zo_segment;
struct ms_zo_log {
  int32_t device;      /* MS_CPU or MS_CUDA: where the streams and chunk arrays live */
  int32_t dtype;       /* the arena's, when it holds entries */
  int64_t arena_n;     /* the arena's element count, likewise */
  int64_t count;       /* entries */
  int64_t nchunks, chunk_cap;
  int64_t *chunk_off;  /* per chunk: its stream's start within its segment */
  int32_t *chunk_cnt;  /* per chunk: its entries */
  int32_t nseg, seg_cap;
  ms_zo_segment *seg;  /* host array (the buffers on the device) */
};
/* Empty, with room for nchunks chunks and nseg segments on `device` (memory reused when it
 * suffices; a CUDA log also gets segment 0 with `bytes` bytes); fails naming fn. */
int ms_zo_log_reserve(const char *fn, ms_zo_log *log, int64_t nchunks, int32_t nseg,
                      int64_t bytes, int32_t device);
#ifdef __cplusplus
}
#endif
/* The delta byte of a logged element (original bits b, subtraction's r): b - r when it fits
 * an int8 (it is never 0), else 0, the escape. */
MS_HD int ms_zo_delta(uint64_t b, uint64_t r, int wide) {
  const int64_t d = wide ? (int64_t)(b - r) : (int64_t)(int32_t)(uint32_t)(b - r);
  return d >= -128 && d <= 127 ? (int)d : 0;
}
/* Bytes of an entry with this gap (< MS_ZO_CHUNK) and delta byte. */
MS_HD int ms_zo_entry_bytes(int gap, int delta, int wide) {
  return (gap < 128 ? 2 : 3) + (delta ? 0 : (wide ? 8 : 4));
}
/* Writes an entry at q (room for ms_zo_entry_bytes; the gap's second byte is written
 * always, then overwritten by the delta when the gap takes one byte); returns its size. */
MS_HD int ms_zo_put(uint8_t *q, int gap, int delta, uint64_t b, int wide) {
  const int g = gap < 128 ? 1 : 2;
  q[0] = (uint8_t)(gap < 128 ? gap : (0x80 | (gap & 127)));
  q[1] = (uint8_t)(gap >> 7);
  q[g] = (uint8_t)(int8_t)delta;
  if (delta) return g + 1;
  const int nb = wide ? 8 : 4;
  for (int i = 0; i < nb; i++) q[g + 1 + i] = (uint8_t)(b >> (8 * i));
  return g + 1 + nb;
}
/* Reads the entry at p: its gap, its delta byte and (escape) the original bits; returns
 * its size. */
MS_HD int ms_zo_get(const uint8_t *p, int *gap, int *delta, uint64_t *b, int wide) {
  int n = 1, g = p[0];
  if (g & 0x80) g = (g & 127) | ((int)p[1] << 7), n = 2;
  const int d = (int8_t)p[n++];
  *gap = g, *delta = d;
  if (d) return n;
  const int nb = wide ? 8 : 4;
  uint64_t v = 0;
  for (int i = 0; i < nb; i++) v |= (uint64_t)p[n + i] << (8 * i);
  *b = v;
  return n + nb;
}

/* ---- what runtime/zo.c and runtime/zo_move.c share (the C loops only) ------------------ */
#ifndef __CUDACC__
enum { ZO_B = 512 };   /* elements generated at a time: a multiple of 128, aligned globally */
/* The CPU loops are compiled for any x86-64, x86-64-v3 (AVX2) and x86-64-v4 (AVX-512: Philox
 * 16 lanes a vector; measured 1.4x faster fill and move than AVX2); the loader picks one.
 * Integer Philox and correctly rounded float operations: the same bits either way. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ZO_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define ZO_CLONES
#endif
/* u[k] = u(base + k) of direction d for k in [a, b) (0 <= a < b <= ZO_B, base a multiple of
 * ZO_B); other entries of u[ZO_B] may be written too. */
void zo_gen(const ms_zo_dir *d, int64_t base, int a, int b, float *u);
int zo_check_dir(const char *fn, const char *arg, const ms_zo_dir *d);
int zo_check_arena(const char *fn, const char *arg, const ms_tensor *t);  /* float, contiguous */
int64_t zo_cost(int32_t dist);   /* work per element, in copies, for the thread count */
/* A log to put back must have been written for w's device, dtype and size (zo_move.c). */
int zo_check_log_in(const char *fn, const ms_zo_log *in, const ms_tensor *w);

static inline uint64_t bits_f32(float x) { return ms_zo_bits(x); }
static inline float from_f32(uint64_t b) { return ms_zo_float((uint32_t)b); }
static inline uint64_t bits_f64(double x) { union { double d; uint64_t u; } c; c.d = x; return c.u; }
static inline double from_f64(uint64_t b) { union { double d; uint64_t u; } c; c.u = b; return c.d; }

/* Reading one chunk of a log being put back (zo_move.c): the next entry's position in the
 * chunk (MS_ZO_CHUNK when none is left), its delta byte and (escape) original bits. */
typedef struct {
  const uint8_t *p;
  int32_t left, pos, delta, wide;
  uint64_t bits;
} zo_dec;
void zo_dec_start(zo_dec *d, const ms_zo_log *in, int64_t chunk, int wide);   /* in NULL: none */
static inline void zo_dec_next(zo_dec *d) {
  if (d->left == 0) { d->pos = MS_ZO_CHUNK; return; }
  int gap;
  d->p += ms_zo_get(d->p, &gap, &d->delta, &d->bits, d->wide);
  d->pos += gap + 1, d->left--;
}
/* The entries at chunk positions [lo, hi) put back into bs[pos - lo]. */
#define ZO_PUT_BACK(T, SFX, dec, bs, lo, hi)                                             \
  for (; (dec).pos < (hi); zo_dec_next(&(dec))) {                                        \
    T *e_ = &(bs)[(dec).pos - (lo)];                                                     \
    *e_ = (dec).delta ? from_##SFX(bits_##SFX(*e_) + (uint64_t)(int64_t)(dec).delta)     \
                      : from_##SFX((dec).bits);                                          \
  }
/* 1 when two directions are the same (scale aside): generate it once. */
static inline int zo_same_dir(const ms_zo_dir *a, const ms_zo_dir *b) {
  return a && b && a->seed == b->seed && a->step == b->step && a->index == b->index &&
         a->dist == b->dist;
}
#endif
#endif /* MS_OPTIM_ZO_H */
