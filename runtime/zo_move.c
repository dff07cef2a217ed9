/* zo_move.c — the exact-restore log and ms_zo_move: one pass over the arena takes one
 * perturbation off and puts the next on, in place, and logs the elements whose next
 * restore by subtraction would not be exact (fl(fl(b + d) - d) != b bitwise), compactly
 * (optim/zo.h: 5 bytes for most, 16 for the rest).
 *
 * Determinism: threads take contiguous runs of blocks and log into their own buffers
 * (one per thread, kept between calls); the buffers are concatenated in the order of
 * their runs, so the log is sorted by index and the same for any thread count. The
 * CUDA twin (kernels/zo.cu) counts first, then writes at the scanned offsets. */
#include "internal.h"
#include "optim/zo.h"
#include <stdlib.h>
#include <string.h>

/* ---- the log ------------------------------------------------------------------------ */

ms_zo_log *ms_zo_log_new(void) {
  ms_zo_log *l = calloc(1, sizeof *l);
  if (!l) ms_fail("zo_log_new: out of memory");
  return l;
}

static void log_drop(ms_zo_log *l) {
  void *p[4] = {l->idx, l->delta, l->xidx, l->xbits};
  for (int i = 0; i < 4; i++) {
    if (l->device == MS_CUDA) ms_cuda_free(p[i]);
    else free(p[i]);
  }
  l->idx = NULL, l->delta = NULL, l->xidx = NULL, l->xbits = NULL;
  l->capacity = l->count = l->xcapacity = l->xcount = 0;
}

void ms_zo_log_free(ms_zo_log *l) {
  if (!l) return;
  log_drop(l);
  free(l);
}

int64_t ms_zo_log_count(const ms_zo_log *l) { return l ? l->count + l->xcount : 0; }
int64_t ms_zo_log_bytes(const ms_zo_log *l) {
  return l ? l->capacity * (int64_t)(sizeof(uint32_t) + sizeof(int8_t)) +
                 l->xcapacity * (int64_t)(sizeof(int64_t) + sizeof(uint64_t))
           : 0;
}

static void *log_alloc(int32_t device, int64_t nbytes) {
  void *p = NULL;
  if (device == MS_CUDA) return ms_cuda_malloc(&p, nbytes) == 0 ? p : NULL;
  return malloc((size_t)nbytes);
}

int ms_zo_log_reserve(const char *fn, ms_zo_log *l, int64_t count, int64_t xcount,
                      int32_t device) {
  l->count = 0, l->xcount = 0;
  if (l->device == device && l->capacity >= count && l->xcapacity >= xcount) return 0;
  if (count > MS_MAX_NUMEL || xcount > MS_MAX_NUMEL)
    return ms_fail("%s: %lld log entries, too many", fn, (long long)(count + xcount));
  const int same = l->device == device;
  int64_t cap = same && l->capacity > count ? l->capacity : count + count / 2;
  int64_t xcap = same && l->xcapacity > xcount ? l->xcapacity : xcount + xcount / 2;
  if (cap < 256) cap = 256;
  if (xcap < 16) xcap = 16;
  log_drop(l);
  l->device = device;
  l->idx = log_alloc(device, cap * 4), l->delta = log_alloc(device, cap);
  l->xidx = log_alloc(device, xcap * 8), l->xbits = log_alloc(device, xcap * 8);
  if (!l->idx || !l->delta || !l->xidx || !l->xbits) {
    log_drop(l);
    return ms_fail("%s: out of memory for a log of %lld entries on %s", fn,
                   (long long)(count + xcount), ms_device_name(device));
  }
  l->capacity = cap, l->xcapacity = xcap;
  return 0;
}

/* ---- per-thread log buffers ---------------------------------------------------------- */

typedef struct {
  int64_t lo;          /* the first block of the run that filled it; -1: unused */
  int oom;
  ms_zo_log e;         /* host arrays: this run's entries */
} zo_slot;

static zo_slot *g_slots;
static int g_nslots;

static int slots_reserve(int n) {
  if (n <= g_nslots) return 0;
  zo_slot *s = realloc(g_slots, sizeof *s * (size_t)n);
  if (!s) return -1;
  memset(s + g_nslots, 0, sizeof *s * (size_t)(n - g_nslots));
  g_slots = s, g_nslots = n;
  return 0;
}

/* Room for one more entry of either kind (doubling); 0, or -1 and oom set. */
static int slot_grow(zo_slot *s, int full) {
  ms_zo_log *e = &s->e;
  if (!full) {
    int64_t cap = e->capacity ? 2 * e->capacity : 4096;
    uint32_t *i = realloc(e->idx, 4 * (size_t)cap);
    if (i) e->idx = i;
    int8_t *d = i ? realloc(e->delta, (size_t)cap) : NULL;
    if (d) e->delta = d;
    if (!i || !d) return s->oom = 1, -1;
    e->capacity = cap;
  } else {
    int64_t cap = e->xcapacity ? 2 * e->xcapacity : 256;
    int64_t *i = realloc(e->xidx, 8 * (size_t)cap);
    if (i) e->xidx = i;
    uint64_t *b = i ? realloc(e->xbits, 8 * (size_t)cap) : NULL;
    if (b) e->xbits = b;
    if (!i || !b) return s->oom = 1, -1;
    e->xcapacity = cap;
  }
  return 0;
}

static inline void slot_push(zo_slot *s, int64_t i, uint64_t b, uint64_t r, int wide,
                             int small) {
  ms_zo_log *e = &s->e;
  const int d = ms_zo_delta(b, r, wide, small);
  if (d) {
    if (e->count == e->capacity && slot_grow(s, 0)) return;
    e->idx[e->count] = (uint32_t)i, e->delta[e->count] = (int8_t)d, e->count++;
  } else {
    if (e->xcount == e->xcapacity && slot_grow(s, 1)) return;
    e->xidx[e->xcount] = i, e->xbits[e->xcount] = b, e->xcount++;
  }
}

/* ---- the CPU pass -------------------------------------------------------------------- */

typedef struct {
  int32_t dtype, logging, small;   /* small: indices fit 32 bits (compact entries) */
  void *w;
  int64_t n;
  const ms_zo_dir *from, *to;      /* NULL: none */
  const ms_zo_log *in;             /* NULL: none */
} move_job;

static inline uint64_t bits_f32(float x) { return ms_zo_bits(x); }
static inline float from_f32(uint64_t b) { return ms_zo_float((uint32_t)b); }
static inline uint64_t bits_f64(double x) { union { double d; uint64_t u; } c; c.d = x; return c.u; }
static inline double from_f64(uint64_t b) { union { double d; uint64_t u; } c; c.u = b; return c.d; }

/* One block [base, base + b): base values, the log put back, the next perturbation on. */
#define MOVE_BLOCK(T, SFX, WIDE)                                                       \
  do {                                                                                 \
    T *w = (T *)j->w + base, bs[ZO_B];                                                 \
    if (j->from) {                                                                     \
      const T s = (T)j->from->scale;                                                   \
      for (int k = 0; k < b; k++) bs[k] = w[k] - s * (T)uf[k];                         \
    } else {                                                                           \
      for (int k = 0; k < b; k++) bs[k] = w[k];                                        \
    }                                                                                  \
    for (; p < pend && in->idx[p] < base + b; p++) {                                   \
      const int k = (int)(in->idx[p] - base);                                          \
      bs[k] = from_##SFX(bits_##SFX(bs[k]) + (uint64_t)(int64_t)in->delta[p]);         \
    }                                                                                  \
    for (; x < xend && in->xidx[x] < base + b; x++)                                    \
      bs[in->xidx[x] - base] = from_##SFX(in->xbits[x]);                               \
    if (!j->to) {                                                                      \
      for (int k = 0; k < b; k++) w[k] = bs[k];                                        \
    } else if (!j->logging) {                                                          \
      const T s = (T)j->to->scale;                                                     \
      for (int k = 0; k < b; k++) w[k] = bs[k] + s * (T)ut[k];                         \
    } else {                                                                           \
      const T s = (T)j->to->scale;                                                     \
      unsigned char bad[ZO_B];                                                         \
      for (int k = 0; k < b; k++) {                                                    \
        const T d = s * (T)ut[k], nw = bs[k] + d;                                      \
        w[k] = nw;                                                                     \
        bad[k] = bits_##SFX(nw - d) != bits_##SFX(bs[k]);                              \
      }                                                                                \
      for (int k = b; k < ZO_B && (k & 7); k++) bad[k] = 0;                            \
      for (int k0 = 0; k0 < b; k0 += 8) {  /* 8 flags a word; bit 8t: element k0 + t */ \
        uint64_t m;                                                                    \
        memcpy(&m, bad + k0, 8);                                                       \
        for (; m; m &= m - 1) {                                                        \
          const int k = k0 + (__builtin_ctzll(m) >> 3);                                \
          const T d = s * (T)ut[k];                                                    \
          slot_push(slot, base + k, bits_##SFX(bs[k]), bits_##SFX(w[k] - d), WIDE,     \
                    j->small);                                                         \
        }                                                                              \
      }                                                                                \
    }                                                                                  \
  } while (0)

/* The first index of a sorted list at or after v. */
#define LOWER_BOUND(res, arr, cnt, v)                                                  \
  do {                                                                                 \
    int64_t lo_ = 0, hi_ = (cnt);                                                      \
    while (lo_ < hi_) {                                                                \
      const int64_t mid_ = lo_ + (hi_ - lo_) / 2;                                      \
      if ((int64_t)(arr)[mid_] < (v)) lo_ = mid_ + 1; else hi_ = mid_;                 \
    }                                                                                  \
    (res) = lo_;                                                                       \
  } while (0)

ZO_CLONES static void move_share(void *ctx, int64_t lo, int64_t hi) {
  const move_job *j = ctx;
  const ms_zo_log *in = j->in;
  zo_slot *slot = &g_slots[ms_thread_id()];
  slot->lo = lo, slot->oom = 0, slot->e.count = 0, slot->e.xcount = 0;
  int64_t p = 0, x = 0, pend = in ? in->count : 0, xend = in ? in->xcount : 0;
  if (pend) LOWER_BOUND(p, in->idx, pend, lo * ZO_B);
  if (xend) LOWER_BOUND(x, in->xidx, xend, lo * ZO_B);
  float uf[ZO_B], ub[ZO_B];
  /* +h u -> -h u (central differences): one direction, generated once */
  const int same = j->from && j->to && j->from->seed == j->to->seed &&
                   j->from->step == j->to->step && j->from->index == j->to->index &&
                   j->from->dist == j->to->dist;
  const float *ut = same ? uf : ub;
  for (int64_t blk = lo; blk < hi; blk++) {
    const int64_t base = blk * ZO_B;
    const int b = j->n - base < ZO_B ? (int)(j->n - base) : ZO_B;
    if (j->from) zo_gen(j->from, base, 0, b, uf);
    if (j->to && !same) zo_gen(j->to, base, 0, b, ub);
    if (j->dtype == MS_FLOAT32) MOVE_BLOCK(float, f32, 0);
    else MOVE_BLOCK(double, f64, 1);
  }
}

/* Swap the arrays of two host logs (capacities with them). */
static void swap_arrays(ms_zo_log *a, ms_zo_log *b) {
  ms_zo_log t = *a;
  a->idx = b->idx, a->delta = b->delta, a->capacity = b->capacity, a->count = b->count;
  a->xidx = b->xidx, a->xbits = b->xbits, a->xcapacity = b->xcapacity, a->xcount = b->xcount;
  b->idx = t.idx, b->delta = t.delta, b->capacity = t.capacity, b->count = t.count;
  b->xidx = t.xidx, b->xbits = t.xbits, b->xcapacity = t.xcapacity, b->xcount = t.xcount;
}

/* Grow a host array to n elements of size sz, keeping its contents. */
static int keep_grow(void **p, int64_t n, size_t sz) {
  void *q = realloc(*p, sz * (size_t)n);
  if (!q) return -1;
  *p = q;
  return 0;
}

/* The slots' entries, in the order of their runs, into out (a CPU log, empty): the first
 * run's arrays are swapped with out's (no copy), the others appended. */
static int gather(const char *fn, ms_zo_log *out) {
  int64_t total = 0, xtotal = 0;
  for (int t = 0; t < g_nslots; t++) {
    if (g_slots[t].lo < 0) continue;
    if (g_slots[t].oom) return ms_fail("%s: out of memory for the log", fn);
    total += g_slots[t].e.count, xtotal += g_slots[t].e.xcount;
  }
  int64_t after = -1;
  for (int first = 1;; first = 0) {   /* the used slot with the smallest run after `after` */
    int best = -1;
    for (int t = 0; t < g_nslots; t++)
      if (g_slots[t].lo > after && (best < 0 || g_slots[t].lo < g_slots[best].lo)) best = t;
    if (best < 0) break;
    zo_slot *s = &g_slots[best];
    after = s->lo;
    if (first) {
      swap_arrays(out, &s->e);
      s->e.count = 0, s->e.xcount = 0;
      if (total > out->capacity) {
        if (keep_grow((void **)&out->idx, total, 4) || keep_grow((void **)&out->delta, total, 1))
          goto oom;
        out->capacity = total;
      }
      if (xtotal > out->xcapacity) {
        if (keep_grow((void **)&out->xidx, xtotal, 8) || keep_grow((void **)&out->xbits, xtotal, 8))
          goto oom;
        out->xcapacity = xtotal;
      }
      continue;
    }
    const ms_zo_log *e = &s->e;
    if (e->count) {
      memcpy(out->idx + out->count, e->idx, 4 * (size_t)e->count);
      memcpy(out->delta + out->count, e->delta, (size_t)e->count);
      out->count += e->count;
    }
    if (e->xcount) {
      memcpy(out->xidx + out->xcount, e->xidx, 8 * (size_t)e->xcount);
      memcpy(out->xbits + out->xcount, e->xbits, 8 * (size_t)e->xcount);
      out->xcount += e->xcount;
    }
  }
  /* no more memory than the entries need (a log's bytes are what the caller sees), and no
   * scratch kept much larger than the last run used */
  if (out->capacity > out->count + out->count / 4 + 4096) {
    const int64_t c = out->count + 1024;
    if (keep_grow((void **)&out->idx, c, 4) || keep_grow((void **)&out->delta, c, 1)) goto oom;
    out->capacity = c;
  }
  if (out->xcapacity > out->xcount + out->xcount / 4 + 256) {
    const int64_t c = out->xcount + 64;
    if (keep_grow((void **)&out->xidx, c, 8) || keep_grow((void **)&out->xbits, c, 8)) goto oom;
    out->xcapacity = c;
  }
  for (int t = 0; t < g_nslots; t++) {
    ms_zo_log *e = &g_slots[t].e;
    if (e->capacity > 2 * (total + xtotal) + 65536 || e->xcapacity > 2 * xtotal + 4096) {
      free(e->idx), free(e->delta), free(e->xidx), free(e->xbits);
      memset(e, 0, sizeof *e);
    }
  }
  return 0;
oom:
  out->count = 0, out->xcount = 0;
  return ms_fail("%s: out of memory for a log of %lld entries", fn, (long long)(total + xtotal));
}

/* ---- the entry point ----------------------------------------------------------------- */

int ms_zo_move(ms_tensor *w, const ms_zo_dir *from, const ms_zo_log *in, const ms_zo_dir *to,
               ms_zo_log *out) {
  static const char fn[] = "zo_move";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(zo_check_arena(fn, "w", w));
  if (from) MS_TRY(zo_check_dir(fn, "from", from));
  if (to) MS_TRY(zo_check_dir(fn, "to", to));
  if (in && in == out) return ms_fail("%s: logs 'in' and 'out' are the same, expected two logs", fn);
  const int dev = ms_device_of(w);
  const int64_t n = w->count;
  if (in && in->count + in->xcount > 0) {
    if (in->device != dev || in->dtype != w->dtype_id || in->arena_n != n)
      return ms_fail("%s: log 'in' was written for a %s %s arena of %lld elements, but 'w' is "
                     "a %s %s arena of %lld", fn, ms_device_name(in->device),
                     ms_dtype_name(in->dtype), (long long)in->arena_n, ms_device_name(dev),
                     ms_dtype_name(w->dtype_id), (long long)n);
  }
  if (from && from->scale == 0) from = NULL;
  if (to && to->scale == 0) to = NULL;
  if (out) {
    MS_TRY(ms_zo_log_reserve(fn, out, 0, 0, dev));
    out->dtype = w->dtype_id, out->arena_n = n;
  }
  if (n == 0) return 0;
  if (in && in->count + in->xcount == 0) in = NULL;
  if (dev == MS_CUDA)
    return ms_cuda_zo_move((float *)ms_ptr(w), n, from, in, to, to ? out : NULL);
  if (!from && !to && !in) return 0;
  int nth = ms_num_threads();
  if (slots_reserve(nth < 1 ? 1 : nth) != 0) return ms_fail("%s: out of memory", fn);
  for (int t = 0; t < g_nslots; t++) g_slots[t].lo = -1;
  move_job j = {w->dtype_id, out && to, n <= ((int64_t)1 << 32), ms_ptr(w), n, from, to, in};
  const int64_t cost = 3 + (from ? zo_cost(from->dist) : 0) + (to ? zo_cost(to->dist) : 0);
  ms_parallel_for((n + ZO_B - 1) / ZO_B, n * cost, move_share, &j);
  return j.logging ? gather(fn, out) : 0;
}
