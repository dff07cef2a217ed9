/* optim/drive.h — the CPU driver of the fused optimizer steps: one parallel pass over
 * the arena; each thread's share is cut at slice boundaries and every piece runs the
 * rule's tight loop with its group's constants (no per-element group lookup).
 *
 *   span(job, k, lo, hi)   the rule's loop over elements [lo, hi) with constants k
 *   ms_drive_slices(n, cost, table, consts, kstride, span, job)
 *     table: the checked slice table (never NULL here; optim.c makes a one-slice table
 *     for uniform steps); consts: ngroups constant sets of kstride bytes each. */
#ifndef MS_OPTIM_DRIVE_H
#define MS_OPTIM_DRIVE_H
#include "internal.h"

typedef void (*ms_span_fn)(const void *job, const void *k, int64_t lo, int64_t hi);

typedef struct {
  const ms_slice_table *table;
  const char *consts;
  size_t kstride;
  ms_span_fn span;
  const void *job;
} ms_drive_ctx;

/* The index of the slice holding element i (slices sorted and covering the arena). */
static inline int32_t ms_slice_at(const ms_slice_table *t, int64_t i) {
  int32_t lo = 0, hi = t->nslices - 1;
  while (lo < hi) {
    int32_t mid = lo + (hi - lo + 1) / 2;
    if (t->slices[mid].offset <= i) lo = mid; else hi = mid - 1;
  }
  return lo;
}

static inline void ms_drive_share(void *ctx, int64_t lo, int64_t hi) {
  const ms_drive_ctx *d = (const ms_drive_ctx *)ctx;
  const ms_slice_table *t = d->table;
  for (int32_t s = ms_slice_at(t, lo); s < t->nslices && lo < hi; s++) {
    const ms_slice *sl = &t->slices[s];
    int64_t end = sl->offset + sl->count < hi ? sl->offset + sl->count : hi;
    if (end > lo) d->span(d->job, d->consts + (size_t)sl->group * d->kstride, lo, end);
    lo = end;
  }
}

static inline void ms_drive_slices(int64_t n, int64_t cost, const ms_slice_table *table,
                                   const void *consts, size_t kstride, ms_span_fn span,
                                   const void *job) {
  ms_drive_ctx d = {table, (const char *)consts, kstride, span, job};
  ms_parallel_for(n, n * cost, ms_drive_share, &d);
}

/* Checks a slice table against an arena of n elements: slices sorted, disjoint and
 * covering [0, n), groups < ngroups <= MS_OPTIM_MAX_GROUPS; the device copy present
 * for GPU arenas. */
int ms_check_slice_table(const char *fn, const ms_slice_table *t, int64_t n, int on_gpu);
#endif /* MS_OPTIM_DRIVE_H */
