#include "crc32c.h"

#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif
#if defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
#endif

namespace ferry::crc32c {
namespace {

// Slicing-by-4 tables for the reflected Castagnoli polynomial, built at compile time.
constexpr uint32_t kPoly = 0x82f63b78u;

struct Tables {
  uint32_t t[4][256];
};

constexpr Tables MakeTables() {
  Tables tab{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    tab.t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (int s = 1; s < 4; ++s) tab.t[s][i] = (tab.t[s - 1][i] >> 8) ^ tab.t[0][tab.t[s - 1][i] & 0xff];
  }
  return tab;
}

constexpr Tables kTables = MakeTables();
static_assert(kTables.t[0][1] == 0xf26b8303u, "CRC32C table");

#if defined(__x86_64__)
// SSE4.2 has a CRC32C instruction: about 8x the table version. Chosen at run time, since the host build
// must also run on CPUs without it.
__attribute__((target("sse4.2"))) uint32_t ExtendSse42(uint32_t crc, const uint8_t* p, size_t n) noexcept {
  uint64_t c = ~crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c = _mm_crc32_u64(c, w);
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  for (; n > 0; --n) c32 = _mm_crc32_u8(c32, *p++);
  return ~c32;
}
const bool kHaveSse42 = [] {
  __builtin_cpu_init();  // may run before libgcc's own initialiser
  return __builtin_cpu_supports("sse4.2") != 0;
}();
#endif

uint32_t ExtendTable(uint32_t crc, const uint8_t* p, size_t n) noexcept;

}  // namespace

uint32_t Extend(uint32_t crc, const void* data, size_t n) noexcept {
  const auto* p = static_cast<const uint8_t*>(data);
#if defined(__x86_64__)
  if (kHaveSse42) return ExtendSse42(crc, p, n);
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
  // Boards built with -march=armv8-a+crc (rpi4): the instruction is known to exist at compile time.
  uint32_t c = ~crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c = __crc32cd(c, w);
  }
  for (; n > 0; --n) c = __crc32cb(c, *p++);
  return ~c;
#endif
  return ExtendTable(crc, p, n);
}

namespace {

uint32_t ExtendTable(uint32_t crc, const uint8_t* p, size_t n) noexcept {
  uint32_t c = ~crc;
  while (n >= 4) {
    c ^= uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
    c = kTables.t[3][c & 0xff] ^ kTables.t[2][(c >> 8) & 0xff] ^ kTables.t[1][(c >> 16) & 0xff] ^
        kTables.t[0][c >> 24];
    p += 4;
    n -= 4;
  }
  while (n-- > 0) c = kTables.t[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return ~c;
}

}  // namespace
}  // namespace ferry::crc32c
