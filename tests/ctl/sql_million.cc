// Issue 14, acceptance 2, at the size the issue names: over a 1M-event stream spanning 24 h, a query bounded to
// the last hour reads only the rows in that hour (counted by the virtual table: SqlOptions::records_read), and
// gives the same answer as the same query with the bound hidden from xBestIndex (`ingest_time + 0`), which
// scans all 1M. Its own binary, label "heavy" (it writes a 1M-event log; 3 s here), host builds only.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>

#include "../../bench/sql/million_log.h"
#include "../support/temp_dir.h"
#include "ferry/ctl.h"

namespace ferry::ctl::testing {
namespace {

TEST(SqlMillion, TheLastHourReadsOnlyTheLastHour) {
  constexpr uint64_t kEvents = 1'000'000;
  ::ferry::test::TempDir dir("ferry-sql-million");
  ManualClock clock;
  EventLogOptions o;
  o.path = dir.Sub("log");
  o.clock = &clock;
  o.map_size = size_t{1} << 30;
  auto log = EventLog::Open(o);
  ASSERT_TRUE(log) << log.error().ToString();
  ASSERT_TRUE(bench::FillMillionLog(**log, clock, "telemetry", kEvents, std::chrono::hours(24)));
  CtlEnv env;
  env.clock = &clock;
  auto sql = [&](const std::string& q, uint64_t* read) {
    std::ostringstream out, err;
    SqlOptions so;
    so.query = q;
    so.format = SqlOptions::Format::kCsv;
    so.records_read = read;
    so.timeout = std::chrono::hours(1);  // the manual clock does not move; no time limit is meant here
    EXPECT_EQ(RunSql(**log, so, env, out, err), kExitOk) << err.str();
    return out.str();
  };
  uint64_t bounded = 0, scanned = 0;
  std::string in_hour = sql("SELECT count(*) FROM telemetry WHERE ingest_time >= ago('1h')", &bounded);
  std::string all = sql("SELECT count(*) FROM telemetry WHERE ingest_time + 0 >= ago('1h')", &scanned);
  EXPECT_EQ(in_hour, all);
  EXPECT_EQ(scanned, kEvents);
  // 1 h of 24 h: 41,666 or 41,667 events, and the virtual table visited exactly those.
  uint64_t n = std::stoull(in_hour.substr(in_hour.find('\n') + 1));
  EXPECT_GE(n, 41'666u);
  EXPECT_LE(n, 41'667u);
  EXPECT_EQ(bounded, n);

  const char* top5 =
      "SELECT subject, max(json_extract(payload, '$.t')) AS peak FROM telemetry WHERE ingest_time %s ago('1h') "
      "GROUP BY subject ORDER BY peak DESC, subject LIMIT 5";
  char q[512];
  std::snprintf(q, sizeof q, top5, ">=");
  std::string fast = sql(q, &bounded);
  std::snprintf(q, sizeof q, top5, "+ 0 >=");
  std::string slow = sql(q, &scanned);
  EXPECT_EQ(fast, slow);
  EXPECT_EQ(std::count(fast.begin(), fast.end(), '\n'), 6) << fast;  // header + 5 rows
  EXPECT_EQ(bounded, n);
  EXPECT_EQ(scanned, kEvents);
}

}  // namespace
}  // namespace ferry::ctl::testing
