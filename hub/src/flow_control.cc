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

void DedupeWindow::Expire(TimeNs now) {
  while (!order_.empty() &&
         (order_.size() > capacity_ || now.ns - order_.front().first.ns > window_.count())) {
    ids_.erase(order_.front().second);
    order_.pop_front();
  }
}

bool DedupeWindow::Insert(std::string_view id, TimeNs now) {
  Expire(now);
  std::string key(id);
  if (ids_.count(key)) return false;
  if (capacity_ == 0) return true;
  ids_.insert(key);
  order_.emplace_back(now, std::move(key));
  if (order_.size() > capacity_) Expire(now);
  return true;
}

}  // namespace ferry
