// The window operator (ferry/window.h) on its own: every kind with hand-checked inputs, per-key watermarks,
// lateness, idle timeouts, bounds, early results, state round trips and damaged state; the quantile sketch's
// error bound. Processing time is passed in (a manual clock in all but name): nothing sleeps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "ferry/quantile_sketch.h"
#include "ferry/window.h"

namespace ferry {
namespace {

constexpr int64_t kS = 1'000'000'000;

struct Final {
  std::string key;
  int64_t start, end;
  uint64_t count;
  double sum;
  WindowClose reason;
};

std::vector<Final> Finals(const std::vector<WindowResult>& rs) {
  std::vector<Final> out;
  for (const auto& r : rs)
    if (r.kind == WindowResult::kFinal) out.push_back({r.key, r.start, r.end, r.agg.count, r.agg.sum, r.reason});
  return out;
}

WindowSpec Tumbling(int64_t size) {
  WindowSpec s;
  s.kind = WindowKind::kTumbling;
  s.size_ns = size;
  return s;
}

TEST(Window, TumblingClosesOnTheKeysWatermark) {
  WindowOperator w(Tumbling(60 * kS));
  std::vector<WindowResult> out;
  EXPECT_TRUE(w.Add("a", 0, 1, 1.0, &out));
  EXPECT_TRUE(w.Add("a", 10 * kS, 2, 2.0, &out));
  EXPECT_TRUE(w.Add("a", 59 * kS, 3, 3.0, &out));
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(w.Add("a", 60 * kS, 4, 10.0, &out));  // end 60 s <= watermark 60 s: closed
  auto f = Finals(out);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].start, 0);
  EXPECT_EQ(f[0].end, 60 * kS);
  EXPECT_EQ(f[0].count, 3u);
  EXPECT_EQ(f[0].sum, 6.0);
  EXPECT_EQ(out[0].agg.min, 1.0);
  EXPECT_EQ(out[0].agg.max, 3.0);
  EXPECT_EQ(out[0].agg.first, 1.0);
  EXPECT_EQ(out[0].agg.last, 3.0);
  EXPECT_EQ(out[0].agg.avg(), 2.0);
  EXPECT_EQ(w.open_windows(), 1u);
}

TEST(Window, OneKeysWrongClockDoesNotHoldBackOrCloseOthers) {
  WindowOperator w(Tumbling(60 * kS));
  std::vector<WindowResult> out;
  w.Add("healthy", 5 * kS, 1, 1.0, &out);
  w.Add("ahead", 86'400 * kS, 2, 1.0, &out);   // a day ahead: only its own watermark moves
  w.Add("behind", -1'000'000 * kS, 3, 1.0, &out);  // 1970-ish: its own windows only
  EXPECT_TRUE(out.empty());
  w.Add("healthy", 61 * kS, 4, 1.0, &out);
  auto f = Finals(out);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].key, "healthy");
}

TEST(Window, LateEventsWithinAllowedLatenessCountBeyondAreLate) {
  WindowSpec s = Tumbling(60 * kS);
  s.lateness_ns = 10 * kS;
  WindowOperator w(s);
  std::vector<WindowResult> out;
  w.Add("a", 5 * kS, 1, 1.0, &out);
  w.Add("a", 65 * kS, 2, 1.0, &out);  // watermark 55 s: [0,60) still open
  EXPECT_TRUE(w.Add("a", 50 * kS, 3, 1.0, &out));
  EXPECT_TRUE(out.empty());
  w.Add("a", 70 * kS, 4, 1.0, &out);  // watermark 60 s: closes [0,60) with 2 events
  ASSERT_EQ(Finals(out).size(), 1u);
  EXPECT_EQ(Finals(out)[0].count, 2u);
  EXPECT_FALSE(w.Add("a", 59 * kS, 5, 1.0, &out));  // its window has closed: late
  EXPECT_EQ(w.stats().late, 1u);
}

TEST(Window, HoppingPutsAnEventInEveryWindowContainingIt) {
  WindowSpec s;
  s.kind = WindowKind::kHopping;
  s.size_ns = 60 * kS;
  s.hop_ns = 20 * kS;
  WindowOperator w(s);
  std::vector<WindowResult> out;
  w.Add("a", 50 * kS, 1, 5.0, &out);
  EXPECT_EQ(w.open_windows(), 3u);  // [0,60) [20,80) [40,100)
  w.Add("a", 200 * kS, 2, 1.0, &out);
  auto f = Finals(out);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].start, 0);
  EXPECT_EQ(f[1].start, 20 * kS);
  EXPECT_EQ(f[2].start, 40 * kS);
  for (const auto& x : f) EXPECT_EQ(x.sum, 5.0);
}

TEST(Window, SlidingHasOneWindowPerEventTimeOverThePreviousSize) {
  WindowSpec s;
  s.kind = WindowKind::kSliding;
  s.size_ns = 10 * kS;
  WindowOperator w(s);
  std::vector<WindowResult> out;
  w.Add("a", 1 * kS, 1, 1.0, &out);
  w.Add("a", 5 * kS, 2, 5.0, &out);
  w.Add("a", 12 * kS, 3, 12.0, &out);  // closes T=1 ({1}) and T=5 ({1,5}); T=12 covers (2,12]: {5,12}
  w.Add("a", 100 * kS, 4, 0.0, &out);
  auto f = Finals(out);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].end, 1 * kS + 1);
  EXPECT_EQ(f[0].sum, 1.0);
  EXPECT_EQ(f[1].end, 5 * kS + 1);
  EXPECT_EQ(f[1].sum, 6.0);
  EXPECT_EQ(f[2].end, 12 * kS + 1);
  EXPECT_EQ(f[2].sum, 17.0);
}

TEST(Window, SessionsSplitOnGapsAndMergeOnOutOfOrderEvents) {
  WindowSpec s;
  s.kind = WindowKind::kSession;
  s.gap_ns = 10 * kS;
  s.lateness_ns = 30 * kS;
  WindowOperator w(s);
  std::vector<WindowResult> out;
  w.Add("a", 0, 1, 1.0, &out);
  w.Add("a", 15 * kS, 2, 2.0, &out);
  EXPECT_EQ(w.open_windows(), 2u);  // [0,10) [15,25)
  w.Add("a", 8 * kS, 3, 3.0, &out);  // bridges both: [0,25)
  EXPECT_EQ(w.open_windows(), 1u);
  w.Add("a", 100 * kS, 4, 4.0, &out);
  auto f = Finals(out);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].start, 0);
  EXPECT_EQ(f[0].end, 25 * kS);
  EXPECT_EQ(f[0].count, 3u);
  EXPECT_EQ(out[0].agg.last, 2.0);  // by event time, not arrival
}

TEST(Window, IdleKeysCloseAndStayClosed) {
  WindowSpec s = Tumbling(60 * kS);
  s.idle_ns = 30 * kS;
  WindowOperator w(s);
  std::vector<WindowResult> out;
  w.Advance(1000 * kS, &out);
  w.Add("quiet", 5 * kS, 1, 1.0, &out);
  w.Advance(1010 * kS, &out);
  w.Add("busy", 5 * kS, 2, 1.0, &out);
  w.Advance(1029 * kS, &out);
  EXPECT_TRUE(out.empty());
  w.Advance(1030 * kS, &out);  // quiet: 30 s without an event
  auto f = Finals(out);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].key, "quiet");
  EXPECT_EQ(f[0].reason, WindowClose::kIdle);
  EXPECT_FALSE(w.Add("quiet", 6 * kS, 3, 1.0, &out));  // the closed window does not reopen
  EXPECT_TRUE(w.Add("quiet", 61 * kS, 4, 1.0, &out));
  EXPECT_EQ(w.stats().closed[static_cast<int>(WindowClose::kIdle)], 1u);
}

TEST(Window, BoundsCloseTheOldestEarlyAndCountIt) {
  WindowSpec s = Tumbling(60 * kS);
  s.max_keys = 2;
  s.max_windows = 2;
  s.lateness_ns = 1000 * kS;  // only the bounds close anything here
  WindowOperator w(s);
  std::vector<WindowResult> out;
  w.Advance(1, &out);
  w.Add("a", 0, 1, 1.0, &out);
  w.Advance(2, &out);
  w.Add("b", 0, 2, 1.0, &out);
  w.Advance(3, &out);
  w.Add("c", 0, 3, 1.0, &out);  // a is the least recently active
  auto f = Finals(out);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].key, "a");
  EXPECT_EQ(f[0].reason, WindowClose::kMaxKeys);
  EXPECT_EQ(w.keys(), 2u);
  out.clear();
  // Out-of-order windows for one key: [120,180) and [0,60) open, [60,120) makes three.
  w.Add("b", 120 * kS, 4, 1.0, &out);
  EXPECT_TRUE(out.empty());
  w.Add("b", 60 * kS, 5, 1.0, &out);
  f = Finals(out);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].start, 0);
  EXPECT_EQ(f[0].reason, WindowClose::kMaxWindows);
  EXPECT_FALSE(w.Add("b", 30 * kS, 6, 1.0, &out));  // closed early: stays closed
}

TEST(Window, EarlyResultsEveryNEvents) {
  WindowSpec s = Tumbling(60 * kS);
  s.early_every = 2;
  WindowOperator w(s);
  std::vector<WindowResult> out;
  for (int i = 0; i < 5; ++i) w.Add("a", i * kS, static_cast<uint64_t>(i), 1.0, &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].kind, WindowResult::kEarly);
  EXPECT_EQ(out[0].agg.count, 2u);
  EXPECT_EQ(out[1].agg.count, 4u);
}

TEST(Window, StateRoundTripContinuesExactlyAsUninterrupted) {
  for (WindowKind kind : {WindowKind::kTumbling, WindowKind::kHopping, WindowKind::kSliding, WindowKind::kSession}) {
    WindowSpec s;
    s.kind = kind;
    s.size_ns = 20 * kS;
    s.hop_ns = 5 * kS;
    s.gap_ns = 7 * kS;
    s.lateness_ns = 9 * kS;
    s.idle_ns = 50 * kS;
    s.sketch = true;
    std::mt19937 rng(static_cast<unsigned>(kind) + 1);
    struct E {
      std::string key;
      int64_t t;
      double v;
      int64_t now;
    };
    std::vector<E> es;
    for (int i = 0; i < 400; ++i)
      es.push_back({"k" + std::to_string(rng() % 4), static_cast<int64_t>(i / 2 + rng() % 30) * kS,
                    static_cast<double>(rng() % 100), static_cast<int64_t>(i) * kS});
    WindowOperator a(s);
    std::vector<WindowResult> ra;
    for (size_t i = 0; i < es.size(); ++i) {
      a.Advance(es[i].now, &ra);
      a.Add(es[i].key, es[i].t, i, es[i].v, &ra);
    }
    // The same, but the state goes through bytes every 37 events (as through the log after each batch).
    auto b = std::make_unique<WindowOperator>(s);
    std::vector<WindowResult> rb;
    std::map<std::string, std::string> disk;
    std::string meta;
    for (size_t i = 0; i < es.size(); ++i) {
      b->Advance(es[i].now, &rb);
      b->Add(es[i].key, es[i].t, i, es[i].v, &rb);
      if (i % 37 == 36) {
        for (auto& [k, v] : b->TakeDirty()) {
          if (v) disk[k] = *v;
          else disk.erase(k);
        }
        meta = b->SerializeMeta();
        b = std::make_unique<WindowOperator>(s);
        for (const auto& [k, v] : disk) ASSERT_TRUE(b->LoadKey(k, v));
        ASSERT_TRUE(b->LoadMeta(meta));
      }
    }
    ASSERT_EQ(ra.size(), rb.size()) << static_cast<int>(kind);
    for (size_t i = 0; i < ra.size(); ++i) {
      EXPECT_EQ(ra[i].key, rb[i].key);
      EXPECT_EQ(ra[i].start, rb[i].start);
      EXPECT_EQ(ra[i].end, rb[i].end);
      EXPECT_EQ(ra[i].agg.count, rb[i].agg.count);
      EXPECT_EQ(ra[i].agg.sum, rb[i].agg.sum);
      EXPECT_EQ(ra[i].agg.first, rb[i].agg.first);
      EXPECT_EQ(ra[i].agg.last, rb[i].agg.last);
      EXPECT_TRUE(ra[i].agg.sketch == rb[i].agg.sketch);
    }
    EXPECT_GT(ra.size(), 10u);
  }
}

TEST(Window, DamagedStateIsRefusedNotTrusted) {
  WindowSpec s = Tumbling(60 * kS);
  s.sketch = true;
  WindowOperator w(s);
  std::vector<WindowResult> out;
  for (int i = 0; i < 10; ++i) w.Add("a", i * kS, static_cast<uint64_t>(i), i * 1.5, &out);
  auto dirty = w.TakeDirty();
  ASSERT_EQ(dirty.size(), 1u);
  const std::string good = *dirty[0].second;
  {
    WindowOperator r(s);
    EXPECT_TRUE(r.LoadKey("a", good));
  }
  for (size_t cut = 0; cut < good.size(); ++cut) {
    WindowOperator r(s);
    EXPECT_FALSE(r.LoadKey("a", good.substr(0, cut))) << "truncated at " << cut;
  }
  std::string future = good;
  future[0] = 9;  // a format version this build does not know
  WindowOperator r(s);
  EXPECT_FALSE(r.LoadKey("a", future));
  EXPECT_FALSE(r.LoadKey("a", good + "x"));
  EXPECT_FALSE(r.LoadMeta(""));
}

TEST(QuantileSketch, WithinTheDocumentedRelativeError) {
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    QuantileSketch s, a, b;
    std::vector<double> xs;
    const int n = 1 + static_cast<int>(rng() % 3000);
    std::lognormal_distribution<double> d(3.0, round % 2 ? 0.3 : 0.05);
    for (int i = 0; i < n; ++i) {
      double x = d(rng) * (round % 3 == 0 && i % 5 == 0 ? -1 : 1);
      xs.push_back(x);
      s.Add(x);
      (i % 2 ? a : b).Add(x);
    }
    a.Merge(b);
    std::sort(xs.begin(), xs.end());
    for (double q : {0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0}) {
      const double exact = xs[static_cast<size_t>(std::floor(q * (n - 1)))];
      EXPECT_LE(std::fabs(s.Quantile(q) - exact), QuantileSketch::kRelativeError * std::fabs(exact) + 1e-12)
          << "q " << q << " n " << n;
      EXPECT_EQ(a.Quantile(q), s.Quantile(q));  // merging halves = adding all
    }
    std::string bytes;
    s.AppendTo(&bytes);
    QuantileSketch back;
    const char* p = bytes.data();
    ASSERT_TRUE(back.ReadFrom(&p, bytes.data() + bytes.size()));
    EXPECT_TRUE(back == s);
  }
}

TEST(QuantileSketch, StaysBoundedOverAHugeRange) {
  QuantileSketch s;
  for (int i = -300; i < 300; ++i) s.Add(std::pow(10.0, i / 2.0));
  std::string bytes;
  s.AppendTo(&bytes);
  EXPECT_LT(bytes.size(), 2 * QuantileSketch::kMaxBuckets * 4);
  // The top of the range kept full precision.
  EXPECT_NEAR(s.Quantile(1.0), std::pow(10.0, 299 / 2.0), std::pow(10.0, 299 / 2.0) * 0.011);
}

}  // namespace
}  // namespace ferry
