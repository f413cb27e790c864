// mqtt_transport.cc: the MQTT v5 transport (Paho MQTT C++), PUBACK classification and MQTT-legal strings.
// See mqtt_transport.h for what it adds to the transport contract.
#include "mqtt_transport.h"

#include <algorithm>

#include <mqtt/async_client.h>

#include "ferry/log.h"
#include "ferry/paho_glue.h"
#include "ferry/uplink_mqtt.h"
#include "ferry/utf8.h"

namespace ferry {
namespace {

// Wakes the engine when a publish completes; the engine then collects it through Completions().
class PublishListener final : public mqtt::iaction_listener {
 public:
  explicit PublishListener(std::function<void()> wake) : wake_(std::move(wake)) {}
  void on_success(const mqtt::token&) override { wake_(); }
  void on_failure(const mqtt::token&) override { wake_(); }

 private:
  std::function<void()> wake_;
};

}  // namespace

PublishVerdict ClassifyPublish(int token_rc, int reason_code) {
  using namespace std::chrono_literals;
  // A PUBACK with a failure reason completes the token as failed too (Paho: return code -1 and the reason
  // code set): the reason decides. Only a failed token without one means no PUBACK came.
  if (reason_code < 0x80 && token_rc != 0) return {PublishVerdict::kRetry, 0s, "transport"};
  if (reason_code < 0x80) return {};  // 0x00 success, 0x10 no matching subscribers: delivered to the broker
  switch (reason_code) {
    case 0x95:  // packet too large: resending the same bytes can never succeed
      return {PublishVerdict::kDrop, 0s, "packet_too_large"};
    case 0x99:  // payload format invalid
      return {PublishVerdict::kDrop, 0s, "payload_format_invalid"};
    case 0x90:  // topic name invalid: the same topic will never do
      return {PublishVerdict::kDrop, 0s, "topic_name_invalid"};
    case 0x87:  // not authorized: an operator must fix the ACL; keep the data and retry slowly
      return {PublishVerdict::kRetry, 60s, "not_authorized"};
    case 0x97:  // quota exceeded
      return {PublishVerdict::kRetry, 10s, "quota_exceeded"};
    default:
      return {PublishVerdict::kRetry, 1s, "broker_error"};
  }
}

std::string MqttLegalString(std::string_view s) { return LegalUnicodeString(s); }
std::string MqttLegalTopic(std::string_view topic) { return LegalUnicodeString(topic, "+#"); }

MqttTransport::MqttTransport(const Config& config, const UplinkConfig& uplink, const Clock& clock)
    : config_(config), uplink_(uplink), clock_(clock) {}

MqttTransport::~MqttTransport() {
  // Paho can still call our handlers (connection lost, a connect or publish listener) until the client is
  // destroyed: destroy it first, while everything they touch is alive.
  client_.reset();
}

Status MqttTransport::Create() {
  std::string client_id = uplink_.client_id.empty() ? "ferry-" + config_.gateway.id + "-" + uplink_.name
                                                    : uplink_.client_id;
  try {
    // Paho holds publishes beyond the broker's Receive Maximum in its queue and refuses more than
    // max_buffered_messages of them (default 100): room for the whole in-flight window.
    auto create = mqtt::create_options_builder()
                      .mqtt_version(MQTTVERSION_5)
                      .max_buffered_messages(static_cast<int>(std::max<int64_t>(100, uplink_.inflight + 16)))
                      .finalize();
    client_ = std::make_unique<mqtt::async_client>(uplink_.address, client_id, create);
  } catch (const mqtt::exception& e) {
    return InvalidArgument("uplink " + uplink_.name + ": address \"" + uplink_.address + "\": " + e.what());
  }
  publish_listener_ = std::make_unique<PublishListener>([this] { Wake(); });
  connect_listener_ = std::make_unique<ConnectListener>([this](const mqtt::token& tok) {
    // An unreachable centre is the normal offline state: the first failed attempt since ferryd started or the
    // link was last up is a warning (it names a TLS or credentials problem as much as an outage), the retries
    // are debug.
    if (!connect_failure_reported_.exchange(true)) {
      FERRY_LOG_WARN("uplink %s: cannot connect to %s: %s; retrying with backoff, the backlog is kept",
                     uplink_.name.c_str(), uplink_.address.c_str(),
                     ConnectFailureText(tok, uplink_.tls.enabled).c_str());
    } else {
      FERRY_LOG_DEBUG("uplink %s: connect failed: %s", uplink_.name.c_str(),
                      ConnectFailureText(tok, uplink_.tls.enabled).c_str());
    }
    state_ = LinkState::kDown;
    Wake();
  });
  client_->set_connected_handler([this](const std::string&) {
    connect_failure_reported_ = false;
    ++session_;  // before the state: whoever sees kUp sees the new session
    state_ = LinkState::kUp;
    Wake();
  });
  client_->set_connection_lost_handler([this](const std::string&) {
    state_ = LinkState::kDown;
    Wake();
  });
  return Ok();
}

void MqttTransport::Connect() {
  if (!client_ || state_ != LinkState::kDown) return;
  pending_.clear();  // a new session: tokens of the last one mean nothing now
  // Clean start: nothing to resume, the log and the cursors are the state.
  auto builder = MqttConnectOptions(uplink_.username, uplink_.password, uplink_.tls, /*clean_start=*/true,
                                    std::chrono::seconds(30));
  builder.max_inflight(static_cast<int>(uplink_.inflight));
  state_ = LinkState::kConnecting;
  try {
    client_->connect(builder.finalize(), nullptr, *connect_listener_);
  } catch (const mqtt::exception& e) {
    FERRY_LOG_WARN("uplink %s: connect: %s", uplink_.name.c_str(), e.what());
    state_ = LinkState::kDown;
  }
}

Result<PublishHandle> MqttTransport::Publish(OutboundUnit unit) {
  if (state_ != LinkState::kUp) return Unavailable("uplink " + uplink_.name + ": not connected");
  mqtt::properties props;
  for (const auto& [k, v] : unit.attributes)
    props.add(mqtt::property(mqtt::property::USER_PROPERTY, MqttLegalString(k), MqttLegalString(v)));
  if (!unit.content_type.empty())
    props.add(mqtt::property(mqtt::property::CONTENT_TYPE, MqttLegalString(unit.content_type)));
  auto msg = mqtt::make_message(MqttLegalTopic(unit.topic), std::move(unit.payload), 1, uplink_.retain);
  msg->set_properties(props);
  std::shared_ptr<mqtt::delivery_token> token;
  try {
    token = client_->publish(msg, nullptr, *publish_listener_);
  } catch (const mqtt::exception& e) {
    switch (e.get_return_code()) {
      case MQTTASYNC_MAX_BUFFERED_MESSAGES:  // Paho's queue is full (the broker's Receive Maximum is smaller
      case MQTTASYNC_MAX_MESSAGES_INFLIGHT:  // than uplink.inflight): back-pressure, not a broken link
      case MQTTASYNC_NO_MORE_MSGIDS:
        return MakeError(ErrorCode::kBusy, "uplink " + uplink_.name + ": " + e.what());
      case MQTTASYNC_BAD_UTF8_STRING:
      case MQTTASYNC_BAD_STRUCTURE:
      case MQTTASYNC_TOPICNAME_TRUNCATED:
        return InvalidArgument("uplink " + uplink_.name + ": " + e.what());
      default:
        return Unavailable("uplink " + uplink_.name + ": " + e.what());
    }
  }
  const uint64_t handle = next_handle_++;
  pending_[handle] = Pending{std::move(token), clock_.Steady()};
  return PublishHandle{handle};
}

size_t MqttTransport::Completions(std::vector<Completion>* out) {
  const auto now = clock_.Steady();
  size_t n = 0;
  for (auto it = pending_.begin(); it != pending_.end();) {
    const mqtt::delivery_token& tok = *it->second.token;
    if (!tok.is_complete()) {
      if (now - it->second.sent_at > kAckTimeout) {
        LoseLink("no PUBACK within 60 s");
        return n;  // pending_ was cleared
      }
      ++it;
      continue;
    }
    const int rc = tok.get_return_code();
    const int reason = static_cast<int>(tok.get_reason_code());
    const PublishVerdict v = ClassifyPublish(rc, reason);
    if (rc != 0 && reason < 0x80) {
      // No PUBACK: the connection is gone (or going). Not a completion: the engine re-sends all in flight.
      LoseLink("a publish failed without a PUBACK");
      return n;
    }
    out->push_back(Completion{PublishHandle{it->first}, v});
    ++n;
    it = pending_.erase(it);
  }
  return n;
}

void MqttTransport::LoseLink(const char* why) {
  if (state_ == LinkState::kUp) FERRY_LOG_WARN("uplink %s: %s; reconnecting", uplink_.name.c_str(), why);
  Disconnect();
}

void MqttTransport::Disconnect() {
  pending_.clear();
  if (!client_) return;
  try {
    client_->disconnect(0);
  } catch (const mqtt::exception&) {
  }
  state_ = LinkState::kDown;
}

void MqttTransport::Close(std::chrono::milliseconds wait) {
  pending_.clear();
  if (!client_) return;
  try {
    if (client_->is_connected()) client_->disconnect(wait)->wait_for(std::chrono::seconds(2));
  } catch (const mqtt::exception&) {
  }
  state_ = LinkState::kDown;
}

}  // namespace ferry
