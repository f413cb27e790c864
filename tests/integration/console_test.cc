// End-to-end tests of the web console (issue 14): a real ferryd subscribed to a real Mosquitto on 127.0.0.1,
// its console on a free port. The overview lists the streams with their counts, a live tail (Server-Sent
// Events) receives an event published after it opened, the SQL endpoint answers, and the token rules hold
// (401 without or with a wrong token; no token off loopback: ferryd refuses to start). Waits poll with
// deadlines; nothing sleeps for a fixed time.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/wait.h>

#include <chrono>
#include <string>

#include "harness.h"
#include "../support/console_http.h"
#include "../support/test_pki.h"

namespace ferry::test {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> Ferryd(std::initializer_list<std::string> args) {
  return ToolCommand(FERRY_FERRYD_PATH, "FERRY_TEST_FERRYD", args);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Publish(int port, const std::string& device, const std::string& payload) {
  std::string cmd = "mosquitto_pub -h 127.0.0.1 -p " + std::to_string(port) + " -V mqttv5 -q 1 -t telemetry/" +
                    device + "/x -m '" + payload + "'";
  return std::system(cmd.c_str()) == 0;
}

class ConsoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(broker_.start()) << broker_.log();
    console_port_ = free_tcp_port();
    WriteFile(dir_.Sub("token"), token_ + "\n");
  }
  // ferryd subscribed to the broker, with the console on `listen` and `console_keys`.
  std::string Config(const std::string& console_keys) {
    return "[gateway]\nid = \"gw-console\"\n[storage]\npath = \"" + dir_.Sub("log") +
           "\"\nmap_size = \"64MiB\"\n[ingest]\naddress = \"" + broker_.uri() +
           "\"\nclient_id = \"ferryd-console\"\nbackoff.min = \"100ms\"\nbackoff.max = \"300ms\"\n"
           "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port_) + "\"\n[console]\n" + console_keys +
           "\n[[stream]]\nname = \"telemetry\"\n[[stream]]\nname = \"dead\"\n[[route]]\nfilter = \"telemetry/{device}/#\"\n"
           "stream = \"telemetry\"\nsubject = \"{device}\"\ncontent_type = \"application/json\"\ndead_letter = \"dead\"\n";
  }
  bool StartFerryd(const std::string& console_keys, const std::string& more = "") {
    WriteFile(dir_.Sub("ferry.toml"), Config(console_keys) + more);
    return ferryd_.Start(Ferryd({"-c", dir_.Sub("ferry.toml")}), dir_.Sub("ferryd.log"));
  }
  std::string Log() { return ReadFile(dir_.Sub("ferryd.log")); }
  // Until ferryd's ingest has subscribed (the broker drops what nobody has subscribed to yet), or ferryd ended.
  bool WaitForIngest() {
    return poll_until([&] {
      return MetricValue(HttpGet(metrics_port_, "/metrics"), "ferry_ingest_link_up") == 1 || !ferryd_.running();
    }, 60s) && ferryd_.running();
  }
  std::string Get(const std::string& path, const std::string& token) { return Http(console_port_, "GET", path, token); }

  MosquittoBroker broker_;
  TempDir dir_{"ferry-console"};
  ChildProcess ferryd_;
  int console_port_ = 0;
  int metrics_port_ = free_tcp_port();
  const std::string token_ = "s3cret-console-token";
};

TEST_F(ConsoleTest, OverviewTailSqlAndTheToken) {
  ASSERT_TRUE(StartFerryd("enabled = true\nlisten = \"127.0.0.1:" + std::to_string(console_port_) +
                          "\"\ntoken_file = \"" + dir_.Sub("token") + "\""));
  ASSERT_TRUE(poll_until([&] { return HttpStatus(Get("/", "")) == 200 || !ferryd_.running(); }, 20s)) << Log();
  EXPECT_NE(Get("/", "").find("ferry console"), std::string::npos);  // the page needs no token: it holds no data

  // 401 without a token and with a wrong one, on every /api/ route.
  for (const char* path : {"/api/overview", "/api/tail?stream=telemetry", "/api/deadletters"}) {
    std::string none = Get(path, "");
    EXPECT_EQ(HttpStatus(none), 401) << path << "\n" << none;
    EXPECT_NE(none.find("WWW-Authenticate: Bearer"), std::string::npos) << none;
    EXPECT_EQ(HttpStatus(Get(path, "s3cret-console-tokeN")), 401) << path;
    EXPECT_EQ(HttpStatus(Get(path, "s3cret")), 401) << path;
  }
  EXPECT_EQ(HttpStatus(Http(console_port_, "POST", "/api/sql", "", "SELECT 1")), 401);

  // The overview lists the stream with its count once the events are stored. Publish only once ferryd's ingest
  // has subscribed: the broker drops what nobody has subscribed to yet.
  ASSERT_TRUE(WaitForIngest()) << Log();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Publish(broker_.port(), "dev-" + std::to_string(i), "{\"temp\":" + std::to_string(20 + i) + "}"));
  std::string overview;
  EXPECT_TRUE(poll_until([&] {
    overview = Get("/api/overview", token_);
    return overview.find("\"name\":\"telemetry\",\"kind\":\"log\",\"count\":5,") != std::string::npos;
  }, 20s)) << overview << "\n" << Log();
  EXPECT_EQ(HttpStatus(overview), 200);
  EXPECT_NE(overview.find("\"gateway\":\"gw-console\""), std::string::npos);
  EXPECT_NE(overview.find("\"newest_ingest_time\":\"20"), std::string::npos) << overview;

  // The live tail: opened with n=0 (nothing old), it receives an event published after it opened.
  int fd = Connect(console_port_);
  ASSERT_GE(fd, 0);
  std::string req = "GET /api/tail?stream=telemetry&n=0&filter=dev-late HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                    token_ + "\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  std::string sse;
  auto read_until = [&](const std::string& what, std::chrono::milliseconds timeout) {
    return poll_until([&] {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 10) > 0) {
        char buf[8192];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n > 0) sse.append(buf, static_cast<size_t>(n));
      }
      return sse.find(what) != std::string::npos;
    }, timeout);
  };
  ASSERT_TRUE(read_until(": tail of telemetry", 5s)) << sse;
  EXPECT_NE(sse.find("Content-Type: text/event-stream"), std::string::npos) << sse;
  ASSERT_TRUE(Publish(broker_.port(), "dev-other", "{\"temp\":1}"));  // filtered out
  ASSERT_TRUE(Publish(broker_.port(), "dev-late", "{\"temp\":99.5}"));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(read_until("99.5", 2s)) << sse;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_NE(sse.find("event: record\n"), std::string::npos) << sse;
  EXPECT_NE(sse.find("\"subject\":\"dev-late\""), std::string::npos) << sse;
  EXPECT_EQ(sse.find("dev-other"), std::string::npos) << sse;
  ::close(fd);

  // SQL: the same engine as ferryctl sql.
  std::string sql = Http(console_port_, "POST", "/api/sql", token_,
                         "SELECT subject, json_extract(payload, '$.temp') AS temp FROM telemetry "
                         "WHERE subject LIKE 'dev-_' ORDER BY temp DESC LIMIT 2");
  EXPECT_EQ(HttpStatus(sql), 200) << sql;
  EXPECT_NE(sql.find("\"rows\":[{\"subject\":\"dev-4\",\"temp\":24},{\"subject\":\"dev-3\",\"temp\":23}]"),
            std::string::npos) << sql;
  std::string count = Http(console_port_, "POST", "/api/sql", token_, "SELECT count(*) AS n FROM telemetry");
  EXPECT_NE(count.find("\"rows\":[{\"n\":7}]"), std::string::npos) << count;
  std::string bad = Http(console_port_, "POST", "/api/sql", token_, "SELEC nothing");
  EXPECT_EQ(HttpStatus(bad), 400) << bad;
  std::string write = Http(console_port_, "POST", "/api/sql", token_, "DELETE FROM telemetry");
  EXPECT_EQ(HttpStatus(write), 400) << write;  // the tables are read-only

  // Dead letters: the reason headers and the original bytes.
  EXPECT_NE(Get("/api/deadletters", token_).find("{\"streams\":[\"dead\"]}"), std::string::npos);
  ASSERT_TRUE(Publish(broker_.port(), "dev-1", "{\"temp\": 80,"));  // malformed JSON
  std::string dead;
  EXPECT_TRUE(poll_until([&] {
    dead = Get("/api/deadletters?stream=dead", token_);
    return dead.find("\"payload_base64\":\"eyJ0ZW1wIjogODAs\"") != std::string::npos;
  }, 10s)) << dead;
  EXPECT_NE(dead.find("\"ferry_dlq_reason\":\"bad_content\""), std::string::npos) << dead;
  EXPECT_NE(dead.find("\"ferry_dlq_topic\":\"telemetry/dev-1/x\""), std::string::npos) << dead;

  // /metrics and /healthz are served beside the console, on their own port.
  EXPECT_NE(HttpGet(metrics_port_, "/healthz").find("ingest up"), std::string::npos);
  EXPECT_NE(HttpGet(metrics_port_, "/metrics").find("ferry_build_info"), std::string::npos);
  EXPECT_EQ(ferryd_.Terminate(), 0) << Log();
}

TEST_F(ConsoleTest, NonLoopbackWithoutATokenRefusesToStart) {
  ASSERT_TRUE(StartFerryd("enabled = true\nlisten = \"0.0.0.0:" + std::to_string(console_port_) + "\""));
  int status = ferryd_.Wait(20s);
  EXPECT_NE(status, -1) << "ferryd kept running";
  EXPECT_NE(status, 0);
  EXPECT_NE(Log().find("console.token_file"), std::string::npos) << Log();
  EXPECT_NE(Log().find("not a loopback address"), std::string::npos) << Log();
  EXPECT_FALSE(tcp_port_accepts(console_port_));
}

TEST_F(ConsoleTest, OffByDefault) {
  ASSERT_TRUE(StartFerryd(""));
  ASSERT_TRUE(poll_until([&] { return Log().find("ferryd ") != std::string::npos || !ferryd_.running(); }, 20s));
  EXPECT_TRUE(ferryd_.running()) << Log();
  EXPECT_EQ(Log().find("console on"), std::string::npos) << Log();
  EXPECT_EQ(ferryd_.Terminate(), 0) << Log();
}

// The chart library is embedded (gateways are offline): served, whole, without the token (it holds no data).
TEST_F(ConsoleTest, ServesTheVendoredChartLibrary) {
  ASSERT_TRUE(StartFerryd("enabled = true\nlisten = \"127.0.0.1:" + std::to_string(console_port_) +
                          "\"\ntoken_file = \"" + dir_.Sub("token") + "\""));
  ASSERT_TRUE(poll_until([&] { return HttpStatus(Get("/", "")) == 200 || !ferryd_.running(); }, 20s)) << Log();
  std::string js = Get("/assets/uPlot.iife.min.js", "");
  EXPECT_EQ(HttpStatus(js), 200);
  EXPECT_NE(js.find("Content-Type: text/javascript"), std::string::npos);
  // hub/console/vendor/uplot/VENDORED.md: uPlot 1.6.32, uPlot.iife.min.js is 51,081 bytes.
  EXPECT_NE(js.find("Content-Length: 51081"), std::string::npos) << js.substr(0, 300);
  EXPECT_NE(js.find("var uPlot=function()"), std::string::npos);
  std::string css = Get("/assets/uPlot.min.css", "");
  EXPECT_EQ(HttpStatus(css), 200);
  EXPECT_NE(css.find(".uplot"), std::string::npos);
  // The page loads both from ferryd, nothing from elsewhere.
  std::string page = Get("/", "");
  EXPECT_NE(page.find("src=\"/assets/uPlot.iife.min.js\""), std::string::npos);
  EXPECT_EQ(page.find("https://"), std::string::npos);
  EXPECT_EQ(ferryd_.Terminate(), 0) << Log();
}

// Issue 14, acceptance 4: libmicrohttpd (and GnuTLS, which it needs) are loaded only when the console is on,
// so a ferryd with the console off, metrics on or off, maps what it mapped before the console existed.
TEST_F(ConsoleTest, WithoutHttpNoHttpLibraryIsLoaded) {
  auto maps = [&] { return ReadFile("/proc/" + std::to_string(ferryd_.pid()) + "/maps"); };
  std::string config = Config("");
  config.replace(config.find("[metrics]\n"), 10, "[metrics]\nenabled = false\n");
  WriteFile(dir_.Sub("ferry.toml"), config);
  ASSERT_TRUE(ferryd_.Start(Ferryd({"-c", dir_.Sub("ferry.toml")}), dir_.Sub("ferryd.log")));
  ASSERT_TRUE(poll_until([&] { return Log().find("ferryd ") != std::string::npos || !ferryd_.running(); }, 20s));
  ASSERT_TRUE(ferryd_.running()) << Log();
  std::string m = maps();
  EXPECT_EQ(m.find("libmicrohttpd"), std::string::npos) << m;
  EXPECT_EQ(m.find("libgnutls"), std::string::npos) << m;
  EXPECT_EQ(ferryd_.Terminate(), 0) << Log();

  // Metrics on (the default), console off: the plain responder answers /metrics and /healthz, still without
  // the library (issue 14, acceptance 4).
  ASSERT_TRUE(StartFerryd(""));
  ASSERT_TRUE(poll_until([&] { return !HttpGet(metrics_port_, "/healthz").empty() || !ferryd_.running(); }, 20s))
      << Log();  // HttpGet: the body, "" without a reply
  ASSERT_TRUE(WaitForIngest()) << Log();
  EXPECT_NE(HttpGet(metrics_port_, "/metrics").find("ferry_ingest_link_up 1"), std::string::npos);
  EXPECT_EQ(maps().find("libmicrohttpd"), std::string::npos) << maps();
  EXPECT_EQ(maps().find("libgnutls"), std::string::npos);
  EXPECT_EQ(ferryd_.Terminate(), 0) << Log();

  // Console on: libmicrohttpd is loaded, and serves /metrics too.
  ASSERT_TRUE(StartFerryd("enabled = true\nlisten = \"127.0.0.1:" + std::to_string(free_tcp_port()) + "\""));
  ASSERT_TRUE(WaitForIngest()) << Log();
  EXPECT_NE(maps().find("libmicrohttpd"), std::string::npos);
  EXPECT_EQ(ferryd_.Terminate(), 0) << Log();
}

// The console over TLS (mbedTLS, console.tls_*): curl with the test CA gets the overview and a live tail's
// records through the terminator; plain HTTP to the TLS port gets no HTTP reply; curl without the CA refuses
// the certificate; a key file that is not a key stops ferryd naming console.tls and the file.
TEST_F(ConsoleTest, TlsWithMbedTls) {
  TempDir pki("ferry-console-pki");
  ASSERT_TRUE(MakeTestPki(pki.path())) << ReadFile(pki.Sub("pki.log"));
  const std::string keys = "enabled = true\nlisten = \"127.0.0.1:" + std::to_string(console_port_) +
                           "\"\ntoken_file = \"" + dir_.Sub("token") + "\"\ntls_cert_file = \"" +
                           pki.Sub("server.pem") + "\"\n";
  ASSERT_TRUE(StartFerryd(keys + "tls_key_file = \"" + pki.Sub("server.key") + "\""));
  const std::string base = "https://127.0.0.1:" + std::to_string(console_port_);
  auto curl = [&](const std::string& args) {
    std::string out = dir_.Sub("curl.out");
    int rc = std::system(("curl -s -o '" + out + "' -w '%{http_code}' " + args + " > '" + out + ".code'").c_str());
    return std::make_pair(WEXITSTATUS(rc), ReadFile(out + ".code") + "\n" + ReadFile(out));
  };
  const std::string auth = "-H 'Authorization: Bearer " + token_ + "' --cacert '" + pki.Sub("ca.pem") + "' ";
  ASSERT_TRUE(poll_until([&] { return curl(auth + base + "/").first == 0 || !ferryd_.running(); }, 20s)) << Log();
  EXPECT_NE(Log().find(", TLS"), std::string::npos) << Log();
  ASSERT_TRUE(WaitForIngest()) << Log();
  ASSERT_TRUE(Publish(broker_.port(), "dev-tls", "{\"temp\":42.5}"));
  std::pair<int, std::string> r;
  EXPECT_TRUE(poll_until([&] {
    r = curl(auth + base + "/api/overview");
    return r.second.find("\"count\":1") != std::string::npos;
  }, 10s)) << r.second;
  EXPECT_EQ(r.second.substr(0, 3), "200");
  // A live tail through the terminator: the stored event comes as an SSE record (curl stops after 3 s).
  r = curl(auth + "-N --max-time 3 '" + base + "/api/tail?stream=telemetry&n=5'");
  EXPECT_NE(r.second.find("event: record"), std::string::npos) << r.second;
  EXPECT_NE(r.second.find("42.5"), std::string::npos) << r.second;
  // Without the token, over TLS: 401 as over HTTP.
  r = curl("--cacert '" + pki.Sub("ca.pem") + "' " + base + "/api/overview");
  EXPECT_EQ(r.second.substr(0, 3), "401") << r.second;
  // Not the CA: curl refuses the certificate (exit 60). Plain HTTP to the TLS port: no HTTP reply.
  EXPECT_EQ(curl(base + "/").first, 60);
  EXPECT_NE(HttpStatus(Get("/", "")), 200);
  EXPECT_TRUE(ferryd_.running());
  EXPECT_EQ(ferryd_.Terminate(), 0) << Log();

  // A key file that holds no key: ferryd stops at start, naming console.tls and the file.
  ASSERT_TRUE(StartFerryd(keys + "tls_key_file = \"" + pki.Sub("ca.pem") + "\""));
  int status = ferryd_.Wait(20s);
  EXPECT_NE(status, -1) << "ferryd kept running";
  EXPECT_NE(status, 0);
  EXPECT_NE(Log().find("console.tls"), std::string::npos) << Log();
  EXPECT_NE(Log().find("ca.pem"), std::string::npos) << Log();
}

// Pipelines, when the config has them: per pipeline and input the lag, the output, what failed by step and, for a
// windowed one, its keys, state bytes and late events (as `ferryctl pipelines --json`).
TEST_F(ConsoleTest, OverviewShowsPipelines) {
  ASSERT_TRUE(StartFerryd("enabled = true\nlisten = \"127.0.0.1:" + std::to_string(console_port_) + "\"",
                          "[[stream]]\nname = \"hot\"\n[[stream]]\nname = \"sums\"\n"
                          "[[pipeline]]\nname = \"hot\"\ninput = [\"telemetry\"]\noutput = \"hot\"\n"
                          "dead_letter = \"dead\"\n[[pipeline.step]]\ntype = \"filter\"\nwhere = \"temp > 20\"\n"
                          "[[pipeline]]\nname = \"sums\"\ninput = [\"telemetry\"]\noutput = \"sums\"\n"
                          "[[pipeline.step]]\ntype = \"window\"\nwindow = \"tumbling\"\nkey = \"\"\nfield = \"temp\"\n"
                          "aggregates = [\"sum\"]\nsize = \"1h\"\n"));
  ASSERT_TRUE(WaitForIngest()) << Log();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Publish(broker_.port(), "dev-" + std::to_string(i), "{\"temp\":" + std::to_string(19 + i) + "}"));
  std::string overview;
  EXPECT_TRUE(poll_until([&] {
    overview = Get("/api/overview", "");
    return overview.find("{\"pipeline\":\"hot\",\"input\":\"telemetry\",\"cursor\":4,\"lag\":0,\"output\":\"hot\","
                         "\"failed\":{}}") != std::string::npos &&
           overview.find("\"pipeline\":\"sums\",\"input\":\"telemetry\",\"cursor\":4,\"lag\":0,") != std::string::npos &&
           overview.find("\"window\":{\"keys\":3,") != std::string::npos;
  }, 20s)) << overview << "\n" << Log();
  EXPECT_EQ(HttpStatus(overview), 200);
  EXPECT_NE(Get("/", "").find("<h2>Pipelines</h2>"), std::string::npos);
  EXPECT_EQ(ferryd_.Terminate(), 0) << Log();
}

// console.tls_ca_file: a client certificate signed by one of those CAs is required, before any HTTP. One signed
// by another CA, or none, ends the handshake; the bearer token is still asked for on top.
TEST_F(ConsoleTest, TlsCaFileRequiresAClientCertificate) {
  TempDir pki("ferry-console-pki");
  ASSERT_TRUE(MakeTestPki(pki.path(), "/CN=operator")) << ReadFile(pki.Sub("pki.log"));
  ASSERT_TRUE(StartFerryd("enabled = true\nlisten = \"127.0.0.1:" + std::to_string(console_port_) +
                          "\"\ntoken_file = \"" + dir_.Sub("token") + "\"\ntls_cert_file = \"" +
                          pki.Sub("server.pem") + "\"\ntls_key_file = \"" + pki.Sub("server.key") +
                          "\"\ntls_ca_file = \"" + pki.Sub("ca.pem") + "\""));
  const std::string url = "https://127.0.0.1:" + std::to_string(console_port_) + "/api/overview";
  auto curl = [&](const std::string& args) {
    std::string out = dir_.Sub("curl.out");
    int rc = std::system(("curl -s --max-time 10 --cacert '" + pki.Sub("ca.pem") + "' -o '" + out +
                          "' -w '%{http_code}' " + args + " '" + url + "' > '" + out + ".code'").c_str());
    return std::make_pair(WEXITSTATUS(rc), ReadFile(out + ".code") + "\n" + ReadFile(out));
  };
  const std::string auth = "-H 'Authorization: Bearer " + token_ + "' ";
  const std::string cert = "--cert '" + pki.Sub("client.pem") + "' --key '" + pki.Sub("client.key") + "' ";
  std::pair<int, std::string> r;
  ASSERT_TRUE(poll_until([&] {
    r = curl(cert + auth);
    return r.first == 0 || !ferryd_.running();
  }, 20s)) << r.second << Log();
  EXPECT_EQ(r.second.substr(0, 3), "200") << r.second;
  EXPECT_NE(r.second.find("\"gateway\":\"gw-console\""), std::string::npos) << r.second;
  // The certificate is not the token: without the token, 401.
  r = curl(cert);
  EXPECT_EQ(r.second.substr(0, 3), "401") << r.second;
  // No client certificate, or one from another CA: no HTTP reply at all (curl fails in or right after the
  // handshake; with TLS 1.2 the server's alert ends it).
  r = curl(auth);
  EXPECT_NE(r.first, 0) << r.second;
  EXPECT_EQ(r.second.substr(0, 3), "000") << r.second;
  r = curl(auth + "--cert '" + pki.Sub("rogue.pem") + "' --key '" + pki.Sub("rogue.key") + "' ");
  EXPECT_NE(r.first, 0) << r.second;
  EXPECT_EQ(r.second.substr(0, 3), "000") << r.second;
  EXPECT_TRUE(ferryd_.running());
  EXPECT_EQ(ferryd_.Terminate(), 0) << Log();
}

}  // namespace
}  // namespace ferry::test
