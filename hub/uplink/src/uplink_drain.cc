// uplink_drain.cc: filling the in-flight window -- which stream and range goes next, reading ahead from the
// log, cutting per-event or batched units, the bytes-per-second cap, and handing units to the transport.
// See ferry/uplink_engine.h for the contract.
#include <algorithm>

#include "ferry/log.h"
#include "ferry/stream_iterator.h"
#include "ferry/uplink_engine.h"

namespace ferry {
namespace {

// Per-event mode reads this far ahead in one short read transaction instead of one transaction per event.
constexpr size_t kPerEventReadAhead = 64;
constexpr size_t kPerEventReadAheadBytes = size_t{256} << 10;
// About 1 MB of payload read is 2-3 MB of mapped log pages (record framing, ids, headers, tree pages).
constexpr size_t kReleaseEveryBytes = size_t{1} << 20;
// A transport refusing for back-pressure with nothing of ours in flight (its queue holds others'): try again.
constexpr auto kBusyRetry = std::chrono::milliseconds(10);

unsigned long long U(uint64_t v) { return static_cast<unsigned long long>(v); }

}  // namespace

size_t UplinkEngine::Window() const {
  // While probing after a loss, one unit at a time: if the link dies again, the culprit is known.
  return suspects_.empty() ? static_cast<size_t>(std::max<int64_t>(1, uplink_.inflight)) : 1;
}

Seq UplinkEngine::SkipAcked(const StreamState& s, Seq from) const {
  if (from < s.cursor) from = s.cursor;
  for (auto it = s.acked.upper_bound(from.value);;) {
    if (it == s.acked.begin()) return from;
    auto prev = std::prev(it);
    if (prev->second < from.value) return from;
    from = Seq{prev->second + 1};
    it = s.acked.upper_bound(from.value);
  }
}

bool UplinkEngine::SendOne(SteadyTime now) {
  if (busy_ || !up_) return false;
  if (inflight_.size() >= Window()) return false;
  if (now < retry_hold_until_ || now < rate_hold_until_) return false;

  // After a loss with several units in flight: those units first, one at a time, oldest first per stream.
  while (!suspects_.empty()) {
    const auto [index, first] = *suspects_.begin();
    StreamState& s = streams_[index];
    if (SkipAcked(s, Seq{first}).value != first) {  // acked or set aside meanwhile
      suspects_.erase(suspects_.begin());
      continue;
    }
    switch (SendFrom(index, Seq{first}, Seq{0}, Side::kFixed, now)) {
      case SendResult::kSent:
      case SendResult::kSkipped:
        return true;
      case SendResult::kNothing:  // gone from the log
        suspects_.erase(suspects_.begin());
        continue;
      case SendResult::kWaiting:
      case SendResult::kBlocked:
        return false;
    }
  }

  for (size_t i = 0; i < streams_.size(); ++i) {
    StreamState& s = streams_[i];
    // Ranges a Retry verdict sent back go before anything new of their stream.
    while (!s.retry.empty()) {
      const auto [first, last] = *s.retry.begin();
      s.retry.erase(s.retry.begin());
      const Seq from = SkipAcked(s, Seq{first});
      if (from.value > last) continue;
      uint64_t sent_last = 0;
      const SendResult r = SendFrom(i, from, Seq{last + 1}, Side::kFixed, now, &sent_last);
      if (r == SendResult::kSent) {
        if (sent_last < last) s.retry[sent_last + 1] = last;  // cut shorter (batch.max_bytes)
        return true;
      }
      s.retry[from.value] = last;  // not sent: still first in line
      if (r == SendResult::kSkipped) return true;
      if (r == SendResult::kBlocked) return false;
      break;  // unreadable just now: the stream's new ranges may still go
    }
    SendResult r;
    if (s.live_start.value != 0) {
      r = SendFrom(i, SkipAcked(s, s.next_live), Seq{0}, Side::kLive, now);
      if (r == SendResult::kSent || r == SendResult::kSkipped) return true;
      if (r == SendResult::kBlocked) return false;
      Seq from = SkipAcked(s, s.next_backfill);
      if (from >= s.live_start) {
        s.live_start = Seq{0};  // backfill has caught up with the live side: one sequence again
        s.next_backfill = SkipAcked(s, s.next_live);
        s.backfill_ahead = std::move(s.live_ahead);
        s.live_ahead = ReadAhead{};
        continue;
      }
      r = SendFrom(i, from, s.live_start, Side::kBackfill, now);
    } else {
      r = SendFrom(i, SkipAcked(s, s.next_backfill), Seq{0}, Side::kBackfill, now);
    }
    if (r == SendResult::kSent || r == SendResult::kSkipped) return true;
    if (r == SendResult::kBlocked) return false;  // the rate cap and back-pressure apply to all streams
  }
  return false;
}

void UplinkEngine::Consume(ReadAhead& a, size_t n) {
  // The records were moved out for the unit: drop them, and what remains answers for the seq after them.
  for (size_t k = 0; k < n; ++k) {
    a.bytes -= std::min(a.bytes, a.records.front().payload_bytes);
    a.from = a.records.front().record.seq.next();
    a.records.pop_front();
  }
  if (n > 0) a.bytes_full = false;
}

UplinkEngine::FillResult UplinkEngine::Fill(StreamState& s, ReadAhead& a, Seq from, size_t need, size_t ask,
                                            Seq limit, size_t max_bytes) {
  if (a.from != from) a = ReadAhead{from, from, {}, 0, false, UINT64_MAX};
  size_t have = 0;
  for (const auto& r : a.records) {
    if (limit.value != 0 && r.record.seq >= limit) break;
    ++have;
  }
  if (have >= need) return FillResult::kOk;
  if (limit.value != 0 && a.next >= limit) return FillResult::kOk;  // everything below the limit is here
  if (a.bytes >= max_bytes || a.bytes_full) return FillResult::kOk;
  // Read the count before the log: a commit that lands in between shows as a newer count next time.
  const uint64_t commits = writer_.commit_count();
  if (a.at_end_commit == commits) return FillResult::kOk;  // read to the end, nothing committed since

  ask = std::max(ask, need) - have;
  const size_t bytes_room = max_bytes - a.bytes;
  auto it = log_.NewIterator(s.name);
  ++stats_.log_reads;
  if (!it) {
    FERRY_LOG_WARN("uplink %s: reading %s: %s", uplink_.name.c_str(), s.name.c_str(), it.error().ToString().c_str());
    return FillResult::kError;
  }
  StreamIterator& iter = **it;
  size_t n = 0, bytes = 0;
  for (iter.Seek(a.next); iter.Valid() && n < ask; iter.Next()) {
    const RecordView& r = iter.record();
    if ((n > 0 || !a.records.empty()) && bytes + r.payload.size() > bytes_room) {
      a.bytes_full = true;
      break;
    }
    bytes += r.payload.size();
    a.records.push_back(ReadRecord{StoredRecord{r.seq, r.ingest_time, r.ToEvent()}, r.payload.size()});
    a.next = r.seq.next();
    ++n;
  }
  const bool at_end = !iter.Valid() && iter.status().has_value();
  const Status st = iter.status();
  it->reset();  // end the read transaction before anything else
  stats_.records_read += n;
  a.bytes += bytes;
  if (at_end) a.at_end_commit = commits;
  // Reading maps the log's pages into this process; a fast drain would map tens of MB between two maintenance
  // rounds. Drop the mappings every MB or so read, so RSS stays flat while the backlog drains too.
  read_since_release_ += bytes + 128 * n;
  if (read_since_release_ >= kReleaseEveryBytes) {
    read_since_release_ = 0;
    log_.ReleaseMappedPages();
  }
  if (st || n > 0) return FillResult::kOk;  // on damage: send what came before it; the next read meets it first
  if (st.error().code != ErrorCode::kCorruption) {
    FERRY_LOG_WARN("uplink %s: reading %s: %s", uplink_.name.c_str(), s.name.c_str(), st.error().ToString().c_str());
    return FillResult::kError;
  }
  // Skip the damaged record so one bad page cannot stall the uplink forever; it is counted.
  DroppedCounter(s, "corrupt").Inc();
  FERRY_LOG_ERROR("uplink %s: %s seq %llu: %s", uplink_.name.c_str(), s.name.c_str(), U(a.next.value),
                  st.error().ToString().c_str());
  MarkAcked(s, a.next.value, a.next.value);
  a.next = a.next.next();
  a.at_end_commit = UINT64_MAX;
  return FillResult::kSkippedDamage;
}

UplinkEngine::SendResult UplinkEngine::SendFrom(size_t index, Seq from, Seq limit, Side side, SteadyTime now,
                                                uint64_t* sent_last) {
  StreamState& s = streams_[index];
  const bool batched = uplink_.mode == UplinkMode::kBatched;
  size_t want = batched ? static_cast<size_t>(std::max<int64_t>(1, uplink_.batch.max_events)) : 1;
  if (limit.value != 0) {
    if (limit <= from) return SendResult::kNothing;
    want = static_cast<size_t>(std::min<uint64_t>(want, limit.value - from.value));
  }
  const size_t max_bytes = batched ? static_cast<size_t>(std::max<uint64_t>(1, uplink_.batch.max_bytes))
                                   : kPerEventReadAheadBytes;
  ReadAhead fixed;
  ReadAhead& a = side == Side::kLive ? s.live_ahead : side == Side::kBackfill ? s.backfill_ahead : fixed;
  Seq* next = side == Side::kLive ? &s.next_live : side == Side::kBackfill ? &s.next_backfill : nullptr;
  const size_t ask = batched || side == Side::kFixed ? want : kPerEventReadAhead;
  switch (Fill(s, a, from, want, ask, limit, max_bytes)) {
    case FillResult::kOk:
      break;
    case FillResult::kError:
      return SendResult::kNothing;
    case FillResult::kSkippedDamage:
      if (a.records.empty()) return SendResult::kSkipped;  // look again, past the damage
      break;
  }

  // Cut the unit: up to `want` records below `limit` and, batched, within batch.max_bytes.
  size_t n = 0, bytes = 0;
  bool full_by_bytes = false;
  for (const auto& r : a.records) {
    if (n == want || (limit.value != 0 && r.record.seq >= limit)) break;
    if (batched && n > 0 && bytes + r.payload_bytes > max_bytes) {
      full_by_bytes = true;
      break;
    }
    bytes += r.payload_bytes;
    ++n;
  }
  if (n == a.records.size() && a.bytes_full) full_by_bytes = true;  // the next record did not fit the read
  if (n == 0) {
    // Nothing below the limit although the log was read past it: those records are gone (retention,
    // eviction, compaction). Move over them rather than wait for them forever.
    if (limit.value != 0 && a.next >= limit) {
      DroppedCounter(s, "gone_before_send").Inc(limit.value - from.value);
      MarkAcked(s, from.value, limit.value - 1);
      if (next) *next = limit;
      return SendResult::kSkipped;
    }
    return SendResult::kNothing;
  }
  if (a.records.front().record.seq > from) {
    // Records evicted (budget, retention) or compacted away before they could be sent. Counted by storage per
    // reason; here the uplink notes how many of them it never sent.
    DroppedCounter(s, "gone_before_send").Inc(a.records.front().record.seq.value - from.value);
  }
  const bool range_complete = limit.value != 0 && a.next >= limit;
  if (batched && side != Side::kFixed && n < want && !full_by_bytes && !range_complete) {
    // A partial batch at the tail waits up to batch.max_delay (from its oldest event) for company. Its records
    // stay read ahead; only a commit makes the engine read again.
    const int64_t due = a.records.front().record.ingest_time.ns + uplink_.batch.max_delay.count();
    const int64_t wall = clock_.Now().ns;
    if (wall < due) {
      s.batch_deadline = now + std::chrono::nanoseconds(due - wall);
      return SendResult::kWaiting;
    }
  }
  s.batch_deadline = {};

  const uint64_t first = from.value;
  const uint64_t last = a.records[n - 1].record.seq.value;
  OutboundUnit unit;
  if (batched) {
    Batch b;
    b.gateway = config_.gateway.id;
    b.stream = s.name;
    b.events.reserve(n);
    for (size_t k = 0; k < n; ++k) b.events.push_back(ToWire(s, std::move(a.records[k].record)));
    Consume(a, n);
    auto encoded = encoder_->Encode(b);
    if (!encoded) {
      // Never sendable as it is (a body over the format's limit, ...): retrying would stall the stream.
      if (next) *next = Seq{last + 1};
      Poison(index, first, last, n, "encode_failed");
      return SendResult::kSkipped;
    }
    bytes = encoded->size();
    if (!rate_.TryTake(bytes, now)) {
      rate_hold_until_ = now + rate_.WaitFor(bytes, now);
      a = ReadAhead{};  // the records went into the batch: read them again when the cap allows
      return SendResult::kBlocked;
    }
    unit.topic = TopicFor(s, "", "");
    unit.content_type = kBatchContentType;
    unit.payload = std::move(*encoded);
  } else {
    if (!rate_.TryTake(bytes, now)) {  // checked before the record is taken apart: nothing to re-read
      rate_hold_until_ = now + rate_.WaitFor(bytes, now);
      return SendResult::kBlocked;
    }
    WireEvent w = ToWire(s, std::move(a.records.front().record));
    Consume(a, 1);
    MqttEventProperties mp = ToMqttProperties(w);
    // CloudEventOf puts the topic the event arrived on first, as the ferrytopic attribute.
    const bool has_origin = !w.headers.empty() && w.headers.front().first == kCeTopicAttribute;
    unit.topic = TopicFor(s, w.subject, has_origin ? w.headers.front().second : std::string());
    unit.key = std::move(w.subject);
    unit.content_type = std::move(mp.content_type);
    unit.attributes = std::move(mp.user_properties);
    unit.payload = std::move(w.payload);
  }

  auto handle = transport_.Publish(std::move(unit));
  if (!handle) {
    switch (handle.error().code) {
      case ErrorCode::kBusy:  // the transport's queue is full: back-pressure, not a broken link
        a = ReadAhead{};    // the unit's records are spent: read them again after a completion
        // Only a completion makes room; with nothing in flight none will come, so look again shortly.
        if (inflight_.empty()) retry_hold_until_ = std::max(retry_hold_until_, now + kBusyRetry);
        else busy_ = true;
        return SendResult::kBlocked;
      case ErrorCode::kUnavailable:
        FERRY_LOG_WARN("uplink %s: publish: %s", uplink_.name.c_str(), handle.error().ToString().c_str());
        transport_.Disconnect();
        OnLinkLost(now);
        return SendResult::kBlocked;
      default:  // the client refuses this unit as it is: it can never go
        if (next) *next = Seq{last + 1};
        Poison(index, first, last, n, "refused_by_client");
        return SendResult::kSkipped;
    }
  }
  inflight_[*handle] = Inflight{index, first, last, n, bytes, now};
  if (next) *next = Seq{last + 1};
  if (sent_last) *sent_last = last;
  s.sent->Inc(n);
  bytes_total_->Inc(bytes);
  ++stats_.units_sent;
  return SendResult::kSent;
}

std::string UplinkEngine::TopicFor(const StreamState& s, const std::string& subject, const std::string& origin) const {
  TopicCaptures caps{{"gateway", config_.gateway.id},
                     {"stream", s.name},
                     {"subject", subject},
                     {"topic", origin.empty() ? "ferry/" + config_.gateway.id + "/" + s.name : origin}};
  auto t = ExpandTemplate(uplink_.topic, caps);
  std::string topic = t ? *t : "ferry/" + config_.gateway.id + "/" + s.name;
  // An empty {subject} must not leave an empty or trailing level behind.
  while (!topic.empty() && topic.back() == '/') topic.pop_back();
  return topic;
}

WireEvent UplinkEngine::ToWire(const StreamState& s, StoredRecord&& r) const {
  // Moves the strings out of the record copy the read made: one copy per event from the map to the wire.
  return CloudEventOf(config_.gateway.id, s.name, r.seq, r.ingest_time, std::move(r.event));
}

}  // namespace ferry
