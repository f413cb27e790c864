// A poll()-based HTTP/1.x responder for /metrics and /healthz. See ferry/http_server.h for the contract.
#include "ferry/http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>

#include "ferry/log.h"

namespace ferry {
namespace {

const char* Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, const Clock& clock) : options_(std::move(options)), clock_(clock) {}

HttpServer::~HttpServer() {
  for (auto& c : conns_) ::close(c.fd);
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void HttpServer::Route(const std::string& path, Handler handler) { routes_[path] = std::move(handler); }

void HttpServer::ServeMetrics(std::function<std::string()> render) {
  Route("/metrics", [render = std::move(render)]() {
    return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", render()};
  });
}

void HttpServer::ServeHealth(std::function<HealthStatus()> check) {
  Route("/healthz", [check = std::move(check)]() {
    HealthStatus h = check();
    std::string body = h.text.empty() ? (h.ok ? "ok" : "unhealthy") : h.text;
    if (body.empty() || body.back() != '\n') body += '\n';
    return HttpResponse{h.ok ? 200 : 503, "text/plain; charset=utf-8", body};
  });
}

Status HttpServer::Start() {
  const std::string& listen = options_.listen;
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size()) {
    return InvalidArgument("http: listen address \"" + listen + "\" is not host:port");
  }
  std::string host = listen.substr(0, colon);
  std::string port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) return InvalidArgument("http: listen address \"" + listen + "\": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);

  int fd = ::socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, res->ai_protocol);
  if (fd < 0) return IoError(std::string("http: socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
    int err = errno;
    ::close(fd);
    return IoError("http: cannot listen on " + listen + ": " + std::strerror(err));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    ::close(fd);
    return IoError(std::string("http: eventfd: ") + std::strerror(errno));
  }
  listen_fd_ = fd;
  return Ok();
}

void HttpServer::Stop() {
  stopped_.store(true);
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    ssize_t n = ::write(wake_fd_, &one, sizeof one);
    (void)n;
  }
}

void HttpServer::Run() {
  while (Step(std::chrono::milliseconds(1000))) {
  }
}

bool HttpServer::Step(std::chrono::milliseconds max_wait) {
  if (stopped_.load()) return false;
  std::vector<pollfd> fds;
  fds.push_back({wake_fd_, POLLIN, 0});
  fds.push_back({listen_fd_, POLLIN, 0});
  auto now = clock_.Steady();
  auto wait = max_wait;
  for (const auto& c : conns_) {
    fds.push_back({c.fd, static_cast<short>(c.state == Conn::kWriting ? POLLOUT : POLLIN), 0});
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(c.deadline - now);
    wait = std::max(std::chrono::milliseconds(0), std::min(wait, left));
  }
  int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::min<int64_t>(wait.count(), 1'000'000)));
  if (n < 0 && errno != EINTR) FERRY_LOG_WARN("http: poll: %s", std::strerror(errno));
  if (stopped_.load()) return false;
  if (n > 0) {
    if (fds[0].revents != 0) {
      uint64_t v;
      ssize_t r = ::read(wake_fd_, &v, sizeof v);
      (void)r;
    }
    // conns_ only grows in Accept() below, so fds[i + 2] still matches conns_[i] here.
    for (size_t i = 0; i < conns_.size(); ++i) {
      short re = fds[i + 2].revents;
      if (re == 0) continue;
      Conn& c = conns_[i];
      if (c.state == Conn::kWriting) {
        if (re & (POLLOUT | POLLERR | POLLHUP)) OnWritable(c);
      } else {
        if (re & (POLLIN | POLLERR | POLLHUP)) OnReadable(c);
      }
    }
    if (fds[1].revents & POLLIN) Accept();
  }
  now = clock_.Steady();
  for (auto& c : conns_) {
    if (!c.closed && now >= c.deadline) Close(c);
  }
  conns_.erase(std::remove_if(conns_.begin(), conns_.end(), [](const Conn& c) { return c.closed; }), conns_.end());
  return !stopped_.load();
}

void HttpServer::Accept() {
  while (true) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a transient error (EMFILE...): try again on the next Step
    if (conns_.size() >= options_.max_connections) {
      ::close(fd);
      continue;
    }
    Conn c;
    c.fd = fd;
    c.deadline = clock_.Steady() + options_.request_timeout;
    conns_.push_back(std::move(c));
  }
}

void HttpServer::Close(Conn& c) {
  if (c.closed) return;
  ::close(c.fd);
  c.closed = true;
}

void HttpServer::OnReadable(Conn& c) {
  char buf[2048];
  while (true) {
    ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      Close(c);
      return;
    }
    if (n == 0) {
      Close(c);  // the client went away (or finished after our response)
      return;
    }
    if (c.state == Conn::kDraining) continue;
    c.in.append(buf, static_cast<size_t>(n));
    size_t end = c.in.find("\r\n\r\n");
    if (end == std::string::npos) end = c.in.find("\n\n");
    if (end != std::string::npos && end <= options_.max_request_bytes) {
      Dispatch(c);
      return;
    }
    if (c.in.size() > options_.max_request_bytes) {
      Respond(c, 431, "text/plain; charset=utf-8", "request too large\n", false);
      return;
    }
  }
}

void HttpServer::Dispatch(Conn& c) {
  size_t eol = c.in.find('\n');
  std::string line = c.in.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
  if (sp2 == std::string::npos || line.find(' ', sp2 + 1) != std::string::npos) {
    Respond(c, 400, "text/plain; charset=utf-8", "bad request line\n", false);
    return;
  }
  std::string method = line.substr(0, sp1);
  std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string version = line.substr(sp2 + 1);
  bool head = method == "HEAD";
  if (version.rfind("HTTP/", 0) != 0) {
    Respond(c, 400, "text/plain; charset=utf-8", "bad request line\n", false);
    return;
  }
  if (version != "HTTP/1.0" && version != "HTTP/1.1") {
    Respond(c, 505, "text/plain; charset=utf-8", "HTTP/1.0 or HTTP/1.1 only\n", head);
    return;
  }
  if (method != "GET" && !head) {
    Respond(c, 405, "text/plain; charset=utf-8", "GET or HEAD only\n", false);
    return;
  }
  std::string path = target.substr(0, target.find('?'));
  auto it = routes_.find(path);
  if (it == routes_.end()) {
    Respond(c, 404, "text/plain; charset=utf-8", "not found\n", head);
    return;
  }
  HttpResponse r;
  try {
    r = it->second();
  } catch (const std::exception& e) {
    FERRY_LOG_WARN("http: handler for %s failed: %s", path.c_str(), e.what());
    r = HttpResponse{500, "text/plain; charset=utf-8", "internal error\n"};
  }
  Respond(c, r.status, r.content_type, r.body, head);
}

void HttpServer::Respond(Conn& c, int status, const std::string& content_type, const std::string& body,
                         bool head) {
  c.out = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) + "\r\nContent-Type: " + content_type +
          "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  if (status == 405) c.out += "Allow: GET, HEAD\r\n";
  c.out += "Connection: close\r\n\r\n";
  if (!head) c.out += body;
  c.written = 0;
  c.state = Conn::kWriting;
  c.in.clear();
  OnWritable(c);
}

void HttpServer::OnWritable(Conn& c) {
  while (c.written < c.out.size()) {
    ssize_t n = ::send(c.fd, c.out.data() + c.written, c.out.size() - c.written, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      Close(c);
      return;
    }
    c.written += static_cast<size_t>(n);
  }
  // Half-close and read until the client closes: closing with unread request bytes would send a RST that
  // can destroy the response before the client reads it. The deadline still bounds this.
  ::shutdown(c.fd, SHUT_WR);
  c.out.clear();
  c.state = Conn::kDraining;
}

}  // namespace ferry
