#include "ferry/lua_sandbox.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <lua.hpp>

#include "ferry/json_bounded.h"
#include "ferry/utf8.h"

namespace ferry {

// Why every Lua call goes through Protected(): Lua raises errors with longjmp, and an error outside a
// protected call (an allocation refused by our limit while we build a table, say) ends in lua_atpanic, i.e.
// abort(). Inside lua_pcall it is just an error. The trampolines keep no C++ object with a destructor alive
// across a call that can raise, so a longjmp over them skips nothing.

struct LuaSandbox::Alloc {
  size_t used = 0;
  size_t limit = 0;
};

namespace {

// Registry keys (their addresses are unique light userdata keys).
char kCurrentKey;   // the event the expressions see
char kArrayMtKey;   // metatable marking tables that came from JSON arrays (so an empty one stays [])
char kOrderKey;     // weak-keyed table: object table -> sequence of its keys in arrival order
char kSandboxKey;   // the LuaSandbox*, for hooks and messages

void* LimitedAlloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* a = static_cast<LuaSandbox::Alloc*>(ud);
  size_t old = ptr != nullptr ? osize : 0;  // with ptr == NULL, osize is a type tag, not a size
  if (nsize == 0) {
    std::free(ptr);
    a->used -= old;
    return nullptr;
  }
  if (nsize > old && a->used + (nsize - old) > a->limit) return nullptr;  // Lua turns this into LUA_ERRMEM
  void* p = std::realloc(ptr, nsize);
  if (p == nullptr) return nullptr;
  a->used = a->used - old + nsize;
  return p;
}

// Past the limit every further instruction fails too, so a script's own pcall cannot swallow the error and
// carry on: each enclosing pcall catches one error at most, and the call unwinds to ours.
void CountHook(lua_State* L, lua_Debug*) {
  lua_sethook(L, CountHook, LUA_MASKCOUNT, 1);
  luaL_error(L, "instruction limit exceeded");
}

// __index of the expressions' environment: `event`, then the current event's fields, then the libraries.
int EnvIndex(lua_State* L) {
  // 1: env table, 2: key
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kCurrentKey);  // 3: event (or nil)
  if (lua_type(L, 2) == LUA_TSTRING && std::strcmp(lua_tostring(L, 2), "event") == 0) return 1;
  if (lua_istable(L, 3)) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, 3) != LUA_TNIL) return 1;
    lua_pop(L, 1);
  }
  lua_pushvalue(L, lua_upvalueindex(1));  // the library globals
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

int EnvNewIndex(lua_State* L) {
  return luaL_error(L, "an expression cannot assign the global '%s' (use a script step)",
                    lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?");
}

// setmetatable without __gc: Lua runs finalizers with hooks off (lgc.c GCTM), so a looping __gc could not be
// stopped by the instruction limit and would hang ferryd in a collection or at lua_close. Checking at
// setmetatable is enough: only a metatable that has __gc when it is set makes an object finalizable.
int SafeSetmetatable(lua_State* L) {
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL) return luaL_error(L, "__gc metamethods are not allowed in a pipeline");
    lua_pop(L, 1);
  }
  lua_pushvalue(L, lua_upvalueindex(1));  // the base library's setmetatable
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

// JSON -> tokens (outside Lua), then tokens -> tables (inside Lua): the parser never calls Lua, so a Lua
// error cannot unwind through rapidjson.
struct Token {
  enum Kind : uint8_t { kStartObject, kEndObject, kStartArray, kEndArray, kKey, kString, kNumber, kTrue, kFalse,
                        kNull } kind;
  uint32_t offset = 0;  // into the text arena
  uint32_t size = 0;    // of the text; kStartObject / kStartArray: members / elements, to size the table once
};

struct Tokenizer : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, Tokenizer> {
  std::vector<Token>* tokens;
  std::string* arena;
  std::vector<size_t> open;  // the start tokens of the objects and arrays being read
  bool Add(Token::Kind k, const char* s = nullptr, size_t n = 0) {
    Token t{k};
    if (s != nullptr) {
      t.offset = static_cast<uint32_t>(arena->size());
      t.size = static_cast<uint32_t>(n);
      arena->append(s, n);
    }
    tokens->push_back(t);
    return true;
  }
  bool Null() { return Add(Token::kNull); }
  bool Bool(bool b) { return Add(b ? Token::kTrue : Token::kFalse); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) { return Add(Token::kNumber, s, n); }
  bool String(const char* s, rapidjson::SizeType n, bool) { return Add(Token::kString, s, n); }
  bool Key(const char* s, rapidjson::SizeType n, bool) { return Add(Token::kKey, s, n); }
  bool Start(Token::Kind k) {
    open.push_back(tokens->size());
    return Add(k);
  }
  bool End(Token::Kind k, rapidjson::SizeType count) {
    (*tokens)[open.back()].size = count;  // balanced: the parser checked the nesting
    open.pop_back();
    return Add(k);
  }
  bool StartObject() { return Start(Token::kStartObject); }
  bool EndObject(rapidjson::SizeType members) { return End(Token::kEndObject, members); }
  bool StartArray() { return Start(Token::kStartArray); }
  bool EndArray(rapidjson::SizeType elements) { return End(Token::kEndArray, elements); }
  bool Default() { return false; }
};

struct BuildArgs {
  const std::vector<Token>* tokens;
  const std::string* arena;
};

// Builds the value starting at tokens[*i] and leaves it on the stack (nothing for null). Recursion depth is
// bounded by the parse's max_depth.
void PushValue(lua_State* L, const BuildArgs& a, size_t* i) {
  const Token& t = (*a.tokens)[(*i)++];
  const char* s = a.arena->data() + t.offset;
  switch (t.kind) {
    case Token::kString: lua_pushlstring(L, s, t.size); return;
    case Token::kNumber: {
      // Integers stay integers (Lua 5.4 has both); anything else is a float. Beyond int64 it is a float too.
      // As lua_stringtonumber decides, without making a Lua string of each number first.
      const char* end = s + t.size;
      if (std::find_if(s, end, [](char c) { return c == '.' || c == 'e' || c == 'E'; }) == end) {
        int64_t n = 0;
        auto r = std::from_chars(s, end, n);
        if (r.ec == std::errc() && r.ptr == end) {
          lua_pushinteger(L, n);
          return;
        }
      }
      double d = 0;
      auto r = std::from_chars(s, end, d);
      if (r.ec == std::errc() && r.ptr == end) {
        lua_pushnumber(L, d);
        return;
      }
      lua_pushlstring(L, s, t.size);  // out of a double's range (1e400): Lua's own conversion (inf)
      if (lua_stringtonumber(L, lua_tostring(L, -1)) == 0) lua_pushnumber(L, 0);
      lua_remove(L, -2);
      return;
    }
    case Token::kTrue: lua_pushboolean(L, 1); return;
    case Token::kFalse: lua_pushboolean(L, 0); return;
    case Token::kNull: lua_pushnil(L); return;
    case Token::kStartArray: {
      luaL_checkstack(L, 4, "JSON nesting");
      lua_createtable(L, static_cast<int>(std::min<uint32_t>(t.size, 1u << 20)), 0);
      lua_rawgetp(L, LUA_REGISTRYINDEX, &kArrayMtKey);
      lua_setmetatable(L, -2);
      lua_Integer n = 0;
      while ((*a.tokens)[*i].kind != Token::kEndArray) {
        PushValue(L, a, i);
        // A null element keeps its place as nil: the sequence then has a hole (#t is not reliable past it).
        lua_rawseti(L, -2, ++n);
      }
      ++*i;
      return;
    }
    case Token::kStartObject: {
      luaL_checkstack(L, 6, "JSON nesting");
      // Sized once (members counted by the parser): no rehash as the members go in.
      const int members = static_cast<int>(std::min<uint32_t>(t.size, 1u << 20));
      lua_createtable(L, 0, members);  // the object
      lua_createtable(L, members, 0);  // its key order
      lua_Integer n = 0;
      while ((*a.tokens)[*i].kind != Token::kEndObject) {
        const Token& k = (*a.tokens)[(*i)++];
        lua_pushlstring(L, a.arena->data() + k.offset, k.size);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, ++n);         // order[n] = key
        PushValue(L, a, i);              // object, order, key, value
        lua_rawset(L, -4);               // a null value sets nothing: the member is absent
      }
      ++*i;
      lua_rawgetp(L, LUA_REGISTRYINDEX, &kOrderKey);  // object, order, orders
      lua_pushvalue(L, -3);
      lua_pushvalue(L, -3);
      lua_rawset(L, -3);  // orders[object] = order
      lua_pop(L, 2);
      return;
    }
    default: lua_pushnil(L); return;  // not reached: the parser emits only balanced tokens
  }
}

// --- Serialisation: raw access only, so no Lua code runs and nothing raises but stack growth. -------------

struct JsonWriter {
  lua_State* L;
  std::string* out;
  unsigned max_depth;
  std::string error;  // set on the first failure; the recursion then returns false all the way up

  bool Fail(std::string msg) {
    if (error.empty()) error = std::move(msg);
    return false;
  }

  void String(std::string_view s) {
    out->push_back('"');
    for (unsigned char c : s) {
      switch (c) {
        case '"': *out += "\\\""; break;
        case '\\': *out += "\\\\"; break;
        case '\n': *out += "\\n"; break;
        case '\r': *out += "\\r"; break;
        case '\t': *out += "\\t"; break;
        case '\b': *out += "\\b"; break;
        case '\f': *out += "\\f"; break;
        default:
          if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            *out += buf;
          } else {
            out->push_back(static_cast<char>(c));
          }
      }
    }
    out->push_back('"');
  }

  bool Number(int idx) {
    if (lua_isinteger(L, idx)) {
      *out += std::to_string(lua_tointeger(L, idx));
      return true;
    }
    double d = lua_tonumber(L, idx);
    if (!std::isfinite(d)) return Fail("a number JSON cannot hold (" + std::string(std::isnan(d) ? "nan" : "inf") + ")");
    // The shortest of %.15g / %.17g that reads back exactly, so 0.1 stays "0.1"; an integral float keeps a
    // ".0" so it reads back as a float. std::to_chars with a precision is printf's %g to the byte, without
    // glibc's multi-precision printf (the costliest part of a stateless pipeline before).
    char buf[40];
    auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::general, 15);
    double back = 0;
    if (std::from_chars(buf, r.ptr, back).ec != std::errc() || back != d)
      r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::general, 17);
    const std::string_view text(buf, static_cast<size_t>(r.ptr - buf));
    *out += text;
    if (text.find_first_of(".eEn") == std::string_view::npos) *out += ".0";
    return true;
  }

  // Writes the value at the top of the stack.
  bool Value(unsigned depth, std::string_view where) {
    switch (lua_type(L, -1)) {
      case LUA_TNIL: *out += "null"; return true;
      case LUA_TBOOLEAN: *out += lua_toboolean(L, -1) ? "true" : "false"; return true;
      case LUA_TNUMBER: return Number(-1);
      case LUA_TSTRING: {
        size_t n = 0;
        const char* s = lua_tolstring(L, -1, &n);
        if (!IsUtf8(std::string_view(s, n))) return Fail(std::string(where) + ": a string that is not UTF-8");
        String(std::string_view(s, n));
        return true;
      }
      case LUA_TTABLE: return Table(depth + 1, where);
      default: return Fail(std::string(where) + ": a " + luaL_typename(L, -1) + " cannot be written as JSON");
    }
  }

  bool IsArray() {
    // Marked arrays (from JSON), or a non-empty table whose keys are exactly 1..n.
    if (lua_getmetatable(L, -1)) {
      lua_rawgetp(L, LUA_REGISTRYINDEX, &kArrayMtKey);
      bool marked = lua_rawequal(L, -1, -2);
      lua_pop(L, 2);
      if (marked) return true;
    }
    lua_Unsigned n = lua_rawlen(L, -1);
    if (n == 0) return false;
    size_t keys = 0;
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      lua_pop(L, 1);
      if (!lua_isinteger(L, -1)) {
        lua_pop(L, 1);
        return false;
      }
      ++keys;
    }
    return keys == n;
  }

  bool Table(unsigned depth, std::string_view where) {
    if (depth > max_depth) return Fail("nested deeper than " + std::to_string(max_depth) + " levels (or a cycle)");
    luaL_checkstack(L, 8, "JSON output");
    int t = lua_gettop(L);
    if (IsArray()) {
      out->push_back('[');
      lua_Unsigned n = lua_rawlen(L, t);
      // A hole (a null from the input) ends rawlen early on some shapes; write up to the largest index.
      lua_Integer max = static_cast<lua_Integer>(n);
      lua_pushnil(L);
      while (lua_next(L, t) != 0) {
        lua_pop(L, 1);
        if (lua_isinteger(L, -1)) max = std::max(max, lua_tointeger(L, -1));
      }
      for (lua_Integer i = 1; i <= max; ++i) {
        if (i > 1) out->push_back(',');
        lua_rawgeti(L, t, i);
        bool ok = Value(depth, where);
        lua_pop(L, 1);
        if (!ok) return false;
      }
      out->push_back(']');
      return true;
    }
    // An object: the keys it arrived with, in that order, then the others sorted (deterministic output: Lua's
    // own traversal order depends on a per-process hash seed).
    std::vector<std::string_view> keys;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &kOrderKey);
    lua_pushvalue(L, t);
    lua_rawget(L, -2);  // orders, order-or-nil
    int order = lua_gettop(L);
    size_t known = 0;
    bool aligned = false;  // keys[i] is order[i + 1] for every known key
    if (lua_istable(L, order)) {
      lua_Unsigned n = lua_rawlen(L, order);
      for (lua_Unsigned i = 1; i <= n; ++i) {
        lua_rawgeti(L, order, static_cast<lua_Integer>(i));
        size_t len = 0;
        const char* k = lua_tolstring(L, -1, &len);
        lua_pop(L, 1);  // the order table keeps the string alive
        if (k != nullptr) keys.emplace_back(k, len);
      }
      known = keys.size();
      aligned = known == n;
    }
    std::vector<std::string_view> extra;
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
      lua_pop(L, 1);
      if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        return Fail(std::string(where) + ": an object with a non-string key (a sequence with holes?)");
      }
      size_t len = 0;
      const char* k = lua_tolstring(L, -1, &len);
      std::string_view kv(k, len);
      if (std::find(keys.begin(), keys.begin() + known, kv) == keys.begin() + known) extra.push_back(kv);
    }
    std::sort(extra.begin(), extra.end());
    keys.insert(keys.end(), extra.begin(), extra.end());
    out->push_back('{');
    bool first = true;
    for (size_t i = 0; i < keys.size(); ++i) {
      const std::string_view k = keys[i];
      // A known key is in the order table already as a Lua string: no re-interning (hashing) of its bytes.
      if (aligned && i < known) lua_rawgeti(L, order, static_cast<lua_Integer>(i + 1));
      else lua_pushlstring(L, k.data(), k.size());
      if (lua_rawget(L, t) == LUA_TNIL) {  // removed since it arrived
        lua_pop(L, 1);
        continue;
      }
      if (!IsUtf8(k)) {
        lua_pop(L, 1);
        return Fail("a key that is not UTF-8");
      }
      if (!first) out->push_back(',');
      first = false;
      String(k);
      out->push_back(':');
      bool ok = Value(depth, k);
      lua_pop(L, 1);
      if (!ok) return false;
    }
    out->push_back('}');
    lua_settop(L, t);
    return true;
  }
};

// A slot is a registry reference to a table.
void PushSlot(lua_State* L, int slot) { lua_rawgeti(L, LUA_REGISTRYINDEX, slot); }

}  // namespace

LuaSandbox::LuaSandbox(const LuaLimits& limits) : limits_(limits), alloc_(std::make_unique<Alloc>()) {
  alloc_->limit = limits.max_memory;
}

void LuaSandbox::ResetHook() {
  lua_sethook(L_, CountHook, LUA_MASKCOUNT, static_cast<int>(std::min<uint64_t>(limits_.max_instructions, INT32_MAX)));
}

LuaSandbox::~LuaSandbox() {
  if (L_ != nullptr) {
    alloc_->limit = SIZE_MAX;  // closing must not fail for want of memory
    lua_close(L_);
  }
}

template <typename Fn>
Status LuaSandbox::Protected(const char* what, Fn&& fn) {
  struct Box {
    Fn* fn;
  };
  Box box{&fn};
  lua_settop(L_, 0);
  lua_pushcfunction(L_, [](lua_State* L) -> int {
    auto* b = static_cast<Box*>(lua_touserdata(L, 1));
    lua_remove(L, 1);
    (*b->fn)(L);
    return 0;
  });
  lua_pushlightuserdata(L_, &box);
  // The count hook fires after max_instructions VM instructions of this call; setting it resets the count.
  ResetHook();
  int rc = lua_pcall(L_, 1, 0, 0);
  if (rc == LUA_OK) {
    lua_settop(L_, 0);
    return Ok();
  }
  std::string msg;
  if (rc == LUA_ERRMEM) {
    msg = "not enough memory (limit " + std::to_string(limits_.max_memory) + " bytes)";
  } else {
    size_t n = 0;
    const char* s = lua_type(L_, -1) == LUA_TSTRING ? lua_tolstring(L_, -1, &n) : nullptr;
    msg = s != nullptr ? std::string(s, n) : std::string("a Lua error that is not a string");
    if (msg.find("instruction limit exceeded") != std::string::npos)
      msg += " (" + std::to_string(limits_.max_instructions) + ")";
  }
  lua_settop(L_, 0);
  // What the failed call left behind (a half-built table, a memory bomb's strings) is garbage now; collect it
  // at once so the next event starts with the memory it should have. Finalizers' errors become warnings.
  ResetHook();
  lua_gc(L_, LUA_GCCOLLECT);
  // Lua's own message starts with the chunk name already when `what` is null (compiling).
  return InvalidArgument(what == nullptr ? msg : std::string(what) + ": " + msg);
}

Result<std::unique_ptr<LuaSandbox>> LuaSandbox::Create(const LuaLimits& limits) {
  std::unique_ptr<LuaSandbox> sb(new LuaSandbox(limits));
  sb->L_ = lua_newstate(LimitedAlloc, sb->alloc_.get());
  if (sb->L_ == nullptr) return InvalidArgument("lua: cannot create a state within the memory limit");
  lua_atpanic(sb->L_, [](lua_State* L) -> int {
    // Not reached by design (see Protected); if it ever is, say so before Lua aborts.
    std::fprintf(stderr, "ferry: Lua panic: %s\n", lua_tostring(L, -1));
    return 0;
  });
  int env = LUA_NOREF;
  Status st = sb->Protected("lua sandbox", [&env](lua_State* L) {
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    lua_settop(L, 0);
    // string.dump exposes bytecode; the string table is also every string's metatable __index.
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    // The sandbox's globals: a copy of the safe part of _G. Sandboxed code never sees _G itself.
    lua_newtable(L);
    static const char* const kSafe[] = {"assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget",
                                        "rawlen", "rawset", "select", "getmetatable", "tonumber",
                                        "tostring", "type", "xpcall", "string", "table", "math", "utf8",
                                        "_VERSION"};
    for (const char* name : kSafe) {
      lua_getglobal(L, name);
      lua_setfield(L, -2, name);
    }
    lua_getglobal(L, "setmetatable");
    lua_pushcclosure(L, SafeSetmetatable, 1);
    lua_setfield(L, -2, "setmetatable");
    env = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kArrayMtKey);
    lua_newtable(L);  // weak-keyed: an order goes with its object
    lua_newtable(L);
    lua_pushstring(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kOrderKey);
  });
  if (!st) return tl::unexpected(st.error());
  sb->sandbox_env_ = env;
  lua_pushlightuserdata(sb->L_, sb.get());
  lua_rawsetp(sb->L_, LUA_REGISTRYINDEX, &kSandboxKey);
  return sb;
}

size_t LuaSandbox::memory_in_use() const { return alloc_->used; }

Result<LuaSandbox::Handle> LuaSandbox::CompileExpression(std::string_view expr, std::string_view name) {
  // A newline lets an expression end in a -- comment; only then, so that errors say line 1.
  const bool comment = expr.find("--") != std::string_view::npos;
  std::string chunk = "return (" + std::string(expr) + (comment ? "\n)" : ")");
  std::string chunk_name = "=" + std::string(name);
  int ref = LUA_NOREF;
  int env = sandbox_env_;
  std::string err;
  Status st = Protected(nullptr, [&](lua_State* L) {
    if (luaL_loadbufferx(L, chunk.data(), chunk.size(), chunk_name.c_str(), "t") != LUA_OK) lua_error(L);
    // _ENV: a proxy that reads the current event, then the libraries; writes are refused.
    lua_newtable(L);
    lua_newtable(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, env);
    lua_pushcclosure(L, EnvIndex, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, EnvNewIndex);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    lua_setupvalue(L, -2, 1);
    ref = luaL_ref(L, LUA_REGISTRYINDEX);
  });
  if (!st) return tl::unexpected(st.error());
  return ref;
}

Result<LuaSandbox::Handle> LuaSandbox::CompileScript(std::string_view source, std::string_view name) {
  std::string chunk_name = "=" + std::string(name);
  int ref = LUA_NOREF;
  int env = sandbox_env_;
  bool missing = false;
  Status st = Protected(nullptr, [&](lua_State* L) {
    if (luaL_loadbufferx(L, source.data(), source.size(), chunk_name.c_str(), "t") != LUA_OK) lua_error(L);
    // The script's own globals, over the libraries.
    lua_newtable(L);
    lua_newtable(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, env);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setupvalue(L, -3, 1);  // chunk, env
    lua_insert(L, -2);         // env, chunk
    lua_call(L, 0, 0);
    lua_getfield(L, -1, "process");
    if (!lua_isfunction(L, -1)) {
      missing = true;
      return;
    }
    ref = luaL_ref(L, LUA_REGISTRYINDEX);
  });
  if (!st) return tl::unexpected(st.error());
  if (missing) return InvalidArgument(std::string(name) + ": the script defines no function process(event)");
  return ref;
}

Result<LuaSandbox::Slot> LuaSandbox::FromJson(std::string_view json) {
  std::vector<Token> tokens;
  std::string arena;
  Tokenizer tk;
  tk.tokens = &tokens;
  tk.arena = &arena;
  arena.reserve(json.size());
  rapidjson::Reader reader;
  JsonStatus js = ParseJsonBounded(reader, json, tk, limits_.max_depth);
  if (!js.ok()) return InvalidArgument("payload: " + js.message);
  if (tokens.empty() || tokens[0].kind != Token::kStartObject) return InvalidArgument("payload: not a JSON object");
  BuildArgs args{&tokens, &arena};
  int ref = LUA_NOREF;
  Status st = Protected("payload", [&](lua_State* L) {
    size_t i = 0;
    PushValue(L, args, &i);
    ref = luaL_ref(L, LUA_REGISTRYINDEX);
  });
  if (!st) return tl::unexpected(st.error());
  return ref;
}

Result<std::string> LuaSandbox::ToJson(Slot slot) {
  std::string out;
  JsonWriter w{nullptr, &out, limits_.max_depth, {}};
  Status st = Protected("output", [&](lua_State* L) {
    w.L = L;
    PushSlot(L, slot);
    if (!lua_istable(L, -1)) {
      w.error = "the event is not a table";
      return;
    }
    w.Value(0, "event");
  });
  if (!st) return tl::unexpected(st.error());
  if (!w.error.empty()) return InvalidArgument("output: " + w.error);
  return out;
}

void LuaSandbox::Free(Slot slot) {
  // luaL_unref does not allocate: safe outside a protected call.
  luaL_unref(L_, LUA_REGISTRYINDEX, slot);
}

Result<bool> LuaSandbox::Test(Handle expr, Slot slot) {
  bool truth = false;
  Status st = Protected("expression", [&](lua_State* L) {
    PushSlot(L, slot);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kCurrentKey);
    lua_rawgeti(L, LUA_REGISTRYINDEX, expr);
    lua_call(L, 0, 1);
    truth = lua_toboolean(L, -1) != 0;
  });
  if (!st) return tl::unexpected(st.error());
  return truth;
}

Result<std::optional<std::string>> LuaSandbox::EvalString(Handle expr, Slot slot) {
  int type = LUA_TNIL;
  std::string value;
  Status st = Protected("expression", [&](lua_State* L) {
    PushSlot(L, slot);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kCurrentKey);
    lua_rawgeti(L, LUA_REGISTRYINDEX, expr);
    lua_call(L, 0, 1);
    type = lua_type(L, -1);
    if (type == LUA_TSTRING || type == LUA_TNUMBER) {
      size_t n = 0;
      const char* s = lua_tolstring(L, -1, &n);
      value.assign(s, n);  // may throw only bad_alloc; strings here are short
    }
  });
  if (!st) return tl::unexpected(st.error());
  if (type == LUA_TNIL) return std::optional<std::string>();
  if (type != LUA_TSTRING && type != LUA_TNUMBER)
    return InvalidArgument(std::string("expression: expected a string, got a ") + lua_typename(L_, type));
  return std::optional<std::string>(std::move(value));
}

Status LuaSandbox::Assign(Handle expr, Slot slot, std::string_view field) {
  return Protected("expression", [&](lua_State* L) {
    PushSlot(L, slot);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kCurrentKey);
    lua_pushlstring(L, field.data(), field.size());
    lua_rawgeti(L, LUA_REGISTRYINDEX, expr);
    lua_call(L, 0, 1);
    lua_rawset(L, -3);
  });
}

Status LuaSandbox::AssignIfAbsent(Handle expr, Slot slot, std::string_view field) {
  return Protected("default", [&](lua_State* L) {
    PushSlot(L, slot);
    lua_pushlstring(L, field.data(), field.size());
    if (lua_rawget(L, -2) != LUA_TNIL) return;
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kCurrentKey);
    lua_pushlstring(L, field.data(), field.size());
    lua_rawgeti(L, LUA_REGISTRYINDEX, expr);
    lua_call(L, 0, 1);
    lua_rawset(L, -3);
  });
}

Result<std::vector<LuaSandbox::Slot>> LuaSandbox::CallProcess(Handle script, Slot slot) {
  // The slots go into a fixed array first: no C++ container grows inside the protected call.
  constexpr int kMaxResults = 256;
  int refs[kMaxResults];
  int count = 0;
  const char* bad = nullptr;
  Status st = Protected("process", [&](lua_State* L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, script);
    PushSlot(L, slot);
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1)) return;
    if (!lua_istable(L, -1)) {
      bad = lua_typename(L, lua_type(L, -1));
      return;
    }
    // A list of events: a non-empty sequence whose first element is a table, and not an event from JSON
    // (those are objects, never marked arrays... but a script may build either, so look at element 1).
    bool list = false;
    if (lua_rawgeti(L, -1, 1) == LUA_TTABLE) list = true;
    lua_pop(L, 1);
    if (!list) {
      refs[count++] = luaL_ref(L, LUA_REGISTRYINDEX);
      return;
    }
    lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, -1));
    if (n > kMaxResults) {
      bad = "list of more than 256 events";
      return;
    }
    for (lua_Integer i = 1; i <= n; ++i) {
      if (lua_rawgeti(L, -1, i) != LUA_TTABLE) {
        lua_pop(L, 1);
        bad = "list with an element that is not a table";
        return;
      }
      refs[count++] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
  });
  Free(slot);
  if (!st) {
    for (int i = 0; i < count; ++i) Free(refs[i]);
    return tl::unexpected(st.error());
  }
  if (bad != nullptr) {
    for (int i = 0; i < count; ++i) Free(refs[i]);
    return InvalidArgument(std::string("process: returned a ") + bad + " (expected an event table, a list of them or nil)");
  }
  return std::vector<Slot>(refs, refs + count);
}

Status LuaSandbox::RemoveField(Slot slot, std::string_view field) {
  return Protected("drop", [&](lua_State* L) {
    PushSlot(L, slot);
    lua_pushlstring(L, field.data(), field.size());
    lua_pushnil(L);
    lua_rawset(L, -3);
  });
}

Status LuaSandbox::RenameField(Slot slot, std::string_view from, std::string_view to) {
  return Protected("rename", [&](lua_State* L) {
    PushSlot(L, slot);
    lua_pushlstring(L, from.data(), from.size());
    if (lua_rawget(L, -2) == LUA_TNIL) return;
    lua_pushlstring(L, to.data(), to.size());
    lua_insert(L, -2);
    lua_rawset(L, -3);
    lua_pushlstring(L, from.data(), from.size());
    lua_pushnil(L);
    lua_rawset(L, -3);
  });
}

Status LuaSandbox::KeepFields(Slot slot, const std::vector<std::string>& fields) {
  return Protected("project", [&](lua_State* L) {
    PushSlot(L, slot);
    int t = lua_gettop(L);
    lua_newtable(L);  // the kept values
    int kept = lua_gettop(L);
    for (const std::string& f : fields) {
      lua_pushlstring(L, f.data(), f.size());
      lua_pushvalue(L, -1);
      lua_rawget(L, t);
      lua_rawset(L, kept);
    }
    // Empty the event table in place (it keeps its identity and key order), then put the kept ones back.
    for (;;) {
      lua_pushnil(L);
      if (lua_next(L, t) == 0) break;
      lua_pop(L, 1);
      lua_pushnil(L);
      lua_rawset(L, t);
    }
    lua_pushnil(L);
    while (lua_next(L, kept) != 0) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, t);
    }
  });
}

Result<std::optional<double>> LuaSandbox::GetNumber(Slot slot, std::string_view field) {
  int type = LUA_TNIL;
  double v = 0;
  Status st = Protected("field", [&](lua_State* L) {
    PushSlot(L, slot);
    lua_pushlstring(L, field.data(), field.size());
    type = lua_rawget(L, -2);
    if (type == LUA_TNUMBER) v = lua_tonumber(L, -1);
  });
  if (!st) return tl::unexpected(st.error());
  if (type == LUA_TNIL) return std::optional<double>();
  if (type != LUA_TNUMBER)
    return InvalidArgument("field '" + std::string(field) + "' is a " + lua_typename(L_, type) + ", not a number");
  return std::optional<double>(v);
}

Result<std::optional<std::string>> LuaSandbox::GetKey(Slot slot, std::string_view field) {
  int type = LUA_TNIL;
  std::string v;
  Status st = Protected("field", [&](lua_State* L) {
    PushSlot(L, slot);
    lua_pushlstring(L, field.data(), field.size());
    type = lua_rawget(L, -2);
    if (type == LUA_TSTRING || type == LUA_TNUMBER) {
      size_t n = 0;
      const char* s = lua_tolstring(L, -1, &n);  // converts a number on the stack only
      v.assign(s, n);
    }
  });
  if (!st) return tl::unexpected(st.error());
  if (type == LUA_TNIL) return std::optional<std::string>();
  if (type != LUA_TSTRING && type != LUA_TNUMBER)
    return InvalidArgument("field '" + std::string(field) + "' is a " + lua_typename(L_, type) + ", not a string or number");
  return std::optional<std::string>(std::move(v));
}

Status LuaSandbox::SetNumber(Slot slot, std::string_view field, double value) {
  return Protected("field", [&](lua_State* L) {
    PushSlot(L, slot);
    lua_pushlstring(L, field.data(), field.size());
    lua_pushnumber(L, value);
    lua_rawset(L, -3);
  });
}

Status LuaSandbox::SetInteger(Slot slot, std::string_view field, int64_t value) {
  return Protected("field", [&](lua_State* L) {
    PushSlot(L, slot);
    lua_pushlstring(L, field.data(), field.size());
    lua_pushinteger(L, static_cast<lua_Integer>(value));
    lua_rawset(L, -3);
  });
}

Status LuaSandbox::SetTable(Slot slot, std::string_view field, Slot value) {
  return Protected("field", [&](lua_State* L) {
    PushSlot(L, slot);
    lua_pushlstring(L, field.data(), field.size());
    PushSlot(L, value);
    lua_rawset(L, -3);
  });
}

Status LuaSandbox::SetString(Slot slot, std::string_view field, std::string_view value) {
  return Protected("field", [&](lua_State* L) {
    PushSlot(L, slot);
    lua_pushlstring(L, field.data(), field.size());
    lua_pushlstring(L, value.data(), value.size());
    lua_rawset(L, -3);
  });
}

bool LuaSandbox::HasField(Slot slot, std::string_view field) {
  bool has = false;
  Status st = Protected("field", [&](lua_State* L) {
    PushSlot(L, slot);
    lua_pushlstring(L, field.data(), field.size());
    has = lua_rawget(L, -2) != LUA_TNIL;
  });
  return st && has;
}

}  // namespace ferry
