// The MQTT downlink's row keys (ferry/downlink.h): the topic's levels from the filter's first wildcard on.
#include <gtest/gtest.h>

#include "ferry/downlink.h"

namespace ferry {
namespace {

TEST(DownlinkMqttRowKey, IsTheTopicFromTheFiltersFirstWildcardOn) {
  EXPECT_EQ(DownlinkMqttRowKey("central/assets/#", "central/assets/pump-7"), "pump-7");
  EXPECT_EQ(DownlinkMqttRowKey("central/assets/#", "central/assets/site1/pump-7"), "site1/pump-7");
  EXPECT_EQ(DownlinkMqttRowKey("fleet/+/config", "fleet/truck-9/config"), "truck-9/config");
  EXPECT_EQ(DownlinkMqttRowKey("#", "a/b"), "a/b");
  EXPECT_EQ(DownlinkMqttRowKey("+/x", "a/x"), "a/x");
  // Nothing after the prefix, or not under it at all: no key (the downlink counts it as no_key).
  EXPECT_EQ(DownlinkMqttRowKey("central/assets/#", "central/assets/"), "");
  EXPECT_EQ(DownlinkMqttRowKey("central/assets/#", "central/assets"), "");
  EXPECT_EQ(DownlinkMqttRowKey("central/assets/#", "central/other/x"), "");
  EXPECT_EQ(DownlinkMqttRowKey("central/assets/#", "central"), "");
  EXPECT_EQ(DownlinkMqttRowKey("central/assets/#", ""), "");
}

}  // namespace
}  // namespace ferry
