// The Kafka transport's pure parts: delivery classification (every error class) and the record headers of the
// CloudEvents Kafka binding (binary content mode).
#include <gtest/gtest.h>

#include <map>

#include "ferry/uplink_kafka.h"

namespace ferry {
namespace {

using Kind = PublishVerdict::Kind;

TEST(ClassifyKafkaDelivery, DeliveredIsOk) {
  const PublishVerdict v = ClassifyKafkaDelivery(RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(v.kind, PublishVerdict::kOk);
  EXPECT_TRUE(v.reason.empty());
}

TEST(ClassifyKafkaDelivery, ARecordTheBrokerCanNeverStoreIsDropped) {
  struct Case {
    rd_kafka_resp_err_t err;
    const char* reason;
  };
  for (const Case& c : {Case{RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, "message_too_large"},
                        Case{RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE, "record_list_too_large"},
                        Case{RD_KAFKA_RESP_ERR_INVALID_RECORD, "invalid_record"},
                        Case{RD_KAFKA_RESP_ERR_INVALID_MSG, "invalid_record"},
                        Case{RD_KAFKA_RESP_ERR__BAD_MSG, "invalid_record"},
                        Case{RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP, "invalid_timestamp"},
                        Case{RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION, "invalid_topic"},
                        Case{RD_KAFKA_RESP_ERR__INVALID_ARG, "invalid_argument"}}) {
    const PublishVerdict v = ClassifyKafkaDelivery(c.err);
    EXPECT_EQ(v.kind, PublishVerdict::kDrop) << rd_kafka_err2name(c.err);
    EXPECT_EQ(v.reason, c.reason) << rd_kafka_err2name(c.err);
  }
}

TEST(ClassifyKafkaDelivery, TransientErrorsAreRetriedSoon) {
  using namespace std::chrono_literals;
  struct Case {
    rd_kafka_resp_err_t err;
    const char* reason;
  };
  for (const Case& c : {Case{RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, "timed_out"},
                        Case{RD_KAFKA_RESP_ERR__TIMED_OUT, "timed_out"},
                        Case{RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, "timed_out"},
                        Case{RD_KAFKA_RESP_ERR__TRANSPORT, "transport"},
                        Case{RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, "transport"},
                        Case{RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION, "transport"},
                        Case{RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, "not_enough_replicas"},
                        Case{RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, "not_enough_replicas"},
                        Case{RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, "no_leader"},
                        Case{RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, "no_leader"},
                        Case{RD_KAFKA_RESP_ERR__PURGE_QUEUE, "purged"},
                        Case{RD_KAFKA_RESP_ERR__DESTROY, "purged"},
                        Case{RD_KAFKA_RESP_ERR_UNKNOWN, "broker_error"},
                        Case{RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, "broker_error"}}) {
    const PublishVerdict v = ClassifyKafkaDelivery(c.err);
    EXPECT_EQ(v.kind, PublishVerdict::kRetry) << rd_kafka_err2name(c.err);
    EXPECT_EQ(v.reason, c.reason) << rd_kafka_err2name(c.err);
    EXPECT_LE(v.retry_after, 1s) << rd_kafka_err2name(c.err);
  }
  EXPECT_EQ(ClassifyKafkaDelivery(RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED).kind, PublishVerdict::kRetry);
  EXPECT_EQ(ClassifyKafkaDelivery(RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED).reason, "quota_exceeded");
}

// The centre's configuration refuses every record alike: keep the data and retry slowly, never drop it.
TEST(ClassifyKafkaDelivery, AnAclOrAMissingTopicKeepsTheDataAndRetriesSlowly) {
  using namespace std::chrono_literals;
  for (rd_kafka_resp_err_t err :
       {RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED,
        RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED, RD_KAFKA_RESP_ERR__AUTHENTICATION}) {
    const PublishVerdict v = ClassifyKafkaDelivery(err);
    EXPECT_EQ(v.kind, PublishVerdict::kRetry) << rd_kafka_err2name(err);
    EXPECT_EQ(v.reason, "not_authorized");
    EXPECT_EQ(v.retry_after, 60s);
  }
  for (rd_kafka_resp_err_t err : {RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
                                  RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION}) {
    const PublishVerdict v = ClassifyKafkaDelivery(err);
    EXPECT_EQ(v.kind, PublishVerdict::kRetry) << rd_kafka_err2name(err);
    EXPECT_EQ(v.reason, "unknown_topic");
    EXPECT_EQ(v.retry_after, 30s);
  }
  EXPECT_EQ(ClassifyKafkaDelivery(RD_KAFKA_RESP_ERR_POLICY_VIOLATION).kind, PublishVerdict::kRetry);
}

// Every code librdkafka knows gets a verdict with a reason unless it is success (no code falls through empty).
TEST(ClassifyKafkaDelivery, EveryKnownCodeHasAReason) {
  const rd_kafka_err_desc* descs = nullptr;
  size_t n = 0;
  rd_kafka_get_err_descs(&descs, &n);
  size_t seen = 0;
  for (size_t i = 0; i < n; ++i) {
    if (descs[i].name == nullptr) continue;
    ++seen;
    const PublishVerdict v = ClassifyKafkaDelivery(descs[i].code);
    if (descs[i].code == RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    EXPECT_NE(v.kind, PublishVerdict::kOk) << descs[i].name;
    EXPECT_FALSE(v.reason.empty()) << descs[i].name;
  }
  EXPECT_GT(seen, 100u);
}

TEST(KafkaRecordHeaders, AttributesBecomeCePrefixedHeadersThenContentType) {
  OutboundUnit u;
  u.topic = "ferry.gw-1.telemetry";
  u.key = "dev-7";
  u.content_type = "application/json";
  u.attributes = {{"specversion", "1.0"}, {"id", "e-1"},       {"source", "telemetry/dev-7"},
                  {"type", "ferry.mqtt"}, {"subject", "dev-7"}, {"ferryseq", "42"}};
  const auto h = KafkaRecordHeaders(u);
  ASSERT_EQ(h.size(), 7u);
  EXPECT_EQ(h[0], (std::pair<std::string, std::string>{"ce_specversion", "1.0"}));
  EXPECT_EQ(h[1], (std::pair<std::string, std::string>{"ce_id", "e-1"}));
  EXPECT_EQ(h[2], (std::pair<std::string, std::string>{"ce_source", "telemetry/dev-7"}));
  EXPECT_EQ(h[3], (std::pair<std::string, std::string>{"ce_type", "ferry.mqtt"}));
  EXPECT_EQ(h[4], (std::pair<std::string, std::string>{"ce_subject", "dev-7"}));
  EXPECT_EQ(h[5], (std::pair<std::string, std::string>{"ce_ferryseq", "42"}));
  EXPECT_EQ(h[6], (std::pair<std::string, std::string>{"content-type", "application/json"}));
}

TEST(KafkaRecordHeaders, ABatchHasOnlyItsContentType) {
  OutboundUnit u;
  u.content_type = "application/vnd.ferry.batch.v1";
  const auto h = KafkaRecordHeaders(u);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].first, "content-type");
  EXPECT_EQ(h[0].second, "application/vnd.ferry.batch.v1");
  EXPECT_TRUE(KafkaRecordHeaders(OutboundUnit{}).empty());
}

// Bytes MQTT would have to percent-encode travel as they are: Kafka headers are binary.
TEST(KafkaRecordHeaders, ValuesAreCarriedAsTheyAre) {
  OutboundUnit u;
  u.attributes = {{"id", std::string("bad\x01id\0x", 8)}};
  const auto h = KafkaRecordHeaders(u);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].second, std::string("bad\x01id\0x", 8));
}

// ---- The producer's properties (TLS, SASL, the pass-through) ----

UplinkConfig KafkaUplink() {
  UplinkConfig u;
  u.name = "central";
  u.type = UplinkType::kKafka;
  u.address = "k1:9092,k2:9092";
  u.kafka.linger = std::chrono::milliseconds(5);
  u.kafka.batch_messages = 10000;
  u.kafka.message_timeout = std::chrono::seconds(60);
  return u;
}

std::map<std::string, std::string> Props(const UplinkConfig& u) {
  Config c;
  c.gateway.id = "gw-1";
  auto p = KafkaProducerProperties(c, u);
  EXPECT_TRUE(p) << (p ? "" : p.error().ToString());
  std::map<std::string, std::string> m;
  if (p)
    for (const auto& prop : *p) m[prop.name] = prop.value;  // later entries override, as librdkafka applies them
  return m;
}

TEST(KafkaProducerProperties, IdempotentWithAcksAllAndTheConfiguredBatching) {
  auto m = Props(KafkaUplink());
  EXPECT_EQ(m["bootstrap.servers"], "k1:9092,k2:9092");
  EXPECT_EQ(m["client.id"], "ferry-gw-1-central");
  EXPECT_EQ(m["enable.idempotence"], "true");
  EXPECT_EQ(m["acks"], "all");
  EXPECT_EQ(m["linger.ms"], "5.000");
  EXPECT_EQ(m["batch.num.messages"], "10000");
  EXPECT_EQ(m["message.timeout.ms"], "60000");
  EXPECT_EQ(m["compression.codec"], "zstd");
  EXPECT_EQ(m["security.protocol"], "plaintext");
  EXPECT_EQ(m.count("sasl.username"), 0u);
  EXPECT_EQ(m.count("ssl.ca.location"), 0u);
}

TEST(KafkaProducerProperties, TlsAndSaslFromTheUplinksKeys) {
  UplinkConfig u = KafkaUplink();
  u.tls.enabled = true;
  u.tls.ca_file = "/etc/ferry/ca.pem";
  u.tls.cert_file = "/etc/ferry/gw.pem";
  u.tls.key_file = "/etc/ferry/gw.key";
  u.username = "gw-1";
  u.password = "secret";
  u.kafka.sasl_mechanism = KafkaSaslMechanism::kScramSha512;
  u.kafka.compression = KafkaCompression::kLz4;
  auto m = Props(u);
  EXPECT_EQ(m["security.protocol"], "sasl_ssl");
  EXPECT_EQ(m["sasl.mechanisms"], "SCRAM-SHA-512");
  EXPECT_EQ(m["sasl.username"], "gw-1");
  EXPECT_EQ(m["sasl.password"], "secret");
  EXPECT_EQ(m["ssl.ca.location"], "/etc/ferry/ca.pem");
  EXPECT_EQ(m["ssl.certificate.location"], "/etc/ferry/gw.pem");
  EXPECT_EQ(m["ssl.key.location"], "/etc/ferry/gw.key");
  EXPECT_EQ(m["enable.ssl.certificate.verification"], "true");
  EXPECT_EQ(m["ssl.endpoint.identification.algorithm"], "https");
  EXPECT_EQ(m["compression.codec"], "lz4");

  u.tls.enabled = false;  // auto: SASL without TLS
  EXPECT_EQ(Props(u)["security.protocol"], "sasl_plaintext");
  EXPECT_EQ(Props(u).count("ssl.ca.location"), 0u);
  u.username.clear();
  u.tls.enabled = true;
  u.tls.verify = false;
  m = Props(u);
  EXPECT_EQ(m["security.protocol"], "ssl");
  EXPECT_EQ(m.count("sasl.mechanisms"), 0u);
  EXPECT_EQ(m["enable.ssl.certificate.verification"], "false");
  u.kafka.security_protocol = KafkaSecurityProtocol::kPlaintext;  // explicit wins
  EXPECT_EQ(Props(u)["security.protocol"], "plaintext");
}

TEST(KafkaProducerProperties, PassThroughComesLastButCannotUndoTheGuarantees) {
  UplinkConfig u = KafkaUplink();
  u.kafka.properties = {"socket.keepalive.enable=true", "linger.ms=20"};
  auto m = Props(u);
  EXPECT_EQ(m["socket.keepalive.enable"], "true");
  EXPECT_EQ(m["linger.ms"], "20");
  Config c;
  for (const char* bad : {"enable.idempotence=false", "acks=1", "request.required.acks=1", "bootstrap.servers=x:1",
                          "dr_msg_cb=0"}) {
    u.kafka.properties = {bad};
    auto p = KafkaProducerProperties(c, u);
    ASSERT_FALSE(p) << bad;
    EXPECT_NE(p.error().message.find("set by Ferry"), std::string::npos) << p.error().message;
  }
  u.kafka.properties = {"linger.ms"};
  auto p = KafkaProducerProperties(c, u);
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("is not name=value"), std::string::npos) << p.error().message;
}

// Every property Ferry sets is one this librdkafka knows and accepts (names, values, SSL/SASL/zstd built in).
TEST(KafkaProducerProperties, LibrdkafkaAcceptsEveryOne) {
  UplinkConfig u = KafkaUplink();
  u.tls.enabled = true;
  u.tls.ca_file = "/etc/ferry/ca.pem";
  u.username = "gw-1";
  u.password = "secret";
  for (auto mech : {KafkaSaslMechanism::kPlain, KafkaSaslMechanism::kScramSha256, KafkaSaslMechanism::kScramSha512}) {
    for (auto codec : {KafkaCompression::kZstd, KafkaCompression::kLz4, KafkaCompression::kNone}) {
      u.kafka.sasl_mechanism = mech;
      u.kafka.compression = codec;
      auto p = KafkaProducerProperties(Config{}, u);
      ASSERT_TRUE(p);
      rd_kafka_conf_t* conf = rd_kafka_conf_new();
      for (const auto& prop : *p) {
        char err[512] = "";
        EXPECT_EQ(rd_kafka_conf_set(conf, prop.name.c_str(), prop.value.c_str(), err, sizeof err), RD_KAFKA_CONF_OK)
            << prop.name << "=" << prop.value << ": " << err;
      }
      rd_kafka_conf_destroy(conf);
    }
  }
  // And an unknown pass-through name is librdkafka's error, which the transport reports naming the entry.
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512] = "";
  EXPECT_EQ(rd_kafka_conf_set(conf, "no.such.property", "1", err, sizeof err), RD_KAFKA_CONF_UNKNOWN);
  rd_kafka_conf_destroy(conf);
}

// The key keeps order where Kafka can: per device, else per topic (batches, events without a subject).
TEST(KafkaRecordKey, TheSubjectElseTheTopic) {
  OutboundUnit u;
  u.topic = "ferry.gw-1.telemetry";
  u.key = "dev-7";
  EXPECT_EQ(KafkaRecordKey(u), "dev-7");
  u.key.clear();
  EXPECT_EQ(KafkaRecordKey(u), "ferry.gw-1.telemetry");
}

}  // namespace
}  // namespace ferry
