#include "ferry/window.h"

#include <algorithm>
#include <limits>

#include "window_codec.h"

namespace ferry {
namespace {

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

int64_t SatAdd(int64_t a, int64_t b) {
  if (b > 0 && a > kMax - b) return kMax;
  if (b < 0 && a < kMin - b) return kMin;
  return a + b;
}
int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

constexpr unsigned char kKeyFormat = 1;
constexpr unsigned char kMetaFormat = 1;

void PutAgg(std::string* out, const WindowAggregate& a, bool sketch) {
  PutVarint(out, a.count);
  PutVarint(out, a.values);
  PutDouble(out, a.sum);
  PutDouble(out, a.min);
  PutDouble(out, a.max);
  PutSigned(out, a.first_t);
  PutVarint(out, a.first_order);
  PutDouble(out, a.first);
  PutSigned(out, a.last_t);
  PutVarint(out, a.last_order);
  PutDouble(out, a.last);
  out->push_back(sketch ? 1 : 0);
  if (sketch) a.sketch.AppendTo(out);
}

bool GetAgg(const char** p, const char* end, WindowAggregate* a) {
  if (!GetVarint(p, end, &a->count) || !GetVarint(p, end, &a->values) || !GetDouble(p, end, &a->sum) ||
      !GetDouble(p, end, &a->min) || !GetDouble(p, end, &a->max) || !GetSigned(p, end, &a->first_t) ||
      !GetVarint(p, end, &a->first_order) || !GetDouble(p, end, &a->first) || !GetSigned(p, end, &a->last_t) ||
      !GetVarint(p, end, &a->last_order) || !GetDouble(p, end, &a->last) || *p >= end)
    return false;
  const char flag = *(*p)++;
  if (flag == 1) return a->sketch.ReadFrom(p, end);
  return flag == 0;
}

}  // namespace

const char* WindowCloseName(WindowClose c) {
  switch (c) {
    case WindowClose::kWatermark: return "watermark";
    case WindowClose::kIdle: return "idle";
    case WindowClose::kMaxKeys: return "max_keys";
    case WindowClose::kMaxWindows: return "max_windows";
  }
  return "?";
}

void WindowAggregate::Add(int64_t t, uint64_t order, std::optional<double> v, bool with_sketch) {
  ++count;
  if (!v) return;
  const double x = *v;
  if (values == 0) {
    min = max = x;
    first_t = last_t = t;
    first_order = last_order = order;
    first = last = x;
  } else {
    min = std::min(min, x);
    max = std::max(max, x);
    if (t < first_t || (t == first_t && order < first_order)) first_t = t, first_order = order, first = x;
    if (t > last_t || (t == last_t && order > last_order)) last_t = t, last_order = order, last = x;
  }
  ++values;
  sum += x;
  if (with_sketch) sketch.Add(x);
}

void WindowAggregate::Merge(const WindowAggregate& o) {
  count += o.count;
  if (o.values == 0) return;
  if (values == 0) {
    const uint64_t c = count;
    *this = o;
    count = c;
    return;
  }
  min = std::min(min, o.min);
  max = std::max(max, o.max);
  if (o.first_t < first_t || (o.first_t == first_t && o.first_order < first_order))
    first_t = o.first_t, first_order = o.first_order, first = o.first;
  if (o.last_t > last_t || (o.last_t == last_t && o.last_order > last_order))
    last_t = o.last_t, last_order = o.last_order, last = o.last;
  values += o.values;
  sum += o.sum;
  sketch.Merge(o.sketch);
}

WindowOperator::WindowOperator(const WindowSpec& spec) : spec_(spec) {}

void WindowOperator::Touch(KeyMap::iterator it) {
  KeyState& k = it->second;
  lru_.erase({k.last_active, &it->first});
  idle_.erase({k.last_active, &it->first});
  k.last_active = now_;
  lru_.emplace(k.last_active, &it->first);
}

void WindowOperator::SetIdle(KeyMap::iterator it) {
  KeyState& k = it->second;
  if (!k.windows.empty() || !k.points.empty()) idle_.emplace(k.last_active, &it->first);
  else idle_.erase({k.last_active, &it->first});
}

void WindowOperator::Emit(const std::string& key, const Window& w, WindowResult::Kind kind, WindowClose reason,
                          std::vector<WindowResult>* out) {
  WindowResult r;
  r.kind = kind;
  r.key = key;
  r.start = w.start;
  r.end = w.end;
  r.reason = reason;
  r.alerted = w.alerted;
  r.agg = w.agg;
  out->push_back(std::move(r));
}

void WindowOperator::CloseUpTo(KeyMap::iterator it, bool all, WindowClose reason, std::vector<WindowResult>* out) {
  KeyState& k = it->second;
  size_t n = 0;
  while (n < k.windows.size() && (all || k.windows[n].end <= k.watermark)) {
    const Window& w = k.windows[n];
    Emit(it->first, w, WindowResult::kFinal, reason, out);
    RaiseWatermark(k, w.end);  // never reopened
    ++stats_.closed[static_cast<int>(reason)];
    ++n;
  }
  // Windows are sorted by start and, for every kind, their ends in the same order, so the closed ones are a
  // prefix.
  k.windows.erase(k.windows.begin(), k.windows.begin() + static_cast<std::ptrdiff_t>(n));
  open_windows_ -= n;
}

WindowOperator::Window* WindowOperator::OpenWindow(KeyState& k, int64_t start, int64_t end) {
  auto pos = std::lower_bound(k.windows.begin(), k.windows.end(), start,
                              [](const Window& w, int64_t s) { return w.start < s; });
  if (pos != k.windows.end() && pos->start == start) return &*pos;
  ++open_windows_;
  Window w;
  w.start = start;
  w.end = end;
  return &*k.windows.insert(pos, std::move(w));
}

void WindowOperator::Advance(int64_t now_ns, std::vector<WindowResult>* out) {
  now_ = std::max(now_, now_ns);
  if (spec_.idle_ns <= 0) return;
  const int64_t due = SatAdd(now_, -spec_.idle_ns);
  while (!idle_.empty() && idle_.begin()->first <= due) {
    const std::string key = *idle_.begin()->second;
    idle_.erase(idle_.begin());
    auto it = keys_.find(key);
    if (it == keys_.end()) continue;
    CloseUpTo(it, true, WindowClose::kIdle, out);
    MarkDirty(it);
  }
}

bool WindowOperator::Add(std::string_view key_view, int64_t t, uint64_t order, std::optional<double> v,
                         std::vector<WindowResult>* out) {
  auto it = keys_.find(std::string(key_view));
  if (it == keys_.end()) {
    if (keys_.size() >= spec_.max_keys && !lru_.empty()) {
      // The least recently active key goes: its windows close early, its watermark is forgotten.
      const std::string victim = *lru_.begin()->second;
      auto vit = keys_.find(victim);
      CloseUpTo(vit, true, WindowClose::kMaxKeys, out);
      lru_.erase(lru_.begin());
      idle_.erase({vit->second.last_active, &vit->first});
      keys_.erase(vit);
      MarkRemoved(victim);
    }
    it = keys_.emplace(std::string(key_view), KeyState{}).first;
  }
  KeyState& k = it->second;
  Touch(it);
  MarkDirty(it);
  const int64_t wm = k.watermark;
  const bool sk = spec_.sketch;
  std::vector<int64_t> touched;  // starts of the windows the event went into
  switch (spec_.kind) {
    case WindowKind::kTumbling: {
      const int64_t s = FloorDiv(t, spec_.size_ns) * spec_.size_ns;
      const int64_t e = SatAdd(s, spec_.size_ns);
      if (e > wm) {
        OpenWindow(k, s, e)->agg.Add(t, order, v, sk);
        touched.push_back(s);
      }
      break;
    }
    case WindowKind::kHopping: {
      const int64_t s0 = FloorDiv(t, spec_.hop_ns) * spec_.hop_ns;
      for (int64_t s = s0; SatAdd(s, spec_.size_ns) > t; s -= spec_.hop_ns) {
        const int64_t e = SatAdd(s, spec_.size_ns);
        if (e <= wm) break;  // older windows end earlier: closed too
        OpenWindow(k, s, e)->agg.Add(t, order, v, sk);
        touched.push_back(s);
      }
      break;
    }
    case WindowKind::kSession: {
      if (t < wm) break;  // it could join a session already closed
      Window merged;
      merged.start = t;
      merged.end = SatAdd(t, spec_.gap_ns);
      merged.agg.Add(t, order, v, sk);
      auto first = k.windows.end();
      size_t n = 0;
      for (auto w = k.windows.begin(); w != k.windows.end(); ++w) {
        if (w->start < merged.end && t < w->end) {
          if (n++ == 0) first = w;
          merged.start = std::min(merged.start, w->start);
          merged.end = std::max(merged.end, w->end);
          merged.alerted |= w->alerted;
          merged.agg.Merge(w->agg);
        }
      }
      // Overlapping sessions are contiguous in start order.
      if (n > 0) {
        k.windows.erase(first, first + static_cast<std::ptrdiff_t>(n));
        open_windows_ -= n;
      }
      auto pos = std::lower_bound(k.windows.begin(), k.windows.end(), merged.start,
                                  [](const Window& w, int64_t s) { return w.start < s; });
      touched.push_back(merged.start);
      k.windows.insert(pos, std::move(merged));
      ++open_windows_;
      break;
    }
    case WindowKind::kSliding: {
      if (t >= wm) {
        const int64_t s = SatAdd(SatAdd(t, -spec_.size_ns), 1);
        auto before = k.windows.size();
        Window* w = OpenWindow(k, s, SatAdd(t, 1));
        if (k.windows.size() != before)  // new: what is buffered inside it
          for (const Point& p : k.points)
            if (p.t >= s && p.t <= t) w->agg.Add(p.t, p.order, p.v, sk);
      }
      for (Window& w : k.windows) {
        if (w.start <= t && t < w.end) {
          w.agg.Add(t, order, v, sk);
          touched.push_back(w.start);
        }
      }
      if (!touched.empty()) k.points.push_back(Point{t, order, v});
      break;
    }
  }
  if (touched.empty()) {
    ++stats_.late;
    SetIdle(it);
    return false;
  }
  k.max_t = std::max(k.max_t, t);
  RaiseWatermark(k, SatAdd(k.max_t, -spec_.lateness_ns));
  CloseUpTo(it, false, WindowClose::kWatermark, out);
  while (k.windows.size() > spec_.max_windows) {
    RaiseWatermark(k, k.windows.front().end);
    CloseUpTo(it, false, WindowClose::kMaxWindows, out);
  }
  if (spec_.kind == WindowKind::kSliding) {
    // Only points inside a window yet to be made, (T - size, T] with T >= watermark, are kept.
    const int64_t keep_after = SatAdd(k.watermark, -spec_.size_ns);
    k.points.erase(std::remove_if(k.points.begin(), k.points.end(), [&](const Point& p) { return p.t <= keep_after; }),
                   k.points.end());
    if (k.points.size() > spec_.max_points) {
      std::stable_sort(k.points.begin(), k.points.end(), [](const Point& a, const Point& b) { return a.t < b.t; });
      const size_t extra = k.points.size() - spec_.max_points;
      k.points.erase(k.points.begin(), k.points.begin() + static_cast<std::ptrdiff_t>(extra));
      stats_.points_dropped += extra;
    }
  }
  if (spec_.early_every > 0 || spec_.probe) {
    for (int64_t s : touched) {
      auto w = std::lower_bound(k.windows.begin(), k.windows.end(), s,
                                [](const Window& x, int64_t st) { return x.start < st; });
      if (w == k.windows.end() || w->start != s) continue;  // closed by this event already
      if (spec_.early_every > 0 && w->agg.count % static_cast<uint64_t>(spec_.early_every) == 0)
        Emit(it->first, *w, WindowResult::kEarly, WindowClose::kWatermark, out);
      if (spec_.probe) Emit(it->first, *w, WindowResult::kProbe, WindowClose::kWatermark, out);
    }
  }
  SetIdle(it);
  return true;
}

void WindowOperator::MarkAlerted(std::string_view key, int64_t start, uint32_t bit) {
  auto it = keys_.find(std::string(key));
  if (it == keys_.end()) return;
  for (Window& w : it->second.windows)
    if (w.start == start) {
      w.alerted |= bit;
      MarkDirty(it);
    }
}

std::string WindowOperator::Serialize(const KeyState& k) const {
  std::string out;
  out.push_back(static_cast<char>(kKeyFormat));
  PutSigned(&out, k.max_t);
  PutSigned(&out, k.watermark);
  PutSigned(&out, k.last_active);
  PutVarint(&out, k.windows.size());
  for (const Window& w : k.windows) {
    PutSigned(&out, w.start);
    PutSigned(&out, w.end);
    PutVarint(&out, w.alerted);
    PutAgg(&out, w.agg, spec_.sketch);
  }
  PutVarint(&out, k.points.size());
  for (const Point& p : k.points) {
    PutSigned(&out, p.t);
    PutVarint(&out, p.order);
    out.push_back(p.v ? 1 : 0);
    if (p.v) PutDouble(&out, *p.v);
  }
  return out;
}

void WindowOperator::MarkDirty(KeyMap::iterator it) {
  if (it->second.dirty) return;
  it->second.dirty = true;
  dirty_.push_back(it->first);
}

std::vector<std::pair<std::string, std::optional<std::string>>> WindowOperator::TakeDirty() {
  std::sort(dirty_.begin(), dirty_.end());  // key order, as before: the state records are written in it
  dirty_.erase(std::unique(dirty_.begin(), dirty_.end()), dirty_.end());
  std::vector<std::pair<std::string, std::optional<std::string>>> out;
  out.reserve(dirty_.size());
  for (std::string& key : dirty_) {
    auto it = keys_.find(key);
    if (it == keys_.end()) {
      out.emplace_back(std::move(key), std::nullopt);
    } else {
      it->second.dirty = false;
      out.emplace_back(std::move(key), Serialize(it->second));
    }
  }
  dirty_.clear();
  dirty_.shrink_to_fit();  // a burst of changed keys does not keep its vector
  return out;
}

std::string WindowOperator::SerializeMeta() const {
  std::string out;
  out.push_back(static_cast<char>(kMetaFormat));
  PutSigned(&out, now_);
  return out;
}

bool WindowOperator::LoadMeta(std::string_view bytes) {
  const char* p = bytes.data();
  const char* end = p + bytes.size();
  if (p == end || static_cast<unsigned char>(*p++) != kMetaFormat) return false;
  int64_t now = 0;
  if (!GetSigned(&p, end, &now) || p != end) return false;
  now_ = now;
  return true;
}

bool WindowOperator::LoadKey(std::string_view key, std::string_view bytes) {
  const char* p = bytes.data();
  const char* end = p + bytes.size();
  if (p == end || static_cast<unsigned char>(*p++) != kKeyFormat) return false;
  KeyState k;
  uint64_t n = 0;
  if (!GetSigned(&p, end, &k.max_t) || !GetSigned(&p, end, &k.watermark) || !GetSigned(&p, end, &k.last_active) ||
      !GetVarint(&p, end, &n) || n > 1'000'000)
    return false;
  for (uint64_t i = 0; i < n; ++i) {
    Window w;
    uint64_t alerted = 0;
    if (!GetSigned(&p, end, &w.start) || !GetSigned(&p, end, &w.end) || !GetVarint(&p, end, &alerted) ||
        !GetAgg(&p, end, &w.agg))
      return false;
    if (w.end <= w.start || (!k.windows.empty() && w.start <= k.windows.back().start)) return false;
    w.alerted = static_cast<uint32_t>(alerted);
    k.windows.push_back(std::move(w));
  }
  if (!GetVarint(&p, end, &n) || n > 10'000'000) return false;
  for (uint64_t i = 0; i < n; ++i) {
    Point pt;
    if (!GetSigned(&p, end, &pt.t) || !GetVarint(&p, end, &pt.order) || p >= end) return false;
    const char has = *p++;
    if (has == 1) {
      double d = 0;
      if (!GetDouble(&p, end, &d)) return false;
      pt.v = d;
    } else if (has != 0) {
      return false;
    }
    k.points.push_back(pt);
  }
  if (p != end) return false;
  auto [it, inserted] = keys_.emplace(std::string(key), std::move(k));
  if (!inserted) return false;
  open_windows_ += it->second.windows.size();
  lru_.emplace(it->second.last_active, &it->first);
  SetIdle(it);
  return true;
}

void WindowOperator::Clear() {
  keys_.clear();
  lru_.clear();
  idle_.clear();
  dirty_.clear();
  open_windows_ = 0;
  now_ = kMin;
}

size_t WindowOperator::memory() const {
  // Per node: the key string, the node, two index nodes with their own copies of the key.
  constexpr size_t kNode = 4 * sizeof(void*);
  size_t bytes = keys_.bucket_count() * sizeof(void*);
  for (const auto& [key, k] : keys_) {
    const size_t key_bytes = sizeof(std::string) + (key.size() > 15 ? key.capacity() + 1 : 0);
    bytes += kNode + key_bytes + sizeof(KeyState);
    bytes += 2 * (kNode + 2 * sizeof(int64_t));
    bytes += k.windows.capacity() * sizeof(Window) + k.points.capacity() * sizeof(Point);
    for (const Window& w : k.windows) bytes += w.agg.sketch.memory();
  }
  return bytes;
}

}  // namespace ferry
