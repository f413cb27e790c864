// Damaged data on disk: records truncated or bit-flipped behind the log's back, and formats from the future.
// The test edits the LMDB file directly, with the layout documented in docs/storage.md.
#include <lmdb.h>

#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "ferry/stream_iterator.h"
#include "test_util.h"

namespace ferry {
namespace {

using testing::MakeEvent;
using testing::OpenLog;
using testing::TempDir;

std::string Key(uint64_t seq) {
  std::string k(8, '\0');
  for (int i = 0; i < 8; ++i) k[i] = static_cast<char>(seq >> (8 * (7 - i)));
  return k;
}

// Opens the raw environment and lets `edit` change the value stored under `key` in database `db`.
void EditRaw(const std::string& path, const char* db, const std::string& key,
             const std::function<void(std::string*)>& edit) {
  MDB_env* env = nullptr;
  ASSERT_EQ(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 16);
  ASSERT_EQ(mdb_env_open(env, path.c_str(), 0, 0644), 0);
  MDB_txn* txn = nullptr;
  ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
  MDB_dbi dbi;
  ASSERT_EQ(mdb_dbi_open(txn, db, 0, &dbi), 0);
  MDB_val k{key.size(), const_cast<char*>(key.data())}, v{};
  std::string value;
  if (mdb_get(txn, dbi, &k, &v) == 0) value.assign(static_cast<char*>(v.mv_data), v.mv_size);
  edit(&value);
  v = MDB_val{value.size(), value.data()};
  ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
  ASSERT_EQ(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

class DamageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto log = OpenLog(path(), &clock_);
    ASSERT_TRUE(log->CreateStream("s"));
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(log->Append("s", MakeEvent("payload-" + std::to_string(i))));
  }
  std::string path() const { return dir_.Sub("log"); }

  // Iterates the whole stream; returns the seqs read and the final status.
  std::pair<std::vector<uint64_t>, Status> ReadAll(EventLog& log) {
    std::vector<uint64_t> seqs;
    auto it = log.NewIterator("s");
    EXPECT_TRUE(it);
    for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) seqs.push_back((*it)->record().seq.value);
    return {seqs, (*it)->status()};
  }

  TempDir dir_;
  ManualClock clock_;
};

TEST_F(DamageTest, TruncatedRecordIsCorruptionAndCanBeSkipped) {
  EditRaw(path(), "log:s", Key(4), [](std::string* v) { v->resize(v->size() - 3); });
  auto log = OpenLog(path(), &clock_);
  auto [seqs, st] = ReadAll(*log);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 2, 3}));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kCorruption);
  EXPECT_NE(st.error().message.find("size"), std::string::npos) << st.error().message;
  // The caller may step over the damaged record.
  auto it = log->NewIterator("s");
  (*it)->Seek(Seq{5});
  ASSERT_TRUE((*it)->Valid());
  EXPECT_EQ((*it)->record().payload, "payload-4");
  auto batch = log->Read("s", Seq{1}, 100);
  ASSERT_FALSE(batch);
  EXPECT_EQ(batch.error().code, ErrorCode::kCorruption);
  // Appends continue after the damage.
  EXPECT_EQ(*log->Append("s", MakeEvent("after")), Seq{11});
}

TEST_F(DamageTest, FlippedPayloadBitIsChecksumMismatch) {
  EditRaw(path(), "log:s", Key(7), [](std::string* v) { v->back() = static_cast<char>(v->back() ^ 0x10); });
  auto log = OpenLog(path(), &clock_);
  auto [seqs, st] = ReadAll(*log);
  EXPECT_EQ(seqs.size(), 6u);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kCorruption);
  EXPECT_NE(st.error().message.find("checksum"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("seq 7"), std::string::npos) << st.error().message;
}

TEST_F(DamageTest, FutureRecordVersionIsRefused) {
  EditRaw(path(), "log:s", Key(2), [](std::string* v) { (*v)[0] = 9; });
  auto log = OpenLog(path(), &clock_);
  auto [seqs, st] = ReadAll(*log);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1}));
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("unsupported record format version 9"), std::string::npos)
      << st.error().message;
}

TEST_F(DamageTest, FutureEnvironmentFormatIsRefusedAtOpen) {
  EditRaw(path(), "meta", "format", [](std::string* v) {
    const uint32_t future = 2;
    v->assign(reinterpret_cast<const char*>(&future), sizeof(future));
  });
  EventLogOptions o;
  o.path = path();
  auto log = EventLog::Open(o);
  ASSERT_FALSE(log);
  EXPECT_EQ(log.error().code, ErrorCode::kCorruption);
  EXPECT_NE(log.error().message.find("unsupported environment format version 2"), std::string::npos)
      << log.error().message;
}

TEST_F(DamageTest, DamagedStreamMetaIsRefusedAtOpen) {
  EditRaw(path(), "meta", "stream:s", [](std::string* v) { v->resize(10); });
  EventLogOptions o;
  o.path = path();
  auto log = EventLog::Open(o);
  ASSERT_FALSE(log);
  EXPECT_EQ(log.error().code, ErrorCode::kCorruption);
}

TEST(DamageFileTest, NotAnLmdbFileIsAnError) {
  TempDir dir;
  const std::string path = dir.Sub("log");
  ASSERT_EQ(::mkdir(path.c_str(), 0755), 0);
  FILE* f = std::fopen((path + "/data.mdb").c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::string junk(16384, 'z');
  std::fwrite(junk.data(), 1, junk.size(), f);
  std::fclose(f);
  EventLogOptions o;
  o.path = path;
  auto log = EventLog::Open(o);
  ASSERT_FALSE(log);
  EXPECT_EQ(log.error().code, ErrorCode::kCorruption) << log.error().ToString();
}

}  // namespace
}  // namespace ferry
