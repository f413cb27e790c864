// The uplink engine's scheduling rules, stepped with a manual clock against a fake transport: drain order,
// priorities, the bandwidth cap, replay, acked ranges with out-of-order completions, re-sending after a lost
// link, Retry holds, and sleeping (no re-read) while a partial batch waits.
#include <gtest/gtest.h>

#include <numeric>

#include "engine_fixture.h"

namespace ferry::test {
namespace {

using namespace std::chrono_literals;

std::vector<uint64_t> Range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> v(last - first + 1);
  std::iota(v.begin(), v.end(), first);
  return v;
}

TEST_F(EngineTest, OldestFirstSendsInOrderAndPersistsTheCursor) {
  Open();
  Append("telemetry", 10);
  Start();
  engine_->Step();
  ASSERT_TRUE(engine_->link_up());
  EXPECT_EQ(transport_.SentSeqs(), Range(1, 10));
  EXPECT_EQ(engine_->inflight(), 10u);
  EXPECT_EQ(UnitAttribute(transport_.sent[0].unit, "id"), "gw/telemetry/1");
  EXPECT_EQ(transport_.sent[0].unit.topic, "ferry/gw/telemetry");
  EXPECT_EQ(transport_.sent[0].unit.key, "dev-0");
  transport_.CompleteAll();
  engine_->Step();
  EXPECT_EQ(engine_->cursor("telemetry"), Seq{11});
  EXPECT_EQ(engine_->acked_events(), 10u);
  // The cursor rides in a group commit once a second.
  clock_.Advance(1s);
  engine_->Step();
  writer_->Step();
  EXPECT_EQ(PersistedCursor("telemetry"), Seq{11});
  EXPECT_EQ(transport_.sent.size(), 10u) << "nothing is sent twice";
}

TEST_F(EngineTest, NewestFirstSendsTheNewestThenLiveEventsThenBackfills) {
  Open("drain_order = \"newest_first\"\ninflight = 1\n");
  Append("telemetry", 10);
  Start();
  engine_->Step();
  ASSERT_EQ(transport_.SentSeqs(), (std::vector<uint64_t>{10}));  // current state first
  transport_.CompleteAll();
  engine_->Step();
  EXPECT_EQ(transport_.SentSeqs(), (std::vector<uint64_t>{10, 1}));  // then the backlog, oldest first
  Append("telemetry", 2);  // 11, 12 arrive while the backlog drains: they go before more backfill
  transport_.CompleteAll();
  engine_->Step();
  transport_.CompleteAll();
  engine_->Step();
  EXPECT_EQ(transport_.SentSeqs(), (std::vector<uint64_t>{10, 1, 11, 12}));
  DrainAcking();
  std::vector<uint64_t> want{10, 1, 11, 12};
  for (uint64_t s = 2; s <= 9; ++s) want.push_back(s);
  EXPECT_EQ(transport_.SentSeqs(), want);
  EXPECT_EQ(engine_->cursor("telemetry"), Seq{13});
}

TEST_F(EngineTest, HigherPriorityStreamGoesFirst) {
  Open("inflight = 1\n");
  Append("telemetry", 3);
  Append("alarms", 3);
  Start();
  DrainAcking();
  std::vector<std::string> topics;
  for (const auto& s : transport_.sent) topics.push_back(s.unit.topic);
  EXPECT_EQ(topics, (std::vector<std::string>{"ferry/gw/alarms", "ferry/gw/alarms", "ferry/gw/alarms",
                                              "ferry/gw/telemetry", "ferry/gw/telemetry", "ferry/gw/telemetry"}));
}

TEST_F(EngineTest, BandwidthCapHoldsBytesPerSimulatedSecond) {
  Open("bytes_per_sec = 1000\n");
  Append("telemetry", 100, /*payload_bytes=*/100);
  Start();
  auto bytes_sent = [&] {
    size_t b = 0;
    for (const auto& s : transport_.sent) b += s.unit.payload.size();
    return b;
  };
  const auto t0 = clock_.Steady();
  for (int tick = 0; tick <= 40; ++tick) {  // 4 simulated seconds in 100 ms steps
    engine_->Step();
    transport_.CompleteAll();
    const double secs = std::chrono::duration<double>(clock_.Steady() - t0).count();
    // The bucket starts full (one second of budget), then refills at the rate.
    EXPECT_LE(bytes_sent(), 1000.0 * (secs + 1.0) + 1e-9) << "at " << secs << " s";
    EXPECT_GE(bytes_sent(), 1000.0 * secs - 100.0) << "the cap is a ceiling, not a brake, at " << secs << " s";
    // While held by the cap the engine sleeps until the bucket has room, not longer.
    EXPECT_LE(engine_->NextWakeup() - clock_.Steady(), 101ms);
    clock_.Advance(100ms);
  }
  EXPECT_EQ(transport_.SentSeqs(), Range(1, 50));
}

TEST_F(EngineTest, ReplayRequestRewindsAndResends) {
  Open();
  Append("telemetry", 5);
  Start();
  DrainAcking();
  ASSERT_EQ(engine_->cursor("telemetry"), Seq{6});
  const std::string key = ReplayRequestKey("central", "telemetry");
  ASSERT_TRUE(log_->Update([&](WriteTxn& txn) { return txn.PutState(key, "2"); }));
  clock_.Advance(1s);  // requests are looked at once a second
  DrainAcking();
  EXPECT_EQ(transport_.SentSeqs(), (std::vector<uint64_t>{1, 2, 3, 4, 5, 2, 3, 4, 5}));
  EXPECT_EQ(engine_->cursor("telemetry"), Seq{6});
  writer_->Step();
  EXPECT_FALSE(log_->GetState(key)) << "the applied request is deleted with the cursor move";
}

TEST_F(EngineTest, OutOfOrderCompletionsMoveTheCursorOnlyOverAContiguousPrefix) {
  Open();
  Append("telemetry", 10);
  Start();
  engine_->Step();
  ASSERT_EQ(transport_.sent.size(), 10u);
  auto h = [&](uint64_t seq) { return *transport_.OutstandingWithSeq(seq); };
  for (uint64_t s : {3, 5, 4}) transport_.Complete(h(s));
  engine_->Step();
  EXPECT_EQ(engine_->cursor("telemetry"), Seq{1});
  transport_.Complete(h(1));
  engine_->Step();
  EXPECT_EQ(engine_->cursor("telemetry"), Seq{2});
  transport_.Complete(h(2));
  engine_->Step();
  EXPECT_EQ(engine_->cursor("telemetry"), Seq{6}) << "2 closes the gap to the acked 3-5";
  for (uint64_t s : {10, 8}) transport_.Complete(h(s));
  for (int i = 0; i < 5; ++i) engine_->Step();
  EXPECT_EQ(transport_.sent.size(), 10u) << "nothing is re-sent while connected";
  transport_.CompleteAll();
  engine_->Step();
  EXPECT_EQ(engine_->cursor("telemetry"), Seq{11});
}

TEST_F(EngineTest, LostLinkResendsFromTheCursorSkippingAckedRanges) {
  Open();
  Append("telemetry", 10);
  Start();
  engine_->Step();
  auto h = [&](uint64_t seq) { return *transport_.OutstandingWithSeq(seq); };
  for (uint64_t s : {1, 2, 3, 5}) transport_.Complete(h(s));
  engine_->Step();
  ASSERT_EQ(engine_->cursor("telemetry"), Seq{4});
  transport_.DropLink();
  engine_->Step();
  EXPECT_FALSE(engine_->link_up());
  EXPECT_EQ(transport_.connects, 1) << "no reconnect before the backoff";
  EXPECT_GT(engine_->NextWakeup(), clock_.Steady());
  const size_t before = transport_.sent.size();
  clock_.Advance(400ms);  // backoff.max
  DrainAcking();
  EXPECT_EQ(transport_.connects, 2);
  EXPECT_EQ(transport_.SentSeqs(before), (std::vector<uint64_t>{4, 6, 7, 8, 9, 10})) << "5 was acked before the loss";
  EXPECT_EQ(engine_->cursor("telemetry"), Seq{11});
  EXPECT_EQ(engine_->stats().poisoned_units, 0u);
}

// Stop and reload: Drain() sends nothing new but still takes the acknowledgements of what is in flight, so the
// cursor Shutdown persists covers them and the next uplink re-sends none of them.
TEST_F(EngineTest, DrainSendsNothingNewAndPersistsWhatWasAcknowledgedMeanwhile) {
  Open("inflight = 4\n");
  Append("telemetry", 10);
  Start();
  engine_->Step();
  ASSERT_EQ(transport_.SentSeqs(), Range(1, 4));
  engine_->Drain();
  EXPECT_FALSE(engine_->drained());
  EXPECT_FALSE(engine_->wants_commits());
  transport_.Complete(*transport_.OutstandingWithSeq(1));
  transport_.Complete(*transport_.OutstandingWithSeq(2));
  engine_->Step();
  EXPECT_EQ(transport_.sent.size(), 4u) << "room in the window, but draining";
  EXPECT_FALSE(engine_->drained());
  transport_.CompleteAll();
  engine_->Step();
  EXPECT_TRUE(engine_->drained());
  EXPECT_EQ(transport_.sent.size(), 4u);
  engine_->Shutdown();
  writer_->Step();
  EXPECT_EQ(PersistedCursor("telemetry"), Seq{5}) << "what the centre acknowledged while draining";
}

// A link lost while draining: nothing more will be acknowledged, so the drain is over at once.
TEST_F(EngineTest, DrainEndsWhenTheLinkIsLost) {
  Open("inflight = 4\n");
  Append("telemetry", 10);
  Start();
  engine_->Step();
  engine_->Drain();
  transport_.DropLink();
  engine_->Step();
  EXPECT_TRUE(engine_->drained());
}

TEST_F(EngineTest, FailedConnectsBackOff) {
  Open();
  Start();
  transport_.refuse_connect = true;
  engine_->Step();
  EXPECT_EQ(transport_.connects, 1);
  for (int i = 0; i < 10; ++i) engine_->Step();
  EXPECT_EQ(transport_.connects, 1) << "the manual clock has not moved: no new attempt";
  clock_.Advance(400ms);
  engine_->Step();
  engine_->Step();
  EXPECT_EQ(transport_.connects, 2);
  transport_.refuse_connect = false;
  clock_.Advance(400ms);
  engine_->Step();
  EXPECT_TRUE(engine_->link_up());
}

TEST_F(EngineTest, RetryVerdictHoldsSendingAndResendsTheUnit) {
  Open("inflight = 1\n");
  Append("telemetry", 3);
  Start();
  engine_->Step();
  ASSERT_EQ(transport_.SentSeqs(), (std::vector<uint64_t>{1}));
  transport_.CompleteAll([](const OutboundUnit&) {
    return PublishVerdict{PublishVerdict::kRetry, std::chrono::seconds(10), "quota_exceeded"};
  });
  engine_->Step();
  EXPECT_EQ(transport_.sent.size(), 1u) << "held for retry_after";
  EXPECT_LE(engine_->NextWakeup(), clock_.Steady() + 10s);
  clock_.Advance(10s);
  DrainAcking();
  EXPECT_EQ(transport_.SentSeqs(), (std::vector<uint64_t>{1, 1, 2, 3}));
  EXPECT_EQ(engine_->cursor("telemetry"), Seq{4});
  EXPECT_TRUE(engine_->link_up()) << "a broker's refusal is not a lost link";
}

TEST_F(EngineTest, BackPressureWaitsForACompletion) {
  Open();
  Append("telemetry", 4);
  Start();
  transport_.busy = true;
  engine_->Step();
  EXPECT_TRUE(transport_.sent.empty());
  EXPECT_FALSE(engine_->wants_commits()) << "busy: only a completion can help";
  transport_.busy = false;
  clock_.Advance(10ms);  // nothing was in flight, so no completion will come: the engine looks again shortly
  DrainAcking();
  EXPECT_EQ(transport_.SentSeqs(), Range(1, 4));
}

TEST_F(EngineTest, CaughtUpEngineDoesNotReadWithoutACommit) {
  Open();
  Append("telemetry", 3);
  Start();
  DrainAcking();
  const uint64_t reads = engine_->stats().log_reads;
  for (int i = 0; i < 20; ++i) {
    engine_->Step();
    clock_.Advance(10ms);
  }
  EXPECT_EQ(engine_->stats().log_reads, reads) << "no commit, no read";
  EXPECT_TRUE(engine_->wants_commits());
  Append("telemetry", 1);
  engine_->Step();
  EXPECT_EQ(engine_->stats().log_reads, reads + 2) << "one look per stream after a commit";
  EXPECT_EQ(transport_.SentSeqs().back(), 4u);
}

TEST_F(EngineTest, PerEventReadsAheadInsteadOfOneTransactionPerEvent) {
  Open("inflight = 1000\n");
  Append("telemetry", 640);
  Start();
  engine_->Step();
  EXPECT_EQ(transport_.sent.size(), 640u);
  EXPECT_LE(engine_->stats().log_reads, 12u);
}

TEST_F(EngineTest, PartialBatchSleepsWithoutRereadingUntilMaxDelay) {
  Open("mode = \"batched\"\nbatch.max_events = 10\nbatch.max_delay = \"5s\"\n");
  Start();
  engine_->Step();  // connects
  ASSERT_TRUE(engine_->link_up());
  const auto t0 = clock_.Steady();
  Append("telemetry", 3);
  engine_->Step();
  EXPECT_TRUE(transport_.sent.empty()) << "a partial batch waits for company";
  const auto stats = engine_->stats();
  EXPECT_EQ(stats.records_read, 3u);
  // The engine asks to be woken at the batch deadline (or its once-a-second chores), not in a millisecond.
  EXPECT_GT(engine_->NextWakeup(), clock_.Steady() + 500ms);
  EXPECT_LE(engine_->NextWakeup(), t0 + 5s);
  for (int i = 0; i < 9; ++i) {
    clock_.Advance(100ms);
    engine_->Step();
  }
  EXPECT_EQ(engine_->stats().log_reads, stats.log_reads) << "no commit: the waiting batch is not read again";
  EXPECT_EQ(engine_->stats().records_read, 3u);
  Append("telemetry", 2);  // a commit: read the two new records only
  engine_->Step();
  EXPECT_EQ(engine_->stats().records_read, 5u);
  EXPECT_TRUE(transport_.sent.empty());
  clock_.Set(TimeNs{clock_.Now().ns + (t0 + 5s - clock_.Steady()).count()});
  engine_->Step();
  ASSERT_EQ(transport_.sent.size(), 1u);
  EXPECT_EQ(transport_.SentSeqs(), Range(1, 5));
  EXPECT_EQ(engine_->stats().records_read, 5u);
}

TEST_F(EngineTest, FullBatchGoesAtOnceAndBatchesCoverTheStream) {
  Open("mode = \"batched\"\nbatch.max_events = 4\nbatch.max_delay = \"5s\"\n");
  Append("telemetry", 10);
  Start();
  engine_->Step();
  EXPECT_EQ(transport_.SentSeqs(), Range(1, 8)) << "two full batches; 9-10 wait";
  clock_.Advance(5s);
  DrainAcking();
  EXPECT_EQ(transport_.SentSeqs(), Range(1, 10));
  EXPECT_EQ(transport_.sent.size(), 3u);
  EXPECT_EQ(engine_->cursor("telemetry"), Seq{11});
}

TEST_F(EngineTest, BatchMaxBytesCutsBatchesWithoutWaiting) {
  Open("mode = \"batched\"\nbatch.max_events = 100\nbatch.max_bytes = \"1KiB\"\nbatch.max_delay = \"5s\"\n");
  Append("telemetry", 10, /*payload_bytes=*/300);
  Start();
  engine_->Step();
  // 3 x 300 bytes fit in 1 KiB: three full batches go now, the last (one event) waits for company.
  EXPECT_EQ(transport_.SentSeqs(), Range(1, 9));
  EXPECT_EQ(transport_.sent.size(), 3u);
}

}  // namespace
}  // namespace ferry::test
