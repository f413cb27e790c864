// http_head_fuzz.cc: libFuzzer target for ParseHttpHead (hub/observe/src/http_head.cc), the plain responder's
// reading of a request head: ferryd's metrics endpoint with the console off. See ../README.md.
//
// The whole input is the head as the responder hands it over (the bytes before the blank line, at most
// max_request_bytes). Besides the sanitizers: the status is one of the replies the responder knows; a head it
// serves is a GET or HEAD of an origin-form path; header names are lower-case tokens; the parse is a function of
// the bytes (parsing again gives the same request).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "../fuzz_bytes.h"
#include "ferry/http_server.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ferry::fuzz::Fail;
  const std::string_view head(reinterpret_cast<const char*>(data), size);
  const ferry::HttpHead h = ferry::ParseHttpHead(head);
  if (h.status != 0 && h.status != 400 && h.status != 405 && h.status != 505) Fail("status %d", h.status);
  if (h.status == 0) {
    const auto& rq = h.request;
    if (rq.method != "GET" && rq.method != "HEAD") Fail("served method \"%s\"", rq.method.c_str());
    if (rq.path.empty() || rq.path[0] != '/') Fail("served path \"%s\"", rq.path.c_str());
    if (rq.path.find_first_of(" ?\r\n") != std::string::npos) Fail("path \"%s\" holds a separator", rq.path.c_str());
    for (const auto& [name, value] : rq.headers) {
      if (name.empty()) Fail("an empty header name");
      for (char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f || c == ':' || (c >= 'A' && c <= 'Z')) Fail("header name byte 0x%02x", u);
      }
      if (value.find('\n') != std::string::npos) Fail("a header value holds a line feed");
    }
  }
  const ferry::HttpHead again = ferry::ParseHttpHead(head);
  if (again.status != h.status || again.request.path != h.request.path || again.request.args != h.request.args ||
      again.request.headers != h.request.headers) {
    Fail("two parses of the same head differ");
  }
  return 0;
}
