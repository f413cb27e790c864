// ferry_compare: one system under test (SUT) through the comparison scenario of bench/README.md, on loopback.
//
//   ferry_compare --system ferry|ferry-listen|bridge|bridge-durable --shim-ms 15 --backlog 20000 --out DIR
//
// Scenario (the same for every system, the same ferry-sim load):
//   1. central Mosquitto (persistence on, so the receiver's session survives the outage) + the receiver.
//   2. SUT up: (ferry) local Mosquitto + ferryd, batched uplink; (ferry-listen) ferryd alone, the devices
//      publish to its ingest listener (PUBACK after the commit), batched uplink; (bridge) Mosquitto bridging to
//      central, persistence on, default autosave; (bridge-durable) the same with autosave_on_changes, interval 1.
//   3. live phase: --live events at --live-rate, central up; waits until the receiver has all of them.
//   4. outage: central stopped (SIGTERM). Half the backlog published at full speed; kill -9 of the SUT as soon
//      as the simulator has its last PUBACK; SUT restarted; the other half published (its ingest time is the
//      "durable events/s" figure).
//   5. central restarted; drain until the receiver has every id, or no new id arrives for --stall seconds.
// --publisher blast puts mqtt_blast (raw MQTT 5, a few us of CPU per event) in ferry-sim's place for every phase:
// 16 devices = 16 connections, each with min(--sim-max-inflight or 512, the server's Receive Maximum) in flight.
// The SUT runs with LD_PRELOAD=libferry_fsync_shim.so (FERRY_FSYNC_DELAY_MS=--shim-ms), its RSS and backlog are
// sampled every --sample-ms into DIR/NAME.csv, and the figures go to DIR/NAME.json (NAME = system-shimMS).
#include <sys/resource.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <dirent.h>
#include <iostream>

#include "../../tests/integration/harness.h"

using namespace std::chrono_literals;
using ferry::test::ChildProcess;
using ferry::test::HttpGet;
using ferry::test::MetricValue;
using ferry::test::MosquittoBroker;
using ferry::test::poll_until;
using ferry::test::TempDir;

namespace {

using Clock = std::chrono::steady_clock;
double Now() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

struct Args {
  std::string system = "ferry";
  int shim_ms = 0;
  uint64_t backlog = 20000;
  uint64_t live = 5000;
  double live_rate = 2000;
  double cap_s = 0;  // per outage half: the simulator stops producing after this many seconds (0: no cap)
  double stall_s = 8;
  double first_timeout_s = 30;  // drain: longest wait for the first drained id
  double drain_timeout_s = 300;
  int sample_ms = 200;
  std::string durability = "batch";
  std::string out = ".";
  std::string ferryd = FERRY_FERRYD_PATH;
  std::string sim = FERRY_SIM_PATH;
  std::string blast = FERRY_BLAST_PATH;
  std::string publisher = "sim";  // sim (ferry-sim, Paho C) or blast (mqtt_blast)
  std::string shim = FERRY_SHIM_PATH;
  std::string mosquitto = "/usr/sbin/mosquitto";
  int devices = 16;
  // ferry-listen tuning (empty / 0: ferryd's and ferry-sim's defaults).
  std::string commit_max_events, commit_max_bytes, commit_max_delay;
  int receive_maximum = 0;     // ingest.listen.receive_maximum
  int sim_connections = 0;     // ferry-sim --connections
  int sim_max_inflight = 0;    // ferry-sim --max-inflight
};

// ---- /proc readers ----------------------------------------------------------------------------------------
struct ProcFigures {
  double cpu_s = 0;         // utime + stime
  uint64_t write_bytes = 0;  // /proc/PID/io write_bytes - cancelled_write_bytes
  uint64_t wchar = 0;
  long rss_kb = 0, hwm_kb = 0, anon_kb = 0;
};
ProcFigures ReadProc(pid_t pid) {
  ProcFigures f;
  if (pid <= 0) return f;
  {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto p = s.rfind(')');
    if (p != std::string::npos) {
      std::istringstream fields(s.substr(p + 2));
      std::string tok;
      unsigned long long ut = 0, st = 0;
      for (int i = 3; fields >> tok; ++i) {  // field 3 is the state
        if (i == 14) ut = std::stoull(tok);
        if (i == 15) {
          st = std::stoull(tok);
          break;
        }
      }
      f.cpu_s = static_cast<double>(ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
    }
  }
  {
    std::ifstream in("/proc/" + std::to_string(pid) + "/io");
    std::string k;
    uint64_t v, wb = 0, cw = 0;
    while (in >> k >> v) {
      if (k == "write_bytes:") wb = v;
      if (k == "cancelled_write_bytes:") cw = v;
      if (k == "wchar:") f.wchar = v;
    }
    f.write_bytes = wb > cw ? wb - cw : 0;
  }
  {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("VmRSS:", 0) == 0) f.rss_kb = std::stol(line.substr(6));
      if (line.rfind("VmHWM:", 0) == 0) f.hwm_kb = std::stol(line.substr(6));
      if (line.rfind("RssAnon:", 0) == 0) f.anon_kb = std::stol(line.substr(8));
    }
  }
  return f;
}

std::string RunCapture(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

// TCP counters of the SUT's sockets to central (`ss -tinpH dst 127.0.0.1:PORT`, sockets owned by pid).
struct TcpFigures {
  uint64_t bytes_sent = 0, bytes_acked = 0, bytes_received = 0, segs_out = 0, segs_in = 0;
  int sockets = 0;
  uint64_t wire() const { return bytes_sent + bytes_received + 52 * (segs_out + segs_in); }
};
TcpFigures ReadTcp(pid_t pid, int central_port, const std::string& keep = "") {
  TcpFigures t;
  std::string out = RunCapture("ss -tinpH dst 127.0.0.1:" + std::to_string(central_port) + " 2>/dev/null");
  if (!keep.empty()) ferry::test::WriteFile(keep, out);
  std::istringstream in(out);
  std::string line;
  bool mine = false;
  std::string needle = "pid=" + std::to_string(pid) + ",";
  std::string self = "pid=" + std::to_string(::getpid()) + ",";
  auto num = [](const std::string& l, const std::string& key) -> uint64_t {
    auto p = l.find(" " + key + ":");
    if (p == std::string::npos) return 0;
    return std::strtoull(l.c_str() + p + key.size() + 2, nullptr, 10);
  };
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line[0] != ' ' && line[0] != '\t') {
      // Children inherit the receiver's socket (Paho does not set FD_CLOEXEC): skip sockets this process holds.
      mine = line.find(needle) != std::string::npos && line.find(self) == std::string::npos;
      if (mine) ++t.sockets;
      // ss may print the info on the same line with -H: fall through and parse it too.
    }
    if (!mine) continue;
    std::string l = " " + line;
    t.bytes_sent += num(l, "bytes_sent");
    t.bytes_acked += num(l, "bytes_acked");
    t.bytes_received += num(l, "bytes_received");
    t.segs_out += num(l, "segs_out");
    t.segs_in += num(l, "segs_in");
  }
  return t;
}

// fsync-family counts of every process started with FERRY_FSYNC_LIVE_DIR=dir (all incarnations of the SUT).
uint64_t ReadFsyncs(const std::string& dir) {
  uint64_t total = 0;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return 0;
  while (dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, "fsync.", 6) != 0) continue;
    std::ifstream in(dir + "/" + e->d_name, std::ios::binary);
    uint64_t c[5] = {};
    in.read(reinterpret_cast<char*>(c), sizeof c);
    for (uint64_t v : c) total += v;
  }
  ::closedir(d);
  return total;
}

// ---- the central receiver: counts distinct event ids ------------------------------------------------------
// ferry::CentralReceiver (ferry/receiver.h) reading Ferry's batches and the bridges' relayed device JSON, with the
// times of new ids the drain figures need. Ids are kept as hashes: a full run has a million of them.
class Receiver : public ferry::CentralReceiver {
 public:
  Receiver() : ferry::CentralReceiver(Options(this)) {}
  bool Connect(const std::string& uri) { return ferry::CentralReceiver::Connect(uri, "#").has_value(); }
  double last_new_t() const { return last_new_t_.load(); }
  // Time of the first new id after Mark().
  void Mark() { first_after_mark_t_ = 0; }
  double first_after_mark_t() const { return first_after_mark_t_.load(); }

 private:
  static ferry::CentralReceiverOptions Options(Receiver* self) {
    ferry::CentralReceiverOptions o;
    o.client_id = "bench-central-receiver";
    o.kinds.device_json = true;
    o.hash_ids = true;
    o.connect_timeout = std::chrono::seconds(3);
    o.on_new_id = [self](std::string_view) {
      double t = Now();
      self->last_new_t_ = t;
      if (self->first_after_mark_t_.load() == 0) self->first_after_mark_t_ = t;
    };
    return o;
  }

  std::atomic<double> last_new_t_{0}, first_after_mark_t_{0};
};

// ---- the simulator ----------------------------------------------------------------------------------------
struct SimResult {
  int status = -1;
  uint64_t produced = 0, acked = 0, unacked = 0;
  double wall_s = 0;
  double cpu_s = 0;  // the simulator's utime+stime (last look before it exited: up to 10 ms short)
};
uint64_t Field(const std::string& s, const std::string& key) {
  auto p = s.rfind(" " + key + "=");
  if (p == std::string::npos) p = s.rfind(key + "=");
  if (p == std::string::npos) return 0;
  return std::strtoull(s.c_str() + s.find('=', p) + 1, nullptr, 10);
}
std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// ---- the run ----------------------------------------------------------------------------------------------
struct Sample {
  double t;
  std::string phase;
  long rss_kb;
  long anon_kb;
  long long backlog;  // ferry: ferry_uplink_backlog_events; bridges: events the SUT acknowledged this outage
  double cpu_s;
  uint64_t received;
};

class Bench {
 public:
  explicit Bench(Args a) : a_(std::move(a)), dir_("ferry-compare") {}

  int Run();

 private:
  // Both Ferry systems: ferryd is the SUT (metrics, stored_total, commit counters).
  bool is_ferry() const { return a_.system == "ferry" || a_.system == "ferry-listen"; }
  // ferry-listen: no local broker; the simulator connects to ferryd's ingest listener.
  bool is_listen() const { return a_.system == "ferry-listen"; }
  int sim_port() const { return is_listen() ? listen_port_ : local_->port(); }
  std::string name() const { return a_.system + "-" + std::to_string(a_.shim_ms) + "ms"; }
  std::string path(const std::string& n) const { return dir_.path() + "/" + n; }

  void Log(const std::string& s) {
    std::fprintf(stderr, "[%s %6.1fs] %s\n", name().c_str(), Now() - t0_, s.c_str());
  }

  // The shim env for SUT processes: set around fork/exec.
  void ShimEnv(bool on) {
    if (on) {
      ::setenv("LD_PRELOAD", a_.shim.c_str(), 1);
      ::setenv("FERRY_FSYNC_DELAY_MS", std::to_string(a_.shim_ms).c_str(), 1);
      ::setenv("FERRY_FSYNC_LIVE_DIR", path("fsync").c_str(), 1);
    } else {
      ::unsetenv("LD_PRELOAD");
      ::unsetenv("FERRY_FSYNC_DELAY_MS");
      ::unsetenv("FERRY_FSYNC_LIVE_DIR");
    }
  }

  std::string FerryConfig() const {
    std::string c;
    c += "[gateway]\nid = \"gw-bench\"\n";
    c += "[storage]\npath = \"" + path("ferry-log") + "\"\nmap_size = \"4GiB\"\n";
    if (!a_.commit_max_events.empty()) c += "commit.max_events = " + a_.commit_max_events + "\n";
    if (!a_.commit_max_bytes.empty()) c += "commit.max_bytes = \"" + a_.commit_max_bytes + "\"\n";
    if (!a_.commit_max_delay.empty()) c += "commit.max_delay = \"" + a_.commit_max_delay + "\"\n";
    if (is_listen()) {
      c += "[ingest]\nmode = \"listen\"\nlisten.address = \"127.0.0.1:" + std::to_string(listen_port_) +
           "\"\ndurability = \"" + a_.durability + "\"\nmax_payload = \"4KiB\"\n";
      if (a_.receive_maximum > 0) c += "listen.receive_maximum = " + std::to_string(a_.receive_maximum) + "\n";
    } else {
      c += "[ingest]\naddress = \"" + local_->uri() + "\"\nclient_id = \"ferryd-bench\"\ndurability = \"" +
           a_.durability + "\"\nmax_payload = \"4KiB\"\nbackoff.min = \"50ms\"\n" +
           "backoff.max = \"500ms\"\n";
    }
    c += "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port_) + "\"\n";
    c += "[log]\nlevel = \"warn\"\n";
    c += "[[stream]]\nname = \"telemetry\"\nmax_age = \"0\"\n";
    c += "[[route]]\nfilter = \"telemetry/{device}/#\"\nstream = \"telemetry\"\nsubject = \"{device}\"\n"
         "content_type = \"application/json\"\nid_json_field = \"id\"\n";
    c += "[[uplink]]\nname = \"central\"\naddress = \"" + central_->uri() +
         "\"\nmode = \"batched\"\ntopic = \"ferry/{gateway}/{stream}\"\n"
         "backoff.min = \"200ms\"\nbackoff.max = \"1s\"\n";
    return c;
  }
  std::string BridgeConfig() const {
    std::string c = "persistence true\npersistence_location " + path("bridge-db") + "/\nmax_queued_messages 0\n";
    if (a_.system == "bridge-durable") c += "autosave_on_changes true\nautosave_interval 1\n";
    c += "connection central\naddress 127.0.0.1:" + std::to_string(central_->port()) +
         "\ntopic telemetry/# out 1\ncleansession false\nrestart_timeout 1\n";
    return c;
  }

  pid_t sut_pid() const { return is_ferry() ? ferryd_.pid() : local_->pid(); }

  bool StartSut() {
    ShimEnv(true);
    bool ok;
    if (is_ferry()) {
      ferry::test::WriteFile(path("ferry.toml"), FerryConfig());
      ok = ferryd_.Start({a_.ferryd, "-c", path("ferry.toml")}, path("ferryd.log"));
    } else {
      ok = local_->start();
    }
    ShimEnv(false);
    if (!ok) return false;
    sut_pid_ = sut_pid();
    if (is_ferry()) {
      return poll_until([this] { return Metric("ferry_ingest_link_up") == 1 || !ferryd_.running(); }, 30s) &&
             ferryd_.running();
    }
    return true;
  }
  double Metric(const std::string& sample) { return MetricValue(HttpGet(metrics_port_, "/metrics"), sample); }
  double Stored() { return Metric("ferry_stream_stored_total{stream=\"telemetry\"}"); }

  // Accumulates the SUT's /proc figures of finished incarnations.
  void Bank(const ProcFigures& f) {
    banked_cpu_ += f.cpu_s;
    banked_write_ += f.write_bytes;
    banked_wchar_ += f.wchar;
  }
  // ferryd's group commit counters (per incarnation: banked before the kill like the /proc figures).
  struct CommitFigures {
    double commits = 0, events = 0;
  };
  CommitFigures Commits() {
    if (!is_ferry()) return {};
    std::string m = HttpGet(metrics_port_, "/metrics");
    return {std::max(0.0, MetricValue(m, "ferry_storage_commits_total")),
            std::max(0.0, MetricValue(m, "ferry_storage_commit_events"))};
  }

  void Sampler() {
    while (!stop_sampling_) {
      pid_t pid = sut_pid_.load();
      ProcFigures f = ReadProc(pid);
      long long backlog = -1;
      if (is_ferry()) {
        double v = Metric("ferry_uplink_backlog_events{uplink=\"central\",stream=\"telemetry\"}");
        backlog = static_cast<long long>(v);
      } else {
        // Queued at the bridge: what it acknowledged since central went down (nothing leaves during the outage).
        const std::string ph = phase_.load();
        backlog = ph == "outage" || ph == "restart"
                      ? static_cast<long long>(outage_acked_base_.load() + SimProgressAcked())
                      : (ph == "live" ? 0 : -1);
      }
      {
        std::lock_guard<std::mutex> lock(samples_mu_);
        if (f.rss_kb > 0)
          samples_.push_back({Now() - t0_, phase_.load(), f.rss_kb, f.anon_kb, backlog, banked_cpu_ + f.cpu_s, rx_.unique()});
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(a_.sample_ms));
    }
  }
  uint64_t SimProgressAcked() {
    std::string s = ReadAll(sim_log_);
    auto p = s.rfind(" acked=");
    if (p == std::string::npos) return 0;
    return std::strtoull(s.c_str() + p + 7, nullptr, 10);
  }

  // Runs the simulator to completion; `durable_target` > 0 (ferry): also waits for stored_total to reach it
  // and reports the time that took.
  SimResult RunSim(const std::string& tag, uint64_t count, double rate, double cap_s, double* durable_s,
                   double stored_base) {
    ChildProcess sim;
    sim_log_ = path("sim-" + tag + ".log");
    std::vector<std::string> argv = a_.publisher == "blast" ? BlastArgv(tag, count, rate, cap_s) : SimArgv(tag, count, rate, cap_s);
    id_logs_.push_back(path("ids-" + tag));
    SimResult r;
    double t_start = Now();
    if (!sim.Start(argv, sim_log_)) return r;
    double t_done = 0;
    bool sim_done = false;
    uint64_t target = 0;
    for (;;) {
      if (!sim_done) {
        double cpu = ReadProc(sim.pid()).cpu_s;
        if (cpu > 0) r.cpu_s = cpu;
      }
      if (!sim_done && !sim.running()) {
        sim_done = true;
        r.wall_s = Now() - t_start;
        std::string s = ReadAll(sim_log_);
        // ferry-sim's last line, or mqtt_blast's (it gives the same three fields).
        auto p = s.rfind(" unacked=");
        if (p != std::string::npos) {
          auto b = s.rfind('\n', p);
          b = b == std::string::npos ? 0 : b + 1;
          std::string line = s.substr(b, s.find('\n', p) - b);
          r.produced = Field(line, "produced");
          r.acked = Field(line, "acked");
          r.unacked = Field(line, "unacked");
        }
        r.status = sim.Wait(1s);
        target = static_cast<uint64_t>(std::max(0.0, stored_base)) + r.produced;
        if (durable_s == nullptr || !is_ferry()) break;
      }
      if (sim_done && durable_s != nullptr && is_ferry()) {
        if (Stored() >= static_cast<double>(target)) {
          t_done = Now();
          break;
        }
        if (Now() - t_start > r.wall_s + 120) {
          Log("ferryd did not store every event within 120 s of the simulator's end");
          t_done = Now();
          break;
        }
      }
      if (Now() - t_start > 900) {
        Log("simulator timeout");
        sim.Kill9();
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    if (durable_s != nullptr) *durable_s = is_ferry() ? t_done - t_start : r.wall_s;
    // Kept beside the figures: its per-second progress lines show how ingest went (the temp dir is removed).
    ferry::test::WriteFile(a_.out + "/" + name() + ".sim-" + tag + ".log", ReadAll(sim_log_));
    return r;
  }

  std::vector<std::string> BlastArgv(const std::string& tag, uint64_t count, double rate, double cap_s) {
    // One connection a device; ids blast-TAG-SEED-CONN-SEQ are unique over the run's phases.
    std::vector<std::string> argv = {
        a_.blast,       "--port",      std::to_string(sim_port()),
        "--count",      std::to_string(count),
        "--rate",       std::to_string(rate),
        "--connections", std::to_string(a_.devices),
        "--window",     std::to_string(a_.sim_max_inflight > 0 ? a_.sim_max_inflight : 512),
        "--run",        tag + "-" + std::to_string(seed_++),
        "--id-log",     path("ids-" + tag),
        "--payload-size", "200", "--progress"};
    if (cap_s > 0) {
      argv.push_back("--duration");
      argv.push_back(std::to_string(cap_s));
    }
    return argv;
  }

  std::vector<std::string> SimArgv(const std::string& tag, uint64_t count, double rate, double cap_s) {
    std::vector<std::string> argv = {a_.sim,          "--port",         std::to_string(sim_port()),
                                     "--count",       std::to_string(count), "--rate", std::to_string(rate),
                                     "--devices",     std::to_string(a_.devices), "--seed", std::to_string(seed_++),
                                     "--state-dir",   path("sim-state"), "--id-log", path("ids-" + tag),
                                     "--payload-size", "200",           "--drain-timeout", "120"};
    if (cap_s > 0) {
      argv.push_back("--duration");
      argv.push_back(std::to_string(cap_s));
    }
    if (a_.sim_connections > 0) {
      argv.push_back("--connections");
      argv.push_back(std::to_string(a_.sim_connections));
    }
    if (a_.sim_max_inflight > 0) {
      argv.push_back("--max-inflight");
      argv.push_back(std::to_string(a_.sim_max_inflight));
    }
    return argv;
  }

  Args a_;
  TempDir dir_;
  double t0_ = Now();
  int metrics_port_ = ferry::test::free_tcp_port();
  int listen_port_ = ferry::test::free_tcp_port();
  std::unique_ptr<MosquittoBroker> central_, local_;
  ChildProcess ferryd_;
  Receiver rx_;
  std::atomic<pid_t> sut_pid_{-1};
  std::atomic<bool> stop_sampling_{false};
  std::mutex samples_mu_;
  std::vector<Sample> samples_;
  std::atomic<const char*> phase_{"start"};  // string literals only: read by the sampler thread
  std::string sim_log_;
  std::atomic<uint64_t> outage_acked_base_{0};
  double banked_cpu_ = 0;
  uint64_t banked_write_ = 0, banked_wchar_ = 0;
  int seed_ = 1;
  std::vector<std::string> id_logs_;
};

int Bench::Run() {
  if (!dir_.ok()) return 2;
  ::mkdir(path("fsync").c_str(), 0755);
  ::mkdir(path("bridge-db").c_str(), 0755);
  ::mkdir(path("central-db").c_str(), 0755);
  MosquittoBroker::Options co;
  co.binary = a_.mosquitto;
  // Started as root, Mosquitto drops to user "mosquitto" and then cannot write its database in our 0700
  // temp dir: persistence would silently fail ("Error saving in-memory database ... Permission denied").
  const std::string user = ::geteuid() == 0 ? "user root\n" : "";
  co.extra_config = user + "persistence true\npersistence_location " + path("central-db") +
                    "/\nmax_queued_messages 0\nmax_inflight_messages 0\n";
  central_ = std::make_unique<MosquittoBroker>(co);
  if (!central_->start()) {
    Log("central did not start: " + central_->log());
    return 2;
  }
  if (!rx_.Connect(central_->uri())) {
    Log("receiver did not connect");
    return 2;
  }
  if (!is_listen()) {
    MosquittoBroker::Options lo;
    lo.binary = a_.mosquitto;
    lo.extra_config = user + (is_ferry() ? "max_queued_messages 0\n" : BridgeConfig());
    local_ = std::make_unique<MosquittoBroker>(lo);
    if (is_ferry() && !local_->start()) return 2;
  }
  if (!StartSut()) {
    Log("SUT did not start: " + (is_ferry() ? ferryd_.log() : local_->log()));
    return 2;
  }
  // Up once the SUT has its uplink socket to central.
  if (!poll_until([this] { return ReadTcp(sut_pid_, central_->port()).sockets > 0; }, 15s, 50ms)) {
    Log("SUT has no connection to central");
    return 2;
  }
  std::thread sampler([this] { Sampler(); });
  struct Joiner {
    std::thread& t;
    std::atomic<bool>& stop;
    ~Joiner() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } joiner{sampler, stop_sampling_};

  // ---- live ----
  phase_ = "live";
  Log("live: " + std::to_string(a_.live) + " events at " + std::to_string(static_cast<int>(a_.live_rate)) + "/s");
  SimResult live = RunSim("live", a_.live, a_.live_rate, 0, nullptr, 0);
  bool live_ok = poll_until([&] { return rx_.unique() >= live.produced; }, 60s, 20ms);
  double live_latency_tail = Now();
  TcpFigures tcp_live = ReadTcp(sut_pid_, central_->port(), a_.out + "/" + name() + ".ss-live.txt");
  Log("live done: produced " + std::to_string(live.produced) + ", received " + std::to_string(rx_.unique()) +
      (live_ok ? "" : " (INCOMPLETE)"));
  (void)live_latency_tail;

  // ---- outage ----
  phase_ = "outage";
  central_->stop();
  rx_.Disconnect();
  double stored0 = is_ferry() ? Stored() : 0;
  uint64_t half1 = a_.backlog / 2, half2 = a_.backlog - half1;
  Log("outage part 1: " + std::to_string(half1) + " events, full speed");
  double part1_s = 0;
  SimResult p1 = RunSim("outage1", half1, 0, a_.cap_s, &part1_s, stored0);
  // kill -9 as soon as the simulator has its last PUBACK: the backlog is still building at the SUT.
  ProcFigures before_kill = ReadProc(sut_pid_);
  CommitFigures commits_at_kill = Commits();
  double stored_at_kill = is_ferry() ? Stored() : -1;
  Log("kill -9 of the SUT (pid " + std::to_string(sut_pid_) + ")");
  if (is_ferry()) {
    ferryd_.Kill9();
  } else {
    local_->kill9();
  }
  Bank(before_kill);
  phase_ = "restart";
  if (!StartSut()) {
    Log("SUT did not restart");
    return 2;
  }
  outage_acked_base_ = p1.acked;
  phase_ = "outage";
  // Part 2 starts on a quiet SUT: ferryd first takes what the local broker queued for it while it was down.
  double stored_after_restart = -1;
  if (is_ferry()) {
    double last = -2, since = Now();
    while (Now() - since < 0.5 && Now() - t0_ < 3600) {
      double v = std::max(0.0, Stored());
      if (v != last) {
        last = v;
        since = Now();
      }
      std::this_thread::sleep_for(50ms);
    }
    stored_after_restart = last;
  }
  Log("outage part 2: " + std::to_string(half2) + " events, full speed");
  // Part 2 alone (one incarnation, ingest only: central is down): CPU, syncs and commits per event.
  ProcFigures p2_before = ReadProc(sut_pid_);
  CommitFigures p2_commits_before = Commits();
  uint64_t p2_fsyncs_before = ReadFsyncs(path("fsync"));
  double part2_s = 0;
  SimResult p2 = RunSim("outage2", half2, 0, a_.cap_s, &part2_s, stored_after_restart);
  ProcFigures p2_after = ReadProc(sut_pid_);
  CommitFigures p2_commits_after = Commits();
  uint64_t p2_fsyncs = ReadFsyncs(path("fsync")) - p2_fsyncs_before;
  double p2_cpu = p2_after.cpu_s - p2_before.cpu_s;
  double p2_commits = p2_commits_after.commits - p2_commits_before.commits;
  double p2_commit_events = p2_commits_after.events - p2_commits_before.events;
  uint64_t p2_write = p2_after.write_bytes - std::min(p2_after.write_bytes, p2_before.write_bytes);
  {
    char b[256];
    std::snprintf(b, sizeof b,
                  "part 2: %.0f events/s, %.1f us CPU/event (simulator %.1f), %.1f events/commit, %.2f syncs/commit",
                  part2_s > 0 ? static_cast<double>(p2.produced) / part2_s : 0.0,
                  p2.produced ? p2_cpu / static_cast<double>(p2.produced) * 1e6 : 0.0,
                  p2.produced ? p2.cpu_s / static_cast<double>(p2.produced) * 1e6 : 0.0,
                  p2_commits > 0 ? p2_commit_events / p2_commits : 0.0,
                  p2_commits > 0 ? static_cast<double>(p2_fsyncs) / p2_commits : 0.0);
    Log(b);
  }
  outage_acked_base_ = p1.acked + p2.acked;
  sim_log_.clear();

  // ---- drain ----
  phase_ = "drain";
  uint64_t expected = live.produced + p1.produced + p2.produced;
  uint64_t before_drain = rx_.unique();
  double t_up = Now();
  if (!central_->start()) {
    Log("central did not restart");
    return 2;
  }
  rx_.Mark();
  if (!poll_until([&] { return rx_.Connect(central_->uri()); }, 10s, 100ms)) Log("receiver did not reconnect");
  Log("drain: central up, expecting " + std::to_string(expected - before_drain) + " more events");
  for (;;) {
    if (rx_.unique() >= expected) break;
    // The stall clock starts at the first drained id: reconnect backoffs differ between systems.
    if (rx_.first_after_mark_t() > 0 && Now() - rx_.last_new_t() > a_.stall_s) break;
    if (rx_.first_after_mark_t() == 0 && Now() - t_up > a_.first_timeout_s) break;
    if (Now() - t_up > a_.drain_timeout_s) break;
    std::this_thread::sleep_for(20ms);
  }
  double t_last = rx_.last_new_t();
  double t_first = rx_.first_after_mark_t();
  uint64_t drained = rx_.unique() - before_drain;
  TcpFigures tcp_drain = ReadTcp(sut_pid_, central_->port(), a_.out + "/" + name() + ".ss-drain.txt");
  ProcFigures end = ReadProc(sut_pid_);
  Bank(end);
  CommitFigures commits_end = Commits();
  double commits = commits_at_kill.commits + commits_end.commits;
  double commit_events = commits_at_kill.events + commits_end.events;
  ProcFigures local_end = is_ferry() && local_ ? ReadProc(local_->pid()) : ProcFigures{};
  uint64_t fsyncs = ReadFsyncs(path("fsync"));
  phase_ = "end";
  stop_sampling_ = true;
  sampler.join();

  // Lost: ids the simulator produced (every one acknowledged when it reports unacked=0) never received.
  uint64_t lost = 0, lost_part1 = 0;
  for (const auto& f : id_logs_) {
    for (const auto& id : ferry::test::ReadLines(f)) {
      if (!rx_.Has(id)) {
        ++lost;
        if (f.find("outage1") != std::string::npos) ++lost_part1;
      }
    }
  }
  Log("drained " + std::to_string(drained) + ", lost " + std::to_string(lost));

  // Shut the SUT down gracefully (its exit line lands in the shim's count file, unused here).
  if (is_ferry()) {
    ferryd_.Terminate(10s);
    ferry::test::WriteFile(a_.out + "/" + name() + ".ferryd.log", ReadAll(path("ferryd.log")));
  }
  if (local_) local_->stop();
  central_->stop();

  // ---- figures ----
  std::vector<Sample> s;
  {
    std::lock_guard<std::mutex> lock(samples_mu_);
    s = samples_;
  }
  std::vector<long> live_rss, live_anon;
  long peak = 0, peak_anon = 0;
  for (const auto& x : s) {
    peak = std::max(peak, x.rss_kb);
    peak_anon = std::max(peak_anon, x.anon_kb);
    if (x.phase == "live") {
      live_rss.push_back(x.rss_kb);
      live_anon.push_back(x.anon_kb);
    }
  }
  auto median = [](std::vector<long> v) -> long {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  long steady = median(live_rss), steady_anon = median(live_anon);
  // RSS slope while the backlog builds: least squares of RSS over backlog, outage samples before the kill.
  double sx = 0, sy = 0, sxx = 0, sxy = 0, sya = 0, sxya = 0;
  int n = 0;
  double t_kill = 0;
  for (const auto& x : s)
    if (x.phase == "restart") {
      t_kill = x.t;
      break;
    }
  long long max_backlog = 0;
  for (const auto& x : s) {
    max_backlog = std::max(max_backlog, x.backlog);
    if (x.phase != "outage" || (t_kill > 0 && x.t >= t_kill) || x.backlog < 0) continue;
    sx += static_cast<double>(x.backlog);
    sy += static_cast<double>(x.rss_kb);
    sxx += static_cast<double>(x.backlog) * static_cast<double>(x.backlog);
    sxy += static_cast<double>(x.backlog) * static_cast<double>(x.rss_kb);
    sya += static_cast<double>(x.anon_kb);
    sxya += static_cast<double>(x.backlog) * static_cast<double>(x.anon_kb);
    ++n;
  }
  double slope = 0, slope_anon = 0;
  if (n >= 2 && n * sxx - sx * sx > 0) {
    slope = (n * sxy - sx * sy) / (n * sxx - sx * sx) * 1000.0;
    slope_anon = (n * sxya - sx * sya) / (n * sxx - sx * sx) * 1000.0;
  }
  // The last outage sample of part 2 and the first: RSS growth with the backlog after the restart as well.
  uint64_t ingested = live.produced + p1.produced + p2.produced;
  double ingest_eps = part2_s > 0 ? static_cast<double>(p2.produced) / part2_s : 0;
  double part1_eps = part1_s > 0 ? static_cast<double>(p1.produced) / part1_s : 0;
  double drain_s = t_last > t_up ? t_last - t_up : 0;
  double drain_eps = (t_last > t_first && drained > 1) ? static_cast<double>(drained) / (t_last - t_first) : 0;
  uint64_t uplink_events = live.produced + drained;
  uint64_t wire = tcp_live.wire() + tcp_drain.wire();

  std::string csv = a_.out + "/" + name() + ".csv";
  {
    std::ofstream f(csv, std::ios::trunc);
    f << "t_s,phase,rss_kb,rss_anon_kb,backlog,cpu_s,received\n";
    for (const auto& x : s)
      f << x.t << "," << x.phase << "," << x.rss_kb << "," << x.anon_kb << "," << x.backlog << "," << x.cpu_s << "," << x.received
        << "\n";
  }
  std::ofstream j(a_.out + "/" + name() + ".json", std::ios::trunc);
  char buf[8192];
  std::snprintf(
      buf, sizeof buf,
      "{\n"
      "  \"name\": \"%s\", \"system\": \"%s\", \"shim_ms\": %d, \"durability\": \"%s\",\n"
      "  \"backlog_requested\": %" PRIu64 ", \"live_events\": %" PRIu64 ", \"live_rate\": %.0f,\n"
      "  \"events_ingested\": %" PRIu64 ", \"part1_produced\": %" PRIu64 ", \"part2_produced\": %" PRIu64
      ", \"sim_unacked\": %" PRIu64 ",\n"
      "  \"ingest_eps\": %.1f, \"ingest_part1_eps\": %.1f, \"ingest_durable\": %s,\n"
      "  \"cpu_s\": %.3f, \"cpu_s_per_event\": %.9f, \"local_broker_cpu_s\": %.3f,\n"
      "  \"fsyncs\": %" PRIu64 ", \"fsync_per_event\": %.6f,\n"
      "  \"disk_write_bytes\": %" PRIu64 ", \"disk_bytes_per_event\": %.1f, \"wchar_per_event\": %.1f,\n"
      "  \"rss_steady_kb\": %ld, \"rss_peak_kb\": %ld, \"rss_slope_kb_per_1000\": %.3f, \"backlog_peak\": %lld,\n"
      "  \"rss_anon_steady_kb\": %ld, \"rss_anon_peak_kb\": %ld, \"rss_anon_slope_kb_per_1000\": %.3f, \"slope_samples\": %d,\n"
      "  \"uplink_wire_bytes\": %" PRIu64 ", \"uplink_events\": %" PRIu64
      ", \"uplink_bytes_per_event\": %.2f,\n"
      "  \"uplink_live\": {\"bytes_sent\": %" PRIu64 ", \"bytes_received\": %" PRIu64 ", \"segs_out\": %" PRIu64
      ", \"segs_in\": %" PRIu64 "},\n"
      "  \"uplink_drain\": {\"bytes_sent\": %" PRIu64 ", \"bytes_received\": %" PRIu64 ", \"segs_out\": %" PRIu64
      ", \"segs_in\": %" PRIu64 ", \"sockets\": %d},\n"
      "  \"drain_events\": %" PRIu64 ", \"drain_s\": %.3f, \"drain_eps\": %.1f,\n"
      "  \"stored_at_kill\": %.0f, \"stored_after_restart\": %.0f,\n"
      "  \"events_expected\": %" PRIu64 ", \"events_received\": %" PRIu64 ", \"lost\": %" PRIu64
      ", \"lost_before_kill\": %" PRIu64 ", \"bad_messages\": %" PRIu64 ",\n"
      "  \"part2_sim_cpu_s_per_event\": %.9f,\n"
      "  \"commits\": %.0f, \"commit_events\": %.0f, \"events_per_commit\": %.2f,\n"
      "  \"part2_cpu_s\": %.3f, \"part2_cpu_s_per_event\": %.9f, \"part2_fsyncs\": %" PRIu64
      ", \"part2_fsync_per_event\": %.6f, \"part2_disk_bytes_per_event\": %.1f,\n"
      "  \"part2_commits\": %.0f, \"part2_events_per_commit\": %.2f, \"part2_fsyncs_per_commit\": %.3f,\n"
      "  \"config\": {\"commit_max_events\": \"%s\", \"commit_max_bytes\": \"%s\", \"commit_max_delay\": \"%s\", "
      "\"receive_maximum\": %d, \"sim_connections\": %d, \"sim_max_inflight\": %d, \"publisher\": \"%s\"},\n"
      "  \"samples_csv\": \"%s\"\n}\n",
      name().c_str(), a_.system.c_str(), a_.shim_ms, a_.durability.c_str(), a_.backlog, live.produced, a_.live_rate,
      ingested, p1.produced, p2.produced, live.unacked + p1.unacked + p2.unacked, ingest_eps, part1_eps,
      a_.system == "bridge" ? "false" : "true", banked_cpu_, banked_cpu_ / static_cast<double>(ingested),
      local_end.cpu_s, fsyncs, static_cast<double>(fsyncs) / static_cast<double>(ingested), banked_write_,
      static_cast<double>(banked_write_) / static_cast<double>(ingested),
      static_cast<double>(banked_wchar_) / static_cast<double>(ingested), steady, peak, slope, max_backlog, steady_anon, peak_anon, slope_anon, n, wire,
      uplink_events, uplink_events ? static_cast<double>(wire) / static_cast<double>(uplink_events) : 0.0,
      tcp_live.bytes_sent, tcp_live.bytes_received, tcp_live.segs_out, tcp_live.segs_in, tcp_drain.bytes_sent,
      tcp_drain.bytes_received, tcp_drain.segs_out, tcp_drain.segs_in, tcp_drain.sockets, drained, drain_s,
      drain_eps, stored_at_kill, stored_after_restart, expected, rx_.unique(), lost, lost_part1, rx_.bad(),
      p2.produced ? p2.cpu_s / static_cast<double>(p2.produced) : 0.0,
      commits, commit_events, commits > 0 ? commit_events / commits : 0.0, p2_cpu,
      p2.produced ? p2_cpu / static_cast<double>(p2.produced) : 0.0, p2_fsyncs,
      p2.produced ? static_cast<double>(p2_fsyncs) / static_cast<double>(p2.produced) : 0.0,
      p2.produced ? static_cast<double>(p2_write) / static_cast<double>(p2.produced) : 0.0, p2_commits,
      p2_commits > 0 ? p2_commit_events / p2_commits : 0.0,
      p2_commits > 0 ? static_cast<double>(p2_fsyncs) / p2_commits : 0.0, a_.commit_max_events.c_str(),
      a_.commit_max_bytes.c_str(), a_.commit_max_delay.c_str(), a_.receive_maximum, a_.sim_connections,
      a_.sim_max_inflight, a_.publisher.c_str(), csv.c_str());
  j << buf;
  Log("wrote " + a_.out + "/" + name() + ".json");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto v = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "ferry_compare: %s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--system") a.system = v();
    else if (k == "--shim-ms") a.shim_ms = std::stoi(v());
    else if (k == "--backlog") a.backlog = std::stoull(v());
    else if (k == "--live") a.live = std::stoull(v());
    else if (k == "--live-rate") a.live_rate = std::stod(v());
    else if (k == "--cap-seconds") a.cap_s = std::stod(v());
    else if (k == "--stall-seconds") a.stall_s = std::stod(v());
    else if (k == "--first-timeout") a.first_timeout_s = std::stod(v());
    else if (k == "--drain-timeout") a.drain_timeout_s = std::stod(v());
    else if (k == "--sample-ms") a.sample_ms = std::stoi(v());
    else if (k == "--durability") a.durability = v();
    else if (k == "--out") a.out = v();
    else if (k == "--ferryd") a.ferryd = v();
    else if (k == "--sim") a.sim = v();
    else if (k == "--blast") a.blast = v();
    else if (k == "--publisher") a.publisher = v();
    else if (k == "--shim") a.shim = v();
    else if (k == "--mosquitto") a.mosquitto = v();
    else if (k == "--devices") a.devices = std::stoi(v());
    else if (k == "--commit-max-events") a.commit_max_events = v();
    else if (k == "--commit-max-bytes") a.commit_max_bytes = v();
    else if (k == "--commit-max-delay") a.commit_max_delay = v();
    else if (k == "--receive-maximum") a.receive_maximum = std::stoi(v());
    else if (k == "--sim-connections") a.sim_connections = std::stoi(v());
    else if (k == "--sim-max-inflight") a.sim_max_inflight = std::stoi(v());
    else {
      std::fprintf(stderr, "ferry_compare: unknown option %s (see bench/README.md)\n", k.c_str());
      return 2;
    }
  }
  if (a.system != "ferry" && a.system != "ferry-listen" && a.system != "bridge" && a.system != "bridge-durable") {
    std::fprintf(stderr, "ferry_compare: --system is ferry, ferry-listen, bridge or bridge-durable\n");
    return 2;
  }
  if (a.publisher != "sim" && a.publisher != "blast") {
    std::fprintf(stderr, "ferry_compare: --publisher is sim or blast\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  Bench b(a);
  return b.Run();
}
