// nn.cu — the CUDA twins of runtime/nn.c (float32): softmax, im2col, col2im, max pooling.
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

struct Geom {
  int64_t n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
};

// One thread per cols element [k, (n*OH + oy)*OW + ox], k = (c*kh + i)*kw + j.
__global__ void im2col_kernel(Geom g, const float *x, float *cols, float pad) {
  int64_t L = g.oh * g.ow, NL = g.n * L, total = g.c * g.kh * g.kw * NL;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
       e += (int64_t)gridDim.x * blockDim.x) {
    int64_t col = e % NL, k = e / NL;
    int64_t n = col / L, l = col % L;
    int64_t c = k / (g.kh * g.kw), i = (k / g.kw) % g.kh, j = k % g.kw;
    int64_t y = (l / g.ow) * g.sh - g.ph + i, xx = (l % g.ow) * g.sw - g.pw + j;
    cols[e] = (y >= 0 && y < g.h && xx >= 0 && xx < g.w)
                  ? x[((n * g.c + c) * g.h + y) * g.w + xx] : pad;
  }
}

// One thread per input element: sum the cols entries that read it (no atomics, so
// the result is deterministic).
__global__ void col2im_kernel(Geom g, float *x, const float *cols) {
  int64_t L = g.oh * g.ow, NL = g.n * L, total = g.n * g.c * g.h * g.w;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
       e += (int64_t)gridDim.x * blockDim.x) {
    int64_t xx = e % g.w, y = (e / g.w) % g.h, p = e / (g.w * g.h);
    int64_t n = p / g.c, c = p % g.c;
    float s = 0;
    for (int64_t i = 0; i < g.kh; i++) {
      int64_t ty = y + g.ph - i;  // = oy * sh
      if (ty < 0 || ty % g.sh) continue;
      int64_t oy = ty / g.sh;
      if (oy >= g.oh) continue;
      for (int64_t j = 0; j < g.kw; j++) {
        int64_t tx = xx + g.pw - j;
        if (tx < 0 || tx % g.sw) continue;
        int64_t ox = tx / g.sw;
        if (ox >= g.ow) continue;
        s += cols[((c * g.kh + i) * g.kw + j) * NL + n * L + oy * g.ow + ox];
      }
    }
    x[e] = s;
  }
}

// One thread per output: the first maximum of its window, and where it was.
__global__ void maxpool_kernel(Geom g, const float *x, float *out, int64_t *argmax) {
  int64_t total = g.n * g.c * g.oh * g.ow;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
       e += (int64_t)gridDim.x * blockDim.x) {
    int64_t ox = e % g.ow, oy = (e / g.ow) % g.oh, p = e / (g.ow * g.oh);
    const float *xp = x + p * g.h * g.w;
    float best = 0;
    int64_t where = -1;
    for (int64_t i = 0; i < g.kh; i++) {
      int64_t y = oy * g.sh - g.ph + i;
      if (y < 0 || y >= g.h) continue;
      for (int64_t j = 0; j < g.kw; j++) {
        int64_t xx = ox * g.sw - g.pw + j;
        if (xx < 0 || xx >= g.w) continue;
        float v = xp[y * g.w + xx];
        if (where < 0 || (best == best && !(v <= best))) best = v, where = y * g.w + xx;
      }
    }
    out[e] = best;
    argmax[e] = where;
  }
}

// One thread per output: add its gradient at its argmax (atomics: windows may overlap).
__global__ void maxpool_backward_kernel(float *gin, const float *gout, const int64_t *argmax,
                                        int64_t planes, int64_t hw, int64_t ohw) {
  int64_t total = planes * ohw;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
       e += (int64_t)gridDim.x * blockDim.x) {
    int64_t a = argmax[e];
    if (a >= 0 && a < hw) atomicAdd(&gin[(e / ohw) * hw + a], gout[e]);
  }
}

extern "C" {

int ms_cuda_softmax(void *y, const void *x, int64_t rows, int64_t classes, int log_) {
  int grid = (int)(rows < 65535 * 8 ? rows : 65535 * 8);
  softmax_kernel<<<grid, MS_BLOCK>>>((float *)y, (const float *)x, rows, classes, log_);
  MS_CUDA_LAUNCHED(log_ ? "log_softmax" : "softmax");
  return 0;
}

int ms_cuda_im2col(const int64_t *geom, const void *x, void *cols, double pad_value) {
  Geom g = *(const Geom *)geom;
  im2col_kernel<<<ms_grid(g.n * g.c * g.kh * g.kw * g.oh * g.ow), MS_BLOCK>>>(
      g, (const float *)x, (float *)cols, (float)pad_value);
  MS_CUDA_LAUNCHED("im2col");
  return 0;
}

int ms_cuda_maxpool2d(const int64_t *geom, const void *x, void *out, int64_t *argmax) {
  Geom g = *(const Geom *)geom;
  maxpool_kernel<<<ms_grid(g.n * g.c * g.oh * g.ow), MS_BLOCK>>>(g, (const float *)x, (float *)out, argmax);
  MS_CUDA_LAUNCHED("maxpool2d");
  return 0;
}

int ms_cuda_maxpool2d_backward(void *gin, const void *gout, const int64_t *argmax,
                               int64_t planes, int64_t hw, int64_t ohw) {
  MS_CUDA_TRY("maxpool2d_backward", cudaMemset(gin, 0, planes * hw * sizeof(float)));
  maxpool_backward_kernel<<<ms_grid(planes * ohw), MS_BLOCK>>>((float *)gin, (const float *)gout,
                                                               argmax, planes, hw, ohw);
  MS_CUDA_LAUNCHED("maxpool2d_backward");
  return 0;
}

int ms_cuda_col2im(const int64_t *geom, void *x, const void *cols) {
  Geom g = *(const Geom *)geom;
  col2im_kernel<<<ms_grid(g.n * g.c * g.h * g.w), MS_BLOCK>>>(g, (float *)x, (const float *)cols);
  MS_CUDA_LAUNCHED("col2im");
  return 0;
}

}  // extern "C"
