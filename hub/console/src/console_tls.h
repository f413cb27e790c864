// console_tls.h: TLS for the console with mbedTLS (hub/ingest's TlsServerContext/TlsSession), in front of
// libmicrohttpd, whose own TLS would be GnuTLS. One thread accepts on console.listen, does each handshake, and
// hands libmicrohttpd the other end of a socketpair (HttpServer::AddConnection); it then pumps bytes both
// ways: TLS records from the client decrypted into the pair, libmicrohttpd's replies (SSE tails too) sealed
// back. libmicrohttpd sees a plain connection and enforces its own limits on it; a handshake must end within
// `handshake_timeout` (a client that stops mid-handshake holds no slot beyond it).
//
// Threads: Start/Stop from the console's owner; everything else on the terminator's own thread.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "ferry/error.h"
#include "ferry/http_server.h"
#include "ferry/tls_server.h"

namespace ferry {

class ConsoleTls {
 public:
  // REQUIRES: http started with HttpServerOptions::external_connections; outlives this object.
  ConsoleTls(std::shared_ptr<TlsServerContext> ctx, HttpServer& http, size_t max_connections,
             std::chrono::milliseconds handshake_timeout);
  ~ConsoleTls();  // Stop()s
  ConsoleTls(const ConsoleTls&) = delete;
  ConsoleTls& operator=(const ConsoleTls&) = delete;

  // Binds `listen` (host:port, port 0 picks one) and starts the thread. Errors: InvalidArgument (address),
  // IoError (socket, bind, listen, eventfd).
  Status Start(const std::string& listen);
  uint16_t port() const { return port_; }
  // Closes every connection and joins the thread. Idempotent.
  void Stop();

 private:
  struct Conn;
  void Run();
  // Moves bytes as far as they go without waiting. Returns false when the connection is over.
  bool Pump(Conn& c);

  std::shared_ptr<TlsServerContext> ctx_;
  HttpServer& http_;
  const size_t max_connections_;
  const std::chrono::milliseconds handshake_timeout_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace ferry
