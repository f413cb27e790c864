// ferryctl replay: the request key and its value, clamping, confirmation, applied vs queued, and refusals.
#include "ctl_fixture.h"
#include "ferry/uplink_mqtt.h"
#include "ferry/wire.h"

namespace ferry::ctl::testing {
namespace {

class ReplayTest : public CtlTest {
 protected:
  void SetUp() override {
    CtlTest::SetUp();
    Append("telemetry", 20);
    SetCursor("telemetry", UplinkCursorName("central"), 18);
    // No ferryd: the request stays; each poll advances the manual clock.
    env_.wait = [this](std::chrono::milliseconds d) {
      ++polls_;
      clock_.Advance(d);
      return true;
    };
  }
  static ReplayOptions Opts(const std::string& from, const std::string& uplink = "central",
                            const std::string& stream = "telemetry") {
    ReplayOptions o;
    o.uplink = uplink;
    o.stream = stream;
    o.from = from;
    o.yes = true;
    return o;
  }
  int Replay(const ReplayOptions& o, const std::string& answer = "") {
    std::istringstream in(answer);
    return RunReplay(*log_, config_, o, env_, in, out_, err_);
  }
  std::string Request(const std::string& uplink = "central", const std::string& stream = "telemetry") {
    auto v = log_->GetState(ReplayRequestKey(uplink, stream));
    return v ? *v : "(absent)";
  }
  int polls_ = 0;
};

TEST_F(ReplayTest, WritesTheRequestAndReportsQueuedWithoutFerryd) {
  ASSERT_EQ(Replay(Opts("5")), kExitOk) << err_.str();
  EXPECT_EQ(Request(), "5");
  EXPECT_EQ(log_->GetState("replay:central:telemetry").value_or(""), "5");  // the documented key
  EXPECT_EQ(*log_->GetCursor("telemetry", UplinkCursorName("central")), Seq{18});  // never written by ferryctl
  const std::string text = out_.str();
  EXPECT_NE(text.find("cursor 18 -> 5, 13 events will be re-sent"), std::string::npos) << text;
  EXPECT_NE(text.find("queued: ferryd will apply it when it runs"), std::string::npos) << text;
  EXPECT_EQ(polls_, 50);  // 5 s in 100 ms polls
}

TEST_F(ReplayTest, AppliedWhenFerrydTakesTheRequest) {
  env_.wait = [this](std::chrono::milliseconds d) {
    clock_.Advance(d);
    if (++polls_ == 3) {  // what the uplink does: move the cursor and delete the key in one transaction
      const std::string key = ReplayRequestKey("central", "telemetry");
      EXPECT_TRUE(log_->Update([&](WriteTxn& txn) -> Status {
        auto v = txn.GetState(key);
        if (!v) return tl::unexpected(v.error());
        if (Status st = txn.SetCursor("telemetry", UplinkCursorName("central"), Seq{std::stoull(*v)}); !st) return st;
        return txn.DeleteState(key);
      }));
    }
    return true;
  };
  ASSERT_EQ(Replay(Opts("10")), kExitOk) << err_.str();
  EXPECT_NE(out_.str().find("applied"), std::string::npos) << out_.str();
  EXPECT_EQ(polls_, 3);
  EXPECT_EQ(*log_->GetCursor("telemetry", UplinkCursorName("central")), Seq{10});
}

TEST_F(ReplayTest, FromTimeResolvesToTheFirstRecordIngestedThen) {
  // seq i was ingested at 1'700'000'000 + i s.
  ASSERT_EQ(Replay(Opts(FormatRfc3339(TimeNs{1'700'000'011'500'000'000}))), kExitOk) << err_.str();
  EXPECT_EQ(Request(), "12");
  EXPECT_NE(out_.str().find("6 events will be re-sent"), std::string::npos) << out_.str();
}

TEST_F(ReplayTest, SeqBeforeTheFirstRecordIsClamped) {
  StreamOptions so;
  so.max_age_ns = int64_t{10} * 1'000'000'000;
  ASSERT_TRUE(log_->CreateStream("telemetry", so));
  ASSERT_TRUE(log_->RetentionStep(1000));  // now = +20 s: seqs 1..9 are older than 10 s
  const Seq first = log_->GetStreamStats("telemetry")->first_seq;
  ASSERT_GT(first, Seq{1});
  ASSERT_EQ(Replay(Opts("1")), kExitOk) << err_.str();
  EXPECT_EQ(Request(), std::to_string(first.value));
  EXPECT_NE(out_.str().find("note: seq 1 is before the first record"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find(std::to_string(18 - first.value) + " events will be re-sent"), std::string::npos)
      << out_.str();
}

TEST_F(ReplayTest, ZeroWaitChecksOnceAndAPendingRequestIsReplaced) {
  ReplayOptions o = Opts("3");
  o.wait = std::chrono::nanoseconds::zero();
  ASSERT_EQ(Replay(o), kExitOk);
  EXPECT_EQ(polls_, 0);
  o.from = "4";
  ASSERT_EQ(Replay(o), kExitOk);
  EXPECT_EQ(Request(), "4");
  EXPECT_NE(out_.str().find("replaces a request not yet applied (seq 3)"), std::string::npos) << out_.str();
}

TEST_F(ReplayTest, AsksForConfirmationUnlessYes) {
  ReplayOptions o = Opts("5");
  o.yes = false;
  EXPECT_EQ(Replay(o, "n\n"), kExitRuntime);
  EXPECT_EQ(Request(), "(absent)");
  EXPECT_NE(err_.str().find("not confirmed"), std::string::npos) << err_.str();
  EXPECT_EQ(Replay(o, ""), kExitRuntime);  // EOF: no answer is no
  EXPECT_EQ(Request(), "(absent)");
  o.wait = std::chrono::nanoseconds::zero();
  EXPECT_EQ(Replay(o, "y\n"), kExitOk);
  EXPECT_EQ(Request(), "5");
}

TEST_F(ReplayTest, UnknownUplinkOrStreamIsARuntimeError) {
  EXPECT_EQ(Replay(Opts("5", "nowhere")), kExitRuntime);
  EXPECT_NE(err_.str().find("unknown uplink 'nowhere'"), std::string::npos) << err_.str();
  EXPECT_NE(err_.str().find("declares central, backup"), std::string::npos) << err_.str();
  err_.str("");
  // backup forwards every declared stream, but "ghost" is in neither the config nor the log.
  Config config = config_;
  config.streams.push_back(StreamConfig{});
  config.streams.back().name = "ghost";
  std::istringstream in;
  EXPECT_EQ(RunReplay(*log_, config, Opts("5", "backup", "ghost"), env_, in, out_, err_), kExitRuntime);
  EXPECT_NE(err_.str().find("unknown stream 'ghost'"), std::string::npos) << err_.str();
  err_.str("");
  EXPECT_EQ(Replay(Opts("5", "central", "state")), kExitRuntime);  // central forwards telemetry only
  EXPECT_NE(err_.str().find("does not forward stream 'state'"), std::string::npos) << err_.str();
  EXPECT_EQ(Request("backup", "ghost"), "(absent)");
}

TEST_F(ReplayTest, RefusesToSkipForwardAndMalformedFrom) {
  EXPECT_EQ(Replay(Opts("19")), kExitRuntime);
  EXPECT_NE(err_.str().find("a replay only rewinds (1 unsent events would be skipped)"), std::string::npos)
      << err_.str();
  EXPECT_EQ(Request(), "(absent)");
  err_.str("");
  EXPECT_EQ(Replay(Opts("last tuesday")), kExitUsage);
  EXPECT_EQ(Request(), "(absent)");
  // A stream never forwarded is sent from its first record anyway: rewinding to it re-sends nothing.
  ReplayOptions o = Opts("1", "backup");
  o.wait = std::chrono::nanoseconds::zero();
  EXPECT_EQ(Replay(o), kExitOk) << err_.str();
  EXPECT_NE(out_.str().find("cursor (none) -> 1, 0 events"), std::string::npos) << out_.str();
}

}  // namespace
}  // namespace ferry::ctl::testing

namespace ferry::ctl::testing {
namespace {

// ferryctl poisoned lists what uplinks recorded under PoisonedStateKey, as a table or JSON lines, and ignores
// other uplink/ state keys.
TEST_F(CtlTest, PoisonedListsWhatUplinksSetAside) {
  std::ostringstream out, err;
  ASSERT_EQ(RunPoisoned(*log_, {}, out, err), kExitOk) << err.str();
  EXPECT_EQ(out.str(), "no events set aside\n");
  ASSERT_TRUE(log_->Update([](WriteTxn& txn) -> Status {
    if (Status st = txn.PutState(PoisonedStateKey("central", "telemetry", Seq{101}), "101-101 packet_too_large"); !st)
      return st;
    if (Status st = txn.PutState(PoisonedStateKey("central", "telemetry", Seq{7}), "7-9 refused_by_client"); !st)
      return st;
    if (Status st = txn.PutState(PoisonedStateKey("backup", "state", Seq{3}), "3-3 topic_name_invalid"); !st)
      return st;
    return txn.PutState("uplink/central/other", "x");
  }));
  out.str("");
  ASSERT_EQ(RunPoisoned(*log_, {}, out, err), kExitOk) << err.str();
  EXPECT_EQ(out.str(),
            "UPLINK   STREAM     SEQS     EVENTS  REASON\n"
            "backup   state      3-3      1       topic_name_invalid\n"
            "central  telemetry  7-9      3       refused_by_client\n"
            "central  telemetry  101-101  1       packet_too_large\n"
            "(the records stay in the log until retention: ferryctl tail STREAM --from FIRST -n EVENTS --full)\n");
  out.str("");
  PoisonedOptions o;
  o.uplink = "central";
  o.json = true;
  ASSERT_EQ(RunPoisoned(*log_, o, out, err), kExitOk);
  EXPECT_EQ(out.str(),
            R"({"uplink":"central","stream":"telemetry","first_seq":7,"last_seq":9,"events":3,"reason":"refused_by_client"})"
            "\n"
            R"({"uplink":"central","stream":"telemetry","first_seq":101,"last_seq":101,"events":1,"reason":"packet_too_large"})"
            "\n");
  o.uplink = "nobody";
  o.json = false;
  out.str("");
  ASSERT_EQ(RunPoisoned(*log_, o, out, err), kExitOk);
  EXPECT_EQ(out.str(), "no events set aside by uplink 'nobody'\n");
}

}  // namespace
}  // namespace ferry::ctl::testing
