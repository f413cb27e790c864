#include "sensors.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ferry::sim {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Engine: return "engine";
    case Kind::Gps: return "gps";
    case Kind::Vibration: return "vibration";
    case Kind::Door: return "door";
  }
  return "unknown";
}

double kind_weight(Kind k) {
  switch (k) {
    case Kind::Engine: return 1.0;
    case Kind::Gps: return 1.0;
    case Kind::Vibration: return 0.1;  // per burst start; a burst is 8..32 samples, so ~2x engine on average
    case Kind::Door: return 0.05;
  }
  return 1.0;
}

Sensor::Sensor(Kind kind, Rng& rng) : kind_(kind) {
  switch (kind) {
    case Kind::Engine:
      a_ = rng.range(70, 90);      // coolant temperature, C
      b_ = rng.range(800, 2500);   // rpm
      break;
    case Kind::Gps:
      a_ = rng.range(47.0, 55.0);  // lat
      b_ = rng.range(5.0, 15.0);   // lon
      c_ = rng.range(0, 90);       // speed km/h
      d_ = rng.range(0, 360);      // heading
      break;
    case Kind::Vibration:
      a_ = rng.range(0.01, 0.05);  // background rms g
      break;
    case Kind::Door:
      break;
  }
}

static double clamp(double v, double lo, double hi) { return std::min(hi, std::max(lo, v)); }

size_t Sensor::next(Rng& rng, char* buf, size_t len) {
  int n = 0;
  switch (kind_) {
    case Kind::Engine:
      a_ = clamp(a_ + rng.range(-0.3, 0.35), 60, 112);
      b_ = clamp(b_ + rng.range(-120, 120), 700, 5200);
      n = std::snprintf(buf, len, "\"temp_c\":%.1f,\"rpm\":%d,\"load_pct\":%d", a_, static_cast<int>(b_),
                        static_cast<int>(b_ / 52));
      break;
    case Kind::Gps: {
      c_ = clamp(c_ + rng.range(-4, 4), 0, 130);
      d_ = std::fmod(d_ + rng.range(-8, 8) + 360.0, 360.0);
      double step_deg = c_ / 3600.0 / 111.0;  // ~1 s of travel
      a_ += step_deg * std::cos(d_ * M_PI / 180.0);
      b_ += step_deg * std::sin(d_ * M_PI / 180.0);
      n = std::snprintf(buf, len, "\"lat\":%.6f,\"lon\":%.6f,\"speed_kmh\":%.1f,\"heading\":%d", a_, b_, c_,
                        static_cast<int>(d_));
      break;
    }
    case Kind::Vibration: {
      if (burst_left_ == 0) {
        burst_left_ = 8 + rng.below(25);
        ++burst_id_;
        burst_i_ = 0;
      }
      --burst_left_;
      double env = std::sin(M_PI * (burst_i_ + 0.5) / (burst_i_ + burst_left_ + 1.0));
      double rms = a_ + env * rng.range(0.2, 1.5);
      n = std::snprintf(buf, len, "\"rms_g\":%.3f,\"peak_g\":%.3f,\"burst\":%u,\"i\":%u", rms,
                        rms * rng.range(1.4, 3.0), burst_id_, burst_i_);
      ++burst_i_;
      break;
    }
    case Kind::Door: {
      open_ = !open_;
      bool alarm = open_ && rng.uniform() < 0.1;
      n = std::snprintf(buf, len, "\"open\":%s,\"alarm\":%s", open_ ? "true" : "false", alarm ? "true" : "false");
      break;
    }
  }
  if (n < 0) return 0;
  return std::min(static_cast<size_t>(n), len - 1);
}

}  // namespace ferry::sim
