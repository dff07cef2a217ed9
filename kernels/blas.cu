// blas.cu — the CUDA twin of runtime/blas.c: cuBLAS sgemm and a float64-accumulated dot.
#include <cublas_v2.h>
#include "common.cuh"

static cublasHandle_t handle(void) {
  static cublasHandle_t h = NULL;
  if (!h && cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) h = NULL;
  return h;
}

// Row-major C[m,n] = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the
// operands and keep each one's transpose flag (a row-major matrix read column-major
// is its own transpose).
extern "C" int ms_cuda_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                            float alpha, const float *a, int64_t lda, int64_t stride_a,
                            const float *b, int64_t ldb, int64_t stride_b, float beta, float *c,
                            int64_t ldc, int64_t stride_c, int64_t batch) {
  cublasHandle_t h = handle();
  if (!h) return ms_fail("matmul: cuBLAS could not be initialised (cublasCreate failed)");
  cublasStatus_t st = cublasSgemmStridedBatched(
      h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n,
      (int)m, (int)k, &alpha, b, (int)ldb, stride_b, a, (int)lda, stride_a, &beta, c, (int)ldc,
      stride_c, (int)batch);
  if (st != CUBLAS_STATUS_SUCCESS)
    return ms_fail("matmul: cublasSgemmStridedBatched failed with status %d", (int)st);
  return 0;
}

// One float64 partial per block; the host adds the partials in order (deterministic).
__global__ void dot_partials(const float *a, const float *b, int64_t n, double *partials) {
  __shared__ double sh[MS_BLOCK];
  double s = 0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    s += (double)a[i] * (double)b[i];
  sh[threadIdx.x] = s;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = sh[0];
}

extern "C" int ms_cuda_dot(const float *a, const float *b, int64_t n, double *out) {
  enum { MAX_BLOCKS = 1024 };
  int grid = ms_grid(n) < MAX_BLOCKS ? ms_grid(n) : MAX_BLOCKS;
  void *ws;
  MS_TRY(ms_cuda_workspace(&ws, MAX_BLOCKS * sizeof(double)));
  dot_partials<<<grid, MS_BLOCK>>>(a, b, n, (double *)ws);
  MS_CUDA_LAUNCHED("dot");
  double host[MAX_BLOCKS];
  MS_CUDA_TRY("dot", cudaMemcpy(host, ws, grid * sizeof(double), cudaMemcpyDeviceToHost));
  double s = 0;
  for (int i = 0; i < grid; i++) s += host[i];
  *out = s;
  return 0;
}
