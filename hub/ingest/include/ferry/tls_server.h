// ferry/tls_server.h: server-side TLS (mbedTLS 2.28, Debian 12's) for the ingest listener, with optional
// client certificates. Made for a non-blocking epoll loop that owns the sockets: a TlsSession never blocks,
// never closes its fd and never sleeps; it says which readiness it waits for, and the loop waits for it.
//
// One TlsServerContext (certificates, key, CAs, random generator) is built at Start or on reload and shared by
// every session; a session keeps it alive, so a reload swaps the context for new connections while old ones
// finish on the old one.
//
// How a loop drives a session (the details are on each call):
//   accept -> TlsSession(ctx, fd) -> Handshake() until kOk, waiting for EPOLLIN on kWantRead and EPOLLOUT on
//   kWantWrite (the caller times a handshake out: connect_timeout) -> Read() until kWantRead, and again without
//   waiting while has_buffered_plaintext() -> Write() from the front of the output, EPOLLOUT on kWantWrite or
//   while has_pending_output() -> kClosed / kError: CloseNotify() (after kClosed), destroy, close(fd).
//
// Memory: Debian builds mbedTLS with 16 KB records both ways and without MBEDTLS_SSL_VARIABLE_BUFFER_LENGTH, so
// each session holds two fixed ~16.7 KB record buffers from construction to destruction: about 38 KB of heap a
// session (40 KB during the handshake), measured by tests/tls (TlsTest.HeapPerSession; 36.8 KB fresh on armhf).
// mbedtls_ssl_conf_max_frag_len cannot shrink them: on a server it only caps the records we send once a client
// asks for it, and the buffers are sized at compile time. Size listen.max_connections with this in mind.
//
// CPU: a full handshake (ECDHE + ECDSA P-256, client certificate verified) runs on the caller's thread, about
// 8 ms on a desktop x86 core, so tens of ms or more on a gateway's ARM core; the loop serves nobody meanwhile.
//
// Threads: a TlsSession is used by one thread at a time (the listener's). TlsServerContext::Create may run on
// any thread; a context is immutable once built and may be shared across threads (its random generator
// locks, Debian builds mbedTLS with MBEDTLS_THREADING_PTHREAD).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "ferry/error.h"

namespace ferry {

struct TlsServerOptions {
  std::string cert_file, key_file;  // PEM server chain (leaf first) and its private key
  std::string ca_file;              // PEM CAs for client certificates; empty: none asked
  bool require_client_cert = false;  // with ca_file: a client without a valid cert fails the handshake
  std::string min_version = "1.2";  // only "1.2": 1.0/1.1 are deprecated (RFC 8996), 2.28 has no 1.3 server
};

class TlsServerContext {
 public:
  // Reads and checks every file. Errors: InvalidArgument naming the option and file with the reason: the OS's
  // (unreadable, missing) or mbedTLS's error text (not PEM or DER, not a certificate, not a key, an encrypted
  // key, the key does not match the certificate), require_client_cert without ca_file, an unsupported
  // min_version. IoError if the random generator cannot be seeded.
  static Result<std::shared_ptr<TlsServerContext>> Create(const TlsServerOptions& options);

  ~TlsServerContext();
  TlsServerContext(const TlsServerContext&) = delete;
  TlsServerContext& operator=(const TlsServerContext&) = delete;

  const TlsServerOptions& options() const { return options_; }

 private:
  friend class TlsSession;
  struct Impl;  // the mbedTLS structures: ssl_config, certificates, key, entropy, ctr_drbg
  explicit TlsServerContext(TlsServerOptions options);

  TlsServerOptions options_;
  std::unique_ptr<Impl> impl_;
};

class TlsSession {
 public:
  // REQUIRES: ctx from TlsServerContext::Create; fd a connected, non-blocking stream socket. The caller keeps
  // owning the fd: it closes it after destroying (or abandoning) the session. Construction allocates the record
  // buffers; if that fails, every call returns kError and error() says why.
  TlsSession(std::shared_ptr<TlsServerContext> ctx, int fd);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  enum class Io {
    kOk,         // done (Handshake), or *got / *wrote bytes moved (> 0)
    kWantRead,   // wait for EPOLLIN, then call the same function again
    kWantWrite,  // wait for EPOLLOUT, then call the same function again
    kClosed,     // the peer closed: close_notify, or EOF without one (accepted: MQTT frames its packets, so a
                 // truncation cannot pass for a whole message). Sticky. error() says which.
    kError,      // fatal (protocol error, bad or missing client certificate, socket error or reset): error()
                 // says why; stop using the session and close the fd. Sticky: later calls return kError too.
  };

  // Call until kOk; on kWantRead / kWantWrite, wait for that readiness (not both). After kOk, returns kOk.
  // A peer that stops mid-handshake leaves it in kWantRead forever: the caller's connect timeout ends it.
  Io Handshake();

  // REQUIRES: Handshake() returned kOk.
  // Like recv(): up to cap plaintext bytes, *got > 0 with kOk. kWantRead: nothing more decrypted (epoll's
  // EPOLLIN tells when the socket has more). kWantWrite: mbedTLS has output of its own to send first (an
  // alert answering a renegotiation request, which is refused); wait for EPOLLOUT and call Read again.
  // After kOk, has_buffered_plaintext() says whether a record is only partly read: epoll will not report it.
  Io Read(char* buf, size_t cap, size_t* got);

  // REQUIRES: Handshake() returned kOk; len > 0.
  // Like send(): *wrote > 0 with kOk, at most one record (16 KB) per call; loop for more.
  // kWantWrite: the socket is full. The bytes may already be sealed in a record that is not sent yet, so the
  // next Write must start with the same bytes (it may pass more): it then sends the record and reports those
  // bytes in *wrote, without reading them again (fewer bytes than sealed: kError). A listener that writes from
  // the front of its output buffer and advances only on kOk does this naturally. kWantRead: mbedTLS waits for
  // the peer (not expected with renegotiation off); wait for EPOLLIN and call Write again the same way.
  Io Write(const char* buf, size_t len, size_t* wrote);

  // True when decrypted bytes (or a whole further record) wait inside the session: the socket may be quiet,
  // so epoll will not wake the caller for them; it must call Read again before waiting (the listener's read
  // budget per round may end while this is true: re-arm a round for it, as for its own buffered frames).
  bool has_buffered_plaintext() const;

  // True when TLS output (a sealed record, an alert) is not yet fully sent: keep EPOLLOUT armed, and call Write
  // (or Read, if no output of yours is pending) when writable.
  bool has_pending_output() const;

  // CN of the verified client certificate; "" if none was sent or it did not verify (a client without a
  // certificate is only possible when require_client_cert is false). Valid after Handshake() returned kOk.
  const std::string& peer_common_name() const { return peer_cn_; }

  // The last error in words (mbedTLS's text and the code, the certificate verification flags, the errno), for
  // logs; "" if none. error_label() is a short fixed word for metric labels: "tls_no_client_cert",
  // "tls_bad_client_cert", "tls_not_tls", "tls_protocol", "tls_peer_alert", "tls_io_error", "tls_internal",
  // "" if none.
  const std::string& error() const { return error_; }
  const char* error_label() const { return error_label_; }
  int mbedtls_error() const { return mbedtls_error_; }  // the negative mbedTLS code, 0 if none

  // Best-effort close_notify: one non-blocking attempt, nothing is waited for. Only after a handshake.
  void CloseNotify();

 private:
  struct Impl;  // the mbedtls_ssl_context and the fd
  Io Fail(int ret, const char* where);
  Io MapWant(int ret, const char* where);
  int FlushPending();

  std::shared_ptr<TlsServerContext> ctx_;
  std::unique_ptr<Impl> impl_;
  bool handshake_done_ = false;
  bool failed_ = false;
  bool closed_ = false;
  size_t sealed_ = 0;  // plaintext bytes sealed in a record that is not yet sent (Write returned kWantWrite)
  std::string peer_cn_;
  std::string error_;
  const char* error_label_ = "";
  int mbedtls_error_ = 0;
};

}  // namespace ferry
