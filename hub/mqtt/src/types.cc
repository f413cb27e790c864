// types.cc: names of reason codes and packet types, the 5.0 -> 3.1.1 CONNACK mapping, fixed-header flags.
#include "ferry/mqtt/types.h"

namespace ferry::mqtt {

const char* ReasonCodeName(ReasonCode code) noexcept {
  switch (code) {
    case ReasonCode::kSuccess: return "success";
    case ReasonCode::kGrantedQos1: return "granted_qos_1";
    case ReasonCode::kGrantedQos2: return "granted_qos_2";
    case ReasonCode::kDisconnectWithWillMessage: return "disconnect_with_will_message";
    case ReasonCode::kNoMatchingSubscribers: return "no_matching_subscribers";
    case ReasonCode::kNoSubscriptionExisted: return "no_subscription_existed";
    case ReasonCode::kContinueAuthentication: return "continue_authentication";
    case ReasonCode::kReAuthenticate: return "re_authenticate";
    case ReasonCode::kUnspecifiedError: return "unspecified_error";
    case ReasonCode::kMalformedPacket: return "malformed_packet";
    case ReasonCode::kProtocolError: return "protocol_error";
    case ReasonCode::kImplementationSpecificError: return "implementation_specific_error";
    case ReasonCode::kUnsupportedProtocolVersion: return "unsupported_protocol_version";
    case ReasonCode::kClientIdentifierNotValid: return "client_identifier_not_valid";
    case ReasonCode::kBadUserNameOrPassword: return "bad_user_name_or_password";
    case ReasonCode::kNotAuthorized: return "not_authorized";
    case ReasonCode::kServerUnavailable: return "server_unavailable";
    case ReasonCode::kServerBusy: return "server_busy";
    case ReasonCode::kBanned: return "banned";
    case ReasonCode::kServerShuttingDown: return "server_shutting_down";
    case ReasonCode::kBadAuthenticationMethod: return "bad_authentication_method";
    case ReasonCode::kKeepAliveTimeout: return "keep_alive_timeout";
    case ReasonCode::kSessionTakenOver: return "session_taken_over";
    case ReasonCode::kTopicFilterInvalid: return "topic_filter_invalid";
    case ReasonCode::kTopicNameInvalid: return "topic_name_invalid";
    case ReasonCode::kPacketIdentifierInUse: return "packet_identifier_in_use";
    case ReasonCode::kPacketIdentifierNotFound: return "packet_identifier_not_found";
    case ReasonCode::kReceiveMaximumExceeded: return "receive_maximum_exceeded";
    case ReasonCode::kTopicAliasInvalid: return "topic_alias_invalid";
    case ReasonCode::kPacketTooLarge: return "packet_too_large";
    case ReasonCode::kMessageRateTooHigh: return "message_rate_too_high";
    case ReasonCode::kQuotaExceeded: return "quota_exceeded";
    case ReasonCode::kAdministrativeAction: return "administrative_action";
    case ReasonCode::kPayloadFormatInvalid: return "payload_format_invalid";
    case ReasonCode::kRetainNotSupported: return "retain_not_supported";
    case ReasonCode::kQosNotSupported: return "qos_not_supported";
    case ReasonCode::kUseAnotherServer: return "use_another_server";
    case ReasonCode::kServerMoved: return "server_moved";
    case ReasonCode::kSharedSubscriptionsNotSupported: return "shared_subscriptions_not_supported";
    case ReasonCode::kConnectionRateExceeded: return "connection_rate_exceeded";
    case ReasonCode::kMaximumConnectTime: return "maximum_connect_time";
    case ReasonCode::kSubscriptionIdentifiersNotSupported: return "subscription_identifiers_not_supported";
    case ReasonCode::kWildcardSubscriptionsNotSupported: return "wildcard_subscriptions_not_supported";
  }
  return "unknown";
}

const char* PacketTypeName(PacketType type) noexcept {
  switch (type) {
    case PacketType::kConnect: return "connect";
    case PacketType::kConnack: return "connack";
    case PacketType::kPublish: return "publish";
    case PacketType::kPuback: return "puback";
    case PacketType::kPubrec: return "pubrec";
    case PacketType::kPubrel: return "pubrel";
    case PacketType::kPubcomp: return "pubcomp";
    case PacketType::kSubscribe: return "subscribe";
    case PacketType::kSuback: return "suback";
    case PacketType::kUnsubscribe: return "unsubscribe";
    case PacketType::kUnsuback: return "unsuback";
    case PacketType::kPingreq: return "pingreq";
    case PacketType::kPingresp: return "pingresp";
    case PacketType::kDisconnect: return "disconnect";
    case PacketType::kAuth: return "auth";
  }
  return "reserved";
}

std::optional<uint8_t> V311ConnackCodeFor(ReasonCode code) noexcept {
  switch (code) {
    case ReasonCode::kSuccess: return v311::kConnectionAccepted;
    case ReasonCode::kUnsupportedProtocolVersion: return v311::kUnacceptableProtocolVersion;
    case ReasonCode::kClientIdentifierNotValid: return v311::kIdentifierRejected;
    case ReasonCode::kServerUnavailable:
    case ReasonCode::kServerBusy:
    case ReasonCode::kServerShuttingDown:
    case ReasonCode::kQuotaExceeded:
    case ReasonCode::kConnectionRateExceeded: return v311::kServerUnavailable;
    case ReasonCode::kBadUserNameOrPassword:
    case ReasonCode::kBadAuthenticationMethod: return v311::kBadUserNameOrPassword;
    case ReasonCode::kNotAuthorized:
    case ReasonCode::kBanned: return v311::kNotAuthorized;
    default: return std::nullopt;
  }
}

bool FixedHeaderFlagsValid(uint8_t type, uint8_t flags) noexcept {
  switch (type) {
    case 0: return false;  // reserved
    case static_cast<uint8_t>(PacketType::kPublish): return flags <= 0x0F;
    case static_cast<uint8_t>(PacketType::kPubrel):
    case static_cast<uint8_t>(PacketType::kSubscribe):
    case static_cast<uint8_t>(PacketType::kUnsubscribe): return flags == 0x02;
    default: return type <= 15 && flags == 0;
  }
}

}  // namespace ferry::mqtt
