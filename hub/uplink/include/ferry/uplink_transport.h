// ferry/uplink_transport.h: what the uplink engine needs from a network transport, and nothing more.
//
// The engine (ferry/uplink_engine.h) owns cursors, order, retries and poison isolation; a transport only
// connects, sends and reports (STYLE habit 15). The seam is LevelDB's `Env` idea: the engine is unit-tested
// against a fake transport, and a second transport (Kafka via librdkafka: one delivery report per message,
// arriving out of order across partitions) fits without engine changes, because:
//   - every Publish returns a handle, and each handle completes at most once, in any order;
//   - the engine's acked ranges, not the transport, turn out-of-order completions into a cursor;
//   - each completion is classified by ONE function per transport (STYLE habit 11): Ok | Retry(after) |
//     Drop(reason) (ClassifyPublish for MQTT, an rd_kafka_resp_err_t switch for Kafka).
//
// Link life cycle as the engine sees it:
//   kDown --Connect()--> kConnecting --> kUp (session() + 1)      a connection attempt succeeded
//                                    --> kDown                    it failed (the engine backs off, retries)
//   kUp --> kDown                                                  the link was lost, or Disconnect()
// When the link goes down, units still in flight are NOT reported: the engine treats everything in flight
// at a loss as unconfirmed and sends it again on the next session. A completion that arrives anyway for a
// handle of an earlier session is ignored.
//
// Threads: every method is called from the engine's one thread. The wakeup callback is the exception: the
// transport calls it from any of its own threads whenever Completions() or link_state() may have changed,
// so the engine's loop can sleep instead of polling.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ferry/error.h"

namespace ferry {

// One message to the centre: a single event (per_event mode) or a batch (batched mode).
struct OutboundUnit {
  std::string topic;         // MQTT topic / Kafka topic, the uplink's template expanded
  std::string key;           // the event's subject ("" for batches): Kafka's message key; MQTT ignores it
  std::string payload;       // bytes, sent as they are
  std::string content_type;  // MQTT Content Type / Kafka content-type header; "" for none
  // CloudEvents attributes in binary content mode (docs/wire.md order), names without any prefix: MQTT sends
  // them as v5 user properties under these names, Kafka as ce_<name> headers. Empty for batches.
  std::vector<std::pair<std::string, std::string>> attributes;
};

// Identifies one Publish until it completes. Distinct from seqs and counts (STYLE habit 9).
struct PublishHandle {
  uint64_t value = 0;
  friend bool operator==(PublishHandle a, PublishHandle b) { return a.value == b.value; }
  friend bool operator<(PublishHandle a, PublishHandle b) { return a.value < b.value; }
};

// What to do after a publish completed (STYLE habit 11: classified in one place per transport).
struct PublishVerdict {
  enum Kind { kOk, kRetry, kDrop } kind = kOk;
  std::chrono::nanoseconds retry_after{0};  // kRetry: hold sending this long before trying again
  std::string reason;                       // kRetry / kDrop: a short label for metrics and logs
};

struct Completion {
  PublishHandle handle;
  PublishVerdict verdict;
};

enum class LinkState { kDown, kConnecting, kUp };

class UplinkTransport {
 public:
  virtual ~UplinkTransport() = default;

  // Starts one connection attempt and returns at once; the outcome shows in link_state(). The engine calls it
  // only in kDown and owns the backoff between attempts (transports must not reconnect on their own).
  virtual void Connect() = 0;
  virtual LinkState link_state() const = 0;
  // Counts successful connections; a change tells the engine the link was lost and re-made in between,
  // even if it never saw the link down.
  virtual uint64_t session() const = 0;

  // Hands one unit to the network (the transport takes it: payloads move, not copy). Errors:
  //   kBusy             the transport's own queue is full (back-pressure): nothing was sent; try again after a
  //                     completion (the wakeup callback fires then)
  //   kUnavailable      the link is down or broke while sending: the engine handles it as a lost link
  //   kInvalidArgument  this unit can never be sent (the client refused its topic or properties): the engine
  //                     sets it aside (poison isolation) and goes on with the rest
  // REQUIRES: link_state() == kUp.
  virtual Result<PublishHandle> Publish(OutboundUnit unit) = 0;
  // Appends the completions that arrived since the last call, in any order; returns how many.
  virtual size_t Completions(std::vector<Completion>* out) = 0;
  // Ends the session (best effort, bounded wait). The link is kDown afterwards.
  virtual void Disconnect() = 0;

  // `fn` is called from the transport's threads when Completions() or link_state() may have something new.
  // Set once, before Connect(); it must stay callable until the transport is destroyed.
  virtual void SetWakeup(std::function<void()> fn) = 0;
};

}  // namespace ferry
