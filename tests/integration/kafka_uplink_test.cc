// End-to-end Kafka uplink (issue 11): ferryd as a process forwarding to librdkafka's mock cluster (3 brokers
// reached over TCP on 127.0.0.1, owned by this test process), read back by the centre's Kafka feed
// (ferry/kafka_feed.h) into a CentralReceiver that de-duplicates by id. Covers: every id arrives and each
// device's events in order; all brokers down while events are written, then back; one broker down mid-drain;
// retriable Produce errors; a record too large set aside and counted while the rest arrive; kill -9 mid-drain.
// Waits poll with deadlines; nothing sleeps for a fixed time.
#include <gtest/gtest.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ferry/event_log.h"
#include "ferry/kafka_feed.h"
#include "ferry/write_txn.h"
#include "harness.h"
#include "kafka_mock.h"

namespace ferry::test {
namespace {

using namespace std::chrono_literals;

constexpr char kTopic[] = "ferry.gw-test.telemetry";
constexpr int kPartitions = 6;
constexpr int kDevices = 16;
// The Kafka protocol's ApiKey of Produce (kApiKeyProduce lives in librdkafka's private rdkafka_protocol.h).
constexpr int16_t kApiKeyProduce = 0;

// librdkafka's mock cluster, in this process: 3 brokers listening on 127.0.0.1, the topic created with
// kPartitions partitions, replication factor 3.
class MockCluster : public MockKafkaCluster {
 public:
  MockCluster() : MockKafkaCluster(kTopic, kPartitions) {}
};

std::string Id(int device, int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "d%02d-%06d", device, i);
  return buf;
}

Event MakeEvent(const std::string& id, int device, std::string payload) {
  Event e;
  e.id = id;
  e.source = "telemetry/dev-" + std::to_string(device) + "/engine";
  e.type = "ferry.mqtt";
  e.subject = "dev-" + std::to_string(device);
  e.datacontenttype = "application/json";
  e.payload = std::move(payload);
  return e;
}

// ferryd with one Kafka uplink, its local (ingest) Mosquitto, and the centre: a Kafka feed into a receiver.
// The receiver records the order in which new ids arrive, for the per-device order check.
class KafkaGateway {
 public:
  explicit KafkaGateway(std::string uplink_extra = "", std::string mode = "per_event")
      : dir_("ferry-kafka"), extra_(std::move(uplink_extra)), mode_(std::move(mode)) {
    metrics_port_ = free_tcp_port();
    CentralReceiverOptions o;
    o.client_id = "kafka-rx";
    o.on_new_id = [this](std::string_view id) { order_.emplace_back(id); };  // under the receiver's lock
    rx_ = std::make_unique<ferry::CentralReceiver>(std::move(o));
  }
  ~KafkaGateway() {
    ferryd_.Kill9();
    if (feed_) feed_->Stop();
  }

  bool StartCluster() { return cluster_.ok(); }

  bool Seed(const std::vector<Event>& events) {
    EventLogOptions o;
    o.path = dir_.path() + "/log";
    o.map_size = size_t{512} << 20;
    auto log = EventLog::Open(o);
    if (!log) {
      ADD_FAILURE() << log.error().ToString();
      return false;
    }
    if (auto st = (*log)->GetStreamStats("telemetry"); !st) {
      if (Status c = (*log)->CreateStream("telemetry"); !c) return false;
    }
    Status st = (*log)->Update([&](WriteTxn& txn) -> Status {
      for (const auto& e : events)
        if (auto seq = txn.Append("telemetry", e); !seq) return tl::make_unexpected(seq.error());
      return Ok();
    });
    EXPECT_TRUE(st) << (st ? "" : st.error().ToString());
    return st.has_value();
  }

  bool StartFerryd() {
    if (!local_started_ && !(local_started_ = local_.start())) return false;
    std::string c;
    c += "[gateway]\nid = \"gw-test\"\n";
    c += "[storage]\npath = \"" + dir_.path() + "/log\"\nmap_size = \"512MiB\"\n";
    c += "[ingest]\naddress = \"" + local_.uri() +
         "\"\nclient_id = \"ferryd-kafka\"\nbackoff.min = \"50ms\"\nbackoff.max = \"500ms\"\n";
    c += "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port_) + "\"\n";
    c += "[[stream]]\nname = \"telemetry\"\n";
    c += "[[route]]\nfilter = \"telemetry/{device}/#\"\nstream = \"telemetry\"\nsubject = \"{device}\"\n"
         "content_type = \"application/json\"\nid_json_field = \"id\"\n";
    c += "[[uplink]]\nname = \"central\"\ntype = \"kafka\"\naddress = \"" + cluster_.bootstraps() +
         "\"\nmode = \"" + mode_ + "\"\ntopic = \"ferry.{gateway}.{stream}\"\ninflight = 2000\n"
         "backoff.min = \"50ms\"\nbackoff.max = \"500ms\"\nkafka.linger = \"5ms\"\n" + extra_;
    WriteFile(dir_.path() + "/ferry.toml", c);
    if (!ferryd_.Start(ToolCommand(FERRY_FERRYD_PATH, "FERRY_TEST_FERRYD", {"-c", dir_.path() + "/ferry.toml"}),
                       dir_.path() + "/ferryd.log"))
      return false;
    return poll_until([this] { return Metric("ferry_ingest_link_up") == 1 || !ferryd_.running(); }, 30s) &&
           ferryd_.running();
  }

  bool StartFeed() {
    KafkaFeedOptions o;
    o.bootstrap = cluster_.bootstraps();
    o.topic = kTopic;
    o.client_id = "kafka-feed";
    feed_ = std::make_unique<KafkaFeed>(*rx_, std::move(o));
    Status st = feed_->Start();
    EXPECT_TRUE(st) << (st ? "" : st.error().ToString());
    return st.has_value();
  }

  // Publishes events to the local broker as a device would (QoS 1), one JSON payload each.
  bool Publish(int from, int count) {
    if (!device_) {
      device_ = std::make_unique<mqtt::async_client>(local_.uri(), "kafka-test-device");
      auto opts = mqtt::connect_options_builder().clean_session(true).finalize();
      try {
        device_->connect(opts)->wait_for(10s);
      } catch (const mqtt::exception& e) {
        ADD_FAILURE() << e.what();
        return false;
      }
    }
    std::vector<mqtt::delivery_token_ptr> tokens;
    for (int i = from; i < from + count; ++i) {
      const int d = i % kDevices;
      const std::string payload = "{\"id\":\"" + Id(d, i) + "\",\"v\":" + std::to_string(i) + "}";
      tokens.push_back(device_->publish("telemetry/dev-" + std::to_string(d) + "/engine", payload, 1, false));
      if (tokens.size() >= 50) {  // Paho buffers 100 unacknowledged publishes by default
        for (auto& t : tokens) t->wait_for(10s);
        tokens.clear();
      }
    }
    for (auto& t : tokens) t->wait_for(10s);
    return true;
  }

  std::vector<std::string> Missing(const std::vector<std::string>& ids) const {
    std::vector<std::string> missing;
    for (const auto& id : ids)
      if (!rx_->Has(id)) missing.push_back(id);
    return missing;
  }

  // The first arrival of each device's ids follows the order they were written in (ids carry the index).
  std::string PerDeviceOrderViolation() const {
    std::map<std::string, std::string> last;  // device prefix -> last id
    for (const auto& id : order_) {
      const std::string dev = id.substr(0, id.find('-'));
      auto& l = last[dev];
      if (!l.empty() && id < l) return id + " arrived after " + l;
      l = id;
    }
    return "";
  }

  double Metric(const std::string& sample) { return MetricValue(HttpGet(metrics_port_, "/metrics"), sample); }
  ChildProcess& ferryd() { return ferryd_; }
  MockCluster& cluster() { return cluster_; }
  ferry::CentralReceiver& rx() { return *rx_; }
  uint64_t records() const { return feed_ ? feed_->records() : 0; }
  const std::string& dir() const { return dir_.path(); }

 private:
  TempDir dir_;
  std::string extra_;
  std::string mode_;
  MockCluster cluster_;
  MosquittoBroker local_;
  bool local_started_ = false;
  ChildProcess ferryd_;
  int metrics_port_ = 0;
  std::vector<std::string> order_;
  std::unique_ptr<ferry::CentralReceiver> rx_;
  std::unique_ptr<KafkaFeed> feed_;
  std::unique_ptr<mqtt::async_client> device_;
};

std::vector<Event> Events(int from, int count, std::vector<std::string>* ids) {
  std::vector<Event> events;
  for (int i = from; i < from + count; ++i) {
    const int d = i % kDevices;
    ids->push_back(Id(d, i));
    events.push_back(MakeEvent(Id(d, i), d, "{\"v\":" + std::to_string(i) + "}"));
  }
  return events;
}

const char* kPoisoned = "ferry_uplink_poisoned_total{uplink=\"central\",stream=\"telemetry\"}";

// (a) A backlog of 20,000 events: every id arrives, each device's in order, with its CloudEvent attributes.
TEST(KafkaUplink, ForwardsEveryEventWithPerDeviceOrder) {
  KafkaGateway gw;
  ASSERT_TRUE(gw.StartCluster());
  std::vector<std::string> ids;
  const int kEvents = 20000;
  ASSERT_TRUE(gw.Seed(Events(0, kEvents, &ids)));
  gw.rx().KeepEvents(true);
  ASSERT_TRUE(gw.StartFeed());
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.rx().unique() >= static_cast<uint64_t>(kEvents); }, 180s, 10ms))
      << Head(gw.Missing(ids)) << "\n" << gw.ferryd().log();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ metric ] kafka drain: %d events in %.2f s (%.0f events/s, ferryd start included)\n", kEvents, secs,
              kEvents / secs);
  EXPECT_TRUE(gw.Missing(ids).empty());
  EXPECT_EQ(gw.PerDeviceOrderViolation(), "");
  EXPECT_EQ(gw.rx().bad(), 0u);
  // The ce_ headers and content-type came back as the CloudEvent.
  const auto by_id = gw.rx().ById();
  auto it = by_id.find(Id(3, 3));
  ASSERT_NE(it, by_id.end());
  EXPECT_EQ(it->second.subject, "dev-3");
  EXPECT_EQ(it->second.source, "ferry://gw-test/telemetry");  // the stream; the topic travels as ferrytopic
  EXPECT_EQ(it->second.headers.empty() ? "" : it->second.headers.front().second, "telemetry/dev-3/engine");
  EXPECT_EQ(it->second.type, "ferry.mqtt");
  EXPECT_EQ(it->second.datacontenttype, "application/json");
  EXPECT_EQ(it->second.payload, "{\"v\":3}");
  EXPECT_NE(it->second.seq.value, 0u);  // ce_ferryseq came back
  EXPECT_EQ(gw.Metric("ferry_uplink_link_up{uplink=\"central\"}"), 1);
  EXPECT_TRUE(poll_until([&] { return gw.Metric("ferry_uplink_backlog_events{uplink=\"central\",stream=\"telemetry\"}") == 0; },
                         30s))
      << gw.ferryd().log();
  EXPECT_EQ(gw.Metric(kPoisoned), 0);
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// (b) Every broker down while devices keep writing; the link goes down, the events wait in the log; the brokers
// come back and every id arrives.
TEST(KafkaUplink, AllBrokersDownWhileEventsAreWrittenThenEveryIdArrives) {
  KafkaGateway gw;
  ASSERT_TRUE(gw.StartCluster());
  ASSERT_TRUE(gw.StartFeed());
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) ids.push_back(Id(i % kDevices, i));
  ASSERT_TRUE(gw.Publish(0, 300));
  ASSERT_TRUE(poll_until([&] { return gw.Missing(ids).empty(); }, 60s, 10ms)) << Head(gw.Missing(ids)) << gw.ferryd().log();

  for (int b = 1; b <= 3; ++b) gw.cluster().SetDown(b);
  ASSERT_TRUE(poll_until([&] { return gw.Metric("ferry_uplink_link_up{uplink=\"central\"}") == 0; }, 60s))
      << "the uplink did not see the cluster go down\n" << gw.ferryd().log();
  for (int i = 300; i < 2300; ++i) ids.push_back(Id(i % kDevices, i));
  ASSERT_TRUE(gw.Publish(300, 2000));
  // Stored, and not forwarded while the cluster is down.
  ASSERT_TRUE(poll_until(
      [&] { return gw.Metric("ferry_uplink_backlog_events{uplink=\"central\",stream=\"telemetry\"}") >= 2000; }, 60s))
      << gw.ferryd().log();
  EXPECT_LT(gw.rx().unique(), 2300u);

  for (int b = 1; b <= 3; ++b) gw.cluster().SetUp(b);
  ASSERT_TRUE(poll_until([&] { return gw.Missing(ids).empty(); }, 120s, 10ms))
      << Head(gw.Missing(ids)) << "\n" << gw.ferryd().log();
  EXPECT_EQ(gw.PerDeviceOrderViolation(), "");
  EXPECT_EQ(gw.Metric(kPoisoned), 0);
  EXPECT_TRUE(poll_until([&] { return gw.Metric("ferry_uplink_link_up{uplink=\"central\"}") == 1; }, 30s));
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// (c) One of the three brokers goes down while a backlog drains: its partitions' leaders are gone until it comes
// back (the mock cluster does not move leadership); every id arrives once it is up again.
TEST(KafkaUplink, ABrokerDownMidDrainLosesNothing) {
  KafkaGateway gw;
  ASSERT_TRUE(gw.StartCluster());
  std::vector<std::string> ids;
  const int kEvents = 20000;
  ASSERT_TRUE(gw.Seed(Events(0, kEvents, &ids)));
  ASSERT_TRUE(gw.StartFeed());
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.rx().unique() >= 1000; }, 60s, 1ms)) << gw.ferryd().log();
  gw.cluster().SetDown(2);
  // Some partitions keep moving while broker 2 is down.
  const uint64_t at_down = gw.rx().unique();
  EXPECT_TRUE(poll_until([&] { return gw.rx().unique() > at_down + 500 || gw.rx().unique() >= kEvents; }, 60s, 5ms));
  gw.cluster().SetUp(2);
  ASSERT_TRUE(poll_until([&] { return gw.rx().unique() >= static_cast<uint64_t>(kEvents); }, 180s, 10ms))
      << Head(gw.Missing(ids)) << "\n" << gw.ferryd().log();
  EXPECT_TRUE(gw.Missing(ids).empty());
  EXPECT_EQ(gw.PerDeviceOrderViolation(), "");
  EXPECT_EQ(gw.Metric(kPoisoned), 0);
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// (d) Retriable errors on Produce requests: librdkafka retries them itself (idempotent: in order, no
// duplicates); nothing is set aside.
TEST(KafkaUplink, RetriableProduceErrorsAreRetried) {
  KafkaGateway gw;
  ASSERT_TRUE(gw.StartCluster());
  rd_kafka_mock_push_request_errors(gw.cluster().get(), kApiKeyProduce, 6,
                                    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                    RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
                                    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                                    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
  std::vector<std::string> ids;
  ASSERT_TRUE(gw.Seed(Events(0, 2000, &ids)));
  ASSERT_TRUE(gw.StartFeed());
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.Missing(ids).empty(); }, 120s, 10ms))
      << Head(gw.Missing(ids)) << "\n" << gw.ferryd().log();
  EXPECT_EQ(gw.PerDeviceOrderViolation(), "");
  EXPECT_EQ(gw.Metric(kPoisoned), 0);
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// (d) The broker refuses one record for good (MSG_SIZE_TOO_LARGE on its Produce request): it is set aside and
// counted; what is written after it arrives.
TEST(KafkaUplink, ARecordTheBrokerRefusesIsSetAsideAndTheRestArrives) {
  KafkaGateway gw;
  ASSERT_TRUE(gw.StartCluster());
  // One event alone first, so the refused Produce request holds only it.
  ASSERT_TRUE(gw.Seed({MakeEvent("refused", 1, "{\"v\":-1}")}));
  rd_kafka_mock_push_request_errors(gw.cluster().get(), kApiKeyProduce, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  ASSERT_TRUE(gw.StartFeed());
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.Metric(kPoisoned) == 1; }, 60s)) << gw.ferryd().log();
  std::vector<std::string> ids;
  for (int i = 0; i < 500; ++i) ids.push_back(Id(i % kDevices, i));
  ASSERT_TRUE(gw.Publish(0, 500));
  ASSERT_TRUE(poll_until([&] { return gw.Missing(ids).empty(); }, 60s, 10ms))
      << Head(gw.Missing(ids)) << "\n" << gw.ferryd().log();
  EXPECT_FALSE(gw.rx().Has("refused"));
  EXPECT_EQ(gw.Metric(kPoisoned), 1);
  EXPECT_EQ(gw.Metric("ferry_uplink_dropped_total{uplink=\"central\",stream=\"telemetry\",reason=\"message_too_large\"}"),
            1)
      << gw.ferryd().log();
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// (d) A record larger than the producer's message.max.bytes (set through kafka.properties) is refused by
// librdkafka before it is sent: set aside and counted, the 500 events around it arrive.
TEST(KafkaUplink, ARecordTooLargeForTheProducerIsSetAsideAndTheRestArrives) {
  KafkaGateway gw("kafka.properties = [\"message.max.bytes=20000\"]\n");
  ASSERT_TRUE(gw.StartCluster());
  std::vector<std::string> ids;
  std::vector<Event> events = Events(0, 250, &ids);
  events.push_back(MakeEvent("too-big", 5, "{\"pad\":\"" + std::string(40000, 'x') + "\"}"));
  std::vector<Event> after = Events(250, 250, &ids);
  events.insert(events.end(), after.begin(), after.end());
  ASSERT_TRUE(gw.Seed(events));
  ASSERT_TRUE(gw.StartFeed());
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.Missing(ids).empty(); }, 60s, 10ms))
      << Head(gw.Missing(ids)) << "\n" << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.Metric(kPoisoned) == 1; }, 30s)) << gw.ferryd().log();
  EXPECT_FALSE(gw.rx().Has("too-big"));
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// A kafka.properties entry librdkafka does not know stops ferryd at start with an error naming it.
TEST(KafkaUplink, AnUnknownLibrdkafkaPropertyIsAStartError) {
  KafkaGateway gw("kafka.properties = [\"no.such.property=1\"]\n");
  ASSERT_TRUE(gw.StartCluster());
  EXPECT_FALSE(gw.StartFerryd());
  EXPECT_NE(gw.ferryd().Wait(30s), -1);
  EXPECT_NE(gw.ferryd().log().find("no.such.property"), std::string::npos) << gw.ferryd().log();
}

// A fatal producer error (a Produce answered OUT_OF_ORDER_SEQUENCE_NUMBER: the idempotent producer can no longer
// guarantee order; INVALID_PRODUCER_EPOCH, by contrast, librdkafka 2.0 recovers from by itself): the link goes
// down, the next connect creates a new producer, and every id arrives.
TEST(KafkaUplink, AFatalProducerErrorRecreatesTheProducer) {
  KafkaGateway gw;
  ASSERT_TRUE(gw.StartCluster());
  ASSERT_TRUE(gw.StartFeed());
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  std::vector<std::string> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(Id(i % kDevices, i));
  ASSERT_TRUE(gw.Publish(0, 100));
  ASSERT_TRUE(poll_until([&] { return gw.Missing(ids).empty(); }, 60s, 10ms)) << Head(gw.Missing(ids)) << gw.ferryd().log();
  rd_kafka_mock_push_request_errors(gw.cluster().get(), kApiKeyProduce, 1, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
  for (int i = 100; i < 1100; ++i) ids.push_back(Id(i % kDevices, i));
  ASSERT_TRUE(gw.Publish(100, 1000));
  ASSERT_TRUE(poll_until([&] { return gw.Missing(ids).empty(); }, 120s, 10ms))
      << Head(gw.Missing(ids)) << "\n" << gw.ferryd().log();
  EXPECT_NE(gw.ferryd().log().find("fatal Kafka producer error"), std::string::npos) << gw.ferryd().log();
  EXPECT_EQ(gw.Metric(kPoisoned), 0);
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// Batched mode: each FRYB batch is one record (keyed by its topic, so batches stay in order); the centre's feed
// decodes them as it does MQTT batches.
TEST(KafkaUplink, BatchedModeSendsOneRecordPerBatch) {
  KafkaGateway gw("batch.max_events = 200\nbatch.max_delay = \"50ms\"\nkafka.compression = \"none\"\n", "batched");
  ASSERT_TRUE(gw.StartCluster());
  std::vector<std::string> ids;
  const int kEvents = 5000;
  ASSERT_TRUE(gw.Seed(Events(0, kEvents, &ids)));
  ASSERT_TRUE(gw.StartFeed());
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.rx().unique() >= static_cast<uint64_t>(kEvents); }, 120s, 10ms))
      << Head(gw.Missing(ids)) << "\n" << gw.ferryd().log();
  EXPECT_TRUE(gw.Missing(ids).empty());
  EXPECT_EQ(gw.PerDeviceOrderViolation(), "");
  EXPECT_EQ(gw.rx().bad(), 0u);
  EXPECT_LE(gw.records(), static_cast<uint64_t>(kEvents / 200 + 10)) << "not batched";
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// ferry-receive --kafka as a process, in a consumer group: it counts every id the uplink forwarded and exits 0.
TEST(KafkaUplink, FerryReceiveConsumesTheTopicInAGroup) {
  KafkaGateway gw;
  ASSERT_TRUE(gw.StartCluster());
  std::vector<std::string> ids;
  ASSERT_TRUE(gw.Seed(Events(0, 3000, &ids)));
  WriteFile(gw.dir() + "/ids.txt", [&] {
    std::string t;
    for (const auto& id : ids) t += id + "\n";
    return t;
  }());
  ChildProcess receive;
  ASSERT_TRUE(receive.Start({FERRY_RECEIVE_PATH, "--kafka", gw.cluster().bootstraps(), "--topic", kTopic, "--group",
                             "central", "--expect-ids", gw.dir() + "/ids.txt", "--max-seconds", "120"},
                            gw.dir() + "/receive.log"));
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  const int status = receive.Wait(180s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << receive.log();
  EXPECT_NE(receive.log().find("unique=3000"), std::string::npos) << receive.log();
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

// (e) kill -9 of ferryd mid-drain and a restart: every id arrives (repeats allowed; the receiver drops them).
TEST(KafkaUplink, KillNineMidDrainThenRestartDeliversEveryId) {
  KafkaGateway gw;
  ASSERT_TRUE(gw.StartCluster());
  std::vector<std::string> ids;
  const int kEvents = 20000;
  ASSERT_TRUE(gw.Seed(Events(0, kEvents, &ids)));
  ASSERT_TRUE(gw.StartFeed());
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.rx().unique() >= 3000; }, 60s, 1ms)) << gw.ferryd().log();
  gw.ferryd().Kill9();
  const uint64_t at_kill = gw.rx().unique();
  ASSERT_TRUE(gw.StartFerryd()) << gw.ferryd().log();
  ASSERT_TRUE(poll_until([&] { return gw.rx().unique() >= static_cast<uint64_t>(kEvents); }, 180s, 10ms))
      << Head(gw.Missing(ids)) << "\n" << gw.ferryd().log();
  EXPECT_TRUE(gw.Missing(ids).empty());
  std::printf("[ metric ] kill -9 after %llu ids; duplicates at the centre: %llu\n",
              static_cast<unsigned long long>(at_kill), static_cast<unsigned long long>(gw.rx().duplicates()));
  EXPECT_EQ(gw.ferryd().Terminate(), 0) << gw.ferryd().log();
}

}  // namespace
}  // namespace ferry::test
