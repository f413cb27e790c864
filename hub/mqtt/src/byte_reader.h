// byte_reader.h (private to ferry_mqtt): bounds-checked reads of MQTT data types (1.5 / 5.0 section 1.5).
//
// Every read either succeeds and advances, or fails and leaves the position where it was: no read can go
// past the end of the view it was given, which is the one guarantee the decoders build on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "ferry/mqtt/types.h"
#include "ferry/utf8.h"

namespace ferry::mqtt::internal {

// Unicode well-formedness (RFC 3629 / Unicode table 3-7): no overlong forms, no surrogates D800-DFFF, nothing
// above U+10FFFF. MQTT UTF-8 Encoded Strings (1.5.4) also forbid U+0000; payloads flagged UTF-8 do not.
inline bool IsWellFormedUtf8(std::string_view s, bool allow_nul) noexcept { return ferry::IsUtf8(s, allow_nul); }

enum class VbiStatus { kOk, kTruncated, kMalformed };

// Decodes a Variable Byte Integer (1.5.5) from the start of `data`: at most 4 bytes, minimally encoded.
// On kOk sets *value and *length.
VbiStatus DecodeVbi(std::string_view data, uint32_t* value, size_t* length) noexcept;

class ByteReader {
 public:
  explicit ByteReader(std::string_view data) : data_(data) {}

  size_t remaining() const { return data_.size() - pos_; }
  bool empty() const { return pos_ == data_.size(); }

  bool ReadU8(uint8_t* v) {
    if (remaining() < 1) return false;
    *v = static_cast<uint8_t>(data_[pos_++]);
    return true;
  }
  bool ReadU16(uint16_t* v) {
    if (remaining() < 2) return false;
    *v = static_cast<uint16_t>((Byte(0) << 8) | Byte(1));
    pos_ += 2;
    return true;
  }
  bool ReadU32(uint32_t* v) {
    if (remaining() < 4) return false;
    *v = (Byte(0) << 24) | (Byte(1) << 16) | (Byte(2) << 8) | Byte(3);
    pos_ += 4;
    return true;
  }
  VbiStatus ReadVbi(uint32_t* v) {
    size_t len = 0;
    VbiStatus s = DecodeVbi(data_.substr(pos_), v, &len);
    if (s == VbiStatus::kOk) pos_ += len;
    return s;
  }
  bool ReadBytes(size_t n, std::string_view* v) {
    if (remaining() < n) return false;
    *v = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  // Two-byte length, then that many bytes: Binary Data and the raw form of a UTF-8 Encoded String.
  bool ReadPrefixed(std::string_view* v) {
    size_t start = pos_;
    uint16_t n = 0;
    if (!ReadU16(&n) || !ReadBytes(n, v)) {
      pos_ = start;
      return false;
    }
    return true;
  }
  std::string_view Rest() {
    std::string_view r = data_.substr(pos_);
    pos_ = data_.size();
    return r;
  }

 private:
  uint32_t Byte(size_t i) const { return static_cast<uint8_t>(data_[pos_ + i]); }

  std::string_view data_;
  size_t pos_ = 0;
};

inline tl::unexpected<DecodeError> Fail(ReasonCode code, std::string message) {
  return tl::unexpected<DecodeError>(DecodeError{code, std::move(message), std::nullopt});
}
inline tl::unexpected<DecodeError> Malformed(std::string message) {
  return Fail(ReasonCode::kMalformedPacket, std::move(message));
}

// "0x2a": identifiers and codes in error messages, as the spec writes them.
std::string Hex(uint32_t v);

// "PUBACK" from PacketTypeName's "puback", for messages.
std::string ToUpper(const char* name);

// A UTF-8 Encoded String: kMalformedPacket "<what>: truncated" or "<what>: invalid UTF-8".
DecodeStatus ReadUtf8(ByteReader& r, const char* what, std::string_view* out);
// Binary Data: kMalformedPacket "<what>: truncated".
DecodeStatus ReadBinary(ByteReader& r, const char* what, std::string_view* out);

// Topic Names carry no wildcards (4.7.1): '+' or '#' anywhere -> true.
inline bool HasWildcard(std::string_view topic) {
  return topic.find_first_of("+#") != std::string_view::npos;
}

}  // namespace ferry::mqtt::internal
