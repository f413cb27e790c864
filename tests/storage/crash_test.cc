// kill -9 under load: a forked child appends through the group-commit writer (fsync on) and reports every
// durable seq to the parent over a pipe; the parent SIGKILLs it at a random moment, reopens the log and
// checks that every reported record is present and intact. fork() only, no exec, no sleeps.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <map>
#include <random>
#include <thread>

#include "ferry/group_commit.h"
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

[[noreturn]] void ChildMain(const std::string& path, uint32_t round, int fd) {
  EventLogOptions o;
  o.path = path;
  o.map_size = size_t{64} << 20;
  auto log = EventLog::Open(o);
  if (!log) ::_exit(2);
  GroupCommitOptions go;
  go.max_queue_events = 2000;
  GroupCommitWriter writer(**log, go);
  writer.Start();
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

TEST(CrashTest, KillNineUnderLoadLosesNoAcknowledgedRecord) {
  TempDir dir;
  const std::string path = dir.Sub("log");
  {
    auto log = testing::OpenLog(path);
    ASSERT_TRUE(log->CreateStream("s"));
  }
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::map<uint64_t, std::pair<uint32_t, uint32_t>> acked;  // seq -> (round, n)
  constexpr int kRounds = 50;
  for (uint32_t round = 0; round < kRounds; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      ChildMain(path, round, fds[1]);
    }
    ::close(fds[1]);
    // Kill after a random number of acknowledgements: the writer is then somewhere random in its
    // append / commit / fsync cycle.
    const int kill_after = std::uniform_int_distribution<int>(1, 300)(rng);
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
    auto log = testing::OpenLog(path);
    ASSERT_NE(log, nullptr) << "round " << round;
    auto it = log->NewIterator("s");
    ASSERT_TRUE(it);
    for (const auto& [seq, who] : acked) {
      (*it)->Seek(Seq{seq});
      ASSERT_TRUE((*it)->Valid()) << "round " << round << ": acknowledged seq " << seq << " lost; "
                                  << ((*it)->status() ? "" : (*it)->status().error().ToString());
      ASSERT_EQ((*it)->record().seq, Seq{seq});
      ASSERT_EQ((*it)->record().payload, PayloadFor(who.first, who.second));
    }
    // The whole stream (acknowledged or not) verifies, and meta agrees with the log.
    uint64_t count = 0;
    for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) ++count;
    ASSERT_TRUE((*it)->status()) << (*it)->status().error().ToString();
    it->reset();
    auto stats = log->GetStreamStats("s");
    ASSERT_TRUE(stats);
    EXPECT_EQ(stats->count, count);
    EXPECT_GE(stats->last_seq.value, acked.rbegin()->first);
  }
  EXPECT_GE(acked.size(), size_t{kRounds});
}

}  // namespace
}  // namespace ferry
