// Metrics registry and Prometheus text exposition (format 0.0.4).
#include "ferry/metrics.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ferry/log.h"

namespace ferry {
namespace {

[[noreturn]] void Misuse(const std::string& what) {
  FERRY_LOG_ERROR("metrics: %s", what.c_str());
  std::abort();
}

bool ValidName(std::string_view n, bool allow_colon) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string EscapeHelp(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// {a="x",b="y"}, with an optional extra label (histogram "le"); "" for no labels.
std::string RenderLabels(const Labels& labels, const char* extra_name = nullptr, const std::string& extra = "") {
  if (labels.empty() && extra_name == nullptr) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k + "=\"" + EscapeLabelValue(v) + "\"";
  }
  if (extra_name != nullptr) {
    if (!first) out += ',';
    out += std::string(extra_name) + "=\"" + extra + "\"";
  }
  return out + "}";
}

const char* TypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatMetricValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // Counts reach here as doubles (collectors, callback gauges); the shortest form would print 100000 as
  // "1e+05". Whole numbers that a double holds exactly (|v| <= 2^53) print as integers.
  constexpr double kExactInt = 9007199254740992.0;  // 2^53
  if (v == std::trunc(v) && std::fabs(v) <= kExactInt) {
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v));
    return std::string(buf, r.ptr);
  }
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 1; i < bounds_.size(); ++i) {
    if (!(bounds_[i - 1] < bounds_[i])) Misuse("histogram bounds must be strictly ascending");
  }
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) noexcept {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;  // a handful of buckets: linear beats binary search
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  double cur = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::BucketCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

const std::vector<double>& CommitLatencyBuckets() {
  static const std::vector<double> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                               0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5, 5};
  return kBuckets;
}

MetricsRegistry::Family& MetricsRegistry::FamilyFor(const std::string& name, const std::string& help,
                                                    MetricType type) {
  if (!ValidName(name, true)) Misuse("bad metric name \"" + name + "\"");
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(name, Family{type, help, {}, nullptr}).first;
  } else if (it->second.type != type) {
    Misuse("metric \"" + name + "\" registered with two types");
  }
  return it->second;
}

MetricsRegistry::Child& MetricsRegistry::ChildFor(Family& f, const Labels& labels) {
  for (const auto& [k, v] : labels) {
    if (!ValidName(k, false) || k.rfind("__", 0) == 0) Misuse("bad label name \"" + k + "\"");
  }
  std::string key = RenderLabels(labels);
  auto it = f.children.find(key);
  if (it == f.children.end()) {
    it = f.children.emplace(key, Child{}).first;
    it->second.labels = labels;
  }
  return it->second;
}

Counter& MetricsRegistry::GetCounter(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Child& c = ChildFor(FamilyFor(name, help, MetricType::kCounter), labels);
  if (c.callback) Misuse("metric \"" + name + "\": a callback already owns these labels");
  if (!c.counter) c.counter = std::make_unique<Counter>();
  return *c.counter;
}

Gauge& MetricsRegistry::GetGauge(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Child& c = ChildFor(FamilyFor(name, help, MetricType::kGauge), labels);
  if (c.callback) Misuse("metric \"" + name + "\": a callback already owns these labels");
  if (!c.gauge) c.gauge = std::make_unique<Gauge>();
  return *c.gauge;
}

Histogram& MetricsRegistry::GetHistogram(const std::string& name, const std::string& help,
                                         const std::vector<double>& bounds, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Child& c = ChildFor(FamilyFor(name, help, MetricType::kHistogram), labels);
  if (!c.histogram) c.histogram = std::make_unique<Histogram>(bounds);
  return *c.histogram;
}

void MetricsRegistry::AddCallbackGauge(const std::string& name, const std::string& help, const Labels& labels,
                                       std::function<double()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  Child& c = ChildFor(FamilyFor(name, help, MetricType::kGauge), labels);
  if (c.gauge) Misuse("metric \"" + name + "\": a gauge already owns these labels");
  c.callback = std::move(fn);
}

void MetricsRegistry::AddCollector(const std::string& name, const std::string& help, MetricType type,
                                   std::function<void(std::vector<Sample>&)> fn) {
  if (type == MetricType::kHistogram) Misuse("collectors report counters or gauges");
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = FamilyFor(name, help, type);
  if (f.collector) Misuse("metric \"" + name + "\" already has a collector");
  f.collector = std::move(fn);
}

std::string MetricsRegistry::Render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + EscapeHelp(f.help) + "\n";
    out += "# TYPE " + name + " " + TypeName(f.type) + "\n";
    for (const auto& [key, c] : f.children) {
      if (c.counter) {
        out += name + key + " " + std::to_string(c.counter->Value()) + "\n";
      } else if (c.gauge) {
        out += name + key + " " + std::to_string(c.gauge->Value()) + "\n";
      } else if (c.callback) {
        out += name + key + " " + FormatMetricValue(c.callback()) + "\n";
      } else if (c.histogram) {
        const auto& bounds = c.histogram->bounds();
        auto counts = c.histogram->BucketCounts();
        uint64_t cumulative = 0;
        for (size_t i = 0; i < counts.size(); ++i) {
          cumulative += counts[i];
          std::string le = i < bounds.size() ? FormatMetricValue(bounds[i]) : "+Inf";
          out += name + "_bucket" + RenderLabels(c.labels, "le", le) + " " + std::to_string(cumulative) + "\n";
        }
        // _count is the +Inf bucket so the two always agree within one scrape.
        out += name + "_sum" + key + " " + FormatMetricValue(c.histogram->Sum()) + "\n";
        out += name + "_count" + key + " " + std::to_string(cumulative) + "\n";
      }
    }
    if (f.collector) {
      std::vector<Sample> samples;
      f.collector(samples);
      for (const auto& s : samples) out += name + RenderLabels(s.labels) + " " + FormatMetricValue(s.value) + "\n";
    }
  }
  return out;
}

}  // namespace ferry
