/* moonstep_dist.h — the MPI plugin's ABI (libmoonstep_mpi.so, runtime/mpi/dist_mpi.c),
 * bound by lua/moonstep/dist.lua through the FFI (the text between the MS_CDEF markers).
 * Collectives over MPI_COMM_WORLD on host memory; each waits at most the timeout set by
 * ms_dist_init and returns nonzero with a message (ms_dist_error) on failure or timeout.
 * dtype: 0 float32, 1 float64, 2 int64. op: 0 sum, 1 max, 2 min.
 * The started all-reduce (bucketed gradients, optim/dist_buckets.lua): ms_dist_start_all_reduce
 * returns at once with a handle in *handle (at most MS_DIST_MAX_PENDING at a time, count
 * below 2^30); a progress thread moves them while the caller computes when MPI gives
 * MPI_THREAD_MULTIPLE (unless MOONSTEP_DIST_PROGRESS_THREAD=0), otherwise
 * ms_dist_progress does (Open MPI moves a nonblocking collective only inside MPI calls);
 * ms_dist_wait(handle) completes one (the timeout applies). buf must stay untouched until
 * then. */
#ifndef MOONSTEP_DIST_H
#define MOONSTEP_DIST_H
#include <stdint.h>
/* MS_CDEF_BEGIN */
enum { MS_DIST_ABI_VERSION = 2, MS_DIST_MAX_PENDING = 256, MS_DIST_MAX_COUNT = 1073741824 };
int ms_dist_abi_version(void);
int ms_dist_init(double timeout_s, int *rank, int *size);
int ms_dist_barrier(void);
int ms_dist_all_reduce(void *buf, int64_t count, int dtype, int op);
int ms_dist_start_all_reduce(void *buf, int64_t count, int dtype, int op, int *handle);
int ms_dist_progress(void);
int ms_dist_wait(int handle);
int ms_dist_broadcast(void *buf, int64_t nbytes, int root);
int ms_dist_all_gather(const void *send, void *recv, int64_t nbytes);
int ms_dist_abort(int code);
const char *ms_dist_error(void);
/* MS_CDEF_END */
#endif
