// ferry/uplink.h: an uplink to the centre -- the uplink engine (ferry/uplink_engine.h) driving one transport
// (ferry/uplink_transport.h) on a thread of its own: MQTT v5 (Paho MQTT C++, QoS 1; ferry/uplink_mqtt.h) or Kafka
// (librdkafka, idempotent producer; ferry/uplink_kafka.h), by the uplink's `type`.
//
// Uplink owns the two and the loop between them; every decision about cursors, order, priorities, the
// bandwidth cap, batching, replay and poison isolation is the engine's (see its header), every byte on the
// wire is the transport's. The loop sleeps until something can change what Step() would do: a commit of new
// records (GroupCommitWriter's announcement), a completion or link change (the transport's wakeup), a timer
// (UplinkEngine::NextWakeup: backoff, rate cap, batch delay, the once-a-second chores) or Stop(). It never
// polls the log.
//
// Threads: Start/Step/Stop on one thread (Run() loops Step on an own thread; do not call Step then).
// link_up, acked_events and name from any thread; inflight and cursor from the thread that drives Step.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "ferry/clock.h"
#include "ferry/config.h"
#include "ferry/event_log.h"
#include "ferry/group_commit.h"
#include "ferry/metrics.h"
#include "ferry/uplink_engine.h"
#include "ferry/uplink_transport.h"

namespace ferry {

// How long Stop() waits for the acknowledgements of what is in flight (a reload's pause in forwarding).
inline constexpr std::chrono::seconds kStopDrain{2};

class Uplink {
 public:
  // The transport by uplink.type: MQTT (Paho) or Kafka (librdkafka). REQUIRES: log and writer outlive the uplink.
  Uplink(const Config& config, const UplinkConfig& uplink, EventLog& log, GroupCommitWriter& writer,
             MetricsRegistry& metrics, const Clock& clock);
  ~Uplink();
  Uplink(const Uplink&) = delete;
  Uplink& operator=(const Uplink&) = delete;

  // Loads the cursors (a stream never forwarded starts at its first record) and creates the client.
  // Errors: InvalidArgument (address, a stream that is not declared, unreadable TLS or HMAC key file, a Kafka
  // property librdkafka refuses),
  // NotFound (a stream missing from the log), IoError.
  Status Start();
  // One round of the engine. Never blocks on the network.
  void Step();
  // Starts / stops a thread that calls Step() until Stop(). Stop() first lets what is in flight be acknowledged
  // (sending nothing new, for at most kStopDrain: a reload or a shutdown then re-sends nothing the centre has
  // acknowledged), then persists the cursors and disconnects.
  void Run();
  void Stop();

  bool link_up() const { return engine_->link_up(); }
  const std::string& name() const { return uplink_.name; }
  // Events acked by the broker since Start (for tests and the demo's status line).
  uint64_t acked_events() const { return engine_->acked_events(); }
  size_t inflight() const { return engine_->inflight(); }
  // The persisted-or-pending cursor of a stream (next seq to be acked contiguously).
  Seq cursor(const std::string& stream) const { return engine_->cursor(stream); }
  const UplinkEngine& engine() const { return *engine_; }

 private:
  void Wake();

  const Config config_;
  const UplinkConfig uplink_;
  GroupCommitWriter& writer_;
  const Clock& clock_;
  // Before the transport and the engine, so they are destroyed after them: Paho's callbacks wake the loop
  // until the transport's client is gone.
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  bool wake_ = false;                     // guarded by wake_mu_
  std::atomic<bool> stop_{false};
  std::atomic<bool> drain_{false};          // Stop(): finish what is in flight, then end the loop
  std::atomic<bool> wants_commits_{false};  // read by the writer's commit listener
  uint64_t commit_listener_ = 0;            // 0: none registered
  // The transport's own start and polite goodbye (not part of the engine's interface). Before transport_: its
  // initialiser sets them.
  std::function<Status()> create_;
  std::function<void(std::chrono::milliseconds)> close_;
  std::unique_ptr<UplinkTransport> transport_;
  std::unique_ptr<UplinkEngine> engine_;
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace ferry
