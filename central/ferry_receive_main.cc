// ferry-receive: a reference consumer for the central side. Subscribes to what Ferry uplinks publish
// (per-event CloudEvents MQTT messages and FRYB batches; or, with --kafka, consumes the same from a Kafka topic:
// ferry/kafka_feed.h), verifies batches, and drops duplicate event ids, as
// the centre is expected to (ferry::CentralReceiver, ferry/receiver.h). The demo and the benchmarks count
// delivered events with it: they read the --status-file JSON and the --id-log lines. A scripted check at the
// centre stops it with --expect N, --quiet-for DURATION or --expect-ids FILE and reads the exit status
// (0 all there, 2 fewer than N unique ids, 3 ids from the file missing).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "ferry/kafka_feed.h"
#include "ferry/receiver.h"

namespace {

void WriteStatus(const std::string& path, const ferry::CentralReceiver& c, bool connected) {
  if (path.empty()) return;
  std::string tmp = path + ".new";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) return;
  std::fprintf(f,
               "{\"connected\":%s,\"messages\":%llu,\"events\":%llu,\"unique\":%llu,\"duplicates\":%llu,"
               "\"bad\":%llu}\n",
               connected ? "true" : "false", static_cast<unsigned long long>(c.messages()),
               static_cast<unsigned long long>(c.events()), static_cast<unsigned long long>(c.unique()),
               static_cast<unsigned long long>(c.duplicates()), static_cast<unsigned long long>(c.bad()));
  std::fclose(f);
  std::rename(tmp.c_str(), path.c_str());
}

// "10s", "500ms", "2m", "1h", or a bare number of seconds ("2.5"). Returns a negative value when malformed.
double ParseSeconds(const std::string& text) {
  static const std::pair<const char*, double> kUnits[] = {{"ms", 1e-3}, {"s", 1}, {"m", 60}, {"h", 3600}};
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    return -1;
  }
  const std::string unit = text.substr(used);
  if (unit.empty()) return v >= 0 ? v : -1;
  for (const auto& [name, scale] : kUnits) {
    if (unit == name) return v >= 0 ? v * scale : -1;
  }
  return -1;
}

// Exit codes: 0 done; 1 usage or connection error; 2 fewer unique ids than --expect when it stopped; 3 ids
// from --expect-ids missing when it stopped (up to 10 listed on stderr).
constexpr int kExitShort = 2;
constexpr int kExitMissing = 3;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ferry-receive: count and deduplicate the events Ferry forwards to a central broker"};
  std::string address = "tcp://127.0.0.1:1883", topic = "ferry/#", client_id = "ferry-receive";
  std::string hmac_key_file, id_log_path, status_path;
  double max_seconds = 0;
  app.add_option("-a,--address", address, "Central broker URI")->capture_default_str();
  app.add_option("-t,--topic", topic, "Topic filter to subscribe to (QoS 1); with --kafka, the Kafka topic")
      ->capture_default_str();
  std::string kafka, group = "ferry-receive";
  app.add_option("--kafka", kafka, "Consume from Kafka instead: bootstrap servers host:port[,host:port...]");
  app.add_option("--group", group, "With --kafka: consumer group (\"\": every partition from the start, no group)")
      ->capture_default_str();
  app.add_option("-i,--client-id", client_id, "Client id of the persistent session")->capture_default_str();
  app.add_option("--hmac-key-file", hmac_key_file, "Verify HMAC-signed batches with this key");
  app.add_option("--id-log", id_log_path, "Append every new (deduplicated) event id to FILE");
  app.add_option("--status-file", status_path, "Rewrite FILE with the counts as JSON every 200 ms");
  app.add_option("--max-seconds", max_seconds, "Exit after this many seconds (0: until SIGINT/SIGTERM)");
  uint64_t expect = 0;
  std::string quiet_text, expect_ids_path;
  app.add_option("--expect", expect,
                 "Exit once N unique event ids have arrived (0 when it did; 2 when it stopped short of N: "
                 "--quiet-for, --max-seconds or a signal)");
  app.add_option("--quiet-for", quiet_text,
                 "Exit once no new event id has arrived for this long (10s, 500ms, 2m; counted from the start "
                 "until the first id)");
  app.add_option("--expect-ids", expect_ids_path,
                 "FILE of event ids, one a line: exit once all have arrived; exit 3, listing up to 10 missing, "
                 "when it stops without them");
  CLI11_PARSE(app, argc, argv);
  double quiet_for = 0;
  if (!quiet_text.empty() && (quiet_for = ParseSeconds(quiet_text)) <= 0) {
    std::fprintf(stderr, "ferry-receive: --quiet-for \"%s\": expected a duration such as 10s or 500ms\n",
                 quiet_text.c_str());
    return 1;
  }
  std::vector<std::string> expected_ids;
  if (!expect_ids_path.empty()) {
    std::ifstream in(expect_ids_path);
    if (!in) {
      std::fprintf(stderr, "ferry-receive: cannot read %s\n", expect_ids_path.c_str());
      return 1;
    }
    for (std::string line; std::getline(in, line);) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (!line.empty()) expected_ids.push_back(line);
    }
  }

  std::string key;
  if (!hmac_key_file.empty()) {
    auto k = ferry::ReadHmacKeyFile(hmac_key_file);
    if (!k) {
      std::fprintf(stderr, "ferry-receive: %s\n", k.error().message.c_str());
      return 1;
    }
    key = std::move(*k);
  }
  FILE* id_log = nullptr;
  if (!id_log_path.empty() && !(id_log = std::fopen(id_log_path.c_str(), "a"))) {
    std::fprintf(stderr, "ferry-receive: cannot open %s\n", id_log_path.c_str());
    return 1;
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ferry::CentralReceiverOptions options;
  options.client_id = client_id;
  options.hmac_key = key;
  // A persistent session: whatever the broker queues for us while we are away is delivered on reconnect.
  options.session_expiry = std::chrono::seconds(86400);
  options.auto_reconnect = true;
  if (id_log) options.on_new_id = [id_log](std::string_view id) {
    std::fprintf(id_log, "%.*s\n", static_cast<int>(id.size()), id.data());
  };
  options.warn = [](const std::string& text) { std::fprintf(stderr, "ferry-receive: %s\n", text.c_str()); };
  ferry::CentralReceiver receiver(std::move(options));
  std::unique_ptr<ferry::KafkaFeed> feed;
  if (!kafka.empty()) {
    if (topic.find_first_of("#+/") != std::string::npos) {
      std::fprintf(stderr, "ferry-receive: --kafka needs --topic naming a Kafka topic, not \"%s\"\n", topic.c_str());
      return 1;
    }
    ferry::KafkaFeedOptions ko;
    ko.bootstrap = kafka;
    ko.topic = topic;
    ko.group = group;
    ko.client_id = client_id;
    ko.warn = [](const std::string& text) { std::fprintf(stderr, "ferry-receive: %s\n", text.c_str()); };
    feed = std::make_unique<ferry::KafkaFeed>(receiver, std::move(ko));
    if (auto started = feed->Start(); !started) {
      std::fprintf(stderr, "ferry-receive: %s\n", started.error().message.c_str());
      return 1;
    }
  } else if (auto connected = receiver.Connect(address, topic); !connected) {
    std::fprintf(stderr, "ferry-receive: %s\n", connected.error().message.c_str());
    return 1;
  }
  const auto linked = [&] { return feed ? true : receiver.connected(); };
  auto start = std::chrono::steady_clock::now();
  auto last_new = start;
  uint64_t last_unique = receiver.unique();
  size_t first_missing = 0;  // expected_ids before this index have all arrived (ids never leave)
  auto all_expected_arrived = [&] {
    while (first_missing < expected_ids.size() && receiver.Has(expected_ids[first_missing])) ++first_missing;
    return first_missing == expected_ids.size();
  };
  auto last_status = start - std::chrono::seconds(1);
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_status >= std::chrono::milliseconds(200)) {
      WriteStatus(status_path, receiver, linked());
      if (id_log) std::fflush(id_log);
      last_status = now;
    }
    // Looked at every 50 ms, so a scripted check ends soon after its last id.
    timespec wait{0, 50'000'000};
    int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig > 0) break;
    now = std::chrono::steady_clock::now();
    if (uint64_t u = receiver.unique(); u != last_unique) {
      last_unique = u;
      last_new = now;
    }
    if (expect > 0 && last_unique >= expect && (expected_ids.empty() || all_expected_arrived())) break;
    if (expect == 0 && !expected_ids.empty() && all_expected_arrived()) break;
    if (quiet_for > 0 && std::chrono::duration<double>(now - last_new).count() >= quiet_for) break;
    if (max_seconds > 0 && std::chrono::duration<double>(now - start).count() >= max_seconds) break;
  }
  if (feed) feed->Stop();
  receiver.Disconnect();
  WriteStatus(status_path, receiver, false);
  if (id_log) std::fclose(id_log);
  std::printf("ferry-receive: messages=%llu events=%llu unique=%llu duplicates=%llu bad=%llu\n",
              static_cast<unsigned long long>(receiver.messages()),
              static_cast<unsigned long long>(receiver.events()),
              static_cast<unsigned long long>(receiver.unique()),
              static_cast<unsigned long long>(receiver.duplicates()),
              static_cast<unsigned long long>(receiver.bad()));
  int status = 0;
  if (expect > 0 && receiver.unique() < expect) {
    std::fprintf(stderr, "ferry-receive: %llu unique event ids of the %llu expected\n",
                 static_cast<unsigned long long>(receiver.unique()), static_cast<unsigned long long>(expect));
    status = kExitShort;
  }
  if (!expected_ids.empty() && !all_expected_arrived()) {
    std::vector<std::string> missing;
    size_t count = 0;
    for (size_t i = first_missing; i < expected_ids.size(); ++i) {
      if (receiver.Has(expected_ids[i])) continue;
      ++count;
      if (missing.size() < 10) missing.push_back(expected_ids[i]);
    }
    std::fprintf(stderr, "ferry-receive: %zu of %zu expected event ids missing%s\n", count, expected_ids.size(),
                 count > missing.size() ? " (the first 10):" : ":");
    for (const auto& id : missing) std::fprintf(stderr, "  %s\n", id.c_str());
    status = kExitMissing;
  }
  return status;
}
