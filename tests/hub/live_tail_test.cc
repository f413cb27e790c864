// The console's live tail over a real log, pulled by hand: what it sends, what it says it skipped, its filter and
// its bounds. How often the server pulls it (the hold) is tested in http_server_test.cc.
#include "ferry/live_tail.h"

#include <gtest/gtest.h>

#include <regex>

#include "ferry/write_txn.h"

#include "../support/temp_dir.h"
#include "../support/test_log.h"

namespace ferry::test {
namespace {

using namespace std::chrono_literals;

class LiveTailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = OpenTestLog(dir_.path(), clock_, {"telemetry"});
    ASSERT_NE(log_, nullptr);
    writer_ = std::make_unique<GroupCommitWriter>(*log_);
  }
  // Appends records n+1..n+count (seq = their number): subject "hot" when the seq is a multiple of 3.
  void Put(int count, size_t payload_size = 20) {
    ASSERT_TRUE(log_->Update([&](WriteTxn& txn) -> Status {
      for (int i = 0; i < count; ++i) {
        Event e;
        e.subject = (put_ + 1) % 3 == 0 ? "hot" : "cold";
        e.datacontenttype = "application/json";
        e.payload = "{\"v\":\"" + std::string(payload_size - 8, 'x') + "\"}";
        auto seq = txn.Append("telemetry", e);
        if (!seq) return tl::make_unexpected(seq.error());
        ++put_;
      }
      return Ok();
    }));
  }
  std::unique_ptr<LiveTail> Tail(Seq from, size_t backlog, std::string filter, LiveTailOptions o) {
    return std::make_unique<LiveTail>(*log_, *writer_, clock_, "gw", "telemetry", from, backlog, std::move(filter), o);
  }
  // The seqs of the records in `sse`, in order.
  static std::vector<uint64_t> Ids(const std::string& sse) {
    std::vector<uint64_t> out;
    std::regex re("id: (\\d+)\nevent: record\ndata: \\{[^\n]*\\}\n\n");
    for (std::sregex_iterator it(sse.begin(), sse.end(), re), end; it != end; ++it)
      out.push_back(std::stoull((*it)[1].str()));
    return out;
  }
  static std::vector<uint64_t> Seqs(uint64_t first, uint64_t last, uint64_t step = 1) {
    std::vector<uint64_t> v;
    for (uint64_t s = first; s <= last; s += step) v.push_back(s);
    return v;
  }

  TempDir dir_{"ferry-live-tail"};
  ManualClock clock_;
  std::unique_ptr<EventLog> log_;
  std::unique_ptr<GroupCommitWriter> writer_;
  int put_ = 0;
};

TEST_F(LiveTailTest, SendsAtMostItsLimitPerPullAndSaysWhatItSkipped) {
  Put(20);
  LiveTailOptions o;
  o.max_records = 5;
  auto tail = Tail(Seq{1}, 3, "", o);
  std::string out;
  ASSERT_TRUE(tail->Pull(out, false));
  // The newest five; the fifteen before them are said skipped, first.
  EXPECT_EQ(out.rfind("event: skipped\ndata: {\"from\":1,\"to\":15}\n\n", 0), 0u) << out;
  EXPECT_EQ(Ids(out), Seqs(16, 20)) << out;
  EXPECT_NE(out.find("\"subject\":\"cold\""), std::string::npos) << out;  // CloudEvents JSON, as uplinks send
  EXPECT_EQ(tail->next(), Seq{21});

  out.clear();
  ASSERT_TRUE(tail->Pull(out, false));  // nothing new: nothing sent
  EXPECT_EQ(out, "");
  ASSERT_TRUE(tail->Pull(out, true));
  EXPECT_EQ(out, ": keepalive\n\n");

  Put(4);  // within the limit: every record, nothing skipped
  out.clear();
  ASSERT_TRUE(tail->Pull(out, false));
  EXPECT_EQ(out.find("skipped"), std::string::npos) << out;
  EXPECT_EQ(Ids(out), Seqs(21, 24));
}

TEST_F(LiveTailTest, TheFirstPullSendsTheBacklogAskedFor) {
  Put(30);
  LiveTailOptions o;
  o.max_records = 5;
  auto tail = Tail(Seq{11}, 20, "", o);  // n=20: seqs 11..30
  std::string out;
  ASSERT_TRUE(tail->Pull(out, false));
  EXPECT_EQ(out.find("skipped"), std::string::npos) << out;
  EXPECT_EQ(Ids(out), Seqs(11, 30));
  Put(12);  // later pulls: the limit again
  out.clear();
  ASSERT_TRUE(tail->Pull(out, false));
  EXPECT_NE(out.find("data: {\"from\":31,\"to\":37}"), std::string::npos) << out;
  EXPECT_EQ(Ids(out), Seqs(38, 42));
}

TEST_F(LiveTailTest, FilterExaminesTheNewestAndSendsTheNewestMatches) {
  Put(30);  // "hot" at 3, 6, ..., 30
  LiveTailOptions o;
  o.max_records = 2;
  o.max_scan = 10;
  auto tail = Tail(Seq{1}, 0, "hot", o);
  std::string out;
  ASSERT_TRUE(tail->Pull(out, false));
  // Examined 21..30 (hot: 21, 24, 27, 30); sent the newest two; 1..24 said skipped.
  EXPECT_EQ(out.rfind("event: skipped\ndata: {\"from\":1,\"to\":24}\n\n", 0), 0u) << out;
  EXPECT_EQ(Ids(out), (std::vector<uint64_t>{27, 30}));
  EXPECT_EQ(tail->next(), Seq{31});
  Put(6);  // 31..36: hot at 33 and 36, within the limit
  out.clear();
  ASSERT_TRUE(tail->Pull(out, false));
  EXPECT_EQ(out.find("skipped"), std::string::npos) << out;
  EXPECT_EQ(Ids(out), (std::vector<uint64_t>{33, 36}));
}

TEST_F(LiveTailTest, APullReadsAtMostMaxBytesOfPayloadAndTheRestComesNext) {
  Put(5, 100);
  LiveTailOptions o;
  o.max_bytes = 250;
  auto tail = Tail(Seq{1}, 5, "", o);
  std::string out;
  ASSERT_TRUE(tail->Pull(out, false));
  EXPECT_EQ(Ids(out), Seqs(1, 2));
  out.clear();
  ASSERT_TRUE(tail->Pull(out, false));
  EXPECT_EQ(Ids(out), Seqs(3, 4));
  out.clear();
  ASSERT_TRUE(tail->Pull(out, false));
  EXPECT_EQ(Ids(out), Seqs(5, 5));
}

TEST_F(LiveTailTest, AStreamThatCannotBeReadEndsTheTailWithAnError) {
  auto tail = std::make_unique<LiveTail>(*log_, *writer_, clock_, "gw", "nope", Seq{1}, 10, "", LiveTailOptions{});
  std::string out;
  EXPECT_FALSE(tail->Pull(out, false));
  EXPECT_EQ(out.rfind("event: error\ndata: ", 0), 0u) << out;
}

}  // namespace
}  // namespace ferry::test
