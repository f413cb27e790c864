// Window and threshold steps in a Pipeline over a real log: the result events (payload, stable ids), alerts,
// late events to the side stream, the window state committed with the cursor (a new runner resumes with it and
// the output equals an uninterrupted run), idle keys closed by the log's clock when caught up, and config
// mistakes named by key. The clock is a ManualClock: nothing sleeps.
#include <gtest/gtest.h>

#include "ferry/ctl.h"
#include "ferry/pipeline_runner.h"

#include <sstream>

#include "../support/temp_dir.h"

namespace ferry::test {
namespace {

constexpr int64_t kS = 1'000'000'000;
constexpr int64_t kT0 = 1'800'000'000LL * kS;  // a minute boundary: 2027-01-15T08:00:00Z

struct Fixture {
  TempDir dir{"ferry-window"};
  ManualClock clock{TimeNs{kT0}};
  std::unique_ptr<EventLog> log;
  std::unique_ptr<GroupCommitWriter> writer;
  MetricsRegistry metrics;

  Fixture() {
    EventLogOptions o;
    o.path = dir.path();
    o.sync = false;
    o.clock = &clock;
    auto l = EventLog::Open(o);
    EXPECT_TRUE(l) << l.error().message;
    log = std::move(*l);
    for (const char* s : {"raw", "out", "alerts", "late", "dlq"}) EXPECT_TRUE(log->CreateStream(s));
    writer = std::make_unique<GroupCommitWriter>(*log);
    writer->Start();
  }
  ~Fixture() { writer->Stop(); }

  // An event of `device` at event time kT0 + t seconds; the ingest clock moves one second per event.
  void Put(int i, const std::string& device, int64_t t, const std::string& temp) {
    Event e;
    e.id = "e" + std::to_string(i);
    e.subject = device;
    e.time = TimeNs{kT0 + t * kS};
    e.payload = "{\"device\":\"" + device + "\",\"temp\":" + temp + "}";
    clock.Advance(std::chrono::seconds(1));
    ASSERT_TRUE(log->Append("raw", e));
  }
  std::vector<StoredRecord> All(const std::string& stream) { return *log->Read(stream, Seq{1}, SIZE_MAX); }
};

PipelineConfig Windowed(int batch) {
  PipelineConfig c;
  c.name = "avg";
  c.input = {"raw"};
  c.output = "out";
  c.dead_letter = "dlq";
  c.batch = batch;
  c.max_instructions = 100'000;
  c.max_memory = 4 << 20;
  PipelineStepConfig f;
  f.type = PipelineStepType::kFilter;
  f.where = "temp ~= nil";
  PipelineStepConfig w;
  w.type = PipelineStepType::kWindow;
  w.window = WindowType::kTumbling;
  w.key = "device";
  w.field = "temp";
  w.size = std::chrono::seconds(60);
  w.aggregates = {"avg", "max", "p95"};
  w.allowed_lateness = std::chrono::seconds(5);
  w.idle_timeout = std::chrono::minutes(5);
  w.late_output = "late";
  w.max_keys = 100;
  w.max_windows = 16;
  PipelineStepConfig th;
  th.type = PipelineStepType::kThreshold;
  th.name = "hot";
  th.where = "max > 80";
  th.output = "alerts";
  c.steps = {f, w, th};
  return c;
}

std::unique_ptr<PipelineRunner> Runner(Fixture& fx, int batch) {
  auto p = Pipeline::Compile(Windowed(batch));
  EXPECT_TRUE(p) << p.error().message;
  return std::make_unique<PipelineRunner>(*fx.log, *fx.writer, std::move(*p), fx.metrics);
}

void Drain(PipelineRunner& r) {
  for (int steps = 0; steps < 10'000; ++steps) {
    auto s = r.Step();
    ASSERT_TRUE(s) << s.error().message;
    if (s->records == 0) return;
  }
  FAIL() << "did not catch up";
}

TEST(PipelineWindow, ResultsAlertsAndLateEvents) {
  Fixture fx;
  fx.Put(0, "e1", 1, "20");
  fx.Put(1, "e1", 30, "40");
  fx.Put(2, "e2", 10, "90");   // e2 goes over 80: one alert, as soon as its window sees it
  fx.Put(3, "e2", 20, "95");   // the same window: no second alert
  fx.Put(4, "e1", 66, "1");    // e1's watermark 61 s: [0,60) closes
  fx.Put(5, "e1", 50, "5");    // behind it: late
  fx.Put(6, "e1", 70, "\"hot\"");  // not a number: dead letter
  auto r = Runner(fx, 3);
  Drain(*r);

  auto out = fx.All("out");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].event.id, "avg/e1/" + std::to_string(kT0));
  EXPECT_EQ(out[0].event.type, "ferry.window");
  EXPECT_EQ(out[0].event.subject, "e1");
  EXPECT_EQ(out[0].event.time.ns, kT0 + 60 * kS);
  const std::string& p = out[0].event.payload;
  const std::string head =
      "{\"key\":\"e1\",\"window_start\":\"2027-01-15T08:00:00Z\",\"window_end\":\"2027-01-15T08:01:00Z\","
      "\"count\":2,\"avg\":30,\"max\":40,\"p95\":";
  const std::string tail = ",\"final\":true,\"closed\":\"watermark\"}";
  ASSERT_EQ(p.substr(0, head.size()), head) << p;
  ASSERT_EQ(p.substr(p.size() - tail.size()), tail) << p;
  // p95 of {20, 40} is the value at rank floor(0.95 * 1) = 0, within the sketch's 1%.
  const double p95 = std::stod(p.substr(head.size()));
  EXPECT_NEAR(p95, 20, 0.2);
  auto alerts = fx.All("alerts");
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].event.type, "ferry.alert");
  EXPECT_EQ(alerts[0].event.subject, "e2");
  EXPECT_NE(alerts[0].event.payload.find("\"alert\":\"hot\""), std::string::npos);
  EXPECT_NE(alerts[0].event.payload.find("\"final\":false"), std::string::npos);
  auto late = fx.All("late");
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0].event.id, "e5/avg/late");
  EXPECT_EQ(late[0].event.payload, "{\"device\":\"e1\",\"temp\":5}");
  auto dlq = fx.All("dlq");
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(fx.metrics.Render().find("ferry_pipeline_window_late_total{pipeline=\"avg\"} 1") != std::string::npos, true)
      << fx.metrics.Render();
}

TEST(PipelineWindow, StateSurvivesANewRunnerAndOutputEqualsAnUninterruptedRun) {
  auto fill = [](Fixture& fx) {
    for (int i = 0; i < 600; ++i) {
      const int dev = i % 7;
      fx.Put(i, "d" + std::to_string(dev), i / 2 + (i * 37) % 11 - 5, std::to_string(50 + (i * 13) % 40));
    }
  };
  Fixture a, b;
  fill(a);
  fill(b);
  auto ra = Runner(a, 16);
  Drain(*ra);
  // b: a fresh runner (fresh Pipeline, state from the log) after every few batches.
  for (int round = 0; round < 200; ++round) {
    auto rb = Runner(b, 16);
    bool done = false;
    for (int k = 0; k < 3; ++k) {
      auto s = rb->Step();
      ASSERT_TRUE(s) << s.error().message;
      if (s->records == 0) done = true;
    }
    if (done) break;
  }
  for (const char* s : {"out", "alerts", "late", "dlq"}) {
    auto x = a.All(s), y = b.All(s);
    ASSERT_EQ(x.size(), y.size()) << s;
    for (size_t i = 0; i < x.size(); ++i) {
      EXPECT_EQ(x[i].event.id, y[i].event.id) << s << " #" << i;
      EXPECT_EQ(x[i].event.payload, y[i].event.payload) << s << " #" << i;
    }
  }
  EXPECT_GT(a.All("out").size(), 20u);
  EXPECT_GT(a.All("alerts").size(), 0u);
  // The state is in the log, one record per key.
  auto state = a.log->ListState(PipelineWindowStatePrefix("avg"));
  ASSERT_TRUE(state);
  EXPECT_EQ(state->size(), 7u);
}

TEST(PipelineWindow, IdleKeysCloseOnTheClockWhenCaughtUpAndOnlyOnce) {
  Fixture fx;
  fx.Put(0, "quiet", 1, "20");
  auto r = Runner(fx, 10);
  Drain(*r);
  EXPECT_TRUE(fx.All("out").empty());
  fx.clock.Advance(std::chrono::minutes(4));
  ASSERT_TRUE(r->Step());
  EXPECT_TRUE(fx.All("out").empty());
  fx.clock.Advance(std::chrono::minutes(1));
  auto s = r->Step();  // caught up: the tick closes the key's window
  ASSERT_TRUE(s);
  EXPECT_EQ(s->outputs, 1u);
  auto out = fx.All("out");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NE(out[0].event.payload.find("\"closed\":\"idle\""), std::string::npos);
  // A new runner loads the state: the window is closed, nothing is emitted again; a late event stays late.
  auto r2 = Runner(fx, 10);
  ASSERT_TRUE(r2->Step());
  fx.Put(1, "quiet", 2, "20");
  Drain(*r2);
  EXPECT_EQ(fx.All("out").size(), 1u);
  EXPECT_EQ(fx.All("late").size(), 1u);
}

TEST(PipelineWindow, ConfigMistakesNameTheKey) {
  auto bad = [](const std::string& step) {
    std::string c = "[storage]\npath = \"/tmp/x\"\n[[stream]]\nname = \"raw\"\n[[stream]]\nname = \"out\"\n[[stream]]\nname = \"al\"\n"
                     "[[route]]\nfilter = \"t/#\"\nstream = \"raw\"\n"
                     "[[pipeline]]\nname = \"p\"\ninput = [\"raw\"]\noutput = \"out\"\n" + step;
    auto r = LoadConfigString(c, "ferry.toml");
    return r ? std::string("ok") : r.error().message;
  };
  EXPECT_NE(bad("[[pipeline.step]]\ntype = \"window\"\nsize = \"1m\"\nfield = \"t\"\naggregates = [\"p101\"]\n")
                .find("pipeline[0].step[0].aggregates: \"p101\" is not an aggregate"), std::string::npos);
  EXPECT_NE(bad("[[pipeline.step]]\ntype = \"window\"\nwindow = \"hopping\"\nsize = \"1m\"\nhop = \"2m\"\n")
                .find("pipeline[0].step[0].hop: must be at most size"), std::string::npos);
  EXPECT_NE(bad("[[pipeline.step]]\ntype = \"window\"\nwindow = \"session\"\n").find("pipeline[0].step[0].gap"),
            std::string::npos);
  EXPECT_NE(bad("[[pipeline.step]]\ntype = \"window\"\nsize = \"1m\"\naggregates = [\"avg\"]\n")
                .find("pipeline[0].step[0].field"), std::string::npos);
  EXPECT_NE(bad("[[pipeline.step]]\ntype = \"threshold\"\nwhere = \"count > 1\"\noutput = \"al\"\n")
                .find("put it after a window step"), std::string::npos);
  EXPECT_NE(bad("[[pipeline.step]]\ntype = \"window\"\nsize = \"1m\"\n[[pipeline.step]]\ntype = \"filter\"\nwhere = \"x\"\n")
                .find("pipeline[0].step[1].type: only threshold steps may follow a window step"), std::string::npos);
  EXPECT_NE(bad("[[pipeline.step]]\ntype = \"window\"\nsize = \"1m\"\nlate_output = \"nope\"\n")
                .find("pipeline[0].step[0].late_output: stream \"nope\" is not declared"), std::string::npos);
  EXPECT_NE(bad("[[pipeline.step]]\ntype = \"window\"\nwindow = \"weekly\"\nsize = \"1m\"\n").find("pipeline[0].step[0].window"),
            std::string::npos);
  EXPECT_EQ(bad("[[pipeline.step]]\ntype = \"window\"\nwindow = \"sliding\"\nsize = \"1m\"\nkey = \"device\"\n"
                "field = \"t\"\naggregates = [\"p99.9\", \"min\"]\n[[pipeline.step]]\ntype = \"threshold\"\n"
                "where = \"count >= 5\"\noutput = \"al\"\n"),
            "ok");
}


TEST(PipelineWindow, ResetReprocessesWithTheSameIdsBesideARunningRunner) {
  Fixture fx;
  for (int i = 0; i < 200; ++i) fx.Put(i, "d" + std::to_string(i % 3), i, std::to_string(i % 90));
  auto r = Runner(fx, 16);
  Drain(*r);
  const auto first = fx.All("out");
  ASSERT_GT(first.size(), 5u);
  ASSERT_TRUE(fx.log->ListState(PipelineWindowStatePrefix("avg"))->size() > 0);

  Config config;
  config.pipelines.push_back(Windowed(16));
  std::ostringstream out, err;
  ctl::PipelineResetOptions o;
  o.pipeline = "avg";
  o.from = "1";
  ASSERT_EQ(ctl::RunPipelineReset(*fx.log, config, o, out, err), ctl::kExitOk) << err.str();
  EXPECT_NE(out.str().find("input raw: cursor 201 -> 1"), std::string::npos) << out.str();
  EXPECT_TRUE(fx.log->ListState(PipelineWindowStatePrefix("avg"))->empty());
  EXPECT_FALSE(fx.log->GetState(PipelineWindowMetaKey("avg")));

  // The running runner notices (it is caught up: the cursor it reads is not its own), reloads and reprocesses.
  ASSERT_TRUE(r->Step());
  Drain(*r);
  const auto all = fx.All("out");
  ASSERT_EQ(all.size(), 2 * first.size());
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(all[first.size() + i].event.id, first[i].event.id);
    EXPECT_EQ(all[first.size() + i].event.payload, first[i].event.payload);
  }

  // ferryctl pipelines shows the window state and the late events.
  std::ostringstream table, json;
  ASSERT_EQ(ctl::RunPipelines(*fx.log, config, {}, table, err), ctl::kExitOk) << err.str();
  EXPECT_NE(table.str().find("WINDOW STATE"), std::string::npos) << table.str();
  EXPECT_NE(table.str().find(" 3 keys, "), std::string::npos) << table.str();
  ctl::PipelinesOptions jo;
  jo.json = true;
  ASSERT_EQ(ctl::RunPipelines(*fx.log, config, jo, json, err), ctl::kExitOk);
  EXPECT_NE(json.str().find("\"window\":{\"keys\":3,\"state_bytes\":"), std::string::npos) << json.str();

  o.pipeline = "nope";
  EXPECT_EQ(ctl::RunPipelineReset(*fx.log, config, o, out, err), ctl::kExitRuntime);
  EXPECT_NE(err.str().find("no pipeline \"nope\""), std::string::npos);
  o.pipeline = "avg";
  o.from = "yesterday";
  EXPECT_EQ(ctl::RunPipelineReset(*fx.log, config, o, out, err), ctl::kExitUsage);
}

}  // namespace
}  // namespace ferry::test
