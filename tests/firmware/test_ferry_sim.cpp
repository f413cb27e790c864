// ferry-sim end to end against a real Mosquitto: every id in --id-log arrives, duplicates are injected
// at the requested rate with the same id, payloads are padded, clock faults show up, runs are
// deterministic per seed, and boot counters advance between runs.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "mosquitto_fixture.h"
#include "paho_subscriber.h"

namespace {

using namespace std::chrono_literals;
using ferry::test::MosquittoBroker;
using ferry::test::PahoSubscriber;
using ferry::test::poll_until;
using ferry::test::TempDir;

struct SimResult {
  int exit_code = -1;
  std::string out;
  std::map<std::string, double> summary;  // key=value pairs of the summary line
};

SimResult run_sim(const std::string& args) {
  SimResult r;
  std::string cmd = std::string(FERRY_SIM_PATH) + " " + args + " 2>&1";
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return r;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, f) != nullptr) r.out += buf;
  int st = ::pclose(f);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  auto p = r.out.find("ferry-sim: produced=");
  if (p != std::string::npos) {
    std::string line = r.out.substr(p, r.out.find('\n', p) - p);
    std::regex kv("([a-z_]+)=([0-9.]+)");
    for (auto it = std::sregex_iterator(line.begin(), line.end(), kv); it != std::sregex_iterator(); ++it)
      r.summary[(*it)[1].str()] = std::stod((*it)[2].str());
  }
  return r;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> v;
  std::ifstream f(path);
  for (std::string l; std::getline(f, l);) v.push_back(l);
  return v;
}

class Sim : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(broker.start()) << broker.log();
    sub = std::make_unique<PahoSubscriber>(broker.uri(), "ferry-sim-test-sub");
    ASSERT_TRUE(sub->connect_and_subscribe());
  }
  std::string base_args() const { return "--port " + std::to_string(broker.port()) + " --quiet"; }

  MosquittoBroker broker;  // queues without limit (mosquitto_fixture.h)
  TempDir tmp{"ferry-sim-test"};
  std::unique_ptr<PahoSubscriber> sub;
};

TEST_F(Sim, EveryLoggedIdArrivesWithDuplicatesPaddingAndClockFaults) {
  sub->keep_payloads(true);
  std::string ids = tmp.path() + "/ids";
  auto r = run_sim(base_args() + " --devices 20 --connections 3 --rate 20000 --count 3000 --seed 42" +
                   " --dup-rate 0.05 --clock-faults 0.5 --payload-size 200 --state-dir " + tmp.path() + "/state" +
                   " --id-log " + ids);
  ASSERT_EQ(0, r.exit_code) << r.out;
  EXPECT_EQ(3000, r.summary["produced"]) << r.out;
  double dups = r.summary["duplicates"];
  EXPECT_GT(dups, 50);   // 5% of 3000 = 150 expected
  EXPECT_LT(dups, 300);
  EXPECT_EQ(3000 + dups, r.summary["acked"]);
  EXPECT_EQ(0, r.summary["unacked"]);

  auto logged = read_lines(ids);
  ASSERT_EQ(3000u, logged.size());
  ASSERT_TRUE(poll_until([&] { return sub->received() >= 3000 + static_cast<size_t>(dups); }, 20s))
      << sub->received();
  for (const auto& id : logged) ASSERT_TRUE(sub->has(id)) << id;
  EXPECT_EQ(3000u, sub->unique());
  EXPECT_EQ(0u, sub->id_mismatches());

  std::regex id_re("^dev-[0-9]{4}/b1/[0-9]{9}$");
  for (const auto& id : logged) ASSERT_TRUE(std::regex_match(id, id_re)) << id;

  size_t epoch_1970 = 0, far_future = 0;
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  for (const auto& p : sub->payloads()) {
    ASSERT_EQ(200u, p.size()) << p;
    auto t = p.find("\"ts\":");
    ASSERT_NE(std::string::npos, t) << p;
    int64_t ts = std::stoll(p.substr(t + 5));
    if (ts < 86400000LL) ++epoch_1970;
    if (ts > now_ms + 1800000LL) ++far_future;
  }
  EXPECT_GT(epoch_1970, 0u);
  EXPECT_GT(far_future, 0u);
}

TEST_F(Sim, SameSeedSameIdsDifferentSeedDifferent) {
  auto run = [&](int seed, const std::string& name) {
    std::string path = tmp.path() + "/" + name;
    auto r = run_sim(base_args() + " --devices 8 --rate 0 --count 400 --state-dir none --seed " +
                     std::to_string(seed) + " --id-log " + path);
    EXPECT_EQ(0, r.exit_code) << r.out;
    return read_lines(path);
  };
  auto a = run(7, "a"), b = run(7, "b"), c = run(8, "c");
  ASSERT_EQ(400u, a.size());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST_F(Sim, BootCounterAdvancesBetweenRuns) {
  std::string state = tmp.path() + "/state";
  auto r1 = run_sim(base_args() + " --devices 2 --count 10 --rate 0 --state-dir " + state + " --id-log " +
                    tmp.path() + "/r1");
  auto r2 = run_sim(base_args() + " --devices 2 --count 10 --rate 0 --state-dir " + state + " --id-log " +
                    tmp.path() + "/r2");
  ASSERT_EQ(0, r1.exit_code) << r1.out;
  ASSERT_EQ(0, r2.exit_code) << r2.out;
  for (const auto& id : read_lines(tmp.path() + "/r1")) EXPECT_NE(std::string::npos, id.find("/b1/")) << id;
  for (const auto& id : read_lines(tmp.path() + "/r2")) EXPECT_NE(std::string::npos, id.find("/b2/")) << id;
}

TEST_F(Sim, StopsByItselfWhenTheBrokerIsGone) {
  broker.kill9();
  auto r = run_sim(base_args() + " --devices 2 --duration 0.5 --rate 100 --state-dir none --connect-timeout 0.2" +
                   " --drain-timeout 0.5");
  EXPECT_EQ(3, r.exit_code) << r.out;  // bounded; unacked events reported, not hung
  EXPECT_GT(r.summary["unacked"], 0) << r.out;
}

}  // namespace
