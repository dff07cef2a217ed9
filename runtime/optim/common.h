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
 * scale: the per-element multiplier is scale[slice of i], via the device table. */
#ifdef __cplusplus
extern "C" {
#endif
int ms_cuda_arena_reduce(int32_t op, const float *a, const float *b, const int64_t *chunks,
                         int64_t nchunks, double *partial);
int ms_cuda_arena_scale(float *a, int64_t n, const int64_t *table, int32_t nslices,
                        const double *scale);
#ifdef __cplusplus
}
#endif
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
#endif /* OPT_T */
