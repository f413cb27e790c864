#include "ferry/daemon.h"

#include <algorithm>
#include <future>

#include "ferry/log.h"
#include "ferry/pipeline_runner.h"
#include "ferry/sd_notify.h"
#include "ferry/stream_iterator.h"
#include "ferry/paho_glue.h"
#include "ferry/version.h"

namespace ferry {
namespace {

StreamOptions ToStreamOptions(const StreamConfig& sc) {
  StreamOptions o;
  o.kind = sc.kind;
  o.full_policy = sc.full_policy;
  o.priority = static_cast<int32_t>(sc.priority);
  o.max_age_ns = sc.max_age.count();
  o.max_bytes = sc.max_bytes;
  o.tombstone_grace_ns = sc.tombstone_grace.count();
  return o;
}

// ferry_storage_commit_seconds is observed once per group commit, on the writer's thread: every append's
// completion (StreamCounters::Done) runs there, in the batch's Finish, just before the commit listener. So
// the oldest append of the batch in hand is writer-thread state, not shared: a thread_local, read and reset
// by the commit listener. (Cursor updates from the uplinks reach the writer without passing here.)
thread_local SteadyTime tl_batch_oldest_append{};

LogLevel ToLogLevel(ConfigLogLevel l) {
  switch (l) {
    case ConfigLogLevel::kDebug: return LogLevel::kDebug;
    case ConfigLogLevel::kInfo: return LogLevel::kInfo;
    case ConfigLogLevel::kWarn: return LogLevel::kWarn;
    case ConfigLogLevel::kError: return LogLevel::kError;
  }
  return LogLevel::kInfo;
}

}  // namespace

Daemon::~Daemon() { Stop(); }

Status Daemon::ApplyStreams(const Config& config) {
  for (const auto& sc : config.streams) {
    Status st = log_->CreateStream(sc.name, ToStreamOptions(sc));
    if (!st) return InvalidArgument("stream " + sc.name + ": " + st.error().message);
  }
  return Ok();
}

Status Daemon::Open(const Config& config) {
  config_ = config;
  SetLogLevel(ToLogLevel(config.log.level));
  EventLogOptions lo;
  lo.path = config.storage.path;
  lo.map_size = static_cast<size_t>(config.storage.map_size);
  if (lo.map_size != config.storage.map_size)
    return InvalidArgument("storage.map_size " + std::to_string(config.storage.map_size) +
                           " does not fit this 32-bit address space");
  lo.sync = config.storage.sync;
  lo.clock = &clock_;
  lo.max_streams = static_cast<unsigned>(std::max<size_t>(64, config.streams.size() + 8));
  auto log = EventLog::Open(lo);
  if (!log) return MakeError(log.error().code, "storage.path " + lo.path + ": " + log.error().message);
  log_ = std::move(*log);
  if (Status st = ApplyStreams(config); !st) return st;
  for (const auto& sc : config.streams) {
    auto c = std::make_unique<StreamCounters>();
    c->daemon = this;
    c->name = sc.name;
    c->stored = &DeclaredCounter(metrics_, "ferry_stream_stored_total", {{"stream", sc.name}});
    c->rejected = &DeclaredCounter(metrics_, "ferry_stream_rejected_total", {{"stream", sc.name}});
    stream_counters_[sc.name] = std::move(c);
  }

  GroupCommitOptions go;
  go.max_batch_events = static_cast<size_t>(config.storage.commit.max_events);
  go.max_batch_bytes = static_cast<size_t>(config.storage.commit.max_bytes);
  // In sync durability one message waits for each commit (Paho delivers one at a time), so lingering would
  // only add latency; in batch durability it is what makes commits large.
  // With the ingest listener every device waits for its PUBACK, i.e. for the commit: lingering for more events
  // would only hold the acknowledgements back (bench: a full commit.max_delay per commit when the devices'
  // windows were all waiting). Batches still form while the previous commit's fsyncs run. In mode "both" the
  // subscribe path lingers; the listener ends a linger once every device waiting on it has a full window
  // (IngestSink::CommitSoon).
  go.max_linger = config.ingest.durability == Durability::kSync || config.ingest.mode == IngestMode::kListen
                      ? std::chrono::microseconds(0)
                      : std::chrono::duration_cast<std::chrono::microseconds>(config.storage.commit.max_delay);
  // Bound the queue (and so the heap) to a few batches: beyond that, ingest blocks and the local broker holds
  // the messages in its queue for ferryd's session.
  go.max_queue_events = std::max<size_t>(go.max_batch_events, 1000);
  writer_ = std::make_unique<GroupCommitWriter>(*log_, go);
  maintainer_ = std::make_unique<LogMaintainer>(*log_);

  auto make_router = [&]() -> Result<IngestRouter> {
    auto router = IngestRouter::Create(config);
    if (!router) return router;
    if (Status st = SeedDedupe(*router); !st) return tl::make_unexpected(st.error());
    return router;
  };
  // What an ingest thread had in hand at an unclean exit, so a message that crashed ferryd is set aside
  // when it comes again instead of crashing it again (ferry/crash_guard.h).
  auto guard = CrashGuard::Open(config.storage.path + "/ingest.guard");
  if (!guard) return tl::make_unexpected(guard.error());
  crash_guard_ = std::move(*guard);
  if (crash_guard_->suspects() > 0)
    FERRY_LOG_WARN("ingest: %zu message(s) were in hand at an unclean exit: each is set aside (reason poison) if "
                   "it comes again after a crash, or at its second unclean exit",
                   crash_guard_->suspects());
  if (config.ingest.mode != IngestMode::kListen) {
    auto router = make_router();
    if (!router) return tl::make_unexpected(router.error());
    ingest_ = std::make_unique<MqttIngest>(config, std::move(*router), *this, metrics_, clock_);
    ingest_->SetCrashGuard(crash_guard_.get(), 1);
  }
  if (config.ingest.mode != IngestMode::kSubscribe) {
    auto router = make_router();
    if (!router) return tl::make_unexpected(router.error());
    listener_ = std::make_unique<IngestListener>(config, std::move(*router), *this, metrics_, clock_);
    listener_->SetCrashGuard(crash_guard_.get(), 0);
  }
  if (Status st = BuildUplinks(); !st) return st;
  // Pipelines: compiled here, so a Lua syntax error stops ferryd at start naming the pipeline and step.
  for (const auto& pc : config.pipelines) {
    auto p = Pipeline::Compile(pc);
    if (!p) return tl::make_unexpected(p.error());
    pipelines_.push_back(std::make_unique<PipelineRunner>(*log_, *writer_, std::move(*p), metrics_));
  }
  for (const auto& dc : config_.downlinks)
    downlinks_.push_back(Downlink::Make(config_, dc, *log_, *writer_, metrics_, clock_));

  if (config.metrics.enabled) {
    HttpServerOptions ho;
    ho.listen = config.metrics.listen;
    // With the console off, /metrics and /healthz are served without libmicrohttpd, which would map GnuTLS and
    // its dependencies for two GET routes (3.5 MB of RSS; docs/console.md, "Memory and sockets"). With the
    // console on, that library is loaded anyway and serves both.
    ho.plain = !config.console.enabled;
    http_ = std::make_unique<HttpServer>(ho, clock_);
    http_->ServeMetrics([this] { return metrics_.Render(); });
    http_->ServeHealth([this] { return Health(); });
  }
  if (config.console.enabled) {
    auto links = [this] {
      std::vector<ConsoleLink> v;
      std::lock_guard<std::mutex> lock(uplinks_mu_);
      for (const auto& u : uplinks_) v.push_back({u->name(), u->link_up()});
      for (const auto& name : rebuilding_uplinks_) v.push_back({name, false});
      return v;
    };
    auto console = Console::Make(config.console, ConsoleSources{log_.get(), writer_.get(), &config_, links}, clock_);
    if (!console) return tl::make_unexpected(console.error());
    console_ = std::move(*console);
  }
  RegisterMetrics();
  return Ok();
}

Status Daemon::SeedDedupe(IngestRouter& router) {
  // A message the local broker redelivers after a crash (its PUBACK never left) may already be in the log:
  // remember the ids of each stream's recent tail so the redelivery is recognised and dropped.
  const int64_t window = config_.ingest.dedupe_window.count();
  const uint64_t cap = static_cast<uint64_t>(std::max<int64_t>(config_.ingest.dedupe_capacity, 0));
  if (window <= 0 || cap == 0) return Ok();
  TimeNs since{clock_.Now().ns - window};
  for (const auto& sc : config_.streams) {
    auto stats = log_->GetStreamStats(sc.name);
    if (!stats) return tl::make_unexpected(stats.error());
    if (stats->count == 0) continue;
    auto it = log_->NewIterator(sc.name);
    if (!it) return tl::make_unexpected(it.error());
    uint64_t from = stats->last_seq.value >= cap ? stats->last_seq.value - cap + 1 : 1;
    for ((*it)->Seek(Seq{from}); (*it)->Valid(); (*it)->Next()) {
      const RecordView& r = (*it)->record();
      if (r.ingest_time < since || r.id.empty()) continue;
      router.RememberId(sc.name, r.id, r.ingest_time);
    }
    if (!(*it)->status() && (*it)->status().error().code != ErrorCode::kCorruption)
      return tl::make_unexpected((*it)->status().error());
  }
  return Ok();
}

Result<std::vector<std::unique_ptr<Uplink>>> Daemon::MakeUplinks() {
  std::vector<std::unique_ptr<Uplink>> built;
  for (const auto& uc : config_.uplinks) {
    auto up = std::make_unique<Uplink>(config_, uc, *log_, *writer_, metrics_, clock_);  // MQTT or Kafka by type
    if (Status st = up->Start(); !st) return tl::make_unexpected(st.error());
    built.push_back(std::move(up));
  }
  return built;
}

Status Daemon::TryUplinks() {
  auto trial = MakeUplinks();
  if (!trial) return tl::make_unexpected(trial.error());
  return Ok();
}

Status Daemon::BuildUplinks() {
  // Built and started aside, then swapped in: /healthz never sees a half-built list.
  auto built = MakeUplinks();
  if (!built) return tl::make_unexpected(built.error());
  std::lock_guard<std::mutex> lock(uplinks_mu_);
  uplinks_.swap(*built);
  uplinks_error_.clear();
  rebuilding_uplinks_.clear();
  return Ok();
}

std::vector<std::unique_ptr<Uplink>> Daemon::StopUplinks(bool for_reload) {
  std::vector<std::unique_ptr<Uplink>> old;
  {
    std::lock_guard<std::mutex> lock(uplinks_mu_);
    if (for_reload)
      for (const auto& u : uplinks_) rebuilding_uplinks_.push_back(u->name());  // /healthz: "down (reloading)"
    old.swap(uplinks_);
  }
  for (auto& u : old) u->Stop();  // hands the last cursor positions to the writer
  return old;
}

void Daemon::RegisterMetrics() {
  DeclaredGauge(metrics_, "ferry_build_info", {{"version", FERRY_VERSION}, {"board", FERRY_BOARD}})
      .Set(1);
  commit_latency_ = &metrics_.GetHistogram("ferry_storage_commit_seconds",
                                           FerryMetric("ferry_storage_commit_seconds").help, CommitLatencyBuckets());
  // One observation per commit the writer counts in ferry_storage_commits_total (a batch that made nothing
  // durable is announced too, but is not a commit). The time runs from the batch's oldest append, or from
  // the previous commit's end when that is later (the writer was busy), to this commit's end: lingering
  // (commit.max_delay), the write transaction and the fsync pair.
  writer_->AddCommitListener([this, seen = uint64_t{0}, prev_end = clock_.Steady()](uint64_t) mutable {
    const SteadyTime now = clock_.Steady();
    SteadyTime oldest = tl_batch_oldest_append;
    tl_batch_oldest_append = SteadyTime{};
    const uint64_t commits = writer_->stats().commits;
    if (commits != seen) {
      seen = commits;
      SteadyTime start = oldest == SteadyTime{} ? prev_end : std::max(oldest, prev_end);
      commit_latency_->ObserveNs(std::max<int64_t>(0, (now - start).count()));
    }
    prev_end = now;
  });
  metrics_.AddCallbackGauge("ferry_storage_map_used_bytes", FerryMetric("ferry_storage_map_used_bytes").help, {},
                            [this] {
                              auto es = log_->GetEnvStats();
                              return es ? static_cast<double>(es->used_bytes) : 0.0;
                            });
  metrics_.AddCallbackGauge("ferry_storage_map_size_bytes", FerryMetric("ferry_storage_map_size_bytes").help, {},
                            [this] { return static_cast<double>(log_->options().map_size); });
  // The writer keeps these counts itself; they are counters, read at scrape time.
  metrics_.AddCollector("ferry_storage_commits_total", FerryMetric("ferry_storage_commits_total").help,
                        MetricType::kCounter, [this](std::vector<Sample>& out) {
                          out.push_back({{}, static_cast<double>(writer_->stats().commits)});
                        });
  metrics_.AddCollector("ferry_storage_commit_events", FerryMetric("ferry_storage_commit_events").help,
                        MetricType::kCounter, [this](std::vector<Sample>& out) {
                          out.push_back({{}, static_cast<double>(writer_->stats().events)});
                        });
  // The names, copied now: a reload assigns config_.streams' entries on the main thread while these run on the
  // HTTP thread, and the set of streams only changes at a restart.
  std::vector<std::string> stream_names;
  for (const auto& sc : config_.streams) stream_names.push_back(sc.name);
  auto per_stream = [this, stream_names](auto fn) {
    return [this, fn, stream_names](std::vector<Sample>& out) {
      for (const auto& name : stream_names) {
        auto st = log_->GetStreamStats(name);
        if (st) fn(*st, out);
      }
    };
  };
  metrics_.AddCollector("ferry_stream_events", FerryMetric("ferry_stream_events").help, MetricType::kGauge,
                        per_stream([](const StreamStats& s, std::vector<Sample>& out) {
                          out.push_back({{{"stream", s.name}}, static_cast<double>(s.count)});
                        }));
  metrics_.AddCollector("ferry_stream_bytes", FerryMetric("ferry_stream_bytes").help, MetricType::kGauge,
                        per_stream([](const StreamStats& s, std::vector<Sample>& out) {
                          out.push_back({{{"stream", s.name}}, static_cast<double>(s.bytes)});
                        }));
  metrics_.AddCollector("ferry_stream_evicted_total", FerryMetric("ferry_stream_evicted_total").help,
                        MetricType::kCounter, per_stream([](const StreamStats& s, std::vector<Sample>& out) {
                          for (int r = 0; r < kEvictReasonCount; ++r)
                            out.push_back({{{"stream", s.name}, {"reason", EvictReasonName(static_cast<EvictReason>(r))}},
                                           static_cast<double>(s.evicted[r])});
                        }));
}

HealthStatus Daemon::Health() {
  HealthStatus h;
  std::string text;
  if (ingest_) text += std::string("ingest ") + (ingest_->connected() ? "up" : "down") + "\n";
  if (listener_) {
    text += std::string("ingest listener ") + (listener_->listening() ? "listening on port " : "down, port ") +
            std::to_string(listener_->port()) + ", " + std::to_string(listener_->connections()) + " connections\n";
  }
  {
    std::lock_guard<std::mutex> lock(uplinks_mu_);
    for (const auto& u : uplinks_) text += "uplink " + u->name() + " " + (u->link_up() ? "up" : "down") + "\n";
    if (!uplinks_error_.empty()) {
      h.ok = false;  // stored events are not forwarded until a reload or restart fixes it
      text += "uplinks stopped: " + uplinks_error_ + "\n";
    }
    // Between the old uplinks' end and the new ones' start a reload has none: say so rather than list nothing.
    for (const auto& name : rebuilding_uplinks_) text += "uplink " + name + " down (reloading)\n";
  }
  auto es = log_->GetEnvStats();
  if (!es) {
    h.ok = false;
    text += "storage error: " + es.error().ToString() + "\n";
  } else {
    text += "storage used " + std::to_string(es->used_bytes) + " of " + std::to_string(es->map_size) + " bytes\n";
  }
  // Links come and go on a gateway: only a log that cannot store makes ferryd unhealthy.
  {
    std::lock_guard<std::mutex> lock(warn_mu_);
    for (const auto& [stream, w] : warnings_) {
      if (!w.open) continue;
      h.ok = false;
      auto secs = std::chrono::duration_cast<std::chrono::seconds>(clock_.Steady() - w.since).count();
      text += "storage: stream " + stream + ": " + std::to_string(w.total) + " event(s) not stored in the last " +
              std::to_string(secs) + " s: " + w.error + "\n";
    }
  }
  h.text = text;
  return h;
}

Status Daemon::Start() {
  if (ingest_) {
    if (Status st = ingest_->Start(); !st) return st;
  }
  if (listener_) {
    if (Status st = listener_->Start(); !st) return st;
  }
  if (http_) {
    if (Status st = http_->Start(); !st) return MakeError(st.error().code, "metrics.listen: " + st.error().message);
    http_thread_ = std::thread([this] { http_->Run(); });
  }
  if (console_) {
    if (Status st = console_->Start(); !st) return st;
  }
  writer_->Start();
  maintainer_->Start();
  for (auto& u : uplinks_) u->Run();
  for (auto& p : pipelines_) p->Start();
  for (auto& d : downlinks_)
    if (Status st = d->Start(); !st) return st;  // librdkafka refused a property: say which, at start
  if (listener_) listener_->Run();
  started_ = true;
  SdNotify("READY=1");
  FERRY_LOG_INFO("ferryd %s: gateway %s, log %s, %zu streams, %zu uplinks%s", FERRY_VERSION,
                 config_.gateway.id.c_str(), config_.storage.path.c_str(), config_.streams.size(), uplinks_.size(),
                 http_ ? (", metrics on port " + std::to_string(http_->port())).c_str() : "");
  return Ok();
}

void Daemon::Step() {
  if (!started_ || stopped_) return;
  if (ingest_) ingest_->Step();
  auto now = clock_.Steady();
  if (now - last_watchdog_ >= std::chrono::seconds(1)) {
    last_watchdog_ = now;
    SdNotify("WATCHDOG=1");
  }
}

Status Daemon::Append(const std::string& stream, Event event, bool wait_durable) {
  auto it = stream_counters_.find(stream);
  if (it == stream_counters_.end()) return InvalidArgument("stream \"" + stream + "\" is not declared");
  StreamCounters* sc = it->second.get();
  auto t0 = clock_.Steady();
  if (wait_durable) {
    // Done runs on the writer's thread, in the commit, as for every append (see tl_batch_oldest_append).
    // Shared: the waiter may return (and destroy its copy) while set_value is still unwinding.
    auto promise = std::make_shared<std::promise<Result<Seq>>>();
    auto future = promise->get_future();
    writer_->Append(stream, std::move(event), [sc, t0, promise](Result<Seq> r) {
      sc->Done(r, t0);
      promise->set_value(std::move(r));
    });
    auto seq = future.get();
    if (!seq) return tl::make_unexpected(seq.error());
    return Ok();
  }
  // Two words of capture: std::function keeps them inline, so queueing an event allocates no closure.
  writer_->Append(stream, std::move(event), [sc, t0](Result<Seq> r) { sc->Done(r, t0); });
  return Ok();
}

void Daemon::AppendThen(const std::string& stream, Event event, std::function<void(const Result<Seq>&)> done) {
  auto it = stream_counters_.find(stream);
  if (it == stream_counters_.end()) {
    done(InvalidArgument("stream \"" + stream + "\" is not declared"));
    return;
  }
  StreamCounters* sc = it->second.get();
  auto t0 = clock_.Steady();
  writer_->Append(stream, std::move(event), [sc, t0, done = std::move(done)](Result<Seq> r) {
    sc->Done(r, t0);
    done(r);
  });
}

void Daemon::StreamCounters::Done(const Result<Seq>& r, SteadyTime t0) {
  if (tl_batch_oldest_append == SteadyTime{} || t0 < tl_batch_oldest_append) tl_batch_oldest_append = t0;
  if (r) {
    stored->Inc();
    if (failing.load(std::memory_order_relaxed)) daemon->StoreRecovered(name);
    return;
  }
  failing.store(true, std::memory_order_relaxed);
  if (r.error().code == ErrorCode::kFull) {
    rejected->Inc();
  } else {
    std::string code = r.error().code == ErrorCode::kIoError ? "io_error" : "other";
    DeclaredCounter(daemon->metrics_, "ferry_storage_append_errors_total", {{"stream", name}, {"error", code}}).Inc();
  }
  daemon->WarnRejected(name, r.error());
}

void Daemon::StoreRecovered(const std::string& stream) {
  std::lock_guard<std::mutex> lock(warn_mu_);
  auto& w = warnings_[stream];
  if (auto sc = stream_counters_.find(stream); sc != stream_counters_.end()) sc->second->failing.store(false);
  if (!w.open) return;
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(clock_.Steady() - w.since).count();
  FERRY_LOG_WARN("storage: %s: storing again after %lld s; %llu event(s) were refused meanwhile (the ingest "
                 "listener's devices kept theirs and re-send them)",
                 stream.c_str(), static_cast<long long>(secs), static_cast<unsigned long long>(w.total));
  w = Warning{};
}

void Daemon::WarnRejected(const std::string& stream, const Error& error) {
  // A full reject_new stream refuses every event: one line per stream every 10 s, with the count, not one per
  // event. The metric ferry_stream_rejected_total has every one.
  std::lock_guard<std::mutex> lock(warn_mu_);
  auto& w = warnings_[stream];
  auto now = clock_.Steady();
  if (!w.open) {
    w.open = true;
    w.since = now;
    w.last = SteadyTime{};
  }
  ++w.suppressed;
  ++w.total;
  w.error = error.ToString();
  if (w.last != SteadyTime{} && now - w.last < std::chrono::seconds(10)) return;
  FERRY_LOG_WARN("storage: %s: %llu event(s) not stored: %s", stream.c_str(),
                 static_cast<unsigned long long>(w.suppressed), error.ToString().c_str());
  w.suppressed = 0;
  w.last = now;
}

Result<ReloadPlan> Daemon::Reload(const Config& next) {
  // Applies exactly the keys the declaration table marks reloadable; the others wait for a restart (and are
  // listed in plan.restart). Streams, uplinks and routes are matched by name as in ReloadDiff.
  ReloadPlan plan = ReloadDiff(config_, next);
  if (plan.empty()) return plan;
  auto changed = [&plan](const char* prefix) {
    for (const auto& key : plan.reload)
      if (key.rfind(prefix, 0) == 0) return true;
    return false;
  };
  config_.log = next.log;
  SetLogLevel(ToLogLevel(next.log.level));

  // Stream retention, compaction grace, full policy and priority live with the stream in the log.
  for (auto& sc : config_.streams) {
    const StreamConfig* n = next.FindStream(sc.name);
    if (!n) continue;
    StreamConfig updated = *n;
    updated.kind = sc.kind;  // restart-only
    if (Status st = log_->CreateStream(sc.name, ToStreamOptions(updated)); !st) return tl::make_unexpected(st.error());
    sc = updated;
  }

  // Ingest limits: a new router, seeded from the log as at start.
  if (changed("ingest.")) {
    config_.ingest.max_payload = next.ingest.max_payload;
    config_.ingest.dedupe_window = next.ingest.dedupe_window;
    config_.ingest.backoff = next.ingest.backoff;
    config_.ingest.max_future_skew = next.ingest.max_future_skew;
    config_.ingest.time_floor = next.ingest.time_floor;
    for (int i = 0; i < 2; ++i) {
      if ((i == 0 && !ingest_) || (i == 1 && !listener_)) continue;
      auto router = IngestRouter::Create(config_);
      if (!router) return tl::make_unexpected(router.error());
      if (Status st = SeedDedupe(*router); !st) return tl::make_unexpected(st.error());
      if (i == 0) ingest_->Reconfigure(std::move(*router), config_.ingest.backoff);
      else listener_->Reconfigure(std::move(*router));
    }
  }

  // Uplinks keep all their state in the log (cursors), so rebuilding them applies their reloadable settings.
  if (changed("uplink")) {
    // The new settings are tried first, on uplinks that are never run: if they cannot start (a key or TLS file
    // gone since start), the running uplinks are left alone and keep forwarding under the previous settings.
    const std::vector<UplinkConfig> previous = config_.uplinks;
    for (auto& uc : config_.uplinks) {
      const UplinkConfig* n = next.FindUplink(uc.name);
      if (!n) continue;
      uc.batch = n->batch;
      uc.compression_level = n->compression_level;
      uc.drain_order = n->drain_order;
      uc.bytes_per_sec = n->bytes_per_sec;
      uc.backoff = n->backoff;
    }
    if (Status st = TryUplinks(); !st) {
      config_.uplinks = previous;
      return MakeError(st.error().code, st.error().message + " (the uplinks keep their previous settings)");
    }
    // Stopped, but destroyed only once the new ones exist: with the ingest listener an uplink may hold the
    // process's last Paho client, and Paho C tears its global state down when that one is destroyed, racing its
    // own threads (a rare SIGSEGV, see ferryd_main.cc).
    auto stopped = StopUplinks(/*for_reload=*/true);
    // The stopped uplinks handed their cursors to the writer; the new ones must read them back, not older ones.
    auto flushed = writer_->Submit([](WriteTxn&) { return Ok(); });
    if (flushed.wait_for(std::chrono::seconds(30)) != std::future_status::ready)
      FERRY_LOG_WARN("reload: the uplinks' cursors were not committed within 30 s; some events may be re-sent");
    Status built = BuildUplinks();
    std::lock_guard<std::mutex> lock(uplinks_mu_);
    if (!built) {
      // Only if a file vanished between the trial and now: say so where operators look.
      rebuilding_uplinks_.clear();
      uplinks_error_ = built.error().ToString();
      FERRY_LOG_ERROR("reload: uplinks could not start: %s: forwarding is stopped until a reload or restart "
                      "succeeds", uplinks_error_.c_str());
      for (auto& u : stopped) retired_uplinks_.push_back(std::move(u));  // no new client: keep Paho's alive
    }
    for (auto& u : uplinks_) u->Run();
    if (!built) return tl::make_unexpected(built.error());
  }
  return plan;
}

void Daemon::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (started_) SdNotify("STOPPING=1");
  if (ingest_) ingest_->Stop();
  if (listener_) listener_->Stop();
  if (console_) console_->Stop();  // its live tails listen to the writer
  // Hands their last cursor positions to the writer. Kept, not destroyed: ferryd leaves with _Exit, and destroying
  // the last Paho client here races Paho's own threads (a SIGSEGV at shutdown seen once in CI, listen mode).
  for (auto& u : StopUplinks(/*for_reload=*/false)) retired_uplinks_.push_back(std::move(u));
  // A pipeline's batch waits for its commit: stop them while the writer still runs.
  for (auto& p : pipelines_) p->Stop();
  for (auto& d : downlinks_) d->Stop();  // a batch waits for its commit, as a pipeline's does
  if (writer_) writer_->Stop();  // commits everything queued, ingest and cursors alike
  if (maintainer_) maintainer_->Stop();
  if (http_) http_->Stop();
  if (http_thread_.joinable()) http_thread_.join();
}

}  // namespace ferry
