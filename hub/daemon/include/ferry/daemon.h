// ferry/daemon.h: ferryd assembled: the event log, the group-commit writer, maintenance, MQTT ingest, the
// uplinks, metrics and /healthz, SIGHUP reload and systemd notification.
//
// Threads: Open/Start/Step/Reload/Stop from the main thread. Step() is the main loop's body: reconnect
// ingest when due, pet the watchdog. The writer, the maintainer, each uplink and the HTTP server have
// threads of their own.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ferry/clock.h"
#include "ferry/config.h"
#include "ferry/console.h"
#include "ferry/downlink.h"
#include "ferry/event_log.h"
#include "ferry/group_commit.h"
#include "ferry/http_server.h"
#include "ferry/ingest_listener.h"
#include "ferry/log_maintainer.h"
#include "ferry/metrics.h"
#include "ferry/mqtt_ingest.h"
#include "ferry/pipeline_runner.h"
#include "ferry/uplink.h"

namespace ferry {

class Daemon final : public IngestSink {
 public:
  explicit Daemon(const Clock& clock = SystemClock::Instance()) : clock_(clock) {}
  ~Daemon() override;

  // Opens the log (creating the declared streams or updating their options), seeds the redelivery window
  // from each stream's recent ids, and builds every component. Errors name the problem (config, storage).
  Status Open(const Config& config);
  // Starts the threads and the first connection attempts; notifies systemd READY=1.
  Status Start();
  // One turn of the main loop. Cheap: call every few milliseconds.
  void Step();
  // Applies a new configuration's reloadable keys (log level, stream retention and policies, uplink
  // settings, ingest limits). Keys that need a restart are reported in the result and left unchanged.
  Result<ReloadPlan> Reload(const Config& next);
  // Stops ingest first, then drains the writer, then the uplinks. Idempotent.
  void Stop();

  // IngestSink.
  Status Append(const std::string& stream, Event event, bool wait_durable) override;
  void AppendThen(const std::string& stream, Event event, std::function<void(const Result<Seq>&)> done) override;
  void CommitSoon() override { writer_->CommitSoon(); }

  // The ingest listener's bound port (0 when mode is subscribe).
  uint16_t listener_port() const { return listener_ ? listener_->port() : 0; }

  EventLog& log() { return *log_; }
  MetricsRegistry& metrics() { return metrics_; }
  uint16_t metrics_port() const { return http_ ? http_->port() : 0; }
  uint16_t console_port() const { return console_ ? console_->port() : 0; }
  const Config& config() const { return config_; }

 private:
  Status ApplyStreams(const Config& config);
  Status SeedDedupe(IngestRouter& router);
  // Uplinks for config_.uplinks, started (cursors loaded, clients made; nothing connects until Run).
  Result<std::vector<std::unique_ptr<Uplink>>> MakeUplinks();
  Status TryUplinks();    // MakeUplinks, and the result thrown away: can the settings start?
  Status BuildUplinks();  // MakeUplinks, swapped in for uplinks_ (which must be stopped); on error nothing changes
  // Takes the uplinks out (under uplinks_mu_) and stops them; for a reload, /healthz names them "down (reloading)"
  // until BuildUplinks swaps the new ones in.
  // Returns them, stopped: the caller decides when they are destroyed (see Reload and Stop).
  std::vector<std::unique_ptr<Uplink>> StopUplinks(bool for_reload);
  void RegisterMetrics();
  HealthStatus Health();
  void WarnRejected(const std::string& stream, const Error& error);
  void StoreRecovered(const std::string& stream);

  const Clock& clock_;
  Config config_;
  MetricsRegistry metrics_;
  std::unique_ptr<EventLog> log_;
  std::unique_ptr<GroupCommitWriter> writer_;
  std::unique_ptr<LogMaintainer> maintainer_;
  std::unique_ptr<CrashGuard> crash_guard_;     // before the ingest paths that use it
  std::unique_ptr<MqttIngest> ingest_;          // mode subscribe / both
  std::unique_ptr<IngestListener> listener_;   // mode listen / both
  // Replaced whole by Reload (on the thread that calls it) while the HTTP thread reads it for /healthz: both
  // hold uplinks_mu_ for the swap and the read; only the thread that owns the Daemon mutates the uplinks.
  std::vector<std::unique_ptr<Uplink>> uplinks_;
  std::mutex uplinks_mu_;
  std::string uplinks_error_;  // under uplinks_mu_: why the last reload left no uplinks running ("" = none)
  // Stopped uplinks kept until the Daemon is destroyed (never, in ferryd: it leaves with _Exit): destroying the
  // process's last Paho client races Paho C's own threads.
  std::vector<std::unique_ptr<Uplink>> retired_uplinks_;
  std::vector<std::string> rebuilding_uplinks_;  // under uplinks_mu_: the names, while BuildUplinks replaces them
  // [[pipeline]]s, one runner (and thread) each; restart-only, so built once in Open.
  std::vector<std::unique_ptr<PipelineRunner>> pipelines_;
  std::vector<std::unique_ptr<Downlink>> downlinks_;
  std::unique_ptr<HttpServer> http_;
  std::thread http_thread_;
  std::unique_ptr<Console> console_;  // [console] enabled; declared after writer_: its tails go first
  Histogram* commit_latency_ = nullptr;
  bool started_ = false;
  bool stopped_ = false;
  SteadyTime last_watchdog_{};
  // One episode of a stream refusing appends (disk full, I/O error): logged when it starts, every 10 s with
  // the count while it lasts, and when it ends; /healthz is 503 while any is open.
  struct Warning {
    SteadyTime last{};
    SteadyTime since{};
    uint64_t suppressed = 0;
    uint64_t total = 0;  // refused in this episode
    std::string error;   // the latest error, in words
    bool open = false;
  };
  // Per-stream counters for the append path, made once at Open (streams are declared up front).
  struct StreamCounters {
    Daemon* daemon;
    std::string name;
    Counter* stored;
    Counter* rejected;
    std::atomic<bool> failing{false};
    void Done(const Result<Seq>& r, SteadyTime t0);
  };
  std::unordered_map<std::string, std::unique_ptr<StreamCounters>> stream_counters_;
  std::mutex warn_mu_;
  std::map<std::string, Warning> warnings_;
};

}  // namespace ferry
