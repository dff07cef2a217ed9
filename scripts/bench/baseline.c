/* baseline.c — the competitor of scripts/bench/core.lua: plain C loops over float
 * arrays, compiled with the same flags as libmoonstep (make bench builds it). What a
 * hand-written loop achieves is the bandwidth moonstep's elementwise ops should reach.
 * nth: OpenMP threads; arrays of n floats. The training kernels' loops (below) are the
 * competitors of scripts/bench/kernels.lua. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

void bl_add(float *o, const float *a, const float *b, int64_t n, int nth) {
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t i = 0; i < n; i++) o[i] = a[i] + b[i];
}

void bl_mul(float *o, const float *a, const float *b, int64_t n, int nth) {
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t i = 0; i < n; i++) o[i] = a[i] * b[i];
}

/* y += alpha * x */
void bl_axpy(float *y, float alpha, const float *x, int64_t n, int nth) {
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

/* ---- training kernels: the competitors of scripts/bench/kernels.lua ------------------
 * Each is the plain loop a programmer would write for the shapes the benchmark's models
 * use (float32, contiguous, no bounds checks beyond the padding), with the same layout
 * and semantics as moonstep's kernel, so that its time is what moonstep's should reach. */
/* Max pooling 2x2, stride 2, no padding: x [P, H, W] planes -> y, idx [P, H/2, W/2];
 * idx = h*W + w of the first maximum (as ms_maxpool2d's argmax). */
void bl_maxpool2x2(float *y, int64_t *idx, const float *x, int64_t planes, int64_t h, int64_t w,
                   int nth) {
  int64_t oh = h / 2, ow = w / 2;
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t p = 0; p < planes; p++) {
    const float *xp = x + p * h * w;
    float *yp = y + p * oh * ow;
    int64_t *ip = idx + p * oh * ow;
    for (int64_t oy = 0; oy < oh; oy++) {
      const float *r0 = xp + 2 * oy * w, *r1 = r0 + w;
      for (int64_t ox = 0; ox < ow; ox++) {
        /* selects, not branches (random data would mispredict half of them); ties keep
         * the first: the pair of row 0 before row 1, left before right */
        float a0 = r0[2 * ox], a1 = r0[2 * ox + 1], a2 = r1[2 * ox], a3 = r1[2 * ox + 1];
        int64_t c1 = a1 > a0, c3 = a3 > a2;
        float m01 = c1 ? a1 : a0, m23 = c3 ? a3 : a2;
        int64_t c = m23 > m01;
        yp[oy * ow + ox] = c ? m23 : m01;
        ip[oy * ow + ox] = 2 * oy * w + 2 * ox + (c ? w + c3 : c1);
      }
    }
  }
}

/* Its backward: gx [P, H*W] zeroed, each gy routed to its idx. */
void bl_maxpool_backward(float *gx, const float *gy, const int64_t *idx, int64_t planes,
                         int64_t hw, int64_t l, int nth) {
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t p = 0; p < planes; p++) {
    float *gp = gx + p * hw;
    memset(gp, 0, (size_t)hw * sizeof(float));
    for (int64_t i = 0; i < l; i++) gp[idx[p * l + i]] += gy[p * l + i];
  }
}

/* Average pooling 2x2, stride 2, no padding, and its backward (gx = gy / 4 spread). */
void bl_avgpool2x2(float *y, const float *x, int64_t planes, int64_t h, int64_t w, int nth) {
  int64_t oh = h / 2, ow = w / 2;
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t p = 0; p < planes; p++) {
    const float *xp = x + p * h * w;
    float *yp = y + p * oh * ow;
    for (int64_t oy = 0; oy < oh; oy++) {
      const float *r0 = xp + 2 * oy * w, *r1 = r0 + w;
      for (int64_t ox = 0; ox < ow; ox++)
        yp[oy * ow + ox] = (r0[2 * ox] + r0[2 * ox + 1] + r1[2 * ox] + r1[2 * ox + 1]) * 0.25f;
    }
  }
}

void bl_avgpool2x2_backward(float *gx, const float *gy, int64_t planes, int64_t h, int64_t w,
                            int nth) {
  int64_t oh = h / 2, ow = w / 2;
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t p = 0; p < planes; p++) {
    float *gp = gx + p * h * w;
    const float *yp = gy + p * oh * ow;
    for (int64_t oy = 0; oy < oh; oy++) {
      float *r0 = gp + 2 * oy * w, *r1 = r0 + w;
      for (int64_t ox = 0; ox < ow; ox++) {
        float v = yp[oy * ow + ox] * 0.25f;
        r0[2 * ox] = v; r0[2 * ox + 1] = v; r1[2 * ox] = v; r1[2 * ox + 1] = v;
      }
    }
  }
}

/* im2col for a k x k window, stride 1, padding pad (output size = input size when
 * k = 2 pad + 1): x [N, C, H, W] -> cols [C*k*k, N*H*W] (ms_im2col's layout). */
void bl_im2col(float *cols, const float *x, int64_t n, int64_t c, int64_t h, int64_t w,
               int64_t k, int64_t pad, int nth) {
  int64_t oh = h + 2 * pad - k + 1, ow = w + 2 * pad - k + 1, l = oh * ow;
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t r = 0; r < c * k * k; r++) {
    int64_t ch = r / (k * k), i = (r / k) % k, j = r % k;
    float *out = cols + r * n * l;
    for (int64_t b = 0; b < n; b++) {
      const float *xp = x + (b * c + ch) * h * w;
      for (int64_t oy = 0; oy < oh; oy++) {
        int64_t iy = oy - pad + i;
        float *o = out + b * l + oy * ow;
        if (iy < 0 || iy >= h) { memset(o, 0, (size_t)ow * sizeof(float)); continue; }
        for (int64_t ox = 0; ox < ow; ox++) {
          int64_t ix = ox - pad + j;
          o[ox] = (ix >= 0 && ix < w) ? xp[iy * w + ix] : 0.0f;
        }
      }
    }
  }
}

/* Its adjoint: x [N, C, H, W] = the sum of cols back at their positions (overwritten);
 * parallel over channels (a channel's rows write only its planes). */
void bl_col2im(float *x, const float *cols, int64_t n, int64_t c, int64_t h, int64_t w,
               int64_t k, int64_t pad, int nth) {
  int64_t oh = h + 2 * pad - k + 1, ow = w + 2 * pad - k + 1, l = oh * ow;
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t ch = 0; ch < c; ch++) {
    for (int64_t b = 0; b < n; b++) {
      float *xp = x + (b * c + ch) * h * w;
      memset(xp, 0, (size_t)(h * w) * sizeof(float));
      for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < k; j++) {
          const float *in = cols + ((ch * k + i) * k + j) * n * l + b * l;
          for (int64_t oy = 0; oy < oh; oy++) {
            int64_t iy = oy - pad + i;
            if (iy < 0 || iy >= h) continue;
            int64_t lo = pad - j > 0 ? pad - j : 0, hi = w + pad - j < ow ? w + pad - j : ow;
            for (int64_t ox = lo; ox < hi; ox++) xp[iy * w + ox - pad + j] += in[oy * ow + ox];
          }
        }
    }
  }
}

/* y [rows, cols] = max(y + b, 0) in one pass (a Linear's bias and the ReLU after it). */
void bl_bias_relu(float *y, const float *b, int64_t rows, int64_t cols, int nth) {
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      float v = y[r * cols + c] + b[c];
      y[r * cols + c] = v > 0.0f ? v : 0.0f;
    }
}

/* ReLU backward: gx = y > 0 ? gy : 0. */
void bl_relu_backward(float *gx, const float *gy, const float *y, int64_t n, int nth) {
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float g = gy[i];                  /* loaded first: a select, not a branch */
    gx[i] = y[i] > 0.0f ? g : 0.0f;
  }
}

/* A Linear's bias gradient: gb [cols] += the column sums of g [rows, cols]. */
void bl_colsum(float *gb, const float *g, int64_t rows, int64_t cols, int nth) {
  int64_t chunk = (cols + nth - 1) / nth;
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int t = 0; t < nth; t++) {
    int64_t c0 = t * chunk, c1 = c0 + chunk < cols ? c0 + chunk : cols;
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = c0; c < c1; c++) gb[c] += g[r * cols + c];
  }
}

/* Softmax + cross-entropy (mean over rows), x [rows, classes], labels 0-based:
 * forward returns the loss, backward writes g = (softmax(x) - onehot) / rows. */
double bl_ce_forward(const float *x, const int64_t *y, int64_t rows, int64_t classes) {
  double loss = 0;
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * classes;
    float m = xr[0];
    for (int64_t c = 1; c < classes; c++) m = xr[c] > m ? xr[c] : m;
    float s = 0;
    for (int64_t c = 0; c < classes; c++) s += expf(xr[c] - m);
    loss += (double)(logf(s) + m - xr[y[r]]);
  }
  return loss / (double)rows;
}

void bl_ce_backward(float *g, const float *x, const int64_t *y, int64_t rows, int64_t classes) {
  float inv = 1.0f / (float)rows;
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * classes;
    float *gr = g + r * classes;
    float m = xr[0];
    for (int64_t c = 1; c < classes; c++) m = xr[c] > m ? xr[c] : m;
    float s = 0;
    for (int64_t c = 0; c < classes; c++) { gr[c] = expf(xr[c] - m); s += gr[c]; }
    float k = inv / s;
    for (int64_t c = 0; c < classes; c++) gr[c] *= k;
    gr[y[r]] -= inv;
  }
}

/* A convolution's output epilogue: Y [O, N*L] (the GEMM's) -> y [N, O, L] plus bias. */
void bl_conv_out(float *y, const float *yg, const float *b, int64_t n, int64_t o, int64_t l,
                 int nth) {
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t i = 0; i < n * o; i++) {
    int64_t bn = i / o, ch = i % o;
    const float *src = yg + ch * n * l + bn * l;
    float *dst = y + i * l, bias = b[ch];
    for (int64_t j = 0; j < l; j++) dst[j] = src[j] + bias;
  }
}

/* Its backward prologue: g [N, O, L] -> Gm [O, N*L], and gb [O] += the sums. */
void bl_conv_grad_output(float *gm, float *gb, const float *g, int64_t n, int64_t o, int64_t l,
                     int nth) {
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t ch = 0; ch < o; ch++) {
    float s = 0;
    for (int64_t bn = 0; bn < n; bn++) {
      const float *src = g + (bn * o + ch) * l;
      float *dst = gm + ch * n * l + bn * l;
      for (int64_t j = 0; j < l; j++) { dst[j] = src[j]; s += src[j]; }
    }
    gb[ch] += s;
  }
}

/* The bandwidth references: o = a (reads and writes 4 bytes per float each), o = 0. */
void bl_copy(float *o, const float *a, int64_t n, int nth) {
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t i = 0; i < n; i++) o[i] = a[i];
}

void bl_zero(float *o, int64_t n, int nth) {
#pragma omp parallel num_threads(nth)
  {
    int t = omp_get_thread_num(), k = omp_get_num_threads();
    int64_t lo = n * t / k, hi = n * (t + 1) / k;
    memset(o + lo, 0, (size_t)(hi - lo) * sizeof(float));
  }
}
