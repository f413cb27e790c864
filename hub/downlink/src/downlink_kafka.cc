// downlink_kafka.cc: a Kafka topic mirrored into a local table stream (see downlink_kafka.h).
#include "downlink_kafka.h"

#include <chrono>
#include <cstring>
#include <future>

#include <librdkafka/rdkafka.h>

#include "ferry/flow_control.h"
#include "ferry/log.h"
#include "ferry/uplink_kafka.h"

namespace ferry {

namespace {
constexpr int kMetadataTimeoutMs = 2000;
}  // namespace

KafkaDownlink::~KafkaDownlink() { Stop(); }

Status KafkaDownlink::Start() {
  if (rk_ != nullptr) return Ok();
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512] = "";
  const std::string client_id =
      dl_.client_id.empty() ? "ferry-" + config_.gateway.id + "-" + dl_.name : dl_.client_id;
  std::vector<KafkaProperty> props = {
      {"address", "bootstrap.servers", dl_.address},
      {"client_id", "client.id", client_id},
      // No consumer group: partitions are assigned by hand and positions live in the log. librdkafka still wants
      // a group id; nothing is committed to it.
      {"(fixed)", "group.id", client_id},
      {"(fixed)", "enable.auto.commit", "false"},
      {"(fixed)", "enable.auto.offset.store", "false"},
      {"(fixed)", "enable.partition.eof", "true"},
      // A position the topic no longer holds (compacted or deleted past it): start again from the beginning, which
      // rewrites every row still there -- a full resync, never a gap.
      {"(fixed)", "auto.offset.reset", "earliest"},
      {"(fixed)", "log.connection.close", "false"},
  };
  for (auto& p : KafkaSecurityProperties(dl_.security_protocol, dl_.sasl_mechanism, dl_.username, dl_.password,
                                         dl_.tls))
    props.push_back(std::move(p));
  for (const auto& entry : dl_.properties) {
    const auto eq = entry.find('=');
    const std::string name = entry.substr(0, eq);
    if (name == "enable.auto.commit" || name == "enable.auto.offset.store" || name == "bootstrap.servers" ||
        name == "group.id" || name.find("_cb") != std::string::npos || name == "opaque") {
      rd_kafka_conf_destroy(conf);
      return InvalidArgument("downlink " + dl_.name + ": kafka.properties: \"" + name +
                             "\" is set by Ferry and cannot be changed");
    }
    props.push_back({"kafka.properties \"" + name + "\"", name, eq == std::string::npos ? "" : entry.substr(eq + 1)});
  }
  for (const auto& p : props) {
    if (rd_kafka_conf_set(conf, p.name.c_str(), p.value.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return InvalidArgument("downlink " + dl_.name + ": " + p.key + " (librdkafka " + p.name + "): " + errstr);
    }
  }
  rd_kafka_conf_set_opaque(conf, this);
  rd_kafka_conf_set_log_cb(conf, [](const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
    if (level <= 4 && std::strcmp(fac, "FAIL") != 0) FERRY_LOG_WARN("kafka %s: %s: %s", rd_kafka_name(rk), fac, buf);
  });
  rd_kafka_conf_set_error_cb(conf, [](rd_kafka_t*, int err, const char* reason, void* opaque) {
    auto* self = static_cast<KafkaDownlink*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__AUTHENTICATION ||
        err == RD_KAFKA_RESP_ERR__SSL)
      self->LinkDown(reason != nullptr ? reason : rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(err)));
  });
  rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  if (rk_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    return InvalidArgument("downlink " + dl_.name + ": " + errstr);
  }
  rd_kafka_poll_set_consumer(rk_);
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
  return Ok();
}

void KafkaDownlink::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (rk_ != nullptr) {
    rd_kafka_consumer_close(rk_);
    rd_kafka_destroy(rk_);
    rk_ = nullptr;
  }
  link_up_.Set(0);
}

void KafkaDownlink::LinkDown(const std::string& why) {
  // Called from librdkafka's callbacks, on this downlink's own thread (they are served by consumer_poll).
  if (link_up_.Value() != 0 || !down_reported_) {
    FERRY_LOG_WARN("downlink %s: Kafka source %s does not answer: %s; retrying, the table keeps its rows",
                   dl_.name.c_str(), dl_.address.c_str(), why.c_str());
    down_reported_ = true;
  }
  link_up_.Set(0);
}

bool KafkaDownlink::Assign() {
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk_, dl_.topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk_, 0, t, &md, kMetadataTimeoutMs);
  int count = 0;
  std::string why = rd_kafka_err2str(err);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1) {
    if (md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) count = md->topics[0].partition_cnt;
    else why = std::string("topic \"") + dl_.topic + "\": " + rd_kafka_err2str(md->topics[0].err);
  }
  if (md != nullptr) rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(t);
  if (count == 0) {
    LinkDown(why);
    return false;
  }
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(count);
  partitions_.clear();
  for (int32_t p = 0; p < count; ++p) {
    int64_t offset = RD_KAFKA_OFFSET_BEGINNING;
    auto stored = log_.GetState(DownlinkPositionKey(dl_.name, dl_.topic, p));
    if (resetting_) {
      // A reset reads every partition from the beginning, whatever the stored positions say.
    } else if (stored) {
      offset = std::strtoll(stored->c_str(), nullptr, 10);
    } else if (stored.error().code != ErrorCode::kNotFound) {
      FERRY_LOG_ERROR("downlink %s: cannot read its position: %s", dl_.name.c_str(), stored.error().ToString().c_str());
      rd_kafka_topic_partition_list_destroy(parts);
      return false;
    }
    partitions_[p].next = offset >= 0 ? offset : -1;
    rd_kafka_topic_partition_list_add(parts, dl_.topic.c_str(), p)->offset = offset;
  }
  err = rd_kafka_assign(rk_, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    LinkDown(std::string("assign: ") + rd_kafka_err2str(err));
    return false;
  }
  if (down_reported_) FERRY_LOG_INFO("downlink %s: Kafka source %s answers again", dl_.name.c_str(), dl_.address.c_str());
  down_reported_ = false;
  link_up_.Set(1);
  return true;
}

bool KafkaDownlink::UpdateLag() {
  int64_t lag = 0;
  bool all_at_end = !partitions_.empty();
  for (auto& [p, part] : partitions_) {
    int64_t low = 0, high = 0;
    if (rd_kafka_get_watermark_offsets(rk_, dl_.topic.c_str(), p, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        high >= 0)
      part.high = high;
    if (part.high >= 0) lag += std::max<int64_t>(0, part.high - std::max<int64_t>(part.next, 0));
    all_at_end &= part.at_end;
  }
  lag_.Set(lag);
  if (all_at_end) last_sync_.Set(clock_.Now().ns / 1'000'000'000);
  return all_at_end;
}

bool KafkaDownlink::FinishReset() {
  size_t deleted = 0;
  if (!CommitResync(seen_, {}, {DownlinkResetKey(dl_.name)}, &deleted)) return false;
  FERRY_LOG_INFO("downlink %s: reset of table %s done: %zu rows the topic no longer has deleted", dl_.name.c_str(),
                 dl_.table.c_str(), deleted);
  resetting_ = false;
  seen_.clear();
  return true;
}

void KafkaDownlink::Loop() {
  Backoff backoff(dl_.backoff.min, dl_.backoff.max, static_cast<uint64_t>(clock_.Now().ns));
  auto next_attempt = std::chrono::steady_clock::now();
  const size_t max_batch = static_cast<size_t>(dl_.batch);
  std::vector<Event> batch;
  std::map<int32_t, int64_t> positions;
  auto rewind = [&] {
    rd_kafka_assign(rk_, nullptr);
    assigned_ = false;
    next_attempt = std::chrono::steady_clock::now() + backoff.Next();
  };
  auto next_reset_check = std::chrono::steady_clock::now();
  while (!stop_) {
    if (!resetting_ && std::chrono::steady_clock::now() >= next_reset_check) {
      next_reset_check = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      if (ResetRequested()) {
        FERRY_LOG_INFO("downlink %s: a reset was requested: reading topic %s from the beginning into table %s",
                       dl_.name.c_str(), dl_.topic.c_str(), dl_.table.c_str());
        resetting_ = true;
        seen_.clear();
        if (assigned_) {
          rd_kafka_assign(rk_, nullptr);
          assigned_ = false;
        }
        next_attempt = std::chrono::steady_clock::now();
      }
    }
    if (!assigned_) {
      rd_kafka_poll(rk_, 0);  // serves error and log callbacks meanwhile
      if (std::chrono::steady_clock::now() < next_attempt) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the backoff's pace, checked for stop
        continue;
      }
      if (!(assigned_ = Assign())) {
        next_attempt = std::chrono::steady_clock::now() + backoff.Next();
        continue;
      }
    }
    batch.clear();
    positions.clear();
    bool failed = false;
    // The first poll waits a little; then take whatever is ready now, up to the batch size.
    for (int wait_ms = 100; batch.size() < max_batch && !stop_; wait_ms = 0) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, wait_ms);
      if (m == nullptr) break;
      const int32_t p = m->partition;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        partitions_[p].at_end = true;
        partitions_[p].high = m->offset;
        rd_kafka_message_destroy(m);
        continue;
      }
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        LinkDown(rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        failed = true;
        break;
      }
      if (link_up_.Value() == 0) {
        link_up_.Set(1);
        down_reported_ = false;
      }
      backoff.Reset();
      partitions_[p].at_end = false;
      positions[p] = m->offset + 1;
      const std::string_view key(static_cast<const char*>(m->key), m->key != nullptr ? m->key_len : 0);
      std::optional<std::string_view> value;
      if (m->payload != nullptr) value = std::string_view(static_cast<const char*>(m->payload), m->len);
      rd_kafka_timestamp_type_t tstype;
      const int64_t ms = rd_kafka_message_timestamp(m, &tstype);
      auto row = MakeRow(key, value, dl_.topic + "/" + std::to_string(p) + "/" + std::to_string(m->offset),
                         TimeNs{ms > 0 ? ms * 1'000'000 : 0});
      if (row) {
        if (resetting_) seen_.insert(row->subject);
        batch.push_back(std::move(*row));
      }
      rd_kafka_message_destroy(m);
    }
    if (failed) {
      rewind();
      continue;
    }
    if (!positions.empty()) {
      std::vector<std::pair<std::string, std::string>> state;
      for (const auto& [p, next] : positions)
        state.emplace_back(DownlinkPositionKey(dl_.name, dl_.topic, p), std::to_string(next));
      PendingRows pending = SubmitRows(std::move(batch), std::move(state));
      if (!Committed(pending, "a batch")) {
        rewind();
        continue;
      }
      for (const auto& [p, next] : positions) partitions_[p].next = next;
    }
    if (UpdateLag() && resetting_ && !FinishReset()) rewind();
  }
}

}  // namespace ferry
