// ferry/ingest_accounting.h: what both ingest paths (the listener and subscribe mode) do around the router:
// route a message under the crash guard, and count the decision.
//
// Threads: one IngestAccounting per ingest thread (its per-stream counter cache is that thread's).
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "ferry/clock.h"
#include "ferry/crash_guard.h"
#include "ferry/ingest_router.h"
#include "ferry/metrics.h"

namespace ferry {

class IngestAccounting {
 public:
  IngestAccounting(MetricsRegistry& metrics, const char* log_prefix);

  // Routes `msg` (topic and payload as received) with `router` under `router_mu`. With a guard: a message that
  // was in hand when ferryd crashed is set aside unparsed (reason poison); any other is routed inside the
  // guard's Enter/Leave, so a crash while routing marks it (ferry/crash_guard.h). `crash_on` (fault injection)
  // aborts while a payload containing it is in hand.
  RouteDecision Route(IngestRouter& router, std::mutex& router_mu, const InboundMessage& msg, TimeNs now,
                      CrashGuard* guard, size_t slot, std::string_view crash_on = {});

  // Counts a decision: ingested, dead-lettered or dropped by reason, duplicates, unrouted, missing ids.
  void Account(const RouteDecision& d);

 private:
  MetricsRegistry& metrics_;
  const char* log_prefix_;
  std::unordered_map<std::string, Counter*> ingested_;  // the hot path: no registry lookup per event
  Counter* unrouted_;
};

}  // namespace ferry
