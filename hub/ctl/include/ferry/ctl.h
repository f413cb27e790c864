// ferry/ctl.h: ferryctl, the operator's view of a gateway's event log (docs/ferryctl.md).
//
//   status   env usage, per-stream counts/ages/evictions, cursors, uplink backlogs   (read-only open)
//   tail     records of one stream, from a seq or a time, optionally following      (read-only open)
//   replay   asks ferryd to rewind an uplink's cursor on a stream                    (one state key write)
//   poisoned events uplinks set aside (refused for good by the centre or the client)  (read-only open)
//   sql      SQLite over the log, a read-only virtual table per stream (sql.cc)         (read-only open)
//   pipelines each pipeline's cursors, lag and failures (ctl_pipelines.cc)              (read-only open)
//
// The commands live here, writing to std::ostream, so tests call them on a log in a temp dir; the main in
// hub/ctl/ferryctl_main.cc only parses the command line and opens the log.
//
// Every read runs in a short read transaction (an iterator is reopened every kScanChunk records), so a
// ferryctl that blocks on a slow terminal never pins the writer's old pages for long.
//
// Replay never writes the cursor itself: the running ferryd keeps each uplink position in memory and would
// overwrite it. It writes the request key ReplayRequestKey(uplink, stream) = decimal target seq instead; the
// uplink applies it and deletes the key in the transaction that moves its cursor (ferry/uplink_mqtt.h).
//
// Threads: each Run* call is synchronous and uses only the objects passed in; calls on different logs may run
// concurrently.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/clock.h"
#include "ferry/config.h"
#include "ferry/error.h"
#include "ferry/event_log.h"
#include "ferry/types.h"

namespace ferry::ctl {

// Process exit codes of ferryctl, returned by every Run* function.
enum ExitCode : int {
  kExitOk = 0,
  kExitRuntime = 1,  // no log at the path, unknown stream or uplink, corrupt record, I/O error
  kExitUsage = 2,    // malformed arguments (e.g. a --from that is neither a seq nor an RFC 3339 time)
};

inline constexpr const char* kDefaultConfigPath = "/etc/ferry/ferry.toml";
inline constexpr size_t kScanChunk = 1000;  // records read per read transaction

// Sleeps up to `d` between polls. Returns false to stop (SIGINT). ferryctl's main sleeps in poll(2); tests
// pass a function that advances a ManualClock and appends to (or answers on) the log instead of sleeping.
using PollWait = std::function<bool(std::chrono::milliseconds d)>;

struct CtlEnv {
  const Clock* clock = &SystemClock::Instance();  // Now() for ages, Steady() for --max-wait / --wait deadlines
  PollWait wait;                                  // REQUIRES: set for tail --follow and replay
};

// Where the log is and, when a config was read, which uplinks exist.
struct Target {
  std::string log_path;
  std::optional<Config> config;
};

// `log_path` non-empty (--log) wins over storage.path; the config is then read only if `config_given` (-c was
// on the command line). Errors: LoadConfigFile's (NotFound, IoError, InvalidArgument naming file:line).
Result<Target> ResolveTarget(const std::string& config_path, bool config_given, const std::string& log_path);

// Opens an existing log read-only; works beside a running ferryd. Errors: NotFound "no event log at PATH",
// Corruption, IoError (EventLog::Open).
Result<std::unique_ptr<EventLog>> OpenReadOnly(const std::string& path);
// Opens an existing log read-write with the map size the log already has (a smaller one would shrink the
// map the next commit records). Never creates a log. Errors: as OpenReadOnly.
Result<std::unique_ptr<EventLog>> OpenReadWrite(const std::string& path);

// A --from argument: all digits = a seq, otherwise an RFC 3339 time. Exactly one member is set.
struct Position {
  std::optional<Seq> seq;
  std::optional<TimeNs> time;
};
// Errors: InvalidArgument naming the text.
Result<Position> ParsePosition(std::string_view text);
// The first seq at `pos`: the seq itself, or that of the first record with ingest time >= pos.time; the
// stream's next seq when no record qualifies. Errors: NotFound (stream), Corruption, IoError.
Result<Seq> ResolvePosition(EventLog& log, std::string_view stream, const Position& pos);

// ---- status --------------------------------------------------------------------------------------------------

struct StatusOptions {
  bool json = false;
};

// Env, streams, cursors and (with a config) uplink backlogs. REQUIRES: `config` may be null.
int RunStatus(EventLog& log, const Config* config, const StatusOptions& options, const CtlEnv& env,
              std::ostream& out, std::ostream& err);

// What one uplink has not yet sent of one stream it forwards (status's UPLINK rows; the console's charts).
struct UplinkBacklog {
  std::string uplink;
  std::string stream;
  bool missing = false;       // the config names a stream the log does not have (yet)
  std::optional<Seq> cursor;  // nullopt: never forwarded (the uplink starts at the first record)
  uint64_t backlog = 0;
  std::optional<TimeNs> oldest_unsent;  // nullopt: nothing unsent (or its record could not be read)
};
// One row per uplink of `config` and stream it forwards, in config order. `streams`: GetStreamStats of the
// log's streams (with their cursors). Reads the oldest unsent record's ingest time in a short read transaction
// per row with a backlog behind a cursor; a read that fails leaves `oldest_unsent` empty. No other errors.
std::vector<UplinkBacklog> UplinkBacklogs(EventLog& log, const Config& config, const std::vector<StreamStats>& streams);

// ---- poisoned ------------------------------------------------------------------------------------------------

struct PoisonedOptions {
  std::string uplink;  // empty: every uplink
  bool json = false;   // one JSON object per line: uplink, stream, first_seq, last_seq, events, reason
};

// The units uplinks set aside (poison isolation, ferry/uplink_engine.h): uplink, stream, seq range, reason, as
// recorded under PoisonedStateKey. The records stay in the log until retention. Exit kExitOk also when none.
int RunPoisoned(EventLog& log, const PoisonedOptions& options, std::ostream& out, std::ostream& err);

// ---- pipelines -----------------------------------------------------------------------------------------------

struct PipelinesOptions {
  bool json = false;  // one JSON object per pipeline and input: pipeline, input, cursor, lag, output, failed
};

// Each [[pipeline]] of `config`, per input: its cursor (the next seq it reads), the records behind it (lag),
// and the events it failed on, by step, counted from the headers of its dead_letter stream (scanned in short
// read transactions; events retention already removed are not counted). Exit kExitOk.
int RunPipelines(EventLog& log, const Config& config, const PipelinesOptions& options, std::ostream& out,
                 std::ostream& err);

// ---- pipeline reset ------------------------------------------------------------------------------------------

struct PipelineResetOptions {
  std::string pipeline;
  std::string from;  // a seq (one-input pipelines only) or an RFC 3339 time (ingest time), per input
};

// Moves pipeline `pipeline`'s cursor on each input to `from` and deletes its window state (every record under
// PipelineWindowStatePrefix and the meta record), in ONE write transaction (the state keys are listed while it
// holds LMDB's write lock, so no runner commit slips in between). Safe beside a running ferryd: its runner's
// next commit finds the cursor or the window meta record changed, writes nothing and reloads both.
// Reprocessed records give the same output ids as before; a window that straddles the point is rebuilt from
// the records after it only (docs/processing.md). Errors (kExitRuntime): unknown pipeline, a seq with several
// inputs, a bad --from (kExitUsage), the write.
int RunPipelineReset(EventLog& log, const Config& config, const PipelineResetOptions& options, std::ostream& out,
                     std::ostream& err);

// ---- table ---------------------------------------------------------------------------------------------------

struct TableOptions {
  std::string table;   // a stream of kind table
  std::string key;     // empty: every row
  bool json = false;   // one JSON object per row: key, seq, time, value
  size_t width = 80;   // table form: cut longer values
};

// A table stream's current rows (the latest record of each key, deletions left out), or one key's row through
// the table's key index; then, for each [[downlink]] of `config` (may be null) writing it, its position per
// partition as stored with the rows. Exit kExitOk; kExitRuntime when the stream is unknown or not a table, or
// when KEY has no row (a deleted key included: "deleted" is said).
int RunTable(EventLog& log, const Config* config, const TableOptions& options, std::ostream& out, std::ostream& err);

// ---- downlink reset ------------------------------------------------------------------------------------------

struct DownlinkResetOptions {
  std::string downlink;
};

// Asks ferryd to fetch downlink `downlink`'s whole table again (Kafka: from the beginning of the topic; MQTT: a
// full sync) and then delete the rows the source no longer has, by writing its reset request key
// (DownlinkResetKey). Safe beside a running ferryd, which picks it up within a second; a stopped one at its next
// start. Errors (kExitRuntime): unknown downlink, the write.
int RunDownlinkReset(EventLog& log, const Config& config, const DownlinkResetOptions& options, std::ostream& out,
                     std::ostream& err);

// ---- sql -----------------------------------------------------------------------------------------------------

struct SqlOptions {
  std::string query;  // one statement
  enum class Format { kTable, kCsv, kJson } format = Format::kTable;
  uint64_t max_rows = 10'000;                    // rows printed; more are cut, with a note on err
  size_t max_width = 60;                         // table: longer cells are cut
  std::chrono::milliseconds timeout{30'000};     // the query stops here (Steady clock of env)
  uint64_t* records_read = nullptr;              // when set: how many records the query copied out of the log
};

// Runs one SELECT over the log's streams (a table per stream: seq, time, ingest_time (ns since 1970), id,
// subject, type, source, content_type, headers (JSON), payload) with the functions rfc3339(ns), ns(text) and
// ago(duration). Exit kExitUsage for SQL that does not prepare (the error names it), kExitRuntime for a
// failure while running (time limit, I/O).
int RunSql(EventLog& log, const SqlOptions& options, const CtlEnv& env, std::ostream& out, std::ostream& err);

// ---- tail ----------------------------------------------------------------------------------------------------

struct TailOptions {
  std::string stream;
  std::string from;                  // empty: the last `limit` records
  std::optional<uint64_t> limit;     // -n: the first batch; default 10 without --from, all with it
  bool json = false;                 // CloudEvents JSON, one object per line, as an uplink sends it
  std::string gateway;               // json: the gateway id that names events (ids, source); required then
  bool full = false;                 // do not truncate payloads
  size_t payload_width = 80;         // printed payload bytes (after escaping) unless full
  bool follow = false;
  std::chrono::milliseconds poll_interval{200};
  std::optional<std::chrono::nanoseconds> max_wait;  // --follow: stop after this long (Steady clock)
  std::optional<uint64_t> max_count;                 // stop after printing this many records in all
};

// Prints records to `out`; a damaged record gives a line on `err` naming its seq, and the tail goes on after
// it (the exit code is then kExitRuntime). --follow polls (one short read transaction per poll) until
// env.wait returns false, max_wait passes or max_count records were printed.
int RunTail(EventLog& log, const TailOptions& options, const CtlEnv& env, std::ostream& out, std::ostream& err);

// ---- replay --------------------------------------------------------------------------------------------------

struct ReplayOptions {
  std::string uplink;
  std::string stream;
  std::string from;
  bool yes = false;                               // skip the confirmation read from `in`
  std::chrono::nanoseconds wait{std::chrono::seconds(5)};  // how long to wait for ferryd to apply it
  std::chrono::milliseconds poll_interval{100};
};

struct ReplayPlan {
  std::string key;              // ReplayRequestKey(uplink, stream)
  Seq requested;                // what --from resolved to
  Seq target;                   // after clamping to the stream's first seq
  bool clamped = false;
  std::optional<Seq> cursor;    // the uplink's persisted cursor; nullopt: the stream was never forwarded
  uint64_t resend = 0;          // records in [target, cursor) that will be sent again
  std::optional<std::string> pending;  // a request already waiting under `key`, to be replaced
};

// Validates and resolves a replay without writing. Errors: NotFound (uplink not in the config, stream not in
// the log), InvalidArgument (malformed --from, the uplink does not forward the stream, the target is past the
// cursor: a replay only rewinds), Corruption, IoError.
Result<ReplayPlan> PlanReplay(EventLog& log, const Config& config, const ReplayOptions& options);

// Plans, prints the plan, asks for confirmation on `in` unless options.yes, writes the request in one write
// transaction, then polls until ferryd deleted the key ("applied") or options.wait passed ("queued").
// REQUIRES: `log` opened read-write.
int RunReplay(EventLog& log, const Config& config, const ReplayOptions& options, const CtlEnv& env,
              std::istream& in, std::ostream& out, std::ostream& err);

// ---- formatting helpers (exposed for tests) ------------------------------------------------------------------

// "1.5 KiB", "12.0 MiB"; below 1 KiB: "512 B".
std::string FormatBytes(uint64_t bytes);
// Whole seconds, two largest units: "0s", "42s", "5m12s", "3h2m", "4d1h"; negative ages print as "0s".
std::string FormatAge(std::chrono::nanoseconds age);
// Printable ASCII as is; \n \r \t \\ escaped; other bytes as \xNN. Longer than `width`: cut, then
// "... (N bytes)". width == 0: no limit.
std::string PrintablePayload(std::string_view payload, size_t width);

}  // namespace ferry::ctl
