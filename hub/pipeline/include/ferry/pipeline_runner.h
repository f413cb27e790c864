// ferry/pipeline_runner.h: runs one Pipeline over its input streams, exactly once locally.
//
// Each input stream is read from the pipeline's own cursor "pipeline.<name>". One Step() reads a batch of
// records from one input (a short read transaction), processes them, and hands ONE closure to the writer's
// Submit: it appends every output and dead letter and moves the cursor past the batch, in the writer's
// transaction. Either all of it commits or none of it does, so after a kill -9 at any point the pipeline
// resumes at the first record whose results are not on disk: no output is lost or written twice.
//
// A windowed pipeline's state (ferry/window.h) is written by the same closure: the records of the keys the
// batch changed, and the meta record, so state, cursor and results are one commit. When a commit fails or the
// cursor moved under it, the runner reloads cursor and state from the log before the next batch. When it is
// caught up, Step() moves processing time to the log's clock (EventLogOptions::clock) and commits whatever
// windows that closes (idle keys) the same way, the cursor unchanged.
//
// The closure also checks that the cursor (and a windowed pipeline's meta record) is still what the runner
// last saw; if not (another ferryd, a `ferryctl pipeline reset`), it changes nothing and the runner reloads
// cursor and state.
//
// Threads: Step() from one thread at a time. Start() runs Step() on a thread of its own, woken by the
// writer's commit announcements (nothing polls); Stop() joins it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ferry/error.h"
#include "ferry/event_log.h"
#include "ferry/group_commit.h"
#include "ferry/metrics.h"
#include "ferry/pipeline.h"

namespace ferry {

// The cursor a pipeline reads each input with.
std::string PipelineCursorName(const std::string& pipeline);

struct PipelineStepResult {
  size_t records = 0;      // input records consumed (0: caught up)
  size_t outputs = 0;      // events appended to output streams
  size_t dropped = 0;      // records that produced no output and no failure
  size_t failed = 0;       // records sent to the dead letter (or dropped when there is none)
  size_t late = 0;         // records a window step found late
  size_t alerts = 0;       // threshold alerts appended
  size_t lookup_misses = 0;  // lookup steps that found no row
};

class PipelineRunner {
 public:
  // REQUIRES: log, writer and metrics outlive the runner; the pipeline's streams exist.
  PipelineRunner(EventLog& log, GroupCommitWriter& writer, std::unique_ptr<Pipeline> pipeline,
                 MetricsRegistry& metrics);
  ~PipelineRunner();  // Stop()s

  // Processes one batch of one input. Errors: from reading the input (Corruption names the seq: the runner
  // does not skip it by itself) or from the commit (Full, IoError): nothing moved, the same batch is tried
  // again on the next Step.
  Result<PipelineStepResult> Step();

  void Start();
  void Stop();

  const Pipeline& pipeline() const { return *pipeline_; }
  // Records not yet processed, over all inputs (an upper bound; updated by Step).
  uint64_t lag() const { return lag_.load(); }

 private:
  Status LoadCursors();
  Status LoadWindowState();
  // Commits appends + window state (+ the cursor of `in` moved from `from` to `next`, unless in is empty).
  Result<bool> Commit(std::vector<PipelineOutput>& appends, const std::string& in, Seq from, Seq next);
  void CountWindow(const ProcessOutcome& o);
  void UpdateWindowGauges();
  void UpdateLag();
  void Run();

  EventLog& log_;
  GroupCommitWriter& writer_;
  std::unique_ptr<Pipeline> pipeline_;
  const std::string cursor_;
  std::map<std::string, Seq> position_;  // per input: the next seq to read, as committed
  bool loaded_ = false;
  size_t next_input_ = 0;  // round robin over the inputs

  Counter* in_ = nullptr;
  Counter* out_ = nullptr;
  Counter* dropped_ = nullptr;
  Counter* lookup_misses_ = nullptr;  // pipelines with a lookup step
  std::map<std::string, Counter*> failed_;  // by step name
  Gauge* lag_gauge_ = nullptr;
  Counter* late_ = nullptr;
  std::map<std::string, Counter*> alerts_;  // by threshold step name
  Counter* closed_[4] = {};                 // by WindowClose
  WindowStats counted_;                     // window stats already added to the counters
  // The window meta record as this runner last loaded or committed it: a commit finding another (a ferryctl
  // pipeline reset deleted it) writes nothing and reloads, like a moved cursor.
  std::optional<std::string> committed_meta_;
  Gauge* keys_gauge_ = nullptr;
  Gauge* open_gauge_ = nullptr;
  Gauge* state_gauge_ = nullptr;
  std::atomic<uint64_t> lag_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t commits_seen_ = 0;  // under mu_
  bool stopping_ = false;      // under mu_
  uint64_t listener_ = 0;
  std::thread thread_;
};

}  // namespace ferry
