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
      if (c == '#') {
        while (i_ < t_.size() && t_[i_] != '\n') ++i_;
        Break();
      } else if (c == '"' || c == '\'') {
        const bool multi = t_.compare(i_, 3, c == '"' ? "\"\"\"" : "'''") == 0;
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
        Break();
        Advance();
      }
    }
    return Ok();
  }

 private:
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
};

}  // namespace

Status PrecheckToml(std::string_view text, const std::string& file) { return Scanner(text, file).Run(); }

}  // namespace ferry
