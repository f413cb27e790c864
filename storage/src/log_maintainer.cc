// log_maintainer.cc: schedules the bounded maintenance steps of EventLog.
#include "ferry/log_maintainer.h"

namespace ferry {

LogMaintainer::LogMaintainer(EventLog& log, MaintenanceOptions options) : log_(log), options_(options) {}

LogMaintainer::~LogMaintainer() { Stop(); }

Result<MaintenanceReport> LogMaintainer::Step() {
  MaintenanceReport report;
  // Several small transactions rather than one large one: each holds LMDB's writer lock only briefly.
  for (int i = 0; i < 16; ++i) {
    auto n = log_.RetentionStep(options_.retention_batch);
    if (!n) return tl::unexpected(n.error());
    report.retention_deleted += *n;
    if (*n < options_.retention_batch) break;
  }
  auto c = log_.CompactionStep(options_.compaction_batch);
  if (!c) return tl::unexpected(c.error());
  report.compacted = *c;
  auto b = log_.EnforceBudget();
  if (!b) return tl::unexpected(b.error());
  report.within_budget = *b;
  log_.ReleaseMappedPages();  // keep RSS flat while a backlog builds (see event_log.h)
  return report;
}

void LogMaintainer::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    lock.unlock();
    (void)Step();  // errors are retried next round; the hub reads stats for alerts
    lock.lock();
    cv_.wait_for(lock, options_.interval, [&] { return stopping_; });
  }
}

void LogMaintainer::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
}

void LogMaintainer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace ferry
