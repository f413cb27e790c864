// ferry/mqtt/packet.h: decoders and encoders of MQTT 3.1.1 (OASIS 2014) and 5.0 (OASIS 2019) control packets.
//
// Server side (ferryd's ingest endpoint): decode CONNECT, PUBLISH, PUBACK, SUBSCRIBE, UNSUBSCRIBE, PINGREQ,
// DISCONNECT, AUTH; encode CONNACK, PUBACK, SUBACK, UNSUBACK, PINGRESP, DISCONNECT. Client side, for tests
// and benchmarks: encode CONNECT, PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PINGREQ; decode CONNACK, SUBACK/UNSUBACK.
//
// Lifetimes: every std::string_view in a decoded packet views Frame::body, i.e. the FrameReader's buffer; it
// is valid until the next FrameReader::Next/Append/WritableSpan/Commit. Copy what must live longer.
//
// Errors: decoders return DecodeError{code, message}; `code` is the 5.0 reason code a server sends:
//   kMalformedPacket   truncated field, trailing bytes, invalid UTF-8 (1.5.4: ill-formed, U+0000,
//                      surrogates), reserved bits set, QoS 3, DUP on QoS 0, a property identifier not valid
//                      in that packet (5.0 2.2.2.2), wrong fixed-header flags
//   kProtocolError     a property given twice where the spec allows one, a property value out of range
//                      (Receive Maximum 0, ...), packet identifier 0, a client PUBLISH with a Subscription
//                      Identifier, a SUBSCRIBE without filters, an unknown reason code
//   kTopicNameInvalid  a PUBLISH or will topic with '+' or '#', an empty 3.1.1 topic
//   kTopicAliasInvalid Topic Alias 0 (the codec cannot know the alias maximum: the server checks the rest)
//   kPayloadFormatInvalid  Payload Format Indicator 1 and a payload that is not well-formed UTF-8
//   kUnsupportedProtocolVersion, kClientIdentifierNotValid  on CONNECT (see DecodeConnect)
//   kImplementationSpecificError  more than kMaxUserProperties user properties
// Decoding never allocates except for the user_properties/filters vectors (bounded) and error messages.
//
// Encoders append to `out`, so a server can batch many acknowledgements into one send().
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/mqtt/frame_reader.h"
#include "ferry/mqtt/types.h"

namespace ferry::mqtt {

using UserProperties = std::vector<std::pair<std::string_view, std::string_view>>;

// ---- CONNECT ---------------------------------------------------------------------------------------------

struct Connect {
  Version version = Version::kV5;
  std::string_view client_id;  // may be empty (5.0 always; 3.1.1 only with clean_start)
  bool clean_start = true;     // 3.1.1: Clean Session
  uint16_t keep_alive = 0;     // seconds; 0 = off
  std::optional<std::string_view> username, password;  // password is binary data
  // Will: parsed and validated even though ferryd does not publish wills.
  bool will_flag = false;
  uint8_t will_qos = 0;
  bool will_retain = false;
  std::string_view will_topic, will_payload;
  uint32_t will_delay_interval = 0;  // 5.0 will property
  // 5.0 properties; the defaults are what their absence means.
  uint32_t session_expiry = 0;
  uint16_t receive_maximum = 65535;
  uint32_t maximum_packet_size = 0;  // 0 = no limit given
  uint16_t topic_alias_maximum = 0;
  bool request_response_information = false;
  bool request_problem_information = true;
  std::string_view auth_method, auth_data;  // auth_data only with auth_method
  UserProperties user_properties;
};

// REQUIRES: frame.type == kConnect (else kProtocolError).
// Protocol Name "MQTT" with level 4 -> 3.1.1, level 5 -> 5.0; anything else (e.g. "MQIsdp" level 3) ->
// kUnsupportedProtocolVersion with error.version nullopt: answer with a 3.1.1 CONNACK, return code
// v311::kUnacceptableProtocolVersion, and close. For every error after the level byte, error.version is set:
// 5.0 -> CONNACK with error.code; 3.1.1 -> CONNACK with V311ConnackCodeFor(code) if it has a value, else close.
// 3.1.1 checks: password without user name -> kMalformedPacket; empty client id without clean session ->
// kClientIdentifierNotValid (3.1.3.1: CONNACK 0x02).
Decoded<Connect> DecodeConnect(const Frame& frame);

// ---- PUBLISH ---------------------------------------------------------------------------------------------

struct Publish {
  uint8_t qos = 0;  // 0, 1 or 2: QoS 2 decodes; refusing it (5.0: kQosNotSupported) is the server's call
  bool dup = false;
  bool retain = false;
  std::string_view topic;  // empty only in 5.0 with a topic_alias
  uint16_t packet_id = 0;  // 0 for QoS 0, never 0 otherwise
  std::string_view payload;
  // 5.0 properties
  std::optional<uint8_t> payload_format_indicator;  // 0 bytes, 1 UTF-8 (already checked)
  std::optional<uint32_t> message_expiry;
  std::optional<uint16_t> topic_alias;  // never 0; the server checks it against its Topic Alias Maximum
  std::string_view content_type, response_topic, correlation_data;
  UserProperties user_properties;
};

// A PUBLISH sent by a client (a Subscription Identifier is a protocol error: 5.0 3.3.4-6).
// REQUIRES: frame.type == kPublish.
Decoded<Publish> DecodePublish(const Frame& frame, Version version);

// ---- PUBACK, PUBREC, PUBREL, PUBCOMP ---------------------------------------------------------------------

struct PubAck {
  PacketType type = PacketType::kPuback;  // which of the four it was
  uint16_t packet_id = 0;
  ReasonCode reason = ReasonCode::kSuccess;  // checked against the packet's list in 5.0 3.4.2.1 / 3.6.2.1
  std::string_view reason_string;
  UserProperties user_properties;
};
// REQUIRES: frame.type is kPuback, kPubrec, kPubrel or kPubcomp.
Decoded<PubAck> DecodePuback(const Frame& frame, Version version);

// ---- SUBSCRIBE, UNSUBSCRIBE ------------------------------------------------------------------------------

struct SubscribeFilter {
  std::string_view filter;  // UTF-8, not empty; wildcard syntax is not checked (ferryd refuses them all)
  uint8_t max_qos = 0;
  bool no_local = false;             // 5.0
  bool retain_as_published = false;  // 5.0
  uint8_t retain_handling = 0;       // 5.0, 0..2
};

struct Subscribe {
  uint16_t packet_id = 0;
  std::optional<uint32_t> subscription_identifier;
  UserProperties user_properties;
  std::vector<SubscribeFilter> filters;  // the first kMaxKeptFilters; all of them were validated
  size_t filter_count = 0;               // all filters in the packet: the SUBACK needs this many codes
};
Decoded<Subscribe> DecodeSubscribe(const Frame& frame, Version version);

struct Unsubscribe {
  uint16_t packet_id = 0;
  UserProperties user_properties;
  std::vector<std::string_view> filters;  // the first kMaxKeptFilters
  size_t filter_count = 0;
};
Decoded<Unsubscribe> DecodeUnsubscribe(const Frame& frame, Version version);

// ---- DISCONNECT, AUTH, PINGREQ ---------------------------------------------------------------------------

struct Disconnect {
  ReasonCode reason = ReasonCode::kSuccess;  // 3.1.1: always kSuccess
  // 5.0: a non-zero value when CONNECT had session_expiry 0 is a protocol error the server must check.
  std::optional<uint32_t> session_expiry;
  std::string_view reason_string, server_reference;
  UserProperties user_properties;
};
Decoded<Disconnect> DecodeDisconnect(const Frame& frame, Version version);

struct Auth {  // 5.0 only; in 3.1.1 packet type 15 is reserved -> kMalformedPacket
  ReasonCode reason = ReasonCode::kSuccess;  // 0x00, 0x18 or 0x19
  std::string_view method, data, reason_string;
  UserProperties user_properties;
};
Decoded<Auth> DecodeAuth(const Frame& frame, Version version);

// Body must be empty and flags 0.
DecodeStatus DecodePingreq(const Frame& frame);
DecodeStatus DecodePingresp(const Frame& frame);

// ---- server -> client encoders ---------------------------------------------------------------------------

// The CONNACK properties a 5.0 server sends. The defaults describe ferryd's ingest endpoint (QoS 1 at most,
// no retain, no subscriptions); a property is written only when it differs from what its absence means in
// the spec (Maximum QoS 2, everything "available", Receive Maximum 65535, no limits).
struct ConnackProperties {
  uint16_t receive_maximum = 65535;
  uint8_t maximum_qos = 1;
  bool retain_available = false;
  uint32_t maximum_packet_size = 0;  // 0 = not sent (no limit)
  uint16_t topic_alias_maximum = 0;
  bool wildcard_subscription_available = false;
  bool subscription_identifiers_available = false;
  bool shared_subscription_available = false;
  std::optional<uint32_t> session_expiry;  // when the server overrides the client's request
  std::optional<uint16_t> server_keep_alive;
  std::optional<std::string_view> assigned_client_identifier;
  std::optional<std::string_view> reason_string;
};

// `code`: a v311:: return code, or a 5.0 ReasonCode value. session_present is sent only with code 0
// (3.2.2-4 / 5.0 3.2.2-6). 3.1.1 ignores props. Strings longer than 65535 bytes are cut (at a UTF-8
// boundary).
void EncodeConnack(std::string& out, Version version, bool session_present, uint8_t code,
                   const ConnackProperties& props = {});
// 5.0 omits the reason byte for kSuccess (3.4.2.1).
void EncodePuback(std::string& out, Version version, uint16_t packet_id, ReasonCode rc = ReasonCode::kSuccess);
// Writes the same code for each of n_filters. 3.1.1 knows only 0x00-0x02 and 0x80: any rc >= 0x80 becomes
// 0x80 (Failure). REQUIRES: n_filters <= the filter_count of a decoded SUBSCRIBE.
void EncodeSuback(std::string& out, Version version, uint16_t packet_id, size_t n_filters, ReasonCode rc);
// 3.1.1 UNSUBACK has no payload, so n_filters and rc are ignored there.
void EncodeUnsuback(std::string& out, Version version, uint16_t packet_id, size_t n_filters, ReasonCode rc);
void EncodePingresp(std::string& out);
// 5.0 only: a 3.1.1 server never sends DISCONNECT (it just closes), so for kV311 nothing is appended.
// kSuccess without a reason string is the 2-byte form E0 00.
void EncodeDisconnect(std::string& out, Version version, ReasonCode rc, std::string_view reason_string = {});

// ---- client -> server encoders (tests, benchmarks, a tiny client) ---------------------------------------
// Return false, leaving `out` as it was, when a string is longer than 65535 bytes or the packet would
// exceed kMaxRemainingLength. Values are not otherwise validated: tests use them to send bad packets.

// Writes will properties only as will_delay_interval (when non-zero).
bool EncodeConnect(std::string& out, const Connect& connect);
bool EncodePublish(std::string& out, Version version, const Publish& publish);
bool EncodeSubscribe(std::string& out, Version version, const Subscribe& subscribe);  // uses `filters`
bool EncodeUnsubscribe(std::string& out, Version version, const Unsubscribe& unsubscribe);
void EncodePingreq(std::string& out);
// A client DISCONNECT with a session expiry (5.0); without one, EncodeDisconnect serves clients too.
void EncodeClientDisconnect(std::string& out, Version version, ReasonCode rc, std::optional<uint32_t> session_expiry);

// ---- client-side decoders ------------------------------------------------------------------------------

struct Connack {
  bool session_present = false;
  uint8_t code = 0;  // v311:: return code or ReasonCode value
  ConnackProperties props;  // 5.0; absent properties keep their spec meaning (maximum_qos 2, ...)
  UserProperties user_properties;
};
Decoded<Connack> DecodeConnack(const Frame& frame, Version version);

struct SubAck {  // SUBACK or UNSUBACK
  uint16_t packet_id = 0;
  std::string_view reason_codes;  // one byte per filter (3.1.1 UNSUBACK: empty)
  std::string_view reason_string;
};
Decoded<SubAck> DecodeSuback(const Frame& frame, Version version);

}  // namespace ferry::mqtt
