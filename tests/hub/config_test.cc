#include "ferry/config.h"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace ferry {
namespace {

using namespace std::chrono_literals;

constexpr const char* kFull = R"(
[gateway]
id = "gw-7"

[storage]
path = "/data/ferry"
map_size = "512MiB"
commit.max_events = 2000
commit.max_delay = "5ms"

[ingest]
address = "ssl://localhost:8883"
durability = "sync"
max_payload = 65536
dedupe_window = "1h30m"

[ingest.tls]
enabled = true
ca_file = "/etc/ferry/ca.pem"

[metrics]
listen = "0.0.0.0:9100"

[log]
level = "debug"

[[stream]]
name = "telemetry"
max_age = "3d"
max_bytes = "100MiB"
priority = 5

[[stream]]
name = "state"
kind = "table"
full_policy = "reject_new"

[[stream]]
name = "dead"

[[route]]
filter = "telemetry/{device}/#"
stream = "telemetry"
subject = "{device}"
content_type = "application/json"
dead_letter = "dead"
id_json_field = "eid"

[[route]]
filter = "state/{kind}/{device}"
stream = "{kind}"
subject = "{device}"

[[uplink]]
name = "central"
address = "ssl://central.example:8883"
mode = "batched"
streams = ["telemetry", "state"]
drain_order = "newest_first"
bytes_per_sec = "64KiB"
batch.max_events = 100
tls = { enabled = true, verify = false }
)";

Result<Config> Load(const std::string& text) { return LoadConfigString(text, "ferry.toml"); }

TEST(Config, DefaultsComeFromTheTable) {
  auto c = Load("");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->storage.path, "/var/lib/ferry");
  EXPECT_EQ(c->storage.map_size, 1ull << 30);
  EXPECT_TRUE(c->storage.sync);
  EXPECT_EQ(c->storage.commit.max_events, 4000);
  EXPECT_EQ(c->storage.commit.max_delay, 100ms);
  EXPECT_EQ(c->ingest.address, "tcp://127.0.0.1:1883");
  EXPECT_EQ(c->ingest.durability, Durability::kBatch);
  EXPECT_EQ(c->ingest.session_expiry, 24h);
  EXPECT_EQ(c->ingest.max_payload, 256u * 1024);
  EXPECT_EQ(c->metrics.listen, "127.0.0.1:9464");
  EXPECT_TRUE(c->metrics.enabled);
  EXPECT_EQ(c->log.level, ConfigLogLevel::kInfo);
  EXPECT_TRUE(c->streams.empty());
}

TEST(Config, EveryDefaultIsAValidValue) {
  // Writing each default explicitly must pass the same type, range and extra checks as user input.
  for (const auto& k : ConfigKeys()) {
    if (k.default_text == nullptr) continue;
    std::string value;
    switch (k.type) {
      case KeyType::kInt:
      case KeyType::kBool: value = k.default_text; break;
      case KeyType::kStringList: value = "[]"; break;
      default: value = std::string("\"") + k.default_text + "\"";
    }
    std::string section = k.section;
    std::string text;
    if (section == "stream") {
      text = "[[stream]]\nname = \"s\"\n";
    } else if (section == "route") {
      text = "[[stream]]\nname = \"s\"\n[[route]]\nfilter = \"t/#\"\nstream = \"s\"\n";
    } else if (section == "uplink") {
      text = "[[uplink]]\nname = \"u\"\naddress = \"tcp://h:1\"\n";
    } else if (section == "downlink") {
      text = "[[stream]]\nname = \"t\"\nkind = \"table\"\n[[downlink]]\nname = \"d\"\naddress = \"h:9092\"\n"
             "topic = \"c.t\"\ntable = \"t\"\n";
    } else if (section.rfind("pipeline", 0) == 0) {
      text = "[[stream]]\nname = \"a\"\n[[stream]]\nname = \"b\"\n[[pipeline]]\nname = \"p\"\ninput = [\"a\"]\n"
             "output = \"b\"\n";
      const std::string key = k.name;
      if (section == "pipeline.step")
        text += key == "from" || key == "to" ? "[[pipeline.step]]\ntype = \"filter\"\nwhere = \"x\"\n"
                                             : "[[pipeline.step]]\ntype = \"rename\"\nfrom = \"a\"\nto = \"b\"\n";
      if (section == "pipeline.step.upgrade")
        text += "[[pipeline.step]]\ntype = \"schema_upgrade\"\n[[pipeline.step.upgrade]]\nversion = 1\n";
    } else {
      text = "[" + section + "]\n";
    }
    text += std::string(k.name) + " = " + value + "\n";
    auto c = Load(text);
    EXPECT_TRUE(c) << KeyPath(k) << ": " << c.error().message;
  }
}

TEST(Config, RepeatedSectionDefaults) {
  auto c = Load("[[stream]]\nname = \"s\"\n[[uplink]]\nname = \"u\"\naddress = \"tcp://h:1\"\n");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->streams[0].max_age, 7 * 24h);
  EXPECT_EQ(c->streams[0].kind, StreamKind::kLog);
  EXPECT_EQ(c->streams[0].full_policy, FullPolicy::kDropOldest);
  EXPECT_EQ(c->uplinks[0].inflight, 32);
  EXPECT_EQ(c->uplinks[0].topic, "ferry/{gateway}/{stream}");
  EXPECT_EQ(c->uplinks[0].backoff.max, 60s);
  EXPECT_EQ(c->uplinks[0].mode, UplinkMode::kPerEvent);
}

TEST(Config, FullExample) {
  auto c = Load(kFull);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->gateway.id, "gw-7");
  EXPECT_EQ(c->storage.map_size, 512ull << 20);
  EXPECT_EQ(c->storage.commit.max_events, 2000);
  EXPECT_EQ(c->storage.commit.max_delay, 5ms);
  EXPECT_EQ(c->ingest.durability, Durability::kSync);
  EXPECT_EQ(c->ingest.max_payload, 65536u);
  EXPECT_EQ(c->ingest.dedupe_window, 90min);
  EXPECT_TRUE(c->ingest.tls.enabled);
  EXPECT_EQ(c->ingest.tls.ca_file, "/etc/ferry/ca.pem");
  EXPECT_EQ(c->log.level, ConfigLogLevel::kDebug);
  ASSERT_EQ(c->streams.size(), 3u);
  EXPECT_EQ(c->streams[0].max_bytes, 100ull << 20);
  EXPECT_EQ(c->streams[0].priority, 5);
  EXPECT_EQ(c->streams[1].kind, StreamKind::kTable);
  EXPECT_EQ(c->streams[1].full_policy, FullPolicy::kRejectNew);
  ASSERT_EQ(c->routes.size(), 2u);
  EXPECT_EQ(c->routes[0].dead_letter, "dead");
  EXPECT_EQ(c->routes[1].stream, "{kind}");
  ASSERT_EQ(c->uplinks.size(), 1u);
  const UplinkConfig& u = c->uplinks[0];
  EXPECT_EQ(u.mode, UplinkMode::kBatched);
  EXPECT_EQ(u.drain_order, DrainOrder::kNewestFirst);
  EXPECT_EQ(u.bytes_per_sec, 65536u);
  EXPECT_EQ(u.batch.max_events, 100);
  EXPECT_TRUE(u.tls.enabled);
  EXPECT_FALSE(u.tls.verify);
  EXPECT_EQ(u.streams, (std::vector<std::string>{"telemetry", "state"}));
  EXPECT_NE(c->FindStream("state"), nullptr);
  EXPECT_EQ(c->FindUplink("nope"), nullptr);
}

// Every error names the file, line and column, and the key.
struct BadCase {
  const char* text;
  const char* where;  // "ferry.toml:L:C"
  const char* key;
  const char* says;
};

class ConfigErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigErrors, NameFileLineAndKey) {
  const BadCase& bc = GetParam();
  auto c = Load(bc.text);
  ASSERT_FALSE(c) << bc.text;
  EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
  const std::string& m = c.error().message;
  EXPECT_EQ(m.rfind(bc.where, 0), 0u) << m;
  EXPECT_NE(m.find(bc.key), std::string::npos) << m;
  EXPECT_NE(m.find(bc.says), std::string::npos) << m;
}

INSTANTIATE_TEST_SUITE_P(
    All, ConfigErrors,
    ::testing::Values(
        BadCase{"[storage]\npath = \"/x\"\nbogus = 1\n", "ferry.toml:3:9", "storage.bogus", "unknown key"},
        BadCase{"[nope]\n", "ferry.toml:1:1", "nope", "unknown section"},
        BadCase{"top = 1\n", "ferry.toml:1:7", "top", "unknown section or key"},
        BadCase{"[storage]\nmap_size = true\n", "ferry.toml:2:12", "storage.map_size", "expected a size"},
        BadCase{"[storage]\nmap_size = \"12XB\"\n", "ferry.toml:2:12", "storage.map_size", "unknown unit"},
        BadCase{"[storage]\nmap_size = \"1KiB\"\n", "ferry.toml:2:12", "storage.map_size", "at least"},
        BadCase{"[storage]\ncommit.max_delay = \"10\"\n", "ferry.toml:2:20", "storage.commit.max_delay",
                "missing unit"},
        BadCase{"[storage]\ncommit.max_delay = 10\n", "ferry.toml:2:20", "storage.commit.max_delay",
                "expected a duration"},
        BadCase{"[storage]\ncommit.max_events = 0\n", "ferry.toml:2:21", "storage.commit.max_events",
                "between 1 and 1000000"},
        BadCase{"[storage]\ncommit.bogus = 0\n", "ferry.toml:2:16", "storage.commit.bogus", "unknown key"},
        BadCase{"[ingest]\ndurability = \"maybe\"\n", "ferry.toml:2:14", "ingest.durability",
                "not one of batch, sync"},
        BadCase{"[ingest]\naddress = \"localhost\"\n", "ferry.toml:2:11", "ingest.address", "broker URI"},
        BadCase{"[ingest]\nkeepalive = \"100ms\"\n", "ferry.toml:2:13", "ingest.keepalive", "between 1s"},
        BadCase{"[metrics]\nlisten = \"127.0.0.1\"\n", "ferry.toml:2:10", "metrics.listen", "host:port"},
        BadCase{"[log]\nlevel = 3\n", "ferry.toml:2:9", "log.level", "expected a string"},
        BadCase{"[stream]\nname = \"x\"\n", "ferry.toml:1:1", "stream", "[[stream]]"},
        BadCase{"[[stream]]\nkind = \"log\"\n", "ferry.toml:1:1", "stream[0].name", "required"},
        BadCase{"[[stream]]\nname = \"a b\"\n", "ferry.toml:2:8", "stream[0].name", "may contain only"},
        BadCase{"[[stream]]\nname = \"a\"\n[[stream]]\nname = \"a\"\n", "ferry.toml:4:8", "stream[1].name",
                "already declared"},
        BadCase{"[[stream]]\nname = \"a\"\n[[route]]\nfilter = \"t/#\"\nstream = \"b\"\n", "ferry.toml:5:10",
                "route[0].stream", "not declared"},
        BadCase{"[[stream]]\nname = \"a\"\n[[route]]\nfilter = \"t/{dev}\"\nstream = \"a\"\nsubject = \"{device}\"\n",
                "ferry.toml:6:11", "route[0].subject", "{device} is not captured"},
        BadCase{"[[route]]\nfilter = \"t/#/x\"\nstream = \"a\"\n", "ferry.toml:2:10", "route[0].filter",
                "must be the last level"},
        BadCase{"[[stream]]\nname = \"a\"\n[[route]]\nfilter = \"t/#\"\nstream = \"a\"\ndead_letter = \"dl\"\n",
                "ferry.toml:6:15", "route[0].dead_letter", "not declared"},
        BadCase{"[[uplink]]\nname = \"u\"\naddress = \"tcp://h:1\"\nstreams = [\"x\"]\n", "ferry.toml:4:11",
                "uplink[0].streams", "\"x\" is not declared"},
        BadCase{"[[uplink]]\nname = \"u\"\naddress = \"tcp://h:1\"\nstreams = \"x\"\n", "ferry.toml:4:11",
                "uplink[0].streams", "expected an array"},
        BadCase{"[[uplink]]\nname = \"u\"\naddress = \"k:9092\"\ntype = \"kafka\"\ntopic = \"a/{stream}\"\n",
                "ferry.toml:5:9", "uplink[0].topic", "not allowed in a Kafka topic"},
        BadCase{"[[uplink]]\nname = \"u\"\naddress = \"tcp://k:9092\"\ntype = \"kafka\"\ntopic = \"t\"\n",
                "ferry.toml:3:11", "uplink[0].address", "not a URI"},
        BadCase{"[[uplink]]\nname = \"u\"\naddress = \"k:9092\"\ntype = \"kafka\"\ntopic = \"t\"\n"
                "kafka.properties = [\"linger.ms\"]\n",
                "ferry.toml:6:20", "uplink[0].kafka.properties", "is not name=value"},
        BadCase{"[[uplink]]\nname = \"u\"\naddress = \"tcp://h:1\"\ntopic = \"x/{device}\"\n", "ferry.toml:4:9",
                "uplink[0].topic", "unknown placeholder"},
        BadCase{"[[uplink]]\nname = \"u\"\naddress = \"tcp://h:1\"\nbackoff.min = \"10s\"\nbackoff.max = \"1s\"\n",
                "ferry.toml:4:15", "uplink[0].backoff.min", "larger than"},
        BadCase{"[[uplink]]\nname = \"u\"\naddress = \"h:1\"\n", "ferry.toml:3:11", "uplink[0].address",
                "broker URI"},
        BadCase{"[ingest]\naddress = \"ssl://h:8883\"\n", "ferry.toml:2:11", "ingest.address",
                "is a TLS address, but ingest.tls.enabled is false"},
        BadCase{"[ingest]\naddress = \"tcp://h:1883\"\ntls.enabled = true\n", "ferry.toml:3:15",
                "ingest.tls.enabled", "is not a TLS address"},
        BadCase{"[[uplink]]\nname = \"u\"\naddress = \"mqtts://h:8883\"\n", "ferry.toml:3:11", "uplink[0].address",
                "is a TLS address"},
        BadCase{"[storage\n", "ferry.toml:1:", "", ""}));

TEST(Config, ParseDurationAndSize) {
  EXPECT_EQ(*ParseDuration("10ms"), 10ms);
  EXPECT_EQ(*ParseDuration("7d"), 7 * 24h);
  EXPECT_EQ(*ParseDuration("1h30m"), 90min);
  EXPECT_EQ(*ParseDuration("250us"), 250us);
  EXPECT_EQ(*ParseDuration("0"), 0ns);
  EXPECT_FALSE(ParseDuration(""));
  EXPECT_FALSE(ParseDuration("5"));
  EXPECT_FALSE(ParseDuration("-5s"));
  EXPECT_FALSE(ParseDuration("5 s"));
  EXPECT_FALSE(ParseDuration("5y"));
  EXPECT_FALSE(ParseDuration("99999999999999999999d"));
  EXPECT_FALSE(ParseDuration("300000d"));  // overflows int64 nanoseconds
  EXPECT_EQ(*ParseSize("512MiB"), 512ull << 20);
  EXPECT_EQ(*ParseSize("64kB"), 64000u);
  EXPECT_EQ(*ParseSize("1GB"), 1000000000u);
  EXPECT_EQ(*ParseSize("17"), 17u);
  EXPECT_EQ(*ParseSize("17B"), 17u);
  EXPECT_FALSE(ParseSize("MiB"));
  EXPECT_FALSE(ParseSize("1.5GiB"));
  EXPECT_FALSE(ParseSize("99999999999TiB"));
  EXPECT_EQ(FormatDuration(90min), "1h30m");
  EXPECT_EQ(FormatDuration(1500ms), "1500ms");
  EXPECT_EQ(FormatDuration(7 * 24h), "7d");
  EXPECT_EQ(FormatDuration(0ns), "0");
}

TEST(Config, FileErrors) {
  auto missing = LoadConfigFile("/nonexistent/ferry.toml");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  std::string path = ::testing::TempDir() + "/ferry_config_test.toml";
  {
    std::ofstream out(path);
    out << "[log]\nlevel = \"loud\"\n";
  }
  auto bad = LoadConfigFile(path);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message.rfind(path + ":2:9: log.level", 0), 0u) << bad.error().message;
}

TEST(Config, ReloadDiffSeparatesReloadFromRestart) {
  auto a = Load(kFull);
  ASSERT_TRUE(a);
  EXPECT_TRUE(ReloadDiff(*a, *a).empty());

  std::string text = kFull;
  auto replace = [&](const std::string& from, const std::string& to) {
    size_t p = text.find(from);
    ASSERT_NE(p, std::string::npos) << from;
    text.replace(p, from.size(), to);
  };
  replace("level = \"debug\"", "level = \"warn\"");
  replace("max_age = \"3d\"", "max_age = \"4d\"");
  replace("path = \"/data/ferry\"", "path = \"/data/ferry2\"");
  replace("name = \"dead\"", "name = \"dead\"\n[[stream]]\nname = \"extra\"");
  replace("bytes_per_sec = \"64KiB\"", "bytes_per_sec = \"128KiB\"");
  auto b = Load(text);
  ASSERT_TRUE(b) << b.error().message;
  ReloadPlan plan = ReloadDiff(*a, *b);
  EXPECT_EQ(plan.reload, (std::vector<std::string>{"log.level", "stream[telemetry].max_age",
                                                   "uplink[central].bytes_per_sec"}));
  EXPECT_EQ(plan.restart, (std::vector<std::string>{"storage.path", "stream[extra]"}));
  EXPECT_TRUE(plan.needs_restart());
}

TEST(Config, DocsContainTheGeneratedTable) {
  std::ifstream in(std::string(FERRY_SOURCE_DIR) + "/docs/config.md");
  ASSERT_TRUE(in) << "docs/config.md is missing";
  std::stringstream ss;
  ss << in.rdbuf();
  std::string generated = RenderConfigDocs();
  EXPECT_NE(ss.str().find(generated), std::string::npos)
      << "docs/config.md is out of date; paste this between the markers:\n"
      << generated;
}

TEST(Config, EveryKeyHasHelpAndEnumsHaveAllowedValues) {
  for (const auto& k : ConfigKeys()) {
    EXPECT_GT(std::string(k.help).size(), 5u) << KeyPath(k);
    EXPECT_EQ(k.type == KeyType::kEnum, k.allowed != nullptr) << KeyPath(k);
    bool known_section = false;
    for (const auto& s : ConfigSections()) known_section = known_section || std::string(s.name) == k.section;
    EXPECT_TRUE(known_section) << KeyPath(k);
  }
}

TEST(TopicPattern, CapturesAndSubscription) {
  auto p = TopicPattern::Compile("telemetry/{device}/#");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->subscription(), "telemetry/+/#");
  auto m = p->Match("telemetry/dev-1/temp/x");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, (TopicCaptures{{"device", "dev-1"}, {"topic", "telemetry/dev-1/temp/x"}}));
  EXPECT_TRUE(p->Match("telemetry/dev-1"));  // '#' also matches the parent level
  EXPECT_FALSE(p->Match("telemetry"));
  EXPECT_FALSE(p->Match("state/dev-1/x"));

  auto q = TopicPattern::Compile("site/{site}/+/{device}");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->subscription(), "site/+/+/+");
  auto mq = q->Match("site/s1/x/d9");
  ASSERT_TRUE(mq);
  EXPECT_EQ((*mq)[0], (std::pair<std::string, std::string>{"site", "s1"}));
  EXPECT_EQ((*mq)[1], (std::pair<std::string, std::string>{"device", "d9"}));
  EXPECT_FALSE(q->Match("site/s1/x/d9/more"));
  EXPECT_FALSE(q->Match("site/s1/x"));

  auto root = TopicPattern::Compile("#");
  ASSERT_TRUE(root);
  EXPECT_FALSE(root->Match("$SYS/broker"));
  EXPECT_TRUE(root->Match("a/b"));

  // Empty levels count as levels (MQTT 4.7.1.3): "a//b" has three, "a/" two.
  auto plus = TopicPattern::Compile("a/+/{last}");
  ASSERT_TRUE(plus);
  auto mp = plus->Match("a//b");
  ASSERT_TRUE(mp);
  EXPECT_EQ(*mp, (TopicCaptures{{"last", "b"}, {"topic", "a//b"}}));
  EXPECT_EQ(*plus->Match("a/x/"), (TopicCaptures{{"last", ""}, {"topic", "a/x/"}}));
  EXPECT_FALSE(plus->Match("a/"));
  EXPECT_FALSE(plus->Match("a/x/y/"));
  auto exact = TopicPattern::Compile("a/b");
  ASSERT_TRUE(exact);
  EXPECT_EQ(*exact->Match("a/b"), (TopicCaptures{{"topic", "a/b"}}));
  EXPECT_FALSE(exact->Match("a/b/"));
  EXPECT_FALSE(exact->Match("a"));
  EXPECT_FALSE(exact->Match(""));
  auto first = TopicPattern::Compile("{dev}");
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->Match("$SYS"));  // no leading wildcard matches a '$' topic
  EXPECT_EQ(*first->Match(""), (TopicCaptures{{"dev", ""}, {"topic", ""}}));

  EXPECT_FALSE(TopicPattern::Compile(""));
  EXPECT_FALSE(TopicPattern::Compile("a/#/b"));
  EXPECT_FALSE(TopicPattern::Compile("a/x{y}"));
  EXPECT_FALSE(TopicPattern::Compile("a/{1x}"));
  EXPECT_FALSE(TopicPattern::Compile("a/{d}/{d}"));
  EXPECT_FALSE(TopicPattern::Compile("a/{topic}"));
}

TEST(TopicPattern, ExpandTemplate) {
  TopicCaptures caps{{"device", "d1"}, {"site", "s"}};
  EXPECT_EQ(*ExpandTemplate("telemetry", caps), "telemetry");
  EXPECT_EQ(*ExpandTemplate("{site}-{device}", caps), "s-d1");
  EXPECT_EQ(*ExpandTemplate("{{lit}}", caps), "{lit}");
  EXPECT_FALSE(ExpandTemplate("{nope}", caps));
  EXPECT_FALSE(ExpandTemplate("{device", caps));
  EXPECT_FALSE(ExpandTemplate("a}b", caps));
  EXPECT_EQ(*TemplatePlaceholders("{a}/{b}/{a}"), (std::vector<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

// toml++ 3.3.0 hits TOML_UNREACHABLE on a non-ASCII character where a key continues, and recurses once per part
// of a dotted key (tests/fuzz/config/corpus/crash-toml-*): both are refused before it parses, with the place.
TEST(ConfigToml, InputThatCrashesTomlPlusPlusIsRefusedWithItsPlace) {
  auto nonascii = LoadConfigString("[storage]\npath = \"/var/lib/ferry\"\nm\xc3\xa4p_size = \"1GiB\"\n", "f.toml");
  ASSERT_FALSE(nonascii);
  EXPECT_EQ(nonascii.error().message.substr(0, 11), "f.toml:3:2:") << nonascii.error().message;
  EXPECT_NE(nonascii.error().message.find("non-ASCII character outside a string"), std::string::npos);

  std::string deep;
  for (int i = 0; i < 100'000; ++i) deep += "a.";
  auto dotted = LoadConfigString(deep + "a = 1\n", "f.toml");
  ASSERT_FALSE(dotted);
  EXPECT_NE(dotted.error().message.find("more than 64 parts"), std::string::npos) << dotted.error().message;
  auto header = LoadConfigString("[" + deep + "a]\n", "f.toml");
  ASSERT_FALSE(header);
  EXPECT_NE(header.error().message.find("more than 64 parts"), std::string::npos);

  // toml++ scans a bare value up to its terminator asking of each character whether it is whitespace, which
  // reaches TOML_UNREACHABLE for U+00A2 (the fuzzer's crash-toml-unreachable-more): quotes do not end the scan.
  for (const std::string bare : {"[x]\na = 8'on\xc2\xa2'\n", "[x]\na = [1, 8'\xc2\xa2']\n",
                                 "[x]\na = {b = 8\"\xc2\xa2\"}\n", "[x]\na = true\x01\xc2\xa2\n"}) {
    auto refused = LoadConfigString(bare, "f.toml");
    ASSERT_FALSE(refused) << bare;
    EXPECT_NE(refused.error().message.find("f.toml:2:"), std::string::npos) << refused.error().message;
    EXPECT_NE(refused.error().message.find("non-ASCII character in a bare value"), std::string::npos)
        << refused.error().message;
  }

  // After a line-ending backslash in a multi-line string toml++ asks of each character whether it is
  // whitespace, up to the first that is not: a non-ASCII one there reaches TOML_UNREACHABLE
  // (crash-toml-line-ending-backslash). An ASCII one, or an escape, first is fine.
  auto trimmed = LoadConfigString("[log]\nlevel = \"\"\"x \\  \n\n   \xc3\xbc\"\"\"\n", "f.toml");
  ASSERT_FALSE(trimmed);
  EXPECT_NE(trimmed.error().message.find("f.toml:4:4: a non-ASCII character right after a line-ending backslash"),
            std::string::npos)
      << trimmed.error().message;
  auto ascii_first = LoadConfigString("[log]\nlevel = \"\"\"x \\\n  \\u00FC\xc3\xbc\"\"\"\n", "f.toml");
  ASSERT_FALSE(ascii_first);  // not a log level, but toml++ read it
  EXPECT_EQ(ascii_first.error().message.find("non-ASCII"), std::string::npos) << ascii_first.error().message;

  auto escape = LoadConfigString("[log]\nlevel = \"\"\"x\\\xc2\xa0\n\"\"\"\n", "f.toml");
  ASSERT_FALSE(escape);
  EXPECT_NE(escape.error().message.find("backslash before a non-ASCII"), std::string::npos)
      << escape.error().message;
}

// What TOML allows is not refused: non-ASCII in strings and comments, quoted keys, dotted keys with spaces,
// floats and dates next to dots, multi-line strings with quotes and escapes.
TEST(ConfigToml, PrecheckLeavesValidTomlAlone) {
  auto cfg = LoadConfigString(R"(# Gäteway für den Maschinenraum ✓
[gateway]
id = "schiff"   # ümlaut
[ gateway . labels ]
"deck" = 'Maschinenraum "unten"'
"a.b" = """x""y\"ü
"""
note = '''
C:\ü '' '''
[gateway.more]
a = ["°C", 1,'ü', 2.5e+3]
b = { x = "é", y = 2, z = [ "ß" ,3 ] } # ä
c = 1979-05-27 07:32:00Z
d = [
  1, # ö
  "ø",
]
[[stream]]
name = "telemetry"
[ingest]
dedupe_window = "10m"
)", "f.toml");
  // Only the keys ferryd knows are accepted: the scan must have let every line through to toml++ and the
  // key table, which names the first unknown key.
  ASSERT_FALSE(cfg);
  EXPECT_NE(cfg.error().message.find("labels"), std::string::npos) << cfg.error().message;
  EXPECT_EQ(cfg.error().message.find("non-ASCII"), std::string::npos) << cfg.error().message;
  EXPECT_EQ(cfg.error().message.find("parts"), std::string::npos) << cfg.error().message;

  std::string chain = "a";
  for (int i = 1; i < 64; ++i) chain += ".a";
  auto at_limit = LoadConfigString("[x]\n" + chain + " = 1.5e+3\n", "f.toml");
  ASSERT_FALSE(at_limit);
  EXPECT_EQ(at_limit.error().message.find("parts"), std::string::npos) << at_limit.error().message;
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

// {topic} in an uplink topic is the topic the event arrived on (the tee). Pointed back at the broker ingest
// subscribes to, it would loop: refused with the reason.
TEST(ConfigUplinkTopic, TopicPlaceholderAndTheTeeLoop) {
  const std::string base = R"([gateway]
id = "gw"
[storage]
path = "/tmp/x"
[[stream]]
name = "t"
[[route]]
filter = "telemetry/#"
stream = "t"
)";
  auto tee = LoadConfigString(base + "[ingest]\nmode = \"listen\"\naddress = \"tcp://127.0.0.1:1884\"\n"
                                     "[[uplink]]\nname = \"tee\"\naddress = \"tcp://127.0.0.1:1884\"\ntopic = \"{topic}\"\n",
                              "f.toml");
  ASSERT_TRUE(tee) << tee.error().message;
  EXPECT_EQ(tee->uplinks[0].topic, "{topic}");
  for (const char* mode : {"subscribe", "both"}) {
    auto loop = LoadConfigString(base + "[ingest]\nmode = \"" + mode +
                                     "\"\naddress = \"tcp://127.0.0.1:1884\"\n[[uplink]]\nname = \"tee\"\n"
                                     "address = \"tcp://127.0.0.1:1884\"\ntopic = \"x/{topic}\"\n",
                                 "f.toml");
    ASSERT_FALSE(loop) << mode;
    EXPECT_NE(loop.error().message.find("every event would come back"), std::string::npos) << loop.error().message;
  }
  auto other = LoadConfigString(base + "[[uplink]]\nname = \"c\"\naddress = \"tcp://127.0.0.1:1\"\ntopic = \"{nope}\"\n",
                                "f.toml");
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().message.find("{gateway}, {stream}, {subject} or {topic}"), std::string::npos)
      << other.error().message;
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

// [[downlink]]: what a downlink's table must be, and where the errors point.
TEST(ConfigDownlink, TheTableMustBeADeclaredTableWithNoOtherWriter) {
  const std::string base = R"([storage]
path = "/tmp/x"
[[stream]]
name = "t"
[[stream]]
name = "assets"
kind = "table"
[[stream]]
name = "plain"
[[route]]
filter = "telemetry/#"
stream = "t"
)";
  auto dl = [](const std::string& table, const std::string& extra = "") {
    return "[[downlink]]\nname = \"registry\"\naddress = \"k1:9092,k2:9092\"\ntopic = \"central.assets\"\ntable = \"" +
           table + "\"\n" + extra;
  };
  auto ok = LoadConfigString(base + dl("assets"), "f.toml");
  ASSERT_TRUE(ok) << ok.error().message;
  ASSERT_EQ(ok->downlinks.size(), 1u);
  EXPECT_EQ(ok->downlinks[0].table, "assets");
  EXPECT_EQ(ok->downlinks[0].batch, 1000);
  struct Bad {
    std::string text, says;
  };
  for (const Bad& b : {Bad{dl("nowhere"), "downlink[0].table: stream \"nowhere\" is not declared"},
                       Bad{dl("plain"), "is not a table: declare it with kind = \"table\""},
                       Bad{dl("assets") + dl("assets"), "downlink[1].name: downlink \"registry\" is already declared"},
                       Bad{dl("assets") + "[[downlink]]\nname = \"two\"\naddress = \"k:1\"\ntopic = \"x\"\ntable = "
                                          "\"assets\"\n",
                           "is already the table of downlink[0]"},
                       Bad{dl("assets") + "[[route]]\nfilter = \"cfg/#\"\nstream = \"assets\"\n",
                           "also written by the route \"cfg/#\""},
                       Bad{"[[downlink]]\nname = \"r\"\naddress = \"kafka://k:9092\"\ntopic = \"x\"\ntable = \"assets\"\n",
                           "not a URI"},
                       Bad{"[[downlink]]\nname = \"r\"\naddress = \"k:9092\"\ntopic = \"a/b\"\ntable = \"assets\"\n",
                           "'/' is not allowed in a Kafka topic name"},
                       Bad{dl("assets", "kafka.properties = [\"fetch.wait.max.ms\"]\n"), "is not name=value"},
                       Bad{dl("assets", "backoff.min = \"2s\"\nbackoff.max = \"1s\"\n"), "is larger than backoff.max"},
                       Bad{dl("assets", "type = \"mqtt\"\n"), "downlink[0].address: must be a broker URI"},
                       Bad{dl("assets", "type = \"nats\"\n"), "not one of kafka"}}) {
    auto c = LoadConfigString(base + b.text, "f.toml");
    ASSERT_FALSE(c) << b.text;
    EXPECT_NE(c.error().message.find(b.says), std::string::npos) << c.error().message;
  }
}

// An MQTT downlink: a broker URI whose scheme agrees with tls.enabled, a topic filter with a wildcard; the row
// key is the topic's levels from the filter's first wildcard on.
TEST(ConfigDownlink, AnMqttSourceNeedsABrokerUriAndATopicFilterWithAWildcard) {
  const std::string base = "[[stream]]\nname = \"assets\"\nkind = \"table\"\n";
  auto dl = [](const std::string& address, const std::string& topic, const std::string& extra = "") {
    return "[[downlink]]\nname = \"registry\"\ntype = \"mqtt\"\naddress = \"" + address + "\"\ntopic = \"" + topic +
           "\"\ntable = \"assets\"\n" + extra;
  };
  auto ok = LoadConfigString(base + dl("tcp://central:1883", "central/assets/#"), "f.toml");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->downlinks[0].type, DownlinkType::kMqtt);
  EXPECT_EQ(ok->downlinks[0].session_expiry, std::chrono::hours(24 * 7));
  EXPECT_EQ(ok->downlinks[0].sync_quiet, std::chrono::seconds(2));
  EXPECT_EQ(ok->downlinks[0].max_row_bytes, 1024u * 1024u);
  struct Bad {
    std::string text, says;
  };
  for (const Bad& b : {Bad{dl("central:1883", "a/#"), "downlink[0].address: must be a broker URI"},
                       Bad{dl("ssl://central:8883", "a/#"), "is a TLS address, but downlink[0].tls.enabled is false"},
                       Bad{dl("tcp://c:1883", "central/assets"), "has no wildcard"},
                       Bad{dl("tcp://c:1883", "central/#/x"), "'#' must be the last level"},
                       Bad{dl("tcp://c:1883", "central/as+/x"), "must be a whole level"},
                       Bad{dl("tcp://c:1883", "a/#", "kafka.properties = [\"a=b\"]\n"), "this downlink's type is \"mqtt\""},
                       Bad{dl("tcp://c:1883", "a/#", "mqtt.sync_quiet = \"0s\"\n"), "mqtt.sync_quiet"}}) {
    auto c = LoadConfigString(base + b.text, "f.toml");
    ASSERT_FALSE(c) << b.text;
    EXPECT_NE(c.error().message.find(b.says), std::string::npos) << c.error().message;
  }
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

TEST(ConfigLookup, TheStepNeedsAFieldAKeyedTableAndADefaultWhenAsked) {
  const std::string base = R"([storage]
path = "/tmp/x"
[[stream]]
name = "t"
[[stream]]
name = "out"
[[stream]]
name = "assets"
kind = "table"
[[route]]
filter = "telemetry/#"
stream = "t"
[[pipeline]]
name = "enrich"
input = ["t"]
output = "out"
[[pipeline.step]]
type = "lookup"
)";
  auto ok = LoadConfigString(base + "field = \"device\"\ntable = \"assets\"\ninto = \"asset\"\n", "f.toml");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->pipelines[0].steps[0].missing, LookupMissing::kDeadLetter);
  struct Bad {
    std::string text, says;
  };
  for (const Bad& b : {Bad{"table = \"assets\"\ninto = \"a\"\n", "this step type needs `field`"},
                       Bad{"field = \"d\"\ninto = \"a\"\n", "this step type needs `table`"},
                       Bad{"field = \"d\"\ntable = \"assets\"\n", "this step type needs `into`"},
                       Bad{"field = \"d\"\ntable = \"t\"\ninto = \"a\"\n", "stream \"t\" is not a table"},
                       Bad{"field = \"d\"\ntable = \"nope\"\ninto = \"a\"\n", "stream \"nope\" is not declared"},
                       Bad{"field = \"d\"\ntable = \"assets\"\ninto = \"a\"\nmissing = \"default\"\n",
                           "this step type needs `value`"},
                       Bad{"field = \"d\"\ntable = \"assets\"\ninto = \"a\"\nmissing = \"ignore\"\n",
                           "not one of dead_letter, default, keep"}}) {
    auto c = LoadConfigString(base + b.text, "f.toml");
    ASSERT_FALSE(c) << b.text;
    EXPECT_NE(c.error().message.find(b.says), std::string::npos) << c.error().message;
  }
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

// toml++ 3.3 reaches TOML_UNREACHABLE on a Cyrillic letter where it checks for whitespace (the config fuzzer's
// find, tests/fuzz/ubsan_ignorelist.txt): ferryd must still answer with a syntax error naming the place.
TEST(Config, ANonAsciiLetterWhereWhitespaceMayBeIsASyntaxError) {
#ifdef __SANITIZE_ADDRESS__
  GTEST_SKIP() << "the sanitizer build stops at toml++'s own undefined behaviour here (gcc has no ignorelist)";
#endif
  auto a = LoadConfigString("comment = \"\"\"\"972\\\t\xd2\x8d\n", "f.toml");
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("f.toml:1:"), std::string::npos) << a.error().message;
  auto b = LoadConfigString("name = \xd2\x8d\n", "f.toml");
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message.find("non-ASCII character in a bare value"), std::string::npos) << b.error().message;
}

}  // namespace
}  // namespace ferry
