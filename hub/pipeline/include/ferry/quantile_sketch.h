// ferry/quantile_sketch.h: a bounded, mergeable quantile sketch for window aggregates (p50, p95, ...).
//
// A log-bucket histogram in the manner of DDSketch: a value x > 0 falls in bucket i = ceil(log_g(x)) with
// g = (1 + a) / (1 - a), a = kRelativeError; negative values in a mirror store; zero in its own count. The
// estimate returned for a bucket is 2 g^i / (g + 1), within a relative error `a` of every value in it.
//
// Error contract: Quantile(q) returns a value within kRelativeError (1%) of |x| of the exact value x at rank
// floor(q * (n - 1)) of the sorted input, as long as no bucket was collapsed. At most kMaxBuckets (256)
// buckets are kept per sign; beyond, the buckets of the smallest magnitudes are merged into one (so low
// quantiles of a range wider than g^256 ~ 160x lose precision first; the estimate is then still clamped to
// the exact min/max the caller tracks). 256 buckets at 1% cover values from 1 to ~160 with full precision,
// and any range where the spread of one window's values is within that ratio.
//
// Memory: 6 bytes per non-empty bucket (a window of temperatures holds a few dozen), serialised compactly.
// Adding is order-independent (counts commute) while no collapse happens: the same values in any order give
// the same sketch, which is what makes window results equal after a replay.
//
// Threads: none; a value type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry {

class QuantileSketch {
 public:
  static constexpr double kRelativeError = 0.01;
  static constexpr size_t kMaxBuckets = 256;

  void Add(double x);
  void Merge(const QuantileSketch& other);
  // REQUIRES: 0 <= q <= 1 and count() > 0.
  double Quantile(double q) const;
  uint64_t count() const { return count_; }
  bool empty() const { return count_ == 0; }

  void AppendTo(std::string* out) const;
  // Reads what AppendTo wrote at *p, advancing it; false on malformed bytes.
  bool ReadFrom(const char** p, const char* end);

  size_t memory() const { return (pos_.capacity() + neg_.capacity()) * sizeof(Bucket); }
  friend bool operator==(const QuantileSketch& a, const QuantileSketch& b) {
    return a.count_ == b.count_ && a.zero_ == b.zero_ && a.pos_ == b.pos_ && a.neg_ == b.neg_;
  }

 private:
  struct Bucket {
    int16_t index;
    uint32_t count;
    friend bool operator==(const Bucket& a, const Bucket& b) { return a.index == b.index && a.count == b.count; }
  };
  // Sorted by index.
  static void AddTo(std::vector<Bucket>* store, int index, uint32_t n);
  static void Collapse(std::vector<Bucket>* store);
  static int IndexOf(double magnitude);
  static double ValueOf(int index);

  uint64_t count_ = 0;
  uint32_t zero_ = 0;
  std::vector<Bucket> pos_;
  std::vector<Bucket> neg_;  // by |x|
};

}  // namespace ferry
