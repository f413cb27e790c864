// FrameReader: Remaining Length boundaries (3.1.1 table 2.4 / 5.0 table 1-1), refusal before buffering,
// fixed-header flag checks, and arbitrary splits of the byte stream.
#include "ferry/mqtt/frame_reader.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "ferry/mqtt/packet.h"
#include "wire_bytes.h"

namespace ferry::mqtt {
namespace {

using testing::Bytes;

struct VbiCase {
  uint32_t value;
  const char* encoding;
};

// The boundary values of the spec's table: the smallest and largest of each length.
const VbiCase kVbiTable[] = {
    {0, "00"},
    {127, "7F"},
    {128, "80 01"},
    {16383, "FF 7F"},
    {16384, "80 80 01"},
    {2097151, "FF FF 7F"},
    {2097152, "80 80 80 01"},
    {268435455, "FF FF FF 7F"},
};

TEST(FrameReaderTest, RemainingLengthTableDecodesExactly) {
  for (const VbiCase& c : kVbiTable) {
    const std::string header = Bytes("30") + Bytes(c.encoding);
    const auto total = static_cast<uint32_t>(header.size() + c.value);
    // A limit of exactly the packet's size waits for the body; one byte less refuses it at once.
    FrameReader fits(total);
    fits.Append(header.data(), header.size());
    if (c.value == 0) {
      auto f = fits.Next();
      ASSERT_TRUE(f.has_value() && f->has_value()) << c.encoding;
      EXPECT_EQ((*f)->body.size(), 0u);
      EXPECT_EQ((*f)->wire_size, 2u);
    } else {
      auto f = fits.Next();
      ASSERT_TRUE(f.has_value()) << c.encoding << ": " << f.error().message;
      EXPECT_FALSE(f->has_value()) << c.encoding;
      EXPECT_EQ(fits.buffered(), header.size());
      FrameReader small(total - 1);
      small.Append(header.data(), header.size());
      auto g = small.Next();
      ASSERT_FALSE(g.has_value()) << c.encoding;
      EXPECT_EQ(g.error().code, ReasonCode::kPacketTooLarge);
    }
  }
}

TEST(FrameReaderTest, EncoderWritesRemainingLengthTable) {
  // A QoS 0 PUBLISH with topic "t" has 3 bytes before the payload; size the payload to hit each boundary.
  for (const VbiCase& c : kVbiTable) {
    if (c.value < 3 || c.value > 2097152) continue;
    Publish p;
    p.topic = "t";
    std::string payload(c.value - 3, 'x');
    p.payload = payload;
    std::string out;
    ASSERT_TRUE(EncodePublish(out, Version::kV311, p));
    const std::string want = Bytes("30") + Bytes(c.encoding);
    EXPECT_EQ(testing::ToHex(out.substr(0, want.size())), testing::ToHex(want)) << c.value;
    EXPECT_EQ(out.size(), want.size() + c.value);
  }
}

TEST(FrameReaderTest, FiveByteRemainingLengthIsMalformed) {
  FrameReader r(1u << 30);
  const std::string wire = Bytes("30 FF FF FF FF 7F");
  r.Append(wire.data(), wire.size());
  auto f = r.Next();
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().code, ReasonCode::kMalformedPacket);
}

TEST(FrameReaderTest, ContinuationOnFourthByteIsMalformedBeforeTheFifthArrives) {
  FrameReader r(1u << 30);
  const std::string wire = Bytes("30 80 80 80 80");
  r.Append(wire.data(), wire.size());
  auto f = r.Next();
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().code, ReasonCode::kMalformedPacket);
}

TEST(FrameReaderTest, NonMinimalRemainingLengthIsMalformed) {
  for (const char* wire : {"30 80 00", "30 FF 80 00", "30 80 80 80 00"}) {
    FrameReader r(1u << 30);
    const std::string bytes = Bytes(wire);
    r.Append(bytes.data(), bytes.size());
    auto f = r.Next();
    ASSERT_FALSE(f.has_value()) << wire;
    EXPECT_EQ(f.error().code, ReasonCode::kMalformedPacket) << wire;
  }
}

TEST(FrameReaderTest, TooLargeIsRefusedBeforeTheBodyIsBuffered) {
  FrameReader r(1024);
  const std::string header = Bytes("30 FF 7F");  // 16383 bytes announced
  r.Append(header.data(), header.size());
  auto f = r.Next();
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().code, ReasonCode::kPacketTooLarge);
  EXPECT_EQ(r.buffered(), 3u);  // nothing but the header was ever held
}

TEST(FrameReaderTest, ErrorIsSticky) {
  FrameReader r(1024);
  const std::string bad = Bytes("00 00 C0 00");
  r.Append(bad.data(), bad.size());
  ASSERT_FALSE(r.Next().has_value());
  auto again = r.Next();
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ReasonCode::kMalformedPacket);
}

TEST(FrameReaderTest, FixedHeaderFlags) {
  struct Case {
    const char* wire;
    bool ok;
  };
  const Case cases[] = {
      {"10 00", true},  {"11 00", false},  // CONNECT
      {"62 02 00 01", true}, {"60 02 00 01", false}, {"63 02 00 01", false},  // PUBREL needs 0010
      {"82 00", true},  {"80 00", false},  {"8A 00", false},                 // SUBSCRIBE
      {"A2 00", true},  {"A0 00", false},                                     // UNSUBSCRIBE
      {"C0 00", true},  {"C1 00", false},                                     // PINGREQ
      {"E0 00", true},  {"E8 00", false},                                     // DISCONNECT
      {"F0 00", true},  {"F1 00", false},                                     // AUTH (5.0)
      {"00 00", false}, {"0F 00", false},                                     // reserved type 0
      {"3F 00", true},  // PUBLISH: QoS 3 and DUP are the decoder's to judge
  };
  for (const Case& c : cases) {
    FrameReader r(1024);
    const std::string wire = Bytes(c.wire);
    r.Append(wire.data(), wire.size());
    auto f = r.Next();
    EXPECT_EQ(f.has_value(), c.ok) << c.wire;
    if (!f) {
      EXPECT_EQ(f.error().code, ReasonCode::kMalformedPacket) << c.wire;
    }
  }
}

TEST(FrameReaderTest, BadFlagsAreRefusedFromTheFirstByte) {
  FrameReader r(1024);
  r.Append("\x80", 1);
  EXPECT_FALSE(r.Next().has_value());
}

// Three packets of different shapes, one with a 2-byte Remaining Length.
std::string ThreePackets() {
  std::string wire = Bytes("C0 00");
  Publish p;
  p.topic = "a/b";
  p.qos = 1;
  p.packet_id = 7;
  std::string payload(200, 'z');
  p.payload = payload;
  EncodePublish(wire, Version::kV311, p);
  wire += Bytes("E0 00");
  return wire;
}

std::vector<std::pair<uint8_t, std::string>> Drain(FrameReader& r) {
  std::vector<std::pair<uint8_t, std::string>> out;
  while (true) {
    auto f = r.Next();
    EXPECT_TRUE(f.has_value());
    if (!f || !*f) break;
    out.emplace_back(static_cast<uint8_t>((*f)->type), std::string((*f)->body));
  }
  return out;
}

TEST(FrameReaderTest, OneByteAtATime) {
  const std::string wire = ThreePackets();
  FrameReader whole(4096);
  whole.Append(wire.data(), wire.size());
  const auto expected = Drain(whole);
  ASSERT_EQ(expected.size(), 3u);
  EXPECT_EQ(expected[1].second.size(), 2u + 3 + 2 + 200);

  FrameReader r(4096);
  std::vector<std::pair<uint8_t, std::string>> got;
  for (char c : wire) {
    r.Append(&c, 1);
    for (auto& f : Drain(r)) got.push_back(std::move(f));
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(FrameReaderTest, ArbitrarySplitsThroughWritableSpan) {
  std::string wire;
  for (int i = 0; i < 20; ++i) wire += ThreePackets();
  std::mt19937 rng(12345);  // fixed seed: the same splits every run
  for (int round = 0; round < 50; ++round) {
    FrameReader r(4096);
    size_t pos = 0, frames = 0;
    while (pos < wire.size()) {
      const size_t chunk = std::min<size_t>(wire.size() - pos, 1 + rng() % 300);
      auto [dst, room] = r.WritableSpan(chunk);
      ASSERT_GE(room, chunk);
      std::copy(wire.data() + pos, wire.data() + pos + chunk, dst);
      r.Commit(chunk);
      pos += chunk;
      frames += Drain(r).size();
    }
    EXPECT_EQ(frames, 60u);
    EXPECT_EQ(r.buffered(), 0u);
  }
}

TEST(FrameReaderTest, TinyLimitIsRaisedToTheSmallestPacket) {
  FrameReader r(0);
  EXPECT_EQ(r.max_packet_size(), 2u);
  r.Append("\xC0\x00", 2);
  auto f = r.Next();
  ASSERT_TRUE(f.has_value() && f->has_value());
}

}  // namespace
}  // namespace ferry::mqtt
