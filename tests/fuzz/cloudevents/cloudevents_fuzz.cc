// cloudevents_fuzz.cc: libFuzzer target for the CloudEvents decoders in hub/wire (ferry/wire.h): structured
// JSON (EventFromJson, EventsFromJsonBatch), the MQTT v5 binding (FromMqttProperties) and the attribute
// syntax under both (ParseRfc3339, IsJsonContentType, CeExtensionName). See ../README.md.
//
// Input: one mode byte (low two bits), then
//   0  one structured event (JSON)                    1  a JSON batch (array of events)
//   2  MQTT: content_type_len u8 | content_type | property_count u8
//      | property_count x (name_len u8 | value_len u8 | name | value) | payload
//      (strings that are not UTF-8 are skipped: no broker delivers them)
//   3  an attribute value for the helpers
//
// What decodes must encode to something that decodes again, in both bindings, and encoding is then a fixed
// point: a decoder that accepts what its own encoder cannot reproduce would lose or change events when the
// centre re-forwards them.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../fuzz_bytes.h"
#include "ferry/wire.h"

namespace {

using namespace ferry;
using fuzz::Fail;

// JSON -> event -> JSON -> event: the second JSON must equal the first, and the event must also cross the
// MQTT binding unchanged.
void CheckCanonical(const WireEvent& e1, const char* what) {
  const std::string j1 = EventToJson(e1);
  auto e2 = EventFromJson(j1);
  if (!e2) Fail("%s: own JSON does not decode: %s\n%s", what, e2.error().ToString().c_str(), j1.c_str());
  const std::string j2 = EventToJson(*e2);
  if (j2 != j1) Fail("%s: JSON encoding is not a fixed point:\n%s\n%s", what, j1.c_str(), j2.c_str());
  MqttEventProperties p = ToMqttProperties(*e2);
  auto e3 = FromMqttProperties(p, e2->payload);
  if (!e3) Fail("%s: own MQTT properties do not decode: %s", what, e3.error().ToString().c_str());
  if (!(*e3 == *e2)) Fail("%s: event changed through the MQTT binding", what);
}

void OneEvent(std::string_view json) {
  auto e = EventFromJson(json);
  if (e) CheckCanonical(*e, "event");
}

void JsonBatch(std::string_view json) {
  auto events = EventsFromJsonBatch(json);
  if (!events) return;
  const std::string j1 = EventsToJsonBatch(*events);
  auto again = EventsFromJsonBatch(j1);
  if (!again) Fail("batch: own JSON does not decode: %s", again.error().ToString().c_str());
  if (again->size() != events->size()) Fail("batch: %zu events became %zu", events->size(), again->size());
  if (EventsToJsonBatch(*again) != j1) Fail("batch: JSON encoding is not a fixed point");
  for (const auto& e : *events) CheckCanonical(e, "batch event");
}

void Mqtt(fuzz::FuzzBytes& in) {
  MqttEventProperties props;
  props.content_type = std::string(in.Take(in.U8()));
  const uint8_t n = in.U8();
  for (uint8_t i = 0; i < n && !in.empty(); ++i) {
    const uint8_t klen = in.U8();
    const uint8_t vlen = in.U8();
    std::string k(in.Take(klen));
    props.user_properties.emplace_back(std::move(k), std::string(in.Take(vlen)));
  }
  // The centre gets these strings from its broker, which refuses what is not UTF-8 (MQTT 1.5.4).
  if (!fuzz::IsMqttUtf8(props.content_type)) return;
  for (const auto& [k, v] : props.user_properties)
    if (!fuzz::IsMqttUtf8(k) || !fuzz::IsMqttUtf8(v)) return;
  auto e1 = FromMqttProperties(props, std::string(in.Rest()));
  if (!e1) return;
  MqttEventProperties p1 = ToMqttProperties(*e1);
  auto e2 = FromMqttProperties(p1, e1->payload);
  if (!e2) Fail("mqtt: own properties do not decode: %s", e2.error().ToString().c_str());
  MqttEventProperties p2 = ToMqttProperties(*e2);
  if (p2.content_type != p1.content_type || p2.user_properties != p1.user_properties)
    Fail("mqtt: property encoding is not a fixed point");
  CheckCanonical(*e2, "mqtt event");
}

void Attributes(std::string_view s) {
  auto t = ParseRfc3339(s);
  if (t) {
    const std::string text = FormatRfc3339(*t);
    auto back = ParseRfc3339(text);
    if (!back) Fail("time \"%s\" formats as \"%s\", which does not parse", std::string(s).c_str(), text.c_str());
    if (back->ns != t->ns) Fail("time \"%s\" does not come back from \"%s\"", std::string(s).c_str(), text.c_str());
  }
  (void)IsJsonContentType(s);
  const std::string name = CeExtensionName(s);
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) Fail("extension name with '%c'", c);
  if (!name.empty() && CeExtensionName(name) != name) Fail("CeExtensionName is not idempotent");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::FuzzBytes in(data, size);
  switch (in.U8() & 3) {
    case 0: OneEvent(in.Rest()); break;
    case 1: JsonBatch(in.Rest()); break;
    case 2: Mqtt(in); break;
    case 3: Attributes(in.Rest()); break;
  }
  return 0;
}
