// encode_server.cc: what ferryd's ingest endpoint sends: CONNACK, PUBACK, SUBACK, UNSUBACK, PINGRESP, DISCONNECT.
#include <string>

#include "byte_writer.h"
#include "ferry/mqtt/packet.h"
#include "properties.h"

namespace ferry::mqtt {

using namespace internal;

namespace {
constexpr uint8_t Type(PacketType t) { return static_cast<uint8_t>(t); }
}  // namespace

void EncodeConnack(std::string& out, Version version, bool session_present, uint8_t code,
                   const ConnackProperties& props) {
  const uint8_t ack_flags = (session_present && code == 0) ? 1 : 0;
  if (version == Version::kV311) {
    PutFixedHeader(out, Type(PacketType::kConnack), 0, 2);
    PutU8(out, ack_flags);
    PutU8(out, code);
    return;
  }
  // Only what differs from the property's absence (5.0 3.2.2.3): a default CONNACK stays short.
  std::string p;
  if (props.session_expiry) PutU32Property(p, kSessionExpiryInterval, *props.session_expiry);
  if (props.receive_maximum != 65535 && props.receive_maximum != 0) PutU16Property(p, kReceiveMaximum, props.receive_maximum);
  if (props.maximum_qos < 2) PutByteProperty(p, kMaximumQos, props.maximum_qos);
  if (!props.retain_available) PutByteProperty(p, kRetainAvailable, 0);
  if (props.maximum_packet_size != 0) PutU32Property(p, kMaximumPacketSize, props.maximum_packet_size);
  if (props.assigned_client_identifier) {
    PutStringProperty(p, kAssignedClientIdentifier, ClampUtf8(*props.assigned_client_identifier));
  }
  if (props.topic_alias_maximum != 0) PutU16Property(p, kTopicAliasMaximum, props.topic_alias_maximum);
  if (props.reason_string) PutStringProperty(p, kReasonString, ClampUtf8(*props.reason_string));
  if (!props.wildcard_subscription_available) PutByteProperty(p, kWildcardSubscriptionAvailable, 0);
  if (!props.subscription_identifiers_available) PutByteProperty(p, kSubscriptionIdentifierAvailable, 0);
  if (!props.shared_subscription_available) PutByteProperty(p, kSharedSubscriptionAvailable, 0);
  if (props.server_keep_alive) PutU16Property(p, kServerKeepAlive, *props.server_keep_alive);

  const auto plen = static_cast<uint32_t>(p.size());  // < 2 * 65535 + 64: always fits
  PutFixedHeader(out, Type(PacketType::kConnack), 0, static_cast<uint32_t>(2 + VbiSize(plen) + plen));
  PutU8(out, ack_flags);
  PutU8(out, code);
  PutVbi(out, plen);
  out += p;
}

void EncodePuback(std::string& out, Version version, uint16_t packet_id, ReasonCode rc) {
  const bool with_reason = version == Version::kV5 && rc != ReasonCode::kSuccess;
  PutFixedHeader(out, Type(PacketType::kPuback), 0, with_reason ? 3 : 2);
  PutU16(out, packet_id);
  if (with_reason) PutU8(out, static_cast<uint8_t>(rc));  // Property Length omitted: 3.4.2.2.1
}

namespace {

// SUBACK and UNSUBACK: packet id, (5.0) an empty property list, one code per filter.
void EncodeAckList(std::string& out, PacketType type, Version version, uint16_t packet_id, size_t n, uint8_t code) {
  const bool v5 = version == Version::kV5;
  // n comes from a decoded packet, so it is far below this; the clamp only keeps a careless caller's
  // packet encodable.
  if (n > kMaxRemainingLength - 3) n = kMaxRemainingLength - 3;
  const auto remaining = static_cast<uint32_t>(2 + (v5 ? 1 : 0) + n);
  PutFixedHeader(out, Type(type), 0, remaining);
  PutU16(out, packet_id);
  if (v5) PutU8(out, 0);
  out.append(n, static_cast<char>(code));
}

}  // namespace

void EncodeSuback(std::string& out, Version version, uint16_t packet_id, size_t n_filters, ReasonCode rc) {
  auto code = static_cast<uint8_t>(rc);
  if (version == Version::kV311 && code > 0x02) code = 0x80;  // 3.1.1 3.9.3: 0x00-0x02 or 0x80 Failure
  EncodeAckList(out, PacketType::kSuback, version, packet_id, n_filters, code);
}

void EncodeUnsuback(std::string& out, Version version, uint16_t packet_id, size_t n_filters, ReasonCode rc) {
  if (version == Version::kV311) {  // 3.1.1 3.11: packet id only
    PutFixedHeader(out, Type(PacketType::kUnsuback), 0, 2);
    PutU16(out, packet_id);
    return;
  }
  EncodeAckList(out, PacketType::kUnsuback, version, packet_id, n_filters, static_cast<uint8_t>(rc));
}

void EncodePingresp(std::string& out) { PutFixedHeader(out, Type(PacketType::kPingresp), 0, 0); }

void EncodeDisconnect(std::string& out, Version version, ReasonCode rc, std::string_view reason_string) {
  if (version == Version::kV311) return;  // a 3.1.1 server closes the connection instead
  if (rc == ReasonCode::kSuccess && reason_string.empty()) {
    PutFixedHeader(out, Type(PacketType::kDisconnect), 0, 0);
    return;
  }
  if (reason_string.empty()) {  // 3.14.2.2.1: no Property Length with Remaining Length 1
    PutFixedHeader(out, Type(PacketType::kDisconnect), 0, 1);
    PutU8(out, static_cast<uint8_t>(rc));
    return;
  }
  reason_string = ClampUtf8(reason_string);
  const auto plen = static_cast<uint32_t>(3 + reason_string.size());
  PutFixedHeader(out, Type(PacketType::kDisconnect), 0, static_cast<uint32_t>(1 + VbiSize(plen) + plen));
  PutU8(out, static_cast<uint8_t>(rc));
  PutVbi(out, plen);
  PutStringProperty(out, kReasonString, reason_string);
}

}  // namespace ferry::mqtt
