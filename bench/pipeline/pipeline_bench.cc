// ferry_pipeline_bench [events]: a 3-step stateless pipeline (filter, units, set) over telemetry-shaped JSON.
//   process: Pipeline::Process alone (JSON -> Lua -> steps -> JSON), one thread.
//   runner:  PipelineRunner over a real log in a temp dir (sync off: the figure is the pipeline's, not the
//            disk's), input pre-filled, batches of 500 committed with their cursor through the group commit.
// Prints events/s, CPU microseconds per event (the whole process, getrusage) and peak RSS.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ferry/pipeline_runner.h"

using namespace ferry;

namespace {

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
long PeakRssKiB() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

PipelineConfig ThreeSteps() {
  PipelineConfig c;
  c.name = "bench";
  c.input = {"raw"};
  c.output = "out";
  c.dead_letter = "dlq";
  c.batch = 500;
  c.max_instructions = 1'000'000;
  c.max_memory = 8 << 20;
  PipelineStepConfig f;
  f.type = PipelineStepType::kFilter;
  f.where = "temp > -40";
  PipelineStepConfig u;
  u.type = PipelineStepType::kUnits;
  u.field = "temp";
  u.from = "C";
  u.to = "F";
  PipelineStepConfig s;
  s.type = PipelineStepType::kSet;
  s.field = "hot";
  s.value = "temp > 90";
  c.steps = {f, u, s};
  return c;
}

std::string Payload(int i) {
  return "{\"device\":\"dev-" + std::to_string(i % 100) + "\",\"seq\":" + std::to_string(i) +
         ",\"temp\":" + std::to_string(20 + i % 30) + ".5,\"rpm\":" + std::to_string(1000 + i % 500) +
         ",\"ok\":true}";
}

void Report(const char* mode, int n, double wall, double cpu) {
  std::printf("%-8s %8d events  %9.0f events/s  %6.2f us CPU/event  peak RSS %ld KiB\n", mode, n, n / wall,
              cpu * 1e6 / n, PeakRssKiB());
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 200'000;
  {
    auto p = Pipeline::Compile(ThreeSteps());
    if (!p) {
      std::fprintf(stderr, "%s\n", p.error().message.c_str());
      return 1;
    }
    std::vector<std::string> payloads;
    for (int i = 0; i < 1000; ++i) payloads.push_back(Payload(i));
    RecordView r{};
    r.id = "dev-1/1";
    size_t out = 0;
    const double c0 = CpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      r.seq = Seq{static_cast<uint64_t>(i + 1)};
      r.payload = payloads[static_cast<size_t>(i) % payloads.size()];
      out += (*p)->Process("raw", r).outputs.size();
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    Report("process", n, wall, CpuSeconds() - c0);
    if (out != static_cast<size_t>(n)) std::fprintf(stderr, "unexpected output count %zu\n", out);
  }
  {
    char tmpl[] = "/tmp/ferry-pipeline-bench.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return 1;
    EventLogOptions o;
    o.path = tmpl;
    o.sync = false;
    o.map_size = size_t{1} << 30;
    auto log = EventLog::Open(o);
    if (!log) return 1;
    for (const char* s : {"raw", "out", "dlq"}) (void)(*log)->CreateStream(s);
    (void)(*log)->Update([&](WriteTxn& txn) -> Status {
      for (int i = 0; i < n; ++i) {
        Event e;
        e.id = "dev/" + std::to_string(i);
        e.payload = Payload(i);
        if (auto s = txn.Append("raw", e); !s) return tl::make_unexpected(s.error());
      }
      return Ok();
    });
    GroupCommitWriter writer(**log);
    writer.Start();
    MetricsRegistry metrics;
    PipelineRunner runner(**log, writer, std::move(*Pipeline::Compile(ThreeSteps())), metrics);
    const double c0 = CpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
      auto s = runner.Step();
      if (!s || s->records == 0) break;
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    Report("runner", n, wall, CpuSeconds() - c0);
    writer.Stop();
    log->reset();
    std::string rm = std::string("rm -rf ") + tmpl;
    if (std::system(rm.c_str()) != 0) return 1;
  }
  return 0;
}
