// budget.cc: the hard disk budget (= the LMDB map size) and eviction by stream policy and priority.
//
// LMDB copies pages on write, so even a delete needs free pages: on a 100% full map nothing can be freed.
// Ferry therefore treats budget_high_water (90%) of the map as the usable budget and starts evicting there,
// down to budget_low_water, keeping the rest as the reserve that lets deletes (and one more batch) commit.
#include <algorithm>
#include <cstring>
#include <memory>

#include "ferry/event_log.h"
#include "ferry/write_txn.h"
#include "lmdb_util.h"
#include "stream_meta.h"
#include "stream_state.h"

namespace ferry {
namespace {

// One eviction transaction stays small so it never needs more than the reserve.
constexpr size_t kEvictBatchRecords = 512;
constexpr uint64_t kEvictBatchBytes = uint64_t{1} << 20;

}  // namespace

Result<size_t> EventLog::UsedBytes(MDB_txn* txn) {
  MDB_envinfo info{};
  mdb_env_info(env_, &info);
  // The freelist is database 0. Each entry is an IDL whose first word is the number of pages it lists.
  MDB_cursor* cur = nullptr;
  if (int rc = mdb_cursor_open(txn, 0, &cur); rc != 0) return detail::MdbFail(rc, "freelist cursor");
  size_t free_pages = 0;
  MDB_val k{}, v{};
  for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    size_t n = 0;
    if (v.mv_size >= sizeof(n)) std::memcpy(&n, v.mv_data, sizeof(n));
    free_pages += n;
  }
  mdb_cursor_close(cur);
  const size_t pages = info.me_last_pgno + 1;
  return (pages - std::min(pages, free_pages)) * page_size_;
}

WriteTxn::Budget EventLog::BudgetAtBegin() {
  WriteTxn::Budget b;
  MDB_envinfo info{};
  mdb_env_info(env_, &info);
  const double map = static_cast<double>(info.me_mapsize);
  const double high = map * options_.budget_high_water;
  // Hard limit for one transaction: halfway between high water and the end of the map.
  b.hard_limit = static_cast<size_t>((map + high) / 2);
  b.used = (info.me_last_pgno + 1) * page_size_;
  // Fast path: the file's high mark is below half the map, whatever the freelist holds; its size is then
  // a close enough upper bound for the guard. Otherwise walk the freelist for the exact figure.
  if (static_cast<double>(b.used) < map / 2) return b;
  auto txn = BeginReadTxn();
  if (!txn) {
    b.over_high = true;  // cannot tell: behave as if full, which only costs an eviction attempt
    return b;
  }
  auto used = UsedBytes(*txn);
  mdb_txn_abort(*txn);
  if (used) b.used = *used;
  b.over_high = !used || static_cast<double>(b.used) >= high;
  return b;
}

bool EventLog::OverBudget() { return !options_.read_only && BudgetAtBegin().over_high; }

Result<bool> EventLog::EnforceBudget(int32_t max_priority) {
  if (!OverBudget()) return true;
  MDB_envinfo info{};
  mdb_env_info(env_, &info);
  const double map = static_cast<double>(info.me_mapsize);
  for (;;) {
    auto txn = BeginReadTxn();
    if (!txn) return tl::unexpected(txn.error());
    auto used = UsedBytes(*txn);
    mdb_txn_abort(*txn);
    if (!used) return tl::unexpected(used.error());
    const double u = static_cast<double>(*used);
    if (u < map * options_.budget_low_water) return true;
    auto evicted = EvictOneBatch(max_priority);
    if (!evicted) return tl::unexpected(evicted.error());
    if (!*evicted) return u < map * options_.budget_high_water;
  }
}

Result<bool> EventLog::EvictOneBatch(int32_t max_priority) {
  // Deletes copy pages before freeing them; on a map filled past its reserve even that can fail. Retry with
  // smaller batches: deleting a single record needs only a tree path's worth of pages.
  for (size_t limit = kEvictBatchRecords;; limit /= 8) {
    auto r = EvictBatch(max_priority, limit);
    if (r || r.error().code != ErrorCode::kFull || limit <= 1) return r;
  }
}

Result<bool> EventLog::EvictBatch(int32_t max_priority, size_t max_records) {
  MDB_txn* raw = nullptr;
  if (int rc = mdb_txn_begin(env_, nullptr, 0, &raw); rc != 0) return detail::MdbFail(rc, "begin eviction");
  WriteTxn txn(this, raw, WriteTxn::Budget{});

  // Victim: a drop_oldest stream no more important than the writer that needs room; lowest priority first,
  // then the one holding the oldest data.
  WriteTxn::StreamState* victim = nullptr;
  TimeNs victim_oldest{};
  for (const std::string& name : ListStreams()) {
    auto s = txn.State(name);
    if (!s) return tl::unexpected(s.error());
    const StreamMeta& m = (*s)->meta;
    if (m.full_policy != static_cast<uint8_t>(FullPolicy::kDropOldest) || m.priority > max_priority ||
        m.count == 0) {
      continue;
    }
    MDB_cursor* cur = nullptr;
    if (int rc = mdb_cursor_open(raw, (*s)->handle->log_dbi, &cur); rc != 0) return detail::MdbFail(rc, "cursor");
    MDB_val k{}, v{};
    TimeNs oldest{};
    if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0) {
      if (auto p = PeekRecord(detail::View(v))) oldest = p->ingest_time;
    }
    mdb_cursor_close(cur);
    if (victim == nullptr || m.priority < victim->meta.priority ||
        (m.priority == victim->meta.priority && oldest < victim_oldest)) {
      victim = *s;
      victim_oldest = oldest;
    }
  }
  if (victim == nullptr) return false;

  MDB_cursor* cur = nullptr;
  if (int rc = mdb_cursor_open(raw, victim->handle->log_dbi, &cur); rc != 0) return detail::MdbFail(rc, "cursor");
  uint64_t freed = 0;
  Status st;
  for (size_t n = 0; n < max_records && freed < kEvictBatchBytes; ++n) {
    MDB_val k{}, v{};
    if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) != 0) break;
    freed += v.mv_size;
    st = txn.DeleteRecord(victim, cur, detail::View(v), EvictReason::kBudget);
    if (!st) break;
  }
  mdb_cursor_close(cur);
  if (!st) return tl::unexpected(st.error());
  if (auto r = txn.RefreshFirstSeq(victim); !r) return tl::unexpected(r.error());
  if (auto r = txn.Commit(); !r) return tl::unexpected(r.error());
  return true;
}

}  // namespace ferry
