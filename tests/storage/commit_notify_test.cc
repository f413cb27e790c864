// Commit announcements: the writer counts its commits and tells listeners, so readers of the log (uplinks,
// the live tail) sleep until there is something new instead of polling.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <vector>

#include "ferry/group_commit.h"
#include "test_util.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using testing::MakeEvent;
using testing::OpenLog;
using testing::TempDir;

class CommitNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = OpenLog(dir_.Sub("log"), nullptr, size_t{64} << 20, /*sync=*/false);
    ASSERT_NE(log_, nullptr);
    ASSERT_TRUE(log_->CreateStream("in"));
  }
  TempDir dir_;
  std::unique_ptr<EventLog> log_;
};

TEST_F(CommitNotifyTest, EveryCommitCountsOnceAndAnEmptyStepDoesNot) {
  GroupCommitWriter writer(*log_);
  EXPECT_EQ(writer.commit_count(), 0u);
  EXPECT_EQ(writer.Step(), 0u);
  EXPECT_EQ(writer.commit_count(), 0u) << "nothing queued, nothing committed, nobody woken";
  for (int i = 0; i < 10; ++i) writer.Enqueue("in", MakeEvent("e" + std::to_string(i)));
  EXPECT_EQ(writer.commit_count(), 0u) << "queued is not committed";
  writer.Step();
  EXPECT_EQ(writer.commit_count(), 1u) << "ten appends, one commit";
  writer.Submit([](WriteTxn& txn) { return txn.PutState("k", "v"); });
  writer.Step();
  EXPECT_EQ(writer.commit_count(), 2u);
}

TEST_F(CommitNotifyTest, ListenersRunAfterTheCommitAndSeeItsRecords) {
  GroupCommitWriter writer(*log_);
  std::vector<uint64_t> counts;
  std::vector<size_t> visible;
  const uint64_t id = writer.AddCommitListener([&](uint64_t count) {
    counts.push_back(count);
    auto recs = log_->Read("in", Seq{1}, 100);  // a new read transaction already sees the batch
    visible.push_back(recs ? recs->size() : 0);
  });
  writer.Enqueue("in", MakeEvent("a"));
  writer.Step();
  writer.Enqueue("in", MakeEvent("b"));
  writer.Enqueue("in", MakeEvent("c"));
  writer.Step();
  EXPECT_EQ(counts, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(visible, (std::vector<size_t>{1, 3}));
  writer.RemoveCommitListener(id);
  writer.Enqueue("in", MakeEvent("d"));
  writer.Step();
  EXPECT_EQ(counts.size(), 2u) << "a removed listener never runs again";
  writer.RemoveCommitListener(id);  // unknown ids are ignored
  writer.RemoveCommitListener(12345);
}

TEST_F(CommitNotifyTest, AFailedBatchStillAnnounces) {
  GroupCommitWriter writer(*log_);
  auto f = writer.Append("no-such-stream", MakeEvent("x"));
  writer.Step();
  EXPECT_FALSE(f.get());
  EXPECT_EQ(writer.commit_count(), 1u) << "a waiter wakes, looks, finds nothing: cheaper than a missed record";
}

TEST_F(CommitNotifyTest, WaitForCommitAfterReturnsAtOnceForAnOldCountAndAtTheDeadlineOtherwise) {
  GroupCommitWriter writer(*log_);
  writer.Enqueue("in", MakeEvent("a"));
  writer.Step();
  EXPECT_EQ(writer.WaitForCommitAfter(0, std::chrono::steady_clock::now() + 60s), 1u) << "already past `seen`";
  // Nothing new: returns at the deadline (one already passed, so the test does not wait).
  EXPECT_EQ(writer.WaitForCommitAfter(1, std::chrono::steady_clock::now() - 1s), 1u);
}

TEST_F(CommitNotifyTest, AWaiterWakesOnTheBackgroundWritersCommit) {
  GroupCommitWriter writer(*log_);
  writer.Start();
  const uint64_t seen = writer.commit_count();
  auto f = writer.Append("in", MakeEvent("a"));
  // Bounded by the deadline, not a sleep: returns as soon as the writer thread commits.
  const uint64_t now = writer.WaitForCommitAfter(seen, std::chrono::steady_clock::now() + 30s);
  EXPECT_GT(now, seen);
  EXPECT_TRUE(f.get());
  std::atomic<int> calls{0};
  const uint64_t id = writer.AddCommitListener([&](uint64_t) { ++calls; });
  writer.Append("in", MakeEvent("b")).get();  // resolved on the writer thread, before the announcement
  writer.WaitForCommitAfter(now, std::chrono::steady_clock::now() + 30s);
  writer.Stop();
  EXPECT_GE(calls.load(), 1);
  writer.RemoveCommitListener(id);
}

}  // namespace
}  // namespace ferry
