// elementwise.cu — the CUDA twin of runtime/elementwise.c (float32 only on the GPU).
//
// One grid-stride kernel per arity walks the same broadcast iterator as the CPU;
// the op is a uniform switch (every thread takes the same branch). Each case computes
// the formula the CPU loop of runtime/elementwise_impl.h computes (elementwise_ops.h).
#include "common.cuh"

// The formulas are instantiated for float: T and SFX stay defined for this file, so
// that MS_FORMULA_<ID> (runtime/elementwise_ops.h) expands with the float helpers
// (ms_gelu_tanh_f32, ms_gelu_tanh_backward_f32) and the float overloads of exp, erf, ...
#define T float
#define SFX _f32
#define MS_OPS_HD __device__
#include "elementwise_ops.h"

// The switches, generated from the one op list (include/moonstep_elementwise.h): the
// same formula per case as the CPU loops. The op is uniform across a launch.
#define MS_EW_CASE(id, ...) case MS_##id: return MS_FORMULA_##id;

__device__ __forceinline__ float unary_op(int op, float v, float a, float b) {
  switch (op) { MS_UNARY_OPS(MS_EW_CASE) }
  return 0.0f;  // unreachable: ms_unary refused any other op
}

__device__ __forceinline__ float binary_op(int op, float u, float v, float alpha) {
  switch (op) { MS_BINARY_OPS(MS_EW_CASE) }
  return 0.0f;
}

__device__ __forceinline__ float ternary_op(int op, float u, float v, float w, float alpha) {
  switch (op) { MS_TERNARY_OPS(MS_EW_CASE) }
  return 0.0f;
}
#undef MS_EW_CASE

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
