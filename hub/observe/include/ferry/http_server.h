// ferry/http_server.h: the local observability endpoint (/metrics, /healthz).
//
// Minimal on purpose: one thread, poll(), GET and HEAD only, HTTP/1.0 and 1.1, one request per connection
// ("Connection: close"). A client cannot hang it: requests are capped in size, each connection has a
// deadline (measured on the injected Clock's Steady()), and the number of open connections is bounded
// (extra connections are closed at once).
//
// Threading: Start(), Step() and Run() belong to one thread (the server thread). Stop() may be called from
// any thread, including a signal-safe context (it only writes an eventfd). Handlers run on the server thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ferry/clock.h"
#include "ferry/error.h"

namespace ferry {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

struct HealthStatus {
  bool ok = true;
  std::string text;  // body of /healthz; "ok" when empty and ok
};

struct HttpServerOptions {
  std::string listen = "127.0.0.1:9464";  // host:port; port 0 picks a free port (see port())
  size_t max_request_bytes = 8192;        // request line + headers; larger gets 431 and is closed
  std::chrono::milliseconds request_timeout{5000};  // from accept to the last byte written
  size_t max_connections = 16;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse()>;

  HttpServer(HttpServerOptions options, const Clock& clock);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Routes, set before Start(). The path is matched exactly, the query string ignored.
  void Route(const std::string& path, Handler handler);
  // GET /metrics: 200 with the text exposition format.
  void ServeMetrics(std::function<std::string()> render);
  // GET /healthz: 200 "ok" when healthy, 503 with the text otherwise.
  void ServeHealth(std::function<HealthStatus()> check);

  // Binds and listens. Errors: kInvalidArgument (bad address), kIoError (bind/listen failed, e.g. in use).
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

  size_t open_connections() const { return conns_.size(); }

 private:
  struct Conn {
    enum State { kReading, kWriting, kDraining };
    int fd;
    State state = kReading;
    std::string in;
    std::string out;
    size_t written = 0;
    std::chrono::steady_clock::time_point deadline;
    bool closed = false;
  };
  void Accept();
  void OnReadable(Conn& c);
  void OnWritable(Conn& c);
  void Respond(Conn& c, int status, const std::string& content_type, const std::string& body, bool head);
  void Dispatch(Conn& c);
  void Close(Conn& c);

  HttpServerOptions options_;
  const Clock& clock_;
  std::map<std::string, Handler> routes_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
  std::vector<Conn> conns_;
};

}  // namespace ferry
