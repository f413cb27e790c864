// ferry/clock.h: injected time. Nothing in ferry reads the wall clock directly; tests use ManualClock and
// drive background loops through their step() methods instead of sleeping.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace ferry {

// Nanoseconds since the Unix epoch. A distinct type so it is not confused with sequence numbers.
struct TimeNs {
  int64_t ns = 0;
  friend bool operator==(TimeNs a, TimeNs b) { return a.ns == b.ns; }
  friend bool operator!=(TimeNs a, TimeNs b) { return a.ns != b.ns; }
  friend bool operator<(TimeNs a, TimeNs b) { return a.ns < b.ns; }
  friend bool operator<=(TimeNs a, TimeNs b) { return a.ns <= b.ns; }
  friend bool operator>(TimeNs a, TimeNs b) { return a.ns > b.ns; }
  friend bool operator>=(TimeNs a, TimeNs b) { return a.ns >= b.ns; }
};

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall time (CloudEvents `time`, ingest time, retention ages). Thread-safe.
  virtual TimeNs Now() const = 0;
  // Monotonic time for timeouts and intervals. Thread-safe.
  virtual std::chrono::steady_clock::time_point Steady() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimeNs Now() const override {
    return TimeNs{std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count()};
  }
  std::chrono::steady_clock::time_point Steady() const override { return std::chrono::steady_clock::now(); }
  static SystemClock& Instance() {
    static SystemClock clock;
    return clock;
  }
};

// A clock that moves only when told to. Both Now() and Steady() advance together.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimeNs start = TimeNs{1'700'000'000'000'000'000}) : now_(start.ns) {}
  TimeNs Now() const override { return TimeNs{now_.load()}; }
  std::chrono::steady_clock::time_point Steady() const override {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(now_.load()));
  }
  void Advance(std::chrono::nanoseconds d) { now_ += d.count(); }
  void Set(TimeNs t) { now_ = t.ns; }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace ferry
