// API tests: streams, appends, reads, cursors, state, the atomic transaction, stats, read-only processes.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>

#include "ferry/event_log.h"
#include "ferry/stream_iterator.h"
#include "ferry/write_txn.h"
#include "test_util.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using testing::MakeEvent;
using testing::OpenLog;
using testing::TempDir;

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = OpenLog(dir_.Sub("log"), &clock_);
    ASSERT_NE(log_, nullptr);
    ASSERT_TRUE(log_->CreateStream("telemetry"));
  }
  TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<EventLog> log_;
};

TEST_F(EventLogTest, AppendAssignsConsecutiveSeqsAndReadsBack) {
  for (int i = 1; i <= 100; ++i) {
    auto seq = log_->Append("telemetry", MakeEvent("p" + std::to_string(i)));
    ASSERT_TRUE(seq) << seq.error().ToString();
    EXPECT_EQ(*seq, Seq{static_cast<uint64_t>(i)});
  }
  auto it = log_->NewIterator("telemetry");
  ASSERT_TRUE(it);
  int n = 0;
  for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) {
    ++n;
    EXPECT_EQ((*it)->record().seq, Seq{static_cast<uint64_t>(n)});
    EXPECT_EQ((*it)->record().payload, "p" + std::to_string(n));
    EXPECT_EQ((*it)->record().source, "urn:dev:1");
  }
  EXPECT_TRUE((*it)->status());
  EXPECT_EQ(n, 100);
  (*it)->Seek(Seq{95});
  ASSERT_TRUE((*it)->Valid());
  EXPECT_EQ((*it)->record().seq, Seq{95});
  (*it)->Seek(Seq{1000});
  EXPECT_FALSE((*it)->Valid());
  EXPECT_TRUE((*it)->status());

  auto batch = log_->Read("telemetry", Seq{10}, 5);
  ASSERT_TRUE(batch);
  ASSERT_EQ(batch->size(), 5u);
  EXPECT_EQ((*batch)[0].seq, Seq{10});
  EXPECT_EQ((*batch)[4].event.payload, "p14");
}

TEST_F(EventLogTest, StreamNamesAreValidated) {
  EXPECT_EQ(log_->CreateStream("").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(log_->CreateStream("a/b").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(log_->CreateStream(".hidden").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(log_->CreateStream(std::string(65, 'a')).error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(log_->CreateStream("ok_name-1.v2"));
  EXPECT_EQ(log_->Append("missing", MakeEvent("x")).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(log_->NewIterator("missing").error().code, ErrorCode::kNotFound);
}

TEST_F(EventLogTest, StreamsAreIndependentAndSurviveReopen) {
  ASSERT_TRUE(log_->CreateStream("other", StreamOptions{StreamKind::kLog, FullPolicy::kRejectNew, 7}));
  ASSERT_TRUE(log_->Append("telemetry", MakeEvent("a")));
  ASSERT_TRUE(log_->Append("other", MakeEvent("b")));
  ASSERT_TRUE(log_->Append("telemetry", MakeEvent("c")));
  log_.reset();
  log_ = OpenLog(dir_.Sub("log"), &clock_);
  ASSERT_NE(log_, nullptr);
  EXPECT_EQ(log_->ListStreams().size(), 2u);
  auto opts = log_->GetStreamOptions("other");
  ASSERT_TRUE(opts);
  EXPECT_EQ(opts->full_policy, FullPolicy::kRejectNew);
  EXPECT_EQ(opts->priority, 7);
  EXPECT_EQ(*log_->Append("telemetry", MakeEvent("d")), Seq{3});
  EXPECT_EQ(*log_->Append("other", MakeEvent("e")), Seq{2});
  EXPECT_EQ(log_->CreateStream("other", StreamOptions{StreamKind::kTable}).error().code,
            ErrorCode::kInvalidArgument);
}

TEST_F(EventLogTest, IngestTimeIsMonotonicAndSeekableByTime) {
  // The clock steps backwards half-way (an NTP correction): ingest time must not.
  std::vector<TimeNs> times;
  for (int i = 0; i < 50; ++i) {
    if (i == 25) clock_.Advance(-1h);
    clock_.Advance(1s);
    ASSERT_TRUE(log_->Append("telemetry", MakeEvent("e")));
  }
  auto it = log_->NewIterator("telemetry");
  ASSERT_TRUE(it);
  TimeNs prev{};
  for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) {
    EXPECT_GE((*it)->record().ingest_time, prev);
    prev = (*it)->record().ingest_time;
    times.push_back(prev);
  }
  ASSERT_EQ(times.size(), 50u);
  for (size_t i : {0u, 1u, 10u, 24u, 25u, 49u}) {
    (*it)->SeekToTime(times[i]);
    ASSERT_TRUE((*it)->Valid());
    // First record with ingest_time >= times[i]: equal times (the clamped ones) resolve to the earliest.
    size_t first = i;
    while (first > 0 && times[first - 1] == times[i]) --first;
    EXPECT_EQ((*it)->record().seq, Seq{first + 1}) << i;
  }
  (*it)->SeekToTime(TimeNs{times.back().ns + 1});
  EXPECT_FALSE((*it)->Valid());
  EXPECT_TRUE((*it)->status());
  (*it)->SeekToTime(TimeNs{0});
  ASSERT_TRUE((*it)->Valid());
  EXPECT_EQ((*it)->record().seq, Seq{1});
}

TEST_F(EventLogTest, CursorsAndLag) {
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(log_->Append("telemetry", MakeEvent("e")));
  EXPECT_EQ(log_->GetCursor("telemetry", "uplink").error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(log_->Update([](WriteTxn& t) { return t.SetCursor("telemetry", "uplink", Seq{4}); }));
  ASSERT_TRUE(log_->Update([](WriteTxn& t) { return t.SetCursor("telemetry", "kafka", Seq{11}); }));
  EXPECT_EQ(*log_->GetCursor("telemetry", "uplink"), Seq{4});
  auto stats = log_->GetStreamStats("telemetry");
  ASSERT_TRUE(stats);
  ASSERT_EQ(stats->cursors.size(), 2u);
  EXPECT_EQ(stats->cursors[0].name, "kafka");
  EXPECT_EQ(stats->cursors[0].lag, 0u);
  EXPECT_EQ(stats->cursors[1].name, "uplink");
  EXPECT_EQ(stats->cursors[1].lag, 7u);  // seqs 4..10
  EXPECT_EQ(log_->Update([](WriteTxn& t) { return t.SetCursor("telemetry", "bad/name", Seq{1}); }).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(log_->Update([](WriteTxn& t) { return t.SetCursor("nope", "c", Seq{1}); }).error().code,
            ErrorCode::kNotFound);
}

TEST_F(EventLogTest, TransactionIsAtomic) {
  ASSERT_TRUE(log_->CreateStream("out"));
  ASSERT_TRUE(log_->Append("telemetry", MakeEvent("in-1")));
  // A pipeline step: read input, update state, append output, advance cursor; then fail before commit.
  auto failing = log_->Update([](WriteTxn& t) -> Status {
    if (auto r = t.Append("out", MakeEvent("derived")); !r) return tl::unexpected(r.error());
    if (auto s = t.PutState("window/1", "sum=5"); !s) return s;
    if (auto s = t.SetCursor("telemetry", "pipeline", Seq{2}); !s) return s;
    return InvalidArgument("simulated failure after all writes");
  });
  EXPECT_EQ(failing.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(log_->GetStreamStats("out")->count, 0u);
  EXPECT_EQ(log_->GetState("window/1").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(log_->GetCursor("telemetry", "pipeline").error().code, ErrorCode::kNotFound);

  ASSERT_TRUE(log_->Update([](WriteTxn& t) -> Status {
    auto it = t.NewIterator("telemetry");
    if (!it) return tl::unexpected(it.error());
    (*it)->Seek(Seq{1});
    if (!(*it)->Valid()) return NotFound("input");
    Event out = MakeEvent(std::string((*it)->record().payload) + "-out");
    it->reset();
    if (auto r = t.Append("out", out); !r) return tl::unexpected(r.error());
    if (auto s = t.PutState("window/1", "sum=5"); !s) return s;
    // Reads inside the transaction see its own writes.
    auto v = t.GetState("window/1");
    if (!v || *v != "sum=5") return Corruption("read-your-writes");
    auto it2 = t.NewIterator("out");
    if (!it2) return tl::unexpected(it2.error());
    (*it2)->SeekToFirst();
    if (!(*it2)->Valid() || (*it2)->record().payload != "in-1-out") return Corruption("iterator in txn");
    return t.SetCursor("telemetry", "pipeline", Seq{2});
  }));
  EXPECT_EQ(log_->GetStreamStats("out")->count, 1u);
  EXPECT_EQ(*log_->GetState("window/1"), "sum=5");
  EXPECT_EQ(*log_->GetCursor("telemetry", "pipeline"), Seq{2});
  ASSERT_TRUE(log_->Update([](WriteTxn& t) { return t.DeleteState("window/1"); }));
  EXPECT_EQ(log_->GetState("window/1").error().code, ErrorCode::kNotFound);
}

TEST_F(EventLogTest, ExplicitTransactionAbortsOnDestruction) {
  {
    auto txn = log_->BeginWrite();
    ASSERT_TRUE(txn);
    ASSERT_TRUE((*txn)->Append("telemetry", MakeEvent("never")));
  }
  EXPECT_EQ(log_->GetStreamStats("telemetry")->count, 0u);
  auto txn = log_->BeginWrite();
  ASSERT_TRUE(txn);
  ASSERT_TRUE((*txn)->Append("telemetry", MakeEvent("kept")));
  ASSERT_TRUE((*txn)->Commit());
  EXPECT_EQ(log_->GetStreamStats("telemetry")->count, 1u);
  EXPECT_EQ(*log_->Append("telemetry", MakeEvent("next")), Seq{2});  // the aborted seq was not consumed
}

TEST_F(EventLogTest, StatsAreMaintained) {
  auto empty = log_->GetStreamStats("telemetry");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->count, 0u);
  EXPECT_EQ(empty->first_seq, Seq{1});
  EXPECT_EQ(empty->last_seq, Seq{0});
  const TimeNs t0 = clock_.Now();
  uint64_t bytes = 0;
  for (int i = 0; i < 20; ++i) {
    Event e = MakeEvent(std::string(100 + i, 'x'));
    bytes += 8 + *EncodedRecordSize(e);
    ASSERT_TRUE(log_->Append("telemetry", e));
    clock_.Advance(1ms);
  }
  auto s = log_->GetStreamStats("telemetry");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->count, 20u);
  EXPECT_EQ(s->bytes, bytes);
  EXPECT_EQ(s->first_seq, Seq{1});
  EXPECT_EQ(s->last_seq, Seq{20});
  EXPECT_EQ(s->oldest_ingest_time, t0);
  auto env = log_->GetEnvStats();
  ASSERT_TRUE(env);
  EXPECT_EQ(env->map_size, size_t{64} << 20);
  EXPECT_GT(env->used_bytes, 0u);
  EXPECT_LT(env->used_bytes, env->high_water_bytes);
}

TEST_F(EventLogTest, TableStreamRequiresSubject) {
  ASSERT_TRUE(log_->CreateStream("devices", StreamOptions{StreamKind::kTable}));
  EXPECT_EQ(log_->Append("devices", MakeEvent("no subject")).error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(log_->Append("devices", MakeEvent("v", "dev-1")));
}

TEST_F(EventLogTest, LookupLatestFindsATableRowByKey) {
  ASSERT_TRUE(log_->CreateStream("devices", StreamOptions{StreamKind::kTable}));
  ASSERT_TRUE(log_->Append("devices", MakeEvent("v1", "dev-1")));
  ASSERT_TRUE(log_->Append("devices", MakeEvent("w1", "dev-2")));
  auto v2 = log_->Append("devices", MakeEvent("v2", "dev-1"));
  ASSERT_TRUE(v2);
  auto r = log_->LookupLatest("devices", "dev-1");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->event.payload, "v2");
  EXPECT_EQ(r->seq, *v2);
  EXPECT_EQ(r->event.subject, "dev-1");
  ASSERT_TRUE(log_->Append("devices", MakeEvent("", "dev-2")));  // a tombstone: found, with an empty payload
  auto t = log_->LookupLatest("devices", "dev-2");
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->event.payload.empty());
  EXPECT_EQ(log_->LookupLatest("devices", "dev-3").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(log_->LookupLatest("nowhere", "dev-1").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(log_->LookupLatest("telemetry", "dev-1").error().code, ErrorCode::kInvalidArgument);  // not a table
  EXPECT_EQ(log_->LookupLatest("devices", "").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(log_->LookupLatest("devices", std::string(512, 'k')).error().code, ErrorCode::kInvalidArgument);
}

// Waits for one byte from fd; false on EOF.
bool ReadByte(int fd) {
  char c;
  return ::read(fd, &c, 1) == 1;
}

TEST_F(EventLogTest, SecondProcessReadsWhileWriterWrites) {
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(log_->Append("telemetry", MakeEvent("e")));
  int to_child[2], to_parent[2];
  ASSERT_EQ(::pipe(to_child), 0);
  ASSERT_EQ(::pipe(to_parent), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: a read-only open of the same log (ferryctl's view). Exit code = first failed check.
    EventLogOptions o;
    o.path = dir_.Sub("log");
    o.read_only = true;
    auto ro = EventLog::Open(o);
    if (!ro) ::_exit(10);
    auto s = (*ro)->GetStreamStats("telemetry");
    if (!s || s->count != 10) ::_exit(11);
    if ((*ro)->Append("telemetry", MakeEvent("x"))) ::_exit(12);
    char c = 'r';
    if (::write(to_parent[1], &c, 1) != 1) ::_exit(13);
    if (!ReadByte(to_child[0])) ::_exit(14);  // parent appended 5 more and created a stream
    s = (*ro)->GetStreamStats("telemetry");
    if (!s || s->count != 15) ::_exit(15);
    auto recs = (*ro)->Read("late", Seq{1}, 10);
    if (!recs || recs->size() != 1) ::_exit(16);
    ::_exit(0);
  }
  ASSERT_TRUE(ReadByte(to_parent[0]));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(log_->Append("telemetry", MakeEvent("e")));
  ASSERT_TRUE(log_->CreateStream("late"));
  ASSERT_TRUE(log_->Append("late", MakeEvent("l")));
  char c = 'g';
  ASSERT_EQ(::write(to_child[1], &c, 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (int fd : {to_child[0], to_child[1], to_parent[0], to_parent[1]}) ::close(fd);
}

TEST(EventLogOpenTest, ReadOnlyOpenOfMissingLogIsNotFound) {
  TempDir dir;
  EventLogOptions o;
  o.path = dir.Sub("absent");
  o.read_only = true;
  auto log = EventLog::Open(o);
  ASSERT_FALSE(log);
  EXPECT_EQ(log.error().code, ErrorCode::kNotFound);
}

TEST(EventLogOpenTest, BadOptionsAreInvalidArgument) {
  TempDir dir;
  EventLogOptions o;
  o.path = dir.Sub("log");
  o.budget_high_water = 1.5;
  EXPECT_EQ(EventLog::Open(o).error().code, ErrorCode::kInvalidArgument);
  o.budget_high_water = 0.9;
  o.map_size = 1000;
  EXPECT_EQ(EventLog::Open(o).error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace ferry
