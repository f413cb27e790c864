// ferryd's HTTP endpoints on libmicrohttpd in external-epoll mode. See ferry/http_server.h for the contract.
//
// libmicrohttpd owns the sockets and the parsing; we keep a table of its connections (fd + deadline on the
// injected clock) through its connection notifications, so a deadline can be enforced on a ManualClock: an
// expired connection is shut down (not closed: the fd stays libmicrohttpd's), libmicrohttpd sees the end of
// input on its next run and frees it.
//
// libmicrohttpd is loaded with dlopen() by the first Start(), not linked: Debian's libmicrohttpd12 needs GnuTLS
// (and through it p11-kit, nettle, gmp, libtasn1, libidn2, libunistring, libffi), and its constructor runs
// gnutls_global_init(). Linked, that cost ferryd 2.8 MB of RSS even with no HTTP listener configured
// (docs/console.md, "Memory and sockets"); loaded on demand, a ferryd with the console off maps none of it: its
// metrics endpoint is served by the plain responder (HttpServerOptions::plain, http_plain.cc).
//
// Streams: libmicrohttpd pulls a body through a content reader. When the stream has nothing, the reader
// suspends the connection and returns 0 (its documented way to avoid busy waiting); HttpStream::Wake() writes
// our eventfd, and the server thread resumes the connection. Only the server thread touches a connection.
#include "ferry/http_server.h"

#include <microhttpd.h>

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <exception>
#include <mutex>
#include <type_traits>

#include "ferry/log.h"
#include "http_plain.h"

namespace ferry {

void HttpStream::Wake() {
  if (pending_.exchange(true)) return;  // already due: the server thread was told
  int fd = wake_fd_.load();
  if (fd >= 0) {
    uint64_t one = 1;
    ssize_t n = ::write(fd, &one, sizeof one);
    (void)n;
  }
}

// One request's state across libmicrohttpd's calls of the access handler (headers, body chunks, end).
struct HttpServer::RequestState {
  HttpRequest request;
  const Route_* route = nullptr;
  bool body_too_large = false;
};

struct HttpServer::StreamState {
  HttpServer* server = nullptr;
  MHD_Connection* connection = nullptr;
  std::shared_ptr<HttpStream> stream;
  std::string buf;  // pulled, not yet handed to libmicrohttpd
  size_t off = 0;
  bool ended = false;
  bool keepalive = false;
};

struct HttpServerCallbacks {
  static MHD_Result OnRequest(void* cls, MHD_Connection* connection, const char* url, const char* method,
                              const char* version, const char* upload_data, size_t* upload_data_size,
                              void** con_cls);
  static void OnConnection(void* cls, MHD_Connection* connection, void** socket_context,
                           MHD_ConnectionNotificationCode toe);
  static void OnCompleted(void* cls, MHD_Connection* connection, void** con_cls, MHD_RequestTerminationCode toe);
  static ssize_t OnStreamRead(void* cls, uint64_t pos, char* buf, size_t max);
  static void OnStreamFree(void* cls);
};

namespace {

// The libmicrohttpd calls this file makes, resolved from the library dlopen()ed by LoadMhd(). The types come
// from microhttpd.h, so a signature that changes fails to compile instead of failing at run time.
struct MhdApi {
#define FERRY_MHD_FN(name) decltype(&::MHD_##name) name = nullptr;
  FERRY_MHD_FN(start_daemon)
  FERRY_MHD_FN(stop_daemon)
  FERRY_MHD_FN(get_daemon_info)
  FERRY_MHD_FN(get_timeout)
  FERRY_MHD_FN(run)
  FERRY_MHD_FN(resume_connection)
  FERRY_MHD_FN(suspend_connection)
  FERRY_MHD_FN(get_connection_info)
  FERRY_MHD_FN(get_connection_values)
  FERRY_MHD_FN(create_response_from_callback)
  FERRY_MHD_FN(create_response_from_buffer)
  FERRY_MHD_FN(add_response_header)
  FERRY_MHD_FN(queue_response)
  FERRY_MHD_FN(destroy_response)
  FERRY_MHD_FN(add_connection)
#undef FERRY_MHD_FN
};

// Debian 12's soname on every architecture we ship (libmicrohttpd12, 0.9.75).
constexpr const char* kMhdSoname = "libmicrohttpd.so.12";

// Written once, inside LoadMhd()'s call_once, before the first daemon exists; every other use is on a server
// thread that called Start() after it (call_once orders the write before those reads). Never unloaded: the
// library stays mapped once an HTTP server has run.
const MhdApi* mhd = nullptr;

// Loads libmicrohttpd and resolves every call. Errors: kIoError naming the library and dlerror()'s text.
Status LoadMhd() {
  static std::once_flag once;
  static std::string error;
  std::call_once(once, [] {
    void* lib = ::dlopen(kMhdSoname, RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* e = ::dlerror();
      error = std::string("http: cannot load ") + kMhdSoname + " (package libmicrohttpd12): " + (e ? e : "?");
      return;
    }
    static MhdApi api;
    bool ok = true;
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(lib, name));
      if (fn == nullptr) {
        ok = false;
        error = std::string("http: ") + kMhdSoname + " has no " + name;
      }
    };
#define FERRY_MHD_SYM(name) sym(api.name, "MHD_" #name);
    FERRY_MHD_SYM(start_daemon)
    FERRY_MHD_SYM(stop_daemon)
    FERRY_MHD_SYM(get_daemon_info)
    FERRY_MHD_SYM(get_timeout)
    FERRY_MHD_SYM(run)
    FERRY_MHD_SYM(resume_connection)
    FERRY_MHD_SYM(suspend_connection)
    FERRY_MHD_SYM(get_connection_info)
    FERRY_MHD_SYM(get_connection_values)
    FERRY_MHD_SYM(create_response_from_callback)
    FERRY_MHD_SYM(create_response_from_buffer)
    FERRY_MHD_SYM(add_response_header)
    FERRY_MHD_SYM(queue_response)
    FERRY_MHD_SYM(destroy_response)
    FERRY_MHD_SYM(add_connection)
#undef FERRY_MHD_SYM
    if (ok) mhd = &api;
  });
  if (mhd == nullptr) return IoError(error);
  return Ok();
}

const std::string kTextPlain = "text/plain; charset=utf-8";

MHD_Result CollectHeader(void* cls, MHD_ValueKind, const char* key, const char* value) {
  std::string name = key;
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  (*static_cast<std::map<std::string, std::string>*>(cls))[name] = value ? value : "";
  return MHD_YES;
}

MHD_Result CollectArg(void* cls, MHD_ValueKind, const char* key, const char* value) {
  (*static_cast<std::map<std::string, std::string>*>(cls))[key] = value ? value : "";
  return MHD_YES;
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, const Clock& clock) : options_(std::move(options)), clock_(clock) {}

HttpServer::~HttpServer() {
  stopped_.store(true);
  if (daemon_ != nullptr) {
    // libmicrohttpd refuses to stop with suspended connections; resumed, their readers end the streams.
    for (StreamState* s : suspended_) mhd->resume_connection(s->connection);
    suspended_.clear();
    mhd->stop_daemon(daemon_);  // closes the listening socket and every connection
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
  for (const Handed& h : handed_) ::close(h.fd);
}

void HttpServer::Route(const std::string& path, Handler handler) {
  routes_[path] = Route_{[handler = std::move(handler)](const HttpRequest&) { return handler(); }, false};
}

void HttpServer::Route(const std::string& path, RequestHandler handler, bool allow_post) {
  routes_[path] = Route_{std::move(handler), allow_post};
}

void HttpServer::ServeMetrics(std::function<std::string()> render) {
  Route("/metrics", [render = std::move(render)]() {
    return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", render(), {}, nullptr};
  });
}

void HttpServer::ServeHealth(std::function<HealthStatus()> check) {
  Route("/healthz", [check = std::move(check)]() {
    HealthStatus h = check();
    std::string body = h.text.empty() ? (h.ok ? "ok" : "unhealthy") : h.text;
    if (body.empty() || body.back() != '\n') body += '\n';
    return HttpResponse{h.ok ? 200 : 503, kTextPlain, body, {}, nullptr};
  });
}

Result<ListenSocket> ListenTcp(const std::string& listen, const std::string& what) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size())
    return InvalidArgument(what + "listen address \"" + listen + "\" is not host:port");
  std::string host = listen.substr(0, colon);
  std::string port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) return InvalidArgument(what + "listen address \"" + listen + "\": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);
  int fd = ::socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, res->ai_protocol);
  if (fd < 0) return IoError(what + "socket: " + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
    int err = errno;
    ::close(fd);
    return IoError(what + "cannot listen on " + listen + ": " + std::strerror(err));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const uint16_t p = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                       : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return ListenSocket{fd, p};
}

Status HttpServer::Start() {
  if (options_.plain) {
    const bool post = std::any_of(routes_.begin(), routes_.end(), [](const auto& r) { return r.second.allow_post; });
    if (options_.streams || options_.external_connections || post)
      return InvalidArgument("http: the plain responder serves GET and HEAD routes on its own socket only");
  }
  // The listening socket, ours: handed to libmicrohttpd or read by the plain responder. None when connections
  // come only from AddConnection().
  const std::string& listen = options_.listen;
  int fd = -1;
  if (!options_.external_connections) {
    auto bound = ListenTcp(listen, "http: ");
    if (!bound) return tl::make_unexpected(bound.error());
    fd = bound->fd;
    port_ = bound->port;
  }
  auto fail = [fd](Status st) {
    if (fd >= 0) ::close(fd);
    return st;
  };
  if (!options_.plain) {
    if (Status st = LoadMhd(); !st) return fail(st);
  }
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return fail(IoError(std::string("http: eventfd: ") + std::strerror(errno)));
  if (options_.plain) {
    plain_ = std::make_unique<Plain>(*this, fd);
    return Ok();
  }
  // The pool holds the request line and headers; our own check answers 431 at max_request_bytes, the pool's
  // margin only lets a request a little over the cap reach that check instead of libmicrohttpd's.
  size_t pool = std::max<size_t>(options_.max_request_bytes * 2 + 16384, 32768);
  // libmicrohttpd's idle timeout is only a backstop on the real clock: our deadlines are the contract.
  auto backstop = std::max(options_.request_timeout, options_.stream_keepalive) + std::chrono::seconds(5);
  unsigned timeout_s = static_cast<unsigned>(std::chrono::duration_cast<std::chrono::seconds>(backstop).count());
  const unsigned flags = MHD_USE_EPOLL | (options_.streams ? MHD_ALLOW_SUSPEND_RESUME : 0);
  if (fd < 0) {
    daemon_ = mhd->start_daemon(flags | MHD_USE_NO_LISTEN_SOCKET, 0, nullptr, nullptr, &HttpServerCallbacks::OnRequest,
                                this,
                                MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned>(options_.max_connections),
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
                                MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
                                MHD_OPTION_NOTIFY_CONNECTION, &HttpServerCallbacks::OnConnection, this,
                                MHD_OPTION_NOTIFY_COMPLETED, &HttpServerCallbacks::OnCompleted, this,
                                MHD_OPTION_END);
    if (daemon_ == nullptr) return IoError("http: libmicrohttpd did not start (no listening socket)");
  } else {
    daemon_ = mhd->start_daemon(flags, 0, nullptr, nullptr, &HttpServerCallbacks::OnRequest, this,
                                MHD_OPTION_LISTEN_SOCKET, static_cast<MHD_socket>(fd),
                                MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned>(options_.max_connections),
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
                                MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
                                MHD_OPTION_NOTIFY_CONNECTION, &HttpServerCallbacks::OnConnection, this,
                                MHD_OPTION_NOTIFY_COMPLETED, &HttpServerCallbacks::OnCompleted, this,
                                MHD_OPTION_END);
    if (daemon_ == nullptr) return fail(IoError("http: libmicrohttpd did not start on " + listen));
  }
  const MHD_DaemonInfo* info = mhd->get_daemon_info(daemon_, MHD_DAEMON_INFO_EPOLL_FD);
  epoll_fd_ = info != nullptr ? info->epoll_fd : -1;
  next_keepalive_ = clock_.Steady() + options_.stream_keepalive;
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

void HttpServer::AddConnection(int fd, const sockaddr* peer, socklen_t peer_len) {
  Handed h{fd, {}, std::min<socklen_t>(peer_len, sizeof(sockaddr_storage))};
  std::memcpy(&h.peer, peer, h.peer_len);
  {
    std::lock_guard<std::mutex> lock(handed_mu_);
    handed_.push_back(h);
  }
  uint64_t one = 1;
  ssize_t n = ::write(wake_fd_, &one, sizeof one);
  (void)n;
}

void HttpServer::Run() {
  while (Step(std::chrono::milliseconds(1000))) {
  }
}

bool HttpServer::Step(std::chrono::milliseconds max_wait) {
  if (stopped_.load()) return false;
  if (plain_ != nullptr) return plain_->Step(max_wait);
  auto now = clock_.Steady();
  auto wait = max_wait;
  MHD_UNSIGNED_LONG_LONG mhd_wait = 0;
  if (mhd->get_timeout(daemon_, &mhd_wait) == MHD_YES) {
    wait = std::min(wait, std::chrono::milliseconds(static_cast<int64_t>(std::min<MHD_UNSIGNED_LONG_LONG>(mhd_wait, 1'000'000))));
  }
  for (const auto& [conn, c] : conns_) {
    if (c.streaming || c.expired) continue;
    wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(c.deadline - now));
  }
  if (!suspended_.empty()) {
    wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(next_keepalive_ - now));
  }
  for (const StreamState* s : suspended_) {
    // Woken but held (HoldWakesUntil): pulled when the hold ends. Rounded up, so that the poll does not end
    // a fraction of a millisecond early and spin.
    if (s->stream->pending_.load() && s->stream->hold_until_ > now)
      wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(s->stream->hold_until_ - now));
  }
  wait = std::max(wait, std::chrono::milliseconds(0));
  pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {epoll_fd_, POLLIN, 0}};
  int n = ::poll(fds, 2, static_cast<int>(wait.count()));
  if (n < 0 && errno != EINTR) FERRY_LOG_WARN("http: poll: %s", std::strerror(errno));
  if (stopped_.load()) return false;
  if (n > 0 && fds[0].revents != 0) {
    uint64_t v;
    ssize_t r = ::read(wake_fd_, &v, sizeof v);
    (void)r;
  }
  std::vector<Handed> handed;
  {
    std::lock_guard<std::mutex> lock(handed_mu_);
    handed.swap(handed_);
  }
  for (const Handed& h : handed) {
    // libmicrohttpd closes the socket itself when it cannot take it (over the connection limit).
    mhd->add_connection(daemon_, h.fd, reinterpret_cast<const sockaddr*>(&h.peer), h.peer_len);
  }
  mhd->run(daemon_);
  now = clock_.Steady();
  bool keepalive = now >= next_keepalive_;
  if (keepalive) next_keepalive_ = now + options_.stream_keepalive;
  size_t before = suspended_.size();
  ResumeWoken(keepalive, now);
  bool again = suspended_.size() != before;
  for (auto& [conn, c] : conns_) {
    if (c.streaming || c.expired || now < c.deadline) continue;
    ::shutdown(c.fd, SHUT_RDWR);  // libmicrohttpd reads the end of input and closes it
    c.expired = true;
    again = true;
  }
  if (again) mhd->run(daemon_);
  return !stopped_.load();
}

void HttpServer::ResumeWoken(bool all, std::chrono::steady_clock::time_point now) {
  auto keep = suspended_.begin();
  for (StreamState* s : suspended_) {
    if (all || (s->stream->pending_.load() && s->stream->hold_until_ <= now)) {
      s->keepalive = s->keepalive || all;
      mhd->resume_connection(s->connection);
    } else {
      *keep++ = s;
    }
  }
  suspended_.erase(keep, suspended_.end());
}

void HttpServerCallbacks::OnConnection(void* cls, MHD_Connection* connection, void**,
                                       MHD_ConnectionNotificationCode toe) {
  auto* self = static_cast<HttpServer*>(cls);
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    HttpServer::Conn c;
    const MHD_ConnectionInfo* info = mhd->get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    c.fd = info != nullptr ? info->connect_fd : -1;
    c.deadline = self->clock_.Steady() + self->options_.request_timeout;
    self->conns_[connection] = c;
  } else {
    self->conns_.erase(connection);
  }
}

void HttpServerCallbacks::OnCompleted(void*, MHD_Connection*, void** con_cls, MHD_RequestTerminationCode) {
  delete static_cast<HttpServer::RequestState*>(*con_cls);
  *con_cls = nullptr;
}

MHD_Result HttpServerCallbacks::OnRequest(void* cls, MHD_Connection* connection, const char* url,
                                          const char* method, const char*, const char* upload_data,
                                          size_t* upload_data_size, void** con_cls) {
  auto* self = static_cast<HttpServer*>(cls);
  auto* st = static_cast<HttpServer::RequestState*>(*con_cls);
  auto reply = [&](int status, const std::string& body) {
    return self->Queue(connection, HttpResponse{status, kTextPlain, body, {}, nullptr}, false) == MHD_YES ? MHD_YES
                                                                                                         : MHD_NO;
  };
  if (st == nullptr) {
    st = new HttpServer::RequestState;
    *con_cls = st;
    HttpRequest& rq = st->request;
    rq.method = method;
    rq.path = url;
    mhd->get_connection_values(connection, MHD_HEADER_KIND, &CollectHeader, &rq.headers);
    mhd->get_connection_values(connection, MHD_GET_ARGUMENT_KIND, &CollectArg, &rq.args);
    size_t size = std::strlen(method) + std::strlen(url) + 12;
    for (const auto& [k, v] : rq.headers) size += k.size() + v.size() + 4;
    for (const auto& [k, v] : rq.args) size += k.size() + v.size() + 2;
    if (size > self->options_.max_request_bytes) return reply(431, "request too large\n");
    auto it = self->routes_.find(rq.path);
    bool post = rq.method == "POST";
    bool post_ok = post && it != self->routes_.end() && it->second.allow_post && self->options_.max_body_bytes > 0;
    if (rq.method != "GET" && rq.method != "HEAD" && !post_ok) {
      HttpResponse r{405, kTextPlain, "GET or HEAD only\n", {}, nullptr};
      r.headers.emplace_back("Allow", it != self->routes_.end() && it->second.allow_post ? "GET, HEAD, POST"
                                                                                          : "GET, HEAD");
      return self->Queue(connection, r, false) == MHD_YES ? MHD_YES : MHD_NO;
    }
    if (it == self->routes_.end()) return reply(404, "not found\n");
    st->route = &it->second;
    if (post) return MHD_YES;  // the body follows in the next calls
  } else if (*upload_data_size > 0) {
    if (st->request.body.size() + *upload_data_size > self->options_.max_body_bytes) {
      st->body_too_large = true;
    } else {
      st->request.body.append(upload_data, *upload_data_size);
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (st->body_too_large) return reply(413, "request body too large\n");
  const HttpResponse r = self->Answer(*st->route, st->request);
  return self->Queue(connection, r, st->request.method == "HEAD") == MHD_YES ? MHD_YES : MHD_NO;
}

HttpResponse HttpServer::Answer(const Route_& route, const HttpRequest& rq) {
  HttpResponse r;
  try {
    r = route.handler(rq);
  } catch (const std::exception& e) {
    FERRY_LOG_WARN("http: handler for %s failed: %s", rq.path.c_str(), e.what());
    return HttpResponse{500, kTextPlain, "internal error\n", {}, nullptr};
  }
  if (r.stream != nullptr && !options_.streams) {
    FERRY_LOG_WARN("http: a stream reply on a server without HttpServerOptions::streams");
    return HttpResponse{500, kTextPlain, "internal error\n", {}, nullptr};
  }
  return r;
}

int HttpServer::Queue(MHD_Connection* connection, const HttpResponse& r, bool head) {
  MHD_Response* resp = nullptr;
  if (r.stream != nullptr && !head) {
    auto* s = new StreamState;
    s->server = this;
    s->connection = connection;
    s->stream = r.stream;
    s->buf = r.body;
    s->stream->wake_fd_.store(wake_fd_);
    resp = mhd->create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, &HttpServerCallbacks::OnStreamRead, s,
                                             &HttpServerCallbacks::OnStreamFree);
    if (resp == nullptr) {
      delete s;
    } else if (auto it = conns_.find(connection); it != conns_.end()) {
      it->second.streaming = true;
    }
  } else {
    resp = mhd->create_response_from_buffer(r.body.size(), const_cast<char*>(r.body.data()), MHD_RESPMEM_MUST_COPY);
  }
  if (resp == nullptr) return MHD_NO;
  mhd->add_response_header(resp, "Content-Type", r.content_type.c_str());
  for (const auto& [k, v] : r.headers) mhd->add_response_header(resp, k.c_str(), v.c_str());
  mhd->add_response_header(resp, "Connection", "close");
  MHD_Result ret = mhd->queue_response(connection, static_cast<unsigned>(r.status), resp);
  mhd->destroy_response(resp);  // libmicrohttpd holds its own reference until the reply is sent
  return ret;
}

ssize_t HttpServerCallbacks::OnStreamRead(void* cls, uint64_t, char* buf, size_t max) {
  auto* s = static_cast<HttpServer::StreamState*>(cls);
  if (s->off >= s->buf.size()) {
    s->buf.clear();
    s->off = 0;
    if (s->ended || s->server->stopped_.load()) return MHD_CONTENT_READER_END_OF_STREAM;
    bool keepalive = s->keepalive;
    s->keepalive = false;
    HttpStream& st = *s->stream;
    // Pulled only when woken and not held (HoldWakesUntil), or for a keepalive: libmicrohttpd asks for more as
    // soon as the last bytes are out, which must not bypass a hold.
    bool due = keepalive || (st.pending_.load() && st.hold_until_ <= s->server->clock_.Steady());
    if (due) {
      st.pending_.store(false);  // before Pull: a Wake() during Pull is kept
      if (!st.Pull(s->buf, keepalive)) s->ended = true;
    }
    if (s->buf.empty()) {
      if (s->ended) return MHD_CONTENT_READER_END_OF_STREAM;
      mhd->suspend_connection(s->connection);
      s->server->suspended_.push_back(s);
      return 0;
    }
  }
  size_t n = std::min(max, s->buf.size() - s->off);
  std::memcpy(buf, s->buf.data() + s->off, n);
  s->off += n;
  return static_cast<ssize_t>(n);
}

void HttpServerCallbacks::OnStreamFree(void* cls) {
  auto* s = static_cast<HttpServer::StreamState*>(cls);
  auto& v = s->server->suspended_;
  v.erase(std::remove(v.begin(), v.end(), s), v.end());
  s->stream->wake_fd_.store(-1);
  delete s;
}

}  // namespace ferry
