// ferry/receiver.h: the central side's consumer of what Ferry uplinks forward. An MQTT v5 subscriber on the
// central broker that takes the events out of each message, drops repeated ids (delivery is at least once:
// docs/guarantees.md) and counts what it got. `ferry-receive`, the integration tests and bench/compare use it.
//
// A message is read as one of three kinds; MessageKinds selects which ones a receiver accepts:
//   kCloudEvent  per-event mode (docs/wire.md): the CloudEvents attributes as MQTT v5 user properties, the
//                payload as the data. Recognised by its `specversion` user property.
//   kBatch       batched mode: a FRYB v1 payload with Content Type application/vnd.ferry.batch.v1, verified
//                and decoded by BatchDecoder; one event per event in the batch.
//   kDeviceJson  a device's JSON payload relayed as it is (a Mosquitto bridge): the event id is its top-level
//                "id" member (a string), as an ingest route's id_json_field reads it.
// A message of a kind the receiver does not accept, or that does not parse as its kind, is "bad": counted,
// reported through CentralReceiverOptions::warn, and adds no event.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ferry/error.h"
#include "ferry/wire.h"

namespace mqtt {
class async_client;
class message;
}

namespace ferry {

// One MQTT message as the central broker delivered it (independent of Paho, so tests can build one). The
// views must outlive the call they are passed to.
struct CentralMessage {
  std::string_view topic;
  std::string_view payload;
  std::string_view content_type;                                     // MQTT v5 Content Type, may be empty
  std::vector<std::pair<std::string, std::string>> user_properties;  // MQTT v5, in order
};

enum class MessageKind { kCloudEvent, kBatch, kDeviceJson };
const char* MessageKindName(MessageKind kind);

// The kinds a receiver accepts. The default reads what ferryd's uplinks send.
struct MessageKinds {
  bool cloud_event = true;
  bool batch = true;
  bool device_json = false;  // bridged device payloads (bench/compare's Mosquitto bridges)

  bool accepts(MessageKind kind) const;
};

// Takes the events out of a message. Not thread-safe (it owns a BatchDecoder): one per thread.
class EventExtractor {
 public:
  // `hmac_key`: BatchDecoder's key policy (empty: only SHA-256 batches; else only batches signed with it).
  explicit EventExtractor(MessageKinds kinds = {}, std::string hmac_key = {});

  // The kind `message` is read as: kBatch by its content type; kCloudEvent when it has a `specversion` user
  // property; otherwise kDeviceJson if that kind is accepted, else kCloudEvent (which then fails to parse).
  MessageKind Classify(const CentralMessage& message) const;

  // The events of `message` in order: one for kCloudEvent and kDeviceJson, the batch's events for kBatch. Of a
  // kDeviceJson event only `id` and `payload` are set.
  // Errors:
  //   kInvalidArgument  the kind is not accepted; a batch refused by the key policy, or of a newer version
  //   kCorruption       a per-event message without the required attributes or with a malformed one; a damaged
  //                     batch (BatchDecoder::Decode); a device payload that is not a JSON object with an "id"
  Result<std::vector<WireEvent>> Extract(const CentralMessage& message);

 private:
  MessageKinds kinds_;
  BatchDecoder decoder_;
};

struct CentralReceiverOptions {
  std::string client_id = "ferry-receive";  // of the persistent session
  MessageKinds kinds;
  std::string hmac_key;  // see EventExtractor
  // Remember a 64-bit hash (FNV-1a) of each id instead of the id: 8 bytes an id, for benchmarks with millions
  // of ids. A collision (unlikely below billions of ids) would count a new id as a duplicate.
  bool hash_ids = false;
  bool record_arrivals = false;  // Arrivals(): every event's (topic, ferryseq), duplicates included

  // The MQTT session: clean start off, so the broker queues for us while we are away.
  std::chrono::seconds session_expiry{3600};
  std::chrono::seconds connect_timeout{5};  // also how long Connect waits for the CONNACK and the SUBACK
  // Paho reconnects by itself (100 ms to 2 s apart) and every connection subscribes again; Connect returns
  // without waiting for the broker (connected() tells).
  bool auto_reconnect = false;

  // Called on Paho's thread for every new id (not for duplicates), in arrival order, under the receiver's
  // lock: keep it short and do not call back into the receiver.
  std::function<void(std::string_view id)> on_new_id;
  // Called for each bad message ("TOPIC: why") and, with auto_reconnect, a failed subscribe.
  std::function<void(const std::string& text)> warn;
};

// Threads: Connect, Disconnect and connected() from one control thread. Messages are received on Paho's
// thread (or by whoever calls Receive, one thread at a time); the counters and queries are safe from any thread.
class CentralReceiver {
 public:
  explicit CentralReceiver(CentralReceiverOptions options = {});
  ~CentralReceiver();  // Disconnect()
  CentralReceiver(const CentralReceiver&) = delete;
  CentralReceiver& operator=(const CentralReceiver&) = delete;

  // Opens the persistent session on `uri` (replacing any earlier one) and subscribes to `filter` at QoS 1.
  // Without auto_reconnect, waits up to connect_timeout for the connection and again for the subscription.
  // Errors: kUnavailable with the broker's or Paho's reason (not connected, subscription not confirmed, or with
  // auto_reconnect a URI Paho refuses).
  Status Connect(const std::string& uri, const std::string& filter = "ferry/#");
  // Disconnects (waiting up to 2 s) and drops the session's client. The counts and ids stay.
  void Disconnect();
  bool connected() const;

  // Reads one message as it would have arrived from the broker: extracts, deduplicates and counts.
  void Receive(const CentralMessage& message);

  uint64_t messages() const { return messages_.load(); }
  uint64_t events() const { return events_.load(); }  // unique + duplicates
  uint64_t unique() const { return unique_.load(); }
  uint64_t duplicates() const { return duplicates_.load(); }
  uint64_t bad() const { return bad_.load(); }
  bool Has(std::string_view id) const;

  // Keep the first copy of every new event from now on, for ById().
  void KeepEvents(bool keep) { keep_events_ = keep; }
  std::unordered_map<std::string, WireEvent> ById() const;
  // Requires options.record_arrivals (else empty). A kDeviceJson event has seq 0.
  std::vector<std::pair<std::string, uint64_t>> Arrivals() const;

 private:
  void OnPahoMessage(const mqtt::message& m);
  void Add(std::string_view topic, WireEvent&& event);

  const CentralReceiverOptions options_;
  EventExtractor extractor_;  // the receiving thread's only
  std::unique_ptr<mqtt::async_client> client_;
  std::string filter_;
  mutable std::mutex mu_;  // guards the sets, by_id_, arrivals_ and on_new_id's order
  std::unordered_set<std::string> ids_;
  std::unordered_set<uint64_t> id_hashes_;  // instead of ids_ with hash_ids
  std::unordered_map<std::string, WireEvent> by_id_;
  std::vector<std::pair<std::string, uint64_t>> arrivals_;
  std::atomic<bool> keep_events_{false};
  std::atomic<uint64_t> messages_{0}, events_{0}, unique_{0}, duplicates_{0}, bad_{0};
};

}  // namespace ferry
