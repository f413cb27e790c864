// write_txn.cc: appends, state, cursors and deletes inside one LMDB write transaction.
//
// Stream meta (next seq, counts, bytes) is loaded once per stream per transaction, updated in memory and
// written back just before the commit, so a batch of 10,000 appends costs one meta write, not 10,000.
#include "ferry/write_txn.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "ferry/event_log.h"
#include "ferry/stream_iterator.h"
#include "lmdb_util.h"
#include "stream_meta.h"
#include "stream_state.h"

namespace ferry {

using detail::MdbFail;
using detail::SeqKey;
using detail::Val;
using detail::View;

WriteTxn::WriteTxn(EventLog* log, MDB_txn* txn, Budget budget) : log_(log), txn_(txn), budget_(budget) {}

WriteTxn::~WriteTxn() { Abort(); }

void WriteTxn::Abort() {
  if (txn_ != nullptr) mdb_txn_abort(txn_);
  txn_ = nullptr;
}

Status WriteTxn::Fail(int rc, std::string_view what) {
  // Any failed LMDB write leaves the transaction unusable (MDB_TXN_ERROR): remember why.
  dead_ = true;
  if (rc == MDB_MAP_FULL || rc == MDB_TXN_FULL) full_ = true;
  error_ = detail::MdbError(rc, what);
  return tl::unexpected(error_);
}

Result<WriteTxn::StreamState*> WriteTxn::State(std::string_view stream) {
  if (auto it = streams_.find(stream); it != streams_.end()) return it->second.get();
  auto h = log_->FindStream(stream);
  if (!h) return tl::unexpected(h.error());
  const std::string mkey = detail::MetaKey(stream);
  MDB_val key = Val(mkey), val{};
  if (int rc = mdb_get(txn_, log_->meta_dbi_, &key, &val); rc != 0) {
    if (rc == MDB_NOTFOUND) return NotFound("no stream '" + std::string(stream) + "'");
    return MdbFail(rc, "read stream meta");
  }
  auto meta = DecodeStreamMeta(View(val), stream);
  if (!meta) return tl::unexpected(meta.error());
  auto s = std::make_unique<StreamState>(StreamState{*h, *meta, false});
  StreamState* out = s.get();
  streams_.emplace(std::string(stream), std::move(s));
  return out;
}

Result<Seq> WriteTxn::Append(std::string_view stream, const Event& event) {
  if (dead_) return tl::unexpected(error_);
  auto s = State(stream);
  if (!s) return tl::unexpected(s.error());
  StreamMeta& m = (*s)->meta;
  needed_priority_ = std::max(needed_priority_, m.priority);
  if (budget_.over_high) {
    full_ = true;
    return Full("disk budget exhausted: append to stream '" + std::string(stream) + "' refused");
  }
  const bool table = (*s)->handle->table;
  if (table && (event.subject.empty() || event.subject.size() > detail::kMaxKeySize)) {
    return InvalidArgument("stream '" + std::string(stream) + "' is a table: subject must be 1..511 bytes");
  }
  auto size = EncodedRecordSize(event);
  if (!size) return tl::unexpected(size.error());
  // Guard the reserve: a transaction that began below high water must not commit the map nearly full, or
  // the deletes that make room could no longer commit. Estimate: MDB_APPEND fills leaf pages, plus a node
  // header per record, branch pages and a few pages per transaction for meta, indexes and the freelist.
  const size_t need = (added_ + *size + 16) / 10 * 11 + 16 * 4096 + (table ? *size : 0);
  if (budget_.used + need > budget_.hard_limit) {
    full_ = true;
    guard_hit_ = true;
    return Full("transaction too large for the space left in the map: append to stream '" +
                std::string(stream) + "' refused");
  }
  added_ += *size + 16 + (table ? event.subject.size() + 24 : 0);

  const Seq seq{m.next_seq};
  // Ingest time never goes backwards within a stream, even if the wall clock does (no RTC, NTP step):
  // SeekToTime's binary search and age-based retention depend on it.
  const TimeNs ingest{std::max(log_->clock_->Now().ns, m.last_ingest_ns)};
  scratch_.clear();
  scratch_.reserve(*size);
  EncodeRecord(event, seq, ingest, &scratch_);
  SeqKey key(seq);
  MDB_val k = key.val(), v = Val(scratch_);
  // MDB_APPEND: keys only grow, so LMDB fills pages completely and skips the search.
  if (int rc = mdb_put(txn_, (*s)->handle->log_dbi, &k, &v, MDB_APPEND); rc != 0) {
    return tl::unexpected(Fail(rc, "append to stream " + std::string(stream)).error());
  }
  if (table) {
    MDB_val sk = Val(event.subject);
    if (int rc = mdb_put(txn_, (*s)->handle->subject_dbi, &sk, &k, 0); rc != 0) {
      return tl::unexpected(Fail(rc, "index subject").error());
    }
  }
  if (m.count == 0) m.first_seq = seq.value;
  m.next_seq = seq.value + 1;
  m.count += 1;
  m.bytes += sizeof(key.bytes) + scratch_.size();
  m.last_ingest_ns = ingest.ns;
  (*s)->dirty = true;
  return seq;
}

Status WriteTxn::PutState(std::string_view key, std::string_view value) {
  if (dead_) return tl::unexpected(error_);
  if (key.empty() || key.size() > detail::kMaxKeySize) return InvalidArgument("state key must be 1..511 bytes");
  MDB_val k = Val(key), v = Val(value);
  if (int rc = mdb_put(txn_, log_->state_dbi_, &k, &v, 0); rc != 0) return Fail(rc, "put state");
  return Ok();
}

Status WriteTxn::DeleteState(std::string_view key) {
  if (dead_) return tl::unexpected(error_);
  if (key.empty() || key.size() > detail::kMaxKeySize) return InvalidArgument("state key must be 1..511 bytes");
  MDB_val k = Val(key);
  if (int rc = mdb_del(txn_, log_->state_dbi_, &k, nullptr); rc != 0 && rc != MDB_NOTFOUND) {
    return Fail(rc, "delete state");
  }
  return Ok();
}

Result<std::string> WriteTxn::GetState(std::string_view key) {
  if (dead_) return tl::unexpected(error_);
  if (key.empty() || key.size() > detail::kMaxKeySize) return InvalidArgument("state key must be 1..511 bytes");
  MDB_val k = Val(key), v{};
  if (int rc = mdb_get(txn_, log_->state_dbi_, &k, &v); rc != 0) {
    if (rc == MDB_NOTFOUND) return NotFound("no state key");
    return MdbFail(rc, "get state");
  }
  return std::string(View(v));
}

Status WriteTxn::SetCursor(std::string_view stream, std::string_view cursor, Seq position) {
  if (dead_) return tl::unexpected(error_);
  if (auto st = ValidateCursorName(cursor); !st) return st;
  if (auto s = State(stream); !s) return tl::unexpected(s.error());
  const std::string ck = detail::CursorKey(stream, cursor);
  SeqKey pos(position);
  MDB_val k = Val(ck), v = pos.val();
  if (int rc = mdb_put(txn_, log_->cursors_dbi_, &k, &v, 0); rc != 0) return Fail(rc, "set cursor");
  return Ok();
}

Status WriteTxn::DeleteCursor(std::string_view stream, std::string_view cursor) {
  if (dead_) return tl::unexpected(error_);
  const std::string ck = detail::CursorKey(stream, cursor);
  MDB_val k = Val(ck);
  if (int rc = mdb_del(txn_, log_->cursors_dbi_, &k, nullptr); rc != 0 && rc != MDB_NOTFOUND) {
    return Fail(rc, "delete cursor");
  }
  return Ok();
}

Result<Seq> WriteTxn::GetCursor(std::string_view stream, std::string_view cursor) {
  if (dead_) return tl::unexpected(error_);
  const std::string ck = detail::CursorKey(stream, cursor);
  MDB_val k = Val(ck), v{};
  if (int rc = mdb_get(txn_, log_->cursors_dbi_, &k, &v); rc != 0) {
    if (rc == MDB_NOTFOUND) {
      return NotFound("no cursor '" + std::string(cursor) + "' on stream '" + std::string(stream) + "'");
    }
    return MdbFail(rc, "get cursor");
  }
  Seq seq;
  if (!detail::DecodeSeq(v, &seq)) return Corruption("cursor '" + std::string(cursor) + "': malformed value");
  return seq;
}

Result<std::unique_ptr<StreamIterator>> WriteTxn::NewIterator(std::string_view stream) {
  if (dead_) return tl::unexpected(error_);
  auto s = State(stream);
  if (!s) return tl::unexpected(s.error());
  std::unique_ptr<StreamIterator> it(new StreamIterator(txn_, false, (*s)->handle->log_dbi));
  if (!it->status()) return tl::unexpected(it->status().error());
  return it;
}

Status WriteTxn::FlushMeta() {
  for (auto& [name, s] : streams_) {
    if (!s->dirty) continue;
    const std::string mkey = detail::MetaKey(name);
    MDB_val k = Val(mkey), v{sizeof(StreamMeta), &s->meta};
    if (int rc = mdb_put(txn_, log_->meta_dbi_, &k, &v, 0); rc != 0) return Fail(rc, "write stream meta");
    s->dirty = false;
  }
  return Ok();
}

Status WriteTxn::Nested(const std::function<Status(WriteTxn&)>& fn) {
  if (dead_) return tl::unexpected(error_);
  // The child reads meta through the parent's view, so write the parent's cached meta first, and drop the
  // cache afterwards: the child may have moved next_seq.
  if (auto st = FlushMeta(); !st) return st;
  MDB_txn* child_txn = nullptr;
  if (int rc = mdb_txn_begin(mdb_txn_env(txn_), txn_, 0, &child_txn); rc != 0) return Fail(rc, "begin nested txn");
  Budget child_budget = budget_;
  child_budget.used += added_;
  WriteTxn child(log_, child_txn, child_budget);
  Status st = fn(child);
  if (st && !child.dead_) st = child.Commit();
  child.Abort();
  streams_.clear();
  needed_priority_ = std::max(needed_priority_, child.needed_priority_);
  if (child.full_) full_ = true;
  if (child.guard_hit_) guard_hit_ = true;
  if (st) added_ += child.added_;
  return st;
}

Status WriteTxn::Commit() {
  if (txn_ == nullptr) return InvalidArgument("commit of a finished transaction");
  if (dead_) {
    Abort();
    return tl::unexpected(error_);
  }
  if (auto st = FlushMeta(); !st) {
    Abort();
    return st;
  }
  MDB_txn* txn = txn_;
  txn_ = nullptr;
  if (int rc = mdb_txn_commit(txn); rc != 0) {  // commit frees txn even on error
    if (rc == EIO || rc == ENOSPC) {
      // A full file system shows as ENOSPC, or as EIO when a page write was cut short (LMDB turns a short
      // pwrite into EIO). Say which, with the free space, so the operator sees "no space", not a disk fault.
      struct statvfs fs {};
      if (statvfs(log_->options().path.c_str(), &fs) == 0) {
        uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
        if (rc == ENOSPC || free_bytes < (uint64_t{1} << 20)) {
          dead_ = true;
          full_ = true;
          error_ = Error{ErrorCode::kFull, "commit: " + std::string(std::strerror(ENOSPC)) + " (" +
                                               std::to_string(free_bytes) + " bytes free on the file system of " +
                                               log_->options().path + ")"};
          return tl::unexpected(error_);
        }
      }
    }
    return Fail(rc, "commit");
  }
  return Ok();
}

Status WriteTxn::DeleteRecord(StreamState* s, void* cursor, std::string_view value, EvictReason reason) {
  auto* cur = static_cast<MDB_cursor*>(cursor);
  MDB_val k{}, v{};
  if (int rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT); rc != 0) return Fail(rc, "delete: cursor");
  Seq seq;
  detail::DecodeSeq(k, &seq);
  if (s->handle->table) {
    // Drop the subject index entry only if it still points here (it may point to a newer record).
    auto summary = PeekRecord(value);
    if (summary) {
      MDB_val sk = Val(summary->subject), latest{};
      Seq latest_seq;
      if (mdb_get(txn_, s->handle->subject_dbi, &sk, &latest) == 0 && detail::DecodeSeq(latest, &latest_seq) &&
          latest_seq == seq) {
        if (int rc = mdb_del(txn_, s->handle->subject_dbi, &sk, nullptr); rc != 0) return Fail(rc, "unindex subject");
      }
    }
  }
  if (int rc = mdb_cursor_del(cur, 0); rc != 0) return Fail(rc, "delete record");
  s->meta.count -= 1;
  s->meta.bytes -= std::min<uint64_t>(s->meta.bytes, 8 + value.size());
  s->meta.evicted[static_cast<int>(reason)] += 1;
  s->dirty = true;
  return Ok();
}

Status WriteTxn::RefreshFirstSeq(StreamState* s) {
  MDB_cursor* cur = nullptr;
  if (int rc = mdb_cursor_open(txn_, s->handle->log_dbi, &cur); rc != 0) return Fail(rc, "cursor");
  MDB_val k{}, v{};
  Seq first{s->meta.next_seq};
  if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0) detail::DecodeSeq(k, &first);
  mdb_cursor_close(cur);
  if (first.value != s->meta.first_seq) {
    s->meta.first_seq = first.value;
    s->dirty = true;
  }
  return Ok();
}

}  // namespace ferry
