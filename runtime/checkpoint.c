/* checkpoint.c — checkpoint files (format in moonstep.h): validation, decoding, atomic
 * writing, and safe whole-file reading (also used by moonstep.data).
 *
 * The loader's only contact with untrusted bytes: every read is bounds-checked against
 * the buffer, every size against what remains (so the node count, string lengths and
 * tensor byte counts are all bounded by the file size), size products are overflow-
 * checked, nesting is limited, and the CRC is verified before the payload is walked.
 * Lua then decodes the validated payload one node at a time (ms_ckpt_next), so loading
 * allocates no more than the values themselves. Fuzzed by tests/fuzz/checkpoint_fuzz.c.
 *
 * Writing goes to a unique temporary file next to the target (mkstemp), which is
 * fsync'ed and renamed over the target; then the directory is fsync'ed. Concurrent
 * savers each rename a complete file, so the target is always exactly one of them.
 * Messages here carry no function prefix: Lua adds the public name ("ms.load: ..."). */
#include "internal.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

enum { HEADER_BYTES = 32 };
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
static void put_le(uint8_t *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- parsing -------------------------------------------------------------------------- */
static int need(int64_t pos, int64_t len, int64_t n, const char *what) {
  if (n < 0 || n > len - pos)
    return ms_fail("corrupt checkpoint: %s at byte offset %lld needs %lld bytes, %lld remain",
                   what, (long long)pos, n < 0 ? -1LL : (long long)n, (long long)(len - pos));
  return 0;
}

/* Decodes the one value whose tag is at *pos (a table's entries follow it and are not
 * walked) and advances *pos past it. Checks everything it reads, so it is safe on any
 * bytes; string, tensor and table sizes are bounded by what the buffer still holds. */
static int decode(const uint8_t *buf, int64_t len, int64_t *pos, ms_ckpt_node *n) {
  int64_t p = *pos, at = p;
  MS_TRY(need(p, len, 1, "a value tag"));
  memset(n, 0, sizeof *n);
  n->tag = buf[p++];
  switch (n->tag) {
    case MS_CKPT_NIL: case MS_CKPT_FALSE: case MS_CKPT_TRUE: break;
    case MS_CKPT_NUMBER: {
      MS_TRY(need(p, len, 8, "a number"));
      uint64_t bits = le64(buf + p);
      memcpy(&n->number, &bits, 8);
      p += 8;
      break;
    }
    case MS_CKPT_STRING: {
      MS_TRY(need(p, len, 8, "a string length"));
      uint64_t l = le64(buf + p);
      p += 8;
      if (l > (uint64_t)(len - p))
        return ms_fail("corrupt checkpoint: string at byte offset %lld claims %llu bytes, %lld "
                       "remain", (long long)at, (unsigned long long)l, (long long)(len - p));
      n->offset = p, n->length = (int64_t)l;
      p += (int64_t)l;
      break;
    }
    case MS_CKPT_TABLE: {
      MS_TRY(need(p, len, 8, "a table size"));
      uint64_t pairs = le64(buf + p);
      p += 8;
      if (pairs > (uint64_t)(len - p) / 2)  /* each key and value takes >= 1 byte */
        return ms_fail("corrupt checkpoint: table at byte offset %lld claims %llu entries, "
                       "more than the %lld bytes left can hold", (long long)at,
                       (unsigned long long)pairs, (long long)(len - p));
      n->length = (int64_t)pairs;
      break;
    }
    case MS_CKPT_TENSOR: {
      MS_TRY(need(p, len, 2, "a tensor header"));
      n->dtype = buf[p], n->ndim = buf[p + 1];
      p += 2;
      int es = ms_dtype_size(n->dtype);
      if (es == 0 || n->ndim > MS_MAX_DIMS)
        return ms_fail("corrupt checkpoint: tensor at byte offset %lld has dtype %d and %d "
                       "dims, expected a dtype 0-3 and at most %d dims", (long long)at,
                       n->dtype, n->ndim, MS_MAX_DIMS);
      MS_TRY(need(p, len, 8 * (int64_t)n->ndim, "tensor sizes"));
      /* nonzero: the product of the nonzero sizes, which strides are made of; it must
       * stay within what ms_tensor_empty accepts (2^59) even when a size is 0. */
      uint64_t numel = 1, nonzero = 1;
      for (int d = 0; d < n->ndim; d++) {
        uint64_t s = le64(buf + p + 8 * d);
        if (s != 0 && nonzero > ((uint64_t)1 << 59) / s)
          return ms_fail("corrupt checkpoint: tensor at byte offset %lld has size %llu in "
                         "dimension %d: its nonzero sizes multiply to more than 2^59",
                         (long long)at, (unsigned long long)s, d + 1);
        if (s != 0) nonzero *= s;
        numel *= s;
        n->sizes[d] = (int64_t)s;
      }
      p += 8 * (int64_t)n->ndim;
      uint64_t bytes = numel * (uint64_t)es;  /* <= 2^62: no overflow */
      if (bytes > (uint64_t)(len - p))
        return ms_fail("corrupt checkpoint: tensor at byte offset %lld needs %llu data bytes, "
                       "%lld remain", (long long)at, (unsigned long long)bytes,
                       (long long)(len - p));
      n->offset = p, n->length = (int64_t)bytes;
      p += (int64_t)bytes;
      break;
    }
    default:
      return ms_fail("corrupt checkpoint: unknown value tag %d at byte offset %lld", n->tag,
                     (long long)at);
  }
  *pos = p;
  return 0;
}

typedef struct {
  const uint8_t *buf;
  int64_t len, pos;      /* pos: absolute byte offset of the next read */
  ms_ckpt_node *nodes;
  int64_t cap, count;
} parser;

static int value(parser *p, int depth) {
  if (depth > MS_CKPT_MAX_DEPTH)
    return ms_fail("corrupt checkpoint: values nested deeper than %d at byte offset %lld",
                   MS_CKPT_MAX_DEPTH, (long long)p->pos);
  ms_ckpt_node n;
  MS_TRY(decode(p->buf, p->len, &p->pos, &n));
  n.depth = depth;
  if (p->nodes) {
    if (p->count >= p->cap) return ms_fail("node list too small (%lld)", (long long)p->cap);
    p->nodes[p->count] = n;
  }
  p->count++;
  if (n.tag == MS_CKPT_TABLE)
    for (int64_t i = 0; i < 2 * n.length; i++) MS_TRY(value(p, depth + 1));
  return 0;
}

int ms_ckpt_parse(const uint8_t *buf, int64_t len, ms_ckpt_node *nodes, int64_t cap,
                  int64_t *count) {
  if (len == 0) return ms_fail("not a moonstep checkpoint: the file is empty (0 bytes)");
  if (len < HEADER_BYTES)
    return ms_fail("not a moonstep checkpoint: %lld bytes, shorter than the %d-byte header",
                   (long long)len, HEADER_BYTES);
  if (memcmp(buf, MAGIC, 8) != 0)
    return ms_fail("not a moonstep checkpoint: bytes 0-7 are not the magic \"MSCKPT\\r\\n\"");
  uint32_t version = le32(buf + 8);
  if (version != MS_CKPT_VERSION)
    return ms_fail("checkpoint version %u at byte offset 8, this moonstep reads version %d",
                   version, MS_CKPT_VERSION);
  uint64_t plen = le64(buf + 16);
  if (plen != (uint64_t)(len - HEADER_BYTES))
    return ms_fail("truncated or padded checkpoint: the header (byte offset 16) gives %llu "
                   "payload bytes, the file has %lld", (unsigned long long)plen,
                   (long long)(len - HEADER_BYTES));
  uint32_t crc = le32(buf + 24);
  uint32_t actual = ms_crc32(0, buf + HEADER_BYTES, (int64_t)plen);
  if (crc != actual)
    return ms_fail("corrupt checkpoint: CRC-32 of the payload is %08x, the header "
                   "(byte offset 24) says %08x", actual, crc);
  parser p = {buf, len, HEADER_BYTES, nodes, cap, 0};
  MS_TRY(value(&p, 0));
  if (p.pos != len)
    return ms_fail("corrupt checkpoint: %lld bytes after the value ending at byte offset %lld",
                   (long long)(len - p.pos), (long long)p.pos);
  *count = p.count;
  return 0;
}

int ms_ckpt_next(const uint8_t *buf, int64_t len, int64_t *pos, ms_ckpt_node *node) {
  if (*pos < HEADER_BYTES || *pos > len)
    return ms_fail("corrupt checkpoint: byte offset %lld is outside the payload", (long long)*pos);
  return decode(buf, len, pos, node);
}

/* ---- reading whole files -------------------------------------------------------------- */
static const char *kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a pipe (FIFO)";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

int ms_open_regular(const char *path, int64_t *size) {
  /* O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it. */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return ms_fail("cannot open %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return ms_fail("cannot read %s: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return ms_fail("%s is %s, expected a regular file", path, kind_of(st.st_mode));
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  *size = (int64_t)st.st_size;
  return fd;
}

int ms_read_file(const char *path, int64_t max_bytes, uint8_t **buf, int64_t *len) {
  *buf = NULL, *len = 0;
  int64_t size = 0;
  int fd = ms_open_regular(path, &size);
  if (fd < 0) return -1;
  if (max_bytes >= 0 && size > max_bytes) {
    close(fd);
    return ms_fail("%s has %lld bytes, more than the limit of %lld", path, (long long)size,
                   (long long)max_bytes);
  }
  uint8_t *b = malloc(size > 0 ? (size_t)size : 1);
  if (!b) {
    close(fd);
    return ms_fail("out of memory reading %s (%lld bytes)", path, (long long)size);
  }
  int64_t got = 0;
  while (got < size) {
    ssize_t r = read(fd, b + got, (size_t)(size - got > (1 << 30) ? (1 << 30) : size - got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int e = r < 0 ? errno : 0;
      close(fd), free(b);
      if (e) return ms_fail("cannot read %s at byte offset %lld: %s", path, (long long)got,
                            strerror(e));
      return ms_fail("%s shrank while being read: %lld of %lld bytes", path, (long long)got,
                     (long long)size);
    }
    got += r;
  }
  close(fd);
  *buf = b, *len = size;
  return 0;
}

void ms_free_file(uint8_t *buf) { free(buf); }

struct gzFile_s *ms_gzopen_regular(const char *path, int64_t *size) {
  int fd = ms_open_regular(path, size);
  if (fd < 0) return NULL;
  gzFile gz = gzdopen(fd, "rb");
  if (!gz) {
    close(fd);
    ms_fail("cannot open %s: out of memory", path);
  }
  return gz;
}

/* ---- atomic writing ------------------------------------------------------------------- */
struct ms_ckpt_writer {
  FILE *f;
  int fd;
  uint32_t crc;
  uint64_t len;
  char *tmp, *path;
};

static void writer_free(ms_ckpt_writer *w) {
  free(w->tmp), free(w->path), free(w);
}

void ms_ckpt_abort(ms_ckpt_writer *w) {
  if (!w) return;
  if (w->f) fclose(w->f);
  unlink(w->tmp);
  writer_free(w);
}

/* path with symlinks in its last component followed, even to a file that does not exist
 * yet (malloc'd; NULL when out of memory). After 40 links, the last one itself. */
static char *resolve_links(const char *path) {
  char *cur = strdup(path);
  for (int hops = 0; cur && hops < 40; hops++) {
    struct stat st;
    char target[4096];
    ssize_t n;
    if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode) ||
        (n = readlink(cur, target, sizeof target - 1)) <= 0)
      return cur;
    target[n] = 0;
    const char *slash = strrchr(cur, '/');
    size_t dir = target[0] == '/' || !slash ? 0 : (size_t)(slash - cur + 1);
    char *next = malloc(dir + (size_t)n + 1);
    if (next) memcpy(next, cur, dir), memcpy(next + dir, target, (size_t)n + 1);
    free(cur);
    cur = next;
  }
  return cur;
}

ms_ckpt_writer *ms_ckpt_begin(const char *path) {
  if (!path || !*path) {
    ms_fail("the path is empty");
    return NULL;
  }
  /* Through a symlink: replace the file it points to, not the link (and create the
   * temporary in that file's directory, so the rename stays on one filesystem). */
  char *real = resolve_links(path);
  if (real) path = real;
  struct stat st;
  mode_t mode;
  if (stat(path, &st) == 0) {
    if (!S_ISREG(st.st_mode)) {
      ms_fail("%s is %s; only a regular file can be replaced", path, kind_of(st.st_mode));
      free(real);
      return NULL;
    }
    mode = st.st_mode & 0777;             /* keep the permissions of the file replaced */
  } else {
    mode_t mask = umask(0);
    umask(mask);
    mode = 0666 & ~mask;
  }
  ms_ckpt_writer *w = calloc(1, sizeof *w);
  size_t n = strlen(path);
  if (w) w->tmp = malloc(n + 12), w->path = malloc(n + 1);
  if (!w || !w->tmp || !w->path) {
    if (w) writer_free(w);
    free(real);
    ms_fail("out of memory");
    return NULL;
  }
  memcpy(w->path, path, n + 1);
  snprintf(w->tmp, n + 12, "%s.tmp-XXXXXX", path);
  free(real);
  path = w->path;
  w->fd = mkostemp(w->tmp, O_CLOEXEC);
  if (w->fd < 0) {
    ms_fail("cannot create a temporary file next to %s: %s", path, strerror(errno));
    writer_free(w);
    return NULL;
  }
  if (fchmod(w->fd, mode) != 0 || !(w->f = fdopen(w->fd, "wb"))) {
    ms_fail("cannot write %s: %s", w->tmp, strerror(errno));
    close(w->fd);
    unlink(w->tmp);
    writer_free(w);
    return NULL;
  }
  static const uint8_t zeros[HEADER_BYTES];  /* the header is written last, in commit */
  if (fwrite(zeros, 1, HEADER_BYTES, w->f) != HEADER_BYTES) {
    ms_fail("cannot write %s: %s", w->tmp, strerror(errno));
    ms_ckpt_abort(w);
    return NULL;
  }
  return w;
}

int ms_ckpt_write(ms_ckpt_writer *w, const void *p, int64_t n) {
  if (n <= 0) return 0;
  const uint8_t *b = p;
  for (int64_t done = 0; done < n;) {
    size_t chunk = n - done > (1 << 30) ? (size_t)1 << 30 : (size_t)(n - done);
    if (fwrite(b + done, 1, chunk, w->f) != chunk)
      return ms_fail("cannot write %s: %s", w->tmp, strerror(errno));
    done += (int64_t)chunk;
  }
  w->crc = ms_crc32(w->crc, p, n);
  w->len += (uint64_t)n;
  return 0;
}

static int sync_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  if (!dir) return ms_fail("out of memory");
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int rc = 0;
  if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP))
    rc = ms_fail("%s was replaced, but its directory %s could not be synced: %s", path, dir,
                 strerror(errno));
  if (fd >= 0) close(fd);
  free(dir);
  return rc;
}

int ms_ckpt_commit(ms_ckpt_writer *w) {
  uint8_t h[HEADER_BYTES] = {0};
  memcpy(h, MAGIC, 8);
  put_le(h + 8, MS_CKPT_VERSION, 4);
  put_le(h + 16, w->len, 8);
  put_le(h + 24, w->crc, 4);
  int rc = 0;
  if (fflush(w->f) != 0 || pwrite(w->fd, h, HEADER_BYTES, 0) != HEADER_BYTES)
    rc = ms_fail("cannot write %s: %s", w->tmp, strerror(errno));
  else if (fsync(w->fd) != 0)
    rc = ms_fail("cannot flush %s to disk: %s", w->tmp, strerror(errno));
  int closed = fclose(w->f);
  w->f = NULL;
  if (rc == 0 && closed != 0) rc = ms_fail("cannot write %s: %s", w->tmp, strerror(errno));
  if (rc == 0 && rename(w->tmp, w->path) != 0)
    rc = ms_fail("cannot rename %s to %s: %s", w->tmp, w->path, strerror(errno));
  if (rc != 0) {
    ms_ckpt_abort(w);
    return -1;
  }
  rc = sync_dir(w->path);
  writer_free(w);
  return rc;
}
