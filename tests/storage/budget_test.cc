// The disk budget: filling the map under each policy, eviction order by priority, counts per reason.
#include <gtest/gtest.h>

#include "ferry/group_commit.h"
#include "ferry/log_maintainer.h"
#include "ferry/stream_iterator.h"
#include "ferry/write_txn.h"
#include "test_util.h"

namespace ferry {
namespace {

using testing::MakeEvent;
using testing::OpenLog;
using testing::TempDir;

constexpr size_t kMap = size_t{2} << 20;  // small map: tests fill it many times over in well under a second

uint64_t Budget(EventLog& log, const char* stream) {
  return log.GetStreamStats(stream)->evicted[static_cast<int>(EvictReason::kBudget)];
}

// Every record in the stream decodes (CRC verified) and seqs only grow.
void ExpectReadable(EventLog& log, const char* stream) {
  auto it = log.NewIterator(stream);
  ASSERT_TRUE(it);
  uint64_t n = 0, prev = 0;
  for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) {
    EXPECT_GT((*it)->record().seq.value, prev);
    prev = (*it)->record().seq.value;
    ++n;
  }
  EXPECT_TRUE((*it)->status()) << (*it)->status().error().ToString();
  EXPECT_EQ(n, log.GetStreamStats(stream)->count);
}

TEST(BudgetTest, DropOldestFillsTheMapManyTimesWithoutAFailure) {
  TempDir dir;
  auto log = OpenLog(dir.Sub("log"), nullptr, kMap, /*sync=*/false);
  ASSERT_TRUE(log->CreateStream("s"));
  GroupCommitOptions go;
  go.max_batch_events = 200;
  GroupCommitWriter writer(*log, go);
  constexpr int kEvents = 30'000;  // ~9 MB of records through a 2 MiB map
  for (int i = 0; i < kEvents; ++i) {
    if (i % 2 == 0) {
      writer.Enqueue("s", MakeEvent(std::string(200, 'g')));
      if (i % 400 == 0) writer.Step();
    } else {
      auto r = log->Append("s", MakeEvent(std::string(200, 'd')));  // the direct path, same policy
      ASSERT_TRUE(r) << i << ": " << r.error().ToString();
    }
  }
  while (writer.Step() > 0) {
  }
  EXPECT_EQ(writer.stats().failed, 0u);
  auto s = log->GetStreamStats("s");
  EXPECT_EQ(s->last_seq, Seq{kEvents});
  EXPECT_GT(Budget(*log, "s"), 0u);
  EXPECT_EQ(s->count + Budget(*log, "s"), uint64_t{kEvents});
  auto env = log->GetEnvStats();
  EXPECT_LT(env->used_bytes, env->map_size);
  ExpectReadable(*log, "s");
  log.reset();
  log = OpenLog(dir.Sub("log"), nullptr, kMap, /*sync=*/false);
  ASSERT_NE(log, nullptr);
  ExpectReadable(*log, "s");
}

TEST(BudgetTest, RejectNewRefusesWithFullAndKeepsItsData) {
  TempDir dir;
  auto log = OpenLog(dir.Sub("log"), nullptr, kMap, /*sync=*/false);
  ASSERT_TRUE(log->CreateStream("audit", StreamOptions{StreamKind::kLog, FullPolicy::kRejectNew, 0}));
  uint64_t accepted = 0;
  Error last{ErrorCode::kIoError, ""};
  for (int i = 0; i < 20'000; ++i) {
    auto r = log->Append("audit", MakeEvent(std::string(200, 'a')));
    if (!r) {
      last = r.error();
      break;
    }
    ++accepted;
  }
  ASSERT_EQ(last.code, ErrorCode::kFull) << last.ToString();
  EXPECT_GT(accepted, 3000u);
  // Still refused (no crash, no eviction), via the group-commit path too.
  GroupCommitWriter writer(*log);
  auto f = writer.Append("audit", MakeEvent("x"));
  writer.Step();
  EXPECT_EQ(f.get().error().code, ErrorCode::kFull);
  auto s = log->GetStreamStats("audit");
  EXPECT_EQ(s->count, accepted);
  EXPECT_EQ(Budget(*log, "audit"), 0u);
  ExpectReadable(*log, "audit");
  // Cursors and state can still be written: they are tiny and not appends.
  EXPECT_TRUE(log->Update([](WriteTxn& t) { return t.SetCursor("audit", "uplink", Seq{5}); }));
  log.reset();
  log = OpenLog(dir.Sub("log"), nullptr, kMap, /*sync=*/false);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->GetStreamStats("audit")->count, accepted);
}

TEST(BudgetTest, LowestPriorityIsEvictedFirstAndNeverForALowerWriter) {
  TempDir dir;
  auto log = OpenLog(dir.Sub("log"), nullptr, kMap, /*sync=*/false);
  ASSERT_TRUE(log->CreateStream("debug", StreamOptions{StreamKind::kLog, FullPolicy::kDropOldest, 0}));
  ASSERT_TRUE(log->CreateStream("telemetry", StreamOptions{StreamKind::kLog, FullPolicy::kDropOldest, 5}));
  ASSERT_TRUE(log->CreateStream("alarms", StreamOptions{StreamKind::kLog, FullPolicy::kRejectNew, 10}));
  const std::string payload(200, 'p');
  for (int i = 0; i < 1500; ++i) ASSERT_TRUE(log->Append("debug", MakeEvent(payload)));
  // telemetry fills the rest: debug must be emptied before telemetry loses anything.
  for (int i = 0; i < 20'000 && Budget(*log, "telemetry") == 0; ++i) {
    ASSERT_TRUE(log->Append("telemetry", MakeEvent(payload)));
    if (Budget(*log, "debug") < 1500) {
      EXPECT_EQ(Budget(*log, "telemetry"), 0u);
    }
  }
  ASSERT_GT(Budget(*log, "telemetry"), 0u);
  EXPECT_EQ(log->GetStreamStats("debug")->count, 0u);
  EXPECT_EQ(Budget(*log, "debug"), 1500u);
  // alarms (priority 10, reject_new) evicts telemetry until none is left, then is refused itself.
  uint64_t alarms = 0;
  for (int i = 0; i < 20'000; ++i) {
    auto a = log->Append("alarms", MakeEvent(payload));
    if (!a) {
      EXPECT_EQ(a.error().code, ErrorCode::kFull);
      break;
    }
    ++alarms;
  }
  EXPECT_EQ(log->GetStreamStats("telemetry")->count, 0u);
  EXPECT_EQ(log->GetStreamStats("alarms")->count, alarms);
  EXPECT_EQ(Budget(*log, "alarms"), 0u);
  // The map is now at high water with alarms only: debug (priority 0) and telemetry (5) may not evict a
  // more important stream, so they are refused rather than evicting alarms.
  for (const char* s : {"debug", "telemetry"}) {
    auto r = log->Append(s, MakeEvent(payload));
    ASSERT_FALSE(r) << s;
    EXPECT_EQ(r.error().code, ErrorCode::kFull);
  }
  EXPECT_EQ(log->GetStreamStats("alarms")->count, alarms);
  for (const char* s : {"debug", "telemetry", "alarms"}) ExpectReadable(*log, s);
}

TEST(BudgetTest, MapFullInsideATransactionIsRetriedAfterEviction) {
  TempDir dir;
  auto log = OpenLog(dir.Sub("log"), nullptr, kMap, /*sync=*/false);
  ASSERT_TRUE(log->CreateStream("s"));
  // 1000 records (~300 KB) per transaction: more than the 10% reserve of a 2 MiB map, so a transaction
  // that starts just below high water runs into MDB_MAP_FULL half-way. Update() must evict and rerun it.
  for (int round = 0; round < 40; ++round) {
    auto st = log->Update([](WriteTxn& t) -> Status {
      for (int i = 0; i < 1000; ++i) {
        if (auto r = t.Append("s", MakeEvent(std::string(200, 'b'))); !r) return tl::unexpected(r.error());
      }
      return Ok();
    });
    ASSERT_TRUE(st) << round << ": " << st.error().ToString();
  }
  EXPECT_EQ(log->GetStreamStats("s")->last_seq, Seq{40'000});
  ExpectReadable(*log, "s");

  // The group-commit writer clamps its batches to the reserve, so the same load never fails there either.
  GroupCommitOptions go;
  go.max_batch_events = 100'000;
  go.max_batch_bytes = 64 << 20;
  GroupCommitWriter writer(*log, go);
  std::vector<std::future<Result<Seq>>> fs;
  for (int i = 0; i < 20'000; ++i) fs.push_back(writer.Append("s", MakeEvent(std::string(200, 'g'))));
  while (writer.Step() > 0) {
  }
  for (auto& f : fs) {
    auto r = f.get();
    ASSERT_TRUE(r) << r.error().ToString();
  }
  EXPECT_GT(writer.stats().commits, 20u);
  ExpectReadable(*log, "s");
  LogMaintainer maint(*log);
  auto m = maint.Step();
  ASSERT_TRUE(m) << m.error().ToString();
  EXPECT_TRUE(m->within_budget);
}

}  // namespace
}  // namespace ferry
