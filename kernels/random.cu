// random.cu — the CUDA twin of runtime/random.c: one thread per block of four
// elements, the same Philox words and the same conversions (runtime/philox.h), so
// uniform, Rademacher and Bernoulli fills are bit-identical to the CPU's.
#include "common.cuh"
#include "philox.h"

__global__ void rng_fill_f32(float *data, int64_t n, int dist, uint64_t seed, uint64_t stream,
                             float a, float b) {
  int64_t nblocks = (n + 3) / 4;
  for (int64_t blk = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; blk < nblocks;
       blk += (int64_t)gridDim.x * blockDim.x) {
    uint32_t w[4];
    ms_philox_at(seed, stream, (uint64_t)blk, w);
    int64_t i0 = blk * 4;
    int m = n - i0 < 4 ? (int)(n - i0) : 4;
    for (int j = 0; j < m; j++) data[i0 + j] = ms_rng_value_f32(w, j, dist, a, b);
  }
}

extern "C" int ms_cuda_rng_fill(void *data, int32_t dtype, int64_t n, int dist, uint64_t seed,
                                uint64_t stream, double a, double b) {
  if (dtype != MS_FLOAT32) return ms_fail("rng: float64 tensors are CPU-only");
  rng_fill_f32<<<ms_grid((n + 3) / 4), MS_BLOCK>>>((float *)data, n, dist, seed, stream,
                                                   (float)a, (float)b);
  MS_CUDA_LAUNCHED("rng");
  return 0;
}
