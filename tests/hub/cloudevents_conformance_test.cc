// Events as the uplinks send them, checked against the CloudEvents 1.0 attribute rules
// (tests/support/cloudevents_conformance.h), from stored events a hostile world could have produced: a topic
// with spaces and '%', headers named like reserved attributes, control characters in values.
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "../support/cloudevents_conformance.h"
#include "ferry/uplink_kafka.h"
#include "ferry/wire.h"

namespace ferry {
namespace {

using Attrs = std::vector<std::pair<std::string, std::string>>;

// The attributes of a structured-mode object (every member but data / data_base64), as strings.
Attrs JsonAttributes(const std::string& json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  Attrs out;
  if (!doc.IsObject()) return {{"<not an object>", json}};
  for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
    std::string name(it->name.GetString(), it->name.GetStringLength());
    if (name == "data" || name == "data_base64") continue;
    out.emplace_back(name, it->value.IsString() ? std::string(it->value.GetString(), it->value.GetStringLength())
                                                : std::string("<not a string>\x01"));
  }
  return out;
}

Attrs MqttAttributes(const WireEvent& w) {
  MqttEventProperties p = ToMqttProperties(w);
  Attrs out = p.user_properties;
  if (!p.content_type.empty()) out.emplace_back("datacontenttype", p.content_type);
  return out;
}

// The Kafka binding (binary mode): ce_<name> headers and content-type, as the Kafka transport writes them.
Attrs KafkaAttributes(const WireEvent& w) {
  MqttEventProperties p = ToMqttProperties(w);
  OutboundUnit u;
  u.attributes = p.user_properties;
  u.content_type = p.content_type;
  Attrs out;
  for (auto& [k, v] : KafkaRecordHeaders(u)) {
    if (k.rfind("ce_", 0) == 0) {
      out.emplace_back(k.substr(3), v);
    } else if (k == "content-type") {
      out.emplace_back("datacontenttype", v);
    } else {
      out.emplace_back("<header " + k + ">", v);  // the binding has no other headers: fails the name rule
    }
  }
  return out;
}

std::vector<Event> HostileStoredEvents() {
  std::vector<Event> events;
  Event plain;
  plain.payload = "{}";
  events.push_back(plain);  // no id, no type, no source: everything derived

  Event e;
  e.id = std::string("dev\x01-7/\xff");  // bounded at ingest today, but the log may hold older records
  e.source = "telemetry/dev 1/50%/\x7f";
  e.type = "com.example.t\x02";
  e.subject = std::string("dev\xc2\x85", 5);  // U+0085, a C1 control
  e.time = TimeNs{1'700'000'000'123'456'789};
  e.datacontenttype = "application/json";
  e.headers = {{"DataSchema", "not a uri"}, {"Time", "yesterday"}, {"ID", "spoof"},     {"Source", "x"},
               {"Ferry-Topic", "spoof"},   {"site", "a\x01" "b"},  {"", "nameless"},   {"\xc3\x9c", "umlaut"},
               {"ferryseq", "7"},          {"Data", "d"},          {"spec-version", "0.3"}, {"note", "\xef\xbf\xbe"}};
  e.payload = R"({"t":1})";
  events.push_back(e);

  Event bin = e;
  bin.datacontenttype = "application/octet-stream";
  bin.payload = std::string("\x00\x01", 2);
  events.push_back(bin);
  return events;
}

TEST(CloudEventsConformance, StructuredMqttAndKafkaBindingsFollowTheAttributeRules) {
  Seq seq{41};
  for (const Event& stored : HostileStoredEvents()) {
    WireEvent w = CloudEventOf("gw-1", "telemetry", seq, TimeNs{1'700'000'001'000'000'000}, stored);
    const std::string json = EventToJson(w);
    for (const auto& [binding, attrs] : {std::pair{"structured JSON", JsonAttributes(json)},
                                         std::pair{"MQTT user properties", MqttAttributes(w)},
                                         std::pair{"Kafka ce_ headers", KafkaAttributes(w)}}) {
      auto bad = test::CloudEventViolations(attrs);
      std::string all;
      for (const auto& b : bad) all += "\n  " + b;
      EXPECT_TRUE(bad.empty()) << binding << " of seq " << seq.value << ":" << all << "\n" << json;
    }
    // A batch of them passes the centre's decoder; what it decodes is what was sent.
    auto back = EventFromJson(json);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->id, w.id);
    EXPECT_EQ(back->source, "ferry://gw-1/telemetry");
    seq = Seq{seq.value + 1};
  }
}

// The checker itself: each rule it claims, it catches (what the old mapping sent fails it).
TEST(CloudEventsConformance, CheckerCatchesEachRule) {
  const Attrs good = {{"specversion", "1.0"}, {"id", "a"}, {"source", "ferry://g/s"}, {"type", "t"}};
  EXPECT_TRUE(test::CloudEventViolations(good).empty());
  auto with = [&](std::string k, std::string v) {
    Attrs a = good;
    for (auto& [n, x] : a)
      if (n == k) {
        x = v;
        return a;
      }
    a.emplace_back(std::move(k), std::move(v));
    return a;
  };
  const std::vector<Attrs> bad = {
      with("source", "telemetry/dev-1/env"),  // the topic, as ferryd sent it before: relative
      with("source", "ferry://g/a b"),
      with("specversion", "0.3"),
      with("id", ""),
      with("dataschema", "not a uri"),
      with("time", "yesterday"),
      with("subject", ""),
      with("datacontenttype", "json"),
      with("site", "a\x01b"),
      with("Site", "x"),
      with("dev-id", "x"),
      {{"specversion", "1.0"}, {"id", "a"}, {"source", "ferry://g/s"}},
      {{"specversion", "1.0"}, {"id", "a"}, {"id", "b"}, {"source", "ferry://g/s"}, {"type", "t"}},
  };
  for (const Attrs& a : bad) {
    std::string shown;
    for (const auto& [k, v] : a) shown += k + "=" + v + " ";
    EXPECT_FALSE(test::CloudEventViolations(a).empty()) << shown;
  }
}

TEST(CloudEventsConformance, SourceIsAbsoluteAndNamesTheStream) {
  EXPECT_EQ(CloudEventSource("gw-1", "telemetry"), "ferry://gw-1/telemetry");
  EXPECT_EQ(CloudEventSource("gw 1", "a/b%"), "ferry://gw%201/a%2Fb%25");
  EXPECT_TRUE(test::IsAbsoluteUri(CloudEventSource("g\x01", "\xff")));
  // The topic travels beside it, a device header cannot replace it, and reserved names never pass.
  Event e;
  e.source = "telemetry/dev-1/env";
  e.headers = {{"Ferry-Topic", "spoof"}, {"DataSchema", "x"}, {"site", "north"}};
  WireEvent w = CloudEventOf("gw-1", "telemetry", Seq{1}, TimeNs{1}, e);
  EXPECT_EQ(w.id, "gw-1/telemetry/1");
  EXPECT_EQ(w.type, "ferry.event");
  auto props = ToMqttProperties(w).user_properties;
  auto count = [&](const std::string& name) {
    int n = 0;
    for (const auto& [k, v] : props) n += k == name;
    return n;
  };
  EXPECT_EQ(count("ferrytopic"), 1);
  EXPECT_EQ(count("dataschema"), 0);
  EXPECT_EQ(count("site"), 1);
  for (const auto& [k, v] : props) {
    if (k == "ferrytopic") {
      EXPECT_EQ(v, "telemetry/dev-1/env");
    }
  }
}

// Values are made legal deterministically: the id the centre de-duplicates on is the same on every resend.
TEST(CloudEventsConformance, IllegalCharactersArePercentEncodedTheSameWayEachTime) {
  Event e;
  e.id = std::string("dev\x01-7");
  e.headers = {{"site", "50%\x7f"}};
  WireEvent a = CloudEventOf("gw", "s", Seq{1}, TimeNs{1}, e);
  WireEvent b = CloudEventOf("gw", "s", Seq{1}, TimeNs{1}, e);
  EXPECT_EQ(a.id, "dev%01-7");
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.headers.back().second, "50%25%7F");
  Event legal;
  legal.id = "dev-1/50%";  // already legal: unchanged, '%' included
  EXPECT_EQ(CloudEventOf("gw", "s", Seq{1}, TimeNs{1}, legal).id, "dev-1/50%");
}

}  // namespace
}  // namespace ferry
