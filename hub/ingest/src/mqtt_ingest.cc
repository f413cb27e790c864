#include "ferry/mqtt_ingest.h"

#include <mqtt/async_client.h>

#include "ferry/log.h"
#include "ferry/paho_glue.h"

namespace ferry {
namespace {

// Counts SUBSCRIBE acknowledgements; the link counts as up only once every filter is subscribed, so nothing
// published after "link up" can miss the subscription.
class SubscribeListener final : public mqtt::iaction_listener {
 public:
  SubscribeListener(size_t expected, std::function<void(bool)> done) : remaining_(expected), done_(std::move(done)) {}
  void on_success(const mqtt::token&) override {
    if (--remaining_ == 0) done_(true);
  }
  void on_failure(const mqtt::token&) override { done_(false); }

 private:
  std::atomic<size_t> remaining_;
  std::function<void(bool)> done_;
};

}  // namespace

MqttIngest::MqttIngest(const Config& config, IngestRouter router, IngestSink& sink, MetricsRegistry& metrics,
                       const Clock& clock)
    : config_(config), router_(std::move(router)), sink_(sink), metrics_(metrics), clock_(clock),
      backoff_(config.ingest.backoff.min, config.ingest.backoff.max,
               std::hash<std::string>{}(config.gateway.id) ^ static_cast<uint64_t>(clock.Now().ns)) {
  messages_ = &DeclaredCounter(metrics_, "ferry_ingest_messages_total");
  reconnects_ = &DeclaredCounter(metrics_, "ferry_ingest_reconnects_total");
  link_up_ = &DeclaredGauge(metrics_, "ferry_ingest_link_up");
}

MqttIngest::~MqttIngest() {
  Stop();
  // Paho can still call our handlers (connection lost, a connect or subscribe listener) until the client is
  // destroyed: destroy it first, while every member they touch is alive. Left to the member order, the
  // condition variable and listeners (declared after client_) would go first.
  client_.reset();
}

Status MqttIngest::Start() {
  const IngestConfig& ic = config_.ingest;
  if (Status st = CheckTlsFiles("ingest", ic.tls); !st) return st;
  std::string client_id = ic.client_id.empty() ? "ferry-" + config_.gateway.id : ic.client_id;
  try {
    client_ = std::make_unique<mqtt::async_client>(ic.address, client_id, mqtt::create_options(MQTTVERSION_5));
  } catch (const mqtt::exception& e) {
    return InvalidArgument("ingest.address \"" + ic.address + "\": " + e.what());
  }
  client_->set_connected_handler([this](const std::string&) { OnConnected(); });
  client_->set_connection_lost_handler([this](const std::string& cause) { OnConnectionLost(cause); });
  client_->set_message_callback([this](mqtt::const_message_ptr msg) { OnMessage(&msg); });
  next_attempt_ = clock_.Steady();
  return Ok();
}

void MqttIngest::Step() {
  if (lost_subscription_.exchange(false) && client_) {
    // Without its subscriptions the session receives nothing: start over with a fresh connection.
    try {
      client_->disconnect(0);
    } catch (const mqtt::exception&) {
    }
    OnConnectionLost("subscription refused");
  }
  if (!client_ || stopping_ || connected_ || connecting_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (clock_.Steady() < next_attempt_) return;
  }
  const IngestConfig& ic = config_.ingest;
  auto expiry = std::chrono::duration_cast<std::chrono::seconds>(ic.session_expiry).count();
  // A persistent session: the broker queues QoS 1 messages for ferryd while it is away.
  auto builder = MqttConnectOptions(ic.username, ic.password, ic.tls, /*clean_start=*/false,
                                    std::chrono::duration_cast<std::chrono::seconds>(ic.keepalive));
  // Receive Maximum bounds what the broker sends ahead of our acknowledgements. Without it a reconnect to a
  // large queued backlog arrives as one burst of up to 65,535 messages, with the SUBACK queued behind it.
  builder.properties({mqtt::property(mqtt::property::SESSION_EXPIRY_INTERVAL,
                                     static_cast<int>(std::min<int64_t>(expiry, INT32_MAX))),
                      mqtt::property(mqtt::property::RECEIVE_MAXIMUM, static_cast<int>(ic.receive_maximum))});
  connecting_ = true;
  reconnects_->Inc();
  auto fail = [this](const std::string& why) {
    std::chrono::nanoseconds delay;
    {
      std::lock_guard<std::mutex> lock(mu_);
      delay = backoff_.Next();
      next_attempt_ = clock_.Steady() + delay;
    }
    FERRY_LOG_WARN("ingest: %s: %s; retrying in %lld ms", config_.ingest.address.c_str(), why.c_str(),
                   static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(delay).count()));
    connecting_ = false;
  };
  try {
    connect_listener_ = std::make_unique<ConnectListener>([this, fail](const mqtt::token& tok) {
      fail("connect failed: " + ConnectFailureText(tok, config_.ingest.tls.enabled, config_.ingest.address));
    });
    client_->connect(builder.finalize(), nullptr, *connect_listener_);
  } catch (const mqtt::exception& e) {
    fail(e.what());
  }
}

void MqttIngest::Reconfigure(IngestRouter router, const BackoffConfig& backoff) {
  std::lock_guard<std::mutex> lock(mu_);
  router_ = std::move(router);
  backoff_ = Backoff(backoff.min, backoff.max, static_cast<uint64_t>(clock_.Now().ns));
}

void MqttIngest::OnConnected() {
  connected_ = true;
  connecting_ = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    backoff_.Reset();
  }
  FERRY_LOG_INFO("ingest: connected to %s", config_.ingest.address.c_str());
  // Subscribe on every connect: a broker that lost our session (expiry, restart without persistence) has
  // forgotten the subscriptions; re-subscribing to a present session is harmless.
  std::vector<std::string> filters;
  {
    std::lock_guard<std::mutex> lock(mu_);
    filters = router_.Subscriptions();
  }
  subscribe_listener_ = std::make_unique<SubscribeListener>(filters.size(), [this](bool ok) {
    if (ok) {
      link_up_->Set(1);
      return;
    }
    FERRY_LOG_ERROR("ingest: the broker refused a subscription; reconnecting");
    lost_subscription_ = true;
  });
  try {
    for (const auto& filter : filters) client_->subscribe(filter, 1, nullptr, *subscribe_listener_);
  } catch (const mqtt::exception& e) {
    FERRY_LOG_ERROR("ingest: subscribe failed: %s", e.what());
    lost_subscription_ = true;
  }
}

void MqttIngest::OnConnectionLost(const std::string& cause) {
  connected_ = false;
  connecting_ = false;
  link_up_->Set(0);
  std::chrono::nanoseconds delay;
  {
    std::lock_guard<std::mutex> lock(mu_);
    delay = backoff_.Next();
    next_attempt_ = clock_.Steady() + delay;
  }
  FERRY_LOG_WARN("ingest: connection to %s lost (%s)", config_.ingest.address.c_str(),
                 cause.empty() ? "no reason given" : cause.c_str());
}

void MqttIngest::OnMessage(const void* raw) {
  const auto& msg = *static_cast<const mqtt::const_message_ptr*>(raw);
  messages_->Inc();
  // A message on our session proves the subscription is in place: after a restart into a queued backlog the
  // broker sends up to Receive Maximum messages before the SUBACK, and the link is up (ingesting) meanwhile.
  if (connected_ && link_up_->Value() == 0) link_up_->Set(1);
  InboundMessage in;
  const std::string& topic = msg->get_topic();
  const mqtt::binary& payload = msg->get_payload();
  in.topic = topic;
  in.payload = payload;
  in.redelivered = msg->is_duplicate();
  const mqtt::properties& props = msg->get_properties();
  std::string content_type;
  try {
    size_t n = props.count(mqtt::property::USER_PROPERTY);
    for (size_t i = 0; i < n; ++i) {
      auto kv = mqtt::get<mqtt::string_pair>(props, mqtt::property::USER_PROPERTY, i);
      in.user_properties.emplace_back(std::get<0>(kv), std::get<1>(kv));
    }
    if (props.contains(mqtt::property::CONTENT_TYPE))
      content_type = mqtt::get<std::string>(props, mqtt::property::CONTENT_TYPE);
  } catch (const std::exception& e) {
    FERRY_LOG_WARN("ingest: unreadable MQTT properties on %s: %s", topic.c_str(), e.what());
  }
  in.content_type = content_type;

  RouteDecision d;
  if (guard_ && !guard_bound_) {  // Paho's receive thread: bind it on its first message
    guard_->BindThread(guard_slot_);
    guard_bound_ = true;
  }
  d = accounting_.Route(router_, mu_, in, clock_.Now(), guard_, guard_slot_);
  accounting_.Account(d);
  if (d.outcome != RouteOutcome::kStore && d.outcome != RouteOutcome::kDeadLetter) return;
  bool wait = config_.ingest.durability == Durability::kSync;
  // The sink counts and logs what it could not store.
  (void)sink_.Append(d.stream, std::move(d.event), wait);
}

void MqttIngest::Stop() {
  if (!client_ || stopping_.exchange(true)) return;
  try {
    if (client_->is_connected()) client_->disconnect(std::chrono::milliseconds(1000))->wait_for(std::chrono::seconds(2));
  } catch (const mqtt::exception& e) {
    FERRY_LOG_WARN("ingest: disconnect: %s", e.what());
  }
  connected_ = false;
  link_up_->Set(0);
}

}  // namespace ferry
