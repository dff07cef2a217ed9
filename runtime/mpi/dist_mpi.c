/* dist_mpi.c — moonstep's collectives over Open MPI (the plugin libmoonstep_mpi.so,
 * built with mpicc when it is installed; lua/moonstep/dist.lua loads it only when the
 * process was started by an MPI launcher). Every collective is the nonblocking MPI call
 * followed by MPI_Test polling until it completes or the timeout passes: a rank that
 * died or stopped calling gives an error on the others, never a hang. Errors return
 * nonzero with the message in ms_dist_error(); MPI's own errors are returned too
 * (MPI_ERRORS_RETURN), not fatal. MPI is finalized at process exit (atexit). MPI is asked
 * for MPI_THREAD_MULTIPLE so that the started all-reduces (below) can have a progress
 * thread; every other call comes from the caller's thread. */
#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include "plugin_error.h"
#include "moonstep_dist.h"

static char err_buf[512];
static double timeout_s = 300;
static int started = 0;
static int threaded = 0;  /* MPI gave MPI_THREAD_MULTIPLE: a progress thread may run */
static int broken = 0;   /* a collective failed or timed out: MPI's state is unusable */

const char *ms_dist_error(void) { return err_buf; }
int ms_dist_abi_version(void) { return MS_DIST_ABI_VERSION; }

#define fail(...) plugin_fail(err_buf, sizeof err_buf, __VA_ARGS__)

static int mpi_fail(const char *what, int rc) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", rc);
  return fail("%s: %s", what, msg);
}

static void stop_progress(void);

/* At exit. After a failed collective MPI_Finalize would wait for the missing rank
 * forever: the process leaves without it (mpirun reports that, and ends the job). */
static void finalize_at_exit(void) {
  int done = 0;
  MPI_Finalized(&done);
  stop_progress();
  if (!done && !broken) MPI_Finalize();
}

int ms_dist_init(double timeout, int *rank, int *size) {
  if (timeout > 0) timeout_s = timeout;
  if (!started) {
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
      if (rc != MPI_SUCCESS) return fail("MPI_Init_thread failed (code %d)", rc);
      threaded = provided == MPI_THREAD_MULTIPLE;   /* (the progress thread of the started all-reduces) */
      atexit(finalize_at_exit);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    started = 1;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, rank);
  MPI_Comm_size(MPI_COMM_WORLD, size);
  return 0;
}

/* Wait for request r (collective `what`) until the timeout. */
static int wait_for(MPI_Request *r, const char *what) {
  double t0 = plugin_now();
  for (long spins = 0;; spins++) {
    int done = 0;
    int rc = MPI_Test(r, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) { broken = 1; return mpi_fail(what, rc); }
    if (done) return 0;
    if ((spins & 15) == 15) {          /* let a rank that shares this core run */
      if (plugin_now() - t0 > timeout_s) {
        broken = 1;
        return fail("%s: no answer from the other ranks after %g s (a rank died, or stopped calling "
                    "the same collectives in the same order)", what, timeout_s);
      }
      sched_yield();
    }
  }
}

static int started_or_fail(const char *what) {
  if (!started) return fail("%s: ms.dist is not initialised", what);
  if (broken) return fail("%s: an earlier collective failed or timed out; MPI cannot be used again in this process", what);
  return 0;
}

static MPI_Datatype type_of(int dtype) {
  return dtype == 0 ? MPI_FLOAT : dtype == 1 ? MPI_DOUBLE : MPI_INT64_T;
}

int ms_dist_barrier(void) {
  if (started_or_fail("barrier")) return 1;
  MPI_Request r;
  int rc = MPI_Ibarrier(MPI_COMM_WORLD, &r);
  if (rc != MPI_SUCCESS) return mpi_fail("barrier", rc);
  return wait_for(&r, "barrier");
}

/* In place. count fits MPI's int per call: larger buffers go in pieces of 2^30. */
int ms_dist_all_reduce(void *buf, int64_t count, int dtype, int op) {
  if (started_or_fail("all_reduce")) return 1;
  if (dtype < 0 || dtype > 2 || op < 0 || op > 2) return fail("all_reduce: bad dtype %d or op %d", dtype, op);
  size_t esize = dtype == 0 ? 4 : 8;
  MPI_Op mop = op == 0 ? MPI_SUM : op == 1 ? MPI_MAX : MPI_MIN;
  for (int64_t done = 0; done < count;) {
    int n = (int)(count - done < (1 << 30) ? count - done : (1 << 30));
    MPI_Request r;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + done * esize, n, type_of(dtype), mop, MPI_COMM_WORLD, &r);
    if (rc != MPI_SUCCESS) return mpi_fail("all_reduce", rc);
    if (wait_for(&r, "all_reduce")) return 1;
    done += n;
  }
  return 0;
}

/* Started all-reduces (the gradient buckets). A slot is taken from its start until its
 * ms_dist_wait. Open MPI moves a nonblocking collective only inside MPI calls, so when MPI
 * gives MPI_THREAD_MULTIPLE a progress thread calls MPI_Test on the slots in flight while
 * the caller computes (and sleeps on a condition variable when none is); otherwise
 * ms_dist_progress does it at the caller's pace. mu guards the slots and every MPI call on
 * their requests. */
static MPI_Request pending[MS_DIST_MAX_PENDING];
static unsigned char taken[MS_DIST_MAX_PENDING];
static unsigned char done_slot[MS_DIST_MAX_PENDING];
static int rc_slot[MS_DIST_MAX_PENDING];
static int in_flight = 0;                /* taken and not done */
static int progress_on = 0, progress_quit = 0;
static pthread_t progress_tid;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;    /* work started / a slot done */

/* Test every slot in flight once (mu held). */
static void test_slots(void) {
  for (int i = 0; i < MS_DIST_MAX_PENDING && in_flight > 0; i++) {
    if (!taken[i] || done_slot[i]) continue;
    int done = 0;
    int rc = MPI_Test(&pending[i], &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) { rc_slot[i] = rc; done = 1; }
    if (done) { done_slot[i] = 1; in_flight--; pthread_cond_broadcast(&cv); }
  }
}

static void *progress_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  while (!progress_quit) {
    if (in_flight == 0) { pthread_cond_wait(&cv, &mu); continue; }
    test_slots();
    pthread_mutex_unlock(&mu);
    nanosleep(&(struct timespec){ 0, 20 * 1000 }, NULL);   /* 20 us: the caller's compute first */
    pthread_mutex_lock(&mu);
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

static void stop_progress(void) {
  if (!progress_on) return;
  pthread_mutex_lock(&mu);
  progress_quit = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  pthread_join(progress_tid, NULL);
  progress_on = 0;
}

int ms_dist_start_all_reduce(void *buf, int64_t count, int dtype, int op, int *handle) {
  if (started_or_fail("all_reduce")) return 1;
  if (dtype < 0 || dtype > 2 || op < 0 || op > 2) return fail("all_reduce: bad dtype %d or op %d", dtype, op);
  if (count < 0 || count >= (1 << 30)) return fail("all_reduce: %lld elements in one started all-reduce, expected fewer than 2^30", (long long)count);
  if (threaded && !progress_on) {
    const char *env = getenv("MOONSTEP_DIST_PROGRESS_THREAD");
    if (env && strcmp(env, "0") != 0 && strcmp(env, "1") != 0)
      return fail("all_reduce: MOONSTEP_DIST_PROGRESS_THREAD is \"%s\", expected 0 (no progress thread) or 1", env);
    if (!(env && strcmp(env, "0") == 0) && pthread_create(&progress_tid, NULL, progress_main, NULL) == 0) progress_on = 1;
    else threaded = 0;                   /* turned off, or no thread: progress at the caller's pace */
  }
  pthread_mutex_lock(&mu);
  int slot = 0;
  while (slot < MS_DIST_MAX_PENDING && taken[slot]) slot++;
  int rc = MPI_SUCCESS;
  if (slot < MS_DIST_MAX_PENDING) {
    MPI_Op mop = op == 0 ? MPI_SUM : op == 1 ? MPI_MAX : MPI_MIN;
    rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, type_of(dtype), mop, MPI_COMM_WORLD, &pending[slot]);
    if (rc == MPI_SUCCESS) {
      taken[slot] = 1, done_slot[slot] = 0, rc_slot[slot] = MPI_SUCCESS, in_flight++;
      pthread_cond_broadcast(&cv);
    }
  }
  pthread_mutex_unlock(&mu);
  if (slot == MS_DIST_MAX_PENDING) return fail("all_reduce: %d all-reduces already in flight", MS_DIST_MAX_PENDING);
  if (rc != MPI_SUCCESS) return mpi_fail("all_reduce", rc);
  *handle = slot;
  return 0;
}

int ms_dist_progress(void) {
  if (started_or_fail("all_reduce")) return 1;
  if (progress_on) return 0;             /* the thread does it */
  pthread_mutex_lock(&mu);
  test_slots();
  pthread_mutex_unlock(&mu);
  return 0;                              /* (an MPI error is the slot's, reported by its wait) */
}

int ms_dist_wait(int handle) {
  if (started_or_fail("all_reduce")) return 1;
  pthread_mutex_lock(&mu);
  if (handle < 0 || handle >= MS_DIST_MAX_PENDING || !taken[handle]) {
    pthread_mutex_unlock(&mu);
    return fail("all_reduce: handle %d is not a started all-reduce", handle);
  }
  double t0 = plugin_now();
  int timed_out = 0;
  for (long spins = 0; !done_slot[handle]; spins++) {
    test_slots();                        /* the caller has nothing else to do: it drives MPI */
    if ((spins & 15) == 15) {            /* (and lets the progress thread, a rank on this core run) */
      pthread_mutex_unlock(&mu);
      sched_yield();
      pthread_mutex_lock(&mu);
      if (!done_slot[handle] && plugin_now() - t0 > timeout_s) { timed_out = 1; break; }
    }
  }
  int rc = rc_slot[handle];
  if (!timed_out) taken[handle] = 0;     /* (a timed-out request stays: MPI still owns its buffer) */
  pthread_mutex_unlock(&mu);
  if (timed_out) {
    broken = 1;
    return fail("all_reduce: no answer from the other ranks after %g s (a rank died, or stopped calling "
                "the same collectives in the same order)", timeout_s);
  }
  if (rc != MPI_SUCCESS) { broken = 1; return mpi_fail("all_reduce", rc); }
  return 0;
}

int ms_dist_broadcast(void *buf, int64_t nbytes, int root) {
  if (started_or_fail("broadcast")) return 1;
  for (int64_t done = 0; done < nbytes;) {
    int n = (int)(nbytes - done < (1 << 30) ? nbytes - done : (1 << 30));
    MPI_Request r;
    int rc = MPI_Ibcast((char *)buf + done, n, MPI_BYTE, root, MPI_COMM_WORLD, &r);
    if (rc != MPI_SUCCESS) return mpi_fail("broadcast", rc);
    if (wait_for(&r, "broadcast")) return 1;
    done += n;
  }
  return 0;
}

/* recv: world_size * nbytes, rank i's block at i * nbytes. */
int ms_dist_all_gather(const void *send, void *recv, int64_t nbytes) {
  if (started_or_fail("all_gather")) return 1;
  if (nbytes > (1 << 30)) return fail("all_gather: %lld bytes per rank, expected at most 2^30", (long long)nbytes);
  MPI_Request r;
  int rc = MPI_Iallgather(send, (int)nbytes, MPI_BYTE, recv, (int)nbytes, MPI_BYTE, MPI_COMM_WORLD, &r);
  if (rc != MPI_SUCCESS) return mpi_fail("all_gather", rc);
  return wait_for(&r, "all_gather");
}

/* After an error on one rank: take the whole job down (mpirun reports it). */
int ms_dist_abort(int code) {
  if (started) MPI_Abort(MPI_COMM_WORLD, code);
  return 0;
}
