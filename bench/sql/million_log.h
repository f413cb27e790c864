// million_log.h: a log holding one stream of N telemetry events from 1,000 devices, spread evenly over the
// `span` before the clock's time (ingest time set through a ManualClock), for ferryctl sql's bench and its
// million-row test. Payload {"t": <value>}; subject "dev-<i % 1000>". Appended 10,000 to a transaction.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "ferry/clock.h"
#include "ferry/event_log.h"

namespace ferry::bench {

inline Status FillMillionLog(EventLog& log, ManualClock& clock, const std::string& stream, uint64_t n,
                             std::chrono::nanoseconds span) {
  if (Status st = log.CreateStream(stream); !st) return st;
  const int64_t step = span.count() / static_cast<int64_t>(n);
  clock.Advance(-span);
  uint64_t i = 0;
  while (i < n) {
    Status st = log.Update([&](WriteTxn& txn) -> Status {
      for (uint64_t end = std::min(n, i + 10'000); i < end; ++i) {
        clock.Advance(std::chrono::nanoseconds(step));
        Event e;
        e.subject = "dev-" + std::to_string(i % 1000);
        e.id = e.subject + "/" + std::to_string(i);
        e.source = "urn:bench";
        e.type = "telemetry.v1";
        e.datacontenttype = "application/json";
        // A value that differs per device and over time, so "peak" has one answer.
        e.payload = "{\"t\":" + std::to_string((i * 7919) % 100'000 / 1000.0) + "}";
        if (auto seq = txn.Append(stream, e); !seq) return tl::make_unexpected(seq.error());
      }
      return Ok();
    });
    if (!st) return st;
  }
  return Ok();
}

}  // namespace ferry::bench
