/* zo_rad.h — the Rademacher fast paths of the zeroth-order CPU loops (zo_rad.c), used by
 * zo.c. u = +-1, so c * u is +-c exactly: these loops select +-c from the sign bits and give
 * the very bits of the general loops (generate u, then multiply). */
#ifndef MS_ZO_RAD_H
#define MS_ZO_RAD_H
#include "optim/zo.h"

/* u[k] = u(base + k) of the rademacher direction d for k in [a, b), as zo_gen, but for
 * up to a chunk: base a multiple of 128, 0 <= a < b <= MS_ZO_CHUNK (whole 128-blocks of u
 * written). */
void zo_rad_gen(const ms_zo_dir *d, int64_t base, int a, int b, float *u);
/* acc[k] = sum_i coef[i] u_i(base + k) for k < nel (base a multiple of 128; acc holds nel
 * rounded up to 128, all written), every dirs[i] rademacher, summed in i order from 0 in the
 * accumulator's type (c_i = (T)coef[i]): the bits of zo.c's general sum. */
void zo_rad_sum_f32(const ms_zo_dir *dirs, const double *coef, int32_t n, int64_t base,
                    int64_t nel, float *acc);
void zo_rad_sum_f64(const ms_zo_dir *dirs, const double *coef, int32_t n, int64_t base,
                    int64_t nel, double *acc);
/* A span of a row: out[k] = fl(s u(g0 + k)) (w NULL) or fl(w[k] + fl(s u(g0 + k))), k < n,
 * s = (T)d->scale; any g0 >= 0, n >= 0. */
void zo_rad_span_f32(const ms_zo_dir *d, int64_t g0, int64_t n, float *out, const float *w);
void zo_rad_span_f64(const ms_zo_dir *d, int64_t g0, int64_t n, double *out, const double *w);
/* The words of m <= 128 consecutive Philox blocks from blk0 of direction d: out[q][l]. */
void zo_philox_words(const ms_zo_dir *d, uint64_t blk0, int m, uint32_t out[4][128]);
#endif
