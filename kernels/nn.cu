// nn.cu — the CUDA twin of runtime/nn.c (float32): softmax. Convolution lowering and
// pooling are in conv_pool.cu.
#include "common.cuh"

// One block per row of [rows, classes]: block max, block sum of exp, then write.
__global__ void softmax_kernel(float *y, const float *x, int64_t rows, int64_t classes, int log_) {
  __shared__ float sh[MS_BLOCK];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + r * classes;
    float *yr = y + r * classes;
    float mx = -INFINITY;
    for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) mx = fmaxf(mx, xr[c]);
    sh[threadIdx.x] = mx;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
      if (threadIdx.x < w) sh[threadIdx.x] = fmaxf(sh[threadIdx.x], sh[threadIdx.x + w]);
      __syncthreads();
    }
    mx = sh[0];
    __syncthreads();
    float s = 0;
    for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) s += expf(xr[c] - mx);
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
      if (threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
      __syncthreads();
    }
    float sum = sh[0];
    __syncthreads();
    float lse = logf(sum) + mx;
    for (int64_t c = threadIdx.x; c < classes; c += blockDim.x)
      yr[c] = log_ ? xr[c] - lse : expf(xr[c] - mx) / sum;
  }
}

extern "C" {

int ms_cuda_softmax(void *y, const void *x, int64_t rows, int64_t classes, int log_) {
  int grid = (int)(rows < 65535 * 8 ? rows : 65535 * 8);
  softmax_kernel<<<grid, MS_BLOCK>>>((float *)y, (const float *)x, rows, classes, log_);
  MS_CUDA_LAUNCHED(log_ ? "log_softmax" : "softmax");
  return 0;
}

}  // extern "C"
