// ParseHttpHead (ferry/http_server.h): the plain responder's reading of a request head. A pure function in a file
// of its own, so that the fuzzer (tests/fuzz/http_head) compiles it alone.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <string>
#include <string_view>

#include "ferry/http_server.h"

namespace ferry {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A query component: "%XX" is the byte, '+' a space; a '%' without two hex digits stays as it is.
std::string Unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && HexDigit(s[i + 1]) >= 0 && HexDigit(s[i + 2]) >= 0) {
      out += static_cast<char>(HexDigit(s[i + 1]) * 16 + HexDigit(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// RFC 9110 token characters (method and field names).
bool IsTokenChar(unsigned char c) {
  // (strchr() finds a NUL too: the terminator of its string. The fuzzer found a NUL in a header name taken.)
  return std::isalnum(c) || (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

// A non-empty run of token characters (a method, a field name).
bool IsToken(std::string_view s) {
  const auto token_char = [](char c) { return IsTokenChar(static_cast<unsigned char>(c)); };
  return !s.empty() && std::all_of(s.begin(), s.end(), token_char);
}

// The next line of `s` from `pos` (without its "\n" or "\r\n"); pos moves past it.
std::string_view NextLine(std::string_view s, size_t& pos) {
  size_t eol = s.find('\n', pos);
  std::string_view line = s.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
  pos = eol == std::string_view::npos ? s.size() : eol + 1;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

}  // namespace

HttpHead ParseHttpHead(std::string_view head) {
  HttpHead h;
  size_t pos = 0;
  const std::string_view line = NextLine(head, pos);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == 0 || sp2 == std::string_view::npos || sp2 == sp1 + 1 ||
      line.find(' ', sp2 + 1) != std::string_view::npos) {
    h.status = 400;
    return h;
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  const auto control_or_space = [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; };
  if (!IsToken(method) || target.front() != '/' || version.substr(0, 5) != "HTTP/" ||
      std::any_of(target.begin(), target.end(), control_or_space)) {
    h.status = 400;
    return h;
  }
  if (version != "HTTP/1.0" && version != "HTTP/1.1") {
    h.status = 505;
    return h;
  }
  HttpRequest& rq = h.request;
  rq.method = std::string(method);
  const size_t q = target.find('?');
  rq.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) {
    std::string_view query = target.substr(q + 1);
    while (!query.empty()) {
      const size_t amp = query.find('&');
      const std::string_view pair = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      if (pair.empty()) continue;
      const size_t eq = pair.find('=');
      rq.args[Unescape(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : Unescape(pair.substr(eq + 1));
    }
  }
  while (pos < head.size()) {
    const std::string_view field = NextLine(head, pos);
    const size_t colon = field.find(':');
    // No colon, an empty name, or a name with anything but token characters (whitespace before the colon, a
    // folded line starting with a space) is a bad request (RFC 9112, 5.1 and 5.2).
    if (colon == std::string_view::npos || !IsToken(field.substr(0, colon))) {
      h.status = 400;
      return h;
    }
    std::string name(field.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = field.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    rq.headers[name] = std::string(value);
  }
  if (rq.method != "GET" && rq.method != "HEAD") h.status = 405;
  return h;
}

}  // namespace ferry
