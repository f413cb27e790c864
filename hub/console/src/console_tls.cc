// The console's TLS terminator (console_tls.h). A poll() loop over the listening socket, an eventfd for
// Stop(), and per connection the client's socket and our end of the socketpair libmicrohttpd reads.
#include "console_tls.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "ferry/log.h"

namespace ferry {

using Io = TlsSession::Io;

struct ConsoleTls::Conn {
  int tcp = -1;    // the client's socket, TLS on it
  int plain = -1;  // our end of the socketpair; libmicrohttpd has the other
  std::unique_ptr<TlsSession> tls;
  sockaddr_storage peer{};
  socklen_t peer_len = 0;
  bool open = false;  // handshake done, handed to libmicrohttpd
  Io handshake_wants = Io::kWantRead;
  std::chrono::steady_clock::time_point deadline;  // of the handshake
  std::string to_http;  // decrypted, not yet written into the pair
  size_t to_http_off = 0;
  std::string to_client;  // libmicrohttpd's output, not yet sealed and sent
  size_t to_client_off = 0;
  Io read_wants = Io::kWantRead;   // the last TLS Read's wait
  Io write_wants = Io::kOk;        // the last TLS Write's wait (kOk: none)
  bool client_eof = false;
  bool http_eof = false;
  bool more = false;  // stopped early with work left: poll without waiting

  ~Conn() {
    if (tls && open) tls->CloseNotify();
    tls.reset();
    if (tcp >= 0) ::close(tcp);
    if (plain >= 0) ::close(plain);
  }
};

namespace {

constexpr int kRounds = 32;  // reads or writes per connection per turn, so one busy tail cannot starve the rest
constexpr size_t kChunk = 16384;

}  // namespace

bool ConsoleTls::Pump(Conn& c) {
  c.more = false;
  if (!c.open) {
    Io r = c.tls->Handshake();
    if (r == Io::kWantRead || r == Io::kWantWrite) {
      c.handshake_wants = r;
      return std::chrono::steady_clock::now() < c.deadline;
    }
    if (r != Io::kOk) {
      FERRY_LOG_DEBUG("console: TLS handshake failed: %s", c.tls->error().c_str());
      return false;
    }
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
      FERRY_LOG_WARN("console: socketpair: %s", std::strerror(errno));
      return false;
    }
    c.plain = sv[0];
    http_.AddConnection(sv[1], reinterpret_cast<const sockaddr*>(&c.peer), c.peer_len);
    c.open = true;
  }
  // Client -> libmicrohttpd.
  int i = 0;
  for (; i < kRounds; ++i) {
    if (c.to_http_off < c.to_http.size()) {
      ssize_t n = ::send(c.plain, c.to_http.data() + c.to_http_off, c.to_http.size() - c.to_http_off, MSG_NOSIGNAL);
      if (n > 0) {
        c.to_http_off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return false;  // libmicrohttpd closed its end
    }
    c.to_http.clear();
    c.to_http_off = 0;
    if (c.client_eof) break;
    char buf[kChunk];
    size_t got = 0;
    Io r = c.tls->Read(buf, sizeof buf, &got);
    c.read_wants = r;
    if (r == Io::kOk) {
      c.to_http.assign(buf, got);
      continue;
    }
    if (r == Io::kWantRead || r == Io::kWantWrite) break;
    if (r == Io::kClosed) {
      c.client_eof = true;
      ::shutdown(c.plain, SHUT_WR);  // libmicrohttpd sees the end of the request stream
      break;
    }
    FERRY_LOG_DEBUG("console: TLS read: %s", c.tls->error().c_str());
    return false;
  }
  if (i == kRounds || (c.to_http.empty() && !c.client_eof && c.tls->has_buffered_plaintext())) c.more = true;
  // libmicrohttpd -> client.
  for (i = 0; i < kRounds; ++i) {
    if (c.to_client_off < c.to_client.size()) {
      size_t wrote = 0;
      Io r = c.tls->Write(c.to_client.data() + c.to_client_off, c.to_client.size() - c.to_client_off, &wrote);
      c.write_wants = r;
      if (r == Io::kOk) {
        c.to_client_off += wrote;
        continue;
      }
      if (r == Io::kWantRead || r == Io::kWantWrite) break;
      FERRY_LOG_DEBUG("console: TLS write: %s", c.tls->error().c_str());
      return false;
    }
    c.to_client.clear();
    c.to_client_off = 0;
    c.write_wants = Io::kOk;
    if (c.http_eof) return false;  // all of libmicrohttpd's reply is out: close (with close_notify)
    char buf[kChunk];
    ssize_t n = ::recv(c.plain, buf, sizeof buf, 0);
    if (n > 0) {
      c.to_client.assign(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      c.http_eof = true;
      return false;  // nothing of the reply is left (the buffer was empty)
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    return false;
  }
  if (i == kRounds) c.more = true;
  return true;
}

ConsoleTls::ConsoleTls(std::shared_ptr<TlsServerContext> ctx, HttpServer& http, size_t max_connections,
                       std::chrono::milliseconds handshake_timeout)
    : ctx_(std::move(ctx)), http_(http), max_connections_(max_connections), handshake_timeout_(handshake_timeout) {}

ConsoleTls::~ConsoleTls() {
  Stop();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Status ConsoleTls::Start(const std::string& listen) {
  auto bound = ListenTcp(listen, "");
  if (!bound) return tl::make_unexpected(bound.error());
  const int fd = bound->fd;
  port_ = bound->port;
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    ::close(fd);
    return IoError(std::string("eventfd: ") + std::strerror(errno));
  }
  listen_fd_ = fd;
  thread_ = std::thread([this] { Run(); });
  return Ok();
}

void ConsoleTls::Stop() {
  stop_.store(true);
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    ssize_t n = ::write(wake_fd_, &one, sizeof one);
    (void)n;
  }
  if (thread_.joinable()) thread_.join();
}

void ConsoleTls::Run() {
  std::vector<std::unique_ptr<Conn>> conns;
  std::vector<pollfd> fds;
  while (!stop_.load()) {
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    int timeout = 1000;
    auto now = std::chrono::steady_clock::now();
    for (auto& c : conns) {
      short tcp = 0, plain = 0;
      if (!c->open) {
        tcp = c->handshake_wants == Io::kWantWrite ? POLLOUT : POLLIN;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(c->deadline - now).count();
        timeout = std::min<int>(timeout, static_cast<int>(std::max<int64_t>(left, 0)));
      } else {
        if (c->to_http.empty() && !c->client_eof) tcp |= c->read_wants == Io::kWantWrite ? POLLOUT : POLLIN;
        if (c->write_wants == Io::kWantWrite || c->tls->has_pending_output()) tcp |= POLLOUT;
        if (c->write_wants == Io::kWantRead) tcp |= POLLIN;
        if (!c->to_http.empty()) plain |= POLLOUT;
        if (c->to_client.empty() && !c->http_eof) plain |= POLLIN;
      }
      if (c->more) timeout = 0;
      fds.push_back({c->tcp, tcp, 0});
      fds.push_back({c->plain, plain, 0});  // -1 before the handshake: poll ignores it
    }
    int n = ::poll(fds.data(), fds.size(), timeout);
    if (n < 0 && errno != EINTR) FERRY_LOG_WARN("console: TLS poll: %s", std::strerror(errno));
    if (stop_.load()) break;
    if (n > 0 && (fds[1].revents & POLLIN) != 0) {
      for (;;) {
        auto c = std::make_unique<Conn>();
        c->peer_len = sizeof c->peer;
        int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&c->peer), &c->peer_len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        if (conns.size() >= max_connections_) {
          ::close(fd);  // as libmicrohttpd does over its limit
          continue;
        }
        c->tcp = fd;
        c->tls = std::make_unique<TlsSession>(ctx_, fd);
        c->deadline = std::chrono::steady_clock::now() + handshake_timeout_;
        conns.push_back(std::move(c));
      }
    }
    // Every connection gets a turn (a handful at most: console.max_connections): simpler than mapping revents
    // back, and Pump() returns at once when nothing is ready.
    conns.erase(std::remove_if(conns.begin(), conns.end(), [&](std::unique_ptr<Conn>& c) { return !Pump(*c); }),
                conns.end());
  }
  conns.clear();
}

}  // namespace ferry
