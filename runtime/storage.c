/* storage.c — refcounted storage and the CPU block cache.
 *
 * A tensor header holds one reference to its storage (tensor.c); the last release
 * frees the memory or keeps a large CPU block for the next request of its size. */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

/* ---- storage ------------------------------------------------------------------------ */
/* On the CPU the header and the data are one allocation: [header | pad to 64 | data],
 * 64-byte aligned (whole cache lines, aligned vector loads); one malloc per tensor
 * keeps small ops cheap. On the GPU the header is host memory, the data device memory. */
enum { MS_HEADER_BYTES = 64 };
_Static_assert(sizeof(ms_storage) + sizeof(void *) <= MS_HEADER_BYTES, "header fits its slot");

/* ---- the CPU block cache: free lists of released blocks, keyed by exact size ----------
 * A cached block's header slot links it into its list (the word after ms_storage). */
enum { CACHE_MIN = 64 << 10, CACHE_SLOTS = 256 };
static const int64_t CACHE_CAP = (int64_t)1 << 30;
typedef struct { int64_t nbytes; void *head; } cache_slot;
static cache_slot cache[CACHE_SLOTS];
static int64_t cache_bytes = 0;

static void **link_of(void *block) { return (void **)((char *)block + sizeof(ms_storage)); }

static void *cache_take(int64_t nbytes) {
  for (int i = 0; i < CACHE_SLOTS; i++)
    if (cache[i].nbytes == nbytes && cache[i].head) {
      void *b = cache[i].head;
      cache[i].head = *link_of(b);
      cache_bytes -= nbytes;
      return b;
    }
  return NULL;
}

static int cache_put(void *block, int64_t nbytes) {
#ifdef __SANITIZE_ADDRESS__
  (void)block;  /* sanitizer builds free every block, so a use after free is caught */
  return 0;
#endif
  if (nbytes < CACHE_MIN || cache_bytes + nbytes > CACHE_CAP) return 0;
  int slot = -1;
  for (int i = 0; i < CACHE_SLOTS && slot < 0; i++)
    if (cache[i].nbytes == nbytes) slot = i;
  for (int i = 0; i < CACHE_SLOTS && slot < 0; i++)
    if (!cache[i].head) slot = i, cache[i].nbytes = nbytes;
  if (slot < 0) return 0;
  *link_of(block) = cache[slot].head;
  cache[slot].head = block;
  cache_bytes += nbytes;
  return 1;
}

int64_t ms_cpu_cache_bytes(void) { return cache_bytes; }

void ms_cpu_cache_clear(void) {
  for (int i = 0; i < CACHE_SLOTS; i++) {
    while (cache[i].head) {
      void *b = cache[i].head;
      cache[i].head = *link_of(b);
      free(b);
    }
    cache[i].nbytes = 0;
  }
  cache_bytes = 0;
}

int ms_storage_new(ms_storage **out, int64_t nbytes, int32_t device) {
  ms_storage *s;
  if (device == MS_CPU) {
    void *block = nbytes >= CACHE_MIN ? cache_take(nbytes) : NULL;
    if (!block && ((uint64_t)nbytes > (uint64_t)INT64_MAX - MS_HEADER_BYTES ||
                   posix_memalign(&block, 64, (size_t)(MS_HEADER_BYTES + nbytes)) != 0)) {
      ms_cpu_cache_clear();  /* memory held by the cache may be what is missing */
      if (posix_memalign(&block, 64, (size_t)(MS_HEADER_BYTES + nbytes)) != 0)
        return ms_fail("out of memory: cannot allocate %lld bytes on cpu", (long long)nbytes);
    }
    s = block;
    s->data = nbytes > 0 ? (char *)block + MS_HEADER_BYTES : NULL;
  } else {
    s = malloc(sizeof *s);
    if (!s) return ms_fail("out of memory allocating a storage header");
    s->data = NULL;
    if (nbytes > 0 && ms_cuda_malloc(&s->data, nbytes) != 0) {
      free(s);
      return -1;
    }
  }
  s->nbytes = nbytes;
  s->device = device;
  s->refcount = 1;
  *out = s;
  return 0;
}

/* ---- traded memory (ms_arena_swap) ---------------------------------------------------
 * Two storages of one size may trade their memory for a while (the SAM family runs pass 2
 * with a perturbed copy of the arena in place of the arena, then trades back). A CPU
 * storage's memory is part of its own allocation, so the pair is recorded until it trades
 * back, and a storage released while traded first takes its own memory back. */
enum { MS_TRADES = 16 };
static ms_storage *g_trades[MS_TRADES][2];
static int g_ntrades = 0;

static void exchange(ms_storage *a, ms_storage *b) {
  void *t = a->data;
  a->data = b->data;
  b->data = t;
}

int ms_storage_trade(ms_storage *a, ms_storage *b) {
  int empty = -1;
  for (int i = 0; i < MS_TRADES; i++) {
    ms_storage *x = g_trades[i][0], *y = g_trades[i][1];
    if ((x == a && y == b) || (x == b && y == a)) {   /* trading back */
      exchange(a, b);
      g_trades[i][0] = g_trades[i][1] = NULL;
      g_ntrades--;
      return 0;
    }
    if (x == a || y == a || x == b || y == b)
      return ms_fail("arena_swap: one of the arenas is traded with a third one; trade it back first");
    if (!x && empty < 0) empty = i;
  }
  if (empty < 0) return ms_fail("arena_swap: %d pairs of arenas are traded already", MS_TRADES);
  exchange(a, b);
  g_trades[empty][0] = a, g_trades[empty][1] = b;
  g_ntrades++;
  return 0;
}

int ms_storage_untrade(ms_storage *s) {
  for (int i = 0; i < MS_TRADES && g_ntrades > 0; i++)
    if (g_trades[i][0] == s || g_trades[i][1] == s) {
      exchange(g_trades[i][0], g_trades[i][1]);
      g_trades[i][0] = g_trades[i][1] = NULL;
      g_ntrades--;
      return 1;
    }
  return 0;
}

void ms_storage_decref(ms_storage *s) {
  if (!s || --s->refcount > 0) return;
  if (g_ntrades > 0) ms_storage_untrade(s);
  if (s->device != MS_CPU) {
    ms_cuda_free(s->data);
    free(s);
  } else if (!cache_put(s, s->nbytes)) {
    free(s);
  }
}

