// uplink.cc: the engine and a transport (MQTT or Kafka, by the uplink's type) wired together, and the loop that
// sleeps between Steps.
#include "ferry/uplink.h"

#include "ferry/paho_glue.h"
#include "kafka_transport.h"
#include "mqtt_transport.h"

namespace ferry {
namespace {

std::unique_ptr<UplinkTransport> MakeTransport(const Config& config, const UplinkConfig& uplink, const Clock& clock,
                                               std::function<Status()>* create,
                                               std::function<void(std::chrono::milliseconds)>* close) {
  if (uplink.type == UplinkType::kKafka) {
    auto t = std::make_unique<KafkaTransport>(config, uplink);
    KafkaTransport* raw = t.get();
    *create = [raw] { return raw->Create(); };
    *close = [raw](std::chrono::milliseconds wait) { raw->Close(wait); };
    return t;
  }
  auto t = std::make_unique<MqttTransport>(config, uplink, clock);
  MqttTransport* raw = t.get();
  *create = [raw] { return raw->Create(); };
  *close = [raw](std::chrono::milliseconds wait) { raw->Close(wait); };
  return t;
}

}  // namespace

Uplink::Uplink(const Config& config, const UplinkConfig& uplink, EventLog& log, GroupCommitWriter& writer,
                       MetricsRegistry& metrics, const Clock& clock)
    : config_(config), uplink_(uplink), writer_(writer), clock_(clock),
      transport_(MakeTransport(config_, uplink_, clock, &create_, &close_)),
      engine_(std::make_unique<UplinkEngine>(config_, uplink_, log, writer, metrics, clock, *transport_)) {
  transport_->SetWakeup([this] { Wake(); });
}

Uplink::~Uplink() {
  Stop();
  engine_.reset();
  transport_.reset();  // ends the client's callbacks while the loop's wake-up members are alive
}

Status Uplink::Start() {
  if (Status st = CheckTlsFiles("uplink " + uplink_.name, uplink_.tls); !st) return st;
  if (Status st = engine_->Start(); !st) return st;
  return create_();
}

void Uplink::Step() { engine_->Step(); }

void Uplink::Wake() {
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    wake_ = true;
  }
  wake_cv_.notify_one();
}

void Uplink::Run() {
  commit_listener_ = writer_.AddCommitListener([this](uint64_t) {
    if (wants_commits_.load()) Wake();
  });
  thread_ = std::thread([this] {
    bool draining = false;
    std::chrono::steady_clock::time_point drain_until{};
    while (!stop_) {
      if (drain_ && !draining) {
        draining = true;
        engine_->Drain();
        // Real time, not the injected clock: a test's manual clock must not keep a stop waiting.
        drain_until = std::chrono::steady_clock::now() + kStopDrain;
      }
      // Listen for commits while stepping: one that lands during Step() must not be slept through.
      wants_commits_ = !draining;
      engine_->Step();
      if (draining && (engine_->drained() || std::chrono::steady_clock::now() >= drain_until)) break;
      wants_commits_ = engine_->wants_commits();
      // NextWakeup is on the injected clock's steady scale; ferryd's SystemClock is std::chrono::steady_clock.
      auto timeout = std::chrono::duration_cast<std::chrono::steady_clock::duration>(engine_->NextWakeup() -
                                                                                     clock_.Steady());
      if (draining) timeout = std::min(timeout, drain_until - std::chrono::steady_clock::now());
      std::unique_lock<std::mutex> lock(wake_mu_);
      wake_cv_.wait_for(lock, timeout, [this, draining] { return wake_ || stop_.load() || (drain_ && !draining); });
      wake_ = false;
    }
  });
}

void Uplink::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (thread_.joinable()) {
    drain_ = true;  // the loop collects what is in flight (up to kStopDrain), then ends
    Wake();
    thread_.join();
  }
  stop_ = true;
  if (commit_listener_ != 0) writer_.RemoveCommitListener(commit_listener_);
  commit_listener_ = 0;
  engine_->Shutdown();
  // MQTT: a DISCONNECT; Kafka: up to that long for librdkafka to deliver what it holds (the cursor has already
  // been persisted: what lands now is only sent early, not lost).
  close_(std::chrono::milliseconds(500));
}

}  // namespace ferry
