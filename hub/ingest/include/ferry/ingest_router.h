// ferry/ingest_router.h: turns one MQTT message into an Event for a stream, a dead-letter Event, or a drop.
//
// Pure logic (no MQTT, no LMDB), so every rule is unit-tested: topic → route → stream/subject templates, the
// payload size limit, the content-type check, the device-supplied event id and the redelivery window.
// Thread: one router belongs to the ingest thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/config.h"
#include "ferry/flow_control.h"
#include "ferry/record.h"
#include "ferry/wire.h"  // IsJsonContentType

namespace ferry {

// An MQTT message as it arrived (independent of Paho so tests can build one).
struct InboundMessage {
  std::string_view topic;
  std::string_view payload;
  std::vector<std::pair<std::string, std::string>> user_properties;  // MQTT v5, in order
  std::string_view content_type;                                      // MQTT v5 content type, may be empty
  bool redelivered = false;                                           // the MQTT DUP flag
};

enum class RouteOutcome {
  kStore,       // append `event` to `stream`
  kDeadLetter,  // append `event` (with the reason in headers) to `stream`, the route's dead-letter stream
  kDuplicate,   // an id already seen within the dedupe window: dropped and counted (event.id holds the id)
  kDrop,        // rejected and no dead-letter stream to keep it in: dropped and counted
};

// Why a message was rejected; also the value of the "ferry_dlq_reason" header.
enum class RejectReason {
  kNone, kNoRoute, kBadTopic, kOversize, kBadContent, kUndeclaredStream, kTooDeep,
  kBadEventId,  // the id member is not a string, or the id is too long or holds control characters
  kBadSubject,  // the subject (from the topic) is too long or holds control characters
  kPoison,      // in hand when ferryd crashed: set aside unparsed (ferry/crash_guard.h)
};
const char* RejectReasonName(RejectReason reason);

// Whether a producer's time (a route's time_json_field / time_user_property) was replaced by the ingest time,
// and why; the reason is the value of the "ferry_time_replaced" header and of ferry_ingest_time_replaced_total's
// reason label.
enum class TimeReplaced {
  kNo,
  kUnreadable,   // not in the route's time_format
  kFuture,       // more than ingest.max_future_skew ahead of the gateway clock
  kBeforeFloor,  // before ingest.time_floor (a device without a clock, at 1970)
};
const char* TimeReplacedName(TimeReplaced r);

struct RouteDecision {
  RouteOutcome outcome = RouteOutcome::kDrop;
  RejectReason reason = RejectReason::kNone;
  std::string stream;   // target stream (the dead-letter stream for kDeadLetter; the routed stream otherwise)
  std::string detail;   // human-readable reason, e.g. "invalid JSON at offset 12: Missing a comma..."
  Event event;
  // kStore of a route that names an id (id_json_field / id_user_property) for an event that carried none: it
  // is stored without an id and not de-duplicated. Count it (ferry_ingest_missing_id_total{stream}).
  bool missing_id = false;
  // The first such event of its route since this router was built: log `detail`, which names the route and
  // the field (one line per route, not one per event).
  bool report_missing_id = false;
  // kStore: the producer's time was replaced by the ingest time (flagged in headers). Count it.
  TimeReplaced time_replaced = TimeReplaced::kNo;
};

// Header names written on dead-letter records.
inline constexpr const char* kDlqReasonHeader = "ferry_dlq_reason";
inline constexpr const char* kDlqDetailHeader = "ferry_dlq_detail";
inline constexpr const char* kDlqTopicHeader = "ferry_dlq_topic";
inline constexpr const char* kDlqSizeHeader = "ferry_dlq_original_size";
// Header names on an event whose producer time was replaced: the reason, and the time as sent (at most 64 bytes).
inline constexpr const char* kTimeReplacedHeader = "ferry_time_replaced";
inline constexpr const char* kTimeOriginalHeader = "ferry_time_original";
// Limits on what travels as MQTT strings, CloudEvents attributes and log lines.
inline constexpr size_t kMaxEventIdBytes = 256;
inline constexpr size_t kMaxSubjectBytes = 256;
// A dead-lettered oversize payload keeps only its first bytes: enough to identify the sender.
inline constexpr size_t kDlqPayloadPrefix = 1024;

class IngestRouter {
 public:
  // Compiles the routes. Errors (kInvalidArgument): a route whose filter or templates do not compile, or that
  // names a placeholder its filter does not capture.
  static Result<IngestRouter> Create(const Config& config);
  ~IngestRouter();
  IngestRouter(IngestRouter&&) noexcept;
  IngestRouter& operator=(IngestRouter&&) noexcept;

  // REQUIRES: `now` from the injected clock (ingest time; also the dedupe clock).
  RouteDecision Route(const InboundMessage& msg, TimeNs now);
  // A message not to be parsed at all (a poison message): the matching route's dead-letter stream with
  // `reason`, the payload kept as it came; dropped when no route or no dead-letter stream.
  RouteDecision SetAside(const InboundMessage& msg, RejectReason reason, std::string detail) const;

  // The MQTT subscriptions to make (one per route, captures replaced by '+'), without duplicates.
  std::vector<std::string> Subscriptions() const;

  // Seeds the redelivery window with an id already in the log (at start-up, from each stream's tail), so a
  // message the broker redelivers after a crash is recognised.
  void RememberId(std::string_view stream, std::string_view id, TimeNs ingest_time);
  // Forgets an id whose event could not be stored, so the device's re-send is stored, not dropped.
  void ForgetId(std::string_view stream, std::string_view id);

 private:
  struct CompiledRoute {
    RouteConfig config;
    TopicPattern pattern;
    bool json = false;
    size_t index = 0;                   // route[index], for messages
    bool missing_id_reported = false;  // report_missing_id was set once
  };
  struct JsonScratch;
  IngestRouter(std::vector<CompiledRoute> routes, std::vector<std::string> streams, uint64_t max_payload,
               unsigned max_json_depth, DedupeWindow dedupe);
  RouteDecision Reject(const CompiledRoute* route, const InboundMessage& msg, RejectReason reason,
                       std::string detail) const;
  bool Declared(std::string_view stream) const;

  void SetTimePlausibility(std::chrono::nanoseconds max_future_skew, TimeNs floor);

  std::vector<CompiledRoute> routes_;
  std::vector<std::string> streams_;
  int64_t max_future_skew_ns_ = 0;
  TimeNs time_floor_{};
  uint64_t max_payload_;
  unsigned max_json_depth_;
  DedupeWindow dedupe_;
  std::unique_ptr<JsonScratch> json_;
};

}  // namespace ferry
