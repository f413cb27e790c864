// downlink_kafka.h (internal): a Kafka topic mirrored into a table stream (see ferry/downlink.h).
//
// A consumer (librdkafka, no consumer group: every partition of `topic` is assigned by hand) reads the topic's
// records from the positions kept in the gateway's log; each batch of records is appended to the table stream
// (subject = the record's key, payload = its value, a null value = a tombstone) AND the positions it moves are
// written as state ("downlink.<name>.<topic>.<partition>" = the next offset), in one writer Submit, so in one
// LMDB transaction: after a crash the positions are never ahead of the rows, and nothing is applied twice out of
// order. A first sync (no positions) starts at the beginning of each partition: a compacted topic then delivers
// the whole table; after an outage only what came since the positions is fetched.
#pragma once

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "ferry/downlink.h"

struct rd_kafka_s;

namespace ferry {

class KafkaDownlink final : public Downlink {
 public:
  KafkaDownlink(const Config& config, const DownlinkConfig& downlink, EventLog& log, GroupCommitWriter& writer,
                MetricsRegistry& metrics, const Clock& clock)
      : Downlink(config, downlink, log, writer, metrics, clock) {}
  ~KafkaDownlink() override;  // Stop()

  // librdkafka checks every property: an unknown or malformed kafka.properties entry is an InvalidArgument.
  Status Start() override;
  void Stop() override;

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
  // Updates the lag and last-sync gauges; true when every partition is at its end.
  bool UpdateLag();
  // The table holds the whole topic again: deletes the rows the reset did not see, and the reset request.
  bool FinishReset();
  void LinkDown(const std::string& why);

  rd_kafka_s* rk_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool assigned_ = false;
  bool down_reported_ = false;
  std::map<int32_t, Partition> partitions_;
  bool resetting_ = false;        // a reset is under way: from the beginning, keys seen in seen_
  std::set<std::string> seen_;
};

}  // namespace ferry
