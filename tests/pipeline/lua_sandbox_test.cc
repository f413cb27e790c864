// The Lua sandbox: values in and out, the sandbox's walls, and hostile code that must fail one call, never
// the process.
#include "ferry/lua_sandbox.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

namespace ferry {
namespace {

std::unique_ptr<LuaSandbox> Make(LuaLimits limits = {}) {
  auto sb = LuaSandbox::Create(limits);
  EXPECT_TRUE(sb) << sb.error().message;
  return std::move(*sb);
}

TEST(LuaSandbox, JsonRoundTripKeepsOrderTypesAndNesting) {
  auto sb = Make();
  const std::string in =
      R"({"z":1,"a":2.5,"s":"h\u00e9\"llo\n","t":true,"f":false,"arr":[1,2,{"x":[]}],"o":{"b":1,"a":{}},"big":1e300,"neg":-0.1,"i":20.0})";
  auto slot = sb->FromJson(in);
  ASSERT_TRUE(slot) << slot.error().message;
  auto out = sb->ToJson(*slot);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(*out,
            "{\"z\":1,\"a\":2.5,\"s\":\"h\xc3\xa9\\\"llo\\n\",\"t\":true,\"f\":false,\"arr\":[1,2,{\"x\":[]}],"
            "\"o\":{\"b\":1,\"a\":{}},\"big\":1e+300,\"neg\":-0.1,\"i\":20.0}");
  sb->Free(*slot);
}

// Numbers are read without Lua's string conversion and written with std::to_chars (the pipeline's hot path):
// the same types and the same bytes as lua_stringtonumber and printf's %.15g / %.17g, which earlier releases
// wrote (a replay must give the same bytes).
TEST(LuaSandbox, NumbersReadAndWriteAsLuaAndPrintfWould) {
  auto sb = Make();
  auto printf_g = [](double d) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.15g", d);
    if (std::strtod(buf, nullptr) != d) std::snprintf(buf, sizeof buf, "%.17g", d);
    std::string s = buf;
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
    return s;
  };
  const char* floats[] = {"0.1", "2.5", "-0.0", "1e5", "100000.5", "1e15", "1e16", "1e17", "123456789012345678",
                          "1.7976931348623157e308", "4.9e-324", "2.2250738585072014e-308", "0.30000000000000004",
                          "1e-5", "0.0001", "123.456e-7", "9007199254740993.0", "1E2", "-3.14159265358979"};
  for (const char* f : floats) {
    auto slot = sb->FromJson(std::string("{\"v\":") + f + "}");
    ASSERT_TRUE(slot) << f;
    auto out = sb->ToJson(*slot);
    sb->Free(*slot);
    ASSERT_TRUE(out) << f;
    const bool integer = std::string(f).find_first_of(".eE") == std::string::npos;
    if (!integer) {
      EXPECT_EQ(*out, "{\"v\":" + printf_g(std::strtod(f, nullptr)) + "}") << f;
    }
  }
  // Integers stay integers up to int64; one past it is a float, as in Lua.
  for (const char* i : {"0", "-0", "42", "-9223372036854775808", "9223372036854775807"}) {
    auto slot = sb->FromJson(std::string("{\"v\":") + i + "}");
    ASSERT_TRUE(slot) << i;
    EXPECT_EQ(*sb->ToJson(*slot), std::string("{\"v\":") + (std::string(i) == "-0" ? "0" : i) + "}");
    sb->Free(*slot);
  }
  auto big = sb->FromJson(R"({"v":9223372036854775808})");
  ASSERT_TRUE(big);
  EXPECT_EQ(*sb->ToJson(*big), "{\"v\":" + printf_g(9223372036854775808.0) + "}");
  sb->Free(*big);
  // Below a double's range: 0, as Lua reads it (from_chars reports the underflow; Lua's own conversion decides).
  auto tiny = sb->FromJson(R"({"v":1e-400})");
  ASSERT_TRUE(tiny) << tiny.error().message;
  EXPECT_EQ(*sb->ToJson(*tiny), "{\"v\":0.0}");
  sb->Free(*tiny);
  // Above it, the parser refuses the payload.
  auto huge = sb->FromJson(R"({"v":1e400})");
  ASSERT_FALSE(huge);
  EXPECT_NE(huge.error().message.find("Number too big"), std::string::npos) << huge.error().message;
}

TEST(LuaSandbox, NullMembersAreAbsent) {
  auto sb = Make();
  auto slot = sb->FromJson(R"({"a":null,"b":1})");
  ASSERT_TRUE(slot);
  EXPECT_EQ(*sb->ToJson(*slot), "{\"b\":1}");
}

TEST(LuaSandbox, ExpressionsSeeFieldsAndNumbersAsNumbers) {
  auto sb = Make();
  auto e = sb->CompileExpression("temp * 2 > 50 and event.device == 'd1' and math.floor(3.7) == 3", "t");
  ASSERT_TRUE(e) << e.error().message;
  auto slot = sb->FromJson(R"({"temp":30,"device":"d1"})");
  ASSERT_TRUE(slot);
  auto r = sb->Test(*e, *slot);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(*r);
  auto nested = sb->CompileExpression("engine.rpm + #tags", "n");
  ASSERT_TRUE(nested);
  auto slot2 = sb->FromJson(R"({"engine":{"rpm":1000},"tags":["a","b"]})");
  ASSERT_TRUE(sb->Assign(*nested, *slot2, "x"));
  EXPECT_EQ(*sb->ToJson(*slot2), R"({"engine":{"rpm":1000},"tags":["a","b"],"x":1002})");
}

TEST(LuaSandbox, SyntaxErrorIsAStatusNamingTheExpression) {
  auto sb = Make();
  auto e = sb->CompileExpression("temp >", "hot/0:filter where");
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("hot/0:filter where"), std::string::npos) << e.error().message;
}

TEST(LuaSandbox, NoIoOsRequireLoadDofileDebug) {
  auto sb = Make();
  auto slot = sb->FromJson("{}");
  ASSERT_TRUE(slot);
  for (const char* g : {"io", "os", "require", "load", "loadfile", "dofile", "debug", "package", "collectgarbage",
                        "print", "_G"}) {
    auto e = sb->CompileExpression(std::string(g) + " == nil", g);
    ASSERT_TRUE(e) << g;
    auto r = sb->Test(*e, *slot);
    ASSERT_TRUE(r) << g << ": " << r.error().message;
    EXPECT_TRUE(*r) << g << " is reachable";
  }
  auto dump = sb->CompileExpression("string.dump == nil and ('').dump == nil", "dump");
  ASSERT_TRUE(dump);
  EXPECT_TRUE(*sb->Test(*dump, *slot));
  // Binary chunks are refused even as source text.
  auto bin = sb->CompileScript("\x1bLua", "bin");
  EXPECT_FALSE(bin);
}

TEST(LuaSandbox, ExpressionsCannotAssignGlobals) {
  auto sb = Make();
  auto e = sb->CompileExpression("(function() x = 1 end)()", "assign");
  ASSERT_TRUE(e);
  auto slot = sb->FromJson("{}");
  auto r = sb->Test(*e, *slot);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("cannot assign the global 'x'"), std::string::npos) << r.error().message;
}

TEST(LuaSandbox, InfiniteLoopHitsTheInstructionLimitAndTheStateStaysUsable) {
  LuaLimits limits;
  limits.max_instructions = 10'000;
  auto sb = Make(limits);
  auto loop = sb->CompileScript("function process(e) while true do end end", "loop");
  ASSERT_TRUE(loop) << loop.error().message;
  auto slot = sb->FromJson(R"({"a":1})");
  auto r = sb->CallProcess(*loop, *slot);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("instruction limit"), std::string::npos) << r.error().message;
  // The next call gets a fresh budget.
  auto ok = sb->CompileExpression("a + 1", "ok");
  auto slot2 = sb->FromJson(R"({"a":1})");
  EXPECT_TRUE(sb->Assign(*ok, *slot2, "b"));
}

TEST(LuaSandbox, PcallCannotSwallowTheInstructionLimit) {
  LuaLimits limits;
  limits.max_instructions = 10'000;
  auto sb = Make(limits);
  auto evade = sb->CompileScript(R"(
    function process(e)
      while true do
        pcall(function() while true do end end)
        xpcall(function() while true do end end, function(m) while true do end end)
      end
    end)", "evade");
  ASSERT_TRUE(evade);
  auto r = sb->CallProcess(*evade, *sb->FromJson("{}"));
  ASSERT_FALSE(r);
  auto ok = sb->CompileExpression("1 + 1", "ok");
  auto slot = sb->FromJson("{}");
  EXPECT_TRUE(sb->Assign(*ok, *slot, "two")) << "the next call has its full budget again";
  EXPECT_EQ(*sb->ToJson(*slot), R"({"two":2})");
}

TEST(LuaSandbox, NoFinalizers) {
  // Lua runs __gc with hooks off: a looping finalizer would escape the instruction limit, so none may be set.
  auto sb = Make();
  auto gc = sb->CompileScript(
      "function process(e) setmetatable({}, {__gc = function() while true do end end}) return e end", "gc");
  ASSERT_TRUE(gc);
  auto out = sb->CallProcess(*gc, *sb->FromJson("{}"));
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message.find("__gc"), std::string::npos) << out.error().message;
  auto ok = sb->CompileScript("function process(e) return setmetatable(e, {__index = function() return 1 end}) end",
                              "ok");
  auto kept = sb->CallProcess(*ok, *sb->FromJson("{}"));
  ASSERT_TRUE(kept) << kept.error().message;
  for (auto s : *kept) sb->Free(s);
  sb.reset();
}

TEST(LuaSandbox, MemoryBombHitsTheMemoryLimitAndMemoryIsReturned) {
  LuaLimits limits;
  limits.max_memory = 2 << 20;
  auto sb = Make(limits);
  size_t base = sb->memory_in_use();
  auto bomb = sb->CompileScript(
      "function process(e) local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end end", "bomb");
  ASSERT_TRUE(bomb);
  auto rep = sb->CompileExpression("string.rep('x', 1e9)", "rep");
  ASSERT_TRUE(rep);
  for (int i = 0; i < 3; ++i) {
    auto slot = sb->FromJson("{}");
    auto r = sb->CallProcess(*bomb, *slot);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("not enough memory"), std::string::npos) << r.error().message;
    auto slot2 = sb->FromJson("{}");
    auto s = sb->Assign(*rep, *slot2, "x");
    ASSERT_FALSE(s);
    sb->Free(*slot2);
  }
  EXPECT_LT(sb->memory_in_use(), base + (256 << 10)) << "garbage of failed calls is collected";
}

TEST(LuaSandbox, ErrorAndBadResultsAreStatuses) {
  auto sb = Make();
  auto err = sb->CompileScript("function process(e) error('boom') end", "err");
  ASSERT_TRUE(err);
  auto r = sb->CallProcess(*err, *sb->FromJson("{}"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("boom"), std::string::npos);
  auto tbl_err = sb->CompileScript("function process(e) error({}) end", "tbl");
  EXPECT_FALSE(sb->CallProcess(*tbl_err, *sb->FromJson("{}")));
  auto num = sb->CompileScript("function process(e) return 42 end", "num");
  EXPECT_FALSE(sb->CallProcess(*num, *sb->FromJson("{}")));
  auto none = sb->CompileScript("x = 1", "none");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("process"), std::string::npos);
}

TEST(LuaSandbox, DeepAndCyclicTablesFailSerialisationNotTheProcess) {
  auto sb = Make();
  auto deep = sb->CompileScript(
      "function process(e) local t = e for i = 1, 1000 do t.n = {} t = t.n end return e end", "deep");
  auto cyc = sb->CompileScript("function process(e) e.self = e return e end", "cyc");
  auto fn = sb->CompileScript("function process(e) e.f = print or function() end return e end", "fn");
  auto nan = sb->CompileScript("function process(e) e.x = 0/0 return e end", "nan");
  for (auto h : {deep, cyc, fn, nan}) {
    ASSERT_TRUE(h) << h.error().message;
    auto out = sb->CallProcess(*h, *sb->FromJson("{}"));
    ASSERT_TRUE(out) << out.error().message;
    ASSERT_EQ(out->size(), 1u);
    auto json = sb->ToJson((*out)[0]);
    EXPECT_FALSE(json);
    sb->Free((*out)[0]);
  }
  // Deep JSON input is refused before Lua sees it.
  std::string deep_json(200, '[');
  deep_json = "{\"a\":" + deep_json + std::string(200, ']') + "}";
  EXPECT_FALSE(sb->FromJson(deep_json));
}

TEST(LuaSandbox, NonUtf8InAndOut) {
  auto sb = Make();
  EXPECT_FALSE(sb->FromJson("{\"a\":\"\xff\xfe\"}"));
  EXPECT_FALSE(sb->FromJson("{\"a\":\"\\udc00\"}"));
  EXPECT_FALSE(sb->FromJson("[1,2]")) << "a payload must be an object";
  EXPECT_FALSE(sb->FromJson("not json"));
  auto bad = sb->CompileScript("function process(e) e.s = '\\xff' return e end", "bad");
  auto out = sb->CallProcess(*bad, *sb->FromJson("{}"));
  ASSERT_TRUE(out);
  auto json = sb->ToJson((*out)[0]);
  ASSERT_FALSE(json);
  EXPECT_NE(json.error().message.find("UTF-8"), std::string::npos);
}

TEST(LuaSandbox, ScriptReturnsListOrNil) {
  auto sb = Make();
  auto split = sb->CompileScript(
      "function process(e) local out = {} for _, v in ipairs(e.values) do out[#out+1] = {v = v} end return out end",
      "split");
  ASSERT_TRUE(split);
  auto out = sb->CallProcess(*split, *sb->FromJson(R"({"values":[1,2,3]})"));
  ASSERT_TRUE(out) << out.error().message;
  ASSERT_EQ(out->size(), 3u);
  EXPECT_EQ(*sb->ToJson((*out)[2]), R"({"v":3})");
  for (auto s : *out) sb->Free(s);
  auto drop = sb->CompileScript("function process(e) return nil end", "drop");
  auto none = sb->CallProcess(*drop, *sb->FromJson("{}"));
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST(LuaSandbox, ManyEventsDoNotGrowMemory) {
  auto sb = Make();
  auto e = sb->CompileExpression("temp + 1", "e");
  size_t after_first = 0;
  for (int i = 0; i < 20000; ++i) {
    auto slot = sb->FromJson(R"({"temp":21.5,"device":"d1","tags":["a","b"]})");
    ASSERT_TRUE(slot);
    ASSERT_TRUE(sb->Assign(*e, *slot, "t2"));
    ASSERT_TRUE(sb->ToJson(*slot));
    sb->Free(*slot);
    if (i == 100) after_first = sb->memory_in_use();
  }
  EXPECT_LT(sb->memory_in_use(), after_first + (512 << 10));
}

}  // namespace
}  // namespace ferry
