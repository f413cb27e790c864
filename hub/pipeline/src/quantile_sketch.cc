#include "ferry/quantile_sketch.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "window_codec.h"

namespace ferry {
namespace {
constexpr double kGamma = (1 + QuantileSketch::kRelativeError) / (1 - QuantileSketch::kRelativeError);
const double kLogGamma = std::log(kGamma);
constexpr int kIndexLimit = 32000;  // |index| fits int16 with room; g^32000 is beyond 1e270
}  // namespace

int QuantileSketch::IndexOf(double magnitude) {
  double i = std::ceil(std::log(magnitude) / kLogGamma);
  return static_cast<int>(std::max<double>(-kIndexLimit, std::min<double>(kIndexLimit, i)));
}

double QuantileSketch::ValueOf(int index) { return 2 * std::pow(kGamma, index) / (kGamma + 1); }

void QuantileSketch::AddTo(std::vector<Bucket>* store, int index, uint32_t n) {
  auto it = std::lower_bound(store->begin(), store->end(), index,
                             [](const Bucket& b, int i) { return b.index < i; });
  if (it != store->end() && it->index == index) {
    it->count = it->count > UINT32_MAX - n ? UINT32_MAX : it->count + n;
  } else {
    store->insert(it, Bucket{static_cast<int16_t>(index), n});
    if (store->size() > kMaxBuckets) Collapse(store);
  }
}

// Merges the smallest magnitudes into one bucket so that kMaxBuckets remain.
void QuantileSketch::Collapse(std::vector<Bucket>* store) {
  const size_t extra = store->size() - kMaxBuckets;
  uint64_t n = 0;
  for (size_t i = 0; i <= extra; ++i) n += (*store)[i].count;
  Bucket merged{(*store)[extra].index, static_cast<uint32_t>(std::min<uint64_t>(n, UINT32_MAX))};
  store->erase(store->begin(), store->begin() + static_cast<std::ptrdiff_t>(extra));
  store->front() = merged;
}

void QuantileSketch::Add(double x) {
  ++count_;
  if (x == 0 || !std::isfinite(x)) {
    ++zero_;
  } else if (x > 0) {
    AddTo(&pos_, IndexOf(x), 1);
  } else {
    AddTo(&neg_, IndexOf(-x), 1);
  }
}

void QuantileSketch::Merge(const QuantileSketch& other) {
  count_ += other.count_;
  zero_ += other.zero_;
  for (const Bucket& b : other.pos_) AddTo(&pos_, b.index, b.count);
  for (const Bucket& b : other.neg_) AddTo(&neg_, b.index, b.count);
}

double QuantileSketch::Quantile(double q) const {
  // The value at rank floor(q (n-1)): walk from the most negative value up.
  const uint64_t rank = static_cast<uint64_t>(std::floor(q * static_cast<double>(count_ - 1)));
  uint64_t seen = 0;
  for (auto it = neg_.rbegin(); it != neg_.rend(); ++it) {
    seen += it->count;
    if (seen > rank) return -ValueOf(it->index);
  }
  seen += zero_;
  if (seen > rank) return 0;
  for (const Bucket& b : pos_) {
    seen += b.count;
    if (seen > rank) return ValueOf(b.index);
  }
  return pos_.empty() ? 0 : ValueOf(pos_.back().index);  // unreachable unless counts saturated
}

void QuantileSketch::AppendTo(std::string* out) const {
  PutVarint(out, count_);
  PutVarint(out, zero_);
  for (const auto* store : {&pos_, &neg_}) {
    PutVarint(out, store->size());
    int prev = 0;
    for (const Bucket& b : *store) {
      PutSigned(out, b.index - prev);  // sorted: small deltas
      prev = b.index;
      PutVarint(out, b.count);
    }
  }
}

bool QuantileSketch::ReadFrom(const char** p, const char* end) {
  uint64_t count = 0, zero = 0;
  if (!GetVarint(p, end, &count) || !GetVarint(p, end, &zero) || zero > UINT32_MAX) return false;
  count_ = count;
  zero_ = static_cast<uint32_t>(zero);
  for (auto* store : {&pos_, &neg_}) {
    uint64_t n = 0;
    if (!GetVarint(p, end, &n) || n > kMaxBuckets) return false;
    store->clear();
    store->reserve(static_cast<size_t>(n));
    int64_t prev = 0;
    for (uint64_t i = 0; i < n; ++i) {
      int64_t delta = 0;
      uint64_t c = 0;
      if (!GetSigned(p, end, &delta) || !GetVarint(p, end, &c) || c > UINT32_MAX) return false;
      int64_t index = prev + delta;
      if (index < -kIndexLimit || index > kIndexLimit || (i > 0 && index <= prev)) return false;
      store->push_back(Bucket{static_cast<int16_t>(index), static_cast<uint32_t>(c)});
      prev = index;
    }
  }
  return true;
}

}  // namespace ferry
