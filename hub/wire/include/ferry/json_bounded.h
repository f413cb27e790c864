// ferry/json_bounded.h: parsing JSON from outside (devices, the centre) without unbounded recursion.
//
// rapidjson's default parser recurses once per nesting level: a 160 KB payload of 80,000 nested arrays took
// ~150,000 stack frames and killed ferryd with SIGSEGV. Every parse of outside bytes goes through here
// instead: rapidjson's iterative parser (constant stack) and a handler that refuses more than `max_depth`
// nested objects/arrays, so neither the stack nor the DOM grows with an attacker's nesting.
// Thread: stateless; any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

namespace ferry {

// Deep enough for any telemetry document we have seen (they nest 2-5 levels); shallow enough that nothing
// downstream (a DOM walk, a Lua table) has to worry about depth.
inline constexpr unsigned kDefaultMaxJsonDepth = 64;
// The most ingest.max_json_depth may be. Decoders of the centre's bytes and re-serialisation of stored
// payloads (whose Accept() walk recurses) use it, so whatever ingest stored can be forwarded.
inline constexpr unsigned kMaxJsonDepthLimit = 256;
// The flags wire decoders parse with.
inline constexpr unsigned kWireJsonFlags = rapidjson::kParseFullPrecisionFlag | rapidjson::kParseValidateEncodingFlag;

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
  bool Int(int i) { return inner_.Int(i); }
  bool Uint(unsigned u) { return inner_.Uint(u); }
  bool Int64(int64_t i) { return inner_.Int64(i); }
  bool Uint64(uint64_t u) { return inner_.Uint64(u); }
  bool Double(double d) { return inner_.Double(d); }
  bool RawNumber(const Ch* s, rapidjson::SizeType n, bool copy) { return inner_.RawNumber(s, n, copy); }
  bool String(const Ch* s, rapidjson::SizeType n, bool copy) { return inner_.String(s, n, copy); }
  bool Key(const Ch* s, rapidjson::SizeType n, bool copy) { return inner_.Key(s, n, copy); }
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

 private:
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
};

// Parses `text` with `reader` (reuse one reader to keep its stack between messages) into the SAX `handler`,
// iteratively, refusing nesting deeper than max_depth.
template <unsigned kFlags, typename Handler>
JsonStatus ParseJsonBounded(rapidjson::Reader& reader, std::string_view text, Handler& handler,
                            unsigned max_depth) {
  DepthLimitedHandler<Handler> limited(handler, max_depth);
  // The text need not be NUL-terminated: a MemoryStream reads exactly its bytes, without a copy.
  rapidjson::MemoryStream ms(text.data(), text.size());
  rapidjson::ParseResult r = reader.Parse<kFlags | rapidjson::kParseIterativeFlag>(ms, limited);
  JsonStatus st;
  if (r) return st;
  st.offset = r.Offset();
  if (limited.too_deep()) {
    st.failure = JsonFailure::kTooDeep;
    st.message = "JSON nested deeper than " + std::to_string(max_depth) + " levels (at offset " +
                 std::to_string(r.Offset()) + ")";
  } else {
    st.failure = JsonFailure::kSyntax;
    st.message = "invalid JSON at offset " + std::to_string(r.Offset()) + ": " + rapidjson::GetParseError_En(r.Code());
  }
  return st;
}

// Parses `text` into `doc` (replacing its value), iteratively and depth-bounded. On failure doc is null.
template <unsigned kFlags = rapidjson::kParseValidateEncodingFlag>
JsonStatus ParseJsonDocument(rapidjson::Document& doc, std::string_view text,
                             unsigned max_depth = kDefaultMaxJsonDepth) {
  rapidjson::Reader reader;
  JsonStatus st;
  // Populate() lets the document collect the SAX events into its own value stack, then takes the result.
  auto generate = [&](rapidjson::Document& d) {
    st = ParseJsonBounded<kFlags>(reader, text, d, max_depth);
    return st.ok();
  };
  doc.Populate(generate);
  if (!st.ok()) doc.SetNull();
  return st;
}

}  // namespace ferry
