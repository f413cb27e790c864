// ferry/console.h: the web console served by ferryd (docs/console.md).
//
//   GET  /                    the page (HTML + JS, embedded; no CDN: gateways are offline)
//   GET  /api/overview        streams (counts, bytes, seqs, oldest/newest ingest time, evictions, cursors),
//                             storage use, uplinks (link state, backlog, oldest unsent age): JSON
//   GET  /api/tail?stream=S[&filter=TEXT][&n=N]   Server-Sent Events: the last N records (default 10), then
//                             the records committed after, woken by GroupCommitWriter's commit listener, at
//                             most 1,000 a second (LiveTail, ferry/live_tail.h: the rest are said skipped)
//   GET  /api/deadletters?stream=S[&n=N]          the last N records of a dead-letter stream: reason headers,
//                             original bytes in base64; without stream=: the dead-letter streams routes name
//   POST /api/sql             body: one SELECT (ferryctl sql's engine), with a row and a time limit: JSON
//   GET  /api/history         the last 10 minutes of the charts' data, sampled every 5 s on the console's thread
//                             (ChartHistory, ferry/chart_history.h: a fixed ring, its bytes stated there): JSON
//
// Security: every /api/ request carries "Authorization: Bearer TOKEN" when a token file is set (compared in
// constant time; 401 otherwise). Without a token file the console refuses any listen address that is not
// loopback. The page itself holds no data and is served to anyone who reaches the port.
//
// Threads: Make/Start/Stop from the daemon's main thread; handlers and the chart history's sampling run on the
// console's own server thread; `links` is called on that thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ferry/chart_history.h"
#include "ferry/clock.h"
#include "ferry/config.h"
#include "ferry/error.h"
#include "ferry/event_log.h"
#include "ferry/group_commit.h"
#include "ferry/http_server.h"

namespace ferry {

class ConsoleTls;
class TlsServerContext;

struct ConsoleLink {
  std::string uplink;
  bool up = false;
};

struct ConsoleSources {
  EventLog* log = nullptr;              // REQUIRES: outlives the Console
  GroupCommitWriter* writer = nullptr;  // REQUIRES: outlives the Console (tails hold commit listeners)
  const Config* config = nullptr;       // copied by Make
  std::function<std::vector<ConsoleLink>()> links;  // may be empty
};

class Console {
 public:
  // Reads the token file and, with console.tls_cert_file, the TLS files. Errors: InvalidArgument naming
  // console.token_file (empty token, or none while console.listen is not loopback), NotFound/IoError (token
  // file unreadable); InvalidArgument "console.tls: ..." naming the file and mbedTLS's reason.
  static Result<std::unique_ptr<Console>> Make(const ConsoleConfig& config, ConsoleSources sources,
                                               const Clock& clock);
  ~Console();
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  // Binds and starts the server thread (and with TLS the terminator's). Errors: HttpServer::Start's (or the
  // terminator's bind), prefixed "console.listen: ".
  Status Start();
  // Ends every tail and joins the thread. Idempotent.
  void Stop();
  uint16_t port() const;

  // Exposed for tests: the constant-time token comparison.
  static bool SameToken(const std::string& expected, const std::string& given);
  // Exposed for tests: the paths the console serves (docs/console.md's Endpoints table lists them).
  std::vector<std::string> paths() const { return http_->paths(); }

 private:
  Console(const ConsoleConfig& config, ConsoleSources sources, const Clock& clock, std::string token,
          std::shared_ptr<TlsServerContext> tls);
  bool Authorized(const HttpRequest& rq) const;
  HttpResponse Overview(const HttpRequest& rq);
  HttpResponse Tail(const HttpRequest& rq);
  HttpResponse DeadLetters(const HttpRequest& rq);
  HttpResponse Sql(const HttpRequest& rq);
  HttpResponse History(const HttpRequest& rq);
  // What the charts show now: every stream's seqs and size, the start config's uplink backlogs.
  ChartSnapshot ChartSample();
  // The server thread: serves, and samples the chart history when due.
  void Serve();

  ConsoleConfig config_;
  Config full_config_;  // the config at start (restart-only keys; retention shown as started)
  ConsoleSources src_;
  const Clock& clock_;
  std::string token_;  // empty: none required
  std::unique_ptr<HttpServer> http_;
  std::thread thread_;
  std::shared_ptr<TlsServerContext> tls_ctx_;  // set when console.tls_cert_file is
  std::unique_ptr<ConsoleTls> tls_;            // the terminator in front of http_, while started
  ChartHistory history_;                       // the server thread's
};

// The page, embedded (console_page.cc).
extern const char* const kConsolePage;
// uPlot 1.6.32 (MIT; hub/console/vendor/uplot/VENDORED.md), served at /assets/uPlot.iife.min.js and .css.
extern const char* const kUplotJs;
extern const char* const kUplotCss;

}  // namespace ferry
