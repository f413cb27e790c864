// ferryctl sql: SQLite over the log (hub/ctl/src/sql.cc), on a log in a temp dir with a manual clock.
#include "ctl_fixture.h"
#include "ferry/rfc3339.h"

namespace ferry::ctl::testing {
namespace {

class SqlTest : public CtlTest {
 protected:
  int Sql(const std::string& query, SqlOptions o = {}) {
    out_.str("");
    err_.str("");
    o.query = query;
    o.records_read = &read_;
    return RunSql(*log_, o, env_, out_, err_);
  }
  void AppendJson(const std::string& subject, double t) {
    clock_.Advance(std::chrono::seconds(1));
    Event e = MakeEvent("{\"t\":" + std::to_string(t) + "}", subject);
    e.datacontenttype = "application/json";
    ASSERT_TRUE(log_->Append("telemetry", e));
  }
  uint64_t read_ = 0;
};

TEST_F(SqlTest, SelectsWithJsonAndPrintsATable) {
  AppendJson("dev-1", 20.5);
  AppendJson("dev-2", 31.0);
  AppendJson("dev-1", 25.0);
  AppendJson("dev-3", 12.0);
  ASSERT_EQ(Sql("SELECT subject, max(json_extract(payload, '$.t')) AS peak FROM telemetry "
                "GROUP BY subject ORDER BY peak DESC LIMIT 2"),
            kExitOk)
      << err_.str();
  EXPECT_EQ(out_.str(),
            "subject  peak\n"
            "dev-2    31.0\n"
            "dev-1    25.0\n"
            "(2 rows)\n");
}

// Bounds on seq and ingest_time are pushed down: the last 10 s of 200 records read about 10 records, not 200.
TEST_F(SqlTest, SeqAndTimeBoundsReadOnlyWhatTheyNeed) {
  Append("telemetry", 200);
  ASSERT_EQ(Sql("SELECT count(*) FROM telemetry"), kExitOk) << err_.str();
  EXPECT_EQ(read_, 200u);
  ASSERT_EQ(Sql("SELECT seq FROM telemetry WHERE seq > 195", {}), kExitOk) << err_.str();
  EXPECT_EQ(Lines(out_.str()).size(), 1u + 5u + 1u);
  EXPECT_EQ(read_, 5u);
  ASSERT_EQ(Sql("SELECT seq FROM telemetry WHERE seq BETWEEN 10 AND 12"), kExitOk);
  EXPECT_EQ(out_.str(), "seq\n10\n11\n12\n(3 rows)\n");
  EXPECT_EQ(read_, 3u);
  ASSERT_EQ(Sql("SELECT count(*) AS n FROM telemetry WHERE ingest_time >= ago('10s')"), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "n\n11\n(1 row)\n");
  EXPECT_EQ(read_, 11u);
  ASSERT_EQ(Sql("SELECT min(seq) AS first FROM telemetry WHERE ingest_time > ns('" +
                FormatRfc3339(TimeNs{clock_.Now().ns - 5'000'000'000}) + "')"),
            kExitOk)
      << err_.str();
  EXPECT_EQ(out_.str(), "first\n196\n(1 row)\n");
  ASSERT_EQ(Sql("SELECT seq FROM telemetry WHERE seq = 7"), kExitOk);
  EXPECT_EQ(out_.str(), "seq\n7\n(1 row)\n");
  EXPECT_EQ(read_, 1u);
  ASSERT_EQ(Sql("SELECT seq FROM telemetry WHERE seq < 0"), kExitOk);
  EXPECT_EQ(out_.str(), "seq\n(0 rows)\n");
}

TEST_F(SqlTest, CsvJsonNullsAndBinaryPayloads) {
  Event bin = MakeEvent(std::string("\x00\xff", 2));
  bin.subject.clear();
  bin.headers = {{"site", "north"}};
  ASSERT_TRUE(log_->Append("telemetry", bin));
  SqlOptions o;
  o.format = SqlOptions::Format::kCsv;
  ASSERT_EQ(Sql("SELECT seq, subject, payload, headers, 'a,\"b' AS q FROM telemetry", o), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "seq,subject,payload,headers,q\r\n1,,\\x00\\xff,\"{\"\"site\"\":\"\"north\"\"}\",\"a,\"\"b\"\r\n");
  o.format = SqlOptions::Format::kJson;
  ASSERT_EQ(Sql("SELECT seq, subject, payload, json_extract(headers, '$.site') AS site, 1.5 AS f FROM telemetry", o),
            kExitOk);
  EXPECT_EQ(out_.str(), R"({"seq":1,"subject":null,"payload":"\\x00\\xff","site":"north","f":1.5})" "\n");
  ASSERT_EQ(Sql("SELECT rfc3339(ingest_time) = rfc3339(ns(rfc3339(ingest_time))) AS same, time FROM telemetry"), kExitOk);
  EXPECT_EQ(out_.str(), "same  time\n1     NULL\n(1 row)\n");
}

// Nothing can write, attach a file or run forever; bad SQL names its error.
TEST_F(SqlTest, ReadOnlyBoundedAndClearAboutErrors) {
  Append("telemetry", 3);
  for (const char* q : {"DELETE FROM telemetry", "ATTACH '/tmp/ferry-sql-test.db' AS x", "CREATE TABLE t(x)",
                        "PRAGMA writable_schema = 1", "INSERT INTO telemetry(seq) VALUES (9)"}) {
    EXPECT_NE(Sql(q), kExitOk) << q;
    EXPECT_FALSE(err_.str().empty()) << q;
  }
  EXPECT_EQ(Sql("SELEC 1"), kExitUsage);
  EXPECT_NE(err_.str().find("syntax error"), std::string::npos) << err_.str();
  EXPECT_EQ(Sql("SELECT * FROM nosuchstream"), kExitUsage);
  EXPECT_NE(err_.str().find("no such table: nosuchstream"), std::string::npos) << err_.str();
  EXPECT_EQ(Sql("SELECT 1; SELECT 2"), kExitUsage);
  SqlOptions o;
  o.timeout = std::chrono::milliseconds(0);
  EXPECT_EQ(Sql("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c", o),
            kExitRuntime);
  EXPECT_NE(err_.str().find("time limit"), std::string::npos) << err_.str();
  o = {};
  o.max_rows = 2;
  ASSERT_EQ(Sql("SELECT seq FROM telemetry", o), kExitOk);
  EXPECT_EQ(out_.str(), "seq\n1\n2\n(2 rows)\n");
  EXPECT_NE(err_.str().find("stopped after 2 rows"), std::string::npos);
  EXPECT_EQ(Sql("SELECT ago('soon')"), kExitRuntime);
  EXPECT_NE(err_.str().find("ago:"), std::string::npos) << err_.str();
}

}  // namespace
}  // namespace ferry::ctl::testing
