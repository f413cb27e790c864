// ferryctl tail: last N, from a seq or a time, JSON, follow driven by the wait hook, damaged records.
#include "ctl_fixture.h"
#include "ferry/stream_iterator.h"
#include "ferry/wire.h"

namespace ferry::ctl::testing {
namespace {

class TailTest : public CtlTest {
 protected:
  int Tail(TailOptions o) { return RunTail(*log_, o, env_, out_, err_); }
  static TailOptions Opts(const std::string& from = "") {
    TailOptions o;
    o.stream = "telemetry";
    o.from = from;
    return o;
  }
  // The seq column of each output line.
  std::vector<uint64_t> Seqs() const {
    std::vector<uint64_t> seqs;
    for (const auto& line : Lines(out_.str())) seqs.push_back(std::stoull(line.substr(0, line.find(' '))));
    return seqs;
  }
  static std::vector<uint64_t> Range(uint64_t first, uint64_t last) {
    std::vector<uint64_t> v;
    for (uint64_t s = first; s <= last; ++s) v.push_back(s);
    return v;
  }
};

TEST_F(TailTest, DefaultIsTheLastTen) {
  Append("telemetry", 25);
  ASSERT_EQ(Tail(Opts()), kExitOk) << err_.str();
  EXPECT_EQ(Seqs(), Range(16, 25));
  const auto lines = Lines(out_.str());
  EXPECT_EQ(lines.back(), "25  " + FormatRfc3339(TimeNs{1'700'000'025'000'000'000}) + "  dev-1/p25  -  p25");
}

TEST_F(TailTest, LastNOfAShortStream) {
  Append("telemetry", 3);
  TailOptions o = Opts();
  o.limit = 5;
  ASSERT_EQ(Tail(o), kExitOk);
  EXPECT_EQ(Seqs(), Range(1, 3));
}

TEST_F(TailTest, LastNOfATableStreamWithGaps) {
  // Subjects a, b repeat after c; compaction keeps only the latest of each: seqs 1, 40, 41.
  ASSERT_TRUE(log_->Append("state", MakeEvent("c1", "c")));
  for (int i = 2; i <= 41; ++i) ASSERT_TRUE(log_->Append("state", MakeEvent("v" + std::to_string(i), i % 2 ? "a" : "b")));
  for (int step = 0; step < 5; ++step) ASSERT_TRUE(log_->CompactionStep(1000));
  ASSERT_EQ(log_->GetStreamStats("state")->count, 3u);
  TailOptions o = Opts();
  o.stream = "state";
  o.limit = 3;
  ASSERT_EQ(Tail(o), kExitOk) << err_.str();
  EXPECT_EQ(Seqs(), (std::vector<uint64_t>{1, 40, 41}));
}

TEST_F(TailTest, FromSeqWithLimit) {
  Append("telemetry", 25);
  TailOptions o = Opts("7");
  ASSERT_EQ(Tail(o), kExitOk);
  EXPECT_EQ(Seqs(), Range(7, 25));
  out_.str("");
  o.limit = 3;
  ASSERT_EQ(Tail(o), kExitOk);
  EXPECT_EQ(Seqs(), Range(7, 9));
}

TEST_F(TailTest, FromTimeStartsAtTheFirstRecordIngestedThen) {
  Append("telemetry", 10);  // seq i ingested at start + i s
  TailOptions o = Opts(FormatRfc3339(TimeNs{1'700'000'006'500'000'000}));
  ASSERT_EQ(Tail(o), kExitOk) << err_.str();
  EXPECT_EQ(Seqs(), Range(7, 10));
  out_.str("");
  o.from = "2023-11-14T22:13:24Z";  // == 1'700'000'004 s: seq 4 itself
  ASSERT_EQ(Tail(o), kExitOk);
  EXPECT_EQ(Seqs(), Range(4, 10));
  out_.str("");
  o.from = "2030-01-01T00:00:00Z";  // after everything
  ASSERT_EQ(Tail(o), kExitOk);
  EXPECT_EQ(out_.str(), "");
}

TEST_F(TailTest, JsonIsCloudEventsThatParse) {
  Event e = MakeEvent("{\"t\":21.5}", "sensor-1");
  e.datacontenttype = "application/json";
  e.headers = {{"site", "north"}};
  e.id.clear();  // no producer id: the uplink names it <gateway>/<stream>/<seq>, and so must tail
  ASSERT_TRUE(log_->Append("telemetry", e));
  Event binary = MakeEvent(std::string("\x00\xff", 2));
  binary.id = "dev-1/bin";
  ASSERT_TRUE(log_->Append("telemetry", binary));
  TailOptions o = Opts("1");
  o.json = true;
  EXPECT_EQ(Tail(o), kExitUsage);  // ids and source name the gateway: without it, say so
  EXPECT_NE(err_.str().find("--gateway"), std::string::npos) << err_.str();
  o.gateway = "gw-1";
  ASSERT_EQ(Tail(o), kExitOk);
  const auto lines = Lines(out_.str());
  ASSERT_EQ(lines.size(), 2u);
  auto first = EventFromJson(lines[0]);
  ASSERT_TRUE(first) << first.error().ToString() << "\n" << lines[0];
  EXPECT_EQ(first->seq, Seq{1});
  // What the uplink sends for the same record, byte for byte: the id it derives, the absolute source.
  auto it = log_->NewIterator("telemetry");
  ASSERT_TRUE(it);
  (*it)->Seek(Seq{1});
  ASSERT_TRUE((*it)->Valid());
  const RecordView& r = (*it)->record();
  EXPECT_EQ(lines[0], EventToJson(CloudEventOf("gw-1", "telemetry", r.seq, r.ingest_time, r.ToEvent())));
  EXPECT_EQ(first->id, "gw-1/telemetry/1");
  EXPECT_EQ(first->source, "ferry://gw-1/telemetry");
  EXPECT_EQ(first->headers, (std::vector<std::pair<std::string, std::string>>{{"ferrytopic", "urn:dev:1"},
                                                                              {"site", "north"}}));
  EXPECT_EQ(first->subject, "sensor-1");
  EXPECT_EQ(first->payload, "{\"t\":21.5}");
  auto second = EventFromJson(lines[1]);
  ASSERT_TRUE(second) << lines[1];
  EXPECT_EQ(second->payload, std::string("\x00\xff", 2));
}

TEST_F(TailTest, LongPayloadsAreTruncatedUnlessFull) {
  ASSERT_TRUE(log_->Append("telemetry", MakeEvent(std::string(200, 'x'))));
  TailOptions o = Opts("1");
  ASSERT_EQ(Tail(o), kExitOk);
  EXPECT_NE(out_.str().find(std::string(80, 'x') + "... (200 bytes)"), std::string::npos) << out_.str();
  out_.str("");
  o.full = true;
  ASSERT_EQ(Tail(o), kExitOk);
  EXPECT_NE(out_.str().find(std::string(200, 'x') + "\n"), std::string::npos);
}

TEST_F(TailTest, FollowPrintsWhatArrivesUntilCount) {
  Append("telemetry", 3);
  int polls = 0;
  env_.wait = [&](std::chrono::milliseconds d) {
    EXPECT_EQ(d, std::chrono::milliseconds(200));
    ++polls;
    if (polls == 2) Append("telemetry", 2, 4);  // nothing new on the first poll
    if (polls == 3) Append("telemetry", 5, 6);
    return true;
  };
  TailOptions o = Opts();
  o.limit = 1;
  o.follow = true;
  o.max_count = 5;  // 1 + 2 + 2 of the last batch
  ASSERT_EQ(Tail(o), kExitOk) << err_.str();
  EXPECT_EQ(Seqs(), (std::vector<uint64_t>{3, 4, 5, 6, 7}));
  EXPECT_EQ(polls, 3);
}

TEST_F(TailTest, FollowStopsAtMaxWaitOrWhenTheWaitSaysStop) {
  Append("telemetry", 1);
  int polls = 0;
  env_.wait = [&](std::chrono::milliseconds d) {
    ++polls;
    clock_.Advance(d);
    return true;
  };
  TailOptions o = Opts();
  o.follow = true;
  o.max_wait = std::chrono::milliseconds(1000);
  ASSERT_EQ(Tail(o), kExitOk);
  EXPECT_EQ(polls, 5);
  EXPECT_EQ(Seqs(), Range(1, 1));

  env_.wait = [&](std::chrono::milliseconds) { return false; };  // SIGINT
  o.max_wait.reset();
  out_.str("");
  ASSERT_EQ(Tail(o), kExitOk);
  EXPECT_EQ(Seqs(), Range(1, 1));
}

TEST_F(TailTest, DamagedRecordNamedByChecksumIsReportedAndSkipped) {
  Append("telemetry", 6);
  log_.reset();
  EditRecord("telemetry", 3, [](std::string* v) { v->back() = static_cast<char>(v->back() ^ 0x10); });
  Reopen();
  ASSERT_EQ(Tail(Opts("1")), kExitRuntime);
  EXPECT_EQ(Seqs(), (std::vector<uint64_t>{1, 2, 4, 5, 6}));
  EXPECT_NE(err_.str().find("at seq 3 (skipped)"), std::string::npos) << err_.str();
}

TEST_F(TailTest, TruncatedRecordIsLocatedAndSkipped) {
  Append("telemetry", 6);
  log_.reset();
  EditRecord("telemetry", 4, [](std::string* v) { v->resize(v->size() - 3); });
  Reopen();
  ASSERT_EQ(Tail(Opts("2")), kExitRuntime);
  EXPECT_EQ(Seqs(), (std::vector<uint64_t>{2, 3, 5, 6}));
  EXPECT_NE(err_.str().find("at seq 4 (skipped)"), std::string::npos) << err_.str();
  // The last-N window counts the damaged record as one of the N.
  out_.str("");
  err_.str("");
  TailOptions o = Opts();
  o.limit = 3;
  ASSERT_EQ(Tail(o), kExitRuntime);
  EXPECT_EQ(Seqs(), (std::vector<uint64_t>{5, 6}));
  EXPECT_NE(err_.str().find("at seq 4"), std::string::npos) << err_.str();
}

TEST_F(TailTest, ErrorsNameTheProblem) {
  TailOptions o = Opts();
  o.stream = "nope";
  EXPECT_EQ(Tail(o), kExitRuntime);
  EXPECT_NE(err_.str().find("unknown stream 'nope'"), std::string::npos) << err_.str();
  err_.str("");
  EXPECT_EQ(Tail(Opts("yesterday")), kExitUsage);
  EXPECT_NE(err_.str().find("--from \"yesterday\""), std::string::npos) << err_.str();
}

}  // namespace
}  // namespace ferry::ctl::testing
