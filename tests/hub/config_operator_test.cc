// What a new operator trips on in a config file (issue 13): enum values of the wrong key, [stream] written
// twice, and what `ferryd --check-config` looks at beyond the text (CheckConfigEnvironment).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "ferry/config.h"

namespace ferry {
namespace {

Result<Config> Load(const std::string& text) { return LoadConfigString(text, "ferry.toml"); }

std::string ErrorOf(const std::string& text) {
  auto c = Load(text);
  EXPECT_FALSE(c) << text;
  return c ? "" : c.error().message;
}

// Item 1: "batch" and "batched" are two keys' spellings. Each error keeps its own list and, for the other
// key's value, says which key takes it and what this key's nearest value is.
TEST(ConfigOperator, EnumErrorNamesTheKeyThatTakesTheValue) {
  std::string m = ErrorOf("[ingest]\ndurability = \"batched\"\n");
  EXPECT_NE(m.find("ingest.durability: \"batched\" is not one of batch, sync"), std::string::npos) << m;
  EXPECT_NE(m.find("did you mean batch? (batched is an uplink.mode value)"), std::string::npos) << m;

  m = ErrorOf("[[uplink]]\nname = \"u\"\naddress = \"tcp://h:1\"\nmode = \"batch\"\n");
  EXPECT_NE(m.find("uplink[0].mode: \"batch\" is not one of per_event, batched"), std::string::npos) << m;
  EXPECT_NE(m.find("did you mean batched? (batch is an ingest.durability value)"), std::string::npos) << m;

  // A value of no other key: the list and, when one is close, the suggestion only.
  // ("drop" itself is now a pipeline.step.type value.)
  m = ErrorOf("[[stream]]\nname = \"a\"\nfull_policy = \"drop_old\"\n");
  EXPECT_NE(m.find("\"drop_old\" is not one of drop_oldest, reject_new; did you mean drop_oldest?"), std::string::npos)
      << m;
  EXPECT_EQ(m.find(" value)"), std::string::npos) << m;
  m = ErrorOf("[ingest]\ndurability = \"maybe\"\n");
  EXPECT_NE(m.find("\"maybe\" is not one of batch, sync"), std::string::npos) << m;
  EXPECT_EQ(m.find("did you mean"), std::string::npos) << m;
  // A value two keys take is named with both.
  m = ErrorOf("[ingest]\ndurability = \"log\"\n");
  EXPECT_NE(m.find("log is a stream.kind value"), std::string::npos) << m;
}

// Item 10: two [stream] tables (toml++ refuses the second) get the same hint as one [stream].
TEST(ConfigOperator, TableWrittenTwiceGetsTheArrayOfTablesHint) {
  std::string m = ErrorOf("[stream]\nname = \"a\"\n[stream]\nname = \"b\"\n");
  EXPECT_EQ(m.rfind("ferry.toml:3:1: ", 0), 0u) << m;
  EXPECT_NE(m.find("stream: must be an array of tables: write every one as [[stream]], not [stream]"),
            std::string::npos)
      << m;
  // [stream] then [[stream]], and the other way round.
  m = ErrorOf("[stream]\nname = \"a\"\n[[stream]]\nname = \"b\"\n");
  EXPECT_NE(m.find("write every one as [[stream]]"), std::string::npos) << m;
  m = ErrorOf("[[route]]\nfilter = \"a/#\"\nstream = \"a\"\n[route]\nfilter = \"b/#\"\n");
  EXPECT_NE(m.find("write every one as [[route]]"), std::string::npos) << m;
  // A plain section written twice: say so.
  m = ErrorOf("[ingest]\nmode = \"listen\"\n[ingest]\ndurability = \"sync\"\n");
  EXPECT_NE(m.find("[ingest] is written twice: put all its keys under one [ingest]"), std::string::npos) << m;
  // Other toml++ errors are left as they are.
  m = ErrorOf("[storage\n");
  EXPECT_EQ(m.find("array of tables"), std::string::npos) << m;
}

// ---- Item 2: CheckConfigEnvironment ----

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/ferry-cfgcheck-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string Base(const std::string& storage) {
  return "[storage]\npath = \"" + storage +
         "\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n[ingest]\naddress = \"tcp://127.0.0.1:1883\"\n"
         "[[stream]]\nname = \"t\"\n[[route]]\nfilter = \"t/#\"\nstream = \"t\"\n"
         "[[uplink]]\nname = \"c\"\naddress = \"tcp://127.0.0.1:1884\"\n";
}

std::vector<ConfigFinding> Check(const std::string& text) {
  auto c = Load(text);
  EXPECT_TRUE(c) << c.error().ToString();
  return c ? CheckConfigEnvironment(*c) : std::vector<ConfigFinding>{};
}

std::string Errors(const std::vector<ConfigFinding>& fs) {
  std::string out;
  for (const auto& f : fs)
    if (f.level == ConfigFinding::Level::kError) out += FormatFinding(f) + "\n";
  return out;
}

std::string All(const std::vector<ConfigFinding>& fs) {
  std::string out;
  for (const auto& f : fs) out += FormatFinding(f) + "\n";
  return out;
}

TEST(ConfigCheck, AGoodConfigHasNoErrors) {
  TempDir dir;
  auto fs = Check(Base(dir.path() + "/log"));
  EXPECT_EQ(Errors(fs), "");
  // The path that does not exist yet is created in its existing, writable parent: a note naming it.
  EXPECT_NE(All(fs).find("note: storage.path: " + dir.path() + "/log does not exist; ferryd will create it in " +
                         dir.path()),
            std::string::npos)
      << All(fs);
  // An existing directory: nothing to say about it.
  fs = Check(Base(dir.path()));
  EXPECT_EQ(All(fs).find("storage.path"), std::string::npos) << All(fs);
}

TEST(ConfigCheck, StoragePathWhoseParentIsMissingNamesTheNearestExistingOne) {
  TempDir dir;
  auto fs = Check(Base(dir.path() + "/a/b/log"));
  std::string e = Errors(fs);
  EXPECT_NE(e.find("error: storage.path: " + dir.path() + "/a/b/log does not exist, nor does " + dir.path() +
                   "/a/b"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("the nearest existing parent is " + dir.path() + ":"), std::string::npos) << e;
  // A file where a directory should be.
  std::ofstream(dir.path() + "/file") << "x";
  e = Errors(Check(Base(dir.path() + "/file")));
  EXPECT_NE(e.find("exists and is not a directory"), std::string::npos) << e;
  e = Errors(Check(Base(dir.path() + "/file/log")));
  EXPECT_NE(e.find("nearest existing parent " + dir.path() + "/file is not a directory"), std::string::npos) << e;
}

TEST(ConfigCheck, EmptyFileSaysWhatIsMissing) {
  auto fs = Check("");
  std::string e = Errors(fs);
  EXPECT_NE(e.find("error: stream: no [[stream]] is declared"), std::string::npos) << e;
  EXPECT_NE(e.find("error: route: no [[route]] is declared"), std::string::npos) << e;
  EXPECT_NE(All(fs).find("warning: uplink: no [[uplink]] is declared"), std::string::npos) << All(fs);
}

TEST(ConfigCheck, FilesNamedInTheConfigMustBeReadable) {
  TempDir dir;
  std::ofstream(dir.path() + "/ca.pem") << "x";
  std::string text = Base(dir.path()) + "tls.enabled = true\ntls.ca_file = \"" + dir.path() +
                     "/ca.pem\"\ntls.cert_file = \"" + dir.path() + "/missing.pem\"\nhmac_key_file = \"" +
                     dir.path() + "\"\n";
  // The uplink's address must be a TLS one with tls.enabled.
  text.replace(text.find("tcp://127.0.0.1:1884"), 20, "ssl://127.0.0.1:8883");
  std::string e = Errors(Check(text));
  EXPECT_EQ(e.find("ca.pem"), std::string::npos) << e;  // readable
  EXPECT_NE(e.find("error: uplink[0].tls.cert_file: " + dir.path() + "/missing.pem: cannot be read: No such file"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("error: uplink[0].hmac_key_file: " + dir.path() + " is not a regular file"), std::string::npos)
      << e;
  // The listener's password file, in mode listen.
  std::string listen = Base(dir.path()) + "";
  listen.replace(listen.find("[ingest]\n"), 9,
                 "[ingest]\nmode = \"listen\"\nlisten.address = \"127.0.0.1:0\"\nlisten.password_file = \"" +
                     dir.path() + "/passwd\"\n");
  e = Errors(Check(listen));
  EXPECT_NE(e.find("error: ingest.listen.password_file: " + dir.path() + "/passwd: cannot be read"),
            std::string::npos)
      << e;
}

TEST(ConfigCheck, AddressesResolveAndPortsAreNotShared) {
  TempDir dir;
  std::string text = Base(dir.path());
  text.replace(text.find("127.0.0.1:0"), 11, "no-such-host.invalid:9464");
  std::string e = Errors(Check(text));
  EXPECT_NE(e.find("error: metrics.listen: \"no-such-host.invalid:9464\": "), std::string::npos) << e;
  // Two listeners on one port.
  text = Base(dir.path());
  text.replace(text.find("127.0.0.1:0"), 11, "127.0.0.1:18830");
  text.replace(text.find("[ingest]\n"), 9, "[ingest]\nmode = \"both\"\nlisten.address = \"127.0.0.1:18830\"\n");
  e = Errors(Check(text));
  EXPECT_NE(e.find("port 18830 is also ingest.listen.address's"), std::string::npos) << e;
  // A broker host that does not resolve now: a warning (DNS may be down while checking), not an error.
  text = Base(dir.path());
  text.replace(text.find("tcp://127.0.0.1:1884"), 20, "tcp://no-such-host.invalid:1883");
  auto fs = Check(text);
  EXPECT_EQ(Errors(fs), "");
  EXPECT_NE(All(fs).find("warning: uplink[0].address: host \"no-such-host.invalid\" does not resolve"),
            std::string::npos)
      << All(fs);
}

TEST(ConfigCheck, TemplatedStreamsAndIdFieldsAreLeftToRunTime) {
  TempDir dir;
  std::string text = Base(dir.path()) +
                     "[[route]]\nfilter = \"raw/{kind}/#\"\nstream = \"{kind}\"\nid_json_field = \"eid\"\n"
                     "content_type = \"application/json\"\n";
  auto fs = Check(text);
  EXPECT_EQ(Errors(fs), "");
  std::string all = All(fs);
  EXPECT_NE(all.find("note: route[1].stream: \"{kind}\" is a template: the streams it names are checked at run time"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("note: route[1].id_json_field: checked at run time"), std::string::npos) << all;
  EXPECT_NE(all.find("ferry_ingest_missing_id_total"), std::string::npos) << all;
}

}  // namespace
}  // namespace ferry
