// Retention and keyed compaction, driven by a ManualClock and step() calls: no sleeping.
#include <gtest/gtest.h>

#include <chrono>

#include "ferry/log_maintainer.h"
#include "ferry/stream_iterator.h"
#include "ferry/write_txn.h"
#include "test_util.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using testing::MakeEvent;
using testing::OpenLog;
using testing::TempDir;

constexpr int64_t kNsPerSec = 1'000'000'000;

TEST(RetentionTest, DeletesByAgeInBoundedSteps) {
  TempDir dir;
  ManualClock clock;
  auto log = OpenLog(dir.Sub("log"), &clock);
  StreamOptions o;
  o.max_age_ns = 60 * kNsPerSec;
  ASSERT_TRUE(log->CreateStream("t", o));
  ASSERT_TRUE(log->CreateStream("forever"));
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(log->Append("t", MakeEvent("e")));
    ASSERT_TRUE(log->Append("forever", MakeEvent("e")));
    clock.Advance(1s);
  }
  // Now = t0 + 100 s: records ingested before t0 + 40 s (seqs 1..40) are older than 60 s.
  EXPECT_EQ(*log->RetentionStep(15), 15u);  // bounded
  EXPECT_EQ(*log->RetentionStep(1000), 25u);
  EXPECT_EQ(*log->RetentionStep(1000), 0u);
  auto s = log->GetStreamStats("t");
  EXPECT_EQ(s->count, 60u);
  EXPECT_EQ(s->first_seq, Seq{41});
  EXPECT_EQ(s->evicted[static_cast<int>(EvictReason::kRetentionAge)], 40u);
  EXPECT_EQ(log->GetStreamStats("forever")->count, 100u);
  auto it = log->NewIterator("t");
  (*it)->SeekToFirst();
  ASSERT_TRUE((*it)->Valid());
  EXPECT_EQ((*it)->record().seq, Seq{41});
}

TEST(RetentionTest, DeletesByBytes) {
  TempDir dir;
  ManualClock clock;
  auto log = OpenLog(dir.Sub("log"), &clock);
  StreamOptions o;
  o.max_bytes = 10'000;
  ASSERT_TRUE(log->CreateStream("t", o));
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(log->Append("t", MakeEvent(std::string(500, 'x'))));
  LogMaintainer maint(*log);
  auto r = maint.Step();
  ASSERT_TRUE(r) << r.error().ToString();
  auto s = log->GetStreamStats("t");
  EXPECT_LE(s->bytes, 10'000u);
  EXPECT_GT(s->bytes, 10'000u - 700);
  EXPECT_EQ(s->evicted[static_cast<int>(EvictReason::kRetentionBytes)], 100 - s->count);
  EXPECT_EQ(s->last_seq, Seq{100});
}

TEST(RetentionTest, FileStopsGrowingInSteadyState) {
  TempDir dir;
  ManualClock clock;
  auto log = OpenLog(dir.Sub("log"), &clock);
  StreamOptions o;
  o.max_bytes = 2 << 20;
  ASSERT_TRUE(log->CreateStream("t", o));
  LogMaintainer maint(*log);
  size_t pages_at_warmup = 0;
  for (int round = 0; round < 60; ++round) {
    ASSERT_TRUE(log->Update([&](WriteTxn& t) -> Status {
      for (int i = 0; i < 1000; ++i) {
        if (auto r = t.Append("t", MakeEvent(std::string(200, 'p'))); !r) return tl::unexpected(r.error());
      }
      return Ok();
    }));
    ASSERT_TRUE(maint.Step());
    if (round == 20) pages_at_warmup = log->GetEnvStats()->file_pages;
  }
  const size_t pages_end = log->GetEnvStats()->file_pages;
  // 40 more rounds wrote ~10 MB through a 2 MB window: the file must have reused its freed pages.
  EXPECT_LE(pages_end, pages_at_warmup + pages_at_warmup / 10) << pages_at_warmup << " -> " << pages_end;
}

TEST(CompactionTest, KeepsLatestPerSubjectAndDropsOldTombstones) {
  TempDir dir;
  ManualClock clock;
  auto log = OpenLog(dir.Sub("log"), &clock);
  StreamOptions o;
  o.kind = StreamKind::kTable;
  o.tombstone_grace_ns = 3600 * kNsPerSec;
  ASSERT_TRUE(log->CreateStream("devices", o));
  ASSERT_TRUE(log->Append("devices", MakeEvent("a1", "a")));  // 1
  ASSERT_TRUE(log->Append("devices", MakeEvent("b1", "b")));  // 2
  ASSERT_TRUE(log->Append("devices", MakeEvent("a2", "a")));  // 3
  ASSERT_TRUE(log->Append("devices", MakeEvent("", "b")));    // 4: tombstone for b
  ASSERT_TRUE(log->Append("devices", MakeEvent("c1", "c")));  // 5
  ASSERT_TRUE(log->Append("devices", MakeEvent("a3", "a")));  // 6

  // Bounded: two records per step; the pass resumes where it stopped.
  uint64_t removed = 0;
  for (int i = 0; i < 4; ++i) removed += *log->CompactionStep(2);
  EXPECT_EQ(removed, 3u);  // a1, b1, a2; the tombstone stays within its grace period
  auto seqs = [&] {
    std::vector<uint64_t> out;
    auto it = log->NewIterator("devices");
    for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) out.push_back((*it)->record().seq.value);
    return out;
  };
  EXPECT_EQ(seqs(), (std::vector<uint64_t>{4, 5, 6}));
  clock.Advance(2h);
  removed = 0;
  for (int i = 0; i < 4; ++i) removed += *log->CompactionStep(100);
  EXPECT_EQ(removed, 1u);
  EXPECT_EQ(seqs(), (std::vector<uint64_t>{5, 6}));
  auto s = log->GetStreamStats("devices");
  EXPECT_EQ(s->count, 2u);
  EXPECT_EQ(s->first_seq, Seq{5});
  EXPECT_EQ(s->evicted[static_cast<int>(EvictReason::kCompaction)], 4u);
  // A subject deleted by tombstone can come back.
  EXPECT_EQ(*log->Append("devices", MakeEvent("b2", "b")), Seq{7});
  EXPECT_EQ(*log->CompactionStep(100), 0u);
  EXPECT_EQ(seqs(), (std::vector<uint64_t>{5, 6, 7}));
}

}  // namespace
}  // namespace ferry
