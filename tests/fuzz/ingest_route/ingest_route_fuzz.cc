// ingest_route_fuzz.cc: libFuzzer target for IngestRouter::Route (hub/ingest), the first code that reads what a
// device publishes: topic, payload, MQTT v5 user properties and content type. See ../README.md.
//
// One input is a sequence of messages routed through one router with a fixed config (three routes: a JSON
// route with dead letters and both device-id sources, a "+json" route with a templated stream, a raw route
// without dead letters). Each message is
//   flags u8 | topic_len u16 | content_type_len u8 | property_count u8 | payload_len u16 (lengths big-endian)
//   | topic | content_type | property_count x (name_len u8 | value_len u8 | name | value) | payload
// flags: bit 0 the MQTT DUP flag; bit 1 ForgetId after the message is stored (as ingest does when the append
// fails); bit 2 route the same message again at once; bit 3 SetAside instead of Route (a poison message);
// bits 4-7 minutes the clock moves before the message.
//
// Besides the sanitizers, every decision is checked: a stored event goes to a declared stream and carries the
// payload as sent; a dead letter goes to the dead-letter stream with its reason; every event the router makes
// survives the storage record codec; when the message's strings are the UTF-8 MQTT guarantees, so are all of
// the event's attributes and headers (they travel on as MQTT strings and CloudEvents JSON); and the
// redelivery window agrees with a plain model of it (an id is a duplicate for dedupe_window after it was
// stored, unless forgotten).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "../fuzz_bytes.h"
#include "ferry/ingest_router.h"
#include "ferry/record.h"

namespace {

using namespace ferry;
using fuzz::Fail;

constexpr const char* kConfig = R"(
[gateway]
id = "gw-fuzz"

[ingest]
max_payload = "1KiB"
max_json_depth = 16
dedupe_window = "10m"
dedupe_capacity = 4096

[[stream]]
name = "telemetry"
[[stream]]
name = "dead"
[[stream]]
name = "engine"
[[stream]]
name = "site-a"
[[stream]]
name = "site-b"

[[route]]
filter = "telemetry/{device}/{kind}"
stream = "telemetry"
subject = "{device}"
content_type = "application/json"
dead_letter = "dead"
id_json_field = "id"
id_user_property = "ce_id"

[[route]]
filter = "site/{site}/+/{device}/#"
stream = "site-{site}"
subject = "{device}/{{raw}}"
content_type = "application/vnd.acme.reading+json; charset=utf-8"
dead_letter = "dead"
id_json_field = "eventId"

[[route]]
filter = "raw/{kind}/#"
stream = "{kind}"
subject = "{topic}"
content_type = ""
id_user_property = "msg-id"
)";

constexpr TimeNs kT0{1'700'000'000'000'000'000};
constexpr int64_t kMinute = 60'000'000'000;
constexpr int64_t kWindow = 10 * kMinute;         // ingest.dedupe_window
constexpr size_t kMaxPayload = 1024;              // ingest.max_payload
constexpr size_t kMaxMessages = 1000;             // stays below dedupe_capacity, so nothing is evicted early
const char* const kStreams[] = {"telemetry", "dead", "engine", "site-a", "site-b"};

const Config& TheConfig() {
  static const Config config = [] {
    auto c = LoadConfigString(kConfig, "ingest_route_fuzz.toml");
    if (!c) Fail("fixed config does not load: %s", c.error().ToString().c_str());
    return *c;
  }();
  return config;
}

bool Declared(std::string_view stream) {
  for (const char* s : kStreams)
    if (stream == s) return true;
  return false;
}

std::string Header(const Event& e, std::string_view name) {
  for (const auto& [k, v] : e.headers)
    if (k == name) return v;
  return "<absent>";
}

// What MQTT delivers is UTF-8 (the broker or ferryd's listener refuses the rest); what the router makes of it
// is published again as MQTT strings and written into CloudEvents JSON, whose decoders refuse anything else.
bool MessageIsUtf8(const InboundMessage& m) {
  if (!fuzz::IsMqttUtf8(m.topic) || !fuzz::IsMqttUtf8(m.content_type)) return false;
  for (const auto& [k, v] : m.user_properties)
    if (!fuzz::IsMqttUtf8(k) || !fuzz::IsMqttUtf8(v)) return false;
  return true;
}

void CheckUtf8(const Event& e) {
  const std::pair<const char*, const std::string*> attrs[] = {
      {"id", &e.id}, {"source", &e.source}, {"type", &e.type}, {"subject", &e.subject},
      {"datacontenttype", &e.datacontenttype}};
  for (const auto& [name, value] : attrs)
    if (!fuzz::IsMqttUtf8(*value)) Fail("event %s is not UTF-8, from a UTF-8 message", name);
  for (const auto& [k, v] : e.headers) {
    if (!fuzz::IsMqttUtf8(k)) Fail("header name is not UTF-8, from a UTF-8 message");
    if (!fuzz::IsMqttUtf8(v)) Fail("header %s is not UTF-8, from a UTF-8 message", k.c_str());
  }
}

// The event as ingest would append it must come back from the record codec unchanged.
void CheckRecordRoundTrip(const Event& e, TimeNs now) {
  auto size = EncodedRecordSize(e);
  if (!size) Fail("router made an event the log cannot store: %s", size.error().ToString().c_str());
  std::string bytes;
  EncodeRecord(e, Seq{7}, now, &bytes);
  if (bytes.size() != *size) Fail("EncodedRecordSize %zu, EncodeRecord wrote %zu", *size, bytes.size());
  auto r = DecodeRecord(bytes, Seq{7});
  if (!r) Fail("record does not decode: %s", r.error().ToString().c_str());
  Event back = r->ToEvent();
  if (back.id != e.id || back.source != e.source || back.type != e.type || back.time != e.time ||
      back.subject != e.subject || back.datacontenttype != e.datacontenttype || back.headers != e.headers ||
      back.payload != e.payload || r->ingest_time != now) {
    Fail("event changed through the record codec");
  }
}

// What the redelivery window should answer: stream + id -> when it was stored.
class DedupeModel {
 public:
  bool Live(const std::string& key, TimeNs now) const {
    auto it = stored_.find(key);
    return it != stored_.end() && now.ns - it->second <= kWindow;
  }
  void Store(const std::string& key, TimeNs now) { stored_[key] = now.ns; }
  void Forget(const std::string& key) { stored_.erase(key); }

 private:
  std::map<std::string, int64_t> stored_;
};

std::string Key(std::string_view stream, std::string_view id) {
  return std::string(stream) + '\x1f' + std::string(id);
}

void Check(const InboundMessage& m, const RouteDecision& d, TimeNs now, DedupeModel& model) {
  switch (d.outcome) {
    case RouteOutcome::kStore: {
      if (d.reason != RejectReason::kNone) Fail("stored with a reject reason");
      if (!Declared(d.stream)) Fail("stored to undeclared stream \"%s\"", d.stream.c_str());
      if (d.event.payload != m.payload) Fail("stored payload differs from the message's");
      if (m.payload.size() > kMaxPayload) Fail("stored a payload over ingest.max_payload");
      if (d.event.source != m.topic) Fail("source is not the topic");
      if (d.event.id.size() > kMaxEventIdBytes) Fail("stored an id of %zu bytes", d.event.id.size());
      if (!d.event.id.empty()) {
        const std::string key = Key(d.stream, d.event.id);
        if (model.Live(key, now)) Fail("stored id \"%s\" again within the redelivery window", d.event.id.c_str());
        model.Store(key, now);
      }
      CheckRecordRoundTrip(d.event, now);
      break;
    }
    case RouteOutcome::kDuplicate:
      if (d.event.id.empty()) Fail("duplicate without an id");
      if (!model.Live(Key(d.stream, d.event.id), now)) {
        Fail("id \"%s\" on \"%s\" dropped as a duplicate, but it was not stored within the window",
             d.event.id.c_str(), d.stream.c_str());
      }
      break;
    case RouteOutcome::kDeadLetter: {
      if (d.stream != "dead") Fail("dead letter to \"%s\"", d.stream.c_str());
      if (d.reason == RejectReason::kNone) Fail("dead letter without a reason");
      if (Header(d.event, kDlqReasonHeader) != RejectReasonName(d.reason)) Fail("dead letter reason header");
      const size_t keep = d.reason == RejectReason::kOversize && m.payload.size() > kDlqPayloadPrefix
                              ? kDlqPayloadPrefix
                              : m.payload.size();
      if (d.event.payload != m.payload.substr(0, keep)) Fail("dead-letter payload is not the message's");
      CheckRecordRoundTrip(d.event, now);
      break;
    }
    case RouteOutcome::kDrop:
      if (d.reason == RejectReason::kNone) Fail("dropped without a reason");
      break;
  }
  if (MessageIsUtf8(m)) CheckUtf8(d.event);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> kSubscriptions = {"telemetry/+/+", "site/+/+/+/#", "raw/+/#"};
  auto router = IngestRouter::Create(TheConfig());
  if (!router) Fail("router: %s", router.error().ToString().c_str());
  if (router->Subscriptions() != kSubscriptions) Fail("subscriptions changed");

  DedupeModel model;
  TimeNs now = kT0;
  fuzz::FuzzBytes in(data, size);
  for (size_t n = 0; n < kMaxMessages && !in.empty(); ++n) {
    const uint8_t flags = in.U8();
    const uint16_t topic_len = in.U16();
    const uint8_t ct_len = in.U8();
    const uint8_t props = in.U8();
    const uint16_t payload_len = in.U16();
    InboundMessage m;
    m.redelivered = (flags & 0x01) != 0;
    m.topic = in.Take(topic_len);
    m.content_type = in.Take(ct_len);
    for (uint8_t i = 0; i < props && !in.empty(); ++i) {
      const uint8_t klen = in.U8();
      const uint8_t vlen = in.U8();
      std::string_view k = in.Take(klen);
      std::string_view v = in.Take(vlen);
      m.user_properties.emplace_back(std::string(k), std::string(v));
    }
    m.payload = in.Take(payload_len);
    now.ns += (flags >> 4) * kMinute;

    if (flags & 0x08) {
      RouteDecision d = router->SetAside(m, RejectReason::kPoison, "in hand when ferryd stopped");
      if (d.outcome != RouteOutcome::kDeadLetter && d.outcome != RouteOutcome::kDrop) Fail("set aside, not rejected");
      Check(m, d, now, model);
      continue;
    }
    RouteDecision d = router->Route(m, now);
    Check(m, d, now, model);
    if ((flags & 0x04) != 0) {
      RouteDecision again = router->Route(m, now);
      Check(m, again, now, model);
      if (d.outcome == RouteOutcome::kStore && !d.event.id.empty() && again.outcome != RouteOutcome::kDuplicate)
        Fail("an id stored a moment ago was not a duplicate");
    }
    if ((flags & 0x02) != 0 && d.outcome == RouteOutcome::kStore && !d.event.id.empty()) {
      router->ForgetId(d.stream, d.event.id);
      model.Forget(Key(d.stream, d.event.id));
    }
  }
  return 0;
}
