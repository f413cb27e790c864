// Property test: random event orders, lateness and duplicates through each window kind, compared with a naive
// reference written here from the definitions in docs/processing.md "Windows" (no incremental state: it looks
// at the whole input at once). The last event of each key is a sentinel far in the future, so every window
// before it is closed by the watermark and both sides have emitted all of their results.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "ferry/window.h"

namespace ferry {
namespace {

struct Ev {
  std::string key;
  int64_t t;
  uint64_t order;  // arrival index
  double v;
};

struct Agg {
  uint64_t count = 0;
  double sum = 0, min = 0, max = 0, first = 0, last = 0;
  std::vector<double> values;
};

using Windows = std::map<std::tuple<std::string, int64_t, int64_t>, Agg>;  // (key, start, end)

Agg Aggregate(std::vector<const Ev*> es) {
  Agg a;
  std::sort(es.begin(), es.end(), [](const Ev* x, const Ev* y) { return std::tie(x->t, x->order) < std::tie(y->t, y->order); });
  for (const Ev* e : es) {
    a.values.push_back(e->v);
    a.sum += e->v;
  }
  a.count = es.size();
  a.min = *std::min_element(a.values.begin(), a.values.end());
  a.max = *std::max_element(a.values.begin(), a.values.end());
  a.first = es.front()->v;
  a.last = es.back()->v;
  std::sort(a.values.begin(), a.values.end());
  return a;
}

// wm_before[i]: the key's watermark when event i arrives = max(t - lateness) over the key's earlier events.
std::vector<int64_t> WatermarksBefore(const std::vector<Ev>& in, int64_t lateness) {
  std::map<std::string, int64_t> wm;
  std::vector<int64_t> out;
  for (const Ev& e : in) {
    auto it = wm.find(e.key);
    out.push_back(it == wm.end() ? INT64_MIN : it->second);
    int64_t& w = wm.emplace(e.key, INT64_MIN).first->second;
    w = std::max(w, e.t - lateness);
  }
  return out;
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

// Tumbling and hopping: an event is in every window [s, s+size) containing it, s a multiple of hop, that has not
// ended by the watermark at its arrival; late if in none.
Windows RefFixed(const std::vector<Ev>& in, int64_t size, int64_t hop, int64_t lateness, size_t* late) {
  auto wm = WatermarksBefore(in, lateness);
  std::map<std::tuple<std::string, int64_t, int64_t>, std::vector<const Ev*>> members;
  for (size_t i = 0; i < in.size(); ++i) {
    bool any = false;
    for (int64_t s = FloorDiv(in[i].t, hop) * hop; s + size > in[i].t; s -= hop) {
      if (s + size > wm[i]) {
        members[{in[i].key, s, s + size}].push_back(&in[i]);
        any = true;
      }
    }
    *late += !any;
  }
  Windows out;
  for (auto& [w, es] : members) out[w] = Aggregate(es);
  return out;
}

// Sessions: events not behind their key's watermark, sorted by time, split where two neighbours are gap or
// more apart; a session is [first, last + gap).
Windows RefSession(const std::vector<Ev>& in, int64_t gap, int64_t lateness, size_t* late) {
  auto wm = WatermarksBefore(in, lateness);
  std::map<std::string, std::vector<const Ev*>> by_key;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i].t < wm[i]) ++*late;
    else by_key[in[i].key].push_back(&in[i]);
  }
  Windows out;
  for (auto& [key, es] : by_key) {
    std::sort(es.begin(), es.end(), [](const Ev* x, const Ev* y) { return x->t < y->t; });
    size_t begin = 0;
    for (size_t i = 1; i <= es.size(); ++i) {
      if (i == es.size() || es[i]->t - es[i - 1]->t >= gap) {
        std::vector<const Ev*> part(es.begin() + static_cast<std::ptrdiff_t>(begin), es.begin() + static_cast<std::ptrdiff_t>(i));
        out[{key, part.front()->t, part.back()->t + gap}] = Aggregate(part);
        begin = i;
      }
    }
  }
  return out;
}

// Sliding: a window (T - size, T] exists for each time T of an event not behind the watermark at its arrival.
// Event e is late when its time is behind the watermark and no window created before it (T in [t, t + size),
// T not behind e's watermark) can take it. A window holds the events that are not late, inside its range,
// whose watermark at arrival was not past T.
Windows RefSliding(const std::vector<Ev>& in, int64_t size, int64_t lateness, size_t* late) {
  auto wm = WatermarksBefore(in, lateness);
  std::vector<bool> is_late(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i].t >= wm[i]) continue;
    bool open = false;
    for (size_t c = 0; c < i && !open; ++c)
      open = in[c].key == in[i].key && in[c].t >= wm[c] && in[c].t >= in[i].t && in[c].t < in[i].t + size &&
             in[c].t >= wm[i];
    is_late[i] = !open;
    *late += !open;
  }
  Windows out;
  for (size_t c = 0; c < in.size(); ++c) {
    if (in[c].t < wm[c]) continue;
    const int64_t T = in[c].t;
    auto w = std::make_tuple(in[c].key, T - size + 1, T + 1);
    if (out.count(w)) continue;
    std::vector<const Ev*> es;
    for (size_t i = 0; i < in.size(); ++i)
      if (!is_late[i] && in[i].key == in[c].key && in[i].t > T - size && in[i].t <= T && wm[i] <= T) es.push_back(&in[i]);
    out[w] = Aggregate(es);
  }
  return out;
}

std::vector<Ev> RandomInput(std::mt19937& rng, int64_t unit, int64_t sentinel) {
  std::vector<Ev> in;
  const int keys = 1 + static_cast<int>(rng() % 3);
  const int n = 20 + static_cast<int>(rng() % 150);
  const int disorder = static_cast<int>(rng() % 40);  // how far back an event's time may be
  for (int i = 0; i < n; ++i) {
    Ev e;
    e.key = "k" + std::to_string(rng() % keys);
    e.t = (i + static_cast<int>(rng() % (disorder + 1)) - disorder / 2) * unit;
    e.v = static_cast<double>(rng() % 50) - 10;  // integers: sums are exact in any order
    in.push_back(e);
    if (rng() % 8 == 0) in.push_back(e);  // a duplicate (delivered twice)
  }
  // Now and then a swap of neighbours, and a burst of old events.
  for (size_t i = 1; i < in.size(); ++i)
    if (rng() % 4 == 0) std::swap(in[i - 1], in[i]);
  for (int k = 0; k < keys; ++k) in.push_back(Ev{"k" + std::to_string(k), sentinel, 0, 0});
  for (size_t i = 0; i < in.size(); ++i) in[i].order = i;
  return in;
}

void Compare(const Windows& ref, const std::vector<WindowResult>& got, int64_t sentinel_start, const std::string& what) {
  size_t matched = 0;
  std::set<std::tuple<std::string, int64_t, int64_t>> got_windows;
  for (const WindowResult& r : got) {
    ASSERT_EQ(r.kind, WindowResult::kFinal);
    auto w = std::make_tuple(r.key, r.start, r.end);
    ASSERT_TRUE(got_windows.insert(w).second) << what << ": window emitted twice " << r.key << " " << r.start;
    auto it = ref.find(w);
    ASSERT_NE(it, ref.end()) << what << ": unexpected window " << r.key << " [" << r.start << "," << r.end << ")";
    const Agg& a = it->second;
    EXPECT_EQ(r.agg.count, a.count) << what << " " << r.key << " " << r.start;
    EXPECT_EQ(r.agg.sum, a.sum) << what;
    EXPECT_EQ(r.agg.min, a.min) << what;
    EXPECT_EQ(r.agg.max, a.max) << what;
    EXPECT_EQ(r.agg.first, a.first) << what << " " << r.key << " " << r.start;
    EXPECT_EQ(r.agg.last, a.last) << what << " " << r.key << " " << r.start;
    for (double q : {0.5, 0.95}) {
      const double exact = a.values[static_cast<size_t>(std::floor(q * static_cast<double>(a.values.size() - 1)))];
      const double est = std::min(a.max, std::max(a.min, r.agg.sketch.Quantile(q)));
      EXPECT_LE(std::fabs(est - exact), QuantileSketch::kRelativeError * std::fabs(exact) + 1e-9) << what << " q" << q;
    }
    ++matched;
  }
  // Every reference window before the sentinels was emitted.
  for (const auto& [w, a] : ref) {
    if (std::get<2>(w) > sentinel_start) continue;
    EXPECT_TRUE(got_windows.count(w)) << what << ": missing " << std::get<0>(w) << " [" << std::get<1>(w) << ","
                                        << std::get<2>(w) << ")";
  }
  EXPECT_GT(matched, 0u) << what;
}

TEST(WindowProperty, EveryKindMatchesTheNaiveReference) {
  const int64_t unit = 1'000;  // event-time unit (ns; the operator does not care)
  const int64_t sentinel = 1'000'000'000;
  std::mt19937 rng(2026);
  size_t checked = 0;
  for (int round = 0; round < 300; ++round) {
    const auto kind = static_cast<WindowKind>(round % 4);
    std::vector<Ev> in = RandomInput(rng, unit, sentinel);
    WindowSpec s;
    s.kind = kind;
    s.size_ns = (2 + static_cast<int64_t>(rng() % 12)) * unit;
    s.hop_ns = kind == WindowKind::kHopping ? (1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(s.size_ns / unit))) * unit : 0;
    s.gap_ns = (1 + static_cast<int64_t>(rng() % 6)) * unit;
    s.lateness_ns = static_cast<int64_t>(rng() % 20) * unit;
    s.sketch = true;
    s.max_windows = 1'000'000;
    s.max_points = 1'000'000;
    WindowOperator op(s);
    std::vector<WindowResult> got;
    size_t late = 0;
    for (const Ev& e : in) late += !op.Add(e.key, e.t, e.order, e.v, &got);
    size_t ref_late = 0;
    Windows ref;
    switch (kind) {
      case WindowKind::kTumbling: ref = RefFixed(in, s.size_ns, s.size_ns, s.lateness_ns, &ref_late); break;
      case WindowKind::kHopping: ref = RefFixed(in, s.size_ns, s.hop_ns, s.lateness_ns, &ref_late); break;
      case WindowKind::kSession: ref = RefSession(in, s.gap_ns, s.lateness_ns, &ref_late); break;
      case WindowKind::kSliding: ref = RefSliding(in, s.size_ns, s.lateness_ns, &ref_late); break;
    }
    const std::string what = "round " + std::to_string(round) + " kind " + std::to_string(static_cast<int>(kind));
    EXPECT_EQ(late, ref_late) << what;
    Compare(ref, got, sentinel - s.lateness_ns, what);
    if (::testing::Test::HasFailure()) break;
    ++checked;
  }
  EXPECT_EQ(checked, 300u);
}

}  // namespace
}  // namespace ferry
