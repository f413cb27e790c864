// storage_bench: throughput, fsync calls and disk bytes per event of the event log.
//
//   ferry_storage_bench --mode=batched|single|steady [--events=N] [--payload=200] [--producers=4] [--dir=D]
//
// batched  producers enqueue through the GroupCommitWriter (fsync on); durable events/s = events / time
//          until the writer has committed the last one.
// single   one write transaction (one commit, one fsync pair) per event: the baseline.
// steady   a stream with byte retention already at its steady state; reports disk bytes written per event
//          (/proc/self/io write_bytes) while the LogMaintainer deletes as fast as ingest appends.
// Output: "key value" lines, read by run.sh. fsync counts come from libferry_fsync_shim.so when preloaded.
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "ferry/event_log.h"
#include "ferry/group_commit.h"
#include "ferry/log_maintainer.h"

namespace {

using Clock = std::chrono::steady_clock;
using ferry::Event;

struct Args {
  std::string mode = "batched";
  std::string dir;
  long events = 0;
  size_t payload = 200;
  int producers = 4;
  size_t map_mb = 1024;
  long batch = 10000;     // steady: events per commit
  long maint_every = 1;   // steady: commits between maintenance steps
};

long Flag(const char* arg, const char* name, std::string* out) {
  const size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) == 0 && arg[n] == '=') {
    *out = arg + n + 1;
    return 1;
  }
  return 0;
}

unsigned long long FsyncCalls() {
  using Fn = unsigned long long (*)(unsigned long long*);
  static Fn fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "ferry_fsync_shim_counts"));
  return fn != nullptr ? fn(nullptr) : 0;
}
bool ShimLoaded() { return dlsym(RTLD_DEFAULT, "ferry_fsync_shim_counts") != nullptr; }

// /proc/self/io: write_bytes = bytes of page cache this process dirtied (what reaches the device; on kernels
// with large folios a 4 KiB write into a large cached folio counts the whole folio); wchar = bytes passed to
// write syscalls (what LMDB itself writes).
unsigned long long ProcIo(const char* field) {
  std::ifstream io("/proc/self/io");
  std::string key;
  unsigned long long v = 0;
  while (io >> key >> v) {
    if (key == field) return v;
  }
  return 0;
}
unsigned long long WriteBytes() { return ProcIo("write_bytes:"); }
unsigned long long WriteChars() { return ProcIo("wchar:"); }

Event MakeEvent(size_t payload, long n) {
  Event e;
  e.id = "gw1/telemetry/" + std::to_string(n);
  e.source = "urn:dev:42";
  e.type = "t.v1";
  e.payload.assign(payload, static_cast<char>('a' + n % 26));
  return e;
}

std::unique_ptr<ferry::EventLog> Open(const Args& a, const ferry::StreamOptions& so) {
  ferry::EventLogOptions o;
  o.path = a.dir;
  o.map_size = a.map_mb << 20;
  auto log = ferry::EventLog::Open(o);
  if (!log) {
    std::fprintf(stderr, "open: %s\n", log.error().ToString().c_str());
    std::exit(1);
  }
  if (auto st = (*log)->CreateStream("telemetry", so); !st) {
    std::fprintf(stderr, "create: %s\n", st.error().ToString().c_str());
    std::exit(1);
  }
  return std::move(*log);
}

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

int Batched(const Args& a) {
  auto log = Open(a, {});
  const long n = a.events > 0 ? a.events : 1'000'000;
  ferry::GroupCommitWriter writer(*log);
  writer.Start();
  const unsigned long long f0 = FsyncCalls();
  const unsigned long long w0 = WriteBytes();
  const auto t0 = Clock::now();
  std::vector<std::thread> producers;
  for (int p = 0; p < a.producers; ++p) {
    producers.emplace_back([&, p] {
      for (long i = p; i < n; i += a.producers) writer.Enqueue("telemetry", MakeEvent(a.payload, i));
    });
  }
  for (auto& t : producers) t.join();
  writer.Stop();  // returns once the last event is committed (durable)
  const auto t1 = Clock::now();
  const auto stats = writer.stats();
  if (stats.failed != 0 || stats.events != static_cast<uint64_t>(n)) {
    std::fprintf(stderr, "batched: %llu failed\n", static_cast<unsigned long long>(stats.failed));
    return 1;
  }
  const double s = Seconds(t0, t1);
  std::printf("events %ld\nseconds %.3f\nevents_per_sec %.0f\ncommits %llu\nevents_per_commit %.1f\n", n, s,
              n / s, static_cast<unsigned long long>(stats.commits),
              static_cast<double>(n) / static_cast<double>(stats.commits));
  std::printf("write_bytes_per_event %.1f\n", static_cast<double>(WriteBytes() - w0) / n);
  if (ShimLoaded()) std::printf("fsync_per_event %.6f\n", static_cast<double>(FsyncCalls() - f0) / n);
  return 0;
}

int Single(const Args& a) {
  auto log = Open(a, {});
  const long n = a.events > 0 ? a.events : 5'000;
  const unsigned long long f0 = FsyncCalls();
  const auto t0 = Clock::now();
  for (long i = 0; i < n; ++i) {
    if (auto r = log->Append("telemetry", MakeEvent(a.payload, i)); !r) {
      std::fprintf(stderr, "append: %s\n", r.error().ToString().c_str());
      return 1;
    }
  }
  const double s = Seconds(t0, Clock::now());
  std::printf("events %ld\nseconds %.3f\nevents_per_sec %.0f\n", n, s, n / s);
  if (ShimLoaded()) std::printf("fsync_per_event %.6f\n", static_cast<double>(FsyncCalls() - f0) / n);
  return 0;
}

int Steady(const Args& a) {
  ferry::StreamOptions so;
  so.max_bytes = uint64_t{64} << 20;
  auto log = Open(a, so);
  const long n = a.events > 0 ? a.events : 600'000;
  const long kBatch = a.batch;
  ferry::GroupCommitWriter writer(*log);
  ferry::LogMaintainer maint(*log);
  long seq = 0;
  unsigned long long maint_bytes = 0;
  auto run = [&](long count) {
    for (long done = 0; done < count; done += kBatch) {
      for (long i = 0; i < kBatch; ++i) writer.Enqueue("telemetry", MakeEvent(a.payload, seq++));
      while (writer.Step() > 0) {
      }
      if ((done / kBatch) % a.maint_every == 0) {  // LogMaintainer between commits, as its thread does in ferryd
        const unsigned long long m0 = WriteBytes();
        (void)maint.Step();
        maint_bytes += WriteBytes() - m0;
      }
    }
  };
  // Warm up: write the retention window twice over so that deletes and page reuse are in full swing.
  run(2 * static_cast<long>((so.max_bytes / (a.payload + 150))));
  const auto pages0 = log->GetEnvStats()->file_pages;
  const unsigned long long w0 = WriteBytes();
  const unsigned long long c0 = WriteChars();
  const unsigned long long f0 = FsyncCalls();
  const auto t0 = Clock::now();
  maint_bytes = 0;
  run(n);
  const double s = Seconds(t0, Clock::now());
  const unsigned long long bytes = WriteBytes() - w0;
  const unsigned long long chars = WriteChars() - c0;
  const auto env = log->GetEnvStats();
  const auto st = log->GetStreamStats("telemetry");
  std::printf("events %ld\nseconds %.3f\nevents_per_sec %.0f\n", n, s, n / s);
  std::printf("write_bytes_per_event %.1f\nwrite_bytes_per_payload_byte %.3f\n", static_cast<double>(bytes) / n,
              static_cast<double>(bytes) / (static_cast<double>(n) * static_cast<double>(a.payload)));
  std::printf("wchar_per_event %.1f\nwchar_per_payload_byte %.3f\n", static_cast<double>(chars) / n,
              static_cast<double>(chars) / (static_cast<double>(n) * static_cast<double>(a.payload)));
  std::printf("maintenance_write_bytes_per_event %.1f\n", static_cast<double>(maint_bytes) / n);
  std::printf("file_pages_start %zu\nfile_pages_end %zu\nstream_bytes %llu\nretention_deleted %llu\n", pages0,
              env->file_pages, static_cast<unsigned long long>(st->bytes),
              static_cast<unsigned long long>(st->evicted[static_cast<int>(ferry::EvictReason::kRetentionBytes)]));
  if (ShimLoaded()) std::printf("fsync_per_event %.6f\n", static_cast<double>(FsyncCalls() - f0) / n);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string v;
    if (Flag(argv[i], "--mode", &v)) {
      a.mode = v;
    } else if (Flag(argv[i], "--dir", &v)) {
      a.dir = v;
    } else if (Flag(argv[i], "--events", &v)) {
      a.events = std::atol(v.c_str());
    } else if (Flag(argv[i], "--payload", &v)) {
      a.payload = static_cast<size_t>(std::atol(v.c_str()));
    } else if (Flag(argv[i], "--producers", &v)) {
      a.producers = std::atoi(v.c_str());
    } else if (Flag(argv[i], "--batch", &v)) {
      a.batch = std::max(1L, std::atol(v.c_str()));
    } else if (Flag(argv[i], "--maint-every", &v)) {
      a.maint_every = std::max(1L, std::atol(v.c_str()));
    } else if (Flag(argv[i], "--map-mb", &v)) {
      a.map_mb = static_cast<size_t>(std::atol(v.c_str()));
    } else {
      std::fprintf(stderr, "usage: %s --mode=batched|single|steady [--events=N] [--payload=B] [--producers=P] "
                   "[--dir=D] [--map-mb=M] [--batch=N] [--maint-every=K]\n", argv[0]);
      return 2;
    }
  }
  if (a.dir.empty()) {
    char tmpl[] = "/tmp/ferry-bench-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return 1;
    a.dir = std::string(tmpl) + "/log";
  }
  if (a.mode == "batched") return Batched(a);
  if (a.mode == "single") return Single(a);
  if (a.mode == "steady") return Steady(a);
  std::fprintf(stderr, "unknown mode %s\n", a.mode.c_str());
  return 2;
}
