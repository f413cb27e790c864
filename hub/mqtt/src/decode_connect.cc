// decode_connect.cc: CONNECT (3.1.1 section 3.1, 5.0 section 3.1), the one packet whose errors must be
// answered in the format of a version the decoder is still discovering.
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

// Printable for a log line: a peer's protocol name may be any bytes.
std::string Printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 16)) out += (c >= 0x20 && c < 0x7F) ? c : '?';
  return out;
}

// Everything after the Protocol Level byte; errors get the version attached by the caller.
DecodeStatus DecodeAfterLevel(ByteReader& r, Connect& c) {
  const bool v5 = c.version == Version::kV5;
  uint8_t flags = 0;
  if (!r.ReadU8(&flags)) return Malformed("CONNECT Connect Flags: truncated");
  if ((flags & 0x01) != 0) return Malformed("CONNECT Connect Flags: reserved bit 0 set");
  c.clean_start = (flags & 0x02) != 0;
  c.will_flag = (flags & 0x04) != 0;
  c.will_qos = static_cast<uint8_t>((flags >> 3) & 0x03);
  c.will_retain = (flags & 0x20) != 0;
  const bool has_password = (flags & 0x40) != 0;
  const bool has_username = (flags & 0x80) != 0;
  if (c.will_qos == 3) return Malformed("CONNECT Connect Flags: Will QoS 3");
  if (!c.will_flag && (c.will_qos != 0 || c.will_retain)) {
    return Malformed("CONNECT Connect Flags: Will QoS or Will Retain without the Will Flag");
  }
  if (!v5 && has_password && !has_username) {
    return Malformed("CONNECT Connect Flags: Password Flag without User Name Flag (3.1.2-22)");
  }
  if (!r.ReadU16(&c.keep_alive)) return Malformed("CONNECT Keep Alive: truncated");

  if (v5) {
    PropertyValues p;
    if (auto s = internal::DecodeProperties(r, PropertyContext::kConnect, "CONNECT", &p, &c.user_properties); !s) return s;
    using namespace internal;  // property identifiers
    if (p.Has(kSessionExpiryInterval)) c.session_expiry = p.number[kSessionExpiryInterval];
    if (p.Has(kReceiveMaximum)) c.receive_maximum = static_cast<uint16_t>(p.number[kReceiveMaximum]);
    if (p.Has(kMaximumPacketSize)) c.maximum_packet_size = p.number[kMaximumPacketSize];
    if (p.Has(kTopicAliasMaximum)) c.topic_alias_maximum = static_cast<uint16_t>(p.number[kTopicAliasMaximum]);
    if (p.Has(kRequestResponseInformation)) c.request_response_information = p.number[kRequestResponseInformation] == 1;
    if (p.Has(kRequestProblemInformation)) c.request_problem_information = p.number[kRequestProblemInformation] == 1;
    c.auth_method = p.bytes[kAuthenticationMethod];
    c.auth_data = p.bytes[kAuthenticationData];
    if (p.Has(kAuthenticationData) && !p.Has(kAuthenticationMethod)) {
      return Fail(ReasonCode::kProtocolError, "CONNECT Authentication Data without Authentication Method");
    }
  }

  if (auto s = internal::ReadUtf8(r, "CONNECT Client Identifier", &c.client_id); !s) return s;
  if (!v5 && c.client_id.empty() && !c.clean_start) {
    return Fail(ReasonCode::kClientIdentifierNotValid, "CONNECT: empty Client Identifier without Clean Session (3.1.3-8)");
  }

  if (c.will_flag) {
    bool will_utf8 = false;
    if (v5) {
      PropertyValues p;
      if (auto s = internal::DecodeProperties(r, PropertyContext::kWill, "CONNECT Will", &p, nullptr); !s) return s;
      c.will_delay_interval = p.number[internal::kWillDelayInterval];
      will_utf8 = p.number[internal::kPayloadFormatIndicator] == 1;
    }
    if (auto s = internal::ReadUtf8(r, "CONNECT Will Topic", &c.will_topic); !s) return s;
    if (c.will_topic.empty() || internal::HasWildcard(c.will_topic)) {
      return Fail(ReasonCode::kTopicNameInvalid, "CONNECT Will Topic: empty or with a wildcard");
    }
    if (auto s = internal::ReadBinary(r, "CONNECT Will Payload", &c.will_payload); !s) return s;
    if (will_utf8 && !internal::IsWellFormedUtf8(c.will_payload, true)) {
      return Fail(ReasonCode::kPayloadFormatInvalid, "CONNECT Will Payload: not UTF-8 as its Payload Format Indicator says");
    }
  }
  if (has_username) {
    std::string_view u;
    if (auto s = internal::ReadUtf8(r, "CONNECT User Name", &u); !s) return s;
    c.username = u;
  }
  if (has_password) {
    std::string_view pw;
    if (auto s = internal::ReadBinary(r, "CONNECT Password", &pw); !s) return s;
    c.password = pw;
  }
  if (!r.empty()) return Malformed("CONNECT: " + std::to_string(r.remaining()) + " bytes after the payload");
  return {};
}

}  // namespace

Decoded<Connect> DecodeConnect(const Frame& frame) {
  if (frame.type != PacketType::kConnect) return Fail(ReasonCode::kProtocolError, "expected CONNECT");
  if (frame.flags != 0) return Malformed("CONNECT: fixed-header flags not 0");
  ByteReader r(frame.body);
  std::string_view name;
  uint8_t level = 0;
  if (!r.ReadPrefixed(&name) || !r.ReadU8(&level)) return Malformed("CONNECT Protocol Name/Level: truncated");
  Connect c;
  if (name == "MQTT" && level == 4) {
    c.version = Version::kV311;
  } else if (name == "MQTT" && level == 5) {
    c.version = Version::kV5;
  } else {
    // 3.1.1 3.1.2-2 / 5.0 3.1.2-2: answer 0x01 (3.1.1 format) or 0x84, then close.
    return Fail(ReasonCode::kUnsupportedProtocolVersion,
                "CONNECT: protocol '" + Printable(name) + "' level " + std::to_string(level) + " not supported");
  }
  if (auto s = DecodeAfterLevel(r, c); !s) {
    DecodeError e = std::move(s.error());
    e.version = c.version;
    return tl::unexpected<DecodeError>(std::move(e));
  }
  return c;
}

}  // namespace ferry::mqtt
