/* moonstep.h — the one public C ABI of the moonstep runtime.
 *
 * LuaJIT binds this file with ffi.cdef: everything between the MS_CDEF_BEGIN and
 * MS_CDEF_END markers must stay FFI-parseable (no macros, no preprocessor lines,
 * literal array sizes). Any other language can bind the same declarations.
 *
 * Conventions
 *   - Every entry point that can fail returns int: 0 on success, -1 on failure, and
 *     then ms_last_error() holds a message naming the function, the argument, what was
 *     given and what was expected. Nothing aborts; out of memory is an error.
 *   - Tensors are views (shape, strides, offset in elements) on refcounted storage;
 *     the device is a property of the storage. Ops write into an `out` tensor that the
 *     caller allocated with the right shape (out-parameter first, as in TH).
 *   - Indices in the C ABI are 0-based, except where a function takes `base`: index
 *     tensors are then read as base-based (Lua passes 1).
 *   - Not thread-safe per tensor: refcounts are plain ints, one host thread drives a
 *     tensor. Kernels themselves run multi-threaded (OpenMP) or on the GPU.
 */
#ifndef MOONSTEP_H
#define MOONSTEP_H
#include <stdint.h>
#include "moonstep_elementwise.h" /* the elementwise op enums */
#ifdef __cplusplus
extern "C" {
#endif
/* MS_CDEF_BEGIN */

enum { MS_ABI_VERSION = 10 };
enum { MS_MAX_DIMS = 8 };

enum ms_dtype { MS_FLOAT32 = 0, MS_FLOAT64 = 1, MS_INT64 = 2, MS_UINT8 = 3 };
enum ms_device { MS_CPU = 0, MS_CUDA = 1 };

typedef struct ms_storage {
  void *data;        /* host or device pointer, NULL for 0 bytes */
  int64_t nbytes;
  int32_t device;    /* enum ms_device */
  int32_t refcount;  /* number of tensors viewing this storage */
} ms_storage;

typedef struct ms_tensor {
  ms_storage *storage;  /* NULL once the tensor was released explicitly */
  int64_t offset;       /* first element, in elements */
  int64_t count;        /* number of elements: product of sizes */
  int64_t sizes[8];     /* the shape */
  int64_t strides[8];   /* in elements; 0 for broadcast (expanded) dims */
  int32_t ndim;         /* 0 .. MS_MAX_DIMS; 0 is a scalar with one element */
  int32_t dtype_id;     /* enum ms_dtype */
} ms_tensor;

/* ---- errors, version, threads, interrupt -------------------------------------- */
const char *ms_last_error(void);
int ms_abi_version(void);
int ms_num_threads(void);
void ms_set_num_threads(int n);
/* out[5]: threads asked for, threads in use now (1 while the guard against a loaded
 * machine holds moonstep's loops and OpenBLAS on the calling thread, runtime/threads.c),
 * serial episodes so far, late parallel regions so far (stalled 0.5 ms past what the
 * threads save), guard on (1) or off (MOONSTEP_THREAD_GUARD=0). */
void ms_thread_guard_stats(int64_t *out);
/* Ctrl-C: the handler sets a flag that every op checks on entry; the op then fails
 * with "interrupted". The REPL installs it while a chunk runs. */
void ms_sigint_install(void);
void ms_sigint_uninstall(void);
int ms_interrupt_pending(void);
void ms_interrupt_clear(void);
/* A line written to stderr by the handler at the next first press, once (the REPL's hint
 * while a JIT-compiled loop runs); NULL withdraws it; returns 1 if the last one was written. */
int ms_sigint_hint(const char *text);

/* ---- tensors -------------------------------------------------------------------
 * The caller owns tensor headers (Lua allocates them as GC-managed structs, C code
 * keeps them on the stack); the functions below fill a header that holds no storage
 * reference yet, and ms_tensor_release drops it again. */
int ms_tensor_empty(ms_tensor *out, int32_t ndim, const int64_t *shape, int32_t dtype,
                    int32_t device);
/* out views base's storage; every element it can address must lie inside the
 * storage (checked). Used for reshape, narrow, select, transpose, expand. */
int ms_tensor_view(ms_tensor *out, const ms_tensor *base, int32_t ndim,
                   const int64_t *shape, const int64_t *stride, int64_t offset);
/* Drops the storage reference (the finaliser, and an explicit early free); the
 * header then reads as freed and any op on it is an error. Idempotent. */
void ms_tensor_release(ms_tensor *t);
int ms_tensor_is_contiguous(const ms_tensor *t);
/* 0 when t is live and its header is consistent (rank, dtype, device, count, every
 * addressable element inside its storage), else -1. The fields are plain struct members
 * a script can overwrite; the Lua side calls this before it reads CPU memory itself. */
int ms_tensor_check(const ms_tensor *t);
/* CPU storage of 64 KiB and more is cached after release and reused for the next
 * request of the same size (a training step allocates the same shapes every time; a
 * fresh block costs page faults). At most 1 GiB is kept; these report and empty it. */
int64_t ms_cpu_cache_bytes(void);
void ms_cpu_cache_clear(void);
int ms_dtype_size(int32_t dtype);

/* Element access for any device (the Lua layer reads CPU memory directly). */
int ms_get(const ms_tensor *t, const int64_t *index, double *value);
int ms_set(ms_tensor *t, const int64_t *index, double value);

/* dst <- src, converting dtype, broadcasting src to dst's shape, across devices. */
int ms_copy(ms_tensor *dst, const ms_tensor *src);
int ms_fill(ms_tensor *t, double value);
/* t[i] = start + i * step over the flattened (row-major) elements. */
int ms_arange(ms_tensor *t, double start, double step);

/* ---- elementwise ---------------------------------------------------------------
 * float32 on CPU and CUDA, float64 on CPU. `out` may alias an input (in-place) when
 * it has the same shape and strides. Broadcasting follows NumPy/PyTorch rules. */
/* The ops (enums ms_unary_op, ms_binary_op, ms_ternary_op: MS_NEG, MS_ADD, MS_LERP, ...)
 * are listed once, in moonstep_elementwise.h (included at the top of this file; the Lua
 * side derives the same constants from its text). */
int ms_unary(ms_tensor *out, const ms_tensor *x, int32_t op, double a, double b);
int ms_binary(ms_tensor *out, const ms_tensor *a, const ms_tensor *b, int32_t op,
              double alpha);
int ms_ternary(ms_tensor *out, const ms_tensor *a, const ms_tensor *b,
               const ms_tensor *c, int32_t op, double alpha);

/* ---- reductions: accumulate in float64 ------------------------------------------ */
enum ms_reduce_op {
  MS_SUM, MS_MEAN, MS_RMAX, MS_RMIN, MS_ARGMAX, MS_ARGMIN,
  MS_NORM,  /* p-norm, p = param (inf allowed) */
  MS_VAR,   /* variance with correction = param (1 = unbiased) */
  MS_REDUCE_COUNT
};
/* Over all elements: *value gets the result; for ARGMAX/ARGMIN *value is the 0-based
 * flat index. An empty tensor is an error for max/min/arg*. */
int ms_reduce_all(const ms_tensor *x, int32_t op, double param, double *value);
/* Over one dim (0-based): out holds the other dims in order (numel = numel(x)/size);
 * out is float for values and int64 for arg ops (then base-based indices). */
int ms_reduce_dim(ms_tensor *out, const ms_tensor *x, int32_t dim, int32_t op,
                  double param, int64_t base);
/* Bias gradients: out[k] += the sum of g over every dim but dim (0-based), k indexing
 * that dim (a Linear's g [N, out] with dim 1, a convolution's [N, C, H, W] with dim 1).
 * float; out contiguous with g->sizes[dim] elements; sums in float64, rounded once, then
 * added (for g [N, out]: bit for bit g:sum(1) added to out), in one pass, no temporary. */
int ms_bias_grad(ms_tensor *out, const ms_tensor *g, int32_t dim);

/* ---- sort, topk, cumsum along one dim (runtime/sort.c; CPU only: a CUDA tensor is an
 * error) ------------------------------------------------------------------------------
 * dim 0-based; outputs contiguous CPU tensors not sharing memory with x. NaN is greater
 * than every number; equal values keep their input order. values has x's dtype (any of
 * the four), indices int64 (base-based positions along dim).
 * ms_sort: values/indices of x's shape, the line sorted (descending nonzero: largest
 * first, NaN first). ms_topk: x's shape with dim's size k (0 <= k <= size): the first k
 * of the sort (largest nonzero: descending). ms_cumsum: out of x's shape and dtype
 * (float32, float64, int64): prefix sums along dim; float lines add in float64 and round
 * each prefix once (PyTorch's CPU kernel), int64 wraps around. */
int ms_sort(ms_tensor *values, ms_tensor *indices, const ms_tensor *x, int32_t dim,
            int32_t descending, int64_t base);
int ms_topk(ms_tensor *values, ms_tensor *indices, const ms_tensor *x, int32_t dim, int64_t k,
            int32_t largest, int64_t base);
int ms_cumsum(ms_tensor *out, const ms_tensor *x, int32_t dim);

/* ---- linear algebra -------------------------------------------------------------- */
/* sum a[i]*b[i] over equal-numel float tensors, accumulated in float64. */
int ms_dot(const ms_tensor *a, const ms_tensor *b, double *value);
/* out = alpha * op(a) @ op(b) + beta * out, op = transpose when trans_* is nonzero.
 * 2-D: a [m,k], b [k,n], out [m,n]. 3-D: batched over dim 0 (a or b may have batch
 * stride 0). out must be contiguous. */
int ms_matmul(ms_tensor *out, const ms_tensor *a, const ms_tensor *b, int32_t trans_a,
              int32_t trans_b, double alpha, double beta);

/* ---- dense solvers (LAPACK; runtime/linalg.c) ------------------------------------------
 * a: a float32/float64 [d,d] matrix, any strides. Computed in float64 on the host (CUDA
 * operands are copied to the host and the results back: meant for small d), results
 * rounded once to a's dtype; outputs have a's dtype and device and may alias a.
 * Non-finite input is an error naming the element. */
/* Symmetric eigen-decomposition from a's LOWER triangle only (the upper is not read):
 * a = V diag(vals) V^T, vals [d] ascending, vecs [d,d] with the orthonormal eigenvectors
 * as columns (signs as LAPACK dsyevd gives them); vecs NULL: eigenvalues only. */
int ms_linalg_eigh(ms_tensor *vals, ms_tensor *vecs, const ms_tensor *a);
/* x = a^{-1} b by LU with partial pivoting, b and x [d] or [d,k]. A singular a, or one
 * whose reciprocal condition number is below float64's epsilon, is an error. */
int ms_linalg_solve(ms_tensor *x, const ms_tensor *a, const ms_tensor *b);

/* ---- indexing -------------------------------------------------------------------- */
/* out = x with dim restricted to the entries of the 1-D int64 index (base-based). */
int ms_index_select(ms_tensor *out, const ms_tensor *x, int32_t dim,
                    const ms_tensor *index, int64_t base);
/* out[i..] = x[..index[i..]..] along dim; index has out's shape (torch.gather). */
int ms_gather(ms_tensor *out, const ms_tensor *x, int32_t dim, const ms_tensor *index,
              int64_t base);
/* out.index_select(dim, index) += src, summing repeated indices (embedding backward);
 * float; out and src contiguous, src of out's shape with dim replaced by index's length. */
int ms_index_add(ms_tensor *out, int32_t dim, const ms_tensor *index, const ms_tensor *src,
                 int64_t base);

/* ---- neural-network kernels ---------------------------------------------------------
 * float32 on CPU and CUDA, float64 on CPU (gradient checks). */
/* Softmax (log_ = 0) or log-softmax (log_ = 1) over the last dim: x and out contiguous
 * with the same shape, viewed as [rows, classes]. */
int ms_softmax(ms_tensor *out, const ms_tensor *x, int32_t log_);
/* Cross-entropy in its plain case (no class weights, no target ignored), one pass each way.
 * x [rows, classes] float and target [rows] int64 (class indices from base), contiguous.
 * Forward: prob [rows, classes] gets softmax(x) (kept for the backward), losses [rows]
 *   loss_r = -(1 - e) logp[r, t_r] - e/classes sum_j logp[r, j]  (e = smoothing in [0, 1],
 *   logp = log_softmax(x), computed in float64 from x and the log-sum-exp),
 * and *total (when not NULL) their sum in float64, in row order. A target outside
 * [base, base + classes) is an error, unless bad is given: *bad then gets its 0-based row
 * (-1 when every target is a class) and the outputs are not all written (the caller takes
 * its general path: ignore_index, the message it wants). */
int ms_cross_entropy(ms_tensor *prob, ms_tensor *losses, const ms_tensor *x,
                     const ms_tensor *target, int64_t base, double smoothing, double *total,
                     int64_t *bad);
/* Its gradient from the forward's prob: out [rows, classes] (may be prob itself)
 *   out[r, j] = ((prob[r, j] - e/classes) - (1 - e) [j = t_r]) * (scale * row_scale[r])
 * in float64, rounded once (row_scale: [rows] of prob's dtype, or NULL for 1). */
int ms_cross_entropy_backward(ms_tensor *out, const ms_tensor *prob, const ms_tensor *target,
                              int64_t base, double smoothing, double scale,
                              const ms_tensor *row_scale);
/* The window of a 2-d convolution or pooling (PyTorch's geometry): output (oy, ox)
 * reads input rows oy*sh - pt + i*dh for i in [0, kh) and columns ox*sw - pl + j*dw
 * for j in [0, kw); outside the input is padding. Kernel, stride and dilation >= 1,
 * padding >= 0 (top/bottom and left/right may differ: 'same' with even kernels).
 * oh = (H + pt + pb - dh*(kh-1) - 1)/sh + 1 rounded down, or up with ceil_mode (less
 * one if the last window would start past the input and its top padding); OW alike.
 * ms_window2d_out validates win for an H x W input (overflow-checked) and sets oh, ow;
 * every window op below does the same itself. */
typedef struct ms_window2d {
  int64_t kh, kw, sh, sw, dh, dw;
  int64_t pt, pb, pl, pr;
  int64_t ceil_mode;
  int64_t oh, ow;
} ms_window2d;
int ms_window2d_out(ms_window2d *win, int64_t h, int64_t w);
/* Convolution lowering. x [N, C, H, W] contiguous; cols [C*kh*kw, N*OH*OW]: row
 * k = (c*kh + i)*kw + j, column (n*OH + oy)*OW + ox holds x[n, c, oy*sh - pt + i*dh,
 * ox*sw - pl + j*dw] (pad_value outside). With the batch in the columns, a convolution
 * is one GEMM W [O, K] @ cols (per group: rows of one group are contiguous). col2im is
 * the adjoint: x = the sum of cols back at those positions (x is overwritten). */
int ms_im2col(ms_tensor *cols, const ms_tensor *x, const ms_window2d *win, double pad_value);
int ms_col2im(ms_tensor *x, const ms_tensor *cols, const ms_window2d *win);
/* The convolution GEMM's output and gradient between its layout [O, N*L] (L = OH*OW)
 * and the batch's [N, O, L], one pass each (CPU only; contiguous, one float dtype).
 * ms_conv2d_output: y [N, O, L] = Y as [O, N, L] transposed, + bias[o] (bias [O] or NULL).
 * ms_conv2d_grad_output: G [O, N*L] = g [N, O, L] transposed, and gbias[o] += the sum of
 * g[:, o, :] (gbias [O] or NULL). */
int ms_conv2d_output(ms_tensor *y, const ms_tensor *Y, const ms_tensor *bias);
int ms_conv2d_grad_output(ms_tensor *G, ms_tensor *gbias, const ms_tensor *g);
/* Max pooling over win (padding never wins; dilation, ceil_mode as PyTorch).
 * x [N, C, H, W] -> out [N, C, OH, OW] and argmax [N, C, OH, OW] (int64, the 0-based
 * position h*W + w of the first maximum in its plane, -1 for a window that covers no
 * input element: its output is -inf). The backward pass writes gin [N, C, H, W]: zero,
 * plus each gout routed to its argmax (summed where windows overlap). */
int ms_maxpool2d(ms_tensor *out, ms_tensor *argmax, const ms_tensor *x, const ms_window2d *win);
int ms_maxpool2d_backward(ms_tensor *gin, const ms_tensor *gout, const ms_tensor *argmax);
/* Average pooling over win (dilation 1): the sum of each window's input elements over
 * a divisor: divisor if non-zero, else (count_include_pad) the window's size cut at the
 * end of the bottom/right padding, else its number of input elements (PyTorch's rule).
 * x [N, C, H, W] -> out [N, C, OH, OW]; the backward pass spreads gout back (gin is
 * overwritten). */
int ms_avgpool2d(ms_tensor *out, const ms_tensor *x, const ms_window2d *win,
                 int32_t count_include_pad, int64_t divisor);
int ms_avgpool2d_backward(ms_tensor *gin, const ms_tensor *gout, const ms_window2d *win,
                          int32_t count_include_pad, int64_t divisor);

/* ---- optimizers: the engine's fused steps, arena reductions and the zeroth-order
 * directions are declared in moonstep_optim.h (included at the end of this file). ---- */

/* ---- random numbers: Philox4x32-10 ------------------------------------------------
 * Element i of a fill depends only on (seed, stream, i): counter (i/4 as 64 bits,
 * stream as 64 bits), key = seed. Same bits on CPU and GPU for any thread count. */
enum ms_dist {
  MS_UNIFORM,     /* [a, b) */
  MS_NORMAL,      /* mean a, std b (Box-Muller) */
  MS_RADEMACHER,  /* -1 or +1 with probability 1/2 */
  MS_BERNOULLI,   /* 1 with probability a, else 0 */
  MS_DIST_COUNT
};
void ms_philox4x32_10(const uint32_t *counter, const uint32_t *key, uint32_t *out);
int ms_rng_fill(ms_tensor *t, int32_t dist, uint64_t seed, uint64_t stream, double a,
                double b);
/* The global generator: a seed and the next stream; each fill from it uses one stream. */
void ms_manual_seed(uint64_t seed);
void ms_rng_get_state(uint64_t *seed, uint64_t *stream);
void ms_rng_set_state(uint64_t seed, uint64_t stream);
int ms_random_fill(ms_tensor *t, int32_t dist, double a, double b);

/* ---- checkpoints ---------------------------------------------------------------------
 * File: "MSCKPT\r\n", u32 version (1), u32 flags (0), u64 payload length, u32 CRC-32
 * (zlib) of the payload, u32 zero; then the payload, one value, little-endian:
 *   tag u8: 0 nil, 1 false, 2 true, 3 number (f64), 4 string (u64 length, bytes),
 *           5 table (u64 pair count, then key value, value value per pair),
 *           6 tensor (u8 dtype, u8 ndim, ndim u64 sizes, row-major element bytes).
 * ms_ckpt_parse validates a whole file held in memory (header, CRC, every length and
 * offset, values nested at most MS_CKPT_MAX_DEPTH tables deep: the root is depth 0) and
 * lists its values in pre-order; nodes == NULL only counts them. Any inconsistency is an
 * error naming the byte offset. ms_ckpt_next decodes the one value at *pos (a table's
 * entries follow it) and advances *pos: the loader walks a validated file with it
 * (payload starts at byte 32). Messages carry no function name; callers add theirs. */
enum { MS_CKPT_VERSION = 1 };
enum { MS_CKPT_MAX_DEPTH = 64 };
enum ms_ckpt_tag { MS_CKPT_NIL, MS_CKPT_FALSE, MS_CKPT_TRUE, MS_CKPT_NUMBER, MS_CKPT_STRING,
                   MS_CKPT_TABLE, MS_CKPT_TENSOR };
typedef struct ms_ckpt_node {
  int32_t tag;
  int32_t dtype;       /* tensor */
  int32_t ndim;        /* tensor */
  int32_t depth;
  double number;
  int64_t offset;      /* string bytes or tensor data: byte offset into the file */
  int64_t length;      /* string length, tensor byte count, or table pair count */
  int64_t sizes[8];    /* tensor */
} ms_ckpt_node;
int ms_ckpt_parse(const uint8_t *buf, int64_t len, ms_ckpt_node *nodes, int64_t cap,
                  int64_t *count);
uint32_t ms_crc32(uint32_t crc, const void *data, int64_t len);
int ms_ckpt_next(const uint8_t *buf, int64_t len, int64_t *pos, ms_ckpt_node *node);
/* Atomic saving: begin creates a unique temporary file "<path>.tmp-XXXXXX" next to path
 * (NULL on failure), write appends payload bytes (CRC and length kept), commit writes
 * the header, fsyncs, renames over path, fsyncs the directory and frees the writer
 * (failure or not); abort closes and removes the temporary and frees the writer. */
typedef struct ms_ckpt_writer ms_ckpt_writer;
ms_ckpt_writer *ms_ckpt_begin(const char *path);
int ms_ckpt_write(ms_ckpt_writer *w, const void *p, int64_t n);
int ms_ckpt_commit(ms_ckpt_writer *w);
void ms_ckpt_abort(ms_ckpt_writer *w);
/* Reading files without hanging on FIFOs or reading directories: ms_open_regular opens
 * a regular file (anything else is an error naming what it is) and returns its fd and
 * size; ms_read_file reads one whole (max_bytes < 0: no limit) into a buffer to free
 * with ms_free_file; ms_gzopen_regular opens one with zlib (gzip or raw; NULL on error). */
int ms_open_regular(const char *path, int64_t *size);
int ms_read_file(const char *path, int64_t max_bytes, uint8_t **buf, int64_t *len);
void ms_free_file(uint8_t *buf);
struct gzFile_s *ms_gzopen_regular(const char *path, int64_t *size);

/* ---- CUDA -------------------------------------------------------------------------- */
int ms_cuda_compiled(void);       /* 1 when this library was built with CUDA */
int ms_cuda_device_count(void);   /* 0 without a usable GPU or driver */
/* "" when a GPU is usable, else why not (built without CUDA, no driver, the CUDA plugin
 * not loadable, no device). A CUDA build loads its plugin here when a driver is present. */
const char *ms_cuda_why(void);
int ms_cuda_synchronize(void);

/* MS_CDEF_END */
#ifdef __cplusplus
}
#endif
#include "moonstep_optim.h" /* the optimizers' half of the ABI */
#endif
