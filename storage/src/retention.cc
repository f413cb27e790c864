// retention.cc: age- and size-based trimming of stream heads, in bounded transactions.
//
// Deleting from the head frees whole leaf pages; LMDB puts them on its freelist and reuses them for the next
// appends, so with retention keeping up the data file stops growing (unless a long reader pins old pages).
#include <memory>

#include "ferry/event_log.h"
#include "ferry/write_txn.h"
#include "lmdb_util.h"
#include "stream_meta.h"
#include "stream_state.h"

namespace ferry {

Result<uint64_t> EventLog::RetentionStep(size_t max_records) {
  if (options_.read_only) return InvalidArgument("retention on a read-only event log");
  MDB_txn* raw = nullptr;
  if (int rc = mdb_txn_begin(env_, nullptr, 0, &raw); rc != 0) return detail::MdbFail(rc, "begin retention");
  WriteTxn txn(this, raw, WriteTxn::Budget{});
  const TimeNs now = clock_->Now();
  uint64_t deleted = 0;
  for (const std::string& name : ListStreams()) {
    if (deleted >= max_records) break;
    auto s = txn.State(name);
    if (!s) return tl::unexpected(s.error());
    StreamMeta& m = (*s)->meta;
    if (m.max_age_ns <= 0 && m.max_bytes == 0) continue;
    MDB_cursor* cur = nullptr;
    if (int rc = mdb_cursor_open(raw, (*s)->handle->log_dbi, &cur); rc != 0) return detail::MdbFail(rc, "cursor");
    Status st;
    uint64_t here = 0;
    while (deleted < max_records) {
      MDB_val k{}, v{};
      if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) != 0) break;
      auto peek = PeekRecord(detail::View(v));
      // A damaged head record still has to go eventually; age it by its neighbours (count it as bytes).
      EvictReason reason;
      if (peek && m.max_age_ns > 0 && peek->ingest_time.ns < now.ns - m.max_age_ns) {
        reason = EvictReason::kRetentionAge;
      } else if (m.max_bytes > 0 && m.bytes > m.max_bytes) {
        reason = EvictReason::kRetentionBytes;
      } else {
        break;
      }
      st = txn.DeleteRecord(*s, cur, detail::View(v), reason);
      if (!st) break;
      ++deleted;
      ++here;
    }
    mdb_cursor_close(cur);
    if (!st) return tl::unexpected(st.error());
    if (here > 0) {
      if (auto r = txn.RefreshFirstSeq(*s); !r) return tl::unexpected(r.error());
    }
  }
  if (deleted == 0) return uint64_t{0};  // the destructor aborts: nothing to commit, no fsync
  if (auto r = txn.Commit(); !r) return tl::unexpected(r.error());
  return deleted;
}

}  // namespace ferry
