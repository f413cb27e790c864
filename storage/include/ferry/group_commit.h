// ferry/group_commit.h: one writer thread turns appends from many producers into few large commits.
//
// Producers enqueue; the writer takes everything queued (up to max_batch_events / max_batch_bytes), applies
// it in ONE write transaction and commits: one fsync pair for the whole batch. While that fsync runs, the
// next batch queues up, so the slower the disk the larger the batches (a 15 ms SD-card fsync still moves
// tens of thousands of events per second). max_linger optionally holds a small batch back to grow it.
//
// Durability modes (the hub's ingest `batch` and `sync`):
//   - Enqueue(): fire and forget. Durable at the next commit, normally within one commit interval.
//   - Append() with a future or callback: resolved only after the commit that made it durable (or failed).
//
// Commit announcements: after every transaction the writer committed (or abandoned: a failed batch changes
// nothing, but waking a reader for it costs only a spurious look), commit_count() grows by one and the
// commit listeners run, on the writer's thread. Readers of the log (uplinks, the live tail) wait on that
// instead of polling: a record is visible to a new read transaction once the count that covers it is out.
//
// Threads: Append/Enqueue/Submit from any thread. Either call Start() for the background writer thread, or
// drive Step() yourself from ONE thread (tests do, STYLE habit 4); not both.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ferry/error.h"
#include "ferry/event_log.h"
#include "ferry/record.h"
#include "ferry/types.h"
#include "ferry/write_txn.h"

namespace ferry {

struct GroupCommitOptions {
  size_t max_batch_events = 50'000;
  // Clamped to half the budget reserve, (1 - budget_high_water) * map_size / 2, so a batch always fits.
  size_t max_batch_bytes = size_t{16} << 20;
  // 0: commit as soon as the writer is free (lowest latency; batches still form while fsync runs).
  std::chrono::microseconds max_linger{0};
  // Producers block in Append/Enqueue/Submit while this many items are queued: bounded memory.
  size_t max_queue_events = 200'000;
};

struct GroupCommitStats {
  uint64_t commits = 0;
  uint64_t events = 0;         // appends made durable
  uint64_t failed = 0;         // appends / closures that failed (incl. Enqueue'd ones nobody waits for)
  uint64_t largest_batch = 0;
  uint64_t budget_retries = 0; // batches re-run after evicting for space
};

using AppendCallback = std::function<void(Result<Seq>)>;
using TxnFn = std::function<Status(WriteTxn&)>;

class GroupCommitWriter {
 public:
  // REQUIRES: log outlives the writer; log not read_only.
  GroupCommitWriter(EventLog& log, GroupCommitOptions options = {});
  // Stop()s: everything queued is committed first.
  ~GroupCommitWriter();
  GroupCommitWriter(const GroupCommitWriter&) = delete;
  GroupCommitWriter& operator=(const GroupCommitWriter&) = delete;

  // The future resolves after the commit: a Seq (durable) or an error (NotFound stream, InvalidArgument,
  // Full, IoError, Unavailable if the writer was stopped).
  std::future<Result<Seq>> Append(std::string stream, Event event);
  // As above; `done` runs on the writer thread right after the commit: keep it short, do not call back into
  // this writer from it.
  void Append(std::string stream, Event event, AppendCallback done);
  // Fire and forget (ingest `batch` mode). Failures are only counted in stats().failed.
  void Enqueue(std::string stream, Event event);
  // Runs fn inside the next batch's transaction, in a nested transaction: fn's writes commit with the batch,
  // or are rolled back alone if fn fails. The future gets fn's result (or the commit's error).
  std::future<Status> Submit(TxnFn fn);

  // A hint from a producer that nothing more will be queued until this commit lands (every device that is
  // sending waits for its acknowledgements): ends the current max_linger wait at once. Any thread; cheap.
  void CommitSoon();

  // Applies and commits one batch of what is queued now, without waiting. Returns the number of items
  // processed (0 if the queue was empty). Call from one thread only, and not while Start()ed.
  size_t Step();

  // Starts / stops the background writer thread. Stop() commits what is queued, then joins.
  void Start();
  void Stop();

  GroupCommitStats stats() const;

  // --- Commit announcements --------------------------------------------------------------------------------
  // Batches committed so far by this writer; starts at 0, never decreases. Any thread. Read it BEFORE
  // reading the log: a commit that lands between the two then shows as a larger count on the next look.
  uint64_t commit_count() const;
  // Blocks until commit_count() > seen or `deadline` passes (steady clock). Returns commit_count(). Any
  // thread but the writer's own.
  uint64_t WaitForCommitAfter(uint64_t seen, std::chrono::steady_clock::time_point deadline) const;
  // `fn` runs on the writer's thread (or Step()'s caller) after each batch, with the new commit_count().
  // Keep it short and non-blocking (notify a condition variable, set a flag): it must not call into this
  // writer, nor Add/RemoveCommitListener. Returns an id for RemoveCommitListener. Any thread.
  using CommitListener = std::function<void(uint64_t commit_count)>;
  uint64_t AddCommitListener(CommitListener fn);
  // After it returns, the listener is not running and never runs again. Unknown ids are ignored. Any thread
  // but the writer's own (from inside a listener it would deadlock).
  void RemoveCommitListener(uint64_t id);

 private:
  struct Item {
    std::string stream;
    Event event;
    TxnFn fn;                                  // set for Submit
    std::unique_ptr<std::promise<Result<Seq>>> seq_promise;
    AppendCallback callback;
    std::unique_ptr<std::promise<Status>> fn_promise;
    size_t bytes = 0;
  };
  struct Outcome {
    Result<Seq> seq = Seq{};
    Status status;
  };

  void Push(Item item);
  void Run();
  // Applies the batch in one transaction, retrying after eviction if the budget or map is full.
  void Apply(std::vector<Item>& batch, std::vector<Outcome>* outcomes);
  void Finish(std::vector<Item>& batch, std::vector<Outcome>& outcomes);

  EventLog& log_;
  const GroupCommitOptions options_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // writer waits for items
  std::condition_variable space_cv_;  // producers wait for queue space
  std::deque<Item> queue_;
  size_t queued_bytes_ = 0;
  bool stopping_ = false;
  bool commit_soon_ = false;  // under mu_: CommitSoon() since the writer last took a batch
  std::thread thread_;
  GroupCommitStats stats_;

  // Announcements: a mutex of their own, so a listener never runs under mu_ (producers would stall on it).
  void Announce();
  mutable std::mutex announce_mu_;                  // guards commit_count_ and listeners_; held while they run
  mutable std::condition_variable announce_cv_;     // WaitForCommitAfter
  uint64_t commit_count_ = 0;
  uint64_t next_listener_id_ = 1;
  std::vector<std::pair<uint64_t, CommitListener>> listeners_;
};

}  // namespace ferry
