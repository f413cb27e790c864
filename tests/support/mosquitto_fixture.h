// mosquitto_fixture.h — a real Mosquitto broker for tests: free port, config from a string, start and wait
// until it accepts connections, graceful stop, kill -9, restart on the same port, temp dir cleanup.
// Header-only, C++17, POSIX (fork/exec of /usr/sbin/mosquitto). Waits poll with a deadline; nothing sleeps
// for a fixed time hoping the broker is ready.
//
//   ferry::test::MosquittoBroker broker;            // picks a free 127.0.0.1 port
//   ASSERT_TRUE(broker.start()) << broker.log();    // returns once a TCP connect succeeds
//   connect to broker.uri()                          // "tcp://127.0.0.1:<port>"
//   broker.kill9(); ... ASSERT_TRUE(broker.start()); // same port, same config
//
// Thread rules: one thread drives a broker object. The destructor kills the broker and removes its dir.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "temp_dir.h"

namespace ferry::test {

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it back, close).
inline int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// True once a TCP connect to 127.0.0.1:port succeeds.
inline bool tcp_port_accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// Polls pred() until it returns true or the deadline passes; returns the last result. The short pause
// between polls only yields the CPU; correctness never depends on its length.
template <class Pred>
bool poll_until(Pred pred, std::chrono::milliseconds timeout,
                std::chrono::microseconds pause = std::chrono::microseconds(2000)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(pause);
  }
}

class MosquittoBroker {
 public:
  struct Options {
    std::string binary = "/usr/sbin/mosquitto";
    int port = 0;              // 0: pick a free port once; restarts keep it
    std::string extra_config;  // appended to the generated config (one directive per line)
    bool verbose_log = false;  // log_type all
    // A second listener speaking TLS (a real handshake with OpenSSL on both sides), on its own port.
    struct Tls {
      std::string ca_file;    // CA that signed the client certificates; empty: no TLS listener
      std::string cert_file;  // the broker's certificate and key (PEM)
      std::string key_file;
      bool require_certificate = false;  // mutual TLS: clients must present a certificate signed by ca_file
    } tls;
  };

  MosquittoBroker() : MosquittoBroker(Options{}) {}
  explicit MosquittoBroker(Options o) : opt_(std::move(o)), dir_("ferry-mosquitto") {
    port_ = opt_.port != 0 ? opt_.port : free_tcp_port();
    while (!opt_.tls.ca_file.empty() && (tls_port_ <= 0 || tls_port_ == port_)) tls_port_ = free_tcp_port();
  }
  ~MosquittoBroker() { kill9(); }
  MosquittoBroker(const MosquittoBroker&) = delete;
  MosquittoBroker& operator=(const MosquittoBroker&) = delete;

  int port() const { return port_; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  int tls_port() const { return tls_port_; }
  std::string tls_uri() const { return "ssl://127.0.0.1:" + std::to_string(tls_port_); }
  const std::string& dir() const { return dir_.path(); }
  std::string config_path() const { return dir() + "/mosquitto.conf"; }
  std::string log_path() const { return dir() + "/mosquitto.log"; }
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  std::string config() const {
    std::ostringstream c;
    c << "listener " << port_ << " 127.0.0.1\n"
      << "allow_anonymous true\n"
      << "persistence false\n"
      // Mosquitto's default (1000) silently drops QoS 1 messages for a slow or absent subscriber: a test
      // must never lose messages that way, so every test broker queues without limit.
      << "max_queued_messages 0\n"
      << "log_dest stderr\n";
    if (opt_.verbose_log) c << "log_type all\n";
    c << opt_.extra_config << "\n";
    if (tls_port_ > 0) {
      // Listener options follow their listener line.
      c << "listener " << tls_port_ << " 127.0.0.1\n"
        << "cafile " << opt_.tls.ca_file << "\ncertfile " << opt_.tls.cert_file << "\nkeyfile " << opt_.tls.key_file
        << "\nrequire_certificate " << (opt_.tls.require_certificate ? "true" : "false") << "\n";
    }
    return c.str();
  }

  // Starts the broker (config rewritten each time) and returns once it accepts TCP connections.
  // False if it exited or did not accept in time; log() then says why.
  bool start(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    if (running()) return true;
    if (!dir_.ok() || port_ <= 0) return false;
    {
      std::ofstream f(config_path(), std::ios::trunc);
      f << config();
      if (!f) return false;
    }
    pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
      int fd = ::open(log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      // Paho does not open its sockets close-on-exec: without this the broker would inherit the test's client
      // connections and keep them open after the test closes them.
      ::close_range(3, ~0U, 0);
      std::string cfg = config_path();
      ::execl(opt_.binary.c_str(), opt_.binary.c_str(), "-c", cfg.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    pid_ = pid;
    bool up = poll_until(
        [&] { return exited() || (tcp_port_accepts(port_) && (tls_port_ <= 0 || tcp_port_accepts(tls_port_))); },
        timeout);
    if (!up || !running()) {
      kill9();
      return false;
    }
    return true;
  }

  // SIGTERM, then SIGKILL if it has not exited within timeout.
  void stop(std::chrono::milliseconds timeout = std::chrono::milliseconds(3000)) {
    if (!running()) return;
    ::kill(pid_, SIGTERM);
    if (!poll_until([&] { return exited(); }, timeout)) kill9();
  }

  // SIGKILL and reap: the broker loses everything in memory, like a power cut of the broker process.
  void kill9() {
    if (!running()) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

  bool restart(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    stop();
    return start(timeout);
  }

  std::string log() const {
    std::ifstream f(log_path());
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }

 private:
  // Reaps the child if it has exited; true when it is gone.
  bool exited() {
    if (pid_ <= 0) return true;
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      pid_ = -1;
      return true;
    }
    return false;
  }

  Options opt_;
  TempDir dir_;
  int port_ = -1;
  int tls_port_ = -1;
  pid_t pid_ = -1;
};

}  // namespace ferry::test
