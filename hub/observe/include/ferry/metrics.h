// ferry/metrics.h: a small metrics registry rendering the Prometheus text format 0.0.4.
//
// Registration (Get*/Add*) takes a mutex and returns a reference that stays valid for the registry's life;
// keep it and update it on the hot path: Counter/Gauge/Histogram updates are lock-free atomics.
// Render() takes the mutex and calls the callback gauges and collectors under it.
//
// Thread-safety: every method may be called from any thread.
// REQUIRES (all Get*/Add*): a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), valid label names
// ([a-zA-Z_][a-zA-Z0-9_]*), and one type per name; a violation is a programming error and aborts.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Inc(uint64_t n = 1) noexcept { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void Set(int64_t v) noexcept { v_.store(v, std::memory_order_relaxed); }
  void Add(int64_t d) noexcept { v_.fetch_add(d, std::memory_order_relaxed); }
  int64_t Value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

class Histogram {
 public:
  // `bounds`: upper bounds in ascending order (the +Inf bucket is implicit).
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v) noexcept;
  void ObserveNs(int64_t ns) noexcept { Observe(static_cast<double>(ns) * 1e-9); }

  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (not cumulative) counts; the last one is the +Inf bucket.
  std::vector<uint64_t> BucketCounts() const;
  uint64_t Count() const noexcept { return count_.load(std::memory_order_relaxed); }
  double Sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Commit latency buckets, seconds: 100us .. 5s, tuned for SD cards (fsync of 1-50 ms).
const std::vector<double>& CommitLatencyBuckets();

enum class MetricType { kCounter, kGauge, kHistogram };

// One sample reported by a collector at render time.
struct Sample {
  Labels labels;
  double value;
};

class MetricsRegistry {
 public:
  Counter& GetCounter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& GetGauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& GetHistogram(const std::string& name, const std::string& help, const std::vector<double>& bounds,
                          const Labels& labels = {});
  // A gauge computed at render time (e.g. map used bytes). Re-adding the same labels replaces the callback.
  void AddCallbackGauge(const std::string& name, const std::string& help, const Labels& labels,
                        std::function<double()> fn);
  // A family whose label sets are only known at render time (e.g. backlog per uplink and stream).
  // `type` is kCounter or kGauge. One collector per name.
  void AddCollector(const std::string& name, const std::string& help, MetricType type,
                    std::function<void(std::vector<Sample>&)> fn);

  // The whole registry in text format 0.0.4, families sorted by name, children by labels.
  std::string Render() const;

 private:
  struct Child {
    Labels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
    std::function<double()> callback;
  };
  struct Family {
    MetricType type;
    std::string help;
    std::map<std::string, Child> children;  // by rendered label string
    std::function<void(std::vector<Sample>&)> collector;
  };
  Family& FamilyFor(const std::string& name, const std::string& help, MetricType type);
  Child& ChildFor(Family& f, const Labels& labels);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
};

// Text format helpers (exposed for tests).
std::string EscapeLabelValue(std::string_view v);  // \ " and newline
// Whole numbers up to 2^53 as integers ("100000", never "1e+05"); other values in the shortest round-trip
// form ("0.1", "1e+21"); +Inf, -Inf, NaN.
std::string FormatMetricValue(double v);
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// ---- The metrics ferryd exposes (docs/metrics.md lists the same; a test checks it) ----------------------------

struct MetricDecl {
  const char* name;
  MetricType type;
  const char* labels;  // comma-separated label names, "" for none
  const char* help;
};
const std::vector<MetricDecl>& FerryMetricDecls();
// Looks a declaration up by name; aborts if the name is not declared (a programming error).
const MetricDecl& FerryMetric(std::string_view name);

// The metric families ferryd declares (FerryMetricDecls), looked up with their declared help text.
inline Counter& DeclaredCounter(MetricsRegistry& m, const char* name, const Labels& labels = {}) {
  return m.GetCounter(name, FerryMetric(name).help, labels);
}
inline Gauge& DeclaredGauge(MetricsRegistry& m, const char* name, const Labels& labels = {}) {
  return m.GetGauge(name, FerryMetric(name).help, labels);
}

}  // namespace ferry
