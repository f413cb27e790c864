// ferry-sim: N simulated devices (engine, gps, vibration, door) publishing telemetry through the ferry
// publisher library over a pool of MQTT connections. Bounded (--count / --duration), deterministic
// (--seed), with optional clock faults and deliberate duplicates. docs/firmware.md has the options.
#include <sys/stat.h>
#include <time.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ferry_pub.h"
#include "sensors.h"

namespace {

using ferry::sim::Kind;
using ferry::sim::Rng;
using ferry::sim::Sensor;

struct Options {
  std::string host = "127.0.0.1";
  int port = 1883;
  uint32_t devices = 10;
  uint32_t connections = 0;
  double rate = 1000;
  uint64_t count = 0;
  double duration = 0;
  uint64_t seed = 1;
  double dup_rate = 0;
  double clock_faults = 0;
  std::vector<std::string> clock_fault;  // "N=KIND": device N gets that fault
  uint32_t payload_size = 0;
  int qos = 1;
  std::string client_prefix = "ferry-sim";
  std::string device_prefix = "dev-";
  std::string topic_prefix = "telemetry";
  std::string state_dir = "/tmp/ferry-sim-state";
  std::string id_log;
  uint32_t ring = 8192;
  uint32_t max_inflight = 1000;
  double drain_timeout = 30;
  double connect_timeout = 10;
  bool quiet = false;
};

// The clock faults a gateway must survive (docs/firmware.md): a device without an RTC that boots at 1970, a
// clock set a day ahead, and a clock that is right until it jumps ahead.
enum class ClockFault { None, NoRtc, DayAhead, JumpAhead };
constexpr int kClockFaultKinds = 3;  // NoRtc, DayAhead, JumpAhead
const char* clock_fault_name(ClockFault f) {
  switch (f) {
    case ClockFault::None: return "none";
    case ClockFault::NoRtc: return "1970";
    case ClockFault::DayAhead: return "ahead";
    case ClockFault::JumpAhead: return "jump";
  }
  return "?";
}
// "1970", "ahead", "jump"; None for anything else.
ClockFault parse_clock_fault(const std::string& name) {
  for (ClockFault f : {ClockFault::NoRtc, ClockFault::DayAhead, ClockFault::JumpAhead})
    if (name == clock_fault_name(f)) return f;
  return ClockFault::None;
}

struct Device {
  ferry_dev dev{};
  Sensor sensor;
  uint32_t conn = 0;
  ClockFault fault = ClockFault::None;
  int64_t offset_ms = 0;        // NoRtc: uptime offset; DayAhead: the offset; JumpAhead: the jump
  uint64_t jump_after_seq = 0;  // JumpAhead: events before the jump
  char topic[FERRY_TOPIC_MAX] = {};
  Device(Kind k, Rng& rng) : sensor(k, rng) {}
};

struct Conn {
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> mem;
  ferry_pub* pub = nullptr;
  std::string client_id;
};

uint64_t mono_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}
double mono_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
int64_t wall_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}
void nap_us(long us) {
  timespec ts{0, us * 1000};
  nanosleep(&ts, nullptr);
}

int mkdir_p(const std::string& path) {
  std::string cur;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || (path[i] == '/' && i > 0)) {
      cur = path.substr(0, i);
      if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) return -1;
    }
  }
  return 0;
}

struct Totals {
  uint64_t produced = 0, dups = 0, dup_skipped = 0, stalls = 0;
  ferry_pub_stats pub{};
};

Totals sum_stats(const std::vector<Conn>& conns) {
  Totals t;
  for (const auto& c : conns) {
    ferry_pub_stats s;
    ferry_pub_get_stats(c.pub, &s);
    t.pub.published += s.published;
    t.pub.acked += s.acked;
    t.pub.sent += s.sent;
    t.pub.resent += s.resent;
    t.pub.dropped += s.dropped;
    t.pub.rejected += s.rejected;
    t.pub.connects += s.connects;
    t.pub.connect_failures += s.connect_failures;
    t.pub.connection_lost += s.connection_lost;
    t.pub.queued += s.queued;
    t.pub.inflight += s.inflight;
    t.pub.connected += s.connected;
  }
  return t;
}

class Simulator {
 public:
  explicit Simulator(const Options& o) : o_(o), rng_(o.seed) {}

  int run() {
    if (int rc = setup(); rc != 0) return rc;
    wait_connected();
    double t0 = mono_s();
    produce(t0);
    double produced_s = mono_s() - t0;
    bool drained = drain();
    double elapsed = mono_s() - t0;
    Totals t = sum_stats(conns_);
    if (id_log_ != nullptr) std::fclose(id_log_);
    uint64_t unacked = t.pub.queued;
    std::printf(
        "ferry-sim: produced=%" PRIu64 " duplicates=%" PRIu64 " messages=%" PRIu64 " acked=%" PRIu64
        " resent=%" PRIu64 " unacked=%" PRIu64 " stalls=%" PRIu64 " connects=%" PRIu64 " lost=%" PRIu64 " devices=%u connections=%zu"
        " elapsed_s=%.3f produce_rate=%.0f clock_1970=%" PRIu64 " clock_ahead=%" PRIu64 " clock_jump=%" PRIu64 "\n",
        produced_, dups_, t.pub.published, t.pub.acked, t.pub.resent, unacked, stalls_, t.pub.connects,
        t.pub.connection_lost, o_.devices, conns_.size(), elapsed, produced_s > 0 ? produced_ / produced_s : 0.0,
        faulty_[0], faulty_[1], faulty_[2]);
    std::fflush(stdout);
    for (auto& c : conns_) ferry_pub_destroy(c.pub);
    return drained ? 0 : 3;
  }

 private:
  int setup() {
    const char* state = nullptr;
    if (o_.state_dir != "none") {
      if (mkdir_p(o_.state_dir) != 0) {
        std::fprintf(stderr, "ferry-sim: cannot create state dir %s: %s\n", o_.state_dir.c_str(), std::strerror(errno));
        return 2;
      }
      state = o_.state_dir.c_str();
    }
    if (!o_.id_log.empty()) {
      id_log_ = std::fopen(o_.id_log.c_str(), "w");
      if (id_log_ == nullptr) {
        std::fprintf(stderr, "ferry-sim: cannot open %s: %s\n", o_.id_log.c_str(), std::strerror(errno));
        return 2;
      }
      std::setvbuf(id_log_, nullptr, _IOFBF, 1 << 20);
    }
    uint32_t nconn = o_.connections != 0 ? o_.connections : std::min<uint32_t>(o_.devices, 4);
    nconn = std::max<uint32_t>(1, std::min(nconn, o_.devices));
    uri_ = "tcp://" + o_.host + ":" + std::to_string(o_.port);
    uint32_t max_payload = std::max<uint32_t>(512, o_.payload_size + 64);
    conns_.resize(nconn);
    for (uint32_t i = 0; i < nconn; ++i) {
      Conn& c = conns_[i];
      c.client_id = o_.client_prefix + "-" + std::to_string(i);
      ferry_pub_config cfg{};
      cfg.server_uri = uri_.c_str();
      cfg.client_id = c.client_id.c_str();
      cfg.topic_prefix = o_.topic_prefix.c_str();
      cfg.capacity = o_.ring;
      cfg.max_payload = max_payload;
      cfg.max_inflight = o_.max_inflight;
      cfg.overflow = FERRY_PUB_OVERFLOW_REJECT;
      cfg.backoff_min_ms = 100;
      cfg.backoff_max_ms = 5000;
      cfg.jitter_pct = 20;
      cfg.qos0 = o_.qos == 0;
      size_t n = ferry_pub_mem_size(&cfg);
      if (n == 0) {
        std::fprintf(stderr, "ferry-sim: invalid publisher config\n");
        return 2;
      }
      c.mem.reset(std::aligned_alloc(16, (n + 15) & ~size_t{15}));
      int err = 0;
      c.pub = ferry_pub_init(c.mem.get(), n, &cfg, &err);
      if (c.pub == nullptr) {
        std::fprintf(stderr, "ferry-sim: publisher init failed (%d) for %s\n", err, uri_.c_str());
        return 2;
      }
    }
    devices_.reserve(o_.devices);
    int width = o_.devices > 10000 ? 6 : 4;
    std::vector<double> cum;
    double total = 0;
    for (uint32_t i = 0; i < o_.devices; ++i) {
      Kind k = static_cast<Kind>(i % ferry::sim::kKinds);
      devices_.emplace_back(k, rng_);
      Device& d = devices_.back();
      char id[FERRY_DEV_ID_MAX + 16];
      std::snprintf(id, sizeof id, "%s%0*u", o_.device_prefix.c_str(), width, i);
      int rc = ferry_dev_init(&d.dev, id, state);
      if (rc != FERRY_PUB_OK) {
        std::fprintf(stderr, "ferry-sim: device %s: boot counter in %s failed (%d)\n", id,
                     state != nullptr ? state : "-", rc);
        return 2;
      }
      d.conn = i % nconn;
      std::snprintf(d.topic, sizeof d.topic, "%s/%s/%s", o_.topic_prefix.c_str(), id, ferry::sim::kind_name(k));
      if (rng_.uniform() < o_.clock_faults)
        set_fault(d, static_cast<ClockFault>(1 + rng_.below(kClockFaultKinds)));
      total += ferry::sim::kind_weight(k);
      cum.push_back(total);
    }
    cum_ = std::move(cum);
    for (const auto& spec : o_.clock_fault) {  // checked by the option's validator
      auto eq = spec.find('=');
      uint32_t i = static_cast<uint32_t>(std::stoul(spec.substr(0, eq)));
      if (i >= o_.devices) {
        std::fprintf(stderr, "ferry-sim: --clock-fault %s: there are only %u devices\n", spec.c_str(), o_.devices);
        return 2;
      }
      set_fault(devices_[i], parse_clock_fault(spec.substr(eq + 1)));
    }
    return 0;
  }

  void set_fault(Device& d, ClockFault f) {
    d.fault = f;
    switch (f) {
      case ClockFault::None: break;
      case ClockFault::NoRtc: d.offset_ms = static_cast<int64_t>(rng_.below(60000)); break;  // 1970 + uptime
      case ClockFault::DayAhead: d.offset_ms = int64_t{86400000} + static_cast<int64_t>(rng_.below(3600000)); break;
      case ClockFault::JumpAhead:
        d.offset_ms = static_cast<int64_t>(3600000) * (1 + rng_.below(48));
        d.jump_after_seq = 5 + rng_.below(200);
        break;
    }
  }

  void poll_all() {
    for (auto& c : conns_) ferry_pub_poll(c.pub);
  }

  void wait_connected() {
    double deadline = mono_s() + o_.connect_timeout;
    for (;;) {
      poll_all();
      Totals t = sum_stats(conns_);
      if (t.pub.connected == static_cast<int>(conns_.size())) return;
      if (mono_s() >= deadline) {
        std::fprintf(stderr, "ferry-sim: %d/%zu connections up after %.0f s to %s; producing anyway (ring buffers)\n",
                     t.pub.connected, conns_.size(), o_.connect_timeout, uri_.c_str());
        return;
      }
      ferry_pub_wait(conns_[0].pub, 10);
    }
  }

  uint32_t pick_device() {
    if (burst_dev_ >= 0) {
      uint32_t d = static_cast<uint32_t>(burst_dev_);
      if (devices_[d].sensor.burst_left() > 0) return d;
      burst_dev_ = -1;
    }
    double x = rng_.uniform() * cum_.back();
    auto it = std::upper_bound(cum_.begin(), cum_.end(), x);
    uint32_t d = static_cast<uint32_t>(std::min<size_t>(static_cast<size_t>(it - cum_.begin()), cum_.size() - 1));
    if (devices_[d].sensor.kind() == Kind::Vibration) burst_dev_ = static_cast<int64_t>(d);
    return d;
  }

  int64_t device_time(const Device& d, int64_t now_wall, uint64_t seq) const {
    switch (d.fault) {
      case ClockFault::None: return now_wall;
      case ClockFault::NoRtc: return d.offset_ms + static_cast<int64_t>(mono_ms() - start_mono_ms_);
      case ClockFault::DayAhead: return now_wall + d.offset_ms;
      case ClockFault::JumpAhead: return seq > d.jump_after_seq ? now_wall + d.offset_ms : now_wall;
    }
    return now_wall;
  }
  // Whether the event with this seq carries the device's wrong time (a JumpAhead device is right until its jump).
  static bool clock_wrong(const Device& d, uint64_t seq) {
    return d.fault == ClockFault::JumpAhead ? seq > d.jump_after_seq : d.fault != ClockFault::None;
  }

  // Returns false when the connection's ring is full (the event stays pending).
  bool emit_pending(int64_t now_wall) {
    Device& d = devices_[pending_dev_];
    ferry_pub* pub = conns_[d.conn].pub;
    ferry_event ev{ferry::sim::kind_name(d.sensor.kind()), pending_fields_, 0, o_.payload_size};
    ev.time_ms = device_time(d, now_wall, d.dev.last_seq + 1);
    char id[FERRY_ID_MAX];
    int rc = ferry_pub_publish(pub, &d.dev, &ev, id, sizeof id);
    if (rc == FERRY_PUB_EFULL) return false;
    has_pending_ = false;
    if (rc != FERRY_PUB_OK) {
      std::fprintf(stderr, "ferry-sim: publish failed (%d) for %s\n", rc, d.dev.device_id);
      ++failed_;
      return true;
    }
    ++produced_;
    if (clock_wrong(d, d.dev.last_seq)) ++faulty_[static_cast<int>(d.fault) - 1];
    if (id_log_ != nullptr) {
      std::fputs(id, id_log_);
      std::fputc('\n', id_log_);
    }
    if (o_.dup_rate > 0 && rng_.uniform() < o_.dup_rate) {
      // The same id and payload again, as a QoS 1 redelivery would produce.
      char payload[4096];
      size_t len = 0;
      if (ferry_event_format(d.dev.device_id, d.dev.boot, d.dev.last_seq, &ev, payload, sizeof payload, &len) ==
              FERRY_PUB_OK &&
          ferry_pub_publish_raw(pub, d.topic, id, payload, len) == FERRY_PUB_OK)
        ++dups_;
      else
        ++dup_skipped_;
    }
    return true;
  }

  void produce(double t0) {
    start_mono_ms_ = mono_ms();
    double end = o_.duration > 0 ? t0 + o_.duration : 0;
    double next_report = t0 + 1;
    uint64_t last_report_n = 0;
    for (;;) {
      double now = mono_s();
      if (o_.count != 0 && produced_ >= o_.count) break;
      if (end != 0 && now >= end) break;
      uint64_t due = o_.rate > 0 ? static_cast<uint64_t>((now - t0) * o_.rate) + 1 : produced_ + 512;
      if (o_.count != 0) due = std::min(due, o_.count);
      int64_t now_wall = wall_ms();
      bool stalled = false;
      uint32_t batch = 0;
      while (produced_ < due && batch < 2048) {
        if (!has_pending_) {
          pending_dev_ = pick_device();
          devices_[pending_dev_].sensor.next(rng_, pending_fields_, sizeof pending_fields_);
          has_pending_ = true;
        }
        if (!emit_pending(now_wall)) {
          stalled = true;
          ++stalls_;
          break;
        }
        ++batch;
      }
      poll_all();
      if (stalled) {
        ferry_pub_wait(conns_[devices_[pending_dev_].conn].pub, 2);
      } else if (produced_ >= due && o_.rate > 0) {
        double wait = (static_cast<double>(produced_) / o_.rate) - (mono_s() - t0);
        if (wait > 0) nap_us(static_cast<long>(std::min(wait, 0.001) * 1e6));
      }
      if (!o_.quiet && now >= next_report) {
        Totals t = sum_stats(conns_);
        std::fprintf(stderr, "ferry-sim: t=%.0fs produced=%" PRIu64 " (+%" PRIu64 "/s) acked=%" PRIu64
                     " queued=%u connected=%d/%zu\n",
                     now - t0, produced_, produced_ - last_report_n, t.pub.acked, t.pub.queued, t.pub.connected,
                     conns_.size());
        last_report_n = produced_;
        next_report += 1;
      }
    }
  }

  bool drain() {
    double deadline = mono_s() + o_.drain_timeout;
    for (;;) {
      poll_all();
      Totals t = sum_stats(conns_);
      if (t.pub.queued == 0) return true;
      if (mono_s() >= deadline) {
        std::fprintf(stderr, "ferry-sim: drain timeout: %u messages unacknowledged\n", t.pub.queued);
        return false;
      }
      for (auto& c : conns_) ferry_pub_wait(c.pub, 1);
    }
  }

  Options o_;
  Rng rng_;
  std::string uri_;
  std::vector<Conn> conns_;
  std::vector<Device> devices_;
  std::vector<double> cum_;
  FILE* id_log_ = nullptr;
  int64_t burst_dev_ = -1;
  uint64_t start_mono_ms_ = 0;
  bool has_pending_ = false;
  uint32_t pending_dev_ = 0;
  char pending_fields_[512] = {};
  uint64_t produced_ = 0, dups_ = 0, dup_skipped_ = 0, stalls_ = 0, failed_ = 0;
  uint64_t faulty_[kClockFaultKinds] = {};  // produced events with a wrong time, by fault (NoRtc, DayAhead, JumpAhead)
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"ferry-sim: simulated devices publishing telemetry through the ferry publisher library"};
  app.add_option("--host", o.host, "MQTT broker host")->capture_default_str();
  app.add_option("--port", o.port, "MQTT broker port")->capture_default_str();
  app.add_option("--devices", o.devices, "number of devices (kinds round-robin: engine, gps, vibration, door)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1000000u));
  app.add_option("--connections", o.connections, "MQTT connections the devices share (0: min(devices, 4))")
      ->capture_default_str();
  app.add_option("--rate", o.rate, "total events/s over all devices (0: as fast as possible)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--count", o.count, "stop after this many events (0: no limit)")->capture_default_str();
  app.add_option("--duration", o.duration, "stop after this many seconds (0: no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--seed", o.seed, "RNG seed: same seed, same events")->capture_default_str();
  app.add_option("--dup-rate", o.dup_rate, "fraction of events re-published with the same id")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--clock-faults", o.clock_faults,
                 "fraction of devices with a bad clock (a third each: start at 1970, a day ahead, jump 1-48 h ahead)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--clock-fault", o.clock_fault, "N=1970|ahead|jump: device N (0-based) gets that clock fault (repeatable)")
      ->check([](const std::string& s) -> std::string {
        auto eq = s.find('=');
        if (eq == 0 || eq == std::string::npos || s.find_first_not_of("0123456789") != eq || eq > 7)
          return "expected N=1970|ahead|jump, got '" + s + "'";
        if (parse_clock_fault(s.substr(eq + 1)) == ClockFault::None)
          return "unknown clock fault '" + s.substr(eq + 1) + "' (1970, ahead or jump)";
        return std::string();
      });
  app.add_option("--payload-size", o.payload_size, "pad JSON payloads to this many bytes (0: no padding)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 65536u));
  app.add_option("--qos", o.qos, "1 (the contract) or 0 (benchmarks: nothing resent)")
      ->capture_default_str()
      ->check(CLI::IsMember({0, 1}));
  app.add_option("--client-prefix", o.client_prefix, "MQTT client ids are <prefix>-<n>")->capture_default_str();
  app.add_option("--device-prefix", o.device_prefix, "device ids are <prefix><nnnn>")->capture_default_str();
  app.add_option("--topic-prefix", o.topic_prefix, "topics are <prefix>/<device>/<kind>")->capture_default_str();
  app.add_option("--state-dir", o.state_dir, "boot counter files (one per device); 'none': boot 1, not persisted")
      ->capture_default_str();
  app.add_option("--id-log", o.id_log, "write every produced event id to FILE, one per line (not the duplicates)");
  app.add_option("--ring", o.ring, "ring slots per connection")->capture_default_str()->check(CLI::Range(16u, 1u << 22));
  app.add_option("--max-inflight", o.max_inflight, "unacknowledged sends per connection")
      ->capture_default_str()
      ->check(CLI::Range(1u, 65535u));
  app.add_option("--drain-timeout", o.drain_timeout, "seconds to wait for the last PUBACKs")->capture_default_str();
  app.add_option("--connect-timeout", o.connect_timeout, "seconds to wait for connections before producing")
      ->capture_default_str();
  app.add_flag("--quiet,-q", o.quiet, "no progress lines on stderr");
  CLI11_PARSE(app, argc, argv);
  if (o.count == 0 && o.duration == 0) o.duration = 10;  // always bounded
  if (o.device_prefix.size() + 6 > FERRY_DEV_ID_MAX) {
    std::fprintf(stderr, "ferry-sim: --device-prefix too long\n");
    return 2;
  }
  Simulator sim(o);
  return sim.run();
}
