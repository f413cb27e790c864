// kafka_transport.h (internal to ferry_uplink): the Kafka transport of an uplink, on librdkafka's C API.
//
// The producer is idempotent (enable.idempotence, acks=all): librdkafka retries a failed Produce request itself,
// in order and without duplicates within one producer, until message.timeout.ms; only what it gives up on, or
// what the broker refuses for good, comes back as an error. Batching (linger.ms, batch.num.messages) and
// compression (zstd or lz4) are librdkafka's own. One OutboundUnit is one record: per-event mode a CloudEvent in
// binary content mode (ce_* headers, content-type, key = subject, so a device's events stay in order within a
// partition), batched mode a FRYB batch keyed by its topic (KafkaRecordKey: a stream's batches stay in order;
// docs/wire.md).
//
// The link. Kafka has no single connection: a producer talks to every partition leader and reconnects by
// itself. What the engine calls the link is:
//   kUp         the producer exists and at least one broker answered. Connect() creates the producer if needed
//               and asks for metadata (on the poll thread, bounded by kProbeTimeout): an answer makes the link
//               kUp and bumps session(); no answer makes it kDown, and the engine backs off and calls again.
//   kDown       librdkafka reported RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, or a fatal error (rd_kafka_fatal_error:
//               the idempotent producer cannot guarantee order any more); or Disconnect(). After a fatal error
//               the next Connect() destroys the producer and creates a new one.
// One broker down while others answer is not a lost link: librdkafka holds the records of the partitions it led
// until a new leader or the broker answers, and reports them failed after kafka.message_timeout if neither does;
// ClassifyKafkaDelivery then says retry and the engine sends them again.
// A link that comes back is a new session: the engine sends again whatever it had in flight (at least once; the
// centre drops repeats by event id). Records of the old session that librdkafka still holds are not purged (with
// an idempotent producer that could end in a fatal error): they may still land, as duplicates at worst. Their
// delivery reports are not reported (the transport contract): their handles are forgotten at Connect().
//
// Threads: the UplinkTransport methods on the engine's thread. One thread of our own (the poll thread) calls
// rd_kafka_poll, which runs the delivery-report and error callbacks there; they queue reports under a mutex, set
// atomics and call the wakeup. The probe runs on that thread too, so Connect() never blocks. The log callback
// runs on librdkafka's own threads and only logs.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "ferry/clock.h"
#include "ferry/config.h"
#include "ferry/uplink_transport.h"

namespace ferry {

class KafkaTransport final : public UplinkTransport {
 public:
  // REQUIRES: config and uplink outlive the transport.
  KafkaTransport(const Config& config, const UplinkConfig& uplink);
  ~KafkaTransport() override;
  KafkaTransport(const KafkaTransport&) = delete;
  KafkaTransport& operator=(const KafkaTransport&) = delete;

  // Checks the producer configuration (every property through rd_kafka_conf_set) and creates the producer (no
  // connection yet: librdkafka connects lazily). Errors: InvalidArgument naming the config key and librdkafka's
  // reason (an unknown or malformed kafka.properties entry, a compression codec this librdkafka lacks, ...).
  Status Create();

  void Connect() override;
  LinkState link_state() const override { return state_.load(); }
  uint64_t session() const override { return session_.load(); }
  // Errors: kBusy (librdkafka's queue is full), kInvalidArgument (refused for good: too large, ...),
  // kUnavailable (not linked, or the producer hit a fatal error).
  Result<PublishHandle> Publish(OutboundUnit unit) override;
  size_t Completions(std::vector<Completion>* out) override;
  void Disconnect() override;
  void SetWakeup(std::function<void()> fn) override { wakeup_ = std::move(fn); }

  // Shutdown: waits up to `wait` for what librdkafka still holds to be delivered, then stops the poll thread.
  void Close(std::chrono::milliseconds wait);

  // How long one link probe (a metadata request) may take.
  static constexpr std::chrono::milliseconds kProbeTimeout{2000};

 private:
  struct Report {
    uintptr_t opaque;
    rd_kafka_resp_err_t err;
  };
  static void OnDelivery(rd_kafka_t* rk, const rd_kafka_message_t* msg, void* self);
  static void OnError(rd_kafka_t* rk, int err, const char* reason, void* self);
  static void OnLog(const rd_kafka_t* rk, int level, const char* fac, const char* buf);
  Result<rd_kafka_conf_t*> BuildConf() const;
  void StartPoller();
  void StopPoller();
  void PollLoop();
  void Destroy();  // REQUIRES: the poll thread stopped
  void LinkDown(const char* why);  // any thread
  void Wake() const {
    if (wakeup_) wakeup_();
  }

  const Config& config_;
  const UplinkConfig& uplink_;
  std::function<void()> wakeup_;
  rd_kafka_t* rk_ = nullptr;  // created and destroyed on the engine's thread, with the poll thread stopped
  std::thread poller_;
  std::atomic<bool> stop_poller_{false};
  std::atomic<LinkState> state_{LinkState::kDown};
  std::atomic<uint64_t> session_{0};
  std::atomic<bool> probe_{false};   // Connect() asked the poll thread for a probe
  std::atomic<bool> fatal_{false};   // the producer hit a fatal error: recreate it on the next Connect()
  std::atomic<bool> down_reported_{false};  // the first failed probe since the link was up is a warning
  std::mutex mu_;                    // guards reports_ and logged_error_
  // The last broker error logged as a warning while the link is not up, without librdkafka's "(after N ms in
  // state ...)" tail: a wrong CA or refused credentials are said once per episode, not at every reconnect.
  std::string logged_error_;
  std::vector<Report> reports_;      // delivery reports not yet collected
  // Handles of the current session still in flight, by the opaque they travel as (the engine's thread only).
  std::unordered_map<uintptr_t, uint64_t> pending_;
  uint64_t next_handle_ = 1;
};

}  // namespace ferry
