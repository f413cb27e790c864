// ferry_uplink_drain: how fast ferryd drains a stored backlog to the centre, and how many bytes an event costs,
// through the MQTT batched uplink (central Mosquitto) and the Kafka uplink (librdkafka's mock cluster, 3 brokers
// on loopback, in this process), in one run on the same machine and the same backlog.
//
//   ferry_uplink_drain [--events 200000] [--systems mqtt-batched,kafka-per-event,kafka-batched] [--out FILE.json]
//
// For each system: a log seeded with the same --events events (16 devices, ~60-byte JSON payloads), ferryd
// started on it with one uplink, and the centre's receiver (CentralReceiver; for Kafka fed by KafkaFeed, every
// partition from the start) counting distinct ids. Figures: acked events/s (from the first id at the centre until
// ferry_uplink_acked_total has them all: the uplink's own speed), received events/s (until the receiver has them
// all; for Kafka this includes the mock cluster's fetch path, which is slow for few large records); uplink bytes per event (ferry_uplink_bytes_total: payload bytes handed to the client, after Ferry's
// own batch compression); TCP bytes per event (bytes_acked of ferryd's sockets to the centre, `ss`, so
// protocol framing, headers and librdkafka's record-batch compression included). The mock cluster is not a real
// broker (no disk, no replication traffic): the Kafka figures are the client side's cost.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <cinttypes>
#include <cstdio>
#include <memory>
#include <set>

#include "../../tests/integration/harness.h"
#include "ferry/event_log.h"
#include "ferry/kafka_feed.h"
#include "ferry/write_txn.h"

using namespace std::chrono_literals;
using ferry::test::ChildProcess;
using ferry::test::HttpGet;
using ferry::test::MetricValue;
using ferry::test::MosquittoBroker;
using ferry::test::poll_until;
using ferry::test::TempDir;

namespace {

constexpr char kTopic[] = "ferry.gw-bench.telemetry";

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

// bytes_acked summed over `pid`'s TCP sockets to any of `ports` on 127.0.0.1.
uint64_t TcpBytesAcked(pid_t pid, const std::set<int>& ports) {
  uint64_t total = 0;
  const std::string needle = "pid=" + std::to_string(pid) + ",";
  for (int port : ports) {
    std::istringstream in(RunCapture("ss -tinpH dst 127.0.0.1:" + std::to_string(port) + " 2>/dev/null"));
    std::string line;
    bool mine = false;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      if (line[0] != ' ' && line[0] != '\t') mine = line.find(needle) != std::string::npos;
      if (!mine) continue;
      const auto at = line.find("bytes_acked:");
      if (at != std::string::npos) total += std::strtoull(line.c_str() + at + 12, nullptr, 10);
    }
  }
  return total;
}

struct Result {
  std::string system;
  bool complete = false;
  double events_per_s = 0;  // at the centre's receiver
  double acked_per_s = 0;   // acknowledged to ferryd (PUBACK / delivery report), from the first id at the centre
  double uplink_bytes_per_event = 0;
  double tcp_bytes_per_event = 0;
  double seconds = 0;
};

bool Seed(const std::string& path, uint64_t events) {
  ferry::EventLogOptions o;
  o.path = path;
  o.map_size = size_t{2} << 30;
  auto log = ferry::EventLog::Open(o);
  if (!log || !(*log)->CreateStream("telemetry")) return false;
  for (uint64_t from = 0; from < events; from += 10000) {
    ferry::Status st = (*log)->Update([&](ferry::WriteTxn& txn) -> ferry::Status {
      for (uint64_t i = from; i < std::min(events, from + 10000); ++i) {
        ferry::Event e;
        const int d = static_cast<int>(i % 16);
        e.id = "dev-" + std::to_string(d) + "/" + std::to_string(i);
        e.source = "telemetry/dev-" + std::to_string(d) + "/engine";
        e.type = "ferry.mqtt";
        e.subject = "dev-" + std::to_string(d);
        e.datacontenttype = "application/json";
        e.payload = "{\"rpm\":" + std::to_string(1000 + i % 5000) + ",\"temp\":" + std::to_string(60 + i % 40) +
                    ",\"ok\":true,\"seq\":" + std::to_string(i) + "}";
        if (auto seq = txn.Append("telemetry", e); !seq) return tl::make_unexpected(seq.error());
      }
      return ferry::Ok();
    });
    if (!st) return false;
  }
  return true;
}

Result RunOne(const std::string& system, uint64_t events) {
  Result r;
  r.system = system;
  const bool kafka = system.rfind("kafka", 0) == 0;
  const bool batched = system.find("batched") != std::string::npos;
  TempDir dir("ferry-drain");
  if (!Seed(dir.path() + "/log", events)) {
    std::fprintf(stderr, "%s: cannot seed the log\n", system.c_str());
    return r;
  }
  ferry::CentralReceiverOptions ro;
  ro.client_id = "drain-rx";
  ro.hash_ids = true;
  ferry::CentralReceiver rx(ro);
  std::unique_ptr<MosquittoBroker> central;
  rd_kafka_t* mock_rk = nullptr;
  rd_kafka_mock_cluster_t* mock = nullptr;
  std::unique_ptr<ferry::KafkaFeed> feed;
  std::string address;
  std::set<int> ports;
  if (kafka) {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    mock = rd_kafka_mock_cluster_new(mock_rk, 3);
    rd_kafka_mock_topic_create(mock, kTopic, 6, 3);
    address = rd_kafka_mock_cluster_bootstraps(mock);
    for (size_t at = 0; at != std::string::npos;) {
      const size_t colon = address.find(':', at);
      ports.insert(std::atoi(address.c_str() + colon + 1));
      at = address.find(',', colon);
      if (at != std::string::npos) ++at;
    }
    ferry::KafkaFeedOptions fo;
    fo.bootstrap = address;
    fo.topic = kTopic;
    feed = std::make_unique<ferry::KafkaFeed>(rx, fo);
    if (!feed->Start()) return r;
  } else {
    central = std::make_unique<MosquittoBroker>();
    if (!central->start() || !rx.Connect(central->uri(), "ferry/#")) return r;
    address = central->uri();
    ports.insert(central->port());
  }
  MosquittoBroker local;
  if (!local.start()) return r;
  const int metrics_port = ferry::test::free_tcp_port();
  std::string c = "[gateway]\nid = \"gw-bench\"\n[storage]\npath = \"" + dir.path() + "/log\"\nmap_size = \"2GiB\"\n";
  c += "[ingest]\naddress = \"" + local.uri() + "\"\n";
  c += "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port) + "\"\n";
  c += "[[stream]]\nname = \"telemetry\"\n[[route]]\nfilter = \"telemetry/{device}/#\"\nstream = \"telemetry\"\n";
  c += "[[uplink]]\nname = \"central\"\naddress = \"" + address + "\"\nmode = \"" +
       (batched ? "batched" : "per_event") + "\"\n";
  if (kafka) {
    c += "type = \"kafka\"\ntopic = \"ferry.{gateway}.{stream}\"\ninflight = 5000\n";
    c += std::string("kafka.compression = \"") + (batched ? "none" : "zstd") + "\"\n";
  } else {
    c += "topic = \"ferry/{gateway}/{stream}\"\n";
  }
  ferry::test::WriteFile(dir.path() + "/ferry.toml", c);
  ChildProcess ferryd;
  if (!ferryd.Start({FERRY_FERRYD_PATH, "-c", dir.path() + "/ferry.toml"}, dir.path() + "/ferryd.log")) return r;
  const auto start = std::chrono::steady_clock::now();
  poll_until([&] { return rx.unique() > 0 || !ferryd.running(); }, 60s, std::chrono::microseconds(500));
  const auto first = std::chrono::steady_clock::now();
  uint64_t last_unique = 0;
  auto last_change = first;
  auto acked_all = first;
  bool acked = false;
  auto last_scrape = first;
  const std::string acked_sample = "ferry_uplink_acked_total{uplink=\"central\",stream=\"telemetry\"}";
  // Done when all arrived; given up when nothing new arrives for 20 s.
  poll_until(
      [&] {
        const auto now = std::chrono::steady_clock::now();
        if (!acked && now - last_scrape >= 10ms) {
          last_scrape = now;
          acked = MetricValue(HttpGet(metrics_port, "/metrics"), acked_sample) >= static_cast<double>(events);
          if (acked) acked_all = now;
        }
        const uint64_t u = rx.unique();
        if (u != last_unique) last_unique = u, last_change = std::chrono::steady_clock::now();
        return u >= events || std::chrono::steady_clock::now() - last_change > 20s || !ferryd.running();
      },
      3600s, std::chrono::microseconds(500));
  const auto end = std::chrono::steady_clock::now();
  r.complete = rx.unique() >= events;
  r.seconds = std::chrono::duration<double>(end - start).count();
  const double drain_s = std::chrono::duration<double>(end - first).count();
  r.events_per_s = drain_s > 0 ? static_cast<double>(rx.unique()) / drain_s : 0;
  if (!acked) acked = MetricValue(HttpGet(metrics_port, "/metrics"), acked_sample) >= static_cast<double>(events),
              acked_all = std::chrono::steady_clock::now();
  const double acked_s = std::chrono::duration<double>(acked_all - first).count();
  r.acked_per_s = acked && acked_s > 0 ? static_cast<double>(events) / acked_s : 0;
  const double bytes = MetricValue(HttpGet(metrics_port, "/metrics"), "ferry_uplink_bytes_total{uplink=\"central\"}");
  r.uplink_bytes_per_event = bytes / static_cast<double>(events);
  r.tcp_bytes_per_event = static_cast<double>(TcpBytesAcked(ferryd.pid(), ports)) / static_cast<double>(events);
  if (!r.complete) std::fprintf(stderr, "%s: %" PRIu64 " of %" PRIu64 " ids\n%s\n", system.c_str(), rx.unique(),
                                events, ferryd.log().c_str());
  ferryd.Terminate();
  if (feed) feed->Stop();
  rx.Disconnect();
  if (mock != nullptr) rd_kafka_mock_cluster_destroy(mock);
  if (mock_rk != nullptr) rd_kafka_destroy(mock_rk);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t events = 200000;
  std::string systems = "mqtt-batched,kafka-per-event,kafka-batched", out;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--events") events = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "--systems") systems = v;
    else if (k == "--out") out = v;
    else {
      std::fprintf(stderr, "ferry_uplink_drain: unknown option %s\n", k.c_str());
      return 1;
    }
  }
  std::vector<Result> results;
  std::istringstream list(systems);
  for (std::string s; std::getline(list, s, ',');) {
    if (s != "mqtt-batched" && s != "mqtt-per-event" && s != "kafka-per-event" && s != "kafka-batched") {
      std::fprintf(stderr, "ferry_uplink_drain: --systems: unknown system %s\n", s.c_str());
      return 1;
    }
    results.push_back(RunOne(s, events));
  }
  std::printf("%-18s %14s %14s %20s %17s %9s\n", "system", "acked ev/s", "received ev/s", "uplink bytes/event",
              "TCP bytes/event", "complete");
  std::string json = "[\n";
  for (const auto& r : results) {
    std::printf("%-18s %14.0f %14.0f %20.1f %17.1f %9s\n", r.system.c_str(), r.acked_per_s, r.events_per_s,
                r.uplink_bytes_per_event, r.tcp_bytes_per_event, r.complete ? "yes" : "NO");
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "  {\"system\": \"%s\", \"events\": %" PRIu64 ", \"complete\": %s, \"acked_events_per_s\": %.0f, "
                  "\"received_events_per_s\": %.0f, "
                  "\"uplink_bytes_per_event\": %.1f, \"tcp_bytes_per_event\": %.1f, \"seconds\": %.2f}%s\n",
                  r.system.c_str(), events, r.complete ? "true" : "false", r.acked_per_s, r.events_per_s,
                  r.uplink_bytes_per_event,
                  r.tcp_bytes_per_event, r.seconds, &r == &results.back() ? "" : ",");
    json += buf;
  }
  json += "]\n";
  if (!out.empty()) ferry::test::WriteFile(out, json);
  for (const auto& r : results)
    if (!r.complete) return 2;
  return 0;
}
