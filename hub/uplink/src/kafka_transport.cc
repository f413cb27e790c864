// kafka_transport.cc: the Kafka transport (librdkafka C API), delivery classification and the record headers.
// See kafka_transport.h for the link model and the threads.
#include "kafka_transport.h"

#include <cstdio>
#include <cstring>

#include "ferry/log.h"
#include "ferry/uplink_kafka.h"

namespace ferry {

// ---- The pure parts (ferry/uplink_kafka.h) -------------------------------------------------------------------

PublishVerdict ClassifyKafkaDelivery(rd_kafka_resp_err_t err) {
  using namespace std::chrono_literals;
  switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
      return {};
    // The record itself: resending the same bytes can never succeed.
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
      return {PublishVerdict::kDrop, 0s, "message_too_large"};
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
      return {PublishVerdict::kDrop, 0s, "record_list_too_large"};
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:  // CORRUPT_MESSAGE: a CRC mismatch librdkafka already retried
    case RD_KAFKA_RESP_ERR__BAD_MSG:
      return {PublishVerdict::kDrop, 0s, "invalid_record"};
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
      return {PublishVerdict::kDrop, 0s, "invalid_timestamp"};
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:  // an illegal topic name: the {subject} in the template made it
      return {PublishVerdict::kDrop, 0s, "invalid_topic"};
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
      return {PublishVerdict::kDrop, 0s, "invalid_argument"};
    // The centre's configuration: every record alike. Keep the data, retry slowly (see the header).
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
      return {PublishVerdict::kRetry, 60s, "not_authorized"};
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      return {PublishVerdict::kRetry, 30s, "unknown_topic"};
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
      return {PublishVerdict::kRetry, 60s, "policy_violation"};
    // Transient: librdkafka already retried within message.timeout.ms; hold a moment and send again.
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
      return {PublishVerdict::kRetry, 1s, "timed_out"};
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
      return {PublishVerdict::kRetry, 1s, "transport"};
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
      return {PublishVerdict::kRetry, 1s, "not_enough_replicas"};
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
      return {PublishVerdict::kRetry, 1s, "no_leader"};
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__DESTROY:
      return {PublishVerdict::kRetry, 0s, "purged"};
    case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
      return {PublishVerdict::kRetry, 10s, "quota_exceeded"};
    default:
      return {PublishVerdict::kRetry, 1s, "broker_error"};
  }
}

std::vector<std::pair<std::string, std::string>> KafkaRecordHeaders(const OutboundUnit& unit) {
  std::vector<std::pair<std::string, std::string>> h;
  h.reserve(unit.attributes.size() + 1);
  for (const auto& [name, value] : unit.attributes) h.emplace_back("ce_" + name, value);
  if (!unit.content_type.empty()) h.emplace_back("content-type", unit.content_type);
  return h;
}

const std::string& KafkaRecordKey(const OutboundUnit& unit) { return unit.key.empty() ? unit.topic : unit.key; }

// ---- The transport ---------------------------------------------------------------------------------------------

namespace {

const char* SecurityProtocol(KafkaSecurityProtocol protocol, const std::string& username, const TlsConfig& tls) {
  switch (protocol) {
    case KafkaSecurityProtocol::kPlaintext: return "plaintext";
    case KafkaSecurityProtocol::kSsl: return "ssl";
    case KafkaSecurityProtocol::kSaslPlaintext: return "sasl_plaintext";
    case KafkaSecurityProtocol::kSaslSsl: return "sasl_ssl";
    case KafkaSecurityProtocol::kAuto: break;
  }
  const bool sasl = !username.empty();
  if (tls.enabled) return sasl ? "sasl_ssl" : "ssl";
  return sasl ? "sasl_plaintext" : "plaintext";
}

const char* SaslMechanism(KafkaSaslMechanism m) {
  switch (m) {
    case KafkaSaslMechanism::kScramSha256: return "SCRAM-SHA-256";
    case KafkaSaslMechanism::kScramSha512: return "SCRAM-SHA-512";
    case KafkaSaslMechanism::kPlain: break;
  }
  return "PLAIN";
}

const char* Codec(KafkaCompression c) {
  switch (c) {
    case KafkaCompression::kLz4: return "lz4";
    case KafkaCompression::kNone: return "none";
    case KafkaCompression::kZstd: break;
  }
  return "zstd";
}

std::string Millis(Duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(d.count()) / 1e6);
  return buf;
}

}  // namespace

KafkaTransport::KafkaTransport(const Config& config, const UplinkConfig& uplink) : config_(config), uplink_(uplink) {}

KafkaTransport::~KafkaTransport() {
  StopPoller();
  Destroy();
}

std::vector<KafkaProperty> KafkaSecurityProperties(KafkaSecurityProtocol protocol, KafkaSaslMechanism mechanism,
                                                   const std::string& username, const std::string& password,
                                                   const TlsConfig& tls) {
  std::vector<KafkaProperty> p;
  auto add = [&](const char* key, const char* name, std::string value) {
    p.push_back(KafkaProperty{key, name, std::move(value)});
  };
  const std::string chosen = SecurityProtocol(protocol, username, tls);
  add("kafka.security_protocol", "security.protocol", chosen);
  if (chosen.rfind("sasl", 0) == 0) {
    add("kafka.sasl_mechanism", "sasl.mechanisms", SaslMechanism(mechanism));
    add("username", "sasl.username", username);
    add("password", "sasl.password", password);
  }
  if (chosen == "ssl" || chosen == "sasl_ssl") {
    if (!tls.ca_file.empty()) add("tls.ca_file", "ssl.ca.location", tls.ca_file);
    if (!tls.cert_file.empty()) add("tls.cert_file", "ssl.certificate.location", tls.cert_file);
    if (!tls.key_file.empty()) add("tls.key_file", "ssl.key.location", tls.key_file);
    add("tls.verify", "enable.ssl.certificate.verification", tls.verify ? "true" : "false");
    add("tls.verify", "ssl.endpoint.identification.algorithm", tls.verify ? "https" : "none");
  }
  return p;
}

Result<std::vector<KafkaProperty>> KafkaProducerProperties(const Config& config, const UplinkConfig& uplink) {
  std::vector<KafkaProperty> p;
  auto add = [&](const char* key, const char* name, std::string value) {
    p.push_back(KafkaProperty{key, name, std::move(value)});
  };
  add("address", "bootstrap.servers", uplink.address);
  add("client_id", "client.id",
      uplink.client_id.empty() ? "ferry-" + config.gateway.id + "-" + uplink.name : uplink.client_id);
  add("(fixed)", "enable.idempotence", "true");
  add("(fixed)", "acks", "all");
  add("(fixed)", "log.connection.close", "false");  // an idle broker closing a connection is not news
  add("kafka.linger", "linger.ms", Millis(uplink.kafka.linger));
  add("kafka.batch_messages", "batch.num.messages", std::to_string(uplink.kafka.batch_messages));
  add("kafka.message_timeout", "message.timeout.ms", std::to_string(uplink.kafka.message_timeout.count() / 1'000'000));
  add("kafka.compression", "compression.codec", Codec(uplink.kafka.compression));
  for (auto& sp : KafkaSecurityProperties(uplink.kafka.security_protocol, uplink.kafka.sasl_mechanism,
                                          uplink.username, uplink.password, uplink.tls))
    p.push_back(std::move(sp));
  // Further librdkafka properties, as given: after ours, so an operator can override a default -- but not what
  // the uplink's guarantees rest on (idempotence, acks=all, the servers, the callbacks).
  for (const auto& entry : uplink.kafka.properties) {
    const auto eq = entry.find('=');
    const std::string name = eq == std::string::npos ? entry : entry.substr(0, eq);
    if (eq == std::string::npos || name.empty())
      return InvalidArgument("uplink " + uplink.name + ": kafka.properties: \"" + entry + "\" is not name=value");
    if (name == "enable.idempotence" || name == "acks" || name == "request.required.acks" ||
        name == "bootstrap.servers" || name == "metadata.broker.list" || name.find("_cb") != std::string::npos ||
        name == "opaque") {
      return InvalidArgument("uplink " + uplink.name + ": kafka.properties: \"" + name +
                             "\" is set by Ferry and cannot be changed");
    }
    p.push_back(KafkaProperty{"kafka.properties \"" + name + "\"", name, entry.substr(eq + 1)});
  }
  return p;
}

Result<rd_kafka_conf_t*> KafkaTransport::BuildConf() const {
  auto props = KafkaProducerProperties(config_, uplink_);
  if (!props) return tl::make_unexpected(props.error());
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::string error;
  for (const KafkaProperty& prop : *props) {
    char errstr[512] = "";
    // The message names the Ferry key the value came from; librdkafka's text names the property and the problem.
    if (rd_kafka_conf_set(conf, prop.name.c_str(), prop.value.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
      error = "uplink " + uplink_.name + ": " + prop.key + ": " + errstr;
      break;
    }
  }
  if (!error.empty()) {
    rd_kafka_conf_destroy(conf);
    return InvalidArgument(error);
  }
  rd_kafka_conf_set_opaque(conf, const_cast<KafkaTransport*>(this));
  rd_kafka_conf_set_dr_msg_cb(conf, &KafkaTransport::OnDelivery);
  rd_kafka_conf_set_error_cb(conf, &KafkaTransport::OnError);
  rd_kafka_conf_set_log_cb(conf, &KafkaTransport::OnLog);
  return conf;
}

Status KafkaTransport::Create() {
  if (rk_ != nullptr) return Ok();
  auto conf = BuildConf();
  if (!conf) return tl::make_unexpected(conf.error());
  char errstr[512] = "";
  rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, errstr, sizeof errstr);  // takes the conf on success
  if (rk_ == nullptr) {
    rd_kafka_conf_destroy(*conf);
    return InvalidArgument("uplink " + uplink_.name + ": cannot create the Kafka producer: " + errstr);
  }
  StartPoller();
  return Ok();
}

void KafkaTransport::Destroy() {
  if (rk_ == nullptr) return;
  // Records librdkafka still holds fail with __DESTROY; nobody collects them any more.
  rd_kafka_destroy(rk_);
  rk_ = nullptr;
}

void KafkaTransport::StartPoller() {
  stop_poller_ = false;
  poller_ = std::thread([this] { PollLoop(); });
}

void KafkaTransport::StopPoller() {
  stop_poller_ = true;
  if (rk_ != nullptr) rd_kafka_yield(rk_);
  if (poller_.joinable()) poller_.join();
}

void KafkaTransport::PollLoop() {
  while (!stop_poller_) {
    if (probe_.exchange(false)) {
      const rd_kafka_metadata_t* md = nullptr;
      const rd_kafka_resp_err_t err =
          rd_kafka_metadata(rk_, 0, nullptr, &md, static_cast<int>(kProbeTimeout.count()));
      if (md != nullptr) rd_kafka_metadata_destroy(md);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR && !fatal_) {
        down_reported_ = false;
        {
          std::lock_guard<std::mutex> lock(mu_);
          logged_error_.clear();
        }
        ++session_;  // before the state: whoever sees kUp sees the new session
        state_ = LinkState::kUp;
      } else {
        if (!down_reported_.exchange(true)) {
          FERRY_LOG_WARN("uplink %s: no Kafka broker of %s answers: %s; retrying with backoff, the backlog is kept",
                         uplink_.name.c_str(), uplink_.address.c_str(),
                         fatal_ ? "fatal producer error" : rd_kafka_err2str(err));
        }
        state_ = LinkState::kDown;
      }
      Wake();
    }
    if (rd_kafka_poll(rk_, 100) > 0) Wake();
  }
}

void KafkaTransport::OnDelivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  auto* self = static_cast<KafkaTransport*>(opaque);
  std::lock_guard<std::mutex> lock(self->mu_);
  self->reports_.push_back(Report{reinterpret_cast<uintptr_t>(msg->_private), msg->err});
}

void KafkaTransport::OnError(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  auto* self = static_cast<KafkaTransport*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512] = "";
    const rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof why);
    FERRY_LOG_ERROR("uplink %s: fatal Kafka producer error %s: %s; the producer is created again",
                    self->uplink_.name.c_str(), rd_kafka_err2name(orig), why);
    self->fatal_ = true;
    self->LinkDown("fatal producer error");
    return;
  }
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
    self->LinkDown("all brokers down");
    return;
  }
  // Everything else librdkafka reports here (a broker connection lost, a resolve failure, a TLS handshake or
  // SASL authentication that failed) it recovers from by itself, retrying; the link stays up while any broker
  // does. While it is not up, the reason is what the operator needs (a wrong CA, refused credentials): each
  // distinct one is a warning, once per episode.
  std::string key = reason != nullptr ? reason : "";
  if (auto at = key.find(" (after "); at != std::string::npos) key.resize(at);
  bool fresh = false;
  if (self->state_.load() != LinkState::kUp) {
    std::lock_guard<std::mutex> lock(self->mu_);
    fresh = key != self->logged_error_;
    if (fresh) self->logged_error_ = key;
  }
  if (fresh)
    FERRY_LOG_WARN("uplink %s: Kafka broker error %s: %s", self->uplink_.name.c_str(),
                   rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)), reason);
  else
    FERRY_LOG_DEBUG("uplink %s: Kafka: %s: %s", self->uplink_.name.c_str(),
                    rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)), reason);
}

void KafkaTransport::OnLog(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  // syslog levels: 0-3 errors, 4 warnings, 5-6 notices and info, 7 debug. A broker connection failing (FAIL) is
  // logged by librdkafka for every broker and every reconnect attempt; the link's own warning says it once.
  const char* name = rd_kafka_name(rk);
  if (level <= 4 && std::strcmp(fac, "FAIL") != 0) FERRY_LOG_WARN("kafka %s: %s: %s", name, fac, buf);
  else FERRY_LOG_DEBUG("kafka %s: %s: %s", name, fac, buf);
}

void KafkaTransport::LinkDown(const char* why) {
  LinkState expected = LinkState::kUp;
  if (state_.compare_exchange_strong(expected, LinkState::kDown))
    FERRY_LOG_WARN("uplink %s: Kafka link down (%s)", uplink_.name.c_str(), why);
  else if (fatal_)
    state_ = LinkState::kDown;
  Wake();
}

void KafkaTransport::Connect() {
  if (state_ != LinkState::kDown) return;
  if (fatal_ || rk_ == nullptr) {
    StopPoller();
    Destroy();
    fatal_ = false;
    if (Status st = Create(); !st) {
      FERRY_LOG_ERROR("%s", st.error().ToString().c_str());
      return;
    }
  }
  // A new session: reports of the last one mean nothing now.
  pending_.clear();
  {
    std::lock_guard<std::mutex> lock(mu_);
    reports_.clear();
  }
  state_ = LinkState::kConnecting;
  probe_ = true;
  rd_kafka_yield(rk_);  // the poll thread probes now, not after its current poll
}

Result<PublishHandle> KafkaTransport::Publish(OutboundUnit unit) {
  if (state_ != LinkState::kUp || rk_ == nullptr || fatal_)
    return Unavailable("uplink " + uplink_.name + ": not connected");
  const auto headers = KafkaRecordHeaders(unit);
  rd_kafka_headers_t* hdrs = rd_kafka_headers_new(headers.size());
  for (const auto& [name, value] : headers)
    rd_kafka_header_add(hdrs, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                        static_cast<ssize_t>(value.size()));
  const uint64_t handle = next_handle_++;
  // The handle travels as the message's opaque; on 32-bit boards only its low bits, which is enough: a handle
  // 2^32 publishes old is never still in flight.
  const auto opaque = static_cast<uintptr_t>(handle);
  // rd_kafka_produceva rather than the RD_KAFKA_V_* macros of rd_kafka_producev (C casts, refused by -Werror).
  rd_kafka_vu_t vu[6] = {};
  size_t n = 0;
  vu[n].vtype = RD_KAFKA_VTYPE_TOPIC;
  vu[n++].u.cstr = unit.topic.c_str();
  vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
  vu[n++].u.i = RD_KAFKA_MSG_F_COPY;
  vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
  vu[n].u.mem.ptr = unit.payload.data();
  vu[n++].u.mem.size = unit.payload.size();
  const std::string& key = KafkaRecordKey(unit);
  vu[n].vtype = RD_KAFKA_VTYPE_KEY;
  vu[n].u.mem.ptr = const_cast<char*>(key.data());
  vu[n++].u.mem.size = key.size();
  vu[n].vtype = RD_KAFKA_VTYPE_HEADERS;
  vu[n++].u.headers = hdrs;
  vu[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
  vu[n++].u.ptr = reinterpret_cast<void*>(opaque);
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (rd_kafka_error_t* e = rd_kafka_produceva(rk_, vu, n); e != nullptr) {
    err = rd_kafka_error_code(e);
    rd_kafka_error_destroy(e);
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_headers_destroy(hdrs);  // ours again when producev fails
    const std::string what = "uplink " + uplink_.name + ": produce to \"" + unit.topic + "\": " + rd_kafka_err2str(err);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) return MakeError(ErrorCode::kBusy, what);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      fatal_ = true;
      return Unavailable(what);
    }
    if (ClassifyKafkaDelivery(err).kind == PublishVerdict::kDrop) return InvalidArgument(what);
    return Unavailable(what);
  }
  pending_[opaque] = handle;
  return PublishHandle{handle};
}

size_t KafkaTransport::Completions(std::vector<Completion>* out) {
  // While the link is down nothing is reported (the contract): the engine resends all it had in flight.
  if (state_ != LinkState::kUp) return 0;
  std::vector<Report> got;
  {
    std::lock_guard<std::mutex> lock(mu_);
    got.swap(reports_);
  }
  size_t n = 0;
  for (const Report& r : got) {
    auto it = pending_.find(r.opaque);
    if (it == pending_.end()) continue;  // of an earlier session
    out->push_back(Completion{PublishHandle{it->second}, ClassifyKafkaDelivery(r.err)});
    pending_.erase(it);
    ++n;
  }
  return n;
}

void KafkaTransport::Disconnect() {
  // The producer stays: it reconnects by itself, and what it still holds may yet be delivered (duplicates at
  // worst, which the centre drops by id).
  pending_.clear();
  {
    std::lock_guard<std::mutex> lock(mu_);
    reports_.clear();
  }
  state_ = LinkState::kDown;
}

void KafkaTransport::Close(std::chrono::milliseconds wait) {
  if (rk_ != nullptr) rd_kafka_flush(rk_, static_cast<int>(wait.count()));
  Disconnect();
  StopPoller();
}

}  // namespace ferry
