// slices.cuh — the slice table on the device (runtime/include/moonstep.h, ms_slice_table):
// int64 [2 nslices + 1] = the slices' offsets and the arena's end, then their groups.
#pragma once
#include <stdint.h>

// The slice holding element i (0 when there is no table or one slice).
__device__ __forceinline__ int32_t ms_slice_of(const int64_t *table, int32_t nslices, int64_t i) {
  if (!table || nslices <= 1) return 0;
  int32_t lo = 0, hi = nslices - 1;
  while (lo < hi) {
    int32_t mid = lo + (hi - lo + 1) / 2;
    if (table[mid] <= i) lo = mid; else hi = mid - 1;
  }
  return lo;
}

// The group of slice s.
__device__ __forceinline__ int32_t ms_group_of(const int64_t *table, int32_t nslices, int32_t s) {
  return table && nslices > 1 ? (int32_t)table[nslices + 1 + s] : 0;
}
