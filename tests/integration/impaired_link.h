// impaired_link.h: a userspace TCP proxy that makes a loopback link look like a flaky satellite link, for the
// fault tests (tests/integration/fault_test.cc). netem (tc qdisc ... netem) is the real tool, but not every
// kernel has sch_netem (this project's VMs do not); where it works the test uses it and this proxy only flaps.
//
// What it emulates, per connection and per direction:
//  - delay: every chunk read from one side is written to the other no earlier than `delay` after it was read,
//    in order (a chunk never overtakes an earlier one), like a long propagation delay;
//  - loss, as TCP shows it to the application: with probability `stall_probability` a chunk (and, since order
//    is kept, everything behind it) is held back a further random 200 ms .. `max_stall`, as a retransmission
//    timeout would; and now and then (mean interval `reset_every`) one connection is reset (RST), as a
//    middlebox or a modem losing its state would;
//  - flaps: every `flap_every` the link goes down for `down_for`: every connection is reset and new ones are
//    accepted and reset at once (the client sees its connect fail) until the link is back.
// What it does not emulate: bandwidth limits, packet reordering, corruption, partial TCP segments, the
// congestion window's slow start, or a half-open link that stays silent (a cut is always an RST here).
//
// Threads: one acceptor/controller thread, and two pump and two writer threads per connection. Stop() (or the
// destructor) cuts everything and joins every thread; nothing outlives the object.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace ferry::test {

struct ImpairedLinkOptions {
  int upstream_port = 0;                                        // 127.0.0.1:upstream_port is the real server
  int listen_port = 0;                                          // 0: a free one
  std::chrono::milliseconds delay{600};                         // per direction
  double stall_probability = 0.10;                              // per chunk: the "loss"
  std::chrono::milliseconds max_stall{1000};
  std::chrono::milliseconds reset_every{0};                     // mean interval of random resets; 0: none
  std::chrono::milliseconds flap_every{0};                      // 0: never flaps
  std::chrono::milliseconds down_for{3000};
  size_t max_queued_bytes = 4 << 20;                            // per direction: the reader waits above this
  uint32_t seed = 1;
};

class ImpairedLink {
 public:
  explicit ImpairedLink(ImpairedLinkOptions o) : opt_(o), rng_(o.seed) {}
  ~ImpairedLink() { Stop(); }
  ImpairedLink(const ImpairedLink&) = delete;
  ImpairedLink& operator=(const ImpairedLink&) = delete;

  // Listens on 127.0.0.1:<free port>; false if it cannot.
  bool Start() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) return false;
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = Loopback(opt_.listen_port);
    socklen_t len = sizeof a;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return false;
    port_ = ntohs(a.sin_port);
    up_since_ = Clock::now();
    next_reset_ = NextReset(up_since_);
    thread_ = std::thread([this] { Run(); });
    return true;
  }
  void Stop() {
    if (stop_.exchange(true)) return;
    if (thread_.joinable()) thread_.join();
    CutAll();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
  }

  int port() const { return port_; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  // Only the flaps: for a kernel where netem does the delay and the loss.
  void DisableDelayAndLoss() {
    opt_.delay = std::chrono::milliseconds(0);
    opt_.stall_probability = 0;
    opt_.reset_every = std::chrono::milliseconds(0);
  }

  // Cuts the link by hand (every connection reset, new ones refused) until SetDown(false); the controller
  // applies it within one poll (50 ms). For tests that need an outage at a moment of their choosing.
  void SetDown(bool down) { forced_down_ = down; }

  uint64_t connections() const { return connections_.load(); }
  uint64_t flaps() const { return flaps_.load(); }
  uint64_t resets() const { return resets_.load(); }
  uint64_t refused() const { return refused_.load(); }
  uint64_t stalls() const { return stalls_.load(); }
  uint64_t bytes() const { return bytes_.load(); }

 private:
  using Clock = std::chrono::steady_clock;

  static sockaddr_in Loopback(int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    return a;
  }
  // Close with an RST, not a FIN: the peer learns at once, as it would from a modem that lost the link.
  static void Reset(int fd) {
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::shutdown(fd, SHUT_RDWR);
  }

  // One direction of one connection: a reader stamps chunks with their due time, a writer sends them when due.
  struct Pipe {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::pair<Clock::time_point, std::string>> chunks;
    size_t queued = 0;
    bool closed = false;
  };
  struct Connection {
    int a = -1, b = -1;  // the client's socket, the upstream socket
    Pipe up, down;
    std::vector<std::thread> threads;
    std::atomic<int> running{4};
  };

  void Pump(Connection& c, int from, int to, Pipe& p) {
    std::thread writer([&c, to, &p] {
      for (;;) {
        std::unique_lock<std::mutex> lock(p.mu);
        if (p.chunks.empty()) {
          if (p.closed) break;
          p.cv.wait_for(lock, std::chrono::milliseconds(100));
          continue;
        }
        auto due = p.chunks.front().first;
        if (Clock::now() < due) {
          p.cv.wait_until(lock, due);
          if (p.closed && Clock::now() < due) break;  // cut while waiting: what was in the air is lost
          continue;
        }
        std::string data = std::move(p.chunks.front().second);
        p.chunks.pop_front();
        p.queued -= data.size();
        p.cv.notify_all();
        lock.unlock();
        size_t off = 0;
        while (off < data.size()) {
          ssize_t n = ::send(to, data.data() + off, data.size() - off, MSG_NOSIGNAL);
          if (n <= 0) break;
          off += static_cast<size_t>(n);
        }
        if (off < data.size()) break;
      }
      std::lock_guard<std::mutex> lock(p.mu);
      p.closed = true;
      p.cv.notify_all();
      --c.running;
    });
    char buf[16384];
    Clock::time_point last_due{};
    for (;;) {
      ssize_t n = ::recv(from, buf, sizeof buf, 0);
      if (n <= 0) break;
      bytes_ += static_cast<uint64_t>(n);
      auto due = Clock::now() + opt_.delay;
      {
        std::lock_guard<std::mutex> lock(rng_mu_);
        if (opt_.stall_probability > 0 && std::bernoulli_distribution(opt_.stall_probability)(rng_)) {
          ++stalls_;
          auto extra = std::uniform_int_distribution<int64_t>(200, std::max<int64_t>(200, opt_.max_stall.count()))(rng_);
          due += std::chrono::milliseconds(extra);
        }
      }
      due = std::max(due, last_due);  // order kept: nothing overtakes what was read before it
      last_due = due;
      std::unique_lock<std::mutex> lock(p.mu);
      p.cv.wait(lock, [&] { return p.closed || p.queued < opt_.max_queued_bytes; });
      if (p.closed) break;
      p.chunks.emplace_back(due, std::string(buf, static_cast<size_t>(n)));
      p.queued += static_cast<size_t>(n);
      p.cv.notify_all();
    }
    {
      std::lock_guard<std::mutex> lock(p.mu);
      p.closed = true;
      p.cv.notify_all();
    }
    writer.join();
    // Either side gone: the whole connection goes (a proxy that half-closes would hide resets).
    Reset(c.a);
    Reset(c.b);
    --c.running;
  }

  void Accept() {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    if (down_) {
      ++refused_;
      Reset(fd);
      ::close(fd);
      return;
    }
    int up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = Loopback(opt_.upstream_port);
    if (up < 0 || ::connect(up, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      Reset(fd);
      ::close(fd);
      if (up >= 0) ::close(up);
      return;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ++connections_;
    auto c = std::make_unique<Connection>();
    c->a = fd;
    c->b = up;
    Connection* raw = c.get();
    raw->threads.emplace_back([this, raw] { Pump(*raw, raw->a, raw->b, raw->up); });
    raw->threads.emplace_back([this, raw] { Pump(*raw, raw->b, raw->a, raw->down); });
    conns_.push_back(std::move(c));
  }

  void Finish(Connection& c) {
    Reset(c.a);
    Reset(c.b);
    for (auto& t : c.threads) t.join();
    ::close(c.a);
    ::close(c.b);
  }
  void CutAll() {
    for (auto& c : conns_) Finish(*c);
    conns_.clear();
  }
  void Reap() {
    for (auto it = conns_.begin(); it != conns_.end();) {
      if ((*it)->running.load() == 0) {
        Finish(**it);
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
  }
  Clock::time_point NextReset(Clock::time_point from) {
    if (opt_.reset_every.count() <= 0) return Clock::time_point::max();
    std::lock_guard<std::mutex> lock(rng_mu_);
    double ms = std::exponential_distribution<double>(1.0 / static_cast<double>(opt_.reset_every.count()))(rng_);
    return from + std::chrono::milliseconds(static_cast<int64_t>(ms));
  }

  void Run() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) Accept();
      Reap();
      auto now = Clock::now();
      if (opt_.flap_every.count() > 0) {
        if (!down_ && now - up_since_ >= opt_.flap_every) {
          down_ = true;
          down_since_ = now;
          ++flaps_;
          CutAll();
        } else if (down_ && now - down_since_ >= opt_.down_for) {
          down_ = false;
          up_since_ = now;
        }
      }
      if (forced_down_ && !down_) {
        down_ = true;
        ++flaps_;
        CutAll();
      } else if (!forced_down_ && down_ && opt_.flap_every.count() <= 0) {
        down_ = false;
      }
      if (now >= next_reset_) {
        if (!conns_.empty()) {
          ++resets_;
          Finish(*conns_.front());
          conns_.pop_front();
        }
        next_reset_ = NextReset(now);
      }
    }
  }

  ImpairedLinkOptions opt_;
  std::mutex rng_mu_;
  std::mt19937 rng_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  // The controller thread's own state.
  std::list<std::unique_ptr<Connection>> conns_;
  std::atomic<bool> forced_down_{false};
  bool down_ = false;
  Clock::time_point up_since_{}, down_since_{}, next_reset_{};
  std::atomic<uint64_t> connections_{0}, flaps_{0}, resets_{0}, refused_{0}, stalls_{0}, bytes_{0};
};

}  // namespace ferry::test
