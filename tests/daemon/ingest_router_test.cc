#include "ferry/ingest_router.h"

#include <pthread.h>

#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

namespace ferry {
namespace {

constexpr TimeNs kT0{1'700'000'000'000'000'000};

Config TestConfig() {
  auto cfg = LoadConfigString(R"(
[gateway]
id = "gw1"
[ingest]
max_payload = "1KiB"
dedupe_window = "10m"
[[stream]]
name = "telemetry"
[[stream]]
name = "dead"
[[stream]]
name = "engine"
[[route]]
filter = "telemetry/{device}/{kind}"
stream = "telemetry"
subject = "{device}"
content_type = "application/json"
dead_letter = "dead"
id_json_field = "id"
id_user_property = "ce_id"
[[route]]
filter = "raw/{kind}/#"
stream = "{kind}"
content_type = "application/octet-stream"
)", "test.toml");
  EXPECT_TRUE(cfg.has_value()) << cfg.error().ToString();
  return *cfg;
}

std::string Header(const Event& e, std::string_view name) {
  for (const auto& [k, v] : e.headers)
    if (k == name) return v;
  return "<absent>";
}

TEST(IngestRouter, RoutesJsonWithSubjectAndDeviceId) {
  auto router = IngestRouter::Create(TestConfig());
  ASSERT_TRUE(router) << router.error().ToString();
  InboundMessage m;
  m.topic = "telemetry/dev-7/engine";
  m.payload = R"({"id":"dev-7/b1/000000001","temp":81.5})";
  m.user_properties = {{"site", "hold-2"}};
  auto d = router->Route(m, kT0);
  ASSERT_EQ(d.outcome, RouteOutcome::kStore) << d.detail;
  EXPECT_EQ(d.stream, "telemetry");
  EXPECT_EQ(d.event.subject, "dev-7");
  EXPECT_EQ(d.event.id, "dev-7/b1/000000001");
  EXPECT_EQ(d.event.source, "telemetry/dev-7/engine");
  EXPECT_EQ(d.event.datacontenttype, "application/json");
  EXPECT_EQ(Header(d.event, "site"), "hold-2");
  EXPECT_EQ(d.event.payload, m.payload);
  EXPECT_EQ(router->Subscriptions(), (std::vector<std::string>{"telemetry/+/+", "raw/+/#"}));
}

TEST(IngestRouter, UserPropertyIdWinsAndRedeliveryIsDropped) {
  auto router = IngestRouter::Create(TestConfig());
  ASSERT_TRUE(router);
  InboundMessage m;
  m.topic = "telemetry/dev-1/gps";
  m.payload = R"({"id":"json-id","lat":1})";
  m.user_properties = {{"ce_id", "prop-id"}};
  auto first = router->Route(m, kT0);
  ASSERT_EQ(first.outcome, RouteOutcome::kStore);
  EXPECT_EQ(first.event.id, "prop-id");
  EXPECT_EQ(Header(first.event, "ce_id"), "<absent>");  // consumed as the id, not kept as a header
  auto again = router->Route(m, TimeNs{kT0.ns + 1'000'000'000});
  EXPECT_EQ(again.outcome, RouteOutcome::kDuplicate);
  // The same id on another stream is a different event.
  InboundMessage raw;
  raw.topic = "raw/engine/x";
  raw.payload = "bytes";
  EXPECT_EQ(router->Route(raw, kT0).outcome, RouteOutcome::kStore);
}

TEST(IngestRouter, SeededIdsCatchRedeliveryAfterRestart) {
  auto router = IngestRouter::Create(TestConfig());
  ASSERT_TRUE(router);
  router->RememberId("telemetry", "dev-1/b1/000000005", kT0);
  InboundMessage m;
  m.topic = "telemetry/dev-1/gps";
  m.payload = R"({"id":"dev-1/b1/000000005"})";
  EXPECT_EQ(router->Route(m, kT0).outcome, RouteOutcome::kDuplicate);
}

TEST(IngestRouter, MalformedJsonGoesToDeadLetterWithReason) {
  auto router = IngestRouter::Create(TestConfig());
  ASSERT_TRUE(router);
  InboundMessage m;
  m.topic = "telemetry/dev-2/engine";
  m.payload = R"({"temp": 81.5,)";
  auto d = router->Route(m, kT0);
  ASSERT_EQ(d.outcome, RouteOutcome::kDeadLetter);
  EXPECT_EQ(d.stream, "dead");
  EXPECT_EQ(d.reason, RejectReason::kBadContent);
  EXPECT_EQ(Header(d.event, kDlqReasonHeader), "bad_content");
  EXPECT_NE(Header(d.event, kDlqDetailHeader).find("invalid JSON at offset"), std::string::npos);
  EXPECT_EQ(Header(d.event, kDlqTopicHeader), "telemetry/dev-2/engine");
  EXPECT_EQ(d.event.payload, m.payload);
}

// JSON whose strings do not decode to UTF-8 (a lone low-surrogate escape) or that holds a raw NUL is refused
// at the door with its reason, never stored to break a batch at the centre later.
TEST(IngestRouter, JsonThatCannotTravelIsDeadLettered) {
  auto router = IngestRouter::Create(TestConfig());
  ASSERT_TRUE(router);
  InboundMessage m;
  m.topic = "telemetry/dev-2/engine";
  const std::pair<std::string, std::string> cases[] = {
      {R"({"id":"a","s":"\udc00"})", "unpaired UTF-16 surrogate"},
      {R"({"id":"\udfff"})", "unpaired UTF-16 surrogate"},
      {R"({"\udc00":1})", "unpaired UTF-16 surrogate"},
      {std::string("{\"id\":\"a\"}\0{}", 13), "NUL byte"},
  };
  for (const auto& [payload, why] : cases) {
    m.payload = payload;
    auto d = router->Route(m, kT0);
    ASSERT_EQ(d.outcome, RouteOutcome::kDeadLetter) << payload;
    EXPECT_EQ(d.reason, RejectReason::kBadContent);
    EXPECT_NE(d.detail.find(why), std::string::npos) << d.detail;
    EXPECT_EQ(d.event.payload, payload);
  }
  // Numbers are checked for grammar but stored as sent, however rapidjson 1.1.0 would have converted them.
  const std::string crafted = "{\"id\":\"n1\",\"t\":1" + std::string(66, '0') + ".0000000010000184467e-404}";
  m.payload = crafted;
  auto d = router->Route(m, kT0);
  ASSERT_EQ(d.outcome, RouteOutcome::kStore) << d.detail;
  EXPECT_EQ(d.event.payload, m.payload);
  EXPECT_EQ(d.event.id, "n1");
  m.payload = R"({"id":"n2","t":01})";
  EXPECT_EQ(router->Route(m, kT0).reason, RejectReason::kBadContent);
}

// Runs fn on a thread with a 512 KiB stack: a parser that recursed per nesting level would overflow it.
void RunOnSmallStack(const std::function<void()>& fn) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 512 * 1024);
  pthread_t t;
  auto trampoline = [](void* p) -> void* {
    (*static_cast<const std::function<void()>*>(p))();
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&t, &attr, trampoline, const_cast<std::function<void()>*>(&fn)), 0);
  pthread_join(t, nullptr);
  pthread_attr_destroy(&attr);
}

// A device's nesting must not reach the parser's stack: 80,000 nested arrays once took ~150,000 recursive
// frames and SIGSEGV. Run on a small thread stack, as Paho's receive thread is, so a recursive parser fails here.
TEST(IngestRouter, DeepNestingIsDeadLetteredWithoutRecursion) {
  Config cfg = TestConfig();
  cfg.ingest.max_payload = 1 << 20;
  auto router = IngestRouter::Create(cfg);
  ASSERT_TRUE(router);
  std::string arrays = std::string(80'000, '[') + std::string(80'000, ']');
  std::string objects;
  for (int i = 0; i < 30'000; ++i) objects += "{\"a\":";
  objects += "1" + std::string(30'000, '}');
  std::string unclosed(200'000, '[');
  for (const std::string* payload : {&arrays, &objects, &unclosed}) {
    RouteDecision d;
    RunOnSmallStack([&] {
      InboundMessage m;
      m.topic = "telemetry/dev-9/engine";
      m.payload = *payload;
      d = router->Route(m, kT0);
    });
    ASSERT_EQ(d.outcome, RouteOutcome::kDeadLetter) << payload->substr(0, 20);
    EXPECT_EQ(d.reason, RejectReason::kTooDeep);
    EXPECT_EQ(Header(d.event, kDlqReasonHeader), "too_deep");
    EXPECT_NE(Header(d.event, kDlqDetailHeader).find("deeper than 64 levels"), std::string::npos)
        << Header(d.event, kDlqDetailHeader);
  }
}

TEST(IngestRouter, DepthLimitIsExactAndConfigurable) {
  auto nested = [](int depth) {
    std::string p = "{\"id\":\"x" + std::to_string(depth) + "\",\"v\":";
    p += std::string(static_cast<size_t>(depth - 1), '[') + "1" + std::string(static_cast<size_t>(depth - 1), ']');
    return p + "}";
  };
  for (int limit : {64, 3}) {
    Config cfg = TestConfig();
    cfg.ingest.max_payload = 1 << 20;
    cfg.ingest.max_json_depth = limit;
    auto router = IngestRouter::Create(cfg);
    ASSERT_TRUE(router);
    InboundMessage m;
    m.topic = "telemetry/dev-9/engine";
    std::string at = nested(limit), over = nested(limit + 1);
    m.payload = at;
    EXPECT_EQ(router->Route(m, kT0).outcome, RouteOutcome::kStore) << limit;
    m.payload = over;
    auto d = router->Route(m, kT0);
    EXPECT_EQ(d.outcome, RouteOutcome::kDeadLetter) << limit;
    EXPECT_EQ(d.reason, RejectReason::kTooDeep) << limit;
  }
}

// docs/metrics.md lists the dead-letter reasons; it must name exactly the ones the router emits.
TEST(IngestRouter, DocumentedDeadLetterReasonsAreTheEmittedOnes) {
  std::set<std::string> emitted;
  // Every reason but kNone and kNoRoute (no route: nowhere to dead-letter it, dropped and counted).
  for (int r = static_cast<int>(RejectReason::kBadTopic); r <= static_cast<int>(RejectReason::kPoison); ++r)
    emitted.insert(RejectReasonName(static_cast<RejectReason>(r)));
  std::ifstream in(std::string(FERRY_SOURCE_DIR) + "/docs/metrics.md");
  ASSERT_TRUE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string doc = ss.str();
  auto at = doc.find("- `ferry_stream_dead_lettered_total{reason}`");
  ASSERT_NE(at, std::string::npos);
  std::string item = doc.substr(at, doc.find("\n- ", at + 1) - at);
  item = item.substr(item.find(':') + 1);
  std::set<std::string> documented;
  std::regex code("`([a-z_]+)`");
  for (std::sregex_iterator it(item.begin(), item.end(), code), end; it != end; ++it) documented.insert((*it)[1]);
  EXPECT_EQ(documented, emitted);
}

// 12345 and "12345" must never be one id: ids are JSON strings; a number, object or array in the id member is
// dead-lettered (bad_event_id), as are ids and subjects that are too long or hold control characters.
TEST(IngestRouter, IdsAreStringsAndIdsAndSubjectsAreBounded) {
  auto router = IngestRouter::Create(TestConfig());
  ASSERT_TRUE(router);
  InboundMessage m;
  m.topic = "telemetry/dev-1/engine";
  m.payload = R"({"id":"12345","t":1})";
  EXPECT_EQ(router->Route(m, kT0).outcome, RouteOutcome::kStore);
  for (const char* bad : {R"({"id":12345,"t":1})", R"({"id":1.5})", R"({"id":null})", R"({"id":{"a":"b"}})",
                          R"({"id":["x"]})", R"({"id":true})"}) {
    m.payload = bad;
    auto d = router->Route(m, kT0);
    EXPECT_EQ(d.outcome, RouteOutcome::kDeadLetter) << bad;
    EXPECT_EQ(d.reason, RejectReason::kBadEventId) << bad;
  }
  // A nested "id" is not the id member: ignored.
  m.payload = R"({"x":{"id":7},"id":"nested-ok"})";
  auto nested = router->Route(m, kT0);
  EXPECT_EQ(nested.outcome, RouteOutcome::kStore);
  EXPECT_EQ(nested.event.id, "nested-ok");
  std::string with_nl = std::string(R"({"id":"a\nb"})");
  m.payload = with_nl;
  EXPECT_EQ(router->Route(m, kT0).reason, RejectReason::kBadEventId);
  std::string with_nul = std::string(R"({"id":"a\u0000b"})");
  m.payload = with_nul;
  EXPECT_EQ(router->Route(m, kT0).reason, RejectReason::kBadEventId);
  std::string long_id = "{\"id\":\"" + std::string(kMaxEventIdBytes + 1, 'x') + "\"}";
  m.payload = long_id;
  EXPECT_EQ(router->Route(m, kT0).reason, RejectReason::kBadEventId);
  std::string long_topic = "telemetry/" + std::string(60'000, 'd') + "/engine";
  m.topic = long_topic;
  m.payload = R"({"id":"ok-2"})";
  auto d = router->Route(m, kT0);
  EXPECT_EQ(d.outcome, RouteOutcome::kDeadLetter);
  EXPECT_EQ(d.reason, RejectReason::kBadSubject);
  EXPECT_LE(Header(d.event, kDlqTopicHeader).size(), 1024u);
  // Cut at a character boundary: a topic of 2-byte characters keeps whole characters only.
  std::string wide = "telemetry/";
  for (int i = 0; i < 600; ++i) wide += "\xc3\xa9";
  m.topic = wide;
  auto cut = router->Route(m, kT0);
  std::string kept = Header(cut.event, kDlqTopicHeader);
  ASSERT_LE(kept.size(), 1024u);
  EXPECT_EQ((kept.size() - 10) % 2, 0u) << "a character cut in half";
  std::string ctl_topic = std::string("telemetry/dev\x01x/engine");
  m.topic = ctl_topic;
  EXPECT_EQ(router->Route(m, kT0).reason, RejectReason::kBadSubject);
}

TEST(IngestRouter, OversizeKeepsAPrefixInDeadLetter) {
  auto router = IngestRouter::Create(TestConfig());
  ASSERT_TRUE(router);
  std::string big(5000, 'x');
  InboundMessage m;
  m.topic = "telemetry/dev-3/engine";
  m.payload = big;
  auto d = router->Route(m, kT0);
  ASSERT_EQ(d.outcome, RouteOutcome::kDeadLetter);
  EXPECT_EQ(d.reason, RejectReason::kOversize);
  EXPECT_EQ(d.event.payload.size(), kDlqPayloadPrefix);
  EXPECT_EQ(Header(d.event, kDlqSizeHeader), "5000");
}

TEST(IngestRouter, OddTopicsAreRejectedNotCrashed) {
  auto router = IngestRouter::Create(TestConfig());
  ASSERT_TRUE(router);
  InboundMessage m;
  m.payload = "{}";
  m.topic = "telemetry//engine";  // empty device level
  auto d = router->Route(m, kT0);
  EXPECT_EQ(d.outcome, RouteOutcome::kDeadLetter);
  EXPECT_EQ(d.reason, RejectReason::kBadTopic);
  m.topic = "raw/undeclared/x";  // templated stream that is not declared; route has no dead-letter stream
  d = router->Route(m, kT0);
  EXPECT_EQ(d.outcome, RouteOutcome::kDrop);
  EXPECT_EQ(d.reason, RejectReason::kUndeclaredStream);
  m.topic = "elsewhere";
  EXPECT_EQ(router->Route(m, kT0).reason, RejectReason::kNoRoute);
}

TEST(IngestRouter, TemplateNamingAnUncapturedLevelIsAConfigError) {
  Config cfg = TestConfig();
  cfg.routes[0].subject = "{site}";
  auto router = IngestRouter::Create(cfg);
  ASSERT_FALSE(router);
  EXPECT_NE(router.error().message.find("{site}"), std::string::npos);
}

TEST(IngestRouter, JsonContentTypes) {
  EXPECT_TRUE(IsJsonContentType("application/json"));
  EXPECT_TRUE(IsJsonContentType("application/json; charset=utf-8"));
  EXPECT_TRUE(IsJsonContentType("application/cloudevents+json"));
  EXPECT_FALSE(IsJsonContentType("application/octet-stream"));
  EXPECT_FALSE(IsJsonContentType(""));
}

// Issue 13 item 3: a route that names an id field the payloads do not carry ("eid" when they carry "id")
// stores the events without ids; each is flagged for ferry_ingest_missing_id_total, the first one per route
// with a line naming the route and the field.
TEST(IngestRouter, MissingDeviceIdIsFlaggedAndReportedOncePerRoute) {
  auto cfg = LoadConfigString(R"(
[[stream]]
name = "telemetry"
[[stream]]
name = "raw"
[[route]]
filter = "telemetry/{device}/#"
stream = "telemetry"
subject = "{device}"
content_type = "application/json"
id_json_field = "eid"
[[route]]
filter = "raw/#"
stream = "raw"
id_json_field = "id"
[[route]]
filter = "plain/#"
stream = "raw"
)", "t.toml");
  ASSERT_TRUE(cfg) << cfg.error().ToString();
  auto router = IngestRouter::Create(*cfg);
  ASSERT_TRUE(router) << router.error().ToString();
  InboundMessage m;
  m.topic = "telemetry/dev-1/x";
  m.payload = R"({"id":"dev-1/1","t":1})";
  RouteDecision d1 = router->Route(m, kT0);
  ASSERT_EQ(d1.outcome, RouteOutcome::kStore);
  EXPECT_EQ(d1.event.id, "");
  EXPECT_TRUE(d1.missing_id);
  EXPECT_TRUE(d1.report_missing_id);
  EXPECT_NE(d1.detail.find("route[0]"), std::string::npos) << d1.detail;
  EXPECT_NE(d1.detail.find("\"eid\""), std::string::npos) << d1.detail;
  EXPECT_NE(d1.detail.find("ferry_ingest_missing_id_total"), std::string::npos) << d1.detail;
  m.payload = R"({"id":"dev-1/2","t":2})";
  RouteDecision d2 = router->Route(m, kT0);
  EXPECT_TRUE(d2.missing_id);
  EXPECT_FALSE(d2.report_missing_id);  // one line per route
  // The field present: no flag.
  m.payload = R"({"eid":"dev-1/3"})";
  RouteDecision d3 = router->Route(m, kT0);
  EXPECT_EQ(d3.event.id, "dev-1/3");
  EXPECT_FALSE(d3.missing_id);
  // A JSON field on a route whose content type is not JSON is never read: said so.
  m.topic = "raw/a";
  m.payload = R"({"id":"x"})";
  RouteDecision d4 = router->Route(m, kT0);
  EXPECT_TRUE(d4.missing_id);
  EXPECT_TRUE(d4.report_missing_id);  // its own route's first
  EXPECT_NE(d4.detail.find("not JSON"), std::string::npos) << d4.detail;
  // A route that names no id: never flagged.
  m.topic = "plain/a";
  RouteDecision d5 = router->Route(m, kT0);
  EXPECT_EQ(d5.outcome, RouteOutcome::kStore);
  EXPECT_FALSE(d5.missing_id);
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

Config TimeConfig(const std::string& route_keys, const std::string& ingest_keys = "") {
  auto cfg = LoadConfigString("[gateway]\nid = \"gw1\"\n[ingest]\nmax_future_skew = \"5m\"\n" + ingest_keys +
                                  "[[stream]]\nname = \"t\"\n[[route]]\nfilter = \"telemetry/{device}/#\"\n"
                                  "stream = \"t\"\nsubject = \"{device}\"\ncontent_type = \"application/json\"\n" +
                                  route_keys,
                              "test.toml");
  EXPECT_TRUE(cfg.has_value()) << cfg.error().ToString();
  return *cfg;
}

// The producer's time becomes the event's time when it is plausible; otherwise the ingest time, flagged with
// the reason and the time as sent (issue 12: devices at 1970, a day ahead, or writing garbage).
TEST(IngestRouterTime, ProducerTimeIsReadCheckedAndFlagged) {
  auto router = IngestRouter::Create(TimeConfig("time_json_field = \"ts\"\ntime_format = \"unix_ms\"\n"));
  ASSERT_TRUE(router) << router.error().ToString();
  const TimeNs now{1'700'000'000'000'000'000};
  InboundMessage m;
  m.topic = "telemetry/dev-1/env";
  struct Case {
    std::string payload;
    TimeReplaced replaced;
    int64_t time_ns;  // when not replaced
  };
  const Case cases[] = {
      {R"({"ts":1699999999123,"t":1})", TimeReplaced::kNo, 1'699'999'999'123'000'000},
      {R"({"ts":"1699999999123"})", TimeReplaced::kNo, 1'699'999'999'123'000'000},  // a numeric string
      {R"({"ts":1699999999123.456789})", TimeReplaced::kNo, 1'699'999'999'123'456'789},
      {R"({"ts":1700000299999})", TimeReplaced::kNo, 1'700'000'299'999'000'000},  // just inside the skew
      {R"({"ts":1700000300001})", TimeReplaced::kFuture, 0},
      {R"({"ts":86400000})", TimeReplaced::kBeforeFloor, 0},  // a device that booted at 1970
      {R"({"ts":-5})", TimeReplaced::kBeforeFloor, 0},
      {R"({"ts":"yesterday"})", TimeReplaced::kUnreadable, 0},
      {R"({"ts":1.7e12})", TimeReplaced::kUnreadable, 0},  // no exponents
      {R"({"ts":99999999999999999999999})", TimeReplaced::kUnreadable, 0},
      {R"({"ts":{"ms":1}})", TimeReplaced::kUnreadable, 0},
      {R"({"ts":1699999999123,"ts":"x"})", TimeReplaced::kUnreadable, 0},  // two kinds: ambiguous
      {R"({"t":1})", TimeReplaced::kNo, 0},  // no time: none stored
  };
  for (const Case& c : cases) {
    m.payload = c.payload;
    auto d = router->Route(m, now);
    ASSERT_EQ(d.outcome, RouteOutcome::kStore) << c.payload << ": " << d.detail;
    EXPECT_EQ(d.time_replaced, c.replaced) << c.payload;
    if (c.replaced == TimeReplaced::kNo) {
      EXPECT_EQ(d.event.time.ns, c.time_ns) << c.payload;
      EXPECT_EQ(Header(d.event, kTimeReplacedHeader), "<absent>") << c.payload;
    } else {
      EXPECT_EQ(d.event.time.ns, now.ns) << c.payload;
      EXPECT_EQ(Header(d.event, kTimeReplacedHeader), TimeReplacedName(c.replaced)) << c.payload;
      EXPECT_NE(Header(d.event, kTimeOriginalHeader), "<absent>") << c.payload;
    }
  }
  m.payload = R"({"ts":86400000})";
  EXPECT_EQ(Header(router->Route(m, now).event, kTimeOriginalHeader), "86400000");
  m.payload = R"({"ts":[1]})";
  EXPECT_EQ(Header(router->Route(m, now).event, kTimeOriginalHeader), "(not a string or number)");
}

TEST(IngestRouterTime, UserPropertyFirstAndEveryFormat) {
  auto router = IngestRouter::Create(
      TimeConfig("time_json_field = \"ts\"\ntime_user_property = \"time\"\n", "time_floor = \"2001-01-01T00:00:00Z\"\n"));
  ASSERT_TRUE(router);
  const TimeNs now{1'700'000'000'000'000'000};
  InboundMessage m;
  m.topic = "telemetry/dev-1/env";
  m.payload = R"({"ts":"2023-11-14T22:00:00Z"})";
  m.user_properties = {{"time", "2023-11-14T22:13:20.5+00:00"}};
  auto d = router->Route(m, now);
  EXPECT_EQ(d.event.time.ns, 1'700'000'000'500'000'000);  // the property wins
  m.user_properties.clear();
  EXPECT_EQ(router->Route(m, now).event.time.ns, 1'699'999'200'000'000'000);
  m.payload = R"({"ts":"2000-12-31T23:59:59Z"})";  // before this config's floor
  EXPECT_EQ(router->Route(m, now).time_replaced, TimeReplaced::kBeforeFloor);
  m.payload = R"({"ts":1699999999})";  // a number is no RFC 3339 time
  EXPECT_EQ(router->Route(m, now).time_replaced, TimeReplaced::kUnreadable);

  const std::pair<const char*, int64_t> units[] = {
      {"unix_s", 1'000'000'000}, {"unix_ms", 1'000'000}, {"unix_us", 1'000}, {"unix_ns", 1}};
  for (const auto& [format, unit] : units) {
    auto r = IngestRouter::Create(TimeConfig(std::string("time_json_field = \"ts\"\ntime_format = \"") + format + "\"\n"));
    ASSERT_TRUE(r);
    const std::string payload = "{\"ts\":" + std::to_string(1'699'999'999'000'000'000 / unit) + "}";
    m.payload = payload;  // a view: the string must outlive the Route call
    EXPECT_EQ(r->Route(m, now).event.time.ns, 1'699'999'999'000'000'000) << format;
  }
  auto bad = LoadConfigString("[ingest]\ntime_floor = \"last year\"\n[[stream]]\nname = \"t\"\n", "x.toml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("ingest.time_floor"), std::string::npos) << bad.error().message;
}

}  // namespace
}  // namespace ferry
