/* optim/drive.h — the CPU driver of the fused optimizer steps: one parallel pass over
 * the arena; each thread's share is cut at slice boundaries and every piece runs the
 * rule's tight loop with its group's constants (no per-element group lookup).
 *
 *   span(job, k, s, lo, hi)  the rule's loop over elements [lo, hi) of slice s, with its
 *                            group's constants k
 *   ms_drive_slices(n, cost, table, consts, kstride, span, job)
 *     table: the checked slice table (never NULL here; optim.c makes a one-slice table
 *     for uniform steps); consts: ngroups constant sets of kstride bytes each, or NULL
 *     (k is then NULL: a span that works per slice reads what it needs from s). */
#ifndef MS_OPTIM_DRIVE_H
#define MS_OPTIM_DRIVE_H
#include "internal.h"
#include "optim/common.h"

typedef void (*ms_span_fn)(const void *job, const void *k, int32_t s, int64_t lo, int64_t hi);

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
    if (end > lo)
      d->span(d->job, d->consts ? d->consts + (size_t)sl->group * d->kstride : NULL, s, lo, end);
    lo = end;
  }
}

static inline void ms_drive_slices(int64_t n, int64_t cost, const ms_slice_table *table,
                                   const void *consts, size_t kstride, ms_span_fn span,
                                   const void *job) {
  ms_drive_ctx d = {table, (const char *)consts, kstride, span, job};
  ms_parallel_for(n, n * cost, ms_drive_share, &d);
}

/* The set-up every fused step shares (optim_operands.c). A plan must stay where it was
 * filled (t may point at its own one-slice table). */
typedef struct {
  int32_t ngroups;                 /* hyper-parameter sets given */
  ms_slice one;                    /* the uniform step's one slice ... */
  ms_slice_table uniform;          /* ... and table */
  const ms_slice_table *t;         /* the table the step is driven with */
} ms_optim_plan;
/* args and hyper not NULL, the group count in range: fills p->ngroups. */
int ms_optim_begin(const char *fn, const ms_optim_args *a, const void *h, ms_optim_plan *p);
/* "fn" or "fn (group g+1)" into buf: the name errors about group g carry. */
const char *ms_optim_group_name(char *buf, size_t size, const char *fn, int32_t g,
                                int32_t ngroups);
/* b: same dtype, device and shape as param, contiguous. */
int ms_optim_check_buffer(const char *fn, const char *name, const ms_tensor *b,
                          const ms_tensor *param);
/* param, grad and the state buffers (need: a bit per slot some group uses; nstate: the
 * rule's slots, named by names), the step, the slice table: fills p->t. */
int ms_optim_operands(const char *fn, const ms_optim_args *a, unsigned need, int nstate,
                      const char *const *names, ms_optim_plan *p);
/* The operands as a CUDA launcher takes them (float32 arenas). */
ms_cuda_optim_job ms_optim_cuda_job(const ms_optim_args *a, const ms_optim_plan *p);

/* Checks a slice table against an arena of n elements: slices sorted, disjoint and
 * covering [0, n), groups < ngroups <= MS_OPTIM_MAX_GROUPS; the device copy present
 * for GPU arenas. */
int ms_check_slice_table(const char *fn, const ms_slice_table *t, int64_t n, int on_gpu);
#endif /* MS_OPTIM_DRIVE_H */
