// ferryctl sql's bench (issue 14, acceptance 3): "the last hour, top 5 devices by peak value" over a stream of
// --events (default 1M) events from 1,000 devices spread over the last 24 h (ingest times end at the real
// wall clock, so ferryctl's ago('1h') sees them as recent). Prints the fill time, then the query's wall time
// in this process (RunSql, the engine of ferryctl sql and the console) --runs times, and, with --ferryctl,
// the wall time of `ferryctl --log DIR sql QUERY` as a separate process (what an operator types).
//
//   ferry_sql_bench [--events N] [--runs R] [--ferryctl build/host-release/hub/ferryctl]
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "../../tests/support/temp_dir.h"
#include "ferry/ctl.h"
#include "million_log.h"

using namespace ferry;
using Ms = std::chrono::duration<double, std::milli>;

int main(int argc, char** argv) {
  uint64_t events = 1'000'000;
  int runs = 5;
  std::string ferryctl;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--events" && i + 1 < argc) events = std::stoull(argv[++i]);
    else if (a == "--runs" && i + 1 < argc) runs = std::atoi(argv[++i]);
    else if (a == "--ferryctl" && i + 1 < argc) ferryctl = argv[++i];
    else { std::cerr << "usage: ferry_sql_bench [--events N] [--runs R] [--ferryctl PATH]\n"; return 2; }
  }
  const char* query =
      "SELECT subject, max(json_extract(payload, '$.t')) AS peak FROM telemetry WHERE ingest_time >= ago('1h') "
      "GROUP BY subject ORDER BY peak DESC LIMIT 5";
  test::TempDir dir("ferry-sql-bench");
  ManualClock clock(SystemClock::Instance().Now());
  EventLogOptions o;
  o.path = dir.Sub("log");
  o.clock = &clock;
  o.map_size = size_t{2} << 30;
  {
    auto log = EventLog::Open(o);
    if (!log) { std::cerr << log.error().ToString() << "\n"; return 1; }
    auto t0 = std::chrono::steady_clock::now();
    if (Status st = bench::FillMillionLog(**log, clock, "telemetry", events, std::chrono::hours(24)); !st) {
      std::cerr << st.error().ToString() << "\n";
      return 1;
    }
    std::printf("filled %llu events (24 h, 1,000 devices) in %.1f s\n", static_cast<unsigned long long>(events),
                Ms(std::chrono::steady_clock::now() - t0).count() / 1000);
    std::vector<double> ms;
    uint64_t read = 0;
    std::string result;
    for (int r = 0; r < runs; ++r) {
      std::ostringstream out, err;
      ctl::SqlOptions so;
      so.query = query;
      so.records_read = &read;
      ctl::CtlEnv env;  // the real clock: ago('1h') is the last real hour, where the fill ended
      auto t = std::chrono::steady_clock::now();
      if (ctl::RunSql(**log, so, env, out, err) != ctl::kExitOk) { std::cerr << err.str(); return 1; }
      ms.push_back(Ms(std::chrono::steady_clock::now() - t).count());
      result = out.str();
    }
    std::sort(ms.begin(), ms.end());
    std::printf("query (in process, RunSql): median %.1f ms, min %.1f, max %.1f over %d runs; %llu records read\n%s",
                ms[ms.size() / 2], ms.front(), ms.back(), runs, static_cast<unsigned long long>(read),
                result.c_str());
  }
  if (!ferryctl.empty()) {
    std::vector<double> ms;
    std::string cmd = ferryctl + " --log " + dir.Sub("log") + " sql \"" + query + "\" > /dev/null";
    for (int r = 0; r < runs; ++r) {
      auto t = std::chrono::steady_clock::now();
      int rc = std::system(cmd.c_str());
      if (rc != 0) { std::cerr << "ferryctl failed: " << cmd << "\n"; return 1; }
      ms.push_back(Ms(std::chrono::steady_clock::now() - t).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("ferryctl sql (a process, start to exit): median %.1f ms, min %.1f, max %.1f over %d runs\n",
                ms[ms.size() / 2], ms.front(), ms.back(), runs);
  }
  return 0;
}
