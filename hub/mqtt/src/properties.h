// properties.h (private to ferry_mqtt): the MQTT 5.0 property list (5.0 section 2.2.2), decoded generically.
//
// One table (properties.cc) declares every property: identifier, data type, the packets it may appear in,
// and whether it may repeat. DecodeProperties walks a list once against that table, so each packet decoder
// only picks the values it wants and checks the rules that involve other fields.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "byte_reader.h"
#include "ferry/mqtt/packet.h"

namespace ferry::mqtt::internal {

enum PropertyId : uint8_t {
  kPayloadFormatIndicator = 0x01,
  kMessageExpiryInterval = 0x02,
  kContentType = 0x03,
  kResponseTopic = 0x08,
  kCorrelationData = 0x09,
  kSubscriptionIdentifier = 0x0B,
  kSessionExpiryInterval = 0x11,
  kAssignedClientIdentifier = 0x12,
  kServerKeepAlive = 0x13,
  kAuthenticationMethod = 0x15,
  kAuthenticationData = 0x16,
  kRequestProblemInformation = 0x17,
  kWillDelayInterval = 0x18,
  kRequestResponseInformation = 0x19,
  kResponseInformation = 0x1A,
  kServerReference = 0x1C,
  kReasonString = 0x1F,
  kReceiveMaximum = 0x21,
  kTopicAliasMaximum = 0x22,
  kTopicAlias = 0x23,
  kMaximumQos = 0x24,
  kRetainAvailable = 0x25,
  kUserProperty = 0x26,
  kMaximumPacketSize = 0x27,
  kWildcardSubscriptionAvailable = 0x28,
  kSubscriptionIdentifierAvailable = 0x29,
  kSharedSubscriptionAvailable = 0x2A,
  kMaxPropertyId = 0x2A,
};

// Where a property list sits; a bit each in the table's allowed-in masks.
enum class PropertyContext : uint8_t {
  kConnect, kWill, kConnack, kPublish, kPubackLike, kSubscribe, kSuback, kUnsubscribe, kUnsuback,
  kDisconnect, kAuth,
};

// The decoded list. Integers of every width land in `number`, strings and binary data in `bytes`.
struct PropertyValues {
  uint64_t present = 0;
  uint32_t number[kMaxPropertyId + 1] = {};
  std::string_view bytes[kMaxPropertyId + 1];

  bool Has(PropertyId id) const { return ((present >> id) & 1U) != 0; }
};

// Reads the Property Length and the list after it (5.0 2.2.2). Errors (all name `what`):
//   kMalformedPacket  truncated, bad Variable Byte Integer, unknown identifier or one not allowed in `ctx`,
//                     invalid UTF-8 in a string property
//   kProtocolError    a non-repeatable property twice, a value the spec rules out (Receive Maximum 0, ...)
//   kTopicAliasInvalid  Topic Alias 0
//   kImplementationSpecificError  more than kMaxUserProperties user properties
// User properties are appended to *user (which may be null to drop them; they are still validated).
DecodeStatus DecodeProperties(ByteReader& r, PropertyContext ctx, const char* what, PropertyValues* out,
                              UserProperties* user);

// Appends one property of each kind to `out` (no Property Length).
void PutByteProperty(std::string& out, PropertyId id, uint8_t v);
void PutU16Property(std::string& out, PropertyId id, uint16_t v);
void PutU32Property(std::string& out, PropertyId id, uint32_t v);
void PutStringProperty(std::string& out, PropertyId id, std::string_view v);  // REQUIRES: size <= 65535
void PutUserProperties(std::string& out, const UserProperties& user);       // REQUIRES: sizes <= 65535

}  // namespace ferry::mqtt::internal
