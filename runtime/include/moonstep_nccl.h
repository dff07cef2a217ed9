/* moonstep_nccl.h — the NCCL plugin's ABI (libmoonstep_nccl.so, runtime/mpi/dist_nccl.c,
 * built with CUDA=1 when NCCL is installed), bound by lua/moonstep/dist.lua through the FFI.
 * All-reduce and broadcast of device memory across the ranks' GPUs (one GPU per rank); the
 * communicator's unique id travels over MPI (ms_dist_broadcast). Each call waits at most
 * the timeout and returns nonzero with a message (ms_nccl_error) on failure.
 * dtype: 0 float32, 1 float64, 2 int64. op: 0 sum, 1 max, 2 min. */
#ifndef MOONSTEP_NCCL_H
#define MOONSTEP_NCCL_H
#include <stdint.h>
/* MS_CDEF_BEGIN */
enum { MS_NCCL_ABI_VERSION = 1, MS_NCCL_ID_BYTES = 128 };
int ms_nccl_abi_version(void);
int ms_nccl_unique_id(void *id);
int ms_nccl_init(const void *id, int rank, int size, double timeout_s);
int ms_nccl_all_reduce(void *buf, int64_t count, int dtype, int op);
int ms_nccl_broadcast(void *buf, int64_t nbytes, int root);
const char *ms_nccl_error(void);
/* MS_CDEF_END */
#endif
