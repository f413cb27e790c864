// downlink_mqtt.h (internal): the retained messages under an MQTT topic filter mirrored into a table stream.
//
// The centre keeps each row as a retained message on its own topic (`central/assets/pump-7`), deletes a row by
// publishing an empty retained message, and the downlink's row key is the topic's levels from the filter's first
// wildcard on (`pump-7` under `central/assets/#`).
//
// Why the sync state: Paho MQTT C sends the PUBACK of a QoS 1 message *before* it calls the message callback
// (MQTTProtocol_handlePublishes), so the broker may forget a message ferryd has not committed yet: the one in
// the callback when the process dies. Hence:
//  - a **full sync** subscribes on a clean session: the broker sends every retained message under the filter;
//    the sync ends at the first message without the retain flag, or `mqtt.sync_quiet` after the last message;
//    then every row of the table the sync did not see is deleted (the centre deleted it while the gateway was
//    away), and the state becomes "open". Rows are committed in batches during a sync: if ferryd dies meanwhile,
//    the state is still "syncing" and the next start syncs in full again.
//  - afterwards each message is committed **before its callback returns** (Paho reads nothing else meanwhile),
//    and the persistent session queues changes while the link is down: a resync fetches only them.
//  - a clean stop writes "clean"; a start that finds "open" (ferryd died: the message in flight may be lost),
//    no state, or "syncing", or a broker without the session, syncs in full. A commit that fails (disk full)
//    also forces a full sync, retried with backoff until the log takes it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include <mqtt/async_client.h>

#include "ferry/downlink.h"
#include "ferry/flow_control.h"

namespace ferry {

class MqttDownlink final : public Downlink {
 public:
  MqttDownlink(const Config& config, const DownlinkConfig& downlink, EventLog& log, GroupCommitWriter& writer,
               MetricsRegistry& metrics, const Clock& clock);
  ~MqttDownlink() override;

  // InvalidArgument: an address Paho refuses, an unreadable TLS file.
  Status Start() override;
  void Stop() override;

 private:
  class Listener;  // Paho's action listener, forwarding to a function
  using SteadyTime = std::chrono::steady_clock::time_point;

  void Loop();
  void Connect();
  void OnConnected(bool session_present);
  void OnConnectFailed(const std::string& why);
  void OnConnectionLost(const std::string& cause);
  void OnMessage(const mqtt::const_message_ptr& msg);
  // Writes "syncing", then subscribes: the broker answers with the retained messages.
  void BeginSync();
  // Commits the rest of the sync, deletes the rows it did not see, and writes "open". False: start over.
  bool FinishSync();
  // Drops the connection and schedules a full sync after the backoff.
  void Restart(const std::string& why);
  bool WriteState(const char* value);
  void Down(const std::string& why);

  std::unique_ptr<mqtt::async_client> client_;
  std::unique_ptr<Listener> connect_listener_, subscribe_listener_;
  std::thread thread_;
  std::atomic<bool> stop_{false};

  // Under mu_: the connection and sync state, shared by the loop thread and Paho's thread.
  std::mutex mu_;
  std::condition_variable cv_;
  Backoff backoff_;
  SteadyTime next_attempt_{};
  bool connecting_ = false;
  bool connected_ = false;
  bool need_full_ = true;        // the next connection must sync in full (clean start)
  bool want_subscribe_ = false;  // connected, and a full sync is to begin (on the loop thread)
  bool syncing_ = false;         // subscribed for a full sync, not finished
  bool subacked_ = false;
  bool saw_live_ = false;        // a message without the retain flag arrived during the sync: the burst is over
  bool synced_ = false;          // a full sync completed (state "open")
  std::string restart_;          // non-empty: the loop must drop the connection and sync in full (why)
  bool down_reported_ = false;
  SteadyTime last_message_{};
  SteadyTime next_reset_check_{};
  bool reset_pending_ = false;  // the current full sync also completes a requested reset
  std::set<std::string> seen_;          // keys the current full sync delivered
  std::vector<Event> batch_;            // rows of the sync not yet submitted
  std::deque<PendingRows> pending_;     // submitted rows of the sync, not yet confirmed
  uint64_t sync_rows_ = 0;
  uint64_t next_id_ = 0;
};

}  // namespace ferry
