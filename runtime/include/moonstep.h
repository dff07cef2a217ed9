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

enum { MS_ABI_VERSION = 7 };
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
/* Ctrl-C: the handler sets a flag that every op checks on entry; the op then fails
 * with "interrupted". The REPL installs it while a chunk runs. */
void ms_sigint_install(void);
void ms_sigint_uninstall(void);
int ms_interrupt_pending(void);
void ms_interrupt_clear(void);

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

/* ---- the optimizer engine: fused steps and arena reductions ------------------------------
 * An optimizer updates the parameter arena (flat, contiguous, float32 or float64) from its
 * gradient arena in one pass, one kernel launch on the GPU. The arena is cut into slices
 * (one per parameter tensor); each slice belongs to a parameter group, and each group has
 * its own hyper-parameters. The per-element rules live in runtime/optim/<rule>.h, written
 * once for the C loops and the CUDA kernels; each rule derives its constants (1 - beta,
 * bias corrections, step sizes) in double on the host, once per group per step, and
 * rounds as torch.optim does in the arena's dtype: float32 runs reproduce PyTorch's
 * float32 trajectories. */
enum { MS_KIND_WEIGHT = 0, MS_KIND_BIAS = 1, MS_KIND_NORM = 2 };
enum { MS_OPTIM_MAX_GROUPS = 32 };

/* One slice of the arena: elements [offset, offset + count), 0-based. */
typedef struct ms_slice {
  int64_t offset, count;
  int32_t group;   /* its parameter group, 0-based, < the table's ngroups */
  int32_t kind;    /* MS_KIND_* (weight-decay masks and per-tensor rules read it) */
} ms_slice;

/* The slice table: sorted by offset, disjoint, covering the whole arena. */
typedef struct ms_slice_table {
  const ms_slice *slices;  /* host memory, nslices entries */
  int32_t nslices;         /* >= 1 */
  int32_t ngroups;         /* 1 .. MS_OPTIM_MAX_GROUPS */
  const int64_t *device;   /* GPU arenas: the table in device memory, int64
                              [2 nslices + 1] = offsets of the slices and the arena's
                              end, then their groups; NULL for CPU arenas */
} ms_slice_table;

/* The operands of one fused step. */
typedef struct ms_optim_args {
  ms_tensor *param;             /* the flat arena [n] */
  const ms_tensor *grad;        /* its gradient: same dtype, device and shape */
  ms_tensor *state[6];          /* the rule's buffers, like param; NULL where unused */
  const ms_slice_table *table;  /* NULL: uniform (one slice, group 0) */
  int64_t step;                 /* the step being taken, >= 1 */
} ms_optim_args;

/* Hyper-parameters of one group, as the user gave them (the rule derives the rest).
 * Values must be finite; the step functions check each and name it. */

/* SGD (torch.optim.SGD): d = g (-g if maximize) + wd p; with momentum (state[0] = buf):
 * buf = (step 1 ? d : mu buf + (1 - dampening) d), d = nesterov ? d + mu buf : buf;
 * p -= lr d. lr, momentum, weight_decay >= 0, dampening in [0, 1]; nesterov needs
 * momentum > 0 and dampening 0. Every group with momentum > 0 needs state[0]; the
 * buffer starts as the gradient at the group's first step with momentum (first = 1). */
typedef struct ms_sgd_hyper {
  double lr, momentum, dampening, weight_decay;
  int32_t nesterov, maximize, first;
} ms_sgd_hyper;
int ms_sgd_step(const ms_optim_args *a, const ms_sgd_hyper *h);

/* Adam / AdamW (torch.optim.Adam, AdamW): g (-g if maximize); decoupled = 0: g += wd p;
 * decoupled = 1: p *= 1 - lr wd; m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2;
 * amsgrad: vmax = max(vmax, v), used for v below;
 * p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), bc_i = 1 - b_i^step.
 * state: [0] m, [1] v, [2] vmax (amsgrad only). */
typedef struct ms_adam_hyper {
  double lr, beta1, beta2, eps, weight_decay;
  int32_t decoupled, amsgrad, maximize;
} ms_adam_hyper;
int ms_adam_step(const ms_optim_args *a, const ms_adam_hyper *h);

/* AutoSGM (somefunAgba/autosgm v2; the rule and its formulas: runtime/optim/autosgm.h).
 * window: the lr window's value F_t at this step (1 without one). num_lrc 1 is the
 * reference's (a = lr_init, as 0). compat: MS_AUTOSGM_* bits reproducing the reference's
 * quirks. state: [0] smoothing filter, [1] moment filter (aoptlr), [2..5] the numerator
 * estimator's (num_lrc 2: 1 buffer, 3: 3, 4: 4). aux: num_lrc 2-4 with per_layer 0 need
 * q (the element-wise numerator, like param); with per_layer 1, scratch (like param) and
 * q_slice (host, one double per slice: the per-slice numerator, updated by the step). */
enum {
  MS_AUTOSGM_SCALED_W = 1,              /* num_lrc 3 uses the beta_n-scaled E[w^2] */
  MS_AUTOSGM_LRC2_UNCLIPPED = 2,        /* num_lrc 2, per_layer 0: P not clipped at lr_init */
  MS_AUTOSGM_MAXIMIZE_FLIPS_DECAY = 4,  /* maximize negates the update, decay included */
  MS_AUTOSGM_NUDGE_ZEROS = 8            /* step 1: |p| < eps becomes p + eps */
};
typedef struct ms_autosgm_hyper {
  double lr_init, beta_n, beta_a, beta_i, gamma_i, eta_i, weight_decay, eps, cf, window;
  int32_t aoptlr, num_lrc, debias, repeat_eps, wd_level, per_layer, maximize, compat;
} ms_autosgm_hyper;
typedef struct ms_autosgm_aux {
  ms_tensor *q, *scratch;
  double *q_slice;
} ms_autosgm_aux;
int ms_autosgm_step(const ms_optim_args *a, const ms_autosgm_hyper *h, const ms_autosgm_aux *x);

/* ACME (ignasi00/acme, ICASSP 2025): the fused passes its step composes (the step and its
 * scalars: lua/moonstep/optim/ACME.lua; per-element formulas: runtime/optim/acme.h). Per
 * group, D(v) = (sqrt(v / bc2) + eps) bc1 with adam, else the constant dconst.
 *   MS_ACME_DOTS          out[4 g + j], j = 0..2: sums over group g of (m g)/D, (m m)/D and
 *                         (g g)/D (out[4 g + 3] = 0); v is read, not written
 *   MS_ACME_MOVE          update 1: the M-update m = b1 m + (1 - b1) kappa g, v = b2 v +
 *                         (1 - b2) (kappa g)^2 (adam) first; then, with D of that v,
 *                         w = base + step_m m/D [+ step_g gn/D when nesterov; gn = g0 if
 *                         gsel_g0 else g], w *= decay; base = w0 if from_saved else w;
 *                         update 2: the M-update after the move; guard 1: w = base,
 *                         m *= 1 - beta1, nothing else; guard 2: w = base only.
 *                         MS_ACME_SUM: out[4 g] = sum of (m y)/D with the moved m and D,
 *                         y = g0 if given else g
 *   MS_ACME_ASAM_NORM     out[4 g] = sum of (gh T)^2: gh = g / D (adam) or g, T = |w| + eta
 *                         on the slices with weight_rule[s] != 0, else 1
 *   MS_ACME_ASAM_PERTURB  w0 = w, then w += (gh T) T asam_scale
 * flags: MS_ACME_SAVE_W0 (MOVE: w0 = w first, in groups without from_saved),
 * MS_ACME_SAVE_G0 (MOVE, PERTURB: g0 = g first), MS_ACME_SUM. Quotients by D are products
 * with 1/D. Each term is computed in the arena's dtype and summed in float64 in
 * a fixed order (chunks of MS_REDUCE_BLOCK within each slice, slices in order): the same
 * bits whatever the thread count. */
enum ms_acme_op { MS_ACME_DOTS = 0, MS_ACME_MOVE = 1, MS_ACME_ASAM_NORM = 2, MS_ACME_ASAM_PERTURB = 3 };
enum { MS_ACME_SAVE_W0 = 1, MS_ACME_SAVE_G0 = 2, MS_ACME_SUM = 4 };
typedef struct ms_acme_hyper {
  double beta1, beta2, eps, bc1, bc2, dconst, kappa, step_m, step_g, decay, asam_scale, eta;
  int32_t adam, update, nesterov, gsel_g0, guard, from_saved;
} ms_acme_hyper;
typedef struct ms_acme_args {
  ms_tensor *param;
  const ms_tensor *grad;
  ms_tensor *m, *v, *w0, *g0;   /* like param; v: groups with adam; w0, g0: as the op needs */
  const ms_slice_table *table;  /* NULL: one slice, group 0 */
  const int32_t *weight_rule;   /* per slice (ASAM's T), NULL: none */
  int32_t flags;
} ms_acme_args;
int ms_acme_pass(int32_t op, const ms_acme_args *a, const ms_acme_hyper *h, double *out);

/* NAdam (PyTorch >= 2.0's torch.optim.NAdam): decoupled = 0: g += wd p; decoupled = 1:
 * p *= 1 - lr wd (NAdamW); mu_t = beta1 (1 - 0.5 0.96^(t momentum_decay));
 * m = lerp(m, g, 1 - beta1), v = beta2 v + (1 - beta2) g^2,
 * denom = sqrt(v / (1 - beta2^t)) + eps; p -= lr (1 - mu_t) / (1 - mu_product) g / denom
 * + lr mu_{t+1} / (1 - mu_product mu_{t+1}) m / denom. mu_product: prod_{i <= t} mu_i, kept
 * by the caller in the arena's dtype (PyTorch keeps it in the default dtype), in [0, 1).
 * state: [0] m, [1] v. */
typedef struct ms_nadam_hyper {
  double lr, beta1, beta2, eps, weight_decay, momentum_decay, mu_product;
  int32_t decoupled;
} ms_nadam_hyper;
int ms_nadam_step(const ms_optim_args *a, const ms_nadam_hyper *h);

/* RMSprop (torch.optim.RMSprop): g (-g if maximize) + wd p; v = alpha v + (1 - alpha) g^2;
 * centered: a = alpha a + (1 - alpha) g, avg = sqrt(v - a^2) + eps, else sqrt(v) + eps;
 * momentum > 0: buf = momentum buf + g / avg, p -= lr buf; else p -= lr g / avg.
 * alpha in [0, 1]; lr, eps, weight_decay, momentum >= 0.
 * state: [0] square_avg, [1] momentum_buffer (momentum > 0), [2] grad_avg (centered). */
typedef struct ms_rmsprop_hyper {
  double lr, alpha, eps, weight_decay, momentum;
  int32_t centered, maximize;
} ms_rmsprop_hyper;
int ms_rmsprop_step(const ms_optim_args *a, const ms_rmsprop_hyper *h);

/* Adagrad (torch.optim.Adagrad, dense): g (-g if maximize) + wd p;
 * sum = (step 1 ? initial_accumulator_value : sum) + g^2;
 * p -= lr / (1 + (step - 1) lr_decay) g / (sqrt(sum) + eps). Every value >= 0.
 * state: [0] sum. */
typedef struct ms_adagrad_hyper {
  double lr, lr_decay, weight_decay, initial_accumulator_value, eps;
  int32_t maximize;
} ms_adagrad_hyper;
int ms_adagrad_step(const ms_optim_args *a, const ms_adagrad_hyper *h);

/* BSAM (official Bayesian SAM, team-approx-bayes/bayesian-sam): one rule, three phases
 * (the fused passes of a step; formulas in runtime/optim/bsam.h). phase 0: state[2] = p,
 * p += sqrt(1 / (num_data s)) z with z in grad; 1: state[3] = sqrt(s g^2),
 * p = state[2] + rho g / s; 2: m = b1 m + (1 - b1) (g + wd state[2]),
 * p = state[2] - lr m / s, s = b2 s + (1 - b2) (state[3] + damping + wd).
 * state: [0] s (precision), [1] m, [2] the saved mean, [3] gs. */
typedef struct ms_bsam_hyper {
  double lr, beta1, beta2, weight_decay, rho, damping, num_data;
  int32_t phase;
} ms_bsam_hyper;
int ms_bsam_step(const ms_optim_args *a, const ms_bsam_hyper *h);

/* Deterministic reductions over an arena: fixed blocks of MS_REDUCE_BLOCK elements within
 * each slice, each block accumulated in float64, the blocks of a slice summed in order, the
 * slices summed in order: the same bits whatever the thread count (and on the GPU, whose
 * blocks are the same). out[0] = over the arena; out[1 + s] = over slice s when table is
 * not NULL (out then holds table->nslices + 1 values). b is used by MS_ARENA_DOT only. */
enum { MS_REDUCE_BLOCK = 4096 };
enum ms_arena_op {
  MS_ARENA_SUM, MS_ARENA_SUMSQ, MS_ARENA_DOT, MS_ARENA_ABSMAX,
  MS_ARENA_NONFINITE,  /* sum of a * 0: 0 when every element is finite, else nan */
  MS_ARENA_SQPROD,     /* sum of a^2 b^2 (||w g||^2 of the adaptive SAM forms) */
  MS_ARENA_ABSPROD     /* sum of a^2 |b| (with SQPROD and SUMSQ: ||(|w| + eta) g||^2) */
};
int ms_arena_reduce(int32_t op, const ms_tensor *a, const ms_tensor *b,
                    const ms_slice_table *table, double *out);
/* a[slice s] *= scale[s] for every slice s of the table (scale: nslices finite values). */
int ms_arena_scale(ms_tensor *a, const ms_slice_table *table, const double *scale);
/* y[slice s] = a[s] y + b[s] x for every slice s of the table (table NULL: one slice, a[0],
 * b[0]); x NULL: y = a[s] y. x and y: flat arenas of one dtype, device and size; the
 * coefficients finite, rounded to the arena's dtype. */
int ms_arena_axpby(ms_tensor *y, const double *a, const ms_tensor *x, const double *b,
                   const ms_slice_table *table);
/* The SAM family's ascent step, per slice s of the table (NULL: one slice, per[0]):
 * out = w + (t^power g) scale with t = |w| + eta, power 0, 1 or 2 (runtime/optim/
 * arena_ops.h); out may be w itself. */
typedef struct ms_perturb_slice {
  double scale, eta;
  int32_t power;
} ms_perturb_slice;
int ms_arena_perturb(const ms_tensor *w, const ms_tensor *g, ms_tensor *out,
                     const ms_slice_table *table, const ms_perturb_slice *per);
/* Exchange the contents of two whole arenas (same dtype, device and size, each the whole of
 * its storage) by trading their storages' memory: O(1), every view of either follows; the
 * same call again trades it back. The SAM family evaluates pass 2 at a perturbed copy this
 * way and comes back bit-exactly. A storage released while traded takes its memory back. */
int ms_arena_swap(ms_tensor *a, ms_tensor *b);
/* a's storage traded back to its own memory if it is traded (returns 1), else 0. */
int ms_arena_untrade(const ms_tensor *a);

/* ---- zeroth-order directions (runtime/zo.c, zo_move.c; rule: runtime/optim/zo.h) ------
 * u = direction `index` of step `step` under `seed`, element j = the global arena index:
 * Philox4x32-10, key (seed low, seed high), counter (block low, block high, index, step).
 * rademacher: 128 elements a block, word (j/32)%4, bit j%32 (+1 set, -1 clear);
 * segmented_uniform: 4 a block, word w = j%4, +-(2^23 + (w >> 9)) 2^-24 (+ when w & 1);
 * gaussian: 4 a block, Box-Muller on words (0,1) and (2,3) with moonstep's own log, sin
 * and cos (same bits on CPU and GPU). u is float32; the perturbation of element j is
 * d = fl(scale u) in the arena's dtype, and w' = fl(w + d). */
enum ms_zo_dist { MS_ZO_RADEMACHER = 0, MS_ZO_GAUSSIAN = 1, MS_ZO_SEGMENTED = 2 };
typedef struct ms_zo_dir {
  uint64_t seed;    /* the run's seed */
  uint64_t step;    /* k, < 2^32 */
  uint32_t index;   /* i, the direction within step k */
  int32_t dist;     /* enum ms_zo_dist */
  double scale;     /* d = fl(scale u); 0 = no perturbation */
} ms_zo_dir;
/* out[j] = fl(dir.scale u(offset + j)), out contiguous (row-major j), float32/float64.
 * A 2-D out [r, d] holds r directions: row k is direction dir.index + k (< 2^32) at elements
 * offset .. offset + d - 1 (one pass for r directions). */
int ms_zo_fill(ms_tensor *out, const ms_zo_dir *dir, int64_t offset);
/* out[j] = fl(w[j] + d(offset + j)); out may be w itself (in place, no log). */
int ms_zo_perturb(ms_tensor *out, const ms_tensor *w, const ms_zo_dir *dir, int64_t offset);
/* The exact-restore log of an in-place perturbation: for the elements whose subtraction
 * of the perturbation would not give them back, how to get the original bits: per chunk of
 * 4096 elements a byte stream of (gap, difference in units in the last place) entries,
 * about 2 bytes an entry (the original value in full for the rare others). Opaque; owns
 * host or device memory (that of the last arena it logged). */
typedef struct ms_zo_log ms_zo_log;
ms_zo_log *ms_zo_log_new(void);
void ms_zo_log_free(ms_zo_log *log);
int64_t ms_zo_log_count(const ms_zo_log *log);   /* entries held */
int64_t ms_zo_log_bytes(const ms_zo_log *log);   /* memory held (capacity) */
/* One pass over the arena w (contiguous): base = fl(w - d_from) (from NULL or scale 0:
 * base = w), the entries of log `in` put back exactly; then w = fl(base + d_to) (to NULL
 * or scale 0: w = base). With `out` (cleared first, in != out), every element with
 * fl(w - d_to) != base (bitwise) is logged there. So move(NULL -> +h u, out A);
 * move(+h u, A -> -h u, out B); move(-h u, B -> NULL) gives w back bit for bit. */
int ms_zo_move(ms_tensor *w, const ms_zo_dir *from, const ms_zo_log *in,
               const ms_zo_dir *to, ms_zo_log *out);
/* g[j] = beta g[j] + sum_i coef[i] W(u_i(j)) (i in order, in g's dtype); W(u) = u, or 1/u
 * when divide (rademacher and segmented_uniform only). dirs[i].scale is ignored; beta 0:
 * g is not read. */
int ms_zo_estimate(ms_tensor *g, const ms_zo_dir *dirs, const double *coef, int32_t n,
                   int32_t divide, double beta);
/* MeZO's fused update, in one pass with the last restore: base = w with `from` taken off
 * exactly as ms_zo_move(w, from, in, NULL, NULL) does (from NULL or scale 0, in NULL:
 * base = w), then w[j] = base[j] - lr_s (sum_i coef[i] u_i(j) + wd_s base[j]), lr_s and wd_s
 * those of the group of j's slice (table NULL: lr[0], wd[0]). A `from` equal to one of
 * dirs (scale aside) is generated once. */
int ms_zo_mezo_update(ms_tensor *w, const ms_zo_dir *from, const ms_zo_log *in,
                      const ms_zo_dir *dirs, const double *coef, int32_t n,
                      const ms_slice_table *table, const double *lr, const double *wd);

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
int ms_cuda_synchronize(void);

/* MS_CDEF_END */
#ifdef __cplusplus
}
#endif
#endif
