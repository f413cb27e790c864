// decode_control.cc: the packets ferryd answers without storing anything: SUBSCRIBE and UNSUBSCRIBE (refused),
// DISCONNECT, AUTH, PINGREQ; and the client-side CONNACK, SUBACK/UNSUBACK, PINGRESP.
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

namespace {

DecodeStatus CheckHeader(const Frame& frame, PacketType want, const char* what) {
  if (frame.type != want) return Fail(ReasonCode::kProtocolError, std::string("expected ") + what);
  if (!FixedHeaderFlagsValid(static_cast<uint8_t>(frame.type), frame.flags)) {
    return Malformed(std::string(what) + ": wrong fixed-header flags");
  }
  return {};
}

DecodeStatus ReadPacketId(ByteReader& r, const char* what, uint16_t* id) {
  if (!r.ReadU16(id)) return Malformed(std::string(what) + " Packet Identifier: truncated");
  if (*id == 0) return Fail(ReasonCode::kProtocolError, std::string(what) + ": Packet Identifier 0 (2.2.1-3)");
  return {};
}

bool DisconnectReasonValid(uint8_t rc) {  // 5.0 3.14.2.1
  switch (rc) {
    case 0x00: case 0x04: case 0x80: case 0x81: case 0x82: case 0x83: case 0x87: case 0x89: case 0x8B:
    case 0x8D: case 0x8E: case 0x8F: case 0x90: case 0x93: case 0x94: case 0x95: case 0x96: case 0x97:
    case 0x98: case 0x99: case 0x9A: case 0x9B: case 0x9C: case 0x9D: case 0x9E: case 0x9F: case 0xA0:
    case 0xA1: case 0xA2:
      return true;
    default:
      return false;
  }
}

bool IsSharedFilter(std::string_view f) { return f.substr(0, 7) == "$share/"; }

}  // namespace

Decoded<Subscribe> DecodeSubscribe(const Frame& frame, Version version) {
  if (auto s = CheckHeader(frame, PacketType::kSubscribe, "SUBSCRIBE"); !s) return tl::unexpected(std::move(s.error()));
  Subscribe sub;
  ByteReader r(frame.body);
  if (auto s = ReadPacketId(r, "SUBSCRIBE", &sub.packet_id); !s) return tl::unexpected(std::move(s.error()));
  const bool v5 = version == Version::kV5;
  if (v5) {
    PropertyValues v;
    if (auto s = internal::DecodeProperties(r, PropertyContext::kSubscribe, "SUBSCRIBE", &v, &sub.user_properties); !s) {
      return tl::unexpected(std::move(s.error()));
    }
    if (v.Has(internal::kSubscriptionIdentifier)) sub.subscription_identifier = v.number[internal::kSubscriptionIdentifier];
  }
  // Each filter takes at least 3 bytes, so the packet size bounds this loop.
  while (!r.empty()) {
    SubscribeFilter f;
    if (auto s = internal::ReadUtf8(r, "SUBSCRIBE Topic Filter", &f.filter); !s) return tl::unexpected(std::move(s.error()));
    if (f.filter.empty()) return Malformed("SUBSCRIBE Topic Filter: empty (4.7.3-1)");
    uint8_t options = 0;
    if (!r.ReadU8(&options)) return Malformed("SUBSCRIBE Subscription Options: truncated");
    f.max_qos = options & 0x03;
    if (f.max_qos == 3) return Malformed("SUBSCRIBE Subscription Options: QoS 3");
    if (v5) {
      if ((options & 0xC0) != 0) return Malformed("SUBSCRIBE Subscription Options: reserved bits set (3.8.3-5)");
      f.no_local = (options & 0x04) != 0;
      f.retain_as_published = (options & 0x08) != 0;
      f.retain_handling = static_cast<uint8_t>((options >> 4) & 0x03);
      if (f.retain_handling == 3) return Fail(ReasonCode::kProtocolError, "SUBSCRIBE Retain Handling 3");
      if (f.no_local && IsSharedFilter(f.filter)) {
        return Fail(ReasonCode::kProtocolError, "SUBSCRIBE: No Local on a shared subscription (3.8.3-4)");
      }
    } else if ((options & 0xFC) != 0) {
      return Malformed("SUBSCRIBE Requested QoS: reserved bits set (3.8.3-4)");
    }
    if (sub.filters.size() < kMaxKeptFilters) sub.filters.push_back(f);
    ++sub.filter_count;
  }
  if (sub.filter_count == 0) return Fail(ReasonCode::kProtocolError, "SUBSCRIBE without a Topic Filter (3.8.3-3)");
  return sub;
}

Decoded<Unsubscribe> DecodeUnsubscribe(const Frame& frame, Version version) {
  if (auto s = CheckHeader(frame, PacketType::kUnsubscribe, "UNSUBSCRIBE"); !s) return tl::unexpected(std::move(s.error()));
  Unsubscribe u;
  ByteReader r(frame.body);
  if (auto s = ReadPacketId(r, "UNSUBSCRIBE", &u.packet_id); !s) return tl::unexpected(std::move(s.error()));
  if (version == Version::kV5) {
    PropertyValues v;
    if (auto s = internal::DecodeProperties(r, PropertyContext::kUnsubscribe, "UNSUBSCRIBE", &v, &u.user_properties); !s) {
      return tl::unexpected(std::move(s.error()));
    }
  }
  while (!r.empty()) {
    std::string_view f;
    if (auto s = internal::ReadUtf8(r, "UNSUBSCRIBE Topic Filter", &f); !s) return tl::unexpected(std::move(s.error()));
    if (f.empty()) return Malformed("UNSUBSCRIBE Topic Filter: empty (4.7.3-1)");
    if (u.filters.size() < kMaxKeptFilters) u.filters.push_back(f);
    ++u.filter_count;
  }
  if (u.filter_count == 0) return Fail(ReasonCode::kProtocolError, "UNSUBSCRIBE without a Topic Filter (3.10.3-2)");
  return u;
}

Decoded<Disconnect> DecodeDisconnect(const Frame& frame, Version version) {
  if (auto s = CheckHeader(frame, PacketType::kDisconnect, "DISCONNECT"); !s) return tl::unexpected(std::move(s.error()));
  Disconnect d;
  ByteReader r(frame.body);
  if (version == Version::kV5 && !r.empty()) {  // 5.0 3.14.2.1: Remaining Length 0 means Normal disconnection
    uint8_t rc = 0;
    r.ReadU8(&rc);
    if (!DisconnectReasonValid(rc)) return Fail(ReasonCode::kProtocolError, "DISCONNECT: reason code " + internal::Hex(rc));
    d.reason = static_cast<ReasonCode>(rc);
    if (!r.empty()) {
      PropertyValues v;
      if (auto s = internal::DecodeProperties(r, PropertyContext::kDisconnect, "DISCONNECT", &v, &d.user_properties); !s) {
        return tl::unexpected(std::move(s.error()));
      }
      if (v.Has(internal::kSessionExpiryInterval)) d.session_expiry = v.number[internal::kSessionExpiryInterval];
      d.reason_string = v.bytes[internal::kReasonString];
      d.server_reference = v.bytes[internal::kServerReference];
    }
  }
  if (!r.empty()) return Malformed("DISCONNECT: " + std::to_string(r.remaining()) + " unexpected bytes");
  return d;
}

Decoded<Auth> DecodeAuth(const Frame& frame, Version version) {
  if (version != Version::kV5) return Malformed("packet type 15 is reserved in MQTT 3.1.1");
  if (auto s = CheckHeader(frame, PacketType::kAuth, "AUTH"); !s) return tl::unexpected(std::move(s.error()));
  Auth a;
  ByteReader r(frame.body);
  if (!r.empty()) {  // 5.0 3.15.2.1: Remaining Length 0 means Success
    uint8_t rc = 0;
    r.ReadU8(&rc);
    if (rc != 0x00 && rc != 0x18 && rc != 0x19) return Fail(ReasonCode::kProtocolError, "AUTH: reason code " + internal::Hex(rc));
    a.reason = static_cast<ReasonCode>(rc);
    if (!r.empty()) {
      PropertyValues v;
      if (auto s = internal::DecodeProperties(r, PropertyContext::kAuth, "AUTH", &v, &a.user_properties); !s) {
        return tl::unexpected(std::move(s.error()));
      }
      a.method = v.bytes[internal::kAuthenticationMethod];
      a.data = v.bytes[internal::kAuthenticationData];
      a.reason_string = v.bytes[internal::kReasonString];
    }
  }
  if (!r.empty()) return Malformed("AUTH: " + std::to_string(r.remaining()) + " unexpected bytes");
  return a;
}

DecodeStatus DecodePingreq(const Frame& frame) {
  if (auto s = CheckHeader(frame, PacketType::kPingreq, "PINGREQ"); !s) return s;
  if (!frame.body.empty()) return Malformed("PINGREQ: Remaining Length not 0");
  return {};
}

DecodeStatus DecodePingresp(const Frame& frame) {
  if (auto s = CheckHeader(frame, PacketType::kPingresp, "PINGRESP"); !s) return s;
  if (!frame.body.empty()) return Malformed("PINGRESP: Remaining Length not 0");
  return {};
}

Decoded<Connack> DecodeConnack(const Frame& frame, Version version) {
  if (auto s = CheckHeader(frame, PacketType::kConnack, "CONNACK"); !s) return tl::unexpected(std::move(s.error()));
  Connack c;
  ByteReader r(frame.body);
  uint8_t ack_flags = 0;
  if (!r.ReadU8(&ack_flags) || !r.ReadU8(&c.code)) return Malformed("CONNACK: truncated");
  if ((ack_flags & 0xFE) != 0) return Malformed("CONNACK Acknowledge Flags: reserved bits set");
  c.session_present = (ack_flags & 0x01) != 0;
  if (version == Version::kV5) {
    PropertyValues v;
    if (auto s = internal::DecodeProperties(r, PropertyContext::kConnack, "CONNACK", &v, &c.user_properties); !s) {
      return tl::unexpected(std::move(s.error()));
    }
    using namespace internal;  // property identifiers
    // What absence means (5.0 3.2.2.3): everything available, QoS 2, no limits.
    ConnackProperties& p = c.props;
    p.receive_maximum = v.Has(kReceiveMaximum) ? static_cast<uint16_t>(v.number[kReceiveMaximum]) : 65535;
    p.maximum_qos = v.Has(kMaximumQos) ? static_cast<uint8_t>(v.number[kMaximumQos]) : 2;
    p.retain_available = !v.Has(kRetainAvailable) || v.number[kRetainAvailable] == 1;
    p.maximum_packet_size = v.number[kMaximumPacketSize];
    p.topic_alias_maximum = static_cast<uint16_t>(v.number[kTopicAliasMaximum]);
    p.wildcard_subscription_available = !v.Has(kWildcardSubscriptionAvailable) || v.number[kWildcardSubscriptionAvailable] == 1;
    p.subscription_identifiers_available =
        !v.Has(kSubscriptionIdentifierAvailable) || v.number[kSubscriptionIdentifierAvailable] == 1;
    p.shared_subscription_available = !v.Has(kSharedSubscriptionAvailable) || v.number[kSharedSubscriptionAvailable] == 1;
    if (v.Has(kSessionExpiryInterval)) p.session_expiry = v.number[kSessionExpiryInterval];
    if (v.Has(kServerKeepAlive)) p.server_keep_alive = static_cast<uint16_t>(v.number[kServerKeepAlive]);
    if (v.Has(kAssignedClientIdentifier)) p.assigned_client_identifier = v.bytes[kAssignedClientIdentifier];
    if (v.Has(kReasonString)) p.reason_string = v.bytes[kReasonString];
  } else if (c.code > v311::kNotAuthorized) {
    return Malformed("CONNACK: return code " + std::to_string(c.code) + " is not defined in 3.1.1");
  }
  if (!r.empty()) return Malformed("CONNACK: unexpected trailing bytes");
  return c;
}

Decoded<SubAck> DecodeSuback(const Frame& frame, Version version) {
  const bool unsub = frame.type == PacketType::kUnsuback;
  const char* what = unsub ? "UNSUBACK" : "SUBACK";
  if (auto s = CheckHeader(frame, unsub ? PacketType::kUnsuback : PacketType::kSuback, what); !s) {
    return tl::unexpected(std::move(s.error()));
  }
  SubAck a;
  ByteReader r(frame.body);
  if (auto s = ReadPacketId(r, what, &a.packet_id); !s) return tl::unexpected(std::move(s.error()));
  if (version == Version::kV5) {
    PropertyValues v;
    auto ctx = unsub ? PropertyContext::kUnsuback : PropertyContext::kSuback;
    if (auto s = internal::DecodeProperties(r, ctx, what, &v, nullptr); !s) return tl::unexpected(std::move(s.error()));
    a.reason_string = v.bytes[internal::kReasonString];
  }
  a.reason_codes = r.Rest();
  if (a.reason_codes.empty() && !(unsub && version == Version::kV311)) {
    return Fail(ReasonCode::kProtocolError, std::string(what) + " without reason codes");
  }
  if (unsub && version == Version::kV311 && !a.reason_codes.empty()) return Malformed("UNSUBACK: unexpected payload in 3.1.1");
  return a;
}

}  // namespace ferry::mqtt
