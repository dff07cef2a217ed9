/* checkpoint_fuzz.c — libFuzzer target for the checkpoint loader (runtime/checkpoint.c).
 *
 * Each input is parsed twice: as given (header checks: magic, version, length, CRC),
 * and with its length and CRC fields recomputed, so that mutations reach the payload
 * parser instead of stopping at the checksum. Node lists are sized from the counting
 * pass, as ms.load does. Built and run by `make fuzz` (clang, -fsanitize=fuzzer,address).
 * Inputs that found bugs live in tests/fuzz/corpus/ and are replayed by
 * tests/checkpoint_spec.lua on every test run. */
#include <stdlib.h>
#include <string.h>
#include "include/moonstep.h"

static void parse(const uint8_t *buf, int64_t len) {
  int64_t count = 0;
  if (ms_ckpt_parse(buf, len, NULL, 0, &count) != 0) return;
  ms_ckpt_node *nodes = malloc(sizeof *nodes * (size_t)(count > 0 ? count : 1));
  if (!nodes) return;
  int64_t again = 0;
  if (ms_ckpt_parse(buf, len, nodes, count, &again) != 0 || again != count) abort();
  for (int64_t i = 0; i < count; i++)  /* every offset the loader will use is in bounds */
    if ((nodes[i].tag == MS_CKPT_STRING || nodes[i].tag == MS_CKPT_TENSOR) &&
        (nodes[i].offset < 0 || nodes[i].length < 0 || nodes[i].offset + nodes[i].length > len))
      abort();
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
  free(fixed);
  return 0;
}
