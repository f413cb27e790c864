#include "ferry/sd_notify.h"

#include <unistd.h>

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "../support/notify_socket.h"

namespace ferry {
namespace {

using test::NotifySocket;

class SdNotifyTest : public ::testing::Test {
 protected:
  void TearDown() override { ::unsetenv("NOTIFY_SOCKET"); }
};

TEST_F(SdNotifyTest, SendsOneDatagramToAPathSocket) {
  char dir[] = "/tmp/ferry-notify-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/notify";
  {
    NotifySocket sock(path);
    ASSERT_TRUE(sock.bound());
    ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
    EXPECT_TRUE(SdNotify("READY=1"));
    EXPECT_TRUE(SdNotify("WATCHDOG=1"));
    EXPECT_EQ(sock.Take(), "READY=1");
    EXPECT_EQ(sock.Take(), "WATCHDOG=1");
    EXPECT_EQ(sock.Take(), "");
  }
  ::rmdir(dir);
}

TEST_F(SdNotifyTest, SendsToAnAbstractSocket) {
  const std::string name = "@ferry-notify-test-" + std::to_string(::getpid());
  NotifySocket sock(name);
  ASSERT_TRUE(sock.bound());
  ::setenv("NOTIFY_SOCKET", name.c_str(), 1);
  EXPECT_TRUE(SdNotify("STOPPING=1"));
  EXPECT_EQ(sock.Take(), "STOPPING=1");
}

TEST_F(SdNotifyTest, WithoutSystemdItDoesNothing) {
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_FALSE(SdNotify("READY=1"));
  for (const char* bad : {"", "@", "relative/path", "/nonexistent/ferry-notify-socket"}) {
    ::setenv("NOTIFY_SOCKET", bad, 1);
    EXPECT_FALSE(SdNotify("READY=1")) << "NOTIFY_SOCKET=" << bad;
  }
  ::setenv("NOTIFY_SOCKET", ("/" + std::string(200, 'x')).c_str(), 1);  // longer than sun_path
  EXPECT_FALSE(SdNotify("READY=1"));
}

}  // namespace
}  // namespace ferry
