// ferry-receive: a reference consumer for the central side. Subscribes to what Ferry uplinks publish
// (per-event CloudEvents MQTT messages and FRYB batches), verifies batches, and drops duplicate event ids, as
// the centre is expected to (ferry::CentralReceiver, ferry/receiver.h). The demo and the benchmarks count
// delivered events with it: they read the --status-file JSON and the --id-log lines.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ferry-receive: count and deduplicate the events Ferry forwards to a central broker"};
  std::string address = "tcp://127.0.0.1:1883", topic = "ferry/#", client_id = "ferry-receive";
  std::string hmac_key_file, id_log_path, status_path;
  double max_seconds = 0;
  app.add_option("-a,--address", address, "Central broker URI")->capture_default_str();
  app.add_option("-t,--topic", topic, "Topic filter to subscribe to (QoS 1)")->capture_default_str();
  app.add_option("-i,--client-id", client_id, "Client id of the persistent session")->capture_default_str();
  app.add_option("--hmac-key-file", hmac_key_file, "Verify HMAC-signed batches with this key");
  app.add_option("--id-log", id_log_path, "Append every new (deduplicated) event id to FILE");
  app.add_option("--status-file", status_path, "Rewrite FILE with the counts as JSON every 200 ms");
  app.add_option("--max-seconds", max_seconds, "Exit after this many seconds (0: until SIGINT/SIGTERM)");
  CLI11_PARSE(app, argc, argv);

  std::string key;
  if (!hmac_key_file.empty()) {
    std::ifstream in(hmac_key_file, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "ferry-receive: cannot read %s\n", hmac_key_file.c_str());
      return 1;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    key = ss.str();
    while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
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
  if (auto connected = receiver.Connect(address, topic); !connected) {
    std::fprintf(stderr, "ferry-receive: %s\n", connected.error().message.c_str());
    return 1;
  }
  auto start = std::chrono::steady_clock::now();
  for (;;) {
    WriteStatus(status_path, receiver, receiver.connected());
    if (id_log) std::fflush(id_log);
    timespec wait{0, 200'000'000};
    int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig > 0) break;
    if (max_seconds > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >= max_seconds)
      break;
  }
  receiver.Disconnect();
  WriteStatus(status_path, receiver, false);
  if (id_log) std::fclose(id_log);
  std::printf("ferry-receive: messages=%llu events=%llu unique=%llu duplicates=%llu bad=%llu\n",
              static_cast<unsigned long long>(receiver.messages()),
              static_cast<unsigned long long>(receiver.events()),
              static_cast<unsigned long long>(receiver.unique()),
              static_cast<unsigned long long>(receiver.duplicates()),
              static_cast<unsigned long long>(receiver.bad()));
  return 0;
}
