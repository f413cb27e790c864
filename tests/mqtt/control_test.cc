// SUBSCRIBE/UNSUBSCRIBE (refused by ferryd) and their acknowledgements, CONNACK, PINGREQ/PINGRESP,
// DISCONNECT and AUTH.
#include <gtest/gtest.h>

#include "ferry/mqtt/packet.h"
#include "wire_bytes.h"

namespace ferry::mqtt {
namespace {

using testing::Bytes;
using testing::MakeFrame;
using testing::ToHex;

// 3.1.1 section 3.8.3 payload example: "a/b" QoS 1, "c/d" QoS 2, packet identifier 10.
const char kV311Subscribe[] = "82 0E 00 0A 00 03 'a/b' 01 00 03 'c/d' 02";

TEST(SubscribeTest, V311SpecExample) {
  const std::string wire = Bytes(kV311Subscribe);
  testing::Framed f(wire);
  auto s = DecodeSubscribe(f.frame, Version::kV311);
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_EQ(s->packet_id, 10);
  ASSERT_EQ(s->filter_count, 2u);
  EXPECT_EQ(s->filters[0].filter, "a/b");
  EXPECT_EQ(s->filters[0].max_qos, 1);
  EXPECT_EQ(s->filters[1].filter, "c/d");
  EXPECT_EQ(s->filters[1].max_qos, 2);
  std::string out;
  ASSERT_TRUE(EncodeSubscribe(out, Version::kV311, *s));
  EXPECT_EQ(ToHex(out), ToHex(wire));
}

TEST(SubscribeTest, V5OptionsAndSubscriptionIdentifier) {
  // Properties: Subscription Identifier 300 (VBI AC 02); options: QoS 1, No Local, RAP, Retain Handling 2.
  const std::string wire = Bytes("82 0C 00 0A 03 0B AC 02 00 03 'a/+' 2D");
  testing::Framed f(wire);
  auto s = DecodeSubscribe(f.frame, Version::kV5);
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_EQ(s->subscription_identifier, std::optional<uint32_t>(300));
  ASSERT_EQ(s->filters.size(), 1u);
  EXPECT_EQ(s->filters[0].max_qos, 1);
  EXPECT_TRUE(s->filters[0].no_local);
  EXPECT_TRUE(s->filters[0].retain_as_published);
  EXPECT_EQ(s->filters[0].retain_handling, 2);
  std::string out;
  ASSERT_TRUE(EncodeSubscribe(out, Version::kV5, *s));
  EXPECT_EQ(ToHex(out), ToHex(wire));
}

TEST(SubscribeTest, ManyFiltersAreCountedButNotAllKept) {
  std::string body = Bytes("00 01");
  for (int i = 0; i < 1000; ++i) body += Bytes("00 01 '#' 00");
  auto s = DecodeSubscribe(MakeFrame(0x82, body), Version::kV311);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->filter_count, 1000u);
  EXPECT_EQ(s->filters.size(), kMaxKeptFilters);
}

struct Bad {
  const char* name;
  uint8_t first;
  const char* body;
  Version version;
  ReasonCode code;
};

const Bad kBadSubscribe[] = {
    {"flags 0", 0x80, "00 01 00 01 'a' 00", Version::kV311, ReasonCode::kMalformedPacket},
    {"no filters", 0x82, "00 01", Version::kV311, ReasonCode::kProtocolError},
    {"no filters v5", 0x82, "00 01 00", Version::kV5, ReasonCode::kProtocolError},
    {"packet id 0", 0x82, "00 00 00 01 'a' 00", Version::kV311, ReasonCode::kProtocolError},
    {"qos 3", 0x82, "00 01 00 01 'a' 03", Version::kV311, ReasonCode::kMalformedPacket},
    {"3.1.1 reserved bits", 0x82, "00 01 00 01 'a' 04", Version::kV311, ReasonCode::kMalformedPacket},
    {"5.0 reserved bits", 0x82, "00 01 00 00 01 'a' 40", Version::kV5, ReasonCode::kMalformedPacket},
    {"retain handling 3", 0x82, "00 01 00 00 01 'a' 30", Version::kV5, ReasonCode::kProtocolError},
    {"no local on shared", 0x82, "00 01 00 00 0A '$share/g/a' 04", Version::kV5, ReasonCode::kProtocolError},
    {"options missing", 0x82, "00 01 00 01 'a'", Version::kV311, ReasonCode::kMalformedPacket},
    {"empty filter", 0x82, "00 01 00 00 00", Version::kV311, ReasonCode::kMalformedPacket},
    {"subscription id 0", 0x82, "00 01 02 0B 00 00 01 'a' 00", Version::kV5, ReasonCode::kProtocolError},
    {"subscription id twice", 0x82, "00 01 04 0B 01 0B 02 00 01 'a' 00", Version::kV5, ReasonCode::kProtocolError},
    {"reason string in SUBSCRIBE", 0x82, "00 01 04 1F 00 01 'x' 00 01 'a' 00", Version::kV5,
     ReasonCode::kMalformedPacket},
};

TEST(SubscribeTest, Refusals) {
  for (const Bad& b : kBadSubscribe) {
    const std::string body = Bytes(b.body);
    auto s = DecodeSubscribe(MakeFrame(b.first, body), b.version);
    ASSERT_FALSE(s.has_value()) << b.name;
    EXPECT_EQ(s.error().code, b.code) << b.name << ": " << s.error().message;
  }
}

TEST(SubackTest, Encodings) {
  std::string out;
  EncodeSuback(out, Version::kV311, 10, 1, ReasonCode::kNotAuthorized);
  EXPECT_EQ(ToHex(out), "90 03 00 0A 80");  // 3.1.1 knows only 0x80 Failure
  out.clear();
  EncodeSuback(out, Version::kV311, 10, 2, ReasonCode::kWildcardSubscriptionsNotSupported);
  EXPECT_EQ(ToHex(out), "90 04 00 0A 80 80");
  out.clear();
  EncodeSuback(out, Version::kV5, 10, 2, ReasonCode::kWildcardSubscriptionsNotSupported);
  EXPECT_EQ(ToHex(out), "90 05 00 0A 00 A2 A2");
  out.clear();
  EncodeUnsuback(out, Version::kV311, 10, 2, ReasonCode::kNotAuthorized);
  EXPECT_EQ(ToHex(out), "B0 02 00 0A");
  out.clear();
  EncodeUnsuback(out, Version::kV5, 10, 1, ReasonCode::kNotAuthorized);
  EXPECT_EQ(ToHex(out), "B0 04 00 0A 00 87");
}

TEST(SubackTest, DecodeWhatWeEncode) {
  std::string out;
  EncodeSuback(out, Version::kV5, 7, 3, ReasonCode::kImplementationSpecificError);
  testing::Framed f(out);
  auto a = DecodeSuback(f.frame, Version::kV5);
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(a->packet_id, 7);
  EXPECT_EQ(ToHex(a->reason_codes), "83 83 83");
  std::string un;
  EncodeUnsuback(un, Version::kV311, 8, 1, ReasonCode::kSuccess);
  testing::Framed g(un);
  auto b = DecodeSuback(g.frame, Version::kV311);
  ASSERT_TRUE(b.has_value()) << b.error().message;
  EXPECT_EQ(b->packet_id, 8);
  EXPECT_TRUE(b->reason_codes.empty());
}

TEST(UnsubscribeTest, DecodeAndRefusals) {
  const std::string body = Bytes("00 02 00 03 'a/b' 00 01 '#'");  // decoded views point into it
  auto u = DecodeUnsubscribe(MakeFrame(0xA2, body), Version::kV311);
  ASSERT_TRUE(u.has_value()) << u.error().message;
  EXPECT_EQ(u->packet_id, 2);
  EXPECT_EQ(u->filter_count, 2u);
  EXPECT_EQ(u->filters[1], "#");
  auto v5 = DecodeUnsubscribe(MakeFrame(0xA2, Bytes("00 02 06 26 00 01 'k' 00 00 00 01 'x'")), Version::kV5);
  ASSERT_TRUE(v5.has_value()) << v5.error().message;
  EXPECT_EQ(v5->user_properties.size(), 1u);

  EXPECT_EQ(DecodeUnsubscribe(MakeFrame(0xA0, Bytes("00 02 00 01 'a'")), Version::kV311).error().code,
            ReasonCode::kMalformedPacket);
  EXPECT_EQ(DecodeUnsubscribe(MakeFrame(0xA2, Bytes("00 02")), Version::kV311).error().code, ReasonCode::kProtocolError);
  EXPECT_EQ(DecodeUnsubscribe(MakeFrame(0xA2, Bytes("00 02 00 02 'a'")), Version::kV311).error().code,
            ReasonCode::kMalformedPacket);
  EXPECT_EQ(DecodeUnsubscribe(MakeFrame(0xA2, Bytes("00 02 02 0B 01 00 01 'a'")), Version::kV5).error().code,
            ReasonCode::kMalformedPacket);  // Subscription Identifier is not an UNSUBSCRIBE property

  Unsubscribe w;
  w.packet_id = 2;
  w.filters = {"a/b", "#"};
  std::string out;
  ASSERT_TRUE(EncodeUnsubscribe(out, Version::kV311, w));
  EXPECT_EQ(ToHex(out), "A2 0A 00 02 00 03 61 2F 62 00 01 23");
}

TEST(ConnackTest, V311) {
  std::string out;
  EncodeConnack(out, Version::kV311, false, v311::kConnectionAccepted);
  EXPECT_EQ(ToHex(out), "20 02 00 00");
  out.clear();
  EncodeConnack(out, Version::kV311, true, v311::kConnectionAccepted);
  EXPECT_EQ(ToHex(out), "20 02 01 00");
  out.clear();
  EncodeConnack(out, Version::kV311, true, v311::kUnacceptableProtocolVersion);  // 3.2.2-4: no session present
  EXPECT_EQ(ToHex(out), "20 02 00 01");
}

TEST(ConnackTest, V5FerrydDefaults) {
  std::string out;
  EncodeConnack(out, Version::kV5, false, 0, ConnackProperties{});
  // Maximum QoS 1, Retain Available 0, Wildcard/Subscription Identifier/Shared Subscription Available 0.
  EXPECT_EQ(ToHex(out), "20 0D 00 00 0A 24 01 25 00 28 00 29 00 2A 00");
  testing::Framed f(out);
  auto c = DecodeConnack(f.frame, Version::kV5);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->props.maximum_qos, 1);
  EXPECT_FALSE(c->props.retain_available);
  EXPECT_EQ(c->props.receive_maximum, 65535);
}

TEST(ConnackTest, V5SpecDefaultsWriteNoProperties) {
  ConnackProperties all;
  all.maximum_qos = 2;
  all.retain_available = all.wildcard_subscription_available = true;
  all.subscription_identifiers_available = all.shared_subscription_available = true;
  std::string out;
  EncodeConnack(out, Version::kV5, false, 0, all);
  EXPECT_EQ(ToHex(out), "20 03 00 00 00");
}

TEST(ConnackTest, V5WithLimitsAndStrings) {
  ConnackProperties p;
  p.receive_maximum = 100;
  p.maximum_packet_size = 1024;
  p.topic_alias_maximum = 5;
  p.server_keep_alive = 60;
  p.assigned_client_identifier = "auto-1";
  std::string out;
  EncodeConnack(out, Version::kV5, false, 0, p);
  EXPECT_EQ(ToHex(out),
            "20 24 00 00 21 21 00 64 24 01 25 00 27 00 00 04 00 12 00 06 61 75 74 6F 2D 31 22 00 05 28 00 29 00 2A "
            "00 13 00 3C");
  testing::Framed f(out);
  auto c = DecodeConnack(f.frame, Version::kV5);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->props.receive_maximum, 100);
  EXPECT_EQ(c->props.maximum_packet_size, 1024u);
  EXPECT_EQ(c->props.topic_alias_maximum, 5);
  EXPECT_EQ(c->props.server_keep_alive, std::optional<uint16_t>(60));
  EXPECT_EQ(c->props.assigned_client_identifier, std::optional<std::string_view>("auto-1"));

  out.clear();
  EncodeConnack(out, Version::kV5, true, static_cast<uint8_t>(ReasonCode::kNotAuthorized), ConnackProperties{});
  EXPECT_EQ(ToHex(out.substr(0, 4)), "20 0D 00 87");  // session present only with success (5.0 3.2.2-6)
}

TEST(PingTest, RequestAndResponse) {
  std::string out;
  EncodePingresp(out);
  EXPECT_EQ(ToHex(out), "D0 00");
  out.clear();
  EncodePingreq(out);
  EXPECT_EQ(ToHex(out), "C0 00");
  EXPECT_TRUE(DecodePingreq(MakeFrame(0xC0, "")).has_value());
  EXPECT_TRUE(DecodePingresp(MakeFrame(0xD0, "")).has_value());
  EXPECT_EQ(DecodePingreq(MakeFrame(0xC0, "x")).error().code, ReasonCode::kMalformedPacket);
  EXPECT_EQ(DecodePingreq(MakeFrame(0xC2, "")).error().code, ReasonCode::kMalformedPacket);
  EXPECT_FALSE(DecodePingreq(MakeFrame(0xD0, "")).has_value());
}

TEST(DisconnectTest, Encodings) {
  std::string out;
  EncodeDisconnect(out, Version::kV311, ReasonCode::kProtocolError);
  EXPECT_TRUE(out.empty());  // a 3.1.1 server just closes
  EncodeDisconnect(out, Version::kV5, ReasonCode::kSuccess);
  EXPECT_EQ(ToHex(out), "E0 00");
  out.clear();
  EncodeDisconnect(out, Version::kV5, ReasonCode::kKeepAliveTimeout);
  EXPECT_EQ(ToHex(out), "E0 01 8D");
  out.clear();
  EncodeDisconnect(out, Version::kV5, ReasonCode::kKeepAliveTimeout, "hi");
  EXPECT_EQ(ToHex(out), "E0 07 8D 05 1F 00 02 68 69");
  out.clear();
  EncodeClientDisconnect(out, Version::kV5, ReasonCode::kSuccess, 0);
  EXPECT_EQ(ToHex(out), "E0 07 00 05 11 00 00 00 00");
  out.clear();
  EncodeClientDisconnect(out, Version::kV311, ReasonCode::kSuccess, std::nullopt);
  EXPECT_EQ(ToHex(out), "E0 00");
}

TEST(DisconnectTest, LongReasonStringIsCutAtACharacterBoundary) {
  std::string reason(65534, 'a');
  reason += "\xE2\x82\xAC";  // U+20AC straddles byte 65535
  std::string out;
  EncodeDisconnect(out, Version::kV5, ReasonCode::kUnspecifiedError, reason);
  testing::Framed f(out);
  auto d = DecodeDisconnect(f.frame, Version::kV5);
  ASSERT_TRUE(d.has_value()) << d.error().message;
  EXPECT_EQ(d->reason_string.size(), 65534u);
}

TEST(DisconnectTest, Decode) {
  auto a = DecodeDisconnect(MakeFrame(0xE0, ""), Version::kV5);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->reason, ReasonCode::kSuccess);
  auto b = DecodeDisconnect(MakeFrame(0xE0, Bytes("04")), Version::kV5);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->reason, ReasonCode::kDisconnectWithWillMessage);
  const std::string body = Bytes("00 0A 11 00 00 00 3C 1F 00 02 'ok'");
  auto c = DecodeDisconnect(MakeFrame(0xE0, body), Version::kV5);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->session_expiry, std::optional<uint32_t>(60));
  EXPECT_EQ(c->reason_string, "ok");

  EXPECT_EQ(DecodeDisconnect(MakeFrame(0xE0, Bytes("00")), Version::kV311).error().code, ReasonCode::kMalformedPacket);
  EXPECT_EQ(DecodeDisconnect(MakeFrame(0xE0, Bytes("05")), Version::kV5).error().code, ReasonCode::kProtocolError);
  EXPECT_EQ(DecodeDisconnect(MakeFrame(0xE0, Bytes("00 02 23 00")), Version::kV5).error().code,
            ReasonCode::kMalformedPacket);
  EXPECT_EQ(DecodeDisconnect(MakeFrame(0xE1, ""), Version::kV5).error().code, ReasonCode::kMalformedPacket);
}

TEST(AuthTest, Decode) {
  const std::string body = Bytes("18 0A 15 00 02 'ab' 16 00 02 01 02");
  auto a = DecodeAuth(MakeFrame(0xF0, body), Version::kV5);
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(a->reason, ReasonCode::kContinueAuthentication);
  EXPECT_EQ(a->method, "ab");
  EXPECT_EQ(a->data, Bytes("01 02"));
  EXPECT_TRUE(DecodeAuth(MakeFrame(0xF0, ""), Version::kV5).has_value());
  EXPECT_EQ(DecodeAuth(MakeFrame(0xF0, ""), Version::kV311).error().code, ReasonCode::kMalformedPacket);
  EXPECT_EQ(DecodeAuth(MakeFrame(0xF0, Bytes("87")), Version::kV5).error().code, ReasonCode::kProtocolError);
  EXPECT_EQ(DecodeAuth(MakeFrame(0xF0, Bytes("00 02 24 01")), Version::kV5).error().code, ReasonCode::kMalformedPacket);
}

TEST(ReasonCodeTest, NamesAndV311Mapping) {
  EXPECT_STREQ(ReasonCodeName(ReasonCode::kQuotaExceeded), "quota_exceeded");
  EXPECT_STREQ(ReasonCodeName(ReasonCode::kMalformedPacket), "malformed_packet");
  EXPECT_STREQ(ReasonCodeName(static_cast<ReasonCode>(0x7E)), "unknown");
  EXPECT_STREQ(PacketTypeName(PacketType::kPingreq), "pingreq");
  EXPECT_EQ(V311ConnackCodeFor(ReasonCode::kBadUserNameOrPassword), std::optional<uint8_t>(4));
  EXPECT_EQ(V311ConnackCodeFor(ReasonCode::kNotAuthorized), std::optional<uint8_t>(5));
  EXPECT_EQ(V311ConnackCodeFor(ReasonCode::kServerBusy), std::optional<uint8_t>(3));
  EXPECT_EQ(V311ConnackCodeFor(ReasonCode::kClientIdentifierNotValid), std::optional<uint8_t>(2));
  EXPECT_FALSE(V311ConnackCodeFor(ReasonCode::kMalformedPacket).has_value());
}

}  // namespace
}  // namespace ferry::mqtt
