// reduce.cu — the CUDA twin of runtime/reduce.c.
//
// x is contiguous float32 viewed as [outer, size, inner]; each of the outer*inner
// outputs reduces `size` elements. Stage A: block (j, s) reduces slice s of output j
// into a float64 partial; stage B: one thread per output combines its slices in
// order and finishes (mean, norm root, variance divisor, arg index + base).
// VAR runs a SUM pass first for the means.
#include <math.h>
#include "common.cuh"

struct Partial {
  double acc;     // sum / sum of |x|^p / best value
  int64_t index;  // position of the best value (arg ops), within the reduced dim
  int64_t count;
};

// Max/min with a total order: NaN above everything, ties to the smaller index, so
// the result matches the CPU's "first occurrence" whatever the combination order.
__device__ __forceinline__ bool better(int op, double a, int64_t ia, double b, int64_t ib) {
  bool an = a != a, bn = b != b;
  if (an || bn) return an && (!bn || ia < ib);
  bool is_max = op == MS_RMAX || op == MS_ARGMAX;
  if (a == b) return ia < ib;
  return is_max ? a > b : a < b;
}

__device__ __forceinline__ void combine(int op, double p, Partial &a, const Partial &b) {
  if (b.count == 0) return;
  if (a.count == 0) { a = b; return; }
  switch (op) {
    case MS_RMAX: case MS_ARGMAX: case MS_RMIN: case MS_ARGMIN:
      if (better(op, b.acc, b.index, a.acc, a.index)) a.acc = b.acc, a.index = b.index;
      break;
    case MS_NORM:
      if (isinf(p)) { if (b.acc > a.acc || b.acc != b.acc) a.acc = b.acc; }
      else a.acc += b.acc;
      break;
    default: a.acc += b.acc;
  }
  a.count += b.count;
}

__device__ __forceinline__ void accumulate(int op, double p, double mean, Partial &r, double v,
                                           int64_t k) {
  Partial e;
  e.count = 1, e.index = k;
  switch (op) {
    case MS_SUM: case MS_MEAN: e.acc = v; break;
    case MS_VAR: e.acc = (v - mean) * (v - mean); break;
    case MS_NORM:
      e.acc = p == 2 ? v * v : p == 1 ? fabs(v) : isinf(p) ? fabs(v)
            : p == 0 ? (double)(v != 0) : pow(fabs(v), p);
      break;
    default: e.acc = v;
  }
  combine(op, p, r, e);
}

__global__ void reduce_partials(const float *x, int64_t nout, int64_t size, int64_t inner,
                                int64_t slices, int op, double p, const double *means,
                                Partial *partials) {
  __shared__ Partial sh[MS_BLOCK];
  int64_t chunk = (size + slices - 1) / slices;
  for (int64_t b = blockIdx.x; b < nout * slices; b += gridDim.x) {
    int64_t j = b / slices, s = b % slices;
    int64_t o = j / inner, i = j % inner;
    int64_t k0 = s * chunk, k1 = k0 + chunk < size ? k0 + chunk : size;
    double mean = means ? means[j] : 0.0;
    Partial r = {0.0, 0, 0};
    for (int64_t k = k0 + threadIdx.x; k < k1; k += blockDim.x)
      accumulate(op, p, mean, r, (double)x[(o * size + k) * inner + i], k);
    sh[threadIdx.x] = r;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
      if (threadIdx.x < w) combine(op, p, sh[threadIdx.x], sh[threadIdx.x + w]);
      __syncthreads();
    }
    if (threadIdx.x == 0) partials[b] = sh[0];
    __syncthreads();
  }
}

// One thread per output: combine slices, finish, write float / int64 / double.
__global__ void reduce_finish(const Partial *partials, int64_t nout, int64_t size,
                              int64_t slices, int op, double p, void *out, int out_dtype,
                              int64_t base) {
  for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < nout;
       j += (int64_t)gridDim.x * blockDim.x) {
    Partial r = {0.0, 0, 0};
    for (int64_t s = 0; s < slices; s++) combine(op, p, r, partials[j * slices + s]);
    double v = r.acc;
    switch (op) {
      case MS_MEAN: v = r.acc / (double)size; break;
      case MS_ARGMAX: case MS_ARGMIN: v = (double)r.index; break;
      case MS_NORM:
        if (p == 2) v = sqrt(r.acc);
        else if (!(p == 1 || p == 0 || isinf(p))) v = pow(r.acc, 1.0 / p);
        break;
      case MS_VAR: v = size - p > 0 ? r.acc / ((double)size - p) : NAN; break;
      default: break;
    }
    if (out_dtype == MS_INT64) ((int64_t *)out)[j] = (int64_t)v + base;
    else if (out_dtype == MS_FLOAT32) ((float *)out)[j] = (float)v;
    else ((double *)out)[j] = v;
  }
}

extern "C" int ms_cuda_reduce(const float *x, int64_t outer, int64_t size, int64_t inner,
                              int op, double param, double *out_host_all, void *out_dev,
                              int32_t out_dtype, int64_t base) {
  const char *fn = "reduce";
  int64_t nout = outer * inner;
  int64_t slices = nout >= 1024 ? 1 : (size + 16383) / 16384;
  if (slices > 1024) slices = 1024;
  if (slices < 1) slices = 1;
  // workspace: partials, then the means (VAR), then one double for a host result
  void *ws;
  int64_t pbytes = nout * slices * (int64_t)sizeof(Partial);
  MS_TRY(ms_cuda_workspace(&ws, pbytes + 2 * nout * (int64_t)sizeof(double) + 64));
  Partial *partials = (Partial *)ws;
  double *means = (double *)((char *)ws + pbytes);
  double *result = means + nout;
  int grid_a = (int)(nout * slices < 65535 * 16 ? nout * slices : 65535 * 16);
  const double *mean_arg = NULL;
  if (op == MS_VAR) {  // means first
    reduce_partials<<<grid_a, MS_BLOCK>>>(x, nout, size, inner, slices, MS_SUM, 0.0, NULL, partials);
    reduce_finish<<<ms_grid(nout), MS_BLOCK>>>(partials, nout, size, slices, MS_MEAN, 0.0, means,
                                               MS_FLOAT64, 0);
    mean_arg = means;
  }
  reduce_partials<<<grid_a, MS_BLOCK>>>(x, nout, size, inner, slices, op, param, mean_arg, partials);
  if (out_host_all) {
    reduce_finish<<<1, MS_BLOCK>>>(partials, 1, size, slices, op, param, result, MS_FLOAT64, 0);
    MS_CUDA_LAUNCHED(fn);
    MS_CUDA_TRY(fn, cudaMemcpy(out_host_all, result, sizeof(double), cudaMemcpyDeviceToHost));
  } else {
    reduce_finish<<<ms_grid(nout), MS_BLOCK>>>(partials, nout, size, slices, op, param, out_dev,
                                               out_dtype, base);
    MS_CUDA_LAUNCHED(fn);
  }
  return 0;
}

// Bias gradients (runtime/reduce.c's ms_bias_grad): gb[k] += the float64 sum of
// g [outer, size, inner] over (o, i), in the CPU's order. inner == 1: one thread per
// column, reading rows in order (coalesced across the threads of a warp); else one
// block per k, summed in a fixed tree (not the CPU's order: equal up to rounding).
__global__ void bias_cols_kernel(float *gb, const float *g, int64_t outer, int64_t size) {
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < size;
       k += (int64_t)gridDim.x * blockDim.x) {
    double acc = 0;
    for (int64_t o = 0; o < outer; o++) acc += g[o * size + k];
    gb[k] = gb[k] + (float)acc;
  }
}

__global__ void bias_planes_kernel(float *gb, const float *g, int64_t outer, int64_t size,
                                   int64_t inner) {
  __shared__ double sh[MS_BLOCK];
  for (int64_t k = blockIdx.x; k < size; k += gridDim.x) {
    double acc = 0;
    for (int64_t e = threadIdx.x; e < outer * inner; e += blockDim.x) {
      int64_t o = e / inner, i = e % inner;
      acc += g[(o * size + k) * inner + i];
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
      if (threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
      __syncthreads();
    }
    if (threadIdx.x == 0) gb[k] = gb[k] + (float)sh[0];
    __syncthreads();
  }
}

extern "C" int ms_cuda_bias_grad(void *gb, const void *g, int64_t outer, int64_t size,
                                 int64_t inner) {
  if (inner == 1)
    bias_cols_kernel<<<ms_grid(size), MS_BLOCK>>>((float *)gb, (const float *)g, outer, size);
  else
    bias_planes_kernel<<<(int)(size < 65535 * 8 ? size : 65535 * 8), MS_BLOCK>>>(
        (float *)gb, (const float *)g, outer, size, inner);
  MS_CUDA_LAUNCHED("bias_grad");
  return 0;
}
