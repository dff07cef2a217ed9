/* dist_nccl.c — moonstep's GPU collectives over NCCL (the plugin libmoonstep_nccl.so, built
 * with CUDA=1 when nccl.h is installed; lua/moonstep/dist.lua loads it for the first
 * collective on a CUDA tensor of a multi-rank job). One communicator over every rank, each
 * on its current device (ms.dist.init gives local rank i the GPU i). moonstep's kernels run
 * on the legacy default stream: the device is synchronised before NCCL reads the buffer;
 * NCCL runs on a stream of its own, polled (cudaStreamQuery, ncclCommGetAsyncError) until
 * done or the timeout, which aborts the communicator: an error, never a hang. */
#include <cuda_runtime.h>
#include <nccl.h>
#include <sched.h>
#include <string.h>
#include "plugin_error.h"
#include "moonstep_nccl.h"

static char err_buf[512];
static ncclComm_t comm = NULL;
static cudaStream_t stream = NULL;
static double timeout_s = 300;

const char *ms_nccl_error(void) { return err_buf; }
int ms_nccl_abi_version(void) { return MS_NCCL_ABI_VERSION; }

#define fail(...) plugin_fail(err_buf, sizeof err_buf, __VA_ARGS__)

int ms_nccl_unique_id(void *id) {
  ncclUniqueId u;
  ncclResult_t r = ncclGetUniqueId(&u);
  if (r != ncclSuccess) return fail("nccl unique id: %s", ncclGetErrorString(r));
  memcpy(id, &u, sizeof u < MS_NCCL_ID_BYTES ? sizeof u : MS_NCCL_ID_BYTES);
  return 0;
}

int ms_nccl_init(const void *id, int rank, int size, double timeout) {
  if (comm) return 0;
  if (timeout > 0) timeout_s = timeout;
  ncclUniqueId u;
  memcpy(&u, id, sizeof u < MS_NCCL_ID_BYTES ? sizeof u : MS_NCCL_ID_BYTES);
  cudaError_t ce = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  if (ce != cudaSuccess) return fail("nccl init: %s", cudaGetErrorString(ce));
  ncclResult_t r = ncclCommInitRank(&comm, size, u, rank);
  if (r != ncclSuccess) { comm = NULL; return fail("nccl init: %s", ncclGetErrorString(r)); }
  return 0;
}

/* Wait for the stream's NCCL work until the timeout (then the communicator is aborted). */
static int wait_done(const char *what) {
  double t0 = plugin_now();
  for (;;) {
    cudaError_t ce = cudaStreamQuery(stream);
    if (ce == cudaSuccess) return 0;
    if (ce != cudaErrorNotReady) return fail("%s: %s", what, cudaGetErrorString(ce));
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(comm, &async);
    if (async != ncclSuccess) return fail("%s: %s", what, ncclGetErrorString(async));
    if (plugin_now() - t0 > timeout_s) {
      ncclCommAbort(comm);
      comm = NULL;
      return fail("%s: no answer from the other ranks after %g s (a rank died, or stopped calling "
                  "the same collectives in the same order)", what, timeout_s);
    }
    sched_yield();
  }
}

static int ready(const char *what) {
  if (!comm) return fail("%s: the NCCL communicator is not initialised", what);
  cudaError_t ce = cudaDeviceSynchronize();   /* moonstep's kernels wrote the buffer */
  if (ce != cudaSuccess) return fail("%s: %s", what, cudaGetErrorString(ce));
  return 0;
}

int ms_nccl_all_reduce(void *buf, int64_t count, int dtype, int op) {
  if (ready("all_reduce")) return 1;
  if (dtype < 0 || dtype > 2 || op < 0 || op > 2) return fail("all_reduce: bad dtype %d or op %d", dtype, op);
  ncclDataType_t t = dtype == 0 ? ncclFloat32 : dtype == 1 ? ncclFloat64 : ncclInt64;
  ncclRedOp_t o = op == 0 ? ncclSum : op == 1 ? ncclMax : ncclMin;
  ncclResult_t r = ncclAllReduce(buf, buf, (size_t)count, t, o, comm, stream);
  if (r != ncclSuccess) return fail("all_reduce: %s", ncclGetErrorString(r));
  return wait_done("all_reduce");
}

int ms_nccl_broadcast(void *buf, int64_t nbytes, int root) {
  if (ready("broadcast")) return 1;
  ncclResult_t r = ncclBroadcast(buf, buf, (size_t)nbytes, ncclUint8, root, comm, stream);
  if (r != ncclSuccess) return fail("broadcast: %s", ncclGetErrorString(r));
  return wait_done("broadcast");
}
