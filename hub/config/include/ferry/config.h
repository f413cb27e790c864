// ferry/config.h: ferryd's configuration, one TOML file.
//
// Every key is declared once, in the table returned by ConfigKeys() (config_keys.cc): its dotted path, type,
// default, help text and whether SIGHUP applies it. The parser, the defaults, docs/config.md
// (RenderConfigDocs) and ReloadDiff are all driven by that table; nothing else lists keys.
//
// Value syntax:
//   duration  a string of <integer><unit> parts, units ns us ms s m h d: "10ms", "30s", "1h30m", "7d"; "0" is 0.
//   size      an integer (bytes) or a string <integer>[unit], units B kB MB GB TB (x1000) KiB MiB GiB TiB
//             (x1024): "512MiB", "64kB", "0".
//   enum      a string, one of the allowed values.
//   list      an array of strings.
//
// Repeated sections are TOML arrays of tables: [[route]], [[stream]], [[uplink]]. Keys with a dot in their
// declared name ("tls.ca_file", "commit.max_events") may be written as dotted keys or as a sub-table
// ([ingest.tls]).
//
// Thread-safety: all functions are pure and may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/error.h"
#include "ferry/types.h"  // StreamKind, FullPolicy: the storage's own enums, so no translation is needed
#include "ferry/types.h"  // StreamKind, FullPolicy: one definition, shared with storage

namespace ferry {

using Duration = std::chrono::nanoseconds;

enum class Durability { kBatch, kSync };               // "batch" | "sync"
enum class IngestMode { kSubscribe, kListen, kBoth };  // "subscribe" | "listen" | "both"
// StreamKind ("log" | "table") and FullPolicy ("drop_oldest" | "reject_new") are storage's, from ferry/types.h.
enum class UplinkType { kMqtt, kKafka };                // "mqtt" | "kafka"
// How a route reads a producer's time: "rfc3339" | "unix_s" | "unix_ms" | "unix_us" | "unix_ns".
enum class TimeFormat { kRfc3339, kUnixS, kUnixMs, kUnixUs, kUnixNs };
enum class UplinkMode { kPerEvent, kBatched };          // "per_event" | "batched"
enum class DrainOrder { kOldestFirst, kNewestFirst };   // "oldest_first" | "newest_first"
enum class ConfigLogLevel { kDebug, kInfo, kWarn, kError };  // "debug" | "info" | "warn" | "error"

struct TlsConfig {
  bool enabled = false;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool verify = true;
};

struct BackoffConfig {
  Duration min{0};
  Duration max{0};
};

struct GatewayConfig {
  std::string id;  // empty: ferryd uses the host name
};

struct GroupCommitConfig {
  int64_t max_events = 0;
  uint64_t max_bytes = 0;
  Duration max_delay{0};
};

struct StorageConfig {
  std::string path;
  uint64_t map_size = 0;
  bool sync = true;
  GroupCommitConfig commit;
};

// [ingest] listen.*: ferryd as the devices' MQTT endpoint (docs/ingest-listener.md).
struct ListenConfig {
  std::string address;         // host:port
  int64_t max_connections = 0;
  int64_t receive_maximum = 0;  // per connection: unacknowledged QoS 1 messages (5.0 Receive Maximum / window)
  uint64_t max_packet_size = 0;
  Duration connect_timeout{0};
  Duration max_keepalive{0};
  std::string password_file;
  bool topic_must_match_client = false;
  // TLS for device connections (mbedTLS): the server's chain and key; client certificates checked against
  // ca_file when set, required with require_client_cert.
  bool tls_enabled = false;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_ca_file;
  bool tls_require_client_cert = false;
};

struct IngestConfig {
  IngestMode mode = IngestMode::kSubscribe;
  ListenConfig listen;
  std::string address;
  std::string client_id;  // empty: "ferry-<gateway id>"
  std::string username;
  std::string password;
  TlsConfig tls;
  Duration session_expiry{0};
  Duration keepalive{0};
  int64_t receive_maximum = 0;
  Durability durability = Durability::kBatch;
  uint64_t max_payload = 0;
  int64_t max_json_depth = 0;
  Duration dedupe_window{0};
  int64_t dedupe_capacity = 0;
  BackoffConfig backoff;
  Duration max_future_skew{0};  // a producer time further ahead of the gateway clock is replaced
  std::string time_floor;        // RFC 3339: a producer time before it is replaced (a device without a clock)
};

struct MetricsConfig {
  bool enabled = true;
  std::string listen;  // "host:port"
};

// The web console (docs/console.md): off by default, loopback by default, a bearer token required elsewhere.
struct ConsoleConfig {
  bool enabled = false;
  std::string listen;                 // "host:port"
  std::string token_file;             // empty: no token (loopback only)
  int64_t max_connections = 8;        // live tails hold one each
  int64_t sql_max_rows = 1000;
  Duration sql_timeout{};
  std::string tls_cert_file;  // PEM chain; with tls_key_file: HTTPS (mbedTLS) instead of HTTP
  std::string tls_key_file;
  std::string tls_ca_file;    // PEM CAs: when set, a client certificate signed by one is required
};

// True when the host of a "host:port" listen address is a loopback address (127.0.0.0/8, ::1, localhost).
bool IsLoopbackListen(const std::string& listen);

struct LogConfig {
  ConfigLogLevel level = ConfigLogLevel::kInfo;
};

// [[route]]: an MQTT topic filter with {name} captures, mapped to a stream.
struct RouteConfig {
  std::string filter;           // "telemetry/{device}/#"
  std::string stream;           // template: "telemetry" or "{kind}"
  std::string subject;          // template: "{device}"; empty: no subject
  std::string content_type;     // declared content type; JSON types are checked
  std::string dead_letter;      // stream for rejected messages; empty: rejected messages are dropped
  std::string id_json_field;    // JSON field holding a device event id; empty: none
  std::string id_user_property; // MQTT v5 user property holding a device event id; empty: none
  std::string time_json_field;    // top-level JSON field holding the producer's time; empty: none
  std::string time_user_property; // MQTT v5 user property holding the producer's time (checked first); empty: none
  TimeFormat time_format = TimeFormat::kRfc3339;
};

// [[stream]]
struct StreamConfig {
  std::string name;
  StreamKind kind = StreamKind::kLog;
  Duration max_age{0};    // 0: no age limit
  uint64_t max_bytes = 0; // 0: no byte limit
  Duration tombstone_grace{0};
  FullPolicy full_policy = FullPolicy::kDropOldest;
  int64_t priority = 0;
};

struct UplinkBatchConfig {
  int64_t max_events = 0;
  uint64_t max_bytes = 0;
  Duration max_delay{0};
};

// [[uplink]]
// [[uplink]] kafka.*: the Kafka producer (hub/uplink/src/kafka_transport.h). Enum values in the order of the
// declaration table's `allowed` strings.
enum class KafkaSecurityProtocol { kAuto, kPlaintext, kSsl, kSaslPlaintext, kSaslSsl };
enum class KafkaSaslMechanism { kPlain, kScramSha256, kScramSha512 };
enum class KafkaCompression { kZstd, kLz4, kNone };
struct UplinkKafkaConfig {
  KafkaSecurityProtocol security_protocol = KafkaSecurityProtocol::kAuto;
  KafkaSaslMechanism sasl_mechanism = KafkaSaslMechanism::kPlain;
  KafkaCompression compression = KafkaCompression::kZstd;
  Duration linger{0};
  int64_t batch_messages = 0;
  Duration message_timeout{0};
  std::vector<std::string> properties;  // further librdkafka properties, "name=value"
};

struct UplinkConfig {
  std::string name;
  UplinkType type = UplinkType::kMqtt;
  std::string address;
  std::string client_id;
  std::string username;
  std::string password;
  TlsConfig tls;
  UplinkMode mode = UplinkMode::kPerEvent;
  std::string topic;                  // template over {gateway} {stream} {subject}
  bool retain = false;                // mqtt per_event: publish retained (a table pushed to devices)
  std::vector<std::string> streams;   // empty: every declared stream
  int64_t inflight = 0;
  UplinkBatchConfig batch;
  int64_t compression_level = 0;
  std::string hmac_key_file;          // empty: batches carry a plain SHA-256 digest
  DrainOrder drain_order = DrainOrder::kOldestFirst;
  uint64_t bytes_per_sec = 0;         // 0: no cap
  BackoffConfig backoff;
  UplinkKafkaConfig kafka;            // type = kafka only
};

// [[downlink]] (docs/replication.md): a central table mirrored into a local table stream.
// kafka: a topic's records (key -> subject, value -> payload, a null value -> tombstone), the consumer's offsets
// kept in the gateway's log in the same transaction as the records.
// mqtt: the retained messages under a topic filter (the key: the topic's levels from the filter's first wildcard
// on; an empty payload -> tombstone), through a persistent session that queues changes while the link is down.
enum class DownlinkType { kKafka, kMqtt };  // "kafka", "mqtt"
struct DownlinkConfig {
  std::string name;
  DownlinkType type = DownlinkType::kKafka;
  std::string address;               // kafka: bootstrap servers; mqtt: broker URI
  std::string topic;                 // kafka: the (compacted) topic holding the table; mqtt: a topic filter
  std::string table;                 // a declared [[stream]] with kind = "table"
  std::string client_id;
  std::string username;
  std::string password;
  TlsConfig tls;
  KafkaSecurityProtocol security_protocol = KafkaSecurityProtocol::kAuto;
  KafkaSaslMechanism sasl_mechanism = KafkaSaslMechanism::kPlain;
  std::vector<std::string> properties;  // further librdkafka consumer properties, "name=value"
  int64_t batch = 0;                 // most records per transaction
  uint64_t max_row_bytes = 0;        // larger rows are skipped and counted
  std::chrono::nanoseconds session_expiry{0};  // mqtt: how long the broker keeps the session while ferryd is away
  std::chrono::nanoseconds sync_quiet{0};      // mqtt: a full sync ends this long after the last retained message
  BackoffConfig backoff;
};

// [[pipeline]] (docs/processing.md): input streams -> steps -> an output stream, exactly once locally.
// Step kinds, in the order of the declaration table's `allowed` string.
enum class PipelineStepType {
  kFilter, kSet, kDrop, kRename, kProject, kUnits, kSchemaUpgrade, kRoute, kScript, kWindow, kThreshold, kLookup
};
// A lookup step's answer when the table has no row for the key: "dead_letter" | "default" | "keep".
enum class LookupMissing { kDeadLetter, kDefault, kKeep };
// A window step's kind: "tumbling" | "hopping" | "sliding" | "session".
enum class WindowType { kTumbling, kHopping, kSliding, kSession };

// [[pipeline.step.upgrade]]: how an event of schema version `version` becomes version + 1.
struct SchemaUpgradeConfig {
  int64_t version = 0;
  std::vector<std::string> rename;    // "old=new"
  std::vector<std::string> defaults;  // "field=<Lua expression>", set when the field is absent
  std::vector<std::string> drop;      // fields removed
};

// [[pipeline.step]]: which keys apply depends on `type` (CrossCheck says which are missing or stray).
struct PipelineStepConfig {
  PipelineStepType type = PipelineStepType::kFilter;
  std::string name;                  // for messages and metrics; empty: "<index>:<type>"
  std::string where;                 // filter: a Lua expression; the event is kept when it is true
  std::string field;                 // set, units: the field; schema_upgrade: the version field
  std::string value;                 // set: a Lua expression
  std::vector<std::string> fields;   // drop, project
  std::string from;                  // rename: old name; units: the field's unit
  std::string to;                    // rename: new name; units: the unit wanted
  std::string by;                    // route: a Lua expression naming one of `outputs`
  std::vector<std::string> outputs;  // route: the streams it may name
  std::string script;                // script: Lua source defining process(event)
  int64_t missing_version = 1;       // schema_upgrade: the version of an event without the field
  std::vector<SchemaUpgradeConfig> upgrades;
  // window (docs/processing.md "Windows"): `field` is the value aggregated.
  WindowType window = WindowType::kTumbling;
  std::string key;                      // the grouping field; empty: the event's subject
  Duration size{0};                     // tumbling, hopping, sliding
  Duration hop{0};                      // hopping
  Duration gap{0};                      // session
  std::vector<std::string> aggregates;  // count sum min max avg first last pNN
  Duration allowed_lateness{0};
  Duration idle_timeout{0};             // 0: off
  std::string late_output;              // late events; empty: counted and dropped
  int64_t early_every = 0;              // 0: final results only
  int64_t max_keys = 0;
  int64_t max_windows = 0;
  // threshold: `where` on a window result; alerts go to `output`.
  std::string output;
  // lookup: the row of `table` (a table stream) whose key is the event's `field` goes into `into`; without a row,
  // `missing` says what happens (default: the value of the `value` expression).
  std::string table;
  std::string into;
  LookupMissing missing = LookupMissing::kDeadLetter;
};

struct PipelineConfig {
  std::string name;
  std::vector<std::string> input;  // streams read, each from its own cursor "pipeline.<name>"
  std::string output;              // where processed events go (unless a route step picks another)
  std::string dead_letter;         // failed events with the reason; empty: counted and dropped
  int64_t batch = 0;               // input records per transaction
  int64_t max_instructions = 0;    // Lua, per call
  uint64_t max_memory = 0;         // Lua, the pipeline's whole state
  std::vector<PipelineStepConfig> steps;
};

struct Config {
  std::string source_name;  // file name (or the name given to LoadConfigString)
  GatewayConfig gateway;
  StorageConfig storage;
  IngestConfig ingest;
  MetricsConfig metrics;
  ConsoleConfig console;
  LogConfig log;
  std::vector<RouteConfig> routes;
  std::vector<StreamConfig> streams;
  std::vector<UplinkConfig> uplinks;
  std::vector<PipelineConfig> pipelines;
  std::vector<DownlinkConfig> downlinks;

  const StreamConfig* FindStream(std::string_view name) const;
  const UplinkConfig* FindUplink(std::string_view name) const;
};

// Parses a TOML file. Errors (code kInvalidArgument, or kNotFound/kIoError when the file cannot be read)
// name "file:line:column" and the key, e.g.
//   "ferry.toml:12:1: stream[1].full_policy: \"drop\" is not one of drop_oldest, reject_new".
Result<Config> LoadConfigFile(const std::string& path);
// Parses TOML text; `name` stands for the file name in error messages.
Result<Config> LoadConfigString(std::string_view text, const std::string& name);

// ---- Checks against this machine (ferryd --check-config) ---------------------------------------------------

// One thing CheckConfigEnvironment found. key is the config path ("storage.path", "route[0].stream"), or the
// section ("stream") when something is missing altogether.
struct ConfigFinding {
  enum class Level { kError, kWarning, kNote } level;
  std::string key;
  std::string message;
};

// What parsing cannot see: storage.path exists and is a writable directory, or its parent is (ferryd creates
// only the last level; the nearest existing parent is named); the files a config names (TLS, password_file,
// hmac_key_file) are readable regular files; listen addresses resolve and do not share a port; broker hosts
// resolve (a warning only: DNS may be down at check time); at least one [[stream]] and one [[route]] (errors);
// no [[uplink]] (a warning); templated route streams and id fields, which only run time can check (notes).
// Errors make --check-config fail. No side effects: stat, access, open for reading, getaddrinfo; nothing is
// created or bound. Files are checked as the calling user, which may not be the one ferryd runs as.
// Thread-safety: any thread.
std::vector<ConfigFinding> CheckConfigEnvironment(const Config& config);
// "error: storage.path: /a/b does not exist, ..."
std::string FormatFinding(const ConfigFinding& finding);

// ---- The declaration table ----------------------------------------------------------------------------------

enum class KeyType { kString, kInt, kDuration, kSize, kBool, kEnum, kStringList };

// A parsed value, before it is stored in the struct. Which member is meaningful depends on the KeyType:
// kString -> s; kInt, kDuration (ns), kSize (bytes), kEnum (index into allowed) -> i; kBool -> b;
// kStringList -> list.
struct ConfigValue {
  int64_t i = 0;
  bool b = false;
  std::string s;
  std::vector<std::string> list;
};

struct ConfigKey {
  const char* section;       // "storage", or "stream" for [[stream]]
  const char* name;          // "commit.max_events": the path inside the section
  KeyType type;
  const char* default_text;  // as written in TOML (without quotes); nullptr: required, no default
  const char* help;
  bool reload;               // SIGHUP applies a change without a restart
  const char* allowed;       // kEnum: "batch|sync"; otherwise nullptr
  int64_t min;               // kInt/kDuration/kSize: inclusive range (ns, bytes)
  int64_t max;
  // Stores a value into the section object (GatewayConfig*, StreamConfig*, ...).
  void (*store)(void* section_obj, const ConfigValue& v);
  // Renders the stored value canonically (for ReloadDiff).
  std::string (*show)(const void* section_obj);
  // Optional extra check; returns an error message or "".
  std::string (*check)(const ConfigValue& v);
};

struct ConfigSection {
  const char* name;  // "storage" or "stream"; a nested repeated section: "pipeline.step"
  bool repeated;     // [[name]]
  const char* help;
};

const std::vector<ConfigSection>& ConfigSections();
const std::vector<ConfigKey>& ConfigKeys();
// "storage.commit.max_events", or "stream.max_age" for keys of a repeated section.
std::string KeyPath(const ConfigKey& key);
// "enum (batch, sync)", "duration", ...
std::string KeyTypeName(const ConfigKey& key);

// The reference table of docs/config.md, generated from ConfigKeys(): one markdown table per section.
std::string RenderConfigDocs();

// ---- Reload ------------------------------------------------------------------------------------------------

struct ReloadPlan {
  std::vector<std::string> reload;   // changed keys SIGHUP applies, e.g. "stream[telemetry].max_age"
  std::vector<std::string> restart;  // changed keys that need a restart, e.g. "storage.path", "stream[new]"
  bool needs_restart() const { return !restart.empty(); }
  bool empty() const { return reload.empty() && restart.empty(); }
};

// Streams and uplinks are matched by name, routes by position. An added or removed element is a restart.
ReloadPlan ReloadDiff(const Config& old_config, const Config& new_config);

// ---- Value syntax helpers (exposed for tests and other parsers) --------------------------------------------

Result<Duration> ParseDuration(std::string_view text);
Result<uint64_t> ParseSize(std::string_view text);
std::string FormatDuration(Duration d);  // "10ms", "7d", "1h30m"

// ---- Topic templates ---------------------------------------------------------------------------------------

// A topic filter with named single-level captures: "telemetry/{device}/#". `{name}` matches one level like
// `+` and captures it; `+` and `#` keep their MQTT meaning (no capture). The whole topic is available as
// {topic}.
using TopicCaptures = std::vector<std::pair<std::string, std::string>>;

class TopicPattern {
 public:
  // Errors (kInvalidArgument): empty filter, '#' not last, '{' inside a level, bad capture name, a capture
  // named twice.
  static Result<TopicPattern> Compile(std::string_view filter);

  // The MQTT subscription filter: captures replaced by '+': "telemetry/+/#".
  const std::string& subscription() const { return subscription_; }
  const std::vector<std::string>& capture_names() const { return capture_names_; }
  // Captures on a match (in capture order, then "topic"); nullopt when the topic does not match.
  std::optional<TopicCaptures> Match(std::string_view topic) const;

 private:
  struct Level {
    enum Kind { kLiteral, kPlus, kCapture, kHash } kind;
    std::string text;  // literal text or capture name
  };
  std::vector<Level> levels_;
  std::vector<std::string> capture_names_;
  std::string subscription_;
};

// Expands "{device}" placeholders in a template ("plant-{site}/{device}"); "{{" and "}}" are literal braces.
// Errors (kInvalidArgument): a placeholder not in `captures`, an unterminated brace.
Result<std::string> ExpandTemplate(std::string_view tmpl, const TopicCaptures& captures);
// The placeholder names a template uses (in order, without duplicates); an error for malformed braces.
Result<std::vector<std::string>> TemplatePlaceholders(std::string_view tmpl);

}  // namespace ferry
