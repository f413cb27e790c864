// The ring and the connection state machine, stepped deterministically: a fake transport records sends
// and the test decides when connects succeed and which PUBACKs arrive; a manual clock drives backoff.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "ferry_pub.h"
#include "ferry_pub_transport.h"

namespace {

struct Sent {
  uint32_t slot;
  int token;
  std::string topic, id, payload;
};

struct FakeTransport {
  ferry_pub* pub = nullptr;
  int connect_calls = 0;
  bool busy = false;  // send returns EAGAIN
  int next_token = 1;
  std::vector<Sent> sent;

  static FakeTransport* self(void* t) { return static_cast<FakeTransport*>(t); }
  static int init(void*, ferry_pub* pub, const ferry_pub_config* cfg, void** out) {
    auto* t = static_cast<FakeTransport*>(cfg->transport_ctx);
    t->pub = pub;
    *out = t;
    return FERRY_PUB_OK;
  }
  static int connect(void* t) {
    ++self(t)->connect_calls;
    return FERRY_PUB_OK;
  }
  static int send(void* tp, uint32_t slot, const char* topic, const char* id, const void* payload, size_t len,
                  int* token) {
    auto* t = self(tp);
    if (t->busy) return FERRY_PUB_EAGAIN;
    *token = t->next_token++;
    t->sent.push_back({slot, *token, topic, id, std::string(static_cast<const char*>(payload), len)});
    return FERRY_PUB_OK;
  }
  void ack(const Sent& s, bool ok = true) { ferry_pub_on_delivery(pub, s.slot, s.token, ok ? 1 : 0); }
};

const ferry_transport_ops kFakeOps = {nullptr, FakeTransport::init, FakeTransport::connect, FakeTransport::send,
                                      nullptr};

uint64_t manual_clock(void* ctx) { return *static_cast<uint64_t*>(ctx); }

class Ring : public ::testing::Test {
 protected:
  void make(uint32_t capacity, uint32_t max_inflight, ferry_overflow overflow = FERRY_PUB_OVERFLOW_REJECT) {
    ferry_pub_config cfg{};
    cfg.capacity = capacity;
    cfg.max_payload = 256;
    cfg.max_inflight = max_inflight;
    cfg.overflow = overflow;
    cfg.backoff_min_ms = 100;
    cfg.backoff_max_ms = 1000;
    cfg.clock = manual_clock;
    cfg.clock_ctx = &now;
    cfg.transport = &kFakeOps;
    cfg.transport_ctx = &fake;
    size_t n = ferry_pub_mem_size(&cfg);
    ASSERT_GT(n, 0u);
    mem.reset(static_cast<unsigned char*>(std::aligned_alloc(16, (n + 15) & ~size_t{15})));
    int err = -100;
    pub = ferry_pub_init(mem.get(), n, &cfg, &err);
    ASSERT_NE(nullptr, pub);
    ASSERT_EQ(FERRY_PUB_OK, err);
    ASSERT_EQ(FERRY_PUB_OK, ferry_dev_init(&dev, "dev-0007", nullptr));
  }
  void TearDown() override {
    if (pub != nullptr) ferry_pub_destroy(pub);
  }

  int publish(std::string* id = nullptr) {
    ferry_event ev{"engine", "\"rpm\":1", 1000, 0};
    char buf[FERRY_ID_MAX];
    int rc = ferry_pub_publish(pub, &dev, &ev, buf, sizeof buf);
    if (rc == FERRY_PUB_OK && id != nullptr) *id = buf;
    return rc;
  }
  void connect() {
    ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));  // starts the attempt
    ferry_pub_on_connect(pub, 1);
    ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
    ASSERT_TRUE(stats().connected);
  }
  ferry_pub_stats stats() {
    ferry_pub_stats s;
    ferry_pub_get_stats(pub, &s);
    return s;
  }
  static std::string id_of(uint64_t seq) {
    char b[FERRY_ID_MAX];
    ferry_id_format("dev-0007", 1, seq, b, sizeof b);
    return b;
  }

  struct Free {
    void operator()(unsigned char* p) const { std::free(p); }
  };
  uint64_t now = 1000;
  FakeTransport fake;
  std::unique_ptr<unsigned char, Free> mem;
  ferry_pub* pub = nullptr;
  ferry_dev dev{};
};

TEST_F(Ring, RejectsMisalignedOrSmallMemory) {
  ferry_pub_config cfg{};
  cfg.capacity = 4;
  cfg.max_payload = 128;
  cfg.transport = &kFakeOps;
  cfg.transport_ctx = &fake;
  size_t n = ferry_pub_mem_size(&cfg);
  std::vector<unsigned char> raw(n + 32);
  auto* aligned = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(raw.data()) + 15) & ~uintptr_t{15});
  int err = 0;
  EXPECT_EQ(nullptr, ferry_pub_init(aligned + 1, n, &cfg, &err));
  EXPECT_EQ(FERRY_PUB_EINVAL, err);
  EXPECT_EQ(nullptr, ferry_pub_init(aligned, n - 1, &cfg, &err));
  cfg.capacity = 0;
  EXPECT_EQ(0u, ferry_pub_mem_size(&cfg));
}

TEST_F(Ring, QueuesWhileDisconnectedAndSendsInOrderAfterConnect) {
  make(8, 8);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(FERRY_PUB_OK, publish());
  EXPECT_EQ(5u, stats().queued);
  EXPECT_TRUE(fake.sent.empty());
  connect();
  ASSERT_EQ(5u, fake.sent.size());
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(id_of(static_cast<uint64_t>(i) + 1), fake.sent[static_cast<size_t>(i)].id);
    EXPECT_EQ("telemetry/dev-0007/engine", fake.sent[static_cast<size_t>(i)].topic);
  }
  EXPECT_NE(std::string::npos, fake.sent[0].payload.find("\"id\":\"dev-0007/b1/000000001\""));
  EXPECT_EQ(5u, stats().inflight);
}

TEST_F(Ring, FreedOnlyOnPubackAndOnlyFromTheTail) {
  make(4, 4);
  connect();
  for (int i = 0; i < 4; ++i) ASSERT_EQ(FERRY_PUB_OK, publish());
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  ASSERT_EQ(4u, fake.sent.size());
  // Ack 2..4 but not 1: nothing can be reclaimed, the ring stays full.
  fake.ack(fake.sent[1]);
  fake.ack(fake.sent[2]);
  fake.ack(fake.sent[3]);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  EXPECT_EQ(3u, stats().acked);
  EXPECT_EQ(4u, stats().queued);
  EXPECT_EQ(FERRY_PUB_EFULL, publish());
  fake.ack(fake.sent[0]);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  EXPECT_EQ(0u, stats().queued);
  EXPECT_EQ(0u, stats().inflight);
  EXPECT_EQ(FERRY_PUB_OK, publish());
}

TEST_F(Ring, WrapsAroundManyTimes) {
  make(3, 2);
  connect();
  std::vector<std::string> ids;
  for (int round = 0; round < 40; ++round) {
    std::string id;
    ASSERT_EQ(FERRY_PUB_OK, publish(&id));
    ids.push_back(id);
    ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
    if (round % 2 == 1) {
      // Ack everything outstanding.
      for (const auto& s : fake.sent) fake.ack(s);
      ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
      ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
    }
  }
  for (const auto& s : fake.sent) fake.ack(s);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  for (const auto& s : fake.sent) fake.ack(s);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  std::vector<std::string> sent_ids;
  for (const auto& s : fake.sent) sent_ids.push_back(s.id);
  EXPECT_EQ(ids, sent_ids);  // each exactly once, in order
  auto st = stats();
  EXPECT_EQ(40u, st.acked);
  EXPECT_EQ(0u, st.queued);
  EXPECT_EQ(0u, st.resent);
}

TEST_F(Ring, FullRejectsCountsAndConsumesNoSequenceNumber) {
  make(3, 3);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(FERRY_PUB_OK, publish());
  EXPECT_EQ(FERRY_PUB_EFULL, publish());
  EXPECT_EQ(FERRY_PUB_EFULL, publish());
  auto st = stats();
  EXPECT_EQ(2u, st.rejected);
  EXPECT_EQ(3u, st.published);
  EXPECT_EQ(3u, dev.last_seq);
  connect();
  for (const auto& s : fake.sent) fake.ack(s);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  std::string id;
  ASSERT_EQ(FERRY_PUB_OK, publish(&id));
  EXPECT_EQ(id_of(4), id);  // no gap in the sequence
}

TEST_F(Ring, DropOldestEvictsAndCountsAndIgnoresLateAck) {
  make(3, 3, FERRY_PUB_OVERFLOW_DROP_OLDEST);
  connect();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(FERRY_PUB_OK, publish());
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  ASSERT_EQ(3u, fake.sent.size());  // 1,2,3 in flight
  ASSERT_EQ(FERRY_PUB_OK, publish());  // evicts 1 (in flight)
  ASSERT_EQ(FERRY_PUB_OK, publish());  // evicts 2
  auto st = stats();
  EXPECT_EQ(2u, st.dropped);
  EXPECT_EQ(3u, st.queued);
  EXPECT_EQ(1u, st.inflight);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  ASSERT_EQ(5u, fake.sent.size());
  EXPECT_EQ(id_of(4), fake.sent[3].id);
  EXPECT_EQ(id_of(5), fake.sent[4].id);
  // The late PUBACK of evicted message 1 lands on a slot now holding 4: ignored (token differs).
  fake.ack(fake.sent[0]);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  EXPECT_EQ(0u, stats().acked);
  EXPECT_EQ(3u, stats().inflight);
  for (size_t i = 2; i < 5; ++i) fake.ack(fake.sent[i]);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  EXPECT_EQ(3u, stats().acked);
  EXPECT_EQ(0u, stats().queued);
}

TEST_F(Ring, MaxInflightBoundsSends) {
  make(16, 4);
  connect();
  for (int i = 0; i < 10; ++i) ASSERT_EQ(FERRY_PUB_OK, publish());
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  EXPECT_EQ(4u, fake.sent.size());
  fake.ack(fake.sent[0]);
  fake.ack(fake.sent[1]);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  EXPECT_EQ(6u, fake.sent.size());
  EXPECT_EQ(4u, stats().inflight);
}

TEST_F(Ring, BusyTransportKeepsMessagesQueued) {
  make(8, 8);
  connect();
  fake.busy = true;
  ASSERT_EQ(FERRY_PUB_OK, publish());
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  EXPECT_TRUE(fake.sent.empty());
  fake.busy = false;
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  EXPECT_EQ(1u, fake.sent.size());
  EXPECT_EQ(0u, stats().resent);
}

TEST_F(Ring, ConnectionLossResendsEveryUnackedMessageAndIgnoresStaleResults) {
  make(8, 8);
  connect();
  for (int i = 0; i < 4; ++i) ASSERT_EQ(FERRY_PUB_OK, publish());
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  fake.ack(fake.sent[0]);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  ferry_pub_on_connection_lost(pub);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));  // loss handled, reconnect attempt started at once
  EXPECT_FALSE(stats().connected);
  EXPECT_EQ(2, fake.connect_calls);
  EXPECT_EQ(3u, stats().queued);
  EXPECT_EQ(0u, stats().inflight);
  ASSERT_EQ(FERRY_PUB_OK, publish());  // 5, queued while down
  // Stale failures from the dead connection arrive: nothing changes.
  fake.ack(fake.sent[1], false);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  ferry_pub_on_connect(pub, 1);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  ASSERT_EQ(8u, fake.sent.size());
  EXPECT_EQ(id_of(2), fake.sent[4].id);
  EXPECT_EQ(id_of(3), fake.sent[5].id);
  EXPECT_EQ(id_of(4), fake.sent[6].id);
  EXPECT_EQ(id_of(5), fake.sent[7].id);
  EXPECT_EQ(3u, stats().resent);
  // A stale success with an old token for slot of message 2 is ignored; the fresh ones free the ring.
  fake.ack(fake.sent[1]);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  EXPECT_EQ(1u, stats().acked);
  for (size_t i = 4; i < 8; ++i) fake.ack(fake.sent[i]);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  EXPECT_EQ(5u, stats().acked);
  EXPECT_EQ(0u, stats().queued);
  EXPECT_EQ(1u, stats().connection_lost);
}

TEST_F(Ring, RefusedPubackIsResent) {
  make(8, 8);
  connect();
  ASSERT_EQ(FERRY_PUB_OK, publish());
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  fake.ack(fake.sent[0], false);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  ASSERT_EQ(2u, fake.sent.size());
  EXPECT_EQ(fake.sent[0].id, fake.sent[1].id);
  EXPECT_EQ(1u, stats().resent);
  fake.ack(fake.sent[1]);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  EXPECT_EQ(0u, stats().queued);
}

TEST_F(Ring, BackoffDoublesUpToTheCapAndResetsAfterConnect) {
  make(4, 4);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  EXPECT_EQ(1, fake.connect_calls);
  uint64_t expected_delay[] = {100, 200, 400, 800, 1000, 1000};
  for (uint64_t d : expected_delay) {
    ferry_pub_on_connect(pub, 0);
    ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
    EXPECT_EQ(now + d, ferry_pub_next_connect_ms(pub));
    int calls = fake.connect_calls;
    now += d - 1;
    ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
    EXPECT_EQ(calls, fake.connect_calls);  // not yet
    now += 1;
    ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
    EXPECT_EQ(calls + 1, fake.connect_calls);
  }
  ferry_pub_on_connect(pub, 1);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  EXPECT_EQ(7u, stats().connects + stats().connect_failures + 0u);
  ferry_pub_on_connection_lost(pub);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));  // immediate retry
  ferry_pub_on_connect(pub, 0);
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  EXPECT_EQ(now + 100, ferry_pub_next_connect_ms(pub));  // reset to the minimum
}

TEST_F(Ring, PublishRawKeepsTheGivenId) {
  make(4, 4);
  connect();
  const char payload[] = "{\"id\":\"dev-0007/b1/000000001\"}";
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_publish_raw(pub, nullptr, "dev-0007/b1/000000001", payload, sizeof payload - 1));
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_publish_raw(pub, "a/b", "x", payload, sizeof payload - 1));
  ASSERT_EQ(FERRY_PUB_OK, ferry_pub_poll(pub));
  ASSERT_EQ(2u, fake.sent.size());
  EXPECT_EQ("telemetry/dev-0007/raw", fake.sent[0].topic);
  EXPECT_EQ("dev-0007/b1/000000001", fake.sent[0].id);
  EXPECT_EQ(payload, fake.sent[0].payload);
  EXPECT_EQ("a/b", fake.sent[1].topic);
  std::string big(300, 'x');
  EXPECT_EQ(FERRY_PUB_ETOOBIG, ferry_pub_publish_raw(pub, nullptr, "dev-0007/b1/2", big.data(), big.size()));
}

TEST_F(Ring, EventTooBigForSlotIsRejectedWithoutConsumingSeq) {
  make(4, 4);
  ferry_event ev{"engine", nullptr, 0, 400};
  EXPECT_EQ(FERRY_PUB_ETOOBIG, ferry_pub_publish(pub, &dev, &ev, nullptr, 0));
  EXPECT_EQ(0u, dev.last_seq);
  EXPECT_EQ(0u, stats().queued);
}

}  // namespace
