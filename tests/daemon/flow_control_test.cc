#include "ferry/flow_control.h"

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

}  // namespace
}  // namespace ferry
