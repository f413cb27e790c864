// librdkafka's mock cluster, in the test process: `brokers` brokers listening on 127.0.0.1, with `topic` created
// (`partitions` partitions, replication factor min(brokers, 3)). Used by the Kafka uplink and downlink tests.
#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <string>

namespace ferry::test {

class MockKafkaCluster {
 public:
  MockKafkaCluster(const std::string& topic, int partitions, int brokers = 3) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[256];
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk_ == nullptr) return;
    mc_ = rd_kafka_mock_cluster_new(rk_, brokers);
    if (mc_ == nullptr) return;
    rd_kafka_mock_topic_create(mc_, topic.c_str(), partitions, brokers < 3 ? brokers : 3);
  }
  ~MockKafkaCluster() {
    if (mc_ != nullptr) rd_kafka_mock_cluster_destroy(mc_);
    if (rk_ != nullptr) rd_kafka_destroy(rk_);
  }
  MockKafkaCluster(const MockKafkaCluster&) = delete;
  MockKafkaCluster& operator=(const MockKafkaCluster&) = delete;

  bool ok() const { return mc_ != nullptr; }
  std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(mc_); }
  rd_kafka_mock_cluster_t* get() { return mc_; }
  void SetDown(int32_t broker) { rd_kafka_mock_broker_set_down(mc_, broker); }
  void SetUp(int32_t broker) { rd_kafka_mock_broker_set_up(mc_, broker); }

 private:
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* mc_ = nullptr;
};

}  // namespace ferry::test
