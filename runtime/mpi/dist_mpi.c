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
static int progress_wanted = 0;   /* MPI gave MPI_THREAD_MULTIPLE: start the progress thread */
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
      /* the started all-reduces' progress thread needs MPI_THREAD_MULTIPLE (and costs Open
       * MPI some locking): asked for unless MOONSTEP_DIST_PROGRESS_THREAD=0 */
      const char *env = getenv("MOONSTEP_DIST_PROGRESS_THREAD");
      if (env && strcmp(env, "0") != 0 && strcmp(env, "1") != 0)
        return fail("init: MOONSTEP_DIST_PROGRESS_THREAD is \"%s\", expected 0 (no progress thread) or 1", env);
      int want = env && strcmp(env, "0") == 0 ? MPI_THREAD_FUNNELED : MPI_THREAD_MULTIPLE;
      int rc = MPI_Init_thread(NULL, NULL, want, &provided);
      if (rc != MPI_SUCCESS) return fail("MPI_Init_thread failed (code %d)", rc);
      progress_wanted = provided == MPI_THREAD_MULTIPLE;
      atexit(finalize_at_exit);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    started = 1;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, rank);
  MPI_Comm_size(MPI_COMM_WORLD, size);
  return 0;
}

/* A collective that got no answer in time: MPI's state is unusable from here on. */
static int timed_out(const char *what) {
  broken = 1;
  return fail("%s: no answer from the other ranks after %g s (a rank died, or stopped calling "
              "the same collectives in the same order)", what, timeout_s);
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
      if (plugin_now() - t0 > timeout_s) return timed_out(what);
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
static MPI_Op op_of(int op) { return op == 0 ? MPI_SUM : op == 1 ? MPI_MAX : MPI_MIN; }
static int bad_reduce_args(int dtype, int op) {
  return (dtype < 0 || dtype > 2 || op < 0 || op > 2) ? fail("all_reduce: bad dtype %d or op %d", dtype, op) : 0;
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
  if (started_or_fail("all_reduce") || bad_reduce_args(dtype, op)) return 1;
  size_t esize = dtype == 0 ? 4 : 8;
  for (int64_t done = 0; done < count;) {
    int n = (int)(count - done < MS_DIST_MAX_COUNT ? count - done : MS_DIST_MAX_COUNT);
    MPI_Request r;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + done * esize, n, type_of(dtype), op_of(op), MPI_COMM_WORLD, &r);
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
 * ms_dist_progress does it at the caller's pace. slots_mu guards the slots and every MPI
 * call on their requests. */
static struct slot {
  MPI_Request req;
  unsigned char taken, done;
  int rc;                                /* MPI_Test's error, if it failed */
} slots[MS_DIST_MAX_PENDING];
static int in_flight = 0;                /* taken and not done */
static int progress_on = 0, progress_quit = 0;
static pthread_t progress_tid;
static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slots_cv = PTHREAD_COND_INITIALIZER;   /* work started / a slot done */

/* Test every slot in flight once (slots_mu held). */
static void test_slots(void) {
  for (int i = 0; i < MS_DIST_MAX_PENDING && in_flight > 0; i++) {
    struct slot *sl = &slots[i];
    if (!sl->taken || sl->done) continue;
    int done = 0;
    int rc = MPI_Test(&sl->req, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) { sl->rc = rc; done = 1; }
    if (done) { sl->done = 1; in_flight--; pthread_cond_broadcast(&slots_cv); }
  }
}

static void *progress_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&slots_mu);
  while (!progress_quit) {
    if (in_flight == 0) { pthread_cond_wait(&slots_cv, &slots_mu); continue; }
    test_slots();
    pthread_mutex_unlock(&slots_mu);
    nanosleep(&(struct timespec){ 0, 20 * 1000 }, NULL);   /* 20 us: the caller's compute first */
    pthread_mutex_lock(&slots_mu);
  }
  pthread_mutex_unlock(&slots_mu);
  return NULL;
}

static void stop_progress(void) {
  if (!progress_on) return;
  pthread_mutex_lock(&slots_mu);
  progress_quit = 1;
  pthread_cond_broadcast(&slots_cv);
  pthread_mutex_unlock(&slots_mu);
  pthread_join(progress_tid, NULL);
  progress_on = 0;
}

int ms_dist_start_all_reduce(void *buf, int64_t count, int dtype, int op, int *handle) {
  if (started_or_fail("all_reduce") || bad_reduce_args(dtype, op)) return 1;
  if (count < 0 || count >= MS_DIST_MAX_COUNT)
    return fail("all_reduce: %lld elements in one started all-reduce, expected fewer than %d", (long long)count,
                MS_DIST_MAX_COUNT);
  if (progress_wanted && !progress_on && pthread_create(&progress_tid, NULL, progress_main, NULL) == 0) progress_on = 1;
  progress_wanted = 0;                   /* (tried once: without a thread, the caller's pace) */
  pthread_mutex_lock(&slots_mu);
  int slot = 0;
  while (slot < MS_DIST_MAX_PENDING && slots[slot].taken) slot++;
  int rc = MPI_SUCCESS;
  if (slot < MS_DIST_MAX_PENDING) {
    struct slot *sl = &slots[slot];
    rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, type_of(dtype), op_of(op), MPI_COMM_WORLD, &sl->req);
    if (rc == MPI_SUCCESS) {
      sl->taken = 1, sl->done = 0, sl->rc = MPI_SUCCESS, in_flight++;
      pthread_cond_broadcast(&slots_cv);
    }
  }
  pthread_mutex_unlock(&slots_mu);
  if (slot == MS_DIST_MAX_PENDING) return fail("all_reduce: %d all-reduces already in flight", MS_DIST_MAX_PENDING);
  if (rc != MPI_SUCCESS) return mpi_fail("all_reduce", rc);
  *handle = slot;
  return 0;
}

int ms_dist_progress(void) {
  if (started_or_fail("all_reduce")) return 1;
  if (progress_on) return 0;             /* the thread does it */
  pthread_mutex_lock(&slots_mu);
  test_slots();
  pthread_mutex_unlock(&slots_mu);
  return 0;                              /* (an MPI error is the slot's, reported by its wait) */
}

int ms_dist_wait(int handle) {
  if (started_or_fail("all_reduce")) return 1;
  pthread_mutex_lock(&slots_mu);
  if (handle < 0 || handle >= MS_DIST_MAX_PENDING || !slots[handle].taken) {
    pthread_mutex_unlock(&slots_mu);
    return fail("all_reduce: handle %d is not a started all-reduce", handle);
  }
  struct slot *sl = &slots[handle];
  double t0 = plugin_now();
  int late = 0;
  for (long spins = 0; !sl->done; spins++) {
    test_slots();                        /* the caller has nothing else to do: it drives MPI */
    if ((spins & 15) == 15) {            /* (and lets the progress thread, a rank on this core run) */
      pthread_mutex_unlock(&slots_mu);
      sched_yield();
      pthread_mutex_lock(&slots_mu);
      if (!sl->done && plugin_now() - t0 > timeout_s) { late = 1; break; }
    }
  }
  int rc = sl->rc;
  if (!late) sl->taken = 0;              /* (a timed-out request stays: MPI still owns its buffer) */
  pthread_mutex_unlock(&slots_mu);
  if (late) return timed_out("all_reduce");
  if (rc != MPI_SUCCESS) { broken = 1; return mpi_fail("all_reduce", rc); }
  return 0;
}

int ms_dist_broadcast(void *buf, int64_t nbytes, int root) {
  if (started_or_fail("broadcast")) return 1;
  for (int64_t done = 0; done < nbytes;) {
    int n = (int)(nbytes - done < MS_DIST_MAX_COUNT ? nbytes - done : MS_DIST_MAX_COUNT);
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
  if (nbytes > MS_DIST_MAX_COUNT) return fail("all_gather: %lld bytes per rank, expected at most 2^30", (long long)nbytes);
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
