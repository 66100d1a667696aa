#include "telemetry/scrape_query.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "telemetry/exposition.h"
#include "telemetry/registry.h"

namespace prescale::telemetry {
namespace {

using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::Pair;

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<ParsedFamily> parse_ok(std::string_view text) {
  auto parsed = parse_text(text);
  EXPECT_TRUE(parsed.has_value()) << parsed.error().to_string();
  return parsed ? *parsed : std::vector<ParsedFamily>{};
}

constexpr std::string_view kScrape =
    "# TYPE prescale_requests_total counter\n"
    "prescale_requests_total{service=\"a\",code=\"200\"} 90\n"
    "prescale_requests_total{service=\"a\",code=\"500\"} 10\n"
    "prescale_requests_total{service=\"b\",code=\"200\"} 5\n"
    "# TYPE lat_seconds histogram\n"
    "lat_seconds_bucket{route=\"/x\",le=\"0.1\"} 10\n"
    "lat_seconds_bucket{route=\"/x\",le=\"0.2\"} 20\n"
    "lat_seconds_bucket{route=\"/x\",le=\"+Inf\"} 20\n"
    "lat_seconds_sum{route=\"/x\"} 3\n"
    "lat_seconds_count{route=\"/x\"} 20\n"
    "lat_seconds_bucket{route=\"/y\",le=\"0.1\"} 0\n"
    "lat_seconds_bucket{route=\"/y\",le=\"0.2\"} 0\n"
    "lat_seconds_bucket{route=\"/y\",le=\"+Inf\"} 20\n"
    "lat_seconds_sum{route=\"/y\"} 100\n"
    "lat_seconds_count{route=\"/y\"} 20\n";

TEST(TextParserQuery, FindsSamplesByNameAndExactLabels) {
  auto families = parse_ok(kScrape);
  EXPECT_EQ(find_value(families, "prescale_requests_total", {{"code", "500"}, {"service", "a"}}),
            10);
  EXPECT_FALSE(find_value(families, "prescale_requests_total", {{"service", "a"}}).has_value());
  EXPECT_FALSE(find_value(families, "missing").has_value());
  EXPECT_EQ(find_value(families, "lat_seconds_count", {{"route", "/y"}}), 20);
  const ParsedSample* s =
      find_sample(families, "lat_seconds_bucket", {{"route", "/x"}, {"le", "0.2"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, 20);
  EXPECT_EQ(find_family(families, "lat_seconds")->type, MetricType::kHistogram);
}

TEST(TextParserQuery, SumsSelectedSamples) {
  auto families = parse_ok(kScrape);
  EXPECT_EQ(sum_values(families, "prescale_requests_total"), 105);
  EXPECT_EQ(sum_values(families, "prescale_requests_total", {{"service", "a"}}), 100);
  EXPECT_EQ(sum_values(families, "prescale_requests_total", {{"code", "500"}}), 10);
  EXPECT_EQ(sum_values(families, "lat_seconds_sum"), 103);
  EXPECT_EQ(sum_values(families, "nothing"), 0);
}

TEST(TextParserQuery, ExtractsHistogramsPerSelectionAndSummed) {
  auto families = parse_ok(kScrape);
  const ParsedFamily* lat = find_family(families, "lat_seconds");
  ASSERT_NE(lat, nullptr);
  auto x = histogram_data(*lat, {{"route", "/x"}});
  ASSERT_TRUE(x.has_value());
  EXPECT_THAT(x->buckets, ElementsAre(Pair(0.1, 10), Pair(0.2, 20), Pair(kInf, 20)));
  EXPECT_EQ(x->sum, 3);
  EXPECT_EQ(x->count, 20);
  auto all = histogram_data(*lat);
  ASSERT_TRUE(all.has_value());
  EXPECT_THAT(all->buckets, ElementsAre(Pair(0.1, 10), Pair(0.2, 20), Pair(kInf, 40)));
  EXPECT_EQ(all->count, 40);
  auto none = histogram_data(*lat, {{"route", "/z"}});
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->buckets.empty());
  EXPECT_TRUE(std::isnan(histogram_quantile(0.99, none->buckets)));

  auto not_histogram = histogram_data(*find_family(families, "prescale_requests_total"));
  ASSERT_FALSE(not_histogram.has_value());
  EXPECT_EQ(not_histogram.error().message,
            "metric prescale_requests_total is a counter, not a histogram");
}

TEST(TextParserQuery, QuantileInterpolatesLikePromQL) {
  std::vector<std::pair<double, double>> b = {{0.1, 10}, {0.2, 20}, {kInf, 20}};
  EXPECT_DOUBLE_EQ(histogram_quantile(0.5, b), 0.1);
  EXPECT_DOUBLE_EQ(histogram_quantile(0.75, b), 0.15);
  EXPECT_DOUBLE_EQ(histogram_quantile(0.25, b), 0.05);  // first bucket starts at 0
  EXPECT_DOUBLE_EQ(histogram_quantile(1, b), 0.2);
  // Unsorted input is sorted first.
  EXPECT_DOUBLE_EQ(histogram_quantile(0.75, {{kInf, 20}, {0.2, 20}, {0.1, 10}}), 0.15);
  // A rank in +Inf: the highest finite bound.
  EXPECT_DOUBLE_EQ(histogram_quantile(0.99, {{0.1, 10}, {0.2, 15}, {kInf, 20}}), 0.2);
  // A first bucket at or below zero returns its bound.
  EXPECT_DOUBLE_EQ(histogram_quantile(0.1, {{-1, 5}, {kInf, 10}}), -1);
  // Non-monotonic counts are forced monotonic: 0.2's count becomes 10.
  EXPECT_DOUBLE_EQ(histogram_quantile(0.5, {{0.1, 10}, {0.2, 8}, {0.4, 20}, {kInf, 20}}), 0.1);
  // Duplicate bounds (the same le from two series) are added: 10 of 10 are <= 0.1.
  EXPECT_DOUBLE_EQ(histogram_quantile(0.5, {{0.1, 5}, {0.1, 5}, {kInf, 10}}), 0.05);
}

TEST(TextParserQuery, QuantileEdgeCases) {
  std::vector<std::pair<double, double>> b = {{0.1, 10}, {kInf, 20}};
  EXPECT_EQ(histogram_quantile(-0.1, b), -kInf);
  EXPECT_EQ(histogram_quantile(1.1, b), kInf);
  EXPECT_TRUE(std::isnan(histogram_quantile(std::nan(""), b)));
  EXPECT_TRUE(std::isnan(histogram_quantile(0.5, {})));
  EXPECT_TRUE(std::isnan(histogram_quantile(0.5, {{0.1, 10}, {0.2, 20}})));  // no +Inf
  EXPECT_TRUE(std::isnan(histogram_quantile(0.5, {{kInf, 20}})));            // one bucket
  EXPECT_TRUE(std::isnan(histogram_quantile(0.5, {{0.1, 0}, {kInf, 0}})));   // no observations
  // q = 0 with an empty first bucket: PromQL interpolates 0 of 0 observations, NaN.
  EXPECT_TRUE(std::isnan(histogram_quantile(0, {{0.1, 0}, {0.2, 5}, {kInf, 10}})));
  EXPECT_EQ(histogram_quantile(0, {{0.1, 3}, {0.2, 5}, {kInf, 10}}), 0);
  // A NaN count gives NaN, a NaN bound is no bucket.
  EXPECT_TRUE(std::isnan(histogram_quantile(0.5, {{0.1, 3}, {0.2, std::nan("")}, {kInf, 10}})));
  EXPECT_DOUBLE_EQ(histogram_quantile(0.25, {{std::nan(""), 7}, {0.1, 10}, {kInf, 20}}), 0.05);
}

TEST(TextParserQuery, CountAboveInterpolatesLikeTheQuantile) {
  // 50 in (0, 0.1], 40 in (0.1, 0.2], 10 in (0.2, 0.5], 4 above.
  const std::vector<std::pair<double, double>> b = {{0.1, 50}, {0.2, 90}, {0.5, 100}, {kInf, 104}};
  EXPECT_NEAR(histogram_count_above(0.2, b), 14, 1e-9);   // at a bound: what lies above it
  EXPECT_NEAR(histogram_count_above(0.15, b), 34, 1e-9);  // halfway through (0.1, 0.2]
  EXPECT_NEAR(histogram_count_above(0.05, b), 79, 1e-9);  // the first bucket starts at 0
  EXPECT_NEAR(histogram_count_above(1.0, b), 4, 1e-9);    // past the last bound: +Inf's
  EXPECT_EQ(histogram_count_above(0, b), 104);
  EXPECT_EQ(histogram_count_above(-1, b), 104);
  // The count above a quantile is the share above it.
  EXPECT_NEAR(histogram_count_above(histogram_quantile(0.9, b), b), 104 * 0.1, 1e-9);
  // Unsorted, duplicated and non-monotonic buckets are read as histogram_quantile() reads them.
  EXPECT_NEAR(
      histogram_count_above(0.15, {{kInf, 104}, {0.1, 25}, {0.1, 25}, {0.2, 90}, {0.5, 80}}), 34,
      1e-9);
}

TEST(TextParserQuery, CountAboveEdgeCases) {
  EXPECT_EQ(histogram_count_above(0.1, {{0.1, 0}, {kInf, 0}}), 0);  // no observations
  // A first bucket at or below zero holds its observations at its bound.
  EXPECT_EQ(histogram_count_above(-2, {{-1, 5}, {kInf, 10}}), 10);
  EXPECT_EQ(histogram_count_above(-1, {{-1, 5}, {kInf, 10}}), 5);
  EXPECT_EQ(histogram_count_above(-0.5, {{-1, 5}, {kInf, 10}}), 5);
  EXPECT_EQ(histogram_count_above(-0.5, {{0, 5}, {kInf, 10}}), 10);
  EXPECT_EQ(histogram_count_above(0, {{0, 5}, {kInf, 10}}), 5);
  // Nothing is above +Inf (before, the +Inf bucket's count above the highest bound was given);
  // everything is above -Inf.
  EXPECT_EQ(histogram_count_above(kInf, {{0.1, 5}, {kInf, 10}}), 0);
  EXPECT_EQ(histogram_count_above(-kInf, {{0.1, 5}, {kInf, 10}}), 10);
  EXPECT_EQ(histogram_count_above(-kInf, {{-1, 5}, {kInf, 10}}), 10);
  // What the buckets cannot tell.
  const std::vector<std::pair<double, double>> b = {{0.1, 10}, {kInf, 20}};
  EXPECT_TRUE(std::isnan(histogram_count_above(std::nan(""), b)));
  EXPECT_TRUE(std::isnan(histogram_count_above(0.1, {})));
  EXPECT_TRUE(std::isnan(histogram_count_above(0.1, {{kInf, 20}})));            // one bucket
  EXPECT_TRUE(std::isnan(histogram_count_above(0.1, {{0.1, 10}, {0.2, 20}})));  // no +Inf
}

TEST(TextParserQuery, AddsRegistrySeriesByBound) {
  Registry r;
  HistogramFamily& lat = r.histogram("lat_seconds", "L.", {"route"}, {0.1, 0.2});
  lat.with({"/x"}).observe(0.05);
  lat.with({"/x"}).observe(0.15);
  lat.with({"/y"}).observe(0.3);
  HistogramData total;
  for (const FamilySnapshot& family : r.collect()) {
    for (const SeriesSnapshot& series : family.series) add_histogram(total, series.histogram);
  }
  EXPECT_THAT(total.buckets, ElementsAre(Pair(0.1, 1), Pair(0.2, 2), Pair(kInf, 3)));
  EXPECT_DOUBLE_EQ(total.sum, 0.5);
  EXPECT_EQ(total.count, 3);
  // Other bounds are merged in order, as PromQL's sum by (le).
  HistogramSnapshot other{{0.15}, {4, 5}, 1};
  add_histogram(total, other);
  EXPECT_THAT(total.buckets, ElementsAre(Pair(0.1, 1), Pair(0.15, 4), Pair(0.2, 2), Pair(kInf, 8)));
  EXPECT_EQ(total.count, 8);
}

TEST(TextParserQuery, P99OfAnExposedRegistryHistogram) {
  Registry r;
  Histogram& h = r.histogram("lat_seconds", "L.").with();
  for (int i = 0; i < 980; ++i) h.observe(0.003);  // le="0.005"
  for (int i = 0; i < 20; ++i) h.observe(0.2);     // le="0.25"
  auto families = parse_ok(expose(r));
  auto data = histogram_data(*find_family(families, "lat_seconds"));
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(data->count, 1000);
  // Rank 990 lies halfway through the 20 observations of (0.1, 0.25].
  EXPECT_THAT(histogram_quantile(0.99, data->buckets), DoubleNear(0.175, 1e-12));
  EXPECT_THAT(histogram_quantile(0.5, data->buckets),
              DoubleNear(0.0025 + 0.0025 * 500 / 980, 1e-12));
}

TEST(TextParserQuery, DeltaBetweenScrapesAndResets) {
  HistogramData earlier{{{0.1, 10}, {kInf, 12}}, 2.0, 12};
  HistogramData later{{{0.1, 15}, {kInf, 20}}, 3.5, 20};
  HistogramData d = histogram_delta(later, earlier);
  EXPECT_THAT(d.buckets, ElementsAre(Pair(0.1, 5), Pair(kInf, 8)));
  EXPECT_EQ(d.sum, 1.5);
  EXPECT_EQ(d.count, 8);
  HistogramData restarted{{{0.1, 1}, {kInf, 1}}, 0.05, 1};
  HistogramData r = histogram_delta(restarted, earlier);
  EXPECT_THAT(r.buckets, ElementsAre(Pair(0.1, 1), Pair(kInf, 1)));
  EXPECT_EQ(r.count, 1);
}

TEST(TextParserQuery, DeltaAcrossAChangedBucketLayoutIsAReset) {
  // The replica restarted with other buckets and has since seen more requests than before:
  // only the changed `le` set shows the restart.
  HistogramData earlier{{{0.1, 10}, {kInf, 12}}, 2.0, 12};
  HistogramData rebucketed{{{0.05, 20}, {0.1, 25}, {kInf, 30}}, 1.5, 30};
  HistogramData d = histogram_delta(rebucketed, earlier);
  EXPECT_THAT(d.buckets, ElementsAre(Pair(0.05, 20), Pair(0.1, 25), Pair(kInf, 30)));
  EXPECT_EQ(d.count, 30);
  EXPECT_EQ(d.sum, 1.5);
  // A bucket gone from the layout likewise.
  HistogramData fewer{{{kInf, 30}}, 4.0, 30};
  HistogramData f = histogram_delta(fewer, earlier);
  EXPECT_THAT(f.buckets, ElementsAre(Pair(kInf, 30)));
  EXPECT_EQ(f.count, 30);
}

TEST(ScrapeQuery, ToSnapshotsReadsAScrapeAsARegistryGivesIt) {
  auto parsed = parse_text(
      "# TYPE c counter\n"
      "c{route=\"/a\",code=\"200\"} 3\n"
      "c{route=\"/b\"} 4\n"
      "# TYPE h histogram\n"
      "h_bucket{route=\"/a\",le=\"0.1\"} 2\n"
      "h_bucket{route=\"/a\",le=\"1\"} 5\n"
      "h_bucket{route=\"/a\",le=\"+Inf\"} 6\n"
      "h_sum{route=\"/a\"} 2.5\n"
      "h_count{route=\"/a\"} 6\n"
      "# TYPE s summary\n"
      "s{quantile=\"0.5\"} 1\n");
  ASSERT_TRUE(parsed.has_value());
  const std::vector<FamilySnapshot> families = to_snapshots(*parsed);
  ASSERT_EQ(families.size(), 2u);  // the summary is left out
  const FamilySnapshot& c = families[0];
  EXPECT_EQ(c.label_names, (std::vector<std::string>{"route", "code"}));
  ASSERT_EQ(c.series.size(), 2u);
  EXPECT_EQ(c.series[0].label_values, (std::vector<std::string>{"/a", "200"}));
  EXPECT_EQ(c.series[0].value, 3);
  EXPECT_EQ(c.series[1].label_values, (std::vector<std::string>{"/b", ""}));
  const FamilySnapshot& h = families[1];
  EXPECT_EQ(h.type, MetricType::kHistogram);
  EXPECT_EQ(h.label_names, std::vector<std::string>{"route"});
  ASSERT_EQ(h.series.size(), 1u);
  EXPECT_EQ(h.series[0].histogram.upper_bounds, (std::vector<double>{0.1, 1}));
  EXPECT_EQ(h.series[0].histogram.cumulative_counts, (std::vector<uint64_t>{2, 5, 6}));
  EXPECT_EQ(h.series[0].histogram.sum, 2.5);
}

}  // namespace
}  // namespace prescale::telemetry
