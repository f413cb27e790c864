#include "ferry/pipeline_runner.h"

#include <chrono>

#include "ferry/log.h"

namespace ferry {

std::string PipelineCursorName(const std::string& pipeline) { return "pipeline." + pipeline; }

PipelineRunner::PipelineRunner(EventLog& log, GroupCommitWriter& writer, std::unique_ptr<Pipeline> pipeline,
                               MetricsRegistry& metrics)
    : log_(log), writer_(writer), pipeline_(std::move(pipeline)), cursor_(PipelineCursorName(pipeline_->config().name)) {
  const Labels l{{"pipeline", pipeline_->config().name}};
  in_ = &DeclaredCounter(metrics, "ferry_pipeline_events_in_total", l);
  out_ = &DeclaredCounter(metrics, "ferry_pipeline_events_out_total", l);
  dropped_ = &DeclaredCounter(metrics, "ferry_pipeline_events_dropped_total", l);
  lag_gauge_ = &DeclaredGauge(metrics, "ferry_pipeline_lag_events", l);
  bool looks_up = false;
  for (const auto& sc : pipeline_->config().steps)
    looks_up |= sc.type == PipelineStepType::kLookup || (sc.type == PipelineStepType::kThreshold && !sc.table.empty());
  if (looks_up) {
    lookup_misses_ = &DeclaredCounter(metrics, "ferry_pipeline_lookup_misses_total", l);
    // Tables are read as they are when the event is processed: a row written later changes later events only.
    pipeline_->SetTableLookup([this](const std::string& table, const std::string& key)
                                  -> Result<std::optional<std::string>> {
      auto r = log_.LookupLatest(table, key);
      if (!r) {
        if (r.error().code == ErrorCode::kNotFound) return std::optional<std::string>{};
        return tl::unexpected(r.error());
      }
      if (r->event.payload.empty()) return std::optional<std::string>{};  // deleted
      return std::optional<std::string>{std::move(r->event.payload)};
    });
  }
  if (pipeline_->window() != nullptr) {
    late_ = &DeclaredCounter(metrics, "ferry_pipeline_window_late_total", l);
    for (int i = 0; i < 4; ++i)
      closed_[i] = &DeclaredCounter(metrics, "ferry_pipeline_windows_closed_total",
                                    {{"pipeline", pipeline_->config().name},
                                     {"reason", WindowCloseName(static_cast<WindowClose>(i))}});
    keys_gauge_ = &DeclaredGauge(metrics, "ferry_pipeline_window_keys", l);
    open_gauge_ = &DeclaredGauge(metrics, "ferry_pipeline_windows_open", l);
    state_gauge_ = &DeclaredGauge(metrics, "ferry_pipeline_window_state_bytes", l);
    for (const auto& sc : pipeline_->config().steps)
      if (sc.type == PipelineStepType::kThreshold && !alerts_.count(sc.output))
        alerts_[sc.output] = &DeclaredCounter(metrics, "ferry_pipeline_alerts_total",
                                              {{"pipeline", pipeline_->config().name}, {"stream", sc.output}});
  }
  std::vector<std::string> steps = pipeline_->step_names();
  steps.push_back("input");
  steps.push_back("output");
  for (const auto& s : steps)
    failed_[s] = &DeclaredCounter(metrics, "ferry_pipeline_events_failed_total",
                                  {{"pipeline", pipeline_->config().name}, {"step", s}});
}

PipelineRunner::~PipelineRunner() { Stop(); }

Status PipelineRunner::LoadCursors() {
  for (const auto& in : pipeline_->config().input) {
    auto c = log_.GetCursor(in, cursor_);
    if (c) {
      position_[in] = *c;
    } else if (c.error().code == ErrorCode::kNotFound) {
      position_[in] = Seq{1};  // a new pipeline reads what the stream holds, from its oldest record
    } else {
      return tl::unexpected(c.error());
    }
  }
  if (Status st = LoadWindowState(); !st) return st;
  loaded_ = true;
  return Ok();
}

// The window state as committed: whatever the operator held in memory may be ahead of the log.
Status PipelineRunner::LoadWindowState() {
  WindowOperator* w = pipeline_->window();
  if (w == nullptr) return Ok();
  w->Clear();
  const std::string& name = pipeline_->config().name;
  const std::string prefix = PipelineWindowStatePrefix(name);
  auto entries = log_.ListState(prefix);
  if (!entries) return tl::unexpected(entries.error());
  for (const auto& [key, value] : *entries) {
    if (!w->LoadKey(std::string_view(key).substr(prefix.size()), value))
      return Corruption("pipeline " + name + ": window state record \"" + key + "\" is malformed");
  }
  auto meta = log_.GetState(PipelineWindowMetaKey(name));
  committed_meta_.reset();
  if (meta) {
    committed_meta_ = *meta;
    if (!w->LoadMeta(*meta)) return Corruption("pipeline " + name + ": window state record \"" + PipelineWindowMetaKey(name) + "\" is malformed");
  } else if (meta.error().code != ErrorCode::kNotFound) {
    return tl::unexpected(meta.error());
  }
  UpdateWindowGauges();
  return Ok();
}

void PipelineRunner::UpdateLag() {
  uint64_t lag = 0;
  for (const auto& [in, pos] : position_) {
    auto st = log_.GetStreamStats(in);
    if (!st) continue;
    Seq from = std::max(pos, st->first_seq);
    if (st->last_seq.value >= from.value) lag += st->last_seq.value - from.value + 1;
  }
  lag_.store(lag);
  lag_gauge_->Set(static_cast<int64_t>(lag));
}

void PipelineRunner::CountWindow(const ProcessOutcome& o) {
  for (const auto& step : o.threshold_failures) failed_[step]->Inc();
}

void PipelineRunner::UpdateWindowGauges() {
  const WindowOperator* w = pipeline_->window();
  if (w == nullptr) return;
  keys_gauge_->Set(static_cast<int64_t>(w->keys()));
  open_gauge_->Set(static_cast<int64_t>(w->open_windows()));
  state_gauge_->Set(static_cast<int64_t>(w->memory()));
  const WindowStats& s = w->stats();
  late_->Inc(s.late - counted_.late);
  for (int i = 0; i < 4; ++i) closed_[i]->Inc(s.closed[i] - counted_.closed[i]);
  counted_ = s;
}

Result<bool> PipelineRunner::Commit(std::vector<PipelineOutput>& appends, const std::string& in, Seq from, Seq next) {
  std::vector<std::pair<std::string, std::optional<std::string>>> state;
  std::string meta;
  const std::string& name = pipeline_->config().name;
  if (WindowOperator* w = pipeline_->window()) {
    state = w->TakeDirty();
    meta = w->SerializeMeta();
  }
  const std::string prefix = PipelineWindowStatePrefix(name);
  const std::string meta_key = PipelineWindowMetaKey(name);
  const bool windowed = pipeline_->window() != nullptr;
  // Without an input (a tick), every cursor must still be where this runner thinks it is.
  std::vector<std::pair<std::string, Seq>> expect;
  if (in.empty()) {
    for (const auto& [s, pos] : position_) expect.emplace_back(s, pos);
  } else {
    expect.emplace_back(in, from);
  }
  // ONE closure in the writer's transaction: outputs, dead letters, window state and the cursor commit together.
  bool moved = false;
  std::future<Status> done = writer_.Submit([&, cursor = cursor_](WriteTxn& txn) -> Status {
    for (const auto& [s, pos] : expect) {
      auto at = txn.GetCursor(s, cursor);
      Seq current = at ? *at : Seq{1};
      if (!at && at.error().code != ErrorCode::kNotFound) return tl::unexpected(at.error());
      if (current != pos) {
        moved = true;  // someone else moved the cursor: write nothing, reload
        return Ok();
      }
    }
    if (windowed) {
      auto m = txn.GetState(meta_key);
      if (!m && m.error().code != ErrorCode::kNotFound) return tl::unexpected(m.error());
      if ((m ? std::optional<std::string>(*m) : std::nullopt) != committed_meta_) {
        moved = true;  // the state was reset under it: write nothing, reload
        return Ok();
      }
    }
    for (const auto& a : appends) {
      auto seq = txn.Append(a.stream, a.event);
      if (!seq) return tl::unexpected(seq.error());
    }
    if (windowed) {
      for (const auto& [key, value] : state) {
        Status st = value ? txn.PutState(prefix + key, *value) : txn.DeleteState(prefix + key);
        if (!st) return st;
      }
      if (Status st = txn.PutState(meta_key, meta); !st) return st;
    }
    if (in.empty()) return Ok();
    return txn.SetCursor(in, cursor, next);
  });
  Status st = done.get();  // `appends` and `state` live until here: the closure has run (or was dropped) by then
  if (!st) {
    loaded_ = false;  // the window state in memory is ahead of the log: reload it with the cursor
    return tl::unexpected(st.error());
  }
  if (moved) {
    FERRY_LOG_WARN("pipeline %s: cursor or window state changed under it (a reset?); reloading", name.c_str());
    loaded_ = false;
    return false;
  }
  if (windowed) committed_meta_ = std::move(meta);
  return true;
}

Result<PipelineStepResult> PipelineRunner::Step() {
  if (!loaded_) {
    if (Status st = LoadCursors(); !st) return tl::unexpected(st.error());
  }
  const PipelineConfig& pc = pipeline_->config();
  PipelineStepResult result;
  // The first input, in turn from the one after the last served, that has records: inputs share the
  // pipeline fairly without a batch mixing streams (one cursor move per batch).
  for (size_t k = 0; k < pc.input.size(); ++k) {
    const std::string& in = pc.input[(next_input_ + k) % pc.input.size()];
    const Seq from = position_[in];
    auto records = log_.Read(in, from, static_cast<size_t>(pc.batch));
    if (!records) return tl::unexpected(records.error());
    if (records->empty()) continue;
    next_input_ = (next_input_ + k + 1) % pc.input.size();

    std::vector<PipelineOutput> appends;
    for (const StoredRecord& r : *records) {
      // Process works on a view; StoredRecord owns its strings, which outlive the view.
      RecordView v;
      v.seq = r.seq;
      v.ingest_time = r.ingest_time;
      v.time = r.event.time;
      v.id = r.event.id;
      v.source = r.event.source;
      v.type = r.event.type;
      v.subject = r.event.subject;
      v.datacontenttype = r.event.datacontenttype;
      for (const auto& [hk, hv] : r.event.headers) v.headers.emplace_back(hk, hv);
      v.payload = r.event.payload;
      ProcessOutcome o = pipeline_->Process(in, v);
      CountWindow(o);
      result.lookup_misses += o.lookup_misses;
      result.late += o.late;
      result.alerts += o.alerts;
      if (o.failure) {
        ++result.failed;
        if (!pc.dead_letter.empty()) appends.push_back({pc.dead_letter, pipeline_->DeadLetter(in, v, *o.failure)});
        failed_[o.failure->step]->Inc();  // counted once tried; a retried batch may count twice (see docs)
        FERRY_LOG_DEBUG("pipeline %s: %s seq %llu failed at step %s: %s", pc.name.c_str(), in.c_str(),
                        static_cast<unsigned long long>(r.seq.value), o.failure->step.c_str(),
                        o.failure->message.c_str());
        continue;
      }
      if (o.outputs.empty()) ++result.dropped;
      result.outputs += o.outputs.size();
      for (auto& out : o.outputs) appends.push_back(std::move(out));
    }
    const Seq next = records->back().seq.next();
    result.records = records->size();

    auto committed = Commit(appends, in, from, next);
    if (!committed) return tl::unexpected(committed.error());
    if (!*committed) return PipelineStepResult{};
    position_[in] = next;
    in_->Inc(result.records);
    out_->Inc(result.outputs);
    dropped_->Inc(result.dropped);
    if (lookup_misses_ != nullptr) lookup_misses_->Inc(result.lookup_misses);
    for (const auto& a : appends)
      if (auto it = alerts_.find(a.stream); it != alerts_.end() && a.event.type == "ferry.alert") it->second->Inc();
    UpdateWindowGauges();
    UpdateLag();
    return result;
  }
  // Caught up. A reset (ferryctl pipeline reset) shows here, not only at the next commit: cheap reads.
  for (const auto& [in, pos] : position_) {
    auto c = log_.GetCursor(in, cursor_);
    if ((c ? *c : Seq{1}) != pos && (c || c.error().code == ErrorCode::kNotFound)) {
      FERRY_LOG_INFO("pipeline %s: cursor on %s moved to %llu (a reset?); reloading", pc.name.c_str(), in.c_str(),
                     static_cast<unsigned long long>(c ? c->value : 1));
      loaded_ = false;
      return result;
    }
  }
  if (pipeline_->window() != nullptr) {
    auto m = log_.GetState(PipelineWindowMetaKey(pc.name));
    if ((m ? std::optional<std::string>(*m) : std::nullopt) != committed_meta_ &&
        (m || m.error().code == ErrorCode::kNotFound)) {
      loaded_ = false;
      return result;
    }
  }
  // Idle keys close on the log's clock.
  if (pipeline_->window() != nullptr) {
    ProcessOutcome o = pipeline_->Tick(log_.clock().Now());
    CountWindow(o);
    // Closing an idle key always emits its windows; a tick that emits nothing changed nothing worth a commit
    // (a key left dirty is written with the next batch).
    if (!o.outputs.empty()) {
      std::vector<PipelineOutput> appends = std::move(o.outputs);
      auto committed = Commit(appends, std::string(), Seq{}, Seq{});
      if (!committed) return tl::unexpected(committed.error());
      if (*committed) {
        result.outputs = appends.size();
        result.alerts = o.alerts;
        out_->Inc(result.outputs);
        for (const auto& ap : appends)
          if (auto it = alerts_.find(ap.stream); it != alerts_.end() && ap.event.type == "ferry.alert") it->second->Inc();
        UpdateWindowGauges();
      }
    }
  }
  UpdateLag();
  return result;
}

void PipelineRunner::Start() {
  if (thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = false;
  }
  listener_ = writer_.AddCommitListener([this](uint64_t count) {
    std::lock_guard<std::mutex> lk(mu_);
    commits_seen_ = count;
    cv_.notify_one();
  });
  thread_ = std::thread([this] { Run(); });
}

void PipelineRunner::Stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
    cv_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
  if (listener_ != 0) {
    writer_.RemoveCommitListener(listener_);
    listener_ = 0;
  }
}

void PipelineRunner::Run() {
  const std::string& name = pipeline_->config().name;
  auto backoff = std::chrono::milliseconds(100);
  for (;;) {
    uint64_t seen;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stopping_) return;
      seen = commits_seen_;  // read before the log: a commit after this shows as a change
    }
    auto r = Step();
    std::unique_lock<std::mutex> lk(mu_);
    if (stopping_) return;
    if (r && r->records > 0) {
      backoff = std::chrono::milliseconds(100);
      continue;
    }
    if (!r) {
      FERRY_LOG_WARN("pipeline %s: %s; retrying in %lld ms", name.c_str(), r.error().ToString().c_str(),
                     static_cast<long long>(backoff.count()));
      cv_.wait_for(lk, backoff, [&] { return stopping_; });
      backoff = std::min(backoff * 2, std::chrono::milliseconds(10'000));
      continue;
    }
    // Caught up: wait for the next commit (ours included; that look is cheap). The timeout is a safety net
    // for appends that bypass the writer (ferryctl), not the wake-up path.
    cv_.wait_for(lk, std::chrono::seconds(1), [&] { return stopping_ || commits_seen_ != seen; });
  }
}

}  // namespace ferry
