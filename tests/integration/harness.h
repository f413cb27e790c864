// harness.h: the parts of an end-to-end test: ferryd and ferry-sim as child processes, a central receiver that
// collects event ids (deduplicating as a central consumer would, ferry/receiver.h), and a metrics scraper.
// Everything waits by polling with a deadline (poll_until); nothing sleeps for a fixed time.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
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
#include "ferry/receiver.h"
#include "ferry/wire.h"

namespace ferry::test {

// The command line that runs one of Ferry's programs: the one built beside the tests or, when the environment
// variable `board_env` names a board build of it, that one under $FERRY_TEST_EMULATOR ("qemu-aarch64 -L
// <sysroot>"). That is how the aarch64 and armhf builds run this suite against their own ferryd.
inline std::vector<std::string> ToolCommand(const char* built, const char* board_env,
                                            std::initializer_list<std::string> args) {
  std::vector<std::string> argv;
  const char* board = std::getenv(board_env);
  if (board != nullptr && *board != '\0') {
    const char* emulator = std::getenv("FERRY_TEST_EMULATOR");
    std::istringstream words(emulator != nullptr ? emulator : "");
    for (std::string w; words >> w;) argv.push_back(w);
    argv.emplace_back(board);
  } else {
    argv.emplace_back(built);
  }
  argv.insert(argv.end(), args);
  return argv;
}

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
      execvp(args[0], args.data());  // a path, or a name on PATH (the emulator, qemu-*)
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

// The central consumer of the tests: ferry::CentralReceiver (ferry/receiver.h) on a persistent session, reading
// per-event messages and FRYB batches, with every arrival recorded (the drain-order tests read them).
class CentralReceiver : public ferry::CentralReceiver {
 public:
  explicit CentralReceiver(std::string client_id = "central-receiver")
      : ferry::CentralReceiver(Options(std::move(client_id))) {}

  // True once connected and subscribed: the tests ASSERT on it.
  bool Connect(const std::string& uri, const std::string& filter = "ferry/#") {
    return ferry::CentralReceiver::Connect(uri, filter).has_value();
  }

 private:
  static CentralReceiverOptions Options(std::string client_id) {
    CentralReceiverOptions o;
    o.client_id = std::move(client_id);
    o.record_arrivals = true;
    return o;
  }
};

inline std::vector<std::string> ReadLines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(line);
  return lines;
}

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The ids of `want` the centre has not seen, in order.
inline std::vector<std::string> Missing(const std::vector<std::string>& want, const CentralReceiver& rx) {
  std::vector<std::string> missing;
  for (const auto& id : want)
    if (!rx.Has(id)) missing.push_back(id);
  return missing;
}

// The first few of `v`, for a failure message.
inline std::string Head(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < 5; ++i) s += v[i] + " ";
  return s;
}

inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

}  // namespace ferry::test
