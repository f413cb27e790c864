#include "ferry/flow_control.h"

#include <deque>
#include <random>
#include <gtest/gtest.h>

#include <set>

using namespace std::chrono_literals;

namespace ferry {
namespace {

TEST(Backoff, GrowsWithinBoundsAndResets) {
  Backoff b(100ms, 2s, 42);
  std::chrono::nanoseconds ceiling = 100ms;
  for (int i = 0; i < 10; ++i) {
    auto d = b.Next();
    EXPECT_GE(d, 100ms);
    EXPECT_LE(d, ceiling) << "attempt " << i;
    ceiling = std::min<std::chrono::nanoseconds>(ceiling * 2, 2s);
  }
  EXPECT_EQ(b.attempts(), 10u);
  b.Reset();
  EXPECT_EQ(b.Next(), 100ms);  // first attempt after reset: [min, min]
}

TEST(Backoff, JitterSpreadsAFleet) {
  // Ten gateways with different seeds must not all pick the same delay on their 5th attempt.
  std::set<int64_t> delays;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    Backoff b(100ms, 60s, seed);
    std::chrono::nanoseconds d{};
    for (int i = 0; i < 5; ++i) d = b.Next();
    delays.insert(d.count());
  }
  EXPECT_GT(delays.size(), 5u);
}

TEST(RateLimiter, CapsBytesPerSecond) {
  RateLimiter r(1000);
  SteadyTime t{};
  uint64_t sent = 0;
  // Simulate 10 s in 1 ms steps, trying to send 100-byte messages as fast as allowed.
  for (int ms = 0; ms < 10'000; ++ms) {
    while (r.TryTake(100, t)) sent += 100;
    t += 1ms;
  }
  // 1 s of initial burst + 10 s at 1000 B/s.
  EXPECT_GE(sent, 10'000u);
  EXPECT_LE(sent, 11'100u);
  while (r.TryTake(100, t)) sent += 100;
  EXPECT_GT(r.WaitFor(100, t).count(), 0);
}

TEST(RateLimiter, OversizeMessageDoesNotStall) {
  RateLimiter r(100);
  SteadyTime t{};
  EXPECT_TRUE(r.TryTake(1000, t));   // bucket full: one oversize message goes
  EXPECT_FALSE(r.TryTake(10, t));    // then the debt must be paid off
  t += std::chrono::seconds(10);
  EXPECT_TRUE(r.TryTake(10, t));
}

TEST(RateLimiter, ZeroMeansUnlimited) {
  RateLimiter r(0);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(r.TryTake(1 << 20, SteadyTime{}));
}

TEST(DedupeWindow, DropsRepeatsWithinWindowOnly) {
  DedupeWindow w(10s, 1000);
  TimeNs t{1'000'000'000'000};
  EXPECT_TRUE(w.Insert("a", t));
  EXPECT_FALSE(w.Insert("a", t));
  t.ns += std::chrono::nanoseconds(5s).count();
  EXPECT_FALSE(w.Insert("a", t));
  t.ns += std::chrono::nanoseconds(6s).count();
  EXPECT_TRUE(w.Insert("a", t));  // 11 s after the first sighting: outside the window
}

TEST(DedupeWindow, CapacityForgetsOldestFirst) {
  DedupeWindow w(1h, 3);
  TimeNs t{1};
  for (const char* id : {"a", "b", "c", "d"}) EXPECT_TRUE(w.Insert(id, t));
  EXPECT_EQ(w.size(), 3u);
  EXPECT_FALSE(w.Contains("a"));
  EXPECT_FALSE(w.Insert("d", t));
  EXPECT_TRUE(w.Insert("a", t));
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

TEST(DedupeWindow, ManyIdsWrapTheRingAndExpireInOrder) {
  // Fill past capacity several times: the newest `capacity` ids are remembered, older ones are not, and the
  // table's deletions (backward shift) never lose an id that is still inside.
  const size_t kCap = 1000;
  DedupeWindow w(std::chrono::hours(1), kCap);
  TimeNs t{1};
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE(w.Insert("id-" + std::to_string(i), t)) << i;
  EXPECT_EQ(w.size(), kCap);
  for (int i = 0; i < 4000; ++i) EXPECT_FALSE(w.Contains("id-" + std::to_string(i))) << i;
  for (int i = 4000; i < 5000; ++i) EXPECT_TRUE(w.Contains("id-" + std::to_string(i))) << i;
  // Time expiry removes from the oldest end.
  DedupeWindow e(std::chrono::seconds(10), kCap);
  for (int i = 0; i < 100; ++i) e.Insert("x" + std::to_string(i), TimeNs{int64_t{i} * 1'000'000'000});
  e.Expire(TimeNs{int64_t{100} * 1'000'000'000});
  EXPECT_EQ(e.size(), 10u);  // ids inserted at t = 90..99 s are within 10 s of t = 100 s
  EXPECT_TRUE(e.Contains("x95"));
  EXPECT_FALSE(e.Contains("x85"));
}

// Forget (an event that could not be stored) and a later store of the same id: the old arrival's expiry must
// not take the new one with it (tests/fuzz/ingest_route/corpus/crash-dedupe-forget-reinsert).
TEST(DedupeWindow, ForgottenThenStoredAgainOutlivesTheFirstArrival) {
  DedupeWindow w(std::chrono::seconds(10), 100);
  auto at = [](int s) { return TimeNs{int64_t{s} * 1'000'000'000}; };
  EXPECT_TRUE(w.Insert("a", at(0)));
  EXPECT_TRUE(w.Insert("b", at(1)));
  w.Forget("a");
  EXPECT_FALSE(w.Contains("a"));
  EXPECT_TRUE(w.Insert("a", at(5)));  // the device re-sent it and it was stored this time
  EXPECT_TRUE(w.Insert("c", at(11)));  // the first "a" (t = 0) ages out here
  EXPECT_FALSE(w.Insert("a", at(12))) << "a redelivery of the stored \"a\" inside its window";
  EXPECT_FALSE(w.Contains("b"));
  EXPECT_TRUE(w.Insert("a", at(16)));  // 11 s after its stored arrival
  // The same through the capacity bound: a forgotten entry pushed out of the ring leaves the new one alone.
  DedupeWindow c(std::chrono::hours(1), 3);
  EXPECT_TRUE(c.Insert("x", at(0)));
  c.Forget("x");
  c.Forget("x");        // twice, and an id never seen: no effect
  c.Forget("never");
  EXPECT_TRUE(c.Insert("x", at(1)));
  EXPECT_TRUE(c.Insert("y", at(2)));
  EXPECT_TRUE(c.Insert("z", at(3)));  // pushes the forgotten "x" out
  EXPECT_TRUE(c.Contains("x"));
  EXPECT_FALSE(c.Insert("x", at(4)));
  EXPECT_TRUE(c.Insert("w", at(5)));  // now the stored "x" goes
  EXPECT_FALSE(c.Contains("x"));
}

// Against a model (a map of id to arrival time), over random inserts, forgets and clock steps.
TEST(DedupeWindow, AgreesWithAModel) {
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    const size_t cap = 1 + rng() % 40;
    const int64_t window = 1 + rng() % 50;
    DedupeWindow w(std::chrono::nanoseconds(window), cap);
    std::deque<std::pair<std::string, int64_t>> ring;   // every arrival still in the ring
    int64_t now = 0;
    for (int op = 0; op < 2000; ++op) {
      now += rng() % 4;
      std::string id = "i" + std::to_string(rng() % 30);
      // The model: expire by time, then by capacity (the ring counts forgotten arrivals too).
      auto expire = [&] {
        while (!ring.empty() && now - ring.front().second > window) ring.pop_front();
      };
      auto live = [&](const std::string& x) {
        for (const auto& [k, t] : ring)
          if (k == x) return true;
        return false;
      };
      if (rng() % 4 == 0) {
        for (auto& [k, t] : ring)
          if (k == id) k = "\x01";  // forgotten: keeps its place in the ring under no id
        w.Forget(id);
        ASSERT_FALSE(w.Contains(id));
        continue;
      }
      expire();
      bool expect_new = !live(id);
      if (expect_new) {
        if (ring.size() == cap) ring.pop_front();
        ring.emplace_back(id, now);
      }
      ASSERT_EQ(w.Insert(id, TimeNs{now}), expect_new) << "round " << round << " op " << op << " id " << id;
      ASSERT_EQ(w.size(), ring.size());
    }
  }
}

}  // namespace
}  // namespace ferry
