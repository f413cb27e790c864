// Little-endian varints and doubles for the window state records (docs/processing.md "Window state").
// Readers are bounded by `end` and return false on truncation instead of reading past it.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace ferry {

inline void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
inline void PutSigned(std::string* out, int64_t v) {
  PutVarint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));  // zigzag
}
inline void PutDouble(std::string* out, double d) {
  uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((u >> (8 * i)) & 0xff));
}

inline bool GetVarint(const char** p, const char* end, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    auto byte = static_cast<unsigned char>(*(*p)++);
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}
inline bool GetSigned(const char** p, const char* end, int64_t* v) {
  uint64_t u = 0;
  if (!GetVarint(p, end, &u)) return false;
  *v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
  return true;
}
inline bool GetDouble(const char** p, const char* end, double* d) {
  if (end - *p < 8) return false;
  uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u |= static_cast<uint64_t>(static_cast<unsigned char>((*p)[i])) << (8 * i);
  *p += 8;
  std::memcpy(d, &u, sizeof u);
  return true;
}

}  // namespace ferry
