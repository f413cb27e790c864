/* Event ids and the per-device boot counter file.
 *
 * The boot counter file "<state_dir>/<device_id>.boot" is one line:
 *   "ferry-boot 1 <boot> <crc32 of the text before this field, 8 lower-case hex digits>\n"
 * where 1 is the format version. It is replaced atomically (write .new, fsync, rename, fsync dir), so after
 * a power cut it holds either the old or the new counter, never a torn value; the CRC catches bit rot. */
#define _POSIX_C_SOURCE 200809L
#include "ferry_pub.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BOOT_FILE_VERSION 1
#define BOOT_FILE_MAX 64

static int valid_name(const char *s, size_t max) {
  size_t n = 0;
  if (s == NULL) return 0;
  for (; s[n] != '\0'; ++n) {
    char c = s[n];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
             c == '_' || c == '-';
    if (!ok || n >= max) return 0;
  }
  /* "." and ".." would be path components in the state file name. */
  if (n == 0 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
  return 1;
}

int ferry_dev_id_valid(const char *s) { return valid_name(s, FERRY_DEV_ID_MAX); }
int ferry_kind_valid(const char *s) { return valid_name(s, FERRY_KIND_MAX); }

int ferry_id_format(const char *device_id, uint32_t boot, uint64_t seq, char *out, size_t out_len) {
  int n;
  if (!ferry_dev_id_valid(device_id) || out == NULL) return FERRY_PUB_EINVAL;
  n = snprintf(out, out_len, "%s/b%" PRIu32 "/%09" PRIu64, device_id, boot, seq);
  if (n < 0 || (size_t)n >= out_len) return FERRY_PUB_ETOOBIG;
  return FERRY_PUB_OK;
}

uint64_t ferry_dev_next_seq(ferry_dev *dev) { return ++dev->last_seq; }

static uint32_t crc32_of(const char *p, size_t n) {
  uint32_t crc = 0xFFFFFFFFu;
  size_t i;
  int k;
  for (i = 0; i < n; ++i) {
    crc ^= (unsigned char)p[i];
    for (k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

static int boot_path(char *out, size_t out_len, const char *dir, const char *dev, const char *suffix) {
  int n = snprintf(out, out_len, "%s/%s.boot%s", dir, dev, suffix);
  return (n < 0 || (size_t)n >= out_len) ? FERRY_PUB_EINVAL : FERRY_PUB_OK;
}

static int parse_boot_file(const char *buf, size_t len, uint32_t *boot) {
  char body[BOOT_FILE_MAX];
  const char *last_sp;
  unsigned long long b;
  unsigned long crc;
  char *end;
  int version = 0;
  size_t body_len;
  if (len == 0 || len >= BOOT_FILE_MAX || buf[len - 1] != '\n') return FERRY_PUB_ECORRUPT;
  memcpy(body, buf, len - 1);
  body[len - 1] = '\0';
  last_sp = strrchr(body, ' ');
  if (last_sp == NULL || strlen(last_sp + 1) != 8) return FERRY_PUB_ECORRUPT;
  body_len = (size_t)(last_sp - body);
  errno = 0;
  crc = strtoul(last_sp + 1, &end, 16);
  if (errno != 0 || *end != '\0' || (uint32_t)crc != crc32_of(body, body_len)) return FERRY_PUB_ECORRUPT;
  body[body_len] = '\0';
  if (sscanf(body, "ferry-boot %d %llu", &version, &b) != 2) return FERRY_PUB_ECORRUPT;
  if (version != BOOT_FILE_VERSION || b == 0 || b > UINT32_MAX) return FERRY_PUB_ECORRUPT;
  *boot = (uint32_t)b;
  return FERRY_PUB_OK;
}

int ferry_dev_read_boot(const char *device_id, const char *state_dir, uint32_t *boot) {
  char path[512];
  char buf[BOOT_FILE_MAX];
  ssize_t n;
  int fd, e;
  if (!ferry_dev_id_valid(device_id) || state_dir == NULL || boot == NULL) return FERRY_PUB_EINVAL;
  if (boot_path(path, sizeof path, state_dir, device_id, "") != FERRY_PUB_OK) return FERRY_PUB_EINVAL;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FERRY_PUB_EIO;
  do {
    n = read(fd, buf, sizeof buf);
  } while (n < 0 && errno == EINTR);
  e = errno;
  close(fd);
  if (n < 0) {
    errno = e;
    return FERRY_PUB_EIO;
  }
  return parse_boot_file(buf, (size_t)n, boot);
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int write_boot_file(const char *device_id, const char *state_dir, uint32_t boot) {
  char path[512], tmp[512], line[BOOT_FILE_MAX];
  int n, fd, dfd, rc = FERRY_PUB_OK;
  if (boot_path(path, sizeof path, state_dir, device_id, "") != FERRY_PUB_OK ||
      boot_path(tmp, sizeof tmp, state_dir, device_id, ".new") != FERRY_PUB_OK)
    return FERRY_PUB_EINVAL;
  n = snprintf(line, sizeof line, "ferry-boot %d %" PRIu32, BOOT_FILE_VERSION, boot);
  n += snprintf(line + n, sizeof line - (size_t)n, " %08" PRIx32 "\n", crc32_of(line, (size_t)n));

  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return FERRY_PUB_EIO;
  if (write_all(fd, line, (size_t)n) != 0 || fsync(fd) != 0) rc = FERRY_PUB_EIO;
  if (close(fd) != 0) rc = FERRY_PUB_EIO;
  if (rc == FERRY_PUB_OK && rename(tmp, path) != 0) rc = FERRY_PUB_EIO;
  if (rc != FERRY_PUB_OK) {
    int e = errno;
    unlink(tmp);
    errno = e;
    return rc;
  }
  /* The rename is durable only once the directory entry is on disk. */
  dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return FERRY_PUB_EIO;
  if (fsync(dfd) != 0) rc = FERRY_PUB_EIO;
  close(dfd);
  return rc;
}

int ferry_dev_init(ferry_dev *dev, const char *device_id, const char *state_dir) {
  uint32_t boot = 0;
  int rc;
  if (dev == NULL || !ferry_dev_id_valid(device_id)) return FERRY_PUB_EINVAL;
  memset(dev, 0, sizeof *dev);
  if (state_dir != NULL) {
    rc = ferry_dev_read_boot(device_id, state_dir, &boot);
    if (rc == FERRY_PUB_EIO && errno == ENOENT) {
      boot = 0;
    } else if (rc != FERRY_PUB_OK) {
      return rc;
    }
    if (boot == UINT32_MAX) return FERRY_PUB_ECORRUPT; /* exhausted: never wrap to a used number */
    ++boot;
    rc = write_boot_file(device_id, state_dir, boot);
    if (rc != FERRY_PUB_OK) return rc;
  } else {
    boot = 1;
  }
  memcpy(dev->device_id, device_id, strlen(device_id) + 1);
  dev->boot = boot;
  dev->last_seq = 0;
  return FERRY_PUB_OK;
}

int ferry_event_format(const char *device_id, uint32_t boot, uint64_t seq, const ferry_event *ev,
                       char *buf, size_t buf_len, size_t *len_out) {
  size_t n;
  int w;
  if (ev == NULL || buf == NULL || !ferry_kind_valid(ev->kind) || !ferry_dev_id_valid(device_id))
    return FERRY_PUB_EINVAL;
  w = snprintf(buf, buf_len, "{\"id\":\"%s/b%" PRIu32 "/%09" PRIu64 "\",\"dev\":\"%s\",\"kind\":\"%s\",\"boot\":%" PRIu32
               ",\"seq\":%" PRIu64,
               device_id, boot, seq, device_id, ev->kind, boot, seq);
  if (w < 0 || (size_t)w >= buf_len) return FERRY_PUB_ETOOBIG;
  n = (size_t)w;
  if (ev->time_ms != FERRY_NO_TIME) {
    w = snprintf(buf + n, buf_len - n, ",\"ts\":%" PRId64, ev->time_ms);
    if (w < 0 || (size_t)w >= buf_len - n) return FERRY_PUB_ETOOBIG;
    n += (size_t)w;
  }
  if (ev->fields != NULL && ev->fields[0] != '\0') {
    size_t fl = strlen(ev->fields);
    if (n + 1 + fl >= buf_len) return FERRY_PUB_ETOOBIG;
    buf[n++] = ',';
    memcpy(buf + n, ev->fields, fl);
    n += fl;
  }
  /* ,"pad":"xxx"} : 8 bytes before the x's, the closing quote and brace after them. */
  if (ev->pad_to > n + 1) {
    size_t xs = ev->pad_to >= n + 10 ? ev->pad_to - n - 10 : 0;
    if (n + 8 + xs + 3 > buf_len) return FERRY_PUB_ETOOBIG;
    memcpy(buf + n, ",\"pad\":\"", 8);
    n += 8;
    memset(buf + n, 'x', xs);
    n += xs;
    buf[n++] = '"';
  }
  if (n + 1 >= buf_len) return FERRY_PUB_ETOOBIG;
  buf[n++] = '}';
  buf[n] = '\0';
  if (len_out != NULL) *len_out = n;
  return FERRY_PUB_OK;
}
