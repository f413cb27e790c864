// CloudEvents attribute mapping shared by the batch body (structured JSON) and per-event MQTT properties.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "ferry/json_bounded.h"
#include "ferry/wire.h"

namespace ferry {

bool operator==(const WireEvent& a, const WireEvent& b) {
  return a.id == b.id && a.source == b.source && a.type == b.type && a.time == b.time && a.subject == b.subject &&
         a.datacontenttype == b.datacontenttype && a.seq == b.seq && a.ingest_time == b.ingest_time &&
         a.headers == b.headers && a.payload == b.payload;
}

namespace {

constexpr const char* kReserved[] = {"specversion", "id",   "source",      "type",     "time",
                                     "subject",     "datacontenttype", "data", "data_base64", "ferryseq",
                                     "ferryingesttime"};

bool IsReserved(std::string_view name) {
  for (const char* r : kReserved) {
    if (name == r) return true;
  }
  return false;
}

// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm), valid for every date we can represent.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string CeExtensionName(std::string_view header_name) {
  std::string out;
  for (char c : header_name) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u >= 'A' && u <= 'Z') {
      out += static_cast<char>(u - 'A' + 'a');
    } else if ((u >= 'a' && u <= 'z') || (u >= '0' && u <= '9')) {
      out += c;
    }
  }
  if (IsReserved(out)) return "";
  return out;
}

bool IsJsonContentType(std::string_view ct) {
  std::string t;
  for (char c : ct.substr(0, ct.find(';'))) {
    if (c == ' ' || c == '\t') continue;
    t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (t == "application/json" || t == "text/json") return true;
  return t.size() > 5 && t.compare(t.size() - 5, 5, "+json") == 0 && t.find('/') != std::string::npos;
}

std::string FormatRfc3339(TimeNs t) {
  int64_t secs = t.ns / 1'000'000'000;
  int64_t frac = t.ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    secs -= 1;
  }
  time_t tt = static_cast<time_t>(secs);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  std::string out(buf, static_cast<size_t>(n));
  if (frac != 0) {
    std::snprintf(buf, sizeof buf, ".%09lld", static_cast<long long>(frac));
    out += buf;
  }
  out += 'Z';
  return out;
}

Result<TimeNs> ParseRfc3339(std::string_view s) {
  auto bad = [&]() { return InvalidArgument("bad RFC 3339 time \"" + std::string(s) + "\""); };
  auto digits = [&](size_t pos, size_t n, int64_t* out) {
    if (pos + n > s.size()) return false;
    int64_t v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
  };
  int64_t y, mo, d, h, mi, se;
  if (!digits(0, 4, &y) || s.size() < 20 || s[4] != '-' || !digits(5, 2, &mo) || s[7] != '-' ||
      !digits(8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(11, 2, &h) || s[13] != ':' ||
      !digits(14, 2, &mi) || s[16] != ':' || !digits(17, 2, &se)) {
    return bad();
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return bad();
  size_t pos = 19;
  int64_t frac = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t n = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (n < 9) frac = frac * 10 + (s[pos] - '0');
      ++n;
      ++pos;
    }
    if (n == 0) return bad();
    for (; n < 9; ++n) frac *= 10;
  }
  int64_t offset_s = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int64_t oh, om;
    if (!digits(pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !digits(pos + 4, 2, &om)) {
      return bad();
    }
    offset_s = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return bad();
  }
  if (pos != s.size()) return bad();
  int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  int64_t secs = days * 86400 + h * 3600 + mi * 60 + se - offset_s;
  return TimeNs{secs * 1'000'000'000 + frac};
}

namespace {

std::string Base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                 static_cast<uint8_t>(in[i + 2]);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

bool Base64Decode(std::string_view in, std::string* out) {
  if (in.size() % 4 != 0) return false;
  out->clear();
  out->reserve(in.size() / 4 * 3);
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  for (size_t i = 0; i < in.size(); i += 4) {
    int pad = 0;
    uint32_t v = 0;
    for (size_t j = 0; j < 4; ++j) {
      char c = in[i + j];
      if (c == '=' && i + 4 == in.size() && j >= 2) {
        ++pad;
        v <<= 6;
        continue;
      }
      int x = val(c);
      if (x < 0 || pad > 0) return false;
      v = (v << 6) | static_cast<uint32_t>(x);
    }
    out->push_back(static_cast<char>(v >> 16));
    if (pad < 2) out->push_back(static_cast<char>((v >> 8) & 0xff));
    if (pad < 1) out->push_back(static_cast<char>(v & 0xff));
  }
  return true;
}

// Compact re-serialization of a JSON text; false when it is not exactly one valid JSON value.
bool CompactJson(std::string_view text, std::string* out) {
  if (text.empty() || text.find('\0') != std::string_view::npos) return false;
  rapidjson::Document doc;
  if (!ParseJsonDocument<kWireJsonFlags>(doc, text, kMaxJsonDepthLimit).ok()) return false;
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  doc.Accept(w);
  out->assign(sb.GetString(), sb.GetSize());
  return true;
}

void WriteEvent(rapidjson::Writer<rapidjson::StringBuffer>& w, const WireEvent& e) {
  auto str = [&](const char* k, std::string_view v) {
    w.Key(k);
    w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
  };
  w.StartObject();
  str("specversion", "1.0");
  str("id", e.id);
  str("source", e.source);
  str("type", e.type);
  if (e.time.ns != 0) str("time", FormatRfc3339(e.time));
  if (!e.subject.empty()) str("subject", e.subject);
  if (!e.datacontenttype.empty()) str("datacontenttype", e.datacontenttype);
  str("ferryseq", std::to_string(e.seq.value));
  str("ferryingesttime", FormatRfc3339(e.ingest_time));
  std::vector<std::string> written;
  for (const auto& [k, v] : e.headers) {
    std::string name = CeExtensionName(k);
    if (name.empty() || std::find(written.begin(), written.end(), name) != written.end()) continue;
    written.push_back(name);
    str(name.c_str(), v);
  }
  if (!e.payload.empty()) {
    std::string compact;
    if (IsJsonContentType(e.datacontenttype) && CompactJson(e.payload, &compact)) {
      w.Key("data");
      w.RawValue(compact.data(), compact.size(), rapidjson::kObjectType);
    } else {
      str("data_base64", Base64Encode(e.payload));
    }
  }
  w.EndObject();
}

// The CloudEvents attributes both encodings share (structured JSON and MQTT user properties), assigned in one
// place. `what` names the encoding in error messages ("CloudEvent attribute", "user property").
class CeAttributes {
 public:
  explicit CeAttributes(const char* what) : what_(what) {}
  // Sets `name` if it is one of the shared attributes; false (and nothing set) otherwise.
  Result<bool> Set(WireEvent& e, const std::string& name, std::string s) {
    if (name == "specversion") {
      if (s != "1.0") return Corruption("unsupported CloudEvents specversion \"" + s + "\"");
      have_spec_ = true;
    } else if (name == "id") {
      e.id = std::move(s);
      have_id_ = true;
    } else if (name == "source") {
      e.source = std::move(s);
      have_source_ = true;
    } else if (name == "type") {
      e.type = std::move(s);
      have_type_ = true;
    } else if (name == "time" || name == "ferryingesttime") {
      auto t = ParseRfc3339(s);
      if (!t) return Corruption(std::string(what_) + " " + name + ": " + t.error().message);
      (name == "time" ? e.time : e.ingest_time) = *t;
    } else if (name == "subject") {
      e.subject = std::move(s);
    } else if (name == "ferryseq") {
      char* end = nullptr;
      errno = 0;
      unsigned long long n = std::strtoull(s.c_str(), &end, 10);
      if (s.empty() || *end != '\0' || errno != 0 || s[0] == '-') return Corruption("bad ferryseq \"" + s + "\"");
      e.seq = Seq{n};
    } else {
      return false;
    }
    return true;
  }
  bool complete() const { return have_spec_ && have_id_ && have_source_ && have_type_; }

 private:
  const char* what_;
  bool have_spec_ = false, have_id_ = false, have_source_ = false, have_type_ = false;
};

Result<WireEvent> EventFromValue(const rapidjson::Value& v) {
  if (!v.IsObject()) return Corruption("CloudEvent is not a JSON object");
  WireEvent e;
  CeAttributes attrs("CloudEvent attribute");
  for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
    std::string name(it->name.GetString(), it->name.GetStringLength());
    const rapidjson::Value& val = it->value;
    if (name == "data") {
      rapidjson::StringBuffer sb;
      rapidjson::Writer<rapidjson::StringBuffer> w(sb);
      val.Accept(w);
      e.payload.assign(sb.GetString(), sb.GetSize());
      continue;
    }
    if (!val.IsString()) return Corruption("CloudEvent attribute \"" + name + "\" is not a string");
    std::string s(val.GetString(), val.GetStringLength());
    if (name == "datacontenttype") {
      e.datacontenttype = std::move(s);
    } else if (name == "data_base64") {
      if (!Base64Decode(s, &e.payload)) return Corruption("data_base64 is not valid base64");
    } else {
      auto known = attrs.Set(e, name, s);
      if (!known) return tl::make_unexpected(known.error());
      if (!*known) e.headers.emplace_back(std::move(name), std::move(s));
    }
  }
  if (!attrs.complete()) {
    return Corruption("CloudEvent lacks one of specversion, id, source, type");
  }
  return e;
}

}  // namespace

std::string EventToJson(const WireEvent& event) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  WriteEvent(w, event);
  return std::string(sb.GetString(), sb.GetSize());
}

Result<WireEvent> EventFromJson(std::string_view json) {
  rapidjson::Document doc;
  JsonStatus st = ParseJsonDocument<kWireJsonFlags>(doc, json, kMaxJsonDepthLimit + 1);  // the envelope object around data
  if (!st.ok()) return Corruption("CloudEvent: " + st.message);
  return EventFromValue(doc);
}

std::string EventsToJsonBatch(const std::vector<WireEvent>& events) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartArray();
  for (const auto& e : events) WriteEvent(w, e);
  w.EndArray();
  return std::string(sb.GetString(), sb.GetSize());
}

Result<std::vector<WireEvent>> EventsFromJsonBatch(std::string_view json) {
  rapidjson::Document doc;
  JsonStatus st = ParseJsonDocument<kWireJsonFlags>(doc, json, kMaxJsonDepthLimit + 2);  // the batch array and each envelope around data
  if (!st.ok()) return Corruption("batch body: " + st.message);
  if (!doc.IsArray()) return Corruption("batch body is not a JSON array");
  std::vector<WireEvent> out;
  out.reserve(doc.Size());
  for (rapidjson::SizeType i = 0; i < doc.Size(); ++i) {
    auto e = EventFromValue(doc[i]);
    if (!e) return Corruption("batch event " + std::to_string(i) + ": " + e.error().message);
    out.push_back(std::move(*e));
  }
  return out;
}

MqttEventProperties ToMqttProperties(const WireEvent& e) {
  MqttEventProperties p;
  p.content_type = e.datacontenttype;
  auto& u = p.user_properties;
  u.emplace_back("specversion", "1.0");
  u.emplace_back("id", e.id);
  u.emplace_back("source", e.source);
  u.emplace_back("type", e.type);
  if (e.time.ns != 0) u.emplace_back("time", FormatRfc3339(e.time));
  if (!e.subject.empty()) u.emplace_back("subject", e.subject);
  u.emplace_back("ferryseq", std::to_string(e.seq.value));
  u.emplace_back("ferryingesttime", FormatRfc3339(e.ingest_time));
  size_t fixed = u.size();
  for (const auto& [k, v] : e.headers) {
    std::string name = CeExtensionName(k);
    bool dup = false;
    for (size_t i = fixed; i < u.size(); ++i) dup = dup || u[i].first == name;
    if (!name.empty() && !dup) u.emplace_back(std::move(name), v);
  }
  return p;
}

Result<WireEvent> FromMqttProperties(const MqttEventProperties& props, std::string payload) {
  WireEvent e;
  e.datacontenttype = props.content_type;
  e.payload = std::move(payload);
  CeAttributes attrs("user property");
  for (const auto& [name, s] : props.user_properties) {
    auto known = attrs.Set(e, name, s);
    if (!known) return tl::make_unexpected(known.error());
    if (!*known) e.headers.emplace_back(name, s);
  }
  if (!attrs.complete()) {
    return Corruption("MQTT message lacks one of the specversion, id, source, type user properties");
  }
  return e;
}

}  // namespace ferry
