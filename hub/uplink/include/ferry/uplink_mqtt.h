// ferry/uplink_mqtt.h: the pure parts of the MQTT uplink transport (hub/uplink/src/mqtt_transport.h): PUBACK
// classification and the strings MQTT can carry. The uplink itself (engine, transport and loop) is ferry/uplink.h;
// UplinkMqtt is its old name, kept for callers that still use it.
//
// Per-event messages carry the CloudEvents attributes as MQTT v5 user properties (docs/wire.md). A string
// MQTT would refuse (invalid UTF-8, control characters; '+' and '#' in a topic) is percent-encoded first
// (MqttLegalString, MqttLegalTopic; docs/wire.md "Strings MQTT cannot carry").
//
// Threads: pure functions, any thread.
#pragma once

#include <string>
#include <string_view>

#include "ferry/uplink.h"
#include "ferry/uplink_transport.h"

namespace ferry {

using UplinkMqtt = Uplink;

// The one place PUBACK outcomes are classified (STYLE habit 11). `token_rc`: Paho's token return code (0 = a
// successful PUBACK; Paho also fails the token of a PUBACK with a failure reason); `reason_code`: the MQTT v5
// PUBACK reason (0 when no PUBACK came). A reason >= 0x80 decides; otherwise a failed token is kRetry
// "transport" (no PUBACK: the connection is gone).
PublishVerdict ClassifyPublish(int token_rc, int reason_code);

// `s` unchanged if MQTT (and Mosquitto) accept it as a UTF-8 string; otherwise every invalid byte, every byte
// of a control character (U+0000-U+001F, U+007F-U+009F) or Unicode noncharacter, and every '%', as %XX
// (upper-case hex). Deterministic, so ids stay stable for the centre's deduplication.
std::string MqttLegalString(std::string_view s);
// As MqttLegalString, and '+' and '#' (wildcards, illegal in a topic name) are encoded too; '/' is kept.
std::string MqttLegalTopic(std::string_view topic);

}  // namespace ferry
