// ferry-receive: a reference consumer for the central side. Subscribes to what Ferry uplinks publish
// (per-event CloudEvents MQTT messages and FRYB batches), verifies batches, and drops duplicate event ids, as
// the centre is expected to. The demo and the benchmarks count delivered events with it.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_set>

#include <CLI/CLI.hpp>
#include <mqtt/async_client.h>

#include "ferry/wire.h"

namespace {

struct Counts {
  std::atomic<uint64_t> messages{0}, events{0}, unique{0}, duplicates{0}, bad{0};
};

class Receiver {
 public:
  Receiver(Counts& counts, std::string hmac_key, FILE* id_log)
      : counts_(counts), decoder_(std::move(hmac_key)), id_log_(id_log) {}

  void OnMessage(const mqtt::message& m) {
    ++counts_.messages;
    const auto& props = m.get_properties();
    std::string ct;
    if (props.contains(mqtt::property::CONTENT_TYPE)) ct = mqtt::get<std::string>(props, mqtt::property::CONTENT_TYPE);
    if (ct == ferry::kBatchContentType) {
      auto batch = decoder_.Decode(m.get_payload());
      if (!batch) {
        ++counts_.bad;
        std::fprintf(stderr, "ferry-receive: %s: %s\n", m.get_topic().c_str(), batch.error().ToString().c_str());
        return;
      }
      for (const auto& e : batch->batch.events) Add(e.id);
      return;
    }
    ferry::MqttEventProperties mp;
    mp.content_type = ct;
    size_t n = props.count(mqtt::property::USER_PROPERTY);
    for (size_t i = 0; i < n; ++i) {
      auto kv = mqtt::get<mqtt::string_pair>(props, mqtt::property::USER_PROPERTY, i);
      mp.user_properties.emplace_back(std::get<0>(kv), std::get<1>(kv));
    }
    auto e = ferry::FromMqttProperties(mp, m.get_payload());
    if (!e) {
      ++counts_.bad;
      return;
    }
    Add(e->id);
  }

 private:
  void Add(const std::string& id) {
    ++counts_.events;
    std::lock_guard<std::mutex> lock(mu_);
    if (!seen_.insert(id).second) {
      ++counts_.duplicates;
      return;
    }
    ++counts_.unique;
    if (id_log_) std::fprintf(id_log_, "%s\n", id.c_str());
  }

  Counts& counts_;
  ferry::BatchDecoder decoder_;  // Paho's callback thread only
  std::mutex mu_;
  std::unordered_set<std::string> seen_;
  FILE* id_log_;
};

void WriteStatus(const std::string& path, const Counts& c, bool connected) {
  if (path.empty()) return;
  std::string tmp = path + ".new";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) return;
  std::fprintf(f,
               "{\"connected\":%s,\"messages\":%llu,\"events\":%llu,\"unique\":%llu,\"duplicates\":%llu,"
               "\"bad\":%llu}\n",
               connected ? "true" : "false", static_cast<unsigned long long>(c.messages.load()),
               static_cast<unsigned long long>(c.events.load()), static_cast<unsigned long long>(c.unique.load()),
               static_cast<unsigned long long>(c.duplicates.load()), static_cast<unsigned long long>(c.bad.load()));
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

  Counts counts;
  Receiver receiver(counts, key, id_log);
  mqtt::async_client client(address, client_id, mqtt::create_options(MQTTVERSION_5));
  client.set_message_callback([&](mqtt::const_message_ptr m) { receiver.OnMessage(*m); });
  std::atomic<bool> need_subscribe{false};
  client.set_connected_handler([&](const std::string&) { need_subscribe = true; });
  // A persistent session: whatever the broker queues for us while we are away is delivered on reconnect.
  auto opts = mqtt::connect_options_builder()
                  .mqtt_version(MQTTVERSION_5)
                  .clean_start(false)
                  .properties({mqtt::property(mqtt::property::SESSION_EXPIRY_INTERVAL, 86400)})
                  .automatic_reconnect(std::chrono::milliseconds(100), std::chrono::seconds(2))
                  .connect_timeout(std::chrono::seconds(5))
                  .finalize();
  try {
    client.connect(opts);
  } catch (const mqtt::exception& e) {
    std::fprintf(stderr, "ferry-receive: %s: %s\n", address.c_str(), e.what());
    return 1;
  }
  auto start = std::chrono::steady_clock::now();
  for (;;) {
    if (need_subscribe.exchange(false)) {
      try {
        client.subscribe(topic, 1);
      } catch (const mqtt::exception& e) {
        std::fprintf(stderr, "ferry-receive: subscribe: %s\n", e.what());
      }
    }
    WriteStatus(status_path, counts, client.is_connected());
    if (id_log) std::fflush(id_log);
    timespec wait{0, 200'000'000};
    int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig > 0) break;
    if (max_seconds > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >= max_seconds)
      break;
  }
  try {
    if (client.is_connected()) client.disconnect()->wait_for(std::chrono::seconds(2));
  } catch (const mqtt::exception&) {
  }
  WriteStatus(status_path, counts, false);
  if (id_log) std::fclose(id_log);
  std::printf("ferry-receive: messages=%llu events=%llu unique=%llu duplicates=%llu bad=%llu\n",
              static_cast<unsigned long long>(counts.messages.load()),
              static_cast<unsigned long long>(counts.events.load()),
              static_cast<unsigned long long>(counts.unique.load()),
              static_cast<unsigned long long>(counts.duplicates.load()),
              static_cast<unsigned long long>(counts.bad.load()));
  return 0;
}
