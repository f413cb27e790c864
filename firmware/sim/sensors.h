// Simulated sensors: a deterministic RNG and the per-kind value models of ferry-sim.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ferry::sim {

// splitmix64: tiny, fast and identical on every platform (std distributions are not), so --seed
// reproduces a run exactly.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0,1)
  double range(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(uniform() * n); }

 private:
  uint64_t s_;
};

enum class Kind { Engine, Gps, Vibration, Door };
constexpr int kKinds = 4;
const char* kind_name(Kind k);
// Relative event rate of one device of this kind (door/alarm is sparse, vibration comes in bursts).
double kind_weight(Kind k);

// The state of one device's sensor; next() advances it and writes the event's JSON members.
class Sensor {
 public:
  Sensor(Kind kind, Rng& rng);
  Kind kind() const { return kind_; }
  // Writes JSON members (no braces) into buf; returns their length (truncated to len - 1 at worst).
  size_t next(Rng& rng, char* buf, size_t len);
  // Events still owed in the current vibration burst (0 for the other kinds).
  uint32_t burst_left() const { return burst_left_; }

 private:
  Kind kind_;
  double a_ = 0, b_ = 0, c_ = 0, d_ = 0;  // kind-specific: temp/rpm, lat/lon/speed/heading, ...
  uint32_t burst_left_ = 0, burst_id_ = 0, burst_i_ = 0;
  bool open_ = false;
};

}  // namespace ferry::sim
