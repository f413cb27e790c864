// ctl_fixture.h: a log in a temp dir with a manual clock, a config naming its uplinks, and helpers to damage
// records behind the log's back.
#pragma once

#include "../support/temp_dir.h"

#include <lmdb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "ferry/config.h"
#include "ferry/ctl.h"
#include "ferry/event_log.h"

namespace ferry::ctl::testing {

inline constexpr const char* kConfig = R"(
[storage]
path = "/unused"

[[stream]]
name = "telemetry"

[[stream]]
name = "state"
kind = "table"

[[uplink]]
name = "central"
address = "tcp://central.example:1883"
streams = ["telemetry"]

[[uplink]]
name = "backup"
address = "tcp://backup.example:1883"
)";

// A fresh directory under $TMPDIR, removed (one level deep) on destruction.
// The shared scratch directory (tests/support/temp_dir.h), named for this suite.
class TempDir : public ::ferry::test::TempDir {
 public:
  TempDir() : ::ferry::test::TempDir("ferry-ctl") {}
};

inline Event MakeEvent(const std::string& payload, const std::string& subject = "") {
  Event e;
  e.id = "dev-1/" + payload;
  e.source = "urn:dev:1";
  e.type = "telemetry.v1";
  e.subject = subject;
  e.datacontenttype = "text/plain";
  e.payload = payload;
  return e;
}

// 8-byte big-endian stream key (docs/storage.md).
inline std::string SeqKey(uint64_t seq) {
  std::string k(8, '\0');
  for (int i = 0; i < 8; ++i) k[i] = static_cast<char>(seq >> (8 * (7 - i)));
  return k;
}

class CtlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto config = LoadConfigString(kConfig, "ferry.toml");
    ASSERT_TRUE(config) << config.error().ToString();
    config_ = std::move(*config);
    Reopen();
    ASSERT_TRUE(log_->CreateStream("telemetry"));
    StreamOptions table;
    table.kind = StreamKind::kTable;
    ASSERT_TRUE(log_->CreateStream("state", table));
    env_.clock = &clock_;
  }

  std::string path() const { return dir_.Sub("log"); }

  void Reopen() {
    log_.reset();
    EventLogOptions o;
    o.path = path();
    o.clock = &clock_;
    o.map_size = size_t{64} << 20;
    auto log = EventLog::Open(o);
    ASSERT_TRUE(log) << log.error().ToString();
    log_ = std::move(*log);
  }

  // Appends payloads "p<first>".."p<first+n-1>", one second of ingest time apart.
  void Append(const std::string& stream, int n, int first = 1) {
    for (int i = first; i < first + n; ++i) {
      clock_.Advance(std::chrono::seconds(1));
      auto seq = log_->Append(stream, MakeEvent("p" + std::to_string(i)));
      ASSERT_TRUE(seq) << seq.error().ToString();
    }
  }

  void SetCursor(const std::string& stream, const std::string& cursor, uint64_t pos) {
    ASSERT_TRUE(log_->Update([&](WriteTxn& txn) { return txn.SetCursor(stream, cursor, Seq{pos}); }));
  }

  // Rewrites the stored value of a record with the raw LMDB API. REQUIRES: log_ closed (one env per process).
  void EditRecord(const std::string& stream, uint64_t seq, const std::function<void(std::string*)>& edit) {
    MDB_env* env = nullptr;
    ASSERT_EQ(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    ASSERT_EQ(mdb_env_open(env, path().c_str(), 0, 0644), 0);
    MDB_txn* txn = nullptr;
    ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
    MDB_dbi dbi;
    ASSERT_EQ(mdb_dbi_open(txn, ("log:" + stream).c_str(), 0, &dbi), 0);
    std::string key = SeqKey(seq);
    MDB_val k{key.size(), key.data()}, v{};
    ASSERT_EQ(mdb_get(txn, dbi, &k, &v), 0);
    std::string value(static_cast<char*>(v.mv_data), v.mv_size);
    edit(&value);
    v = MDB_val{value.size(), value.data()};
    ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
    ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
  }

  static std::vector<std::string> Lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  TempDir dir_;
  ManualClock clock_;
  Config config_;
  std::unique_ptr<EventLog> log_;
  CtlEnv env_;
  std::ostringstream out_;
  std::ostringstream err_;
};

}  // namespace ferry::ctl::testing
