// elementwise.cu — the CUDA twin of runtime/elementwise.c (float32 only on the GPU).
//
// One grid-stride kernel per arity walks the same broadcast iterator as the CPU;
// the op is a uniform switch (every thread takes the same branch). The expressions
// mirror runtime/elementwise_impl.h case by case.
#include "common.cuh"

#define T float
#define SFX _f32
#define MS_OPS_HD __device__
#include "elementwise_ops.h"
#undef T
#undef SFX

__device__ __forceinline__ float unary_op(int op, float v, float a, float b) {
  switch (op) {
    case MS_NEG: return -v;
    case MS_ABS: return fabsf(v);
    case MS_EXP: return expf(v);
    case MS_LOG: return logf(v);
    case MS_SQRT: return sqrtf(v);
    case MS_RSQRT: return 1.0f / sqrtf(v);
    case MS_TANH: return tanhf(v);
    case MS_SIGMOID: return 1.0f / (1.0f + expf(-v));
    case MS_RELU: return v > 0 ? v : 0.0f;
    case MS_SIGN: return (float)((v > 0) - (v < 0));
    case MS_SQUARE: return v * v;
    case MS_RECIP: return 1.0f / v;
    case MS_CLAMP: return v < a ? a : (v > b ? b : v);
    case MS_ADD_SCALAR: return v + a;
    case MS_MUL_SCALAR: return v * a;
    case MS_POW_SCALAR: return a == 2.0f ? v * v : powf(v, a);
    case MS_RSUB_SCALAR: return a - v;
    case MS_RDIV_SCALAR: return a / v;
    case MS_RPOW_SCALAR: return powf(a, v);
    case MS_MAX_SCALAR: return v > a || v != v ? v : a;
    case MS_MIN_SCALAR: return v < a || v != v ? v : a;
    case MS_EQ_SCALAR: return (float)(v == a);
    case MS_NE_SCALAR: return (float)(v != a);
    case MS_LT_SCALAR: return (float)(v < a);
    case MS_LE_SCALAR: return (float)(v <= a);
    case MS_GT_SCALAR: return (float)(v > a);
    case MS_GE_SCALAR: return (float)(v >= a);
    case MS_ERF: return erff(v);
    case MS_GELU: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    case MS_LEAKY_RELU: return v > 0 ? v : a * v;
    default: return ms_gelu_tanh_f32(v);  // MS_GELU_TANH
  }
}

__device__ __forceinline__ float binary_op(int op, float u, float v, float alpha) {
  switch (op) {
    case MS_ADD: return u + alpha * v;
    case MS_SUB: return u - alpha * v;
    case MS_MUL: return u * v;
    case MS_DIV: return u / v;
    case MS_POW: return powf(u, v);
    case MS_MAX: return u > v || u != u ? u : v;
    case MS_MIN: return u < v || u != u ? u : v;
    case MS_EQ: return (float)(u == v);
    case MS_NE: return (float)(u != v);
    case MS_LT: return (float)(u < v);
    case MS_LE: return (float)(u <= v);
    case MS_GT: return (float)(u > v);
    case MS_GE: return (float)(u >= v);
    case MS_RELU_BACKWARD: return u > 0 ? v : 0.0f;
    case MS_LEAKY_RELU_BACKWARD: return u > 0 ? v : alpha * v;
    case MS_TANH_BACKWARD: return v * (1.0f - u * u);
    case MS_SIGMOID_BACKWARD: return v * u * (1.0f - u);
    case MS_GELU_BACKWARD:
      return v * (0.5f * (1.0f + erff(u * 0.70710678118654752f)) +
                  u * expf(-0.5f * u * u) * 0.39894228040143267794f);
    default: return ms_gelu_tanh_backward_f32(u, v);  // MS_GELU_TANH_BACKWARD
  }
}

__device__ __forceinline__ float ternary_op(int op, float u, float v, float w, float alpha) {
  switch (op) {
    case MS_ADDCMUL: return u + alpha * v * w;
    case MS_ADDCDIV: return u + alpha * v / w;
    case MS_WHERE: return u != 0 ? v : w;
    case MS_LERP: return u + alpha * (v - u);
    default: return u + w * (v - u);  // MS_LERP_WEIGHT
  }
}

// ARITY inputs (operands 1..ARITY) into operand 0.
template <int ARITY>
__global__ void elementwise_kernel(ms_iter it, int op, float a, float b) {
  float *o = (float *)it.data[0];
  const float *x = (const float *)it.data[1];
  const float *y = (const float *)it.data[ARITY > 1 ? 2 : 1];
  const float *z = (const float *)it.data[ARITY > 2 ? 3 : 1];
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < it.count;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[ARITY + 1];
    ms_iter_offsets<ARITY + 1>(it, i, off);
    if (ARITY == 1) o[off[0]] = unary_op(op, x[off[1]], a, b);
    else if (ARITY == 2) o[off[0]] = binary_op(op, x[off[1]], y[off[2]], a);
    else o[off[0]] = ternary_op(op, x[off[1]], y[off[2]], z[off[ARITY]], a);
  }
}

extern "C" {

int ms_cuda_unary(const ms_iter *it, int op, double a, double b) {
  elementwise_kernel<1><<<ms_grid(it->count), MS_BLOCK>>>(*it, op, (float)a, (float)b);
  MS_CUDA_LAUNCHED("unary");
  return 0;
}

int ms_cuda_binary(const ms_iter *it, int op, double alpha) {
  elementwise_kernel<2><<<ms_grid(it->count), MS_BLOCK>>>(*it, op, (float)alpha, 0.0f);
  MS_CUDA_LAUNCHED("binary");
  return 0;
}

int ms_cuda_ternary(const ms_iter *it, int op, double alpha) {
  elementwise_kernel<3><<<ms_grid(it->count), MS_BLOCK>>>(*it, op, (float)alpha, 0.0f);
  MS_CUDA_LAUNCHED("ternary");
  return 0;
}

}  // extern "C"
