/* dist_mpi.c — moonstep's collectives over Open MPI (the plugin libmoonstep_mpi.so,
 * built with mpicc when it is installed; lua/moonstep/dist.lua loads it only when the
 * process was started by an MPI launcher). Every collective is the nonblocking MPI call
 * followed by MPI_Test polling until it completes or the timeout passes: a rank that
 * died or stopped calling gives an error on the others, never a hang. Errors return
 * nonzero with the message in ms_dist_error(); MPI's own errors are returned too
 * (MPI_ERRORS_RETURN), not fatal. MPI is finalized at process exit (atexit). */
#include <mpi.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include "plugin_error.h"
#include "moonstep_dist.h"

static char err_buf[512];
static double timeout_s = 300;
static int started = 0;
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

/* At exit. After a failed collective MPI_Finalize would wait for the missing rank
 * forever: the process leaves without it (mpirun reports that, and ends the job). */
static void finalize_at_exit(void) {
  int done = 0;
  MPI_Finalized(&done);
  if (!done && !broken) MPI_Finalize();
}

int ms_dist_init(double timeout, int *rank, int *size) {
  if (timeout > 0) timeout_s = timeout;
  if (!started) {
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
      if (rc != MPI_SUCCESS) return fail("MPI_Init_thread failed (code %d)", rc);
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
  return started ? 0 : fail("%s: ms.dist is not initialised", what);
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

/* Started all-reduces: a slot is taken from its start until its ms_dist_wait (its request
 * may complete earlier, in ms_dist_progress: MPI then sets it to MPI_REQUEST_NULL). */
static MPI_Request pending[MS_DIST_MAX_PENDING];
static unsigned char taken[MS_DIST_MAX_PENDING];

int ms_dist_start_all_reduce(void *buf, int64_t count, int dtype, int op, int *handle) {
  if (started_or_fail("all_reduce")) return 1;
  if (dtype < 0 || dtype > 2 || op < 0 || op > 2) return fail("all_reduce: bad dtype %d or op %d", dtype, op);
  if (count < 0 || count >= (1 << 30)) return fail("all_reduce: %lld elements in one started all-reduce, expected fewer than 2^30", (long long)count);
  int slot = 0;
  while (slot < MS_DIST_MAX_PENDING && taken[slot]) slot++;
  if (slot == MS_DIST_MAX_PENDING) return fail("all_reduce: %d all-reduces already in flight", MS_DIST_MAX_PENDING);
  MPI_Op mop = op == 0 ? MPI_SUM : op == 1 ? MPI_MAX : MPI_MIN;
  int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, type_of(dtype), mop, MPI_COMM_WORLD, &pending[slot]);
  if (rc != MPI_SUCCESS) return mpi_fail("all_reduce", rc);
  taken[slot] = 1;
  *handle = slot;
  return 0;
}

int ms_dist_progress(void) {
  if (started_or_fail("all_reduce")) return 1;
  for (int i = 0; i < MS_DIST_MAX_PENDING; i++) {
    if (!taken[i] || pending[i] == MPI_REQUEST_NULL) continue;
    int done = 0;   /* a completed request becomes MPI_REQUEST_NULL; ms_dist_wait then returns at once */
    int rc = MPI_Test(&pending[i], &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) { broken = 1; return mpi_fail("all_reduce", rc); }
  }
  return 0;
}

int ms_dist_wait(int handle) {
  if (started_or_fail("all_reduce")) return 1;
  if (handle < 0 || handle >= MS_DIST_MAX_PENDING || !taken[handle])
    return fail("all_reduce: handle %d is not a started all-reduce", handle);
  taken[handle] = 0;
  if (pending[handle] == MPI_REQUEST_NULL) return 0;   /* completed in ms_dist_progress */
  return wait_for(&pending[handle], "all_reduce");
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
