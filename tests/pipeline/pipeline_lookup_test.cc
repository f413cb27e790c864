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

// Thresholds from a table: the window key's row goes into the result (as `row`) before `where` runs, so each
// device is held to its own limit; a key without a row follows `missing`.
PipelineConfig ThresholdFromTable(LookupMissing missing, const std::string& default_value = "") {
  PipelineStepConfig w;
  w.type = PipelineStepType::kWindow;
  w.window = WindowType::kTumbling;
  w.key = "device";
  w.field = "temp";
  w.size = std::chrono::seconds(60);
  w.aggregates = {"max"};
  w.max_keys = 100;
  w.max_windows = 16;
  PipelineStepConfig th;
  th.type = PipelineStepType::kThreshold;
  th.name = "over_limit";
  th.where = "max > row.max_temp";
  th.output = "alerts";
  th.table = "assets";
  th.missing = missing;
  th.value = default_value;
  PipelineConfig c = LookupConfig(missing);
  c.name = "limits";
  c.steps = {w, th};
  return c;
}

ProcessOutcome At(Pipeline& p, int seq, const std::string& device, int temp) {
  RecordView r{};
  r.seq = Seq{static_cast<uint64_t>(seq)};
  r.id = "e" + std::to_string(seq);
  r.time = TimeNs{1'800'000'000LL * 1'000'000'000 + seq * 1'000'000'000LL};
  const std::string payload = "{\"device\":\"" + device + "\",\"temp\":" + std::to_string(temp) + "}";
  r.payload = payload;
  return p.Process("telemetry", r);
}

size_t Alerts(const ProcessOutcome& o) {
  size_t n = 0;
  for (const auto& out : o.outputs) n += out.event.type == "ferry.alert";
  return n;
}

TEST(PipelineThresholdFromTable, EachKeyIsHeldToItsOwnRow) {
  auto p = Pipeline::Compile(ThresholdFromTable(LookupMissing::kDeadLetter));
  ASSERT_TRUE(p) << p.error().message;
  Table t;
  t.rows["dev-1"] = R"({"max_temp":80})";
  t.rows["dev-2"] = R"({"max_temp":100})";
  (*p)->SetTableLookup(t.reader());
  auto o = At(**p, 1, "dev-1", 85);
  ASSERT_EQ(Alerts(o), 1u);
  EXPECT_EQ(o.lookup_misses, 0u);
  for (const auto& out : o.outputs)
    if (out.event.type == "ferry.alert") {
      EXPECT_EQ(out.stream, "alerts");
      EXPECT_NE(out.event.payload.find("\"alert\":\"over_limit\""), std::string::npos) << out.event.payload;
    }
  EXPECT_EQ(Alerts(At(**p, 2, "dev-2", 85)), 0u) << "85 is within dev-2's limit of 100";
  EXPECT_EQ(Alerts(At(**p, 3, "dev-2", 101)), 1u);
  // No row, missing = dead_letter (the default): no limit, no alert, a miss counted, the pipeline goes on.
  o = At(**p, 4, "dev-3", 500);
  EXPECT_EQ(Alerts(o), 0u);
  EXPECT_EQ(o.lookup_misses, 1u);
  EXPECT_TRUE(o.threshold_failures.empty());
  EXPECT_FALSE(o.failure);
  // The table is read at each change: a limit lowered centrally applies to what comes after.
  t.rows["dev-2"] = R"({"max_temp":50})";
  EXPECT_EQ(Alerts(At(**p, 5, "dev-2", 60)), 0u) << "dev-2's window already alerted once";
}

TEST(PipelineThresholdFromTable, DefaultAndKeepForKeysWithoutARow) {
  auto p = Pipeline::Compile(ThresholdFromTable(LookupMissing::kDefault, "{max_temp = 150}"));
  ASSERT_TRUE(p) << p.error().message;
  Table t;
  (*p)->SetTableLookup(t.reader());
  EXPECT_EQ(Alerts(At(**p, 1, "dev-3", 140)), 0u);
  auto o = At(**p, 2, "dev-3", 160);
  EXPECT_EQ(Alerts(o), 1u) << "the default limit applies";
  EXPECT_EQ(o.lookup_misses, 1u);

  // keep: `where` runs without the row; here it fails on the missing row, counted, and no alert.
  p = Pipeline::Compile(ThresholdFromTable(LookupMissing::kKeep));
  ASSERT_TRUE(p) << p.error().message;
  (*p)->SetTableLookup(t.reader());
  o = At(**p, 1, "dev-3", 500);
  EXPECT_EQ(Alerts(o), 0u);
  ASSERT_EQ(o.threshold_failures.size(), 1u);
  EXPECT_EQ(o.threshold_failures[0], "over_limit");
  // A reader error: the threshold is counted as failed, the window result still goes out.
  t.broken = true;
  o = At(**p, 2, "dev-4", 500);
  EXPECT_EQ(Alerts(o), 0u);
  EXPECT_EQ(o.threshold_failures.size(), 1u);
  EXPECT_FALSE(o.failure);
}

}  // namespace
}  // namespace ferry
