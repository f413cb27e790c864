// utf8.cc: UTF-8 well-formedness (RFC 3629), shared by the MQTT codec and the JSON parsing of outside bytes.
#include "ferry/utf8.h"

#include <cstdint>
#include <string>

namespace ferry {

namespace {

// Decodes one UTF-8 character at s[i]. Returns its length, or 0 for an invalid sequence (a stray or missing
// continuation byte, an overlong form, a surrogate, beyond U+10FFFF).
size_t DecodeUtf8(std::string_view s, size_t i, uint32_t* cp) noexcept {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t len;
  uint32_t v;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if ((c & 0xE0) == 0xC0) {
    len = 2, v = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, v = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, v = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(i + k) & 0x3F);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < kMin[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return len;
}

// What is not an allowable character: U+0000, the C0 and C1 controls and the Unicode noncharacters (Mosquitto
// refuses them in MQTT strings, lib/utf8_mosq.c; CloudEvents' String type does not allow them).
bool Refused(uint32_t cp) {
  return cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F) || (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
}

}  // namespace

bool IsUtf8(std::string_view s, bool allow_nul) noexcept {
  // The ranges of Unicode table 3-7 (DecodeUtf8): no overlong forms, surrogates or code points past U+10FFFF.
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = DecodeUtf8(s, i, &cp);
    if (n == 0 || (cp == 0 && !allow_nul)) return false;
    i += n;
  }
  return true;
}

bool IsLegalUnicodeString(std::string_view s, std::string_view also_encode) noexcept {
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = DecodeUtf8(s, i, &cp);
    if (n == 0 || Refused(cp) || (cp < 0x80 && also_encode.find(static_cast<char>(cp)) != std::string_view::npos))
      return false;
    i += n;
  }
  return true;
}

std::string LegalUnicodeString(std::string_view s, std::string_view also_encode) {
  if (IsLegalUnicodeString(s, also_encode)) return std::string(s);
  const auto bad = [also_encode](uint32_t cp) {
    return Refused(cp) || (cp < 0x80 && also_encode.find(static_cast<char>(cp)) != std::string_view::npos);
  };
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() + 16);
  auto escape = [&](size_t from, size_t n) {
    for (size_t k = from; k < from + n; ++k) {
      const auto c = static_cast<unsigned char>(s[k]);
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  };
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = DecodeUtf8(s, i, &cp);
    if (n == 0) {
      escape(i, 1);
      i += 1;
    } else if (bad(cp) || cp == '%') {
      escape(i, n);
      i += n;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace ferry
