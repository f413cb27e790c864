// [[pipeline]] in the TOML config: nested [[pipeline.step]] / [[pipeline.step.upgrade]], and errors that name
// the pipeline and the step.
#include <gtest/gtest.h>

#include "ferry/config.h"

namespace ferry {
namespace {

constexpr const char* kBase = R"(
[storage]
path = "/tmp/x"
[[stream]]
name = "raw"
[[stream]]
name = "clean"
[[stream]]
name = "alerts"
[[stream]]
name = "dlq"
[[route]]
filter = "t/{d}"
stream = "raw"
)";

Result<Config> Load(const std::string& pipelines) { return LoadConfigString(std::string(kBase) + pipelines, "f.toml"); }

TEST(PipelineConfig, ParsesStepsAndUpgrades) {
  auto c = Load(R"(
[[pipeline]]
name = "clean"
input = ["raw"]
output = "clean"
dead_letter = "dlq"

[[pipeline.step]]
type = "schema_upgrade"
[[pipeline.step.upgrade]]
version = 1
rename = ["tmp=temp"]
defaults = ["unit='C'"]
[[pipeline.step.upgrade]]
version = 2
drop = ["legacy"]

[[pipeline.step]]
type = "units"
field = "temp"
from = "C"
to = "F"

[[pipeline.step]]
type = "route"
by = "temp > 100 and 'alerts' or nil"
outputs = ["alerts"]
)");
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(c->pipelines.size(), 1u);
  const PipelineConfig& p = c->pipelines[0];
  EXPECT_EQ(p.batch, 500);
  EXPECT_EQ(p.max_memory, 8u << 20);
  ASSERT_EQ(p.steps.size(), 3u);
  EXPECT_EQ(p.steps[0].type, PipelineStepType::kSchemaUpgrade);
  ASSERT_EQ(p.steps[0].upgrades.size(), 2u);
  EXPECT_EQ(p.steps[0].upgrades[0].rename, std::vector<std::string>{"tmp=temp"});
  EXPECT_EQ(p.steps[0].upgrades[1].version, 2);
  EXPECT_EQ(p.steps[1].to, "F");
  EXPECT_EQ(p.steps[2].outputs, std::vector<std::string>{"alerts"});
}

void ExpectError(const std::string& toml, const std::string& part) {
  auto c = Load(toml);
  ASSERT_FALSE(c) << "accepted:\n" << toml;
  EXPECT_NE(c.error().message.find(part), std::string::npos) << c.error().message;
}

TEST(PipelineConfig, ErrorsNameThePipelineAndStep) {
  ExpectError(R"(
[[pipeline]]
name = "p"
input = ["raw"]
output = "nowhere"
)", "pipeline[0].output: stream \"nowhere\" is not declared");
  ExpectError(R"(
[[pipeline]]
name = "p"
input = ["raw"]
output = "raw"
)", "its output would come back to it");
  ExpectError(R"(
[[pipeline]]
name = "p"
input = ["raw"]
output = "clean"
[[pipeline.step]]
type = "filter"
[[pipeline.step]]
type = "filter"
where = "1"
)", "pipeline[0].step[0].type: this step type needs `where`");
  ExpectError(R"(
[[pipeline]]
name = "p"
input = ["raw"]
output = "clean"
[[pipeline.step]]
type = "units"
field = "t"
from = "C"
to = "bar"
)", "pipeline[0].step[0].to: cannot convert temperature (C) to pressure (bar)");
  ExpectError(R"(
[[pipeline]]
name = "p"
input = ["raw"]
output = "clean"
[[pipeline.step]]
type = "schema_upgrade"
[[pipeline.step.upgrade]]
version = 1
[[pipeline.step.upgrade]]
version = 3
)", "no upgrade from version 2 to 3");
  ExpectError(R"(
[[pipeline]]
name = "p"
input = ["raw"]
output = "clean"
[[pipeline.step]]
type = "sort"
)", "pipeline[0].step[0].type");
  ExpectError(R"(
[[pipeline]]
name = "p"
input = ["raw"]
output = "clean"
[[pipeline.step]]
type = "filter"
where = "1"
whence = "x"
)", "pipeline[0].step[0].whence: unknown key");
  ExpectError(R"(
[[pipeline]]
name = "p"
output = "clean"
)", "pipeline[0].input: required key is missing");
}

TEST(PipelineConfig, AnyChangeIsARestart) {
  const std::string one = R"(
[[pipeline]]
name = "p"
input = ["raw"]
output = "clean"
[[pipeline.step]]
type = "filter"
where = "a > 1"
)";
  std::string two = one;
  two.replace(two.find("a > 1"), 5, "a > 2");
  auto a = Load(one);
  auto b = Load(two);
  ASSERT_TRUE(a && b);
  ReloadPlan plan = ReloadDiff(*a, *b);
  EXPECT_EQ(plan.restart, std::vector<std::string>{"pipeline[p].step[0].where"});
  EXPECT_TRUE(plan.reload.empty());
}

}  // namespace
}  // namespace ferry
