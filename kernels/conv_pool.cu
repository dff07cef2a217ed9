// conv_pool.cu — the CUDA twins (float32) of runtime/conv.c and runtime/pool.c:
// im2col, col2im, max and average pooling. The per-element rules are window.h's,
// shared with the CPU loops; the geometry arrives checked, as an ms_geom.
#include "common.cuh"
#include "window.h"

// One thread per cols element [k, n*L + l], k = (c*kh + i)*kw + j.
__global__ void im2col_kernel(ms_geom g, const float *x, float *cols, float pad) {
  int64_t L = g.oh * g.ow, NL = g.n * L, total = g.c * g.kh * g.kw * NL;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
       e += (int64_t)gridDim.x * blockDim.x) {
    int64_t col = e % NL, k = e / NL;
    int64_t n = col / L, c = k / (g.kh * g.kw);
    int64_t at = ms_im2col_source(&g, k, col % L);
    cols[e] = at >= 0 ? x[(n * g.c + c) * g.h * g.w + at] : pad;
  }
}

// One thread per input element: sum the cols entries that read it (no atomics, so
// the result is deterministic).
__global__ void col2im_kernel(ms_geom g, float *x, const float *cols) {
  int64_t L = g.oh * g.ow, NL = g.n * L, total = g.n * g.c * g.h * g.w;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
       e += (int64_t)gridDim.x * blockDim.x) {
    int64_t xx = e % g.w, y = (e / g.w) % g.h, p = e / (g.w * g.h);
    int64_t n = p / g.c, c = p % g.c;
    float s = 0;
    for (int64_t i = 0; i < g.kh; i++) {
      int64_t oy = ms_tap_output(y, i, g.sh, g.pt, g.dh, g.oh);
      if (oy < 0) continue;
      for (int64_t j = 0; j < g.kw; j++) {
        int64_t ox = ms_tap_output(xx, j, g.sw, g.pl, g.dw, g.ow);
        if (ox < 0) continue;
        s += cols[((c * g.kh + i) * g.kw + j) * NL + n * L + oy * g.ow + ox];
      }
    }
    x[e] = s;
  }
}

// One thread per output: the first maximum of its window, and where it was.
__global__ void maxpool_kernel(ms_geom g, const float *x, float *out, int64_t *argmax) {
  int64_t total = g.n * g.c * g.oh * g.ow;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
       e += (int64_t)gridDim.x * blockDim.x) {
    int64_t ox = e % g.ow, oy = (e / g.ow) % g.oh, p = e / (g.ow * g.oh);
    out[e] = ms_maxpool_at_float(&g, x + p * g.h * g.w, oy, ox, &argmax[e]);
  }
}

// One thread per output: add its gradient at its argmax (atomics: windows may overlap;
// -1: a window without input elements).
__global__ void maxpool_backward_kernel(float *gin, const float *gout, const int64_t *argmax,
                                        int64_t planes, int64_t hw, int64_t ohw) {
  int64_t total = planes * ohw;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
       e += (int64_t)gridDim.x * blockDim.x) {
    int64_t a = argmax[e];
    if (a >= 0 && a < hw) atomicAdd(&gin[(e / ohw) * hw + a], gout[e]);
  }
}

// One thread per output: its window's sum over the divisor.
__global__ void avgpool_kernel(ms_geom g, const float *x, float *out) {
  int64_t total = g.n * g.c * g.oh * g.ow;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
       e += (int64_t)gridDim.x * blockDim.x) {
    int64_t ox = e % g.ow, oy = (e / g.ow) % g.oh, p = e / (g.ow * g.oh);
    const float *xp = x + p * g.h * g.w;
    int64_t y0, y1, x0, x1;
    int64_t div = ms_avg_window(&g, oy, ox, &y0, &y1, &x0, &x1);
    float s = 0;
    for (int64_t y = y0; y < y1; y++)
      for (int64_t xx = x0; xx < x1; xx++) s += xp[y * g.w + xx];
    out[e] = div ? s / (float)div : 0.0f;
  }
}

// One thread per input element: the gradients of the windows that hold it, each over
// its window's divisor (a gather: deterministic, no atomics).
__global__ void avgpool_backward_kernel(ms_geom g, float *gin, const float *gout) {
  int64_t total = g.n * g.c * g.h * g.w;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
       e += (int64_t)gridDim.x * blockDim.x) {
    int64_t xx = e % g.w, y = (e / g.w) % g.h, p = e / (g.w * g.h);
    const float *gp = gout + p * g.oh * g.ow;
    float s = 0;
    for (int64_t i = 0; i < g.kh; i++) {
      int64_t oy = ms_tap_output(y, i, g.sh, g.pt, 1, g.oh);
      if (oy < 0) continue;
      for (int64_t j = 0; j < g.kw; j++) {
        int64_t ox = ms_tap_output(xx, j, g.sw, g.pl, 1, g.ow);
        if (ox < 0) continue;
        int64_t y0, y1, x0, x1;
        int64_t div = ms_avg_window(&g, oy, ox, &y0, &y1, &x0, &x1);
        if (div) s += gp[oy * g.ow + ox] / (float)div;
      }
    }
    gin[e] = s;
  }
}

extern "C" {

int ms_cuda_im2col(const int64_t *geom, const void *x, void *cols, double pad_value) {
  ms_geom g = *(const ms_geom *)geom;
  im2col_kernel<<<ms_grid(g.n * g.c * g.kh * g.kw * g.oh * g.ow), MS_BLOCK>>>(
      g, (const float *)x, (float *)cols, (float)pad_value);
  MS_CUDA_LAUNCHED("im2col");
  return 0;
}

int ms_cuda_col2im(const int64_t *geom, void *x, const void *cols) {
  ms_geom g = *(const ms_geom *)geom;
  col2im_kernel<<<ms_grid(g.n * g.c * g.h * g.w), MS_BLOCK>>>(g, (float *)x, (const float *)cols);
  MS_CUDA_LAUNCHED("col2im");
  return 0;
}

int ms_cuda_maxpool2d(const int64_t *geom, const void *x, void *out, int64_t *argmax) {
  ms_geom g = *(const ms_geom *)geom;
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

int ms_cuda_avgpool2d(const int64_t *geom, const void *x, void *out) {
  ms_geom g = *(const ms_geom *)geom;
  avgpool_kernel<<<ms_grid(g.n * g.c * g.oh * g.ow), MS_BLOCK>>>(g, (const float *)x, (float *)out);
  MS_CUDA_LAUNCHED("avgpool2d");
  return 0;
}

int ms_cuda_avgpool2d_backward(const int64_t *geom, void *gin, const void *gout) {
  ms_geom g = *(const ms_geom *)geom;
  avgpool_backward_kernel<<<ms_grid(g.n * g.c * g.h * g.w), MS_BLOCK>>>(g, (float *)gin,
                                                                        (const float *)gout);
  MS_CUDA_LAUNCHED("avgpool2d_backward");
  return 0;
}

}  // extern "C"
