// ferry/live_tail.h: the console's live tail of one stream, as Server-Sent Events (docs/console.md).
//
// Each record is sent as "id: <seq>", "event: record", "data: <CloudEvents JSON, as an uplink sends it>". The
// tail is woken by the group-commit writer's commit listener; it never reads the log on a timer.
//
// It is for eyes, not for copying a stream (that is `ferryctl tail` and the uplinks): it sends at most
// `max_records` records per pull and is pulled at most once per `interval` (the defaults: 250 records every
// 250 ms, 1,000 records a second), so that a tail left open costs ingest a bounded amount of CPU whatever the
// ingest rate. When more records were committed than that, the oldest of them are passed over and the tail
// says so, before the records it does send:
//
//   event: skipped
//   data: {"from":A,"to":B}      (seqs A..B inclusive were not shown: none of them, or with a filter not all)
//
// With a filter the tail examines at most `max_scan` records per pull (the newest), on the log's views without
// copying them, and sends at most `max_records` of those that match (the newest).
//
// Threads: constructed on any thread; Pull() on the HTTP server's thread; the commit listener calls Wake().
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "ferry/clock.h"
#include "ferry/event_log.h"
#include "ferry/group_commit.h"
#include "ferry/http_server.h"
#include "ferry/types.h"

namespace ferry {

struct LiveTailOptions {
  std::chrono::milliseconds interval{250};  // between two pulls that sent or passed over records
  size_t max_records = 250;                 // sent per pull (the first pull: at least `backlog`)
  size_t max_scan = 2500;                   // examined per pull when filtering
  size_t max_bytes = size_t{1} << 20;       // payload bytes read per pull (at least one record)
};

class LiveTail final : public HttpStream {
 public:
  // Starts at `from` (the first pull sends up to max(backlog, max_records) records from there) and registers a
  // commit listener with `writer`. `filter`: keep records whose subject, type, source or payload contains it.
  // REQUIRES: log, writer and clock outlive the tail.
  LiveTail(EventLog& log, GroupCommitWriter& writer, const Clock& clock, std::string gateway, std::string stream,
           Seq from, size_t backlog, std::string filter, LiveTailOptions options = {});
  ~LiveTail() override;
  LiveTail(const LiveTail&) = delete;
  LiveTail& operator=(const LiveTail&) = delete;

  // Appends the records committed since the last pull, within the limits above. Returns false when the stream
  // cannot be read (after appending "event: error"); the server then ends the reply.
  bool Pull(std::string& out, bool keepalive) override;

  // The next seq the tail will consider. For tests.
  Seq next() const { return next_; }

 private:
  bool Matches(std::string_view subject, std::string_view type, std::string_view source,
               std::string_view payload) const;

  EventLog& log_;
  GroupCommitWriter& writer_;
  const Clock& clock_;
  const std::string gateway_;
  const std::string stream_;
  const std::string filter_;
  const LiveTailOptions options_;
  Seq next_;
  size_t first_limit_;  // 0 after the first pull
  uint64_t listener_ = 0;
};

}  // namespace ferry
