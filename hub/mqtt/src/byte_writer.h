// byte_writer.h (private to ferry_mqtt): appends MQTT data types to a std::string, big-endian (1.5).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ferry::mqtt::internal {

inline void PutU8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }
inline void PutU16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}
inline void PutU32(std::string& out, uint32_t v) {
  PutU16(out, static_cast<uint16_t>(v >> 16));
  PutU16(out, static_cast<uint16_t>(v & 0xFFFF));
}
// REQUIRES: v <= kMaxRemainingLength.
inline void PutVbi(std::string& out, uint32_t v) {
  do {
    uint8_t b = static_cast<uint8_t>(v & 0x7F);
    v >>= 7;
    if (v != 0) b |= 0x80;
    out.push_back(static_cast<char>(b));
  } while (v != 0);
}
inline size_t VbiSize(uint32_t v) { return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4; }
// REQUIRES: s.size() <= 65535.
inline void PutPrefixed(std::string& out, std::string_view s) {
  PutU16(out, static_cast<uint16_t>(s.size()));
  out.append(s.data(), s.size());
}
// The fixed header: type/flags byte and the Remaining Length.
inline void PutFixedHeader(std::string& out, uint8_t type, uint8_t flags, uint32_t remaining) {
  PutU8(out, static_cast<uint8_t>((type << 4) | flags));
  PutVbi(out, remaining);
}

// Cuts s to at most 65535 bytes without splitting a UTF-8 sequence (server-chosen strings only).
std::string_view ClampUtf8(std::string_view s);

}  // namespace ferry::mqtt::internal
