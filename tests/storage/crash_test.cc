// kill -9 under load: a forked child appends through the group-commit writer (fsync on) and reports every
// durable seq to the parent over a pipe; the parent SIGKILLs it at a random moment, reopens the log and
// checks that every reported record is present and intact. fork() only, no exec, no sleeps.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <thread>

#include "ferry/group_commit.h"
#include "ferry/log_maintainer.h"
#include "ferry/stream_iterator.h"
#include "test_util.h"

namespace ferry {
namespace {

using testing::MakeEvent;
using testing::TempDir;

struct Report {
  uint64_t seq;      // 0 = the child hit an error
  uint32_t round;
  uint32_t n;
};

std::string PayloadFor(uint32_t round, uint32_t n) {
  return "round-" + std::to_string(round) + "-n-" + std::to_string(n) + std::string(100, '.');
}

struct Scenario {
  size_t map_size = size_t{64} << 20;
  bool evicting = false;  // a small map, byte retention and the maintainer thread: deletes under the kill
  int rounds = 50;
};

[[noreturn]] void ChildMain(const Scenario& sc, const std::string& path, uint32_t round, int fd) {
  EventLogOptions o;
  o.path = path;
  o.map_size = sc.map_size;
  auto log = EventLog::Open(o);
  if (!log) ::_exit(2);
  GroupCommitOptions go;
  go.max_queue_events = 2000;
  GroupCommitWriter writer(**log, go);
  writer.Start();
  MaintenanceOptions mo;
  mo.interval = std::chrono::milliseconds(1);
  LogMaintainer maint(**log, mo);
  if (sc.evicting) maint.Start();
  std::atomic<uint32_t> next{0};
  auto produce = [&] {
    for (;;) {
      const uint32_t n = next++;
      writer.Append("s", MakeEvent(PayloadFor(round, n)), [fd, round, n](Result<Seq> r) {
        // Runs on the writer thread after the commit returned: the record is durable now.
        Report rep{r ? r->value : 0, round, n};
        if (::write(fd, &rep, sizeof(rep)) != sizeof(rep)) ::_exit(3);
      });
    }
  };
  std::thread a(produce), b(produce);
  a.join();  // never returns: the parent kills us
  ::_exit(4);
}

void RunKillRounds(const Scenario& sc) {
  TempDir dir;
  const std::string path = dir.Sub("log");
  {
    auto log = testing::OpenLog(path, nullptr, sc.map_size);
    StreamOptions so;
    if (sc.evicting) so.max_bytes = sc.map_size / 4;
    ASSERT_TRUE(log->CreateStream("s", so));
  }
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::map<uint64_t, std::pair<uint32_t, uint32_t>> acked;  // seq -> (round, n)
  for (uint32_t round = 0; round < static_cast<uint32_t>(sc.rounds); ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      ChildMain(sc, path, round, fds[1]);
    }
    ::close(fds[1]);
    // Kill after a random number of acknowledgements: the writer (and maintainer) are then somewhere random
    // in their append / delete / commit / fsync cycle.
    const int kill_after = std::uniform_int_distribution<int>(1, sc.evicting ? 3000 : 300)(rng);
    int seen = 0;
    bool killed = false;
    Report rep{};
    size_t have = 0;
    char* buf = reinterpret_cast<char*>(&rep);
    for (;;) {
      const ssize_t got = ::read(fds[0], buf + have, sizeof(rep) - have);
      if (got <= 0) break;  // EOF: the child is dead and everything it reported has been read
      have += static_cast<size_t>(got);
      if (have < sizeof(rep)) continue;
      have = 0;
      ASSERT_NE(rep.seq, 0u) << "child append failed in round " << round;
      acked[rep.seq] = {rep.round, rep.n};
      if (++seen == kill_after && !killed) {
        ::kill(pid, SIGKILL);
        killed = true;
      }
    }
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);

    // Reopen (clears the dead child's reader slot) and check every acknowledged record.
    auto log = testing::OpenLog(path, nullptr, sc.map_size);
    ASSERT_NE(log, nullptr) << "round " << round;
    auto stats = log->GetStreamStats("s");
    ASSERT_TRUE(stats);
    auto it = log->NewIterator("s");
    ASSERT_TRUE(it);
    for (auto a = acked.lower_bound(stats->first_seq.value); a != acked.end(); ++a) {
      const auto& [seq, who] = *a;
      (*it)->Seek(Seq{seq});
      ASSERT_TRUE((*it)->Valid()) << "round " << round << ": acknowledged seq " << seq << " lost; "
                                  << ((*it)->status() ? "" : (*it)->status().error().ToString());
      ASSERT_EQ((*it)->record().seq, Seq{seq});
      ASSERT_EQ((*it)->record().payload, PayloadFor(who.first, who.second));
    }
    if (!sc.evicting) {
      ASSERT_EQ(stats->first_seq.value, 1u) << "nothing may be deleted without eviction";
    }
    // The whole stream (acknowledged or not) verifies, and meta agrees with the log: every seq ever assigned
    // is either present or counted as evicted.
    uint64_t count = 0;
    for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) ++count;
    ASSERT_TRUE((*it)->status()) << (*it)->status().error().ToString();
    it->reset();
    uint64_t evicted = 0;
    for (uint64_t e : stats->evicted) evicted += e;
    EXPECT_EQ(stats->count, count);
    EXPECT_EQ(count + evicted, stats->last_seq.value);
    EXPECT_GE(stats->last_seq.value, acked.rbegin()->first);
    if (sc.evicting && round + 1 == static_cast<uint32_t>(sc.rounds)) {
      EXPECT_GT(evicted, 0u) << "the scenario never evicted: make the map smaller";
    }
  }
  EXPECT_GE(acked.size(), static_cast<size_t>(sc.rounds));
}

TEST(CrashTest, KillNineUnderLoadLosesNoAcknowledgedRecord) { RunKillRounds(Scenario{}); }

TEST(CrashTest, KillNineDuringRetentionAndBudgetEvictionKeepsTheLogConsistent) {
  Scenario sc;
  sc.map_size = size_t{2} << 20;
  sc.evicting = true;
  sc.rounds = 30;
  RunKillRounds(sc);
}

}  // namespace
}  // namespace ferry
