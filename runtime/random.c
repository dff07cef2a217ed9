/* random.c — fills from Philox4x32-10 and the global generator state.
 *
 *   uniform      a + (b - a) u,  u = top 24 bits / 2^24 (float32) or 53 bits (float64)
 *   normal       a + b z, z from Box-Muller (philox.h: ms_rng_value_*)
 *   rademacher   +1 when the word's top bit is set, else -1
 *   bernoulli    1 when u < a
 * The global generator is (seed, next stream): each fill from it takes one stream,
 * so ms_rng_set_state(seed, stream) replays a draw exactly. */
#include "internal.h"
#include "philox.h"
#include <math.h>

_Static_assert(MS_UNIFORM == 0 && MS_NORMAL == 1 && MS_RADEMACHER == 2 && MS_BERNOULLI == 3,
               "philox.h ms_rng_value_* switch on these values");

static uint64_t rng_seed = 0, rng_stream = 0;

void ms_philox4x32_10(const uint32_t *counter, const uint32_t *key, uint32_t *out) {
  ms_philox_block(counter[0], counter[1], counter[2], counter[3], key[0], key[1], out);
}

void ms_manual_seed(uint64_t seed) { rng_seed = seed, rng_stream = 0; }
void ms_rng_get_state(uint64_t *seed, uint64_t *stream) { *seed = rng_seed, *stream = rng_stream; }
void ms_rng_set_state(uint64_t seed, uint64_t stream) { rng_seed = seed, rng_stream = stream; }

/* Philox blocks [lo, hi) (four elements each) of a contiguous CPU fill of n elements. */
typedef struct {
  void *data;
  int32_t dtype;
  int64_t n;
  int dist;
  uint64_t seed, stream;
  double a, b;
} fill_job;

static void fill_share(void *ctx, int64_t lo, int64_t hi) {
  const fill_job *f = ctx;
  for (int64_t blk = lo; blk < hi; blk++) {
    uint32_t w[4];
    ms_philox_at(f->seed, f->stream, (uint64_t)blk, w);
    int64_t i0 = blk * 4;
    int m = f->n - i0 < 4 ? (int)(f->n - i0) : 4;
    if (f->dtype == MS_FLOAT32)
      for (int j = 0; j < m; j++)
        ((float *)f->data)[i0 + j] = ms_rng_value_f32(w, j, f->dist, (float)f->a, (float)f->b);
    else
      for (int j = 0; j < m; j++)
        ((double *)f->data)[i0 + j] = ms_rng_value_f64(w, j, f->dist, f->a, f->b);
  }
}

static void fill_cpu(void *data, int32_t dtype, int64_t n, int dist, uint64_t seed,
                     uint64_t stream, double a, double b) {
  fill_job job = {data, dtype, n, dist, seed, stream, a, b};
  ms_parallel_for((n + 3) / 4, n * 8, fill_share, &job);  /* Philox: ~8x a copy per element */
}

static const char *const dist_names[MS_DIST_COUNT] = {"uniform_", "normal_", "rademacher_",
                                                      "bernoulli_"};

int ms_rng_fill(ms_tensor *t, int32_t dist, uint64_t seed, uint64_t stream, double a,
                double b) {
  if (dist < 0 || dist >= MS_DIST_COUNT) return ms_fail("rng_fill: unknown distribution %d", dist);
  const char *fn = dist_names[dist];
  MS_CHECK_INTERRUPT(fn);
  MS_TRY(ms_check_float(fn, "self", t));
  if (dist == MS_NORMAL && !(b >= 0))
    return ms_fail("%s: std is %g, expected >= 0", fn, b);
  if (dist == MS_BERNOULLI && !(a >= 0 && a <= 1))
    return ms_fail("%s: p is %g, expected 0 <= p <= 1", fn, a);
  if (t->count == 0) return 0;
  /* Element i is the i-th in row-major order of t, so fill a contiguous buffer. */
  ms_tensor buf;
  int direct = ms_tensor_is_contiguous(t);
  if (direct) MS_TRY(ms_tensor_view(&buf, t, t->ndim, t->sizes, t->strides, t->offset));
  else MS_TRY(ms_tensor_new_like(&buf, t));
  int rc = 0;
  if (ms_device_of(t) == MS_CUDA)
    rc = ms_cuda_rng_fill(ms_ptr(&buf), t->dtype_id, t->count, dist, seed, stream, a, b);
  else
    fill_cpu(ms_ptr(&buf), t->dtype_id, t->count, dist, seed, stream, a, b);
  if (rc == 0 && !direct) rc = ms_copy(t, &buf);
  ms_tensor_release(&buf);
  return rc;
}

int ms_random_fill(ms_tensor *t, int32_t dist, double a, double b) {
  MS_TRY(ms_rng_fill(t, dist, rng_seed, rng_stream, a, b));
  rng_stream++;
  return 0;
}
