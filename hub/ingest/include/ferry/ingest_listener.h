// ferry/ingest_listener.h: ferryd as the devices' MQTT endpoint. Each QoS 1 PUBACK leaves only after the
// group commit that holds the event has returned.
//
// An ingest endpoint, not a broker: CONNECT, PUBLISH QoS 0/1, PUBACK, PINGREQ, DISCONNECT (MQTT 3.1.1 and 5.0,
// the codec in hub/mqtt). SUBSCRIBE is answered with a failure code (5.0: 0x87 Not authorized, 3.1.1: 0x80),
// QoS 2 and retained publishes (5.0) are protocol errors: the CONNACK says so (Maximum QoS 1, Retain not
// available). docs/ingest-listener.md has the rules and the reason labels.
//
// Why acknowledge only after the commit: a broker between devices and ferryd acknowledges before ferryd has
// stored anything, so a power cut loses what the broker held in RAM (thousands of events, measured). Here the
// PUBACK is the promise "on disk". It stays fast by pipelining: a connection may have up to Receive Maximum
// (listen.receive_maximum) messages unacknowledged, and one group commit acknowledges all of them. At that
// many, the listener stops reading the connection (TCP back-pressure) until commits return.
//
// When an event cannot be stored (disk budget full under reject_new, map full, I/O error): no success PUBACK.
// A 5.0 device gets PUBACK 0x97 Quota exceeded (Full) or 0x80 Unspecified error and keeps the event; a 3.1.1
// device gets no PUBACK for it, and once its window is taken by such messages its connection is closed, so it
// re-sends after reconnecting. PUBACKs go out in the order the PUBLISHes came in (MQTT 4.6).
//
// A device id (id_json_field / id_user_property) seen again while its first copy is still being committed is
// acknowledged with that copy's outcome, never before it; an id whose event failed to store is forgotten by the
// redelivery window, so its re-send is stored.
//
// Threads: Start, Reconfigure and Stop from the control thread; Run() starts the listener's own thread, which
// does all socket work and calls Step(). Completions arrive on the writer's thread and are handed over through
// a queue and an eventfd.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ferry/clock.h"
#include "ferry/config.h"
#include "ferry/crash_guard.h"
#include "ferry/error.h"
#include "ferry/ingest_accounting.h"
#include "ferry/ingest_router.h"
#include "ferry/metrics.h"
#include "ferry/mqtt_ingest.h"  // IngestSink
#include "ferry/password_file.h"
#include "ferry/tls_server.h"

namespace ferry {

class IngestListener {
 public:
  // REQUIRES: sink, metrics and clock outlive the listener.
  IngestListener(const Config& config, IngestRouter router, IngestSink& sink, MetricsRegistry& metrics,
                 const Clock& clock);
  ~IngestListener();
  IngestListener(const IngestListener&) = delete;
  IngestListener& operator=(const IngestListener&) = delete;

  // Reads the password file and binds ingest.listen.address. Errors: InvalidArgument (address, password
  // file), IoError (the port is taken, permission denied: the errno's words and the address).
  Status Start();
  // One round of the loop: waits up to max_wait for sockets or completions, handles them, closes timed-out
  // connections. Thread: one at a time (Run()'s thread, or a test's).
  void Step(std::chrono::milliseconds max_wait);
  // Starts a thread that calls Step until Stop().
  void Run();
  // Stops the thread, closes the listening socket and every connection. Events already handed to the sink are
  // committed by the writer; their PUBACKs are not sent (the devices re-send, and ids deduplicate).
  void Stop();

  // SIGHUP: a router built from the new configuration. Safe while devices publish.
  void Reconfigure(IngestRouter router);

  // Poison messages (ferry/crash_guard.h): the listener's thread uses `slot`. REQUIRES: before Run().
  void SetCrashGuard(CrashGuard* guard, size_t slot) {
    guard_ = guard;
    guard_slot_ = slot;
  }

  uint16_t port() const { return port_; }  // the bound port (listen.address may say :0)
  size_t connections() const { return connection_count_.load(); }
  bool listening() const { return listen_fd_ >= 0 && !stopping_.load(); }
  // IngestSink::CommitSoon() calls so far: every device waiting for a PUBACK had filled its window. Step's thread.
  uint64_t commit_hints() const { return commit_hints_; }

 private:
  struct Connection;
  struct Completion {
    uint64_t conn_id = 0;
    uint64_t entry = 0;    // the connection's acknowledgement slot; 0: none (QoS 0)
    std::string dedupe;    // stream \x1f id while the id is pending, else empty
    std::string stream;
    std::string id;
    ErrorCode code = ErrorCode::kIoError;  // valid when !ok
    bool ok = false;
  };
  struct Waiter {
    uint64_t conn_id;
    uint64_t entry;
  };

  void Accept();
  void OnReadable(Connection& c);
  bool Handshake(Connection& c);  // TLS: false while it is not done (or the connection closed)
  // recv() or TLS Read: > 0 bytes, 0 end of stream, -1 nothing now, -2 closed on an error.
  long ReadSome(Connection& c, char* buf, size_t cap);
  void ParseBuffered(Connection& c);
  void OnWritable(Connection& c);
  bool HandleFrame(Connection& c);  // false: the connection was closed
  bool HandleConnect(Connection& c, const void* frame);
  bool HandlePublish(Connection& c, const void* frame);
  void Store(Connection& c, RouteDecision d, uint8_t qos, uint64_t entry);
  void HintCommit();  // every waiting device's window is full: ask the writer not to linger
  uint64_t NewEntry(Connection& c, uint16_t packet_id);
  void Resolve(uint64_t conn_id, uint64_t entry, bool ok, ErrorCode code);
  void SendReadyAcks(Connection& c);
  void DrainCompletions();
  void PostCompletion(Completion c);  // writer thread
  void Flush(Connection& c);
  void UpdateInterest(Connection& c);
  void Close(Connection& c, const char* reason, int v5_reason = -1);
  void CloseRemoved();
  void CheckTimers();
  std::string Identity(const Connection& c) const;

  const Config config_;
  const ListenConfig& listen_;
  IngestRouter router_;
  std::mutex router_mu_;  // router_: the loop thread routes, Reconfigure swaps
  IngestSink& sink_;
  MetricsRegistry& metrics_;
  const Clock& clock_;
  IngestAccounting accounting_;  // the loop thread's
  PasswordFile passwords_;
  std::shared_ptr<TlsServerContext> tls_;  // listen.tls.enabled
  std::vector<uint64_t> ready_;  // connections with bytes that no readiness event will announce (TLS buffers)
  CrashGuard* guard_ = nullptr;
  size_t guard_slot_ = 0;
  std::string crash_on_payload_;  // FERRY_FAULT_CRASH_PAYLOAD: fault injection for the poison tests

  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: completions and Stop
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;

  uint64_t next_conn_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> conns_;
  std::unordered_map<std::string, uint64_t> by_client_id_;
  std::vector<uint64_t> closed_;   // closed this round, freed at its end
  bool window_filled_ = false;    // a connection's window filled this round: see HintCommit
  uint64_t commit_hints_ = 0;     // CommitSoon() calls made (for tests)
  std::vector<uint64_t> touched_;  // acknowledgements resolved this round: flush (may repeat an id)
  std::atomic<size_t> connection_count_{0};
  std::unordered_map<std::string, std::vector<Waiter>> pending_ids_;  // dedupe key -> acks waiting for it
  SteadyTime next_timer_scan_{};

  std::mutex done_mu_;
  std::vector<Completion> done_;       // from the writer thread
  std::vector<Completion> draining_;   // the loop's copy

  std::unordered_map<std::string, Counter*> closed_by_reason_;
  Counter* accepted_;
  Counter* messages_;
  Counter* refused_full_;
  Counter* refused_error_;
  Gauge* connections_gauge_;
  Gauge* link_up_;
};

}  // namespace ferry
