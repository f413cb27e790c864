// ferry_pipeline_bench [events] [window|stateless]: pipelines over telemetry-shaped JSON.
//   win-proc: a 1-minute tumbling average per device, 10,000 devices (keys), Pipeline::Process alone; the state's
//             size is reported as the operator's estimate and as the RSS it added.
//   win-run:  the same through PipelineRunner and the log: every batch also writes the changed keys' state.
//   process:  a 3-step stateless pipeline (filter, units, set), Pipeline::Process alone, one thread.
//   runner:   the stateless pipeline through PipelineRunner over a real log in a temp dir (sync off: the figure
//             is the pipeline's, not the disk's), input pre-filled, batches of 500 committed with their cursor.
// Prints events/s, CPU microseconds per event (the whole process, getrusage) and peak RSS. The windowed modes
// run first, so their peak RSS is not the log's mapped pages.
#include <sys/resource.h>
#include <malloc.h>
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

constexpr int kKeys = 10'000;

PipelineConfig Windowed() {
  PipelineConfig c;
  c.name = "win";
  c.input = {"raw"};
  c.output = "out";
  c.dead_letter = "dlq";
  c.batch = 500;
  c.max_instructions = 1'000'000;
  c.max_memory = 8 << 20;
  PipelineStepConfig w;
  w.type = PipelineStepType::kWindow;
  w.window = WindowType::kTumbling;
  w.key = "device";
  w.field = "temp";
  w.size = std::chrono::minutes(1);
  w.aggregates = {"avg"};
  w.allowed_lateness = std::chrono::seconds(5);
  w.max_keys = 20'000;
  w.max_windows = 4;
  c.steps = {w};
  return c;
}

// Device i % 10,000; event time 600 us apart, so each device sends every 6 s: 10 events per window.
constexpr int64_t kWinT0 = 1'800'000'000LL * 1'000'000'000;
int64_t EventTime(int i) { return kWinT0 + int64_t{i} * 600'000; }
std::string WinPayload(int i) {
  return "{\"device\":\"dev-" + std::to_string(i % kKeys) + "\",\"seq\":" + std::to_string(i) +
         ",\"temp\":" + std::to_string(20 + i % 30) + ".5,\"ok\":true}";
}

long RssKiB() {
  long pages = 0, rss = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    std::fclose(f);
  }
  return rss * (sysconf(_SC_PAGESIZE) / 1024);
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

int WindowModes(int n) {
  {
    auto p = Pipeline::Compile(Windowed());
    if (!p) {
      std::fprintf(stderr, "%s\n", p.error().message.c_str());
      return 1;
    }
    std::vector<std::string> payloads;
    for (int i = 0; i < n; ++i) payloads.push_back(WinPayload(i));
    std::vector<std::string> ids;
    malloc_trim(0);  // RSS counts live memory, not what the allocator keeps
    const long rss0 = RssKiB();
    RecordView r{};
    size_t out = 0;
    const double c0 = CpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      r.seq = Seq{static_cast<uint64_t>(i + 1)};
      r.ingest_time = TimeNs{kWinT0 + int64_t{i} * 600'000};
      r.time = TimeNs{EventTime(i)};
      r.payload = payloads[static_cast<size_t>(i)];
      out += (*p)->Process("raw", r).outputs.size();
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    Report("win-proc", n, wall, CpuSeconds() - c0);
    WindowOperator& w = *(*p)->window();
    (void)w.TakeDirty();  // the runner takes the changed keys with every batch
    malloc_trim(0);
    const long rss1 = RssKiB();
    const size_t keys = w.keys(), open = w.open_windows(), estimate = w.memory();
    w.Clear();  // what the state itself held: the RSS it gives back
    malloc_trim(0);
    std::printf("         %zu keys, %zu open windows, %zu results; state %ld KiB RSS (estimate %zu KiB); RSS +%ld "
                "KiB over the run\n",
                keys, open, out, rss1 - RssKiB(), estimate / 1024, rss1 - rss0);
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
        e.time = TimeNs{EventTime(i)};
        e.payload = WinPayload(i);
        if (auto s = txn.Append("raw", e); !s) return tl::make_unexpected(s.error());
      }
      return Ok();
    });
    GroupCommitWriter writer(**log);
    writer.Start();
    MetricsRegistry metrics;
    PipelineRunner runner(**log, writer, std::move(*Pipeline::Compile(Windowed())), metrics);
    const double c0 = CpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
      auto s = runner.Step();
      if (!s) std::fprintf(stderr, "%s\n", s.error().ToString().c_str());
      if (!s || s->records == 0) break;
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    Report("win-run", n, wall, CpuSeconds() - c0);
    auto out = (*log)->GetStreamStats("out");
    std::printf("         %llu results in the log\n", out ? static_cast<unsigned long long>(out->count) : 0ULL);
    writer.Stop();
    log->reset();
    std::string rm = std::string("rm -rf ") + tmpl;
    if (std::system(rm.c_str()) != 0) return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 200'000;
  const std::string only = argc > 2 ? argv[2] : "";
  if (only != "stateless") {
    if (int rc = WindowModes(n); rc != 0) return rc;
  }
  if (only == "window") return 0;
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
