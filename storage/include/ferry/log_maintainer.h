// ferry/log_maintainer.h: the background loop that keeps the log within its limits: retention, keyed
// compaction and the disk budget, each in bounded transactions so the ingest writer is never blocked long.
//
// Threads: Step() from one thread (tests drive it with a ManualClock in the EventLog); or Start() a thread
// that calls Step() every `interval`. Not both.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

#include "ferry/error.h"
#include "ferry/event_log.h"

namespace ferry {

struct MaintenanceOptions {
  size_t retention_batch = 10000;  // records deleted per RetentionStep transaction
  size_t compaction_batch = 2000;  // records examined per CompactionStep transaction
  std::chrono::milliseconds interval{1000};
};

struct MaintenanceReport {
  uint64_t retention_deleted = 0;
  uint64_t compacted = 0;
  bool within_budget = true;
};

class LogMaintainer {
 public:
  // REQUIRES: log outlives the maintainer and is not read_only.
  LogMaintainer(EventLog& log, MaintenanceOptions options = {});
  ~LogMaintainer();  // Stop()
  LogMaintainer(const LogMaintainer&) = delete;
  LogMaintainer& operator=(const LogMaintainer&) = delete;

  // One round: retention until caught up (at most 16 batches), one compaction batch, then the budget.
  // Errors: the first error of a step (IoError, Full if even a delete could not commit).
  Result<MaintenanceReport> Step();

  void Start();
  void Stop();

 private:
  void Run();

  EventLog& log_;
  const MaintenanceOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ferry
