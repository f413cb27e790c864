// ferry/stream_iterator.h: ordered reads of one stream, LevelDB style.
//
//   auto it = log->NewIterator("telemetry");          // check the Result
//   for ((*it)->Seek(from); (*it)->Valid(); (*it)->Next()) use((*it)->record());
//   if (!(*it)->status()) handle((*it)->status().error());
//
// A record that fails verification (CRC, size, version) ends the loop with status() = Corruption naming its
// seq; the caller may Seek(seq.next()) to skip it. Threads: one thread at a time per iterator.
#pragma once

#include <memory>

#include "ferry/error.h"
#include "ferry/record.h"
#include "ferry/types.h"

struct MDB_txn;
struct MDB_cursor;

namespace ferry {

class StreamIterator {
 public:
  ~StreamIterator();  // ends the read transaction if the iterator owns it
  StreamIterator(const StreamIterator&) = delete;
  StreamIterator& operator=(const StreamIterator&) = delete;

  void SeekToFirst();
  // Positions at the first record with seq >= `seq`.
  void Seek(Seq seq);
  // Positions at the first record with ingest_time >= t: a binary search, valid because ingest time never
  // decreases within a stream.
  void SeekToTime(TimeNs t);
  bool Valid() const { return valid_; }
  void Next();
  // REQUIRES: Valid(). Views point into the map and are valid until the next move or destruction.
  const RecordView& record() const { return record_; }
  // Ok, or the first error met (Corruption, IoError); an error also makes Valid() false.
  const Status& status() const { return status_; }

 private:
  friend class EventLog;
  friend class WriteTxn;
  StreamIterator(MDB_txn* txn, bool owns_txn, unsigned dbi);
  // Loads the record at the cursor after a cursor_get returned rc.
  void Load(int rc, void* key, void* value);
  void Position(int op, Seq seq);

  MDB_txn* txn_;
  bool owns_txn_;
  MDB_cursor* cursor_ = nullptr;
  bool valid_ = false;
  Status status_;
  RecordView record_;
};

}  // namespace ferry
