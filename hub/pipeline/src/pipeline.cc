#include "ferry/pipeline.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "ferry/rfc3339.h"

#include "ferry/utf8.h"

namespace ferry {
namespace {

const char* StepTypeName(PipelineStepType t) {
  switch (t) {
    case PipelineStepType::kFilter: return "filter";
    case PipelineStepType::kSet: return "set";
    case PipelineStepType::kDrop: return "drop";
    case PipelineStepType::kRename: return "rename";
    case PipelineStepType::kProject: return "project";
    case PipelineStepType::kUnits: return "units";
    case PipelineStepType::kSchemaUpgrade: return "schema_upgrade";
    case PipelineStepType::kRoute: return "route";
    case PipelineStepType::kScript: return "script";
    case PipelineStepType::kWindow: return "window";
    case PipelineStepType::kThreshold: return "threshold";
    case PipelineStepType::kLookup: return "lookup";
  }
  return "?";
}

std::pair<std::string, std::string> SplitPair(const std::string& s) {
  auto eq = s.find('=');
  return {s.substr(0, eq), s.substr(eq + 1)};  // the config checked the '='
}

// Units by dimension. Temperatures go through Celsius with the textbook formulas (so 100 C is exactly 212 F,
// which a scale-and-offset through kelvin is not in binary floating point); pressures through pascal.
struct Unit {
  const char* name;
  int dimension;    // 0 temperature, 1 pressure
  double pascals;   // pressure only
};
constexpr Unit kUnits[] = {
    {"C", 0, 0}, {"F", 0, 0}, {"K", 0, 0}, {"Pa", 1, 1.0}, {"kPa", 1, 1000.0}, {"bar", 1, 100000.0},
    {"psi", 1, 6894.757293168361},
};
const Unit* FindUnit(std::string_view n) {
  for (const Unit& u : kUnits)
    if (n == u.name) return &u;
  return nullptr;
}

}  // namespace

std::string PipelineWindowStatePrefix(const std::string& pipeline) { return "pipeline/" + pipeline + "/window/"; }
std::string PipelineWindowMetaKey(const std::string& pipeline) { return "pipeline/" + pipeline + "/window-meta"; }

std::optional<double> ConvertUnits(double value, std::string_view from, std::string_view to) {
  const Unit* f = FindUnit(from);
  const Unit* t = FindUnit(to);
  if (f == nullptr || t == nullptr || f->dimension != t->dimension) return std::nullopt;
  if (f == t) return value;
  if (f->dimension == 1) return value * f->pascals / t->pascals;
  double c = from == "C" ? value : from == "F" ? (value - 32) * 5 / 9 : value - 273.15;
  return to == "C" ? c : to == "F" ? c * 9 / 5 + 32 : c + 273.15;
}

struct Pipeline::Step {
  PipelineStepType type;
  std::string name;
  const PipelineStepConfig* config;
  LuaSandbox::Handle expr = -1;  // filter where, set value, route by, script process
  std::vector<int> route_outputs;  // route: index into outputs_ per config->outputs
  struct Upgrade {
    std::vector<std::pair<std::string, std::string>> rename;
    std::vector<std::pair<std::string, LuaSandbox::Handle>> defaults;
    std::vector<std::string> drop;
  };
  std::map<int64_t, Upgrade> upgrades;  // by the version they upgrade from
  int64_t newest = 0;                   // the version after the last upgrade
  std::string version_field;
};

Pipeline::Pipeline(const PipelineConfig& config) : config_(config) {}
Pipeline::~Pipeline() {
  steps_.clear();
  lua_.reset();
}

Result<std::unique_ptr<Pipeline>> Pipeline::Compile(const PipelineConfig& config) {
  std::unique_ptr<Pipeline> p(new Pipeline(config));
  LuaLimits limits;
  limits.max_instructions = static_cast<uint64_t>(std::max<int64_t>(config.max_instructions, 1000));
  limits.max_memory = config.max_memory > 0 ? static_cast<size_t>(config.max_memory) : size_t{8} << 20;
  auto lua = LuaSandbox::Create(limits);
  if (!lua) return InvalidArgument("pipeline " + config.name + ": " + lua.error().message);
  p->lua_ = std::move(*lua);
  p->outputs_.push_back(config.output);
  for (size_t i = 0; i < p->config_.steps.size(); ++i) {
    if (Status st = p->CompileStep(i, p->config_.steps[i]); !st)
      return InvalidArgument("pipeline " + config.name + ": step " + p->step_names_.back() + ": " + st.error().message);
  }
  if (p->window_ && !p->thresholds_.empty()) {
    // Thresholds look at every change of a window, not only at what is emitted (no state is held yet).
    WindowSpec spec = p->window_->spec();
    spec.probe = true;
    p->window_ = std::make_unique<WindowOperator>(spec);
  }
  return p;
}

Status Pipeline::CompileStep(size_t index, const PipelineStepConfig& sc) {
  auto step = std::make_unique<Step>();
  step->type = sc.type;
  step->config = &sc;
  step->name = sc.name.empty() ? std::to_string(index) + ":" + StepTypeName(sc.type) : sc.name;
  step_names_.push_back(step->name);
  auto compile = [&](const std::string& key, const std::string& text) -> Status {
    auto h = lua_->CompileExpression(text, key);
    if (!h) return InvalidArgument(h.error().message);  // "where:1: unexpected symbol near ')'"
    step->expr = *h;
    return Ok();
  };
  switch (sc.type) {
    case PipelineStepType::kFilter:
      if (Status st = compile("where", sc.where); !st) return st;
      break;
    case PipelineStepType::kSet:
      if (Status st = compile("value", sc.value); !st) return st;
      break;
    case PipelineStepType::kRoute:
      if (Status st = compile("by", sc.by); !st) return st;
      for (const auto& o : sc.outputs) {
        auto it = std::find(outputs_.begin(), outputs_.end(), o);
        if (it == outputs_.end()) it = outputs_.insert(outputs_.end(), o);
        step->route_outputs.push_back(static_cast<int>(it - outputs_.begin()));
      }
      break;
    case PipelineStepType::kScript: {
      auto h = lua_->CompileScript(sc.script, "script");
      if (!h) return InvalidArgument(h.error().message);
      step->expr = *h;
      break;
    }
    case PipelineStepType::kLookup:
      if (sc.missing == LookupMissing::kDefault)
        if (Status st = compile("value", sc.value); !st) return st;
      break;
    case PipelineStepType::kUnits:
      if (!ConvertUnits(0, sc.from, sc.to)) return InvalidArgument("cannot convert " + sc.from + " to " + sc.to);
      break;
    case PipelineStepType::kSchemaUpgrade: {
      step->version_field = sc.field.empty() ? "schema_version" : sc.field;
      for (const auto& u : sc.upgrades) {
        Step::Upgrade up;
        for (const auto& r : u.rename) up.rename.push_back(SplitPair(r));
        for (const auto& d : u.defaults) {
          auto [field, expr] = SplitPair(d);
          auto h = lua_->CompileExpression(expr, "default " + field);
          if (!h) return InvalidArgument("upgrade from version " + std::to_string(u.version) + ": " + h.error().message);
          up.defaults.emplace_back(field, *h);
        }
        up.drop = u.drop;
        step->upgrades[u.version] = std::move(up);
        step->newest = std::max(step->newest, u.version + 1);
      }
      break;
    }
    case PipelineStepType::kWindow: {
      WindowSpec spec;
      switch (sc.window) {
        case WindowType::kTumbling: spec.kind = WindowKind::kTumbling; break;
        case WindowType::kHopping: spec.kind = WindowKind::kHopping; break;
        case WindowType::kSliding: spec.kind = WindowKind::kSliding; break;
        case WindowType::kSession: spec.kind = WindowKind::kSession; break;
      }
      spec.size_ns = sc.size.count();
      spec.hop_ns = sc.hop.count();
      spec.gap_ns = sc.gap.count();
      spec.lateness_ns = sc.allowed_lateness.count();
      spec.idle_ns = sc.idle_timeout.count();
      spec.early_every = sc.early_every;
      spec.max_keys = static_cast<size_t>(std::max<int64_t>(sc.max_keys, 1));
      spec.max_windows = static_cast<size_t>(std::max<int64_t>(sc.max_windows, 1));
      // The config checked these; a Pipeline compiled from a hand-made config checks again, never crashes.
      if (spec.kind != WindowKind::kSession && spec.size_ns <= 0) return InvalidArgument("size must be > 0");
      if (spec.kind == WindowKind::kHopping && (spec.hop_ns <= 0 || spec.hop_ns > spec.size_ns || spec.size_ns / spec.hop_ns > 64))
        return InvalidArgument("hop must be > 0, at most size, and size / hop at most 64");
      if (spec.kind == WindowKind::kSession && spec.gap_ns <= 0) return InvalidArgument("gap must be > 0");
      for (const auto& a : sc.aggregates) {
        if (a == "count") continue;
        if (a == "sum" || a == "min" || a == "max" || a == "avg" || a == "first" || a == "last") {
          aggregates_.push_back(a);
          continue;
        }
        char* end = nullptr;
        double q = a.size() > 1 && a[0] == 'p' ? std::strtod(a.c_str() + 1, &end) : -1;
        if (end == nullptr || *end != '\0' || !(q > 0 && q < 100)) return InvalidArgument("unknown aggregate \"" + a + "\"");
        quantiles_.emplace_back(a, q / 100);
        spec.sketch = true;
      }
      window_index_ = index;
      window_ = std::make_unique<WindowOperator>(spec);
      break;
    }
    case PipelineStepType::kThreshold: {
      if (window_index_ == SIZE_MAX) return InvalidArgument("a threshold step must follow a window step");
      if (thresholds_.size() >= 32) return InvalidArgument("at most 32 threshold steps");
      if (Status st = compile("where", sc.where); !st) return st;
      Threshold th{step->name, sc.output, step->expr, uint32_t{1} << thresholds_.size(), &sc, {}};
      if (!sc.table.empty() && sc.missing == LookupMissing::kDefault) {
        auto h = lua_->CompileExpression(sc.value, "value");
        if (!h) return InvalidArgument(h.error().message);
        th.default_expr = *h;
      }
      thresholds_.push_back(th);
      break;
    }
    case PipelineStepType::kDrop:
    case PipelineStepType::kRename:
    case PipelineStepType::kProject:
      break;
  }
  if (window_index_ != SIZE_MAX && index > window_index_ && sc.type != PipelineStepType::kThreshold)
    return InvalidArgument("only threshold steps may follow a window step");
  steps_.push_back(std::move(step));
  return Ok();
}

Result<bool> Pipeline::PutRow(const std::string& table, const std::string& key, LuaSandbox::Handle slot,
                              const std::string& into) {
  if (!lookup_) return InvalidArgument("lookup: no table reader");
  auto found = lookup_(table, key);
  if (!found) return InvalidArgument("lookup in " + table + ": " + found.error().message);
  if (!*found) return false;
  const std::string& row = **found;
  // A JSON object row becomes a table; anything else (a number, a plain string) goes in as a string.
  if (!row.empty() && row.front() == '{') {
    auto value = lua_->FromJson(row);
    if (value) {
      Status st = lua_->SetTable(slot, into, *value);
      lua_->Free(*value);
      if (!st) return tl::unexpected(st.error());
      return true;
    }
  }
  if (Status st = lua_->SetString(slot, into, row); !st) return tl::unexpected(st.error());
  return true;
}

Status Pipeline::Apply(const Step& step, Work work, std::vector<Work>* next) {
  const PipelineStepConfig& sc = *step.config;
  LuaSandbox& lua = *lua_;
  // Until the work is handed on to *next, this step owns its slot and frees it on every way out.
  auto fail = [&](Status st) {
    lua.Free(work.slot);
    return st;
  };
  switch (step.type) {
    case PipelineStepType::kFilter: {
      auto keep = lua.Test(step.expr, work.slot);
      if (!keep) return fail(tl::unexpected(keep.error()));
      if (!*keep) {
        lua.Free(work.slot);
        return Ok();
      }
      break;
    }
    case PipelineStepType::kSet:
      if (Status st = lua.Assign(step.expr, work.slot, sc.field); !st) return fail(st);
      break;
    case PipelineStepType::kDrop:
      for (const auto& f : sc.fields)
        if (Status st = lua.RemoveField(work.slot, f); !st) return fail(st);
      break;
    case PipelineStepType::kRename:
      if (Status st = lua.RenameField(work.slot, sc.from, sc.to); !st) return fail(st);
      break;
    case PipelineStepType::kProject:
      if (Status st = lua.KeepFields(work.slot, sc.fields); !st) return fail(st);
      break;
    case PipelineStepType::kLookup: {
      auto key = lua.GetKey(work.slot, sc.field);
      if (!key) return fail(tl::unexpected(key.error()));
      bool found = false;
      if (*key) {
        auto put = PutRow(sc.table, **key, work.slot, sc.into);
        if (!put) return fail(tl::unexpected(put.error()));
        found = *put;
      }
      if (!found) {
        ++lookup_misses_;
        const std::string what = *key ? "no row '" + **key + "' in table " + sc.table : "no key field '" + sc.field + "'";
        if (sc.missing == LookupMissing::kDeadLetter) return fail(NotFound("lookup: " + what));
        if (sc.missing == LookupMissing::kDefault)
          if (Status st = lua.Assign(step.expr, work.slot, sc.into); !st) return fail(st);
      }
      break;
    }
    case PipelineStepType::kUnits: {
      auto v = lua.GetNumber(work.slot, sc.field);
      if (!v) return fail(tl::unexpected(v.error()));
      if (*v) {  // an absent field is left absent
        double converted = *ConvertUnits(**v, sc.from, sc.to);
        if (Status st = lua.SetNumber(work.slot, sc.field, converted); !st) return fail(st);
      }
      break;
    }
    case PipelineStepType::kSchemaUpgrade: {
      auto v = lua.GetNumber(work.slot, step.version_field);
      if (!v) return fail(tl::unexpected(v.error()));
      double d = *v ? **v : static_cast<double>(sc.missing_version);
      if (d != std::floor(d) || std::fabs(d) > 1e15)
        return fail(InvalidArgument(step.version_field + " " + std::to_string(d) + " is not an integer"));
      auto version = static_cast<int64_t>(d);
      if (version > step.newest)
        return fail(InvalidArgument("unknown future " + step.version_field + " " + std::to_string(version) +
                                    " (this pipeline knows up to " + std::to_string(step.newest) + ")"));
      while (version < step.newest) {
        auto it = step.upgrades.find(version);
        if (it == step.upgrades.end())
          return fail(InvalidArgument("no upgrade from " + step.version_field + " " + std::to_string(version)));
        const Step::Upgrade& up = it->second;
        for (const auto& [from, to] : up.rename)
          if (Status st = lua.RenameField(work.slot, from, to); !st) return fail(st);
        for (const auto& f : up.drop)
          if (Status st = lua.RemoveField(work.slot, f); !st) return fail(st);
        for (const auto& [field, expr] : up.defaults)
          if (Status st = lua.AssignIfAbsent(expr, work.slot, field); !st) return fail(st);
        ++version;
      }
      if (Status st = lua.SetInteger(work.slot, step.version_field, version); !st) return fail(st);
      break;
    }
    case PipelineStepType::kRoute: {
      auto name = lua.EvalString(step.expr, work.slot);
      if (!name) return fail(tl::unexpected(name.error()));
      if (*name) {
        auto it = std::find(sc.outputs.begin(), sc.outputs.end(), **name);
        if (it == sc.outputs.end())
          return fail(InvalidArgument("by: \"" + **name + "\" is not one of the step's outputs"));
        work.output = step.route_outputs[static_cast<size_t>(it - sc.outputs.begin())];
      }
      break;
    }
    case PipelineStepType::kScript: {
      auto out = lua.CallProcess(step.expr, work.slot);  // consumes the slot, also on error
      if (!out) return tl::unexpected(out.error());
      for (LuaSandbox::Slot s : *out) next->push_back(Work{s, work.output});
      return Ok();
    }
    case PipelineStepType::kWindow:
    case PipelineStepType::kThreshold:
      break;  // Process hands events to the window after the stateless steps
  }
  next->push_back(work);
  return Ok();
}

ProcessOutcome Pipeline::Process(std::string_view input_stream, const RecordView& record) {
  lookup_misses_ = 0;
  ProcessOutcome outcome = ProcessSteps(input_stream, record);
  outcome.lookup_misses = lookup_misses_;
  return outcome;
}

ProcessOutcome Pipeline::ProcessSteps(std::string_view input_stream, const RecordView& record) {
  ProcessOutcome outcome;
  auto slot = lua_->FromJson(record.payload);
  if (!slot) {
    outcome.failure = PipelineFailure{"input", slot.error().message};
    return outcome;
  }
  std::vector<Work> work{Work{*slot, 0}};
  std::vector<Work> next;
  const size_t stateless = std::min(steps_.size(), window_index_);
  for (size_t i = 0; i < stateless && !work.empty(); ++i) {
    next.clear();
    for (size_t w = 0; w < work.size(); ++w) {
      if (Status st = Apply(*steps_[i], work[w], &next); !st) {
        for (size_t rest = w + 1; rest < work.size(); ++rest) lua_->Free(work[rest].slot);
        for (const Work& n : next) lua_->Free(n.slot);
        outcome.failure = PipelineFailure{steps_[i]->name, st.error().message};
        return outcome;
      }
    }
    work.swap(next);
  }
  if (window_) {
    // Every event the stateless steps let through is read first, so a failure changes no window state.
    const Step& ws = *steps_[window_index_];
    const PipelineStepConfig& wc = *ws.config;
    struct In {
      std::string key;
      std::optional<double> value;
    };
    std::vector<In> ins;
    std::string error;
    for (const Work& w : work) {
      In in;
      if (wc.key.empty()) {
        in.key = std::string(record.subject);
      } else if (auto k = lua_->GetKey(w.slot, wc.key); !k) {
        error = k.error().message;
      } else if (!*k) {
        error = "key field '" + wc.key + "' is absent";
      } else {
        in.key = std::move(**k);
      }
      if (error.empty() && in.key.size() > kMaxWindowKeySize)
        error = "key is longer than " + std::to_string(kMaxWindowKeySize) + " bytes";
      if (error.empty() && !wc.field.empty()) {
        auto v = lua_->GetNumber(w.slot, wc.field);
        if (!v) error = v.error().message;
        else if (*v && !std::isfinite(**v)) error = "field '" + wc.field + "' is not a finite number";
        else if (!*v && !aggregates_.empty()) error = "field '" + wc.field + "' is absent";
        else in.value = *v;
      }
      if (!error.empty()) break;
      ins.push_back(std::move(in));
    }
    for (const Work& w : work) lua_->Free(w.slot);
    if (!error.empty()) {
      outcome.failure = PipelineFailure{ws.name, error};
      return outcome;
    }
    std::vector<WindowResult> results;
    window_->Advance(record.ingest_time.ns, &results);
    const int64_t t = record.time.ns != 0 ? record.time.ns : record.ingest_time.ns;
    bool late = false;
    for (const In& in : ins) late |= !window_->Add(in.key, t, record.seq.value, in.value, &results);
    EmitResults(&results, &outcome);
    if (late) {
      ++outcome.late;
      if (!wc.late_output.empty()) {
        Event e = record.ToEvent();
        e.id = (record.id.empty() ? std::string(input_stream) + "/" + std::to_string(record.seq.value)
                                  : std::string(record.id)) + "/" + config_.name + "/late";
        e.headers.emplace_back("ferry_late_pipeline", config_.name);
        e.headers.emplace_back("ferry_late_key", ins.front().key);
        e.headers.emplace_back(kPipelineInputHeader, std::string(input_stream) + "/" + std::to_string(record.seq.value));
        outcome.outputs.push_back(PipelineOutput{wc.late_output, std::move(e)});
      }
    }
    return outcome;
  }
  // Stable ids: the input's id (or <stream>/<seq>) and the pipeline's name, so a reprocessed record produces
  // the same ids and the centre's de-duplication sees one event.
  std::string base = record.id.empty() ? std::string(input_stream) + "/" + std::to_string(record.seq.value)
                                       : std::string(record.id);
  base += "/" + config_.name;
  for (size_t k = 0; k < work.size(); ++k) {
    auto json = lua_->ToJson(work[k].slot);
    if (!json) {
      for (size_t rest = k; rest < work.size(); ++rest) lua_->Free(work[rest].slot);
      outcome.outputs.clear();
      outcome.failure = PipelineFailure{"output", json.error().message};
      return outcome;
    }
    lua_->Free(work[k].slot);
    PipelineOutput out;
    out.stream = outputs_[static_cast<size_t>(work[k].output)];
    Event& e = out.event;
    e.id = work.size() == 1 ? base : base + "/" + std::to_string(k);
    e.source = std::string(record.source);
    e.type = std::string(record.type);
    e.time = record.time;
    e.subject = std::string(record.subject);
    e.datacontenttype = "application/json";
    for (const auto& [k2, v] : record.headers) {
      if (k2 == kPipelineInputHeader) continue;  // a pipeline's output read by another: the newest input wins
      e.headers.emplace_back(std::string(k2), std::string(v));
    }
    e.headers.emplace_back(kPipelineInputHeader, std::string(input_stream) + "/" + std::to_string(record.seq.value));
    e.payload = std::move(*json);
    outcome.outputs.push_back(std::move(out));
  }
  return outcome;
}

ProcessOutcome Pipeline::Tick(TimeNs now) {
  ProcessOutcome outcome;
  if (!window_) return outcome;
  lookup_misses_ = 0;
  std::vector<WindowResult> results;
  window_->Advance(now.ns, &results);
  EmitResults(&results, &outcome);
  outcome.lookup_misses = lookup_misses_;
  return outcome;
}

namespace {
void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
          *out += buf;
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}
void AppendNumber(std::string* out, double d) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);  // shortest round trip: the same bytes on every run
  out->append(buf, r.ptr);
}
}  // namespace

std::string Pipeline::ResultJson(const WindowResult& r) const {
  std::string j = "{\"key\":";
  AppendJsonString(&j, r.key);
  j += ",\"window_start\":\"" + FormatRfc3339(TimeNs{r.start}) + "\"";
  j += ",\"window_end\":\"" + FormatRfc3339(TimeNs{r.end}) + "\"";
  j += ",\"count\":" + std::to_string(r.agg.count);
  const WindowAggregate& a = r.agg;
  for (const std::string& name : aggregates_) {
    j += ",\"" + name + "\":";
    if (a.values == 0) {
      j += "null";
      continue;
    }
    double v = name == "sum" ? a.sum : name == "min" ? a.min : name == "max" ? a.max : name == "avg" ? a.avg()
             : name == "first" ? a.first : a.last;
    AppendNumber(&j, v);
  }
  for (const auto& [name, q] : quantiles_) {
    j += ",\"" + name + "\":";
    if (a.values == 0 || a.sketch.empty()) {
      j += "null";
      continue;
    }
    AppendNumber(&j, std::min(a.max, std::max(a.min, a.sketch.Quantile(q))));
  }
  j += r.kind == WindowResult::kFinal ? ",\"final\":true,\"closed\":\"" + std::string(WindowCloseName(r.reason)) + "\"}"
                                      : std::string(",\"final\":false}");
  return j;
}

void Pipeline::EmitResults(std::vector<WindowResult>* results, ProcessOutcome* outcome) {
  const std::string step = steps_[window_index_]->name;
  std::map<std::pair<std::string, int64_t>, uint32_t> fired;  // in this call; the window's bits lag behind
  for (const WindowResult& r : *results) {
    std::string json = ResultJson(r);
    // Stable ids: pipeline, key and window start (and the count of an early result), so a replay gives the same.
    std::string id = config_.name + "/" + r.key + "/" + std::to_string(r.start);
    if (r.kind == WindowResult::kEarly) id += "/early/" + std::to_string(r.agg.count);
    auto make = [&](std::string event_id, std::string type, std::string payload) {
      Event e;
      e.id = std::move(event_id);
      e.source = "ferry/pipeline/" + config_.name;
      e.type = std::move(type);
      e.subject = r.key;
      e.time = TimeNs{r.end};
      e.datacontenttype = "application/json";
      e.headers.emplace_back("ferry_window", config_.name + "/" + step);
      e.payload = std::move(payload);
      return e;
    };
    for (const Threshold& th : thresholds_) {
      uint32_t& bits = fired[{r.key, r.start}];
      if ((r.alerted | bits) & th.bit) continue;
      auto slot = lua_->FromJson(json);
      if (!slot) {
        outcome->threshold_failures.push_back(th.name);
        continue;
      }
      if (!th.config->table.empty()) {
        // The window key's row (e.g. per-device limits from a downlinked table) as `into`, for the expression.
        const std::string into = th.config->into.empty() ? "row" : th.config->into;
        auto put = PutRow(th.config->table, r.key, *slot, into);
        bool skip = !put;
        if (put && !*put) {
          ++lookup_misses_;
          if (th.config->missing == LookupMissing::kDefault)
            skip = !lua_->Assign(th.default_expr, *slot, into);
          else if (th.config->missing == LookupMissing::kDeadLetter)
            skip = true;  // no row, no limit: not evaluated (a miss, counted)
        }
        if (skip) {
          lua_->Free(*slot);
          if (!put || th.config->missing == LookupMissing::kDefault) outcome->threshold_failures.push_back(th.name);
          continue;
        }
      }
      auto hit = lua_->Test(th.expr, *slot);
      lua_->Free(*slot);
      if (!hit) {
        outcome->threshold_failures.push_back(th.name);
        continue;
      }
      if (!*hit) continue;
      std::string payload = json.substr(0, json.size() - 1) + ",\"alert\":";
      AppendJsonString(&payload, th.name);
      payload += "}";
      const std::string alert_id = config_.name + "/" + r.key + "/" + std::to_string(r.start) + "/alert/" + th.name;
      outcome->outputs.push_back(PipelineOutput{th.output, make(alert_id, "ferry.alert", std::move(payload))});
      ++outcome->alerts;
      bits |= th.bit;
      if (r.kind != WindowResult::kFinal) window_->MarkAlerted(r.key, r.start, th.bit);
    }
    if (r.kind == WindowResult::kProbe) continue;
    outcome->outputs.push_back(PipelineOutput{config_.output, make(std::move(id), "ferry.window", std::move(json))});
  }
}

Event Pipeline::DeadLetter(std::string_view input_stream, const RecordView& record,
                           const PipelineFailure& failure) const {
  Event e = record.ToEvent();
  e.type = "ferry.deadletter";
  e.headers.emplace_back("ferry_dlq_reason", kPipelineDlqReason);
  // Bounded (a Lua message can quote a long string) and legal in an MQTT string (it can quote any bytes).
  std::string detail = LegalUnicodeString(failure.message.substr(0, 512));
  e.headers.emplace_back("ferry_dlq_detail", detail);
  e.headers.emplace_back(kPipelineDlqPipelineHeader, config_.name);
  e.headers.emplace_back(kPipelineDlqStepHeader, failure.step);
  e.headers.emplace_back(kPipelineInputHeader, std::string(input_stream) + "/" + std::to_string(record.seq.value));
  return e;
}

}  // namespace ferry
