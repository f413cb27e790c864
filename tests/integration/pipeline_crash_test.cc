// A pipeline in a real ferryd, killed with SIGKILL again and again mid-stream: its output streams must equal
// those of an uninterrupted run record for record (same ids, payloads, attributes, order; no gap, no repeat).
//
// The input is written into the log before ferryd starts (the test's own EventLog, closed again), so what the
// pipeline sees is deterministic. Progress is watched through read-only opens of the log; every wait is a
// poll with a deadline derived from the work, never a fixed sleep.
#include <gtest/gtest.h>

#include <cstdlib>

#include <random>

#include "ferry/event_log.h"
#include "ferry/pipeline_runner.h"
#include "harness.h"

namespace ferry::test {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> FerrydCommand(std::initializer_list<std::string> args) {
  return ToolCommand(FERRY_FERRYD_PATH, "FERRY_TEST_FERRYD", args);
}

constexpr int kEvents = 20'000;
const char* const kOutputs[] = {"clean", "alerts", "dlq"};

// Every step kind the crash could land in; dead letters too (every 17th record has a string temperature).
std::string Config(const std::string& dir, int port) {
  std::string c;
  c += "[gateway]\nid = \"gw-pipe\"\n";
  c += "[storage]\npath = \"" + dir + "/log\"\nmap_size = \"256MiB\"\n";
  c += "[ingest]\nmode = \"listen\"\nlisten.address = \"127.0.0.1:" + std::to_string(port) + "\"\n";
  c += "[metrics]\nenabled = false\n";
  for (const char* s : {"raw", "clean", "alerts", "dlq"}) c += "[[stream]]\nname = \"" + std::string(s) + "\"\n";
  c += "[[route]]\nfilter = \"t/{device}\"\nstream = \"raw\"\n";
  c += R"(
[[pipeline]]
name = "p"
input = ["raw"]
output = "clean"
dead_letter = "dlq"
batch = 64

[[pipeline.step]]
type = "schema_upgrade"
[[pipeline.step.upgrade]]
version = 1
rename = ["t=temp"]
defaults = ["unit = 'F'"]

[[pipeline.step]]
type = "units"
field = "temp"
from = "C"
to = "F"

[[pipeline.step]]
type = "filter"
where = "v % 7 ~= 0"

[[pipeline.step]]
type = "route"
by = "temp > 200 and 'alerts' or nil"
outputs = ["alerts"]

[[pipeline.step]]
type = "script"
script = '''
function process(e)
  if e.v % 13 == 0 then return {e, {v = e.v, copy = true}} end
  return e
end
'''
)";
  return c;
}

// Fills dir/log with the input (as ingest would have stored it).
void WriteInput(const std::string& dir) {
  EventLogOptions o;
  o.path = dir + "/log";
  o.map_size = size_t{256} << 20;
  auto log = EventLog::Open(o);
  ASSERT_TRUE(log) << log.error().ToString();
  ASSERT_TRUE((*log)->CreateStream("raw"));
  Status st = (*log)->Update([&](WriteTxn& txn) -> Status {
    for (int i = 0; i < kEvents; ++i) {
      Event e;
      e.id = "dev" + std::to_string(i % 5) + "/" + std::to_string(i);
      e.subject = "dev" + std::to_string(i % 5);
      e.type = "telemetry";
      const std::string temp = i % 17 == 0 ? "\"hot\"" : std::to_string(i % 120);
      // Old firmware (no schema_version, field t) and new firmware (v2, field temp) interleaved.
      e.payload = i % 2 == 0 ? "{\"v\":" + std::to_string(i) + ",\"t\":" + temp + "}"
                             : "{\"schema_version\":2,\"v\":" + std::to_string(i) + ",\"temp\":" + temp +
                                   ",\"unit\":\"C\"}";
      if (auto seq = txn.Append("raw", e); !seq) return tl::make_unexpected(seq.error());
    }
    return Ok();
  });
  ASSERT_TRUE(st) << st.error().ToString();
}

struct Snapshot {
  Seq cursor{};
  std::map<std::string, std::vector<StoredRecord>> streams;
};

// A short read-only look at the log ferryd writes.
Result<Snapshot> Look(const std::string& dir, bool records) {
  EventLogOptions o;
  o.path = dir + "/log";
  o.read_only = true;
  auto log = EventLog::Open(o);
  if (!log) return tl::make_unexpected(log.error());
  Snapshot s;
  auto c = (*log)->GetCursor("raw", PipelineCursorName("p"));
  s.cursor = c ? *c : Seq{1};
  for (const char* name : kOutputs) {
    auto r = records ? (*log)->Read(name, Seq{1}, SIZE_MAX) : Result<std::vector<StoredRecord>>{};
    if (!r) return tl::make_unexpected(r.error());
    s.streams[name] = std::move(*r);
  }
  return s;
}

bool Done(const std::string& dir) {
  auto s = Look(dir, false);
  return s && s->cursor.value == kEvents + 1;
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

void Start(ChildProcess& p, const std::string& dir) {
  WriteFile(dir + "/ferry.toml", Config(dir, FreePort()));
  ASSERT_TRUE(p.Start(FerrydCommand({"-c", dir + "/ferry.toml"}), dir + "/ferryd.log"));
}

TEST(PipelineCrash, KillNineMidStreamEqualsUninterruptedRun) {
  TempDir ref_dir("ferry-pipe-ref");
  TempDir crash_dir("ferry-pipe-crash");
  WriteInput(ref_dir.path());
  WriteInput(crash_dir.path());
  // Deadline from the work: 20,000 records in batches of 64 is ~313 commits; even at 10 ms an fsync that is
  // a few seconds. 120 s covers a loaded CI machine many times over.
  const auto deadline = 120s;

  // The reference: one uninterrupted run to the end.
  {
    ChildProcess ferryd;
    Start(ferryd, ref_dir.path());
    ASSERT_TRUE(poll_until([&] { return Done(ref_dir.path()) || !ferryd.running(); }, deadline)) << ferryd.log();
    ASSERT_TRUE(ferryd.running()) << ferryd.log();
    ferryd.Terminate();
  }

  // The crash run: SIGKILL whenever the cursor has passed the next random point, then start again.
  std::mt19937 rng(12);
  int kills = 0;
  uint64_t last_cursor = 1;
  for (int round = 0; round < 60 && !Done(crash_dir.path()); ++round) {
    ChildProcess ferryd;
    Start(ferryd, crash_dir.path());
    if (round % 5 == 4) {
      // Now and then a kill during start-up, before or while the first batch commits.
      poll_until([&] { return !ferryd.running(); }, std::chrono::milliseconds(rng() % 20));
    } else {
      const uint64_t target = last_cursor + 1 + rng() % 1500;
      poll_until(
          [&] {
            auto s = Look(crash_dir.path(), false);
            return !ferryd.running() || (s && s->cursor.value >= std::min<uint64_t>(target, kEvents + 1));
          },
          deadline);
    }
    ASSERT_TRUE(ferryd.running()) << ferryd.log();
    ferryd.Kill9();
    ++kills;
    if (auto s = Look(crash_dir.path(), false)) last_cursor = s->cursor.value;
  }
  {
    ChildProcess ferryd;
    Start(ferryd, crash_dir.path());
    ASSERT_TRUE(poll_until([&] { return Done(crash_dir.path()) || !ferryd.running(); }, deadline)) << ferryd.log();
    ferryd.Terminate();
  }
  EXPECT_GE(kills, 10);

  auto ref = Look(ref_dir.path(), true);
  auto got = Look(crash_dir.path(), true);
  ASSERT_TRUE(ref && got);
  size_t total = 0;
  for (const char* name : kOutputs) {
    const auto& a = ref->streams[name];
    const auto& b = got->streams[name];
    ASSERT_EQ(a.size(), b.size()) << name;
    total += a.size();
    std::set<std::string> ids;
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].seq, b[i].seq) << name << " #" << i;
      ASSERT_EQ(a[i].event.id, b[i].event.id) << name << " #" << i;
      ASSERT_EQ(a[i].event.payload, b[i].event.payload) << name << " #" << i;
      ASSERT_EQ(a[i].event.subject, b[i].event.subject) << name << " #" << i;
      ASSERT_EQ(a[i].event.headers, b[i].event.headers) << name << " #" << i;
      ASSERT_TRUE(ids.insert(b[i].event.id).second) << name << ": id " << b[i].event.id << " written twice";
    }
  }
  // The shape is what the steps say: every 17th a dead letter, every 7th (of the rest) dropped.
  size_t dead = 0;
  for (int i = 0; i < kEvents; ++i) dead += i % 17 == 0;
  EXPECT_EQ(got->streams["dlq"].size(), dead);
  EXPECT_GT(got->streams["alerts"].size(), 0u);
  EXPECT_GT(total, static_cast<size_t>(kEvents) / 2);
  std::printf("pipeline crash: %d kills, %zu output records equal to the uninterrupted run\n", kills, total);
}


// ---- Windows: the window state is committed with the cursor and the results --------------------------------
//
// Four windowed pipelines (tumbling with early results and a threshold alert, hopping, sliding, session) read
// the same input. Event times come with jitter, late events, a device a day ahead; ingest times (the log's
// clock, written by the test) move 100 ms per record and one device falls silent half way, so idle timeouts
// close windows at deterministic points of the input. Ingest times lie in the future of the wall clock, so the
// runner's own clock never closes anything: the output is a function of the input alone.

// Kills of the windowed crash test: 50 in CI; tests/soak/pipeline_kill_soak.sh asks for 1,000
// (FERRY_PIPELINE_KILLS), and the input grows with them (12,000 events per 50 kills), so that every kill still
// lands inside the work (each restart commits at least one batch before a kill can land).
int WinKillsWanted() {
  const char* env = std::getenv("FERRY_PIPELINE_KILLS");
  return env != nullptr && std::atoi(env) > 0 ? std::atoi(env) : 50;
}
const int kWinEvents = 12'000 * std::max(1, WinKillsWanted() / 50);
const char* const kWinPipelines[] = {"tum", "hop", "sli", "ses"};
const char* const kWinOutputs[] = {"w_tum", "w_hop", "w_sli", "w_ses", "alerts", "late"};

std::string WindowConfig(const std::string& dir, int port) {
  std::string c;
  c += "[gateway]\nid = \"gw-win\"\n";
  c += "[storage]\npath = \"" + dir + "/log\"\nmap_size = \"256MiB\"\n";
  c += "[ingest]\nmode = \"listen\"\nlisten.address = \"127.0.0.1:" + std::to_string(port) + "\"\n";
  c += "[metrics]\nenabled = false\n";
  c += "[[stream]]\nname = \"raw\"\n";
  for (const char* s : kWinOutputs) c += "[[stream]]\nname = \"" + std::string(s) + "\"\n";
  c += "[[route]]\nfilter = \"t/{device}\"\nstream = \"raw\"\n";
  auto pipeline = [&](const char* name, const std::string& window) {
    c += "[[pipeline]]\nname = \"" + std::string(name) + "\"\ninput = [\"raw\"]\noutput = \"w_" + name +
         "\"\nbatch = 50\n";
    c += "[[pipeline.step]]\ntype = \"window\"\nkey = \"device\"\nfield = \"temp\"\n"
         "aggregates = [\"sum\", \"min\", \"max\", \"avg\", \"first\", \"last\", \"p50\", \"p95\"]\n"
         "allowed_lateness = \"2s\"\nidle_timeout = \"20s\"\nmax_windows = 8\n" + window;
  };
  pipeline("tum", "window = \"tumbling\"\nsize = \"10s\"\nearly_every = 4\nlate_output = \"late\"\n"
                  "[[pipeline.step]]\ntype = \"threshold\"\nname = \"hot\"\nwhere = \"max > 95\"\noutput = \"alerts\"\n");
  pipeline("hop", "window = \"hopping\"\nsize = \"30s\"\nhop = \"10s\"\n");
  pipeline("sli", "window = \"sliding\"\nsize = \"5s\"\n");
  pipeline("ses", "window = \"session\"\ngap = \"3s\"\n");
  return c;
}

void WriteWindowInput(const std::string& dir) {
  // Ingest times a day ahead of the wall clock (see above), 100 ms apart.
  ManualClock clock(TimeNs{SystemClock::Instance().Now().ns + 86'400LL * 1'000'000'000});
  EventLogOptions o;
  o.path = dir + "/log";
  o.map_size = size_t{256} << 20;
  o.clock = &clock;
  auto log = EventLog::Open(o);
  ASSERT_TRUE(log) << log.error().ToString();
  ASSERT_TRUE((*log)->CreateStream("raw"));
  const int64_t t0 = 1'800'000'000LL * 1'000'000'000;
  std::mt19937 rng(99);
  Status st = (*log)->Update([&](WriteTxn& txn) -> Status {
    for (int i = 0; i < kWinEvents; ++i) {
      clock.Advance(std::chrono::milliseconds(100));
      int dev = static_cast<int>(rng() % 12);
      if (dev == 7 && i > kWinEvents / 2) dev = 6;  // d7 falls silent: its windows close on idle_timeout
      int64_t t = t0 + int64_t{i} * 100'000'000 - static_cast<int64_t>(rng() % 1500) * 1'000'000;
      if (i % 97 == 0) t -= 20'000'000'000;            // 20 s late: behind every watermark
      if (dev == 11) t += 86'400LL * 1'000'000'000;    // a device clock a day ahead
      Event e;
      e.id = "d" + std::to_string(dev) + "/" + std::to_string(i);
      e.subject = "d" + std::to_string(dev);
      e.type = "telemetry";
      e.time = TimeNs{t};
      e.payload = "{\"device\":\"d" + std::to_string(dev) + "\",\"temp\":" + std::to_string(20 + rng() % 80) + "}";
      if (auto seq = txn.Append("raw", e); !seq) return tl::make_unexpected(seq.error());
    }
    return Ok();
  });
  ASSERT_TRUE(st) << st.error().ToString();
}

struct WinSnapshot {
  uint64_t min_cursor = 0;
  std::map<std::string, std::vector<StoredRecord>> streams;
};

Result<WinSnapshot> LookWin(const std::string& dir, bool records) {
  EventLogOptions o;
  o.path = dir + "/log";
  o.read_only = true;
  auto log = EventLog::Open(o);
  if (!log) return tl::make_unexpected(log.error());
  WinSnapshot s;
  s.min_cursor = UINT64_MAX;
  for (const char* p : kWinPipelines) {
    auto c = (*log)->GetCursor("raw", PipelineCursorName(p));
    s.min_cursor = std::min<uint64_t>(s.min_cursor, c ? c->value : 1);
  }
  if (records) {
    for (const char* name : kWinOutputs) {
      auto r = (*log)->Read(name, Seq{1}, SIZE_MAX);
      if (!r) return tl::make_unexpected(r.error());
      s.streams[name] = std::move(*r);
    }
  }
  return s;
}

bool WinDone(const std::string& dir) {
  auto s = LookWin(dir, false);
  return s && s->min_cursor == static_cast<uint64_t>(kWinEvents) + 1;
}

void StartWin(ChildProcess& p, const std::string& dir) {
  WriteFile(dir + "/ferry.toml", WindowConfig(dir, FreePort()));
  ASSERT_TRUE(p.Start(FerrydCommand({"-c", dir + "/ferry.toml"}), dir + "/ferryd.log"));
}

TEST(PipelineCrash, KillNineWindowedEqualsUninterruptedRun) {
  TempDir ref_dir("ferry-win-ref");
  TempDir crash_dir("ferry-win-crash");
  WriteWindowInput(ref_dir.path());
  WriteWindowInput(crash_dir.path());
  // 12,000 records x 4 pipelines in batches of 50: ~1,000 commits. 120 s covers a loaded machine many times
  // (the soak's larger input: proportionally more).
  const auto deadline = 120s * std::max(1, WinKillsWanted() / 50);
  {
    ChildProcess ferryd;
    StartWin(ferryd, ref_dir.path());
    ASSERT_TRUE(poll_until([&] { return WinDone(ref_dir.path()) || !ferryd.running(); }, deadline)) << ferryd.log();
    ASSERT_TRUE(ferryd.running()) << ferryd.log();
    ferryd.Terminate();
  }
  const int wanted = WinKillsWanted();
  std::mt19937 rng(2026);
  int kills = 0;
  uint64_t last = 1;
  for (int round = 0; kills < wanted && round < wanted * 8 / 5 && !WinDone(crash_dir.path()); ++round) {
    ChildProcess ferryd;
    StartWin(ferryd, crash_dir.path());
    if (round % 5 == 4) {
      poll_until([&] { return !ferryd.running(); }, std::chrono::milliseconds(rng() % 20));
    } else {
      // Small steps: every kill must land before the input is through.
      const uint64_t target = last + 1 + rng() % 300;
      poll_until(
          [&] {
            auto s = LookWin(crash_dir.path(), false);
            return !ferryd.running() || (s && s->min_cursor >= std::min<uint64_t>(target, kWinEvents + 1));
          },
          deadline);
    }
    ASSERT_TRUE(ferryd.running()) << ferryd.log();
    ferryd.Kill9();
    ++kills;
    if (auto s = LookWin(crash_dir.path(), false)) last = s->min_cursor;
  }
  {
    ChildProcess ferryd;
    StartWin(ferryd, crash_dir.path());
    ASSERT_TRUE(poll_until([&] { return WinDone(crash_dir.path()) || !ferryd.running(); }, deadline)) << ferryd.log();
    ferryd.Terminate();
  }
  EXPECT_GE(kills, wanted);

  auto ref = LookWin(ref_dir.path(), true);
  auto got = LookWin(crash_dir.path(), true);
  ASSERT_TRUE(ref && got);
  size_t total = 0;
  for (const char* name : kWinOutputs) {
    const auto& a = ref->streams[name];
    const auto& b = got->streams[name];
    ASSERT_EQ(a.size(), b.size()) << name;
    total += a.size();
    std::set<std::string> ids;
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].seq, b[i].seq) << name << " #" << i;
      ASSERT_EQ(a[i].event.id, b[i].event.id) << name << " #" << i;
      ASSERT_EQ(a[i].event.payload, b[i].event.payload) << name << " #" << i;
      ASSERT_EQ(a[i].event.time, b[i].event.time) << name << " #" << i;
      ASSERT_EQ(a[i].event.headers, b[i].event.headers) << name << " #" << i;
      ASSERT_TRUE(ids.insert(b[i].event.id).second) << name << ": id " << b[i].event.id << " written twice";
    }
  }
  // The input does what it was built to: late events, alerts, idle and bound closes all happened.
  EXPECT_GT(got->streams["late"].size(), 50u);
  EXPECT_GT(got->streams["alerts"].size(), 10u);
  auto closed = [&](const char* stream, const char* reason) {
    size_t n = 0;
    for (const auto& r : got->streams[stream])
      n += r.event.payload.find(std::string("\"closed\":\"") + reason + "\"") != std::string::npos;
    return n;
  };
  EXPECT_GT(closed("w_tum", "idle"), 0u);
  EXPECT_GT(closed("w_tum", "watermark"), 100u);
  EXPECT_GT(closed("w_ses", "watermark"), 100u);
  std::printf("windowed pipeline crash: %d kills, %zu output records equal to the uninterrupted run\n", kills, total);
}

}  // namespace
}  // namespace ferry::test
