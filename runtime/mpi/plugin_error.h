/* plugin_error.h — what the two collective plugins (dist_mpi.c, dist_nccl.c) share: a
 * monotonic clock for their timeouts and the formatting of their last-error message. */
#ifndef MOONSTEP_PLUGIN_ERROR_H
#define MOONSTEP_PLUGIN_ERROR_H
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

/* Seconds on a monotonic clock. */
static inline double plugin_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The message into buf (n bytes); returns 1, the plugins' failure status. Each plugin
 * defines fail(...) as plugin_fail(its buffer, its size, ...). */
static inline int plugin_fail(char *buf, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, n, fmt, ap);
  va_end(ap);
  return 1;
}
#endif
