#include "ferry/uplink_mqtt.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <mqtt/async_client.h>

#include "ferry/log.h"
#include "ferry/paho_glue.h"

namespace ferry {
namespace {

using std::chrono::nanoseconds;
// Each persist is a small commit of its own when ingest is idle: once a second bounds the fsyncs a drain adds,
// and a crash then re-sends at most a second of acknowledged events (the centre drops them by id).
constexpr auto kPersistInterval = std::chrono::seconds(1);
constexpr auto kGaugeInterval = std::chrono::seconds(1);
constexpr auto kAckTimeout = std::chrono::seconds(60);
// About 1 MB of payload read is 2-3 MB of mapped log pages (record framing, ids, headers, tree pages).
constexpr size_t kReleaseEveryBytes = size_t{1} << 20;

}  // namespace

PublishVerdict ClassifyPublish(int token_rc, int reason_code) {
  using namespace std::chrono_literals;
  if (token_rc != 0) return {PublishVerdict::kRetry, 0s, "transport"};
  if (reason_code < 0x80) return {};  // 0x00 success, 0x10 no matching subscribers: delivered to the broker
  switch (reason_code) {
    case 0x95:  // packet too large: resending the same bytes can never succeed
      return {PublishVerdict::kDrop, 0s, "packet_too_large"};
    case 0x99:  // payload format invalid
      return {PublishVerdict::kDrop, 0s, "payload_format_invalid"};
    case 0x87:  // not authorized: an operator must fix the ACL; keep the data and retry slowly
      return {PublishVerdict::kRetry, 60s, "not_authorized"};
    case 0x97:  // quota exceeded
      return {PublishVerdict::kRetry, 10s, "quota_exceeded"};
    default:
      return {PublishVerdict::kRetry, 1s, "broker_error"};
  }
}

std::string UplinkCursorName(const std::string& uplink) { return "uplink." + uplink; }

std::string ReplayRequestKey(const std::string& uplink, const std::string& stream) {
  return "replay:" + uplink + ":" + stream;
}

void UplinkMqtt::ApplyReplayRequests() {
  for (size_t i = 0; i < streams_.size(); ++i) {
    StreamState& s = streams_[i];
    std::string key = ReplayRequestKey(uplink_.name, s.name);
    auto req = log_.GetState(key);
    if (!req) {
      s.replay_applied.clear();
      continue;
    }
    if (*req == s.replay_applied) continue;  // applied; the writer has not committed the delete yet
    char* end = nullptr;
    unsigned long long v = std::strtoull(req->c_str(), &end, 10);
    if (req->empty() || *end != '\0' || v == 0) {
      FERRY_LOG_ERROR("uplink %s: ignoring malformed replay request %s=\"%s\"", uplink_.name.c_str(), key.c_str(),
                      req->c_str());
      writer_.Submit([key](WriteTxn& txn) { return txn.DeleteState(key); });
      s.replay_applied = *req;
      continue;
    }
    // Forget what is in flight for this stream: its acks must not mark the replayed range as done.
    for (auto it = inflight_.begin(); it != inflight_.end();) it = it->stream == i ? inflight_.erase(it) : std::next(it);
    s.cursor = Seq{v};
    s.persisted = s.cursor;
    s.acked.clear();
    s.live_start = Seq{0};
    s.next_backfill = s.cursor;
    s.replay_applied = *req;
    writer_.Submit([key, stream = s.name, name = cursor_name_, pos = s.cursor](WriteTxn& txn) -> Status {
      if (Status st = txn.SetCursor(stream, name, pos); !st) return st;
      return txn.DeleteState(key);
    });
    FERRY_LOG_INFO("uplink %s: replaying %s from seq %llu", uplink_.name.c_str(), s.name.c_str(), v);
  }
}

UplinkMqtt::UplinkMqtt(const Config& config, const UplinkConfig& uplink, EventLog& log, GroupCommitWriter& writer,
                       MetricsRegistry& metrics, const Clock& clock)
    : config_(config), uplink_(uplink), log_(log), writer_(writer), metrics_(metrics), clock_(clock),
      cursor_name_(UplinkCursorName(uplink.name)),
      backoff_(uplink.backoff.min, uplink.backoff.max,
               std::hash<std::string>{}(config.gateway.id + uplink.name) ^ static_cast<uint64_t>(clock.Now().ns)),
      rate_(uplink.bytes_per_sec) {
  Labels l{{"uplink", uplink.name}};
  link_gauge_ = &DeclaredGauge(metrics_, "ferry_uplink_link_up", l);
  inflight_gauge_ = &DeclaredGauge(metrics_, "ferry_uplink_inflight_messages", l);
  bytes_total_ = &DeclaredCounter(metrics_, "ferry_uplink_bytes_total", l);
  retries_ = &DeclaredCounter(metrics_, "ferry_uplink_retries_total", l);
  reconnects_ = &DeclaredCounter(metrics_, "ferry_uplink_reconnects_total", l);
}

UplinkMqtt::~UplinkMqtt() {
  Stop();
  // Paho can still call our handlers (connection lost, a connect or subscribe listener) until the client is
  // destroyed: destroy it first, while every member they touch is alive. Left to the member order, the
  // condition variable and listeners (declared after client_) would go first.
  client_.reset();
}

Seq UplinkMqtt::cursor(const std::string& stream) const {
  for (const auto& s : streams_)
    if (s.name == stream) return s.cursor;
  return Seq{};
}

Status UplinkMqtt::Start() {
  if (Status st = CheckTlsFiles("uplink " + uplink_.name, uplink_.tls); !st) return st;
  std::vector<std::string> names = uplink_.streams;
  if (names.empty())
    for (const auto& s : config_.streams) names.push_back(s.name);
  for (const auto& name : names) {
    const StreamConfig* sc = config_.FindStream(name);
    if (!sc) return InvalidArgument("uplink " + uplink_.name + ": stream \"" + name + "\" is not declared");
    auto stats = log_.GetStreamStats(name);
    if (!stats) return tl::make_unexpected(stats.error());
    StreamState s;
    s.name = name;
    s.priority = sc->priority;
    auto cur = log_.GetCursor(name, cursor_name_);
    if (cur) s.cursor = *cur;
    else if (cur.error().code == ErrorCode::kNotFound) s.cursor = Seq{1};
    else return tl::make_unexpected(cur.error());
    s.persisted = s.cursor;
    s.next_backfill = s.cursor;
    Labels l{{"uplink", uplink_.name}, {"stream", name}};
    s.sent = &DeclaredCounter(metrics_, "ferry_uplink_sent_total", l);
    s.acked_total = &DeclaredCounter(metrics_, "ferry_uplink_acked_total", l);
    s.backlog = &DeclaredGauge(metrics_, "ferry_uplink_backlog_events", l);
    s.oldest_age = &DeclaredGauge(metrics_, "ferry_uplink_oldest_unsent_age_seconds", l);
    streams_.push_back(std::move(s));
  }
  std::stable_sort(streams_.begin(), streams_.end(),
                   [](const StreamState& a, const StreamState& b) { return a.priority > b.priority; });

  EncoderOptions eo;
  eo.compression_level = static_cast<int>(uplink_.compression_level);
  if (!uplink_.hmac_key_file.empty()) {
    std::ifstream in(uplink_.hmac_key_file, std::ios::binary);
    if (!in) return InvalidArgument("uplink " + uplink_.name + ": cannot read hmac_key_file " + uplink_.hmac_key_file);
    std::stringstream ss;
    ss << in.rdbuf();
    eo.hmac_key = ss.str();
    while (!eo.hmac_key.empty() && (eo.hmac_key.back() == '\n' || eo.hmac_key.back() == '\r')) eo.hmac_key.pop_back();
    if (eo.hmac_key.empty()) return InvalidArgument("uplink " + uplink_.name + ": hmac_key_file is empty");
  }
  encoder_ = std::make_unique<BatchEncoder>(eo);

  std::string client_id = uplink_.client_id.empty() ? "ferry-" + config_.gateway.id + "-" + uplink_.name
                                                    : uplink_.client_id;
  try {
    // Paho holds publishes beyond the broker's Receive Maximum in its queue and refuses more than
    // max_buffered_messages of them (default 100): room for the whole in-flight window.
    auto create = mqtt::create_options_builder()
                      .mqtt_version(MQTTVERSION_5)
                      .max_buffered_messages(static_cast<int>(std::max<int64_t>(100, uplink_.inflight + 16)))
                      .finalize();
    client_ = std::make_unique<mqtt::async_client>(uplink_.address, client_id, create);
  } catch (const mqtt::exception& e) {
    return InvalidArgument("uplink " + uplink_.name + ": address \"" + uplink_.address + "\": " + e.what());
  }
  client_->set_connected_handler([this](const std::string&) {
    link_up_ = true;
    connecting_ = false;
    wake_cv_.notify_one();
  });
  client_->set_connection_lost_handler([this](const std::string&) {
    lost_ = true;
    wake_cv_.notify_one();
  });
  next_connect_ = clock_.Steady();
  UpdateGauges();
  return Ok();
}

void UplinkMqtt::Connect() {
  // Clean start: nothing to resume, the log and the cursors are the state.
  auto builder = MqttConnectOptions(uplink_.username, uplink_.password, uplink_.tls, /*clean_start=*/true,
                                    std::chrono::seconds(30));
  builder.max_inflight(static_cast<int>(uplink_.inflight));
  connecting_ = true;
  reconnects_->Inc();
  auto fail = [this](const mqtt::token& tok) {
    // An unreachable centre is the normal offline state: the first failed attempt since ferryd started or the
    // link was last up is a warning (it names a TLS or credentials problem as much as an outage), the retries
    // are debug.
    bool first = !connect_failure_reported_.exchange(true);
    if (first) {
      FERRY_LOG_WARN("uplink %s: cannot connect to %s: %s; retrying with backoff, the backlog is kept",
                     uplink_.name.c_str(), uplink_.address.c_str(),
                     ConnectFailureText(tok, uplink_.tls.enabled).c_str());
    } else {
      FERRY_LOG_DEBUG("uplink %s: connect failed: %s", uplink_.name.c_str(),
                      ConnectFailureText(tok, uplink_.tls.enabled).c_str());
    }
    lost_ = true;
    wake_cv_.notify_one();
  };
  try {
    connect_listener_ = std::make_unique<ConnectListener>(fail);
    client_->connect(builder.finalize(), nullptr, *connect_listener_);
  } catch (const mqtt::exception& e) {
    FERRY_LOG_WARN("uplink %s: connect: %s", uplink_.name.c_str(), e.what());
    lost_ = true;
  }
}

void UplinkMqtt::OnConnectionLost() {
  bool was_up = link_up_.exchange(false);
  was_up_ = false;
  connecting_ = false;
  if (was_up) FERRY_LOG_WARN("uplink %s: link to %s down", uplink_.name.c_str(), uplink_.address.c_str());
  link_gauge_->Set(0);
  // What was in flight may or may not have arrived: forget it and re-send from the acked positions.
  retries_->Inc(static_cast<uint64_t>(inflight_.size()));
  inflight_.clear();
  ResetSending();
  auto delay = backoff_.Next();
  next_connect_ = std::max(next_connect_, clock_.Steady() + delay);
  PersistCursors(true);
}

void UplinkMqtt::ResetSending() {
  for (auto& s : streams_) {
    s.next_backfill = s.cursor;
    s.next_live = s.live_start;
  }
}

void UplinkMqtt::MarkAcked(StreamState& s, uint64_t first, uint64_t last) {
  if (first <= s.cursor.value) {
    s.cursor = Seq{std::max(s.cursor.value, last + 1)};
  } else {
    auto& hi = s.acked[first];
    hi = std::max(hi, last);
  }
  while (!s.acked.empty() && s.acked.begin()->first <= s.cursor.value) {
    s.cursor = Seq{std::max(s.cursor.value, s.acked.begin()->second + 1)};
    s.acked.erase(s.acked.begin());
  }
}

Seq UplinkMqtt::SkipAcked(const StreamState& s, Seq from) const {
  if (from < s.cursor) from = s.cursor;
  for (auto it = s.acked.upper_bound(from.value); ; ) {
    if (it == s.acked.begin()) return from;
    auto prev = std::prev(it);
    if (prev->second < from.value) return from;
    from = Seq{prev->second + 1};
    it = s.acked.upper_bound(from.value);
  }
}

void UplinkMqtt::CollectAcks() {
  auto now = clock_.Steady();
  bool retry = false;
  nanoseconds retry_after{0};
  for (auto it = inflight_.begin(); it != inflight_.end();) {
    Unit& u = *it;
    if (!u.token->is_complete()) {
      if (now - u.sent_at > kAckTimeout) {
        FERRY_LOG_WARN("uplink %s: no PUBACK within %llds", uplink_.name.c_str(),
                       static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(kAckTimeout).count()));
        retry = true;
      }
      ++it;
      continue;
    }
    PublishVerdict v = ClassifyPublish(u.token->get_return_code(), static_cast<int>(u.token->get_reason_code()));
    StreamState& s = streams_[u.stream];
    switch (v.kind) {
      case PublishVerdict::kOk:
        MarkAcked(s, u.first, u.last);
        s.acked_total->Inc(u.events);
        acked_events_ += u.events;
        break;
      case PublishVerdict::kDrop:
        MarkAcked(s, u.first, u.last);
        DeclaredCounter(metrics_, "ferry_uplink_dropped_total",
                   {{"uplink", uplink_.name}, {"stream", s.name}, {"reason", v.reason}})
            .Inc(u.events);
        FERRY_LOG_ERROR("uplink %s: %s seq %llu-%llu dropped: the broker refused it (%s)", uplink_.name.c_str(),
                        s.name.c_str(), static_cast<unsigned long long>(u.first),
                        static_cast<unsigned long long>(u.last), v.reason.c_str());
        break;
      case PublishVerdict::kRetry:
        retry = true;
        retry_after = std::max(retry_after, v.retry_after);
        break;
    }
    it = inflight_.erase(it);
  }
  if (retry) {
    next_connect_ = clock_.Steady() + retry_after;
    try {
      client_->disconnect(0);
    } catch (const mqtt::exception&) {
    }
    OnConnectionLost();
  }
}

void UplinkMqtt::PersistCursors(bool force) {
  auto now = clock_.Steady();
  if (!force && now - last_persist_ < kPersistInterval) return;
  last_persist_ = now;
  for (auto& s : streams_) {
    if (s.cursor == s.persisted) continue;
    s.persisted = s.cursor;
    // Rides in the next group commit: no fsync of its own. Losing it in a crash only means re-sending.
    writer_.Submit([stream = s.name, name = cursor_name_, pos = s.cursor](WriteTxn& txn) {
      return txn.SetCursor(stream, name, pos);
    });
  }
}

std::string UplinkMqtt::TopicFor(const StreamState& s, const std::string& subject) const {
  TopicCaptures caps{{"gateway", config_.gateway.id}, {"stream", s.name}, {"subject", subject}};
  auto t = ExpandTemplate(uplink_.topic, caps);
  std::string topic = t ? *t : "ferry/" + config_.gateway.id + "/" + s.name;
  // An empty {subject} must not leave an empty or trailing level behind.
  while (!topic.empty() && topic.back() == '/') topic.pop_back();
  return topic;
}

WireEvent UplinkMqtt::ToWire(const StreamState& s, StoredRecord&& r) const {
  // Moves the strings out of the record copy Read() made: one copy per event from the map to the wire.
  WireEvent w;
  Event& e = r.event;
  w.id = e.id.empty() ? config_.gateway.id + "/" + s.name + "/" + std::to_string(r.seq.value) : std::move(e.id);
  w.source = e.source.empty() ? "/" + config_.gateway.id + "/" + s.name : std::move(e.source);
  w.type = e.type.empty() ? "ferry.event" : std::move(e.type);
  w.time = e.time;
  w.subject = std::move(e.subject);
  w.datacontenttype = std::move(e.datacontenttype);
  w.seq = r.seq;
  w.ingest_time = r.ingest_time;
  w.headers = std::move(e.headers);
  w.payload = std::move(e.payload);
  return w;
}

bool UplinkMqtt::SendFrom(StreamState& s, size_t index, Seq from, Seq limit, bool live) {
  const bool batched = uplink_.mode == UplinkMode::kBatched;
  uint64_t want = batched ? static_cast<uint64_t>(uplink_.batch.max_events) : 1;
  if (limit.value != 0) want = std::min<uint64_t>(want, limit.value - from.value);
  if (want == 0) return false;
  size_t max_bytes = batched ? static_cast<size_t>(uplink_.batch.max_bytes) : SIZE_MAX;
  auto recs = log_.Read(s.name, from, static_cast<size_t>(want), max_bytes);
  Seq& next = live ? s.next_live : s.next_backfill;
  if (!recs) {
    if (recs.error().code == ErrorCode::kCorruption) {
      // Skip the damaged record so one bad page cannot stall the uplink forever; it is counted.
      DeclaredCounter(metrics_, "ferry_uplink_dropped_total", {{"uplink", uplink_.name}, {"stream", s.name}, {"reason", "corrupt"}})
          .Inc();
      FERRY_LOG_ERROR("uplink %s: %s seq %llu: %s", uplink_.name.c_str(), s.name.c_str(),
                      static_cast<unsigned long long>(from.value), recs.error().ToString().c_str());
      MarkAcked(s, from.value, from.value);
      next = from.next();
      return true;
    }
    FERRY_LOG_WARN("uplink %s: reading %s: %s", uplink_.name.c_str(), s.name.c_str(), recs.error().ToString().c_str());
    return false;
  }
  auto& rv = *recs;
  // Reading maps the log's pages into this process; a fast drain would map tens of MB between two maintenance
  // rounds. Drop the mappings every few MB read so RSS stays flat while the backlog drains too.
  for (const auto& r : rv) read_since_release_ += r.event.payload.size() + 128;
  if (read_since_release_ >= kReleaseEveryBytes) {
    read_since_release_ = 0;
    log_.ReleaseMappedPages();
  }
  if (limit.value != 0)
    while (!rv.empty() && rv.back().seq >= limit) rv.pop_back();
  if (rv.empty()) {
    // Either nothing new, or everything up to `limit` is already gone from the log (retention, eviction).
    if (limit.value != 0 && !live && limit > from) {
      auto stats = log_.GetStreamStats(s.name);
      if (stats && stats->first_seq >= limit) {
        MarkAcked(s, from.value, limit.value - 1);
        next = limit;
        return true;
      }
    }
    return false;
  }
  if (rv.front().seq > from) {
    // Records evicted (budget, retention) or compacted away before they could be sent. Counted by storage per
    // reason; here the uplink notes how many of them it never sent.
    DeclaredCounter(metrics_, "ferry_uplink_dropped_total", {{"uplink", uplink_.name}, {"stream", s.name}, {"reason", "gone_before_send"}})
        .Inc(rv.front().seq.value - from.value);
  }
  auto now_steady = clock_.Steady();
  if (batched && rv.size() < want) {
    // A partial batch at the tail waits up to batch.max_delay for company.
    TimeNs newest = rv.back().ingest_time;
    if (clock_.Now().ns - newest.ns < uplink_.batch.max_delay.count() &&
        clock_.Now().ns - rv.front().ingest_time.ns < uplink_.batch.max_delay.count()) {
      hold_until_ = now_steady + std::chrono::milliseconds(2);
      return false;
    }
  }

  mqtt::message_ptr msg;
  size_t bytes = 0;
  try {
    if (batched) {
      Batch b;
      b.gateway = config_.gateway.id;
      b.stream = s.name;
      b.events.reserve(rv.size());
      for (auto& r : rv) b.events.push_back(ToWire(s, std::move(r)));
      auto encoded = encoder_->Encode(b);
      if (!encoded) {
        FERRY_LOG_ERROR("uplink %s: encoding a batch of %s: %s", uplink_.name.c_str(), s.name.c_str(),
                        encoded.error().ToString().c_str());
        return false;
      }
      bytes = encoded->size();
      if (!rate_.TryTake(bytes, now_steady)) {
        hold_until_ = now_steady + rate_.WaitFor(bytes, now_steady);
        return false;
      }
      msg = mqtt::make_message(TopicFor(s, ""), std::move(*encoded), 1, false);
      mqtt::properties props;
      props.add(mqtt::property(mqtt::property::CONTENT_TYPE, std::string(kBatchContentType)));
      msg->set_properties(props);
    } else {
      WireEvent w = ToWire(s, std::move(rv.front()));
      bytes = w.payload.size();
      if (!rate_.TryTake(bytes, now_steady)) {
        hold_until_ = now_steady + rate_.WaitFor(bytes, now_steady);
        return false;
      }
      MqttEventProperties mp = ToMqttProperties(w);
      mqtt::properties props;
      for (const auto& [k, v] : mp.user_properties) props.add(mqtt::property(mqtt::property::USER_PROPERTY, k, v));
      if (!mp.content_type.empty()) props.add(mqtt::property(mqtt::property::CONTENT_TYPE, mp.content_type));
      msg = mqtt::make_message(TopicFor(s, w.subject), w.payload, 1, false);
      msg->set_properties(props);
    }
    Unit u{index, from.value, rv.back().seq.value, rv.size(), bytes, client_->publish(msg), now_steady};
    inflight_.push_back(std::move(u));
  } catch (const mqtt::exception& e) {
    if (e.get_return_code() == MQTTASYNC_MAX_BUFFERED_MESSAGES) {
      // Paho's queue is full (the broker's Receive Maximum is smaller than uplink.inflight): back-pressure,
      // not a broken link. Send again once acknowledgements have made room.
      hold_until_ = now_steady + std::chrono::milliseconds(2);
      return false;
    }
    FERRY_LOG_WARN("uplink %s: publish: %s", uplink_.name.c_str(), e.what());
    lost_ = true;
    return false;
  }
  next = rv.back().seq.next();
  s.sent->Inc(rv.size());
  bytes_total_->Inc(bytes);
  return true;
}

bool UplinkMqtt::SendOne() {
  if (inflight_.size() >= static_cast<size_t>(uplink_.inflight)) return false;
  if (clock_.Steady() < hold_until_) return false;
  for (size_t i = 0; i < streams_.size(); ++i) {
    StreamState& s = streams_[i];
    if (s.live_start.value != 0) {
      if (SendFrom(s, i, SkipAcked(s, s.next_live), Seq{0}, /*live=*/true)) return true;
      Seq from = SkipAcked(s, s.next_backfill);
      if (from >= s.live_start) {
        s.live_start = Seq{0};  // backfill has caught up with the live side: one sequence again
        s.next_backfill = SkipAcked(s, s.next_live);
        continue;
      }
      if (SendFrom(s, i, from, s.live_start, /*live=*/false)) return true;
    } else {
      if (SendFrom(s, i, SkipAcked(s, s.next_backfill), Seq{0}, /*live=*/false)) return true;
    }
    if (!inflight_.empty() && hold_until_ > clock_.Steady()) return false;  // rate cap applies to all streams
  }
  return false;
}

void UplinkMqtt::UpdateGauges() {
  auto now = clock_.Steady();
  if (now - last_gauges_ < kGaugeInterval) return;
  last_gauges_ = now;
  ApplyReplayRequests();
  link_gauge_->Set(link_up_ ? 1 : 0);
  inflight_gauge_->Set(static_cast<int64_t>(inflight_.size()));
  for (auto& s : streams_) {
    auto stats = log_.GetStreamStats(s.name);
    if (!stats) continue;
    uint64_t first = std::max(s.cursor.value, stats->first_seq.value);
    uint64_t backlog = stats->last_seq.value >= first ? std::min(stats->count, stats->last_seq.value - first + 1) : 0;
    s.backlog->Set(static_cast<int64_t>(backlog));
    int64_t age = 0;
    if (backlog > 0) {
      auto recs = log_.Read(s.name, Seq{first}, 1);
      if (recs && !recs->empty()) age = (clock_.Now().ns - recs->front().ingest_time.ns) / 1'000'000'000;
    }
    s.oldest_age->Set(std::max<int64_t>(age, 0));
  }
}

void UplinkMqtt::Step() {
  if (!client_) return;
  if (lost_.exchange(false)) OnConnectionLost();
  if (!link_up_) {
    if (!connecting_ && clock_.Steady() >= next_connect_) Connect();
    UpdateGauges();
    return;
  }
  if (!was_up_) {
    was_up_ = true;
    backoff_.Reset();
    FERRY_LOG_INFO("uplink %s: connected to %s", uplink_.name.c_str(), uplink_.address.c_str());
    connect_failure_reported_ = false;
    link_gauge_->Set(1);  // link changes show at once; the other gauges follow every kGaugeInterval
    if (uplink_.drain_order == DrainOrder::kNewestFirst) {
      uint64_t unit = uplink_.mode == UplinkMode::kBatched ? static_cast<uint64_t>(uplink_.batch.max_events) : 1;
      for (auto& s : streams_) {
        auto stats = log_.GetStreamStats(s.name);
        s.live_start = Seq{0};
        if (stats && stats->last_seq.value >= s.cursor.value + 2 * unit)
          s.live_start = Seq{stats->last_seq.value + 1 - unit};
      }
    }
    ResetSending();
  }
  CollectAcks();
  if (!link_up_) return;
  PersistCursors(false);
  while (SendOne()) {
  }
  UpdateGauges();
}

void UplinkMqtt::Run() {
  thread_ = std::thread([this] {
    while (!stop_) {
      Step();
      std::unique_lock<std::mutex> lock(wake_mu_);
      wake_cv_.wait_for(lock, std::chrono::milliseconds(link_up_ ? 1 : 20), [this] { return stop_.load(); });
    }
  });
}

void UplinkMqtt::Stop() {
  stop_ = true;
  wake_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (client_) {
    PersistCursors(true);
    try {
      if (client_->is_connected()) client_->disconnect(std::chrono::milliseconds(500))->wait_for(std::chrono::seconds(2));
    } catch (const mqtt::exception&) {
    }
    link_up_ = false;
    link_gauge_->Set(0);
  }
}

}  // namespace ferry
