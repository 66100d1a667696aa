#include "worlds/kube/prometheus_history.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "scaling/prescale_policy.h"

namespace prescale::kube {
namespace {

using namespace std::chrono_literals;
using Kind = scaling::PrescalePolicy::SeriesKind;

TEST(PrometheusHistoryTest, ARangeAnswerIsReadSeriesBySeries) {
  auto series = parse_range_answer(R"({"status":"success","data":{"resultType":"matrix","result":[
      {"metric":{"caller":"external"},"values":[[1700000060,"1.5"],[1700000120,"NaN"]]},
      {"metric":{},"values":[[1700000060.5,"+Inf"]]}]}})");
  ASSERT_TRUE(series) << series.error().message;
  ASSERT_EQ(series->size(), 2u);
  EXPECT_EQ((*series)[0].labels.at("caller"), "external");
  ASSERT_EQ((*series)[0].points.size(), 2u);
  EXPECT_EQ((*series)[0].points[0].first, 1700000060);
  EXPECT_EQ((*series)[0].points[0].second, 1.5);
  EXPECT_TRUE(std::isnan((*series)[0].points[1].second));
  EXPECT_TRUE((*series)[1].labels.empty());
  EXPECT_TRUE(std::isinf((*series)[1].points[0].second));
}

TEST(PrometheusHistoryTest, ARefusalOrAnotherShapeIsAnErrorNamingWhat) {
  auto refused = parse_range_answer(
      R"({"status":"error","errorType":"bad_data","error":"parse error at char 5"})");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(refused.error().message,
            "Prometheus refused the query (bad_data): parse error at char 5");

  auto vector =
      parse_range_answer(R"({"status":"success","data":{"resultType":"vector","result":[]}})");
  ASSERT_FALSE(vector);
  EXPECT_EQ(vector.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(vector.error().message,
            "not a Prometheus range answer: data.resultType: not \"matrix\"");

  auto pair = parse_range_answer(R"({"status":"success","data":{"resultType":"matrix","result":[
      {"metric":{},"values":[[1,"2"]]},{"metric":{},"values":[[1,"2"],[2,3]]}]}})");
  ASSERT_FALSE(pair);
  EXPECT_EQ(
      pair.error().message,
      "not a Prometheus range answer: data.result[1].values[1]: not a [time, \"value\"] pair");

  auto html = parse_range_answer("<html>502 Bad Gateway</html>");
  ASSERT_FALSE(html);
  EXPECT_EQ(html.error().message, "not a Prometheus range answer: body: not a JSON object");
}

TEST(PrometheusHistoryTest, TheSelectorIsTheLabelMatchersWithOrWithoutBraces) {
  EXPECT_EQ(*normalize_selector(" {job=\"gw\", namespace=\"shop\"} "),
            "job=\"gw\", namespace=\"shop\"");
  EXPECT_EQ(*normalize_selector("job=\"a}b\""), "job=\"a}b\"");
  EXPECT_FALSE(normalize_selector("{}"));
  EXPECT_FALSE(normalize_selector("  "));
  auto brace = normalize_selector("job=\"gw\"}");
  ASSERT_FALSE(brace);
  EXPECT_EQ(brace.error().message,
            "a brace at byte 9 of the selector: write the label matchers only "
            "(job=\"x\",namespace=\"y\")");
  EXPECT_FALSE(normalize_selector("job=\"gw"));
  // PromQL's other quotes, and a comma the query's own matcher would double.
  EXPECT_EQ(*normalize_selector("job='a}b', pod=~`gw-.*`, "), "job='a}b', pod=~`gw-.*`");
  EXPECT_FALSE(normalize_selector(" , "));

  EXPECT_EQ(calls_by_caller_query("job=\"gw\"", "web", 120s),
            "sum by (caller) (rate(prescale_calls_total{job=\"gw\",callee=\"web\"}[120s]))");
}

TEST(PrometheusHistoryTest, CallersAddUpToTheArrivalsAndExternalOnesAreKeptApart) {
  std::vector<RangeSeries> series(3);
  series[0].labels = {{"caller", "external"}};
  series[0].points = {{1000, 2}, {1060, 3}, {1090, 50}, {1120, NAN}};
  series[1].labels = {{"caller", "web"}};
  series[1].points = {{1000, 10}, {1060.4, 20}, {1180, 99}};  // 1180 is past the 3 minutes
  series[2].labels = {};                                      // no caller label: external
  series[2].points = {{1120, 1}};
  const PrometheusMinutes m = minutes_of(series, 1000, 3);
  ASSERT_EQ(m.arrivals.size(), 3u);
  EXPECT_EQ(m.arrivals[0], 12);
  EXPECT_EQ(m.arrivals[1], 23);  // the point 30 s off the grid is left out
  EXPECT_EQ(m.arrivals[2], 1);
  EXPECT_EQ(m.external[0], 2);
  EXPECT_EQ(m.external[1], 3);
  EXPECT_EQ(m.external[2], 1);
  EXPECT_TRUE(m.called);

  const PrometheusMinutes none = minutes_of({}, 1000, 2);
  EXPECT_TRUE(std::isnan(none.arrivals[0]) && std::isnan(none.arrivals[1]));
  EXPECT_FALSE(none.called);
}

scaling::ServiceSpec spec(std::string name) {
  scaling::ServiceSpec s;
  s.name = std::move(name);
  return s;
}

// An hourly cycle, as a day's would be: enough for the forecaster to find it in 6 hours.
double hourly(std::int64_t unix_minute) {
  return 100 + 60 * std::sin(2 * M_PI * static_cast<double>(unix_minute % 60) / 60.0);
}

// A history of these minutes, as load_history() takes one.
forecast::Series minutes(std::vector<double> values) {
  forecast::Series s;
  s.step_seconds = 60;
  s.values = std::move(values);
  return s;
}

struct Fixture {
  scaling::PrescalePolicyOptions options() const {
    scaling::PrescalePolicyOptions o;
    o.max_history = 8h;
    o.forecaster.model.day_seconds = 3600;
    return o;
  }
  // The policy's clock at 10 h 00 min 20 s; Unix time 1,767,225,600 + 7 s then.
  Clock::TimePoint now{std::chrono::seconds(10 * 3600 + 20)};
  Clock::WallTime wall_now{std::chrono::seconds(1767225600 + 7)};
};

TEST(PrometheusHistoryTest, APolicyWithoutHistoryForecastsAtOnceFromPrometheus) {
  Fixture f;
  scaling::PrescalePolicy policy(f.options());
  policy.init({spec("web"), spec("db")});
  std::vector<double> asked_first_end;
  const MinutesReader read = [&](std::string_view service, double first_end, std::size_t count) {
    asked_first_end.push_back(first_end);
    PrometheusMinutes m;
    m.arrivals.assign(count, NAN);
    m.external.assign(count, NAN);
    // Prometheus has the last 6 hours: the minute i ends at first_end + 60 i.
    for (std::size_t i = count - 360; i < count; ++i) {
      const auto unix_minute =
          static_cast<std::int64_t>(std::floor((first_end + 60.0 * static_cast<double>(i)) / 60)) -
          1;
      m.arrivals[i] = service == "web" ? hourly(unix_minute) : 2 * hourly(unix_minute) + 5;
      m.external[i] = service == "web" ? m.arrivals[i] : 5;
    }
    m.called = service == "db";
    return m;
  };
  const auto outcomes = backfill_history(policy, {"web", "db"}, read, f.now, f.wall_now);

  // 8 hours up to the minute before now's (policy minute 600): minutes 120..599 of the policy,
  // the first ending at policy second 121 * 60, which is 13 s earlier in Unix time.
  ASSERT_EQ(asked_first_end.size(), 2u);
  EXPECT_DOUBLE_EQ(asked_first_end[0], 1767225600.0 + 7 - (10 * 3600 + 20) + 121 * 60);
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_EQ(outcomes[0].service, "web");
  EXPECT_FALSE(outcomes[0].error);
  EXPECT_EQ(outcomes[0].filled, 360u);
  EXPECT_EQ(outcomes[0].external_filled, 0u);
  EXPECT_EQ(outcomes[0].minutes, 360u);  // from its first known minute
  EXPECT_EQ(outcomes[1].external_filled, 360u);

  auto history = policy.history("web");
  ASSERT_TRUE(history);
  EXPECT_EQ(history->start_seconds, (600 - 360) * 60);
  ASSERT_EQ(history->values.size(), 360u);
  EXPECT_FLOAT_EQ(history->values.back(),
                  static_cast<float>(read("web", asked_first_end[0], 480)->arrivals.back()));
  auto external = policy.history("db", Kind::kExternal);
  ASSERT_TRUE(external);
  EXPECT_EQ(external->values.size(), 360u);
  EXPECT_FLOAT_EQ(external->values.front(), 5);

  // The hourly cycle is forecast from the first decision, where the reactive floor alone would
  // have planned for an hour (min_history).
  const forecast::QuantileForecast forecast = policy.demand_forecast("web");
  ASSERT_FALSE(forecast.p50.empty());
  // Minute 0 is the policy's minute 600, which starts 13 s before Unix minute 29,453,760 and was
  // labelled as the one before.
  const std::int64_t unix_minute_now = (1767225600 + 7 - 20) / 60;
  for (std::size_t k = 0; k < forecast.p50.size(); ++k) {
    EXPECT_NEAR(forecast.p50[k], hourly(unix_minute_now + static_cast<std::int64_t>(k)), 3)
        << "minute " << k << " ahead";
  }
}

TEST(PrometheusHistoryTest, ThePolicysOwnMinutesStandAndOnlyTheGapIsFilled) {
  Fixture f;
  scaling::PrescalePolicy policy(f.options());
  policy.init({spec("web")});
  // Its own history: 300 minutes of 7 req/s, ending 60 minutes before now's minute (down since).
  ASSERT_TRUE(policy.load_history("web", minutes(std::vector<double>(300, 7.0)), f.now - 60min));
  const MinutesReader read = [](std::string_view, double, std::size_t count) {
    PrometheusMinutes m;
    m.arrivals.assign(count, 9.0);
    m.external = m.arrivals;
    return m;
  };
  const auto outcomes = backfill_history(policy, {"web"}, read, f.now, f.wall_now);
  ASSERT_EQ(outcomes.size(), 1u);
  // 480 minutes kept: 120 before its own, its 300, and the 60 it was down.
  EXPECT_EQ(outcomes[0].filled, 180u);
  EXPECT_EQ(outcomes[0].minutes, 480u);
  auto history = policy.history("web");
  ASSERT_TRUE(history);
  ASSERT_EQ(history->values.size(), 480u);
  EXPECT_EQ(history->values[0], 9.0f);
  EXPECT_EQ(history->values[119], 9.0f);
  EXPECT_EQ(history->values[120], 7.0f);
  EXPECT_EQ(history->values[419], 7.0f);
  EXPECT_EQ(history->values[420], 9.0f);
  EXPECT_EQ(history->values[479], 9.0f);

  // Nothing more to fill: nothing is reloaded.
  const auto again = backfill_history(policy, {"web"}, read, f.now, f.wall_now);
  EXPECT_EQ(again[0].filled, 0u);
}

// A controller restored from its state directory lacks only the minutes it was down: those are
// recorded after its own, and its forecaster goes on through them as fitted (no refit: the
// restored forecast is the one before the stop, rolled on), as the minute it was accumulating.
TEST(PrometheusHistoryTest, MinutesAfterItsOwnAreRecordedAndItsForecasterKept) {
  Fixture f;
  scaling::PrescalePolicy policy(f.options());
  policy.init({spec("web")});
  std::vector<double> own;
  for (int m = 0; m < 300; ++m) own.push_back(hourly(m));
  ASSERT_TRUE(policy.load_history("web", minutes(own), f.now - 60min));
  const nlohmann::json before = policy.export_state(f.now)["services"]["web"];
  ASSERT_EQ(before["model_from_minute"], 540 - 300);
  ASSERT_EQ(before["model_to_minute"], 540);
  const MinutesReader read = [](std::string_view, double, std::size_t count) {
    PrometheusMinutes m;
    m.arrivals.assign(count, NAN);
    for (std::size_t i = count - 60; i < count; ++i) m.arrivals[i] = 9.0;
    m.external = m.arrivals;
    return m;
  };
  const auto outcomes = backfill_history(policy, {"web"}, read, f.now, f.wall_now);
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].filled, 60u);
  EXPECT_EQ(outcomes[0].answered, 60u);
  EXPECT_EQ(outcomes[0].minutes, 360u);
  const nlohmann::json after = policy.export_state(f.now)["services"]["web"];
  EXPECT_EQ(after["model_from_minute"], 540 - 300) << "the forecaster was refitted, not kept";
  EXPECT_EQ(after["model_to_minute"], 540);
  EXPECT_EQ(after["history_to_minute"], 600);
  auto history = policy.history("web");
  ASSERT_TRUE(history);
  EXPECT_EQ(history->values[299], static_cast<float>(hourly(299)));
  EXPECT_EQ(history->values[300], 9.0f);
  EXPECT_FALSE(policy.demand_forecast("web").p50.empty());
}

TEST(PrometheusHistoryTest, AFailedReadLeavesTheHistoryAsItWas) {
  Fixture f;
  scaling::PrescalePolicy policy(f.options());
  policy.init({spec("web")});
  ASSERT_TRUE(policy.load_history("web", minutes(std::vector<double>(30, 7.0)), f.now));
  const MinutesReader read = [](std::string_view, double,
                                std::size_t) -> Result<PrometheusMinutes> {
    return make_error(ErrorCode::kUnavailable, "Prometheus at http://prom:9090: refused");
  };
  const auto outcomes = backfill_history(policy, {"web"}, read, f.now, f.wall_now);
  ASSERT_EQ(outcomes.size(), 1u);
  ASSERT_TRUE(outcomes[0].error);
  EXPECT_EQ(outcomes[0].error->message, "Prometheus at http://prom:9090: refused");
  EXPECT_EQ(outcomes[0].minutes, 30u);
  EXPECT_EQ(policy.history("web")->values.size(), 30u);
}

}  // namespace
}  // namespace prescale::kube
