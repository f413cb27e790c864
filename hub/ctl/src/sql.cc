// sql.cc: ferryctl sql -- SQLite over the event log, one read-only virtual table per stream (docs/ferryctl.md).
//
// Each stream is a table `ferry_stream` module instance with the columns
//   seq INTEGER, time INTEGER, ingest_time INTEGER (ns since 1970), id, subject, type, source, content_type,
//   headers (a JSON object), payload (TEXT when it is UTF-8, else BLOB).
// Constraints on seq and ingest_time are pushed down (xBestIndex): a lower bound seeks (ingest time never
// decreases within a stream, so a time bound is a binary search), an upper bound stops the scan, so "the last
// hour" reads only the last hour. Rows come in seq order, which satisfies ORDER BY seq. Records are copied in
// chunks, one short read transaction each (EventLog::Read): a slow query never pins the writer's pages for long.
//
// Nothing can write: the tables have no xUpdate, and an authorizer allows only reading (no ATTACH, no PRAGMA
// that writes, no temp tables). A progress handler stops a query at its deadline.
#include <sqlite3.h>

#include <algorithm>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "ferry/config.h"
#include "ferry/ctl.h"
#include "ferry/rfc3339.h"
#include "ferry/utf8.h"

namespace ferry::ctl {
namespace {

constexpr size_t kChunkRecords = 512;
constexpr size_t kChunkBytes = size_t{4} << 20;

enum Column { kSeq, kTime, kIngestTime, kId, kSubject, kType, kSource, kContentType, kHeaders, kPayload };
// Bits of idxNum: which bounds xFilter receives, in this order.
enum Bound { kSeqEq = 1, kSeqLo = 2, kSeqHi = 4, kTimeLo = 8, kTimeHi = 16, kSeqLoExclusive = 32, kSeqHiExclusive = 64 };

// What every table of one RunSql shares.
struct ModuleAux {
  EventLog* log = nullptr;
  uint64_t records_read = 0;
};

struct Table {
  sqlite3_vtab base{};
  ModuleAux* aux = nullptr;
  std::string stream;
};

struct Cursor {
  sqlite3_vtab_cursor base{};
  Table* table = nullptr;
  std::vector<StoredRecord> chunk;
  size_t at = 0;
  uint64_t next = 0;  // the seq to read from when the chunk is used up
  uint64_t hi_seq = UINT64_MAX;
  int64_t hi_time = INT64_MAX;
  bool done = false;
  std::string error;
};

int SetError(sqlite3_vtab* vtab, const std::string& message) {
  sqlite3_free(vtab->zErrMsg);
  vtab->zErrMsg = sqlite3_mprintf("%s", message.c_str());
  return SQLITE_ERROR;
}

int Connect(sqlite3* db, void* aux, int argc, const char* const* argv, sqlite3_vtab** out, char** err) {
  if (argc < 4) {
    *err = sqlite3_mprintf("ferry_stream needs the stream name");
    return SQLITE_ERROR;
  }
  std::string stream = argv[3];
  if (stream.size() >= 2 && (stream.front() == '\'' || stream.front() == '"')) stream = stream.substr(1, stream.size() - 2);
  int rc = sqlite3_declare_vtab(db,
                                "CREATE TABLE x(seq INTEGER, time INTEGER, ingest_time INTEGER, id TEXT, subject TEXT, "
                                "type TEXT, source TEXT, content_type TEXT, headers TEXT, payload)");
  if (rc != SQLITE_OK) return rc;
  auto* t = new Table;
  t->aux = static_cast<ModuleAux*>(aux);
  t->stream = std::move(stream);
  *out = &t->base;
  return SQLITE_OK;
}

int Disconnect(sqlite3_vtab* vtab) {
  delete reinterpret_cast<Table*>(vtab);
  return SQLITE_OK;
}

int BestIndex(sqlite3_vtab*, sqlite3_index_info* info) {
  int used[5] = {-1, -1, -1, -1, -1};  // constraint index per Bound bit
  for (int i = 0; i < info->nConstraint; ++i) {
    const auto& c = info->aConstraint[i];
    if (!c.usable) continue;
    if (c.iColumn == kSeq) {
      if (c.op == SQLITE_INDEX_CONSTRAINT_EQ) used[0] = i;
      if (c.op == SQLITE_INDEX_CONSTRAINT_GT || c.op == SQLITE_INDEX_CONSTRAINT_GE) used[1] = i;
      if (c.op == SQLITE_INDEX_CONSTRAINT_LT || c.op == SQLITE_INDEX_CONSTRAINT_LE) used[2] = i;
    } else if (c.iColumn == kIngestTime) {
      if (c.op == SQLITE_INDEX_CONSTRAINT_GT || c.op == SQLITE_INDEX_CONSTRAINT_GE) used[3] = i;
      if (c.op == SQLITE_INDEX_CONSTRAINT_LT || c.op == SQLITE_INDEX_CONSTRAINT_LE) used[4] = i;
    }
  }
  int idx = 0, arg = 0;
  double cost = 1e6;
  if (used[1] >= 0 && info->aConstraint[used[1]].op == SQLITE_INDEX_CONSTRAINT_GT) idx |= kSeqLoExclusive;
  if (used[2] >= 0 && info->aConstraint[used[2]].op == SQLITE_INDEX_CONSTRAINT_LT) idx |= kSeqHiExclusive;
  for (int b = 0; b < 5; ++b) {
    if (used[b] < 0) continue;
    idx |= 1 << b;
    // SQLite checks the constraint again (omit = 0): the bounds here only narrow the scan, so > and >= (and
    // < and <=) may share one inclusive bound.
    info->aConstraintUsage[used[b]].argvIndex = ++arg;
    cost /= b == 0 ? 1e5 : 10;
  }
  info->idxNum = idx;
  info->estimatedCost = cost;
  if (info->nOrderBy == 1 && info->aOrderBy[0].iColumn == kSeq && !info->aOrderBy[0].desc) info->orderByConsumed = 1;
  return SQLITE_OK;
}

int Open(sqlite3_vtab* vtab, sqlite3_vtab_cursor** out) {
  auto* c = new Cursor;
  c->table = reinterpret_cast<Table*>(vtab);
  *out = &c->base;
  return SQLITE_OK;
}

int Close(sqlite3_vtab_cursor* cur) {
  delete reinterpret_cast<Cursor*>(cur);
  return SQLITE_OK;
}

// Makes chunk[at] the next row within the bounds, reading a chunk when needed. Sets done at the end.
int Fill(Cursor* c) {
  for (;;) {
    if (c->at < c->chunk.size()) {
      const StoredRecord& r = c->chunk[c->at];
      if (r.seq.value > c->hi_seq || r.ingest_time.ns > c->hi_time) c->done = true;
      return SQLITE_OK;
    }
    if (c->next > c->hi_seq) {
      c->done = true;
      return SQLITE_OK;
    }
    // Never past the upper bound: "seq = 7" reads one record, not a chunk.
    const size_t want = c->hi_seq - c->next >= kChunkRecords ? kChunkRecords : static_cast<size_t>(c->hi_seq - c->next + 1);
    auto chunk = c->table->aux->log->Read(c->table->stream, Seq{c->next}, want, kChunkBytes);
    if (!chunk) return SetError(c->base.pVtab, "stream " + c->table->stream + ": " + chunk.error().ToString());
    c->chunk = std::move(*chunk);
    c->table->aux->records_read += c->chunk.size();
    c->at = 0;
    if (c->chunk.empty()) {
      c->done = true;
      return SQLITE_OK;
    }
    c->next = c->chunk.back().seq.value + 1;
  }
}

int Filter(sqlite3_vtab_cursor* cur, int idx, const char*, int argc, sqlite3_value** argv) {
  auto* c = reinterpret_cast<Cursor*>(cur);
  c->chunk.clear();
  c->at = 0;
  c->done = false;
  c->next = 0;
  c->hi_seq = UINT64_MAX;
  c->hi_time = INT64_MAX;
  int arg = 0;
  auto value = [&]() -> sqlite3_int64 { return arg < argc ? sqlite3_value_int64(argv[arg++]) : 0; };
  int64_t lo_time = INT64_MIN;
  if (idx & kSeqEq) {
    sqlite3_int64 v = value();
    c->next = static_cast<uint64_t>(std::max<sqlite3_int64>(v, 0));
    c->hi_seq = c->next;
  }
  if (idx & kSeqLo) {
    sqlite3_int64 v = value();
    if ((idx & kSeqLoExclusive) && v < INT64_MAX) ++v;
    c->next = std::max<uint64_t>(c->next, static_cast<uint64_t>(std::max<sqlite3_int64>(v, 0)));
  }
  if (idx & kSeqHi) {
    sqlite3_int64 v = value();
    if ((idx & kSeqHiExclusive) && v > INT64_MIN) --v;
    c->hi_seq = v < 0 ? 0 : std::min<uint64_t>(c->hi_seq, static_cast<uint64_t>(v));
    if (v < 0) c->done = true;
  }
  if (idx & kTimeLo) lo_time = value();
  if (idx & kTimeHi) c->hi_time = value();
  if (c->done) return SQLITE_OK;
  if (lo_time != INT64_MIN) {
    Position p;
    p.time = TimeNs{lo_time};
    auto seq = ResolvePosition(*c->table->aux->log, c->table->stream, p);
    if (!seq) return SetError(cur->pVtab, "stream " + c->table->stream + ": " + seq.error().ToString());
    c->next = std::max(c->next, seq->value);
  }
  return Fill(c);
}

int Next(sqlite3_vtab_cursor* cur) {
  auto* c = reinterpret_cast<Cursor*>(cur);
  ++c->at;
  return Fill(c);
}

int Eof(sqlite3_vtab_cursor* cur) { return reinterpret_cast<Cursor*>(cur)->done ? 1 : 0; }

void Text(sqlite3_context* ctx, const std::string& s) {
  sqlite3_result_text(ctx, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
}

int ColumnValue(sqlite3_vtab_cursor* cur, sqlite3_context* ctx, int col) {
  auto* c = reinterpret_cast<Cursor*>(cur);
  const StoredRecord& r = c->chunk[c->at];
  const Event& e = r.event;
  auto optional_text = [&](const std::string& s) {
    if (s.empty()) {
      sqlite3_result_null(ctx);
    } else {
      Text(ctx, s);
    }
  };
  switch (col) {
    case kSeq: sqlite3_result_int64(ctx, static_cast<sqlite3_int64>(r.seq.value)); break;
    case kTime:
      if (e.time.ns == 0) {
        sqlite3_result_null(ctx);
      } else {
        sqlite3_result_int64(ctx, e.time.ns);
      }
      break;
    case kIngestTime: sqlite3_result_int64(ctx, r.ingest_time.ns); break;
    case kId: optional_text(e.id); break;
    case kSubject: optional_text(e.subject); break;
    case kType: optional_text(e.type); break;
    case kSource: optional_text(e.source); break;
    case kContentType: optional_text(e.datacontenttype); break;
    case kHeaders: {
      rapidjson::StringBuffer sb;
      rapidjson::Writer<rapidjson::StringBuffer> w(sb);
      w.StartObject();
      for (const auto& [k, v] : e.headers) {
        w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
        w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
      }
      w.EndObject();
      sqlite3_result_text(ctx, sb.GetString(), static_cast<int>(sb.GetSize()), SQLITE_TRANSIENT);
      break;
    }
    case kPayload:
      if (IsUtf8(e.payload, false)) {
        Text(ctx, e.payload);
      } else {
        sqlite3_result_blob(ctx, e.payload.data(), static_cast<int>(e.payload.size()), SQLITE_TRANSIENT);
      }
      break;
    default: sqlite3_result_null(ctx);
  }
  return SQLITE_OK;
}

int Rowid(sqlite3_vtab_cursor* cur, sqlite3_int64* rowid) {
  auto* c = reinterpret_cast<Cursor*>(cur);
  *rowid = static_cast<sqlite3_int64>(c->chunk[c->at].seq.value);
  return SQLITE_OK;
}

sqlite3_module MakeModule() {
  sqlite3_module m{};
  m.iVersion = 1;
  m.xCreate = Connect;
  m.xConnect = Connect;
  m.xBestIndex = BestIndex;
  m.xDisconnect = Disconnect;
  m.xDestroy = Disconnect;
  m.xOpen = Open;
  m.xClose = Close;
  m.xFilter = Filter;
  m.xNext = Next;
  m.xEof = Eof;
  m.xColumn = ColumnValue;
  m.xRowid = Rowid;
  return m;
}

// rfc3339(ns) -> text; ns('2024-05-01T10:00:00Z') -> integer; ago('1h') -> now - 1 h in ns.
void FnRfc3339(sqlite3_context* ctx, int, sqlite3_value** argv) {
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) return sqlite3_result_null(ctx);
  Text(ctx, FormatRfc3339(TimeNs{sqlite3_value_int64(argv[0])}));
}
void FnNs(sqlite3_context* ctx, int, sqlite3_value** argv) {
  const char* s = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
  auto t = ParseRfc3339(s == nullptr ? "" : s);
  if (!t) return sqlite3_result_error(ctx, t.error().message.c_str(), -1);
  sqlite3_result_int64(ctx, t->ns);
}
void FnAgo(sqlite3_context* ctx, int, sqlite3_value** argv) {
  const char* s = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
  auto d = ParseDuration(s == nullptr ? "" : s);
  if (!d) return sqlite3_result_error(ctx, ("ago: " + d.error().message).c_str(), -1);
  const auto* clock = static_cast<const Clock*>(sqlite3_user_data(ctx));
  sqlite3_result_int64(ctx, clock->Now().ns - d->count());
}

// Only reading: no ATTACH (a file database could be written), no writes, no PRAGMA but the harmless reads.
int Authorize(void*, int action, const char*, const char*, const char*, const char*) {
  switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_FUNCTION:
    case SQLITE_RECURSIVE:
      return SQLITE_OK;
    default:
      return SQLITE_DENY;
  }
}

struct Deadline {
  const Clock* clock;
  std::chrono::steady_clock::time_point until;
};
int Progress(void* p) {
  auto* d = static_cast<Deadline*>(p);
  return d->clock->Steady() >= d->until ? 1 : 0;
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + "\"";
}

// A cell as text: NULL as "NULL" in a table, empty in CSV; a blob as \xNN escapes.
std::string CellText(sqlite3_stmt* st, int i, bool* is_null) {
  *is_null = sqlite3_column_type(st, i) == SQLITE_NULL;
  if (*is_null) return {};
  if (sqlite3_column_type(st, i) == SQLITE_BLOB) {
    const auto* b = static_cast<const unsigned char*>(sqlite3_column_blob(st, i));
    int n = sqlite3_column_bytes(st, i);
    std::string out;
    static constexpr char kHex[] = "0123456789abcdef";
    for (int k = 0; k < n; ++k) {
      out += "\\x";
      out += kHex[b[k] >> 4];
      out += kHex[b[k] & 15];
    }
    return out;
  }
  const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
  return std::string(t, static_cast<size_t>(sqlite3_column_bytes(st, i)));
}

}  // namespace

int RunSql(EventLog& log, const SqlOptions& o, const CtlEnv& env, std::ostream& out, std::ostream& err) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY, nullptr) != SQLITE_OK) {
    err << "ferryctl: sqlite: " << sqlite3_errmsg(db) << "\n";
    sqlite3_close(db);
    return kExitRuntime;
  }
  struct Closer {
    sqlite3* db;
    ~Closer() { sqlite3_close(db); }
  } closer{db};
  static const sqlite3_module kModule = MakeModule();
  ModuleAux aux;
  aux.log = &log;
  sqlite3_create_module(db, "ferry_stream", &kModule, &aux);
  struct Report {
    const ModuleAux& aux;
    uint64_t* out;
    ~Report() {
      if (out != nullptr) *out = aux.records_read;
    }
  } report{aux, o.records_read};
  const void* clock = env.clock;
  sqlite3_create_function(db, "rfc3339", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr, FnRfc3339, nullptr, nullptr);
  sqlite3_create_function(db, "ns", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr, FnNs, nullptr, nullptr);
  sqlite3_create_function(db, "ago", 1, SQLITE_UTF8, const_cast<void*>(clock), FnAgo, nullptr, nullptr);
  for (const std::string& stream : log.ListStreams()) {
    std::string sql = "CREATE VIRTUAL TABLE temp.\"" + stream + "\" USING ferry_stream('" + stream + "')";
    char* msg = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
      err << "ferryctl: stream " << stream << ": " << (msg ? msg : "?") << "\n";
      sqlite3_free(msg);
      return kExitRuntime;
    }
  }
  sqlite3_set_authorizer(db, Authorize, nullptr);
  Deadline deadline{env.clock, env.clock->Steady() + o.timeout};
  sqlite3_progress_handler(db, 1000, Progress, &deadline);

  sqlite3_stmt* st = nullptr;
  const char* tail = nullptr;
  if (sqlite3_prepare_v2(db, o.query.c_str(), static_cast<int>(o.query.size()), &st, &tail) != SQLITE_OK) {
    err << "ferryctl: sql: " << sqlite3_errmsg(db) << "\n";
    return kExitUsage;
  }
  struct Finalizer {
    sqlite3_stmt* st;
    ~Finalizer() { sqlite3_finalize(st); }
  } finalizer{st};
  if (st == nullptr) {
    err << "ferryctl: sql: no statement\n";
    return kExitUsage;
  }
  if (tail != nullptr && std::string(tail).find_first_not_of(" \t\r\n;") != std::string::npos) {
    err << "ferryctl: sql: one statement at a time\n";
    return kExitUsage;
  }
  const int ncol = sqlite3_column_count(st);
  std::vector<std::string> names;
  for (int i = 0; i < ncol; ++i) names.emplace_back(sqlite3_column_name(st, i));
  std::vector<std::vector<std::string>> rows;  // kTable only: widths need every row
  std::vector<size_t> width(static_cast<size_t>(ncol));
  for (int i = 0; i < ncol; ++i) width[static_cast<size_t>(i)] = names[static_cast<size_t>(i)].size();
  if (o.format == SqlOptions::Format::kCsv) {
    for (int i = 0; i < ncol; ++i) out << (i ? "," : "") << CsvField(names[static_cast<size_t>(i)]);
    out << "\r\n";
  }
  uint64_t count = 0;
  bool cut = false;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (count == o.max_rows) {
      cut = true;
      break;
    }
    ++count;
    bool null = false;
    if (o.format == SqlOptions::Format::kJson) {
      rapidjson::StringBuffer sb;
      rapidjson::Writer<rapidjson::StringBuffer> w(sb);
      w.StartObject();
      for (int i = 0; i < ncol; ++i) {
        const std::string& n = names[static_cast<size_t>(i)];
        w.Key(n.data(), static_cast<rapidjson::SizeType>(n.size()));
        switch (sqlite3_column_type(st, i)) {
          case SQLITE_NULL: w.Null(); break;
          case SQLITE_INTEGER: w.Int64(sqlite3_column_int64(st, i)); break;
          case SQLITE_FLOAT: w.Double(sqlite3_column_double(st, i)); break;
          default: {
            std::string s = CellText(st, i, &null);
            if (!IsUtf8(s)) s = LegalUnicodeString(s);
            w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
          }
        }
      }
      w.EndObject();
      out << sb.GetString() << "\n";
    } else if (o.format == SqlOptions::Format::kCsv) {
      for (int i = 0; i < ncol; ++i) out << (i ? "," : "") << CsvField(CellText(st, i, &null));
      out << "\r\n";
    } else {
      std::vector<std::string> row;
      for (int i = 0; i < ncol; ++i) {
        std::string s = CellText(st, i, &null);
        if (null) s = "NULL";
        for (char& ch : s)
          if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
        if (s.size() > o.max_width) s = s.substr(0, o.max_width - 3) + "...";
        width[static_cast<size_t>(i)] = std::max(width[static_cast<size_t>(i)], s.size());
        row.push_back(std::move(s));
      }
      rows.push_back(std::move(row));
    }
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    const bool timed_out = rc == SQLITE_INTERRUPT;
    err << "ferryctl: sql: "
        << (timed_out ? "stopped at the time limit (--timeout); narrow the query, e.g. WHERE ingest_time > ago('1h')"
                      : sqlite3_errmsg(db))
        << "\n";
    return kExitRuntime;
  }
  if (o.format == SqlOptions::Format::kTable) {
    auto line = [&](const std::vector<std::string>& cells) {
      for (size_t i = 0; i < cells.size(); ++i) {
        out << cells[i];
        if (i + 1 < cells.size()) out << std::string(width[i] - cells[i].size() + 2, ' ');
      }
      out << "\n";
    };
    line(names);
    for (const auto& r : rows) line(r);
    out << "(" << count << (count == 1 ? " row" : " rows") << ")\n";
  }
  if (cut) err << "ferryctl: sql: stopped after " << o.max_rows << " rows (--max-rows)\n";
  return kExitOk;
}

}  // namespace ferry::ctl
