// The one declaration of every configuration key (STYLE habit 10). The parser, the defaults, ReloadDiff and
// docs/config.md are all generated from this table: to add a key, add a line here and a field in config.h.
#include <cctype>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "ferry/config.h"
#include "ferry/rfc3339.h"

namespace ferry {
namespace {

// ---- Storing and showing values, by field type ----
void Assign(std::string& f, const ConfigValue& v) { f = v.s; }
void Assign(int64_t& f, const ConfigValue& v) { f = v.i; }
void Assign(uint64_t& f, const ConfigValue& v) { f = static_cast<uint64_t>(v.i); }
void Assign(bool& f, const ConfigValue& v) { f = v.b; }
void Assign(Duration& f, const ConfigValue& v) { f = Duration(v.i); }
void Assign(std::vector<std::string>& f, const ConfigValue& v) { f = v.list; }
template <typename E, typename = std::enable_if_t<std::is_enum_v<E>>>
void Assign(E& f, const ConfigValue& v) {
  f = static_cast<E>(v.i);  // enum values are declared in the order of `allowed`
}

std::string Show(const std::string& f) { return "\"" + f + "\""; }
std::string Show(int64_t f) { return std::to_string(f); }
std::string Show(uint64_t f) { return std::to_string(f); }
std::string Show(bool f) { return f ? "true" : "false"; }
std::string Show(Duration f) { return std::to_string(f.count()) + "ns"; }
std::string Show(const std::vector<std::string>& f) {
  std::string out = "[";
  for (const auto& s : f) out += Show(s) + ",";
  return out + "]";
}
template <typename E, typename = std::enable_if_t<std::is_enum_v<E>>>
std::string Show(E f) {
  return std::to_string(static_cast<int>(f));
}

// Expands to the `store` and `show` members for field `m` of section struct `S`.
#define FERRY_FIELD(S, m)                                                                \
  [](void* o, const ConfigValue& v) { Assign(static_cast<S*>(o)->m, v); },               \
      [](const void* o) -> std::string { return Show(static_cast<const S*>(o)->m); }

// The tls.* keys of a client connection to the centre (an [[uplink]], a [[downlink]]), in section struct `S`.
#define FERRY_CLIENT_TLS_KEYS(sec, S)                                                                           \
  k.push_back(Bool(sec, "tls.enabled", "false", kRestart, "Use TLS.", FERRY_FIELD(S, tls.enabled)));            \
  k.push_back(Str(sec, "tls.ca_file", "", kRestart, "PEM CA bundle; empty: the system store.",                 \
                  FERRY_FIELD(S, tls.ca_file)));                                                                 \
  k.push_back(Str(sec, "tls.cert_file", "", kRestart, "PEM client certificate; empty: none.",                   \
                  FERRY_FIELD(S, tls.cert_file)));                                                               \
  k.push_back(Str(sec, "tls.key_file", "", kRestart, "PEM client key; empty: none.", FERRY_FIELD(S, tls.key_file))); \
  k.push_back(Bool(sec, "tls.verify", "true", kRestart, "Verify the peer's certificate and host name.",          \
                   FERRY_FIELD(S, tls.verify)))

using Store = void (*)(void*, const ConfigValue&);
using ShowFn = std::string (*)(const void*);
using Check = std::string (*)(const ConfigValue&);

constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSec = 1'000 * kMs;
constexpr int64_t kDay = 86'400 * kSec;
constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = 1024 * kKiB;
constexpr int64_t kGiB = 1024 * kMiB;

ConfigKey Str(const char* sec, const char* name, const char* def, bool reload, const char* help, Store st,
              ShowFn sh, Check check = nullptr) {
  return ConfigKey{sec, name, KeyType::kString, def, help, reload, nullptr, 0, 0, st, sh, check};
}
ConfigKey Int(const char* sec, const char* name, const char* def, int64_t min, int64_t max, bool reload,
              const char* help, Store st, ShowFn sh) {
  return ConfigKey{sec, name, KeyType::kInt, def, help, reload, nullptr, min, max, st, sh, nullptr};
}
ConfigKey Dur(const char* sec, const char* name, const char* def, int64_t min, int64_t max, bool reload,
              const char* help, Store st, ShowFn sh) {
  return ConfigKey{sec, name, KeyType::kDuration, def, help, reload, nullptr, min, max, st, sh, nullptr};
}
ConfigKey Size(const char* sec, const char* name, const char* def, int64_t min, int64_t max, bool reload,
               const char* help, Store st, ShowFn sh) {
  return ConfigKey{sec, name, KeyType::kSize, def, help, reload, nullptr, min, max, st, sh, nullptr};
}
ConfigKey Bool(const char* sec, const char* name, const char* def, bool reload, const char* help, Store st,
               ShowFn sh) {
  return ConfigKey{sec, name, KeyType::kBool, def, help, reload, nullptr, 0, 0, st, sh, nullptr};
}
ConfigKey Enum(const char* sec, const char* name, const char* def, const char* allowed, bool reload,
               const char* help, Store st, ShowFn sh) {
  return ConfigKey{sec, name, KeyType::kEnum, def, help, reload, allowed, 0, 0, st, sh, nullptr};
}
ConfigKey List(const char* sec, const char* name, const char* def, bool reload, const char* help, Store st,
               ShowFn sh) {
  return ConfigKey{sec, name, KeyType::kStringList, def, help, reload, nullptr, 0, 0, st, sh, nullptr};
}

constexpr bool kReload = true;
constexpr bool kRestart = false;

// ---- Extra checks ----
std::string CheckName(const ConfigValue& v) {
  if (v.s.empty() || v.s.size() > 64) return "must be 1 to 64 characters";
  for (char c : v.s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return "may contain only letters, digits, '_', '-' and '.'";
    }
  }
  return "";
}
std::string CheckOptionalName(const ConfigValue& v) { return v.s.empty() ? "" : CheckName(v); }
std::string CheckRfc3339(const ConfigValue& v) {
  auto t = ParseRfc3339(v.s);
  return t ? "" : "must be an RFC 3339 time such as \"2020-01-01T00:00:00Z\"";
}
std::string CheckBrokerAddress(const ConfigValue& v) {
  static const char* const kSchemes[] = {"tcp://", "ssl://", "mqtt://", "mqtts://", "ws://", "wss://"};
  for (const char* scheme : kSchemes) {
    if (v.s.rfind(scheme, 0) == 0 && v.s.size() > std::char_traits<char>::length(scheme)) return "";
  }
  return "must be a broker URI: tcp://, ssl://, mqtt://, mqtts://, ws:// or wss:// followed by host:port";
}
std::string CheckListen(const ConfigValue& v) {
  auto colon = v.s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == v.s.size()) return "must be host:port";
  std::string port = v.s.substr(colon + 1);
  if (port.size() > 5) return "port out of range";
  for (char c : port) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return "port must be a number";
  }
  if (std::stoi(port) > 65535) return "port out of range";
  return "";
}
std::string CheckFilter(const ConfigValue& v) {
  auto p = TopicPattern::Compile(v.s);
  return p ? "" : p.error().message;
}
std::string CheckTemplate(const ConfigValue& v) {
  auto p = TemplatePlaceholders(v.s);
  return p ? "" : p.error().message;
}
std::string CheckUplinkTopic(const ConfigValue& v) {
  auto p = TemplatePlaceholders(v.s);
  if (!p) return p.error().message;
  for (const auto& name : *p) {
    if (name != "gateway" && name != "stream" && name != "subject" && name != "topic") {
      return "unknown placeholder {" + name + "}; use {gateway}, {stream}, {subject} or {topic}";
    }
  }
  return v.s.empty() ? "must not be empty" : "";
}

std::vector<ConfigKey> BuildKeys() {
  std::vector<ConfigKey> k;
  // [gateway]
  k.push_back(Str("gateway", "id", "", kRestart,
                  "Gateway id: the {gateway} placeholder, the CloudEvents source prefix and the batch header. "
                  "Empty: the host name.",
                  FERRY_FIELD(GatewayConfig, id), CheckOptionalName));
  // [storage]
  k.push_back(Str("storage", "path", "/var/lib/ferry", kRestart, "Directory of the LMDB environment.",
                  FERRY_FIELD(StorageConfig, path)));
  k.push_back(Size("storage", "map_size", "1GiB", kMiB, kNoMax, kRestart,
                   "LMDB map size: the disk budget of all streams. On 32-bit boards keep it at or below 1GiB.",
                   FERRY_FIELD(StorageConfig, map_size)));
  k.push_back(Bool("storage", "sync", "true", kRestart,
                   "fsync every commit. false trades durability on power loss for speed (tests, tmpfs).",
                   FERRY_FIELD(StorageConfig, sync)));
  k.push_back(Int("storage", "commit.max_events", "4000", 1, 1'000'000, kRestart,
                  "Group commit: most events in one transaction.", FERRY_FIELD(StorageConfig, commit.max_events)));
  k.push_back(Size("storage", "commit.max_bytes", "4MiB", 4 * kKiB, kGiB, kRestart,
                   "Group commit: most payload bytes in one transaction.",
                   FERRY_FIELD(StorageConfig, commit.max_bytes)));
  k.push_back(Dur("storage", "commit.max_delay", "100ms", 0, 10 * kSec, kRestart,
                  "Group commit, batch durability: how long a batch may wait for more events before it commits. Larger batches mean fewer fsyncs and fewer bytes written per event (SD-card wear); a power cut loses at most this much plus one commit. Sync durability always commits at once.",
                  FERRY_FIELD(StorageConfig, commit.max_delay)));
  // [ingest]
  k.push_back(Enum("ingest", "mode", "subscribe", "subscribe|listen|both", kRestart,
                   "listen: devices publish to ferryd itself (listen.*), and each QoS 1 PUBACK leaves only after "
                   "the commit that holds the event. subscribe: ferryd subscribes to a local broker (address), "
                   "which acknowledges devices before ferryd has stored anything (docs/guarantees.md).",
                   FERRY_FIELD(IngestConfig, mode)));
  k.push_back(Str("ingest", "listen.address", "127.0.0.1:1883", kRestart,
                  "host:port the ingest listener binds (mode listen or both). 0.0.0.0 for every interface: then "
                  "set listen.password_file.",
                  FERRY_FIELD(IngestConfig, listen.address), CheckListen));
  k.push_back(Int("ingest", "listen.max_connections", "1000", 1, 100'000, kRestart,
                  "Most device connections at once; more are closed at once and counted.",
                  FERRY_FIELD(IngestConfig, listen.max_connections)));
  k.push_back(Int("ingest", "listen.receive_maximum", "512", 1, 65'535, kRestart,
                  "Per connection: QoS 1 messages a device may have unacknowledged (MQTT 5 Receive Maximum; "
                  "for 3.1.1, ferryd stops reading the connection at this many). One commit acknowledges them "
                  "all, so this is what keeps ingest fast with PUBACK after commit.",
                  FERRY_FIELD(IngestConfig, listen.receive_maximum)));
  k.push_back(Size("ingest", "listen.max_packet_size", "512KiB", 64, 256 * kMiB, kRestart,
                   "Largest MQTT packet accepted (larger: the connection is closed, 5.0 reason 0x95). Payloads "
                   "above ingest.max_payload but within this go to the dead-letter stream.",
                   FERRY_FIELD(IngestConfig, listen.max_packet_size)));
  k.push_back(Dur("ingest", "listen.connect_timeout", "10s", kMs, 3600 * kSec, kRestart,
                  "A connection must send CONNECT within this (slow-loris guard); a partly received packet must "
                  "complete within it too.",
                  FERRY_FIELD(IngestConfig, listen.connect_timeout)));
  k.push_back(Dur("ingest", "listen.max_keepalive", "300s", kSec, 65'535 * kSec, kRestart,
                  "Keep-alive ferryd imposes when a device asks for none or for more (5.0 Server Keep Alive). A "
                  "connection silent for 1.5 times its keep-alive is closed (half-open links).",
                  FERRY_FIELD(IngestConfig, listen.max_keepalive)));
  k.push_back(Str("ingest", "listen.password_file", "", kRestart,
                  "File of user:pbkdf2-sha256:ITERATIONS:SALT:HASH lines (ferryctl passwd makes them). Set: every "
                  "device must log in. Empty: no user names are checked.",
                  FERRY_FIELD(IngestConfig, listen.password_file)));
  k.push_back(Bool("ingest", "listen.topic_must_match_client", "false", kRestart,
                   "A device may publish only events whose subject (the route's subject template, e.g. "
                   "{device}) is its own user name, or its client id when there is no password file.",
                   FERRY_FIELD(IngestConfig, listen.topic_must_match_client)));
  k.push_back(Bool("ingest", "listen.tls.enabled", "false", kRestart,
                   "The listener speaks MQTT over TLS (1.2, mbedTLS). About 38 KB of memory per connection.",
                   FERRY_FIELD(IngestConfig, listen.tls_enabled)));
  k.push_back(Str("ingest", "listen.tls.cert_file", "", kRestart, "PEM certificate chain of the listener.",
                  FERRY_FIELD(IngestConfig, listen.tls_cert_file)));
  k.push_back(Str("ingest", "listen.tls.key_file", "", kRestart, "PEM private key of the listener.",
                  FERRY_FIELD(IngestConfig, listen.tls_key_file)));
  k.push_back(Str("ingest", "listen.tls.ca_file", "", kRestart,
                  "PEM CAs that sign device certificates. Set: devices are asked for a certificate, and a verified "
                  "one's CN is the device's identity (listen.topic_must_match_client).",
                  FERRY_FIELD(IngestConfig, listen.tls_ca_file)));
  k.push_back(Bool("ingest", "listen.tls.require_client_cert", "false", kRestart,
                   "Refuse devices without a certificate signed by listen.tls.ca_file.",
                   FERRY_FIELD(IngestConfig, listen.tls_require_client_cert)));
  k.push_back(Str("ingest", "address", "tcp://127.0.0.1:1883", kRestart, "Local MQTT broker URI (mode subscribe or both).",
                  FERRY_FIELD(IngestConfig, address), CheckBrokerAddress));
  k.push_back(Str("ingest", "client_id", "", kRestart,
                  "MQTT client id of the persistent session. Empty: ferry-GATEWAY (GATEWAY = gateway.id).",
                  FERRY_FIELD(IngestConfig, client_id)));
  k.push_back(Str("ingest", "username", "", kRestart, "MQTT user name; empty: none.",
                  FERRY_FIELD(IngestConfig, username)));
  k.push_back(Str("ingest", "password", "", kRestart, "MQTT password; empty: none.",
                  FERRY_FIELD(IngestConfig, password)));
  k.push_back(Bool("ingest", "tls.enabled", "false", kRestart, "Connect to the local broker with TLS.",
                   FERRY_FIELD(IngestConfig, tls.enabled)));
  k.push_back(Str("ingest", "tls.ca_file", "", kRestart, "PEM CA bundle; empty: the system store.",
                  FERRY_FIELD(IngestConfig, tls.ca_file)));
  k.push_back(Str("ingest", "tls.cert_file", "", kRestart, "PEM client certificate; empty: none.",
                  FERRY_FIELD(IngestConfig, tls.cert_file)));
  k.push_back(Str("ingest", "tls.key_file", "", kRestart, "PEM client key; empty: none.",
                  FERRY_FIELD(IngestConfig, tls.key_file)));
  k.push_back(Bool("ingest", "tls.verify", "true", kRestart, "Verify the broker's certificate and host name.",
                   FERRY_FIELD(IngestConfig, tls.verify)));
  k.push_back(Dur("ingest", "session_expiry", "1d", 0, 4'294'967'295LL * kSec, kRestart,
                  "MQTT v5 session expiry (clean start is off): how long the broker keeps QoS 1 messages "
                  "for ferryd while it is down.",
                  FERRY_FIELD(IngestConfig, session_expiry)));
  k.push_back(Dur("ingest", "keepalive", "30s", kSec, 65'535 * kSec, kRestart, "MQTT keep-alive interval.",
                  FERRY_FIELD(IngestConfig, keepalive)));
  k.push_back(Int("ingest", "receive_maximum", "256", 1, 65'535, kRestart,
                  "MQTT v5 Receive Maximum: most QoS 1 messages the broker sends before ferryd acknowledges them. "
                  "Bounds the burst a reconnect brings from a large queued backlog (the broker's default is 65535).",
                  FERRY_FIELD(IngestConfig, receive_maximum)));
  k.push_back(Enum("ingest", "durability", "batch", "batch|sync", kRestart,
                   "batch: acknowledge on receipt, at most one commit interval is lost on power loss. sync: "
                   "acknowledge after the commit, nothing acknowledged is lost.",
                   FERRY_FIELD(IngestConfig, durability)));
  k.push_back(Size("ingest", "max_payload", "256KiB", 1, 256 * kMiB, kReload,
                   "Larger payloads go to the route's dead-letter stream (reason oversize).",
                   FERRY_FIELD(IngestConfig, max_payload)));
  k.push_back(Int("ingest", "max_json_depth", "64", 1, 256, kRestart,
                  "JSON payloads nested deeper than this (objects and arrays) go to the route's dead-letter stream "
                  "(reason too_deep). Parsing never recurses, whatever the depth.",
                  FERRY_FIELD(IngestConfig, max_json_depth)));
  k.push_back(Dur("ingest", "dedupe_window", "10m", 0, 30 * kDay, kReload,
                  "A device event id seen again within this window is dropped and counted. 0: off.",
                  FERRY_FIELD(IngestConfig, dedupe_window)));
  k.push_back(Int("ingest", "dedupe_capacity", "50000", 0, 100'000'000, kRestart,
                  "Most event ids remembered for deduplication (oldest forgotten first); about 32 bytes each.",
                  FERRY_FIELD(IngestConfig, dedupe_capacity)));
  k.push_back(Dur("ingest", "max_future_skew", "5m", 0, 30 * kDay, kReload,
                  "A producer time (a route's time_json_field / time_user_property) further than this ahead of the "
                  "gateway clock is replaced by the ingest time, flagged in header ferry_time_replaced (future) and "
                  "counted in ferry_ingest_time_replaced_total.",
                  FERRY_FIELD(IngestConfig, max_future_skew)));
  k.push_back(Str("ingest", "time_floor", "2020-01-01T00:00:00Z", kReload,
                  "RFC 3339: a producer time before this (a device that booted without a clock, at 1970) is replaced "
                  "by the ingest time, flagged (before_floor) and counted.",
                  FERRY_FIELD(IngestConfig, time_floor), CheckRfc3339));
  k.push_back(Dur("ingest", "backoff.min", "200ms", kMs, 3600 * kSec, kReload,
                  "First reconnect delay; doubles per failure, with jitter.",
                  FERRY_FIELD(IngestConfig, backoff.min)));
  k.push_back(Dur("ingest", "backoff.max", "30s", kMs, kDay, kReload, "Longest reconnect delay.",
                  FERRY_FIELD(IngestConfig, backoff.max)));
  // [metrics]
  k.push_back(Bool("metrics", "enabled", "true", kRestart, "Serve /metrics and /healthz over HTTP.",
                   FERRY_FIELD(MetricsConfig, enabled)));
  k.push_back(Str("metrics", "listen", "127.0.0.1:9464", kRestart,
                  "host:port of the HTTP endpoint. Keep it on loopback unless a firewall guards it.",
                  FERRY_FIELD(MetricsConfig, listen), CheckListen));
  // [console]
  k.push_back(Bool("console", "enabled", "false", kRestart,
                   "Serve the web console (overview, live tail, dead letters, SQL; docs/console.md).",
                   FERRY_FIELD(ConsoleConfig, enabled)));
  k.push_back(Str("console", "listen", "127.0.0.1:9465", kRestart,
                  "host:port of the console. A non-loopback address requires console.token_file.",
                  FERRY_FIELD(ConsoleConfig, listen), CheckListen));
  k.push_back(Str("console", "token_file", "", kRestart,
                  "File holding the bearer token every console request must carry (Authorization: Bearer). "
                  "Empty: no token, allowed on loopback only.",
                  FERRY_FIELD(ConsoleConfig, token_file)));
  k.push_back(Int("console", "max_connections", "8", 1, 256, kRestart,
                  "Most console connections at once (each live tail holds one); more are closed at once.",
                  FERRY_FIELD(ConsoleConfig, max_connections)));
  k.push_back(Int("console", "sql_max_rows", "1000", 1, 100'000, kRestart,
                  "Rows the SQL box returns at most; more are cut.", FERRY_FIELD(ConsoleConfig, sql_max_rows)));
  k.push_back(Dur("console", "sql_timeout", "5s", 100 * kMs, 600 * kSec, kRestart,
                  "A console SQL query stops after this long (the console answers nothing else meanwhile).",
                  FERRY_FIELD(ConsoleConfig, sql_timeout)));
  k.push_back(Str("console", "tls_cert_file", "", kRestart,
                  "PEM certificate chain (leaf first). With tls_key_file the console speaks HTTPS only (mbedTLS).",
                  FERRY_FIELD(ConsoleConfig, tls_cert_file)));
  k.push_back(Str("console", "tls_key_file", "", kRestart, "PEM private key of tls_cert_file (not encrypted).",
                  FERRY_FIELD(ConsoleConfig, tls_key_file)));
  k.push_back(Str("console", "tls_ca_file", "", kRestart,
                  "PEM CAs of client certificates. Set: a browser must present a certificate signed by one. "
                  "Empty: none asked.",
                  FERRY_FIELD(ConsoleConfig, tls_ca_file)));
  // [log]
  k.push_back(Enum("log", "level", "info", "debug|info|warn|error", kReload, "Least severe level logged.",
                   FERRY_FIELD(LogConfig, level)));
  // [[route]]
  k.push_back(Str("route", "filter", nullptr, kRestart,
                  "MQTT topic filter with {name} captures, e.g. \"telemetry/{device}/#\". ferryd subscribes "
                  "with captures replaced by +.",
                  FERRY_FIELD(RouteConfig, filter), CheckFilter));
  k.push_back(Str("route", "stream", nullptr, kRestart,
                  "Stream template, e.g. \"telemetry\" or \"{kind}\". A literal must name a declared [[stream]].",
                  FERRY_FIELD(RouteConfig, stream), CheckTemplate));
  k.push_back(Str("route", "subject", "", kRestart,
                  "Subject (key) template, e.g. \"{device}\"; {topic} is the whole topic. Empty: no subject.",
                  FERRY_FIELD(RouteConfig, subject), CheckTemplate));
  k.push_back(Str("route", "content_type", "application/octet-stream", kRestart,
                  "Declared content type. JSON types (application/json, */*+json) must parse or the message "
                  "is dead-lettered (reason bad_content).",
                  FERRY_FIELD(RouteConfig, content_type)));
  k.push_back(Str("route", "dead_letter", "", kRestart,
                  "Declared stream for rejected messages, with the reason in header ferry_dlq_reason. Empty: rejected "
                  "messages are dropped and counted.",
                  FERRY_FIELD(RouteConfig, dead_letter), CheckOptionalName));
  k.push_back(Str("route", "id_json_field", "", kRestart,
                  "Top-level JSON field holding a device event id: a string of at most 256 bytes without control "
                  "characters (a number, or any other value, is dead-lettered with reason bad_event_id, so 12345 "
                  "and \"12345\" are never one id). Empty: none.",
                  FERRY_FIELD(RouteConfig, id_json_field)));
  k.push_back(Str("route", "id_user_property", "", kRestart,
                  "MQTT v5 user property holding a device event id (checked before the JSON field). Empty: none.",
                  FERRY_FIELD(RouteConfig, id_user_property)));
  k.push_back(Str("route", "time_json_field", "", kRestart,
                  "Top-level JSON field holding the producer's time, read as time_format: the event's CloudEvents "
                  "time. Empty: none (the event has no time; retention and ferryctl use ingest time anyway).",
                  FERRY_FIELD(RouteConfig, time_json_field)));
  k.push_back(Str("route", "time_user_property", "", kRestart,
                  "MQTT v5 user property holding the producer's time, read as time_format (checked before the "
                  "JSON field). Empty: none.",
                  FERRY_FIELD(RouteConfig, time_user_property)));
  k.push_back(Enum("route", "time_format", "rfc3339", "rfc3339|unix_s|unix_ms|unix_us|unix_ns", kRestart,
                   "How the producer's time is written: an RFC 3339 string, or a number (or numeric string) of "
                   "seconds, milliseconds, microseconds or nanoseconds since 1970 (a fraction is allowed). A time "
                   "that cannot be read is replaced by the ingest time, flagged (unreadable) and counted.",
                   FERRY_FIELD(RouteConfig, time_format)));
  // [[stream]]
  k.push_back(Str("stream", "name", nullptr, kRestart, "Stream name: letters, digits, '_', '-', '.'.",
                  FERRY_FIELD(StreamConfig, name), CheckName));
  k.push_back(Enum("stream", "kind", "log", "log|table", kRestart,
                   "log keeps every event; table keeps the latest event per subject (keyed compaction).",
                   FERRY_FIELD(StreamConfig, kind)));
  k.push_back(Dur("stream", "max_age", "7d", 0, 3650 * kDay, kReload,
                  "Retention: events older than this are evicted. 0: no age limit.",
                  FERRY_FIELD(StreamConfig, max_age)));
  k.push_back(Size("stream", "max_bytes", "0", 0, kNoMax, kReload,
                   "Retention: the oldest events are evicted above this size. 0: no size limit.",
                   FERRY_FIELD(StreamConfig, max_bytes)));
  k.push_back(Dur("stream", "tombstone_grace", "1h", 0, 3650 * kDay, kReload,
                  "table streams: how long a deletion (empty payload) is kept before compaction drops it.",
                  FERRY_FIELD(StreamConfig, tombstone_grace)));
  k.push_back(Enum("stream", "full_policy", "drop_oldest", "drop_oldest|reject_new", kReload,
                   "When the disk budget is exhausted: evict this stream's oldest events, or refuse new ones.",
                   FERRY_FIELD(StreamConfig, full_policy)));
  k.push_back(Int("stream", "priority", "0", 0, 255, kReload,
                  "Higher is more important: evicted last when the budget is full, drained first by uplinks. Among "
                  "streams of equal priority, an uplink drains them in the order of uplink.streams (or of their "
                  "declaration): one's backlog goes before the next one's.",
                  FERRY_FIELD(StreamConfig, priority)));
  // [[uplink]]
  k.push_back(Str("uplink", "name", nullptr, kRestart, "Uplink name (metrics label, cursor name).",
                  FERRY_FIELD(UplinkConfig, name), CheckName));
  k.push_back(Enum("uplink", "type", "mqtt", "mqtt|kafka", kRestart, "Central broker protocol.",
                   FERRY_FIELD(UplinkConfig, type)));
  k.push_back(Str("uplink", "address", nullptr, kRestart,
                  "mqtt: broker URI (ssl://central:8883); kafka: bootstrap servers (host:port,...).",
                  FERRY_FIELD(UplinkConfig, address)));
  k.push_back(Str("uplink", "client_id", "", kRestart, "Client id. Empty: ferry-GATEWAY-NAME (gateway.id, uplink name).",
                  FERRY_FIELD(UplinkConfig, client_id)));
  k.push_back(Str("uplink", "username", "", kRestart, "User name; empty: none.",
                  FERRY_FIELD(UplinkConfig, username)));
  k.push_back(Str("uplink", "password", "", kRestart, "Password; empty: none.",
                  FERRY_FIELD(UplinkConfig, password)));
  FERRY_CLIENT_TLS_KEYS("uplink", UplinkConfig);
  k.push_back(Enum("uplink", "mode", "per_event", "per_event|batched", kRestart,
                   "per_event: one message per event, attributes in MQTT v5 user properties (Kafka: ce_ headers). "
                   "batched: zstd CloudEvents batches, one message or record each (docs/wire.md).",
                   FERRY_FIELD(UplinkConfig, mode)));
  k.push_back(Str("uplink", "topic", "ferry/{gateway}/{stream}", kRestart,
                  "Topic (Kafka: topic name) template over {gateway}, {stream}, {subject} and {topic} (the MQTT topic the event "
                  "arrived on; ferry/{gateway}/{stream} for batches and events that did not come over MQTT).",
                  FERRY_FIELD(UplinkConfig, topic), CheckUplinkTopic));
  k.push_back(Bool("uplink", "retain", "false", kRestart,
                   "mqtt, per_event: publish with the retain flag, so the broker keeps each topic's last message "
                   "for clients that subscribe later; an event with an empty payload (a table's deletion) clears "
                   "it. Pushes a table to devices (docs/replication.md).",
                   FERRY_FIELD(UplinkConfig, retain)));
  k.push_back(List("uplink", "streams", "", kRestart,
                   "Streams this uplink forwards. Empty: every stream. Higher stream.priority goes first; this "
                   "list orders streams of equal priority.",
                   FERRY_FIELD(UplinkConfig, streams)));
  k.push_back(Int("uplink", "inflight", "32", 1, 65'535, kRestart,
                  "Most unacknowledged messages; the cursor moves only past acknowledged ones. The broker's Receive "
                  "Maximum (Mosquitto: max_inflight_messages, default 20) caps how many are on the wire at once; the "
                  "rest wait in the client's queue. Kafka: records handed to librdkafka and not yet reported; "
                  "thousands keep its record batches full.",
                  FERRY_FIELD(UplinkConfig, inflight)));
  k.push_back(Int("uplink", "batch.max_events", "500", 1, 100'000, kReload, "batched: most events per batch.",
                  FERRY_FIELD(UplinkConfig, batch.max_events)));
  k.push_back(Size("uplink", "batch.max_bytes", "256KiB", kKiB, 64 * kMiB, kReload,
                   "batched: most uncompressed bytes per batch.", FERRY_FIELD(UplinkConfig, batch.max_bytes)));
  k.push_back(Dur("uplink", "batch.max_delay", "1s", 0, 3600 * kSec, kReload,
                  "batched: longest a live event waits for its batch to fill.",
                  FERRY_FIELD(UplinkConfig, batch.max_delay)));
  k.push_back(Int("uplink", "compression_level", "3", 1, 19, kReload, "batched: zstd compression level.",
                  FERRY_FIELD(UplinkConfig, compression_level)));
  k.push_back(Str("uplink", "hmac_key_file", "", kRestart,
                  "batched: file with the HMAC-SHA256 key signing batches. Empty: a plain SHA-256 digest.",
                  FERRY_FIELD(UplinkConfig, hmac_key_file)));
  k.push_back(Enum("uplink", "drain_order", "oldest_first", "oldest_first|newest_first", kReload,
                   "Backlog order after an outage. newest_first sends current events first, then backfills.",
                   FERRY_FIELD(UplinkConfig, drain_order)));
  k.push_back(Size("uplink", "bytes_per_sec", "0", 0, kNoMax, kReload,
                   "Cap on payload bytes sent per second. 0: no cap.", FERRY_FIELD(UplinkConfig, bytes_per_sec)));
  k.push_back(Dur("uplink", "backoff.min", "500ms", kMs, 3600 * kSec, kReload,
                  "First reconnect/retry delay; doubles per failure, with jitter.",
                  FERRY_FIELD(UplinkConfig, backoff.min)));
  k.push_back(Dur("uplink", "backoff.max", "60s", kMs, kDay, kReload, "Longest reconnect/retry delay.",
                  FERRY_FIELD(UplinkConfig, backoff.max)));
  // [[uplink]] kafka.*: the Kafka producer (type = kafka). Credentials are username/password, TLS files tls.*.
  k.push_back(Enum("uplink", "kafka.security_protocol", "auto", "auto|plaintext|ssl|sasl_plaintext|sasl_ssl",
                   kRestart,
                   "kafka: security.protocol. auto: ssl when tls.enabled, sasl_* when username is set.",
                   FERRY_FIELD(UplinkConfig, kafka.security_protocol)));
  k.push_back(Enum("uplink", "kafka.sasl_mechanism", "plain", "plain|scram_sha_256|scram_sha_512", kRestart,
                   "kafka: SASL mechanism for username/password (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).",
                   FERRY_FIELD(UplinkConfig, kafka.sasl_mechanism)));
  k.push_back(Enum("uplink", "kafka.compression", "zstd", "zstd|lz4|none", kRestart,
                   "kafka: compression of librdkafka's record batches.",
                   FERRY_FIELD(UplinkConfig, kafka.compression)));
  k.push_back(Dur("uplink", "kafka.linger", "5ms", 0, 900 * kSec, kRestart,
                  "kafka: linger.ms, how long librdkafka waits to fill a record batch.",
                  FERRY_FIELD(UplinkConfig, kafka.linger)));
  k.push_back(Int("uplink", "kafka.batch_messages", "10000", 1, 1'000'000, kRestart,
                  "kafka: batch.num.messages, most records in one record batch.",
                  FERRY_FIELD(UplinkConfig, kafka.batch_messages)));
  k.push_back(Dur("uplink", "kafka.message_timeout", "60s", kSec, kDay, kRestart,
                  "kafka: message.timeout.ms, how long librdkafka retries a record before the uplink sends it "
                  "again itself.",
                  FERRY_FIELD(UplinkConfig, kafka.message_timeout)));
  k.push_back(List("uplink", "kafka.properties", "", kRestart,
                   "kafka: further librdkafka properties as \"name=value\"; each is checked by librdkafka when "
                   "ferryd starts (an unknown one is an error naming it).",
                   FERRY_FIELD(UplinkConfig, kafka.properties)));
  // [[downlink]] (docs/replication.md). Restart only: its consumer is built once.
  k.push_back(Str("downlink", "name", nullptr, kRestart,
                  "Downlink name (metrics label; its positions are kept in the log as \"downlink.<name>.*\").",
                  FERRY_FIELD(DownlinkConfig, name), CheckName));
  k.push_back(Enum("downlink", "type", "kafka", "kafka|mqtt", kRestart,
                   "Central source protocol: a Kafka topic, or the retained messages under an MQTT topic filter.",
                   FERRY_FIELD(DownlinkConfig, type)));
  k.push_back(Str("downlink", "address", nullptr, kRestart,
                  "kafka: bootstrap servers (host:port,...); mqtt: the central broker's URI (ssl://central:8883).",
                  FERRY_FIELD(DownlinkConfig, address)));
  k.push_back(Str("downlink", "topic", nullptr, kRestart,
                  "kafka: the topic holding the table (compacted, keyed): each record's key is a row's key, its "
                  "value the row, a null value a deletion. mqtt: a topic filter with a wildcard; each retained "
                  "message under it is a row, keyed by the topic's levels from the first wildcard on, an empty "
                  "payload a deletion.",
                  FERRY_FIELD(DownlinkConfig, topic)));
  k.push_back(Str("downlink", "table", nullptr, kRestart,
                  "Declared stream of kind \"table\" the rows are written to (subject = key).",
                  FERRY_FIELD(DownlinkConfig, table), CheckName));
  k.push_back(Str("downlink", "client_id", "", kRestart,
                  "Client id. Empty: ferry-GATEWAY-NAME (gateway.id, downlink name).",
                  FERRY_FIELD(DownlinkConfig, client_id)));
  k.push_back(Str("downlink", "username", "", kRestart, "User name (kafka: SASL); empty: none.",
                  FERRY_FIELD(DownlinkConfig, username)));
  k.push_back(Str("downlink", "password", "", kRestart, "Password (kafka: SASL); empty: none.",
                  FERRY_FIELD(DownlinkConfig, password)));
  FERRY_CLIENT_TLS_KEYS("downlink", DownlinkConfig);
  k.push_back(Enum("downlink", "kafka.security_protocol", "auto", "auto|plaintext|ssl|sasl_plaintext|sasl_ssl",
                   kRestart, "kafka: security.protocol. auto: ssl when tls.enabled, sasl_* when username is set.",
                   FERRY_FIELD(DownlinkConfig, security_protocol)));
  k.push_back(Enum("downlink", "kafka.sasl_mechanism", "plain", "plain|scram_sha_256|scram_sha_512", kRestart,
                   "kafka: SASL mechanism for username/password.", FERRY_FIELD(DownlinkConfig, sasl_mechanism)));
  k.push_back(List("downlink", "kafka.properties", "", kRestart,
                   "kafka: further librdkafka consumer properties as \"name=value\" (checked when ferryd starts).",
                   FERRY_FIELD(DownlinkConfig, properties)));
  k.push_back(Int("downlink", "batch", "1000", 1, 100'000, kRestart,
                  "Most records written in one transaction, with the positions they move.",
                  FERRY_FIELD(DownlinkConfig, batch)));
  k.push_back(Size("downlink", "max_row_bytes", "1MiB", 1, 16 * kMiB, kRestart,
                   "Largest row (key and value bytes); a larger one is skipped and counted "
                   "(ferry_downlink_skipped_total{reason=\"too_large\"}).",
                   FERRY_FIELD(DownlinkConfig, max_row_bytes)));
  k.push_back(Dur("downlink", "mqtt.session_expiry", "7d", kSec, 4'294'967'295LL * kSec, kRestart,
                  "mqtt: MQTT v5 session expiry: how long the broker queues the table's changes for ferryd while "
                  "the link is down. A session the broker no longer has means a full sync.",
                  FERRY_FIELD(DownlinkConfig, session_expiry)));
  k.push_back(Dur("downlink", "mqtt.sync_quiet", "2s", kMs, 3600 * kSec, kRestart,
                  "mqtt: a full sync (the retained messages sent after SUBSCRIBE) ends at the first message without "
                  "the retain flag, or this long after the last message.",
                  FERRY_FIELD(DownlinkConfig, sync_quiet)));
  k.push_back(Dur("downlink", "backoff.min", "500ms", kMs, 3600 * kSec, kRestart,
                  "First retry delay after the source failed; doubles per failure.",
                  FERRY_FIELD(DownlinkConfig, backoff.min)));
  k.push_back(Dur("downlink", "backoff.max", "60s", kMs, kDay, kRestart, "Longest retry delay.",
                  FERRY_FIELD(DownlinkConfig, backoff.max)));
  // [[pipeline]] (docs/processing.md). Restart only: a changed pipeline would need its state and cursor
  // reconciled with what it already wrote; a restart does that by construction.
  k.push_back(Str("pipeline", "name", nullptr, kRestart,
                  "Pipeline name (metrics label; its input cursor is \"pipeline.<name>\").",
                  FERRY_FIELD(PipelineConfig, name), CheckName));
  k.push_back(List("pipeline", "input", nullptr, kRestart,
                   "Declared streams read, oldest first, each from the pipeline's own cursor.",
                   FERRY_FIELD(PipelineConfig, input)));
  k.push_back(Str("pipeline", "output", nullptr, kRestart,
                  "Declared stream the processed events are appended to (a route step may pick another).",
                  FERRY_FIELD(PipelineConfig, output), CheckName));
  k.push_back(Str("pipeline", "dead_letter", "", kRestart,
                  "Declared stream for events a step failed on, with pipeline, step and error in headers "
                  "ferry_dlq_*. Empty: such events are counted and dropped.",
                  FERRY_FIELD(PipelineConfig, dead_letter), CheckOptionalName));
  k.push_back(Int("pipeline", "batch", "500", 1, 100'000, kRestart,
                  "Most input records processed in one transaction (outputs, dead letters and the cursor "
                  "commit together).",
                  FERRY_FIELD(PipelineConfig, batch)));
  k.push_back(Int("pipeline", "max_instructions", "1000000", 1000, 1'000'000'000, kRestart,
                  "Lua instructions one expression or process() call may run before it fails.",
                  FERRY_FIELD(PipelineConfig, max_instructions)));
  k.push_back(Size("pipeline", "max_memory", "8MiB", 256 * kKiB, kGiB, kRestart,
                   "Memory of the pipeline's Lua state (code, globals, events in hand); an allocation beyond it "
                   "fails the call.",
                   FERRY_FIELD(PipelineConfig, max_memory)));
  // [[pipeline.step]]
  k.push_back(Enum("pipeline.step", "type", nullptr,
                   "filter|set|drop|rename|project|units|schema_upgrade|route|script|window|threshold|lookup", kRestart,
                   "What the step does; the keys below say which types use them.",
                   FERRY_FIELD(PipelineStepConfig, type)));
  k.push_back(Str("pipeline.step", "name", "", kRestart,
                  "Step name in dead-letter headers and metrics. Empty: \"<index>:<type>\", e.g. \"2:units\".",
                  FERRY_FIELD(PipelineStepConfig, name)));
  k.push_back(Str("pipeline.step", "where", "", kRestart,
                  "filter: Lua expression; the event goes on when it is true (not nil or false).",
                  FERRY_FIELD(PipelineStepConfig, where)));
  k.push_back(Str("pipeline.step", "field", "", kRestart,
                  "set, units: the top-level field written / converted. schema_upgrade: the version field "
                  "(empty: schema_version). lookup: the field holding the table's key.",
                  FERRY_FIELD(PipelineStepConfig, field)));
  k.push_back(Str("pipeline.step", "value", "", kRestart,
                  "set: Lua expression whose value the field gets (nil removes it). lookup with missing = "
                  "\"default\": the value `into` gets when the table has no row for the key.",
                  FERRY_FIELD(PipelineStepConfig, value)));
  k.push_back(List("pipeline.step", "fields", "", kRestart,
                   "drop: top-level fields removed. project: the only fields kept.",
                   FERRY_FIELD(PipelineStepConfig, fields)));
  k.push_back(Str("pipeline.step", "from", "", kRestart,
                  "rename: the old field name. units: the field's unit (C, F, K, Pa, kPa, bar, psi).",
                  FERRY_FIELD(PipelineStepConfig, from)));
  k.push_back(Str("pipeline.step", "to", "", kRestart,
                  "rename: the new field name. units: the unit wanted (same dimension as from).",
                  FERRY_FIELD(PipelineStepConfig, to)));
  k.push_back(Str("pipeline.step", "by", "", kRestart,
                  "route: Lua expression naming one of outputs; nil keeps the pipeline's output; any other "
                  "value fails the event.",
                  FERRY_FIELD(PipelineStepConfig, by)));
  k.push_back(List("pipeline.step", "outputs", "", kRestart, "route: declared streams the expression may name.",
                   FERRY_FIELD(PipelineStepConfig, outputs)));
  k.push_back(Str("pipeline.step", "script", "", kRestart,
                  "script: Lua source defining process(event), which returns the event, nil (drop) or a list "
                  "of events.",
                  FERRY_FIELD(PipelineStepConfig, script)));
  k.push_back(Int("pipeline.step", "missing_version", "1", 0, 1'000'000, kRestart,
                  "schema_upgrade: the version of an event without the version field.",
                  FERRY_FIELD(PipelineStepConfig, missing_version)));
  // window / threshold steps (docs/processing.md "Windows")
  k.push_back(Enum("pipeline.step", "window", "tumbling", "tumbling|hopping|sliding|session", kRestart,
                   "window: the kind of window.", FERRY_FIELD(PipelineStepConfig, window)));
  k.push_back(Str("pipeline.step", "key", "", kRestart,
                  "window: top-level field whose value groups events (each key has its own windows and "
                  "watermark). Empty: the event's subject.",
                  FERRY_FIELD(PipelineStepConfig, key)));
  k.push_back(Dur("pipeline.step", "size", "0", 0, 366 * kDay, kRestart,
                  "window: length of a tumbling, hopping or sliding window.", FERRY_FIELD(PipelineStepConfig, size)));
  k.push_back(Dur("pipeline.step", "hop", "0", 0, 366 * kDay, kRestart,
                  "window: how far a hopping window advances (at most size; size / hop at most 64).",
                  FERRY_FIELD(PipelineStepConfig, hop)));
  k.push_back(Dur("pipeline.step", "gap", "0", 0, 366 * kDay, kRestart,
                  "window: a session ends after this much event time without an event of its key.",
                  FERRY_FIELD(PipelineStepConfig, gap)));
  k.push_back(List("pipeline.step", "aggregates", "", kRestart,
                   "window: aggregates of field besides count: sum, min, max, avg, first, last, and quantiles "
                   "p1..p99 (p50, p95, p99.9: a bounded sketch, 1% relative error).",
                   FERRY_FIELD(PipelineStepConfig, aggregates)));
  k.push_back(Dur("pipeline.step", "allowed_lateness", "0", 0, 366 * kDay, kRestart,
                  "window: a key's watermark trails its newest event time by this much; a window closes once "
                  "its end is behind the watermark.",
                  FERRY_FIELD(PipelineStepConfig, allowed_lateness)));
  k.push_back(Dur("pipeline.step", "idle_timeout", "0", 0, 366 * kDay, kRestart,
                  "window: a key without events for this long (gateway time) has its windows closed. 0: never.",
                  FERRY_FIELD(PipelineStepConfig, idle_timeout)));
  k.push_back(Str("pipeline.step", "late_output", "", kRestart,
                  "window: declared stream for late events (unchanged, with ferry_late_* headers). Empty: late "
                  "events are counted and dropped.",
                  FERRY_FIELD(PipelineStepConfig, late_output), CheckOptionalName));
  k.push_back(Int("pipeline.step", "early_every", "0", 0, 1'000'000'000, kRestart,
                  "window: also emit a non-final result every this many events of a window. 0: final only.",
                  FERRY_FIELD(PipelineStepConfig, early_every)));
  k.push_back(Int("pipeline.step", "max_keys", "20000", 1, 10'000'000, kRestart,
                  "window: most keys held; a new key beyond it closes the least recently active key's windows.",
                  FERRY_FIELD(PipelineStepConfig, max_keys)));
  k.push_back(Int("pipeline.step", "max_windows", "16", 1, 100'000, kRestart,
                  "window: most open windows per key; beyond it the oldest closes early.",
                  FERRY_FIELD(PipelineStepConfig, max_windows)));
  k.push_back(Str("pipeline.step", "output", "", kRestart,
                  "threshold: declared stream the alerts go to (give it a priority so uplinks send it first).",
                  FERRY_FIELD(PipelineStepConfig, output), CheckOptionalName));
  k.push_back(Str("pipeline.step", "table", "", kRestart,
                  "lookup: the declared table stream (kind = \"table\", e.g. a downlink's) whose row is looked up. "
                  "threshold: a table whose row for the window's key goes into `into` (default \"row\") before "
                  "`where` is evaluated: per-key limits (e.g. row.max_temp).",
                  FERRY_FIELD(PipelineStepConfig, table), CheckOptionalName));
  k.push_back(Str("pipeline.step", "into", "", kRestart,
                  "lookup: the top-level field the row goes into (a JSON object row as a table, any other as a "
                  "string). threshold with a table: the field of the window result the row goes into (empty: row).",
                  FERRY_FIELD(PipelineStepConfig, into)));
  k.push_back(Enum("pipeline.step", "missing", "dead_letter", "dead_letter|default|keep", kRestart,
                   "lookup: no row for the key (or no key): dead_letter fails the event, default sets `into` to "
                   "`value`, keep passes the event on unchanged; every miss is counted. threshold with a table: "
                   "dead_letter skips the threshold for that key (no row, no limit), default sets `into` to "
                   "`value`, keep evaluates `where` without the row.",
                   FERRY_FIELD(PipelineStepConfig, missing)));
  // [[pipeline.step.upgrade]]
  k.push_back(Int("pipeline.step.upgrade", "version", nullptr, 0, 1'000'000, kRestart,
                  "schema_upgrade: this upgrade turns an event of this version into version + 1.",
                  FERRY_FIELD(SchemaUpgradeConfig, version)));
  k.push_back(List("pipeline.step.upgrade", "rename", "", kRestart, "Fields renamed, as \"old=new\".",
                   FERRY_FIELD(SchemaUpgradeConfig, rename)));
  k.push_back(List("pipeline.step.upgrade", "defaults", "", kRestart,
                   "Fields set when absent, as \"field=<Lua expression>\" (e.g. \"unit='C'\").",
                   FERRY_FIELD(SchemaUpgradeConfig, defaults)));
  k.push_back(List("pipeline.step.upgrade", "drop", "", kRestart, "Fields removed.",
                   FERRY_FIELD(SchemaUpgradeConfig, drop)));
  return k;
}

#undef FERRY_CLIENT_TLS_KEYS
#undef FERRY_FIELD

}  // namespace

const std::vector<ConfigSection>& ConfigSections() {
  static const std::vector<ConfigSection> kSections = {
      {"gateway", false, "This gateway's identity."},
      {"storage", false, "The LMDB event log and group commit."},
      {"ingest", false, "The local MQTT broker ferryd subscribes to (persistent session, QoS 1)."},
      {"metrics", false, "The Prometheus endpoint."},
      {"console", false, "The web console (docs/console.md)."},
      {"log", false, "Logging to stderr (journald)."},
      {"route", true, "Topic filters mapped to streams; the first matching route wins."},
      {"stream", true, "Streams: retention, compaction, disk-budget policy."},
      {"uplink", true, "Connections to a central MQTT broker or Kafka cluster."},
      {"downlink", true, "Central tables mirrored into local table streams (docs/replication.md)."},
      {"pipeline", true, "Processing: input streams through steps to an output stream (docs/processing.md)."},
      {"pipeline.step", true, "A pipeline's steps, applied in order."},
      {"pipeline.step.upgrade", true, "A schema_upgrade step's upgrades, one per version."},
  };
  return kSections;
}

const std::vector<ConfigKey>& ConfigKeys() {
  static const std::vector<ConfigKey> kKeys = BuildKeys();
  return kKeys;
}

}  // namespace ferry
