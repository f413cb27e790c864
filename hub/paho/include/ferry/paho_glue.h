// paho_glue.h (internal to ferry_hub): what the ingest and the uplinks share on top of Paho MQTT C++:
// connect options from our config, the connect-failure listener, and metric lookups by declared name.
#pragma once

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
