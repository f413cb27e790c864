// uplink_mqtt.cc: the engine and the MQTT transport wired together, and the loop that sleeps between Steps.
#include "ferry/uplink_mqtt.h"

#include "ferry/paho_glue.h"
#include "mqtt_transport.h"

namespace ferry {

UplinkMqtt::UplinkMqtt(const Config& config, const UplinkConfig& uplink, EventLog& log, GroupCommitWriter& writer,
                       MetricsRegistry& metrics, const Clock& clock)
    : config_(config), uplink_(uplink), writer_(writer), clock_(clock),
      transport_(std::make_unique<MqttTransport>(config_, uplink_, clock)),
      engine_(std::make_unique<UplinkEngine>(config_, uplink_, log, writer, metrics, clock, *transport_)) {
  transport_->SetWakeup([this] { Wake(); });
}

UplinkMqtt::~UplinkMqtt() {
  Stop();
  engine_.reset();
  transport_.reset();  // ends Paho's callbacks while the loop's wake-up members are alive
}

Status UplinkMqtt::Start() {
  if (Status st = CheckTlsFiles("uplink " + uplink_.name, uplink_.tls); !st) return st;
  if (Status st = engine_->Start(); !st) return st;
  return transport_->Create();
}

void UplinkMqtt::Step() { engine_->Step(); }

void UplinkMqtt::Wake() {
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    wake_ = true;
  }
  wake_cv_.notify_one();
}

void UplinkMqtt::Run() {
  commit_listener_ = writer_.AddCommitListener([this](uint64_t) {
    if (wants_commits_.load()) Wake();
  });
  thread_ = std::thread([this] {
    while (!stop_) {
      // Listen for commits while stepping: one that lands during Step() must not be slept through.
      wants_commits_ = true;
      engine_->Step();
      wants_commits_ = engine_->wants_commits();
      // NextWakeup is on the injected clock's steady scale; ferryd's SystemClock is std::chrono::steady_clock.
      const auto timeout = engine_->NextWakeup() - clock_.Steady();
      std::unique_lock<std::mutex> lock(wake_mu_);
      wake_cv_.wait_for(lock, timeout, [this] { return wake_ || stop_.load(); });
      wake_ = false;
    }
  });
}

void UplinkMqtt::Stop() {
  if (stopped_) return;
  stopped_ = true;
  stop_ = true;
  Wake();
  if (thread_.joinable()) thread_.join();
  if (commit_listener_ != 0) writer_.RemoveCommitListener(commit_listener_);
  commit_listener_ = 0;
  engine_->Shutdown();
  transport_->Close(std::chrono::milliseconds(500));
}

}  // namespace ferry
