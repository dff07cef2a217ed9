/* elementwise.c — unary, binary and ternary elementwise ops with broadcasting.
 *
 * Validation and dispatch live here; the CPU loops are in elementwise_impl.h (one
 * instantiation per float type) and the CUDA twins in kernels/elementwise.cu. */
#include "internal.h"
#include <tgmath.h>

/* defines unary_row__f32, binary_row__f32, ternary_row__f32, elementwise__f32, ... */
#define T float
#define SFX _f32
#include "elementwise_impl.h"
#undef T
#undef SFX
/* defines unary_row__f64, binary_row__f64, ternary_row__f64, elementwise__f64, ... */
#define T double
#define SFX _f64
#include "elementwise_impl.h"
#undef T
#undef SFX

/* The op names for messages, from the one op list (include/moonstep_elementwise.h). */
#define MS_EW_NAME(id, name, ...) [MS_##id] = name,
static const char *const unary_names[MS_UNARY_COUNT] = {MS_UNARY_OPS(MS_EW_NAME)};
static const char *const binary_names[MS_BINARY_COUNT] = {MS_BINARY_OPS(MS_EW_NAME)};
static const char *const ternary_names[MS_TERNARY_COUNT] = {MS_TERNARY_OPS(MS_EW_NAME)};
#undef MS_EW_NAME

/* Shared by the three arities: checks, the iterator, then CPU or CUDA. */
static int run(const char *fn, int arity, int op, const char *const *names,
               const ms_tensor *const *ops, double a, double b) {
  MS_CHECK_INTERRUPT(fn);
  /* inputs first, so the message names what the caller passed */
  MS_TRY(ms_check_float(fn, names[1], ops[1]));
  for (int k = 2; k <= arity; k++) MS_TRY(ms_check_same(fn, names[k], ops[k], names[1], ops[1]));
  MS_TRY(ms_check_same(fn, names[0], ops[0], names[1], ops[1]));
  if (ops[0]->count == 0) return 0;
  for (int k = 1; k <= arity; k++)
    if (ms_overlap(ops[0], ops[k], 1)) {
      /* out shares memory with an input in another layout (a:add_(a:t())): an element
       * would be read after it was overwritten. Compute into a temporary, copy back. */
      ms_tensor tmp;
      const ms_tensor *tops[MS_ITER_MAX_OPS] = {&tmp};
      for (int j = 1; j <= arity; j++) tops[j] = ops[j];
      MS_TRY(ms_tensor_new_like(&tmp, ops[0]));
      int rc = run(fn, arity, op, names, tops, a, b);
      if (rc == 0) rc = ms_copy((ms_tensor *)ops[0], &tmp);
      ms_tensor_release(&tmp);
      return rc;
    }
  ms_iter it;
  MS_TRY(ms_iter_init(&it, fn, names, arity + 1, ops));
  if (ms_device_of(ops[0]) == MS_CUDA) {
    if (arity == 1) return ms_cuda_unary(&it, op, a, b);
    if (arity == 2) return ms_cuda_binary(&it, op, a);
    return ms_cuda_ternary(&it, op, a);
  }
  if (ops[0]->dtype_id == MS_FLOAT32) elementwise__f32(&it, arity, op, a, b);
  else elementwise__f64(&it, arity, op, a, b);
  return 0;
}

int ms_unary(ms_tensor *out, const ms_tensor *x, int32_t op, double a, double b) {
  if (op < 0 || op >= MS_UNARY_COUNT) return ms_fail("unary: unknown op %d", op);
  const char *names[2] = {"out", "self"};
  const ms_tensor *ops[2] = {out, x};
  return run(unary_names[op] ? unary_names[op] : "unary", 1, op, names, ops, a, b);
}

int ms_binary(ms_tensor *out, const ms_tensor *a, const ms_tensor *b, int32_t op,
              double alpha) {
  if (op < 0 || op >= MS_BINARY_COUNT) return ms_fail("binary: unknown op %d", op);
  const char *names[3] = {"out", "self", "other"};
  const ms_tensor *ops[3] = {out, a, b};
  return run(binary_names[op] ? binary_names[op] : "binary", 2, op, names, ops, alpha, 0);
}

int ms_ternary(ms_tensor *out, const ms_tensor *a, const ms_tensor *b, const ms_tensor *c,
               int32_t op, double alpha) {
  if (op < 0 || op >= MS_TERNARY_COUNT) return ms_fail("ternary: unknown op %d", op);
  const int lerp = op == MS_LERP || op == MS_LERP_WEIGHT;
  const char *names[4] = {"out", op == MS_WHERE ? "condition" : "self",
                          op == MS_WHERE ? "x" : lerp ? "end" : "tensor1",
                          op == MS_WHERE ? "y" : lerp ? "weight" : "tensor2"};
  const ms_tensor *ops[4] = {out, a, b, op == MS_LERP ? b : c};
  return run(ternary_names[op], 3, op, names, ops, alpha, 0);
}
