// The memory side of the emulated device: "device" memory is host memory.
#include <stdio.h>
#include <stdlib.h>
#include "cuda_runtime.h"
#include "internal.h"
thread_local emu_dim threadIdx, blockIdx;
emu_dim blockDim, gridDim;
pthread_barrier_t emu_barrier;
int emu_grid_cap = 3;
extern "C" {
int ms_cuda_compiled(void) { return 1; }
int ms_cuda_device_count(void) { return 1; }
int ms_cuda_check(const char *fn) { (void)fn; return 0; }
int ms_cuda_synchronize(void) { return 0; }
int ms_cuda_malloc(void **p, int64_t nbytes) {
  *p = malloc(nbytes > 0 ? (size_t)nbytes : 1);
  if (!*p) return ms_fail("emu: out of memory (%lld bytes)", (long long)nbytes);
  memset(*p, 0xa5, nbytes > 0 ? (size_t)nbytes : 1);   // garbage, as cudaMalloc's
  return 0;
}
void ms_cuda_free(void *p) { free(p); }
int ms_cuda_memcpy(void *dst, const void *src, int64_t nbytes, int kind) {
  (void)kind;
  if (nbytes) memmove(dst, src, (size_t)nbytes);
  return 0;
}
int ms_cuda_workspace(void **p, int64_t nbytes) {
  static void *buf = NULL;
  static int64_t cap = 0;
  if (nbytes > cap) { free(buf); buf = malloc((size_t)nbytes); cap = nbytes; }
  *p = buf;
  return 0;
}
}
