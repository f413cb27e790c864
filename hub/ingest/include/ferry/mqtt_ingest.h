// ferry/mqtt_ingest.h: the subscription to the gateway's local broker (Paho MQTT C++, MQTT v5, QoS 1).
//
// A persistent session (clean start off, session expiry set) so the broker queues QoS 1 messages while ferryd
// is away; every message goes through the IngestRouter and into the IngestSink. Reconnects use our own
// exponential backoff with jitter (Paho's automatic reconnect has no jitter) and resubscribe every time.
//
// Acknowledgement and the loss window: Paho C sends the QoS 1 PUBACK when it reads the PUBLISH, before the
// message callback runs, and it reads the next packet only after the callback returns. In `sync` durability
// the callback returns only after the event is committed, so at most the one message inside the callback has
// been acknowledged but is not yet durable; in `batch` mode, up to one commit interval is. See docs/config.md
// (ingest.durability) and docs/guarantees.md.
//
// Threads: Start/Step/Stop from one control thread; the message callback runs on Paho's thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "ferry/clock.h"
#include "ferry/config.h"
#include "ferry/crash_guard.h"
#include "ferry/ingest_accounting.h"
#include "ferry/error.h"
#include "ferry/flow_control.h"
#include "ferry/ingest_router.h"
#include "ferry/metrics.h"
#include "ferry/record.h"

namespace mqtt {
class async_client;
class iaction_listener;
}

namespace ferry {

// Where routed events go. Implemented by the daemon on top of the group-commit writer.
class IngestSink {
 public:
  virtual ~IngestSink() = default;
  // Appends `event` to `stream`. With wait_durable, returns only once the commit holding it is durable.
  // Errors: Full (the stream's reject_new policy refused it), IoError. Thread: Paho's callback thread.
  virtual Status Append(const std::string& stream, Event event, bool wait_durable) = 0;
  // Appends `event` to `stream` and calls `done` on the writer thread once the commit holding it returned: a
  // Seq (durable) or the error (Full: budget or reject_new; IoError with the errno's words). `done` must be
  // short and must not call back into the sink. Thread: any.
  virtual void AppendThen(const std::string& stream, Event event, std::function<void(const Result<Seq>&)> done) = 0;
  // Nothing more will arrive until what was appended is committed (every sending device's window is full of
  // events waiting for their acknowledgement): commit without lingering. A hint; Thread: any.
  virtual void CommitSoon() {}
};

class MqttIngest {
 public:
  MqttIngest(const Config& config, IngestRouter router, IngestSink& sink, MetricsRegistry& metrics,
             const Clock& clock);
  ~MqttIngest();
  MqttIngest(const MqttIngest&) = delete;
  MqttIngest& operator=(const MqttIngest&) = delete;

  // Creates the client; the first connection attempt happens in the next Step(). Errors: InvalidArgument
  // (the broker address or TLS files are unusable).
  Status Start();
  // Starts a connection attempt when disconnected and the backoff delay has passed. Cheap; call often.
  void Step();
  // Disconnects (waiting up to a second for Paho). Messages already handed to the sink stay there.
  void Stop();

  // SIGHUP: swaps in a router built from the new configuration (payload limit, dedupe window; seeded by the
  // caller) and the new reconnect backoff bounds. Safe while messages arrive.
  void Reconfigure(IngestRouter router, const BackoffConfig& backoff);

  // Poison messages (ferry/crash_guard.h): Paho's receive thread uses `slot`. REQUIRES: before Start().
  void SetCrashGuard(CrashGuard* guard, size_t slot) {
    guard_ = guard;
    guard_slot_ = slot;
  }

  // True once connected and every route's filter is subscribed.
  bool connected() const { return connected_.load() && link_up_->Value() == 1; }

 private:
  void OnMessage(const void* msg);  // mqtt::const_message_ptr, kept out of this header
  void OnConnected();
  void OnConnectionLost(const std::string& cause);

  Config config_;
  IngestRouter router_;
  IngestSink& sink_;
  MetricsRegistry& metrics_;
  const Clock& clock_;
  Backoff backoff_;
  std::unique_ptr<mqtt::async_client> client_;
  std::unique_ptr<mqtt::iaction_listener> connect_listener_;  // Paho keeps a raw pointer during a connect
  std::unique_ptr<mqtt::iaction_listener> subscribe_listener_;
  std::atomic<bool> connected_{false};
  std::atomic<bool> connecting_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> lost_subscription_{false};
  std::mutex mu_;              // guards next_attempt_, router_, backoff_ (Paho's thread vs the control thread)
  SteadyTime next_attempt_{};

  CrashGuard* guard_ = nullptr;
  size_t guard_slot_ = 0;
  bool guard_bound_ = false;  // Paho's thread only
  IngestAccounting accounting_{metrics_, "ingest"};  // Paho's thread only
  Counter* messages_;
  Counter* reconnects_;
  Gauge* link_up_;
};

}  // namespace ferry
