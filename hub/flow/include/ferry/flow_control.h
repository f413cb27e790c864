// ferry/flow_control.h: the small time-driven pieces shared by ingest and uplinks: reconnect backoff, a
// bytes-per-second cap and the redelivered-id window. All take time as arguments (from an injected Clock), so
// tests step them without sleeping. None is thread-safe: each belongs to one loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstddef>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/clock.h"

namespace ferry {

using SteadyTime = std::chrono::steady_clock::time_point;

// Exponential backoff with "full jitter" (AWS architecture blog): the n-th delay is uniform in
// [min, min(max, min * 2^n)], so a fleet of gateways reconnecting after a central outage does not stampede.
class Backoff {
 public:
  // REQUIRES: 0 < min <= max.
  Backoff(std::chrono::nanoseconds min, std::chrono::nanoseconds max, uint64_t seed);
  // The delay before the next attempt; each call doubles the ceiling up to max.
  std::chrono::nanoseconds Next();
  // After a success: the next failure starts from min again.
  void Reset() { attempt_ = 0; }
  unsigned attempts() const { return attempt_; }

 private:
  std::chrono::nanoseconds min_, max_;
  unsigned attempt_ = 0;
  std::mt19937_64 rng_;
};

// A token bucket holding up to one second of budget (at least one max-size message). rate 0 = no cap.
class RateLimiter {
 public:
  explicit RateLimiter(uint64_t bytes_per_sec = 0) : rate_(bytes_per_sec) {}
  void SetRate(uint64_t bytes_per_sec);
  uint64_t rate() const { return rate_; }
  // True if `bytes` may be sent at `now` (and takes them). A message larger than the bucket is allowed once
  // the bucket is full, so a cap below the message size slows the link down rather than stalling it.
  bool TryTake(uint64_t bytes, SteadyTime now);
  // How long until `bytes` could be taken (0 if now).
  std::chrono::nanoseconds WaitFor(uint64_t bytes, SteadyTime now);

 private:
  void Refill(SteadyTime now);
  uint64_t rate_;
  double tokens_ = 0;
  bool started_ = false;
  SteadyTime last_{};
};

// Remembers event ids seen within `window` (by ingest time), at most `capacity` of them (oldest forgotten
// first). Insert returns false for an id already inside the window: a QoS 1 redelivery or a device resend.
//
// Memory is fixed at construction and nothing is allocated per event: ids are kept as 64-bit hashes in a ring
// of (time, hash) in arrival order, indexed by an open-addressing table (2 slots per id, each the ring position
// and the hash's high half); about 32 bytes per id (3.2 MB for 100,000). The price is a false "duplicate" with
// probability about n / 2^64 per event for n ids in the window (5e-15 at n = 100,000).
class DedupeWindow {
 public:
  DedupeWindow(std::chrono::nanoseconds window, size_t capacity);
  // Returns true if `id` is new (and remembers it), false if it is a duplicate within the window.
  bool Insert(std::string_view id, TimeNs now);
  bool Contains(std::string_view id) const { return Find(Hash(id)) != kNone; }
  // Forgets `id` (an event that could not be stored after all), so its re-send is not a duplicate. Its place
  // in the ring stays, marked forgotten, until it ages out: a later Insert of the same id is a new entry that
  // the old one's expiry leaves alone.
  void Forget(std::string_view id);
  // Ring entries, forgotten ones included until they age out.
  size_t size() const { return count_; }
  void Expire(TimeNs now);
  static uint64_t Hash(std::string_view id);

 private:
  static constexpr size_t kNone = SIZE_MAX;
  // A table slot: 0 = empty, else (hash >> 32) << 32 | (ring position + 1). The high half picks the home
  // slot and filters probes; the ring holds the whole hash.
  static uint64_t Slot(uint64_t hash, size_t pos) { return (hash >> 32) << 32 | (static_cast<uint64_t>(pos) + 1); }
  size_t Home(uint64_t slot) const { return static_cast<size_t>(slot >> 32) & (table_.size() - 1); }
  size_t Pos(uint64_t slot) const { return static_cast<size_t>(slot & 0xffffffffu) - 1; }
  size_t Find(uint64_t h) const;  // the table index of h, or kNone
  void EraseSlot(size_t i);
  void PopOldest();

  std::chrono::nanoseconds window_;
  size_t capacity_;
  std::vector<uint64_t> table_;  // size a power of two, at least 2 * capacity_
  struct Entry {
    int64_t time_ns;
    uint64_t hash;  // 0: forgotten (a hash is never 0)
  };
  std::vector<Entry> ring_;  // arrival order, capacity_ entries
  size_t head_ = 0;          // oldest entry
  size_t count_ = 0;
};

}  // namespace ferry
