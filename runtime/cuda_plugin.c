/* cuda_plugin.c — the C part of the CUDA plugin libmoonstep_cuda.so (a CUDA build only;
 * the kernels/ .cu files are the rest): what runtime/cuda_loader.c asks of a plugin
 * before it calls one (cuda_plugin.h). */
#include <stdio.h>
#include <cuda_runtime_api.h>
#include "cuda_plugin.h"

const char *ms_cuda_plugin_signature(void) { return MS_CUDA_PLUGIN_SIGNATURE; }

uint64_t ms_cuda_plugin_sizes(void) { return ms_cuda_plugin_sizes_here(); }

/* Asks the CUDA runtime afresh (device.cu's ms_cuda_device_count keeps its first answer,
 * which is the same one: the runtime does not change its mind within a process). */
const char *ms_cuda_plugin_why(void) {
  static char buf[256];
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    snprintf(buf, sizeof buf, "no usable GPU (cudaGetDeviceCount: %s)", cudaGetErrorString(e));
    cudaGetLastError();  /* clear the sticky error */
    return buf;
  }
  return n > 0 ? "" : "no usable GPU (the CUDA driver reports no device)";
}
