// downlink.cc: what both downlink sources share (see ferry/downlink.h): rows, their checks, their transaction.
#include "ferry/downlink.h"

#include <map>

#include "downlink_kafka.h"
#include "downlink_mqtt.h"
#include "ferry/log.h"
#include "ferry/stream_iterator.h"
#include "ferry/utf8.h"
#include "ferry/write_txn.h"

namespace ferry {

namespace {
constexpr size_t kMaxKeyBytes = 511;  // LMDB's key limit: the table's subject index
}  // namespace

std::string DownlinkStatePrefix(const std::string& downlink) { return "downlink." + downlink + "."; }

std::string DownlinkPositionKey(const std::string& downlink, const std::string& topic, int32_t partition) {
  return DownlinkStatePrefix(downlink) + topic + "." + std::to_string(partition);
}

std::string DownlinkMqttStateKey(const std::string& downlink) { return DownlinkStatePrefix(downlink) + "mqtt.sync"; }

std::string DownlinkResetKey(const std::string& downlink) { return DownlinkStatePrefix(downlink) + "reset"; }

std::string DownlinkMqttRowKey(std::string_view filter, std::string_view topic) {
  // Walk the filter's literal levels; the key starts where the first wildcard level does.
  size_t f = 0, t = 0;
  for (;;) {
    const size_t fe = std::min(filter.find('/', f), filter.size());
    const std::string_view level = filter.substr(f, fe - f);
    if (level == "+" || level == "#") return t <= topic.size() ? std::string(topic.substr(t)) : std::string();
    const size_t te = std::min(topic.find('/', t), topic.size());
    if (topic.substr(t, te - t) != level || te == topic.size() || fe == filter.size()) return "";
    f = fe + 1;
    t = te + 1;
  }
}

std::unique_ptr<Downlink> Downlink::Make(const Config& config, const DownlinkConfig& downlink, EventLog& log,
                                         GroupCommitWriter& writer, MetricsRegistry& metrics, const Clock& clock) {
  if (downlink.type == DownlinkType::kMqtt)
    return std::make_unique<MqttDownlink>(config, downlink, log, writer, metrics, clock);
  return std::make_unique<KafkaDownlink>(config, downlink, log, writer, metrics, clock);
}

Downlink::Downlink(const Config& config, const DownlinkConfig& downlink, EventLog& log, GroupCommitWriter& writer,
                   MetricsRegistry& metrics, const Clock& clock)
    : config_(config), dl_(downlink), log_(log), writer_(writer), clock_(clock),
      records_(DeclaredCounter(metrics, "ferry_downlink_records_total", {{"downlink", downlink.name}})),
      deletes_(DeclaredCounter(metrics, "ferry_downlink_deletes_total", {{"downlink", downlink.name}})),
      bytes_(DeclaredCounter(metrics, "ferry_downlink_bytes_total", {{"downlink", downlink.name}})),
      no_key_(DeclaredCounter(metrics, "ferry_downlink_skipped_total", {{"downlink", downlink.name}, {"reason", "no_key"}})),
      bad_key_(DeclaredCounter(metrics, "ferry_downlink_skipped_total", {{"downlink", downlink.name}, {"reason", "bad_key"}})),
      too_large_(DeclaredCounter(metrics, "ferry_downlink_skipped_total",
                                 {{"downlink", downlink.name}, {"reason", "too_large"}})),
      refused_(DeclaredCounter(metrics, "ferry_downlink_skipped_total", {{"downlink", downlink.name}, {"reason", "refused"}})),
      lag_(DeclaredGauge(metrics, "ferry_downlink_lag_records", {{"downlink", downlink.name}})),
      last_sync_(DeclaredGauge(metrics, "ferry_downlink_last_sync_timestamp_seconds", {{"downlink", downlink.name}})),
      link_up_(DeclaredGauge(metrics, "ferry_downlink_link_up", {{"downlink", downlink.name}})) {}

std::optional<Event> Downlink::MakeRow(std::string_view key, std::optional<std::string_view> value, std::string id,
                                       TimeNs time) {
  bytes_.Inc(key.size() + (value ? value->size() : 0));
  if (key.empty()) {
    no_key_.Inc();
    return std::nullopt;
  }
  if (key.size() > kMaxKeyBytes || !IsLegalUnicodeString(key)) {
    bad_key_.Inc();
    return std::nullopt;
  }
  if (key.size() + (value ? value->size() : 0) > dl_.max_row_bytes) {
    too_large_.Inc();
    FERRY_LOG_WARN("downlink %s: row '%.*s' has %zu bytes, over max_row_bytes (%llu): skipped", dl_.name.c_str(),
                   static_cast<int>(key.size()), key.data(), key.size() + (value ? value->size() : 0),
                   static_cast<unsigned long long>(dl_.max_row_bytes));
    return std::nullopt;
  }
  Event e;
  e.id = std::move(id);
  e.source = "ferry://" + config_.gateway.id + "/downlink/" + dl_.name;
  e.subject = std::string(key);
  if (value && !value->empty()) {
    e.type = "ferry.downlink.row";
    e.payload.assign(value->data(), value->size());
  } else {
    e.type = "ferry.downlink.delete";
  }
  if (time.ns > 0) e.time = time;
  return e;
}

Downlink::PendingRows Downlink::SubmitRows(std::vector<Event> rows,
                                           std::vector<std::pair<std::string, std::string>> state,
                                           std::vector<std::string> erase) {
  PendingRows p;
  p.rows = rows.size();
  for (const auto& e : rows) p.deletes += e.payload.empty();
  p.refused = std::make_shared<std::vector<std::string>>();
  auto events = std::make_shared<std::vector<Event>>(std::move(rows));
  const std::string table = dl_.table;
  p.done = writer_.Submit([events, state = std::move(state), erase = std::move(erase), table,
                           refused = p.refused](WriteTxn& txn) -> Status {
    refused->clear();  // the writer may run this again after making room
    for (const auto& e : *events) {
      auto seq = txn.Append(table, e);
      if (seq) continue;
      // Checked before anything is written: the row is set aside, the rest of the batch goes on.
      if (seq.error().code == ErrorCode::kInvalidArgument) {
        refused->push_back(e.subject);
        continue;
      }
      return tl::make_unexpected(seq.error());
    }
    for (const auto& [key, value] : state)
      if (Status st = txn.PutState(key, value); !st) return st;
    for (const auto& key : erase)
      if (Status st = txn.DeleteState(key); !st) return st;
    return Ok();
  });
  return p;
}

bool Downlink::CommitResync(const std::set<std::string>& seen, std::vector<std::pair<std::string, std::string>> state,
                            std::vector<std::string> erase, size_t* deleted) {
  std::map<std::string, bool> live;  // key -> its latest record is a row (not a tombstone)
  {
    auto it = log_.NewIterator(dl_.table);
    Status st = it ? Ok() : Status(tl::make_unexpected(it.error()));
    if (st) {
      for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next())
        live[std::string((*it)->record().subject)] = !(*it)->record().payload.empty();
      st = (*it)->status();
    }
    if (!st) {
      FERRY_LOG_WARN("downlink %s: reading table %s: %s", dl_.name.c_str(), dl_.table.c_str(),
                     st.error().ToString().c_str());
      return false;
    }
  }
  std::vector<Event> out;
  for (const auto& [key, present] : live) {
    if (!present || seen.count(key)) continue;
    Event e;
    e.id = "downlink/" + dl_.name + "/resync-delete/" + std::to_string(clock_.Now().ns) + "/" +
           std::to_string(next_tombstone_++);
    e.source = "ferry://" + config_.gateway.id + "/downlink/" + dl_.name;
    e.subject = key;
    e.type = "ferry.downlink.delete";
    out.push_back(std::move(e));
  }
  *deleted = out.size();
  PendingRows p = SubmitRows(std::move(out), std::move(state), std::move(erase));
  return Committed(p, "the end of a full resync");
}

bool Downlink::ResetRequested() {
  auto r = log_.GetState(DownlinkResetKey(dl_.name));
  if (r) return true;
  if (r.error().code != ErrorCode::kNotFound)
    FERRY_LOG_WARN("downlink %s: reading its reset request: %s", dl_.name.c_str(), r.error().ToString().c_str());
  return false;
}

bool Downlink::Committed(PendingRows& p, const char* what) {
  // The writer commits within its linger; wait for it however long it takes (a stop does not abandon a batch
  // the writer may still commit: its positions and rows go together either way).
  Status st = p.done.get();
  if (!st) {
    FERRY_LOG_WARN("downlink %s: writing %s (%zu rows) to table %s failed: %s; fetching them again", dl_.name.c_str(),
                   what, p.rows, dl_.table.c_str(), st.error().ToString().c_str());
    return false;
  }
  for (const auto& key : *p.refused)
    FERRY_LOG_WARN("downlink %s: the log refused row '%s' of table %s: skipped", dl_.name.c_str(), key.c_str(),
                   dl_.table.c_str());
  refused_.Inc(p.refused->size());
  records_.Inc(p.rows - p.refused->size());
  deletes_.Inc(p.deletes);
  return true;
}

}  // namespace ferry
