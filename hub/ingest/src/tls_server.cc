// Server-side TLS over a non-blocking socket the caller's epoll loop owns: mbedTLS reads and writes through
// our own BIO callbacks, which turn EAGAIN into MBEDTLS_ERR_SSL_WANT_READ / WANT_WRITE.
//
// Written against mbedTLS 2.28 (Debian 12). Two things here are 2.x-only: mbedtls_ssl_flush_output comes from
// ssl_internal.h, and the session reads ssl.out_left / in_msg directly (public fields in 2.x, MBEDTLS_PRIVATE
// in 3.x, where the sealed-record bookkeeping below would go through the same mbedtls_ssl_write contract).
#include "ferry/tls_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>  // MBEDTLS_ERR_NET_* only: the sockets are ours
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
// mbedtls_ssl_flush_output (2.x). Its inline helpers use C casts, which -Wold-style-cast flags when the mbedTLS
// headers are not on a system include path (a sysroot passed with -I).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
#include <mbedtls/ssl_internal.h>
#pragma GCC diagnostic pop
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

#if MBEDTLS_VERSION_MAJOR != 2 || MBEDTLS_VERSION_MINOR < 16
#error "tls_server.cc is written for mbedTLS 2.16..2.28 (Debian 12 ships 2.28)"
#endif

namespace ferry {
namespace {

constexpr size_t kMaxPemFile = 1 << 20;  // a CA bundle is tens of KB; refuse to slurp a wrong path's huge file

std::string MbedText(int ret) {
  char buf[200];
  mbedtls_strerror(ret, buf, sizeof buf);
  char code[24];
  std::snprintf(code, sizeof code, " (-0x%04X)", static_cast<unsigned>(-ret));
  return std::string(buf) + code;
}

// The whole file, NUL-terminated as mbedTLS's PEM parser wants. Errors name the option and the path.
Result<std::string> ReadPem(const char* option, const std::string& path) {
  auto fail = [&](const std::string& why) {
    return InvalidArgument(std::string("TLS ") + option + " " + path + ": " + why);
  };
  if (path.empty()) return fail("not set");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > static_cast<off_t>(kMaxPemFile)) {
    ::close(fd);
    return fail(S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file of at most 1 MB");
  }
  std::string data;
  char chunk[4096];
  for (;;) {
    ssize_t r = ::read(fd, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int err = errno;
      ::close(fd);
      return fail(std::strerror(err));
    }
    if (r == 0) break;
    data.append(chunk, static_cast<size_t>(r));
    if (data.size() > kMaxPemFile) break;
  }
  ::close(fd);
  if (data.empty()) return fail("empty file");
  return data;  // c_str() has the terminating NUL that mbedtls_*_parse counts in its length
}

// Certificates from a PEM (or DER) file; every certificate in it must parse.
Status ParseCerts(const char* option, const std::string& path, mbedtls_x509_crt* out) {
  auto data = ReadPem(option, path);
  if (!data) return tl::make_unexpected(data.error());
  int ret = mbedtls_x509_crt_parse(out, reinterpret_cast<const unsigned char*>(data->c_str()), data->size() + 1);
  std::string prefix = std::string("TLS ") + option + " " + path + ": ";
  if (ret < 0) return InvalidArgument(prefix + "not a PEM certificate: " + MbedText(ret));
  if (ret > 0) return InvalidArgument(prefix + std::to_string(ret) + " certificate(s) in the file do not parse");
  return Ok();
}

// The subject's CN of a certificate, "" if it has none.
std::string CommonName(const mbedtls_x509_crt& crt) {
  for (const mbedtls_x509_name* n = &crt.subject; n != nullptr; n = n->next) {
    if (n->oid.p != nullptr && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0)
      return std::string(reinterpret_cast<const char*>(n->val.p), n->val.len);
  }
  return "";
}

}  // namespace

// ---- the shared context ------------------------------------------------------------------------------------

struct TlsServerContext::Impl {
  Impl() {
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_x509_crt_init(&chain);
    mbedtls_x509_crt_init(&ca);
    mbedtls_pk_init(&key);
    mbedtls_ssl_config_init(&conf);
  }
  ~Impl() {
    mbedtls_ssl_config_free(&conf);
    mbedtls_pk_free(&key);
    mbedtls_x509_crt_free(&ca);
    mbedtls_x509_crt_free(&chain);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_x509_crt chain;
  mbedtls_x509_crt ca;
  mbedtls_pk_context key;
  mbedtls_ssl_config conf;
};

TlsServerContext::TlsServerContext(TlsServerOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>()) {}

TlsServerContext::~TlsServerContext() = default;

Result<std::shared_ptr<TlsServerContext>> TlsServerContext::Create(const TlsServerOptions& options) {
  if (options.min_version != "1.2") {
    return InvalidArgument("TLS min_version \"" + options.min_version +
                           "\": only \"1.2\" (1.0 and 1.1 are deprecated; mbedTLS 2.28 has no TLS 1.3 server)");
  }
  if (options.require_client_cert && options.ca_file.empty())
    return InvalidArgument("TLS require_client_cert needs ca_file (the CAs client certificates must chain to)");

  std::shared_ptr<TlsServerContext> ctx(new TlsServerContext(options));
  Impl& m = *ctx->impl_;

  if (auto s = ParseCerts("cert_file", options.cert_file, &m.chain); !s) return tl::make_unexpected(s.error());
  {
    auto data = ReadPem("key_file", options.key_file);
    if (!data) return tl::make_unexpected(data.error());
    int ret = mbedtls_pk_parse_key(&m.key, reinterpret_cast<const unsigned char*>(data->c_str()), data->size() + 1,
                                   nullptr, 0);
    mbedtls_platform_zeroize(data->data(), data->size());
    if (ret != 0)
      return InvalidArgument("TLS key_file " + options.key_file + ": not a usable private key: " + MbedText(ret));
  }
  if (int ret = mbedtls_pk_check_pair(&m.chain.pk, &m.key); ret != 0) {
    return InvalidArgument("TLS key_file " + options.key_file + " does not match the certificate in cert_file " +
                           options.cert_file + ": " + MbedText(ret));
  }
  if (!options.ca_file.empty()) {
    if (auto s = ParseCerts("ca_file", options.ca_file, &m.ca); !s) return tl::make_unexpected(s.error());
  }

  static const char kPersonalization[] = "ferry tls server";
  if (int ret = mbedtls_ctr_drbg_seed(&m.drbg, mbedtls_entropy_func, &m.entropy,
                                      reinterpret_cast<const unsigned char*>(kPersonalization),
                                      sizeof kPersonalization - 1);
      ret != 0) {
    return IoError("TLS: seeding the random generator: " + MbedText(ret));
  }

  int ret = mbedtls_ssl_config_defaults(&m.conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                        MBEDTLS_SSL_PRESET_DEFAULT);
  if (ret != 0) return IoError("TLS: mbedtls_ssl_config_defaults: " + MbedText(ret));
  mbedtls_ssl_conf_rng(&m.conf, mbedtls_ctr_drbg_random, &m.drbg);
  mbedtls_ssl_conf_min_version(&m.conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  // A client-initiated renegotiation is answered with a no_renegotiation alert (the Read kWantWrite case).
  mbedtls_ssl_conf_renegotiation(&m.conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
  if ((ret = mbedtls_ssl_conf_own_cert(&m.conf, &m.chain, &m.key)) != 0)
    return InvalidArgument("TLS cert_file " + options.cert_file + ": " + MbedText(ret));
  if (options.ca_file.empty()) {
    mbedtls_ssl_conf_authmode(&m.conf, MBEDTLS_SSL_VERIFY_NONE);
  } else {
    mbedtls_ssl_conf_ca_chain(&m.conf, &m.ca, nullptr);
    // OPTIONAL: a client may send no certificate, or one that does not verify; either way peer_common_name()
    // is "" and the listener falls back to logins. REQUIRED: both fail the handshake.
    mbedtls_ssl_conf_authmode(&m.conf, options.require_client_cert ? MBEDTLS_SSL_VERIFY_REQUIRED
                                                                   : MBEDTLS_SSL_VERIFY_OPTIONAL);
  }
  return ctx;
}

// ---- one connection ----------------------------------------------------------------------------------------

struct TlsSession::Impl {
  explicit Impl(int f) : fd(f) { mbedtls_ssl_init(&ssl); }
  ~Impl() { mbedtls_ssl_free(&ssl); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  static int Send(void* self, const unsigned char* buf, size_t len) {
    auto* s = static_cast<Impl*>(self);
    len = std::min<size_t>(len, INT_MAX);
    for (;;) {
      ssize_t w = ::send(s->fd, buf, len, MSG_NOSIGNAL);
      if (w >= 0) return static_cast<int>(w);
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return MBEDTLS_ERR_SSL_WANT_WRITE;
      s->last_errno = errno;
      return errno == EPIPE || errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_SEND_FAILED;
    }
  }

  // mbedTLS asks for exactly the bytes of the record it is reading (the 5-byte header, then the body), so no
  // ciphertext is read ahead of need: what is not yet asked for stays in the socket and keeps EPOLLIN raised.
  static int Recv(void* self, unsigned char* buf, size_t len) {
    auto* s = static_cast<Impl*>(self);
    len = std::min<size_t>(len, INT_MAX);
    for (;;) {
      ssize_t r = ::recv(s->fd, buf, len, 0);
      if (r > 0) {
        if (s->first_byte < 0) s->first_byte = buf[0];
        return static_cast<int>(r);
      }
      if (r == 0) return 0;  // mbedTLS: MBEDTLS_ERR_SSL_CONN_EOF, or 0 from mbedtls_ssl_read
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return MBEDTLS_ERR_SSL_WANT_READ;
      s->last_errno = errno;
      return errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_RECV_FAILED;
    }
  }

  mbedtls_ssl_context ssl;
  int fd;
  int last_errno = 0;
  int first_byte = -1;  // of the peer's first record: 0x16 for a TLS handshake; anything else is not TLS
};

TlsSession::TlsSession(std::shared_ptr<TlsServerContext> ctx, int fd)
    : ctx_(std::move(ctx)), impl_(std::make_unique<Impl>(fd)) {
  int ret = mbedtls_ssl_setup(&impl_->ssl, &ctx_->impl_->conf);  // allocates the two record buffers
  if (ret != 0) {
    Fail(ret, "setup");
    return;
  }
  mbedtls_ssl_set_bio(&impl_->ssl, impl_.get(), &Impl::Send, &Impl::Recv, nullptr);
}

TlsSession::~TlsSession() = default;

TlsSession::Io TlsSession::Fail(int ret, const char* where) {
  failed_ = true;
  mbedtls_error_ = ret;
  error_ = std::string("TLS ") + where + ": " + MbedText(ret);
  const mbedtls_ssl_context& ssl = impl_->ssl;
  const int high = (-ret) & 0x7F80;  // mbedTLS codes are -(high | low); X.509's high parts are 0x2000..0x2FFF
  if (ret == MBEDTLS_ERR_NET_CONN_RESET || ret == MBEDTLS_ERR_NET_SEND_FAILED || ret == MBEDTLS_ERR_NET_RECV_FAILED) {
    error_label_ = "tls_io_error";
  } else if (ret == MBEDTLS_ERR_SSL_ALLOC_FAILED || ret == MBEDTLS_ERR_SSL_BAD_INPUT_DATA ||
             ret == MBEDTLS_ERR_SSL_INTERNAL_ERROR) {
    error_label_ = "tls_internal";
  } else if (!handshake_done_ && impl_->first_byte >= 0 && impl_->first_byte != MBEDTLS_SSL_MSG_HANDSHAKE) {
    error_label_ = "tls_not_tls";  // e.g. 0x10: an MQTT CONNECT sent to the TLS port
    char b[80];
    std::snprintf(b, sizeof b, "; the first byte was 0x%02X, not a TLS handshake record (plain MQTT?)",
                  static_cast<unsigned>(impl_->first_byte));
    error_ += b;
  } else if (ret == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE) {
    error_label_ = "tls_no_client_cert";
  } else if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED || ret == MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE ||
             ret == MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE_VERIFY || (high >= 0x2000 && high < 0x3000)) {
    error_label_ = "tls_bad_client_cert";
  } else if (ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) {
    error_label_ = "tls_peer_alert";
    if (ssl.in_msg != nullptr) error_ += "; alert " + std::to_string(ssl.in_msg[1]);
  } else {
    error_label_ = "tls_protocol";
  }
  if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
    uint32_t flags = mbedtls_ssl_get_verify_result(&ssl);
    char info[512];
    if (flags != 0 && mbedtls_x509_crt_verify_info(info, sizeof info, "", flags) > 0) {
      std::string text(info);
      std::replace(text.begin(), text.end(), '\n', ';');
      while (!text.empty() && text.back() == ';') text.pop_back();
      error_ += "; client certificate: " + text;
    }
  }
  if (impl_->last_errno != 0) error_ += std::string("; ") + std::strerror(impl_->last_errno);
  return Io::kError;
}

TlsSession::Io TlsSession::MapWant(int ret, const char* where) {
  switch (ret) {
    case MBEDTLS_ERR_SSL_WANT_READ:
      return Io::kWantRead;
    case MBEDTLS_ERR_SSL_WANT_WRITE:
      return Io::kWantWrite;
    case MBEDTLS_ERR_SSL_CONN_EOF:
    case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
      closed_ = true;
      error_ = std::string("TLS ") + where + ": the peer closed the connection" +
               (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY ? " (close_notify)" : "");
      return Io::kClosed;
    default:
      return Fail(ret, where);
  }
}

// Sends what mbedTLS holds sealed (a record, an alert). 0 when nothing is left.
int TlsSession::FlushPending() {
  return impl_->ssl.out_left == 0 ? 0 : mbedtls_ssl_flush_output(&impl_->ssl);
}

TlsSession::Io TlsSession::Handshake() {
  if (failed_) return Io::kError;
  if (closed_) return Io::kClosed;
  if (handshake_done_) return Io::kOk;
  int ret = mbedtls_ssl_handshake(&impl_->ssl);
  if (ret != 0) return MapWant(ret, "handshake");
  handshake_done_ = true;
  // OPTIONAL mode lets a certificate that did not verify through: it names nobody.
  const mbedtls_x509_crt* peer = mbedtls_ssl_get_peer_cert(&impl_->ssl);
  if (peer != nullptr && mbedtls_ssl_get_verify_result(&impl_->ssl) == 0) peer_cn_ = CommonName(*peer);
  return Io::kOk;
}

TlsSession::Io TlsSession::Read(char* buf, size_t cap, size_t* got) {
  *got = 0;
  if (failed_) return Io::kError;
  if (closed_) return Io::kClosed;
  if (!handshake_done_) return Fail(MBEDTLS_ERR_SSL_BAD_INPUT_DATA, "read before the handshake");
  // mbedTLS's own output (an alert) left over from an earlier Read goes first; a sealed application record
  // is Write's to report, and reading must not wait for it (a peer may write before it reads).
  if (sealed_ == 0) {
    if (int ret = FlushPending(); ret != 0) return MapWant(ret, "read");
  }
  int ret = mbedtls_ssl_read(&impl_->ssl, reinterpret_cast<unsigned char*>(buf), cap);
  if (ret > 0) {
    *got = static_cast<size_t>(ret);
    return Io::kOk;
  }
  if (ret == 0) return MapWant(MBEDTLS_ERR_SSL_CONN_EOF, "read");
  return MapWant(ret, "read");
}

TlsSession::Io TlsSession::Write(const char* buf, size_t len, size_t* wrote) {
  *wrote = 0;
  if (failed_) return Io::kError;
  if (closed_) return Io::kClosed;
  if (!handshake_done_) return Fail(MBEDTLS_ERR_SSL_BAD_INPUT_DATA, "write before the handshake");
  mbedtls_ssl_context& ssl = impl_->ssl;
  if (sealed_ > 0) {
    // The record holding the first sealed_ bytes is built; mbedtls_ssl_write would report the *new* len once
    // it is sent (bytes lost if the caller appended more), so the count is ours.
    if (len < sealed_) return Fail(MBEDTLS_ERR_SSL_BAD_INPUT_DATA, "write retried with fewer bytes than it sealed");
    if (int ret = FlushPending(); ret != 0) return MapWant(ret, "write");
    *wrote = sealed_;
    sealed_ = 0;
    return Io::kOk;
  }
  if (len == 0) return Io::kOk;  // mbedtls_ssl_write(0) would send an empty record
  // An alert or handshake message still queued would be flushed by mbedtls_ssl_write in place of our record,
  // which would then report len bytes sent that never were.
  if (int ret = FlushPending(); ret != 0) return MapWant(ret, "write");
  int ret = mbedtls_ssl_write(&ssl, reinterpret_cast<const unsigned char*>(buf), len);
  if (ret >= 0) {
    *wrote = static_cast<size_t>(ret);
    return Io::kOk;
  }
  if (ret == MBEDTLS_ERR_SSL_WANT_WRITE && ssl.out_left != 0) {
    // The record is sealed: nothing else was queued (flushed above) and renegotiation is off, so the pending
    // output is our bytes, as many as mbedtls_ssl_write put in one record.
    int max = mbedtls_ssl_get_max_out_record_payload(&ssl);
    sealed_ = max > 0 ? std::min(len, static_cast<size_t>(max)) : len;
  }
  return MapWant(ret, "write");
}

bool TlsSession::has_buffered_plaintext() const {
  if (failed_ || closed_ || !handshake_done_) return false;
  return mbedtls_ssl_get_bytes_avail(&impl_->ssl) > 0 || mbedtls_ssl_check_pending(&impl_->ssl) != 0;
}

bool TlsSession::has_pending_output() const { return !failed_ && impl_->ssl.out_left != 0; }

void TlsSession::CloseNotify() {
  if (failed_ || !handshake_done_) return;
  // A sealed record goes first if the socket takes it; the alert is then one more non-blocking attempt.
  if (FlushPending() != 0) return;
  (void)mbedtls_ssl_close_notify(&impl_->ssl);
}

}  // namespace ferry
