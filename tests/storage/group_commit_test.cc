// Group commit: batching, durability notification, nested closures, and a multi-producer run.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "ferry/group_commit.h"
#include "ferry/log_maintainer.h"
#include "ferry/stream_iterator.h"
#include "test_util.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using testing::MakeEvent;
using testing::OpenLog;
using testing::TempDir;

class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = OpenLog(dir_.Sub("log"), &clock_);
    ASSERT_NE(log_, nullptr);
    ASSERT_TRUE(log_->CreateStream("in"));
    ASSERT_TRUE(log_->CreateStream("out"));
  }
  TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<EventLog> log_;
};

TEST_F(GroupCommitTest, StepCommitsEverythingQueuedInOneTransaction) {
  GroupCommitWriter writer(*log_);
  std::vector<std::future<Result<Seq>>> futures;
  for (int i = 0; i < 100; ++i) futures.push_back(writer.Append("in", MakeEvent("e" + std::to_string(i))));
  // Nothing is durable (or acknowledged) before the commit.
  EXPECT_EQ(futures[0].wait_for(0s), std::future_status::timeout);
  EXPECT_EQ(log_->GetStreamStats("in")->count, 0u);
  EXPECT_EQ(writer.Step(), 100u);
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(futures[i].wait_for(0s), std::future_status::ready);
    auto r = futures[i].get();
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, Seq{static_cast<uint64_t>(i + 1)});
  }
  EXPECT_EQ(writer.stats().commits, 1u);
  EXPECT_EQ(writer.stats().events, 100u);
  EXPECT_EQ(writer.Step(), 0u);
}

TEST_F(GroupCommitTest, BatchesAreBoundedByCountAndBytes) {
  GroupCommitOptions o;
  o.max_batch_events = 10;
  o.max_batch_bytes = 1 << 20;
  GroupCommitWriter writer(*log_, o);
  for (int i = 0; i < 25; ++i) writer.Enqueue("in", MakeEvent("e"));
  EXPECT_EQ(writer.Step(), 10u);
  EXPECT_EQ(writer.Step(), 10u);
  EXPECT_EQ(writer.Step(), 5u);
  EXPECT_EQ(log_->GetStreamStats("in")->count, 25u);

  GroupCommitOptions by_bytes;
  by_bytes.max_batch_bytes = 3000;
  GroupCommitWriter writer2(*log_, by_bytes);
  for (int i = 0; i < 10; ++i) writer2.Enqueue("in", MakeEvent(std::string(1000, 'x')));
  EXPECT_EQ(writer2.Step(), 2u);  // ~1100 accounted bytes each
  writer2.Enqueue("in", MakeEvent(std::string(10000, 'x')));  // larger than a batch: still goes alone
  size_t total = 0;
  while (size_t n = writer2.Step()) total += n;
  EXPECT_EQ(total, 9u);
}

TEST_F(GroupCommitTest, FailuresAreReportedPerItem) {
  GroupCommitWriter writer(*log_);
  auto ok1 = writer.Append("in", MakeEvent("a"));
  auto missing = writer.Append("nope", MakeEvent("b"));
  std::atomic<int> callbacks{0};
  Result<Seq> cb_result = Seq{};
  writer.Append("in", MakeEvent("c"), [&](Result<Seq> r) {
    cb_result = r;
    ++callbacks;
  });
  writer.Enqueue("nope", MakeEvent("d"));
  writer.Step();
  EXPECT_EQ(*ok1.get(), Seq{1});
  EXPECT_EQ(missing.get().error().code, ErrorCode::kNotFound);
  EXPECT_EQ(callbacks.load(), 1);
  EXPECT_EQ(*cb_result, Seq{2});
  EXPECT_EQ(writer.stats().failed, 2u);
}

TEST_F(GroupCommitTest, SubmittedClosuresCommitWithTheBatchOrRollBackAlone) {
  GroupCommitWriter writer(*log_);
  auto a = writer.Append("in", MakeEvent("a"));
  auto good = writer.Submit([](WriteTxn& t) -> Status {
    if (auto r = t.Append("out", MakeEvent("derived")); !r) return tl::unexpected(r.error());
    if (auto s = t.PutState("w", "1"); !s) return s;
    return t.SetCursor("in", "pipe", Seq{2});
  });
  auto bad = writer.Submit([](WriteTxn& t) -> Status {
    if (auto r = t.Append("out", MakeEvent("lost")); !r) return tl::unexpected(r.error());
    (void)t.PutState("w", "2");
    return InvalidArgument("closure fails");
  });
  auto b = writer.Append("in", MakeEvent("b"));
  writer.Step();
  EXPECT_EQ(writer.stats().commits, 1u);
  EXPECT_TRUE(good.get());
  EXPECT_EQ(bad.get().error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(*a.get(), Seq{1});
  EXPECT_EQ(*b.get(), Seq{2});
  EXPECT_EQ(log_->GetStreamStats("out")->count, 1u);
  EXPECT_EQ(*log_->GetState("w"), "1");
  EXPECT_EQ(*log_->GetCursor("in", "pipe"), Seq{2});
  auto recs = log_->Read("out", Seq{1}, 10);
  ASSERT_TRUE(recs);
  ASSERT_EQ(recs->size(), 1u);
  EXPECT_EQ((*recs)[0].event.payload, "derived");
}

TEST_F(GroupCommitTest, ManyProducersWithWriterThread) {
  GroupCommitOptions o;
  o.max_batch_events = 500;
  GroupCommitWriter writer(*log_, o);
  writer.Start();
  constexpr int kThreads = 4, kPerThread = 2000;
  std::vector<std::thread> producers;
  std::mutex mu;
  std::set<uint64_t> seqs;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      std::vector<std::future<Result<Seq>>> fs;
      for (int i = 0; i < kPerThread; ++i) {
        fs.push_back(writer.Append("in", MakeEvent(std::to_string(t) + ":" + std::to_string(i))));
      }
      for (auto& f : fs) {
        auto r = f.get();
        ASSERT_TRUE(r);
        std::lock_guard<std::mutex> lock(mu);
        seqs.insert(r->value);
      }
    });
  }
  for (auto& p : producers) p.join();
  writer.Stop();
  EXPECT_EQ(seqs.size(), size_t{kThreads * kPerThread});
  EXPECT_EQ(*seqs.begin(), 1u);
  EXPECT_EQ(*seqs.rbegin(), uint64_t{kThreads * kPerThread});
  EXPECT_LT(writer.stats().commits, uint64_t{kThreads * kPerThread});
  auto s = log_->GetStreamStats("in");
  EXPECT_EQ(s->count, uint64_t{kThreads * kPerThread});
}

TEST_F(GroupCommitTest, ReadersIterateWhileTheWriterAndMaintainerRun) {
  StreamOptions o;
  o.max_bytes = 200'000;  // retention deletes the head while readers iterate
  ASSERT_TRUE(log_->CreateStream("in", o));
  GroupCommitWriter writer(*log_);
  writer.Start();
  MaintenanceOptions mo;
  mo.interval = 1ms;
  LogMaintainer maint(*log_, mo);
  maint.Start();
  std::atomic<bool> done{false};
  std::atomic<uint64_t> reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!done) {
        auto it = log_->NewIterator("in");
        ASSERT_TRUE(it);
        uint64_t prev = 0;
        for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) {
          ASSERT_GT((*it)->record().seq.value, prev);  // a consistent snapshot: ordered, verified
          prev = (*it)->record().seq.value;
          ++reads;
        }
        ASSERT_TRUE((*it)->status()) << (*it)->status().error().ToString();
      }
    });
  }
  std::vector<std::future<Result<Seq>>> fs;
  for (int i = 0; i < 20'000; ++i) fs.push_back(writer.Append("in", MakeEvent(std::string(100, 'r'))));
  for (auto& f : fs) ASSERT_TRUE(f.get());
  done = true;
  for (auto& t : readers) t.join();
  maint.Stop();
  writer.Stop();
  EXPECT_GT(reads.load(), 0u);
  auto s = log_->GetStreamStats("in");
  EXPECT_EQ(s->last_seq, Seq{20'000});
  EXPECT_EQ(s->count + s->evicted[static_cast<int>(EvictReason::kRetentionBytes)], 20'000u);
}

TEST_F(GroupCommitTest, LingerStillCommitsASmallBatch) {
  GroupCommitOptions o;
  o.max_linger = 2ms;  // a lone event waits at most this long for company
  GroupCommitWriter writer(*log_, o);
  writer.Start();
  auto f = writer.Append("in", MakeEvent("lonely"));
  auto r = f.get();  // no sleep: the future resolves after the linger and the commit
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, Seq{1});
  writer.Stop();
  EXPECT_EQ(writer.stats().commits, 1u);
}

// CommitSoon: a producer that knows nothing more will come before this commit (the listener, when every
// waiting device's window is full) ends the linger at once. With a 10-minute linger, only the hint can
// commit the batch within the test's deadline.
TEST_F(GroupCommitTest, CommitSoonEndsTheLinger) {
  GroupCommitOptions o;
  o.max_linger = std::chrono::minutes(10);
  GroupCommitWriter writer(*log_, o);
  writer.Start();
  auto f = writer.Append("in", MakeEvent("waiting"));
  writer.CommitSoon();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready) << "still lingering";
  EXPECT_EQ(*f.get(), Seq{1});
  // The hint is spent: the next append lingers again (stopped here, which commits it).
  auto g = writer.Append("in", MakeEvent("next"));
  EXPECT_EQ(g.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  writer.Stop();
  EXPECT_EQ(*g.get(), Seq{2});
}

TEST_F(GroupCommitTest, StopCommitsWhatIsQueued) {
  auto writer = std::make_unique<GroupCommitWriter>(*log_);
  for (int i = 0; i < 7; ++i) writer->Enqueue("in", MakeEvent("e"));
  writer.reset();
  EXPECT_EQ(log_->GetStreamStats("in")->count, 7u);
}

}  // namespace
}  // namespace ferry
