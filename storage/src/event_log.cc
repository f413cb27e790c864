// event_log.cc: opening the environment, the stream registry, and the read side of the log.
#include "ferry/event_log.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include <sys/stat.h>
#include <sys/types.h>

#include <cerrno>
#include <cstring>

#include "ferry/stream_iterator.h"
#include "ferry/write_txn.h"
#include "lmdb_util.h"
#include "stream_meta.h"

// stat() of the log directory and statvfs() of its file system must not fail with EOVERFLOW on 32-bit boards
// (see _FILE_OFFSET_BITS in the top CMakeLists.txt).
static_assert(sizeof(off_t) == 8, "build with _FILE_OFFSET_BITS=64: 32-bit stat() fails on large inode numbers");

namespace ferry {

using detail::MdbFail;
using detail::Val;
using detail::View;

namespace {

Status ValidateName(std::string_view what, std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return InvalidArgument(std::string(what) + " name must be 1..64 bytes: '" + std::string(name) + "'");
  }
  if (name[0] == '.') return InvalidArgument(std::string(what) + " name must not start with '.'");
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.';
    if (!ok) {
      return InvalidArgument(std::string(what) + " name '" + std::string(name) +
                             "' has a character outside [A-Za-z0-9_.-]");
    }
  }
  return Ok();
}

// Ends a read transaction on every path out of a function.
struct ReadTxnGuard {
  MDB_txn* txn;
  ~ReadTxnGuard() {
    if (txn != nullptr) mdb_txn_abort(txn);
  }
};

}  // namespace

Status ValidateStreamName(std::string_view name) { return ValidateName("stream", name); }
Status ValidateCursorName(std::string_view name) { return ValidateName("cursor", name); }

EventLog::EventLog(const EventLogOptions& options)
    : options_(options), clock_(options.clock != nullptr ? options.clock : &SystemClock::Instance()) {}

EventLog::~EventLog() {
  if (env_ != nullptr) mdb_env_close(env_);
}

Result<std::unique_ptr<EventLog>> EventLog::Open(const EventLogOptions& options) {
  if (options.path.empty()) return InvalidArgument("EventLogOptions.path is empty");
  if (!(options.budget_low_water > 0 && options.budget_low_water <= options.budget_high_water &&
        options.budget_high_water < 1.0)) {
    return InvalidArgument("budget water marks must satisfy 0 < low <= high < 1");
  }
  if (!options.read_only && options.map_size < (size_t{1} << 20)) {
    return InvalidArgument("map_size below 1 MiB");
  }
  std::unique_ptr<EventLog> log(new EventLog(options));
  if (auto st = log->OpenEnv(); !st) return tl::unexpected(st.error());
  if (auto st = log->LoadStreams(); !st) return tl::unexpected(st.error());
  return log;
}

Status EventLog::OpenEnv() {
  const std::string& path = options_.path;
  struct stat sb{};
  if (options_.read_only && ::stat(path.c_str(), &sb) != 0) return NotFound("no event log at " + path);
  if (!options_.read_only && !options_.no_subdir && ::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return IoError("mkdir " + path + ": " + std::strerror(errno));
  }
  if (int rc = mdb_env_create(&env_); rc != 0) return MdbFail(rc, "mdb_env_create");
  mdb_env_set_maxdbs(env_, options_.max_streams * 2 + 3);
  mdb_env_set_maxreaders(env_, options_.max_readers);
  if (!options_.read_only) {
    if (int rc = mdb_env_set_mapsize(env_, options_.map_size); rc != 0) return MdbFail(rc, "mdb_env_set_mapsize");
  }
  // MDB_NOTLS: reader slots belong to transactions, not threads, so iterators may move between threads and
  // a thread may hold several. No MDB_WRITEMAP: a stray pointer write can then never reach the file.
  unsigned flags = MDB_NOTLS;
  if (options_.no_subdir) flags |= MDB_NOSUBDIR;
  if (options_.read_only) flags |= MDB_RDONLY;
  if (!options_.sync) flags |= MDB_NOSYNC;
  if (!options_.meta_sync) flags |= MDB_NOMETASYNC;
  if (int rc = mdb_env_open(env_, path.c_str(), flags, 0644); rc != 0) {
    return MdbFail(rc, "open event log " + path);
  }
  // A process killed inside a read transaction leaves its reader slot behind, pinning old pages forever.
  int dead = 0;
  mdb_reader_check(env_, &dead);
  MDB_stat st{};
  mdb_env_stat(env_, &st);
  page_size_ = st.ms_psize;

  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env_, nullptr, options_.read_only ? MDB_RDONLY : 0, &txn); rc != 0) {
    return MdbFail(rc, "begin open txn");
  }
  ReadTxnGuard guard{txn};
  const unsigned create = options_.read_only ? 0 : MDB_CREATE;
  for (auto [name, dbi] : {std::pair{"meta", &meta_dbi_}, {"cursors", &cursors_dbi_}, {"state", &state_dbi_}}) {
    if (int rc = mdb_dbi_open(txn, name, create, dbi); rc != 0) {
      if (rc == MDB_NOTFOUND) return NotFound(path + " is not a ferry event log (no '" + name + "' database)");
      return MdbFail(rc, std::string("open database ") + name);
    }
  }
  MDB_val key = Val(kFormatKey), val{};
  int rc = mdb_get(txn, meta_dbi_, &key, &val);
  if (rc == 0) {
    uint32_t version = 0;
    if (val.mv_size != sizeof(version)) return Corruption(path + ": malformed environment format record");
    std::memcpy(&version, val.mv_data, sizeof(version));
    if (version > kEnvFormatVersion) {
      return Corruption(path + ": unsupported environment format version " + std::to_string(version) +
                        " (this build supports " + std::to_string(kEnvFormatVersion) + "); written by a newer ferry?");
    }
  } else if (rc == MDB_NOTFOUND && !options_.read_only) {
    uint32_t version = kEnvFormatVersion;
    MDB_val v{sizeof(version), &version};
    if (rc = mdb_put(txn, meta_dbi_, &key, &v, 0); rc != 0) return MdbFail(rc, "write format version");
  } else if (rc != MDB_NOTFOUND) {
    return MdbFail(rc, "read format version");
  }
  guard.txn = nullptr;
  if (rc = mdb_txn_commit(txn); rc != 0) return MdbFail(rc, "commit open txn");
  return Ok();
}

Status EventLog::LoadStreams() {
  std::vector<std::string> names;
  {
    auto txn = BeginReadTxn();
    if (!txn) return tl::unexpected(txn.error());
    ReadTxnGuard guard{*txn};
    MDB_cursor* cur = nullptr;
    if (int rc = mdb_cursor_open(*txn, meta_dbi_, &cur); rc != 0) return MdbFail(rc, "meta cursor");
    const std::string prefix = detail::MetaKey("");
    MDB_val k = Val(prefix), v{};
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      std::string_view key = View(k);
      if (key.substr(0, prefix.size()) != prefix) break;
      names.emplace_back(key.substr(prefix.size()));
    }
    mdb_cursor_close(cur);
  }
  for (const auto& name : names) {
    if (auto h = FindStream(name); !h) return tl::unexpected(h.error());
  }
  return Ok();
}

Result<MDB_txn*> EventLog::BeginReadTxn() {
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn); rc != 0) return MdbFail(rc, "begin read txn");
  return txn;
}

Result<const EventLog::StreamHandle*> EventLog::FindStream(std::string_view name) {
  std::lock_guard<std::mutex> lock(registry_mu_);
  if (auto it = streams_.find(name); it != streams_.end()) return it->second.get();
  if (auto st = ValidateStreamName(name); !st) return tl::unexpected(st.error());
  // Not opened yet in this process (a read-only process, or Open loading the registry). mdb_dbi_open in a
  // short read transaction, under registry_mu_ because LMDB forbids concurrent mdb_dbi_open calls.
  auto txn = BeginReadTxn();
  if (!txn) return tl::unexpected(txn.error());
  ReadTxnGuard guard{*txn};
  const std::string mkey = detail::MetaKey(name);
  MDB_val key = Val(mkey), val{};
  if (int rc = mdb_get(*txn, meta_dbi_, &key, &val); rc != 0) {
    if (rc == MDB_NOTFOUND) return NotFound("no stream '" + std::string(name) + "'");
    return MdbFail(rc, "read stream meta");
  }
  auto meta = DecodeStreamMeta(View(val), name);
  if (!meta) return tl::unexpected(meta.error());
  auto h = std::make_unique<StreamHandle>();
  h->name = std::string(name);
  h->table = meta->kind == static_cast<uint8_t>(StreamKind::kTable);
  MDB_dbi dbi = 0;
  if (int rc = mdb_dbi_open(*txn, detail::LogDbName(name).c_str(), 0, &dbi); rc != 0) {
    return MdbFail(rc, "open log of stream " + std::string(name));
  }
  h->log_dbi = dbi;
  if (h->table) {
    if (int rc = mdb_dbi_open(*txn, detail::SubjectDbName(name).c_str(), 0, &dbi); rc != 0) {
      return MdbFail(rc, "open subject index of stream " + std::string(name));
    }
    h->subject_dbi = dbi;
  }
  guard.txn = nullptr;
  // Committing (not aborting) a read transaction keeps the handles it opened.
  if (int rc = mdb_txn_commit(*txn); rc != 0) return MdbFail(rc, "commit dbi open");
  const StreamHandle* out = h.get();
  streams_.emplace(h->name, std::move(h));
  return out;
}

Status EventLog::CreateStream(std::string_view name, const StreamOptions& options) {
  if (options_.read_only) return InvalidArgument("CreateStream on a read-only event log");
  if (auto st = ValidateStreamName(name); !st) return st;
  MDB_txn* txn = nullptr;
  // Lock order: LMDB's writer lock, then registry_mu_ (the group-commit writer holds the former when it
  // looks streams up).
  if (int rc = mdb_txn_begin(env_, nullptr, 0, &txn); rc != 0) return MdbFail(rc, "begin create stream");
  ReadTxnGuard guard{txn};
  std::lock_guard<std::mutex> lock(registry_mu_);
  const std::string mkey = detail::MetaKey(name);
  MDB_val key = Val(mkey), val{};
  StreamMeta meta{};
  int rc = mdb_get(txn, meta_dbi_, &key, &val);
  if (rc == 0) {
    auto old = DecodeStreamMeta(View(val), name);
    if (!old) return tl::unexpected(old.error());
    if (old->kind != static_cast<uint8_t>(options.kind)) {
      return InvalidArgument("stream '" + std::string(name) + "' exists with another kind");
    }
    meta = *old;
    ApplyOptions(options, &meta);
  } else if (rc == MDB_NOTFOUND) {
    if (streams_.size() >= options_.max_streams) {
      return Full("max_streams (" + std::to_string(options_.max_streams) + ") reached");
    }
    meta = NewStreamMeta(options);
  } else {
    return MdbFail(rc, "read stream meta");
  }
  auto h = std::make_unique<StreamHandle>();
  h->name = std::string(name);
  h->table = options.kind == StreamKind::kTable;
  MDB_dbi dbi = 0;
  if (rc = mdb_dbi_open(txn, detail::LogDbName(name).c_str(), MDB_CREATE, &dbi); rc != 0) {
    return MdbFail(rc, "create log of stream " + std::string(name));
  }
  h->log_dbi = dbi;
  if (h->table) {
    if (rc = mdb_dbi_open(txn, detail::SubjectDbName(name).c_str(), MDB_CREATE, &dbi); rc != 0) {
      return MdbFail(rc, "create subject index of stream " + std::string(name));
    }
    h->subject_dbi = dbi;
  }
  MDB_val v{sizeof(meta), &meta};
  if (rc = mdb_put(txn, meta_dbi_, &key, &v, 0); rc != 0) return MdbFail(rc, "write stream meta");
  guard.txn = nullptr;
  if (rc = mdb_txn_commit(txn); rc != 0) return MdbFail(rc, "commit create stream");
  streams_[h->name] = std::move(h);  // the same dbi numbers if it existed: mdb_dbi_open returns the open handle
  return Ok();
}

Result<StreamOptions> EventLog::GetStreamOptions(std::string_view name) {
  auto stats = GetStreamStats(name);
  if (!stats) return tl::unexpected(stats.error());
  return stats->options;
}

std::vector<std::string> EventLog::ListStreams() {
  std::lock_guard<std::mutex> lock(registry_mu_);
  std::vector<std::string> out;
  for (const auto& [name, h] : streams_) out.push_back(name);
  return out;
}

Result<std::unique_ptr<WriteTxn>> EventLog::BeginWrite() {
  if (options_.read_only) return InvalidArgument("write on a read-only event log");
  const WriteTxn::Budget budget = BudgetAtBegin();
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env_, nullptr, 0, &txn); rc != 0) return MdbFail(rc, "begin write txn");
  return std::unique_ptr<WriteTxn>(new WriteTxn(this, txn, budget));
}

Status EventLog::Update(const std::function<Status(WriteTxn&)>& fn) {
  constexpr int kMaxAttempts = 6;
  bool last_try = false;
  for (int attempt = 0;; ++attempt) {
    auto txn = BeginWrite();
    if (!txn) return tl::unexpected(txn.error());
    Status result = fn(**txn);
    if (result && !(*txn)->dead()) {
      result = (*txn)->Commit();
      if (result) return result;
    }
    if (!(*txn)->full() || last_try) return result;
    // Out of budget or out of map: free space per the stream policies, then run fn again from scratch.
    const int32_t prio = (*txn)->needed_priority_;
    const bool map_full = (*txn)->dead() || (*txn)->guard_hit_;
    txn->reset();
    last_try = !MakeRoom(prio, map_full) || attempt >= kMaxAttempts - 2;
  }
}

bool EventLog::MakeRoom(int32_t max_priority, bool map_full) {
  auto room = EnforceBudget(max_priority);
  if (!room) return false;
  if (!map_full) return *room;
  // The map filled below high water (a transaction larger than the reserve). Evict one more batch: it also
  // makes the previous eviction's pages reusable (LMDB cannot reuse pages freed by the latest commit).
  auto evicted = EvictOneBatch(max_priority);
  return evicted && *evicted;
}

Result<Seq> EventLog::Append(std::string_view stream, const Event& event) {
  Seq seq;
  auto st = Update([&](WriteTxn& txn) -> Status {
    auto r = txn.Append(stream, event);
    if (!r) return tl::unexpected(r.error());
    seq = *r;
    return Ok();
  });
  if (!st) return tl::unexpected(st.error());
  return seq;
}

Result<std::unique_ptr<StreamIterator>> EventLog::NewIterator(std::string_view stream) {
  auto h = FindStream(stream);
  if (!h) return tl::unexpected(h.error());
  auto txn = BeginReadTxn();
  if (!txn) return tl::unexpected(txn.error());
  std::unique_ptr<StreamIterator> it(new StreamIterator(*txn, true, (*h)->log_dbi));
  if (!it->status()) return tl::unexpected(it->status().error());
  return it;
}

Result<std::vector<StoredRecord>> EventLog::Read(std::string_view stream, Seq from, size_t max_records,
                                                 size_t max_bytes) {
  auto it = NewIterator(stream);
  if (!it) return tl::unexpected(it.error());
  std::vector<StoredRecord> out;
  size_t bytes = 0;
  for ((*it)->Seek(from); (*it)->Valid() && out.size() < max_records; (*it)->Next()) {
    const RecordView& r = (*it)->record();
    if (!out.empty() && bytes + r.payload.size() > max_bytes) break;
    bytes += r.payload.size();
    out.push_back(StoredRecord{r.seq, r.ingest_time, r.ToEvent()});
  }
  if (!(*it)->status()) return tl::unexpected((*it)->status().error());
  return out;
}

Result<StoredRecord> EventLog::LookupLatest(std::string_view stream, std::string_view subject) {
  auto h = FindStream(stream);
  if (!h) return tl::unexpected(h.error());
  if (!(*h)->table) return InvalidArgument("stream '" + std::string(stream) + "' is not a table");
  if (subject.empty() || subject.size() > detail::kMaxKeySize)
    return InvalidArgument("a table's key (subject) must be 1..511 bytes");
  auto txn = BeginReadTxn();
  if (!txn) return tl::unexpected(txn.error());
  ReadTxnGuard guard{*txn};
  MDB_val sk = Val(subject), sv{};
  if (int rc = mdb_get(*txn, (*h)->subject_dbi, &sk, &sv); rc != 0) {
    if (rc == MDB_NOTFOUND) return NotFound("no row '" + std::string(subject) + "' in table '" + std::string(stream) + "'");
    return MdbFail(rc, "read subject index");
  }
  Seq seq;
  if (!detail::DecodeSeq(sv, &seq)) return Corruption("subject index of '" + std::string(stream) + "': malformed seq");
  MDB_val rv{};
  if (int rc = mdb_get(*txn, (*h)->log_dbi, &sv, &rv); rc != 0) {
    if (rc == MDB_NOTFOUND) return NotFound("no row '" + std::string(subject) + "' in table '" + std::string(stream) + "'");
    return MdbFail(rc, "read record");
  }
  auto r = DecodeRecord(View(rv), seq);
  if (!r) return tl::unexpected(r.error());
  return StoredRecord{r->seq, r->ingest_time, r->ToEvent()};
}

Result<Seq> EventLog::GetCursor(std::string_view stream, std::string_view cursor) {
  auto txn = BeginReadTxn();
  if (!txn) return tl::unexpected(txn.error());
  ReadTxnGuard guard{*txn};
  const std::string k = detail::CursorKey(stream, cursor);
  MDB_val key = Val(k), val{};
  if (int rc = mdb_get(*txn, cursors_dbi_, &key, &val); rc != 0) {
    if (rc == MDB_NOTFOUND) return NotFound("no cursor '" + std::string(cursor) + "' on stream '" + std::string(stream) + "'");
    return MdbFail(rc, "read cursor");
  }
  Seq seq;
  if (!detail::DecodeSeq(val, &seq)) return Corruption("cursor '" + std::string(cursor) + "': malformed value");
  return seq;
}

Result<std::string> EventLog::GetState(std::string_view key) {
  if (key.empty() || key.size() > detail::kMaxKeySize) return InvalidArgument("state key must be 1..511 bytes");
  auto txn = BeginReadTxn();
  if (!txn) return tl::unexpected(txn.error());
  ReadTxnGuard guard{*txn};
  MDB_val k = Val(key), val{};
  if (int rc = mdb_get(*txn, state_dbi_, &k, &val); rc != 0) {
    if (rc == MDB_NOTFOUND) return NotFound("no state key");
    return MdbFail(rc, "read state");
  }
  return std::string(View(val));
}

Result<std::vector<std::pair<std::string, std::string>>> EventLog::ListState(std::string_view prefix, size_t limit) {
  if (prefix.size() > detail::kMaxKeySize) return InvalidArgument("state key prefix longer than 511 bytes");
  auto txn = BeginReadTxn();
  if (!txn) return tl::unexpected(txn.error());
  ReadTxnGuard guard{*txn};
  MDB_cursor* cur = nullptr;
  if (int rc = mdb_cursor_open(*txn, state_dbi_, &cur); rc != 0) return MdbFail(rc, "state cursor");
  std::vector<std::pair<std::string, std::string>> out;
  MDB_val k{}, v{};
  int rc = prefix.empty() ? mdb_cursor_get(cur, &k, &v, MDB_FIRST)
                          : (k = Val(prefix), mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE));
  for (; rc == 0 && out.size() < limit; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    std::string_view key = View(k);
    if (key.substr(0, prefix.size()) != prefix) break;
    out.emplace_back(std::string(key), std::string(View(v)));
  }
  mdb_cursor_close(cur);
  if (rc != 0 && rc != MDB_NOTFOUND && out.size() < limit) return MdbFail(rc, "list state");
  return out;
}

Result<StreamStats> EventLog::GetStreamStats(std::string_view stream) {
  auto h = FindStream(stream);
  if (!h) return tl::unexpected(h.error());
  auto txn = BeginReadTxn();
  if (!txn) return tl::unexpected(txn.error());
  ReadTxnGuard guard{*txn};
  const std::string mkey = detail::MetaKey(stream);
  MDB_val key = Val(mkey), val{};
  if (int rc = mdb_get(*txn, meta_dbi_, &key, &val); rc != 0) return MdbFail(rc, "read stream meta");
  auto meta = DecodeStreamMeta(View(val), stream);
  if (!meta) return tl::unexpected(meta.error());
  StreamStats s;
  s.name = std::string(stream);
  s.options = OptionsOf(*meta);
  s.count = meta->count;
  s.bytes = meta->bytes;
  s.first_seq = Seq{meta->first_seq};
  s.last_seq = Seq{meta->next_seq - 1};
  s.last_ingest_time = TimeNs{meta->last_ingest_ns};
  for (int i = 0; i < kEvictReasonCount; ++i) s.evicted[i] = meta->evicted[i];

  MDB_cursor* cur = nullptr;
  if (int rc = mdb_cursor_open(*txn, (*h)->log_dbi, &cur); rc != 0) return MdbFail(rc, "log cursor");
  MDB_val k{}, v{};
  if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0) {
    if (auto peek = PeekRecord(View(v))) s.oldest_ingest_time = peek->ingest_time;
  }
  mdb_cursor_close(cur);

  if (int rc = mdb_cursor_open(*txn, cursors_dbi_, &cur); rc != 0) return MdbFail(rc, "cursors cursor");
  const std::string prefix = detail::CursorKey(stream, "");
  k = Val(prefix);
  for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    std::string_view ck = View(k);
    if (ck.substr(0, prefix.size()) != prefix) break;
    Seq pos;
    if (!detail::DecodeSeq(v, &pos)) continue;
    const uint64_t from = std::max(pos.value, meta->first_seq);
    const uint64_t lag = from >= meta->next_seq ? 0 : std::min(meta->count, meta->next_seq - from);
    s.cursors.push_back(CursorInfo{std::string(ck.substr(prefix.size())), pos, lag});
  }
  mdb_cursor_close(cur);
  return s;
}

Result<EnvStats> EventLog::GetEnvStats() {
  auto txn = BeginReadTxn();
  if (!txn) return tl::unexpected(txn.error());
  ReadTxnGuard guard{*txn};
  EnvStats s;
  MDB_envinfo info{};
  mdb_env_info(env_, &info);
  s.map_size = info.me_mapsize;
  s.page_size = page_size_;
  s.readers = info.me_numreaders;
  s.high_water_bytes = static_cast<size_t>(static_cast<double>(info.me_mapsize) * options_.budget_high_water);
  s.file_pages = info.me_last_pgno + 1;
  auto used = UsedBytes(*txn);
  if (!used) return tl::unexpected(used.error());
  s.used_bytes = *used;
  s.free_pages = s.file_pages - s.used_bytes / page_size_;
  return s;
}

void EventLog::ReleaseMappedPages() {
  std::call_once(map_lookup_once_, [this] {
    // LMDB does not expose its map address (mdb_env_info reports it only with MDB_FIXEDMAP): find the
    // mapping of the data file in /proc/self/maps by device and inode.
    mdb_filehandle_t fd;
    struct stat st;
    if (mdb_env_get_fd(env_, &fd) != 0 || fstat(fd, &st) != 0) return;
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
      unsigned long long lo = 0, hi = 0, offset = 0, inode = 0;
      unsigned major = 0, minor = 0;
      char perms[8] = {};
      if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %x:%x %llu", &lo, &hi, perms, &offset, &major, &minor,
                      &inode) != 7)
        continue;
      if (inode == st.st_ino && makedev(major, minor) == st.st_dev && offset == 0) {
        map_addr_ = reinterpret_cast<void*>(static_cast<uintptr_t>(lo));
        map_len_ = static_cast<size_t>(hi - lo);
        return;
      }
    }
  });
  if (map_addr_ == nullptr) return;
  MDB_envinfo info;
  if (mdb_env_info(env_, &info) != 0) return;
  size_t used = static_cast<size_t>(info.me_last_pgno + 1) * page_size_;
  (void)madvise(map_addr_, std::min(used, map_len_), MADV_DONTNEED);
}

}  // namespace ferry
