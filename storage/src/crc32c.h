// crc32c.h: CRC32C (Castagnoli), the checksum of every record. Software, table driven: records are small
// and the commit fsync dominates, so a hardware path is not worth the per-architecture code yet.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ferry::crc32c {

// CRC32C of data[0, n) continuing from `crc` (0 to start).
uint32_t Extend(uint32_t crc, const void* data, size_t n) noexcept;
inline uint32_t Value(const void* data, size_t n) noexcept { return Extend(0, data, n); }

// A CRC stored next to the data it covers is masked (as LevelDB does) so that a CRC of a string that
// itself contains CRCs is not trivially related to them.
inline uint32_t Mask(uint32_t crc) noexcept { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }
inline uint32_t Unmask(uint32_t masked) noexcept {
  uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

}  // namespace ferry::crc32c
