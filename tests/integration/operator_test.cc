// End-to-end tests of what a new operator runs into (issue 13): `ferryd --check-config` on paths it cannot
// use, connection failures in words, a misspelt id field, the commit histogram, and ferry-receive as a
// scripted check. Real Mosquitto brokers on free 127.0.0.1 ports, ferryd and ferry-receive as processes;
// waits poll with deadlines.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "harness.h"
#include "../support/test_pki.h"

namespace ferry::test {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> Ferryd(std::initializer_list<std::string> args) {
  return ToolCommand(FERRY_FERRYD_PATH, "FERRY_TEST_FERRYD", args);
}

// ferry-receive is built beside ferryd: <build>/hub/ferryd -> <build>/central/ferry-receive.
std::string FerryReceivePath() {
  std::string ferryd = FERRY_FERRYD_PATH;
  std::string build = ferryd.substr(0, ferryd.rfind('/'));
  build = build.substr(0, build.rfind('/'));
  return build + "/central/ferry-receive";
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A ferryd of its own: subscribe mode against `ingest_address`, no uplink unless given, metrics on a free port.
class Ferry {
 public:
  explicit Ferry(std::string ingest_keys, std::string extra = "") : dir_("ferry-op") {
    metrics_port_ = free_tcp_port();
    config_ = "[gateway]\nid = \"gw-op\"\n[storage]\npath = \"" + dir_.path() +
              "/log\"\nmap_size = \"64MiB\"\n[ingest]\nclient_id = \"ferryd-op\"\nbackoff.min = \"100ms\"\n"
              "backoff.max = \"300ms\"\n" +
              ingest_keys + "\n[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port_) +
              "\"\n[[stream]]\nname = \"telemetry\"\n[[route]]\nfilter = \"telemetry/{device}/#\"\n"
              "stream = \"telemetry\"\nsubject = \"{device}\"\ncontent_type = \"application/json\"\n" +
              extra;
  }
  bool Start() {
    WriteFile(dir_.path() + "/ferry.toml", config_);
    return proc_.Start(Ferryd({"-c", dir_.path() + "/ferry.toml"}), log_path());
  }
  std::string log_path() const { return dir_.path() + "/ferryd.log"; }
  std::string Log() const { return ReadAll(log_path()); }
  bool WaitForLog(const std::string& text, std::chrono::milliseconds timeout) {
    return poll_until([&] { return Log().find(text) != std::string::npos || !proc_.running(); }, timeout) &&
           Log().find(text) != std::string::npos;
  }
  std::string Metrics() const { return HttpGet(metrics_port_, "/metrics"); }
  double Metric(const std::string& sample) const { return MetricValue(Metrics(), sample); }
  ChildProcess& proc() { return proc_; }
  const std::string& dir() const { return dir_.path(); }

 private:
  TempDir dir_;
  int metrics_port_ = 0;
  std::string config_;
  ChildProcess proc_;
};

// Publishes `n` JSON events at QoS 1 to the broker on `port` with mosquitto_pub (one line, one message).
bool PublishJson(const std::string& dir, int port, int n, const std::string& id_member, const std::string& prefix) {
  std::string lines;
  for (int i = 0; i < n; ++i)
    lines += "{\"" + id_member + "\":\"" + prefix + "-" + std::to_string(i) + "\",\"t\":" + std::to_string(i) + "}\n";
  WriteFile(dir + "/events.jsonl", lines);
  std::string cmd = "mosquitto_pub -h 127.0.0.1 -p " + std::to_string(port) +
                    " -V mqttv5 -q 1 -t telemetry/dev-1/x -l < " + dir + "/events.jsonl";
  return std::system(cmd.c_str()) == 0;
}

// ---- Item 2: --check-config looks at the machine ----

TEST(Operator, CheckConfigRefusesAStoragePathItCannotCreate) {
  TempDir dir("ferry-op-check");
  const std::string path = dir.Sub("ferry.toml");
  struct Case {
    std::string text;
    int exit_code;
    std::vector<std::string> says;
  } cases[] = {
      // The case: ok, and then the start failed with "mkdir ...: No such file or directory".
      {"[storage]\npath = \"" + dir.Sub("missing/deeper/log") + "\"\n[[stream]]\nname = \"t\"\n[[route]]\n"
       "filter = \"t/#\"\nstream = \"t\"\n",
       1,
       {"error: storage.path: " + dir.Sub("missing/deeper/log") + " does not exist, nor does " +
            dir.Sub("missing/deeper"),
        "the nearest existing parent is " + dir.path()}},
      // An empty file said "ok (0 routes, 0 streams, 0 uplinks)".
      {"", 1, {"error: stream: no [[stream]] is declared", "error: route: no [[route]] is declared"}},
      // A good one: ok, with the notes and warnings on stdout.
      {"[storage]\npath = \"" + dir.Sub("log") + "\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n[[stream]]\nname = \"t\"\n"
       "[[route]]\nfilter = \"t/{kind}/#\"\nstream = \"{kind}\"\n",
       0,
       {"note: storage.path: " + dir.Sub("log") + " does not exist; ferryd will create it in " + dir.path(),
        "note: route[0].stream: \"{kind}\" is a template", "warning: uplink: no [[uplink]] is declared",
        ": ok (1 routes, 1 streams, 0 uplinks)"}},
  };
  for (const auto& c : cases) {
    WriteFile(path, c.text);
    ChildProcess p;
    ASSERT_TRUE(p.Start(Ferryd({"--check-config", path}), dir.Sub("out.log")));
    int status = p.Wait(20s);
    ASSERT_NE(status, -1) << c.text;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == c.exit_code) << c.text << "\n" << p.log();
    for (const auto& s : c.says) EXPECT_NE(p.log().find(s), std::string::npos) << "no \"" << s << "\" in\n" << p.log();
    std::remove(dir.Sub("out.log").c_str());
  }
  // Nothing was created by the checks.
  struct stat st {};
  EXPECT_NE(::stat(dir.Sub("missing").c_str(), &st), 0);
  EXPECT_NE(::stat(dir.Sub("log").c_str(), &st), 0);
}

// ---- Item 6: connection failures in words ----

TEST(Operator, IngestConnectFailuresSayRefusedDnsAuthOrTls) {
  TempDir pki("ferry-op-pki");
  ASSERT_TRUE(MakeTestPki(pki.path())) << ReadAll(pki.Sub("pki.log"));
  // Auth: a broker with a password file; TLS: its second listener, whose certificate another CA signed.
  MosquittoBroker::Options bo;
  bo.tls = {pki.Sub("ca.pem"), pki.Sub("server.pem"), pki.Sub("server.key"), false};
  TempDir pw("ferry-op-pw");
  ::chmod(pw.path().c_str(), 0755);
  ASSERT_EQ(std::system(("mosquitto_passwd -b -c " + pw.Sub("passwd") + " dev right-password").c_str()), 0);
  ::chmod(pw.Sub("passwd").c_str(), 0644);
  bo.extra_config = "allow_anonymous false\npassword_file " + pw.Sub("passwd") + "\n";
  MosquittoBroker broker(bo);
  ASSERT_TRUE(broker.start()) << broker.log();
  const int closed = free_tcp_port();

  struct Case {
    std::string keys;
    std::string says;
  } cases[] = {
      {"address = \"tcp://127.0.0.1:" + std::to_string(closed) + "\"",
       "connect failed: refused: nothing listens on 127.0.0.1:" + std::to_string(closed)},
      {"address = \"tcp://no-such-host.invalid:1883\"",
       "connect failed: DNS: host name \"no-such-host.invalid\" does not resolve"},
      {"address = \"" + broker.uri() + "\"\nusername = \"dev\"\npassword = \"wrong\"",
       "connect failed: auth: the broker refused the login"},
      {"address = \"" + broker.tls_uri() + "\"\ntls.enabled = true\ntls.ca_file = \"" + pki.Sub("other-ca.pem") + "\"",
       "connect failed: TLS: the TCP connection opens, so the TLS handshake failed"},
  };
  for (const auto& c : cases) {
    Ferry f(c.keys);
    ASSERT_TRUE(f.Start());
    EXPECT_TRUE(f.WaitForLog(c.says, 30s)) << c.keys << "\n" << f.Log();
    EXPECT_EQ(f.Log().find("(return code -1)"), std::string::npos) << f.Log();  // the old words
    f.proc().Terminate();
  }
}

// ---- Items 3 and 5: a misspelt id field is counted and logged once; one commit observation per commit ----

TEST(Operator, MissingIdIsCountedAndCommitHistogramCountsCommits) {
  MosquittoBroker local;
  ASSERT_TRUE(local.start()) << local.log();
  // The payloads carry "id"; the route (last in the config, so the extra key is its) asks for "eid".
  Ferry g("address = \"" + local.uri() + "\"", "id_json_field = \"eid\"\n");
  ASSERT_TRUE(g.Start());
  ASSERT_TRUE(poll_until([&] { return g.Metric("ferry_ingest_link_up") == 1 || !g.proc().running(); }, 30s))
      << g.Log();
  constexpr int kEvents = 3000;
  ASSERT_TRUE(PublishJson(g.dir(), local.port(), kEvents, "id", "ev"));
  ASSERT_TRUE(poll_until(
      [&] { return g.Metric("ferry_stream_stored_total{stream=\"telemetry\"}") == kEvents; }, 30s))
      << g.Metrics() << g.Log();
  // Item 3: every event counted, one log line for the route.
  EXPECT_EQ(g.Metric("ferry_ingest_missing_id_total{stream=\"telemetry\"}"), kEvents) << g.Metrics();
  EXPECT_EQ(Count(g.Log(), "has no JSON member \"eid\""), 1u) << g.Log();
  EXPECT_NE(g.Log().find("route[0] (filter \"telemetry/{device}/#\")"), std::string::npos) << g.Log();
  // Item 5: one observation per group commit, not per event.
  std::string m = g.Metrics();
  double commits = MetricValue(m, "ferry_storage_commits_total");
  double observed = MetricValue(m, "ferry_storage_commit_seconds_count");
  EXPECT_GT(commits, 0) << m;
  EXPECT_LT(commits, kEvents) << "events were not grouped into commits\n" << m;
  EXPECT_EQ(observed, commits) << m;
  // Item 11: counts print as integers.
  EXPECT_EQ(m.find("e+"), std::string::npos) << m;
  g.proc().Terminate();
}

// ---- Item 9: ferry-receive as a scripted check ----

class Receive {
 public:
  Receive(const std::string& dir, const std::string& name, std::vector<std::string> args)
      : status_(dir + "/" + name + ".json"), log_(dir + "/" + name + ".log") {
    std::vector<std::string> argv = {FerryReceivePath(), "--client-id", "rx-" + name, "--status-file", status_};
    argv.insert(argv.end(), args.begin(), args.end());
    started_ = proc_.Start(argv, log_);
  }
  bool WaitConnected() {
    return started_ && poll_until([&] { return ReadAll(status_).find("\"connected\":true") != std::string::npos ||
                                               !proc_.running(); },
                                  15s) &&
           proc_.running();
  }
  // The exit code, or -1 if it did not exit in time.
  int Exit(std::chrono::milliseconds timeout) {
    int st = proc_.Wait(timeout);
    return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
  }
  std::string Log() const { return ReadAll(log_); }

 private:
  std::string status_, log_;
  ChildProcess proc_;
  bool started_ = false;
};

// Publishes per-event CloudEvents messages as an uplink does (docs/wire.md).
bool PublishEvents(const std::string& uri, const std::vector<std::string>& ids) {
  mqtt::async_client c(uri, "op-uplink", mqtt::create_options(MQTTVERSION_5));
  try {
    c.connect(mqtt::connect_options_builder().mqtt_version(MQTTVERSION_5).finalize())->wait_for(5s);
    uint64_t seq = 0;
    for (const auto& id : ids) {
      WireEvent e;
      e.id = id;
      e.source = "gw-op/telemetry";
      e.type = "ferry.mqtt";
      e.seq = Seq{++seq};
      e.payload = "{}";
      MqttEventProperties p = ToMqttProperties(e);
      auto msg = mqtt::make_message("ferry/gw-op/telemetry", e.payload, 1, false);
      mqtt::properties props;
      for (const auto& [k, v] : p.user_properties) props.add({mqtt::property::USER_PROPERTY, k, v});
      if (!p.content_type.empty()) props.add({mqtt::property::CONTENT_TYPE, p.content_type});
      msg->set_properties(props);
      c.publish(msg)->wait_for(5s);
    }
    c.disconnect()->wait_for(5s);
  } catch (const mqtt::exception& e) {
    ADD_FAILURE() << "publish: " << e.what();
    return false;
  }
  return true;
}

TEST(Operator, FerryReceiveStopsOnExpectQuietAndMissingIds) {
  MosquittoBroker central;
  ASSERT_TRUE(central.start()) << central.log();
  TempDir dir("ferry-op-rx");
  const std::vector<std::string> ids = {"gw/1", "gw/2", "gw/3", "gw/4", "gw/5"};

  // --expect N: exits 0 as soon as N unique ids are in, long before --max-seconds.
  Receive expect(dir.path(), "expect", {"-a", central.uri(), "--expect", "5", "--max-seconds", "60"});
  ASSERT_TRUE(expect.WaitConnected()) << expect.Log();
  // --expect-ids with an id that never comes, and a quiet period to end the wait: exit 3 naming it.
  WriteFile(dir.Sub("want.txt"), "gw/1\ngw/5\ngw/never-sent\n");
  Receive missing(dir.path(), "missing",
                  {"-a", central.uri(), "--expect-ids", dir.Sub("want.txt"), "--quiet-for", "1500ms"});
  ASSERT_TRUE(missing.WaitConnected()) << missing.Log();
  // --expect-ids all present: exits 0 once they are in.
  WriteFile(dir.Sub("have.txt"), "gw/2\ngw/4\n");
  Receive have(dir.path(), "have", {"-a", central.uri(), "--expect-ids", dir.Sub("have.txt"), "--max-seconds", "60"});
  ASSERT_TRUE(have.WaitConnected()) << have.Log();
  // --expect more than will come, ended by the quiet period: exit 2.
  Receive short_of(dir.path(), "short", {"-a", central.uri(), "--expect", "9", "--quiet-for", "1s"});
  ASSERT_TRUE(short_of.WaitConnected()) << short_of.Log();

  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(PublishEvents(central.uri(), ids));
  EXPECT_EQ(expect.Exit(20s), 0) << expect.Log();
  EXPECT_EQ(have.Exit(20s), 0) << have.Log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 20s);
  EXPECT_EQ(missing.Exit(20s), 3) << missing.Log();
  EXPECT_NE(missing.Log().find("1 of 3 expected event ids missing:\n  gw/never-sent\n"), std::string::npos)
      << missing.Log();
  EXPECT_EQ(short_of.Exit(20s), 2) << short_of.Log();
  EXPECT_NE(short_of.Log().find("5 unique event ids of the 9 expected"), std::string::npos) << short_of.Log();
}

}  // namespace
}  // namespace ferry::test
