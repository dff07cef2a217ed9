/* cuda_stub.c — the CUDA backend of a library built without CUDA: no device exists,
 * and every device entry point fails with a message that says how to get one. */
#include "internal.h"
#include "optim_impl.h"
#include "window.h"

static int no_cuda(const char *fn) {
  return ms_fail("%s: CUDA is not available: this moonstep was built without CUDA "
                 "(rebuild with `make CUDA=1` where nvcc is installed)", fn);
}

int ms_cuda_compiled(void) { return 0; }
int ms_cuda_device_count(void) { return 0; }
int ms_cuda_synchronize(void) { return no_cuda("cuda.synchronize"); }
int ms_cuda_check(const char *fn) { return no_cuda(fn); }
int ms_cuda_malloc(void **p, int64_t nbytes) { (void)p, (void)nbytes; return no_cuda("cuda alloc"); }
void ms_cuda_free(void *p) { (void)p; }
int ms_cuda_memcpy(void *d, const void *s, int64_t n, int k) {
  (void)d, (void)s, (void)n, (void)k;
  return no_cuda("cuda memcpy");
}
int ms_cuda_copy(const ms_iter *it) { (void)it; return no_cuda("copy_"); }
int ms_cuda_fill(const ms_iter *it, double v) { (void)it, (void)v; return no_cuda("fill_"); }
int ms_cuda_arange(const ms_iter *it, double a, double b) {
  (void)it, (void)a, (void)b;
  return no_cuda("arange");
}
int ms_cuda_unary(const ms_iter *it, int op, double a, double b) {
  (void)it, (void)op, (void)a, (void)b;
  return no_cuda("unary");
}
int ms_cuda_binary(const ms_iter *it, int op, double a) {
  (void)it, (void)op, (void)a;
  return no_cuda("binary");
}
int ms_cuda_ternary(const ms_iter *it, int op, double a) {
  (void)it, (void)op, (void)a;
  return no_cuda("ternary");
}
int ms_cuda_reduce(const float *x, int64_t outer, int64_t size, int64_t inner, int op,
                   double param, double *out_host_all, void *out_dev, int32_t out_dtype,
                   int64_t base) {
  (void)x, (void)outer, (void)size, (void)inner, (void)op, (void)param, (void)out_host_all,
      (void)out_dev, (void)out_dtype, (void)base;
  return no_cuda("reduce");
}
int ms_cuda_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                 int64_t lda, int64_t sa, const float *b, int64_t ldb, int64_t sb, float beta,
                 float *c, int64_t ldc, int64_t sc, int64_t batch) {
  (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)sa,
      (void)b, (void)ldb, (void)sb, (void)beta, (void)c, (void)ldc, (void)sc, (void)batch;
  return no_cuda("matmul");
}
int ms_cuda_dot(const float *a, const float *b, int64_t n, double *out) {
  (void)a, (void)b, (void)n, (void)out;
  return no_cuda("dot");
}
int ms_cuda_index_select(float *out, const float *x, const int64_t *idx, int64_t outer,
                         int64_t size, int64_t inner, int64_t nidx, int64_t base, int esize,
                         int64_t *bad) {
  (void)out, (void)x, (void)idx, (void)outer, (void)size, (void)inner, (void)nidx,
      (void)base, (void)esize, (void)bad;
  return no_cuda("index_select");
}
int ms_cuda_gather(const ms_iter *it, int dim, int64_t size, int64_t sdim, int64_t base,
                   int64_t *bad) {
  (void)it, (void)dim, (void)size, (void)sdim, (void)base, (void)bad;
  return no_cuda("gather");
}
int ms_cuda_rng_fill(void *data, int32_t dtype, int64_t n, int dist, uint64_t seed,
                     uint64_t stream, double a, double b) {
  (void)data, (void)dtype, (void)n, (void)dist, (void)seed, (void)stream, (void)a, (void)b;
  return no_cuda("rng");
}
int ms_cuda_softmax(void *y, const void *x, int64_t rows, int64_t classes, int log_) {
  (void)y, (void)x, (void)rows, (void)classes, (void)log_;
  return no_cuda("softmax");
}
int ms_cuda_im2col(const int64_t *geom, const void *x, void *cols, double pad_value) {
  (void)geom, (void)x, (void)cols, (void)pad_value;
  return no_cuda("im2col");
}
int ms_cuda_col2im(const int64_t *geom, void *x, const void *cols) {
  (void)geom, (void)x, (void)cols;
  return no_cuda("col2im");
}
int ms_cuda_index_add(void *out, const void *src, const int64_t *idx, int64_t outer,
                      int64_t size, int64_t inner, int64_t nidx, int64_t base, int64_t *bad) {
  (void)out, (void)src, (void)idx, (void)outer, (void)size, (void)inner, (void)nidx,
      (void)base, (void)bad;
  return no_cuda("index_add_");
}
int ms_cuda_sgd_step(float *p, const float *g, float *buf, int64_t n, const ms_sgd_consts *k) {
  (void)p, (void)g, (void)buf, (void)n, (void)k;
  return no_cuda("sgd_step");
}
int ms_cuda_adam_step(float *p, const float *g, float *m, float *v, int64_t n,
                      const ms_adam_consts *k) {
  (void)p, (void)g, (void)m, (void)v, (void)n, (void)k;
  return no_cuda("adam_step");
}
int ms_cuda_avgpool2d(const int64_t *geom, const void *x, void *out) {
  (void)geom, (void)x, (void)out;
  return no_cuda("avgpool2d");
}
int ms_cuda_avgpool2d_backward(const int64_t *geom, void *gin, const void *gout) {
  (void)geom, (void)gin, (void)gout;
  return no_cuda("avgpool2d_backward");
}
int ms_cuda_maxpool2d(const int64_t *geom, const void *x, void *out, int64_t *argmax) {
  (void)geom, (void)x, (void)out, (void)argmax;
  return no_cuda("maxpool2d");
}
int ms_cuda_maxpool2d_backward(void *gin, const void *gout, const int64_t *argmax,
                               int64_t planes, int64_t hw, int64_t ohw) {
  (void)gin, (void)gout, (void)argmax, (void)planes, (void)hw, (void)ohw;
  return no_cuda("maxpool2d_backward");
}
