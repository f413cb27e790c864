// The central side's consumer: reading a message's events (three kinds), deduplicating ids, the Paho session.
#include "ferry/receiver.h"

#include <exception>

#include <mqtt/async_client.h>

#include "ferry/json_bounded.h"

namespace ferry {

namespace {

uint64_t HashId(std::string_view id) {  // FNV-1a, 64 bits
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
  return h;
}

bool HasUserProperty(const CentralMessage& m, std::string_view name) {
  for (const auto& [k, v] : m.user_properties) {
    if (k == name) return true;
  }
  return false;
}

// The top-level "id" of a device's JSON object: a string (as an ingest route's
// id_json_field reads it).
Result<std::string> DeviceJsonId(std::string_view payload) {
  rapidjson::Reader reader;
  TopLevelFinder finder("id");
  JsonStatus st = ParseJsonBounded(reader, payload, finder, kMaxJsonDepthLimit);
  if (!st.ok()) return Corruption("device payload: " + st.message);
  if (!finder.top_is_object()) return Corruption("device payload is not a JSON object");
  TopLevelFinder::Member& id = finder.member(0);
  if (id.kind == TopLevelFinder::Member::kAbsent) return Corruption("device payload has no \"id\" member");
  if (!finder.IdIsString())
    return Corruption("device payload's \"id\" is not a string (event ids are strings, as ferryd's routes read them)");
  if (id.text.empty()) return Corruption("device payload has an empty \"id\"");
  return std::move(id.text);
}

}  // namespace

const char* MessageKindName(MessageKind kind) {
  switch (kind) {
    case MessageKind::kCloudEvent:
      return "per-event CloudEvent";
    case MessageKind::kBatch:
      return "FRYB batch";
    case MessageKind::kDeviceJson:
      return "device JSON";
  }
  return "?";
}

bool MessageKinds::accepts(MessageKind kind) const {
  switch (kind) {
    case MessageKind::kCloudEvent:
      return cloud_event;
    case MessageKind::kBatch:
      return batch;
    case MessageKind::kDeviceJson:
      return device_json;
  }
  return false;
}

// ---- EventExtractor -----------------------------------------------------------------------------------------

EventExtractor::EventExtractor(MessageKinds kinds, std::string hmac_key)
    : kinds_(kinds), decoder_(std::move(hmac_key)) {}

MessageKind EventExtractor::Classify(const CentralMessage& message) const {
  if (message.content_type == kBatchContentType) return MessageKind::kBatch;
  if (HasUserProperty(message, "specversion")) return MessageKind::kCloudEvent;
  return kinds_.device_json ? MessageKind::kDeviceJson : MessageKind::kCloudEvent;
}

Result<std::vector<WireEvent>> EventExtractor::Extract(const CentralMessage& message) {
  MessageKind kind = Classify(message);
  if (!kinds_.accepts(kind)) return InvalidArgument(std::string(MessageKindName(kind)) + " not accepted here");
  std::vector<WireEvent> events;
  switch (kind) {
    case MessageKind::kBatch: {
      auto batch = decoder_.Decode(message.payload);
      if (!batch) return tl::make_unexpected(batch.error());
      events = std::move(batch->batch.events);
      break;
    }
    case MessageKind::kCloudEvent: {
      MqttEventProperties props;
      props.content_type = std::string(message.content_type);
      props.user_properties = message.user_properties;
      auto e = FromMqttProperties(props, std::string(message.payload));
      if (!e) return tl::make_unexpected(e.error());
      events.push_back(std::move(*e));
      break;
    }
    case MessageKind::kDeviceJson: {
      auto id = DeviceJsonId(message.payload);
      if (!id) return tl::make_unexpected(id.error());
      WireEvent e;
      e.id = std::move(*id);
      e.payload = std::string(message.payload);
      events.push_back(std::move(e));
      break;
    }
  }
  return events;
}

// ---- CentralReceiver ----------------------------------------------------------------------------------------

CentralReceiver::CentralReceiver(CentralReceiverOptions options)
    : options_(std::move(options)), extractor_(options_.kinds, options_.hmac_key) {}

CentralReceiver::~CentralReceiver() { Disconnect(); }

Status CentralReceiver::Connect(const std::string& uri, const std::string& filter) {
  Disconnect();
  filter_ = filter;
  auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(options_.connect_timeout);
  try {
    client_ = std::make_unique<mqtt::async_client>(uri, options_.client_id, mqtt::create_options(MQTTVERSION_5));
    client_->set_message_callback([this](mqtt::const_message_ptr m) { OnPahoMessage(*m); });
    auto builder = mqtt::connect_options_builder()
                       .mqtt_version(MQTTVERSION_5)
                       .clean_start(false)
                       .properties({mqtt::property(mqtt::property::SESSION_EXPIRY_INTERVAL,
                                                   static_cast<int>(options_.session_expiry.count()))})
                       .connect_timeout(options_.connect_timeout);
    if (options_.auto_reconnect) {
      // Subscribing on every connection, from Paho's thread without waiting on the token (Paho's own pattern):
      // a session the broker lost (expired, or a broker without persistence) gets its subscription back.
      client_->set_connected_handler([this](const std::string&) {
        try {
          client_->subscribe(filter_, 1);
        } catch (const mqtt::exception& e) {
          if (options_.warn) options_.warn("subscribe " + filter_ + ": " + e.what());
        }
      });
      builder.automatic_reconnect(std::chrono::milliseconds(100), std::chrono::seconds(2));
      client_->connect(builder.finalize());
      return Ok();
    }
    client_->connect(builder.finalize())->wait_for(wait);
    if (!client_->is_connected()) return Unavailable(uri + ": not connected within the connect timeout");
    if (!client_->subscribe(filter, 1)->wait_for(wait)) {
      return Unavailable(uri + ": subscription to " + filter + " not confirmed within the connect timeout");
    }
  } catch (const mqtt::exception& e) {
    return Unavailable(uri + ": " + e.what());
  }
  return Ok();
}

void CentralReceiver::Disconnect() {
  if (!client_) return;
  try {
    if (client_->is_connected()) client_->disconnect()->wait_for(std::chrono::seconds(2));
  } catch (const mqtt::exception&) {
    // Going away either way; the broker keeps the session.
  }
  client_.reset();
}

bool CentralReceiver::connected() const { return client_ && client_->is_connected(); }

void CentralReceiver::OnPahoMessage(const mqtt::message& m) {
  CentralMessage msg;
  msg.topic = m.get_topic();
  msg.payload = m.get_payload();
  std::string content_type;
  try {
    const mqtt::properties& props = m.get_properties();
    if (props.contains(mqtt::property::CONTENT_TYPE))
      content_type = mqtt::get<std::string>(props, mqtt::property::CONTENT_TYPE);
    size_t n = props.count(mqtt::property::USER_PROPERTY);
    for (size_t i = 0; i < n; ++i) {
      auto kv = mqtt::get<mqtt::string_pair>(props, mqtt::property::USER_PROPERTY, i);
      msg.user_properties.emplace_back(std::get<0>(kv), std::get<1>(kv));
    }
  } catch (const std::exception& e) {  // nothing may escape into Paho's thread
    ++messages_;
    ++bad_;
    if (options_.warn) options_.warn(m.get_topic() + ": unreadable MQTT properties: " + e.what());
    return;
  }
  msg.content_type = content_type;
  Receive(msg);
}

void CentralReceiver::Receive(const CentralMessage& message) {
  ++messages_;
  auto events = extractor_.Extract(message);
  if (!events) {
    ++bad_;
    if (options_.warn) options_.warn(std::string(message.topic) + ": " + events.error().ToString());
    return;
  }
  for (auto& e : *events) Add(message.topic, std::move(e));
}

void CentralReceiver::Add(std::string_view topic, WireEvent&& event) {
  ++events_;
  std::lock_guard<std::mutex> lock(mu_);
  if (options_.record_arrivals) arrivals_.emplace_back(std::string(topic), event.seq.value);
  bool fresh = options_.hash_ids ? id_hashes_.insert(HashId(event.id)).second : ids_.insert(event.id).second;
  if (!fresh) {
    ++duplicates_;
    return;
  }
  ++unique_;
  if (options_.on_new_id) options_.on_new_id(event.id);
  if (keep_events_) {
    std::string id = event.id;
    by_id_.emplace(std::move(id), std::move(event));
  }
}

bool CentralReceiver::Has(std::string_view id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return options_.hash_ids ? id_hashes_.count(HashId(id)) != 0 : ids_.count(std::string(id)) != 0;
}

std::unordered_map<std::string, WireEvent> CentralReceiver::ById() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_id_;
}

std::vector<std::pair<std::string, uint64_t>> CentralReceiver::Arrivals() const {
  std::lock_guard<std::mutex> lock(mu_);
  return arrivals_;
}

}  // namespace ferry
