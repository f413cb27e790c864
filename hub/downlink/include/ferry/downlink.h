// ferry/downlink.h: a central table mirrored into a local table stream ([[downlink]], docs/replication.md).
//
// Kafka: a consumer (librdkafka, no consumer group: every partition of `topic` is assigned by hand) reads the
// topic's records from the positions kept in the gateway's log; each batch of records is appended to the table
// stream (subject = the record's key, payload = its value, a null value = a tombstone) AND the positions it
// moves are written as state ("downlink.<name>.<topic>.<partition>" = the next offset), in one writer Submit,
// so in one LMDB transaction: after a crash the positions are never ahead of the rows, and nothing is applied
// twice out of order. A first sync (no positions) starts at the beginning of each partition: a compacted topic
// then delivers the whole table; after an outage only what came since the positions is fetched.
//
// Threads: Start and Stop from the daemon's thread; the consumer runs on a thread of its own and talks to the
// log only through the group-commit writer (and short read transactions at start).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ferry/clock.h"
#include "ferry/config.h"
#include "ferry/error.h"
#include "ferry/event_log.h"
#include "ferry/group_commit.h"
#include "ferry/metrics.h"

struct rd_kafka_s;

namespace ferry {

// The state key prefix under which a downlink keeps its positions, and the key of one partition's position.
std::string DownlinkStatePrefix(const std::string& downlink);
std::string DownlinkPositionKey(const std::string& downlink, const std::string& topic, int32_t partition);

class Downlink {
 public:
  // REQUIRES: config, downlink, log, writer, metrics and clock outlive the Downlink.
  Downlink(const Config& config, const DownlinkConfig& downlink, EventLog& log, GroupCommitWriter& writer,
           MetricsRegistry& metrics, const Clock& clock);
  ~Downlink();  // Stop()
  Downlink(const Downlink&) = delete;
  Downlink& operator=(const Downlink&) = delete;

  // Creates the consumer (librdkafka checks every property: an unknown or malformed kafka.properties entry is an
  // InvalidArgument naming it) and starts its thread; the first connection happens there, with backoff.
  Status Start();
  // Stops the thread; what was fetched and not yet committed is fetched again next time.
  void Stop();

  const std::string& name() const { return dl_.name; }

 private:
  struct Partition {
    int64_t next = -1;       // the next offset to write (from the log, then advanced by each commit); -1: none yet
    int64_t high = -1;       // the partition's end as last seen
    bool at_end = false;     // the last fetch reached the end
  };
  void Loop();
  // Reads the topic's partitions and the stored positions, and assigns them. False (logged once per episode) if
  // the source does not answer or the topic is unknown.
  bool Assign();
  // Appends `batch` and the positions it moves in one transaction; true once durable.
  bool Commit(std::vector<Event> batch, const std::map<int32_t, int64_t>& positions);
  void UpdateLag();
  void LinkDown(const std::string& why);

  const Config& config_;
  const DownlinkConfig& dl_;
  EventLog& log_;
  GroupCommitWriter& writer_;
  const Clock& clock_;
  rd_kafka_s* rk_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool assigned_ = false;
  bool down_reported_ = false;
  std::map<int32_t, Partition> partitions_;

  Counter& records_;
  Counter& deletes_;
  Counter& bytes_;
  Counter& no_key_;
  Counter& bad_key_;
  Gauge& lag_;
  Gauge& last_sync_;
  Gauge& link_up_;
};

}  // namespace ferry
