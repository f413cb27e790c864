#include "crc32c.h"

#include <array>

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

}  // namespace

uint32_t Extend(uint32_t crc, const void* data, size_t n) noexcept {
  const auto* p = static_cast<const uint8_t*>(data);
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

}  // namespace ferry::crc32c
