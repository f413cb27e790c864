// The lookup step (issue 15's join): each event enriched with the current row of a table by key, on a fake
// table; what a missing row, a missing key, a deleted row and a reader error do under each `missing` policy.
#include "ferry/pipeline.h"

#include <gtest/gtest.h>

#include <map>

namespace ferry {
namespace {

PipelineConfig LookupConfig(LookupMissing missing, const std::string& default_value = "") {
  PipelineStepConfig s;
  s.type = PipelineStepType::kLookup;
  s.field = "device";
  s.table = "assets";
  s.into = "asset";
  s.missing = missing;
  s.value = default_value;
  PipelineStepConfig then;  // a later step sees the row
  then.type = PipelineStepType::kSet;
  then.field = "hot";
  then.value = "asset ~= nil and type(asset) == 'table' and temp > asset.max_temp or false";
  PipelineConfig c;
  c.name = "enrich";
  c.input = {"telemetry"};
  c.output = "enriched";
  c.dead_letter = "dlq";
  c.batch = 100;
  c.max_instructions = 100'000;
  c.max_memory = 4 << 20;
  c.steps = {s, then};
  return c;
}

struct Table {
  std::map<std::string, std::string> rows;
  bool broken = false;
  int reads = 0;
  TableLookup reader() {
    return [this](const std::string& table, const std::string& key) -> Result<std::optional<std::string>> {
      ++reads;
      EXPECT_EQ(table, "assets");
      if (broken) return tl::make_unexpected(Error{ErrorCode::kIoError, "Input/output error"});
      auto it = rows.find(key);
      if (it == rows.end()) return std::optional<std::string>{};
      return std::optional<std::string>{it->second};
    };
  }
};

ProcessOutcome Go(Pipeline& p, const std::string& payload) {
  RecordView r{};
  r.seq = Seq{1};
  r.id = "e1";
  r.payload = payload;
  return p.Process("telemetry", r);
}

TEST(PipelineLookup, TheRowGoesIntoTheEventAndLaterStepsSeeIt) {
  auto p = Pipeline::Compile(LookupConfig(LookupMissing::kDeadLetter));
  ASSERT_TRUE(p) << p.error().message;
  Table t;
  t.rows["dev-1"] = R"({"max_temp":80,"site":"engine room"})";
  t.rows["42"] = "plain text row";
  (*p)->SetTableLookup(t.reader());
  auto o = Go(**p, R"({"device":"dev-1","temp":85})");
  ASSERT_FALSE(o.failure) << o.failure->message;
  ASSERT_EQ(o.outputs.size(), 1u);
  EXPECT_EQ(o.outputs[0].event.payload, R"({"device":"dev-1","temp":85,"asset":{"max_temp":80,"site":"engine room"},"hot":true})");
  EXPECT_EQ(o.lookup_misses, 0u);
  // A numeric key is looked up as Lua formats it; a row that is not a JSON object goes in as a string.
  o = Go(**p, R"({"device":42,"temp":1})");
  ASSERT_FALSE(o.failure) << o.failure->message;
  EXPECT_EQ(o.outputs[0].event.payload, R"({"device":42,"temp":1,"asset":"plain text row","hot":false})");
  // The table is read for each event: a row changed later changes later events only.
  t.rows["dev-1"] = R"({"max_temp":90})";
  o = Go(**p, R"({"device":"dev-1","temp":85})");
  EXPECT_EQ(o.outputs[0].event.payload, R"({"device":"dev-1","temp":85,"asset":{"max_temp":90},"hot":false})");
}

TEST(PipelineLookup, AMissingRowIsADeadLetterByDefault) {
  auto p = Pipeline::Compile(LookupConfig(LookupMissing::kDeadLetter));
  ASSERT_TRUE(p);
  Table t;
  (*p)->SetTableLookup(t.reader());
  auto o = Go(**p, R"({"device":"dev-9","temp":1})");
  ASSERT_TRUE(o.failure);
  EXPECT_EQ(o.failure->step, "0:lookup");
  EXPECT_EQ(o.failure->message, "lookup: no row 'dev-9' in table assets");
  EXPECT_EQ(o.lookup_misses, 1u);
  o = Go(**p, R"({"temp":1})");  // no key field at all
  ASSERT_TRUE(o.failure);
  EXPECT_EQ(o.failure->message, "lookup: no key field 'device'");
  EXPECT_EQ(o.lookup_misses, 1u);
  EXPECT_EQ(t.reads, 1);  // no key, no read
}

TEST(PipelineLookup, DefaultAndKeepPassTheEventOn) {
  auto d = Pipeline::Compile(LookupConfig(LookupMissing::kDefault, "{max_temp = 100}"));
  ASSERT_TRUE(d) << d.error().message;
  Table t;
  (*d)->SetTableLookup(t.reader());
  auto o = Go(**d, R"({"device":"dev-9","temp":120})");
  ASSERT_FALSE(o.failure) << o.failure->message;
  EXPECT_EQ(o.outputs[0].event.payload, R"({"device":"dev-9","temp":120,"asset":{"max_temp":100},"hot":true})");
  EXPECT_EQ(o.lookup_misses, 1u);
  auto k = Pipeline::Compile(LookupConfig(LookupMissing::kKeep));
  ASSERT_TRUE(k);
  (*k)->SetTableLookup(t.reader());
  o = Go(**k, R"({"device":"dev-9","temp":120})");
  ASSERT_FALSE(o.failure) << o.failure->message;
  EXPECT_EQ(o.outputs[0].event.payload, R"({"device":"dev-9","temp":120,"hot":false})");
  EXPECT_EQ(o.lookup_misses, 1u);
}

TEST(PipelineLookup, AReaderErrorFailsTheEventWithItsWords) {
  auto p = Pipeline::Compile(LookupConfig(LookupMissing::kKeep));
  ASSERT_TRUE(p);
  Table t;
  t.broken = true;
  (*p)->SetTableLookup(t.reader());
  auto o = Go(**p, R"({"device":"dev-1"})");
  ASSERT_TRUE(o.failure);
  EXPECT_EQ(o.failure->message, "lookup in assets: Input/output error");
  auto none = Pipeline::Compile(LookupConfig(LookupMissing::kKeep));  // no reader: fails, never crashes
  ASSERT_TRUE(none);
  o = Go(**none, R"({"device":"dev-1"})");
  ASSERT_TRUE(o.failure);
}

}  // namespace
}  // namespace ferry
