// CloudEvents attribute mapping shared by the batch body (structured JSON) and per-event MQTT properties.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>

#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "cloudevents_json.h"
#include "ferry/json_bounded.h"
#include "ferry/utf8.h"
#include "ferry/wire.h"

namespace ferry {

bool operator==(const WireEvent& a, const WireEvent& b) {
  return a.id == b.id && a.source == b.source && a.type == b.type && a.time == b.time && a.subject == b.subject &&
         a.datacontenttype == b.datacontenttype && a.seq == b.seq && a.ingest_time == b.ingest_time &&
         a.headers == b.headers && a.payload == b.payload;
}

namespace {

// Every context attribute CloudEvents 1.0 defines (required and optional), its two data members, and Ferry's
// own: a header can never pose as one of them.
constexpr const char* kReserved[] = {"specversion", "id",          "source",   "type",           "time",
                                     "subject",     "datacontenttype", "dataschema", "data", "data_base64",
                                     "ferryseq",    "ferryingesttime"};

bool IsReserved(std::string_view name) {
  for (const char* r : kReserved) {
    if (name == r) return true;
  }
  return false;
}

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string CloudEventSource(std::string_view gateway, std::string_view stream) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "ferry://";
  auto put = [&](std::string_view part) {
    for (char c : part) {
      unsigned char u = static_cast<unsigned char>(c);
      if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
        out += c;
      } else {
        out += '%';
        out += kHex[u >> 4];
        out += kHex[u & 15];
      }
    }
  };
  put(gateway);
  out += '/';
  put(stream);
  return out;
}

WireEvent CloudEventOf(std::string_view gateway, std::string_view stream, Seq seq, TimeNs ingest_time, Event e) {
  // Attribute values are CloudEvents Strings: allowable Unicode only. Ingest bounds ids and subjects already;
  // a header or topic from a device may still hold a control character, percent-encoded here (deterministic,
  // and a no-op on legal strings, so what the centre de-duplicates on stays stable). Legal strings move.
  auto legal = [](std::string& s) -> std::string&& {
    if (!IsLegalUnicodeString(s)) s = LegalUnicodeString(s);
    return std::move(s);
  };
  WireEvent w;
  w.id = e.id.empty() ? std::string(gateway) + "/" + std::string(stream) + "/" + std::to_string(seq.value)
                      : legal(e.id);
  w.source = CloudEventSource(gateway, stream);
  w.type = e.type.empty() ? "ferry.event" : legal(e.type);
  w.time = e.time;
  w.subject = legal(e.subject);
  w.datacontenttype = legal(e.datacontenttype);
  w.seq = seq;
  w.ingest_time = ingest_time;
  if (e.source.empty()) {
    w.headers = std::move(e.headers);
  } else {
    w.headers.reserve(e.headers.size() + 1);
    w.headers.emplace_back(kCeTopicAttribute, legal(e.source));
    for (auto& h : e.headers) w.headers.push_back(std::move(h));
  }
  for (auto& h : w.headers)
    if (!IsLegalUnicodeString(h.second)) h.second = LegalUnicodeString(h.second);
  w.payload = std::move(e.payload);
  return w;
}

Result<std::string> ReadHmacKeyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    if (err == ENOENT) return NotFound("hmac key file " + path + ": no such file");
    return IoError("hmac key file " + path + ": " + std::strerror(err));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return IoError("hmac key file " + path + ": read failed");
  std::string key = ss.str();
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  if (key.empty()) return InvalidArgument("hmac key file " + path + " is empty");
  return key;
}

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

// Compact re-serialization of a JSON text, numbers as written; false when it is not exactly one valid JSON value.
bool CompactJson(std::string_view text, std::string* out) {
  if (text.empty()) return false;
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  CompactingHandler<rapidjson::Writer<rapidjson::StringBuffer>> h(w);
  rapidjson::Reader reader;
  if (!ParseJsonBounded(reader, text, h, kMaxJsonDepthLimit).ok()) return false;
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

// Builds WireEvents from the SAX events of one CloudEvent object, or of a batch array of them, without a DOM:
// attributes must be strings; `data` is re-serialised compactly with its numbers as written.
class CeEnvelopeHandler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, CeEnvelopeHandler> {
 public:
  explicit CeEnvelopeHandler(bool batch) : batch_(batch), member_depth_(batch ? 2 : 1) {}

  bool Null() { return Scalar([&] { return data_writer_.Null(); }); }
  bool Bool(bool b) { return Scalar([&] { return data_writer_.Bool(b); }); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
    return Scalar([&] { return data_writer_.RawValue(s, n, rapidjson::kNumberType); });
  }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    if (in_data_ > 0) return data_writer_.String(s, n);
    if (depth_ == member_depth_ && key_ != "data") return Attribute(std::string(s, n));
    return Scalar([&] { return data_writer_.String(s, n); });
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    if (in_data_ > 0) return data_writer_.Key(s, n);
    key_.assign(s, n);
    return true;
  }
  bool StartObject() {
    if (in_data_ > 0) {
      ++in_data_;
      return data_writer_.StartObject();
    }
    if (depth_ + 1 == member_depth_) {  // an envelope
      ++depth_;
      event_ = WireEvent{};
      attrs_ = CeAttributes("CloudEvent attribute");
      return true;
    }
    if (depth_ == 0) return Fail("batch body is not a JSON array");  // only in a batch: member_depth_ is 2
    return StartData() && data_writer_.StartObject();
  }
  bool EndObject(rapidjson::SizeType n) {
    if (in_data_ > 0) return data_writer_.EndObject(n) && EndData();
    --depth_;
    if (!attrs_.complete()) return Fail("CloudEvent lacks one of specversion, id, source, type");
    events_.push_back(std::move(event_));
    return true;
  }
  bool StartArray() {
    if (in_data_ > 0) {
      ++in_data_;
      return data_writer_.StartArray();
    }
    if (depth_ == 0 && batch_) {
      ++depth_;
      return true;
    }
    if (depth_ + 1 == member_depth_) return Fail("CloudEvent is not a JSON object");
    return StartData() && data_writer_.StartArray();
  }
  bool EndArray(rapidjson::SizeType n) {
    if (in_data_ > 0) return data_writer_.EndArray(n) && EndData();
    --depth_;  // the batch
    return true;
  }

  std::vector<WireEvent>& events() { return events_; }
  // Why the handler stopped the parse; empty when the parse failed on the JSON itself.
  const std::string& error() const { return error_; }

 private:
  template <typename Write>
  bool Scalar(Write write) {
    if (in_data_ > 0) return write();
    if (depth_ + 1 == member_depth_) return Fail("CloudEvent is not a JSON object");
    if (depth_ == 0) return Fail("batch body is not a JSON array");
    if (key_ != "data") return Fail("CloudEvent attribute \"" + key_ + "\" is not a string");
    return StartData() && write() && EndData();
  }
  bool StartData() {
    if (key_ != "data") return Fail("CloudEvent attribute \"" + key_ + "\" is not a string");
    data_buffer_.Clear();
    data_writer_.Reset(data_buffer_);
    in_data_ = 1;
    return true;
  }
  // After each value written inside data: the value that closes data puts it in the event.
  bool EndData() {
    if (--in_data_ > 0) return true;
    event_.payload.assign(data_buffer_.GetString(), data_buffer_.GetSize());
    return true;
  }
  bool Attribute(std::string s) {
    if (key_ == "datacontenttype") {
      event_.datacontenttype = std::move(s);
    } else if (key_ == "data_base64") {
      if (!Base64Decode(s, &event_.payload)) return Fail("data_base64 is not valid base64");
    } else {
      auto known = attrs_.Set(event_, key_, s);
      if (!known) return Fail(known.error().message);
      if (!*known) event_.headers.emplace_back(key_, std::move(s));
    }
    return true;
  }
  bool Fail(std::string why) {
    if (batch_ && depth_ >= 1)  // inside the batch array: name the event (the array's own errors come at depth 0)
      why = "batch event " + std::to_string(events_.size()) + ": " + why;
    error_ = std::move(why);
    return false;
  }

  const bool batch_;
  const int member_depth_;  // the depth of an envelope's members: 1, or 2 in a batch
  int depth_ = 0;           // containers open around us, data's not counted
  int in_data_ = 0;         // containers open inside data, +1 while data is being written
  std::string key_;
  WireEvent event_;
  CeAttributes attrs_{"CloudEvent attribute"};
  rapidjson::StringBuffer data_buffer_;
  rapidjson::Writer<rapidjson::StringBuffer> data_writer_{data_buffer_};
  std::vector<WireEvent> events_;
  std::string error_;
};

Result<std::vector<WireEvent>> ParseCloudEvents(std::string_view json, bool batch) {
  CeEnvelopeHandler h(batch);
  rapidjson::Reader reader;
  // Data may nest as deep as ingest stores it: the envelope object, and a batch's array, come on top.
  JsonStatus st = ParseJsonBounded(reader, json, h, kMaxJsonDepthLimit + (batch ? 2 : 1));
  if (!h.error().empty()) return Corruption(h.error());
  if (!st.ok()) return Corruption((batch ? "batch body: " : "CloudEvent: ") + st.message);
  return std::move(h.events());
}

}  // namespace

std::string EventToJson(const WireEvent& event) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  WriteEvent(w, event);
  return std::string(sb.GetString(), sb.GetSize());
}

Result<WireEvent> EventFromJson(std::string_view json) {
  auto events = ParseCloudEvents(json, false);
  if (!events) return tl::make_unexpected(events.error());
  return std::move(events->front());
}

void WriteEventsJsonBatch(const std::vector<WireEvent>& events, rapidjson::StringBuffer& out) {
  rapidjson::Writer<rapidjson::StringBuffer> w(out);
  w.StartArray();
  for (const auto& e : events) WriteEvent(w, e);
  w.EndArray();
}

std::string EventsToJsonBatch(const std::vector<WireEvent>& events) {
  rapidjson::StringBuffer sb;
  WriteEventsJsonBatch(events, sb);
  return std::string(sb.GetString(), sb.GetSize());
}

Result<std::vector<WireEvent>> EventsFromJsonBatch(std::string_view json) { return ParseCloudEvents(json, true); }

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
