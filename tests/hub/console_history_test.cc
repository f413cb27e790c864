// The console's chart history (ferry/chart_history.h): the ring stepped on a ManualClock (wraparound, rates
// from seq deltas, a stream created later, an uplink gone after a reload, its bytes and cap), then
// GET /api/history of a Console on 127.0.0.1 over a real log (content, the token), and docs/console.md against
// the code (the endpoints, the ring's bytes). Nothing sleeps: the clock is advanced by hand and HTTP replies
// are read with a deadline.
#include "ferry/chart_history.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <rapidjson/document.h>

#include "ferry/console.h"
#include "ferry/uplink_engine.h"
#include "ferry/write_txn.h"

#include "../support/console_http.h"
#include "../support/temp_dir.h"
#include "../support/test_log.h"

namespace ferry::test {
namespace {

using namespace std::chrono_literals;

// 64-bit figures of chart_history.h and docs/console.md.
constexpr size_t kFixedBytes = 1'920, kStreamBytes = 2'952, kPairBytes = 1'544;
constexpr bool k64 = sizeof(void*) == 8;

rapidjson::Document Parse(const std::string& json) {
  rapidjson::Document d;
  d.Parse(json.c_str());
  EXPECT_FALSE(d.HasParseError()) << json;
  EXPECT_TRUE(d.IsObject()) << json;
  return d;
}

// A JSON array of numbers and nulls as text, e.g. "[null,2,4.5]", for readable comparisons.
std::string Row(const rapidjson::Value& a) {
  std::string s = "[";
  for (const auto& v : a.GetArray()) {
    if (s.size() > 1) s += ",";
    if (v.IsNull()) {
      s += "null";
    } else if (v.IsUint64()) {
      s += std::to_string(v.GetUint64());
    } else {
      std::ostringstream o;
      o << v.GetDouble();
      s += o.str();
    }
  }
  return s + "]";
}

const rapidjson::Value* Find(const rapidjson::Value& list, const char* key, const std::string& name,
                             const std::string& stream = "") {
  for (const auto& x : list.GetArray()) {
    if (x[key].GetString() == name && (stream.empty() || x["stream"].GetString() == stream)) return &x;
  }
  return nullptr;
}

class ConsoleHistoryRing : public ::testing::Test {
 protected:
  // One sample of `snap_` now, then the clock moves on by `after`.
  void Sample(std::chrono::nanoseconds after = ChartHistory::kInterval) {
    const size_t before = history_.size();
    history_.Step();
    ASSERT_TRUE(history_.size() == before + 1 || history_.size() == ChartHistory::kSamples) << "no sample taken";
    clock_.Advance(after);
  }
  rapidjson::Document Json() { return Parse(history_.Json(clock_.Now())); }
  void SetStream(const std::string& name, uint64_t last_seq) {
    for (auto& s : snap_.streams) {
      if (s.name == name) {
        s.last_seq = last_seq;
        s.count = last_seq;
        s.bytes = 100 * last_seq;
        return;
      }
    }
    snap_.streams.push_back({name, last_seq, last_seq, 100 * last_seq});
  }

  ManualClock clock_;
  ChartSnapshot snap_;
  ChartHistory history_{clock_, [this] { return snap_; }};
};

TEST_F(ConsoleHistoryRing, StepSamplesEveryIntervalAndAfterAStallOnce) {
  SetStream("telemetry", 1);
  auto next = history_.Step();  // the first call samples at once
  EXPECT_EQ(history_.size(), 1u);
  EXPECT_EQ(next, clock_.Steady() + ChartHistory::kInterval);
  EXPECT_EQ(history_.Step(), next);
  clock_.Advance(ChartHistory::kInterval - 1ms);
  history_.Step();
  EXPECT_EQ(history_.size(), 1u);
  clock_.Advance(1ms);
  history_.Step();
  EXPECT_EQ(history_.size(), 2u);
  // Held up for 32 s (a SQL query on the console's thread): one sample, then every 5 s from then.
  clock_.Advance(32s);
  next = history_.Step();
  EXPECT_EQ(history_.size(), 3u);
  EXPECT_EQ(next, clock_.Steady() + ChartHistory::kInterval);
  history_.Step();
  EXPECT_EQ(history_.size(), 3u);
}

TEST_F(ConsoleHistoryRing, WrapsAroundKeepingTheNewest120) {
  const TimeNs start = clock_.Now();
  for (uint64_t i = 0; i < 130; ++i) {
    SetStream("telemetry", 10 * i);
    Sample();
  }
  const size_t bytes = history_.bytes();
  EXPECT_EQ(history_.size(), ChartHistory::kSamples);
  auto d = Json();
  const auto& t = d["t_ms"];
  ASSERT_EQ(t.Size(), 120u);
  EXPECT_EQ(t[0].GetInt64(), start.ns / 1'000'000 + 10 * 5'000);  // samples 10..129, oldest first
  EXPECT_EQ(t[119].GetInt64(), start.ns / 1'000'000 + 129 * 5'000);
  const auto& s = *Find(d["streams"], "name", "telemetry");
  ASSERT_EQ(s["last_seq"].Size(), 120u);
  EXPECT_EQ(s["last_seq"][0].GetUint64(), 100u);
  EXPECT_EQ(s["last_seq"][119].GetUint64(), 1290u);
  EXPECT_TRUE(s["rate"][0].IsNull());  // its predecessor left the ring
  EXPECT_DOUBLE_EQ(s["rate"][1].GetDouble(), 2.0);
  EXPECT_DOUBLE_EQ(s["rate"][119].GetDouble(), 2.0);
  EXPECT_EQ(d["capacity"].GetUint64(), 120u);
  EXPECT_EQ(d["interval_s"].GetInt64(), 5);
  EXPECT_EQ(d["now_ms"].GetInt64(), clock_.Now().ns / 1'000'000);
  // The ring does not grow as it wraps.
  SetStream("telemetry", 5000);
  Sample();
  EXPECT_EQ(history_.bytes(), bytes);
}

TEST_F(ConsoleHistoryRing, RatesAndDrainComeFromSeqDeltas) {
  // telemetry's last seq 0, 10, 10, 40; the uplink's backlog 0, 10, 4, 4; the last interval is 10 s (a sample
  // was late), so the rate is over 10 s.
  const uint64_t seqs[] = {0, 10, 10, 40}, backlogs[] = {0, 10, 4, 4};
  const std::chrono::seconds after[] = {5s, 5s, 10s, 0s};
  for (int i = 0; i < 4; ++i) {
    SetStream("telemetry", seqs[i]);
    snap_.uplinks = {{"centre", "telemetry", backlogs[i],
                      backlogs[i] > 0 ? std::optional<TimeNs>(TimeNs{clock_.Now().ns - 7'500'000'000}) : std::nullopt}};
    history_.Step();
    clock_.Advance(after[i]);
  }
  auto d = Json();
  const auto& s = *Find(d["streams"], "name", "telemetry");
  EXPECT_EQ(Row(s["last_seq"]), "[0,10,10,40]");
  EXPECT_EQ(Row(s["count"]), "[0,10,10,40]");
  EXPECT_EQ(Row(s["bytes"]), "[0,1000,1000,4000]");
  EXPECT_EQ(Row(s["rate"]), "[null,2,0,3]");
  const auto& u = *Find(d["uplinks"], "uplink", "centre", "telemetry");
  EXPECT_EQ(Row(u["backlog"]), "[0,10,4,4]");
  EXPECT_EQ(Row(u["oldest_unsent_age_s"]), "[null,7,7,7]");  // whole seconds
  // Sent positions 0, 0, 6, 36: drained 0, 6 in 5 s, 30 in 10 s.
  EXPECT_EQ(Row(u["drain"]), "[null,0,1.2,3]");
}

TEST_F(ConsoleHistoryRing, AStreamCreatedLaterHasNullsBeforeIt) {
  for (uint64_t i = 0; i < 5; ++i) {
    SetStream("a", i);
    if (i == 3) SetStream("b", 7);
    if (i == 4) SetStream("b", 9);
    Sample();
  }
  auto d = Json();
  ASSERT_EQ(d["streams"].Size(), 2u);
  EXPECT_STREQ(d["streams"][0]["name"].GetString(), "a");  // sorted by name
  const auto& b = *Find(d["streams"], "name", "b");
  EXPECT_EQ(Row(b["last_seq"]), "[null,null,null,7,9]");
  EXPECT_EQ(Row(b["rate"]), "[null,null,null,null,0.4]");
  EXPECT_EQ(Row(Find(d["streams"], "name", "a")->operator[]("rate")), "[null,0.2,0.2,0.2,0.2]");
}

TEST_F(ConsoleHistoryRing, AnUplinkGoneAfterAReloadEndsThenIsFreed) {
  SetStream("telemetry", 0);
  snap_.uplinks = {{"backup", "telemetry", 3, std::nullopt}, {"centre", "telemetry", 1, std::nullopt}};
  for (int i = 0; i < 3; ++i) Sample();
  snap_.uplinks.erase(snap_.uplinks.begin());  // the reload removed "backup"
  Sample();
  auto d = Json();
  const auto* backup = Find(d["uplinks"], "uplink", "backup", "telemetry");
  ASSERT_NE(backup, nullptr);
  EXPECT_EQ(Row((*backup)["backlog"]), "[3,3,3,null]");
  EXPECT_EQ(Row((*backup)["drain"]), "[null,0,0,null]");
  EXPECT_EQ(Row(Find(d["uplinks"], "uplink", "centre", "telemetry")->operator[]("backlog")), "[1,1,1,1]");
  // Kept while the ring holds one of its values (sample 2 leaves it at sample 122), freed after.
  const size_t with_backup = history_.bytes();
  while (history_.size() < ChartHistory::kSamples) Sample();
  for (int i = 0; i < 2; ++i) Sample();
  EXPECT_NE(Find(Json()["uplinks"], "uplink", "backup"), nullptr);
  EXPECT_EQ(history_.bytes(), with_backup);
  Sample();
  EXPECT_EQ(Find(Json()["uplinks"], "uplink", "backup"), nullptr);
  if (k64) {
    EXPECT_EQ(with_backup - history_.bytes(), kPairBytes);
  }
}

TEST_F(ConsoleHistoryRing, BytesAreTheDocumentedFiguresAndCapped) {
  if (!k64) GTEST_SKIP() << "the documented figures are for 64-bit targets";
  EXPECT_EQ(history_.bytes(), kFixedBytes);
  for (int i = 0; i < 4; ++i) {
    SetStream("s" + std::to_string(i), 1);
    snap_.uplinks.push_back({"u" + std::to_string(i), "s0", 1, std::nullopt});
  }
  Sample();
  EXPECT_EQ(history_.bytes(), kFixedBytes + 4 * kStreamBytes + 4 * kPairBytes);  // docs/console.md's table
  // A name past std::string's inline 15 characters adds its heap block.
  SetStream("a-stream-name-of-32-characters-x", 1);
  Sample();
  EXPECT_EQ(history_.bytes(), kFixedBytes + 5 * kStreamBytes + 4 * kPairBytes + 33);
  // At most 64 streams and 64 pairs; the rest are counted, not kept.
  snap_ = {};
  for (int i = 0; i < 70; ++i) {
    SetStream("s" + std::to_string(i), 1);
    snap_.uplinks.push_back({"u" + std::to_string(i), "s0", 1, std::nullopt});
  }
  for (size_t i = 0; i <= ChartHistory::kSamples; ++i) Sample();  // the long name leaves the ring
  auto d = Json();
  EXPECT_EQ(d["streams"].Size(), ChartHistory::kMaxSeries);
  EXPECT_EQ(d["uplinks"].Size(), ChartHistory::kMaxSeries);
  EXPECT_EQ(d["omitted_series"].GetUint64(), 12u);
  EXPECT_EQ(history_.bytes(), 289'664u);
  EXPECT_EQ(d["bytes"].GetUint64(), 289'664u);
}

// ---- GET /api/history ---------------------------------------------------------------------------------------

class ConsoleHistoryApi : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = OpenTestLog(dir_.Sub("log"), clock_, {"telemetry"});
    ASSERT_NE(log_, nullptr);
    writer_ = std::make_unique<GroupCommitWriter>(*log_);
    config_.gateway.id = "gw-history";
    config_.streams.emplace_back();
    config_.streams.back().name = "telemetry";
    config_.uplinks.emplace_back();
    config_.uplinks.back().name = "centre";
    std::ofstream(dir_.Sub("token")) << token_ << "\n";
    config_.console.enabled = true;
    config_.console.listen = "127.0.0.1:0";
    config_.console.token_file = dir_.Sub("token");
    config_.console.sql_timeout = 5s;
    auto c = Console::Make(config_.console, ConsoleSources{log_.get(), writer_.get(), &config_, {}}, clock_);
    ASSERT_TRUE(c) << c.error().message;
    console_ = std::move(*c);
    ASSERT_TRUE(console_->Start());
  }
  void TearDown() override {
    if (console_) console_->Stop();
  }
  void Put(int n) {
    ASSERT_TRUE(log_->Update([&](WriteTxn& txn) -> Status {
      for (int i = 0; i < n; ++i) {
        Event e;
        e.payload = "{\"v\":1}";
        if (auto seq = txn.Append("telemetry", e); !seq) return tl::make_unexpected(seq.error());
      }
      return Ok();
    }));
  }
  rapidjson::Document History() {
    std::string reply = Http(console_->port(), "GET", "/api/history", token_);
    EXPECT_EQ(HttpStatus(reply), 200) << reply;
    EXPECT_NE(reply.find("Content-Type: application/json"), std::string::npos) << reply;
    return Parse(HttpBody(reply));
  }

  TempDir dir_{"ferry-console-history"};
  ManualClock clock_;
  std::unique_ptr<EventLog> log_;
  std::unique_ptr<GroupCommitWriter> writer_;
  Config config_;
  const std::string token_ = "history-token";
  std::unique_ptr<Console> console_;
};

TEST_F(ConsoleHistoryApi, TheTokenIsRequired) {
  EXPECT_EQ(HttpStatus(Http(console_->port(), "GET", "/api/history", "")), 401);
  std::string wrong = Http(console_->port(), "GET", "/api/history", "history-tokem");
  EXPECT_EQ(HttpStatus(wrong), 401) << wrong;
  EXPECT_NE(wrong.find("WWW-Authenticate: Bearer"), std::string::npos) << wrong;
  EXPECT_EQ(HttpBody(wrong).find("t_ms"), std::string::npos) << wrong;
}

TEST_F(ConsoleHistoryApi, ServesStreamsAndUplinksSampledOnTheClock) {
  // Started at the console's start: one sample of the empty stream.
  auto d = History();
  EXPECT_EQ(d["t_ms"].Size(), 1u);
  EXPECT_EQ(Row((*Find(d["streams"], "name", "telemetry"))["last_seq"]), "[0]");
  // Ten events, 5 s later: a second sample (taken by the request, or by the console's loop before it).
  Put(10);
  clock_.Advance(5s);
  d = History();
  ASSERT_EQ(d["t_ms"].Size(), 2u);
  EXPECT_EQ(d["t_ms"][1].GetInt64() - d["t_ms"][0].GetInt64(), 5000);
  const auto& s = *Find(d["streams"], "name", "telemetry");
  EXPECT_EQ(Row(s["last_seq"]), "[0,10]");
  EXPECT_EQ(Row(s["count"]), "[0,10]");
  EXPECT_GT(s["bytes"][1].GetUint64(), 10u * 7);
  EXPECT_EQ(Row(s["rate"]), "[null,2]");
  // "centre" forwards every stream and has sent nothing: all ten are its backlog, the oldest 5 s old.
  const auto& u = *Find(d["uplinks"], "uplink", "centre", "telemetry");
  EXPECT_EQ(Row(u["backlog"]), "[0,10]");
  EXPECT_EQ(Row(u["oldest_unsent_age_s"]), "[null,5]");
  EXPECT_EQ(Row(u["drain"]), "[null,0]");
  // It sends six (its cursor moves to seq 7), 5 s later: drained 6 in 5 s.
  ASSERT_TRUE(log_->Update([](WriteTxn& txn) { return txn.SetCursor("telemetry", UplinkCursorName("centre"), Seq{7}); }));
  clock_.Advance(5s);
  d = History();
  const auto& u2 = *Find(d["uplinks"], "uplink", "centre", "telemetry");
  EXPECT_EQ(Row(u2["backlog"]), "[0,10,4]");
  EXPECT_EQ(Row(u2["oldest_unsent_age_s"]), "[null,5,10]");
  EXPECT_EQ(Row(u2["drain"]), "[null,0,1.2]");
  // Asked again within the interval: the same samples.
  EXPECT_EQ(History()["t_ms"].Size(), 3u);
  EXPECT_GT(d["bytes"].GetUint64(), 0u);
}

// ---- docs/console.md against the code -----------------------------------------------------------------------

std::string ConsoleDoc() {
  std::ifstream in(std::string(FERRY_SOURCE_DIR) + "/docs/console.md");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_F(ConsoleHistoryApi, DocsEndpointsAreTheRoutes) {
  // The paths in the first column of the "## Endpoints" table, without query strings.
  const std::string doc = ConsoleDoc();
  size_t at = doc.find("\n## Endpoints\n");
  ASSERT_NE(at, std::string::npos);
  std::set<std::string> documented;
  std::istringstream lines(doc.substr(at));
  std::string line;
  std::getline(lines, line);
  std::regex path("`(?:GET|POST) (/[^`? ]*)");
  bool in_table = false;
  while (std::getline(lines, line)) {
    if (line.rfind("|", 0) != 0) {
      if (in_table) break;
      continue;
    }
    in_table = true;
    std::string first = line.substr(0, line.find(" | ", 1));
    for (std::sregex_iterator it(first.begin(), first.end(), path), end; it != end; ++it) documented.insert((*it)[1]);
  }
  const auto routes = console_->paths();
  EXPECT_EQ(documented, std::set<std::string>(routes.begin(), routes.end()));
}

TEST(ConsoleHistoryDocs, TheRingsBytesAreTheDocumentedOnes) {
  // The formula and the table of docs/console.md's "History kept by ferryd" against the figures that
  // ConsoleHistoryRing.BytesAreTheDocumentedFiguresAndCapped checks on the ring.
  const std::string doc = ConsoleDoc();
  size_t at = doc.find("\n### History kept by ferryd\n");
  ASSERT_NE(at, std::string::npos);
  const std::string section = doc.substr(at, doc.find("\n#", at + 1) - at);
  for (const char* figure : {"1,920", "2,952", "1,544"})
    EXPECT_NE(section.find(figure), std::string::npos) << figure << " is not in the section";
  auto number = [](std::string s) {
    s.erase(std::remove(s.begin(), s.end(), ','), s.end());
    return std::stoull(s);
  };
  std::regex row("\\| (\\d+)[^|]*\\| (\\d+)[^|]*\\| ([0-9,]+) \\|");
  int rows = 0;
  bool cap = false;
  for (std::sregex_iterator it(section.begin(), section.end(), row), end; it != end; ++it, ++rows) {
    const uint64_t streams = number((*it)[1]), pairs = number((*it)[2]);
    EXPECT_EQ(number((*it)[3]), kFixedBytes + streams * kStreamBytes + pairs * kPairBytes) << (*it)[0];
    cap = cap || (streams == ChartHistory::kMaxSeries && pairs == ChartHistory::kMaxSeries);
  }
  EXPECT_GE(rows, 2);
  EXPECT_TRUE(cap) << "no row for the cap of " << ChartHistory::kMaxSeries;
}

}  // namespace
}  // namespace ferry::test
