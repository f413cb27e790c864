// ferry/uplink_kafka.h: the pure parts of the Kafka uplink transport (hub/uplink/src/kafka_transport.h), public
// so that they are unit-tested without a cluster: how a delivery report is classified, and how an outbound unit
// becomes a Kafka record's headers (CloudEvents Kafka protocol binding, binary content mode; docs/wire.md).
//
// Threads: pure functions, any thread.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "ferry/config.h"
#include "ferry/error.h"
#include "ferry/uplink_transport.h"

namespace ferry {

// The one place Kafka delivery outcomes are classified (STYLE habit 11), for both a delivery report's error
// and an error rd_kafka_produce() returns for one message:
//   kOk     RD_KAFKA_RESP_ERR_NO_ERROR
//   kDrop   this record can never be stored as it is: message too large, invalid or corrupt record, a record
//           batch or timestamp the broker refuses. The engine sets it aside (poison isolation) and counts it.
//   kRetry  everything else: broker transport, timeouts, no leader, not enough replicas, a purged queue... And,
//           deliberately, authorization failures and an unknown topic: those are the centre's configuration
//           (an ACL, a topic not yet created) and hit every record alike, so the data is kept and retried
//           slowly, as ClassifyPublish does for MQTT's "not authorized"; the engine's strike rule then poisons
//           nothing while the centre refuses everything.
PublishVerdict ClassifyKafkaDelivery(rd_kafka_resp_err_t err);

// The record headers of `unit`, in order: every CloudEvents attribute as "ce_<name>" (binary content mode),
// then "content-type" when the unit has one. The record's value is the payload as it is.
std::vector<std::pair<std::string, std::string>> KafkaRecordHeaders(const OutboundUnit& unit);

// The record's key: unit.key (the event's subject), or, when it has none (a batch, an event without a subject),
// the topic. Kafka keeps order only within a partition and the default partitioner hashes the key: one device's
// events stay in order, and so do a stream's batches and its subject-less events (unkeyed records would be
// spread over partitions at random and overtake one another).
const std::string& KafkaRecordKey(const OutboundUnit& unit);

// One librdkafka producer property and the Ferry config key it comes from (for error messages).
struct KafkaProperty {
  std::string key;    // "kafka.linger", "tls.ca_file", "kafka.properties \"socket.timeout.ms\"", "(fixed)"
  std::string name;   // librdkafka's property name
  std::string value;
};

// The security part of any Kafka client's properties (the uplink's producer, a downlink's consumer), in order:
// security.protocol (auto: ssl when tls.enabled, sasl_* when a username is set); for sasl_*: the mechanism and
// the credentials; for ssl and sasl_ssl: the tls.* files and verification (certificate and host name).
std::vector<KafkaProperty> KafkaSecurityProperties(KafkaSecurityProtocol protocol, KafkaSaslMechanism mechanism,
                                                   const std::string& username, const std::string& password,
                                                   const TlsConfig& tls);

// The producer's properties for `uplink`, in the order they are set: the servers and client id; the fixed
// enable.idempotence=true, acks=all; linger, batch size, message timeout, compression; security.protocol (auto:
// ssl when tls.enabled, sasl_* when a username is set) with the SASL mechanism and credentials and the tls.*
// files; then kafka.properties. librdkafka checks names and values when they are applied (KafkaTransport).
// Errors: InvalidArgument for a kafka.properties entry that is not name=value or that would change what Ferry
// fixes (idempotence, acks, the bootstrap servers, callbacks).
Result<std::vector<KafkaProperty>> KafkaProducerProperties(const Config& config, const UplinkConfig& uplink);

}  // namespace ferry
