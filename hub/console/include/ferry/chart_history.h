// ferry/chart_history.h: the last 10 minutes of what the console's charts show, kept by ferryd so that a page
// opened now starts with them (GET /api/history, docs/console.md).
//
// Every kInterval (5 s) Step() takes a ChartSnapshot (each stream's last seq, count and bytes; each uplink's
// backlog and oldest unsent age per stream it forwards) and writes it into a fixed ring of kSamples (120)
// slots. Each stream and each uplink x stream pair is a series of its own, allocated whole when first seen
// (the figures for 64-bit targets; armhf's map nodes and strings are smaller):
//
//   bytes = 1,920 (sample times) + 2,952 per stream + 1,544 per uplink x stream pair
//           + the length of every name over 15 characters (std::string keeps shorter ones inline)
//
// with at most kMaxSeries streams and kMaxSeries pairs: 289,664 bytes and the long names. A series past the cap
// is not recorded and is counted in `omitted_series`. A series that was absent from every sample in the ring (a
// stream deleted, an uplink no longer reported) is freed. Rates (events/s of a stream's last seq) and drain
// rates (events/s of an uplink's sent position, the stream's last seq minus the backlog) are computed from
// two adjacent samples when the JSON is written; between samples time is measured on Clock::Steady(), so a
// wall-clock step does not show as a burst.
//
// Threads: not thread-safe. The console calls Step() and Json() on its server thread only.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ferry/clock.h"

namespace ferry {

struct ChartSnapshot {
  struct Stream {
    std::string name;
    uint64_t last_seq = 0;
    uint64_t count = 0;
    uint64_t bytes = 0;
  };
  struct Uplink {
    std::string uplink;
    std::string stream;
    uint64_t backlog = 0;
    std::optional<TimeNs> oldest_unsent;  // nullopt: nothing unsent
  };
  std::vector<Stream> streams;
  std::vector<Uplink> uplinks;
};

class ChartHistory {
 public:
  static constexpr size_t kSamples = 120;
  static constexpr std::chrono::seconds kInterval{5};
  static constexpr size_t kMaxSeries = 64;  // streams; and separately uplink x stream pairs

  // `source` is called once per sample, on the caller's thread. REQUIRES: `clock` outlives this.
  ChartHistory(const Clock& clock, std::function<ChartSnapshot()> source);

  // Takes a sample when one is due (the first call always takes one; then every kInterval; after a stall one
  // sample, not a burst). Returns when the next is due, on clock.Steady().
  std::chrono::steady_clock::time_point Step();

  // {"interval_s", "capacity", "bytes", "omitted_series", "now_ms", "t_ms": [...], "streams": [{"name",
  // "last_seq", "count", "bytes", "rate"}], "uplinks": [{"uplink", "stream", "backlog", "oldest_unsent_age_s",
  // "drain"}]}: oldest sample first, each array as long as t_ms, null where a series has no value. Series
  // sorted by name. `now`: the reply's time (now_ms).
  std::string Json(TimeNs now) const;

  size_t size() const { return recorded_ < kSamples ? static_cast<size_t>(recorded_) : kSamples; }
  // What the ring holds in memory: the formula above, with the names' heap bytes.
  size_t bytes() const;

 private:
  struct StreamSeries {
    uint64_t last_present = 0;  // the sample number that last had it
    std::array<uint64_t, kSamples> last_seq, count, bytes;
  };
  struct UplinkSeries {
    uint64_t last_present = 0;
    std::array<uint64_t, kSamples> backlog;
    std::array<uint32_t, kSamples> oldest_unsent_age_s;
  };

  void Record(const ChartSnapshot& s);

  const Clock& clock_;
  std::function<ChartSnapshot()> source_;
  std::chrono::steady_clock::time_point next_ = std::chrono::steady_clock::time_point::min();
  uint64_t recorded_ = 0;  // samples ever taken; sample k lives in slot k % kSamples
  std::array<TimeNs, kSamples> time_{};
  std::array<int64_t, kSamples> steady_ns_{};
  std::map<std::string, StreamSeries> streams_;
  std::map<std::pair<std::string, std::string>, UplinkSeries> uplinks_;
  uint64_t omitted_series_ = 0;  // series seen past kMaxSeries, in the latest sample
};

}  // namespace ferry
