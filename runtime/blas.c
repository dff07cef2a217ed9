/* blas.c — matmul (OpenBLAS sgemm/dgemm, cuBLAS on the GPU) and dot.
 *
 * Strided views are passed to BLAS without copying whenever one of their two inner
 * strides is 1 (a transposed view becomes the transpose flag); anything else is
 * copied to a contiguous tensor first. */
#include "internal.h"
#include <cblas.h>
#include <limits.h>

/* How a 2-D operand [rows, cols] with strides (rs, cs) reaches BLAS. */
typedef struct {
  int trans;   /* memory holds the transpose */
  int64_t ld;  /* leading dimension of the memory layout */
} layout;

static int blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, layout *l) {
  if (cs == 1 && (rows == 1 || rs >= (cols > 1 ? cols : 1))) {
    l->trans = 0;
    l->ld = rows == 1 ? (cols > 1 ? cols : 1) : rs;
    return 1;
  }
  if (rs == 1 && (cols == 1 || cs >= (rows > 1 ? rows : 1))) {
    l->trans = 1;
    l->ld = cols == 1 ? (rows > 1 ? rows : 1) : cs;
    return 1;
  }
  return 0;
}

/* An operand as BLAS will see it: possibly a contiguous copy, its layout, batch stride. */
typedef struct {
  ms_tensor t;     /* the tensor whose memory is passed (a view or a copy), owned */
  layout l;
  int64_t batch_stride;
} operand;

static int prepare(const char *fn, const ms_tensor *x, operand *op) {
  int nd = x->ndim;
  int64_t rows = x->sizes[nd - 2], cols = x->sizes[nd - 1];
  if (blas_layout(rows, cols, x->strides[nd - 2], x->strides[nd - 1], &op->l)) {
    MS_TRY(ms_tensor_view(&op->t, x, x->ndim, x->sizes, x->strides, x->offset));
  } else {
    (void)fn;
    MS_TRY(ms_tensor_new_like(&op->t, x));
    if (ms_copy(&op->t, x)) { ms_tensor_release(&op->t); return -1; }
    blas_layout(rows, cols, cols, 1, &op->l);
  }
  op->batch_stride = nd == 3 && op->t.sizes[0] != 1 ? op->t.strides[0] : 0;
  return 0;
}

/* BLAS and cuBLAS take 32-bit ints: a larger size or leading dimension is refused
 * (a silent truncation would multiply the wrong memory). */
static int check_int(const char *fn, const char *what, int64_t v) {
  if (v > INT_MAX)
    return ms_fail("%s: %s is %lld, larger than BLAS's 32-bit limit 2^31-1; split the "
                   "product or make the operand contiguous", fn, what, (long long)v);
  return 0;
}

static int same_memory(const ms_tensor *x, const ms_tensor *y) {
  return x->storage == y->storage && x->count > 0 && y->count > 0;
}

int ms_matmul(ms_tensor *out, const ms_tensor *a, const ms_tensor *b, int32_t trans_a,
              int32_t trans_b, double alpha, double beta) {
  static const char fn[] = "matmul";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_float(fn, "self", a));
  MS_TRY(ms_check_same(fn, "other", b, "self", a));
  MS_TRY(ms_check_same(fn, "out", out, "self", a));
  if (same_memory(out, a) || same_memory(out, b)) {
    /* out shares memory with an input: BLAS would read what it already overwrote.
     * Compute into a temporary (holding out's values when beta uses them), copy back. */
    ms_tensor tmp;
    MS_TRY(ms_tensor_new_like(&tmp, out));
    int rc = beta != 0 ? ms_copy(&tmp, out) : 0;
    if (rc == 0) rc = ms_matmul(&tmp, a, b, trans_a, trans_b, alpha, beta);
    if (rc == 0) rc = ms_copy(out, &tmp);
    ms_tensor_release(&tmp);
    return rc;
  }
  int nd = a->ndim;
  if ((nd != 2 && nd != 3) || b->ndim != nd || out->ndim != nd)
    return ms_fail("%s: arguments have %d, %d and %d dims (self, other, out), expected all 2 "
                   "(matrices) or all 3 (batches of matrices)", fn, a->ndim, b->ndim,
                   out->ndim);
  int64_t m = trans_a ? a->sizes[nd - 1] : a->sizes[nd - 2];
  int64_t k = trans_a ? a->sizes[nd - 2] : a->sizes[nd - 1];
  int64_t kb = trans_b ? b->sizes[nd - 1] : b->sizes[nd - 2];
  int64_t n = trans_b ? b->sizes[nd - 2] : b->sizes[nd - 1];
  char s1[160], s2[160], s3[160];
  if (k != kb)
    return ms_fail("%s: inner dimensions differ: self%s is %s (k=%lld), other%s is %s "
                   "(k=%lld), expected equal", fn, trans_a ? "^T" : "",
                   ms_shape_str(s1, a->ndim, a->sizes), (long long)k, trans_b ? "^T" : "",
                   ms_shape_str(s2, b->ndim, b->sizes), (long long)kb);
  int64_t batch = nd == 3 ? out->sizes[0] : 1;
  if (nd == 3 && ((a->sizes[0] != batch && a->sizes[0] != 1) ||
                  (b->sizes[0] != batch && b->sizes[0] != 1)))
    return ms_fail("%s: batch sizes differ: self %s, other %s, out %s, expected equal (or 1)",
                   fn, ms_shape_str(s1, nd, a->sizes), ms_shape_str(s2, nd, b->sizes),
                   ms_shape_str(s3, nd, out->sizes));
  if (out->sizes[nd - 2] != m || out->sizes[nd - 1] != n || !ms_tensor_is_contiguous(out))
    return ms_fail("%s: argument 'out' is %s%s, expected a contiguous [%s%lld,%lld]", fn,
                   ms_shape_str(s1, nd, out->sizes),
                   ms_tensor_is_contiguous(out) ? "" : " (not contiguous)",
                   nd == 3 ? "batch," : "", (long long)m, (long long)n);
  if (out->count == 0) return 0;
  if (k == 0) return beta == 0 ? ms_fill(out, 0) : ms_unary(out, out, MS_MUL_SCALAR, beta, 0);

  MS_TRY(check_int(fn, "m", m));
  MS_TRY(check_int(fn, "n", n));
  MS_TRY(check_int(fn, "k", k));
  MS_TRY(check_int(fn, "the batch size", batch));
  operand A, B;
  MS_TRY(prepare(fn, a, &A));
  if (prepare(fn, b, &B)) { ms_tensor_release(&A.t); return -1; }
  if (check_int(fn, "the leading dimension of 'self'", A.l.ld) ||
      check_int(fn, "the leading dimension of 'other'", B.l.ld)) {
    ms_tensor_release(&A.t);
    ms_tensor_release(&B.t);
    return -1;
  }
  /* op(memory) = op(user): user transpose XOR layout transpose. */
  int ta = (trans_a != 0) ^ A.l.trans, tb = (trans_b != 0) ^ B.l.trans;
  int rc = 0;
  if (ms_device_of(out) == MS_CUDA) {
    rc = ms_cuda_gemm(ta, tb, m, n, k, (float)alpha, (const float *)ms_ptr(&A.t), A.l.ld,
                      A.batch_stride, (const float *)ms_ptr(&B.t), B.l.ld, B.batch_stride,
                      (float)beta, (float *)ms_ptr(out), n, m * n, batch);
  } else {
    for (int64_t bi = 0; bi < batch; bi++) {
      if (out->dtype_id == MS_FLOAT32)
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                    tb ? CblasTrans : CblasNoTrans, m, n, k, (float)alpha,
                    (const float *)ms_ptr(&A.t) + bi * A.batch_stride, A.l.ld,
                    (const float *)ms_ptr(&B.t) + bi * B.batch_stride, B.l.ld, (float)beta,
                    (float *)ms_ptr(out) + bi * m * n, n);
      else
        cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                    tb ? CblasTrans : CblasNoTrans, m, n, k, alpha,
                    (const double *)ms_ptr(&A.t) + bi * A.batch_stride, A.l.ld,
                    (const double *)ms_ptr(&B.t) + bi * B.batch_stride, B.l.ld, beta,
                    (double *)ms_ptr(out) + bi * m * n, n);
    }
  }
  ms_tensor_release(&A.t);
  ms_tensor_release(&B.t);
  return rc;
}

int ms_dot(const ms_tensor *a, const ms_tensor *b, double *value) {
  static const char fn[] = "dot";
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_float(fn, "self", a));
  MS_TRY(ms_check_same(fn, "other", b, "self", a));
  if (a->count != b->count)
    return ms_fail("%s: 'self' has %lld elements and 'other' %lld, expected equal counts", fn,
                   (long long)a->count, (long long)b->count);
  ms_tensor ac, bc;
  MS_TRY(ms_contiguous(&ac, a));
  if (ms_contiguous(&bc, b)) { ms_tensor_release(&ac); return -1; }
  int rc = 0;
  if (ms_device_of(a) == MS_CUDA)
    rc = ms_cuda_dot((const float *)ms_ptr(&ac), (const float *)ms_ptr(&bc), a->count, value);
  else {
    /* BLAS counts are int: accumulate chunks of 2^30 in float64 */
    double sum = 0;
    const int64_t chunk = (int64_t)1 << 30;
    for (int64_t i = 0; i < a->count; i += chunk) {
      int len = (int)(a->count - i < chunk ? a->count - i : chunk);
      if (a->dtype_id == MS_FLOAT32)  /* float inputs, float64 accumulation */
        sum += cblas_dsdot(len, (const float *)ms_ptr(&ac) + i, 1, (const float *)ms_ptr(&bc) + i, 1);
      else
        sum += cblas_ddot(len, (const double *)ms_ptr(&ac) + i, 1, (const double *)ms_ptr(&bc) + i, 1);
    }
    *value = sum;
  }
  ms_tensor_release(&ac);
  ms_tensor_release(&bc);
  return rc;
}
