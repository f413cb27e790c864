// The console's live tail. See ferry/live_tail.h for the contract.
//
// Why a bound: a tail sends every record it shows as CloudEvents JSON (about as much CPU as ingesting the
// record took), and on a gateway's two cores that CPU comes out of ingest. Measured with
// bench/ingest/console_tail.py before the bound: a tail that sent every record cost ingest 14 % of its
// events/s and 30 % more CPU per event (bench/README.md). A person reads a few lines a second; the page keeps
// the last 500.
#include "ferry/live_tail.h"

#include <algorithm>
#include <deque>
#include <utility>

#include "ferry/stream_iterator.h"
#include "ferry/wire.h"

namespace ferry {

LiveTail::LiveTail(EventLog& log, GroupCommitWriter& writer, const Clock& clock, std::string gateway,
                   std::string stream, Seq from, size_t backlog, std::string filter, LiveTailOptions options)
    : log_(log), writer_(writer), clock_(clock), gateway_(std::move(gateway)), stream_(std::move(stream)),
      filter_(std::move(filter)), options_(options), next_(from), first_limit_(backlog) {
  listener_ = writer_.AddCommitListener([this](uint64_t) { Wake(); });
}

LiveTail::~LiveTail() { writer_.RemoveCommitListener(listener_); }

bool LiveTail::Matches(std::string_view subject, std::string_view type, std::string_view source,
                       std::string_view payload) const {
  if (filter_.empty()) return true;
  return subject.find(filter_) != std::string_view::npos || type.find(filter_) != std::string_view::npos ||
         source.find(filter_) != std::string_view::npos || payload.find(filter_) != std::string_view::npos;
}

bool LiveTail::Pull(std::string& out, bool keepalive) {
  auto fail = [&](const Error& e) {
    out += "event: error\ndata: " + e.ToString() + "\n\n";
    return false;
  };
  auto stats = log_.GetStreamStats(stream_);
  if (!stats) return fail(stats.error());
  const uint64_t end = stats->last_seq.value + 1;  // the seq the next append will get
  // Records evicted by retention before the tail got to them are gone, not skipped by the tail.
  next_ = std::max(next_, stats->first_seq);
  const size_t limit = std::max(options_.max_records, first_limit_);
  first_limit_ = 0;
  const uint64_t window = filter_.empty() ? limit : std::max(limit, options_.max_scan);

  const uint64_t skip_from = next_.value;
  uint64_t skip_to = 0;  // the last seq passed over; 0: none
  if (end > next_.value + window) {
    skip_to = end - window - 1;
    next_ = Seq{end - window};
  }
  std::deque<StoredRecord> kept;
  size_t bytes = 0;
  uint64_t examined = 0;
  {
    auto it = log_.NewIterator(stream_);
    if (!it) return fail(it.error());
    for ((*it)->Seek(next_); (*it)->Valid() && (*it)->record().seq.value < end; (*it)->Next()) {
      const RecordView& r = (*it)->record();
      const bool match = Matches(r.subject, r.type, r.source, r.payload);
      if (match && !kept.empty() && bytes + r.payload.size() > options_.max_bytes) break;  // the rest next pull
      ++examined;
      next_ = r.seq.next();
      if (!match) continue;
      bytes += r.payload.size();
      kept.push_back(StoredRecord{r.seq, r.ingest_time, r.ToEvent()});
      if (kept.size() > limit) {  // filtered: more matches than are sent; the oldest go
        skip_to = kept.front().seq.value;
        bytes -= kept.front().event.payload.size();
        kept.pop_front();
      }
    }
    if (!(*it)->status()) return fail((*it)->status().error());
  }
  if (skip_to != 0) {
    out += "event: skipped\ndata: {\"from\":" + std::to_string(skip_from) + ",\"to\":" + std::to_string(skip_to) +
           "}\n\n";
  }
  for (StoredRecord& r : kept) {
    out += "id: ";
    out += std::to_string(r.seq.value);
    out += "\nevent: record\ndata: ";
    out += EventToJson(CloudEventOf(gateway_, stream_, r.seq, r.ingest_time, std::move(r.event)));
    out += "\n\n";
  }
  if (examined > 0 || skip_to != 0) {
    HoldWakesUntil(clock_.Steady() + options_.interval);
    if (next_.value < end) Wake();  // more is waiting: pulled when the hold ends, without a commit
  }
  if (out.empty() && keepalive) out = ": keepalive\n\n";
  return true;
}

}  // namespace ferry
