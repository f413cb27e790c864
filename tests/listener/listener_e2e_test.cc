// The ingest listener end to end: ferryd as a process, devices that nobody here wrote (mosquitto_pub, Python's
// paho-mqtt) and the firmware library (ferry-sim), a central Mosquitto behind the uplink. The promise under
// test: an event a device saw acknowledged is in the log and reaches the centre, whatever happens to ferryd.
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <algorithm>
#include <random>
#include <unordered_set>

#include "../integration/harness.h"
#include "../support/test_pki.h"
#include "mqtt_test_client.h"
#include "ferry/event_log.h"
#include "ferry/stream_iterator.h"

namespace ferry::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Options {
  bool uplink = false;
  std::string map_size = "256MiB";
  std::string storage_path;           // default: <dir>/log
  std::string fsync_delay_ms;         // through the fsync shim, when it is built
  std::string extra_ingest;
  std::string extra_uplinks;  // more [[uplink]] tables
  std::string route_extra;    // more keys of the telemetry route
  std::vector<std::string> sim_args;  // more ferry-sim arguments
  std::string full_policy = "drop_oldest";
  std::vector<std::string> env;  // NAME=value for ferryd
};

class ListenerGateway {
 public:
  explicit ListenerGateway(Options o = {}) : opt_(std::move(o)), dir_("ferry-listener-e2e") {
    port_ = free_tcp_port();
    metrics_port_ = free_tcp_port();
    while (metrics_port_ == port_) metrics_port_ = free_tcp_port();
    log_path_ = opt_.storage_path.empty() ? dir_.path() + "/log" : opt_.storage_path;
  }
  std::string ConfigText() const {
    std::string c = "[gateway]\nid = \"gw-test\"\n";
    c += "[storage]\npath = \"" + log_path_ + "\"\nmap_size = \"" + opt_.map_size + "\"\n";
    c += "[ingest]\nmode = \"listen\"\nlisten.address = \"127.0.0.1:" + std::to_string(port_) + "\"\n" +
         opt_.extra_ingest;
    c += "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port_) + "\"\n";
    c += "[[stream]]\nname = \"telemetry\"\nfull_policy = \"" + opt_.full_policy + "\"\n[[stream]]\nname = \"dead\"\n";
    c += "[[route]]\nfilter = \"telemetry/{device}/#\"\nstream = \"telemetry\"\nsubject = \"{device}\"\n"
         "content_type = \"application/json\"\ndead_letter = \"dead\"\nid_json_field = \"id\"\n" + opt_.route_extra;
    c += opt_.extra_uplinks;
    if (opt_.uplink) {
      c += "[[uplink]]\nname = \"central\"\naddress = \"" + central_.uri() +
           "\"\nmode = \"batched\"\ntopic = \"ferry/{gateway}/{stream}\"\nbatch.max_delay = \"20ms\"\n"
           "backoff.min = \"50ms\"\nbackoff.max = \"500ms\"\n";
    }
    return c;
  }
  // Starts ferryd and waits until it serves metrics (the listener is bound before that).
  bool Start() {
    WriteFile(dir_.path() + "/ferry.toml", ConfigText());
    std::vector<std::string> argv;
#ifdef FERRY_SHIM_PATH
    if (!opt_.fsync_delay_ms.empty()) {
      argv = {"env", std::string("LD_PRELOAD=") + FERRY_SHIM_PATH, "FERRY_FSYNC_DELAY_MS=" + opt_.fsync_delay_ms};
    }
#endif
    if (!opt_.env.empty() && argv.empty()) argv.push_back("env");
    for (const auto& e : opt_.env) argv.push_back(e);
    for (auto& a : ToolCommand(FERRY_FERRYD_PATH, "FERRY_TEST_FERRYD", {"-c", dir_.path() + "/ferry.toml"}))
      argv.push_back(a);
    if (!ferryd_.Start(argv, dir_.path() + "/ferryd.log")) return false;
    return poll_until([this] { return Metric("ferry_ingest_link_up") == 1 || !ferryd_.running(); }, 60s) &&
           ferryd_.running();
  }
  double Metric(const std::string& sample) { return MetricValue(HttpGet(metrics_port_, "/metrics"), sample); }
  double Stored() { return Metric("ferry_stream_stored_total{stream=\"telemetry\"}"); }
  std::string Health() { return HttpGet(metrics_port_, "/healthz"); }
  // The HTTP status of /healthz (0 when it did not answer).
  int HealthStatus() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(metrics_port_));
    std::string out;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      std::string req = "GET /healthz HTTP/1.0\r\n\r\n";
      if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
        char buf[4096];
        ssize_t n;
        while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
      }
    }
    ::close(fd);
    return out.size() > 12 && out.compare(0, 5, "HTTP/") == 0 ? std::atoi(out.c_str() + 9) : 0;
  }
  std::vector<std::string> LoggedIds(const std::string& stream = "telemetry") {
    EventLogOptions o;
    o.path = log_path_;
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
      if (stream == "telemetry") {
        ids.emplace_back(r.id);
      } else {  // the dead-letter stream: reason and payload
        std::string reason;
        for (const auto& [k, v] : r.headers)
          if (k == "ferry_dlq_reason") reason = std::string(v);
        ids.emplace_back(reason + " " + std::string(r.payload));
      }
    }
    EXPECT_TRUE((*it)->status()) << (*it)->status().error().ToString();
    return ids;
  }
  std::vector<std::string> NotLogged(const std::vector<std::string>& want) {
    auto logged = LoggedIds();
    std::unordered_set<std::string> have(logged.begin(), logged.end());
    std::vector<std::string> out;
    for (const auto& id : want)
      if (!have.count(id)) out.push_back(id);
    return out;
  }
  bool StartSim(ChildProcess& sim, uint64_t count, double rate, int devices, const std::string& id_log,
                int connections = 0) {
    std::vector<std::string> argv = {FERRY_SIM_PATH, "--port", std::to_string(port_), "--count", std::to_string(count),
                                     "--rate", std::to_string(rate), "--devices", std::to_string(devices),
                                     "--seed", "5", "--state-dir", dir_.path() + "/sim-state", "--id-log", id_log,
                                     "--payload-size", "200", "--quiet", "--drain-timeout", "600"};
    if (connections > 0) {
      argv.push_back("--connections");
      argv.push_back(std::to_string(connections));
    }
    argv.insert(argv.end(), opt_.sim_args.begin(), opt_.sim_args.end());
    return sim.Start(argv, dir_.path() + "/sim.log");
  }
  std::string SimTail() {
    auto lines = ReadLines(dir_.path() + "/sim.log");
    std::string s;
    for (size_t i = lines.size() > 5 ? lines.size() - 5 : 0; i < lines.size(); ++i) s += lines[i] + "\n";
    return s;
  }

  int port() const { return port_; }
  std::string path(const std::string& n) const { return dir_.path() + "/" + n; }
  ChildProcess& ferryd() { return ferryd_; }
  MosquittoBroker& central() { return central_; }

 private:
  Options opt_;
  TempDir dir_;
  MosquittoBroker central_;
  ChildProcess ferryd_;
  int port_ = 0;
  int metrics_port_ = 0;
  std::string log_path_;
};

// VmRSS of a process in KiB (0 if gone).
long RssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return 0;
}

// Runs a shell command; its exit status.
int Shell(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

// A PUBACK from a real client must come after the commit of its event: with every fdatasync slowed to 250 ms
// (the fsync shim), each QoS 1 publish takes at least that long, and when the client returns the event is
// already counted as stored (the counter moves before the acknowledgement leaves).
TEST(ListenerE2E, RealClientsGetPubackAfterTheCommit) {
  Options o;
  o.fsync_delay_ms = "250";
  ListenerGateway gw(o);
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
#ifdef FERRY_SHIM_PATH
  const bool slowed = true;
#else
  const bool slowed = false;
  std::printf("[ listener ] no fsync shim in this build (sanitizer preset): timing not checked\n");
#endif
  const std::string port = std::to_string(gw.port());
  struct Client {
    std::string name, command;
  };
  const std::string pyscript = gw.path("pub.py");
  WriteFile(pyscript,
            "import sys, paho.mqtt.client as mqtt\n"
            "v = mqtt.MQTTv5 if sys.argv[2] == '5' else mqtt.MQTTv311\n"
            "c = mqtt.Client(client_id='py-' + sys.argv[2], protocol=v)\n"
            "c.connect('127.0.0.1', int(sys.argv[1]))\n"
            "c.loop_start()\n"
            "i = c.publish('telemetry/py' + sys.argv[2] + '/x', '{\"id\":\"' + sys.argv[3] + '\"}', qos=1)\n"
            "i.wait_for_publish(60)\n"
            "ok = i.is_published()\n"
            "c.disconnect(); c.loop_stop()\n"
            "sys.exit(0 if ok else 1)\n");
  std::vector<Client> clients = {
      {"mosquitto_pub 3.1.1", "mosquitto_pub -h 127.0.0.1 -p " + port +
                                  " -V mqttv311 -q 1 -i m3 -t telemetry/m3/x -m '{\"id\":\"mosq-311\"}'"},
      {"mosquitto_pub 5", "mosquitto_pub -h 127.0.0.1 -p " + port +
                              " -V mqttv5 -q 1 -i m5 -t telemetry/m5/x -m '{\"id\":\"mosq-5\"}'"},
      {"python paho-mqtt 3.1.1", "/usr/bin/python3 " + pyscript + " " + port + " 3 py-311"},
      {"python paho-mqtt 5", "/usr/bin/python3 " + pyscript + " " + port + " 5 py-5"},
  };
  double stored = gw.Stored();
  for (const auto& c : clients) {
    auto t0 = Clock::now();
    ASSERT_EQ(Shell(c.command), 0) << c.name << ": " << c.command << "\n" << gw.ferryd().log();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    double now = gw.Stored();
    EXPECT_EQ(now, stored + 1) << c.name << ": acknowledged before its commit was counted";
    if (slowed) {
      EXPECT_GE(ms, 250) << c.name << ": acknowledged faster than one fdatasync";
    }
    std::printf("[ listener ] %s: PUBACK after %lld ms (fdatasync slowed to 250 ms)\n", c.name.c_str(),
                static_cast<long long>(ms));
    stored = now;
  }
  EXPECT_TRUE(gw.NotLogged({"mosq-311", "mosq-5", "py-311", "py-5"}).empty());

  // The firmware library (Paho C, MQTT 5), 8 devices pipelining: ids in the log = ids it saw acknowledged.
  ChildProcess sim;
  ASSERT_TRUE(gw.StartSim(sim, 4000, 0, 8, gw.path("ids.txt")));
  ASSERT_EQ(sim.Wait(300s), 0) << gw.SimTail() << gw.ferryd().log();
  auto ids = ReadLines(gw.path("ids.txt"));
  ASSERT_EQ(ids.size(), 4000u);
  auto missing = gw.NotLogged(ids);
  EXPECT_TRUE(missing.empty()) << missing.size() << " acknowledged, not in the log: " << Head(missing);
  double commits = gw.Metric("ferry_storage_commits_total");
  std::printf("[ listener ] ferry-sim: 4000 events in %.0f commits (%.0f events per fdatasync pair)\n", commits,
              4000.0 / std::max(commits, 1.0));
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// Power cuts: ferryd killed with kill -9 at random moments while 8 firmware-library devices publish; after each
// restart the devices reconnect and re-send what was not acknowledged. Every id a device saw acknowledged is
// in the log and reaches the central broker. FERRY_POWER_CUTS sets the count (default 100; the soak script
// runs 1,000).
TEST(ListenerE2E, PowerCutsLoseNothingAcknowledged) {
  Options o;
  o.uplink = true;
  ListenerGateway gw(o);
  ASSERT_TRUE(gw.central().start());
  CentralReceiver rx;
  ASSERT_TRUE(rx.Connect(gw.central().uri()));
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  int cuts = 100;
  if (const char* env = std::getenv("FERRY_POWER_CUTS")) cuts = std::max(1, std::atoi(env));
  const uint64_t kEvents = static_cast<uint64_t>(cuts) * 300 + 5000;
  ChildProcess sim;
  ASSERT_TRUE(gw.StartSim(sim, kEvents, 3000, 8, gw.path("ids.txt"), 8));
  std::mt19937 rng(20261126);
  int done = 0;
  long peak_rss_kb = 0;
  auto t0 = Clock::now();
  for (; done < cuts && sim.running(); ++done) {
    // Kill after a random amount of progress (ferryd's own count restarts with it), or after up to 400 ms.
    double step = std::uniform_int_distribution<int>(50, 600)(rng);
    auto wait = std::chrono::milliseconds(std::uniform_int_distribution<int>(20, 400)(rng));
    auto start = Clock::now();
    poll_until([&] { return gw.Stored() >= step || Clock::now() - start >= wait || !sim.running(); }, 60s, 5ms);
    peak_rss_kb = std::max(peak_rss_kb, RssKb(gw.ferryd().pid()));
    gw.ferryd().Kill9();
    ASSERT_TRUE(gw.Start()) << "restart " << done << "\n" << gw.ferryd().log();
  }
  ASSERT_EQ(sim.Wait(600s), 0) << gw.SimTail();
  double cut_s = std::chrono::duration<double>(Clock::now() - t0).count();
  auto acked = ReadLines(gw.path("ids.txt"));
  ASSERT_EQ(acked.size(), kEvents);
  auto missing = gw.NotLogged(acked);
  EXPECT_TRUE(missing.empty()) << missing.size() << " of " << kEvents << " acknowledged events not in the log after "
                               << done << " kills, e.g. " << Head(missing);
  // And at the centre.
  poll_until([&] { return rx.unique() >= kEvents; }, 300s, 50ms);
  std::vector<std::string> not_central;
  for (const auto& id : acked)
    if (!rx.Has(id)) not_central.push_back(id);
  EXPECT_TRUE(not_central.empty()) << not_central.size() << " acknowledged events never reached the centre, e.g. "
                                   << Head(not_central);
  auto logged = gw.LoggedIds();
  std::printf("[ power cut ] %d kills in %.0f s: %llu acknowledged, %zu stored (%zu duplicate copies), %zu lost, "
              "%llu delivered to the centre, %llu duplicates dropped there; ferryd's peak VmRSS %ld KiB\n",
              done, cut_s, static_cast<unsigned long long>(kEvents), logged.size(),
              logged.size() - std::unordered_set<std::string>(logged.begin(), logged.end()).size(), missing.size(),
              static_cast<unsigned long long>(rx.unique()), static_cast<unsigned long long>(rx.duplicates()),
              peak_rss_kb);
  EXPECT_EQ(done, cuts);
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// A message that crashes ferryd (here: fault injection, FERRY_FAULT_CRASH_PAYLOAD aborts while it is in hand)
// is never acknowledged, so the device re-sends it after the restart. It must not crash ferryd again: the
// crash guard recognises it and sets it aside, unparsed, in the dead-letter stream (reason poison),
// acknowledged; the events behind it are stored.
TEST(ListenerE2E, APoisonMessageCannotCauseACrashLoop) {
  Options o;
  o.env = {"FERRY_FAULT_CRASH_PAYLOAD=POISON"};
  ListenerGateway gw(o);
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  const std::string poison = "{\"id\":\"p-1\",\"v\":\"POISON\"}";
  int crashes = 0;
  bool acked = false;
  for (int attempt = 0; attempt < 5 && !acked; ++attempt) {
    MqttTestClient dev(mqtt::Version::kV5);
    ASSERT_TRUE(dev.Open(static_cast<uint16_t>(gw.port())));
    ASSERT_TRUE(dev.Connect("dev-p"));
    ASSERT_TRUE(dev.Publish("telemetry/dev-p/x", "{\"id\":\"before-" + std::to_string(attempt) + "\"}", 1, 1));
    ASSERT_TRUE(dev.ReadPuback(30s)) << gw.ferryd().log();
    ASSERT_TRUE(dev.Publish("telemetry/dev-p/x", poison, 1, 2));  // as a device re-sends it after each restart
    auto ack = dev.ReadPuback(30s);
    if (ack) {
      EXPECT_EQ(ack->packet_id, 2);
      acked = true;
      break;
    }
    ASSERT_TRUE(poll_until([&] { return !gw.ferryd().running(); }, 30s)) << "no PUBACK and ferryd still running";
    ++crashes;
    ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  }
  ASSERT_TRUE(acked) << "a crash loop: " << crashes << " crashes on the same message";
  EXPECT_EQ(crashes, 1) << "the fatal signal should mark it at once";
  MqttTestClient after(mqtt::Version::kV5);
  ASSERT_TRUE(after.Open(static_cast<uint16_t>(gw.port())));
  ASSERT_TRUE(after.Connect("dev-q"));
  ASSERT_TRUE(after.Publish("telemetry/dev-q/x", "{\"id\":\"after\"}", 1, 1));
  ASSERT_TRUE(after.ReadPuback(30s));
  EXPECT_EQ(gw.Metric("ferry_stream_dead_lettered_total{stream=\"dead\",reason=\"poison\"}"), 1);
  EXPECT_TRUE(gw.ferryd().running());
  EXPECT_EQ(gw.ferryd().Terminate(), 0);
  auto logged = gw.LoggedIds();
  EXPECT_TRUE(std::find(logged.begin(), logged.end(), "after") != logged.end());
  EXPECT_TRUE(std::find(logged.begin(), logged.end(), "p-1") == logged.end()) << "the poison was stored as an event";
  auto dead = gw.LoggedIds("dead");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0], "poison " + poison) << "set aside with its bytes";
}

// A healthy message in hand at one kill -9 is processed again, not set aside: only a second unclean exit
// with the same message in hand (or a fatal signal) makes it poison. (The power-cut test above kills ferryd
// 100 times and finds every acknowledged event in the telemetry stream.)

// TLS with client certificates (mbedTLS on ferryd's side, OpenSSL in mosquitto_pub): a device with a
// certificate from the devices' CA publishes and gets its PUBACK; its certificate's CN is its identity for
// topic_must_match_client; a device without a certificate, and a plain-TCP client, are refused.
TEST(ListenerE2E, TlsWithClientCertificates) {
  TempDir pki("ferry-listener-pki");
  ASSERT_TRUE(MakeTestPki(pki.path(), "/CN=dev-tls")) << ReadAll(pki.path() + "/pki.log");
  Options o;
  o.extra_ingest = "listen.tls.enabled = true\nlisten.tls.cert_file = \"" + pki.path() +
                   "/server.pem\"\nlisten.tls.key_file = \"" + pki.path() + "/server.key\"\nlisten.tls.ca_file = \"" +
                   pki.path() + "/ca.pem\"\nlisten.tls.require_client_cert = true\nlisten.topic_must_match_client = true\n";
  ListenerGateway gw(o);
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  const std::string base = "mosquitto_pub -h 127.0.0.1 -p " + std::to_string(gw.port()) + " -q 1 -V mqttv5 --cafile " +
                           pki.path() + "/ca.pem ";
  const std::string cert = "--cert " + pki.path() + "/client.pem --key " + pki.path() + "/client.key ";
  EXPECT_EQ(Shell(base + cert + "-t telemetry/dev-tls/x -m '{\"id\":\"tls-1\"}'"), 0) << gw.ferryd().log();
  EXPECT_NE(Shell("mosquitto_pub -h 127.0.0.1 -p " + std::to_string(gw.port()) +
                  " -q 1 -t telemetry/dev-tls/x -m '{\"id\":\"plain\"}'"), 0)
      << "a plain client was accepted";
  EXPECT_NE(Shell(base + "-t telemetry/dev-tls/x -m '{\"id\":\"no-cert\"}'"), 0) << "no certificate, accepted";
  // Another device's subject: refused with 0x87 (mosquitto_pub reports the failed publish).
  Shell(base + cert + "-t telemetry/dev-other/x -m '{\"id\":\"tls-2\"}'");
  auto logged = gw.LoggedIds();
  EXPECT_EQ(logged, (std::vector<std::string>{"tls-1"}));
  EXPECT_GE(gw.Metric("ferry_ingest_listener_refused_total{reason=\"not_authorized\"}"), 1);
  EXPECT_GE(gw.Metric("ferry_ingest_listener_closed_total{reason=\"tls_not_tls\"}"), 1);
  EXPECT_GE(gw.Metric("ferry_ingest_listener_closed_total{reason=\"tls_no_client_cert\"}"), 1);
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// A real full file system: the log on a 6 MiB tmpfs mounted in a private mount namespace (root only; skipped
// with the reason otherwise). Devices keep what is refused and re-send; /healthz is 503 while full; freeing
// space is enough for ferryd to store again; nothing acknowledged is lost.
TEST(ListenerE2E, DiskFullHoldsEventsAndRecovers) {
  TempDir mnt("ferry-diskfull");
  if (::unshare(CLONE_NEWNS) != 0 || ::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      ::mount("tmpfs", mnt.path().c_str(), "tmpfs", 0, "size=6m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno)
                 << "): needs root; tests/soak/listener_soak.sh runs this case as root";
  }
  const std::string filler = mnt.path() + "/filler";
  Options o;
  o.storage_path = mnt.path() + "/log";
  o.map_size = "64MiB";  // larger than the file system: the file system fills first
  o.full_policy = "reject_new";  // drop_oldest would evict acknowledged events to make room (counted)
  ListenerGateway gw(o);
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  // Leave about 1.5 MiB for the log to grow into.
  ASSERT_EQ(Shell("dd if=/dev/zero of=" + filler + " bs=64k count=56"), 0);
  const uint64_t kEvents = 12'000;  // ~3.5 MB of records: more than fits
  ChildProcess sim;
  ASSERT_TRUE(gw.StartSim(sim, kEvents, 4000, 8, gw.path("ids.txt")));
  ASSERT_TRUE(poll_until([&] { return gw.Metric("ferry_ingest_refused_total{reason=\"quota_exceeded\"}") > 0; }, 120s))
      << "never refused: " << gw.Health() << gw.ferryd().log();
  // While the file system stays full the refusals come back; an episode can close between two refusals when a
  // small batch fits in freed pages, so poll for the 503 rather than catch one moment.
  std::string health;
  EXPECT_TRUE(poll_until([&] {
    health = gw.Health();
    return gw.HealthStatus() == 503 && health.find("No space left on device") != std::string::npos;
  }, 60s)) << health;
  double refused_while_full = gw.Metric("ferry_ingest_refused_total{reason=\"quota_exceeded\"}");
  EXPECT_TRUE(sim.running()) << "the devices gave up: " << gw.SimTail();
  ASSERT_EQ(::unlink(filler.c_str()), 0);  // space returns
  ASSERT_EQ(sim.Wait(600s), 0) << gw.SimTail() << gw.ferryd().log();
  auto acked = ReadLines(gw.path("ids.txt"));
  ASSERT_EQ(acked.size(), kEvents);
  auto missing = gw.NotLogged(acked);
  EXPECT_TRUE(missing.empty()) << missing.size() << " acknowledged events lost, e.g. " << Head(missing);
  EXPECT_EQ(gw.Health().find("No space"), std::string::npos) << "still unhealthy after space returned";
  EXPECT_EQ(gw.HealthStatus(), 200);
  EXPECT_EQ(gw.Metric("ferry_stream_evicted_total{stream=\"telemetry\",reason=\"budget\"}"), 0);
  std::printf("[ disk full ] %llu events, %.0f refused while full (held and re-sent by the devices), %zu lost\n",
              static_cast<unsigned long long>(kEvents), refused_while_full, missing.size());
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
  ::umount2(mnt.path().c_str(), MNT_DETACH);
}

// The tee: local consumers that subscribed to a local Mosquitto keep getting the devices' events, now from
// ferryd once each is on disk, on the topic the device used and with its payload as sent (an uplink with
// topic = "{topic}", docs/ingest-listener.md). A subscriber started first sees each event published to ferryd.
TEST(ListenerE2E, TheTeeRepublishesStoredEventsOnTheirOwnTopics) {
  MosquittoBroker local;
  ASSERT_TRUE(local.start());
  Options o;
  o.extra_uplinks = "[[uplink]]\nname = \"local-tee\"\naddress = \"" + local.uri() +
                    "\"\nmode = \"per_event\"\ntopic = \"{topic}\"\nstreams = [\"telemetry\"]\n"
                    "backoff.min = \"50ms\"\nbackoff.max = \"500ms\"\n";
  ListenerGateway gw(o);
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  ChildProcess sub;
  ASSERT_TRUE(sub.Start({"stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", std::to_string(local.port()), "-V", "mqttv5",
                         "-t", "telemetry/#", "-v", "-d", "-C", "3", "-W", "120"},
                        gw.path("sub.log")));
  ASSERT_TRUE(poll_until([&] { return sub.log().find("SUBACK") != std::string::npos; }, 60s)) << sub.log();
  const std::string port = std::to_string(gw.port());
  for (const char* dev : {"dev-a", "dev-b", "dev-c"}) {
    std::string cmd = "mosquitto_pub -h 127.0.0.1 -p " + port + " -V mqttv5 -q 1 -t telemetry/" + dev +
                      "/env -m '{\"id\":\"tee-" + dev + "\",\"t\":1.50}'";
    ASSERT_EQ(Shell(cmd), 0) << cmd << "\n" << gw.ferryd().log();
  }
  ASSERT_EQ(sub.Wait(120s), 0) << sub.log() << gw.ferryd().log();
  for (const char* dev : {"dev-a", "dev-b", "dev-c"}) {
    const std::string line = std::string("telemetry/") + dev + "/env {\"id\":\"tee-" + dev + "\",\"t\":1.50}";
    EXPECT_NE(sub.log().find(line), std::string::npos) << line << "\n" << sub.log();
  }
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// Device clocks from the simulator (a quarter of the devices bad: half of those at 1970, half a day or two
// ahead): their events are stored with the ingest time, flagged and counted per reason; the healthy devices'
// events carry their own clock's time. Nothing is dropped for a bad clock.
TEST(ListenerE2E, BadDeviceClocksAreReplacedFlaggedAndCounted) {
  Options o;
  o.route_extra = "time_json_field = \"ts\"\ntime_format = \"unix_ms\"\n";
  o.sim_args = {"--clock-faults", "0.25"};
  ListenerGateway gw(o);
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  ChildProcess sim;
  ASSERT_TRUE(gw.StartSim(sim, 2000, 0, 16, gw.path("ids.txt")));
  ASSERT_EQ(sim.Wait(300s), 0) << gw.SimTail() << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.Stored() >= 2000; }, 60s)) << gw.Stored();
  const double before = gw.Metric("ferry_ingest_time_replaced_total{stream=\"telemetry\",reason=\"before_floor\"}");
  const double future = gw.Metric("ferry_ingest_time_replaced_total{stream=\"telemetry\",reason=\"future\"}");
  EXPECT_GT(before, 0) << "no device at 1970 was noticed";
  EXPECT_GT(future, 0) << "no device ahead was noticed";
  EXPECT_LT(before + future, 2000) << "healthy devices' times were replaced too";
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
  // In the log: flagged events carry the time ferryd received them and the time as sent; the others a time within seconds
  // of their ingest.
  EventLogOptions lo;
  lo.path = gw.path("log");
  lo.read_only = true;
  auto log = EventLog::Open(lo);
  ASSERT_TRUE(log) << log.error().ToString();
  auto it = (*log)->NewIterator("telemetry");
  ASSERT_TRUE(it);
  size_t flagged = 0, own = 0;
  for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) {
    const RecordView& r = (*it)->record();
    std::string reason;
    for (const auto& [k, v] : r.headers)
      if (k == "ferry_time_replaced") reason = std::string(v);
    if (!reason.empty()) {
      ++flagged;  // the time ferryd received it: before the commit stamped the ingest time, by little
      EXPECT_LE(r.time.ns, r.ingest_time.ns);
      EXPECT_LT(r.ingest_time.ns - r.time.ns, int64_t{60} * 1'000'000'000) << r.seq.value;
    } else {
      ++own;
      EXPECT_LT(std::llabs(r.time.ns - r.ingest_time.ns), int64_t{60} * 1'000'000'000) << r.seq.value;
    }
  }
  EXPECT_EQ(flagged, static_cast<size_t>(before + future));
  EXPECT_EQ(flagged + own, 2000u);
}

namespace clockfaults {

struct Stored {
  Seq seq;
  TimeNs ingest_time, time;
  std::string subject, payload, replaced;  // replaced: the ferry_time_replaced header, if any
};

// A stream as ferryd has committed it so far (a read-only reader beside the running ferryd).
std::vector<Stored> ReadStream(const std::string& log_path, const std::string& stream) {
  std::vector<Stored> out;
  EventLogOptions lo;
  lo.path = log_path;
  lo.read_only = true;
  auto log = EventLog::Open(lo);
  if (!log) return out;
  auto it = (*log)->NewIterator(stream);
  if (!it) return out;
  for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) {
    const RecordView& r = (*it)->record();
    Stored s{r.seq, r.ingest_time, r.time, std::string(r.subject), std::string(r.payload), {}};
    for (const auto& [k, v] : r.headers)
      if (k == "ferry_time_replaced") s.replaced = std::string(v);
    out.push_back(std::move(s));
  }
  return out;
}

// "count":N of a window result.
uint64_t ResultCount(const std::string& payload) {
  auto at = payload.find("\"count\":");
  return at == std::string::npos ? 0 : std::strtoull(payload.c_str() + at + 8, nullptr, 10);
}

}  // namespace clockfaults

// Issue 12, acceptance 3: ferry-sim devices with each clock fault (dev-0001 boots at 1970, dev-0004 is a day
// ahead, dev-0005 is right until it jumps hours ahead) beside healthy ones, through an event-time route and a
// per-device 2 s window. Each wrong time is replaced by the ingest time, flagged and counted: the counters equal
// what the simulator says it sent wrong. While the bad clocks are sending, the healthy devices' windows close on
// their own events (results written within seconds of each window's end), nobody's events are late, and in the
// end every stored event is counted in exactly one window result.
TEST(ListenerE2E, ClockFaultsAreCountedWhileHealthyWindowsCloseOnTime) {
  using namespace clockfaults;
  Options o;
  o.extra_ingest = "max_future_skew = \"10m\"\ntime_floor = \"2024-01-01T00:00:00Z\"\n";
  o.route_extra = "time_json_field = \"ts\"\ntime_format = \"unix_ms\"\n";
  o.extra_uplinks =
      "[[stream]]\nname = \"summaries\"\n"
      "[[pipeline]]\nname = \"per2s\"\ninput = [\"telemetry\"]\noutput = \"summaries\"\ndead_letter = \"dead\"\n"
      "[[pipeline.step]]\ntype = \"window\"\nwindow = \"tumbling\"\nsize = \"2s\"\nallowed_lateness = \"500ms\"\n"
      "idle_timeout = \"3s\"\naggregates = [\"count\"]\n";
  o.sim_args = {"--clock-fault", "1=1970", "--clock-fault", "4=ahead", "--clock-fault", "5=jump"};
  ListenerGateway gw(o);
  ASSERT_TRUE(gw.Start()) << gw.ferryd().log();
  const std::set<std::string> faulty = {"dev-0001", "dev-0004", "dev-0005"};
  const std::vector<std::string> healthy = {"dev-0000", "dev-0002", "dev-0003", "dev-0006", "dev-0007"};
  const uint64_t kEvents = 3000;  // 12 s at 250 events/s over 8 devices
  ChildProcess sim;
  ASSERT_TRUE(gw.StartSim(sim, kEvents, 250, 8, gw.path("ids.txt")));

  // While the simulator runs (the bad clocks still sending): every healthy device has closed windows.
  const int64_t kLateness = 500'000'000, kIdle = 3'000'000'000;
  std::vector<Stored> results;
  auto each_healthy_closed_two = [&] {
    results = ReadStream(gw.path("log"), "summaries");
    std::map<std::string, int> closed;
    for (const auto& r : results) ++closed[r.subject];
    for (const auto& d : healthy)
      if (closed[d] < 2) return false;
    return true;
  };
  ASSERT_TRUE(poll_until([&] { return each_healthy_closed_two() || !sim.running(); }, 120s, 100ms) && !results.empty())
      << results.size() << " results; " << gw.SimTail();
  EXPECT_TRUE(sim.running()) << "the simulator finished before the healthy windows closed: the test proves nothing";
  std::set<std::string> faulty_sending;  // the bad clocks that had sent a wrong time by then
  for (const auto& e : ReadStream(gw.path("log"), "telemetry"))
    if (!e.replaced.empty()) faulty_sending.insert(e.subject);
  EXPECT_TRUE(faulty_sending.count("dev-0001") && faulty_sending.count("dev-0004"))
      << "the 1970 and the day-ahead device had not sent yet";

  ASSERT_EQ(sim.Wait(300s), 0) << gw.SimTail() << gw.ferryd().log();
  // The simulator's own count of what it sent with a wrong clock, by fault.
  std::map<std::string, double> sent;
  for (const auto& line : ReadLines(gw.path("sim.log"))) {
    if (line.rfind("ferry-sim: produced=", 0) != 0) continue;
    for (const char* k : {"clock_1970", "clock_ahead", "clock_jump"}) {
      auto at = line.find(std::string(k) + "=");
      if (at != std::string::npos) sent[k] = std::atof(line.c_str() + at + std::strlen(k) + 1);
    }
  }
  ASSERT_EQ(sent.size(), 3u) << gw.SimTail();
  EXPECT_GT(sent["clock_1970"], 0);
  EXPECT_GT(sent["clock_ahead"], 0);
  EXPECT_GT(sent["clock_jump"], 0) << "the jumping device never jumped";
  ASSERT_TRUE(poll_until([&] { return gw.Stored() >= kEvents; }, 60s)) << gw.Stored();
  EXPECT_EQ(gw.Metric("ferry_ingest_time_replaced_total{stream=\"telemetry\",reason=\"before_floor\"}"),
            sent["clock_1970"]);
  EXPECT_EQ(gw.Metric("ferry_ingest_time_replaced_total{stream=\"telemetry\",reason=\"future\"}"),
            sent["clock_ahead"] + sent["clock_jump"]);
  EXPECT_LT(gw.Metric("ferry_ingest_time_replaced_total{stream=\"telemetry\",reason=\"unreadable\"}"), 1)
      << "0, or absent (-1)";
  // The last windows close when their keys go idle (3 s of gateway time): then every event is in one result.
  auto all_counted = [&] {
    results = ReadStream(gw.path("log"), "summaries");
    uint64_t n = 0;
    for (const auto& r : results) n += ResultCount(r.payload);
    return n >= kEvents;
  };
  EXPECT_TRUE(poll_until(all_counted, 60s, 100ms)) << results.size() << " results";
  EXPECT_EQ(gw.Metric("ferry_pipeline_window_late_total{pipeline=\"per2s\"}"), 0);
  EXPECT_EQ(gw.Metric("ferry_pipeline_events_in_total{pipeline=\"per2s\"}"), kEvents);
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();

  // The log: each fault flagged as declared, on its own device's events only.
  const auto telemetry = ReadStream(gw.path("log"), "telemetry");
  ASSERT_EQ(telemetry.size(), kEvents);
  std::map<std::string, std::map<std::string, uint64_t>> flagged;  // device -> reason -> events
  bool jumped = false, jump_back = false;
  for (const auto& e : telemetry) {
    ++flagged[e.subject][e.replaced];
    if (!e.replaced.empty()) {  // the time ferryd received it, shortly before the commit stamped the ingest time
      EXPECT_GE(e.ingest_time.ns, e.time.ns) << e.seq.value;
      EXPECT_LT(e.ingest_time.ns - e.time.ns, int64_t{60'000'000'000}) << e.seq.value;
    }
    if (e.subject == "dev-0005") {  // right until the jump, then ahead for good
      jump_back |= jumped && e.replaced.empty();
      jumped |= !e.replaced.empty();
    }
  }
  EXPECT_FALSE(jump_back) << "the jumping device's clock came back";
  EXPECT_EQ(flagged["dev-0001"]["before_floor"], sent["clock_1970"]);
  EXPECT_EQ(flagged["dev-0001"][""], 0u);
  EXPECT_EQ(flagged["dev-0004"]["future"], sent["clock_ahead"]);
  EXPECT_EQ(flagged["dev-0004"][""], 0u);
  EXPECT_EQ(flagged["dev-0005"]["future"], sent["clock_jump"]);
  EXPECT_GT(flagged["dev-0005"][""], 0u) << "the jumping device was wrong from its first event";
  for (const auto& d : healthy) {
    EXPECT_GT(flagged[d][""], 0u) << d;
    EXPECT_EQ(flagged[d].size(), 1u) << d << ": a healthy device's time was replaced";
  }

  // Window results: on plausible times only, and a healthy device's window closed within seconds of its end
  // (result time = window end), while bad clocks were sending: by watermark, at the device's next event after
  // end + lateness; by the idle timeout (sparse door sensors, the last windows) at most 3 s after its last event.
  std::map<std::string, uint64_t> counted;
  for (const auto& r : results) {
    counted[r.subject] += ResultCount(r.payload);
    EXPECT_LT(std::llabs(r.ingest_time.ns - r.time.ns), int64_t{60'000'000'000}) << r.subject << " " << r.payload;
    if (faulty.count(r.subject)) continue;
    EXPECT_LE(r.ingest_time.ns - r.time.ns, kLateness + kIdle + int64_t{3'000'000'000})
        << r.subject << " closed late: " << r.payload;
  }
  for (const auto& [device, reasons] : flagged) {
    uint64_t n = 0;
    for (const auto& [reason, count] : reasons) n += count;
    EXPECT_EQ(counted[device], n) << device << ": events and the counts of its window results differ";
  }
  std::printf("[ clock faults ] sent wrong: 1970 %.0f, a day ahead %.0f, after a jump %.0f; all counted and flagged; "
              "%zu window results, none late\n",
              sent["clock_1970"], sent["clock_ahead"], sent["clock_jump"], results.size());
}

}  // namespace
}  // namespace ferry::test
