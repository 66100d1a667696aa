#include "forecast/period.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "forecast/trace.h"

namespace prescale::forecast {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr double kDay = 86400;
constexpr double kWeek = 7 * kDay;

// level + daily and weekly sines + a weekend dip + Gaussian noise, one value per `step_seconds`.
Series seasonal_series(double days, double step_seconds, double daily_amplitude,
                       double weekly_amplitude, double noise_sd, unsigned seed = 7,
                       double weekend_dip = 0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0, noise_sd);
  Series s;
  s.step_seconds = step_seconds;
  const auto n = static_cast<size_t>(days * kDay / step_seconds);
  for (size_t i = 0; i < n; ++i) {
    const double t = static_cast<double>(i) * step_seconds;
    s.values.push_back(50 + daily_amplitude * std::sin(2 * std::numbers::pi * t / kDay) +
                       weekly_amplitude * std::sin(2 * std::numbers::pi * t / kWeek) -
                       (std::fmod(t, kWeek) >= 5 * kDay ? weekend_dip : 0) + noise(rng));
  }
  return s;
}

TEST(DetectPeriodsTest, FindsDayAndWeekInOneMinuteSeries) {
  const Series s = seasonal_series(21, 60, 10, 5, 3);
  // 1440 and 10080 steps of a minute; the day carries more variance, so it comes first.
  EXPECT_THAT(detect_periods(s), ElementsAre(kDay, kWeek));
}

TEST(DetectPeriodsTest, FindsTheWeekInExactlyTwoWeeks) {
  // Two cycles are the least that shows a repeat, and a wandering series repeats by chance over
  // two, so the week must stand out: here quiet weekends.
  const Series s = seasonal_series(14, 60, 10, 0, 3, 7, 10);
  EXPECT_THAT(detect_periods(s), ElementsAre(kDay, kWeek));
  // A weak weekly sine (a sixth of the variance) is not enough evidence in two weeks.
  EXPECT_THAT(detect_periods(seasonal_series(14, 60, 10, 5, 3)), ElementsAre(kDay));
}

TEST(DetectPeriodsTest, FindsNothingInWhiteNoise) {
  EXPECT_THAT(detect_periods(seasonal_series(14, 60, 0, 0, 1)), IsEmpty());
  EXPECT_THAT(detect_periods(seasonal_series(3, 300, 0, 0, 1, 11)), IsEmpty());
}

TEST(DetectPeriodsTest, FindsNothingInARandomWalk) {
  // A detrended random walk over a few "cycles" looks like a slow wave: the stricter bar for
  // few cycles and for periods other than a day or a week must hold it off.
  for (unsigned seed = 1; seed <= 8; ++seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> noise(0, 1);
    Series s;
    double v = 0;
    for (size_t i = 0; i < 20160; ++i) s.values.push_back(v += noise(rng));
    EXPECT_THAT(detect_periods(s), IsEmpty()) << seed;
  }
}

TEST(DetectPeriodsTest, FindsOnlyTheDayUnderAWanderingLevel) {
  for (unsigned seed = 1; seed <= 8; ++seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> noise(0, 1);
    Series s;
    double level = 0;
    for (size_t i = 0; i < 14 * 1440; ++i) {
      level += 0.05 * noise(rng);
      const double phase = 2 * std::numbers::pi * static_cast<double>(i) / 1440;
      s.values.push_back(level + 3 * std::sin(phase) + noise(rng));
    }
    EXPECT_THAT(detect_periods(s), ElementsAre(kDay)) << seed;
  }
}

// Half an hour of 10-second counts: a level that drifts, with count noise, times a 90-second
// cycle of ± `cycle_amplitude`.
Series short_wander(unsigned seed, double cycle_amplitude) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> drift(0, 1.5);
  Series s;
  s.step_seconds = 10;
  double level = 50;
  for (size_t i = 0; i < 190; ++i) {
    level = std::max(10.0, level + drift(rng));
    const double phase = 2 * std::numbers::pi * static_cast<double>(i) / 9;
    s.values.push_back(
        std::poisson_distribution<int>(level * (1 + cycle_amplitude * std::sin(phase)))(rng));
  }
  return s;
}

TEST(DetectPeriodsTest, FindsNothingInAShortNoisyWander) {
  // Over 190 values sampling noise alone lifts one lag's autocorrelation 0.1 above a shorter
  // lag's in about a third of such series; the bar grows with the sampling error.
  int found = 0;
  for (unsigned seed = 1; seed <= 40; ++seed)
    found += detect_periods(short_wander(seed, 0)).empty() ? 0 : 1;
  EXPECT_EQ(found, 0);
}

TEST(DetectPeriodsTest, FindsACycleInAShortSeries) {
  for (unsigned seed = 1; seed <= 10; ++seed) {
    const std::vector<double> periods = detect_periods(short_wander(seed, 0.25));
    ASSERT_FALSE(periods.empty()) << seed;
    EXPECT_NEAR(periods[0], 90, 10) << seed;  // the strongest: 9 steps, ± one
  }
}

TEST(DetectPeriodsTest, NeedsTwoPeriodsOfData) {
  // A day and a half of a daily cycle does not show that it repeats.
  EXPECT_THAT(detect_periods(seasonal_series(1.5, 60, 10, 0, 1)), IsEmpty());
  Series tiny;
  tiny.values = {1, 2, 1};
  EXPECT_THAT(detect_periods(tiny), IsEmpty());
  EXPECT_THAT(detect_periods(Series{}), IsEmpty());
}

TEST(DetectPeriodsTest, WorksAtOtherSteps) {
  EXPECT_THAT(detect_periods(seasonal_series(10, 300, 10, 0, 3)), ElementsAre(kDay));
  EXPECT_THAT(detect_periods(seasonal_series(30, 3600, 10, 0, 3)), ElementsAre(kDay));
}

TEST(DetectPeriodsTest, KeepsPeriodsThatAreNotADayOrAWeek) {
  // An hourly batch job: a 60-step square wave on top of noise.
  std::mt19937_64 rng(5);
  std::normal_distribution<double> noise(0, 1);
  Series s;
  for (size_t i = 0; i < 2 * 1440; ++i) s.values.push_back((i % 60 < 10 ? 8 : 2) + noise(rng));
  const std::vector<double> periods = detect_periods(s);
  ASSERT_FALSE(periods.empty());
  EXPECT_EQ(periods.front(), 3600);
}

TEST(DetectPeriodsTest, SnapsNearlyDailyPeriodsToADay) {
  // A 1430-minute cycle is within the 3 % snap of a day.
  Series s;
  for (size_t i = 0; i < 5 * 1440; ++i) {
    s.values.push_back(10 + 5 * std::sin(2 * std::numbers::pi * static_cast<double>(i) / 1430));
  }
  EXPECT_THAT(detect_periods(s), ElementsAre(kDay));
  PeriodOptions exact;
  exact.snap_fraction = 0;
  // The estimate is the autocorrelation peak, within a step or so per cycle.
  EXPECT_THAT(detect_periods(s, exact),
              ElementsAre(::testing::DoubleNear(1430 * 60, 0.01 * 1430 * 60)));
}

TEST(DetectPeriodsTest, InterpolatesGaps) {
  Series s = seasonal_series(7, 60, 10, 0, 2);
  for (size_t i = 3000; i < 3300; ++i) s.values[i] = std::numeric_limits<double>::quiet_NaN();
  for (size_t i = 0; i < s.values.size(); i += 37) {
    s.values[i] = std::numeric_limits<double>::quiet_NaN();
  }
  s.values.front() = s.values.back() = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THAT(detect_periods(s), ElementsAre(kDay));
}

TEST(DetectPeriodsTest, IgnoresATrend) {
  Series s = seasonal_series(7, 60, 10, 0, 2);
  for (size_t i = 0; i < s.values.size(); ++i) s.values[i] += 0.01 * static_cast<double>(i);
  EXPECT_THAT(detect_periods(s), ElementsAre(kDay));
}

TEST(DetectPeriodsTest, FindsNothingInASteadilyGrowingSeries) {
  // A load that grows by 1 req/s a minute with white noise around the line: detrended it is
  // white noise, which has no cycle. The bursts pass reads the differences, whose mean is the
  // slope; a mean left in them correlates at every lag and passes for a short cycle.
  for (unsigned seed = 1; seed <= 4; ++seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> noise(0, 0.5);
    Series s;
    for (size_t i = 0; i < 1000; ++i) s.values.push_back(100 + static_cast<double>(i) + noise(rng));
    EXPECT_THAT(detect_periods(s), IsEmpty()) << seed;
  }
}

TEST(DetectPeriodsDataTest, FindsDayAndWeekInNasa) {
  const char* dir = std::getenv("PRESCALE_SOURCE_DIR");
  const std::string path = std::string(dir != nullptr ? dir : PRESCALE_TEST_SOURCE_DIR) +
                           "/../shared/data/traces/nasa-http-1995-07.csv";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "skipped: ../shared/data missing";
  auto trace = read_trace(path);
  ASSERT_TRUE(trace) << trace.error().to_string();
  Series s;
  s.step_seconds = trace->step_seconds;
  for (size_t i = 0; i < trace->counts.size(); ++i) s.values.push_back(trace->rate_rps(i));
  EXPECT_THAT(detect_periods(s), ElementsAre(kDay, kWeek));
}

TEST(DetectPeriodsTest, FindsRecurringBurstsOnAWanderingLevel) {
  // A burst every 19 steps (a batch job) on a random-walk level: clipping the bursts hides them
  // from the periodogram; the differences' autocorrelation shows them.
  std::mt19937_64 rng(9);
  std::normal_distribution<double> step(0, 2);
  Series s;
  s.step_seconds = 60;
  double level = 100;
  for (int i = 0; i < 1300; ++i) {
    level = std::max(20.0, level + step(rng));
    s.values.push_back(level + (i % 19 == 0 ? 250 : 0));
  }
  EXPECT_THAT(detect_periods(s), ElementsAre(19 * 60.0));
}

}  // namespace
}  // namespace prescale::forecast
