// ferry/lua_sandbox.h: Lua 5.4 for pipeline expressions and scripts, compiled once, run per event, sandboxed.
//
// One LuaSandbox is one lua_State, owned by one pipeline. It holds at most one *current event*: a Lua table
// built from the event's JSON payload (objects -> tables, arrays -> sequences, numbers -> Lua integers or
// floats, strings, booleans; JSON null -> nil, i.e. the member is absent). Steps read and change that table;
// ToJson writes it back.
//
// Sandbox: only the base (without dofile, loadfile, load, require, collectgarbage, print), string (without
// string.dump; setmetatable refuses __gc, which Lua would run with hooks off), table, math and utf8 libraries.
// No io, os, package, debug. Each call is bounded by an
// instruction count (a count hook) and the whole state by a memory limit (its own lua_Alloc); both fail the
// call with an error, never the process. Every Lua API use that can raise (allocation included) runs inside
// lua_pcall, so a Lua error or an out-of-memory can never reach Lua's panic handler.
//
// Not bounded: the time a single C library call takes (a pathological string.find pattern over a long
// string); pipeline inputs are the operator's own streams and scripts are the operator's own configuration.
//
// Errors (InvalidArgument) carry Lua's message: "where: [string \"temp >\"]:1: unexpected symbol near <eof>",
// "instruction limit (1000000) exceeded", "not enough memory (limit 8388608 bytes)".
//
// Threads: a LuaSandbox is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/error.h"

struct lua_State;

namespace ferry {

struct LuaLimits {
  uint64_t max_instructions = 1'000'000;  // per call (expression, process(), or a JSON conversion)
  size_t max_memory = size_t{8} << 20;    // the whole state: compiled code, globals, the current events
  unsigned max_depth = 64;                // JSON nesting in and out (a cycle in a Lua table hits it too)
};

class LuaSandbox {
 public:
  // Errors: InvalidArgument if the state cannot be made within the limits.
  static Result<std::unique_ptr<LuaSandbox>> Create(const LuaLimits& limits = {});
  ~LuaSandbox();
  LuaSandbox(const LuaSandbox&) = delete;
  LuaSandbox& operator=(const LuaSandbox&) = delete;

  // A compiled expression or script, valid for the life of the sandbox.
  using Handle = int;

  // Compiles `expr` as the body of `return (expr)`. In it, the current event's fields are globals (`temp > 30`)
  // and the event itself is `event` (`event["odd key"]`); the sandbox's libraries follow the fields. Assigning
  // a global is an error (expressions have no state). `name` appears in error messages.
  Result<Handle> CompileExpression(std::string_view expr, std::string_view name);
  // Runs `source` once (its own globals, which persist between calls) and returns its global function
  // `process`. Errors: a syntax error, a runtime error at load, no function `process`.
  Result<Handle> CompileScript(std::string_view source, std::string_view name);

  // --- The events in hand ----------------------------------------------------------------------------------
  // Events are slots: a new slot from JSON, from a script's result, freed after use.
  using Slot = int;
  // Parses a JSON object into a new slot. Errors: not JSON, not an object, too deep, over the memory limit.
  Result<Slot> FromJson(std::string_view json);
  // Serialises a slot's table as JSON (object keys in the order they arrived, new keys after them, sorted).
  // Errors: a value JSON cannot hold (a function, NaN, a non-string key in an object), a string that is not
  // UTF-8, nesting (or a cycle) deeper than max_depth.
  Result<std::string> ToJson(Slot slot);
  void Free(Slot slot);

  // Evaluates an expression against `slot`.
  Result<bool> Test(Handle expr, Slot slot);  // Lua truth: anything but nil and false
  // The value as a string (a number is formatted as Lua does), nullopt for nil. Errors: another type.
  Result<std::optional<std::string>> EvalString(Handle expr, Slot slot);
  // slot[field] = value of expr (nil removes the field).
  Status Assign(Handle expr, Slot slot, std::string_view field);

  // Calls a script's process(event). Returns the slots it produced: none for nil, one for a table, one per
  // element for a list of tables ({e1, e2}). The input slot is consumed (freed or reused). Errors: a runtime
  // error, a result of another type.
  Result<std::vector<Slot>> CallProcess(Handle script, Slot slot);

  // --- Field operations the built-in steps use (no Lua code runs) ------------------------------------------
  Status RemoveField(Slot slot, std::string_view field);
  // Moves slot[from] to slot[to] if from is present (to is overwritten). Ok if from is absent.
  Status RenameField(Slot slot, std::string_view from, std::string_view to);
  // Keeps only `fields`.
  Status KeepFields(Slot slot, const std::vector<std::string>& fields);
  // The field as a number; nullopt if absent. Errors: present but not a number.
  Result<std::optional<double>> GetNumber(Slot slot, std::string_view field);
  // The field as a grouping key: a string as is, a number as Lua formats it ("12", "1.5"); nullopt if absent.
  // Errors: another type.
  Result<std::optional<std::string>> GetKey(Slot slot, std::string_view field);
  Status SetNumber(Slot slot, std::string_view field, double value);
  Status SetInteger(Slot slot, std::string_view field, int64_t value);
  bool HasField(Slot slot, std::string_view field);
  // slot[field] = the table of `value` (which stays a slot of its own until freed), or a string.
  Status SetTable(Slot slot, std::string_view field, Slot value);
  Status SetString(Slot slot, std::string_view field, std::string_view value);
  // Sets slot[field] to the value of a compiled constant expression (a default of a schema upgrade).
  Status AssignIfAbsent(Handle expr, Slot slot, std::string_view field);

  size_t memory_in_use() const;
  lua_State* state() { return L_; }

 // The memory accounting of the state's allocator (public for the allocator function only).
  struct Alloc;

 private:
  explicit LuaSandbox(const LuaLimits& limits);
  // Runs fn(L) under lua_pcall with the instruction budget reset; a Lua error becomes InvalidArgument.
  template <typename Fn>
  Status Protected(const char* what, Fn&& fn);
  void ResetHook();  // a fresh instruction budget

  LuaLimits limits_;
  std::unique_ptr<Alloc> alloc_;
  lua_State* L_ = nullptr;
  int sandbox_env_ = -1;  // registry ref: the table of safe library globals
};

}  // namespace ferry
