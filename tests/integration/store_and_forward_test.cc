// End-to-end tests of ferryd (issue: MQTT ingest and store-and-forward): real Mosquitto brokers on free
// 127.0.0.1 ports (a local one and a central one), ferryd and ferry-sim as child processes, a central consumer
// that deduplicates by event id. Waits poll with deadlines; kills are triggered by progress counts.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <unordered_set>

#include <sys/stat.h>

#include "ferry/event_log.h"
#include "ferry/stream_iterator.h"
#include "../support/notify_socket.h"
#include "harness.h"
#include "../support/test_pki.h"

namespace ferry::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ferryd and ferryctl as built here, or a board's under qemu-user (FERRY_TEST_FERRYD, FERRY_TEST_FERRYCTL,
// FERRY_TEST_EMULATOR; set by the cross builds' integration.board_e2e test). The simulator is always the host's.
std::vector<std::string> Ferryd(std::initializer_list<std::string> args) {
  return ToolCommand(FERRY_FERRYD_PATH, "FERRY_TEST_FERRYD", args);
}
std::vector<std::string> Ferryctl(std::initializer_list<std::string> args) {
  return ToolCommand(FERRY_FERRYCTL_PATH, "FERRY_TEST_FERRYCTL", args);
}

struct GatewayOptions {
  std::string durability = "batch";
  std::string uplink_mode = "per_event";
  int inflight = 64;
  std::string map_size = "256MiB";
  std::string full_policy = "drop_oldest";
  std::string extra_uplinks;   // more [[uplink]] tables; "{CENTRAL}" stands for the central broker's URI
  std::string uplink_extra_keys;  // appended to the "central" uplink table
  std::string extra_streams;      // more [[stream]] / [[route]] tables
  std::string ingest_extra_keys;  // appended to the [ingest] table
  std::string max_payload = "4KiB";
  bool uplink = true;
  // TLS between ferryd and both brokers (each broker also keeps its plain listener, for the simulator and the
  // receiver): a test CA, server certificates for 127.0.0.1, and a client certificate the local broker requires.
  bool tls = false;
  std::string ingest_ca_file;  // overrides the test CA for the ingest ("{PKI}" stands for the PKI directory)
};

// A local broker, a central broker, ferryd between them, and a place for files.
class Gateway {
 public:
  explicit Gateway(GatewayOptions o = {})
      : opt_(std::move(o)), dir_("ferry-it"), central_state_("ferry-central"), pki_("ferry-pki"),
        local_(Local(opt_, pki_.path())), central_(Central(opt_, central_state_.path(), pki_.path())) {
    metrics_port_ = free_tcp_port();
    // Mosquitto started as root drops to its own user: it must be able to write its database here.
    ::chmod(central_state_.path().c_str(), 0777);
    if (opt_.tls) pki_ok_ = MakeTestPki(pki_.path());
  }

  static MosquittoBroker::Options::Tls BrokerTls(const std::string& pki, bool require_certificate) {
    return {pki + "/ca.pem", pki + "/server.pem", pki + "/server.key", require_certificate};
  }
  static MosquittoBroker::Options Local(const GatewayOptions& g, const std::string& pki) {
    MosquittoBroker::Options o;
    o.extra_config = "max_inflight_messages 100\n";  // the fixture already queues everything for ferryd's session
    if (g.tls) o.tls = BrokerTls(pki, /*require_certificate=*/true);
    return o;
  }
  static MosquittoBroker::Options Central(const GatewayOptions& g, const std::string& state, const std::string& pki) {
    MosquittoBroker::Options o;
    // The receiver's persistent session survives central restarts, so nothing published while it reconnects
    // is dropped for want of a subscriber.
    o.extra_config = "persistence true\npersistence_location " + state + "/\n";
    if (g.tls) o.tls = BrokerTls(pki, /*require_certificate=*/false);
    return o;
  }
  bool pki_ok() const { return pki_ok_; }
  std::string pki_log() const {
    std::string text;
    for (const auto& line : ReadLines(pki_.path() + "/pki.log")) text += line + "\n";
    return text;
  }

  std::string ConfigText() const {
    std::string c;
    c += "[gateway]\nid = \"gw-test\"\n";
    c += "[storage]\npath = \"" + dir_.path() + "/log\"\nmap_size = \"" + opt_.map_size + "\"\n";
    c += "[ingest]\naddress = \"" + (opt_.tls ? local_.tls_uri() : local_.uri()) + "\"\nclient_id = \"ferryd-it\"\ndurability = \"" +
         opt_.durability + "\"\nmax_payload = \"" + opt_.max_payload + "\"\nbackoff.min = \"50ms\"\nbackoff.max = \"500ms\"\n" + opt_.ingest_extra_keys;
    if (opt_.tls) {
      std::string ca = opt_.ingest_ca_file.empty() ? pki_.path() + "/ca.pem" : opt_.ingest_ca_file;
      for (size_t at; (at = ca.find("{PKI}")) != std::string::npos;) ca.replace(at, 5, pki_.path());
      c += "tls.enabled = true\ntls.ca_file = \"" + ca + "\"\ntls.cert_file = \"" + pki_.path() +
           "/client.pem\"\ntls.key_file = \"" + pki_.path() + "/client.key\"\n";
    }
    c += "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port_) + "\"\n";
    c += "[[stream]]\nname = \"telemetry\"\nfull_policy = \"" + opt_.full_policy + "\"\n";
    c += "[[stream]]\nname = \"dead\"\npriority = 10\n";
    c += "[[route]]\nfilter = \"telemetry/{device}/#\"\nstream = \"telemetry\"\nsubject = \"{device}\"\n"
         "content_type = \"application/json\"\ndead_letter = \"dead\"\nid_json_field = \"id\"\n"
         "id_user_property = \"ce_id\"\n";
    c += opt_.extra_streams;
    if (opt_.uplink) {
      c += "[[uplink]]\nname = \"central\"\naddress = \"" + (opt_.tls ? central_.tls_uri() : central_.uri()) +
           "\"\nmode = \"" + opt_.uplink_mode +
           "\"\ntopic = \"ferry/{gateway}/{stream}\"\ninflight = " + std::to_string(opt_.inflight) +
           "\nbatch.max_delay = \"20ms\"\n"
           "backoff.min = \"50ms\"\nbackoff.max = \"500ms\"\n" + opt_.uplink_extra_keys;
      if (opt_.tls) c += "tls.enabled = true\ntls.ca_file = \"" + pki_.path() + "/ca.pem\"\n";
    }
    std::string extra = opt_.extra_uplinks;
    for (size_t at; (at = extra.find("{CENTRAL}")) != std::string::npos;) extra.replace(at, 9, central_.uri());
    return c + extra;
  }

  // Starts ferryd; unless told not to wait, returns once its ingest is subscribed.
  bool StartFerryd(bool wait_for_ingest = true) {
    WriteFile(config_path(), ConfigText());
    if (!ferryd_.Start(Ferryd({"-c", config_path()}), dir_.path() + "/ferryd.log")) return false;
    if (!wait_for_ingest) return true;
    // Ready once subscribed to the local broker: a first-ever session misses what is published before that.
    return poll_until([this] { return Metric("ferry_ingest_link_up") == 1 || !ferryd_.running(); }, 30s) &&
           ferryd_.running();
  }

  // Runs the simulator to completion (it waits for its last PUBACKs). Returns its exit status.
  int RunSim(uint64_t count, double rate, const std::string& id_log, const std::vector<std::string>& extra = {},
             std::chrono::seconds timeout = 300s) {
    ChildProcess sim;
    std::vector<std::string> argv = {FERRY_SIM_PATH,   "--port",        std::to_string(local_.port()),
                                     "--count",        std::to_string(count), "--rate", std::to_string(rate),
                                     "--devices",      "16",            "--seed", "7",
                                     "--state-dir",    dir_.path() + "/sim-state", "--id-log", id_log,
                                     "--payload-size", "200",           "--quiet"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    if (!sim.Start(argv, dir_.path() + "/sim.log")) return -1;
    return sim.Wait(timeout);
  }
  bool StartSim(ChildProcess& sim, uint64_t count, double rate, const std::string& id_log) {
    return sim.Start({FERRY_SIM_PATH, "--port", std::to_string(local_.port()), "--count", std::to_string(count),
                      "--rate", std::to_string(rate), "--devices", "16", "--seed", "11", "--state-dir",
                      dir_.path() + "/sim-state", "--id-log", id_log, "--payload-size", "200", "--quiet"},
                     dir_.path() + "/sim.log");
  }

  double Metric(const std::string& sample) { return MetricValue(HttpGet(metrics_port_, "/metrics"), sample); }
  double Stored() { return Metric("ferry_stream_stored_total{stream=\"telemetry\"}"); }
  // The uplink's own account of the telemetry stream, for failure messages: what it sent, what the centre
  // acknowledged, what is left.
  std::string UplinkCounts() {
    std::string text = HttpGet(metrics_port_, "/metrics");
    auto v = [&](const std::string& sample) {
      return std::to_string(static_cast<long long>(MetricValue(text, sample)));
    };
    const std::string labels = "{uplink=\"central\",stream=\"telemetry\"}";
    return "; uplink sent " + v("ferry_uplink_sent_total" + labels) + ", acked " +
           v("ferry_uplink_acked_total" + labels) + ", backlog " + v("ferry_uplink_backlog_events" + labels) +
           ", retries " + v("ferry_uplink_retries_total{uplink=\"central\"}");
  }

  // Those of `ids` that are not (yet) in the stream's log, in their order.
  std::vector<std::string> NotLogged(const std::string& stream, const std::vector<std::string>& ids) {
    auto logged = LoggedIds(stream);
    std::unordered_set<std::string> have(logged.begin(), logged.end());
    std::vector<std::string> out;
    for (const auto& id : ids)
      if (!have.count(id)) out.push_back(id);
    return out;
  }
  // Ids stored in a stream, read from the log by a second process's read-only handle while ferryd runs.
  std::vector<std::string> LoggedIds(const std::string& stream) {
    EventLogOptions o;
    o.path = dir_.path() + "/log";
    o.read_only = true;
    std::vector<std::string> ids;
    auto log = EventLog::Open(o);
    if (!log) {
      ADD_FAILURE() << log.error().ToString();
      return ids;
    }
    auto it = (*log)->NewIterator(stream);
    if (!it) return ids;
    for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) {
      const RecordView& r = (*it)->record();
      ids.emplace_back(r.id.empty() ? "gw-test/" + stream + "/" + std::to_string(r.seq.value) : std::string(r.id));
    }
    EXPECT_TRUE((*it)->status()) << (*it)->status().error().ToString();
    return ids;
  }

  // Brokers up, the receiver's persistent subscription made, then the central broker stopped and ferryd
  // started: the outage every drain test begins with. False (with the reason in the logs) on failure.
  bool BeginOutage(CentralReceiver& rx) {
    if (!local_.start() || !central_.start() || !rx.Connect(central_.uri())) return false;
    rx.Disconnect();
    central_.stop();
    return StartFerryd();
  }
  // The central broker back, the receiver reconnected (its session kept what was published meanwhile).
  bool EndOutage(CentralReceiver& rx) { return central_.start() && rx.Connect(central_.uri()); }

  std::string config_path() const { return dir_.path() + "/ferry.toml"; }
  std::string path(const std::string& name) const { return dir_.path() + "/" + name; }
  MosquittoBroker& local() { return local_; }
  MosquittoBroker& central() { return central_; }
  ChildProcess& ferryd() { return ferryd_; }
  int metrics_port() const { return metrics_port_; }

 private:
  GatewayOptions opt_;
  TempDir dir_;
  TempDir central_state_;
  TempDir pki_;  // before the brokers: their options name files in it
  bool pki_ok_ = false;
  MosquittoBroker local_;
  MosquittoBroker central_;
  ChildProcess ferryd_;
  int metrics_port_ = 0;
};

// Waits until neither the stored count nor the receiver's count has moved for `quiet` (bounded by `limit`):
// everything in flight has landed.
void WaitQuiet(Gateway& gw, const CentralReceiver& rx, std::chrono::seconds quiet = 3s,
               std::chrono::seconds limit = 300s) {
  auto sample = [&] { return std::make_pair(gw.Stored(), rx.unique()); };
  auto last = sample();
  auto since = Clock::now();
  poll_until([&] {
    auto now = sample();
    if (now != last) {
      last = now;
      since = Clock::now();
    }
    return Clock::now() - since >= quiet;
  }, limit, 50ms);
}

// The simulator's last line (its summary), for failure messages.
std::string SimSummary(Gateway& gw) {
  auto lines = ReadLines(gw.path("sim.log"));
  return lines.empty() ? "(no simulator output)" : lines.back();
}

// 1. Central down; 100,000 events reach the local broker; central comes back; every event arrives once.
TEST(StoreAndForward, OutageThenDrainDeliversEveryEventOnce) {
  Gateway gw;
  CentralReceiver rx;
  ASSERT_TRUE(gw.BeginOutage(rx)) << gw.ferryd().log();

  const uint64_t kEvents = 100'000;
  auto t0 = Clock::now();
  ASSERT_EQ(gw.RunSim(kEvents, 0, gw.path("ids.txt")), 0) << SimSummary(gw);
  auto ids = ReadLines(gw.path("ids.txt"));
  ASSERT_EQ(ids.size(), kEvents);
  ASSERT_TRUE(poll_until([&] { return gw.Stored() >= kEvents; }, 120s)) << "stored " << gw.Stored();
  double ingest_s = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_EQ(gw.Metric("ferry_uplink_backlog_events{uplink=\"central\",stream=\"telemetry\"}") > 0, true);

  auto t1 = Clock::now();
  ASSERT_TRUE(gw.EndOutage(rx)) << gw.central().log();
  bool all = poll_until([&] { return rx.unique() >= kEvents; }, 300s, 20ms);
  double drain_s = std::chrono::duration<double>(Clock::now() - t1).count();
  auto missing = Missing(ids, rx);
  EXPECT_TRUE(all && missing.empty()) << missing.size() << " missing, e.g. " << Head(missing) << gw.UplinkCounts();
  EXPECT_EQ(rx.unique(), kEvents);
  EXPECT_EQ(rx.bad(), 0u);
  std::printf("[ outage ] %llu events: ingest %.2f s (%.0f ev/s), drain %.2f s (%.0f ev/s), %llu duplicates "
              "dropped at the receiver\n",
              static_cast<unsigned long long>(kEvents), ingest_s, kEvents / ingest_s, drain_s, kEvents / drain_s,
              static_cast<unsigned long long>(rx.duplicates()));
  EXPECT_TRUE(gw.ferryd().running());
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// 2. kill -9 of ferryd at random moments during ingest and during drain, 20+ times.
void KillNineScenario(const std::string& durability) {
  GatewayOptions o;
  o.durability = durability;
  Gateway gw(o);
  ASSERT_TRUE(gw.local().start());
  ASSERT_TRUE(gw.central().start());
  CentralReceiver rx;
  ASSERT_TRUE(rx.Connect(gw.central().uri()));
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();

  const uint64_t kEvents = 30'000;
  ChildProcess sim;
  ASSERT_TRUE(gw.StartSim(sim, kEvents, 3000, gw.path("ids.txt")));
  std::mt19937 rng(20261125);
  int kills = 0;
  for (int i = 0; i < 24; ++i) {
    // Kill after a random amount of progress: during ingest (stored grows) or during drain (acked grows).
    double base_in = gw.Stored(), base_out = static_cast<double>(rx.unique());
    double step = std::uniform_int_distribution<int>(200, 1500)(rng);
    bool during_drain = i % 3 == 2;
    poll_until([&] {
      return during_drain ? rx.unique() >= base_out + step : gw.Stored() >= base_in + step || !sim.running();
    }, 20s, 1ms);
    gw.ferryd().Kill9();
    ++kills;
    ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  }
  ASSERT_EQ(sim.Wait(300s), 0) << SimSummary(gw);
  auto acked_by_local = ReadLines(gw.path("ids.txt"));
  ASSERT_EQ(acked_by_local.size(), kEvents);
  WaitQuiet(gw, rx);
  if (durability == "sync") {
    // Every event the local broker acknowledged to a device must reach the centre.
    auto missing = Missing(acked_by_local, rx);
    EXPECT_TRUE(missing.empty()) << durability << ": " << missing.size() << " of " << kEvents
                                 << " acknowledged events lost across " << kills << " kills, e.g. "
                                 << Head(missing);
  }
  // Every event the log committed must reach the centre (batch mode's promise; also true in sync mode).
  auto committed = gw.LoggedIds("telemetry");
  poll_until([&] { return Missing(committed, rx).empty(); }, 120s, 50ms);
  auto missing_committed = Missing(committed, rx);
  EXPECT_TRUE(missing_committed.empty()) << missing_committed.size() << " committed events never arrived, e.g. "
                                         << Head(missing_committed);
  // The only duplicates are re-sent ids: nothing arrives that was not produced.
  std::unordered_set<std::string> produced(acked_by_local.begin(), acked_by_local.end());
  for (const auto& [id, e] : rx.ById()) EXPECT_TRUE(produced.count(id)) << "unexpected id " << id;
  std::printf("[ kill -9 ] %s: %d kills, %zu of %llu acknowledged events committed, %zu delivered, %zu lost "
              "(acknowledged by Paho, not yet committed at a kill), %llu duplicates dropped at the receiver\n",
              durability.c_str(), kills, committed.size(), static_cast<unsigned long long>(kEvents), rx.unique(),
              Missing(acked_by_local, rx).size(), static_cast<unsigned long long>(rx.duplicates()));
  EXPECT_EQ(gw.ferryd().Terminate(), 0);
}

TEST(StoreAndForward, KillNineSyncModeLosesNothingAcknowledged) { KillNineScenario("sync"); }
TEST(StoreAndForward, KillNineBatchModeDeliversEveryCommittedEvent) { KillNineScenario("batch"); }

// The local broker goes away while ferryd drains its backlog upstream: the drain goes on (ingest and uplinks are
// separate clients), ferryd keeps running, and once the local broker is back ferryd reconnects, re-subscribes
// (the restarted broker has no session for it) and ingests again.
TEST(StoreAndForward, LocalBrokerDownWhileDrainingKeepsDraining) {
  Gateway gw;
  CentralReceiver rx;
  ASSERT_TRUE(gw.BeginOutage(rx)) << gw.ferryd().log();
  const uint64_t kBacklog = 20'000;
  ASSERT_EQ(gw.RunSim(kBacklog, 0, gw.path("ids.txt")), 0) << SimSummary(gw);
  auto ids = ReadLines(gw.path("ids.txt"));
  ASSERT_EQ(ids.size(), kBacklog);
  // Every id the local broker acknowledged to the simulator is in ferryd's log before that broker goes away
  // (it keeps nothing: what ferryd had not taken yet would go with it). A count of stored events is not
  // enough: a redelivered copy stored twice would make it reach kBacklog early.
  ASSERT_TRUE(poll_until([&] { return gw.NotLogged("telemetry", ids).empty(); }, 120s, 200ms))
      << gw.NotLogged("telemetry", ids).size() << " not in the log, e.g. " << Head(gw.NotLogged("telemetry", ids))
      << "; stored " << gw.Stored();

  gw.local().stop();
  ASSERT_TRUE(poll_until([&] { return gw.Metric("ferry_ingest_link_up") == 0; }, 30s)) << gw.ferryd().log();
  ASSERT_TRUE(gw.EndOutage(rx)) << gw.central().log();
  EXPECT_TRUE(poll_until([&] { return rx.unique() >= kBacklog; }, 300s, 20ms))
      << rx.unique() << " of " << kBacklog << " (" << rx.bad() << " unreadable messages)" << gw.UplinkCounts()
      << "\n" << gw.ferryd().log();
  EXPECT_TRUE(Missing(ids, rx).empty()) << Head(Missing(ids, rx));
  EXPECT_TRUE(gw.ferryd().running());
  EXPECT_EQ(gw.Metric("ferry_ingest_link_up"), 0) << "the local broker is still down";

  // The local broker back (same port, no persistence: ferryd's session is gone) and a second round of events.
  ASSERT_TRUE(gw.local().start()) << gw.local().log();
  ASSERT_TRUE(poll_until([&] { return gw.Metric("ferry_ingest_link_up") == 1; }, 60s)) << gw.ferryd().log();
  const uint64_t kMore = 2'000;
  ASSERT_EQ(gw.RunSim(kMore, 0, gw.path("ids2.txt")), 0) << SimSummary(gw);
  auto more = ReadLines(gw.path("ids2.txt"));
  ASSERT_EQ(more.size(), kMore);
  EXPECT_TRUE(poll_until([&] { return Missing(more, rx).empty(); }, 120s, 20ms))
      << Missing(more, rx).size() << " of the second round missing, e.g. " << Head(Missing(more, rx));
  EXPECT_GE(gw.Metric("ferry_ingest_reconnects_total"), 2);
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// systemd's notification protocol, spoken by ferryd itself (no libsystemd): READY=1 once started, WATCHDOG=1
// every second while the main loop runs (the unit sets WatchdogSec=30s), STOPPING=1 on SIGTERM.
TEST(StoreAndForward, TellsSystemdReadyWatchdogAndStopping) {
  GatewayOptions o;
  o.uplink = false;
  Gateway gw(o);
  ASSERT_TRUE(gw.local().start()) << gw.local().log();
  NotifySocket notify(gw.path("notify"));
  ASSERT_TRUE(notify.bound());
  ::setenv("NOTIFY_SOCKET", notify.name().c_str(), 1);  // ferryd inherits it
  const bool started = gw.StartFerryd();
  ::unsetenv("NOTIFY_SOCKET");
  ASSERT_TRUE(started) << gw.ferryd().log();
  std::vector<std::string> got;
  auto seen = [&](const std::string& what) {
    for (std::string m; !(m = notify.Take()).empty();) got.push_back(m);
    return static_cast<size_t>(std::count(got.begin(), got.end(), what));
  };
  EXPECT_TRUE(poll_until([&] { return seen("READY=1") == 1; }, 30s));
  EXPECT_TRUE(poll_until([&] { return seen("WATCHDOG=1") >= 2; }, 30s)) << got.size() << " notifications";
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.front(), "READY=1");
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
  EXPECT_EQ(seen("STOPPING=1"), 1u);
  EXPECT_EQ(got.back(), "STOPPING=1");
  EXPECT_EQ(seen("READY=1"), 1u);
}

// TLS on both of ferryd's connections: the ingest presents a client certificate the local broker requires, both
// verify the broker's certificate and host name against the test CA. The TLS listeners speak nothing else, so
// events arriving at the centre prove both handshakes.
TEST(StoreAndForward, TlsToBothBrokersWithAClientCertificate) {
  GatewayOptions o;
  o.tls = true;
  Gateway gw(o);
  ASSERT_TRUE(gw.pki_ok()) << gw.pki_log();
  ASSERT_TRUE(gw.local().start()) << gw.local().log();
  ASSERT_TRUE(gw.central().start()) << gw.central().log();
  CentralReceiver rx;
  ASSERT_TRUE(rx.Connect(gw.central().uri()));
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log() << gw.local().log();
  const uint64_t kEvents = 2'000;
  ASSERT_EQ(gw.RunSim(kEvents, 0, gw.path("ids.txt")), 0) << SimSummary(gw);
  auto ids = ReadLines(gw.path("ids.txt"));
  ASSERT_EQ(ids.size(), kEvents);
  EXPECT_TRUE(poll_until([&] { return Missing(ids, rx).empty(); }, 120s, 20ms))
      << Missing(ids, rx).size() << " missing; " << gw.ferryd().log() << gw.central().log();
  EXPECT_EQ(gw.Metric("ferry_uplink_link_up{uplink=\"central\"}"), 1);
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// A broker certificate from a CA ferryd does not trust: the handshake fails, ferryd says so and keeps retrying
// (it does not exit, nothing is subscribed). A TLS file that cannot be read stops ferryd at start, naming it.
TEST(StoreAndForward, TlsProblemsAreReportedNotFatal) {
  // A gateway with only the TLS ingest, trusting `ca_file`, ferryd started without waiting for the link.
  auto tls_ingest = [](const std::string& ca_file) {
    GatewayOptions o;
    o.tls = true;
    o.uplink = false;
    o.ingest_ca_file = ca_file;
    return o;
  };
  {
    Gateway gw(tls_ingest("{PKI}/other-ca.pem"));
    ASSERT_TRUE(gw.pki_ok()) << gw.pki_log();
    ASSERT_TRUE(gw.local().start()) << gw.local().log();
    ASSERT_TRUE(gw.StartFerryd(/*wait_for_ingest=*/false));
    auto reported = [&] {
      std::string log = gw.ferryd().log();
      return log.find("ingest: " + gw.local().tls_uri()) != std::string::npos &&
             log.find("retrying") != std::string::npos;
    };
    EXPECT_TRUE(poll_until(reported, 30s)) << gw.ferryd().log();
    EXPECT_TRUE(poll_until([&] { return gw.Metric("ferry_ingest_reconnects_total") >= 2; }, 30s))
        << gw.ferryd().log();
    EXPECT_TRUE(gw.ferryd().running());
    EXPECT_NE(gw.ferryd().log().find("check tls.ca_file"), std::string::npos) << gw.ferryd().log();
    EXPECT_EQ(gw.Metric("ferry_ingest_link_up"), 0);
    EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
  }
  {
    Gateway gw(tls_ingest("{PKI}/missing-ca.pem"));
    ASSERT_TRUE(gw.pki_ok()) << gw.pki_log();
    ASSERT_TRUE(gw.local().start()) << gw.local().log();
    ASSERT_TRUE(gw.StartFerryd(/*wait_for_ingest=*/false));
    EXPECT_NE(gw.ferryd().Wait(30s), 0);
    EXPECT_NE(gw.ferryd().log().find("tls.ca_file"), std::string::npos) << gw.ferryd().log();
    EXPECT_NE(gw.ferryd().log().find("missing-ca.pem"), std::string::npos) << gw.ferryd().log();
  }
}

// An in-flight window larger than the central broker's Receive Maximum (Mosquitto's default is 20): Paho queues
// the excess and refuses more once its queue is full. That is back-pressure, not a lost link: the drain goes on
// with no reconnect and no re-sent window.
TEST(StoreAndForward, InflightAboveTheBrokersReceiveMaximumIsBackPressure) {
  GatewayOptions o;
  o.inflight = 512;
  Gateway gw(o);
  CentralReceiver rx;
  ASSERT_TRUE(gw.BeginOutage(rx)) << gw.ferryd().log();
  const uint64_t kEvents = 5'000;
  ASSERT_EQ(gw.RunSim(kEvents, 0, gw.path("ids.txt")), 0) << SimSummary(gw);
  ASSERT_TRUE(poll_until([&] { return gw.Stored() >= kEvents; }, 120s)) << "stored " << gw.Stored();
  ASSERT_TRUE(gw.EndOutage(rx)) << gw.central().log();
  auto ids = ReadLines(gw.path("ids.txt"));
  EXPECT_TRUE(poll_until([&] { return Missing(ids, rx).empty(); }, 120s, 20ms))
      << Missing(ids, rx).size() << " missing\n" << gw.ferryd().log();
  EXPECT_EQ(gw.Metric("ferry_uplink_retries_total{uplink=\"central\"}"), 0) << gw.ferryd().log();
  EXPECT_EQ(gw.ferryd().log().find("link to"), std::string::npos) << "the link went down:\n" << gw.ferryd().log();
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// A restart into a large backlog queued at the local broker: the broker sends at most ingest.receive_maximum
// messages ahead of ferryd's acknowledgements, so the subscription is confirmed (link up) within the first few
// hundred events instead of behind the whole backlog, and the backlog then arrives complete.
TEST(StoreAndForward, RestartIntoAQueuedBacklogSubscribesFirst) {
  GatewayOptions o;
  o.durability = "sync";  // one commit per message: a backlog takes long enough to see the order
  o.uplink = false;
  Gateway gw(o);
  ASSERT_TRUE(gw.local().start());
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();  // the persistent session and its subscription
  ASSERT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();

  const uint64_t kBacklog = 20'000;
  ASSERT_EQ(gw.RunSim(kBacklog, 0, gw.path("ids.txt")), 0);  // queued by the broker for ferryd's session
  auto ids = ReadLines(gw.path("ids.txt"));
  ASSERT_EQ(ids.size(), kBacklog);

  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();  // returns once the link is up
  double stored_at_link_up = gw.Stored();
  EXPECT_LT(stored_at_link_up, kBacklog / 2.0) << "the SUBACK came behind the queued backlog";
  // Sync mode commits one message at a time: 20,000 take 40-120 s on a busy 2-core machine.
  ASSERT_TRUE(poll_until([&] { return gw.Stored() >= kBacklog; }, 600s)) << "stored " << gw.Stored();
  EXPECT_EQ(gw.NotLogged("telemetry", ids).size(), 0u);
  std::printf("[ backlog ] link up after %.0f of %llu queued events were stored\n", stored_at_link_up,
              static_cast<unsigned long long>(kBacklog));
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// 3. A long outage reaches the disk budget: the policy is applied and counted, ferryd keeps running.
TEST(StoreAndForward, DiskBudgetDropOldestKeepsNewest) {
  GatewayOptions o;
  o.map_size = "12MiB";
  Gateway gw(o);
  CentralReceiver rx;
  ASSERT_TRUE(gw.BeginOutage(rx)) << gw.ferryd().log();
  const uint64_t kEvents = 60'000;  // ~24 MB of records: twice the map
  ASSERT_EQ(gw.RunSim(kEvents, 0, gw.path("ids.txt")), 0);
  auto ids = ReadLines(gw.path("ids.txt"));
  ASSERT_TRUE(poll_until([&] { return gw.Stored() >= kEvents; }, 120s)) << gw.Stored();
  double evicted = gw.Metric("ferry_stream_evicted_total{stream=\"telemetry\",reason=\"budget\"}");
  EXPECT_GT(evicted, 0) << "no budget eviction counted";
  EXPECT_TRUE(gw.ferryd().running());
  EXPECT_NE(HttpGet(gw.metrics_port(), "/healthz").find("storage used"), std::string::npos);
  auto logged = gw.LoggedIds("telemetry");
  ASSERT_FALSE(logged.empty());
  std::unordered_set<std::string> kept(logged.begin(), logged.end());
  // Per device, ids are produced in order; the newest of the run must be kept, the oldest evicted.
  EXPECT_TRUE(kept.count(ids.back())) << "newest event " << ids.back() << " was not kept";
  EXPECT_FALSE(kept.count(ids.front())) << "oldest event " << ids.front() << " survived a full budget";
  EXPECT_EQ(static_cast<double>(logged.size()) + evicted, static_cast<double>(kEvents))
      << "every event is either stored or counted as evicted";
  // The kept (newest) events drain when the centre returns. The map is still near its budget, so the drain's
  // own small writes (cursor updates) may evict a few more of the oldest before they are sent: each kept event
  // must arrive or be gone from the log, counted as evicted.
  ASSERT_TRUE(gw.EndOutage(rx)) << gw.central().log();
  auto gone_or_arrived = [&] {
    auto now_logged = gw.LoggedIds("telemetry");
    std::unordered_set<std::string> still(now_logged.begin(), now_logged.end());
    std::vector<std::string> missing;
    for (const auto& id : logged)
      if (!rx.Has(id) && still.count(id)) missing.push_back(id);
    return missing;
  };
  auto t0 = Clock::now();
  poll_until([&] { return gone_or_arrived().empty(); }, 120s, 50ms);
  double drain_s = std::chrono::duration<double>(Clock::now() - t0).count();
  auto missing = gone_or_arrived();
  EXPECT_TRUE(missing.empty()) << missing.size() << " of " << logged.size() << " kept events still in the log "
                               << "but not delivered after " << drain_s << " s, e.g. " << Head(missing) << "\n"
                               << HttpGet(gw.metrics_port(), "/metrics") << gw.ferryd().log();
  const double evicted_during_drain =
      gw.Metric("ferry_stream_evicted_total{stream=\"telemetry\",reason=\"budget\"}") - evicted;
  const size_t never_arrived = Missing(logged, rx).size();
  EXPECT_LE(static_cast<double>(never_arrived), evicted_during_drain)
      << never_arrived << " kept events never arrived, but only " << evicted_during_drain
      << " were evicted after the snapshot";
  std::printf("[ budget ] drain of the kept events: %.1f s; %.0f more evicted meanwhile, %zu of them unsent\n",
              drain_s, evicted_during_drain, never_arrived);
  std::printf("[ budget ] 12 MiB map, %llu events: %zu kept, %.0f evicted (budget)\n",
              static_cast<unsigned long long>(kEvents), logged.size(), evicted);
  EXPECT_EQ(gw.ferryd().Terminate(), 0);
}

TEST(StoreAndForward, DiskBudgetRejectNewCountsRejections) {
  GatewayOptions o;
  o.map_size = "12MiB";
  o.full_policy = "reject_new";
  o.uplink = false;
  Gateway gw(o);
  ASSERT_TRUE(gw.local().start());
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  const uint64_t kEvents = 60'000;
  ASSERT_EQ(gw.RunSim(kEvents, 0, gw.path("ids.txt")), 0);
  ASSERT_TRUE(poll_until([&] {
    double stored = gw.Stored(), rejected = gw.Metric("ferry_stream_rejected_total{stream=\"telemetry\"}");
    return stored + std::max(rejected, 0.0) >= kEvents;
  }, 120s)) << "stored " << gw.Stored() << ", rejected " << gw.Metric("ferry_stream_rejected_total{stream=\"telemetry\"}")
            << "\n" << gw.ferryd().log();
  double rejected = gw.Metric("ferry_stream_rejected_total{stream=\"telemetry\"}");
  EXPECT_GT(rejected, 0);
  auto ids = ReadLines(gw.path("ids.txt"));
  auto logged = gw.LoggedIds("telemetry");
  ASSERT_FALSE(logged.empty());
  EXPECT_EQ(logged.front(), ids.front()) << "reject_new keeps the oldest";
  EXPECT_EQ(gw.Metric("ferry_stream_evicted_total{stream=\"telemetry\",reason=\"budget\"}"), 0);
  EXPECT_TRUE(gw.ferryd().running());
  std::printf("[ budget ] reject_new: %zu kept, %.0f rejected\n", logged.size(), rejected);
  EXPECT_EQ(gw.ferryd().Terminate(), 0);
}

// 4. Bad input goes to the dead-letter stream with a reason; ferryd never exits on it.
TEST(StoreAndForward, BadInputIsDeadLetteredNotFatal) {
  GatewayOptions o;
  o.uplink = false;
  Gateway gw(o);
  ASSERT_TRUE(gw.local().start());
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  mqtt::async_client pub(gw.local().uri(), "bad-input", mqtt::create_options(MQTTVERSION_5));
  pub.connect(mqtt::connect_options_builder().mqtt_version(MQTTVERSION_5).finalize())->wait();
  auto send = [&](const std::string& topic, const std::string& payload) {
    pub.publish(mqtt::make_message(topic, payload, 1, false))->wait();
  };
  send("telemetry/dev-1/engine", "{\"temp\": 80,");            // malformed JSON
  send("telemetry/dev-1/engine", std::string(10'000, 'x'));    // over max_payload (4 KiB)
  send("telemetry//engine", "{}");                             // empty device level
  send("telemetry/dev-1/engine", std::string("\xff\xfe\x00", 3));  // binary garbage
  send("telemetry/dev-2/engine", "{\"id\":\"ok-1\",\"temp\":70}");  // a good one after all that
  pub.disconnect()->wait();
  ASSERT_TRUE(poll_until([&] { return gw.Metric("ferry_stream_stored_total{stream=\"dead\"}") >= 4; }, 20s));
  ASSERT_TRUE(poll_until([&] { return gw.Stored() >= 1; }, 20s));
  EXPECT_EQ(gw.Metric("ferry_stream_dead_lettered_total{stream=\"dead\",reason=\"bad_content\"}"), 2);
  EXPECT_EQ(gw.Metric("ferry_stream_dead_lettered_total{stream=\"dead\",reason=\"oversize\"}"), 1);
  EXPECT_EQ(gw.Metric("ferry_stream_dead_lettered_total{stream=\"dead\",reason=\"bad_topic\"}"), 1);
  // The reasons are in the dead-letter records themselves.
  EventLogOptions lo;
  lo.path = gw.path("log");
  lo.read_only = true;
  auto log = EventLog::Open(lo);
  ASSERT_TRUE(log) << log.error().ToString();
  auto recs = (*log)->Read("dead", Seq{1}, 10);
  ASSERT_TRUE(recs);
  ASSERT_EQ(recs->size(), 4u);
  std::multiset<std::string> reasons;
  for (const auto& r : *recs)
    for (const auto& [k, v] : r.event.headers)
      if (k == "ferry_dlq_reason") reasons.insert(v);
  EXPECT_EQ(reasons, (std::multiset<std::string>{"bad_content", "bad_content", "bad_topic", "oversize"}));
  EXPECT_TRUE(gw.ferryd().running());
  EXPECT_EQ(gw.ferryd().Terminate(), 0);
}

// A 160 KB payload of 80,000 nested arrays (under the 256 KiB default max_payload) once killed ferryd with
// SIGSEGV in the recursive JSON parser, and again on every restart since it was never acknowledged. It is
// dead-lettered with reason too_deep, and the events behind it are stored.
TEST(StoreAndForward, DeeplyNestedJsonIsDeadLetteredNotACrash) {
  GatewayOptions o;
  o.uplink = false;
  o.max_payload = "256KiB";
  Gateway gw(o);
  ASSERT_TRUE(gw.local().start());
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  mqtt::async_client pub(gw.local().uri(), "deep-input", mqtt::create_options(MQTTVERSION_5));
  pub.connect(mqtt::connect_options_builder().mqtt_version(MQTTVERSION_5).finalize())->wait();
  const size_t kDepth = 80'000;
  pub.publish(mqtt::make_message("telemetry/dev-1/engine", std::string(kDepth, '[') + std::string(kDepth, ']'), 1,
                                 false))->wait();
  std::string objects;
  for (size_t i = 0; i < 20'000; ++i) objects += "{\"a\":";
  objects += "1" + std::string(20'000, '}');
  pub.publish(mqtt::make_message("telemetry/dev-1/engine", objects, 1, false))->wait();
  pub.publish(mqtt::make_message("telemetry/dev-2/engine", "{\"id\":\"after-deep\",\"temp\":70}", 1, false))->wait();
  pub.disconnect()->wait();
  ASSERT_TRUE(poll_until([&] { return gw.Stored() >= 1 || !gw.ferryd().running(); }, 60s)) << gw.ferryd().log();
  ASSERT_TRUE(gw.ferryd().running()) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.Metric("ferry_stream_stored_total{stream=\"dead\"}") >= 2; }, 30s));
  EXPECT_EQ(gw.Metric("ferry_stream_dead_lettered_total{stream=\"dead\",reason=\"too_deep\"}"), 2);
  EXPECT_EQ(gw.LoggedIds("telemetry"), (std::vector<std::string>{"after-deep"}));
  EXPECT_EQ(gw.ferryd().Terminate(), 0);
}

TEST(StoreAndForward, BadConfigFilesAreClearErrors) {
  TempDir dir("ferry-badcfg");
  struct Case {
    const char* text;
    const char* expect;  // part of the message
  } cases[] = {
      {"[storage]\nmap_sise = \"1GiB\"\n", "ferry.toml:2:1"},
      {"[storage]\nmap_size = \"lots\"\n", "storage.map_size"},
      {"[[stream]]\nname = \"a\"\nfull_policy = \"drop\"\n", "drop_oldest"},
      {"[ingest\n", "ferry.toml:1"},
      {"[[route]]\nfilter = \"t/#/x\"\nstream = \"s\"\n", "route[0]"},
  };
  for (const auto& c : cases) {
    std::string path = dir.path() + "/ferry.toml";
    WriteFile(path, c.text);
    for (const char* flag : {"--check-config", "-c"}) {
      ChildProcess p;
      ASSERT_TRUE(p.Start(Ferryd({flag, path}), dir.path() + "/out.log"));
      int status = p.Wait(10s);
      ASSERT_NE(status, -1) << "ferryd hung on a bad config: " << c.text;
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << c.text << p.log();
      EXPECT_NE(p.log().find(c.expect), std::string::npos) << "error does not name \"" << c.expect << "\":\n"
                                                           << p.log();
      std::remove((dir.path() + "/out.log").c_str());
    }
  }
}

// 5. Both uplink modes against the central broker; the batched output decodes to the same events.
TEST(StoreAndForward, PerEventAndBatchedCarryTheSameEvents) {
  GatewayOptions o;
  o.uplink_mode = "per_event";
  // A second uplink in batched mode to the same central broker, under another topic.
  o.extra_uplinks = "[[uplink]]\nname = \"central_b\"\naddress = \"{CENTRAL}\"\nmode = \"batched\"\n"
                    "topic = \"batched/{gateway}/{stream}\"\nbatch.max_events = 200\nbatch.max_delay = \"20ms\"\n"
                    "backoff.min = \"50ms\"\nbackoff.max = \"500ms\"\n";
  Gateway gw(o);
  ASSERT_TRUE(gw.local().start());
  ASSERT_TRUE(gw.central().start());
  CentralReceiver per_event("rx-per-event"), batched("rx-batched");
  per_event.KeepEvents(true);
  batched.KeepEvents(true);
  ASSERT_TRUE(per_event.Connect(gw.central().uri(), "ferry/gw-test/#"));
  ASSERT_TRUE(batched.Connect(gw.central().uri(), "batched/#"));
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  const uint64_t kEvents = 5'000;
  ASSERT_EQ(gw.RunSim(kEvents, 0, gw.path("ids.txt")), 0);
  ASSERT_TRUE(poll_until([&] { return per_event.unique() >= kEvents && batched.unique() >= kEvents; }, 60s))
      << per_event.unique() << " / " << batched.unique();
  auto a = per_event.ById();
  auto b = batched.ById();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [id, ea] : a) {
    auto it = b.find(id);
    ASSERT_NE(it, b.end()) << id;
    const WireEvent& eb = it->second;
    EXPECT_EQ(ea.seq, eb.seq) << id;
    EXPECT_EQ(ea.subject, eb.subject) << id;
    EXPECT_EQ(ea.source, eb.source) << id;
    EXPECT_EQ(ea.type, eb.type) << id;
    EXPECT_EQ(ea.ingest_time, eb.ingest_time) << id;
    EXPECT_EQ(ea.datacontenttype, eb.datacontenttype) << id;
  }
  double pe_bytes = gw.Metric("ferry_uplink_bytes_total{uplink=\"central\"}");
  double b_bytes = gw.Metric("ferry_uplink_bytes_total{uplink=\"central_b\"}");
  std::printf("[ modes ] %llu events: per_event %.1f payload bytes/event, batched %.1f bytes/event (%.2fx)\n",
              static_cast<unsigned long long>(kEvents), pe_bytes / kEvents, b_bytes / kEvents, b_bytes / pe_bytes);
  EXPECT_EQ(gw.ferryd().Terminate(), 0);
}

// Drain order newest_first: after an outage the newest events go first, then the backlog is backfilled.
TEST(StoreAndForward, NewestFirstSendsCurrentStateBeforeBackfill) {
  GatewayOptions o;
  o.uplink_extra_keys = "drain_order = \"newest_first\"\n";
  Gateway gw(o);
  CentralReceiver rx;
  ASSERT_TRUE(gw.BeginOutage(rx)) << gw.ferryd().log();
  const uint64_t kEvents = 5'000;
  ASSERT_EQ(gw.RunSim(kEvents, 0, gw.path("ids.txt")), 0);
  ASSERT_TRUE(poll_until([&] { return gw.Stored() >= kEvents; }, 60s));
  ASSERT_TRUE(gw.EndOutage(rx)) << gw.central().log();
  ASSERT_TRUE(poll_until([&] { return rx.unique() >= kEvents; }, 120s)) << rx.unique();
  auto arrivals = rx.Arrivals();
  ASSERT_FALSE(arrivals.empty());
  EXPECT_EQ(arrivals.front().second, kEvents) << "the newest event is not the first one sent after the outage";
  EXPECT_EQ(Missing(ReadLines(gw.path("ids.txt")), rx).size(), 0u) << "backfill incomplete";
  EXPECT_EQ(gw.ferryd().Terminate(), 0);
}

// Priorities: after an outage the higher-priority stream drains before the lower one starts.
TEST(StoreAndForward, HigherPriorityStreamDrainsFirst) {
  GatewayOptions o;
  o.extra_streams = "[[stream]]\nname = \"alarms\"\npriority = 50\n"
                    "[[route]]\nfilter = \"alarms/{device}/#\"\nstream = \"alarms\"\nsubject = \"{device}\"\n"
                    "content_type = \"application/json\"\nid_json_field = \"id\"\n";
  Gateway gw(o);
  CentralReceiver rx;
  ASSERT_TRUE(gw.BeginOutage(rx)) << gw.ferryd().log();
  // Telemetry (priority 0) first, alarms (priority 50) after: arrival order must invert the production order.
  ASSERT_EQ(gw.RunSim(3'000, 0, gw.path("ids.txt")), 0);
  ASSERT_EQ(gw.RunSim(1'000, 0, gw.path("alarm-ids.txt"), {"--topic-prefix", "alarms", "--device-prefix", "alm-"}), 0);
  ASSERT_TRUE(poll_until([&] {
    return gw.Stored() >= 3'000 && gw.Metric("ferry_stream_stored_total{stream=\"alarms\"}") >= 1'000;
  }, 60s));
  ASSERT_TRUE(gw.EndOutage(rx)) << gw.central().log();
  ASSERT_TRUE(poll_until([&] { return rx.unique() >= 4'000; }, 120s)) << rx.unique();
  auto arrivals = rx.Arrivals();
  size_t alarms_before_first_telemetry = 0;
  for (const auto& [topic, seq] : arrivals) {
    if (topic.find("/telemetry") != std::string::npos) break;
    ++alarms_before_first_telemetry;
  }
  // The in-flight window (64) lets the lower stream start while the last alarms are still unacknowledged.
  EXPECT_GE(alarms_before_first_telemetry, 1'000u - 64u);
  EXPECT_EQ(gw.ferryd().Terminate(), 0);
}

// The bytes-per-second cap holds while a backlog drains (an upper bound: a slow machine only sends less).
TEST(StoreAndForward, BandwidthCapBoundsTheDrain) {
  GatewayOptions o;
  o.uplink_mode = "batched";
  o.uplink_extra_keys = "bytes_per_sec = 20000\nbatch.max_events = 50\n";
  Gateway gw(o);
  CentralReceiver rx;
  ASSERT_TRUE(gw.BeginOutage(rx)) << gw.ferryd().log();
  ASSERT_EQ(gw.RunSim(4'000, 0, gw.path("ids.txt")), 0);
  ASSERT_TRUE(poll_until([&] { return gw.Stored() >= 4'000; }, 60s));
  ASSERT_TRUE(gw.EndOutage(rx)) << gw.central().log();
  auto t0 = Clock::now();
  double bytes0 = std::max(gw.Metric("ferry_uplink_bytes_total{uplink=\"central\"}"), 0.0);
  // Watch for 3 s of draining (or until done): the bytes sent never run ahead of the cap.
  double worst = 0;
  poll_until([&] {
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    double sent = gw.Metric("ferry_uplink_bytes_total{uplink=\"central\"}") - bytes0;
    // One second of burst (the bucket starts full) plus one batch in flight.
    double allowed = 20000.0 * (secs + 1.0) + 20000.0;
    worst = std::max(worst, sent / allowed);
    return secs >= 3.0 || rx.unique() >= 4'000;
  }, 60s, 50ms);
  EXPECT_LE(worst, 1.0) << "sent more than the cap allows";
  ASSERT_TRUE(poll_until([&] { return rx.unique() >= 4'000; }, 120s)) << rx.unique();
  EXPECT_EQ(gw.ferryd().Terminate(), 0);
}

// ferryctl status reads the running ferryd's log; ferryctl replay rewinds its uplink, which re-sends.
TEST(StoreAndForward, FerryctlStatusAndReplayAgainstARunningFerryd) {
  Gateway gw;
  ASSERT_TRUE(gw.local().start());
  ASSERT_TRUE(gw.central().start());
  CentralReceiver rx;
  ASSERT_TRUE(rx.Connect(gw.central().uri()));
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  const uint64_t kEvents = 1'000;
  ASSERT_EQ(gw.RunSim(kEvents, 0, gw.path("ids.txt")), 0) << SimSummary(gw);
  ASSERT_TRUE(poll_until([&] { return rx.unique() >= kEvents; }, 60s)) << rx.unique();
  EXPECT_EQ(rx.duplicates(), 0u);

  ChildProcess status;
  ASSERT_TRUE(status.Start(Ferryctl({"-c", gw.config_path(), "status"}), gw.path("status.log")));
  ASSERT_EQ(status.Wait(30s), 0) << status.log();
  EXPECT_NE(status.log().find("telemetry"), std::string::npos) << status.log();
  EXPECT_NE(status.log().find("central"), std::string::npos) << status.log();

  // SQL over the running ferryd's log, as a second process.
  ChildProcess sql;
  ASSERT_TRUE(sql.Start(Ferryctl({"-c", gw.config_path(), "sql", "--format", "csv",
                                  "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM telemetry"}),
                        gw.path("sql.log")));
  ASSERT_EQ(sql.Wait(30s), 0) << sql.log();
  EXPECT_NE(sql.log().find("n,ids\r\n1000,1000\r\n"), std::string::npos) << sql.log();

  ChildProcess replay;
  ASSERT_TRUE(replay.Start(
      Ferryctl({"-c", gw.config_path(), "replay", "central", "telemetry", "--from", "1", "-y", "--wait", "10s"}),
      gw.path("replay.log")));
  ASSERT_EQ(replay.Wait(30s), 0) << replay.log();
  EXPECT_NE(replay.log().find("applied"), std::string::npos) << replay.log();
  // Every event goes out again; the receiver sees each id a second time.
  EXPECT_TRUE(poll_until([&] { return rx.duplicates() >= kEvents; }, 60s)) << rx.duplicates() << "\n"
                                                                          << gw.ferryd().log();
  EXPECT_EQ(rx.unique(), kEvents);
  EXPECT_EQ(gw.ferryd().Terminate(), 0);
}

}  // namespace
}  // namespace ferry::test

namespace ferry::test {
namespace {

// A reload whose uplink settings cannot start (the HMAC key file removed since ferryd started) is refused,
// logged and counted, and the running uplink keeps forwarding under its previous settings: before the fix, the
// uplinks were stopped first and forwarding stayed off. /healthz answers throughout.
TEST(StoreAndForward, AReloadWhoseUplinksCannotStartKeepsForwarding) {
  TempDir keys("ferry-key");
  const std::string key_file = keys.path() + "/hmac.key";
  WriteFile(key_file, "s3cret\n");
  GatewayOptions o;
  o.uplink_mode = "batched";
  o.uplink_extra_keys = "hmac_key_file = \"" + key_file + "\"\n";
  Gateway gw(o);
  ASSERT_TRUE(gw.local().start());
  ASSERT_TRUE(gw.central().start());
  CentralReceiverOptions ro;
  ro.client_id = "central-hmac";
  ro.hmac_key = "s3cret";
  ro.record_arrivals = true;
  ferry::CentralReceiver rx(ro);
  ASSERT_TRUE(rx.Connect(gw.central().uri(), "ferry/#"));
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  ASSERT_EQ(gw.RunSim(200, 0, gw.path("ids1.txt")), 0) << SimSummary(gw);
  ASSERT_TRUE(poll_until([&] { return rx.unique() >= 200; }, 60s)) << rx.unique() << "\n" << gw.ferryd().log();

  ASSERT_EQ(std::remove(key_file.c_str()), 0);
  std::ofstream(gw.config_path(), std::ios::app) << "bytes_per_sec = \"1MiB\"\n";  // into the [[uplink]] table
  ASSERT_EQ(kill(gw.ferryd().pid(), SIGHUP), 0);
  ASSERT_TRUE(poll_until([&] { return gw.Metric("ferry_config_reloads_total{result=\"error\"}") == 1; }, 30s))
      << gw.ferryd().log();
  EXPECT_NE(gw.ferryd().log().find("the uplinks keep their previous settings"), std::string::npos)
      << gw.ferryd().log();
  const std::string health = HttpGet(gw.metrics_port(), "/healthz");
  EXPECT_NE(health.find("uplink central"), std::string::npos) << health;
  EXPECT_EQ(health.find("uplinks stopped"), std::string::npos) << health;

  ASSERT_EQ(gw.RunSim(200, 0, gw.path("ids2.txt")), 0) << SimSummary(gw);  // a new boot: new ids
  EXPECT_TRUE(poll_until([&] { return rx.unique() >= 400; }, 60s)) << rx.unique() << "\n" << gw.ferryd().log();
  EXPECT_TRUE(gw.ferryd().running());
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

}  // namespace
}  // namespace ferry::test
