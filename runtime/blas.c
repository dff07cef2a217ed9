/* blas.c — matmul (OpenBLAS sgemm/dgemm, cuBLAS on the GPU) and dot.
 *
 * Strided views are passed to BLAS without copying whenever one of their two inner
 * strides is 1 (a transposed view becomes the transpose flag); anything else is
 * copied to a contiguous tensor first. */
#include "internal.h"
#include <cblas.h>
#include <limits.h>
#include <stdlib.h>

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

/* C = alpha op(A) op(B) + beta C on the CPU (row-major; float or double), the inner
 * dimension cut as head + tail: head the largest multiple of GEMM_K_ALIGN, tail the rest
 * (a second call, accumulated with beta 1). Why: OpenBLAS cuts K into blocks of GEMM_Q
 * and halves a last remainder between GEMM_Q and 2 GEMM_Q, rounding the half to its
 * unroll on one thread but not on several, so the same product rounded differently with
 * the thread count (measured here: sgemm from K = 456, dgemm from 392; never for a K that
 * is a multiple of 32). A K of at most GEMM_K_ALIGN is one call. With K a multiple of 64 (GEMM_Q and twice every x86-64 unroll
 * divide it) both drivers block alike. Float32 products are then the same bits on any
 * thread count (2,084 shapes checked here, narrow ones included); a float64 product with
 * a narrow output (N = 10) can still differ in its last bits, from OpenBLAS's edge
 * kernels. The cost: one more pass over C when K has a tail. */
enum { GEMM_K_ALIGN = 64 };

/* One call for the inner-dimension slice [k0, k0 + kc). op(A) [m, k]: memory [m, k]
 * (columns k0..) or [k, m] (rows k0..); op(B) [k, n]: memory [k, n] (rows k0..) or [n, k]
 * (columns k0..). */
static void gemm_part(int f32, int ta, int tb, int64_t m, int64_t n, int64_t k0, int64_t kc,
                      double alpha, const char *a, int64_t lda, const char *b, int64_t ldb,
                      double beta, char *c, int64_t ldc) {
  const int64_t es = f32 ? 4 : 8;
  const char *ak = a + (ta ? k0 * lda : k0) * es, *bk = b + (tb ? k0 : k0 * ldb) * es;
  const CBLAS_TRANSPOSE oa = ta ? CblasTrans : CblasNoTrans, ob = tb ? CblasTrans : CblasNoTrans;
  if (f32)
    cblas_sgemm(CblasRowMajor, oa, ob, m, n, kc, (float)alpha, (const float *)ak, lda,
                (const float *)bk, ldb, (float)beta, (float *)c, ldc);
  else
    cblas_dgemm(CblasRowMajor, oa, ob, m, n, kc, alpha, (const double *)ak, lda,
                (const double *)bk, ldb, beta, (double *)c, ldc);
}

static void cpu_gemm(int f32, int ta, int tb, int64_t m, int64_t n, int64_t k, double alpha,
                     const char *a, int64_t lda, const char *b, int64_t ldb, double beta,
                     char *c, int64_t ldc) {
  /* K <= GEMM_K_ALIGN: one call; else the largest multiple of it, then the tail */
  const int64_t head = k > GEMM_K_ALIGN ? k - k % GEMM_K_ALIGN : k;
  gemm_part(f32, ta, tb, m, n, 0, head, alpha, a, lda, b, ldb, beta, c, ldc);
  if (head < k) gemm_part(f32, ta, tb, m, n, head, k - head, alpha, a, lda, b, ldb, 1.0, c, ldc);
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
  const int64_t es = ms_dtype_size(out->dtype_id);
  int rc = 0;
  if (ms_device_of(out) == MS_CUDA) {
    rc = ms_cuda_gemm(ta, tb, m, n, k, (float)alpha, (const float *)ms_ptr(&A.t), A.l.ld,
                      A.batch_stride, (const float *)ms_ptr(&B.t), B.l.ld, B.batch_stride,
                      (float)beta, (float *)ms_ptr(out), n, m * n, batch);
  } else {
    ms_threads_end_backoff_if_due();
    for (int64_t bi = 0; bi < batch; bi++)
      cpu_gemm(out->dtype_id == MS_FLOAT32, ta, tb, m, n, k, alpha,
               (const char *)ms_ptr(&A.t) + bi * A.batch_stride * es, A.l.ld,
               (const char *)ms_ptr(&B.t) + bi * B.batch_stride * es, B.l.ld, beta,
               (char *)ms_ptr(out) + bi * m * n * es, n);
  }
  ms_tensor_release(&A.t);
  ms_tensor_release(&B.t);
  return rc;
}

/* A dot product on the CPU in float64, in blocks of DOT_BLOCK elements whose partial sums
 * are added in block order: the same bits on any thread count (OpenBLAS's own ddot splits
 * a long vector by its thread count), the blocks shared by moonstep's threads. */
enum { DOT_BLOCK = 8192, DOT_STACK = 128 };

typedef struct {
  int f32;
  const void *a, *b;
  int64_t n;
  double *parts;
} dot_job;

static double dot_block(const dot_job *j, int64_t blk) {
  int64_t lo = blk * DOT_BLOCK, len = j->n - lo < DOT_BLOCK ? j->n - lo : DOT_BLOCK;
  if (j->f32)  /* float inputs, float64 accumulation */
    return cblas_dsdot((int)len, (const float *)j->a + lo, 1, (const float *)j->b + lo, 1);
  return cblas_ddot((int)len, (const double *)j->a + lo, 1, (const double *)j->b + lo, 1);
}

static void dot_share(void *ctx, int64_t lo, int64_t hi) {
  const dot_job *j = ctx;
  for (int64_t blk = lo; blk < hi; blk++) j->parts[blk] = dot_block(j, blk);
}

static double dot_blocks(dot_job *j) {
  const int64_t nb = (j->n + DOT_BLOCK - 1) / DOT_BLOCK;
  double stack[DOT_STACK], sum = 0;
  if (nb > 1 && ms_threads_for(j->n * 2) > 1)
    j->parts = nb <= DOT_STACK ? stack : malloc(sizeof(double) * (size_t)nb);
  if (j->parts) {
    ms_parallel_for(nb, j->n * 2, dot_share, j);
    for (int64_t blk = 0; blk < nb; blk++) sum += j->parts[blk];
    if (j->parts != stack) free(j->parts);
  } else {
    for (int64_t blk = 0; blk < nb; blk++) sum += dot_block(j, blk);
  }
  return sum;
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
  if (ms_device_of(a) == MS_CUDA) {
    rc = ms_cuda_dot((const float *)ms_ptr(&ac), (const float *)ms_ptr(&bc), a->count, value);
  } else {
    dot_job j = {a->dtype_id == MS_FLOAT32, ms_ptr(&ac), ms_ptr(&bc), a->count, NULL};
    *value = dot_blocks(&j);
  }
  ms_tensor_release(&ac);
  ms_tensor_release(&bc);
  return rc;
}
