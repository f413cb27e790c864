// ferry/downlink.h: a central table mirrored into a local table stream ([[downlink]], docs/replication.md).
//
// Two sources, one contract: every row the source delivers is appended to the table stream (subject = the row's
// key, payload = its value, an empty payload = a tombstone) together with the downlink's own state (its
// position), in one writer Submit, so in one LMDB transaction; a row that cannot be one (no key, a key the
// table's index cannot hold, too large, refused by the log) is skipped and counted, never retried for ever.
//
//  - kafka (downlink_kafka.cc): a consumer without a consumer group reads every partition from the positions kept
//    in the log ("downlink.<name>.<topic>.<partition>" = the next offset), written with the rows they cover.
//  - mqtt (downlink_mqtt.cc): the retained messages under a topic filter, through a persistent session. A first
//    sync (and any sync after the broker lost the session, or after ferryd did not stop cleanly) subscribes
//    afresh, takes the retained messages as the full table, and deletes the rows the centre no longer has;
//    afterwards the session queues the changes while the link is down, so a resync fetches only them.
//
// Threads: Start and Stop from the daemon's thread; each downlink works on a thread of its own (the MQTT one
// also on Paho's) and talks to the log only through the group-commit writer and short read transactions.
#pragma once

#include <future>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/clock.h"
#include "ferry/config.h"
#include "ferry/error.h"
#include "ferry/event_log.h"
#include "ferry/group_commit.h"
#include "ferry/metrics.h"

namespace ferry {

// The state key prefix under which a downlink keeps its positions, and the key of one Kafka partition's position.
std::string DownlinkStatePrefix(const std::string& downlink);
std::string DownlinkPositionKey(const std::string& downlink, const std::string& topic, int32_t partition);
// MQTT: the key of the sync state ("syncing", "open" while ferryd runs after a full sync, "clean" after a clean
// stop), and the row key of `topic` under `filter` (the levels from the first wildcard on; "" if it is not under it).
std::string DownlinkMqttStateKey(const std::string& downlink);
// A reset request (`ferryctl downlink reset`): while the key exists the downlink fetches the whole table again from
// the beginning (Kafka) or with a full sync (MQTT), deletes the rows the source no longer has, and then deletes
// the key in the transaction that completes the resync; a crash meanwhile starts the resync over.
std::string DownlinkResetKey(const std::string& downlink);
std::string DownlinkMqttRowKey(std::string_view filter, std::string_view topic);

class Downlink {
 public:
  // REQUIRES: config, downlink, log, writer, metrics and clock outlive the Downlink.
  static std::unique_ptr<Downlink> Make(const Config& config, const DownlinkConfig& downlink, EventLog& log,
                                        GroupCommitWriter& writer, MetricsRegistry& metrics, const Clock& clock);
  virtual ~Downlink() = default;
  Downlink(const Downlink&) = delete;
  Downlink& operator=(const Downlink&) = delete;

  // Creates the client (a malformed setting is an InvalidArgument naming it) and starts the downlink's thread;
  // the first connection happens there, with backoff.
  virtual Status Start() = 0;
  // Stops; what was fetched and not yet committed is fetched again next time.
  virtual void Stop() = 0;

  const std::string& name() const { return dl_.name; }

 protected:
  Downlink(const Config& config, const DownlinkConfig& downlink, EventLog& log, GroupCommitWriter& writer,
           MetricsRegistry& metrics, const Clock& clock);

  // The row event for `key` and `value` (nullopt: a deletion), or nullopt if it cannot be a row (counted under
  // its reason). Counts the fetched bytes.
  std::optional<Event> MakeRow(std::string_view key, std::optional<std::string_view> value, std::string id,
                               TimeNs time);
  // A Submit of SubmitRows, until Committed() is called on it.
  struct PendingRows {
    std::future<Status> done;
    size_t rows = 0;                                             // rows and tombstones handed in
    size_t deletes = 0;                                          // tombstones among them
    std::shared_ptr<std::vector<std::string>> refused;           // keys the log refused (written by the closure)
  };
  // Appends the rows and writes the state entries in one transaction. A row the log refuses as invalid is skipped
  // (counted once committed); any other failure fails the whole Submit.
  PendingRows SubmitRows(std::vector<Event> rows, std::vector<std::pair<std::string, std::string>> state,
                         std::vector<std::string> erase = {});
  // Ends a full resync: deletes (tombstones) the table's live rows whose keys are not in `seen` (the source no
  // longer has them), writing `state` and erasing `erase` in the same transaction. Logs a failure; on success
  // *deleted is the number of rows deleted.
  bool CommitResync(const std::set<std::string>& seen, std::vector<std::pair<std::string, std::string>> state,
                    std::vector<std::string> erase, size_t* deleted);
  // Whether a reset was requested (a short read; false on a read error, logged).
  bool ResetRequested();
  // Waits for `p`; on success counts its rows, deletions and refusals, on failure logs it (naming `what`).
  bool Committed(PendingRows& p, const char* what);

  const Config& config_;
  const DownlinkConfig& dl_;
  EventLog& log_;
  GroupCommitWriter& writer_;
  const Clock& clock_;

  Counter& records_;
  Counter& deletes_;
  Counter& bytes_;
  Counter& no_key_;
  Counter& bad_key_;
  Counter& too_large_;
  Counter& refused_;
  Gauge& lag_;
  Gauge& last_sync_;
  Gauge& link_up_;
  uint64_t next_tombstone_ = 0;
};

}  // namespace ferry
