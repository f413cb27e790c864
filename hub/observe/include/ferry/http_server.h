// ferry/http_server.h: ferryd's HTTP endpoints (/metrics, /healthz, and the console's routes), on libmicrohttpd.
//
// libmicrohttpd parses HTTP (request line, headers, bodies, chunked replies); this class adds routing, the
// limits and the threading ferryd wants. It runs in libmicrohttpd's "external" mode on one epoll fd: the
// owner's thread calls Step()/Run(), and every handler runs on that thread, so a handler may use anything the
// server thread owns without locks. HTTP/1.0 and 1.1; every reply carries "Connection: close" (one request per
// connection: a gateway's scraper and a browser tab are the only clients, keep-alive would only pin slots).
//
// Limits: requests are capped in size (431), the number of open connections is bounded (extra connections are
// closed at once), and each connection has a deadline from accept to the last byte written, measured on the
// injected Clock's Steady() (a test advances a ManualClock instead of sleeping). A connection past its deadline
// is shut down. Streams (HttpStream: Server-Sent Events) are exempt from the deadline once their headers are
// out; they end when the client goes away (seen at the next write; every stream is pulled at least every
// `stream_keepalive` so a dead client is noticed) or at Stop().
//
// HttpServerOptions::plain serves GET and HEAD routes without libmicrohttpd (http_plain.cc), with the same
// limits, deadlines and replies: ferryd's metrics endpoint when the console is off.
//
// Threading: Start(), Step() and Run() belong to one thread (the server thread). Stop() may be called from
// any thread, including a signal-safe context (it only writes an eventfd). HttpStream::Wake() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/socket.h>

#include "ferry/clock.h"
#include "ferry/error.h"

struct MHD_Daemon;
struct MHD_Connection;

namespace ferry {

// A reply body produced over time (Server-Sent Events). Pull() runs on the server thread; Wake() from any.
class HttpStream {
 public:
  virtual ~HttpStream() = default;
  // Appends what is ready to `out` (may append nothing). `keepalive`: nothing woke the stream for a while;
  // a stream should write something (an SSE comment) so that a client that went away is noticed. Returns
  // false when the stream has ended (what `out` holds is still sent).
  virtual bool Pull(std::string& out, bool keepalive) = 0;
  // Says that Pull() has something to write. Thread-safe; cheap: an atomic, and an eventfd write only when the
  // stream was not already waiting to be pulled (a burst of Wake()s wakes the server thread once).
  void Wake();

 protected:
  // For Pull() only (the server thread): Wake()s before `t` (the server's Clock::Steady()) are held, and the
  // stream is pulled at `t` if one came. Bounds how often a busy stream is pulled; a keepalive still pulls it.
  void HoldWakesUntil(std::chrono::steady_clock::time_point t) { hold_until_ = t; }

 private:
  friend class HttpServer;
  friend struct HttpServerCallbacks;
  std::atomic<bool> pending_{true};
  std::atomic<int> wake_fd_{-1};
  std::chrono::steady_clock::time_point hold_until_{};  // server thread only
};

struct HttpRequest {
  std::string method;  // GET, HEAD, POST
  std::string path;    // without the query string
  std::map<std::string, std::string> args;     // decoded query arguments
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;                            // POST only; at most HttpServerOptions::max_body_bytes
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::shared_ptr<HttpStream> stream;  // when set: `body` first, then what the stream pulls, chunked
};

struct HealthStatus {
  bool ok = true;
  std::string text;  // body of /healthz; "ok" when empty and ok
};

struct HttpServerOptions {
  std::string listen = "127.0.0.1:9464";  // host:port; port 0 picks a free port (see port())
  size_t max_request_bytes = 8192;        // request line + headers; larger gets 431 and is closed
  size_t max_body_bytes = 0;              // POST bodies; larger gets 413. 0: POST is refused (405)
  std::chrono::milliseconds request_timeout{5000};  // from accept to the last byte written (streams exempt)
  std::chrono::milliseconds stream_keepalive{15000};
  size_t max_connections = 16;
  // Whether a route may reply with an HttpStream: libmicrohttpd's suspend/resume costs one more eventfd, which
  // the metrics endpoint does without. A stream reply without it is a 500.
  bool streams = false;
  // No listening socket: connections come only from AddConnection() (the console's TLS terminator hands over
  // the plaintext end of a socketpair). `listen` is then unused and port() is 0.
  bool external_connections = false;
  // Serve without libmicrohttpd, with ferryd's own GET/HEAD responder (http_plain.cc): for a server whose routes
  // are all GET, that streams nothing and has its own listening socket (the metrics endpoint when the console
  // is off). Loading libmicrohttpd maps GnuTLS and everything it needs, 3.5 MB of RSS (docs/console.md,
  // "Memory and sockets"). Start() refuses it with a POST route, `streams` or `external_connections`.
  bool plain = false;
};

// The head of an HTTP/1.x request (request line and header fields) as the plain responder reads it. Parsed
// without allocation beyond the request itself; `status` is 0 when the head is a GET or HEAD request it serves,
// else the reply it gets: 400 (bad request line or header field), 405 (not GET or HEAD), 505 (not HTTP/1.0 or
// 1.1). A pure function, for tests and the fuzzer (tests/fuzz/http_head).
struct HttpHead {
  int status = 0;
  HttpRequest request;  // method, path, args (percent-decoded), headers (names lower-cased)
};
// `head`: the bytes before the blank line that ends the head (without it). REQUIRES: it is at most
// HttpServerOptions::max_request_bytes (the caller answers 431 past that).
HttpHead ParseHttpHead(std::string_view head);

// A non-blocking, close-on-exec TCP socket listening on `listen` ("host:port", "[v6]:port"; port 0: any), and the
// port it got. Errors name the address, each prefixed with `what` ("http: "): InvalidArgument (not host:port, or
// it does not resolve), IoError (socket, bind or listen failed, with the errno's words).
struct ListenSocket {
  int fd;
  uint16_t port;
};
Result<ListenSocket> ListenTcp(const std::string& listen, const std::string& what);

class HttpServer {
 public:
  using Handler = std::function<HttpResponse()>;
  using RequestHandler = std::function<HttpResponse(const HttpRequest&)>;

  HttpServer(HttpServerOptions options, const Clock& clock);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Routes, set before Start(). The path is matched exactly, the query string ignored. GET and HEAD.
  void Route(const std::string& path, Handler handler);
  // A route that sees the request. `allow_post`: POST is accepted too (with a body up to max_body_bytes).
  void Route(const std::string& path, RequestHandler handler, bool allow_post);
  // The routed paths, sorted.
  std::vector<std::string> paths() const {
    std::vector<std::string> v;
    for (const auto& [path, route] : routes_) v.push_back(path);
    return v;
  }
  // GET /metrics: 200 with the text exposition format.
  void ServeMetrics(std::function<std::string()> render);
  // GET /healthz: 200 "ok" when healthy, 503 with the text otherwise.
  void ServeHealth(std::function<HealthStatus()> check);

  // Binds and listens. Errors: kInvalidArgument (bad address), kIoError (bind/listen failed, e.g. in use;
  // libmicrohttpd refused to start).
  Status Start();
  // The bound port (after Start()).
  uint16_t port() const { return port_; }

  // Waits up to `max_wait` (or until Stop()) for activity, handles what is ready, expires connections past
  // their deadline. Returns false once Stop() was called. REQUIRES: Start() succeeded.
  bool Step(std::chrono::milliseconds max_wait);
  // Step()s until Stop().
  void Run();
  // Thread-safe and async-signal-safe. Wakes a blocked Step().
  void Stop();
  // Thread-safe. Hands a connected stream socket to the server (it owns and closes it from now on); the
  // server thread adds it at its next Step(). `peer` is the client's address, for libmicrohttpd's records.
  // REQUIRES: HttpServerOptions::external_connections, Start() succeeded.
  void AddConnection(int fd, const sockaddr* peer, socklen_t peer_len);

  size_t open_connections() const;

 private:
  struct Conn {
    int fd = -1;
    std::chrono::steady_clock::time_point deadline;
    bool streaming = false;  // exempt from the deadline
    bool expired = false;
  };
  struct Route_ {
    RequestHandler handler;
    bool allow_post = false;
  };
  struct RequestState;
  struct StreamState;
  struct Plain;  // the plain responder's state (http_plain.cc), when options_.plain

  friend struct HttpServerCallbacks;  // libmicrohttpd callbacks (http_server.cc)
  // Runs a route's handler: an exception is a 500 (logged), and so is a stream reply on a server without streams.
  HttpResponse Answer(const Route_& route, const HttpRequest& rq);
  int Queue(MHD_Connection* connection, const HttpResponse& r, bool head);
  void ResumeWoken(bool all, std::chrono::steady_clock::time_point now);

  HttpServerOptions options_;
  const Clock& clock_;
  std::map<std::string, Route_> routes_;
  MHD_Daemon* daemon_ = nullptr;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
  std::map<MHD_Connection*, Conn> conns_;
  std::vector<StreamState*> suspended_;
  struct Handed {
    int fd;
    sockaddr_storage peer;
    socklen_t peer_len;
  };
  std::mutex handed_mu_;
  std::vector<Handed> handed_;  // AddConnection()'s, not yet given to libmicrohttpd
  std::chrono::steady_clock::time_point next_keepalive_;
  std::unique_ptr<Plain> plain_;
};

}  // namespace ferry
