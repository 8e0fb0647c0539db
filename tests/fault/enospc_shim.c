// LD_PRELOAD shim for the disk-full test: write(), pwrite() and their vector
// and 64-bit variants to files whose path contains MLA_ENOSPC_MATCH fail with
// ENOSPC once MLA_ENOSPC_AFTER bytes have been written to such files by this
// process (the write that crosses the limit writes the bytes that still fit,
// as a full file system does). Other files are untouched. Needs no privileges,
// unlike mounting a small tmpfs. Thread-safe (one atomic byte counter);
// failure: a variable that is not set leaves every call alone.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static atomic_llong g_written;

// Bytes this call may still write to `fd` (SSIZE_MAX when fd is not watched).
static long long Allowance(int fd, size_t want) {
  const char* match = getenv("MLA_ENOSPC_MATCH");
  const char* after = getenv("MLA_ENOSPC_AFTER");
  if (match == NULL || after == NULL || *match == '\0') return SSIZE_MAX;
  char link[64], path[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n < 0) return SSIZE_MAX;
  path[n] = '\0';
  if (strstr(path, match) == NULL) return SSIZE_MAX;
  const long long limit = atoll(after);
  const long long before = atomic_fetch_add(&g_written, (long long)want);
  if (before >= limit) return 0;
  return limit - before < (long long)want ? limit - before : (long long)want;
}

typedef ssize_t (*WriteFn)(int, const void*, size_t);
typedef ssize_t (*PwriteFn)(int, const void*, size_t, off_t);
typedef ssize_t (*WritevFn)(int, const struct iovec*, int);
typedef ssize_t (*PwritevFn)(int, const struct iovec*, int, off_t);

#define REAL(name, type) \
  static type real_##name; \
  if (!real_##name) real_##name = (type)dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void* buf, size_t count) {
  REAL(write, WriteFn);
  long long ok = Allowance(fd, count);
  if (ok == 0 && count > 0) { errno = ENOSPC; return -1; }
  return real_write(fd, buf, (size_t)ok < count ? (size_t)ok : count);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t off) {
  REAL(pwrite, PwriteFn);
  long long ok = Allowance(fd, count);
  if (ok == 0 && count > 0) { errno = ENOSPC; return -1; }
  return real_pwrite(fd, buf, (size_t)ok < count ? (size_t)ok : count, off);
}

ssize_t pwrite64(int fd, const void* buf, size_t count, off_t off) {
  REAL(pwrite64, PwriteFn);
  long long ok = Allowance(fd, count);
  if (ok == 0 && count > 0) { errno = ENOSPC; return -1; }
  return real_pwrite64(fd, buf, (size_t)ok < count ? (size_t)ok : count, off);
}

static size_t Total(const struct iovec* iov, int n) {
  size_t t = 0;
  for (int i = 0; i < n; ++i) t += iov[i].iov_len;
  return t;
}

// Vector writes are all or nothing here: simpler, and still a failed write.
ssize_t writev(int fd, const struct iovec* iov, int n) {
  REAL(writev, WritevFn);
  size_t t = Total(iov, n);
  if (Allowance(fd, t) < (long long)t) { errno = ENOSPC; return -1; }
  return real_writev(fd, iov, n);
}

ssize_t pwritev(int fd, const struct iovec* iov, int n, off_t off) {
  REAL(pwritev, PwritevFn);
  size_t t = Total(iov, n);
  if (Allowance(fd, t) < (long long)t) { errno = ENOSPC; return -1; }
  return real_pwritev(fd, iov, n, off);
}

ssize_t pwritev64(int fd, const struct iovec* iov, int n, off_t off) {
  REAL(pwritev64, PwritevFn);
  size_t t = Total(iov, n);
  if (Allowance(fd, t) < (long long)t) { errno = ENOSPC; return -1; }
  return real_pwritev64(fd, iov, n, off);
}
