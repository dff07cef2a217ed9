/* dtype.c — dtype sizes, and the names of dtypes, devices and shapes in messages. */
#include "internal.h"
#include <stdio.h>

const char *ms_dtype_name(int32_t dtype) {
  switch (dtype) {
    case MS_FLOAT32: return "float32";
    case MS_FLOAT64: return "float64";
    case MS_INT64: return "int64";
    case MS_UINT8: return "uint8";
    default: return "unknown dtype";
  }
}

const char *ms_device_name(int32_t device) {
  return device == MS_CPU ? "cpu" : device == MS_CUDA ? "cuda" : "unknown device";
}

int ms_dtype_size(int32_t dtype) {
  switch (dtype) {
    case MS_FLOAT32: return 4;
    case MS_FLOAT64: return 8;
    case MS_INT64: return 8;
    case MS_UINT8: return 1;
    default: return 0;
  }
}

/* "[2,3]"; buf holds at least 160 bytes (a long shape is cut short, never overrun). */
const char *ms_shape_str(char *buf, int ndim, const int64_t *shape) {
  int n = sprintf(buf, "[");
  for (int d = 0; d < ndim && n < 140; d++)
    n += sprintf(buf + n, d ? ",%lld" : "%lld", (long long)shape[d]);
  sprintf(buf + n, "]");
  return buf;
}
