// The CloudEvents Kafka binding end to end without a cluster: an event as the Kafka uplink turns it into record
// headers (KafkaRecordHeaders) and back as the centre's feed reads them (KafkaRecordToMessage), through the same
// EventExtractor as MQTT messages; and a FRYB batch as one record.
#include "ferry/kafka_feed.h"

#include <gtest/gtest.h>

#include "ferry/receiver.h"
#include "ferry/uplink_kafka.h"
#include "ferry/wire.h"

namespace ferry {
namespace {

WireEvent MakeEvent(uint64_t seq) {
  WireEvent e;
  e.id = "dev-1/b2/" + std::to_string(seq);
  e.source = "ferry://gw-1/telemetry";
  e.type = "com.example.telemetry";
  e.time = TimeNs{1'700'000'000'250'000'000};
  e.subject = "dev-1";
  e.datacontenttype = "application/json";
  e.seq = Seq{seq};
  e.ingest_time = TimeNs{1'700'000'001'000'000'000};
  e.headers = {{"firmwareversion", "1.2.3"}};
  e.payload = R"({"t":21.5})";
  return e;
}

TEST(KafkaBinding, APerEventRecordReadsBackAsTheSameCloudEvent) {
  const WireEvent e = MakeEvent(42);
  MqttEventProperties props = ToMqttProperties(e);
  OutboundUnit unit;
  unit.topic = "ferry.gw-1.telemetry";
  unit.key = e.subject;
  unit.content_type = props.content_type;
  unit.attributes = props.user_properties;
  unit.payload = e.payload;
  const auto headers = KafkaRecordHeaders(unit);

  std::string content_type;
  CentralMessage m = KafkaRecordToMessage(unit.topic, unit.payload, headers, &content_type);
  EXPECT_EQ(m.topic, "ferry.gw-1.telemetry");
  EXPECT_EQ(m.content_type, "application/json");
  EXPECT_EQ(m.user_properties, props.user_properties);
  EventExtractor x;
  EXPECT_EQ(x.Classify(m), MessageKind::kCloudEvent);
  auto events = x.Extract(m);
  ASSERT_TRUE(events) << events.error().ToString();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ(events->front(), e);
}

TEST(KafkaBinding, ABatchRecordReadsBackAsItsEvents) {
  Batch b{"gw-1", "telemetry", {MakeEvent(41), MakeEvent(42)}};
  auto bytes = EncodeBatch(b);
  ASSERT_TRUE(bytes) << bytes.error().ToString();
  OutboundUnit unit;
  unit.topic = "ferry.gw-1.telemetry";
  unit.content_type = kBatchContentType;
  const auto headers = KafkaRecordHeaders(unit);
  std::string content_type;
  CentralMessage m = KafkaRecordToMessage(unit.topic, *bytes, headers, &content_type);
  EventExtractor x;
  EXPECT_EQ(x.Classify(m), MessageKind::kBatch);
  auto events = x.Extract(m);
  ASSERT_TRUE(events) << events.error().ToString();
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[1], MakeEvent(42));
}

TEST(KafkaBinding, OtherHeadersAreIgnoredAndARecordWithoutAttributesIsBad) {
  std::string content_type;
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"traceparent", "00-1"}, {"ce_", "x"}, {"content-type", "text/plain"}};
  CentralMessage m = KafkaRecordToMessage("t", "payload", headers, &content_type);
  EXPECT_TRUE(m.user_properties.empty());
  EXPECT_EQ(m.content_type, "text/plain");
  CentralReceiver rx;
  rx.Receive(m);
  EXPECT_EQ(rx.bad(), 1u);
  EXPECT_EQ(rx.unique(), 0u);
}

}  // namespace
}  // namespace ferry
