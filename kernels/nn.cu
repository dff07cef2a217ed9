// nn.cu — the CUDA twin of runtime/nn.c (float32): softmax and the plain cross-entropy.
// Convolution lowering and pooling are in conv_pool.cu.
#include "common.cuh"
#include "ce_rule.h"

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

// Block reduction over MS_BLOCK threads (sum or max), the result in every thread.
__device__ __forceinline__ double block_reduce(double v, double *sh, bool is_max) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w)
      sh[threadIdx.x] = is_max ? fmax(sh[threadIdx.x], sh[threadIdx.x + w])
                               : sh[threadIdx.x] + sh[threadIdx.x + w];
    __syncthreads();
  }
  double r = sh[0];
  __syncthreads();
  return r;
}

// Cross-entropy, plain case (runtime/nn.c's rule): one block per row writes the softmax
// prob and the row's loss; a target that is not a class sets *bad to the smallest such
// row and the row is skipped.
__global__ void ce_forward_kernel(float *prob, float *losses, const float *x, const int64_t *t,
                                  int64_t rows, int64_t classes, int64_t base, double e,
                                  unsigned long long *bad) {
  __shared__ double sh[MS_BLOCK];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t tr = ms_index_pos(t[r], base, classes);
    if (tr < 0) {
      if (threadIdx.x == 0) atomicMin(bad, (unsigned long long)r);
      continue;
    }
    const float *xr = x + r * classes;
    float *pr = prob + r * classes;
    float mx = -INFINITY;
    for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) mx = fmaxf(mx, xr[c]);
    mx = (float)block_reduce(mx, sh, true);
    double s = 0, sx = 0;
    for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) {
      float v = expf(xr[c] - mx);
      pr[c] = v;
      s += v;
      sx += xr[c];
    }
    double sum = block_reduce(s, sh, false);
    if (e > 0) sx = block_reduce(sx, sh, false);
    double inv = 1 / sum;
    for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) pr[c] = (float)(pr[c] * inv);
    if (threadIdx.x == 0)
      losses[r] = (float)ms_ce_loss((double)mx + log(sum), (double)xr[tr], sx, e, (double)classes);
  }
}

// The sum of losses [rows] in float64 into *total, one block in a fixed order (the same
// value every run).
__global__ void ce_total_kernel(const float *losses, int64_t rows, double *total) {
  __shared__ double sh[MS_BLOCK];
  double s = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) s += losses[r];
  s = block_reduce(s, sh, false);
  if (threadIdx.x == 0) *total = s;
}

__global__ void ce_backward_kernel(float *g, const float *prob, const int64_t *t, int64_t rows,
                                   int64_t classes, int64_t base, double e, double scale,
                                   const float *row_scale) {
  int64_t total = rows * classes;
  double off = e / (double)classes;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = i / classes, c = i % classes;
    double s = row_scale ? scale * (double)row_scale[r] : scale;
    double hit = c == ms_index_pos(t[r], base, classes) ? 1 - e : 0;
    g[i] = (float)ms_ce_grad((double)prob[i], off, hit, s);
  }
}

extern "C" {

int ms_cuda_softmax(void *y, const void *x, int64_t rows, int64_t classes, int log_) {
  int grid = (int)(rows < 65535 * 8 ? rows : 65535 * 8);
  softmax_kernel<<<grid, MS_BLOCK>>>((float *)y, (const float *)x, rows, classes, log_);
  MS_CUDA_LAUNCHED(log_ ? "log_softmax" : "softmax");
  return 0;
}

int ms_cuda_cross_entropy(void *prob, void *losses, const void *x, const int64_t *target,
                          int64_t rows, int64_t classes, int64_t base, double smoothing,
                          double *total, int64_t *bad) {
  const char *fn = "cross_entropy";
  // workspace: the first bad row (all ones: none), then the total; one read back for both
  struct Result {
    unsigned long long first;
    double total;
  };
  void *ws;
  MS_TRY(ms_cuda_workspace(&ws, sizeof(Result)));
  Result *dev = (Result *)ws;
  MS_CUDA_TRY(fn, cudaMemset(&dev->first, 0xff, sizeof dev->first));
  int grid = (int)(rows < 65535 * 8 ? rows : 65535 * 8);
  ce_forward_kernel<<<grid, MS_BLOCK>>>((float *)prob, (float *)losses, (const float *)x,
                                        target, rows, classes, base, smoothing, &dev->first);
  if (total) ce_total_kernel<<<1, MS_BLOCK>>>((const float *)losses, rows, &dev->total);
  MS_CUDA_LAUNCHED(fn);
  Result h;
  MS_CUDA_TRY(fn, cudaMemcpy(&h, dev, sizeof h, cudaMemcpyDeviceToHost));
  *bad = h.first == ~0ULL ? -1 : (int64_t)h.first;   // runtime/nn.c names a bad target
  if (total && *bad < 0) *total = h.total;
  return 0;
}

int ms_cuda_cross_entropy_backward(void *g, const void *prob, const int64_t *target,
                                   int64_t rows, int64_t classes, int64_t base,
                                   double smoothing, double scale, const void *row_scale) {
  // (targets were checked by the forward; one changed since then is skipped, no crash)
  ce_backward_kernel<<<ms_grid(rows * classes), MS_BLOCK>>>(
      (float *)g, (const float *)prob, target, rows, classes, base, smoothing, scale,
      (const float *)row_scale);
  MS_CUDA_LAUNCHED("cross_entropy_backward");
  return 0;
}

}  // extern "C"
