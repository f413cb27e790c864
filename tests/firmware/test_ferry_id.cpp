// The event id scheme and the boot counter file (format, increment across re-init, atomic replace,
// damaged files).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "ferry_pub.h"
#include "mosquitto_fixture.h"

namespace {

using ferry::test::TempDir;

std::string read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void write_all(const std::string& p, const std::string& data) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << data;
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

TEST(FerryId, FormatIsDeviceBootAndNineDigitSeq) {
  char buf[FERRY_ID_MAX];
  ASSERT_EQ(FERRY_PUB_OK, ferry_id_format("dev-0007", 12, 42, buf, sizeof buf));
  EXPECT_STREQ("dev-0007/b12/000000042", buf);
  ASSERT_EQ(FERRY_PUB_OK, ferry_id_format("d", 1, 1234567890123ull, buf, sizeof buf));
  EXPECT_STREQ("d/b1/1234567890123", buf);  // wider than 9 digits: just more digits
  ASSERT_EQ(FERRY_PUB_OK, ferry_id_format("d", 4294967295u, 18446744073709551615ull, buf, sizeof buf));
  EXPECT_STREQ("d/b4294967295/18446744073709551615", buf);
}

TEST(FerryId, LongestIdFitsIdMax) {
  std::string dev(FERRY_DEV_ID_MAX, 'a');
  char buf[FERRY_ID_MAX];
  EXPECT_EQ(FERRY_PUB_OK, ferry_id_format(dev.c_str(), 4294967295u, 18446744073709551615ull, buf, sizeof buf));
}

TEST(FerryId, SmallBufferIsTooBig) {
  char buf[8];
  EXPECT_EQ(FERRY_PUB_ETOOBIG, ferry_id_format("dev-0007", 12, 42, buf, sizeof buf));
}

TEST(FerryId, DeviceIdAlphabet) {
  EXPECT_TRUE(ferry_dev_id_valid("dev-0007"));
  EXPECT_TRUE(ferry_dev_id_valid("A.b_c-9"));
  EXPECT_FALSE(ferry_dev_id_valid(""));
  EXPECT_FALSE(ferry_dev_id_valid("."));
  EXPECT_FALSE(ferry_dev_id_valid(".."));
  EXPECT_FALSE(ferry_dev_id_valid("a/b"));
  EXPECT_FALSE(ferry_dev_id_valid("a+b"));
  EXPECT_FALSE(ferry_dev_id_valid("a#"));
  EXPECT_FALSE(ferry_dev_id_valid("a b"));
  EXPECT_FALSE(ferry_dev_id_valid(nullptr));
  EXPECT_TRUE(ferry_dev_id_valid(std::string(FERRY_DEV_ID_MAX, 'x').c_str()));
  EXPECT_FALSE(ferry_dev_id_valid(std::string(FERRY_DEV_ID_MAX + 1, 'x').c_str()));
  char buf[FERRY_ID_MAX];
  EXPECT_EQ(FERRY_PUB_EINVAL, ferry_id_format("a/b", 1, 1, buf, sizeof buf));
}

TEST(FerryBoot, CounterIncrementsAtEveryInitAndPersists) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  for (uint32_t want = 1; want <= 5; ++want) {
    ferry_dev dev;
    ASSERT_EQ(FERRY_PUB_OK, ferry_dev_init(&dev, "dev-0007", dir.path().c_str()));
    EXPECT_EQ(want, dev.boot);
    EXPECT_EQ(0u, dev.last_seq);
    EXPECT_EQ(1u, ferry_dev_next_seq(&dev));
    EXPECT_EQ(2u, ferry_dev_next_seq(&dev));
    uint32_t on_disk = 0;
    ASSERT_EQ(FERRY_PUB_OK, ferry_dev_read_boot("dev-0007", dir.path().c_str(), &on_disk));
    EXPECT_EQ(want, on_disk);
  }
  // Independent per device.
  ferry_dev other;
  ASSERT_EQ(FERRY_PUB_OK, ferry_dev_init(&other, "dev-0008", dir.path().c_str()));
  EXPECT_EQ(1u, other.boot);
}

TEST(FerryBoot, FileFormatIsVersionedWithCrcAndNoTempLeftBehind) {
  TempDir dir;
  ferry_dev dev;
  ASSERT_EQ(FERRY_PUB_OK, ferry_dev_init(&dev, "dev-1", dir.path().c_str()));
  ASSERT_EQ(FERRY_PUB_OK, ferry_dev_init(&dev, "dev-1", dir.path().c_str()));
  std::string content = read_all(dir.path() + "/dev-1.boot");
  EXPECT_TRUE(std::regex_match(content, std::regex("ferry-boot 1 2 [0-9a-f]{8}\n"))) << content;
  EXPECT_FALSE(exists(dir.path() + "/dev-1.boot.new"));
}

TEST(FerryBoot, MissingStateDirIsIoError) {
  ferry_dev dev;
  EXPECT_EQ(FERRY_PUB_EIO, ferry_dev_init(&dev, "dev-1", "/nonexistent/ferry/state"));
}

TEST(FerryBoot, NullStateDirMeansBootOneNotPersisted) {
  ferry_dev dev;
  ASSERT_EQ(FERRY_PUB_OK, ferry_dev_init(&dev, "dev-1", nullptr));
  EXPECT_EQ(1u, dev.boot);
}

TEST(FerryBoot, InvalidDeviceIdRejected) {
  TempDir dir;
  ferry_dev dev;
  EXPECT_EQ(FERRY_PUB_EINVAL, ferry_dev_init(&dev, "../x", dir.path().c_str()));
}

// A crash between writing .new and the rename leaves a torn .new next to the intact file: it is ignored
// and replaced on the next init.
TEST(FerryBoot, StaleTornNewFileIsIgnored) {
  TempDir dir;
  ferry_dev dev;
  ASSERT_EQ(FERRY_PUB_OK, ferry_dev_init(&dev, "dev-1", dir.path().c_str()));
  write_all(dir.path() + "/dev-1.boot.new", "ferry-bo");
  ASSERT_EQ(FERRY_PUB_OK, ferry_dev_init(&dev, "dev-1", dir.path().c_str()));
  EXPECT_EQ(2u, dev.boot);
  EXPECT_FALSE(exists(dir.path() + "/dev-1.boot.new"));
}

class FerryBootDamaged : public ::testing::TestWithParam<std::string> {};

TEST_P(FerryBootDamaged, IsCorruptAndLeftUntouched) {
  TempDir dir;
  ferry_dev dev;
  ASSERT_EQ(FERRY_PUB_OK, ferry_dev_init(&dev, "dev-1", dir.path().c_str()));
  ASSERT_EQ(FERRY_PUB_OK, ferry_dev_init(&dev, "dev-1", dir.path().c_str()));
  std::string path = dir.path() + "/dev-1.boot";
  std::string good = read_all(path);
  std::string bad;
  const std::string& how = GetParam();
  if (how == "flipped-digit") {
    bad = good;
    bad[13] = '7';  // "ferry-boot 1 2 ..." -> "ferry-boot 1 7 ..."
  } else if (how == "truncated") {
    bad = good.substr(0, good.size() / 2);
  } else if (how == "empty") {
    bad = "";
  } else if (how == "future-version") {
    // A well-formed line with a valid CRC but version 2: written by a newer firmware.
    TempDir d2;
    auto crc = [](const std::string& s) {
      uint32_t c = 0xFFFFFFFFu;
      for (unsigned char ch : s) {
        c ^= ch;
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
      }
      return ~c;
    };
    char line[64];
    std::snprintf(line, sizeof line, "ferry-boot 2 2 %08x\n", crc("ferry-boot 2 2"));
    bad = line;
    // Sanity: the same construction with version 1 is accepted, so only the version makes it corrupt.
    std::snprintf(line, sizeof line, "ferry-boot 1 9 %08x\n", crc("ferry-boot 1 9"));
    write_all(d2.path() + "/dev-1.boot", line);
    uint32_t b = 0;
    ASSERT_EQ(FERRY_PUB_OK, ferry_dev_read_boot("dev-1", d2.path().c_str(), &b));
    EXPECT_EQ(9u, b);
  } else if (how == "zero-boot") {
    bad = "ferry-boot 1 0 00000000\n";
  }
  write_all(path, bad);
  EXPECT_EQ(FERRY_PUB_ECORRUPT, ferry_dev_init(&dev, "dev-1", dir.path().c_str()));
  EXPECT_EQ(bad, read_all(path));
}

INSTANTIATE_TEST_SUITE_P(Damaged, FerryBootDamaged,
                         ::testing::Values("flipped-digit", "truncated", "empty", "future-version", "zero-boot"));

TEST(FerryEvent, PayloadCarriesIdAndFields) {
  ferry_event ev{"engine", "\"temp_c\":81.5,\"rpm\":2450", 1764059343123LL, 0};
  char buf[256];
  size_t len = 0;
  ASSERT_EQ(FERRY_PUB_OK, ferry_event_format("dev-0007", 12, 42, &ev, buf, sizeof buf, &len));
  EXPECT_STREQ(
      "{\"id\":\"dev-0007/b12/000000042\",\"dev\":\"dev-0007\",\"kind\":\"engine\",\"boot\":12,\"seq\":42,"
      "\"ts\":1764059343123,\"temp_c\":81.5,\"rpm\":2450}",
      buf);
  EXPECT_EQ(std::strlen(buf), len);
}

TEST(FerryEvent, NoTimeAndNoFields) {
  ferry_event ev{"door", nullptr, FERRY_NO_TIME, 0};
  char buf[256];
  size_t len = 0;
  ASSERT_EQ(FERRY_PUB_OK, ferry_event_format("d1", 1, 1, &ev, buf, sizeof buf, &len));
  EXPECT_STREQ("{\"id\":\"d1/b1/000000001\",\"dev\":\"d1\",\"kind\":\"door\",\"boot\":1,\"seq\":1}", buf);
}

TEST(FerryEvent, PadReachesExactSize) {
  for (size_t want : {120u, 200u, 512u, 1000u}) {
    ferry_event ev{"gps", "\"lat\":1.5", 0, want};
    char buf[1100];
    size_t len = 0;
    ASSERT_EQ(FERRY_PUB_OK, ferry_event_format("dev-0001", 3, 7, &ev, buf, sizeof buf, &len));
    EXPECT_EQ(want, len);
    EXPECT_EQ(want, std::strlen(buf));
    EXPECT_EQ('}', buf[len - 1]);
  }
  // Smaller than the unpadded event: no pad member.
  ferry_event ev{"gps", nullptr, 0, 10};
  char buf[256];
  size_t len = 0;
  ASSERT_EQ(FERRY_PUB_OK, ferry_event_format("dev-0001", 3, 7, &ev, buf, sizeof buf, &len));
  EXPECT_EQ(nullptr, std::strstr(buf, "pad"));
}

TEST(FerryEvent, TooSmallBufferAndBadKind) {
  ferry_event ev{"engine", "\"x\":1", 0, 0};
  char buf[40];
  size_t len = 0;
  EXPECT_EQ(FERRY_PUB_ETOOBIG, ferry_event_format("dev-0007", 1, 1, &ev, buf, sizeof buf, &len));
  ferry_event bad{"a/b", nullptr, 0, 0};
  char big[256];
  EXPECT_EQ(FERRY_PUB_EINVAL, ferry_event_format("dev-0007", 1, 1, &bad, big, sizeof big, &len));
  ferry_event pad{"engine", nullptr, 0, 300};
  EXPECT_EQ(FERRY_PUB_ETOOBIG, ferry_event_format("dev-0007", 1, 1, &pad, big, sizeof big, &len));
}

}  // namespace
