// Topic templates: "telemetry/{device}/#" filters with named captures, and "{device}" expansion.
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/config.h"

namespace ferry {
namespace {

bool ValidCaptureName(std::string_view name) {
  if (name.empty() || name.size() > 32) return false;
  if (!std::isalpha(static_cast<unsigned char>(name[0])) && name[0] != '_') return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

std::vector<std::string_view> SplitLevels(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

}  // namespace

Result<TopicPattern> TopicPattern::Compile(std::string_view filter) {
  const std::string f(filter);
  if (filter.empty()) return InvalidArgument("topic filter is empty");
  if (filter.size() > 65535) return InvalidArgument("topic filter is longer than 65535 bytes");
  TopicPattern p;
  auto levels = SplitLevels(filter);
  for (size_t i = 0; i < levels.size(); ++i) {
    std::string_view lv = levels[i];
    if (i > 0) p.subscription_ += '/';
    if (lv == "#") {
      if (i + 1 != levels.size()) return InvalidArgument("topic filter \"" + f + "\": '#' must be the last level");
      p.levels_.push_back({Level::kHash, ""});
      p.subscription_ += '#';
    } else if (lv == "+") {
      p.levels_.push_back({Level::kPlus, ""});
      p.subscription_ += '+';
    } else if (!lv.empty() && lv.front() == '{' && lv.back() == '}') {
      std::string_view name = lv.substr(1, lv.size() - 2);
      if (!ValidCaptureName(name) || name == "topic") {
        return InvalidArgument("topic filter \"" + f + "\": bad capture name {" + std::string(name) + "}");
      }
      for (const auto& existing : p.capture_names_) {
        if (existing == name) {
          return InvalidArgument("topic filter \"" + f + "\": capture {" + std::string(name) + "} used twice");
        }
      }
      p.capture_names_.emplace_back(name);
      p.levels_.push_back({Level::kCapture, std::string(name)});
      p.subscription_ += '+';
    } else {
      if (lv.find_first_of("+#{}") != std::string_view::npos) {
        return InvalidArgument("topic filter \"" + f + "\": level \"" + std::string(lv) +
                               "\" mixes text with a wildcard or a brace");
      }
      p.levels_.push_back({Level::kLiteral, std::string(lv)});
      p.subscription_ += lv;
    }
  }
  return p;
}

std::optional<TopicCaptures> TopicPattern::Match(std::string_view topic) const {
  // The topic's levels are walked in place: every message is matched against the routes, and a list of its
  // levels cost three allocations per match (perf of the ingest listener, bench/README.md).
  size_t pos = 0;    // where the topic's next level starts
  bool more = true;  // a level is left at pos (every topic has one, "" included)
  auto next_level = [&]() {
    const size_t slash = topic.find('/', pos);
    std::string_view level;
    if (slash == std::string_view::npos) {
      level = topic.substr(pos);
      more = false;
    } else {
      level = topic.substr(pos, slash - pos);
      pos = slash + 1;
    }
    return level;
  };
  TopicCaptures caps;
  auto capture = [&](std::string_view name, std::string_view value) {
    if (caps.empty()) caps.reserve(capture_names_.size() + 1);
    caps.emplace_back(std::string(name), std::string(value));
  };
  size_t i = 0;
  for (; i < levels_.size(); ++i) {
    const Level& pl = levels_[i];
    if (pl.kind == Level::kHash) {
      // MQTT: "a/#" also matches "a"; topics starting with '$' never match a leading wildcard.
      if (i == 0 && !topic.empty() && topic[0] == '$') return std::nullopt;
      capture("topic", topic);
      return caps;
    }
    if (!more) return std::nullopt;
    const std::string_view level = next_level();
    switch (pl.kind) {
      case Level::kLiteral:
        if (level != pl.text) return std::nullopt;
        break;
      case Level::kPlus:
      case Level::kCapture:
        if (i == 0 && !level.empty() && level[0] == '$') return std::nullopt;
        if (pl.kind == Level::kCapture) capture(pl.text, level);
        break;
      case Level::kHash:
        break;
    }
  }
  if (more) return std::nullopt;
  capture("topic", topic);
  return caps;
}

namespace {

// Walks a template; calls on_text for literal runs and on_name for placeholders.
template <typename OnText, typename OnName>
Status WalkTemplate(std::string_view t, OnText on_text, OnName on_name) {
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (c == '{') {
      if (i + 1 < t.size() && t[i + 1] == '{') {
        on_text('{');
        ++i;
        continue;
      }
      size_t close = t.find('}', i);
      if (close == std::string_view::npos) {
        return InvalidArgument("template \"" + std::string(t) + "\": unterminated '{'");
      }
      std::string_view name = t.substr(i + 1, close - i - 1);
      if (!ValidCaptureName(name)) {
        return InvalidArgument("template \"" + std::string(t) + "\": bad placeholder {" + std::string(name) + "}");
      }
      auto st = on_name(name);
      if (!st) return st;
      i = close;
    } else if (c == '}') {
      if (i + 1 < t.size() && t[i + 1] == '}') {
        on_text('}');
        ++i;
        continue;
      }
      return InvalidArgument("template \"" + std::string(t) + "\": stray '}' (write \"}}\")");
    } else {
      on_text(c);
    }
  }
  return Ok();
}

}  // namespace

Result<std::string> ExpandTemplate(std::string_view tmpl, const TopicCaptures& captures) {
  std::string out;
  auto st = WalkTemplate(
      tmpl, [&](char c) { out += c; },
      [&](std::string_view name) -> Status {
        for (const auto& [k, v] : captures) {
          if (k == name) {
            out += v;
            return Ok();
          }
        }
        return InvalidArgument("template \"" + std::string(tmpl) + "\": no value for {" + std::string(name) + "}");
      });
  if (!st) return tl::unexpected(st.error());
  return out;
}

Result<std::vector<std::string>> TemplatePlaceholders(std::string_view tmpl) {
  std::vector<std::string> names;
  auto st = WalkTemplate(
      tmpl, [](char) {},
      [&](std::string_view name) -> Status {
        for (const auto& n : names) {
          if (n == name) return Ok();
        }
        names.emplace_back(name);
        return Ok();
      });
  if (!st) return tl::unexpected(st.error());
  return names;
}

}  // namespace ferry
