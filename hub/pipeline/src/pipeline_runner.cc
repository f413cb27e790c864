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
  loaded_ = true;
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

    // ONE closure in the writer's transaction: outputs, dead letters and the cursor commit together.
    bool moved = false;
    std::future<Status> done = writer_.Submit(
        [&appends, &moved, in, from, next, cursor = cursor_](WriteTxn& txn) -> Status {
          auto at = txn.GetCursor(in, cursor);
          Seq current = at ? *at : Seq{1};
          if (!at && at.error().code != ErrorCode::kNotFound) return tl::unexpected(at.error());
          if (current != from) {
            moved = true;  // someone else moved the cursor: write nothing, reload
            return Ok();
          }
          for (const auto& a : appends) {
            auto seq = txn.Append(a.stream, a.event);
            if (!seq) return tl::unexpected(seq.error());
          }
          return txn.SetCursor(in, cursor, next);
        });
    Status st = done.get();  // `appends` lives until here: the closure has run (or was dropped) by then
    if (!st) return tl::unexpected(st.error());
    if (moved) {
      FERRY_LOG_WARN("pipeline %s: cursor on %s moved under it; reloading", pc.name.c_str(), in.c_str());
      loaded_ = false;
      return PipelineStepResult{};
    }
    position_[in] = next;
    in_->Inc(result.records);
    out_->Inc(result.outputs);
    dropped_->Inc(result.dropped);
    UpdateLag();
    return result;
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
