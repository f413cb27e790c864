// A QoS 1 MQTT v5 subscriber for tests (Paho MQTT C async): collects event ids from the payload's "id"
// field and the "ce_id" user property, counts duplicates. connect_and_subscribe() blocks with a deadline.
#pragma once

#include <MQTTAsync.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "mosquitto_fixture.h"

namespace ferry::test {

class PahoSubscriber {
 public:
  PahoSubscriber(const std::string& uri, const std::string& client_id, std::string filter = "telemetry/#")
      : filter_(std::move(filter)) {
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
    MQTTAsync_createWithOptions(&client_, uri.c_str(), client_id.c_str(), MQTTCLIENT_PERSISTENCE_NONE, nullptr,
                                &co);
    MQTTAsync_setCallbacks(client_, this, &PahoSubscriber::on_lost, &PahoSubscriber::on_message, nullptr);
  }
  ~PahoSubscriber() {
    if (MQTTAsync_isConnected(client_)) {
      MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
      MQTTAsync_disconnect(client_, &d);
    }
    MQTTAsync_destroy(&client_);
  }
  PahoSubscriber(const PahoSubscriber&) = delete;
  PahoSubscriber& operator=(const PahoSubscriber&) = delete;

  // Connects (clean start) and subscribes at QoS 1; true once the SUBACK arrived.
  bool connect_and_subscribe(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    subscribed_ = false;
    failed_ = false;
    MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer5;
    o.cleanstart = 1;
    o.keepAliveInterval = 30;
    o.onSuccess5 = &PahoSubscriber::on_connected;
    o.onFailure5 = &PahoSubscriber::on_failed;
    o.context = this;
    if (MQTTAsync_connect(client_, &o) != MQTTASYNC_SUCCESS) return false;
    return poll_until([&] { return subscribed_.load() || failed_.load(); }, timeout) && subscribed_;
  }

  bool connected() const { return MQTTAsync_isConnected(client_) != 0; }

  size_t received() const {
    std::lock_guard<std::mutex> g(mu_);
    return received_;
  }
  size_t unique() const {
    std::lock_guard<std::mutex> g(mu_);
    return ids_.size();
  }
  std::set<std::string> ids() const {
    std::lock_guard<std::mutex> g(mu_);
    return ids_;
  }
  bool has(const std::string& id) const {
    std::lock_guard<std::mutex> g(mu_);
    return ids_.count(id) != 0;
  }
  // Keep every payload (for content checks on small runs).
  void keep_payloads(bool on) {
    std::lock_guard<std::mutex> g(mu_);
    keep_ = on;
  }
  std::vector<std::string> payloads() const {
    std::lock_guard<std::mutex> g(mu_);
    return payloads_;
  }
  // Messages whose ce_id property was missing or differed from the payload id.
  size_t id_mismatches() const {
    std::lock_guard<std::mutex> g(mu_);
    return mismatches_;
  }

 private:
  static void on_lost(void*, char*) {}
  static void on_connected(void* ctx, MQTTAsync_successData5*) {
    auto* self = static_cast<PahoSubscriber*>(ctx);
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess5 = &PahoSubscriber::on_subscribed;
    ro.onFailure5 = &PahoSubscriber::on_failed;
    ro.context = self;
    if (MQTTAsync_subscribe(self->client_, self->filter_.c_str(), 1, &ro) != MQTTASYNC_SUCCESS) self->failed_ = true;
  }
  static void on_subscribed(void* ctx, MQTTAsync_successData5*) { static_cast<PahoSubscriber*>(ctx)->subscribed_ = true; }
  static void on_failed(void* ctx, MQTTAsync_failureData5*) { static_cast<PahoSubscriber*>(ctx)->failed_ = true; }

  static int on_message(void* ctx, char* topic, int, MQTTAsync_message* m) {
    auto* self = static_cast<PahoSubscriber*>(ctx);
    std::string payload(static_cast<const char*>(m->payload), static_cast<size_t>(m->payloadlen));
    std::string id;
    auto p = payload.find("\"id\":\"");
    if (p != std::string::npos) {
      auto e = payload.find('"', p + 6);
      if (e != std::string::npos) id = payload.substr(p + 6, e - p - 6);
    }
    std::string ce_id;
    MQTTProperty* prop = MQTTProperties_getPropertyAt(&m->properties, MQTTPROPERTY_CODE_USER_PROPERTY, 0);
    if (prop != nullptr && std::string(prop->value.data.data, static_cast<size_t>(prop->value.data.len)) == "ce_id")
      ce_id.assign(prop->value.value.data, static_cast<size_t>(prop->value.value.len));
    {
      std::lock_guard<std::mutex> g(self->mu_);
      ++self->received_;
      self->ids_.insert(id);
      if (ce_id != id) ++self->mismatches_;
      if (self->keep_) self->payloads_.push_back(payload);
    }
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
  }

  MQTTAsync client_ = nullptr;
  std::string filter_;
  std::atomic<bool> subscribed_{false};
  std::atomic<bool> failed_{false};
  mutable std::mutex mu_;
  size_t received_ = 0;
  size_t mismatches_ = 0;
  bool keep_ = false;
  std::vector<std::string> payloads_;
  std::set<std::string> ids_;
};

}  // namespace ferry::test
