// The runner over a real log: outputs, dead letters and the cursor in one transaction; a failed commit moves
// nothing; a new runner resumes exactly where the last commit left off.
#include "ferry/pipeline_runner.h"

#include <gtest/gtest.h>

#include <sstream>

#include "ferry/ctl.h"

#include "../support/temp_dir.h"

namespace ferry::test {
namespace {

struct Fixture {
  TempDir dir{"ferry-pipeline"};
  std::unique_ptr<EventLog> log;
  std::unique_ptr<GroupCommitWriter> writer;
  MetricsRegistry metrics;

  Fixture() {
    EventLogOptions o;
    o.path = dir.path();
    o.sync = false;
    auto l = EventLog::Open(o);
    EXPECT_TRUE(l) << l.error().message;
    log = std::move(*l);
    for (const char* s : {"raw", "out", "dlq"}) EXPECT_TRUE(log->CreateStream(s));
    writer = std::make_unique<GroupCommitWriter>(*log);
    writer->Start();
  }
  ~Fixture() { writer->Stop(); }

  void Put(int i, const std::string& payload) {
    Event e;
    e.id = "e" + std::to_string(i);
    e.subject = "d" + std::to_string(i % 3);
    e.payload = payload;
    ASSERT_TRUE(log->Append("raw", e));
  }
  std::vector<StoredRecord> All(const std::string& stream) { return *log->Read(stream, Seq{1}, SIZE_MAX); }
};

PipelineConfig Hot(int batch) {
  PipelineConfig c;
  c.name = "hot";
  c.input = {"raw"};
  c.output = "out";
  c.dead_letter = "dlq";
  c.batch = batch;
  c.max_instructions = 100'000;
  c.max_memory = 4 << 20;
  PipelineStepConfig f;
  f.type = PipelineStepType::kFilter;
  f.where = "temp > 20";
  PipelineStepConfig set;
  set.type = PipelineStepType::kSet;
  set.field = "double";
  set.value = "temp * 2";
  c.steps = {f, set};
  return c;
}

std::unique_ptr<PipelineRunner> Runner(Fixture& fx, int batch) {
  auto p = Pipeline::Compile(Hot(batch));
  EXPECT_TRUE(p) << p.error().message;
  return std::make_unique<PipelineRunner>(*fx.log, *fx.writer, std::move(*p), fx.metrics);
}

// Steps until caught up; the bound is the work: one batch per `batch` records, plus the empty look.
void Drain(PipelineRunner& r, size_t records, size_t batch) {
  size_t steps = 0;
  for (;;) {
    auto s = r.Step();
    ASSERT_TRUE(s) << s.error().message;
    if (s->records == 0) break;
    ASSERT_LE(++steps, records / batch + 1);
  }
}

TEST(PipelineRunner, ProcessesDropsAndDeadLettersInOrder) {
  Fixture fx;
  for (int i = 0; i < 100; ++i)
    fx.Put(i, i % 10 == 9 ? "{\"nope\":1}" : "{\"temp\":" + std::to_string(i % 40) + "}");
  auto r = Runner(fx, 16);
  Drain(*r, 100, 16);
  auto out = fx.All("out");
  auto dlq = fx.All("dlq");
  size_t expect_out = 0;
  for (int i = 0; i < 100; ++i) expect_out += (i % 10 != 9 && i % 40 > 20);
  ASSERT_EQ(out.size(), expect_out);
  EXPECT_EQ(dlq.size(), 10u);
  EXPECT_EQ(out[0].event.id, "e21/hot");
  EXPECT_EQ(out[0].event.payload, "{\"temp\":21,\"double\":42}");
  EXPECT_EQ(out[0].event.subject, "d0");
  EXPECT_EQ(*fx.log->GetCursor("raw", PipelineCursorName("hot")), Seq{101});
  EXPECT_EQ(r->lag(), 0u);
  const std::string m = fx.metrics.Render();
  EXPECT_NE(m.find("ferry_pipeline_events_in_total{pipeline=\"hot\"} 100"), std::string::npos) << m;
  EXPECT_NE(m.find("ferry_pipeline_events_failed_total{pipeline=\"hot\",step=\"0:filter\"} 10"), std::string::npos)
      << m;
}

TEST(PipelineRunner, AFailedCommitMovesNothingAndTheRetryWritesOnce) {
  Fixture fx;
  for (int i = 0; i < 10; ++i) fx.Put(i, "{\"temp\":30}");
  auto cfg = Hot(4);
  cfg.output = "later";  // not created yet: the batch's first append fails, so its transaction is rolled back
  auto p = Pipeline::Compile(cfg);
  ASSERT_TRUE(p);
  PipelineRunner r(*fx.log, *fx.writer, std::move(*p), fx.metrics);
  auto s = r.Step();
  ASSERT_FALSE(s);
  EXPECT_EQ(fx.log->GetCursor("raw", PipelineCursorName("hot")).error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(fx.log->CreateStream("later"));
  Drain(r, 10, 4);
  auto later = fx.All("later");
  ASSERT_EQ(later.size(), 10u);
  for (size_t i = 0; i < later.size(); ++i) EXPECT_EQ(later[i].event.id, "e" + std::to_string(i) + "/hot");
}

TEST(PipelineRunner, ANewRunnerResumesAtTheCommittedCursor) {
  Fixture fx;
  for (int i = 0; i < 50; ++i) fx.Put(i, "{\"temp\":" + std::to_string(30 + i) + "}");
  {
    auto r = Runner(fx, 8);
    for (int k = 0; k < 3; ++k) ASSERT_TRUE(r->Step());  // 24 records, then "crash" (the runner goes away)
  }
  for (int i = 50; i < 60; ++i) fx.Put(i, "{\"temp\":" + std::to_string(30 + i) + "}");
  auto r = Runner(fx, 8);
  Drain(*r, 60, 8);
  auto out = fx.All("out");
  ASSERT_EQ(out.size(), 60u);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i].event.id, "e" + std::to_string(i) + "/hot") << i;
}

TEST(PipelineRunner, FerryctlPipelinesShowsCursorLagAndFailuresByStep) {
  Fixture fx;
  for (int i = 0; i < 30; ++i) fx.Put(i, i % 10 == 9 ? "not json" : "{\"temp\":30}");
  auto r = Runner(fx, 20);
  ASSERT_TRUE(r->Step());  // 20 of 30 records: 2 failed (input), 10 behind
  Config config;
  config.pipelines.push_back(Hot(20));
  std::ostringstream out, err;
  ASSERT_EQ(ctl::RunPipelines(*fx.log, config, {}, out, err), ctl::kExitOk) << err.str();
  EXPECT_NE(out.str().find("hot       raw    21      10   out     2 (input 2)"), std::string::npos) << out.str();
  std::ostringstream json;
  ctl::PipelinesOptions o;
  o.json = true;
  ASSERT_EQ(ctl::RunPipelines(*fx.log, config, o, json, err), ctl::kExitOk);
  EXPECT_EQ(json.str(),
            "{\"pipeline\":\"hot\",\"input\":\"raw\",\"cursor\":21,\"lag\":10,\"output\":\"out\",\"failed\":{\"input\":2}}\n");
}

TEST(PipelineRunner, ThreadWakesOnCommits) {
  Fixture fx;
  auto r = Runner(fx, 100);
  r->Start();
  for (int i = 0; i < 200; ++i) {
    Event e;
    e.id = "e" + std::to_string(i);
    e.payload = "{\"temp\":50}";
    fx.writer->Enqueue("raw", e);
  }
  // Bounded by the work: every commit announcement wakes the runner; 200 records need at most a few batches.
  uint64_t seen = fx.writer->commit_count();
  for (int rounds = 0; rounds < 1000 && fx.All("out").size() < 200; ++rounds)
    seen = fx.writer->WaitForCommitAfter(seen, std::chrono::steady_clock::now() + std::chrono::seconds(5));
  r->Stop();
  EXPECT_EQ(fx.All("out").size(), 200u);
}

}  // namespace
}  // namespace ferry::test
