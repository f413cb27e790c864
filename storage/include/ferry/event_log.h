// ferry/event_log.h: the durable event log. One LMDB environment holds every stream, the consumer cursors,
// the generic processing state and the per-stream meta. See docs/storage.md for the on-disk layout and the
// durability promise of each option.
//
// Threads: an EventLog is thread-safe. Any thread may read (iterators, stats) while one other thread writes;
// LMDB serialises write transactions (also across processes), so concurrent writers simply queue. For
// throughput, funnel appends through a GroupCommitWriter (ferry/group_commit.h).
//
// Processes: one process opens the log read-write (the daemon); any number may open it with
// options.read_only = true (ferryctl, tests) and read while the daemon writes. Never open the same log twice in
// one process: LMDB's POSIX locks are per process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/clock.h"
#include "ferry/error.h"
#include "ferry/record.h"
#include "ferry/types.h"
#include "ferry/write_txn.h"

struct MDB_env;
struct MDB_txn;

namespace ferry {

class StreamIterator;

struct EventLogOptions {
  // Directory holding data.mdb and lock.mdb (created if missing), or with no_subdir the data file itself.
  std::string path;
  // The hard disk budget: LMDB's map size, fixed for the life of the process. On 32-bit (armhf) it must fit
  // the address space next to everything else: keep it <= 1 GiB there. Ignored when read_only (the
  // writer's size is used).
  size_t map_size = size_t{256} << 20;
  bool read_only = false;
  bool no_subdir = false;
  // Durability knobs, see docs/storage.md "Durability". Defaults: every commit is durable on return.
  bool sync = true;            // false = MDB_NOSYNC: commits survive a process crash, not a power cut
  bool meta_sync = true;       // false = MDB_NOMETASYNC: a power cut may undo the last commit, never corrupt
  unsigned max_streams = 64;   // each stream uses up to two named LMDB databases
  unsigned max_readers = 126;  // concurrent read transactions across all processes
  // Budget: appends start evicting (drop_oldest streams, lowest priority first) once the used pages exceed
  // high_water of the map, and evict down to low_water. Keeping a reserve above high_water is what lets the
  // deletes themselves (copy-on-write) succeed on a full map.
  double budget_high_water = 0.90;
  double budget_low_water = 0.85;
  // Ingest time and retention ages. nullptr = SystemClock. REQUIRES: outlives the EventLog.
  const Clock* clock = nullptr;
};

struct CursorInfo {
  std::string name;
  Seq position;   // next seq the consumer will read
  uint64_t lag;   // records at or after `position` (an upper bound once compaction has left gaps)
};

struct StreamStats {
  std::string name;
  StreamOptions options;
  uint64_t count = 0;
  uint64_t bytes = 0;       // key + encoded record bytes (LMDB page overhead not included)
  Seq first_seq;            // == next_seq when the stream is empty
  Seq last_seq;             // Seq{0} if nothing was ever appended
  TimeNs oldest_ingest_time;  // of the first record; 0 if empty
  TimeNs last_ingest_time;    // of the last append; 0 if nothing was ever appended
  uint64_t evicted[kEvictReasonCount] = {};  // indexed by EvictReason
  std::vector<CursorInfo> cursors;
};

struct EnvStats {
  size_t map_size = 0;
  size_t page_size = 0;
  size_t file_pages = 0;   // pages ever used (the data file's high mark)
  size_t free_pages = 0;   // of those, on LMDB's freelist
  size_t used_bytes = 0;   // (file_pages - free_pages) * page_size: what the budget compares
  size_t high_water_bytes = 0;
  unsigned readers = 0;    // reader slots in use
};

// A record copied out of the map, for callers that keep records beyond a read transaction.
struct StoredRecord {
  Seq seq;
  TimeNs ingest_time;
  Event event;
};

class EventLog {
 public:
  // Opens (creating if missing and not read_only) the environment, clears reader slots left by dead
  // processes (mdb_reader_check) and loads the stream registry.
  // Errors: InvalidArgument (bad options), IoError (open/mmap failed), Corruption (not an LMDB file, or its
  // environment format version is newer than this build: "unsupported environment format version"),
  // NotFound (read_only and no log at path).
  static Result<std::unique_ptr<EventLog>> Open(const EventLogOptions& options);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Creates the stream, or updates the options of an existing one (its kind cannot change).
  // Errors: InvalidArgument (name, kind change, read_only), Full (max_streams reached), IoError.
  Status CreateStream(std::string_view name, const StreamOptions& options = {});
  Result<StreamOptions> GetStreamOptions(std::string_view name);
  std::vector<std::string> ListStreams();

  // Appends one event in its own write transaction (one commit, one fsync pair). For tools and tests; the
  // daemon appends through GroupCommitWriter. Errors: as WriteTxn::Append, plus IoError from the commit.
  Result<Seq> Append(std::string_view stream, const Event& event);

  // Runs fn in one write transaction and commits it if fn returns Ok: appends, state and cursor updates in
  // fn become durable together or not at all. If the budget is exhausted (Full), the log evicts per the
  // stream policies and runs fn once more in a fresh transaction, so fn must not keep side effects outside
  // the WriteTxn. Errors: whatever fn returns, Full, IoError. Blocks while another writer holds LMDB's lock.
  Status Update(const std::function<Status(WriteTxn&)>& fn);

  // Lower level: a write transaction the caller commits. REQUIRES: at most one open WriteTxn per thread.
  Result<std::unique_ptr<WriteTxn>> BeginWrite();

  // A read iterator over one stream, on its own read transaction (a snapshot). Keep it short-lived: an open
  // iterator pins the pages of its snapshot and the file grows while it lives. Errors: NotFound (stream),
  // Busy (reader slots exhausted), IoError.
  Result<std::unique_ptr<StreamIterator>> NewIterator(std::string_view stream);

  // Copies up to max_records records with seq >= from, stopping before max_bytes of payload (but always at
  // least one record if any), in a short read transaction. Errors: NotFound (stream), Corruption (a record
  // failed verification; records before it are not returned), IoError.
  Result<std::vector<StoredRecord>> Read(std::string_view stream, Seq from, size_t max_records,
                                         size_t max_bytes = SIZE_MAX);

  // kTable streams: the latest record of `subject` (a tombstone has an empty payload), in a short read
  // transaction, through the subject index: one lookup whatever the table's size. Errors: NotFound (no record
  // for the subject, or the stream does not exist), InvalidArgument (not a table; subject empty or longer than
  // 511 bytes), Corruption (the record failed verification), IoError.
  Result<StoredRecord> LookupLatest(std::string_view stream, std::string_view subject);
  // A consumer cursor's position (the next seq it will read). Errors: NotFound if never set.
  Result<Seq> GetCursor(std::string_view stream, std::string_view cursor);
  // Generic processing state. Errors: NotFound.
  Result<std::string> GetState(std::string_view key);
  // State keys starting with `prefix`, in key order, with their values; at most `limit` of them (one short read
  // transaction).
  Result<std::vector<std::pair<std::string, std::string>>> ListState(std::string_view prefix, size_t limit = SIZE_MAX);

  // Cheap: one meta lookup, one first-record lookup, one cursor range scan.
  Result<StreamStats> GetStreamStats(std::string_view stream);
  Result<EnvStats> GetEnvStats();

  // --- Maintenance: bounded steps, each one write transaction. Normally driven by LogMaintainer. ---
  // Deletes up to max_records from stream heads whose age (now - ingest time, by the injected clock) or byte
  // total exceeds the stream's retention. Returns the number deleted.
  Result<uint64_t> RetentionStep(size_t max_records);
  // kTable streams: examines up to max_records, deleting records superseded by a newer one with the same
  // subject and tombstones older than the grace period. Resumes where the previous step stopped.
  Result<uint64_t> CompactionStep(size_t max_records);
  // If used pages exceed high water, evicts the oldest records of drop_oldest streams with priority <=
  // max_priority (lowest priority first) until below low water or nothing is left to evict. Returns true if
  // the log is now below high water.
  Result<bool> EnforceBudget(int32_t max_priority = INT32_MAX);
  // Cheap check (no freelist walk unless the file is near its map size).
  bool OverBudget();
  // Drops this process's page-table entries for the map (madvise MADV_DONTNEED). The pages stay in the page
  // cache and are faulted back on the next read, so nothing changes for readers. Why: every record appended
  // ends up mapped (LMDB reads the rightmost leaf each commit, and the kernel maps the pages around it), so
  // without this the process's RSS grows with the log even though the data lives in the file, and on a small
  // board the OOM killer counts mapped file pages. Safe because the map is read-only (no MDB_WRITEMAP).
  void ReleaseMappedPages();

  const EventLogOptions& options() const { return options_; }
  const Clock& clock() const { return *clock_; }

 private:
  friend class WriteTxn;
  friend class StreamIterator;
  friend class GroupCommitWriter;

  struct StreamHandle {
    std::string name;
    unsigned log_dbi = 0;      // seq (8-byte BE) -> record
    unsigned subject_dbi = 0;  // kTable only: subject -> seq of its latest record
    bool table = false;
  };

  explicit EventLog(const EventLogOptions& options);
  Status OpenEnv();
  Status LoadStreams();
  // Finds the stream's handle, opening it (read-only processes: created since Open) if needed.
  Result<const StreamHandle*> FindStream(std::string_view name);
  Result<MDB_txn*> BeginReadTxn();
  // Pages in use minus pages on the freelist, in bytes, as of txn's snapshot (walks the freelist).
  Result<size_t> UsedBytes(MDB_txn* txn);
  WriteTxn::Budget BudgetAtBegin();
  // Evicts one bounded batch from the best victim with priority <= max_priority; false if none.
  Result<bool> EvictOneBatch(int32_t max_priority);
  Result<bool> EvictBatch(int32_t max_priority, size_t max_records);
  // After a transaction was refused (map_full = false) or hit MDB_MAP_FULL: evicts for a writer of
  // max_priority. True if trying again may succeed.
  bool MakeRoom(int32_t max_priority, bool map_full);

  EventLogOptions options_;
  const Clock* clock_;
  MDB_env* env_ = nullptr;
  unsigned meta_dbi_ = 0;     // "stream:<name>" -> StreamMeta; "format" -> env format version
  unsigned cursors_dbi_ = 0;  // "<stream>\0<cursor>" -> 8-byte BE seq
  unsigned state_dbi_ = 0;    // caller keys -> caller values
  size_t page_size_ = 4096;
  std::mutex registry_mu_;    // guards streams_ and every mdb_dbi_open
  std::map<std::string, std::unique_ptr<StreamHandle>, std::less<>> streams_;
  std::once_flag map_lookup_once_;  // ReleaseMappedPages: where LMDB mapped the data file
  void* map_addr_ = nullptr;
  size_t map_len_ = 0;
};

}  // namespace ferry
