/* threads.c — the CPU thread pool: OpenMP threads shared with OpenBLAS (its OpenMP
 * build, see the Makefile), and ms_parallel_for, which splits a loop into one
 * contiguous share per thread and stays serial below MS_PARALLEL_GRAIN. */
#include "internal.h"
#ifdef _OPENMP
#include <omp.h>
#endif

void openblas_set_num_threads(int);

int ms_num_threads(void) {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void ms_set_num_threads(int n) {
  if (n < 1) n = 1;
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  openblas_set_num_threads(n);
}

int ms_threads_for(int64_t work) {
  if (work < MS_PARALLEL_GRAIN) return 1;
  int nth = ms_num_threads();
  int64_t most = work / (MS_PARALLEL_GRAIN / 2);
  return most < nth ? (int)most : nth;
}

void ms_parallel_for(int64_t n, int64_t work, ms_range_fn fn, void *ctx) {
  int nth = ms_threads_for(work);
  if (nth > n) nth = n > 0 ? (int)n : 1;
  if (nth == 1) {
    fn(ctx, 0, n);
    return;
  }
#pragma omp parallel num_threads(nth)
  {
    int64_t lo, hi;
    ms_split(n, ms_thread_id(), nth, &lo, &hi);
    fn(ctx, lo, hi);
  }
}
