// ferry/mqtt/types.h: the vocabulary of the MQTT 3.1.1 / 5.0 codec: versions, packet types, reason codes,
// the decode error and the framed packet.
//
// The codec is pure: no sockets, no threads, no global state. Every function here may be called from any
// thread; objects (FrameReader) are not shared between threads without the caller's locking.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace ferry::mqtt {

// The value is the Protocol Level byte of CONNECT (3.1.1 section 3.1.2.2, 5.0 section 3.1.2.2).
enum class Version : uint8_t { kV311 = 4, kV5 = 5 };

// Fixed header bits 7-4 (2.1.2). 0 is reserved and never a valid PacketType; 15 (AUTH) exists only in 5.0.
enum class PacketType : uint8_t {
  kConnect = 1, kConnack, kPublish, kPuback, kPubrec, kPubrel, kPubcomp,
  kSubscribe, kSuback, kUnsubscribe, kUnsuback, kPingreq, kPingresp, kDisconnect, kAuth,
};

// MQTT 5.0 reason codes (5.0 section 2.4). The same byte means different things in different packets
// (0x00 is Success, Normal disconnection and Granted QoS 0); the names follow the CONNACK/DISCONNECT meaning.
// Any byte value can be held: a peer may send codes this list does not name.
enum class ReasonCode : uint8_t {
  kSuccess = 0x00,
  kGrantedQos1 = 0x01,
  kGrantedQos2 = 0x02,
  kDisconnectWithWillMessage = 0x04,
  kNoMatchingSubscribers = 0x10,
  kNoSubscriptionExisted = 0x11,
  kContinueAuthentication = 0x18,
  kReAuthenticate = 0x19,
  kUnspecifiedError = 0x80,
  kMalformedPacket = 0x81,
  kProtocolError = 0x82,
  kImplementationSpecificError = 0x83,
  kUnsupportedProtocolVersion = 0x84,
  kClientIdentifierNotValid = 0x85,
  kBadUserNameOrPassword = 0x86,
  kNotAuthorized = 0x87,
  kServerUnavailable = 0x88,
  kServerBusy = 0x89,
  kBanned = 0x8A,
  kServerShuttingDown = 0x8B,
  kBadAuthenticationMethod = 0x8C,
  kKeepAliveTimeout = 0x8D,
  kSessionTakenOver = 0x8E,
  kTopicFilterInvalid = 0x8F,
  kTopicNameInvalid = 0x90,
  kPacketIdentifierInUse = 0x91,
  kPacketIdentifierNotFound = 0x92,
  kReceiveMaximumExceeded = 0x93,
  kTopicAliasInvalid = 0x94,
  kPacketTooLarge = 0x95,
  kMessageRateTooHigh = 0x96,
  kQuotaExceeded = 0x97,
  kAdministrativeAction = 0x98,
  kPayloadFormatInvalid = 0x99,
  kRetainNotSupported = 0x9A,
  kQosNotSupported = 0x9B,
  kUseAnotherServer = 0x9C,
  kServerMoved = 0x9D,
  kSharedSubscriptionsNotSupported = 0x9E,
  kConnectionRateExceeded = 0x9F,
  kMaximumConnectTime = 0xA0,
  kSubscriptionIdentifiersNotSupported = 0xA1,
  kWildcardSubscriptionsNotSupported = 0xA2,
};

// snake_case name for metric labels ("quota_exceeded"); "unknown" for a byte the list above does not name.
// Never returns null.
const char* ReasonCodeName(ReasonCode code) noexcept;
const char* PacketTypeName(PacketType type) noexcept;  // "connect", "publish", ...; "reserved" for 0

// MQTT 3.1.1 CONNACK return codes (3.1.1 table 3.1). A 3.1.1 server has no other way to report an error:
// for anything else it closes the connection.
namespace v311 {
inline constexpr uint8_t kConnectionAccepted = 0;
inline constexpr uint8_t kUnacceptableProtocolVersion = 1;
inline constexpr uint8_t kIdentifierRejected = 2;
inline constexpr uint8_t kServerUnavailable = 3;
inline constexpr uint8_t kBadUserNameOrPassword = 4;
inline constexpr uint8_t kNotAuthorized = 5;
}  // namespace v311

// The 3.1.1 CONNACK return code that carries the meaning of a 5.0 reason code, or nullopt when 3.1.1 has
// none (malformed packet, protocol error...): then a 3.1.1 server closes the connection without a CONNACK.
std::optional<uint8_t> V311ConnackCodeFor(ReasonCode code) noexcept;

// Why bytes from a peer were refused. `code` is what a 5.0 server sends in CONNACK or DISCONNECT (3.1.1: use
// V311ConnackCodeFor on CONNECT, otherwise just close). `message` names the packet and the field, for logs.
// `version` is set only by DecodeConnect, once the Protocol Level byte was read and is 4 or 5, so the server
// knows which CONNACK format to answer in; it is nullopt for an unsupported or unreadable protocol level.
struct DecodeError {
  ReasonCode code;
  std::string message;
  std::optional<Version> version;
};

template <class T>
using Decoded = tl::expected<T, DecodeError>;
using DecodeStatus = tl::expected<void, DecodeError>;

// One complete control packet as cut out of the byte stream by FrameReader. `body` is everything after the
// fixed header (variable header + payload) and views the reader's buffer.
struct Frame {
  PacketType type;
  uint8_t flags;          // fixed header bits 3-0
  std::string_view body;  // Remaining Length bytes
  size_t wire_size;       // fixed header + body
};

// Limits every decoder applies so that no peer can make us allocate or loop beyond them.
inline constexpr uint32_t kMaxRemainingLength = 268435455;  // largest 4-byte Variable Byte Integer (1.5.5)
inline constexpr size_t kMaxUserProperties = 64;          // per property list; more -> kImplementationSpecificError
inline constexpr size_t kMaxKeptFilters = 32;             // SUBSCRIBE/UNSUBSCRIBE filters kept (all are counted)

// Fixed-header flags check shared by FrameReader and every decoder (3.1.1 table 2.2, 5.0 table 2-3):
// PUBREL, SUBSCRIBE, UNSUBSCRIBE need 0b0010, PUBLISH carries DUP/QoS/RETAIN (checked by DecodePublish),
// every other type needs 0. Returns false for type 0 (reserved) or wrong flags.
bool FixedHeaderFlagsValid(uint8_t type, uint8_t flags) noexcept;

}  // namespace ferry::mqtt
