// index.cu — the CUDA twin of runtime/index.c: index_select and gather, moving
// elements as 1-, 4- or 8-byte words so every dtype works, and index_add.
//
// An out-of-range index is not a crash: the kernel records the offending value in a
// device flag, skips the element, and the host turns the flag into an error.
#include "common.cuh"

struct BadIndex {
  int found;
  long long value;
};

// Element e of [outer, nidx, inner] maps to element (o, idx[j] - base, i) of
// [outer, size, inner]: its offset there, or -1 (after flagging the bad index).
__device__ __forceinline__ int64_t selected(int64_t e, const int64_t *idx, int64_t size,
                                            int64_t inner, int64_t nidx, int64_t base,
                                            BadIndex *bad) {
  int64_t i = e % inner, r = e / inner, j = r % nidx, o = r / nidx;
  int64_t v = ms_index_pos(idx[j], base, size);
  if (v < 0) {
    if (atomicExch(&bad->found, 1) == 0) bad->value = idx[j];
    return -1;
  }
  return (o * size + v) * inner + i;
}

// out [outer, nidx, inner] <- x [outer, size, inner] at rows idx[j] - base.
template <typename W>
__global__ void index_select_kernel(W *out, const W *x, const int64_t *idx, int64_t outer,
                                    int64_t size, int64_t inner, int64_t nidx, int64_t base,
                                    BadIndex *bad) {
  int64_t total = outer * nidx * inner;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
       e += (int64_t)gridDim.x * blockDim.x) {
    int64_t at = selected(e, idx, size, inner, nidx, base, bad);
    if (at >= 0) out[e] = x[at];
  }
}

// Operands of it: 0 out, 1 index, 2 x seen with stride 0 along the gather dim.
template <typename W>
__global__ void gather_kernel(ms_iter it, int64_t size, int64_t sdim, int64_t base,
                              BadIndex *bad) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < it.count;
       e += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[3];
    ms_iter_offsets<3>(it, e, off);
    int64_t raw = ((const int64_t *)it.data[1])[off[1]];
    int64_t v = ms_index_pos(raw, base, size);
    if (v < 0) {
      if (atomicExch(&bad->found, 1) == 0) bad->value = raw;
      continue;
    }
    ((W *)it.data[0])[off[0]] = ((const W *)it.data[2])[off[2] + v * sdim];
  }
}

// out[o, idx[j] - base, i] += src[o, j, i] (atomics: indices may repeat).
__global__ void index_add_kernel(float *out, const float *src, const int64_t *idx,
                                 int64_t outer, int64_t size, int64_t inner, int64_t nidx,
                                 int64_t base, BadIndex *bad) {
  int64_t total = outer * nidx * inner;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
       e += (int64_t)gridDim.x * blockDim.x) {
    int64_t at = selected(e, idx, size, inner, nidx, base, bad);
    if (at >= 0) atomicAdd(&out[at], src[e]);
  }
}

// Clear the flag before a kernel; after it, 1 and the bad value when one was seen.
static int flag_reset(const char *fn, BadIndex **dev) {
  void *ws;
  MS_TRY(ms_cuda_workspace(&ws, sizeof(BadIndex)));
  *dev = (BadIndex *)ws;
  MS_CUDA_TRY(fn, cudaMemset(ws, 0, sizeof(BadIndex)));
  return 0;
}

static int flag_read(const char *fn, BadIndex *dev, int64_t *bad_host) {
  BadIndex h;
  MS_CUDA_LAUNCHED(fn);
  MS_CUDA_TRY(fn, cudaMemcpy(&h, dev, sizeof h, cudaMemcpyDeviceToHost));
  if (!h.found) return 0;
  *bad_host = h.value;
  return 1;
}

extern "C" int ms_cuda_index_select(float *out, const float *x, const int64_t *idx,
                                    int64_t outer, int64_t size, int64_t inner, int64_t nidx,
                                    int64_t base, int esize, int64_t *bad_host) {
  const char *fn = "index_select";
  BadIndex *bad;
  MS_TRY(flag_reset(fn, &bad));
  int g = ms_grid(outer * nidx * inner);
  if (esize == 1)
    index_select_kernel<uint8_t><<<g, MS_BLOCK>>>((uint8_t *)out, (const uint8_t *)x, idx, outer,
                                                  size, inner, nidx, base, bad);
  else if (esize == 4)
    index_select_kernel<uint32_t><<<g, MS_BLOCK>>>((uint32_t *)out, (const uint32_t *)x, idx,
                                                   outer, size, inner, nidx, base, bad);
  else
    index_select_kernel<uint64_t><<<g, MS_BLOCK>>>((uint64_t *)out, (const uint64_t *)x, idx,
                                                   outer, size, inner, nidx, base, bad);
  return flag_read(fn, bad, bad_host);
}

extern "C" int ms_cuda_gather(const ms_iter *it, int dim, int64_t size, int64_t sdim,
                              int64_t base, int64_t *bad_host) {
  (void)dim;
  const char *fn = "gather";
  BadIndex *bad;
  MS_TRY(flag_reset(fn, &bad));
  int g = ms_grid(it->count);
  int esize = ms_dtype_size(it->dtype[0]);
  if (esize == 1) gather_kernel<uint8_t><<<g, MS_BLOCK>>>(*it, size, sdim, base, bad);
  else if (esize == 4) gather_kernel<uint32_t><<<g, MS_BLOCK>>>(*it, size, sdim, base, bad);
  else gather_kernel<uint64_t><<<g, MS_BLOCK>>>(*it, size, sdim, base, bad);
  return flag_read(fn, bad, bad_host);
}

extern "C" int ms_cuda_index_add(void *out, const void *src, const int64_t *idx, int64_t outer,
                                 int64_t size, int64_t inner, int64_t nidx, int64_t base,
                                 int64_t *bad_host) {
  const char *fn = "index_add_";
  BadIndex *bad;
  MS_TRY(flag_reset(fn, &bad));
  index_add_kernel<<<ms_grid(outer * nidx * inner), MS_BLOCK>>>(
      (float *)out, (const float *)src, idx, outer, size, inner, nidx, base, bad);
  return flag_read(fn, bad, bad_host);
}
