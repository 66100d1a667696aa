#include "telemetry/exposition.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "telemetry/process_metrics.h"

namespace prescale::telemetry {
namespace {

using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

FamilySnapshot gauge_with_values(const std::vector<double>& values) {
  FamilySnapshot f{"v", "", MetricType::kGauge, {"i"}, {}};
  for (size_t i = 0; i < values.size(); ++i) {
    f.series.push_back(SeriesSnapshot{{std::string(1, static_cast<char>('a' + i))}, values[i], {}});
  }
  return f;
}

TEST(Exposition, ContentTypeIsTextFormat004) {
  EXPECT_EQ(kTextContentType, "text/plain; version=0.0.4; charset=utf-8");
}

TEST(Exposition, GoldenRegistry) {
  Registry r;
  CounterFamily& requests =
      r.counter("prescale_requests_total", "Requests handled.", {"service", "route", "code"});
  requests.with({"echo", "/echo", "200"}).inc(3);
  requests.with({"echo", "/echo", "500"}).inc();
  requests.with({"api", "/a", "200"}).inc(2.5);
  r.gauge("prescale_inflight_requests", "Requests being handled now.", {"service"})
      .with({"echo"})
      .set(2);
  Histogram& latency = r.histogram("prescale_request_duration_seconds", "Request latency.",
                                   {"service"}, {0.005, 0.01, 0.1, 1, 2.5})
                           .with({"echo"});
  latency.observe(0.003);
  latency.observe(0.005);
  latency.observe(0.05);
  latency.observe(3);
  r.counter("prescale_restarts_total", "Restarts.");

  EXPECT_EQ(expose(r),
            "# HELP prescale_inflight_requests Requests being handled now.\n"
            "# TYPE prescale_inflight_requests gauge\n"
            "prescale_inflight_requests{service=\"echo\"} 2\n"
            "# HELP prescale_request_duration_seconds Request latency.\n"
            "# TYPE prescale_request_duration_seconds histogram\n"
            "prescale_request_duration_seconds_bucket{service=\"echo\",le=\"0.005\"} 2\n"
            "prescale_request_duration_seconds_bucket{service=\"echo\",le=\"0.01\"} 2\n"
            "prescale_request_duration_seconds_bucket{service=\"echo\",le=\"0.1\"} 3\n"
            "prescale_request_duration_seconds_bucket{service=\"echo\",le=\"1\"} 3\n"
            "prescale_request_duration_seconds_bucket{service=\"echo\",le=\"2.5\"} 3\n"
            "prescale_request_duration_seconds_bucket{service=\"echo\",le=\"+Inf\"} 4\n"
            "prescale_request_duration_seconds_sum{service=\"echo\"} 3.058\n"
            "prescale_request_duration_seconds_count{service=\"echo\"} 4\n"
            "# HELP prescale_requests_total Requests handled.\n"
            "# TYPE prescale_requests_total counter\n"
            "prescale_requests_total{service=\"api\",route=\"/a\",code=\"200\"} 2.5\n"
            "prescale_requests_total{service=\"echo\",route=\"/echo\",code=\"200\"} 3\n"
            "prescale_requests_total{service=\"echo\",route=\"/echo\",code=\"500\"} 1\n"
            "# HELP prescale_restarts_total Restarts.\n"
            "# TYPE prescale_restarts_total counter\n"
            "prescale_restarts_total 0\n");
}

TEST(Exposition, GoldenHistogramWithoutLabels) {
  Registry r;
  Histogram& h = r.histogram("job_seconds", "Job time.", {}, {1, 2}).with();
  h.observe(0.5);
  h.observe(4);
  EXPECT_EQ(expose(r),
            "# HELP job_seconds Job time.\n"
            "# TYPE job_seconds histogram\n"
            "job_seconds_bucket{le=\"1\"} 1\n"
            "job_seconds_bucket{le=\"2\"} 1\n"
            "job_seconds_bucket{le=\"+Inf\"} 2\n"
            "job_seconds_sum 4.5\n"
            "job_seconds_count 2\n");
}

TEST(Exposition, EmptyRegistryIsEmptyText) {
  Registry r;
  EXPECT_EQ(expose(r), "");
}

TEST(Exposition, LeavesOutFamiliesWithoutSeries) {
  Registry r;
  CounterFamily& calls = r.counter("calls_total", "Calls.", {"callee"});
  EXPECT_EQ(expose(r), "");
  calls.with({"b"});
  EXPECT_EQ(expose(r),
            "# HELP calls_total Calls.\n# TYPE calls_total counter\ncalls_total{callee=\"b\"} 0\n");
}

TEST(Exposition, EscapesHelpAndLabelValues) {
  Registry r;
  r.gauge("g", "Line one\nback\\slash \"quoted\"", {"path"}).with({"C:\\dir\n\"name\""}).set(1);
  EXPECT_EQ(expose(r),
            "# HELP g Line one\\nback\\\\slash \"quoted\"\n"
            "# TYPE g gauge\n"
            "g{path=\"C:\\\\dir\\n\\\"name\\\"\"} 1\n");
}

TEST(Exposition, KeepsUtf8AndReplacesInvalidBytesInLabelValues) {
  Registry r;
  GaugeFamily& g = r.gauge("g", "G.", {"v"});
  g.with({"caf\xC3\xA9 \xE2\x82\xAC"}).set(1);
  g.with({"bad\xFF"}).set(2);
  EXPECT_EQ(expose(r),
            "# HELP g G.\n"
            "# TYPE g gauge\n"
            "g{v=\"bad\xEF\xBF\xBD\"} 2\n"
            "g{v=\"caf\xC3\xA9 \xE2\x82\xAC\"} 1\n");
}

TEST(Exposition, FormatsValuesAsIntegersOrShortestRoundTrip) {
  std::vector<FamilySnapshot> families = {
      gauge_with_values({3, -2, -0.0, 2.5, 0.1 + 0.2, 1234567, 1e20, 1.5e-7, 0.0001, 0.00001,
                         123456.5, 1234567.5, 9007199254740992.0, kNaN, kInf, -kInf})};
  EXPECT_EQ(expose(families),
            "# TYPE v gauge\n"
            "v{i=\"a\"} 3\n"
            "v{i=\"b\"} -2\n"
            "v{i=\"c\"} 0\n"
            "v{i=\"d\"} 2.5\n"
            "v{i=\"e\"} 0.30000000000000004\n"
            "v{i=\"f\"} 1234567\n"
            "v{i=\"g\"} 1e+20\n"
            "v{i=\"h\"} 1.5e-07\n"
            "v{i=\"i\"} 0.0001\n"
            "v{i=\"j\"} 1e-05\n"
            "v{i=\"k\"} 123456.5\n"
            "v{i=\"l\"} 1.2345675e+06\n"
            "v{i=\"m\"} 9.007199254740992e+15\n"
            "v{i=\"n\"} NaN\n"
            "v{i=\"o\"} +Inf\n"
            "v{i=\"p\"} -Inf\n");
}

TEST(Exposition, FormatsLeLikeTheGoClient) {
  Registry r;
  r.histogram("h", "H.", {}, {0.0005, 0.005, 1, 2.5, 100000, 1e6, 1.5e7});
  std::string text = expose(r);
  for (const char* le : {"0.0005", "0.005", "1", "2.5", "100000", "1e+06", "1.5e+07", "+Inf"}) {
    EXPECT_THAT(text, HasSubstr(std::string("h_bucket{le=\"") + le + "\"} 0\n")) << le;
  }
}

TEST(Exposition, CollectedFamiliesAreMergedInNameOrder) {
  Registry r;
  r.counter("b_total", "B.").with().inc();
  r.add_collector([](std::vector<FamilySnapshot>& out) {
    out.push_back(FamilySnapshot{"a", "A.", MetricType::kUntyped, {}, {{{}, 1.5, {}}}});
    out.push_back(FamilySnapshot{"c", "C.", MetricType::kGauge, {}, {{{}, 7, {}}}});
  });
  EXPECT_EQ(expose(r),
            "# HELP a A.\n# TYPE a untyped\na 1.5\n"
            "# HELP b_total B.\n# TYPE b_total counter\nb_total 1\n"
            "# HELP c C.\n# TYPE c gauge\nc 7\n");
}

// promtool's linter is the reference checker: the text must parse and follow the naming rules.
TEST(ExpositionPromtool, CheckMetricsAcceptsARegistryWithProcessMetrics) {
  const char* promtool = "/usr/bin/promtool";
  if (::access(promtool, X_OK) != 0) GTEST_SKIP() << promtool << " is not installed";

  Registry r;
  r.counter("prescale_requests_total", "Requests handled.", {"service", "route", "code"})
      .with({"echo", "/echo", "200"})
      .inc(5);
  r.gauge("prescale_inflight_requests", "Requests being handled now.", {"service"})
      .with({"echo"})
      .set(1);
  Histogram& h =
      r.histogram("prescale_request_duration_seconds", "Request latency.", {"service", "route"})
          .with({"echo", "/echo \"quoted\"\n"});
  h.observe(0.004);
  h.observe(0.2);
  register_process_metrics(r);
  std::string text = expose(r);

  std::string path =
      ::testing::TempDir() + "exposition_promtool_" + std::to_string(::getpid()) + ".txt";
  std::ofstream(path) << text;
  std::string command = std::string(promtool) + " check metrics < " + path + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
  int status = ::pclose(pipe);
  std::remove(path.c_str());

  ASSERT_TRUE(WIFEXITED(status)) << output;
  EXPECT_EQ(WEXITSTATUS(status), 0) << output << "\n---\n" << text;
  EXPECT_EQ(output, "") << text;
  EXPECT_THAT(text, HasSubstr("# TYPE process_cpu_seconds_total counter\n"));
}

}  // namespace
}  // namespace prescale::telemetry
