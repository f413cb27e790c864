// paho_glue.h (internal to ferry_hub): what the ingest and the uplinks share on top of Paho MQTT C++:
// connect options from our config, the connect-failure listener, and metric lookups by declared name.
#pragma once

#include <chrono>
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
    auto ssl = mqtt::ssl_options_builder().enable_server_cert_auth(tls.verify);
    if (!tls.ca_file.empty()) ssl.trust_store(tls.ca_file);
    if (!tls.cert_file.empty()) ssl.key_store(tls.cert_file);
    if (!tls.key_file.empty()) ssl.private_key(tls.key_file);
    builder.ssl(ssl.finalize());
  }
  return builder;
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

// The metric families ferryd declares (FerryMetricDecls), looked up with their declared help text.
inline Counter& DeclaredCounter(MetricsRegistry& m, const char* name, const Labels& labels = {}) {
  return m.GetCounter(name, FerryMetric(name).help, labels);
}
inline Gauge& DeclaredGauge(MetricsRegistry& m, const char* name, const Labels& labels = {}) {
  return m.GetGauge(name, FerryMetric(name).help, labels);
}

}  // namespace ferry
