// End-to-end poison isolation (issue 11) against real Mosquitto brokers: one bad message among many good ones
// must not stop the uplink. A device id with U+0001 once made the central Mosquitto drop the uplink's
// connection on every re-send ("Malformed UTF-8"), stalling every stream; it now goes out percent-encoded
// (docs/wire.md). A message the centre refuses for good (PUBACK "packet too large") is set aside and counted,
// and everything behind it arrives. Waits poll with deadlines.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ferry/event_log.h"
#include "ferry/write_txn.h"
#include "harness.h"

namespace ferry::test {
namespace {

using namespace std::chrono_literals;

// A local broker (the devices' side), a central broker, and ferryd between them with one per-event uplink.
class PoisonGateway {
 public:
  explicit PoisonGateway(std::string central_extra = "")
      : dir_("ferry-poison"), central_(CentralOptions(std::move(central_extra))) {
    metrics_port_ = free_tcp_port();
  }

  bool Start(CentralReceiver& rx) {
    if (!local_.start() || !central_.start() || !rx.Connect(central_.uri())) return false;
    std::string c;
    c += "[gateway]\nid = \"gw-test\"\n";
    c += "[storage]\npath = \"" + dir_.path() + "/log\"\nmap_size = \"256MiB\"\n";
    c += "[ingest]\naddress = \"" + local_.uri() + "\"\nclient_id = \"ferryd-poison\"\nbackoff.min = \"50ms\"\nbackoff.max = \"500ms\"\n";
    c += "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port_) + "\"\n";
    c += "[[stream]]\nname = \"telemetry\"\n";
    c += "[[route]]\nfilter = \"telemetry/{device}/#\"\nstream = \"telemetry\"\nsubject = \"{device}\"\n"
         "content_type = \"application/json\"\nid_json_field = \"id\"\n";
    c += "[[uplink]]\nname = \"central\"\naddress = \"" + central_.uri() +
         "\"\nmode = \"per_event\"\ntopic = \"ferry/{gateway}/{stream}/{subject}\"\ninflight = 64\n"
         "backoff.min = \"50ms\"\nbackoff.max = \"500ms\"\n";
    WriteFile(dir_.path() + "/ferry.toml", c);
    if (!ferryd_.Start(ToolCommand(FERRY_FERRYD_PATH, "FERRY_TEST_FERRYD", {"-c", dir_.path() + "/ferry.toml"}),
                       dir_.path() + "/ferryd.log"))
      return false;
    return poll_until([this] { return Metric("ferry_ingest_link_up") == 1 || !ferryd_.running(); }, 30s) &&
           ferryd_.running();
  }

  // Writes events into the log before ferryd starts (the uplink's backlog), in one transaction. The ingest
  // path is tested elsewhere; here what matters is what the uplink makes of them.
  bool Seed(const std::vector<Event>& events) {
    EventLogOptions o;
    o.path = dir_.path() + "/log";
    o.map_size = size_t{256} << 20;
    auto log = EventLog::Open(o);
    if (!log) {
      ADD_FAILURE() << log.error().ToString();
      return false;
    }
    if (Status st = (*log)->CreateStream("telemetry"); !st) return false;
    Status st = (*log)->Update([&](WriteTxn& txn) -> Status {
      for (const auto& e : events)
        if (auto seq = txn.Append("telemetry", e); !seq) return tl::make_unexpected(seq.error());
      return Ok();
    });
    EXPECT_TRUE(st) << (st ? "" : st.error().ToString());
    return st.has_value();
  }

  double Metric(const std::string& sample) { return MetricValue(HttpGet(metrics_port_, "/metrics"), sample); }
  ChildProcess& ferryd() { return ferryd_; }
  std::string config_path() const { return dir_.path() + "/ferry.toml"; }

 private:
  static MosquittoBroker::Options CentralOptions(std::string extra) {
    MosquittoBroker::Options o;
    o.extra_config = std::move(extra);
    return o;
  }
  TempDir dir_;
  MosquittoBroker local_;
  MosquittoBroker central_;
  ChildProcess ferryd_;
  int metrics_port_ = 0;
};

Event MakeEvent(const std::string& id, const std::string& device, std::string payload) {
  Event e;
  e.id = id;
  e.source = "telemetry/" + device + "/engine";
  e.type = "ferry.mqtt";
  e.subject = device;
  e.datacontenttype = "application/json";
  e.payload = std::move(payload);
  return e;
}
Event Good(int i) {
  return MakeEvent("good-" + std::to_string(i), "dev-" + std::to_string(i % 16), "{\"v\":" + std::to_string(i) + "}");
}

std::vector<std::string> MissingGood(const CentralReceiver& rx, int count) {
  std::vector<std::string> missing;
  for (int i = 0; i < count; ++i)
    if (!rx.Has("good-" + std::to_string(i))) missing.push_back("good-" + std::to_string(i));
  return missing;
}

// 1,000 good events and, in the middle, one whose device-supplied id and device (subject, a topic level) hold
// U+0001. Everything arrives, the bad id percent-encoded, and the link never drops.
TEST(UplinkPoison, AControlCharacterInADeviceIdDoesNotStopTheUplink) {
  PoisonGateway gw;
  CentralReceiver rx("rx-poison");
  const int kGood = 1000;
  std::vector<Event> events;
  for (int i = 0; i < kGood; ++i) {
    if (i == kGood / 2) events.push_back(MakeEvent(std::string("bad\x01id"), std::string("dev\x01" "bad"), "{}"));
    events.push_back(Good(i));
  }
  ASSERT_TRUE(gw.Seed(events));
  ASSERT_TRUE(gw.Start(rx)) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return MissingGood(rx, kGood).empty(); }, 120s, 20ms))
      << MissingGood(rx, kGood).size() << " good events missing at the centre\n" << gw.ferryd().log();
  EXPECT_TRUE(poll_until([&] { return rx.Has("bad%01id"); }, 30s, 20ms))
      << "the bad id did not arrive percent-encoded\n" << gw.ferryd().log();
  EXPECT_EQ(rx.bad(), 0u);
  EXPECT_EQ(gw.Metric("ferry_uplink_reconnects_total{uplink=\"central\"}"), 1) << gw.ferryd().log();
  EXPECT_EQ(gw.ferryd().log().find("link to"), std::string::npos) << "the link went down:\n" << gw.ferryd().log();
  EXPECT_TRUE(gw.ferryd().running());
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// The central broker refuses one message for good (message_size_limit: Mosquitto answers PUBACK 0x95, packet
// too large). It is set aside -- counted, recorded, logged once -- and the 500 good events behind and around
// it arrive.
TEST(UplinkPoison, AMessageTheCentreRefusesIsSetAsideAndTheRestArrives) {
  PoisonGateway gw("message_size_limit 4000\n");
  CentralReceiver rx("rx-refused");
  const int kGood = 500;
  std::vector<Event> events;
  for (int i = 0; i < kGood; ++i) {
    if (i == 100) events.push_back(MakeEvent("too-big", "dev-big", "{\"pad\":\"" + std::string(8000, 'x') + "\"}"));
    events.push_back(Good(i));
  }
  ASSERT_TRUE(gw.Seed(events));
  ASSERT_TRUE(gw.Start(rx)) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return MissingGood(rx, kGood).empty(); }, 120s, 20ms))
      << MissingGood(rx, kGood).size() << " good events missing at the centre\n" << gw.ferryd().log();
  const std::string labels = "{uplink=\"central\",stream=\"telemetry\"}";
  EXPECT_TRUE(poll_until([&] { return gw.Metric("ferry_uplink_poisoned_total" + labels) == 1; }, 30s))
      << gw.ferryd().log();
  EXPECT_FALSE(rx.Has("too-big"));
  EXPECT_NE(gw.ferryd().log().find("set aside (packet_too_large)"), std::string::npos) << gw.ferryd().log();
  EXPECT_TRUE(gw.ferryd().running());
  // ferryctl lists it beside the running ferryd: the uplink, the stream, its seq (the 101st event) and why.
  ChildProcess ctl;
  ASSERT_TRUE(ctl.Start(ToolCommand(FERRY_FERRYCTL_PATH, "FERRY_TEST_FERRYCTL",
                                    {"-c", gw.config_path(), "poisoned", "--json"}),
                        gw.config_path() + ".poisoned.log"));
  ASSERT_EQ(ctl.Wait(30s), 0) << ctl.log();
  EXPECT_NE(ctl.log().find(R"({"uplink":"central","stream":"telemetry","first_seq":101,"last_seq":101,"events":1,)"
                           R"("reason":"packet_too_large"})"),
            std::string::npos)
      << ctl.log();
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

}  // namespace
}  // namespace ferry::test
