/* zo_move.c — the exact-restore log and ms_zo_move: one pass over the arena takes one
 * perturbation off and puts the next on, in place, and logs the elements whose next
 * restore by subtraction would not be exact (fl(fl(b + d) - d) != b bitwise), compactly:
 * per chunk of MS_ZO_CHUNK elements a byte stream of (gap, ulp difference) entries, about
 * 2 bytes an entry (optim/zo.h).
 *
 * Determinism: threads take contiguous runs of chunks and write their streams straight into
 * the log, one segment per thread (no copy, no buffer kept beside the log); a chunk's bytes
 * depend only on its elements, so the log reads the same for any thread count. The CUDA
 * twin (kernels/zo.cu) counts each chunk's bytes first, then writes at the scanned offsets
 * into one segment. */
#include "internal.h"
#include "optim/zo.h"
#include "zo_rad.h"
#include <stdlib.h>
#include <string.h>

/* ---- the log ------------------------------------------------------------------------ */

ms_zo_log *ms_zo_log_new(void) {
  ms_zo_log *l = calloc(1, sizeof *l);
  if (!l) ms_fail("zo_log_new: out of memory");
  return l;
}

static void dev_free(int32_t device, void *p) {
  if (device == MS_CUDA) ms_cuda_free(p);
  else free(p);
}

static void *dev_alloc(int32_t device, int64_t nbytes) {
  void *p = NULL;
  if (device == MS_CUDA) return ms_cuda_malloc(&p, nbytes) == 0 ? p : NULL;
  return malloc((size_t)nbytes);
}

static void seg_drop(int32_t device, ms_zo_segment *s) {
  dev_free(device, s->buf);
  memset(s, 0, sizeof *s);
}

static void log_drop(ms_zo_log *l) {
  dev_free(l->device, l->chunk_off), dev_free(l->device, l->chunk_cnt);
  for (int32_t i = 0; i < l->seg_cap; i++) seg_drop(l->device, &l->seg[i]);
  free(l->seg);
  l->chunk_off = NULL, l->chunk_cnt = NULL, l->seg = NULL;
  l->chunk_cap = l->nchunks = l->count = 0, l->nseg = l->seg_cap = 0;
}

void ms_zo_log_free(ms_zo_log *l) {
  if (!l) return;
  log_drop(l);
  free(l);
}

int64_t ms_zo_log_count(const ms_zo_log *l) { return l ? l->count : 0; }
int64_t ms_zo_log_bytes(const ms_zo_log *l) {
  if (!l) return 0;
  int64_t b = l->chunk_cap * (int64_t)(sizeof(int64_t) + sizeof(int32_t));
  for (int32_t i = 0; i < l->seg_cap; i++) b += l->seg[i].cap;
  return b;
}

int ms_zo_log_reserve(const char *fn, ms_zo_log *l, int64_t nchunks, int32_t nseg,
                      int64_t bytes, int32_t device) {
  l->count = 0, l->nchunks = 0;
  if (l->device != device) log_drop(l), l->device = device;
  if (nchunks > l->chunk_cap) {
    dev_free(device, l->chunk_off), dev_free(device, l->chunk_cnt);
    l->chunk_off = dev_alloc(device, nchunks * (int64_t)sizeof(int64_t));
    l->chunk_cnt = dev_alloc(device, nchunks * (int64_t)sizeof(int32_t));
    l->chunk_cap = l->chunk_off && l->chunk_cnt ? nchunks : 0;
    if (!l->chunk_cap) goto oom;
  }
  if (nseg > l->seg_cap) {
    ms_zo_segment *s = realloc(l->seg, sizeof *s * (size_t)nseg);
    if (!s) goto oom;
    memset(s + l->seg_cap, 0, sizeof *s * (size_t)(nseg - l->seg_cap));
    l->seg = s, l->seg_cap = nseg;
  }
  l->nseg = nseg;
  for (int32_t i = 0; i < l->seg_cap; i++) l->seg[i].lo = l->seg[i].hi = 0, l->seg[i].len = 0;
  if (device == MS_CUDA && nseg > 0 && bytes > l->seg[0].cap) {
    seg_drop(device, &l->seg[0]);
    const int64_t cap = bytes + bytes / 8 + 256;
    if (!(l->seg[0].buf = dev_alloc(device, cap))) goto oom;
    l->seg[0].cap = cap;
  }
  l->nchunks = nchunks;
  return 0;
oom:
  log_drop(l);
  l->device = device;
  return ms_fail("%s: out of memory for a log of %lld chunks (%lld bytes) on %s", fn,
                 (long long)nchunks, (long long)bytes, ms_device_name(device));
}

void zo_dec_start(zo_dec *d, const ms_zo_log *in, int64_t chunk, int wide) {
  d->wide = wide, d->left = 0, d->pos = -1, d->p = NULL;
  if (in)
    for (int32_t i = 0; i < in->nseg; i++) {
      const ms_zo_segment *s = &in->seg[i];
      if (chunk >= s->lo && chunk < s->hi) {
        d->p = s->buf + in->chunk_off[chunk], d->left = in->chunk_cnt[chunk];
        break;
      }
    }
  zo_dec_next(d);
}

/* ---- the CPU pass -------------------------------------------------------------------- */

typedef struct {
  int32_t dtype;
  void *w;
  int64_t n;
  const ms_zo_dir *from, *to;      /* NULL: none */
  const ms_zo_log *in;             /* NULL: none */
  ms_zo_log *out;                  /* NULL: no logging */
} move_job;

/* Room for need more bytes in segment s (growing by half): 0, or -1 with oom set. */
static int seg_room(ms_zo_segment *s, int64_t need) {
  if (s->cap - s->len >= need) return 0;
  int64_t cap = s->cap + s->cap / 2;
  if (cap < s->len + need) cap = s->len + need;
  uint8_t *b = realloc(s->buf, (size_t)cap);
  if (!b) return s->oom = 1, -1;
  s->buf = b, s->cap = cap;
  return 0;
}

/* The bad flags of 64 elements (one byte each, 0 or 1) as the bits of a word. */
static inline uint64_t flags64(const unsigned char *f) {
  uint64_t m = 0;
  for (int t = 0; t < 8; t++) {
    uint64_t x;
    memcpy(&x, f + 8 * t, 8);
    m |= ((x * 0x0102040810204080ull) >> 56) << (8 * t);
  }
  return m;
}

/* One block [base, base + b) at chunk position at: base values, the log put back, the next
 * perturbation on, the entries written at q. */
#define MOVE_BLOCK(T, SFX, WIDE)                                                       \
  do {                                                                                 \
    T *w = (T *)j->w + base, bs[ZO_B];                                                 \
    if (j->from) {                                                                     \
      const T s = (T)j->from->scale;                                                   \
      for (int k = 0; k < b; k++) bs[k] = MS_ZO_OFF(w[k], s, (T)uf[k]);                         \
    } else {                                                                           \
      for (int k = 0; k < b; k++) bs[k] = w[k];                                        \
    }                                                                                  \
    ZO_PUT_BACK(T, SFX, dec, bs, at, at + b);                                          \
    if (!j->to) {                                                                      \
      for (int k = 0; k < b; k++) w[k] = bs[k];                                        \
    } else if (!seg) {                                                                 \
      const T s = (T)j->to->scale;                                                     \
      for (int k = 0; k < b; k++) w[k] = MS_ZO_ON(bs[k], s, (T)ut[k]);                         \
    } else {                                                                           \
      const T s = (T)j->to->scale;                                                     \
      unsigned char bad[ZO_B];                                                         \
      for (int k = 0; k < b; k++) {                                                    \
        const T d = MS_ZO_MUL(s, (T)ut[k]), nw = MS_ZO_ADD(bs[k], d);                                      \
        w[k] = nw;                                                                     \
        bad[k] = bits_##SFX(MS_ZO_SUB(nw, d)) != bits_##SFX(bs[k]);                              \
      }                                                                                \
      for (int k = b; k < ZO_B; k++) bad[k] = 0;                                       \
      for (int k0 = 0; k0 < b; k0 += 64)                                               \
        for (uint64_t m = flags64(bad + k0); m; m &= m - 1) {                          \
          const int k = k0 + __builtin_ctzll(m);                                       \
          const T d = MS_ZO_MUL(s, (T)ut[k]);                                                    \
          const uint64_t ob = bits_##SFX(bs[k]);                                       \
          const int delta = ms_zo_delta(ob, bits_##SFX(MS_ZO_SUB(w[k], d)), WIDE);               \
          q += ms_zo_put(q, at + k - last - 1, delta, ob, WIDE);                       \
          last = at + k, cnt++;                                                        \
        }                                                                              \
    }                                                                                  \
  } while (0)

ZO_CLONES static void move_share(void *ctx, int64_t lo, int64_t hi) {
  const move_job *j = ctx;
  ms_zo_log *out = j->out;
  ms_zo_segment *seg = out ? &out->seg[ms_thread_id()] : NULL;
  if (seg) seg->lo = lo, seg->hi = hi, seg->len = 0, seg->count = 0, seg->oom = 0;
  const int wide = j->dtype != MS_FLOAT32;
  float ufb[ZO_B], utb[ZO_B];               /* a block of u_from, u_to */
  float ufc[MS_ZO_CHUNK], utc[MS_ZO_CHUNK];  /* a chunk of them (Rademacher: zo_rad_gen) */
  const int same = zo_same_dir(j->from, j->to);   /* +h u -> -h u: generated once */
  for (int64_t c = lo; c < hi; c++) {
    const int64_t c0 = c * MS_ZO_CHUNK;
    const int nel = j->n - c0 < MS_ZO_CHUNK ? (int)(j->n - c0) : MS_ZO_CHUNK;
    /* Rademacher directions a chunk at a time (Philox vectorizes across its 32 blocks) */
    const int rf = j->from && j->from->dist == MS_ZO_RADEMACHER;
    const int rt = j->to && !same && j->to->dist == MS_ZO_RADEMACHER;
    if (rf) zo_rad_gen(j->from, c0, 0, nel, ufc);
    if (rt) zo_rad_gen(j->to, c0, 0, nel, utc);
    zo_dec dec;
    zo_dec_start(&dec, j->in, c, wide);
    uint8_t *q = NULL;
    int last = -1;
    int32_t cnt = 0;
    if (seg) out->chunk_off[c] = seg->len, q = seg->buf + seg->len;
    for (int at = 0; at < nel; at += ZO_B) {
      const int64_t base = c0 + at;
      const int b = nel - at < ZO_B ? nel - at : ZO_B;
      if (seg) {   /* room for the block's worst case */
        seg->len = q - seg->buf;
        if (seg_room(seg, (int64_t)b * (wide ? 11 : 7) + 8)) {
          seg = NULL;   /* out of memory: the move finishes unlogged, finish() reports it */
        } else {
          q = seg->buf + seg->len;
        }
      }
      const float *uf = ufb, *ut = utb;   /* (MOVE_BLOCK reads uf and ut) */
      if (j->from) {
        if (rf) uf = ufc + at;
        else zo_gen(j->from, base, 0, b, ufb);
      }
      if (same) ut = uf;
      else if (j->to) {
        if (rt) ut = utc + at;
        else zo_gen(j->to, base, 0, b, utb);
      }
      if (!wide) MOVE_BLOCK(float, f32, 0);
      else MOVE_BLOCK(double, f64, 1);
    }
    if (seg) {
      out->chunk_cnt[c] = cnt;
      seg->len = q - seg->buf, seg->count += cnt;
    }
  }
}

/* After a logged pass: the total, unused segments' memory freed, used ones trimmed to their
 * length plus one chunk's worst case (what the next pass of a similar log needs). */
static int finish(const char *fn, ms_zo_log *out) {
  int oom = 0;
  out->count = 0;
  for (int32_t i = 0; i < out->seg_cap; i++) {
    ms_zo_segment *s = &out->seg[i];
    if (s->lo == s->hi) { seg_drop(MS_CPU, s); continue; }
    oom |= s->oom;
    out->count += s->count;
    const int64_t keep = s->len + ZO_B * 11 + 8;
    if (s->cap > keep + 8192) {
      uint8_t *b = realloc(s->buf, (size_t)keep);
      if (b) s->buf = b, s->cap = keep;
    }
  }
  if (oom) {
    out->count = 0;
    return ms_fail("%s: out of memory for the log", fn);
  }
  return 0;
}

/* ---- the entry point ----------------------------------------------------------------- */

int zo_check_log_in(const char *fn, const ms_zo_log *in, const ms_tensor *w) {
  if (in && in->count > 0 &&
      (in->device != ms_device_of(w) || in->dtype != w->dtype_id || in->arena_n != w->count))
    return ms_fail("%s: log 'in' was written for a %s %s arena of %lld elements, but 'w' is "
                   "a %s %s arena of %lld", fn, ms_device_name(in->device),
                   ms_dtype_name(in->dtype), (long long)in->arena_n,
                   ms_device_name(ms_device_of(w)), ms_dtype_name(w->dtype_id),
                   (long long)w->count);
  return 0;
}

int ms_zo_move(ms_tensor *w, const ms_zo_dir *from, const ms_zo_log *in, const ms_zo_dir *to,
               ms_zo_log *out) {
  static const char fn[] = "zo_move";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(zo_check_arena(fn, "w", w));
  if (from) MS_TRY(zo_check_dir(fn, "from", from));
  if (to) MS_TRY(zo_check_dir(fn, "to", to));
  if (in && in == out) return ms_fail("%s: logs 'in' and 'out' are the same, expected two logs", fn);
  MS_TRY(zo_check_log_in(fn, in, w));
  const int dev = ms_device_of(w);
  const int64_t n = w->count, nchunks = (n + MS_ZO_CHUNK - 1) / MS_ZO_CHUNK;
  if (from && from->scale == 0) from = NULL;
  if (to && to->scale == 0) to = NULL;
  if (in && in->count == 0) in = NULL;
  if (out) {
    int nth = ms_num_threads();
    MS_TRY(ms_zo_log_reserve(fn, out, to && dev != MS_CUDA ? nchunks : 0,
                             dev == MS_CUDA ? 1 : nth < 1 ? 1 : nth, 0, dev));
    out->dtype = w->dtype_id, out->arena_n = n;
  }
  if (n == 0) return 0;
  if (dev == MS_CUDA)
    return ms_cuda_zo_move((float *)ms_ptr(w), n, from, in, to, to ? out : NULL);
  if (!from && !to && !in) return 0;
  move_job j = {w->dtype_id, ms_ptr(w), n, from, to, in, out && to ? out : NULL};
  if (j.out)
    for (int32_t i = 0; i < out->seg_cap; i++) out->seg[i].lo = out->seg[i].hi = 0;
  const int64_t cost = 3 + (from ? zo_cost(from->dist) : 0) + (to ? zo_cost(to->dist) : 0);
  ms_parallel_for(nchunks, n * cost, move_share, &j);
  return j.out ? finish(fn, out) : 0;
}
