// ferry/window.h: event-time windows per key (tumbling, hopping, sliding, session), the state of a `window`
// pipeline step. Pure: no Lua, no log, no clock of its own; the pipeline feeds it (key, event time, value)
// and the processing time, and writes its state with the input cursor (ferry/pipeline_runner.h).
//
// Semantics (docs/processing.md "Windows"), all per key:
//  - The key's watermark is max(event time seen) - allowed_lateness, raised further when windows are closed
//    early (idle, bounds). A window [start, end) is closed, and its final result emitted, once end <= watermark.
//    A closed window never reopens, so each (key, start) gets exactly one final result.
//  - tumbling: [k*size, (k+1)*size). hopping: [k*hop, k*hop + size), every window containing the time.
//    sliding: one window per distinct event time T, covering (T - size, T], i.e. [T - size + 1ns, T + 1ns).
//    session: events closer than `gap` form one window [first time, last time + gap); events can merge sessions.
//  - An event is added to every window containing its time that is still open. It is *late* when it is added
//    to none (for sessions and sliding windows also when its time is behind the watermark: it could otherwise
//    join a window already closed); late events go to the caller, who counts them and sends them aside.
//  - Idle: processing time (the ingest time of the records processed, or the runner's clock when caught up)
//    more than idle_timeout past a key's last event closes all of its windows and raises its watermark past
//    them. Bounds: a new key beyond max_keys evicts the least recently active key (its windows are closed,
//    its watermark forgotten); a key with more than max_windows open windows closes its oldest.
//  - Optional early results: every `early_every` events of a window, a non-final result.
//
// Determinism: the output depends only on the sequence of calls and their arguments (no hash order, no
// clock), so a replay of the same records from the same state gives the same results in the same order.
//
// Threads: one at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ferry/quantile_sketch.h"

namespace ferry {

enum class WindowKind { kTumbling, kHopping, kSliding, kSession };

struct WindowSpec {
  WindowKind kind = WindowKind::kTumbling;
  int64_t size_ns = 60'000'000'000;  // tumbling, hopping, sliding
  int64_t hop_ns = 0;                // hopping
  int64_t gap_ns = 0;                // session
  int64_t lateness_ns = 0;
  int64_t idle_ns = 0;               // 0: keys are never closed for silence
  bool sketch = false;               // keep a QuantileSketch per window (a quantile aggregate is asked for)
  int64_t early_every = 0;           // 0: final results only
  bool probe = false;                // emit a kProbe result on every change (for threshold steps)
  size_t max_keys = 20'000;
  size_t max_windows = 16;           // open windows per key
  size_t max_points = 4096;          // sliding: buffered events per key
};

struct WindowAggregate {
  uint64_t count = 0;   // events
  uint64_t values = 0;  // events with a value (the rest count only)
  double sum = 0, min = 0, max = 0;
  int64_t first_t = 0, last_t = 0;  // event time of first / last (ties: the earlier / later order)
  uint64_t first_order = 0, last_order = 0;
  double first = 0, last = 0;
  QuantileSketch sketch;

  void Add(int64_t t, uint64_t order, std::optional<double> v, bool with_sketch);
  void Merge(const WindowAggregate& o);
  double avg() const { return values == 0 ? 0 : sum / static_cast<double>(values); }
};

enum class WindowClose { kWatermark, kIdle, kMaxKeys, kMaxWindows };
const char* WindowCloseName(WindowClose c);  // "watermark", "idle", "max_keys", "max_windows"

struct WindowResult {
  enum Kind { kFinal, kEarly, kProbe } kind = kFinal;
  std::string key;
  int64_t start = 0, end = 0;  // [start, end) in ns since the epoch
  WindowClose reason = WindowClose::kWatermark;  // kFinal only
  uint32_t alerted = 0;        // threshold bits already fired for this window
  WindowAggregate agg;
};

struct WindowStats {
  uint64_t late = 0;
  uint64_t closed[4] = {0, 0, 0, 0};  // by WindowClose
  uint64_t points_dropped = 0;        // sliding buffer over max_points
};

class WindowOperator {
 public:
  explicit WindowOperator(const WindowSpec& spec);

  // Processing time moves to max(now, before). Closes the windows of keys idle longer than idle_ns.
  void Advance(int64_t now_ns, std::vector<WindowResult>* out);
  // One event. Returns false when it is late (added to no window). `order` breaks ties of first/last (the
  // input seq). v: nullopt counts the event without a value.
  bool Add(std::string_view key, int64_t t, uint64_t order, std::optional<double> v, std::vector<WindowResult>* out);
  // Marks threshold bit `bit` fired on the open window (key, start); no-op if it is gone.
  void MarkAlerted(std::string_view key, int64_t start, uint32_t bit);

  // --- State: one record per key, written only when changed --------------------------------------------------
  // Keys changed (or removed: nullopt) since the last TakeDirty, with their serialised state.
  std::vector<std::pair<std::string, std::optional<std::string>>> TakeDirty();
  std::string SerializeMeta() const;
  // Errors: false on malformed bytes (the caller names the record).
  bool LoadKey(std::string_view key, std::string_view bytes);
  bool LoadMeta(std::string_view bytes);
  void Clear();

  const WindowSpec& spec() const { return spec_; }
  const WindowStats& stats() const { return stats_; }
  size_t keys() const { return keys_.size(); }
  size_t open_windows() const { return open_windows_; }
  // An estimate of the state's heap bytes (keys, windows, sketches, points, indexes).
  size_t memory() const;
  int64_t now() const { return now_; }

 private:
  struct Window {
    int64_t start, end;
    uint32_t alerted = 0;
    WindowAggregate agg;
  };
  struct Point {
    int64_t t;
    uint64_t order;
    std::optional<double> v;
  };
  struct KeyState {
    int64_t max_t = INT64_MIN;
    int64_t watermark = INT64_MIN;
    int64_t last_active = INT64_MIN;  // processing time of its last event
    std::vector<Window> windows;      // sorted by start
    std::vector<Point> points;        // sliding only
    bool dirty = false;               // its key is in dirty_ (changed since the last TakeDirty)
  };
  using KeyMap = std::unordered_map<std::string, KeyState>;
  // (last_active, key): the key points into keys_ (node-based: stable until the key is erased).
  struct ByTime {
    bool operator()(const std::pair<int64_t, const std::string*>& a,
                    const std::pair<int64_t, const std::string*>& b) const {
      return a.first != b.first ? a.first < b.first : *a.second < *b.second;
    }
  };
  using TimeIndex = std::set<std::pair<int64_t, const std::string*>, ByTime>;

  std::string Serialize(const KeyState& k) const;
  void Touch(KeyMap::iterator it);
  void Emit(const std::string& key, const Window& w, WindowResult::Kind kind, WindowClose reason,
            std::vector<WindowResult>* out);
  // Closes every window with end <= watermark (or all of them), oldest first.
  void CloseUpTo(KeyMap::iterator it, bool all, WindowClose reason, std::vector<WindowResult>* out);
  void RaiseWatermark(KeyState& k, int64_t to) { k.watermark = std::max(k.watermark, to); }
  Window* OpenWindow(KeyState& k, int64_t start, int64_t end);
  void SetIdle(KeyMap::iterator it);

  WindowSpec spec_;
  int64_t now_ = INT64_MIN;
  KeyMap keys_;
  TimeIndex lru_;   // (last_active, key) of every key
  TimeIndex idle_;  // the same for keys with open windows or points
  // Keys changed or removed since the last TakeDirty. A vector, not a set: a node per key would interleave
  // with the state's own allocations and leave holes the state's pages keep (issue 12's 8 MB at 10,000 keys).
  // A key is added when its flag goes up, and once more if it is removed; TakeDirty sorts and deduplicates.
  std::vector<std::string> dirty_;
  void MarkDirty(KeyMap::iterator it);
  void MarkRemoved(const std::string& key) { dirty_.push_back(key); }
  size_t open_windows_ = 0;
  WindowStats stats_;
};

}  // namespace ferry
