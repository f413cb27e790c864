// ferry/kafka_feed.h: the centre reading what a Kafka uplink produced. A librdkafka consumer on a topic that
// turns each record back into the CentralMessage an MQTT uplink's message gives (docs/wire.md "Kafka"): the
// ce_<name> headers become the CloudEvents attributes (the MQTT user properties), the content-type header the
// content type, the value the payload. A CentralReceiver (ferry/receiver.h) then extracts, verifies batches,
// de-duplicates and counts exactly as for MQTT.
//
// Two ways to read: with a consumer group (offsets committed by librdkafka, partitions shared between the
// group's members: ferry-receive --kafka) or, with an empty group, every partition of the topic from its
// beginning (the tests: no rebalance to wait for).
//
// Threads: Start and Stop from one control thread. Records are consumed on a thread of the feed's own, which
// calls CentralReceiver::Receive; the counters are safe from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "ferry/error.h"
#include "ferry/receiver.h"

typedef struct rd_kafka_s rd_kafka_t;

namespace ferry {

// One record's headers in order; the result's views point into `topic`, `payload` and `headers`, which must
// outlive it. Headers other than ce_* and content-type are ignored.
CentralMessage KafkaRecordToMessage(std::string_view topic, std::string_view payload,
                                    const std::vector<std::pair<std::string, std::string>>& headers,
                                    std::string* content_type);

struct KafkaFeedOptions {
  std::string bootstrap;  // host:port[,host:port...]
  std::string topic;
  std::string group;      // consumer group; empty: every partition from the beginning, no group
  std::string client_id = "ferry-receive";
  std::function<void(const std::string& text)> warn;  // consumer errors (on the feed's thread)
};

class KafkaFeed {
 public:
  // REQUIRES: receiver outlives the feed.
  KafkaFeed(CentralReceiver& receiver, KafkaFeedOptions options);
  ~KafkaFeed();  // Stop()
  KafkaFeed(const KafkaFeed&) = delete;
  KafkaFeed& operator=(const KafkaFeed&) = delete;

  // Creates the consumer, subscribes (group) or assigns every partition (no group: the topic must exist; waits
  // up to 10 s for its metadata) and starts consuming. Errors: kInvalidArgument (a property librdkafka
  // refuses), kUnavailable (no metadata for the topic).
  Status Start();
  void Stop();
  uint64_t records() const { return records_.load(); }

 private:
  void Loop();

  CentralReceiver& receiver_;
  const KafkaFeedOptions options_;
  rd_kafka_t* rk_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> records_{0};
};

}  // namespace ferry
