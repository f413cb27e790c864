// group_commit.cc: the batching writer. See ferry/group_commit.h for the contract.
#include "ferry/group_commit.h"

#include <algorithm>
#include <utility>

namespace ferry {
namespace {

constexpr int kMaxAttempts = 6;


// A batch must fit in the budget reserve (the map above high water), or committing it could fill the map
// so far that not even the deletes that make room can commit. Clamp it to half the reserve.
GroupCommitOptions Clamp(GroupCommitOptions o, const EventLog& log) {
  const double reserve = static_cast<double>(log.options().map_size) * (1.0 - log.options().budget_high_water);
  o.max_batch_bytes = std::max<size_t>(1, std::min(o.max_batch_bytes, static_cast<size_t>(reserve / 2)));
  o.max_batch_events = std::max<size_t>(1, o.max_batch_events);
  return o;
}

}  // namespace

GroupCommitWriter::GroupCommitWriter(EventLog& log, GroupCommitOptions options)
    : log_(log), options_(Clamp(options, log)) {}

GroupCommitWriter::~GroupCommitWriter() { Stop(); }

void GroupCommitWriter::Push(Item item) {
  // Queue accounting uses the payload plus a rough per-event overhead; it only bounds memory.
  item.bytes = item.event.payload.size() + item.event.id.size() + item.event.subject.size() + 64;
  std::unique_lock<std::mutex> lock(mu_);
  space_cv_.wait(lock, [&] { return queue_.size() < options_.max_queue_events; });
  queued_bytes_ += item.bytes;
  queue_.push_back(std::move(item));
  // Wake the writer only when that changes what it waits for: the first item (it waits for work) or a full
  // batch (it lingers for one). A wake-up per event would cost a context switch per event.
  bool wake = queue_.size() == 1 || queue_.size() == options_.max_batch_events ||
              queued_bytes_ >= options_.max_batch_bytes;
  lock.unlock();
  if (wake) work_cv_.notify_one();
}

std::future<Result<Seq>> GroupCommitWriter::Append(std::string stream, Event event) {
  Item item;
  item.stream = std::move(stream);
  item.event = std::move(event);
  item.seq_promise = std::make_unique<std::promise<Result<Seq>>>();
  auto future = item.seq_promise->get_future();
  Push(std::move(item));
  return future;
}

void GroupCommitWriter::Append(std::string stream, Event event, AppendCallback done) {
  Item item;
  item.stream = std::move(stream);
  item.event = std::move(event);
  item.callback = std::move(done);
  Push(std::move(item));
}

void GroupCommitWriter::Enqueue(std::string stream, Event event) {
  Item item;
  item.stream = std::move(stream);
  item.event = std::move(event);
  Push(std::move(item));
}

std::future<Status> GroupCommitWriter::Submit(TxnFn fn) {
  Item item;
  item.fn = std::move(fn);
  item.fn_promise = std::make_unique<std::promise<Status>>();
  auto future = item.fn_promise->get_future();
  Push(std::move(item));
  return future;
}

size_t GroupCommitWriter::Step() {
  std::vector<Item> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.reserve(std::min(queue_.size(), options_.max_batch_events));
    size_t bytes = 0;
    // Always take at least one item, so an event larger than max_batch_bytes still gets through.
    while (!queue_.empty() && (batch.empty() || (batch.size() < options_.max_batch_events &&
                                                 bytes + queue_.front().bytes <= options_.max_batch_bytes))) {
      bytes += queue_.front().bytes;
      queued_bytes_ -= queue_.front().bytes;
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }
  if (batch.empty()) return 0;
  space_cv_.notify_all();
  std::vector<Outcome> outcomes(batch.size());
  Apply(batch, &outcomes);
  Finish(batch, outcomes);
  Announce();
  return batch.size();
}

void GroupCommitWriter::Apply(std::vector<Item>& batch, std::vector<Outcome>* outcomes) {
  // If the budget refused an append or the map filled, the whole transaction is abandoned, the log evicts
  // per policy (only streams no more important than those in the batch) and the batch runs again. Once
  // nothing more can be evicted, the last try commits what fits: refused appends fail with Full.
  bool last_try = false;
  for (int attempt = 0;; ++attempt) {
    auto txn = log_.BeginWrite();
    if (!txn) {
      for (auto& o : *outcomes) o = Outcome{tl::unexpected(txn.error()), tl::unexpected(txn.error())};
      return;
    }
    WriteTxn& t = **txn;
    bool any_ok = false;
    for (size_t i = 0; i < batch.size() && !t.dead(); ++i) {
      Item& item = batch[i];
      Outcome& o = (*outcomes)[i];
      if (item.fn) {
        o.status = t.Nested(item.fn);
        any_ok |= o.status.has_value();
      } else {
        o.seq = t.Append(item.stream, item.event);
        any_ok |= o.seq.has_value();
      }
    }
    if (last_try && !any_ok && !t.dead()) {
      // Everything was refused (a full reject_new stream): nothing to make durable, so no commit and no
      // fsync. A flood of refused events then costs CPU only, not one disk sync each.
      t.Abort();
      return;
    }
    Status committed = Ok();
    if (!t.full() || last_try) {
      committed = t.Commit();
      if (committed) return;
    }
    if (t.full() && !last_try) {
      const int32_t prio = t.needed_priority_;
      const bool map_full = t.dead() || t.guard_hit_;
      txn->reset();
      {
        std::lock_guard<std::mutex> lock(mu_);
        stats_.budget_retries += 1;
      }
      last_try = !log_.MakeRoom(prio, map_full) || attempt >= kMaxAttempts - 2;
      continue;
    }
    // The commit (or an operation before it) failed: nothing in this batch is durable.
    for (auto& o : *outcomes) o = Outcome{tl::unexpected(committed.error()), tl::unexpected(committed.error())};
    return;
  }
}

void GroupCommitWriter::Finish(std::vector<Item>& batch, std::vector<Outcome>& outcomes) {
  uint64_t ok = 0, failed = 0, fn_ok = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    Item& item = batch[i];
    Outcome& o = outcomes[i];
    if (item.fn) {
      if (!o.status) ++failed;
      else ++fn_ok;
      if (item.fn_promise) item.fn_promise->set_value(std::move(o.status));
      continue;
    }
    if (o.seq) {
      ++ok;
    } else {
      ++failed;
    }
    if (item.seq_promise) item.seq_promise->set_value(o.seq);
    if (item.callback) item.callback(std::move(o.seq));
  }
  std::lock_guard<std::mutex> lock(mu_);
  // A batch whose transaction failed (or that refused everything) made nothing durable: not a commit.
  if (ok + fn_ok > 0) stats_.commits += 1;
  stats_.events += ok;
  stats_.failed += failed;
  stats_.largest_batch = std::max<uint64_t>(stats_.largest_batch, batch.size());
}

void GroupCommitWriter::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
    if (queue_.empty() && stopping_) return;
    if (options_.max_linger.count() > 0 && !stopping_) {
      // Hold a small batch back a little so it can grow; a full one goes at once.
      work_cv_.wait_for(lock, options_.max_linger, [&] {
        return stopping_ || commit_soon_ || queue_.size() >= options_.max_batch_events ||
               queued_bytes_ >= options_.max_batch_bytes;
      });
    }
    commit_soon_ = false;
    lock.unlock();
    Step();
    lock.lock();
  }
}

void GroupCommitWriter::CommitSoon() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.empty()) return;  // nothing lingers
    commit_soon_ = true;
  }
  work_cv_.notify_one();
}

void GroupCommitWriter::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
}

void GroupCommitWriter::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  while (Step() > 0) {
  }
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = false;
}

void GroupCommitWriter::Announce() {
  std::lock_guard<std::mutex> lock(announce_mu_);
  ++commit_count_;
  // Listeners run under announce_mu_ so RemoveCommitListener can promise "never again" by taking it.
  for (auto& [id, fn] : listeners_) fn(commit_count_);
  announce_cv_.notify_all();
}

uint64_t GroupCommitWriter::commit_count() const {
  std::lock_guard<std::mutex> lock(announce_mu_);
  return commit_count_;
}

uint64_t GroupCommitWriter::WaitForCommitAfter(uint64_t seen, std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock<std::mutex> lock(announce_mu_);
  announce_cv_.wait_until(lock, deadline, [&] { return commit_count_ > seen; });
  return commit_count_;
}

uint64_t GroupCommitWriter::AddCommitListener(CommitListener fn) {
  std::lock_guard<std::mutex> lock(announce_mu_);
  uint64_t id = next_listener_id_++;
  listeners_.emplace_back(id, std::move(fn));
  return id;
}

void GroupCommitWriter::RemoveCommitListener(uint64_t id) {
  std::lock_guard<std::mutex> lock(announce_mu_);
  listeners_.erase(std::remove_if(listeners_.begin(), listeners_.end(), [id](const auto& l) { return l.first == id; }),
                   listeners_.end());
}

GroupCommitStats GroupCommitWriter::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace ferry
