#include "ferry/ingest_router.h"

#include <algorithm>
#include <optional>

#include "ferry/json_bounded.h"
#include "ferry/rfc3339.h"

namespace ferry {
namespace {

// MQTT v5 user properties Ferry reads as CloudEvents attributes instead of keeping them as free headers.
constexpr std::string_view kTypeProperty = "ce_type";

std::string DedupeKey(std::string_view stream, std::string_view id) {
  std::string key;
  key.reserve(stream.size() + 1 + id.size());
  key.append(stream).push_back('\x1f');
  key.append(id);
  return key;
}

// At most `max` bytes of `s`, never ending inside a UTF-8 sequence (headers must stay valid MQTT strings).
std::string_view Utf8Prefix(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // s[n] continues a sequence
  return s.substr(0, n);
}

// Ids and subjects travel as MQTT strings, CloudEvents attributes and log lines: printable UTF-8 only.
// Returns what is wrong, or nullptr.
const char* BadIdentifier(std::string_view v, size_t max_bytes) {
  if (v.size() > max_bytes) return "too long";
  for (unsigned char c : v)
    if (c < 0x20 || c == 0x7f) return "holds a control character";
  return nullptr;
}

// A producer's time as `format` writes it. A number (or numeric string) of units since 1970 may have a
// fraction and a sign; nothing else is accepted (no exponent). nullopt when it cannot be read or does not fit.
std::optional<TimeNs> ReadProducerTime(std::string_view text, TimeFormat format) {
  if (format == TimeFormat::kRfc3339) {
    auto t = ParseRfc3339(text);
    return t ? std::optional<TimeNs>(*t) : std::nullopt;
  }
  static constexpr int64_t kUnitNs[] = {0, 1'000'000'000, 1'000'000, 1'000, 1};
  const int64_t unit = kUnitNs[static_cast<int>(format)];
  size_t i = 0;
  const bool negative = !text.empty() && text[0] == '-';
  if (negative) ++i;
  int64_t whole = 0;
  size_t digits = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++digits) {
    if (__builtin_mul_overflow(whole, int64_t{10}, &whole) || __builtin_add_overflow(whole, text[i] - '0', &whole))
      return std::nullopt;
  }
  if (digits == 0) return std::nullopt;
  int64_t frac_ns = 0;  // the fraction of one unit, in ns (digits past a nanosecond are dropped)
  if (i < text.size() && text[i] == '.') {
    ++i;
    int64_t scale = unit;
    size_t frac_digits = 0;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++frac_digits) {
      scale /= 10;
      frac_ns += (text[i] - '0') * scale;
    }
    if (frac_digits == 0) return std::nullopt;
  }
  if (i != text.size()) return std::nullopt;
  int64_t ns;
  if (__builtin_mul_overflow(whole, unit, &ns) || __builtin_add_overflow(ns, frac_ns, &ns)) return std::nullopt;
  return TimeNs{negative ? -ns : ns};
}

const std::string* FindProperty(const InboundMessage& msg, std::string_view name) {
  for (const auto& [k, v] : msg.user_properties)
    if (k == name) return &v;
  return nullptr;
}

}  // namespace

const char* TimeReplacedName(TimeReplaced r) {
  switch (r) {
    case TimeReplaced::kNo: return "no";
    case TimeReplaced::kUnreadable: return "unreadable";
    case TimeReplaced::kFuture: return "future";
    case TimeReplaced::kBeforeFloor: return "before_floor";
  }
  return "unknown";
}

const char* RejectReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kNone: return "none";
    case RejectReason::kNoRoute: return "no_route";
    case RejectReason::kBadTopic: return "bad_topic";
    case RejectReason::kOversize: return "oversize";
    case RejectReason::kBadContent: return "bad_content";
    case RejectReason::kUndeclaredStream: return "undeclared_stream";
    case RejectReason::kTooDeep: return "too_deep";
    case RejectReason::kBadEventId: return "bad_event_id";
    case RejectReason::kBadSubject: return "bad_subject";
    case RejectReason::kPoison: return "poison";
  }
  return "unknown";
}

// The reader keeps its parse stack between messages, so steady-state parsing allocates nothing.
struct IngestRouter::JsonScratch {
  rapidjson::Reader reader;
};

IngestRouter::IngestRouter(std::vector<CompiledRoute> routes, std::vector<std::string> streams, uint64_t max_payload,
                           unsigned max_json_depth, DedupeWindow dedupe)
    : routes_(std::move(routes)), streams_(std::move(streams)), max_payload_(max_payload),
      max_json_depth_(max_json_depth), dedupe_(std::move(dedupe)), json_(std::make_unique<JsonScratch>()) {}

void IngestRouter::SetTimePlausibility(std::chrono::nanoseconds max_future_skew, TimeNs floor) {
  max_future_skew_ns_ = max_future_skew.count();
  time_floor_ = floor;
}
IngestRouter::~IngestRouter() = default;
IngestRouter::IngestRouter(IngestRouter&&) noexcept = default;
IngestRouter& IngestRouter::operator=(IngestRouter&&) noexcept = default;

Result<IngestRouter> IngestRouter::Create(const Config& config) {
  std::vector<CompiledRoute> routes;
  for (size_t i = 0; i < config.routes.size(); ++i) {
    const RouteConfig& rc = config.routes[i];
    auto pattern = TopicPattern::Compile(rc.filter);
    if (!pattern) return InvalidArgument("route[" + std::to_string(i) + "].filter: " + pattern.error().message);
    for (const std::string* tmpl : {&rc.stream, &rc.subject}) {
      auto names = TemplatePlaceholders(*tmpl);
      if (!names) return InvalidArgument("route[" + std::to_string(i) + "]: " + names.error().message);
      for (const auto& n : *names) {
        const auto& caps = pattern->capture_names();
        if (n != "topic" && std::find(caps.begin(), caps.end(), n) == caps.end())
          return InvalidArgument("route[" + std::to_string(i) + "]: template \"" + *tmpl + "\" uses {" + n +
                                 "}, which filter \"" + rc.filter + "\" does not capture");
      }
    }
    routes.push_back(CompiledRoute{rc, std::move(*pattern), IsJsonContentType(rc.content_type), i, false});
  }
  std::vector<std::string> streams;
  for (const auto& s : config.streams) streams.push_back(s.name);
  IngestRouter router(std::move(routes), std::move(streams), config.ingest.max_payload,
                      static_cast<unsigned>(config.ingest.max_json_depth),
                      DedupeWindow(config.ingest.dedupe_window, static_cast<size_t>(config.ingest.dedupe_capacity)));
  TimeNs floor{};
  if (!config.ingest.time_floor.empty()) {
    auto f = ParseRfc3339(config.ingest.time_floor);
    if (!f) return InvalidArgument("ingest.time_floor: " + f.error().message);
    floor = *f;
  }
  router.SetTimePlausibility(config.ingest.max_future_skew, floor);
  return router;
}

std::vector<std::string> IngestRouter::Subscriptions() const {
  std::vector<std::string> subs;
  for (const auto& r : routes_)
    if (std::find(subs.begin(), subs.end(), r.pattern.subscription()) == subs.end())
      subs.push_back(r.pattern.subscription());
  return subs;
}

bool IngestRouter::Declared(std::string_view stream) const {
  return std::find(streams_.begin(), streams_.end(), stream) != streams_.end();
}

void IngestRouter::ForgetId(std::string_view stream, std::string_view id) {
  if (!id.empty()) dedupe_.Forget(DedupeKey(stream, id));
}

void IngestRouter::RememberId(std::string_view stream, std::string_view id, TimeNs ingest_time) {
  if (!id.empty()) dedupe_.Insert(DedupeKey(stream, id), ingest_time);
}

RouteDecision IngestRouter::Reject(const CompiledRoute* route, const InboundMessage& msg, RejectReason reason,
                                   std::string detail) const {
  RouteDecision d;
  d.reason = reason;
  d.detail = std::move(detail);
  if (route == nullptr || route->config.dead_letter.empty() || !Declared(route->config.dead_letter)) {
    d.outcome = RouteOutcome::kDrop;
    if (route) d.stream = route->config.stream;
    return d;
  }
  d.outcome = RouteOutcome::kDeadLetter;
  d.stream = route->config.dead_letter;
  Event& e = d.event;
  e.source = std::string(msg.topic);
  e.type = "ferry.deadletter";
  e.datacontenttype = std::string(msg.content_type.empty() ? route->config.content_type : msg.content_type);
  e.headers.emplace_back(kDlqReasonHeader, RejectReasonName(reason));
  e.headers.emplace_back(kDlqDetailHeader, std::string(Utf8Prefix(d.detail, 512)));
  e.headers.emplace_back(kDlqTopicHeader, std::string(Utf8Prefix(msg.topic, 1024)));
  e.headers.emplace_back(kDlqSizeHeader, std::to_string(msg.payload.size()));
  e.payload = std::string(msg.payload.substr(0, reason == RejectReason::kOversize ? kDlqPayloadPrefix
                                                                                    : msg.payload.size()));
  return d;
}

RouteDecision IngestRouter::SetAside(const InboundMessage& msg, RejectReason reason, std::string detail) const {
  for (const auto& r : routes_)
    if (r.pattern.Match(msg.topic)) return Reject(&r, msg, reason, std::move(detail));
  return Reject(nullptr, msg, reason, std::move(detail));
}

RouteDecision IngestRouter::Route(const InboundMessage& msg, TimeNs now) {
  CompiledRoute* route = nullptr;
  std::optional<TopicCaptures> caps;
  for (auto& r : routes_) {
    caps = r.pattern.Match(msg.topic);
    if (caps) {
      route = &r;
      break;
    }
  }
  if (!route) return Reject(nullptr, msg, RejectReason::kNoRoute, "no route matches topic");

  for (const auto& [name, value] : *caps) {
    if (name != "topic" && value.empty())
      return Reject(route, msg, RejectReason::kBadTopic, "topic level for {" + name + "} is empty");
  }
  auto stream = ExpandTemplate(route->config.stream, *caps);
  auto subject = ExpandTemplate(route->config.subject, *caps);
  if (!stream || !subject)
    return Reject(route, msg, RejectReason::kBadTopic, (!stream ? stream.error() : subject.error()).message);
  if (!Declared(*stream))
    return Reject(route, msg, RejectReason::kUndeclaredStream, "stream \"" + *stream + "\" is not declared");
  if (max_payload_ != 0 && msg.payload.size() > max_payload_)
    return Reject(route, msg, RejectReason::kOversize,
                  "payload of " + std::to_string(msg.payload.size()) + " bytes exceeds ingest.max_payload " +
                      std::to_string(max_payload_));

  std::string id;
  if (!route->config.id_user_property.empty()) {
    if (const std::string* v = FindProperty(msg, route->config.id_user_property)) id = *v;
  }
  // The producer's time: a user property first, then the JSON member (read in the same pass as the id).
  const std::string* time_text = nullptr;
  std::string json_time;
  bool json_time_readable = true;
  if (!route->config.time_user_property.empty()) time_text = FindProperty(msg, route->config.time_user_property);
  if (route->json) {
    static const std::string kNoField;
    // Validates the JSON and picks the id and time members, without a DOM.
    TopLevelFinder finder(id.empty() ? route->config.id_json_field : kNoField,
                          time_text == nullptr ? route->config.time_json_field : kNoField);
    JsonStatus st = ParseJsonBounded(json_->reader, msg.payload, finder, max_json_depth_);
    if (!st.ok())
      return Reject(route, msg, st.failure == JsonFailure::kTooDeep ? RejectReason::kTooDeep : RejectReason::kBadContent,
                    std::move(st.message));
    TopLevelFinder::Member& idm = finder.member(0);
    if (idm.kind != TopLevelFinder::Member::kAbsent && !finder.IdIsString())
      return Reject(route, msg, RejectReason::kBadEventId,
                    "member \"" + route->config.id_json_field + "\" is not a JSON string (event ids are strings)");
    if (id.empty()) id = std::move(idm.text);
    TopLevelFinder::Member& tm = finder.member(1);
    if (tm.kind != TopLevelFinder::Member::kAbsent) {
      json_time = std::move(tm.text);
      json_time_readable = tm.kind != TopLevelFinder::Member::kOther && !tm.mixed;
      time_text = &json_time;
    }
  }
  if (const char* why = BadIdentifier(id, kMaxEventIdBytes))
    return Reject(route, msg, RejectReason::kBadEventId,
                  std::string("event id ") + why + " (at most " + std::to_string(kMaxEventIdBytes) +
                      " bytes of printable UTF-8)");
  if (const char* why = BadIdentifier(*subject, kMaxSubjectBytes))
    return Reject(route, msg, RejectReason::kBadSubject,
                  std::string("subject ") + why + " (at most " + std::to_string(kMaxSubjectBytes) +
                      " bytes of printable UTF-8)");

  RouteDecision d;
  d.stream = std::move(*stream);
  if (!id.empty() && !dedupe_.Insert(DedupeKey(d.stream, id), now)) {
    d.outcome = RouteOutcome::kDuplicate;
    d.detail = "event id " + id + " already seen";
    d.event.id = std::move(id);
    return d;
  }
  d.outcome = RouteOutcome::kStore;
  const RouteConfig& rc = route->config;
  if (id.empty() && (!rc.id_user_property.empty() || !rc.id_json_field.empty())) {
    // A misspelt id field would otherwise turn de-duplication off without a word.
    d.missing_id = true;
    if (!route->missing_id_reported) {
      route->missing_id_reported = true;
      d.report_missing_id = true;
      std::string where;
      if (!rc.id_user_property.empty()) where = "user property \"" + rc.id_user_property + "\"";
      if (!rc.id_json_field.empty()) {
        if (!where.empty()) where += " nor ";
        where += route->json ? "JSON member \"" + rc.id_json_field + "\""
                             : "JSON member \"" + rc.id_json_field + "\" (not read: content_type \"" +
                                   rc.content_type + "\" is not JSON)";
      }
      d.detail = "route[" + std::to_string(route->index) + "] (filter \"" + rc.filter + "\"): an event on " +
                 std::string(msg.topic.substr(0, 256)) + " has no " + where +
                 ": stored without an id, so not de-duplicated; further ones are counted in "
                 "ferry_ingest_missing_id_total{stream=\"" + d.stream + "\"} (logged once per route)";
    }
  }
  Event& e = d.event;
  if (time_text != nullptr) {
    std::optional<TimeNs> t;
    if (json_time_readable) t = ReadProducerTime(*time_text, rc.time_format);
    d.time_replaced = !t ? TimeReplaced::kUnreadable
                         : t->ns > now.ns + max_future_skew_ns_ ? TimeReplaced::kFuture
                         : t->ns < time_floor_.ns              ? TimeReplaced::kBeforeFloor
                                                                : TimeReplaced::kNo;
    if (d.time_replaced == TimeReplaced::kNo) {
      e.time = *t;
    } else {
      // Kept, flagged and counted: windows and ferryctl see a plausible time, the centre sees what was sent.
      e.time = now;
      e.headers.emplace_back(kTimeReplacedHeader, TimeReplacedName(d.time_replaced));
      const std::string_view sent = json_time_readable ? std::string_view(*time_text) : "(not a string or number)";
      e.headers.emplace_back(kTimeOriginalHeader, std::string(Utf8Prefix(sent, 64)));
    }
  }
  e.id = std::move(id);
  e.source = std::string(msg.topic);
  e.subject = std::move(*subject);
  e.datacontenttype = std::string(route->config.content_type.empty() ? msg.content_type : route->config.content_type);
  e.type = "ferry.mqtt";
  for (const auto& [k, v] : msg.user_properties) {
    if (k == kTypeProperty) e.type = v;
    else if (k != route->config.id_user_property) e.headers.emplace_back(k, v);
  }
  e.payload = std::string(msg.payload);
  return d;
}

}  // namespace ferry
