// The central receiver without a broker: each message kind's events and ids, bad messages, deduplication.
#include "ferry/receiver.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace ferry {
namespace {

WireEvent MakeEvent(uint64_t seq) {
  WireEvent e;
  e.id = "dev-1/b2/" + std::to_string(seq);
  e.source = "ferry://gw-1/telemetry";
  e.type = "com.example.telemetry";
  e.subject = "dev-1";
  e.datacontenttype = "application/json";
  e.seq = Seq{seq};
  e.ingest_time = TimeNs{1'700'000'001'000'000'000};
  e.payload = R"({"t":21.5})";
  return e;
}

// The message a per-event uplink publishes for `e` (the CloudEvents MQTT binding). `props` must outlive it.
CentralMessage PerEventMessage(const WireEvent& e, const MqttEventProperties& props, const std::string& topic) {
  CentralMessage m;
  m.topic = topic;
  m.payload = e.payload;
  m.content_type = props.content_type;
  m.user_properties = props.user_properties;
  return m;
}

CentralMessage BatchMessage(const std::string& bytes) {
  CentralMessage m;
  m.topic = "ferry/gw-1/telemetry";
  m.payload = bytes;
  m.content_type = kBatchContentType;
  return m;
}

CentralMessage DeviceMessage(std::string_view payload) {
  CentralMessage m;
  m.topic = "telemetry/dev-0000/up";
  m.payload = payload;
  m.content_type = "application/json";
  m.user_properties = {{"ce_id", "ignored"}};  // what ferry-sim sends along; not a CloudEvent
  return m;
}

std::string GoldenBatch() {
  std::ifstream in(std::string(FERRY_HUB_TESTDATA) + "/batch_v1.hex");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string digits, out;
  for (char c : ss.str()) {
    if (std::isxdigit(static_cast<unsigned char>(c))) digits += c;
  }
  for (size_t i = 0; i + 1 < digits.size(); i += 2) out += static_cast<char>(std::stoi(digits.substr(i, 2), nullptr, 16));
  return out;
}

std::vector<std::string> Ids(const std::vector<WireEvent>& events) {
  std::vector<std::string> ids;
  for (const auto& e : events) ids.push_back(e.id);
  return ids;
}

TEST(EventExtractor, PerEventCloudEventCarriesItsIdInTheUserProperties) {
  WireEvent e = MakeEvent(7);
  MqttEventProperties props = ToMqttProperties(e);
  std::string topic = "ferry/gw-1/telemetry";
  CentralMessage m = PerEventMessage(e, props, topic);
  EventExtractor x;
  EXPECT_EQ(x.Classify(m), MessageKind::kCloudEvent);
  auto events = x.Extract(m);
  ASSERT_TRUE(events) << events.error().ToString();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_TRUE(events->front() == e);
}

TEST(EventExtractor, BatchGivesOneIdPerEvent) {
  Batch b{"gw-1", "telemetry", {MakeEvent(41), MakeEvent(42), MakeEvent(43)}};
  auto bytes = EncodeBatch(b);
  ASSERT_TRUE(bytes) << bytes.error().ToString();
  EventExtractor x;
  CentralMessage m = BatchMessage(*bytes);
  EXPECT_EQ(x.Classify(m), MessageKind::kBatch);
  auto events = x.Extract(m);
  ASSERT_TRUE(events) << events.error().ToString();
  EXPECT_EQ(Ids(*events), (std::vector<std::string>{"dev-1/b2/41", "dev-1/b2/42", "dev-1/b2/43"}));
  EXPECT_EQ(events->back().seq, Seq{43});

  // The golden vector of docs/wire.md: a device id and a gateway-made one.
  std::string golden = GoldenBatch();
  ASSERT_EQ(golden.size(), 340u);
  events = x.Extract(BatchMessage(golden));
  ASSERT_TRUE(events) << events.error().ToString();
  EXPECT_EQ(Ids(*events), (std::vector<std::string>{"dev-1/7/41", "gw-1/telemetry/42"}));
}

TEST(EventExtractor, SignedBatchNeedsTheKey) {
  Batch b{"gw-1", "telemetry", {MakeEvent(1)}};
  EncoderOptions eo;
  eo.hmac_key = "secret";
  auto bytes = EncodeBatch(b, eo);
  ASSERT_TRUE(bytes) << bytes.error().ToString();
  EventExtractor with_key(MessageKinds{}, "secret"), without_key;
  auto events = with_key.Extract(BatchMessage(*bytes));
  ASSERT_TRUE(events) << events.error().ToString();
  EXPECT_EQ(Ids(*events), std::vector<std::string>{"dev-1/b2/1"});
  auto refused = without_key.Extract(BatchMessage(*bytes));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
}

TEST(EventExtractor, BridgedDeviceJsonCarriesItsIdInThePayload) {
  MessageKinds kinds;
  kinds.device_json = true;
  EventExtractor x(kinds);
  std::string payload = R"({"id":"dev-0000/b1/000000001","dev":"dev-0000","t":21.5})";
  CentralMessage m = DeviceMessage(payload);
  EXPECT_EQ(x.Classify(m), MessageKind::kDeviceJson);
  auto events = x.Extract(m);
  ASSERT_TRUE(events) << events.error().ToString();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ(events->front().id, "dev-0000/b1/000000001");
  EXPECT_EQ(events->front().payload, payload);

  // Ids are strings, as an ingest route's id_json_field takes them: a number is an error, not "12345"; a
  // nested "id" is not the event's.
  EXPECT_FALSE(x.Extract(DeviceMessage(R"({"meta":{"id":"inner"},"id":12345})")));
  events = x.Extract(DeviceMessage(R"({"meta":{"id":"inner"},"id":"top"})"));
  ASSERT_TRUE(events) << events.error().ToString();
  EXPECT_EQ(events->front().id, "top");

  // A per-event CloudEvent is still one when device JSON is accepted too.
  WireEvent e = MakeEvent(9);
  MqttEventProperties props = ToMqttProperties(e);
  std::string topic = "ferry/gw-1/telemetry";
  EXPECT_EQ(x.Classify(PerEventMessage(e, props, topic)), MessageKind::kCloudEvent);
}

TEST(EventExtractor, MalformedMessagesAreErrors) {
  MessageKinds all;
  all.device_json = true;
  EventExtractor x(all);
  // A per-event message without its id.
  WireEvent e = MakeEvent(3);
  MqttEventProperties props = ToMqttProperties(e);
  auto& up = props.user_properties;
  up.erase(std::remove_if(up.begin(), up.end(), [](const auto& kv) { return kv.first == "id"; }), up.end());
  std::string topic = "ferry/gw-1/telemetry";
  auto r = x.Extract(PerEventMessage(e, props, topic));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCorruption);
  // A truncated batch, a batch with a flipped byte.
  auto bytes = EncodeBatch(Batch{"gw-1", "telemetry", {MakeEvent(1), MakeEvent(2)}});
  ASSERT_TRUE(bytes);
  r = x.Extract(BatchMessage(bytes->substr(0, bytes->size() - 1)));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCorruption);
  std::string flipped = *bytes;
  flipped[flipped.size() - 3] ^= 0x20;
  EXPECT_FALSE(x.Extract(BatchMessage(flipped)));
  // Device payloads: not JSON, not an object, no id, an id of the wrong type, an empty id.
  for (std::string_view bad : {"{\"id\":\"dev-1/b1/1\"", "[\"id\"]", R"({"dev":"dev-1"})", R"({"id":-4})",
                               R"({"id":""})"}) {
    r = x.Extract(DeviceMessage(bad));
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kCorruption) << bad;
  }
}

TEST(EventExtractor, KindsNotAcceptedAreErrors) {
  // The default (ferryd's uplinks only) reads a device payload as a CloudEvent missing its attributes.
  EventExtractor ferry_only;
  CentralMessage device = DeviceMessage(R"({"id":"dev-0000/b1/000000001"})");
  EXPECT_EQ(ferry_only.Classify(device), MessageKind::kCloudEvent);
  EXPECT_FALSE(ferry_only.Extract(device));

  MessageKinds no_batches;
  no_batches.batch = false;
  EventExtractor x(no_batches);
  auto bytes = EncodeBatch(Batch{"gw-1", "telemetry", {MakeEvent(1)}});
  ASSERT_TRUE(bytes);
  auto r = x.Extract(BatchMessage(*bytes));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
}

TEST(CentralReceiver, CountsUniqueDuplicatesAndBad) {
  std::vector<std::string> new_ids, warnings;
  CentralReceiverOptions o;
  o.kinds.device_json = true;
  o.record_arrivals = true;
  o.on_new_id = [&](std::string_view id) { new_ids.emplace_back(id); };
  o.warn = [&](const std::string& text) { warnings.push_back(text); };
  CentralReceiver rx(std::move(o));
  rx.KeepEvents(true);

  WireEvent e = MakeEvent(5);
  MqttEventProperties props = ToMqttProperties(e);
  std::string topic = "ferry/gw-1/telemetry";
  rx.Receive(PerEventMessage(e, props, topic));
  rx.Receive(PerEventMessage(e, props, topic));  // redelivered
  // A batch overlapping the per-event message: 5 again, 6 new.
  auto bytes = EncodeBatch(Batch{"gw-1", "telemetry", {MakeEvent(5), MakeEvent(6)}});
  ASSERT_TRUE(bytes);
  rx.Receive(BatchMessage(*bytes));
  rx.Receive(DeviceMessage(R"({"id":"dev-0000/b1/000000001"})"));
  rx.Receive(DeviceMessage("not json"));  // bad
  rx.Receive(BatchMessage("FRYB"));       // bad

  EXPECT_EQ(rx.messages(), 6u);
  EXPECT_EQ(rx.events(), 5u);
  EXPECT_EQ(rx.unique(), 3u);
  EXPECT_EQ(rx.duplicates(), 2u);
  EXPECT_EQ(rx.bad(), 2u);
  EXPECT_TRUE(rx.Has("dev-1/b2/5"));
  EXPECT_TRUE(rx.Has("dev-1/b2/6"));
  EXPECT_TRUE(rx.Has("dev-0000/b1/000000001"));
  EXPECT_FALSE(rx.Has("dev-1/b2/7"));
  EXPECT_EQ(new_ids, (std::vector<std::string>{"dev-1/b2/5", "dev-1/b2/6", "dev-0000/b1/000000001"}));
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_EQ(warnings[0].rfind("telemetry/dev-0000/up: Corruption: ", 0), 0u) << warnings[0];
  EXPECT_EQ(warnings[1].rfind("ferry/gw-1/telemetry: Corruption: ", 0), 0u) << warnings[1];

  auto by_id = rx.ById();
  ASSERT_EQ(by_id.size(), 3u);
  EXPECT_TRUE(by_id.at("dev-1/b2/5") == e);
  auto arrivals = rx.Arrivals();
  std::vector<uint64_t> seqs;
  for (const auto& [t, seq] : arrivals) seqs.push_back(seq);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{5, 5, 5, 6, 0}));
  EXPECT_EQ(arrivals.back().first, "telemetry/dev-0000/up");
}

TEST(CentralReceiver, HashedIdsDeduplicateTheSame) {
  CentralReceiverOptions o;
  o.kinds.device_json = true;
  o.hash_ids = true;
  CentralReceiver rx(std::move(o));
  rx.Receive(DeviceMessage(R"({"id":"x"})"));
  EXPECT_TRUE(rx.Arrivals().empty());  // not recorded unless asked for
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 100; ++i) rx.Receive(DeviceMessage(R"({"id":"dev-0000/b1/)" + std::to_string(i) + "\"}"));
  }
  EXPECT_EQ(rx.unique(), 101u);
  EXPECT_EQ(rx.duplicates(), 100u);
  EXPECT_EQ(rx.bad(), 0u);
  EXPECT_TRUE(rx.Has("dev-0000/b1/42"));
  EXPECT_FALSE(rx.Has("dev-0000/b1/100"));
}

TEST(CentralReceiver, ConnectFailureIsUnavailable) {
  CentralReceiverOptions o;
  o.connect_timeout = std::chrono::seconds(2);
  CentralReceiver rx(std::move(o));
  // Port 1 on loopback: nothing listens, the connection is refused at once.
  auto s = rx.Connect("tcp://127.0.0.1:1");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(s.error().message.find("tcp://127.0.0.1:1"), std::string::npos) << s.error().message;
  EXPECT_FALSE(rx.connected());
}

}  // namespace
}  // namespace ferry
