/* moonstep_dist.h — the MPI plugin's ABI (libmoonstep_mpi.so, runtime/mpi/dist_mpi.c),
 * bound by lua/moonstep/dist.lua through the FFI (the text between the MS_CDEF markers).
 * Collectives over MPI_COMM_WORLD on host memory; each waits at most the timeout set by
 * ms_dist_init and returns nonzero with a message (ms_dist_error) on failure or timeout.
 * dtype: 0 float32, 1 float64, 2 int64. op: 0 sum, 1 max, 2 min. */
#ifndef MOONSTEP_DIST_H
#define MOONSTEP_DIST_H
#include <stdint.h>
/* MS_CDEF_BEGIN */
enum { MS_DIST_ABI_VERSION = 1 };
int ms_dist_abi_version(void);
int ms_dist_init(double timeout_s, int *rank, int *size);
int ms_dist_barrier(void);
int ms_dist_all_reduce(void *buf, int64_t count, int dtype, int op);
int ms_dist_broadcast(void *buf, int64_t nbytes, int root);
int ms_dist_all_gather(const void *send, void *recv, int64_t nbytes);
int ms_dist_abort(int code);
const char *ms_dist_error(void);
/* MS_CDEF_END */
#endif
