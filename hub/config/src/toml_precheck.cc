#include "toml_precheck.h"

namespace ferry {
namespace {

bool BareKeyChar(unsigned char c) {
  // Bare key characters, and '+' so that a float's exponent (1.5e+3) reads as one part.
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '+';
}

class Scanner {
 public:
  Scanner(std::string_view text, const std::string& file) : t_(text), file_(file) {}

  Status Run() {
    while (i_ < t_.size()) {
      const unsigned char c = static_cast<unsigned char>(t_[i_]);
      if (value_ && c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '#' && c != '"' && c != '\'' &&
          c != '[' && c != '{' && c != ']' && c != '}' && c != ',') {
        // A bare value (number, date, boolean, or garbage). toml++ scans up to 127 characters of it asking of
        // each whether it ends the value, and that question reaches TOML_UNREACHABLE for most non-ASCII
        // characters (is_non_ascii_horizontal_whitespace: U+00A1-U+0499, U+2C8E-U+3087, U+FB26-U+FEFE). No
        // valid bare value holds a non-ASCII character before its end, quotes included ('8on"..."' is not a
        // string to toml++), so one there is refused.
        if (Status st = BareValue(); !st) return st;
        continue;
      }
      if (c == '#') {
        while (i_ < t_.size() && t_[i_] != '\n') ++i_;
        Break();
      } else if (c == '"' || c == '\'') {
        const bool multi = t_.compare(i_, 3, c == '"' ? "\"\"\"" : "\'\'\'") == 0;
        value_ = false;
        if (Status st = String(static_cast<char>(c), multi); !st) return st;
        if (multi) {
          Break();
        } else if (Status st = Part(); !st) {
          return st;
        }
      } else if (BareKeyChar(c)) {
        while (i_ < t_.size() && BareKeyChar(static_cast<unsigned char>(t_[i_]))) Advance();
        if (Status st = Part(); !st) return st;
      } else if (c == '.') {
        dot_ = after_part_;
        after_part_ = false;
        Advance();
      } else if (c == ' ' || c == '\t') {
        Advance();
      } else if (c >= 0x80) {
        return Fail("a non-ASCII character outside a string or comment (TOML keys are ASCII: quote the key, or "
                    "look for a typo)");
      } else {
        Nesting(static_cast<char>(c));
        Break();
        Advance();
      }
    }
    return Ok();
  }

 private:
  // Where a value may start: after '=', after '[' or ',' in an array. Arrays and inline tables nest; the
  // stack is capped (toml++ refuses deeper nesting itself), past the cap only the depth is counted.
  void Nesting(char c) {
    if (c == '=') {
      value_ = true;
    } else if (c == '[' && value_) {
      Push('[');  // an array: its first element is a value; outside a value, '[' opens a table header
    } else if (c == '{' && value_) {
      Push('{');
      value_ = false;  // an inline table starts with a key
    } else if (c == ']' || c == '}') {
      Pop();
      value_ = false;
    } else if (c == ',') {
      value_ = Top() == '[';
    } else if (c == '\n' && open_.empty() && depth_ == 0) {
      value_ = false;
    }
  }
  void Push(char c) {
    if (open_.size() < kMaxNesting) {
      open_.push_back(c);
    } else {
      ++depth_;
    }
  }
  void Pop() {
    if (depth_ > 0) {
      --depth_;
    } else if (!open_.empty()) {
      open_.pop_back();
    }
  }
  char Top() const { return depth_ > 0 ? '[' : open_.empty() ? '\0' : open_.back(); }
  // At the first character of a bare value: skips to the first ASCII character that ends one.
  Status BareValue() {
    while (i_ < t_.size()) {
      const unsigned char c = static_cast<unsigned char>(t_[i_]);
      if (c == ' ' || c == '\t' || (c >= '\n' && c <= '\r') || c == ']' || c == '}' || c == ',' || c == '#') break;
      if (c >= 0x80) return Fail("a non-ASCII character in a bare value (quote the value, or look for a typo)");
      Advance();
    }
    value_ = false;
    Break();
    return Ok();
  }
  void Advance() {
    if (t_[i_] == '\n') {
      ++line_;
      line_start_ = i_ + 1;
    }
    ++i_;
  }
  // A key part (bare or quoted), or any value that looks like one: extends the dotted chain it follows.
  Status Part() {
    parts_ = dot_ ? parts_ + 1 : 1;
    dot_ = false;
    after_part_ = true;
    if (parts_ > kMaxTomlKeyParts)
      return Fail("a dotted key or table header of more than " + std::to_string(kMaxTomlKeyParts) + " parts");
    return Ok();
  }
  void Break() {
    parts_ = 0;
    dot_ = after_part_ = false;
  }
  // At an opening quote: skips the string. toml++ reports everything wrong inside one but the escape below.
  Status String(char quote, bool multi) {
    const size_t open = multi ? 3 : 1;
    for (size_t k = 0; k < open; ++k) Advance();
    while (i_ < t_.size()) {
      const char c = t_[i_];
      if (!multi && c == '\n') return Ok();  // unterminated: toml++ says so
      if (quote == '"' && c == '\\') {
        Advance();
        if (i_ < t_.size() && static_cast<unsigned char>(t_[i_]) >= 0x80)
          return Fail("a backslash before a non-ASCII character in a string (not a TOML escape)");
        if (multi && LineEndingBackslash()) {
          // toml++ trims the whitespace and newlines that follow, asking of each character whether it is
          // whitespace: for a non-ASCII one that reaches TOML_UNREACHABLE (crash-toml-line-ending-backslash).
          while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\r' || t_[i_] == '\n')) Advance();
          if (i_ < t_.size() && static_cast<unsigned char>(t_[i_]) >= 0x80)
            return Fail("a non-ASCII character right after a line-ending backslash in a multi-line string (put an "
                        "escape such as \\u00FC or an ASCII character first)");
          continue;
        }
        if (i_ < t_.size()) Advance();
        continue;
      }
      if (c == quote && (!multi || t_.compare(i_, 3, std::string(3, quote)) == 0)) {
        for (size_t k = 0; k < open; ++k) Advance();
        // A multi-line string may end with up to two more quotes of its own.
        while (multi && i_ < t_.size() && t_[i_] == quote) Advance();
        return Ok();
      }
      Advance();
    }
    return Ok();
  }
  // At the character after a backslash: only spaces and tabs up to the end of the line?
  bool LineEndingBackslash() const {
    size_t j = i_;
    while (j < t_.size() && (t_[j] == ' ' || t_[j] == '\t')) ++j;
    return j < t_.size() && (t_[j] == '\n' || (t_[j] == '\r' && j + 1 < t_.size() && t_[j + 1] == '\n'));
  }
  Status Fail(const std::string& what) const {
    return InvalidArgument(file_ + ":" + std::to_string(line_) + ":" + std::to_string(i_ - line_start_ + 1) + ": " +
                           what);
  }

  std::string_view t_;
  const std::string& file_;
  size_t i_ = 0;
  size_t line_ = 1;
  size_t line_start_ = 0;
  int parts_ = 0;           // parts of the dotted chain being read
  bool dot_ = false;        // a '.' follows a part: the next part extends the chain
  bool after_part_ = false;
  bool value_ = false;         // a value may start here
  static constexpr size_t kMaxNesting = 1024;
  std::string open_;           // the arrays ('[') and inline tables ('{') open around here, innermost last
  size_t depth_ = 0;           // nesting past kMaxNesting
};

}  // namespace

Status PrecheckToml(std::string_view text, const std::string& file) { return Scanner(text, file).Run(); }

}  // namespace ferry
