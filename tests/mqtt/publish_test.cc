// PUBLISH and PUBACK: hand-written vectors, the topic/QoS/property checks, and UTF-8 (1.5.4) edge cases.
#include <gtest/gtest.h>

#include "ferry/mqtt/packet.h"
#include "wire_bytes.h"

namespace ferry::mqtt {
namespace {

using testing::Bytes;
using testing::MakeFrame;
using testing::ToHex;

TEST(PublishTest, V311Qos1) {
  const std::string wire = Bytes("32 0C 00 03 'a/b' 00 0A 'hello'");
  testing::Framed f(wire);
  auto p = DecodePublish(f.frame, Version::kV311);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->qos, 1);
  EXPECT_FALSE(p->dup);
  EXPECT_FALSE(p->retain);
  EXPECT_EQ(p->topic, "a/b");
  EXPECT_EQ(p->packet_id, 10);
  EXPECT_EQ(p->payload, "hello");

  std::string out;
  ASSERT_TRUE(EncodePublish(out, Version::kV311, *p));
  EXPECT_EQ(ToHex(out), ToHex(wire));
}

TEST(PublishTest, V311Qos0RetainEmptyPayload) {
  const std::string wire = Bytes("31 05 00 03 'a/b'");
  testing::Framed f(wire);
  auto p = DecodePublish(f.frame, Version::kV311);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->qos, 0);
  EXPECT_TRUE(p->retain);
  EXPECT_EQ(p->packet_id, 0);
  EXPECT_TRUE(p->payload.empty());
}

// Properties: Payload Format Indicator 1, Message Expiry Interval 60, User Property ("k", "v").
const char kV5Publish[] = "3A 1B 00 03 'a/b' 00 0A 0E 01 01 02 00 00 00 3C 26 00 01 'k' 00 01 'v' 'hello'";

TEST(PublishTest, V5WithProperties) {
  const std::string wire = Bytes(kV5Publish);
  testing::Framed f(wire);
  auto p = DecodePublish(f.frame, Version::kV5);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_TRUE(p->dup);
  EXPECT_EQ(p->qos, 1);
  EXPECT_EQ(p->payload_format_indicator, std::optional<uint8_t>(1));
  EXPECT_EQ(p->message_expiry, std::optional<uint32_t>(60));
  ASSERT_EQ(p->user_properties.size(), 1u);
  EXPECT_EQ(p->user_properties[0].first, "k");
  EXPECT_EQ(p->user_properties[0].second, "v");
  EXPECT_EQ(p->payload, "hello");

  std::string out;
  ASSERT_TRUE(EncodePublish(out, Version::kV5, *p));
  EXPECT_EQ(ToHex(out), ToHex(wire));
}

TEST(PublishTest, V5AllStringPropertiesRoundTrip) {
  Publish p;
  p.qos = 1;
  p.packet_id = 65535;
  p.topic = "sensors/t1";
  p.payload = std::string_view("\x00\x01\x02", 3);
  p.topic_alias = 3;
  p.content_type = "application/cbor";
  p.response_topic = "replies/t1";
  p.correlation_data = std::string_view("\xFF\x00", 2);
  std::string wire;
  ASSERT_TRUE(EncodePublish(wire, Version::kV5, p));
  testing::Framed f(wire);
  auto d = DecodePublish(f.frame, Version::kV5);
  ASSERT_TRUE(d.has_value()) << d.error().message;
  EXPECT_EQ(d->packet_id, 65535);
  EXPECT_EQ(d->topic_alias, std::optional<uint16_t>(3));
  EXPECT_EQ(d->content_type, "application/cbor");
  EXPECT_EQ(d->response_topic, "replies/t1");
  EXPECT_EQ(d->correlation_data, p.correlation_data);
  EXPECT_EQ(d->payload, p.payload);
}

TEST(PublishTest, Qos2DecodesForTheServerToRefuse) {
  const std::string body = Bytes("00 01 't' 00 05");
  auto p = DecodePublish(MakeFrame(0x34, body), Version::kV311);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->qos, 2);
}

TEST(PublishTest, V5EmptyTopicWithAlias) {
  const std::string body = Bytes("00 00 03 23 00 02 'x'");
  auto p = DecodePublish(MakeFrame(0x30, body), Version::kV5);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_TRUE(p->topic.empty());
  EXPECT_EQ(p->topic_alias, std::optional<uint16_t>(2));
}

struct BadPublish {
  const char* name;
  uint8_t first;
  const char* body;
  Version version;
  ReasonCode code;
};

const BadPublish kBad[] = {
    {"qos 3", 0x36, "00 01 't' 00 01", Version::kV311, ReasonCode::kMalformedPacket},
    {"dup with qos 0", 0x38, "00 01 't'", Version::kV311, ReasonCode::kMalformedPacket},
    {"packet id 0", 0x32, "00 01 't' 00 00", Version::kV311, ReasonCode::kProtocolError},
    {"packet id truncated", 0x32, "00 01 't' 00", Version::kV311, ReasonCode::kMalformedPacket},
    {"topic truncated", 0x30, "00 05 'ab'", Version::kV311, ReasonCode::kMalformedPacket},
    {"plus in topic", 0x30, "00 03 'a/+'", Version::kV311, ReasonCode::kTopicNameInvalid},
    {"hash in topic", 0x30, "00 01 '#'", Version::kV5, ReasonCode::kTopicNameInvalid},
    {"empty topic 3.1.1", 0x30, "00 00", Version::kV311, ReasonCode::kTopicNameInvalid},
    {"empty topic 5.0 no alias", 0x30, "00 00 00", Version::kV5, ReasonCode::kProtocolError},
    {"topic U+0000", 0x30, "00 02 'a' 00", Version::kV311, ReasonCode::kMalformedPacket},
    {"topic alias 0", 0x30, "00 01 't' 03 23 00 00", Version::kV5, ReasonCode::kTopicAliasInvalid},
    {"subscription identifier", 0x30, "00 01 't' 02 0B 01", Version::kV5, ReasonCode::kProtocolError},
    {"session expiry in PUBLISH", 0x30, "00 01 't' 05 11 00 00 00 01", Version::kV5, ReasonCode::kMalformedPacket},
    {"message expiry twice", 0x30, "00 01 't' 0A 02 00 00 00 01 02 00 00 00 01", Version::kV5,
     ReasonCode::kProtocolError},
    {"payload format 2", 0x30, "00 01 't' 02 01 02", Version::kV5, ReasonCode::kProtocolError},
    {"payload not UTF-8", 0x30, "00 01 't' 02 01 01 'ok' C3 28", Version::kV5, ReasonCode::kPayloadFormatInvalid},
    {"property length missing", 0x30, "00 01 't'", Version::kV5, ReasonCode::kMalformedPacket},
    {"property truncated", 0x30, "00 01 't' 03 02 00 00", Version::kV5, ReasonCode::kMalformedPacket},
    {"content type invalid UTF-8", 0x30, "00 01 't' 04 03 00 01 FF", Version::kV5, ReasonCode::kMalformedPacket},
    {"response topic wildcard", 0x30, "00 01 't' 04 08 00 01 '#'", Version::kV5, ReasonCode::kProtocolError},
};

TEST(PublishTest, Refusals) {
  for (const BadPublish& b : kBad) {
    const std::string body = Bytes(b.body);
    auto p = DecodePublish(MakeFrame(b.first, body), b.version);
    ASSERT_FALSE(p.has_value()) << b.name;
    EXPECT_EQ(p.error().code, b.code) << b.name << ": " << p.error().message;
  }
}

TEST(PublishTest, PayloadFormatIndicatorChecksOnlyWhenSet) {
  // U+0000 is allowed in a UTF-8 payload (RFC 3629), unlike in a UTF-8 Encoded String.
  EXPECT_TRUE(DecodePublish(MakeFrame(0x30, Bytes("00 01 't' 02 01 01 'a' 00 'b'")), Version::kV5).has_value());
  EXPECT_TRUE(DecodePublish(MakeFrame(0x30, Bytes("00 01 't' 02 01 00 FF FE")), Version::kV5).has_value());
  EXPECT_TRUE(DecodePublish(MakeFrame(0x30, Bytes("00 01 't' 00 FF FE")), Version::kV5).has_value());
  EXPECT_TRUE(DecodePublish(MakeFrame(0x30, Bytes("00 01 't' FF FE")), Version::kV311).has_value());
}

// Through the public API: a 3.1.1 topic is a UTF-8 Encoded String.
bool TopicAccepted(const char* utf8_hex) {
  const std::string topic = Bytes(utf8_hex);
  std::string body;
  body.push_back(static_cast<char>(topic.size() >> 8));
  body.push_back(static_cast<char>(topic.size() & 0xFF));
  body += topic;
  return DecodePublish(MakeFrame(0x30, body), Version::kV311).has_value();
}

TEST(Utf8Test, WellFormedAccepted) {
  EXPECT_TRUE(TopicAccepted("'abc'"));
  EXPECT_TRUE(TopicAccepted("C2 80"));         // U+0080, smallest 2-byte
  EXPECT_TRUE(TopicAccepted("E2 82 AC"));      // U+20AC
  EXPECT_TRUE(TopicAccepted("ED 9F BF"));      // U+D7FF, just below the surrogates
  EXPECT_TRUE(TopicAccepted("EE 80 80"));      // U+E000, just above
  EXPECT_TRUE(TopicAccepted("EF BB BF"));      // U+FEFF BOM: 1.5.4-3 says it must not be skipped or stripped
  EXPECT_TRUE(TopicAccepted("F0 9F 98 80"));   // U+1F600
  EXPECT_TRUE(TopicAccepted("F4 8F BF BF"));   // U+10FFFF, the last code point
}

TEST(Utf8Test, IllFormedRejected) {
  EXPECT_FALSE(TopicAccepted("00"));           // U+0000 (1.5.4-2)
  EXPECT_FALSE(TopicAccepted("'a' 00 'b'"));
  EXPECT_FALSE(TopicAccepted("C0 AF"));        // overlong '/'
  EXPECT_FALSE(TopicAccepted("C1 BF"));        // overlong
  EXPECT_FALSE(TopicAccepted("E0 80 AF"));     // overlong 3-byte
  EXPECT_FALSE(TopicAccepted("F0 80 80 AF"));  // overlong 4-byte
  EXPECT_FALSE(TopicAccepted("ED A0 80"));     // U+D800 high surrogate (1.5.4-1)
  EXPECT_FALSE(TopicAccepted("ED BF BF"));     // U+DFFF low surrogate
  EXPECT_FALSE(TopicAccepted("F4 90 80 80"));  // U+110000
  EXPECT_FALSE(TopicAccepted("F5 80 80 80"));
  EXPECT_FALSE(TopicAccepted("80"));           // lone continuation
  EXPECT_FALSE(TopicAccepted("E2 82"));        // truncated sequence
  EXPECT_FALSE(TopicAccepted("E2 28 A1"));     // bad continuation
  EXPECT_FALSE(TopicAccepted("FF"));
}

TEST(PubackTest, Encodings) {
  std::string out;
  EncodePuback(out, Version::kV311, 1);
  EXPECT_EQ(ToHex(out), "40 02 00 01");
  out.clear();
  EncodePuback(out, Version::kV5, 1);
  EXPECT_EQ(ToHex(out), "40 02 00 01");  // 5.0 3.4.2.1: no reason byte for Success
  out.clear();
  EncodePuback(out, Version::kV5, 1, ReasonCode::kQuotaExceeded);
  EXPECT_EQ(ToHex(out), "40 03 00 01 97");
  out.clear();
  EncodePuback(out, Version::kV311, 0x1234, ReasonCode::kQuotaExceeded);  // 3.1.1 has no reason codes
  EXPECT_EQ(ToHex(out), "40 02 12 34");
}

TEST(PubackTest, BatchesAppend) {
  std::string out;
  EncodePuback(out, Version::kV5, 1);
  EncodePuback(out, Version::kV5, 2, ReasonCode::kPayloadFormatInvalid);
  EXPECT_EQ(ToHex(out), "40 02 00 01 40 03 00 02 99");
}

TEST(PubackTest, Decode) {
  auto a = DecodePuback(MakeFrame(0x40, Bytes("00 01")), Version::kV311);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->packet_id, 1);
  auto b = DecodePuback(MakeFrame(0x40, Bytes("00 01 97")), Version::kV5);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->reason, ReasonCode::kQuotaExceeded);
  const std::string body = Bytes("00 01 10 06 1F 00 03 'why'");  // decoded views point into it
  auto c = DecodePuback(MakeFrame(0x40, body), Version::kV5);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->reason, ReasonCode::kNoMatchingSubscribers);
  EXPECT_EQ(c->reason_string, "why");
  auto rel = DecodePuback(MakeFrame(0x62, Bytes("00 09 92")), Version::kV5);
  ASSERT_TRUE(rel.has_value());
  EXPECT_EQ(rel->type, PacketType::kPubrel);
}

TEST(PubackTest, Refusals) {
  EXPECT_EQ(DecodePuback(MakeFrame(0x40, Bytes("00 01 97")), Version::kV311).error().code, ReasonCode::kMalformedPacket);
  EXPECT_EQ(DecodePuback(MakeFrame(0x40, Bytes("00")), Version::kV5).error().code, ReasonCode::kMalformedPacket);
  EXPECT_EQ(DecodePuback(MakeFrame(0x40, Bytes("00 00")), Version::kV5).error().code, ReasonCode::kProtocolError);
  EXPECT_EQ(DecodePuback(MakeFrame(0x40, Bytes("00 01 92")), Version::kV5).error().code, ReasonCode::kProtocolError);
  EXPECT_EQ(DecodePuback(MakeFrame(0x40, Bytes("00 01 00 02 26 00")), Version::kV5).error().code,
            ReasonCode::kMalformedPacket);
  EXPECT_EQ(DecodePuback(MakeFrame(0x40, Bytes("00 01 00 02 23 00")), Version::kV5).error().code,
            ReasonCode::kMalformedPacket);  // Topic Alias is not a PUBACK property
  EXPECT_EQ(DecodePuback(MakeFrame(0x60, Bytes("00 01")), Version::kV5).error().code, ReasonCode::kMalformedPacket);
}

}  // namespace
}  // namespace ferry::mqtt
