/* firmware_boot_fuzz.c: libFuzzer target for the device's boot counter file reader (firmware/src/ferry_id.c).
 * A device reads "<state_dir>/<device_id>.boot" at every start; after a power cut or on worn flash it can hold
 * anything. See ../README.md.
 *
 * The input is the file's content. It goes to the parser directly (parse_boot_file is static: this file
 * includes ferry_id.c to reach it) and through the real path, ferry_dev_read_boot on a file in a scratch
 * directory, which reads at most 64 bytes; both must agree. A counter that parses must also survive what a
 * device does next: ferry_dev_init bumps it, writes the file again and the reader must read back boot + 1. */
#include "ferry_id.c"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static char state_dir[256];
static char boot_file[300];

static void remove_state(void) {
  unlink(boot_file);
  rmdir(state_dir);
}

static void fail(const char *what, unsigned long a, unsigned long b) {
  fprintf(stderr, "fuzz invariant broken: %s (%lu, %lu)\n", what, a, b);
  abort();
}

static void write_file(const uint8_t *data, size_t size) {
  int fd = open(boot_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || write_all(fd, (const char *)data, size) != 0) fail("cannot write the scratch boot file", 0, 0);
  close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint32_t direct = 0, via_file = 0, again = 0;
  int rc_direct, rc_file;
  ferry_dev dev;
  if (state_dir[0] == '\0') {
    /* tmpfs when there is one: ferry_dev_init fsyncs. */
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(state_dir, sizeof state_dir, "%s/ferry-boot-fuzz-XXXXXX", base);
    if (mkdtemp(state_dir) == NULL) fail("mkdtemp", 0, 0);
    snprintf(boot_file, sizeof boot_file, "%s/dev-1.boot", state_dir);
    atexit(remove_state);
  }

  rc_direct = size == 0 ? FERRY_PUB_ECORRUPT : parse_boot_file((const char *)data, size, &direct);
  write_file(data, size);
  rc_file = ferry_dev_read_boot("dev-1", state_dir, &via_file);
  if (size <= BOOT_FILE_MAX) {
    /* The reader sees the whole file: it must say what the parser says. */
    if (rc_file != rc_direct)
      fail("ferry_dev_read_boot and parse_boot_file disagree", (unsigned long)-rc_file, (unsigned long)-rc_direct);
    if (rc_file == FERRY_PUB_OK && via_file != direct) fail("different counters", via_file, direct);
  } else if (rc_file == FERRY_PUB_OK) {
    fail("a file over 64 bytes was accepted", size, via_file);
  }
  if (rc_file != FERRY_PUB_OK) return 0;
  if (via_file == 0) fail("boot counter 0 accepted", 0, 0);

  if (ferry_dev_init(&dev, "dev-1", state_dir) != FERRY_PUB_OK) {
    if (via_file != UINT32_MAX) fail("ferry_dev_init refused a counter that parses", via_file, 0);
    return 0;
  }
  if (dev.boot != via_file + 1) fail("ferry_dev_init did not bump the counter", dev.boot, via_file);
  if (ferry_dev_read_boot("dev-1", state_dir, &again) != FERRY_PUB_OK || again != dev.boot)
    fail("the counter ferry_dev_init wrote does not read back", again, dev.boot);
  return 0;
}
