// The ingest listener in-process, with a sink whose commits the test releases: a PUBACK must not leave before
// the commit that holds its event, must carry the commit's outcome, and must keep the PUBLISH order.
#include "ferry/ingest_listener.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>

#include "../support/mosquitto_fixture.h"  // poll_until
#include "mqtt_test_client.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using test::MqttTestClient;
using test::poll_until;
namespace m = ferry::mqtt;

// Holds every append until the test commits it, as a group commit that has not returned yet.
class HeldSink : public IngestSink {
 public:
  Status Append(const std::string&, Event, bool) override { return InvalidArgument("not used"); }
  void AppendThen(const std::string& stream, Event event, std::function<void(const Result<Seq>&)> done) override {
    std::lock_guard<std::mutex> lock(mu_);
    held_.push_back({stream, std::move(event), std::move(done)});
  }
  size_t held() {
    std::lock_guard<std::mutex> lock(mu_);
    return held_.size();
  }
  // Completes the oldest n appends with `result` (a Seq, or an error), as the writer thread would.
  void Commit(size_t n, const Result<Seq>& result) {
    std::deque<Held> now;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < n && !held_.empty(); ++i) {
        now.push_back(std::move(held_.front()));
        held_.pop_front();
      }
    }
    for (auto& h : now) {
      if (result) stored.push_back(h.event.id);
      h.done(result);
    }
  }
  void CommitSoon() override { ++hints; }
  std::vector<std::string> stored;
  std::atomic<int> hints{0};  // CommitSoon() calls

 private:
  struct Held {
    std::string stream;
    Event event;
    std::function<void(const Result<Seq>&)> done;
  };
  std::mutex mu_;
  std::deque<Held> held_;
};

Config ListenerConfig(const std::string& extra = "") {
  auto cfg = LoadConfigString(R"(
[gateway]
id = "gw1"
[ingest]
mode = "listen"
listen.address = "127.0.0.1:0"
listen.receive_maximum = 8
dedupe_window = "10m"
)" + extra + R"(
[[stream]]
name = "telemetry"
[[stream]]
name = "dead"
[[route]]
filter = "telemetry/{device}/#"
stream = "telemetry"
subject = "{device}"
content_type = "application/json"
dead_letter = "dead"
id_json_field = "id"
)", "test.toml");
  EXPECT_TRUE(cfg.has_value()) << cfg.error().ToString();
  return *cfg;
}

class ListenerTest : public ::testing::Test {
 protected:
  void StartListener(const std::string& extra = "") {
    config_ = ListenerConfig(extra);
    auto router = IngestRouter::Create(config_);
    ASSERT_TRUE(router) << router.error().ToString();
    listener_ = std::make_unique<IngestListener>(config_, std::move(*router), sink_, metrics_, SystemClock::Instance());
    ASSERT_TRUE(listener_->Start());
    listener_->Run();
  }
  void TearDown() override {
    if (listener_) listener_->Stop();
  }
  std::string Json(const std::string& id) { return "{\"id\":\"" + id + "\",\"t\":1}"; }
  double Count(const char* name, const Labels& labels = {}) {
    return static_cast<double>(DeclaredCounter(metrics_, name, labels).Value());
  }

  Config config_;
  HeldSink sink_;
  MetricsRegistry metrics_;
  std::unique_ptr<IngestListener> listener_;
};

TEST_F(ListenerTest, PubackOnlyAfterTheCommitAndInPublishOrder) {
  StartListener();
  for (m::Version v : {m::Version::kV311, m::Version::kV5}) {
    SCOPED_TRACE(static_cast<int>(v));
    sink_.stored.clear();
    MqttTestClient c(v);
    ASSERT_TRUE(c.Open(listener_->port()));
    auto ack = c.Connect("dev-1");
    ASSERT_TRUE(ack);
    EXPECT_EQ(ack->code, 0);
    if (v == m::Version::kV5) {
      EXPECT_EQ(c.connack_props().receive_maximum, 8);
      EXPECT_EQ(c.connack_props().maximum_qos, 1);
      EXPECT_FALSE(c.connack_props().retain_available);
    }
    const std::string p = "v" + std::to_string(static_cast<int>(v)) + "-";
    for (uint16_t i = 1; i <= 3; ++i) ASSERT_TRUE(c.Publish("telemetry/dev-1/x", Json(p + std::to_string(i)), 1, i));
    ASSERT_TRUE(poll_until([&] { return sink_.held() == 3; }, 10s));
    EXPECT_FALSE(c.ReadPuback(300ms)) << "a PUBACK before its commit";
    sink_.Commit(2, Seq{1});  // one commit holding the first two
    for (uint16_t i = 1; i <= 2; ++i) {
      auto a = c.ReadPuback(10s);
      ASSERT_TRUE(a);
      EXPECT_EQ(a->packet_id, i);
      EXPECT_EQ(a->reason, m::ReasonCode::kSuccess);
    }
    EXPECT_FALSE(c.ReadPuback(200ms)) << "the third is not committed yet";
    sink_.Commit(1, Seq{3});
    auto a3 = c.ReadPuback(10s);
    ASSERT_TRUE(a3);
    EXPECT_EQ(a3->packet_id, 3);
    EXPECT_EQ(sink_.stored, (std::vector<std::string>{p + "1", p + "2", p + "3"}));
  }
}

TEST_F(ListenerTest, StoreFailureIsQuotaExceededInV5AndNoAckInV311) {
  StartListener();
  MqttTestClient v5(m::Version::kV5);
  ASSERT_TRUE(v5.Open(listener_->port()));
  ASSERT_TRUE(v5.Connect("dev-5"));
  ASSERT_TRUE(v5.Publish("telemetry/dev-5/x", Json("f1"), 1, 7));
  ASSERT_TRUE(v5.Publish("telemetry/dev-5/x", Json("f2"), 1, 8));
  ASSERT_TRUE(poll_until([&] { return sink_.held() == 2; }, 10s));
  sink_.Commit(1, tl::unexpected(Error{ErrorCode::kFull, "commit: No space left on device"}));
  sink_.Commit(1, tl::unexpected(Error{ErrorCode::kIoError, "commit: Input/output error"}));
  auto a = v5.ReadPuback(10s);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->packet_id, 7);
  EXPECT_EQ(a->reason, m::ReasonCode::kQuotaExceeded);
  auto b = v5.ReadPuback(10s);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->reason, m::ReasonCode::kUnspecifiedError);
  // The id of an event that was not stored is forgotten: its re-send is stored, not dropped as a duplicate.
  ASSERT_TRUE(v5.Publish("telemetry/dev-5/x", Json("f1"), 1, 9));
  ASSERT_TRUE(poll_until([&] { return sink_.held() == 1; }, 10s)) << "the re-send was taken for a duplicate";
  sink_.Commit(1, Seq{1});
  auto c = v5.ReadPuback(10s);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->reason, m::ReasonCode::kSuccess);
  EXPECT_EQ(Count("ferry_ingest_refused_total", {{"reason", "quota_exceeded"}}), 1);
  EXPECT_EQ(Count("ferry_ingest_refused_total", {{"reason", "unspecified_error"}}), 1);

  // 3.1.1 has no negative PUBACK: nothing is acknowledged, and once the window (8) holds only failures the
  // connection is closed, so the device re-sends after reconnecting.
  MqttTestClient v3(m::Version::kV311);
  ASSERT_TRUE(v3.Open(listener_->port()));
  ASSERT_TRUE(v3.Connect("dev-3"));
  for (uint16_t i = 1; i <= 8; ++i) ASSERT_TRUE(v3.Publish("telemetry/dev-3/x", Json("g" + std::to_string(i)), 1, i));
  ASSERT_TRUE(poll_until([&] { return sink_.held() == 8; }, 10s));
  sink_.Commit(8, tl::unexpected(Error{ErrorCode::kFull, "full"}));
  EXPECT_TRUE(v3.WaitClosed(10s));
  EXPECT_FALSE(v3.ReadPuback(100ms));
}

TEST_F(ListenerTest, DuplicateWaitsForItsFirstCopy) {
  StartListener();
  MqttTestClient a(m::Version::kV5), b(m::Version::kV5);
  ASSERT_TRUE(a.Open(listener_->port()));
  ASSERT_TRUE(a.Connect("dev-a"));
  ASSERT_TRUE(a.Publish("telemetry/dev-a/x", Json("same"), 1, 1));
  ASSERT_TRUE(poll_until([&] { return sink_.held() == 1; }, 10s));
  // The same id again, on another connection, while the first copy is still being committed.
  ASSERT_TRUE(b.Open(listener_->port()));
  ASSERT_TRUE(b.Connect("dev-b"));
  ASSERT_TRUE(b.Publish("telemetry/dev-a/x", Json("same"), 1, 1));
  EXPECT_FALSE(b.ReadPuback(300ms)) << "a duplicate acknowledged before its first copy was on disk";
  EXPECT_EQ(sink_.held(), 1u) << "the duplicate was stored twice";
  sink_.Commit(1, Seq{1});
  ASSERT_TRUE(a.ReadPuback(10s));
  auto dup = b.ReadPuback(10s);
  ASSERT_TRUE(dup);
  EXPECT_EQ(dup->reason, m::ReasonCode::kSuccess);
  // Once committed, a later copy is acknowledged at once.
  ASSERT_TRUE(b.Publish("telemetry/dev-a/x", Json("same"), 1, 2));
  ASSERT_TRUE(b.ReadPuback(10s));
  EXPECT_EQ(sink_.held(), 0u);
}

TEST_F(ListenerTest, WindowFullStopsReadingUntilCommits) {
  StartListener();
  MqttTestClient c(m::Version::kV311);
  ASSERT_TRUE(c.Open(listener_->port()));
  ASSERT_TRUE(c.Connect("dev-w"));
  for (uint16_t i = 1; i <= 12; ++i) ASSERT_TRUE(c.Publish("telemetry/dev-w/x", Json("w" + std::to_string(i)), 1, i));
  ASSERT_TRUE(poll_until([&] { return sink_.held() == 8; }, 10s));
  EXPECT_FALSE(poll_until([&] { return sink_.held() > 8; }, 300ms)) << "read past the window of 8";
  sink_.Commit(8, Seq{1});
  ASSERT_TRUE(poll_until([&] { return sink_.held() == 4; }, 10s));
  sink_.Commit(4, Seq{9});
  for (uint16_t i = 1; i <= 12; ++i) {
    auto a = c.ReadPuback(10s);
    ASSERT_TRUE(a) << i;
    EXPECT_EQ(a->packet_id, i);
  }
}

// The writer lingers to grow commits; once every device with events waiting for a PUBACK has filled its window,
// nothing more can come before the commit, and the listener says so (IngestSink::CommitSoon). A device that
// sends slowly (its window not full) keeps the linger.
TEST_F(ListenerTest, EveryWaitingWindowFullAsksTheWriterNotToLinger) {
  StartListener();
  MqttTestClient slow(m::Version::kV5), fast(m::Version::kV5);
  ASSERT_TRUE(slow.Open(listener_->port()));
  ASSERT_TRUE(slow.Connect("dev-slow"));
  ASSERT_TRUE(fast.Open(listener_->port()));
  ASSERT_TRUE(fast.Connect("dev-fast"));
  ASSERT_TRUE(slow.Publish("telemetry/dev-slow/x", Json("s1"), 1, 1));
  ASSERT_TRUE(poll_until([&] { return sink_.held() == 1; }, 10s));
  for (uint16_t i = 1; i <= 8; ++i) ASSERT_TRUE(fast.Publish("telemetry/dev-fast/x", Json("f" + std::to_string(i)), 1, i));
  ASSERT_TRUE(poll_until([&] { return sink_.held() == 9; }, 10s));
  // The fast device's window is full, but the slow one could still send: no hint.
  EXPECT_FALSE(poll_until([&] { return sink_.hints.load() > 0; }, 300ms)) << "hinted while dev-slow could send";
  for (uint16_t i = 2; i <= 8; ++i) ASSERT_TRUE(slow.Publish("telemetry/dev-slow/x", Json("s" + std::to_string(i)), 1, i));
  ASSERT_TRUE(poll_until([&] { return sink_.held() == 16; }, 10s));
  EXPECT_TRUE(poll_until([&] { return sink_.hints.load() >= 1; }, 10s)) << "both windows full: no hint";
  sink_.Commit(16, Seq{1});
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(fast.ReadPuback(10s)) << i;
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(slow.ReadPuback(10s)) << i;
}

TEST_F(ListenerTest, IngestEndpointRefusesWhatItDoesNotDo) {
  StartListener();
  // SUBSCRIBE: a SUBACK with a failure code, the connection stays.
  for (m::Version v : {m::Version::kV311, m::Version::kV5}) {
    MqttTestClient c(v);
    ASSERT_TRUE(c.Open(listener_->port()));
    ASSERT_TRUE(c.Connect("sub"));
    m::Subscribe s;
    s.packet_id = 4;
    s.filters.push_back(m::SubscribeFilter{"telemetry/#", 1});
    s.filter_count = 1;
    std::string out;
    ASSERT_TRUE(m::EncodeSubscribe(out, v, s));
    ASSERT_TRUE(c.Send(out));
    auto f = c.Read(10s);
    ASSERT_TRUE(f);
    ASSERT_EQ(f->type, m::PacketType::kSuback);
    auto ack = m::DecodeSuback(*f, v);
    ASSERT_TRUE(ack);
    ASSERT_EQ(ack->reason_codes.size(), 1u);
    EXPECT_EQ(static_cast<uint8_t>(ack->reason_codes[0]), v == m::Version::kV5 ? 0x87 : 0x80);
    out.clear();
    m::EncodePingreq(out);
    ASSERT_TRUE(c.Send(out));
    auto pong = c.Read(10s);
    ASSERT_TRUE(pong);
    EXPECT_EQ(pong->type, m::PacketType::kPingresp);
  }
  // QoS 2 and (5.0) retain: a DISCONNECT with the reason, only that connection closes.
  MqttTestClient q2(m::Version::kV5), keep(m::Version::kV5);
  ASSERT_TRUE(keep.Open(listener_->port()));
  ASSERT_TRUE(keep.Connect("keep"));
  ASSERT_TRUE(q2.Open(listener_->port()));
  ASSERT_TRUE(q2.Connect("q2"));
  ASSERT_TRUE(q2.Publish("telemetry/q2/x", Json("q2"), 2, 1));
  EXPECT_TRUE(q2.WaitClosed(10s));
  EXPECT_EQ(q2.disconnect_reason(), m::ReasonCode::kQosNotSupported);
  MqttTestClient rt(m::Version::kV5);
  ASSERT_TRUE(rt.Open(listener_->port()));
  ASSERT_TRUE(rt.Connect("rt"));
  ASSERT_TRUE(rt.Publish("telemetry/rt/x", Json("rt"), 1, 1, /*retain=*/true));
  EXPECT_TRUE(rt.WaitClosed(10s));
  EXPECT_EQ(rt.disconnect_reason(), m::ReasonCode::kRetainNotSupported);
  // Garbage closes its connection; the other one still publishes.
  MqttTestClient junk(m::Version::kV5);
  ASSERT_TRUE(junk.Open(listener_->port()));
  ASSERT_TRUE(junk.Send(std::string("\x10\xff\xff\xff\xff\x7f garbage", 14)));
  EXPECT_TRUE(junk.WaitClosed(10s));
  MqttTestClient before_connect(m::Version::kV5);
  ASSERT_TRUE(before_connect.Open(listener_->port()));
  ASSERT_TRUE(before_connect.Publish("telemetry/x/y", "{}", 0, 0));
  EXPECT_TRUE(before_connect.WaitClosed(10s));
  ASSERT_TRUE(keep.Publish("telemetry/keep/x", Json("k1"), 1, 1));
  ASSERT_TRUE(poll_until([&] { return sink_.held() == 1; }, 10s));
  sink_.Commit(1, Seq{1});
  EXPECT_TRUE(keep.ReadPuback(10s));
  EXPECT_GE(Count("ferry_ingest_listener_closed_total", {{"reason", "qos_not_supported"}}), 1);
  EXPECT_GE(Count("ferry_ingest_listener_closed_total", {{"reason", "retain_not_supported"}}), 1);
  EXPECT_GE(Count("ferry_ingest_listener_refused_total", {{"reason", "subscribe"}}), 2);
}

TEST_F(ListenerTest, SlowAndSilentConnectionsAreClosed) {
  StartListener("listen.connect_timeout = \"300ms\"\nlisten.max_keepalive = \"1s\"\n");
  MqttTestClient silent(m::Version::kV5);
  ASSERT_TRUE(silent.Open(listener_->port()));  // never sends CONNECT
  MqttTestClient partial(m::Version::kV5);
  ASSERT_TRUE(partial.Open(listener_->port()));
  ASSERT_TRUE(partial.Connect("partial"));
  ASSERT_TRUE(partial.Send(std::string("\x30\x40\x00", 3)));  // a PUBLISH that never completes
  MqttTestClient idle(m::Version::kV311);
  ASSERT_TRUE(idle.Open(listener_->port()));
  auto ack = idle.Connect("idle", /*keep_alive=*/0);  // asks for none: ferryd imposes listen.max_keepalive
  ASSERT_TRUE(ack);
  EXPECT_TRUE(silent.WaitClosed(10s));
  EXPECT_TRUE(partial.WaitClosed(10s));
  EXPECT_TRUE(idle.WaitClosed(10s));  // silent for 1.5 x 1 s
  EXPECT_EQ(Count("ferry_ingest_listener_closed_total", {{"reason", "connect_timeout"}}), 1);
  EXPECT_EQ(Count("ferry_ingest_listener_closed_total", {{"reason", "slow_packet"}}), 1);
  EXPECT_EQ(Count("ferry_ingest_listener_closed_total", {{"reason", "keepalive_timeout"}}), 1);
}

TEST_F(ListenerTest, ConnectionCapAndLogins) {
  std::string pwfile = testing::TempDir() + "/ferry-listener-passwd";
  {
    auto line = PasswordFile::MakeEntry("dev-7", "s3cret", 1000);
    ASSERT_TRUE(line);
    std::ofstream(pwfile) << "# devices\n" << *line << "\n";
  }
  StartListener("listen.max_connections = 2\nlisten.password_file = \"" + pwfile +
                "\"\nlisten.topic_must_match_client = true\n");
  MqttTestClient bad(m::Version::kV5);
  ASSERT_TRUE(bad.Open(listener_->port()));
  auto refused = bad.Connect("dev-7", 60, std::string("dev-7"), std::string("wrong"));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, 0x86);
  MqttTestClient bad3(m::Version::kV311);
  ASSERT_TRUE(bad3.Open(listener_->port()));
  auto refused3 = bad3.Connect("x");  // no user name at all
  ASSERT_TRUE(refused3);
  EXPECT_EQ(refused3->code, m::v311::kBadUserNameOrPassword);
  EXPECT_TRUE(bad.WaitClosed(10s));
  EXPECT_TRUE(bad3.WaitClosed(10s));
  ASSERT_TRUE(poll_until([&] { return listener_->connections() == 0; }, 10s));

  MqttTestClient ok(m::Version::kV5);
  ASSERT_TRUE(ok.Open(listener_->port()));
  auto accepted = ok.Connect("anything", 60, std::string("dev-7"), std::string("s3cret"));
  ASSERT_TRUE(accepted);
  EXPECT_EQ(accepted->code, 0);
  // Its own subject is stored; another device's is refused with 0x87 and not stored.
  ASSERT_TRUE(ok.Publish("telemetry/dev-8/x", Json("other"), 1, 1));
  ASSERT_TRUE(ok.Publish("telemetry/dev-7/x", Json("own"), 1, 2));
  auto no = ok.ReadPuback(10s);
  ASSERT_TRUE(no);
  EXPECT_EQ(no->reason, m::ReasonCode::kNotAuthorized);
  ASSERT_TRUE(poll_until([&] { return sink_.held() == 1; }, 10s));
  sink_.Commit(1, Seq{1});
  auto yes = ok.ReadPuback(10s);
  ASSERT_TRUE(yes);
  EXPECT_EQ(yes->packet_id, 2);
  EXPECT_EQ(sink_.stored, (std::vector<std::string>{"own"}));

  // The cap: two open, the third is closed at once.
  MqttTestClient second(m::Version::kV5), third(m::Version::kV5);
  ASSERT_TRUE(second.Open(listener_->port()));
  ASSERT_TRUE(poll_until([&] { return listener_->connections() == 2; }, 10s));
  ASSERT_TRUE(third.Open(listener_->port()));
  EXPECT_TRUE(third.WaitClosed(10s));
  EXPECT_EQ(Count("ferry_ingest_listener_closed_total", {{"reason", "connection_limit"}}), 1);
}

// docs/ingest-listener.md lists the close and refusal reasons; every literal reason in the listener's source must
// be there (the codec's reason names are documented as a family).
TEST(ListenerDocs, EveryReasonTheListenerEmitsIsDocumented) {
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  const std::string src = read(std::string(FERRY_SOURCE_DIR) + "/hub/ingest/src/ingest_listener.cc");
  const std::string doc = read(std::string(FERRY_SOURCE_DIR) + "/docs/ingest-listener.md");
  ASSERT_FALSE(src.empty());
  ASSERT_FALSE(doc.empty());
  std::regex emitted(R"re((?:Close\([^,]+, |\{"reason", )"([a-z_]+)")re");
  std::set<std::string> reasons;
  for (std::sregex_iterator it(src.begin(), src.end(), emitted), end; it != end; ++it) reasons.insert((*it)[1]);
  EXPECT_GE(reasons.size(), 15u) << "the pattern no longer finds the reasons";
  for (const auto& r : reasons) EXPECT_NE(doc.find("`" + r + "`"), std::string::npos) << r << " is not in docs/ingest-listener.md";
}

TEST(PasswordFile, BadLinesAreNamed) {
  std::string path = testing::TempDir() + "/ferry-bad-passwd";
  std::ofstream(path) << "dev:pbkdf2-sha256:10:00:00\n";
  auto pf = PasswordFile::Load(path);
  ASSERT_FALSE(pf);
  EXPECT_NE(pf.error().message.find(path + ":1:"), std::string::npos) << pf.error().message;
  EXPECT_EQ(PasswordFile::Load("/nonexistent/ferry-passwd").error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(PasswordFile::MakeEntry("a:b", "x"));
}

}  // namespace
}  // namespace ferry
