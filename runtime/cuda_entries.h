/* cuda_entries.h — the list of the CUDA backend's entry points.
 *
 * X(name, (parameters), "what the user called") per entry point, each returning int
 * (0, or -1 after ms_fail). From this one list:
 *   - internal.h declares the prototypes (the kernels/ .cu files define them: a .cu
 *     definition that disagrees is a compile error, "conflicting declaration of C
 *     function"),
 *   - cuda_stub.c defines the CPU-only build's stubs, each failing "<what>: CUDA is not
 *     available ..." (the compiler checks them against the same prototypes),
 *   - cuda_loader.c defines a CUDA build's trampolines into the plugin (the argument
 *     names parsed by cuda_args.awk: every parameter must be named, no array parameters).
 * Adding an entry point: a line here and its definition in a .cu file.
 *
 * Not in the list (hand-written in cuda_stub.c): ms_cuda_compiled, ms_cuda_device_count
 * and ms_cuda_why (public, moonstep.h), ms_cuda_check (fails naming its caller),
 * ms_cuda_free (void), and the optimizer entry points (declared with their rules,
 * runtime/optim*; the hand-written ones also listed as cuda_plugin.h's
 * MS_CUDA_HAND_ENTRIES). ms_cuda_workspace is the .cu files' own (common.cuh). */
#ifndef MS_CUDA_ENTRIES_H
#define MS_CUDA_ENTRIES_H

#define MS_CUDA_ENTRIES(X)                                                                \
  X(ms_cuda_synchronize, (void), "cuda.synchronize")                                      \
  X(ms_cuda_malloc, (void **p, int64_t nbytes), "cuda alloc")                             \
  /* kind: MS_H2D, MS_D2H or MS_D2D (internal.h) */                                      \
  X(ms_cuda_memcpy, (void *dst, const void *src, int64_t nbytes, int kind), "cuda memcpy") \
  /* kernels over an iterator built on device pointers; copy: 2 ops, dtype conversion */  \
  X(ms_cuda_copy, (const ms_iter *it), "copy_")                                           \
  X(ms_cuda_fill, (const ms_iter *it, double value), "fill_")                             \
  X(ms_cuda_arange, (const ms_iter *it, double start, double step), "arange")             \
  X(ms_cuda_unary, (const ms_iter *it, int op, double a, double b), "unary")              \
  X(ms_cuda_binary, (const ms_iter *it, int op, double alpha), "binary")                  \
  X(ms_cuda_ternary, (const ms_iter *it, int op, double alpha), "ternary")                \
  /* x contiguous float32 on the device, viewed as [outer, size, inner] */               \
  X(ms_cuda_reduce,                                                                       \
    (const float *x, int64_t outer, int64_t size, int64_t inner, int op, double param,    \
     double *out_host_all, void *out_dev, int32_t out_dtype, int64_t base),               \
    "reduce")                                                                             \
  /* gb[k] += sum of g [outer, size, inner] over o and i (float32, contiguous) */         \
  X(ms_cuda_bias_grad,                                                                    \
    (void *gb, const void *g, int64_t outer, int64_t size, int64_t inner), "bias_grad")  \
  X(ms_cuda_gemm,                                                                         \
    (int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,             \
     const float *a, int64_t lda, int64_t stride_a, const float *b, int64_t ldb,          \
     int64_t stride_b, float beta, float *c, int64_t ldc, int64_t stride_c,              \
     int64_t batch),                                                                      \
    "matmul")                                                                             \
  X(ms_cuda_dot, (const float *a, const float *b, int64_t n, double *out), "dot")         \
  /* out [outer, nidx, inner] <- x [outer, size, inner] at idx (contiguous all) */       \
  X(ms_cuda_index_select,                                                                 \
    (float *out, const float *x, const int64_t *idx, int64_t outer, int64_t size,         \
     int64_t inner, int64_t nidx, int64_t base, int esize, int64_t *bad_host),            \
    "index_select")                                                                       \
  X(ms_cuda_gather,                                                                       \
    (const ms_iter *it, int dim, int64_t size, int64_t xstride_dim, int64_t base,         \
     int64_t *bad_host),                                                                  \
    "gather")                                                                             \
  X(ms_cuda_rng_fill,                                                                     \
    (void *data, int32_t dtype, int64_t n, int dist, uint64_t seed, uint64_t stream,      \
     double a, double b),                                                                 \
    "rng")                                                                                \
  /* nn.c, conv.c, pool.c and index.c twins; geom points at an ms_geom                   \
     (runtime/window.h, 18 int64) */                                                      \
  X(ms_cuda_softmax, (void *y, const void *x, int64_t rows, int64_t classes, int log_),   \
    "softmax")                                                                            \
  /* *bad: the first row whose target is not a class (then not every output is written), \
     or -1; *total (when not NULL) only when *bad is -1 */                                \
  X(ms_cuda_cross_entropy,                                                                \
    (void *prob, void *losses, const void *x, const int64_t *target, int64_t rows,        \
     int64_t classes, int64_t base, double smoothing, double *total, int64_t *bad),      \
    "cross_entropy")                                                                      \
  X(ms_cuda_cross_entropy_backward,                                                       \
    (void *g, const void *prob, const int64_t *target, int64_t rows, int64_t classes,     \
     int64_t base, double smoothing, double scale, const void *row_scale),               \
    "cross_entropy_backward")                                                             \
  X(ms_cuda_im2col, (const int64_t *geom, const void *x, void *cols, double pad_value),   \
    "im2col")                                                                             \
  X(ms_cuda_col2im, (const int64_t *geom, void *x, const void *cols), "col2im")           \
  X(ms_cuda_maxpool2d, (const int64_t *geom, const void *x, void *out, int64_t *argmax),  \
    "maxpool2d")                                                                          \
  X(ms_cuda_maxpool2d_backward,                                                           \
    (void *gin, const void *gout, const int64_t *argmax, int64_t planes, int64_t hw,      \
     int64_t ohw),                                                                        \
    "maxpool2d_backward")                                                                 \
  X(ms_cuda_avgpool2d, (const int64_t *geom, const void *x, void *out), "avgpool2d")      \
  X(ms_cuda_avgpool2d_backward, (const int64_t *geom, void *gin, const void *gout),       \
    "avgpool2d_backward")                                                                 \
  /* ACME's passes (runtime/optim_acme.c, kernels/optim_acme.cu): ptrs p, g, m, v, w0, g0 */ \
  X(ms_cuda_acme,                                                                         \
    (int32_t op, float *const *ptrs, const int64_t *chunks, int64_t nchunks,              \
     const ms_acme_hyper *h, int32_t ngroups, int32_t flags, double *partial),            \
    "ACME.step")                                                                          \
  X(ms_cuda_index_add,                                                                    \
    (void *out, const void *src, const int64_t *idx, int64_t outer, int64_t size,         \
     int64_t inner, int64_t nidx, int64_t base, int64_t *bad_host),                       \
    "index_add_")                                                                        \
  /* zeroth-order directions (runtime/zo.c, zo_move.c; kernels/zo.cu), float32 arenas;    \
     dirs, coef, lr, wd in host memory, table the slice table's device copy */            \
  X(ms_cuda_zo_fill, (float *out, const float *w, int64_t n, int64_t rows,                \
                      const ms_zo_dir *dir, int64_t offset), "zo_fill")                   \
  X(ms_cuda_zo_move, (float *w, int64_t n, const ms_zo_dir *from, const ms_zo_log *in,    \
                      const ms_zo_dir *to, ms_zo_log *out), "zo_move")                    \
  X(ms_cuda_zo_estimate, (float *g, int64_t n, const ms_zo_dir *dirs, const double *coef, \
                          int32_t ndirs, int32_t divide, double beta), "zo_estimate")     \
  X(ms_cuda_zo_mezo, (float *w, int64_t n, const ms_zo_dir *from, const ms_zo_log *in,    \
                      const ms_zo_dir *dirs, const double *coef,                          \
                      int32_t ndirs, const int64_t *table, int32_t nslices,               \
                      const double *lr, const double *wd, int32_t ngroups), "zo_mezo_update")

#endif
