// ferryctl pipelines: where each pipeline is in its inputs and what it failed on (docs/ferryctl.md).
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <map>
#include <ostream>

#include "ferry/ctl.h"
#include "ferry/pipeline.h"
#include "ferry/pipeline_runner.h"

namespace ferry::ctl {
namespace {

// Failed events per step, from the pipeline's dead letters: the runner writes no other record of them.
Result<std::map<std::string, uint64_t>> CountFailures(EventLog& log, const PipelineConfig& p) {
  std::map<std::string, uint64_t> by_step;
  if (p.dead_letter.empty()) return by_step;
  Seq from{1};
  for (;;) {
    auto chunk = log.Read(p.dead_letter, from, 1000);  // one short read transaction per chunk
    if (!chunk) return tl::make_unexpected(chunk.error());
    if (chunk->empty()) return by_step;
    for (const StoredRecord& r : *chunk) {
      std::string pipeline, step;
      for (const auto& [k, v] : r.event.headers) {
        if (k == kPipelineDlqPipelineHeader) pipeline = v;
        if (k == kPipelineDlqStepHeader) step = v;
      }
      if (pipeline == p.name) ++by_step[step];
    }
    from = chunk->back().seq.next();
  }
}

// Late events of a window step, from the headers of its late_output stream (as failures, above).
Result<uint64_t> CountLate(EventLog& log, const std::string& stream, const std::string& pipeline) {
  uint64_t n = 0;
  Seq from{1};
  for (;;) {
    auto chunk = log.Read(stream, from, 1000);
    if (!chunk) return tl::make_unexpected(chunk.error());
    if (chunk->empty()) return n;
    for (const StoredRecord& r : *chunk)
      for (const auto& [k, v] : r.event.headers)
        if (k == "ferry_late_pipeline" && v == pipeline) ++n;
    from = chunk->back().seq.next();
  }
}

}  // namespace

int RunPipelines(EventLog& log, const Config& config, const PipelinesOptions& o, std::ostream& out,
                 std::ostream& err) {
  struct Row {
    std::string pipeline, input, output, failed_text;
    uint64_t cursor = 0, lag = 0, failed = 0;
    std::map<std::string, uint64_t> by_step;
    bool windowed = false;
    uint64_t keys = 0, state_bytes = 0, late = 0;
    std::string window_text;
  };
  bool any_window = false;
  std::vector<Row> rows;
  for (const PipelineConfig& p : config.pipelines) {
    auto failures = CountFailures(log, p);
    if (!failures) {
      err << "ferryctl: pipeline " << p.name << ": reading " << p.dead_letter << ": " << failures.error().message << "\n";
      return kExitRuntime;
    }
    uint64_t failed = 0;
    std::string text;
    for (const auto& [step, n] : *failures) {
      failed += n;
      text += (text.empty() ? "" : ", ") + step + " " + std::to_string(n);
    }
    // A window step: its state records (one per key) and the late events it set aside.
    const PipelineStepConfig* window = nullptr;
    for (const auto& sc : p.steps)
      if (sc.type == PipelineStepType::kWindow) window = &sc;
    uint64_t keys = 0, state_bytes = 0, late = 0;
    if (window != nullptr) {
      any_window = true;
      auto state = log.ListState(PipelineWindowStatePrefix(p.name));
      if (!state) {
        err << "ferryctl: pipeline " << p.name << ": window state: " << state.error().message << "\n";
        return kExitRuntime;
      }
      keys = state->size();
      for (const auto& [k, v] : *state) state_bytes += k.size() + v.size();
      if (!window->late_output.empty()) {
        auto n = CountLate(log, window->late_output, p.name);
        if (!n) {
          err << "ferryctl: pipeline " << p.name << ": reading " << window->late_output << ": " << n.error().message << "\n";
          return kExitRuntime;
        }
        late = *n;
      }
    }
    for (size_t i = 0; i < p.input.size(); ++i) {
      Row r;
      r.windowed = window != nullptr && i == 0;
      r.keys = keys;
      r.state_bytes = state_bytes;
      r.late = late;
      if (r.windowed)
        r.window_text = std::to_string(keys) + " keys, " + std::to_string(state_bytes) + " B, " + std::to_string(late) + " late";
      r.pipeline = p.name;
      r.input = p.input[i];
      r.output = p.output;
      auto c = log.GetCursor(r.input, PipelineCursorName(p.name));
      r.cursor = c ? c->value : 1;  // never committed: it starts at the beginning
      auto st = log.GetStreamStats(r.input);
      if (st) {
        uint64_t first = std::max(r.cursor, st->first_seq.value);
        r.lag = st->last_seq.value >= first ? st->last_seq.value - first + 1 : 0;
      }
      if (i == 0) {  // failures belong to the pipeline, not to one input
        r.failed = failed;
        r.by_step = *failures;
        r.failed_text = failed == 0 ? "0" : std::to_string(failed) + " (" + text + ")";
      } else {
        r.failed_text = "\"";
      }
      rows.push_back(std::move(r));
    }
  }
  if (o.json) {
    for (const Row& r : rows) {
      rapidjson::StringBuffer sb;
      rapidjson::Writer<rapidjson::StringBuffer> w(sb);
      w.StartObject();
      w.Key("pipeline");
      w.String(r.pipeline.c_str());
      w.Key("input");
      w.String(r.input.c_str());
      w.Key("cursor");
      w.Uint64(r.cursor);
      w.Key("lag");
      w.Uint64(r.lag);
      w.Key("output");
      w.String(r.output.c_str());
      w.Key("failed");
      w.StartObject();
      for (const auto& [step, n] : r.by_step) {
        w.Key(step.c_str());
        w.Uint64(n);
      }
      w.EndObject();
      if (r.windowed) {
        w.Key("window");
        w.StartObject();
        w.Key("keys");
        w.Uint64(r.keys);
        w.Key("state_bytes");
        w.Uint64(r.state_bytes);
        w.Key("late");
        w.Uint64(r.late);
        w.EndObject();
      }
      w.EndObject();
      out << sb.GetString() << "\n";
    }
    return kExitOk;
  }
  if (rows.empty()) {
    out << "no [[pipeline]] in the config\n";
    return kExitOk;
  }
  size_t wp = 8, wi = 5, wc = 6, wl = 3, wo = 6, wf = 6;
  for (const Row& r : rows) {
    wf = std::max(wf, r.failed_text.size());
    wp = std::max(wp, r.pipeline.size());
    wi = std::max(wi, r.input.size());
    wc = std::max(wc, std::to_string(r.cursor).size());
    wl = std::max(wl, std::to_string(r.lag).size());
    wo = std::max(wo, r.output.size());
  }
  auto pad = [](const std::string& x, size_t w) { return x + std::string(w > x.size() ? w - x.size() : 0, ' '); };
  out << pad("PIPELINE", wp) << "  " << pad("INPUT", wi) << "  " << pad("CURSOR", wc) << "  " << pad("LAG", wl)
      << "  " << pad("OUTPUT", wo) << "  " << (any_window ? pad("FAILED", wf) + "  WINDOW STATE" : "FAILED") << "\n";
  for (const Row& r : rows) {
    out << pad(r.pipeline, wp) << "  " << pad(r.input, wi) << "  " << pad(std::to_string(r.cursor), wc) << "  "
        << pad(std::to_string(r.lag), wl) << "  " << pad(r.output, wo) << "  "
        << (any_window ? pad(r.failed_text, wf) + "  " + r.window_text : r.failed_text) << "\n";
  }
  return kExitOk;
}

int RunPipelineReset(EventLog& log, const Config& config, const PipelineResetOptions& o, std::ostream& out,
                     std::ostream& err) {
  const PipelineConfig* p = nullptr;
  for (const auto& c : config.pipelines)
    if (c.name == o.pipeline) p = &c;
  if (p == nullptr) {
    err << "ferryctl: no pipeline \"" << o.pipeline << "\" in the config\n";
    return kExitRuntime;
  }
  auto pos = ParsePosition(o.from);
  if (!pos) {
    err << "ferryctl: --from: " << pos.error().message << "\n";
    return kExitUsage;
  }
  if (pos->seq && p->input.size() > 1) {
    err << "ferryctl: pipeline " << p->name << " reads " << p->input.size()
        << " streams: a seq names a record of one; give --from an RFC 3339 time\n";
    return kExitRuntime;
  }
  std::vector<std::pair<std::string, Seq>> targets;
  for (const auto& in : p->input) {
    auto seq = ResolvePosition(log, in, *pos);
    if (!seq) {
      err << "ferryctl: " << in << ": " << seq.error().message << "\n";
      return kExitRuntime;
    }
    targets.emplace_back(in, *seq);
  }
  const std::string cursor = PipelineCursorName(p->name);
  auto txn = log.BeginWrite();
  if (!txn) {
    err << "ferryctl: " << txn.error().ToString() << "\n";
    return kExitRuntime;
  }
  // Listed while this transaction holds the write lock: nothing can be committed between the list and the deletes.
  const std::string prefix = PipelineWindowStatePrefix(p->name);
  auto keys = log.ListState(prefix);
  if (!keys) {
    err << "ferryctl: " << keys.error().ToString() << "\n";
    return kExitRuntime;
  }
  Status st = Ok();
  for (const auto& kv : *keys)
    if (st) st = (*txn)->DeleteState(kv.first);
  if (st) st = (*txn)->DeleteState(PipelineWindowMetaKey(p->name));
  std::vector<std::string> lines;
  for (const auto& [in, seq] : targets) {
    auto before = (*txn)->GetCursor(in, cursor);
    lines.push_back("input " + in + ": cursor " + (before ? std::to_string(before->value) : std::string("(none)")) +
                    " -> " + std::to_string(seq.value));
    if (st) st = (*txn)->SetCursor(in, cursor, seq);
  }
  if (st) st = (*txn)->Commit();
  if (!st) {
    err << "ferryctl: pipeline " << p->name << ": nothing reset: " << st.error().ToString() << "\n";
    return kExitRuntime;
  }
  out << "pipeline " << p->name << ":\n";
  for (const auto& l : lines) out << "  " << l << "\n";
  out << "  window state: " << keys->size() << " key record(s) deleted\n";
  return kExitOk;
}

}  // namespace ferry::ctl
