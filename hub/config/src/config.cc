// Config parsing, driven by the declaration table in config_keys.cc.
#include "ferry/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>
#include <fstream>
#include <map>
#include <sstream>

#include <toml++/toml.h>

#include "toml_precheck.h"

namespace ferry {
namespace {

constexpr int64_t kNsPer[] = {1, 1'000, 1'000'000, 1'000'000'000, 60'000'000'000, 3'600'000'000'000,
                              86'400'000'000'000};
constexpr const char* kDurUnits[] = {"ns", "us", "ms", "s", "m", "h", "d"};

bool MulOverflows(int64_t a, int64_t b, int64_t* out) { return __builtin_mul_overflow(a, b, out); }

std::vector<std::string> SplitAllowed(const char* allowed) {
  std::vector<std::string> out;
  std::string cur;
  for (const char* p = allowed; *p; ++p) {
    if (*p == '|') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += *p;
    }
  }
  out.push_back(cur);
  return out;
}

std::string JoinAllowed(const char* allowed, const char* sep) {
  std::string out;
  for (const auto& a : SplitAllowed(allowed)) {
    if (!out.empty()) out += sep;
    out += a;
  }
  return out;
}

// Where a problem is: "file:line:column".
std::string Where(const std::string& file, const toml::source_region& r) {
  return file + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

tl::unexpected<Error> ConfigError(const std::string& file, const toml::source_region& r, const std::string& key,
                                  const std::string& msg) {
  return InvalidArgument(Where(file, r) + ": " + key + ": " + msg);
}

const char* NodeTypeName(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    default: return "a date/time";
  }
}

// The allowed value of `key` most like `text`: a shared prefix of at least 3 characters ("batched" and
// "batch"), else "".
std::string NearestAllowed(const ConfigKey& key, const std::string& text) {
  std::string best;
  size_t best_len = 2;
  for (const auto& a : SplitAllowed(key.allowed)) {
    size_t n = 0;
    while (n < a.size() && n < text.size() && a[n] == text[n]) ++n;
    if (n > best_len) {
      best = a;
      best_len = n;
    }
  }
  return best;
}

// An enum value that is not allowed: its own list, and when the value is another enum key's spelling (uplink
// mode "batched" in ingest.durability), which key takes it and what this key's nearest value is.
std::string EnumValueError(const ConfigKey& key, const std::string& text) {
  std::string msg = "\"" + text + "\" is not one of " + JoinAllowed(key.allowed, ", ");
  std::vector<std::string> others;
  for (const auto& k : ConfigKeys()) {
    if (k.type != KeyType::kEnum || &k == &key) continue;
    auto allowed = SplitAllowed(k.allowed);
    if (std::find(allowed.begin(), allowed.end(), text) != allowed.end()) others.push_back(KeyPath(k));
  }
  std::string nearest = NearestAllowed(key, text);
  if (!nearest.empty()) msg += "; did you mean " + nearest + "?";
  if (others.size() == 1) {
    const bool vowel = std::strchr("aeiou", others[0][0]) != nullptr;
    msg += " (" + text + " is " + (vowel ? "an " : "a ") + others[0] + " value)";
  } else if (!others.empty()) {
    std::string list;
    for (const auto& o : others) list += (list.empty() ? "" : ", ") + o;
    msg += " (" + text + " is a value of " + list + ")";
  }
  return msg;
}

// Converts text (a default, or a TOML string) to a value of the key's type. Returns "" or an error message.
std::string ParseText(const ConfigKey& key, const std::string& text, ConfigValue* v) {
  switch (key.type) {
    case KeyType::kString:
      v->s = text;
      return "";
    case KeyType::kInt: {
      errno = 0;
      char* end = nullptr;
      long long n = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || errno != 0) return "\"" + text + "\" is not an integer";
      v->i = n;
      return "";
    }
    case KeyType::kDuration: {
      auto d = ParseDuration(text);
      if (!d) return d.error().message;
      v->i = d->count();
      return "";
    }
    case KeyType::kSize: {
      auto s = ParseSize(text);
      if (!s) return s.error().message;
      if (*s > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return "size too large";
      v->i = static_cast<int64_t>(*s);
      return "";
    }
    case KeyType::kBool:
      if (text == "true") {
        v->b = true;
      } else if (text == "false") {
        v->b = false;
      } else {
        return "\"" + text + "\" is not true or false";
      }
      return "";
    case KeyType::kEnum: {
      auto allowed = SplitAllowed(key.allowed);
      for (size_t i = 0; i < allowed.size(); ++i) {
        if (allowed[i] == text) {
          v->i = static_cast<int64_t>(i);
          return "";
        }
      }
      return EnumValueError(key, text);
    }
    case KeyType::kStringList: {
      v->list.clear();
      std::string cur;
      for (char c : text) {
        if (c == ',') {
          v->list.push_back(cur);
          cur.clear();
        } else {
          cur += c;
        }
      }
      if (!cur.empty()) v->list.push_back(cur);
      return "";
    }
  }
  return "unknown key type";
}

// Converts a TOML node. Returns "" or an error message.
std::string ConvertNode(const ConfigKey& key, const toml::node& node, ConfigValue* v) {
  switch (key.type) {
    case KeyType::kString:
    case KeyType::kEnum:
      if (!node.is_string()) return std::string("expected a string, got ") + NodeTypeName(node);
      return ParseText(key, node.as_string()->get(), v);
    case KeyType::kInt:
      if (!node.is_integer()) return std::string("expected an integer, got ") + NodeTypeName(node);
      v->i = node.as_integer()->get();
      return "";
    case KeyType::kDuration:
      if (node.is_integer() && node.as_integer()->get() == 0) {
        v->i = 0;
        return "";
      }
      if (!node.is_string()) {
        return std::string("expected a duration string such as \"30s\", got ") + NodeTypeName(node);
      }
      return ParseText(key, node.as_string()->get(), v);
    case KeyType::kSize:
      if (node.is_integer()) {
        if (node.as_integer()->get() < 0) return "a size cannot be negative";
        v->i = node.as_integer()->get();
        return "";
      }
      if (!node.is_string()) {
        return std::string("expected a size such as \"512MiB\" or an integer, got ") + NodeTypeName(node);
      }
      return ParseText(key, node.as_string()->get(), v);
    case KeyType::kBool:
      if (!node.is_boolean()) return std::string("expected true or false, got ") + NodeTypeName(node);
      v->b = node.as_boolean()->get();
      return "";
    case KeyType::kStringList: {
      if (!node.is_array()) return std::string("expected an array of strings, got ") + NodeTypeName(node);
      v->list.clear();
      for (const auto& el : *node.as_array()) {
        if (!el.is_string()) return std::string("expected an array of strings, found ") + NodeTypeName(el);
        v->list.push_back(el.as_string()->get());
      }
      return "";
    }
  }
  return "unknown key type";
}

std::string CheckRange(const ConfigKey& key, const ConfigValue& v) {
  if (key.type != KeyType::kInt && key.type != KeyType::kDuration && key.type != KeyType::kSize) return "";
  if (v.i >= key.min && v.i <= key.max) return "";
  auto show = [&](int64_t n) {
    if (key.type == KeyType::kDuration) return FormatDuration(Duration(n));
    return std::to_string(n);
  };
  std::string unit = key.type == KeyType::kSize ? " bytes" : "";
  if (key.max == std::numeric_limits<int64_t>::max()) return "must be at least " + show(key.min) + unit;
  return "must be between " + show(key.min) + " and " + show(key.max) + unit;
}

// The struct of a top-level section.
const void* TopSection(const Config& c, const std::string& section) {
  if (section == "gateway") return &c.gateway;
  if (section == "storage") return &c.storage;
  if (section == "ingest") return &c.ingest;
  if (section == "metrics") return &c.metrics;
  if (section == "console") return &c.console;
  if (section == "log") return &c.log;
  return nullptr;
}

// The struct a section's keys are stored into; for a repeated section, a new element.
void* SectionObject(Config& c, const std::string& section) {
  if (const void* top = TopSection(c, section)) return const_cast<void*>(top);
  if (section == "route") return &c.routes.emplace_back();
  if (section == "stream") return &c.streams.emplace_back();
  if (section == "uplink") return &c.uplinks.emplace_back();
  if (section == "pipeline") return &c.pipelines.emplace_back();
  if (section == "downlink") return &c.downlinks.emplace_back();
  return nullptr;
}

// A new element of a nested repeated section ("pipeline.step") inside its parent's object.
void* ChildObject(const std::string& section, void* parent) {
  if (section == "pipeline.step") return &static_cast<PipelineConfig*>(parent)->steps.emplace_back();
  if (section == "pipeline.step.upgrade") return &static_cast<PipelineStepConfig*>(parent)->upgrades.emplace_back();
  return nullptr;
}

const ConfigSection* FindSection(const std::string& name) {
  for (const auto& s : ConfigSections())
    if (name == s.name) return &s;
  return nullptr;
}

void ApplyDefaults(const std::string& section, void* obj) {
  for (const auto& key : ConfigKeys()) {
    if (section != key.section || key.default_text == nullptr) continue;
    ConfigValue v;
    ParseText(key, key.default_text, &v);  // the defaults are checked by a test
    key.store(obj, v);
  }
}

// Positions of elements and keys ("route[0]", "route[0].stream") for errors found after parsing.
using Positions = std::map<std::string, toml::source_region>;

// Why `filter` is not a valid MQTT topic filter with at least one wildcard ("" if it is): levels split by '/',
// '+' only as a whole level, '#' only as the whole last level (MQTT 5.0, 4.7.1).
std::string CheckMqttTopicFilter(const std::string& filter) {
  if (filter.size() > 65'535) return "is longer than 65,535 bytes";
  if (filter.find('\0') != std::string::npos) return "contains a NUL character";
  bool wildcard = false;
  size_t start = 0;
  for (;;) {
    const size_t slash = filter.find('/', start);
    const std::string level = filter.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    const bool last = slash == std::string::npos;
    if (level.find_first_of("+#") != std::string::npos) {
      if (level == "#" && !last) return "'#' must be the last level of a topic filter: \"" + filter + "\"";
      if (level != "+" && level != "#")
        return "a wildcard ('+', '#') must be a whole level: \"" + level + "\" in \"" + filter + "\"";
      wildcard = true;
    }
    if (last) break;
    start = slash + 1;
  }
  if (!wildcard)
    return "\"" + filter + "\" has no wildcard: a table's rows are the topics under one, e.g. \"central/assets/#\" "
           "(row key = the topic's levels from the first wildcard on)";
  return "";
}

class Parser {
 public:
  explicit Parser(std::string file) : file_(std::move(file)) {}

  Result<Config> Parse(const toml::table& root) {
    Config c;
    c.source_name = file_;
    for (const auto& s : ConfigSections()) {
      if (!s.repeated) ApplyDefaults(s.name, SectionObject(c, s.name));
    }
    for (const auto& [k, node] : root) {
      std::string name(k.str());
      const ConfigSection* section = nullptr;
      for (const auto& s : ConfigSections()) {
        if (name == s.name) section = &s;
      }
      if (section == nullptr || std::strchr(section->name, '.') != nullptr)
        return ConfigError(file_, node.source(), name, "unknown section or key");
      if (!section->repeated) {
        if (!node.is_table()) return ConfigError(file_, node.source(), name, "must be a table: [" + name + "]");
        positions_[name] = node.source();
        auto st = Walk(*node.as_table(), *section, "", name, SectionObject(c, name));
        if (!st) return tl::unexpected(st.error());
        continue;
      }
      const toml::array* arr = node.as_array();
      if (arr == nullptr || !arr->is_array_of_tables()) {
        return ConfigError(file_, node.source(), name, "must be an array of tables: [[" + name + "]]");
      }
      for (size_t i = 0; i < arr->size(); ++i) {
        const toml::table& el = *arr->get(i)->as_table();
        std::string path = name + "[" + std::to_string(i) + "]";
        positions_[path] = el.source();
        void* obj = SectionObject(c, name);
        auto st = WalkElement(el, *section, path, obj);
        if (!st) return tl::unexpected(st.error());
      }
    }
    auto st = CrossCheck(c);
    if (!st) return tl::unexpected(st.error());
    return c;
  }

 private:
  // One element of a repeated section: defaults, its keys, then the required ones that are missing.
  Status WalkElement(const toml::table& el, const ConfigSection& section, const std::string& path, void* obj) {
    const std::string name = section.name;
    ApplyDefaults(name, obj);
    auto st = Walk(el, section, "", path, obj);
    if (!st) return st;
    for (const auto& key : ConfigKeys()) {
      if (name == key.section && key.default_text == nullptr && !seen_.count(path + "." + key.name)) {
        return ConfigError(file_, el.source(), path + "." + key.name, "required key is missing");
      }
    }
    return Ok();
  }

  Status Walk(const toml::table& t, const ConfigSection& section, const std::string& prefix,
              const std::string& path, void* obj) {
    for (const auto& [k, node] : t) {
      std::string name = prefix + std::string(k.str());
      std::string full = path + "." + name;
      const ConfigKey* key = nullptr;
      bool is_prefix = false;
      for (const auto& d : ConfigKeys()) {
        if (std::strcmp(d.section, section.name) != 0) continue;
        if (name == d.name) key = &d;
        if (std::strncmp(d.name, (name + ".").c_str(), name.size() + 1) == 0) is_prefix = true;
      }
      if (key == nullptr && prefix.empty()) {
        // A nested repeated section: [[pipeline.step]] inside a [[pipeline]].
        const ConfigSection* child = FindSection(std::string(section.name) + "." + name);
        if (child != nullptr && child->repeated) {
          const toml::array* arr = node.as_array();
          if (arr == nullptr || !arr->is_array_of_tables())
            return ConfigError(file_, node.source(), full, "must be an array of tables: [[" + std::string(child->name) + "]]");
          for (size_t i = 0; i < arr->size(); ++i) {
            const toml::table& el = *arr->get(i)->as_table();
            std::string el_path = full + "[" + std::to_string(i) + "]";
            positions_[el_path] = el.source();
            auto st = WalkElement(el, *child, el_path, ChildObject(child->name, obj));
            if (!st) return st;
          }
          continue;
        }
      }
      if (key == nullptr) {
        if (is_prefix && node.is_table()) {
          auto st = Walk(*node.as_table(), section, name + ".", path, obj);
          if (!st) return st;
          continue;
        }
        return ConfigError(file_, node.source(), full, "unknown key");
      }
      ConfigValue v;
      std::string err = ConvertNode(*key, node, &v);
      if (err.empty()) err = CheckRange(*key, v);
      if (err.empty() && key->check != nullptr) err = key->check(v);
      if (!err.empty()) return ConfigError(file_, node.source(), full, err);
      key->store(obj, v);
      seen_.insert(full);
      positions_[full] = node.source();
    }
    return Ok();
  }

  tl::unexpected<Error> ErrorAt(const std::string& path, const std::string& msg) {
    // The key's own position if it was written, else its element's.
    auto it = positions_.find(path);
    // else the innermost element's ("pipeline[0].step[2]"), else the section's.
    for (size_t dot = path.rfind('.'); it == positions_.end() && dot != std::string::npos && dot > 0;
         dot = path.rfind('.', dot - 1))
      it = positions_.find(path.substr(0, dot));
    if (it == positions_.end()) return InvalidArgument(file_ + ": " + path + ": " + msg);
    return ConfigError(file_, it->second, path, msg);
  }

  // A Kafka uplink: bootstrap servers as host:port[,host:port...], a topic template whose fixed characters
  // Kafka allows in a topic name, and kafka.properties entries of the form name=value (librdkafka itself
  // checks names and values when the uplink starts).
  Status CheckKafkaUplink(const std::string& path, const UplinkConfig& u) {
    if (u.topic.find("{topic}") != std::string::npos)
      return ErrorAt(path + ".topic", "{topic} is an MQTT topic ('/' levels): not a Kafka topic name; use "
                                      "{gateway}, {stream} or {subject}");
    if (auto st = CheckKafkaServers(path, "uplink", u.address); !st) return st;
    bool in_placeholder = false;
    for (char c : u.topic) {
      if (c == '{') in_placeholder = true;
      if (!in_placeholder && !std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
        return ErrorAt(path + ".topic", std::string("'") + c + "' is not allowed in a Kafka topic name (letters, "
                                        "digits, '.', '_' and '-'); e.g. \"ferry.{gateway}.{stream}\"");
      if (c == '}') in_placeholder = false;
    }
    return CheckKafkaProperties(path, u.kafka.properties);
  }

  // The address's scheme and tls.enabled must agree: Paho needs TLS options for ssl:// and would speak TLS
  // to a plain listener otherwise, failing later with a vaguer message.
  Status CheckTlsScheme(const std::string& path, const std::string& address, const TlsConfig& tls) {
    bool secure = false;
    for (const char* scheme : {"ssl://", "mqtts://", "wss://"}) secure |= address.rfind(scheme, 0) == 0;
    if (secure && !tls.enabled) {
      return ErrorAt(path + ".address", "\"" + address + "\" is a TLS address, but " + path +
                                            ".tls.enabled is false: set it to true");
    }
    if (!secure && tls.enabled) {
      return ErrorAt(path + ".tls.enabled", "is true, but " + path + ".address \"" + address +
                                                "\" is not a TLS address (ssl://, mqtts:// or wss://)");
    }
    return Ok();
  }

  // An MQTT broker URI, checked as ingest.address is.
  Status CheckMqttAddress(const std::string& path, const std::string& address) {
    ConfigValue v;
    v.s = address;
    for (const auto& key : ConfigKeys()) {
      if (std::strcmp(key.section, "ingest") == 0 && std::strcmp(key.name, "address") == 0) {
        std::string err = key.check(v);
        if (!err.empty()) return ErrorAt(path + ".address", err);
      }
    }
    return Ok();
  }

  // Bootstrap servers: host:port[,host:port...], not a URI.
  Status CheckKafkaServers(const std::string& path, const char* what, const std::string& address) {
    if (address.find("://") != std::string::npos)
      return ErrorAt(path + ".address", std::string("a kafka ") + what + "'s address is bootstrap servers "
                                        "host:port[,host:port...], not a URI: \"" + address + "\"");
    size_t start = 0;
    for (;;) {
      const size_t comma = address.find(',', start);
      const std::string server = address.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      const size_t colon = server.rfind(':');
      if (server.empty() || colon == std::string::npos || colon == 0 || colon + 1 == server.size())
        return ErrorAt(path + ".address", "\"" + server + "\" is not host:port (kafka bootstrap servers)");
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return Ok();
  }

  Status CheckKafkaProperties(const std::string& path, const std::vector<std::string>& properties) {
    for (const auto& e : properties) {
      const auto eq = e.find('=');
      if (eq == std::string::npos || eq == 0)
        return ErrorAt(path + ".kafka.properties", "\"" + e + "\" is not name=value");
    }
    return Ok();
  }

  // [[downlink]]: unique names; the table a declared stream of kind "table" that no route, pipeline or other
  // downlink writes (two writers would interleave two tables' rows); a Kafka topic name.
  Status CheckDownlinks(const Config& c) {
    std::map<std::string, size_t> names, tables;
    for (size_t i = 0; i < c.downlinks.size(); ++i) {
      const DownlinkConfig& d = c.downlinks[i];
      const std::string path = "downlink[" + std::to_string(i) + "]";
      if (auto [it, inserted] = names.emplace(d.name, i); !inserted)
        return ErrorAt(path + ".name", "downlink \"" + d.name + "\" is already declared as downlink[" +
                                           std::to_string(it->second) + "]");
      const StreamConfig* table = c.FindStream(d.table);
      if (table == nullptr)
        return ErrorAt(path + ".table", "stream \"" + d.table + "\" is not declared in a [[stream]]");
      if (table->kind != StreamKind::kTable)
        return ErrorAt(path + ".table", "stream \"" + d.table + "\" is not a table: declare it with kind = \"table\"");
      if (auto [it, inserted] = tables.emplace(d.table, i); !inserted)
        return ErrorAt(path + ".table", "stream \"" + d.table + "\" is already the table of downlink[" +
                                            std::to_string(it->second) + "]");
      for (const auto& r : c.routes)
        if (r.stream == d.table || r.dead_letter == d.table)
          return ErrorAt(path + ".table", "stream \"" + d.table + "\" is also written by the route \"" + r.filter +
                                              "\": a downlink's table must have no other writer");
      for (const auto& p : c.pipelines)
        if (p.output == d.table || p.dead_letter == d.table)
          return ErrorAt(path + ".table", "stream \"" + d.table + "\" is also written by pipeline \"" + p.name +
                                              "\": a downlink's table must have no other writer");
      if (d.type == DownlinkType::kMqtt) {
        if (auto st = CheckMqttAddress(path, d.address); !st) return st;
        if (auto st = CheckTlsScheme(path, d.address, d.tls); !st) return st;
        if (d.topic.empty()) return ErrorAt(path + ".topic", "is empty: give the MQTT topic filter of the table's rows");
        if (std::string why = CheckMqttTopicFilter(d.topic); !why.empty()) return ErrorAt(path + ".topic", why);
        if (!d.properties.empty())
          return ErrorAt(path + ".kafka.properties", "is set, but this downlink's type is \"mqtt\"");
      } else {
        if (auto st = CheckKafkaServers(path, "downlink", d.address); !st) return st;
        if (d.topic.empty()) return ErrorAt(path + ".topic", "is empty: name the Kafka topic holding the table");
        for (char ch : d.topic)
          if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-')
            return ErrorAt(path + ".topic", std::string("'") + ch + "' is not allowed in a Kafka topic name (letters, "
                                            "digits, '.', '_' and '-')");
        if (auto st = CheckKafkaProperties(path, d.properties); !st) return st;
      }
      if (d.backoff.min > d.backoff.max) return ErrorAt(path + ".backoff.min", "is larger than backoff.max");
    }
    return Ok();
  }

  // Units a `units` step converts between, and their dimension.
  static const char* UnitDimension(const std::string& u) {
    for (const char* t : {"C", "F", "K"})
      if (u == t) return "temperature";
    for (const char* p : {"Pa", "kPa", "bar", "psi"})
      if (u == p) return "pressure";
    return nullptr;
  }

  // "a=b" entries of a list: both sides non-empty.
  Status CheckPairs(const std::string& path, const std::vector<std::string>& list) {
    for (const auto& e : list) {
      auto eq = e.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == e.size())
        return ErrorAt(path, "\"" + e + "\" is not name=value");
    }
    return Ok();
  }

  Status CheckPipelines(const Config& c, const std::map<std::string, size_t>& streams) {
    std::map<std::string, size_t> names;
    for (size_t i = 0; i < c.pipelines.size(); ++i) {
      const PipelineConfig& p = c.pipelines[i];
      const std::string path = "pipeline[" + std::to_string(i) + "]";
      auto [it, inserted] = names.emplace(p.name, i);
      if (!inserted)
        return ErrorAt(path + ".name", "pipeline \"" + p.name + "\" is already declared as pipeline[" +
                                           std::to_string(it->second) + "]");
      if (p.input.empty()) return ErrorAt(path + ".input", "names no stream");
      // Its cursor is "pipeline.<name>", and cursor names have at most 64 bytes.
      if (p.name.size() > 55) return ErrorAt(path + ".name", "must be at most 55 characters (the cursor is pipeline.<name>)");
      auto declared = [&](const std::string& key, const std::string& s) -> Status {
        if (!streams.count(s)) return ErrorAt(path + "." + key, "stream \"" + s + "\" is not declared in a [[stream]]");
        return Ok();
      };
      // Writing to a stream the pipeline reads would feed its own output back to it, forever.
      auto not_input = [&](const std::string& key, const std::string& s) -> Status {
        if (std::find(p.input.begin(), p.input.end(), s) != p.input.end())
          return ErrorAt(path + "." + key, "stream \"" + s + "\" is also an input of pipeline \"" + p.name +
                                               "\": its output would come back to it");
        return Ok();
      };
      for (const auto& s : p.input)
        if (auto st = declared("input", s); !st) return st;
      if (auto st = declared("output", p.output); !st) return st;
      if (auto st = not_input("output", p.output); !st) return st;
      if (!p.dead_letter.empty()) {
        if (auto st = declared("dead_letter", p.dead_letter); !st) return st;
        if (auto st = not_input("dead_letter", p.dead_letter); !st) return st;
      }
      int window_step = -1;
      for (size_t j = 0; j < p.steps.size(); ++j) {
        const PipelineStepConfig& s = p.steps[j];
        const std::string sp = path + ".step[" + std::to_string(j) + "]";
        auto need = [&](const char* key, bool present) -> Status {
          if (!present) return ErrorAt(sp + ".type", std::string("this step type needs `") + key + "`");
          return Ok();
        };
        Status st = Ok();
        switch (s.type) {
          case PipelineStepType::kFilter: st = need("where", !s.where.empty()); break;
          case PipelineStepType::kSet:
            st = need("field", !s.field.empty());
            if (st) st = need("value", !s.value.empty());
            break;
          case PipelineStepType::kDrop:
          case PipelineStepType::kProject: st = need("fields", !s.fields.empty()); break;
          case PipelineStepType::kRename:
            st = need("from", !s.from.empty());
            if (st) st = need("to", !s.to.empty());
            break;
          case PipelineStepType::kUnits: {
            st = need("field", !s.field.empty());
            if (st) st = need("from", !s.from.empty());
            if (st) st = need("to", !s.to.empty());
            if (!st) break;
            const char* df = UnitDimension(s.from);
            const char* dt = UnitDimension(s.to);
            if (df == nullptr) return ErrorAt(sp + ".from", "unknown unit \"" + s.from + "\" (C, F, K, Pa, kPa, bar, psi)");
            if (dt == nullptr) return ErrorAt(sp + ".to", "unknown unit \"" + s.to + "\" (C, F, K, Pa, kPa, bar, psi)");
            if (std::strcmp(df, dt) != 0)
              return ErrorAt(sp + ".to", "cannot convert " + std::string(df) + " (" + s.from + ") to " + dt + " (" + s.to + ")");
            break;
          }
          case PipelineStepType::kSchemaUpgrade: {
            st = need("[[pipeline.step.upgrade]]", !s.upgrades.empty());
            if (!st) break;
            std::map<int64_t, size_t> versions;
            for (size_t u = 0; u < s.upgrades.size(); ++u) {
              const std::string up = sp + ".upgrade[" + std::to_string(u) + "]";
              if (!versions.emplace(s.upgrades[u].version, u).second)
                return ErrorAt(up + ".version", "version " + std::to_string(s.upgrades[u].version) + " is upgraded twice");
              if (auto r = CheckPairs(up + ".rename", s.upgrades[u].rename); !r) return r;
              if (auto r = CheckPairs(up + ".defaults", s.upgrades[u].defaults); !r) return r;
            }
            // Contiguous: from the lowest declared version every step to the newest exists.
            int64_t expect = versions.begin()->first;
            for (const auto& [v, u] : versions) {
              if (v != expect)
                return ErrorAt(sp + ".upgrade[" + std::to_string(u) + "].version",
                               "no upgrade from version " + std::to_string(expect) + " to " + std::to_string(expect + 1));
              ++expect;
            }
            break;
          }
          case PipelineStepType::kRoute:
            st = need("by", !s.by.empty());
            if (st) st = need("outputs", !s.outputs.empty());
            if (!st) break;
            for (const auto& o : s.outputs) {
              if (!streams.count(o)) return ErrorAt(sp + ".outputs", "stream \"" + o + "\" is not declared in a [[stream]]");
              if (std::find(p.input.begin(), p.input.end(), o) != p.input.end())
                return ErrorAt(sp + ".outputs", "stream \"" + o + "\" is also an input of pipeline \"" + p.name + "\"");
            }
            break;
          case PipelineStepType::kScript: st = need("script", !s.script.empty()); break;
          case PipelineStepType::kWindow: {
            if (window_step >= 0)
              return ErrorAt(sp + ".type", "a pipeline has at most one window step (step[" + std::to_string(window_step) + "] is one)");
            window_step = static_cast<int>(j);
            const int64_t size = s.size.count();
            if (s.window != WindowType::kSession && size <= 0)
              return ErrorAt(sp + ".size", "a tumbling, hopping or sliding window needs a size > 0");
            if (s.window == WindowType::kHopping) {
              if (s.hop.count() <= 0) return ErrorAt(sp + ".hop", "a hopping window needs a hop > 0");
              if (s.hop.count() > size) return ErrorAt(sp + ".hop", "must be at most size");
              if (size / s.hop.count() > 64) return ErrorAt(sp + ".hop", "size / hop must be at most 64 (an event is in size / hop windows)");
            }
            if (s.window == WindowType::kSession && s.gap.count() <= 0)
              return ErrorAt(sp + ".gap", "a session window needs a gap > 0");
            bool needs_field = false;
            for (const auto& a : s.aggregates) {
              if (a == "count") continue;
              if (a == "sum" || a == "min" || a == "max" || a == "avg" || a == "first" || a == "last") {
                needs_field = true;
                continue;
              }
              char* end = nullptr;
              double q = a.size() > 1 && a[0] == 'p' ? std::strtod(a.c_str() + 1, &end) : -1;
              if (end == nullptr || *end != '\0' || !(q > 0 && q < 100))
                return ErrorAt(sp + ".aggregates", "\"" + a + "\" is not an aggregate (count, sum, min, max, avg, first, last, p1..p99)");
              needs_field = true;
            }
            if (needs_field && s.field.empty()) return ErrorAt(sp + ".field", "the aggregates need the field they aggregate");
            if (!s.late_output.empty()) {
              if (auto r = declared("step[" + std::to_string(j) + "].late_output", s.late_output); !r) return r;
              if (auto r = not_input("step[" + std::to_string(j) + "].late_output", s.late_output); !r) return r;
            }
            break;
          }
          case PipelineStepType::kLookup: {
            st = need("field", !s.field.empty());
            if (st) st = need("table", !s.table.empty());
            if (st) st = need("into", !s.into.empty());
            if (st && s.missing == LookupMissing::kDefault) st = need("value", !s.value.empty());
            if (!st) break;
            const StreamConfig* t = c.FindStream(s.table);
            if (t == nullptr) return ErrorAt(sp + ".table", "stream \"" + s.table + "\" is not declared in a [[stream]]");
            if (t->kind != StreamKind::kTable)
              return ErrorAt(sp + ".table", "stream \"" + s.table + "\" is not a table: declare it with kind = \"table\"");
            break;
          }
          case PipelineStepType::kThreshold:
            if (window_step < 0) return ErrorAt(sp + ".type", "a threshold step reads window results: put it after a window step");
            st = need("where", !s.where.empty());
            if (st) st = need("output", !s.output.empty());
            if (!st) break;
            if (auto r = declared("step[" + std::to_string(j) + "].output", s.output); !r) return r;
            if (auto r = not_input("step[" + std::to_string(j) + "].output", s.output); !r) return r;
            if (!s.table.empty()) {  // limits per key from a table: the row goes into `into` (default "row")
              if (s.missing == LookupMissing::kDefault) st = need("value", !s.value.empty());
              if (!st) break;
              const StreamConfig* t = c.FindStream(s.table);
              if (t == nullptr) return ErrorAt(sp + ".table", "stream \"" + s.table + "\" is not declared in a [[stream]]");
              if (t->kind != StreamKind::kTable)
                return ErrorAt(sp + ".table", "stream \"" + s.table + "\" is not a table: declare it with kind = \"table\"");
            }
            break;
        }
        if (!st) return st;
        if (window_step >= 0 && static_cast<int>(j) != window_step && s.type != PipelineStepType::kThreshold)
          return ErrorAt(sp + ".type", "only threshold steps may follow a window step");
      }
    }
    return Ok();
  }

  Status CrossCheck(const Config& c) {
    std::map<std::string, size_t> streams;
    for (size_t i = 0; i < c.streams.size(); ++i) {
      auto [it, inserted] = streams.emplace(c.streams[i].name, i);
      if (!inserted) {
        return ErrorAt("stream[" + std::to_string(i) + "].name",
                       "stream \"" + c.streams[i].name + "\" is already declared as stream[" +
                           std::to_string(it->second) + "]");
      }
    }
    auto check_backoff = [&](const std::string& path, const BackoffConfig& b) -> Status {
      if (b.min > b.max) return ErrorAt(path + ".backoff.min", "is larger than backoff.max");
      return Ok();
    };
    if (auto st = check_backoff("ingest", c.ingest.backoff); !st) return st;
    if (auto st = CheckTlsScheme("ingest", c.ingest.address, c.ingest.tls); !st) return st;
    const ListenConfig& l = c.ingest.listen;
    if (l.tls_enabled && (l.tls_cert_file.empty() || l.tls_key_file.empty()))
      return ErrorAt("ingest.listen.tls.enabled", "is true: set listen.tls.cert_file and listen.tls.key_file");
    if (l.tls_require_client_cert && l.tls_ca_file.empty())
      return ErrorAt("ingest.listen.tls.require_client_cert", "is true: set listen.tls.ca_file (the CAs of devices)");
    if (!l.tls_enabled && (!l.tls_cert_file.empty() || !l.tls_ca_file.empty() || l.tls_require_client_cert))
      return ErrorAt("ingest.listen.tls.enabled", "is false, but listen.tls settings are given: set it to true");
    if (c.console.tls_cert_file.empty() != c.console.tls_key_file.empty())
      return ErrorAt(c.console.tls_cert_file.empty() ? "console.tls_cert_file" : "console.tls_key_file",
                     "is empty: console TLS needs both console.tls_cert_file and console.tls_key_file");
    if (!c.console.tls_ca_file.empty() && c.console.tls_cert_file.empty())
      return ErrorAt("console.tls_ca_file", "is set, but console.tls_cert_file is empty: client certificates "
                                            "need TLS");
    // Anyone who reaches a non-loopback console could read every event: refuse to start without a token.
    if (c.console.enabled && c.console.token_file.empty() && !IsLoopbackListen(c.console.listen))
      return ErrorAt("console.token_file", "is empty, but console.listen \"" + c.console.listen +
                                               "\" is not a loopback address: a bearer token is required there");
    for (size_t i = 0; i < c.routes.size(); ++i) {
      const RouteConfig& r = c.routes[i];
      std::string path = "route[" + std::to_string(i) + "]";
      auto pattern = TopicPattern::Compile(r.filter);  // checked while parsing
      std::vector<std::string> captures = pattern->capture_names();
      captures.push_back("topic");
      for (const char* field : {"stream", "subject"}) {
        const std::string& tmpl = std::strcmp(field, "stream") == 0 ? r.stream : r.subject;
        auto names = TemplatePlaceholders(tmpl);
        for (const auto& n : *names) {
          if (std::find(captures.begin(), captures.end(), n) == captures.end()) {
            return ErrorAt(path + "." + field, "placeholder {" + n + "} is not captured by filter \"" + r.filter + "\"");
          }
        }
        if (std::strcmp(field, "stream") == 0 && names->empty() && !streams.count(r.stream)) {
          return ErrorAt(path + ".stream", "stream \"" + r.stream + "\" is not declared in a [[stream]]");
        }
      }
      if (!r.dead_letter.empty() && !streams.count(r.dead_letter)) {
        return ErrorAt(path + ".dead_letter", "stream \"" + r.dead_letter + "\" is not declared in a [[stream]]");
      }
    }
    std::map<std::string, size_t> uplinks;
    for (size_t i = 0; i < c.uplinks.size(); ++i) {
      const UplinkConfig& u = c.uplinks[i];
      std::string path = "uplink[" + std::to_string(i) + "]";
      auto [it, inserted] = uplinks.emplace(u.name, i);
      if (!inserted) {
        return ErrorAt(path + ".name", "uplink \"" + u.name + "\" is already declared as uplink[" +
                                           std::to_string(it->second) + "]");
      }
      for (const auto& s : u.streams) {
        if (!streams.count(s)) return ErrorAt(path + ".streams", "stream \"" + s + "\" is not declared in a [[stream]]");
      }
      if (u.type == UplinkType::kKafka) {
        if (auto st = CheckKafkaUplink(path, u); !st) return st;
      }
      if (u.retain && (u.type != UplinkType::kMqtt || u.mode != UplinkMode::kPerEvent))
        return ErrorAt(path + ".retain", "is true, but retained messages need type = \"mqtt\" and mode = \"per_event\"");
      if (u.type == UplinkType::kMqtt) {
        if (auto st = CheckMqttAddress(path, u.address); !st) return st;
      }
      if (auto st = check_backoff(path, u.backoff); !st) return st;
      // A tee that republishes on the devices' own topics to the broker ingest subscribes to would ingest every
      // event again as a new one, for ever.
      if (u.type == UplinkType::kMqtt && c.ingest.mode != IngestMode::kListen && u.address == c.ingest.address &&
          u.topic.find("{topic}") != std::string::npos) {
        return ErrorAt(path + ".topic", "republishes on {topic} to " + u.address +
                                            ", the broker ingest subscribes to: every event would come back as a "
                                            "new one. Use ingest.mode = \"listen\", or another topic or broker");
      }
      if (u.type == UplinkType::kMqtt) {
        if (auto st = CheckTlsScheme(path, u.address, u.tls); !st) return st;
      }
    }
    if (auto st = CheckDownlinks(c); !st) return st;
    return CheckPipelines(c, streams);
  }

  std::string file_;
  std::set<std::string> seen_;
  Positions positions_;
};

// toml++ refuses a table header written twice ("cannot redefine existing table 'stream'"), and a mix of
// [stream] and [[stream]]. Say what to write instead, as the parser does for a single [stream].
std::string RedefinitionHint(const std::string& description) {
  static const std::string kPrefix = "cannot redefine existing ";
  auto at = description.find(kPrefix);  // after toml++'s "Error while parsing table header: "
  if (at == std::string::npos) return description;
  auto open = description.find('\'', at);
  auto close = open == std::string::npos ? open : description.find('\'', open + 1);
  if (close == std::string::npos) return description;
  const std::string table = description.substr(open + 1, close - open - 1);
  const std::string section = table.substr(0, table.find('.'));
  for (const auto& s : ConfigSections()) {
    if (section != s.name) continue;
    if (s.repeated) {
      return section + ": must be an array of tables: write every one as [[" + section + "]], not [" + section +
             "] (" + description + ")";
    }
    if (table == section) {
      return "[" + section + "] is written twice: put all its keys under one [" + section + "] (" + description +
             ")";
    }
  }
  return description;
}

}  // namespace

const StreamConfig* Config::FindStream(std::string_view name) const {
  for (const auto& s : streams) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

const UplinkConfig* Config::FindUplink(std::string_view name) const {
  for (const auto& u : uplinks) {
    if (u.name == name) return &u;
  }
  return nullptr;
}

bool IsLoopbackListen(const std::string& listen) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return ::inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

Result<Config> LoadConfigString(std::string_view text, const std::string& name) {
  if (Status st = PrecheckToml(text, name); !st) return tl::make_unexpected(st.error());
  toml::table root;
  try {
    root = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    return InvalidArgument(Where(name, e.source()) + ": " + RedefinitionHint(std::string(e.description())));
  }
  return Parser(name).Parse(root);
}

Result<Config> LoadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    if (err == ENOENT) return NotFound(path + ": no such file");
    return IoError(path + ": " + std::strerror(err));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return IoError(path + ": read failed");
  return LoadConfigString(ss.str(), path);
}

Result<Duration> ParseDuration(std::string_view text) {
  const std::string t(text);
  if (text == "0") return Duration(0);
  if (text.empty()) return InvalidArgument("empty duration");
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) {
      return InvalidArgument("bad duration \"" + t + "\": expected a number such as \"30s\"");
    }
    int64_t n = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      if (MulOverflows(n, 10, &n) || __builtin_add_overflow(n, text[i] - '0', &n)) {
        return InvalidArgument("duration \"" + t + "\" is too large");
      }
      ++i;
    }
    size_t u = i;
    while (u < text.size() && std::isalpha(static_cast<unsigned char>(text[u]))) ++u;
    std::string_view unit = text.substr(i, u - i);
    if (unit.empty()) {
      return InvalidArgument("bad duration \"" + t + "\": missing unit (ns, us, ms, s, m, h, d)");
    }
    int idx = -1;
    for (int k = 0; k < 7; ++k) {
      if (unit == kDurUnits[k]) idx = k;
    }
    if (idx < 0) {
      return InvalidArgument("bad duration \"" + t + "\": unknown unit \"" + std::string(unit) +
                             "\" (ns, us, ms, s, m, h, d)");
    }
    int64_t part = 0;
    if (MulOverflows(n, kNsPer[idx], &part) || __builtin_add_overflow(total, part, &total)) {
      return InvalidArgument("duration \"" + t + "\" is too large");
    }
    i = u;
  }
  return Duration(total);
}

Result<uint64_t> ParseSize(std::string_view text) {
  const std::string t(text);
  size_t i = 0;
  uint64_t n = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    if (__builtin_mul_overflow(n, 10u, &n) || __builtin_add_overflow(n, static_cast<uint64_t>(text[i] - '0'), &n)) {
      return InvalidArgument("size \"" + t + "\" is too large");
    }
    ++i;
  }
  if (i == 0) return InvalidArgument("bad size \"" + t + "\": expected a number such as \"512MiB\"");
  std::string_view unit = text.substr(i);
  static const std::pair<const char*, uint64_t> kUnits[] = {
      {"", 1},           {"B", 1},
      {"kB", 1000ull},   {"KB", 1000ull},           {"MB", 1000ull * 1000},     {"GB", 1000ull * 1000 * 1000},
      {"TB", 1000ull * 1000 * 1000 * 1000},         {"KiB", 1ull << 10},        {"MiB", 1ull << 20},
      {"GiB", 1ull << 30},                          {"TiB", 1ull << 40}};
  for (const auto& [name, mult] : kUnits) {
    if (unit == name) {
      uint64_t out = 0;
      if (__builtin_mul_overflow(n, mult, &out)) return InvalidArgument("size \"" + t + "\" is too large");
      return out;
    }
  }
  return InvalidArgument("bad size \"" + t + "\": unknown unit \"" + std::string(unit) +
                         "\" (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)");
}

std::string FormatDuration(Duration d) {
  int64_t ns = d.count();
  if (ns == 0) return "0";
  std::string out;
  if (ns < 0) {
    out = "-";
    ns = -ns;
  }
  // Largest units first, but only when they divide exactly below a second, so "1500ms" stays readable.
  if (ns % kNsPer[3] != 0) {
    for (int k = 2; k >= 0; --k) {
      if (ns % kNsPer[k] == 0) return out + std::to_string(ns / kNsPer[k]) + kDurUnits[k];
    }
  }
  for (int k = 6; k >= 3; --k) {
    if (ns >= kNsPer[k]) {
      out += std::to_string(ns / kNsPer[k]) + kDurUnits[k];
      ns %= kNsPer[k];
    }
  }
  return out;
}

std::string KeyPath(const ConfigKey& key) { return std::string(key.section) + "." + key.name; }

std::string KeyTypeName(const ConfigKey& key) {
  switch (key.type) {
    case KeyType::kString: return "string";
    case KeyType::kInt: return "int";
    case KeyType::kDuration: return "duration";
    case KeyType::kSize: return "size";
    case KeyType::kBool: return "bool";
    case KeyType::kEnum: return "enum (" + JoinAllowed(key.allowed, ", ") + ")";
    case KeyType::kStringList: return "string list";
  }
  return "?";
}

std::string RenderConfigDocs() {
  std::string out;
  for (const auto& s : ConfigSections()) {
    out += "### `";
    out += s.repeated ? "[[" + std::string(s.name) + "]]" : "[" + std::string(s.name) + "]";
    out += "`\n\n";
    out += s.help;
    out += "\n\n| key | type | default | SIGHUP | description |\n|---|---|---|---|---|\n";
    for (const auto& k : ConfigKeys()) {
      if (std::strcmp(k.section, s.name) != 0) continue;
      std::string def;
      if (k.default_text == nullptr) {
        def = "required";
      } else if (k.type == KeyType::kStringList) {
        def = "`[]`";
      } else if (k.type == KeyType::kString || k.type == KeyType::kEnum ||
                 (k.type == KeyType::kDuration && std::strcmp(k.default_text, "0") != 0) ||
                 (k.type == KeyType::kSize && std::strcmp(k.default_text, "0") != 0)) {
        def = "`\"" + std::string(k.default_text) + "\"`";
      } else {
        def = "`" + std::string(k.default_text) + "`";
      }
      std::string help = k.help;
      std::string escaped;
      for (char ch : help) {
        if (ch == '|') escaped += '\\';
        escaped += ch;
      }
      out += "| `" + KeyPath(k) + "` | " + KeyTypeName(k) + " | " + def + " | " + (k.reload ? "reload" : "restart") +
             " | " + escaped + " |\n";
    }
    out += "\n";
  }
  return out;
}

namespace {

void DiffSection(const std::string& section, const std::string& label, const void* a, const void* b,
                 ReloadPlan* plan) {
  for (const auto& k : ConfigKeys()) {
    if (section != k.section) continue;
    if (k.show(a) == k.show(b)) continue;
    (k.reload ? plan->reload : plan->restart).push_back(label + "." + k.name);
  }
}

template <typename T>
void DiffNamed(const std::string& section, const std::vector<T>& a, const std::vector<T>& b, ReloadPlan* plan) {
  for (const auto& x : a) {
    const T* match = nullptr;
    for (const auto& y : b) {
      if (y.name == x.name) match = &y;
    }
    std::string label = section + "[" + x.name + "]";
    if (match == nullptr) {
      plan->restart.push_back(label);
    } else {
      DiffSection(section, label, &x, match, plan);
    }
  }
  for (const auto& y : b) {
    bool found = false;
    for (const auto& x : a) found = found || x.name == y.name;
    if (!found) plan->restart.push_back(section + "[" + y.name + "]");
  }
}

}  // namespace

ReloadPlan ReloadDiff(const Config& o, const Config& n) {
  ReloadPlan plan;
  for (const auto& s : ConfigSections()) {
    if (s.repeated) continue;
    DiffSection(s.name, s.name, TopSection(o, s.name), TopSection(n, s.name), &plan);
  }
  for (size_t i = 0; i < std::max(o.routes.size(), n.routes.size()); ++i) {
    std::string label = "route[" + std::to_string(i) + "]";
    if (i >= o.routes.size() || i >= n.routes.size()) {
      plan.restart.push_back(label);
    } else {
      DiffSection("route", label, &o.routes[i], &n.routes[i], &plan);
    }
  }
  DiffNamed("stream", o.streams, n.streams, &plan);
  DiffNamed("uplink", o.uplinks, n.uplinks, &plan);
  DiffNamed("pipeline", o.pipelines, n.pipelines, &plan);
  DiffNamed("downlink", o.downlinks, n.downlinks, &plan);
  // Steps by position; every pipeline key is restart-only, so any change shows as a restart.
  for (const auto& x : o.pipelines) {
    for (const auto& y : n.pipelines) {
      if (x.name != y.name) continue;
      const std::string label = "pipeline[" + x.name + "].step";
      if (x.steps.size() != y.steps.size()) {
        plan.restart.push_back(label);
        continue;
      }
      for (size_t i = 0; i < x.steps.size(); ++i) {
        const std::string sl = label + "[" + std::to_string(i) + "]";
        DiffSection("pipeline.step", sl, &x.steps[i], &y.steps[i], &plan);
        const auto& xu = x.steps[i].upgrades;
        const auto& yu = y.steps[i].upgrades;
        if (xu.size() != yu.size()) {
          plan.restart.push_back(sl + ".upgrade");
          continue;
        }
        for (size_t u = 0; u < xu.size(); ++u)
          DiffSection("pipeline.step.upgrade", sl + ".upgrade[" + std::to_string(u) + "]", &xu[u], &yu[u], &plan);
      }
    }
  }
  return plan;
}

}  // namespace ferry
