// harness.h: the parts of an end-to-end test: ferryd and ferry-sim as child processes, a central receiver that
// collects event ids (deduplicating as a central consumer would), and a metrics scraper.
// Everything waits by polling with a deadline (poll_until); nothing sleeps for a fixed time.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <mqtt/async_client.h>

#include "../support/mosquitto_fixture.h"
#include "ferry/wire.h"

namespace ferry::test {

// A child process with its stdout+stderr in a log file.
class ChildProcess {
 public:
  ~ChildProcess() { Kill9(); }
  bool Start(const std::vector<std::string>& argv, const std::string& log_path) {
    log_path_ = log_path;
    pid_ = fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
      int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      ::close_range(3, ~0U, 0);  // not the test's Paho sockets (they are not close-on-exec)
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    return true;
  }
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_status_ = status;
      pid_ = -1;
      return false;
    }
    return true;
  }
  void Kill9() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, &exit_status_, 0);
      pid_ = -1;
    }
  }
  // SIGTERM, then wait up to `timeout` for the exit; SIGKILL after that. Returns the exit status.
  int Terminate(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      if (!poll_until([this] { return !running(); }, timeout)) Kill9();
    }
    return exit_status_;
  }
  // Waits for a natural exit; returns the raw wait status or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout) {
    if (pid_ > 0 && !poll_until([this] { return !running(); }, timeout, std::chrono::microseconds(10000)))
      return -1;
    return exit_status_;
  }
  // The last 4 KiB of the log: enough to see why, short enough for a test failure message.
  std::string log() const {
    std::ifstream in(log_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    return s.size() > 4096 ? "..." + s.substr(s.size() - 4096) : s;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int exit_status_ = 0;
  std::string log_path_;
};

// GET http://127.0.0.1:port/path; the body, or "" on any failure.
inline std::string HttpGet(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[65536];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  auto body = out.find("\r\n\r\n");
  return body == std::string::npos ? "" : out.substr(body + 4);
}

// The value of one sample ("name{labels}" exactly as rendered, or a bare name), or -1.
inline double MetricValue(const std::string& text, const std::string& sample) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, sample.size(), sample) == 0 && line.size() > sample.size() && line[sample.size()] == ' ')
      return std::stod(line.substr(sample.size() + 1));
  }
  return -1;
}

// The central consumer: a persistent MQTT v5 session on the central broker, QoS 1 on `filter`. Collects event
// ids from per-event messages (user property "id") and from FRYB batches (decoded and verified).
class CentralReceiver {
 public:
  explicit CentralReceiver(std::string client_id = "central-receiver") : client_id_(std::move(client_id)) {}
  ~CentralReceiver() { Disconnect(); }

  bool Connect(const std::string& uri, const std::string& filter = "ferry/#") {
    Disconnect();
    client_ = std::make_unique<mqtt::async_client>(uri, client_id_, mqtt::create_options(MQTTVERSION_5));
    client_->set_message_callback([this](mqtt::const_message_ptr m) { OnMessage(*m); });
    auto opts = mqtt::connect_options_builder()
                    .mqtt_version(MQTTVERSION_5)
                    .clean_start(false)
                    .properties({mqtt::property(mqtt::property::SESSION_EXPIRY_INTERVAL, 3600)})
                    .connect_timeout(std::chrono::seconds(5))
                    .finalize();
    try {
      client_->connect(opts)->wait_for(std::chrono::seconds(5));
      if (!client_->is_connected()) return false;
      client_->subscribe(filter, 1)->wait_for(std::chrono::seconds(5));
    } catch (const mqtt::exception&) {
      return false;
    }
    return true;
  }
  void Disconnect() {
    if (!client_) return;
    try {
      if (client_->is_connected()) client_->disconnect()->wait_for(std::chrono::seconds(2));
    } catch (const mqtt::exception&) {
    }
    client_.reset();
  }

  size_t unique() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ids_.size();
  }
  uint64_t messages() const { return messages_.load(); }
  uint64_t events() const { return events_.load(); }
  uint64_t duplicates() const { return duplicates_.load(); }
  uint64_t bad() const { return bad_.load(); }
  bool Has(const std::string& id) const {
    std::lock_guard<std::mutex> lock(mu_);
    return ids_.count(id) != 0;
  }
  std::vector<WireEvent> SomeEvents() const {
    std::lock_guard<std::mutex> lock(mu_);
    return samples_;
  }
  std::unordered_map<std::string, WireEvent> ById() const {
    std::lock_guard<std::mutex> lock(mu_);
    return by_id_;
  }
  void KeepEvents(bool keep) { keep_ = keep; }
  // Every event in arrival order: (topic, seq), duplicates included.
  std::vector<std::pair<std::string, uint64_t>> Arrivals() const {
    std::lock_guard<std::mutex> lock(mu_);
    return arrivals_;
  }

 private:
  void Add(const std::string& topic, WireEvent e) {
    ++events_;
    std::lock_guard<std::mutex> lock(mu_);
    arrivals_.emplace_back(topic, e.seq.value);
    if (!ids_.insert(e.id).second) {
      ++duplicates_;
      return;
    }
    if (keep_) by_id_.emplace(e.id, std::move(e));
  }
  void OnMessage(const mqtt::message& m) {
    ++messages_;
    const auto& props = m.get_properties();
    std::string content_type;
    if (props.contains(mqtt::property::CONTENT_TYPE))
      content_type = mqtt::get<std::string>(props, mqtt::property::CONTENT_TYPE);
    if (content_type == kBatchContentType) {
      auto batch = decoder_.Decode(m.get_payload());
      if (!batch) {
        ++bad_;
        return;
      }
      for (auto& e : batch->batch.events) Add(m.get_topic(), std::move(e));
      return;
    }
    MqttEventProperties mp;
    mp.content_type = content_type;
    size_t n = props.count(mqtt::property::USER_PROPERTY);
    for (size_t i = 0; i < n; ++i) {
      auto kv = mqtt::get<mqtt::string_pair>(props, mqtt::property::USER_PROPERTY, i);
      mp.user_properties.emplace_back(std::get<0>(kv), std::get<1>(kv));
    }
    auto e = FromMqttProperties(mp, m.get_payload());
    if (!e) {
      ++bad_;
      return;
    }
    Add(m.get_topic(), std::move(*e));
  }

  std::string client_id_;
  std::unique_ptr<mqtt::async_client> client_;
  BatchDecoder decoder_;  // only the Paho callback thread uses it
  mutable std::mutex mu_;
  std::unordered_set<std::string> ids_;
  std::unordered_map<std::string, WireEvent> by_id_;
  std::vector<WireEvent> samples_;
  std::vector<std::pair<std::string, uint64_t>> arrivals_;
  std::atomic<bool> keep_{false};
  std::atomic<uint64_t> messages_{0}, events_{0}, duplicates_{0}, bad_{0};
};

inline std::vector<std::string> ReadLines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(line);
  return lines;
}

inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

}  // namespace ferry::test
