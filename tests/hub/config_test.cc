#include "ferry/config.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {
TEST(ConfigSmoke, Defaults) {
  auto c = LoadConfigString("", "t.toml");
  ASSERT_TRUE(c) << c.error().message;
}
}  // namespace
}  // namespace ferry
