// mqtt_transport.h (internal to ferry_uplink): the MQTT v5 transport of an uplink, on Paho MQTT C++, QoS 1.
//
// What it adds to the UplinkTransport contract (ferry/uplink_transport.h):
//   - Clean start on every connection: nothing to resume, the log and the engine's cursors are the state.
//   - Strings MQTT must carry as UTF-8 (topic, user properties, content type) go through MqttLegalTopic /
//     MqttLegalString first, so a control character in a device id cannot make the broker drop the link.
//   - A publish that fails without a PUBACK means the connection is gone (QoS 1 cannot fail otherwise): it is
//     not reported as a completion, the link is reported down instead, and the engine re-sends everything
//     that was in flight. So is a publish with no PUBACK within kAckTimeout.
//   - PUBACK reason codes are classified by ClassifyPublish (ferry/uplink_mqtt.h), the one place.
//
// Threads: the UplinkTransport methods on the engine's thread. Paho's callbacks (connected, connection lost,
// connect failure, publish complete) only set atomics and call the wakeup.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "ferry/clock.h"
#include "ferry/config.h"
#include "ferry/uplink_transport.h"

namespace mqtt {
class async_client;
class delivery_token;
class iaction_listener;
}  // namespace mqtt

namespace ferry {

class MqttTransport final : public UplinkTransport {
 public:
  // REQUIRES: config, uplink and clock outlive the transport.
  MqttTransport(const Config& config, const UplinkConfig& uplink, const Clock& clock);
  // Destroys the Paho client first: its callbacks may run until then, and they touch our members.
  ~MqttTransport() override;
  MqttTransport(const MqttTransport&) = delete;
  MqttTransport& operator=(const MqttTransport&) = delete;

  // Creates the Paho client (no connection yet). Errors: InvalidArgument (an address Paho refuses).
  Status Create();

  void Connect() override;
  LinkState link_state() const override { return state_.load(); }
  uint64_t session() const override { return session_.load(); }
  Result<PublishHandle> Publish(OutboundUnit unit) override;
  size_t Completions(std::vector<Completion>* out) override;
  // Drops the connection at once (no wait for the broker).
  void Disconnect() override;
  void SetWakeup(std::function<void()> fn) override { wakeup_ = std::move(fn); }

  // A polite goodbye for shutdown: DISCONNECT, waiting up to `wait` for it to go out.
  void Close(std::chrono::milliseconds wait);

  // No PUBACK this long after a publish: the connection is considered broken.
  static constexpr std::chrono::seconds kAckTimeout{60};

 private:
  struct Pending {
    std::shared_ptr<mqtt::delivery_token> token;
    std::chrono::steady_clock::time_point sent_at;
  };
  void Wake() const {
    if (wakeup_) wakeup_();
  }
  void LoseLink(const char* why);  // REQUIRES: the engine's thread

  const Config& config_;
  const UplinkConfig& uplink_;
  const Clock& clock_;
  std::function<void()> wakeup_;
  std::atomic<LinkState> state_{LinkState::kDown};
  std::atomic<uint64_t> session_{0};
  std::atomic<bool> connect_failure_reported_{false};
  std::map<uint64_t, Pending> pending_;  // by handle; the engine's thread only
  uint64_t next_handle_ = 1;
  // Listeners Paho keeps raw pointers to: alive as long as the client (declared before it, destroyed after).
  std::unique_ptr<mqtt::iaction_listener> connect_listener_;
  std::unique_ptr<mqtt::iaction_listener> publish_listener_;
  std::unique_ptr<mqtt::async_client> client_;
};

}  // namespace ferry
