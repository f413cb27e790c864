// decode_publish.cc: PUBLISH (3.3) and its acknowledgements PUBACK/PUBREC/PUBREL/PUBCOMP (3.4-3.7).
#include <string>

#include "byte_reader.h"
#include "ferry/mqtt/packet.h"
#include "properties.h"

namespace ferry::mqtt {

using internal::ByteReader;
using internal::Fail;
using internal::Malformed;
using internal::PropertyContext;
using internal::PropertyValues;

Decoded<Publish> DecodePublish(const Frame& frame, Version version) {
  if (frame.type != PacketType::kPublish) return Fail(ReasonCode::kProtocolError, "expected PUBLISH");
  Publish p;
  p.dup = (frame.flags & 0x08) != 0;
  p.qos = static_cast<uint8_t>((frame.flags >> 1) & 0x03);
  p.retain = (frame.flags & 0x01) != 0;
  if (p.qos == 3) return Malformed("PUBLISH: QoS 3 (3.3.1-4)");
  if (p.dup && p.qos == 0) return Malformed("PUBLISH: DUP set on QoS 0 (3.3.1-2)");

  ByteReader r(frame.body);
  if (!r.ReadPrefixed(&p.topic)) return Malformed("PUBLISH Topic Name: truncated");
  if (!internal::IsWellFormedUtf8(p.topic, false)) return Malformed("PUBLISH Topic Name: invalid UTF-8");
  if (internal::HasWildcard(p.topic)) return Fail(ReasonCode::kTopicNameInvalid, "PUBLISH Topic Name: contains a wildcard");
  if (p.qos > 0) {
    if (!r.ReadU16(&p.packet_id)) return Malformed("PUBLISH Packet Identifier: truncated");
    if (p.packet_id == 0) return Fail(ReasonCode::kProtocolError, "PUBLISH: Packet Identifier 0 with QoS > 0 (2.2.1-3)");
  }

  if (version == Version::kV5) {
    PropertyValues v;
    if (auto s = internal::DecodeProperties(r, PropertyContext::kPublish, "PUBLISH", &v, &p.user_properties); !s) {
      return tl::unexpected<DecodeError>(std::move(s.error()));
    }
    using namespace internal;  // property identifiers
    if (v.Has(kSubscriptionIdentifier)) {
      return Fail(ReasonCode::kProtocolError, "PUBLISH from a client with a Subscription Identifier (3.3.4-6)");
    }
    if (v.Has(kPayloadFormatIndicator)) p.payload_format_indicator = static_cast<uint8_t>(v.number[kPayloadFormatIndicator]);
    if (v.Has(kMessageExpiryInterval)) p.message_expiry = v.number[kMessageExpiryInterval];
    if (v.Has(kTopicAlias)) p.topic_alias = static_cast<uint16_t>(v.number[kTopicAlias]);
    p.content_type = v.bytes[kContentType];
    p.response_topic = v.bytes[kResponseTopic];
    p.correlation_data = v.bytes[kCorrelationData];
    if (v.Has(kResponseTopic) && (p.response_topic.empty() || HasWildcard(p.response_topic))) {
      return Fail(ReasonCode::kProtocolError, "PUBLISH Response Topic: empty or with a wildcard (3.3.2-14)");
    }
    if (p.topic.empty() && !p.topic_alias) {
      return Fail(ReasonCode::kProtocolError, "PUBLISH: empty Topic Name without a Topic Alias (3.3.2-8)");
    }
  } else if (p.topic.empty()) {
    return Fail(ReasonCode::kTopicNameInvalid, "PUBLISH: empty Topic Name (4.7.3-1)");
  }

  p.payload = r.Rest();
  if (p.payload_format_indicator == 1 && !internal::IsWellFormedUtf8(p.payload, true)) {
    return Fail(ReasonCode::kPayloadFormatInvalid, "PUBLISH payload: not UTF-8 as its Payload Format Indicator says");
  }
  return p;
}

namespace {

// 5.0 3.4.2.1 (PUBACK) and 3.5.2.1 (PUBREC) share a list; 3.6.2.1 (PUBREL) and 3.7.2.1 (PUBCOMP) share another.
bool AckReasonValid(PacketType type, uint8_t rc) {
  if (type == PacketType::kPubrel || type == PacketType::kPubcomp) return rc == 0x00 || rc == 0x92;
  switch (rc) {
    case 0x00: case 0x10: case 0x80: case 0x83: case 0x87: case 0x90: case 0x91: case 0x97: case 0x99: return true;
    default: return false;
  }
}

}  // namespace

Decoded<PubAck> DecodePuback(const Frame& frame, Version version) {
  const PacketType t = frame.type;
  if (t != PacketType::kPuback && t != PacketType::kPubrec && t != PacketType::kPubrel && t != PacketType::kPubcomp) {
    return Fail(ReasonCode::kProtocolError, "expected PUBACK, PUBREC, PUBREL or PUBCOMP");
  }
  const std::string what = internal::ToUpper(PacketTypeName(t));
  if (!FixedHeaderFlagsValid(static_cast<uint8_t>(t), frame.flags)) return Malformed(what + ": wrong fixed-header flags");
  PubAck a;
  a.type = t;
  ByteReader r(frame.body);
  if (!r.ReadU16(&a.packet_id)) return Malformed(what + " Packet Identifier: truncated");
  if (a.packet_id == 0) return Fail(ReasonCode::kProtocolError, what + ": Packet Identifier 0");
  if (version == Version::kV5 && !r.empty()) {  // 5.0 3.4.2.1: no reason byte means Success
    uint8_t rc = 0;
    r.ReadU8(&rc);
    if (!AckReasonValid(t, rc)) return Fail(ReasonCode::kProtocolError, what + ": reason code " + internal::Hex(rc));
    a.reason = static_cast<ReasonCode>(rc);
    if (!r.empty()) {  // 3.4.2.2.1: no Property Length means none
      PropertyValues v;
      if (auto s = internal::DecodeProperties(r, PropertyContext::kPubackLike, what.c_str(), &v, &a.user_properties); !s) {
        return tl::unexpected<DecodeError>(std::move(s.error()));
      }
      a.reason_string = v.bytes[internal::kReasonString];
    }
  }
  if (!r.empty()) return Malformed(what + ": " + std::to_string(r.remaining()) + " unexpected trailing bytes");
  return a;
}

}  // namespace ferry::mqtt
