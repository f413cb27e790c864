// frame_reader.cc: fixed-header parsing (2.1 / 5.0 2.1) over a compacting receive buffer.
#include "ferry/mqtt/frame_reader.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "byte_reader.h"

namespace ferry::mqtt {

namespace {
constexpr uint32_t kLargestPacket = kMaxRemainingLength + 5;
}

FrameReader::FrameReader(uint32_t max_packet_size)
    : max_packet_size_(std::clamp<uint32_t>(max_packet_size, 2, kLargestPacket)) {}

void FrameReader::MakeRoom(size_t n) {
  // Compact only when new bytes arrive, never in Next(): a buffer holding many small packets is then
  // moved once per recv(), not once per packet.
  if (begin_ > 0) {
    const size_t live = end_ - begin_;
    if (live > 0) std::memmove(buf_.get(), buf_.get() + begin_, live);
    begin_ = 0;
    end_ = live;
  }
  if (capacity_ - end_ >= n) return;
  size_t want = std::max(end_ + n, capacity_ + capacity_ / 2);
  auto bigger = std::make_unique<char[]>(want);  // value-initialised once per growth, not per recv()
  if (end_ > 0) std::memcpy(bigger.get(), buf_.get(), end_);
  buf_ = std::move(bigger);
  capacity_ = want;
}

void FrameReader::Append(const char* data, size_t n) {
  if (n == 0) return;
  MakeRoom(n);
  std::memcpy(buf_.get() + end_, data, n);
  end_ += n;
}

std::pair<char*, size_t> FrameReader::WritableSpan(size_t min) {
  MakeRoom(std::max<size_t>(min, 1));
  return {buf_.get() + end_, capacity_ - end_};
}

void FrameReader::Commit(size_t n) { end_ += std::min(n, capacity_ - end_); }

Decoded<std::optional<Frame>> FrameReader::Next() {
  if (error_) return tl::unexpected<DecodeError>(*error_);
  const size_t avail = end_ - begin_;
  if (avail == 0) return std::optional<Frame>();
  const char* p = buf_.get() + begin_;

  auto fail = [this](ReasonCode code, std::string message) -> Decoded<std::optional<Frame>> {
    error_ = DecodeError{code, std::move(message), std::nullopt};
    return tl::unexpected<DecodeError>(*error_);
  };

  const auto first = static_cast<uint8_t>(p[0]);
  const uint8_t type = first >> 4;
  const uint8_t flags = first & 0x0F;
  if (!FixedHeaderFlagsValid(type, flags)) {
    return fail(ReasonCode::kMalformedPacket, std::string("fixed header: ") +
                    (type == 0 ? "reserved packet type 0" : "packet type " + std::to_string(type) +
                                                                " with flags " + internal::Hex(flags)));
  }

  uint32_t remaining = 0;
  size_t vbi_len = 0;
  switch (internal::DecodeVbi(std::string_view(p + 1, avail - 1), &remaining, &vbi_len)) {
    case internal::VbiStatus::kOk: break;
    case internal::VbiStatus::kTruncated: return std::optional<Frame>();
    case internal::VbiStatus::kMalformed:
      return fail(ReasonCode::kMalformedPacket, "fixed header: bad Remaining Length encoding");
  }
  // remaining <= kMaxRemainingLength, so this sum fits in 32 bits (and in a 32-bit size_t).
  const uint32_t total = remaining + static_cast<uint32_t>(1 + vbi_len);
  if (total > max_packet_size_) {
    return fail(ReasonCode::kPacketTooLarge, "packet of " + std::to_string(total) + " bytes exceeds the maximum of " +
                                                 std::to_string(max_packet_size_));
  }
  if (avail < total) return std::optional<Frame>();

  Frame frame{static_cast<PacketType>(type), flags, std::string_view(p + 1 + vbi_len, remaining), total};
  begin_ += total;
  if (begin_ == end_) begin_ = end_ = 0;  // the bytes stay where they are until the next Append/Commit
  return std::optional<Frame>(frame);
}

}  // namespace ferry::mqtt
