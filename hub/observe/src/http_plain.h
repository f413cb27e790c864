// The plain responder behind HttpServer when HttpServerOptions::plain is set: GET and HEAD on the server's own
// routes, one request per connection, with the same limits and deadlines as the libmicrohttpd path, and no
// library. Internal to ferry_observe (http_server.cc and http_plain.cc).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "ferry/http_server.h"

namespace ferry {

struct HttpServer::Plain {
  struct Conn {
    enum State { kReading, kWriting, kDraining };
    int fd = -1;
    State state = kReading;
    std::string in;
    std::string out;
    size_t written = 0;
    std::chrono::steady_clock::time_point deadline;
    bool closed = false;
  };

  Plain(HttpServer& owner, int fd) : server(owner), listen_fd(fd) {}
  ~Plain();
  Plain(const Plain&) = delete;
  Plain& operator=(const Plain&) = delete;

  bool Step(std::chrono::milliseconds max_wait);
  void Accept();
  void OnReadable(Conn& c);
  void OnWritable(Conn& c);
  void Dispatch(Conn& c, std::string_view head);
  void Respond(Conn& c, const HttpResponse& r, bool head);
  void Close(Conn& c);

  HttpServer& server;
  int listen_fd;
  std::vector<Conn> conns;
  std::chrono::steady_clock::time_point accept_paused_until{};  // out of descriptors: not polled until then
  bool accept_failing = false;                                  // logged once per episode
};

}  // namespace ferry
