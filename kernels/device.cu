// device.cu — the CUDA side of runtime/tensor.c: devices, memory, copies, fills.
//
// A library built with CUDA must still run on a machine without a GPU or driver:
// everything here first asks ms_cuda_device_count(), which is 0 there.
#include "common.cuh"

extern "C" {

int ms_cuda_compiled(void) { return 1; }

int ms_cuda_device_count(void) {
  static int count = -1;  // probed once: the answer does not change within a process
  if (count < 0) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) n = 0;
    cudaGetLastError();  // clear the sticky "no driver" error
    count = n;
  }
  return count;
}

int ms_cuda_check(const char *fn) {
  if (ms_cuda_device_count() > 0) return 0;
  return ms_fail("%s: CUDA is not available: no usable GPU or driver on this machine "
                 "(ms.cuda.is_available() is false)", fn);
}

int ms_cuda_synchronize(void) {
  MS_TRY(ms_cuda_check("cuda.synchronize"));
  MS_CUDA_TRY("cuda.synchronize", cudaDeviceSynchronize());
  return 0;
}

int ms_cuda_malloc(void **p, int64_t nbytes) {
  MS_TRY(ms_cuda_check("cuda alloc"));
  cudaError_t e = cudaMalloc(p, (size_t)nbytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return ms_fail("out of memory: cannot allocate %lld bytes on cuda (%s)",
                   (long long)nbytes, cudaGetErrorString(e));
  }
  return 0;
}

void ms_cuda_free(void *p) {
  if (p) cudaFree(p);
}

int ms_cuda_memcpy(void *dst, const void *src, int64_t nbytes, int kind) {
  if (nbytes == 0) return 0;
  cudaMemcpyKind k = kind == MS_H2D ? cudaMemcpyHostToDevice
                   : kind == MS_D2H ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
  MS_CUDA_TRY("cuda memcpy", cudaMemcpy(dst, src, (size_t)nbytes, k));
  return 0;
}

int ms_cuda_workspace(void **p, int64_t nbytes) {
  static void *buf = NULL;
  static int64_t cap = 0;
  if (nbytes > cap) {
    if (buf) cudaFree(buf);
    buf = NULL, cap = 0;
    MS_TRY(ms_cuda_malloc(&buf, nbytes));
    cap = nbytes;
  }
  *p = buf;
  return 0;
}

}  // extern "C"

// ---- copy with dtype conversion, fill, arange ---------------------------------------
template <typename TD, typename TS>
__global__ void copy_kernel(ms_iter it) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < it.count;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[2];
    ms_iter_offsets<2>(it, i, off);
    ((TD *)it.data[0])[off[0]] = (TD)((const TS *)it.data[1])[off[1]];
  }
}

template <typename TD>
static void launch_copy_from(const ms_iter &it) {
  int g = ms_grid(it.count);
  switch (it.dtype[1]) {
    case MS_FLOAT32: copy_kernel<TD, float><<<g, MS_BLOCK>>>(it); break;
    case MS_FLOAT64: copy_kernel<TD, double><<<g, MS_BLOCK>>>(it); break;
    case MS_INT64: copy_kernel<TD, int64_t><<<g, MS_BLOCK>>>(it); break;
    default: copy_kernel<TD, uint8_t><<<g, MS_BLOCK>>>(it); break;
  }
}

// out[i] = start + (row-major element number) * step; value for fill is step = 0.
template <typename T>
__global__ void arange_kernel(ms_iter it, double start, double step) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < it.count;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[1];
    ms_iter_offsets<1>(it, i, off);
    ((T *)it.data[0])[off[0]] = (T)(start + (double)i * step);
  }
}

static void launch_arange(const ms_iter &it, double start, double step) {
  int g = ms_grid(it.count);
  switch (it.dtype[0]) {
    case MS_FLOAT32: arange_kernel<float><<<g, MS_BLOCK>>>(it, start, step); break;
    case MS_FLOAT64: arange_kernel<double><<<g, MS_BLOCK>>>(it, start, step); break;
    case MS_INT64: arange_kernel<int64_t><<<g, MS_BLOCK>>>(it, start, step); break;
    default: arange_kernel<uint8_t><<<g, MS_BLOCK>>>(it, start, step); break;
  }
}

extern "C" {

int ms_cuda_copy(const ms_iter *it) {
  switch (it->dtype[0]) {
    case MS_FLOAT32: launch_copy_from<float>(*it); break;
    case MS_FLOAT64: launch_copy_from<double>(*it); break;
    case MS_INT64: launch_copy_from<int64_t>(*it); break;
    default: launch_copy_from<uint8_t>(*it); break;
  }
  MS_CUDA_LAUNCHED("copy_");
  return 0;
}

int ms_cuda_fill(const ms_iter *it, double value) {
  launch_arange(*it, value, 0.0);
  MS_CUDA_LAUNCHED("fill_");
  return 0;
}

int ms_cuda_arange(const ms_iter *it, double start, double step) {
  launch_arange(*it, start, step);
  MS_CUDA_LAUNCHED("arange");
  return 0;
}

}  // extern "C"
