// End to end against a real Mosquitto: publish, stop the broker, keep publishing into the ring, restart the
// broker on the same port, and check that every id arrives (the subscriber deduplicates on the id).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "ferry_pub.h"
#include "mosquitto_fixture.h"
#include "paho_subscriber.h"

namespace {

using namespace std::chrono_literals;
using ferry::test::MosquittoBroker;
using ferry::test::PahoSubscriber;
using ferry::test::poll_until;
using ferry::test::TempDir;

uint64_t manual_clock(void* ctx) { return static_cast<std::atomic<uint64_t>*>(ctx)->load(); }

class Reconnect : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(broker.start()) << broker.log();
    sub = std::make_unique<PahoSubscriber>(broker.uri(), "ferry-test-sub");
    ASSERT_TRUE(sub->connect_and_subscribe()) << broker.log();
    ASSERT_EQ(FERRY_PUB_OK, ferry_dev_init(&dev, "dev-0007", state.path().c_str()));
  }
  void TearDown() override {
    if (pub != nullptr) ferry_pub_destroy(pub);
  }

  void make_pub(uint32_t capacity, uint32_t max_inflight) {
    uri = broker.uri();
    ferry_pub_config cfg{};
    cfg.server_uri = uri.c_str();
    cfg.client_id = "ferry-test-dev-0007";
    cfg.capacity = capacity;
    cfg.max_payload = 256;
    cfg.max_inflight = max_inflight;
    cfg.backoff_min_ms = 50;
    cfg.backoff_max_ms = 1000;
    cfg.clock = manual_clock;
    cfg.clock_ctx = &now;
    size_t n = ferry_pub_mem_size(&cfg);
    ASSERT_GT(n, 0u);
    mem.reset(static_cast<unsigned char*>(std::aligned_alloc(16, (n + 15) & ~size_t{15})));
    int err = -100;
    pub = ferry_pub_init(mem.get(), n, &cfg, &err);
    ASSERT_NE(nullptr, pub) << err;
  }

  ferry_pub_stats stats() {
    ferry_pub_stats s;
    ferry_pub_get_stats(pub, &s);
    return s;
  }
  // Steps the publisher (waiting for transport events, never for a fixed time) until pred holds. Each
  // step advances the manual clock by tick_ms, so backoff deadlines pass only as fast as the test says.
  template <class Pred>
  bool step_until(Pred pred, std::chrono::milliseconds timeout = 10s, uint64_t tick_ms = 0) {
    return poll_until(
        [&] {
          now += tick_ms;
          ferry_pub_poll(pub);
          if (pred()) return true;
          ferry_pub_wait(pub, 5);
          return false;
        },
        timeout, 0us);
  }
  std::string publish_one() {
    ferry_event ev{"engine", "\"temp_c\":81.5,\"rpm\":2450", 1764059343123LL, 0};
    char id[FERRY_ID_MAX];
    EXPECT_EQ(FERRY_PUB_OK, ferry_pub_publish(pub, &dev, &ev, id, sizeof id));
    return id;
  }

  struct Free {
    void operator()(unsigned char* p) const { std::free(p); }
  };
  MosquittoBroker broker;  // queues without limit (mosquitto_fixture.h)
  TempDir state{"ferry-state"};
  std::unique_ptr<PahoSubscriber> sub;
  std::string uri;
  std::atomic<uint64_t> now{1000};
  std::unique_ptr<unsigned char, Free> mem;
  ferry_pub* pub = nullptr;
  ferry_dev dev{};
};

TEST_F(Reconnect, EveryIdArrivesAcrossABrokerRestart) {
  make_pub(256, 32);
  ASSERT_TRUE(step_until([&] { return stats().connected != 0; })) << broker.log();
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(publish_one());
  ASSERT_TRUE(step_until([&] { return stats().acked == 20; }));
  ASSERT_TRUE(poll_until([&] { return sub->unique() == 20; }, 10s));

  broker.stop();
  ASSERT_TRUE(step_until([&] { return stats().connected == 0; })) << "loss not detected";
  for (int i = 0; i < 150; ++i) ids.push_back(publish_one());
  // Connect attempts fail while the broker is down; the ring holds everything.
  for (int i = 0; i < 5; ++i) {
    now += 2000;
    ASSERT_TRUE(step_until([&] { return ferry_pub_next_connect_ms(pub) > now.load(); }));
  }
  auto down = stats();
  EXPECT_EQ(150u, down.queued);
  EXPECT_GE(down.connect_failures, 5u);
  EXPECT_EQ(20u, down.acked);

  ASSERT_TRUE(broker.start()) << broker.log();
  ASSERT_TRUE(poll_until([&] { return !sub->connected(); }, 5s));
  ASSERT_TRUE(sub->connect_and_subscribe()) << broker.log();
  ASSERT_TRUE(step_until([&] { return stats().acked == 170; }, 10s, 10)) << stats().queued;
  ASSERT_TRUE(poll_until([&] { return sub->unique() == 170; }, 10s)) << sub->unique();
  for (const auto& id : ids) EXPECT_TRUE(sub->has(id)) << id;
  auto st = stats();
  EXPECT_EQ(0u, st.queued);
  EXPECT_EQ(2u, st.connects);
  EXPECT_EQ(1u, st.connection_lost);
  EXPECT_EQ(0u, sub->id_mismatches());
}

// The broker is killed while messages are in flight. Messages the broker had acknowledged but not yet
// forwarded die with it (persistence off): only those may be missing. Everything unacknowledged is resent.
TEST_F(Reconnect, KillDuringInflightLosesNothingUnacknowledged) {
  make_pub(4096, 64);
  ASSERT_TRUE(step_until([&] { return stats().connected != 0; }));
  std::vector<std::string> ids;
  for (int i = 0; i < 3000; ++i) {
    ids.push_back(publish_one());
    if (i % 50 == 0) ferry_pub_poll(pub);
  }
  ASSERT_TRUE(step_until([&] { return stats().acked >= 500; }));
  broker.kill9();
  ASSERT_TRUE(step_until([&] { return stats().connected == 0; }));
  uint64_t acked_at_kill = stats().acked;
  size_t received_at_kill = sub->unique();
  for (int i = 0; i < 500; ++i) ids.push_back(publish_one());

  ASSERT_TRUE(broker.start()) << broker.log();
  ASSERT_TRUE(poll_until([&] { return !sub->connected(); }, 5s));
  ASSERT_TRUE(sub->connect_and_subscribe());
  ASSERT_TRUE(step_until([&] { return stats().queued == 0; }, 20s, 10)) << stats().queued;
  size_t allowed = static_cast<size_t>(acked_at_kill) - received_at_kill;
  poll_until([&] { return sub->unique() >= ids.size() - allowed; }, 10s);
  std::vector<std::string> missing;
  for (const auto& id : ids)
    if (!sub->has(id)) missing.push_back(id);
  EXPECT_LE(missing.size(), allowed) << "acked_at_kill=" << acked_at_kill << " received_at_kill=" << received_at_kill
                                     << " unique=" << sub->unique() << " received=" << sub->received()
                                     << " first missing=" << (missing.empty() ? "" : missing.front())
                                     << " last missing=" << (missing.empty() ? "" : missing.back())
                                     << " resent=" << stats().resent << "\n" << broker.log();
  EXPECT_EQ(3500u, stats().acked);
  EXPECT_GT(stats().sent, 0u);
}

TEST_F(Reconnect, BrokerDownFromTheStartThenUp) {
  broker.stop();
  make_pub(64, 16);
  for (int i = 0; i < 64; ++i) publish_one();
  ferry_event ev{"engine", nullptr, 0, 0};
  EXPECT_EQ(FERRY_PUB_EFULL, ferry_pub_publish(pub, &dev, &ev, nullptr, 0));
  ASSERT_TRUE(step_until([&] { return stats().connect_failures >= 1; }));
  ASSERT_TRUE(broker.start());
  ASSERT_TRUE(poll_until([&] { return !sub->connected(); }, 5s));
  ASSERT_TRUE(sub->connect_and_subscribe());
  ASSERT_TRUE(step_until([&] { return stats().queued == 0; }, 10s, 10));
  ASSERT_TRUE(poll_until([&] { return sub->unique() == 64; }, 10s));
  EXPECT_EQ(1u, stats().rejected);
}

}  // namespace
