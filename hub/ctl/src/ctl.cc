// ctl.cc: the ferryctl commands (ferry/ctl.h). Reads go through short read transactions; the only write is
// the replay request key.
#include "ferry/ctl.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <istream>
#include <ostream>
#include <utility>
#include <vector>

#include "ferry/stream_iterator.h"
#include "ferry/uplink_engine.h"
#include "ferry/wire.h"

namespace ferry::ctl {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// Enough named databases for any log ferryd can have made (it uses max(64, streams + 8)).
constexpr unsigned kMaxStreams = 1024;

int Fail(std::ostream& err, const std::string& message, int code = kExitRuntime) {
  err << "ferryctl: " << message << "\n";
  return code;
}

std::string StreamError(const EventLog& log, std::string_view stream, const Error& e) {
  if (e.code == ErrorCode::kNotFound) {
    return "unknown stream '" + std::string(stream) + "': not in the log at " + log.options().path;
  }
  return "stream '" + std::string(stream) + "': " + e.ToString();
}

// ---- Scanning with damaged records --------------------------------------------------------------------------

// The seq a Corruption message names ("record seq 7: checksum mismatch", "record stored under seq 7 ..."),
// if any; size and truncation errors do not name one.
std::optional<Seq> SeqInMessage(const std::string& message) {
  for (size_t at = message.find("seq "); at != std::string::npos; at = message.find("seq ", at + 1)) {
    size_t p = at + 4;
    if (p >= message.size() || !std::isdigit(static_cast<unsigned char>(message[p]))) continue;
    return Seq{std::strtoull(message.c_str() + p, nullptr, 10)};
  }
  return std::nullopt;
}

struct Damage {
  Seq first;  // the damaged record, or the first seq of a range holding it
  Seq last;
  Error error;
};

// After the iterator stopped on a damaged record at or after `pos`: the seqs it covers. A range only when
// the message does not name the seq and the stream has gaps there (kTable); log streams are dense.
Damage LocateDamage(StreamIterator& it, Seq pos, Error error) {
  if (auto named = SeqInMessage(error.message); named && *named >= pos) return {*named, *named, std::move(error)};
  Seq s = pos.next();
  for (;; s = s.next()) {
    it.Seek(s);
    if (it.Valid() || it.status()) break;  // a readable record, or the end
    if (it.status().error().code != ErrorCode::kCorruption) break;
  }
  return {pos, Seq{s.value - 1}, std::move(error)};
}

enum class ScanEnd { kEnd, kStopped };

// Visits the records with seq >= *pos in order, one read transaction per kScanChunk records, reporting and
// skipping damaged ones. `visit` returns false to stop before consuming the record it was given. On return
// *pos is the seq to continue from.
Result<ScanEnd> Scan(EventLog& log, std::string_view stream, Seq* pos,
                     const std::function<bool(const RecordView&)>& visit,
                     const std::function<void(const Damage&)>& on_damage) {
  for (;;) {
    auto opened = log.NewIterator(stream);
    if (!opened) return tl::unexpected(opened.error());
    StreamIterator& it = **opened;
    size_t n = 0;
    for (it.Seek(*pos); it.Valid() && n < kScanChunk; it.Next(), ++n) {
      if (!visit(it.record())) {
        *pos = it.record().seq;
        return ScanEnd::kStopped;
      }
      *pos = it.record().seq.next();
    }
    if (it.Valid()) continue;  // chunk done: a fresh transaction for the next one
    if (it.status()) return ScanEnd::kEnd;
    if (it.status().error().code != ErrorCode::kCorruption) return tl::unexpected(it.status().error());
    Damage d = LocateDamage(it, *pos, it.status().error());
    *pos = d.last.next();
    on_damage(d);
  }
}

std::string DamageLine(std::string_view stream, const Damage& d) {
  std::string where = d.first == d.last ? "seq " + std::to_string(d.first.value)
                                        : "seqs " + std::to_string(d.first.value) + ".." +
                                              std::to_string(d.last.value);
  return "corrupt record in stream '" + std::string(stream) + "' at " + where + " (skipped): " + d.error.ToString();
}

// ---- Output helpers -----------------------------------------------------------------------------------------

// Columns padded to their widest cell; the columns flagged in `right` are right-aligned (numbers).
class Table {
 public:
  Table(std::vector<std::string> header, std::vector<bool> right) : right_(std::move(right)) {
    rows_.push_back(std::move(header));
  }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  bool empty() const { return rows_.size() == 1; }
  void Print(std::ostream& out) const {
    std::vector<size_t> width(rows_[0].size(), 0);
    for (const auto& row : rows_)
      for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
    for (const auto& row : rows_) {
      std::string line;
      for (size_t c = 0; c < row.size(); ++c) {
        const std::string pad(width[c] - row[c].size(), ' ');
        const bool last = c + 1 == row.size();
        line += right_[c] ? pad + row[c] : (last ? row[c] : row[c] + pad);
        if (!last) line += "  ";
      }
      out << line << "\n";
    }
  }

 private:
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

std::string Str(uint64_t v) { return std::to_string(v); }
std::string SeqStr(Seq s) { return std::to_string(s.value); }

std::string Percent(uint64_t part, uint64_t whole) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return buf;
}

void Key(JsonWriter& w, const char* key) { w.Key(key); }
void JsonString(JsonWriter& w, std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); }
void JsonTime(JsonWriter& w, std::optional<TimeNs> t) {
  if (t) {
    JsonString(w, FormatRfc3339(*t));
  } else {
    w.Null();
  }
}
void JsonAge(JsonWriter& w, std::optional<TimeNs> t, TimeNs now) {
  if (t) {
    w.Double(static_cast<double>(std::max<int64_t>(0, now.ns - t->ns)) / 1e9);
  } else {
    w.Null();
  }
}

std::string Ago(std::optional<TimeNs> t, TimeNs now) {
  return t ? FormatAge(nanoseconds(now.ns - t->ns)) : "-";
}

const char* KindName(StreamKind kind) { return kind == StreamKind::kTable ? "table" : "log"; }

// ---- status -------------------------------------------------------------------------------------------------

struct StatusData {
  EnvStats env;
  std::vector<StreamStats> streams;
  std::vector<UplinkBacklog> uplinks;
  bool have_config = false;
};

std::vector<std::string> ForwardedStreams(const Config& config, const UplinkConfig& uplink) {
  if (!uplink.streams.empty()) return uplink.streams;
  std::vector<std::string> names;
  for (const auto& s : config.streams) names.push_back(s.name);
  return names;
}

// The ingest time of the first readable record at or after `pos`; nullopt if none (or it is damaged).
std::optional<TimeNs> IngestTimeAt(EventLog& log, std::string_view stream, Seq pos) {
  auto it = log.NewIterator(stream);
  if (!it) return std::nullopt;
  (*it)->Seek(pos);
  if (!(*it)->Valid()) return std::nullopt;
  return (*it)->record().ingest_time;
}

Result<StatusData> CollectStatus(EventLog& log, const Config* config) {
  StatusData d;
  auto env = log.GetEnvStats();
  if (!env) return tl::unexpected(env.error());
  d.env = *env;
  for (const auto& name : log.ListStreams()) {
    auto s = log.GetStreamStats(name);
    if (!s) return MakeError(s.error().code, StreamError(log, name, s.error()));
    d.streams.push_back(std::move(*s));
  }
  if (config == nullptr) return d;
  d.have_config = true;
  d.uplinks = UplinkBacklogs(log, *config, d.streams);
  return d;
}

}  // namespace

std::vector<UplinkBacklog> UplinkBacklogs(EventLog& log, const Config& config, const std::vector<StreamStats>& streams) {
  std::vector<UplinkBacklog> rows;
  for (const auto& up : config.uplinks) {
    const std::string cursor_name = UplinkCursorName(up.name);
    for (const auto& stream : ForwardedStreams(config, up)) {
      UplinkBacklog row;
      row.uplink = up.name;
      row.stream = stream;
      auto s = std::find_if(streams.begin(), streams.end(), [&](const StreamStats& x) { return x.name == stream; });
      if (s == streams.end()) {
        row.missing = true;
        rows.push_back(std::move(row));
        continue;
      }
      auto c = std::find_if(s->cursors.begin(), s->cursors.end(),
                            [&](const CursorInfo& x) { return x.name == cursor_name; });
      if (c != s->cursors.end()) {
        row.cursor = c->position;
        row.backlog = c->lag;
        if (c->lag > 0) row.oldest_unsent = IngestTimeAt(log, stream, c->position);
      } else {
        row.backlog = s->count;
        if (s->count > 0) row.oldest_unsent = s->oldest_ingest_time;
      }
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

namespace {

std::optional<TimeNs> OldestOf(const StreamStats& s) {
  return s.count > 0 ? std::optional<TimeNs>(s.oldest_ingest_time) : std::nullopt;
}

void PrintStatusText(const StatusData& d, const std::string& path, TimeNs now, std::ostream& out) {
  const EnvStats& e = d.env;
  out << "log " << path << "\n"
      << "map " << FormatBytes(e.map_size) << ", used " << FormatBytes(e.used_bytes) << " ("
      << Percent(e.used_bytes, e.map_size) << "), high water " << FormatBytes(e.high_water_bytes) << " ("
      << Percent(e.high_water_bytes, e.map_size) << "), readers " << e.readers << "\n\n";

  // One column for the evictions, in EvictReason order (the JSON names each reason).
  static_assert(kEvictReasonCount == 4, "update the EVICTED column header");
  Table streams({"STREAM", "KIND", "COUNT", "BYTES", "FIRST", "LAST", "OLDEST", "AGE", "EVICTED(age/bytes/compact/budget)"},
                {false, false, true, true, true, true, false, true, false});
  Table cursors({"STREAM", "CURSOR", "POSITION", "LAG"}, {false, false, true, true});
  for (const auto& s : d.streams) {
    const auto oldest = OldestOf(s);
    std::vector<std::string> row{s.name,
                                 KindName(s.options.kind),
                                 Str(s.count),
                                 FormatBytes(s.bytes),
                                 s.count > 0 ? SeqStr(s.first_seq) : "-",
                                 s.last_seq.value > 0 ? SeqStr(s.last_seq) : "-",
                                 oldest ? FormatRfc3339(*oldest) : "-",
                                 Ago(oldest, now)};
    std::string evicted;
    for (uint64_t n : s.evicted) evicted += (evicted.empty() ? "" : "/") + Str(n);
    row.push_back(evicted);
    streams.Add(std::move(row));
    for (const auto& c : s.cursors) cursors.Add({s.name, c.name, SeqStr(c.position), Str(c.lag)});
  }
  if (streams.empty()) {
    out << "no streams\n";
  } else {
    streams.Print(out);
  }
  if (!cursors.empty()) {
    out << "\n";
    cursors.Print(out);
  }
  out << "\n";
  if (!d.have_config) {
    out << "uplinks: unknown (no config read; pass -c FILE)\n";
    return;
  }
  if (d.uplinks.empty()) {
    out << "uplinks: none configured\n";
    return;
  }
  Table uplinks({"UPLINK", "STREAM", "CURSOR", "BACKLOG", "OLDEST_UNSENT", "AGE"},
                {false, false, true, true, false, true});
  for (const auto& u : d.uplinks) {
    if (u.missing) {
      uplinks.Add({u.uplink, u.stream, "-", "-", "(stream not in log)", "-"});
      continue;
    }
    uplinks.Add({u.uplink, u.stream, u.cursor ? SeqStr(*u.cursor) : "(none)", Str(u.backlog),
                 u.oldest_unsent ? FormatRfc3339(*u.oldest_unsent) : "-", Ago(u.oldest_unsent, now)});
  }
  uplinks.Print(out);
}

void PrintStatusJson(const StatusData& d, const std::string& path, TimeNs now, std::ostream& out) {
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  w.StartObject();
  Key(w, "log");
  JsonString(w, path);
  Key(w, "now");
  JsonString(w, FormatRfc3339(now));
  Key(w, "env");
  w.StartObject();
  Key(w, "map_size");
  w.Uint64(d.env.map_size);
  Key(w, "used_bytes");
  w.Uint64(d.env.used_bytes);
  Key(w, "used_pct");
  w.Double(d.env.map_size == 0 ? 0.0 : 100.0 * static_cast<double>(d.env.used_bytes) / static_cast<double>(d.env.map_size));
  Key(w, "high_water_bytes");
  w.Uint64(d.env.high_water_bytes);
  Key(w, "page_size");
  w.Uint64(d.env.page_size);
  Key(w, "readers");
  w.Uint(d.env.readers);
  w.EndObject();

  Key(w, "streams");
  w.StartArray();
  for (const auto& s : d.streams) {
    const auto oldest = OldestOf(s);
    w.StartObject();
    Key(w, "name");
    JsonString(w, s.name);
    Key(w, "kind");
    w.String(KindName(s.options.kind));
    Key(w, "count");
    w.Uint64(s.count);
    Key(w, "bytes");
    w.Uint64(s.bytes);
    Key(w, "first_seq");
    w.Uint64(s.first_seq.value);
    Key(w, "last_seq");
    w.Uint64(s.last_seq.value);
    Key(w, "oldest_ingest_time");
    JsonTime(w, oldest);
    Key(w, "oldest_age_s");
    JsonAge(w, oldest, now);
    Key(w, "evicted");
    w.StartObject();
    for (int r = 0; r < kEvictReasonCount; ++r) {
      Key(w, EvictReasonName(static_cast<EvictReason>(r)));
      w.Uint64(s.evicted[r]);
    }
    w.EndObject();
    Key(w, "cursors");
    w.StartArray();
    for (const auto& c : s.cursors) {
      w.StartObject();
      Key(w, "name");
      JsonString(w, c.name);
      Key(w, "position");
      w.Uint64(c.position.value);
      Key(w, "lag");
      w.Uint64(c.lag);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();

  Key(w, "uplinks");
  if (!d.have_config) {
    w.Null();
  } else {
    w.StartArray();
    for (const auto& u : d.uplinks) {
      w.StartObject();
      Key(w, "uplink");
      JsonString(w, u.uplink);
      Key(w, "stream");
      JsonString(w, u.stream);
      Key(w, "in_log");
      w.Bool(!u.missing);
      Key(w, "cursor");
      if (u.cursor) {
        w.Uint64(u.cursor->value);
      } else {
        w.Null();
      }
      Key(w, "backlog");
      w.Uint64(u.backlog);
      Key(w, "oldest_unsent_time");
      JsonTime(w, u.oldest_unsent);
      Key(w, "oldest_unsent_age_s");
      JsonAge(w, u.oldest_unsent, now);
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
  out << sb.GetString() << "\n";
}

// ---- tail ---------------------------------------------------------------------------------------------------

void PrintRecord(const RecordView& r, const TailOptions& o, std::ostream& out) {
  if (o.json) {
    out << EventToJson(CloudEventOf(o.gateway, o.stream, r.seq, r.ingest_time, r.ToEvent())) << "\n";
    return;
  }
  out << r.seq.value << "  " << FormatRfc3339(r.ingest_time) << "  " << (r.id.empty() ? "-" : r.id) << "  "
      << (r.subject.empty() ? "-" : r.subject) << "  " << PrintablePayload(r.payload, o.full ? 0 : o.payload_width)
      << "\n";
}

// The seq from which the last `n` records of the stream start. Log streams are dense, so the first window
// is exact; kTable streams have compaction gaps, so the window doubles until it holds n records.
Result<Seq> LastNStart(EventLog& log, const StreamStats& s, uint64_t n) {
  const Seq end = s.last_seq.next();
  if (n == 0 || s.count == 0) return end;
  for (uint64_t window = n;; window = window > UINT64_MAX / 2 ? UINT64_MAX : window * 2) {
    const Seq start = end.value - s.first_seq.value > window ? Seq{end.value - window} : s.first_seq;
    std::vector<Seq> seqs;
    Seq pos = start;
    auto scanned = Scan(
        log, s.name, &pos,
        [&](const RecordView& r) {
          if (r.seq > s.last_seq) return false;  // appended since the stats were read
          seqs.push_back(r.seq);
          return true;
        },
        [&](const Damage& d) { seqs.push_back(d.first); });
    if (!scanned) return tl::unexpected(scanned.error());
    if (seqs.size() >= n) return seqs[seqs.size() - n];
    if (start == s.first_seq) return seqs.empty() ? end : seqs.front();
  }
}

// ---- replay -------------------------------------------------------------------------------------------------

// Records in [from, to).
Result<uint64_t> CountRange(EventLog& log, const StreamStats& s, Seq from, Seq to) {
  from = std::max(from, s.first_seq);
  to = std::min(to, s.last_seq.next());
  if (to <= from) return uint64_t{0};
  if (s.options.kind == StreamKind::kLog) return to.value - from.value;  // retention trims only the head
  uint64_t n = 0;
  Seq pos = from;
  auto scanned = Scan(
      log, s.name, &pos,
      [&](const RecordView& r) {
        if (r.seq >= to) return false;
        ++n;
        return true;
      },
      [&](const Damage&) { ++n; });
  if (!scanned) return tl::unexpected(scanned.error());
  return n;
}

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

}  // namespace

// ---- Public -------------------------------------------------------------------------------------------------

Result<Target> ResolveTarget(const std::string& config_path, bool config_given, const std::string& log_path) {
  Target t;
  t.log_path = log_path;
  if (!log_path.empty() && !config_given) return t;
  auto config = LoadConfigFile(config_path);
  if (!config) {
    const std::string& m = config.error().message;
    // Make sure the message names the file even when the loader's does not.
    return MakeError(config.error().code, m.find(config_path) == std::string::npos ? config_path + ": " + m : m);
  }
  if (t.log_path.empty()) t.log_path = config->storage.path;
  if (t.log_path.empty()) return InvalidArgument(config_path + ": storage.path is empty");
  t.config = std::move(*config);
  return t;
}

Result<std::unique_ptr<EventLog>> OpenReadOnly(const std::string& path) {
  EventLogOptions o;
  o.path = path;
  o.read_only = true;
  o.max_streams = kMaxStreams;
  auto log = EventLog::Open(o);
  if (!log && log.error().code != ErrorCode::kNotFound) {
    return MakeError(log.error().code, "event log " + path + ": " + log.error().message);
  }
  return log;
}

Result<std::unique_ptr<EventLog>> OpenReadWrite(const std::string& path) {
  size_t map_size = 0;
  {
    // The read-only open proves a log is there (a read-write open would create one) and tells its map size.
    auto ro = OpenReadOnly(path);
    if (!ro) return tl::unexpected(ro.error());
    auto env = (*ro)->GetEnvStats();
    if (!env) return tl::unexpected(env.error());
    map_size = env->map_size;
  }
  EventLogOptions o;
  o.path = path;
  o.map_size = map_size;
  o.max_streams = kMaxStreams;
  auto log = EventLog::Open(o);
  if (!log) return MakeError(log.error().code, "event log " + path + ": " + log.error().message);
  return log;
}

Result<Position> ParsePosition(std::string_view text) {
  Position p;
  if (!text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    errno = 0;
    const std::string s(text);
    const unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
    if (errno == ERANGE) return InvalidArgument("--from " + s + ": seq out of range");
    p.seq = Seq{v};
    return p;
  }
  auto t = ParseRfc3339(text);
  if (!t) {
    return InvalidArgument("--from \"" + std::string(text) +
                           "\": neither a seq number nor an RFC 3339 time (e.g. 2024-05-01T12:00:00Z)");
  }
  p.time = *t;
  return p;
}

Result<Seq> ResolvePosition(EventLog& log, std::string_view stream, const Position& pos) {
  if (pos.seq) return *pos.seq;
  auto it = log.NewIterator(stream);
  if (!it) return tl::unexpected(it.error());
  (*it)->SeekToTime(*pos.time);
  if ((*it)->Valid()) return (*it)->record().seq;
  if (!(*it)->status()) return tl::unexpected((*it)->status().error());
  it->reset();  // one read transaction at a time
  auto s = log.GetStreamStats(stream);
  if (!s) return tl::unexpected(s.error());
  return s->last_seq.next();
}

int RunStatus(EventLog& log, const Config* config, const StatusOptions& options, const CtlEnv& env,
              std::ostream& out, std::ostream& err) {
  auto d = CollectStatus(log, config);
  if (!d) return Fail(err, d.error().message);
  const TimeNs now = env.clock->Now();
  if (options.json) {
    PrintStatusJson(*d, log.options().path, now, out);
  } else {
    PrintStatusText(*d, log.options().path, now, out);
  }
  return kExitOk;
}

int RunTail(EventLog& log, const TailOptions& o, const CtlEnv& env, std::ostream& out, std::ostream& err) {
  if (o.json && o.gateway.empty())
    return Fail(err, "tail --json names events as the uplinks do, by the gateway id: give the config (-c FILE) or "
                     "--gateway ID", kExitUsage);
  auto stats = log.GetStreamStats(o.stream);
  if (!stats) return Fail(err, StreamError(log, o.stream, stats.error()));

  Seq pos;
  if (!o.from.empty()) {
    auto p = ParsePosition(o.from);
    if (!p) return Fail(err, p.error().message, kExitUsage);
    auto resolved = ResolvePosition(log, o.stream, *p);
    if (!resolved) return Fail(err, StreamError(log, o.stream, resolved.error()));
    pos = *resolved;
  } else {
    auto start = LastNStart(log, *stats, o.limit.value_or(10));
    if (!start) return Fail(err, StreamError(log, o.stream, start.error()));
    pos = *start;
  }
  uint64_t limit = o.limit.value_or(o.from.empty() ? 10 : UINT64_MAX);  // of this batch

  uint64_t printed = 0;
  uint64_t batch = 0;
  bool damaged = false;
  auto done = [&] { return o.max_count && printed >= *o.max_count; };
  auto visit = [&](const RecordView& r) {
    if (done() || batch >= limit) return false;
    PrintRecord(r, o, out);
    ++printed;
    ++batch;
    return true;
  };
  auto on_damage = [&](const Damage& d) {
    damaged = true;
    out.flush();
    err << "ferryctl: " << DamageLine(o.stream, d) << "\n";
  };
  auto run = [&]() -> bool {
    auto scanned = Scan(log, o.stream, &pos, visit, on_damage);
    out.flush();
    if (!scanned) {
      Fail(err, StreamError(log, o.stream, scanned.error()));
      return false;
    }
    return true;
  };
  if (limit > 0 && !done() && !run()) return kExitRuntime;
  if (!o.follow) return damaged ? kExitRuntime : kExitOk;

  // Follow what is appended after the stream's end as it was at the start (or after the last printed).
  pos = std::max(pos, stats->last_seq.next());
  limit = UINT64_MAX;
  const auto start = env.clock->Steady();
  while (!done()) {
    milliseconds d = o.poll_interval;
    if (o.max_wait) {
      const auto left = *o.max_wait - (env.clock->Steady() - start);
      if (left <= nanoseconds::zero()) break;
      d = std::min(d, std::chrono::ceil<milliseconds>(left));
    }
    if (!env.wait || !env.wait(d)) break;
    batch = 0;
    if (!run()) return kExitRuntime;
  }
  return damaged ? kExitRuntime : kExitOk;
}

Result<ReplayPlan> PlanReplay(EventLog& log, const Config& config, const ReplayOptions& o) {
  const UplinkConfig* up = config.FindUplink(o.uplink);
  if (up == nullptr) {
    std::vector<std::string> names;
    for (const auto& u : config.uplinks) names.push_back(u.name);
    return NotFound("unknown uplink '" + o.uplink + "': " + config.source_name + " declares " + Join(names));
  }
  const auto forwarded = ForwardedStreams(config, *up);
  if (std::find(forwarded.begin(), forwarded.end(), o.stream) == forwarded.end()) {
    return InvalidArgument("uplink '" + o.uplink + "' does not forward stream '" + o.stream + "' (it forwards " +
                           Join(forwarded) + ")");
  }
  auto pos = ParsePosition(o.from);
  if (!pos) return tl::unexpected(pos.error());
  auto stats = log.GetStreamStats(o.stream);
  if (!stats) return MakeError(stats.error().code, StreamError(log, o.stream, stats.error()));

  ReplayPlan plan;
  plan.key = ReplayRequestKey(o.uplink, o.stream);
  auto requested = ResolvePosition(log, o.stream, *pos);
  if (!requested) return MakeError(requested.error().code, StreamError(log, o.stream, requested.error()));
  plan.requested = *requested;
  plan.target = plan.requested;
  const Seq first = std::max(stats->first_seq, Seq{1});  // ferryd refuses seq 0
  if (plan.target < first) {
    plan.target = first;
    plan.clamped = true;
  }

  auto cursor = log.GetCursor(o.stream, UplinkCursorName(o.uplink));
  if (cursor) {
    plan.cursor = *cursor;
  } else if (cursor.error().code != ErrorCode::kNotFound) {
    return tl::unexpected(cursor.error());
  }
  // A stream never forwarded is sent from its first record: there is nothing to rewind.
  const Seq from_here = plan.cursor.value_or(first);
  if (plan.target > from_here) {
    auto skipped = CountRange(log, *stats, from_here, plan.target);
    return InvalidArgument("seq " + SeqStr(plan.target) + " is past uplink '" + o.uplink + "' cursor " +
                           SeqStr(from_here) + " on stream '" + o.stream + "': a replay only rewinds (" +
                           (skipped ? Str(*skipped) : std::string("some")) + " unsent events would be skipped)");
  }
  auto resend = CountRange(log, *stats, plan.target, from_here);
  if (!resend) return tl::unexpected(resend.error());
  plan.resend = *resend;

  auto pending = log.GetState(plan.key);
  if (pending) {
    plan.pending = *pending;
  } else if (pending.error().code != ErrorCode::kNotFound) {
    return tl::unexpected(pending.error());
  }
  return plan;
}

int RunPoisoned(EventLog& log, const PoisonedOptions& o, std::ostream& out, std::ostream& err) {
  // Keys: uplink/<uplink>/poisoned/<stream>/<first seq, 20 digits>; values: "<first>-<last> <reason>".
  const std::string prefix = o.uplink.empty() ? "uplink/" : "uplink/" + o.uplink + "/poisoned/";
  auto entries = log.ListState(prefix);
  if (!entries) return Fail(err, "reading the log's state: " + entries.error().message);
  struct Row {
    std::string uplink, stream, reason;
    uint64_t first = 0, last = 0;
  };
  std::vector<Row> rows;
  static const std::string kMid = "/poisoned/";
  for (const auto& [key, value] : *entries) {
    const size_t mid = key.find(kMid, 7);
    const size_t slash = mid == std::string::npos ? mid : key.rfind('/');
    if (mid == std::string::npos || slash <= mid + kMid.size()) continue;  // another uplink/ key
    Row r;
    r.uplink = key.substr(7, mid - 7);
    r.stream = key.substr(mid + kMid.size(), slash - mid - kMid.size());
    char* end = nullptr;
    r.first = std::strtoull(value.c_str(), &end, 10);
    r.last = *end == '-' ? std::strtoull(end + 1, &end, 10) : r.first;
    r.reason = *end == ' ' ? std::string(end + 1) : std::string("?");
    rows.push_back(std::move(r));
  }
  if (o.json) {
    for (const Row& r : rows) {
      rapidjson::StringBuffer sb;
      JsonWriter w(sb);
      w.StartObject();
      Key(w, "uplink");
      JsonString(w, r.uplink);
      Key(w, "stream");
      JsonString(w, r.stream);
      Key(w, "first_seq");
      w.Uint64(r.first);
      Key(w, "last_seq");
      w.Uint64(r.last);
      Key(w, "events");
      w.Uint64(r.last >= r.first ? r.last - r.first + 1 : 0);
      Key(w, "reason");
      JsonString(w, r.reason);
      w.EndObject();
      out << sb.GetString() << "\n";
    }
    return kExitOk;
  }
  if (rows.empty()) {
    out << "no events set aside" << (o.uplink.empty() ? "" : " by uplink '" + o.uplink + "'") << "\n";
    return kExitOk;
  }
  size_t wu = 6, ws = 6, wq = 4;
  for (const Row& r : rows) {
    wu = std::max(wu, r.uplink.size());
    ws = std::max(ws, r.stream.size());
    wq = std::max(wq, std::to_string(r.first).size() + 1 + std::to_string(r.last).size());
  }
  auto pad = [](const std::string& x, size_t w) { return x + std::string(w > x.size() ? w - x.size() : 0, ' '); };
  out << pad("UPLINK", wu) << "  " << pad("STREAM", ws) << "  " << pad("SEQS", wq) << "  EVENTS  REASON\n";
  for (const Row& r : rows) {
    out << pad(r.uplink, wu) << "  " << pad(r.stream, ws) << "  "
        << pad(std::to_string(r.first) + "-" + std::to_string(r.last), wq) << "  "
        << pad(std::to_string(r.last >= r.first ? r.last - r.first + 1 : 0), 6) << "  " << r.reason << "\n";
  }
  out << "(the records stay in the log until retention: ferryctl tail STREAM --from FIRST -n EVENTS --full)\n";
  return kExitOk;
}

int RunReplay(EventLog& log, const Config& config, const ReplayOptions& o, const CtlEnv& env, std::istream& in,
              std::ostream& out, std::ostream& err) {
  if (auto p = ParsePosition(o.from); !p) return Fail(err, p.error().message, kExitUsage);
  auto plan = PlanReplay(log, config, o);
  if (!plan) return Fail(err, plan.error().message);

  if (plan->clamped) {
    out << "note: seq " << plan->requested.value << " is before the first record of '" << o.stream
        << "' (older records are gone); replaying from seq " << plan->target.value << "\n";
  }
  out << "uplink '" << o.uplink << "', stream '" << o.stream << "': cursor "
      << (plan->cursor ? SeqStr(*plan->cursor) : std::string("(none)")) << " -> " << plan->target.value << ", "
      << plan->resend << " events will be re-sent\n";
  if (plan->pending) out << "note: replaces a request not yet applied (seq " << *plan->pending << ")\n";
  if (!o.yes) {
    out << "proceed? [y/N] " << std::flush;
    std::string answer;
    if (!std::getline(in, answer)) out << "\n";  // EOF: end the prompt line
    if (answer != "y" && answer != "Y" && answer != "yes") return Fail(err, "not confirmed; nothing written (--yes skips the question)");
  }

  auto txn = log.BeginWrite();
  if (!txn) return Fail(err, "cannot write the replay request: " + txn.error().ToString());
  const std::string value = SeqStr(plan->target);
  if (Status st = (*txn)->PutState(plan->key, value); !st) {
    return Fail(err, "cannot write the replay request: " + st.error().ToString());
  }
  if (Status st = (*txn)->Commit(); !st) return Fail(err, "cannot write the replay request: " + st.error().ToString());
  out << "requested: " << plan->key << " = " << value << "\n" << std::flush;

  // ferryd deletes the key in the transaction that moves its cursor.
  const auto deadline = env.clock->Steady() + o.wait;
  for (;;) {
    auto state = log.GetState(plan->key);
    if (!state && state.error().code == ErrorCode::kNotFound) {
      out << "applied\n";
      return kExitOk;
    }
    if (!state) return Fail(err, "reading the replay request back: " + state.error().ToString());
    if (*state != value) {
      out << "superseded by another request (seq " << *state << ")\n";
      return kExitOk;
    }
    const auto left = deadline - env.clock->Steady();
    if (left <= nanoseconds::zero() || !env.wait ||
        !env.wait(std::min(o.poll_interval, std::chrono::ceil<milliseconds>(left)))) {
      break;
    }
  }
  out << "queued: ferryd will apply it when it runs\n";
  return kExitOk;
}

std::string FormatBytes(uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes) / 1024.0;
  size_t u = 0;
  while (v >= 1024.0 && u + 1 < sizeof kUnits / sizeof kUnits[0]) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

std::string FormatAge(nanoseconds age) {
  int64_t s = std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::seconds>(age).count());
  static constexpr struct {
    int64_t secs;
    const char* unit;
  } kUnits[] = {{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};
  std::string out;
  int parts = 0;
  for (const auto& u : kUnits) {
    if (parts == 0 && s < u.secs && u.secs > 1) continue;
    out += std::to_string(s / u.secs) + u.unit;
    s %= u.secs;
    if (++parts == 2) break;
  }
  return out;
}

std::string PrintablePayload(std::string_view payload, size_t width) {
  std::string out;
  size_t used = 0;
  for (; used < payload.size(); ++used) {
    const auto c = static_cast<unsigned char>(payload[used]);
    std::string piece;
    switch (c) {
      case '\n': piece = "\\n"; break;
      case '\r': piece = "\\r"; break;
      case '\t': piece = "\\t"; break;
      case '\\': piece = "\\\\"; break;
      default:
        if (c >= 0x20 && c < 0x7f) {
          piece.assign(1, static_cast<char>(c));
        } else {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          piece = buf;
        }
    }
    if (width != 0 && out.size() + piece.size() > width) break;
    out += piece;
  }
  if (used < payload.size()) out += "... (" + std::to_string(payload.size()) + " bytes)";
  return out;
}

}  // namespace ferry::ctl
