// fuzz_bytes.h: cutting a libFuzzer input into fields, shared by the C++ targets under tests/fuzz/.
//
// Every read clamps to what is left (a short input yields an empty view or zeros), so a harness never reads
// past its input and every prefix of an input is itself a valid input: the fuzzer's truncations stay useful.
#pragma once

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace ferry::fuzz {

class FuzzBytes {
 public:
  FuzzBytes(const uint8_t* data, size_t size) : p_(reinterpret_cast<const char*>(data)), left_(size) {}

  bool empty() const { return left_ == 0; }
  size_t size() const { return left_; }

  uint8_t U8() {
    if (left_ == 0) return 0;
    --left_;
    return static_cast<uint8_t>(*p_++);
  }
  uint16_t U16() {  // big-endian, like the lengths in the seed generator (make_seeds.py)
    const uint16_t hi = U8();
    return static_cast<uint16_t>((hi << 8) | U8());
  }
  std::string_view Take(size_t n) {
    if (n > left_) n = left_;
    std::string_view v(p_, n);
    p_ += n;
    left_ -= n;
    return v;
  }
  std::string_view Rest() { return Take(left_); }

 private:
  const char* p_;
  size_t left_;
};

// Well-formed UTF-8 as MQTT requires of every string (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF), and without U+0000, which MQTT also forbids.
inline bool IsMqttUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    // Continuation bytes, and the lead byte's payload bits; 0x80-0xC1 and 0xF5-0xFF never lead.
    const size_t n = c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 0;
    if (n == 0 || i + n >= s.size()) return false;
    uint32_t cp = c & (0x3F >> n);
    for (size_t k = 1; k <= n; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

// A broken invariant: print why and abort, so libFuzzer saves the input as a crash like any sanitizer report.
[[noreturn]] inline void Fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fputs("fuzz invariant broken: ", stderr);
  std::vfprintf(stderr, fmt, ap);
  std::fputc('\n', stderr);
  va_end(ap);
  std::abort();
}

}  // namespace ferry::fuzz
