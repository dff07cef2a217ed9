/* optim/common.h — what every rule header shares.
 *
 * Host part (once): the CUDA launchers' job, an arena and its slice table as the GPU
 * kernels see them. Template part (per element type, OPT_T defined): opt_ptrs_<SFX>, the
 * operands an element rule reads and writes.
 *
 * Template parameters, defined by the includer:
 *   OPT_T     the element type        OPT_SFX   a name suffix (f32, f64)
 *   OPT_FMA   fused multiply-add of T OPT_SQRT  square root of T
 *   OPT_FN    qualifiers of the element functions (static inline, or __host__ __device__) */
#ifndef MS_OPTIM_COMMON_H
#define MS_OPTIM_COMMON_H
#include <math.h>
#include <stdint.h>
#include "internal.h"

enum { MS_OPTIM_NSTATE = 6 };

#ifndef __CUDACC__
/* A hyper-parameter must be finite and in [lo, hi] (hi may be INFINITY: then < hi). */
static inline int ms_check_hyper(const char *fn, const char *name, double v, double lo,
                                 double hi) {
  if (!(v >= lo && (hi == INFINITY ? v < hi : v <= hi)))
    return ms_fail("%s: %s is %g, expected a finite number in [%g, %g%s", fn, name, v, lo, hi,
                   hi == INFINITY ? ")" : "]");
  return 0;
}
#endif

/* One fused step as a CUDA launcher receives it (float32 arenas). */
typedef struct {
  float *p;
  const float *g;
  float *s[MS_OPTIM_NSTATE];
  int64_t n;
  const int64_t *table;  /* device: offsets[nslices + 1], groups[nslices]; NULL: group 0 */
  int32_t nslices;
} ms_cuda_optim_job;

/* The arena reductions and per-slice scaling on the GPU (kernels/optim.cu), float32.
 * chunks: [nchunks] (offset, count) pairs in host memory, each within one slice, at most
 * MS_REDUCE_BLOCK elements: partial[c] = the chunk's sum, accumulated in float64.
 * axpby / perturb: the per-slice coefficients are those of slice of i (the device table;
 * NULL table: one slice). */
#ifdef __cplusplus
extern "C" {
#endif
int ms_cuda_arena_reduce(int32_t op, const float *a, const float *b, const int64_t *chunks,
                         int64_t nchunks, double *partial);
int ms_cuda_arena_axpby(float *y, const float *x, int64_t n, const int64_t *table,
                        int32_t nslices, const double *a, const double *b);
int ms_cuda_arena_perturb(const float *w, const float *g, float *out, int64_t n,
                          const int64_t *table, int32_t nslices, const ms_perturb_slice *per);
#ifdef __cplusplus
}
#endif
/* The operands of a step as the C loops see them: MS_OPT_PTRS(T, args) initialises an
 * opt_ptrs_<SFX> of element type T (unused state slots NULL). */
#define MS_OPT_PTRS(T, a)                                                              \
  {(T *)ms_ptr((a)->param), (const T *)ms_ptr((a)->grad),                              \
   {(a)->state[0] ? (T *)ms_ptr((a)->state[0]) : NULL,                                 \
    (a)->state[1] ? (T *)ms_ptr((a)->state[1]) : NULL,                                 \
    (a)->state[2] ? (T *)ms_ptr((a)->state[2]) : NULL,                                 \
    (a)->state[3] ? (T *)ms_ptr((a)->state[3]) : NULL,                                 \
    (a)->state[4] ? (T *)ms_ptr((a)->state[4]) : NULL,                                 \
    (a)->state[5] ? (T *)ms_ptr((a)->state[5]) : NULL}}

/* The CPU loops of a rule call its element function with literal flags; always_inline
 * lets the compiler specialise and vectorise each loop. */
#if defined(__GNUC__) && !defined(__CUDACC__)
#define MS_OPT_ALWAYS_INLINE __attribute__((always_inline))
#else
#define MS_OPT_ALWAYS_INLINE
#endif

/* The C loops: any x86-64 and x86-64-v3, picked at run time (MS_CLONES, internal.h). */
#define MS_OPT_CLONES MS_CLONES
#endif /* MS_OPTIM_COMMON_H */

#ifdef OPT_T
#define OPT_CAT_(a, b) a##b
#define OPT_CAT(a, b) OPT_CAT_(a, b)
#define OPT_NAME(name) OPT_CAT(name, OPT_SFX)
/* The operands of a step: element i of each is p[i], g[i], s[k][i]. */
typedef struct {
  OPT_T *p;
  const OPT_T *g;
  OPT_T *s[MS_OPTIM_NSTATE];
} OPT_NAME(opt_ptrs_);

/* <NAME>_loop_SFX for a rule without hand-hoisted CPU loops: its element rule per element
 * (used at the end of such a rule's template part: OPT_GENERIC_LOOP(nadam)). */
#define OPT_GENERIC_LOOP(NAME)                                                         \
  static inline void OPT_CAT(NAME##_loop_, OPT_SFX)(const OPT_NAME(opt_ptrs_) *qp,      \
                                                   const OPT_CAT(NAME##_k_, OPT_SFX) *kp, \
                                                   int64_t lo, int64_t hi) {            \
    const OPT_NAME(opt_ptrs_) q = *qp;                                                 \
    const OPT_CAT(NAME##_k_, OPT_SFX) k = *kp;                                         \
    for (int64_t i = lo; i < hi; i++) OPT_CAT(NAME##_elem_, OPT_SFX)(i, &q, &k);        \
  }
#endif /* OPT_T */
