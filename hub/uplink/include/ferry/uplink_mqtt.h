// ferry/uplink_mqtt.h: forwards streams from the log to a central MQTT broker (Paho MQTT C++, MQTT v5, QoS 1).
//
// At-least-once with stable ids: a record is sent with its CloudEvents id (device-supplied, or
// "<gateway>/<stream>/<seq>"), and the uplink's cursor on the stream moves only past records whose PUBACK
// came back; the cursor is persisted through the group-commit writer (no fsync of its own). After a crash or
// a lost connection the uplink re-sends from the cursor: the centre drops the repeats by id.
//
// Each Step(): connect when due (backoff with jitter); collect PUBACKs and classify them in one place
// (ClassifyPublish: Ok | Retry(after) | Drop(reason)); persist moved cursors; then fill the in-flight window
// from the streams by priority (highest first), per event or in zstd batches (docs/wire.md), within the
// bytes-per-second cap. Drain order: oldest_first, or newest_first, which after an outage sends the newest
// unit first, then new events as they arrive, and backfills the backlog in the remaining window; acked ranges
// ahead of the cursor are remembered so nothing is sent twice while connected.
//
// Threads: Start/Step/Stop on one thread (Run() loops Step on an own thread). Paho's callbacks only set flags.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ferry/clock.h"
#include "ferry/config.h"
#include "ferry/event_log.h"
#include "ferry/flow_control.h"
#include "ferry/group_commit.h"
#include "ferry/metrics.h"
#include "ferry/wire.h"

namespace mqtt {
class async_client;
class delivery_token;
class iaction_listener;
}  // namespace mqtt

namespace ferry {

// What to do after a publish completed (STYLE habit 11: classified in one place).
struct PublishVerdict {
  enum Kind { kOk, kRetry, kDrop } kind = kOk;
  std::chrono::nanoseconds retry_after{0};
  std::string reason;  // for kRetry / kDrop: a short label for metrics and logs
};
// `token_rc`: Paho's token return code (0 = the PUBACK arrived); `reason_code`: the MQTT v5 PUBACK reason.
PublishVerdict ClassifyPublish(int token_rc, int reason_code);

// The cursor name an uplink keeps on each stream it forwards.
std::string UplinkCursorName(const std::string& uplink);
// The state key through which `ferryctl replay` asks a running uplink to rewind: the value is the decimal seq.
// The uplink applies it within a second (or at its next start), then deletes the key in the same transaction
// that moves its cursor; writing the cursor directly would be overwritten by the uplink's in-memory position.
std::string ReplayRequestKey(const std::string& uplink, const std::string& stream);

class UplinkMqtt {
 public:
  // REQUIRES: log and writer outlive the uplink; uplink.type == mqtt.
  UplinkMqtt(const Config& config, const UplinkConfig& uplink, EventLog& log, GroupCommitWriter& writer,
             MetricsRegistry& metrics, const Clock& clock);
  ~UplinkMqtt();
  UplinkMqtt(const UplinkMqtt&) = delete;
  UplinkMqtt& operator=(const UplinkMqtt&) = delete;

  // Loads the cursors (a stream never forwarded starts at its first record) and creates the client.
  // Errors: InvalidArgument (address, a stream that does not exist, unreadable HMAC key file), IoError.
  Status Start();
  // One round, as described above. Never blocks on the network.
  void Step();
  // Starts / stops a thread that calls Step() until Stop(). Stop() also disconnects.
  void Run();
  void Stop();

  bool link_up() const { return link_up_.load(); }
  const std::string& name() const { return uplink_.name; }
  // Events acked by the broker since Start (for tests and the demo's status line).
  uint64_t acked_events() const { return acked_events_.load(); }
  size_t inflight() const { return inflight_.size(); }
  // The persisted-or-pending cursor of a stream (next seq to be acked contiguously).
  Seq cursor(const std::string& stream) const;

 private:
  struct StreamState {
    std::string name;
    int64_t priority = 0;
    Seq cursor;                          // every seq below is acked
    Seq persisted;                       // last cursor handed to the writer
    std::map<uint64_t, uint64_t> acked;  // acked [first, last] ranges above the cursor
    Seq next_backfill;                   // next seq to consider on the old side
    Seq live_start;                      // newest_first: seqs >= this are "live" (0: not in use)
    Seq next_live;
    Counter* sent = nullptr;
    Counter* acked_total = nullptr;
    Gauge* backlog = nullptr;
    Gauge* oldest_age = nullptr;
    std::string replay_applied;  // the request value already applied, until its key is gone
  };
  struct Unit {
    size_t stream;
    uint64_t first, last;  // seq range covered (gaps inside were already gone from the log)
    uint64_t events;
    size_t bytes;
    std::shared_ptr<mqtt::delivery_token> token;
    SteadyTime sent_at;
  };

  void Connect();
  void OnConnectionLost();  // REQUIRES: Step()'s thread
  void CollectAcks();
  void MarkAcked(StreamState& s, uint64_t first, uint64_t last);
  void PersistCursors(bool force);
  bool SendOne();                                      // false: nothing could be sent now
  bool SendFrom(StreamState& s, size_t index, Seq from, Seq limit, bool live);
  Seq SkipAcked(const StreamState& s, Seq from) const;
  void ResetSending();
  void UpdateGauges();
  void ApplyReplayRequests();
  std::string TopicFor(const StreamState& s, const std::string& subject) const;
  WireEvent ToWire(const StreamState& s, StoredRecord&& r) const;

  const Config config_;
  const UplinkConfig uplink_;
  EventLog& log_;
  GroupCommitWriter& writer_;
  MetricsRegistry& metrics_;
  const Clock& clock_;
  std::string cursor_name_;
  std::vector<StreamState> streams_;  // sorted by priority, highest first
  std::unique_ptr<mqtt::async_client> client_;
  std::unique_ptr<mqtt::iaction_listener> connect_listener_;
  std::unique_ptr<BatchEncoder> encoder_;
  Backoff backoff_;
  RateLimiter rate_;
  std::deque<Unit> inflight_;
  SteadyTime next_connect_{};
  SteadyTime last_persist_{};
  SteadyTime last_gauges_{};
  SteadyTime hold_until_{};  // rate cap / batching delay
  size_t read_since_release_ = 0;  // record bytes read since the last ReleaseMappedPages()
  std::atomic<bool> link_up_{false};
  bool was_up_ = false;  // link_up_ as last seen by Step(): detects a fresh connection
  std::atomic<bool> connecting_{false};
  std::atomic<bool> connect_failure_reported_{false};
  std::atomic<bool> lost_{false};
  std::atomic<uint64_t> acked_events_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;

  Gauge* link_gauge_;
  Gauge* inflight_gauge_;
  Counter* bytes_total_;
  Counter* retries_;
  Counter* reconnects_;
};

}  // namespace ferry
