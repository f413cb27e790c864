// The Kafka uplink's TLS and SASL settings (issue 11), end to end: ferryd as a process, its Kafka uplink pointed
// at a broker stand-in of this test's own on 127.0.0.1. librdkafka's mock cluster speaks neither TLS nor SASL,
// and Debian has no Kafka broker, so the stand-in speaks just enough of the Kafka protocol to see what a real
// broker would: the TLS handshake with the client certificate (mbedTLS, ferry/tls_server.h, requiring and
// verifying a certificate from the test CA) and the first Kafka request inside it; ApiVersions, SaslHandshake
// and SaslAuthenticate with the mechanism and the PLAIN credentials. What comes after authentication (metadata,
// produce) is the mock cluster's part, in kafka_uplink_test.cc.
//
// Also: an operator with a wrong CA or wrong credentials reads why in ferryd's log, in librdkafka's words
// (the link-down warning carries the broker's last error). Waits poll with deadlines; nothing sleeps.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../support/test_pki.h"
#include "ferry/tls_server.h"
#include "harness.h"

namespace ferry::test {
namespace {

using namespace std::chrono_literals;

constexpr int16_t kApiMetadata = 3;
constexpr int16_t kApiSaslHandshake = 17;
constexpr int16_t kApiApiVersions = 18;
constexpr int16_t kApiSaslAuthenticate = 36;

// Big-endian encoding of the Kafka protocol's fixed-width fields.
void Put16(std::string* out, int16_t v) {
  out->push_back(static_cast<char>((v >> 8) & 0xff));
  out->push_back(static_cast<char>(v & 0xff));
}
void Put32(std::string* out, int32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>((v >> shift) & 0xff));
}
int32_t Get32(const std::string& b, size_t at) {
  return static_cast<int32_t>((uint32_t{static_cast<uint8_t>(b[at])} << 24) |
                              (uint32_t{static_cast<uint8_t>(b[at + 1])} << 16) |
                              (uint32_t{static_cast<uint8_t>(b[at + 2])} << 8) | uint32_t{static_cast<uint8_t>(b[at + 3])});
}
int16_t Get16(const std::string& b, size_t at) {
  return static_cast<int16_t>((uint16_t{static_cast<uint8_t>(b[at])} << 8) | uint16_t{static_cast<uint8_t>(b[at + 1])});
}

// One connection's byte stream, plain or TLS. Reads time out every 100 ms (SO_RCVTIMEO) so the broker can stop.
class Conn {
 public:
  Conn(int fd, std::shared_ptr<TlsServerContext> tls) : fd_(fd) {
    timeval tv{0, 100'000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (tls) tls_ = std::make_unique<TlsSession>(std::move(tls), fd);  // closes fd when destroyed
  }
  ~Conn() {
    if (!tls_) ::close(fd_);
  }
  // TLS: the handshake (true once done). Plain: true.
  bool Handshake(const std::atomic<bool>& stop, std::string* peer_cn, std::string* error) {
    if (!tls_) return true;
    while (!stop) {
      switch (tls_->Handshake()) {
        case TlsSession::Io::kOk: *peer_cn = tls_->peer_common_name(); return true;
        case TlsSession::Io::kWantRead:
        case TlsSession::Io::kWantWrite: continue;
        default: *error = tls_->error(); return false;
      }
    }
    return false;
  }
  // Exactly n bytes, or false (closed, error, stop).
  bool ReadN(size_t n, std::string* out, const std::atomic<bool>& stop) {
    out->clear();
    char buf[4096];
    while (out->size() < n && !stop) {
      const size_t want = std::min(sizeof buf, n - out->size());
      if (tls_) {
        size_t got = 0;
        auto io = tls_->Read(buf, want, &got);
        if (io == TlsSession::Io::kOk) out->append(buf, got);
        else if (io != TlsSession::Io::kWantRead && io != TlsSession::Io::kWantWrite) return false;
      } else {
        const ssize_t got = ::recv(fd_, buf, want, 0);
        if (got > 0) out->append(buf, static_cast<size_t>(got));
        else if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return false;
      }
    }
    return out->size() == n;
  }
  bool Write(const std::string& bytes) {
    size_t at = 0;
    while (at < bytes.size()) {
      if (tls_) {
        size_t wrote = 0;
        auto io = tls_->Write(bytes.data() + at, bytes.size() - at, &wrote);
        if (io == TlsSession::Io::kOk) at += wrote;
        else if (io != TlsSession::Io::kWantRead && io != TlsSession::Io::kWantWrite) return false;
      } else {
        const ssize_t n = ::send(fd_, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
        if (n <= 0) return false;
        at += static_cast<size_t>(n);
      }
    }
    return true;
  }

 private:
  int fd_;
  std::unique_ptr<TlsSession> tls_;
};

// What the stand-in saw, across every connection ferryd made.
struct Seen {
  std::vector<std::string> peer_cns;       // completed TLS handshakes
  std::vector<std::string> tls_failures;   // failed ones, mbedTLS's words
  std::vector<int16_t> api_keys;           // Kafka requests, in arrival order
  std::string mechanism;                   // SaslHandshake's
  std::string auth_bytes;                  // SaslAuthenticate's (PLAIN: authzid \0 user \0 password)
};

// A Kafka broker stand-in: ApiVersions (v0-v3), SaslHandshake (v0-v1) and SaslAuthenticate (v0-v1); it closes
// the connection on anything else (ferryd retries: nothing more is needed here).
class BrokerStandIn {
 public:
  BrokerStandIn(std::shared_ptr<TlsServerContext> tls, bool accept_credentials)
      : tls_(std::move(tls)), accept_(accept_credentials) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~BrokerStandIn() {
    stop_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    for (auto& t : conns_) t.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  Seen seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      if (conns_.size() >= 64) {  // ferryd reconnects with backoff; a bound all the same
        ::close(c);
        continue;
      }
      conns_.emplace_back([this, c] { Serve(c); });
    }
  }

  void Serve(int fd) {
    Conn conn(fd, tls_);
    std::string cn, error;
    const bool ok = conn.Handshake(stop_, &cn, &error);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ok && tls_) seen_.peer_cns.push_back(cn);
      if (!ok && !error.empty()) seen_.tls_failures.push_back(error);
    }
    if (!ok) return;
    bool authenticating = false;  // SaslHandshake v0: the next frame is the raw token, not a request
    std::string size, frame;
    while (!stop_ && conn.ReadN(4, &size, stop_)) {
      const int32_t n = Get32(size, 0);
      if (n < 0 || n > (1 << 20) || !conn.ReadN(static_cast<size_t>(n), &frame, stop_)) return;
      if (authenticating) {  // v0 raw token
        authenticating = false;
        Record(-1, "", frame);
        std::string reply;
        Put32(&reply, 0);
        if (!accept_ || !conn.Write(reply)) return;
        continue;
      }
      if (frame.size() < 8) return;
      const int16_t key = Get16(frame, 0), version = Get16(frame, 2);
      const int32_t correlation = Get32(frame, 4);
      // Header v1 (v2 adds tagged fields after the client id; only ApiVersions v3 uses it here).
      size_t at = 8;
      const int16_t client_len = Get16(frame, at);
      at += 2 + static_cast<size_t>(std::max<int16_t>(client_len, 0));
      std::string body;
      Put32(&body, correlation);
      if (key == kApiApiVersions) {
        Record(key, "", "");
        struct Range {
          int16_t key, min, max;
        };
        const Range ranges[] = {{kApiMetadata, 0, 4}, {kApiSaslHandshake, 0, 1}, {kApiApiVersions, 0, 3},
                                {kApiSaslAuthenticate, 0, 1}};
        Put16(&body, 0);  // error_code
        if (version >= 3) {  // compact array: length + 1 as an unsigned varint; tagged fields after each entry
          body.push_back(static_cast<char>(std::size(ranges) + 1));
          for (const auto& r : ranges) {
            Put16(&body, r.key), Put16(&body, r.min), Put16(&body, r.max);
            body.push_back('\0');
          }
        } else {
          Put32(&body, static_cast<int32_t>(std::size(ranges)));
          for (const auto& r : ranges) Put16(&body, r.key), Put16(&body, r.min), Put16(&body, r.max);
        }
        if (version >= 1) Put32(&body, 0);  // throttle_time_ms
        if (version >= 3) body.push_back('\0');
      } else if (key == kApiSaslHandshake) {
        const int16_t len = Get16(frame, at);
        const std::string mechanism = frame.substr(at + 2, static_cast<size_t>(std::max<int16_t>(len, 0)));
        Record(key, mechanism, "");
        Put16(&body, 0);
        Put32(&body, 1);
        Put16(&body, 5);
        body += "PLAIN";
        authenticating = version == 0;
      } else if (key == kApiSaslAuthenticate) {
        const int32_t len = Get32(frame, at);
        Record(key, "", frame.substr(at + 4, static_cast<size_t>(std::max(len, 0))));
        if (accept_) {
          Put16(&body, 0);
          Put16(&body, -1);  // error_message: null
        } else {
          const std::string why = "Authentication failed: Invalid username or password";
          Put16(&body, 58);  // SASL_AUTHENTICATION_FAILED
          Put16(&body, static_cast<int16_t>(why.size()));
          body += why;
        }
        Put32(&body, 0);                            // auth_bytes: empty
        if (version >= 1) Put32(&body, 0), Put32(&body, 0);  // session_lifetime_ms (int64): 0
      } else {
        Record(key, "", "");
        return;  // the rest is the mock cluster's part
      }
      std::string reply;
      Put32(&reply, static_cast<int32_t>(body.size()));
      if (!conn.Write(reply + body)) return;
    }
  }

  void Record(int16_t key, const std::string& mechanism, const std::string& auth) {
    std::lock_guard<std::mutex> lock(mu_);
    if (key >= 0) seen_.api_keys.push_back(key);
    if (!mechanism.empty()) seen_.mechanism = mechanism;
    if (!auth.empty()) seen_.auth_bytes = auth;
  }

  std::shared_ptr<TlsServerContext> tls_;
  const bool accept_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> conns_;  // the acceptor's only; joined after it
  std::mutex mu_;
  Seen seen_;
};

class KafkaSecurity : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(MakeTestPki(pki_.path(), "/CN=ferry-gw-kafka")) << ReadAll(pki_.Sub("pki.log"));
  }

  std::shared_ptr<TlsServerContext> ServerTls() {
    TlsServerOptions o;
    o.cert_file = pki_.Sub("server.pem");
    o.key_file = pki_.Sub("server.key");
    o.ca_file = pki_.Sub("ca.pem");
    o.require_client_cert = true;
    auto ctx = TlsServerContext::Create(o);
    EXPECT_TRUE(ctx) << (ctx ? "" : ctx.error().ToString());
    return ctx ? *ctx : nullptr;
  }

  // ferryd with a listener ingest (no local broker needed) and one Kafka uplink to 127.0.0.1:port.
  bool StartFerryd(int port, const std::string& uplink_keys) {
    std::string c = "[gateway]\nid = \"gw-sec\"\n";
    c += "[storage]\npath = \"" + dir_.path() + "/log\"\nmap_size = \"64MiB\"\n";
    c += "[ingest]\nmode = \"listen\"\nlisten.address = \"127.0.0.1:" + std::to_string(free_tcp_port()) + "\"\n";
    c += "[metrics]\nenabled = false\n";
    c += "[[stream]]\nname = \"telemetry\"\n";
    c += "[[route]]\nfilter = \"telemetry/{device}\"\nstream = \"telemetry\"\n";
    c += "[[uplink]]\nname = \"central\"\ntype = \"kafka\"\naddress = \"127.0.0.1:" + std::to_string(port) +
         "\"\ntopic = \"ferry.{gateway}.{stream}\"\nbackoff.min = \"50ms\"\nbackoff.max = \"500ms\"\n" + uplink_keys;
    WriteFile(dir_.path() + "/ferry.toml", c);
    return ferryd_.Start(ToolCommand(FERRY_FERRYD_PATH, "FERRY_TEST_FERRYD", {"-c", dir_.path() + "/ferry.toml"}),
                         dir_.path() + "/ferryd.log");
  }

  std::string TlsKeys(const std::string& ca) {
    return "tls.enabled = true\ntls.ca_file = \"" + pki_.Sub(ca) + "\"\ntls.cert_file = \"" + pki_.Sub("client.pem") +
           "\"\ntls.key_file = \"" + pki_.Sub("client.key") + "\"\n";
  }

  // librdkafka reconnects with its own backoff (100 ms growing to 10 s); a few attempts fit well within this.
  static constexpr auto kDeadline = 60s;

  TempDir pki_{"ferry-kafka-pki"};
  TempDir dir_{"ferry-kafka-sec"};
  ChildProcess ferryd_;
};

bool Contains(const std::vector<int16_t>& v, int16_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

TEST_F(KafkaSecurity, TlsWithAClientCertificateCarriesTheKafkaProtocol) {
  auto tls = ServerTls();
  ASSERT_TRUE(tls);
  BrokerStandIn broker(tls, /*accept_credentials=*/true);
  ASSERT_GT(broker.port(), 0);
  ASSERT_TRUE(StartFerryd(broker.port(), TlsKeys("ca.pem"))) << ferryd_.log();
  // The handshake verified ferryd's client certificate (the stand-in requires one from the test CA), and ferryd
  // verified the stand-in's (server.pem, IP SAN 127.0.0.1) against tls.ca_file: the first request follows.
  EXPECT_TRUE(poll_until([&] { return Contains(broker.seen().api_keys, kApiApiVersions) || !ferryd_.running(); },
                         kDeadline))
      << ferryd_.log();
  const Seen s = broker.seen();
  ASSERT_FALSE(s.peer_cns.empty()) << ferryd_.log();
  EXPECT_EQ(s.peer_cns.front(), "ferry-gw-kafka");
  EXPECT_TRUE(s.tls_failures.empty()) << s.tls_failures.front();
  EXPECT_TRUE(ferryd_.running()) << ferryd_.log();
}

TEST_F(KafkaSecurity, AServerCertificateFromAnotherCaIsRefusedAndTheLogSaysWhy) {
  auto tls = ServerTls();
  ASSERT_TRUE(tls);
  BrokerStandIn broker(tls, /*accept_credentials=*/true);
  ASSERT_TRUE(StartFerryd(broker.port(), TlsKeys("other-ca.pem"))) << ferryd_.log();
  // ferryd trusts only other-ca.pem: it aborts every handshake, sends nothing, and says so.
  EXPECT_TRUE(poll_until([&] { return ferryd_.log().find("certificate verify failed") != std::string::npos; },
                         kDeadline))
      << ferryd_.log();
  EXPECT_TRUE(poll_until([&] { return !broker.seen().tls_failures.empty(); }, kDeadline));
  const Seen s = broker.seen();
  EXPECT_TRUE(s.peer_cns.empty());
  EXPECT_TRUE(s.api_keys.empty());
  EXPECT_TRUE(ferryd_.running()) << ferryd_.log();
}

TEST_F(KafkaSecurity, SaslPlainSendsTheConfiguredMechanismAndCredentials) {
  BrokerStandIn broker(nullptr, /*accept_credentials=*/true);
  ASSERT_TRUE(StartFerryd(broker.port(), "username = \"ferry-gw\"\npassword = \"s3cret pass\"\n")) << ferryd_.log();
  // kafka.security_protocol "auto" with a username and no TLS is sasl_plaintext; the mechanism defaults to PLAIN.
  EXPECT_TRUE(poll_until([&] { return !broker.seen().auth_bytes.empty() || !ferryd_.running(); }, kDeadline))
      << ferryd_.log();
  const Seen s = broker.seen();
  EXPECT_EQ(s.mechanism, "PLAIN");
  EXPECT_EQ(s.auth_bytes, std::string("\0ferry-gw\0s3cret pass", 21));
  // Authenticated, librdkafka goes on to the cluster's metadata.
  EXPECT_TRUE(poll_until([&] { return Contains(broker.seen().api_keys, kApiMetadata); }, kDeadline))
      << ferryd_.log();
}

TEST_F(KafkaSecurity, RefusedCredentialsAreNamedInTheLog) {
  BrokerStandIn broker(nullptr, /*accept_credentials=*/false);
  ASSERT_TRUE(StartFerryd(broker.port(), "username = \"ferry-gw\"\npassword = \"wrong\"\nkafka.sasl_mechanism = "
                                         "\"plain\"\n"))
      << ferryd_.log();
  EXPECT_TRUE(poll_until([&] { return ferryd_.log().find("Invalid username or password") != std::string::npos; },
                         kDeadline))
      << ferryd_.log();
  EXPECT_FALSE(Contains(broker.seen().api_keys, kApiMetadata));
  EXPECT_TRUE(ferryd_.running()) << ferryd_.log();
}

}  // namespace
}  // namespace ferry::test
