// ferryctl table: a table stream's current rows, one key's row, and the downlink positions stored with them.
#include <gtest/gtest.h>

#include "ctl_fixture.h"
#include "ferry/downlink.h"
#include "ferry/write_txn.h"

namespace ferry::ctl {
namespace {

using testing::CtlTest;
using testing::MakeEvent;

class TableTest : public CtlTest {
 protected:
  void Fill() {
    ASSERT_TRUE(log_->Append("state", MakeEvent("{\"v\":1}", "dev-1")));
    ASSERT_TRUE(log_->Append("state", MakeEvent("{\"v\":2}", "dev-2")));
    ASSERT_TRUE(log_->Append("state", MakeEvent("{\"v\":3}", "dev-1")));  // supersedes dev-1's first row
    ASSERT_TRUE(log_->Append("state", MakeEvent("{\"v\":4}", "dev-3")));
    ASSERT_TRUE(log_->Append("state", MakeEvent("", "dev-3")));  // deleted
  }
};

TEST_F(TableTest, EveryCurrentRowOnceAndNoDeletedOnes) {
  Fill();
  std::ostringstream out, err;
  TableOptions o;
  o.table = "state";
  ASSERT_EQ(RunTable(*log_, &config_, o, out, err), kExitOk) << err.str();
  EXPECT_EQ(out.str(), "dev-1  3  {\"v\":3}\ndev-2  2  {\"v\":2}\n2 rows in state\n");
}

TEST_F(TableTest, OneKeyAsJsonAndADeletedKeyIsSaidSo) {
  Fill();
  std::ostringstream out, err;
  TableOptions o;
  o.table = "state";
  o.key = "dev-1";
  o.json = true;
  ASSERT_EQ(RunTable(*log_, &config_, o, out, err), kExitOk) << err.str();
  EXPECT_EQ(out.str(), "{\"key\":\"dev-1\",\"seq\":3,\"time\":\"\",\"value\":\"{\\\"v\\\":3}\"}\n");
  o.key = "dev-3";
  EXPECT_EQ(RunTable(*log_, &config_, o, out, err), kExitRuntime);
  EXPECT_NE(err.str().find("row 'dev-3' of state was deleted (seq 5)"), std::string::npos) << err.str();
  o.key = "dev-9";
  EXPECT_EQ(RunTable(*log_, &config_, o, out, err), kExitRuntime);
  EXPECT_NE(err.str().find("no row 'dev-9'"), std::string::npos) << err.str();
  o.key.clear();
  o.table = "telemetry";
  EXPECT_EQ(RunTable(*log_, &config_, o, out, err), kExitRuntime);
  EXPECT_NE(err.str().find("stream telemetry is not a table"), std::string::npos) << err.str();
}

TEST_F(TableTest, TheDownlinkWritingTheTableShowsItsPositions) {
  auto config = LoadConfigString(std::string(testing::kConfig) +
                                     "[[downlink]]\nname = \"registry\"\naddress = \"k:9092\"\ntopic = \"central.state\"\n"
                                     "table = \"state\"\n",
                                 "ferry.toml");
  ASSERT_TRUE(config) << config.error().ToString();
  Fill();
  std::ostringstream out, err;
  TableOptions o;
  o.table = "state";
  ASSERT_EQ(RunTable(*log_, &*config, o, out, err), kExitOk);
  EXPECT_NE(out.str().find("downlink registry (kafka k:9092, topic central.state): no position yet"),
            std::string::npos)
      << out.str();
  ASSERT_TRUE(log_->Update([](WriteTxn& txn) -> Status {
    if (Status st = txn.PutState(DownlinkPositionKey("registry", "central.state", 0), "120"); !st) return st;
    return txn.PutState(DownlinkPositionKey("registry", "central.state", 1), "7");
  }));
  out.str("");
  ASSERT_EQ(RunTable(*log_, &*config, o, out, err), kExitOk);
  EXPECT_NE(out.str().find("next offset by partition: central.state.0=120 central.state.1=7"), std::string::npos)
      << out.str();
}

// `ferryctl downlink reset NAME` writes the request key and nothing else; `table` says it is pending; the MQTT
// downlink's sync state is shown in words; an unknown downlink is an error naming the declared ones.
TEST_F(TableTest, ADownlinkResetIsARequestThatTableShowsAsPending) {
  auto config = LoadConfigString(std::string(testing::kConfig) +
                                     "[[downlink]]\nname = \"registry\"\naddress = \"k:9092\"\ntopic = \"central.state\"\n"
                                     "table = \"state\"\n"
                                     "[[downlink]]\nname = \"fleet\"\ntype = \"mqtt\"\naddress = \"tcp://c:1883\"\n"
                                     "topic = \"central/fleet/#\"\ntable = \"fleet\"\n"
                                     "[[stream]]\nname = \"fleet\"\nkind = \"table\"\n",
                                 "ferry.toml");
  ASSERT_TRUE(config) << config.error().ToString();
  StreamOptions table;
  table.kind = StreamKind::kTable;
  ASSERT_TRUE(log_->CreateStream("fleet", table));
  Fill();
  std::ostringstream out, err;
  DownlinkResetOptions r;
  r.downlink = "nowhere";
  EXPECT_EQ(RunDownlinkReset(*log_, *config, r, out, err), kExitRuntime);
  EXPECT_NE(err.str().find("no downlink \"nowhere\" in ferry.toml (it declares registry, fleet)"), std::string::npos)
      << err.str();
  r.downlink = "registry";
  ASSERT_EQ(RunDownlinkReset(*log_, *config, r, out, err), kExitOk) << err.str();
  EXPECT_NE(out.str().find("fetches topic central.state again from the beginning into table state"), std::string::npos)
      << out.str();
  auto state = log_->ListState("downlink.");
  ASSERT_TRUE(state);
  ASSERT_EQ(state->size(), 1u);
  EXPECT_EQ((*state)[0].first, DownlinkResetKey("registry"));
  TableOptions o;
  o.table = "state";
  out.str("");
  ASSERT_EQ(RunTable(*log_, &*config, o, out, err), kExitOk);
  EXPECT_NE(out.str().find("downlink registry: a reset is pending"), std::string::npos) << out.str();
  // The reset key is no partition position.
  EXPECT_NE(out.str().find("no position yet"), std::string::npos) << out.str();

  o.table = "fleet";
  out.str("");
  ASSERT_EQ(RunTable(*log_, &*config, o, out, err), kExitOk);
  EXPECT_NE(out.str().find("downlink fleet (mqtt tcp://c:1883, filter central/fleet/#): no full sync yet"),
            std::string::npos)
      << out.str();
  ASSERT_TRUE(log_->Update([](WriteTxn& txn) { return txn.PutState(DownlinkMqttStateKey("fleet"), "clean"); }));
  out.str("");
  ASSERT_EQ(RunTable(*log_, &*config, o, out, err), kExitOk);
  EXPECT_NE(out.str().find("the next start resumes the broker session"), std::string::npos) << out.str();
}

}  // namespace
}  // namespace ferry::ctl
