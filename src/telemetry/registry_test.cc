#include "telemetry/registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace prescale::telemetry {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

template <typename F>
std::string invalid_argument_message(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no std::invalid_argument thrown)";
}

TEST(RegistryCounter, CountsWholeAndFractionalAmounts) {
  Counter c;
  EXPECT_EQ(c.value(), 0);
  c.inc();
  c.inc(2.5);
  c.inc(3);
  EXPECT_EQ(c.value(), 6.5);
}

TEST(RegistryCounter, IgnoresNegativeAndNaNAmounts) {
  Counter c;
  c.inc(2);
  c.inc(-1);
  c.inc(kNaN);
  EXPECT_EQ(c.value(), 2);
  c.inc(1e300);
  EXPECT_EQ(c.value(), 1e300);
}

TEST(RegistryGauge, SetsAddsIncrementsAndDecrements) {
  Gauge g;
  g.set(3);
  g.inc();
  g.dec();
  g.dec();
  g.add(-2.5);
  EXPECT_EQ(g.value(), -0.5);
  g.set(kInf);
  EXPECT_EQ(g.value(), kInf);
}

TEST(RegistryHistogram, BucketsAreInclusiveUpperBounds) {
  Histogram h(std::vector<double>{0.1, 1, 10});
  h.observe(0.05);
  h.observe(0.1);  // le="0.1" includes its bound
  h.observe(0.11);
  h.observe(10);
  h.observe(11);
  h.observe(-1);    // below every bound: first bucket
  h.observe(kNaN);  // +Inf bucket, as in the Go client
  HistogramSnapshot s = h.snapshot();
  EXPECT_THAT(s.upper_bounds, ElementsAre(0.1, 1, 10));
  EXPECT_THAT(s.cumulative_counts, ElementsAre(3, 4, 5, 7));
  EXPECT_EQ(s.count(), 7u);
  EXPECT_TRUE(std::isnan(s.sum));
}

TEST(RegistryHistogram, SumsObservations) {
  Histogram h(default_latency_buckets());
  h.observe(0.25);
  h.observe(0.5);
  h.observe(20);
  HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.sum, 20.75);
  EXPECT_EQ(s.count(), 3u);
  EXPECT_EQ(s.cumulative_counts[s.cumulative_counts.size() - 2], 2u);
}

TEST(RegistryHistogram, ValidatesBounds) {
  EXPECT_THAT(invalid_argument_message([] {
                Histogram h(std::vector<double>{1, 0.5});
              }),
              HasSubstr("strictly ascending"));
  EXPECT_THAT(invalid_argument_message([] {
                Histogram h(std::vector<double>{1, 1});
              }),
              HasSubstr("strictly ascending"));
  EXPECT_THAT(invalid_argument_message([] { Histogram h(std::vector<double>{kNaN}); }),
              HasSubstr("NaN"));
  Histogram with_inf(std::vector<double>{1, 2, kInf});
  EXPECT_THAT(with_inf.upper_bounds(), ElementsAre(1, 2));
  Histogram no_bounds(std::vector<double>{});
  no_bounds.observe(3);
  EXPECT_THAT(no_bounds.snapshot().cumulative_counts, ElementsAre(1));
}

TEST(RegistryHistogram, DefaultLatencyBucketsSpanMicroserviceLatencies) {
  std::vector<double> b = default_latency_buckets();
  ASSERT_GE(b.size(), 12u);
  EXPECT_EQ(b.front(), 0.0005);
  EXPECT_EQ(b.back(), 10);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
}

TEST(Registry, WithReturnsTheSameSeriesForTheSameLabelValues) {
  Registry r;
  CounterFamily& f = r.counter("prescale_requests_total", "Requests.", {"service", "code"});
  Counter& a = f.with({"echo", "200"});
  Counter& b = f.with({"echo", "500"});
  EXPECT_NE(&a, &b);
  std::string service = "echo";
  std::vector<std::string> values = {service, "200"};
  EXPECT_EQ(&f.with(values), &a);
  std::vector<std::string_view> views = {"echo", "200"};
  EXPECT_EQ(&f.with(views), &a);
  EXPECT_EQ(&f.with({service, std::to_string(200)}), &a);
  a.inc();
  EXPECT_EQ(f.with({"echo", "200"}).value(), 1);
}

TEST(Registry, LabelValuesAreNotConfusedAcrossPositions) {
  Registry r;
  GaugeFamily& f = r.gauge("x", "X.", {"a", "b"});
  EXPECT_NE(&f.with({"1", "2"}), &f.with({"2", "1"}));
  EXPECT_NE(&f.with({"12", ""}), &f.with({"1", "2"}));
}

TEST(Registry, WrongNumberOfLabelValuesThrows) {
  Registry r;
  CounterFamily& f = r.counter("requests_total", "Requests.", {"service", "route", "code"});
  EXPECT_EQ(invalid_argument_message([&] {
              f.with({"echo", "/"});
            }),
            "metric requests_total has 3 label(s) (service, route, code) but 2 value(s) were "
            "given");
  EXPECT_THROW(f.with(), std::invalid_argument);
  CounterFamily& plain = r.counter("plain_total", "Plain.");
  EXPECT_THROW(plain.with({"x"}), std::invalid_argument);
}

TEST(Registry, FamilyWithoutLabelsHasOneSeriesFromTheStart) {
  Registry r;
  CounterFamily& f = r.counter("restarts_total", "Restarts.");
  EXPECT_EQ(&f.with(), &f.with({}));
  FamilySnapshot s = f.snapshot();
  ASSERT_EQ(s.series.size(), 1u);
  EXPECT_EQ(s.series[0].value, 0);
  f.with().inc();
  EXPECT_EQ(f.snapshot().series[0].value, 1);
}

TEST(Registry, SameDefinitionReturnsTheSameFamily) {
  Registry r;
  CounterFamily& a = r.counter("c_total", "C.", {"x"});
  EXPECT_EQ(&r.counter("c_total", "C.", {"x"}), &a);
  HistogramFamily& h = r.histogram("h_seconds", "H.", {"x"}, {0.1, 1});
  EXPECT_EQ(&r.histogram("h_seconds", "H.", {"x"}, {0.1, 1, kInf}), &h);
  GaugeFamily& g = r.gauge("g", "G.");
  EXPECT_EQ(&r.gauge("g", "G."), &g);
}

TEST(Registry, ConflictingReRegistrationThrows) {
  Registry r;
  r.counter("c_total", "C.", {"x"});
  EXPECT_THAT(invalid_argument_message([&] { r.gauge("c_total", "C.", {"x"}); }),
              HasSubstr("metric c_total is already registered as a counter with labels (x)"));
  EXPECT_THROW(r.counter("c_total", "C.", {"y"}), std::invalid_argument);
  EXPECT_THROW(r.counter("c_total", "C.", {"x", "y"}), std::invalid_argument);
  EXPECT_THROW(r.counter("c_total", "Other help.", {"x"}), std::invalid_argument);
  r.histogram("h_seconds", "H.", {}, {0.1, 1});
  EXPECT_THROW(r.histogram("h_seconds", "H.", {}, {0.1, 2}), std::invalid_argument);
}

TEST(Registry, ValidatesNamesAgainstThePrometheusGrammar) {
  Registry r;
  EXPECT_NO_THROW(r.counter("a:b_c9_total", "Ok."));
  EXPECT_NO_THROW(r.counter("_x", "Ok.", {"_y", "Z9"}));
  EXPECT_THAT(invalid_argument_message([&] { r.counter("9lives", "Bad."); }),
              HasSubstr("invalid metric name \"9lives\""));
  EXPECT_THROW(r.counter("", "Bad."), std::invalid_argument);
  EXPECT_THROW(r.counter("has-dash", "Bad."), std::invalid_argument);
  EXPECT_THROW(r.gauge("has space", "Bad."), std::invalid_argument);
  EXPECT_THAT(invalid_argument_message([&] { r.counter("ok_total", "Ok.", {"a:b"}); }),
              HasSubstr("invalid label name \"a:b\""));
  EXPECT_THAT(invalid_argument_message([&] { r.counter("ok_total", "Ok.", {"__x"}); }),
              HasSubstr("reserved"));
  EXPECT_THAT(invalid_argument_message([&] {
                r.counter("ok_total", "Ok.", {"a", "a"});
              }),
              HasSubstr("duplicate label name \"a\""));
  EXPECT_THAT(invalid_argument_message([&] { r.histogram("h", "H.", {"le"}); }),
              HasSubstr("\"le\" is reserved"));
  EXPECT_NO_THROW(r.counter("le_total", "Fine on a counter.", {"le"}));
  EXPECT_THROW(r.counter("bad_help_total", "\xff"), std::invalid_argument);
}

TEST(Registry, HistogramSampleNamesAreReserved) {
  Registry r;
  r.histogram("latency_seconds", "L.");
  EXPECT_THROW(r.counter("latency_seconds_count", "C."), std::invalid_argument);
  EXPECT_THROW(r.gauge("latency_seconds_bucket", "C."), std::invalid_argument);
  r.gauge("queue_sum", "Q.");
  EXPECT_THROW(r.histogram("queue", "Q."), std::invalid_argument);
}

TEST(Registry, CollectSortsFamiliesAndSeries) {
  Registry r;
  CounterFamily& b = r.counter("b_total", "B.", {"k"});
  b.with({"z"}).inc();
  b.with({"a"}).inc(2);
  b.with({"m"}).inc(3);
  r.gauge("a", "A.").with().set(1);
  std::vector<FamilySnapshot> families = r.collect();
  ASSERT_EQ(families.size(), 2u);
  EXPECT_EQ(families[0].name, "a");
  EXPECT_EQ(families[0].type, MetricType::kGauge);
  EXPECT_EQ(families[1].name, "b_total");
  EXPECT_THAT(families[1].label_names, ElementsAre("k"));
  ASSERT_EQ(families[1].series.size(), 3u);
  EXPECT_THAT(families[1].series[0].label_values, ElementsAre("a"));
  EXPECT_EQ(families[1].series[0].value, 2);
  EXPECT_THAT(families[1].series[2].label_values, ElementsAre("z"));
}

TEST(Registry, CollectorsAddFamiliesAtScrapeTime) {
  Registry r;
  r.counter("m_total", "M.");
  int calls = 0;
  r.add_collector([&](std::vector<FamilySnapshot>& out) {
    ++calls;
    FamilySnapshot f{"dynamic", "D.", MetricType::kGauge, {"k"}, {}};
    f.series.push_back(SeriesSnapshot{{"y"}, 2, {}});
    f.series.push_back(SeriesSnapshot{{"x"}, 1, {}});
    out.push_back(std::move(f));
    // Left out: the name is taken, a name is invalid, label values do not match.
    out.push_back(FamilySnapshot{"m_total", "Dup.", MetricType::kCounter, {}, {{{}, 7, {}}}});
    out.push_back(FamilySnapshot{"bad name", "Bad.", MetricType::kGauge, {}, {{{}, 7, {}}}});
    out.push_back(FamilySnapshot{"arity", "Bad.", MetricType::kGauge, {"a"}, {{{}, 7, {}}}});
  });
  std::vector<FamilySnapshot> families = r.collect();
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(families.size(), 2u);
  EXPECT_EQ(families[0].name, "dynamic");
  EXPECT_THAT(families[0].series[0].label_values, ElementsAre("x"));
  EXPECT_EQ(families[1].name, "m_total");
  EXPECT_EQ(families[1].series[0].value, 0);
  r.collect();
  EXPECT_EQ(calls, 2);
}

// A histogram owns the sample names <name>_bucket, _sum and _count in collected families too:
// "h_seconds_count" beside the histogram "h_seconds" would put two series of one name in the
// scrape, which Prometheus refuses.
TEST(Registry, CollectedFamiliesDoNotTakeTheSampleNamesOfAHistogram) {
  Registry r;
  r.histogram("h_seconds", "H.", {}, {0.1});
  r.counter("q_sum", "Q.");
  r.add_collector([](std::vector<FamilySnapshot>& out) {
    out.push_back(FamilySnapshot{"h_seconds_count", "C.", MetricType::kCounter, {}, {{{}, 7, {}}}});
    out.push_back(FamilySnapshot{"h_seconds_bucket", "G.", MetricType::kGauge, {}, {{{}, 7, {}}}});
    out.push_back(FamilySnapshot{"q", "Q.", MetricType::kHistogram, {}, {}});
    out.push_back(FamilySnapshot{"k", "K.", MetricType::kHistogram, {}, {}});
    out.push_back(FamilySnapshot{"k_sum", "G.", MetricType::kGauge, {}, {{{}, 7, {}}}});
    out.push_back(FamilySnapshot{"ok", "G.", MetricType::kGauge, {}, {{{}, 7, {}}}});
  });
  std::vector<std::string> names;
  for (const FamilySnapshot& f : r.collect()) names.push_back(f.name);
  EXPECT_THAT(names, ElementsAre("h_seconds", "k", "ok", "q_sum"));
}

// Between collected families, a histogram keeps the sample names it owns whatever the order they
// are collected in: a counter "h_count" collected first used to take the whole histogram "h" out
// of the scrape, and a collector's order is no reason to lose its buckets. Families of one name
// keep the first collected, as before.
TEST(Registry, ACollectedHistogramWinsOverACollectedFamilyNamedLikeItsSamples) {
  auto histogram = [](std::string name) {
    FamilySnapshot f{std::move(name), "H.", MetricType::kHistogram, {}, {}};
    f.series.push_back(SeriesSnapshot{{}, 0, {{0.5}, {1, 2}, 0.7}});
    return f;
  };
  auto counter = [](std::string name, double value) {
    return FamilySnapshot{std::move(name), "C.", MetricType::kCounter, {}, {{{}, value, {}}}};
  };
  for (bool histograms_first : {false, true}) {
    SCOPED_TRACE(histograms_first ? "histograms collected first" : "histograms collected last");
    Registry r;
    r.add_collector([&](std::vector<FamilySnapshot>& out) {
      if (histograms_first) return;
      out.push_back(counter("h_count", 7));
      out.push_back(counter("h_bucket", 7));
      out.push_back(histogram("g_sum"));  // a histogram itself, but named like g's samples
      out.push_back(counter("same", 1));
    });
    r.add_collector([&](std::vector<FamilySnapshot>& out) {
      out.push_back(histogram("h"));
      out.push_back(histogram("g"));
      out.push_back(counter("same", 2));
    });
    r.add_collector([&](std::vector<FamilySnapshot>& out) {
      if (!histograms_first) return;
      out.push_back(counter("h_count", 7));
      out.push_back(counter("h_bucket", 7));
      out.push_back(histogram("g_sum"));
      out.push_back(counter("same", 1));
    });
    std::vector<std::string> names;
    double same = 0;
    for (const FamilySnapshot& f : r.collect()) {
      names.push_back(f.name);
      if (f.name == "same") same = f.series.at(0).value;
    }
    EXPECT_THAT(names, ElementsAre("g", "h", "same"));
    EXPECT_EQ(same, histograms_first ? 2 : 1);
  }
}

TEST(Registry, CollectedFamiliesThatWouldBreakTheTextFormatAreLeftOut) {
  Registry r;
  r.histogram("latency_seconds", "L.", {}, {0.1, 1});
  r.add_collector([](std::vector<FamilySnapshot>& out) {
    auto histogram = [](std::string name, std::vector<double> bounds,
                        std::vector<uint64_t> cumulative) {
      FamilySnapshot f{std::move(name), "H.", MetricType::kHistogram, {}, {}};
      f.series.push_back(SeriesSnapshot{{}, 0, {std::move(bounds), std::move(cumulative), 0}});
      return f;
    };
    // Kept: a well-formed histogram and gauge.
    out.push_back(histogram("good_seconds", {0.5, 1}, {1, 2, 3}));
    out.push_back(FamilySnapshot{"good", "G.", MetricType::kGauge, {"k"}, {{{"a"}, 1, {}}}});
    // Left out: le out of order, a NaN bound, an explicit +Inf bound (a second le="+Inf"),
    // counts that go down with le.
    out.push_back(histogram("unordered_seconds", {1, 0.5}, {1, 2, 3}));
    out.push_back(histogram("nan_seconds", {kNaN}, {1, 2}));
    out.push_back(histogram("inf_seconds", {1, kInf}, {1, 2, 2}));
    out.push_back(histogram("decreasing_seconds", {0.5, 1}, {3, 2, 3}));
    // Left out: the same series twice.
    out.push_back(
        FamilySnapshot{"twice", "T.", MetricType::kGauge, {"k"}, {{{"a"}, 1, {}}, {{"a"}, 2, {}}}});
    // Left out: the sample names of the registered histogram.
    out.push_back(
        FamilySnapshot{"latency_seconds_count", "C.", MetricType::kGauge, {}, {{{}, 1, {}}}});
    // Left out: a collected histogram whose samples a registered family already names.
    out.push_back(FamilySnapshot{"good_seconds_sum", "S.", MetricType::kGauge, {}, {{{}, 1, {}}}});
    // Left out: help text that is not UTF-8.
    out.push_back(FamilySnapshot{"bad_help", "\xff", MetricType::kGauge, {}, {{{}, 1, {}}}});
  });
  std::vector<std::string> names;
  for (const FamilySnapshot& f : r.collect()) names.push_back(f.name);
  EXPECT_THAT(names, ElementsAre("good", "good_seconds", "latency_seconds"));
}

TEST(Registry, CollectorWithAnIdIsAddedOnce) {
  Registry r;
  int calls = 0;
  auto collector = [&](std::vector<FamilySnapshot>&) { ++calls; };
  EXPECT_TRUE(r.add_collector(collector, "process"));
  EXPECT_FALSE(r.add_collector(collector, "process"));
  EXPECT_TRUE(r.add_collector(collector));
  EXPECT_TRUE(r.add_collector(collector));
  r.collect();
  EXPECT_EQ(calls, 3);
}

TEST(Registry, GlobalIsOneInstance) { EXPECT_EQ(&Registry::global(), &Registry::global()); }

TEST(RegistryConcurrency, FourThreadsIncrementingGiveTheExactTotal) {
  Registry r;
  CounterFamily& family = r.counter("hits_total", "Hits.", {"route"});
  Counter& shared = family.with({"/"});
  Counter& fractional = family.with({"/f"});
  Histogram& histogram = r.histogram("lat_seconds", "L.").with();
  Gauge& gauge = r.gauge("inflight", "I.").with();
  constexpr int kThreads = 4;
  constexpr int kIncrements = 100'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Every thread also looks up and creates series concurrently.
      Counter& own = family.with({"/t" + std::to_string(t % 2)});
      for (int i = 0; i < kIncrements; ++i) {
        shared.inc();
        fractional.inc(0.5);
        own.inc();
        histogram.observe(i % 2 == 0 ? 0x1p-10 : 1.0);  // exact in binary: the sum is exact
        gauge.inc();
        gauge.dec();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(shared.value(), kThreads * kIncrements);
  EXPECT_EQ(fractional.value(), kThreads * kIncrements * 0.5);
  EXPECT_EQ(family.with({"/t0"}).value() + family.with({"/t1"}).value(), kThreads * kIncrements);
  HistogramSnapshot h = histogram.snapshot();
  EXPECT_EQ(h.count(), static_cast<uint64_t>(kThreads * kIncrements));
  EXPECT_EQ(h.cumulative_counts[1], static_cast<uint64_t>(kThreads * kIncrements / 2));
  EXPECT_EQ(h.sum, kThreads * kIncrements / 2 * (0x1p-10 + 1.0));
  EXPECT_EQ(gauge.value(), 0);
}

}  // namespace
}  // namespace prescale::telemetry
