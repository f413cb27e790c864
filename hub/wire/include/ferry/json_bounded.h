// ferry/json_bounded.h: parsing JSON from outside (devices, the centre) without unbounded recursion.
//
// rapidjson's default parser recurses once per nesting level: a 160 KB payload of 80,000 nested arrays took
// ~150,000 stack frames and killed ferryd with SIGSEGV. Every parse of outside bytes goes through here
// instead: rapidjson's iterative parser (constant stack) and a handler that refuses more than `max_depth`
// nested objects/arrays, so neither the stack nor the DOM grows with an attacker's nesting.
//
// Numbers are checked against JSON's grammar but never converted: handlers get each number's exact text
// (RawNumber). Debian's rapidjson 1.1.0 converts some numbers wrongly and one crafted number
// (`1<66 zeros>.0000000010000184467e-404`) made its full-precision strtod read far out of bounds and SIGSEGV
// (fixed upstream after 1.1.0, Tencent/rapidjson#1249, #1441); its normal-precision strtod is not correctly
// rounded, so a number re-serialised through it drifts. Ferry never needs a number's value from outside JSON,
// only its text, which it forwards byte for byte.
//
// Strings must decode to UTF-8: rapidjson 1.1.0 decodes a lone low-surrogate escape ("\udc00") into bytes
// that are not UTF-8, even when validating, and a centre refuses a batch holding them. Such a string fails
// the parse here like any other syntax error.
// Thread: stateless; any thread.
#pragma once

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include "ferry/utf8.h"

namespace ferry {

// Deep enough for any telemetry document we have seen (they nest 2-5 levels); shallow enough that nothing
// downstream (a DOM walk, a Lua table) has to worry about depth.
inline constexpr unsigned kDefaultMaxJsonDepth = 64;
// The most ingest.max_json_depth may be. Decoders of the centre's bytes and re-serialisation of stored
// payloads use it, so whatever ingest stored can be forwarded.
inline constexpr unsigned kMaxJsonDepthLimit = 256;
// The flags every parse of outside bytes uses (ParseJsonBounded adds the iterative flag).
inline constexpr unsigned kOutsideJsonFlags =
    rapidjson::kParseValidateEncodingFlag | rapidjson::kParseNumbersAsStringsFlag;

enum class JsonFailure {
  kNone,
  kSyntax,   // not JSON (or not UTF-8 where validated)
  kTooDeep,  // objects/arrays nested deeper than max_depth
};

struct JsonStatus {
  JsonFailure failure = JsonFailure::kNone;
  size_t offset = 0;    // byte offset where parsing stopped (for kSyntax / kTooDeep)
  std::string message;  // "invalid JSON at offset 12: Missing a comma..." / "JSON nested deeper than 64 levels"
  bool ok() const { return failure == JsonFailure::kNone; }
};

// Forwards every SAX event to `inner`, failing the parse at the first object/array that would exceed
// max_depth. too_deep() tells a depth stop from the inner handler's own refusal.
template <typename Inner>
class DepthLimitedHandler {
 public:
  using Ch = char;
  DepthLimitedHandler(Inner& inner, unsigned max_depth) : inner_(inner), max_depth_(max_depth) {}
  bool Null() { return inner_.Null(); }
  bool Bool(bool b) { return inner_.Bool(b); }
  // kParseNumbersAsStringsFlag: numbers arrive only as RawNumber.
  bool Int(int) { return Unexpected(); }
  bool Uint(unsigned) { return Unexpected(); }
  bool Int64(int64_t) { return Unexpected(); }
  bool Uint64(uint64_t) { return Unexpected(); }
  bool Double(double) { return Unexpected(); }
  bool RawNumber(const Ch* s, rapidjson::SizeType n, bool copy) { return inner_.RawNumber(s, n, copy); }
  bool String(const Ch* s, rapidjson::SizeType n, bool copy) { return Utf8(s, n) && inner_.String(s, n, copy); }
  bool Key(const Ch* s, rapidjson::SizeType n, bool copy) { return Utf8(s, n) && inner_.Key(s, n, copy); }
  bool StartObject() { return Enter() && inner_.StartObject(); }
  bool EndObject(rapidjson::SizeType n) {
    --depth_;
    return inner_.EndObject(n);
  }
  bool StartArray() { return Enter() && inner_.StartArray(); }
  bool EndArray(rapidjson::SizeType n) {
    --depth_;
    return inner_.EndArray(n);
  }
  bool too_deep() const { return too_deep_; }
  bool bad_string() const { return bad_string_; }

 private:
  // Only an escape can produce bytes that are not UTF-8 (the reader validates the rest), and the one that
  // does, a lone low surrogate, always decodes to a lead byte 0xED.
  bool Utf8(const Ch* s, rapidjson::SizeType n) {
    if (std::memchr(s, 0xED, n) == nullptr || IsUtf8(std::string_view(s, n))) return true;
    bad_string_ = true;
    return false;
  }
  bool Unexpected() { return false; }
  bool Enter() {
    if (++depth_ > max_depth_) {
      too_deep_ = true;
      return false;
    }
    return true;
  }
  Inner& inner_;
  const unsigned max_depth_;
  unsigned depth_ = 0;
  bool too_deep_ = false;
  bool bad_string_ = false;
};

// Parses `text` with `reader` (reuse one reader to keep its stack between messages) into the SAX `handler`,
// iteratively, refusing nesting deeper than max_depth. Numbers reach the handler as RawNumber only.
template <typename Handler>
JsonStatus ParseJsonBounded(rapidjson::Reader& reader, std::string_view text, Handler& handler,
                            unsigned max_depth) {
  JsonStatus st;
  // A JSON text holds no raw NUL (a string escapes it); the reader would take one for the end of the text.
  if (const void* nul = std::memchr(text.data(), '\0', text.size())) {
    st.failure = JsonFailure::kSyntax;
    st.offset = static_cast<size_t>(static_cast<const char*>(nul) - text.data());
    st.message = "invalid JSON at offset " + std::to_string(st.offset) + ": a NUL byte";
    return st;
  }
  DepthLimitedHandler<Handler> limited(handler, max_depth);
  // The text need not be NUL-terminated: a MemoryStream reads exactly its bytes, without a copy.
  rapidjson::MemoryStream ms(text.data(), text.size());
  rapidjson::ParseResult r = reader.Parse<kOutsideJsonFlags | rapidjson::kParseIterativeFlag>(ms, limited);
  if (r) return st;
  st.offset = r.Offset();
  if (limited.too_deep()) {
    st.failure = JsonFailure::kTooDeep;
    st.message = "JSON nested deeper than " + std::to_string(max_depth) + " levels (at offset " +
                 std::to_string(r.Offset()) + ")";
  } else {
    st.failure = JsonFailure::kSyntax;
    st.message = "invalid JSON at offset " + std::to_string(r.Offset()) + ": " +
                 (limited.bad_string() ? "a \\u escape of an unpaired UTF-16 surrogate"
                                       : rapidjson::GetParseError_En(r.Code()));
  }
  return st;
}

// Picks up to two top-level members of a JSON object by name, without building a DOM (no allocation per
// message once the reader's stack has grown): the first occurrence of each, its kind and its text (a string's
// value, a number's exact text). A later occurrence of another kind marks the member `mixed`.
class TopLevelFinder : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, TopLevelFinder> {
 public:
  struct Member {
    enum Kind { kAbsent, kString, kNumber, kOther } kind = kAbsent;
    std::string text;
    bool mixed = false;
  };
  explicit TopLevelFinder(std::string_view first, std::string_view second = {}) : names_{first, second} {}

  bool Default() { return Value(Member::kOther, nullptr, 0); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) { return Value(Member::kNumber, s, n); }
  bool String(const char* s, rapidjson::SizeType n, bool) { return Value(Member::kString, s, n); }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    want_ = -1;
    if (depth_ != 1) return true;
    for (int i = 0; i < 2; ++i)
      if (!names_[i].empty() && std::string_view(s, n) == names_[i]) want_ = i;
    return true;
  }
  bool StartObject() { return Enter(true); }
  bool EndObject(rapidjson::SizeType) { return Leave(); }
  bool StartArray() { return Enter(false); }
  bool EndArray(rapidjson::SizeType) { return Leave(); }

  bool top_is_object() const { return top_is_object_; }
  Member& member(int i) { return members_[i]; }
  // The first member as an id: present, and a string every time it occurs.
  bool IdIsString() const { return members_[0].kind == Member::kString && !members_[0].mixed; }

 private:
  bool Value(Member::Kind kind, const char* s, size_t n) {
    if (want_ >= 0) {
      Member& m = members_[want_];
      if (m.kind == Member::kAbsent) {
        m.kind = kind;
        if (s != nullptr) m.text.assign(s, n);
      } else if (m.kind != kind) {
        m.mixed = true;
      }
    }
    want_ = -1;
    return true;
  }
  bool Enter(bool object) {
    if (depth_ == 0) top_is_object_ = object;
    if (want_ >= 0) Value(Member::kOther, nullptr, 0);
    ++depth_;
    return true;
  }
  bool Leave() {
    --depth_;
    return true;
  }
  std::string_view names_[2];
  Member members_[2];
  int depth_ = 0;
  int want_ = -1;
  bool top_is_object_ = false;
};

// Forwards SAX events to a rapidjson Writer, numbers as their exact text: re-serialises outside JSON compactly
// without changing a digit.
template <typename Writer>
class CompactingHandler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, CompactingHandler<Writer>> {
 public:
  explicit CompactingHandler(Writer& w) : w_(w) {}
  bool Null() { return w_.Null(); }
  bool Bool(bool b) { return w_.Bool(b); }
  // Writer::RawNumber of rapidjson 1.1.0 quotes the number; RawValue writes it as it is.
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) { return w_.RawValue(s, n, rapidjson::kNumberType); }
  bool String(const char* s, rapidjson::SizeType n, bool) { return w_.String(s, n); }
  bool Key(const char* s, rapidjson::SizeType n, bool) { return w_.Key(s, n); }
  bool StartObject() { return w_.StartObject(); }
  bool EndObject(rapidjson::SizeType n) { return w_.EndObject(n); }
  bool StartArray() { return w_.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { return w_.EndArray(n); }

 private:
  Writer& w_;
};

}  // namespace ferry
