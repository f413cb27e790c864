#include "ferry/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <thread>

#include <gtest/gtest.h>

namespace ferry {
namespace {

using namespace std::chrono_literals;

// A raw TCP client. The server is stepped on the test thread; nothing sleeps.
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Client() { ::close(fd_); }
  bool connected() const { return connected_; }
  void Send(const std::string& s) { ASSERT_EQ(::send(fd_, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size())); }
  // Steps the server until the client sees EOF (the server closes after each response) or 5 s pass.
  // What has arrived, without waiting.
  std::string ReadSome() {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }
  std::string ReadAll(HttpServer& server, bool* eof = nullptr) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      server.Step(5ms);
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 5) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        if (eof) *eof = true;
        return out;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  int fd_;
  bool connected_ = false;
};

// Every test of the fixture runs on both paths: libmicrohttpd, and the plain responder (the metrics endpoint
// with the console off), which must give the same replies and keep the same limits.
class HttpServerTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    HttpServerOptions o;
    o.plain = GetParam();
    o.listen = "127.0.0.1:0";
    o.max_request_bytes = 512;
    o.request_timeout = 2s;
    o.max_connections = 4;
    server_ = std::make_unique<HttpServer>(o, clock_);
    server_->ServeMetrics([] { return std::string("ferry_up 1\n"); });
    server_->ServeHealth([this] { return HealthStatus{healthy_, healthy_ ? "" : "uplink central down"}; });
    ASSERT_TRUE(server_->Start());
    ASSERT_NE(server_->port(), 0);
  }
  std::string Get(const std::string& request) {
    Client c(server_->port());
    EXPECT_TRUE(c.connected());
    c.Send(request);
    return c.ReadAll(*server_);
  }
  ManualClock clock_;
  bool healthy_ = true;
  std::unique_ptr<HttpServer> server_;
};

TEST_P(HttpServerTest, Metrics) {
  std::string r = Get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos);
  EXPECT_NE(r.find("Content-Length: 11\r\n"), std::string::npos);
  EXPECT_EQ(r.substr(r.size() - 11), "ferry_up 1\n");
}

TEST_P(HttpServerTest, HealthzOkAndUnhealthy) {
  std::string ok = Get("GET /healthz HTTP/1.0\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK", 0), 0u);
  EXPECT_EQ(ok.substr(ok.size() - 3), "ok\n");
  healthy_ = false;
  std::string bad = Get("GET /healthz?verbose=1 HTTP/1.1\n\n");  // bare LF and a query string are accepted
  EXPECT_EQ(bad.rfind("HTTP/1.1 503 Service Unavailable", 0), 0u) << bad;
  EXPECT_NE(bad.find("uplink central down\n"), std::string::npos);
}

TEST_P(HttpServerTest, Errors) {
  EXPECT_EQ(Get("GET /nope HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  std::string post = Get("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(post.rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_NE(post.find("Allow: GET, HEAD\r\n"), std::string::npos);
  // libmicrohttpd closes, without a reply, a connection whose request line has no target at all; a request line
  // with a target but no valid version gets 400.
  std::string garbage = Get("garbage\r\n\r\n");
  EXPECT_TRUE(garbage.empty() || garbage.rfind("HTTP/1.1 400", 0) == 0) << garbage;
  EXPECT_EQ(Get("GET /metrics garbage\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(Get("GET /metrics HTTP/2.0\r\n\r\n").rfind("HTTP/1.1 505", 0), 0u);
  std::string head = Get("HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(head.find("ferry_up"), std::string::npos);
}

TEST_P(HttpServerTest, OversizedRequestGets431) {
  std::string r = Get("GET /metrics HTTP/1.1\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 431", 0), 0u) << r.substr(0, 40);
  // The server drains until the client (closed when Get returned) goes away.
  for (int i = 0; i < 100 && server_->open_connections() > 0; ++i) server_->Step(5ms);
  EXPECT_EQ(server_->open_connections(), 0u);
}

TEST_P(HttpServerTest, SlowClientIsDroppedAtItsDeadline) {
  Client c(server_->port());
  c.Send("GET /metrics HTTP/1.1\r\n");  // never finishes the request
  for (int i = 0; i < 20 && server_->open_connections() == 0; ++i) server_->Step(5ms);
  ASSERT_EQ(server_->open_connections(), 1u);
  server_->Step(0ms);
  EXPECT_EQ(server_->open_connections(), 1u);
  clock_.Advance(3s);  // past request_timeout on the injected clock
  server_->Step(0ms);
  EXPECT_EQ(server_->open_connections(), 0u);
  bool eof = false;
  EXPECT_EQ(c.ReadAll(*server_, &eof), "");
  EXPECT_TRUE(eof);
}

TEST_P(HttpServerTest, ConnectionLimit) {
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 6; ++i) idle.push_back(std::make_unique<Client>(server_->port()));
  for (int i = 0; i < 20; ++i) server_->Step(5ms);
  EXPECT_EQ(server_->open_connections(), 4u);
  idle.clear();
  for (int i = 0; i < 20 && server_->open_connections() > 0; ++i) server_->Step(5ms);
  EXPECT_EQ(server_->open_connections(), 0u);
  EXPECT_EQ(Get("GET /healthz HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200", 0), 0u);
}

TEST_P(HttpServerTest, StopWakesABlockedStep) {
  std::thread t([this] { server_->Run(); });
  server_->Stop();
  t.join();
  EXPECT_FALSE(server_->Step(0ms));
}

INSTANTIATE_TEST_SUITE_P(LibraryAndPlain, HttpServerTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "Plain" : "Libmicrohttpd"; });

// The plain responder's reading of a request head: what it serves, and the reply to each kind of bad head.
TEST(HttpServer, PlainHeadParsing) {
  HttpHead h = ParseHttpHead("GET /healthz?verbose=1&a=x%20y+z&b&=e&%zz=%4 HTTP/1.1\r\nHost: x\r\nX-Two:\t a b \r\n");
  EXPECT_EQ(h.status, 0);
  EXPECT_EQ(h.request.method, "GET");
  EXPECT_EQ(h.request.path, "/healthz");
  EXPECT_EQ(h.request.args, (std::map<std::string, std::string>{
                                {"verbose", "1"}, {"a", "x y z"}, {"b", ""}, {"", "e"}, {"%zz", "%4"}}));
  EXPECT_EQ(h.request.headers, (std::map<std::string, std::string>{{"host", "x"}, {"x-two", "a b"}}));
  EXPECT_EQ(ParseHttpHead("HEAD / HTTP/1.0").status, 0);
  EXPECT_EQ(ParseHttpHead("GET / HTTP/1.0\nA: b").request.headers.at("a"), "b");  // bare LF
  for (const char* bad : {"", "GET", "GET /", "GET  / HTTP/1.1", " GET / HTTP/1.1", "GET / HTTP/1.1 ", "GET x HTTP/1.1",
                          "GET / FTP/1.1", "G(T / HTTP/1.1", "GET /\x01 HTTP/1.1", "GET / HTTP/1.1\r\nNoColon",
                          "GET / HTTP/1.1\r\nA : b", "GET / HTTP/1.1\r\n folded: x", "GET / HTTP/1.1\r\n: x"}) {
    EXPECT_EQ(ParseHttpHead(bad).status, 400) << bad;
  }
  EXPECT_EQ(ParseHttpHead("GET / HTTP/2.0").status, 505);
  EXPECT_EQ(ParseHttpHead("POST /metrics HTTP/1.1\r\nContent-Length: 0").status, 405);
  EXPECT_EQ(ParseHttpHead("BREW /pot HTTP/1.1").status, 405);
  EXPECT_EQ(ParseHttpHead(std::string_view("GET /a\0b HTTP/1.1", 17)).status, 400);
  EXPECT_EQ(ParseHttpHead(std::string_view("GET / HTTP/1.1\r\nA\0b: c", 22)).status, 400);  // the fuzzer's find
  EXPECT_EQ(ParseHttpHead(std::string_view("G\0T / HTTP/1.1", 14)).status, 400);
}

// A plain responder on a free loopback port.
HttpServerOptions PlainOptions() {
  HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  o.plain = true;
  return o;
}

// The plain responder refuses what it cannot do, at Start().
TEST(HttpServer, PlainRefusesPostStreamsAndHandedConnections) {
  ManualClock clock;
  HttpServerOptions o = PlainOptions();
  {
    HttpServer s(o, clock);
    s.Route("/x", [](const HttpRequest&) { return HttpResponse{}; }, true);
    EXPECT_EQ(s.Start().error().code, ErrorCode::kInvalidArgument);
  }
  o.streams = true;
  EXPECT_EQ(HttpServer(o, clock).Start().error().code, ErrorCode::kInvalidArgument);
  o.streams = false;
  o.external_connections = true;
  EXPECT_EQ(HttpServer(o, clock).Start().error().code, ErrorCode::kInvalidArgument);
}

// Out of descriptors, the plain responder leaves its listening socket out of the poll for 100 ms (on the injected
// clock) instead of spinning on a failing accept(), then serves the waiting client.
TEST(HttpServer, PlainOutOfDescriptorsPausesAcceptThenServes) {
  ManualClock clock;
  HttpServer server(PlainOptions(), clock);
  server.ServeHealth([] { return HealthStatus{true, ""}; });
  ASSERT_TRUE(server.Start());
  // One Step with descriptors to spare first: UBSan checks the clock's dynamic type at its first call, and that
  // check opens a pipe; out of descriptors it would report a valid object as having an invalid vptr.
  server.Step(0ms);
  Client c(server.port());  // connected: the kernel completes it in the listen backlog
  ASSERT_TRUE(c.connected());
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  rlimit low = old;
  low.rlim_cur = 64;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> spent;
  for (int fd; (fd = ::dup(0)) >= 0;) spent.push_back(fd);
  server.Step(0ms);  // accept() fails with EMFILE: paused
  EXPECT_EQ(server.open_connections(), 0u);
  for (int fd : spent) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
  server.Step(0ms);  // descriptors are back, but the pause holds until the clock says so
  EXPECT_EQ(server.open_connections(), 0u);
  clock.Advance(200ms);
  for (int i = 0; i < 20 && server.open_connections() == 0; ++i) server.Step(5ms);
  EXPECT_EQ(server.open_connections(), 1u);
  c.Send("GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(c.ReadAll(server).rfind("HTTP/1.1 200", 0), 0u);
}

// A stream that sends what the test hands it; Pull() runs on the stepping (test) thread.
class QueueStream : public HttpStream {
 public:
  bool Pull(std::string& out, bool keepalive) override {
    ++pulls;
    out += pending;
    pending.clear();
    if (out.empty() && keepalive) out = ": keepalive\n\n";
    return !ended;
  }
  std::string pending;
  bool ended = false;
  int pulls = 0;
};

TEST(HttpServer, PostBodiesAndStreams) {
  ManualClock clock;
  HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  o.max_body_bytes = 64;
  o.streams = true;
  o.request_timeout = 2s;
  o.stream_keepalive = 10s;
  HttpServer server(o, clock);
  server.Route("/echo", [](const HttpRequest& rq) {
    return HttpResponse{200, "text/plain", rq.method + " " + rq.body + " " + rq.args.at("a"), {}, nullptr};
  }, true);
  auto stream = std::make_shared<QueueStream>();
  server.Route("/s", [stream](const HttpRequest&) {
    HttpResponse r{200, "text/event-stream", ": hello\n\n", {}, stream};
    return r;
  }, false);
  ASSERT_TRUE(server.Start());

  Client post(server.port());
  post.Send("POST /echo?a=b%20c HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
  std::string r = post.ReadAll(server);
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_EQ(r.substr(r.size() - 14), "POST hello b c") << r;
  Client big(server.port());
  big.Send("POST /echo?a=1 HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'x'));
  EXPECT_EQ(big.ReadAll(server).rfind("HTTP/1.1 413", 0), 0u);

  // A stream: its first bytes, then nothing until Wake(), then what was handed over; no deadline applies.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(server.port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  std::string req = "GET /s HTTP/1.1\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  std::string got;
  auto read_until = [&](const std::string& what) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (got.find(what) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      server.Step(5ms);
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 5) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got.find(what) != std::string::npos;
  };
  ASSERT_TRUE(read_until(": hello")) << got;
  EXPECT_NE(got.find("Content-Type: text/event-stream"), std::string::npos) << got;
  int pulls = stream->pulls;
  for (int i = 0; i < 20; ++i) server.Step(1ms);
  EXPECT_LE(stream->pulls, pulls + 1);  // suspended: not pulled in a loop
  clock.Advance(3s);                    // past request_timeout: a stream is exempt
  server.Step(0ms);
  EXPECT_EQ(server.open_connections(), 1u);
  stream->pending = "data: one\n\n";
  stream->Wake();
  EXPECT_TRUE(read_until("data: one")) << got;
  clock.Advance(11s);  // the keepalive pulls a quiet stream
  EXPECT_TRUE(read_until(": keepalive")) << got;
  ::close(fd);
}  // destroyed with the stream suspended

// A stream that, like the console's live tail, holds wakes for a while after each pull that sent something.
class HoldingStream : public HttpStream {
 public:
  explicit HoldingStream(const Clock& clock) : clock_(clock) {}
  bool Pull(std::string& out, bool keepalive) override {
    ++pulls;
    out += pending;
    if (!pending.empty()) HoldWakesUntil(clock_.Steady() + 1s);
    pending.clear();
    if (out.empty() && keepalive) out = ": keepalive\n\n";
    return true;
  }
  std::string pending;
  int pulls = 0;

 private:
  const Clock& clock_;
};

TEST(HttpServer, HeldWakesArePulledWhenTheHoldEnds) {
  ManualClock clock;
  HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  o.streams = true;
  o.stream_keepalive = 100s;
  HttpServer server(o, clock);
  auto stream = std::make_shared<HoldingStream>(clock);
  server.Route("/s", [stream](const HttpRequest&) { return HttpResponse{200, "text/event-stream", "", {}, stream}; },
               false);
  ASSERT_TRUE(server.Start());
  Client c(server.port());
  c.Send("GET /s HTTP/1.0\r\n\r\n");
  std::string got;
  auto step_until = [&](const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      server.Step(5ms);
      got += c.ReadSome();
    }
    return done();
  };
  ASSERT_TRUE(step_until([&] { return got.find("\r\n\r\n") != std::string::npos; })) << got;
  stream->pending = "data: one\n\n";
  stream->Wake();
  ASSERT_TRUE(step_until([&] { return got.find("data: one") != std::string::npos; })) << got;
  const int pulls = stream->pulls;
  // Held for 1 s of the server's clock: woken again, not pulled however often the server steps.
  stream->pending = "data: two\n\n";
  stream->Wake();
  stream->Wake();
  for (int i = 0; i < 20; ++i) {
    server.Step(1ms);
    got += c.ReadSome();
  }
  EXPECT_EQ(stream->pulls, pulls);
  EXPECT_EQ(got.find("data: two"), std::string::npos);
  clock.Advance(1s);
  ASSERT_TRUE(step_until([&] { return got.find("data: two") != std::string::npos; })) << got;
  EXPECT_EQ(stream->pulls, pulls + 1);  // the two Wake()s made one pull
}

TEST_P(HttpServerTest, BadAddresses) {
  ManualClock clock;
  HttpServerOptions o;
  o.plain = GetParam();
  o.listen = "nonsense";
  EXPECT_EQ(HttpServer(o, clock).Start().error().code, ErrorCode::kInvalidArgument);
  o.listen = "127.0.0.1:0";
  HttpServer a(o, clock);
  ASSERT_TRUE(a.Start());
  o.listen = "127.0.0.1:" + std::to_string(a.port());
  auto busy = HttpServer(o, clock).Start();
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code, ErrorCode::kIoError);
}

}  // namespace
}  // namespace ferry
