// The MQTT transport's pure parts: PUBACK classification (the one place) and strings made legal for MQTT.
#include <gtest/gtest.h>

#include "ferry/uplink_mqtt.h"

namespace ferry {
namespace {

TEST(MqttLegalString, LegalStringsAreUnchanged) {
  for (const char* s : {"", "dev-1", "gw/telemetry/42", "h\xC3\xA9llo", "100%", "%41", "\xF0\x9F\x9A\xA2"})
    EXPECT_EQ(MqttLegalString(s), s);
}

TEST(MqttLegalString, ControlCharactersAndBadUtf8ArePercentEncoded) {
  EXPECT_EQ(MqttLegalString(std::string("dev\x01-7")), "dev%01-7");
  EXPECT_EQ(MqttLegalString(std::string("a\0b", 3)), "a%00b");
  EXPECT_EQ(MqttLegalString("50%\x7F"), "50%25%7F") << "once encoding, '%' is encoded too";
  EXPECT_EQ(MqttLegalString("\xC2\x85"), "%C2%85");                   // U+0085, a C1 control
  EXPECT_EQ(MqttLegalString("x\xFF"), "x%FF");                        // not UTF-8
  EXPECT_EQ(MqttLegalString("\xC0\x80"), "%C0%80");                   // overlong NUL
  EXPECT_EQ(MqttLegalString("\xED\xA0\x80"), "%ED%A0%80");            // a surrogate
  EXPECT_EQ(MqttLegalString("\xEF\xBF\xBE"), "%EF%BF%BE");            // U+FFFE, a noncharacter
  EXPECT_EQ(MqttLegalString("\xE2\x82"), "%E2%82");                   // truncated
  EXPECT_EQ(MqttLegalString("\xC3\xA9\x01"), "\xC3\xA9%01") << "legal characters stay as they are";
}

TEST(MqttLegalTopic, WildcardsAreEncodedSlashesKept) {
  EXPECT_EQ(MqttLegalTopic("ferry/gw/telemetry/dev-1"), "ferry/gw/telemetry/dev-1");
  EXPECT_EQ(MqttLegalTopic("ferry/gw/t/a+b#"), "ferry/gw/t/a%2Bb%23");
  EXPECT_EQ(MqttLegalTopic(std::string("ferry/gw/t/d\x01")), "ferry/gw/t/d%01");
  EXPECT_EQ(MqttLegalString("a+b#"), "a+b#") << "wildcards are legal in a user property";
}

TEST(ClassifyPublish, OneFunctionDecidesOkRetryDrop) {
  EXPECT_EQ(ClassifyPublish(0, 0x00).kind, PublishVerdict::kOk);
  EXPECT_EQ(ClassifyPublish(0, 0x10).kind, PublishVerdict::kOk);  // no subscribers: the broker took it
  EXPECT_EQ(ClassifyPublish(-3, 0).kind, PublishVerdict::kRetry);
  auto too_large = ClassifyPublish(0, 0x95);
  EXPECT_EQ(too_large.kind, PublishVerdict::kDrop);
  EXPECT_EQ(too_large.reason, "packet_too_large");
  EXPECT_EQ(ClassifyPublish(0, 0x99).kind, PublishVerdict::kDrop);
  auto acl = ClassifyPublish(0, 0x87);
  EXPECT_EQ(acl.kind, PublishVerdict::kRetry);
  EXPECT_EQ(acl.retry_after, std::chrono::seconds(60));
  EXPECT_EQ(ClassifyPublish(0, 0x97).retry_after, std::chrono::seconds(10));
  EXPECT_EQ(ClassifyPublish(0, 0x80).kind, PublishVerdict::kRetry);
  // Paho fails the token of a PUBACK that carries a failure reason: the reason still decides.
  EXPECT_EQ(ClassifyPublish(-1, 0x95).kind, PublishVerdict::kDrop);
  EXPECT_EQ(ClassifyPublish(-1, 0x87).reason, "not_authorized");
}

}  // namespace
}  // namespace ferry
