// ferry/mqtt/frame_reader.h: cuts a TCP byte stream into MQTT control packets.
//
// Feed it whatever recv() returned (Append), or recv() straight into its buffer (WritableSpan + Commit), then
// call Next() until it says it needs more bytes. It checks the fixed header as soon as the bytes of the
// header are in: a reserved packet type, wrong fixed-header flags, a Remaining Length longer than 4 bytes or
// not minimally encoded (1.5.5), or a packet larger than max_packet_size are errors before a single body
// byte is waited for, so a peer cannot make it buffer more than one maximum-size packet.
//
// Threads: one reader per connection, used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

#include "ferry/mqtt/types.h"

namespace ferry::mqtt {

class FrameReader {
 public:
  // max_packet_size counts the whole packet (fixed header included), as the 5.0 Maximum Packet Size does.
  // Values below 2 are raised to 2 (the smallest packet), above kMaxRemainingLength + 5 lowered to it.
  explicit FrameReader(uint32_t max_packet_size);

  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;

  // Copies n bytes to the end of the buffer. Invalidates the views of the last Frame.
  void Append(const char* data, size_t n);

  // For recv() without a copy: a writable area of at least `min` bytes after the buffered data, then
  // Commit(bytes actually received). REQUIRES: n <= the size WritableSpan returned (larger n is clamped).
  // Both invalidate the views of the last Frame.
  std::pair<char*, size_t> WritableSpan(size_t min);
  void Commit(size_t n);

  // The next complete packet, nullopt when more bytes are needed, or an error:
  //   kMalformedPacket  reserved type 0, wrong fixed-header flags, bad Remaining Length encoding
  //   kPacketTooLarge   fixed header + Remaining Length > max_packet_size
  // After an error the stream cannot be resynchronised: every later call returns the same error and the
  // caller closes the connection (5.0: after a DISCONNECT with the error's code).
  // A Frame's views stay valid until the next Next(), Append(), WritableSpan() or Commit().
  Decoded<std::optional<Frame>> Next();

  // Bytes received and not yet returned in a Frame.
  size_t buffered() const { return end_ - begin_; }
  uint32_t max_packet_size() const { return max_packet_size_; }

 private:
  void MakeRoom(size_t n);  // compacts, then grows so that n more bytes fit after end_

  uint32_t max_packet_size_;
  std::unique_ptr<char[]> buf_;  // not std::string: no zero-filling of space recv() will overwrite
  size_t capacity_ = 0;
  size_t begin_ = 0;  // first byte not yet returned in a Frame
  size_t end_ = 0;    // one past the last received byte
  std::optional<DecodeError> error_;
};

}  // namespace ferry::mqtt
