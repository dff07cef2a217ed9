/* linalg.c — dense symmetric eigen-decomposition and general solve (LAPACK).
 *
 * The LAPACK routines come from the OpenBLAS the library already links (Debian's
 * libopenblas exports the reference LAPACK interface: dsyevd_, dgetrf_, ...), so no
 * extra package or link flag is needed. They are declared here by hand (Fortran calling
 * convention: every argument by pointer, one hidden length per character argument).
 *
 * Every computation runs in float64 on the host: the input is copied once into a
 * column-major float64 work matrix (LAPACK overwrites it anyway), which converts float32
 * and brings CUDA tensors to the host; the results are rounded once to the caller's
 * dtype and copied back to its device. The matrices these serve (2-SPSA's d x d Hessian
 * estimate, d in the tens to a few thousands) make the O(d^2) transfers negligible
 * beside the O(d^3) factorisation.
 *
 * Layout trick: a row-major [d,d] buffer read as column-major is the transpose. For eigh
 * the row-major lower triangle is the column-major upper one (uplo 'U'); LAPACK's
 * column-major eigenvectors read row-major are V^T, copied out through a transposed view.
 * For solve, the row-major buffer is A^T column-major: factor it and solve with
 * trans = 'T', i.e. (A^T)^T X = A X = B. */
#include "internal.h"
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a,
                    const int *lda, double *w, double *work, const int *lwork, int *iwork,
                    const int *liwork, int *info, size_t jobz_len, size_t uplo_len);
extern void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv,
                    int *info);
extern void dgetrs_(const char *trans, const int *n, const int *nrhs, const double *a,
                    const int *lda, const int *ipiv, double *b, const int *ldb, int *info,
                    size_t trans_len);
extern void dgecon_(const char *norm, const int *n, const double *a, const int *lda,
                    const double *anorm, double *rcond, double *work, int *iwork, int *info,
                    size_t norm_len);
extern double dlange_(const char *norm, const int *m, const int *n, const double *a,
                      const int *lda, double *work, size_t norm_len);

/* a: a float [d,d] matrix (any strides, CPU or CUDA); *d gets its order. */
static int check_square(const char *fn, const ms_tensor *a, int64_t *d) {
  MS_TRY(ms_check_float(fn, "a", a));
  char s[160];
  if (a->ndim != 2 || a->sizes[0] != a->sizes[1])
    return ms_fail("%s: argument 'a' has shape %s, expected a square matrix [d,d]", fn,
                   ms_shape_str(s, a->ndim, a->sizes));
  if (a->sizes[0] > INT_MAX / 8)  /* LAPACK's 32-bit ints, with room for its workspaces */
    return ms_fail("%s: argument 'a' is [%lld,%lld], larger than LAPACK's 32-bit limit "
                   "(d <= %d)", fn, (long long)a->sizes[0], (long long)a->sizes[0],
                   INT_MAX / 8);
  *d = a->sizes[0];
  return 0;
}

/* A fresh host float64 tensor of shape (ndim, shape) holding src's values (converted,
 * brought to the host, made contiguous). */
static int host_f64(ms_tensor *out, const ms_tensor *src, int ndim, const int64_t *shape) {
  MS_TRY(ms_tensor_empty(out, ndim, shape, MS_FLOAT64, MS_CPU));
  if (ms_copy(out, src)) { ms_tensor_release(out); return -1; }
  return 0;
}

/* The first non-finite element of the row-major [rows, cols] buffer x (lower triangle
 * only when lower), as a failure naming it; 0 when all are finite. */
static int check_finite(const char *fn, const char *arg, const double *x, int64_t rows,
                        int64_t cols, int lower) {
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < (lower ? i + 1 : cols); j++)
      if (!isfinite(x[i * cols + j]))
        return ms_fail("%s: argument '%s' holds %s at [%lld,%lld] (1-based), expected "
                       "finite values", fn, arg,
                       isnan(x[i * cols + j]) ? "nan" : x[i * cols + j] > 0 ? "inf" : "-inf",
                       (long long)i + 1, (long long)j + 1);
  return 0;
}

int ms_linalg_eigh(ms_tensor *vals, ms_tensor *vecs, const ms_tensor *a) {
  static const char fn[] = "linalg.eigh";
  MS_CHECK_INTERRUPT(fn);
  int64_t d = 0;
  MS_TRY(check_square(fn, a, &d));
  MS_TRY(ms_check_same(fn, "vals", vals, "a", a));
  MS_TRY(ms_check_shape(fn, "vals", vals, 1, &d));
  if (vecs) {
    MS_TRY(ms_check_same(fn, "vecs", vecs, "a", a));
    MS_TRY(ms_check_shape(fn, "vecs", vecs, 2, a->sizes));
    if (ms_overlap(vecs, vals, 0))
      return ms_fail("%s: arguments 'vecs' and 'vals' share memory, expected separate "
                     "tensors", fn);
  }
  if (d == 0) return 0;

  ms_tensor h = {0}, w = {0};
  double *work = NULL;
  int *iwork = NULL;
  int rc = -1;
  if (host_f64(&h, a, 2, a->sizes)) return -1;
  double *m = (double *)ms_ptr(&h);
  if (check_finite(fn, "a", m, d, d, 1) ||
      ms_tensor_empty(&w, 1, &d, MS_FLOAT64, MS_CPU))
    goto done;

  const char jobz = vecs ? 'V' : 'N', uplo = 'U';  /* 'U' column-major = row-major lower */
  int n = (int)d, lwork = -1, liwork = -1, info = 0, iq = 0;
  double q = 0;
  dsyevd_(&jobz, &uplo, &n, m, &n, (double *)ms_ptr(&w), &q, &lwork, &iq, &liwork, &info,
          1, 1);
  if (info != 0 || !(q >= 1 && q <= INT_MAX) || iq < 1) {
    ms_fail("%s: LAPACK's workspace query failed (info %d) for d = %d", fn, info, n);
    goto done;
  }
  lwork = (int)q;
  liwork = iq;
  work = malloc((size_t)lwork * sizeof *work);
  iwork = malloc((size_t)liwork * sizeof *iwork);
  if (!work || !iwork) {
    ms_fail("%s: out of memory for LAPACK's workspace (%d doubles)", fn, lwork);
    goto done;
  }
  dsyevd_(&jobz, &uplo, &n, m, &n, (double *)ms_ptr(&w), work, &lwork, iwork, &liwork,
          &info, 1, 1);
  if (info != 0) {
    ms_fail("%s: the eigenvalue iteration did not converge (LAPACK dsyevd info %d) for "
            "a [%d,%d] matrix", fn, info, n, n);
    goto done;
  }
  if (ms_copy(vals, &w)) goto done;
  if (vecs) {
    /* m holds V column-major = V^T row-major: copy out through the transposed view */
    ms_tensor vt;
    int64_t strides[2] = {1, d};
    if (ms_tensor_view(&vt, &h, 2, h.sizes, strides, 0)) goto done;
    int crc = ms_copy(vecs, &vt);
    ms_tensor_release(&vt);
    if (crc) goto done;
  }
  rc = 0;
done:
  free(work);
  free(iwork);
  ms_tensor_release(&w);
  ms_tensor_release(&h);
  return rc;
}

int ms_linalg_solve(ms_tensor *x, const ms_tensor *a, const ms_tensor *b) {
  static const char fn[] = "linalg.solve";
  MS_CHECK_INTERRUPT(fn);
  int64_t d = 0;
  MS_TRY(check_square(fn, a, &d));
  MS_TRY(ms_check_same(fn, "b", b, "a", a));
  MS_TRY(ms_check_same(fn, "x", x, "a", a));
  char s1[160], s2[160];
  if ((b->ndim != 1 && b->ndim != 2) || b->sizes[0] != d)
    return ms_fail("%s: argument 'b' has shape %s but 'a' is %s, expected [%lld] or "
                   "[%lld,k]", fn, ms_shape_str(s1, b->ndim, b->sizes),
                   ms_shape_str(s2, a->ndim, a->sizes), (long long)d, (long long)d);
  MS_TRY(ms_check_shape(fn, "x", x, b->ndim, b->sizes));
  int64_t k = b->ndim == 2 ? b->sizes[1] : 1;
  if (k > INT_MAX / (d > 0 ? d : 1))
    return ms_fail("%s: argument 'b' is %s, larger than LAPACK's 32-bit limit", fn,
                   ms_shape_str(s1, b->ndim, b->sizes));
  if (d == 0 || k == 0) return 0;

  ms_tensor h = {0}, bt = {0}, bv = {0};
  int *ipiv = NULL, *iwork = NULL;
  double *work = NULL;
  int rc = -1;
  if (host_f64(&h, a, 2, a->sizes)) return -1;
  /* B column-major [d,k] = a row-major [k,d] buffer: copy b through its transposed view */
  int64_t bshape[2] = {k, d};
  int64_t bstrides[2] = {b->ndim == 2 ? b->strides[1] : 0, b->strides[0]};
  if (ms_tensor_view(&bv, b, 2, bshape, bstrides, b->offset) ||
      host_f64(&bt, &bv, 2, bshape))
    goto done;
  double *m = (double *)ms_ptr(&h), *rhs = (double *)ms_ptr(&bt);
  if (check_finite(fn, "a", m, d, d, 0)) goto done;
  for (int64_t r = 0; r < k; r++)   /* rhs[r d + c] is b[c, r]: name b's own element */
    for (int64_t c = 0; c < d; c++)
      if (!isfinite(rhs[r * d + c])) {
        double v = rhs[r * d + c];
        const char *what = isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
        if (b->ndim == 1)
          ms_fail("%s: argument 'b' holds %s at [%lld] (1-based), expected finite values", fn,
                  what, (long long)c + 1);
        else
          ms_fail("%s: argument 'b' holds %s at [%lld,%lld] (1-based), expected finite "
                  "values", fn, what, (long long)c + 1, (long long)r + 1);
        goto done;
      }

  int n = (int)d, nrhs = (int)k, info = 0;
  ipiv = malloc((size_t)n * sizeof *ipiv);
  iwork = malloc((size_t)n * sizeof *iwork);
  work = malloc((size_t)4 * n * sizeof *work);
  if (!ipiv || !iwork || !work) {
    ms_fail("%s: out of memory for LAPACK's workspace (d = %d)", fn, n);
    goto done;
  }
  const char one = '1', trans = 'T';
  double anorm = dlange_(&one, &n, &n, m, &n, work, 1), rcond = 0;
  dgetrf_(&n, &n, m, &n, ipiv, &info);
  if (info > 0) {
    ms_fail("%s: matrix 'a' is singular (the LU factorisation's pivot %d is exactly 0), "
            "expected an invertible matrix", fn, info);
    goto done;
  }
  dgecon_(&one, &n, m, &n, &anorm, &rcond, work, iwork, &info, 1);
  if (!(rcond >= DBL_EPSILON)) {
    ms_fail("%s: matrix 'a' is singular to working precision (reciprocal condition "
            "number %.3g < %.3g), expected an invertible matrix", fn, rcond, DBL_EPSILON);
    goto done;
  }
  dgetrs_(&trans, &n, &nrhs, m, &n, ipiv, rhs, &n, &info, 1);
  if (info != 0) {
    ms_fail("%s: LAPACK dgetrs failed (info %d)", fn, info);
    goto done;
  }
  /* rhs holds X column-major = X^T row-major [k,d]: copy out through the transposed view */
  ms_tensor xv;
  int64_t xshape[2] = {d, k}, xstrides[2] = {1, d};
  if (ms_tensor_view(&xv, &bt, b->ndim, xshape, xstrides, 0)) goto done;
  int crc = ms_copy(x, &xv);
  ms_tensor_release(&xv);
  if (crc) goto done;
  rc = 0;
done:
  free(ipiv);
  free(iwork);
  free(work);
  ms_tensor_release(&bv);
  ms_tensor_release(&bt);
  ms_tensor_release(&h);
  return rc;
}
