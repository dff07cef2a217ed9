/* checkpoint.c — validation and listing of checkpoint files (format in moonstep.h).
 *
 * The loader's only contact with untrusted bytes: every read is bounds-checked against
 * the buffer, every size against what remains, nesting is limited, and the CRC is
 * verified before the payload is walked. Lua builds values from the node list (offsets
 * this file has checked). Fuzzed by tests/fuzz/checkpoint_fuzz.c (make fuzz). */
#include "internal.h"
#include <string.h>
#include <zlib.h>

enum { HEADER_BYTES = 32, MAX_DEPTH = 64 };
static const char MAGIC[8] = {'M', 'S', 'C', 'K', 'P', 'T', '\r', '\n'};

uint32_t ms_crc32(uint32_t crc, const void *data, int64_t len) {
  const uint8_t *p = data;
  while (len > 0) {  /* zlib takes uInt lengths */
    uInt chunk = len > (1 << 30) ? (1u << 30) : (uInt)len;
    crc = (uint32_t)crc32(crc, p, chunk);
    p += chunk, len -= chunk;
  }
  return crc;
}

static uint64_t le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}
static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

typedef struct {
  const uint8_t *buf;
  int64_t len, pos;      /* pos: absolute byte offset of the next read */
  ms_ckpt_node *nodes;
  int64_t cap, count;
} parser;

static int need(parser *p, int64_t n, const char *what) {
  if (n < 0 || n > p->len - p->pos)
    return ms_fail("load: corrupt checkpoint: %s at byte offset %lld needs %lld bytes, %lld remain",
                   what, (long long)p->pos, (long long)n, (long long)(p->len - p->pos));
  return 0;
}

static int value(parser *p, int depth) {
  if (depth > MAX_DEPTH)
    return ms_fail("load: corrupt checkpoint: tables nested deeper than %d at byte offset %lld",
                   MAX_DEPTH, (long long)p->pos);
  MS_TRY(need(p, 1, "a value tag"));
  ms_ckpt_node n;
  memset(&n, 0, sizeof n);
  int64_t at = p->pos;
  n.tag = p->buf[p->pos++];
  n.depth = depth;
  switch (n.tag) {
    case MS_CKPT_NIL: case MS_CKPT_FALSE: case MS_CKPT_TRUE: break;
    case MS_CKPT_NUMBER: {
      MS_TRY(need(p, 8, "a number"));
      uint64_t bits = le64(p->buf + p->pos);
      memcpy(&n.number, &bits, 8);
      p->pos += 8;
      break;
    }
    case MS_CKPT_STRING: {
      MS_TRY(need(p, 8, "a string length"));
      uint64_t l = le64(p->buf + p->pos);
      p->pos += 8;
      if (l > (uint64_t)(p->len - p->pos)) MS_TRY(need(p, -1, "a string"));
      n.offset = p->pos, n.length = (int64_t)l;
      p->pos += (int64_t)l;
      break;
    }
    case MS_CKPT_TABLE: {
      MS_TRY(need(p, 8, "a table size"));
      uint64_t pairs = le64(p->buf + p->pos);
      p->pos += 8;
      if (pairs > (uint64_t)(p->len - p->pos) / 2)  /* each key and value takes >= 1 byte */
        return ms_fail("load: corrupt checkpoint: table at byte offset %lld claims %llu entries, "
                       "more than the %lld bytes left can hold", (long long)at,
                       (unsigned long long)pairs, (long long)(p->len - p->pos));
      n.length = (int64_t)pairs;
      break;
    }
    case MS_CKPT_TENSOR: {
      MS_TRY(need(p, 2, "a tensor header"));
      n.dtype = p->buf[p->pos], n.ndim = p->buf[p->pos + 1];
      p->pos += 2;
      int es = ms_dtype_size(n.dtype);
      if (es == 0 || n.ndim > MS_MAX_DIMS)
        return ms_fail("load: corrupt checkpoint: tensor at byte offset %lld has dtype %d and %d "
                       "dims, expected a dtype 0-3 and at most %d dims", (long long)at, n.dtype,
                       n.ndim, MS_MAX_DIMS);
      MS_TRY(need(p, 8 * (int64_t)n.ndim, "tensor sizes"));
      uint64_t bytes = (uint64_t)es;
      for (int d = 0; d < n.ndim; d++) {
        uint64_t s = le64(p->buf + p->pos + 8 * d);
        if (s != 0 && bytes > (uint64_t)(p->len) / s)
          return ms_fail("load: corrupt checkpoint: tensor at byte offset %lld has sizes larger "
                         "than the file", (long long)at);
        bytes *= s;
        n.sizes[d] = (int64_t)s;
      }
      p->pos += 8 * (int64_t)n.ndim;
      if (bytes > (uint64_t)(p->len - p->pos)) MS_TRY(need(p, -1, "tensor data"));
      n.offset = p->pos, n.length = (int64_t)bytes;
      p->pos += (int64_t)bytes;
      break;
    }
    default:
      return ms_fail("load: corrupt checkpoint: unknown value tag %d at byte offset %lld",
                     n.tag, (long long)at);
  }
  if (p->nodes) {
    if (p->count >= p->cap) return ms_fail("load: node list too small (%lld)", (long long)p->cap);
    p->nodes[p->count] = n;
  }
  p->count++;
  if (n.tag == MS_CKPT_TABLE)
    for (int64_t i = 0; i < 2 * n.length; i++) MS_TRY(value(p, depth + 1));
  return 0;
}

int ms_ckpt_parse(const uint8_t *buf, int64_t len, ms_ckpt_node *nodes, int64_t cap,
                  int64_t *count) {
  if (len < HEADER_BYTES)
    return ms_fail("load: not a moonstep checkpoint: %lld bytes, shorter than the %d-byte header",
                   (long long)len, HEADER_BYTES);
  if (memcmp(buf, MAGIC, 8) != 0)
    return ms_fail("load: not a moonstep checkpoint: bytes 0-7 are not the magic \"MSCKPT\\r\\n\"");
  uint32_t version = le32(buf + 8);
  if (version != MS_CKPT_VERSION)
    return ms_fail("load: checkpoint version %u at byte offset 8, this moonstep reads version %d",
                   version, MS_CKPT_VERSION);
  uint64_t plen = le64(buf + 16);
  if (plen != (uint64_t)(len - HEADER_BYTES))
    return ms_fail("load: truncated or padded checkpoint: the header (byte offset 16) gives %llu "
                   "payload bytes, the file has %lld", (unsigned long long)plen,
                   (long long)(len - HEADER_BYTES));
  uint32_t crc = le32(buf + 24);
  uint32_t actual = ms_crc32(0, buf + HEADER_BYTES, (int64_t)plen);
  if (crc != actual)
    return ms_fail("load: corrupt checkpoint: CRC-32 of the payload is %08x, the header "
                   "(byte offset 24) says %08x", actual, crc);
  parser p = {buf, len, HEADER_BYTES, nodes, cap, 0};
  MS_TRY(value(&p, 0));
  if (p.pos != len)
    return ms_fail("load: corrupt checkpoint: %lld bytes after the value ending at byte offset %lld",
                   (long long)(len - p.pos), (long long)p.pos);
  *count = p.count;
  return 0;
}
