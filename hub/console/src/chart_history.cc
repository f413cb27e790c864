// The console's chart history: a fixed ring of samples per series (ferry/chart_history.h has the contract and
// the cost).
#include "ferry/chart_history.h"

#include <algorithm>
#include <iterator>
#include <limits>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace ferry {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr uint64_t kAbsent = std::numeric_limits<uint64_t>::max();
constexpr uint32_t kNoAge = std::numeric_limits<uint32_t>::max();  // nothing unsent, or the pair absent

// libstdc++'s red-black tree node header (colour and three links) in front of each map entry.
constexpr size_t kMapNode = 4 * sizeof(void*);

size_t NameHeap(const std::string& s) { return s.capacity() > std::string().capacity() ? s.capacity() + 1 : 0; }

void Key(JsonWriter& w, const char* k) { w.Key(k); }
void Name(JsonWriter& w, const std::string& s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); }

}  // namespace

ChartHistory::ChartHistory(const Clock& clock, std::function<ChartSnapshot()> source)
    : clock_(clock), source_(std::move(source)) {
  // The cost the header (and docs/console.md) states, per series, without the map node and the names.
  static_assert(sizeof(StreamSeries) == 8 + 3 * 8 * kSamples, "update the bytes in chart_history.h");
  static_assert(sizeof(UplinkSeries) == 8 + (8 + 4) * kSamples, "update the bytes in chart_history.h");
}

std::chrono::steady_clock::time_point ChartHistory::Step() {
  const auto now = clock_.Steady();
  if (now < next_) return next_;
  Record(source_());
  next_ += kInterval;
  if (next_ <= now) next_ = now + kInterval;  // late (a long SQL query held the thread): one sample, no burst
  return next_;
}

void ChartHistory::Record(const ChartSnapshot& s) {
  const uint64_t k = recorded_++;
  const size_t slot = k % kSamples;
  const TimeNs now = clock_.Now();
  time_[slot] = now;
  steady_ns_[slot] = std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.Steady().time_since_epoch()).count();

  // Series with no value left in the ring go first, so they do not hold places under the cap.
  for (auto it = streams_.begin(); it != streams_.end();)
    it = k - it->second.last_present >= kSamples ? streams_.erase(it) : std::next(it);
  for (auto it = uplinks_.begin(); it != uplinks_.end();)
    it = k - it->second.last_present >= kSamples ? uplinks_.erase(it) : std::next(it);
  for (auto& [name, x] : streams_) x.last_seq[slot] = x.count[slot] = x.bytes[slot] = kAbsent;
  for (auto& [key, x] : uplinks_) {
    x.backlog[slot] = kAbsent;
    x.oldest_unsent_age_s[slot] = kNoAge;
  }

  uint64_t omitted = 0;
  for (const auto& st : s.streams) {
    auto it = streams_.find(st.name);
    if (it == streams_.end()) {
      if (streams_.size() >= kMaxSeries) {
        ++omitted;
        continue;
      }
      it = streams_.emplace(st.name, StreamSeries{}).first;
      for (auto* a : {&it->second.last_seq, &it->second.count, &it->second.bytes}) a->fill(kAbsent);
    }
    StreamSeries& x = it->second;
    x.last_present = k;
    x.last_seq[slot] = st.last_seq;
    x.count[slot] = st.count;
    x.bytes[slot] = st.bytes;
  }
  for (const auto& up : s.uplinks) {
    auto key = std::make_pair(up.uplink, up.stream);
    auto it = uplinks_.find(key);
    if (it == uplinks_.end()) {
      if (uplinks_.size() >= kMaxSeries) {
        ++omitted;
        continue;
      }
      it = uplinks_.emplace(std::move(key), UplinkSeries{}).first;
      it->second.backlog.fill(kAbsent);
      it->second.oldest_unsent_age_s.fill(kNoAge);
    }
    UplinkSeries& x = it->second;
    x.last_present = k;
    x.backlog[slot] = up.backlog;
    if (up.oldest_unsent) {
      const int64_t age_s = std::max<int64_t>(0, (now.ns - up.oldest_unsent->ns) / 1'000'000'000);
      x.oldest_unsent_age_s[slot] = static_cast<uint32_t>(std::min<int64_t>(age_s, kNoAge - 1));
    }
  }
  omitted_series_ = omitted;
}

size_t ChartHistory::bytes() const {
  size_t b = sizeof(time_) + sizeof(steady_ns_);
  for (const auto& [name, x] : streams_) b += kMapNode + sizeof(name) + sizeof(x) + NameHeap(name);
  for (const auto& [key, x] : uplinks_)
    b += kMapNode + sizeof(key) + sizeof(x) + NameHeap(key.first) + NameHeap(key.second);
  return b;
}

std::string ChartHistory::Json(TimeNs now) const {
  const uint64_t first = recorded_ - size();
  const auto slot = [](uint64_t k) { return static_cast<size_t>(k % kSamples); };
  // Events/s between samples k-1 and k of a position that only grows (a drop, as after a stream was recreated,
  // is shown as 0); null at the ring's first sample or where either value is absent.
  const auto per_second = [&](JsonWriter& w, uint64_t k, uint64_t before, uint64_t at) {
    const int64_t dt_ns = k > first ? steady_ns_[slot(k)] - steady_ns_[slot(k - 1)] : 0;
    if (dt_ns <= 0 || before == kAbsent || at == kAbsent) {
      w.Null();
      return;
    }
    w.Double(at >= before ? static_cast<double>(at - before) * 1e9 / static_cast<double>(dt_ns) : 0.0);
  };
  const auto values = [&](JsonWriter& w, const char* key, const std::array<uint64_t, kSamples>& a) {
    Key(w, key);
    w.StartArray();
    for (uint64_t k = first; k < recorded_; ++k) {
      if (a[slot(k)] == kAbsent) w.Null(); else w.Uint64(a[slot(k)]);
    }
    w.EndArray();
  };

  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  w.SetMaxDecimalPlaces(3);
  w.StartObject();
  Key(w, "interval_s");
  w.Int64(kInterval.count());
  Key(w, "capacity");
  w.Uint64(kSamples);
  Key(w, "bytes");
  w.Uint64(bytes());
  Key(w, "omitted_series");
  w.Uint64(omitted_series_);
  Key(w, "now_ms");
  w.Int64(now.ns / 1'000'000);
  Key(w, "t_ms");
  w.StartArray();
  for (uint64_t k = first; k < recorded_; ++k) w.Int64(time_[slot(k)].ns / 1'000'000);
  w.EndArray();

  Key(w, "streams");
  w.StartArray();
  for (const auto& [name, x] : streams_) {
    w.StartObject();
    Key(w, "name");
    Name(w, name);
    values(w, "last_seq", x.last_seq);
    values(w, "count", x.count);
    values(w, "bytes", x.bytes);
    Key(w, "rate");
    w.StartArray();
    for (uint64_t k = first; k < recorded_; ++k)
      per_second(w, k, k > first ? x.last_seq[slot(k - 1)] : kAbsent, x.last_seq[slot(k)]);
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();

  Key(w, "uplinks");
  w.StartArray();
  for (const auto& [key, x] : uplinks_) {
    w.StartObject();
    Key(w, "uplink");
    Name(w, key.first);
    Key(w, "stream");
    Name(w, key.second);
    values(w, "backlog", x.backlog);
    Key(w, "oldest_unsent_age_s");
    w.StartArray();
    for (uint64_t k = first; k < recorded_; ++k) {
      const uint32_t age = x.oldest_unsent_age_s[slot(k)];
      if (age == kNoAge) w.Null(); else w.Uint(age);
    }
    w.EndArray();
    // The sent position, the stream's last seq minus the backlog: evicted unsent events count as drained.
    auto stream = streams_.find(key.second);
    const auto sent = [&](uint64_t k) {
      if (stream == streams_.end()) return kAbsent;
      const uint64_t last = stream->second.last_seq[slot(k)], backlog = x.backlog[slot(k)];
      if (last == kAbsent || backlog == kAbsent) return kAbsent;
      return last >= backlog ? last - backlog : 0;
    };
    Key(w, "drain");
    w.StartArray();
    for (uint64_t k = first; k < recorded_; ++k) per_second(w, k, k > first ? sent(k - 1) : kAbsent, sent(k));
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize()) + "\n";
}

}  // namespace ferry
