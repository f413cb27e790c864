// wire_bytes.h: writing packets in tests the way the specifications print them.
//
// Bytes("40 02 00 01") is four bytes; 'text' inside the string is the ASCII bytes of text, so the 3.1.1
// CONNECT example reads Bytes("00 04 'MQTT' 04 CE 00 0A").
#pragma once

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>

#include "ferry/mqtt/packet.h"

namespace ferry::mqtt::testing {

inline std::string Bytes(std::string_view spec) {
  std::string out;
  size_t i = 0;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  while (i < spec.size()) {
    char c = spec[i];
    if (c == ' ') {
      ++i;
    } else if (c == '\'') {
      size_t end = spec.find('\'', i + 1);
      if (end == std::string_view::npos) throw std::invalid_argument("unterminated quote");
      out.append(spec.substr(i + 1, end - i - 1));
      i = end + 1;
    } else {
      if (i + 1 >= spec.size() || hex(spec[i]) < 0 || hex(spec[i + 1]) < 0) throw std::invalid_argument("bad hex");
      out.push_back(static_cast<char>(hex(spec[i]) * 16 + hex(spec[i + 1])));
      i += 2;
    }
  }
  return out;
}

inline std::string ToHex(std::string_view bytes) {
  std::string out;
  char buf[4];
  for (unsigned char c : bytes) {
    std::snprintf(buf, sizeof buf, "%02X", c);
    if (!out.empty()) out += ' ';
    out += buf;
  }
  return out;
}

// A Frame over a body the test owns (the frame reader is bypassed, so decoders see any flags).
inline Frame MakeFrame(uint8_t first_byte, const std::string& body) {
  return Frame{static_cast<PacketType>(first_byte >> 4), static_cast<uint8_t>(first_byte & 0x0F), body,
               body.size() + 2};
}

// Runs a whole packet through a FrameReader; the Frame views `reader`.
struct Framed {
  explicit Framed(const std::string& wire, uint32_t max_packet_size = 1 << 20) : reader(max_packet_size) {
    reader.Append(wire.data(), wire.size());
    auto next = reader.Next();
    if (!next) throw std::runtime_error("frame error: " + next.error().message);
    if (!*next) throw std::runtime_error("incomplete frame");
    frame = **next;
    if (reader.buffered() != 0) throw std::runtime_error("bytes after the frame");
  }
  FrameReader reader;
  Frame frame{};
};

}  // namespace ferry::mqtt::testing
