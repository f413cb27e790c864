// The ingest listener's event loop: sockets, connections, and acknowledgements after commit. The packet rules
// (what a CONNECT or PUBLISH may hold) are the codec's, in hub/mqtt; routing is IngestRouter's.
#include "ferry/ingest_listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <deque>
#include <optional>

#include "ferry/log.h"
#include "ferry/mqtt/packet.h"

namespace ferry {
namespace {

namespace m = ferry::mqtt;

constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kMaxReadPerRound = 256 * 1024;  // per connection per round: one device cannot starve others
constexpr size_t kMaxOutBuffer = 1 << 20;         // a peer that never reads its acks is closed
constexpr uint16_t kTopicAliasMaximum = 32;

std::string ErrnoText(int err) { return std::strerror(err); }

std::string PeerName(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

}  // namespace

// One device connection. Acknowledgement slots (`acks`) are numbered from `first_entry`; a slot is resolved
// by its commit (or at once for drops and committed duplicates) and PUBACKs leave strictly in slot order.
struct IngestListener::Connection {
  explicit Connection(uint32_t max_packet) : reader(max_packet) {}
  struct Ack {
    uint16_t packet_id;
    bool done = false;
    bool ok = false;
    ErrorCode code = ErrorCode::kIoError;
  };
  uint64_t id = 0;
  int fd = -1;
  std::string peer;
  m::FrameReader reader;
  bool connected = false;  // CONNECT accepted
  bool closed = false;
  m::Version version = m::Version::kV311;
  std::string client_id;
  std::string username;
  std::chrono::seconds keep_alive{0};
  SteadyTime accepted_at{};
  SteadyTime last_rx{};
  SteadyTime partial_since{};  // when a partly received packet started waiting; epoch when none
  std::deque<Ack> acks;
  uint64_t first_entry = 1;  // slot number of acks.front()
  uint32_t window = 0;
  uint32_t unacked_failed = 0;  // 3.1.1: messages we will never acknowledge on this connection
  bool reading = true;          // EPOLLIN registered
  bool writing = false;         // EPOLLOUT registered
  std::string out;
  size_t out_off = 0;
  std::vector<std::string> aliases;  // 5.0 topic aliases, 1-based
  std::unique_ptr<TlsSession> tls;   // listen.tls.enabled
  bool handshaking = false;
  bool tls_wants_write = false;      // a TLS read or handshake waits for the socket to take output
  std::string cert_cn;               // the verified client certificate's CN
};

IngestListener::IngestListener(const Config& config, IngestRouter router, IngestSink& sink, MetricsRegistry& metrics,
                               const Clock& clock)
    : config_(config), listen_(config_.ingest.listen), router_(std::move(router)), sink_(sink), metrics_(metrics),
      clock_(clock), accounting_(metrics, "ingest listener") {
  accepted_ = &DeclaredCounter(metrics_, "ferry_ingest_listener_connections_total");
  messages_ = &DeclaredCounter(metrics_, "ferry_ingest_messages_total");
  refused_full_ = &DeclaredCounter(metrics_, "ferry_ingest_refused_total", {{"reason", "quota_exceeded"}});
  refused_error_ = &DeclaredCounter(metrics_, "ferry_ingest_refused_total", {{"reason", "unspecified_error"}});
  connections_gauge_ = &DeclaredGauge(metrics_, "ferry_ingest_listener_connections");
  link_up_ = &DeclaredGauge(metrics_, "ferry_ingest_link_up");
  if (const char* crash = std::getenv("FERRY_FAULT_CRASH_PAYLOAD")) crash_on_payload_ = crash;
}

IngestListener::~IngestListener() {
  Stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

Status IngestListener::Start() {
  auto pw = PasswordFile::Load(listen_.password_file);
  if (!pw) return tl::make_unexpected(pw.error());
  passwords_ = std::move(*pw);
  if (listen_.tls_enabled) {
    TlsServerOptions to;
    to.cert_file = listen_.tls_cert_file;
    to.key_file = listen_.tls_key_file;
    to.ca_file = listen_.tls_ca_file;
    to.require_client_cert = listen_.tls_require_client_cert;
    auto ctx = TlsServerContext::Create(to);
    if (!ctx) return MakeError(ctx.error().code, "ingest.listen.tls: " + ctx.error().message);
    tls_ = std::move(*ctx);
  }

  const std::string& addr = listen_.address;
  auto colon = addr.rfind(':');
  if (colon == std::string::npos) return InvalidArgument("ingest.listen.address \"" + addr + "\": must be host:port");
  std::string host = addr.substr(0, colon), port = addr.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int gai = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (gai != 0) return InvalidArgument("ingest.listen.address \"" + addr + "\": " + gai_strerror(gai));
  int err = 0;
  for (addrinfo* ai = res; ai && listen_fd_ < 0; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, 128) != 0) {
      err = errno;
      ::close(fd);
      continue;
    }
    listen_fd_ = fd;
  }
  freeaddrinfo(res);
  if (listen_fd_ < 0) return IoError("ingest.listen.address " + addr + ": " + ErrnoText(err));
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len);
  port_ = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                   : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);

  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) return IoError("ingest listener: epoll/eventfd: " + ErrnoText(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;  // the listening socket
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  ev.data.u64 = UINT64_MAX;  // the wake-up eventfd
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  link_up_->Set(1);
  FERRY_LOG_INFO("ingest: listening on %s (port %u)%s%s", addr.c_str(), static_cast<unsigned>(port_),
                 tls_ ? ", TLS" : "", passwords_.enabled() ? ", logins required" : "");
  return Ok();
}

void IngestListener::Run() {
  thread_ = std::thread([this] {
    if (guard_) guard_->BindThread(guard_slot_);
    while (!stopping_.load()) Step(std::chrono::milliseconds(500));
  });
}

void IngestListener::Stop() {
  if (stopping_.exchange(true)) return;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    ssize_t w = ::write(wake_fd_, &one, sizeof one);
    (void)w;
  }
  if (thread_.joinable()) thread_.join();
  for (auto& [id, c] : conns_)
    if (!c->closed) Close(*c, "shutdown", static_cast<int>(m::ReasonCode::kServerShuttingDown));
  CloseRemoved();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
  link_up_->Set(0);
}

void IngestListener::Reconfigure(IngestRouter router) {
  std::lock_guard<std::mutex> lock(router_mu_);
  router_ = std::move(router);
}

void IngestListener::Step(std::chrono::milliseconds max_wait) {
  if (epoll_fd_ < 0) return;
  epoll_event events[64];
  int n = ::epoll_wait(epoll_fd_, events, 64, ready_.empty() ? static_cast<int>(max_wait.count()) : 0);
  for (int i = 0; i < n; ++i) {
    uint64_t key = events[i].data.u64;
    if (key == 0) {
      Accept();
      continue;
    }
    if (key == UINT64_MAX) {
      uint64_t v;
      while (::read(wake_fd_, &v, sizeof v) > 0) {
      }
      continue;
    }
    auto it = conns_.find(key);
    if (it == conns_.end() || it->second->closed) continue;
    Connection& c = *it->second;
    if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) OnReadable(c);
    if (!c.closed && (events[i].events & EPOLLOUT)) OnWritable(c);
  }
  // TLS plaintext already decrypted, or left behind by the read budget: no readiness event will come for it.
  std::vector<uint64_t> ready;
  ready.swap(ready_);
  for (uint64_t id : ready) {
    auto it = conns_.find(id);
    if (it != conns_.end() && !it->second->closed) OnReadable(*it->second);
  }
  DrainCompletions();
  if (window_filled_) HintCommit();
  CheckTimers();
  CloseRemoved();
}

// The writer lingers (commit.max_delay) to grow a commit. When every device that has events waiting for their
// PUBACK has filled its window, nothing more can arrive before this commit: lingering only delays them all
// (with ferry-sim's 4 x 512 window and the 100 ms default, every commit waited the full delay, which capped a
// 15 ms-fsync disk at ~15,700 events/s: bench/README.md). Devices sending slowly keep the linger as it was.
void IngestListener::HintCommit() {
  window_filled_ = false;
  bool waiting = false;
  for (const auto& [id, c] : conns_) {
    if (c->closed || c->handshaking || c->acks.empty()) continue;
    if (c->acks.size() + c->unacked_failed < c->window) return;
    waiting = true;
  }
  if (waiting) {
    ++commit_hints_;
    sink_.CommitSoon();
  }
}

// ---- connections -------------------------------------------------------------------------------------------

void IngestListener::Accept() {
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
        FERRY_LOG_WARN("ingest: accept: %s", ErrnoText(errno).c_str());
      return;
    }
    accepted_->Inc();
    if (conns_.size() >= static_cast<size_t>(listen_.max_connections)) {
      // Before reading anything: nothing to answer in, and a flood must not cost more than an accept.
      DeclaredCounter(metrics_, "ferry_ingest_listener_closed_total", {{"reason", "connection_limit"}}).Inc();
      ::close(fd);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto c = std::make_unique<Connection>(static_cast<uint32_t>(std::min<uint64_t>(listen_.max_packet_size, UINT32_MAX)));
    c->id = ++next_conn_id_;
    c->fd = fd;
    c->peer = PeerName(ss);
    c->accepted_at = c->last_rx = clock_.Steady();
    c->window = static_cast<uint32_t>(listen_.receive_maximum);
    if (tls_) {
      c->tls = std::make_unique<TlsSession>(tls_, fd);
      c->handshaking = true;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = c->id;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    conns_.emplace(c->id, std::move(c));
    connection_count_.store(conns_.size());
    connections_gauge_->Set(static_cast<int64_t>(conns_.size()));
  }
}

void IngestListener::ParseBuffered(Connection& c) {
  while (!c.closed && c.reading) {
    if (!HandleFrame(c)) break;
  }
  if (c.closed) return;
  if (c.reader.buffered() > 0) {
    if (c.partial_since == SteadyTime{}) c.partial_since = clock_.Steady();
  } else {
    c.partial_since = SteadyTime{};
  }
}

bool IngestListener::Handshake(Connection& c) {
  if (!c.handshaking) return true;
  TlsSession::Io r = c.tls->Handshake();
  c.tls_wants_write = r == TlsSession::Io::kWantWrite;
  if (r == TlsSession::Io::kOk) {
    c.handshaking = false;
    c.cert_cn = c.tls->peer_common_name();
    return true;
  }
  if (r == TlsSession::Io::kError || r == TlsSession::Io::kClosed) {
    FERRY_LOG_DEBUG("ingest: TLS handshake with %s failed: %s", c.peer.c_str(), c.tls->error().c_str());
    Close(c, r == TlsSession::Io::kClosed ? "eof_before_connect" : c.tls->error_label());
    return false;
  }
  UpdateInterest(c);
  return false;
}

long IngestListener::ReadSome(Connection& c, char* buf, size_t cap) {
  if (!c.tls) {
    for (;;) {
      ssize_t r = ::recv(c.fd, buf, cap, 0);
      if (r >= 0) return r;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
      Close(c, "read_error");
      return -2;
    }
  }
  size_t got = 0;
  TlsSession::Io r = c.tls->Read(buf, cap, &got);
  c.tls_wants_write = r == TlsSession::Io::kWantWrite;
  switch (r) {
    case TlsSession::Io::kOk: return static_cast<long>(got);
    case TlsSession::Io::kWantRead:
    case TlsSession::Io::kWantWrite: return -1;
    case TlsSession::Io::kClosed: return 0;
    case TlsSession::Io::kError: break;
  }
  FERRY_LOG_DEBUG("ingest: TLS read from %s: %s", c.peer.c_str(), c.tls->error().c_str());
  Close(c, c.tls->error_label());
  return -2;
}

void IngestListener::OnReadable(Connection& c) {
  if (!Handshake(c)) return;
  size_t total = 0;
  while (!c.closed && c.reading && total < kMaxReadPerRound) {
    auto [buf, cap] = c.reader.WritableSpan(kReadChunk);
    long r = ReadSome(c, buf, cap);
    if (r == -2) return;
    if (r < 0) break;
    if (r == 0) {
      Close(c, c.connected ? "eof" : "eof_before_connect");
      return;
    }
    c.reader.Commit(static_cast<size_t>(r));
    total += static_cast<size_t>(r);
    c.last_rx = clock_.Steady();
    ParseBuffered(c);
  }
  if (c.closed) return;
  // Decrypted bytes wait inside the TLS session, or the budget ran out: come back without waiting for epoll.
  if (c.reading && (total >= kMaxReadPerRound || (c.tls && c.tls->has_buffered_plaintext()))) ready_.push_back(c.id);
  Flush(c);
}

void IngestListener::OnWritable(Connection& c) {
  if (c.handshaking || c.tls_wants_write) {
    OnReadable(c);  // the handshake or a TLS read waited for the socket to take output
    if (c.closed) return;
  }
  Flush(c);
}

void IngestListener::Flush(Connection& c) {
  if (c.handshaking) return;
  while (c.out_off < c.out.size()) {
    if (c.tls) {
      // Retried from the same first byte after kWantWrite, as TlsSession::Write requires.
      size_t wrote = 0;
      TlsSession::Io r = c.tls->Write(c.out.data() + c.out_off, c.out.size() - c.out_off, &wrote);
      if (r == TlsSession::Io::kOk) {
        c.out_off += wrote;
        continue;
      }
      if (r == TlsSession::Io::kWantWrite || r == TlsSession::Io::kWantRead) break;
      Close(c, r == TlsSession::Io::kClosed ? "eof" : c.tls->error_label());
      return;
    }
    ssize_t w = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      Close(c, "write_error");
      return;
    }
    c.out_off += static_cast<size_t>(w);
  }
  if (c.out_off == c.out.size()) {
    c.out.clear();
    c.out_off = 0;
  } else if (c.out.size() - c.out_off > kMaxOutBuffer) {
    Close(c, "slow_reader");
    return;
  }
  UpdateInterest(c);
}

void IngestListener::UpdateInterest(Connection& c) {
  if (c.closed) return;
  // Reading pauses while the window is full: the device's own send window (and TCP) then holds it back.
  bool want_read = c.handshaking || c.acks.size() + c.unacked_failed < c.window;
  bool want_write = c.out_off < c.out.size() || c.tls_wants_write || (c.tls && c.tls->has_pending_output());
  if (want_read == c.reading && want_write == c.writing) return;
  if (!want_read && c.reading && !c.handshaking) window_filled_ = true;
  c.reading = want_read;
  c.writing = want_write;
  epoll_event ev{};
  ev.events = (want_read ? uint32_t{EPOLLIN} : 0u) | (want_write ? uint32_t{EPOLLOUT} : 0u);
  ev.data.u64 = c.id;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void IngestListener::Close(Connection& c, const char* reason, int v5_reason) {
  if (c.closed) return;
  if (v5_reason >= 0 && c.connected && c.version == m::Version::kV5) {
    m::EncodeDisconnect(c.out, c.version, static_cast<m::ReasonCode>(v5_reason));
    // One best-effort write of what is pending (acks, the DISCONNECT); the socket closes either way.
    if (c.tls) {
      size_t wrote = 0;
      (void)c.tls->Write(c.out.data() + c.out_off, c.out.size() - c.out_off, &wrote);
    } else {
      ssize_t w = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
      (void)w;
    }
  }
  if (c.tls) {
    if (!c.handshaking) c.tls->CloseNotify();
    c.tls.reset();
  }
  c.closed = true;
  // Counted before the close: whoever sees the connection end sees it counted.
  Counter*& counter = closed_by_reason_[reason];
  if (!counter) counter = &DeclaredCounter(metrics_, "ferry_ingest_listener_closed_total", {{"reason", reason}});
  counter->Inc();
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
  ::close(c.fd);
  c.fd = -1;
  auto it = by_client_id_.find(c.client_id);
  if (c.connected && it != by_client_id_.end() && it->second == c.id) by_client_id_.erase(it);
  FERRY_LOG_DEBUG("ingest: %s (%s) closed: %s", c.peer.c_str(), c.client_id.c_str(), reason);
  closed_.push_back(c.id);
}

void IngestListener::CloseRemoved() {
  for (uint64_t id : closed_) conns_.erase(id);
  closed_.clear();
  connection_count_.store(conns_.size());
  connections_gauge_->Set(static_cast<int64_t>(conns_.size()));
}

void IngestListener::CheckTimers() {
  auto now = clock_.Steady();
  if (now < next_timer_scan_) return;
  next_timer_scan_ = now + std::chrono::milliseconds(250);
  for (auto& [id, cp] : conns_) {
    Connection& c = *cp;
    if (c.closed) continue;
    if (!c.connected && now - c.accepted_at > listen_.connect_timeout) {
      Close(c, "connect_timeout");
    } else if (c.partial_since != SteadyTime{} && now - c.partial_since > listen_.connect_timeout) {
      Close(c, "slow_packet", static_cast<int>(m::ReasonCode::kMaximumConnectTime));
    } else if (c.connected && now - c.last_rx > c.keep_alive * 3 / 2) {
      Close(c, "keepalive_timeout", static_cast<int>(m::ReasonCode::kKeepAliveTimeout));
    }
  }
}

// ---- packets -----------------------------------------------------------------------------------------------

bool IngestListener::HandleFrame(Connection& c) {
  auto next = c.reader.Next();
  if (!next) {
    Close(c, m::ReasonCodeName(next.error().code), static_cast<int>(next.error().code));
    return false;
  }
  if (!*next) return false;  // need more bytes
  const m::Frame& f = **next;
  if (!c.connected) {
    if (f.type != m::PacketType::kConnect) {
      Close(c, "protocol_error");
      return false;
    }
    return HandleConnect(c, &f);
  }
  switch (f.type) {
    case m::PacketType::kPublish:
      return HandlePublish(c, &f);
    case m::PacketType::kPingreq:
      if (!m::DecodePingreq(f)) {
        Close(c, "malformed_packet", static_cast<int>(m::ReasonCode::kMalformedPacket));
        return false;
      }
      m::EncodePingresp(c.out);
      return true;
    case m::PacketType::kSubscribe: {
      auto s = m::DecodeSubscribe(f, c.version);
      if (!s) {
        Close(c, m::ReasonCodeName(s.error().code), static_cast<int>(s.error().code));
        return false;
      }
      // An ingest endpoint: nothing to subscribe to. 5.0 says why; 3.1.1 has only Failure.
      m::EncodeSuback(c.out, c.version, s->packet_id, s->filter_count, m::ReasonCode::kNotAuthorized);
      DeclaredCounter(metrics_, "ferry_ingest_listener_refused_total", {{"reason", "subscribe"}}).Inc();
      return true;
    }
    case m::PacketType::kUnsubscribe: {
      auto u = m::DecodeUnsubscribe(f, c.version);
      if (!u) {
        Close(c, m::ReasonCodeName(u.error().code), static_cast<int>(u.error().code));
        return false;
      }
      m::EncodeUnsuback(c.out, c.version, u->packet_id, u->filter_count, m::ReasonCode::kNoSubscriptionExisted);
      return true;
    }
    case m::PacketType::kDisconnect: {
      auto d = m::DecodeDisconnect(f, c.version);
      Close(c, d ? "client_disconnect" : m::ReasonCodeName(d.error().code));
      return false;
    }
    case m::PacketType::kConnect:
      Close(c, "protocol_error", static_cast<int>(m::ReasonCode::kProtocolError));  // a second CONNECT
      return false;
    default:
      // PUBACK/PUBREC/PUBREL/PUBCOMP (we never publish to devices), AUTH (no enhanced authentication), and
      // server-to-client types.
      Close(c, "protocol_error", static_cast<int>(m::ReasonCode::kProtocolError));
      return false;
  }
}

bool IngestListener::HandleConnect(Connection& c, const void* frame) {
  const m::Frame& f = *static_cast<const m::Frame*>(frame);
  auto conn = m::DecodeConnect(f);
  if (!conn) {
    const m::DecodeError& e = conn.error();
    if (!e.version) {
      m::EncodeConnack(c.out, m::Version::kV311, false, m::v311::kUnacceptableProtocolVersion);
    } else if (*e.version == m::Version::kV5) {
      m::EncodeConnack(c.out, m::Version::kV5, false, static_cast<uint8_t>(e.code));
    } else if (auto code = m::V311ConnackCodeFor(e.code)) {
      m::EncodeConnack(c.out, m::Version::kV311, false, *code);
    }
    Flush(c);
    Close(c, m::ReasonCodeName(e.code));
    return false;
  }
  c.version = conn->version;
  const bool v5 = c.version == m::Version::kV5;
  auto refuse = [&](m::ReasonCode v5_code, uint8_t v311_code, const char* reason) {
    m::EncodeConnack(c.out, c.version, false, v5 ? static_cast<uint8_t>(v5_code) : v311_code);
    Flush(c);
    Close(c, reason);
    return false;
  };
  if (passwords_.enabled()) {
    if (!conn->username || !conn->password || !passwords_.Check(*conn->username, *conn->password))
      return refuse(m::ReasonCode::kBadUserNameOrPassword, m::v311::kBadUserNameOrPassword, "bad_credentials");
  }
  if (conn->will_flag && conn->will_qos > 1)
    return refuse(m::ReasonCode::kQosNotSupported, m::v311::kNotAuthorized, "will_qos_not_supported");

  m::ConnackProperties props;
  props.receive_maximum = static_cast<uint16_t>(c.window);
  props.maximum_packet_size = c.reader.max_packet_size();
  props.topic_alias_maximum = kTopicAliasMaximum;
  std::string assigned;
  c.client_id = std::string(conn->client_id);
  if (c.client_id.empty()) {
    assigned = "ferry-auto-" + std::to_string(c.id);
    c.client_id = assigned;
    if (v5) props.assigned_client_identifier = assigned;
  }
  if (conn->username) c.username = std::string(*conn->username);
  const auto max_ka = std::chrono::duration_cast<std::chrono::seconds>(listen_.max_keepalive);
  c.keep_alive = std::chrono::seconds(conn->keep_alive);
  if (c.keep_alive.count() == 0 || c.keep_alive > max_ka) {
    c.keep_alive = max_ka;
    if (v5) props.server_keep_alive = static_cast<uint16_t>(std::min<int64_t>(max_ka.count(), 65535));
  }
  if (v5 && conn->session_expiry != 0) props.session_expiry = 0;  // no sessions kept: nothing is queued for devices
  c.aliases.assign(kTopicAliasMaximum, std::string());

  // Session takeover (MQTT 3.1.4-3): the newest connection of a client id wins.
  auto it = by_client_id_.find(c.client_id);
  if (it != by_client_id_.end()) {
    auto old = conns_.find(it->second);
    if (old != conns_.end() && !old->second->closed)
      Close(*old->second, "session_taken_over", static_cast<int>(m::ReasonCode::kSessionTakenOver));
  }
  by_client_id_[c.client_id] = c.id;
  c.connected = true;
  m::EncodeConnack(c.out, c.version, false, 0, props);
  return true;
}

uint64_t IngestListener::NewEntry(Connection& c, uint16_t packet_id) {
  c.acks.push_back(Connection::Ack{packet_id});
  return c.first_entry + c.acks.size() - 1;
}

bool IngestListener::HandlePublish(Connection& c, const void* frame) {
  const m::Frame& f = *static_cast<const m::Frame*>(frame);
  auto p = m::DecodePublish(f, c.version);
  if (!p) {
    Close(c, m::ReasonCodeName(p.error().code), static_cast<int>(p.error().code));
    return false;
  }
  const bool v5 = c.version == m::Version::kV5;
  if (p->qos > 1) {
    Close(c, "qos_not_supported", static_cast<int>(m::ReasonCode::kQosNotSupported));
    return false;
  }
  if (p->retain && v5) {  // CONNACK said Retain Available 0 (5.0 3.3.1-9 ... a protocol error)
    Close(c, "retain_not_supported", static_cast<int>(m::ReasonCode::kRetainNotSupported));
    return false;
  }
  std::string_view topic = p->topic;
  if (p->topic_alias) {
    if (*p->topic_alias > kTopicAliasMaximum) {
      Close(c, "topic_alias_invalid", static_cast<int>(m::ReasonCode::kTopicAliasInvalid));
      return false;
    }
    std::string& slot = c.aliases[*p->topic_alias - 1];
    if (topic.empty()) {
      if (slot.empty()) {
        Close(c, "topic_alias_invalid", static_cast<int>(m::ReasonCode::kProtocolError));
        return false;
      }
      topic = slot;
    } else {
      slot.assign(topic);
    }
  }
  messages_->Inc();

  InboundMessage in;
  in.topic = topic;
  in.payload = p->payload;
  in.content_type = p->content_type;
  in.redelivered = p->dup;
  for (const auto& [k, v] : p->user_properties) in.user_properties.emplace_back(std::string(k), std::string(v));
  RouteDecision d = accounting_.Route(router_, router_mu_, in, clock_.Now(), guard_, guard_slot_, crash_on_payload_);
  uint64_t entry = p->qos == 1 ? NewEntry(c, p->packet_id) : 0;
  if (d.outcome == RouteOutcome::kStore && listen_.topic_must_match_client && d.event.subject != Identity(c)) {
    DeclaredCounter(metrics_, "ferry_ingest_listener_refused_total", {{"reason", "not_authorized"}}).Inc();
    FERRY_LOG_DEBUG("ingest: %s may not publish for subject %s", Identity(c).c_str(), d.event.subject.c_str());
    if (entry == 0) return true;
    if (!v5) {
      Close(c, "not_authorized");
      return false;
    }
    // The PUBACK carries 0x87; resolved with the slots before it, in order.
    Connection::Ack& a = c.acks[entry - c.first_entry];
    a.done = true;
    a.ok = false;
    a.code = ErrorCode::kInvalidArgument;
    SendReadyAcks(c);
    return true;
  }
  Store(c, std::move(d), p->qos, entry);
  UpdateInterest(c);
  return true;
}

std::string IngestListener::Identity(const Connection& c) const {
  if (passwords_.enabled()) return c.username;
  if (!c.cert_cn.empty()) return c.cert_cn;
  return c.client_id;
}

void IngestListener::Store(Connection& c, RouteDecision d, uint8_t qos, uint64_t entry) {
  accounting_.Account(d);
  if (d.outcome == RouteOutcome::kDrop) {  // nothing to keep it in: acknowledged so the device stops re-sending
    if (entry) Resolve(c.id, entry, true, ErrorCode::kIoError);
    return;
  }
  if (d.outcome == RouteOutcome::kDuplicate) {
    std::string key = d.stream + '\x1f' + d.event.id;
    auto it = pending_ids_.find(key);
    if (it != pending_ids_.end()) {
      if (entry) it->second.push_back(Waiter{c.id, entry});  // acknowledged with the first copy's outcome
    } else if (entry) {
      Resolve(c.id, entry, true, ErrorCode::kIoError);  // the first copy is committed
    }
    return;
  }
  Completion done;
  done.conn_id = c.id;
  done.entry = entry;
  if (d.outcome == RouteOutcome::kStore && !d.event.id.empty()) {
    done.dedupe = d.stream + '\x1f' + d.event.id;
    done.stream = d.stream;
    done.id = d.event.id;
    pending_ids_[done.dedupe];  // from now on, copies wait for this one
  }
  std::string stream = d.stream;
  sink_.AppendThen(stream, std::move(d.event), [this, done = std::move(done)](const Result<Seq>& r) mutable {
    done.ok = r.has_value();
    done.code = r ? ErrorCode::kIoError : r.error().code;
    PostCompletion(std::move(done));
  });
}

void IngestListener::PostCompletion(Completion c) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    was_empty = done_.empty();
    done_.push_back(std::move(c));
  }
  if (was_empty && wake_fd_ >= 0) {
    uint64_t one = 1;
    ssize_t w = ::write(wake_fd_, &one, sizeof one);
    (void)w;
  }
}

void IngestListener::DrainCompletions() {
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    draining_.swap(done_);
  }
  for (Completion& d : draining_) {
    if (!d.ok) (d.code == ErrorCode::kFull ? refused_full_ : refused_error_)->Inc();
    if (d.entry) Resolve(d.conn_id, d.entry, d.ok, d.code);
    if (d.dedupe.empty()) continue;
    auto it = pending_ids_.find(d.dedupe);
    if (it != pending_ids_.end()) {
      for (const Waiter& w : it->second) Resolve(w.conn_id, w.entry, d.ok, d.code);
      pending_ids_.erase(it);
    }
    if (!d.ok) {
      std::lock_guard<std::mutex> lock(router_mu_);
      router_.ForgetId(d.stream, d.id);
    }
  }
  draining_.clear();
  for (uint64_t id : touched_) {
    auto it = conns_.find(id);
    if (it == conns_.end()) continue;
    Connection* c = it->second.get();
    if (c->closed) continue;
    // Packets read before the window filled wait in the reader's buffer: the socket may have nothing more
    // to say, so no readiness event would bring them back.
    if (c->reading && c->reader.buffered() > 0) ParseBuffered(*c);
    if (!c->closed && c->reading && c->tls && c->tls->has_buffered_plaintext()) ready_.push_back(c->id);
    if (!c->closed && c->out_off < c->out.size()) Flush(*c);
  }
  touched_.clear();
}

void IngestListener::Resolve(uint64_t conn_id, uint64_t entry, bool ok, ErrorCode code) {
  auto it = conns_.find(conn_id);
  if (it == conns_.end() || it->second->closed) return;  // gone: the device re-sends, ids deduplicate
  Connection& c = *it->second;
  if (entry < c.first_entry || entry - c.first_entry >= c.acks.size()) return;
  touched_.push_back(conn_id);
  Connection::Ack& a = c.acks[entry - c.first_entry];
  a.done = true;
  a.ok = ok;
  a.code = code;
  SendReadyAcks(c);
}

void IngestListener::SendReadyAcks(Connection& c) {
  const bool v5 = c.version == m::Version::kV5;
  while (!c.acks.empty() && c.acks.front().done) {
    const Connection::Ack& a = c.acks.front();
    if (a.ok) {
      m::EncodePuback(c.out, c.version, a.packet_id);
    } else if (v5) {
      m::ReasonCode rc = a.code == ErrorCode::kFull              ? m::ReasonCode::kQuotaExceeded
                         : a.code == ErrorCode::kInvalidArgument ? m::ReasonCode::kNotAuthorized
                                                                 : m::ReasonCode::kUnspecifiedError;
      m::EncodePuback(c.out, c.version, a.packet_id, rc);
    } else {
      ++c.unacked_failed;  // 3.1.1 has no negative PUBACK: the device keeps it and re-sends after a reconnect
    }
    c.acks.pop_front();
    ++c.first_entry;
  }
  if (c.unacked_failed > 0 && c.unacked_failed >= c.window) {
    Close(c, "window_full_of_failures");
    return;
  }
  UpdateInterest(c);
}

}  // namespace ferry
