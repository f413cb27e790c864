// The web console: routes on an HttpServer of its own (its own port, connection limit and thread, so a
// console user never delays a /metrics scrape). See ferry/console.h for the endpoints and the contract.
#include "ferry/console.h"

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "ferry/ctl.h"
#include "ferry/live_tail.h"
#include "ferry/log.h"
#include "ferry/rfc3339.h"
#include "ferry/utf8.h"
#include "ferry/tls_server.h"

#include "console_tls.h"

namespace ferry {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr size_t kDeadLetterBytes = size_t{4} << 20;
constexpr uint64_t kMaxBacklog = 1000;  // n= of tail and deadletters

const char* kJson = "application/json";

void Str(JsonWriter& w, const std::string& s) {
  if (IsUtf8(s)) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  } else {
    std::string legal = LegalUnicodeString(s);
    w.String(legal.data(), static_cast<rapidjson::SizeType>(legal.size()));
  }
}

std::string Base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += k[(v >> 6) & 63];
    out += k[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += i + 1 < in.size() ? k[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

HttpResponse JsonReply(int status, std::string body) { return HttpResponse{status, kJson, std::move(body), {}, nullptr}; }

HttpResponse JsonError(int status, const std::string& message) {
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  w.StartObject();
  w.Key("error");
  Str(w, message);
  w.EndObject();
  return JsonReply(status, std::string(sb.GetString()) + "\n");
}

uint64_t ArgCount(const HttpRequest& rq, const char* name, uint64_t def) {
  auto it = rq.args.find(name);
  if (it == rq.args.end() || it->second.empty()) return def;
  uint64_t v = 0;
  for (char c : it->second) {
    if (c < '0' || c > '9') return def;
    v = std::min<uint64_t>(v * 10 + static_cast<uint64_t>(c - '0'), kMaxBacklog);
  }
  return v;
}

// The seq to start at so that the last `n` records are included.
Result<Seq> LastN(EventLog& log, const std::string& stream, uint64_t n) {
  auto st = log.GetStreamStats(stream);
  if (!st) return tl::make_unexpected(st.error());
  uint64_t next = st->last_seq.value + 1;
  uint64_t from = next > n ? next - n : 0;
  return Seq{std::max(from, st->first_seq.value)};
}

}  // namespace

Result<std::unique_ptr<Console>> Console::Make(const ConsoleConfig& config, ConsoleSources sources,
                                               const Clock& clock) {
  std::string token;
  if (!config.token_file.empty()) {
    std::ifstream in(config.token_file);
    if (!in) return MakeError(ErrorCode::kNotFound, "console.token_file: cannot read " + config.token_file);
    std::stringstream ss;
    ss << in.rdbuf();
    token = ss.str();
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
    size_t start = 0;
    while (start < token.size() && std::isspace(static_cast<unsigned char>(token[start]))) ++start;
    token.erase(0, start);
    if (token.empty()) return InvalidArgument("console.token_file: " + config.token_file + " holds no token");
  } else if (!IsLoopbackListen(config.listen)) {
    return InvalidArgument("console.token_file: is empty, but console.listen \"" + config.listen +
                           "\" is not a loopback address: a bearer token is required there");
  }
  std::shared_ptr<TlsServerContext> tls;
  if (!config.tls_cert_file.empty()) {
    TlsServerOptions to;
    to.cert_file = config.tls_cert_file;
    to.key_file = config.tls_key_file;
    to.ca_file = config.tls_ca_file;
    to.require_client_cert = !config.tls_ca_file.empty();
    auto ctx = TlsServerContext::Create(to);
    if (!ctx) return MakeError(ctx.error().code, "console.tls: " + ctx.error().message);
    tls = std::move(*ctx);
  }
  return std::unique_ptr<Console>(new Console(config, std::move(sources), clock, std::move(token), std::move(tls)));
}

Console::Console(const ConsoleConfig& config, ConsoleSources sources, const Clock& clock, std::string token,
                 std::shared_ptr<TlsServerContext> tls)
    : config_(config),
      src_(std::move(sources)),
      clock_(clock),
      token_(std::move(token)),
      tls_ctx_(std::move(tls)),
      history_(clock, [this] { return ChartSample(); }) {
  // A copy: SIGHUP replaces the daemon's config on the main thread while this thread reads.
  full_config_ = *src_.config;
  src_.config = &full_config_;
  HttpServerOptions o;
  o.listen = config_.listen;
  o.max_connections = static_cast<size_t>(config_.max_connections);
  o.max_body_bytes = 64 * 1024;
  o.streams = true;
  // With TLS, the terminator owns console.listen and hands libmicrohttpd plaintext socketpairs.
  o.external_connections = tls_ctx_ != nullptr;
  // A SQL query runs on the server thread up to its time limit; the reply must still fit in the deadline.
  o.request_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config_.sql_timeout) +
                      std::chrono::seconds(10);
  http_ = std::make_unique<HttpServer>(o, clock_);
  http_->Route("/", [] { return HttpResponse{200, "text/html; charset=utf-8", kConsolePage, {}, nullptr}; });
  // The chart library: no data in it, so served without the token, like the page. Cached for a day: it only
  // changes with ferryd.
  auto asset = [](const char* type, const char* body) {
    return [type, body] { return HttpResponse{200, type, body, {{"Cache-Control", "max-age=86400"}}, nullptr}; };
  };
  http_->Route("/assets/uPlot.iife.min.js", asset("text/javascript; charset=utf-8", kUplotJs));
  http_->Route("/assets/uPlot.min.css", asset("text/css; charset=utf-8", kUplotCss));
  auto guarded = [this](HttpResponse (Console::*fn)(const HttpRequest&)) {
    return [this, fn](const HttpRequest& rq) {
      if (!Authorized(rq)) {
        HttpResponse r = JsonError(401, "a bearer token is required (Authorization: Bearer TOKEN)");
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"ferry\"");
        return r;
      }
      return (this->*fn)(rq);
    };
  };
  http_->Route("/api/overview", guarded(&Console::Overview), false);
  http_->Route("/api/tail", guarded(&Console::Tail), false);
  http_->Route("/api/deadletters", guarded(&Console::DeadLetters), false);
  http_->Route("/api/sql", guarded(&Console::Sql), true);
  http_->Route("/api/history", guarded(&Console::History), false);
}

Console::~Console() { Stop(); }

Status Console::Start() {
  if (Status st = http_->Start(); !st) return MakeError(st.error().code, "console.listen: " + st.error().message);
  if (tls_ctx_ != nullptr) {
    // A handshake (ECDHE + ECDSA) takes tens of ms on a gateway's core; 10 s covers a slow client and link.
    tls_ = std::make_unique<ConsoleTls>(tls_ctx_, *http_, static_cast<size_t>(config_.max_connections),
                                        std::chrono::seconds(10));
    if (Status st = tls_->Start(config_.listen); !st) {
      tls_.reset();
      return MakeError(st.error().code, "console.listen: " + st.error().message);
    }
  }
  thread_ = std::thread([this] { Serve(); });
  FERRY_LOG_INFO("console on %s (port %u)%s%s", config_.listen.c_str(), static_cast<unsigned>(port()),
                 tls_ ? ", TLS" : "", token_.empty() ? "" : ", bearer token required");
  return Ok();
}

void Console::Serve() {
  // The chart history is sampled here, between the server's steps, so that its ring needs no lock: the
  // /api/history handler runs on this thread too. A SQL query holding the thread delays a sample (the next
  // is taken when it ends; the rates are over the real interval).
  for (;;) {
    const auto next = history_.Step();
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - clock_.Steady());
    if (!http_->Step(std::clamp(wait, std::chrono::milliseconds(0), std::chrono::milliseconds(1000)))) return;
  }
}

uint16_t Console::port() const { return tls_ ? tls_->port() : http_->port(); }

void Console::Stop() {
  tls_.reset();  // closes every TLS connection and our ends of the pairs first
  http_->Stop();
  if (thread_.joinable()) thread_.join();
  // The server (and with it every tail and its commit listener) goes now, while the writer still exists.
  http_.reset(new HttpServer(HttpServerOptions{}, clock_));
}

bool Console::SameToken(const std::string& expected, const std::string& given) {
  // Every byte of the expected token is compared whatever the input: the time says nothing of how much of a
  // guess was right.
  unsigned char diff = expected.size() == given.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= static_cast<unsigned char>(static_cast<unsigned char>(expected[i]) ^ g);
  }
  return diff == 0;
}

bool Console::Authorized(const HttpRequest& rq) const {
  if (token_.empty()) return true;
  auto it = rq.headers.find("authorization");
  if (it == rq.headers.end()) return false;
  const std::string& v = it->second;
  const std::string prefix = "Bearer ";
  if (v.size() < prefix.size() || v.compare(0, prefix.size(), prefix) != 0) return false;
  return SameToken(token_, v.substr(prefix.size()));
}

HttpResponse Console::Overview(const HttpRequest&) {
  EventLog& log = *src_.log;
  ctl::CtlEnv env;
  env.clock = &clock_;
  std::ostringstream status, err;
  ctl::StatusOptions so;
  so.json = true;
  if (ctl::RunStatus(log, src_.config, so, env, status, err) != ctl::kExitOk) return JsonError(500, err.str());
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  w.StartObject();
  w.Key("gateway");
  Str(w, src_.config->gateway.id);
  w.Key("now");
  Str(w, FormatRfc3339(clock_.Now()));
  // Per stream what status does not say: the newest ingest time and the retention/budget settings.
  w.Key("streams");
  w.StartObject();
  for (const auto& name : log.ListStreams()) {
    auto st = log.GetStreamStats(name);
    if (!st) continue;
    w.Key(name.c_str());
    w.StartObject();
    w.Key("count");
    w.Uint64(st->count);
    w.Key("newest_ingest_time");
    if (st->last_ingest_time.ns == 0) w.Null(); else Str(w, FormatRfc3339(st->last_ingest_time));
    if (const StreamConfig* sc = src_.config->FindStream(name)) {
      w.Key("max_age_s");
      w.Int64(std::chrono::duration_cast<std::chrono::seconds>(sc->max_age).count());
      w.Key("max_bytes");
      w.Uint64(sc->max_bytes);
    }
    w.EndObject();
  }
  w.EndObject();
  w.Key("links");
  w.StartArray();
  if (src_.links) {
    for (const auto& l : src_.links()) {
      w.StartObject();
      w.Key("uplink");
      Str(w, l.uplink);
      w.Key("up");
      w.Bool(l.up);
      w.EndObject();
    }
  }
  w.EndArray();
  // Pipelines as `ferryctl pipelines --json` prints them, one object per pipeline and input (none: empty).
  w.Key("pipelines");
  w.StartArray();
  {
    std::ostringstream lines, perr;
    ctl::PipelinesOptions po;
    po.json = true;
    ctl::RunPipelines(log, *src_.config, po, lines, perr);
    std::istringstream in(lines.str());
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) w.RawValue(line.data(), line.size(), rapidjson::kObjectType);
  }
  w.EndArray();
  w.Key("status");
  std::string s = status.str();
  while (!s.empty() && s.back() == '\n') s.pop_back();
  w.RawValue(s.data(), s.size(), rapidjson::kObjectType);
  w.EndObject();
  return JsonReply(200, std::string(sb.GetString()) + "\n");
}

HttpResponse Console::Tail(const HttpRequest& rq) {
  auto it = rq.args.find("stream");
  if (it == rq.args.end() || it->second.empty()) return JsonError(400, "stream= is required");
  const std::string& stream = it->second;
  const uint64_t n = ArgCount(rq, "n", 10);
  auto from = LastN(*src_.log, stream, n);
  if (!from) return JsonError(from.error().code == ErrorCode::kNotFound ? 404 : 500, from.error().ToString());
  auto f = rq.args.find("filter");
  HttpResponse r;
  r.content_type = "text/event-stream";
  r.headers.emplace_back("Cache-Control", "no-store");
  r.body = ": tail of " + stream + " from seq " + std::to_string(from->value) + "\n\n";
  r.stream = std::make_shared<LiveTail>(*src_.log, *src_.writer, clock_, src_.config->gateway.id, stream, *from,
                                        static_cast<size_t>(n), f == rq.args.end() ? "" : f->second);
  return r;
}

HttpResponse Console::DeadLetters(const HttpRequest& rq) {
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  auto it = rq.args.find("stream");
  if (it == rq.args.end() || it->second.empty()) {
    std::vector<std::string> names;
    for (const auto& r : src_.config->routes) {
      if (!r.dead_letter.empty() && std::find(names.begin(), names.end(), r.dead_letter) == names.end())
        names.push_back(r.dead_letter);
    }
    w.StartObject();
    w.Key("streams");
    w.StartArray();
    for (const auto& n : names) Str(w, n);
    w.EndArray();
    w.EndObject();
    return JsonReply(200, std::string(sb.GetString()) + "\n");
  }
  const std::string& stream = it->second;
  auto from = LastN(*src_.log, stream, ArgCount(rq, "n", 50));
  if (!from) return JsonError(from.error().code == ErrorCode::kNotFound ? 404 : 500, from.error().ToString());
  auto recs = src_.log->Read(stream, *from, kMaxBacklog, kDeadLetterBytes);
  if (!recs) return JsonError(500, recs.error().ToString());
  w.StartObject();
  w.Key("stream");
  Str(w, stream);
  w.Key("records");
  w.StartArray();
  for (const auto& r : *recs) {
    w.StartObject();
    w.Key("seq");
    w.Uint64(r.seq.value);
    w.Key("ingest_time");
    Str(w, FormatRfc3339(r.ingest_time));
    w.Key("source");
    Str(w, r.event.source);
    w.Key("type");
    Str(w, r.event.type);
    w.Key("headers");  // ferry_dlq_reason, ferry_dlq_detail, ferry_dlq_topic, ferry_dlq_original_size
    w.StartObject();
    for (const auto& [k, v] : r.event.headers) {
      w.Key(k.c_str());
      Str(w, v);
    }
    w.EndObject();
    w.Key("payload_base64");
    Str(w, Base64(r.event.payload));
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return JsonReply(200, std::string(sb.GetString()) + "\n");
}

HttpResponse Console::Sql(const HttpRequest& rq) {
  if (rq.method != "POST") return JsonError(405, "POST the query as the body");
  ctl::SqlOptions o;
  o.query = rq.body;
  o.format = ctl::SqlOptions::Format::kJson;
  o.max_rows = static_cast<uint64_t>(config_.sql_max_rows);
  o.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config_.sql_timeout);
  uint64_t read = 0;
  o.records_read = &read;
  ctl::CtlEnv env;
  env.clock = &clock_;
  std::ostringstream out, err;
  int rc = ctl::RunSql(*src_.log, o, env, out, err);
  if (rc == ctl::kExitUsage) return JsonError(400, err.str());
  if (rc != ctl::kExitOk) return JsonError(422, err.str());
  std::string rows;
  std::istringstream lines(out.str());
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    rows += rows.empty() ? "" : ",";
    rows += line;
  }
  std::string note = err.str();
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  w.StartObject();
  w.Key("rows");
  w.RawValue(("[" + rows + "]").c_str(), rows.size() + 2, rapidjson::kArrayType);
  w.Key("records_read");
  w.Uint64(read);
  w.Key("note");  // e.g. the rows cut at sql_max_rows
  Str(w, note);
  w.EndObject();
  return JsonReply(200, std::string(sb.GetString()) + "\n");
}

ChartSnapshot Console::ChartSample() {
  EventLog& log = *src_.log;
  ChartSnapshot snap;
  std::vector<StreamStats> stats;
  for (const auto& name : log.ListStreams()) {
    auto st = log.GetStreamStats(name);
    if (!st) continue;  // absent from this sample; the overview reports the error
    snap.streams.push_back({st->name, st->last_seq.value, st->count, st->bytes});
    stats.push_back(std::move(*st));
  }
  for (auto& b : ctl::UplinkBacklogs(log, *src_.config, stats)) {
    if (!b.missing) snap.uplinks.push_back({std::move(b.uplink), std::move(b.stream), b.backlog, b.oldest_unsent});
  }
  return snap;
}

HttpResponse Console::History(const HttpRequest&) {
  history_.Step();  // a sample that is due is taken first (a test's ManualClock needs no wait for the loop)
  return JsonReply(200, history_.Json(clock_.Now()));
}

}  // namespace ferry
