// optim.cu — the CUDA twins of runtime/optim.c: one kernel per step over the arena.
#include "common.cuh"

__global__ void sgd_kernel(float *p, const float *g, float *buf, int64_t n, float lr, float mu,
                           float damp, float wd, int nesterov, int first) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    float d = g[i] + wd * p[i];
    if (buf) {
      float b = first ? d : mu * buf[i] + damp * d;
      buf[i] = b;
      d = nesterov ? d + mu * b : b;
    }
    p[i] -= lr * d;
  }
}

__global__ void adam_kernel(float *p, const float *g, float *m, float *v, int64_t n, float b1,
                            float b2, float eps, float l2, float decay, float step, float rbc2) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    float d = g[i] + l2 * p[i];
    float mi = b1 * m[i] + (1 - b1) * d;
    float vi = b2 * v[i] + (1 - b2) * d * d;
    m[i] = mi, v[i] = vi;
    p[i] = p[i] * decay - step * mi / (sqrtf(vi) * rbc2 + eps);
  }
}

extern "C" {

int ms_cuda_sgd(float *p, const float *g, float *buf, int64_t n, float lr, float mu,
                float dampening, float wd, int nesterov, int first) {
  sgd_kernel<<<ms_grid(n), MS_BLOCK>>>(p, g, buf, n, lr, mu, 1 - dampening, wd, nesterov, first);
  MS_CUDA_LAUNCHED("sgd_step");
  return 0;
}

int ms_cuda_adam(float *p, const float *g, float *m, float *v, int64_t n, float lr, float b1,
                 float b2, float eps, float wd, int decoupled, float bc1, float bc2) {
  adam_kernel<<<ms_grid(n), MS_BLOCK>>>(p, g, m, v, n, b1, b2, eps, decoupled ? 0.0f : wd,
                                        decoupled ? 1 - lr * wd : 1.0f, lr / bc1,
                                        1.0f / sqrtf(bc2));
  MS_CUDA_LAUNCHED("adam_step");
  return 0;
}

}  // extern "C"
