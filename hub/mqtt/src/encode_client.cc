// encode_client.cc: what a device sends, so tests and benchmarks can drive ferryd with a tiny client.
// Each encoder builds the body first, then writes the fixed header in front of it: lengths are checked once,
// and `out` is left untouched when something does not fit.
#include <string>

#include "byte_writer.h"
#include "ferry/mqtt/packet.h"
#include "properties.h"

namespace ferry::mqtt {

using namespace internal;

namespace {

constexpr size_t kMaxString = 65535;

bool Fits(std::string_view s) { return s.size() <= kMaxString; }
bool Fits(const UserProperties& user) {
  for (const auto& [k, v] : user) {
    if (!Fits(k) || !Fits(v)) return false;
  }
  return true;
}

// Property Length + list.
bool PutProperties(std::string& body, const std::string& props) {
  if (props.size() > kMaxRemainingLength) return false;
  PutVbi(body, static_cast<uint32_t>(props.size()));
  body += props;
  return true;
}

bool Finish(std::string& out, PacketType type, uint8_t flags, const std::string& body) {
  if (body.size() > kMaxRemainingLength) return false;
  PutFixedHeader(out, static_cast<uint8_t>(type), flags, static_cast<uint32_t>(body.size()));
  out += body;
  return true;
}

}  // namespace

bool EncodeConnect(std::string& out, const Connect& c) {
  const bool v5 = c.version == Version::kV5;
  if (!Fits(c.client_id) || !Fits(c.will_topic) || !Fits(c.will_payload) || !Fits(c.auth_method) ||
      !Fits(c.auth_data) || !Fits(c.user_properties) || (c.username && !Fits(*c.username)) ||
      (c.password && !Fits(*c.password))) {
    return false;
  }
  std::string body;
  PutPrefixed(body, "MQTT");
  PutU8(body, static_cast<uint8_t>(c.version));
  uint8_t flags = 0;
  if (c.clean_start) flags |= 0x02;
  if (c.will_flag) flags |= static_cast<uint8_t>(0x04 | ((c.will_qos & 0x03) << 3) | (c.will_retain ? 0x20 : 0));
  if (c.password) flags |= 0x40;
  if (c.username) flags |= 0x80;
  PutU8(body, flags);
  PutU16(body, c.keep_alive);
  if (v5) {
    std::string p;
    if (c.session_expiry != 0) PutU32Property(p, kSessionExpiryInterval, c.session_expiry);
    if (c.receive_maximum != 65535) PutU16Property(p, kReceiveMaximum, c.receive_maximum);
    if (c.maximum_packet_size != 0) PutU32Property(p, kMaximumPacketSize, c.maximum_packet_size);
    if (c.topic_alias_maximum != 0) PutU16Property(p, kTopicAliasMaximum, c.topic_alias_maximum);
    if (c.request_response_information) PutByteProperty(p, kRequestResponseInformation, 1);
    if (!c.request_problem_information) PutByteProperty(p, kRequestProblemInformation, 0);
    // An empty method is still written when there is data: data without a method is a protocol error.
    if (!c.auth_method.empty() || !c.auth_data.empty()) PutStringProperty(p, kAuthenticationMethod, c.auth_method);
    if (!c.auth_data.empty()) PutStringProperty(p, kAuthenticationData, c.auth_data);
    PutUserProperties(p, c.user_properties);
    if (!PutProperties(body, p)) return false;
  }
  PutPrefixed(body, c.client_id);
  if (c.will_flag) {
    if (v5) {
      std::string wp;
      if (c.will_delay_interval != 0) PutU32Property(wp, kWillDelayInterval, c.will_delay_interval);
      PutProperties(body, wp);
    }
    PutPrefixed(body, c.will_topic);
    PutPrefixed(body, c.will_payload);
  }
  if (c.username) PutPrefixed(body, *c.username);
  if (c.password) PutPrefixed(body, *c.password);
  return Finish(out, PacketType::kConnect, 0, body);
}

bool EncodePublish(std::string& out, Version version, const Publish& p) {
  if (!Fits(p.topic) || !Fits(p.content_type) || !Fits(p.response_topic) || !Fits(p.correlation_data) ||
      !Fits(p.user_properties)) {
    return false;
  }
  std::string body;
  PutPrefixed(body, p.topic);
  if (p.qos > 0) PutU16(body, p.packet_id);
  if (version == Version::kV5) {
    std::string props;
    if (p.payload_format_indicator) PutByteProperty(props, kPayloadFormatIndicator, *p.payload_format_indicator);
    if (p.message_expiry) PutU32Property(props, kMessageExpiryInterval, *p.message_expiry);
    if (p.topic_alias) PutU16Property(props, kTopicAlias, *p.topic_alias);
    if (!p.content_type.empty()) PutStringProperty(props, kContentType, p.content_type);
    if (!p.response_topic.empty()) PutStringProperty(props, kResponseTopic, p.response_topic);
    if (!p.correlation_data.empty()) PutStringProperty(props, kCorrelationData, p.correlation_data);
    PutUserProperties(props, p.user_properties);
    if (!PutProperties(body, props)) return false;
  }
  if (p.payload.size() > kMaxRemainingLength - body.size()) return false;
  body.append(p.payload.data(), p.payload.size());
  const auto flags = static_cast<uint8_t>((p.dup ? 0x08 : 0) | ((p.qos & 0x03) << 1) | (p.retain ? 0x01 : 0));
  return Finish(out, PacketType::kPublish, flags, body);
}

bool EncodeSubscribe(std::string& out, Version version, const Subscribe& s) {
  if (!Fits(s.user_properties)) return false;
  std::string body;
  PutU16(body, s.packet_id);
  if (version == Version::kV5) {
    std::string props;
    if (s.subscription_identifier) {
      PutU8(props, kSubscriptionIdentifier);
      PutVbi(props, *s.subscription_identifier > kMaxRemainingLength ? kMaxRemainingLength : *s.subscription_identifier);
    }
    PutUserProperties(props, s.user_properties);
    if (!PutProperties(body, props)) return false;
  }
  for (const SubscribeFilter& f : s.filters) {
    if (!Fits(f.filter)) return false;
    PutPrefixed(body, f.filter);
    uint8_t options = f.max_qos & 0x03;
    if (version == Version::kV5) {
      options |= static_cast<uint8_t>((f.no_local ? 0x04 : 0) | (f.retain_as_published ? 0x08 : 0) |
                                      ((f.retain_handling & 0x03) << 4));
    }
    PutU8(body, options);
  }
  return Finish(out, PacketType::kSubscribe, 0x02, body);
}

bool EncodeUnsubscribe(std::string& out, Version version, const Unsubscribe& u) {
  if (!Fits(u.user_properties)) return false;
  std::string body;
  PutU16(body, u.packet_id);
  if (version == Version::kV5) {
    std::string props;
    PutUserProperties(props, u.user_properties);
    if (!PutProperties(body, props)) return false;
  }
  for (std::string_view f : u.filters) {
    if (!Fits(f)) return false;
    PutPrefixed(body, f);
  }
  return Finish(out, PacketType::kUnsubscribe, 0x02, body);
}

void EncodePingreq(std::string& out) { PutFixedHeader(out, static_cast<uint8_t>(PacketType::kPingreq), 0, 0); }

void EncodeClientDisconnect(std::string& out, Version version, ReasonCode rc, std::optional<uint32_t> session_expiry) {
  if (version == Version::kV311) {  // 3.1.1 3.14: the client's DISCONNECT is always E0 00
    PutFixedHeader(out, static_cast<uint8_t>(PacketType::kDisconnect), 0, 0);
    return;
  }
  if (!session_expiry) {
    EncodeDisconnect(out, version, rc);
    return;
  }
  PutFixedHeader(out, static_cast<uint8_t>(PacketType::kDisconnect), 0, 7);  // rc, length 5, 0x11 + 4 bytes
  PutU8(out, static_cast<uint8_t>(rc));
  PutVbi(out, 5);
  PutU32Property(out, kSessionExpiryInterval, *session_expiry);
}

}  // namespace ferry::mqtt
