// Downlink replication (issue 15), end to end: a central table in librdkafka's mock cluster (3 brokers on
// 127.0.0.1, in this process) mirrored by ferryd (a process) into a local table stream. The test keeps the
// central table's model (key -> value, or deleted) as it produces, and compares the gateway's table with it,
// key by key, through read-only opens of the log (EventLog::LookupLatest, the table's key index).
// Waits poll with deadlines derived from the work; nothing sleeps for a fixed time.
#include <gtest/gtest.h>

#include <librdkafka/rdkafka.h>

#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <string>

#include "ferry/ctl.h"
#include "ferry/downlink.h"
#include "ferry/write_txn.h"
#include "ferry/event_log.h"
#include "ferry/stream_iterator.h"
#include "harness.h"
#include "impaired_link.h"
#include "kafka_mock.h"

#include <mqtt/async_client.h>

namespace ferry::test {
namespace {

using namespace std::chrono_literals;

constexpr char kTopic[] = "central.assets";
constexpr int kPartitions = 3;
constexpr int kKeys = 10'000;

std::string Key(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "asset-%05d", i);
  return buf;
}

// A central table's model: key -> value, or deleted.
using Model = std::map<std::string, std::optional<std::string>>;

size_t LiveRows(const Model& model) {
  size_t n = 0;
  for (const auto& [k, v] : model) n += v.has_value();
  return n;
}

// The centre: a producer into the mock cluster, and the model of the table it writes.
class Centre {
 public:
  explicit Centre(const std::string& bootstraps) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[256];
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk_ != nullptr) rkt_ = rd_kafka_topic_new(rk_, kTopic, nullptr);
  }
  ~Centre() {
    if (rkt_ != nullptr) rd_kafka_topic_destroy(rkt_);
    if (rk_ != nullptr) rd_kafka_destroy(rk_);
  }
  bool ok() const { return rk_ != nullptr; }

  void Put(const std::string& key, const std::string& value) {
    Produce(key, &value);
    model_[key] = value;
  }
  void Delete(const std::string& key) {
    Produce(key, nullptr);
    model_[key] = std::nullopt;
  }
  // Waits until every record is acknowledged by the cluster.
  bool Flush(std::chrono::milliseconds timeout) {
    return rd_kafka_flush(rk_, static_cast<int>(timeout.count())) == RD_KAFKA_RESP_ERR_NO_ERROR;
  }
  const Model& model() const { return model_; }
  size_t live() const { return LiveRows(model_); }

 private:
  void Produce(const std::string& key, const std::string* value) {
    for (;;) {
      const int rc = rd_kafka_produce(rkt_, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                                      value != nullptr ? const_cast<char*>(value->data()) : nullptr,
                                      value != nullptr ? value->size() : 0, key.data(), key.size(), nullptr);
      const rd_kafka_resp_err_t err = rc == 0 ? RD_KAFKA_RESP_ERR_NO_ERROR : rd_kafka_last_error();
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        ASSERT_EQ(err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(err);
        return;
      }
      rd_kafka_poll(rk_, 10);  // the local queue is full: serve delivery reports until there is room
    }
  }
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_topic_t* rkt_ = nullptr;
  Model model_;
};

// The [[downlink]] section of a Kafka downlink from the mock cluster into table "assets".
std::string KafkaDownlinkToml(const std::string& bootstraps, int batch) {
  return "[[downlink]]\nname = \"registry\"\naddress = \"" + bootstraps + "\"\ntopic = \"" + kTopic +
         "\"\ntable = \"assets\"\nbatch = " + std::to_string(batch) +
         "\nbackoff.min = \"50ms\"\nbackoff.max = \"500ms\"\n";
}

// ferryd with a listener ingest, metrics, a table stream "assets" and `downlink` (a [[downlink]] section named
// "registry" into it), plus `extra` configuration.
class DownlinkGateway {
 public:
  explicit DownlinkGateway(const std::string& downlink, const std::string& extra = "")
      : dir_("ferry-downlink"), sections_(downlink + extra) {
    WriteConfig();
  }
  int listen_port() const { return listen_port_; }

  // Starts ferryd and waits until it serves /metrics. A port free_tcp_port() handed out can be taken before
  // ferryd binds it (librdkafka's and Paho's outgoing connections draw local ports from the same range): then
  // ferryd exits with "Address already in use", and the gateway starts again on new ports.
  bool Start() {
    for (int attempt = 0; attempt < 5; ++attempt) {
      if (!ferryd_.Start(ToolCommand(FERRY_FERRYD_PATH, "FERRY_TEST_FERRYD", {"-c", dir_.path() + "/ferry.toml"}),
                         dir_.path() + "/ferryd.log"))
        return false;
      // Opening the log and starting every part: seconds even under qemu or a sanitizer; a minute is generous.
      poll_until([&] { return !ferryd_.running() || HttpGet(metrics_port_, "/metrics").find("ferry_build_info") != std::string::npos; },
                 std::chrono::seconds(60));
      if (ferryd_.running()) return true;
      if (ferryd_.log().find("Address already in use") == std::string::npos) return false;
      WriteConfig();  // new ports
    }
    return false;
  }

 private:
  void WriteConfig() {
    metrics_port_ = free_tcp_port();
    do listen_port_ = free_tcp_port(); while (listen_port_ == metrics_port_);
    std::string c = "[gateway]\nid = \"gw-dl\"\n";
    c += "[storage]\npath = \"" + dir_.path() + "/log\"\nmap_size = \"256MiB\"\n";
    c += "[ingest]\nmode = \"listen\"\nlisten.address = \"127.0.0.1:" + std::to_string(listen_port_) + "\"\n";
    c += "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port_) + "\"\n";
    c += "[[stream]]\nname = \"telemetry\"\n";
    c += "[[stream]]\nname = \"assets\"\nkind = \"table\"\n";
    c += "[[route]]\nfilter = \"telemetry/{device}\"\nstream = \"telemetry\"\n";
    c += sections_;
    WriteFile(dir_.path() + "/ferry.toml", c);
  }

 public:
  double Metric(const std::string& sample) {
    return MetricValue(HttpGet(metrics_port_, "/metrics"), sample);
  }
  double Downlink(const std::string& family) { return Metric(family + "{downlink=\"registry\"}"); }

  // The log, read-only (while ferryd runs).
  std::unique_ptr<EventLog> OpenLog() {
    EventLogOptions o;
    o.path = dir_.path() + "/log";
    o.read_only = true;
    auto log = EventLog::Open(o);
    return log ? std::move(*log) : nullptr;
  }

  // Keys whose row differs from the centre's model ("" if none), through the table's key index.
  std::string Differences(const Model& model) {
    auto log = OpenLog();
    if (!log) return "the log cannot be opened";
    std::string diff;
    size_t n = 0;
    for (const auto& [key, value] : model) {
      auto r = log->LookupLatest("assets", key);
      const bool present = r && !r->event.payload.empty();
      bool same = value.has_value() ? present && r->event.payload == *value : !present;
      if (!same && n++ < 5)
        diff += key + " (centre: " + value.value_or("<deleted>") + ", gateway: " +
                (present ? r->event.payload : std::string("<none>")) + ") ";
    }
    if (n > 0) diff = std::to_string(n) + " keys differ, e.g. " + diff;
    return diff;
  }

  // Per partition: the stored position (next offset) and the highest offset among the table's records.
  struct PartitionCheck {
    int64_t position = 0;
    int64_t max_offset_in_log = -1;
  };
  std::map<int, PartitionCheck> Positions() {
    std::map<int, PartitionCheck> out;
    auto log = OpenLog();
    if (!log) return out;
    for (int p = 0; p < kPartitions; ++p) {
      auto s = log->GetState(DownlinkPositionKey("registry", kTopic, p));
      out[p].position = s ? std::stoll(*s) : 0;
    }
    auto it = log->NewIterator("assets");
    if (!it) return out;
    for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) {
      const std::string id((*it)->record().id);  // <topic>/<partition>/<offset>
      const size_t a = id.find('/'), b = id.rfind('/');
      const int p = std::stoi(id.substr(a + 1, b - a - 1));
      out[p].max_offset_in_log = std::max<int64_t>(out[p].max_offset_in_log, std::stoll(id.substr(b + 1)));
    }
    return out;
  }

  // The gateway's table drifts from the centre's (a restored backup, a hand edit): a row the centre never had
  // and a changed one, written beside the running ferryd as another process would.
  void Diverge(const std::string& changed_key) {
    auto log = ctl::OpenReadWrite(dir_.path() + "/log");
    ASSERT_TRUE(log) << log.error().ToString();
    Event ghost, changed;
    ghost.id = "ghost";
    ghost.source = changed.source = "test";
    ghost.type = changed.type = "test";
    ghost.subject = "ghost-row";
    ghost.payload = "{\"ghost\":true}";
    changed.id = "changed";
    changed.subject = changed_key;
    changed.payload = "{\"stale\":true}";
    ASSERT_TRUE((*log)->Update([&](WriteTxn& txn) -> Status {
      if (auto s = txn.Append("assets", ghost); !s) return tl::make_unexpected(s.error());
      if (auto s = txn.Append("assets", changed); !s) return tl::make_unexpected(s.error());
      return Ok();
    }));
  }
  // `ferryctl -c ferry.toml downlink reset registry`, as the command runs it.
  int Reset(std::string* output) {
    auto config = LoadConfigFile(dir_.path() + "/ferry.toml");
    if (!config) return -1;
    auto log = ctl::OpenReadWrite(dir_.path() + "/log");
    if (!log) return -1;
    std::ostringstream out, err;
    ctl::DownlinkResetOptions o;
    o.downlink = "registry";
    const int rc = ctl::RunDownlinkReset(**log, *config, o, out, err);
    *output = out.str() + err.str();
    return rc;
  }
  bool ResetPending() {
    auto log = OpenLog();
    return !log || log->GetState(DownlinkResetKey("registry")).has_value();
  }
  bool HasRow(const std::string& key) {
    auto log = OpenLog();
    if (!log) return true;
    auto r = log->LookupLatest("assets", key);
    return r && !r->event.payload.empty();
  }

  ChildProcess& ferryd() { return ferryd_; }
  std::string path() const { return dir_.path(); }

 private:
  TempDir dir_;
  std::string sections_;
  int metrics_port_ = 0;
  int listen_port_ = 0;
  ChildProcess ferryd_;
};

std::string Value(int i, int version) {
  return "{\"asset\":" + std::to_string(i) + ",\"max_temp\":" + std::to_string(60 + (i + version) % 40) +
         ",\"version\":" + std::to_string(version) + "}";
}

// The centre's table of kKeys keys, produced before each test.
class DownlinkKafka : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster.ok());
    ASSERT_TRUE(centre.ok());
    for (int i = 0; i < kKeys; ++i) centre.Put(Key(i), Value(i, 0));
    ASSERT_TRUE(centre.Flush(60s));
  }
  MockKafkaCluster cluster{kTopic, kPartitions};
  Centre centre{cluster.bootstraps()};
};

// A table of 10,000 keys syncs; the link drops; 500 updates and 50 deletes happen centrally; the link returns;
// the gateway's table equals the centre's, and what the resync fetched is the changes, not the table.
TEST_F(DownlinkKafka, TableSyncsThenResyncsOnlyTheChanges) {

  DownlinkGateway gw(KafkaDownlinkToml(cluster.bootstraps(), 1000));
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  // 10,000 small records: seconds even on a loaded machine; a minute is generous.
  ASSERT_TRUE(poll_until([&] { return gw.Downlink("ferry_downlink_records_total") >= kKeys || !gw.ferryd().running(); },
                         60s))
      << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.Downlink("ferry_downlink_last_sync_timestamp_seconds") > 0; }, 30s));
  EXPECT_EQ(gw.Downlink("ferry_downlink_lag_records"), 0);
  EXPECT_EQ(gw.Differences(centre.model()), "");
  const double full_sync_bytes = gw.Downlink("ferry_downlink_bytes_total");

  // The link drops: every broker down, and ferryd notices.
  for (int b = 1; b <= 3; ++b) cluster.SetDown(b);
  EXPECT_TRUE(poll_until([&] { return gw.Downlink("ferry_downlink_link_up") == 0; }, 60s)) << gw.ferryd().log();
  // Meanwhile the centre changes: 500 updates and 50 deletes (queued by its producer until the brokers are back).
  std::mt19937 rng(15);
  for (int n = 0; n < 500; ++n) {
    const int i = static_cast<int>(rng() % kKeys);
    centre.Put(Key(i), Value(i, 1 + n));
  }
  for (int n = 0; n < 50; ++n) centre.Delete(Key(static_cast<int>(rng() % kKeys)));
  for (int b = 1; b <= 3; ++b) cluster.SetUp(b);
  ASSERT_TRUE(centre.Flush(60s));
  ASSERT_TRUE(poll_until([&] { return gw.Downlink("ferry_downlink_records_total") >= kKeys + 550; }, 60s))
      << gw.ferryd().log();
  EXPECT_TRUE(poll_until([&] { return gw.Differences(centre.model()).empty(); }, 30s)) << gw.Differences(centre.model());
  EXPECT_EQ(gw.Downlink("ferry_downlink_deletes_total"), 50);
  const double resync_bytes = gw.Downlink("ferry_downlink_bytes_total") - full_sync_bytes;
  std::printf("downlink: full sync of %d keys fetched %.0f bytes; the resync after 500 updates and 50 deletes "
              "fetched %.0f bytes (%.1f %%)\n",
              kKeys, full_sync_bytes, resync_bytes, 100 * resync_bytes / full_sync_bytes);
  // Proportional to the changes: 550 records of 10,550, with a margin for records refetched around the outage.
  EXPECT_LT(resync_bytes, 0.10 * full_sync_bytes);
  EXPECT_EQ(gw.Downlink("ferry_downlink_link_up"), 1);

  // Live rows: the table stream, read whole, holds the centre's live keys once each (deletions left out).
  auto log = gw.OpenLog();
  ASSERT_TRUE(log);
  std::map<std::string, bool> rows;
  auto it = log->NewIterator("assets");
  ASSERT_TRUE(it);
  for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) rows[std::string((*it)->record().subject)] =
      !(*it)->record().payload.empty();
  size_t live = 0;
  for (const auto& [k, present] : rows) live += present;
  EXPECT_EQ(live, centre.live());
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// kill -9 of ferryd during a sync, 20 times, with central changes between the kills: the table ends equal to the
// centre's, and the stored positions are never ahead of the stored rows.
TEST_F(DownlinkKafka, KillNineDuringSyncTwentyTimesEndsEqual) {

  DownlinkGateway gw(KafkaDownlinkToml(cluster.bootstraps(), 50));  // small transactions: the kills land between and inside many
  std::mt19937 rng(2026);
  int64_t last_total = 0;
  int64_t produced = kKeys;  // records in the topic: a partition's positions count from 0
  int mid_first_sync = 0;
  for (int kill = 0; kill < 20; ++kill) {
    ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
    // The next kill lands after 50 to 450 more records are stored, or once everything produced is (ferryd
    // overshoots the target while the poll notices it: the first sync takes about half the kills).
    const int64_t target = std::min(last_total + 50 + static_cast<int64_t>(rng() % 400), produced);
    poll_until(
        [&] {
          int64_t total = 0;
          for (const auto& [p, c] : gw.Positions()) total += c.position;
          return total >= target || !gw.ferryd().running();
        },
        60s);
    ASSERT_TRUE(gw.ferryd().running()) << gw.ferryd().log();
    gw.ferryd().Kill9();
    int64_t total = 0;
    for (const auto& [p, c] : gw.Positions()) {
      // Positions and rows are one transaction: the position is one past the newest record of its partition.
      if (c.position > 0) {
        EXPECT_EQ(c.max_offset_in_log, c.position - 1) << "partition " << p << ", kill " << kill;
      }
      total += c.position;
    }
    last_total = total;
    mid_first_sync += total < kKeys;
    // The centre moves on between kills.
    for (int n = 0; n < 20; ++n) {
      const int i = static_cast<int>(rng() % kKeys);
      if (n % 10 == 9) centre.Delete(Key(i));
      else centre.Put(Key(i), Value(i, 100 + kill));
    }
    ASSERT_TRUE(centre.Flush(30s));
    produced += 20;
  }
  EXPECT_GE(mid_first_sync, 5) << "the kills should land inside the first sync";
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  EXPECT_TRUE(poll_until([&] { return gw.Differences(centre.model()).empty() || !gw.ferryd().running(); }, 120s))
      << gw.Differences(centre.model()) << "\n"
      << gw.ferryd().log();
  std::printf("downlink: 20 kills, %d of them inside the first sync of %d keys; %zu live keys equal to the "
              "centre's\n", mid_first_sync, kKeys, centre.live());
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// A pipeline enriches telemetry with the table while the uplink is down; a central update arriving later changes
// the enrichment of later events only (issue 15, acceptance 3).
TEST_F(DownlinkKafka, APipelineEnrichesFromTheTableOfflineAndLaterUpdatesChangeLaterEventsOnly) {
  const std::string pipeline = R"(
[[stream]]
name = "enriched"
[[stream]]
name = "dlq"
[[uplink]]
name = "central"
address = "tcp://127.0.0.1:1"
backoff.min = "50ms"
backoff.max = "500ms"
[[pipeline]]
name = "enrich"
input = ["telemetry"]
output = "enriched"
dead_letter = "dlq"
[[pipeline.step]]
type = "lookup"
field = "device"
table = "assets"
into = "asset"
[[pipeline.step]]
type = "set"
field = "hot"
value = "temp > asset.max_temp"
)";
  DownlinkGateway gw(KafkaDownlinkToml(cluster.bootstraps(), 1000), pipeline);
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.Downlink("ferry_downlink_records_total") >= kKeys || !gw.ferryd().running(); },
                         60s))
      << gw.ferryd().log();
  // The uplink's centre (port 1) never answers: everything below happens offline.
  EXPECT_EQ(gw.Metric("ferry_uplink_link_up{uplink=\"central\"}"), 0);

  mqtt::async_client device("tcp://127.0.0.1:" + std::to_string(gw.listen_port()), "dev-test");
  ASSERT_NO_THROW(device.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait_for(30s));
  auto publish = [&](int n, int temp) {
    const std::string payload = "{\"id\":\"e" + std::to_string(n) + "\",\"device\":\"" + Key(7) +
                                "\",\"temp\":" + std::to_string(temp) + "}";
    ASSERT_TRUE(device.publish("telemetry/" + Key(7), payload, 1, false)->wait_for(30s));
  };
  auto enriched = [&]() {
    std::vector<std::string> out;
    auto log = gw.OpenLog();
    if (!log) return out;
    auto it = log->NewIterator("enriched");
    if (!it) return out;
    for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) out.emplace_back((*it)->record().payload);
    return out;
  };
  // Key(7)'s row says max_temp 67 (Value(7, 0)): 70 is hot.
  for (int n = 0; n < 3; ++n) publish(n, 70);
  ASSERT_TRUE(poll_until([&] { return enriched().size() >= 3; }, 30s)) << gw.ferryd().log();
  // The centre raises the threshold: the table follows, and only events after it see the new row.
  centre.Put(Key(7), "{\"asset\":7,\"max_temp\":75,\"version\":1}");
  ASSERT_TRUE(centre.Flush(30s));
  ASSERT_TRUE(poll_until([&] { return gw.Differences(centre.model()).empty(); }, 30s)) << gw.Differences(centre.model());
  for (int n = 3; n < 6; ++n) publish(n, 70);
  ASSERT_TRUE(poll_until([&] { return enriched().size() >= 6; }, 30s)) << gw.ferryd().log();
  const auto out = enriched();
  ASSERT_EQ(out.size(), 6u);
  for (int n = 0; n < 6; ++n) {
    const bool before = n < 3;
    EXPECT_NE(out[static_cast<size_t>(n)].find(before ? "\"max_temp\":67" : "\"max_temp\":75"), std::string::npos)
        << out[static_cast<size_t>(n)];
    EXPECT_NE(out[static_cast<size_t>(n)].find(before ? "\"hot\":true" : "\"hot\":false"), std::string::npos)
        << out[static_cast<size_t>(n)];
  }
  EXPECT_EQ(gw.Metric("ferry_uplink_link_up{uplink=\"central\"}"), 0);
  device.disconnect()->wait_for(10s);
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// Rows the centre sends that cannot be rows: skipped, counted by reason, and the rows after them still arrive.
TEST_F(DownlinkKafka, RowsThatCannotBeRowsAreSkippedCountedAndDoNotStopTheTable) {
  DownlinkGateway gw(KafkaDownlinkToml(cluster.bootstraps(), 1000) + "max_row_bytes = \"1KiB\"\n");
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.Downlink("ferry_downlink_records_total") >= kKeys || !gw.ferryd().running(); },
                         60s))
      << gw.ferryd().log();
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[256];
  rd_kafka_conf_set(conf, "bootstrap.servers", cluster.bootstraps().c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  ASSERT_NE(rk, nullptr) << err;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, kTopic, nullptr);
  auto produce = [&](const std::string* key, const std::string& value) {
    ASSERT_EQ(rd_kafka_produce(rkt, 0, RD_KAFKA_MSG_F_COPY, const_cast<char*>(value.data()), value.size(),
                               key != nullptr ? key->data() : nullptr, key != nullptr ? key->size() : 0, nullptr),
              0);
  };
  const std::string long_key(600, 'k'), bad_utf8("asset-\xff\xfe"), big(2048, 'v'), good = Key(kKeys + 1);
  produce(nullptr, "{\"no\":\"key\"}");
  produce(&long_key, "{}");
  produce(&bad_utf8, "{}");
  produce(&good, big);
  produce(&good, "{\"after\":true}");
  ASSERT_EQ(rd_kafka_flush(rk, 30'000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  ASSERT_TRUE(poll_until([&] { return gw.Differences({{good, "{\"after\":true}"}}).empty(); }, 60s))
      << gw.Differences({{good, "{\"after\":true}"}}) << gw.ferryd().log();
  EXPECT_EQ(gw.Metric("ferry_downlink_skipped_total{downlink=\"registry\",reason=\"no_key\"}"), 1);
  EXPECT_EQ(gw.Metric("ferry_downlink_skipped_total{downlink=\"registry\",reason=\"bad_key\"}"), 2);
  EXPECT_EQ(gw.Metric("ferry_downlink_skipped_total{downlink=\"registry\",reason=\"too_large\"}"), 1);
  EXPECT_NE(gw.ferryd().log().find("over max_row_bytes"), std::string::npos) << gw.ferryd().log();
  EXPECT_EQ(gw.Downlink("ferry_downlink_lag_records"), 0);
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// `ferryctl downlink reset`: the gateway's table drifted (a row the centre never had, a changed one); after the
// reset the table is the topic's again, the stray row deleted, and the request gone.
TEST_F(DownlinkKafka, AResetFetchesTheWholeTopicAgainAndDeletesWhatItDoesNotHold) {
  DownlinkGateway gw(KafkaDownlinkToml(cluster.bootstraps(), 1000));
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.Downlink("ferry_downlink_records_total") >= kKeys || !gw.ferryd().running(); },
                         60s))
      << gw.ferryd().log();
  gw.Diverge(Key(5));
  ASSERT_FALSE(gw.Differences(centre.model()).empty());
  std::string said;
  ASSERT_EQ(gw.Reset(&said), ctl::kExitOk) << said;
  EXPECT_NE(said.find("reset requested"), std::string::npos) << said;
  ASSERT_TRUE(poll_until([&] { return !gw.ResetPending() || !gw.ferryd().running(); }, 120s)) << gw.ferryd().log();
  EXPECT_EQ(gw.Differences(centre.model()), "");
  EXPECT_FALSE(gw.HasRow("ghost-row"));
  EXPECT_GE(gw.Downlink("ferry_downlink_records_total"), 2 * kKeys) << "the reset reads the topic again";
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// ---- The MQTT source: retained messages under a topic filter on a real Mosquitto, through a proxy the test can
// cut (impaired_link.h, no delay or loss), so the centre stays up while the gateway's link is down. ----

constexpr char kFilter[] = "central/assets/#";

std::string RowTopic(const std::string& key) { return "central/assets/" + key; }

// The centre's side: a publisher of retained rows (an empty retained message deletes one), and its model.
class MqttCentre {
 public:
  explicit MqttCentre(const std::string& uri, const std::string& client_id = "centre-publisher")
      : client_(uri, client_id, mqtt::create_options(MQTTVERSION_5)) {}
  ~MqttCentre() {
    try {
      if (client_.is_connected()) client_.disconnect()->wait_for(5s);
    } catch (const mqtt::exception&) {
    }
  }
  bool Connect() {
    try {
      return client_.connect(mqtt::connect_options_builder().mqtt_version(MQTTVERSION_5).clean_start(true).finalize())
          ->wait_for(30s);
    } catch (const mqtt::exception&) {
      return false;
    }
  }
  void Put(const std::string& key, const std::string& value) {
    Publish(key, value);
    model_[key] = value;
  }
  void Delete(const std::string& key) {
    Publish(key, "");
    model_[key] = std::nullopt;
  }
  // Waits for the broker's PUBACK of everything published.
  bool Flush() {
    bool ok = true;
    for (auto& t : tokens_) ok &= t->wait_for(30s) && t->get_return_code() == 0;
    tokens_.clear();
    return ok;
  }
  const Model& model() const { return model_; }

 private:
  void Publish(const std::string& key, const std::string& payload) {
    // Below Mosquitto's Receive Maximum (20): Paho refuses a publish beyond it.
    if (tokens_.size() >= 16) {
      ASSERT_TRUE(Flush());
    }
    tokens_.push_back(client_.publish(RowTopic(key), payload.data(), payload.size(), 1, true));
  }
  mqtt::async_client client_;
  std::vector<mqtt::delivery_token_ptr> tokens_;
  Model model_;
};

std::string MqttDownlinkToml(const std::string& uri, const std::string& extra = "") {
  return "[[downlink]]\nname = \"registry\"\ntype = \"mqtt\"\naddress = \"" + uri + "\"\ntopic = \"" + kFilter +
         "\"\ntable = \"assets\"\nmqtt.sync_quiet = \"1s\"\nbackoff.min = \"50ms\"\nbackoff.max = \"500ms\"\n" + extra;
}

class DownlinkMqtt : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(broker.start()) << broker.log();
    link = std::make_unique<ImpairedLink>(ImpairedLinkOptions{broker.port(), 0, 0ms, 0.0, 0ms, 0ms, 0ms, 0ms});
    ASSERT_TRUE(link->Start());
    ASSERT_TRUE(centre.Connect());
    for (int i = 0; i < kKeys; ++i) centre.Put(Key(i), Value(i, 0));
    ASSERT_TRUE(centre.Flush());
  }
  // The gateway's sync state, read from its log.
  static std::string SyncState(DownlinkGateway& gw) {
    auto log = gw.OpenLog();
    if (!log) return "<no log>";
    auto s = log->GetState(DownlinkMqttStateKey("registry"));
    return s ? *s : "<none>";
  }
  // Without TCP_NODELAY the broker's PUBACKs wait for Nagle: the centre's 10,000 publishes would take 30 s.
  static MosquittoBroker::Options BrokerOptions() {
    MosquittoBroker::Options o;
    o.extra_config = "set_tcp_nodelay true";
    return o;
  }
  MosquittoBroker broker{BrokerOptions()};
  std::unique_ptr<ImpairedLink> link;
  MqttCentre centre{broker.uri()};
};

// Acceptance 1 with a real Mosquitto centre: 10,000 retained rows sync; the link drops; 500 updates and 50
// deletions happen centrally; the link returns; the tables are equal and the resync fetched only the changes
// (the persistent session queued them).
TEST_F(DownlinkMqtt, TableSyncsThenResyncsOnlyTheChanges) {
  DownlinkGateway gw(MqttDownlinkToml(link->uri()));
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.Downlink("ferry_downlink_last_sync_timestamp_seconds") > 0 ||
                                      !gw.ferryd().running(); }, 120s))
      << gw.ferryd().log();
  EXPECT_EQ(gw.Downlink("ferry_downlink_records_total"), kKeys);
  EXPECT_EQ(gw.Differences(centre.model()), "");
  EXPECT_EQ(SyncState(gw), "open");
  const double full_sync_bytes = gw.Downlink("ferry_downlink_bytes_total");

  link->SetDown(true);
  ASSERT_TRUE(poll_until([&] { return gw.Downlink("ferry_downlink_link_up") == 0; }, 60s)) << gw.ferryd().log();
  std::mt19937 rng(15);
  for (int n = 0; n < 500; ++n) {
    const int i = static_cast<int>(rng() % kKeys);
    centre.Put(Key(i), Value(i, 1 + n));
  }
  for (int n = 0; n < 50; ++n) centre.Delete(Key(static_cast<int>(rng() % kKeys)));
  ASSERT_TRUE(centre.Flush());
  link->SetDown(false);
  ASSERT_TRUE(poll_until([&] { return gw.Downlink("ferry_downlink_records_total") >= kKeys + 550; }, 60s))
      << gw.ferryd().log();
  EXPECT_TRUE(poll_until([&] { return gw.Differences(centre.model()).empty(); }, 30s))
      << gw.Differences(centre.model());
  EXPECT_EQ(gw.Downlink("ferry_downlink_deletes_total"), 50);
  const double resync_bytes = gw.Downlink("ferry_downlink_bytes_total") - full_sync_bytes;
  std::printf("downlink (mqtt): full sync of %d keys fetched %.0f bytes; the resync after 500 updates and 50 "
              "deletes fetched %.0f bytes (%.1f %%)\n",
              kKeys, full_sync_bytes, resync_bytes, 100 * resync_bytes / full_sync_bytes);
  EXPECT_LT(resync_bytes, 0.10 * full_sync_bytes);
  EXPECT_EQ(gw.Downlink("ferry_downlink_link_up"), 1);
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
  EXPECT_EQ(SyncState(gw), "clean");

  // A clean restart resumes the session: a change made while ferryd was stopped arrives, and nothing else.
  centre.Put(Key(3), Value(3, 999));
  ASSERT_TRUE(centre.Flush());
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.Differences(centre.model()).empty() || !gw.ferryd().running(); }, 60s))
      << gw.Differences(centre.model());
  EXPECT_EQ(gw.Downlink("ferry_downlink_records_total"), 1) << "a clean restart should fetch only the change";
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// The broker loses the gateway's session (here: a client takes the session's id with a clean start) while the
// link is down, and the centre deletes rows meanwhile: the next connection syncs in full and deletes the rows
// the centre no longer has.
TEST_F(DownlinkMqtt, ALostSessionMeansAFullSyncThatDeletesWhatTheCentreDeleted) {
  DownlinkGateway gw(MqttDownlinkToml(link->uri()));
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.Downlink("ferry_downlink_last_sync_timestamp_seconds") > 0 ||
                                      !gw.ferryd().running(); }, 120s))
      << gw.ferryd().log();
  link->SetDown(true);
  ASSERT_TRUE(poll_until([&] { return gw.Downlink("ferry_downlink_link_up") == 0; }, 60s)) << gw.ferryd().log();
  {
    mqtt::async_client thief(broker.uri(), "ferry-gw-dl-registry", mqtt::create_options(MQTTVERSION_5));
    ASSERT_TRUE(thief.connect(mqtt::connect_options_builder().mqtt_version(MQTTVERSION_5).clean_start(true).finalize())
                    ->wait_for(30s));
    thief.disconnect()->wait_for(10s);
  }
  for (int i = 0; i < 50; ++i) centre.Delete(Key(i * 7));
  for (int i = 0; i < 20; ++i) centre.Put(Key(i * 11 + 1), Value(i, 77));
  ASSERT_TRUE(centre.Flush());
  link->SetDown(false);
  ASSERT_TRUE(poll_until([&] { return gw.Differences(centre.model()).empty() || !gw.ferryd().running(); }, 120s))
      << gw.Differences(centre.model()) << gw.ferryd().log();
  EXPECT_NE(gw.ferryd().log().find("no longer has this gateway's session"), std::string::npos) << gw.ferryd().log();
  // 47 of the 50 keys stay deleted (3 are put back among the 20 updates).
  EXPECT_EQ(gw.Downlink("ferry_downlink_deletes_total"), static_cast<double>(centre.model().size() - LiveRows(centre.model())));
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// Acceptance 2 with the MQTT source: kill -9 of ferryd 20 times, most of them inside a full sync, with central
// changes between the kills: the table ends equal to the centre's; a kill never leaves the state "clean" (which
// would let the next start trust a table the kill may have cut short).
TEST_F(DownlinkMqtt, KillNineDuringSyncTwentyTimesEndsEqual) {
  DownlinkGateway gw(MqttDownlinkToml(link->uri(), "batch = 100\n"));
  std::mt19937 rng(2027);
  int mid_sync = 0;
  for (int kill = 0; kill < 20; ++kill) {
    ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
    // Every start after a kill syncs in full: kill after 100 to 12,000 rows (past the end: after the sync).
    const double target = 100 + static_cast<double>(rng() % 12'000);
    poll_until([&] {
      return gw.Downlink("ferry_downlink_records_total") >= target ||
             gw.Downlink("ferry_downlink_last_sync_timestamp_seconds") > 0 || !gw.ferryd().running();
    }, 120s);
    ASSERT_TRUE(gw.ferryd().running()) << gw.ferryd().log();
    gw.ferryd().Kill9();
    const std::string state = SyncState(gw);
    EXPECT_NE(state, "clean") << "kill " << kill;
    mid_sync += state == "syncing";
    for (int n = 0; n < 20; ++n) {
      const int i = static_cast<int>(rng() % kKeys);
      if (n % 10 == 9) centre.Delete(Key(i));
      else centre.Put(Key(i), Value(i, 100 + kill));
    }
    ASSERT_TRUE(centre.Flush());
  }
  EXPECT_GE(mid_sync, 5) << "the kills should land inside full syncs";
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  EXPECT_TRUE(poll_until([&] { return gw.Differences(centre.model()).empty() || !gw.ferryd().running(); }, 120s))
      << gw.Differences(centre.model()) << "\n" << gw.ferryd().log();
  std::printf("downlink (mqtt): 20 kills, %d of them inside a full sync of %d keys; %zu live keys equal to the "
              "centre's\n", mid_sync, kKeys, LiveRows(centre.model()));
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// Rows pushed to devices: an uplink with retain = true republishes the table on a local broker, so a device
// that connects later gets its row as a retained message, with the uplink to the centre down; a deletion at the
// centre clears it. Also: rows that cannot be rows are skipped and counted.
TEST_F(DownlinkMqtt, RowsArePushedToDevicesAsRetainedMessagesAndBadRowsAreSkipped) {
  MosquittoBroker local;
  ASSERT_TRUE(local.start()) << local.log();
  const std::string push = "[[uplink]]\nname = \"devices\"\naddress = \"" + local.uri() +
                           "\"\nstreams = [\"assets\"]\ntopic = \"config/{subject}\"\nretain = true\n"
                           "backoff.min = \"50ms\"\nbackoff.max = \"500ms\"\n"
                           "[[uplink]]\nname = \"central\"\naddress = \"tcp://127.0.0.1:1\"\nstreams = [\"telemetry\"]\n"
                           "backoff.min = \"50ms\"\nbackoff.max = \"500ms\"\n";
  DownlinkGateway gw(MqttDownlinkToml(link->uri(), "max_row_bytes = \"1KiB\"\n"), push);
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.Downlink("ferry_downlink_last_sync_timestamp_seconds") > 0 ||
                                      !gw.ferryd().running(); }, 120s))
      << gw.ferryd().log();
  // Hostile rows from the centre: an empty key, a key over 511 bytes, a row over max_row_bytes; then a good one.
  {
    mqtt::async_client bad(broker.uri(), "centre-bad", mqtt::create_options(MQTTVERSION_5));
    ASSERT_TRUE(bad.connect(mqtt::connect_options_builder().mqtt_version(MQTTVERSION_5).finalize())->wait_for(30s));
    ASSERT_TRUE(bad.publish("central/assets/", "{}", 2, 1, false)->wait_for(30s));
    ASSERT_TRUE(bad.publish(RowTopic(std::string(600, 'k')), "{}", 2, 1, false)->wait_for(30s));
    const std::string big(2048, 'v');
    ASSERT_TRUE(bad.publish(RowTopic(Key(5)), big.data(), big.size(), 1, false)->wait_for(30s));
    bad.disconnect()->wait_for(10s);
  }
  centre.Put(Key(kKeys + 1), "{\"after\":true}");
  ASSERT_TRUE(centre.Flush());
  ASSERT_TRUE(poll_until([&] { return gw.Differences(centre.model()).empty(); }, 60s))
      << gw.Differences(centre.model()) << gw.ferryd().log();
  EXPECT_EQ(gw.Metric("ferry_downlink_skipped_total{downlink=\"registry\",reason=\"no_key\"}"), 1);
  EXPECT_EQ(gw.Metric("ferry_downlink_skipped_total{downlink=\"registry\",reason=\"bad_key\"}"), 1);
  EXPECT_EQ(gw.Metric("ferry_downlink_skipped_total{downlink=\"registry\",reason=\"too_large\"}"), 1);

  // The push uplink has sent every row; the centre's uplink never connects.
  ASSERT_TRUE(poll_until([&] { return gw.Metric("ferry_uplink_backlog_events{uplink=\"devices\",stream=\"assets\"}") == 0; }, 120s))
      << gw.ferryd().log();
  EXPECT_EQ(gw.Metric("ferry_uplink_link_up{uplink=\"central\"}"), 0);
  // A device waking up now gets its configuration from the local broker.
  auto retained = [&](const std::string& key) -> std::optional<std::string> {
    mqtt::async_client device(local.uri(), "device-" + key, mqtt::create_options(MQTTVERSION_5));
    device.start_consuming();
    if (!device.connect(mqtt::connect_options_builder().mqtt_version(MQTTVERSION_5).finalize())->wait_for(30s))
      return std::string("<no connection>");
    device.subscribe("config/" + key, 1)->wait_for(30s);
    mqtt::const_message_ptr msg;
    // A retained message comes right after the SUBACK; none within 2 s means there is none.
    const bool got = device.try_consume_message_for(&msg, 2s);
    device.disconnect()->wait_for(10s);
    if (!got || !msg) return std::nullopt;
    return msg->to_string();
  };
  EXPECT_EQ(retained(Key(42)).value_or("<none>"), Value(42, 0));
  centre.Delete(Key(42));
  ASSERT_TRUE(centre.Flush());
  // Stored, then acknowledged by the local broker (the backlog drops back to 0): a device subscribing now
  // finds nothing retained.
  ASSERT_TRUE(poll_until([&] { return gw.Differences(centre.model()).empty(); }, 60s));
  ASSERT_TRUE(poll_until([&] { return gw.Metric("ferry_uplink_backlog_events{uplink=\"devices\",stream=\"assets\"}") == 0; }, 60s));
  EXPECT_FALSE(retained(Key(42)).has_value()) << "the deletion should clear it";
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// `ferryctl downlink reset` with the MQTT source: a full sync, and the drifted rows put right.
TEST_F(DownlinkMqtt, AResetIsAFullSyncThatPutsADriftedTableRight) {
  DownlinkGateway gw(MqttDownlinkToml(link->uri()));
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.Downlink("ferry_downlink_last_sync_timestamp_seconds") > 0 ||
                                      !gw.ferryd().running(); }, 120s))
      << gw.ferryd().log();
  gw.Diverge(Key(5));
  std::string said;
  ASSERT_EQ(gw.Reset(&said), ctl::kExitOk) << said;
  ASSERT_TRUE(poll_until([&] { return !gw.ResetPending() || !gw.ferryd().running(); }, 120s)) << gw.ferryd().log();
  EXPECT_EQ(gw.Differences(centre.model()), "");
  EXPECT_FALSE(gw.HasRow("ghost-row"));
  EXPECT_EQ(SyncState(gw), "open");
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

}  // namespace
}  // namespace ferry::test
