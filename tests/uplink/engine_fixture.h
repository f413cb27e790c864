// engine_fixture.h: an UplinkEngine on a real LMDB log in a temp dir, a group-commit writer driven by Step(),
// a manual clock and the fake transport. Appends go through the writer, as in ferryd, so they are announced.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../support/temp_dir.h"
#include "fake_transport.h"
#include "ferry/clock.h"
#include "ferry/config.h"
#include "ferry/event_log.h"
#include "ferry/group_commit.h"
#include "ferry/metrics.h"
#include "ferry/uplink_engine.h"

namespace ferry::test {

class EngineTest : public ::testing::Test {
 protected:
  // `uplink_keys`: extra keys of the [[uplink]] table. Streams: telemetry (priority 0), alarms (priority 50).
  void Open(const std::string& uplink_keys = "") {
    ASSERT_TRUE(dir_.ok());
    EventLogOptions o;
    o.path = dir_.Sub("log");
    o.clock = &clock_;
    o.map_size = size_t{64} << 20;
    o.sync = false;
    auto log = EventLog::Open(o);
    ASSERT_TRUE(log) << log.error().ToString();
    log_ = std::move(*log);
    StreamOptions alarms;
    alarms.priority = 50;
    ASSERT_TRUE(log_->CreateStream("telemetry"));
    ASSERT_TRUE(log_->CreateStream("alarms", alarms));
    writer_ = std::make_unique<GroupCommitWriter>(*log_);
    std::string text =
        "[gateway]\nid = \"gw\"\n[storage]\npath = \"" + o.path + "\"\n"
        "[[stream]]\nname = \"telemetry\"\n[[stream]]\nname = \"alarms\"\npriority = 50\n"
        "[[uplink]]\nname = \"central\"\naddress = \"tcp://127.0.0.1:1\"\nbackoff.min = \"100ms\"\n"
        "backoff.max = \"400ms\"\n" + uplink_keys;
    if (uplink_keys.find("inflight") == std::string::npos) text += "inflight = 100\n";
    auto config = LoadConfigString(text, "test.toml");
    ASSERT_TRUE(config) << config.error().ToString();
    config_ = std::move(*config);
    engine_ = std::make_unique<UplinkEngine>(config_, config_.uplinks.at(0), *log_, *writer_, metrics_, clock_,
                                             transport_);
  }
  void Start() {
    Status st = engine_->Start();
    ASSERT_TRUE(st) << st.error().ToString();
  }

  // Appends events through the writer and commits them: one commit, announced.
  std::vector<Seq> Append(const std::string& stream, int count, size_t payload_bytes = 20,
                          const std::string& id_prefix = "") {
    std::vector<std::future<Result<Seq>>> futures;
    for (int i = 0; i < count; ++i) {
      Event e;
      e.id = id_prefix.empty() ? "" : id_prefix + std::to_string(i);
      e.type = "t";
      e.subject = "dev-" + std::to_string(i % 3);
      e.payload = std::string(payload_bytes, 'x');
      futures.push_back(writer_->Append(stream, std::move(e)));
    }
    writer_->Step();
    std::vector<Seq> seqs;
    for (auto& f : futures) {
      auto r = f.get();
      EXPECT_TRUE(r) << r.error().ToString();
      if (r) seqs.push_back(*r);
    }
    return seqs;
  }
  Seq AppendOne(const std::string& stream, Event e) {
    auto f = writer_->Append(stream, std::move(e));
    writer_->Step();
    auto r = f.get();
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? *r : Seq{};
  }

  // Steps, acknowledging everything outstanding, until nothing more goes out (at most `rounds`).
  void DrainAcking(int rounds = 1000) {
    for (int i = 0; i < rounds; ++i) {
      size_t before = transport_.sent.size();
      engine_->Step();
      transport_.CompleteAll();
      engine_->Step();
      writer_->Step();
      if (transport_.sent.size() == before && transport_.outstanding() == 0) return;
    }
  }

  Seq PersistedCursor(const std::string& stream) {
    auto c = log_->GetCursor(stream, UplinkCursorName("central"));
    return c ? *c : Seq{};
  }
  double MetricValue(const std::string& sample) {
    std::string text = metrics_.Render();
    auto at = text.find("\n" + sample + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + sample.size() + 2));
  }

  TempDir dir_{"ferry-uplink"};
  ManualClock clock_;
  std::unique_ptr<EventLog> log_;
  std::unique_ptr<GroupCommitWriter> writer_;
  MetricsRegistry metrics_;
  FakeTransport transport_;
  Config config_;
  std::unique_ptr<UplinkEngine> engine_;
};

}  // namespace ferry::test
