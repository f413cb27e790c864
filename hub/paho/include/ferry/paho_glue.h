// paho_glue.h (internal to ferry_hub): what the ingest and the uplinks share on top of Paho MQTT C++:
// connect options from our config, the connect-failure listener, and metric lookups by declared name.
#pragma once

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <utility>

#include <mqtt/async_client.h>

#include "ferry/config.h"
#include "ferry/metrics.h"

namespace ferry {

// MQTT v5 connect options common to ferryd's clients. `clean_start` false keeps a session across restarts.
inline mqtt::connect_options_builder MqttConnectOptions(const std::string& username, const std::string& password,
                                                        const TlsConfig& tls, bool clean_start,
                                                        std::chrono::seconds keepalive) {
  auto builder = mqtt::connect_options_builder()
                     .mqtt_version(MQTTVERSION_5)
                     .clean_start(clean_start)
                     .keep_alive_interval(keepalive)
                     .connect_timeout(std::chrono::seconds(10))
                     .automatic_reconnect(false);  // ours has jitter (ferry/flow_control.h)
  if (!username.empty()) builder.user_name(username).password(password);
  if (tls.enabled) {
    // verify: the certificate chain (enable_server_cert_auth) and the host name against the certificate.
    auto ssl = mqtt::ssl_options_builder().enable_server_cert_auth(tls.verify).verify(tls.verify);
    if (!tls.ca_file.empty()) ssl.trust_store(tls.ca_file);
    if (!tls.cert_file.empty()) ssl.key_store(tls.cert_file);
    if (!tls.key_file.empty()) ssl.private_key(tls.key_file);
    builder.ssl(ssl.finalize());
  }
  return builder;
}

// The TLS files must be readable when a client starts: Paho would only fail the TLS handshake, later and
// without naming the file. `section` is "ingest" or "uplink NAME", for the message.
inline Status CheckTlsFiles(const std::string& section, const TlsConfig& tls) {
  if (!tls.enabled) return Ok();
  for (const auto& [key, file] : {std::pair<const char*, const std::string*>{"tls.ca_file", &tls.ca_file},
                                  {"tls.cert_file", &tls.cert_file},
                                  {"tls.key_file", &tls.key_file}}) {
    if (file->empty()) continue;
    std::ifstream in(*file);
    if (!in) {
      return InvalidArgument(section + " " + key + " \"" + *file + "\": cannot be read (" + std::strerror(errno) + ")");
    }
  }
  return Ok();
}

// Why a connect attempt failed, for the log: the broker's refusal (an MQTT v5 reason code such as "Not
// authorized") or Paho's error, with a hint for TLS, where Paho's error does not say what went wrong.
inline std::string ConnectFailureText(const mqtt::token& tok, bool tls) {
  int reason = static_cast<int>(tok.get_reason_code());
  if (reason >= 0x80) {
    return "the broker refused the connection: " + mqtt::exception::reason_code_str(reason) + " (reason code " +
           std::to_string(reason) + ")";
  }
  std::string text = mqtt::exception::error_str(tok.get_return_code()) + " (return code " +
                     std::to_string(tok.get_return_code()) + ")";
  if (tls) {
    text += "; with TLS on, this is also what a failed handshake looks like: check tls.ca_file against the "
            "broker's certificate and host name, and the client certificate if the broker requires one";
  }
  return text;
}

// What a TCP connection to a broker URI runs into, found by doing what Paho did: resolve the host, connect.
// Paho C reports a refused port, an unreachable host and an unresolvable name alike, as "TCP/TLS connect
// failure" (return code -1, no errno), so the words have to come from a second look.
struct TcpProbe {
  enum class Outcome { kDns, kRefused, kUnreachable, kTimeout, kOpen, kBadAddress } outcome;
  std::string text;  // in words, naming the host and port; "" for kOpen
};

// REQUIRES: uri is scheme://host[:port] (the config checks it). Blocks for the resolver, then up to `timeout`
// per address for the TCP handshake; closes what it opened and sends nothing. Thread: any.
inline TcpProbe ProbeTcp(const std::string& uri, std::chrono::milliseconds timeout) {
  auto sep = uri.find("://");
  const std::string scheme = sep == std::string::npos ? "tcp" : uri.substr(0, sep);
  std::string rest = sep == std::string::npos ? uri : uri.substr(sep + 3);
  rest = rest.substr(0, rest.find('/'));
  std::string host = rest, port;
  auto colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find(']', colon) == std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (port.empty()) {
    port = scheme == "ssl" || scheme == "mqtts" ? "8883" : scheme == "wss" ? "443" : scheme == "ws" ? "80" : "1883";
  }
  const std::string where = host + ":" + port;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int gai = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (gai != 0) {
    std::string why = gai == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(gai);
    return {TcpProbe::Outcome::kDns, "DNS: host name \"" + host + "\" does not resolve (" + why + ")"};
  }
  TcpProbe last{TcpProbe::Outcome::kBadAddress, where + ": no usable address"};
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int err = 0;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
        socklen_t len = sizeof err;
        if (n == 0) err = ETIMEDOUT;
        else if (n < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      }
    }
    ::close(fd);
    if (err == 0) {
      ::freeaddrinfo(res);
      return {TcpProbe::Outcome::kOpen, ""};
    }
    const std::string why = std::strerror(err);
    if (err == ECONNREFUSED) {
      last = {TcpProbe::Outcome::kRefused,
              "refused: nothing listens on " + where + " (" + why + "): is the broker running, on that port?"};
    } else if (err == ETIMEDOUT) {
      last = {TcpProbe::Outcome::kTimeout, "unreachable: no answer from " + where + " within " +
                                               std::to_string(timeout.count()) +
                                               " ms (host down, or a firewall dropping the packets)"};
    } else {
      last = {TcpProbe::Outcome::kUnreachable, "unreachable: " + where + " (" + why + ")"};
    }
  }
  ::freeaddrinfo(res);
  return last;
}

// ConnectFailureText for a client of `uri`: the broker's refusal in words (auth for a login it refused), else
// Paho's error explained by a probe of the address (DNS, refused, unreachable), else, when TCP opens, TLS
// (with tls on) or the MQTT handshake. Blocks for the probe (up to 2 s plus the resolver): call it from Paho's
// callback thread or a control thread, never from a hot path.
inline std::string ConnectFailureText(const mqtt::token& tok, bool tls, const std::string& uri) {
  int reason = static_cast<int>(tok.get_reason_code());
  // Paho C 1.3 hands a v5 CONNACK's refusal over as the return code (135 for Not authorized), not the reason.
  if (reason < 0x80 && tok.get_return_code() >= 0x80) reason = tok.get_return_code();
  if (reason >= 0x80) {
    std::string text = mqtt::exception::reason_code_str(reason) + " (reason code " + std::to_string(reason) + ")";
    // 0x86 Bad user name or password, 0x87 Not authorized, 0x8C Bad authentication method.
    if (reason == 0x86 || reason == 0x87 || reason == 0x8C)
      return "auth: the broker refused the login: " + text + "; check username and password";
    return "the broker refused the connection: " + text;
  }
  const std::string paho = mqtt::exception::error_str(tok.get_return_code()) + ", return code " +
                           std::to_string(tok.get_return_code());
  TcpProbe probe = ProbeTcp(uri, std::chrono::milliseconds(2000));
  if (probe.outcome != TcpProbe::Outcome::kOpen) return probe.text + " (Paho: " + paho + ")";
  if (tls) {
    return "TLS: the TCP connection opens, so the TLS handshake failed: check tls.ca_file against the broker's "
           "certificate and host name, that the port speaks TLS, and the client certificate if the broker "
           "requires one (Paho: " + paho + ")";
  }
  return "the TCP connection opens but the MQTT handshake failed: is it an MQTT port, and not a TLS-only one? "
         "(Paho: " + paho + ")";
}

// Paho reports a failed connect through a listener object it keeps a raw pointer to: the owner keeps the
// listener alive for the client's lifetime.
class ConnectListener final : public mqtt::iaction_listener {
 public:
  explicit ConnectListener(std::function<void(const mqtt::token&)> on_failure) : on_failure_(std::move(on_failure)) {}
  void on_failure(const mqtt::token& tok) override { on_failure_(tok); }
  void on_success(const mqtt::token&) override {}

 private:
  std::function<void(const mqtt::token&)> on_failure_;
};

}  // namespace ferry
