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

}  // namespace
}  // namespace ferry::ctl
