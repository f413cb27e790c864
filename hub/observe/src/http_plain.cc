// HttpServer's plain responder (HttpServerOptions::plain): the metrics endpoint without libmicrohttpd. See
// ferry/http_server.h for the contract and http_plain.h for the state; the request head is read by
// ParseHttpHead() (http_head.cc).
#include "http_plain.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "ferry/log.h"

namespace ferry {
namespace {

const std::string kTextPlain = "text/plain; charset=utf-8";

const char* Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace

HttpServer::Plain::~Plain() {
  for (auto& c : conns) Close(c);
  if (listen_fd >= 0) ::close(listen_fd);
}

bool HttpServer::Plain::Step(std::chrono::milliseconds max_wait) {
  std::vector<pollfd> fds;
  fds.reserve(conns.size() + 2);
  fds.push_back({server.wake_fd_, POLLIN, 0});
  auto now = server.clock_.Steady();
  // Out of descriptors, the listening socket stays readable and accept() keeps failing: it is left out of the
  // poll for a while instead of spinning.
  const bool accepting = now >= accept_paused_until;
  fds.push_back({accepting ? listen_fd : -1, POLLIN, 0});
  auto wait = accepting ? max_wait : std::min(max_wait, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                            accept_paused_until - now) + std::chrono::milliseconds(1));
  for (const auto& c : conns) {
    fds.push_back({c.fd, static_cast<short>(c.state == Conn::kWriting ? POLLOUT : POLLIN), 0});
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(c.deadline - now);
    wait = std::max(std::chrono::milliseconds(0), std::min(wait, left));
  }
  int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::min<int64_t>(wait.count(), 1'000'000)));
  if (n < 0 && errno != EINTR) FERRY_LOG_WARN("http: poll: %s", std::strerror(errno));
  if (server.stopped_.load()) return false;
  if (n > 0) {
    if (fds[0].revents != 0) {
      uint64_t v;
      ssize_t r = ::read(server.wake_fd_, &v, sizeof v);
      (void)r;
    }
    // conns only grows in Accept() below, so fds[i + 2] still matches conns[i] here.
    for (size_t i = 0; i < conns.size(); ++i) {
      const short re = fds[i + 2].revents;
      if (re == 0) continue;
      Conn& c = conns[i];
      if (c.state == Conn::kWriting) {
        if (re & (POLLOUT | POLLERR | POLLHUP)) OnWritable(c);
      } else if (re & (POLLIN | POLLERR | POLLHUP)) {
        OnReadable(c);
      }
    }
    if (fds[1].revents & POLLIN) Accept();
  }
  now = server.clock_.Steady();
  for (auto& c : conns) {
    if (!c.closed && now >= c.deadline) Close(c);
  }
  conns.erase(std::remove_if(conns.begin(), conns.end(), [](const Conn& c) { return c.closed; }), conns.end());
  return !server.stopped_.load();
}

void HttpServer::Plain::Accept() {
  while (true) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        if (!accept_failing)  // once per episode
          FERRY_LOG_WARN("http: accept: %s; new connections wait until it clears", std::strerror(errno));
        accept_failing = true;
        accept_paused_until = server.clock_.Steady() + std::chrono::milliseconds(100);
      }
      return;  // EAGAIN, or a transient error: tried again at a later Step
    }
    if (accept_failing) FERRY_LOG_INFO("http: accepting connections again");
    accept_failing = false;
    if (conns.size() >= server.options_.max_connections) {
      ::close(fd);
      continue;
    }
    Conn c;
    c.fd = fd;
    c.deadline = server.clock_.Steady() + server.options_.request_timeout;
    conns.push_back(std::move(c));
  }
}

void HttpServer::Plain::Close(Conn& c) {
  if (c.closed) return;
  ::close(c.fd);
  c.closed = true;
}

void HttpServer::Plain::OnReadable(Conn& c) {
  char buf[2048];
  const size_t max = server.options_.max_request_bytes;
  while (true) {
    ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      Close(c);
      return;
    }
    if (n == 0) {
      Close(c);  // the client went away (or is done reading our reply)
      return;
    }
    if (c.state == Conn::kDraining) continue;
    const size_t from = c.in.size() >= 3 ? c.in.size() - 3 : 0;  // a "\r\n\r\n" may straddle two reads
    c.in.append(buf, static_cast<size_t>(n));
    size_t end = c.in.find("\r\n\r\n", from);
    size_t lf = c.in.find("\n\n", from);
    if (lf != std::string::npos && (end == std::string::npos || lf < end)) end = lf;
    if (end != std::string::npos && end <= max) {
      Dispatch(c, std::string_view(c.in).substr(0, end));
      return;
    }
    if (c.in.size() > max) {
      Respond(c, HttpResponse{431, kTextPlain, "request too large\n", {}, nullptr}, false);
      return;
    }
  }
}

void HttpServer::Plain::Dispatch(Conn& c, std::string_view head_bytes) {
  HttpHead h = ParseHttpHead(head_bytes);
  const bool head = h.request.method == "HEAD";
  switch (h.status) {
    case 0:
      break;
    case 405: {
      HttpResponse r{405, kTextPlain, "GET or HEAD only\n", {}, nullptr};
      r.headers.emplace_back("Allow", "GET, HEAD");
      Respond(c, r, false);
      return;
    }
    case 505:
      Respond(c, HttpResponse{505, kTextPlain, "HTTP/1.0 or HTTP/1.1 only\n", {}, nullptr}, false);
      return;
    default:
      Respond(c, HttpResponse{h.status, kTextPlain, "bad request\n", {}, nullptr}, false);
      return;
  }
  auto it = server.routes_.find(h.request.path);
  if (it == server.routes_.end()) {
    Respond(c, HttpResponse{404, kTextPlain, "not found\n", {}, nullptr}, head);
    return;
  }
  Respond(c, server.Answer(it->second, h.request), head);
}

void HttpServer::Plain::Respond(Conn& c, const HttpResponse& r, bool head) {
  c.out = "HTTP/1.1 " + std::to_string(r.status) + " " + Reason(r.status) + "\r\nContent-Type: " + r.content_type +
          "\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\n";
  for (const auto& [k, v] : r.headers) c.out += k + ": " + v + "\r\n";
  c.out += "Connection: close\r\n\r\n";
  if (!head) c.out += r.body;
  c.written = 0;
  c.state = Conn::kWriting;
  c.in.clear();
  c.in.shrink_to_fit();
  OnWritable(c);
}

void HttpServer::Plain::OnWritable(Conn& c) {
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
  // Half-close and read until the client closes: closing with unread request bytes would send a RST that can
  // destroy the reply before the client reads it. The deadline still bounds this.
  ::shutdown(c.fd, SHUT_WR);
  c.out.clear();
  c.out.shrink_to_fit();
  c.state = Conn::kDraining;
}

size_t HttpServer::open_connections() const { return plain_ != nullptr ? plain_->conns.size() : conns_.size(); }

}  // namespace ferry
