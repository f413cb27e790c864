// cloudevents_conformance.h: the CloudEvents 1.0 attribute rules (spec.md, "Context Attributes" and "Type
// System"), checked on an event as it travels: the attribute names and string values of one binding (MQTT user
// properties, Kafka ce_ headers without the prefix, or the members of a structured JSON object).
//
// Checked: names are [a-z0-9]+; specversion is "1.0"; id, source, type are present and non-empty; source is an
// absolute URI (Ferry's choice: "ferry://<gateway>/<stream>"; the spec allows any URI-reference); dataschema,
// when present, an absolute URI; time and ferryingesttime RFC 3339 timestamps; subject, when present, non-empty;
// datacontenttype an RFC 2046 media type; every value a String of allowable characters (no controls,
// noncharacters or broken UTF-8); no attribute twice.
#pragma once

#include <cctype>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/utf8.h"
#include "ferry/wire.h"

namespace ferry::test {

// RFC 3986: scheme ":" and then only unreserved, reserved and percent-encoded octets.
inline bool IsAbsoluteUri(std::string_view s) {
  size_t colon = s.find(':');
  if (colon == std::string_view::npos || colon == 0 || !std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  for (size_t i = 1; i < colon; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (!std::isalnum(c) && c != '+' && c != '-' && c != '.') return false;
  }
  static const std::string_view kAllowed =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=";
  for (size_t i = colon + 1; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(s[i + 2])))
        return false;
      i += 2;
    } else if (kAllowed.find(s[i]) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

// RFC 2046 / RFC 7231: type "/" subtype *( OWS ";" OWS parameter ), tokens of visible ASCII minus tspecials.
inline bool IsMediaType(std::string_view s) {
  auto token = [](char c) {
    return c > 0x20 && c < 0x7f && std::string_view("()<>@,;:\\\"/[]?={}").find(c) == std::string_view::npos;
  };
  size_t i = 0;
  auto word = [&] {
    size_t start = i;
    while (i < s.size() && token(s[i])) ++i;
    return i > start;
  };
  if (!word() || i >= s.size() || s[i++] != '/' || !word()) return false;
  while (i < s.size() && (s[i] == ' ' || s[i] == ';')) ++i;  // parameters: not checked further
  return true;
}

// The violations ("" when none) of one event's attributes, named as the binding names them.
inline std::vector<std::string> CloudEventViolations(const std::vector<std::pair<std::string, std::string>>& attrs) {
  std::vector<std::string> bad;
  std::set<std::string> seen;
  auto value = [&](const char* name) -> const std::string* {
    for (const auto& [k, v] : attrs)
      if (k == name) return &v;
    return nullptr;
  };
  for (const auto& [k, v] : attrs) {
    if (k.empty() || k.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789") != std::string::npos)
      bad.push_back("attribute name \"" + k + "\" is not [a-z0-9]+");
    if (!seen.insert(k).second) bad.push_back("attribute \"" + k + "\" appears twice");
    if (!IsLegalUnicodeString(v)) bad.push_back("attribute \"" + k + "\" holds characters a String may not");
  }
  const std::string* spec = value("specversion");
  if (spec == nullptr || *spec != "1.0") bad.push_back("specversion is not \"1.0\"");
  for (const char* required : {"id", "source", "type"}) {
    const std::string* v = value(required);
    if (v == nullptr || v->empty()) bad.push_back(std::string(required) + " is missing or empty");
  }
  if (const std::string* v = value("source"); v != nullptr && !IsAbsoluteUri(*v))
    bad.push_back("source \"" + *v + "\" is not an absolute URI");
  if (const std::string* v = value("dataschema"); v != nullptr && !IsAbsoluteUri(*v))
    bad.push_back("dataschema \"" + *v + "\" is not an absolute URI");
  for (const char* ts : {"time", "ferryingesttime"}) {
    if (const std::string* v = value(ts); v != nullptr && !ParseRfc3339(*v))
      bad.push_back(std::string(ts) + " \"" + *v + "\" is not an RFC 3339 timestamp");
  }
  if (const std::string* v = value("subject"); v != nullptr && v->empty()) bad.push_back("subject is empty");
  if (const std::string* v = value("datacontenttype"); v != nullptr && !IsMediaType(*v))
    bad.push_back("datacontenttype \"" + *v + "\" is not a media type");
  return bad;
}

}  // namespace ferry::test
