// CONNECT: the specifications' variable-header examples (3.1.1 figure 3.6 and 5.0 figure 3-7 "Variable
// Header example"), every check DecodeConnect makes, and the version it reports with an error.
#include <gtest/gtest.h>

#include "ferry/mqtt/packet.h"
#include "wire_bytes.h"

namespace ferry::mqtt {
namespace {

using testing::Bytes;
using testing::MakeFrame;
using testing::ToHex;

// Flags CE: User Name, Password, Will QoS 1, Will Flag, Clean Session; Keep Alive 10 seconds.
const char kV311Body[] =
    "00 04 'MQTT' 04 CE 00 0A"  // the 3.1.1 example, byte for byte
    " 00 03 'abc' 00 04 'w/t1' 00 02 'hi' 00 04 'user' 00 02 'pw'";
// 5.0: the same flags, then Properties: length 5, Session Expiry Interval (0x11) = 10.
const char kV5Body[] =
    "00 04 'MQTT' 05 CE 00 0A 05 11 00 00 00 0A"
    " 00 03 'abc' 00 00 04 'w/t1' 00 02 'hi' 00 04 'user' 00 02 'pw'";

Decoded<Connect> Decode(const std::string& body) { return DecodeConnect(MakeFrame(0x10, body)); }

TEST(ConnectTest, V311SpecExample) {
  const std::string body = Bytes(kV311Body);
  auto c = Decode(body);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->version, Version::kV311);
  EXPECT_TRUE(c->clean_start);
  EXPECT_EQ(c->keep_alive, 10);
  EXPECT_EQ(c->client_id, "abc");
  EXPECT_TRUE(c->will_flag);
  EXPECT_EQ(c->will_qos, 1);
  EXPECT_FALSE(c->will_retain);
  EXPECT_EQ(c->will_topic, "w/t1");
  EXPECT_EQ(c->will_payload, "hi");
  EXPECT_EQ(c->username, std::optional<std::string_view>("user"));
  EXPECT_EQ(c->password, std::optional<std::string_view>("pw"));
}

TEST(ConnectTest, V5SpecExample) {
  const std::string body = Bytes(kV5Body);
  auto c = Decode(body);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->version, Version::kV5);
  EXPECT_EQ(c->session_expiry, 10u);
  EXPECT_EQ(c->receive_maximum, 65535);
  EXPECT_TRUE(c->request_problem_information);
  EXPECT_EQ(c->will_qos, 1);
  EXPECT_EQ(c->client_id, "abc");
}

TEST(ConnectTest, EncoderReproducesBothExamples) {
  for (const char* spec : {kV311Body, kV5Body}) {
    const std::string body = Bytes(spec);
    auto c = Decode(body);
    ASSERT_TRUE(c.has_value());
    std::string out;
    ASSERT_TRUE(EncodeConnect(out, *c));
    std::string want = Bytes("10");
    want.push_back(static_cast<char>(body.size()));  // both fit a 1-byte Remaining Length
    want += body;
    EXPECT_EQ(ToHex(out), ToHex(want));
  }
}

TEST(ConnectTest, MinimalV5WithPropertiesRoundTrips) {
  Connect c;
  c.version = Version::kV5;
  c.client_id = "dev-1";
  c.keep_alive = 30;
  c.receive_maximum = 20;
  c.maximum_packet_size = 4096;
  c.topic_alias_maximum = 8;
  c.request_problem_information = false;
  c.request_response_information = true;
  c.auth_method = "SCRAM";
  c.auth_data = "x";
  c.user_properties = {{"k", "v"}, {"k", "w"}};
  std::string wire;
  ASSERT_TRUE(EncodeConnect(wire, c));
  testing::Framed f(wire);
  auto d = DecodeConnect(f.frame);
  ASSERT_TRUE(d.has_value()) << d.error().message;
  EXPECT_EQ(d->client_id, "dev-1");
  EXPECT_EQ(d->receive_maximum, 20);
  EXPECT_EQ(d->maximum_packet_size, 4096u);
  EXPECT_EQ(d->topic_alias_maximum, 8);
  EXPECT_FALSE(d->request_problem_information);
  EXPECT_TRUE(d->request_response_information);
  EXPECT_EQ(d->auth_method, "SCRAM");
  EXPECT_EQ(d->auth_data, "x");
  EXPECT_EQ(d->user_properties, c.user_properties);
  EXPECT_FALSE(d->username.has_value());
}

TEST(ConnectTest, MqIsdpIsAnUnsupportedVersionWithoutAVersion) {
  const std::string body = Bytes("00 06 'MQIsdp' 03 02 00 3C 00 01 'x'");
  auto c = Decode(body);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, ReasonCode::kUnsupportedProtocolVersion);
  EXPECT_FALSE(c.error().version.has_value());
  EXPECT_EQ(V311ConnackCodeFor(c.error().code), std::optional<uint8_t>(v311::kUnacceptableProtocolVersion));
}

TEST(ConnectTest, UnknownLevelOrNameIsUnsupported) {
  for (const char* spec : {"00 04 'MQTT' 06 02 00 00 00 00", "00 04 'MQTT' 03 02 00 00 00 00",
                           "00 04 'MQTX' 04 02 00 00 00 00"}) {
    auto c = Decode(Bytes(spec));
    ASSERT_FALSE(c.has_value()) << spec;
    EXPECT_EQ(c.error().code, ReasonCode::kUnsupportedProtocolVersion) << spec;
  }
}

struct BadConnect {
  const char* name;
  const char* body;
  ReasonCode code;
  Version version;
};

const BadConnect kBad[] = {
    {"reserved flag", "00 04 'MQTT' 04 03 00 0A 00 01 'x'", ReasonCode::kMalformedPacket, Version::kV311},
    {"reserved flag v5", "00 04 'MQTT' 05 03 00 0A 00 00 01 'x'", ReasonCode::kMalformedPacket, Version::kV5},
    {"password without user 3.1.1", "00 04 'MQTT' 04 42 00 0A 00 01 'x' 00 01 'p'", ReasonCode::kMalformedPacket,
     Version::kV311},
    {"will qos 3", "00 04 'MQTT' 04 1E 00 0A 00 01 'x' 00 01 't' 00 00", ReasonCode::kMalformedPacket, Version::kV311},
    {"will qos without will", "00 04 'MQTT' 04 0A 00 0A 00 01 'x'", ReasonCode::kMalformedPacket, Version::kV311},
    {"will retain without will", "00 04 'MQTT' 04 22 00 0A 00 01 'x'", ReasonCode::kMalformedPacket, Version::kV311},
    {"empty id, no clean session", "00 04 'MQTT' 04 00 00 0A 00 00", ReasonCode::kClientIdentifierNotValid,
     Version::kV311},
    {"trailing byte", "00 04 'MQTT' 04 02 00 0A 00 01 'x' 00", ReasonCode::kMalformedPacket, Version::kV311},
    {"client id truncated", "00 04 'MQTT' 04 02 00 0A 00 05 'x'", ReasonCode::kMalformedPacket, Version::kV311},
    {"keep alive truncated", "00 04 'MQTT' 04 02 00", ReasonCode::kMalformedPacket, Version::kV311},
    {"client id U+0000", "00 04 'MQTT' 04 02 00 0A 00 02 'a' 00", ReasonCode::kMalformedPacket, Version::kV311},
    {"client id surrogate", "00 04 'MQTT' 04 02 00 0A 00 03 ED A0 80", ReasonCode::kMalformedPacket, Version::kV311},
    {"client id overlong", "00 04 'MQTT' 04 02 00 0A 00 02 C0 AF", ReasonCode::kMalformedPacket, Version::kV311},
    {"will topic wildcard", "00 04 'MQTT' 04 06 00 0A 00 01 'x' 00 03 'a/#' 00 00", ReasonCode::kTopicNameInvalid,
     Version::kV311},
    {"will topic empty", "00 04 'MQTT' 04 06 00 0A 00 01 'x' 00 00 00 00", ReasonCode::kTopicNameInvalid, Version::kV311},
    {"user name invalid UTF-8", "00 04 'MQTT' 04 82 00 0A 00 01 'x' 00 01 FF", ReasonCode::kMalformedPacket,
     Version::kV311},
    // 5.0 properties
    {"property length past end", "00 04 'MQTT' 05 02 00 0A 09 11 00 00", ReasonCode::kMalformedPacket, Version::kV5},
    {"topic alias not allowed", "00 04 'MQTT' 05 02 00 0A 03 23 00 01 00 01 'x'", ReasonCode::kMalformedPacket,
     Version::kV5},
    {"unknown property", "00 04 'MQTT' 05 02 00 0A 02 7F 00 00 01 'x'", ReasonCode::kMalformedPacket, Version::kV5},
    {"session expiry twice", "00 04 'MQTT' 05 02 00 0A 0A 11 00 00 00 01 11 00 00 00 02 00 01 'x'",
     ReasonCode::kProtocolError, Version::kV5},
    {"receive maximum 0", "00 04 'MQTT' 05 02 00 0A 03 21 00 00 00 01 'x'", ReasonCode::kProtocolError, Version::kV5},
    {"maximum packet size 0", "00 04 'MQTT' 05 02 00 0A 05 27 00 00 00 00 00 01 'x'", ReasonCode::kProtocolError,
     Version::kV5},
    {"request problem information 2", "00 04 'MQTT' 05 02 00 0A 02 17 02 00 01 'x'", ReasonCode::kProtocolError,
     Version::kV5},
    {"auth data without method", "00 04 'MQTT' 05 02 00 0A 04 16 00 01 'd' 00 01 'x'", ReasonCode::kProtocolError,
     Version::kV5},
    {"will property in CONNECT", "00 04 'MQTT' 05 02 00 0A 05 18 00 00 00 01 00 01 'x'", ReasonCode::kMalformedPacket,
     Version::kV5},
    {"CONNECT property in will", "00 04 'MQTT' 05 06 00 0A 00 00 01 'x' 05 11 00 00 00 01 00 01 't' 00 00",
     ReasonCode::kMalformedPacket, Version::kV5},
    {"will payload not UTF-8", "00 04 'MQTT' 05 06 00 0A 00 00 01 'x' 02 01 01 00 01 't' 00 01 FF",
     ReasonCode::kPayloadFormatInvalid, Version::kV5},
    {"non-minimal property length", "00 04 'MQTT' 05 02 00 0A 80 00 00 01 'x'", ReasonCode::kMalformedPacket,
     Version::kV5},
};

TEST(ConnectTest, Refusals) {
  for (const BadConnect& b : kBad) {
    auto c = Decode(Bytes(b.body));
    ASSERT_FALSE(c.has_value()) << b.name;
    EXPECT_EQ(c.error().code, b.code) << b.name << ": " << c.error().message;
    EXPECT_EQ(c.error().version, std::optional<Version>(b.version)) << b.name;
  }
}

TEST(ConnectTest, V5AllowsPasswordWithoutUserAndEmptyIdWithoutCleanStart) {
  const std::string body = Bytes("00 04 'MQTT' 05 40 00 0A 00 00 00 00 02 'pw'");  // views point into it
  auto c = Decode(body);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_FALSE(c->clean_start);
  EXPECT_EQ(c->client_id, "");
  EXPECT_FALSE(c->username.has_value());
  EXPECT_EQ(c->password, std::optional<std::string_view>("pw"));
}

TEST(ConnectTest, TooManyUserProperties) {
  std::string props;
  for (size_t i = 0; i <= kMaxUserProperties; ++i) props += Bytes("26 00 01 'k' 00 01 'v'");
  std::string body = Bytes("00 04 'MQTT' 05 02 00 0A");
  body.push_back(static_cast<char>(0x80 | (props.size() & 0x7F)));
  body.push_back(static_cast<char>(props.size() >> 7));
  body += props + Bytes("00 01 'x'");
  auto c = Decode(body);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, ReasonCode::kImplementationSpecificError);
}

TEST(ConnectTest, EveryTruncationIsAnErrorNotACrash) {
  for (const char* spec : {kV311Body, kV5Body}) {
    const std::string body = Bytes(spec);
    for (size_t n = 0; n < body.size(); ++n) {
      const std::string cut = body.substr(0, n);
      auto c = Decode(cut);
      ASSERT_FALSE(c.has_value()) << n;
      EXPECT_EQ(c.error().code, ReasonCode::kMalformedPacket) << n;
    }
  }
}

TEST(ConnectTest, WrongPacketTypeOrFlags) {
  const std::string body = Bytes(kV311Body);
  EXPECT_FALSE(DecodeConnect(MakeFrame(0x30, body)).has_value());
  auto c = DecodeConnect(MakeFrame(0x11, body));
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, ReasonCode::kMalformedPacket);
}

}  // namespace
}  // namespace ferry::mqtt
