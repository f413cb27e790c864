// kafka_feed.cc: a librdkafka consumer feeding a CentralReceiver (see ferry/kafka_feed.h).
#include "ferry/kafka_feed.h"

#include <chrono>
#include <cstring>

#include <librdkafka/rdkafka.h>

namespace ferry {

CentralMessage KafkaRecordToMessage(std::string_view topic, std::string_view payload,
                                    const std::vector<std::pair<std::string, std::string>>& headers,
                                    std::string* content_type) {
  CentralMessage m;
  m.topic = topic;
  m.payload = payload;
  content_type->clear();
  for (const auto& [name, value] : headers) {
    if (name.size() > 3 && name.compare(0, 3, "ce_") == 0) {
      m.user_properties.emplace_back(name.substr(3), value);
    } else if (name == "content-type") {
      *content_type = value;
    }
  }
  m.content_type = *content_type;
  return m;
}

KafkaFeed::KafkaFeed(CentralReceiver& receiver, KafkaFeedOptions options)
    : receiver_(receiver), options_(std::move(options)) {}

KafkaFeed::~KafkaFeed() { Stop(); }

Status KafkaFeed::Start() {
  if (rk_ != nullptr) return Ok();
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512] = "";
  const bool group = !options_.group.empty();
  std::vector<std::pair<const char*, std::string>> props = {
      {"bootstrap.servers", options_.bootstrap},
      {"client.id", options_.client_id},
      {"group.id", group ? options_.group : options_.client_id},  // librdkafka wants one even when assigning
      {"enable.auto.commit", group ? "true" : "false"},
      {"auto.offset.reset", "earliest"},
      {"enable.partition.eof", "false"},
      {"log.connection.close", "false"},
  };
  for (const auto& [name, value] : props) {
    if (rd_kafka_conf_set(conf, name, value.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return InvalidArgument(std::string("kafka consumer: ") + name + ": " + errstr);
    }
  }
  // librdkafka's own log lines go to warn (errors and warnings only; a broker connection failing, FAIL, is
  // repeated for every reconnect attempt and left out).
  rd_kafka_conf_set_opaque(conf, this);
  rd_kafka_conf_set_log_cb(conf, [](const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
    auto* self = static_cast<KafkaFeed*>(rd_kafka_opaque(rk));
    if (self == nullptr || level > 4 || std::strcmp(fac, "FAIL") == 0 || !self->options_.warn) return;
    self->options_.warn(std::string("kafka: ") + fac + ": " + buf);
  });
  rd_kafka_conf_set_error_cb(conf, [](rd_kafka_t*, int, const char*, void*) {});  // in the log already
  rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  if (rk_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    return InvalidArgument(std::string("kafka consumer: ") + errstr);
  }
  rd_kafka_poll_set_consumer(rk_);
  rd_kafka_resp_err_t err;
  if (group) {
    rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, options_.topic.c_str(), RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(rk_, topics);
    rd_kafka_topic_partition_list_destroy(topics);
  } else {
    // Every partition from the beginning: the topic's partitions from its metadata (retried: the cluster may
    // still be starting).
    int partitions = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk_, options_.topic.c_str(), nullptr);
    do {
      const rd_kafka_metadata_t* md = nullptr;
      err = rd_kafka_metadata(rk_, 0, t, &md, 2000);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
        partitions = md->topics[0].partition_cnt;
      if (md != nullptr) rd_kafka_metadata_destroy(md);
    } while (partitions == 0 && std::chrono::steady_clock::now() < deadline);
    rd_kafka_topic_destroy(t);
    if (partitions == 0) {
      rd_kafka_destroy(rk_);
      rk_ = nullptr;
      return Unavailable("kafka consumer: no metadata for topic \"" + options_.topic + "\" from " + options_.bootstrap);
    }
    rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p)
      rd_kafka_topic_partition_list_add(parts, options_.topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    err = rd_kafka_assign(rk_, parts);
    rd_kafka_topic_partition_list_destroy(parts);
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_destroy(rk_);
    rk_ = nullptr;
    return Unavailable(std::string("kafka consumer: ") + (group ? "subscribe: " : "assign: ") + rd_kafka_err2str(err));
  }
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
  return Ok();
}

void KafkaFeed::Loop() {
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content_type;
  while (!stop_) {
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(rk_, 100);
    if (msg == nullptr) continue;
    if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (options_.warn) options_.warn(std::string("kafka: ") + rd_kafka_message_errstr(msg));
      rd_kafka_message_destroy(msg);
      continue;
    }
    headers.clear();
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name;
      const void* value;
      size_t size;
      for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i)
        headers.emplace_back(name, value != nullptr ? std::string(static_cast<const char*>(value), size) : "");
    }
    const std::string_view topic = rd_kafka_topic_name(msg->rkt);
    const std::string_view payload(static_cast<const char*>(msg->payload), msg->payload != nullptr ? msg->len : 0);
    receiver_.Receive(KafkaRecordToMessage(topic, payload, headers, &content_type));
    ++records_;
    rd_kafka_message_destroy(msg);
  }
}

void KafkaFeed::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (rk_ != nullptr) {
    rd_kafka_consumer_close(rk_);
    rd_kafka_destroy(rk_);
    rk_ = nullptr;
  }
}

}  // namespace ferry
