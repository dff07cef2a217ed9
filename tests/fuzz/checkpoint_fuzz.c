/* checkpoint_fuzz.c — libFuzzer target for the checkpoint loader (runtime/checkpoint.c).
 *
 * Each input is parsed twice: as given (header checks: magic, version, length, CRC),
 * and with its length and CRC fields recomputed, so that mutations reach the payload
 * parser instead of stopping at the checksum. A file that validates is then walked the
 * way ms.load walks it (ms_ckpt_next, node by node), which must agree with the node
 * list, stay in bounds, and describe tensors ms_tensor_empty can allocate. Built and
 * run by `make fuzz` (clang, -fsanitize=fuzzer,address). Inputs that found bugs live in
 * tests/fuzz/corpus/ and are replayed by tests/checkpoint_spec.lua on every test run. */
#include <stdlib.h>
#include <string.h>
#include "include/moonstep.h"

static void check_node(const ms_ckpt_node *n, int64_t len) {
  if ((n->tag == MS_CKPT_STRING || n->tag == MS_CKPT_TENSOR) &&
      (n->offset < 32 || n->length < 0 || n->length > len - n->offset))
    abort();
  if (n->tag == MS_CKPT_TABLE && (n->length < 0 || n->length > len)) abort();
  if (n->tag == MS_CKPT_TENSOR) {
    if (n->ndim < 0 || n->ndim > MS_MAX_DIMS) abort();
    int64_t nonzero = 1;  /* what strides are made of: must not overflow */
    for (int d = 0; d < n->ndim; d++) {
      if (n->sizes[d] < 0) abort();
      if (n->sizes[d] > 0) {
        if (nonzero > ((int64_t)1 << 59) / n->sizes[d]) abort();
        nonzero *= n->sizes[d];
      }
    }
  }
}

static void parse(const uint8_t *buf, int64_t len) {
  int64_t count = 0;
  if (ms_ckpt_parse(buf, len, NULL, 0, &count) != 0) return;
  if (count < 1 || count > len) abort();  /* every value takes at least one byte */
  ms_ckpt_node *nodes = malloc(sizeof *nodes * (size_t)count);
  if (!nodes) return;
  int64_t again = 0;
  if (ms_ckpt_parse(buf, len, nodes, count, &again) != 0 || again != count) abort();
  int64_t pos = 32;
  for (int64_t i = 0; i < count; i++) {
    ms_ckpt_node n;
    if (ms_ckpt_next(buf, len, &pos, &n) != 0) abort();
    check_node(&nodes[i], len);
    if (n.tag != nodes[i].tag || n.offset != nodes[i].offset || n.length != nodes[i].length)
      abort();
  }
  if (pos != len) abort();
  free(nodes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  parse(data, (int64_t)size);
  if (size < 32) return 0;
  uint8_t *fixed = malloc(size);
  if (!fixed) return 0;
  memcpy(fixed, data, size);
  uint64_t plen = size - 32;
  uint32_t crc = ms_crc32(0, fixed + 32, (int64_t)plen);
  for (int i = 0; i < 8; i++) fixed[16 + i] = (uint8_t)(plen >> (8 * i));
  for (int i = 0; i < 4; i++) fixed[24 + i] = (uint8_t)(crc >> (8 * i));
  parse(fixed, (int64_t)size);
  /* ms_ckpt_next must be safe anywhere, even on bytes that do not validate */
  int64_t pos = 32;
  for (int steps = 0; steps < 64 && pos < (int64_t)size; steps++) {
    ms_ckpt_node n;
    int64_t at = pos;
    if (ms_ckpt_next(fixed, (int64_t)size, &pos, &n) != 0) break;
    if (pos <= at || pos > (int64_t)size) abort();
    check_node(&n, (int64_t)size);
  }
  free(fixed);
  return 0;
}
