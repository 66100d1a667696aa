#include "telemetry/text_parser.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "telemetry/exposition.h"

namespace prescale::telemetry {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<ParsedFamily> parse_ok(std::string_view text) {
  auto parsed = parse_text(text);
  EXPECT_TRUE(parsed.has_value()) << parsed.error().to_string();
  return parsed ? *parsed : std::vector<ParsedFamily>{};
}

std::string parse_error(std::string_view text) {
  auto parsed = parse_text(text);
  if (parsed) return "(parsed without error)";
  EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
  return parsed.error().message;
}

TEST(TextParser, ParsesCountersGaugesAndHelp) {
  auto families = parse_ok(
      "# HELP prescale_requests_total Requests handled.\n"
      "# TYPE prescale_requests_total counter\n"
      "prescale_requests_total{service=\"echo\",route=\"/echo\",code=\"200\"} 1027\n"
      "prescale_requests_total{service=\"echo\",route=\"/echo\",code=\"500\"} 3 1700000000000\n"
      "# TYPE prescale_inflight_requests gauge\n"
      "prescale_inflight_requests{service=\"echo\"} -2.5e-1\n");
  ASSERT_EQ(families.size(), 2u);
  const ParsedFamily& requests = families[0];
  EXPECT_EQ(requests.name, "prescale_requests_total");
  EXPECT_EQ(requests.help, "Requests handled.");
  EXPECT_EQ(requests.type, MetricType::kCounter);
  ASSERT_EQ(requests.samples.size(), 2u);
  EXPECT_EQ(requests.samples[0].name, "prescale_requests_total");
  EXPECT_THAT(requests.samples[0].labels,
              ElementsAre(Pair("service", "echo"), Pair("route", "/echo"), Pair("code", "200")));
  EXPECT_EQ(requests.samples[0].value, 1027);
  EXPECT_FALSE(requests.samples[0].timestamp_ms.has_value());
  EXPECT_EQ(requests.samples[1].timestamp_ms, 1700000000000);
  EXPECT_EQ(families[1].type, MetricType::kGauge);
  EXPECT_EQ(families[1].help, "");
  EXPECT_EQ(families[1].samples[0].value, -0.25);
}

TEST(TextParser, GroupsHistogramAndSummarySamplesUnderTheirFamily) {
  auto families = parse_ok(
      "# TYPE lat_seconds histogram\n"
      "lat_seconds_bucket{le=\"0.1\"} 1\n"
      "lat_seconds_bucket{le=\"+Inf\"} 2\n"
      "lat_seconds_sum 0.35\n"
      "lat_seconds_count 2\n"
      "# TYPE rpc_seconds summary\n"
      "rpc_seconds{quantile=\"0.99\"} 0.2\n"
      "rpc_seconds_sum 12\n"
      "rpc_seconds_count 100\n"
      "lat_seconds_total 4\n");
  ASSERT_EQ(families.size(), 3u);
  EXPECT_EQ(families[0].name, "lat_seconds");
  EXPECT_EQ(families[0].type, MetricType::kHistogram);
  ASSERT_EQ(families[0].samples.size(), 4u);
  EXPECT_EQ(families[0].samples[1].name, "lat_seconds_bucket");
  EXPECT_THAT(families[0].samples[1].labels, ElementsAre(Pair("le", "+Inf")));
  EXPECT_EQ(families[0].samples[3].name, "lat_seconds_count");
  EXPECT_EQ(families[1].name, "rpc_seconds");
  EXPECT_EQ(families[1].type, MetricType::kSummary);
  EXPECT_EQ(families[1].samples.size(), 3u);
  // Not a histogram suffix: a family of its own.
  EXPECT_EQ(families[2].name, "lat_seconds_total");
  EXPECT_EQ(families[2].type, MetricType::kUntyped);
}

TEST(TextParser, SamplesWithoutTypeAreUntypedFamilies) {
  auto families = parse_ok("x_bucket{le=\"1\"} 1\nx_sum 3\nx 2\n");
  ASSERT_EQ(families.size(), 3u);
  for (const ParsedFamily& f : families) EXPECT_EQ(f.type, MetricType::kUntyped);
  EXPECT_EQ(families[2].name, "x");
}

TEST(TextParser, ToleratesBlanksCommentsAndOptionalSyntax) {
  auto families = parse_ok(
      "\n"
      "   \t\n"
      "# just a comment\n"
      "#no space comment\n"
      "#\n"
      "# HELP\n"
      "# TYPE x\n"
      "  #  HELP   x \t Help with  spaces \n"
      "#\tTYPE\tx\tgauge \t\n"
      "\tx { a = \"1\" ,\tb=\"2\", } \t 7 \t 123 \t\n"
      "x{} 8\n"
      "x{a=\"3\"}9\n"
      "x 10");  // no final newline
  ASSERT_EQ(families.size(), 1u);
  const ParsedFamily& x = families[0];
  EXPECT_EQ(x.help, "Help with  spaces ");
  EXPECT_EQ(x.type, MetricType::kGauge);
  ASSERT_EQ(x.samples.size(), 4u);
  EXPECT_THAT(x.samples[0].labels, ElementsAre(Pair("a", "1"), Pair("b", "2")));
  EXPECT_EQ(x.samples[0].value, 7);
  EXPECT_EQ(x.samples[0].timestamp_ms, 123);
  EXPECT_TRUE(x.samples[1].labels.empty());
  EXPECT_EQ(x.samples[2].value, 9);
  EXPECT_EQ(x.samples[3].value, 10);
}

TEST(TextParser, ResolvesEscapesInHelpAndLabelValues) {
  auto families = parse_ok(
      "# HELP m Line\\nnext \\\\ \"q\"\n"
      "m{path=\"C:\\\\dir\\n\\\"x\\\"\",u=\"caf\xC3\xA9\"} 1\n");
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].help, "Line\nnext \\ \"q\"");
  EXPECT_THAT(families[0].samples[0].labels,
              ElementsAre(Pair("path", "C:\\dir\n\"x\""), Pair("u", "caf\xC3\xA9")));
}

TEST(TextParser, ParsesSpecialAndSignedValues) {
  auto families = parse_ok(
      "v{i=\"1\"} NaN\n"
      "v{i=\"2\"} +Inf\n"
      "v{i=\"3\"} -Inf\n"
      "v{i=\"4\"} +3.5\n"
      "v{i=\"5\"} 1e3\n"
      "v{i=\"6\"} .5\n"
      "v{i=\"7\"} -0\n"
      "v{i=\"8\"} 1 -5\n");
  const auto& s = families[0].samples;
  ASSERT_EQ(s.size(), 8u);
  EXPECT_TRUE(std::isnan(s[0].value));
  EXPECT_EQ(s[1].value, kInf);
  EXPECT_EQ(s[2].value, -kInf);
  EXPECT_EQ(s[3].value, 3.5);
  EXPECT_EQ(s[4].value, 1000);
  EXPECT_EQ(s[5].value, 0.5);
  EXPECT_EQ(s[6].value, 0);
  EXPECT_EQ(s[7].timestamp_ms, -5);
}

// As Prometheus' parsers read values (strconv.ParseFloat, with p, P and _ refused): a value below
// the smallest double is 0, one past the largest is an error, NaN takes no sign or payload.
TEST(TextParser, ReadsValuesAsPrometheusDoes) {
  auto families = parse_ok(
      "v{i=\"1\"} 1e-400\n"
      "v{i=\"2\"} -1e-400\n"
      "v{i=\"3\"} 0.000000000000000000000000000000000000000000000000000000000000000000000000000"
      "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
      "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
      "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
      "1\n"
      "v{i=\"4\"} 4.9e-324\n"
      "v{i=\"5\"} infinity\n"
      "v{i=\"6\"} -INF\n"
      "v{i=\"7\"} nan\n"
      "v{i=\"8\"} 1.7976931348623157e308\n"
      "v{i=\"9\"} 1e-99999999999999999999\n");
  ASSERT_EQ(families.size(), 1u);
  const auto& s = families[0].samples;
  ASSERT_EQ(s.size(), 9u);
  EXPECT_EQ(s[0].value, 0);
  EXPECT_FALSE(std::signbit(s[0].value));
  EXPECT_EQ(s[1].value, 0);
  EXPECT_TRUE(std::signbit(s[1].value));
  EXPECT_EQ(s[2].value, 0);
  EXPECT_EQ(s[3].value, std::numeric_limits<double>::denorm_min());
  EXPECT_EQ(s[4].value, kInf);
  EXPECT_EQ(s[5].value, -kInf);
  EXPECT_TRUE(std::isnan(s[6].value));
  EXPECT_EQ(s[7].value, std::numeric_limits<double>::max());
  EXPECT_EQ(s[8].value, 0);

  for (std::string_view value : {"1e400", "-1e400", "1.8e308", "1e99999999999999999999",
                                 "100000000000000000000000000000000000000000000000000000000000000"
                                 "000000000000000000000000000000000000000000000000000000000000000"
                                 "000000000000000000000000000000000000000000000000000000000000000"
                                 "000000000000000000000000000000000000000000000000000000000000000"
                                 "000000000000000000000000000000000000000000000000000000000000000"
                                 "e-1",
                                 "nan(12)", "NaN()", "+NaN", "-nan", "0x1p-2", "0X1P+3", "0x10",
                                 "1_000", "1e", "inf(1)", "infin", "."}) {
    EXPECT_EQ(parse_error("v " + std::string(value) + "\n"),
              "line 1, column 3: invalid value \"" + std::string(value) +
                  "\": expected a float, +Inf, -Inf or NaN");
  }
  EXPECT_EQ(parse_error("# TYPE h histogram\nh_bucket{le=\"0x1p-2\"} 1\n"),
            "line 2, column 1: histogram bucket \"h_bucket\" needs an \"le\" label with a float "
            "value");
}

TEST(TextParser, EmptyInputHasNoFamilies) {
  EXPECT_TRUE(parse_ok("").empty());
  EXPECT_TRUE(parse_ok("\n\n# comment only\n").empty());
}

TEST(TextParser, RoundTripsTheExposition) {
  Registry r;
  CounterFamily& requests =
      r.counter("prescale_requests_total", "Requests\nhandled \\ counted.", {"service", "code"});
  requests.with({"echo", "200"}).inc(41);
  requests.with({"we\"ird\\\nvalue", "500"}).inc(0.1);
  r.gauge("temperature", "T.").with().set(-kInf);
  Histogram& h = r.histogram("lat_seconds", "L.", {"route"}, {0.005, 0.1, 1}).with({"/x"});
  h.observe(0.001);
  h.observe(0.05);
  h.observe(7);
  std::vector<FamilySnapshot> snapshot = r.collect();

  auto families = parse_ok(expose(snapshot));
  ASSERT_EQ(families.size(), snapshot.size());
  for (size_t i = 0; i < families.size(); ++i) {
    EXPECT_EQ(families[i].name, snapshot[i].name);
    EXPECT_EQ(families[i].help, snapshot[i].help);
    EXPECT_EQ(families[i].type, snapshot[i].type);
  }
  const ParsedFamily& lat = families[0];
  ASSERT_EQ(lat.samples.size(), 6u);
  EXPECT_THAT(lat.samples[0].labels, ElementsAre(Pair("route", "/x"), Pair("le", "0.005")));
  EXPECT_EQ(lat.samples[0].value, 1);
  EXPECT_EQ(lat.samples[3].value, 3);  // +Inf
  EXPECT_EQ(lat.samples[4].name, "lat_seconds_sum");
  EXPECT_EQ(lat.samples[4].value, 0.001 + 0.05 + 7);
  const ParsedFamily& req = families[1];
  ASSERT_EQ(req.samples.size(), 2u);
  EXPECT_THAT(req.samples[1].labels,
              ElementsAre(Pair("service", "we\"ird\\\nvalue"), Pair("code", "500")));
  EXPECT_EQ(req.samples[1].value, 0.1);
  EXPECT_EQ(families[2].samples[0].value, -kInf);
}

TEST(TextParser, ErrorsNameLineColumnAndProblem) {
  EXPECT_EQ(parse_error("ok 1\n\nx{code 200} 1\n"),
            "line 3, column 8: expected '=' after label name \"code\", found '2'");
  EXPECT_EQ(parse_error("x{code=200} 1\n"),
            "line 1, column 8: expected '\"' to open the value of label \"code\", found '2'");
  EXPECT_EQ(parse_error("x{a=\"1\" b=\"2\"} 1\n"),
            "line 1, column 9: expected ',' or '}' after the value of label \"a\", found 'b'");
  EXPECT_EQ(parse_error("x{a=\"1\",,} 1\n"),
            "line 1, column 9: expected label name or '}', found ','");
  EXPECT_EQ(parse_error("x{a=\"1} 1\n"), "line 1, column 5: unterminated value of label \"a\"");
  EXPECT_EQ(parse_error("x{a=\"1\" 1\n"),
            "line 1, column 9: expected ',' or '}' after the value of label \"a\", found '1'");
  EXPECT_EQ(parse_error("x{a=\"\\t\"} 1\n"),
            "line 1, column 6: invalid escape sequence \\t in value of label \"a\" (only \\\\, "
            "\\\" and \\n are allowed)");
  EXPECT_EQ(parse_error("x{a=\"1\",a=\"2\"} 1\n"), "line 1, column 9: duplicate label name \"a\"");
  EXPECT_EQ(parse_error("x{__name__=\"y\"} 1\n"),
            "line 1, column 3: label name \"__name__\" is reserved");
  EXPECT_EQ(parse_error("x{a=\"\xFF\"} 1\n"),
            "line 1, column 6: value of label \"a\" is not valid UTF-8");
  EXPECT_EQ(parse_error("x one\n"),
            "line 1, column 3: invalid value \"one\": expected a float, +Inf, -Inf or NaN");
  EXPECT_EQ(parse_error("x\n"), "line 1, column 2: expected value after \"x\"");
  EXPECT_EQ(parse_error("x{a=\"1\"}\n"), "line 1, column 9: expected value after \"x\"");
  EXPECT_EQ(parse_error("x 1 12.5\n"),
            "line 1, column 5: invalid timestamp \"12.5\": expected integer milliseconds");
  EXPECT_EQ(parse_error("x 1 12 extra\n"), "line 1, column 8: unexpected 'e' after timestamp");
  EXPECT_EQ(parse_error("9x 1\n"), "line 1, column 1: expected metric name, found '9'");
  EXPECT_EQ(parse_error("x-y 1\n"), "line 1, column 2: invalid character '-' in metric name");
  EXPECT_EQ(parse_error("x 1\r\n"),
            "line 1, column 4: carriage return at end of line (lines end with \\n only)");
  EXPECT_EQ(parse_error("x{a=\"1\"\n"),
            "line 1, column 8: expected ',' or '}' after the value of label \"a\", found end of "
            "line");
}

TEST(TextParser, ErrorsOnMalformedHelpAndType) {
  EXPECT_EQ(parse_error("# TYPE x gauge\n# TYPE x counter\n"),
            "line 2, column 8: second TYPE line for metric \"x\"");
  EXPECT_EQ(parse_error("# HELP x a\n# HELP x b\n"),
            "line 2, column 8: second HELP line for metric \"x\"");
  EXPECT_EQ(parse_error("x 1\n# TYPE x gauge\n"),
            "line 2, column 8: TYPE line for metric \"x\" must come before its samples");
  EXPECT_EQ(parse_error("# TYPE x Gauge\n"),
            "line 1, column 10: unknown metric type \"Gauge\" (expected counter, gauge, "
            "histogram, summary or untyped)");
  EXPECT_EQ(parse_error("# TYPE x gauge extra\n"),
            "line 1, column 16: unexpected 'e' after metric type \"gauge\"");
  EXPECT_EQ(parse_error("# HELP x bad \\t escape\n"),
            "line 1, column 14: invalid escape sequence \\t in help text (only \\\\ and \\n are "
            "allowed)");
  EXPECT_EQ(parse_error("# HELP x trailing \\\n"),
            "line 1, column 19: unterminated escape sequence at end of help text");
  EXPECT_EQ(parse_error("# HELP 1x text\n"),
            "line 1, column 8: expected metric name after HELP, found '1'");
  EXPECT_EQ(parse_error("# TYPE x-y gauge\n"),
            "line 1, column 9: invalid character '-' in metric name");
}

TEST(TextParser, ErrorsOnSamplesTheirTypeForbids) {
  EXPECT_EQ(parse_error("# TYPE h histogram\nh_bucket{x=\"1\"} 1\n"),
            "line 2, column 1: histogram bucket \"h_bucket\" needs an \"le\" label with a float "
            "value");
  EXPECT_EQ(parse_error("# TYPE h histogram\nh_bucket{le=\"big\"} 1\n"),
            "line 2, column 1: histogram bucket \"h_bucket\" needs an \"le\" label with a float "
            "value");
  EXPECT_EQ(parse_error("# TYPE h histogram\nh 1\n"),
            "line 2, column 1: sample \"h\" of histogram \"h\" must be named h_bucket, h_sum or "
            "h_count");
  EXPECT_EQ(parse_error("# TYPE s summary\ns 1\n"),
            "line 2, column 1: summary sample \"s\" needs a \"quantile\" label with a float "
            "value");
}

}  // namespace
}  // namespace prescale::telemetry
