// byte_reader.cc: Variable Byte Integer validation and bounds-checked reads (UTF-8: ferry/utf8.h).
#include "byte_reader.h"

#include "byte_writer.h"

namespace ferry::mqtt::internal {

VbiStatus DecodeVbi(std::string_view data, uint32_t* value, size_t* length) noexcept {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) {
    if (i >= data.size()) return VbiStatus::kTruncated;
    const uint8_t b = static_cast<uint8_t>(data[i]);
    v |= static_cast<uint32_t>(b & 0x7F) << (7 * i);
    if ((b & 0x80) == 0) {
      // 1.5.5: "MUST use the minimum number of bytes"; a trailing 0x00 group adds a byte for nothing.
      if (i > 0 && b == 0) return VbiStatus::kMalformed;
      *value = v;
      *length = i + 1;
      return VbiStatus::kOk;
    }
  }
  return VbiStatus::kMalformed;  // continuation bit on the 4th byte
}

DecodeStatus ReadUtf8(ByteReader& r, const char* what, std::string_view* out) {
  if (!r.ReadPrefixed(out)) return Malformed(std::string(what) + ": truncated");
  if (!IsWellFormedUtf8(*out, false)) return Malformed(std::string(what) + ": invalid UTF-8");
  return {};
}

DecodeStatus ReadBinary(ByteReader& r, const char* what, std::string_view* out) {
  if (!r.ReadPrefixed(out)) return Malformed(std::string(what) + ": truncated");
  return {};
}

std::string Hex(uint32_t v) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s;
  do {
    s.insert(s.begin(), kDigits[v & 0xF]);
    v >>= 4;
  } while (v != 0);
  if (s.size() % 2 != 0) s.insert(s.begin(), '0');
  return "0x" + s;
}

std::string ToUpper(const char* name) {
  std::string s(name);
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

std::string_view ClampUtf8(std::string_view s) {
  if (s.size() <= 65535) return s;
  size_t n = 65535;
  // Back up over continuation bytes (10xxxxxx) so the cut lands before a lead byte.
  while (n > 0 && (static_cast<uint8_t>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

}  // namespace ferry::mqtt::internal
