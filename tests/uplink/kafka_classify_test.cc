// The Kafka transport's pure parts: delivery classification (every error class) and the record headers of the
// CloudEvents Kafka binding (binary content mode).
#include <gtest/gtest.h>

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
