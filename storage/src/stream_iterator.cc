// stream_iterator.cc: a cursor over one stream's log database, verifying every record it lands on.
#include "ferry/stream_iterator.h"

#include "lmdb_util.h"

namespace ferry {

StreamIterator::StreamIterator(MDB_txn* txn, bool owns_txn, unsigned dbi) : txn_(txn), owns_txn_(owns_txn) {
  if (int rc = mdb_cursor_open(txn_, dbi, &cursor_); rc != 0) {
    cursor_ = nullptr;
    status_ = detail::MdbFail(rc, "open stream cursor");
  }
}

StreamIterator::~StreamIterator() {
  if (cursor_ != nullptr) mdb_cursor_close(cursor_);
  if (owns_txn_) mdb_txn_abort(txn_);
}

void StreamIterator::Load(int rc, void* key, void* value) {
  valid_ = false;
  if (rc == MDB_NOTFOUND) return;
  if (rc != 0) {
    status_ = detail::MdbFail(rc, "read stream");
    return;
  }
  const auto* k = static_cast<MDB_val*>(key);
  const auto* v = static_cast<MDB_val*>(value);
  Seq seq;
  if (!detail::DecodeSeq(*k, &seq)) {
    status_ = Corruption("stream key of " + std::to_string(k->mv_size) + " bytes, expected 8");
    return;
  }
  auto r = DecodeRecord(detail::View(*v), seq);
  if (!r) {
    status_ = tl::unexpected(r.error());
    return;
  }
  record_ = std::move(*r);
  valid_ = true;
}

void StreamIterator::Position(int op, Seq seq) {
  if (cursor_ == nullptr) return;
  status_ = Ok();  // a new seek clears a previous error, so the caller can skip a damaged record
  detail::SeqKey sk(seq);
  MDB_val k = sk.val(), v{};
  const int rc = mdb_cursor_get(cursor_, &k, &v, static_cast<MDB_cursor_op>(op));
  Load(rc, &k, &v);
}

void StreamIterator::SeekToFirst() { Position(MDB_FIRST, Seq{}); }
void StreamIterator::Seek(Seq seq) { Position(MDB_SET_RANGE, seq); }

void StreamIterator::Next() {
  if (!valid_) return;
  MDB_val k{}, v{};
  const int rc = mdb_cursor_get(cursor_, &k, &v, MDB_NEXT);
  Load(rc, &k, &v);
}

void StreamIterator::SeekToTime(TimeNs t) {
  if (cursor_ == nullptr) return;
  status_ = Ok();
  valid_ = false;
  MDB_val k{}, v{};
  Seq first, last;
  if (int rc = mdb_cursor_get(cursor_, &k, &v, MDB_FIRST); rc != 0 || !detail::DecodeSeq(k, &first)) {
    Load(rc == 0 ? MDB_CORRUPTED : rc, &k, &v);
    return;
  }
  if (int rc = mdb_cursor_get(cursor_, &k, &v, MDB_LAST); rc != 0 || !detail::DecodeSeq(k, &last)) {
    Load(rc == 0 ? MDB_CORRUPTED : rc, &k, &v);
    return;
  }
  // Lower bound over seq space (which may have gaps): every record below `lo` is older than t, and the
  // first record at or after `hi` is not. Only headers are read here; the landing record is fully verified.
  uint64_t lo = first.value, hi = last.value + 1;
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    detail::SeqKey sk(Seq{mid});
    k = sk.val();
    Seq at;
    if (int rc = mdb_cursor_get(cursor_, &k, &v, MDB_SET_RANGE); rc != 0 || !detail::DecodeSeq(k, &at)) {
      Load(rc == 0 ? MDB_CORRUPTED : rc, &k, &v);
      return;
    }
    auto peek = PeekRecord(detail::View(v));
    if (!peek) {
      status_ = tl::unexpected(peek.error());
      return;
    }
    if (peek->ingest_time < t) {
      lo = at.value + 1;
    } else {
      hi = mid;
    }
  }
  if (lo > last.value) return;  // every record is older than t
  Seek(Seq{lo});
}

}  // namespace ferry
