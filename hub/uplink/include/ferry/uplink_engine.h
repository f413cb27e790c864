// ferry/uplink_engine.h: the uplink scheduler. Reads streams from the log and decides what goes out next, in
// which order, how fast, and what an outcome means for the cursors; a transport (ferry/uplink_transport.h)
// does the sending. It never touches the network itself, so every rule below is unit-tested with a fake
// transport and a manual clock (tests/uplink/).
//
// At-least-once with stable ids: a record is sent with its CloudEvents id (device-supplied, or
// "<gateway>/<stream>/<seq>"), and the cursor of (uplink, stream) moves only over a contiguous prefix of
// acknowledged records. Completions may arrive in any order: acked ranges above the cursor are remembered,
// so nothing is sent twice while a session lasts. The cursor is persisted through the group-commit writer
// (no fsync of its own) once a second and when the link drops; after a crash or a lost link the engine sends
// again from the cursor and the centre drops the repeats by id.
//
// Each Step():
//   1. collects completions: Ok marks the range acked; Retry(after) holds sending for `after` and queues the
//      range to go again; Drop sets the unit aside (poison isolation, below);
//   2. follows the link: connects when due (exponential backoff with jitter); on a loss forgets what was in
//      flight and rewinds to the cursors;
//   3. persists moved cursors (once a second); applies `ferryctl replay` requests and updates the gauges
//      (once a second);
//   4. fills the in-flight window: streams by priority (highest first); per stream oldest_first, or
//      newest_first (after an outage the newest unit first, then new events as they arrive, while the
//      backlog is backfilled behind them); per event or in batches (docs/wire.md) of up to batch.max_events /
//      batch.max_bytes, a partial batch waiting up to batch.max_delay for company; within the uplink's
//      bytes-per-second cap.
//
// Sleeping instead of polling: NextWakeup() says when Step() next has timed work (backoff, the rate cap, a
// retry hold, a batch deadline, the once-a-second chores); new records are announced by the writer's
// commit count (GroupCommitWriter::commit_count), and completions by the transport's wakeup. The engine reads
// a stream again only after a commit: a partial batch is kept, with its read position, while it waits.
//
// Poison isolation. A unit is set aside -- the cursor moves past it, `ferry_uplink_poisoned_total` counts
// its events, the state key PoisonedStateKey(uplink, stream, first seq) records it in the log for ferryctl,
// and it is logged once -- when
//   - the transport reports Drop (the centre refused it for good), or Publish() refuses it (InvalidArgument);
//   - it has failed kUplinkPoisonStrikes times in a row, each failure a Retry verdict or a lost link while it
//     was the only unit in flight, sent less than kUplinkStrikeWindow before the loss -- and either a lost
//     link was among them, or the centre acknowledged other units meanwhile (so a centre that refuses
//     everything, e.g. an ACL problem, poisons nothing). After a loss with several units in flight, those that
//     overlap a unit in flight at the previous such loss too are probed: sent one at a time, oldest first,
//     until each is acknowledged or set aside, so a message that makes the broker drop the connection
//     (Mosquitto on a malformed UTF-8 string) is found within a bounded number of tries while the other
//     streams keep moving. The first loss only re-sends the window: a link that merely flaps keeps its full
//     window (probing after every loss made a satellite-like link drain one unit per round trip). An
//     acknowledgement clears a unit's strikes.
//
// Threads: Start, Step, Shutdown and the accessors on ONE thread (the owner's loop). link_up() and
// acked_events() may be read from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "ferry/clock.h"
#include "ferry/config.h"
#include "ferry/event_log.h"
#include "ferry/flow_control.h"
#include "ferry/group_commit.h"
#include "ferry/metrics.h"
#include "ferry/uplink_transport.h"
#include "ferry/wire.h"

namespace ferry {

// The cursor name an uplink keeps on each stream it forwards.
std::string UplinkCursorName(const std::string& uplink);
// The state key through which `ferryctl replay` asks a running uplink to rewind: the value is the decimal seq.
// The uplink applies it within a second (or at its next start), then deletes the key in the same transaction
// that moves its cursor; writing the cursor directly would be overwritten by the uplink's in-memory position.
std::string ReplayRequestKey(const std::string& uplink, const std::string& stream);
// The state key recording a unit the uplink set aside: "uplink/<uplink>/poisoned/<stream>/<first seq as 20
// decimal digits>" (zero-padded, so a prefix scan lists them in seq order). Value: "<first>-<last> <reason>".
std::string PoisonedStateKey(const std::string& uplink, const std::string& stream, Seq first);

// Poison isolation: consecutive failures of one unit before it is set aside, and how soon after a unit was
// sent a lost link counts against it (a broker that refuses a message drops the link within a round trip;
// an outage found by keep-alive takes longer and blames nobody).
inline constexpr unsigned kUplinkPoisonStrikes = 5;
inline constexpr std::chrono::seconds kUplinkStrikeWindow{10};

struct UplinkEngineStats {
  uint64_t log_reads = 0;        // EventLog::Read calls made to fill units (not the gauges' look-ups)
  uint64_t records_read = 0;     // records those calls returned
  uint64_t units_sent = 0;       // successful Publish calls
  uint64_t poisoned_units = 0;   // units set aside
  uint64_t link_losses = 0;      // sessions that ended with the engine still wanting them
};

class UplinkEngine {
 public:
  // REQUIRES: log, writer, metrics, clock and transport outlive the engine.
  UplinkEngine(const Config& config, const UplinkConfig& uplink, EventLog& log, GroupCommitWriter& writer,
               MetricsRegistry& metrics, const Clock& clock, UplinkTransport& transport);
  ~UplinkEngine();
  UplinkEngine(const UplinkEngine&) = delete;
  UplinkEngine& operator=(const UplinkEngine&) = delete;

  // Loads the cursors (a stream never forwarded starts at its first record) and the batch encoder.
  // Errors: InvalidArgument (a stream that is not declared, unreadable or empty hmac_key_file), NotFound (a
  // declared stream missing from the log), IoError.
  Status Start();
  // One round, as described above. Never blocks (the transport's calls do not).
  void Step();
  // The steady time (by the injected clock) at which Step() next has timed work, if nothing wakes it before.
  SteadyTime NextWakeup() const;
  // True if a new commit could let Step() send something now (linked, room in the window, not held back):
  // the owner's loop needs to wake for commits only then.
  bool wants_commits() const;
  // Before Shutdown: Step() sends nothing new from now on, only collects the completions of what is in flight,
  // so the cursors persisted at Shutdown cover what the centre acknowledged meanwhile. Without it a reload or
  // a stop re-sends the whole in-flight window (the SIGHUP fault test counted ~100 duplicates per reload).
  void Drain();
  // Nothing is in flight any more, or the link is down (nothing more will be acknowledged).
  bool drained() const;
  // Persists the cursors now (rides in the next group commit). Call before destroying the engine.
  void Shutdown();

  bool link_up() const { return link_up_.load(); }
  uint64_t acked_events() const { return acked_events_.load(); }
  size_t inflight() const { return inflight_.size(); }
  // The next seq to be acked contiguously on `stream` (Seq{} for a stream this uplink does not forward).
  Seq cursor(const std::string& stream) const;
  const UplinkEngineStats& stats() const { return stats_; }
  const std::string& name() const { return uplink_.name; }

 private:
  struct ReadRecord {
    StoredRecord record;
    size_t payload_bytes;  // kept: the payload may have been moved out already
  };
  // Records read ahead of sending, answering for the positions from `from` on. Kept across Steps, so a
  // partial batch waiting for company is not read again, and per-event mode reads many records per read
  // transaction.
  struct ReadAhead {
    Seq from;                         // the position these records answer for (the first may be later: gaps)
    Seq next;                         // where the next read continues
    std::deque<ReadRecord> records;   // seq ascending, all >= from and < next
    size_t bytes = 0;                 // payload bytes in `records`
    bool bytes_full = false;          // the last read stopped at the byte limit, not at the end
    uint64_t at_end_commit = UINT64_MAX;  // writer commit_count when a read last hit the end; MAX: unknown
  };
  struct StreamState {
    std::string name;
    int64_t priority = 0;
    Seq cursor;                          // every seq below is acked
    Seq persisted;                       // last cursor handed to the writer
    std::map<uint64_t, uint64_t> acked;  // acked [first, last] ranges above the cursor
    std::map<uint64_t, uint64_t> retry;  // [first, last] ranges to send again (Retry verdicts)
    Seq next_backfill;                   // next seq to consider on the old side
    Seq live_start;                      // newest_first: seqs >= this are "live" (0: not in use)
    Seq next_live;
    ReadAhead backfill_ahead;
    ReadAhead live_ahead;
    SteadyTime batch_deadline{};         // a partial batch waits until then ({}: none waiting)
    Counter* sent = nullptr;
    Counter* acked_total = nullptr;
    Counter* poisoned = nullptr;
    Gauge* backlog = nullptr;
    Gauge* oldest_age = nullptr;
    std::string replay_applied;  // the request value already applied, until its key is gone
  };
  struct Inflight {
    size_t stream;
    uint64_t first, last;  // seq range covered (gaps inside were already gone from the log)
    uint64_t events;
    size_t bytes;
    SteadyTime sent_at;
  };
  using UnitKey = std::pair<size_t, uint64_t>;  // (stream index, first seq)
  // Where a unit's records come from and whether a send position moves after it.
  enum class Side { kBackfill, kLive, kFixed };
  enum class SendResult {
    kSent,     // a unit is in flight
    kSkipped,  // no unit, but progress (records gone, damaged or set aside): look again
    kNothing,  // nothing to send from here now
    kWaiting,  // a partial batch waits for company
    kBlocked,  // the rate cap, back-pressure or a lost link: stop filling for now
  };
  enum class FillResult { kOk, kError, kSkippedDamage };

  // uplink_engine.cc: the link, completions, cursors, poison isolation, chores.
  void FollowLink(SteadyTime now);
  void OnLinkUp();
  void OnLinkLost(SteadyTime now);
  void CollectCompletions(SteadyTime now);
  void MarkAcked(StreamState& s, uint64_t first, uint64_t last);
  void Strike(const Inflight& unit, bool link_lost, const std::string& reason);
  void Poison(size_t stream, uint64_t first, uint64_t last, uint64_t events, const std::string& reason);
  void PersistCursors(bool force);
  void ResetSending();
  void UpdateGauges();
  void ApplyReplayRequests();
  Counter& DroppedCounter(const StreamState& s, const std::string& reason);

  // uplink_drain.cc: filling the window.
  bool SendOne(SteadyTime now);  // true: made progress, call again
  SendResult SendFrom(size_t index, Seq from, Seq limit, Side side, SteadyTime now, uint64_t* sent_last = nullptr);
  // Makes `a` hold at least `need` records from `from` (below `limit` if non-zero) if the log has them,
  // reading up to `ask` -- but only if something was committed since a read last found the end.
  FillResult Fill(StreamState& s, ReadAhead& a, Seq from, size_t need, size_t ask, Seq limit, size_t max_bytes);
  static void Consume(ReadAhead& a, size_t n);
  Seq SkipAcked(const StreamState& s, Seq from) const;
  size_t Window() const;
  // The uplink's topic template expanded; `origin`: the MQTT topic the event arrived on ("" for batches).
  std::string TopicFor(const StreamState& s, const std::string& subject, const std::string& origin) const;
  WireEvent ToWire(const StreamState& s, StoredRecord&& r) const;

  const Config config_;
  const UplinkConfig uplink_;
  EventLog& log_;
  GroupCommitWriter& writer_;
  MetricsRegistry& metrics_;
  const Clock& clock_;
  UplinkTransport& transport_;
  std::string cursor_name_;
  std::vector<StreamState> streams_;  // sorted by priority, highest first
  std::unique_ptr<BatchEncoder> encoder_;
  Backoff backoff_;
  RateLimiter rate_;
  std::map<PublishHandle, Inflight> inflight_;
  struct Strikes {
    unsigned failures = 0;          // in a row, since the unit was last acknowledged
    uint64_t acked_at_first = 0;    // acked_units_ at the first of them
    bool link_lost = false;         // one of them was a lost link with the unit alone in flight
  };
  std::map<UnitKey, Strikes> strikes_;  // units that failed, until acknowledged or set aside
  std::set<UnitKey> suspects_;            // in flight at two losses in a row: probed one at a time
  struct LostUnit {
    size_t stream;
    uint64_t first, last;
  };
  std::vector<LostUnit> lost_with_;       // in flight at the last loss with several units in flight
  uint64_t acked_units_ = 0;
  bool draining_ = false;  // Drain(): no new sends
  bool started_ = false;
  bool up_ = false;           // the link as last seen by Step()
  uint64_t session_ = 0;      // transport session the engine is sending on
  bool connecting_ = false;   // a Connect() is under way
  bool busy_ = false;         // the transport refused with kBusy: wait for a completion
  SteadyTime next_connect_{};
  SteadyTime last_persist_{};
  SteadyTime last_gauges_{};
  SteadyTime rate_hold_until_{};
  SteadyTime retry_hold_until_{};
  size_t read_since_release_ = 0;  // record bytes read since the last ReleaseMappedPages()
  std::atomic<bool> link_up_{false};
  std::atomic<uint64_t> acked_events_{0};
  UplinkEngineStats stats_;

  Gauge* link_gauge_;
  Gauge* inflight_gauge_;
  Counter* bytes_total_;
  Counter* retries_;
  Counter* reconnects_;
};

}  // namespace ferry
