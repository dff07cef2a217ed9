/* threads.c — the CPU thread pool: OpenMP threads shared with OpenBLAS (its OpenMP
 * build, see the Makefile), ms_parallel_for, which splits a loop into one contiguous
 * share per thread and stays serial below MS_PARALLEL_GRAIN, and the guard against a
 * loaded machine.
 *
 * The guard. On a machine whose cores are busy with other processes, a parallel region
 * waits for a descheduled thread for a whole time slice (milliseconds), and a training
 * step made of many short regions collapses. So ms_parallel_for times each region: the
 * master thread's own share against the region's wall time; the difference is the stall
 * (waiting for the other threads). On nth threads a region beats the serial loop while
 * its stall stays below (nth - 1) x the share. The states:
 *   parallel --(a window's stalls exceed that bound by SLACK_NS)--> serial
 *   serial   --(the back-off has passed: next loop or GEMM)------> probing
 *   probing  --(a clean window of WINDOW regions)----------------> parallel, back-off reset
 *   probing  --(stalls again)-------------------------------------> serial, back-off doubled
 * While serial, moonstep's loops and OpenBLAS run on the calling thread; the back-off
 * starts at BACKOFF_MIN and doubles up to BACKOFF_MAX. Measured (MLP 784-256-10 epoch, 2
 * cores, one busy process beside): 7.6-15.5 s on 2 threads without the guard, 3.5-4 s
 * with a guard that left OpenBLAS its threads, 0.58-0.64 s with this one; 0.49-0.58 s on 1
 * thread. Float32 results are the same bits on any thread count (no reduction's or dot's
 * partition depends on it, and blas.c hands OpenBLAS a GEMM's inner dimension in pieces it
 * blocks alike on one thread and on several), so the guard changes their speed only (a
 * float64 product with a narrow output can differ in its last bits: blas.c).
 * MOONSTEP_THREAD_GUARD=0 turns it off. The wait policy of idle threads (spin, then
 * sleep) is set by lua/moonstep/core.lua (GOMP_SPINCOUNT) before libgomp starts. */
#include "internal.h"
#include <stdlib.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void openblas_set_num_threads(int);

enum { WINDOW = 32 };
static const int64_t SLACK_NS = 2000000;         /* 2 ms: many wake-ups, less than a slice */
static const int64_t LATE_NS = 500000;           /* a region stalled this much past its bound
                                                    counts as late (ms.thread_status) */
static const int64_t BACKOFF_MIN = 250000000;    /* 0.25 s */
static const int64_t BACKOFF_MAX = 8000000000LL; /* 8 s */

static int g_threads;  /* the count the user asked for; 0 until first read */
static struct {
  int on;              /* -1 until MOONSTEP_THREAD_GUARD is read */
  int serial;          /* the pool is held on the calling thread until `until` */
  int probing;         /* the first window after a serial period */
  int regions;         /* in the current window */
  int64_t stall, bound;   /* the window's summed stalls, and (nth - 1) x its shares (ns) */
  int64_t until, backoff;
  int64_t episodes, late_total;
} g = {.on = -1};

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int ms_num_threads(void) {
#ifdef _OPENMP
  if (g_threads == 0) g_threads = omp_get_max_threads();
  return g_threads;
#else
  return 1;
#endif
}

void ms_set_num_threads(int n) {
  if (n < 1) n = 1;
  if (n != ms_num_threads()) {   /* a new count starts the guard afresh */
    g.serial = g.probing = g.regions = 0;
    g.stall = g.bound = g.backoff = 0;
  } else if (g.serial) {
    return;                      /* the same count: the back-off goes on */
  }
  g_threads = n;
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  openblas_set_num_threads(n);
}

static int guard_on(void) {
  if (g.on < 0) {
    const char *e = getenv("MOONSTEP_THREAD_GUARD");
    g.on = !(e && e[0] == '0' && e[1] == '\0');
  }
  return g.on;
}

/* The threads a loop may use now: 1 while the guard holds the loops serial. */
static int threads_now(void) {
  int nth = ms_num_threads();
  if (!g.serial) return nth;
  if (now_ns() < g.until) return 1;
  g.serial = 0, g.probing = 1, g.regions = 0, g.stall = g.bound = 0;   /* try the threads again */
  openblas_set_num_threads(nth);
  return nth;
}

/* One parallel region on nth threads: its wall time and the master's share (ns). */
static void guard_note(int nth, int64_t wall, int64_t share) {
  int64_t stall = wall - share;
  if (stall > share * (nth - 1) + LATE_NS) g.late_total++;
  g.stall += stall, g.bound += share * (nth - 1);
  if (g.stall > g.bound + SLACK_NS) {            /* the threads cost more than they gave */
    g.backoff = g.probing && g.backoff ? g.backoff * 2 : BACKOFF_MIN;
    if (g.backoff > BACKOFF_MAX) g.backoff = BACKOFF_MAX;
    g.serial = 1, g.until = now_ns() + g.backoff, g.episodes++;
    openblas_set_num_threads(1);
    g.probing = 0, g.regions = 0, g.stall = g.bound = 0;
  } else if (++g.regions >= WINDOW) {            /* a clean window */
    g.backoff = 0, g.probing = 0, g.regions = 0, g.stall = g.bound = 0;
  }
}

void ms_threads_end_backoff_if_due(void) { (void)threads_now(); }

void ms_thread_guard_stats(int64_t *out) {
  out[0] = ms_num_threads();
  out[1] = g.serial && now_ns() < g.until ? 1 : ms_num_threads();
  out[2] = g.episodes;
  out[3] = g.late_total;
  out[4] = guard_on();
}

int ms_threads_for(int64_t work) {
  if (work < MS_PARALLEL_GRAIN) return 1;
  int nth = threads_now();
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
  const int timed = guard_on();
  int64_t t0 = timed ? now_ns() : 0, share = 0;
  int team = nth;
#pragma omp parallel num_threads(nth)
  {
    /* split by the team OpenMP gave (OMP_DYNAMIC or OMP_THREAD_LIMIT can give fewer) */
    int64_t lo, hi;
    int tid = ms_thread_id(), nt = ms_team_size();
    ms_split(n, tid, nt, &lo, &hi);
    int64_t s = timed && tid == 0 ? now_ns() : 0;
    fn(ctx, lo, hi);
    if (tid == 0) team = nt, share = timed ? now_ns() - s : 0;
  }
  if (timed && team > 1) guard_note(team, now_ns() - t0, share);
}
