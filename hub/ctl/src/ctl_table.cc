// ferryctl table: a table stream's rows and the positions of the downlinks that write it.
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <map>
#include <ostream>

#include "ferry/ctl.h"
#include "ferry/downlink.h"
#include "ferry/write_txn.h"
#include "ferry/rfc3339.h"
#include "ferry/stream_iterator.h"

namespace ferry::ctl {

namespace {

struct Row {
  uint64_t seq = 0;
  TimeNs time{};
  std::string value;
};

std::string Cut(const std::string& s, size_t width) {
  std::string out;
  for (char c : s) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  if (width > 3 && out.size() > width) out = out.substr(0, width - 3) + "...";
  return out;
}

void PrintRow(const std::string& key, const Row& r, const TableOptions& o, std::ostream& out) {
  if (o.json) {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("key");
    w.String(key.c_str(), static_cast<rapidjson::SizeType>(key.size()));
    w.Key("seq");
    w.Uint64(r.seq);
    w.Key("time");
    const std::string t = r.time.ns > 0 ? FormatRfc3339(r.time) : "";
    w.String(t.c_str());
    w.Key("value");
    w.String(r.value.c_str(), static_cast<rapidjson::SizeType>(r.value.size()));
    w.EndObject();
    out << sb.GetString() << "\n";
    return;
  }
  out << key << "  " << r.seq << "  " << Cut(r.value, o.width) << "\n";
}

}  // namespace

int RunTable(EventLog& log, const Config* config, const TableOptions& o, std::ostream& out, std::ostream& err) {
  auto options = log.GetStreamOptions(o.table);
  if (!options) {
    err << "ferryctl table: " << o.table << ": " << options.error().message << "\n";
    return kExitRuntime;
  }
  if (options->kind != StreamKind::kTable) {
    err << "ferryctl table: stream " << o.table << " is not a table (kind = \"table\")\n";
    return kExitRuntime;
  }
  if (!o.key.empty()) {
    auto r = log.LookupLatest(o.table, o.key);
    if (!r) {
      err << "ferryctl table: " << r.error().message << "\n";
      return kExitRuntime;
    }
    if (r->event.payload.empty()) {
      err << "ferryctl table: row '" << o.key << "' of " << o.table << " was deleted (seq " << r->seq.value << ")\n";
      return kExitRuntime;
    }
    PrintRow(o.key, Row{r->seq.value, r->event.time, r->event.payload}, o, out);
    return kExitOk;
  }
  // Every row: the latest record of each key. Compaction keeps the table near one record per key, but reads
  // may see superseded records not yet compacted: the later one wins.
  std::map<std::string, Row> rows;
  auto it = log.NewIterator(o.table);
  if (!it) {
    err << "ferryctl table: " << it.error().message << "\n";
    return kExitRuntime;
  }
  for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) {
    const RecordView& r = (*it)->record();
    if (r.payload.empty()) rows.erase(std::string(r.subject));
    else rows[std::string(r.subject)] = Row{r.seq.value, r.time, std::string(r.payload)};
  }
  if (!(*it)->status()) {
    err << "ferryctl table: " << (*it)->status().error().message << "\n";
    return kExitRuntime;
  }
  it->reset();
  for (const auto& [key, row] : rows) PrintRow(key, row, o, out);
  if (o.json) return kExitOk;
  out << rows.size() << (rows.size() == 1 ? " row" : " rows") << " in " << o.table << "\n";
  if (config == nullptr) return kExitOk;
  for (const DownlinkConfig& d : config->downlinks) {
    if (d.table != o.table) continue;
    if (log.GetState(DownlinkResetKey(d.name)))
      out << "downlink " << d.name << ": a reset is pending (ferryd fetches the whole table again)\n";
    if (d.type == DownlinkType::kMqtt) {
      auto sync = log.GetState(DownlinkMqttStateKey(d.name));
      out << "downlink " << d.name << " (mqtt " << d.address << ", filter " << d.topic << "): ";
      if (!sync) out << "no full sync yet\n";
      else if (*sync == "syncing") out << "a full sync is under way (it restarts in full if interrupted)\n";
      else if (*sync == "open") out << "in sync (ferryd is running, or did not stop cleanly: then a full sync follows)\n";
      else out << "in sync; the next start resumes the broker session (changes only)\n";
      continue;
    }
    // The partitions' positions: the downlink's state keys under its topic (not its reset request).
    const std::string prefix = DownlinkStatePrefix(d.name);
    auto state = log.ListState(prefix + d.topic + ".");
    out << "downlink " << d.name << " (kafka " << d.address << ", topic " << d.topic << "): ";
    if (!state || state->empty()) {
      out << "no position yet (the first sync reads each partition from the beginning)\n";
      continue;
    }
    out << "next offset by partition:";
    for (const auto& [key, value] : *state) out << " " << key.substr(prefix.size()) << "=" << value;
    out << "\n";
  }
  return kExitOk;
}

int RunDownlinkReset(EventLog& log, const Config& config, const DownlinkResetOptions& o, std::ostream& out,
                     std::ostream& err) {
  const DownlinkConfig* d = nullptr;
  std::vector<std::string> names;
  for (const auto& c : config.downlinks) {
    names.push_back(c.name);
    if (c.name == o.downlink) d = &c;
  }
  if (d == nullptr) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    err << "ferryctl: no downlink \"" << o.downlink << "\" in " << config.source_name
        << (list.empty() ? std::string(" (it declares none)") : " (it declares " + list + ")") << "\n";
    return kExitRuntime;
  }
  Status st = log.Update([&](WriteTxn& txn) { return txn.PutState(DownlinkResetKey(d->name), "requested"); });
  if (!st) {
    err << "ferryctl: writing the reset request: " << st.error().ToString() << "\n";
    return kExitRuntime;
  }
  out << "downlink " << d->name << ": reset requested. ferryd (within a second, or at its next start) fetches "
      << (d->type == DownlinkType::kMqtt ? "every retained message under " + d->topic + " again (a full sync)"
                                         : "topic " + d->topic + " again from the beginning")
      << " into table " << d->table << ", then deletes the rows the source no longer has; `ferryctl table "
      << d->table << "` says while it is pending.\n";
  return kExitOk;
}

}  // namespace ferry::ctl
