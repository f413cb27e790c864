// compaction.cc: keyed compaction of kTable streams.
//
// The subject index (subject -> seq of the latest record) is maintained on every append, so a record is
// superseded exactly when the index points elsewhere. Compaction walks the stream in bounded steps from
// where it stopped (StreamMeta::compact_pos), wrapping to the start at the end, deleting superseded records
// and tombstones (empty payload) older than the stream's grace period.
#include <memory>

#include "ferry/event_log.h"
#include "ferry/write_txn.h"
#include "lmdb_util.h"
#include "stream_meta.h"
#include "stream_state.h"

namespace ferry {

Result<uint64_t> EventLog::CompactionStep(size_t max_records) {
  if (options_.read_only) return InvalidArgument("compaction on a read-only event log");
  MDB_txn* raw = nullptr;
  if (int rc = mdb_txn_begin(env_, nullptr, 0, &raw); rc != 0) return detail::MdbFail(rc, "begin compaction");
  WriteTxn txn(this, raw, WriteTxn::Budget{});
  const TimeNs now = clock_->Now();
  uint64_t deleted = 0;
  size_t scanned = 0;
  bool changed = false;
  for (const std::string& name : ListStreams()) {
    if (scanned >= max_records) break;
    auto s = txn.State(name);
    if (!s) return tl::unexpected(s.error());
    if (!(*s)->handle->table) continue;
    StreamMeta& m = (*s)->meta;
    MDB_cursor* cur = nullptr;
    if (int rc = mdb_cursor_open(raw, (*s)->handle->log_dbi, &cur); rc != 0) return detail::MdbFail(rc, "cursor");
    Seq pos{m.compact_pos};
    Status st;
    bool removed_any = false;
    while (scanned < max_records) {
      detail::SeqKey sk(pos);
      MDB_val k = sk.val(), v{};
      Seq seq;
      if (mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) != 0 || !detail::DecodeSeq(k, &seq)) {
        pos = Seq{0};  // end of stream: the next step starts a new pass
        break;
      }
      ++scanned;
      pos = seq.next();
      auto peek = PeekRecord(detail::View(v));
      if (!peek) continue;  // a damaged record is reported by readers, not silently removed here
      MDB_val subj = detail::Val(peek->subject), latest{};
      Seq latest_seq;
      const bool indexed = mdb_get(raw, (*s)->handle->subject_dbi, &subj, &latest) == 0 &&
                           detail::DecodeSeq(latest, &latest_seq);
      const bool superseded = !indexed || latest_seq != seq;
      const bool expired_tombstone =
          !superseded && peek->payload_size == 0 && peek->ingest_time.ns <= now.ns - m.tombstone_grace_ns;
      if (!superseded && !expired_tombstone) continue;
      // DeleteRecord also removes the index entry when it points at this record (the tombstone case).
      st = txn.DeleteRecord(*s, cur, detail::View(v), EvictReason::kCompaction);
      if (!st) break;
      ++deleted;
      removed_any = true;
    }
    mdb_cursor_close(cur);
    if (!st) return tl::unexpected(st.error());
    if (m.compact_pos != pos.value) {
      m.compact_pos = pos.value;
      (*s)->dirty = true;
      changed = true;
    }
    if (removed_any) {
      if (auto r = txn.RefreshFirstSeq(*s); !r) return tl::unexpected(r.error());
    }
  }
  if (!changed && deleted == 0) return uint64_t{0};  // nothing to commit: no fsync
  if (auto r = txn.Commit(); !r) return tl::unexpected(r.error());
  return deleted;
}

}  // namespace ferry
