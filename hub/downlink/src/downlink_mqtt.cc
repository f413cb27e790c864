// downlink_mqtt.cc: retained messages under an MQTT topic filter mirrored into a table stream (downlink_mqtt.h).
#include "downlink_mqtt.h"

#include "ferry/log.h"
#include "ferry/paho_glue.h"

namespace ferry {

namespace {
constexpr char kSyncing[] = "syncing";
constexpr char kOpen[] = "open";
constexpr char kClean[] = "clean";
constexpr size_t kMaxPendingBatches = 4;  // a sync's batches in the writer at once; more waits (back-pressure)
constexpr auto kTick = std::chrono::milliseconds(50);
}  // namespace

class MqttDownlink::Listener final : public mqtt::iaction_listener {
 public:
  explicit Listener(std::function<void(const mqtt::token&, bool)> fn) : fn_(std::move(fn)) {}
  void on_success(const mqtt::token& tok) override { fn_(tok, true); }
  void on_failure(const mqtt::token& tok) override { fn_(tok, false); }

 private:
  std::function<void(const mqtt::token&, bool)> fn_;
};

MqttDownlink::MqttDownlink(const Config& config, const DownlinkConfig& downlink, EventLog& log,
                           GroupCommitWriter& writer, MetricsRegistry& metrics, const Clock& clock)
    : Downlink(config, downlink, log, writer, metrics, clock),
      backoff_(downlink.backoff.min, downlink.backoff.max, static_cast<uint64_t>(clock.Now().ns)) {}

MqttDownlink::~MqttDownlink() {
  Stop();
  client_.reset();  // before the listeners and the mutex its callbacks use
}

Status MqttDownlink::Start() {
  if (client_) return Ok();
  if (Status st = CheckTlsFiles("downlink " + dl_.name, dl_.tls); !st) return st;
  const std::string client_id =
      dl_.client_id.empty() ? "ferry-" + config_.gateway.id + "-" + dl_.name : dl_.client_id;
  try {
    client_ = std::make_unique<mqtt::async_client>(dl_.address, client_id, mqtt::create_options(MQTTVERSION_5));
  } catch (const mqtt::exception& e) {
    return InvalidArgument("downlink " + dl_.name + ": address \"" + dl_.address + "\": " + e.what());
  }
  // Where the last run left the table: only a clean stop after a full sync lets this one resume the session.
  auto state = log_.GetState(DownlinkMqttStateKey(dl_.name));
  if (!state && state.error().code != ErrorCode::kNotFound) return tl::make_unexpected(state.error());
  need_full_ = !state || *state != kClean || ResetRequested();
  if (state && *state == kOpen)
    FERRY_LOG_WARN("downlink %s: ferryd did not stop cleanly: a full sync of table %s follows (an update received "
                   "as it died may not have been stored)", dl_.name.c_str(), dl_.table.c_str());
  // From here until a clean stop, a crash must lead to a full sync.
  if (!need_full_ && !WriteState(kOpen)) return Unavailable("downlink " + dl_.name + ": cannot write its state");
  synced_ = !need_full_;
  client_->set_message_callback([this](mqtt::const_message_ptr msg) { OnMessage(msg); });
  client_->set_connection_lost_handler([this](const std::string& cause) { OnConnectionLost(cause); });
  connect_listener_ = std::make_unique<Listener>([this](const mqtt::token& tok, bool ok) {
    if (ok) OnConnected(tok.get_connect_response().is_session_present());
    else OnConnectFailed(ConnectFailureText(tok, dl_.tls.enabled, dl_.address));
  });
  subscribe_listener_ = std::make_unique<Listener>([this](const mqtt::token& tok, bool ok) {
    std::lock_guard<std::mutex> lock(mu_);
    const int reason = static_cast<int>(tok.get_reason_code());
    if (ok && reason < 0x80) {
      subacked_ = true;
      last_message_ = std::chrono::steady_clock::now();
    } else if (restart_.empty()) {
      restart_ = "the broker refused the subscription to \"" + dl_.topic + "\"" +
                 (reason >= 0x80 ? ": " + mqtt::exception::reason_code_str(reason) : std::string());
    }
    cv_.notify_all();
  });
  stop_ = false;
  next_attempt_ = std::chrono::steady_clock::now();
  thread_ = std::thread([this] { Loop(); });
  return Ok();
}

void MqttDownlink::Stop() {
  if (!client_ || stop_.exchange(true)) return;
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  try {
    if (client_->is_connected()) client_->disconnect(std::chrono::milliseconds(1000))->wait_for(std::chrono::seconds(2));
  } catch (const mqtt::exception& e) {
    FERRY_LOG_WARN("downlink %s: disconnect: %s", dl_.name.c_str(), e.what());
  }
  // A message callback still running finishes its commit under mu_ before this goes on.
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& p : pending_) Committed(p, "rows of a full sync");
  pending_.clear();
  // Only a table that a full sync made whole, with nothing waiting to sync again, may resume its session.
  if (synced_ && !syncing_ && !need_full_ && restart_.empty()) WriteState(kClean);
  link_up_.Set(0);
}

bool MqttDownlink::WriteState(const char* value) {
  PendingRows p = SubmitRows({}, {{DownlinkMqttStateKey(dl_.name), value}});
  return Committed(p, "its sync state");
}

void MqttDownlink::Down(const std::string& why) {
  if (!down_reported_)
    FERRY_LOG_WARN("downlink %s: MQTT source %s: %s; retrying, the table keeps its rows", dl_.name.c_str(),
                   dl_.address.c_str(), why.c_str());
  down_reported_ = true;
  link_up_.Set(0);
}

void MqttDownlink::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    const auto now = std::chrono::steady_clock::now();
    if (!restart_.empty()) {
      const std::string why = std::move(restart_);
      restart_.clear();
      lock.unlock();
      Restart(why);
      lock.lock();
      continue;
    }
    if (!connected_ && !connecting_ && now >= next_attempt_) {
      lock.unlock();
      Connect();
      lock.lock();
      continue;
    }
    if (want_subscribe_) {
      want_subscribe_ = false;
      lock.unlock();
      BeginSync();
      lock.lock();
      continue;
    }
    if (now >= next_reset_check_) {
      next_reset_check_ = now + std::chrono::seconds(1);
      if (synced_ && !syncing_ && restart_.empty() && ResetRequested()) {
        FERRY_LOG_INFO("downlink %s: a reset was requested: a full sync of table %s follows", dl_.name.c_str(),
                       dl_.table.c_str());
        restart_ = "a reset was requested";
        continue;
      }
    }
    if (syncing_ && subacked_ && (saw_live_ || now - last_message_ >= dl_.sync_quiet)) {
      if (!FinishSync() && restart_.empty()) restart_ = "the full sync could not be stored";
      continue;
    }
    cv_.wait_for(lock, kTick);
  }
}

void MqttDownlink::Connect() {
  bool clean_start;
  {
    std::lock_guard<std::mutex> lock(mu_);
    connecting_ = true;
    clean_start = need_full_;
  }
  auto builder = MqttConnectOptions(dl_.username, dl_.password, dl_.tls, clean_start, std::chrono::seconds(30));
  const auto expiry = std::chrono::duration_cast<std::chrono::seconds>(dl_.session_expiry).count();
  builder.properties({mqtt::property(mqtt::property::SESSION_EXPIRY_INTERVAL,
                                     static_cast<int>(std::min<int64_t>(expiry, INT32_MAX)))});
  try {
    client_->connect(builder.finalize(), nullptr, *connect_listener_);
  } catch (const mqtt::exception& e) {
    OnConnectFailed(e.what());
  }
}

void MqttDownlink::OnConnected(bool session_present) {
  std::lock_guard<std::mutex> lock(mu_);
  connecting_ = false;
  connected_ = true;
  backoff_.Reset();
  if (down_reported_) FERRY_LOG_INFO("downlink %s: MQTT source %s answers again", dl_.name.c_str(), dl_.address.c_str());
  down_reported_ = false;
  if (need_full_ || !session_present) {
    if (!need_full_)
      FERRY_LOG_WARN("downlink %s: the broker no longer has this gateway's session (expired, or the broker lost "
                     "it): a full sync of table %s follows", dl_.name.c_str(), dl_.table.c_str());
    need_full_ = true;
    want_subscribe_ = true;
  } else {
    // The session and its subscription are there: the changes queued while away arrive now.
    link_up_.Set(1);
    last_sync_.Set(clock_.Now().ns / 1'000'000'000);
  }
  cv_.notify_all();
}

void MqttDownlink::OnConnectFailed(const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  connecting_ = false;
  next_attempt_ = std::chrono::steady_clock::now() + backoff_.Next();
  Down("connect failed: " + why);
}

void MqttDownlink::OnConnectionLost(const std::string& cause) {
  std::lock_guard<std::mutex> lock(mu_);
  connected_ = false;
  connecting_ = false;
  subacked_ = false;
  next_attempt_ = std::chrono::steady_clock::now() + backoff_.Next();
  Down("connection lost" + (cause.empty() ? std::string() : " (" + cause + ")"));
  cv_.notify_all();
}

void MqttDownlink::BeginSync() {
  std::lock_guard<std::mutex> lock(mu_);
  // What an earlier, interrupted sync submitted is committed or failed before this one starts.
  for (auto& p : pending_) Committed(p, "rows of a full sync");
  pending_.clear();
  batch_.clear();
  seen_.clear();
  saw_live_ = false;
  subacked_ = false;
  sync_rows_ = 0;
  reset_pending_ = ResetRequested();
  // Before the first retained message: a crash from here on leads to a full sync again.
  if (!WriteState(kSyncing)) {
    restart_ = "its sync state could not be stored";
    return;
  }
  synced_ = false;
  syncing_ = true;
  last_message_ = std::chrono::steady_clock::now();
  try {
    client_->subscribe(dl_.topic, 1, nullptr, *subscribe_listener_);
  } catch (const mqtt::exception& e) {
    restart_ = std::string("subscribe: ") + e.what();
  }
}

bool MqttDownlink::FinishSync() {
  // Called with mu_ held: messages wait until the table is whole.
  if (!batch_.empty()) pending_.push_back(SubmitRows(std::move(batch_), {}));
  batch_.clear();
  bool ok = true;
  for (auto& p : pending_) ok &= Committed(p, "rows of a full sync");
  pending_.clear();
  if (!ok) return false;
  // Rows the centre no longer has: the table's live keys that the sync did not deliver. A reset requested
  // before this sync began is done with it.
  std::vector<std::string> erase;
  if (reset_pending_) erase.push_back(DownlinkResetKey(dl_.name));
  size_t deleted = 0;
  if (!CommitResync(seen_, {{DownlinkMqttStateKey(dl_.name), kOpen}}, std::move(erase), &deleted)) return false;
  syncing_ = false;
  synced_ = true;
  need_full_ = false;
  reset_pending_ = false;
  seen_.clear();
  link_up_.Set(1);
  last_sync_.Set(clock_.Now().ns / 1'000'000'000);
  FERRY_LOG_INFO("downlink %s: full sync of table %s: %llu rows received, %zu rows the centre no longer has "
                 "deleted", dl_.name.c_str(), dl_.table.c_str(), static_cast<unsigned long long>(sync_rows_), deleted);
  return true;
}

void MqttDownlink::Restart(const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    need_full_ = true;
    syncing_ = false;
    Down(why + "; a full sync follows");
  }
  try {
    if (client_->is_connected()) client_->disconnect(std::chrono::milliseconds(500))->wait_for(std::chrono::seconds(2));
  } catch (const mqtt::exception&) {
  }
  std::lock_guard<std::mutex> lock(mu_);
  connected_ = false;
  connecting_ = false;
  next_attempt_ = std::chrono::steady_clock::now() + backoff_.Next();
}

void MqttDownlink::OnMessage(const mqtt::const_message_ptr& msg) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!restart_.empty()) return;  // a full sync follows: it brings this row again
  const std::string& topic = msg->get_topic();
  const std::string key = DownlinkMqttRowKey(dl_.topic, topic);
  const auto& payload = msg->get_payload();
  auto row = MakeRow(key, std::string_view(payload.data(), payload.size()),
                     "downlink/" + dl_.name + "/" + std::to_string(clock_.Now().ns) + "/" + std::to_string(next_id_++),
                     TimeNs{0});
  if (syncing_) {
    last_message_ = std::chrono::steady_clock::now();
    if (!msg->is_retained()) saw_live_ = true;
    if (!row) return;
    seen_.insert(row->subject);
    batch_.push_back(std::move(*row));
    ++sync_rows_;
    if (batch_.size() >= static_cast<size_t>(dl_.batch)) {
      pending_.push_back(SubmitRows(std::move(batch_), {}));
      batch_.clear();
      if (pending_.size() > kMaxPendingBatches) {
        if (!Committed(pending_.front(), "rows of a full sync")) restart_ = "the full sync could not be stored";
        pending_.pop_front();
      }
    }
    if (saw_live_) cv_.notify_all();
    return;
  }
  if (!row) return;
  // Paho has acknowledged this message already: it must be in the log before the callback returns, or, if the
  // log cannot take it, a full sync must bring it again.
  PendingRows p = SubmitRows({std::move(*row)}, {});
  if (!Committed(p, "an update")) {
    restart_ = "an update could not be stored";
    cv_.notify_all();
    return;
  }
  last_sync_.Set(clock_.Now().ns / 1'000'000'000);
}

}  // namespace ferry
