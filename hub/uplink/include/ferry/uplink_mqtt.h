// ferry/uplink_mqtt.h: an uplink to a central MQTT broker -- the uplink engine (ferry/uplink_engine.h) driving
// the MQTT v5 transport (Paho MQTT C++, QoS 1), on a thread of its own.
//
// UplinkMqtt owns the two and the loop between them; every decision about cursors, order, priorities, the
// bandwidth cap, batching, replay and poison isolation is the engine's (see its header), every byte on the
// wire is the transport's. The loop sleeps until something can change what Step() would do: a commit of new
// records (GroupCommitWriter's announcement), a completion or link change (the transport's wakeup), a timer
// (UplinkEngine::NextWakeup: backoff, rate cap, batch delay, the once-a-second chores) or Stop(). It never
// polls the log.
//
// Per-event messages carry the CloudEvents attributes as MQTT v5 user properties (docs/wire.md). A string
// MQTT would refuse (invalid UTF-8, control characters; '+' and '#' in a topic) is percent-encoded first
// (MqttLegalString, MqttLegalTopic; docs/wire.md "Strings MQTT cannot carry").
//
// Threads: Start/Step/Stop on one thread (Run() loops Step on an own thread; do not call Step then).
// link_up, acked_events and name from any thread; inflight and cursor from the thread that drives Step.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "ferry/clock.h"
#include "ferry/config.h"
#include "ferry/event_log.h"
#include "ferry/group_commit.h"
#include "ferry/metrics.h"
#include "ferry/uplink_engine.h"
#include "ferry/uplink_transport.h"

namespace ferry {

class MqttTransport;

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

class UplinkMqtt {
 public:
  // REQUIRES: log and writer outlive the uplink; uplink.type == mqtt.
  UplinkMqtt(const Config& config, const UplinkConfig& uplink, EventLog& log, GroupCommitWriter& writer,
             MetricsRegistry& metrics, const Clock& clock);
  ~UplinkMqtt();
  UplinkMqtt(const UplinkMqtt&) = delete;
  UplinkMqtt& operator=(const UplinkMqtt&) = delete;

  // Loads the cursors (a stream never forwarded starts at its first record) and creates the client.
  // Errors: InvalidArgument (address, a stream that is not declared, unreadable TLS or HMAC key file),
  // NotFound (a stream missing from the log), IoError.
  Status Start();
  // One round of the engine. Never blocks on the network.
  void Step();
  // Starts / stops a thread that calls Step() until Stop(). Stop() also persists the cursors and disconnects.
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
  std::atomic<bool> wants_commits_{false};  // read by the writer's commit listener
  uint64_t commit_listener_ = 0;            // 0: none registered
  std::unique_ptr<MqttTransport> transport_;
  std::unique_ptr<UplinkEngine> engine_;
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace ferry
