// ferry/write_txn.h: one LMDB write transaction over the whole log.
//
// This is how local processing is exactly-once: a pipeline step reads its input, updates its state, appends
// its output and advances its cursor in one WriteTxn; Commit() makes all of it durable together, and an
// abort (or a crash before Commit returns) makes none of it visible.
//
// Threads: a WriteTxn belongs to the thread that began it and must be committed or destroyed there.
// LMDB allows one write transaction at a time per environment (across processes): keep them short.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "ferry/error.h"
#include "ferry/record.h"
#include "ferry/types.h"

struct MDB_txn;

namespace ferry {

class EventLog;
class StreamIterator;
struct StreamMeta;

class WriteTxn {
 public:
  ~WriteTxn();  // aborts if not committed
  WriteTxn(const WriteTxn&) = delete;
  WriteTxn& operator=(const WriteTxn&) = delete;

  // Appends an event; returns its seq. Ingest time is max(clock now, the stream's previous ingest time) so
  // it never goes backwards within a stream (SeekToTime relies on it).
  // Errors: NotFound (stream), InvalidArgument (oversized attribute; a kTable event without subject),
  // Full (over the disk budget, or the map filled: the transaction is then dead, abort it).
  Result<Seq> Append(std::string_view stream, const Event& event);

  // Generic key/value state (pipeline windows, dedup sets...). Keys: 1..511 bytes.
  Status PutState(std::string_view key, std::string_view value);
  Status DeleteState(std::string_view key);       // Ok if absent
  Result<std::string> GetState(std::string_view key);  // NotFound if absent; sees this txn's writes

  // Sets a consumer cursor to `position` (the next seq to read). Errors: NotFound (stream), InvalidArgument.
  Status SetCursor(std::string_view stream, std::string_view cursor, Seq position);
  Status DeleteCursor(std::string_view stream, std::string_view cursor);
  Result<Seq> GetCursor(std::string_view stream, std::string_view cursor);  // NotFound if never set

  // An iterator that sees this transaction's writes. REQUIRES: destroyed before Commit / the WriteTxn.
  Result<std::unique_ptr<StreamIterator>> NewIterator(std::string_view stream);

  // Runs fn in a nested transaction: if fn fails, only its changes are rolled back. Used by the group-commit
  // writer so one failing pipeline closure does not fail the whole batch.
  Status Nested(const std::function<Status(WriteTxn&)>& fn);

  // Makes every change durable (per EventLogOptions::sync). After Commit, whatever its result, the WriteTxn
  // is finished. Errors: Full (map full at commit), IoError. Calling Commit on a dead txn returns its error.
  Status Commit();
  void Abort();

  // True once an operation failed in a way that poisons the LMDB transaction (map full, I/O error).
  bool dead() const { return dead_; }
  // True if the transaction died because the map (or the budget) was full: evict and retry.
  bool full() const { return full_; }

 private:
  friend class EventLog;
  friend class GroupCommitWriter;
  struct StreamState;

  // The budget as seen when the transaction began.
  struct Budget {
    bool over_high = false;     // appends are refused outright
    size_t used = 0;            // bytes in use (an upper bound)
    size_t hard_limit = SIZE_MAX;  // appends that could push usage past this are refused (see budget.cc)
  };
  WriteTxn(EventLog* log, MDB_txn* txn, Budget budget);
  Result<StreamState*> State(std::string_view stream);
  Status FlushMeta();
  Status Fail(int rc, std::string_view what);
  // Deletes the head record of a stream (retention, budget) or the record the cursor `c` is on
  // (compaction), counting it under `reason`.
  Status DeleteRecord(StreamState* s, void* mdb_cursor, std::string_view value, EvictReason reason);
  Status RefreshFirstSeq(StreamState* s);

  EventLog* log_;
  MDB_txn* txn_;
  int32_t needed_priority_ = INT32_MIN;  // highest priority among appends refused or in a full txn
  Budget budget_;
  size_t added_ = 0;          // estimated bytes of pages this transaction's appends need
  bool guard_hit_ = false;    // an append was refused because the transaction grew too large
  bool dead_ = false;
  bool full_ = false;
  Error error_{ErrorCode::kIoError, ""};
  std::map<std::string, std::unique_ptr<StreamState>, std::less<>> streams_;
  std::string scratch_;  // encode buffer reused across appends
};

}  // namespace ferry
