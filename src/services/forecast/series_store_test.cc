#include "services/forecast/series_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <thread>

namespace prescale::services::forecast_service {
namespace {

using ::testing::HasSubstr;

// An hourly cycle at 1-minute steps, from t0.
Points cycle(double t0, int minutes, int offset = 0) {
  Points p;
  for (int i = 0; i < minutes; ++i) {
    const int m = i + offset;
    p.timestamps.push_back(t0 + 60.0 * i);
    p.values.push_back(100 + 50 * std::sin(2 * std::numbers::pi * m / 60.0));
  }
  return p;
}

StoreOptions hourly() {
  StoreOptions o;
  o.forecaster.model.day_seconds = 3600;  // the "day" is the hour of the test cycle
  return o;
}

TEST(ForecastOnceTest, ForecastsAStableCycle) {
  auto series = to_series(cycle(0, 6 * 60), std::nullopt);
  ASSERT_TRUE(series);
  forecast::ForecasterOptions options;
  options.model.day_seconds = 3600;
  auto r = forecast_once(*series, 30, options);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->quantiles.p50.size(), 30u);
  EXPECT_EQ(r->start_seconds, 6 * 3600);
  EXPECT_NE(r->quantiles.model, "naive");
  for (int h = 0; h < 30; ++h) {
    const double truth = 100 + 50 * std::sin(2 * std::numbers::pi * (360 + h) / 60.0);
    EXPECT_NEAR(r->quantiles.p50[static_cast<size_t>(h)], truth, 5) << h;
    EXPECT_LE(r->quantiles.p50[static_cast<size_t>(h)], r->quantiles.p90[static_cast<size_t>(h)]);
    EXPECT_LE(r->quantiles.p90[static_cast<size_t>(h)], r->quantiles.p99[static_cast<size_t>(h)]);
  }
  EXPECT_EQ(r->backtest.horizons, 15);
  EXPECT_LT(r->backtest.mase, 0.5);
}

TEST(ForecastOnceTest, SaysHowMuchHistoryItNeeds) {
  auto series = to_series(cycle(0, 10), std::nullopt);
  auto r = forecast_once(*series, 15);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.error().message, HasSubstr("10 observed values, a forecast needs at least 32"));
}

TEST(SeriesStoreTest, AppendsOnTheGridAndForecastsIncrementally) {
  SeriesStore store(hourly());
  auto a = store.append("api", cycle(0, 4 * 60), std::nullopt);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->appended, 240u);
  EXPECT_EQ(a->last_timestamp, 239 * 60);
  auto f1 = store.forecast("api", 15);
  ASSERT_TRUE(f1) << f1.error().message;
  EXPECT_EQ(f1->start_seconds, 240 * 60);

  // Ten more minutes after a skipped one: the gap is a missing step, the forecast moves on.
  auto b = store.append("api", cycle(241 * 60, 10, 241), std::nullopt);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->appended, 11u);
  EXPECT_EQ(b->points, 251u);
  auto f2 = store.forecast("api", 15);
  ASSERT_TRUE(f2);
  EXPECT_EQ(f2->start_seconds, 251 * 60);
  const double truth = 100 + 50 * std::sin(2 * std::numbers::pi * 251 / 60.0);
  EXPECT_NEAR(f2->quantiles.p50[0], truth, 8);

  // Points must come after the last one and on its grid.
  auto before = store.append("api", Points{{100 * 60.0}, {1}}, std::nullopt);
  ASSERT_FALSE(before);
  EXPECT_THAT(before.error().message, HasSubstr("timestamps[0]: 6000 is not after"));
  auto off = store.append("api", Points{{251 * 60.0, 251 * 60.0 + 90}, {1, 2}}, std::nullopt);
  ASSERT_FALSE(off);
  EXPECT_THAT(off.error().message, HasSubstr("timestamps[1]: 90 s after the previous one"));
  auto step = store.append("api", Points{{252 * 60.0}, {1}}, 30.0);
  ASSERT_FALSE(step);
  EXPECT_THAT(step.error().message, HasSubstr("step_seconds: 30 differs"));

  EXPECT_EQ(store.forecast("nope", 15).error().code, ErrorCode::kNotFound);
  ASSERT_EQ(store.list().size(), 1u);
  EXPECT_EQ(store.list()[0].points, 251u);
  EXPECT_FALSE(store.list()[0].model.empty());
  EXPECT_TRUE(store.erase("api"));
  EXPECT_FALSE(store.erase("api"));
}

TEST(SeriesStoreTest, KeepsTheNewestPointsAndLimitsSeries) {
  StoreOptions o = hourly();
  o.max_points = 100;
  o.max_series = 2;
  SeriesStore store(o);
  ASSERT_TRUE(store.append("a", cycle(0, 150), std::nullopt));
  EXPECT_EQ(store.list()[0].points, 100u);
  EXPECT_EQ(store.list()[0].first_timestamp, 50 * 60);
  ASSERT_TRUE(store.append("b", cycle(0, 5), std::nullopt));
  auto third = store.append("c", cycle(0, 5), std::nullopt);
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().code, ErrorCode::kOutOfRange);
  EXPECT_EQ(store.size(), 2u);
}

// Appended points may span as many steps as a new series' points: the point already stored,
// which anchors them on the grid, does not count.
TEST(SeriesStoreTest, AppendedPointsMaySpanAsManyStepsAsANewSeries) {
  auto steps = [](double first, double last) {
    Points p;
    for (double k = first; k <= last; ++k) {
      p.timestamps.push_back(60 * k);
      p.values.push_back(1);
    }
    return p;
  };
  const auto limit = static_cast<size_t>(kMaxSeriesSteps);
  SeriesStore store;
  auto created = store.append("new", steps(1, kMaxSeriesSteps), 60.0);
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_EQ(created->appended, limit);

  ASSERT_TRUE(store.append("grown", Points{{0}, {1}}, 60.0));
  auto appended = store.append("grown", steps(1, kMaxSeriesSteps), std::nullopt);
  ASSERT_TRUE(appended) << appended.error().message;
  EXPECT_EQ(appended->appended, limit);
  EXPECT_EQ(appended->last_timestamp, 60 * kMaxSeriesSteps);

  // One step more is refused either way.
  auto too_many =
      store.append("grown", steps(kMaxSeriesSteps + 1, 2 * kMaxSeriesSteps + 1), std::nullopt);
  ASSERT_FALSE(too_many);
  EXPECT_THAT(too_many.error().message, HasSubstr("span 200001 steps"));
  EXPECT_FALSE(store.append("other", steps(0, kMaxSeriesSteps), 60.0));
}

TEST(SeriesStoreTest, ConcurrentAppendsAndForecastsKeepEveryPoint) {
  SeriesStore store(hourly());
  ASSERT_TRUE(store.append("s", cycle(0, 120), std::nullopt));
  std::thread writer([&] {
    for (int i = 120; i < 400; ++i) {
      ASSERT_TRUE(store.append("s", Points{{60.0 * i}, {100.0 + i % 7}}, std::nullopt));
    }
  });
  std::thread reader([&] {
    for (int i = 0; i < 20; ++i) EXPECT_TRUE(store.forecast("s", 5));
  });
  writer.join();
  reader.join();
  EXPECT_EQ(store.list()[0].points, 400u);
}

TEST(SeriesStoreTest, ValidNames) {
  EXPECT_TRUE(valid_series_name("checkout.rps-eu_1"));
  EXPECT_FALSE(valid_series_name(""));
  EXPECT_FALSE(valid_series_name("a/b"));
  EXPECT_FALSE(valid_series_name(std::string(129, 'a')));
}

// A series that has dropped its oldest steps still has its grid where its points are: with a
// step that is no binary fraction (1.1 s), moving the start by one step per dropped value drifted
// by ~0.1 µs a time, and after ~10,500 appends an on-grid point was refused as off the grid.
TEST(SeriesStoreTest, TheGridDoesNotDriftAsOldStepsAreDropped) {
  StoreOptions o;
  o.max_points = 100;
  SeriesStore store(o);
  const double t0 = 1.7e9, step = 1.1;
  Points first;
  for (int k = 0; k < 100; ++k) {
    first.timestamps.push_back(t0 + k * step);
    first.values.push_back(1);
  }
  ASSERT_TRUE(store.append("s", first, step));
  for (int k = 100; k < 30'000; ++k) {
    auto r = store.append("s", Points{{t0 + k * step}, {1}}, step);
    ASSERT_TRUE(r) << "point " << k << ": " << r.error().message;
    ASSERT_NEAR(r->last_timestamp, t0 + k * step, 1e-6) << "point " << k;
  }
}

}  // namespace
}  // namespace prescale::services::forecast_service
