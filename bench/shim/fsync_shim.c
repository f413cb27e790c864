/* fsync_shim.c: an LD_PRELOAD shim that counts (and optionally slows down) the calls that force data to
 * stable storage: fsync, fdatasync, msync, sync_file_range. Generic: any process can be measured with it
 * (ferry's benchmarks, Mosquitto, ...).
 *
 *   LD_PRELOAD=libferry_fsync_shim.so FERRY_FSYNC_DELAY_MS=15 FERRY_FSYNC_COUNT_FILE=/tmp/c.txt prog
 *
 * FERRY_FSYNC_DELAY_MS  milliseconds added to every counted call (SD-card emulation); default 0.
 * FERRY_FSYNC_COUNT_FILE  at exit, one line per process is appended:
 *                         "pid=123 fsync=0 fdatasync=10 msync=0 sync_file_range=0 dsync_write=10 total=20"
 * FERRY_FSYNC_LIVE_DIR   optional: each process keeps its counters in DIR/fsync.<pid>, a file of 5 little-endian
 *                         uint64 (fsync, fdatasync, msync, sync_file_range, dsync_write) updated on every call
 *                         through a shared mapping. Readable at any time and kept across kill -9 (the exit line
 *                         above is not written then). Used by bench/compare.
 * In-process readers may call ferry_fsync_shim_counts() (find it with dlsym(RTLD_DEFAULT, ...)).
 * Every counted call is one synchronous device flush: the delay is added to each, as on an SD card.
 */
#define _GNU_SOURCE
/* The shim defines both the plain and the 64-bit variants (pwrite and pwrite64, open and open64): with the
 * project-wide _FILE_OFFSET_BITS=64 the plain names would be macros for the 64-bit ones. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <stdarg.h>
#include <sys/uio.h>

enum { kFsync, kFdatasync, kMsync, kSyncFileRange, kDsyncWrite, kCount };
static const char* const kNames[kCount] = {"fsync", "fdatasync", "msync", "sync_file_range", "dsync_write"};

/* File descriptors opened with O_DSYNC or O_SYNC: every write to them is a synchronous flush. */
enum { kMaxTrackedFd = 4096 };
static atomic_uchar g_dsync_fd[kMaxTrackedFd];
static atomic_ullong g_counts[kCount];
static long g_delay_ms = -1; /* -1: not read yet */
static unsigned long long* g_live; /* FERRY_FSYNC_LIVE_DIR mapping, or NULL */

/* Copies the counters into out[0..4] (fsync, fdatasync, msync, sync_file_range, dsync_write) unless out is
 * NULL; returns their total. */
unsigned long long ferry_fsync_shim_counts(unsigned long long out[5]) {
  unsigned long long total = 0;
  for (int i = 0; i < kCount; ++i) {
    const unsigned long long v = atomic_load(&g_counts[i]);
    if (out != NULL) out[i] = v;
    total += v;
  }
  return total;
}

static void delay_and_count(int which) {
  atomic_fetch_add(&g_counts[which], 1);
  if (g_live != NULL) __atomic_fetch_add(&g_live[which], 1, __ATOMIC_RELAXED);
  long ms = __atomic_load_n(&g_delay_ms, __ATOMIC_RELAXED);
  if (ms < 0) {
    const char* env = getenv("FERRY_FSYNC_DELAY_MS");
    ms = env != NULL ? strtol(env, NULL, 10) : 0;
    if (ms < 0) ms = 0;
    __atomic_store_n(&g_delay_ms, ms, __ATOMIC_RELAXED);
  }
  if (ms > 0) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
}

static void* next_symbol(const char* name) {
  void* p = dlsym(RTLD_NEXT, name);
  if (p == NULL) {
    fprintf(stderr, "fsync_shim: cannot resolve %s\n", name);
    abort();
  }
  return p;
}

int fsync(int fd) {
  static int (*real)(int);
  if (real == NULL) real = (int (*)(int))next_symbol("fsync");
  const int saved = errno;
  delay_and_count(kFsync);
  errno = saved;
  return real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (real == NULL) real = (int (*)(int))next_symbol("fdatasync");
  delay_and_count(kFdatasync);
  return real(fd);
}

int msync(void* addr, size_t len, int flags) {
  static int (*real)(void*, size_t, int);
  if (real == NULL) real = (int (*)(void*, size_t, int))next_symbol("msync");
  delay_and_count(kMsync);
  return real(addr, len, flags);
}

int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags) {
  static int (*real)(int, off64_t, off64_t, unsigned int);
  if (real == NULL) real = (int (*)(int, off64_t, off64_t, unsigned int))next_symbol("sync_file_range");
  delay_and_count(kSyncFileRange);
  return real(fd, offset, nbytes, flags);
}

static void track(int fd, int flags) {
  if (fd >= 0 && fd < kMaxTrackedFd) atomic_store(&g_dsync_fd[fd], (flags & (O_DSYNC | O_SYNC)) != 0);
}
static int is_dsync(int fd) { return fd >= 0 && fd < kMaxTrackedFd && atomic_load(&g_dsync_fd[fd]); }

#define SHIM_OPEN(name, ...)                                                 \
  int name(__VA_ARGS__, int flags, ...) {                                    \
    static int (*real)();                                                    \
    if (real == NULL) real = (int (*)())next_symbol(#name);                  \
    mode_t mode = 0;                                                         \
    if (flags & (O_CREAT | O_TMPFILE)) {                                     \
      va_list ap;                                                            \
      va_start(ap, flags);                                                   \
      mode = va_arg(ap, mode_t);                                             \
      va_end(ap);                                                            \
    }                                                                        \
    const int fd = SHIM_CALL_##name;                                         \
    track(fd, flags);                                                        \
    return fd;                                                               \
  }
#define SHIM_CALL_open real(path, flags, mode)
#define SHIM_CALL_open64 real(path, flags, mode)
#define SHIM_CALL_openat real(dirfd, path, flags, mode)
#define SHIM_CALL_openat64 real(dirfd, path, flags, mode)
SHIM_OPEN(open, const char* path)
SHIM_OPEN(open64, const char* path)
SHIM_OPEN(openat, int dirfd, const char* path)
SHIM_OPEN(openat64, int dirfd, const char* path)

int close(int fd) {
  static int (*real)(int);
  if (real == NULL) real = (int (*)(int))next_symbol("close");
  track(fd, 0);
  return real(fd);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  static ssize_t (*real)(int, const void*, size_t, off_t);
  if (real == NULL) real = (ssize_t (*)(int, const void*, size_t, off_t))next_symbol("pwrite");
  if (is_dsync(fd)) delay_and_count(kDsyncWrite);
  return real(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t off) {
  static ssize_t (*real)(int, const void*, size_t, off64_t);
  if (real == NULL) real = (ssize_t (*)(int, const void*, size_t, off64_t))next_symbol("pwrite64");
  if (is_dsync(fd)) delay_and_count(kDsyncWrite);
  return real(fd, buf, n, off);
}

ssize_t write(int fd, const void* buf, size_t n) {
  static ssize_t (*real)(int, const void*, size_t);
  if (real == NULL) real = (ssize_t (*)(int, const void*, size_t))next_symbol("write");
  if (is_dsync(fd)) delay_and_count(kDsyncWrite);
  return real(fd, buf, n);
}

ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  static ssize_t (*real)(int, const struct iovec*, int);
  if (real == NULL) real = (ssize_t (*)(int, const struct iovec*, int))next_symbol("writev");
  if (is_dsync(fd)) delay_and_count(kDsyncWrite);
  return real(fd, iov, cnt);
}

/* Maps DIR/fsync.<pid> (FERRY_FSYNC_LIVE_DIR) for the live counters. Uses raw syscalls through the real
 * functions: nothing here is counted. */
__attribute__((constructor)) static void map_live_counts(void) {
  const char* dir = getenv("FERRY_FSYNC_LIVE_DIR");
  if (dir == NULL || *dir == '\0') return;
  char path[4096];
  if (snprintf(path, sizeof(path), "%s/fsync.%ld", dir, (long)getpid()) >= (int)sizeof(path)) return;
  int (*real_open)(const char*, int, ...) = (int (*)(const char*, int, ...))next_symbol("open");
  int (*real_close)(int) = (int (*)(int))next_symbol("close");
  const int fd = real_open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const size_t len = sizeof(unsigned long long) * kCount;
  if (ftruncate(fd, (off_t)len) == 0) {
    void* p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) g_live = (unsigned long long*)p;
  }
  real_close(fd);
}

__attribute__((destructor)) static void write_counts(void) {
  const char* path = getenv("FERRY_FSYNC_COUNT_FILE");
  if (path == NULL || *path == '\0') return;
  unsigned long long c[kCount];
  const unsigned long long total = ferry_fsync_shim_counts(c);
  char line[256];
  int n = snprintf(line, sizeof(line), "pid=%ld", (long)getpid());
  for (int i = 0; i < kCount; ++i) n += snprintf(line + n, sizeof(line) - (size_t)n, " %s=%llu", kNames[i], c[i]);
  n += snprintf(line + n, sizeof(line) - (size_t)n, " total=%llu\n", total);
  /* One write with O_APPEND: lines from several processes (forks) do not interleave. */
  const int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  track(fd, 0);
  ssize_t ignored = write(fd, line, (size_t)n);
  (void)ignored;
  close(fd);
}
