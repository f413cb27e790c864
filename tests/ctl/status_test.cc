// ferryctl status: tables and JSON, beside a second process holding the log.
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rapidjson/document.h>

#include "ctl_fixture.h"
#include "ferry/uplink_mqtt.h"

namespace ferry::ctl::testing {
namespace {

using StatusTest = CtlTest;

TEST_F(StatusTest, TablesShowStreamsCursorsAndUplinkBacklog) {
  Append("telemetry", 12);
  SetCursor("telemetry", UplinkCursorName("central"), 10);  // seqs 10, 11, 12 unsent
  clock_.Advance(std::chrono::minutes(5));

  ASSERT_EQ(RunStatus(*log_, &config_, {}, env_, out_, err_), kExitOk) << err_.str();
  const std::string text = out_.str();
  EXPECT_NE(text.find("log " + path()), std::string::npos) << text;
  EXPECT_NE(text.find("map 64.0 MiB, used "), std::string::npos) << text;

  bool telemetry = false, state = false, cursor = false, central = false, backup_missing = false;
  for (const auto& line : Lines(text)) {
    std::istringstream cols(line);
    std::vector<std::string> c;
    for (std::string w; cols >> w;) c.push_back(w);
    if (c.size() >= 8 && c[0] == "telemetry" && c[1] == "log") {
      telemetry = true;
      EXPECT_EQ(c[2], "12") << line;               // count
      EXPECT_EQ(c[5], "1") << line;                // first seq (BYTES takes two words: "1.2 KiB")
      EXPECT_EQ(c[6], "12") << line;               // last seq
      EXPECT_EQ(c[7], FormatRfc3339(TimeNs{1'700'000'001'000'000'000})) << line;
      EXPECT_EQ(c[8], "5m11s") << line;            // seq 1 came 11s before the last append
    }
    if (c.size() >= 3 && c[0] == "state" && c[1] == "table") {
      state = true;
      EXPECT_EQ(c[2], "0") << line;
    }
    if (c.size() == 4 && c[0] == "telemetry" && c[1] == "uplink.central") {
      cursor = true;
      EXPECT_EQ(c[2], "10");
      EXPECT_EQ(c[3], "3");
    }
    if (c.size() == 6 && c[0] == "central" && c[1] == "telemetry") {
      central = true;
      EXPECT_EQ(c[2], "10");  // cursor
      EXPECT_EQ(c[3], "3");   // backlog
      EXPECT_EQ(c[5], "5m2s") << line;  // seq 10 came 2s before the last append
    }
    // backup forwards every declared stream: telemetry (never forwarded) and state.
    if (c.size() >= 4 && c[0] == "backup" && c[1] == "telemetry") {
      backup_missing = c[2] == "(none)" && c[3] == "12";
    }
  }
  EXPECT_TRUE(telemetry && state && cursor && central && backup_missing) << text;
}

TEST_F(StatusTest, WithoutConfigUplinksAreUnknown) {
  Append("telemetry", 1);
  ASSERT_EQ(RunStatus(*log_, nullptr, {}, env_, out_, err_), kExitOk);
  EXPECT_NE(out_.str().find("uplinks: unknown"), std::string::npos) << out_.str();
}

TEST_F(StatusTest, JsonParses) {
  Append("telemetry", 4);
  SetCursor("telemetry", UplinkCursorName("central"), 3);
  StatusOptions o;
  o.json = true;
  ASSERT_EQ(RunStatus(*log_, &config_, o, env_, out_, err_), kExitOk) << err_.str();
  rapidjson::Document doc;
  doc.Parse(out_.str().c_str());
  ASSERT_FALSE(doc.HasParseError()) << out_.str();
  EXPECT_EQ(doc["env"]["map_size"].GetUint64(), uint64_t{64} << 20);
  EXPECT_GT(doc["env"]["used_bytes"].GetUint64(), 0u);
  const auto& streams = doc["streams"].GetArray();
  ASSERT_EQ(streams.Size(), 2u);
  bool found = false;
  for (const auto& s : streams) {
    if (std::string(s["name"].GetString()) != "telemetry") continue;
    found = true;
    EXPECT_EQ(s["count"].GetUint64(), 4u);
    EXPECT_EQ(s["last_seq"].GetUint64(), 4u);
    EXPECT_EQ(s["evicted"]["budget"].GetUint64(), 0u);
    ASSERT_EQ(s["cursors"].Size(), 1u);
    EXPECT_EQ(s["cursors"][0]["lag"].GetUint64(), 2u);
  }
  EXPECT_TRUE(found);
  const auto& uplinks = doc["uplinks"].GetArray();
  ASSERT_EQ(uplinks.Size(), 3u);  // central: telemetry; backup: telemetry, state
  EXPECT_STREQ(uplinks[0]["uplink"].GetString(), "central");
  EXPECT_EQ(uplinks[0]["backlog"].GetUint64(), 2u);
  EXPECT_EQ(uplinks[0]["oldest_unsent_age_s"].GetDouble(), 1.0);
  EXPECT_TRUE(uplinks[2]["oldest_unsent_time"].IsNull());  // state is empty
}

// Waits (bounded) for one byte on fd; false on timeout or EOF.
bool ReadByte(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 10'000) != 1) return false;
  char c;
  return ::read(fd, &c, 1) == 1;
}

// ferryd's situation: another process holds the log read-write (and appends) while ferryctl opens it
// read-only and reads.
TEST_F(StatusTest, ReadOnlyOpenBesideAWriterProcess) {
  Append("telemetry", 5);
  log_.reset();  // the child is the writer now; one environment per process
  int ready[2], done[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(done), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    ::close(done[1]);
    EventLogOptions o;
    o.path = path();
    o.map_size = size_t{64} << 20;
    auto log = EventLog::Open(o);
    int rc = log && (*log)->Append("telemetry", MakeEvent("from-child")) ? 0 : 1;
    if (::write(ready[1], "r", 1) != 1) rc = 2;
    ReadByte(done[0]);  // hold the log open until the parent is done
    ::_exit(rc);
  }
  ::close(ready[1]);
  ::close(done[0]);
  ASSERT_TRUE(ReadByte(ready[0]));

  {
    auto ro = OpenReadOnly(path());
    ASSERT_TRUE(ro) << ro.error().ToString();
    StatusOptions o;
    o.json = true;
    EXPECT_EQ(RunStatus(**ro, &config_, o, env_, out_, err_), kExitOk) << err_.str();
  }
  ASSERT_EQ(::write(done[1], "d", 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ::close(ready[0]);
  ::close(done[1]);

  rapidjson::Document doc;
  doc.Parse(out_.str().c_str());
  ASSERT_FALSE(doc.HasParseError()) << out_.str();
  for (const auto& s : doc["streams"].GetArray()) {
    if (std::string(s["name"].GetString()) == "telemetry") {
      EXPECT_EQ(s["count"].GetUint64(), 6u);
    }
  }
}

TEST_F(StatusTest, NoLogAtPathIsNotFoundAndNothingIsCreated) {
  const std::string missing = dir_.Sub("nope");
  auto ro = OpenReadOnly(missing);
  ASSERT_FALSE(ro);
  EXPECT_EQ(ro.error().code, ErrorCode::kNotFound);
  EXPECT_NE(ro.error().message.find(missing), std::string::npos) << ro.error().message;
  auto rw = OpenReadWrite(missing);
  ASSERT_FALSE(rw);
  struct stat sb {};
  EXPECT_NE(::stat(missing.c_str(), &sb), 0);
}

TEST_F(StatusTest, ResolveTargetPrefersLogAndReadsConfigOnlyWhenAsked) {
  auto t = ResolveTarget("/does/not/exist.toml", false, "/some/log");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->log_path, "/some/log");
  EXPECT_FALSE(t->config);
  auto bad = ResolveTarget("/does/not/exist.toml", true, "/some/log");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("/does/not/exist.toml"), std::string::npos) << bad.error().message;
}

TEST(CtlFormat, Helpers) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(uint64_t{3} << 30), "3.0 GiB");
  EXPECT_EQ(FormatAge(std::chrono::seconds(0)), "0s");
  EXPECT_EQ(FormatAge(std::chrono::seconds(-5)), "0s");
  EXPECT_EQ(FormatAge(std::chrono::seconds(42)), "42s");
  EXPECT_EQ(FormatAge(std::chrono::seconds(312)), "5m12s");
  EXPECT_EQ(FormatAge(std::chrono::seconds(3 * 3600 + 125)), "3h2m");
  EXPECT_EQ(FormatAge(std::chrono::hours(24 * 4 + 1)), "4d1h");
  EXPECT_EQ(PrintablePayload("a\nb\x01", 0), "a\\nb\\x01");
  EXPECT_EQ(PrintablePayload("abcdefgh", 4), "abcd... (8 bytes)");
  EXPECT_EQ(PrintablePayload("abcd", 4), "abcd");
}

}  // namespace
}  // namespace ferry::ctl::testing
