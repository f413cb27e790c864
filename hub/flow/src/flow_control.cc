#include "ferry/flow_control.h"

#include <algorithm>

namespace ferry {

Backoff::Backoff(std::chrono::nanoseconds min, std::chrono::nanoseconds max, uint64_t seed)
    : min_(min), max_(std::max(min, max)), rng_(seed) {}

std::chrono::nanoseconds Backoff::Next() {
  // Ceiling min * 2^attempt, computed without overflow.
  int64_t ceiling = min_.count();
  for (unsigned i = 0; i < attempt_ && ceiling < max_.count(); ++i) ceiling *= 2;
  ceiling = std::min(ceiling, max_.count());
  if (attempt_ < 64) ++attempt_;
  std::uniform_int_distribution<int64_t> dist(min_.count(), ceiling);
  return std::chrono::nanoseconds(dist(rng_));
}

void RateLimiter::SetRate(uint64_t bytes_per_sec) {
  rate_ = bytes_per_sec;
  tokens_ = std::min(tokens_, static_cast<double>(rate_));
}

void RateLimiter::Refill(SteadyTime now) {
  if (!started_) {
    started_ = true;
    last_ = now;
    tokens_ = static_cast<double>(rate_);  // start full: one second of burst
    return;
  }
  if (now <= last_) return;
  double secs = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  tokens_ = std::min(static_cast<double>(rate_), tokens_ + secs * static_cast<double>(rate_));
}

bool RateLimiter::TryTake(uint64_t bytes, SteadyTime now) {
  if (rate_ == 0) return true;
  Refill(now);
  double need = std::min(static_cast<double>(bytes), static_cast<double>(rate_));
  if (tokens_ + 1e-9 < need) return false;
  tokens_ -= static_cast<double>(bytes);  // may go negative for an oversize message: later sends wait longer
  return true;
}

std::chrono::nanoseconds RateLimiter::WaitFor(uint64_t bytes, SteadyTime now) {
  if (rate_ == 0) return std::chrono::nanoseconds(0);
  Refill(now);
  double need = std::min(static_cast<double>(bytes), static_cast<double>(rate_));
  if (tokens_ >= need) return std::chrono::nanoseconds(0);
  double secs = (need - tokens_) / static_cast<double>(rate_);
  return std::chrono::nanoseconds(static_cast<int64_t>(secs * 1e9) + 1);
}

DedupeWindow::DedupeWindow(std::chrono::nanoseconds window, size_t capacity)
    : window_(window), capacity_(capacity) {
  if (capacity_ == 0) return;
  size_t slots = 16;
  while (slots < 2 * capacity_) slots *= 2;
  table_.assign(slots, 0);
  ring_.resize(capacity_);
}

uint64_t DedupeWindow::Hash(std::string_view id) {
  // FNV-1a 64, then the splitmix64 finalizer for avalanche. 0 marks an empty slot, so it is never a hash.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : id) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h == 0 ? 1 : h;
}

size_t DedupeWindow::Find(uint64_t h) const {
  if (table_.empty()) return kNone;
  const size_t mask = table_.size() - 1;
  const uint64_t high = h >> 32;
  for (size_t i = static_cast<size_t>(high) & mask;; i = (i + 1) & mask) {
    const uint64_t slot = table_[i];
    if (slot == 0) return kNone;
    if (slot >> 32 == high && ring_[Pos(slot)].hash == h) return i;
  }
}

void DedupeWindow::EraseSlot(size_t i) {
  // Backward-shift deletion keeps every probe sequence unbroken without tombstones.
  const size_t mask = table_.size() - 1;
  for (size_t j = (i + 1) & mask; table_[j] != 0; j = (j + 1) & mask) {
    size_t home = Home(table_[j]);
    // Move j back to i if its home is not in (i, j] (cyclically).
    bool in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!in_range) {
      table_[i] = table_[j];
      i = j;
    }
  }
  table_[i] = 0;
}

void DedupeWindow::Forget(std::string_view id) {
  size_t i = Find(Hash(id));
  if (i == kNone) return;
  ring_[Pos(table_[i])].hash = 0;
  EraseSlot(i);
}

void DedupeWindow::PopOldest() {
  // A forgotten entry is no longer in the table (and its id may be there again, at a newer position).
  if (ring_[head_].hash != 0) {
    size_t i = Find(ring_[head_].hash);
    if (i != kNone && Pos(table_[i]) == head_) EraseSlot(i);
  }
  head_ = (head_ + 1) % capacity_;
  --count_;
}

void DedupeWindow::Expire(TimeNs now) {
  while (count_ > 0 && now.ns - ring_[head_].time_ns > window_.count()) PopOldest();
}

bool DedupeWindow::Insert(std::string_view id, TimeNs now) {
  Expire(now);
  if (capacity_ == 0) return true;
  uint64_t h = Hash(id);
  if (Find(h) != kNone) return false;
  if (count_ == capacity_) PopOldest();
  const size_t pos = (head_ + count_) % capacity_;
  const size_t mask = table_.size() - 1;
  size_t i = static_cast<size_t>(h >> 32) & mask;
  while (table_[i] != 0) i = (i + 1) & mask;
  table_[i] = Slot(h, pos);
  ring_[pos] = Entry{now.ns, h};
  ++count_;
  return true;
}

}  // namespace ferry
