#include "ferry/metrics.h"

#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(Metrics, RendersCountersGaugesAndCallbacks) {
  MetricsRegistry r;
  Counter& a = r.GetCounter("ferry_stream_ingested_total", "Events in.", {{"stream", "telemetry"}});
  Counter& b = r.GetCounter("ferry_stream_ingested_total", "Events in.", {{"stream", "state"}});
  a.Inc(3);
  b.Inc();
  EXPECT_EQ(&a, &r.GetCounter("ferry_stream_ingested_total", "Events in.", {{"stream", "telemetry"}}));
  r.GetGauge("ferry_uplink_link_up", "Link.", {{"uplink", "central"}}).Set(1);
  r.AddCallbackGauge("ferry_storage_map_used_bytes", "Used.", {}, [] { return 4096.0; });
  r.AddCollector("ferry_uplink_backlog_events", "Backlog.", MetricType::kGauge, [](std::vector<Sample>& out) {
    out.push_back({{{"uplink", "central"}, {"stream", "telemetry"}}, 12});
  });
  EXPECT_EQ(r.Render(),
            "# HELP ferry_storage_map_used_bytes Used.\n"
            "# TYPE ferry_storage_map_used_bytes gauge\n"
            "ferry_storage_map_used_bytes 4096\n"
            "# HELP ferry_stream_ingested_total Events in.\n"
            "# TYPE ferry_stream_ingested_total counter\n"
            "ferry_stream_ingested_total{stream=\"state\"} 1\n"
            "ferry_stream_ingested_total{stream=\"telemetry\"} 3\n"
            "# HELP ferry_uplink_backlog_events Backlog.\n"
            "# TYPE ferry_uplink_backlog_events gauge\n"
            "ferry_uplink_backlog_events{uplink=\"central\",stream=\"telemetry\"} 12\n"
            "# HELP ferry_uplink_link_up Link.\n"
            "# TYPE ferry_uplink_link_up gauge\n"
            "ferry_uplink_link_up{uplink=\"central\"} 1\n");
}

TEST(Metrics, Histogram) {
  MetricsRegistry r;
  Histogram& h = r.GetHistogram("ferry_storage_commit_seconds", "Commit latency.", {0.001, 0.01, 0.1});
  h.Observe(0.0005);
  h.Observe(0.001);  // le is inclusive
  h.Observe(0.05);
  h.ObserveNs(2'000'000'000);
  EXPECT_EQ(h.Count(), 4u);
  EXPECT_EQ(r.Render(),
            "# HELP ferry_storage_commit_seconds Commit latency.\n"
            "# TYPE ferry_storage_commit_seconds histogram\n"
            "ferry_storage_commit_seconds_bucket{le=\"0.001\"} 2\n"
            "ferry_storage_commit_seconds_bucket{le=\"0.01\"} 2\n"
            "ferry_storage_commit_seconds_bucket{le=\"0.1\"} 3\n"
            "ferry_storage_commit_seconds_bucket{le=\"+Inf\"} 4\n"
            "ferry_storage_commit_seconds_sum 2.0515\n"
            "ferry_storage_commit_seconds_count 4\n");
}

TEST(Metrics, Escaping) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(FormatMetricValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatMetricValue(0.1), "0.1");
  EXPECT_EQ(FormatMetricValue(1e21), "1e+21");
  MetricsRegistry r;
  r.GetCounter("x_total", "Line one\nback\\slash", {{"path", "a\"b"}}).Inc();
  EXPECT_EQ(r.Render(), "# HELP x_total Line one\\nback\\\\slash\n# TYPE x_total counter\nx_total{path=\"a\\\"b\"} 1\n");
}

// Issue 13 item 11: counts that reach the text as doubles (collectors, callback gauges) print as integers.
TEST(Metrics, WholeNumbersPrintAsIntegers) {
  EXPECT_EQ(FormatMetricValue(100000.0), "100000");
  EXPECT_EQ(FormatMetricValue(1e6), "1000000");
  EXPECT_EQ(FormatMetricValue(-250000.0), "-250000");
  EXPECT_EQ(FormatMetricValue(0.0), "0");
  EXPECT_EQ(FormatMetricValue(9007199254740992.0), "9007199254740992");  // 2^53, the last exact one
  EXPECT_EQ(FormatMetricValue(2.5e-4), "0.00025");
  EXPECT_EQ(FormatMetricValue(123456.5), "123456.5");
  MetricsRegistry r;
  r.AddCollector("big_total", "b", MetricType::kCounter, [](std::vector<Sample>& out) { out.push_back({{}, 1e5}); });
  r.AddCallbackGauge("bytes", "b", {}, [] { return 3e9; });
  std::string text = r.Render();
  EXPECT_NE(text.find("big_total 100000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("bytes 3000000000\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("e+"), std::string::npos) << text;
}

TEST(Metrics, CountersAreSafeAcrossThreads) {
  MetricsRegistry r;
  Counter& c = r.GetCounter("c_total", "c");
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) c.Inc();
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(c.Value(), 40000u);
}

TEST(MetricsDeathTest, TypeMismatchAborts) {
  MetricsRegistry r;
  r.GetCounter("m", "m");
  EXPECT_DEATH(r.GetGauge("m", "m"), "two types");
  EXPECT_DEATH(r.GetCounter("bad name", "m"), "bad metric name");
}

TEST(Metrics, CommitBucketsAscend) {
  const auto& b = CommitLatencyBuckets();
  for (size_t i = 1; i < b.size(); ++i) EXPECT_LT(b[i - 1], b[i]);
}

TEST(Metrics, DocsListEveryDeclaredMetric) {
  std::ifstream in(std::string(FERRY_SOURCE_DIR) + "/docs/metrics.md");
  ASSERT_TRUE(in) << "docs/metrics.md is missing";
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  // The table is the declarations, row for row: name, type, labels and help as /metrics prints them.
  std::string table;
  for (const auto& d : FerryMetricDecls()) {
    std::string labels;
    for (std::string_view rest = d.labels; !rest.empty();) {
      auto comma = rest.find(',');
      labels += (labels.empty() ? "`" : ", `") + std::string(rest.substr(0, comma)) + "`";
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
    const char* type = d.type == MetricType::kCounter ? "counter" : d.type == MetricType::kGauge ? "gauge" : "histogram";
    table += "| `" + std::string(d.name) + "` | " + type + " | " + (labels.empty() ? "—" : labels) + " | " + d.help + " |\n";
  }
  EXPECT_NE(doc.find(table), std::string::npos) << "docs/metrics.md's table differs; it must read:\n" << table;
  for (const auto& d : FerryMetricDecls()) {
    EXPECT_NE(doc.find(std::string("`") + d.name + "`"), std::string::npos) << d.name << " is not in docs/metrics.md";
    // Every declaration registers cleanly.
    MetricsRegistry r;
    if (d.type == MetricType::kHistogram) {
      r.GetHistogram(d.name, d.help, CommitLatencyBuckets());
    } else if (d.type == MetricType::kCounter) {
      r.GetCounter(d.name, d.help);
    } else {
      r.GetGauge(d.name, d.help);
    }
  }
  EXPECT_STREQ(FerryMetric("ferry_uplink_link_up").labels, "uplink");
}

}  // namespace
}  // namespace ferry
