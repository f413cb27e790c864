// config_fuzz.cc: libFuzzer target for ferryd's config loader, LoadConfigString (hub/config): toml++ and the
// declaration-table parser behind it, then the value syntax helpers on the same bytes. See ../README.md.
//
// The whole input is a TOML file. A config that loads must be self-consistent: reloading it onto itself
// changes nothing, every route's filter compiles and its templates only name captures of its filter (what
// IngestRouter::Create relies on). The input is also given to ParseDuration (whose result must survive
// FormatDuration), ParseSize, TopicPattern::Compile/Match and the template functions.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "../fuzz_bytes.h"
#include "ferry/config.h"

namespace {

using namespace ferry;
using fuzz::Fail;

void CheckConfig(const Config& c) {
  ReloadPlan same = ReloadDiff(c, c);
  if (!same.empty()) {
    Fail("reloading a config onto itself changes %s",
         (same.reload.empty() ? same.restart : same.reload).front().c_str());
  }
  for (const RouteConfig& r : c.routes) {
    auto pattern = TopicPattern::Compile(r.filter);
    if (!pattern) Fail("loaded route filter \"%s\" does not compile", r.filter.c_str());
    TopicCaptures caps;
    for (const auto& name : pattern->capture_names()) caps.emplace_back(name, "x");
    caps.emplace_back("topic", "t");
    for (const std::string* tmpl : {&r.stream, &r.subject}) {
      if (!ExpandTemplate(*tmpl, caps)) Fail("loaded template \"%s\" does not expand", tmpl->c_str());
    }
  }
  for (const UplinkConfig& u : c.uplinks) {
    TopicCaptures caps = {{"gateway", "g"}, {"stream", "s"}, {"subject", "x"}};
    if (!ExpandTemplate(u.topic, caps)) Fail("loaded uplink topic \"%s\" does not expand", u.topic.c_str());
  }
}

void ValueHelpers(std::string_view text) {
  if (auto d = ParseDuration(text)) {
    if (d->count() < 0) Fail("negative duration from \"%s\"", std::string(text).c_str());
    const std::string shown = FormatDuration(*d);
    auto back = ParseDuration(shown);
    if (!back || *back != *d) {
      Fail("duration \"%s\" shows as \"%s\", which does not parse back", std::string(text).c_str(), shown.c_str());
    }
  }
  (void)ParseSize(text);
  if (auto p = TopicPattern::Compile(text)) {
    (void)p->Match(text);
    (void)p->Match(p->subscription());
  }
  if (auto names = TemplatePlaceholders(text)) {
    TopicCaptures caps;
    for (const auto& n : *names) caps.emplace_back(n, "v");
    if (!ExpandTemplate(text, caps)) Fail("template with all its placeholders does not expand");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = LoadConfigString(text, "fuzz.toml");
  if (c) {
    CheckConfig(*c);
  } else if (c.error().code != ErrorCode::kInvalidArgument) {
    Fail("LoadConfigString error code %s", c.error().ToString().c_str());
  }
  if (size <= 256) ValueHelpers(text);
  return 0;
}
