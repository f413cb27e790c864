#include "ferry/ingest_accounting.h"

#include <algorithm>
#include <cstdlib>

#include "ferry/log.h"

namespace ferry {

IngestAccounting::IngestAccounting(MetricsRegistry& metrics, const char* log_prefix)
    : metrics_(metrics), log_prefix_(log_prefix) {
  unrouted_ = &DeclaredCounter(metrics_, "ferry_ingest_unrouted_total");
}

RouteDecision IngestAccounting::Route(IngestRouter& router, std::mutex& router_mu, const InboundMessage& msg,
                                      TimeNs now, CrashGuard* guard, size_t slot, std::string_view crash_on) {
  const uint64_t hash = guard ? CrashGuard::Hash(msg.topic, msg.payload) : 0;
  if (guard && guard->Poisoned(hash)) {
    // It was in hand when ferryd crashed: not parsed again, kept with its bytes, acknowledged.
    FERRY_LOG_WARN("%s: a message on %.*s was in hand when ferryd crashed: set aside (reason poison)", log_prefix_,
                   static_cast<int>(std::min<size_t>(msg.topic.size(), 256)), msg.topic.data());
    std::lock_guard<std::mutex> lock(router_mu);
    return router.SetAside(msg, RejectReason::kPoison, "in hand when ferryd crashed; set aside unparsed");
  }
  if (guard) guard->Enter(slot, hash);
  if (!crash_on.empty() && msg.payload.find(crash_on) != std::string_view::npos) std::abort();
  RouteDecision d;
  {
    std::lock_guard<std::mutex> lock(router_mu);
    d = router.Route(msg, now);
  }
  if (guard) {
    guard->Leave(slot);
    guard->Cleared(hash);
  }
  return d;
}

void IngestAccounting::Account(const RouteDecision& d) {
  switch (d.outcome) {
    case RouteOutcome::kStore: {
      Counter*& c = ingested_[d.stream];
      if (!c) c = &DeclaredCounter(metrics_, "ferry_stream_ingested_total", {{"stream", d.stream}});
      c->Inc();
      if (d.time_replaced != TimeReplaced::kNo) {  // a device with a bad clock: a lookup per event is fine there
        DeclaredCounter(metrics_, "ferry_ingest_time_replaced_total",
                        {{"stream", d.stream}, {"reason", TimeReplacedName(d.time_replaced)}})
            .Inc();
      }
      if (d.missing_id) {  // a misconfigured route: a registry lookup per event is fine there
        DeclaredCounter(metrics_, "ferry_ingest_missing_id_total", {{"stream", d.stream}}).Inc();
        if (d.report_missing_id) FERRY_LOG_WARN("%s: %s", log_prefix_, d.detail.c_str());
      }
      break;
    }
    case RouteOutcome::kDeadLetter:
    case RouteOutcome::kDrop:
      if (d.reason == RejectReason::kNoRoute) unrouted_->Inc();
      DeclaredCounter(metrics_, "ferry_stream_dead_lettered_total",
                      {{"stream", d.outcome == RouteOutcome::kDrop ? "(dropped)" : d.stream},
                       {"reason", RejectReasonName(d.reason)}})
          .Inc();
      FERRY_LOG_DEBUG("%s: rejected message: %s", log_prefix_, d.detail.c_str());
      break;
    case RouteOutcome::kDuplicate:
      DeclaredCounter(metrics_, "ferry_ingest_duplicates_dropped_total", {{"stream", d.stream}}).Inc();
      break;
  }
}

}  // namespace ferry
