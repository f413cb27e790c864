// Every step kind on one event at a time, and how failures name the step.
#include "ferry/pipeline.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

PipelineStepConfig StepOf(PipelineStepType t) {
  PipelineStepConfig s;
  s.type = t;
  return s;
}

PipelineConfig Config(std::vector<PipelineStepConfig> steps) {
  PipelineConfig c;
  c.name = "p";
  c.input = {"raw"};
  c.output = "out";
  c.dead_letter = "dlq";
  c.batch = 100;
  c.max_instructions = 100'000;
  c.max_memory = 4 << 20;
  c.steps = std::move(steps);
  return c;
}

struct Harness {
  std::unique_ptr<Pipeline> p;
  explicit Harness(std::vector<PipelineStepConfig> steps) {
    auto c = Pipeline::Compile(Config(std::move(steps)));
    EXPECT_TRUE(c) << c.error().message;
    p = std::move(*c);
  }
  ProcessOutcome Go(const std::string& payload, const std::string& id = "dev1/7") {
    RecordView r{};
    r.seq = Seq{7};
    r.id = id;
    r.subject = "dev1";
    r.payload = payload;
    return p->Process("raw", r);
  }
  // The single output's payload, or "" with a test failure.
  std::string One(const std::string& payload) {
    auto o = Go(payload);
    EXPECT_FALSE(o.failure) << o.failure->step << ": " << o.failure->message;
    EXPECT_EQ(o.outputs.size(), 1u);
    return o.outputs.empty() ? "" : o.outputs[0].event.payload;
  }
};

TEST(PipelineSteps, Filter) {
  auto f = StepOf(PipelineStepType::kFilter);
  f.where = "temp > 30";
  Harness run({f});
  EXPECT_EQ(run.One(R"({"temp":31})"), R"({"temp":31})");
  auto dropped = run.Go(R"({"temp":29})");
  EXPECT_FALSE(dropped.failure);
  EXPECT_TRUE(dropped.outputs.empty());
  // A missing field compares nil with a number: a Lua error, so the event fails at this step.
  auto failed = run.Go(R"({"other":1})");
  ASSERT_TRUE(failed.failure);
  EXPECT_EQ(failed.failure->step, "0:filter");
  EXPECT_NE(failed.failure->message.find("compare"), std::string::npos) << failed.failure->message;
}

TEST(PipelineSteps, SetDropRenameProject) {
  auto set = StepOf(PipelineStepType::kSet);
  set.field = "temp_f";
  set.value = "temp * 9 / 5 + 32";
  auto drop = StepOf(PipelineStepType::kDrop);
  drop.fields = {"debug", "absent"};
  auto rename = StepOf(PipelineStepType::kRename);
  rename.from = "t";
  rename.to = "temp_c";
  auto project = StepOf(PipelineStepType::kProject);
  project.fields = {"device", "temp_c", "temp_f"};
  Harness run({set, drop, rename, project});
  // set reads `temp` before rename: the first step sees the raw names.
  auto a = run.Go(R"({"device":"d","temp":100,"t":100,"debug":{"x":1},"extra":true})");
  ASSERT_FALSE(a.failure) << a.failure->message;
  ASSERT_EQ(a.outputs.size(), 1u);
  EXPECT_EQ(a.outputs[0].event.payload, R"({"device":"d","temp_c":100,"temp_f":212.0})");
}

TEST(PipelineSteps, UnitsTemperatureAndPressure) {
  auto c2f = StepOf(PipelineStepType::kUnits);
  c2f.field = "t";
  c2f.from = "C";
  c2f.to = "F";
  auto kpa2bar = StepOf(PipelineStepType::kUnits);
  kpa2bar.field = "p";
  kpa2bar.from = "kPa";
  kpa2bar.to = "bar";
  Harness run({c2f, kpa2bar});
  EXPECT_EQ(run.One(R"({"t":100,"p":250})"), R"({"t":212.0,"p":2.5})");
  EXPECT_EQ(run.One(R"({"q":1})"), R"({"q":1})") << "absent fields stay absent";
  auto bad = run.Go(R"({"t":"hot"})");
  ASSERT_TRUE(bad.failure);
  EXPECT_EQ(bad.failure->step, "0:units");
  EXPECT_NEAR(*ConvertUnits(0, "K", "C"), -273.15, 1e-9);
  EXPECT_NEAR(*ConvertUnits(32, "F", "K"), 273.15, 1e-9);
  EXPECT_NEAR(*ConvertUnits(1, "bar", "psi"), 14.503773773, 1e-6);
  EXPECT_FALSE(ConvertUnits(1, "bar", "C"));
}

TEST(PipelineSteps, SchemaUpgradeChainsVersionsAndRefusesTheFuture) {
  auto up = StepOf(PipelineStepType::kSchemaUpgrade);
  SchemaUpgradeConfig v1;
  v1.version = 1;
  v1.rename = {"tmp=temp"};
  v1.defaults = {"unit='C'"};
  SchemaUpgradeConfig v2;
  v2.version = 2;
  v2.drop = {"legacy"};
  v2.defaults = {"site='unknown'", "unit='F'"};
  up.upgrades = {v1, v2};
  Harness run({up});
  // No version field: version 1 (missing_version), upgraded twice.
  EXPECT_EQ(run.One(R"({"tmp":20,"legacy":1})"), R"({"schema_version":3,"site":"unknown","temp":20,"unit":"C"})");
  EXPECT_EQ(run.One(R"({"schema_version":2,"temp":20,"unit":"K","legacy":1})"),
            R"({"schema_version":3,"temp":20,"unit":"K","site":"unknown"})");
  EXPECT_EQ(run.One(R"({"schema_version":3,"temp":20})"), R"({"schema_version":3,"temp":20})");
  auto future = run.Go(R"({"schema_version":4})");
  ASSERT_TRUE(future.failure);
  EXPECT_NE(future.failure->message.find("unknown future schema_version 4"), std::string::npos)
      << future.failure->message;
  auto old = run.Go(R"({"schema_version":0})");
  ASSERT_TRUE(old.failure);
  EXPECT_NE(old.failure->message.find("no upgrade from schema_version 0"), std::string::npos);
  EXPECT_TRUE(run.Go(R"({"schema_version":1.5})").failure);
}

TEST(PipelineSteps, RoutePicksAnOutput) {
  auto route = StepOf(PipelineStepType::kRoute);
  route.by = "temp > 80 and 'alerts' or (temp < 0 and 'cold' or nil)";
  route.outputs = {"alerts", "cold"};
  Harness run({route});
  EXPECT_EQ(run.Go(R"({"temp":90})").outputs.at(0).stream, "alerts");
  EXPECT_EQ(run.Go(R"({"temp":-5})").outputs.at(0).stream, "cold");
  EXPECT_EQ(run.Go(R"({"temp":20})").outputs.at(0).stream, "out");
  auto bad_step = StepOf(PipelineStepType::kRoute);
  bad_step.by = "'elsewhere'";
  bad_step.outputs = {"alerts"};
  Harness bad({bad_step});
  auto o = bad.Go("{}");
  ASSERT_TRUE(o.failure);
  EXPECT_NE(o.failure->message.find("elsewhere"), std::string::npos);
}

TEST(PipelineSteps, ScriptSplitsAndLaterStepsSeeEachPart) {
  auto script = StepOf(PipelineStepType::kScript);
  script.script = R"(
    function process(e)
      if e.skip then return nil end
      local out = {}
      for i, v in ipairs(e.readings) do out[i] = {device = e.device, i = i, v = v} end
      return out
    end)";
  auto filter = StepOf(PipelineStepType::kFilter);
  filter.where = "v >= 2";
  Harness run({script, filter});
  auto o = run.Go(R"({"device":"d","readings":[1,2,3]})", "id9");
  ASSERT_FALSE(o.failure);
  ASSERT_EQ(o.outputs.size(), 2u);
  EXPECT_EQ(o.outputs[0].event.payload, R"({"device":"d","i":2,"v":2})");
  EXPECT_EQ(o.outputs[0].event.id, "id9/p/0");
  EXPECT_EQ(o.outputs[1].event.id, "id9/p/1");
  EXPECT_EQ(o.outputs[1].event.subject, "dev1");
  auto skipped = run.Go(R"({"skip":true})");
  EXPECT_FALSE(skipped.failure);
  EXPECT_TRUE(skipped.outputs.empty());
}

TEST(PipelineSteps, OutputCarriesStableIdAndInputHeader) {
  Harness run({});
  auto o = run.Go(R"({"a":1})", "");
  ASSERT_EQ(o.outputs.size(), 1u);
  EXPECT_EQ(o.outputs[0].event.id, "raw/7/p");
  ASSERT_FALSE(o.outputs[0].event.headers.empty());
  EXPECT_EQ(o.outputs[0].event.headers.back().first, kPipelineInputHeader);
  EXPECT_EQ(o.outputs[0].event.headers.back().second, "raw/7");
}

TEST(PipelineSteps, BadInputAndDeadLetterShape) {
  Harness run({});
  RecordView r{};
  r.seq = Seq{3};
  r.payload = "\xff not json";
  auto o = run.p->Process("raw", r);
  ASSERT_TRUE(o.failure);
  EXPECT_EQ(o.failure->step, "input");
  Event d = run.p->DeadLetter("raw", r, *o.failure);
  EXPECT_EQ(d.payload, r.payload);
  bool has_step = false, has_reason = false;
  for (const auto& [k, v] : d.headers) {
    has_step |= k == kPipelineDlqStepHeader && v == "input";
    has_reason |= k == "ferry_dlq_reason" && v == kPipelineDlqReason;
  }
  EXPECT_TRUE(has_step);
  EXPECT_TRUE(has_reason);
}

TEST(PipelineSteps, CompileErrorsNameThePipelineAndStep) {
  auto f = StepOf(PipelineStepType::kFilter);
  f.name = "hot";
  f.where = "temp >";
  auto c = Pipeline::Compile(Config({StepOf(PipelineStepType::kDrop), f}));
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("pipeline p: step hot: where"), std::string::npos) << c.error().message;
  auto s = StepOf(PipelineStepType::kScript);
  s.script = "function nope() end";
  auto c2 = Pipeline::Compile(Config({s}));
  ASSERT_FALSE(c2);
  EXPECT_NE(c2.error().message.find("step 0:script"), std::string::npos) << c2.error().message;
}

}  // namespace
}  // namespace ferry
